"""Functions the Dask workers run in tests/test_dask.py and tests/test_dask_cluster.py.

A module of their own that imports little, so that a worker's first task (which imports it)
is quick; the session's workers find it on their ``PYTHONPATH``, as a user's workers must
find the user's modules.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import anypool

SHORT_TIMEOUT = 30.0


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad input {x}")
    return x


def wait_for(path: str, value: Any = None) -> Any:
    """Hold a worker until ``path`` exists (bounded, so a failed test cannot wedge it)."""
    deadline = time.monotonic() + SHORT_TIMEOUT
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return value


def touch_and_wait(marker: str, started: str) -> str:
    Path(started).touch()
    return str(wait_for(marker, "finished"))


def record(directory: str, i: int) -> int:
    Path(directory, f"ran-{i}").touch()
    return i


def exit_on_first_attempt(marker_dir: str, x: int) -> tuple[int, int]:
    """``os._exit`` the worker the first time input 1 runs; then succeed."""
    marker = Path(marker_dir, f"crashed-{x}")
    if x == 1 and not marker.exists():
        marker.touch()
        os._exit(3)
    return (x, os.getpid())


def always_exit(x: int) -> int:
    if x == 2:
        os._exit(4)
    return x


def crash_count(marker_dir: str, x: int) -> int:
    """Crash the worker on the first two runs (more than the session's allowed-failures)."""
    runs = len(list(Path(marker_dir).iterdir()))
    if runs < 2:
        Path(marker_dir, f"run-{runs}").touch()
        os._exit(5)
    return x


def where(_x: int) -> tuple[int, str]:
    w = anypool.current_worker()
    return (w.id, w.backend)


def rendezvous(directory: str, i: int) -> tuple[int, str, int]:
    """Say which Dask worker runs input ``i``; wait (bounded) until two workers have said so.

    Two tasks handed to two workers at once both return only when both workers took one, so
    a map of them shows that the work was spread over the cluster.
    """
    import distributed

    address = distributed.get_worker().address
    Path(directory, f"{address.replace('/', '_').replace(':', '_')}-{i}").touch()
    deadline = time.monotonic() + SHORT_TIMEOUT
    while time.monotonic() < deadline:
        workers = {p.name.rsplit("-", 1)[0] for p in Path(directory).iterdir()}
        if len(workers) >= 2:
            break
        time.sleep(0.01)
    return (i, address, anypool.current_worker().id)
