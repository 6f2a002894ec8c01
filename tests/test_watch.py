"""Runtime warnings: ``watch()`` for blocked event loops, ``report_thread_task()``."""

from __future__ import annotations

import asyncio
import functools
import sys
import time
import warnings
from collections.abc import Iterator

import pytest

from anypool.checks import (
    AnypoolWarning,
    BlockedEventLoopWarning,
    CPUBoundInThreadsWarning,
    _runtime,
    report_thread_task,
    watch,
    watch_loop,
)


def blocking_callback() -> None:
    time.sleep(0.3)  # the deliberate mistake under test: it blocks the event loop


def run_loop_with(callback: object) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def call_then_finish() -> None:
            assert callable(callback)
            callback()
            done.set_result(None)

        loop.call_soon(call_then_finish)
        await done

    asyncio.run(main())


def test_blocked_loop_warns_naming_the_function() -> None:
    with pytest.warns(BlockedEventLoopWarning) as record, watch(threshold=0.1):
        run_loop_with(blocking_callback)
    blocked = [w for w in record if issubclass(w.category, BlockedEventLoopWarning)]
    assert len(blocked) == 1
    message = str(blocked[0].message)
    assert "blocking_callback()" in message
    assert blocked[0].filename == __file__
    assert f"{__file__}:" in message


def test_blocked_loop_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.warns(BlockedEventLoopWarning), watch(threshold=0.1):
        run_loop_with(blocking_callback)
    assert any("blocking_callback" in r.getMessage() for r in caplog.records)
    assert all(r.name == "anypool" for r in caplog.records)


def test_non_blocking_loop_gives_no_warning() -> None:
    async def main() -> None:
        for _ in range(20):
            await asyncio.sleep(0.005)

    with warnings.catch_warnings():
        warnings.simplefilter("error", AnypoolWarning)
        with watch(threshold=0.1):
            asyncio.run(main())


def test_warning_as_error_is_raised_at_exit() -> None:
    # pytest runs with filterwarnings=error: the watchdog thread cannot raise, so the error
    # surfaces when the watch() block exits.
    with pytest.raises(BlockedEventLoopWarning, match="blocking_callback"), watch(threshold=0.1):
        run_loop_with(blocking_callback)


def test_watch_restores_run_forever() -> None:
    original = asyncio.BaseEventLoop.run_forever
    with watch(threshold=0.1):
        assert asyncio.BaseEventLoop.run_forever is not original
    assert asyncio.BaseEventLoop.run_forever is original


def test_watch_inside_running_loop() -> None:
    async def main() -> None:
        with watch(threshold=0.1):
            blocking_callback()
            await asyncio.sleep(0)

    with pytest.warns(BlockedEventLoopWarning, match="blocking_callback"):
        asyncio.run(main())


def test_watch_loop_explicitly() -> None:
    loop = asyncio.new_event_loop()
    try:
        watcher = watch_loop(loop, threshold=0.1)  # its first heartbeat is queued first
        loop.call_soon(blocking_callback)
        with pytest.warns(BlockedEventLoopWarning, match="blocking_callback"), watcher:
            loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="threshold"), watch(threshold=0):
        pass  # pragma: no cover


@pytest.fixture
def fresh_stats() -> Iterator[None]:
    _runtime._reset_thread_task_stats()
    yield
    _runtime._reset_thread_task_stats()


def cpu_function() -> None:
    """Stands in for CPU-bound work (never called)."""


def io_function() -> None:
    """Stands in for I/O-bound work (never called)."""


def test_cpu_bound_in_threads_warns_once(
    fresh_stats: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: True, raising=False)
    for _ in range(19):
        report_thread_task(0.0099, 0.01, cpu_function)  # not enough tasks yet
    with pytest.warns(CPUBoundInThreadsWarning, match="cpu_function") as record:
        report_thread_task(0.0099, 0.01, cpu_function)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AnypoolWarning)
        for _ in range(50):  # once per function, also through functools.partial
            report_thread_task(0.0099, 0.01, functools.partial(cpu_function))
    assert len(record) == 1
    assert record[0].filename == __file__
    assert "process" in str(record[0].message)


def test_cpu_bound_needs_enough_wall_time(
    fresh_stats: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: True, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AnypoolWarning)
        for _ in range(100):
            report_thread_task(0.0001, 0.0001, cpu_function)  # 10 ms in total


def test_io_bound_does_not_warn(fresh_stats: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: True, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AnypoolWarning)
        for _ in range(100):
            report_thread_task(0.001, 0.05, io_function)


def test_no_warning_without_gil(fresh_stats: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AnypoolWarning)
        for _ in range(100):
            report_thread_task(0.01, 0.01, cpu_function)


def test_warning_hierarchy() -> None:
    assert issubclass(BlockedEventLoopWarning, AnypoolWarning)
    assert issubclass(CPUBoundInThreadsWarning, AnypoolWarning)
    assert issubclass(AnypoolWarning, UserWarning)
