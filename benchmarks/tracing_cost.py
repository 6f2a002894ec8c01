"""(t) tracing's cost: the ~1 ms CPU tasks on warm process and thread pools, trace off vs on.

Target: < 5% overhead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from typing import Any

import harness as h
import workloads as w
from harness import Table, fmt, verdict
from runners import W, check_equal, find, minmax, need_backend

KEY = "t"
NAME = "tracing_cost"


def r_anypool_traced(
    backend: str, fn: Callable[[Any], Any], data: list[Any], workers: int, traced: bool
) -> Any:
    """A warm pool; each timed call runs inside ``with anypool.trace():`` when ``traced``.

    The trace is kept in memory (no file is written): the row measures recording, which is
    what a traced run pays while it runs; writing the page afterwards is a one-off.
    """

    def run() -> Iterator[Any]:
        need_backend(backend)
        import anypool

        with anypool.Pool(backend, workers=workers) as pool:
            list(pool.imap(w.sq, range(100)))
            if not traced:
                yield lambda: list(pool.imap(fn, data))
                return

            def call() -> list[Any]:
                with anypool.trace() as t:
                    out = list(pool.imap(fn, data))
                if len(t.tasks) != len(data):  # every task recorded, or the row fails
                    raise AssertionError(f"trace recorded {len(t.tasks)} of {len(data)} tasks")
                return out

            yield call

    return run


def bench(cfg: argparse.Namespace) -> Table:
    n = cfg.n_b
    reps = max(cfg.reps, 7)  # the ratios compared are a few percent: more reps than elsewhere
    loops, per_call = w.calibrate_burn(0.001)
    print(f"  calibrated: burn({loops}) takes {per_call * 1e3:.3f} ms", file=sys.stderr)
    data, exp = [loops] * n, [w.burn_expected(loops)] * n
    groups = [
        (f"{n} x ~1 ms CPU, Pool('process', {W}), warm", "process"),
        (f"{n} x ~1 ms CPU, Pool('thread', {W}), warm", "thread"),
    ]
    modes = [(False, "trace off"), (True, "inside anypool.trace()")]
    cases = [
        h.Case(
            f"{title}: {label}",
            r_anypool_traced(backend, w.burn, data, W, traced),
            n,
            check_equal(exp),
        )
        for title, backend in groups
        for traced, label in modes
    ]
    ms = h.measure_all(cases, reps=reps, timeout=cfg.timeout)
    cols = ["runner", "median s", "min–max s", "overhead vs off", "target (< 5%)"]
    t = Table(f"(t) Cost of tracing ({reps} reps, interleaved)", cols)
    for title, _ in groups:
        off = find(ms, f"{title}: trace off")
        for traced, label in modes:
            m = next(x for x in ms if x.name == f"{title}: {label}")
            if not m.ok:
                t.add(*h.failed_row(m, len(cols)))
                continue
            over, target = "", ""
            if off is not None and traced:
                r = m.median / off.median - 1
                over = f"{100 * r:+.1f}%"
                target = f"{100 * r:+.1f}%: {verdict(r < 0.05)}"
            t.add(m.name, fmt(m.median), minmax(m), over, target)
    t.note(
        "overhead = the traced median / the 'trace off' median of its group, minus 1; negative "
        "values are noise. Traced, each call is timed in the worker (two time.time() reads and a "
        "tuple per attempt, sent back with the chunk's results) and the parent adds one "
        "done-callback per chunk; the records become TaskRecord objects only when read."
    )
    return t
