"""(k) pool.Counter against pool.Lock + pool.Value and a Manager dict + lock, per backend.

Target: the Manager >= 10x slower than `pool.Counter`. Runners in sync_bench.py.
"""

from __future__ import annotations

import argparse

import harness as h
from harness import Table, fmt, us, verdict
from runners import check_equal_value, find, needs

KEY = "k"
NAME = "sync_primitives"


def configure(cfg: argparse.Namespace) -> None:
    """Sizes (``cfg.quick``: smaller)."""
    cfg.n_k = 20_000 if cfg.quick else 100_000


def bench(cfg: argparse.Namespace) -> Table:
    import sync_bench as sb

    n, n_mgr, tasks = cfg.n_k, max(1, cfg.n_k // 50), 2
    cases = []
    for backend in ("thread", "process", "asyncio"):
        for kind in sb.KINDS:
            per_task = n_mgr if kind.startswith("Manager") else n
            cases.append(
                h.Case(
                    f"{backend}: {kind}",
                    needs(backend, sb.r_counter(backend, kind, tasks, per_task)),
                    tasks * per_task,
                    check_equal_value(tasks * per_task),
                )
            )
    ms = h.measure_all(cases, reps=cfg.reps, timeout=cfg.timeout)
    cols = [
        "runner",
        "increments timed",
        "median s",
        "us per increment",
        "x pool.Counter",
        "target (Manager ≥ 10x Counter)",
    ]
    t = Table(
        f"(k) shared counter: {tasks} workers each adding 1 under contention "
        f"({n:,} each; Manager rows {n_mgr:,} each)",
        cols,
    )
    for backend in ("thread", "process", "asyncio"):
        base = find(ms, f"{backend}: pool.Counter")
        for kind in sb.KINDS:
            m = next(x for x in ms if x.name == f"{backend}: {kind}")
            if not m.ok:
                t.add(*h.failed_row(m, len(cols)))
                continue
            ratio = m.per_item / base.per_item if base is not None and base.ok else None
            target = ""
            if kind.startswith("Manager") and ratio is not None:
                target = f"{ratio:.0f}x: {verdict(ratio >= 10)}"
            t.add(m.name, f"{m.n:,}", fmt(m.median), us(m.per_item), fmt(ratio, 2), target)
    t.note(
        "Ratios per increment, measured in the same run. pool.Counter on processes is an int64 "
        "in shared memory behind a named POSIX semaphore; pool.Lock + pool.Value likewise, with "
        "the Value's own lock taken too on each read and write (as multiprocessing.Value does); "
        "the Manager rows are the guide's way (every operation a round trip to the manager "
        "process), timed on 1/50 of the increments."
    )
    return t
