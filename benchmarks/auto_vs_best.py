"""(u) auto (the default backend) against every explicit backend on five workloads, one-shot.

Target: auto <= 1.10x the best explicit backend, per workload, measurement included.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import harness as h
import workloads as w
from harness import Table, fmt, verdict
from runners import AVAILABLE, check_equal, minmax, need_backend, r_anypool_oneshot

KEY = "u"
NAME = "auto_vs_best"


AUTO_TARGET = 1.10  # auto's median may be at most this times the best explicit backend's


def r_auto_oneshot(fn: Callable[[Any], Any], data: list[Any], decisions: list[str]) -> Any:
    """``anypool.map(fn, data)`` with the default backend (auto); each call's decision (its
    INFO log line) is appended to ``decisions``."""

    def run() -> Iterator[Any]:
        need_backend("auto")
        import logging

        import anypool

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                msg = record.getMessage()
                if msg.startswith("auto chose"):
                    decisions.append(msg)

        logger = logging.getLogger("anypool")
        handler, level = Keep(logging.INFO), logger.level
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        try:
            yield lambda: anypool.map(fn, data)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)

    return run


class TableGroup(Table):
    """Several tables with the same columns shown as one section (one per workload)."""

    def __init__(self, title: str, parts: list[Table]) -> None:
        super().__init__(title, parts[0].columns if parts else ["runner"])
        self.parts = parts
        self.rows = [row for p in parts for row in p.rows]

    def render(self) -> str:
        out = [f"### {self.title}", ""] + [p.render() for p in self.parts]
        if self.notes:
            out.extend(f"- {n}" for n in self.notes)
            out.append("")
        return "\n".join(out)


def _decision_notes(decisions: list[str]) -> list[str]:
    """The distinct decisions auto took over the reps: first line, then its estimates."""
    counts: dict[str, int] = {}
    for d in decisions:
        counts[d] = counts.get(d, 0) + 1
    notes = []
    for d, c in counts.items():
        parts = d.split("; measured ", 1)
        first = parts[0]
        rest = ("measured " + parts[1]).split("; estimated ", 1) if len(parts) > 1 else []
        notes.append(f"auto's explain() ({c} of {len(decisions)} calls): {first}")
        if rest:
            notes.append("  " + "; estimated ".join(rest))
    return notes or ["auto made no decision (no log line captured)"]


def bench(cfg: argparse.Namespace) -> Table:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    loops, per_call = w.calibrate_burn(0.001)
    print(f"  calibrated: burn({loops}) takes {per_call * 1e3:.3f} ms", file=sys.stderr)
    n_mixed = 500 if cfg.quick else 1000
    # one-time costs of the interpreter (importing each backend's modules, starting the process
    # backend's fork server) would land on whichever runner goes first in round one
    import anypool

    for b in ("serial", "thread", "process", "asyncio"):
        if AVAILABLE.get(b) is None:
            anypool.map(w.asq if b == "asyncio" else w.sq, range(8), backend=b)
    plain = [("serial", None), ("thread", None), ("thread", 64), ("process", None)]
    # (title, fn, inputs, expected, explicit (backend, workers) runners)
    workloads: list[tuple[str, Any, list[Any], list[Any], list[tuple[str, int | None]]]] = [
        (
            f"tiny: {cfg.n_a:,} x `x*x`",
            w.sq,
            list(range(cfg.n_a)),
            [x * x for x in range(cfg.n_a)],
            plain,
        ),
        (
            f"cpu: {cfg.n_b:,} x ~{per_call * 1e3:.2f} ms pure-Python CPU (`burn({loops})`)",
            w.burn,
            [loops] * cfg.n_b,
            [w.burn_expected(loops)] * cfg.n_b,
            plain,
        ),
        (
            f"io: {cfg.n_c:,} x `time.sleep({w.SLEEP_S})`",
            w.sleep_task,
            list(range(cfg.n_c)),
            list(range(cfg.n_c)),
            plain,
        ),
        (
            f"coroutines: {cfg.n_d:,} x `asyncio.sleep({w.SLEEP_S})`",
            w.async_sleep_task,
            list(range(cfg.n_d)),
            list(range(cfg.n_d)),
            [("asyncio", 1000), ("asyncio", None)],
        ),
        (
            f"mixed: {n_mixed:,} x (`burn({loops})` + `time.sleep({w.MIXED_SLEEP_S})`)",
            w.burn_then_sleep,
            [loops] * n_mixed,
            [w.burn_expected(loops)] * n_mixed,
            plain + [("process", 2 * cpus)],
        ),
    ]
    cols = [
        "runner",
        "median s",
        "min–max s",
        "x best explicit",
        f"target (auto ≤ {AUTO_TARGET:.2f}x best explicit)",
    ]
    parts: list[Table] = []
    for title, fn, data, exp, explicit in workloads:
        key = title.split(":", 1)[0]
        print(f"  -- {key}", file=sys.stderr)
        auto_name = f"{key}: anypool.map(fn, items), auto (default)"
        decisions: list[str] = []
        specs: list[tuple[str, Any]] = [(auto_name, r_auto_oneshot(fn, data, decisions))]
        for backend, workers in explicit:
            if workers is None:
                name = (
                    f"anypool.map(backend='{backend}')"
                    if backend == "serial"
                    else f"anypool.map(backend='{backend}') (default workers: "
                    f"{anypool_default_workers(backend)})"
                )
            else:
                name = f"anypool.map(backend='{backend}', workers={workers})"
            specs.append((name, r_anypool_oneshot(backend, fn, data, workers)))
        ms = h.measure_all(
            [h.Case(name, r, len(data), check_equal(exp)) for name, r in specs],
            reps=cfg.reps,
            timeout=cfg.timeout,
        )
        t = Table(f"(u) {title}: auto against the explicit backends, one-shot", cols)
        explicit_ms = [m for m in ms[1:] if m.ok]
        best = min(explicit_ms, key=lambda m: m.median) if explicit_ms else None
        for i, m in enumerate(ms):
            if not m.ok:
                t.add(*h.failed_row(m, len(cols)))
                continue
            ratio = m.median / best.median if best else None
            target = ""
            if i == 0:
                target = (
                    "no explicit figure"
                    if ratio is None
                    else f"{fmt(ratio)}x: {verdict(ratio <= AUTO_TARGET)}"
                )
            name = m.name + (" ← best explicit" if m is best else "")
            t.add(name, fmt(m.median), minmax(m), fmt(ratio), target)
        for note in _decision_notes(decisions):
            t.note(note)
        parts.append(t)
    group = TableGroup(
        f"(u) auto vs the best explicit backend, same run ({cfg.reps} reps, interleaved)", parts
    )
    group.note(
        "Every row is one `anypool.map` call that starts and stops its own pool, so auto and the "
        "explicit backends pay the same start-up; auto's time includes measuring its first "
        "inputs one at a time. Explicit rows use default workers (the backend's own) and the "
        f"worker counts named; this machine has {cpus} usable CPUs. Before timing, each backend "
        "ran one trivial map (module imports, the process backend's fork server), as every "
        "other section warms its pools."
    )
    return group


def anypool_default_workers(backend: str) -> str:
    try:
        import anypool

        return str(anypool.get_backend(backend).default_workers())
    except Exception:
        return "?"
