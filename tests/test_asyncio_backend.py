"""The asyncio backend: behaviour specific to running coroutines on an event loop.

The cross-backend contract (map, Executor, errors) is in the shared suite; this file covers
what only the asyncio backend does: its own loop thread from sync code, the caller's loop
from async code, bounded concurrency, cancellation on timeout, the initializer, the blocking
call guard and shutdown. Synchronisation uses events and queues, never sleeps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import importlib.util
import threading
from typing import Any

import pytest

import anypool
from anypool._core._abc import WorkerSpec
from anypool._core._tasks import Retry
from conftest import SHORT_TIMEOUT

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


def plain_double(x: int) -> int:
    return 2 * x


def run(coro: Any) -> Any:
    """Run ``coro`` on a fresh default event loop with a deadline."""

    async def bounded() -> Any:
        async with asyncio.timeout(SHORT_TIMEOUT):
            return await coro

    return asyncio.run(bounded())


def loop_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("anypool-asyncio")}


class TestWhereTasksRun:
    def test_sync_caller_gets_an_own_loop_thread(self) -> None:
        seen: list[tuple[str, bool]] = []

        async def where(x: int) -> int:
            seen.append((threading.current_thread().name, threading.current_thread().daemon))
            return x

        assert anypool.map(where, range(20), backend="asyncio") == list(range(20))
        names = {name for name, _ in seen}
        assert len(names) == 1
        assert names.pop().startswith("anypool-asyncio")
        assert all(daemon for _, daemon in seen)

    @pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed")
    def test_own_loop_is_uvloop_when_installed(self) -> None:
        async def loop_module() -> str:
            return type(asyncio.get_running_loop()).__module__

        with anypool.Pool("asyncio") as pool:
            assert pool.submit(loop_module).result(SHORT_TIMEOUT).startswith("uvloop")

    def test_uvloop_false_gives_the_default_loop(self) -> None:
        async def loop_module() -> str:
            return type(asyncio.get_running_loop()).__module__

        with anypool.Pool("asyncio", uvloop=False) as pool:
            assert pool.submit(loop_module).result(SHORT_TIMEOUT).startswith("asyncio")

    def test_async_caller_shares_its_loop(self) -> None:
        async def main() -> None:
            caller = asyncio.get_running_loop()
            me = threading.current_thread()

            async def where(x: int) -> int:
                assert asyncio.get_running_loop() is caller
                assert threading.current_thread() is me
                return x

            assert await anypool.amap(where, range(50), workers=7) == list(range(50))
            async with anypool.Pool("asyncio", workers=3) as pool:
                assert [x async for x in pool.aimap(where, range(10))] == list(range(10))
                assert await asyncio.wrap_future(pool.submit(where, 5)) == 5
            assert not loop_threads()

        run(main())

    def test_amap_unordered(self) -> None:
        async def main() -> list[int]:
            return await anypool.amap(double, range(100), workers=10, ordered=False)

        assert sorted(run(main())) == [2 * i for i in range(100)]

    def test_submit_with_kwargs(self) -> None:
        async def add(a: int, *, b: int) -> int:
            return a + b

        with anypool.Pool("asyncio") as pool:
            assert pool.submit(add, 1, b=2).result(SHORT_TIMEOUT) == 3

    def test_context_variables_of_the_creator_are_seen(self) -> None:
        import contextvars

        var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

        async def read(_: int) -> str:
            return var.get()

        token = var.set("from the creator")
        try:
            with anypool.Pool("asyncio") as pool:
                assert list(pool.map(read, range(3))) == ["from the creator"] * 3
        finally:
            var.reset(token)


class TestCallableCheck:
    def test_plain_function_is_a_type_error(self) -> None:
        with (
            anypool.Pool("asyncio") as pool,
            pytest.raises(TypeError, match="plain_double") as info,
        ):
            pool.submit(plain_double, 1)
        msg = str(info.value)
        assert "async def" in msg
        assert 'backend="thread"' in msg

    def test_plain_function_in_map_is_a_type_error(self) -> None:
        with pytest.raises(TypeError, match="asyncio backend runs `async def`"):
            anypool.map(plain_double, [1, 2], backend="asyncio")

    def test_partial_and_async_callable_objects_are_accepted(self) -> None:
        import functools

        class Adder:
            async def __call__(self, a: int, b: int) -> int:
                return a + b

        with anypool.Pool("asyncio") as pool:
            assert pool.submit(functools.partial(Adder(), 1), 2).result(SHORT_TIMEOUT) == 3


class TestConcurrency:
    @pytest.mark.parametrize("workers", [1, 4, 16])
    def test_never_more_than_workers_at_once(self, workers: int) -> None:
        # the first `workers` tasks only finish once `workers` of them run together, so the
        # test also proves the limit is reached (it would hang, and time out, otherwise)
        state = {"running": 0, "peak": 0}
        full = asyncio.Event()

        async def task(x: int) -> int:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
            if state["running"] == workers:
                full.set()
            await full.wait()
            await asyncio.sleep(0)
            state["running"] -= 1
            return x

        async def main() -> list[int]:
            return await anypool.amap(task, range(200), workers=workers)

        assert run(main()) == list(range(200))
        assert state["peak"] == workers

    def test_bounded_from_sync_code(self) -> None:
        state = {"running": 0, "peak": 0}

        async def task(x: int) -> int:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
            for _ in range(3):
                await asyncio.sleep(0)
            state["running"] -= 1
            return x

        assert anypool.map(task, range(500), backend="asyncio", workers=8) == list(range(500))
        assert 1 <= state["peak"] <= 8

    def test_items_of_a_batch_run_concurrently(self) -> None:
        # 16 tasks that each wait for all 16 to have started: fine only if a whole batch
        # runs at once
        started = 0
        all_in = asyncio.Event()

        async def task(x: int) -> int:
            nonlocal started
            started += 1
            if started == 16:
                all_in.set()
            await all_in.wait()
            return x

        async def main() -> list[int]:
            return await anypool.amap(task, range(16), workers=16)

        assert run(main()) == list(range(16))

    def test_default_workers(self) -> None:
        with anypool.Pool("asyncio") as pool:
            assert pool.workers == 100


class TestTimeout:
    def test_task_timeout_cancels_the_coroutine(self) -> None:
        cancelled = asyncio.Event()

        async def hang(x: int) -> int:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return x

        async def main() -> None:
            with pytest.raises(anypool.TaskTimeoutError) as info:
                await anypool.amap(hang, [41], task_timeout=0.05)
            msg = str(info.value)
            assert "hang" in msg
            assert "41" in msg
            assert "task_timeout=0.05" in msg
            assert isinstance(info.value, TimeoutError)
            await asyncio.wait_for(cancelled.wait(), SHORT_TIMEOUT)

        run(main())

    def test_submit_timeout_from_sync_code(self) -> None:
        cancelled = threading.Event()

        async def hang(x: int) -> int:
            try:
                await asyncio.Event().wait()
            finally:
                cancelled.set()
            return x

        with anypool.Pool("asyncio", task_timeout=0.05) as pool:
            fut = pool.submit(hang, 7)
            with pytest.raises(anypool.TaskTimeoutError, match=r"hang\(7\)"):
                fut.result(SHORT_TIMEOUT)
            assert cancelled.wait(SHORT_TIMEOUT)

    def test_other_tasks_are_not_affected(self) -> None:
        async def maybe_hang(x: int) -> int:
            if x == 3:
                await asyncio.Event().wait()
            return x

        out = anypool.map(
            maybe_hang, range(8), backend="asyncio", task_timeout=0.05, errors="collect"
        )
        assert [r.ok for r in out] == [i != 3 for i in range(8)]
        assert isinstance(out[3].error, anypool.TaskTimeoutError)

    def test_own_timeout_error_is_not_a_task_timeout(self) -> None:
        async def raises(x: int) -> int:
            raise TimeoutError("my own")

        with pytest.raises(TimeoutError, match="my own") as info:
            anypool.map(raises, [1], backend="asyncio", task_timeout=10)
        assert not isinstance(info.value, anypool.TaskTimeoutError)


class TestRetries:
    def test_retries_until_success(self) -> None:
        calls: dict[int, int] = {}

        async def flaky(x: int) -> int:
            calls[x] = calls.get(x, 0) + 1
            if calls[x] < 3:
                raise ConnectionError(f"try {calls[x]}")
            return x

        assert anypool.map(flaky, range(3), backend="asyncio", retries=2) == [0, 1, 2]
        assert calls == {0: 3, 1: 3, 2: 3}

    def test_gives_up_after_the_retries(self) -> None:
        calls = 0

        async def broken(x: int) -> int:
            nonlocal calls
            calls += 1
            raise ConnectionError("down")

        with anypool.Pool("asyncio", retries=1) as pool:
            fut = pool.submit(broken, 1)
            with pytest.raises(ConnectionError, match="down") as info:
                fut.result(SHORT_TIMEOUT)
        assert calls == 2
        assert any("gave up after 2 attempts" in n for n in info.value.__notes__)

    def test_retry_on_limits_what_is_retried(self) -> None:
        calls = 0

        async def fails(x: int) -> int:
            nonlocal calls
            calls += 1
            raise KeyError(x)

        with pytest.raises(KeyError):
            anypool.map(fails, [1], backend="asyncio", retries=3, retry_on=ConnectionError)
        assert calls == 1


class TestWorkerContext:
    def test_current_worker_inside_a_task(self) -> None:
        async def who(_: int) -> anypool.WorkerContext:
            return anypool.current_worker()

        with anypool.Pool("asyncio", workers=5) as pool:
            ctxs = list(pool.map(who, range(20)))
        assert all(c is ctxs[0] for c in ctxs)
        assert ctxs[0].id == 0
        assert ctxs[0].backend == "asyncio"
        assert ctxs[0].thread.startswith("anypool-asyncio")
        assert ctxs[0].tasks_done == 20

    def test_current_worker_on_the_callers_loop(self) -> None:
        async def who(_: int) -> tuple[int, str]:
            w = anypool.current_worker()
            return w.id, w.backend

        async def main() -> list[tuple[int, str]]:
            out = await anypool.amap(who, range(3))
            with pytest.raises(RuntimeError, match="outside a task"):
                anypool.current_worker()  # not leaked into the caller's task
            return out

        assert run(main()) == [(0, "asyncio")] * 3


class TestInitializer:
    def test_async_initializer_runs_once_before_the_first_task(self) -> None:
        calls: list[str] = []

        async def init(tag: str) -> None:
            await asyncio.sleep(0)
            calls.append(tag)
            anypool.current_worker().state["conn"] = tag

        async def use(_: int) -> str:
            return str(anypool.current_worker().state["conn"])

        with anypool.Pool("asyncio", workers=10, initializer=init, initargs=("db",)) as pool:
            assert list(pool.map(use, range(50))) == ["db"] * 50
        assert calls == ["db"]

    def test_sync_initializer(self) -> None:
        calls = 0

        def init() -> None:
            nonlocal calls
            calls += 1

        async def main() -> list[int]:
            async with anypool.Pool("asyncio", workers=4, initializer=init) as pool:
                return await pool.amap(double, range(10))

        assert run(main()) == [2 * i for i in range(10)]
        assert calls == 1

    def test_failing_initializer_breaks_the_pool(self) -> None:
        ran = False

        async def init() -> None:
            raise OSError("no database")

        async def task(x: int) -> int:
            nonlocal ran
            ran = True
            return x

        with anypool.Pool("asyncio", workers=3, initializer=init) as pool:
            futs = [pool.submit(task, i) for i in range(5)]
            for f in futs:
                with pytest.raises(anypool.InitializerError, match="no database") as info:
                    f.result(SHORT_TIMEOUT)
                assert isinstance(info.value.__cause__, OSError)
                assert isinstance(info.value, anypool.BrokenPoolError)
            with pytest.raises(anypool.BrokenPoolError):
                pool.submit(task, 9)
        assert not ran

    def test_failing_initializer_in_map(self) -> None:
        def init() -> None:
            raise ValueError("bad config")

        with pytest.raises(anypool.InitializerError) as info:
            anypool.map(double, range(40), backend="asyncio", initializer=init)
        assert isinstance(info.value.__cause__, ValueError)

    def test_max_tasks_per_worker_is_refused(self) -> None:
        with pytest.raises(ValueError, match="max_tasks_per_worker is not meaningful"):
            anypool.Pool("asyncio", max_tasks_per_worker=10)
        assert not loop_threads()

    def test_unknown_option_is_refused(self) -> None:
        with pytest.raises(TypeError, match="start_method"):
            anypool.Pool("asyncio", start_method="fork")


class TestBlockingCallGuard:
    def test_blocking_map_inside_the_loop_is_refused(self) -> None:
        async def main() -> None:
            async with anypool.Pool("asyncio") as pool:
                with pytest.raises(RuntimeError, match="deadlock") as info:
                    list(pool.map(double, [1, 2]))
                msg = str(info.value)
                assert "await pool.amap" in msg
                assert "async for x in pool.aimap" in msg
                assert "async with Pool" in msg
                with pytest.raises(RuntimeError, match="deadlock"):
                    list(pool.imap(double, [1, 2]))
                # the pool still works the async way
                assert await pool.amap(double, [1, 2]) == [2, 4]

        run(main())

    def test_plain_with_block_inside_the_loop_runs_on_an_own_loop(self) -> None:
        # issue 11: sync use first (a Jupyter cell, an async def calling sync code) runs the
        # tasks on the pool's own loop in a helper thread, never on the blocked caller's loop
        async def main() -> None:
            caller = asyncio.get_running_loop()

            async def where(x: int) -> bool:
                return asyncio.get_running_loop() is caller

            with anypool.Pool("asyncio") as pool:
                assert list(pool.map(where, [1, 2])) == [False, False]
                assert pool.submit(where, 1).result(SHORT_TIMEOUT) is False
                # async use afterwards works too (it awaits the own loop's futures)
                assert await pool.amap(where, [1]) == [False]
            with anypool.Pool("asyncio"):
                pass  # nothing ran on the caller's loop: nothing to wait for, no error
            assert not loop_threads()

        run(main())

    def test_blocking_call_after_async_use_raises_once_and_stops_the_pool(self) -> None:
        async def main() -> anypool.Pool:
            pool = anypool.Pool("asyncio")
            assert await pool.amap(double, [1]) == [2]  # its tasks now run on this loop
            with pytest.raises(RuntimeError, match="deadlock") as info, pool:
                list(pool.map(double, [1, 2]))
            # only the map's error: leaving the block added no second one
            assert info.value.__context__ is None
            assert "await anypool.amap" in str(info.value)
            return pool

        pool = run(main())
        assert pool._closed
        with pytest.raises(anypool.ClosedPoolError):
            pool.submit(double, 1)

    def test_plain_with_block_after_async_work_stops_the_pool_before_raising(self) -> None:
        async def main() -> tuple[anypool.Pool, list[int]]:
            with (
                pytest.raises(RuntimeError, match="async with Pool"),
                anypool.Pool("asyncio", workers=3) as pool,
            ):
                out = await pool.amap(double, [1, 2, 3])
            # the worker tasks were cancelled, not left pending on the loop
            await asyncio.sleep(0)
            mine = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            assert mine == []
            return pool, out

        pool, out = run(main())
        assert out == [2, 4, 6]
        assert pool._closed

    def test_task_blocking_on_its_own_pool_is_refused(self) -> None:
        with anypool.Pool("asyncio", workers=2) as pool:

            async def nested(x: int) -> int:
                return sum(pool.map(double, [x]))

            with pytest.raises(RuntimeError, match="deadlock"):
                pool.submit(nested, 1).result(SHORT_TIMEOUT)

    def test_blocking_from_another_thread_is_fine(self) -> None:
        # a pool bound to a running loop may be used with blocking calls from other threads
        async def main() -> list[int]:
            async with anypool.Pool("asyncio", workers=4) as pool:
                return await asyncio.to_thread(lambda: list(pool.map(double, range(10))))

        assert run(main()) == [2 * i for i in range(10)]


class TestShutdown:
    def test_no_thread_left_after_shutdown(self) -> None:
        before = loop_threads()
        pool = anypool.Pool("asyncio")
        assert pool.submit(double, 1).result(SHORT_TIMEOUT) == 2
        (thread,) = loop_threads() - before
        pool.shutdown()
        assert not thread.is_alive()
        assert thread not in threading.enumerate()

    def test_shutdown_without_wait_still_ends_the_thread(self) -> None:
        release = threading.Event()

        async def held(x: int) -> int:
            await asyncio.to_thread(release.wait, SHORT_TIMEOUT)
            return x

        pool = anypool.Pool("asyncio")
        (thread,) = loop_threads()
        fut = pool.submit(held, 3)
        pool.shutdown(wait=False)
        assert thread.is_alive()
        release.set()
        assert fut.result(SHORT_TIMEOUT) == 3
        thread.join(SHORT_TIMEOUT)
        assert not thread.is_alive()
        pool.shutdown()  # a second call is harmless

    def test_shutdown_waits_for_queued_work(self) -> None:
        done: list[int] = []

        async def task(x: int) -> int:
            await asyncio.sleep(0)
            done.append(x)
            return x

        pool = anypool.Pool("asyncio", workers=2)
        futs = [pool.submit(task, i) for i in range(20)]
        pool.shutdown(wait=True)
        assert sorted(done) == list(range(20))
        assert all(f.done() and not f.cancelled() for f in futs)

    def test_submit_after_shutdown(self) -> None:
        pool = anypool.Pool("asyncio")
        pool.shutdown()
        pool.shutdown()
        with pytest.raises(anypool.ClosedPoolError):
            pool.submit(double, 1)

    def test_backend_submit_after_shutdown(self) -> None:
        backend = anypool.get_backend("asyncio")(WorkerSpec(workers=2))
        backend.start()
        backend.shutdown(wait=True)
        backend.shutdown(wait=True)
        with pytest.raises(anypool.ClosedPoolError):
            backend.submit(double, (1,), {})
        with pytest.raises(anypool.ClosedPoolError):
            backend.submit_chunk(double, [(1,)], Retry())

    def test_ashutdown_of_an_own_loop_from_async_code(self) -> None:
        pool = anypool.Pool("asyncio")  # created in sync code: it owns a loop thread
        (thread,) = loop_threads()

        async def main() -> int:
            async with pool:
                result: int = await asyncio.wrap_future(pool.submit(double, 4))
            return result

        assert run(main()) == 8
        assert not thread.is_alive()

    def test_tasks_left_when_the_callers_loop_ends(self) -> None:
        # a pool bound to a loop that ends without shutdown: its workers are cancelled with
        # the loop, and the pool refuses new work afterwards with a clear error
        holder: dict[str, anypool.Pool] = {}

        async def main() -> None:
            pool = anypool.Pool("asyncio", workers=2)
            holder["pool"] = pool
            assert await pool.amap(double, [1, 2, 3]) == [2, 4, 6]

        run(main())
        with pytest.raises(anypool.BrokenPoolError, match="event loop"):
            holder["pool"].submit(double, 1)
        holder["pool"].shutdown()

    def test_work_left_when_the_callers_loop_ends_does_not_hang(self) -> None:
        futs: list[cf.Future[Any]] = []
        started = asyncio.Event()

        async def hang(x: int) -> int:
            started.set()
            await asyncio.Event().wait()
            return x

        async def main() -> None:
            pool = anypool.Pool("asyncio", workers=1)
            await pool.__aenter__()  # async use first: its tasks run on this loop
            futs.append(pool.submit(hang, 1))  # will be running
            futs.append(pool.submit(hang, 2))  # will be queued
            await started.wait()

        run(main())  # ends without a shutdown: its tasks are cancelled
        running, queued = futs
        with pytest.raises(anypool.BrokenPoolError, match="event loop running it is shutting"):
            running.result(SHORT_TIMEOUT)
        assert queued.cancelled()


class _Blocked:
    """A coroutine that holds the only slot until released, and one that records its runs."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.ran: list[int] = []

    async def blocker(self, x: int) -> int:
        self.started.set()
        await asyncio.to_thread(self.release.wait, SHORT_TIMEOUT)
        return x

    async def task(self, x: int) -> int:
        self.ran.append(x)
        return x


class TestCancel:
    def test_cancelled_queued_future_never_runs(self) -> None:
        b = _Blocked()
        started, release, ran, blocker, task = b.started, b.release, b.ran, b.blocker, b.task
        with anypool.Pool("asyncio", workers=1) as pool:
            first = pool.submit(blocker, 1)
            assert started.wait(SHORT_TIMEOUT)
            queued = pool.submit(task, 2)
            assert queued.cancel()
            release.set()
            assert first.result(SHORT_TIMEOUT) == 1
            assert pool.submit(task, 3).result(SHORT_TIMEOUT) == 3
        assert queued.cancelled()
        assert ran == [3]

    def test_shutdown_cancel_futures(self) -> None:
        b = _Blocked()
        started, release, ran, blocker, task = b.started, b.release, b.ran, b.blocker, b.task
        pool = anypool.Pool("asyncio", workers=1)
        first = pool.submit(blocker, 1)
        assert started.wait(SHORT_TIMEOUT)
        queued = [pool.submit(task, i) for i in range(5)]
        pool.shutdown(wait=False, cancel_futures=True)
        release.set()
        assert first.result(SHORT_TIMEOUT) == 1
        for f in queued:
            with pytest.raises(cf.CancelledError):
                f.result(SHORT_TIMEOUT)
        pool.shutdown()  # joins the loop thread
        assert ran == []

    def test_cancelled_chunk_never_runs(self) -> None:
        b = _Blocked()
        started, release, ran, blocker, task = b.started, b.release, b.ran, b.blocker, b.task
        backend = anypool.get_backend("asyncio")(WorkerSpec(workers=1))
        backend.start()
        try:
            first = backend.submit(blocker, (1,), {})
            assert started.wait(SHORT_TIMEOUT)
            chunk = backend.submit_chunk(task, [(i,) for i in range(4)], Retry())
            assert chunk.cancel()
            release.set()
            assert first.result(SHORT_TIMEOUT) == 1
            later = backend.submit_chunk(task, [(7,), (8,)], Retry())
            assert later.result(SHORT_TIMEOUT).values == [7, 8]
        finally:
            backend.shutdown(wait=True)
        assert ran == [7, 8]


class TestChunks:
    def test_chunk_result_values_errors_and_wall(self) -> None:
        async def maybe_fail(x: int) -> int:
            await asyncio.sleep(0)
            if x % 3 == 0:
                raise ValueError(f"bad {x}")
            return x

        backend = anypool.get_backend("asyncio")(WorkerSpec(workers=4))
        backend.start()
        try:
            res = backend.submit_chunk(maybe_fail, [(i,) for i in range(7)], Retry()).result(
                SHORT_TIMEOUT
            )
        finally:
            backend.shutdown(wait=True)
        assert res.values == [None, 1, 2, None, 4, 5, None]
        assert res.errors is not None
        assert sorted(res.errors) == [0, 3, 6]
        assert str(res.errors[3]) == "bad 3"
        assert res.wall >= 0.0
        assert res.cpu == 0.0

    def test_errors_collect_keeps_order(self) -> None:
        async def maybe_fail(x: int) -> int:
            if x == 5:
                raise KeyError(x)
            return x

        out = anypool.map(maybe_fail, range(40), backend="asyncio", errors="collect")
        assert [r.ok for r in out] == [i != 5 for i in range(40)]
        assert [r.value for r in out if r.ok] == [i for i in range(40) if i != 5]

    def test_first_error_is_raised_with_its_input(self) -> None:
        async def maybe_fail(x: int) -> int:
            if x == 21:
                raise KeyError("boom")
            return x

        with pytest.raises(KeyError) as info:
            anypool.map(maybe_fail, range(40), backend="asyncio")
        assert any("input #21" in n for n in info.value.__notes__)


def test_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import runpy
    from pathlib import Path

    path = Path(__file__).parent.parent / "examples" / "asyncio_backend.py"
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert "200 pages from sync code" in out
    assert "200 pages from async code" in out
    assert "refused:" in out
    assert "fixed: 10 pages" in out
