"""The benchmark workloads compute what they should (fast; no timing assertions).

Speed is measured by ``benchmarks/run.py`` (``make bench``), never in tests.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import workloads as w  # noqa: E402


def test_sq_and_asq() -> None:
    assert [w.sq(x) for x in range(5)] == [0, 1, 4, 9, 16]
    assert w.sq(-3) == 9
    assert asyncio.run(w.asq(7)) == 49


@pytest.mark.parametrize("n", [0, 1, 2, 3, 10, 1000])
def test_burn_matches_closed_form(n: int) -> None:
    assert w.burn(n) == sum(i * i for i in range(n)) == w.burn_expected(n)


def test_calibrate_burn_returns_a_usable_loop_count() -> None:
    n, per_call = w.calibrate_burn(target_s=0.0002, rounds=3)
    assert n >= 1
    assert per_call > 0
    assert w.burn(n) == w.burn_expected(n)


def test_sleep_tasks_return_their_input() -> None:
    assert w.sleep_task(5) == 5
    assert asyncio.run(w.async_sleep_task(6)) == 6


def test_burn_then_sleep_returns_the_burn() -> None:
    assert w.burn_then_sleep(100) == w.burn_expected(100)
    assert pickle.loads(pickle.dumps(w.burn_then_sleep)) is w.burn_then_sleep


def test_counting_range_counts_pulls_and_has_no_len() -> None:
    src = w.CountingRange(5)
    assert not hasattr(src, "__len__")
    assert next(src) == 0
    assert next(src) == 1
    assert src.pulled == 2
    assert list(src) == [2, 3, 4]
    assert src.pulled == 5
    assert list(src) == []
    assert list(w.lazy_ints(4)) == [0, 1, 2, 3]


def test_worker_queue_map_is_ordered_and_complete() -> None:
    items = list(range(50))
    out = asyncio.run(w.worker_queue_map(w.asq, iter(items), workers=7))
    assert out == [x * x for x in items]
    assert asyncio.run(w.worker_queue_map(w.asq, [], workers=3)) == []


def test_worker_queue_iter_delivers_every_result_once() -> None:
    got: list[int] = []
    asyncio.run(w.worker_queue_iter(w.asq, w.CountingRange(40), 5, got.append))
    assert sorted(got) == [x * x for x in range(40)]


def test_gather_semaphore_map_is_ordered() -> None:
    out = asyncio.run(w.gather_semaphore_map(w.asq, range(30), limit=4))
    assert out == [x * x for x in range(30)]


def test_workload_functions_pickle_by_reference() -> None:
    # process pools send the functions by name: they must be importable module-level ones
    for fn in (w.sq, w.burn, w.sleep_task, w.asq, w.async_sleep_task):
        assert pickle.loads(pickle.dumps(fn)) is fn


def test_pipeline_stages_and_the_hand_written_pipeline() -> None:
    import multiprocessing as mp

    items = [(i, 50) for i in range(30)]
    expected = w.pipe_expected(items)
    assert expected == [w.burn(50) + i for i in range(30)]
    assert [w.pipe_io(w.pipe_cpu(item)) for item in items] == expected
    assert asyncio.run(w.apipe_io(3)) == 3
    got = w.handwritten_pipeline(items, io_workers=3, cpu_workers=2, ctx=mp.get_context("spawn"))
    assert sorted(got) == sorted(expected)  # every item once (unordered)


def _run_once(runner: object) -> object:
    gen = runner()  # type: ignore[operator]
    call = next(gen)
    try:
        return call()
    finally:
        gen.close()


@pytest.mark.parametrize("backend", ["thread", "process", "asyncio"])
@pytest.mark.parametrize(
    "kind", ["pool.Counter", "pool.Lock + pool.Value", "Manager dict + Manager lock"]
)
def test_counter_runners_count_every_increment(backend: str, kind: str) -> None:
    import sync_bench as sb

    assert _run_once(sb.r_counter(backend, kind, 2, 50)) == 100


@pytest.mark.parametrize("kind", ["bytes", "object"])
@pytest.mark.parametrize("shared", [True, False])
def test_share_runners_see_the_whole_object(kind: str, shared: bool) -> None:
    import sync_bench as sb

    assert _run_once(sb.r_share("process", kind, 1, 4, shared, 2)) == [1_000_000] * 4


def test_dask_section_runs_in_quick_mode(capsys: pytest.CaptureFixture[str]) -> None:
    dask = pytest.importorskip("dask")
    import dask_overhead
    import run

    cfg = run.parse(["--only", "dask_overhead", "--quick"])
    assert cfg.sections == ["x"]
    cfg.n_x = 40  # a smoke run: every runner once, results checked, no timing claims
    run.AVAILABLE.update(run.anypool_backends())
    # the benchmark's own LocalCluster, not the test session's (whose workers cannot import
    # benchmarks/workloads.py)
    with dask.config.set({"scheduler-address": None}):
        table = dask_overhead.bench(cfg)
    text = table.render()
    assert "Pool('dask', 2).imap (auto chunks)" in text
    assert "start-up: Pool('dask', 2)" in text
    assert "error" not in text.lower()
    assert "TIMEOUT" not in text


def test_model_eval_is_deterministic_per_input() -> None:
    pytest.importorskip("numpy")
    a = [w.model_eval(i) for i in range(3)]
    assert a == [w.model_eval(i) for i in range(3)]
    assert len(set(a)) == 3


def test_scipy_task_and_first_call_script() -> None:
    pytest.importorskip("scipy")
    import subprocess

    import scipy_workloads as sw

    assert sw.sig_expected(range(3)) == [sw.sig_task(i) for i in range(3)]
    out = subprocess.run(
        [sys.executable, str(BENCH / "first_call_program.py"), "serial"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout.splitlines()[-1])["s"] >= 0


@pytest.mark.parametrize("workload", ["numerical", "stateful"])
def test_mpire_workloads_agree_with_serial(workload: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """anypool's way (share / initializer + broadcast) gives the serial result, on small sizes."""
    pytest.importorskip("scipy")
    import mpire_workloads as mw

    monkeypatch.setattr(mw, "IMAGE", 64)
    monkeypatch.setattr(mw, "FILTERS", 4)
    monkeypatch.setattr(mw, "TASKS", 24)  # sizes the parent uses (workers import their own)
    fn = mw.numerical if workload == "numerical" else mw.stateful
    _, expected = fn("serial")
    _, got = fn("anypool")
    assert got == pytest.approx(expected, rel=1e-9)
    assert expected != 0


def test_every_section_module_is_registered_once_with_its_name() -> None:
    import run

    helpers = {
        "run",
        "runners",
        "harness",
        "workloads",
        "probe",
        "sync_bench",
        "scipy_workloads",
        "first_call_program",
        "faults_soak",
        "asyncio_workers",
        "mpire_workloads",  # the implementations behind mpire_numerical and mpire_stateful
        "memory_bench",  # behind memory_limits_cost and memory_soak
    }
    on_disk = {p.stem for p in BENCH.glob("*.py")} - helpers
    assert set(run.SECTIONS) == on_disk  # a new section module must be added to the registry
    keys = [run.MODULES[k].KEY for k in run.MODULES]
    assert len(keys) == len(set(keys)) == len(run.SECTIONS)
    for key, mod in run.MODULES.items():
        assert key == mod.KEY
        assert len(key) == 1
        assert Path(mod.__file__).stem == mod.NAME
        assert callable(mod.bench)
        assert (mod.__doc__ or "").strip().startswith(f"({key}) "), mod.NAME


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        ("s,a,b", ["s", "a", "b"]),
        ("startup,cpu_speedup", ["s", "b"]),
        ("million_tasks, u", ["m", "u"]),
        ("", None),  # everything, in the registry's order
    ],
)
def test_only_takes_keys_and_module_names(only: str, expected: list[str] | None) -> None:
    import run

    cfg = run.parse(["--only", only, "--quick"])
    assert cfg.sections == (expected if expected is not None else list(run.MODULES))
    # every section's sizes were set by its configure()
    assert cfg.n_a == 50_000
    assert cfg.n_o == 40
    assert cfg.timeout == 90.0


def test_only_rejects_an_unknown_workload(capsys: pytest.CaptureFixture[str]) -> None:
    import run

    with pytest.raises(SystemExit):
        run.parse(["--only", "startup,no_such_thing"])
    err = capsys.readouterr().err
    assert "no_such_thing" in err
    assert "cpu_speedup" in err  # the message lists the choices


def test_a_section_runs_through_the_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import run
    import sync_primitives

    sizes = sync_primitives.configure

    def tiny(cfg: Any) -> None:
        sizes(cfg)
        cfg.n_k = 100  # a smoke run: results checked, no timing claims

    monkeypatch.setattr(sync_primitives, "configure", tiny)
    out = tmp_path / "bench.md"
    assert run.main(["--only", "sync_primitives", "--reps", "1", "--markdown", str(out)]) == 0
    text = out.read_text()
    assert "workloads: k" in text
    assert "(k)" in text
    assert "pool.Counter" in text
    assert "#### Targets" in text
    assert "ERROR" not in text
    assert "TIMEOUT" not in text
