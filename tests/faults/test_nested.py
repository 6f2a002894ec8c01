"""Pools inside pools: every combination works, inner pools take their share of the machine,
and an outer worker's death takes its inner workers with it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

import anypool
from anypool._core._tasks import machine_cpus

SHORT_TIMEOUT = 60


def square(x: int) -> int:
    return x * x


def run_inner(backend: str) -> tuple[list[int], int]:
    """A task that runs a pool of its own; its results and the inner pool's default size."""
    with anypool.Pool(backend) as pool:
        out = list(pool.map(square, range(6)))
        return out, pool.workers


@pytest.mark.parametrize(
    ("outer", "inner"),
    [
        ("process", "process"),
        ("process", "auto"),
        ("process", "thread"),
        ("thread", "process"),
        ("process", "serial"),
        ("thread", "thread"),
    ],
)
def test_nested_pools_work(outer: str, inner: str) -> None:
    out = anypool.map(run_inner, [inner] * 3, backend=outer, workers=2)
    assert [r[0] for r in out] == [[x * x for x in range(6)]] * 3
    share = max(1, machine_cpus() // 2)
    if inner == "process":  # its share, not another full set of workers per outer worker
        assert {r[1] for r in out} == {share}
    if inner == "thread":
        assert {r[1] for r in out} == {min(32, share + 4)}


def test_a_one_shot_map_inside_a_process_task() -> None:
    def outer_task(n: int) -> int:
        return sum(anypool.map(square, range(n), backend="process"))

    assert anypool.map(outer_task, [3, 4], backend="process", workers=2) == [5, 14]


def hold_inner_pool(marker_dir: str) -> None:
    """Start an inner process pool whose task blocks; the inner task writes its pid; block."""
    Path(marker_dir, "outer").write_text(str(os.getpid()))
    with anypool.Pool("process", 1) as pool:
        pool.submit(_write_pid_and_block, marker_dir)
        time.sleep(SHORT_TIMEOUT)  # until the test kills this worker


def _write_pid_and_block(marker_dir: str) -> None:
    Path(marker_dir, "inner.tmp").write_text(str(os.getpid()))
    os.replace(Path(marker_dir, "inner.tmp"), Path(marker_dir, "inner"))
    time.sleep(SHORT_TIMEOUT)


def test_killing_an_outer_worker_ends_its_inner_workers(tmp_path: Path) -> None:
    with anypool.Pool("process", 1) as pool:
        fut = pool.submit(hold_inner_pool, str(tmp_path))
        deadline = time.monotonic() + SHORT_TIMEOUT
        while not (tmp_path / "inner").exists():  # polling a file the inner task writes
            assert time.monotonic() < deadline, "the inner task never started"
            assert not fut.done(), fut.exception()
            time.sleep(0.01)
        inner_pid = int((tmp_path / "inner").read_text())
        outer_pid = int((tmp_path / "outer").read_text())
        os.kill(outer_pid, signal.SIGKILL)
        err: Any = fut.exception(timeout=SHORT_TIMEOUT)
        assert isinstance(err, anypool.WorkerCrashed)
        try:  # its parent watch notices within 0.5 s
            psutil.Process(inner_pid).wait(timeout=10)
        except psutil.NoSuchProcess:
            pass
        assert not psutil.pid_exists(inner_pid), "the inner worker outlived its pool's process"
