"""Any ``concurrent.futures.Executor`` as a backend: anypool's policy over a foreign engine.

Each behaviour runs over the standard library's thread and process executors, loky's
reusable executor (joblib's copy) and Dask's ``client.get_executor()`` on the session cluster.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import anypool

KINDS = ["thread", "process", "loky", "dask"]


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad input {x}")
    return x


class Flaky(Exception):
    pass


def _make(kind: str, request: pytest.FixtureRequest) -> tuple[cf.Executor, Any]:
    """The executor, and what to close after the test (None: the test closes nothing)."""
    if kind == "thread":
        ex: cf.Executor = cf.ThreadPoolExecutor(2)
        return ex, ex
    if kind == "process":
        import multiprocessing as mp

        ex = cf.ProcessPoolExecutor(2, mp_context=mp.get_context("forkserver"))
        return ex, ex
    if kind == "loky":
        loky = pytest.importorskip("joblib.externals.loky", reason="joblib (the bench extra)")
        ex = loky.get_reusable_executor(max_workers=2)
        return ex, ex  # reusable, but the leak check wants its workers gone after each test
    pytest.importorskip("distributed", reason="the dask extra")
    from distributed import Client

    address = request.getfixturevalue("dask_cluster")
    client = Client(address, set_as_default=False)
    return client.get_executor(), client


@pytest.fixture(params=KINDS)
def executor(request: pytest.FixtureRequest) -> Iterator[cf.Executor]:
    ex, owner = _make(request.param, request)
    try:
        yield ex
    finally:
        if owner is not None:
            if isinstance(owner, cf.Executor):
                owner.shutdown(wait=True)
            else:
                owner.close()


def test_map_in_order_and_executor_left_running(executor: cf.Executor) -> None:
    assert anypool.map(square, range(50), backend=executor) == [x * x for x in range(50)]
    with anypool.Pool(executor) as pool:
        assert pool.backend == "executor"
        assert list(pool.imap(square, range(10), chunksize=3)) == [x * x for x in range(10)]
        assert sorted(pool.imap_unordered(square, range(10))) == [x * x for x in range(10)]
        assert pool.submit(square, 7).result(timeout=30) == 49
    # the pool shut down; the executor is the caller's and still runs work
    assert executor.submit(square, 3).result(timeout=30) == 9


def test_lambdas_and_closures_travel(executor: cf.Executor) -> None:
    k = 5
    assert anypool.map(lambda x: x + k, range(6), backend=executor) == [5, 6, 7, 8, 9, 10]


async def _async_square(x: int) -> int:
    return x * x


def test_coroutine_functions_run_to_completion(executor: cf.Executor) -> None:
    assert anypool.map(_async_square, range(5), backend=executor) == [0, 1, 4, 9, 16]
    with anypool.Pool(executor) as pool:
        assert pool.submit(_async_square, 6).result(timeout=30) == 36


def test_errors_raise_and_collect(executor: cf.Executor) -> None:
    with pytest.raises(ValueError, match="bad input 3"):
        anypool.map(fail_on_three, range(6), backend=executor, chunksize=2)
    out = anypool.map(fail_on_three, range(6), backend=executor, errors="collect")
    assert [r.ok for r in out] == [True, True, True, False, True, True]
    assert isinstance(out[3].error, ValueError)


def test_retries_with_retry_on_defined_here(executor: cf.Executor, tmp_path: Any) -> None:
    marker = tmp_path / "failed-once"

    def flaky(x: int) -> int:
        if x == 2 and not marker.exists():
            marker.touch()
            raise Flaky("first attempt")
        return x

    out = anypool.map(flaky, range(4), backend=executor, retries=1, retry_on=Flaky)
    assert out == [0, 1, 2, 3]
    assert marker.exists()


def test_lazy_window_reads_input_as_it_goes(executor: cf.Executor) -> None:
    read = itertools.count()

    def source() -> Iterator[int]:
        for i in range(10_000):
            next(read)
            yield i

    it = anypool.imap(square, source(), backend=executor, chunksize=1)
    assert next(it) == 0
    seen = next(read)  # how many inputs were read to give the first result
    assert seen < 1_000, f"read {seen} inputs ahead: the window is not bounded"
    it.close()  # type: ignore[attr-defined]


def test_progress_and_trace(executor: cf.Executor, tmp_path: Any) -> None:
    path = tmp_path / "run.json"
    out = anypool.map(square, range(20), backend=executor, trace=str(path), chunksize=5)
    assert out == [x * x for x in range(20)]
    text = path.read_text()
    assert '"traceEvents"' in text


def test_primitives_of_a_foreign_executor_say_what_to_use(executor: cf.Executor) -> None:
    with anypool.Pool(executor) as pool:
        if isinstance(executor, cf.ThreadPoolExecutor):
            assert isinstance(pool.Lock(), type(threading.Lock()))
            return
        with pytest.raises(NotImplementedError, match="does not own that executor's workers"):
            pool.Lock()
        obj = [1, 2, 3]
        assert pool.share(obj) is obj


def test_timeout_fails_the_task_and_says_it_runs_on() -> None:
    release = threading.Event()

    def hold(x: int) -> int:
        assert release.wait(30)
        return x

    with cf.ThreadPoolExecutor(1) as ex, anypool.Pool(ex) as pool:
        try:
            # the executor's one thread is held: the task never starts and is cancelled
            held = pool.submit(hold, 1)
            with pytest.raises(anypool.TaskTimeoutError, match="had not started"):
                anypool.map(hold, [2], backend=ex, task_timeout=0.2, chunksize=1)
            # a running task cannot be stopped: it fails at its deadline and runs on
            release.set()
            assert held.result(timeout=30) == 1
            release.clear()
            with pytest.raises(anypool.TaskTimeoutError, match="cannot stop a running task"):
                anypool.map(hold, [3], backend=ex, task_timeout=0.2, chunksize=1)
        finally:
            release.set()


def test_options_the_executor_cannot_honour() -> None:
    with cf.ThreadPoolExecutor(1) as ex:
        with pytest.raises(ValueError, match="initializer= cannot be used"):
            anypool.Pool(ex, initializer=print)
        with pytest.raises(ValueError, match="max_tasks_per_worker= cannot be used"):
            anypool.Pool(ex, max_tasks_per_worker=3)
        with pytest.raises(TypeError, match="unknown option"):
            anypool.Pool(ex, start_method="spawn")
    with anypool.Pool("thread", 1) as inner, pytest.raises(TypeError, match="already anypool"):
        anypool.Pool(inner)


def test_workers_follow_the_executor() -> None:
    with cf.ThreadPoolExecutor(3) as ex:
        with anypool.Pool(ex) as pool:
            assert pool.workers == 3
        with anypool.Pool(ex, workers=1) as pool:
            assert pool.workers == 1
