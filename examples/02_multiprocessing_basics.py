"""02 - Multiprocessing basics: working with multiple processes.

Follows the guide's "Multiprocessing" section: Process, a process pool, and sharing data with a
Manager dict and a shared Value; then best practice 2 (ProcessPoolExecutor for CPU-bound work)
and common mistake 1 (threads for CPU-bound work) next to its fix.

Every part shows the standard-library way first, then the anypool way (``backend="process"``).

    python examples/02_multiprocessing_basics.py [--fast]

Everything a child process runs is a top-level function, and the code that starts processes
sits under ``if __name__ == "__main__":`` - with the "spawn" and "forkserver" start methods each
child imports this file again, and without the guard it would start processes of its own.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import anypool


def fact(name: str, value: object) -> None:
    """Print one machine-checkable fact (the tests read these lines)."""
    print(f"FACT {name}={json.dumps(value)}", flush=True)


def has_backend(name: str) -> bool:
    """Is anypool's backend `name` usable here? (The process backend is new.)"""
    try:
        anypool.get_backend(name)
    except (LookupError, ImportError):
        return False
    return True


def skip(what: str) -> None:
    print(f"NOTE: {what} is not available in this anypool yet - skipped", flush=True)


def overlapped(records: list[tuple[str, str]]) -> bool:
    """True when every "start" record comes before the first "end" record."""
    kinds = [kind for kind, _ in records]
    return "end" not in kinds or "start" not in kinds[kinds.index("end") :]


# --- Basic Multiprocessing --------------------------------------------------------------------
def worker(name: str, delay: float, events: Any) -> None:
    print(f"Process {name} starting (pid {os.getpid()})", flush=True)
    events.put(("start", name))
    time.sleep(delay)
    print(f"Process {name} finished", flush=True)
    events.put(("end", name))


def basic_multiprocessing(delay: float) -> dict[str, object]:
    # Processes do not share memory, so the children report through a multiprocessing.Queue.
    events = multiprocessing.Queue()
    process1 = multiprocessing.Process(target=worker, args=("Process-1", delay, events))
    process2 = multiprocessing.Process(target=worker, args=("Process-2", delay, events))
    process1.start()
    process2.start()
    records = [events.get(timeout=30) for _ in range(4)]  # read before join: see the docs
    process1.join()
    process2.join()
    events.close()
    events.join_thread()
    print("All processes completed")
    return {
        "exitcodes": [process1.exitcode, process2.exitcode],
        "overlapped": overlapped(records),
    }


# --- Process Pool -----------------------------------------------------------------------------
def compute_square(n: int) -> int:
    print(f"Computing square of {n} in pid {os.getpid()}", flush=True)
    return n * n


def slow_square(n: int, delay: float) -> int:
    time.sleep(delay)
    return compute_square(n)


def process_pool(delay: float) -> dict[str, object]:
    numbers = [1, 2, 3, 4, 5]
    with ProcessPoolExecutor(max_workers=3) as executor:
        stdlib = list(executor.map(slow_square, numbers, [delay] * len(numbers)))
    for result in stdlib:
        print(f"Result: {result}")
    out: dict[str, object] = {"stdlib": stdlib}
    if has_backend("process"):
        # anypool: the same call as for threads, with backend="process".
        out["anypool"] = anypool.map(
            slow_square, numbers, [delay] * len(numbers), backend="process", workers=3
        )
        print("anypool:", out["anypool"])
    else:
        skip("the 'process' backend")
        out["anypool"] = "skipped"
    return out


# --- Sharing Data Between Processes -----------------------------------------------------------
def unsafe_increment(shared_dict: Any, shared_value: Any, times: int) -> None:
    # The guide's worker. Each `+=` is a read, then a write: two processes can read the same
    # old value and one increment is lost, even though Value and the Manager dict are shared.
    for _ in range(times):
        shared_dict["count"] += 1
        shared_value.value += 1


def safe_increment(shared_dict: Any, dict_lock: Any, shared_value: Any, times: int) -> None:
    # The fix: hold a lock across the read and the write.
    for _ in range(times):
        with dict_lock:
            shared_dict["count"] += 1
        with shared_value.get_lock():  # a Value carries its own lock
            shared_value.value += 1


def sharing_data(n_processes: int, times: int) -> dict[str, object]:
    expected = n_processes * times
    with multiprocessing.Manager() as manager:
        # The guide's version, unprotected.
        shared_dict = manager.dict({"count": 0})
        shared_value = multiprocessing.Value("i", 0)
        processes = [
            multiprocessing.Process(
                target=unsafe_increment, args=(shared_dict, shared_value, times)
            )
            for _ in range(n_processes)
        ]
        for p in processes:
            p.start()
        for p in processes:
            p.join()
        print(
            f"unlocked: dict {shared_dict['count']}, value {shared_value.value} "
            f"(expected {expected}; lower means increments were lost)"
        )
        unlocked = (shared_dict["count"], shared_value.value)

        # Fixed: a Manager lock for the dict, the Value's own lock for the Value.
        shared_dict = manager.dict({"count": 0})
        dict_lock = manager.Lock()
        shared_value = multiprocessing.Value("i", 0)
        processes = [
            multiprocessing.Process(
                target=safe_increment, args=(shared_dict, dict_lock, shared_value, times)
            )
            for _ in range(n_processes)
        ]
        for p in processes:
            p.start()
        for p in processes:
            p.join()
        locked = (shared_dict["count"], shared_value.value)
        print(f"locked:   dict {locked[0]}, value {locked[1]} (expected {expected})")

    out: dict[str, object] = {"expected": expected, "unlocked": unlocked, "locked": locked}
    if has_backend("process"):
        # anypool: share nothing. Each task returns its part; the caller adds them up.
        parts = anypool.map(count_part, [times] * n_processes, backend="process")
        out["anypool"] = sum(parts)
        print(f"anypool:  sum of returned parts {out['anypool']} (expected {expected})")
    else:
        skip("the 'process' backend")
        out["anypool"] = "skipped"
    return out


def count_part(times: int) -> int:
    count = 0
    for _ in range(times):
        count += 1  # a local variable: no other process can touch it
    return count


# --- Common mistake 1 / best practice 2: CPU-bound work ---------------------------------------
def cpu_task(n: int) -> int:
    return sum(i**2 for i in range(n))


def cpu_bound(n: int, tasks: int) -> dict[str, object]:
    data = [n + i for i in range(tasks)]

    t0 = time.perf_counter()
    serial = [cpu_task(x) for x in data]
    t_serial = time.perf_counter() - t0

    # Wrong: threads take turns holding the GIL, so CPU-bound work is no faster.
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=tasks) as executor:
        threaded = list(executor.map(cpu_task, data))
    t_threads = time.perf_counter() - t0

    # Correct: processes each have their own interpreter and GIL, and run on several cores.
    t0 = time.perf_counter()
    with ProcessPoolExecutor() as executor:
        processes = list(executor.map(cpu_task, data))
    t_processes = time.perf_counter() - t0

    print(
        f"{tasks} x cpu_task({n}) on {os.cpu_count()} CPUs: serial {t_serial:.2f}s, "
        f"threads {t_threads:.2f}s, processes {t_processes:.2f}s (includes process start-up)"
    )
    out: dict[str, object] = {
        "serial": serial,
        "threads": threaded,
        "processes": processes,
    }
    if has_backend("process"):
        out["anypool"] = anypool.map(cpu_task, data, backend="process")
    else:
        skip("the 'process' backend")
        out["anypool"] = "skipped"
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The guide's multiprocessing examples.")
    parser.add_argument("--fast", action="store_true", help="shorter sleeps, smaller inputs")
    args = parser.parse_args(argv)
    # Process start-up takes a few milliseconds, so --fast keeps the sleeps at 1/10.
    scale = 0.1 if args.fast else 1.0

    print("== Basic Multiprocessing ==")
    r = basic_multiprocessing(2 * scale)
    fact("basic_exitcodes", r["exitcodes"])
    fact("basic_overlapped", r["overlapped"])

    print("\n== Process Pool ==")
    r = process_pool(1 * scale)
    fact("pool_stdlib", r["stdlib"])
    fact("pool_anypool", r["anypool"])

    print("\n== Sharing Data Between Processes ==")
    r = sharing_data(4, 200 if args.fast else 1000)
    fact("share_expected", r["expected"])
    fact("share_locked", r["locked"])
    fact("share_anypool", r["anypool"])

    print("\n== Common mistake 1: threads for CPU-bound work ==")
    r = cpu_bound(500_000 if args.fast else 2_000_000, 4)
    fact("cpu_serial", r["serial"])
    fact("cpu_threads", r["threads"])
    fact("cpu_processes", r["processes"])
    fact("cpu_anypool", r["anypool"])


if __name__ == "__main__":
    main()
