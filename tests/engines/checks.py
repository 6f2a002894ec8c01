"""The behaviours an engine's executor must show under anypool, run inside that engine's program.

The engines (``mpiexec``, Parsl) start their own processes and threads, so each runs in a
program of its own (``mpi_map.py``, ``parsl_map.py``) that prints these results as JSON for
``tests/test_executor_engines.py`` to check. The task functions are closures: cloudpickle
sends them by value, so the engines' workers need not import this module.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import tempfile
from typing import Any

import anypool


class Flaky(Exception):
    pass


def run_checks(executor: cf.Executor) -> dict[str, Any]:
    """Run a map, errors, retries and a trace on ``executor``; what happened, as plain data."""
    offset = 1000
    marker = os.path.join(tempfile.mkdtemp(), "failed-once")

    def shift(x: int) -> int:
        return x + offset

    def fail_on_three(x: int) -> int:
        if x == 3:
            raise ValueError(f"bad input {x}")
        return x

    def flaky(x: int) -> int:
        if x == 2 and not os.path.exists(marker):
            open(marker, "w").close()
            raise Flaky("first attempt")
        return x

    trace = os.path.join(tempfile.mkdtemp(), "run.json")
    out: dict[str, Any] = {}
    out["map"] = anypool.map(shift, range(200), backend=executor, trace=trace)
    with open(trace) as f:
        out["trace_events"] = len(json.load(f)["traceEvents"]) > 0
    collected = anypool.map(fail_on_three, range(6), backend=executor, errors="collect")
    out["collect"] = [r.ok for r in collected]
    out["error"] = type(collected[3].error).__name__
    out["retried"] = anypool.map(flaky, range(4), backend=executor, retries=1, retry_on=Flaky)
    with anypool.Pool(executor) as pool:
        out["unordered"] = sorted(pool.imap_unordered(shift, range(20)))
        out["backend"] = pool.backend
    out["still_running"] = executor.submit(abs, -5).result(timeout=60)
    return out


def expected() -> dict[str, Any]:
    """What ``run_checks`` returns on an engine that behaves."""
    return {
        "map": [x + 1000 for x in range(200)],
        "trace_events": True,
        "collect": [True, True, True, False, True, True],
        "error": "ValueError",
        "retried": [0, 1, 2, 3],
        "unordered": [x + 1000 for x in range(20)],
        "backend": "executor",
        "still_running": 5,
    }
