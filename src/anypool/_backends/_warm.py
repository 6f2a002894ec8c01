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
* a parked worker is stopped after :data:`IDLE_SECONDS` unused, by
  :func:`shutdown_warm_workers`, at interpreter exit, or — if the program is killed — by its
  own parent watch. At most ``workers`` of each kind are kept.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

#: a parked worker unused this long (seconds) is stopped
IDLE_SECONDS = 300.0

_lock = threading.Condition(threading.Lock())
#: key -> parked (proc, conn, parked at); the key is what makes two pools' workers alike
_parked: dict[Any, deque[tuple[Any, Any, float, bool, Any]]] = {}
#: how long taking a worker parked while still starting may wait for its READY (seconds)
START_WAIT = 10.0
_reaper: threading.Thread | None = None
_closed = False  # at interpreter exit: park nothing more


def park(key: Any, handle: tuple[Any, Any, Any], limit: int, starting: bool = False) -> bool:
    """Keep an idle, healthy worker (process, pipe, progress slot) for the next pool with
    ``key``; False if not kept.

    ``starting``: it has not said READY yet (the pool closed while it started); whoever
    takes it reads that READY first.
    """
    global _reaper
    with _lock:
        if _closed:
            return False
        parked = _parked.setdefault(key, deque())
        if len(parked) >= limit:
            return False
        proc, conn, extra = handle
        parked.append((proc, conn, time.monotonic(), starting, extra))
        if _reaper is None:
            _reaper = threading.Thread(target=_reap, name="anypool-warm-reaper", daemon=True)
            _reaper.start()
        _lock.notify_all()
    return True


def take(key: Any) -> tuple[Any, Any, Any] | None:
    """A parked worker for a pool with ``key`` (most recently parked first), or None."""
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
    with _lock:
        return bool(_parked.get(key))


def count() -> int:
    """How many workers are parked now."""
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
    """Stop workers parked longer than IDLE_SECONDS; ends when none is parked."""
    global _reaper
    while True:
        expired = []
        with _lock:
            if _reaper is not threading.current_thread():
                return  # replaced (shutdown_warm_workers, then a new park)
            now = time.monotonic()
            soonest: float | None = None
            for parked in _parked.values():
                while parked and now - parked[0][2] >= IDLE_SECONDS:
                    expired.append(parked.popleft())
                if parked:
                    due = parked[0][2] + IDLE_SECONDS
                    soonest = due if soonest is None else min(soonest, due)
            if not expired:
                if soonest is None:
                    _reaper = None
                    return
                _lock.wait(max(0.0, soonest - now))
                continue
        for proc, conn, *_ in expired:
            _stop(proc, conn)


def shutdown_warm_workers() -> int:
    """Stop the process workers anypool keeps warm between pools; returns how many.

    Process pools that shut down cleanly leave their idle workers parked for the next pool
    with the same settings (see the README, "process workers stay warm"); they are stopped
    after 300 s unused and at exit anyway. Call this to give their memory back now, or in
    a test that checks for leftover child processes.
    """
    global _reaper
    with _lock:
        everything = [item for parked in _parked.values() for item in parked]
        _parked.clear()
        reaper, _reaper = _reaper, None
        _lock.notify_all()
    for proc, conn, *_ in everything:
        _stop(proc, conn)
    if reaper is not None and reaper is not threading.current_thread():
        reaper.join()
    return len(everything)


def _at_exit() -> None:
    global _closed
    with _lock:
        _closed = True
    shutdown_warm_workers()
