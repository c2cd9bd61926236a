"""The helpers the domain's generated functions make events with."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from eventsourcing_rs._core import instance_with_dict, now


def test_now_in_utc_is_the_clock_read_as_python_reads_it() -> None:
    before = datetime.now(UTC)
    made = now(UTC)
    after = datetime.now(UTC)
    assert type(made) is datetime
    assert made.tzinfo is UTC
    assert before <= made <= after
    assert after - made < timedelta(seconds=1)


def test_now_in_another_zone_is_asked_of_python() -> None:
    zone = timezone(timedelta(hours=5, minutes=30))
    before = datetime.now(zone)
    made = now(zone)
    assert made.tzinfo is zone
    assert made.utcoffset() == timedelta(hours=5, minutes=30)
    assert before <= made <= datetime.now(zone)


class Plain:
    def __init__(self) -> None:
        raise AssertionError("__init__ is not called")


class Abstract(ABC):
    @abstractmethod
    def method(self) -> None: ...


class Slotted:
    __slots__ = ("value",)


def test_an_instance_gets_the_dict_as_its_state_without_init() -> None:
    state: dict[str, Any] = {"a": 1, "b": [2]}
    made = instance_with_dict(Plain, state)
    assert type(made) is Plain
    assert made.__dict__ == {"a": 1, "b": [2]}
    assert made.b is state["b"]
    made.c = 3
    assert made.c == 3


def test_abstract_classes_are_refused_as_object_new_refuses_them() -> None:
    with pytest.raises(TypeError, match="abstract"):
        instance_with_dict(Abstract, {})


def test_a_class_without_a_dict_is_refused() -> None:
    with pytest.raises((AttributeError, TypeError)):
        instance_with_dict(Slotted, {"value": 1})


def test_a_class_built_on_a_c_type_with_its_own_constructor_is_refused() -> None:
    import collections

    class Queue(collections.deque):  # type: ignore[type-arg]
        pass

    with pytest.raises(TypeError, match="is not safe"):
        instance_with_dict(Queue, {})

    class Made:
        def __new__(cls) -> Made:
            return super().__new__(cls)

    class Below(Made):
        pass

    # A __new__ defined in Python over object's is fine, as for object.__new__.
    assert type(instance_with_dict(Below, {})) is Below


def test_new_events_take_their_time_from_a_clock_a_test_has_moved() -> None:
    # time-machine replaces datetime.now's C function in place; timestamps
    # read from the clock in Rust must give way to it.
    import time_machine
    from eventsourcing_rs.domain import Aggregate, event

    class Dog(Aggregate):
        @event("Barked")
        def bark(self) -> None:
            pass

    then = datetime(2000, 1, 1, tzinfo=UTC)
    with time_machine.travel(then, tick=False):
        dog = Dog()
        dog.bark()
        assert dog.created_on == then
        assert dog.modified_on == then
    later = Dog()
    assert later.created_on > then
    assert later.created_on.tzinfo is UTC
