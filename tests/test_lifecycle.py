"""A worker's life around its tasks: ``broadcast``, ``finalizer=`` and ``inner_threads=``."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import functools
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import anypool
from anypool._backends._threads import ThreadBackend
from anypool._core import _registry
from anypool._core._lifecycle import THREAD_ENV_VARS
from anypool._core._tasks import available_cpus
from anypool.testing import check_backend
from conftest import FORKED_SERVER_ONLY, HAVE_DASK, SHORT_TIMEOUT, adapt

#: how many workers a broadcast reaches on a pool of 2 (serial and asyncio have one; the
#: session's Dask cluster has 2)
ONE_WORKER = ("serial", "asyncio")


def expected_workers(backend: str) -> int:
    return 1 if backend in ONE_WORKER else 2


# -- per-worker state --------------------------------------------------------------------------
def init_state() -> None:
    state = anypool.current_worker().state
    state["calls"] = 0
    state["total"] = 0


def count_call() -> tuple[int, int]:
    w = anypool.current_worker()
    w.state["calls"] += 1
    return w.state["calls"], os.getpid()


def add(x: int) -> int:
    anypool.current_worker().state["total"] += x
    return anypool.current_worker().id


def worker_total() -> int:
    total: int = anypool.current_worker().state["total"]
    return total


def fail_on_worker() -> None:
    raise ValueError(f"no luck on worker {anypool.current_worker().id}")


def worker_id(_: object = None) -> int:
    return anypool.current_worker().id


def worker_pid() -> int:
    return os.getpid()


class TestBroadcast:
    def test_runs_exactly_once_on_every_worker(self, backend: str) -> None:
        with anypool.Pool(backend, workers=2, initializer=init_state) as pool:
            first = pool.broadcast(count_call)
            second = pool.broadcast(count_call)
        n = expected_workers(backend)
        assert len(first) == n, first
        # each worker ran each broadcast once: its own counter went 1, then 2
        assert {calls for calls, _ in first.values()} == {1}
        assert {calls for calls, _ in second.values()} == {2}
        assert first.keys() == second.keys()
        if backend == "process":  # a separate process per worker
            assert len({pid for _, pid in first.values()}) == 2

    def test_stateful_workers_each_give_their_part(self, backend: str) -> None:
        """mpire's stateful pattern: per-worker state built by the initializer, updated by a
        map, each worker's part collected with broadcast: the parts add up exactly."""
        with anypool.Pool(backend, workers=2, initializer=init_state) as pool:
            ran_on = set(pool.map(adapt(backend, add), range(200), chunksize=5))
            parts = pool.broadcast(worker_total)
        assert sum(parts.values()) == sum(range(200))
        assert ran_on <= parts.keys()  # every worker that did work was reached

    def test_an_error_is_raised_and_names_the_worker(self, backend: str) -> None:
        with (
            anypool.Pool(backend, workers=2) as pool,
            pytest.raises(ValueError, match="no luck on worker") as info,
        ):
            pool.broadcast(fail_on_worker)
        notes = "\n".join(getattr(info.value, "__notes__", []))
        assert "broadcast fail_on_worker() on" in notes
        assert f"{backend} worker" in notes

    def test_after_shutdown_it_is_refused(self, backend: str) -> None:
        pool = anypool.Pool(backend, workers=2)
        pool.shutdown()
        with pytest.raises(anypool.ClosedPoolError):
            pool.broadcast(worker_id)

    @pytest.mark.parametrize("backend", ["thread", "process"])
    def test_is_not_counted_as_a_task(self, backend: str) -> None:
        with anypool.Pool(backend, workers=1, max_tasks_per_worker=1) as pool:
            a = pool.broadcast(worker_id)
            b = pool.broadcast(worker_id)
            assert a == b == {0: 0}  # the same worker: broadcasts did not recycle it
            assert pool.submit(worker_id).result(timeout=SHORT_TIMEOUT) == 0
            # that task was its last: the next one runs on a fresh worker
            assert pool.submit(worker_id).result(timeout=SHORT_TIMEOUT) == 1

    @pytest.mark.parametrize("backend", ["thread", "process"])
    def test_waits_for_busy_workers_without_deadlock(self, backend: str) -> None:
        """A broadcast during a map: each worker runs it once its task is done."""
        with anypool.Pool(backend, workers=2, initializer=init_state) as pool:
            started = pool.Queue()
            release = pool.Event()
            busy = [pool.submit(block_until, started, release) for _ in range(2)]
            for _ in range(2):  # both workers are inside a task
                started.get(timeout=SHORT_TIMEOUT)
            with cf.ThreadPoolExecutor(1) as caller:
                bcast = caller.submit(pool.broadcast, count_call)
                release.set()
                parts = bcast.result(timeout=SHORT_TIMEOUT)
            assert [f.result(timeout=SHORT_TIMEOUT) for f in busy] == ["done", "done"]
        assert len(parts) == 2
        assert {calls for calls, _ in parts.values()} == {1}

    def test_a_worker_on_its_last_task_is_left_to_its_replacement(self) -> None:
        """A broadcast made while a worker runs the task after which it is recycled goes to
        the replacement (not to the worker about to exit)."""
        with anypool.Pool("process", workers=1, max_tasks_per_worker=1) as pool:
            started, release = pool.Queue(), pool.Event()
            last = pool.submit(block_until, started, release)
            started.get(timeout=SHORT_TIMEOUT)
            with cf.ThreadPoolExecutor(1) as caller:
                bcast = caller.submit(pool.broadcast, worker_id)
                release.set()
                assert bcast.result(timeout=SHORT_TIMEOUT) == {1: 1}
            assert last.result(timeout=SHORT_TIMEOUT) == "done"

    def test_a_worker_ended_by_task_timeout_fails_its_call_without_a_hang(self) -> None:
        with anypool.Pool("process", workers=1, task_timeout=2) as pool:
            started, never = pool.Queue(), pool.Event()
            stuck = pool.submit(block_until, started, never)
            started.get(timeout=SHORT_TIMEOUT)
            with cf.ThreadPoolExecutor(1) as caller:
                bcast = caller.submit(pool.broadcast, worker_id)
                with pytest.raises(anypool.WorkerCrashed, match="before it ran the broadcast"):
                    bcast.result(timeout=SHORT_TIMEOUT)
            with pytest.raises(anypool.TaskTimeoutError):
                stuck.result(timeout=SHORT_TIMEOUT)
            assert pool.broadcast(worker_id) == {1: 1}  # the replacement

    def test_auto_needs_a_chosen_backend(self) -> None:
        with anypool.Pool("auto") as pool, pytest.raises(RuntimeError, match="run a map first"):
            pool.broadcast(worker_id)

    def test_from_inside_a_task_is_refused(self) -> None:
        with anypool.Pool("thread", workers=2) as pool:
            fut = pool.submit(lambda: pool.broadcast(worker_id))
            with pytest.raises(RuntimeError, match="wait for itself"):
                fut.result(timeout=SHORT_TIMEOUT)

    def test_asyncio_runs_coroutine_functions_and_abroadcast_on_the_loop(self) -> None:
        async def where() -> str:
            await asyncio.sleep(0)
            return anypool.current_worker().backend

        async def main() -> dict[int, str]:
            async with anypool.Pool("asyncio") as pool:
                got = await pool.abroadcast(where)
                with pytest.raises(RuntimeError, match="deadlock"):
                    pool.broadcast(where)  # blocking on the pool's own loop
                return got

        got = asyncio.run(main())
        assert got == {0: "asyncio"}

    def test_abroadcast_on_a_process_pool(self) -> None:
        async def main() -> dict[int, int]:
            async with anypool.Pool("process", workers=2) as pool:
                return await pool.abroadcast(worker_pid)

        got = asyncio.run(main())
        assert sorted(got) == [0, 1]
        assert len(set(got.values())) == 2


def block_until(started: Any, release: Any) -> str:
    anypool.current_worker().state["busy"] = True
    started.put(os.getpid())
    assert release.wait(SHORT_TIMEOUT)
    return "done"


# -- finalizer ---------------------------------------------------------------------------------
def mark_stop(folder: str) -> None:
    """A finalizer that leaves one line per call in the worker's own file."""
    w = anypool.current_worker()
    with open(os.path.join(folder, f"worker-{w.id}"), "a") as f:
        f.write(f"{os.getpid()} {w.tasks_done}\n")


def stops(folder: Path) -> dict[int, int]:
    """{worker id: how many times its finalizer ran}."""
    return {
        int(p.name.split("-")[1]): len(p.read_text().splitlines())
        for p in folder.iterdir()
        if p.name.startswith("worker-")
    }


def bad_finalizer() -> None:
    raise ValueError("could not flush")


def hang_forever() -> None:
    time.sleep(3600)


def join_pool_threads() -> None:
    """Wait for the worker threads a terminated pool leaves to finish (they do at once)."""
    for t in threading.enumerate():
        if t.name.startswith(("anypool-thread", "anypool-asyncio")):
            t.join(SHORT_TIMEOUT)
            assert not t.is_alive(), f"{t.name} did not stop"


class TestFinalizer:
    def test_runs_once_in_each_worker_at_shutdown(self, backend: str, tmp_path: Path) -> None:
        fin = functools.partial(mark_stop, str(tmp_path))
        with anypool.Pool(backend, workers=2, finalizer=fin) as pool:
            ran_on = set(pool.map(adapt(backend, worker_id), range(40), chunksize=1))
            assert stops(tmp_path) == {}  # not before the workers stop
        stopped = stops(tmp_path)
        # once in every worker that ran a task, and in one that started but got none (tasks
        # this short may all go to one thread)
        assert set(stopped) >= ran_on
        assert len(stopped) <= 2
        assert set(stopped.values()) == {1}

    @pytest.mark.parametrize("backend", ["serial", "thread", "process"])
    def test_runs_when_a_worker_is_recycled(self, backend: str, tmp_path: Path) -> None:
        fin = functools.partial(mark_stop, str(tmp_path))
        with anypool.Pool(backend, workers=1, max_tasks_per_worker=2, finalizer=fin) as pool:
            ran_on = list(pool.map(worker_id, range(6), chunksize=1))
        assert ran_on == [0, 0, 1, 1, 2, 2]
        assert stops(tmp_path) == {0: 1, 1: 1, 2: 1}
        lines = [(tmp_path / f"worker-{i}").read_text().split() for i in range(3)]
        assert all(done == "2" for _, done in lines)  # each stopped after its 2 tasks

    @pytest.mark.parametrize("backend", ["serial", "thread", "process", "asyncio"])
    def test_runs_when_the_pool_is_terminated_while_idle(
        self, backend: str, tmp_path: Path
    ) -> None:
        fin = functools.partial(mark_stop, str(tmp_path))
        pool = anypool.Pool(backend, workers=2, finalizer=fin)
        try:
            ran_on = set(pool.map(adapt(backend, worker_id), range(20), chunksize=1))
            # every worker, also one that started and got no task (it stops too)
            live = set(pool.broadcast(adapt(backend, worker_id), None))
        finally:
            pool.terminate()
        join_pool_threads()
        assert ran_on <= live
        assert stops(tmp_path) == dict.fromkeys(live, 1)

    def test_an_error_is_logged_with_the_worker_id(
        self, backend: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.ERROR, logger="anypool")
        with anypool.Pool(backend, workers=1, finalizer=bad_finalizer) as pool:
            assert pool.submit(adapt(backend, worker_id)).result(timeout=SHORT_TIMEOUT) >= 0
        # shutdown returned; the error was not lost
        messages = [r.getMessage() for r in caplog.records]
        assert any(
            f"finalizer of {backend} worker" in m and "ValueError: could not flush" in m
            for m in messages
        ), messages

    @pytest.mark.parametrize("backend", ["thread", "process"])
    def test_a_finalizer_that_hangs_does_not_hang_shutdown(
        self, backend: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        release = threading.Event()
        fin = release.wait if backend == "thread" else hang_forever
        caplog.set_level(logging.ERROR, logger="anypool")
        with anypool.Pool(backend, workers=1, finalizer=fin, finalizer_timeout=0.5) as pool:
            pool.submit(worker_id).result(timeout=SHORT_TIMEOUT)
        # shutdown returned although the finalizer is still stuck (or was killed)
        release.set()  # let the abandoned thread go
        join_pool_threads()
        assert any("did not return within" in r.getMessage() for r in caplog.records)

    def test_asyncio_coroutine_finalizer_is_awaited_and_bounded(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        seen: list[int] = []

        async def close() -> None:
            seen.append(anypool.current_worker().id)
            await asyncio.sleep(3600)

        caplog.set_level(logging.ERROR, logger="anypool")
        with anypool.Pool("asyncio", finalizer=close, finalizer_timeout=0.2) as pool:
            pool.submit(adapt("asyncio", worker_id)).result(timeout=SHORT_TIMEOUT)
        assert seen == [0]
        assert any("did not return within" in r.getMessage() for r in caplog.records)

    def test_workers_that_never_started_are_not_finalized(
        self, backend: str, tmp_path: Path
    ) -> None:
        fin = functools.partial(mark_stop, str(tmp_path))
        with anypool.Pool(backend, workers=2, finalizer=fin):
            pass
        assert stops(tmp_path) == {}


CAPS_PROGRAM = """
import json, os, threading
import numpy
import anypool
from anypool._backends import _preload
from threadpoolctl import threadpool_info


def blas():
    return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]


def probe():
    return blas(), len(os.listdir("/proc/self/task")), threading.active_count()


def parent():
    return os.getppid()


if __name__ == "__main__":
    out = {"program": blas()}
    for key, inner in (("default", "auto"), ("none", None), ("two", 2)):
        with anypool.Pool("process", 2, inner_threads=inner) as pool:
            out[key] = list(pool.broadcast(probe).values())
    out["program_after"] = blas()
    out["forked"] = _preload._stats["forked"]
    anypool.shutdown_warm_workers()  # the next pools start workers of their own
    for key, inner in (("default", "auto"), ("none", None), ("two", 2)):
        key = "preforked_" + key
        with anypool.Pool("process", 2, inner_threads=inner) as pool:
            pool.share(b"x")  # forks the workers from the program (no worker is warm)
            out[key] = list(pool.broadcast(probe).values())
            out[key + "_parents"] = sorted(set(pool.broadcast(parent).values()))
        anypool.shutdown_warm_workers()
    out["pid"] = os.getpid()
    out["program_last"] = blas()
    from anypool._core._lifecycle import cap_wakes_pools, mapped_files
    out["storable"] = not cap_wakes_pools(1, mapped_files())
    print(json.dumps(out))
"""


# -- inner_threads -----------------------------------------------------------------------------
def blas_threads(_: object = None) -> tuple[list[int], str | None]:
    """The BLAS thread pools this worker's numpy uses, and its OMP_NUM_THREADS."""
    import numpy  # noqa: F401 - loads the BLAS library
    from threadpoolctl import threadpool_info

    counts = [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]
    return counts, os.environ.get("OMP_NUM_THREADS")


@pytest.fixture
def numpy_blas() -> list[int]:
    """The BLAS thread count numpy gets in this (test) process, untouched."""
    pytest.importorskip("numpy", reason="numpy shows the BLAS thread pools (dev extra)")
    counts, _ = blas_threads()
    if not counts:
        pytest.skip("this numpy has no BLAS library threadpoolctl can see")
    return counts


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OMP_NUM_THREADS & co. in this process's environment (spawned workers inherit it).

    Dask's nanny sets them in the process that starts a LocalCluster, so an earlier test may
    have left them here.
    """
    for var in THREAD_ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def two_cpus_or_skip() -> int:
    """The share of each of 2 workers; skips on 1 CPU (nothing to tell apart)."""
    if available_cpus() < 2:
        pytest.skip("needs 2 CPUs to tell a thread count from the default")
    return available_cpus() // 2


@pytest.fixture
def parent_blas(numpy_blas: list[int]) -> Iterator[int]:
    """This process's BLAS set to a count other than a worker's share, for forked workers."""
    from threadpoolctl import threadpool_limits

    share = two_cpus_or_skip()
    other = 2 if share == 1 else 1
    with threadpool_limits(limits=other, user_api="blas"):
        yield other


def check_caps(out: dict[str, Any], prefix: str, share: int) -> None:
    """The BLAS counts CAPS_PROGRAM's pools' workers reported (keys ``prefix`` + default,
    none, two): capped to their share with no OpenBLAS thread started, the program's counts,
    and 2."""
    for counts, os_threads, py_threads in out[prefix + "default"]:
        assert counts
        assert set(counts) == {share}
        if share == 1:  # no OpenBLAS thread was started in the worker
            assert os_threads == py_threads, out
    for counts, _, _ in out[prefix + "none"]:
        assert counts == out["program"]
    for counts, _, _ in out[prefix + "two"]:
        assert counts
        assert set(counts) == {2}


class TestInnerThreads:
    def test_process_workers_get_their_share_of_the_cpus(
        self, numpy_blas: list[int], clean_env: None
    ) -> None:
        share = max(1, available_cpus() // 2)
        with anypool.Pool("process", workers=2, start_method="spawn") as pool:
            got = pool.broadcast(blas_threads)
        assert len(got) == 2
        for counts, omp in got.values():
            assert counts, "no BLAS pool in the worker"
            assert set(counts) == {share}  # every BLAS library the worker loaded (numpy, scipy)
            assert omp == str(share)

    @pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (3.12+)
    def test_a_library_loaded_before_the_worker_started_is_capped_too(
        self, parent_blas: int, clean_env: None
    ) -> None:
        """With fork the worker inherits a numpy whose BLAS is set up: threadpoolctl."""
        share = available_cpus() // 2
        with anypool.Pool("process", workers=2, start_method="fork") as pool:
            got = pool.broadcast(blas_threads)
        assert all(counts and set(counts) == {share} for counts, _ in got.values()), got

    def test_inner_threads_sets_the_cap(self, numpy_blas: list[int]) -> None:
        n = 1 if two_cpus_or_skip() != 1 else 2  # not the default share
        got = anypool.map(blas_threads, range(2), backend="process", workers=2, inner_threads=n)
        for counts, omp in got:
            assert counts, "no BLAS pool in the worker"
            assert set(counts) == {n}  # (OpenBLAS never exceeds the CPUs)
            assert omp == str(n)

    @pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (3.12+)
    def test_none_leaves_a_loaded_library_alone(self, parent_blas: int, clean_env: None) -> None:
        with anypool.Pool("process", workers=2, inner_threads=None, start_method="fork") as pool:
            got = pool.broadcast(blas_threads)
        assert all(counts and set(counts) == {parent_blas} for counts, _ in got.values()), got

    def test_none_leaves_the_environment_alone(self, clean_env: None) -> None:
        with anypool.Pool("process", workers=2, inner_threads=None, start_method="spawn") as pool:
            got = pool.broadcast(lambda: [os.environ.get(v) for v in THREAD_ENV_VARS])
        assert got == {0: [None] * len(THREAD_ENV_VARS), 1: [None] * len(THREAD_ENV_VARS)}

    def test_variables_you_set_are_yours(
        self, numpy_blas: list[int], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The default cap steps aside when you set OMP_NUM_THREADS & co. yourself."""
        for var in THREAD_ENV_VARS:
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # (whatever the default cap would be)
        with anypool.Pool("process", workers=2, start_method="spawn") as pool:
            got = pool.broadcast(blas_threads)
            untouched = pool.broadcast(os.environ.get, "OPENBLAS_NUM_THREADS")
        assert [omp for _, omp in got.values()] == ["2", "2"]
        assert untouched == {0: None, 1: None}

    @FORKED_SERVER_ONLY
    def test_workers_of_a_forked_server_inherit_its_cap(
        self, numpy_blas: list[int], tmp_path: Path
    ) -> None:
        """In a fresh single-threaded program (the fork server is a fork of it): the default
        cap comes from the server, so the workers start no BLAS thread pool of their own;
        inner_threads=None gives them the program's counts; another cap is set. The same
        holds for workers forked from the program itself (``pool.share()`` first)."""
        share = two_cpus_or_skip()
        script = tmp_path / "caps.py"
        script.write_text(CAPS_PROGRAM)
        env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV_VARS}
        env.pop("ANYPOOL_PRELOAD", None)
        proc = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env
        )
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.splitlines()[-1])
        assert out["forked"] == 1, "the fork server was not a fork of the program"
        check_caps(out, "", share)
        assert out["program_after"] == out["program"], "the program's own BLAS was changed"
        # workers forked from the program by pool.share(): capped with no BLAS thread
        # started; where the cap could not be stored without starting one (numpy 2.5's
        # OpenBLAS exports no count to store), from a fork server forked again instead
        for key in ("preforked_none", "preforked_two"):  # nothing to lower: always forked
            assert out[key + "_parents"] == [out["pid"]], "not forked from the program"
        if share == 1 and not out["storable"]:
            assert out["preforked_default_parents"] != [out["pid"]], "forked though it wakes"
        else:
            assert out["preforked_default_parents"] == [out["pid"]], "not forked from it"
        check_caps(out, "preforked_", share)
        assert out["program_last"] == out["program"], "the program's own BLAS was changed"

    def test_thread_backend_leaves_them_alone_by_default(self, numpy_blas: list[int]) -> None:
        with anypool.Pool("thread", workers=2) as pool:
            counts, _ = pool.submit(blas_threads).result(timeout=SHORT_TIMEOUT)
        assert counts == numpy_blas

    def test_in_process_backends_cap_while_open_then_restore(self, numpy_blas: list[int]) -> None:
        with anypool.Pool("thread", workers=2, inner_threads=1) as pool:
            counts, _ = pool.submit(blas_threads).result(timeout=SHORT_TIMEOUT)
            assert counts, "no BLAS pool in the worker"
            assert set(counts) == {1}
        assert blas_threads()[0] == numpy_blas

    @pytest.mark.parametrize("bad", [0, -2, 1.5, "many", True])
    def test_bad_values_get_a_clear_error(self, bad: object) -> None:
        with pytest.raises(ValueError, match="inner_threads must be a positive whole number"):
            anypool.Pool("process", inner_threads=bad)  # type: ignore[arg-type]


@pytest.mark.skipif(not HAVE_DASK, reason="needs anypool[dask]")
def test_dask_refuses_a_number_of_inner_threads(dask_cluster: str) -> None:
    with pytest.raises(ValueError, match="inner_threads= is not supported on the dask backend"):
        anypool.Pool("dask", inner_threads=1)


class TestBadLifecycleOptions:
    def test_finalizer_must_be_callable(self) -> None:
        with pytest.raises(TypeError, match="must be callable"):
            anypool.Pool("thread", finalizer="close")  # type: ignore[arg-type]

    @pytest.mark.parametrize("bad", [0, -1, "soon", None])
    def test_finalizer_timeout_must_be_positive(self, bad: object) -> None:
        with pytest.raises(ValueError, match="finalizer_timeout must be a positive number"):
            anypool.Pool("thread", finalizer_timeout=bad)  # type: ignore[arg-type]

    def test_the_map_functions_take_them(self, tmp_path: Path) -> None:
        fin = functools.partial(mark_stop, str(tmp_path))
        assert anypool.map(worker_id, range(3), backend="serial", finalizer=fin) == [0, 0, 0]
        assert stops(tmp_path) == {0: 1}


def bad_init() -> None:
    raise RuntimeError("no model today")


def test_broadcast_with_a_failing_initializer_raises_and_does_not_hang(backend: str) -> None:
    with (
        anypool.Pool(backend, workers=2, initializer=bad_init) as pool,
        pytest.raises((anypool.InitializerError, anypool.BrokenPoolError), match="no model"),
    ):
        pool.broadcast(worker_id)


def test_an_executor_backend_says_what_it_cannot_do() -> None:
    """backend=<a concurrent.futures.Executor>: anypool does not manage its workers."""
    with cf.ThreadPoolExecutor(1) as ex:
        with pytest.raises(ValueError, match="finalizer= cannot be used"):
            anypool.Pool(ex, finalizer=print)
        with anypool.Pool(ex) as pool, pytest.raises(NotImplementedError, match="cannot reach"):
            pool.broadcast(worker_id)
    with (
        cf.ProcessPoolExecutor(1) as pex,
        pytest.raises(ValueError, match="inner_threads= cannot be used"),
    ):
        anypool.Pool(pex, inner_threads=1)


class _BroadcastsTwice(ThreadBackend):
    """A broken backend: its broadcast runs the call twice on each worker."""

    name = "twice"

    def broadcast(self, fn: Any, args: Any) -> dict[int, Any]:
        super().broadcast(fn, args)
        return super().broadcast(fn, args)


def test_check_backend_catches_a_broadcast_that_runs_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(_registry._registered, "twice", lambda: _BroadcastsTwice)
    with pytest.raises(AssertionError, match="check 'broadcast' failed: broadcast ran 2 times"):
        check_backend("twice", skip=("retries",))


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/maps and dl_iterate_phdr")
def test_the_loader_lists_every_shared_library_the_maps_show() -> None:
    """loaded_libraries() (the dynamic loader, ~0.1 ms) finds the libraries that a read of
    /proc/self/maps (~2.5 ms) finds, numpy's OpenBLAS among them where numpy is here."""
    from anypool._core._lifecycle import loaded_libraries, mapped_files

    try:
        import numpy  # noqa: F401 - its native libraries, if installed
    except ImportError:
        pass
    loaded = loaded_libraries()
    maps = mapped_files()
    assert loaded is not None
    assert maps is not None
    libraries = {os.path.realpath(p) for p in maps if p.endswith(".so") or ".so." in p}
    assert libraries
    assert libraries <= {os.path.realpath(p) for p in loaded}


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/maps")
def test_shm_mapped_counts_a_shared_array_until_it_is_closed() -> None:
    from multiprocessing import shared_memory

    from anypool._core._lifecycle import shm_mapped

    before = shm_mapped()
    assert before is not None
    shm = shared_memory.SharedMemory(create=True, size=4 << 20)  # untouched: mapped all the same
    try:
        assert shm_mapped() == before + (4 << 20)
    finally:
        shm.close()
        shm.unlink()
    assert shm_mapped() == before
