"""(x) Dask's overhead per task: the 1 ms CPU tasks on a LocalCluster against the process backend.

A LocalCluster of 2 single-threaded worker processes: the overhead per task in steady state,
and start-up on its own. Needs `pip install anypool[dask]`.

No target: reports the overhead per task.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from typing import Any

import harness as h
import workloads as w
from harness import Table, fmt, us
from runners import W, check_equal, find, minmax, need_backend, need_module, r_anypool, r_serial

KEY = "x"
NAME = "dask_overhead"


def configure(cfg: argparse.Namespace) -> None:
    """Sizes (``cfg.quick``: smaller)."""
    cfg.n_x = 200 if cfg.quick else 2_000


def r_dask_client(fn: Callable[[Any], Any], data: list[Any], workers: int) -> Any:
    """Plain ``distributed``: ``client.gather(client.map(fn, data))`` on a warm LocalCluster."""

    def run() -> Iterator[Any]:
        distributed = need_module("distributed")
        import logging

        with (
            distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            ) as cluster,
            distributed.Client(cluster, set_as_default=False) as client,
        ):
            client.gather(client.map(w.sq, range(100), pure=False))
            yield lambda: client.gather(client.map(fn, data, pure=False))

    return run


def r_startup(backend: str, workers: int) -> Any:
    """Create a pool, get one trivial result, shut it down (all timed)."""

    def run() -> Iterator[Any]:
        need_backend(backend)
        import anypool

        def once() -> list[int]:
            with anypool.Pool(backend, workers=workers) as pool:
                return [pool.submit(w.sq, 3).result()]

        yield once

    return run


def bench(cfg: argparse.Namespace) -> Table:
    n = cfg.n_x
    loops, per_call = w.calibrate_burn(0.001)
    print(f"  calibrated: burn({loops}) takes {per_call * 1e3:.3f} ms", file=sys.stderr)
    data = [loops] * n
    exp = [w.burn_expected(loops)] * n
    specs: list[tuple[str, Any]] = [
        ("serial loop", r_serial(w.burn, data)),
        (f"anypool Pool('process', {W}).imap (auto chunks)", r_anypool("process", w.burn, data, W)),
        (f"anypool Pool('dask', {W}).imap (auto chunks)", r_anypool("dask", w.burn, data, W)),
        (
            f"anypool Pool('dask', {W}).imap chunksize=1 (a Dask task per item)",
            r_anypool("dask", w.burn, data, W, chunksize=1),
        ),
        (
            f"distributed client.map + gather ({W} workers, a task per item)",
            r_dask_client(w.burn, data, W),
        ),
    ]
    ms = h.measure_all(
        [h.Case(name, r, n, check_equal(exp)) for name, r in specs],
        reps=cfg.reps,
        timeout=cfg.timeout,
    )
    starts = h.measure_all(
        [
            h.Case(f"start-up: Pool('{b}', {W}) create + first result + shutdown", r, 1)
            for b, r in (("process", r_startup("process", W)), ("dask", r_startup("dask", W)))
        ],
        reps=cfg.reps,
        timeout=cfg.timeout,
    )
    serial = find(ms, "serial loop")
    ser = serial.median if serial else None
    cols = ["runner", "median s", "min–max s", "speed-up vs serial", "overhead per task"]
    t = Table(
        f"(x) {n} tasks x ~{per_call * 1e3:.2f} ms pure-Python CPU (`burn({loops})`) on Dask: "
        f"a LocalCluster of {W} single-threaded worker processes vs the process backend "
        f"({W} workers), warm",
        cols,
    )
    for m in ms:
        if not m.ok:
            t.add(*h.failed_row(m, len(cols)))
            continue
        sp = ser / m.median if ser else None
        over = ""
        if ser is not None and m.name != "serial loop":
            # worker time per task beyond the work itself: (wall - ideal wall) x workers / n
            over = us(max(0.0, (m.median - ser / W) * W / n))
        t.add(m.name, fmt(m.median), minmax(m), fmt(sp), over)
    for m in starts:
        if not m.ok:
            t.add(*h.failed_row(m, len(cols)))
            continue
        t.add(m.name, fmt(m.median), minmax(m), "", "")
    t.note(
        "overhead per task = (median − serial / workers) × workers / tasks: the worker time each "
        "task costs beyond its own 1 ms, with start-up excluded (the pools are warm). The "
        "start-up rows are timed apart: a LocalCluster starts its scheduler and worker "
        "processes (spawned, importing distributed) for every pool."
    )
    t.note(
        "anypool sends chunks of about 0.2 s of work as one Dask task (target_chunk_seconds), "
        "so its scheduler round trips are few; a Dask task per item shows Dask's own cost per "
        "task."
    )
    return t
