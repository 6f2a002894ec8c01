"""Sync calls made where people run code: inside a running event loop (issue 11, item 1).

A Jupyter cell runs inside IPython's event loop, and an ``async def`` may call sync code.
Every sync entry point, on every backend, called from a thread whose event loop is running,
must work (coroutines then run on an own loop in a helper thread) or raise a clear error that
names ``await anypool.amap`` — never hang. Each case runs under a deadline, so a hang fails
fast instead of waiting for the suite's timeout.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

import anypool
from conftest import BACKENDS, SHORT_TIMEOUT

#: a sync call that takes longer than this from inside a running loop is taken for a hang
DEADLINE = SHORT_TIMEOUT


async def adouble(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


def double(x: int) -> int:
    return 2 * x


def _map(fn: Callable[..., Any], b: str) -> list[Any]:
    return anypool.map(fn, range(6), backend=b)


def _imap(fn: Callable[..., Any], b: str) -> list[Any]:
    return list(anypool.imap(fn, range(6), backend=b))


def _imap_unordered(fn: Callable[..., Any], b: str) -> list[Any]:
    return sorted(anypool.imap_unordered(fn, range(6), backend=b))


def _pool_map(fn: Callable[..., Any], b: str) -> list[Any]:
    with anypool.Pool(b) as pool:
        return list(pool.map(fn, range(6)))


def _pool_imap(fn: Callable[..., Any], b: str) -> list[Any]:
    with anypool.Pool(b) as pool:
        return list(pool.imap(fn, range(6)))


def _pool_imap_unordered(fn: Callable[..., Any], b: str) -> list[Any]:
    with anypool.Pool(b) as pool:
        return sorted(pool.imap_unordered(fn, range(6)))


def _pool_submit(fn: Callable[..., Any], b: str) -> list[Any]:
    with anypool.Pool(b) as pool:
        futs = [pool.submit(fn, x) for x in range(6)]
        return [f.result(SHORT_TIMEOUT) for f in futs]


def _pipeline(fn: Callable[..., Any], b: str) -> list[Any]:
    return list(anypool.Pipeline(range(6)).map(fn, backend=b))


ENTRY_POINTS: dict[str, Callable[[Callable[..., Any], str], list[Any]]] = {
    "map": _map,
    "imap": _imap,
    "imap_unordered": _imap_unordered,
    "Pool.map": _pool_map,
    "Pool.imap": _pool_imap,
    "Pool.imap_unordered": _pool_imap_unordered,
    "Pool.submit": _pool_submit,
    "Pipeline": _pipeline,
}


@pytest.fixture(params=(*BACKENDS, "auto"))
def any_backend(request: pytest.FixtureRequest) -> str:
    """Every backend of the ``backend`` fixture, and ``auto``."""
    if request.param == "dask":
        request.getfixturevalue("dask_cluster")
    return str(request.param)


def with_deadline(fn: Callable[[], Any]) -> Any:
    """``fn()``, failing if it has not returned within :data:`DEADLINE` seconds."""
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:
            outcome.append((False, exc))

    t = threading.Thread(target=target, name="test-running-loop", daemon=True)
    t.start()
    t.join(DEADLINE)
    assert not t.is_alive(), f"a sync call inside a running event loop hung (> {DEADLINE} s)"
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def in_running_loop(call: Callable[[], Any]) -> Any:
    """Make the sync ``call`` from inside ``async def`` code (the loop is running in this
    thread: it is blocked while the call waits), under :data:`DEADLINE`."""

    async def caller() -> Any:
        return call()

    return with_deadline(lambda: asyncio.run(caller()))


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_coroutine_function_from_a_running_loop(entry: str, any_backend: str) -> None:
    out = in_running_loop(lambda: ENTRY_POINTS[entry](adouble, any_backend))
    assert out == [2 * x for x in range(6)]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_plain_function_from_a_running_loop(entry: str, any_backend: str) -> None:
    if any_backend == "asyncio":
        with pytest.raises(TypeError, match="not a coroutine function"):
            in_running_loop(lambda: ENTRY_POINTS[entry](double, any_backend))
        return
    out = in_running_loop(lambda: ENTRY_POINTS[entry](double, any_backend))
    assert out == [2 * x for x in range(6)]


def test_coroutines_of_a_sync_call_do_not_run_on_the_blocked_loop() -> None:
    async def main() -> list[bool]:
        caller = asyncio.get_running_loop()

        async def on_caller_loop(_: int) -> bool:
            return asyncio.get_running_loop() is caller

        return anypool.map(on_caller_loop, range(4))

    assert with_deadline(lambda: asyncio.run(main())) == [False] * 4


@pytest.mark.parametrize("backend_name", ["auto", "asyncio"])
def test_await_amap_still_runs_on_the_callers_loop(backend_name: str) -> None:
    async def main() -> list[bool]:
        caller = asyncio.get_running_loop()

        async def on_caller_loop(_: int) -> bool:
            return asyncio.get_running_loop() is caller

        return await anypool.amap(on_caller_loop, range(4), backend=backend_name)

    assert with_deadline(lambda: asyncio.run(main())) == [True] * 4


@pytest.mark.parametrize("backend_name", ["auto", "asyncio"])
def test_sync_call_after_async_use_of_the_same_pool_names_the_fix(backend_name: str) -> None:
    # the pool's tasks run on this loop now: waiting for them here could never end
    async def main() -> None:
        async with anypool.Pool(backend_name) as pool:
            assert await pool.amap(adouble, [1]) == [2]
            for call in (
                lambda: pool.map(adouble, [1]),
                lambda: pool.imap(adouble, [1]),
                lambda: pool.imap_unordered(adouble, [1]),
            ):
                with pytest.raises(RuntimeError, match=r"deadlock") as info:
                    list(call())
                assert "await anypool.amap(...)" in str(info.value)
            # and the pool still works the async way
            assert await pool.amap(adouble, [2]) == [4]

    with_deadline(lambda: asyncio.run(main()))


def test_sync_use_first_then_async_use_of_the_same_pool() -> None:
    async def main() -> tuple[list[int], list[int]]:
        with anypool.Pool() as pool:
            first = list(pool.map(adouble, range(3)))  # on the pool's own loop
            second = await pool.amap(adouble, range(3))  # awaits that loop's futures
        return first, second

    assert with_deadline(lambda: asyncio.run(main())) == ([0, 2, 4], [0, 2, 4])


def test_submit_future_on_the_callers_loop_refuses_to_block_it() -> None:
    async def main() -> None:
        async with anypool.Pool("asyncio") as pool:  # its tasks run on this loop
            fut = pool.submit(adouble, 4)
            with pytest.raises(RuntimeError, match=r"asyncio\.wrap_future"):
                fut.result()
            with pytest.raises(RuntimeError, match="deadlock"):
                fut.exception()
            assert await asyncio.wrap_future(fut) == 8
            assert fut.result() == 8  # done: nothing to wait for

    with_deadline(lambda: asyncio.run(main()))


def test_debug_watches_the_own_loop_a_sync_call_started() -> None:
    async def main() -> list[int]:
        with anypool.Pool("asyncio", debug=True) as pool:
            out = list(pool.map(adouble, range(3)))
            own = pool._backend.event_loop  # type: ignore[attr-defined]
            assert own is not asyncio.get_running_loop()
            assert own in {w.loop for w in pool._loop_watchers}
            return out

    assert with_deadline(lambda: asyncio.run(main())) == [0, 2, 4]
