"""(w) cost of the runtime checks: Pool(debug=True) and `with anypool.watch():` against off.

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

KEY = "w"
NAME = "checks_cost"


def r_anypool_checked(
    backend: str, fn: Callable[[Any], Any], data: list[Any], workers: int | None, mode: str
) -> Any:
    """A warm pool (process) or one-shot ``anypool.map`` (asyncio) with checks ``mode``.

    ``mode``: "off", "debug" (``debug=True``) or "watch" (each call inside
    ``with anypool.watch():``). asyncio calls are one-shot so that the pool's own loop starts
    inside the ``watch()`` block (that is how ``watch()`` finds loops); every mode pays the
    same start-up, so the ratio isolates the checks.
    """

    def run() -> Iterator[Any]:
        need_backend(backend)
        import anypool

        debug = mode == "debug"

        def checked(call: Callable[[], Any]) -> Callable[[], Any]:
            if mode != "watch":
                return call

            def watched() -> Any:
                with anypool.watch():
                    return call()

            return watched

        if backend == "asyncio":
            yield checked(
                lambda: anypool.map(fn, data, backend=backend, workers=workers, debug=debug)
            )
            return
        with anypool.Pool(backend, workers=workers, debug=debug) as pool:
            list(pool.imap(w.sq, range(100)))
            yield checked(lambda: list(pool.imap(fn, data)))

    return run


def bench(cfg: argparse.Namespace) -> Table:
    n_b, n_d = cfg.n_b, 2_000
    reps = max(cfg.reps, 7)  # the ratios compared are a few percent: more reps than elsewhere
    loops, per_call = w.calibrate_burn(0.001)
    print(f"  calibrated: burn({loops}) takes {per_call * 1e3:.3f} ms", file=sys.stderr)
    b_data, d_data = [loops] * n_b, list(range(n_d))
    b_exp = [w.burn_expected(loops)] * n_b
    groups = [
        (f"(b) {n_b} x ~1 ms CPU, Pool('process', {W}), warm", "process", w.burn, b_data, W),
        (
            f"{n_d} x asyncio.sleep({w.SLEEP_S}), anypool.map(backend='asyncio'), 100 in flight",
            "asyncio",
            w.async_sleep_task,
            d_data,
            None,
        ),
        (
            f"(c) {n_d} x time.sleep({w.SLEEP_S}), Pool('thread', 64), warm",
            "thread",
            w.sleep_task,
            d_data,
            64,
        ),
    ]
    modes = [("off", "checks off"), ("debug", "debug=True"), ("watch", "inside anypool.watch()")]
    cases = []
    for title, backend, fn, data, workers in groups:
        exp = b_exp if backend == "process" else d_data
        for mode, label in modes:
            cases.append(
                h.Case(
                    f"{title}: {label}",
                    r_anypool_checked(backend, fn, data, workers, mode),
                    len(data),
                    check_equal(exp),
                )
            )
    ms = h.measure_all(cases, reps=reps, timeout=cfg.timeout)
    cols = ["runner", "median s", "min–max s", "overhead vs off", "target (< 5%)"]
    t = Table(f"(w) Cost of the runtime checks ({reps} reps, interleaved)", cols)
    for title, *_ in groups:
        off = find(ms, f"{title}: checks off")
        for mode, label in modes:
            m = next(x for x in ms if x.name == f"{title}: {label}")
            if not m.ok:
                t.add(*h.failed_row(m, len(cols)))
                continue
            over, target = "", ""
            if off is not None and mode != "off":
                r = m.median / off.median - 1
                over = f"{100 * r:+.1f}%"
                target = f"{100 * r:+.1f}%: {verdict(r < 0.05)}"
            t.add(m.name, fmt(m.median), minmax(m), over, target)
    t.note(
        "overhead = the row's median / the 'checks off' median of its group, minus 1; "
        "negative values are noise. What the checks do: on processes, nothing in the workers "
        "(the CPU-bound check covers thread pools); on asyncio, a heartbeat callback every "
        "25 ms on the loop and a watchdog thread, started and joined with the pool; on threads, "
        "the CPU-bound check reads two clocks per chunk in the map engine."
    )
    return t
