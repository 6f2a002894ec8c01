"""Memory-aware process workers: ``max_memory_per_worker=`` and ``task_memory_limit=``.

Real worker processes that really grow: allocations are 20-50 MB ``bytearray`` objects
(zero-filled, so every page is touched and counted), and a task that "allocates 1 GB" does so
in 50 MB steps, so the watchdog ends it long before; nothing here holds more than about 1 GB.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import anypool
from anypool._core._memory import parse_size, private_rss

sys.path.insert(0, str(Path(__file__).parent / "faults"))
import faultkit as fk

from conftest import HAVE_DASK

MB = 1000**2
STEP = 50 * 2**20

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="sizes are measured through /proc here"
)

#: what a leaky task keeps alive in its worker
LEAK: list[bytearray] = []


def size_now(_: object = None) -> int:
    """The worker's private resident memory."""
    return private_rss() or 0


def leak_on(bad: int, nbytes: int, i: int) -> tuple[int, int]:
    """Keep ``nbytes`` alive in the worker on input ``bad``; (input, pid)."""
    if i == bad:
        LEAK.append(bytearray(nbytes))
    return i, os.getpid()


def leak_then_wait(started: Any, go: Any) -> int:
    """Leak 50 MB, set ``started``, wait for ``go``; the worker's pid."""
    LEAK.append(bytearray(STEP))
    started.set()
    assert go.wait(30)
    return os.getpid()


def grow(upto: int) -> None:
    """Allocate (and touch) ``upto`` bytes in 50 MB steps."""
    keep = []
    for _ in range(upto // STEP):
        keep.append(bytearray(STEP))
    del keep


def hog_on(bad: int, marker_dir: str | None, i: int) -> int:
    """On input ``bad``: leave a marker per run, then try to allocate 1 GB. Else: ``i``.

    With ``marker_dir``, only the first run hogs (a retry then succeeds).
    """
    if i == bad:
        first = True
        if marker_dir is not None:
            runs = os.listdir(marker_dir)
            first = not runs
            Path(marker_dir, f"run-{len(runs)}").touch()
        if first:
            grow(1000 * MB)
    return i


def soak_task(i: int) -> int:
    """1 in 10 leaks 20 MB, 1 in 40 tries to allocate 1 GB."""
    if i % 10 == 0:
        LEAK.append(bytearray(20 * 2**20))
    if i % 40 == 7:
        grow(1000 * MB)
    return i * 2


def worker_size() -> int:
    """How big a fresh process worker is (private resident memory)."""
    with anypool.Pool("process", workers=1) as pool:
        return pool.submit(size_now).result(timeout=30)


# -- parsing ---------------------------------------------------------------------------------
class TestParse:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (1024, 1024),
            ("2GB", 2 * 1000**3),
            ("500MB", 500 * MB),
            ("500 mb", 500 * MB),
            ("1.5GiB", int(1.5 * 1024**3)),
            ("64KiB", 64 * 1024),
            ("300", 300),
            ("1tb", 1000**4),
            (None, None),
        ],
    )
    def test_sizes(self, value: object, expected: int | None) -> None:
        assert parse_size("max_memory_per_worker", value) == expected

    @pytest.mark.parametrize("value", ["2 jigabytes", "GB", "", "-1GB", "1e9", "2G B"])
    def test_bad_strings_name_the_option_and_an_example(self, value: str) -> None:
        with pytest.raises(ValueError, match="max_memory_per_worker") as info:
            anypool.Pool("process", max_memory_per_worker=value)
        msg = str(info.value)
        assert repr(value) in msg
        assert '"2GB"' in msg

    @pytest.mark.parametrize("value", [0, -5, "0MB", "0.0000001KB"])
    def test_zero_and_negative(self, value: object) -> None:
        with pytest.raises(ValueError, match=r"task_memory_limit must be more than 0 bytes"):
            anypool.Pool("process", task_memory_limit=value)  # type: ignore[arg-type]

    @pytest.mark.parametrize("value", [True, 1.5, [1]])
    def test_wrong_types(self, value: object) -> None:
        with pytest.raises(TypeError, match=r"task_memory_limit must be a number of bytes"):
            anypool.Pool("process", task_memory_limit=value)  # type: ignore[arg-type]

    def test_the_one_call_functions_check_too(self) -> None:
        with pytest.raises(ValueError, match="2 jigabytes"):
            anypool.map(abs, [1], backend="process", max_memory_per_worker="2 jigabytes")


# -- backends that cannot honour them ----------------------------------------------------------
class TestOtherBackends:
    @pytest.mark.parametrize("backend", ["serial", "thread", "asyncio"])
    @pytest.mark.parametrize("option", ["max_memory_per_worker", "task_memory_limit"])
    def test_in_process_backends_refuse(self, backend: str, option: str) -> None:
        with pytest.raises(ValueError, match=f"{option}= cannot be used") as info:
            anypool.Pool(backend, **{option: "1GB"})  # type: ignore[arg-type]
        msg = str(info.value)
        assert f"backend={backend!r}" in msg
        assert "backend='process'" in msg

    def test_an_executor_refuses(self) -> None:
        import concurrent.futures as cf

        with cf.ThreadPoolExecutor(1) as ex, pytest.raises(ValueError, match="process backend"):
            anypool.Pool(ex, task_memory_limit="1GB")

    @pytest.mark.skipif(not HAVE_DASK, reason="dask is not installed")
    def test_dask_refuses_task_memory_limit(self) -> None:
        with pytest.raises(ValueError, match="task_memory_limit= cannot be used with"):
            anypool.Pool("dask", task_memory_limit="1GB")

    @pytest.mark.skipif(not HAVE_DASK, reason="dask is not installed")
    def test_dask_refuses_max_memory_on_a_cluster_it_did_not_start(self, dask_cluster: str) -> None:
        with pytest.raises(ValueError, match="own memory limit"):
            anypool.Pool("dask", max_memory_per_worker="1GB")

    @pytest.mark.skipif(not HAVE_DASK, reason="dask is not installed")
    def test_dask_gives_its_local_cluster_the_limit(self) -> None:
        import dask

        with dask.config.set({"scheduler-address": None}):
            pool = anypool.Pool("dask", workers=1, max_memory_per_worker="1.5GB")
        with pool:
            info = pool._backend.client.scheduler_info()  # type: ignore[attr-defined]
            assert [w["memory_limit"] for w in info["workers"].values()] == [1_500_000_000]
            assert list(pool.map(abs, [-1, -2])) == [1, 2]

    def test_auto_runs_on_processes_and_says_why(self) -> None:
        with anypool.Pool("auto", workers=1, task_memory_limit="1GB") as pool:
            assert list(pool.map(abs, [-1, -2])) == [1, 2]
            assert pool._backend.chosen.name == "process"  # type: ignore[attr-defined]
            assert "task_memory_limit=" in pool.explain()


# -- max_memory_per_worker: recycle after the task -----------------------------------------------
def mark_stop(folder: str) -> None:
    """A finalizer that records which worker stopped, and after how many tasks."""
    w = anypool.current_worker()
    with open(os.path.join(folder, f"worker-{w.id}"), "a") as f:
        f.write(f"{os.getpid()} {w.tasks_done}\n")


class TestRecycle:
    def test_a_worker_over_the_limit_is_replaced_after_its_task(self, tmp_path: Path) -> None:
        limit = worker_size() + 25 * MB
        fin = functools.partial(mark_stop, str(tmp_path))
        fn = functools.partial(leak_on, 2, STEP)
        with anypool.Pool("process", workers=1, max_memory_per_worker=limit, finalizer=fin) as pool:
            out = list(pool.map(fn, range(6), chunksize=1))
            stats = pool.stats()
        assert [i for i, _ in out] == list(range(6))  # every result, in order
        pids = [pid for _, pid in out]
        assert pids[0] == pids[1] == pids[2]  # the leaky task's result came back
        assert pids[3] == pids[4] == pids[5] != pids[2]  # then a fresh worker took over
        # the finalizer ran in the recycled worker (after its 3 tasks) and in the new one
        assert (tmp_path / "worker-0").read_text().split() == [str(pids[0]), "3"]
        assert (tmp_path / "worker-1").read_text().split() == [str(pids[3]), "3"]
        assert stats.memory_recycles == 1
        assert stats.memory_kills == 0
        assert stats.peak_worker_memory > limit

    def test_a_broadcast_waiting_for_a_leaving_worker_still_runs_there(self) -> None:
        limit = worker_size() + 25 * MB
        with anypool.Pool("process", workers=1, max_memory_per_worker=limit) as pool:
            started, go = pool.Event(), pool.Event()
            fut = pool.submit(leak_then_wait, started, go)
            assert started.wait(30)  # the worker is busy: the broadcast must wait for it
            with cf.ThreadPoolExecutor(1) as ex:
                asked = ex.submit(pool.broadcast, os.getpid)
                backend: Any = pool._backend
                deadline = time.monotonic() + 30
                while not backend._targeted:  # the call waits for the busy worker
                    assert time.monotonic() < deadline, "the broadcast was never queued"
                    time.sleep(0.001)
                go.set()
                got = asked.result(timeout=30)
            pid = fut.result(timeout=30)
            assert got == {0: pid}  # it ran on the worker it was meant for, before it left
            assert pool.stats().memory_recycles == 1
            assert pool.submit(os.getpid).result(timeout=30) != pid  # then it was replaced

    def test_workers_under_the_limit_stay(self) -> None:
        with anypool.Pool("process", workers=1, max_memory_per_worker="4GB") as pool:
            pids = {pid for _, pid in pool.map(functools.partial(leak_on, -1, 0), range(20))}
            assert len(pids) == 1
            assert pool.stats().memory_recycles == 0

    def test_the_one_call_functions_and_pipelines_take_them(self) -> None:
        opts = {"max_memory_per_worker": "4GB", "task_memory_limit": "4GB"}
        assert anypool.map(abs, [-1, -2], backend="process", workers=1, **opts) == [1, 2]
        pipe = anypool.Pipeline([-3, -4]).map(abs, backend="process", workers=1, **opts)
        assert list(pipe) == [3, 4]

    def test_pools_with_a_memory_option_get_no_kept_warm_worker(self) -> None:
        fn = functools.partial(leak_on, -1, 0)
        with anypool.Pool("process", workers=1) as pool:
            (_, warm_pid), *_ = list(pool.map(fn, [0]))
        with anypool.Pool("process", workers=1, max_memory_per_worker="4GB") as pool:
            (_, pid), *_ = list(pool.map(fn, [0]))
        assert pid != warm_pid  # a fresh worker, started with the limit


# -- task_memory_limit: stop the task that outgrows it -------------------------------------------
class TestTaskLimit:
    def test_the_task_fails_alone_naming_the_limit_and_the_size(self) -> None:
        fn = functools.partial(hog_on, 3, None)
        with anypool.Pool("process", workers=2, task_memory_limit="300MB") as pool:
            results = list(pool.imap(fn, range(8), chunksize=4, errors="collect"))
            stats = pool.stats()
        assert [r.value for r in results if r.ok] == [0, 1, 2, 4, 5, 6, 7]
        err = results[3].error
        assert isinstance(err, anypool.MemoryLimitExceeded)
        assert isinstance(err, anypool.WorkerCrashed)
        assert err.limit == 300 * MB
        assert 300 * MB < err.reached < 1000 * MB  # ended long before its 1 GB
        msg = str(err)
        assert "exceeded the memory limit" in msg
        assert "task_memory_limit=300.0 MB" in msg
        assert f"{err.reached / MB:.1f} MB" in msg
        assert "on input 3" in msg
        assert stats.memory_kills == 1

    def test_a_plain_submit_fails_the_same_way(self) -> None:
        with anypool.Pool("process", workers=1, task_memory_limit="300MB") as pool:
            fut = pool.submit(hog_on, 3, None, 3)
            with pytest.raises(anypool.MemoryLimitExceeded, match="task_memory_limit=300.0 MB"):
                fut.result(timeout=30)
            assert pool.submit(hog_on, 3, None, 4).result(timeout=30) == 4  # a new worker

    def test_not_retried_by_default(self, tmp_path: Path) -> None:
        fn = functools.partial(hog_on, 1, str(tmp_path))
        pool = anypool.Pool("process", workers=1, task_memory_limit="300MB", retries=2)
        with pool, pytest.raises(anypool.MemoryLimitExceeded) as info:
            list(pool.map(fn, range(3), chunksize=1))
        assert len(os.listdir(tmp_path)) == 1  # ran once
        assert any("not retried" in n for n in getattr(info.value, "__notes__", []))

    @pytest.mark.parametrize("retry_on", [anypool.MemoryLimitExceeded, anypool.WorkerCrashed])
    def test_retried_when_retry_on_names_it(self, tmp_path: Path, retry_on: type) -> None:
        fn = functools.partial(hog_on, 1, str(tmp_path))
        with anypool.Pool(
            "process", workers=1, task_memory_limit="300MB", retries=2, retry_on=retry_on
        ) as pool:
            assert list(pool.map(fn, range(3), chunksize=1)) == [0, 1, 2]
            assert pool.stats().memory_kills == 1
        assert len(os.listdir(tmp_path)) == 2  # the second run (no hog) succeeded

    def test_a_plain_crash_is_still_retried_by_exception(self, tmp_path: Path) -> None:
        """The memory rule does not change other crashes: retry_on=Exception covers them."""
        fn = functools.partial(fk.exit_on, 1, str(tmp_path))
        pool = anypool.Pool("process", workers=1, task_memory_limit="300MB", retries=1)
        with pool, pytest.raises(anypool.WorkerCrashed) as info:
            list(pool.map(fn, range(3), chunksize=1))
        assert not isinstance(info.value, anypool.MemoryLimitExceeded)
        assert len([n for n in os.listdir(tmp_path) if n.startswith("ran-1-")]) == 2


# -- tracing ----------------------------------------------------------------------------------
def test_the_trace_shows_recycles_and_kills() -> None:
    limit = worker_size() + 25 * MB
    leak = functools.partial(leak_on, 1, STEP)
    hog = functools.partial(hog_on, 2, None)
    with anypool.trace() as t:
        with anypool.Pool("process", workers=1, max_memory_per_worker=limit) as pool:
            list(pool.map(leak, range(3), chunksize=1))
        with anypool.Pool("process", workers=1, task_memory_limit="300MB") as pool:
            list(pool.imap(hog, range(4), chunksize=1, errors="collect"))
    events = t.worker_events
    assert [e.kind for e in events] == ["recycle", "memory_kill"]
    assert "max_memory_per_worker=" in events[0].reason
    assert "task_memory_limit=300.0 MB" in events[1].reason
    killed = [r for r in t.tasks if r.outcome == "crash"]
    assert [r.position for r in killed] == [2]
    assert killed[0].error is not None
    assert killed[0].error.startswith("MemoryLimitExceeded: ")
    # the events survive the Chrome-trace JSON (and so `anypool trace show`)
    again = anypool.Trace.from_dict(t.to_dict())
    assert [(e.kind, e.reason, e.pid) for e in again.worker_events] == [
        (e.kind, e.reason, e.pid) for e in events
    ]


# -- a small soak ----------------------------------------------------------------------------------
def test_soak_loses_nothing_and_leaves_nothing() -> None:
    before = fk.resources()
    recycle_at = worker_size() + 50 * MB
    with anypool.Pool(
        "process",
        workers=2,
        max_memory_per_worker=recycle_at,
        task_memory_limit="300MB",
    ) as pool:
        results = list(pool.imap(soak_task, range(100), chunksize=1, errors="collect"))
        stats = pool.stats()
    hogs = {i for i in range(100) if i % 40 == 7}
    assert len(results) == 100
    assert {r.index for r in results if not r.ok} == hogs
    assert all(isinstance(r.error, anypool.MemoryLimitExceeded) for r in results if not r.ok)
    assert all(r.value == 2 * r.index for r in results if r.ok)
    assert stats.memory_kills == len(hogs)
    assert stats.memory_recycles >= 1
    # no worker outgrew its limit by more than one task's steps (the watchdog is 20 ms)
    assert stats.peak_worker_memory < 300 * MB + 500 * MB
    after = fk.resources()
    assert fk.same_resources(before, after), fk.resource_diff(before, after)
