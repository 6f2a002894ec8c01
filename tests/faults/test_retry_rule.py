"""One retry rule for errors, timeouts and crashes: ``retry_on`` decides for all three, and the
final error says how many attempts were made (or why there was no retry)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import faultkit as fk
import pytest

import anypool

SHORT_TIMEOUT = 60


def _runs(d: Path) -> int:
    return len(os.listdir(d))


def test_a_crash_is_not_retried_when_retry_on_leaves_it_out(tmp_path: Path) -> None:
    with anypool.Pool("process", workers=1, retries=3, retry_on=(ValueError,)) as pool:
        out = list(
            pool.imap(fk.crash_until, [str(tmp_path)], ["m"], [99], chunksize=1, errors="collect")
        )
    err = out[0].error
    assert isinstance(err, anypool.WorkerCrashed)
    assert _runs(tmp_path) == 1, "the crashing task ran again although retry_on leaves crashes out"
    assert any("not retried" in n and "WorkerCrashed" in n for n in err.__notes__)


def test_a_crash_is_retried_when_retry_on_names_worker_crashed(tmp_path: Path) -> None:
    with anypool.Pool("process", workers=1, retries=2, retry_on=anypool.WorkerCrashed) as pool:
        fut = pool.submit(fk.crash_until, str(tmp_path), "m", 2)
        assert fut.result(timeout=SHORT_TIMEOUT) == "ok"
    assert _runs(tmp_path) == 2


def test_a_crash_that_keeps_happening_says_how_many_attempts(tmp_path: Path) -> None:
    with anypool.Pool("process", workers=1, retries=1) as pool:
        err = pool.submit(fk.crash_until, str(tmp_path), "m", 99).exception(SHORT_TIMEOUT)
    assert isinstance(err, anypool.WorkerCrashed)
    assert "gave up after 2 attempts" in str(err)
    assert _runs(tmp_path) == 2


class Transient(Exception):
    pass


def _fail_with(d: str, kind: str) -> int:
    Path(d, f"run-{len(os.listdir(d))}").touch()
    raise {"transient": Transient, "type": TypeError}[kind](kind)


@pytest.mark.parametrize("backend", ["serial", "thread", "process", "asyncio"])
def test_an_error_outside_retry_on_runs_once_and_says_why(backend: str, tmp_path: Path) -> None:
    fn: Any = _fail_with
    if backend == "asyncio":

        async def fn(d: str, kind: str) -> int:
            return _fail_with(d, kind)

    with anypool.Pool(backend, workers=1, retries=3, retry_on=Transient) as pool:
        out = list(pool.imap(fn, [str(tmp_path)], ["type"], errors="collect"))
    err = out[0].error
    assert isinstance(err, TypeError)
    assert _runs(tmp_path) == 1
    assert any("not retried" in n for n in getattr(err, "__notes__", []))


@pytest.mark.parametrize("backend", ["serial", "thread", "process", "asyncio"])
def test_an_error_in_retry_on_is_retried_and_counted(backend: str, tmp_path: Path) -> None:
    fn: Any = _fail_with
    if backend == "asyncio":

        async def fn(d: str, kind: str) -> int:
            return _fail_with(d, kind)

    with anypool.Pool(backend, workers=1, retries=2, retry_on=Transient) as pool:
        out = list(pool.imap(fn, [str(tmp_path)], ["transient"], errors="collect"))
    err = out[0].error
    assert isinstance(err, Transient)
    assert _runs(tmp_path) == 3
    assert any("gave up after 3 attempts" in n for n in err.__notes__)


def test_a_timeout_outside_retry_on_is_not_retried(tmp_path: Path) -> None:
    with anypool.Pool("process", workers=1, retries=2, retry_on=ValueError) as pool:
        out = list(
            pool.imap(
                fk.record_and_hang, [str(tmp_path)], chunksize=1, errors="collect", task_timeout=0.5
            )
        )
    err = out[0].error
    assert isinstance(err, anypool.TaskTimeoutError)
    assert _runs(tmp_path) == 1
    assert any("not retried" in n for n in err.__notes__)
