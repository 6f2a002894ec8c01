"""Input that fails, shutdown in every awkward place, nested pools: no hang, no lost task."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faultkit as fk
import pytest

import anypool
from conftest import SHORT_TIMEOUT, adapt


def inputs_that_break(n: int, at: int) -> Iterator[int]:
    for i in range(n):
        if i == at:
            raise LookupError(f"input #{i} could not be read")
        yield i


# -- an input iterable that raises mid-way ---------------------------------------------------
@pytest.mark.parametrize("how", ["map", "imap", "imap_unordered", "amap"])
def test_an_input_iterable_that_raises_reaches_the_caller(backend: str, how: str) -> None:
    fn = adapt(backend, fk.identity)

    def run(pool: anypool.Pool) -> object:
        if how == "amap":
            return asyncio.run(pool.amap(fn, inputs_that_break(200, 50), chunksize=4))
        return list(getattr(pool, how)(fn, inputs_that_break(200, 50), chunksize=4))

    with anypool.Pool(backend, workers=2) as pool:
        with pytest.raises(LookupError, match="input #50"):
            run(pool)
        assert list(pool.map(fn, range(5))) == [0, 1, 2, 3, 4]  # still usable


def test_results_before_a_broken_input_are_delivered(backend: str) -> None:
    fn = adapt(backend, fk.identity)
    got: list[int] = []
    with anypool.Pool(backend, workers=2) as pool:
        it = pool.imap(fn, inputs_that_break(100, 30), chunksize=1)
        with pytest.raises(LookupError):
            got.extend(it)
    assert got == list(range(len(got)))  # in order, none lost, none twice
    assert len(got) <= 30


# -- shutdown ----------------------------------------------------------------------------------
def test_shutdown_twice_after_use(backend: str) -> None:
    pool = anypool.Pool(backend, workers=2)
    assert list(pool.map(adapt(backend, fk.identity), range(3))) == [0, 1, 2]
    pool.shutdown()
    pool.shutdown()
    pool.shutdown(wait=False, cancel_futures=True)
    with pytest.raises(anypool.ClosedPoolError):
        pool.submit(adapt(backend, fk.identity), 1)


def _blocker(backend: str, tmp_path: Path) -> tuple[Any, Any, Any]:
    """A task that blocks until released, and how to wait for its start and release it.

    Threads use events; a process task blocks on a named pipe (opening it for writing
    returns once the task has opened it for reading: the task has started).
    """
    if backend == "process":
        fifo = str(tmp_path / "gate")
        os.mkfifo(fifo)
        box: list[Any] = []

        def started() -> bool:
            box.append(open(fifo, "w"))  # noqa: SIM115 - closed by release()
            return True

        def release() -> None:
            if not box:  # the task never started (cancelled): nobody reads; unblock ourselves
                fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
                os.close(fd)
                return
            box[0].write("go")
            box[0].close()

        return (fk.read_fifo, fifo), started, release
    gate = threading.Event()
    began = threading.Event()

    def block(_x: object) -> str:
        began.set()
        gate.wait(SHORT_TIMEOUT)
        return "go"

    return (block, None), (lambda: began.wait(SHORT_TIMEOUT)), gate.set


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_shutdown_nowait_cancel_futures_cancels_the_queue(backend: str, tmp_path: Path) -> None:
    (block, arg), started, release = _blocker(backend, tmp_path)
    pool = anypool.Pool(backend, workers=1)
    try:
        first = pool.submit(block, arg)
        assert started()
        queued = [pool.submit(fk.identity, i) for i in range(20)]
        pool.shutdown(wait=False, cancel_futures=True)
        assert all(f.cancelled() for f in queued)
        assert not first.cancelled()
    finally:
        release()
    assert first.result(timeout=SHORT_TIMEOUT) == "go"
    pool.shutdown(wait=True)


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_shutdown_from_a_done_callback_with_a_map_in_flight(backend: str, tmp_path: Path) -> None:
    (block, arg), started, release = _blocker(backend, tmp_path)
    pool = anypool.Pool(backend, workers=1)
    called = threading.Event()
    it = pool.imap(fk.identity, range(50), chunksize=1)
    assert next(it) == 0
    fut = pool.submit(block, arg)

    def stop(_f: cf.Future[Any]) -> None:
        pool.shutdown()  # runs on the pool's own thread: must not wait for itself
        called.set()

    try:
        assert started()
        fut.add_done_callback(stop)
    finally:
        release()
    assert called.wait(SHORT_TIMEOUT), "shutdown() in a done-callback deadlocked"
    assert fut.result(timeout=SHORT_TIMEOUT) == "go"
    rest: list[int] = []
    with pytest.raises(anypool.ClosedPoolError):
        rest.extend(it)  # inputs not yet sent cannot run on a pool that was shut down
    assert rest == list(range(1, 1 + len(rest)))
    pool.shutdown()


def test_shutdown_from_inside_a_thread_task() -> None:
    pool = anypool.Pool("thread", workers=1)
    it = pool.imap(fk.identity, range(50), chunksize=1)
    assert next(it) == 0
    assert pool.submit(pool.shutdown).result(timeout=SHORT_TIMEOUT) is None
    with pytest.raises(anypool.ClosedPoolError):
        list(it)
    pool.shutdown()


def test_shutdown_from_a_done_callback_on_the_asyncio_backend_is_refused() -> None:
    errors: list[BaseException] = []
    called = threading.Event()
    pool = anypool.Pool("asyncio", workers=1)

    async def one() -> int:
        return 1

    def stop(_f: cf.Future[Any]) -> None:
        try:
            pool.shutdown()  # on the event loop's thread: blocking would deadlock
        except RuntimeError as exc:
            errors.append(exc)
        called.set()

    fut = pool.submit(one)
    fut.add_done_callback(stop)
    assert called.wait(SHORT_TIMEOUT)
    pool.shutdown()
    if errors:  # the callback ran on the loop (it may also run here, if already done)
        assert "deadlock" in str(errors[0])


# -- nested use --------------------------------------------------------------------------------
def test_a_process_task_that_uses_a_thread_pool() -> None:
    with anypool.Pool("process", workers=2) as pool:
        out = list(pool.map(fk.thread_pool_inside, [1, 3], timeout=SHORT_TIMEOUT))
    assert out == [[1], [3, 2, 1]]


@pytest.mark.parametrize("inner", ["serial", "thread", "process"])
def test_anypool_map_called_from_a_thread_task(inner: str) -> None:
    def task(n: int) -> list[int]:
        return anypool.map(abs, range(-n, 0), backend=inner, workers=2)

    with anypool.Pool("thread", workers=2) as pool:
        out = list(pool.map(task, [2, 4], timeout=SHORT_TIMEOUT))
    assert out == [[2, 1], [4, 3, 2, 1]]


@pytest.mark.parametrize("inner", ["thread", "process", "asyncio"])
def test_a_pool_created_inside_an_asyncio_task(inner: str) -> None:
    fn = adapt(inner, abs)

    async def task() -> list[int]:
        async with anypool.Pool(inner, workers=2) as pool:
            return await pool.amap(fn, [-1, -2, -3])

    async def main() -> list[list[int]]:
        return list(await asyncio.gather(asyncio.create_task(task()), task()))

    assert asyncio.run(main()) == [[1, 2, 3], [1, 2, 3]]


# -- a bug inside the dispatcher breaks the pool loudly --------------------------------------
def test_a_failing_dispatcher_breaks_the_pool_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from anypool._backends._processes import ProcessBackend

    monkeypatch.setattr(ProcessBackend, "_receive_ready", fk.dispatcher_bug)
    pool = anypool.Pool("process", workers=1)
    try:
        fut = pool.submit(fk.identity, 1)
        err = fut.exception(timeout=SHORT_TIMEOUT)
        assert isinstance(err, anypool.AnypoolInternalError)
        assert "injected bug" in str(err.__cause__)
        with pytest.raises(anypool.BrokenPoolError):
            pool.submit(fk.identity, 2)
    finally:
        pool.shutdown()
        pool.shutdown()


RETRY_SCRIPT = """
import anypool

class Flaky(ConnectionError):
    pass

seen = set()

def task(i):
    if i not in seen:
        seen.add(i)
        raise Flaky(i)
    return i

if __name__ == "__main__":
    with anypool.Pool("process", workers=1, retries=1, retry_on=Flaky) as pool:
        print([(r.ok, r.value) for r in pool.imap(task, range(3), chunksize=1, errors="collect")])
"""


def test_retry_on_a_class_defined_in_a_scripts_main(tmp_path: Path) -> None:
    # the task (from __main__) travels by value; so must retry_on, or the class the task
    # raises is not the class retry_on names and nothing is retried
    import subprocess
    import sys

    script = tmp_path / "prog.py"
    script.write_text(RETRY_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=SHORT_TIMEOUT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[(True, 0), (True, 1), (True, 2)]"
