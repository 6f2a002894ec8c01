"""05 - Advanced concurrency patterns.

What the guide calls advanced, each the standard-library way and then the anypool way:

- bounded concurrency: at most N things at once (asyncio.Semaphore, pool sizes, ``workers=``);
- timeouts: waiting less vs. stopping the task (``future.result(timeout=)``,
  ``asyncio.wait_for``, anypool's ``task_timeout=``);
- cancellation: what can be cancelled and what cannot;
- exceptions across workers (best practice 6): try/except per future vs. ``errors="collect"``,
  tracebacks, retries;
- producer/consumer with several stages: bounded queues, worker threads and poison pills vs.
  an ``anypool.Pipeline``.

    python examples/05_advanced_concurrency.py [--fast]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import queue
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anypool

# How long a test may wait for something that should happen at once (never reached normally).
PATIENCE = 10.0


def fact(name: str, value: object) -> None:
    """Print one machine-checkable fact (the tests read these lines)."""
    print(f"FACT {name}={json.dumps(value)}", flush=True)


def has_backend(name: str) -> bool:
    """Is anypool's backend `name` usable here? (The process and asyncio backends are new.)"""
    try:
        anypool.get_backend(name)
    except (LookupError, ImportError):
        return False
    return True


class Occupancy:
    """Counts how many tasks are inside a block right now, and the most ever seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


# --- 1. Bounded concurrency -------------------------------------------------------------------
def bounded_concurrency(delay: float, limit: int = 3, n: int = 10) -> dict[str, int | str]:
    out: dict[str, int | str] = {}

    # asyncio: gather alone would start all n at once; a Semaphore lets `limit` through.
    async def with_semaphore() -> int:
        semaphore = asyncio.Semaphore(limit)
        inside = Occupancy()

        async def fetch(i: int) -> int:
            async with semaphore:
                with inside:
                    await asyncio.sleep(delay)
            return i

        await asyncio.gather(*(fetch(i) for i in range(n)))
        return inside.most

    out["asyncio_semaphore"] = asyncio.run(with_semaphore())

    # threads: the pool size is the bound.
    inside = Occupancy()

    def blocking_fetch(i: int) -> int:
        with inside:
            time.sleep(delay)
        return i

    with ThreadPoolExecutor(max_workers=limit) as executor:
        list(executor.map(blocking_fetch, range(n)))
    out["thread_pool"] = inside.most

    # anypool: workers= is the bound, for every backend.
    inside = Occupancy()
    anypool.map(blocking_fetch, range(n), workers=limit)
    out["anypool_threads"] = inside.most

    if has_backend("asyncio"):
        coroutine_inside = Occupancy()

        async def fetch(i: int) -> int:
            with coroutine_inside:
                await asyncio.sleep(delay)
            return i

        async def with_amap() -> None:
            await anypool.amap(fetch, range(n), workers=limit)

        asyncio.run(with_amap())
        out["anypool_asyncio"] = coroutine_inside.most
    else:
        print("NOTE: the 'asyncio' backend is not available in this anypool yet - skipped")
        out["anypool_asyncio"] = "skipped"
    print(f"limit {limit}; most running at once: {out}")
    return out


# --- 2. Timeouts ------------------------------------------------------------------------------
def timeouts(timeout: float) -> dict[str, object]:
    out: dict[str, object] = {}

    # Standard library: result(timeout=) only stops *waiting*. The task goes on running, and
    # the `with` block would wait for it at the end.
    release = threading.Event()

    def slow_task() -> str:
        release.wait(PATIENCE)  # stands for work that takes far longer than we will wait
        return "slow result"

    with ThreadPoolExecutor(max_workers=1) as executor:
        future = executor.submit(slow_task)
        try:
            future.result(timeout=timeout)
        except TimeoutError:
            out["stdlib_timed_out"] = True
            out["stdlib_still_running"] = future.running()
            print(f"future.result(timeout={timeout}) gave up; the task still runs")
        release.set()  # let it finish, or leaving the with block would wait PATIENCE seconds

    # asyncio: wait_for cancels the coroutine when the time is up.
    async def asyncio_timeout() -> list[str]:
        log: list[str] = []

        async def slow_coroutine() -> None:
            try:
                await asyncio.Event().wait()  # never set: would wait forever
            finally:
                log.append("cleaned up")

        try:
            await asyncio.wait_for(slow_coroutine(), timeout=timeout)
        except TimeoutError:
            log.append("timed out")
        return log

    out["asyncio_wait_for"] = asyncio.run(asyncio_timeout())

    # anypool: task_timeout= fails the task itself with TaskTimeoutError (a TimeoutError).
    # The other tasks are unaffected and the pool does not wait for the slow one: its thread is
    # abandoned (Python cannot stop a thread) and replaced; a process worker would be killed.
    release = threading.Event()

    def task(seconds_needed: int) -> str:
        if seconds_needed > 0:
            release.wait(PATIENCE)
        return f"finished in time ({seconds_needed})"

    outcomes = []
    with anypool.Pool("thread", workers=3, task_timeout=timeout) as pool:
        futures = [pool.submit(task, s) for s in [0, 60, 0]]
        for f in futures:
            try:
                outcomes.append(f.result())
            except anypool.TaskTimeoutError as exc:
                outcomes.append(type(exc).__name__)
                print(f"task_timeout: {exc}")
        release.set()
    out["anypool_task_timeout"] = outcomes
    print(f"anypool task_timeout={timeout}: {outcomes}")

    # The same with map: errors="collect" keeps going and reports the timeout in its Result.
    release = threading.Event()
    try:
        results = anypool.map(task, [0, 60, 0], task_timeout=timeout, errors="collect")
    finally:
        release.set()
    out["anypool_map_collect"] = [r.value if r.ok else type(r.error).__name__ for r in results]
    print(f"anypool.map(task_timeout={timeout}, errors='collect'): {results}")
    return out


# --- 3. Cancellation --------------------------------------------------------------------------
def cancel_queued(pool: Any) -> list[bool]:
    """One worker, busy; four tasks queued behind it. Which of the five can be cancelled?"""
    started = threading.Event()
    release = threading.Event()

    def busy() -> None:
        started.set()
        release.wait(PATIENCE)

    try:
        futures = [pool.submit(busy)]
        started.wait(PATIENCE)  # the first task is running now
        futures += [pool.submit(print, "never printed") for _ in range(4)]
        return [f.cancel() for f in futures]
    finally:
        release.set()


def cancellation() -> dict[str, object]:
    out: dict[str, object] = {}
    # Futures: only tasks that have not started can be cancelled; a running one cannot.
    with ThreadPoolExecutor(max_workers=1) as executor:
        out["stdlib_cancelled"] = cancel_queued(executor)
    with anypool.Pool("thread", workers=1) as pool:
        out["anypool_cancelled"] = cancel_queued(pool)  # the same Executor interface
    print(f"cancel(): running task -> {out['stdlib_cancelled'][0]}, queued tasks -> True")

    # asyncio: a running coroutine *can* be cancelled; CancelledError arrives at its await.
    async def cancel_running() -> list[str]:
        log: list[str] = []
        started = asyncio.Event()

        async def worker() -> None:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                log.append("got CancelledError")
                raise  # always re-raise it
            finally:
                log.append("cleaned up")

        task = asyncio.create_task(worker())
        await started.wait()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            log.append("task cancelled")
        return log

    out["asyncio_cancel_running"] = asyncio.run(cancel_running())

    # anypool: stop reading an imap early and close() it - inputs not yet started never run.
    ran = itertools.count()

    def work(i: int) -> int:
        next(ran)
        return i

    results = anypool.imap(work, range(10_000), workers=1, chunksize=1)
    first = [next(results) for _ in range(3)]
    results.close()  # cancels what was read ahead; the pool is shut down
    out["anypool_imap_first"] = first
    out["anypool_imap_ran"] = next(ran)
    print(f"imap closed after {first}: {out['anypool_imap_ran']} of 10000 inputs ran")
    return out


# --- 4. Exceptions across workers (best practice 6) -------------------------------------------
def task(n: int) -> int:
    if n == 5:
        raise ValueError("Error!")
    return n * 2


def exceptions() -> dict[str, object]:
    out: dict[str, object] = {}

    # The guide's way: one try/except per future.
    stdlib: list[object] = []
    with ThreadPoolExecutor() as executor:
        futures = [executor.submit(task, i) for i in range(10)]
        for future in futures:
            try:
                result = future.result()
                stdlib.append(result)
            except Exception as e:
                print(f"Error: {e}")
                stdlib.append(f"Error: {e}")
    out["stdlib"] = stdlib

    # anypool, errors="collect": one Result per input, in order - a value or an error.
    results = anypool.map(task, range(10), errors="collect")
    out["collect_values"] = [r.value for r in results if r.ok]
    out["collect_failed"] = [r.index for r in results if not r.ok]
    failed = next(r for r in results if not r.ok)
    tb = "".join(traceback.format_exception(failed.error))  # the worker's traceback
    print(f"input #{failed.index} failed:\n{tb}")
    out["collect_traceback_names_task"] = 'in task\n    raise ValueError("Error!")' in tb

    # anypool, errors="raise" (the default): the first error is raised as itself (same type),
    # with a note saying which input caused it; work not yet started is cancelled.
    try:
        anypool.map(task, range(10))
    except ValueError as exc:
        out["raise_type"] = type(exc).__name__
        out["raise_notes"] = getattr(exc, "__notes__", [])
        print(f"raised {exc!r} with notes {out['raise_notes']}")

    # In another process, the worker's traceback is attached as the __cause__.
    if has_backend("process"):
        try:
            anypool.map(task, range(10), backend="process")
        except ValueError as exc:
            cause = exc.__cause__
            out["process_cause"] = type(cause).__name__
            out["process_cause_names_task"] = "in task" in str(cause)
    else:
        print("NOTE: the 'process' backend is not available in this anypool yet - skipped")
        out["process_cause"] = "skipped"

    # retries=: a task that fails now and then gets more attempts.
    attempts: dict[int, int] = {}
    lock = threading.Lock()

    def flaky(n: int) -> int:
        with lock:
            attempts[n] = attempts.get(n, 0) + 1
            first_try = attempts[n] == 1
        if n % 3 == 0 and first_try:
            raise ConnectionError(f"transient failure for {n}")
        return n

    out["retry_results"] = anypool.map(flaky, range(6), retries=2, retry_on=ConnectionError)
    out["retry_attempts"] = [attempts[n] for n in range(6)]
    print(f"retries=2: results {out['retry_results']}, attempts {out['retry_attempts']}")
    return out


# --- 5. Producer/consumer with several stages -------------------------------------------------
STOP = object()  # the poison pill


def pipeline_threads(n: int, workers: int = 3) -> dict[str, object]:
    """source -> q1 -> `workers` squarers -> q2 -> one summer. Bounded queues: backpressure."""
    q1: queue.Queue[object] = queue.Queue(maxsize=4)  # a full queue makes the producer wait
    q2: queue.Queue[object] = queue.Queue(maxsize=4)
    collected: list[int] = []

    def produce() -> None:
        for i in range(n):
            q1.put(i)
        for _ in range(workers):
            q1.put(STOP)  # one pill per consumer of q1

    def square() -> None:
        while (item := q1.get()) is not STOP:
            q2.put(item * item)  # type: ignore[operator]
        q2.put(STOP)  # pass the pill on: the collector counts them

    def collect() -> None:
        stops = 0
        while stops < workers:
            item = q2.get()
            if item is STOP:
                stops += 1
            else:
                collected.append(item)  # type: ignore[arg-type]

    threads = [threading.Thread(target=produce)]
    threads += [threading.Thread(target=square) for _ in range(workers)]
    threads += [threading.Thread(target=collect)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    print(f"threads and queues: {len(collected)} squares, first ten as they came {collected[:10]}")
    return {
        "collected_sorted": sorted(collected) == [i * i for i in range(n)],
        "in_order": collected == [i * i for i in range(n)],  # not promised with 3 squarers
        "threads_alive": sum(t.is_alive() for t in threads),
    }


def square(x: int) -> int:
    return x * x


def add_one(x: int) -> int:
    return x + 1


def pipeline_anypool(n: int) -> dict[str, object]:
    # anypool: a Pipeline. Each stage runs on its own pool (its own backend and workers), all
    # stages at once, connected by bounded queues (backpressure), in order. The end of the
    # input travels through the stages by itself (no poison pills); an error in any stage
    # stops every stage and is raised here; leaving the loop early stops and joins them all.
    def source() -> Iterator[int]:
        yield from range(n)

    pipe = (
        anypool.Pipeline(source())
        .map(square, backend="thread", workers=3)
        .map(add_one, backend="thread", workers=2)
    )
    result = pipe.run()
    return {"result_ok": result == [i * i + 1 for i in range(n)]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Advanced concurrency patterns.")
    parser.add_argument("--fast", action="store_true", help="sleep 20x shorter")
    args = parser.parse_args(argv)
    scale = 0.05 if args.fast else 1.0

    print("== 1. Bounded concurrency ==")
    r = bounded_concurrency(1 * scale)
    for k, v in r.items():
        fact(f"bounded_{k}", v)

    print("\n== 2. Timeouts ==")
    # --fast shortens the timeout less than the sleeps: the quick tasks must beat it, even
    # on a loaded machine.
    r = timeouts(0.25 if args.fast else 1.0)
    for k, v in r.items():
        fact(f"timeout_{k}", v)

    print("\n== 3. Cancellation ==")
    for k, v in cancellation().items():
        fact(f"cancel_{k}", v)

    print("\n== 4. Exceptions across workers ==")
    for k, v in exceptions().items():
        fact(f"errors_{k}", v)

    print("\n== 5. Producer/consumer with several stages ==")
    for k, v in pipeline_threads(1000).items():
        fact(f"pipeline_threads_{k}", v)
    for k, v in pipeline_anypool(1000).items():
        fact(f"pipeline_anypool_{k}", v)


if __name__ == "__main__":
    main()
