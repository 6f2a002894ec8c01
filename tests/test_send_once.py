"""Process backend: a map's function (and what it binds) crosses to each worker once."""

from __future__ import annotations

import functools
import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

import anypool
from anypool._core._lifecycle import THREAD_ENV_VARS
from conftest import FORKED_SERVER_ONLY


class CountsUnpickling:
    """Appends a line to a file each time it is unpickled (in whichever process)."""

    def __init__(self, path: str, payload: bytes = b"") -> None:
        self.path = path
        self.payload = payload

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unpickled, (self.path, self.payload))


def _unpickled(path: str, payload: bytes) -> CountsUnpickling:
    with open(path, "a") as f:
        f.write("x\n")
    return CountsUnpickling(path, payload)


def uses(probe: CountsUnpickling, x: int) -> int:
    return x + len(probe.payload)


def unpickled_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_bound_function_is_sent_to_each_worker_once(tmp_path: Path) -> None:
    counter = tmp_path / "unpickled"
    fn = functools.partial(uses, CountsUnpickling(str(counter), b"y" * 1000))
    with anypool.Pool("process", workers=2) as pool:
        out = list(pool.map(fn, range(40), chunksize=1))
    assert out == [x + 1000 for x in range(40)]
    # 40 tasks, 2 workers: the function travelled at most once to each (it was 40 before)
    assert 1 <= unpickled_count(counter) <= 2


def bytes_read_by_this_process(_: object = None) -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/<pid>/io")
def test_big_bound_arguments_do_not_travel_with_every_task() -> None:
    big = b"z" * (4 * 2**20)
    fn = functools.partial(size_of, big)
    with anypool.Pool("process", workers=1) as pool:
        before = pool.submit(bytes_read_by_this_process).result(timeout=30)
        assert list(pool.map(fn, range(20), chunksize=1)) == [len(big) + i for i in range(20)]
        read = pool.submit(bytes_read_by_this_process).result(timeout=30) - before
    # the worker read the 4 MB function once (20 tasks would have been 80 MB)
    assert len(big) <= read < 3 * len(big)


def test_a_second_map_with_another_function_still_runs_the_right_one(tmp_path: Path) -> None:
    a = functools.partial(uses, CountsUnpickling(str(tmp_path / "a"), b"a"))
    b = functools.partial(uses, CountsUnpickling(str(tmp_path / "b"), b"bb"))
    with anypool.Pool("process", workers=2) as pool:
        assert list(pool.map(a, range(10), chunksize=1)) == [x + 1 for x in range(10)]
        assert list(pool.map(b, range(10), chunksize=1)) == [x + 2 for x in range(10)]
        futs = [pool.submit(a if i % 2 else b, i) for i in range(10)]  # interleaved
        assert [f.result() for f in futs] == [i + (1 if i % 2 else 2) for i in range(10)]


class FailsToUnpickle:
    def __reduce__(self) -> tuple[Any, ...]:
        return (_fail, ())


def _fail() -> None:
    raise ValueError("cannot be rebuilt here")


def needs(obj: object, x: int) -> int:
    return x


def test_a_function_that_cannot_be_unpickled_fails_each_task_with_the_reason() -> None:
    fn = functools.partial(needs, FailsToUnpickle())
    with anypool.Pool("process", workers=1) as pool:
        futs = [pool.submit(fn, i) for i in range(3)]
        for f in futs:
            with pytest.raises(ValueError, match="cannot be rebuilt here"):
                f.result(timeout=30)
        assert pool.submit(abs, -2).result(timeout=30) == 2  # the worker is still usable


def size_of(data: bytes, x: int) -> int:
    return len(data) + x


def test_a_big_argument_repeated_in_every_chunk_names_pool_share() -> None:
    big = bytes(12 * 2**20)
    with (
        anypool.Pool("process", workers=2) as pool,
        pytest.warns(UserWarning, match=r"pool\.share"),
    ):
        out = list(pool.map(size_of, [big] * 4, range(4), chunksize=1))
    assert out == [len(big) + i for i in range(4)]


# -- pool.share(mode=...) and the workers it starts ------------------------------------------
def _write_and_read(arr: Any, value: float) -> float:
    """Write into the shared array, then read it back (the task's own view)."""
    arr[0] = value
    return float(arr[0])


def _first(arr: Any) -> float:
    return float(arr[0])


class TestShareModes:
    def test_read_only_by_default(self) -> None:
        np = pytest.importorskip("numpy")
        with anypool.Pool("process", 1) as pool:
            shared = pool.share(np.zeros(4))
            with pytest.raises(ValueError, match="read-only"):
                pool.submit(_write_and_read, shared, 1.0).result(timeout=30)

    def test_copy_on_write_keeps_each_workers_writes_its_own(self) -> None:
        np = pytest.importorskip("numpy")
        data = np.zeros(1 << 20)  # 8 MB: mapped, not pickled
        with anypool.Pool("process", 2) as pool:
            shared = pool.share(data, mode="c")
            wrote = pool.broadcast(lambda: _write_and_read(shared, 7.0))
            assert set(wrote.values()) == {7.0}
            # the write stays in the worker that made it (as after fork) ...
            assert set(pool.broadcast(lambda: _first(shared)).values()) == {7.0}
        # ... and never reaches this process's array or the shared memory
        assert data[0] == 0.0
        with anypool.Pool("process", 2) as pool:
            again = pool.share(data, mode="c")
            assert set(pool.map(_first, [again] * 4, chunksize=1)) == {0.0}

    def test_copy_on_write_bytes_are_a_writeable_view(self) -> None:
        with anypool.Pool("process", 1) as pool:
            shared = pool.share(b"abc", mode="c")
            got = pool.submit(lambda b: (b.readonly, bytes(b)), shared).result(timeout=30)
        assert got == (False, b"abc")

    @pytest.mark.parametrize("backend", ["thread", "serial"])
    def test_in_process_pools_give_the_object_itself(self, backend: str) -> None:
        obj = bytearray(b"xyz")
        with anypool.Pool(backend, 1) as pool:
            assert pool.share(obj, mode="c") is obj

    @pytest.mark.parametrize("mode", ["w", "r+", "", None, "R"])
    def test_an_unknown_mode_is_refused_with_the_choices(self, mode: Any) -> None:
        with (
            anypool.Pool("thread", 1) as pool,
            pytest.raises(ValueError, match=r"mode must be 'r' .* or 'c'"),
        ):
            pool.share(b"x", mode=mode)

    def test_auto_passes_the_mode_to_the_process_handle(self) -> None:
        np = pytest.importorskip("numpy")
        with anypool.Pool("auto", 2) as pool:
            shared = pool.share(np.zeros(8), mode="c")
            got = list(pool.map(_write_and_read, [shared] * 4, [3.0] * 4))
        assert got == [3.0] * 4


def _say_started(address: str) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(address)
        s.sendall(b"%d" % os.getpid())


def test_share_starts_the_workers_before_any_task(tmp_path: Path) -> None:
    """pool.share() on a process pool with no workers starts them (they start during the
    copy): both initializers run although no task was submitted."""
    address = str(tmp_path / "started")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(address)
        listener.listen(2)
        listener.settimeout(30)  # a worker that never starts fails the test, not hangs it
        with anypool.Pool("process", 2, initializer=_say_started, initargs=(address,)) as pool:
            pool.share(b"x" * 1000)
            pids = set()
            for _ in range(2):
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(30)
                    pids.add(conn.recv(32))
    assert len(pids) == 2


# -- a large array shared before the workers start: forked workers start with it, no copy -----
def _read(arr: Any, i: int) -> float:
    return float(arr[i])


def _writeable(arr: Any) -> bool:
    return bool(arr.flags.writeable)


BIG = (1 << 21) + 1  # 16 MB of float64: above INHERIT_ABOVE

INHERIT_PROGRAM = r"""
import json, pickle, sys
import numpy as np
import anypool
from anypool._backends import _preload


def read(arr, i):
    return float(arr[i])


def write_then_read(arr, i):
    arr[i] = -1.0
    return float(arr[i])


def writeable(arr):
    return bool(arr.flags.writeable)


def where(barrier, fd):
    # (this worker's parent, whether the program's socket fd is still a socket here, how
    # many times this process has listed its libraries)
    import os, stat
    from anypool._core import _lifecycle

    barrier.wait(timeout=30)  # every worker answers once
    return os.getppid(), stat.S_ISSOCK(os.fstat(fd).st_mode), _lifecycle.listings


def count_listings(_lifecycle):
    _lifecycle.listings = 0
    for name in ("loaded_libraries", "mapped_files"):
        def counted(real=getattr(_lifecycle, name)):
            _lifecycle.listings += 1
            return real()

        setattr(_lifecycle, name, counted)


if __name__ == "__main__":
    import os, socket, threading
    from anypool._core import _lifecycle
    if sys.argv[1] == "server":  # as where a worker's cap would wake OpenBLAS (numpy 2.5)
        _lifecycle.OpenBLAS.storable = lambda self: False
    count_listings(_lifecycle)
    data = np.arange(BIG, dtype=np.float64)
    out = {"program": os.getpid()}
    out["prefork"] = not _lifecycle.cap_wakes_pools(1, _lifecycle.mapped_files())
    out["above_cap"] = any(lib.num_threads > 1 for lib in _lifecycle.openblas_libraries())
    import multiprocessing.forkserver as fs
    mine, theirs = socket.socketpair()  # a connection of the program's: no worker keeps it
    with anypool.Pool("process", 2) as pool:
        out["first_server"] = fs._forkserver._forkserver_pid
        c = pool.share(data, mode="c")
        out["second_server"] = fs._forkserver._forkserver_pid
        out["listings"] = _lifecycle.listings
        out["c_values"] = list(pool.map(read, [c] * 4, [0, 1, 2, BIG - 1], chunksize=1))
        out["c_writes"] = list(pool.map(write_then_read, [c] * 2, [5, 6], chunksize=1))
        out["c_copied"] = c.copied
        out["forked"] = _preload._stats["forked"]
        barrier = pool.Barrier(2)  # after share(): semaphores mapped before rule forks out
        out["workers"] = sorted(pool.map(where, [barrier] * 2, [theirs.fileno()] * 2, chunksize=1))
        theirs.close()
        mine.settimeout(30)
        out["eof"] = mine.recv(1) == b""  # no worker holds the other end open
    out["threads_after"] = threading.active_count()  # nothing watches the kept workers
    with anypool.Pool("process", 2) as pool:
        r = pool.share(data)  # single-threaded again: forked again where the first one was
        out["r_writeable"] = list(pool.map(writeable, [r] * 2, chunksize=1))
        out["r_copied"] = r.copied
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)  # a thread: no fork, the kept workers come
    other.start()
    try:
        with anypool.Pool("process", 2) as pool:
            t = pool.share(data)
            out["t_writeable"] = list(pool.map(writeable, [t] * 2, chunksize=1))
            out["t_copied"] = t.copied
    finally:
        stop.set()
        other.join()
    out["parent_untouched"] = float(data[5]) == 5.0 and float(data[6]) == 6.0
    print(json.dumps(out))
"""


@FORKED_SERVER_ONLY
@pytest.mark.parametrize("way", ["program", "server"])
def test_workers_forked_after_share_start_with_the_array(tmp_path: Path, way: str) -> None:
    """In a fresh single-threaded program: share() forks the workers from the program (or,
    where a worker's BLAS cap would start OpenBLAS's thread pool, forks the fork server again
    and the workers come from it), and they start with the array (no shared-memory copy is
    made) and without the program's connections. Nothing is left running in the program
    once the pool closes, so a second pool forks again; a pool that cannot (a thread runs)
    adopts the kept workers and they get a copy."""
    pytest.importorskip("numpy")
    script = tmp_path / "inherit.py"
    script.write_text(INHERIT_PROGRAM.replace("BIG", str(BIG)))
    # (no OMP_NUM_THREADS & co. left by an earlier test: OpenBLAS gets a thread per CPU)
    skip = {"ANYPOOL_PRELOAD", *THREAD_ENV_VARS}
    env = {k: v for k, v in os.environ.items() if k not in skip}
    proc = subprocess.run(
        [sys.executable, str(script), way], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["c_values"] == [0.0, 1.0, 2.0, float(BIG - 1)]
    assert out["c_writes"] == [-1.0, -1.0]  # copy-on-write: writeable in the worker
    assert out["c_copied"] is False, "the array was copied into shared memory"
    if way == "server" and out["above_cap"]:
        assert not out["prefork"], "forked from the program though the cap wakes OpenBLAS"
    if out["prefork"]:  # share() forks the workers, not the server again
        assert out["forked"] == 1
        assert out["first_server"] == out["second_server"]
        parent = out["program"]
    else:
        assert out["forked"] == 2  # at Pool(), and again at share()
        assert out["first_server"] != out["second_server"]
        parent = out["second_server"]
    # forks of the program or of its fork, which let go of its connections
    assert [w[:2] for w in out["workers"]] == [[parent, False]] * 2
    if out["prefork"]:  # they cap BLAS with what the program found before the forks
        assert [w[2] for w in out["workers"]] == [out["listings"]] * 2
    assert out["eof"] is True
    for pid in {out["first_server"], out["second_server"]}:  # none outlives the program
        try:
            psutil.Process(pid).wait(timeout=20)
        except psutil.NoSuchProcess:
            pass
    assert out["threads_after"] == 1
    assert out["r_writeable"] == [False, False]  # read-only
    # forked from the program again (a fork server with live workers is not forked again)
    assert out["r_copied"] is not out["prefork"]
    assert out["t_writeable"] == [False, False]
    assert out["t_copied"] is True  # copied for the kept workers
    assert out["parent_untouched"] is True


class TestInheritedShares:
    @pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (3.12+)
    def test_fork_workers_started_after_share_get_no_copy(self) -> None:
        np = pytest.importorskip("numpy")
        data = np.arange(BIG, dtype=np.float64)
        with anypool.Pool("process", 2, start_method="fork") as pool:
            shared = pool.share(data)
            assert list(pool.map(_read, [shared] * 3, [0, 7, BIG - 1])) == [0, 7, BIG - 1]
            assert list(pool.map(_writeable, [shared] * 2)) == [False, False]
            assert shared.copied is False  # type: ignore[attr-defined]

    @pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (3.12+)
    def test_workers_started_before_share_get_the_copy(self) -> None:
        np = pytest.importorskip("numpy")
        data = np.arange(BIG, dtype=np.float64)
        with anypool.Pool("process", 1, start_method="fork") as pool:
            assert list(pool.map(abs, [-1])) == [1]  # the worker starts now, before share
            shared = pool.share(data, mode="c")
            assert shared.copied is False  # type: ignore[attr-defined]
            assert pool.submit(_read, shared, 9).result(timeout=30) == 9.0
            assert shared.copied is True  # type: ignore[attr-defined]

    def test_spawn_workers_get_the_copy_at_once(self) -> None:
        np = pytest.importorskip("numpy")
        with anypool.Pool("process", 1, start_method="spawn") as pool:
            shared = pool.share(np.zeros(BIG))
            assert shared.copied is True  # type: ignore[attr-defined]

    @pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (3.12+)
    def test_pickling_the_handle_for_anything_else_makes_the_copy(self) -> None:
        np = pytest.importorskip("numpy")
        with anypool.Pool("process", 1, start_method="fork") as pool:
            shared = pool.share(np.ones(BIG))
            assert shared.copied is False  # type: ignore[attr-defined]
            pickle.dumps(shared)  # another pool, a queue, a file...: they need the segment
            assert shared.copied is True  # type: ignore[attr-defined]

    @pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (3.12+)
    def test_a_copy_that_fails_fails_its_task_and_the_pool_goes_on(self) -> None:
        np = pytest.importorskip("numpy")
        with anypool.Pool("process", 1, start_method="fork") as pool:
            assert list(pool.map(abs, [-1])) == [1]
            shared = pool.share(np.ones(BIG))

            def broken() -> None:
                raise OSError(28, "No space left on device")

            shared._copy = broken  # type: ignore[attr-defined]
            with pytest.raises(OSError, match="No space left"):
                pool.submit(_read, shared, 0).result(timeout=30)
            assert pool.submit(abs, -2).result(timeout=30) == 2
