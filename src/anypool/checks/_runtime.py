"""Runtime warnings: :func:`watch` (blocked event loops) and CPU-bound work on threads.

How a blocked loop is found: each watched loop runs a tiny heartbeat callback every
``threshold / 4`` seconds, and a watchdog thread checks that the heartbeat keeps coming. When
it has not run for ``threshold`` seconds while the loop is running, something on the loop's
thread is blocking it; the watchdog then samples that thread's current stack
(``sys._current_frames()``) and reports the innermost frame of user code (not the standard
library, not site-packages, not anypool). The cost is one short callback and one thread
wake-up per ``threshold / 4`` seconds per loop.

Warnings are issued from the watchdog thread with :func:`warnings.warn_explicit`, pointing at
the blocking code's file and line, and logged on the ``anypool`` logger. When a warnings
filter turns one into an error, the error is raised when the :func:`watch` block (or
:meth:`LoopWatcher.close`) exits, in the thread that exits it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import functools
import logging
import os
import sys
import sysconfig
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

from .._core import _observe
from .._core._observe import RunObserver
from ._warnings import BlockedEventLoopWarning, CPUBoundInThreadsWarning

__all__ = (
    "LoopWatcher",
    "ThreadCPUCheck",
    "ThreadCPURun",
    "report_thread_task",
    "watch",
    "watch_loop",
    "watch_threshold",
    "watching",
)

_logger = logging.getLogger("anypool")
# A library logs to its logger and leaves output to the application (logging HOWTO); without
# this, Python's last-resort handler would print every record next to the warning.
_logger.addHandler(logging.NullHandler())

# CPU-bound-in-threads: evaluate after this many tasks and this much wall time in total.
MIN_TASKS = 20
MIN_WALL_SECONDS = 0.05
CPU_RATIO = 0.9
# Pool-level check (ThreadCPURun). With the GIL only one thread runs Python at a time, so a
# pool of threads whose work is CPU-bound keeps the process at about one CPU, however many
# threads it has: process CPU time / wall time ~1.0. Well above 1.0 means the work releases the
# GIL (C code running in parallel), so threads do help. The pool's share (CPU time of its
# finished chunks / process CPU time) makes sure it is the pool's work that keeps the CPU busy,
# not the caller's own thread; it is lower than the real share while chunks are running.
POOL_CPU_RATIO = 0.75
POOL_CPU_RATIO_MAX = 1.25
POOL_CPU_SHARE = 0.5
# the clocks of ThreadCPURun (module attributes so that tests can drive them)
_wall_clock = time.perf_counter
_process_clock = time.process_time


def _library_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {
        os.path.normcase(os.path.realpath(paths[key]))
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if key in paths
    }
    found.add(os.path.normcase(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))
    return tuple(sorted(path + os.sep for path in found))


_LIBRARY_PREFIXES = _library_prefixes()


@functools.lru_cache(maxsize=1024)
def _is_user_file(filename: str) -> bool:
    if filename.startswith("<"):
        return False
    real = os.path.normcase(os.path.realpath(filename))
    return not real.startswith(_LIBRARY_PREFIXES)


def _user_frame(frame: FrameType | None) -> FrameType | None:
    """Return the innermost frame of user code on a stack (or the innermost frame)."""
    innermost = frame
    while frame is not None:
        if _is_user_file(frame.f_code.co_filename):
            return frame
        frame = frame.f_back
    return innermost


def _is_gil_enabled() -> bool:
    check: Callable[[], bool] | None = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else check()


def _warn_at(
    message: str,
    category: type[Warning],
    filename: str,
    lineno: int,
    module_globals: dict[str, Any] | None,
    registry: dict[Any, Any] | None,
) -> None:
    # module_globals is not passed on: for a script's __main__ (no __spec__.loader) Python
    # 3.12+ would add a DeprecationWarning; the source line is found from the file name.
    module = (module_globals or {}).get("__name__", "anypool")
    warnings.warn_explicit(
        message, category, filename, lineno, module=str(module), registry=registry
    )


class LoopWatcher:
    """Watches one event loop and warns when it is blocked; made by :func:`watch_loop`.

    Use it as a context manager, or call :meth:`close` when done.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, threshold: float, thread_id: int | None = None
    ) -> None:
        if threshold <= 0:
            raise ValueError(f"threshold must be positive, got {threshold!r}")
        self.loop = loop
        self.threshold = threshold
        self._interval = threshold / 4
        self._thread_id = thread_id
        now = time.monotonic()
        self._last_beat = now
        self._running_since: float | None = now if thread_id is not None else None
        self._reported = False
        self._timer: asyncio.TimerHandle | None = None
        self._registry: dict[Any, Any] = {}
        self._errors: list[Warning] = []
        self._closed = threading.Event()
        loop.call_soon_threadsafe(self._beat)
        self._thread = threading.Thread(
            target=self._watchdog, name="anypool-loop-watchdog", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> LoopWatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(raise_errors=exc is None)

    def restart(self) -> None:
        """Note that the loop is (re)starting now, on the calling thread (its own thread)."""
        now = time.monotonic()
        self._thread_id = threading.get_ident()
        self._last_beat = now
        self._running_since = now

    def _beat(self) -> None:
        # Runs on the loop's thread.
        self._thread_id = threading.get_ident()
        self._last_beat = time.monotonic()
        self._reported = False
        if not self._closed.is_set():
            self._timer = self.loop.call_later(self._interval, self._beat)

    def _watchdog(self) -> None:
        while not self._closed.wait(self._interval):
            try:
                if self.loop.is_closed():
                    return
                self._poll()
            except Exception:  # pragma: no cover - never let the watchdog die silently
                _logger.exception("anypool loop watchdog failed")
                return

    def _poll(self) -> None:
        now = time.monotonic()
        if not self.loop.is_running():
            self._running_since = None
            return
        if self._running_since is None:
            self._running_since = now
            return
        blocked = now - max(self._last_beat, self._running_since)
        if blocked > self.threshold and not self._reported and self._thread_id is not None:
            self._reported = True
            self._report(blocked)

    def _report(self, blocked: float) -> None:
        assert self._thread_id is not None
        frame = _user_frame(sys._current_frames().get(self._thread_id))
        if frame is None:  # the loop's thread is gone
            return
        code = frame.f_code
        where = f"{code.co_filename}:{frame.f_lineno}"
        message = (
            f"event loop blocked for more than {self.threshold:g} s "
            f"(so far {blocked:.3f} s) by {code.co_qualname}() at {where}; "
            "use `await` with a non-blocking API, or `await asyncio.to_thread(...)`"
        )
        _logger.warning(message)
        try:
            _warn_at(
                message,
                BlockedEventLoopWarning,
                code.co_filename,
                frame.f_lineno or code.co_firstlineno,
                frame.f_globals,
                self._registry,
            )
        except Warning as exc:  # a filter turned it into an error: raise it at close()
            self._errors.append(exc)

    def close(self, *, raise_errors: bool = True) -> None:
        """Stop watching.

        Args:
            raise_errors: Raise the first warning that a warnings filter turned into an error
                while watching.
        """
        if not self._closed.is_set():
            self._closed.set()
            if self._thread is not threading.current_thread():
                self._thread.join()
            timer = self._timer
            if timer is not None and not self.loop.is_closed():
                try:
                    self.loop.call_soon_threadsafe(timer.cancel)
                except RuntimeError:  # pragma: no cover - closed meanwhile
                    pass
        if raise_errors and self._errors:
            error, self._errors = self._errors[0], []
            raise error

    def take_errors(self) -> list[Warning]:
        """Return and forget the warnings that filters turned into errors."""
        errors, self._errors = self._errors, []
        return errors


def watch_loop(loop: asyncio.AbstractEventLoop, threshold: float = 0.1) -> LoopWatcher:
    """Warn whenever ``loop`` is blocked for more than ``threshold`` seconds.

    Works with any event loop that has ``call_soon_threadsafe``/``call_later`` (uvloop
    included). Call it from any thread.

    Args:
        loop: The event loop to watch.
        threshold: Seconds a single callback may hold the loop before a warning.

    Returns:
        The watcher; close it (or use it as a context manager) to stop watching.

    Raises:
        ValueError: ``threshold`` is not positive.
    """
    thread_id = threading.get_ident() if asyncio._get_running_loop() is loop else None
    return LoopWatcher(loop, threshold, thread_id)


@dataclass(eq=False)
class _Session:
    threshold: float

    def __post_init__(self) -> None:
        self.watchers: dict[asyncio.AbstractEventLoop, LoopWatcher] = {}
        self.lock = threading.Lock()

    def attach(self, loop: asyncio.AbstractEventLoop, thread_id: int) -> None:
        with self.lock:
            watcher = self.watchers.get(loop)
            if watcher is None:
                self.watchers[loop] = LoopWatcher(loop, self.threshold, thread_id)
            else:
                watcher.restart()
            for old in [lp for lp in self.watchers if lp.is_closed()]:
                self.watchers.pop(old).close(raise_errors=False)

    def close(self) -> list[Warning]:
        errors: list[Warning] = []
        with self.lock:
            for watcher in self.watchers.values():
                watcher.close(raise_errors=False)
                errors.extend(watcher.take_errors())
            self.watchers.clear()
        return errors


_sessions: list[_Session] = []
_sessions_lock = threading.Lock()
_original_run_forever: Callable[[asyncio.BaseEventLoop], None] | None = None


def _run_forever(self: asyncio.BaseEventLoop) -> None:
    with _sessions_lock:
        sessions = list(_sessions)
    for session in sessions:
        session.attach(self, threading.get_ident())
    assert _original_run_forever is not None
    _original_run_forever(self)


def _install() -> None:
    # Loops started while watching announce themselves: BaseEventLoop.run_forever is wrapped
    # (asyncio.run and run_until_complete go through it). Other loops: use watch_loop().
    global _original_run_forever
    if _original_run_forever is None:
        _original_run_forever = asyncio.BaseEventLoop.run_forever
        asyncio.BaseEventLoop.run_forever = functools.wraps(_original_run_forever)(  # type: ignore[method-assign]
            _run_forever
        )


def _uninstall() -> None:
    global _original_run_forever
    if _original_run_forever is not None:
        asyncio.BaseEventLoop.run_forever = _original_run_forever  # type: ignore[method-assign, assignment]
        _original_run_forever = None


def watching() -> bool:
    """True while a :func:`watch` block is active (in any thread)."""
    return bool(_sessions)


def watch_threshold() -> float | None:
    """The smallest threshold of the active :func:`watch` blocks (None when none is)."""
    with _sessions_lock:
        return min((session.threshold for session in _sessions), default=None)


@contextmanager
def watch(threshold: float = 0.1) -> Iterator[None]:
    """Warn about concurrency mistakes while the block runs.

    While active, every asyncio event loop that starts running (``asyncio.run``,
    ``run_until_complete``, ``run_forever``), and the loop running in the calling thread if
    there is one, is watched: when a callback blocks it for more than ``threshold`` seconds, a
    :class:`~anypool.BlockedEventLoopWarning` names the function and ``file:line`` that blocked
    it, and the same text is logged on the ``anypool`` logger. Loops already running in other
    threads, or loops not derived from :class:`asyncio.BaseEventLoop` (uvloop), are watched
    with :func:`watch_loop`; the own loop of an asyncio :class:`~anypool.Pool` created in the
    block is watched whatever its kind.

    anypool's thread pools are checked too: a map whose work measures CPU-bound on a GIL build
    gets one :class:`~anypool.CPUBoundInThreadsWarning` per function and pool (see
    :class:`ThreadCPURun`). ``Pool(..., debug=True)`` turns the same checks on for one pool.

    Args:
        threshold: Seconds a single callback may hold an event loop before a warning.

    Yields:
        Nothing; use ``with anypool.watch():``.

    Raises:
        ValueError: ``threshold`` is not positive.
        BlockedEventLoopWarning: On exit, when a warnings filter turned a warning into an
            error while watching (``-W error``).

    Example:
        >>> import asyncio, anypool
        >>> with anypool.watch(threshold=0.1):
        ...     asyncio.run(main())  # doctest: +SKIP
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold!r}")
    session = _Session(threshold)
    with _sessions_lock:
        _sessions.append(session)
        _install()
    try:
        running = asyncio._get_running_loop()
        if running is not None:
            session.attach(running, threading.get_ident())
        yield
    finally:
        with _sessions_lock:
            _sessions.remove(session)
            if not _sessions:
                _uninstall()
        errors = session.close()
    if errors:
        raise errors[0]


@dataclass
class _TaskStats:
    tasks: int = 0
    cpu: float = 0.0
    wall: float = 0.0
    warned: bool = False


_task_stats: dict[object, _TaskStats] = {}
_task_stats_lock = threading.Lock()


def _unwrap(fn: Callable[..., object]) -> Callable[..., object]:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def report_thread_task(cpu_seconds: float, wall_seconds: float, fn: Callable[..., Any]) -> None:
    """Record one task that ran on a thread, and warn if ``fn`` is CPU-bound.

    For work that runs on **one thread at a time** (your own worker thread, a single-thread
    executor): the per-task ratio CPU time / wall time is only meaningful then, since with the
    GIL and N busy threads each task gets about 1/N of the CPU. anypool's own thread pools do
    not use it: ``Pool(debug=True)`` and :func:`watch` compare the summed CPU time of all the
    pool's threads with the elapsed wall time instead (:class:`ThreadCPUCheck`).

    Per function, after at least 20 tasks and 50 ms of wall time in total, if CPU time / wall
    time is at least 0.9 and the interpreter has a GIL, one
    :class:`~anypool.CPUBoundInThreadsWarning` is issued (pointing at the function's
    definition) and logged on the ``anypool`` logger; it is issued once per function.

    Args:
        cpu_seconds: CPU time the task used on its thread (``time.thread_time()`` difference).
        wall_seconds: Wall-clock time the task took (``time.perf_counter()`` difference).
        fn: The function the task ran (``functools.partial`` objects are unwrapped).
    """
    target = _unwrap(fn)
    key = _fn_key(target)
    with _task_stats_lock:
        stats = _task_stats.setdefault(key, _TaskStats())
        stats.tasks += 1
        stats.cpu += max(cpu_seconds, 0.0)
        stats.wall += max(wall_seconds, 0.0)
        if (
            stats.warned
            or stats.tasks < MIN_TASKS
            or stats.wall < MIN_WALL_SECONDS
            or stats.cpu / stats.wall < CPU_RATIO
            or not _is_gil_enabled()
        ):
            return
        stats.warned = True
        tasks, ratio = stats.tasks, stats.cpu / stats.wall
    name = getattr(target, "__qualname__", repr(target))
    message = (
        f"{name}() is CPU-bound ({ratio:.0%} CPU over {tasks} tasks) and runs on threads; with "
        "the GIL, threads cannot run it in parallel. Use processes: "
        'anypool.Pool(backend="process") or concurrent.futures.ProcessPoolExecutor'
    )
    _warn_cpu_bound(target, message, stacklevel=3)


def _warn_cpu_bound(target: Callable[..., object], message: str, stacklevel: int) -> None:
    """Log ``message`` and issue it as a CPUBoundInThreadsWarning at ``target``'s definition."""
    _logger.warning(message)
    code = getattr(target, "__code__", None)
    if code is not None:
        _warn_at(
            message,
            CPUBoundInThreadsWarning,
            code.co_filename,
            code.co_firstlineno,
            getattr(target, "__globals__", None),
            None,
        )
    else:
        warnings.warn(message, CPUBoundInThreadsWarning, stacklevel=stacklevel)


def _fn_key(target: Callable[..., object]) -> object:
    code = getattr(target, "__code__", None)
    if code is not None:
        return code
    return (getattr(target, "__module__", None), getattr(target, "__qualname__", repr(target)))


def _available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


class ThreadCPUCheck:
    """One pool's check for CPU-bound work on its threads (used by ``Pool(debug=True)``).

    It remembers which functions it warned about, so each function gets at most one
    :class:`~anypool.CPUBoundInThreadsWarning` per pool. Each ``map`` gets its own
    :class:`ThreadCPURun` from :meth:`start`, which collects the evidence.
    """

    def __init__(self) -> None:
        self._warned: set[object] = set()
        self._lock = threading.Lock()

    def start(self, fn: Callable[..., object], applies: Callable[[], bool]) -> ThreadCPURun | None:
        """Begin collecting evidence for one map of ``fn``; None when it cannot apply.

        Args:
            fn: The function the map runs.
            applies: Says whether the chunk just submitted went to threads (with 2 or more
                workers); asked once per chunk, so ``backend="auto"`` is followed once it
                chose.

        Returns:
            The run to feed with :meth:`ThreadCPURun.add`, or None on a free-threaded build,
            with a single CPU (processes could not help either) or when ``fn`` was already
            reported by this pool.
        """
        if not _is_gil_enabled() or _available_cpus() < 2:
            return None
        target = _unwrap(fn)
        key = _fn_key(target)
        with self._lock:
            if key in self._warned:
                return None
        return ThreadCPURun(self, target, key, applies)

    def _claim(self, key: object) -> bool:
        with self._lock:
            if key in self._warned:
                return False
            self._warned.add(key)
            return True


class ThreadCPURun(RunObserver):
    """The evidence of one map on threads: CPU time against elapsed wall time.

    A run observer (``anypool._core._observe``): the map engine reports each chunk it submits
    and hands out, as it does to the tracer.

    Per-task CPU / wall ratios do not work here: with the GIL and N busy threads each task
    gets about 1/N of the CPU, so a CPU-bound task measures ~1/N. Pool-level totals do not
    have that problem: CPU-bound work keeps one thread running Python at any moment, so the
    process uses about one CPU (process CPU time ~ wall time), whatever N is, and most of that
    CPU time is spent in the pool's tasks.
    """

    __slots__ = (
        "_check",
        "_target",
        "_key",
        "_applies",
        "_start",
        "_start_cpu",
        "_cpu",
        "_tasks",
        "_done",
        "_counted",
    )

    def __init__(
        self,
        check: ThreadCPUCheck,
        target: Callable[..., object],
        key: object,
        applies: Callable[[], bool],
    ) -> None:
        self._check = check
        self._target = target
        self._key = key
        self._applies = applies
        self._start: float | None = None
        self._start_cpu = 0.0
        self._cpu = 0.0
        self._tasks = 0
        self._done = False
        self._counted: set[int] = set()  # the chunks in flight that count (went to threads)

    def chunk_submitted(self, fut: cf.Future[Any], base: int, items: Sequence[Any]) -> None:
        """A chunk was submitted: remember it when it counts (see :meth:`submitted`)."""
        if self.submitted():
            self._counted.add(id(fut))

    def chunk_done(self, fut: cf.Future[Any]) -> None:
        """A chunk is handed out: add its CPU time when it counted and ran to the end."""
        if id(fut) not in self._counted:
            return
        self._counted.discard(id(fut))
        if fut.cancelled() or fut.exception() is not None:
            return
        res = fut.result()
        self.add(res.cpu, len(res.values))

    def submitted(self) -> bool:
        """Called after each chunk is submitted; True when it counts (it went to threads).

        The first chunk that counts starts the clocks (wall and process CPU time).
        """
        if self._done or not self._applies():
            return False
        if self._start is None:
            self._start = _wall_clock()
            self._start_cpu = _process_clock()
        return True

    def add(self, cpu_seconds: float, tasks: int) -> None:
        """Record a finished chunk that counts; warn once the work measures CPU-bound.

        Args:
            cpu_seconds: The chunk's CPU time on its thread (``time.thread_time()``).
            tasks: How many inputs the chunk held.

        Raises:
            CPUBoundInThreadsWarning: When a warnings filter turns the warning into an error.
        """
        if self._done or self._start is None:
            return
        self._cpu += max(cpu_seconds, 0.0)
        self._tasks += tasks
        if self._tasks < MIN_TASKS:
            return
        elapsed = _wall_clock() - self._start
        if elapsed < MIN_WALL_SECONDS:
            return
        process_cpu = _process_clock() - self._start_cpu
        ratio = process_cpu / elapsed
        if not POOL_CPU_RATIO <= ratio <= POOL_CPU_RATIO_MAX:
            return
        if self._cpu < POOL_CPU_SHARE * process_cpu:
            return
        self._done = True
        if not self._check._claim(self._key):
            return
        target = self._target
        name = getattr(target, "__qualname__", repr(target))
        message = (
            f"{name}() is CPU-bound on threads: over {self._tasks} tasks and {elapsed:.2f} s "
            f"the process used {ratio:.0%} of one CPU, at least {self._cpu / process_cpu:.0%} in "
            "these tasks; with the GIL, Python threads cannot use more than one CPU, so more "
            'threads cannot make it faster. Use processes: backend="process" '
            '(anypool.Pool("process") or concurrent.futures.ProcessPoolExecutor)'
        )
        _warn_cpu_bound(target, message, stacklevel=4)


def _reset_thread_task_stats() -> None:
    """Forget every recorded task (for tests)."""
    with _task_stats_lock:
        _task_stats.clear()


_observe.register_runtime_checks(sys.modules[__name__])  # the pool finds the checks here
