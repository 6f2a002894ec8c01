"""The process backend: lambdas, crashes, timeouts, start methods."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import anypool
from conftest import SHORT_TIMEOUT


def crash_on(x: int, bad: int, how: str) -> int:
    if x == bad:
        if how == "exit":
            os._exit(3)
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "sysexit":
            sys.exit(4)
    return x


def sleep_for(x: float) -> float:
    time.sleep(x)
    return x


def test_lambdas_and_closures_work() -> None:
    k = 3
    assert anypool.map(lambda x: x * k, range(5), backend="process") == [0, 3, 6, 9, 12]


def test_default_start_method_is_not_fork() -> None:
    with anypool.Pool("process", workers=1) as pool:
        assert pool._backend.start_method in ("forkserver", "spawn")  # type: ignore[attr-defined]
        assert pool.submit(os.getpid).result(timeout=SHORT_TIMEOUT) != os.getpid()


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_a_crashed_worker_fails_only_its_task(how: str) -> None:
    out = anypool.map(
        crash_on,
        range(6),
        [2] * 6,
        [how] * 6,
        backend="process",
        workers=2,
        chunksize=1,
        errors="collect",
    )
    assert [r.ok for r in out] == [True, True, False, True, True, True]
    err = out[2].error
    assert isinstance(err, anypool.WorkerCrashed)
    from concurrent.futures.process import BrokenProcessPool

    assert isinstance(err, BrokenProcessPool)  # stdlib code still catches it
    assert err.pid is not None
    assert err.pid > 0
    assert ("code 3" if how == "exit" else "SIGKILL") in str(err)
    assert "crash_on" in str(err)


def test_pool_stays_usable_after_a_crash() -> None:
    with anypool.Pool("process", workers=1) as pool:
        fut = pool.submit(crash_on, 1, 1, "exit")
        with pytest.raises(anypool.WorkerCrashed):
            fut.result(timeout=SHORT_TIMEOUT)
        assert pool.submit(crash_on, 5, 1, "exit").result(timeout=SHORT_TIMEOUT) == 5


def test_sys_exit_in_a_task_is_an_ordinary_error() -> None:
    out = anypool.map(crash_on, [1], [1], ["sysexit"], backend="process", errors="collect")
    assert isinstance(out[0].error, SystemExit)


def test_crashed_task_is_retried_on_a_fresh_worker() -> None:
    # the first attempt kills its worker; the retry runs on a new one and succeeds
    with anypool.Pool("process", workers=1, retries=1) as pool:
        out = list(pool.imap(crash_once, ["marker"], chunksize=1))
    assert out == ["ok"]


_MARK_DIR = os.environ.get("TMPDIR", "/tmp")


def crash_once(name: str) -> str:
    path = os.path.join(_MARK_DIR, f"anypool-crash-once-{os.getppid()}-{name}")
    try:
        with open(path, "x"):
            pass
    except FileExistsError:
        os.unlink(path)
        return "ok"
    os._exit(9)


def test_task_timeout_ends_the_worker_and_names_the_input() -> None:
    with anypool.Pool("process", workers=2) as pool:
        # warm both workers up first: the first task in a worker also imports this module,
        # which on a loaded machine can take longer than the timeout below
        assert list(pool.map(sleep_for, [0.0, 0.0], chunksize=1)) == [0.0, 0.0]
        out = list(pool.imap(sleep_for, [0.0, 60.0, 0.0], task_timeout=1.0, errors="collect"))
    assert out[0].ok
    assert out[2].ok
    err = out[1].error
    assert isinstance(err, anypool.TaskTimeoutError)
    assert isinstance(err, TimeoutError)
    assert "60.0" in str(err)
    assert "task_timeout=1.0" in str(err)


def test_thread_timeout_frees_the_caller() -> None:
    import threading

    gate = threading.Event()

    def block(x: int) -> int:
        if x == 1:
            gate.wait(SHORT_TIMEOUT)
        return x

    try:
        out = anypool.map(
            block, [0, 1, 2], backend="thread", workers=2, task_timeout=0.2, errors="collect"
        )
        assert out[0].ok
        assert out[2].ok
        assert isinstance(out[1].error, anypool.TaskTimeoutError)
        assert "abandoned" in str(out[1].error)
    finally:
        gate.set()
        # the abandoned thread finishes its call once released; wait for it
        for t in threading.enumerate():
            if t.name.startswith("anypool-thread"):
                t.join(SHORT_TIMEOUT)


def test_an_exception_class_defined_in_the_callers_code_arrives_as_itself() -> None:
    class LocalError(Exception):
        pass

    def boom(x: int) -> int:
        raise LocalError(f"local {x}")

    with pytest.raises(LocalError, match="local 1"):
        anypool.map(boom, [1], backend="process")


NO_MAIN_GUARD = """
import anypool

def double(x):
    return 2 * x

print(anypool.map(double, range(4), backend="process", workers=2))
"""


def _run_no_guard(tmp_path: Path, preload: str | None) -> subprocess.CompletedProcess[str]:
    """Run NO_MAIN_GUARD as a script (``ANYPOOL_PRELOAD=preload``, or the default)."""
    script = tmp_path / "no_guard.py"
    script.write_text(NO_MAIN_GUARD)
    env = {k: v for k, v in os.environ.items() if k != "ANYPOOL_PRELOAD"}
    if preload is not None:
        env["ANYPOOL_PRELOAD"] = preload
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=SHORT_TIMEOUT,
        cwd=tmp_path,
        env=env,
    )


def test_a_script_without_a_main_guard_fails_clearly_instead_of_respawning_forever(
    tmp_path: Path,
) -> None:
    """Each worker imports the script again and dies starting; the pool must not hang.

    Workers that run the script again are those of a fork server that imports it: the one
    used when the program cannot be forked safely (here: ``ANYPOOL_PRELOAD=import``).
    """
    proc = _run_no_guard(tmp_path, preload="import")
    assert proc.returncode != 0
    # the caller: a broken pool that names the cause and the fix
    assert "BrokenPoolError" in proc.stderr
    assert 'if __name__ == "__main__":' in proc.stderr
    assert "APC204" in proc.stderr
    # the workers: our own message, not the stdlib's bootstrapping one
    assert "was started while this process was itself starting as a worker" in proc.stderr
    assert "please report this as a bug" not in proc.stderr


def test_a_script_without_a_main_guard_runs_once_from_a_forked_server(tmp_path: Path) -> None:
    """A single-threaded program is forked into the fork server: workers do not run it again."""
    proc = _run_no_guard(tmp_path, preload=None)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n") == ["[0, 2, 4, 6]", ""]


NEVER_SHUT_DOWN = """
import anypool


def size(b, x):
    return len(b) + x


if __name__ == "__main__":
    pool = anypool.Pool("process", 2)  # never shut down: exit does it
    shared = pool.share(b"x" * 100_000)
    lock = pool.Lock()
    print(shared.token, sorted(pool.map(size, [shared, shared], [1, 2])))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="shared memory is listed in /dev/shm")
def test_a_pool_never_shut_down_frees_its_shared_memory_at_exit(tmp_path: Path) -> None:
    """No "leaked shared_memory objects" warning, and the segment is gone."""
    script = tmp_path / "never.py"
    script.write_text(NEVER_SHUT_DOWN)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    token, _ = proc.stdout.split(" ", 1)
    assert "[100001, 100002]" in proc.stdout
    assert "leaked" not in proc.stderr, proc.stderr
    assert not os.path.exists(f"/dev/shm/{token}")
