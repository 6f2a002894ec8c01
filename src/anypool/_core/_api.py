"""The one-call API: ``map``, ``imap``, ``imap_unordered``, ``amap``.

Each builds a :class:`~anypool.Pool`, runs, and shuts the pool down; no logic lives here.
Options are declared once, in ``OPTIONS`` (``_options.py``); the typed
:class:`~anypool.MapKwargs`/:class:`~anypool.ApiKwargs` and the overloads here are generated
from it (``make generate``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import Executor
from typing import Any, Literal, TypeVar, Unpack, overload

from ._options import ApiKwargs, _ApiKwargsNoErrors, split_options
from ._pool import Pool
from ._result import Result

T = TypeVar("T")

DEFAULT_BACKEND = "auto"

# The overloads type the results (the implementations carry the docstrings). In order:
#   1. a coroutine function comes first: it would also match ``Callable[..., T]`` with T the
#      coroutine, but every backend awaits it (asyncio) or runs it to completion
#      (thread, process), so its items are what it returns;
#   2. ``errors="collect"`` (required keyword) gives ``Result[T]`` items, ``errors="raise"``
#      or no ``errors=`` gives T items; the other options then come from a TypedDict without
#      the ``errors`` key;
#   3. ``errors=`` not known statically (a forwarded ``**ApiKwargs`` dict): either kind.
# typing_tests/ checks all of this with assert_type (``make typecheck``). The overloads between
# the GENERATED markers are written by ``python -m anypool._core._gen`` (``make generate``) from
# the templates in _gen.py; tests/test_generated.py fails when they are stale.


# BEGIN GENERATED overloads of map (python -m anypool._core._gen)


@overload
def map(
    fn: Callable[..., Coroutine[Any, Any, T]],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    errors: Literal["collect"],
    **options: Unpack[_ApiKwargsNoErrors],
) -> list[Result[T]]: ...


@overload
def map(
    fn: Callable[..., Coroutine[Any, Any, T]],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    errors: Literal["raise"] = ...,
    **options: Unpack[_ApiKwargsNoErrors],
) -> list[T]: ...


@overload
def map(
    fn: Callable[..., T],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    errors: Literal["collect"],
    **options: Unpack[_ApiKwargsNoErrors],
) -> list[Result[T]]: ...


@overload
def map(
    fn: Callable[..., T],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    errors: Literal["raise"] = ...,
    **options: Unpack[_ApiKwargsNoErrors],
) -> list[T]: ...


@overload
def map(
    fn: Callable[..., Coroutine[Any, Any, T]],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    **options: Unpack[ApiKwargs],
) -> list[T] | list[Result[T]]: ...


@overload
def map(
    fn: Callable[..., T],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    **options: Unpack[ApiKwargs],
) -> list[T] | list[Result[T]]: ...


# END GENERATED overloads of map


def map(
    fn: Callable[..., T],
    *iterables: Iterable[Any],
    backend: str | Executor = DEFAULT_BACKEND,
    workers: int | None = None,
    **options: Unpack[ApiKwargs],
) -> list[Any]:
    """Run ``fn`` over the inputs concurrently and return the results as a list, in order.

    Several iterables zip like the builtin ``map``. With ``errors="raise"`` the first error is
    raised (with the worker's traceback) and pending work is cancelled; with
    ``errors="collect"`` each input gives a :class:`~anypool.Result`.

    Args:
        fn: the function to run on each input.
        *iterables: the inputs; read lazily, a bounded number at a time.
        backend: ``"auto"`` (measure and choose), ``"serial"``, ``"thread"``, ``"process"``
            or ``"asyncio"``.
        workers: how many at once (default: depends on the backend).
        **options: the map options of :class:`~anypool.MapKwargs` (``chunksize``,
            ``progress``, ``errors``, ``task_timeout``, ``retries``, ``retry_on``, ``rate``)
            and the pool options of :class:`~anypool.ApiKwargs` (``initializer``,
            ``initargs``, ``max_tasks_per_worker``, ``finalizer``, ``inner_threads``,
            ``max_memory_per_worker``, ``task_memory_limit``, backend options).

    .. versionadded:: 0.1
    """
    per_call, pool_options = split_options(dict(options))
    with Pool(backend, workers, **pool_options) as pool:
        return pool._map_list(fn, iterables, **per_call)


class _OwnedIterator(Iterator[T]):
    """Iterates a pool's results and shuts the pool down when done, closed or dropped."""

    def __init__(self, pool: Pool, it: Iterator[T]) -> None:
        self._pool: Pool | None = pool
        self._it = it

    def __iter__(self) -> _OwnedIterator[T]:
        return self

    def __next__(self) -> T:
        if self._pool is None:
            raise StopIteration
        try:
            return next(self._it)
        except (KeyboardInterrupt, SystemExit):
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.terminate()
            raise
        except BaseException as exc:
            self._release(cancel=not isinstance(exc, StopIteration))
            raise

    def close(self) -> None:
        """Stop early: cancel what has not started and shut the pool down."""
        self._release(cancel=True)

    def _release(self, cancel: bool) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            close = getattr(self._it, "close", None)
            if close is not None:
                close()
            pool.shutdown(wait=True, cancel_futures=cancel)

    def __del__(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _owned(
    ordered: bool,
    fn: Callable[..., Any],
    iterables: tuple[Iterable[Any], ...],
    backend: str | Executor,
    workers: int | None,
    options: dict[str, Any],
) -> Iterator[Any]:
    per_call, pool_options = split_options(options)
    pool = Pool(backend, workers, **pool_options)
    try:
        if ordered:
            it = pool.imap(fn, *iterables, **per_call)
        else:
            it = pool.imap_unordered(fn, *iterables, **per_call)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    return _OwnedIterator(pool, it)


# BEGIN GENERATED overloads of imap (python -m anypool._core._gen)


@overload
def imap(
    fn: Callable[..., Coroutine[Any, Any, T]],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    errors: Literal["collect"],
    **options: Unpack[_ApiKwargsNoErrors],
) -> Iterator[Result[T]]: ...


@overload
def imap(
    fn: Callable[..., Coroutine[Any, Any, T]],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    errors: Literal["raise"] = ...,
    **options: Unpack[_ApiKwargsNoErrors],
) -> Iterator[T]: ...


@overload
def imap(
    fn: Callable[..., T],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    errors: Literal["collect"],
    **options: Unpack[_ApiKwargsNoErrors],
) -> Iterator[Result[T]]: ...


@overload
def imap(
    fn: Callable[..., T],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    errors: Literal["raise"] = ...,
    **options: Unpack[_ApiKwargsNoErrors],
) -> Iterator[T]: ...


@overload
def imap(
    fn: Callable[..., Coroutine[Any, Any, T]],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    **options: Unpack[ApiKwargs],
) -> Iterator[T] | Iterator[Result[T]]: ...


@overload
def imap(
    fn: Callable[..., T],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    **options: Unpack[ApiKwargs],
) -> Iterator[T] | Iterator[Result[T]]: ...


# END GENERATED overloads of imap


def imap(
    fn: Callable[..., T],
    *iterables: Iterable[Any],
    backend: str | Executor = DEFAULT_BACKEND,
    workers: int | None = None,
    **options: Unpack[ApiKwargs],
) -> Iterator[Any]:
    """Like :func:`map` but lazy: yields results in input order as they are ready.

    Works on endless inputs: only a bounded number of inputs are read ahead. The pool is shut
    down when the iterator is exhausted, closed, or dropped.

    .. versionadded:: 0.1
    """
    return _owned(True, fn, iterables, backend, workers, dict(options))


# BEGIN GENERATED overloads of imap_unordered (python -m anypool._core._gen)


@overload
def imap_unordered(
    fn: Callable[..., Coroutine[Any, Any, T]],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    errors: Literal["collect"],
    **options: Unpack[_ApiKwargsNoErrors],
) -> Iterator[Result[T]]: ...


@overload
def imap_unordered(
    fn: Callable[..., Coroutine[Any, Any, T]],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    errors: Literal["raise"] = ...,
    **options: Unpack[_ApiKwargsNoErrors],
) -> Iterator[T]: ...


@overload
def imap_unordered(
    fn: Callable[..., T],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    errors: Literal["collect"],
    **options: Unpack[_ApiKwargsNoErrors],
) -> Iterator[Result[T]]: ...


@overload
def imap_unordered(
    fn: Callable[..., T],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    errors: Literal["raise"] = ...,
    **options: Unpack[_ApiKwargsNoErrors],
) -> Iterator[T]: ...


@overload
def imap_unordered(
    fn: Callable[..., Coroutine[Any, Any, T]],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    **options: Unpack[ApiKwargs],
) -> Iterator[T] | Iterator[Result[T]]: ...


@overload
def imap_unordered(
    fn: Callable[..., T],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    **options: Unpack[ApiKwargs],
) -> Iterator[T] | Iterator[Result[T]]: ...


# END GENERATED overloads of imap_unordered


def imap_unordered(
    fn: Callable[..., T],
    *iterables: Iterable[Any],
    backend: str | Executor = DEFAULT_BACKEND,
    workers: int | None = None,
    **options: Unpack[ApiKwargs],
) -> Iterator[Any]:
    """Like :func:`imap` but yields results as tasks complete, not in input order.

    .. versionadded:: 0.1
    """
    return _owned(False, fn, iterables, backend, workers, dict(options))


# BEGIN GENERATED overloads of amap (python -m anypool._core._gen)


@overload
async def amap(
    fn: Callable[..., Coroutine[Any, Any, T]],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    ordered: bool = ...,
    errors: Literal["collect"],
    **options: Unpack[_ApiKwargsNoErrors],
) -> list[Result[T]]: ...


@overload
async def amap(
    fn: Callable[..., Coroutine[Any, Any, T]],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    ordered: bool = ...,
    errors: Literal["raise"] = ...,
    **options: Unpack[_ApiKwargsNoErrors],
) -> list[T]: ...


@overload
async def amap(
    fn: Callable[..., T],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    ordered: bool = ...,
    errors: Literal["collect"],
    **options: Unpack[_ApiKwargsNoErrors],
) -> list[Result[T]]: ...


@overload
async def amap(
    fn: Callable[..., T],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    ordered: bool = ...,
    errors: Literal["raise"] = ...,
    **options: Unpack[_ApiKwargsNoErrors],
) -> list[T]: ...


@overload
async def amap(
    fn: Callable[..., Coroutine[Any, Any, T]],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    ordered: bool = ...,
    **options: Unpack[ApiKwargs],
) -> list[T] | list[Result[T]]: ...


@overload
async def amap(
    fn: Callable[..., T],
    *iterables: Iterable[Any],
    backend: str | Executor = ...,
    workers: int | None = ...,
    ordered: bool = ...,
    **options: Unpack[ApiKwargs],
) -> list[T] | list[Result[T]]: ...


# END GENERATED overloads of amap


async def amap(
    fn: Callable[..., Any],
    *iterables: Iterable[Any],
    backend: str | Executor = DEFAULT_BACKEND,
    workers: int | None = None,
    ordered: bool = True,
    **options: Unpack[ApiKwargs],
) -> list[Any]:
    """Await :func:`map` from async code, without blocking the event loop.

    Coroutine functions run on the caller's own event loop (``auto`` sends them to the
    asyncio backend).

    .. versionadded:: 0.1
    """
    per_call, pool_options = split_options(dict(options))
    async with Pool(backend, workers, **pool_options) as pool:
        out: list[Any] = await pool.amap(fn, *iterables, ordered=ordered, **per_call)
        return out
