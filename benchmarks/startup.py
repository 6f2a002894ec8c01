"""(s) start-up: create a pool, first trivial result, shutdown; a fresh interpreter per rep.

Target: the process backend < 0.15 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import harness as h
from harness import Measured, Table, fmt, verdict
from runners import AVAILABLE, PROBE, best_of, minmax

KEY = "s"
NAME = "startup"


def bench(cfg: argparse.Namespace) -> Table:
    runners = [
        ("anypool Pool('process', 2) (default start method)", "anypool-process", "process"),
        (
            "anypool Pool('process', 2, start_method='fork')",
            "anypool-process-fork",
            "process",
        ),
        ("anypool Pool('thread', 2)", "anypool-thread", "thread"),
        ("ProcessPoolExecutor(2) fork", "ppe-fork", None),
        ("ProcessPoolExecutor(2) spawn", "ppe-spawn", None),
        ("ProcessPoolExecutor(2) forkserver", "ppe-forkserver", None),
        ("multiprocessing.Pool(2) fork", "mp-pool-fork", None),
        ("ThreadPoolExecutor(2)", "tpe", None),
    ]
    results: list[Measured] = []
    for label, key, backend in runners:
        m = Measured(label, n=1)
        if backend is not None and AVAILABLE.get(backend) is not None:
            m.skipped = str(AVAILABLE[backend]) + "; merge main to get it"
        else:
            parts: dict[str, list[float]] = {}
            try:
                for _ in range(cfg.reps):
                    out = h.run_script(PROBE, ["startup", key], timeout=60)
                    m.times.append(out["total_s"])
                    for k, v in out.items():
                        parts.setdefault(k, []).append(v)
                m.extra = {k: statistics.median(v) for k, v in parts.items()}
            except Exception as exc:
                m.error = str(exc)[:160]
        print(f"  {label:<58} {m.error or m.skipped or fmt(m.median)}", file=sys.stderr)
        results.append(m)
    cols = [
        "runner",
        "median s",
        "min–max s",
        "create s",
        "first result s",
        "shutdown s",
        "import s",
        "x best",
        "target (< 0.15 s)",
    ]
    t = Table(
        "(s) Start-up: create pool + first trivial result + shutdown "
        f"(fresh interpreter each rep, {cfg.reps} reps)",
        cols,
    )
    best = best_of(results, lambda m: m.median)
    for m in results:
        if not m.ok:
            t.add(*h.failed_row(m, len(cols)))
            continue
        target = ""
        if m.name.startswith("anypool Pool('process', 2) (default"):
            target = f"{fmt(m.median)} s: {verdict(m.median < 0.15)}"
        e = m.extra
        t.add(
            m.name,
            fmt(m.median),
            minmax(m),
            fmt(e["create_s"]),
            fmt(e["first_s"]),
            fmt(e["shutdown_s"]),
            fmt(e["import_s"]),
            fmt(m.median / best) if best else "",
            target,
        )
    t.note(
        "median = create + first result + shutdown; `import` is the package's own import "
        "time, measured after `workloads` (which imports asyncio) and not in the median."
    )
    return t
