"""Shared fixtures: the backend parameter, leak checks, helpers that adapt functions."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

import anypool

LOCAL_BACKENDS = ("serial", "thread", "process", "asyncio")
AVAILABLE = tuple(b for b in LOCAL_BACKENDS if b in anypool.get_available_backends())
SHORT_TIMEOUT = 30.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=AVAILABLE)
def backend(request: pytest.FixtureRequest) -> str:
    """Every local backend that is available here."""
    return str(request.param)


def adapt(backend: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """The same function in the shape the backend runs (``async def`` for asyncio)."""
    if backend != "asyncio":
        return fn

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def _multiprocessing_helpers() -> set[int]:
    me = psutil.Process()
    out = set()
    for child in me.children():
        try:
            cmd = " ".join(child.cmdline())
            if "forkserver" in cmd or "resource_tracker" in cmd:
                out.add(child.pid)
        except psutil.Error:
            pass
    return out


def _children() -> set[int]:
    me = psutil.Process()
    fs = _multiprocessing_helpers()  # shared by every pool: not ours
    out = set()
    for child in me.children(recursive=True):
        if child.pid in fs:
            continue
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        out.add(child.pid)
    return out


def _anypool_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("anypool")}


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves an anypool thread or a child process behind."""
    if "allow_leaks" in request.keywords:
        yield
        return
    threads_before = _anypool_threads()
    children_before = _children()
    yield
    # workers are joined by shutdown; nothing should be left right after the test
    leftover_threads = {t for t in _anypool_threads() - threads_before if t.is_alive()}
    leftover = _children() - children_before
    assert not leftover_threads, f"threads left behind: {leftover_threads}"
    assert not leftover, f"child processes left behind: {leftover} (pid {os.getpid()})"
