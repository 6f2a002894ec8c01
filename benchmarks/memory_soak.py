"""(n) memory soak: 1,000 process tasks that leak or hog memory, with both memory limits.

1 in 50 tasks leaks 50 MB, 1 in 200 tries to allocate 1.2 GB; max_memory_per_worker="150MB",
task_memory_limit="500MB"; the workers' size sampled from outside. Implemented in
memory_bench.py (also standalone).

Target: 0 lost, exactly the hogs fail, peak < limit + 200 MB, no child left.
"""

from __future__ import annotations

import argparse

from harness import Table

KEY = "n"
NAME = "memory_soak"


def bench(cfg: argparse.Namespace) -> Table:
    import memory_bench  # here: it imports what its sections need, which the driver must not

    return memory_bench.bench_n(cfg)
