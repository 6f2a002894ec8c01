"""The run-observer interface: what the engine and the backends report, on real backends.

Tracing and the ``debug=True`` checks observe runs through ``_observe.RunObserver`` alone;
these tests drive a map with an observer of their own beside the tracer and check that each
hook is called with what it promises.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import pytest

import anypool
from anypool._core._engine import MapOptions, MapRun, run_sync
from anypool._core._observe import RunObserver, RunObservers, observer_of
from anypool._core._tasks import Retry, TracedRetry
from anypool._core._tracing import RunRecorder
from anypool.checks import CPUBoundInThreadsWarning


def die_on_three(x: int) -> int:
    if x == 3:
        os._exit(3)
    return x


class Log(RunObserver):
    """Records every call of every hook (thread-safe: hooks run on several threads)."""

    def __init__(self, times_calls: bool = False) -> None:
        self.times = times_calls
        self.calls: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    @property  # type: ignore[override]
    def times_calls(self) -> bool:  # per instance here; a ClassVar on real observers
        return self.times

    def _log(self, name: str, value: Any) -> None:
        with self.lock:
            self.calls.append((name, value))

    def chunk_submitted(self, fut: cf.Future[Any], base: int, items: Sequence[Any]) -> None:
        self._log("submitted", (base, len(items)))

    def chunk_done(self, fut: cf.Future[Any]) -> None:
        assert fut.done()
        self._log("done", fut.exception() is None)

    def chunk_started(self, items: Sequence[Any], worker: tuple[Any, ...], at: float) -> None:
        self._log("started", worker[0])

    def chunk_lost(
        self,
        fut: cf.Future[Any],
        n: int,
        outcome: str,
        worker: tuple[Any, ...],
        start: float,
        end: float,
        error: str | None,
        attempt: int = 1,
    ) -> None:
        self._log("lost", (n, outcome, worker[0]))

    def named(self, name: str) -> list[Any]:
        return [v for n, v in self.calls if n == name]


def _run(pool: anypool.Pool, fn: Any, n: int, observers: list[RunObserver]) -> list[Any]:
    run = MapRun(
        pool._backend,
        fn,
        range(n),
        MapOptions(chunksize=2, errors="collect"),
        ordered=True,
        total=n,
        flat=True,
        observer=RunObservers(observers),
    )
    return [r for chunk in run_sync(run, None) for r in chunk]


def test_the_engine_reports_each_chunk_submitted_and_handed_out() -> None:
    log = Log()
    with anypool.Pool("thread", workers=2) as pool:
        out = _run(pool, abs, 5, [log])
    assert [r.value for r in out] == [0, 1, 2, 3, 4]
    assert sorted(log.named("submitted")) == [(0, 2), (2, 2), (4, 1)]
    assert log.named("done") == [True, True, True]
    assert log.named("started") == []  # nobody times calls: the retry is the plain one


def test_an_observer_that_times_calls_hears_where_chunks_start_with_the_tracer() -> None:
    log = Log(times_calls=True)
    trace = anypool.Trace()
    with anypool.Pool("thread", workers=2) as pool:
        recorder = RunRecorder((trace,), pool, abs, "map")
        _run(pool, abs, 4, [recorder, log])
    assert log.named("started") == ["thread", "thread"]
    assert sorted(r.position for r in trace.tasks) == [0, 1, 2, 3]


def test_a_crash_in_a_process_worker_is_reported_as_lost_to_every_observer() -> None:
    log = Log(times_calls=True)
    trace = anypool.Trace()
    with anypool.Pool("process", workers=1) as pool:
        recorder = RunRecorder((trace,), pool, die_on_three, "map")
        out = _run(pool, die_on_three, 4, [recorder, log])
    assert [r.ok for r in out] == [True, True, True, False]
    assert isinstance(out[3].error, anypool.WorkerCrashed)
    lost = log.named("lost")
    assert lost
    assert all(worker == "process" for _, _, worker in lost)
    assert lost[-1][1] == "crash"
    assert [r.outcome for r in trace.tasks if r.position == 3][-1] == "crash"


def test_retry_settings_carry_the_observers_only_when_one_times_calls() -> None:
    plain = Retry(attempts=2)
    quiet = RunObservers([Log()])
    assert quiet.retry_for(plain) is plain
    assert observer_of(plain) is None
    timed = RunObservers([Log(), Log(times_calls=True)])
    sent = timed.retry_for(plain)
    assert type(sent) is TracedRetry
    assert sent.attempts == 2
    assert observer_of(sent) is timed
    assert timed.retry_for(plain) is sent  # cached: backends cache the pickled retry by id


def test_debug_checks_and_the_tracer_observe_the_same_map(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anypool.checks import _runtime

    fed: list[int] = []
    real_add = _runtime.ThreadCPURun.add

    def spy(self: _runtime.ThreadCPURun, cpu_seconds: float, tasks: int) -> None:
        fed.append(tasks)
        real_add(self, cpu_seconds, tasks)

    monkeypatch.setattr(_runtime.ThreadCPURun, "add", spy)
    monkeypatch.setattr(_runtime, "_is_gil_enabled", lambda: True)
    monkeypatch.setattr(_runtime, "_available_cpus", lambda: 2)
    out = tmp_path / "run.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CPUBoundInThreadsWarning)  # the load here decides it
        with anypool.Pool("thread", workers=2, debug=True, trace=str(out)) as pool:
            assert list(pool.map(abs, range(-40, 0), chunksize=4)) == list(range(40, 0, -1))
    assert fed == [4] * 10  # the debug check was fed every chunk, by the same engine hooks
    assert sorted(r.position for r in anypool.Trace.load(out).tasks) == list(range(40))


def test_backends_report_through_the_interface_only() -> None:
    import ast
    from pathlib import Path

    import anypool._backends

    here = Path(anypool._backends.__file__).parent
    for path in sorted(here.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            f"{node.module or ''}.{a.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            for a in node.names
        } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        imported |= {m.rsplit(".", 1)[0] for m in imported}
        assert not any(m.endswith("_tracing") for m in imported), path.name
        assert not any(m.endswith("checks._runtime") for m in imported), path.name
