"""Tests for eventsourcing_rs.utils: topics, retry, strtobool, method names."""

import sys
from collections import OrderedDict
from typing import Any, List

import pytest
from eventsourcing_rs import dispatch, utils
from eventsourcing_rs.utils import (
    get_method_name,
    get_module,
    get_topic,
    is_py310,
    resolve_attr,
    resolve_topic,
    retry,
    singledispatchmethod,
    strtobool,
)


class Outer:
    class Inner:
        pass


# Topics


def test_topic_is_module_and_qualified_name() -> None:
    assert get_topic(Outer) == f"{__name__}:Outer"
    assert get_topic(Outer.Inner) == f"{__name__}:Outer.Inner"
    assert get_topic(OrderedDict) == "collections:OrderedDict"


def test_resolve_topic_round_trips() -> None:
    for cls in (Outer, Outer.Inner, OrderedDict, ValueError):
        assert resolve_topic(get_topic(cls)) is cls


def test_resolve_topic_without_attribute_path_gives_the_module() -> None:
    assert resolve_topic("collections") is sys.modules["collections"]


def test_resolve_topic_caches_what_it_found() -> None:
    topic = "fractions:Fraction"
    utils._objs_cache.pop(topic, None)
    first = resolve_topic(topic)
    assert utils._objs_cache[topic] is first
    assert resolve_topic(topic) is first


def test_get_topic_registers_local_classes_so_they_resolve() -> None:
    class Local:
        pass

    topic = get_topic(Local)
    assert "<locals>" in topic
    assert resolve_topic(topic) is Local


def test_unknown_module_names_the_topic() -> None:
    topic = "no_such_module_here:Thing"
    with pytest.raises(ModuleNotFoundError) as caught:
        resolve_topic(topic)
    assert repr(topic) in str(caught.value)
    assert "no_such_module_here" in str(caught.value)
    assert caught.value.name == "no_such_module_here"


def test_unknown_attribute_names_the_topic() -> None:
    topic = f"{__name__}:Outer.Missing"
    with pytest.raises(AttributeError) as caught:
        resolve_topic(topic)
    assert repr(topic) in str(caught.value)
    assert "Missing" in str(caught.value)


def test_topic_without_module_is_refused() -> None:
    with pytest.raises(ModuleNotFoundError) as caught:
        resolve_topic(":Thing")
    assert "':Thing'" in str(caught.value)


@pytest.mark.parametrize("topic", ["no_such_module_here:X", "collections:NoSuchThing", ":X"])
def test_unresolvable_topics_raise_what_factories_catch(topic: str) -> None:
    # Infrastructure factories catch exactly these two types.
    with pytest.raises((ModuleNotFoundError, AttributeError)):
        resolve_topic(topic)


def test_unresolvable_topic_is_not_cached() -> None:
    topic = "collections:NoSuchThing"
    with pytest.raises(AttributeError):
        resolve_topic(topic)
    assert topic not in utils._objs_cache


@pytest.mark.parametrize(
    "topic, expected",
    [
        ("eventsourcing.domain:Snapshot", "eventsourcing_rs.domain:Snapshot"),
        ("eventsourcing.cipher:AESCipher", "eventsourcing_rs.cipher:AESCipher"),
        ("eventsourcing.sqlite:Factory", "eventsourcing_rs.sqlite:Factory"),
    ],
)
def test_the_reference_librarys_topics_name_this_librarys_classes(
    topic: str, expected: str
) -> None:
    # As 9.1 stores its snapshots, and names its classes in settings.
    assert resolve_topic(topic) is resolve_topic(expected)


def test_other_modules_of_the_reference_name_are_not_renamed() -> None:
    with pytest.raises(ModuleNotFoundError):
        resolve_topic("eventsourcing.no_such_module:Thing")


def test_get_module_imports_once() -> None:
    module = get_module("json")
    assert module is sys.modules["json"]
    assert utils._modules_cache["json"] is module
    with pytest.raises(ModuleNotFoundError):
        get_module("no_such_module_here")


def test_resolve_attr_follows_dotted_path() -> None:
    module = sys.modules[__name__]
    assert resolve_attr(module, "Outer.Inner") is Outer.Inner
    assert resolve_attr(module, "") is module
    with pytest.raises(AttributeError):
        resolve_attr(module, "Outer.Nope")


# retry


def test_retry_bare_and_called_without_arguments() -> None:
    @retry
    def bare() -> str:
        return "bare"

    @retry()
    def called() -> str:
        return "called"

    assert bare() == "bare"
    assert called() == "called"
    assert bare.__name__ == "bare"


def make_flaky(failures: List[BaseException], result: Any = "ok") -> Any:
    """Return a function that raises the given exceptions in turn, then
    returns ``result``; its ``calls`` attribute counts the calls."""
    remaining = list(failures)

    def flaky() -> Any:
        flaky.calls += 1  # type: ignore[attr-defined]
        if remaining:
            raise remaining.pop(0)
        return result

    flaky.calls = 0  # type: ignore[attr-defined]
    return flaky


def test_retry_calls_again_until_success() -> None:
    flaky = make_flaky([ValueError(), ValueError()])
    assert retry(ValueError, max_attempts=3)(flaky)() == "ok"
    assert flaky.calls == 3


def test_retry_gives_up_after_max_attempts() -> None:
    flaky = make_flaky([ValueError("1"), ValueError("2"), ValueError("3")])
    with pytest.raises(ValueError, match="2"):
        retry(ValueError, max_attempts=2)(flaky)()
    assert flaky.calls == 2


def test_retry_default_is_a_single_attempt() -> None:
    flaky = make_flaky([ValueError()])
    with pytest.raises(ValueError):
        retry(ValueError)(flaky)()
    assert flaky.calls == 1


def test_retry_accepts_a_sequence_of_exception_classes() -> None:
    for sequence in ([KeyError, TypeError], (KeyError, TypeError)):
        flaky = make_flaky([KeyError(), TypeError()])
        assert retry(sequence, max_attempts=3)(flaky)() == "ok"
        assert flaky.calls == 3


def test_retry_does_not_catch_other_exceptions() -> None:
    flaky = make_flaky([KeyError()])
    with pytest.raises(KeyError):
        retry(ValueError, max_attempts=5)(flaky)()
    assert flaky.calls == 1


def test_retry_waits_and_stalls() -> None:
    flaky = make_flaky([ValueError()])
    assert retry(ValueError, max_attempts=2, wait=0.001, stall=0.001)(flaky)() == "ok"


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((1,), {}, "not an exception class: 1"),
        (((ValueError, 1),), {}, "not an exception class: 1"),
        ((str,), {}, "not an exception class: <class 'str'>"),
        ((ValueError,), {"max_attempts": "a"}, "'max_attempts' must be an int: a"),
        ((ValueError,), {"wait": "a"}, "'wait' must be a float: a"),
        ((ValueError,), {"stall": "a"}, "'stall' must be a float: a"),
    ],
)
def test_retry_rejects_bad_arguments(args: Any, kwargs: Any, message: str) -> None:
    with pytest.raises(TypeError) as caught:
        retry(*args, **kwargs)
    assert str(caught.value) == message


# strtobool


@pytest.mark.parametrize("text", ["y", "yes", "t", "true", "on", "1", "TRUE", "Yes"])
def test_strtobool_true(text: str) -> None:
    assert strtobool(text) is True


@pytest.mark.parametrize("text", ["n", "no", "f", "false", "off", "0", "FALSE", "Off"])
def test_strtobool_false(text: str) -> None:
    assert strtobool(text) is False


@pytest.mark.parametrize("text", ["", "maybe", "2", " yes"])
def test_strtobool_rejects_other_strings(text: str) -> None:
    with pytest.raises(ValueError, match="invalid truth value"):
        strtobool(text)


@pytest.mark.parametrize("value", [None, True, 1, b"yes"])
def test_strtobool_rejects_non_strings(value: Any) -> None:
    with pytest.raises(TypeError, match="is not a str"):
        strtobool(value)


# Method names


def test_method_name_matches_the_interpreters_messages() -> None:
    class Plain:
        def method(self, a: Any) -> None:
            pass

    with pytest.raises(TypeError) as caught:
        Plain().method()  # type: ignore[call-arg]
    name = get_method_name(Plain.method)
    assert str(caught.value).startswith(f"{name}() missing")
    assert get_method_name(Plain().method) == name
    assert name.endswith("Plain.method")


def test_is_py310() -> None:
    assert is_py310() is (sys.version_info[:2] == (3, 10))


def test_singledispatchmethod_is_offered_by_utils() -> None:
    assert singledispatchmethod is dispatch.singledispatchmethod
