"""Fault soak and pool hygiene for ``benchmarks/run.py`` section (f); run in a fresh interpreter.

    python faults_soak.py soak 10000        # the fault mix on the process backend
    python faults_soak.py cycles thread 1000

Prints one JSON line. The task functions live here so the worker processes import them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from typing import Any

import anypool

TIMEOUT_S = 0.25  # task_timeout of the soak; the hung tasks would sleep far longer


class Flaky(ConnectionError):
    """A transient error: retried (retry_on=Flaky)."""


_flaky_seen: set[int] = set()  # per worker process


def kind(i: int) -> str:
    """The fault each input meets: a fixed mix over the 10,000 tasks."""
    if i % 200 == 1:
        return "crash"  # os._exit every time: fails with WorkerCrashed after its retry
    if i % 200 == 5:
        return "crash-once"  # crashes its first worker; the retry on a fresh one succeeds
    if i % 500 == 2:
        return "hang"  # overruns task_timeout: its worker is killed and replaced
    if i % 100 == 3:
        return "error"  # ValueError: not in retry_on, fails at once
    if i % 200 == 4:
        return "flaky"  # Flaky on the first try in this worker, then succeeds
    return "ok"


def task(i: int, marker_dir: str) -> int:
    k = kind(i)
    if k == "crash":
        os._exit(3)
    if k == "crash-once":
        try:
            with open(os.path.join(marker_dir, str(i)), "x"):
                pass
        except FileExistsError:
            return i * i
        os._exit(4)
    if k == "hang":
        time.sleep(60)
    if k == "error":
        raise ValueError(f"bad input {i}")
    if k == "flaky" and i not in _flaky_seen:
        _flaky_seen.add(i)
        raise Flaky(f"transient failure on {i}")
    return i * i


EXPECTED_ERROR = {
    "crash": anypool.WorkerCrashed,
    "hang": anypool.TaskTimeoutError,
    "error": ValueError,
}


def resources() -> dict[str, Any]:
    import psutil

    children = set()
    for c in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(c.cmdline())
            if "forkserver" in cmd or "resource_tracker" in cmd:
                continue
            if c.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        children.add(c.pid)
    return {
        "threads": threading.active_count(),
        "children": len(children),
        "fds": len(os.listdir("/proc/self/fd")),
        "shm": sorted(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else [],
    }


def soak(n: int) -> dict[str, Any]:
    with anypool.Pool("process", workers=2) as warm:  # start the fork server first
        warm.submit(abs, -1).result()
    before = resources()
    counts = {"done": 0, "failed_as_expected": 0, "lost": 0, "wrong": 0}
    kinds: dict[str, int] = {}
    examples: list[str] = []
    t0 = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as marker_dir,
        anypool.Pool(
            "process", workers=2, retries=1, retry_on=Flaky, task_timeout=TIMEOUT_S
        ) as pool,
    ):
        seen = 0
        for r in pool.imap(task, range(n), [marker_dir] * n, errors="collect"):
            i = r.index
            if i != seen:
                counts["wrong"] += 1
            seen += 1
            k = kind(i)
            kinds[k] = kinds.get(k, 0) + 1
            want = EXPECTED_ERROR.get(k)
            if want is None and r.ok and r.value == i * i:
                counts["done"] += 1
            elif want is not None and isinstance(r.error, want):
                counts["failed_as_expected"] += 1
            else:
                counts["wrong"] += 1
                if len(examples) < 5:
                    examples.append(f"#{i} {k}: {r.error!r}"[:300])
        counts["lost"] = n - seen
    elapsed = time.perf_counter() - t0
    after = resources()
    return {
        **counts,
        "n": n,
        "kinds": kinds,
        "wrong_examples": examples,
        "time_s": elapsed,
        "leaked_processes": after["children"] - before["children"],
        "leaked_threads": after["threads"] - before["threads"],
        "leaked_fds": after["fds"] - before["fds"],
        "new_shm": sorted(set(after["shm"]) - set(before["shm"])),
    }


async def _one(x: int) -> int:
    return x


def cycles(backend: str, n: int) -> dict[str, Any]:
    fn: Any = _one if backend == "asyncio" else abs

    def cycle() -> None:
        with anypool.Pool(backend, workers=2) as pool:
            assert list(pool.map(fn, range(4), chunksize=1)) == [0, 1, 2, 3]

    cycle()  # shared helpers (the fork server) start once per program
    before = resources()
    t0 = time.perf_counter()
    for _ in range(n):
        cycle()
    elapsed = time.perf_counter() - t0
    after = resources()
    return {
        "n": n,
        "time_s": elapsed,
        "threads": after["threads"] - before["threads"],
        "children": after["children"] - before["children"],
        "fds": after["fds"] - before["fds"],
        "new_shm": sorted(set(after["shm"]) - set(before["shm"])),
    }


def main(argv: list[str]) -> int:
    if argv[0] == "soak":
        out = soak(int(argv[1]))
    elif argv[0] == "cycles":
        out = cycles(argv[1], int(argv[2]))
    else:
        sys.exit(f"unknown command {argv[0]!r}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
