"""The process kinds of the pool's primitives (see ``_sync``): they reach running workers.

Locks, semaphores, events, conditions and barriers are ``multiprocessing.synchronize`` types on
*named* POSIX semaphores, which pickle as their names; ``Value``, ``Counter`` and a barrier's
counters live in ``multiprocessing.shared_memory``; ``Queue``, ``dict`` and ``list`` in a
``SyncManager`` started on first use. ``share()`` puts an object in a segment once; a worker
loads it once and keeps it. Workers import this module when they unpickle one of these.
"""

from __future__ import annotations

import importlib
import mmap
import multiprocessing as mp
import os
import pickle
import secrets
import struct
import sys
import threading
from collections import OrderedDict
from multiprocessing import shared_memory
from multiprocessing import synchronize as _mps
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._exceptions import ClosedPoolError
from ._sync import Counter, SyncFactory, _check_int, _check_typecode

if TYPE_CHECKING:
    from ._abc import Backend

T = TypeVar("T")
mps: Any = _mps  # its constants (SEMAPHORE...) are not in the stubs


def _buffer(shm: shared_memory.SharedMemory) -> memoryview:
    buf = shm.buf
    assert buf is not None, "the shared memory was closed"
    return buf


def _numpy() -> Any:
    return importlib.import_module("numpy")


# -- process kinds: named semaphores -----------------------------------------------------
_SEMS: dict[str, Any] = {}  # name -> rebuilt lock, in a worker (one sem_open per name)


def _new_semlock(cls: type[Any], kind: int, value: int, maxvalue: int) -> Any:
    """A ``multiprocessing.synchronize`` lock on a named semaphore that this pool owns."""
    if sys.platform == "win32":  # pragma: no cover - the process backend forks on POSIX
        raise NotImplementedError("process-safe pool locks need POSIX named semaphores")
    _multiprocessing: Any = importlib.import_module("_multiprocessing")
    from multiprocessing import resource_tracker

    for _ in range(100):
        name = f"/anypool-{secrets.token_hex(8)}"
        try:
            sl = _multiprocessing.SemLock(kind, value, maxvalue, name, False)
        except FileExistsError:  # pragma: no cover - 64 random bits
            continue
        break
    else:  # pragma: no cover
        raise FileExistsError("cannot find a free name for a semaphore")
    resource_tracker.register(name, "semaphore")  # unlinked even if we die
    obj = object.__new__(cls)
    obj._semlock = sl
    obj._is_fork_ctx = False
    obj._make_methods()
    return obj


def _unlink_sem(name: str) -> None:
    _multiprocessing: Any = importlib.import_module("_multiprocessing")
    from multiprocessing import resource_tracker

    try:
        _multiprocessing.sem_unlink(name)
    except OSError:  # pragma: no cover - already gone
        pass
    resource_tracker.unregister(name, "semaphore")


def _rebuild_sem(cls: type[Any], kind: int, maxvalue: int, name: str) -> Any:
    obj = _SEMS.get(name)
    if obj is None:
        obj = object.__new__(cls)
        try:
            mps.SemLock.__setstate__(obj, (0, kind, maxvalue, name))
        except FileNotFoundError:
            raise _gone(cls.__name__.removeprefix("Process")) from None
        _SEMS[name] = obj
    return obj


def _gone(what: str) -> ClosedPoolError:
    return ClosedPoolError(
        f"this {what} was made by a pool that has been shut down, and its shared resources "
        "were freed with it; make primitives with the pool whose tasks use them"
    )


class _Named:
    """Pickles by semaphore name, so a running worker reopens the same semaphore."""

    _semlock: Any

    def __reduce__(self) -> tuple[Any, ...]:
        sl = self._semlock
        return (_rebuild_sem, (type(self), sl.kind, sl.maxvalue, sl.name))


class ProcessLock(_Named, _mps.Lock):
    """``multiprocessing.Lock`` that can be passed to running workers."""


class ProcessRLock(_Named, _mps.RLock):
    """``multiprocessing.RLock`` that can be passed to running workers."""


class ProcessSemaphore(_Named, _mps.Semaphore):
    """``multiprocessing.Semaphore`` that can be passed to running workers."""


class ProcessBoundedSemaphore(_Named, _mps.BoundedSemaphore):
    """``multiprocessing.BoundedSemaphore`` that can be passed to running workers."""


class ProcessCondition(_mps.Condition):
    """``multiprocessing.Condition`` whose four semaphores are named: passes to running workers."""

    def __reduce__(self) -> tuple[Any, ...]:
        me: Any = self  # the stubs lack the semaphores' attributes
        state = (me._lock, me._sleeping_count, me._woken_count, me._wait_semaphore)
        return (_rebuild_condition, (type(self), state))


def _rebuild_condition(cls: type[Any], state: tuple[Any, ...]) -> Any:
    obj = object.__new__(cls)
    obj.__setstate__(state)
    return obj


class ProcessEvent(_mps.Event):
    """``multiprocessing.Event`` on a named condition and semaphore: passes to running workers.

    (It pickles as its two parts, which pickle by name.)
    """


class _SharedInts:
    """Stands in for ``multiprocessing.heap.BufferWrapper``: memory in a shared segment.

    Mapped with mmap, not through ``SharedMemory``, whose close() fails while the barrier's
    view of it exists.
    """

    def __init__(self, name: str, size: int) -> None:
        self._name = name
        self._size = size

    def create_memoryview(self) -> memoryview:
        return memoryview(_map_segment(self._name, self._size, writable=True))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_SharedInts, (self._name, self._size))


class ProcessBarrier(_mps.Barrier):
    """``multiprocessing.Barrier`` on a named condition and shared memory: passes to running
    workers (its state is pickled by name)."""

    def __init__(self, parties: int, cond: Any, ints: _SharedInts) -> None:
        me: Any = self  # the stubs lack multiprocessing's own attributes
        me.__setstate__((parties, None, None, cond, ints))
        me._state = 0
        me._count = 0


class _NamedContext:
    """What ``multiprocessing.synchronize.Condition``/``Event`` ask their ``ctx`` for."""

    def __init__(self, factory: ProcessSync) -> None:
        self._factory = factory

    def Lock(self) -> Any:
        return self._factory.Lock()

    def RLock(self) -> Any:
        return self._factory.RLock()

    def Semaphore(self, value: int = 1) -> Any:
        return self._factory.Semaphore(value)

    def Condition(self, lock: Any = None) -> Any:
        ctx: Any = self
        return ProcessCondition(lock, ctx=ctx)


# -- process kinds: shared memory ---------------------------------------------------------
# In a worker, segments are mapped with mmap directly, not with SharedMemory: that registers
# them with the resource tracker (Python < 3.13) and its close() fails while a task still holds
# a view. An mmap stays alive as long as any view of it does.
_MAPS: dict[str, mmap.mmap] = {}  # segment name -> writable mapping, in a worker


def _map_segment(name: str, size: int, writable: bool) -> mmap.mmap:
    posixshmem: Any = importlib.import_module("_posixshmem")
    try:
        fd = posixshmem.shm_open("/" + name, os.O_RDWR if writable else os.O_RDONLY, mode=0o600)
    except FileNotFoundError:
        raise _gone("shared object") from None
    try:
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        return mmap.mmap(fd, size, prot=prot)
    finally:
        os.close(fd)


def _attach(name: str, size: int) -> memoryview:
    mm = _MAPS.get(name)
    if mm is None:
        mm = _MAPS[name] = _map_segment(name, size, writable=True)
    return memoryview(mm)


class SharedValue:
    """``multiprocessing.Value``'s interface in shared memory: passes to running workers.

    ``.value`` reads and writes under the value's lock (an ``RLock``, as in
    ``multiprocessing.Value``); hold ``get_lock()`` around read-modify-write.
    """

    def __init__(self, typecode: str, name: str, buf: memoryview, lock: Any, keep: Any) -> None:
        self._typecode = typecode
        self._fmt = struct.Struct(typecode)
        self._name = name
        self._buf = buf
        self._lock = lock
        self._keep = keep  # the parent's SharedMemory: the mapping lives as long as we do

    @property
    def value(self) -> Any:
        """The value."""
        with self._lock:
            return self._fmt.unpack_from(self._buf)[0]

    @value.setter
    def value(self, v: Any) -> None:
        with self._lock:
            self._fmt.pack_into(self._buf, 0, v)

    def get_lock(self) -> Any:
        """The lock to hold around read-modify-write (``with v.get_lock(): v.value += 1``)."""
        return self._lock

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_value, (type(self), self._typecode, self._name, self._lock))

    def __repr__(self) -> str:
        return f"<Value({self._typecode!r}, {self.value!r}) in shared memory>"


def _rebuild_value(cls: type[Any], typecode: str, name: str, lock: Any) -> Any:
    return cls(typecode, name, _attach(name, struct.calcsize(typecode)), lock, None)


class SharedCounter(Counter):
    """A :class:`Counter` in shared memory, guarded by a named semaphore."""

    __slots__ = ("_name", "_buf", "_fmt", "_keep")

    def __init__(self, name: str, buf: memoryview, lock: Any, keep: Any) -> None:
        self._name = name
        self._buf = buf
        self._fmt = struct.Struct("q")
        self._lock = lock
        self._keep = keep

    def increment(self, n: int = 1) -> int:
        """Add ``n`` (may be negative) atomically across processes; return the new value."""
        fmt, buf = self._fmt, self._buf
        with self._lock:
            v: int = fmt.unpack_from(buf)[0] + n
            fmt.pack_into(buf, 0, v)
        return v

    @property
    def value(self) -> int:
        """The current value."""
        v: int = self._fmt.unpack_from(self._buf)[0]
        return v

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_counter, (self._name, self._lock))


def _rebuild_counter(name: str, lock: Any) -> SharedCounter:
    return SharedCounter(name, _attach(name, 8), lock, None)


# -- share() -----------------------------------------------------------------------------
#: token -> the object, in a worker: loaded once per worker; the most recent few are kept
_SHARED: OrderedDict[str, Any] = OrderedDict()
SHARED_CACHE_SIZE = 8


class Shared(Generic[T]):
    """A handle for an object sent to each worker process once (see :meth:`Pool.share`).

    Pass it to tasks as an argument: in the worker it turns into the object itself, loaded
    once per worker and cached. In the parent, :attr:`value` is the original object.

    .. versionadded:: 0.2
    """

    __slots__ = ("token", "_obj", "_how", "_meta")

    def __init__(self, obj: T, name: str, how: str, meta: Any) -> None:
        #: the name of its shared-memory segment (the worker's cache key)
        self.token = name
        self._obj = obj
        self._how = how
        self._meta = meta

    @property
    def value(self) -> T:
        """The shared object (in the parent)."""
        return self._obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (_load_shared, (self.token, self._how, self._meta))

    def __repr__(self) -> str:
        return f"<anypool.Shared {type(self._obj).__name__} in {self.token}>"


def _load_shared(name: str, how: str, meta: Any) -> Any:
    obj = _SHARED.get(name)
    if obj is not None:
        _SHARED.move_to_end(name)
        return obj
    if how == "pickle":
        mm = _map_segment(name, meta, writable=False)
        try:
            obj = pickle.loads(mm)
        finally:
            mm.close()
    elif how == "bytes":
        # no copy: a read-only view of the mapping, which lives as long as the view does
        obj = memoryview(_map_segment(name, max(1, meta), writable=False))[:meta]
    else:  # "ndarray"
        np = _numpy()
        shape, dtype, nbytes = meta
        mm = _map_segment(name, max(1, nbytes), writable=False)
        obj = np.frombuffer(mm, dtype=np.dtype(dtype), count=nbytes // np.dtype(dtype).itemsize)
        obj = obj.reshape(shape)
    _SHARED[name] = obj
    while len(_SHARED) > SHARED_CACHE_SIZE:
        _SHARED.popitem(last=False)
    return obj


class ProcessSync(SyncFactory):
    """Kinds that cross into running worker processes (see the module docstring)."""

    kind = "process"

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        self._ctx: Any = getattr(backend, "_ctx", None)
        if self._ctx is None:
            from .._backends._processes import default_start_method

            self._ctx = mp.get_context(default_start_method())
        self._lock = threading.Lock()
        self._manager: Any = None
        self._sems: list[str] = []
        self._segments: list[shared_memory.SharedMemory] = []
        self._closed = False

    # named semaphores
    def _sem(self, cls: type[Any], kind: int, value: int, maxvalue: int) -> Any:
        with self._lock:
            self._check_open()
            obj = _new_semlock(cls, kind, value, maxvalue)
            self._sems.append(obj._semlock.name)
        return obj

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedPoolError("the pool was shut down; it cannot make new primitives")

    def Lock(self) -> Any:
        """``multiprocessing.synchronize.Lock`` on a named semaphore."""
        return self._sem(ProcessLock, mps.SEMAPHORE, 1, 1)

    def RLock(self) -> Any:
        """``multiprocessing.synchronize.RLock`` on a named semaphore."""
        return self._sem(ProcessRLock, mps.RECURSIVE_MUTEX, 1, 1)

    def Semaphore(self, value: int) -> Any:
        """``multiprocessing.synchronize.Semaphore`` on a named semaphore."""
        return self._sem(ProcessSemaphore, mps.SEMAPHORE, value, mps.SEM_VALUE_MAX)

    def BoundedSemaphore(self, value: int) -> Any:
        """``multiprocessing.synchronize.BoundedSemaphore`` on a named semaphore."""
        return self._sem(ProcessBoundedSemaphore, mps.SEMAPHORE, value, value)

    # shared memory
    def _segment(self, size: int) -> shared_memory.SharedMemory:
        with self._lock:
            self._check_open()
            shm = shared_memory.SharedMemory(create=True, size=max(1, size))
            self._segments.append(shm)
        return shm

    def Value(self, typecode: str, initial: Any) -> Any:
        """A :class:`SharedValue` in shared memory with a process-safe ``RLock``."""
        fmt = struct.Struct(_check_typecode(typecode))
        packed = fmt.pack(initial)  # a bad initial value fails before anything is made
        shm = self._segment(fmt.size)
        buf = _buffer(shm)
        buf[: fmt.size] = packed
        return SharedValue(typecode, shm.name, buf, self.RLock(), shm)

    def Counter(self, initial: int) -> Counter:
        """A :class:`SharedCounter`."""
        _check_int("initial", initial)
        shm = self._segment(8)
        buf = _buffer(shm)
        struct.pack_into("q", buf, 0, initial)
        return SharedCounter(shm.name, buf, self.Lock(), shm)

    def share(self, obj: T) -> T:
        """A :class:`Shared` handle: the object goes to each worker once, through shared memory.

        ``bytes``/``bytearray`` and NumPy arrays are mapped in the worker without a copy
        (read-only: a ``memoryview`` and a non-writeable array); anything else is pickled once
        here and unpickled once per worker.
        """
        how: str
        meta: Any
        if isinstance(obj, bytes | bytearray | memoryview):
            data = memoryview(obj).cast("B")
            shm = self._segment(data.nbytes)
            _buffer(shm)[: data.nbytes] = data
            how, meta = "bytes", data.nbytes
        elif _is_ndarray(obj):
            np = _numpy()
            arr = np.ascontiguousarray(obj)
            shm = self._segment(arr.nbytes)
            np.ndarray(arr.shape, dtype=arr.dtype, buffer=_buffer(shm))[...] = arr
            how, meta = "ndarray", (arr.shape, arr.dtype.str, arr.nbytes)
        else:
            try:
                blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:
                import cloudpickle

                blob = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            shm = self._segment(len(blob))
            _buffer(shm)[: len(blob)] = blob
            how, meta = "pickle", len(blob)
        handle: Any = Shared(obj, shm.name, how, meta)
        return handle  # type: ignore[no-any-return]  # stands for the object in tasks

    # the manager
    def _mgr(self) -> Any:
        with self._lock:
            self._check_open()
            if self._manager is None:
                self._manager = self._ctx.Manager()
            return self._manager

    def Event(self) -> Any:
        """``multiprocessing.synchronize.Event`` on named semaphores (no manager)."""
        ctx: Any = _NamedContext(self)
        return ProcessEvent(ctx=ctx)

    def Condition(self) -> Any:
        """``multiprocessing.synchronize.Condition`` on named semaphores (no manager)."""
        ctx: Any = _NamedContext(self)
        return ProcessCondition(ctx=ctx)

    def Barrier(self, parties: int) -> Any:
        """``multiprocessing.synchronize.Barrier`` on named semaphores and shared memory."""
        shm = self._segment(8)
        ints = _SharedInts(shm.name, 8)
        return ProcessBarrier(parties, self.Condition(), ints)

    def Queue(self, maxsize: int) -> Any:
        """A manager ``Queue`` proxy (raises ``queue.Empty``/``queue.Full`` on timeouts)."""
        return self._mgr().Queue(maxsize)

    def dict(self) -> Any:
        """A manager ``dict`` proxy."""
        return self._mgr().dict()

    def list(self) -> Any:
        """A manager ``list`` proxy."""
        return self._mgr().list()

    def close(self, wait: bool = True) -> None:
        """Stop the manager, unlink the semaphores and shared memory this pool made.

        Unlinking frees the names only: running workers and the parent keep what they opened.
        With ``wait=False`` tasks may still use the manager, so it is not stopped here: it
        stops when its last object (the pool's reference, the caller's proxies) is gone, or
        at exit.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            manager, self._manager = self._manager, None
            sems, self._sems = self._sems, []
            segments, self._segments = self._segments, []
        if manager is not None and wait:
            manager.shutdown()
        for name in sems:
            _unlink_sem(name)
        for shm in segments:
            try:
                shm.unlink()
            except FileNotFoundError:  # pragma: no cover
                pass


def _is_ndarray(obj: object) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(obj, np.ndarray) and obj.dtype.hasobject is False
