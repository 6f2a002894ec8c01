"""Pool primitives on every backend: the guide's checks, stdlib behaviour, clean-up."""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from multiprocessing import shared_memory
from typing import Any

import psutil
import pytest

import anypool
from conftest import SHORT_TIMEOUT

N_ADDS = 100_000
#: on Dask every lock, read and write is a round trip to the scheduler: fewer, still exact
DASK_ADDS = 150
SHORT = 0.01  # a timeout that must expire: the wait itself is what is tested


# -- the guide's lock check ---------------------------------------------------------------
def add_under_lock(lock: Any, value: Any, n: int) -> int:
    for _ in range(n):
        with lock:
            value.value += 1
    return n


async def aadd_under_lock(lock: Any, value: Any, n: int) -> int:
    for _ in range(n):
        async with lock:
            value.value += 1
    return n


def _fn(backend: str, sync: Any, async_: Any) -> Any:
    return async_ if backend == "asyncio" else sync


def test_two_workers_adding_under_the_pools_lock_end_at_exactly_200000(backend: str) -> None:
    n = DASK_ADDS if backend == "dask" else N_ADDS
    with anypool.Pool(backend, workers=2) as pool:
        lock = pool.Lock()
        value = pool.Value("i", 0)
        fn = _fn(backend, add_under_lock, aadd_under_lock)
        assert list(pool.map(fn, [lock, lock], [value, value], [n, n], chunksize=1)) == [n] * 2
        assert value.value == 2 * n


def add_with_value_lock(value: Any, n: int) -> int:
    for _ in range(n):
        with value.get_lock():
            value.value += 1
    return n


def test_value_get_lock_makes_read_modify_write_atomic(backend: str) -> None:
    if backend == "asyncio":
        pytest.skip("asyncio's get_lock() is an asyncio.Lock: covered by the lock check")
    n = DASK_ADDS if backend == "dask" else 20_000
    with anypool.Pool(backend, workers=2) as pool:
        value = pool.Value("q", 0)
        assert list(pool.map(add_with_value_lock, [value] * 2, [n] * 2)) == [n, n]
    assert value.value == 2 * n  # a process pool's Value still reads after shutdown


def count_up(counter: Any, n: int) -> int:
    last = 0
    for _ in range(n):
        last = counter.increment()
    return last


async def acount_up(counter: Any, n: int) -> int:
    return count_up(counter, n)


def test_counter_increments_atomically(backend: str) -> None:
    n = DASK_ADDS if backend == "dask" else N_ADDS
    with anypool.Pool(backend, workers=2) as pool:
        c = pool.Counter(5)
        assert isinstance(c, anypool.Counter)
        fn = _fn(backend, count_up, acount_up)
        lasts = list(pool.map(fn, [c, c], [n, n], chunksize=1))
        assert c.value == 5 + 2 * n
        assert max(lasts) == c.value
        assert c.increment(-5) == 2 * n
    assert c.value == 2 * n


# -- the guide's semaphore check ----------------------------------------------------------
def guarded(sem: Any, lock: Any, inside: Any, most: Any, barrier: Any) -> int:
    with sem:
        with lock:
            inside.value += 1
            most.value = max(most.value, inside.value)
        barrier.wait(timeout=SHORT_TIMEOUT)  # the holders meet: a third would be counted
        with lock:
            inside.value -= 1
    return 1


async def aguarded(sem: Any, lock: Any, inside: Any, most: Any, barrier: Any) -> int:
    async with sem:
        async with lock:
            inside.value += 1
            most.value = max(most.value, inside.value)
        await asyncio.wait_for(barrier.wait(), SHORT_TIMEOUT)
        async with lock:
            inside.value -= 1
    return 1


def dask_guarded(sem: Any, lock: Any, inside: Any, most: Any, two_inside: Any) -> int:
    """``guarded`` for Dask, which has no barrier: the first holder waits for a second."""
    import distributed

    distributed.secede()  # the worker starts its next task: only the semaphore limits them
    with sem:
        with lock:
            inside.value += 1
            most.value = max(most.value, inside.value)
            if inside.value == 2:
                two_inside.set()
        two_inside.wait(SHORT_TIMEOUT)  # the first pair meets: a third would be counted
        with lock:
            inside.value -= 1
    return 1


def test_semaphore_2_never_admits_a_third_task(backend: str) -> None:
    holders = 1 if backend == "serial" else 2  # serial runs one task at a time
    with anypool.Pool(backend, workers=4) as pool:
        sem = pool.Semaphore(2)
        lock = pool.Lock()
        inside, most = pool.Value("i", 0), pool.Value("i", 0)
        if backend == "dask":
            barrier, fn = pool.Event(), dask_guarded
        else:
            barrier = pool.Barrier(holders)
            fn = _fn(backend, guarded, aguarded)
        n = 8
        assert sum(pool.map(fn, *([x] * n for x in (sem, lock, inside, most, barrier)))) == n
        assert most.value == holders
        assert inside.value == 0


# -- stdlib behaviour, checked inside a task ----------------------------------------------
def sync_behaviour(lock: Any, rlock: Any, bsem: Any, ev: Any, cond: Any, q: Any, b: Any) -> Any:
    out: dict[str, Any] = {}
    with lock:
        out["lock_busy"] = lock.acquire(timeout=SHORT)
    out["lock_free"] = lock.acquire(timeout=SHORT)
    lock.release()
    with rlock, rlock:
        out["rlock"] = True
    bsem.acquire()
    bsem.release()
    try:
        bsem.release()
    except ValueError:
        out["bounded"] = "ValueError"
    out["event_timeout"] = ev.wait(SHORT)
    ev.set()
    out["event_set"] = (ev.is_set(), ev.wait(SHORT))
    with cond:
        out["cond_timeout"] = cond.wait(SHORT)
        out["cond_pred"] = cond.wait_for(lambda: True, SHORT)
        cond.notify_all()
    q.put("a")
    q.put_nowait("b")
    try:
        q.put("c", timeout=SHORT)
    except queue.Full:
        out["full"] = True
    out["got"] = [q.get(), q.get_nowait()]
    try:
        q.get(timeout=SHORT)
    except queue.Empty:
        out["empty"] = True
    try:
        b.wait(timeout=SHORT)
    except threading.BrokenBarrierError:
        out["barrier"] = "BrokenBarrierError"
    return out


EXPECTED = {
    "lock_busy": False,
    "lock_free": True,
    "rlock": True,
    "bounded": "ValueError",
    "event_timeout": False,
    "event_set": (True, True),
    "cond_timeout": False,
    "cond_pred": True,
    "full": True,
    "got": ["a", "b"],
    "empty": True,
    "barrier": "BrokenBarrierError",
}


async def async_behaviour(lock: Any, bsem: Any, ev: Any, cond: Any, q: Any, b: Any) -> Any:
    out: dict[str, Any] = {}
    async with lock:
        try:
            await asyncio.wait_for(lock.acquire(), SHORT)
        except TimeoutError:
            out["lock_busy"] = False
    out["lock_free"] = lock.locked() is False
    out["rlock"] = True
    await bsem.acquire()
    bsem.release()
    try:
        bsem.release()
    except ValueError:
        out["bounded"] = "ValueError"
    try:
        await asyncio.wait_for(ev.wait(), SHORT)
    except TimeoutError:
        out["event_timeout"] = False
    ev.set()
    out["event_set"] = (ev.is_set(), await ev.wait())
    async with cond:
        try:
            await asyncio.wait_for(cond.wait(), SHORT)
        except TimeoutError:
            out["cond_timeout"] = False
        out["cond_pred"] = await cond.wait_for(lambda: True)
        cond.notify_all()
    await q.put("a")
    q.put_nowait("b")
    try:
        q.put_nowait("c")
    except asyncio.QueueFull:
        out["full"] = True
    out["got"] = [await q.get(), q.get_nowait()]
    try:
        q.get_nowait()
    except asyncio.QueueEmpty:
        out["empty"] = True
    try:
        await asyncio.wait_for(b.wait(), SHORT)
    except TimeoutError:
        out["barrier"] = "BrokenBarrierError"
    return out


def dask_behaviour(lock: Any, bsem: Any, ev: Any, q: Any) -> Any:
    """``sync_behaviour`` without the kinds Dask lacks (RLock, Condition, Barrier)."""
    out = sync_behaviour(lock, _Nop(), bsem, ev, _Nop(), q, _Nop())
    for key in ("rlock", "cond_timeout", "cond_pred", "barrier"):
        out.pop(key, None)
    return out


class _Nop:
    """Stands in for a kind Dask lacks in ``sync_behaviour``."""

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        pass

    def wait(self, timeout: float | None = None) -> bool:
        return False

    def wait_for(self, predicate: Any, timeout: float | None = None) -> bool:
        return False

    def notify_all(self) -> None:
        pass


def test_primitives_behave_as_the_stdlib_types_inside_tasks(backend: str) -> None:
    with anypool.Pool(backend, workers=2) as pool:
        if backend == "dask":
            for make, what in [
                (pool.RLock, "re-entrant lock"),
                (pool.Condition, "condition variable"),
                (lambda: pool.Barrier(2), "barrier"),
            ]:
                with pytest.raises(NotImplementedError, match=f"Dask has no distributed {what}"):
                    make()
            args = (pool.Lock(), pool.BoundedSemaphore(1), pool.Event(), pool.Queue(2))
            got = pool.submit(dask_behaviour, *args).result(timeout=SHORT_TIMEOUT)
            expected = {
                k: v
                for k, v in EXPECTED.items()
                if k not in ("rlock", "cond_timeout", "cond_pred", "barrier")
            }
            assert got == expected
            # and in the caller, on the same objects (the task set the event)
            args[2].clear()
            assert not args[2].is_set()
            assert dask_behaviour(*args) == expected
            return
        if backend == "asyncio":
            with pytest.raises(NotImplementedError, match="re-entrant"):
                pool.RLock()
            args: tuple[Any, ...] = (
                pool.Lock(),
                pool.BoundedSemaphore(1),
                pool.Event(),
                pool.Condition(),
                pool.Queue(2),
                pool.Barrier(2),
            )
            got = pool.submit(async_behaviour, *args).result(timeout=SHORT_TIMEOUT)
        else:
            args = (
                pool.Lock(),
                pool.RLock(),
                pool.BoundedSemaphore(1),
                pool.Event(),
                pool.Condition(),
                pool.Queue(2),
                pool.Barrier(2),
            )
            got = pool.submit(sync_behaviour, *args).result(timeout=SHORT_TIMEOUT)
    assert got == EXPECTED


def fill(d: Any, lst: Any, i: int) -> int:
    d[i] = i * i
    lst.append(i)
    return i


async def afill(d: Any, lst: Any, i: int) -> int:
    return fill(d, lst, i)


def test_dict_and_list_are_shared_by_the_tasks(backend: str) -> None:
    with anypool.Pool(backend, workers=2) as pool:
        if backend == "dask":
            for make in (pool.dict, pool.list):
                with pytest.raises(NotImplementedError, match=r"pool\.Queue\(\)"):
                    make()
            return
        d, lst = pool.dict(), pool.list()
        n = 20
        list(pool.map(_fn(backend, fill, afill), [d] * n, [lst] * n, range(n)))
        assert dict(d) == {i: i * i for i in range(n)}
        assert sorted(lst) == list(range(n))


def read_value(v: Any) -> Any:
    return v.value


async def aread_value(v: Any) -> Any:
    return v.value


def test_value_types_and_bad_input(backend: str) -> None:
    with anypool.Pool(backend, workers=1) as pool:
        v = pool.Value("d", 1.5)
        v.value = 2.25
        assert pool.submit(_fn(backend, read_value, aread_value), v).result() == 2.25
        with pytest.raises(ValueError, match="typecode"):
            pool.Value("x", 1)
        with pytest.raises(ValueError, match="must be a whole number"):
            pool.Semaphore(-1)
        with pytest.raises(ValueError, match="parties"):
            pool.Barrier(0)
        with pytest.raises(TypeError, match="initial"):
            pool.Counter(1.5)  # type: ignore[arg-type]
    with pytest.raises(anypool.ClosedPoolError):
        pool.Lock()


def test_each_backend_gives_its_own_kind() -> None:
    with anypool.Pool("thread", workers=1) as pool:
        assert isinstance(pool.Lock(), type(threading.Lock()))
        assert isinstance(pool.Queue(), queue.Queue)
        assert isinstance(pool.Event(), threading.Event)
        obj = object()
        assert pool.share(obj) is obj
    with anypool.Pool("asyncio", workers=1) as pool:
        assert isinstance(pool.Lock(), asyncio.Lock)
        assert isinstance(pool.Queue(), asyncio.Queue)
    from anypool._backends import _process_sync as sp

    with anypool.Pool("process", workers=1) as pool:
        assert isinstance(pool.Lock(), sp.ProcessLock)
        assert isinstance(pool.Semaphore(3), sp.ProcessSemaphore)
        assert isinstance(pool.Event(), sp.ProcessEvent)
        assert isinstance(pool.Condition(), sp.ProcessCondition)
        assert isinstance(pool.Barrier(2), sp.ProcessBarrier)
        assert pool._sync["process"]._manager is None  # type: ignore[attr-defined]  # none yet


def _sem_names() -> set[str]:
    try:
        return {n for n in os.listdir("/dev/shm") if "anypool-" in n}
    except FileNotFoundError:  # pragma: no cover - not Linux
        return set()


def _manager_process(pool: anypool.Pool) -> psutil.Process:
    return psutil.Process(pool._sync["process"]._manager._process.pid)  # type: ignore[attr-defined]


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_process_pool_cleans_up_manager_semaphores_and_shared_memory() -> None:
    before = _sem_names()
    with anypool.Pool("process", workers=1) as pool:
        pool.Lock()
        pool.Semaphore(2)
        c = pool.Counter()
        v = pool.Value("i", 7)
        d = pool.dict()
        d["x"] = 1
        handle = pool.share(b"payload")
        ev, cond, barrier = pool.Event(), pool.Condition(), pool.Barrier(2)
        names = [c._name, v._name, handle.token]  # type: ignore[attr-defined]
        names += [x._cond._segment for x in (ev, barrier)] + [cond._segment]
        assert len(_sem_names() - before) >= 4 + 3 * 4  # a condition: its lock + 3 semaphores
        manager = _manager_process(pool)
        assert manager.is_running()
    # the manager process is gone (the leak check cannot see it: it is forked by the fork
    # server, whose children it leaves alone), and so are the names
    assert _gone(manager)
    assert _sem_names() - before == set()
    for name in names:
        with pytest.raises(FileNotFoundError):
            shared_memory.SharedMemory(name)
    assert v.value == 7  # the parent's mapping outlives the name


# -- auto ---------------------------------------------------------------------------------
def test_auto_gives_process_safe_kinds_before_choosing_and_they_work_on_threads() -> None:
    with anypool.Pool("auto") as pool:
        lock = pool.Lock()
        value = pool.Value("i", 0)
        from anypool._backends._process_sync import ProcessLock

        assert isinstance(lock, ProcessLock)
        obj = [1, 2, 3]
        # not chosen yet: a handle that becomes the chosen kind (tests/test_auto.py)
        assert pool.share(obj).value is obj  # type: ignore[attr-defined]
        assert list(pool.map(add_under_lock, [lock] * 4, [value] * 4, [500] * 4)) == [500] * 4
        assert value.value == 2000


# -- share() ------------------------------------------------------------------------------
REDUCED = 0  # times a Big was pickled (in this process)
UNPICKLED = 0  # times a Big was rebuilt (in the process running this code)


def _make_big(data: bytes) -> Big:
    global UNPICKLED
    UNPICKLED += 1
    return Big(data)


class Big:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        global REDUCED
        REDUCED += 1
        return (_make_big, (self.data,))


def peek(big: Big, i: int) -> tuple[int, int, int]:
    return os.getpid(), UNPICKLED, len(big.data)


def test_share_sends_the_object_once_per_worker_not_once_per_task() -> None:
    global REDUCED
    REDUCED = 0
    big = Big(b"x" * 100_000)
    with anypool.Pool("process", workers=2) as pool:
        handle = pool.share(big)
        assert isinstance(handle, anypool.Shared)
        assert handle.value is big
        seen = list(pool.map(peek, [handle] * 40, range(40), chunksize=1))
        # each worker rebuilt it once, whatever the number of tasks it ran
        assert {n for _, n, _ in seen} == {1}
        assert {size for _, _, size in seen} == {100_000}
        assert REDUCED == 1
        # the same object without share(): rebuilt for every task
        plain = list(pool.map(peek, [big] * 40, range(40), chunksize=1))
        assert max(n for _, n, _ in plain) > 2
        assert REDUCED == 41


def look_at_bytes(data: Any) -> tuple[str, bool, bytes, int]:
    return type(data).__name__, data.readonly, bytes(data[:5]), len(data)


def test_shared_bytes_are_mapped_read_only_without_a_copy() -> None:
    payload = bytes(range(256)) * 1000
    with anypool.Pool("process", workers=2) as pool:
        handle = pool.share(payload)
        got = set(pool.map(look_at_bytes, [handle] * 6, chunksize=1))
    assert got == {("memoryview", True, payload[:5], len(payload))}


def array_sum(arr: Any) -> tuple[float, bool, bool]:
    return float(arr.sum()), bool(arr.flags.writeable), bool(arr.flags.owndata)


def test_shared_numpy_array_is_mapped_without_a_copy() -> None:
    np = pytest.importorskip("numpy")
    arr = np.arange(100_000, dtype=np.float64).reshape(1000, 100)
    with anypool.Pool("process", workers=2) as pool:
        handle = pool.share(arr)
        got = set(pool.map(array_sum, [handle] * 4, chunksize=1))
    assert got == {(float(arr.sum()), False, False)}


def identity_of(obj: Any) -> int:
    return id(obj)


async def aidentity_of(obj: Any) -> int:
    return id(obj)


def test_share_on_in_process_backends_is_the_object_itself(backend: str) -> None:
    if backend in ("process", "dask"):
        pytest.skip("process and dask pools give a handle: covered by their own tests")
    obj = {"big": list(range(10))}
    with anypool.Pool(backend, workers=2) as pool:
        shared = pool.share(obj)
        assert shared is obj
        fn = _fn(backend, identity_of, aidentity_of)
        assert set(pool.map(fn, [shared] * 4)) == {id(obj)}


def use_lock(lock: Any) -> bool:
    with lock:
        return True


def test_a_threading_lock_sent_to_processes_says_to_ask_the_pool() -> None:
    with (
        anypool.Pool("process", workers=1) as pool,
        pytest.raises(anypool.PicklingError, match=r"pool\.Lock\(\)"),
    ):
        pool.submit(use_lock, threading.Lock())


def test_a_primitive_of_a_closed_pool_fails_clearly_in_another_pool() -> None:
    with anypool.Pool("process", workers=1) as first:
        lock = first.Lock()
        counter = first.Counter()
    with anypool.Pool("process", workers=1) as second:
        with pytest.raises(anypool.ClosedPoolError, match="shut down"):
            second.submit(use_lock, lock).result(timeout=SHORT_TIMEOUT)
        with pytest.raises(anypool.ClosedPoolError, match="shut down"):
            second.submit(count_up, counter, 1).result(timeout=SHORT_TIMEOUT)


def test_asyncio_pool_made_in_async_code_hands_out_primitives_for_its_loop() -> None:
    async def main() -> int:
        async with anypool.Pool("asyncio", workers=4) as pool:
            lock, total = pool.Lock(), pool.Value("i", 0)
            await pool.amap(aadd_under_lock, [lock] * 4, [total] * 4, [1000] * 4)
            q = pool.Queue()
            await q.put(total.value)
            return int(await q.get())

    assert asyncio.run(main()) == 4000


# -- the guide's producer/consumer: a queue between two tasks -----------------------------
DONE = None  # the guide's poison pill


def produce(q: Any, n: int) -> int:
    for i in range(n):
        q.put(i)
    q.put(DONE)
    return n


def consume(q: Any) -> int:
    total = 0
    while (item := q.get(timeout=SHORT_TIMEOUT)) is not DONE:
        total += item
    return total


async def aproduce(q: Any, n: int) -> int:
    for i in range(n):
        await q.put(i)
    await q.put(DONE)
    return n


async def aconsume(q: Any) -> int:
    total = 0
    while (item := await asyncio.wait_for(q.get(), SHORT_TIMEOUT)) is not DONE:
        total += item
    return total


def test_a_queue_carries_items_from_one_task_to_another(backend: str) -> None:
    n = 200
    with anypool.Pool(backend, workers=2) as pool:
        q = pool.Queue(0 if backend == "serial" else 10)  # serial: the producer runs first
        p = pool.submit(_fn(backend, produce, aproduce), q, n)
        c = pool.submit(_fn(backend, consume, aconsume), q)
        assert c.result(timeout=SHORT_TIMEOUT) == sum(range(n))
        assert p.result(timeout=SHORT_TIMEOUT) == n


def wait_then_report(ev: Any, started: Any) -> bool:
    started.set()
    return bool(ev.wait(SHORT_TIMEOUT))


def test_an_event_set_by_the_caller_wakes_a_waiting_task(backend: str) -> None:
    if backend in ("serial", "asyncio"):
        pytest.skip("serial runs the task in the caller; asyncio events are set inside the loop")
    with anypool.Pool(backend, workers=1) as pool:
        ev, started = pool.Event(), pool.Event()
        fut = pool.submit(wait_then_report, ev, started)
        assert started.wait(SHORT_TIMEOUT)
        assert not fut.done()
        ev.set()
        assert fut.result(timeout=SHORT_TIMEOUT) is True


def test_shutdown_without_waiting_leaves_the_manager_to_running_tasks() -> None:
    import gc

    pool = anypool.Pool("process", workers=1)
    q = pool.Queue()
    manager = _manager_process(pool)
    fut = pool.submit(consume, q)
    pool.shutdown(wait=False)
    q.put(5)
    q.put(DONE)
    assert fut.result(timeout=SHORT_TIMEOUT) == 5
    pool.shutdown(wait=True)
    assert manager.is_running()  # the caller still holds a proxy
    del q
    gc.collect()  # the last proxy is gone: the manager stops
    assert _gone(manager)


def wait_for_count(cond: Any, count: Any, target: int) -> bool:
    with cond:
        return bool(cond.wait_for(lambda: count.value >= target, SHORT_TIMEOUT))


def test_a_condition_wakes_a_task_in_another_worker(backend: str) -> None:
    if backend in ("serial", "asyncio"):
        pytest.skip("serial runs the task in the caller; asyncio: covered inside a task")
    with anypool.Pool(backend, workers=1) as pool:
        if backend == "dask":
            with pytest.raises(NotImplementedError, match=r"pool\.Event\(\)"):
                pool.Condition()
            return
        cond, count = pool.Condition(), pool.Value("i", 0)
        fut = pool.submit(wait_for_count, cond, count, 3)
        for _ in range(3):
            with cond:
                count.value += 1
                cond.notify_all()
        assert fut.result(timeout=SHORT_TIMEOUT) is True


# -- dask -----------------------------------------------------------------------------------
def _scheduler_state(dask_scheduler: Any, prefix: str) -> list[str]:
    """Names on the scheduler that start with ``prefix`` (run there by run_on_scheduler)."""
    ext = dask_scheduler.extensions
    names = [
        *ext["semaphores"].max_leases,
        *ext["events"]._events,
        *ext["queues"].queues,
        *ext["variables"].variables,
    ]
    return sorted(str(n) for n in names if str(n).startswith(prefix))


def test_dask_gives_distributed_kinds_and_leaves_nothing_on_the_scheduler(
    dask_cluster: str,
) -> None:
    import distributed

    from anypool._backends import _dask_sync

    with anypool.Pool("dask", workers=2) as pool:
        lock, sem, ev = pool.Lock(), pool.Semaphore(3), pool.Event()
        q, v, c = pool.Queue(), pool.Value("i", 1), pool.Counter()
        handle = pool.share(b"payload")
        assert isinstance(lock, _dask_sync.DaskLock)
        assert isinstance(lock._sem, distributed.Lock)
        assert isinstance(sem._sem, distributed.Semaphore)
        assert isinstance(handle, anypool.Shared)
        assert handle.value == b"payload"
        ev.set()
        q.put(1)
        assert c.increment(2) == 2
        prefix = pool._sync["dask"]._prefix  # type: ignore[attr-defined]
        key = handle._meta  # type: ignore[attr-defined]
        assert pool.submit(len, handle).result(timeout=SHORT_TIMEOUT) == 7
        with distributed.Client(dask_cluster, set_as_default=False) as other:
            made = other.run_on_scheduler(_scheduler_state, prefix=prefix)
            # two locks (for the value and the counter) besides the lock itself
            assert len(made) == 9, made
            assert key in other.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks))
    with distributed.Client(dask_cluster, set_as_default=False) as other:
        assert other.run_on_scheduler(_scheduler_state, prefix=prefix) == []
        assert key not in other.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks))
    assert (v.value, c.value) == (1, 2)  # their last values, read at shutdown
    # using them now says so clearly (not Dask's "IOLoop is closed", nor a re-created lock)
    for use in (
        lambda: lock.acquire(timeout=1),
        lambda: sem.release(),
        ev.is_set,
        lambda: q.put(2),
        lambda: c.increment(),
        lambda: setattr(v, "value", 5),
    ):
        with pytest.raises(anypool.ClosedPoolError, match="was shut down"):
            use()
    with distributed.Client(dask_cluster, set_as_default=False) as other:
        assert other.run_on_scheduler(_scheduler_state, prefix=prefix) == []


def test_dask_share_sends_the_object_once_per_worker_not_once_per_task(
    dask_cluster: str,
) -> None:
    global REDUCED
    REDUCED = 0
    big = Big(b"x" * 100_000)
    with anypool.Pool("dask", workers=2) as pool:
        handle = pool.share(big)
        assert isinstance(handle, anypool.Shared)
        assert handle.value is big
        assert REDUCED == 1
        seen = list(pool.map(peek, [handle] * 40, range(40), chunksize=1))
        assert {size for _, _, size in seen} == {100_000}
        counts: dict[int, set[int]] = {}
        for pid, n, _ in seen:
            counts.setdefault(pid, set()).add(n)
        # each worker rebuilt it once, before its first task, whatever the number of tasks
        assert all(len(ns) == 1 for ns in counts.values()), counts
        assert REDUCED == 1  # pickled once, here
        # the same object without share(): rebuilt for every task
        plain = list(pool.map(peek, [big] * 40, range(40), chunksize=1))
        assert REDUCED == 41
        grown = {pid: max(n for p, n, _ in plain if p == pid) - min(counts[pid]) for pid in counts}
        assert sum(grown.values()) >= 40 - len(counts), grown


def test_dask_primitives_work_in_a_pool_on_its_own_local_cluster(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import dask

    with dask.config.set({"scheduler-address": None}), anypool.Pool("dask", workers=1) as pool:
        sem = pool.Semaphore(2)
        sem.acquire()
        sem.release()
        with pytest.raises(ValueError, match="released too many times"):
            sem.release()  # a Dask semaphore cannot grow above its value
        lock, c = pool.Lock(), pool.Counter()
        assert pool.submit(count_up, c, 3).result(timeout=SHORT_TIMEOUT) == 3
        assert pool.submit(use_lock, lock).result(timeout=SHORT_TIMEOUT) is True
        q = pool.Queue(1)
        q.put("x")
        with pytest.raises(queue.Full):
            q.put("y", timeout=SHORT)
        assert q.get_nowait() == "x"
        with pytest.raises(queue.Empty):
            q.get_nowait()
    # its scheduler runs here: the timeouts the caller asked for are not logged as errors
    assert not [r for r in caplog.records if "Exception while handling op" in r.getMessage()]
