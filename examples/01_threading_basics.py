"""01 - Threading basics: start here.

Follows the guide's "Threading" section: a basic thread, a thread with arguments, a Thread
subclass and a thread pool; then best practices 1 and 5 (use a pool, use it with `with`) and
common mistakes 3 and 5 (forgetting join, too many threads), each next to its fix.

Every part shows the standard-library way first, as the guide teaches it, then the anypool way.

    python examples/01_threading_basics.py          # the guide's timings
    python examples/01_threading_basics.py --fast   # sleeps 20x shorter (used by the tests)

Lines that start with ``FACT`` state what the example demonstrates; tests/test_examples.py
checks them.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anypool


def fact(name: str, value: object) -> None:
    """Print one machine-checkable fact (the tests read these lines)."""
    print(f"FACT {name}={json.dumps(value)}", flush=True)


class Timeline:
    """A thread-safe list of ("start" | "end", name) records, in the order they happened."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: list[tuple[str, str]] = []

    def add(self, kind: str, name: str) -> None:
        with self._lock:
            self.records.append((kind, name))

    def all_started_before_any_finished(self) -> bool:
        """True when the tasks overlapped: every "start" comes before the first "end"."""
        kinds = [kind for kind, _ in self.records]
        return "end" not in kinds or "start" not in kinds[kinds.index("end") :]


# --- Basic Threading --------------------------------------------------------------------------
def basic_threading(step: float) -> dict[str, object]:
    """Two threads print numbers and letters; their output interleaves."""
    timeline = Timeline()
    printed: list[str] = []

    def print_numbers() -> None:
        timeline.add("start", "numbers")
        for i in range(5):
            print(f"Number: {i}")
            printed.append(str(i))  # list.append is atomic in CPython: no lock needed here
            time.sleep(step)
        timeline.add("end", "numbers")

    def print_letters() -> None:
        timeline.add("start", "letters")
        for letter in "ABCDE":
            print(f"Letter: {letter}")
            printed.append(letter)
            time.sleep(step)
        timeline.add("end", "letters")

    # Create threads, start them, then wait for both with join().
    thread1 = threading.Thread(target=print_numbers)
    thread2 = threading.Thread(target=print_letters)
    thread1.start()
    thread2.start()
    thread1.join()
    thread2.join()
    print("Done!")
    return {
        "numbers": [c for c in printed if c.isdigit()],
        "letters": [c for c in printed if c.isalpha()],
        "overlapped": timeline.all_started_before_any_finished(),
    }


# --- Thread with Arguments --------------------------------------------------------------------
def thread_with_arguments(scale: float) -> dict[str, object]:
    """args=(...) passes arguments to the thread's target."""
    timeline = Timeline()

    def worker(name: str, delay: float) -> None:
        print(f"Worker {name} starting")
        timeline.add("start", name)
        time.sleep(delay)  # stands for waiting on I/O: the GIL is released while sleeping
        print(f"Worker {name} finished")
        timeline.add("end", name)

    thread1 = threading.Thread(target=worker, args=("Alice", 2 * scale))
    thread2 = threading.Thread(target=worker, args=("Bob", 1 * scale))
    thread1.start()
    thread2.start()
    thread1.join()
    thread2.join()

    # anypool: the same worker over several argument lists. map zips its iterables like the
    # builtin map, and waits for all of them - there is nothing to join.
    anypool_timeline = Timeline()

    def anypool_worker(name: str, delay: float) -> str:
        anypool_timeline.add("start", name)
        time.sleep(delay)
        anypool_timeline.add("end", name)
        return f"{name} finished"

    results = anypool.map(
        anypool_worker, ["Alice", "Bob"], [2 * scale, 1 * scale], backend="thread", workers=2
    )
    print("anypool:", results)
    return {
        "overlapped": timeline.all_started_before_any_finished(),
        "anypool_results": results,
        "anypool_overlapped": anypool_timeline.all_started_before_any_finished(),
    }


# --- Thread Class -----------------------------------------------------------------------------
class WorkerThread(threading.Thread):
    """Subclass Thread and override run() - the guide's second way to define a thread."""

    def __init__(self, name: str, delay: float, timeline: Timeline) -> None:
        super().__init__()
        self.name = name  # Thread already has a .name; this sets it
        self.delay = delay
        self.timeline = timeline

    def run(self) -> None:
        print(f"Thread {self.name} is running")
        self.timeline.add("start", self.name)
        time.sleep(self.delay)
        print(f"Thread {self.name} finished")
        self.timeline.add("end", self.name)


def thread_class(scale: float) -> dict[str, object]:
    timeline = Timeline()
    thread1 = WorkerThread("Thread-1", 2 * scale, timeline)
    thread2 = WorkerThread("Thread-2", 2 * scale, timeline)
    thread1.start()
    thread2.start()
    thread1.join()
    thread2.join()
    # With anypool you do not subclass anything: write a plain function and map it.
    return {
        "ran": sorted(name for kind, name in timeline.records if kind == "end"),
        "overlapped": timeline.all_started_before_any_finished(),
    }


# --- Thread Pool (and best practice 1: use ThreadPoolExecutor) --------------------------------
def thread_pool(scale: float) -> dict[str, object]:
    """A pool of 3 threads runs 5 tasks; results come back in submission order."""
    lock = threading.Lock()
    running = 0
    max_running = 0

    def task(n: int) -> str:
        nonlocal running, max_running
        print(f"Task {n} starting")
        with lock:
            running += 1
            max_running = max(max_running, running)
        time.sleep(1 * scale)
        with lock:
            running -= 1
        return f"Task {n} completed"

    # Standard library: submit returns futures; .result() waits for each one in order.
    with ThreadPoolExecutor(max_workers=3) as executor:
        futures = [executor.submit(task, i) for i in range(5)]
        stdlib_results = [future.result() for future in futures]
    for r in stdlib_results:
        print(r)
    stdlib_max = max_running

    # anypool: one call, results in input order, at most `workers` at a time.
    max_running = 0
    anypool_results = anypool.map(task, range(5), workers=3)
    print("anypool:", anypool_results)

    # anypool.Pool is a real concurrent.futures.Executor: the stdlib code works unchanged.
    with anypool.Pool("thread", workers=3) as pool:
        pool_results = [f.result() for f in [pool.submit(task, i) for i in range(5)]]
    return {
        "stdlib_results": stdlib_results,
        "stdlib_max_running": stdlib_max,
        "anypool_results": anypool_results,
        "anypool_max_running": max_running,
        "pool_submit_results": pool_results,
    }


# --- Best practice 5: use context managers for resources --------------------------------------
def context_managers() -> dict[str, object]:
    # Less preferred: you must remember shutdown(), and an exception before it skips it.
    executor = ThreadPoolExecutor()
    executor.submit(print, "used a manually managed executor").result()
    executor.shutdown()

    # Good: `with` shuts the pool down (and joins its threads) even if the block raises.
    with anypool.Pool("thread") as pool:
        pool.submit(print, "used an anypool.Pool in a with block").result()
    try:
        pool.submit(print, "too late")
    except anypool.ClosedPoolError as exc:  # also a RuntimeError, like the stdlib's error
        print(f"after the with block: {type(exc).__name__}: {exc}")
        closed = True
    else:
        closed = False
    return {"submit_after_with_raises": closed}


# --- Common mistake 3: forgetting to join -----------------------------------------------------
def forgetting_join() -> dict[str, object]:
    results: list[str] = []
    gate = threading.Event()

    def task() -> None:
        gate.wait(timeout=10)  # the "work" takes a while: here, until the gate opens
        results.append("done")

    # Wrong: without join() the main thread reads results before the thread has finished.
    thread = threading.Thread(target=task)
    thread.start()
    seen_without_join = list(results)  # the thread is still waiting: nothing yet
    print(f"without join, results = {seen_without_join}")

    # Correct: join() waits until the thread has finished.
    gate.set()
    thread.join()
    seen_after_join = list(results)
    print(f"after join, results = {seen_after_join}")

    # anypool: map returns only when every task is done; nothing to forget.
    return {
        "without_join": seen_without_join,
        "after_join": seen_after_join,
        "anypool": anypool.map(str.upper, ["done"]),
    }


# --- Common mistake 5: creating too many threads ----------------------------------------------
def too_many_threads(n: int) -> dict[str, object]:
    def task(i: int) -> int:
        return threading.get_ident()

    # Wrong: one thread per item - n thread starts, n stacks.
    idents: list[int] = []
    threads = [threading.Thread(target=lambda: idents.append(task(0))) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # Correct: a pool of 10 threads runs all n items.
    with ThreadPoolExecutor(max_workers=10) as executor:
        pool_idents = set(executor.map(task, range(n)))

    # anypool: workers=10; current_worker() tells which worker ran a task.
    worker_ids = set(anypool.map(lambda i: anypool.current_worker().id, range(n), workers=10))
    print(
        f"{n} items: {len(threads)} threads created by hand, "
        f"{len(pool_idents)} used by ThreadPoolExecutor, {len(worker_ids)} anypool workers"
    )
    return {
        "threads_by_hand": len(threads),
        "stdlib_pool_threads": len(pool_idents),
        "anypool_workers": len(worker_ids),
    }


# --- anypool: per-worker state ----------------------------------------------------------------
def per_worker_state(n: int) -> dict[str, object]:
    """Open an expensive resource once per worker, not once per task."""
    opened: list[int] = []
    lock = threading.Lock()

    def open_connection() -> None:  # the initializer runs once in each worker
        worker = anypool.current_worker()
        worker.state["connection"] = f"connection-{worker.id}"
        with lock:
            opened.append(worker.id)

    def query(i: int) -> str:
        return f"{anypool.current_worker().state['connection']} answered {i}"

    with anypool.Pool("thread", workers=4, initializer=open_connection) as pool:
        answers = list(pool.map(query, range(n)))
    print(f"{n} queries, {len(opened)} connections opened; first answer: {answers[0]!r}")
    return {"queries": len(answers), "connections_opened": len(opened)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The guide's threading examples.")
    parser.add_argument("--fast", action="store_true", help="sleep 20x shorter")
    args = parser.parse_args(argv)
    scale = 0.05 if args.fast else 1.0

    print("== Basic Threading ==")
    r = basic_threading(0.5 * scale)
    fact("basic_numbers", r["numbers"])
    fact("basic_letters", r["letters"])
    fact("basic_overlapped", r["overlapped"])

    print("\n== Thread with Arguments ==")
    r = thread_with_arguments(scale)
    fact("args_overlapped", r["overlapped"])
    fact("args_anypool_results", r["anypool_results"])
    fact("args_anypool_overlapped", r["anypool_overlapped"])

    print("\n== Thread Class ==")
    r = thread_class(scale)
    fact("class_ran", r["ran"])
    fact("class_overlapped", r["overlapped"])

    print("\n== Thread Pool ==")
    r = thread_pool(scale)
    fact("pool_stdlib_results", r["stdlib_results"])
    fact("pool_anypool_results", r["anypool_results"])
    fact("pool_submit_results", r["pool_submit_results"])
    fact("pool_stdlib_max_running", r["stdlib_max_running"])
    fact("pool_anypool_max_running", r["anypool_max_running"])

    print("\n== Best practice 5: context managers ==")
    fact("submit_after_with_raises", context_managers()["submit_after_with_raises"])

    print("\n== Common mistake 3: forgetting to join ==")
    r = forgetting_join()
    fact("without_join", r["without_join"])
    fact("after_join", r["after_join"])

    print("\n== Common mistake 5: too many threads ==")
    r = too_many_threads(200 if args.fast else 1000)
    fact("threads_by_hand", r["threads_by_hand"])
    fact("stdlib_pool_threads", r["stdlib_pool_threads"])
    fact("anypool_workers", r["anypool_workers"])

    print("\n== anypool: per-worker state ==")
    r = per_worker_state(100)
    fact("state_queries", r["queries"])
    fact("state_connections_opened", r["connections_opened"])


if __name__ == "__main__":
    main()
