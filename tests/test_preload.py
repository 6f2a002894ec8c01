"""The fork server preloads what the program imported: workers do not import it again."""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import anypool
from anypool._backends import _preload
from conftest import FORKED_SERVER_ONLY

pytestmark = pytest.mark.skipif(
    "forkserver" not in __import__("multiprocessing").get_all_start_methods(),
    reason="the fork server is Linux/macOS only",
)


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A module that counts its imports in a file (one line per process that imports it).

    It is found through PYTHONPATH, as an installed package is through site-packages: the
    fork server of Python 3.11 and 3.12 does not take over the parent's run-time sys.path.
    """
    name = f"anypool_probe_{os.getpid()}_{threading.get_ident()}"
    log = tmp_path / "imports.log"
    (tmp_path / f"{name}.py").write_text(
        "import os\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(f'{os.getpid()}\\n')\n"
        "def pid(_x):\n"
        "    return os.getpid()\n"
    )
    sys.path.insert(0, str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path[1:]]))
    try:
        yield name, log
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def _imports(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def test_one_shot_maps_do_not_import_again(probe: tuple[str, Path]) -> None:
    name, log = probe
    mod = importlib.import_module(name)  # the parent imports it: one line
    assert _imports(log) == [os.getpid()]
    pids: set[int] = set()
    for _ in range(3):  # three one-shot maps, each with new workers
        pids |= set(anypool.map(mod.pid, range(4), backend="process", workers=2, chunksize=1))
    assert len(pids) >= 2, "the maps did not run on worker processes"
    imported_in = set(_imports(log)) - {os.getpid()}
    # the fork server imported it once (none: a fork of this program has it already); no
    # worker executed the module again
    assert len(imported_in) <= 1, f"imported in {len(imported_in)} processes: {imported_in}"
    assert not imported_in & pids, "a worker imported the module itself"


def _hold(path: str) -> int:
    import time

    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return 7


def test_the_server_is_never_replaced_under_running_workers(
    probe: tuple[str, Path], tmp_path: Path
) -> None:
    name, _log = probe
    release = tmp_path / "release"
    with anypool.Pool("process", 1) as busy:
        held = busy.submit(_hold, str(release))
        busy_pids = busy.broadcast(os.getpid)  # its worker has started (and then runs _hold)
        assert busy_pids
        mod = importlib.import_module(name)  # something new for the server to preload
        before = _preload._stats["starts"]
        # a second pool starts while the first one's worker runs: the server stays
        out = anypool.map(mod.pid, range(2), backend="process", workers=1)
        assert len(out) == 2
        assert _preload._stats["starts"] == before
        release.touch()
        assert held.result(timeout=60) == 7  # not a WorkerCrashed: its server was left alone


def test_preloading_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYPOOL_PRELOAD", "0")
    assert not _preload.enabled()
    monkeypatch.setenv("ANYPOOL_PRELOAD", "1")
    assert _preload.enabled()


def test_what_is_preloaded() -> None:
    import json  # stdlib: never

    assert json.__name__ not in _preload.wanted()
    assert not any(m.split(".")[0] in _preload.NEVER for m in _preload.wanted())
    assert not any(m.count(".") > 1 for m in _preload.wanted())


# -- the fork server made by forking a single-threaded program ------------------------------
def run_program(script: Path, *args: str) -> Any:
    """Run ``script`` in a fresh interpreter (preloading as by default); its last line, JSON."""
    import json
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "ANYPOOL_PRELOAD"}
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


FORKED = r"""
import json, os, socket, sys, threading
import {probe} as probe
import anypool
from anypool._backends import _preload


def main(scenario):
    if scenario == "thread":
        stop = threading.Event()
        threading.Thread(target=stop.wait, daemon=True).start()
    shm = None
    if scenario in ("shm", "small shm"):  # a shared array; a page, as a semaphore maps
        from multiprocessing import shared_memory
        size = 4 * _preload.SHM_ALLOWANCE if scenario == "shm" else 4096
        shm = shared_memory.SharedMemory(create=True, size=size)
    a, b = socket.socketpair()
    pids = set(anypool.map(probe.pid, range(4), backend="process", workers=2, chunksize=1))
    a.close()  # the program lets go of its end: the other end must see EOF at once
    b.settimeout(20)
    eof = b.recv(1) == b""
    if scenario == "thread":
        stop.set()
    if shm is not None:
        shm.close()
        shm.unlink()
    import multiprocessing.forkserver as fs
    print(json.dumps({
        "forked": _preload._stats["forked"],
        "server": fs._forkserver._forkserver_pid,
        "workers": sorted(pids),
        "eof": eof,
    }))


if __name__ == "__main__":
    main(sys.argv[1])
"""


@FORKED_SERVER_ONLY
@pytest.mark.parametrize("scenario", ["alone", "thread", "shm", "small shm"])
def test_a_single_threaded_program_is_forked_into_the_server(
    probe: tuple[str, Path], tmp_path: Path, scenario: str
) -> None:

    import psutil

    name, log = probe
    script = tmp_path / "forked.py"
    script.write_text(FORKED.replace("{probe}", name))
    out = run_program(script, scenario)
    assert out["workers"]
    assert out["server"] not in out["workers"]
    assert out["eof"], "the fork server kept the program's socket open"
    importers = _imports(log)
    if scenario in ("alone", "small shm"):
        assert out["forked"] == 1
        # the server is a fork of the program: nobody but the program imported the module
        assert len(importers) == 1
        assert importers[0] not in out["workers"]
    else:
        # a running thread or a shared array mapped: the server is started and imports
        assert out["forked"] == 0
        assert not set(importers) & set(out["workers"]), "a worker imported the module itself"
    # the server does not outlive the program
    try:
        psutil.Process(out["server"]).wait(timeout=20)
    except psutil.NoSuchProcess:
        pass
    assert not psutil.pid_exists(out["server"]) or (
        psutil.Process(out["server"]).status() == psutil.STATUS_ZOMBIE
    )


@pytest.mark.skipif(sys.platform != "linux", reason="read from /proc/self/maps")
def test_openblas_libraries_are_the_ones_threadpoolctl_finds() -> None:
    """fork_safe() asks OpenBLAS itself (fast); threadpoolctl must find the same libraries,
    with the same thread counts."""
    pytest.importorskip("numpy")
    from threadpoolctl import threadpool_info

    from anypool._core._lifecycle import openblas_libraries

    expected = sorted(
        (os.path.realpath(d["filepath"]), int(d["num_threads"]))
        for d in threadpool_info()
        if d.get("internal_api") == "openblas"
    )
    found = sorted((os.path.realpath(lib.path), lib.num_threads) for lib in openblas_libraries())
    assert found == expected


FIRST_TASK = r"""
import json, os, sys, threading
import anypool


def where(_):
    return os.getpid(), os.getppid()


if __name__ == "__main__":
    if sys.argv[1] == "thread":
        stop = threading.Event()
        threading.Thread(target=stop.wait, daemon=True).start()
    out = {"program": os.getpid()}
    with anypool.Pool("process", 2) as pool:
        out["first"] = sorted(set(map(tuple, pool.map(where, range(8), chunksize=1))))
        out["workers"] = sorted(pool.broadcast(os.getpid).values())
    with anypool.Pool("process", 2) as pool:  # the first pool's workers, kept warm
        out["second"] = sorted(set(map(tuple, pool.map(where, range(8), chunksize=1))))
    print(json.dumps(out))
"""


@FORKED_SERVER_ONLY
@pytest.mark.parametrize("scenario", ["alone", "thread"])
def test_a_pools_first_task_forks_its_first_workers_from_the_program(
    tmp_path: Path, scenario: str
) -> None:
    """In a single-threaded program the first task forks the first workers straight from
    the program (no round trip to the fork server); with a thread running they come from
    the server; a later pool adopts the warm workers instead of forking."""
    script = tmp_path / "first.py"
    script.write_text(FIRST_TASK)
    out = run_program(script, scenario)
    parents = {parent for _, parent in out["first"]}
    if scenario == "alone":
        assert out["program"] in parents, "no worker was forked from the program"
    else:
        assert out["program"] not in parents, "forked from a program running a thread"
    assert {pid for pid, _ in out["second"]} <= set(out["workers"])


CENSUS = r"""
import ctypes, json, os, sys, threading, time
import numpy as np
from anypool._backends import _preload
from anypool._core import _lifecycle


def settled():
    # OpenBLAS's threads spin for ~50 ms after each call, then wait: until none runs
    me = str(threading.get_native_id())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        states = []
        for tid in os.listdir("/proc/self/task"):
            if tid != me:
                with open(f"/proc/self/task/{tid}/syscall") as f:
                    states.append(f.read())
        if not any(state.startswith("running") for state in states):
            return True
        time.sleep(0.01)
    return False


if __name__ == "__main__":
    if sys.argv[1] == "untold":  # as numpy 2.5's copy: it does not say whether its pool runs
        _lifecycle.OpenBLAS._state = lambda self: None
    libs = _lifecycle.openblas_libraries()
    for lib in libs:
        lib.set_num_threads(2)  # a pool thread beside this one, on any machine
    a = np.ones((200, 200))
    a @ a
    out = {"libs": len(libs), "settled": settled()}
    paths = [lib.path for lib in libs]
    out["pool"] = _lifecycle.thread_census(paths)
    out["pool_safe"] = _preload.fork_safe()
    pid = os.fork()  # parks OpenBLAS's pool: its thread stops
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    libc = ctypes.CDLL(None)
    handle = ctypes.c_ulong()
    pause = ctypes.cast(libc.pause, ctypes.c_void_p)  # someone else's native thread, waiting
    out["started"] = libc.pthread_create(ctypes.byref(handle), None, pause, None)
    out["settled_native"] = settled()
    out["native"] = _lifecycle.thread_census(paths)
    out["native_safe"] = _preload.fork_safe()
    print(json.dumps(out))
"""


@FORKED_SERVER_ONLY
@pytest.mark.parametrize("build", ["told", "untold"])
def test_a_native_thread_beside_a_parked_openblas_is_not_taken_for_its_own(
    tmp_path: Path, build: str
) -> None:
    """OpenBLAS's own waiting thread is told from another native thread, also where the
    build does not say whether its pool runs (numpy 2.5's: "untold", the old rule let one
    other thread pass per OpenBLAS thread there): its stack holds OpenBLAS's addresses."""
    pytest.importorskip("numpy")
    script = tmp_path / "census.py"
    script.write_text(CENSUS)
    out = run_program(script, build)
    if not out["libs"]:
        pytest.skip("numpy here does not use OpenBLAS")
    assert out["settled"], "OpenBLAS's thread still running after 20 s"
    assert out["settled_native"], "a thread still running after 20 s"
    assert out["pool"] == [1, 0, 0]  # OpenBLAS's thread, waiting in its loop
    assert out["pool_safe"] is None
    assert out["started"] == 0
    assert out["native"] == [0, 1, 0]  # the pool parked; the other thread waits in pause()
    assert out["native_safe"] == "native threads other than OpenBLAS's are running"


LEAVING = r"""
import ctypes, json, signal, sys
import numpy  # noqa: F401 - OpenBLAS, as in the programs this is for
from anypool._backends import _preload

libc = ctypes.CDLL(None)
pause = ctypes.cast(libc.pause, ctypes.c_void_p)


def native_thread():
    handle = ctypes.c_ulong()
    assert libc.pthread_create(ctypes.byref(handle), None, pause, None) == 0
    return handle


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, lambda *a: None)  # ends pause() in the thread it hits
    out = {}
    looks = []
    leaving = native_thread()

    def leaves():  # as a thread Python has joined, on its way out of the system's list
        looks.append("leaving")
        if len(looks) == 1:
            libc.pthread_kill(leaving, signal.SIGUSR1)
            libc.pthread_join(leaving, None)

    _preload._pause_to_settle = leaves
    out["leaving"] = _preload.fork_safe()
    out["leaving_looks"] = len(looks)
    looks.clear()
    staying = native_thread()  # one that stays: every look finds it
    _preload._pause_to_settle = lambda: looks.append("staying")
    out["staying"] = _preload.fork_safe()
    out["staying_looks"] = len(looks)
    out["tries"] = _preload.SETTLE_TRIES
    print(json.dumps(out))
"""


@FORKED_SERVER_ONLY
def test_a_thread_on_its_way_out_does_not_rule_the_fork_out(tmp_path: Path) -> None:
    """A closed pool's dispatcher thread, joined by Python, can still be in the system's list
    of threads for a moment: the check looks again before it refuses the fork. A thread that
    stays is refused after those few looks."""
    pytest.importorskip("numpy")
    script = tmp_path / "leaving.py"
    script.write_text(LEAVING)
    out = run_program(script, "x")
    assert out["leaving"] is None
    assert out["leaving_looks"] == 1  # it was seen once, then gone at the next look
    assert out["staying"] == "native threads other than OpenBLAS's are running"
    assert out["staying_looks"] == out["tries"]


WATCHDOG = r"""
import faulthandler, json, os, sys
import numpy  # OpenBLAS: its pool parks at the first fork
import anypool
from anypool._backends import _preload
from anypool._core._lifecycle import openblas_libraries


def mark(folder):
    with open(os.path.join(folder, f"stop-{os.getpid()}"), "w"):
        pass


if __name__ == "__main__":
    import functools
    pid = os.fork()  # parks OpenBLAS's pool, as any earlier fork of the program does
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    faulthandler.dump_traceback_later(300)  # pytest's faulthandler_timeout arms one per test
    fin = functools.partial(mark, sys.argv[1])
    with anypool.Pool("process", 2, finalizer=fin) as pool:
        pids = set(pool.broadcast(os.getpid).values())
    faulthandler.cancel_dump_traceback_later()
    print(json.dumps({
        "forked": _preload._stats["forked"],
        "told": all(lib.storable() for lib in openblas_libraries()),
        "workers": sorted(pids),
        "stopped": sorted(int(p.split("-")[1]) for p in os.listdir(sys.argv[1])),
    }))
"""


@FORKED_SERVER_ONLY
def test_a_faulthandler_watchdog_is_not_taken_for_openblas(tmp_path: Path) -> None:
    """faulthandler's watchdog thread (armed by pytest's faulthandler_timeout) beside a parked
    OpenBLAS: the program is not forked where OpenBLAS says its pool is parked, and workers
    forked anyway (a build that does not say) still run their finalizers: the worker's
    finalizer timeout does not go through the watchdog state the fork copied."""

    pytest.importorskip("numpy")
    script = tmp_path / "watchdog.py"
    script.write_text(WATCHDOG)
    marks = tmp_path / "marks"
    marks.mkdir()
    out = run_program(script, str(marks))
    assert out["stopped"] == out["workers"], "a worker's finalizer did not run"
    if out["told"]:
        assert out["forked"] == 0, "forked while faulthandler's watchdog thread ran"
