"""Measurements that need a fresh interpreter each time; ``run.py`` starts this as a child.

    python benchmarks/probe.py mem RUNNER N CAP_S     # (e) peak RSS growth over a lazy input
    python benchmarks/probe.py million BACKEND N      # 1M-task imap: exactly once, in order
    python benchmarks/probe.py startup RUNNER         # (s) create + first result + shutdown

Each prints one JSON line on stdout. Peak RSS is the kernel's high-water mark (``VmHWM``),
reset just before the measured part by writing ``5`` to ``/proc/self/clear_refs``; without
that (not Linux) it falls back to ``ru_maxrss``, which cannot be reset.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import workloads as w

# -- peak RSS --------------------------------------------------------------------------------
_CAN_RESET = False


def reset_peak() -> None:
    global _CAN_RESET
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _CAN_RESET = True
    except OSError:
        _CAN_RESET = False


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def current_rss_mb() -> float:
    kb = _status_kb("VmRSS")
    if kb is not None:
        return kb / 1024
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def peak_rss_mb() -> float:
    if _CAN_RESET:
        kb = _status_kb("VmHWM")
        if kb is not None:
            return kb / 1024
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (kb / 1024) if sys.platform != "darwin" else kb / 2**20


# -- (e) memory over a lazy input --------------------------------------------------------------
class _Consumer:
    """Counts results as they arrive; tracks items in flight and the time of the first."""

    def __init__(self, src: w.CountingRange, cap_s: float) -> None:
        self.src = src
        self.n = 0
        self.max_inflight = 0
        self.pulled_at_first: int | None = None
        self.first_at: float | None = None
        self.cap_s = cap_s
        self.capped = False
        self.start()

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + self.cap_s

    def __call__(self, _value: Any) -> None:
        if self.n == 0:
            self.first_at = time.perf_counter() - self.t0
            self.pulled_at_first = self.src.pulled
        self.n += 1
        inflight = self.src.pulled - self.n
        if inflight > self.max_inflight:
            self.max_inflight = inflight

    def drain(self, it: Iterable[Any]) -> None:
        """Consume ``it`` until it ends or the time cap passes (checked every 1024 results)."""
        for x in it:
            self(x)
            if not self.n & 1023 and time.perf_counter() > self.deadline:
                self.capped = True
                return


def _mem_runners() -> dict[str, Callable[[w.CountingRange, _Consumer], Iterator[None]]]:
    """name -> generator: set up, yield (the measured part runs), tear down."""

    def anypool_imap(backend: str, fn: Callable[..., Any], workers: int | None) -> Any:
        def run(src: w.CountingRange, c: _Consumer) -> Iterator[None]:
            import anypool

            with anypool.Pool(backend, workers=workers) as pool:
                list(pool.imap(fn, range(100)))  # warm: start the workers
                yield
                it = pool.imap(fn, src)
                c.drain(it)
                close = getattr(it, "close", None)
                if close is not None:
                    close()

        return run

    def tpe_map(src: w.CountingRange, c: _Consumer) -> Iterator[None]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2) as ex:
            list(ex.map(w.sq, range(100)))
            yield
            c.drain(ex.map(w.sq, src))

    def pool_imap(chunksize: int) -> Any:
        def run(src: w.CountingRange, c: _Consumer) -> Iterator[None]:
            import multiprocessing as mp

            pool = mp.Pool(2)
            try:
                pool.map(w.sq, range(100))
                yield
                c.drain(pool.imap(w.sq, src, chunksize=chunksize))
            finally:
                pool.terminate()
                pool.join()

        return run

    def serial_map(src: w.CountingRange, c: _Consumer) -> Iterator[None]:
        yield
        c.drain(map(w.sq, src))

    def asyncio_workers(src: w.CountingRange, c: _Consumer) -> Iterator[None]:
        import asyncio

        yield
        asyncio.run(w.worker_queue_iter(w.asq, src, 1000, c))

    return {
        "serial": serial_map,
        "anypool-thread": anypool_imap("thread", w.sq, 2),
        "anypool-process": anypool_imap("process", w.sq, 2),
        "anypool-asyncio": anypool_imap("asyncio", w.asq, None),
        "anypool-serial": anypool_imap("serial", w.sq, None),
        "tpe": tpe_map,
        "pool-imap-1": pool_imap(1),
        "pool-imap-10000": pool_imap(10000),
        "asyncio-workers": asyncio_workers,
    }


def cmd_mem(name: str, n: int, cap_s: float) -> dict[str, Any]:
    runner = _mem_runners()[name]
    src = w.CountingRange(n)
    c = _Consumer(src, cap_s)
    gen = runner(src, c)
    next(gen)  # set-up (imports, pool start, warm-up) is not counted as growth
    gc.collect()
    before = current_rss_mb()
    reset_peak()
    c.start()
    try:
        next(gen)
    except StopIteration:
        pass
    elapsed = time.perf_counter() - c.t0
    peak = peak_rss_mb()
    gen.close()
    return {
        "growth_mb": max(0.0, peak - before),
        "rss_before_mb": before,
        "peak_mb": peak,
        "reset": _CAN_RESET,
        "consumed": c.n,
        "capped": c.capped,
        "pulled_before_first": c.pulled_at_first,
        "max_inflight": c.max_inflight,
        "first_s": c.first_at,
        "time_s": elapsed,
    }


# -- the 1M-task exactly-once, in-order check ---------------------------------------------------
def cmd_million(backend: str, n: int) -> dict[str, Any]:
    import anypool

    fn = w.asq if backend == "asyncio" else w.sq
    gc.collect()
    before = current_rss_mb()
    reset_peak()
    t0 = time.perf_counter()
    expected = 0
    bad: str | None = None
    for r in anypool.imap(fn, range(n), backend=backend):
        if r != expected * expected:
            bad = f"result #{expected} is {r!r}, expected {expected * expected}"
            break
        expected += 1
    elapsed = time.perf_counter() - t0
    if bad is None and expected != n:
        bad = f"{expected} results for {n} inputs"
    return {
        "time_s": elapsed,
        "peak_mb": peak_rss_mb(),
        "growth_mb": max(0.0, peak_rss_mb() - before),
        "rss_before_mb": before,
        "results": expected,
        "problem": bad,
    }


# -- (s) start-up ----------------------------------------------------------------------------
def cmd_startup(name: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    if name.startswith("anypool"):
        import anypool as pkg  # noqa: F401
    elif name == "asyncio":
        import asyncio  # noqa: F401
    else:
        import concurrent.futures  # noqa: F401
        import multiprocessing  # noqa: F401
    t_import = time.perf_counter() - t0

    t1 = time.perf_counter()
    if name.startswith("anypool-"):
        import anypool

        _, backend, *method = name.split("-")
        opts = {"start_method": method[0]} if method else {}
        pool: Any = anypool.Pool(backend, workers=2, **opts)
        t2 = time.perf_counter()
        pool.submit(w.sq, 3).result()
        t3 = time.perf_counter()
        pool.shutdown()
    elif name.startswith("ppe-") or name == "tpe":
        import concurrent.futures as cf
        import multiprocessing as mp

        if name == "tpe":
            pool = cf.ThreadPoolExecutor(2)
        else:
            ctx = mp.get_context(name.split("-", 1)[1])
            pool = cf.ProcessPoolExecutor(2, mp_context=ctx)
        t2 = time.perf_counter()
        pool.submit(w.sq, 3).result()
        t3 = time.perf_counter()
        pool.shutdown()
    elif name.startswith("mp-pool-"):
        import multiprocessing as mp

        pool = mp.get_context(name.split("-", 2)[2]).Pool(2)
        t2 = time.perf_counter()
        pool.apply(w.sq, (3,))
        t3 = time.perf_counter()
        pool.close()
        pool.join()
    else:
        raise SystemExit(f"unknown start-up runner {name!r}")
    t4 = time.perf_counter()
    return {
        "import_s": t_import,
        "create_s": t2 - t1,
        "first_s": t3 - t2,
        "shutdown_s": t4 - t3,
        "total_s": t4 - t1,
    }


def main(argv: list[str]) -> None:
    cmd = argv[0]
    if cmd == "mem":
        out = cmd_mem(argv[1], int(argv[2]), float(argv[3]))
    elif cmd == "million":
        out = cmd_million(argv[1], int(argv[2]))
    elif cmd == "startup":
        out = cmd_startup(argv[1])
    else:
        raise SystemExit(__doc__)
    sys.stdout.flush()
    print(json.dumps(out))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main(sys.argv[1:])
