"""The backend protocol: the small interface every backend implements."""

from __future__ import annotations

import concurrent.futures as cf
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ._lifecycle import FINALIZER_TIMEOUT, InnerThreads
from ._tasks import ChunkResult, Retry, run_chunk

if TYPE_CHECKING:
    from ._sync import SyncFactory


@dataclass(frozen=True)
class WorkerSpec:
    """What a backend needs to know to start its workers.

    Attributes:
        workers: how many workers (or, for asyncio, tasks in flight).
        initializer: called once in each worker before its first task.
        initargs: arguments for ``initializer``.
        max_tasks_per_worker: a worker is replaced after this many tasks (``None``: never).
        finalizer: called once in each worker as it stops (shutdown, recycling, terminate
            while idle). *Added in 0.2.*
        finalizer_timeout: seconds a finalizer may run before its worker is killed
            (threads: abandoned). *Added in 0.2.*
        inner_threads: thread cap of native libraries (BLAS, OpenMP) in each worker:
            ``"auto"`` (the backend's default), a number, or ``None`` (leave them alone).
            *Added in 0.2.*
        max_memory_per_worker: bytes; a process worker whose private resident memory is
            above it after a task is replaced (``None``: never). *Added in 0.3.*
        task_memory_limit: bytes; a process worker that grows past it while running a task
            is ended and that task fails with :class:`~anypool.MemoryLimitExceeded`
            (``None``: no limit). *Added in 0.3.*
        options: backend-specific options (for example ``start_method`` for processes).

    .. versionadded:: 0.1
    """

    workers: int
    initializer: Callable[..., object] | None = None
    initargs: tuple[Any, ...] = ()
    max_tasks_per_worker: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    finalizer: Callable[..., object] | None = None
    finalizer_timeout: float = FINALIZER_TIMEOUT
    inner_threads: InnerThreads = "auto"
    max_memory_per_worker: int | None = None
    task_memory_limit: int | None = None


@dataclass(frozen=True)
class PoolStats:
    """Counts of what a pool did to its workers, from :meth:`Pool.stats() <anypool.Pool.stats>`.

    Attributes:
        memory_recycles: workers replaced after a task because their memory was above
            ``max_memory_per_worker`` (or ``task_memory_limit``).
        memory_kills: tasks stopped because their worker grew past ``task_memory_limit``
            (each failed with :class:`~anypool.MemoryLimitExceeded`).
        peak_worker_memory: the largest worker size (private resident memory, bytes) the
            pool measured; 0 when it measured none (no memory option, or not a process pool).

    .. versionadded:: 0.3
    """

    memory_recycles: int = 0
    memory_kills: int = 0
    peak_worker_memory: int = 0


class Backend(ABC):
    """Where tasks run. The :class:`~anypool.Pool` holds all policy; a backend only runs calls.

    A backend implements :meth:`start`, :meth:`submit`, :meth:`shutdown` and
    :meth:`effective_workers`. :meth:`submit_chunk` has a default built on :meth:`submit`.
    Capability flags are class attributes.

    .. versionadded:: 0.1
    """

    #: the name used in ``backend=...``
    name: ClassVar[str] = ""
    #: functions and arguments must be picklable (they cross a process boundary)
    requires_pickle: ClassVar[bool] = False
    #: tasks share the caller's memory
    shares_memory: ClassVar[bool] = True
    #: runs coroutine functions natively (others get a clear error)
    runs_coroutines: ClassVar[bool] = False
    #: the memory options it honours (``"max_memory_per_worker"``, ``"task_memory_limit"``);
    #: the pool refuses the others with a clear error. *Added in 0.3.*
    memory_options: ClassVar[frozenset[str]] = frozenset()
    #: the backend options it accepts (``Pool(backend, **options)``)
    option_names: ClassVar[tuple[str, ...]] = ()
    #: seconds of work one chunk should hold when chunk sizes are chosen automatically
    target_chunk_seconds: ClassVar[float] = 0.005
    #: the most work one automatic chunk may hold while much of a sized input is left
    #: (guided scheduling: chunks shrink back to ``target_chunk_seconds`` towards the end);
    #: None: every chunk holds ``target_chunk_seconds``. For backends whose chunk boundaries
    #: cost a round trip worth saving. *Added in 0.2.*
    max_chunk_seconds: ClassVar[float | None] = None
    #: which kind of primitives ``pool.Lock()``, ``pool.Queue()``, ``pool.Counter()``,
    #: ``pool.share()``... hand out: a key of ``anypool._core._sync.SYNC_KINDS``
    #: (``"thread"``, ``"process"``, ``"asyncio"``; ``"auto"`` follows the chosen backend).
    #: A new backend with its own primitives registers a factory there with
    #: ``register_sync_kind(name, factory_class)`` and names it here.
    sync_kind: ClassVar[str] = "thread"
    #: tasks run on threads of this process (the pool's CPU-bound-in-threads check applies)
    runs_on_threads: ClassVar[bool] = False
    #: :meth:`ashutdown` waits on the event loop itself: ``async with`` and ``await
    #: pool.ashutdown()`` use it (otherwise they run the Pool's sync shutdown in a thread)
    native_ashutdown: ClassVar[bool] = False
    #: called with the backend that runs the work once it has started, by a backend that
    #: starts it later (auto's choice, the asyncio backend's own loop); the Pool sets it to
    #: watch that backend's event loop with ``debug=True``. A backend that never changes
    #: leaves it alone.
    on_choose: Callable[[Backend], None] | None = None

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec

    @abstractmethod
    def start(self) -> None:
        """Prepare to run tasks (workers may still start lazily)."""

    @abstractmethod
    def submit(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> cf.Future[Any]:
        """Run ``fn(*args, **kwargs)`` on a worker; return a real ``concurrent.futures.Future``.

        A task that runs longer than ``timeout`` seconds fails with
        :class:`~anypool.TaskTimeoutError`.
        """

    def submit_chunk(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        retry: Retry,
        *,
        timeout: float | None = None,
    ) -> cf.Future[ChunkResult]:
        """Run ``fn(*item)`` for each item as one task; the future gives a ``ChunkResult``."""
        return self.submit(run_chunk, (fn, items, retry), {}, timeout=timeout)

    @abstractmethod
    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Stop accepting work; optionally cancel queued tasks; optionally wait for workers."""

    @abstractmethod
    def effective_workers(self) -> int:
        """How many tasks can run at the same time."""

    def stats(self) -> PoolStats:
        """What this backend did to its workers (default: nothing to count).

        .. versionadded:: 0.3
        """
        return PoolStats()

    def terminate(self) -> None:
        """Stop now: cancel queued work and end running work where the backend can.

        The default cancels what is queued and does not wait for running tasks.
        """
        self.shutdown(wait=False, cancel_pending=True)

    @classmethod
    def default_workers(cls) -> int:
        """The number of workers used when the caller does not say."""
        return 1

    def broadcast(self, fn: Callable[..., Any], args: Sequence[Any]) -> dict[int, Any]:
        """Run ``fn(*args)`` exactly once on every live worker; ``{worker id: result}``.

        Workers are started first when none is live. An error raised by ``fn`` on any worker
        is raised here, with a note naming the worker. The default raises
        ``NotImplementedError``: a backend must know its workers to reach each one.

        .. versionadded:: 0.2
        """
        raise NotImplementedError(
            f"the {self.name or type(self).__name__} backend cannot run a call on each of its "
            "workers (broadcast); initialise per-worker state with initializer= instead"
        )

    async def abroadcast(self, fn: Callable[..., Any], args: Sequence[Any]) -> dict[int, Any]:
        """:meth:`broadcast` for async code; the default runs it in a thread.

        .. versionadded:: 0.2
        """
        import asyncio

        return await asyncio.to_thread(self.broadcast, fn, args)

    # -- optional hooks: what the Pool asks of every backend, with what fits most ----------
    def sync_factory(self, kind: str) -> SyncFactory:
        """What makes this pool's primitives of ``kind`` (``pool.Lock()``, ``Queue()``,
        ``share()``...): ``kind`` is :attr:`sync_kind`, or, for auto before its choice,
        ``"process"``. Default: the factory registered under that name with
        ``anypool._core._sync.register_sync_kind`` (``"thread"``, ``"asyncio"`` built in).
        The process backend returns its own (beside it, in ``anypool._backends``).

        .. versionadded:: 0.2
        """
        from ._sync import SYNC_KINDS

        make = SYNC_KINDS.get(kind)
        if make is None:
            raise LookupError(
                f"backend {self.name!r} has no primitives of kind {kind!r}; known kinds: "
                f"{', '.join(sorted(SYNC_KINDS))} (a backend with its own registers them with "
                "register_sync_kind or overrides sync_factory)"
            )
        return make(self)

    def configure(self, workers_given: bool) -> None:  # noqa: B027 - optional hook
        """Told once, before :meth:`start`, whether the caller chose ``workers=`` (auto and
        dask size themselves otherwise). Default: nothing to do."""

    def set_total(self, total: int | None) -> None:  # noqa: B027 - optional hook
        """Told how many inputs the map about to start has (None: unknown). Default: ignored."""

    @property
    def chosen(self) -> Backend | None:
        """The backend that runs the work: this one. A backend that chooses another (auto)
        returns its choice, or None until it has chosen."""
        return self

    @property
    def event_loop(self) -> Any:
        """The event loop tasks run on, for a backend that has one (asyncio); else None."""
        return None

    @property
    def fixed_batch(self) -> int | None:
        """Items per chunk when the backend sets it (asyncio: a batch per thread hop); None:
        the Pool sizes chunks by their measured time."""
        return None

    @property
    def max_chunks_in_flight(self) -> int | None:
        """The most chunks the Pool may have submitted at once (None: the Pool's own window,
        from the worker count)."""
        return None

    def explain(self) -> str | None:
        """Why this backend runs the work, when it chose (auto) or has something to say;
        None: the Pool says the caller chose it."""
        return None

    async def ashutdown(self, cancel_pending: bool = False) -> None:
        """:meth:`shutdown` with ``wait=True`` for async code (default: in a thread)."""
        import asyncio

        await asyncio.to_thread(self.shutdown, True, cancel_pending)

    def check_callable(self, fn: Callable[..., Any]) -> None:  # noqa: B027 - optional hook
        """Raise a clear error if ``fn`` cannot run on this backend (default: accept)."""

    def use_caller_loop(self) -> None:  # noqa: B027 - optional hook
        """An async entry point (``amap``, ``aimap``, ``async with``) is about to run work
        from the event loop running in this thread: a backend that runs coroutines may run
        them there (default: nothing to do)."""

    def avoid_caller_loop(self) -> None:  # noqa: B027 - optional hook
        """A sync entry point (``submit``, ``map``, ``imap``...) is about to hand work over
        from this thread, whose event loop, if one is running, cannot run while the caller
        waits: a backend that would run the work on that loop runs it elsewhere if it still
        can (the asyncio backend: on its own loop in a helper thread). Default: nothing."""

    def check_blocking_call(self) -> None:  # noqa: B027 - optional hook
        """Raise a clear error if blocking here would deadlock (default: never)."""

    def owns_current_thread(self) -> bool:
        """True when called on one of this backend's own threads (a task, a done-callback).

        Waiting there for the pool's other work could wait for the caller itself.
        """
        return False
