"""The asyncio backend: coroutine functions on an event loop, a bounded number at a time.

Where the loop comes from depends on where the :class:`~anypool.Pool` is created:

* from **sync code**, the backend starts its own event loop (uvloop when it is installed, the
  default loop otherwise) in a daemon thread, and stops, closes and joins it at shutdown;
* from **async code** (a loop is running in the thread that creates the pool: an
  ``async def``, a Jupyter cell), the first use decides. Async use (``async with Pool(...)``,
  ``await pool.amap(...)``, ``pool.aimap(...)``) runs the tasks on the caller's own loop; then
  blocking calls on the pool from that loop's thread (``pool.map``, ``list(pool.imap(...))``,
  ``shutdown(wait=True)``) would deadlock the loop and raise ``RuntimeError``. Sync use first
  (``pool.map(...)``, ``pool.submit(...)``, ``anypool.map(...)``) starts the backend's own loop
  in a helper thread instead, as from sync code: the caller's loop cannot run while the caller
  waits, so the tasks could not run there.

Tasks are run by ``workers`` long-lived worker coroutines (started on demand) that pull from
one queue, so at most ``workers`` tasks are in flight. The map engine submits inputs in
batches of up to :attr:`AsyncioBackend.BATCH`; a batch crosses threads with at most one
``call_soon_threadsafe`` (one for a whole burst of batches) and every item of a batch runs
concurrently on the loop.

A task that overruns ``task_timeout`` is cancelled (it sees ``asyncio.CancelledError``) and
fails with :class:`~anypool.TaskTimeoutError`; the timeout covers the task's retries.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures as cf
import contextvars
import functools
import importlib
import inspect
import itertools
import os
import reprlib
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from types import CoroutineType
from typing import Any, ClassVar

from .._core._abc import Backend, WorkerSpec
from .._core._exceptions import BrokenPoolError, ClosedPoolError, InitializerError, TaskTimeoutError
from .._core._lifecycle import (
    log_finalizer_error,
    log_finalizer_timeout,
    raise_broadcast_errors,
)
from .._core._tasks import (
    NO_RETRY,
    ChunkResult,
    FlatItems,
    Retry,
    TracedRetry,
    WorkerContext,
    arun_one,
    arun_one_traced,
    is_async_callable,
    reset_current_worker,
    set_current_worker,
)

_live: weakref.WeakSet[AsyncioBackend] = weakref.WeakSet()
_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_loop_ids = itertools.count()


def _shutdown_all_at_exit() -> None:
    for b in list(_live):
        b.shutdown(wait=True)


atexit.register(_shutdown_all_at_exit)


def _new_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    """A fresh event loop: uvloop's when wanted and importable, else the default one."""
    if use_uvloop:
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            pass
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


def _fn_name(fn: Callable[..., Any]) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) else repr(fn)


def _describe(args: Sequence[Any], kwargs: dict[str, Any] | None = None) -> str:
    parts = [_short.repr(a) for a in args]
    if kwargs:
        parts += [f"{k}={_short.repr(v)}" for k, v in kwargs.items()]
    return ", ".join(parts)


class _Call:
    """One ``submit``: a single call with its own future."""

    __slots__ = ("fn", "args", "kwargs", "fut", "timeout", "n", "next")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        fut: cf.Future[Any],
        timeout: float | None,
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.fut = fut
        self.timeout = timeout
        self.n = 1  # units of work
        self.next = 0  # the next unit a worker takes


class _Chunk:
    """One ``submit_chunk``: its items run concurrently; the future gets a ``ChunkResult``."""

    __slots__ = (
        "fn",
        "items",
        "retry",
        "timeout",
        "fut",
        "values",
        "errors",
        "left",
        "t0",
        "state",
        "n",
        "next",
        "simple",
        "trace",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        retry: Retry,
        timeout: float | None,
        fut: cf.Future[ChunkResult],
    ) -> None:
        self.fn = fn
        self.items = items
        self.retry = retry
        self.timeout = timeout
        self.fut = fut
        self.n = len(items)
        self.next = 0
        #: traced (``anypool.trace``): one entry per attempt, timed around each await
        self.trace: list[Any] | None = [] if type(retry) is TracedRetry else None
        #: no timeout, no retries, no trace: the worker awaits ``fn(*item)`` inline
        self.simple = timeout is None and retry.attempts == 0 and self.trace is None
        self.values: list[Any] = [None] * self.n
        self.errors: dict[int, BaseException] | None = None
        self.left = self.n  # items not finished yet
        self.t0 = 0.0
        #: None: not started; True: running (set_running_or_notify_cancel agreed);
        #: False: cancelled before it started
        self.state: bool | None = None


class _LoopBoundFuture(cf.Future[Any]):
    """A ``submit`` future whose task runs on the caller's event loop: waiting for it in the
    thread running that loop could never end, so it raises there instead."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        super().__init__()
        self._anypool_loop = loop

    def _refuse_to_block(self) -> None:
        if self.done():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return
        if running is self._anypool_loop:
            raise RuntimeError(
                "this future's task runs on the event loop running in this thread, so waiting "
                "for it here (fut.result(), fut.exception()) would wait for ever: a deadlock. "
                "Use `await asyncio.wrap_future(fut)`, or `await pool.amap(...)` / "
                "`await anypool.amap(...)` for many calls."
            )

    def result(self, timeout: float | None = None) -> Any:
        self._refuse_to_block()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._refuse_to_block()
        return super().exception(timeout)


class AsyncioBackend(Backend):
    """Runs coroutine functions on an event loop with at most ``workers`` tasks in flight.

    Options (``Pool(..., uvloop=False)``):
        uvloop: use uvloop for the backend's own loop when it is installed (default ``True``);
            ignored when the pool uses the caller's running loop.

    .. versionadded:: 0.1
    """

    name = "asyncio"
    sync_kind = "asyncio"
    native_ashutdown = True
    option_names = ("uvloop",)
    runs_coroutines = True
    #: the map engine submits up to this many inputs as one chunk; they run concurrently
    #: items per chunk: a batch crosses threads with at most one wake-up
    BATCH: ClassVar[int] = 16

    @property
    def fixed_batch(self) -> int:
        """:data:`BATCH` items per chunk: the Pool does not size asyncio chunks by time."""
        return self.BATCH

    _OPTIONS: ClassVar[frozenset[str]] = frozenset({"uvloop"})

    def __init__(self, spec: WorkerSpec) -> None:
        if spec.max_tasks_per_worker is not None:
            raise ValueError(
                "max_tasks_per_worker is not meaningful for the asyncio backend: its tasks run "
                "on one event loop, there are no worker threads or processes to replace; "
                "leave it unset (None)"
            )
        unknown = set(spec.options) - self._OPTIONS
        if unknown:
            raise TypeError(
                f"unknown option(s) for the asyncio backend: {', '.join(sorted(unknown))}; "
                f"valid: {', '.join(sorted(self._OPTIONS))}"
            )
        super().__init__(spec)
        self._use_uvloop = bool(spec.options.get("uvloop", True))
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owned = False
        #: False while bound to the caller's running loop with nothing run there yet: the
        #: first sync use may still move the tasks to an own loop (see the module docstring)
        self._committed = True
        #: called with this backend when it moved its tasks to an own loop (``Pool`` watches
        #: that loop with ``debug=True``)
        self.on_choose: Callable[[Backend], None] | None = None
        self._thread: threading.Thread | None = None
        self._loop_exited = False
        self._on_loop_exit: list[Callable[[], None]] = []
        self._context: contextvars.Context | None = None
        self._ctx: WorkerContext | None = None
        # jobs sent from other threads, waiting for the loop to pick them up (under _lock)
        self._inbox: list[_Call | _Chunk] = []
        self._inbox_scheduled = False
        # the run queue (touched on the loop only): jobs whose units are not all taken yet
        self._pending: deque[_Call | _Chunk] = deque()
        # idle workers wait on these futures; waking one is set_result(None)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._workers: set[asyncio.Task[None]] = set()
        self._nspawned = 0
        self._alive = 0  # worker tasks that have not ended
        self._init_state = 0  # 0: initializer not run, 1: running, 2: done
        self._ready: asyncio.Event | None = None
        self._closed = False
        self._stopping = False  # on the loop: workers exit once the run queue is empty
        self._stop_scheduled = False  # the owned loop stops once the workers exit
        self._stop_task: asyncio.Task[None] | None = None
        self._broken: BaseException | None = None
        self._finalized = False

    # -- lifecycle ----------------------------------------------------------------------
    @classmethod
    def default_workers(cls) -> int:
        """100 tasks in flight."""
        return 100

    def effective_workers(self) -> int:
        """How many tasks may be in flight at once."""
        return self.spec.workers

    def start(self) -> None:
        """Bind to the running loop of this thread, or start an own loop in a daemon thread."""
        self._context = contextvars.copy_context()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            self._loop = loop
            self._owned = False
            self._committed = False
            self._ctx = WorkerContext(id=0, backend=self.name)
            return
        self._start_own_loop()

    def _start_own_loop(self) -> None:
        loop = _new_loop(self._use_uvloop)
        self._loop = loop
        self._owned = True
        started = threading.Event()
        name = f"anypool-asyncio-{next(_loop_ids)}"
        self._ctx = WorkerContext(id=0, backend=self.name, thread=name)
        t = threading.Thread(target=self._run_loop, args=(loop, started), name=name, daemon=True)
        self._thread = t
        t.start()
        started.wait()
        _live.add(self)

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the tasks run on (own or the caller's); None before :meth:`start`."""
        return self._loop

    def _run_loop(self, loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        """The owned loop's thread: run until shutdown stops the loop, then close it."""
        asyncio.set_event_loop(loop)
        try:
            loop.call_soon(started.set)
            loop.run_forever()
        finally:
            try:
                _cancel_all_tasks(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()
                with self._lock:
                    self._loop_exited = True
                    callbacks, self._on_loop_exit = self._on_loop_exit, []
                for cb in callbacks:
                    cb()

    def _in_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def use_caller_loop(self) -> None:
        """An async entry point: keep the tasks on the caller's running loop, if bound to it."""
        self._committed = True

    def avoid_caller_loop(self) -> None:
        """A sync entry point: when bound to the loop running in this thread with nothing run
        there yet, run the tasks on an own loop in a helper thread instead (the caller is
        about to wait, and its loop cannot run tasks meanwhile)."""
        if self._committed:
            return
        with self._lock:
            if self._committed or self._closed or not self._in_loop_thread():
                return
            self._committed = True
            self._start_own_loop()
        if self.on_choose is not None:
            self.on_choose(self)

    # -- checks -------------------------------------------------------------------------
    def check_callable(self, fn: Callable[..., Any]) -> None:
        """Accept coroutine functions only; a plain function gets a ``TypeError``."""
        if not is_async_callable(fn):
            raise TypeError(
                f"{_fn_name(fn)!r} is not a coroutine function: the asyncio backend runs "
                "`async def` functions on an event loop. For a plain (blocking) function use "
                'backend="thread" (or backend="process" for CPU-bound work).'
            )

    def check_blocking_call(self) -> None:
        """Refuse to block the thread that runs this pool's event loop (it would deadlock)."""
        if self._loop is not None and self._committed and self._in_loop_thread():
            raise RuntimeError(
                "this asyncio Pool runs its tasks on the event loop that is running in this "
                "thread, so a blocking call here (pool.map(...), list(pool.imap(...)), "
                "shutdown(wait=True) or leaving a plain `with Pool(...)` block) would wait for "
                "tasks that cannot run until it returns: a deadlock. From async code use "
                "`await pool.amap(...)` (or `await anypool.amap(...)`), "
                "`async for x in pool.aimap(...)` and `async with Pool(...)` instead; or make "
                "the blocking call before any async use, and the pool runs its tasks on its "
                "own loop in a helper thread."
            )

    # -- submitting ---------------------------------------------------------------------
    def submit(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> cf.Future[Any]:
        """Run ``await fn(*args, **kwargs)`` on the loop; return a ``concurrent.futures.Future``.

        On the caller's loop the future refuses to be waited for in that loop's thread
        (``result()``/``exception()`` raise instead of deadlocking): await it with
        ``asyncio.wrap_future`` there.
        """
        fut: cf.Future[Any] = cf.Future() if self._owned else _LoopBoundFuture(self._loop)
        self._send(_Call(fn, args, kwargs, fut, timeout))
        return fut

    def submit_chunk(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        retry: Retry,
        *,
        timeout: float | None = None,
    ) -> cf.Future[ChunkResult]:
        """Run ``await fn(*item)`` for every item, concurrently; one cross-thread call."""
        if isinstance(items, FlatItems):  # single arguments: the loop's workers take tuples
            items = [(x,) for x in items]
        fut: cf.Future[ChunkResult] = cf.Future()
        if not items:
            fut.set_running_or_notify_cancel()
            fut.set_result(ChunkResult([], None, 0.0, 0.0))
            return fut
        self._send(_Chunk(fn, items, retry, timeout, fut))
        return fut

    def _send(self, job: _Call | _Chunk) -> None:
        """Hand ``job`` to the loop: directly from the loop's thread, else thread-safely.

        From another thread the job goes to an inbox, and the loop is woken with
        ``call_soon_threadsafe`` only if no wake-up is pending yet: at most one per job, and
        one for a whole burst (the map engine refills its window in bursts).
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError("the asyncio backend was not started")
        with self._lock:
            if self._broken is not None:
                raise BrokenPoolError(str(self._broken)) from self._broken
            if self._closed:
                raise ClosedPoolError("cannot submit to a pool that was shut down")
            self._committed = True  # the first job decides where the tasks run
            if self._in_loop_thread():
                self._enqueue(job)
                return
            if not self._inbox_scheduled:
                try:
                    loop.call_soon_threadsafe(self._drain_inbox)
                except RuntimeError as exc:  # the loop is closed
                    raise BrokenPoolError(
                        "the event loop this asyncio Pool was created on is closed; create the "
                        "Pool inside the async code that uses it (async with Pool(...))"
                    ) from exc
                self._inbox_scheduled = True
            self._inbox.append(job)

    def _drain_inbox(self) -> None:
        """On the loop: queue the jobs other threads sent."""
        with self._lock:
            jobs, self._inbox = self._inbox, []
            self._inbox_scheduled = False
        for job in jobs:
            self._enqueue(job)

    # -- on the loop --------------------------------------------------------------------
    def _enqueue(self, job: _Call | _Chunk) -> None:
        """Queue ``job``; wake idle workers for its units, start new ones for the rest."""
        self._pending.append(job)
        k = job.n
        waiters = self._waiters
        while k and waiters:
            w = waiters.popleft()
            if not w.done():  # a cancelled worker leaves its waiter behind
                w.set_result(None)
                k -= 1
        if k:
            self._spawn(min(k, self.spec.workers - self._alive))

    def _spawn(self, n: int) -> None:
        loop = self._loop
        assert loop is not None
        assert self._context is not None
        if self._ready is None:
            self._ready = asyncio.Event()
        for _ in range(n):
            task = loop.create_task(
                self._worker(),
                name=f"anypool-asyncio-worker-{self._nspawned}",
                context=self._context.copy(),
            )
            self._nspawned += 1
            self._alive += 1
            self._workers.add(task)
            task.add_done_callback(self._worker_done)

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        """A worker ended (a done callback: it runs even for a task cancelled unstarted)."""
        self._workers.discard(task)
        self._alive -= 1
        if self._alive == 0 and self._pending:
            # the workers were cancelled (for example asyncio.run() ended without a
            # shutdown): fail what is still queued so that no caller waits forever
            self._abort_queued()

    async def _worker(self) -> None:
        """A long-lived worker coroutine: take units of work until the pool stops.

        The common case (a chunk item without timeout or retries) is inlined here: one
        ``await fn(*item)`` per item and no per-item allocation besides the call itself.
        """
        assert self._ctx is not None
        assert self._loop is not None
        set_current_worker(self._ctx)
        ctx = self._ctx
        pending = self._pending
        waiters = self._waiters
        create_future = self._loop.create_future
        if self._init_state != 2:
            await self._initialize()
        job: _Call | _Chunk | None = None
        while True:
            if not pending:
                job = None  # nor its future: results belong to whoever holds the future
                if self._stopping:
                    return
                w: asyncio.Future[None] = create_future()
                waiters.append(w)
                await w
                continue
            job = pending[0]
            i = job.next
            job.next = i + 1
            if i + 1 >= job.n:
                pending.popleft()
            if type(job) is _Call:
                if await self._run_call(job):
                    ctx.tasks_done += 1
                continue
            assert type(job) is _Chunk
            state = job.state
            if state is None:
                state = job.state = job.fut.set_running_or_notify_cancel()
                job.t0 = time.perf_counter()
            if not state:
                continue  # the chunk was cancelled before it started
            if job.simple and self._broken is None:
                try:
                    r = job.fn(*job.items[i])
                    value = await (r if type(r) is CoroutineType else _await_result(r))
                except asyncio.CancelledError as exc:
                    if _cancelling():  # our worker: the loop is going away
                        _set_exception(job.fut, _loop_gone(exc))
                        raise
                    self._item_error(job, i, exc)
                except BaseException as exc:  # every error stays with its item
                    self._item_error(job, i, exc)
                else:
                    job.values[i] = value
                    value = None  # the caller frees a result once it lets go of it
                    job.left -= 1
                    if job.left == 0:
                        self._finish(job)
            else:
                await self._run_item(job, i)
            ctx.tasks_done += 1

    async def _initialize(self) -> None:
        """Run the initializer once (the first worker runs it; the others wait for it)."""
        assert self._ready is not None
        if self._init_state == 1:
            await self._ready.wait()
            return
        self._init_state = 1
        spec = self.spec
        try:
            if spec.initializer is not None:
                r = spec.initializer(*spec.initargs)
                if inspect.isawaitable(r):
                    await r
        except BaseException as exc:
            err = InitializerError(
                f"the pool's initializer {spec.initializer!r} raised {type(exc).__name__}: {exc}"
            )
            err.__cause__ = exc
            with self._lock:
                self._broken = err
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self._init_state = 2
            self._ready.set()

    async def _run_call(self, call: _Call) -> bool:
        """Run one submitted call; False when it was cancelled before it started."""
        fut = call.fut
        if not fut.set_running_or_notify_cancel():
            return False
        if self._broken is not None:
            fut.set_exception(self._broken)
            return True
        try:
            if call.timeout is None:
                value = await _await_result(call.fn(*call.args, **call.kwargs))
            else:
                fn = functools.partial(call.fn, **call.kwargs) if call.kwargs else call.fn
                value = await _with_timeout(
                    fn, tuple(call.args), NO_RETRY, call.timeout, call.kwargs
                )
        except asyncio.CancelledError as exc:
            if _cancelling():  # our worker: the loop is going away
                _set_exception(fut, _loop_gone(exc))
                raise
            _set_exception(fut, exc)
        except BaseException as exc:
            _set_exception(fut, exc)
        else:
            if not fut.done():
                fut.set_result(value)
        return True

    async def _run_item(self, chunk: _Chunk, i: int) -> None:
        """One chunk item the slow way: a broken pool, a timeout or retries."""
        if self._broken is not None:
            _set_exception(chunk.fut, self._broken)
            return
        item = chunk.items[i]
        log = chunk.trace
        try:
            seconds = chunk.timeout
            if log is not None:
                trace_log = log
                value = await _retry_timeouts(chunk.retry, lambda: _traced(chunk, i, trace_log))
            elif seconds is not None:
                value = await _retry_timeouts(
                    chunk.retry,
                    lambda: _with_timeout(chunk.fn, item, chunk.retry, seconds, None),
                )
            else:
                value = await arun_one(chunk.fn, item, chunk.retry)
        except asyncio.CancelledError as exc:
            if _cancelling():  # our worker: the loop is going away
                _set_exception(chunk.fut, _loop_gone(exc))
                raise
            self._item_error(chunk, i, exc)
        except BaseException as exc:
            self._item_error(chunk, i, exc)
        else:
            chunk.values[i] = value
            chunk.left -= 1
            if chunk.left == 0:
                self._finish(chunk)

    def _item_error(self, chunk: _Chunk, i: int, exc: BaseException) -> None:
        if chunk.errors is None:
            chunk.errors = {}
        chunk.errors[i] = exc
        chunk.left -= 1
        if chunk.left == 0:
            self._finish(chunk)

    @staticmethod
    def _finish(chunk: _Chunk) -> None:
        fut = chunk.fut
        if not fut.done():
            wall = time.perf_counter() - chunk.t0
            res = ChunkResult(chunk.values, chunk.errors, wall, 0.0, chunk.trace)
            try:
                fut.set_result(res)
            except cf.InvalidStateError:
                pass

    def _abort_queued(self) -> None:
        """Fail or cancel every queued job (the workers are gone)."""
        err = BrokenPoolError("the asyncio pool's event loop stopped before this task ran")
        while self._pending:
            job = self._pending.popleft()
            if not job.fut.cancel():
                _set_exception(job.fut, err)

    def _begin_close(self, cancel_pending: bool) -> None:
        """On the loop: optionally cancel queued jobs; workers exit once the queue is empty."""
        if cancel_pending:
            kept = deque[_Call | _Chunk]()
            for job in self._pending:
                if job.next > 0:
                    kept.append(job)  # a chunk that already started: let it finish
                elif job.fut.cancel() and type(job) is _Chunk:
                    job.state = False
            self._pending.clear()
            self._pending.extend(kept)
        self._stopping = True
        while self._waiters:  # idle workers wake up, see the empty queue and exit
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)

    async def _aclose(self, cancel_pending: bool) -> None:
        """On the loop: stop the workers once the queue is drained."""
        self._begin_close(cancel_pending)
        me = asyncio.current_task()
        # a loop: work sent from another thread just before the close may start new workers
        while workers := [w for w in self._workers if w is not me and not w.done()]:
            await asyncio.wait(workers)
        await self._finalize()

    async def _finalize(self) -> None:
        """On the loop, once the workers stopped: run the finalizer (once, if they started).

        A coroutine finalizer is bounded by ``finalizer_timeout`` (then cancelled); a plain
        one runs on the loop like any callback and cannot be interrupted.
        """
        spec = self.spec
        if self._finalized or spec.finalizer is None or self._init_state != 2:
            return
        self._finalized = True
        if self._broken is not None:
            return
        ctx = self._ctx
        assert ctx is not None
        token = set_current_worker(ctx)
        try:
            r = spec.finalizer()
            if inspect.isawaitable(r):
                await asyncio.wait_for(r, spec.finalizer_timeout)
        except TimeoutError:
            log_finalizer_timeout(self.name, ctx.id, spec.finalizer_timeout, "it was cancelled")
        except Exception as exc:
            log_finalizer_error(self.name, ctx.id, exc)
        finally:
            reset_current_worker(token)

    # -- broadcast ----------------------------------------------------------------------
    def broadcast(self, fn: Callable[..., Any], args: Sequence[Any]) -> dict[int, Any]:
        """Run ``fn(*args)`` (awaited if it is a coroutine function) on the pool's loop.

        The loop is the one worker: the result is ``{0: result}``. It runs at once, beside
        the tasks in flight (the loop runs them concurrently); the initializer runs first if
        no task has run yet.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError("the asyncio backend was not started")
        try:
            fut = asyncio.run_coroutine_threadsafe(self._broadcast(fn, args), loop)
        except RuntimeError as exc:  # the loop is closed
            raise ClosedPoolError("cannot broadcast to a pool that was shut down") from exc
        return fut.result()

    async def abroadcast(self, fn: Callable[..., Any], args: Sequence[Any]) -> dict[int, Any]:
        """:meth:`broadcast` from async code: on the pool's loop, or awaited from another."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the asyncio backend was not started")
        if self._in_loop_thread():
            return await self._broadcast(fn, args)
        try:
            fut = asyncio.run_coroutine_threadsafe(self._broadcast(fn, args), loop)
        except RuntimeError as exc:  # the loop is closed
            raise ClosedPoolError("cannot broadcast to a pool that was shut down") from exc
        return await asyncio.wrap_future(fut)

    async def _broadcast(self, fn: Callable[..., Any], args: Sequence[Any]) -> dict[int, Any]:
        if self._broken is not None:
            raise BrokenPoolError(str(self._broken)) from self._broken
        if self._closed:
            raise ClosedPoolError("cannot broadcast to a pool that was shut down")
        ctx = self._ctx
        assert ctx is not None
        token = set_current_worker(ctx)
        try:
            if self._init_state != 2:
                if self._ready is None:
                    self._ready = asyncio.Event()
                await self._initialize()
                if self._broken is not None:
                    raise BrokenPoolError(str(self._broken)) from self._broken
            try:
                value = await _await_result(fn(*args))
            except Exception as exc:
                raise_broadcast_errors(self.name, fn, {ctx.id: exc})
                raise  # pragma: no cover - raise_broadcast_errors raised it
        finally:
            reset_current_worker(token)
        return {ctx.id: value}

    async def _aclose_and_stop(self, cancel_pending: bool) -> None:
        try:
            await self._aclose(cancel_pending)
        finally:
            assert self._loop is not None
            self._loop.stop()

    # -- shutdown -----------------------------------------------------------------------
    def _mark_closed(self) -> None:
        with self._lock:
            self._closed = True
        _live.discard(self)

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Stop accepting work, optionally cancel what is queued, optionally wait.

        With ``wait`` it returns once queued tasks ran and the workers exited; an owned loop
        is then stopped, closed and its thread joined. Without ``wait`` all of that still
        happens, in the background.
        """
        self._mark_closed()
        loop = self._loop
        if loop is None:
            return
        in_loop = self._in_loop_thread()
        if wait and in_loop:
            self.check_blocking_call()  # raises: waiting here would deadlock
        if self._owned:
            self._schedule(loop, in_loop, functools.partial(self._stop_owned, cancel_pending))
            t = self._thread
            if wait and t is not None and t is not threading.current_thread():
                t.join()
            return
        # the caller's loop
        if in_loop:
            self._begin_close(cancel_pending)
        elif wait and loop.is_running():
            f = asyncio.run_coroutine_threadsafe(self._aclose(cancel_pending), loop)
            f.result()
        else:
            self._schedule(loop, in_loop, functools.partial(self._begin_close, cancel_pending))

    def _stop_owned(self, cancel_pending: bool) -> None:
        """On the owned loop: close the workers, then stop the loop (once)."""
        if not self._stop_scheduled:
            self._stop_scheduled = True
            assert self._loop is not None
            # keep a reference: the loop itself only holds tasks weakly
            self._stop_task = self._loop.create_task(self._aclose_and_stop(cancel_pending))
        elif cancel_pending:
            self._begin_close(cancel_pending)

    @staticmethod
    def _schedule(loop: asyncio.AbstractEventLoop, in_loop: bool, cb: Callable[[], None]) -> None:
        if in_loop:
            cb()
            return
        try:
            loop.call_soon_threadsafe(cb)
        except RuntimeError:  # the loop is closed already: nothing left to stop
            pass

    async def ashutdown(self, cancel_pending: bool = False) -> None:
        """``shutdown(wait=True)`` for async code: waits without blocking the running loop."""
        self._mark_closed()
        loop = self._loop
        if loop is None:
            return
        in_loop = self._in_loop_thread()
        if self._owned and in_loop:
            # called by a task on the pool's own loop: the loop cannot stop under it
            self._stop_owned(cancel_pending)
            return
        if self._owned:
            caller = asyncio.get_running_loop()
            done: asyncio.Future[None] = caller.create_future()

            def exited() -> None:
                def resolve() -> None:
                    if not done.done():
                        done.set_result(None)

                try:
                    caller.call_soon_threadsafe(resolve)
                except RuntimeError:  # the caller's loop is gone
                    pass

            with self._lock:
                if self._loop_exited:
                    done.set_result(None)
                else:
                    self._on_loop_exit.append(exited)
            self._schedule(loop, False, functools.partial(self._stop_owned, cancel_pending))
            await done
            if self._thread is not None:
                self._thread.join()  # the thread is past its last line: this returns at once
            return
        if in_loop:
            await self._aclose(cancel_pending)
        elif loop.is_running():
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(self._aclose(cancel_pending), loop)
            )


def _cancelling() -> bool:
    """True when the running task itself is being cancelled (not just a CancelledError)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _loop_gone(cancel: asyncio.CancelledError) -> BrokenPoolError:
    """The error of a task whose worker was cancelled under it (its event loop ended)."""
    err = BrokenPoolError(
        "the task was cancelled because the event loop running it is shutting down (for "
        "example the async code that created the pool ended without `async with Pool(...)` "
        "or `await pool.ashutdown()`)"
    )
    err.__cause__ = cancel
    return err


def _set_exception(fut: cf.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        try:
            fut.set_exception(exc)
        except cf.InvalidStateError:
            pass


async def _await_result(r: Any) -> Any:
    """Await ``r`` if it is awaitable; a plain value (from a plain function) is returned."""
    if inspect.isawaitable(r):
        return await r
    return r


async def _retry_timeouts(retry: Retry, attempt: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``attempt`` again after a :class:`TaskTimeoutError` while ``retries=`` allows (and
    ``retry_on`` matches it), as the engine does for the other backends."""
    timeouts = 0
    while True:
        try:
            return await attempt()
        except TaskTimeoutError as err:
            if not retry.allows(err, timeouts + 1):
                retry.gave_up(err, timeouts + 1)
                raise
            timeouts += 1


async def _with_timeout(
    fn: Callable[..., Any],
    item: tuple[Any, ...],
    retry: Retry,
    seconds: float,
    kwargs: dict[str, Any] | None,
) -> Any:
    """Await the call (with retries); past ``seconds`` cancel it and raise."""
    cm = asyncio.timeout(seconds)
    try:
        async with cm:
            return await arun_one(fn, item, retry)
    except TimeoutError:
        if not cm.expired():
            raise  # the function's own TimeoutError
        raise TaskTimeoutError(
            f"task {_fn_name(fn)}({_describe(item, kwargs)}) ran longer than "
            f"task_timeout={seconds}s and was cancelled"
        ) from None


async def _traced(chunk: _Chunk, i: int, log: list[Any]) -> Any:
    """Run chunk item ``i`` timing each attempt into ``log`` (the trace of the chunk)."""
    task = asyncio.current_task()
    name = task.get_name() if task is not None else threading.current_thread().name
    worker = ("asyncio", 0, os.getpid(), name)
    item = chunk.items[i]
    if chunk.timeout is None:
        return await arun_one_traced(chunk.fn, item, chunk.retry, log, i, worker)
    cm = asyncio.timeout(chunk.timeout)
    try:
        async with cm:
            return await arun_one_traced(chunk.fn, item, chunk.retry, log, i, worker)
    except TimeoutError:
        if not cm.expired():
            raise  # the function's own TimeoutError
        err = TaskTimeoutError(
            f"task {_fn_name(chunk.fn)}({_describe(item, None)}) ran longer than "
            f"task_timeout={chunk.timeout}s and was cancelled"
        )
        for k in range(len(log) - 1, -1, -1):  # the attempt that was cancelled timed out
            e = log[k]
            if e[0] == i and e[4] == "cancelled":
                log[k] = (*e[:4], "timeout", f"TaskTimeoutError: {err}", e[6])
                break
        raise err from None


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on a loop that is being closed (as ``asyncio.run`` does)."""
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for t in tasks:
        t.cancel()
    loop.run_until_complete(_wait_all(tasks))
    for t in tasks:
        if t.cancelled():
            continue
        exc = t.exception()
        if exc is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception in an anypool asyncio task at shutdown",
                    "exception": exc,
                    "task": t,
                }
            )


async def _wait_all(tasks: set[asyncio.Task[Any]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


backend_class = AsyncioBackend
