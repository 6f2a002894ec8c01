"""04 - Synchronization: locks, semaphores, queues and events.

Follows the guide's "Synchronization Primitives" section (Lock, Semaphore, Queue with a poison
pill, Event), then best practice 4 and common mistake 2 (shared state without a lock) next to
its fix.

Every part shows the standard-library way first, then the anypool way - which is mostly to
need the primitive less: tasks return values instead of sharing a counter, ``workers=``
bounds concurrency, and ``imap`` is a producer/consumer queue that keeps order.

    python examples/04_synchronization.py [--fast]
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
import time
from collections.abc import Iterator

import anypool


def fact(name: str, value: object) -> None:
    """Print one machine-checkable fact (the tests read these lines)."""
    print(f"FACT {name}={json.dumps(value)}", flush=True)


# --- Locks (best practice 4, common mistake 2) ------------------------------------------------
def run_two_threads(target: object) -> None:
    threads = [threading.Thread(target=target) for _ in range(2)]  # type: ignore[arg-type]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def counter_with_lock(n: int) -> int:
    counter = 0
    lock = threading.Lock()

    def increment() -> None:
        nonlocal counter
        for _ in range(n):
            with lock:  # only one thread at a time runs the read-add-write
                counter += 1

    run_two_threads(increment)
    print(f"Final counter with a lock: {counter}  (should be {2 * n})")
    return counter


def counter_without_lock(n: int) -> int:
    counter = 0

    def increment() -> None:
        nonlocal counter
        for _ in range(n):
            counter += 1  # Bad - race condition: read, add, write can interleave

    run_two_threads(increment)
    print(
        f"Final counter without a lock: {counter}  (may be less than {2 * n}; recent CPythons "
        "rarely switch threads inside `+=`, which makes this bug rare - not absent)"
    )
    return counter


def counter_with_a_wide_race(n: int) -> int:
    """The same bug with the gap between read and write made wide enough to see."""
    counter = 0

    both_ready = threading.Barrier(2)

    def increment() -> None:
        nonlocal counter
        both_ready.wait(timeout=10)  # start both loops at the same moment
        for _ in range(n):
            value = counter  # read
            time.sleep(0)  # let another thread run here, as the OS may at any moment
            counter = value + 1  # write back: overwrites what the other thread wrote

    run_two_threads(increment)
    print(f"Final counter with the race made visible: {counter}  (expected {2 * n})")
    return counter


def count_part(n: int) -> int:
    count = 0
    for _ in range(n):
        count += 1  # a local variable: nothing is shared, nothing to lock
    return count


def anypool_counter(n: int) -> int:
    # anypool: do not share the counter. Each task returns its part, the caller adds them up.
    total = sum(anypool.map(count_part, [n, n], workers=2))
    print(f"anypool: sum of the parts the tasks returned: {total}")
    return total


# --- Semaphores -------------------------------------------------------------------------------
class Occupancy:
    """Counts how many threads are inside a block right now, and the most ever seen."""

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


def semaphores(delay: float) -> dict[str, object]:
    semaphore = threading.Semaphore(2)  # allow 2 threads at a time
    inside = Occupancy()
    done: list[str] = []

    def worker(name: str) -> None:
        with semaphore:
            print(f"{name} acquired semaphore")
            with inside:
                time.sleep(delay)
            print(f"{name} released semaphore")
            done.append(name)

    threads = [threading.Thread(target=worker, args=(f"Thread-{i}",)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # anypool: workers=2 is the limit - no semaphore needed.
    anypool_inside = Occupancy()

    def anypool_worker(name: str) -> str:
        with anypool_inside:
            time.sleep(delay)
        return name

    anypool_done = anypool.map(anypool_worker, [f"Task-{i}" for i in range(5)], workers=2)
    print(f"most inside at once: semaphore {inside.most}, anypool workers=2 {anypool_inside.most}")
    return {
        "done": sorted(done),
        "max_inside": inside.most,
        "anypool_done": anypool_done,
        "anypool_max_inside": anypool_inside.most,
    }


# --- Queues (producer/consumer with a poison pill) --------------------------------------------
def queues(delay: float) -> dict[str, object]:
    consumed: list[int] = []

    def producer(q: queue.Queue[int | None]) -> None:
        for i in range(5):
            q.put(i)
            print(f"Produced: {i}")
            time.sleep(delay)

    def consumer(q: queue.Queue[int | None]) -> None:
        while True:
            item = q.get()
            if item is None:  # poison pill: the producer is done
                break
            print(f"Consumed: {item}")
            consumed.append(item)
            q.task_done()

    q: queue.Queue[int | None] = queue.Queue()
    producer_thread = threading.Thread(target=producer, args=(q,))
    consumer_thread = threading.Thread(target=consumer, args=(q,))
    producer_thread.start()
    consumer_thread.start()
    producer_thread.join()
    q.put(None)  # signal the consumer to stop - after every real item, since the queue is FIFO
    consumer_thread.join()

    # anypool: imap is the queue. The producer is a generator, read lazily (a bounded number
    # of items ahead); the consumer is the for loop; results arrive in the producer's order;
    # the end of the generator is the poison pill.
    def produce() -> Iterator[int]:
        for i in range(5):
            print(f"Produced: {i}")
            yield i

    def work(item: int) -> int:  # runs in the pool's worker threads
        return item * 10

    anypool_consumed = []
    for result in anypool.imap(work, produce(), workers=2):
        print(f"Consumed: {result}")
        anypool_consumed.append(result)
    print(f"anypool imap consumed: {anypool_consumed}")
    return {
        "consumed": consumed,
        "consumer_alive": consumer_thread.is_alive(),
        "anypool_consumed": anypool_consumed,
    }


# --- Event ------------------------------------------------------------------------------------
def events(delay: float) -> dict[str, object]:
    event = threading.Event()
    log: list[str] = []
    lock = threading.Lock()

    def note(what: str) -> None:
        print(what)
        with lock:
            log.append(what)

    def waiter() -> None:
        note("Waiting for event...")
        event.wait()
        note("Event received!")

    def setter() -> None:
        time.sleep(delay)
        note("Setting event...")
        event.set()

    thread1 = threading.Thread(target=waiter)
    thread2 = threading.Thread(target=setter)
    thread1.start()
    thread2.start()
    thread1.join()
    thread2.join()

    # anypool: thread workers share memory, so an Event reaches into the pool. Here the main
    # thread is the setter. (wait(timeout=...) so a mistake cannot hang the example.)
    go = threading.Event()
    with anypool.Pool("thread", workers=2) as pool:
        futures = [pool.submit(go.wait, 10) for _ in range(2)]
        waiting = [f.done() for f in futures]  # still blocked: the event is not set
        go.set()
        received = [f.result() for f in futures]
    print(f"anypool workers waiting before set: {not any(waiting)}; received: {received}")
    return {
        "log": log,
        "anypool_done_before_set": waiting,
        "anypool_received": received,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The guide's synchronization examples.")
    parser.add_argument("--fast", action="store_true", help="sleep 20x shorter")
    args = parser.parse_args(argv)
    scale = 0.05 if args.fast else 1.0

    print("== Locks ==")
    fact("counter_with_lock", counter_with_lock(100_000))
    fact("counter_without_lock", counter_without_lock(100_000))  # shown, never guaranteed
    fact("counter_with_a_wide_race", counter_with_a_wide_race(1_000))
    fact("anypool_counter", anypool_counter(100_000))

    print("\n== Semaphores ==")
    r = semaphores(2 * scale)
    fact("semaphore_done", r["done"])
    fact("semaphore_max_inside", r["max_inside"])
    fact("anypool_max_inside", r["anypool_max_inside"])

    print("\n== Queues ==")
    r = queues(0.5 * scale)
    fact("queue_consumed", r["consumed"])
    fact("queue_consumer_alive", r["consumer_alive"])
    fact("anypool_consumed", r["anypool_consumed"])

    print("\n== Event ==")
    r = events(2 * scale)
    fact("event_log", r["log"])
    fact("anypool_event_received", r["anypool_received"])


if __name__ == "__main__":
    main()
