"""The guard a follower uses to keep its direct recorder calls between
pulls: it must stop holding as soon as a watched method could resolve to
something else, or a pinned attribute is rebound."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing_rs._core import MethodGuard


class Base:
    def read(self) -> str:
        return "base"

    def write(self) -> str:
        return "base"


class Derived(Base):
    pass


class Other(Base):
    pass


class Slotted:
    __slots__ = ("value",)

    def read(self) -> str:
        return "slotted"


@pytest.fixture
def obj() -> Derived:
    return Derived()


def test_holds_while_nothing_changes(obj: Derived) -> None:
    guard = MethodGuard([(obj, ["read", "write"])])
    assert guard.holds()
    obj.unrelated = 1  # type: ignore[attr-defined]
    assert guard.holds()
    Derived.unrelated_on_class = 2  # type: ignore[attr-defined]
    # Any change to the class may change what a method resolves to.
    assert not guard.holds()
    del Derived.unrelated_on_class  # type: ignore[attr-defined]


def test_a_method_replaced_on_the_class_or_a_base_is_noticed(
    obj: Derived, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard = MethodGuard([(obj, ["read"])])
    monkeypatch.setattr(Base, "read", lambda self: "patched")
    assert not guard.holds()
    monkeypatch.undo()
    guard = MethodGuard([(obj, ["read"])])
    assert guard.holds()
    monkeypatch.setattr(Derived, "read", lambda self: "patched")
    assert not guard.holds()


def test_an_instance_attribute_shadowing_a_watched_name_is_noticed(obj: Derived) -> None:
    guard = MethodGuard([(obj, ["read"])])
    obj.write = lambda: "instance"  # type: ignore[method-assign]
    assert guard.holds(), "write is not watched"
    obj.read = lambda: "instance"  # type: ignore[method-assign]
    assert not guard.holds()
    del obj.read
    assert guard.holds()


def test_a_changed_class_of_the_object_is_noticed(obj: Derived) -> None:
    guard = MethodGuard([(obj, ["read"])])
    obj.__class__ = Other
    assert not guard.holds()


def test_an_object_without_an_instance_dict_cannot_be_shadowed() -> None:
    obj = Slotted()
    guard = MethodGuard([(obj, ["read"])])
    assert guard.holds()
    with pytest.raises(AttributeError):
        obj.read = lambda: "instance"  # type: ignore[method-assign]
    assert guard.holds()


def test_a_pinned_attribute_rebound_is_noticed(obj: Derived) -> None:
    first, second = object(), object()
    obj.target = first  # type: ignore[attr-defined]
    guard = MethodGuard([], [(obj, "target")])
    assert guard.holds()
    obj.target = second  # type: ignore[attr-defined]
    assert not guard.holds()
    obj.target = first  # type: ignore[attr-defined]
    assert guard.holds()
    del obj.target  # type: ignore[attr-defined]
    assert not guard.holds()


def test_it_holds_only_for_its_subjects(obj: Derived) -> None:
    other = Derived()
    guard = MethodGuard([(obj, ["read"])], [], [obj, other])
    assert guard.holds(obj, other)
    assert not guard.holds(other, obj)
    assert not guard.holds(obj)
    assert not guard.holds(obj, other, obj)


def test_pinning_a_missing_attribute_is_an_error(obj: Derived) -> None:
    with pytest.raises(AttributeError, match="missing"):
        MethodGuard([], [(obj, "missing")])


def test_watching_keeps_no_one_from_being_collected() -> None:
    # The guard holds what it watches; dropping the guard frees them.
    import gc
    import weakref

    obj: Any = Derived()
    ref = weakref.ref(obj)
    guard = MethodGuard([(obj, ["read"])], [(obj, "read")])
    del obj
    assert ref() is not None
    del guard
    gc.collect()
    assert ref() is None
