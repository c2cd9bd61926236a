"""Single-dispatch methods, as used by process-application policies.

:class:`singledispatchmethod` behaves like :class:`functools.singledispatchmethod`
(it is a subclass of it): the implementation is chosen by the class of the
first argument after ``self``, and more implementations are added with
``@method.register``.

Policies dispatch once per processed event, so the binding cost matters. The
standard library builds and decorates a fresh closure every time the method
is looked up on an instance; this version prepares one dispatching function
when the method is defined, and binding it to an instance is then as cheap as
binding any plain method.
"""

from __future__ import annotations

import functools
from types import MethodType
from typing import Any, Callable

__all__ = ["singledispatchmethod"]


class singledispatchmethod(functools.singledispatchmethod):  # noqa: N801
    """Single-dispatch generic method descriptor (see module docstring)."""

    def __init__(self, func: Callable[..., Any]) -> None:
        super().__init__(func)
        dispatch = self.dispatcher.dispatch

        def dispatching(obj: Any, *args: Any, **kwargs: Any) -> Any:
            if not args:
                raise TypeError(
                    f"{dispatching.__qualname__}() requires at least 1 positional argument"
                )
            implementation = dispatch(args[0].__class__)
            return implementation.__get__(obj, type(obj))(*args, **kwargs)

        functools.update_wrapper(dispatching, func)
        # Bound methods forward unknown attribute reads to their function, so
        # "instance.method.register" keeps working.
        dispatching.register = self.register  # type: ignore[attr-defined]
        dispatching.__isabstractmethod__ = self.__isabstractmethod__  # type: ignore[attr-defined]
        self._dispatching = dispatching

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        if obj is None:
            return super().__get__(obj, cls)
        return MethodType(self._dispatching, obj)
