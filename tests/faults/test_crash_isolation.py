"""A worker that dies inside a chunk fails only the item it was running; a chaos test."""

from __future__ import annotations

import functools
import os
import signal
import threading
from pathlib import Path

import faultkit as fk
import psutil
import pytest

import anypool

SHORT_TIMEOUT = 60


def _runs(d: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    for name in os.listdir(d):
        i = int(name.split("-")[1])
        counts[i] = counts.get(i, 0) + 1
    return counts


@pytest.mark.parametrize("chunksize", [None, 4, 1000])
def test_only_the_running_item_fails(chunksize: int | None) -> None:
    fn = functools.partial(fk.exit_on, 5, None)
    out = anypool.map(fn, range(20), backend="process", chunksize=chunksize, errors="collect")
    assert [i for i, r in enumerate(out) if not r.ok] == [5]
    assert isinstance(out[5].error, anypool.WorkerCrashed)
    assert "on input 5" in str(out[5].error)
    assert [r.value for i, r in enumerate(out) if i != 5] == [i for i in range(20) if i != 5]


def test_a_large_chunk_of_tiny_tasks_finds_its_item() -> None:
    fn = functools.partial(fk.exit_on, 777, None)
    out = anypool.map(fn, range(2000), backend="process", chunksize=1000, errors="collect")
    assert [i for i, r in enumerate(out) if not r.ok] == [777]


def test_chunksize_one_never_runs_anything_twice(tmp_path: Path) -> None:
    fn = functools.partial(fk.exit_on, 5, str(tmp_path))
    out = anypool.map(fn, range(12), backend="process", chunksize=1, errors="collect")
    assert [i for i, r in enumerate(out) if not r.ok] == [5]
    assert _runs(tmp_path) == dict.fromkeys(range(12), 1)


def test_the_crashed_item_runs_once_without_retries(tmp_path: Path) -> None:
    fn = functools.partial(fk.exit_on, 5, str(tmp_path))
    out = anypool.map(fn, range(12), backend="process", chunksize=6, errors="collect")
    assert [i for i, r in enumerate(out) if not r.ok] == [5]
    assert _runs(tmp_path)[5] == 1  # the others may have run again; the crasher did not


def test_raise_mode_names_the_input() -> None:
    fn = functools.partial(fk.exit_on, 3, None)
    with pytest.raises(anypool.WorkerCrashed, match="on input 3"):
        anypool.map(fn, range(8), backend="process", chunksize=8)


def test_chaos_kills_lose_nothing() -> None:
    """Workers SIGKILLed from outside every ~0.1 s during a 3,000-task map with retries."""
    me = psutil.Process()
    stop = threading.Event()
    kills = []

    def killer() -> None:
        while not stop.wait(0.1):  # the chaos source: a kill every 0.1 s, not a sync point
            for child in me.children(recursive=True):
                try:
                    cmd = " ".join(child.cmdline())
                except psutil.Error:
                    continue
                # a worker: a child of the fork server (however it was started), not the
                # server or the resource tracker, which are this process's own children
                if child.ppid() != me.pid and cmd:
                    try:
                        child.send_signal(signal.SIGKILL)
                        kills.append(child.pid)
                    except psutil.Error:
                        pass
                    break

    t = threading.Thread(target=killer, name="chaos-killer", daemon=True)
    t.start()
    try:
        out = anypool.map(fk.spin_ms, range(3000), backend="process", workers=2, retries=20)
    finally:
        stop.set()
        t.join(SHORT_TIMEOUT)
    assert out == list(range(3000))
    assert len(kills) >= 3, f"the chaos thread killed {len(kills)} worker(s): too few to prove much"


def test_a_retried_chunk_runs_again_from_where_it_died(tmp_path: Path) -> None:
    """With retries, a crashed chunk runs again in two pieces: the items that finished before
    the crash (with the retries they had) and the rest, from the item that was running (it
    spends one). Only that part is retried again, so the items that never ran run once."""
    fn = functools.partial(fk.exit_on, 5, str(tmp_path))
    out = anypool.map(fn, range(12), backend="process", chunksize=12, retries=2, errors="collect")
    assert [i for i, r in enumerate(out) if not r.ok] == [5]
    assert "gave up after 3 attempts" in str(out[5].error)
    assert [r.value for i, r in enumerate(out) if i != 5] == [i for i in range(12) if i != 5]
    runs = _runs(tmp_path)
    assert runs[5] == 3  # the first run and two retries
    assert [runs[i] for i in range(5)] == [2] * 5  # finished, lost with the worker, run again
    assert [runs[i] for i in range(6, 12)] == [1] * 6  # never started before the last crash
