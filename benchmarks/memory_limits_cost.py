"""(l) the cost of max_memory_per_worker= and task_memory_limit= on (b)'s ~1 ms CPU tasks.

A warm Pool('process', 2) with each option and both, against two pools without them (the
second shows the noise floor), interleaved. Implemented in memory_bench.py (also standalone).

Target: fastest rep <= +3%.
"""

from __future__ import annotations

import argparse

from harness import Table

KEY = "l"
NAME = "memory_limits_cost"


def bench(cfg: argparse.Namespace) -> Table:
    import memory_bench  # here: it imports what its sections need, which the driver must not

    return memory_bench.bench_l(cfg)
