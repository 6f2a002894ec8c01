"""mpire's numerical and stateful workloads, each call in a fresh program (sections i and v).

Issue 13: anypool written with its own features beside mpire written as its benchmark writes
it (a ``WorkerPool`` per call, fork, ``shared_objects=`` / ``use_worker_state`` with
``worker_exit`` and ``get_exit_results()``), with ``ProcessPoolExecutor`` on fork and a serial
loop as references. Every timed call starts its pool, as mpire's benchmark does, so start-up
counts; each runs in its own interpreter that has imported numpy, scipy and the runner's
library first (as mpire's benchmark script does at its top).

python mpire_workloads.py WORKLOAD RUNNER   ->   {"s": seconds, "check": float} as JSON
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal

HERE = Path(__file__).resolve().parent
WORKERS = 2
#: numerical: a 2500 x 2500 image convolved with 10 filters (mpire's sizes), 5 x 5 here
IMAGE, FILTERS, FILTER = 2500, 10, 5
#: stateful: tasks that each add a histogram of 100,000 draws to their worker's state
TASKS, DRAWS, BINS = 1_000, 400_000, 1_000
RUNNERS = {
    "numerical": ("anypool", "mpire", "ppe-fork", "serial"),
    "stateful": ("anypool", "mpire", "ppe-fork", "serial"),
}


# -- numerical -------------------------------------------------------------------------------
def make_image() -> Any:
    return np.random.default_rng(0).random((IMAGE, IMAGE))


def make_filters() -> list[Any]:
    rng = np.random.default_rng(1)
    return [rng.random((FILTER, FILTER)) for _ in range(FILTERS)]


def convolve(image: Any, kernel: Any) -> float:
    """One filter over the whole image; the result is summed (the image is the big part)."""
    return float(scipy.signal.convolve2d(image, kernel, mode="same").sum())


def convolve_mpire(shared: Any, kernel: Any) -> float:
    """mpire passes its ``shared_objects`` as the first argument."""
    return convolve(shared, kernel)


_IMAGE: Any = None


def _ppe_init(image: Any) -> None:
    global _IMAGE
    _IMAGE = image


def _ppe_convolve(kernel: Any) -> float:
    return convolve(_IMAGE, kernel)


def _import(runner: str) -> None:
    """The runner's library, imported before the clock starts (the program has it already).

    All of the code the runner will use: ``import mpire`` loads all of mpire, while
    ``concurrent.futures`` and anypool load their process pools on first use (~10 ms for
    anypool's), so those modules are imported here.
    """
    if runner == "anypool":
        import anypool._backends._process_sync  # pool.share()'s module
        import anypool._backends._processes  # noqa: F401 - the process backend
        from anypool import Pool  # noqa: F401 - anypool's names load on first use
    elif runner == "mpire":
        import mpire  # noqa: F401
    elif runner == "ppe-fork":
        import concurrent.futures.process  # noqa: F401


def numerical(runner: str) -> tuple[float, float]:
    image, filters = make_image(), make_filters()
    _import(runner)
    t0 = time.perf_counter()
    if runner == "anypool":
        import anypool

        with anypool.Pool("process", WORKERS) as pool:
            # mapped once in each worker, no copy; copy-on-write ("c"), as mpire's fork gives:
            # scipy copies a read-only input on every call
            shared = pool.share(image, mode="c")
            out = pool.map(partial(convolve, shared), filters)
    elif runner == "mpire":
        from mpire import WorkerPool

        with WorkerPool(n_jobs=WORKERS, shared_objects=image, start_method="fork") as pool:
            out = pool.map(convolve_mpire, filters)
    elif runner == "ppe-fork":
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("fork")  # the workers inherit the image through the fork
        with ProcessPoolExecutor(WORKERS, ctx, initializer=_ppe_init, initargs=(image,)) as ex:
            out = list(ex.map(_ppe_convolve, filters))
    elif runner == "serial":
        out = [convolve(image, f) for f in filters]
    else:
        raise SystemExit(f"unknown runner {runner!r}")
    dt = time.perf_counter() - t0
    return dt, sum(out)


# -- stateful --------------------------------------------------------------------------------
def histogram(i: int) -> Any:
    draws = np.random.default_rng(i).integers(0, BINS, DRAWS)
    return np.bincount(draws, minlength=BINS)


def _counts_init() -> None:
    import anypool

    anypool.current_worker().state["counts"] = np.zeros(BINS, dtype=np.int64)


def _counts_add(i: int) -> None:
    import anypool

    anypool.current_worker().state["counts"] += histogram(i)


def _counts_report() -> Any:
    import anypool

    return anypool.current_worker().state["counts"]


def _mpire_init(worker_state: dict[str, Any]) -> None:
    worker_state["counts"] = np.zeros(BINS, dtype=np.int64)


def _mpire_add(worker_state: dict[str, Any], i: int) -> None:
    worker_state["counts"] += histogram(i)


def _mpire_exit(worker_state: dict[str, Any]) -> Any:
    return worker_state["counts"]


def stateful(runner: str) -> tuple[float, float]:
    _import(runner)
    t0 = time.perf_counter()
    if runner == "anypool":
        import anypool

        with anypool.Pool("process", WORKERS, initializer=_counts_init) as pool:
            for _ in pool.imap_unordered(_counts_add, range(TASKS)):
                pass
            total = sum(pool.broadcast(_counts_report).values())  # each worker's part, once
    elif runner == "mpire":
        from mpire import WorkerPool

        with WorkerPool(n_jobs=WORKERS, use_worker_state=True, start_method="fork") as pool:
            pool.map(_mpire_add, range(TASKS), worker_init=_mpire_init, worker_exit=_mpire_exit)
            total = sum(pool.get_exit_results())
    elif runner == "ppe-fork":
        from concurrent.futures import ProcessPoolExecutor

        # no per-worker state to gather: every task sends its histogram back
        with ProcessPoolExecutor(WORKERS, mp.get_context("fork")) as ex:
            total = sum(ex.map(histogram, range(TASKS), chunksize=TASKS // (4 * WORKERS)))
    elif runner == "serial":
        total = sum(histogram(i) for i in range(TASKS))
    else:
        raise SystemExit(f"unknown runner {runner!r}")
    dt = time.perf_counter() - t0
    return dt, float((np.asarray(total) * np.arange(BINS)).sum())


# -- the bench sections ----------------------------------------------------------------------
def _bench(cfg: argparse.Namespace, workload: str, title: str, note: str) -> Any:
    import harness as h
    from harness import Table, fmt, verdict

    runners = RUNNERS[workload]
    # a fresh program per call varies by ±5 % on the shared 2-core machine: the median of
    # five programs per runner (three with --quick) keeps one slow start from deciding
    reps = max(3 if cfg.quick else 5, cfg.reps // 2)
    times: dict[str, list[float]] = {r: [] for r in runners}
    checks: dict[str, float] = {}
    errors: dict[str, str] = {}
    for _ in range(reps):
        for r in runners:  # interleaved, so the machine's load falls on all alike
            if r in errors:
                continue
            try:
                out = h.run_script(
                    str(HERE / "mpire_workloads.py"), [workload, r], timeout=cfg.timeout
                )
                times[r].append(float(out["s"]))
                checks[r] = float(out["check"])
            except RuntimeError as exc:
                errors[r] = str(exc)[:160]
    cols = ["runner", "median s", "x mpire", "x serial", "result", "target (≤ 1.0x mpire)"]
    t = Table(title + f" ({reps} programs each, interleaved)", cols)
    med = {r: statistics.median(v) for r, v in times.items() if v}
    expected = checks.get("serial")
    for r in runners:
        if r not in med:
            t.add(r, "error: " + errors.get(r, "no result"), "", "", "", "")
            continue
        x_mp = med[r] / med["mpire"] if "mpire" in med else None
        x_se = med[r] / med["serial"] if "serial" in med else None
        same = expected is None or abs(checks[r] - expected) <= 1e-6 * max(1.0, abs(expected))
        target = ""
        if r == "anypool" and x_mp is not None:
            target = f"{x_mp:.2f}x: {verdict(x_mp <= 1.0 and same)}"
        t.add(r, fmt(med[r]), fmt(x_mp, 2), fmt(x_se, 2), "same" if same else "DIFFERENT", target)
    t.note(note)
    return t


def bench_i(cfg: argparse.Namespace) -> Any:
    return _bench(
        cfg,
        "numerical",
        f"(i) mpire's numerical workload: a shared {IMAGE}x{IMAGE} image, {FILTERS} "
        f"scipy.signal.convolve2d filters of {FILTER}x{FILTER}, {WORKERS} workers, pool "
        "started in the call",
        "anypool: Pool('process') + pool.share(image, mode='c') (mapped, no copy, "
        "copy-on-write) + "
        "map(partial(convolve, shared), filters). mpire: WorkerPool(shared_objects=image, "
        "start_method='fork'), as its benchmark. ProcessPoolExecutor on fork: the image "
        "inherited through an initializer global. Timed in each fresh program from the pool's "
        "creation to the results (numpy, scipy, the runner's library and the image made before).",
    )


def bench_v(cfg: argparse.Namespace) -> Any:
    return _bench(
        cfg,
        "stateful",
        f"(v) mpire's stateful workload: {TASKS} tasks each adding a histogram of {DRAWS:,} "
        f"draws to its worker's state, gathered at the end, {WORKERS} workers, pool started "
        "in the call",
        "anypool: Pool('process', initializer=) keeps the counts in current_worker().state; "
        "pool.broadcast(report) gathers each worker's part once. mpire: use_worker_state=True "
        "with worker_init, worker_exit and get_exit_results(), as its benchmark. "
        "ProcessPoolExecutor on fork has no per-worker state to gather: each task returns its "
        "histogram (chunks of 125).",
    )


if __name__ == "__main__":
    workload, runner = sys.argv[1], sys.argv[2]
    fn = numerical if workload == "numerical" else stateful
    seconds, check = fn(runner)
    print(json.dumps({"s": seconds, "check": check}))
