"""(d) coroutines: 20,000 x asyncio.sleep(0.01), 1,000 in flight, against hand-written patterns.

Target: asyncio <= 1.10x 1,000 worker coroutines + `asyncio.Queue`.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import harness as h
import workloads as w
from harness import Table, fmt, us, verdict
from runners import (
    best_of,
    check_equal,
    find,
    have_uvloop,
    minmax,
    r_anypool,
    r_anypool_amap,
    r_anypool_oneshot,
    r_async,
)

KEY = "d"
NAME = "asyncio_vs_handwritten"


def configure(cfg: argparse.Namespace) -> None:
    """Sizes (``cfg.quick``: smaller)."""
    cfg.n_d = 20_000  # 0.2 s per call: the full size even with --quick


def bench(cfg: argparse.Namespace) -> Table:
    n, k = cfg.n_d, 1000
    data = list(range(n))
    ideal = n / k * w.SLEEP_S
    loops = ["asyncio"] + (["uvloop"] if have_uvloop() else [])
    specs: list[tuple[str, Any]] = []
    for lp in loops:
        specs += [
            (
                f"{lp} {k} workers + bounded Queue (hand-written)",
                r_async("queue", w.async_sleep_task, data, k, lp),
            ),
            (
                f"{lp} gather+Semaphore({k}) (hand-written)",
                r_async("gather", w.async_sleep_task, data, k, lp),
            ),
            (
                f"{lp}: await anypool.amap(..., backend='asyncio', workers={k})",
                r_anypool_amap(w.async_sleep_task, data, k, lp),
            ),
        ]
    # from sync code the backend runs its own loop: uvloop when installed (``uvloop=False``
    # asks for the default loop); each row is compared with the same loop's worker pattern
    own = "uvloop" if have_uvloop() else "asyncio"
    sync_specs: list[tuple[str, Any, str]] = [
        (
            f"anypool.map(backend='asyncio', workers={k}) from sync code (own loop: {own})",
            r_anypool_oneshot("asyncio", w.async_sleep_task, data, k),
            own,
        ),
        (
            f"anypool Pool('asyncio', {k}).imap from sync code, warm (own loop: {own})",
            r_anypool("asyncio", w.async_sleep_task, data, k),
            own,
        ),
    ]
    if have_uvloop():
        sync_specs.append(
            (
                f"anypool.map(backend='asyncio', workers={k}, uvloop=False) from sync code",
                r_anypool_oneshot("asyncio", w.async_sleep_task, data, k, uvloop=False),
                "asyncio",
            )
        )
    specs += [(name, r) for name, r, _ in sync_specs]
    loop_of = {name: lp for name, _, lp in sync_specs}
    ms = h.measure_all(
        [h.Case(name, r, n, check_equal(data)) for name, r in specs],
        reps=cfg.reps,
        timeout=cfg.timeout,
    )
    cols = [
        "runner",
        "median s",
        "min–max s",
        "overhead us/task",
        "CPU us/task",
        "x best",
        "target (≤ 1.10x workers+Queue)",
    ]
    t = Table(f"(d) {n} x `asyncio.sleep({w.SLEEP_S})`, {k} in flight; ideal {fmt(ideal)} s", cols)
    best = best_of(ms, lambda m: m.median)
    refs = {lp: find(ms, f"{lp} {k} workers + bounded Queue (hand-written)") for lp in loops}
    for m in ms:
        if not m.ok:
            t.add(*h.failed_row(m, len(cols)))
            continue
        target = ""
        if "anypool" in m.name:
            lp = loop_of.get(m.name) or ("uvloop" if m.name.startswith("uvloop") else "asyncio")
            ref = refs.get(lp)
            if ref is not None:
                r = m.median / ref.median
                target = f"{fmt(r)}x vs {lp} workers: {verdict(r <= 1.10)}"
        cpu = statistics.median(m.cpu) / n
        t.add(
            m.name,
            fmt(m.median),
            minmax(m),
            us((m.median - ideal) / n),
            us(cpu),
            fmt(m.median / best) if best else "",
            target,
        )
    t.note(
        "Each timed call includes creating and closing its event loop (`asyncio.run` / "
        "`uvloop.run`); the sync-code rows run on the backend's own loop in its own thread "
        "(named in the row). Targets compare with the worker+Queue pattern on the same loop."
    )
    return t
