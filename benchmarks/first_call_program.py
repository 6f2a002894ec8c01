"""One fresh program: import numpy and scipy, then time the first parallel call (section g).

python first_call.py RUNNER   ->   prints {"s": seconds of the first call} as JSON
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np  # noqa: F401 - the program has imported them before its first call
import scipy.signal  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scipy_workloads import sig_task

N, WORKERS = 8, 2


def run(runner: str) -> list[float]:
    if runner == "anypool":
        import anypool

        return anypool.map(sig_task, range(N), backend="process", workers=WORKERS)
    if runner in ("ppe-fork", "ppe-default"):
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("fork") if runner == "ppe-fork" else None
        with ProcessPoolExecutor(WORKERS, mp_context=ctx) as ex:
            return list(ex.map(sig_task, range(N)))
    if runner == "joblib":
        from joblib import Parallel, delayed

        return list(Parallel(n_jobs=WORKERS)(delayed(sig_task)(i) for i in range(N)))
    if runner == "mpire":
        from mpire import WorkerPool

        with WorkerPool(n_jobs=WORKERS, start_method="fork") as pool:
            return list(pool.map(sig_task, range(N)))
    if runner == "serial":
        return [sig_task(i) for i in range(N)]
    raise SystemExit(f"unknown runner {runner!r}")


if __name__ == "__main__":
    t0 = time.perf_counter()
    out = run(sys.argv[1])
    dt = time.perf_counter() - t0
    assert len(out) == N
    print(json.dumps({"s": dt}))
