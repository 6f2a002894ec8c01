"""The process backend: worker processes, one task at a time each, managed by one thread.

Start method: ``forkserver`` where the platform has it (Linux), else ``spawn``. Never plain
``fork``: forking a process that runs threads (ours or yours) can copy a lock that another
thread holds and deadlock the child; CPython 3.14 moved its own default off ``fork`` for this
reason. The fork server is started once per program, with anypool preloaded, so later workers
start in milliseconds. Pass ``start_method="spawn"`` (or ``"fork"`` if you know your program
has no threads) to choose another.

Functions and arguments are pickled with cloudpickle, so lambdas, closures and functions
defined in ``__main__`` work. Each worker holds at most one task, so when a worker dies only
that task fails (:class:`~anypool.WorkerCrashed`) and a fresh worker takes its place; a task
that overruns ``task_timeout`` has its worker ended and replaced.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import functools
import itertools
import multiprocessing as mp
import multiprocessing.connection as mpc
import multiprocessing.popen_fork  # workers forked from the program (pool.share)
import multiprocessing.sharedctypes  # each worker's progress slot (RawArray)
import os
import pickle
import reprlib
import signal
import sys
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

# every process pool pickles with cloudpickle: loaded with the backend (~2 ms), not in the
# middle of the first pool's start (``import anypool`` itself stays without it)
import cloudpickle  # noqa: F401

from .._core import _pickling
from .._core._abc import Backend, PoolStats, WorkerSpec
from .._core._exceptions import (
    AnypoolInternalError,
    BrokenPoolError,
    ClosedPoolError,
    ExceptionCarrier,
    InitializerError,
    MemoryLimitExceeded,
    TaskTimeoutError,
    WorkerCrashed,
)
from .._core._lifecycle import (
    found_for_forks,
    inner_threads_for_processes,
    log_finalizer_error,
    log_finalizer_timeout,
    raise_broadcast_errors,
    user_sets_thread_vars,
)
from .._core._memory import WATCH_INTERVAL, format_size, private_rss
from .._core._observe import observer_of
from .._core._tasks import (
    NOT_STARTED,
    TRACK_ALL,
    TRACK_MAX,
    ChunkResult,
    Retry,
    available_cpus,
    item_args,
    run_chunk,
)
from . import _preload, _process_worker, _shared, _warm
from ._shared import Shared

if TYPE_CHECKING:
    from .._core._sync import SyncFactory

#: where a pickling error says the object was going
_TO_WORKERS = "to a worker process"

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_live: weakref.WeakSet[ProcessBackend] = weakref.WeakSet()
#: workers that die before they are ready, in a row, before the pool counts as broken
_MAX_STARTUP_DEATHS = 3
#: a chunk message this big (bytes) is checked for one argument object repeated in every chunk
_BIG_PAYLOAD = 8 * 2**20
#: how long a pool's first task may wait while its first workers are forked from the
#: program (seconds; see ProcessBackend._prefork): at least one is, more while the forks so
#: far took less; the rest start from the fork server as the tasks come
PREFORK_BUDGET = 0.010
#: the most work an automatic chunk holds in a long map (seconds; see
#: ProcessBackend.max_chunk_seconds): results and progress come at least this often
MAX_CHUNK_SECONDS = 0.2


def _rough_size(obj: object) -> int:
    """The size of an object's data, cheaply: buffers (numpy arrays, bytes) and containers."""
    nbytes = getattr(obj, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    try:
        return sys.getsizeof(obj)
    except TypeError:
        return 0


def _shutdown_all_at_exit() -> None:
    for b in list(_live):
        b.shutdown(wait=True, cancel_pending=True)
    sync = sys.modules.get("anypool._backends._process_sync")
    if sync is not None:  # what pools never shut down made: semaphores, shared memory
        sync.close_all_at_exit()


atexit.register(_shutdown_all_at_exit)
atexit.register(_warm._at_exit)  # runs first (last in): pools stopping at exit park nothing


def default_start_method() -> str:
    """``forkserver`` where available (Linux), else ``spawn``; never ``fork``."""
    methods = mp.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


_SIGNAL_CAUSES = {
    signal.SIGKILL: "killed by SIGKILL — often the out-of-memory killer, or `kill -9`",
    signal.SIGSEGV: "segmentation fault (SIGSEGV) — a crash in C code; the worker's stack "
    "was printed to stderr by faulthandler",
    signal.SIGABRT: "aborted (SIGABRT) — a C library called abort()",
    signal.SIGBUS: "bus error (SIGBUS) — a crash in C code",
    signal.SIGTERM: "terminated by SIGTERM",
}


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped responding"
    if exitcode < 0:
        try:
            sig = signal.Signals(-exitcode)
        except ValueError:
            return f"killed by signal {-exitcode}"
        return _SIGNAL_CAUSES.get(sig, f"killed by {sig.name}")
    return f"exited with code {exitcode} (os._exit() or a C extension called exit())"


class _Task:
    __slots__ = ("fut", "payload", "fn", "args", "timeout", "crash_retries", "attempt", "track")

    def __init__(
        self,
        fut: cf.Future[Any],
        payload: bytes,
        fn: Callable[..., Any],
        args: Sequence[Any],
        timeout: float | None,
        crash_retries: int,
    ) -> None:
        self.fut = fut
        self.payload = payload
        self.fn = fn
        self.args = args
        self.timeout = timeout
        self.crash_retries = crash_retries
        self.attempt = 1
        self.track = False  # a large chunk run again to find the item that crashed

    def describe(self) -> str:
        if self.fn is run_chunk:
            user_fn, items, _ = self.args
            name = getattr(user_fn, "__qualname__", repr(user_fn))
            shown = [
                args[0] if len(args) == 1 else args
                for args in (item_args(items, i) for i in range(min(3, len(items))))
            ]
            more = f" and {len(items) - 3} more" if len(items) > 3 else ""
            return f"{name} on input(s) {_short.repr(shown)[1:-1]}{more}"
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        return f"{name}{_short.repr(tuple(self.args))}"


class _Targeted(_Task):
    """A :meth:`ProcessBackend.broadcast` call for one given worker (not counted as a task)."""

    __slots__ = ()


#: a broadcast waiting for the dispatcher: its message, the function, the arguments, and the
#: future of {worker id: that worker's call's future}
_BroadcastRequest = tuple[bytes, Callable[..., Any], Sequence[Any], "cf.Future[dict[int, Any]]"]


class _Payload(bytes):
    """A task message that refers to its function by key; carries the function's bytes.

    The function (with what it binds: ``partial(fn, big_array)``, a closure) is sent to a
    worker once, in a message of its own, before the first task that refers to it.
    """

    fn_key: int
    fn_blob: bytes
    #: shared arrays it refers to whose copy into shared memory was put off (see _shared)
    shares: tuple[Shared[Any], ...] = ()


class _Worker:
    __slots__ = (
        "id",
        "proc",
        "conn",
        "task",
        "deadline",
        "started",
        "done",
        "ready",
        "progress",
        "fn_key",
        "leaving",
        "memory_kill",
        "inherited",
    )

    def __init__(self, wid: int, proc: Any, conn: mpc.Connection, progress: Any) -> None:
        self.id = wid
        self.proc = proc
        self.conn = conn
        #: shared with the worker: the index of the item of its chunk that is running
        self.progress = progress
        self.task: _Task | None = None
        self.deadline: float | None = None
        self.started = 0.0
        self.done = 0
        self.ready = False  # set when the worker says its initializer has run
        self.fn_key = -1  # the function the worker holds (see _Payload)
        #: it said it leaves after its task, over its memory limit (max_memory_per_worker)
        self.leaving = False
        #: (the task it ran, its size): the memory watchdog ended it (task_memory_limit)
        self.memory_kill: tuple[_Task, int] | None = None
        #: the shared arrays it started with, as a fork (see _shared._INHERITED)
        self.inherited: frozenset[str] = frozenset()


def _one(items: Sequence[Any], k: int) -> Any:
    args = item_args(items, k)
    return args[0] if len(args) == 1 else args


def _splice(outer: cf.Future[Any], k: int, crashed: BaseException, inner: cf.Future[Any]) -> None:
    """The chunk's result: the re-run of its other items, with the crashed item put back."""
    if outer.done():
        return
    exc = inner.exception()
    if exc is not None:
        outer.set_exception(exc)
        return
    res: ChunkResult = inner.result()
    values = [*res.values[:k], None, *res.values[k:]]
    errors = {(i if i < k else i + 1): e for i, e in (res.errors or {}).items()}
    errors[k] = crashed
    trace = None
    if res.trace is not None:
        trace = [(e[0] if e[0] < k else e[0] + 1, *e[1:]) for e in res.trace]
    outer.set_result(ChunkResult(values, errors, res.wall, res.cpu, trace))


def _rejoin(
    outer: cf.Future[Any], pieces: list[tuple[int, cf.Future[Any]]], _: object = None
) -> None:
    """The chunk's result once each piece it was run again in is done: their results in
    order (see :meth:`ProcessBackend._split`)."""
    if outer.done() or not all(f.done() for _, f in pieces):
        return
    values: list[Any] = []
    errors: dict[int, BaseException] = {}
    trace: list[Any] | None = None
    wall = cpu = 0.0
    for base, f in pieces:
        exc = f.exception()
        if exc is not None:
            outer.set_exception(exc)
            return
        res: ChunkResult = f.result()
        values.extend(res.values)
        errors.update({base + i: e for i, e in (res.errors or {}).items()})
        if res.trace is not None:
            trace = (trace or []) + [(e[0] + base, *e[1:]) for e in res.trace]
        wall += res.wall
        cpu += res.cpu
    outer.set_result(ChunkResult(values, errors or None, wall, cpu, trace))


def _release(w: _Worker) -> None:
    """Close a finished worker's process handle now (its sentinel and pipe descriptors).

    Left to the garbage collector, they stay open while an exception's traceback (a crashed
    task's error) keeps the worker reachable through a reference cycle.
    """
    try:
        w.proc.close()
    except ValueError:  # still running: it is ended elsewhere, and closed then
        pass


class ProcessBackend(Backend):
    """Worker processes fed one task at a time by a dispatcher thread."""

    name = "process"
    sync_kind = "process"
    option_names = ("start_method", "mp_context")
    memory_options = frozenset({"max_memory_per_worker", "task_memory_limit"})
    requires_pickle = True
    shares_memory = False
    target_chunk_seconds = 0.02

    def __init__(self, spec: WorkerSpec) -> None:
        super().__init__(spec)
        opts = dict(spec.options)
        method = opts.pop("start_method", None) or opts.pop("mp_context", None)
        if opts:
            raise TypeError(
                "unknown option(s) for the process backend: "
                + ", ".join(sorted(opts))
                + "; it accepts start_method= ('forkserver', 'spawn' or 'fork')"
            )
        self._ctx: Any
        if isinstance(method, str) or method is None:
            name = method or default_start_method()
            if name not in mp.get_all_start_methods():
                raise ValueError(
                    f"start_method={name!r} is not available here; choose one of "
                    + ", ".join(repr(m) for m in mp.get_all_start_methods())
                )
            self._ctx = mp.get_context(name)
        else:
            self._ctx = method  # a multiprocessing context object
        self.start_method: str = self._ctx.get_start_method()
        self._init_blob: bytes | None = None
        if spec.initializer is not None:
            self._init_blob = self._dumps((spec.initializer, spec.initargs), "the initializer")
        self._lock = threading.Lock()
        self._queue: deque[_Task] = deque()
        self._workers: dict[int, _Worker] = {}
        self._ids = itertools.count()
        self._closing = False
        self._cancel_on_close = False
        self._broken: BaseException | None = None
        self._startup_deaths = 0
        self._thread: threading.Thread | None = None
        self._start_all = False  # start every worker without waiting for tasks (under _lock)
        self._prefork_asked = False  # see _prefork
        self._wake_r, self._wake_w = os.pipe()
        self._woken = False
        self._fn_cache: tuple[Callable[..., Any], int, bytes, tuple[Shared[Any], ...]] | None = None
        self._fn_keys = itertools.count()
        self._repeated_arg: tuple[int, Any] | None = None  # see _warn_repeated
        self._warned_repeated = False
        self._retry_cache: tuple[Retry, bytes] | None = None
        self._retry: deque[_Task] = deque()  # crashed tasks to run again (dispatcher only)
        self._broadcasts: deque[_BroadcastRequest] = deque()  # under _lock
        self._targeted: dict[int, deque[_Targeted]] = {}  # by worker id (dispatcher only)
        fin_blob = None
        if spec.finalizer is not None:
            fin_blob = self._dumps(spec.finalizer, "the finalizer")
        n = inner_threads_for_processes(spec.inner_threads, spec.workers, available_cpus())
        threads = None if n is None else (n, spec.inner_threads != "auto")
        #: what each worker needs for its life around the tasks (see _process_worker.main)
        self._lifecycle = (fin_blob, spec.finalizer_timeout, threads)
        self._cpu_share = max(1, available_cpus() // max(1, spec.workers))
        #: a worker above this after a task leaves (the lower of the two memory options)
        limits = [x for x in (spec.max_memory_per_worker, spec.task_memory_limit) if x]
        self._recycle_above: int | None = min(limits) if limits else None
        self._memory_recycles = 0
        self._memory_kills = 0
        #: tasks lost with their worker (a crash, a memory kill): see max_chunk_seconds
        self._lost_tasks = 0
        self._peak_memory = 0
        self._watchdog: threading.Thread | None = None
        self._watchdog_stop = threading.Event()
        #: workers of pools with this key are interchangeable (None: never kept warm)
        self._warm_key: Any = None
        if (
            spec.initializer is None
            and spec.finalizer is None
            and spec.max_tasks_per_worker is None
            and spec.max_memory_per_worker is None
            and spec.task_memory_limit is None
            and isinstance(method, str | None)
        ):
            self._warm_key = (self.start_method, threads, self._cpu_share)

    # -- public protocol --------------------------------------------------------------
    @classmethod
    def default_workers(cls) -> int:
        """The CPUs this process may use."""
        return available_cpus()

    def effective_workers(self) -> int:
        """The configured number of worker processes."""
        return self.spec.workers

    @property
    def max_chunk_seconds(self) -> float | None:  # type: ignore[override]
        """Long maps run chunks of up to :data:`MAX_CHUNK_SECONDS` (each chunk boundary is a
        round trip through the dispatcher: ~0.5 ms of a worker's time on a busy machine),
        until a worker dies with a task: a pool whose workers crash keeps its chunks at
        :attr:`target_chunk_seconds`, so that each crash loses little work."""
        return None if self._lost_tasks else MAX_CHUNK_SECONDS

    def stats(self) -> PoolStats:
        """Memory recycles and kills so far, and the largest worker size measured."""
        return PoolStats(
            memory_recycles=self._memory_recycles,
            memory_kills=self._memory_kills,
            peak_worker_memory=self._peak_memory,
        )

    def sync_factory(self, kind: str) -> SyncFactory:
        """Process kinds (named semaphores, shared memory), made with this pool's context."""
        if kind != "process":
            return super().sync_factory(kind)
        from ._process_sync import ProcessSync

        return ProcessSync(self, self._ctx)

    def start(self) -> None:
        """Workers start with the first task."""
        if getattr(mp.current_process(), "_inheriting", False):
            raise RuntimeError(
                "a process pool was started while this process was itself starting as a "
                "worker: the main script ran again inside the worker because the code that "
                'uses anypool is not under `if __name__ == "__main__":`. Put it under that '
                "guard (`anypool check` reports this as APC204)"
            )
        _live.add(self)
        if self.start_method == "forkserver":
            # a single-threaded program is forked into the fork server, which then has all
            # its imports (no lock: with no other thread, no other pool can be starting)
            _preload.fork_server(self._ctx)

    def start_workers(self) -> None:
        """Start the pool's workers now instead of with the first task (``pool.share`` calls
        this: the workers start while the object is copied, and are ready when the map
        comes). Does nothing on a pool that is closing or broken."""
        self._prefork()  # (only before the dispatcher exists: only this thread starts workers)
        with self._lock:
            if self._broken is not None or self._closing:
                return
            self._start_all = True
            if self._thread is None:
                self._start_dispatcher()
            self._wake()

    def check_callable(self, fn: Callable[..., Any]) -> None:
        """The function must be picklable (cloudpickle handles lambdas and closures).

        Its bytes are kept (:meth:`_fn_ref`): the tasks that follow send them as they are
        instead of pickling the function, and what it binds, a second time."""
        self._fn_ref(fn)

    def fork_after_now(self) -> bool:
        """Whether the workers this pool starts from now on are forks of this program taken
        after this call: ``pool.share()`` then hands them a large array with no copy.

        With the fork server, that is when :meth:`_prefork` can start them now (the server
        itself was forked before the array was shared: workers it starts later get a copy).
        """
        if self.start_method == "fork":
            return True
        if self.start_method == "forkserver":
            return self._prefork() or _preload.refork(self._ctx)
        return False

    def _may_prefork(self) -> bool:
        """Whether :meth:`_prefork` may start the workers now, as far as the pool goes (the
        program is checked next: :func:`_preload.fork_check`)."""
        return (
            self.start_method == "forkserver"
            and self._thread is None
            and not self._workers
            and not self._closing
            and self._broken is None
            and _preload.fork_enabled()
        )

    def _worker_cap(self) -> int | None:
        """The thread cap a worker sets on the native pools it inherits (None: none)."""
        threads = self._lifecycle[2]
        if threads is None:
            return None
        n, explicit = threads
        if not explicit and user_sets_thread_vars():
            return None  # yours to manage: the worker leaves them alone
        return n

    def _prefork(self, budget: float | None = None) -> bool:
        """Start the workers now as forks of this program, from the calling thread; False
        when it cannot (then nothing was started).

        Called before the dispatcher thread exists, where the fork server itself would be
        forked from this program (the same checks: :func:`_preload.fork_safe`): by
        ``start_workers`` (``pool.share()``), for every worker, and by the pool's first
        task (:meth:`_prefork_first`), within ``budget`` seconds. A worker forked here
        starts at once with everything the program holds now (a shared array needs no
        copy); one from the fork server needs a round trip to it, and the server forked
        again first for a shared array (it was forked before the array was shared): ~20 ms
        before the first task on a numpy+scipy program, ~40 ms with a shared array. The
        worker lets go of the program's sockets and pipes as the forked server does.
        Workers started later (the rest of a budget, a crash, a recycle) come from the
        fork server.

        ``budget``: after the first fork, fork another only while the forks so far took
        less than this (each copies the program's page tables: ~2 ms for numpy and scipy,
        more for a program holding gigabytes), so that the first task never waits long.
        """
        # asked once per pool: nothing can change the answer before the dispatcher starts,
        # which share() and submit() do right after (one fork check less when it is no)
        asked, self._prefork_asked = self._prefork_asked, True
        if asked or not self._may_prefork():
            return False
        reason, paths, libs = _preload.fork_check(self._worker_cap())
        if reason is not None:
            return False
        began = time.perf_counter()
        with found_for_forks(paths, libs):  # the workers cap with what the check found
            for _ in range(self.spec.workers):
                if budget is not None and self._workers and time.perf_counter() - began > budget:
                    break
                try:
                    self._start_new(next(self._ids), forked=True)
                except OSError:  # out of processes or memory: the rest start from the server
                    break
        return bool(self._workers)

    def _prefork_first(self) -> None:
        """At the pool's first task, from the caller's thread: fork its first workers from
        this program (:meth:`_prefork`, within :data:`PREFORK_BUDGET`) unless workers that
        an earlier pool left warm are waiting for it. The dispatcher starts the rest from
        the fork server as the tasks come."""
        if self._thread is not None or self._prefork_asked:
            return
        if self._warm_key is not None and _warm.waiting(self._warm_key):
            return
        self._prefork(PREFORK_BUDGET)

    def submit(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> cf.Future[Any]:
        """Pickle the call now (errors surface here) and queue it for a worker."""
        return self._submit(fn, args, kwargs, timeout, 0)

    def submit_chunk(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        retry: Retry,
        *,
        timeout: float | None = None,
    ) -> cf.Future[ChunkResult]:
        """A chunk is one task; with retries a crashed chunk is re-run on a fresh worker."""
        # a crash is retried by the one rule: when retry_on matches WorkerCrashed (or, for a
        # task stopped by task_memory_limit, MemoryLimitExceeded: see _on_exit_joined)
        crashes = retry.covers(WorkerCrashed) or retry.covers(MemoryLimitExceeded)
        crash_retries = retry.attempts if crashes else 0
        return self._submit(run_chunk, (fn, items, retry), {}, timeout, crash_retries)

    def _submit(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        timeout: float | None,
        crash_retries: int,
    ) -> cf.Future[Any]:
        if self._broken is not None:
            raise BrokenPoolError(str(self._broken)) from self._broken
        if self._closing:
            raise ClosedPoolError("cannot submit to a pool that was shut down")
        payload = self._dumps_call(fn, args, kwargs)
        fut: cf.Future[Any] = cf.Future()
        task = _Task(fut, payload, fn, args, timeout, crash_retries)
        self._prefork_first()
        with self._lock:
            if self._broken is not None:  # set under the lock: no task can slip in after
                raise BrokenPoolError(str(self._broken)) from self._broken
            if self._closing:
                raise ClosedPoolError("cannot submit to a pool that was shut down")
            self._queue.append(task)
            if self._thread is None:
                self._start_dispatcher()
            self._wake()
        return fut

    def _start_dispatcher(self) -> None:
        """Start the dispatcher thread (and the memory watchdog), under ``_lock``."""
        self._thread = threading.Thread(
            target=self._dispatch, name="anypool-process-dispatcher", daemon=True
        )
        self._thread.start()
        if self.spec.task_memory_limit is not None:
            self._watchdog = threading.Thread(
                target=self._watch_memory,
                args=(self.spec.task_memory_limit,),
                name="anypool-process-memory-watchdog",
                daemon=True,
            )
            self._watchdog.start()

    def _watch_memory(self, limit: int) -> None:
        """The task_memory_limit watchdog: every WATCH_INTERVAL, measure each busy worker
        (from here: a task holding its worker's GIL cannot keep it from being measured) and
        end any that grew past the limit; the dispatcher then fails its task."""
        stop = self._watchdog_stop
        while not stop.wait(WATCH_INTERVAL):
            try:
                workers = list(self._workers.values())
            except RuntimeError:  # the dispatcher changed the dict meanwhile: next time
                continue
            for w in workers:
                task = w.task
                if task is None or not w.ready or w.memory_kill is not None:
                    continue
                size = private_rss(w.proc.pid)
                if size is None:
                    continue
                if size > self._peak_memory:
                    self._peak_memory = size
                if size > limit and w.task is task:
                    w.memory_kill = (task, size)
                    self._memory_kills += 1
                    try:
                        os.kill(w.proc.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):  # pragma: no cover - gone
                        pass

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Finish (or cancel) queued tasks, stop the workers, and optionally wait."""
        with self._lock:
            self._closing = True
            if cancel_pending:
                self._cancel_on_close = True
                while self._queue:
                    self._queue.popleft().fut.cancel()
            self._wake()
            t = self._thread
        _live.discard(self)
        if t is None:
            self._close_pipe()
            return
        if wait and t is not threading.current_thread():
            t.join()

    def owns_current_thread(self) -> bool:
        """True on the dispatcher thread, where the futures' done-callbacks run."""
        return self._thread is threading.current_thread()

    def terminate(self) -> None:
        """End every worker now; running and queued tasks are cancelled or fail."""
        with self._lock:
            self._closing = True
            self._cancel_on_close = True
            while self._queue:
                self._queue.popleft().fut.cancel()
        while True:
            try:  # the dispatcher thread may be replacing a worker right now
                workers = list(self._workers.values())
                break
            except RuntimeError:
                continue
        for w in workers:
            # an idle worker with a finalizer is stopped by the dispatcher (it finalizes)
            if w.task is not None or not w.ready or self.spec.finalizer is None:
                w.proc.kill()
        self.shutdown(wait=True)

    # -- pickling with clear errors -----------------------------------------------------
    def _dumps(self, obj: Any, what: str) -> bytes:
        return _pickling.dumps(obj, what, _TO_WORKERS)

    def _fn_ref(self, fn: Callable[..., Any]) -> tuple[int, bytes, tuple[Shared[Any], ...]]:
        """cloudpickle ``fn`` once per distinct function (a one-entry cache): (key, bytes, the
        shared arrays it binds whose copy was put off)."""
        cached = self._fn_cache
        if cached is not None and cached[0] is fn:
            return cached[1], cached[2], cached[3]
        with _shared.collect() as found:
            blob = self._dumps(fn, "the function")
        key = next(self._fn_keys)
        shares = tuple(found)
        self._fn_cache = (fn, key, blob, shares)
        return key, blob, shares

    def _warn_repeated(self, items: Sequence[Any], size: int) -> None:
        """Warn once when one big argument object is pickled into chunk after chunk."""
        if self._warned_repeated or size < _BIG_PAYLOAD or not items:
            return
        first = items[0]
        candidates = first if isinstance(first, tuple) else (first,)
        big = max(candidates, key=_rough_size, default=None)
        if big is None or _rough_size(big) < _BIG_PAYLOAD // 2:
            return
        last = self._repeated_arg
        self._repeated_arg = (id(big), big)
        if last is not None and last[1] is big:
            self._warned_repeated = True
            warnings.warn(
                f"the same large argument ({type(big).__name__}, about "
                f"{_rough_size(big) // 2**20} MB) is pickled into every chunk sent to the "
                "process workers. Send it once per worker: pass `pool.share(obj)` instead (the "
                "task receives the object itself), or bind it into the function with "
                "functools.partial(fn, obj), which is sent to each worker once",
                stacklevel=2,
            )

    def _retry_blob(self, retry: Retry) -> bytes:
        cached = self._retry_cache
        if cached is not None and cached[0] is retry:
            return cached[1]
        blob = self._dumps(retry, "retry_on")
        self._retry_cache = (retry, blob)
        return blob

    def _dumps_call(
        self, fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]
    ) -> bytes:
        """The wire format: plain pickle around a cloudpickled function.

        The C pickler is many times faster than cloudpickle on plain data, so only the
        function (which may be a lambda or closure) goes through cloudpickle.
        """
        body: tuple[Any, ...]
        if fn is run_chunk:
            user_fn, items, retry = args
            # retry_on may name exception classes defined in __main__: they travel with
            # cloudpickle like the function, so the worker matches the class the task raises
            rblob = retry if retry.attempts == 0 else self._retry_blob(retry)
            key, blob, fn_shares = self._fn_ref(user_fn)
            body = (_process_worker.CHUNK, key, items, rblob)
        else:
            key, blob, fn_shares = self._fn_ref(fn)
            body = (_process_worker.CALL, key, args, kwargs)
        if fn is run_chunk:
            parts = _pickling.chunk_parts(args[1])
        else:
            parts = _pickling.call_parts(args, kwargs)
        with _shared.collect() as found:
            data = _pickling.dump_call_or_explain(body, parts, "the task", _TO_WORKERS)
        payload = _Payload(data)
        payload.fn_key = key
        payload.fn_blob = blob
        if fn_shares or found:
            payload.shares = fn_shares + tuple(found)
        if fn is run_chunk:
            self._warn_repeated(args[1], len(payload))
        return payload

    # -- the dispatcher thread ----------------------------------------------------------
    def _wake(self) -> None:
        # called with self._lock held; after the dispatcher has ended there is nobody to wake
        if not self._woken and self._wake_w >= 0:
            self._woken = True
            os.write(self._wake_w, b"x")

    def _close_pipe(self) -> None:
        with self._lock:  # never close while _wake writes: the number could be reused
            fds = (self._wake_r, self._wake_w)
            self._wake_r = self._wake_w = -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)

    def _spawn(self) -> _Worker:
        wid = next(self._ids)
        warm = None if self._warm_key is None else _warm.take(self._warm_key)
        if warm is not None:
            # a worker a previous pool left warm: it says READY again under its new id
            proc, parent_conn, progress = warm
            try:
                adopt = (_process_worker.ADOPT, wid, None, None)
                parent_conn.send_bytes(pickle.dumps(adopt, protocol=pickle.HIGHEST_PROTOCOL))
            except (OSError, ValueError):
                pass  # it just died: its sentinel reports it, as for a new worker
            w = _Worker(wid, proc, parent_conn, progress)
            self._workers[wid] = w
            return w
        return self._start_new(wid)

    def _start_new(self, wid: int, forked: bool = False) -> _Worker:
        """Start a new worker process: from the pool's context, or (``forked``) as a fork of
        this program (see :meth:`_prefork`)."""
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        progress = self._ctx.RawArray("q", 1)
        args = (
            child_conn,
            wid,
            self._init_blob,
            os.getpid(),
            self.spec.max_tasks_per_worker,
            self._lifecycle,
            self._cpu_share,
            progress,
            self._recycle_above,
        )
        name = f"anypool-process-{wid}"
        proc: Any
        if forked:
            proc = _preload.ForkedWorker(
                target=_preload.forked_worker, args=args, name=name, daemon=True
            )
        else:
            proc = self._ctx.Process(target=_process_worker.main, args=args, name=name, daemon=True)
        inherited: frozenset[str] = frozenset()
        if self.start_method == "forkserver" and not forked:
            # the fork server preloads what this program has imported (numpy, scipy...), so
            # the worker starts with it; never replaced while a worker is starting
            with _preload.spawn_lock:
                _preload.prepare(self._ctx)
                server, inherited = _preload.inherits()
                proc.start()
                if _preload.inherits()[0] != server:  # it had died: a new one was started
                    inherited = frozenset()
        else:
            if forked or self.start_method == "fork":
                inherited = _shared.inherited_now()  # before the fork: it has at least these
            proc.start()
        child_conn.close()
        w = _Worker(wid, proc, parent_conn, progress)
        w.inherited = inherited
        self._workers[wid] = w
        return w

    def _dispatch(self) -> None:
        try:
            self._dispatch_loop()
        except BaseException as exc:  # pragma: no cover - a bug in anypool
            err = AnypoolInternalError(
                f"the process pool's dispatcher failed ({type(exc).__name__}: {exc}); "
                "please report this as a bug"
            )
            err.__cause__ = exc
            self._broken = err
            self._fail_everything(err)
        finally:
            self._fail_broadcasts(ClosedPoolError("the pool stopped before the broadcast ran"))
            stopping = [w for w in self._workers.values() if not self._keep_warm(w)]
            for w in stopping:  # ask every worker first: their finalizers run side by side
                self._ask_to_stop(w)
            deadline = time.monotonic() + self._stop_timeout()
            for w in stopping:
                self._stop_worker(w, deadline)
            self._workers.clear()
            self._close_pipe()
            self._watchdog_stop.set()
            if self._watchdog is not None:
                self._watchdog.join()

    def _fail_everything(self, err: BaseException) -> None:
        with self._lock:  # with self._broken set, no new task is queued after this
            queued = list(self._queue)
            self._queue.clear()
        for t in queued:
            if t.fut.set_running_or_notify_cancel():
                t.fut.set_exception(err)
        running = [w.task for w in self._workers.values()] + list(self._retry)
        self._retry.clear()
        for task in running:
            if task is not None and not task.fut.done():
                task.fut.set_exception(err)
        for w in self._workers.values():
            w.task = None

    def _dispatch_loop(self) -> None:
        wait = mpc.wait
        idle: deque[_Worker] = deque()
        while True:
            if self._broadcasts:
                self._serve_broadcasts()
            # start workers up to the limit while work is waiting
            with self._lock:
                want = len(self._queue) + len(self._retry)
                if self._start_all:  # see start_workers
                    want = max(want, self.spec.workers)
                    self._start_all = False
                closing = self._closing
            busy = sum(1 for w in self._workers.values() if w.task is not None)
            starting = sum(1 for w in self._workers.values() if not w.ready)
            while (
                want > len(idle) + starting
                and len(self._workers) < self.spec.workers
                and not self._broken
            ):
                self._spawn()
                starting += 1
            # hand out tasks: first broadcast calls meant for a given worker
            if self._targeted:
                busy += self._send_targeted(idle)
            while idle:
                if self._retry:
                    task = self._retry.popleft()
                else:
                    with self._lock:
                        if not self._queue:
                            break
                        task = self._queue.popleft()
                    if not task.fut.set_running_or_notify_cancel():
                        continue
                w = idle[0]
                if not self._copy_shares(w, task):
                    continue  # that task failed; the worker takes the next one
                idle.popleft()
                self._send(w, task)
                del task  # the worker holds it now; its result must not outlive the future
                busy += 1
            if closing and busy == 0 and not self._retry and not self._targeted:
                with self._lock:
                    if not self._queue and not self._broadcasts:
                        return
            # wait for results, deaths, new work or a deadline
            handles: list[Any] = [self._wake_r]
            by_handle: dict[Any, _Worker] = {}
            deadline: float | None = None
            for w in self._workers.values():
                by_handle[w.proc.sentinel] = w
                handles.append(w.proc.sentinel)
                if w.task is not None or not w.ready:
                    by_handle[w.conn] = w
                    handles.append(w.conn)
                    if w.deadline is not None and (deadline is None or w.deadline < deadline):
                        deadline = w.deadline
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait(handles, timeout)
            for h in ready:
                if h == self._wake_r:
                    with self._lock:
                        os.read(self._wake_r, 64)
                        self._woken = False
                    continue
                w2 = by_handle.get(h)
                if w2 is None or w2.id not in self._workers:
                    continue
                if h is w2.conn and not w2.ready:
                    if self._receive_ready(w2):
                        idle.append(w2)
                elif h is w2.conn:
                    counted = not isinstance(w2.task, _Targeted)
                    if self._receive(w2) and w2.proc.sentinel not in ready:
                        w2.done += counted
                        limit = self.spec.max_tasks_per_worker
                        if limit is not None and w2.done >= limit:
                            pass  # it exits by itself; its sentinel fires next
                        elif w2.leaving:
                            self._drain(w2)
                        else:
                            idle.append(w2)
                else:
                    # the worker exited; first read a result it sent just before, if any
                    if w2.task is not None and w2.conn.poll():
                        self._receive(w2)
                    elif w2.task is None:  # recycled: its finalizer may have said something
                        self._read_farewell(w2)
                    self._on_exit(w2, idle)
            if deadline is not None:
                now = time.monotonic()
                for w in list(self._workers.values()):
                    if w.task is not None and w.deadline is not None and w.deadline <= now:
                        self._on_timeout(w, idle)
            if self._targeted:  # after exits and timeouts: a worker gone takes none along
                self._drop_targeted()

    def _drain(self, w: _Worker) -> None:
        """A worker leaving for its memory takes no more tasks: send it the broadcast calls
        already meant for it, one at a time, then ask it to stop (it runs its finalizer)."""
        calls = self._targeted.get(w.id)
        if calls:
            task = calls.popleft()
            if not calls:
                del self._targeted[w.id]
            self._send(w, task)
            return
        try:
            w.conn.send_bytes(b"")
        except (OSError, ValueError):
            pass  # it died meanwhile: its sentinel reports it

    def _copy_shares(self, w: _Worker, task: _Task) -> bool:
        """Put the shared arrays the task refers to into shared memory, unless the worker
        started with them; False (the task failed with the reason) when that failed."""
        for share in getattr(task.payload, "shares", ()):
            if share.copied or share.token in w.inherited:
                continue
            try:
                share.copy()
            except BaseException as exc:  # the pool was shut down, /dev/shm is full...
                if not task.fut.done():
                    task.fut.set_exception(exc)
                return False
        return True

    def _send(self, w: _Worker, task: _Task) -> None:
        w.progress[0] = TRACK_ALL if task.track else NOT_STARTED
        w.task = task
        w.started = time.monotonic()
        w.deadline = None if task.timeout is None else w.started + task.timeout
        payload = task.payload
        try:
            if isinstance(payload, _Payload) and w.fn_key != payload.fn_key:
                # the function once per worker (and again only when the map's function changes)
                define = (_process_worker.DEFINE, payload.fn_key, payload.fn_blob, None)
                w.conn.send_bytes(pickle.dumps(define, protocol=pickle.HIGHEST_PROTOCOL))
                w.fn_key = payload.fn_key
            w.conn.send_bytes(payload)
        except (OSError, ValueError):
            pass  # the worker died; its sentinel reports it

    def _receive_ready(self, w: _Worker) -> bool:
        """Read a new worker's first message: ready, or its initializer's error."""
        try:
            data = w.conn.recv_bytes()
        except (EOFError, OSError):
            return False  # died while starting: the sentinel path handles it
        if data[:1] == _process_worker.READY:
            w.ready = True
            self._startup_deaths = 0
            return True
        return self._receive_message(w, data)

    def _receive(self, w: _Worker) -> bool:
        """Read one message from ``w``; True when the worker is idle again."""
        try:
            data = w.conn.recv_bytes()
        except (EOFError, OSError):
            return False  # died: the sentinel path handles the task
        return self._receive_message(w, data)

    def _receive_message(self, w: _Worker, data: bytes) -> bool:
        tag, body = data[:1], data[1:]
        if tag in (_process_worker.MEMORY_STAYS, _process_worker.MEMORY_LEAVING):
            size = int.from_bytes(body[:8])
            if size > self._peak_memory:
                self._peak_memory = size
            if tag == _process_worker.MEMORY_LEAVING:
                w.leaving = True
                self._memory_recycles += 1
                self._trace_event(
                    w,
                    w.task,
                    "recycle",
                    f"its memory, {format_size(size)}, was above "
                    f"{self._recycle_option()} after a task: replaced",
                )
            tag, body = body[8:9], body[9:]
        if tag == _process_worker.INIT_FAILED:
            carrier: ExceptionCarrier = pickle.loads(body)
            original = carrier.rebuild()
            err = InitializerError(
                f"the pool's initializer raised {type(original).__name__}: {original}"
            )
            err.__cause__ = original
            self._broken = err
            self._fail_everything(err)
            return False
        task = w.task
        w.task = None
        w.deadline = None
        if task is None:
            return True
        fut = task.fut
        try:
            value = pickle.loads(body)
        except BaseException as exc:  # SystemExit too: it must not end the dispatcher
            if not fut.done():
                fut.set_exception(
                    _pickling.cannot_load(f"the result of task {task.describe()}", exc)
                )
            return True
        if fut.done():
            return True
        if tag == _process_worker.RESULT_OK:
            fut.set_result(value)
        else:
            fut.set_exception(value.rebuild() if isinstance(value, ExceptionCarrier) else value)
        return True

    def _on_exit(self, w: _Worker, idle: deque[_Worker]) -> None:
        try:
            self._on_exit_joined(w, idle)
        finally:
            _release(w)

    def _on_exit_joined(self, w: _Worker, idle: deque[_Worker]) -> None:
        w.proc.join()
        self._workers.pop(w.id, None)
        if w in idle:
            idle.remove(w)
        w.conn.close()
        if not w.ready and self._broken is None:
            # died before saying READY: a worker that cannot start would be replaced for
            # ever (a hang), so a few start-up deaths in a row break the pool
            self._startup_deaths += 1
            if self._startup_deaths >= _MAX_STARTUP_DEATHS:
                err = BrokenPoolError(
                    f"{self._startup_deaths} worker processes in a row exited while starting "
                    f"({_describe_exit(w.proc.exitcode)}), before running any task. The usual "
                    "cause: the main script starts work at import time, without "
                    '`if __name__ == "__main__":`; each new worker imports the script again '
                    "and fails (see the worker's error above; `anypool check` reports this "
                    "as APC204). Put the code that runs the pool under that guard"
                )
                self._broken = err
                self._fail_everything(err)
                return
        task = w.task
        w.task = None
        if task is not None and not task.fut.done():
            self._lost_tasks += 1
            kill = w.memory_kill
            if kill is not None and kill[0] is not task and not self._closing:
                # the watchdog measured the task before: this one only just started, and
                # did not grow the worker; it runs again, spending no retry
                self._retry.append(task)
                return
            kind = WorkerCrashed if kill is None else MemoryLimitExceeded
            if kill is not None:
                self._trace_event(w, task, "memory_kill", self._why(w))
            retried = (
                task.crash_retries > 0
                and not self._closing
                and (task.fn is not run_chunk or task.args[2].covers(kind))
            )
            self._trace_lost(w, task, "retry" if retried else "crash", self._why(w), kind.__name__)
            if retried:
                if not self._split(w, task):
                    task.crash_retries -= 1
                    task.attempt += 1
                    self._retry.append(task)  # its future is already running
            elif self._isolate(w, task):
                pass
            else:
                crashed = self._crash_error(w, task.describe(), task.attempt)
                if task.fn is run_chunk and task.attempt == 1:
                    task.args[2].gave_up(crashed, 1)  # says why it was not retried, if it wasn't
                task.fut.set_exception(crashed)

    def _split(self, w: _Worker, task: _Task) -> bool:
        """Run a crashed chunk again in two pieces, at the item that was running (the worker
        marked it: :func:`set_progress_slot`); False when that item is not known, or is
        the first.

        The items before it ran to the end (their results died with the worker): they run
        again as they were, with the retries they had. The rest, from the item that was
        running, spends one retry. So a long chunk whose worker keeps dying goes forward,
        and only the part that was running when it died pays for it.
        """
        if task.fn is not run_chunk:
            return False
        fn, items, retry = task.args
        k = int(w.progress[0])
        if not 0 < k < len(items):
            return False
        pieces: list[tuple[int, cf.Future[Any]]] = []
        for base, part, spent in ((0, items[:k], 0), (k, items[k:], 1)):
            again = self._run_again(task, type(items)(part), task.crash_retries - spent)
            again.attempt = task.attempt + spent
            again.track = task.track
            pieces.append((base, again.fut))
        for _, inner in pieces:
            inner.add_done_callback(functools.partial(_rejoin, task.fut, pieces))
        return True

    def _run_again(self, task: _Task, items: Sequence[Any], crash_retries: int) -> _Task:
        """Queue ``items`` of the crashed chunk ``task`` to run on a fresh worker, first in
        line (its map waits for them already); the new task, whose future is running."""
        fn, _, retry = task.args
        inner: cf.Future[Any] = cf.Future()
        inner.set_running_or_notify_cancel()
        args = (fn, items, retry)
        again = _Task(
            inner,
            self._dumps_call(run_chunk, args, {}),
            run_chunk,
            args,
            task.timeout,
            crash_retries,
        )
        self._retry.append(again)
        return again

    # -- a crash inside a chunk fails only the item that was running ------------------------
    def _isolate(self, w: _Worker, task: _Task) -> bool:
        """Handle the crash of a chunk item by item; False when it cannot be (fail it whole).

        The worker wrote the index of each item as it started (:func:`set_progress_slot`):
        that item fails with :class:`WorkerCrashed`; the others, finished (their results died
        with the worker) or not started, run again on a fresh worker. A large chunk whose
        items were not marked (tasks of microseconds) is first run again with marks.
        """
        if task.fn is not run_chunk or self._closing:
            return False
        fn, items, retry = task.args
        k = int(w.progress[0])
        if not 0 <= k < len(items):
            if k == NOT_STARTED and len(items) > TRACK_MAX and not task.track:
                task.track = True  # find the item: run the chunk again, marking items
                self._retry.append(task)
                return True
            return False  # died outside the items (arguments, results): the chunk fails
        crashed = self._crash_error(
            w,
            f"{getattr(fn, '__qualname__', repr(fn))} on input {_short.repr(_one(items, k))}",
            task.attempt,
            getattr(fn, "__qualname__", repr(fn)),
        )
        if task.attempt == 1:
            retry.gave_up(crashed, 1)  # says why it was not retried, if it wasn't
        rest = type(items)([*items[:k], *items[k + 1 :]])
        outer = task.fut
        if not rest:
            outer.set_result(ChunkResult([None], {0: crashed}, 0.0, 0.0))
            return True
        # the others were not the cause: no crash retry is spent on them
        again = self._run_again(task, rest, 0)
        again.fut.add_done_callback(functools.partial(_splice, outer, k, crashed))
        return True

    def _recycle_option(self) -> str:
        """The option whose limit a worker over ``_recycle_above`` exceeded, in words."""
        spec = self.spec
        name = "max_memory_per_worker"
        if spec.max_memory_per_worker is None or (
            spec.task_memory_limit is not None
            and spec.task_memory_limit < spec.max_memory_per_worker
        ):
            name = "task_memory_limit"
        return f"{name}={format_size(self._recycle_above or 0)}"

    def _trace_event(self, w: _Worker, task: _Task | None, kind: str, reason: str) -> None:
        """Tell the run's observers what happened to the task's worker (a memory recycle)."""
        if task is None or task.fn is not run_chunk:
            return
        obs = observer_of(task.args[2])
        if obs is not None:
            obs.worker_replaced(kind, ("process", w.id, w.proc.pid or -1, "MainThread"), reason)

    def _why(self, w: _Worker) -> str:
        """Why the worker ended: its exit, or the memory watchdog."""
        if w.memory_kill is None:
            return _describe_exit(w.proc.exitcode)
        limit = self.spec.task_memory_limit or 0
        return (
            f"it exceeded the memory limit: task_memory_limit={format_size(limit)}, and the "
            f"worker reached {format_size(w.memory_kill[1])}; it was ended and replaced"
        )

    def _crash_error(
        self, w: _Worker, what: str, attempt: int, task: str | None = None
    ) -> WorkerCrashed:
        """The error of the task ``what`` that ``w`` held as it died (or was ended)."""
        gave_up = f"; gave up after {attempt} attempts" if attempt > 1 else ""
        if w.memory_kill is None:
            return WorkerCrashed(
                f"worker process {w.proc.pid} died while running task {what}: "
                f"{self._why(w)}{gave_up}",
                pid=w.proc.pid,
                exitcode=w.proc.exitcode,
                task=task or what,
            )
        return MemoryLimitExceeded(
            f"task {what} exceeded the memory limit: its worker process {w.proc.pid} grew to "
            f"{format_size(w.memory_kill[1])}, over task_memory_limit="
            f"{format_size(self.spec.task_memory_limit or 0)}; the worker was ended and "
            f"replaced{gave_up}",
            pid=w.proc.pid,
            exitcode=w.proc.exitcode,
            task=task or what,
            limit=self.spec.task_memory_limit or 0,
            reached=w.memory_kill[1],
        )

    def _on_timeout(self, w: _Worker, idle: deque[_Worker]) -> None:
        try:
            self._on_timeout_killed(w, idle)
        finally:
            _release(w)

    def _on_timeout_killed(self, w: _Worker, idle: deque[_Worker]) -> None:
        task = w.task
        w.task = None
        w.proc.kill()
        w.proc.join()
        self._workers.pop(w.id, None)
        w.conn.close()
        if task is not None and not task.fut.done():
            self._trace_lost(w, task, "timeout", f"ran longer than task_timeout={task.timeout}s")
            task.fut.set_exception(
                TaskTimeoutError(
                    f"task {task.describe()} ran longer than task_timeout={task.timeout}s; its "
                    f"worker process {w.proc.pid} was ended and replaced"
                )
            )

    def _trace_lost(
        self, w: _Worker, task: _Task, outcome: str, why: str, kind: str = "WorkerCrashed"
    ) -> None:
        """Tell the chunk's observers about an attempt that ended without a result."""
        obs = observer_of(task.args[2]) if task.fn is run_chunk else None
        if obs is None:
            return
        end = time.time()
        start = end - (time.monotonic() - w.started)
        error = f"{kind}: {why}" if outcome != "timeout" else f"TaskTimeoutError: {why}"
        worker = ("process", w.id, w.proc.pid or -1, "MainThread")
        obs.chunk_lost(
            task.fut, len(task.args[1]), outcome, worker, start, end, error, task.attempt
        )

    def _stop_timeout(self) -> float:
        """Seconds stopping workers get to exit: their finalizer's bound, plus a margin."""
        if self.spec.finalizer is None:
            return 5.0
        return self.spec.finalizer_timeout + 2.0

    def _keep_warm(self, w: _Worker) -> bool:
        """Park an idle healthy worker of a cleanly closed pool for the next pool (_warm)."""
        if (
            self._warm_key is None
            or self._cancel_on_close  # terminated, or shut down with cancel_pending
            or self._broken is not None
            or w.task is not None
            or w.id in self._targeted
            or w.proc.exitcode is not None
        ):
            return False
        try:
            if w.ready and w.conn.poll():  # something unread: not a clean idle worker
                return False
        except (OSError, ValueError):
            return False
        handle = (w.proc, w.conn, w.progress)
        return _warm.park(self._warm_key, handle, self.spec.workers, not w.ready)

    def _ask_to_stop(self, w: _Worker) -> None:
        if self._cancel_on_close and w.task is not None:
            w.proc.kill()
        try:
            w.conn.send_bytes(b"")
        except (OSError, ValueError):
            pass

    def _stop_worker(self, w: _Worker, deadline: float | None = None) -> None:
        if deadline is None:
            self._ask_to_stop(w)
            deadline = time.monotonic() + self._stop_timeout()
        w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
        if w.proc.is_alive():  # a stuck worker (a finalizer that hangs): end it
            w.proc.kill()
            w.proc.join()
            if self.spec.finalizer is not None:
                log_finalizer_timeout(
                    "process", w.id, self.spec.finalizer_timeout, "the worker was killed"
                )
        else:
            self._read_farewell(w)
        w.conn.close()
        _release(w)

    def _read_farewell(self, w: _Worker) -> None:
        """Log what a worker's finalizer reported as the worker stopped (an error, a hang)."""
        if self.spec.finalizer is None:
            return
        try:
            while w.conn.poll():
                data = w.conn.recv_bytes()
                if data[:1] == _process_worker.FINALIZER_FAILED:
                    carrier: ExceptionCarrier = pickle.loads(data[1:])
                    log_finalizer_error("process", w.id, carrier.rebuild())
        except (EOFError, OSError):
            pass
        if w.proc.exitcode == 1:  # faulthandler's watchdog ended it (see _process_worker)
            log_finalizer_timeout(
                "process",
                w.id,
                self.spec.finalizer_timeout,
                "the worker ended itself (where it was stuck is printed on its stderr)",
            )

    # -- broadcast ------------------------------------------------------------------------
    def broadcast(self, fn: Callable[..., Any], args: Sequence[Any]) -> dict[int, Any]:
        """Run ``fn(*args)`` once in every live worker process (started if none is live).

        Each call waits until its worker is free (a broadcast during a map runs between two
        of that worker's tasks, before the map's queued ones) and is not counted as a task
        for ``max_tasks_per_worker``.
        """
        if self.owns_current_thread():
            raise RuntimeError(
                "pool.broadcast() was called on the process pool's dispatcher thread (from a "
                "future's done-callback): it would wait for itself; call it from your own code"
            )
        payload = self._dumps_broadcast(fn, args)
        request: cf.Future[dict[int, Any]] = cf.Future()
        with self._lock:
            if self._broken is not None:
                raise BrokenPoolError(str(self._broken)) from self._broken
            if self._closing:
                raise ClosedPoolError("cannot broadcast to a pool that was shut down")
            self._broadcasts.append((payload, fn, args, request))
            if self._thread is None:
                self._start_dispatcher()
            self._wake()
        futures: dict[int, cf.Future[Any]] = request.result()
        cf.wait(futures.values())
        results: dict[int, Any] = {}
        errors: dict[int, BaseException] = {}
        for wid, fut in sorted(futures.items()):
            exc = fut.exception()
            if exc is None:
                results[wid] = fut.result()
            else:
                errors[wid] = exc
        raise_broadcast_errors("process", fn, errors)
        return results

    def _dumps_broadcast(self, fn: Callable[..., Any], args: Sequence[Any]) -> bytes:
        body: tuple[Any, ...] = (
            _process_worker.BROADCAST,
            self._dumps(fn, "the function"),
            tuple(args),
            {},
        )
        return _pickling.dump_call_or_explain(
            body, _pickling.call_parts(args, {}), "the broadcast call", _TO_WORKERS
        )

    def _serve_broadcasts(self) -> None:
        """On the dispatcher: give each waiting broadcast one call per live worker.

        A worker running its last task before ``max_tasks_per_worker`` recycles it is not
        counted (its replacement will be the next broadcast's). When every worker is on its
        way out and no slot is free, the broadcast waits for a replacement.
        """
        with self._lock:
            requests = list(self._broadcasts)
            self._broadcasts.clear()
        limit = self.spec.max_tasks_per_worker

        def staying(w: _Worker) -> bool:
            last = w.task is not None and not isinstance(w.task, _Targeted)
            return (limit is None or w.done + last < limit) and not w.leaving

        waiting: list[_BroadcastRequest] = []
        for payload, fn, args, request in requests:
            if self._broken is not None:
                request.set_exception(BrokenPoolError(str(self._broken)))
                continue
            live = [w for w in self._workers.values() if staying(w)]
            if not live:
                while len(self._workers) < self.spec.workers:
                    live.append(self._spawn())
            if not live:
                waiting.append((payload, fn, args, request))
                continue
            futures: dict[int, cf.Future[Any]] = {}
            for w in live:
                fut: cf.Future[Any] = cf.Future()
                fut.set_running_or_notify_cancel()
                self._targeted.setdefault(w.id, deque()).append(
                    _Targeted(fut, payload, fn, args, None, 0)
                )
                futures[w.id] = fut
            request.set_result(futures)
        if waiting:
            with self._lock:
                self._broadcasts.extendleft(reversed(waiting))

    def _send_targeted(self, idle: deque[_Worker]) -> int:
        """Send idle workers the broadcast calls meant for them; how many were sent."""
        sent = 0
        for w in list(idle):
            calls = self._targeted.get(w.id)
            if calls:
                task = calls.popleft()
                if not calls:
                    del self._targeted[w.id]
                idle.remove(w)
                self._send(w, task)
                sent += 1
        return sent

    def _drop_targeted(self) -> None:
        """Fail the broadcast calls of workers that are gone (or of a broken pool)."""
        for wid in list(self._targeted):
            if wid in self._workers and self._broken is None:
                continue
            err: BaseException = (
                BrokenPoolError(str(self._broken))
                if self._broken is not None
                else WorkerCrashed(
                    f"worker {wid} was ended (it crashed, or its task overran task_timeout) "
                    "before it ran the broadcast call; its per-worker state is gone",
                    task="broadcast",
                )
            )
            for task in self._targeted.pop(wid):
                if not task.fut.done():
                    task.fut.set_exception(err)

    def _fail_broadcasts(self, err: BaseException) -> None:
        with self._lock:
            requests = list(self._broadcasts)
            self._broadcasts.clear()
        for *_, request in requests:
            if not request.done():
                request.set_exception(err)
        for calls in self._targeted.values():
            for task in calls:
                if not task.fut.done():
                    task.fut.set_exception(err)
        self._targeted.clear()


backend_class = ProcessBackend
