"""(b) CPU speed-up: 2,000 tasks of ~1 ms pure-Python CPU (calibrated at start), 2 workers.

Target: process >= 1.9x serial.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import harness as h
import workloads as w
from harness import Table, fmt, verdict
from runners import (
    W,
    best_of,
    check_equal,
    find,
    minmax,
    r_anypool,
    r_anypool_oneshot,
    r_joblib,
    r_mp_pool,
    r_mpire,
    r_ppe,
    r_serial,
    r_tpe,
)

KEY = "b"
NAME = "cpu_speedup"


def configure(cfg: argparse.Namespace) -> None:
    """Sizes (``cfg.quick``: smaller)."""
    cfg.n_b = 1_000 if cfg.quick else 2_000


CAPACITY = f"static split: multiprocessing.Pool({W}).map chunksize=n/{W}"


def bench(cfg: argparse.Namespace) -> Table:
    n = cfg.n_b
    loops, per_call = w.calibrate_burn(0.001)
    print(f"  calibrated: burn({loops}) takes {per_call * 1e3:.3f} ms", file=sys.stderr)
    data = [loops] * n
    exp = [w.burn_expected(loops)] * n
    cs8 = max(1, n // 8)
    specs: list[tuple[str, Any]] = [
        ("serial loop", r_serial(w.burn, data)),
        (f"ThreadPoolExecutor({W}).map", r_tpe(w.burn, data, W)),
        (f"ProcessPoolExecutor({W}).map chunksize=1", r_ppe(w.burn, data, W, 1)),
        (f"ProcessPoolExecutor({W}).map chunksize=n/8", r_ppe(w.burn, data, W, cs8)),
        (f"multiprocessing.Pool({W}).map", r_mp_pool(w.burn, data, W, "map")),
        (CAPACITY, r_mp_pool(w.burn, data, W, "map", chunksize=-(-n // W))),
        (f"joblib.Parallel({W}, loky)", r_joblib(w.burn, data, W, "loky")),
        (f"mpire.WorkerPool({W}).map", r_mpire(w.burn, data, W, "fork")),
        (f"anypool Pool('thread', {W}).imap", r_anypool("thread", w.burn, data, W)),
        (f"anypool Pool('process', {W}).imap (auto chunks)", r_anypool("process", w.burn, data, W)),
        (
            "anypool.map(backend='auto') one-shot (info: whatever auto picks)",
            r_anypool_oneshot("auto", w.burn, data, None),
        ),
    ]
    ms = h.measure_all(
        [h.Case(name, r, n, check_equal(exp)) for name, r in specs],
        reps=cfg.reps,
        timeout=cfg.timeout,
    )
    serial = find(ms, "serial loop")
    ser = serial.median if serial else None
    cap = find(ms, CAPACITY)
    cap_sp = ser / cap.median if (ser and cap) else None
    cols = [
        "runner",
        "median s",
        "min–max s",
        "ms/task",
        "speed-up vs serial",
        "x best",
        "target (≥ 1.9x serial)",
    ]
    t = Table(
        f"(b) {n} tasks x ~{per_call * 1e3:.2f} ms pure-Python CPU (`burn({loops})`), "
        f"warm pools, {W} workers; ideal speed-up {W}.0x",
        cols,
    )
    best = best_of(ms, lambda m: m.median)
    for m in ms:
        if not m.ok:
            t.add(*h.failed_row(m, len(cols)))
            continue
        sp = ser / m.median if ser else None
        target = ""
        if m.name.startswith(f"anypool Pool('process', {W})") and sp is not None:
            target = f"{fmt(sp)}x: {verdict(sp >= 1.9)}"
        t.add(
            m.name,
            fmt(m.median),
            minmax(m),
            fmt(m.per_item * 1e3),
            fmt(sp),
            fmt(m.median / best) if best else "",
            target,
        )
    t.note("speed-up = the serial loop's median / the row's median.")
    t.note(
        f"The static-split row gives each of the {W} processes half the tasks at once: no "
        f"scheduling cost at all. Its speed-up ({fmt(cap_sp)}x here) shows what the machine "
        "gave in this run; when neighbours load the shared cores it falls well under 2.0x and "
        "the 1.9x target is out of reach for every runner (dynamic schedulers can then beat "
        "the static split, which waits for its slower half)."
    )
    return t
