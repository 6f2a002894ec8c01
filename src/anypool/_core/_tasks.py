"""What runs inside a worker: calling the user's function, chunks, retries, worker context.

Everything here is the same for every backend (threads, processes, the caller's thread); a
backend only decides *where* these functions run.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import itertools
import operator
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ._exceptions import ExceptionCarrier, WorkerCrashed


@dataclass(frozen=True)
class Retry:
    """How a failing task is retried.

    Args:
        attempts: extra attempts after the first (``retries=`` on the API).
        retry_on: exception types that are retried; others fail at once.
        backoff: seconds before the first retry; doubled after each further failure.
        max_backoff: upper bound of one wait.

    .. versionadded:: 0.1
    """

    attempts: int = 0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    backoff: float = 0.1
    max_backoff: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or isinstance(self.attempts, bool):
            raise TypeError(f"retries must be an int, got {self.attempts!r}")
        if self.attempts < 0:
            raise ValueError(f"retries must be 0 or more, got {self.attempts}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("retry back-off times must be 0 or more seconds")
        for t in self.retry_on:
            if not (isinstance(t, type) and issubclass(t, BaseException)):
                raise TypeError(f"retry_on must hold exception types, got {t!r}")

    def allows(self, exc: BaseException, failures: int) -> bool:
        """The one retry rule, for errors, timeouts and crashes alike.

        After the ``failures``-th failed attempt (1-based) with ``exc``, run the task again
        when attempts remain and ``retry_on`` matches ``exc``: a task's own exception, a
        :class:`~anypool.TaskTimeoutError` for an overrun, a :class:`~anypool.WorkerCrashed`
        for a worker that died running it.
        """
        return failures <= self.attempts and self._matches(type(exc))

    def covers(self, kind: type[BaseException]) -> bool:
        """Whether ``retry_on`` matches failures of this kind (e.g. ``WorkerCrashed``)."""
        return self.attempts > 0 and self._matches(kind)

    def _matches(self, kind: type[BaseException]) -> bool:
        """``retry_on`` matches ``kind``. A kind marked ``retried_only_when_named``
        (:class:`~anypool.MemoryLimitExceeded`) matches only an anypool class that includes
        it (itself or :class:`~anypool.WorkerCrashed`), never a catch-all like ``Exception``."""
        if not getattr(kind, "retried_only_when_named", False):
            return issubclass(kind, self.retry_on)
        return any(issubclass(kind, t) and issubclass(t, WorkerCrashed) for t in self.retry_on)

    def gave_up(self, exc: BaseException, attempts: int) -> None:
        """Note on the final error how many attempts were made (when there was a retry)."""
        if self.attempts == 0:
            return
        if attempts > 1:
            exc.add_note(f"anypool: gave up after {attempts} attempts (retries={self.attempts})")
        elif isinstance(exc, Exception) and not self._matches(type(exc)):
            names = ", ".join(t.__name__ for t in self.retry_on)
            exc.add_note(
                f"anypool: not retried: retry_on=({names}) does not match {type(exc).__name__}"
            )

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure (1-based)."""
        return float(min(self.max_backoff, self.backoff * (2 ** (failures - 1))))


NO_RETRY: Final = Retry()


@dataclass(frozen=True)
class TracedRetry(Retry):
    """A :class:`Retry` that also asks :func:`run_chunk` to time every call (private).

    Tracing rides on the retry settings because they already travel with every chunk to
    every backend (``submit_chunk(fn, items, retry)``): a backend needs no new parameter, and
    one that calls :func:`run_chunk` is traced without knowing it. ``observer`` (the run's
    observers, a ``_observe.RunObservers``) stays in the parent: a worker process gets ``None``.
    """

    observer: Any = field(default=None, compare=False, repr=False)

    def __reduce__(self) -> tuple[Any, ...]:
        return (TracedRetry, (self.attempts, self.retry_on, self.backoff, self.max_backoff))


#: one timed call inside a worker: (index in chunk, attempt, start, end, outcome, error text,
#: worker); start and end are wall-clock seconds (``time.time()``), so calls timed in other
#: processes or on other hosts line up on one timeline; worker is ``(backend, worker id, pid,
#: thread or task name[, host])`` (no host: this machine)
TraceEntry = tuple[int, int, float, float, str, "str | None", tuple[Any, ...]]


@dataclass
class WorkerContext:
    """What a running task can learn about the worker it runs on.

    Get it with :func:`anypool.current_worker` from inside a task.

    Attributes:
        id: the worker's number in its pool (0-based; a replacement worker gets a new number).
        backend: the backend's name (``"thread"``, ``"process"``, ...).
        pid: the worker's process id.
        thread: the name of the worker's thread.
        state: a dict private to this worker: load a model or open a connection once per
            worker (for example in the ``initializer``) and keep it here.
        tasks_done: how many tasks this worker has finished.

    .. versionadded:: 0.1
    """

    id: int
    backend: str
    pid: int = field(default_factory=os.getpid)
    thread: str = field(default_factory=lambda: threading.current_thread().name)
    state: dict[str, Any] = field(default_factory=dict)
    tasks_done: int = 0


_current: contextvars.ContextVar[WorkerContext | None] = contextvars.ContextVar(
    "anypool_current_worker", default=None
)


def current_worker() -> WorkerContext:
    """Return the :class:`WorkerContext` of the worker running the calling task.

    Raises:
        RuntimeError: when called outside a task run by an anypool pool.

    .. versionadded:: 0.1
    """
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError(
            "anypool.current_worker() was called outside a task; call it from inside a "
            "function that a Pool runs"
        )
    return ctx


def set_current_worker(ctx: WorkerContext | None) -> contextvars.Token[WorkerContext | None]:
    """Make ``ctx`` the current worker for this thread or task (private)."""
    return _current.set(ctx)


def reset_current_worker(token: contextvars.Token[WorkerContext | None]) -> None:
    """Undo :func:`set_current_worker` (private)."""
    _current.reset(token)


#: in a process worker: its share of the CPUs (an inner pool's default size)
_cpu_share: list[int] = []
#: the same for one worker thread of a thread pool
_thread_share = threading.local()


def set_cpu_share(n: int, *, thread: bool = False) -> None:
    """Make :func:`available_cpus` answer ``n`` in this process (a process worker's share of
    the CPUs), or with ``thread=True`` in this thread only (a thread worker's)."""
    if thread:
        _thread_share.n = max(1, n)
    else:
        _cpu_share[:] = [max(1, n)]


def machine_cpus() -> int:
    """The CPUs this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def available_cpus() -> int:
    """The CPUs this process may use: its affinity, or inside a process worker that worker's
    share of them (so a pool a task starts is not another full set of workers per worker)."""
    n: int | None = getattr(_thread_share, "n", None)
    if n is not None:
        return n
    if _cpu_share:
        return _cpu_share[0]
    return machine_cpus()


def is_async_callable(fn: Any) -> bool:
    """True for coroutine functions, also behind ``functools.partial`` or as ``__call__``."""
    while hasattr(fn, "func") and hasattr(fn, "args"):  # functools.partial
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - we want the bound method
    return call is not None and inspect.iscoroutinefunction(call)


def call_sync(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """Call ``fn`` in a non-async worker; a coroutine it returns is run to completion.

    Coroutine functions given to thread or process pools therefore work (each call runs on a
    fresh event loop) instead of handing back an un-awaited coroutine.
    """
    result = fn(*args, **kwargs)
    if inspect.iscoroutine(result):
        return run_coroutine(result)
    return result


def run_coroutine(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, on a fresh event loop.

    When an event loop is already running in this thread (a serial map called from an
    ``async def`` or a Jupyter cell), ``asyncio.run`` cannot nest: the coroutine then runs on
    a fresh loop in a helper thread while this thread waits.
    """
    import asyncio  # only when a coroutine turns up: keeps worker start-up light

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, asyncio.run(coro)))
        except BaseException as exc:  # handed to the waiting thread as is
            outcome.append((False, exc))

    t = threading.Thread(target=target, name="anypool-coroutine", daemon=True)
    t.start()
    t.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def call_with_retry(
    fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any], retry: Retry
) -> Any:
    """Call ``fn`` with :func:`call_sync`, retrying as ``retry`` says."""
    if retry.attempts == 0:
        return call_sync(fn, args, kwargs)
    failures = 0
    while True:
        try:
            return call_sync(fn, args, kwargs)
        except BaseException as exc:
            failures += 1
            if not retry.allows(exc, failures):
                retry.gave_up(exc, failures)
                raise
            time.sleep(retry.delay(failures))


class ChunkResult:
    """The outcome of a chunk of calls: values in order, errors by position, timings (private).

    ``trace`` holds one :data:`TraceEntry` per attempt when the chunk was traced, else None.
    """

    __slots__ = ("values", "errors", "wall", "cpu", "trace")

    def __init__(
        self,
        values: list[Any],
        errors: dict[int, BaseException] | None,
        wall: float,
        cpu: float,
        trace: list[TraceEntry] | None = None,
    ) -> None:
        self.values = values
        self.errors = errors
        self.wall = wall
        self.cpu = cpu
        self.trace = trace

    def __getstate__(self) -> tuple[Any, ...]:
        errors = self.errors
        if errors:
            errors = {
                i: (e if isinstance(e, ExceptionCarrier) else ExceptionCarrier(e))  # type: ignore[misc]
                for i, e in errors.items()
            }
        if self.trace is not None:
            return (self.values, errors, self.wall, self.cpu, self.trace)
        return (self.values, errors, self.wall, self.cpu)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.values, errors, self.wall, self.cpu = state[:4]
        self.trace = state[4] if len(state) > 4 else None
        if errors:
            errors = {
                i: (e.rebuild() if isinstance(e, ExceptionCarrier) else e)
                for i, e in errors.items()
            }
        self.errors = errors


class FlatItems(list[Any]):
    """A chunk whose items are single arguments (the map had one input iterable).

    Sending the inputs themselves instead of 1-tuples halves the pickling work and the size
    of a chunk on the process backend.
    """

    __slots__ = ()


def item_args(items: Sequence[Any], i: int) -> tuple[Any, ...]:
    """The positional arguments of item ``i`` of a chunk."""
    item = items[i]
    return (item,) if isinstance(items, FlatItems) else tuple(item)


#: a process worker's progress slot (a one-item shared array, see :func:`set_progress_slot`)
_progress: list[Any] = []
#: chunks of at most this many items mark each item as it starts (about 50 ns an item);
#: larger chunks (tasks of microseconds) only when the parent asks with :data:`TRACK_ALL`
TRACK_MAX = 256
#: the value the parent writes to the slot to have a chunk of any size tracked
TRACK_ALL = -2
#: the value the parent writes before a chunk: no item has started yet
NOT_STARTED = -1


def set_progress_slot(slot: Any) -> None:
    """In a process worker: before each call of a chunk, write the item's index to ``slot[0]``.

    The parent reads it when the worker dies during the chunk, so that only the item that was
    running fails (:class:`~anypool.WorkerCrashed`) and the others are run again.
    """
    _progress[:] = [slot]


def _marked(items: Sequence[Any]) -> Iterator[Any]:
    """``items``, writing each one's index to the progress slot as it is taken (all in C)."""
    slot = _progress[0]
    marks = map(slot.__setitem__, itertools.repeat(0), itertools.count())
    return map(_SECOND, zip(marks, items, strict=False))


_SECOND = operator.itemgetter(1)


def run_chunk(fn: Callable[..., Any], items: Sequence[Any], retry: Retry) -> ChunkResult:
    """Run ``fn`` on every item of a chunk, in order, and collect values and errors.

    Items are argument tuples, or single arguments in a :class:`FlatItems`. The loop runs in
    C (``map``/``starmap`` feeding ``list.extend``); an error is recorded at its position
    and the loop goes on with the next item.
    """
    if type(retry) is TracedRetry:
        return _run_chunk_traced(fn, items, retry)
    values: list[Any] = []
    errors: dict[int, BaseException] | None = None
    flat = isinstance(items, FlatItems)
    t0 = time.perf_counter()
    c0 = time.thread_time()
    if retry.attempts == 0:
        src: Iterable[Any] = items
        if _progress and (len(items) <= TRACK_MAX or _progress[0][0] == TRACK_ALL):
            src = _marked(items)
        it = map(fn, src) if flat else itertools.starmap(fn, src)
        while True:
            try:
                values.extend(it)
                break
            except (Exception, SystemExit) as exc:  # sys.exit() in a task is an error
                if errors is None:
                    errors = {}
                errors[len(values)] = exc
                values.append(None)
        # a coroutine function (or one returning coroutines) is run to completion here
        if values and (
            inspect.iscoroutine(values[0])
            or inspect.iscoroutine(values[-1])
            or is_async_callable(fn)
        ):
            for i, v in enumerate(values):
                if inspect.iscoroutine(v):
                    try:
                        values[i] = run_coroutine(v)
                    except (Exception, SystemExit) as exc:
                        if errors is None:
                            errors = {}
                        errors[i] = exc
                        values[i] = None
    else:
        slot = _progress[0] if _progress else None
        for i in range(len(items)):
            if slot is not None:
                slot[0] = i
            try:
                values.append(call_with_retry(fn, item_args(items, i), {}, retry))
            except (Exception, SystemExit) as exc:  # sys.exit() in a task is an error
                if errors is None:
                    errors = {}
                errors[i] = exc
                values.append(None)
    return ChunkResult(values, errors, time.perf_counter() - t0, time.thread_time() - c0)


def worker_key() -> tuple[Any, ...]:
    """Who runs the calling code, for a trace: ``(backend, worker id, pid, thread, host)``.

    Outside an anypool worker (a backend that sets no :class:`WorkerContext`) the backend is
    ``""`` and the id -1. The host tells workers on other machines apart (their pids may
    collide).
    """
    ctx = _current.get()
    if ctx is None:
        return ("", -1, os.getpid(), threading.current_thread().name, hostname())
    return (ctx.backend, ctx.id, ctx.pid, ctx.thread, hostname())


@functools.cache
def hostname() -> str:
    """This machine's host name (read once)."""
    import socket

    return socket.gethostname()


def error_text(exc: BaseException) -> str:
    """``Type: message`` of an exception, cut to a readable length (for traces)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 500 else text[:497] + "..."


def _run_chunk_traced(fn: Callable[..., Any], items: Sequence[Any], retry: Retry) -> ChunkResult:
    """:func:`run_chunk` that times every attempt of every item (wall clock, in the worker).

    Each attempt gives one :data:`TraceEntry`; an attempt that failed and was tried again has
    the outcome ``"retry"``. Values, errors, retries and their notes are as in the untraced
    path.
    """
    worker = worker_key()
    now = time.time
    observer = getattr(retry, "observer", None)
    if observer is not None:  # the same process: let the parent know where this chunk runs
        observer.chunk_started(items, worker, now())
    log: list[TraceEntry] = []
    values: list[Any] = []
    errors: dict[int, BaseException] | None = None
    t0 = time.perf_counter()
    c0 = time.thread_time()
    slot = _progress[0] if _progress else None
    for i in range(len(items)):
        if slot is not None:
            slot[0] = i
        args = item_args(items, i)
        attempt = 0
        while True:
            attempt += 1
            start = now()
            try:
                value = call_sync(fn, args, {})
            except (Exception, SystemExit) as exc:  # sys.exit() in a task is an error
                end = now()
                if retry.allows(exc, attempt):
                    log.append((i, attempt, start, end, "retry", error_text(exc), worker))
                    time.sleep(retry.delay(attempt))
                    continue
                retry.gave_up(exc, attempt)
                log.append((i, attempt, start, end, "error", error_text(exc), worker))
                if errors is None:
                    errors = {}
                errors[i] = exc
                values.append(None)
            else:
                log.append((i, attempt, start, now(), "ok", None, worker))
                values.append(value)
            break
    return ChunkResult(values, errors, time.perf_counter() - t0, time.thread_time() - c0, log)


async def arun_one_traced(
    fn: Callable[..., Any],
    item: tuple[Any, ...],
    retry: Retry,
    log: list[TraceEntry],
    i: int,
    worker: tuple[Any, ...],
) -> Any:
    """:func:`arun_one` that logs each attempt (a cancelled one as ``"cancelled"``)."""
    failures = 0
    now = time.time
    while True:
        start = now()
        try:
            r = fn(*item)
            if inspect.isawaitable(r):
                r = await r
        except BaseException as exc:
            end = now()
            import asyncio

            if isinstance(exc, asyncio.CancelledError):
                log.append((i, failures + 1, start, end, "cancelled", None, worker))
                raise
            if not retry.allows(exc, failures + 1):
                retry.gave_up(exc, failures + 1)
                log.append((i, failures + 1, start, end, "error", error_text(exc), worker))
                raise
            failures += 1
            log.append((i, failures, start, end, "retry", error_text(exc), worker))
            await asyncio.sleep(retry.delay(failures))
        else:
            log.append((i, failures + 1, start, now(), "ok", None, worker))
            return r


async def arun_one(fn: Callable[..., Any], item: tuple[Any, ...], retry: Retry) -> Any:
    """Await ``fn(*item)`` with retries (asyncio back-off)."""
    failures = 0
    while True:
        try:
            r = fn(*item)
            if inspect.isawaitable(r):
                r = await r
            return r
        except BaseException as exc:
            failures += 1
            if not retry.allows(exc, failures):
                retry.gave_up(exc, failures)
                raise
            import asyncio

            await asyncio.sleep(retry.delay(failures))
