"""(g) the first call of a fresh program that imported numpy and scipy.

One subprocess a rep, running first_call_program.py.

Target: <= 1.15x mpire.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import harness as h
from harness import Table, fmt, verdict
from runners import need_scipy_workloads

KEY = "g"
NAME = "first_call"
HERE = Path(__file__).resolve().parent
N, WORKERS = 8, 2  # as in first_call_program.py

G_RUNNERS = ("anypool", "mpire", "ppe-fork", "ppe-default", "joblib", "serial")


def bench(cfg: argparse.Namespace) -> Table:
    need_scipy_workloads()
    reps = max(3, cfg.reps // 2)
    times: dict[str, list[float]] = {r: [] for r in G_RUNNERS}
    errors: dict[str, str] = {}
    for _ in range(reps):
        for r in G_RUNNERS:  # interleaved, so the machine's load falls on all alike
            if r in errors:
                continue
            try:
                out = h.run_script(str(HERE / "first_call_program.py"), [r], timeout=cfg.timeout)
                times[r].append(float(out["s"]))
            except RuntimeError as exc:
                errors[r] = str(exc)[:160]
    cols = ["runner", "median first call ms", "x mpire", "target (≤ 1.15x mpire)"]
    t = Table(
        f"(g) the first call of a fresh program that imported numpy and scipy: {N} items, "
        f"{WORKERS} workers, a scipy.signal task ({reps} programs each)",
        cols,
    )
    med = {r: statistics.median(v) for r, v in times.items() if v}
    for r in G_RUNNERS:
        if r not in med:
            t.add(r, "error: " + errors.get(r, "no result"), "", "")
            continue
        ratio = med[r] / med["mpire"] if "mpire" in med else None
        target = ""
        if r == "anypool" and ratio is not None:
            target = f"{ratio:.2f}x: {verdict(ratio <= 1.15)}"
        t.add(r, fmt(med[r] * 1e3), fmt(ratio, 2), target)
    t.note(
        "Timed inside each child from just before the first parallel call to its result "
        "(interpreter start and the numpy/scipy imports excluded). mpire and "
        "ProcessPoolExecutor-fork fork the parent, inheriting its imports; anypool starts "
        "workers from its fork server."
    )
    return t
