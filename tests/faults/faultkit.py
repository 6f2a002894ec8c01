"""Functions and objects that fail at one step of a task's trip (imported by the workers).

They live in a module of their own, importable in the worker processes, so that they travel
by reference like a user's own module-level code.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from typing import Any

BIG = 50_000_000  # bytes: a large payload in flight


def identity(x: Any) -> Any:
    return x


def first(x: Any, _rest: Any) -> Any:
    return x


def _raise_value_error(msg: str) -> None:
    raise ValueError(msg)


def _raise_system_exit(code: int) -> None:
    raise SystemExit(code)


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


# -- objects that fail when they are rebuilt (in the worker for arguments, in the parent for
#    results) ---------------------------------------------------------------------------------
class LoadRaises:
    def __reduce__(self) -> tuple[Any, ...]:
        return (_raise_value_error, ("cannot rebuild me",))


class LoadExits:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os._exit, (7,))


class LoadKilled:
    def __reduce__(self) -> tuple[Any, ...]:
        return (_kill_self, ())


class LoadSystemExit:
    def __reduce__(self) -> tuple[Any, ...]:
        return (_raise_system_exit, (6,))


class SetstateRaises:
    def __setstate__(self, state: Any) -> None:
        raise ValueError("__setstate__ refused")

    def __getstate__(self) -> dict[str, int]:
        return {"x": 1}


# -- objects that fail when they are pickled (in the parent for arguments, in the worker for
#    results) ----------------------------------------------------------------------------------
class DumpRaises:
    def __reduce__(self) -> tuple[Any, ...]:
        raise ValueError("cannot pickle me")


class DumpExits:
    def __reduce__(self) -> tuple[Any, ...]:
        os._exit(8)


# -- exceptions ------------------------------------------------------------------------------
class UnpicklableError(Exception):
    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.lock = threading.Lock()


class NeedsTwoArgs(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"needs {a} and {b}")


class BadStrError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class ExitsWhenPickled(Exception):
    def __reduce__(self) -> tuple[Any, ...]:
        os._exit(9)


# -- tasks -----------------------------------------------------------------------------------
def do(kind: str) -> Any:
    """Fail while running, or return something that fails on its way back."""
    if kind == "os._exit":
        os._exit(3)
    if kind == "sigkill":
        _kill_self()
    if kind == "segfault":
        ctypes.string_at(0)
    if kind == "raise":
        raise ValueError("plain error")
    if kind == "sys.exit":
        sys.exit(4)
    if kind == "raise-unpicklable":
        raise UnpicklableError("has a lock")
    if kind == "raise-needs-two-args":
        raise NeedsTwoArgs(1, 2)
    if kind == "raise-bad-str":
        raise BadStrError()
    if kind == "raise-exits-when-pickled":
        raise ExitsWhenPickled("bye")
    returns: dict[str, Any] = {
        "return-lock": threading.Lock,
        "return-dump-raises": DumpRaises,
        "return-dump-exits": DumpExits,
        "return-load-raises": LoadRaises,
        "return-load-system-exit": LoadSystemExit,
        "return-big": lambda: b"r" * BIG,
        "return-big-then-load-raises": lambda: (b"r" * BIG, LoadRaises()),
    }
    return returns[kind]()


class _KillAfterPickling:
    """A 50 MB result that kills its worker ``delay`` seconds after it was pickled."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def __reduce__(self) -> tuple[Any, ...]:
        threading.Timer(self.delay, _kill_self).start()
        return (bytes, (b"k" * BIG,))


def big_result_then_killed(delay: float) -> Any:
    return _KillAfterPickling(delay)


def crash_until(marker_dir: str, name: str, crashes: int) -> str:
    """Crash the worker the first ``crashes`` times it is called with this name."""
    path = os.path.join(marker_dir, name)
    n = len(os.listdir(marker_dir)) if os.path.isdir(marker_dir) else 0
    if n < crashes:
        with open(f"{path}-{n}", "x"):
            pass
        os._exit(11)
    return "ok"


def thread_pool_inside(n: int) -> list[int]:
    """A process task that uses a thread pool itself."""
    import anypool

    with anypool.Pool("thread", workers=2) as pool:
        return list(pool.map(abs, range(-n, 0)))


def read_fifo(path: str) -> str:
    """Block until the test opens the named pipe for writing, then return what it wrote."""
    with open(path) as f:
        return f.read()


def dispatcher_bug(*_args: Any) -> bool:
    raise RuntimeError("injected bug in the dispatcher")


# -- resources of this process, for the hygiene checks --------------------------------------
_SHM_PREFIXES = ("sem.mp-", "psm_", "wnsm_")


def resources() -> dict[str, Any]:
    """Threads, live child processes, open descriptors and /dev/shm entries, right now.

    Process workers kept warm for a next pool belong to no pool: they are given back first.
    """
    import psutil

    import anypool

    anypool.shutdown_warm_workers()

    helpers = ("forkserver", "resource_tracker")
    from conftest import fork_server_pid

    server = fork_server_pid()
    children = set()
    for c in psutil.Process().children(recursive=True):
        if c.pid == server:  # the fork server, also when it is a fork of this program
            continue
        try:
            if c.status() == psutil.STATUS_ZOMBIE:
                continue
            if any(h in " ".join(c.cmdline()) for h in helpers):
                continue
        except psutil.Error:
            continue
        children.add(c.pid)
    return {
        "threads": threading.active_count(),
        "children": children,
        "fds": len(os.listdir("/proc/self/fd")),
        # what multiprocessing's semaphores and shared memory (ours included) are named;
        # other programs' entries (joblib's folders, loky's semaphores) are theirs
        "shm": {n for n in os.listdir("/dev/shm") if n.startswith(_SHM_PREFIXES)}
        if os.path.isdir("/dev/shm")
        else set(),
    }


def _mapped_by_others(names: set[str]) -> set[str]:
    """Those of ``names`` (entries of /dev/shm) that a process outside this one's tree maps.

    /dev/shm is machine-wide: another program (a second test run, say) creates and removes
    its own semaphores and segments there while we count. An entry that another process holds
    mapped is that process's, not a leak of ours.
    """
    import psutil

    if not names:
        return set()
    me = psutil.Process()
    ours = {me.pid} | {c.pid for c in me.children(recursive=True)}
    found: set[str] = set()
    for proc in psutil.process_iter():
        if proc.pid in ours:
            continue
        try:
            for m in proc.memory_maps(grouped=True):
                base = os.path.basename(m.path)
                if m.path.startswith("/dev/shm/") and base in names:
                    found.add(base)
        except psutil.Error:
            continue
    return found


def same_resources(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """``after == before``, except /dev/shm entries that other programs came and went with.

    Entries that disappeared are someone else's (ours are only ever added by a leak), and a
    new entry that another process maps is that process's.
    """
    new_shm = after["shm"] - before["shm"]
    new_shm -= _mapped_by_others(new_shm)
    if new_shm:
        return False
    return all(after[k] == before[k] for k in before if k != "shm")


def resource_diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {before[k]!r} -> {after[k]!r}" for k in before if before[k] != after[k])


def faulty(i: int) -> int:
    """Crash (process), raise, or succeed, by input."""
    if i == 3:
        raise ValueError("bad input")
    if i == 5 and _in_worker_process():
        os._exit(3)
    return i


def faulty_ok(i: int, backend: str) -> bool:
    return not (i == 3 or (i == 5 and backend == "process"))


def _in_worker_process() -> bool:
    import anypool

    try:
        return anypool.current_worker().backend == "process"
    except RuntimeError:
        return False


def record_and_hang(marker_dir: str) -> None:
    """Leave a marker per run, then block until the worker is ended (bounded at 60 s)."""
    import time

    with open(os.path.join(marker_dir, f"run-{len(os.listdir(marker_dir))}"), "x"):
        pass
    time.sleep(60)


def exit_on(bad: int, marker_dir: str | None, i: int) -> int:
    """Record the run (when ``marker_dir``), then kill the worker on input ``bad``."""
    if marker_dir is not None:
        n = 0
        while True:
            try:
                with open(os.path.join(marker_dir, f"ran-{i}-{n}"), "x"):
                    break
            except FileExistsError:
                n += 1
    if i == bad:
        os._exit(3)
    return i


def spin_ms(i: int) -> int:
    """About a millisecond of CPU, then the input back."""
    import time

    end = time.perf_counter() + 0.001
    while time.perf_counter() < end:
        pass
    return i
