"""A property computed on first use and kept on its instance, without a lock.

functools.cached_property takes a lock on every first use (until Python 3.12): on 3.11
it was about a quarter of summarising 100,000 results. A result is read by one thread at a
time, and two threads computing the same value would compute the same thing, so no lock
is needed: the value is stored in the instance's ``__dict__``, where a later lookup finds
it before this descriptor (which defines no ``__set__``), as functools' does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class cached_property(Generic[T]):  # named as the functools one it stands in for
    """Computes ``func(instance)`` once per instance, on first access."""

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> cached_property[T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> Any:
        if instance is None:
            return self
        # Straight into __dict__: a frozen dataclass refuses setattr, not this.
        value = instance.__dict__[self.name] = self.func(instance)
        return value
