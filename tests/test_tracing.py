"""Tracing: one record per task attempt, on every backend; exports and the CLI."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import anypool
from anypool._cli import main as cli_main
from anypool._core._abc import Backend, WorkerSpec
from anypool._core._engine import MapOptions, MapRun, run_sync
from anypool._core._observe import RunObservers
from anypool._core._tasks import ChunkResult, FlatItems, Retry, TracedRetry, hostname, run_chunk
from anypool._core._tracing import RunRecorder, render_html
from conftest import adapt


def square_or_fail(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad input {x}")
    return x * x


def flaky_once(x: int) -> int:
    """Fails the first time each worker sees ``x``, then succeeds (per-worker state)."""
    seen = anypool.current_worker().state.setdefault("seen", set())
    if x not in seen:
        seen.add(x)
        raise OSError(f"flaky {x}")
    return x


def rendezvous(x: int, fifo: str) -> int:
    """Input 0 and input 1 block until both run: they must be on two different workers."""
    if x == 0:
        with open(fifo) as f:
            f.read()
    elif x == 1:
        with open(fifo, "w") as f:
            f.write("x")
    return os.getpid()


def die(x: int) -> int:
    os._exit(3)


def hang(x: int) -> int:
    threading.Event().wait()
    return x


# -- records per backend -------------------------------------------------------------------
def test_one_record_per_input_with_positions_and_outcomes(backend: str) -> None:
    with anypool.trace() as t:
        out = anypool.map(
            adapt(backend, square_or_fail), range(10), backend=backend, workers=2, errors="collect"
        )
    assert [r.ok for r in out] == [i != 3 for i in range(10)]
    tasks = t.tasks
    assert sorted(r.position for r in tasks) == list(range(10))
    by_pos = {r.position: r for r in tasks}
    assert {p for p, r in by_pos.items() if r.outcome == "error"} == {3}
    assert by_pos[3].error is not None
    assert "ValueError: bad input 3" in by_pos[3].error
    assert all(r.outcome == "ok" and r.error is None for p, r in by_pos.items() if p != 3)
    assert all(r.backend == backend for r in tasks)
    assert all(r.fn == "square_or_fail" and r.attempt == 1 for r in tasks)
    assert all(r.start <= r.end for r in tasks)
    assert all(r.pool == 1 and r.run == 1 for r in tasks)
    assert [run.backend for run in t.runs] == [backend]


def test_a_retried_attempt_is_its_own_record(backend: str) -> None:
    with anypool.trace() as t:
        out = anypool.map(
            adapt(backend, flaky_once),
            range(4),
            backend=backend,
            workers=1,
            retries=1,
            retry_on=OSError,
        )
    assert out == [0, 1, 2, 3]
    tasks = t.tasks
    assert len(tasks) == 8
    for pos in range(4):
        attempts = sorted((r.attempt, r.outcome) for r in tasks if r.position == pos)
        assert attempts == [(1, "retry"), (2, "ok")]
    retried = [r for r in tasks if r.outcome == "retry"]
    assert all(r.error is not None and r.error.startswith("OSError: flaky") for r in retried)


def test_errors_raise_mode_records_the_failing_input(backend: str) -> None:
    with anypool.trace() as t, pytest.raises(ValueError, match="bad input 3"):
        anypool.map(adapt(backend, square_or_fail), range(6), backend=backend, chunksize=1)
    assert any(r.position == 3 and r.outcome == "error" for r in t.tasks)


def test_process_records_carry_distinct_worker_pids(tmp_path: Path) -> None:
    fifo = tmp_path / "meet"
    os.mkfifo(fifo)
    with anypool.trace() as t:
        pids = anypool.map(
            rendezvous, [0, 1], [str(fifo)] * 2, backend="process", workers=2, chunksize=1
        )
    assert len(set(pids)) == 2
    tasks = t.tasks
    assert {r.pid for r in tasks} == set(pids)
    assert len({r.worker for r in tasks}) == 2
    assert all(str(r.pid) in r.worker for r in tasks)


def test_a_crashed_worker_is_recorded_in_the_parent() -> None:
    with anypool.trace() as t:
        out = anypool.map(die, [1], backend="process", workers=1, retries=1, errors="collect")
    assert isinstance(out[0].error, anypool.WorkerCrashed)
    tasks = sorted(t.tasks, key=lambda r: r.attempt)
    assert [(r.attempt, r.outcome) for r in tasks] == [(1, "retry"), (2, "crash")]
    assert all(r.pid > 0 and r.backend == "process" for r in tasks)
    assert tasks[0].pid != tasks[1].pid  # the retry ran on a fresh worker
    assert tasks[1].error is not None
    assert "exited with code 3" in tasks[1].error


def test_a_process_timeout_is_recorded() -> None:
    with anypool.trace() as t:
        out = anypool.map(hang, [1], backend="process", task_timeout=0.3, errors="collect")
    assert isinstance(out[0].error, anypool.TaskTimeoutError)
    (rec,) = t.tasks
    assert rec.outcome == "timeout"
    assert rec.pid > 0
    assert rec.end > rec.start


async def _hang_async(x: int) -> int:
    await asyncio.Event().wait()
    return x


def test_an_asyncio_timeout_is_recorded() -> None:
    with anypool.trace() as t:
        out = anypool.map(
            _hang_async, [1, 2], backend="asyncio", task_timeout=0.2, errors="collect"
        )
    assert all(isinstance(r.error, anypool.TaskTimeoutError) for r in out)
    assert sorted((r.position, r.outcome) for r in t.tasks) == [(0, "timeout"), (1, "timeout")]


@pytest.mark.allow_leaks  # the timed-out thread is abandoned until the test releases it
def test_a_thread_timeout_is_recorded_on_its_worker() -> None:
    release = threading.Event()

    def wait_for_release(x: int) -> int:
        release.wait(30)
        return x

    try:
        with anypool.trace() as t:
            out = anypool.map(
                wait_for_release, [1], backend="thread", task_timeout=0.2, errors="collect"
            )
    finally:
        release.set()
    assert isinstance(out[0].error, anypool.TaskTimeoutError)
    (rec,) = t.tasks
    assert rec.outcome == "timeout"
    assert rec.worker.endswith("anypool-thread-0")


# -- how tracing is turned on --------------------------------------------------------------
def test_trace_sees_pools_used_from_other_threads() -> None:
    results: list[Any] = []
    with anypool.trace() as t:
        th = threading.Thread(
            target=lambda: results.append(anypool.map(abs, [-1, -2, -3], backend="thread"))
        )
        th.start()
        th.join()
    assert results == [[1, 2, 3]]
    assert sorted(r.position for r in t.tasks) == [0, 1, 2]


class _CallbacksNotYetRun(cf.Future[Any]):
    """A finished future whose done-callbacks have not run yet (they run after set_result
    has woken the waiters; this holds that window open)."""

    def add_done_callback(self, fn: Any) -> None:
        pass


class _InlineBackend(Backend):
    name = "inline-test"

    def start(self) -> None:
        pass

    def submit(self, fn: Any, args: Any, kwargs: Any, *, timeout: float | None = None) -> Any:
        fut = _CallbacksNotYetRun()
        fut.set_running_or_notify_cancel()
        fut.set_result(fn(*args, **kwargs))
        return fut

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        pass

    def effective_workers(self) -> int:
        return 1


class _PoolStub:
    backend = "inline-test"
    workers = 1


def test_a_chunks_records_are_in_the_trace_before_its_results_are_handed_out() -> None:
    t = anypool.Trace()
    backend = _InlineBackend(WorkerSpec(workers=1))
    recorder = RunRecorder((t,), _PoolStub(), abs, "map")
    run = MapRun(
        backend,
        abs,
        range(-5, 0),
        MapOptions(chunksize=2),
        ordered=True,
        total=5,
        flat=True,
        observer=RunObservers([recorder]),
    )
    out = [x for chunk in run_sync(run, None) for x in chunk]
    assert out == [5, 4, 3, 2, 1]
    assert sorted(r.position for r in t.tasks) == [0, 1, 2, 3, 4]


def test_nothing_is_recorded_outside_the_block() -> None:
    with anypool.trace() as t:
        pass
    anypool.map(abs, [1, 2], backend="thread")
    assert t.tasks == []
    assert t.runs == []


def test_map_trace_option_writes_html_and_json(tmp_path: Path) -> None:
    html = tmp_path / "run.html"
    data = tmp_path / "run.json"
    assert anypool.map(abs, [-1, -2], backend="thread", trace=html) == [1, 2]
    assert list(anypool.imap(abs, [-1, -2], backend="thread", trace=str(data))) == [1, 2]
    page = html.read_text()
    assert page.startswith("<!doctype html>")
    assert '"position":1' in page
    events = json.loads(data.read_text())["traceEvents"]
    assert sorted(e["args"]["position"] for e in events if e["ph"] == "X") == [0, 1]


def test_amap_trace_option(tmp_path: Path) -> None:
    async def double(x: int) -> int:
        return 2 * x

    async def main() -> list[int]:
        return await anypool.amap(double, [1, 2, 3], trace=tmp_path / "a.json")

    assert asyncio.run(main()) == [2, 4, 6]
    t = anypool.Trace.load(tmp_path / "a.json")
    assert sorted(r.position for r in t.tasks) == [0, 1, 2]
    assert {r.backend for r in t.tasks} == {"asyncio"}


def test_pool_trace_records_maps_and_submits(tmp_path: Path) -> None:
    rec = anypool.Trace()
    with anypool.Pool("thread", 2, trace=rec) as pool:
        assert list(pool.map(abs, [-1, -2])) == [1, 2]
        assert pool.submit(pow, 2, 5).result() == 32
        assert pool.submit(divmod, 7, b=2).exception() is not None  # a TypeError
    kinds = sorted((r.fn, r.position, r.outcome) for r in rec.tasks)
    assert kinds == [("abs", 0, "ok"), ("abs", 1, "ok"), ("divmod", 1, "error"), ("pow", 0, "ok")]
    assert rec.path is None  # a Trace object given to the pool is not saved by it
    with anypool.Pool("thread", 1, trace=tmp_path / "p.html") as pool:
        pool.submit(abs, -1).result()
    assert (tmp_path / "p.html").exists()


def test_bad_trace_arguments() -> None:
    with pytest.raises(ValueError, match=r"\.html.*\.json"):
        anypool.trace("run.txt")
    with pytest.raises(TypeError, match="trace must be"):
        anypool.Pool("thread", trace=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no path"):
        anypool.trace().save()


def test_untraced_chunks_carry_no_timings() -> None:
    plain = run_chunk(abs, FlatItems([-1, -2]), Retry())
    assert plain.trace is None
    assert plain.values == [1, 2]
    traced = run_chunk(abs, FlatItems([-1, -2]), TracedRetry())
    assert traced.values == [1, 2]
    assert traced.trace is not None
    assert [e[0] for e in traced.trace] == [0, 1]


# -- exports -------------------------------------------------------------------------------
def _sample_trace() -> anypool.Trace:
    with anypool.trace() as t:
        anypool.map(square_or_fail, range(6), backend="thread", workers=2, errors="collect")
    return t


def test_chrome_json_round_trip(tmp_path: Path) -> None:
    t = _sample_trace()
    path = tmp_path / "run.json"
    t.save(path)
    data = json.loads(path.read_text())
    xs = [e for e in data["traceEvents"] if e["ph"] == "X"]
    assert len(xs) == 6
    assert all({"name", "ts", "dur", "pid", "tid", "args"} <= e.keys() for e in xs)
    lanes = {e["args"]["name"] for e in data["traceEvents"] if e.get("name") == "thread_name"}
    assert lanes == {r.worker for r in t.tasks}
    back = anypool.Trace.load(path)
    assert len(back.tasks) == 6
    for a, b in zip(
        sorted(t.tasks, key=lambda r: r.position),
        sorted(back.tasks, key=lambda r: r.position),
        strict=True,
    ):
        assert (a.position, a.outcome, a.worker, a.fn, a.error) == (
            b.position,
            b.outcome,
            b.worker,
            b.fn,
            b.error,
        )
        assert a.start == pytest.approx(b.start, abs=1e-5)
        assert a.end == pytest.approx(b.end, abs=1e-5)
    assert [r.fn for r in back.runs] == ["square_or_fail"]


def test_html_is_self_contained() -> None:
    page = _sample_trace().to_html()
    assert "<script src" not in page
    assert "<link" not in page
    assert "https://" not in page
    assert page.count("http://") == 2  # the SVG namespace only (not fetched)


def _page_data(page: str) -> Any:
    """The data a trace page carries (the JSON in its ``const DATA = ...;`` line)."""
    start = page.index("const DATA = ") + len("const DATA = ")
    return json.loads(page[start : page.index(";\n", start)])


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="worker sizes are measured through /proc here"
)
def test_html_carries_the_worker_events() -> None:
    with anypool.trace() as t:
        # every worker is over 1 MB after its task: each is recycled
        anypool.map(
            abs, [-1, -2], backend="process", workers=1, chunksize=1, max_memory_per_worker="1MB"
        )
        # the watchdog ends the worker during its (endless) task
        anypool.map(
            hang, [1], backend="process", workers=1, task_memory_limit="1MB", errors="collect"
        )
    events = t.worker_events
    assert [e.kind for e in events] == ["recycle", "recycle", "memory_kill"]
    data = _page_data(t.to_html())
    got = data["worker_events"]
    assert [(e["kind"], e["reason"], e["worker"], e["pid"]) for e in got] == [
        (e.kind, e.reason, e.worker, e.pid) for e in events
    ]
    assert "max_memory_per_worker=1.0 MB" in got[0]["reason"]
    assert "task_memory_limit=1.0 MB" in got[2]["reason"]
    # on the lanes of the workers they replaced, at their times (from the first start)
    lanes = {r["worker"]: r for r in data["tasks"]}
    assert all(e["worker"] in lanes for e in got)
    assert lanes[got[2]["worker"]]["outcome"] == "crash"
    t0 = min(r.start for r in t.tasks)
    assert [e["at"] for e in got] == pytest.approx([e.at - t0 for e in events], abs=1e-5)
    assert all(lanes[e["worker"]]["start"] <= e["at"] for e in got)
    # a reason cannot end the page's script: it stays data, the same text
    raw = t.to_dict()
    evil = "</script><b onmouseover=alert(1)>&amp;"
    next(e for e in raw["traceEvents"] if e["ph"] == "i")["args"]["reason"] = evil
    page = render_html(raw)
    assert "</script><b" not in page
    assert _page_data(page)["worker_events"][0]["reason"] == evil
    # a trace without worker events has none
    assert _page_data(_sample_trace().to_html())["worker_events"] == []


def test_trace_show_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "run.json"
    _sample_trace().save(src)
    out = tmp_path / "page.html"
    assert cli_main(["trace", "show", str(src), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert '"fn":"square_or_fail"' in out.read_text()
    assert cli_main(["trace", "show", str(src)]) == 0  # default: next to the JSON
    assert (tmp_path / "run.html").exists()
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert cli_main(["trace", "show", str(bad)]) == 1
    assert "not an anypool trace" in capsys.readouterr().err


def test_summary() -> None:
    t = _sample_trace()
    s = t.summary()
    assert s["tasks"] == 6
    assert s["outcomes"] == {"ok": 5, "error": 1}
    assert sum(w["tasks"] for w in s["workers"]) == 6
    assert all(0 <= w["utilisation"] <= 1.0 + 1e-9 for w in s["workers"])
    assert len(s["slowest"]) == 6
    assert s["slowest"][0]["duration"] >= s["slowest"][-1]["duration"]


def test_a_worker_on_another_host_gets_its_own_lane() -> None:
    t = anypool.Trace()
    rec = RunRecorder((t,), _PoolStub(), abs, "map")
    fut: cf.Future[Any] = cf.Future()
    here = ("dask", 0, 100, "w", hostname())
    there = ("dask", 0, 100, "w", "node-b")  # the same pid on another machine
    rec.watch(fut, 0, [(1,), (2,)])
    fut.set_running_or_notify_cancel()
    fut.set_result(
        ChunkResult(
            [1, 2],
            None,
            0.0,
            0.0,
            [(0, 1, 1.0, 2.0, "ok", None, here), (1, 1, 1.0, 2.0, "ok", None, there)],
        )
    )
    a, b = sorted(t.tasks, key=lambda r: r.position)
    assert a.worker != b.worker
    assert b.worker.endswith("@ node-b")
    assert b.host == "node-b"
