"""(h) pool.share: a 50 MB object to 200 process tasks, shared against passed every time.

Target: share faster. Runners in sync_bench.py.
"""

from __future__ import annotations

import argparse

import harness as h
from harness import Table, fmt, verdict
from runners import W, check_equal, find, needs

KEY = "h"
NAME = "share_large_object"


def configure(cfg: argparse.Namespace) -> None:
    """Sizes (``cfg.quick``: smaller)."""
    cfg.mb_h = 10 if cfg.quick else 50
    cfg.tasks_h = 40 if cfg.quick else 200


def bench(cfg: argparse.Namespace) -> Table:
    import sync_bench as sb

    mb, tasks = cfg.mb_h, cfg.tasks_h
    every_n = max(4, tasks // 10)  # passing 50 MB per task takes ~0.15 s: time a tenth
    cases = []
    for kind in ("bytes", "object"):
        for shared in (True, False):
            how = "pool.share(obj)" if shared else f"obj passed to every task ({every_n} timed)"
            n = tasks if shared else every_n
            cases.append(
                h.Case(
                    f"process, {kind}: {how}",
                    needs("process", sb.r_share("process", kind, mb, n, shared, W)),
                    n,
                    check_equal([mb * 1_000_000] * n),
                )
            )
    cases.append(
        h.Case(
            "thread, object: pool.share(obj) (the object itself)",
            needs("thread", sb.r_share("thread", "object", mb, tasks, True, W)),
            tasks,
            check_equal([mb * 1_000_000] * tasks),
        )
    )
    ms = h.measure_all(cases, reps=cfg.reps, timeout=cfg.timeout)
    cols = [
        "runner",
        "tasks timed",
        "median s",
        "ms per task",
        "x passing it every time",
        "target (faster)",
    ]
    t = Table(f"(h) a {mb} MB object to {tasks} tasks, Pool(workers={W}), chunks of 1", cols)
    for m in ms:
        if not m.ok:
            t.add(*h.failed_row(m, len(cols)))
            continue
        kind = m.name.split(",")[1].split(":")[0].strip()
        every = find(ms, f"process, {kind}: obj passed to every task ({every_n} timed)")
        ratio, target = "", ""
        if m.name.startswith("process") and every is not None and every.ok and m is not every:
            ratio = f"{every.per_item / m.per_item:.0f}x faster"
            target = verdict(m.per_item < every.per_item)
        t.add(m.name, f"{m.n}", fmt(m.median), fmt(m.per_item * 1e3), ratio, target)
    t.note(
        f"bytes: {mb} MB of zeros, mapped read-only from shared memory in each worker (no copy); "
        "object: a tuple of 1 MB strings, pickled once by share() and unpickled once per "
        "worker. The timed call includes share() itself (copying the object into shared "
        "memory). Passing the object: it is pickled, piped and unpickled for every task; those "
        "rows time a tenth of the tasks and are compared per task."
    )
    return t
