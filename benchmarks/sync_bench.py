"""Workloads and runners of sections (h) ``pool.share`` and (k) ``pool.Counter``.

Module-level task functions, so process pools pickle them by reference. Every runner is a
``harness`` runner: a generator that sets up a warm pool, yields the timed call, and tears the
pool down. Checked by ``tests/test_bench_smoke.py`` at tiny sizes.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from typing import Any

# -- (k) counters ---------------------------------------------------------------------------


def inc_counter(counter: Any, n: int) -> int:
    for _ in range(n):
        counter.increment()
    return n


def inc_value(lock: Any, value: Any, n: int) -> int:
    for _ in range(n):
        with lock:
            value.value += 1
    return n


def inc_dict(lock: Any, d: Any, n: int) -> int:
    for _ in range(n):
        with lock:
            d["n"] += 1
    return n


async def ainc_counter(counter: Any, n: int) -> int:
    return inc_counter(counter, n)


async def ainc_value(lock: Any, value: Any, n: int) -> int:
    for _ in range(n):
        async with lock:
            value.value += 1
    return n


async def ainc_dict(lock: Any, d: Any, n: int) -> int:
    return inc_dict(lock, d, n)


KINDS = ("pool.Counter", "pool.Lock + pool.Value", "Manager dict + Manager lock")


def r_counter(backend: str, kind: str, tasks: int, n: int) -> Any:
    """``tasks`` tasks (one per worker) each add 1 ``n`` times; the call returns the total."""

    def run() -> Iterator[Any]:
        import anypool

        aio = backend == "asyncio"
        with anypool.Pool(backend, workers=tasks) as pool:
            manager = None
            try:
                if kind == "pool.Counter":
                    c = pool.Counter()
                    fn: Any = ainc_counter if aio else inc_counter
                    args: tuple[Any, ...] = (c,)

                    def read() -> int:
                        return int(c.value)

                elif kind == "pool.Lock + pool.Value":
                    v = pool.Value("q", 0)
                    fn = ainc_value if aio else inc_value
                    args = (pool.Lock(), v)

                    def read() -> int:
                        return int(v.value)

                else:  # the guide's way: a Manager dict and a Manager lock
                    manager = mp.get_context("forkserver").Manager()
                    d = manager.dict({"n": 0})
                    fn = ainc_dict if aio else inc_dict
                    args = (manager.Lock(), d)

                    def read() -> int:
                        return int(d["n"])

                def call() -> int:
                    start = read()
                    cols = [[a] * tasks for a in args]
                    list(pool.map(fn, *cols, [n] * tasks, chunksize=1))
                    return read() - start

                call()  # warm: workers started, imports done
                yield call
            finally:
                if manager is not None:
                    manager.shutdown()

    return run


# -- (h) share ------------------------------------------------------------------------------


def size_of(obj: Any, i: int) -> int:
    if isinstance(obj, tuple):
        return sum(len(x) for x in obj)
    return len(obj)


def make_object(kind: str, mb: int) -> Any:
    """``bytes`` (mapped without a copy) or a tuple of 1 MB strings (pickled once)."""
    if kind == "bytes":
        return bytes(mb * 1_000_000)
    return tuple(str(i % 10) * 1_000_000 for i in range(mb))


def r_share(backend: str, kind: str, mb: int, tasks: int, shared: bool, workers: int) -> Any:
    """Each call runs ``tasks`` tasks that each take the object; with ``shared`` through
    ``pool.share`` (made inside the timed call), else passed as the argument of every task.
    Chunks of 1, so "every time" really is once per task (a chunk pickles a repeated
    argument once)."""

    def run() -> Iterator[Any]:
        import anypool

        obj = make_object(kind, mb)
        with anypool.Pool(backend, workers=workers) as pool:
            list(pool.map(size_of, ["warm"] * workers, range(workers), chunksize=1))

            def call() -> list[int]:
                arg = pool.share(obj) if shared else obj
                return list(pool.map(size_of, [arg] * tasks, range(tasks), chunksize=1))

            yield call

    return run
