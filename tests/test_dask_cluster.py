"""docs/cluster.md tried end to end: a scheduler and two workers as separate processes.

``dask scheduler`` and two ``dask worker`` processes are started on 127.0.0.1 (the scheduler
on a free port, its address read from a ``--scheduler-file``), a map runs through the address,
and every process is ended afterwards, also when the test fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import anypool
from conftest import SHORT_TIMEOUT
from daskkit import rendezvous, square

distributed = pytest.importorskip("distributed")
DASK = Path(sys.executable).with_name("dask")
HERE = Path(__file__).resolve().parent


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    # the workers import the test's functions from tests/, as a user's workers must be able to
    # import the user's modules
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        # one task per single-threaded worker at a time, as docs/cluster.md suggests
        "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
    }
    with open(log, "wb") as out:
        return subprocess.Popen(
            [str(DASK), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: ended with all its children
        )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """End each process and everything it started: SIGTERM, then SIGKILL after 10 s."""
    family = []
    for p in procs:
        try:
            family += [p.pid, *(c.pid for c in psutil.Process(p.pid).children(recursive=True))]
        except psutil.Error:
            pass
    for p in reversed(procs):  # workers first, then the scheduler
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    for pid in family:  # nanny-started worker processes are in the same group
        try:
            psutil.Process(pid).wait(timeout=10)
        except psutil.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
        except psutil.Error:
            pass


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """A scheduler and two single-threaded workers, each its own process; yields the address."""
    if not DASK.exists():
        pytest.skip("the dask command is not installed next to this Python")
    sched_file = tmp_path / "scheduler.json"
    procs = [
        _start(
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            tmp_path / "scheduler.log",
        )
    ]
    try:
        deadline = time.monotonic() + SHORT_TIMEOUT
        address = ""
        # the scheduler creates the file, then writes it: until it holds the whole JSON
        while not address and time.monotonic() < deadline:
            assert procs[0].poll() is None, (tmp_path / "scheduler.log").read_text()
            try:
                address = json.loads(sched_file.read_text())["address"]
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.05)  # a process out of our reach: polled, with a deadline
        assert address.startswith("tcp://127.0.0.1:")
        for i in range(2):
            procs.append(
                _start(
                    ["worker", address, "--nthreads", "1", "--name", str(i), "--no-dashboard"],
                    tmp_path / f"worker-{i}.log",
                )
            )
        with distributed.Client(address, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=SHORT_TIMEOUT)
        yield address
    finally:
        _stop(procs)
        still = [p.pid for p in procs if psutil.pid_exists(p.pid) and p.poll() is None]
        assert not still, f"cluster processes still running: {still}"


def test_a_map_runs_through_the_address_on_both_workers(cluster: str, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    with anypool.Pool("dask", address=cluster) as pool:
        assert pool.workers == 2  # the cluster's threads
        out = list(pool.map(rendezvous, [str(marks)] * 6, range(6), chunksize=1))
        assert list(pool.imap(square, range(50))) == [i * i for i in range(50)]
    assert [i for i, _, _ in out] == list(range(6))
    assert len({addr for _, addr, _ in out}) == 2  # both workers ran tasks
    assert {wid for _, _, wid in out} == {0, 1}  # current_worker().id is the --name
    # the cluster is left running for others
    with distributed.Client(cluster, set_as_default=False) as client:
        assert len(client.scheduler_info()["workers"]) == 2
