"""The README's examples in a real Jupyter kernel (issue 11, items 1 and 2).

A kernel (``ipykernel``, started by ``jupyter_client``) runs each cell inside IPython's event
loop, with functions and lambdas defined in ``__main__``: the place many users first try a
library. The cells here are the README's examples; a last test interrupts the kernel in the
middle of a long process map, as the notebook's stop button does.
"""

from __future__ import annotations

import queue
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

pytest.importorskip("ipykernel")
jupyter_manager = pytest.importorskip("jupyter_client.manager")

#: the issue's bound for the stop button: KeyboardInterrupt reaches the cell this soon
INTERRUPT_SECONDS = 2.0
#: a cell that has not finished after this long is taken for a hang
CELL_TIMEOUT = 60.0


class Kernel:
    """A started kernel and a client; ``run`` executes one cell and gathers its output."""

    def __init__(self, km: Any, kc: Any) -> None:
        self.km = km
        self.kc = kc

    @property
    def pid(self) -> int:
        return int(self.km.provisioner.process.pid)

    def run(self, code: str, timeout: float = CELL_TIMEOUT) -> tuple[str, str]:
        """Run ``code`` as a cell; return its stdout and stderr. A cell error fails the test."""
        out: list[str] = []
        err: list[str] = []
        errors: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                (out if content["name"] == "stdout" else err).append(content["text"])
            elif kind in ("execute_result", "display_data"):
                out.append(content["data"].get("text/plain", "") + "\n")
            elif kind == "error":
                errors.append(f"{content['ename']}: {content['evalue']}\n" + _tb(content))

        reply = self.kc.execute_interactive(
            textwrap.dedent(code), timeout=timeout, output_hook=hook, allow_stdin=False
        )
        assert reply["content"]["status"] == "ok", "the cell failed:\n" + "".join(errors)
        return "".join(out), "".join(err)


def _tb(content: dict[str, Any]) -> str:
    return "\n".join(content.get("traceback", []))


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    km, kc = jupyter_manager.start_new_kernel(
        kernel_name="python3", startup_timeout=CELL_TIMEOUT, cwd=str(tmp_path)
    )
    k = Kernel(km, kc)
    pid = k.pid
    try:
        yield k
    finally:
        procs = _descendants(pid)
        kc.stop_channels()
        km.shutdown_kernel(now=False)
        # the kernel's own helpers (multiprocessing's fork server) exit with it: wait for them
        _, alive = psutil.wait_procs(procs, timeout=CELL_TIMEOUT)
        for p in alive:
            p.kill()
        assert not alive, f"processes left behind by the kernel: {alive}"


def test_readme_examples_run_as_cells(kernel: Kernel) -> None:
    kernel.run("import asyncio\nimport anypool")

    # process maps of a function and of a lambda defined in cells (cloudpickled from __main__)
    out, _ = kernel.run("""
        def square(x):
            return x * x

        print(anypool.map(square, range(10), backend="process"))
    """)
    assert out == f"{[x * x for x in range(10)]}\n"
    out, _ = kernel.run("""
        squares = anypool.map(lambda x: x * x, range(10_000), backend="process")
        print(len(squares), sum(squares))
    """)
    assert out == f"10000 {sum(x * x for x in range(10_000))}\n"

    # a coroutine function: sync map (the cell runs inside IPython's running event loop)
    out, _ = kernel.run("""
        async def fetch(n):
            await asyncio.sleep(0.01)
            return n

        print(anypool.map(fetch, range(50)))
        print(sorted(anypool.imap_unordered(fetch, range(5))))
        with anypool.Pool() as pool:
            print(list(pool.map(fetch, range(5))))
        with anypool.Pool("asyncio") as pool:
            print(pool.submit(fetch, 7).result())
    """)
    assert out.splitlines() == [str(list(range(50))), "[0, 1, 2, 3, 4]", "[0, 1, 2, 3, 4]", "7"]

    # ... and with top-level await (the coroutines then run on the kernel's own loop)
    out, _ = kernel.run("""
        results = await anypool.amap(fetch, range(100), workers=100)
        print(results == list(range(100)))
    """)
    assert out == "True\n"

    # progress=True: a bar in the notebook (or tqdm's text bar without ipywidgets)
    out, err = kernel.run("""
        print(sum(anypool.map(square, range(100), backend="thread", progress=True)))
    """)
    assert out.strip().endswith(str(sum(x * x for x in range(100))))
    assert "100/100" in out + err

    # the README's Pipeline, every function defined in the cell
    out, _ = kernel.run("""
        from anypool import Pipeline

        def crunch(n):
            return sum(i * i for i in range(n * 1000))

        def save(x):
            return f"saved {x}"

        pipe = (Pipeline(range(100))
                .map(fetch, backend="asyncio", workers=50)
                .map(crunch, backend="process")
                .filter(lambda x: x % 3 == 0)
                .map(save, backend="thread", workers=4))
        lines = list(pipe)
        print(len(lines), lines[:2])
    """)
    crunched = [sum(i * i for i in range(n * 1000)) for n in range(100)]
    expected = [f"saved {x}" for x in crunched if x % 3 == 0]
    assert out == f"{len(expected)} {expected[:2]}\n"


def test_interrupt_during_a_long_process_map(kernel: Kernel) -> None:
    kernel.run("import anypool, threading, time")
    # start the fork server and its helpers before counting the kernel's children
    kernel.run("anypool.map(abs, [1], backend='process')")
    helpers = {p.pid for p in _descendants(kernel.pid)}

    # the cell prints a marker once the tasks are running in the workers, then waits
    msg_id = kernel.kc.execute(
        textwrap.dedent("""
        def slow(started):
            started.set()
            time.sleep(600)

        with anypool.Pool("process", workers=2) as pool:
            started = pool.Event()

            def announce():
                started.wait()
                print("MAP-STARTED", flush=True)

            threading.Thread(target=announce, daemon=True).start()
            anypool_result = list(pool.map(slow, [started] * 8))
        """)
    )
    deadline = time.monotonic() + CELL_TIMEOUT
    while True:
        msg = _next_iopub(kernel, deadline)
        if msg["msg_type"] == "stream" and "MAP-STARTED" in msg["content"]["text"]:
            break
    workers = {p.pid for p in _descendants(kernel.pid)} - helpers
    assert workers, "the map's worker processes were not found"

    t0 = time.monotonic()
    kernel.km.interrupt_kernel()
    error: dict[str, Any] | None = None
    while True:
        msg = _next_iopub(kernel, deadline)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "error":
            error = msg["content"]
            elapsed = time.monotonic() - t0
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    assert error is not None, "the interrupted cell reported no error"
    assert error["ename"] == "KeyboardInterrupt", _tb(error)
    assert elapsed < INTERRUPT_SECONDS, f"KeyboardInterrupt took {elapsed:.2f} s"

    # every worker of the map was ended and joined before the error reached the cell
    left = [p for p in _descendants(kernel.pid) if p.pid not in helpers and _running(p)]
    assert not left, f"processes left after the interrupt: {left}"
    assert not any(psutil.pid_exists(pid) and _running(psutil.Process(pid)) for pid in workers)

    # the kernel is still usable, process pools included
    out, _ = kernel.run("print(anypool.map(lambda x: x + 1, range(3), backend='process'))")
    assert out == "[1, 2, 3]\n"


def _running(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _next_iopub(kernel: Kernel, deadline: float) -> dict[str, Any]:
    left = deadline - time.monotonic()
    assert left > 0, "the kernel went quiet: no expected message before the deadline"
    try:
        msg: dict[str, Any] = kernel.kc.get_iopub_msg(timeout=left)
    except queue.Empty:
        raise AssertionError("the kernel went quiet: no expected message") from None
    return msg
