"""Shared fixtures: the backend parameter, leak checks, helpers that adapt functions."""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

import anypool

LOCAL_BACKENDS = ("serial", "thread", "process", "asyncio")
AVAILABLE = tuple(b for b in LOCAL_BACKENDS if b in anypool.get_available_backends())
#: the dask cases run on one LocalCluster for the whole session (in its own process)
HAVE_DASK = importlib.util.find_spec("distributed") is not None
BACKENDS = (*AVAILABLE, "dask") if HAVE_DASK else AVAILABLE
SHORT_TIMEOUT = 30.0
#: a test of the fork server that is a fork of the program (and of workers forked from it)
FORKED_SERVER_ONLY = pytest.mark.skipif(
    not (sys.platform == "linux" and sys.version_info < (3, 14)),
    reason="the forked fork server is made on Linux with Python 3.11-3.13 only",
)
#: the process of the session's Dask cluster (its worker processes are not leaks)
_dask_session_pid: list[int] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def backend(anypool_backend: str, request: pytest.FixtureRequest) -> str:
    """The backend of this case, from the ``anypool_backend`` fixture anypool ships.

    The ini setting ``anypool_backends`` (pyproject.toml) names every backend, dask included,
    which runs on the session's cluster; one that cannot run here is skipped with the reason.
    """
    if anypool_backend == "dask":
        request.getfixturevalue("dask_cluster")
    return anypool_backend


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[str]:
    """A LocalCluster (2 single-threaded workers) for the session; ``backend="dask"`` uses it.

    It runs in its own process (``tests/dask_session_cluster.py``) and is made the default
    through Dask's config (``scheduler-address``), as a user would with
    ``DASK_SCHEDULER_ADDRESS``. Its scheduler reschedules a task whose worker died once
    (``allowed-failures: 1``), then gives up with ``KilledWorker``.
    """
    import dask

    here = os.path.dirname(os.path.abspath(__file__))
    # the test modules must be importable on the workers, as a user's modules must be
    path = [here, os.path.join(here, "faults"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    proc = subprocess.Popen(
        [sys.executable, os.path.join(here, "dask_session_cluster.py"), "2"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    _dask_session_pid.append(proc.pid)
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address.startswith("tcp://"), (
            f"the session's Dask cluster did not start: {address!r}"
        )
        with dask.config.set({"scheduler-address": address}):
            yield address
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        _dask_session_pid.clear()


def adapt(backend: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """The same function in the shape the backend runs (``async def`` for asyncio)."""
    if backend != "asyncio":
        return fn

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def fork_server_pid() -> int | None:
    """multiprocessing's fork server, whichever way it was started (anypool may fork it from
    this process, so its command line is this process's: look it up by pid)."""
    import multiprocessing.forkserver

    return getattr(
        getattr(multiprocessing.forkserver, "_forkserver", None), "_forkserver_pid", None
    )


def _multiprocessing_helpers() -> set[int]:
    me = psutil.Process()
    out = set()
    server = fork_server_pid()
    if server is not None:
        out.add(server)
    for child in me.children():
        try:
            cmd = " ".join(child.cmdline())
            if "forkserver" in cmd or "resource_tracker" in cmd:
                out.add(child.pid)
        except psutil.Error:
            pass
    return out


def _dask_session_processes() -> set[int]:
    out: set[int] = set()
    for pid in _dask_session_pid:
        try:
            root = psutil.Process(pid)
            out.add(pid)
            out.update(c.pid for c in root.children(recursive=True))
        except psutil.Error:
            pass
    return out


def _children() -> set[int]:
    me = psutil.Process()
    fs = _multiprocessing_helpers()  # shared by every pool: not ours
    fs |= _dask_session_processes()  # the session's Dask cluster: workers restart after crashes
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


def _dask_clients() -> set[int]:
    """Open ``distributed.Client`` objects (a pool must close the clients it creates)."""
    mod = sys.modules.get("distributed")
    if mod is None:
        return set()
    return {id(c) for c in list(mod.Client._instances) if c.status not in ("closed", "closing")}


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves an anypool thread or a child process behind."""
    if "allow_leaks" in request.keywords:
        yield
        return
    threads_before = _anypool_threads()
    children_before = _children()
    clients_before = _dask_clients()
    yield
    # process workers kept warm for the next pool belong to no pool: give them back first
    # (a worker a pool still holds is still counted)
    anypool.shutdown_warm_workers()
    leftover_clients = _dask_clients() - clients_before
    assert not leftover_clients, f"Dask clients left open: {len(leftover_clients)}"
    # workers are joined by shutdown; nothing should be left right after the test
    leftover_threads = {t for t in _anypool_threads() - threads_before if t.is_alive()}
    leftover = _children() - children_before
    assert not leftover_threads, f"threads left behind: {leftover_threads}"
    assert not leftover, f"child processes left behind: {leftover} (pid {os.getpid()})"
