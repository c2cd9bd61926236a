"""Small helpers shared by every layer: topics, retrying, and parsing flags.

A *topic* is a string ``"package.module:Qualified.Name"`` that locates a
Python object (normally a class). Topics are how stored events and snapshots
remember which class to rebuild them with, and how infrastructure is chosen
from environment variables.
"""

from __future__ import annotations

import importlib
import sys
from functools import wraps
from inspect import isfunction
from random import random
from time import sleep
from types import FunctionType, ModuleType, WrapperDescriptorType
from typing import Any, Callable, Dict, Sequence, Type, Union

from eventsourcing_rs.dispatch import singledispatchmethod

__all__ = [
    "get_method_name",
    "get_module",
    "get_topic",
    "is_py310",
    "resolve_attr",
    "resolve_topic",
    "retry",
    "singledispatchmethod",
    "strtobool",
]

# Objects located by topic. get_topic() registers the classes it names, so
# classes defined in local scopes (which cannot be imported) still resolve
# within the process that defined them.
_objs_cache: Dict[str, Any] = {}

# Modules imported while resolving topics.
_modules_cache: Dict[str, ModuleType] = {}


def get_topic(cls: type) -> str:
    """Return the topic of ``cls``, and remember ``cls`` under that topic."""
    topic = f"{cls.__module__}:{cls.__qualname__}"
    _objs_cache[topic] = cls
    return topic


def resolve_topic(topic: str) -> Any:
    """Return the object named by ``topic``.

    Resolved objects are cached, so a topic is imported and looked up only
    once. If the module can't be imported a :class:`ModuleNotFoundError` is
    raised, and if the module has no such attribute an :class:`AttributeError`
    is raised; in both cases the message names the topic. A topic naming
    one of the reference library's modules (``eventsourcing.domain:Snapshot``,
    as 9.1 stores its snapshots) names the same module of this library.
    """
    try:
        return _objs_cache[topic]
    except KeyError:
        pass
    module_name, _, attr_path = topic.partition(":")
    if not module_name:
        raise ModuleNotFoundError(f"Failed to resolve topic {topic!r}: it names no module")
    # What 9.1 wrote naming its own classes (a snapshot's topic, a cipher
    # or factory named in the environment) names this library's.
    module_name = _REFERENCE_MODULES.get(module_name, module_name)
    try:
        module = get_module(module_name)
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f"Failed to resolve topic {topic!r}: {e}", name=e.name, path=e.path
        ) from e
    try:
        obj = resolve_attr(module, attr_path)
    except AttributeError as e:
        raise AttributeError(
            f"Failed to resolve topic {topic!r}: {e}", name=e.name, obj=e.obj
        ) from e
    _objs_cache[topic] = obj
    return obj


# The reference library's modules whose public names this library offers
# under its own package.
_REFERENCE_MODULES = {
    f"eventsourcing.{name}": f"eventsourcing_rs.{name}"
    for name in (
        "application",
        "cipher",
        "compressor",
        "dispatch",
        "domain",
        "interface",
        "persistence",
        "popo",
        "postgres",
        "sqlite",
        "system",
        "utils",
    )
}


def get_module(module_name: str) -> ModuleType:
    """Import (once) and return the module called ``module_name``."""
    try:
        return _modules_cache[module_name]
    except KeyError:
        module = importlib.import_module(module_name)
        _modules_cache[module_name] = module
        return module


def resolve_attr(obj: Any, path: str) -> Any:
    """Follow the dotted attribute ``path`` from ``obj``.

    An empty path returns ``obj`` itself.
    """
    if path:
        for name in path.split("."):
            obj = getattr(obj, name)
    return obj


ExceptionTypes = Union[Type[Exception], Sequence[Type[Exception]]]


def _is_exception_class(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, Exception)


def retry(
    exc: ExceptionTypes = Exception,
    max_attempts: int = 1,
    wait: float = 0,
    stall: float = 0,
    verbose: bool = False,
) -> Callable[..., Any]:
    """Decorator that calls a function again when it raises.

    Use it bare (``@retry``) or with arguments (``@retry(ValueError, 3)``).

    :param exc: exception class, or sequence of classes, that cause a retry
    :param max_attempts: how many calls to make in total before giving up
        and re-raising the last exception
    :param wait: seconds to sleep between attempts (jittered by +/- 5%)
    :param stall: seconds to sleep before the first attempt
    :param verbose: accepted for compatibility; nothing is printed
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        caught: Any = tuple(exc) if isinstance(exc, (list, tuple)) else exc

        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if stall:
                sleep(stall)
            attempts = 0
            while True:
                try:
                    return func(*args, **kwargs)
                except caught:
                    attempts += 1
                    if max_attempts is not None and attempts >= max_attempts:
                        raise
                    sleep(wait * (1 + 0.1 * (random() - 0.5)))

        return wrapper

    # Used bare, the decorated function arrives in place of the exceptions.
    if isfunction(exc):
        func = exc
        exc = Exception
        return decorate(func)

    if isinstance(exc, (list, tuple)):
        for item in exc:
            if not _is_exception_class(item):
                raise TypeError(f"not an exception class: {item}")
    elif not _is_exception_class(exc):
        raise TypeError(f"not an exception class: {exc}")
    if not isinstance(max_attempts, int):
        raise TypeError(f"'max_attempts' must be an int: {max_attempts}")
    if not isinstance(wait, (float, int)):
        raise TypeError(f"'wait' must be a float: {wait}")
    if not isinstance(stall, (float, int)):
        raise TypeError(f"'stall' must be a float: {stall}")
    return decorate


_TRUE_STRINGS = frozenset(("y", "yes", "t", "true", "on", "1"))
_FALSE_STRINGS = frozenset(("n", "no", "f", "false", "off", "0"))


def strtobool(val: str) -> bool:
    """Interpret a string such as an environment variable as a boolean.

    ``y``, ``yes``, ``t``, ``true``, ``on`` and ``1`` mean True; ``n``,
    ``no``, ``f``, ``false``, ``off`` and ``0`` mean False (in any letter
    case). Any other string raises :class:`ValueError`; a value that is not a
    string raises :class:`TypeError`.
    """
    if not isinstance(val, str):
        raise TypeError(f"{val} is not a str")
    lowered = val.lower()
    if lowered in _TRUE_STRINGS:
        return True
    if lowered in _FALSE_STRINGS:
        return False
    raise ValueError(f"invalid truth value {lowered!r}")


def is_py310() -> bool:
    """Tell whether the interpreter is Python 3.10."""
    return sys.version_info[0:2] == (3, 10)


_NAMES_ARE_QUALIFIED = sys.version_info >= (3, 10)


def get_method_name(method: Union[FunctionType, WrapperDescriptorType, Any]) -> str:
    """Return the name the interpreter uses for ``method`` in a TypeError.

    From Python 3.10 the interpreter's argument errors name a function by its
    qualified name (``Class.method``); before that, by its bare name.
    Argument errors raised by this package use the same form, so they read
    exactly like the interpreter's own.
    """
    if _NAMES_ARE_QUALIFIED:
        return str(method.__qualname__)
    return str(method.__name__)
