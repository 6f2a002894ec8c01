"""The thread backend: a bounded set of worker threads in this process.

Good for I/O-bound work (the GIL is released while waiting). Workers start on demand, up to
``workers``. A task that overruns ``task_timeout`` fails at once with
:class:`~anypool.TaskTimeoutError` and its worker is *abandoned*: Python cannot stop a running
thread, so the thread finishes the call in the background (its result is dropped), a fresh
worker takes its place, and the abandoned thread never delays interpreter exit (it is a daemon
thread). At most ``workers`` threads are abandoned at a time; past that the pool stops
replacing them until some finish.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import itertools
import queue
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from .._core._abc import Backend, WorkerSpec
from .._core._exceptions import BrokenPoolError, ClosedPoolError, InitializerError, TaskTimeoutError
from .._core._lifecycle import (
    log_finalizer_error,
    log_finalizer_timeout,
    raise_broadcast_errors,
    run_finalizer,
)
from .._core._tasks import (
    WorkerContext,
    available_cpus,
    call_sync,
    current_worker,
    set_cpu_share,
    set_current_worker,
)
from .._core._timeouts import DeadlineWatcher

_WorkItem = tuple[Callable[..., Any], Sequence[Any], dict[str, Any], "cf.Future[Any]", float | None]
_live: weakref.WeakSet[ThreadBackend] = weakref.WeakSet()


def _shutdown_all_at_exit() -> None:
    for b in list(_live):
        b.shutdown(wait=True)


atexit.register(_shutdown_all_at_exit)


class _Slot:
    """One worker thread's bookkeeping."""

    __slots__ = ("thread", "ctx", "abandoned", "stopping")

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.abandoned = False
        self.thread: threading.Thread | None = None
        #: set once the worker left its task loop (its finalizer, if any, runs next)
        self.stopping = threading.Event()


class _BroadcastCall:
    """One :meth:`ThreadBackend.broadcast`: each worker thread runs it once.

    The call is queued once per live worker like a task; a worker that ran it waits at the
    barrier until every other worker has run it too, so no worker takes two of them.
    """

    def __init__(self, fn: Callable[..., Any], args: Sequence[Any], parties: int) -> None:
        self.fn = fn
        self.args = args
        self.barrier = threading.Barrier(parties)

    def __call__(self) -> tuple[int, bool, Any]:
        ctx = current_worker()
        ctx.tasks_done -= 1  # not a task: the worker loop counts it, this undoes that
        try:
            outcome: tuple[bool, Any] = (True, call_sync(self.fn, self.args, {}))
        except BaseException as exc:
            outcome = (False, exc)
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:  # the broadcast was abandoned (see broadcast)
            pass
        return (ctx.id, *outcome)


class ThreadBackend(Backend):
    """Worker threads fed from one queue."""

    name = "thread"
    runs_on_threads = True
    target_chunk_seconds = 0.005

    def __init__(self, spec: WorkerSpec) -> None:
        super().__init__(spec)
        self._queue: queue.SimpleQueue[_WorkItem | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Semaphore(0)
        self._slots: set[_Slot] = set()
        self._abandoned = 0
        self._ids = itertools.count()
        self._closed = False
        self._broken: BaseException | None = None
        self._watcher: DeadlineWatcher | None = None
        self._broadcast_lock = threading.Lock()  # one broadcast at a time (see _BroadcastCall)
        #: each worker thread's share of the CPUs: the default size of a pool a task starts
        self._cpu_share = max(1, available_cpus() // max(1, spec.workers))

    def start(self) -> None:
        """Threads start on demand; nothing to do yet."""
        _live.add(self)

    @classmethod
    def default_workers(cls) -> int:
        """``min(32, CPUs + 4)``, as ``ThreadPoolExecutor`` does."""
        return min(32, available_cpus() + 4)

    def effective_workers(self) -> int:
        """The configured number of worker threads."""
        return self.spec.workers

    def submit(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> cf.Future[Any]:
        """Queue the call for a worker thread."""
        fut: cf.Future[Any] = cf.Future()
        with self._lock:
            if self._broken is not None:
                raise BrokenPoolError(str(self._broken)) from self._broken
            if self._closed:
                raise ClosedPoolError("cannot submit to a pool that was shut down")
            self._queue.put((fn, args, kwargs, fut, timeout))
            if not self._idle.acquire(blocking=False):
                self._maybe_add_worker()
        return fut

    def owns_current_thread(self) -> bool:
        """True inside a task (or a done-callback) running on one of the worker threads."""
        me = threading.current_thread()
        return any(slot.thread is me for slot in list(self._slots))

    def _maybe_add_worker(self) -> None:
        # called with self._lock held
        active = len(self._slots) - self._abandoned
        if active >= self.spec.workers:
            return
        slot = _Slot(WorkerContext(id=next(self._ids), backend=self.name))
        t = threading.Thread(
            target=self._worker, args=(slot,), name=f"anypool-thread-{slot.ctx.id}", daemon=True
        )
        slot.thread = t
        slot.ctx.thread = t.name
        self._slots.add(slot)
        t.start()

    def _worker(self, slot: _Slot) -> None:
        set_current_worker(slot.ctx)
        # a pool a task starts here sizes itself to this thread's share of the CPUs
        set_cpu_share(self._cpu_share, thread=True)
        spec = self.spec
        initialized = False
        try:
            if spec.initializer is not None:
                try:
                    spec.initializer(*spec.initargs)
                except BaseException as exc:
                    self._break(exc)
                    return
            initialized = True
            limit = spec.max_tasks_per_worker
            q = self._queue
            while True:
                item = q.get()
                if item is None:
                    q.put(None)  # wake the next worker too
                    return
                fn, args, kwargs, fut, timeout = item
                if fut.set_running_or_notify_cancel():
                    handle = None
                    if timeout is not None:
                        handle = self._watch(timeout, fut, slot, fn)
                    try:
                        result = call_sync(fn, args, kwargs)
                    except BaseException as exc:
                        if handle is not None:
                            DeadlineWatcher.cancel(handle)
                        if not fut.done():
                            try:
                                fut.set_exception(exc)
                            except cf.InvalidStateError:
                                pass
                    else:
                        if handle is not None:
                            DeadlineWatcher.cancel(handle)
                        if not fut.done():
                            try:
                                fut.set_result(result)
                            except cf.InvalidStateError:
                                pass
                    # the result too: the caller frees it when it lets go of it
                    result = None
                    del fn, args, kwargs, fut, item
                if slot.abandoned:
                    return
                slot.ctx.tasks_done += 1
                if limit is not None and slot.ctx.tasks_done >= limit:
                    return
                self._idle.release()
        finally:
            slot.stopping.set()
            if initialized and spec.finalizer is not None:
                err = run_finalizer(spec.finalizer, slot.ctx)
                if err is not None:
                    log_finalizer_error(self.name, slot.ctx.id, err)
            with self._lock:
                self._slots.discard(slot)
                if slot.abandoned:
                    self._abandoned -= 1
                elif (
                    not self._closed
                    and self._broken is None
                    and limit_reached(slot, spec)
                    and not self._queue.empty()
                ):
                    # a recycled worker: start its replacement since work is waiting
                    self._maybe_add_worker()

    def _watch(
        self, timeout: float, fut: cf.Future[Any], slot: _Slot, fn: Callable[..., Any]
    ) -> list[Callable[[], None] | None]:
        if self._watcher is None:
            with self._lock:
                if self._watcher is None:
                    self._watcher = DeadlineWatcher("anypool-thread-timeouts")

        def expire() -> None:
            if fut.done():
                return
            try:
                fut.set_exception(
                    TaskTimeoutError(
                        f"task {getattr(fn, '__name__', fn)!r} ran longer than "
                        f"task_timeout={timeout}s; its thread was abandoned (threads cannot be "
                        "stopped) and a new worker took its place"
                    )
                )
            except cf.InvalidStateError:
                return
            with self._lock:
                if slot.abandoned or slot not in self._slots:
                    return
                slot.abandoned = True
                self._abandoned += 1
                if self._abandoned <= self.spec.workers and not self._closed:
                    self._maybe_add_worker()

        return self._watcher.add(timeout, expire)

    def broadcast(self, fn: Callable[..., Any], args: Sequence[Any]) -> dict[int, Any]:
        """Run ``fn(*args)`` once in every live worker thread (started if none is live).

        Each worker runs it when it takes it from the queue, after the tasks queued before
        it; a worker that ran it waits until all the others have too (during a long task of
        one worker, the others wait for it). One broadcast runs at a time.
        """
        call: _BroadcastCall
        futures: list[cf.Future[Any]] = []
        with self._broadcast_lock:
            with self._lock:
                if self._broken is not None:
                    raise BrokenPoolError(str(self._broken)) from self._broken
                if self._closed:
                    raise ClosedPoolError("cannot broadcast to a pool that was shut down")
                live = len(self._slots) - self._abandoned
                parties = live or self.spec.workers
                call = _BroadcastCall(fn, args, parties)
                for _ in range(parties):
                    fut: cf.Future[Any] = cf.Future()
                    self._queue.put((call, (), {}, fut, None))
                    futures.append(fut)
                    if live:
                        self._idle.acquire(blocking=False)  # the call takes an idle worker
                    else:
                        self._maybe_add_worker()
            try:
                for f in cf.as_completed(futures):
                    if f.cancelled() or f.exception() is not None:
                        call.barrier.abort()  # it will never be run by every worker
            finally:
                call.barrier.abort()
        results: dict[int, Any] = {}
        errors: dict[int, BaseException] = {}
        for f in futures:
            if f.cancelled():
                raise ClosedPoolError("the pool was shut down before the broadcast ran")
            exc = f.exception()
            if exc is not None:
                raise exc
            wid, ok, value = f.result()
            if ok:
                results[wid] = value
            else:
                errors[wid] = value
        raise_broadcast_errors(self.name, fn, errors)
        return dict(sorted(results.items()))

    def _break(self, exc: BaseException) -> None:
        err = InitializerError(
            f"the pool's initializer {self.spec.initializer!r} raised {type(exc).__name__}: {exc}"
        )
        err.__cause__ = exc
        with self._lock:
            self._broken = err
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            fut = item[3]
            if fut.set_running_or_notify_cancel():
                fut.set_exception(err)

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Stop the workers once the queue is drained (or cancel what is queued)."""
        with self._lock:
            already = self._closed
            self._closed = True
        _live.discard(self)
        wake = not already
        if cancel_pending:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    wake = True  # an earlier shutdown's wake-up: put it back
                else:
                    item[3].cancel()
        if wake:
            self._queue.put(None)
        if wait:
            me = threading.current_thread()
            for slot in list(self._slots):
                t = slot.thread
                if t is not None and t is not me and not slot.abandoned:
                    if self.spec.finalizer is None:
                        t.join()
                        continue
                    slot.stopping.wait()  # its last task may take as long as it takes
                    t.join(self.spec.finalizer_timeout)  # its finalizer may not
                    if t.is_alive():
                        log_finalizer_timeout(
                            self.name,
                            slot.ctx.id,
                            self.spec.finalizer_timeout,
                            "its thread was abandoned (threads cannot be stopped; it is a "
                            "daemon thread and never delays interpreter exit)",
                        )
        if self._watcher is not None and (wait or not self._slots):
            self._watcher.close()


def limit_reached(slot: _Slot, spec: WorkerSpec) -> bool:
    """True when the worker left because it reached ``max_tasks_per_worker``."""
    return spec.max_tasks_per_worker is not None and (
        slot.ctx.tasks_done >= spec.max_tasks_per_worker
    )


backend_class = ThreadBackend
