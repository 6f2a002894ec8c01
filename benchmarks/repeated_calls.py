"""(r) ten repeated one-shot process maps of 8 items with a scipy-using task, per call.

Target: anypool <= 1.2x ProcessPoolExecutor on fork and <= 1.0x joblib.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from collections.abc import Callable, Iterator
from typing import Any

import harness as h
from harness import Skip, Table, fmt, verdict
from runners import need_scipy_workloads

KEY = "r"
NAME = "repeated_calls"
N, WORKERS = 8, 2


def _runner(name: str) -> Callable[[], Iterator[Callable[[], Any]]]:
    def gen() -> Iterator[Callable[[], Any]]:
        sw = need_scipy_workloads()
        fn = sw.sig_task
        if name == "anypool":
            import anypool

            anypool.shutdown_warm_workers()  # start cold, as a fresh program would
            yield lambda: anypool.map(fn, range(N), backend="process", workers=WORKERS)
            anypool.shutdown_warm_workers()
        elif name.startswith("ProcessPoolExecutor"):
            from concurrent.futures import ProcessPoolExecutor

            ctx = mp.get_context("fork") if "fork" in name else None

            def ppe() -> list[float]:
                with ProcessPoolExecutor(WORKERS, mp_context=ctx) as ex:
                    return list(ex.map(fn, range(N)))

            yield ppe
        elif name.startswith("joblib"):
            try:
                from joblib import Parallel, delayed
            except ImportError as exc:
                raise Skip(str(exc)) from None
            yield lambda: list(Parallel(n_jobs=WORKERS)(delayed(fn)(i) for i in range(N)))
        elif name.startswith("mpire"):
            try:
                from mpire import WorkerPool
            except ImportError as exc:
                raise Skip(str(exc)) from None

            def mp_call() -> list[float]:
                with WorkerPool(n_jobs=WORKERS, start_method="fork") as pool:
                    return list(pool.map(fn, range(N)))

            yield mp_call
        else:
            yield lambda: [fn(i) for i in range(N)]

    return gen


R_RUNNERS = (
    "anypool.map(backend='process') one-shot",
    "ProcessPoolExecutor (fork) per call",
    "ProcessPoolExecutor (default context) per call",
    "joblib Parallel (loky, reusable)",
    "mpire WorkerPool (fork) per call",
    "serial",
)


def _key(row: str) -> str:
    return row.split()[0].split(".")[0]


def bench(cfg: argparse.Namespace) -> Table:
    reps = max(cfg.reps, 10)
    expected: list[float] | None = None
    try:
        expected = need_scipy_workloads().sig_expected(range(N))
    except Skip:
        pass

    def check(out: Any) -> None:
        assert expected is None or list(out) == expected

    cases = [h.Case(name, _runner(_key(name)), N, check) for name in R_RUNNERS]
    ms = h.measure_all(cases, reps=reps, timeout=cfg.timeout)
    by = {m.name: m for m in ms}
    cols = [
        "runner",
        "median ms per call",
        "first call ms",
        "x ProcessPoolExecutor fork",
        "x joblib",
        "target (≤ 1.2x PPE fork, ≤ 1.0x joblib)",
    ]
    t = Table(
        f"(r) {reps} repeated one-shot process maps of {N} items, {WORKERS} workers, "
        "a task that uses scipy.signal: per call",
        cols,
    )
    fork = by[R_RUNNERS[1]]
    jl = by[R_RUNNERS[3]]
    for m in ms:
        if not m.ok:
            t.add(*h.failed_row(m, len(cols)))
            continue
        rf = m.median / fork.median if fork.ok else None
        rj = m.median / jl.median if jl.ok else None
        target = ""
        if m.name == R_RUNNERS[0] and rf is not None and rj is not None:
            target = f"{rf:.2f}x / {rj:.2f}x: {verdict(rf <= 1.2 and rj <= 1.0)}"
        t.add(m.name, fmt(m.median * 1e3), fmt(m.times[0] * 1e3), fmt(rf, 2), fmt(rj, 2), target)
    t.note(
        "Each call starts its own pool (anypool.map, a `with` executor), as a loop over "
        "batches or a re-run notebook cell does; joblib keeps its loky workers between calls. "
        "anypool hands a cleanly closed pool's idle workers to the next pool with the same "
        "settings (kept warm), so scipy is imported once per worker per program. The first "
        "call of each runner is in 'first call ms' and in the median."
    )
    return t
