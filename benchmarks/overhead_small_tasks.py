"""(a) per-item overhead: 200,000 trivial tasks (x*x) on warm pools, 2 workers.

Target: process (auto chunks) <= 1.2x `multiprocessing.Pool.map`.
"""

from __future__ import annotations

import argparse
from typing import Any

import harness as h
import workloads as w
from harness import Table, fmt, us, verdict
from runners import (
    W,
    best_of,
    check_equal,
    find,
    have_uvloop,
    minmax,
    r_anypool,
    r_anypool_oneshot,
    r_async,
    r_joblib,
    r_mp_pool,
    r_mpire,
    r_ppe,
    r_serial,
    r_tpe,
)

KEY = "a"
NAME = "overhead_small_tasks"


def configure(cfg: argparse.Namespace) -> None:
    """Sizes (``cfg.quick``: smaller)."""
    cfg.n_a = 50_000 if cfg.quick else 200_000


def bench(cfg: argparse.Namespace) -> Table:
    n = cfg.n_a
    sub = max(1, n // 10)  # one-message-per-item peers: ~100 us/item, so 10x fewer items
    data = list(range(n))
    exp = [x * x for x in data]
    cs8 = max(1, n // 8)
    specs: list[tuple[str, Any, int, str]] = [
        ("serial loop", r_serial(w.sq, data), n, ""),
        (f"ThreadPoolExecutor({W}).map", r_tpe(w.sq, data, W), n, ""),
        (f"ProcessPoolExecutor({W}).map chunksize=1", r_ppe(w.sq, data[:sub], W, 1), sub, ""),
        (f"ProcessPoolExecutor({W}).map chunksize=n/8", r_ppe(w.sq, data, W, cs8), n, ""),
        (f"multiprocessing.Pool({W}).map", r_mp_pool(w.sq, data, W, "map"), n, ""),
        (
            f"multiprocessing.Pool({W}).imap chunksize=1",
            r_mp_pool(w.sq, data[:sub], W, "imap"),
            sub,
            "",
        ),
        (f"joblib.Parallel({W}, loky)", r_joblib(w.sq, data, W, "loky"), n, ""),
        (f"mpire.WorkerPool({W}).map", r_mpire(w.sq, data, W, "fork"), n, ""),
        (
            "asyncio gather+Semaphore(1000), `async def sq`",
            r_async("gather", w.asq, data, 1000, "asyncio"),
            n,
            "",
        ),
        (
            "asyncio 1000 workers + Queue, `async def sq`",
            r_async("queue", w.asq, data, 1000, "asyncio"),
            n,
            "",
        ),
    ]
    if have_uvloop():
        specs.append(
            (
                "uvloop gather+Semaphore(1000), `async def sq`",
                r_async("gather", w.asq, data, 1000, "uvloop"),
                n,
                "",
            )
        )
    specs += [
        ("anypool Pool('serial').imap", r_anypool("serial", w.sq, data, None), n, ""),
        (f"anypool Pool('thread', {W}).imap", r_anypool("thread", w.sq, data, W), n, ""),
        (
            f"anypool Pool('process', {W}).imap (auto chunks)",
            r_anypool("process", w.sq, data, W),
            n,
            "",
        ),
        (
            f"anypool Pool('process', {W}).imap chunksize=n/8 (fixed)",
            r_anypool("process", w.sq, data, W, chunksize=cs8),
            n,
            "",
        ),
        (
            "anypool Pool('asyncio').imap, `async def sq`",
            r_anypool("asyncio", w.asq, data, None),
            n,
            "",
        ),
        (
            "anypool.map(backend='auto') one-shot (info: whatever auto picks)",
            r_anypool_oneshot("auto", w.sq, data, None),
            n,
            "",
        ),
        (
            f"anypool.map(backend='process', workers={W}) one-shot (cold pool)",
            r_anypool_oneshot("process", w.sq, data, W),
            n,
            "",
        ),
    ]
    ms = h.measure_all(
        [h.Case(name, r, size, check_equal(exp[:size]), note) for name, r, size, note in specs],
        reps=cfg.reps,
        timeout=cfg.timeout,
    )
    cols = [
        "runner",
        "n timed",
        "median s",
        "min–max s",
        "us/item",
        "x best",
        "x best parallel",
        "target (≤ 1.2x Pool.map)",
    ]
    t = Table(f"(a) {n} trivial tasks (`x*x`), warm pools, {W} workers", cols)
    best = best_of(ms, lambda m: m.per_item)
    par = [m for m in ms if m.ok and m.name != "serial loop"]
    best_par = best_of(par, lambda m: m.per_item)
    ref = find(ms, f"multiprocessing.Pool({W}).map")
    for m in ms:
        if not m.ok:
            t.add(*h.failed_row(m, len(cols)))
            continue
        target = ""
        if m.name.startswith(f"anypool Pool('process', {W}).imap (auto"):
            if ref is None:
                target = "no Pool.map figure"
            else:
                r = m.median / ref.median
                target = f"{fmt(r)}x: {verdict(r <= 1.2)}"
        t.add(
            m.name,
            m.n,
            fmt(m.median),
            minmax(m),
            us(m.per_item),
            fmt(m.per_item / best) if best else "",
            fmt(m.per_item / best_par) if best_par else "",
            target,
        )
    t.note(
        f"Rows with n timed = {sub} run a 1/10 subset (one message per item is ~100x slower); "
        '"x best" columns compare per-item cost, so they are comparable across sizes.'
    )
    t.note(
        "anypool rows reuse one warm Pool across reps; `imap` re-learns its chunk size on each "
        "call. The one-shot row includes starting and stopping the pool."
    )
    return t
