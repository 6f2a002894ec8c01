"""Runners and helpers shared by the section modules.

What is available here, the peers' and anypool's generic runners (each a generator: set up
and warm, yield the timed call, tear down), result checks and table helpers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import importlib.metadata
import multiprocessing as mp
import multiprocessing.pool
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import workloads as w
from harness import Measured, Skip, fmt

HERE = Path(__file__).resolve().parent
PROBE = str(HERE / "probe.py")
W = 2  # workers for the CPU-side workloads (the machine has 2 cores)


def anypool_backends() -> dict[str, str | None]:
    """backend name -> None if it runs here, else why not."""
    out: dict[str, str | None] = {}
    try:
        import anypool
    except Exception as exc:
        return dict.fromkeys(("serial", "thread", "process"), f"import anypool failed: {exc}")
    for b in ("serial", "thread", "process", "asyncio", "auto", "dask"):
        try:
            anypool.get_backend(b)
            out[b] = None
        except Exception as exc:
            out[b] = f"anypool backend {b!r} is not on this checkout ({type(exc).__name__})"
    return out


AVAILABLE: dict[str, str | None] = {}


def need_backend(name: str) -> None:
    why = AVAILABLE.get(name, f"unknown backend {name!r}")
    if why is not None:
        raise Skip(why + "; merge main to get it")


def need_module(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError as exc:
        raise Skip(f"{name} is not installed ({exc})") from None


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def r_serial(fn: Callable[[Any], Any], data: list[Any]) -> Callable[[], Iterator[Any]]:
    def run() -> Iterator[Any]:
        yield lambda: list(map(fn, data))

    return run


def r_tpe(fn: Callable[[Any], Any], data: list[Any], workers: int) -> Callable[[], Iterator[Any]]:
    def run() -> Iterator[Any]:
        with cf.ThreadPoolExecutor(workers) as ex:
            list(ex.map(fn, range(min(len(data), 4 * workers))))  # start the threads
            yield lambda: list(ex.map(fn, data))

    return run


def r_ppe(fn: Callable[[Any], Any], data: list[Any], workers: int, chunksize: int) -> Any:
    def run() -> Iterator[Any]:
        with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as ex:
            list(ex.map(w.sq, range(100)))
            yield lambda: list(ex.map(fn, data, chunksize=chunksize))

    return run


def r_mp_pool(
    fn: Callable[[Any], Any], data: list[Any], workers: int, how: str, chunksize: int | None = None
) -> Any:
    def run() -> Iterator[Any]:
        if how == "thread":
            pool: Any = multiprocessing.pool.ThreadPool(workers)
        else:
            pool = mp.get_context("fork").Pool(workers)
        try:
            pool.map(w.sq, range(100))
            if how == "imap":
                yield lambda: list(pool.imap(fn, data))
            else:
                yield lambda: pool.map(fn, data, chunksize=chunksize)
        finally:
            pool.terminate()
            pool.join()

    return run


def r_joblib(fn: Callable[[Any], Any], data: list[Any], workers: int, backend: str) -> Any:
    def run() -> Iterator[Any]:
        joblib = need_module("joblib")
        par = joblib.Parallel(n_jobs=workers, backend=backend)
        d = joblib.delayed(fn)
        par(joblib.delayed(w.sq)(i) for i in range(100))
        try:
            yield lambda: par(d(x) for x in data)
        finally:
            if backend == "loky":
                from joblib.externals.loky import get_reusable_executor

                get_reusable_executor().shutdown(wait=True)

    return run


def r_mpire(fn: Callable[[Any], Any], data: list[Any], workers: int, start: str) -> Any:
    def run() -> Iterator[Any]:
        mpire = need_module("mpire")
        pool = mpire.WorkerPool(n_jobs=workers, start_method=start, keep_alive=True)
        try:
            pool.map(w.sq, range(100))
            yield lambda: pool.map(fn, data)
        finally:
            pool.terminate()

    return run


def r_anypool(
    backend: str,
    fn: Callable[[Any], Any],
    data: list[Any],
    workers: int | None,
    pool_options: dict[str, Any] | None = None,
    **kw: Any,
) -> Any:
    """A warm ``anypool.Pool``; each timed call is ``list(pool.imap(fn, data, **kw))``."""

    def run() -> Iterator[Any]:
        need_backend(backend)
        import anypool

        with anypool.Pool(backend, workers=workers, **(pool_options or {})) as pool:
            warm = w.asq if backend == "asyncio" else w.sq
            list(pool.imap(warm, range(100)))
            yield lambda: list(pool.imap(fn, data, **kw))

    return run


def r_anypool_oneshot(
    backend: str, fn: Callable[[Any], Any], data: list[Any], workers: int | None, **options: Any
) -> Any:
    """``anypool.map(...)``: a fresh pool per call (start-up included)."""

    def run() -> Iterator[Any]:
        need_backend(backend)
        import anypool

        yield lambda: anypool.map(fn, data, backend=backend, workers=workers, **options)

    return run


def r_async(pattern: str, fn: Any, data: list[Any], limit: int, loop: str) -> Any:
    """A hand-written asyncio pattern, one ``asyncio.run`` (or ``uvloop.run``) per call."""

    def run() -> Iterator[Any]:
        runner = _loop_runner(loop)
        if pattern == "queue":
            yield lambda: runner(w.worker_queue_map(fn, data, limit))
        else:
            yield lambda: runner(w.gather_semaphore_map(fn, data, limit))

    return run


def _loop_runner(loop: str) -> Callable[[Any], Any]:
    if loop == "uvloop":
        uvloop = need_module("uvloop")
        run: Callable[[Any], Any] = uvloop.run
        return run
    return asyncio.run


def r_anypool_amap(fn: Any, data: list[Any], workers: int, loop: str) -> Any:
    """``await anypool.amap(..., backend="asyncio")`` inside ``asyncio.run``/``uvloop.run``."""

    def run() -> Iterator[Any]:
        need_backend("asyncio")
        import anypool

        runner = _loop_runner(loop)

        async def go() -> list[Any]:
            return await anypool.amap(fn, data, backend="asyncio", workers=workers)

        yield lambda: runner(go())

    return run


def check_equal(expected: list[Any]) -> Callable[[Any], None]:
    def check(out: Any) -> None:
        out = list(out)
        if out != expected:
            bad = next(
                (i for i, (a, b) in enumerate(zip(out, expected, strict=False)) if a != b),
                min(len(out), len(expected)),
            )
            raise AssertionError(
                f"wrong results: {len(out)} values for {len(expected)} inputs, first "
                f"difference at #{bad}"
            )

    return check


def best_of(ms: list[Measured], key: Callable[[Measured], float]) -> float | None:
    vals = [key(m) for m in ms if m.ok]
    return min(vals) if vals else None


def minmax(m: Measured) -> str:
    return f"{fmt(min(m.times))}–{fmt(max(m.times))}"


def find(ms: list[Measured], name: str) -> Measured | None:
    for m in ms:
        if m.name == name and m.ok:
            return m
    return None


def check_equal_value(expected: int) -> Callable[[Any], None]:
    def check(got: Any) -> None:
        if got != expected:
            raise AssertionError(f"counted {got}, expected {expected}")

    return check


def needs(backend: str, runner: Any) -> Any:
    def run() -> Iterator[Any]:
        need_backend(backend)
        yield from runner()

    return run


def need_scipy_workloads() -> Any:
    """The numpy/scipy task module, or Skip when they are not installed."""
    try:
        import scipy_workloads
    except ImportError as exc:
        raise Skip(f"needs numpy and scipy (pip install -e '.[bench]'): {exc}") from None
    return scipy_workloads
