"""The benchmark workloads, as module-level functions so process pools can pickle them.

Everything here is plain Python with no dependency on anypool, so the same functions feed
anypool and the peers (stdlib pools, joblib, mpire, hand-written asyncio patterns).
``tests/test_bench_smoke.py`` checks that each one computes what it should.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

#: blocking and asyncio sleeps of workloads (c) and (d)
SLEEP_S = 0.010


# -- (a) trivial tasks ---------------------------------------------------------------------
def sq(x: int) -> int:
    """The trivial task of workload (a): ``x * x``."""
    return x * x


async def asq(x: int) -> int:
    """The coroutine version of :func:`sq`."""
    return x * x


# -- (b) ~1 ms of pure-Python CPU -------------------------------------------------------------
def burn(n: int) -> int:
    """Spin the interpreter for ``n`` loop turns; returns ``sum(i * i for i in range(n))``."""
    acc = 0
    for i in range(n):
        acc += i * i
    return acc


def burn_expected(n: int) -> int:
    """What :func:`burn` returns, in closed form."""
    return (n - 1) * n * (2 * n - 1) // 6 if n > 0 else 0


def calibrate_burn(target_s: float = 0.001, rounds: int = 9) -> tuple[int, float]:
    """Loop count for which one :func:`burn` call takes about ``target_s`` here.

    Returns ``(n, measured seconds per call)``. Each step times ``rounds`` calls and keeps
    the *fastest*: on a shared machine the slow ones measure the neighbours, not the loop.
    It refines until two steps in a row land within 10 % of the target (at most 8 steps).
    """
    n = 1000
    while True:  # grow until one call is long enough to time well
        t0 = time.perf_counter()
        burn(n)
        dt = time.perf_counter() - t0
        if dt >= target_s / 4:
            break
        n *= 2
    n = max(1, int(n * target_s / dt))
    best = dt
    close = 0
    for _ in range(8):
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            burn(n)
            times.append(time.perf_counter() - t0)
        best = min(times)
        if abs(best - target_s) <= 0.1 * target_s:
            close += 1
            if close == 2:
                break
        else:
            close = 0
            n = max(1, int(n * target_s / best))
    return n, best


# -- (c) and (d): sleeps ---------------------------------------------------------------------
def sleep_task(x: int) -> int:
    """Block for 10 ms (``time.sleep``), then return ``x``."""
    time.sleep(SLEEP_S)
    return x


async def async_sleep_task(x: int) -> int:
    """Wait 10 ms (``asyncio.sleep``), then return ``x``."""
    await asyncio.sleep(SLEEP_S)
    return x


# -- (u) mixed: half CPU, half waiting ---------------------------------------------------------
#: the blocking sleep of the mixed task
MIXED_SLEEP_S = 0.001


def burn_then_sleep(n: int) -> int:
    """:func:`burn` for ``n`` loop turns (~1 ms when calibrated), then ``time.sleep(1 ms)``."""
    acc = burn(n)
    time.sleep(MIXED_SLEEP_S)
    return acc


# -- (e) lazy input --------------------------------------------------------------------------
class CountingRange(Iterator[int]):
    """``iter(range(n))`` that counts how many items were pulled (for in-flight figures).

    It has no ``__len__``, so pools cannot learn the input's size up front.
    """

    __slots__ = ("n", "pulled")

    def __init__(self, n: int) -> None:
        self.n = n
        self.pulled = 0

    def __iter__(self) -> CountingRange:
        return self

    def __next__(self) -> int:
        i = self.pulled
        if i >= self.n:
            raise StopIteration
        self.pulled = i + 1
        return i


def lazy_ints(n: int) -> Iterator[int]:
    """A plain generator of ``0 .. n-1``."""
    yield from range(n)


# -- hand-written asyncio patterns (the peers of the asyncio backend) -------------------------
async def worker_queue_map(
    fn: Callable[[Any], Awaitable[Any]], items: Iterable[Any], workers: int
) -> list[Any]:
    """``workers`` long-lived coroutines pull from a bounded ``asyncio.Queue``; ordered results.

    This is the fastest hand-written pattern in the baselines for workload (d).
    """
    q: asyncio.Queue[tuple[int, Any] | None] = asyncio.Queue(maxsize=2 * workers)
    out: dict[int, Any] = {}

    async def work() -> None:
        while True:
            job = await q.get()
            if job is None:
                return
            i, x = job
            out[i] = await fn(x)

    tasks = [asyncio.create_task(work()) for _ in range(workers)]
    try:
        n = 0
        for n, x in enumerate(items, 1):
            await q.put((n - 1, x))
        for _ in tasks:
            await q.put(None)
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
    return [out[i] for i in range(n)]


async def worker_queue_iter(
    fn: Callable[[Any], Awaitable[Any]],
    items: Iterable[Any],
    workers: int,
    consume: Callable[[Any], None],
) -> None:
    """Like :func:`worker_queue_map` but hands each result to ``consume`` as it completes
    (unordered) and keeps nothing: the bounded-memory version for workload (e).
    """
    q: asyncio.Queue[Any] = asyncio.Queue(maxsize=2 * workers)
    stop = object()

    async def work() -> None:
        while True:
            x = await q.get()
            if x is stop:
                return
            consume(await fn(x))

    tasks = [asyncio.create_task(work()) for _ in range(workers)]
    try:
        for x in items:
            await q.put(x)
        for _ in tasks:
            await q.put(stop)
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()


async def gather_semaphore_map(
    fn: Callable[[Any], Awaitable[Any]], items: Iterable[Any], limit: int
) -> list[Any]:
    """The common pattern: one task per item, ``asyncio.gather`` + ``Semaphore(limit)``."""
    sem = asyncio.Semaphore(limit)

    async def one(x: Any) -> Any:
        async with sem:
            return await fn(x)

    return await asyncio.gather(*(one(x) for x in items))


# -- (p) pipelines: I/O-like -> CPU -> I/O-like -----------------------------------------------
#: the blocking wait of each I/O-like pipeline stage
PIPE_IO_S = 0.010


def pipe_io(item: Any) -> Any:
    """An I/O-like stage: block for :data:`PIPE_IO_S` (``time.sleep``), return the item."""
    time.sleep(PIPE_IO_S)
    return item


async def apipe_io(item: Any) -> Any:
    """:func:`pipe_io` as a coroutine (``asyncio.sleep``)."""
    await asyncio.sleep(PIPE_IO_S)
    return item


def pipe_cpu(item: tuple[int, int]) -> int:
    """The CPU stage: ``item = (x, loops)``; :func:`burn` ``loops`` turns, plus ``x``."""
    x, loops = item
    return burn(loops) + x


def pipe_expected(items: Iterable[tuple[int, int]]) -> list[int]:
    """What the three-stage pipeline returns for ``items``, in order."""
    return [burn_expected(loops) + x for x, loops in items]


def _pipe_cpu_worker(inbox: Any, outbox: Any) -> None:
    """A hand-written CPU-stage process: read until the poison pill (``None``)."""
    while (item := inbox.get()) is not None:
        outbox.put(pipe_cpu(item))


def handwritten_pipeline(
    items: Iterable[tuple[int, int]],
    *,
    io_workers: int,
    cpu_workers: int,
    ctx: Any,
    maxsize: int = 128,
) -> list[int]:
    """The guide's producer/consumer, three stages: threads -> processes -> threads.

    Bounded queues between the stages (``queue.Queue`` between threads, the context's
    ``Queue`` to and from the processes), one poison pill per consumer of each queue, and the
    coordinator (this thread) passing the pills on once a stage has finished. Results come
    back as they complete (unordered).
    """
    import queue
    import threading

    q1: queue.Queue[Any] = queue.Queue(maxsize)
    q2 = ctx.Queue(maxsize)
    q3 = ctx.Queue(maxsize)
    out: list[int] = []
    lock = threading.Lock()

    def source() -> None:
        for item in items:
            q1.put(item)
        for _ in range(io_workers):
            q1.put(None)

    def fetch() -> None:
        while (item := q1.get()) is not None:
            q2.put(pipe_io(item))

    def save() -> None:
        while (item := q3.get()) is not None:
            value = pipe_io(item)
            with lock:
                out.append(value)

    procs = [ctx.Process(target=_pipe_cpu_worker, args=(q2, q3)) for _ in range(cpu_workers)]
    for p in procs:
        p.start()
    fetchers = [threading.Thread(target=fetch) for _ in range(io_workers)]
    savers = [threading.Thread(target=save) for _ in range(io_workers)]
    feeder = threading.Thread(target=source)
    for t in [feeder, *fetchers, *savers]:
        t.start()
    feeder.join()
    for t in fetchers:
        t.join()
    for _ in procs:
        q2.put(None)  # the fetchers are done: one pill per CPU process
    for p in procs:
        p.join()
    for _ in savers:
        q3.put(None)  # the CPU stage is done: one pill per saver
    for t in savers:
        t.join()
    q2.close()
    q3.close()
    return out


# -- (o) native thread pools: a numpy model per worker -----------------------------------------
#: the model of workload (o): a MODEL_N x MODEL_N matrix, evaluated in MODEL_STEPS products
MODEL_N = 300
MODEL_STEPS = 5
_model: Any = None  # per process: built once by model_init (or by the first evaluation)


def model_init() -> None:
    """Build this process's model (an initializer; the peers without one build it lazily)."""
    global _model
    import numpy as np

    rng = np.random.default_rng(0)
    _model = rng.standard_normal((MODEL_N, MODEL_N)) / MODEL_N**0.5


def model_eval(i: int) -> float:
    """Evaluate the model on input ``i``: MODEL_STEPS matrix products through BLAS."""
    import numpy as np

    if _model is None:
        model_init()
    x = _model * (1.0 + i / 1000.0)
    for _ in range(MODEL_STEPS):
        x = np.tanh(x @ _model)
    return float(x.sum())
