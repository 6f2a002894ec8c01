"""Process workers kept warm between pools and one-shot calls (private; see the README).

When a process pool shuts down cleanly, its idle healthy workers are parked here instead of
being stopped, and the next pool with the same settings adopts them: its tasks run in a
process that has already imported what the previous pool's tasks imported (numpy, scipy...),
with no start-up at all. This is what makes ten one-shot ``anypool.map(..., backend="process")``
calls cost about what one pool's maps cost.

Safety rules:

* only workers of pools with no ``initializer=``, no ``finalizer=`` and no
  ``max_tasks_per_worker=`` are parked (their state and lifetime belong to their pool), and
  only under the same start method, native-thread cap and CPU share (the key);
* a worker that crashed, overran ``task_timeout``, was recycled or belongs to a terminated or
  broken pool is never parked: it is stopped as before;
* an adopted worker gets a new id and an empty ``current_worker().state``; module globals that
  tasks set are kept (as in any reused worker: joblib's loky, ``ProcessPoolExecutor``);
* a parked worker unused for :data:`IDLE_SECONDS` ends itself (it is told so as it is
  parked: no thread of the program watches the kept workers, so a program stays
  single-threaded between pools, and a later pool can still fork from it); the program
  reaps it the next time it parks or takes a worker, or at exit. It is stopped at once by
  :func:`shutdown_warm_workers`, at interpreter exit, or — if the program is killed — by its
  own parent watch. At most ``workers`` of each kind are kept.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections import deque
from typing import Any

from ._process_worker import PARK

#: a parked worker unused this long (seconds) ends itself
IDLE_SECONDS = 300.0
#: a worker this close to ending itself is not handed out: a new pool's message could
#: arrive after it stopped waiting (a fraction of IDLE_SECONDS, at most a second)
SPARE_SECONDS = 1.0

_lock = threading.Lock()
#: key -> parked (proc, conn, parked at); the key is what makes two pools' workers alike
_parked: dict[Any, deque[tuple[Any, Any, float, bool, Any]]] = {}
#: how long taking a worker parked while still starting may wait for its READY (seconds)
START_WAIT = 10.0
_closed = False  # at interpreter exit: park nothing more


def park(key: Any, handle: tuple[Any, Any, Any], limit: int, starting: bool = False) -> bool:
    """Keep an idle, healthy worker (process, pipe, progress slot) for the next pool with
    ``key``; False if not kept.

    ``starting``: it has not said READY yet (the pool closed while it started); whoever
    takes it reads that READY first.
    """
    _reap()
    proc, conn, extra = handle
    with _lock:
        if _closed:
            return False
        parked = _parked.setdefault(key, deque())
        if len(parked) >= limit:
            return False
        try:
            conn.send_bytes(_park_message())  # it ends itself after IDLE_SECONDS unused
        except (OSError, ValueError):
            return False  # it just died: stopped as any other
        parked.append((proc, conn, time.monotonic(), starting, extra))
    return True


def _park_message() -> bytes:
    return pickle.dumps((PARK, IDLE_SECONDS, None, None), protocol=pickle.HIGHEST_PROTOCOL)


def _spare() -> float:
    return min(SPARE_SECONDS, IDLE_SECONDS / 10)


def take(key: Any) -> tuple[Any, Any, Any] | None:
    """A parked worker for a pool with ``key`` (most recently parked first), or None."""
    _reap()
    while True:
        with _lock:
            parked = _parked.get(key)
            if not parked:
                return None
            proc, conn, _, starting, extra = parked.pop()
        # alive, and nothing unexpected waiting on its pipe (it died, or said something)
        try:
            if starting:  # its first message must be READY (no initializer: nothing else)
                healthy = conn.poll(START_WAIT) and conn.recv_bytes() == b"r"  # READY
            healthy = proc.exitcode is None and not conn.poll() and (not starting or healthy)
        except (OSError, ValueError, EOFError):
            healthy = False
        if healthy:
            return proc, conn, extra
        _stop(proc, conn)


def waiting(key: Any) -> bool:
    """Whether a worker is parked for a pool with ``key``."""
    _reap()
    with _lock:
        return bool(_parked.get(key))


def count() -> int:
    """How many workers are parked now."""
    _reap()
    with _lock:
        return sum(len(d) for d in _parked.values())


def _stop(proc: Any, conn: Any) -> None:
    try:
        conn.send_bytes(b"")  # the worker's "stop" message
    except (OSError, ValueError):
        pass
    proc.join(timeout=5)
    if proc.is_alive():  # pragma: no cover - a stuck worker
        proc.kill()
        proc.join()
    conn.close()
    try:
        proc.close()  # its sentinel descriptor now, not when the garbage collector runs
    except ValueError:  # pragma: no cover - still running (cannot happen after join)
        pass


def _reap() -> None:
    """Take the workers that are ending themselves, or have, off the list, and reap them.

    The oldest of each kind go first: one parked within ``IDLE_SECONDS - _spare()`` ago is
    still waiting for a pool. Those not gone yet are told to stop now (``_stop``).
    """
    expired = []
    with _lock:
        if not _parked:
            return
        due = time.monotonic() - IDLE_SECONDS + _spare()
        for parked in _parked.values():
            while parked and parked[0][2] <= due:
                expired.append(parked.popleft())
    for proc, conn, *_ in expired:
        _stop(proc, conn)


def shutdown_warm_workers() -> int:
    """Stop the process workers anypool keeps warm between pools; returns how many.

    Process pools that shut down cleanly leave their idle workers parked for the next pool
    with the same settings (see the README, "process workers stay warm"); they end
    themselves after 300 s unused and are stopped at exit anyway. Call this to give their
    memory back now, or in a test that checks for leftover child processes.
    """
    with _lock:
        everything = [item for parked in _parked.values() for item in parked]
        _parked.clear()
    for proc, conn, *_ in everything:
        _stop(proc, conn)
    return len(everything)


def _at_exit() -> None:
    global _closed
    with _lock:
        _closed = True
    shutdown_warm_workers()
