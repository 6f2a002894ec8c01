"""The keyword options shared by the map family, declared once (typed with ``Unpack``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    from ._tracing import Trace

from ._lifecycle import InnerThreads
from ._rate import RateLimiter

Errors = Literal["raise", "collect"]


class _MapKwargsNoErrors(TypedDict, total=False):
    """:class:`MapKwargs` without ``errors``: the typed overloads take ``errors`` separately.

    Overloads on ``errors=`` (``"collect"`` gives :class:`~anypool.Result` items) need the
    other options in a TypedDict of their own; :class:`MapKwargs` adds ``errors`` back.
    """

    chunksize: int | None
    progress: bool | dict[str, Any]
    task_timeout: float | None
    retries: int
    retry_on: tuple[type[BaseException], ...] | type[BaseException]
    rate: str | float | RateLimiter | None


class MapKwargs(_MapKwargsNoErrors, total=False):
    """Per-call options of ``map``, ``imap``, ``imap_unordered``, ``amap`` and ``aimap``.

    Any option not given takes the pool's setting (for the one-call functions: the default).

    Keys:
        chunksize: inputs per task (default: chosen from the measured time per task).
        progress: show a tqdm progress bar counting finished tasks (a dict is passed to tqdm).
        errors: ``"raise"`` (the first error stops the map) or ``"collect"`` (each input
            gives a :class:`~anypool.Result`).
        task_timeout: seconds one task may run; it then fails with ``TaskTimeoutError``.
        retries: how many more times a failing task is tried (a timed-out one too).
        retry_on: which exception types are retried (default: ``Exception``).
        rate: at most this many task starts: ``"50/s"``, ``"300/min"``, ``"1000/h"``, a
            number (per second) or a :class:`~anypool.RateLimiter` (to share one budget or
            choose the burst). Inputs then go one per task and each start takes a token;
            starts are evenly spaced (burst 1). ``None``: no limit. *Added in 0.2.*

    .. versionadded:: 0.1
    """

    errors: Errors


class _PoolKwargs(TypedDict, total=False):
    """The pool options the one-call functions take (see :class:`ApiKwargs`)."""

    initializer: Callable[..., object] | None
    initargs: tuple[Any, ...]
    max_tasks_per_worker: int | None
    finalizer: Callable[..., object] | None
    finalizer_timeout: float
    inner_threads: InnerThreads
    max_memory_per_worker: int | str | None
    task_memory_limit: int | str | None
    start_method: str
    uvloop: bool
    debug: bool
    trace: str | os.PathLike[str] | Trace | None
    address: str | None
    client: Any


class _ApiKwargsNoErrors(_MapKwargsNoErrors, _PoolKwargs, total=False):
    """:class:`ApiKwargs` without ``errors`` (for the overloads on ``errors=``)."""


class ApiKwargs(MapKwargs, _PoolKwargs, total=False):
    """Options of the one-call functions: the map options plus the pool's.

    Keys (besides :class:`MapKwargs`'s):
        initializer: called once in each worker before its first task.
        initargs: arguments for ``initializer``.
        max_tasks_per_worker: replace a worker after it ran this many tasks.
        finalizer: called once in each worker as it stops (errors are logged).
            *Added in 0.2.*
        finalizer_timeout: seconds a finalizer may run before its worker is killed.
            *Added in 0.2.*
        inner_threads: threads for native libraries (BLAS, OpenMP) in each worker:
            ``"auto"`` (processes: CPUs // workers), a number, or ``None`` (untouched).
            *Added in 0.2.*
        max_memory_per_worker: process workers: replace a worker whose memory is above this
            after a task (bytes, or ``"2GB"``, ``"500MB"``...). *Added in 0.3.*
        task_memory_limit: process workers: stop a task whose worker grows past this; it
            fails with :class:`~anypool.MemoryLimitExceeded`. *Added in 0.3.*
        start_method: process backend: ``"forkserver"``, ``"spawn"`` or ``"fork"``.
        uvloop: asyncio backend: use uvloop when installed (default True).
        debug: warn about blocked event loops and CPU-bound work on threads.
        trace: record every task: a path ending in ``.html`` (timeline page) or ``.json``
            (Chrome-trace JSON), written when the run ends, or an :class:`~anypool.Trace`.
        address: dask backend: the scheduler to run on (``"tcp://host:8786"``).
        client: dask backend: an existing ``distributed.Client`` to run on.

    .. versionadded:: 0.1
    """


MAP_KEYS: frozenset[str] = frozenset(MapKwargs.__optional_keys__)


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split one-call options into (per-call map options, pool options)."""
    per_call = {k: v for k, v in options.items() if k in MAP_KEYS}
    pool = {k: v for k, v in options.items() if k not in MAP_KEYS}
    return per_call, pool
