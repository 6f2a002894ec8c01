"""(p) a three-stage Pipeline (sleep -> 1 ms CPU -> sleep) against the same work hand-written.

Hand-written with bounded queues, threads, processes and poison pills; and against running
the stages one after another on warm pools.

Target: <= 1.05x hand-written; >= 1.5x faster than stage by stage.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import multiprocessing.pool
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import harness as h
import workloads as w
from harness import Table, fmt, verdict
from runners import W, check_equal, find, minmax, need_backend

KEY = "p"
NAME = "pipeline_vs_handwritten"


def configure(cfg: argparse.Namespace) -> None:
    """Sizes (``cfg.quick``: smaller)."""
    cfg.n_p = 300 if cfg.quick else 1_000


PIPE_IO_WORKERS = 16


def r_pipeline(ordered: bool, items: list[Any], first: str = "thread") -> Any:
    """A fresh ``anypool.Pipeline`` per call (its pools start with it): I/O -> CPU -> I/O."""

    def run() -> Iterator[Any]:
        need_backend("process")
        from anypool import Pipeline

        io1 = w.apipe_io if first == "asyncio" else w.pipe_io

        def call() -> list[Any]:
            return (
                Pipeline(items)
                .map(io1, backend=first, workers=PIPE_IO_WORKERS, ordered=ordered)
                .map(w.pipe_cpu, backend="process", workers=W, ordered=ordered)
                .map(w.pipe_io, backend="thread", workers=PIPE_IO_WORKERS, ordered=ordered)
                .run()
            )

        call()  # warm: imports and the fork server
        yield call

    return run


@contextmanager
def _warm_pools() -> Iterator[tuple[Any, Any, Any]]:
    """The three stages' pools (thread, process, thread), started and warmed."""
    need_backend("process")
    import anypool

    with (
        anypool.Pool("thread", PIPE_IO_WORKERS) as io1,
        anypool.Pool("process", W) as cpu,
        anypool.Pool("thread", PIPE_IO_WORKERS) as io3,
    ):
        for pool in (io1, cpu, io3):
            list(pool.imap(w.sq, range(100)))
        yield io1, cpu, io3


def r_pipeline_warm(items: list[Any]) -> Any:
    """A fresh ``Pipeline`` per call on warm pools (``pool=``): the same pools as stage by stage."""

    def run() -> Iterator[Any]:
        from anypool import Pipeline

        with _warm_pools() as (io1, cpu, io3):

            def call() -> list[Any]:
                return (
                    Pipeline(items)
                    .map(w.pipe_io, pool=io1)
                    .map(w.pipe_cpu, pool=cpu)
                    .map(w.pipe_io, pool=io3)
                    .run()
                )

            yield call

    return run


def r_handwritten_pipeline(items: list[Any]) -> Any:
    """The guide's way: bounded queues, threads and processes, poison pills (fresh per call)."""

    def run() -> Iterator[Any]:
        ctx = mp.get_context("forkserver")

        def call() -> list[int]:
            return w.handwritten_pipeline(items, io_workers=PIPE_IO_WORKERS, cpu_workers=W, ctx=ctx)

        call()  # warm: the fork server
        yield call

    return run


def r_stage_by_stage(items: list[Any]) -> Any:
    """Each stage over the whole input before the next starts, on warm anypool pools."""

    def run() -> Iterator[Any]:
        with _warm_pools() as (io1, cpu, io3):

            def call() -> list[Any]:
                fetched = list(io1.imap(w.pipe_io, items))
                crunched = list(cpu.imap(w.pipe_cpu, fetched))
                return list(io3.imap(w.pipe_io, crunched))

            yield call

    return run


def check_sorted_equal(expected: list[Any]) -> Callable[[Any], None]:
    want = sorted(expected)

    def check(out: Any) -> None:
        if sorted(out) != want:
            raise AssertionError("wrong results (compared sorted)")

    return check


HANDWRITTEN = "hand-written: queues + threads/processes + poison pills"


STAGEWISE = "stage by stage: Pool.imap per stage, warm pools"


PIPELINE = "anypool Pipeline (ordered), pools started per call"


PIPELINE_WARM = "anypool Pipeline (ordered) on the warm pools (pool=)"


def bench(cfg: argparse.Namespace) -> Table:
    n = cfg.n_p
    loops, per_call = w.calibrate_burn(0.001)
    print(f"  calibrated: burn({loops}) takes {per_call * 1e3:.3f} ms", file=sys.stderr)
    items = [(i, loops) for i in range(n)]
    exp = w.pipe_expected(items)
    k = PIPE_IO_WORKERS
    specs: list[tuple[str, Any, Callable[[Any], None]]] = [
        (HANDWRITTEN, r_handwritten_pipeline(items), check_sorted_equal(exp)),
        (STAGEWISE, r_stage_by_stage(items), check_equal(exp)),
        (PIPELINE, r_pipeline(True, items), check_equal(exp)),
        (PIPELINE_WARM, r_pipeline_warm(items), check_equal(exp)),
        (
            "anypool Pipeline ordered=False (info)",
            r_pipeline(False, items),
            check_sorted_equal(exp),
        ),
        (
            "anypool Pipeline, stage 1 on asyncio (info)",
            r_pipeline(True, items, first="asyncio"),
            check_equal(exp),
        ),
    ]
    ms = h.measure_all(
        [h.Case(name, r, n, check) for name, r, check in specs],
        reps=cfg.reps,
        timeout=cfg.timeout,
    )
    hand = find(ms, HANDWRITTEN)
    stagewise = find(ms, STAGEWISE)
    cols = [
        "runner",
        "median s",
        "min–max s",
        "x hand-written",
        "speed-up vs stage by stage",
        "target (≤ 1.05x hand-written)",
        "target (≥ 1.5x stage by stage)",
    ]
    io_s = n * w.PIPE_IO_S / k
    cpu_s = n * per_call / W
    t = Table(
        f"(p) three-stage pipeline over {n} items: `time.sleep({w.PIPE_IO_S})` on {k} threads "
        f"→ ~{per_call * 1e3:.2f} ms pure-Python CPU on {W} processes → `time.sleep` on {k} "
        f"threads; stages alone ≈ {fmt(io_s)} / {fmt(cpu_s)} / {fmt(io_s)} s",
        cols,
    )
    for m in ms:
        if not m.ok:
            t.add(*h.failed_row(m, len(cols)))
            continue
        vs_hand = m.median / hand.median if hand and hand.ok else None
        speedup = stagewise.median / m.median if stagewise and stagewise.ok else None
        t_hand = t_stage = ""
        if m.name == PIPELINE and vs_hand is not None:
            t_hand = f"{fmt(vs_hand)}x: {verdict(vs_hand <= 1.05)}"
        if m.name == PIPELINE_WARM and speedup is not None:
            t_stage = f"{fmt(speedup)}x: {verdict(speedup >= 1.5)}"
        t.add(
            m.name,
            fmt(m.median),
            minmax(m),
            fmt(vs_hand),
            fmt(speedup),
            t_hand,
            t_stage,
        )
    t.note(
        "Targets: the Pipeline that starts its three pools (2 processes) inside the timed "
        "call against the hand-written version, which starts its threads and processes in the "
        "call too; the Pipeline on warm pools (`.map(fn, pool=...)`) against running the "
        "stages one after another on the same warm pools. The hand-written version returns "
        "results as they complete (unordered); the Pipeline rows keep the input order."
    )
    t.note(
        "Ideal: the pipeline takes about as long as its slowest stage; stage by stage takes "
        "the sum of the three."
    )
    return t
