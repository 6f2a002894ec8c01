"""The dask backend beyond the shared suite: clusters it starts or joins, crashes, timeouts,
cancellation, and the error without the extra.

Most cases run on the session's LocalCluster (``dask_cluster`` in ``conftest.py``, made the
default through Dask's ``scheduler-address`` config). Tasks that must stay running wait for a
marker file that the test creates, never for a fixed time.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import anypool
from anypool._core import _registry
from conftest import SHORT_TIMEOUT, fork_server_pid
from daskkit import (
    always_exit,
    crash_count,
    exit_on_first_attempt,
    fail_on_three,
    record,
    square,
    touch_and_wait,
    wait_for,
    where,
)

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")


# -- without the extra -----------------------------------------------------------------------
def test_without_distributed_the_backend_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # what Python does when a module is missing: ``import`` raises ImportError
    for name in ("dask", "distributed"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "anypool._backends._dask", raising=False)
    with pytest.raises(LookupError) as info:
        anypool.Pool("dask")
    assert str(info.value) == (
        "Backend 'dask' is not available. Install it with: pip install anypool[dask]"
    )
    assert isinstance(info.value.__cause__, ImportError)
    assert "dask" not in _registry.get_available_backends()
    assert "dask" in _registry.get_all_backends()
    with pytest.raises(LookupError, match=r"pip install anypool\[dask\]"):
        anypool.map(square, [1], backend="dask")


def test_with_distributed_the_backend_is_available() -> None:
    assert "dask" in anypool.get_available_backends()


# -- the clusters it starts or joins ---------------------------------------------------------
def _child_pids() -> set[int]:
    """Child processes, without multiprocessing's shared helpers (the resource tracker)."""
    server = fork_server_pid()
    out = set()
    for c in psutil.Process().children(recursive=True):
        if c.pid == server:  # the fork server, also when anypool forked it from this process
            continue
        try:
            if "resource_tracker" not in " ".join(c.cmdline()):
                out.add(c.pid)
        except psutil.Error:
            pass
    return out


def test_without_address_or_config_it_starts_a_local_cluster_and_closes_it() -> None:
    before = _child_pids()
    with dask.config.set({"scheduler-address": None}):
        pool = anypool.Pool("dask", workers=2)
    backend: Any = pool._backend
    try:
        cluster = backend._cluster
        assert isinstance(cluster, distributed.LocalCluster)
        assert len(cluster.workers) == 2
        info = pool._backend.client.scheduler_info()
        assert {w["nthreads"] for w in info["workers"].values()} == {1}  # one thread each
        assert list(pool.map(square, range(20))) == [i * i for i in range(20)]
        workers = _child_pids() - before
        assert len(workers) >= 2  # the worker processes are ours
    finally:
        pool.shutdown()
    assert backend.client.status == "closed"
    assert cluster.status.name == "closed"
    alive = [p for p in workers if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not alive, f"LocalCluster worker processes still running: {alive}"


def test_with_the_config_it_joins_that_cluster_and_leaves_it_running(dask_cluster: str) -> None:
    with anypool.Pool("dask") as pool:
        backend: Any = pool._backend
        assert backend._cluster is None
        assert backend.client.scheduler.address == dask_cluster
        assert pool.workers == 2  # the cluster's threads
        assert list(pool.map(square, range(10))) == [i * i for i in range(10)]
    assert backend.client.status == "closed"  # the client it made is closed, not the cluster
    with distributed.Client(dask_cluster, set_as_default=False) as c:
        assert len(c.scheduler_info()["workers"]) == 2


def test_address_runs_on_that_cluster(dask_cluster: str) -> None:
    with dask.config.set({"scheduler-address": None}):
        out = anypool.map(square, range(30), backend="dask", address=dask_cluster)
    assert out == [i * i for i in range(30)]


def test_a_given_client_is_used_and_left_open(dask_cluster: str) -> None:
    with distributed.Client(dask_cluster, set_as_default=False) as client:
        with anypool.Pool("dask", client=client, workers=2) as pool:
            assert pool._backend.client is client  # type: ignore[attr-defined]
            assert list(pool.imap(square, range(10))) == [i * i for i in range(10)]
        assert client.status == "running"
        assert client.submit(square, 4).result(timeout=SHORT_TIMEOUT) == 16


def test_address_and_client_together_are_refused(dask_cluster: str) -> None:
    with (
        distributed.Client(dask_cluster, set_as_default=False) as client,
        pytest.raises(ValueError, match="either address= or client="),
    ):
        anypool.Pool("dask", address=dask_cluster, client=client)
    with pytest.raises(TypeError, match="must be a distributed.Client"):
        anypool.Pool("dask", client="tcp://x:1")


def test_an_unreachable_address_fails_clearly() -> None:
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(ConnectionError, match="cannot connect to the Dask scheduler"),
    ):
        anypool.Pool("dask", address="tcp://127.0.0.1:9")


def test_unknown_option_names_the_valid_ones() -> None:
    with pytest.raises(TypeError, match="address, client"):
        anypool.Pool("dask", adress="tcp://x:1")


# -- semantics ---------------------------------------------------------------------------------
def test_lazy_input_is_read_a_bounded_distance_ahead(dask_cluster: str) -> None:
    pulled = [0]

    def source() -> Iterator[int]:
        for i in itertools.count():
            pulled[0] = i + 1
            yield i

    with anypool.Pool("dask", workers=2) as pool:
        it = pool.imap(square, source(), chunksize=5)
        assert list(itertools.islice(it, 10)) == [i * i for i in range(10)]
        # at most 4 chunks per worker in flight beyond what was read: 4 * 2 * 5 items
        assert pulled[0] <= 10 + 8 * 5
        it.close()  # type: ignore[attr-defined]


def test_errors_carry_the_worker_traceback(dask_cluster: str) -> None:
    with pytest.raises(ValueError, match="bad input 3") as info:
        anypool.map(fail_on_three, range(6), backend="dask")
    cause = info.value.__cause__
    assert isinstance(cause, anypool.RemoteTraceback)
    assert "fail_on_three" in str(cause)
    assert "raise ValueError" in "".join(traceback.format_exception(info.value))


def test_submit_errors_carry_the_worker_traceback(dask_cluster: str) -> None:
    with anypool.Pool("dask", workers=2) as pool:
        exc = pool.submit(fail_on_three, 3).exception(timeout=SHORT_TIMEOUT)
    assert isinstance(exc, ValueError)
    assert isinstance(exc.__cause__, anypool.RemoteTraceback)
    assert "fail_on_three" in str(exc.__cause__)


def test_current_worker_names_the_dask_worker(dask_cluster: str) -> None:
    out = anypool.map(where, range(8), backend="dask", chunksize=1)
    assert {b for _, b in out} == {"dask"}
    assert {i for i, _ in out} <= {0, 1}  # LocalCluster names its workers 0, 1


def test_task_timeout_fails_the_task_and_other_work_goes_elsewhere(
    dask_cluster: str, tmp_path: Path
) -> None:
    marker = str(tmp_path / "release")
    try:
        with anypool.Pool("dask", workers=2, task_timeout=0.5) as pool:
            slow = pool.submit(wait_for, marker, "late")
            fast = pool.submit(square, 3)
            with pytest.raises(anypool.TaskTimeoutError, match="task_timeout=0.5") as info:
                slow.result(timeout=SHORT_TIMEOUT)
            assert isinstance(info.value, TimeoutError)
            assert "Dask cannot stop a running task" in str(info.value)
            # the worker still runs it: the scheduler keeps it, so other work goes elsewhere
            # (had it gone to the busy worker, it would have timed out too)
            assert list(pool.map(square, range(8), chunksize=1)) == [i * i for i in range(8)]
            assert fast.result(timeout=SHORT_TIMEOUT) == 9
    finally:
        Path(marker).touch()


def test_task_timeout_in_map_with_errors_collect(dask_cluster: str, tmp_path: Path) -> None:
    marker = str(tmp_path / "release")
    Path(tmp_path / "now").touch()
    try:
        out = anypool.map(
            wait_for,
            [str(tmp_path / "now"), marker, str(tmp_path / "now")],
            backend="dask",
            task_timeout=0.5,
            errors="collect",
        )
    finally:
        Path(marker).touch()
    assert [r.ok for r in out] == [True, False, True]
    assert isinstance(out[1].error, anypool.TaskTimeoutError)


def test_a_queued_future_can_be_cancelled_and_never_runs(dask_cluster: str, tmp_path: Path) -> None:
    marker = str(tmp_path / "release")
    started = [str(tmp_path / f"started-{i}") for i in range(2)]
    try:
        with anypool.Pool("dask", workers=2) as pool:
            blockers = [pool.submit(touch_and_wait, marker, s) for s in started]
            for s in started:  # both workers are busy now
                wait_for(s)
                assert os.path.exists(s)
            # and the pool has heard so (a running future cannot be cancelled)
            deadline = time.monotonic() + SHORT_TIMEOUT
            while not all(f.running() for f in blockers) and time.monotonic() < deadline:
                time.sleep(0.005)
            assert all(f.running() for f in blockers)
            queued = [pool.submit(record, str(tmp_path), i) for i in range(4)]
            pool.shutdown(wait=False, cancel_futures=True)
            assert all(f.cancelled() for f in queued)
            # Dask forgets released tasks asynchronously: wait until the scheduler has
            with distributed.Client(dask_cluster, set_as_default=False) as c:
                deadline = time.monotonic() + SHORT_TIMEOUT
                while time.monotonic() < deadline and any(
                    "anypool-record" in str(k) for ks in c.processing().values() for k in ks
                ):
                    time.sleep(0.01)
            Path(marker).touch()
            assert [f.result(timeout=SHORT_TIMEOUT) for f in blockers] == ["finished"] * 2
    finally:
        Path(marker).touch()
    assert not list(tmp_path.glob("ran-*"))  # the cancelled tasks never ran


def test_terminate_stops_at_once(dask_cluster: str, tmp_path: Path) -> None:
    marker = str(tmp_path / "release")
    try:
        pool = anypool.Pool("dask", workers=2)
        backend: Any = pool._backend
        fut = pool.submit(wait_for, marker)
        pool.terminate()
        assert fut.cancelled()
        assert backend.client.status == "closed"
        with pytest.raises(anypool.ClosedPoolError):
            pool.submit(square, 1)
    finally:
        Path(marker).touch()


def test_a_worker_killed_once_is_retried_by_dask_and_nothing_is_lost(
    dask_cluster: str, tmp_path: Path
) -> None:
    with anypool.Pool("dask", workers=2) as pool:
        out = list(pool.map(exit_on_first_attempt, [str(tmp_path)] * 3, range(3), chunksize=1))
    assert [x for x, _ in out] == [0, 1, 2]
    assert len(list(tmp_path.glob("crashed-*"))) == 1  # it crashed once, then ran again


def test_a_worker_that_always_dies_fails_only_its_task_with_worker_crashed(
    dask_cluster: str,
) -> None:
    out = anypool.map(always_exit, range(4), backend="dask", chunksize=1, errors="collect")
    assert [r.ok for r in out] == [True, True, False, True]
    err = out[2].error
    assert isinstance(err, anypool.WorkerCrashed)
    assert isinstance(err, cf.process.BrokenProcessPool)
    assert "always_exit" in str(err)
    assert isinstance(err.__cause__, distributed.KilledWorker)
    assert [r.value for r in out if r.ok] == [0, 1, 3]


def test_retries_resubmit_a_chunk_dask_gave_up_on(dask_cluster: str, tmp_path: Path) -> None:
    # the session's scheduler allows one failure (two runs); the crash happens twice, so
    # Dask gives up with KilledWorker, and retries=1 submits the chunk once more
    out = anypool.map(crash_count, [str(tmp_path)], [7], backend="dask", retries=1, chunksize=1)
    assert out == [7]
    assert len(list(tmp_path.iterdir())) == 2
