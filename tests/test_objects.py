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
