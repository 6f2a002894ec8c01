"""03 - Asyncio basics: an introduction to async/await.

Follows the guide's "Asyncio and Async/Await" section: a basic async function, concurrent tasks
with gather, create_task, an async context manager and an async generator; then best practice 3
(asyncio for I/O-bound work) and common mistake 4 (blocking the event loop) next to its fix.

Every part shows the standard-library way first, then the anypool way (``anypool.amap``, and
``backend="asyncio"`` to run coroutine functions from ordinary code).

    python examples/03_asyncio_basics.py [--fast]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import anypool


def fact(name: str, value: object) -> None:
    """Print one machine-checkable fact (the tests read these lines)."""
    print(f"FACT {name}={json.dumps(value)}", flush=True)


def has_backend(name: str) -> bool:
    """Is anypool's backend `name` usable here? (The asyncio backend is new.)"""
    try:
        anypool.get_backend(name)
    except (LookupError, ImportError):
        return False
    return True


def overlapped(log: list[tuple[str, str]]) -> bool:
    """True when every "start" record comes before the first "end" record."""
    kinds = [kind for kind, _ in log]
    return "end" not in kinds or "start" not in kinds[kinds.index("end") :]


# --- Basic Async Function ---------------------------------------------------------------------
async def basic_async(delay: float) -> list[str]:
    said: list[str] = []

    async def say_hello(name: str) -> None:
        print(f"Hello, {name}!")
        said.append(f"hello {name}")
        await asyncio.sleep(delay)  # simulates an I/O operation
        print(f"Goodbye, {name}!")
        said.append(f"goodbye {name}")

    # `await` runs one coroutine to the end before the next line: this is still sequential.
    await say_hello("Alice")
    await say_hello("Bob")
    return said


# --- Concurrent Async Tasks: gather -----------------------------------------------------------
async def fetch_data(url: str, delay: float, log: list[tuple[str, str]] | None = None) -> str:
    print(f"Fetching {url}...")
    if log is not None:
        log.append(("start", url))
    await asyncio.sleep(delay)  # simulates a network request
    print(f"Fetched {url}")
    if log is not None:
        log.append(("end", url))
    return f"Data from {url}"


async def concurrent_gather(scale: float) -> dict[str, object]:
    log: list[tuple[str, str]] = []
    # gather runs the three at once; results come back in argument order, not finish order.
    results = await asyncio.gather(
        fetch_data("url1", 2 * scale, log),
        fetch_data("url2", 1 * scale, log),
        fetch_data("url3", 3 * scale, log),
    )
    print("All tasks completed:", results)
    return {
        "results": results,
        "finish_order": [url for kind, url in log if kind == "end"],
        "overlapped": overlapped(log),
    }


# --- Async with Tasks: create_task ------------------------------------------------------------
async def with_tasks(scale: float) -> dict[str, object]:
    log: list[tuple[str, str]] = []

    async def task(name: str, delay: float) -> str:
        print(f"Task {name} starting")
        log.append(("start", name))
        await asyncio.sleep(delay)
        print(f"Task {name} completed")
        log.append(("end", name))
        return f"Result from {name}"

    task1 = asyncio.create_task(task("A", 2 * scale))
    task2 = asyncio.create_task(task("B", 1 * scale))
    task3 = asyncio.create_task(task("C", 3 * scale))
    # create_task schedules; nothing runs until this coroutine gives the loop control.
    started_before_await = len(log)
    await asyncio.sleep(0)  # one turn of the event loop: all three start
    started_after_one_turn = len(log)

    results = await asyncio.gather(task1, task2, task3)
    print("Results:", results)
    return {
        "results": results,
        "started_before_await": started_before_await,
        "started_after_one_turn": started_after_one_turn,
        "overlapped": overlapped(log),
    }


# --- Async Context Manager --------------------------------------------------------------------
class AsyncResource:
    def __init__(self, delay: float, log: list[str]) -> None:
        self.delay = delay
        self.log = log

    async def __aenter__(self) -> AsyncResource:
        print("Acquiring resource...")
        await asyncio.sleep(self.delay)
        self.log.append("acquire")
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        print("Releasing resource...")
        await asyncio.sleep(self.delay)
        self.log.append("release")


async def async_context_manager(scale: float) -> dict[str, object]:
    log: list[str] = []
    async with AsyncResource(0.5 * scale, log):
        print("Using resource...")
        log.append("use")
        await asyncio.sleep(1 * scale)

    # The release also runs when the body raises.
    log_on_error: list[str] = []
    try:
        async with AsyncResource(0.5 * scale, log_on_error):
            log_on_error.append("use")
            raise ValueError("something went wrong while using the resource")
    except ValueError:
        log_on_error.append("caught")
    return {"log": log, "log_on_error": log_on_error}


# --- Async Generators -------------------------------------------------------------------------
async def async_counter(n: int, delay: float) -> AsyncIterator[int]:
    for i in range(n):
        yield i
        await asyncio.sleep(delay)


async def async_generator(scale: float) -> list[int]:
    received = []
    async for value in async_counter(5, 0.5 * scale):
        print(f"Received: {value}")
        received.append(value)
    return received


# --- Best practice 3: asyncio for I/O-bound work, and the anypool way ------------------------
async def fetch_urls(urls: list[str], delays: list[float]) -> list[str]:
    tasks = [fetch_data(url, delay) for url, delay in zip(urls, delays, strict=True)]
    return await asyncio.gather(*tasks)


async def io_bound(scale: float) -> dict[str, object]:
    urls = [f"url{i}" for i in range(1, 6)]
    delays = [0.2 * scale * (5 - i) for i in range(5)]  # the last one is the fastest
    stdlib = await fetch_urls(urls, delays)
    out: dict[str, object] = {"stdlib": stdlib}
    if has_backend("asyncio"):
        # anypool.amap: the same coroutine function over the inputs, in order, with at most
        # `workers` in flight (here 3) - gather has no such limit.
        out["anypool"] = await anypool.amap(fetch_data, urls, delays, workers=3)
    else:
        print("NOTE: the 'asyncio' backend is not available in this anypool yet - skipped")
        out["anypool"] = "skipped"
    return out


def io_bound_from_sync_code(scale: float) -> object:
    """anypool.map runs a coroutine function from ordinary code - no asyncio.run needed."""
    if not has_backend("asyncio"):
        print("NOTE: the 'asyncio' backend is not available in this anypool yet - skipped")
        return "skipped"
    return anypool.map(fetch_data, ["url1", "url2"], [0.1 * scale, 0.1 * scale], backend="asyncio")


# --- Common mistake 4: blocking in async functions --------------------------------------------
async def blocking_in_async(delay: float) -> dict[str, object]:
    # Wrong: time.sleep blocks the whole event loop; nothing else runs meanwhile.
    blocking_log: list[tuple[str, str]] = []

    async def fetch_blocking(name: str) -> None:
        blocking_log.append(("start", name))
        time.sleep(delay)  # Blocking!
        blocking_log.append(("end", name))

    # Correct: await asyncio.sleep gives the loop back while waiting.
    log: list[tuple[str, str]] = []

    async def fetch(name: str) -> None:
        log.append(("start", name))
        await asyncio.sleep(delay)  # Non-blocking
        log.append(("end", name))

    await asyncio.gather(fetch_blocking("a"), fetch_blocking("b"))
    await asyncio.gather(fetch("a"), fetch("b"))
    print(f"time.sleep:    {blocking_log}  <- one after the other")
    print(f"asyncio.sleep: {log}  <- overlapping")

    # When the blocking call cannot be avoided (a library without async support), run it in
    # threads: anypool.amap does that without blocking the loop. Proof: each blocking call
    # waits for a flag that only a coroutine on this loop sets - if the loop were blocked, it
    # would never be set.
    loop_ran = threading.Event()

    def blocking_library_call(i: int) -> bool:
        return loop_ran.wait(timeout=10)

    async def set_flag_from_the_loop() -> None:
        loop_ran.set()

    saw_flag, _ = await asyncio.gather(
        anypool.amap(blocking_library_call, range(3), backend="thread", workers=3),
        set_flag_from_the_loop(),
    )
    print(f"blocking calls in anypool threads saw the loop run: {saw_flag}")
    return {
        "blocking_overlapped": overlapped(blocking_log),
        "nonblocking_overlapped": overlapped(log),
        "amap_threads_loop_free": all(saw_flag),
    }


async def all_parts(scale: float) -> dict[str, Any]:
    print("== Basic Async Function ==")
    basic = await basic_async(1 * scale)
    print("\n== Concurrent Async Tasks (gather) ==")
    gathered = await concurrent_gather(scale)
    print("\n== Async with Tasks (create_task) ==")
    tasks = await with_tasks(scale)
    print("\n== Async Context Manager ==")
    ctx = await async_context_manager(scale)
    print("\n== Async Generators ==")
    gen = await async_generator(scale)
    print("\n== Best practice 3: asyncio for I/O-bound work ==")
    io = await io_bound(scale)
    print("\n== Common mistake 4: blocking in async functions ==")
    blocking = await blocking_in_async(0.5 * scale)
    return {
        "basic": basic,
        "gather": gathered,
        "tasks": tasks,
        "ctx": ctx,
        "gen": gen,
        "io": io,
        "blocking": blocking,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The guide's asyncio examples.")
    parser.add_argument("--fast", action="store_true", help="sleep 20x shorter")
    args = parser.parse_args(argv)
    scale = 0.05 if args.fast else 1.0

    r = asyncio.run(all_parts(scale))
    fact("basic_order", r["basic"])
    fact("gather_results", r["gather"]["results"])
    fact("gather_finish_order", r["gather"]["finish_order"])
    fact("gather_overlapped", r["gather"]["overlapped"])
    fact("tasks_results", r["tasks"]["results"])
    fact("tasks_started_before_await", r["tasks"]["started_before_await"])
    fact("tasks_started_after_one_turn", r["tasks"]["started_after_one_turn"])
    fact("tasks_overlapped", r["tasks"]["overlapped"])
    fact("ctx_log", r["ctx"]["log"])
    fact("ctx_log_on_error", r["ctx"]["log_on_error"])
    fact("gen_received", r["gen"])
    fact("io_stdlib", r["io"]["stdlib"])
    fact("io_anypool", r["io"]["anypool"])
    fact("blocking_overlapped", r["blocking"]["blocking_overlapped"])
    fact("nonblocking_overlapped", r["blocking"]["nonblocking_overlapped"])
    fact("amap_threads_loop_free", r["blocking"]["amap_threads_loop_free"])

    print("\n== anypool: coroutine functions from ordinary code ==")
    fact("sync_anypool", io_bound_from_sync_code(scale))


if __name__ == "__main__":
    main()
