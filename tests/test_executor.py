"""Pool is a real concurrent.futures.Executor: conformance on every backend."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading

import pytest

import anypool
from conftest import SHORT_TIMEOUT, adapt


def square(x: int) -> int:
    return x * x


def identity(x: object) -> object:
    return x


class TestExecutor:
    def test_is_an_executor(self, backend: str) -> None:
        with anypool.Pool(backend) as pool:
            assert isinstance(pool, cf.Executor)

    def test_submit_returns_a_real_future(self, backend: str) -> None:
        with anypool.Pool(backend, workers=2) as pool:
            fut = pool.submit(adapt(backend, square), 7)
            assert isinstance(fut, cf.Future)
            assert fut.result(timeout=SHORT_TIMEOUT) == 49
            assert fut.done()
            assert not fut.cancelled()
            assert fut.exception() is None

    def test_submit_with_kwargs(self, backend: str) -> None:
        with anypool.Pool(backend, workers=2) as pool:
            fut = pool.submit(adapt(backend, divmod), 17, 5)
            assert fut.result(timeout=SHORT_TIMEOUT) == (3, 2)
            fut2 = pool.submit(adapt(backend, int), "ff", base=16)
            assert fut2.result(timeout=SHORT_TIMEOUT) == 255

    def test_exception_and_result_raise_the_task_error(self, backend: str) -> None:
        with anypool.Pool(backend, workers=2) as pool:
            fut = pool.submit(adapt(backend, int), "not a number")
            assert isinstance(fut.exception(timeout=SHORT_TIMEOUT), ValueError)
            with pytest.raises(ValueError, match="invalid literal"):
                fut.result(timeout=SHORT_TIMEOUT)

    def test_as_completed_wait_and_callbacks(self, backend: str) -> None:
        called = []
        with anypool.Pool(backend, workers=2) as pool:
            futs = [pool.submit(adapt(backend, square), i) for i in range(10)]
            for f in futs:
                f.add_done_callback(lambda f: called.append(f.result()))
            got = sorted(f.result() for f in cf.as_completed(futs, timeout=SHORT_TIMEOUT))
            assert got == [i * i for i in range(10)]
            done, not_done = cf.wait(futs, timeout=SHORT_TIMEOUT)
            assert len(done) == 10
            assert not not_done
        assert sorted(called) == [i * i for i in range(10)]

    def test_stdlib_map_signature_and_order(self, backend: str) -> None:
        with anypool.Pool(backend, workers=2) as pool:
            assert list(pool.map(adapt(backend, pow), [2, 3, 4], [2, 2, 2])) == [4, 9, 16]
            assert list(pool.map(adapt(backend, square), range(5), timeout=SHORT_TIMEOUT)) == [
                0,
                1,
                4,
                9,
                16,
            ]

    def test_wrap_future_in_asyncio(self, backend: str) -> None:
        with anypool.Pool(backend, workers=2) as pool:

            async def main() -> int:
                return await asyncio.wrap_future(pool.submit(adapt(backend, square), 9))

            assert asyncio.run(main()) == 81

    def test_run_in_executor(self, backend: str) -> None:
        if backend == "asyncio":
            pytest.skip("run_in_executor runs plain functions; the asyncio backend runs coroutines")
        with anypool.Pool(backend, workers=2) as pool:

            async def main() -> int:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(pool, square, 12)

            assert asyncio.run(main()) == 144

    def test_submit_after_shutdown_raises(self, backend: str) -> None:
        pool = anypool.Pool(backend)
        pool.shutdown()
        with pytest.raises(RuntimeError, match="shut down"):
            pool.submit(adapt(backend, square), 1)
        with pytest.raises(anypool.ClosedPoolError):
            pool.map(adapt(backend, square), [1])
        pool.shutdown()  # a second shutdown is harmless

    def test_max_workers_is_another_name_for_workers(self, backend: str) -> None:
        with anypool.Pool(backend, max_workers=1) as pool:
            assert pool.workers == 1
        with pytest.raises(ValueError, match="disagree"):
            anypool.Pool(backend, workers=2, max_workers=3)

    def test_shutdown_waits_for_unconsumed_map(self, backend: str) -> None:
        # stdlib semantics: work handed to map runs even if nobody reads the results
        with anypool.Pool(backend, workers=2) as pool:
            it = pool.map(adapt(backend, square), range(50))
        assert list(it) == [i * i for i in range(50)]


class TestCancel:
    """Blocking tasks hold the workers on an Event; a queued future can then be cancelled."""

    @pytest.mark.parametrize("backend", ["thread"])
    def test_cancel_a_queued_future(self, backend: str) -> None:
        gate = threading.Event()
        started = threading.Event()
        ran = []

        def block() -> None:
            started.set()
            gate.wait(SHORT_TIMEOUT)

        with anypool.Pool(backend, workers=1) as pool:
            try:
                first = pool.submit(block)
                assert started.wait(SHORT_TIMEOUT)
                second = pool.submit(ran.append, 1)
                assert second.cancel()
                assert second.cancelled()
                assert not first.cancel()  # running: cannot be cancelled
                assert first.running()
            finally:
                gate.set()
        assert ran == []

    @pytest.mark.parametrize("backend", ["thread"])
    def test_shutdown_cancel_futures(self, backend: str) -> None:
        gate = threading.Event()
        started = threading.Event()

        def block() -> str:
            started.set()
            gate.wait(SHORT_TIMEOUT)
            return "done"

        pool = anypool.Pool(backend, workers=1)
        try:
            first = pool.submit(block)
            assert started.wait(SHORT_TIMEOUT)
            queued = [pool.submit(square, i) for i in range(5)]
            pool.shutdown(wait=False, cancel_futures=True)
            assert all(f.cancelled() for f in queued)
        finally:
            gate.set()
        pool.shutdown(wait=True)
        assert first.result(timeout=SHORT_TIMEOUT) == "done"

    def test_terminate_twice_still_lets_idle_workers_go(self, backend: str) -> None:
        # a second shutdown(cancel_futures=True) used to swallow the first one's wake-up
        # sentinel on the thread backend: its idle workers then waited forever
        pool = anypool.Pool(backend, workers=2)
        assert list(pool.imap(adapt(backend, square), range(8))) == [x * x for x in range(8)]
        pool.terminate()
        pool.terminate()
        for t in threading.enumerate():
            if t.name.startswith("anypool"):
                t.join(SHORT_TIMEOUT)
                assert not t.is_alive(), t

    def test_map_timeout_raises_timeout_error(self) -> None:
        gate = threading.Event()

        def block(x: int) -> int:
            gate.wait(SHORT_TIMEOUT)
            return x

        with anypool.Pool("thread", workers=1) as pool:
            try:
                it = pool.map(block, [1, 2], timeout=0.05)
                with pytest.raises(TimeoutError):
                    next(it)
            finally:
                gate.set()


class TestWorkerContext:
    def test_initializer_runs_once_per_worker_and_state_is_per_worker(self, backend: str) -> None:
        with anypool.Pool(backend, workers=2, initializer=init_state, initargs=("model",)) as pool:
            out = list(pool.map(adapt(backend, read_state), range(20)))
        assert {o[1] for o in out} == {"model"}
        assert all(o[2] == 1 for o in out)  # the initializer ran once in each worker

    def test_current_worker_outside_a_task(self) -> None:
        with pytest.raises(RuntimeError, match="outside a task"):
            anypool.current_worker()

    def test_max_tasks_per_worker_recycles_workers(self, backend: str) -> None:
        if backend == "asyncio":
            pytest.skip("asyncio has one event loop, nothing to recycle")
        if backend == "dask":
            # Dask workers are long-lived processes anypool does not own: a clear error
            with pytest.raises(ValueError, match="not supported on the dask backend.*lifetime"):
                anypool.Pool(backend, workers=1, max_tasks_per_worker=2)
            return
        with anypool.Pool(backend, workers=1, max_tasks_per_worker=2) as pool:
            ids = [
                pool.submit(adapt(backend, worker_id)).result(timeout=SHORT_TIMEOUT)
                for _ in range(6)
            ]
        assert len(set(ids)) == 3

    def test_failing_initializer_breaks_the_pool_with_a_clear_error(self, backend: str) -> None:
        with anypool.Pool(backend, workers=1, initializer=bad_init) as pool:
            fut = pool.submit(adapt(backend, square), 2)
            with pytest.raises(anypool.BrokenPoolError) as info:
                fut.result(timeout=SHORT_TIMEOUT)
        assert "initializer" in str(info.value)


def init_state(name: str) -> None:
    st = anypool.current_worker().state
    st["name"] = name
    st["inits"] = st.get("inits", 0) + 1


def read_state(_x: int) -> tuple[int, str, int]:
    w = anypool.current_worker()
    return (w.id, w.state["name"], w.state["inits"])


def worker_id() -> int:
    return anypool.current_worker().id


def bad_init() -> None:
    raise OSError("cannot load the model")


@pytest.mark.parametrize("given", [None, 5])
def test_map_keeps_the_pools_chunksize_unless_given(given: int | None) -> None:
    """``Pool(chunksize=7).map(fn, xs)`` uses 7; an explicit ``chunksize=`` in map wins."""
    sizes: list[int] = []
    with anypool.Pool("thread", workers=2, chunksize=7) as pool:
        real = pool._backend.submit_chunk

        def spy(fn, items, retry, **kw):  # type: ignore[no-untyped-def]
            sizes.append(len(items))
            return real(fn, items, retry, **kw)

        pool._backend.submit_chunk = spy  # type: ignore[method-assign]
        kwargs = {} if given is None else {"chunksize": given}
        assert list(pool.map(square, range(35), **kwargs)) == [x * x for x in range(35)]
    expected = 7 if given is None else 5
    assert sizes
    assert set(sizes) == {expected}
