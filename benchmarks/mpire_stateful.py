"""(v) mpire's stateful workload: per-worker histograms, gathered at the end, 2 workers.

anypool with `initializer=`, `current_worker().state` and `pool.broadcast()` beside mpire with
`use_worker_state`, `worker_exit` and `get_exit_results()`; ProcessPoolExecutor on fork and the
serial loop as references. Each call in a fresh program (mpire_workloads.py). Needs numpy.

Target: <= 1.0x mpire.
"""

from __future__ import annotations

import argparse

from harness import Table

KEY = "v"
NAME = "mpire_stateful"


def bench(cfg: argparse.Namespace) -> Table:
    import mpire_workloads  # here: it imports what its sections need, which the driver must not

    return mpire_workloads.bench_v(cfg)
