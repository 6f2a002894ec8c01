"""CPython's own lock test suites run against the pool's primitives, and the process kinds
used from worker processes.

The suites are the running interpreter's ``test.lock_tests`` (``Lib/test/lock_tests.py``:
LockTests, RLockTests, EventTests, ConditionTests, SemaphoreTests, BoundedSemaphoreTests,
BarrierTests), imported, not copied, and adapted as CPython adapts them to its own types: a
subclass per suite and kind whose ``locktype``/``eventtype``/... is the pool's factory. They
differ between 3.11, 3.12 and 3.13; each interpreter runs its own. They run from threads of
this process, then (on primitives made here) inside a worker process. After them: misuse
raises what ``threading`` raises, on both kinds; the factory signatures on asyncio and Dask;
and the process kinds shared by the parent and worker processes (the Event race of CPython
issue 13502, barriers with timeouts and abort, conditions, a notify racing a timeout).

The asyncio kinds are the ``asyncio`` types themselves (checked below), so asyncio's own lock
tests (``test.test_asyncio.test_locks``, which construct ``asyncio.Lock()`` directly) already
cover them; what the pool adds is the factory signatures, tested here.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import unittest
from collections.abc import Callable
from typing import Any

import pytest

import anypool

try:
    from test import lock_tests
except ImportError:  # pragma: no cover - a Python built without its test package
    lock_tests = None

#: the suites need the interpreter's test package (the tests of our own below do not)
needs_suites = pytest.mark.skipif(
    lock_tests is None,
    reason="CPython's test.lock_tests is not importable (this Python has no test package)",
)

KINDS = ("thread", "process")

#: tests the process kinds skip, by name, and why. Everything else in the suites must pass.
PROCESS_EXCLUDED = {
    # CPython-private helpers of the threading types, which ours need not have
    "test_at_fork_reinit": "_at_fork_reinit is a private helper of threading's types",
    "test__is_owned": "_is_owned is a private helper of threading.RLock",
    "test_recursion_count": "_recursion_count is a private helper of threading.RLock",
    "test_release_save_unacquired": "_release_save is a private helper of threading.RLock",
    # the exact repr text of the threading types (ours name the process kind and semaphore)
    "test_repr": "checks the repr text of the threading types",
    "test_locked_repr": "checks the repr text of the threading types",
}

#: suite -> the attribute it calls to make a primitive -> the pool method that makes it
SUITES = {
    "LockTests": ("locktype", "Lock"),
    "RLockTests": ("locktype", "RLock"),
    "EventTests": ("eventtype", "Event"),
    "ConditionTests": ("condtype", "Condition"),
    "SemaphoreTests": ("semtype", "Semaphore"),
    "BoundedSemaphoreTests": ("semtype", "BoundedSemaphore"),
    "BarrierTests": ("barriertype", "Barrier"),
}


def _excluded(reason: str) -> Callable[[Any], None]:
    @unittest.skip(f"excluded for the process kinds: {reason}")
    def test(self: Any) -> None:  # pragma: no cover - skipped
        pass

    return test


def _suite(kind: str, suite: str) -> type[unittest.TestCase]:
    attr, method = SUITES[suite]
    base: Any = getattr(lock_tests, suite)

    def make(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.pool, method)(*args, **kwargs)

    def setUpClass(cls: Any) -> None:
        cls.pool = anypool.Pool(kind, workers=2)
        base.setUpClass.__func__(cls)

    def tearDownClass(cls: Any) -> None:
        base.tearDownClass.__func__(cls)
        cls.pool.shutdown()

    body: dict[str, Any] = {
        attr: make,
        "setUpClass": classmethod(setUpClass),
        "tearDownClass": classmethod(tearDownClass),
        "__module__": __name__,
    }
    if kind == "process":
        for name, reason in PROCESS_EXCLUDED.items():
            if hasattr(base, name):
                body[name] = _excluded(reason)
    name = f"Test{kind.capitalize()}{suite}"
    return type(name, (base,), body)


@needs_suites
def test_cpython_lock_suites_are_here() -> None:
    """Without them the suite classes below are not made: this test shows the skip."""
    assert lock_tests is not None
    assert all(hasattr(lock_tests, suite) for suite in SUITES)


if lock_tests is not None:  # else the suites are not collected: see needs_suites
    for _kind in KINDS:
        for _name in SUITES:
            _cls = _suite(_kind, _name)
            globals()[_cls.__name__] = _cls
    del _kind, _name, _cls


# -- the same suites in a worker process, on primitives the parent made ------------------------
#: what a suite makes, by (args, kwargs), with room to spare: made in the parent beforehand and
#: handed to the worker, whose suite takes them in turn (the worker has no factory)
_ANY = {((), ()): 30}
_SEMS = {((), ()): 6, ((1,), ()): 4, ((2,), ()): 8, ((3,), ()): 2, ((4,), ()): 3, ((7,), ()): 4}
WORKER_STOCK: dict[str, dict[tuple[Any, ...], int]] = {
    "LockTests": _ANY,
    "RLockTests": _ANY,
    "EventTests": {((), ()): 10},
    "ConditionTests": {((), ()): 15},
    "SemaphoreTests": _SEMS,
    "BoundedSemaphoreTests": _SEMS,
    "BarrierTests": {
        ((5,), (("timeout", 2.0),)): 20,
        ((5,), ()): 3,
        ((2,), (("timeout", 0.1),)): 2,
        ((1,), ()): 2,
        ((3,), ()): 2,
    },
}
#: what cannot run in a worker: the primitive would have to be made there, with what it holds
_KEPT = {
    "test_weakref_deleted": "a worker keeps each lock it received (one per semaphore, reused "
    "by later tasks), so it is not freed when the test lets go of it"
}
WORKER_EXCLUDED = {
    "LockTests": _KEPT,
    "RLockTests": _KEPT,
    "ConditionTests": {
        "test_acquire": "makes a condition on a threading.Lock, which cannot cross processes"
    },
    "SemaphoreTests": {"test_constructor": "checks the factory's arguments (in the parent)"},
    "BoundedSemaphoreTests": {"test_constructor": "checks the factory's arguments (in the parent)"},
    "BarrierTests": {
        "test_constructor": "checks the factory's arguments (in the parent)",
        "test_action": "the action is a closure of the test, which cannot be pickled (a "
        "picklable action is tested below)",
    },
}


def _key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    return (args, tuple(sorted(kwargs.items())))


def run_suite_here(suite: str, stock: dict[tuple[Any, ...], list[Any]]) -> tuple[int, list[str]]:
    """Run one of CPython's suites in this (worker) process on primitives made elsewhere;
    return how many tests ran and the failures."""
    attr, _ = SUITES[suite]
    base: Any = getattr(lock_tests, suite)

    def make(self: Any, *args: Any, **kwargs: Any) -> Any:
        left = stock.get(_key(args, kwargs))
        assert left, f"the parent made no {suite} primitive for {args}, {kwargs}"
        return left.pop()

    body: dict[str, Any] = {attr: make, "__module__": __name__}
    excluded = {**PROCESS_EXCLUDED, **WORKER_EXCLUDED.get(suite, {})}
    for name, reason in excluded.items():
        if hasattr(base, name):
            body[name] = _excluded(reason)
    cls = type(f"InWorker{suite}", (base,), body)
    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(cls).run(result)
    return result.testsRun, [f"{t.id()}:\n{tb}" for t, tb in result.failures + result.errors]


@needs_suites
@pytest.mark.parametrize("suite", list(SUITES))
def test_cpython_suite_in_a_worker_process_on_the_parents_primitives(suite: str) -> None:
    _, method = SUITES[suite]
    with anypool.Pool("process", workers=1) as pool:
        make = getattr(pool, method)
        stock = {
            key: [make(*key[0], **dict(key[1])) for _ in range(n)]
            for key, n in WORKER_STOCK[suite].items()
        }
        ran, failures = pool.submit(run_suite_here, suite, stock).result(timeout=55)
    assert ran > 0
    assert not failures, "\n".join(failures)


# -- misuse raises what threading raises ---------------------------------------------------------
def _broken(barrier: Any) -> Any:
    barrier.abort()
    return barrier.wait()


#: (what the pool makes, with what, the misuse, what threading raises)
MISUSES: list[tuple[str, tuple[Any, ...], Callable[[Any], Any], type[BaseException]]] = [
    ("Lock", (), lambda lock: lock.acquire(False, 1), ValueError),
    ("Lock", (), lambda lock: lock.acquire(timeout=-5), ValueError),
    ("Lock", (), lambda lock: lock.acquire(timeout=1e100), OverflowError),
    ("Lock", (), lambda lock: lock.release(), RuntimeError),
    ("RLock", (), lambda lock: lock.acquire(False, 1), ValueError),
    ("RLock", (), lambda lock: lock.release(), RuntimeError),
    ("Semaphore", (0,), lambda sem: sem.acquire(False, 1), ValueError),
    ("Semaphore", (0,), lambda sem: sem.acquire(timeout=1e100), OverflowError),
    ("Semaphore", (1,), lambda sem: sem.release(0), ValueError),
    ("BoundedSemaphore", (1,), lambda sem: sem.release(), ValueError),
    ("BoundedSemaphore", (1,), lambda sem: (sem.acquire(), sem.release(2)), ValueError),
    ("Condition", (), lambda cond: cond.wait(), RuntimeError),
    ("Condition", (), lambda cond: cond.wait_for(lambda: False), RuntimeError),
    ("Condition", (), lambda cond: cond.notify(), RuntimeError),
    ("Condition", (), lambda cond: cond.notify_all(), RuntimeError),
    ("Event", (), lambda ev: ev.wait(1e100), OverflowError),
    ("Barrier", (2,), _broken, threading.BrokenBarrierError),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("method", "args", "misuse", "raises"),
    MISUSES,
    ids=[f"{m[0]}-{i}" for i, m in enumerate(MISUSES)],
)
def test_misuse_raises_what_threading_raises(
    kind: str,
    method: str,
    args: tuple[Any, ...],
    misuse: Callable[[Any], Any],
    raises: type[BaseException],
) -> None:
    with anypool.Pool(kind, workers=1) as pool:
        obj = getattr(pool, method)(*args)
        with pytest.raises(raises):
            misuse(obj)


# -- the factory signatures on every kind ----------------------------------------------------
def test_process_kinds_are_not_multiprocessings_own() -> None:
    """The types the suites above accept, not the ones with multiprocessing's gaps."""
    import multiprocessing.synchronize as mps

    with anypool.Pool("process", workers=1) as pool:
        for make in (pool.Lock, pool.RLock, pool.Semaphore, pool.Event, pool.Condition):
            assert not isinstance(make(), mps.SemLock | mps.Event | mps.Condition)
        assert not isinstance(pool.Barrier(2), mps.Barrier)


def test_asyncio_kinds_are_asyncios_types_with_their_signatures() -> None:
    with anypool.Pool("asyncio", workers=1) as pool:
        lock = pool.Lock()
        assert type(lock) is asyncio.Lock
        cond = pool.Condition(lock)
        assert type(cond) is asyncio.Condition
        assert type(pool.Condition()) is asyncio.Condition
        assert type(pool.Semaphore(2)) is asyncio.Semaphore
        assert type(pool.BoundedSemaphore(2)) is asyncio.BoundedSemaphore
        assert type(pool.Event()) is asyncio.Event
        barrier = pool.Barrier(2)
        assert type(barrier) is asyncio.Barrier
        assert barrier.parties == 2
        with pytest.raises(NotImplementedError, match="asyncio.timeout"):
            pool.Barrier(2, timeout=1.0)
        with pytest.raises(NotImplementedError, match="returned 0"):
            pool.Barrier(2, action=print)

        async def use() -> bool:
            async with cond:  # the condition is on the lock it was given
                assert lock.locked()
                return await asyncio.wait_for(cond.wait_for(lambda: True), SHORT)

        assert asyncio.run(use()) is True


SHORT = 5.0


def test_dask_kinds_take_the_signatures_and_name_what_to_use(dask_cluster: str) -> None:
    with anypool.Pool("dask", workers=1) as pool:
        with pytest.raises(NotImplementedError, match="pool.Event"):
            pool.Condition(pool.Lock())
        with pytest.raises(NotImplementedError, match="pool.Queue"):
            pool.Barrier(2, action=print, timeout=1.0)
        lock = pool.Lock()
        with pytest.raises(ValueError, match="non-blocking"):
            lock.acquire(False, 1)
        with pytest.raises(ValueError, match="non-negative"):
            lock.acquire(timeout=-2)
        assert lock.acquire(timeout=SHORT)
        assert lock.locked()
        assert not lock.acquire(blocking=False)
        lock.release()
        sem = pool.Semaphore(3)
        for _ in range(3):
            assert sem.acquire(timeout=SHORT)
        sem.release(3)
        with pytest.raises(ValueError, match="non-blocking"):
            sem.acquire(False, timeout=1)
        with pytest.raises(ValueError, match="one or more"):
            sem.release(0)


# -- the process kinds across worker processes --------------------------------------------------
SHORT_TIMEOUT = 30.0


def _until(done: Callable[[], bool]) -> None:
    """Poll a state that has no event to wait on (a count of sleepers), with a deadline."""
    deadline = time.monotonic() + SHORT_TIMEOUT
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def wait_for_event(ev: Any, ready: Any, timeout: float) -> bool:
    ready.release()
    return bool(ev.wait(timeout))


def test_event_set_then_clear_wakes_every_waiting_worker() -> None:
    """CPython issue 13502: a waiter woken by set() returns True even if clear() follows.

    ``multiprocessing.Event`` can return False here (the waiter looks at the flag after it
    wakes); the pool's Event counts the set() calls instead.
    """
    with anypool.Pool("process", workers=2) as pool:
        for _ in range(5):
            ev, ready = pool.Event(), pool.Semaphore(0)
            futs = [pool.submit(wait_for_event, ev, ready, SHORT_TIMEOUT) for _ in range(2)]
            for _ in range(2):
                assert ready.acquire(timeout=SHORT_TIMEOUT)
            asleep = ev._cond._ints  # type: ignore[attr-defined]  # [0]: sleepers in wait()
            _until(lambda: asleep[0] == 2)  # noqa: B023  # (called here, in the loop)
            ev.set()
            ev.clear()
            assert [f.result(timeout=SHORT_TIMEOUT) for f in futs] == [True, True]
            assert not ev.is_set()


def barrier_wait(barrier: Any, timeout: float | None) -> str:
    try:
        return f"index {barrier.wait(timeout)}"
    except threading.BrokenBarrierError:
        return "broken"


def barrier_then_abort(barrier: Any, entered: Any) -> str:
    entered.release()
    return barrier_wait(barrier, SHORT_TIMEOUT)


def test_barrier_across_two_workers_lets_them_through_times_out_and_aborts() -> None:
    with anypool.Pool("process", workers=2) as pool:
        barrier = pool.Barrier(2)
        futs = [pool.submit(barrier_wait, barrier, SHORT_TIMEOUT) for _ in range(2)]
        assert sorted(f.result(timeout=SHORT_TIMEOUT) for f in futs) == ["index 0", "index 1"]
        assert not barrier.broken
        assert barrier.n_waiting == 0

        # one party never comes: the other's timeout breaks the barrier for everyone
        lonely = pool.Barrier(2, timeout=0.2)
        assert pool.submit(barrier_wait, lonely, None).result(timeout=SHORT_TIMEOUT) == "broken"
        assert lonely.broken
        with pytest.raises(threading.BrokenBarrierError):
            lonely.wait()
        lonely.reset()
        assert not lonely.broken

        # abort() from the parent releases a worker waiting without a timeout
        third, entered = pool.Barrier(3), pool.Semaphore(0)
        fut = pool.submit(barrier_then_abort, third, entered)
        assert entered.acquire(timeout=SHORT_TIMEOUT)
        third.abort()
        assert fut.result(timeout=SHORT_TIMEOUT) == "broken"
        assert third.broken


def record_action(counter: Any) -> None:
    counter.increment()


def test_barrier_action_runs_once_per_round_in_the_last_worker() -> None:
    with anypool.Pool("process", workers=2) as pool:
        counter = pool.Counter()
        barrier = pool.Barrier(2, action=_Action(counter))
        futs = [pool.submit(barrier_wait, barrier, SHORT_TIMEOUT) for _ in range(2)]
        assert sorted(f.result(timeout=SHORT_TIMEOUT) for f in futs) == ["index 0", "index 1"]
        assert counter.value == 1


class _Action:
    """A picklable action (it travels with the barrier)."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter

    def __call__(self) -> None:
        self.counter.increment()


def release_rlock(rlock: Any) -> str:
    try:
        rlock.release()
    except RuntimeError as exc:
        return f"RuntimeError: {exc}"
    return "released"


def hold_then_wait(cond: Any, state: Any, timeout: float) -> bool:
    with cond:
        state.value = 1
        cond.notify_all()
        return bool(cond.wait_for(lambda: state.value == 2, timeout))


def test_ownership_and_conditions_across_processes() -> None:
    with anypool.Pool("process", workers=2) as pool:
        rlock = pool.RLock()
        rlock.acquire()
        # a worker does not own the parent's RLock: RuntimeError, as threading.RLock raises
        assert (
            pool.submit(release_rlock, rlock)
            .result(timeout=SHORT_TIMEOUT)
            .startswith("RuntimeError")
        )
        rlock.release()

        cond, state = pool.Condition(), pool.Value("i", 0)
        fut = pool.submit(hold_then_wait, cond, state, SHORT_TIMEOUT)
        with cond:
            assert cond.wait_for(lambda: state.value == 1, SHORT_TIMEOUT)
            state.value = 2
            cond.notify()
        assert fut.result(timeout=SHORT_TIMEOUT) is True

        # wait_for's timeout runs out in the worker when nobody changes the state
        state.value = 0
        assert pool.submit(hold_then_wait, cond, state, 0.2).result(timeout=SHORT_TIMEOUT) is False


def test_a_notify_racing_a_timeout_is_never_lost() -> None:
    """notify(1) with two sleepers wakes exactly one, even when the other's timeout runs out
    at that moment (``multiprocessing.Condition`` can give the wake-up to the one that timed
    out and leave the other asleep)."""
    with anypool.Pool("process", workers=1) as pool:
        cond = pool.Condition()
        sleepers = cond._ints  # type: ignore[attr-defined]  # [0]: sleepers still in wait()
        results: dict[str, bool] = {}

        def sleeper(name: str, timeout: float) -> None:
            with cond:
                results[name] = cond.wait(timeout)

        for attempt in range(100):
            results.clear()
            long = threading.Thread(target=sleeper, args=("long", SHORT_TIMEOUT))
            short = threading.Thread(target=sleeper, args=("short", 0.002))
            # those that timed out are counted off by the next notify: wait for one more
            base = sleepers[0]
            long.start()
            _until(lambda: sleepers[0] == base + 1)  # noqa: B023  # the long one sleeps
            short.start()
            # aim the notify at the moment the short sleeper's timeout runs out (a busy wait
            # of 1-3 ms; which of the two the notify reaches is checked either way)
            aim = time.perf_counter() + 0.001 + 0.002 * (attempt % 10) / 10
            while time.perf_counter() < aim:
                pass
            with cond:
                cond.notify()
            short.join(SHORT_TIMEOUT)
            if results["short"]:  # it took the notify: the long one sleeps on, still counted
                with cond:
                    assert sleepers[0] == 1
                    assert "long" not in results
                    cond.notify()
            # else the notify went to the long one, which wakes without another notify
            long.join(SHORT_TIMEOUT)
            assert not long.is_alive(), "a notify was lost"
            assert results["long"] is True
            assert not cond._sems[0].acquire(False)  # type: ignore[attr-defined]  # no stray token


def wait_forever_on(cond: Any, pid: Any) -> None:
    with cond:
        pid.value = os.getpid()
        cond.wait()


def test_notify_all_does_not_wait_for_a_sleeper_whose_process_died() -> None:
    """notify() waits for the sleepers it wakes to leave their wait; one whose process was
    killed never will, and notify counts it off instead of waiting for ever."""
    with anypool.Pool("process", workers=1) as pool:
        cond, pid = pool.Condition(), pool.Value("q", 0)
        fut = pool.submit(wait_forever_on, cond, pid)
        asleep = cond._ints  # type: ignore[attr-defined]  # [0]: sleepers in wait()
        _until(lambda: asleep[0] == 1)
        os.kill(pid.value, signal.SIGKILL)
        with pytest.raises(anypool.WorkerCrashed):
            fut.result(timeout=SHORT_TIMEOUT)
        done = threading.Event()

        def notify_all() -> None:
            with cond:
                cond.notify_all()
            done.set()

        threading.Thread(target=notify_all, daemon=True).start()
        assert done.wait(SHORT_TIMEOUT), "notify_all() waited for a dead sleeper"
        assert asleep[0] == 0
        with cond:  # and the condition works on
            assert cond.wait(0.01) is False
