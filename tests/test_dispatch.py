"""Tests for eventsourcing_rs.dispatch.singledispatchmethod."""

import functools
from typing import Any

import pytest
from eventsourcing_rs.dispatch import singledispatchmethod


class Handler:
    def __init__(self, label: str) -> None:
        self.label = label

    @singledispatchmethod
    def handle(self, item: Any, suffix: str = "") -> str:
        """Handle anything not registered."""
        return f"{self.label}:default:{item}{suffix}"

    @handle.register(int)
    def _(self, item: int, suffix: str = "") -> str:
        return f"{self.label}:int:{item}{suffix}"

    @handle.register
    def _(self, item: str, suffix: str = "") -> str:
        return f"{self.label}:str:{item}{suffix}"


class SubHandler(Handler):
    @singledispatchmethod
    def handle(self, item: Any, suffix: str = "") -> str:
        return "sub"


def test_dispatches_on_the_type_of_the_first_argument() -> None:
    handler = Handler("h")
    assert handler.handle(1) == "h:int:1"
    assert handler.handle("x", suffix="!") == "h:str:x!"
    assert handler.handle(1.5) == "h:default:1.5"
    # bool is an int subclass, so it takes the int implementation.
    assert handler.handle(True) == "h:int:True"


def test_is_a_functools_singledispatchmethod() -> None:
    assert isinstance(Handler.__dict__["handle"], functools.singledispatchmethod)


def test_bound_method_keeps_name_doc_and_register() -> None:
    handler = Handler("h")
    assert handler.handle.__name__ == "handle"
    assert handler.handle.__qualname__ == "Handler.handle"
    assert handler.handle.__doc__ == "Handle anything not registered."


def test_registering_through_an_instance() -> None:
    class Local:
        @singledispatchmethod
        def handle(self, item: Any) -> str:
            return "default"

    def handle_float(self: Local, item: float) -> str:
        return "float"

    Local().handle.register(float, handle_float)
    assert Local().handle(2.5) == "float"
    assert Local().handle(2) == "default"


def test_each_instance_is_bound_separately() -> None:
    first, second = Handler("a"), Handler("b")
    assert first.handle(1) == "a:int:1"
    assert second.handle(1) == "b:int:1"


def test_class_access_and_overriding() -> None:
    assert callable(Handler.handle)
    assert SubHandler("s").handle(1) == "sub"


def test_calling_without_an_argument_to_dispatch_on() -> None:
    with pytest.raises(TypeError, match="requires at least 1 positional argument"):
        Handler("h").handle()
