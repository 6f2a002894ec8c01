"""``Pool``: one ``concurrent.futures.Executor`` over every backend."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import functools
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Unpack, overload

from . import _observe, _tracing
from ._abc import Backend, PoolStats, WorkerSpec
from ._engine import MapOptions, MapRun, run_async, run_sync
from ._exceptions import ClosedPoolError
from ._lifecycle import FINALIZER_TIMEOUT, InnerThreads, limit_in_process
from ._memory import check_memory_options
from ._observe import RunObserver, RunObservers
from ._options import (
    Errors,
    MapKwargs,
    _MapKwargsNoErrors,
    check_backend_options,
    check_callable,
    check_timeout,
    check_workers,
    map_options,
    merge_map_options,
    pool_options,
)
from ._pool_sync import PoolSync
from ._rate import RateLimiter
from ._registry import get_backend
from ._result import Result
from ._tasks import ChunkResult

if TYPE_CHECKING:
    from ..checks._runtime import LoopWatcher, ThreadCPUCheck, ThreadCPURun
    from ._sync import SyncFactory
    from ._tracing import Trace


def _runtime_checks(load: bool) -> ModuleType | None:
    """The runtime-checks module; imported only for ``debug=True`` (start-up stays light).

    Without ``load`` it is returned only when already imported (it registers itself with
    ``_observe`` as it is): ``watch()`` lives there, so when nothing imported it, no
    ``watch()`` block can be active.
    """
    if load:
        from ..checks import _runtime  # noqa: F401 - registers itself with _observe
    found: ModuleType | None = _observe.runtime_checks()
    return found


T = TypeVar("T")


def _args(iterables: tuple[Iterable[Any], ...]) -> tuple[Iterator[Any], int | None]:
    if not iterables:
        raise TypeError("map() needs at least one iterable of inputs")
    for it in iterables:
        if not hasattr(it, "__iter__") and not hasattr(it, "__getitem__"):
            raise TypeError(f"inputs must be iterable, got {type(it).__name__} {it!r}")
    total: int | None = None
    if all(hasattr(it, "__len__") for it in iterables):
        total = min(len(it) for it in iterables)  # type: ignore[arg-type]
    if len(iterables) == 1:
        return iter(iterables[0]), total  # items are the arguments themselves (FlatItems)
    return zip(*iterables, strict=False), total


class _MapState:
    """The chunk source behind a ``map``/``imap`` iterator; the pool can finish it at shutdown.

    Items are handed out by a plain generator (:func:`_items`) so the per-item cost stays a
    generator step; the lock is taken once per chunk.
    """

    def __init__(self, pool: Pool, chunks: Iterator[list[Any]]) -> None:
        self._pool = pool
        self._chunks = chunks
        self._lock = threading.RLock()
        self._buffer: deque[list[Any]] = deque()
        self._error: BaseException | None = None
        self._done = False

    def next_chunk(self) -> list[Any] | None:
        with self._lock:
            if self._buffer:
                return self._buffer.popleft()
            if self._error is not None:
                err, self._error = self._error, None
                raise err
            if self._done:
                return None
            try:
                return next(self._chunks)
            except StopIteration:
                self._finish()
                return None
            except BaseException:
                self._finish()
                raise

    def _finish(self) -> None:
        self._done = True
        self._pool._states.discard(self)

    def close(self) -> None:
        """Stop: cancel what has not started and forget the rest."""
        with self._lock:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
            self._finish()

    def drain(self) -> None:
        """Run the remaining inputs now and keep their outcomes for a later reader."""
        with self._lock:
            if self._done:
                return
            try:
                for chunk in self._chunks:
                    self._buffer.append(chunk)
            except BaseException as exc:
                self._error = exc
            self._finish()


def _items(state: _MapState) -> Iterator[Any]:
    """Hand out the items of each chunk, dropping each from the chunk as it goes: a result
    the caller let go of is freed at once (no local or list here keeps it)."""
    try:
        while True:
            chunk = state.next_chunk()
            if chunk is None:
                return
            chunk.reverse()
            pop = chunk.pop
            while chunk:
                yield pop()
    finally:
        state.close()


def _executor_backend(
    executor: cf.Executor, workers: int | None, options: dict[str, Any]
) -> tuple[type[Backend], int | None, dict[str, Any]]:
    """``backend=`` an Executor: the backend class, the worker count and the options."""
    if isinstance(executor, Pool):
        raise TypeError(
            "backend= got an anypool.Pool; a Pool is already anypool's policy over a backend. "
            "Call its methods (pool.map(...)), or pass it as pool= where a function takes one"
        )
    if "executor" in options:
        raise TypeError("pass the executor once, as backend=, not also as executor=")
    from .._backends._executor import backend_for, executor_workers

    if workers is None:
        workers = executor_workers(executor)
    return backend_for(executor), workers, {**options, "executor": executor}


class Pool(PoolSync, cf.Executor):
    """A pool of workers of one backend, and a real ``concurrent.futures.Executor``.

    Args:
        backend: where tasks run: ``"auto"`` (default: measure the work and choose),
            ``"serial"`` (in the caller, for debugging), ``"thread"``, ``"process"``,
            ``"asyncio"`` or ``"dask"`` (a Dask cluster; ``pip install anypool[dask]``); or
            any ``concurrent.futures.Executor`` you made, which anypool drives and leaves
            running (a Pool on an executor cannot stop running tasks or run an initializer).
        workers: how many workers (asyncio: tasks in flight). Default: threads
            ``min(32, CPUs + 4)``, processes the CPUs this process may use, asyncio 100.
        max_workers: another name for ``workers`` (the ``concurrent.futures`` word).
        initializer: called once in each worker before its first task.
        initargs: arguments for ``initializer``.
        max_tasks_per_worker: replace a worker after it ran this many tasks.
        finalizer: called once in each worker as it stops: at shutdown, when
            ``max_tasks_per_worker`` recycles it, or when the pool is terminated while the
            worker is idle (close connections, flush per-worker state). An error in it is
            logged on the ``anypool`` logger with the worker's id. *Added in 0.2.*
        finalizer_timeout: seconds a finalizer may run (default 10); a process worker
            still finalizing then is killed, a thread worker is abandoned. *Added in 0.2.*
        inner_threads: threads each worker's native libraries (BLAS, OpenMP) may use:
            ``"auto"`` (default: process workers get ``CPUs // workers``, at least 1; the
            other backends leave them alone), a number, or ``None`` (never touch them).
            *Added in 0.2.*
        max_memory_per_worker: process workers only: a worker whose private resident memory
            is above this after a task is replaced before it takes more work (its finalizer
            runs; no work is lost). Bytes, or a string: ``"2GB"``, ``"500MB"``, ``"1.5GiB"``.
            Counted in :meth:`stats`. *Added in 0.3.*
        task_memory_limit: process workers only: a task whose worker grows past this while
            running it is stopped (the worker is ended and replaced) and that task alone
            fails with :class:`~anypool.MemoryLimitExceeded` (a
            :class:`~anypool.WorkerCrashed`), retried only when ``retry_on`` names one of
            those. Same units as ``max_memory_per_worker``. *Added in 0.3.*
        chunksize: inputs per task in ``map``; default: chosen from measured task time.
        progress: show a tqdm progress bar in ``map``/``imap`` (a dict is passed to tqdm).
        errors: ``"raise"`` (the first error stops the map) or ``"collect"`` (each input
            gives a :class:`~anypool.Result`).
        task_timeout: seconds one task may run; it then fails with ``TaskTimeoutError``.
        retries: how many more times a failing task is tried (a timed-out one too).
        retry_on: which exception types are retried (default: ``Exception``).
        rate: the default ``rate=`` of this pool's maps: at most this many task starts
            (``"50/s"``, ``"300/min"``, ``"1000/h"``, a number per second, or a
            :class:`~anypool.RateLimiter`). One budget is shared by all the pool's maps; a
            ``rate=`` given to one map call gives that call its own. ``submit`` is not paced.
        debug: warn about concurrency mistakes while the pool runs: its event loop (asyncio
            backend) is watched for callbacks that block it longer than 100 ms
            (:class:`~anypool.BlockedEventLoopWarning`), and work on its threads is checked
            for being CPU-bound on a GIL build (:class:`~anypool.CPUBoundInThreadsWarning`).
            Both are also logged on the ``anypool`` logger. ``with anypool.watch():`` turns
            the same checks on for every pool. A warning that a filter turned into an error is
            raised by ``shutdown()``.
        trace: record every task this pool runs (worker, input, start, end, outcome): a path
            ending in ``.html`` (a timeline page) or ``.json`` (Chrome-trace JSON), written
            when the pool shuts down, or an :class:`~anypool.Trace` to record into.
            ``with anypool.trace(path):`` records every pool used inside it instead.
        **options: backend options (processes: ``start_method``; dask: ``address``, a
            scheduler address, or ``client``, a ``distributed.Client``).

    Use it with ``with`` (or ``async with``) so its workers are always stopped and joined.

    .. note:: ``map`` is lazy and bounded: unlike ``ThreadPoolExecutor.map`` it does not read
       the whole input up front. Inputs not yet run when the pool shuts down (``wait=True``)
       are run then, so no work is silently skipped.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        backend: str | cf.Executor = "auto",
        workers: int | None = None,
        *,
        max_workers: int | None = None,
        # BEGIN GENERATED Pool options (python -m anypool._core._gen)
        chunksize: int | None = None,
        progress: bool | dict[str, Any] = False,
        errors: Errors = "raise",
        task_timeout: float | None = None,
        retries: int = 0,
        retry_on: tuple[type[BaseException], ...] | type[BaseException] = (Exception,),
        rate: str | float | RateLimiter | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = None,
        finalizer: Callable[..., object] | None = None,
        finalizer_timeout: float = FINALIZER_TIMEOUT,
        inner_threads: InnerThreads = "auto",
        max_memory_per_worker: int | str | None = None,
        task_memory_limit: int | str | None = None,
        debug: bool = False,
        trace: str | os.PathLike[str] | Trace | None = None,
        # END GENERATED Pool options
        **options: Any,
    ) -> None:
        # BEGIN GENERATED Pool option values (python -m anypool._core._gen)
        option_values: dict[str, Any] = {
            "chunksize": chunksize,
            "progress": progress,
            "errors": errors,
            "task_timeout": task_timeout,
            "retries": retries,
            "retry_on": retry_on,
            "rate": rate,
            "initializer": initializer,
            "initargs": initargs,
            "max_tasks_per_worker": max_tasks_per_worker,
            "finalizer": finalizer,
            "finalizer_timeout": finalizer_timeout,
            "inner_threads": inner_threads,
            "max_memory_per_worker": max_memory_per_worker,
            "task_memory_limit": task_memory_limit,
            "debug": debug,
            "trace": trace,
        }
        # END GENERATED Pool option values
        #: this pool's own trace (``trace=``): written to its path when the pool shuts down
        self._trace = _tracing.as_trace(trace)
        self._trace_owned = self._trace is not None and not isinstance(trace, _tracing.Trace)
        n = check_workers(workers, max_workers)
        setup = pool_options(option_values)
        cls: type[Backend]
        if isinstance(backend, cf.Executor):
            cls, n, options = _executor_backend(backend, n, options)
        else:
            cls = get_backend(backend)
        self._backend_cls = cls
        check_backend_options(options, cls.name, cls.option_names)
        check_memory_options(
            cls,
            {
                name
                for name in ("max_memory_per_worker", "task_memory_limit")
                if setup[name] is not None
            },
        )
        self._defaults = map_options(option_values)
        spec = WorkerSpec(
            workers=n if n is not None else cls.default_workers(),
            initializer=setup["initializer"],
            initargs=setup["initargs"],
            max_tasks_per_worker=setup["max_tasks_per_worker"],
            options=options,
            finalizer=setup["finalizer"],
            finalizer_timeout=setup["finalizer_timeout"],
            inner_threads=setup["inner_threads"],
            max_memory_per_worker=setup["max_memory_per_worker"],
            task_memory_limit=setup["task_memory_limit"],
        )
        self._backend: Backend = cls(spec)
        self._backend.configure(workers_given=n is not None)
        self._states: set[_MapState] = set()
        self._sync: dict[str, SyncFactory] = {}  # kind -> factory, made on first use
        #: the observers of this pool's traced submits (one recorder while the traces stay)
        self._submit_observers: tuple[_tracing.RunRecorder, RunObservers] | None = None
        self._shutdown_lock = threading.Lock()
        self._closed = False
        self._workers_given = n
        self._debug: bool = setup["debug"]
        self._cpu_check: ThreadCPUCheck | None = None
        self._loop_watchers: list[LoopWatcher] = []
        self._backend.on_choose = self._watch_backend  # auto, asyncio: watch what they start
        #: inner_threads=N on a backend that runs tasks in this process: capped while open
        self._native_limit: Any = None
        self._backend.start()
        if isinstance(setup["inner_threads"], int) and cls.shares_memory:
            self._native_limit = limit_in_process(setup["inner_threads"])
        self._watch_backend(self._backend)

    # -- debug checks -------------------------------------------------------------------
    @property
    def debug(self) -> bool:
        """Whether this pool warns about concurrency mistakes (``debug=True``)."""
        return self._debug

    def _watch_backend(self, backend: Backend) -> None:
        """Watch the backend's event loop, if it has one, with ``debug=True`` or ``watch()``.

        ``watch()`` itself watches every ``asyncio.BaseEventLoop`` that starts; other loops
        (uvloop, the backend's default when installed) are watched here while it is active.
        """
        loop = backend.event_loop
        if loop is None:
            return
        runtime = _runtime_checks(load=self._debug)
        if runtime is None:
            return
        threshold: float | None = 0.1 if self._debug else None
        if threshold is None and not isinstance(loop, asyncio.BaseEventLoop):
            threshold = runtime.watch_threshold()
        if threshold is None:
            return
        with self._shutdown_lock:
            if not self._closed:
                self._loop_watchers.append(runtime.watch_loop(loop, threshold))

    def _cpu_run(self, fn: Callable[..., Any]) -> ThreadCPURun | None:
        """The CPU-bound-in-threads check for one map, when ``debug`` or ``watch()`` is on."""
        backend = self._backend.chosen  # auto before its choice: None (it may choose threads)
        if backend is not None and not backend.runs_on_threads:
            return None
        runtime = _runtime_checks(load=self._debug)
        if runtime is None or not (self._debug or runtime.watching()):
            return None
        check = self._cpu_check
        if check is None:
            check = self._cpu_check = runtime.ThreadCPUCheck()
        run: ThreadCPURun | None = check.start(fn, self._on_threads)
        return run

    def _on_threads(self) -> bool:
        """True when this pool's work runs on 2 or more threads (auto: once it chose them)."""
        backend = self._backend.chosen
        return backend is not None and backend.runs_on_threads and backend.effective_workers() >= 2

    def _stop_watching(self, raise_errors: bool) -> None:
        with self._shutdown_lock:
            watchers, self._loop_watchers = self._loop_watchers, []
            owned, self._trace_owned = self._trace_owned, False
            limit, self._native_limit = self._native_limit, None
        if limit is not None:  # inner_threads=N on an in-process backend: undo the cap
            limit.restore_original_limits()
        if owned and self._trace is not None:  # Pool(trace="run.html"): write it now
            self._trace.stop()
            self._trace.save()
        errors: list[Warning] = []
        for watcher in watchers:
            watcher.close(raise_errors=False)
            errors.extend(watcher.take_errors())
        if raise_errors and errors:
            raise errors[0]

    # -- introspection ----------------------------------------------------------------
    @property
    def backend(self) -> str:
        """The backend's name."""
        return self._backend.name

    @property
    def workers(self) -> int:
        """How many tasks can run at the same time."""
        return self._backend.effective_workers()

    def stats(self) -> PoolStats:
        """Counts of what the pool did to its workers so far (memory recycles and kills).

        .. versionadded:: 0.3
        """
        return self._backend.stats()

    @property
    def _max_workers(self) -> int:
        """How many tasks may run at once, under the attribute name that libraries taking
        an Executor read from ``ThreadPoolExecutor``/``ProcessPoolExecutor`` (dask's local
        schedulers size their window of submitted tasks by it).

        ``auto`` before its choice: the size a ``submit()`` would get (its calls go to
        threads), not the single measuring thread.
        """
        if self._backend.chosen is None:  # auto before its choice
            return self._workers_given or get_backend("thread").default_workers()
        return self.workers

    def explain(self) -> str:
        """Say which backend runs the work and why (``backend="auto"`` explains its choice)."""
        said = self._backend.explain()
        if said is not None:
            return said
        return (
            f"backend={self.backend!r} with {self.workers} worker(s), as you chose "
            "(pass backend='auto' to let anypool measure the work and choose)"
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<anypool.Pool backend={self.backend!r} workers={self.workers} {state}>"

    # -- shared state and synchronisation ---------------------------------------------
    def _factory(self, kind: str | None = None) -> SyncFactory:
        from . import _sync

        kind = kind or _sync.kind_for(self._backend)
        with self._shutdown_lock:
            if self._closed:
                raise ClosedPoolError("cannot make a primitive on a pool that was shut down")
            factory = self._sync.get(kind)
            if factory is None:
                factory = self._sync[kind] = self._backend.sync_factory(kind)
        return factory

    def _close_sync(self, wait: bool = True) -> None:
        with self._shutdown_lock:
            factories, self._sync = list(self._sync.values()), {}
        for f in factories:
            f.close(wait)

    # -- Executor ---------------------------------------------------------------------
    # Overloads type the results; see the note in _api.py (coroutine functions first, then
    # errors="collect" -> Result[T], then errors= unknown). Docstrings are on the implementations.
    @overload
    def submit(
        self, fn: Callable[..., Coroutine[Any, Any, T]], /, *args: Any, **kwargs: Any
    ) -> cf.Future[T]: ...

    @overload
    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> cf.Future[T]: ...

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        """Schedule ``fn(*args, **kwargs)``; return a ``concurrent.futures.Future``.

        A coroutine function is awaited (asyncio backend) or run to completion in the worker
        (the others): the future holds what it returns, never a coroutine.
        """
        check_callable(fn)
        if self._closed:
            raise ClosedPoolError("cannot submit to a pool that was shut down")
        self._backend.check_callable(fn)
        self._backend.avoid_caller_loop()  # fut.result() may be awaited in this very thread
        d = self._defaults
        traces = _tracing.traces_for(self._trace)
        if traces:
            return self._submit_traced(traces, fn, args, kwargs)
        if d.retry.attempts == 0:
            return self._backend.submit(fn, args, kwargs, timeout=d.task_timeout)
        call = functools.partial(fn, **kwargs) if kwargs else fn
        inner = self._backend.submit_chunk(call, [args], d.retry, timeout=d.task_timeout)
        return _unwrap_single(inner)

    @overload
    def broadcast(
        self, fn: Callable[..., Coroutine[Any, Any, T]], /, *args: Any
    ) -> dict[int, T]: ...

    @overload
    def broadcast(self, fn: Callable[..., T], /, *args: Any) -> dict[int, T]: ...

    def broadcast(self, fn: Callable[..., Any], /, *args: Any) -> dict[int, Any]:
        """Run ``fn(*args)`` exactly once on every live worker; return ``{worker id: result}``.

        Use it to reach per-worker state (``anypool.current_worker().state``): collect each
        worker's part of a result, reload a model, close a connection. Inside ``fn``,
        :func:`anypool.current_worker` is the worker it runs on. Like Dask's
        ``Client.run``.

        Which workers: serial and asyncio have one (one entry); thread and process: every
        worker that is running (none yet: ``workers`` of them are started first, and their
        ``initializer`` runs before ``fn``); dask: every worker of the cluster. A call waits
        until its worker is free: during a map, it runs between two of that worker's tasks
        (threads: behind the tasks already queued). asyncio and dask run it at once.
        Broadcast calls do not count towards ``max_tasks_per_worker``. With
        ``backend="auto"``, a map must have chosen the backend first.

        Raises:
            Exception: the error ``fn`` raised, with a note naming the worker (the one with the
                lowest id when several failed; the note lists the others).
            ClosedPoolError: the pool was shut down.
            RuntimeError: called where waiting would deadlock (inside one of the pool's own
                thread tasks, or on its event loop: use :meth:`abroadcast` there).

        .. versionadded:: 0.2
        """
        check_callable(fn)
        if self._closed:
            raise ClosedPoolError("cannot broadcast to a pool that was shut down")
        if self._backend.owns_current_thread():
            raise RuntimeError(
                "pool.broadcast() was called from one of this pool's own workers (or a "
                "done-callback): it waits for every worker, this one included, so it would "
                "wait for itself; call it from the code that owns the pool"
            )
        self._backend.check_blocking_call()
        return self._backend.broadcast(fn, args)

    @overload
    async def abroadcast(
        self, fn: Callable[..., Coroutine[Any, Any, T]], /, *args: Any
    ) -> dict[int, T]: ...

    @overload
    async def abroadcast(self, fn: Callable[..., T], /, *args: Any) -> dict[int, T]: ...

    async def abroadcast(self, fn: Callable[..., Any], /, *args: Any) -> dict[int, Any]:
        """:meth:`broadcast` for async code: waits without blocking the event loop.

        .. versionadded:: 0.2
        """
        check_callable(fn)
        if self._closed:
            raise ClosedPoolError("cannot broadcast to a pool that was shut down")
        return await self._backend.abroadcast(fn, args)

    def _submit_traced(
        self,
        traces: tuple[Trace, ...],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> cf.Future[Any]:
        """``submit`` while traced: the call runs as a chunk of one, timed in the worker."""
        current = self._submit_observers
        if current is None or current[0].traces != traces:
            rec = _tracing.RunRecorder(traces, self, fn, "submit")
            current = self._submit_observers = (rec, RunObservers([rec]))
        rec, observers = current
        d = self._defaults
        call = functools.partial(fn, **kwargs) if kwargs else fn
        items = [args]
        inner = self._backend.submit_chunk(
            call, items, observers.retry_for(d.retry), timeout=d.task_timeout
        )
        rec.watch(inner, rec.next_position(), items, fn=_tracing.fn_name(fn))
        return _unwrap_single(inner)

    @overload
    def map(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *iterables: Iterable[Any],
        timeout: float | None = ...,
        chunksize: int | None = ...,
    ) -> Iterator[T]: ...

    @overload
    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = ...,
        chunksize: int | None = ...,
    ) -> Iterator[T]: ...

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
    ) -> Iterator[T]:
        """Like ``Executor.map``: results in input order, lazily, with ``timeout`` from now.

        Raises ``TimeoutError`` from the iterator when the next result is not ready
        ``timeout`` seconds after this call.
        """
        over: dict[str, Any] = {} if chunksize is None else {"chunksize": chunksize}
        return self._imap(fn, iterables, ordered=True, timeout=timeout, **over)

    # BEGIN GENERATED overloads of Pool.imap (python -m anypool._core._gen)

    @overload
    def imap(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *iterables: Iterable[Any],
        errors: Literal["collect"],
        **options: Unpack[_MapKwargsNoErrors],
    ) -> Iterator[Result[T]]: ...

    @overload
    def imap(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *iterables: Iterable[Any],
        errors: Literal["raise"] = ...,
        **options: Unpack[_MapKwargsNoErrors],
    ) -> Iterator[T]: ...

    @overload
    def imap(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        errors: Literal["collect"],
        **options: Unpack[_MapKwargsNoErrors],
    ) -> Iterator[Result[T]]: ...

    @overload
    def imap(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        errors: Literal["raise"] = ...,
        **options: Unpack[_MapKwargsNoErrors],
    ) -> Iterator[T]: ...

    @overload
    def imap(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *iterables: Iterable[Any],
        **options: Unpack[MapKwargs],
    ) -> Iterator[T] | Iterator[Result[T]]: ...

    @overload
    def imap(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        **options: Unpack[MapKwargs],
    ) -> Iterator[T] | Iterator[Result[T]]: ...

    # END GENERATED overloads of Pool.imap

    def imap(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        **options: Unpack[MapKwargs],
    ) -> Iterator[Any]:
        """Lazy ordered results; input is read as results are consumed (bounded)."""
        return self._imap(
            fn,
            iterables,
            ordered=True,
            **options,
        )

    # BEGIN GENERATED overloads of Pool.imap_unordered (python -m anypool._core._gen)

    @overload
    def imap_unordered(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *iterables: Iterable[Any],
        errors: Literal["collect"],
        **options: Unpack[_MapKwargsNoErrors],
    ) -> Iterator[Result[T]]: ...

    @overload
    def imap_unordered(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *iterables: Iterable[Any],
        errors: Literal["raise"] = ...,
        **options: Unpack[_MapKwargsNoErrors],
    ) -> Iterator[T]: ...

    @overload
    def imap_unordered(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        errors: Literal["collect"],
        **options: Unpack[_MapKwargsNoErrors],
    ) -> Iterator[Result[T]]: ...

    @overload
    def imap_unordered(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        errors: Literal["raise"] = ...,
        **options: Unpack[_MapKwargsNoErrors],
    ) -> Iterator[T]: ...

    @overload
    def imap_unordered(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *iterables: Iterable[Any],
        **options: Unpack[MapKwargs],
    ) -> Iterator[T] | Iterator[Result[T]]: ...

    @overload
    def imap_unordered(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        **options: Unpack[MapKwargs],
    ) -> Iterator[T] | Iterator[Result[T]]: ...

    # END GENERATED overloads of Pool.imap_unordered

    def imap_unordered(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        **options: Unpack[MapKwargs],
    ) -> Iterator[Any]:
        """Results as tasks complete (not in input order); bounded like ``imap``."""
        return self._imap(
            fn,
            iterables,
            ordered=False,
            **options,
        )

    def _run(
        self,
        fn: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        ordered: bool,
        **overrides: Any,
    ) -> MapRun:
        check_callable(fn)
        if self._closed:
            raise ClosedPoolError("cannot map on a pool that was shut down")
        self._backend.check_callable(fn)
        timeout = overrides.pop("timeout", None)
        opts = merge_map_options(self._defaults, overrides)
        if timeout is not None:
            opts = MapOptions(**{**opts.__dict__, "timeout": check_timeout("timeout", timeout)})
        args, total = _args(iterables)
        self._backend.set_total(total)
        return MapRun(
            self._backend,
            fn,
            args,
            opts,
            ordered=ordered,
            total=total,
            flat=len(iterables) == 1,
            observer=self._observers(fn),
        )

    def _observers(self, fn: Callable[..., Any]) -> RunObservers | None:
        """The observers of one map (see ``_observe``): the tracer, then the debug checks."""
        found: list[RunObserver] = []
        traces = _tracing.traces_for(self._trace)
        if traces:  # trace= or an active anypool.trace()
            found.append(_tracing.RunRecorder(traces, self, fn, "map"))
        cpu = self._cpu_run(fn)  # debug=True or anypool.watch()
        if cpu is not None:
            found.append(cpu)
        return RunObservers(found) if found else None

    def _imap(
        self,
        fn: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        ordered: bool,
        **overrides: Any,
    ) -> Iterator[Any]:
        deadline = None
        if overrides.get("timeout") is not None:
            deadline = time.monotonic() + float(overrides["timeout"])
        run = self._run(fn, iterables, ordered, **overrides)
        state = _MapState(self, self._drive(run, deadline))
        self._states.add(state)
        return _items(state)

    def _drive(self, run: MapRun, deadline: float | None) -> Iterator[list[Any]]:
        self._backend.avoid_caller_loop()
        self._backend.check_blocking_call()
        yield from run_sync(run, deadline)

    def _map_list(
        self, fn: Callable[..., Any], iterables: tuple[Iterable[Any], ...], **overrides: Any
    ) -> list[Any]:
        """``list(imap(...))`` without the per-item iterator cost (used by ``anypool.map``)."""
        run = self._run(fn, iterables, True, **overrides)
        out: list[Any] = []
        for chunk in self._drive(run, None):
            out.extend(chunk)
        return out

    # BEGIN GENERATED overloads of Pool.amap (python -m anypool._core._gen)

    @overload
    async def amap(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *iterables: Iterable[Any],
        ordered: bool = ...,
        errors: Literal["collect"],
        **options: Unpack[_MapKwargsNoErrors],
    ) -> list[Result[T]]: ...

    @overload
    async def amap(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *iterables: Iterable[Any],
        ordered: bool = ...,
        errors: Literal["raise"] = ...,
        **options: Unpack[_MapKwargsNoErrors],
    ) -> list[T]: ...

    @overload
    async def amap(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        ordered: bool = ...,
        errors: Literal["collect"],
        **options: Unpack[_MapKwargsNoErrors],
    ) -> list[Result[T]]: ...

    @overload
    async def amap(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        ordered: bool = ...,
        errors: Literal["raise"] = ...,
        **options: Unpack[_MapKwargsNoErrors],
    ) -> list[T]: ...

    @overload
    async def amap(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *iterables: Iterable[Any],
        ordered: bool = ...,
        **options: Unpack[MapKwargs],
    ) -> list[T] | list[Result[T]]: ...

    @overload
    async def amap(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        ordered: bool = ...,
        **options: Unpack[MapKwargs],
    ) -> list[T] | list[Result[T]]: ...

    # END GENERATED overloads of Pool.amap

    async def amap(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        ordered: bool = True,
        **options: Unpack[MapKwargs],
    ) -> list[Any]:
        """Await all results as a list (in input order unless ``ordered=False``)."""
        self._backend.use_caller_loop()
        run = self._run(
            fn,
            iterables,
            ordered,
            **options,
        )
        out: list[Any] = []
        async for chunk in run_async(run):
            out.extend(chunk)
        return out

    # BEGIN GENERATED overloads of Pool.aimap (python -m anypool._core._gen)

    @overload
    def aimap(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *iterables: Iterable[Any],
        ordered: bool = ...,
        errors: Literal["collect"],
        **options: Unpack[_MapKwargsNoErrors],
    ) -> AsyncIterator[Result[T]]: ...

    @overload
    def aimap(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *iterables: Iterable[Any],
        ordered: bool = ...,
        errors: Literal["raise"] = ...,
        **options: Unpack[_MapKwargsNoErrors],
    ) -> AsyncIterator[T]: ...

    @overload
    def aimap(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        ordered: bool = ...,
        errors: Literal["collect"],
        **options: Unpack[_MapKwargsNoErrors],
    ) -> AsyncIterator[Result[T]]: ...

    @overload
    def aimap(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        ordered: bool = ...,
        errors: Literal["raise"] = ...,
        **options: Unpack[_MapKwargsNoErrors],
    ) -> AsyncIterator[T]: ...

    @overload
    def aimap(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *iterables: Iterable[Any],
        ordered: bool = ...,
        **options: Unpack[MapKwargs],
    ) -> AsyncIterator[T] | AsyncIterator[Result[T]]: ...

    @overload
    def aimap(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        ordered: bool = ...,
        **options: Unpack[MapKwargs],
    ) -> AsyncIterator[T] | AsyncIterator[Result[T]]: ...

    # END GENERATED overloads of Pool.aimap

    def aimap(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        ordered: bool = True,
        **options: Unpack[MapKwargs],
    ) -> AsyncIterator[Any]:
        """``async for`` over results, without blocking the event loop."""
        self._backend.use_caller_loop()
        run = self._run(
            fn,
            iterables,
            ordered,
            **options,
        )
        return _aitems(run_async(run))

    # -- shutdown ---------------------------------------------------------------------
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the pool, as ``Executor.shutdown`` does.

        Args:
            wait: block until running tasks finish and workers exit.
            cancel_futures: cancel tasks that have not started.

        Raises:
            AnypoolWarning: with ``debug=True`` and ``wait``, the first warning that a warnings
                filter turned into an error while the pool ran (``-W error``).

        Calling it again does nothing more. Called from one of the pool's own threads (inside
        a thread task, or in a done-callback) it cannot wait for the pool's other work, which
        may need that very thread: it then stops the pool as ``wait=False`` does, and a
        ``map`` still being read fails with ``ClosedPoolError`` at the inputs it had not sent.
        """
        self._shutdown(wait, cancel_futures, raise_warnings=wait)

    def _shutdown(
        self, wait: bool, cancel_futures: bool, raise_warnings: bool, raise_blocked: bool = True
    ) -> None:
        with self._shutdown_lock:
            first = not self._closed
            self._closed = True
        if wait and self._backend.owns_current_thread():
            wait = False
        states = list(self._states)
        if first and wait and not cancel_futures:
            for st in states:
                st.drain()
        elif first and cancel_futures:
            for st in states:
                st.close()
        blocked: RuntimeError | None = None
        if wait:
            try:
                self._backend.check_blocking_call()
            except RuntimeError as e:
                # waiting here would deadlock: still stop the pool (nothing left running),
                # then say why it could not wait
                blocked, wait, cancel_futures = e, False, True
        try:
            self._backend.shutdown(wait=wait, cancel_pending=cancel_futures)
        finally:
            self._close_sync(wait)
            self._stop_watching(raise_warnings and blocked is None)
        if blocked is not None and raise_blocked:
            raise blocked

    def __enter__(self) -> Pool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt | SystemExit):
            # Ctrl-C (or sys.exit): one interrupt is enough — stop now, leave nothing behind
            self.terminate()
            return
        # on an error do not wait for queued work that nobody will read
        failed = exc_type is not None
        # when the block already failed (for example with the blocking-call error itself),
        # that error is the one to see: do not add a second one on the way out
        self._shutdown(
            True, cancel_futures=failed, raise_warnings=not failed, raise_blocked=not failed
        )

    def terminate(self) -> None:
        """Stop at once: cancel pending work and end running workers where possible.

        Process workers are killed and joined; asyncio tasks are cancelled; threads cannot be
        stopped, so running thread tasks are abandoned (they are daemon threads and never
        delay interpreter exit). Used on Ctrl-C; nothing of the pool is left afterwards.
        """
        with self._shutdown_lock:
            self._closed = True
        for st in list(self._states):
            st.close()
        try:
            self._backend.terminate()
        finally:
            self._close_sync()
            self._stop_watching(raise_errors=False)

    async def __aenter__(self) -> Pool:
        self._backend.use_caller_loop()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failed = exc_type is not None
        await self._ashutdown(cancel_futures=failed, raise_warnings=not failed)

    async def ashutdown(self, *, cancel_futures: bool = False) -> None:
        """``shutdown(wait=True)`` for async code: waits without blocking the event loop."""
        await self._ashutdown(cancel_futures=cancel_futures, raise_warnings=True)

    async def _ashutdown(self, *, cancel_futures: bool, raise_warnings: bool) -> None:
        if self._backend.native_ashutdown:
            with self._shutdown_lock:
                self._closed = True
            for st in list(self._states):
                st.close()
            try:
                await self._backend.ashutdown(cancel_pending=cancel_futures)
            finally:
                self._close_sync()
                self._stop_watching(raise_warnings)
            return
        await asyncio.to_thread(self._shutdown, True, cancel_futures, raise_warnings)


async def _aitems(chunks: AsyncIterator[list[Any]]) -> AsyncIterator[Any]:
    try:
        async for chunk in chunks:
            chunk.reverse()  # handed out one by one and dropped (see _items)
            while chunk:
                yield chunk.pop()
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


def _unwrap_single(inner: cf.Future[ChunkResult]) -> cf.Future[Any]:
    """A future for one call that ran as a chunk of one (used for retries on submit)."""
    outer: cf.Future[Any] = cf.Future()

    def done(f: cf.Future[ChunkResult]) -> None:
        if f.cancelled():
            outer.cancel()
            outer.set_running_or_notify_cancel()
            return
        if not outer.set_running_or_notify_cancel():
            return
        exc = f.exception()
        if exc is not None:
            outer.set_exception(exc)
            return
        res = f.result()
        if res.errors:
            outer.set_exception(res.errors[0])
        else:
            outer.set_result(res.values[0])

    def propagate_cancel(o: cf.Future[Any]) -> None:
        if o.cancelled():
            inner.cancel()

    outer.add_done_callback(propagate_cancel)
    inner.add_done_callback(done)
    return outer
