"""The guide's six example files run, and teach what they say they teach.

Each example runs once as a subprocess with ``--fast`` (as a user would run it); its ``FACT
name=<json>`` lines are the facts checked here. A few functions are also imported and called
directly (the files are loaded by path: their names start with digits).

Facts that depend on a backend still being written (process, asyncio) or on ``backend="auto"``
are "skipped" in the output until that backend exists; these tests then expect "skipped", and
expect the real answer as soon as the backend is there.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import time
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import anypool

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = [
    "01_threading_basics",
    "02_multiprocessing_basics",
    "03_asyncio_basics",
    "04_synchronization",
    "05_advanced_concurrency",
    "06_practical_examples",
]
SKIPPED = "skipped"


def has_backend(name: str) -> bool:
    try:
        anypool.get_backend(name)
    except (LookupError, ImportError):
        return False
    return True


def auto_supported() -> bool:
    if "auto" in anypool.get_all_backends():
        return True
    try:
        anypool.map(abs, [], backend="auto")
    except LookupError:
        return False
    return True


def expect(value: object, expected: object, available: bool) -> None:
    """An anypool fact: the expected answer once its backend exists, "skipped" before."""
    assert value == (expected if available else SKIPPED)


class Run:
    def __init__(self, proc: subprocess.CompletedProcess[str], seconds: float) -> None:
        self.proc = proc
        self.seconds = seconds
        self.facts: dict[str, Any] = {}
        for line in proc.stdout.splitlines():
            if line.startswith("FACT "):
                name, _, value = line.removeprefix("FACT ").partition("=")
                assert name not in self.facts, f"fact {name} printed twice"
                self.facts[name] = json.loads(value)

    def __getitem__(self, name: str) -> Any:
        return self.facts[name]


@cache
def run(name: str) -> Run:
    """Run examples/<name>.py --fast once (warnings are errors, as in the test suite)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / f"{name}.py"), "--fast"],
        capture_output=True,
        text=True,
        timeout=45,
        cwd=EXAMPLES.parent,
    )
    return Run(proc, time.perf_counter() - t0)


@cache
def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- every example ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_runs_cleanly_with_fast(name: str) -> None:
    r = run(name)
    assert r.proc.returncode == 0, r.proc.stderr
    assert "Traceback" not in r.proc.stderr
    assert "Warning" not in r.proc.stderr, r.proc.stderr
    assert len(r.facts) >= 5
    print(f"{name}: {r.seconds:.1f}s")  # the budget is 10 s on a quiet machine; see -s


@pytest.mark.parametrize("name", NAMES)
def test_has_guard_and_fast_flag(name: str) -> None:
    source = (EXAMPLES / f"{name}.py").read_text()
    assert 'if __name__ == "__main__":' in source
    assert '"--fast"' in source


# --- 01 threading -----------------------------------------------------------------------------
def test_01_threads_run_and_overlap() -> None:
    r = run("01_threading_basics")
    assert r["basic_numbers"] == ["0", "1", "2", "3", "4"]
    assert r["basic_letters"] == ["A", "B", "C", "D", "E"]
    assert r["class_ran"] == ["Thread-1", "Thread-2"]
    # overlapping sleeps overlap: every thread started before any finished
    assert r["basic_overlapped"] is True
    assert r["args_overlapped"] is True
    assert r["class_overlapped"] is True
    assert r["args_anypool_overlapped"] is True
    assert r["args_anypool_results"] == ["Alice finished", "Bob finished"]


def test_01_pool_results_in_order_and_bounded() -> None:
    r = run("01_threading_basics")
    expected = [f"Task {i} completed" for i in range(5)]
    assert r["pool_stdlib_results"] == expected
    assert r["pool_anypool_results"] == expected
    assert r["pool_submit_results"] == expected
    assert 1 <= r["pool_stdlib_max_running"] <= 3
    assert 1 <= r["pool_anypool_max_running"] <= 3


def test_01_mistakes_and_best_practices() -> None:
    r = run("01_threading_basics")
    assert r["submit_after_with_raises"] is True
    assert r["without_join"] == []  # mistake 3: results read before the thread finished
    assert r["after_join"] == ["done"]
    assert r["threads_by_hand"] == 200  # mistake 5: one thread per item ...
    assert r["stdlib_pool_threads"] <= 10  # ... vs a pool of 10
    assert r["anypool_workers"] <= 10
    assert r["state_queries"] == 100
    assert 1 <= r["state_connections_opened"] <= 4  # once per worker, not per task


def test_01_forgetting_join_imported() -> None:
    r = load("01_threading_basics").forgetting_join()
    assert r == {"without_join": [], "after_join": ["done"], "anypool": ["DONE"]}


# --- 02 multiprocessing -----------------------------------------------------------------------
def test_02_processes() -> None:
    r = run("02_multiprocessing_basics")
    process = has_backend("process")
    assert r["basic_exitcodes"] == [0, 0]
    assert r["basic_overlapped"] is True
    assert r["pool_stdlib"] == [1, 4, 9, 16, 25]
    expect(r["pool_anypool"], [1, 4, 9, 16, 25], process)


def test_02_sharing_data() -> None:
    r = run("02_multiprocessing_basics")
    expected = r["share_expected"]
    assert expected == 800
    assert r["share_locked"] == [expected, expected]  # the fixed version is exact
    expect(r["share_anypool"], expected, has_backend("process"))


def test_02_cpu_bound_same_answers() -> None:
    r = run("02_multiprocessing_basics")
    serial = r["cpu_serial"]
    assert len(serial) == 4
    assert r["cpu_threads"] == serial
    assert r["cpu_processes"] == serial
    expect(r["cpu_anypool"], serial, has_backend("process"))


# --- 03 asyncio -------------------------------------------------------------------------------
def test_03_asyncio() -> None:
    r = run("03_asyncio_basics")
    assert r["basic_order"] == ["hello Alice", "goodbye Alice", "hello Bob", "goodbye Bob"]
    assert r["gather_results"] == ["Data from url1", "Data from url2", "Data from url3"]
    assert r["gather_finish_order"] == ["url2", "url1", "url3"]  # results keep input order
    assert r["gather_overlapped"] is True
    assert r["tasks_results"] == ["Result from A", "Result from B", "Result from C"]
    assert r["tasks_started_before_await"] == 0
    assert r["tasks_started_after_one_turn"] == 3
    assert r["tasks_overlapped"] is True
    assert r["ctx_log"] == ["acquire", "use", "release"]
    assert r["ctx_log_on_error"] == ["acquire", "use", "release", "caught"]
    assert r["gen_received"] == [0, 1, 2, 3, 4]
    urls = [f"Data from url{i}" for i in range(1, 6)]
    assert r["io_stdlib"] == urls
    expect(r["io_anypool"], urls, has_backend("asyncio"))
    expect(r["sync_anypool"], ["Data from url1", "Data from url2"], has_backend("asyncio"))


def test_03_blocking_the_loop() -> None:
    r = run("03_asyncio_basics")
    assert r["blocking_overlapped"] is False  # mistake 4: time.sleep serialises coroutines
    assert r["nonblocking_overlapped"] is True
    assert r["amap_threads_loop_free"] is True


def test_03_imported_blocking_in_async() -> None:
    r = asyncio.run(load("03_asyncio_basics").blocking_in_async(0.01))
    assert r == {
        "blocking_overlapped": False,
        "nonblocking_overlapped": True,
        "amap_threads_loop_free": True,
    }


# --- 04 synchronization -----------------------------------------------------------------------
def test_04_lock() -> None:
    r = run("04_synchronization")
    assert r["counter_with_lock"] == 200_000
    assert r["counter_without_lock"] <= 200_000  # possibly wrong; never asserted to be wrong
    assert r["counter_with_a_wide_race"] <= 2_000
    assert r["anypool_counter"] == 200_000


def test_04_semaphore_never_lets_a_third_in() -> None:
    r = run("04_synchronization")
    assert r["semaphore_done"] == [f"Thread-{i}" for i in range(5)]
    assert 1 <= r["semaphore_max_inside"] <= 2
    assert 1 <= r["anypool_max_inside"] <= 2


def test_04_poison_pill_and_event() -> None:
    r = run("04_synchronization")
    assert r["queue_consumed"] == [0, 1, 2, 3, 4]  # every item, in order
    assert r["queue_consumer_alive"] is False  # the pill ended the consumer
    assert r["anypool_consumed"] == [0, 10, 20, 30, 40]
    log = r["event_log"]
    assert log.index("Setting event...") < log.index("Event received!")
    assert r["anypool_event_received"] == [True, True]


def test_04_imported() -> None:
    ex = load("04_synchronization")
    assert ex.counter_with_lock(100_000) == 200_000
    assert ex.anypool_counter(1_000) == 2_000
    sem = ex.semaphores(0.01)
    assert sem["max_inside"] <= 2
    assert sem["anypool_max_inside"] <= 2
    q = ex.queues(0.0)
    assert q["consumed"] == [0, 1, 2, 3, 4]
    assert q["consumer_alive"] is False
    ev = ex.events(0.01)
    assert ev["anypool_done_before_set"] == [False, False]
    assert ev["anypool_received"] == [True, True]


# --- 05 advanced ------------------------------------------------------------------------------
def test_05_bounded_concurrency() -> None:
    r = run("05_advanced_concurrency")
    for key in ("asyncio_semaphore", "thread_pool", "anypool_threads"):
        assert 1 <= r[f"bounded_{key}"] <= 3
    if has_backend("asyncio"):
        assert 1 <= r["bounded_anypool_asyncio"] <= 3
    else:
        assert r["bounded_anypool_asyncio"] == SKIPPED


def test_05_timeouts() -> None:
    r = run("05_advanced_concurrency")
    assert r["timeout_stdlib_timed_out"] is True
    assert r["timeout_stdlib_still_running"] is True  # waiting less does not stop the task
    assert r["timeout_asyncio_wait_for"] == ["cleaned up", "timed out"]
    assert r["timeout_anypool_task_timeout"] == [
        "finished in time (0)",
        "TaskTimeoutError",
        "finished in time (0)",
    ]
    assert r["timeout_anypool_map_collect"] == r["timeout_anypool_task_timeout"]


def test_05_cancellation() -> None:
    r = run("05_advanced_concurrency")
    assert r["cancel_stdlib_cancelled"] == [False, True, True, True, True]
    assert r["cancel_anypool_cancelled"] == [False, True, True, True, True]
    assert r["cancel_asyncio_cancel_running"] == [
        "got CancelledError",
        "cleaned up",
        "task cancelled",
    ]
    assert r["cancel_anypool_imap_first"] == [0, 1, 2]
    assert 3 <= r["cancel_anypool_imap_ran"] < 100  # bounded read-ahead, then cancelled


def test_05_exceptions() -> None:
    r = run("05_advanced_concurrency")
    values = [0, 2, 4, 6, 8, 12, 14, 16, 18]
    assert r["errors_stdlib"] == [*values[:5], "Error: Error!", *values[5:]]
    assert r["errors_collect_values"] == values
    assert r["errors_collect_failed"] == [5]
    assert r["errors_collect_traceback_names_task"] is True
    assert r["errors_raise_type"] == "ValueError"
    assert any("input #5" in note for note in r["errors_raise_notes"])
    expect(r["errors_process_cause"], "RemoteTraceback", has_backend("process"))
    if has_backend("process"):
        assert r["errors_process_cause_names_task"] is True
    assert r["errors_retry_results"] == [0, 1, 2, 3, 4, 5]
    assert r["errors_retry_attempts"] == [2, 1, 1, 2, 1, 1]


def test_05_pipelines() -> None:
    r = run("05_advanced_concurrency")
    assert r["pipeline_threads_collected_sorted"] is True  # nothing lost or duplicated
    assert r["pipeline_threads_threads_alive"] == 0  # the pills ended every stage
    assert r["pipeline_anypool_result_ok"] is True  # the Pipeline keeps the order


def test_05_imported_cancellation_and_pipelines() -> None:
    ex = load("05_advanced_concurrency")
    r = ex.cancellation()
    assert r["stdlib_cancelled"] == r["anypool_cancelled"] == [False, True, True, True, True]
    assert ex.pipeline_threads(200)["collected_sorted"] is True
    assert ex.pipeline_anypool(200) == {"result_ok": True}


# --- 06 practical -----------------------------------------------------------------------------
def test_06_http() -> None:
    r = run("06_practical_examples")
    for way in ("serial", "threads", "asyncio", "run_in_executor", "anypool_threads"):
        assert r[f"http_{way}_ok"] is True, way  # every page, in order
    assert r["http_serial_max_in_flight"] == 1
    for way in ("threads", "asyncio", "run_in_executor", "anypool_threads"):
        assert 1 <= r[f"http_{way}_max_in_flight"] <= 8, way
    expect(r["http_anypool_asyncio_ok"], True, has_backend("asyncio"))


def test_06_primes() -> None:
    r = run("06_practical_examples")
    assert r["primes_expected"] == 17_984
    for way in ("serial", "threads", "processes"):
        assert r[f"primes_{way}"] == 17_984, way
    expect(r["primes_anypool_process"], 17_984, has_backend("process"))


def test_06_auto() -> None:
    r = run("06_practical_examples")
    if auto_supported():
        assert r["auto_pages_ok"] is True
        assert r["auto_primes"] == 17_984
    else:
        assert r["auto"] == SKIPPED


def test_06_imported_server_and_async_fetch() -> None:
    ex = load("06_practical_examples")
    with ex.serve(0.0) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/page/7"
        assert ex.fetch(url) == ex.page_body(7)
        assert asyncio.run(ex.fetch_async(url)) == ex.page_body(7)
        with pytest.raises(OSError, match="404"):
            asyncio.run(ex.fetch_async(url.replace("/page/7", "/nothing")))
    assert ex.count_primes(0, 100) == 25
