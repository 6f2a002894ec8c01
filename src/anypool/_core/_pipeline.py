"""``Pipeline``: the guide's producer/consumer with several stages, as a chain of pools.

Each stage runs on its own :class:`~anypool.Pool` (its own backend and workers) and is driven
by one feeder thread, which runs the pool's ``imap`` (or ``imap_unordered``) over an iterator
reading the stage's upstream channel and puts the results into its own bounded channel. The
source is read by one more thread. Chunking, retries, timeouts, progress and the in-flight
window are the pool's; this module only connects stages:

- **Backpressure.** Channels hold at most ``buffer`` items; a full channel blocks the stage
  that feeds it, which stops reading its own upstream, and so on back to the source. Memory is
  bounded by the channels plus each stage's map window, whatever the source's length.
- **No poison pills.** The end of the source ends each channel in turn. An error anywhere
  (a stage, the source, the consumer's Ctrl-C) stops every channel at once: every thread wakes
  up, shuts its pool down and exits, and the consumer joins them before raising.
- **Collect mode.** With ``errors="collect"`` a failed item travels downstream as a private
  ``_Failure`` marker that later stages pass on untouched (never fed to their function); the
  consumer turns items into :class:`~anypool.Result` objects.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import inspect
import itertools
import os
import threading
import weakref
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
)
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, Unpack, final, overload

from . import _tracing
from ._options import (
    MAP_KEYS,
    STAGE,
    STAGE_KEYS,
    ApiKwargs,
    Errors,
    check_bool,
    check_option,
    check_whole,
    check_workers,
    split_options,
    unknown_option_error,
)
from ._registry import get_backend
from ._result import Result
from ._tasks import is_async_callable

if TYPE_CHECKING:
    from ._abc import Backend
    from ._pool import Pool
    from ._tracing import Trace

T = TypeVar("T")
U = TypeVar("U")

#: items one channel between two stages holds by default
DEFAULT_BUFFER = 128
#: seconds the consumer waits for the source thread when the source itself is blocked
SOURCE_JOIN_TIMEOUT = 5.0

_Kind = Literal["map", "filter", "flat_map", "batch"]


class _Stopped(Exception):
    """Raised inside the pipeline's own threads when the pipeline is stopped (private)."""


class _Dropped:
    """What a filter stage's call returns for an item the predicate rejects.

    Pickled by name, so it is the same object after a trip through a process worker.
    """

    __slots__ = ()

    def __reduce__(self) -> str:
        return "_DROP"

    def __repr__(self) -> str:
        return "<dropped by filter>"


_DROP = _Dropped()


@final
class _Failure:
    """A failed item in ``errors="collect"`` mode: passed through later stages untouched."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_PENDING: Any = object()
_INTERRUPTS = (KeyboardInterrupt, SystemExit)


# -- the calls a stage runs (module-level classes: they pickle by reference) --------------------
class _Keep:
    """``filter``: the item itself when ``pred(item)`` is true, else ``_DROP``."""

    __slots__ = ("pred",)

    def __init__(self, pred: Callable[[Any], Any]) -> None:
        self.pred = pred

    def __call__(self, item: Any) -> Any:
        return item if self.pred(item) else _DROP

    def __repr__(self) -> str:
        return f"filter({_name(self.pred)})"


class _AsyncKeep(_Keep):
    """``filter`` with an ``async def`` predicate."""

    __slots__ = ()

    async def __call__(self, item: Any) -> Any:
        return item if await self.pred(item) else _DROP


class _Flat:
    """``flat_map``: ``fn(item)``'s items as a list (built in the worker: generators work)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, item: Any) -> list[Any]:
        return list(self.fn(item))

    def __repr__(self) -> str:
        return f"flat_map({_name(self.fn)})"


class _AsyncFlat(_Flat):
    """``flat_map`` with an ``async def`` function or an async generator function."""

    __slots__ = ()

    async def __call__(self, item: Any) -> list[Any]:  # type: ignore[override]
        if inspect.isasyncgenfunction(self.fn):
            return [y async for y in self.fn(item)]
        return list(await self.fn(item))


def _name(fn: object) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


# -- channels ---------------------------------------------------------------------------------
class _Channel:
    """A bounded queue between two stages that can be ended (input done) or stopped (abort).

    ``get_many`` hands over everything buffered at once (one lock round trip per batch).
    """

    __slots__ = ("_items", "_lock", "_not_empty", "_not_full", "_ended", "_stopped", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self._items: deque[Any] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._ended = False
        self._stopped = False
        self.maxsize = maxsize

    def put(self, item: Any) -> None:
        with self._lock:
            while len(self._items) >= self.maxsize and not self._stopped:
                self._not_full.wait()
            if self._stopped:
                raise _Stopped
            self._items.append(item)
            self._not_empty.notify()

    def put_nowait(self, item: Any) -> bool:
        with self._lock:
            if self._stopped:
                raise _Stopped
            if len(self._items) >= self.maxsize:
                return False
            self._items.append(item)
            self._not_empty.notify()
            return True

    def get_many(self, block: bool = True) -> list[Any] | None:
        """Everything buffered (at least one item); ``None`` at the end; ``[]`` if not ``block``."""
        with self._lock:
            while not self._items and not self._ended and not self._stopped:
                if not block:
                    return []
                self._not_empty.wait()
            if self._stopped:
                raise _Stopped
            if not self._items:
                return None
            out = list(self._items)
            self._items.clear()
            self._not_full.notify_all()
            return out

    def end(self) -> None:
        with self._lock:
            self._ended = True
            self._not_empty.notify_all()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._items.clear()
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def qsize(self) -> int:
        return len(self._items)


def _read(channel: _Channel) -> Iterator[Any]:
    for batch in iter(channel.get_many, None):
        yield from batch


class _Feed(Iterator[Any]):
    """A stage pool's input: the items of the upstream channel.

    ``anypool_ready`` tells the map engine how many items are there right now, so automatic
    chunks never wait for a slow upstream stage to produce a whole chunk. In collect mode
    failed items are not fed to the function: they go straight downstream (unordered) or
    wait in ``slots`` for their turn (ordered).
    """

    __slots__ = ("_up", "_buf", "_down", "_slots")

    def __init__(self, up: _Channel, down: _Channel | None, slots: deque[Any] | None) -> None:
        self._up = up
        self._buf: deque[Any] = deque()
        self._down = down
        self._slots = slots

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> Any:
        buf, slots = self._buf, self._slots
        while True:
            if not buf:
                batch = self._up.get_many()
                if batch is None:
                    raise StopIteration
                buf.extend(batch)
            item = buf.popleft()
            if self._down is not None and type(item) is _Failure:
                if slots is not None:
                    slots.append(item)
                else:
                    self._down.put(item)
                continue
            if slots is not None:
                slots.append(_PENDING)
            return item

    def anypool_ready(self) -> int:
        return len(self._buf) + self._up.qsize()


# -- stages -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Stage:
    kind: _Kind
    fn: Callable[..., Any] | None = None
    backend: str | cf.Executor = "auto"
    workers: int | None = None
    ordered: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    size: int = 0  # batch
    pool: Pool | None = None  # the caller's own pool: used, never shut down

    def call(self) -> Callable[..., Any]:
        """What the stage's pool runs on each item."""
        fn = self.fn
        assert fn is not None
        if self.kind == "filter":
            return _AsyncKeep(fn) if is_async_callable(fn) else _Keep(fn)
        if self.kind == "flat_map":
            asynchronous = is_async_callable(fn) or inspect.isasyncgenfunction(fn)
            return _AsyncFlat(fn) if asynchronous else _Flat(fn)
        return fn

    def describe(self) -> str:
        if self.kind == "batch":
            return f".batch({self.size})"
        parts = [_name(self.fn), f"backend={self.backend!r}"]
        if self.pool is not None:
            parts[1] = f"pool={self.pool!r}"
        if self.workers is not None:
            parts.append(f"workers={self.workers}")
        if not self.ordered:
            parts.append("ordered=False")
        parts += [f"{k}={v!r}" for k, v in self.options.items()]
        return f".{self.kind}({', '.join(parts)})"


def _check_stage_fn(kind: str, fn: object) -> None:
    if not callable(fn):
        raise TypeError(
            f"Pipeline.{kind}() needs a callable, got {type(fn).__name__} {fn!r}; pass the "
            "function itself (fn), not the result of calling it (fn())"
        )


def _check_stage_options(kind: str, backend: str | cf.Executor, options: dict[str, Any]) -> None:
    if "errors" in options:
        raise TypeError(
            f"errors= is set once for the whole pipeline, not per stage: "
            f"Pipeline(source, errors={options['errors']!r})"
        )
    cls: type[Backend]
    if isinstance(backend, cf.Executor):  # the executor the caller owns (left running)
        from .._backends._executor import backend_for

        cls = backend_for(backend)
    else:
        cls = get_backend(backend)  # an unknown backend name raises here, at build time
    unknown = set(options) - STAGE_KEYS - set(cls.option_names)
    if unknown:
        raise unknown_option_error(
            unknown,
            STAGE,
            context=f"Pipeline.{kind}() with backend={cls.name!r}",
            backend_options=cls.option_names,
            extra=("backend", "workers", "pool", "ordered"),
        )


def _check_own_pool(
    kind: str,
    pool: object,
    backend: str | cf.Executor,
    workers: int | None,
    options: dict[str, Any],
) -> None:
    from ._pool import Pool

    if not isinstance(pool, Pool):
        raise TypeError(f"pool= must be an anypool.Pool, got {type(pool).__name__} {pool!r}")
    if backend != "auto" or workers is not None:
        raise TypeError(
            f"Pipeline.{kind}(pool=...) runs on that pool: its backend and workers are the "
            "pool's; do not pass backend= or workers= with it"
        )
    if "errors" in options:
        _check_stage_options(kind, "serial", options)  # the pipeline-wide errors= message
    not_map = sorted(set(options) - MAP_KEYS)
    if not_map:
        raise TypeError(
            f"{', '.join(k + '=' for k in not_map)} set(s) up a pool; with pool=... give it "
            f"to that Pool instead. Per-stage map options: {', '.join(sorted(MAP_KEYS))}"
        )


# -- the pipeline -----------------------------------------------------------------------------
class _Token:
    """Shared by a pipeline and every pipeline built from it: the source is read only once."""

    __slots__ = ("started", "outputs", "explained")

    def __init__(self) -> None:
        self.started = False
        self.outputs: weakref.ref[_Outputs] | None = None
        self.explained: dict[int, str] = {}


class Pipeline(Generic[T]):
    """Stages connected by bounded queues, each stage on its own pool: producer/consumer done right.

    Build it from a source and chain stages; each call returns a new pipeline. Nothing runs
    until you iterate it (``for``, ``async for``, :meth:`run` or :meth:`arun`)::

        pipe = (Pipeline(urls)
                .map(fetch, backend="asyncio", workers=50)
                .map(parse, backend="process")
                .filter(lambda page: page is not None)
                .map(save, backend="thread", workers=4))
        for saved in pipe:
            ...

    Every stage runs at the same time as the others. A full queue holds the stage before it
    back (down to the source), so memory stays flat for an endless source. The end of the
    source, an error and cancellation travel through the stages by themselves: an error in
    any stage (or in the source) stops every stage and is raised at the caller as itself,
    with its traceback and a note naming the stage; breaking out of the loop, :meth:`close`,
    garbage collection and Ctrl-C stop and join every thread, worker and process.

    Args:
        source: any iterable or async iterable; read lazily, from one thread (an async
            iterable: on the caller's event loop under ``async for``, else on an own loop).
        errors: ``"raise"`` (default: the first error stops the pipeline) or ``"collect"``:
            the pipeline keeps going and yields one :class:`~anypool.Result` per output; an
            item that failed in one stage passes through the later stages untouched (their
            functions never see it) and comes out as a failed ``Result``. ``Result.index`` is
            the position in the pipeline's output.
        progress: show one tqdm bar per stage (``True``, or a dict of tqdm options given to
            every bar). A stage's own ``progress=`` wins.
        buffer: how many items each queue between two stages holds (default 128).
        trace: record every task of every stage on one timeline: a path ending in ``.html``
            (the timeline page) or ``.json`` (Chrome-trace JSON), written when the run ends,
            or an :class:`~anypool.Trace` to record into. Stages on your own ``pool=`` are
            recorded when that pool has ``trace=`` or inside ``with anypool.trace(...)``,
            which also records a whole pipeline.

    A pipeline can be iterated once: its source is read as it runs.

    .. versionadded:: 0.2
    """

    __slots__ = (
        "_source",
        "_stages",
        "_errors",
        "_progress",
        "_buffer",
        "_token",
        "_trace",
        "_trace_owned",
    )

    def __init__(
        self,
        source: Iterable[T] | AsyncIterable[T],
        *,
        errors: Errors = "raise",
        progress: bool | dict[str, Any] = False,
        buffer: int = DEFAULT_BUFFER,
        trace: str | os.PathLike[str] | Trace | None = None,
    ) -> None:
        if not (
            hasattr(source, "__iter__")
            or hasattr(source, "__aiter__")
            or hasattr(source, "__getitem__")
        ):
            raise TypeError(
                f"Pipeline(source) needs an iterable or async iterable, got "
                f"{type(source).__name__} {source!r}"
            )
        errors = check_option("errors", errors)
        progress = check_option("progress", progress)
        check_whole("buffer", buffer, 1)
        self._source: Any = source
        self._stages: tuple[_Stage, ...] = ()
        self._errors: Errors = errors
        self._progress = progress
        self._trace = _tracing.as_trace(trace)  # a bad path fails here, not after the run
        self._trace_owned = self._trace is not None and not isinstance(trace, _tracing.Trace)
        self._buffer = buffer
        self._token = _Token()

    # -- building ---------------------------------------------------------------------------
    def _with(self, stage: _Stage) -> Pipeline[Any]:
        if self._token.started:
            raise RuntimeError(
                "this Pipeline has already run (its source was read); build a new Pipeline "
                "to add stages"
            )
        new: Pipeline[Any] = Pipeline.__new__(Pipeline)
        new._source = self._source
        new._stages = (*self._stages, stage)
        new._errors = self._errors
        new._progress = self._progress
        new._buffer = self._buffer
        new._trace = self._trace
        new._trace_owned = self._trace_owned
        new._token = self._token
        return new

    def _pool_stage(
        self,
        kind: _Kind,
        fn: Callable[..., Any],
        backend: str | cf.Executor,
        workers: int | None,
        pool: Pool | None,
        ordered: bool,
        options: dict[str, Any],
    ) -> Pipeline[Any]:
        _check_stage_fn(kind, fn)
        check_workers(workers)
        check_bool("ordered", ordered)
        if pool is not None:
            _check_own_pool(kind, pool, backend, workers, options)
        else:
            _check_stage_options(kind, backend, options)
        if "progress" in options:
            # the stage reads progress= itself (its bar), so it is checked here, not by a Pool
            check_option("progress", options["progress"])
        return self._with(_Stage(kind, fn, backend, workers, ordered, options, pool=pool))

    @overload
    def map(
        self,
        fn: Callable[[T], Coroutine[Any, Any, U]],
        *,
        backend: str | cf.Executor = ...,
        workers: int | None = ...,
        pool: Pool | None = ...,
        ordered: bool = ...,
        **options: Unpack[ApiKwargs],
    ) -> Pipeline[U]: ...

    @overload
    def map(
        self,
        fn: Callable[[T], U],
        *,
        backend: str | cf.Executor = ...,
        workers: int | None = ...,
        pool: Pool | None = ...,
        ordered: bool = ...,
        **options: Unpack[ApiKwargs],
    ) -> Pipeline[U]: ...

    def map(
        self,
        fn: Callable[[T], Any],
        *,
        backend: str | cf.Executor = "auto",
        workers: int | None = None,
        pool: Pool | None = None,
        ordered: bool = True,
        **options: Unpack[ApiKwargs],
    ) -> Pipeline[Any]:
        """Add a stage that runs ``fn(item)`` on its own pool; its results go downstream.

        Args:
            fn: a function of one item (``async def`` functions suit ``backend="asyncio"``;
                ``auto`` sends them there).
            backend: this stage's backend: ``"auto"`` (default: measured on this stage's
                first items), ``"serial"``, ``"thread"``, ``"process"``, ``"asyncio"``,
                ``"dask"``, or any ``concurrent.futures.Executor`` (anypool's policy over an
                executor you own: the pipeline leaves it running).
            workers: this stage's workers (default: the backend's).
            pool: run this stage on your own :class:`~anypool.Pool` (instead of
                ``backend=``/``workers=``/pool options): a warm pool is reused across
                pipelines, and the pipeline never shuts it down. When the pipeline stops early
                this stage's queued work on it is cancelled; its running tasks finish.
            ordered: keep the input order (default); ``False`` passes results on as they
                complete.
            **options: the map options of :class:`~anypool.MapKwargs` for this stage
                (``chunksize``, ``task_timeout``, ``retries``, ``retry_on``, ``progress``...)
                and its pool options (``initializer``, ``max_tasks_per_worker``...).
                ``errors=`` is set on the :class:`Pipeline`.

        .. versionadded:: 0.2
        """
        return self._pool_stage("map", fn, backend, workers, pool, ordered, dict(options))

    def filter(
        self,
        pred: Callable[[T], Any],
        *,
        backend: str | cf.Executor = "auto",
        workers: int | None = None,
        pool: Pool | None = None,
        ordered: bool = True,
        **options: Unpack[ApiKwargs],
    ) -> Pipeline[T]:
        """Add a stage that keeps the items for which ``pred(item)`` is true.

        Takes the same options as :meth:`map`; the predicate runs on the stage's pool (a
        cheap one is best left to ``auto``, which runs it in the stage's own thread).

        .. versionadded:: 0.2
        """
        return self._pool_stage("filter", pred, backend, workers, pool, ordered, dict(options))

    @overload
    def flat_map(
        self,
        fn: Callable[[T], Iterable[U]],
        *,
        backend: str | cf.Executor = ...,
        workers: int | None = ...,
        pool: Pool | None = ...,
        ordered: bool = ...,
        **options: Unpack[ApiKwargs],
    ) -> Pipeline[U]: ...

    @overload
    def flat_map(
        self,
        fn: Callable[[T], AsyncIterable[U]],
        *,
        backend: str | cf.Executor = ...,
        workers: int | None = ...,
        pool: Pool | None = ...,
        ordered: bool = ...,
        **options: Unpack[ApiKwargs],
    ) -> Pipeline[U]: ...

    @overload
    def flat_map(
        self,
        fn: Callable[[T], Coroutine[Any, Any, Iterable[U]]],
        *,
        backend: str | cf.Executor = ...,
        workers: int | None = ...,
        pool: Pool | None = ...,
        ordered: bool = ...,
        **options: Unpack[ApiKwargs],
    ) -> Pipeline[U]: ...

    def flat_map(
        self,
        fn: Callable[[T], Any],
        *,
        backend: str | cf.Executor = "auto",
        workers: int | None = None,
        pool: Pool | None = None,
        ordered: bool = True,
        **options: Unpack[ApiKwargs],
    ) -> Pipeline[Any]:
        """Add a stage where ``fn(item)`` returns an iterable whose items each go downstream.

        ``fn`` may be a generator function (or an async one, or an ``async def`` returning
        an iterable); its items are gathered into a list in the worker, so generators work on
        the process backend too. Takes the same options as :meth:`map`.

        .. versionadded:: 0.2
        """
        return self._pool_stage("flat_map", fn, backend, workers, pool, ordered, dict(options))

    def batch(self, n: int) -> Pipeline[list[T]]:
        """Add a stage that groups items into lists of ``n`` (the last one may be shorter).

        Runs in its own thread, with no pool. In ``errors="collect"`` mode failed items pass
        through on their own, as they arrive, and are not counted in a batch.

        .. versionadded:: 0.2
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"batch(n) needs a whole number, got {type(n).__name__} {n!r}")
        if n < 1:
            raise ValueError(f"batch(n) needs n >= 1 (items per batch), got {n}")
        return self._with(_Stage("batch", size=n))

    # -- running ----------------------------------------------------------------------------
    def _start(self, asynchronous: bool) -> _Run:
        token = self._token
        if token.started:
            raise RuntimeError(
                "this Pipeline was already iterated (or built from one that was): a pipeline "
                "reads its source once; build a new Pipeline to run again"
            )
        token.started = True
        run = _Run(self, asynchronous)
        try:
            run.start()
        except BaseException:  # no thread left behind (no running loop for async, ...)
            run.stop(terminate=False)
            run.join()
            raise
        return run

    def __iter__(self) -> Iterator[T]:
        """Run the pipeline; yields its outputs lazily (see the class docs)."""
        outputs: _SyncOutputs[T] = _SyncOutputs(self._start(asynchronous=False))
        self._token.outputs = weakref.ref(outputs)
        return outputs

    def __aiter__(self) -> AsyncIterator[T]:
        """Run the pipeline from async code; waiting never blocks the event loop."""
        outputs: _AsyncOutputs[T] = _AsyncOutputs(self._start(asynchronous=True))
        self._token.outputs = weakref.ref(outputs)
        return outputs

    def run(self) -> list[T]:
        """Run the pipeline to the end and return its outputs as a list.

        .. versionadded:: 0.2
        """
        outputs = iter(self)
        assert isinstance(outputs, _SyncOutputs)
        try:
            return list(outputs)
        finally:
            outputs.close()

    async def arun(self) -> list[T]:
        """Await :meth:`run` from async code, without blocking the event loop.

        .. versionadded:: 0.2
        """
        outputs = aiter(self)
        assert isinstance(outputs, _AsyncOutputs)
        try:
            return [x async for x in outputs]
        finally:
            await outputs.aclose()

    def explain(self) -> str:
        """Say which backend ran each stage and why (``auto`` stages explain their choice).

        Filled in as each stage finishes; before the pipeline has run it says so.

        .. versionadded:: 0.2
        """
        lines = []
        for i, stage in enumerate(self._stages):
            head = f"stage {i + 1} {stage.describe()}"
            if stage.kind == "batch":
                lines.append(f"{head}: groups items in the pipeline's own thread (no pool)")
            elif i in self._token.explained:
                text = self._token.explained[i].replace("\n", "\n    ")
                lines.append(f"{head}: {text}")
            else:
                lines.append(f"{head}: not run yet")
        return "\n".join(lines) or "a pipeline with no stages: the source's items as they are"

    def close(self) -> None:
        """Stop the running pipeline, if any, and join its threads, workers and processes.

        A pipeline that has not run yet cannot run after this.

        .. versionadded:: 0.2
        """
        self._close(terminate=False)

    def _close(self, terminate: bool) -> None:
        token = self._token
        token.started = True
        outputs = token.outputs() if token.outputs is not None else None
        if outputs is not None:
            outputs.stop(terminate=terminate)

    async def aclose(self) -> None:
        """:meth:`close` for async code: waits without blocking the event loop.

        .. versionadded:: 0.2
        """
        await asyncio.to_thread(self._close, False)

    def __enter__(self) -> Pipeline[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Ctrl-C: end running work now (process workers are killed), as Pool does
        self._close(terminate=exc_type is not None and issubclass(exc_type, _INTERRUPTS))

    async def __aenter__(self) -> Pipeline[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        terminate = exc_type is not None and issubclass(exc_type, _INTERRUPTS)
        await asyncio.to_thread(self._close, terminate)

    def __repr__(self) -> str:
        src = type(self._source).__name__
        stages = "".join(s.describe() for s in self._stages)
        return f"Pipeline(<{src}>){stages}"


# -- one run ----------------------------------------------------------------------------------
class _Run:
    """The threads, channels and pools of one run of a pipeline."""

    def __init__(self, pipe: Pipeline[Any], asynchronous: bool) -> None:
        self.source = pipe._source
        self.stages = pipe._stages
        self.collect = pipe._errors == "collect"
        self.progress = pipe._progress
        self.asynchronous = asynchronous
        self.channels = [_Channel(pipe._buffer) for _ in range(len(self.stages) + 1)]
        self.pools: dict[int, Any] = {}
        self.threads: list[threading.Thread] = []
        self.source_thread: threading.Thread | None = None
        self.source_task: asyncio.Task[None] | None = None
        self.source_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self.error: BaseException | None = None
        self.stopped = False
        self.terminating = False
        self.totals = self._totals()
        #: each pool stage's ``Pool.explain()``, recorded before its pool shuts down
        self.explained: dict[int, str] = pipe._token.explained
        self.trace = pipe._trace
        self.trace_owned = pipe._trace_owned

    def _totals(self) -> list[int | None]:
        """The known number of items each stage sees (for progress bars), or None."""
        try:
            total: int | None = len(self.source)
        except TypeError:
            total = None
        out = []
        for st in self.stages:
            out.append(total)
            if total is not None and st.kind == "batch":
                total = -(-total // st.size)
            elif st.kind != "map":
                total = None
        return out

    # -- starting ---------------------------------------------------------------------------
    def start(self) -> None:
        for i, stage in enumerate(self.stages):
            target = self._batch if stage.kind == "batch" else self._pool_stage
            t = threading.Thread(  # noqa: APC203 - one thread per stage, not per item
                target=self._guard,
                args=(i, target, stage, self.channels[i], self.channels[i + 1]),
                name=f"anypool-pipeline-stage-{i + 1}",
                daemon=True,
            )
            self.threads.append(t)
            t.start()
        src = self.source
        first = self.channels[0]
        if not hasattr(src, "__aiter__"):
            self.source_thread = threading.Thread(
                target=self._read_source,
                args=(src, first),
                name="anypool-pipeline-source",
                daemon=True,
            )
            self.source_thread.start()
        elif self.asynchronous:
            self.source_task = asyncio.get_running_loop().create_task(self._aread_source(src))
            self.source_task.add_done_callback(self._source_task_done)
        else:
            self.source_thread = threading.Thread(
                target=self._run_async_source,
                args=(src,),
                name="anypool-pipeline-source",
                daemon=True,
            )
            self.source_thread.start()

    # -- stopping ---------------------------------------------------------------------------
    def fail(self, exc: BaseException, where: str) -> None:
        """The first error stops the pipeline; later ones (caused by stopping) are dropped."""
        with self._lock:
            if self.stopped:
                return
            note = f"anypool: raised in the pipeline's {where}"
            if note not in getattr(exc, "__notes__", ()):
                exc.add_note(note)
            self.error = exc
        self.stop(terminate=False)

    def stop(self, terminate: bool) -> None:
        """Stop every stage: wake every thread (they shut their pools down and exit)."""
        with self._lock:
            self.stopped = True
            if terminate:
                self.terminating = True
            pools = list(self.pools.values())
        for ch in self.channels:
            ch.stop()
        self._cancel_source_task()
        if terminate:
            for pool in pools:  # Ctrl-C: end running work now (not only queued work)
                with contextlib.suppress(Exception):  # each pool is also ended by its thread
                    pool._backend.terminate()

    def _cancel_source_task(self) -> None:
        task, loop = self.source_task, self.source_loop
        if task is not None and loop is None:
            loop = task.get_loop()
        if task is not None and loop is not None and not task.done():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop is closed: the task is gone with it
                pass

    def join(self) -> None:
        """Wait for every stage thread (never for one of our own threads)."""
        me = threading.current_thread()
        for t in self.threads:
            if t is not me:
                t.join()
        src = self.source_thread
        if src is not None and src is not me:
            # a source blocked inside its own __next__ cannot be woken; it ends when it
            # returns (its next put raises) — do not hang the caller on it
            src.join(SOURCE_JOIN_TIMEOUT)
        self._save_trace()

    def _save_trace(self) -> None:
        """``Pipeline(trace="run.html")``: write the timeline once every stage has ended."""
        with self._lock:
            owned, self.trace_owned = self.trace_owned, False
        if owned and self.trace is not None:
            self.trace.stop()
            self.trace.save()

    def ours(self) -> bool:
        me = threading.current_thread()
        return me in self.threads or me is self.source_thread

    # -- the source -------------------------------------------------------------------------
    def _read_source(self, src: Iterable[Any], out: _Channel) -> None:
        try:
            put = out.put
            for item in src:
                put(item)
            out.end()
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: B036 - raised at the caller
            self.fail(exc, "source")

    async def _aread_source(self, src: AsyncIterable[Any]) -> None:
        out = self.channels[0]
        async for item in src:
            if not out.put_nowait(item):
                await asyncio.to_thread(out.put, item)
        out.end()

    def _source_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, _Stopped):
            self.fail(exc, "source")

    def _run_async_source(self, src: AsyncIterable[Any]) -> None:
        async def main() -> None:
            self.source_loop = asyncio.get_running_loop()
            self.source_task = asyncio.current_task()
            if self.stopped:
                return
            await self._aread_source(src)

        try:
            asyncio.run(main())
        except (_Stopped, asyncio.CancelledError):
            pass
        except BaseException as exc:  # noqa: B036 - raised at the caller
            self.fail(exc, "source")

    # -- stages -----------------------------------------------------------------------------
    def _guard(
        self,
        i: int,
        target: Callable[[int, _Stage, _Channel, _Channel], None],
        stage: _Stage,
        up: _Channel,
        down: _Channel,
    ) -> None:
        try:
            target(i, stage, up, down)
            down.end()
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: B036 - raised at the caller
            self.fail(exc, f"stage {i + 1} {stage.describe()}")

    def _batch(self, i: int, stage: _Stage, up: _Channel, down: _Channel) -> None:
        n = stage.size
        bar = self._bar(i, stage)
        try:
            buf: list[Any] = []
            for item in _read(up):
                if type(item) is _Failure:
                    down.put(item)
                    continue
                buf.append(item)
                if len(buf) >= n:
                    down.put(buf)
                    buf = []
                    if bar is not None:
                        bar.update(n)
            if buf:
                down.put(buf)
                if bar is not None:
                    bar.update(len(buf))
        finally:
            if bar is not None:
                bar.close()

    def _bar(self, i: int, stage: _Stage) -> Any:
        progress = self._progress_option(i, stage)
        if not progress:
            return None
        from tqdm.auto import tqdm

        kwargs: dict[str, Any] = {"unit": "item", "smoothing": 0.1}
        if isinstance(progress, dict):
            kwargs.update(progress)
        return tqdm(**kwargs)

    def _stage_options(self, i: int, stage: _Stage) -> dict[str, Any]:
        """A stage's pool and map options: its own, plus what the pipeline sets for all."""
        options = dict(stage.options)
        if self.progress or "progress" in options:
            options["progress"] = self._progress_option(i, stage)
        # the pipeline's errors= is the truth, whatever a pool=...'s own default says
        options["errors"] = "collect" if self.collect else "raise"
        if self.trace is not None and stage.pool is None and "trace" not in options:
            options["trace"] = self.trace  # every stage records into the pipeline's trace
        return options

    def _progress_option(self, i: int, stage: _Stage) -> bool | dict[str, Any]:
        own = stage.options.get("progress")
        if own is not None:
            return bool(own) if not isinstance(own, dict) else own
        if not self.progress:
            return False
        opts: dict[str, Any] = {
            "position": i,
            "desc": f"{i + 1} {stage.describe()[1:]}"[:40],
            "total": self.totals[i],
        }
        if isinstance(self.progress, dict):
            opts.update(self.progress)
        return opts

    def _pool_stage(self, i: int, stage: _Stage, up: _Channel, down: _Channel) -> None:
        from ._pool import Pool

        collect = self.collect
        per_call, pool_options = split_options(self._stage_options(i, stage))
        own = stage.pool is None
        pool = Pool(stage.backend, stage.workers, **pool_options) if own else stage.pool
        assert pool is not None
        with self._lock:
            if own:
                self.pools[i] = pool
            stopped = self.stopped
        failed = True
        outputs: Iterator[Any] | None = None
        try:
            if stopped:
                raise _Stopped
            # ordered + collect: failed items wait in ``slots`` for their turn
            slots: deque[Any] | None = deque() if collect and stage.ordered else None
            put = down.put
            feed = _Feed(up, down if collect else None, slots)
            imap = pool.imap if stage.ordered else pool.imap_unordered
            outputs = imap(stage.call(), feed, **per_call)
            kind = stage.kind
            where = f"stage {i + 1} {stage.describe()}"
            for out in outputs:
                if slots is not None:
                    while slots[0] is not _PENDING:
                        put(slots.popleft())
                    slots.popleft()
                if collect:
                    if not out.ok:
                        err = out.error
                        err.add_note(f"anypool: raised in the pipeline's {where}")
                        put(_Failure(err))
                        continue
                    out = out.value
                if kind == "map":
                    put(out)
                elif kind == "filter":
                    if out is not _DROP:
                        put(out)
                else:
                    for y in out:
                        put(y)
            if slots:
                for failure in slots:
                    put(failure)
            failed = False
            down.end()  # before the pool's shutdown: the next stage need not wait for it
        finally:
            self.explained[i] = pool.explain()
            if not own:
                close = getattr(outputs, "close", None)
                if close is not None:
                    close()  # the caller's pool goes on: only this stage's queued work stops
            elif self.terminating:
                pool.terminate()
            else:
                pool.shutdown(wait=True, cancel_futures=failed)


# -- the consumer's side ----------------------------------------------------------------------
class _Outputs:
    """What the consumer holds: reads the last channel, wraps Results, stops the run."""

    def __init__(self, run: _Run) -> None:
        self._run: _Run | None = run
        self._buf: deque[Any] = deque()
        self._index = itertools.count()
        self._last = run.channels[-1]
        self._collect = run.collect

    def _wrap(self, item: Any) -> Any:
        if not self._collect:
            return item
        if type(item) is _Failure:
            return Result(error=item.error, index=next(self._index))
        return Result(item, index=next(self._index))

    def _finish(self) -> None:
        """After the end, an error or a stop: join everything; raise the pipeline's error."""
        run, self._run = self._run, None
        if run is None:
            return
        run.stop(terminate=False)
        run.join()
        if run.error is not None:
            raise run.error

    def _abort(self, terminate: bool) -> _Run | None:
        run, self._run = self._run, None
        self._buf.clear()  # nothing more comes out of a stopped pipeline
        if run is not None:
            run.stop(terminate=terminate)
        return run

    def stop(self, terminate: bool) -> None:
        """Stop the pipeline and join its threads, workers and processes (blocking)."""
        run = self._abort(terminate=terminate)
        if run is not None and not run.ours():
            run.join()

    def __del__(self) -> None:
        self.stop(terminate=False)


class _SyncOutputs(_Outputs, Iterator[T]):
    def __iter__(self) -> _SyncOutputs[T]:
        return self

    def __next__(self) -> T:
        buf = self._buf
        while not buf:
            if self._run is None:
                raise StopIteration
            try:
                batch = self._last.get_many()
            except _Stopped:
                batch = None  # stopped: _finish raises the error that stopped it
            except BaseException:  # Ctrl-C while waiting: stop everything now
                run = self._abort(terminate=True)
                if run is not None:
                    run.join()
                raise
            if batch is None:
                self._finish()
                raise StopIteration
            buf.extend(batch)
        return self._wrap(buf.popleft())  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the pipeline and join its threads, workers and processes."""
        self.stop(terminate=False)


class _AsyncOutputs(_Outputs, AsyncIterator[T]):
    def __aiter__(self) -> _AsyncOutputs[T]:
        return self

    async def __anext__(self) -> T:
        buf = self._buf
        while not buf:
            if self._run is None:
                raise StopAsyncIteration
            try:
                batch = self._last.get_many(block=False)
                if batch == []:
                    batch = await asyncio.to_thread(self._last.get_many)
            except _Stopped:
                batch = None  # stopped: _finish raises the error that stopped it
            except BaseException as exc:  # cancelled (or Ctrl-C) while waiting: stop
                # Ctrl-C ends running work now; a cancellation lets it finish, as Pool does
                run = self._abort(terminate=isinstance(exc, _INTERRUPTS))
                if run is not None:
                    await asyncio.to_thread(run.join)
                raise
            if batch is None:
                await asyncio.to_thread(self._finish)
                raise StopAsyncIteration
            buf.extend(batch)
        return self._wrap(buf.popleft())  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Stop the pipeline and join its threads, workers and processes."""
        run = self._abort(terminate=False)
        if run is not None:
            await asyncio.to_thread(run.join)
