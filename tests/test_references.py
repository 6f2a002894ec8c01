"""Result iterators drop each result as soon as it is handed out (issue 11, item 4).

CPython's ``test_free_reference`` for executors, on every backend and every way of reading
results: once the caller lets go of a result, nothing of anypool's keeps it alive, neither
while the iterator goes on nor after the map (the pool stays open).
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import anypool
from conftest import BACKENDS, SHORT_TIMEOUT, adapt


class Dummy:
    """A result that can be weakly referenced (and pickled, for processes and Dask)."""

    def __init__(self, x: int) -> None:
        self.x = x


def make_dummy(x: int) -> Dummy:
    return Dummy(x)


@pytest.fixture(params=(*BACKENDS, "auto"))
def any_backend(request: pytest.FixtureRequest) -> str:
    """Every backend of the ``backend`` fixture, and ``auto``."""
    if request.param == "dask":
        request.getfixturevalue("dask_cluster")
    return str(request.param)


#: a freed result is gone this soon (the wait ends as soon as it is)
FREE_TIMEOUT = 5.0


def assert_freed(ref: weakref.ref[Any], what: str) -> None:
    """``ref``'s object is freed soon: a worker thread may still be leaving the frame that
    made it (as in CPython's test, the one place this polls, with a deadline)."""
    deadline = time.monotonic() + FREE_TIMEOUT
    pause = threading.Event()
    while True:
        gc.collect()
        if ref() is None:
            return
        assert time.monotonic() < deadline, f"{what} is still referenced: {gc.get_referrers(ref())}"
        pause.wait(0.005)


READERS: dict[str, Callable[[anypool.Pool, Callable[..., Any]], Iterator[Any]]] = {
    "Pool.map": lambda pool, fn: pool.map(fn, range(10)),
    "Pool.imap": lambda pool, fn: pool.imap(fn, range(10), chunksize=4),
    "Pool.imap_unordered": lambda pool, fn: pool.imap_unordered(fn, range(10)),
    "Pool.imap collect": lambda pool, fn: pool.imap(fn, range(10), errors="collect", chunksize=4),
}


@pytest.mark.parametrize("reader", READERS)
def test_free_reference(reader: str, any_backend: str) -> None:
    fn = adapt(any_backend, make_dummy)
    with anypool.Pool(any_backend, workers=2) as pool:
        seen = 0
        for item in READERS[reader](pool, fn):
            obj = item.unwrap() if isinstance(item, anypool.Result) else item
            del item
            assert isinstance(obj, Dummy)
            ref = weakref.ref(obj)
            del obj
            assert_freed(ref, f"result #{seen}")
            seen += 1
        assert seen == 10


@pytest.mark.parametrize("ordered", [True, False])
def test_free_reference_one_call_imap(ordered: bool, any_backend: str) -> None:
    fn = adapt(any_backend, make_dummy)
    imap = anypool.imap if ordered else anypool.imap_unordered
    for obj in imap(fn, range(10), backend=any_backend, workers=2):
        ref = weakref.ref(obj)
        del obj
        assert_freed(ref, "a result of anypool.imap")


def test_free_reference_aimap(any_backend: str) -> None:
    fn = adapt(any_backend, make_dummy)

    async def main() -> int:
        seen = 0
        async with anypool.Pool(any_backend, workers=2) as pool:
            async for obj in pool.aimap(fn, range(10)):
                ref = weakref.ref(obj)
                del obj
                assert_freed(ref, "a result of aimap")
                seen += 1
        return seen

    assert asyncio.run(main()) == 10


def test_nothing_kept_after_a_map_or_a_submit(any_backend: str) -> None:
    fn = adapt(any_backend, make_dummy)
    with anypool.Pool(any_backend, workers=2) as pool:
        results = list(pool.map(fn, range(10)))
        refs = [weakref.ref(r) for r in results]
        collected = list(pool.imap(fn, range(10), errors="collect"))
        refs += [weakref.ref(r.value) for r in collected]
        fut = pool.submit(fn, 1)
        refs.append(weakref.ref(fut.result(SHORT_TIMEOUT)))
        del results, collected, fut
        for i, ref in enumerate(refs):
            assert_freed(ref, f"result #{i}")  # the pool is still open
