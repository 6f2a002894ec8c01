"""(e) peak parent-RSS growth over a lazy 2,000,000-item generator (fresh interpreter each).

Target: every backend < 20 MB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import harness as h
from harness import Table, fmt, verdict
from runners import AVAILABLE, PROBE, W

KEY = "e"
NAME = "lazy_input_memory"


def configure(cfg: argparse.Namespace) -> None:
    """Sizes (``cfg.quick``: smaller)."""
    cfg.n_e = 500_000 if cfg.quick else 2_000_000
    cfg.cap_e = 5.0 if cfg.quick else 15.0


def bench(cfg: argparse.Namespace) -> Table:
    n = cfg.n_e
    small = max(1, n // 10)
    cap = cfg.cap_e
    specs: list[tuple[str, str, int, str | None]] = [
        ("serial map()", "serial", n, None),
        ("anypool imap backend='serial'", "anypool-serial", n, "serial"),
        (f"anypool imap backend='thread', workers={W}", "anypool-thread", n, "thread"),
        (f"anypool imap backend='process', workers={W}", "anypool-process", n, "process"),
        ("anypool imap backend='asyncio', `async def sq`", "anypool-asyncio", n, "asyncio"),
        (f"ThreadPoolExecutor({W}).map (on n/10, scaled x10)", "tpe", small, None),
        (f"multiprocessing.Pool({W}).imap chunksize=1", "pool-imap-1", n, None),
        (f"multiprocessing.Pool({W}).imap chunksize=10000", "pool-imap-10000", n, None),
        ("asyncio 1000 workers + bounded Queue", "asyncio-workers", n, None),
    ]
    rows: list[tuple[str, dict[str, Any] | None, str | None, int, int]] = []
    for label, key, size, backend in specs:
        if backend is not None and AVAILABLE.get(backend) is not None:
            rows.append(
                (label, None, f"skipped: {AVAILABLE[backend]}; merge main to get it", size, 0)
            )
            print(f"  {label:<58} skipped", file=sys.stderr)
            continue
        outs: list[dict[str, Any]] = []
        err = None
        t_start = time.perf_counter()
        try:
            for rep in range(cfg.reps):
                out = h.run_script(PROBE, ["mem", key, str(size), str(cap)], timeout=cap + 120)
                outs.append(out)
                if rep == 0 and out["time_s"] > 5:  # slow runners: one rep is enough for RSS
                    break
        except Exception as exc:
            err = f"ERROR: {str(exc)[:160]}"
        print(
            f"  {label:<58} {err or 'ok'} [{time.perf_counter() - t_start:.1f} s]", file=sys.stderr
        )
        rows.append((label, _median_mem(outs) if outs else None, err, size, len(outs)))
    cols = [
        "runner",
        "reps",
        "peak RSS growth MB (min–max)",
        "items pulled before 1st result",
        "max items in flight",
        "1st result after s",
        "results consumed",
        "time s",
        "target (< 20 MB)",
    ]
    t = Table(
        f"(e) Lazy input of {n:,} ints (no `len`), trivial function, results consumed lazily: "
        "parent peak-RSS growth (fresh interpreter per run)",
        cols,
    )
    for label, out, err, size, reps in rows:
        if out is None:
            t.add(label, err or "no result")
            continue
        scale = n / size
        g = out["growth_mb"] * scale
        gmin, gmax = out["growth_min"] * scale, out["growth_max"] * scale
        consumed = f"{out['consumed']:,}" + (f" ({cap:.0f} s cap)" if out["capped"] else "")
        target = ""
        if label.startswith("anypool"):
            target = f"{fmt(g)} MB: {verdict(g < 20)}"
        t.add(
            label,
            reps,
            f"{fmt(g)} ({fmt(gmin)}–{fmt(gmax)})",
            f"{out['pulled_before_first']:,}" if out["pulled_before_first"] is not None else "–",
            f"{out['max_inflight']:,}",
            fmt(out["first_s"]),
            consumed,
            fmt(out["time_s"]),
            target,
        )
    t.note(
        f"Growth = peak RSS (VmHWM, reset just before the run) minus RSS before it, after the "
        f"pool was started and warmed. Runs slower than 5 s get 1 rep; consumption stops at "
        f"{cap:.0f} s (marked). ThreadPoolExecutor.map submits the whole input at once, so it "
        f"runs on {small:,} items and its growth is scaled x{n // small} (~1.7 KB per item "
        "in the baselines: the full run would need ~3.4 GB and 30 s)."
    )
    return t


def _median_mem(outs: list[dict[str, Any]]) -> dict[str, Any]:
    outs = sorted(outs, key=lambda o: o["growth_mb"])
    mid = dict(outs[len(outs) // 2])
    mid["growth_min"] = outs[0]["growth_mb"]
    mid["growth_max"] = outs[-1]["growth_mb"]
    mid["time_s"] = statistics.median(o["time_s"] for o in outs)
    return mid
