"""``Result``, ``current_worker()``, ``RateLimiter``, ``Trace`` and ``anypool.trace``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, assert_type

import anypool
from anypool import RateLimiter, Result, TaskRecord, Trace, WorkerContext


def result(r: Result[int]) -> None:
    assert_type(r.value, int | None)
    assert_type(r.unwrap(), int)
    assert_type(r.error, BaseException | None)
    assert_type(r.ok, bool)
    assert_type(r.index, int)
    if r.value is not None:
        assert_type(r.value + 1, int)


def worker() -> None:
    ctx = anypool.current_worker()
    assert_type(ctx, WorkerContext)
    assert_type(ctx.id, int)
    assert_type(ctx.backend, str)
    assert_type(ctx.state, dict[str, Any])
    assert_type(ctx.tasks_done, int)


async def limiter() -> None:
    rl = RateLimiter("50/s", burst=5)
    assert_type(rl.rate, float)
    assert_type(rl.burst, int)
    assert_type(rl.try_acquire(), bool)
    assert_type(rl.acquire(), None)
    await rl.aacquire()
    with rl as same:
        assert_type(same, RateLimiter)
    async with rl as also:
        assert_type(also, RateLimiter)
    anypool.map(str, range(3), rate=rl)
    anypool.map(str, range(3), rate=10.0)
    RateLimiter(b"50/s")  # type: ignore[arg-type]
    anypool.map(str, range(3), rate=["50/s"])  # type: ignore[call-overload]


def tracing(path: Path) -> None:
    with anypool.trace(path) as tr:
        assert_type(tr, Trace)
    assert_type(tr.tasks, list[TaskRecord])
    assert_type(tr.tasks[0].duration, float)
    assert_type(tr.summary(), dict[str, Any])
    assert_type(tr.save(), Path)
    assert_type(Trace.load(path), Trace)
    assert_type(anypool.map(str, range(3), trace=tr), list[str])
    assert_type(anypool.map(str, range(3), trace="run.html"), list[str])
    anypool.map(str, range(3), trace=3)  # type: ignore[call-overload]


def testing_helpers() -> None:
    from anypool.testing import CHECKS, check_backend

    assert_type(CHECKS, tuple[str, ...])
    assert_type(check_backend("thread", skip=("retries",)), None)
