"""backend="auto": measures the first inputs, picks, explains; never runs an input twice."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

import anypool
from anypool._backends._auto import (
    ASYNC_WORKERS,
    SAMPLE_CHUNK_SECONDS,
    SAMPLE_ITEMS,
    decide,
    decide_async,
)


def _decide(**kw: Any) -> Any:
    """decide() for 2,000 inputs of 8-byte results on 2 CPUs, picklable, workers not given."""
    args: dict[str, Any] = {"result_bytes": 8, "remaining": 2000, "cpus": 2, "picklable": True}
    return decide(**{**args, "workers": None, **kw})


class TestDecide:
    """The choice itself, from measured numbers (no timing in tests)."""

    def test_tiny_tasks_stay_serial(self) -> None:
        d = _decide(wall=1e-6, cpu=1e-6, remaining=200_000)
        assert d.backend == "serial"
        assert "tiny" in d.reason

    def test_cpu_bound_goes_to_processes_with_one_per_core(self) -> None:
        d = _decide(wall=1e-3, cpu=0.97e-3)
        assert d.backend == "process"
        assert d.workers == 2
        assert "CPU-bound: 97% of wall time on CPU" in d.reason

    def test_waiting_goes_to_many_threads(self) -> None:
        d = _decide(wall=10e-3, cpu=20e-6)
        assert d.backend == "thread"
        assert d.workers == 64
        assert "I/O-bound" in d.reason

    def test_half_cpu_half_wait_uses_more_processes_than_cores(self) -> None:
        d = _decide(wall=2e-3, cpu=1e-3)
        assert d.backend == "process"
        assert d.workers == 4

    def test_unpicklable_cpu_work_cannot_use_processes(self) -> None:
        d = _decide(wall=1e-3, cpu=1e-3, picklable=False)
        assert d.backend != "process"
        assert "cannot be pickled" in d.reason

    def test_free_threaded_build_may_use_threads_for_cpu(self) -> None:
        d = _decide(wall=1e-3, cpu=1e-3, gil=False)
        assert d.backend == "thread"

    def test_few_items_do_not_pay_for_a_process_pool(self) -> None:
        d = _decide(wall=1e-3, cpu=1e-3, remaining=3)
        assert d.backend == "serial"

    def test_huge_results_weigh_against_processes(self) -> None:
        d = _decide(wall=1e-3, cpu=1e-3, result_bytes=50e6)
        assert d.backend != "process"

    def test_user_workers_are_kept(self) -> None:
        d = _decide(wall=10e-3, cpu=0, workers=7)
        assert d.workers == 7


class TestDecideAsync:
    def test_coroutines_get_many_in_flight(self) -> None:
        d = decide_async(None)
        assert d.backend == "asyncio"
        assert d.workers == ASYNC_WORKERS == 1000
        assert "up to 1000" in d.reason
        assert "workers=" in d.reason

    def test_user_workers_are_kept(self) -> None:
        d = decide_async(7)
        assert (d.backend, d.workers) == ("asyncio", 7)


def test_auto_is_the_default() -> None:
    with anypool.Pool() as pool:
        assert pool.backend == "auto"


def test_every_input_runs_exactly_once_and_in_order() -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def record(x: int) -> int:
        with lock:
            calls.append(x)
        return x * 2

    out = anypool.map(record, range(500))
    assert out == [2 * x for x in range(500)]
    assert sorted(calls) == list(range(500))


def test_explain_and_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="anypool"), anypool.Pool() as pool:
        assert "has not chosen yet" in pool.explain()
        assert list(pool.map(abs, range(-50, 50))) == [abs(x) for x in range(-50, 50)]
        text = pool.explain()
    assert "auto chose backend=" in text
    assert "measured" in text
    assert any("auto chose backend=" in r.getMessage() for r in caplog.records)


def test_explicit_backend_explains_itself() -> None:
    with anypool.Pool("thread", workers=3) as pool:
        assert "as you chose" in pool.explain()


def test_coroutine_functions_go_to_asyncio() -> None:
    if "asyncio" not in anypool.get_available_backends():
        pytest.skip("asyncio backend not available")

    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    with anypool.Pool() as pool:
        assert list(pool.map(double, range(10))) == [2 * x for x in range(10)]
        assert "asyncio" in pool.explain()
        assert pool.workers == ASYNC_WORKERS
    with anypool.Pool(workers=5) as pool:
        assert list(pool.map(double, range(10))) == [2 * x for x in range(10)]
        assert pool.workers == 5


def test_submit_on_auto_uses_threads_for_plain_functions() -> None:
    with anypool.Pool() as pool:
        assert pool.submit(pow, 2, 10).result(timeout=30) == 1024
        assert "thread" in pool.explain()


def test_errors_during_measurement_are_reported_in_place() -> None:
    def fail_on_one(x: int) -> int:
        if x == 1:
            raise ValueError("one")
        return x

    out = anypool.map(fail_on_one, range(5), errors="collect")
    assert [r.ok for r in out] == [True, False, True, True, True]


def test_tiny_work_does_not_import_cloudpickle() -> None:
    # picklability only matters when processes would win; importing cloudpickle (~25 ms cold)
    # would cost more than the whole map of tiny tasks
    import subprocess
    import sys

    code = (
        "import sys, anypool\n"
        "assert anypool.map(abs, range(-500, 500)) == [abs(x) for x in range(-500, 500)]\n"
        "with anypool.Pool() as p:\n"
        "    list(p.imap(abs, range(100)))\n"
        "    assert 'serial' in p.explain(), p.explain()\n"
        "print('cloudpickle' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_unpicklable_function_is_checked_when_processes_would_win() -> None:
    from anypool._backends import _auto

    assert _auto._picklable(abs)
    lock = threading.Lock()
    assert not _auto._picklable(lambda: lock)


def test_measuring_chunks_are_small_and_counted_in_inputs() -> None:
    # while measuring, the map's chunker aims at SAMPLE_CHUNK_SECONDS of work per chunk (not
    # the 5 ms of a working chunk, which put a quarter of a tiny map on the measuring thread)
    with anypool.Pool() as pool:
        backend = pool._backend
        assert backend.target_chunk_seconds == SAMPLE_CHUNK_SECONDS
        out = list(pool.imap(abs, range(-500, 500), chunksize=10))
        assert out == [abs(x) for x in range(-500, 500)]
        # tiny tasks never reach SAMPLE_SECONDS: SAMPLE_ITEMS chunks of 10 inputs each
        assert f"measured {SAMPLE_ITEMS * 10} input(s)" in pool.explain()
        assert backend.target_chunk_seconds != SAMPLE_CHUNK_SECONDS  # the chosen backend's


# -- issue 11 item 7: the explanation is true to the measurements ---------------------------


class TestTruthfulExplanation:
    @pytest.mark.parametrize("remaining", [3, 17, 200, 20_000, None])
    @pytest.mark.parametrize("wall", [1e-6, 1e-4, 4e-3, 0.1])
    @pytest.mark.parametrize("share", [0.75, 0.9, 1.0])
    def test_cpu_bound_work_is_never_called_io_bound(
        self, remaining: int | None, wall: float, share: float
    ) -> None:
        d = decide(wall, share * wall, 8, remaining, cpus=2, picklable=True, workers=None)
        assert "I/O-bound" not in d.reason
        assert "overlap the waiting" not in d.reason
        if "overlap" in d.reason:  # only the waiting part, and said how big it is
            assert f"overlap the {100 * (1 - share):.0f}% of each task spent waiting" in d.reason
        assert f"{100 * share:.0f}% of wall time on CPU" in d.reason or "tiny" in d.reason

    def test_the_issue_case_stays_serial_and_names_the_start_up(self) -> None:
        # 20 tasks of 4 ms pure CPU, 3 measured: serial 68.5 ms, threads 68.4 ms (the GIL),
        # processes need ~80 ms just to start. It used to pick threads ("I/O-bound ... 100%
        # of wall time on CPU"), or serial because "tasks are tiny" (4 ms is not tiny)
        d = decide(4.03e-3, 4.02e-3, 5, 17, cpus=2, picklable=True, workers=None, startup=0.08)
        assert d.backend == "serial"
        assert "tiny" not in d.reason
        assert "CPU-bound: 100% of wall time on CPU" in d.reason
        assert "shorter than starting processes (about 80.0 ms)" in d.reason
        est = dict(d.estimates)
        assert est["serial"] < 0.08 < est["process"]

    def test_estimates_within_the_noise_pick_the_simplest(self) -> None:
        # processes are estimated 23% faster, but the measurements spread by 30%: serial wins
        kw: dict[str, Any] = {"cpus": 2, "picklable": True, "workers": None, "startup": 0.3}
        quiet = decide(10e-3, 10e-3, 8, 110, **kw, noise=0.1)
        noisy = decide(10e-3, 10e-3, 8, 110, **kw, noise=0.3)
        est = dict(noisy.estimates)
        assert est["process"] < est["serial"] < est["process"] * 1.3
        assert quiet.backend == "process"
        assert noisy.backend == "serial"
        assert "processes would save less than the measurement noise (±30%)" in noisy.reason
        assert "±30%" in noisy.explain()

    def test_threads_win_over_processes_within_the_noise(self) -> None:
        d = decide(10e-3, 4e-3, 8, 400, cpus=2, picklable=True, workers=None, startup=0.0)
        est = dict(d.estimates)
        if est["process"] * 1.1 >= est["thread"]:
            assert d.backend == "thread"
        assert d.backend != "serial"

    def test_unknown_length_is_said_to_be_unknown(self) -> None:
        d = decide(4e-3, 4e-3, 5, None, cpus=2, picklable=True, workers=None, startup=0.3)
        text = d.explain()
        assert "length is unknown" in d.reason
        assert "the input's length is unknown: estimated time per item" in text
        assert "starting processes costs about 300.0 ms once" in text
        # per item, not 10,000 items assumed: no estimate above a second
        assert all(t < 1 for _, t in d.estimates)
        assert d.backend == "process"
        assert "paid back after about 151 items" in d.reason

    def test_start_up_weighs_against_processes(self) -> None:
        kw: dict[str, Any] = {"cpus": 2, "picklable": True, "workers": None}
        cheap = decide(10e-3, 10e-3, 8, 100, **kw, startup=0.08)
        dear = decide(10e-3, 10e-3, 8, 100, **kw, startup=4.0)
        assert cheap.backend == "process"
        assert dear.backend == "serial"
        assert "starting processes (about 4.00 s)" in dear.reason
        assert dict(dear.estimates)["process"] > 4.0

    def test_the_chosen_estimate_is_within_the_noise_of_the_least(self) -> None:
        for wall, share, n in [(1e-5, 1, 10**5), (1e-3, 0.5, 500), (0.05, 0.02, 40)]:
            d = decide(wall, share * wall, 8, n, cpus=2, picklable=True, workers=None)
            est = dict(d.estimates)
            assert est[d.backend] <= min(est.values()) * (1 + d.noise)


def _uses_pytest(x: int) -> object:
    return pytest.approx(x)


class TestProcessStartup:
    def test_stdlib_functions_cost_the_base_start_up(self) -> None:
        import os.path

        from anypool._backends import _auto

        saved = dict(_auto._OBSERVED_STARTUP)
        _auto._OBSERVED_STARTUP.clear()
        try:
            expected = (_auto.PROCESS_STARTUP, "estimated")
            assert _auto.process_startup(os.path.basename, 2, 2) == expected
            # a start-up measured for another module is the better base
            _auto._OBSERVED_STARTUP["elsewhere"] = 0.5
            got = _auto.process_startup(os.path.basename, 2, 2)
            assert got == (0.5, "estimated from another module's pool")
        finally:
            _auto._OBSERVED_STARTUP.clear()
            _auto._OBSERVED_STARTUP.update(saved)

    def test_the_modules_a_worker_must_import_are_counted(self) -> None:
        import sys

        from anypool._backends import _auto

        _auto._OBSERVED_STARTUP.clear()
        startup, source = _auto.process_startup(_uses_pytest, 2, 2)
        loaded = sum(1 for m in sys.modules if m.partition(".")[0] == "pytest")
        assert "pytest" in source
        assert startup >= _auto.PROCESS_STARTUP + loaded * _auto.IMPORT_PER_MODULE
        # twice the workers on the same cores: the imports take twice as long
        assert _auto.process_startup(_uses_pytest, 4, 2)[0] > startup


# -- issue 11 item 8: auto never changes what a task sees ----------------------------------

_INIT_CALLS_HERE: list[int] = []


def _chosen(pool: anypool.Pool) -> Any:
    backend: Any = pool._backend
    assert backend.chosen is not None, "auto has not chosen"
    return backend.chosen


def _init_state() -> None:
    import os

    _INIT_CALLS_HERE.append(os.getpid())
    anypool.current_worker().state["n"] = 0


def _count_in_state(x: int) -> tuple[int, str, int, int]:
    import os

    w = anypool.current_worker()
    w.state["n"] += 1
    return os.getpid(), w.backend, w.id, w.state["n"]


def _per_worker(out: list[tuple[int, str, int, int]]) -> dict[tuple[int, str, int], int]:
    counts: dict[tuple[int, str, int], int] = {}
    for pid, backend, wid, n in out:
        counts[(pid, backend, wid)] = max(counts.get((pid, backend, wid), 0), n)
    return counts


def test_initializer_state_sees_every_input_and_runs_only_where_tasks_run() -> None:
    import os

    _INIT_CALLS_HERE.clear()
    with anypool.Pool(initializer=_init_state) as pool:
        out = list(pool.map(_count_in_state, range(20)))
        chosen = _chosen(pool)
        text = pool.explain()
    assert "initializer=" in text
    counts = _per_worker(out)
    assert sum(counts.values()) == 20  # every input counted in a worker's state
    assert {backend for _, backend, _ in counts} == {chosen.name}  # one kind of worker
    if chosen.name == "process":
        assert _INIT_CALLS_HERE == []  # the initializer never ran in the caller
        assert all(pid != os.getpid() for pid, _, _ in counts)


def _reads_current_worker(x: int) -> tuple[str, int]:
    return anypool.current_worker().backend, anypool.current_worker().pid


def test_a_function_calling_current_worker_runs_on_one_kind_of_worker() -> None:
    with anypool.Pool() as pool:
        out = list(pool.map(_reads_current_worker, range(10)))
        chosen = _chosen(pool)
        assert "current_worker()" in pool.explain()
    assert {b for b, _ in out} == {chosen.name}


def _bump() -> tuple[str, int, int]:
    w = anypool.current_worker()
    w.state["n"] = w.state.get("n", 0) + 1
    return w.backend, w.id, int(w.state["n"])


def _counts_through_a_helper(x: int) -> tuple[int, str, int, int]:
    import os

    # the task's own code does not name the worker context: found while measuring
    backend, wid, n = _bump()
    return os.getpid(), backend, wid, n


def test_state_kept_while_measuring_keeps_the_measuring_thread_as_a_worker() -> None:
    with anypool.Pool() as pool:
        out = list(pool.map(_counts_through_a_helper, range(50)))
        assert "current_worker().state on auto's measuring thread" in pool.explain()
    counts = _per_worker(out)
    assert sum(counts.values()) == 50
    assert {backend for _, backend, _ in counts} == {"thread"}


def test_start_up_of_a_chosen_process_pool_is_measured() -> None:
    from anypool._backends import _auto

    _auto._OBSERVED_STARTUP.pop(__name__, None)
    with anypool.Pool(initializer=_init_state) as pool:
        list(pool.map(_count_in_state, range(4)))
    seen = _auto._OBSERVED_STARTUP[__name__]
    assert seen > 0
    assert _auto.process_startup(_count_in_state, 2, 2) == (
        seen,
        "measured on this program's last process pool",
    )


# -- issue 13 item 5: share() under auto ---------------------------------------------------


class _Counted:
    """Counts how often it is pickled in this process."""

    pickled = 0

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __reduce__(self) -> tuple[object, ...]:
        type(self).pickled += 1
        return (_Counted, (self.payload,))


def _size_in_worker(x: int, obj: _Counted) -> tuple[str, int]:
    return anypool.current_worker().backend, len(obj.payload)


def test_share_before_auto_chose_sends_the_object_once_to_processes() -> None:
    _Counted.pickled = 0
    big = _Counted(bytes(1_000_000))
    with anypool.Pool() as pool:
        handle = pool.share(big)
        assert handle.value is big  # type: ignore[attr-defined]
        # current_worker() in the task: processes, chosen before any task runs
        out = list(pool.map(_size_in_worker, range(20), [handle] * 20, chunksize=1))
        assert _chosen(pool).name == "process"
    assert out == [("process", 1_000_000)] * 20
    assert _Counted.pickled == 1  # into shared memory once, not once per task (was 20)


def test_share_before_auto_chose_is_the_object_itself_in_this_process() -> None:
    import functools

    big = [1, 2, 3]
    with anypool.Pool() as pool:
        handle = pool.share(big)

        def same(x: int, obj: object) -> bool:
            return obj is big

        assert all(pool.map(same, range(200), [handle] * 200))
        assert _chosen(pool).name in ("serial", "thread")
        assert all(pool.map(functools.partial(lambda o, x: o is big, handle), range(50)))
        assert pool.submit(same, 0, handle).result(timeout=30)


# -- issue 13 item 5: processes start while auto measures ----------------------------------


def _cpu_for(seconds: float) -> float:
    import time

    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    return seconds


def _waits_for(seconds: float) -> float:
    import time

    time.sleep(seconds)  # waiting, not synchronisation: the work auto measures
    return seconds


def test_long_cpu_bound_first_input_starts_the_process_pool_meanwhile() -> None:
    from anypool._backends import _auto

    _auto._OBSERVED_STARTUP.pop(__name__, None)
    with anypool.Pool() as pool:
        assert list(pool.map(_cpu_for, [0.3] * 6)) == [0.3] * 6
        assert _chosen(pool).name == "process", pool.explain()
        assert "its workers started while auto measured" in pool.explain()
    # the empty chunks that started the workers timed their start-up
    assert _auto._OBSERVED_STARTUP[__name__] > 0


def test_long_waiting_first_input_starts_no_process() -> None:
    with anypool.Pool() as pool:
        backend: Any = pool._backend
        assert list(pool.map(_waits_for, [0.2] * 6)) == [0.2] * 6
        assert _chosen(pool).name == "thread"
        assert backend._prestarted is None
        assert "started while auto measured" not in pool.explain()


_FINALIZED_HERE: list[int] = []


def _note_finalized() -> None:
    import os

    _FINALIZED_HERE.append(os.getpid())


def test_a_finalizer_makes_the_map_stateful_too() -> None:
    _FINALIZED_HERE.clear()
    with anypool.Pool(finalizer=_note_finalized) as pool:
        assert list(pool.map(abs, range(-5, 5))) == [abs(x) for x in range(-5, 5)]
        assert "the pool has a finalizer=" in pool.explain()
        assert _chosen(pool).name == "process"
    assert _FINALIZED_HERE == []  # it ran in the workers only, not on a thread of the caller


def test_time_waiting_for_a_cpu_is_left_out_and_said() -> None:
    import sys

    from anypool._backends import _auto

    if sys.platform.startswith("linux"):
        waited = _auto._runqueue_wait()
        assert waited is not None
        assert waited >= 0
    d = _auto.Decision(
        "process",
        2,
        "r",
        items_measured=1,
        wall_per_item=0.3,
        cpu_per_item=0.29,
        cpu_wait_per_item=0.8,
    )
    assert "leaving out 800.0 ms per item spent waiting for a CPU" in d.explain()
    assert "97% of it on CPU" in d.explain()
