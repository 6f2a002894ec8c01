"""Benchmark (d): 20,000 coroutines of ``asyncio.sleep(0.01)`` with 1,000 in flight.

Compares anypool's asyncio backend (from sync code: its own loop thread; from async code: the
caller's loop) with the hand-written "1000 worker coroutines + bounded asyncio.Queue" pattern
and with ``gather`` + ``Semaphore``, in one run. Ideal: 20 rounds x 10 ms = 0.200 s.

Run: ``.venv/bin/python benchmarks/asyncio_workers.py [--reps 7] [--n 20000] [--limit 1000]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

import anypool

try:
    import uvloop
except ImportError:  # optional extra
    uvloop = None  # type: ignore[assignment]


async def work(x: int) -> int:
    await asyncio.sleep(0.01)
    return x


async def hand_written(n: int, limit: int) -> list[int]:
    """1000 long-lived workers pulling from a bounded queue; results in input order."""
    q: asyncio.Queue[int | None] = asyncio.Queue(maxsize=2 * limit)
    out: list[int] = [0] * n

    async def worker() -> None:
        while True:
            i = await q.get()
            if i is None:
                return
            out[i] = await work(i)

    workers = [asyncio.create_task(worker()) for _ in range(limit)]
    for i in range(n):
        await q.put(i)
    for _ in range(limit):
        await q.put(None)
    await asyncio.gather(*workers)
    return out


async def gather_semaphore(n: int, limit: int) -> list[int]:
    sem = asyncio.Semaphore(limit)

    async def one(i: int) -> int:
        async with sem:
            return await work(i)

    return await asyncio.gather(*(one(i) for i in range(n)))


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--limit", type=int, default=1_000)
    ap.add_argument("--gather", action="store_true", help="also time gather+Semaphore")
    a = ap.parse_args()
    n, limit = a.n, a.limit

    def run_on(
        factory: Callable[[], asyncio.AbstractEventLoop] | None,
        coro_fn: Callable[[], Coroutine[Any, Any, list[int]]],
    ) -> Callable[[], None]:
        def go() -> None:
            with asyncio.Runner(loop_factory=factory) as r:
                assert r.run(coro_fn()) == list(range(n))

        return go

    async def amap_() -> list[int]:
        return await anypool.amap(work, range(n), workers=limit)

    def map_(uv: bool) -> Callable[[], None]:
        def go() -> None:
            out = anypool.map(work, range(n), backend="asyncio", workers=limit, uvloop=uv)
            assert out == list(range(n))

        return go

    runners: dict[str, Callable[[], None]] = {
        "hand-written workers+Queue (asyncio loop)": run_on(None, lambda: hand_written(n, limit)),
        "anypool.amap from async (asyncio loop)": run_on(None, amap_),
        "anypool.map from sync (own asyncio loop)": map_(False),
    }
    if uvloop is not None:
        runners.update(
            {
                "hand-written workers+Queue (uvloop)": run_on(
                    uvloop.new_event_loop, lambda: hand_written(n, limit)
                ),
                "anypool.amap from async (uvloop)": run_on(uvloop.new_event_loop, amap_),
                "anypool.map from sync (own uvloop loop)": map_(True),
            }
        )
    if a.gather:
        runners["gather+Semaphore (asyncio loop)"] = run_on(
            None, lambda: gather_semaphore(n, limit)
        )
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in runners}
    for fn in runners.values():  # warm-up
        fn()
    for _ in range(a.reps):  # interleaved, so drift hits every runner alike
        for name, fn in runners.items():
            times[name].append(timed(fn))
    ideal = n / limit * 0.01
    print(f"{n} x asyncio.sleep(0.01), {limit} in flight, {a.reps} reps; ideal {ideal:.3f} s")
    medians = {k: statistics.median(t for t, _ in ts) for k, ts in times.items()}
    print(f"{'runner':45} {'median s':>9} {'min s':>7} {'CPU us/task':>12} {'vs hand':>8}")
    for name, ts in times.items():
        cpu = statistics.median(c for _, c in ts)
        loop = "uvloop" if "uvloop" in name else "asyncio loop"
        hand = medians[f"hand-written workers+Queue ({loop})"]
        print(
            f"{name:45} {medians[name]:9.3f} {min(t for t, _ in ts):7.3f} "
            f"{cpu / n * 1e6:12.2f} {medians[name] / hand:8.2f}"
        )
    print("vs hand: median / median of the hand-written pattern on the same kind of loop")


if __name__ == "__main__":
    main()
