"""``anypool demo``: measure the guide's advice on this machine.

Runs an I/O-bound and a CPU-bound workload (and their coroutine forms) on every local
backend and prints a table of times and speed-ups over the serial run. The CPU-bound runs are
traced: their timeline (``anypool-demo-trace.html``) shows threads taking turns on the GIL
and processes running side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._core._registry import get_available_backends
from ._core._tasks import available_cpus
from ._core._tracing import Trace

_CPU_LOOPS = 20_000


def io_task(seconds: float) -> float:
    """Blocking I/O stand-in: the thread waits, the GIL is free."""
    time.sleep(seconds)
    return seconds


async def aio_task(seconds: float) -> float:
    """The same wait as a coroutine."""
    await asyncio.sleep(seconds)
    return seconds


def cpu_task(n: int) -> int:
    """Pure-Python arithmetic: holds the GIL the whole time."""
    s = 0
    for i in range(n):
        s += i * i % 7
    return s


async def acpu_task(n: int) -> int:
    """CPU work inside a coroutine: it blocks the event loop while it runs."""
    return cpu_task(n)


def _calibrate(target: float = 0.002) -> int:
    t0 = time.perf_counter()
    cpu_task(_CPU_LOOPS)
    one = time.perf_counter() - t0
    return max(1000, int(_CPU_LOOPS * target / max(one, 1e-6)))


def tiny_task(x: int) -> int:
    """Work smaller than any hand-off: parallelism cannot pay for it."""
    return x * x


async def atiny_task(x: int) -> int:
    """The tiny task as a coroutine."""
    return x * x


WORKLOADS = ("io", "coro", "cpu", "tiny")


def _run(
    backend: str, fn: Callable[..., Any], items: Sequence[Any], workers: int | None
) -> tuple[float, str]:
    from ._core._pool import Pool

    t0 = time.perf_counter()
    with Pool(backend, workers) as pool:
        for _ in pool.imap(fn, items):
            pass
        why = pool.explain().splitlines()[0] if backend == "auto" else ""
    return time.perf_counter() - t0, why


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``anypool demo``."""
    parser = argparse.ArgumentParser(
        prog="anypool demo",
        description=(
            "Measure threads, processes and asyncio on this machine: an I/O-bound workload "
            "(tasks that wait) and a CPU-bound one (pure-Python arithmetic), each on every "
            "backend, with the speed-up over running them one by one (serial)."
        ),
    )
    parser.add_argument(
        "--workloads",
        default="io,coro,cpu,tiny",
        help=(
            "comma-separated: io (blocking waits), coro (the same waits as coroutines), cpu "
            "(pure-Python arithmetic), tiny (x*x) (default: all four)"
        ),
    )
    parser.add_argument(
        "--backends",
        default=",".join(b for b in get_available_backends() if b != "dask"),
        help=(
            "comma-separated backends (default: every available one except dask, which starts "
            "a LocalCluster: add it with --backends thread,process,dask)"
        ),
    )
    parser.add_argument("--tasks", type=int, default=200, help="tasks per workload (default: 200)")
    parser.add_argument(
        "--io-ms", type=float, default=20.0, help="milliseconds each I/O task waits (default: 20)"
    )
    parser.add_argument(
        "--cpu-ms",
        type=float,
        default=5.0,
        help="milliseconds of CPU each CPU task takes (default: 5)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="workers per pool (default: each backend's own default)",
    )
    parser.add_argument(
        "--trace",
        default="anypool-demo-trace.html",
        metavar="PATH",
        help=(
            "where to write the timeline of the CPU-bound runs: .html (a page to open in a "
            "browser) or .json (Chrome trace, for Perfetto) (default: anypool-demo-trace.html)"
        ),
    )
    parser.add_argument("--no-trace", action="store_true", help="do not write a timeline")
    args = parser.parse_args(argv)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in workloads:
        if w not in WORKLOADS:
            parser.error(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    known = get_available_backends()
    for b in backends:
        if b not in known:
            parser.error(f"unknown or unavailable backend {b!r}; available: {', '.join(known)}")
    if args.tasks < 1:
        parser.error("--tasks must be 1 or more")
    trace: Trace | None = None
    if not args.no_trace and "cpu" in workloads:
        try:
            trace = Trace(args.trace)
        except ValueError as exc:
            parser.error(str(exc))
    print(f"anypool demo — {available_cpus()} CPU(s), Python {sys.version.split()[0]}")
    print(
        f"{args.tasks} tasks per workload ({args.tasks * 1000} for tiny); each backend with "
        "its default workers\n"
    )
    n_cpu = _calibrate(args.cpu_ms / 1000)
    print("| workload | backend | seconds | speed-up vs serial |")
    print("|---|---|---|---|")
    choices: list[str] = []
    for w in workloads:
        serial_time: float | None = None
        for b in backends:
            fn: Callable[..., Any]
            items: list[Any]
            if w == "coro":
                fn = aio_task  # coroutines everywhere: thread/process run each on a new loop
                items = [args.io_ms / 1000] * args.tasks
            elif w == "io":
                fn = aio_task if b == "asyncio" else io_task
                items = [args.io_ms / 1000] * args.tasks
            elif w == "cpu":
                fn = acpu_task if b == "asyncio" else cpu_task
                items = [n_cpu] * args.tasks
            else:
                fn = atiny_task if b == "asyncio" else tiny_task
                items = list(range(args.tasks * 1000))
            traced = trace is not None and w == "cpu"
            if traced:
                assert trace is not None
                trace.start()
            try:
                secs, why = _run(b, fn, items, args.workers)
            finally:
                if traced:
                    assert trace is not None
                    trace.stop()
            if b == "serial":
                serial_time = secs
            speed = f"{serial_time / secs:.1f}x" if serial_time else "—"
            print(f"| {w} | {b} | {secs:.3f} | {speed} |", flush=True)
            if why:
                choices.append(f"{w}: {why}")
    if choices:
        print("\nWhat auto chose, and why:")
        for c in choices:
            print(f"- {c}")
    print(
        "\nWhat this shows (the guide's 'Choosing the Right Approach'): threads and asyncio "
        "overlap waiting, so I/O-bound work speeds up with many workers; only processes run "
        "Python arithmetic in parallel, so CPU-bound work speeds up by about the number of "
        "cores there, and not at all on threads (the GIL) or asyncio (one thread)."
    )
    if trace is not None:
        path = trace.save()
        print(
            f"\nTimeline of the CPU-bound runs: {path} (open it in a browser). Each thread's "
            "tasks take about as long as all threads together would: they take turns on the "
            "GIL. The process workers run side by side, each task at full speed."
        )
    return 0
