"""The Dask backend: tasks run on a ``dask.distributed`` cluster, local or remote.

``Pool("dask")`` connects to the scheduler named by Dask's own configuration
(``dask.config.get("scheduler-address")``, which ``distributed.Client()`` honours too, for
example from the ``DASK_SCHEDULER_ADDRESS`` environment variable); without one it starts a
``distributed.LocalCluster`` of worker *processes* (``workers`` of them, one thread each: the
work is assumed to be CPU-bound Python, which threads would run one at a time) for the lifetime
of the pool and closes it, with its worker processes, at shutdown. ``Pool("dask",
address="tcp://host:8786")`` or ``Pool("dask", client=my_client)`` runs on that cluster and
leaves it running (only a client the pool created itself is closed).

What Dask can and cannot do, and how anypool maps it:

* Each chunk of a map is one Dask task (``client.submit(..., pure=False)``), wrapped in a real
  ``concurrent.futures.Future``. Chunks are sized to hold about :attr:`target_chunk_seconds`
  (0.2 s) of work, since each Dask task costs milliseconds of round trips, and the map
  engine keeps only a bounded number in flight.
* Errors raised by the function travel inside the chunk's result (as on the process backend):
  they come back as their own type with the worker's traceback as ``__cause__``. anypool's
  ``retries=`` retry them on the worker, so Dask's own ``retries=`` (which only re-runs tasks
  that *raised*) has nothing left to do.
* A worker process that dies mid-task (``os._exit``, a signal, out of memory): the scheduler
  runs the task again on another worker, up to ``distributed.scheduler.allowed-failures``
  times (3 by default; a cluster-wide setting). After that Dask gives up with ``KilledWorker``,
  which anypool raises as :class:`~anypool.WorkerCrashed`; with ``retries=N`` anypool submits
  the chunk again up to N more times first.
* ``task_timeout``: Dask cannot interrupt a running task. The task's future fails with
  :class:`~anypool.TaskTimeoutError` once the task has *run* (from the moment the worker
  reports that it started it) longer than the timeout, and the Dask task is released; the
  worker thread finishes the call in the background and its result is dropped.
* Cancelling a future, or ``shutdown(cancel_futures=True)``, releases the Dask tasks: queued
  ones never run; a running one finishes on its worker and its result is dropped.
* ``initializer`` runs once per worker process and pool, before that worker's first task of
  the pool; :func:`anypool.current_worker` gives a per-worker ``state`` dict (shared by the
  threads of a multi-threaded Dask worker). ``max_tasks_per_worker`` is not supported (Dask
  workers are long-lived; use Dask's ``--lifetime`` to restart them).
* ``max_memory_per_worker`` becomes the ``memory_limit`` of the LocalCluster the pool starts
  (Dask's nanny then restarts a worker past 95 % of it, even mid-task); on a cluster the pool
  did not start (``address=``, ``client=``) it is refused: the workers' own limit applies.
  ``task_memory_limit`` is refused (anypool does not watch Dask workers).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures as cf
import functools
import logging
import pickle
import queue
import reprlib
import threading
import uuid
import weakref
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import dask
import distributed

from .._core import _pickling
from .._core._abc import Backend, WorkerSpec
from .._core._exceptions import (
    BrokenPoolError,
    ClosedPoolError,
    ExceptionCarrier,
    InitializerError,
    TaskTimeoutError,
    WorkerCrashed,
)
from .._core._lifecycle import (
    log_finalizer_error,
    log_finalizer_timeout,
    raise_broadcast_errors,
    run_finalizer,
)
from .._core._sync import SyncFactory, register_sync_kind
from .._core._tasks import (
    ChunkResult,
    Retry,
    WorkerContext,
    available_cpus,
    call_sync,
    item_args,
    reset_current_worker,
    run_chunk,
    set_current_worker,
)
from .._core._timeouts import DeadlineWatcher

#: where a pickling error says the object was going
_TO_WORKERS = "to Dask workers"

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_live: weakref.WeakSet[DaskBackend] = weakref.WeakSet()


def _shutdown_all_at_exit() -> None:
    for b in list(_live):
        b.shutdown(wait=True, cancel_pending=True)


atexit.register(_shutdown_all_at_exit)
_log = logging.getLogger("anypool")

# -- what runs on a Dask worker ------------------------------------------------------------

#: per pool (its token) in this worker process: its WorkerContext, or the initializer's error
_contexts: dict[str, WorkerContext | _Failure] = {}
_contexts_lock = threading.Lock()


class _Failure:
    """A call's exception, carried inside a successful Dask result (private)."""

    __slots__ = ("carrier", "initializer")

    def __init__(self, exc: BaseException, initializer: bool = False) -> None:
        self.carrier = exc if isinstance(exc, ExceptionCarrier) else ExceptionCarrier(exc)
        self.initializer = initializer

    def __getstate__(self) -> tuple[ExceptionCarrier, bool]:
        return (self.carrier, self.initializer)

    def __setstate__(self, state: tuple[ExceptionCarrier, bool]) -> None:
        self.carrier, self.initializer = state


def _worker_number(worker: Any) -> int:
    """The Dask worker's name as a number: LocalCluster names its workers 0, 1, 2..."""
    name = worker.name
    if isinstance(name, int):
        return name
    try:
        return int(str(name))
    except ValueError:
        return zlib.crc32(str(name).encode()) & 0x7FFFFFFF


def _context(
    token: str,
    initializer: Callable[..., object] | None,
    initargs: tuple[Any, ...],
    worker: Any = None,
) -> WorkerContext | _Failure:
    ctx = _contexts.get(token)
    if ctx is not None:
        return ctx
    with _contexts_lock:
        ctx = _contexts.get(token)
        if ctx is not None:
            return ctx
        if worker is None:
            worker = distributed.get_worker()
        new = WorkerContext(id=_worker_number(worker), backend="dask")
        if initializer is not None:
            tok = set_current_worker(new)
            try:
                initializer(*initargs)
            except BaseException as exc:  # the pool breaks; every later task here says so
                _contexts[token] = failure = _Failure(exc, initializer=True)
                return failure
            finally:
                reset_current_worker(tok)
        _contexts[token] = new
        return new


def _run_task(token: str, topic: str, init_blob: bytes | None, payload: bytes) -> Any:
    """Run one call (or one chunk) on a Dask worker (private).

    ``payload`` is the call pickled by the client (the function with cloudpickle), so the
    scheduler, which unpickles task graphs, never needs the user's modules. The worker first
    tells the pool that the task started (for ``task_timeout`` and ``Future.running()``),
    then runs it in the pool's :class:`WorkerContext`.
    """
    worker = distributed.get_worker()
    try:
        worker.log_event(topic, worker.get_current_task())
    except Exception:  # pragma: no cover - the timeout then counts from submission
        pass
    chunk, fn_blob, args, kwargs = pickle.loads(payload)
    fn = pickle.loads(fn_blob)
    ctx = _contexts.get(token)
    if ctx is None:
        initializer, initargs = pickle.loads(init_blob) if init_blob is not None else (None, ())
        ctx = _context(token, initializer, initargs)
    if isinstance(ctx, _Failure):
        return ctx
    tok = set_current_worker(ctx)
    try:
        out: Any
        try:
            if chunk:
                out = run_chunk(fn, *args, **kwargs)
            else:
                out = call_sync(fn, args, kwargs)
        except BaseException as exc:  # sys.exit() or KeyboardInterrupt raised by the task:
            # an error of this task, sent back; escaping here would kill the Dask worker
            out = _Failure(exc)
        else:  # a value that cannot travel is named here (Dask's own error would not)
            ok, out = _pickling.sendable_result(out, fn)
            if not ok:
                out = _Failure(out)
        ctx.tasks_done += 1
        return out
    finally:
        reset_current_worker(tok)


def _broadcast_call(
    token: str, init_blob: bytes | None, fn_blob: bytes, args: tuple[Any, ...], worker: Any
) -> tuple[int, bool, Any]:
    """One broadcast call in a worker's thread pool: (worker id, ok, value or _Failure)."""
    ctx = _contexts.get(token)
    if ctx is None:
        initializer, initargs = pickle.loads(init_blob) if init_blob is not None else (None, ())
        ctx = _context(token, initializer, initargs, worker)
    if isinstance(ctx, _Failure):
        return (-1, False, ctx)
    tok = set_current_worker(ctx)
    try:
        return (ctx.id, True, call_sync(pickle.loads(fn_blob), args, {}))
    except BaseException as exc:
        return (ctx.id, False, _Failure(exc))
    finally:
        reset_current_worker(tok)


async def _broadcast_on_worker(
    token: str,
    init_blob: bytes | None,
    fn_blob: bytes,
    args: tuple[Any, ...],
    dask_worker: Any = None,
) -> tuple[int, bool, Any]:
    """Run by ``client.run`` on every worker (private): the call goes to a thread, so the
    worker's event loop keeps serving (and a coroutine function gets a loop of its own)."""
    loop = asyncio.get_running_loop()
    call = functools.partial(_broadcast_call, token, init_blob, fn_blob, args, dask_worker)
    return await loop.run_in_executor(None, call)


async def _finalize_on_worker(token: str, fin_blob: bytes, seconds: float) -> Any:
    """Run the pool's finalizer on a worker that ran its tasks (private; ``client.run``).

    Returns None, ``(worker id, _Failure)`` or ``(worker id, "timeout")``.
    """
    ctx = _contexts.get(token)
    if not isinstance(ctx, WorkerContext):
        return None
    loop = asyncio.get_running_loop()
    call = functools.partial(run_finalizer, pickle.loads(fin_blob), ctx)
    try:
        err = await asyncio.wait_for(loop.run_in_executor(None, call), seconds)
    except TimeoutError:
        return (ctx.id, "timeout")
    return None if err is None else (ctx.id, _Failure(err))


async def _forget(token: str) -> None:
    """Drop a finished pool's worker context and state on a worker (private)."""
    _contexts.pop(token, None)


# -- the client side ------------------------------------------------------------------------


def _describe(fn: Callable[..., Any], args: Sequence[Any]) -> str:
    if fn is run_chunk:
        user_fn, items = args[0], args[1]
        name = getattr(user_fn, "__qualname__", repr(user_fn))
        shown = [
            a[0] if len(a) == 1 else a
            for a in (item_args(items, i) for i in range(min(3, len(items))))
        ]
        more = f" and {len(items) - 3} more" if len(items) > 3 else ""
        return f"{name} on input(s) {_short.repr(shown)[1:-1]}{more}"
    name = getattr(fn, "__qualname__", repr(fn))
    return f"{name}{_short.repr(tuple(args))}"


class _Task:
    """One submitted call: our future, the Dask future behind it, what to resubmit."""

    __slots__ = (
        "fut",
        "dfut",
        "fn",
        "args",
        "kwargs",
        "timeout",
        "crash_retries",
        "attempt",
        "payload",
    )

    def __init__(
        self,
        fut: cf.Future[Any],
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        timeout: float | None,
        crash_retries: int,
    ) -> None:
        self.fut = fut
        self.dfut: Any = None
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.timeout = timeout
        self.crash_retries = crash_retries
        self.attempt = 1
        self.payload = b""


class DaskBackend(Backend):
    """Tasks run on a ``dask.distributed`` cluster (a LocalCluster or a remote scheduler)."""

    name = "dask"
    #: max_memory_per_worker= becomes the memory_limit of the LocalCluster the pool starts
    memory_options = frozenset({"max_memory_per_worker"})
    option_names = ("address", "client")
    requires_pickle = True
    shares_memory = False
    sync_kind = "dask"  # Dask's distributed Lock, Semaphore, Event, Queue, Variable
    # a Dask task costs about 5 ms of round trips on a loaded 2-core machine (client.submit +
    # gather, measured in benchmarks/run.py --only x): 0.2 s chunks keep that near 2 %, and
    # few enough futures exist at a time
    target_chunk_seconds = 0.2

    def __init__(self, spec: WorkerSpec) -> None:
        super().__init__(spec)
        opts = dict(spec.options)
        self._address: str | None = opts.pop("address", None)
        self._given_client: Any = opts.pop("client", None)
        if opts:  # pragma: no cover - the Pool checks option names first
            raise TypeError("unknown option(s) for the dask backend: " + ", ".join(sorted(opts)))
        if self._address is not None and not isinstance(self._address, str):
            raise TypeError(
                f"address must be a scheduler address such as 'tcp://host:8786', "
                f"got {self._address!r}"
            )
        if self._given_client is not None and not isinstance(
            self._given_client, distributed.Client
        ):
            raise TypeError(
                f"client must be a distributed.Client, got {type(self._given_client).__name__}"
            )
        if self._address is not None and self._given_client is not None:
            raise ValueError("pass either address= or client=, not both")
        if spec.max_tasks_per_worker is not None:
            raise ValueError(
                "max_tasks_per_worker is not supported on the dask backend: Dask workers are "
                "long-lived processes shared by every task; restart them by time with Dask's "
                "own worker lifetime (`dask worker --lifetime 1h --lifetime-restart`)"
            )
        if spec.inner_threads not in ("auto", None):
            raise ValueError(
                "inner_threads= is not supported on the dask backend: its workers are shared "
                "by every client. Set OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS "
                "in the workers' environment (a LocalCluster's nanny sets them to 1), or leave "
                "inner_threads unset"
            )
        self._token = uuid.uuid4().hex
        self._topic = f"anypool-start-{self._token}"
        self._client: Any = None
        self._cluster: Any = None
        self._own_client = False
        self._workers_given = True
        self._workers = spec.workers
        self._lock = threading.Lock()
        self._tasks: dict[str, _Task] = {}  # by Dask key, while in flight
        self._abandoned: dict[str, _Task] = {}  # timed out, still running on a worker
        self._idle = threading.Condition(self._lock)
        self._closed = False
        self._stopped = False
        self._broken: BaseException | None = None
        self._watcher: DeadlineWatcher | None = None
        self._fn_cache: tuple[Callable[..., Any], bytes] | None = None
        self._init_blob: bytes | None = None
        if spec.initializer is not None:
            self._init_blob = self._dumps((spec.initializer, spec.initargs), "the initializer")
        self._closer: threading.Thread | None = None
        self._close_hooks: list[Callable[[], None]] = []
        self._results: queue.SimpleQueue[tuple[Any, Any, BaseException | None] | None] = (
            queue.SimpleQueue()
        )
        self._results_thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def configure(self, workers_given: bool) -> None:
        """Told by the Pool whether ``workers=`` was given (else: the cluster's size)."""
        self._workers_given = workers_given

    @classmethod
    def default_workers(cls) -> int:
        """A LocalCluster gets one single-threaded worker process per CPU."""
        return available_cpus()

    def _refuse_memory_option(self, where: str) -> None:
        """max_memory_per_worker= on a cluster the pool did not start: explain."""
        if self.spec.max_memory_per_worker is not None:
            raise ValueError(
                f"max_memory_per_worker= cannot be applied to {where}: its workers were "
                "started with their own memory limit, which applies (`dask worker "
                "--memory-limit 2GB`, or LocalCluster(memory_limit=...)). Leave out "
                "max_memory_per_worker=, or let the pool start its own LocalCluster (no "
                "address= or client=)"
            )

    def start(self) -> None:
        """Connect to the cluster (or start a LocalCluster) now, so a bad address fails here."""
        if self._given_client is not None:
            self._refuse_memory_option("the cluster of the given client=")
            self._client = self._given_client
        else:
            address = self._address or dask.config.get("scheduler-address", None)
            if address:
                self._refuse_memory_option(f"the cluster at {address!r}")
                try:
                    self._client = distributed.Client(address, set_as_default=False)  # type: ignore[no-untyped-call]
                except OSError as exc:
                    raise ConnectionError(
                        f"cannot connect to the Dask scheduler at {address!r}: {exc}. Start one "
                        "with `dask scheduler` (and workers with `dask worker ADDRESS`), or "
                        "leave out address= to run on a LocalCluster"
                    ) from exc
            else:
                # one task per worker at a time (no prefetch): a worker that dies takes only
                # the task it was running with it, and cancelled tasks are still queued; no
                # statistical profiler in the workers (it samples every thread every 10 ms,
                # taking the GIL from the task; on a loaded 2-core machine turning it off
                # looked worth 0-15 % on the 1 ms CPU workload, within the noise)
                settings = {
                    "distributed.scheduler.worker-saturation": 1.0,
                    "distributed.worker.profile.enabled": False,
                }
                with dask.config.set(settings):
                    self._cluster = distributed.LocalCluster(  # type: ignore[no-untyped-call]
                        n_workers=self.spec.workers,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        scheduler_port=0,
                        dashboard_address=":0",  # a free port: never clashes on 8787
                        silence_logs=logging.ERROR,
                        # Dask's nanny restarts a worker that grows past 95 % of this
                        memory_limit=self.spec.max_memory_per_worker or "auto",
                    )
                try:
                    self._client = distributed.Client(  # type: ignore[no-untyped-call]
                        self._cluster, set_as_default=False
                    )
                except BaseException:
                    self._cluster.close()
                    raise
            self._own_client = True
        if self._cluster is None and not self._workers_given:
            threads = sum(self._client.nthreads().values())
            self._workers = max(1, threads)
        self._results_thread = threading.Thread(
            target=self._results_loop, name="anypool-dask-results", daemon=True
        )
        self._results_thread.start()
        self._client.subscribe_topic(self._topic, self._on_started)
        _live.add(self)

    def add_close_hook(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` at shutdown, once the pool's tasks are done, while the client is
        still open (the pool's primitives remove their state from the scheduler there)."""
        with self._lock:
            self._close_hooks.append(hook)

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` this pool uses."""
        return self._client

    @property
    def max_chunks_in_flight(self) -> int:
        """Four tasks per worker thread: a Dask round trip costs milliseconds, so tasks wait
        at the scheduler (not on the workers: one at a time each) ready to go."""
        return max(4, 4 * self._workers)

    def effective_workers(self) -> int:
        """``workers=``; on a cluster the pool did not start, its total threads by default."""
        return self._workers

    def check_callable(self, fn: Callable[..., Any]) -> None:
        """The function must be picklable (cloudpickle handles lambdas and closures)."""
        self._fn_blob(fn)

    def owns_current_thread(self) -> bool:
        """True on the pool's results thread, where the futures' done-callbacks run."""
        return self._results_thread is threading.current_thread()

    # -- submitting -----------------------------------------------------------------------
    def submit(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> cf.Future[Any]:
        """Run ``fn(*args, **kwargs)`` as one Dask task."""
        return self._submit(fn, args, kwargs, timeout, 0)

    def submit_chunk(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        retry: Retry,
        *,
        timeout: float | None = None,
    ) -> cf.Future[ChunkResult]:
        """A chunk is one Dask task running ``run_chunk``; crashed chunks are resubmitted."""
        # a crash is retried by the one rule: when retry_on matches WorkerCrashed
        crash_retries = retry.attempts if retry.covers(WorkerCrashed) else 0
        return self._submit(run_chunk, (fn, items, retry), {}, timeout, crash_retries)

    def _submit(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        timeout: float | None,
        crash_retries: int,
    ) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        task = _Task(fut, fn, args, kwargs, timeout, crash_retries)
        if self._broken is None and not self._closed:
            task.payload = self._payload(task)  # pickling errors surface here, in the caller
        with self._lock:
            if self._broken is not None:
                raise BrokenPoolError(str(self._broken)) from self._broken
            if self._closed:
                raise ClosedPoolError("cannot submit to a pool that was shut down")
            self._send(task)
        fut.add_done_callback(self._on_our_future_done)
        return fut

    # -- pickling with clear errors -----------------------------------------------------
    def _dumps(self, obj: Any, what: str) -> bytes:
        return _pickling.dumps(obj, what, _TO_WORKERS)

    def _fn_blob(self, fn: Callable[..., Any]) -> bytes:
        """cloudpickle ``fn`` once per distinct function (a one-entry cache)."""
        cached = self._fn_cache
        if cached is not None and cached[0] is fn:
            return cached[1]
        blob = self._dumps(fn, "the function")
        self._fn_cache = (fn, blob)
        return blob

    def _payload(self, task: _Task) -> bytes:
        """The call as bytes: plain pickle around the cloudpickled function."""
        if task.fn is run_chunk:
            user_fn, *rest = task.args
            body: tuple[Any, ...] = (True, self._fn_blob(user_fn), tuple(rest), task.kwargs)
        else:
            body = (False, self._fn_blob(task.fn), tuple(task.args), task.kwargs)
        parts = (
            _pickling.chunk_parts(task.args[1])
            if task.fn is run_chunk
            else _pickling.call_parts(task.args, task.kwargs)
        )
        return _pickling.dump_call_or_explain(body, parts, "the task", _TO_WORKERS)

    def _send(self, task: _Task) -> None:
        """Submit ``task`` to Dask (called with ``self._lock`` held)."""
        user_fn = task.args[0] if task.fn is run_chunk else task.fn
        name = getattr(user_fn, "__name__", "task")
        key = f"anypool-{name}-{uuid.uuid4().hex}"
        dfut = self._client.submit(
            _run_task,
            self._token,
            self._topic,
            self._init_blob,
            task.payload,
            key=key,
            pure=False,
        )
        task.dfut = dfut
        self._tasks[key] = task
        self._client.loop.add_callback(self._fetch, dfut)

    async def _fetch(self, dfut: Any) -> None:
        """Wait for a Dask future and fetch its result on the client's event loop.

        Many fetches run at once there (one blocking ``result()`` per future on one thread
        cost a round trip each, one after the other); the outcome goes to the pool's results
        thread, where futures are completed and their callbacks run.
        """
        value: Any = None
        error: BaseException | None = None
        try:
            value = await self._client.gather(dfut, asynchronous=True)
        except BaseException as exc:  # the task's error, KilledWorker, or cancelled
            error = exc
        self._results.put((dfut, value, error))

    # -- events from Dask -----------------------------------------------------------------
    def _on_started(self, event: tuple[float, Any]) -> None:
        """A worker started a task (runs on the client's event loop: quick, never blocks)."""
        key = event[1]
        task = self._tasks.get(key)
        if task is None:
            return
        fut = task.fut
        with self._lock:
            if fut.done() or fut.running():
                return
            if not fut.set_running_or_notify_cancel():
                return
        if task.timeout is not None:
            self._watch(task, key)

    def _watch(self, task: _Task, key: str) -> None:
        if self._watcher is None:
            with self._lock:
                if self._watcher is None:
                    self._watcher = DeadlineWatcher("anypool-dask-timeouts")
        timeout = task.timeout
        assert timeout is not None

        def expire() -> None:
            with self._lock:
                if task.fut.done() or self._tasks.get(key) is not task:
                    return
                # the Dask task keeps running on its worker: keep wanting it, so that the
                # scheduler knows that worker is busy and sends other tasks elsewhere (a
                # released task would still hold the worker's thread, unseen); it is dropped
                # when it ends, or when the pool closes
                del self._tasks[key]
                self._abandoned[key] = task
                if not self._tasks:
                    self._idle.notify_all()
            try:
                task.fut.set_exception(
                    TaskTimeoutError(
                        f"task {_describe(task.fn, task.args)} ran longer than "
                        f"task_timeout={timeout}s; Dask cannot stop a running task: its worker "
                        "finishes the call in the background and the result is dropped"
                    )
                )
            except cf.InvalidStateError:
                pass

        self._watcher.add(timeout, expire)

    def _results_loop(self) -> None:
        """The results thread: complete our futures as Dask's finish (their callbacks run here)."""
        while True:
            item = self._results.get()
            if item is None:
                return
            try:
                self._on_dask_done(*item)
            except BaseException:  # pragma: no cover - a bug: never leave a future hanging
                _log.exception("anypool: the dask backend failed to complete a task")
            del item  # its result belongs to the future alone while this thread waits

    def _on_dask_done(self, dfut: Any, value: Any, error: BaseException | None) -> None:
        """A Dask future finished (runs on the results thread)."""
        key = dfut.key
        task = self._tasks.get(key)
        if task is None or task.dfut is not dfut:
            with self._lock:
                abandoned = self._abandoned.pop(key, None)
            if abandoned is not None:  # a timed-out task ended at last: forget its result
                abandoned.dfut.release()
            return
        fut = task.fut
        if error is not None and dfut.status == "cancelled":
            error = cf.CancelledError()
        if error is not None and isinstance(error, distributed.KilledWorker):
            with self._lock:
                if task.crash_retries > 0 and not self._closed and not fut.done():
                    task.crash_retries -= 1
                    task.attempt += 1
                    del self._tasks[key]
                    self._send(task)
                    return
            error = self._crashed(task, error)
        with self._lock:
            self._tasks.pop(key, None)
            if not self._tasks:
                self._idle.notify_all()
        if fut.done():
            return
        if isinstance(error, cf.CancelledError):
            fut.cancel()
            return
        if isinstance(value, _Failure):
            original = value.carrier.rebuild()
            if value.initializer:
                err = InitializerError(
                    f"the pool's initializer {self.spec.initializer!r} raised "
                    f"{type(original).__name__}: {original}"
                )
                err.__cause__ = original
                self._break(err)
                original = err
            self._finish(fut, error=original)
        elif error is not None:
            if isinstance(error, ImportError | AttributeError) and not isinstance(
                error, WorkerCrashed
            ):
                error.add_note(
                    "anypool: on Dask, the function's module (and everything it imports) must "
                    "be importable on the workers; functions defined in __main__ travel by value"
                )
            self._finish(fut, error=error)
        else:
            self._finish(fut, value=value)

    def _crashed(self, task: _Task, killed: BaseException) -> WorkerCrashed:
        last = getattr(killed, "last_worker", None)
        addr = getattr(last, "address", "?")
        tries = getattr(killed, "allowed_failures", 0) + 1
        err = WorkerCrashed(
            f"Dask worker {addr} died while running task {_describe(task.fn, task.args)}; the "
            f"scheduler ran it on {tries} worker(s) and each died (its allowed-failures "
            "setting)"
            + (f"; anypool gave up after {task.attempt} attempts" if task.attempt > 1 else ""),
            task=_describe(task.fn, task.args),
        )
        err.__cause__ = killed
        return err

    @staticmethod
    def _finish(fut: cf.Future[Any], value: Any = None, error: BaseException | None = None) -> None:
        try:
            if fut.running() or fut.set_running_or_notify_cancel():
                if error is not None:
                    fut.set_exception(error)
                else:
                    fut.set_result(value)
        except (cf.InvalidStateError, RuntimeError):
            pass  # cancelled or timed out meanwhile

    def _on_our_future_done(self, fut: cf.Future[Any]) -> None:
        """Our future was cancelled (or timed out): release its Dask task."""
        if not fut.cancelled():
            return
        with self._lock:
            for key, task in list(self._tasks.items()):
                if task.fut is fut:
                    del self._tasks[key]
                    task.dfut.release()
            if not self._tasks:
                self._idle.notify_all()

    def _break(self, err: BaseException) -> None:
        with self._lock:
            if self._broken is None:
                self._broken = err
            tasks = list(self._tasks.values())
        for t in tasks:
            self._finish(t.fut, error=err)

    # -- shutdown -------------------------------------------------------------------------
    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Stop accepting work; cancel or finish what is in flight; close what we started."""
        with self._lock:
            self._closed = True
            tasks = list(self._tasks.values())
        if cancel_pending:
            for t in tasks:
                t.fut.cancel()
        if wait:
            self._wait_idle()
            self._close()
            return
        with self._lock:
            if self._closer is None and not self._stopped:
                self._closer = threading.Thread(
                    target=self._close_when_idle, name="anypool-dask-closer", daemon=True
                )
                self._closer.start()

    def _wait_idle(self) -> None:
        with self._lock:
            while self._tasks:
                self._idle.wait()

    def _close_when_idle(self) -> None:
        self._wait_idle()
        self._close()

    def terminate(self) -> None:
        """Cancel everything now and close the client (and the LocalCluster we started)."""
        with self._lock:
            self._closed = True
            tasks = list(self._tasks.values())
        for t in tasks:
            t.fut.cancel()
        self._close()

    def _close(self) -> None:
        with self._lock:
            if self._stopped:
                closer = self._closer
                stopped = True
            else:
                self._stopped = True
                closer = None
                stopped = False
        if stopped:
            if closer is not None and closer is not threading.current_thread():
                closer.join()
            return
        _live.discard(self)
        if self._watcher is not None:
            self._watcher.close()
        client = self._client
        if client is None:
            return
        with self._lock:
            abandoned = list(self._abandoned.values())
            self._abandoned.clear()
        for t in abandoned:
            t.dfut.release()
        for hook in self._close_hooks:  # leave nothing of ours on a cluster that lives on
            try:
                hook()
            except Exception:  # pragma: no cover - never keep the pool from closing
                _log.exception("anypool: a dask clean-up step failed")
        self._close_hooks.clear()
        try:
            client.unsubscribe_topic(self._topic)
        except Exception:
            pass
        if self.spec.finalizer is not None:
            self._run_finalizers(client)
        if self._cluster is None:
            try:  # drop this pool's worker state on a cluster that lives on
                client.run(_forget, self._token, wait=False)
            except Exception:
                pass
        if self._own_client:
            client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._results.put(None)
        rt = self._results_thread
        if rt is not None and rt is not threading.current_thread():
            rt.join()
        closer = self._closer
        if closer is not None and closer is not threading.current_thread():
            closer.join()

    def _run_finalizers(self, client: Any) -> None:
        """At shutdown: the finalizer on every worker that ran this pool's tasks (best effort:
        a worker that died or left the cluster is not reached)."""
        blob = self._dumps(self.spec.finalizer, "the finalizer")
        timeout = self.spec.finalizer_timeout
        try:
            replies = client.run(_finalize_on_worker, self._token, blob, timeout)
        except Exception as exc:
            _log.warning("anypool: the dask pool could not run its finalizer: %s", exc)
            return
        for reply in replies.values():
            if reply is None:
                continue
            wid, outcome = reply
            if isinstance(outcome, _Failure):
                log_finalizer_error(self.name, wid, outcome.carrier.rebuild())
            else:
                log_finalizer_timeout(
                    self.name, wid, timeout, "it was left running in the worker's thread"
                )

    # -- broadcast ------------------------------------------------------------------------
    def broadcast(self, fn: Callable[..., Any], args: Sequence[Any]) -> dict[int, Any]:
        """Run ``fn(*args)`` once on every worker of the cluster (``client.run``).

        It runs in a thread of each worker beside any running task (Dask's ``Client.run``
        does not wait for the worker to be free); the pool's initializer runs first on a
        worker that has not run one of its tasks yet.
        """
        with self._lock:
            if self._broken is not None:
                raise BrokenPoolError(str(self._broken)) from self._broken
            if self._closed:
                raise ClosedPoolError("cannot broadcast to a pool that was shut down")
        fn_blob = self._fn_blob(fn)
        if _pickling.dumps_fast(tuple(args)) is None:  # name the argument that cannot travel
            _pickling.find_unpicklable(_pickling.call_parts(args, {}), _TO_WORKERS)
        token, init = self._token, self._init_blob
        replies = self._client.run(_broadcast_on_worker, token, init, fn_blob, tuple(args))
        results: dict[int, Any] = {}
        errors: dict[int, BaseException] = {}
        for wid, ok, value in replies.values():
            if ok:
                results[wid] = value
            elif isinstance(value, _Failure) and value.initializer:
                original = value.carrier.rebuild()
                err = InitializerError(
                    f"the pool's initializer {self.spec.initializer!r} raised "
                    f"{type(original).__name__}: {original}"
                )
                err.__cause__ = original
                raise err
            else:
                errors[wid] = value.carrier.rebuild()
        raise_broadcast_errors(self.name, fn, errors)
        return dict(sorted(results.items()))


def _dask_sync(backend: Backend) -> SyncFactory:
    from ._dask_sync import DaskSync

    return DaskSync(backend)


register_sync_kind("dask", _dask_sync)
backend_class = DaskBackend
