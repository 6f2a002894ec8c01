"""(c) blocking I/O on threads: 2,000 x time.sleep(0.01), 64 workers, against the ideal 0.3125 s.

Target: thread ideal/median >= 0.95.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import harness as h
import workloads as w
from harness import Table, fmt, us, verdict
from runners import (
    best_of,
    check_equal,
    minmax,
    r_anypool,
    r_anypool_oneshot,
    r_joblib,
    r_mp_pool,
    r_mpire,
    r_tpe,
)

KEY = "c"
NAME = "blocking_io_threads"


def configure(cfg: argparse.Namespace) -> None:
    """Sizes (``cfg.quick``: smaller)."""
    cfg.n_c = 2_000  # 0.3 s per call: the full size even with --quick


def bench(cfg: argparse.Namespace) -> Table:
    n, k = cfg.n_c, 64
    data = list(range(n))
    t0 = time.perf_counter()
    for _ in range(20):
        time.sleep(w.SLEEP_S)
    one = (time.perf_counter() - t0) / 20
    ideal = n / k * w.SLEEP_S
    rounds = -(-n // k)
    specs: list[tuple[str, Any]] = [
        (f"ThreadPoolExecutor({k}).map", r_tpe(w.sleep_task, data, k)),
        (f"multiprocessing.pool.ThreadPool({k}).map", r_mp_pool(w.sleep_task, data, k, "thread")),
        (f"joblib.Parallel({k}, threading)", r_joblib(w.sleep_task, data, k, "threading")),
        (f"mpire.WorkerPool({k}, threading).map", r_mpire(w.sleep_task, data, k, "threading")),
        (f"anypool Pool('thread', {k}).imap", r_anypool("thread", w.sleep_task, data, k)),
        (
            f"anypool.map(backend='thread', workers={k}) one-shot",
            r_anypool_oneshot("thread", w.sleep_task, data, k),
        ),
        (
            f"anypool.map(backend='auto', workers={k}) one-shot (info)",
            r_anypool_oneshot("auto", w.sleep_task, data, k),
        ),
    ]
    ms = h.measure_all(
        [h.Case(name, r, n, check_equal(data)) for name, r in specs],
        reps=cfg.reps,
        timeout=cfg.timeout,
    )
    cols = [
        "runner",
        "median s",
        "min–max s",
        "ideal/median",
        "CPU us/task",
        "x best",
        "target (ideal/median ≥ 0.95)",
    ]
    t = Table(
        f"({'c'}) {n} x time.sleep({w.SLEEP_S}) with {k} worker threads; ideal {fmt(ideal, 4)} s "
        f"(measured sleep {one * 1e3:.2f} ms)",
        cols,
    )
    best = best_of(ms, lambda m: m.median)
    for m in ms:
        if not m.ok:
            t.add(*h.failed_row(m, len(cols)))
            continue
        ratio = ideal / m.median
        target = ""
        if m.name.startswith("anypool") and "'thread'" in m.name:
            target = f"{fmt(ratio)}: {verdict(ratio >= 0.95)}"
        t.add(
            m.name,
            fmt(m.median),
            minmax(m),
            fmt(ratio),
            us(statistics.median(m.cpu) / n),
            fmt(m.median / best) if best else "",
            target,
        )
    t.note(
        f"ideal = n/{k} x {w.SLEEP_S} s as in the issue. With whole tasks the schedule needs "
        f"{rounds} rounds: {fmt(rounds * w.SLEEP_S, 4)} s at 10 ms, {fmt(rounds * one, 4)} s at "
        f"the measured sleep, so ideal/median cannot exceed {fmt(ideal / (rounds * one))} here."
    )
    t.note("CPU = this process's CPU time (all its threads) per task: the pool's own cost.")
    return t
