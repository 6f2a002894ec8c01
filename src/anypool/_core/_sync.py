"""The pool's synchronisation primitives, shared state and ``share()``: one factory per kind.

A backend names its kind in ``Backend.sync_kind``; the :class:`~anypool.Pool` asks the backend
for that kind's factory (``Backend.sync_factory(kind)``, by default the :class:`SyncFactory`
subclass registered under the name in :data:`SYNC_KINDS`), lazily on its first primitive, and
closes it at shutdown. Kinds:

* ``"thread"`` (serial and thread pools): the ``threading`` and ``queue`` types themselves;
* ``"asyncio"``: the ``asyncio`` types (they bind to the loop that first waits on them);
* ``"process"``: kinds that cross into the pool's worker processes as task arguments.
  ``Lock``/``RLock``/``Semaphore``/``BoundedSemaphore``/``Event``/``Condition``/``Barrier``
  are anypool's own, with ``threading``'s interface, on *named* POSIX semaphores (and, for
  the condition, event and barrier, a few ints in shared memory), so a worker that is already
  running reopens them by name (a plain ``multiprocessing.Lock`` only crosses at process
  start). ``Value`` and ``Counter``
  keep their number in ``multiprocessing.shared_memory`` guarded by such a lock. ``Queue``,
  ``dict`` and ``list`` live in a ``multiprocessing`` ``SyncManager`` process the pool starts
  on first use and stops at shutdown. Names and segments are unlinked at shutdown; the
  parent's own handles keep working afterwards (read a ``Value`` or ``Counter`` after the
  ``with`` block), manager objects do not (copy a ``dict`` out before the pool closes).

The process kinds live beside the process backend, in ``anypool._backends._process_sync``:
the process backend (and auto, before its choice) return them from ``sync_factory``, so this
module knows nothing of processes. The Dask backend adds its kind, Dask's distributed primitives
(``anypool._backends._dask_sync``), with ``register_sync_kind("dask", ...)`` and sets
``sync_kind = "dask"``; the Pool needs no change.
"""

from __future__ import annotations

import importlib
import queue
import struct
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

if TYPE_CHECKING:
    from ._abc import Backend

T = TypeVar("T")
#: what a worker may do with an array or buffer shared by ``pool.share``: read-only, or
#: copy-on-write (see :meth:`anypool.Pool.share`)
ShareMode = Literal["r", "c"]
SHARE_MODES: tuple[str, ...] = ("r", "c")


#: typecodes of ``pool.Value`` (those of :mod:`array`/:mod:`struct` that hold one number)
VALUE_TYPECODES = "bBhHiIlLqQfd"


def _check_typecode(typecode: object) -> str:
    if not isinstance(typecode, str) or len(typecode) != 1 or typecode not in VALUE_TYPECODES:
        raise ValueError(
            f"typecode must be one of {', '.join(repr(c) for c in VALUE_TYPECODES)} (as in "
            f"multiprocessing.Value: 'i' int, 'q' 64-bit int, 'd' float), got {typecode!r}"
        )
    return typecode


# -- Counter -----------------------------------------------------------------------------
class Counter:
    """A number that many workers add to: ``increment`` is atomic, ``value`` reads it.

    Made by :meth:`anypool.Pool.Counter`. On thread, serial and asyncio pools it lives in the
    process; on process pools in shared memory, so it can be passed to tasks as an argument
    and every worker adds to the same number.

    .. versionadded:: 0.2
    """

    __slots__ = ("_lock", "_n")

    def __init__(self, initial: int = 0) -> None:
        self._lock = threading.Lock()
        self._n = _check_int("initial", initial)

    def increment(self, n: int = 1) -> int:
        """Add ``n`` (may be negative) atomically and return the new value."""
        with self._lock:
            self._n += n
            return self._n

    @property
    def value(self) -> int:
        """The current value."""
        return self._n

    def __repr__(self) -> str:
        return f"<anypool.Counter value={self.value}>"


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return value


# -- Value (thread and asyncio kinds) ----------------------------------------------------
class LocalValue:
    """``multiprocessing.Value``'s interface for one process: ``.value`` and ``get_lock()``.

    The value is stored as the typecode says (``'i'`` wraps like a C int would not: values out
    of range raise ``struct.error``, as ``multiprocessing.Value`` raises ``OverflowError``).
    """

    def __init__(self, typecode: str, initial: Any, lock: Any) -> None:
        self._fmt = struct.Struct(_check_typecode(typecode))
        self._typecode = typecode
        self._lock = lock
        self._v = self._fmt.unpack(self._fmt.pack(initial))[0]

    @property
    def value(self) -> Any:
        """The value."""
        return self._v

    @value.setter
    def value(self, v: Any) -> None:
        self._v = self._fmt.unpack(self._fmt.pack(v))[0]

    def get_lock(self) -> Any:
        """The lock to hold around read-modify-write (``with v.get_lock(): v.value += 1``)."""
        return self._lock

    def __repr__(self) -> str:
        return f"<Value({self._typecode!r}, {self._v!r})>"


# -- the factories -----------------------------------------------------------------------
class SyncFactory:
    """Makes one pool's primitives; the base class gives the ``threading`` kinds.

    Subclasses override what differs. :meth:`close` runs at the pool's shutdown.

    .. versionadded:: 0.2
    """

    kind: ClassVar[str] = "thread"

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def Lock(self) -> Any:
        """A mutex."""
        return threading.Lock()

    def RLock(self) -> Any:
        """A re-entrant mutex."""
        return threading.RLock()

    def Semaphore(self, value: int) -> Any:
        """A semaphore."""
        return threading.Semaphore(value)

    def BoundedSemaphore(self, value: int) -> Any:
        """A semaphore that may not be released above its initial value."""
        return threading.BoundedSemaphore(value)

    def Event(self) -> Any:
        """An event."""
        return threading.Event()

    def Condition(self, lock: Any = None) -> Any:
        """A condition variable on ``lock`` (default: its own re-entrant lock)."""
        return threading.Condition(lock)

    def Barrier(
        self, parties: int, action: Callable[[], object] | None = None, timeout: float | None = None
    ) -> Any:
        """A barrier for ``parties`` waiters; ``action`` runs when they are all there."""
        act: Any = action  # the stubs want Callable[[], None]; any result is ignored
        return threading.Barrier(parties, act, timeout)

    def Queue(self, maxsize: int) -> Any:
        """A FIFO queue (``maxsize`` 0: unbounded)."""
        return queue.Queue(maxsize)

    def Value(self, typecode: str, initial: Any) -> Any:
        """One number with ``.value`` and ``get_lock()``."""
        return LocalValue(typecode, initial, threading.RLock())

    def dict(self) -> Any:
        """A dict the workers share."""
        return {}

    def list(self) -> Any:
        """A list the workers share."""
        return []

    def Counter(self, initial: int) -> Counter:
        """An atomic counter."""
        return Counter(initial)

    def share(self, obj: T, mode: ShareMode = "r") -> T:
        """The object itself: the workers share this process's memory (in either ``mode``)."""
        return obj

    def close(self, wait: bool = True) -> None:
        """Release what the pool made (nothing for in-process kinds).

        ``wait`` is the pool's ``shutdown(wait=...)``: without it, tasks may still be running
        and a kind should not pull shared objects from under them.
        """


def _aio() -> Any:
    """asyncio, imported when an asyncio kind is first made (not by every process worker)."""
    return importlib.import_module("asyncio")


class AsyncioSync(SyncFactory):
    """The ``asyncio`` kinds; they bind to the first loop that waits on them."""

    kind = "asyncio"

    def Lock(self) -> Any:
        """``asyncio.Lock``."""
        return _aio().Lock()

    def RLock(self) -> Any:
        """asyncio has no re-entrant lock; this raises with what to use instead."""
        raise NotImplementedError(
            "asyncio has no re-entrant lock (coroutines are not threads, so 'who holds it' "
            "has no meaning); use pool.Lock() and do not acquire it twice in one task"
        )

    def Semaphore(self, value: int) -> Any:
        """``asyncio.Semaphore``."""
        return _aio().Semaphore(value)

    def BoundedSemaphore(self, value: int) -> Any:
        """``asyncio.BoundedSemaphore``."""
        return _aio().BoundedSemaphore(value)

    def Event(self) -> Any:
        """``asyncio.Event``."""
        return _aio().Event()

    def Condition(self, lock: Any = None) -> Any:
        """``asyncio.Condition`` (on ``lock``, an ``asyncio.Lock``, if given)."""
        return _aio().Condition(lock)

    def Barrier(
        self, parties: int, action: Callable[[], object] | None = None, timeout: float | None = None
    ) -> Any:
        """``asyncio.Barrier``; it takes neither ``action`` nor ``timeout``."""
        if action is not None or timeout is not None:
            raise NotImplementedError(
                "asyncio.Barrier takes no action= or timeout=; on an asyncio pool run the "
                "action where `await barrier.wait()` returned 0, and bound the wait with "
                "`async with asyncio.timeout(seconds):`"
            )
        return _aio().Barrier(parties)

    def Queue(self, maxsize: int) -> Any:
        """``asyncio.Queue``."""
        return _aio().Queue(maxsize)

    def Value(self, typecode: str, initial: Any) -> Any:
        """One number; ``get_lock()`` is an ``asyncio.Lock`` (``async with v.get_lock()``)."""
        return LocalValue(typecode, initial, _aio().Lock())


#: sync kind name -> factory (a ``SyncFactory`` subclass, or any callable taking the backend);
#: ``Backend.sync_kind`` picks one
SYNC_KINDS: dict[str, Callable[[Backend], SyncFactory]] = {
    "thread": SyncFactory,
    "asyncio": AsyncioSync,
}


def register_sync_kind(name: str, factory: Callable[[Backend], SyncFactory]) -> None:
    """Add a kind of primitives (for a new backend's ``sync_kind``).

    .. versionadded:: 0.2
    """
    SYNC_KINDS[name] = factory


def kind_for(backend: Backend) -> str:
    """The kind a backend's primitives are: ``auto`` follows its choice, else processes."""
    kind = backend.sync_kind
    if kind == "auto":
        chosen = backend.chosen
        # before auto has chosen: process kinds, which also work on the threads it measures
        # with and on serial and thread pools; a later choice of threads stays correct
        kind = chosen.sync_kind if chosen is not None else "process"
    return kind
