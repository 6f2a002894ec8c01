"""Any ``concurrent.futures.Executor`` as a backend: anypool's policy over a foreign engine.

``anypool.map(fn, items, backend=executor)`` and ``Pool(backend=executor)`` put the lazy
window, automatic chunks, order, errors, retries, progress and tracing over an executor the
caller made — the standard library's thread and process executors, loky's reusable executor,
Dask's ``client.get_executor()``, ``mpi4py.futures.MPIPoolExecutor``, Parsl's
``ParslPoolExecutor``, executorlib, ipyparallel, or on 3.14 ``InterpreterPoolExecutor``. The
executor is left running when the pool shuts down: it is the caller's.

What an arbitrary executor cannot do, this backend does not pretend to:

- **stop a running task.** ``task_timeout`` fails the task at its deadline
  (:class:`~anypool.TaskTimeoutError`) and asks the executor to cancel it; a task that has
  already started runs on in the executor, and its result is dropped.
- **per-worker state.** ``initializer=``, ``max_tasks_per_worker=`` and
  :func:`anypool.current_worker` belong to the engine: pass an initializer to the executor
  itself (``ProcessPoolExecutor(initializer=...)``).
- **primitives that reach its workers.** ``pool.Lock()``, ``pool.Queue()``... of an executor
  that runs tasks outside this process raise :class:`NotImplementedError` (a thread executor
  gets the ``threading`` kinds). ``pool.share(obj)`` returns ``obj``: it travels with the tasks.

Functions travel with cloudpickle (lambdas, closures and ``__main__`` functions work on any
executor that pickles), pickled once per map; the function's arguments go with plain
``pickle`` where they can. Arguments and results are pickled by anypool (the executor moves
bytes), so an object that cannot travel is named as on the process backend (``_pickling``).
"""

from __future__ import annotations

import concurrent.futures as cf
import pickle
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

from .._core import _pickling
from .._core._abc import Backend, WorkerSpec
from .._core._exceptions import ClosedPoolError, ExceptionCarrier, TaskTimeoutError
from .._core._pickling import dump_result
from .._core._sync import ShareMode, SyncFactory, register_sync_kind
from .._core._tasks import ChunkResult, Retry, available_cpus, call_sync, run_chunk
from .._core._timeouts import DeadlineWatcher

T = TypeVar("T")

#: the worker side's one-entry cache: the last function blob and what it unpickled to
_last: list[Any] = [b"", None]


def _load_fn(fn_blob: bytes) -> Any:
    if fn_blob != _last[0]:
        _last[1] = pickle.loads(fn_blob)
        _last[0] = fn_blob
    return _last[1]


def _run_shipped(fn_blob: bytes, call_blob: bytes) -> tuple[bool, bytes]:
    """Run in the executor's worker: unpickle the function (once per map), then call it.

    The arguments arrive pickled by the pool and the result leaves pickled by it, so an
    object that cannot travel is named the same way as on the process backend.
    """
    fn = _load_fn(fn_blob)
    try:
        args, kwargs = pickle.loads(call_blob)
        value = call_sync(fn, args, kwargs)
    except BaseException as exc:
        return dump_result(False, ExceptionCarrier(exc), fn)
    return dump_result(True, value, fn)


def _run_chunk_shipped(
    fn_blob: bytes, items_blob: bytes, retry: Retry | bytes
) -> tuple[bool, bytes]:
    """A chunk in the executor's worker: the function and ``retry_on`` arrive cloudpickled."""
    fn = _load_fn(fn_blob)
    try:
        items = pickle.loads(items_blob)
        if isinstance(retry, bytes):
            retry = pickle.loads(retry)
        result = run_chunk(fn, items, retry)  # type: ignore[arg-type]
    except BaseException as exc:
        return dump_result(False, ExceptionCarrier(exc), fn)
    return dump_result(True, result, fn)


def _unship(shipped: tuple[bool, bytes], fn: Callable[..., Any]) -> Any:
    """In the caller: the value a shipped call returned (its exception is raised)."""
    ok, blob = shipped
    try:
        value = pickle.loads(blob)
    except BaseException as exc:
        name = getattr(fn, "__qualname__", None) or repr(fn)
        raise _pickling.cannot_load(f"the result of {name}()", exc) from exc
    if ok:
        return value
    raise value.rebuild() if isinstance(value, ExceptionCarrier) else value


def describe_executor(executor: cf.Executor) -> str:
    """``module.ClassName`` of an executor, for messages."""
    cls = type(executor)
    return f"{cls.__module__}.{cls.__qualname__}"


def executor_workers(executor: cf.Executor) -> int | None:
    """How many tasks ``executor`` runs at once, where it says so (else ``None``)."""
    n = getattr(executor, "_max_workers", None)
    if isinstance(n, int) and n > 0:
        return n
    client = getattr(executor, "_client", None)  # distributed's ClientExecutor
    nthreads = getattr(client, "nthreads", None)
    if callable(nthreads):
        try:
            total = sum(int(v) for v in nthreads().values())
        except Exception:
            return None
        return total or None
    return None


class _NoPrimitives(SyncFactory):
    """The primitives of an executor whose workers are not in this process: none."""

    kind: ClassVar[str] = "executor"

    def _refuse(self, what: str) -> Any:
        raise NotImplementedError(
            f"pool.{what}() cannot be made for backend={describe_executor(self._executor)}: "
            "anypool does not own that executor's workers, so it has no lock, queue or shared "
            "value that reaches them. Use the engine's own primitives (for Dask: "
            "distributed.Lock, Queue, Variable), or run on backend='process' (or 'dask'), "
            "whose pools make them"
        )

    @property
    def _executor(self) -> cf.Executor:
        ex: cf.Executor = self.backend.spec.options["executor"]
        return ex

    def Lock(self) -> Any:
        return self._refuse("Lock")

    def RLock(self) -> Any:
        return self._refuse("RLock")

    def Semaphore(self, *args: Any, **kwargs: Any) -> Any:
        return self._refuse("Semaphore")

    def BoundedSemaphore(self, *args: Any, **kwargs: Any) -> Any:
        return self._refuse("BoundedSemaphore")

    def Event(self) -> Any:
        return self._refuse("Event")

    def Condition(self, *args: Any, **kwargs: Any) -> Any:
        return self._refuse("Condition")

    def Barrier(self, *args: Any, **kwargs: Any) -> Any:
        return self._refuse("Barrier")

    def Queue(self, *args: Any, **kwargs: Any) -> Any:
        return self._refuse("Queue")

    def Value(self, *args: Any, **kwargs: Any) -> Any:
        return self._refuse("Value")

    def dict(self) -> Any:
        return self._refuse("dict")

    def list(self) -> Any:
        return self._refuse("list")

    def Counter(self, *args: Any, **kwargs: Any) -> Any:
        return self._refuse("Counter")

    def share(self, obj: T, mode: ShareMode = "r") -> T:
        """The object itself: it is pickled with each task that takes it (each task has its
        own copy, in either ``mode``)."""
        return obj


register_sync_kind("executor", _NoPrimitives)


class ExecutorBackend(Backend):
    """Runs calls on a ``concurrent.futures.Executor`` that the caller made and keeps."""

    name = "executor"
    option_names = ("executor",)
    requires_pickle = True
    shares_memory = False
    sync_kind = "executor"
    # engines beyond one machine (Dask, Parsl, MPI) cost milliseconds per task: chunks of
    # 0.1 s keep that overhead near 1-2 %
    target_chunk_seconds = 0.1
    #: the executor runs in this process (a thread executor): no pickling
    _in_process: ClassVar[bool] = False

    def __init__(self, spec: WorkerSpec) -> None:
        super().__init__(spec)
        executor = spec.options.get("executor")
        if not isinstance(executor, cf.Executor):
            raise TypeError(
                "the executor backend needs executor=, a concurrent.futures.Executor; pass the "
                "executor itself as backend= (Pool(backend=my_executor))"
            )
        if spec.initializer is not None:
            raise ValueError(
                f"initializer= cannot be used with backend={describe_executor(executor)}: "
                "anypool does not start that executor's workers. Give the initializer to the "
                "executor itself (e.g. ProcessPoolExecutor(initializer=...)), or use "
                "backend='process'"
            )
        if spec.max_tasks_per_worker is not None:
            raise ValueError(
                "max_tasks_per_worker= cannot be used with "
                f"backend={describe_executor(executor)}: anypool does not manage that "
                "executor's workers. Set it on the executor where it has such an option "
                "(ProcessPoolExecutor(max_tasks_per_child=...)), or use backend='process'"
            )
        if spec.finalizer is not None:
            raise ValueError(
                f"finalizer= cannot be used with backend={describe_executor(executor)}: "
                "anypool does not stop that executor's workers, so it cannot run code as each "
                "one stops. Close per-worker resources in the executor's own way, or use "
                "backend='process' or 'thread'"
            )
        if isinstance(spec.inner_threads, int) and not self._in_process:
            raise ValueError(
                f"inner_threads= cannot be used with backend={describe_executor(executor)}: "
                "anypool does not start that executor's workers. Set OMP_NUM_THREADS and "
                "friends in their environment, or use backend='process'"
            )
        self.executor: cf.Executor = executor
        self._lock = threading.Lock()
        self._closed = False
        self._pending: set[cf.Future[Any]] = set()
        self._watcher: DeadlineWatcher | None = None
        self._fn_cache: tuple[Callable[..., Any], bytes] | None = None
        self._retry_cache: tuple[Retry, bytes] | None = None

    @classmethod
    def default_workers(cls) -> int:
        """Overridden per pool by :meth:`effective_workers` (the executor's own size)."""
        return available_cpus()

    def broadcast(self, fn: Callable[..., Any], args: Sequence[Any]) -> dict[int, Any]:
        """Not possible: an executor gives no way to reach each of its workers."""
        raise NotImplementedError(
            f"pool.broadcast() cannot reach each worker of "
            f"backend={describe_executor(self.executor)}: a concurrent.futures.Executor runs "
            "tasks wherever it likes. Use backend='process', 'thread' or 'dask', or the "
            "engine's own way (Dask: client.run)"
        )

    def effective_workers(self) -> int:
        """The executor's own worker count where it says so, else ``workers=``/the CPUs."""
        return self.spec.workers

    def start(self) -> None:
        """The executor is already running: nothing to start."""

    def explain(self) -> str:
        """Say where the work runs."""
        return (
            f"backend={describe_executor(self.executor)} (an executor you made; anypool "
            f"keeps up to {self.spec.workers} task(s) in flight on it and leaves it running "
            "at shutdown)"
        )

    # -- pickling --------------------------------------------------------------------------
    def _fn_blob(self, fn: Callable[..., Any]) -> bytes:
        cached = self._fn_cache
        if cached is not None and cached[0] is fn:
            return cached[1]
        blob = _pickling.dumps(fn, "the function", self._to_workers)
        self._fn_cache = (fn, blob)
        return blob

    @property
    def _to_workers(self) -> str:
        return f"to {describe_executor(self.executor)}"

    def check_callable(self, fn: Callable[..., Any]) -> None:
        """The function must pickle (cloudpickle) unless the executor runs in this process."""
        if not self._in_process:
            self._fn_blob(fn)

    # -- running ---------------------------------------------------------------------------
    def submit(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> cf.Future[Any]:
        """Submit the call to the executor; the returned future is this pool's own."""
        if self._in_process:
            return self._submit_inner(
                fn, lambda: self.executor.submit(call_sync, fn, args, kwargs), timeout
            )
        blob = self._fn_blob(fn)
        call = _pickling.dump_call_or_explain(
            (tuple(args), kwargs),
            _pickling.call_parts(args, kwargs),
            "the task",
            self._to_workers,
        )
        return self._submit_inner(
            fn, lambda: self.executor.submit(_run_shipped, blob, call), timeout, shipped=True
        )

    def _submit_inner(
        self,
        fn: Callable[..., Any],
        submit: Callable[[], cf.Future[Any]],
        timeout: float | None,
        *,
        shipped: bool = False,
    ) -> cf.Future[Any]:
        with self._lock:
            if self._closed:
                raise ClosedPoolError("cannot submit to a pool that was shut down")
        inner = submit()
        outer: cf.Future[Any] = cf.Future()
        outer.set_running_or_notify_cancel()
        with self._lock:
            self._pending.add(outer)
        handle = None if timeout is None else self._watch(timeout, fn, outer, inner)
        inner.add_done_callback(lambda f: self._settle(f, outer, handle, fn if shipped else None))
        return outer

    def _settle(
        self,
        inner: cf.Future[Any],
        outer: cf.Future[Any],
        handle: list[Callable[[], None] | None] | None,
        shipped: Callable[..., Any] | None = None,
    ) -> None:
        """Settle ``outer`` from ``inner``; ``shipped``: the function of a pickled call."""
        if handle is not None:
            DeadlineWatcher.cancel(handle)
        with self._lock:
            self._pending.discard(outer)
        if outer.done():
            return
        try:
            if inner.cancelled():
                outer.set_exception(cf.CancelledError("the executor cancelled the task"))
                return
            exc = inner.exception()
            if exc is not None:
                outer.set_exception(exc)
                return
            value = inner.result()
            if shipped is not None:
                try:
                    value = _unship(value, shipped)
                except BaseException as err:  # the task's own exception, or unpickling's
                    outer.set_exception(err)
                    return
            outer.set_result(value)
        except cf.InvalidStateError:  # a deadline set it meanwhile
            pass

    def _watch(
        self,
        timeout: float,
        fn: Callable[..., Any],
        outer: cf.Future[Any],
        inner: cf.Future[Any],
    ) -> list[Callable[[], None] | None]:
        with self._lock:
            if self._watcher is None:
                self._watcher = DeadlineWatcher("anypool-executor-timeouts")
            watcher = self._watcher

        def expire() -> None:
            running = inner.running() or inner.done()
            try:  # before cancelling: a cancel settles ``outer`` through _settle at once
                outer.set_exception(
                    TaskTimeoutError(
                        f"task {getattr(fn, '__qualname__', fn)!r} ran longer than "
                        f"task_timeout={timeout}s; "
                        + (
                            f"{describe_executor(self.executor)} cannot stop a running "
                            "task, so it runs on there and its result will be dropped"
                            if running
                            else "it had not started and was cancelled"
                        )
                    )
                )
            except cf.InvalidStateError:
                return
            if not running:
                inner.cancel()

        return watcher.add(timeout, expire)

    def submit_chunk(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        retry: Retry,
        *,
        timeout: float | None = None,
    ) -> cf.Future[ChunkResult]:
        """One chunk as one executor task; the function travels pickled once per map."""
        if self._in_process:
            return self.submit(run_chunk, (fn, items, retry), {}, timeout=timeout)
        # retry_on may name exception classes defined in __main__: cloudpickle them too
        shipped: Retry | bytes = retry
        if retry.attempts or type(retry) is not Retry:
            cached = self._retry_cache
            if cached is not None and cached[0] is retry:
                shipped = cached[1]
            else:
                shipped = _pickling.dumps(retry, "retry_on", self._to_workers)
                self._retry_cache = (retry, shipped)
        blob = self._fn_blob(fn)
        items_blob = _pickling.dump_call_or_explain(
            items, _pickling.chunk_parts(items), "the task", self._to_workers
        )
        return self._submit_inner(
            fn,
            lambda: self.executor.submit(_run_chunk_shipped, blob, items_blob, shipped),
            timeout,
            shipped=True,
        )

    def owns_current_thread(self) -> bool:
        """True on one of a thread executor's own threads."""
        threads: Any = getattr(self.executor, "_threads", None)
        return bool(threads) and threading.current_thread() in set(threads)

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Stop submitting; optionally cancel and wait for this pool's tasks.

        The executor itself is left running: it belongs to the caller.
        """
        with self._lock:
            self._closed = True
            pending = list(self._pending)
        if cancel_pending:
            for fut in pending:
                if not fut.done():
                    try:
                        fut.set_exception(cf.CancelledError("the pool was shut down"))
                    except cf.InvalidStateError:
                        pass
        if wait and pending and not self.owns_current_thread():
            cf.wait(pending)
        if self._watcher is not None:
            self._watcher.close()


class ThreadExecutorBackend(ExecutorBackend):
    """A ``ThreadPoolExecutor`` (or subclass): calls run in this process, nothing is pickled."""

    requires_pickle = False
    shares_memory = True
    sync_kind = "thread"
    target_chunk_seconds = 0.005
    _in_process = True


def backend_for(executor: cf.Executor) -> type[ExecutorBackend]:
    """The backend class for ``executor``: in-process for thread executors, else shipped."""
    if isinstance(executor, cf.ThreadPoolExecutor):
        return ThreadExecutorBackend
    return ExecutorBackend
