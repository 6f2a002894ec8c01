"""The Dask pool's primitives: Dask's distributed ones, named so every worker finds them.

Made by :class:`DaskSync` (the ``"dask"`` sync kind) with the pool's own ``distributed.Client``;
imported only with the Dask backend (and by Dask workers that receive a primitive), so
importing ``anypool`` never imports ``distributed``. Every primitive has a unique name and
pickles as that name: a task that receives one as an argument rebuilds it on its worker, bound
to that worker's connection to the scheduler, and the scheduler holds the state:

* ``Lock`` -> ``distributed.Lock``; ``Semaphore(n)`` and ``BoundedSemaphore(n)`` ->
  ``distributed.Semaphore(max_leases=n)``. A Dask semaphore counts leases, so it can never be
  released above ``n``: releasing more often than it was acquired (in that worker process)
  raises ``ValueError``, for ``Semaphore`` as for ``BoundedSemaphore`` (the stdlib's plain
  ``Semaphore`` would grow instead). Dask gives up a lease whose holder has not been heard
  of for ``distributed.scheduler.locks.lease-timeout`` (30 s): a task that holds the GIL
  that long inside ``with lock:`` may lose the lock.
* ``Event`` -> ``distributed.Event``; ``Queue(maxsize)`` -> ``distributed.Queue`` (bounded on
  the scheduler; items travel pickled); ``Value`` and ``Counter`` -> a ``distributed.Variable``
  guarded by a ``distributed.Lock``. Every operation is a round trip to the scheduler
  (about a millisecond): fine for coordination, slow for a counter incremented in a loop.
* Timeouts give the stdlib's results: ``acquire(timeout=...)`` and ``Event.wait`` return
  ``False``, ``Queue.get``/``put`` raise ``queue.Empty``/``queue.Full``.
* ``share(obj)`` scatters the object to one worker once; a worker that gets the handle as an
  argument fetches it on first use and keeps it (once per worker, not once per task).
* ``RLock``, ``Condition``, ``Barrier``, ``dict`` and ``list`` have no Dask counterpart: they
  raise ``NotImplementedError`` naming what to use instead.

At the pool's shutdown (once its tasks have finished) the pool's locks, semaphores, events,
queues, variables and scattered data are removed from the scheduler, and the workers drop
what they cached; on a cluster the pool started, the cluster itself goes.
"""

from __future__ import annotations

import logging
import pickle
import queue
import struct
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import cloudpickle
import distributed

from .._core._exceptions import ClosedPoolError, PicklingError
from .._core._sync import Counter, ShareMode, SyncFactory, _check_int, _check_typecode
from ._shared import Shared

if TYPE_CHECKING:
    from .._core._abc import Backend

T = TypeVar("T")
_dd: Any = distributed  # untyped: its calls are checked by the tests
_log = logging.getLogger("anypool")

#: the shortest timeout sent to the scheduler: its ``asyncio.wait_for(..., 0)`` gives up
#: before even looking at a queue with an item in it
_NOWAIT = 0.001


class _QuietTimeouts(logging.Filter):
    """Drop the scheduler's error log for a queue or variable wait that timed out.

    A Dask scheduler logs every timed-out ``queue_get``/``queue_put`` at ERROR with a
    traceback, although the caller asked for the timeout (and gets ``queue.Empty``). Installed
    in this process, so it quiets the scheduler of a pool's own LocalCluster (which runs
    here); a remote scheduler's logs are its own.
    """

    OPS = ("queue_get", "queue_put", "variable_get")

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        args: Any = record.args
        return not (
            isinstance(exc, TimeoutError)
            and str(record.msg).startswith("Exception while handling op")
            and isinstance(args, tuple)
            and bool(args)
            and args[0] in self.OPS
        )


logging.getLogger("distributed.core").addFilter(_QuietTimeouts())

# -- in a worker process: one Dask object per name (and shared objects), made on first use --
_objects: dict[str, Any] = {}
_objects_lock = threading.Lock()
_SHARED: OrderedDict[str, Any] = OrderedDict()
SHARED_CACHE_SIZE = 8
#: how long a worker looks for a shared object's variable before saying its pool closed
_GONE_AFTER = 10.0


def _cached(name: str, make: Any) -> Any:
    obj = _objects.get(name)
    if obj is None:
        with _objects_lock:
            obj = _objects.get(name)
            if obj is None:
                obj = _objects[name] = make()
    return obj


async def _drop(names: list[str]) -> None:
    """Forget a closed pool's primitives and shared objects in a worker (private)."""
    with _objects_lock:
        for name in names:
            obj = _objects.pop(name, None)
            pc = getattr(obj, "refresh_callback", None)
            if pc is not None:
                pc.stop()
            _SHARED.pop(name, None)


def _timeout(block: bool, timeout: float | None) -> float | None:
    if not block:
        return _NOWAIT
    if timeout is None or timeout < 0:
        return None
    return max(float(timeout), _NOWAIT)


# -- locks and semaphores -----------------------------------------------------------------
class DaskSemaphore:
    """A ``distributed.Semaphore`` with the stdlib's interface (see the module docstring)."""

    #: the attribute holding the Dask object (replaced when the pool shuts down)
    _inner: ClassVar[str] = "_sem"

    def __init__(self, name: str, value: int, dsem: Any = None) -> None:
        self.name = name
        self._value = value
        # in the caller: bound to the pool's client; in a worker: one per process and name
        self._sem = dsem if dsem is not None else _cached(name, self._make)

    def _make(self) -> Any:
        return _dd.Semaphore(max_leases=self._value, name=self.name)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a lease; ``False`` if ``timeout`` (or ``blocking=False``) ran out first.

        Raises:
            ValueError: ``timeout`` with ``blocking=False`` (as ``threading.Semaphore``).
        """
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        t = 0 if not blocking else (None if timeout is None else max(timeout, 0))
        return bool(self._sem.acquire(timeout=t))

    def release(self, n: int = 1) -> None:
        """Give back ``n`` leases (taken in this process).

        Raises:
            ValueError: released more often than acquired, or ``n`` < 1.
        """
        if n < 1:
            raise ValueError("n must be one or more")
        for _ in range(n):
            try:
                self._sem.release()
            except RuntimeError as exc:
                if "Released too often" not in str(exc):
                    raise
                raise ValueError(
                    f"{type(self).__name__} released too many times (a Dask semaphore cannot "
                    "be released above its initial value, nor by a process that did not "
                    "acquire it)"
                ) from None

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self._value))

    def __repr__(self) -> str:
        return f"<anypool dask {type(self).__name__} {self.name}>"


class DaskLock(DaskSemaphore):
    """A ``distributed.Lock`` with the stdlib's interface."""

    def __init__(self, name: str, value: int = 1, dsem: Any = None) -> None:
        super().__init__(name, 1, dsem)

    def _make(self) -> Any:
        return _dd.Lock(name=self.name)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:  # type: ignore[override]
        """Take the lock; ``False`` if ``timeout`` (or ``blocking=False``) ran out first.

        Raises:
            ValueError: ``timeout`` with ``blocking=False``, or a negative ``timeout`` other
                than -1 (as ``threading.Lock``).
        """
        if timeout == -1:
            return bool(self._sem.acquire(timeout=None if blocking else 0))
        if not blocking:
            raise ValueError("can't specify a timeout for a non-blocking call")
        if timeout < 0:
            raise ValueError("timeout value must be a non-negative number (or -1: no timeout)")
        return bool(self._sem.acquire(timeout=timeout))

    def release(self, n: int = 1) -> None:
        """Release the lock.

        Raises:
            RuntimeError: it was not held (in this process), as ``threading.Lock`` raises.
        """
        try:
            self._sem.release()
        except RuntimeError as exc:
            raise RuntimeError("release unlocked lock") from exc

    def locked(self) -> bool:
        """Whether someone holds the lock."""
        return bool(self._sem.locked())

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name,))


class DaskBoundedSemaphore(DaskSemaphore):
    """A ``distributed.Semaphore``; releasing it above its value raises ``ValueError``."""


# -- Event --------------------------------------------------------------------------------
class DaskEvent:
    """A ``distributed.Event`` (``set``/``clear``/``is_set``/``wait``)."""

    _inner: ClassVar[str] = "_ev"

    def __init__(self, name: str, client: Any = None) -> None:
        self.name = name
        self._ev = _dd.Event(name, client=client)

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        self._ev.set()

    def clear(self) -> None:
        """Reset the flag."""
        self._ev.clear()

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return bool(self._ev.is_set())

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set; ``False`` if ``timeout`` ran out first."""
        t = None if timeout is None else max(float(timeout), _NOWAIT)
        return bool(self._ev.wait(t))

    def __reduce__(self) -> tuple[Any, ...]:
        return (DaskEvent, (self.name,))

    def __repr__(self) -> str:
        return f"<anypool dask Event {self.name} >"


# -- Queue --------------------------------------------------------------------------------
class _ExistingQueue(distributed.Queue):
    """A handle on a queue the pool made (creating it again would count one more owner)."""

    def _maybe_start(self) -> None:
        pass


class DaskQueue:
    """A ``distributed.Queue`` with ``queue.Queue``'s interface; items travel pickled."""

    _inner: ClassVar[str] = "_q"

    def __init__(self, name: str, maxsize: int, dq: Any = None) -> None:
        self.name = name
        self.maxsize = maxsize
        self._q = dq if dq is not None else _ExistingQueue(name, None, maxsize)  # type: ignore[no-untyped-call]

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put ``item``; with a ``maxsize``, wait for room (``queue.Full`` after ``timeout``)."""
        try:
            data = cloudpickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise PicklingError(f"cannot put {item!r} on a Dask queue: {exc}") from exc
        try:
            self._q.put(data, timeout=_timeout(block, timeout))
        except TimeoutError:
            raise queue.Full from None

    def put_nowait(self, item: Any) -> None:
        """``put(item, block=False)``."""
        self.put(item, block=False)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Take the next item (``queue.Empty`` after ``timeout``)."""
        try:
            data = self._q.get(timeout=_timeout(block, timeout))
        except TimeoutError:
            raise queue.Empty from None
        return pickle.loads(data)

    def get_nowait(self) -> Any:
        """``get(block=False)``."""
        return self.get(block=False)

    def qsize(self) -> int:
        """How many items are queued now."""
        return int(self._q.qsize())

    def empty(self) -> bool:
        """Whether the queue is empty now."""
        return self.qsize() == 0

    def full(self) -> bool:
        """Whether the queue is at its ``maxsize`` now."""
        return 0 < self.maxsize <= self.qsize()

    def __reduce__(self) -> tuple[Any, ...]:
        return (DaskQueue, (self.name, self.maxsize))

    def __repr__(self) -> str:
        return f"<anypool dask Queue {self.name} maxsize={self.maxsize}>"


# -- Value and Counter ----------------------------------------------------------------------
class DaskValue:
    """``multiprocessing.Value``'s interface on a ``distributed.Variable``.

    ``.value`` reads or writes the number on the scheduler; ``get_lock()`` is a
    :class:`DaskLock` (not re-entrant) to hold around read-modify-write.
    """

    _inner: ClassVar[str] = "_var"

    def __init__(self, typecode: str, name: str, lock: DaskLock, client: Any = None) -> None:
        self._typecode = typecode
        self._fmt = struct.Struct(typecode)
        self.name = name
        self._lock = lock
        self._var = _dd.Variable(name, client=client)
        self._final: Any = None  # its last value, read as its pool shut down

    @property
    def value(self) -> Any:
        """The value (after the pool shut down: its last value, in the process that made it)."""
        if self._final is not None:
            return self._final
        return self._var.get()

    @value.setter
    def value(self, v: Any) -> None:
        self._var.set(self._fmt.unpack(self._fmt.pack(v))[0])

    def get_lock(self) -> DaskLock:
        """The lock to hold around read-modify-write (``with v.get_lock(): v.value += 1``)."""
        return self._lock

    def __reduce__(self) -> tuple[Any, ...]:
        return (DaskValue, (self._typecode, self.name, self._lock))

    def __repr__(self) -> str:
        return f"<anypool dask Value({self._typecode!r}) {self.name}>"


class DaskCounter(Counter):
    """A :class:`Counter` on a ``distributed.Variable``: each increment takes the lock, reads
    and writes (four scheduler round trips)."""

    __slots__ = ("_var", "_name", "_final")
    _inner: ClassVar[str] = "_var"

    def __init__(self, name: str, lock: DaskLock, client: Any = None) -> None:
        self._name = name
        self._lock = lock  # type: ignore[assignment]  # a DaskLock, not a threading.Lock
        self._var = _dd.Variable(name, client=client)
        self._final: int | None = None  # its last value, read as its pool shut down

    def increment(self, n: int = 1) -> int:
        """Add ``n`` (may be negative) atomically across workers; return the new value."""
        with self._lock:
            v = int(self._var.get()) + n
            self._var.set(v)
        return v

    @property
    def value(self) -> int:
        """The current value (after the pool shut down: its last value)."""
        if self._final is not None:
            return self._final
        return int(self._var.get())

    def __reduce__(self) -> tuple[Any, ...]:
        return (DaskCounter, (self._name, self._lock))


# -- share() --------------------------------------------------------------------------------
class DaskShared(Shared[T]):
    """A :class:`~anypool.Shared` handle for data scattered to the cluster once."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_load_shared, (self.token, self._meta))

    def __repr__(self) -> str:
        return f"<anypool.Shared {type(self._obj).__name__} as Dask key {self._meta}>"


def _load_shared(token: str, key: str) -> Any:
    """In a worker: the scattered object, fetched on first use and kept (private).

    The pool keeps the scattered future in a ``distributed.Variable`` named ``token``: a
    future taken from a Variable is one the worker's client may wait on (a ``Future`` made
    from the bare key is never told that the data is there).
    """
    """In a worker: the scattered object, fetched on first use and kept (private)."""
    with _objects_lock:
        if token in _SHARED:
            _SHARED.move_to_end(token)
            return _SHARED[token]
    worker = _dd.get_worker()
    try:
        obj = worker.data[key]  # this worker holds it
    except KeyError:
        try:
            fut = _dd.Variable(token).get(timeout=_GONE_AFTER)
        except TimeoutError:
            raise ClosedPoolError(
                f"the object shared as {key!r} is gone from the cluster: its pool was shut "
                "down (use a handle only while its pool is open)"
            ) from None
        try:
            obj = fut.result()
        finally:
            fut.release()
    with _objects_lock:
        _SHARED[token] = obj
        while len(_SHARED) > SHARED_CACHE_SIZE:
            _SHARED.popitem(last=False)
    return obj


# -- the factory ----------------------------------------------------------------------------
class _Gone:
    """Stands in, in the caller, for the Dask object of a primitive whose pool shut down.

    The pool removed the object from the scheduler (or the scheduler went with the pool's
    own cluster), so any use raises a clear :class:`~anypool.ClosedPoolError` instead of
    Dask's "IOLoop is closed" or a silently re-created object.
    """

    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, attr: str) -> Any:
        raise ClosedPoolError(
            f"this {self._what} belongs to a Dask pool that was shut down, and its state was "
            "removed from the scheduler; use primitives only while their pool is open (a "
            "Value or Counter still reads its last value)"
        )


def _unsupported(what: str, instead: str) -> NotImplementedError:
    return NotImplementedError(f"Dask has no distributed {what}; on backend='dask' {instead}")


class DaskSync(SyncFactory):
    """The ``"dask"`` kind: Dask's distributed primitives on the pool's client."""

    kind = "dask"

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        self._client: Any = backend.client  # type: ignore[attr-defined]
        self._prefix = f"anypool-{uuid.uuid4().hex[:12]}"
        self._n = 0
        self._lock = threading.Lock()
        self._made: list[Any] = []  # what to remove from the scheduler at shutdown
        self._tokens: list[str] = []  # share() handles, cached by the workers
        self._handed_out: list[Any] = []  # the caller-side primitives, closed at shutdown
        self._released = False
        backend.add_close_hook(self._release)  # type: ignore[attr-defined]

    def _name(self, kind: str) -> str:
        with self._lock:
            if self._released:
                raise ClosedPoolError("cannot make a primitive on a pool that was shut down")
            self._n += 1
            return f"{self._prefix}-{kind}-{self._n}"

    def _keep(self, obj: T) -> T:
        with self._lock:
            self._made.append(obj)
        return obj

    def _hand_out(self, obj: T) -> T:
        with self._lock:
            self._handed_out.append(obj)
        return obj

    def _close_handed_out(self) -> None:
        with self._lock:
            handed, self._handed_out = self._handed_out, []
        for obj in handed:
            setattr(obj, obj._inner, _Gone(type(obj).__name__[4:]))

    def _dask_lock(self, name: str) -> DaskLock:
        c = self._client
        dlock = self._keep(_dd.Lock(name=name, scheduler_rpc=c.scheduler, loop=c.loop))
        dlock.register()
        return self._hand_out(DaskLock(name, 1, dlock))

    def _dask_sem(self, cls: type[DaskSemaphore], value: int) -> DaskSemaphore:
        name = self._name(cls.__name__[4:].lower())
        c = self._client
        dsem = self._keep(
            _dd.Semaphore(max_leases=value, name=name, scheduler_rpc=c.scheduler, loop=c.loop)
        )
        dsem.register()
        return self._hand_out(cls(name, value, dsem))

    def Lock(self) -> Any:
        """A :class:`DaskLock` (``distributed.Lock``)."""
        return self._dask_lock(self._name("lock"))

    def RLock(self) -> Any:
        """Dask has no re-entrant lock: raises with what to use instead."""
        raise _unsupported("re-entrant lock", "use pool.Lock() and do not take it twice")

    def Semaphore(self, value: int) -> Any:
        """A :class:`DaskSemaphore` (``distributed.Semaphore(max_leases=value)``)."""
        if value < 1:
            raise ValueError(f"a Dask semaphore needs a value of at least 1, got {value}")
        return self._dask_sem(DaskSemaphore, value)

    def BoundedSemaphore(self, value: int) -> Any:
        """A :class:`DaskBoundedSemaphore`: over-release raises ``ValueError``."""
        if value < 1:
            raise ValueError(f"a Dask semaphore needs a value of at least 1, got {value}")
        return self._dask_sem(DaskBoundedSemaphore, value)

    def Event(self) -> Any:
        """A :class:`DaskEvent` (``distributed.Event``)."""
        ev = DaskEvent(self._name("event"), client=self._client)
        return self._hand_out(self._keep(ev))

    def Condition(self, lock: Any = None) -> Any:
        """Dask has no condition variable: raises with what to use instead."""
        raise _unsupported(
            "condition variable",
            "wait on a pool.Event() (set by whoever changes the state) or hand items over "
            "with a pool.Queue()",
        )

    def Barrier(
        self, parties: int, action: Callable[[], object] | None = None, timeout: float | None = None
    ) -> Any:
        """Dask has no barrier: raises with what to use instead."""
        raise _unsupported(
            "barrier",
            "have each party put on a pool.Queue() and one task set a pool.Event() when all "
            "have arrived, or run the phases as separate maps",
        )

    def Queue(self, maxsize: int) -> Any:
        """A :class:`DaskQueue` (``distributed.Queue(maxsize=maxsize)``)."""
        name = self._name("queue")
        dq = self._keep(_dd.Queue(name, client=self._client, maxsize=maxsize))
        return self._hand_out(DaskQueue(name, maxsize, dq))

    def Value(self, typecode: str, initial: Any) -> Any:
        """A :class:`DaskValue`: a ``distributed.Variable`` and a ``distributed.Lock``."""
        _check_typecode(typecode)
        fmt = struct.Struct(typecode)
        v0 = fmt.unpack(fmt.pack(initial))[0]
        lock = self.Lock()
        name = self._name("value")
        var = self._keep(_dd.Variable(name, client=self._client))
        var.set(v0)
        return self._hand_out(self._keep(DaskValue(typecode, name, lock, client=self._client)))

    def Counter(self, initial: int) -> Counter:
        """A :class:`DaskCounter` (correct across workers; four round trips per increment)."""
        _check_int("initial", initial)
        lock = self.Lock()
        name = self._name("counter")
        var = self._keep(_dd.Variable(name, client=self._client))
        var.set(initial)
        return self._hand_out(self._keep(DaskCounter(name, lock, client=self._client)))

    def dict(self) -> Any:
        """Dask has no shared dict: raises with what to use instead."""
        raise _unsupported(
            "dict", "return results from the tasks, or pass items through a pool.Queue()"
        )

    def list(self) -> Any:
        """Dask has no shared list: raises with what to use instead."""
        raise _unsupported(
            "list", "return results from the tasks, or pass items through a pool.Queue()"
        )

    def share(self, obj: T, mode: ShareMode = "r") -> T:
        """A :class:`DaskShared` handle: scattered once, fetched once by each worker (each
        worker has its own copy, in either ``mode``)."""
        token = self._name("shared")
        with self._lock:
            self._tokens.append(token)
        [fut] = self._client.scatter([obj], hash=False)
        var = self._keep(_dd.Variable(token, client=self._client))
        var.set(fut)  # deleting the variable at shutdown releases the data too
        self._keep(fut)
        handle: Any = DaskShared(obj, token, "dask", fut.key)
        return handle  # type: ignore[no-any-return]

    def _release(self) -> None:
        """Remove the pool's objects from the scheduler (the backend calls this before it
        closes its client, once the pool's tasks have finished)."""
        with self._lock:
            if self._released:
                return
            self._released = True
            made, self._made = self._made, []
        try:
            self._remove(made)
        finally:
            self._close_handed_out()

    def _remove(self, made: Sequence[Any]) -> None:
        client = self._client
        if getattr(client, "status", None) != "running":
            return
        for obj in made:  # first: values and counters still read after the pool closed
            if isinstance(obj, DaskValue | DaskCounter):
                try:
                    obj._final = obj._var.get(timeout=_GONE_AFTER)
                except Exception:  # pragma: no cover - the cluster went away meanwhile
                    _log.debug("anypool: could not read %r from the Dask scheduler", obj)
        for obj in made:
            try:
                if isinstance(obj, _dd.Semaphore):  # Lock too
                    obj.close()
                elif isinstance(obj, DaskEvent):
                    obj.clear()  # an event that is clear and waited on by nobody is deleted
                elif isinstance(obj, _dd.Queue):
                    obj.close()
                elif isinstance(obj, _dd.Variable):
                    obj.delete()  # and the future it holds
                elif isinstance(obj, _dd.Future):
                    obj.release()
            except Exception:  # pragma: no cover - the cluster went away meanwhile
                _log.debug("anypool: could not remove %r from the Dask scheduler", obj)
        names = [getattr(o, "name", None) for o in made] + self._tokens
        try:
            client.run(_drop, [n for n in names if n], wait=False)
        except Exception:  # pragma: no cover
            pass

    def close(self, wait: bool = True) -> None:
        """Nothing more: the backend removed (or will remove, once its tasks are done) the
        pool's objects before closing its client."""
