"""Every keyword option, declared once: its type, default, check, doc and entry points.

:data:`OPTIONS` is the one table. From it come:

- the validation of every entry point (:func:`check_option`, :func:`map_options`,
  :func:`merge_map_options`) — ``Pool``, the map functions, ``Pool.imap``/``amap``... and the
  stages of ``Pipeline`` all call these, nothing else checks an option;
- the "unknown option" error (:func:`unknown_option_error`), which lists the valid names of the
  entry point and the nearest ones to a misspelling;
- the typed declarations: the ``TypedDict`` classes below and the overloads of ``_api.py`` and
  ``_pool.py`` are written by ``python -m anypool._core._gen`` between ``BEGIN GENERATED`` and
  ``END GENERATED`` markers (``tests/test_generated.py`` fails when they are stale).

To add an option: add one :class:`Option` to :data:`OPTIONS`, run ``make generate``, and use the
value where it takes effect (see docs/contributing.md).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    from ._engine import MapOptions
    from ._tracing import Trace

from ._lifecycle import (
    FINALIZER_TIMEOUT,
    InnerThreads,
    check_finalizer_timeout,
    check_inner_threads,
)
from ._memory import parse_size
from ._rate import RateLimiter, make_limiter

Errors = Literal["raise", "collect"]

#: the entry points an option can be given to
POOL = "Pool"  #: ``Pool(...)``: the pool's setting (a map option: its maps' default)
API = "api"  #: ``anypool.map``/``imap``/``imap_unordered``/``amap``
METHOD = "method"  #: ``pool.imap``/``imap_unordered``/``amap``/``aimap``: one call's setting
STAGE = "stage"  #: ``Pipeline.map``/``filter``/``flat_map``...: one stage's setting


# -- the checks: each returns the value to use, or raises naming the option and the fix ---------
def check_positive_int(name: str, value: object, *, allow_none: bool = True) -> int | None:
    """A positive whole number (or ``None`` when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive whole number (1 or more), got {value!r}")
    return value


def check_whole(name: str, value: object, minimum: int) -> int:
    """A whole number of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def check_timeout(name: str, value: object) -> float | None:
    """A positive number of seconds, or ``None`` (no limit)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds or None, got {value!r}")
    return float(value)


def check_bool(name: str, value: object) -> bool:
    """``True`` or ``False`` (not merely truthy)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_callable(fn: object, what: str = "the function to run") -> None:
    """A callable, with the usual mistake (passing ``fn()``) named."""
    if not callable(fn):
        raise TypeError(
            f"{what} must be callable, got {type(fn).__name__} {fn!r}; pass the "
            "function itself (fn), not the result of calling it (fn())"
        )


def _optional_callable(name: str) -> Callable[[object], Any]:
    def check(value: object) -> object:
        if value is not None:
            check_callable(value, name)
        return value

    return check


def _check_errors(value: object) -> Errors:
    if value not in ("raise", "collect"):
        raise ValueError(f"errors must be 'raise' or 'collect', got {value!r}")
    return value


def _check_progress(value: object) -> bool | dict[str, Any]:
    if not isinstance(value, bool | dict):
        raise TypeError(f"progress must be True, False or a dict of tqdm options, got {value!r}")
    return value


def _check_retries(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"retries must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"retries must be 0 or more, got {value}")
    return value


def _check_retry_on(value: object) -> tuple[type[BaseException], ...]:
    if isinstance(value, type):
        value = (value,)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(
            f"retry_on must be an exception type or a tuple of them, got {type(value).__name__} "
            f"{value!r}"
        )
    types = tuple(value)
    for t in types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise TypeError(f"retry_on must hold exception types, got {t!r}")
    return types


def _check_initargs(value: object) -> tuple[Any, ...]:
    if not isinstance(value, tuple):
        raise TypeError(f"initargs must be a tuple, got {type(value).__name__}")
    return value


# -- the declaration ------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One keyword option, as every entry point that takes it sees it.

    Attributes:
        name: the keyword.
        annotation: its type, as source text (for the generated TypedDicts and signatures).
        default: its value when not given (``Pool``'s default; a map call's default is the
            pool's setting).
        default_src: ``default`` as source text.
        check: returns the value to use (normalised), or raises a ``TypeError``/``ValueError``
            that names the option and what it accepts. ``None``: checked where it is used
            (a backend option, by its backend).
        doc: one line for the docs and docstrings.
        where: the entry points that accept it (:data:`POOL`, :data:`API`, :data:`METHOD`,
            :data:`STAGE`).
        added: the version that added it, when later than 0.1 (said in the docs).
        backend: for a backend option, the backend that reads it (``Pool`` passes it on in
            ``**options``; the backend's ``option_names`` accept it).
    """

    name: str
    annotation: str
    default: object
    default_src: str
    check: Callable[[Any], Any] | None
    doc: str
    where: frozenset[str]
    backend: str | None = None
    added: str | None = None


_MAP = frozenset({POOL, API, METHOD, STAGE})
_POOL = frozenset({POOL, API, STAGE})
_BACKEND = frozenset({API, STAGE})

#: Every option, in the order of the generated signatures and docs.
OPTIONS: tuple[Option, ...] = (
    # -- the map options: a pool's default for its maps, or one call's (one stage's) own --
    Option(
        name="chunksize", annotation="int | None", default=None, default_src="None",
        check=lambda v: check_positive_int("chunksize", v),
        doc="inputs per task (default: chosen from the measured time per task).",
        where=_MAP,
    ),
    Option(
        name="progress", annotation="bool | dict[str, Any]", default=False, default_src="False",
        check=_check_progress,
        doc="show a tqdm progress bar counting finished tasks (a dict is passed to tqdm).",
        where=_MAP,
    ),
    Option(
        name="errors", annotation="Errors", default="raise", default_src='"raise"',
        check=_check_errors,
        doc='``"raise"`` (the first error stops the map) or ``"collect"`` (each input gives a '
        ":class:`~anypool.Result`).",
        where=frozenset({POOL, API, METHOD}),  # a Pipeline sets it once, for all its stages
    ),
    Option(
        name="task_timeout", annotation="float | None", default=None, default_src="None",
        check=lambda v: check_timeout("task_timeout", v),
        doc="seconds one task may run; it then fails with ``TaskTimeoutError``.",
        where=_MAP,
    ),
    Option(
        name="retries", annotation="int", default=0, default_src="0",
        check=_check_retries,
        doc="how many more times a failing task is tried (a timed-out one too).",
        where=_MAP,
    ),
    Option(
        name="retry_on", annotation="tuple[type[BaseException], ...] | type[BaseException]",
        default=(Exception,), default_src="(Exception,)",
        check=_check_retry_on,
        doc="which exception types are retried (default: ``Exception``).",
        where=_MAP,
    ),
    Option(
        name="rate", annotation="str | float | RateLimiter | None", default=None,
        default_src="None",
        check=make_limiter,
        doc='at most this many task starts: ``"50/s"``, ``"300/min"``, ``"1000/h"``, a number '
        "(per second) or a :class:`~anypool.RateLimiter` (to share one budget or choose the "
        "burst). Inputs then go one per task and each start takes a token; starts are evenly "
        "spaced (burst 1). ``None``: no limit.",
        where=_MAP, added="0.2",
    ),
    # -- the pool options: how the workers are set up ------------------------------------------
    Option(
        name="initializer", annotation="Callable[..., object] | None", default=None,
        default_src="None",
        check=_optional_callable("initializer"),
        doc="called once in each worker before its first task.",
        where=_POOL,
    ),
    Option(
        name="initargs", annotation="tuple[Any, ...]", default=(), default_src="()",
        check=_check_initargs,
        doc="arguments for ``initializer``.",
        where=_POOL,
    ),
    Option(
        name="max_tasks_per_worker", annotation="int | None", default=None, default_src="None",
        check=lambda v: check_positive_int("max_tasks_per_worker", v),
        doc="replace a worker after it ran this many tasks.",
        where=_POOL,
    ),
    Option(
        name="finalizer", annotation="Callable[..., object] | None", default=None,
        default_src="None",
        check=_optional_callable("finalizer"),
        doc="called once in each worker as it stops (errors are logged).",
        where=_POOL, added="0.2",
    ),
    Option(
        name="finalizer_timeout", annotation="float", default=FINALIZER_TIMEOUT,
        default_src="FINALIZER_TIMEOUT",
        check=check_finalizer_timeout,
        doc="seconds a finalizer may run before its worker is killed.",
        where=_POOL, added="0.2",
    ),
    Option(
        name="inner_threads", annotation="InnerThreads", default="auto", default_src='"auto"',
        check=check_inner_threads,
        doc="threads for native libraries (BLAS, OpenMP) in each worker: ``\"auto\"`` "
        "(processes: CPUs // workers), a number, or ``None`` (untouched).",
        where=_POOL, added="0.2",
    ),
    Option(
        name="max_memory_per_worker", annotation="int | str | None", default=None,
        default_src="None",
        check=lambda v: parse_size("max_memory_per_worker", v),
        doc="process workers: replace a worker whose memory is above this after a task "
        '(bytes, or ``"2GB"``, ``"500MB"``...).',
        where=_POOL, added="0.3",
    ),
    Option(
        name="task_memory_limit", annotation="int | str | None", default=None,
        default_src="None",
        check=lambda v: parse_size("task_memory_limit", v),
        doc="process workers: stop a task whose worker grows past this; it fails with "
        ":class:`~anypool.MemoryLimitExceeded`.",
        where=_POOL, added="0.3",
    ),
    Option(
        name="debug", annotation="bool", default=False, default_src="False",
        check=lambda v: check_bool("debug", v),
        doc="warn about blocked event loops and CPU-bound work on threads.",
        where=_POOL,
    ),
    Option(
        name="trace", annotation="str | os.PathLike[str] | Trace | None", default=None,
        default_src="None",
        check=None,  # Pool makes the Trace (_tracing.as_trace checks the path)
        doc="record every task: a path ending in ``.html`` (timeline page) or ``.json`` "
        "(Chrome-trace JSON), written when the run ends, or an :class:`~anypool.Trace`.",
        where=_POOL,
    ),
    # -- backend options: Pool takes them in **options; the backend's option_names check them --
    Option(
        name="start_method", annotation="str", default=None, default_src="",
        check=None,
        doc='process backend: ``"forkserver"``, ``"spawn"`` or ``"fork"``.',
        where=_BACKEND, backend="process",
    ),
    Option(
        name="uvloop", annotation="bool", default=True, default_src="",
        check=None,
        doc="asyncio backend: use uvloop when installed (default True).",
        where=_BACKEND, backend="asyncio",
    ),
    Option(
        name="address", annotation="str | None", default=None, default_src="",
        check=None,
        doc='dask backend: the scheduler to run on (``"tcp://host:8786"``).',
        where=_BACKEND, backend="dask",
    ),
    Option(
        name="client", annotation="Any", default=None, default_src="",
        check=None,
        doc="dask backend: an existing ``distributed.Client`` to run on.",
        where=_BACKEND, backend="dask",
    ),
)  # fmt: skip

BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


def names(where: str) -> tuple[str, ...]:
    """The options an entry point accepts, in declaration order."""
    return tuple(o.name for o in OPTIONS if where in o.where)


#: the per-call options of the map methods (a pool's defaults for its maps)
MAP_KEYS: frozenset[str] = frozenset(names(METHOD))
#: the options of a pool that sets up workers (not per call)
POOL_KEYS: frozenset[str] = frozenset(o.name for o in OPTIONS if POOL in o.where) - MAP_KEYS
#: the options a Pipeline stage accepts (besides its backend's own)
STAGE_KEYS: frozenset[str] = frozenset(names(STAGE))


def check_option(name: str, value: object) -> Any:
    """The value to use for option ``name``, or the error saying what it accepts."""
    check = BY_NAME[name].check
    return value if check is None else check(value)


def check_workers(workers: object, max_workers: object = None) -> int | None:
    """``workers=`` (or its ``concurrent.futures`` name ``max_workers=``): a positive whole
    number, or ``None`` (the backend's default)."""
    if workers is not None and max_workers is not None and workers != max_workers:
        raise ValueError(
            f"workers={workers!r} and max_workers={max_workers!r} disagree; they are two "
            "names for the same setting, pass only one"
        )
    return check_positive_int("workers", workers if workers is not None else max_workers)


def check_backend_options(options: Iterable[str], backend: str, accepted: Iterable[str]) -> None:
    """``Pool(**options)``: refuse what is not one of the backend's own options (``accepted``)."""
    accepted = tuple(accepted)
    unknown = set(options) - set(accepted)
    if unknown:
        raise unknown_option_error(
            unknown, POOL, context=f"backend={backend!r}", backend_options=accepted
        )


def unknown_option_error(
    unknown: Iterable[str],
    where: str,
    *,
    context: str,
    backend_options: Iterable[str] = (),
    extra: Iterable[str] = (),
) -> TypeError:
    """The error for options an entry point does not take, built from the declaration.

    It names each unknown option with its nearest valid names (a misspelling points at the
    right one) and lists what the entry point accepts: the map options, the pool options and
    the backend's own.

    Args:
        unknown: the options given that are not accepted.
        where: the entry point (:data:`POOL`, :data:`API`, :data:`METHOD`, :data:`STAGE`).
        context: what was called, e.g. ``"backend='thread'"`` or ``"Pipeline.map()"``.
        backend_options: the backend's own options (accepted too).
        extra: other keywords of the entry point (``Pipeline.map``'s ``backend``...).
    """
    unknown = sorted(unknown)
    backend_options = tuple(backend_options)
    accepted = [n for n in names(where) if BY_NAME[n].backend is None]
    valid = [*extra, *accepted, *backend_options]
    hints = []
    for u in unknown:
        close = difflib.get_close_matches(u, valid, n=3, cutoff=0.6)
        if close:
            hints.append(f"{u}=: did you mean {' or '.join(c + '=' for c in close)}?")
    noun = "option" if len(unknown) == 1 else "options"
    msg = f"unknown {noun} {', '.join(u + '=' for u in unknown)} for {context}"
    if hints:
        msg += f" ({'; '.join(hints)})"
    map_names = [n for n in accepted if n in MAP_KEYS]
    pool_names = [n for n in accepted if n not in MAP_KEYS]
    groups = []
    if extra:
        groups.append(f"its own: {', '.join(extra)}")
    if map_names:
        groups.append(f"the map options: {', '.join(map_names)}")
    if pool_names:
        groups.append(f"the pool options: {', '.join(pool_names)}")
    if where != METHOD:
        groups.append(f"its backend options: {', '.join(backend_options) or 'none'}")
    return TypeError(f"{msg}; valid options: {'; '.join(groups)}")


def pool_options(values: dict[str, Any]) -> dict[str, Any]:
    """Check the pool options (:data:`POOL_KEYS`, from ``values``): name -> the value to use."""
    return {name: check_option(name, values[name]) for name in names(POOL) if name in POOL_KEYS}


def map_options(values: dict[str, Any]) -> MapOptions:
    """Check the map options (:data:`MAP_KEYS`, from ``values``) together: the engine's record."""
    from ._engine import MapOptions
    from ._tasks import Retry

    v = {k: check_option(k, values[k]) for k in names(METHOD)}
    if v["rate"] is not None and v["chunksize"] not in (None, 1):
        raise ValueError(
            f"rate= paces the start of every input, so inputs go one per task; it cannot be "
            f"combined with chunksize={v['chunksize']!r} (drop chunksize=, or pass chunksize=1)"
        )
    return MapOptions(
        chunksize=v["chunksize"],
        errors=v["errors"],
        task_timeout=v["task_timeout"],
        retry=Retry(attempts=v["retries"], retry_on=v["retry_on"]),
        progress=v["progress"],
        rate=v["rate"],
    )


def merge_map_options(defaults: MapOptions, overrides: dict[str, Any]) -> MapOptions:
    """One map call's options: the pool's ``defaults`` with the call's ``overrides``."""
    unknown = set(overrides) - MAP_KEYS
    if unknown:
        raise unknown_option_error(unknown, METHOD, context="a map call")
    values: dict[str, Any] = {
        "chunksize": defaults.chunksize,
        "progress": defaults.progress,
        "errors": defaults.errors,
        "task_timeout": defaults.task_timeout,
        "retries": defaults.retry.attempts,
        "retry_on": defaults.retry.retry_on,
        "rate": defaults.rate,
    }
    values.update(overrides)
    return map_options(values)


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split one-call options into (per-call map options, pool options)."""
    per_call = {k: v for k, v in options.items() if k in MAP_KEYS}
    pool = {k: v for k, v in options.items() if k not in MAP_KEYS}
    return per_call, pool


# -- the typed declarations (used by the overloads) ------------------------------------------
# BEGIN GENERATED typed options (python -m anypool._core._gen)


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
        errors: ``"raise"`` (the first error stops the map) or ``"collect"`` (each input gives a
            :class:`~anypool.Result`).
        task_timeout: seconds one task may run; it then fails with ``TaskTimeoutError``.
        retries: how many more times a failing task is tried (a timed-out one too).
        retry_on: which exception types are retried (default: ``Exception``).
        rate: at most this many task starts: ``"50/s"``, ``"300/min"``, ``"1000/h"``, a number
            (per second) or a :class:`~anypool.RateLimiter` (to share one budget or choose the
            burst). Inputs then go one per task and each start takes a token; starts are evenly
            spaced (burst 1). ``None``: no limit. *Added in 0.2.*

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
    debug: bool
    trace: str | os.PathLike[str] | Trace | None
    start_method: str
    uvloop: bool
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
        finalizer: called once in each worker as it stops (errors are logged). *Added in 0.2.*
        finalizer_timeout: seconds a finalizer may run before its worker is killed. *Added in
            0.2.*
        inner_threads: threads for native libraries (BLAS, OpenMP) in each worker: ``"auto"``
            (processes: CPUs // workers), a number, or ``None`` (untouched). *Added in 0.2.*
        max_memory_per_worker: process workers: replace a worker whose memory is above this
            after a task (bytes, or ``"2GB"``, ``"500MB"``...). *Added in 0.3.*
        task_memory_limit: process workers: stop a task whose worker grows past this; it fails
            with :class:`~anypool.MemoryLimitExceeded`. *Added in 0.3.*
        debug: warn about blocked event loops and CPU-bound work on threads.
        trace: record every task: a path ending in ``.html`` (timeline page) or ``.json``
            (Chrome-trace JSON), written when the run ends, or an :class:`~anypool.Trace`.
        start_method: process backend: ``"forkserver"``, ``"spawn"`` or ``"fork"``.
        uvloop: asyncio backend: use uvloop when installed (default True).
        address: dask backend: the scheduler to run on (``"tcp://host:8786"``).
        client: dask backend: an existing ``distributed.Client`` to run on.

    .. versionadded:: 0.1
    """


# END GENERATED typed options
