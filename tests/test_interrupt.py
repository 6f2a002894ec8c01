"""Ctrl-C: one interrupt is enough, control comes back at once, nothing is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

import anypool
from conftest import SHORT_TIMEOUT


def sleep_long(x: float) -> float:
    time.sleep(x)
    return x


def test_interrupt_in_a_process_map_ends_running_workers() -> None:
    # the consumer is interrupted while every worker runs a 60 s task; the leak check of
    # conftest fails the test if a worker process is left
    def interrupted_run() -> None:
        with anypool.Pool("process", workers=2) as pool:
            for _ in pool.imap(sleep_long, [0.0, 60.0, 60.0, 60.0], chunksize=1):
                raise KeyboardInterrupt

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        interrupted_run()
    assert time.monotonic() - t0 < SHORT_TIMEOUT


def test_interrupt_in_anypool_map_on_threads_does_not_wait_for_running_tasks() -> None:
    gate = threading.Event()
    started = threading.Event()

    def block(x: int) -> int:
        if x == 0:
            raise KeyboardInterrupt  # stands for Ctrl-C arriving while the map runs
        started.set()
        gate.wait(SHORT_TIMEOUT)
        return x

    try:
        with pytest.raises(KeyboardInterrupt):
            anypool.map(block, range(10), backend="thread", workers=2, chunksize=1)
        assert not gate.is_set()  # we came back while tasks still blocked
    finally:
        gate.set()
        for t in threading.enumerate():
            if t.name.startswith("anypool-thread"):
                t.join(SHORT_TIMEOUT)


SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import anypool

    def nap(x):
        os.write(1, f"worker {os.getpid()}\\n".encode())  # one write: lines never interleave
        time.sleep(60)
        return x

    if __name__ == "__main__":
        print("started", flush=True)
        anypool.map(nap, range(8), backend="process", workers=2, chunksize=1)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_program_leaves_no_worker_behind(tmp_path: object, sig: int) -> None:
    """Ctrl-C stops it within 2 s; SIGTERM/SIGKILL end it at once and the workers notice."""
    script = os.path.join(str(tmp_path), "prog.py")
    with open(script, "w") as f:
        f.write(SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        # until both workers run a task: each says so (forked from the program or from the
        # fork server, they are its children or grandchildren)
        pids: set[int] = set()
        while len(pids) < 2:
            line = proc.stdout.readline()
            assert line, "the program ended before both workers started"
            pids.add(int(line.split()[1]))
        workers = [psutil.Process(pid) for pid in pids]
        t0 = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=SHORT_TIMEOUT)
        elapsed = time.monotonic() - t0
        assert elapsed < 2.0, f"took {elapsed:.2f} s to stop"
        assert proc.returncode != 0
        gone, alive = psutil.wait_procs(workers, timeout=5)
        assert not alive, f"orphan workers: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
