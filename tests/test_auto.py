"""backend="auto": measures the first inputs, picks, explains; never runs an input twice."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

import anypool
from anypool._backends._auto import (
    ASYNC_WORKERS,
    SAMPLE_CHUNK_SECONDS,
    SAMPLE_ITEMS,
    decide,
    decide_async,
)


class TestDecide:
    """The choice itself, from measured numbers (no timing in tests)."""

    def test_tiny_tasks_stay_serial(self) -> None:
        d = decide(
            wall=1e-6,
            cpu=1e-6,
            result_bytes=8,
            remaining=200_000,
            cpus=2,
            picklable=True,
            workers=None,
        )
        assert d.backend == "serial"
        assert "tiny" in d.reason

    def test_cpu_bound_goes_to_processes_with_one_per_core(self) -> None:
        d = decide(
            wall=1e-3,
            cpu=0.97e-3,
            result_bytes=8,
            remaining=2000,
            cpus=2,
            picklable=True,
            workers=None,
        )
        assert d.backend == "process"
        assert d.workers == 2
        assert "CPU-bound: 97% of wall time on CPU" in d.reason

    def test_waiting_goes_to_many_threads(self) -> None:
        d = decide(
            wall=10e-3,
            cpu=20e-6,
            result_bytes=8,
            remaining=2000,
            cpus=2,
            picklable=True,
            workers=None,
        )
        assert d.backend == "thread"
        assert d.workers == 64
        assert "I/O-bound" in d.reason

    def test_half_cpu_half_wait_uses_more_processes_than_cores(self) -> None:
        d = decide(
            wall=2e-3,
            cpu=1e-3,
            result_bytes=8,
            remaining=2000,
            cpus=2,
            picklable=True,
            workers=None,
        )
        assert d.backend == "process"
        assert d.workers == 4

    def test_unpicklable_cpu_work_cannot_use_processes(self) -> None:
        d = decide(
            wall=1e-3,
            cpu=1e-3,
            result_bytes=8,
            remaining=2000,
            cpus=2,
            picklable=False,
            workers=None,
        )
        assert d.backend != "process"
        assert "cannot be pickled" in d.reason

    def test_free_threaded_build_may_use_threads_for_cpu(self) -> None:
        d = decide(
            wall=1e-3,
            cpu=1e-3,
            result_bytes=8,
            remaining=2000,
            cpus=2,
            picklable=True,
            workers=None,
            gil=False,
        )
        assert d.backend == "thread"

    def test_few_items_do_not_pay_for_a_process_pool(self) -> None:
        d = decide(
            wall=1e-3, cpu=1e-3, result_bytes=8, remaining=3, cpus=2, picklable=True, workers=None
        )
        assert d.backend == "serial"

    def test_huge_results_weigh_against_processes(self) -> None:
        d = decide(
            wall=1e-3,
            cpu=1e-3,
            result_bytes=50e6,
            remaining=2000,
            cpus=2,
            picklable=True,
            workers=None,
        )
        assert d.backend != "process"

    def test_user_workers_are_kept(self) -> None:
        d = decide(
            wall=10e-3, cpu=0, result_bytes=8, remaining=2000, cpus=2, picklable=True, workers=7
        )
        assert d.workers == 7


class TestDecideAsync:
    def test_coroutines_get_many_in_flight(self) -> None:
        d = decide_async(None)
        assert d.backend == "asyncio"
        assert d.workers == ASYNC_WORKERS == 1000
        assert "up to 1000" in d.reason
        assert "workers=" in d.reason

    def test_user_workers_are_kept(self) -> None:
        d = decide_async(7)
        assert (d.backend, d.workers) == ("asyncio", 7)


def test_auto_is_the_default() -> None:
    with anypool.Pool() as pool:
        assert pool.backend == "auto"


def test_every_input_runs_exactly_once_and_in_order() -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def record(x: int) -> int:
        with lock:
            calls.append(x)
        return x * 2

    out = anypool.map(record, range(500))
    assert out == [2 * x for x in range(500)]
    assert sorted(calls) == list(range(500))


def test_explain_and_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="anypool"), anypool.Pool() as pool:
        assert "has not chosen yet" in pool.explain()
        assert list(pool.map(abs, range(-50, 50))) == [abs(x) for x in range(-50, 50)]
        text = pool.explain()
    assert "auto chose backend=" in text
    assert "measured" in text
    assert any("auto chose backend=" in r.getMessage() for r in caplog.records)


def test_explicit_backend_explains_itself() -> None:
    with anypool.Pool("thread", workers=3) as pool:
        assert "as you chose" in pool.explain()


def test_coroutine_functions_go_to_asyncio() -> None:
    if "asyncio" not in anypool.get_available_backends():
        pytest.skip("asyncio backend not available")

    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    with anypool.Pool() as pool:
        assert list(pool.map(double, range(10))) == [2 * x for x in range(10)]
        assert "asyncio" in pool.explain()
        assert pool.workers == ASYNC_WORKERS
    with anypool.Pool(workers=5) as pool:
        assert list(pool.map(double, range(10))) == [2 * x for x in range(10)]
        assert pool.workers == 5


def test_submit_on_auto_uses_threads_for_plain_functions() -> None:
    with anypool.Pool() as pool:
        assert pool.submit(pow, 2, 10).result(timeout=30) == 1024
        assert "thread" in pool.explain()


def test_errors_during_measurement_are_reported_in_place() -> None:
    def fail_on_one(x: int) -> int:
        if x == 1:
            raise ValueError("one")
        return x

    out = anypool.map(fail_on_one, range(5), errors="collect")
    assert [r.ok for r in out] == [True, False, True, True, True]


def test_tiny_work_does_not_import_cloudpickle() -> None:
    # picklability only matters when processes would win; importing cloudpickle (~25 ms cold)
    # would cost more than the whole map of tiny tasks
    import subprocess
    import sys

    code = (
        "import sys, anypool\n"
        "assert anypool.map(abs, range(-500, 500)) == [abs(x) for x in range(-500, 500)]\n"
        "with anypool.Pool() as p:\n"
        "    list(p.imap(abs, range(100)))\n"
        "    assert 'serial' in p.explain(), p.explain()\n"
        "print('cloudpickle' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_unpicklable_function_is_checked_when_processes_would_win() -> None:
    from anypool._backends import _auto

    assert _auto._picklable(abs)
    lock = threading.Lock()
    assert not _auto._picklable(lambda: lock)


def test_measuring_chunks_are_small_and_counted_in_inputs() -> None:
    # while measuring, the map's chunker aims at SAMPLE_CHUNK_SECONDS of work per chunk (not
    # the 5 ms of a working chunk, which put a quarter of a tiny map on the measuring thread)
    with anypool.Pool() as pool:
        backend = pool._backend
        assert backend.target_chunk_seconds == SAMPLE_CHUNK_SECONDS
        out = list(pool.imap(abs, range(-500, 500), chunksize=10))
        assert out == [abs(x) for x in range(-500, 500)]
        # tiny tasks never reach SAMPLE_SECONDS: SAMPLE_ITEMS chunks of 10 inputs each
        assert f"measured {SAMPLE_ITEMS * 10} input(s)" in pool.explain()
        assert backend.target_chunk_seconds != SAMPLE_CHUNK_SECONDS  # the chosen backend's
