"""(m) 1,000,000-task imap per anypool backend: exactly once, in order, time and peak RSS.

Target: < 5 s (thread, process), < 200 MB peak.
"""

from __future__ import annotations

import argparse
import sys

import harness as h
from harness import Table, fmt, verdict
from runners import AVAILABLE, PROBE

KEY = "m"
NAME = "million_tasks"


def configure(cfg: argparse.Namespace) -> None:
    """Sizes (``cfg.quick``: smaller)."""
    cfg.n_m = 1_000_000  # the check is about this size


def bench(cfg: argparse.Namespace) -> Table:
    n = cfg.n_m
    cols = [
        "backend",
        "time s",
        "results in order, exactly once",
        "peak RSS MB",
        "RSS growth MB",
        "target time (< 5 s)",
        "target peak RSS (< 200 MB)",
    ]
    t = Table(
        f"(m) `anypool.imap` over range({n:,}) of tiny tasks, default workers, one run each", cols
    )
    for backend in ("thread", "process", "asyncio"):
        label = f"anypool.imap backend='{backend}'" + (
            " (`async def sq`)" if backend == "asyncio" else ""
        )
        if AVAILABLE.get(backend) is not None:
            t.add(label, f"skipped: {AVAILABLE[backend]}; merge main to get it")
            print(f"  {label:<58} skipped", file=sys.stderr)
            continue
        try:
            out = h.run_script(PROBE, ["million", backend, str(n)], timeout=cfg.timeout)
        except Exception as exc:
            t.add(label, f"ERROR: {str(exc)[:160]}")
            print(f"  {label:<58} ERROR {exc}", file=sys.stderr)
            continue
        print(f"  {label:<58} {out['time_s']:.2f} s", file=sys.stderr)
        ok = out["problem"] is None
        time_target = ""
        if backend in ("thread", "process"):
            time_target = f"{fmt(out['time_s'])} s: {verdict(out['time_s'] < 5)}"
        t.add(
            label,
            fmt(out["time_s"]),
            "yes" if ok else f"**NO**: {out['problem']}",
            fmt(out["peak_mb"]),
            fmt(out["growth_mb"]),
            time_target or "(no time target)",
            f"{fmt(out['peak_mb'])} MB: {verdict(out['peak_mb'] < 200 and ok)}",
        )
    t.note(
        "Peak RSS is the whole parent process's high-water mark (interpreter and imports included)."
    )
    return t
