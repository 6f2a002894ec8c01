"""(i) mpire's numerical workload: a shared 2500x2500 image, 10 convolve2d filters, 2 workers.

anypool with `pool.share(image)` beside mpire with `shared_objects=` (fork), as mpire's benchmark
writes it; ProcessPoolExecutor on fork and the serial loop as references. Each call in a fresh
program that has imported numpy and scipy (mpire_workloads.py). Needs numpy and scipy.

Target: <= 1.0x mpire.
"""

from __future__ import annotations

import argparse

from harness import Table

KEY = "i"
NAME = "mpire_numerical"


def bench(cfg: argparse.Namespace) -> Table:
    import mpire_workloads  # here: it imports what its sections need, which the driver must not

    return mpire_workloads.bench_i(cfg)
