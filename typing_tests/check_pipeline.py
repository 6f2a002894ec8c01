"""``Pipeline[T]``: each stage's function decides the next stage's item type."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import assert_type

from anypool import Pipeline


def parse(line: str) -> int:
    return len(line)


async def fetch(url: str) -> bytes:
    return url.encode()


def split(text: bytes) -> list[str]:
    return text.decode().split()


async def words(text: bytes) -> AsyncIterator[str]:
    for w in text.decode().split():
        yield w


def chains() -> None:
    src = Pipeline(["a", "bb"])
    assert_type(src, Pipeline[str])
    assert_type(src.map(parse), Pipeline[int])
    assert_type(src.map(fetch, backend="asyncio", workers=50), Pipeline[bytes])
    assert_type(src.map(fetch).flat_map(split), Pipeline[str])
    assert_type(src.map(fetch).flat_map(words), Pipeline[str])
    assert_type(src.map(parse).filter(lambda n: n > 1), Pipeline[int])
    assert_type(src.map(parse).batch(10), Pipeline[list[int]])
    pipe = src.map(fetch).flat_map(split).map(parse, backend="process", retries=2)
    assert_type(pipe.run(), list[int])
    assert_type(iter(pipe), Iterator[int])
    for n in pipe:
        assert_type(n, int)
    with Pipeline(range(3)).map(str) as p:
        assert_type(p, Pipeline[str])


async def run_async() -> None:
    pipe = Pipeline(["a"]).map(fetch)
    assert_type(await pipe.arun(), list[bytes])
    async for b in pipe:
        assert_type(b, bytes)


def mistakes() -> None:
    Pipeline(["a"]).map(parse).map(split)  # type: ignore[arg-type]
    Pipeline(3)  # type: ignore[arg-type]
    Pipeline(["a"]).map(parse, chunk_size=3)  # type: ignore[call-overload]
