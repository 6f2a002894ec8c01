"""``Pool``: ``submit``, the stdlib ``map``, ``imap``, ``imap_unordered``, ``amap``, ``aimap``."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import AsyncIterator, Iterator
from typing import assert_type

from anypool import MapKwargs, Pool, Result


def square(x: int) -> int:
    return x * x


def add(x: int, y: float) -> float:
    return x + y


async def fetch(url: str) -> bytes:
    return url.encode()


def executor(pool: Pool) -> None:
    assert_type(pool.submit(square, 3), cf.Future[int])
    assert_type(pool.submit(square, 3).result(), int)
    # a coroutine function: every backend awaits it (asyncio) or runs it to completion
    assert_type(pool.submit(fetch, "a"), cf.Future[bytes])
    assert_type(pool.map(square, range(10)), Iterator[int])
    assert_type(pool.map(add, [1], [2.0], timeout=5, chunksize=4), Iterator[float])
    assert_type(pool.map(fetch, ["a"]), Iterator[bytes])
    ex: cf.Executor = pool  # a real concurrent.futures.Executor
    del ex


def lazy(pool: Pool) -> None:
    assert_type(pool.imap(square, range(10)), Iterator[int])
    assert_type(pool.imap(fetch, ["a"], retries=2), Iterator[bytes])
    assert_type(pool.imap(add, [1], [2.0], errors="collect"), Iterator[Result[float]])
    assert_type(pool.imap(fetch, ["a"], errors="collect"), Iterator[Result[bytes]])
    assert_type(pool.imap_unordered(square, range(10)), Iterator[int])
    assert_type(pool.imap_unordered(fetch, ["a"], errors="raise"), Iterator[bytes])
    assert_type(pool.imap_unordered(square, [1], errors="collect"), Iterator[Result[int]])


def forwarded(pool: Pool, opts: MapKwargs) -> None:
    # errors= not known statically: either kind
    assert_type(pool.imap(square, [1], **opts), Iterator[int] | Iterator[Result[int]])
    assert_type(
        pool.aimap(add, [1], [2.0], **opts), AsyncIterator[float] | AsyncIterator[Result[float]]
    )


async def asynchronous(pool: Pool) -> None:
    assert_type(await pool.amap(square, range(10)), list[int])
    assert_type(await pool.amap(fetch, ["a"], ordered=False), list[bytes])
    assert_type(await pool.amap(fetch, ["a"], errors="collect"), list[Result[bytes]])
    assert_type(pool.aimap(fetch, ["a"]), AsyncIterator[bytes])
    assert_type(pool.aimap(square, [1], errors="collect"), AsyncIterator[Result[int]])
    async for page in pool.aimap(fetch, ["a"], ordered=False, chunksize=1):
        assert_type(page, bytes)
    async with Pool("asyncio") as apool:
        assert_type(apool, Pool)


def close_connection() -> None:
    pass


def per_worker(pool: Pool) -> None:
    assert_type(pool.broadcast(square, 3), dict[int, int])
    assert_type(pool.broadcast(fetch, "a"), dict[int, bytes])
    Pool("process", finalizer=close_connection, finalizer_timeout=2.5, inner_threads=1)
    Pool("process", inner_threads=None)
    Pool("process", inner_threads="auto")
    Pool("process", max_memory_per_worker="500MB", task_memory_limit=2 * 10**9)


async def per_worker_async(pool: Pool) -> None:
    assert_type(await pool.abroadcast(fetch, "a"), dict[int, bytes])
    assert_type(await pool.abroadcast(square, 2), dict[int, int])


def mistakes(pool: Pool) -> None:
    pool.map(square, [1], errors="collect")  # type: ignore[call-overload]
    pool.imap(square, [1], errors="bogus")  # type: ignore[call-overload]
    pool.imap(square, [1], chunk_size=2)  # type: ignore[call-overload]
    pool.imap_unordered(3, [1])  # type: ignore[call-overload]
    pool.aimap(square, [1], backend="thread")  # type: ignore[call-overload]
    pool.submit(3)  # type: ignore[call-overload]
    pool.broadcast(3)  # type: ignore[call-overload]
    Pool("process", inner_threads="many")  # type: ignore[arg-type]
    Pool("process", max_memory_per_worker=2.5)  # type: ignore[arg-type]
    n: str = pool.submit(square, 2).result()  # type: ignore[assignment]
    del n
