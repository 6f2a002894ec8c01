"""The one-call functions: ``anypool.map``, ``imap``, ``imap_unordered``, ``amap``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal, assert_type

import anypool
from anypool import ApiKwargs, Result


def square(x: int) -> int:
    return x * x


def add(x: int, y: float) -> float:
    return x + y


async def fetch(url: str) -> bytes:
    return url.encode()


def plain_map() -> None:
    assert_type(anypool.map(square, range(10)), list[int])
    assert_type(anypool.map(add, [1, 2], [0.5, 1.5]), list[float])
    assert_type(anypool.map(square, range(10), backend="thread", workers=4), list[int])
    assert_type(
        anypool.map(square, range(10), chunksize=8, retries=2, task_timeout=1.0, rate="5/s"),
        list[int],
    )
    assert_type(anypool.map(square, range(10), errors="raise"), list[int])
    assert_type(anypool.map(str, range(3), initializer=print, initargs=("hi",)), list[str])
    # fn is Callable[..., T]: a lambda's parameter is not inferred from the inputs (Any)
    assert_type(anypool.map(lambda x: [x], range(3)), list[list[Any]])


def coroutine_map() -> None:
    # the asyncio backend awaits a coroutine function; thread/process run it to completion
    assert_type(anypool.map(fetch, ["a", "b"]), list[bytes])
    assert_type(anypool.map(fetch, ["a"], backend="asyncio", workers=50), list[bytes])


def collect_map() -> None:
    assert_type(anypool.map(square, range(10), errors="collect"), list[Result[int]])
    assert_type(anypool.map(fetch, ["a"], errors="collect"), list[Result[bytes]])
    assert_type(anypool.map(add, [1], [2.0], errors="collect", retries=1), list[Result[float]])
    for r in anypool.map(square, range(3), errors="collect"):
        assert_type(r, Result[int])
        assert_type(r.value, int | None)
        assert_type(r.unwrap(), int)
        assert_type(r.ok, bool)
        assert_type(r.error, BaseException | None)
        assert_type(r.index, int)


def forwarded_options(opts: ApiKwargs, mode: Literal["raise", "collect"]) -> None:
    # errors= not known statically: either kind of list
    assert_type(anypool.map(square, range(3), **opts), list[int] | list[Result[int]])
    # (a coroutine function matches two of these overloads and the dict holds Any: Any)
    assert_type(anypool.map(fetch, ["a"], **opts), list[Any])
    assert_type(anypool.imap(square, range(3), **opts), Iterator[int] | Iterator[Result[int]])
    assert_type(anypool.map(square, range(3), errors=mode), list[Result[int]] | list[int])


def lazy_maps() -> None:
    assert_type(anypool.imap(square, range(10)), Iterator[int])
    assert_type(anypool.imap(fetch, ["a"]), Iterator[bytes])
    assert_type(anypool.imap(square, range(10), errors="collect"), Iterator[Result[int]])
    assert_type(anypool.imap(add, [1], [2.0], backend="process"), Iterator[float])
    assert_type(anypool.imap_unordered(square, range(10)), Iterator[int])
    assert_type(anypool.imap_unordered(fetch, ["a"]), Iterator[bytes])
    assert_type(anypool.imap_unordered(fetch, ["a"], errors="collect"), Iterator[Result[bytes]])
    for y in anypool.imap(square, range(3)):
        assert_type(y, int)


async def async_map() -> None:
    assert_type(await anypool.amap(square, range(10)), list[int])
    assert_type(await anypool.amap(fetch, ["a"]), list[bytes])
    assert_type(await anypool.amap(fetch, ["a"], ordered=False, workers=8), list[bytes])
    assert_type(await anypool.amap(fetch, ["a"], errors="collect"), list[Result[bytes]])
    assert_type(await anypool.amap(add, [1], [2.0], errors="collect"), list[Result[float]])


def lifecycle_options() -> None:
    assert_type(
        anypool.map(square, range(3), backend="process", inner_threads=2, finalizer=print),
        list[int],
    )


def memory_options(pool: anypool.Pool) -> None:
    assert_type(
        anypool.map(square, range(3), max_memory_per_worker="2GB", task_memory_limit=2**30),
        list[int],
    )
    assert_type(pool.stats(), anypool.PoolStats)
    assert_type(pool.stats().memory_recycles, int)


def mistakes() -> None:
    anypool.map(square, range(3), errors="bogus")  # type: ignore[call-overload]
    anypool.map(square, range(3), chunk_size=4)  # type: ignore[call-overload]
    anypool.map(3, range(3))  # type: ignore[call-overload]
    anypool.map(square, range(3), retries="2")  # type: ignore[call-overload]
    anypool.map(square, range(3), inner_threads="many")  # type: ignore[call-overload]
    anypool.map(square, range(3), task_memory_limit=1.5)  # type: ignore[call-overload]
    anypool.imap(square, range(3), errors="bogus")  # type: ignore[call-overload]
    anypool.imap_unordered(square, range(3), chunk_size=4)  # type: ignore[call-overload]
    wrong: list[str] = anypool.map(square, range(3))  # type: ignore[arg-type]
    collected: list[int] = anypool.map(square, range(3), errors="collect")  # type: ignore[assignment]
    first = anypool.map(square, range(3), errors="collect")[0]
    first.value + 1  # type: ignore[operator]
    del wrong, collected


async def async_mistakes() -> None:
    await anypool.amap(fetch, ["a"], errors="bogus")  # type: ignore[call-overload]
    await anypool.amap(fetch, ["a"], ordered="yes")  # type: ignore[call-overload]


def executor_backend() -> None:
    # any concurrent.futures.Executor is a backend; the result type does not change
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2) as ex:
        assert_type(anypool.map(square, range(10), backend=ex), list[int])
        assert_type(anypool.imap(square, range(10), backend=ex), Iterator[int])
        with anypool.Pool(ex) as pool:
            assert_type(list(pool.imap(square, range(3))), list[int])
