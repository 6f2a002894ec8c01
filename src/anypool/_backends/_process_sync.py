"""The process kinds of the pool's primitives (see ``_sync``): they reach running workers.

Locks, semaphores, events, conditions and barriers have ``threading``'s interface (signatures,
exceptions) on *named* POSIX semaphores, which pickle as their names; ``Value``, ``Counter`` and
the counts of a condition, event or barrier live in ``multiprocessing.shared_memory``;
``Queue``, ``dict`` and ``list`` in a ``SyncManager`` started on first use. ``share()`` puts an
object in a segment once; a worker loads it once and keeps it. Workers import this module when
they unpickle one of these.
"""

from __future__ import annotations

import functools
import importlib
import mmap
import multiprocessing as mp
import os
import secrets
import struct
import sys
import threading
import time
import weakref
from _thread import TIMEOUT_MAX
from collections.abc import Callable
from multiprocessing import shared_memory
from multiprocessing import synchronize as _mps
from typing import TYPE_CHECKING, Any, TypeVar

from .._core import _pickling
from .._core._exceptions import ClosedPoolError
from .._core._sync import Counter, ShareMode, SyncFactory, _check_int, _check_typecode
from ._shared import _INHERITED, Shared, _gone, _map_segment

if TYPE_CHECKING:
    from .._core._abc import Backend

T = TypeVar("T")
mps: Any = _mps  # its constants (SEMAPHORE...) are not in the stubs


def _buffer(shm: shared_memory.SharedMemory) -> memoryview:
    buf = shm.buf
    assert buf is not None, "the shared memory was closed"
    return buf


def _numpy() -> Any:
    return importlib.import_module("numpy")


# -- process kinds: named semaphores -----------------------------------------------------
# The locks wrap ``_multiprocessing.SemLock`` (the C type under ``multiprocessing.Lock``) on a
# *named* POSIX semaphore, so they pickle as the name and a running worker reopens it. The
# Python layer adds what ``multiprocessing`` lacks: ``threading``'s signatures, its argument
# checks and its exception types (``RuntimeError`` for a lock released by a non-owner).
_SEMLOCKS: dict[str, Any] = {}  # name -> SemLock, in a process that unpickled one
_SEMS: dict[str, Any] = {}  # name -> rebuilt Lock/RLock/Semaphore, in such a process


def _c() -> Any:
    return importlib.import_module("_multiprocessing")


def _new_semlock(kind: int, value: int, maxvalue: int) -> Any:
    """A ``SemLock`` on a new named semaphore (registered to be unlinked if we die)."""
    if sys.platform == "win32":  # pragma: no cover - the process backend forks on POSIX
        raise NotImplementedError("process-safe pool locks need POSIX named semaphores")
    from multiprocessing import resource_tracker

    for _ in range(100):
        name = f"/anypool-{secrets.token_hex(8)}"
        try:
            sl = _c().SemLock(kind, value, maxvalue, name, False)
        except FileExistsError:  # pragma: no cover - 64 random bits
            continue
        break
    else:  # pragma: no cover
        raise FileExistsError("cannot find a free name for a semaphore")
    resource_tracker.register(name, "semaphore")  # unlinked even if we die
    return sl


def _unlink_sem(name: str) -> None:
    from multiprocessing import resource_tracker

    try:
        _c().sem_unlink(name)
    except OSError:  # pragma: no cover - already gone
        pass
    resource_tracker.unregister(name, "semaphore")


def _open_semlock(kind: int, maxvalue: int, name: str, what: str) -> Any:
    """The process's one ``SemLock`` for ``name`` (an RLock's owner is tracked per object)."""
    sl = _SEMLOCKS.get(name)
    if sl is None:
        try:
            sl = _c().SemLock._rebuild(0, kind, maxvalue, name)
        except FileNotFoundError:
            raise _gone(what) from None
        sl = _SEMLOCKS.setdefault(name, sl)
    return sl


def _rebuild_sem(cls: type[Any], kind: int, maxvalue: int, name: str) -> Any:
    obj = _SEMS.get(name)
    if obj is None:
        sl = _open_semlock(kind, maxvalue, name, cls.__name__.removeprefix("Process"))
        obj = _SEMS.setdefault(name, cls(sl))
    return obj


def _lock_timeout(blocking: bool, timeout: float) -> float:
    """``threading.Lock.acquire``'s checks of a timeout other than -1; the timeout to use."""
    if not blocking:
        raise ValueError("can't specify a timeout for a non-blocking call")
    if timeout < 0:
        raise ValueError("timeout value must be a non-negative number (or -1: no timeout)")
    if timeout > TIMEOUT_MAX:
        raise OverflowError("timeout value is too large (at most threading.TIMEOUT_MAX)")
    return timeout


class _SemPrimitive:
    """Holds a ``SemLock``; pickles as its name, so a running worker reopens the semaphore."""

    _semlock: Any

    def __init__(self, semlock: Any) -> None:
        self._semlock = semlock

    def __reduce__(self) -> tuple[Any, ...]:
        sl = self._semlock
        return (_rebuild_sem, (type(self), sl.kind, sl.maxvalue, sl.name))


class _LockPrimitive(_SemPrimitive):
    """``acquire`` with the lock types' arguments (``timeout=-1``: wait for ever)."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock (an ``RLock``: again, if this thread holds it); ``False`` if
        ``blocking=False`` or ``timeout`` s ran out first."""
        if timeout == -1:
            return bool(self._semlock.acquire(blocking))
        return bool(self._semlock.acquire(True, _lock_timeout(blocking, timeout)))


class ProcessLock(_LockPrimitive):
    """A lock that works across processes with ``threading.Lock``'s interface.

    Any thread of any process may release it (as ``threading.Lock``); releasing it while
    unlocked raises ``RuntimeError``.
    """

    def release(self) -> None:
        """Release the lock.

        Raises:
            RuntimeError: it was not locked.
        """
        try:
            self._semlock.release()
        except ValueError:
            raise RuntimeError("release unlocked lock") from None

    def locked(self) -> bool:
        """Whether the lock is held (by anyone)."""
        return bool(self._semlock._is_zero())

    def __enter__(self) -> bool:
        return bool(self._semlock.acquire())

    def __exit__(self, *exc: object) -> None:
        try:
            self._semlock.release()
        except ValueError:
            raise RuntimeError("release unlocked lock") from None

    def __repr__(self) -> str:
        state = "locked" if self.locked() else "unlocked"
        return f"<{state} anypool process Lock object {self._semlock.name} at {id(self):#x}>"


class ProcessRLock(_LockPrimitive):
    """A re-entrant lock that works across processes with ``threading.RLock``'s interface.

    The owner is a thread of one process; only it may release the lock (``RuntimeError``
    otherwise, as ``threading.RLock``, where ``multiprocessing.RLock`` raises
    ``AssertionError``).
    """

    def release(self) -> None:
        """Release the lock once.

        Raises:
            RuntimeError: this thread does not hold it.
        """
        try:
            self._semlock.release()
        except AssertionError:
            raise RuntimeError("cannot release un-acquired lock") from None

    def __enter__(self) -> bool:
        return bool(self._semlock.acquire())

    def __exit__(self, *exc: object) -> None:
        try:
            self._semlock.release()
        except AssertionError:
            raise RuntimeError("cannot release un-acquired lock") from None

    def __repr__(self) -> str:
        sl = self._semlock
        state = "locked" if sl._is_zero() else "unlocked"
        mine = sl._count() if sl._is_mine() else 0
        return (
            f"<{state} anypool process RLock object {sl.name} count_here={mine} at {id(self):#x}>"
        )


def _value(sl: Any) -> int:
    """A semaphore's value; 0 where the platform cannot tell (macOS has no sem_getvalue)."""
    try:
        return int(sl._get_value())
    except NotImplementedError:  # pragma: no cover - macOS
        return 0


class ProcessSemaphore(_SemPrimitive):
    """A semaphore that works across processes with ``threading.Semaphore``'s interface."""

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take one; ``False`` if ``blocking=False`` or ``timeout`` s ran out first."""
        if timeout is None:
            return bool(self._semlock.acquire(blocking))
        if not blocking:
            raise ValueError("can't specify timeout for non-blocking acquire")
        if timeout > TIMEOUT_MAX:
            raise OverflowError("timeout value is too large (at most threading.TIMEOUT_MAX)")
        return bool(self._semlock.acquire(True, timeout))

    def release(self, n: int = 1) -> None:
        """Give back ``n`` (waking up to ``n`` waiters)."""
        if n < 1:
            raise ValueError("n must be one or more")
        release = self._semlock.release
        for _ in range(n):
            release()

    def __enter__(self) -> bool:
        return bool(self._semlock.acquire())

    def __exit__(self, *exc: object) -> None:
        self._semlock.release()

    def __repr__(self) -> str:
        sl = self._semlock
        return (
            f"<anypool process {type(self).__name__.removeprefix('Process')} {sl.name} at "
            f"{id(self):#x}: value={_value(sl)}>"
        )


class ProcessBoundedSemaphore(ProcessSemaphore):
    """A semaphore that raises ``ValueError`` when released above its initial value."""

    def release(self, n: int = 1) -> None:
        """Give back ``n``.

        Raises:
            ValueError: that would take it above its initial value.
        """
        if n < 1:
            raise ValueError("n must be one or more")
        sl = self._semlock
        if _value(sl) + n > sl.maxvalue:
            raise ValueError("Semaphore released too many times")
        try:
            for _ in range(n):
                sl.release()
        except ValueError:  # another process released meanwhile
            raise ValueError("Semaphore released too many times") from None


# -- process kinds: condition, event, barrier ---------------------------------------------
# Their state is a few int64s in a shared-memory segment, guarded by the condition's lock.
# The condition wakes its sleepers with three semaphores: ``sem`` (wake-up tokens), ``ack``
# (posted by every sleeper as it leaves its wait, woken or timed out) and ``woke`` (posted by
# the woken ones). ints[0] counts the sleepers that have not yet left. notify(n) runs with
# the lock held, so no new sleeper can come in meanwhile: it counts off those that left since
# the last notify (timed out), posts k = min(n, sleepers) tokens, then waits for leavers until
# k of them were woken or none is left asleep, and takes back the tokens nobody could take.
# So a notify goes to sleepers that were there (a later waiter cannot steal it), and a
# sleeper that times out as it is chosen does not swallow the wake-up (its token goes to
# another sleeper): ``multiprocessing.Condition`` can lose that wake-up.
# A sleeper whose process dies never leaves: each sleeper also writes its pid in a slot, and a
# notify that has waited a while for leavers counts off the sleepers whose process is gone
# (all but one that dies in the instant between marking its slot "leaving" and posting ack).
_SLOTS = 3  # ints[3:]: (pid, state) per sleeper; ints[1:3] are the event's or barrier's
_NSLOTS = 32  # sleepers tracked at once (more still work: they are just not checked)
_COND_INTS = _SLOTS + 2 * _NSLOTS
_ASLEEP, _LEAVING = 1, 2
_REAP_AFTER = 1.0  # seconds a notify waits for a leaver before it looks for dead sleepers


def _dead(pid: int) -> bool:
    """Whether process ``pid`` has exited (a zombie counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # pragma: no cover - another user's: alive
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):  # pragma: no cover - no /proc (not Linux)
        return False


def _int_view(name: str, n: int, cached: bool) -> memoryview:
    if cached:  # a worker: one mapping per segment
        return _attach(name, 8 * n).cast("q")
    return memoryview(_map_segment(name, 8 * n, writable=True)).cast("q")


class _LockOps:
    """How a condition checks, fully releases and restores the lock it was given."""

    is_owned: Callable[[], bool]
    release_save: Callable[[], Any]
    acquire_restore: Callable[[Any], None]

    def __init__(self, lock: Any) -> None:
        sl: Any = getattr(lock, "_semlock", None)
        if isinstance(lock, ProcessRLock):
            self.is_owned = sl._is_mine
            self.release_save = self._release_rlock
            self.acquire_restore = self._acquire_rlock
        elif hasattr(lock, "_release_save"):  # threading.RLock
            self.is_owned = lock._is_owned
            self.release_save = lock._release_save
            self.acquire_restore = lock._acquire_restore
        else:  # a plain lock: held means owned (as threading.Condition assumes)
            self.is_owned = self._held
            self.release_save = self._release_once
            self.acquire_restore = self._acquire_once
        self._lock = lock
        self._sl: Any = sl

    def _held(self) -> bool:
        if self._lock.acquire(False):
            self._lock.release()
            return False
        return True

    def _release_once(self) -> Any:
        self._lock.release()

    def _acquire_once(self, saved: Any) -> None:
        self._lock.acquire()

    def _release_rlock(self) -> Any:
        sl = self._sl
        n = sl._count()
        for _ in range(n):
            sl.release()
        return n

    def _acquire_rlock(self, n: Any) -> None:
        sl = self._sl
        for _ in range(n):
            sl.acquire()


class ProcessCondition:
    """A condition variable that works across processes with ``threading.Condition``'s
    interface (see the comment above for how it wakes its sleepers)."""

    def __init__(
        self, lock: Any, sems: tuple[Any, Any, Any], segment: str, nints: int, ints: memoryview
    ) -> None:
        self._lock = lock
        self._ops = _LockOps(lock)
        self._sems = sems  # (tokens, ack, woke)
        self._segment = segment
        self._nints = nints
        self._ints = ints  # [0]: sleepers that have not left their wait yet
        self.acquire = lock.acquire
        self.release = lock.release

    def __enter__(self) -> bool:
        return bool(self._lock.__enter__())

    def __exit__(self, *exc: object) -> None:
        self._lock.__exit__(*exc)

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, sleep until notified or ``timeout`` s passed, retake the lock.

        Returns ``False`` if the timeout ran out.

        Raises:
            RuntimeError: the lock is not held.
        """
        ops = self._ops
        if not ops.is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        if timeout is not None and timeout > TIMEOUT_MAX:
            raise OverflowError("timeout value is too large (at most threading.TIMEOUT_MAX)")
        tokens, ack, woke = self._sems
        ints = self._ints
        ints[0] += 1
        slot = self._take_slot()
        saved = ops.release_save()
        woken = False
        try:
            if timeout is None:
                woken = tokens.acquire()
            elif timeout > 0:
                woken = tokens.acquire(True, timeout)
            else:
                woken = tokens.acquire(False)
        finally:
            if slot:
                ints[slot + 1] = _LEAVING  # its own slot: no lock needed
            if woken:
                woke.release()
            ack.release()
            ops.acquire_restore(saved)
            if slot:
                ints[slot] = ints[slot + 1] = 0
        return bool(woken)

    def _take_slot(self) -> int:
        """A free (pid, state) slot for this sleeper, marked asleep; 0 if all are taken."""
        ints = self._ints
        for i in range(_SLOTS, _COND_INTS, 2):
            if ints[i] == 0:
                ints[i] = os.getpid()
                ints[i + 1] = _ASLEEP
                return i
        return 0  # pragma: no cover - more than _NSLOTS sleepers at once

    def _count_off_the_dead(self) -> int:
        """Free the slots of sleepers whose process is gone; how many there were."""
        ints, n = self._ints, 0
        for i in range(_SLOTS, _COND_INTS, 2):
            if ints[i + 1] == _ASLEEP and _dead(ints[i]):
                ints[i] = ints[i + 1] = 0
                n += 1
        return n

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        """Wait until ``predicate()`` is true (checked with the lock held) or ``timeout`` s
        passed; return the last value of ``predicate()``."""
        result = predicate()
        if result:
            return result
        deadline = None if timeout is None else time.monotonic() + timeout
        while not result:
            if deadline is None:
                self.wait()
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.wait(left)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` of the waiters.

        Raises:
            RuntimeError: the lock is not held.
        """
        if not self._ops.is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        tokens, ack, woke = self._sems
        ints = self._ints
        while ack.acquire(False):  # sleepers that left (timed out) since the last notify
            ints[0] -= 1
        while woke.acquire(False):  # pragma: no cover - counted by the notify that woke them
            pass
        k = min(n, ints[0])
        if k <= 0:
            return
        for _ in range(k):
            tokens.release()
        woken = 0
        while woken < k and ints[0] > 0:
            if not ack.acquire(True, _REAP_AFTER):  # the next sleeper to leave
                ints[0] -= self._count_off_the_dead()  # or those that never will
                continue
            ints[0] -= 1
            while woke.acquire(False):
                woken += 1
        while woken < k and tokens.acquire(False):  # nobody left asleep to take them
            woken += 1

    def notify_all(self) -> None:
        """Wake all the waiters.

        Raises:
            RuntimeError: the lock is not held.
        """
        self.notify(sys.maxsize)

    def __reduce__(self) -> tuple[Any, ...]:
        names = tuple(sem.name for sem in self._sems)
        return (_rebuild_condition, (self._lock, names, self._segment, self._nints))

    def __repr__(self) -> str:
        return f"<anypool process Condition({self._lock!r}), {self._ints[0]} waiting>"


def _rebuild_condition(
    lock: Any, names: tuple[str, str, str], segment: str, nints: int
) -> ProcessCondition:
    sems = tuple(
        _open_semlock(mps.SEMAPHORE, mps.SEM_VALUE_MAX, name, "Condition") for name in names
    )
    ints = _int_view(segment, nints, cached=True)
    return ProcessCondition(lock, sems, segment, nints, ints)


class ProcessEvent:
    """An event that works across processes with ``threading.Event``'s interface.

    A waiter woken by ``set()`` returns ``True`` even if ``clear()`` follows at once
    (``multiprocessing.Event`` may return ``False`` then: CPython issue 13502): ``set()``
    also bumps a generation number, and a waiter returns whether it changed.
    """

    def __init__(self, cond: ProcessCondition) -> None:
        self._cond = cond
        self._ints = cond._ints  # [1]: the flag, [2]: how many times set() ran

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._ints[1] != 0

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        with self._cond:
            ints = self._ints
            ints[1] = 1
            ints[2] += 1
            self._cond.notify_all()

    def clear(self) -> None:
        """Reset the flag."""
        with self._cond:
            self._ints[1] = 0

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set; ``False`` if ``timeout`` s ran out first."""
        ints = self._ints
        if ints[1]:
            return True
        with self._cond:
            if ints[1]:
                return True
            gen = ints[2]
            self._cond.wait_for(lambda: ints[2] != gen, timeout)
            return ints[2] != gen

    def __reduce__(self) -> tuple[Any, ...]:
        return (ProcessEvent, (self._cond,))

    def __repr__(self) -> str:
        return f"<anypool process Event at {id(self):#x}: {'set' if self.is_set() else 'unset'}>"


_FILLING, _DRAINING, _RESETTING, _BROKEN = 0, 1, -1, -2


class ProcessBarrier:
    """A barrier that works across processes with ``threading.Barrier``'s interface.

    ``action`` runs in the process and thread that arrives last (pickled with the barrier
    when it is passed to a task); ``timeout`` is the default for :meth:`wait`.
    """

    def __init__(
        self,
        parties: int,
        action: Callable[[], object] | None,
        timeout: float | None,
        cond: ProcessCondition,
    ) -> None:
        self._parties = parties
        self._action = action
        self._timeout = timeout
        self._cond = cond
        self._ints = cond._ints  # [1]: the state, [2]: how many are in wait()

    def wait(self, timeout: float | None = None) -> int:
        """Wait until all parties wait; return this one's arrival index (0 .. parties-1).

        Raises:
            threading.BrokenBarrierError: the barrier was broken (by :meth:`abort`, a
                timeout, a failed action) or reset while waiting.
        """
        if timeout is None:
            timeout = self._timeout
        ints, cond = self._ints, self._cond
        with cond:
            while ints[1] in (_DRAINING, _RESETTING):  # the previous round is leaving
                cond.wait()
            if ints[1] < 0:
                raise threading.BrokenBarrierError
            index = ints[2]
            ints[2] += 1
            try:
                if index + 1 == self._parties:
                    self._trip()
                else:
                    if not cond.wait_for(lambda: ints[1] != _FILLING, timeout):
                        self._break()
                        raise threading.BrokenBarrierError
                    if ints[1] < 0:
                        raise threading.BrokenBarrierError
                return index
            finally:
                ints[2] -= 1
                if ints[2] == 0 and ints[1] in (_DRAINING, _RESETTING):
                    ints[1] = _FILLING
                    cond.notify_all()

    def _trip(self) -> None:
        try:
            if self._action is not None:
                self._action()
            self._ints[1] = _DRAINING
            self._cond.notify_all()
        except BaseException:
            self._break()
            raise

    def _break(self) -> None:
        self._ints[1] = _BROKEN
        self._cond.notify_all()

    def reset(self) -> None:
        """Back to the empty state; those waiting get ``BrokenBarrierError``."""
        with self._cond:
            ints = self._ints
            if ints[2] > 0:
                if ints[1] in (_FILLING, _BROKEN):
                    ints[1] = _RESETTING  # the last to leave sets it back to filling
            else:
                ints[1] = _FILLING
            self._cond.notify_all()

    def abort(self) -> None:
        """Break the barrier: current and future waits raise ``BrokenBarrierError``."""
        with self._cond:
            self._break()

    @property
    def parties(self) -> int:
        """How many must wait for the barrier to let them through."""
        return self._parties

    @property
    def n_waiting(self) -> int:
        """How many are waiting now."""
        ints = self._ints
        return int(ints[2]) if ints[1] == _FILLING else 0

    @property
    def broken(self) -> bool:
        """Whether the barrier is broken."""
        return bool(self._ints[1] == _BROKEN)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ProcessBarrier, (self._parties, self._action, self._timeout, self._cond))

    def __repr__(self) -> str:
        if self.broken:
            return f"<anypool process Barrier at {id(self):#x}: broken>"
        return (
            f"<anypool process Barrier at {id(self):#x}: waiters={self.n_waiting}/{self._parties}>"
        )


# -- process kinds: shared memory ---------------------------------------------------------
# In a worker, segments are mapped with mmap directly, not with SharedMemory: that registers
# them with the resource tracker (Python < 3.13) and its close() fails while a task still holds
# a view. An mmap stays alive as long as any view of it does.
_MAPS: dict[str, mmap.mmap] = {}  # segment name -> writable mapping, in a worker


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


#: arrays at least this big are handed to forked workers without a copy where that can be done
#: (below it the copy costs little, and one segment serves every worker, later ones too)
INHERIT_ABOVE = 8 * 2**20


def _start_workers(backend: Backend) -> None:
    """Start a process pool's workers (a pool of another kind that makes process kinds, such
    as auto while it measures, starts its own when it chooses)."""
    from ._processes import ProcessBackend

    if isinstance(backend, ProcessBackend):
        backend.start_workers()


#: the process kinds' factories still open (a pool never shut down leaves its own open)
_open: weakref.WeakSet[ProcessSync] = weakref.WeakSet()


def close_all_at_exit() -> None:
    """Free what pools that were never shut down made (called at exit, after their workers
    stopped): no "leaked shared_memory objects" warning from the resource tracker."""
    for factory in list(_open):
        try:
            factory.close(wait=False)
        except Exception:  # pragma: no cover - at exit: the tracker still cleans up
            pass


class ProcessSync(SyncFactory):
    """Kinds that cross into running worker processes (see the module docstring)."""

    kind = "process"

    def __init__(self, backend: Backend, ctx: Any = None) -> None:
        super().__init__(backend)
        #: the process pool's multiprocessing context (None: the default start method's)
        self._ctx: Any = ctx
        if self._ctx is None:
            from ._processes import default_start_method

            self._ctx = mp.get_context(default_start_method())
        self._lock = threading.Lock()
        self._manager: Any = None
        self._sems: list[str] = []
        self._segments: list[shared_memory.SharedMemory] = []
        self._inherited: list[str] = []  # tokens of arrays forked workers start with
        self._closed = False
        _open.add(self)

    # named semaphores
    def _semlock(self, kind: int, value: int, maxvalue: int) -> Any:
        with self._lock:
            self._check_open()
            sl = _new_semlock(kind, value, maxvalue)
            self._sems.append(sl.name)
        return sl

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedPoolError("the pool was shut down; it cannot make new primitives")

    def Lock(self) -> Any:
        """A :class:`ProcessLock` on a named semaphore."""
        return ProcessLock(self._semlock(mps.SEMAPHORE, 1, 1))

    def RLock(self) -> Any:
        """A :class:`ProcessRLock` on a named semaphore."""
        return ProcessRLock(self._semlock(mps.RECURSIVE_MUTEX, 1, 1))

    def Semaphore(self, value: int) -> Any:
        """A :class:`ProcessSemaphore` on a named semaphore."""
        return ProcessSemaphore(self._semlock(mps.SEMAPHORE, value, mps.SEM_VALUE_MAX))

    def BoundedSemaphore(self, value: int) -> Any:
        """A :class:`ProcessBoundedSemaphore` on a named semaphore."""
        return ProcessBoundedSemaphore(self._semlock(mps.SEMAPHORE, value, value))

    # shared memory
    def _segment(self, size: int, name: str | None = None) -> shared_memory.SharedMemory:
        with self._lock:
            self._check_open()
            shm = shared_memory.SharedMemory(name=name, create=True, size=max(1, size))
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

    def share(self, obj: T, mode: ShareMode = "r") -> T:
        """A :class:`Shared` handle: the object goes to each worker once, through shared memory.

        ``bytes``/``bytearray`` and NumPy arrays are mapped in the worker without a copy (a
        ``memoryview`` and an array: read-only with ``mode="r"``, copy-on-write with
        ``"c"``); anything else is pickled once here and unpickled once per worker. A pool
        that has no workers yet starts them, so that they start during the copy.

        An array of :data:`INHERIT_ABOVE` bytes or more is not even copied where this pool's
        workers are forks of this program taken after now (see :meth:`_inherit`).
        """
        how: str
        meta: Any
        self._check_open()
        arr = _numpy().ascontiguousarray(obj) if _is_ndarray(obj) else None
        if arr is not None and arr.nbytes >= INHERIT_ABOVE and (mode == "r" or arr.flags.writeable):
            inherited = self._inherit(obj, arr, mode)
            if inherited is not None:
                return inherited  # type: ignore[no-any-return]  # stands for the object
        _start_workers(self.backend)  # they start while the object is copied
        if arr is not None:
            shm = self._copy_array(arr)
            how, meta = "ndarray", _array_meta(arr)
        elif isinstance(obj, bytes | bytearray | memoryview):
            data = memoryview(obj).cast("B")
            shm = self._segment(data.nbytes)
            _buffer(shm)[: data.nbytes] = data
            how, meta = "bytes", data.nbytes
        else:
            blob = _pickling.dumps_fast(obj)
            if blob is None:  # neither pickler can: say which object and what to do
                blob = _pickling.dumps(obj, "the object given to pool.share()", "to the workers")
            shm = self._segment(len(blob))
            _buffer(shm)[: len(blob)] = blob
            how, meta = "pickle", len(blob)
        handle: Any = Shared(obj, shm.name, how, meta, mode)
        return handle  # type: ignore[no-any-return]  # stands for the object in tasks

    def _copy_array(self, arr: Any, name: str | None = None) -> shared_memory.SharedMemory:
        """A new segment holding the contiguous array ``arr``."""
        np = _numpy()
        shm = self._segment(arr.nbytes, name)
        np.ndarray(arr.shape, dtype=arr.dtype, buffer=_buffer(shm))[...] = arr
        return shm

    def _inherit(self, obj: Any, arr: Any, mode: ShareMode) -> Any:
        """A handle for an array the pool's workers start with, as after ``fork``: no copy.

        The array is registered for processes forked from now on, then the pool is asked to
        fork its workers after this point. The copy into shared memory is put off: the
        process backend makes it only for a worker that did not start with the array (one it
        started before, a kept-warm one, one the fork server starts later), and pickling the
        handle for anything else makes it too. None when the pool cannot fork after now
        (spawn, a threaded program, a pool whose workers have started).
        """
        from ._processes import ProcessBackend

        backend = self.backend
        if not isinstance(backend, ProcessBackend):
            return None
        token = f"anypool_{secrets.token_hex(8)}"
        with self._lock:
            self._check_open()
            self._inherited.append(token)
        _INHERITED[token] = arr
        if not backend.fork_after_now():
            _INHERITED.pop(token, None)
            with self._lock:
                self._inherited.remove(token)
            return None
        backend.start_workers()
        copy = functools.partial(self._copy_array, arr, token)
        handle: Any = Shared(obj, token, "ndarray", _array_meta(arr), mode, copy)
        return handle

    # the manager
    def _mgr(self) -> Any:
        with self._lock:
            self._check_open()
            if self._manager is None:
                self._manager = self._ctx.Manager()
            return self._manager

    def _condition(self, lock: Any) -> ProcessCondition:
        nints = _COND_INTS
        shm = self._segment(8 * nints)
        shm.close()  # mapped again below (a SharedMemory cannot close while views exist)
        ints = _int_view(shm.name, nints, cached=False)
        sems = tuple(self._semlock(mps.SEMAPHORE, 0, mps.SEM_VALUE_MAX) for _ in range(3))
        lock = self.RLock() if lock is None else lock
        return ProcessCondition(lock, sems, shm.name, nints, ints)

    def Event(self) -> Any:
        """A :class:`ProcessEvent`: named semaphores and three ints in shared memory."""
        return ProcessEvent(self._condition(self.Lock()))

    def Condition(self, lock: Any = None) -> Any:
        """A :class:`ProcessCondition` on ``lock`` (default: a new :class:`ProcessRLock`)."""
        return self._condition(lock)

    def Barrier(
        self, parties: int, action: Callable[[], object] | None = None, timeout: float | None = None
    ) -> Any:
        """A :class:`ProcessBarrier`: named semaphores and three ints in shared memory."""
        return ProcessBarrier(parties, action, timeout, self._condition(self.Lock()))

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
            inherited, self._inherited = self._inherited, []
        for token in inherited:  # forks from now on do not start with them
            _INHERITED.pop(token, None)
        if manager is not None and wait:
            manager.shutdown()
        for name in sems:
            _unlink_sem(name)
        for shm in segments:
            try:
                shm.unlink()
            except FileNotFoundError:  # pragma: no cover
                pass


def _array_meta(arr: Any) -> tuple[Any, str, int]:
    """What a worker needs to map an array: (shape, dtype, bytes)."""
    return (arr.shape, arr.dtype.str, arr.nbytes)


def _is_ndarray(obj: object) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(obj, np.ndarray) and obj.dtype.hasobject is False
