"""``Result``: one item's outcome when a map runs with ``errors="collect"``."""

from __future__ import annotations

from typing import Any, Generic, TypeVar, final

T = TypeVar("T")

_MISSING: Any = object()


@final
class Result(Generic[T]):
    """The outcome of one task: a value or an error.

    ``anypool.map(..., errors="collect")`` gives one ``Result`` per input, in order, instead of
    stopping at the first error.

    Attributes:
        index: the input's position (0-based).

    .. versionadded:: 0.1
    """

    __slots__ = ("_value", "_error", "index")

    def __init__(
        self, value: T = _MISSING, error: BaseException | None = None, index: int = -1
    ) -> None:
        self._value = None if value is _MISSING else value
        self._error = error
        self.index = index

    @property
    def ok(self) -> bool:
        """True when the task returned a value."""
        return self._error is None

    @property
    def value(self) -> T | None:
        """The task's return value (``None`` when it failed)."""
        return self._value

    @property
    def error(self) -> BaseException | None:
        """The exception the task raised (``None`` when it succeeded)."""
        return self._error

    def unwrap(self) -> T:
        """Return the value, or raise the task's exception."""
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def __repr__(self) -> str:
        if self._error is not None:
            return f"Result(index={self.index}, error={self._error!r})"
        return f"Result(index={self.index}, value={self._value!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Result):
            return NotImplemented
        return (self._value, self._error, self.index) == (other._value, other._error, other.index)

    __hash__ = None  # type: ignore[assignment]
