"""The guard a follower uses to keep its direct recorder calls between
pulls: it must stop holding as soon as a watched method could resolve to
something else, or a pinned attribute is rebound."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing_rs._core import MethodGuard

from tests.cpython_switch import needs_shortcuts

# Without version tags a guard never holds (see tests/cpython_switch.py).
pytestmark = needs_shortcuts


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


# Once a guard has held, it tells "unchanged" from the version of each
# object's instance dict; these check every way a value can change after
# that, the guard having held (and so remembered the versions) first.


def test_a_watched_name_shadowed_after_the_guard_held_is_noticed(obj: Derived) -> None:
    guard = MethodGuard([(obj, ["read"])])
    assert guard.holds() and guard.holds()
    vars(obj)["read"] = lambda: "through the dict"
    assert not guard.holds()


def test_a_replaced_instance_dict_is_noticed(obj: Derived) -> None:
    obj.target = first = object()  # type: ignore[attr-defined]
    guard = MethodGuard([(obj, ["read"])], [(obj, "target")])
    assert guard.holds() and guard.holds()
    obj.__dict__ = {"target": first, "read": None}
    assert not guard.holds()
    obj.__dict__ = {"target": object()}
    assert not guard.holds()
    obj.__dict__ = {"target": first}
    assert guard.holds()


class WithProperty:
    def __init__(self) -> None:
        self.store: Any = object()

    @property
    def target(self) -> Any:
        return self.other_store

    other_store: Any = None


def test_a_pinned_property_is_read_every_time() -> None:
    owner = WithProperty()
    kept = object()
    WithProperty.other_store = kept
    guard = MethodGuard([], [(owner, "target")])
    assert guard.holds() and guard.holds()
    # Changes the property's value without touching the instance dict.
    WithProperty.other_store = object()
    assert not guard.holds()
    WithProperty.other_store = kept


class SlottedValue:
    __slots__ = ("value", "__dict__")


def test_a_pinned_slot_is_read_every_time() -> None:
    owner = SlottedValue()
    owner.value = first = object()
    guard = MethodGuard([], [(owner, "value")])
    assert guard.holds() and guard.holds()
    owner.value = object()
    assert not guard.holds()
    owner.value = first
    assert guard.holds()


class Dynamic:
    def __getattr__(self, name: str) -> Any:
        return object()


def test_a_pinned_attribute_of_a_class_with_getattr_is_read_every_time() -> None:
    owner = Dynamic()
    guard = MethodGuard([], [(owner, "anything")])
    # Each read gives a new object, so the pin never holds.
    assert not guard.holds()


def test_a_pinned_class_attribute_changed_on_the_class_is_noticed() -> None:
    class Settings:
        size = object()

    owner = Settings()
    guard = MethodGuard([], [(owner, "size")])
    assert guard.holds() and guard.holds()
    Settings.size = object()
    assert not guard.holds()
    owner.size = object()  # type: ignore[misc]
    assert not guard.holds()
