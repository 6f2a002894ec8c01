"""Timing, isolation and table printing shared by ``benchmarks/run.py``.

A *runner* is a generator function: it sets up (starts its pool and warms it), yields one
zero-argument callable that runs the workload once, and tears down when the generator is
closed (so ``with`` blocks around the ``yield`` shut pools down). :func:`measure_all` sets up
every runner of a table, times their callables in interleaved rounds, checks each output,
and turns any error or hang into a row that says so instead of stopping the suite.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

RunnerFn = Callable[[], Generator[Callable[[], Any], None, None]]


class Skip(Exception):
    """Raised by a runner's set-up when it cannot run here (missing backend or package)."""


@dataclass
class Measured:
    """What one runner measured (or why it did not)."""

    name: str
    n: int = 0  # items in one timed call
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # this process's CPU seconds per call
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    skipped: str | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None and self.skipped is None and bool(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def per_item(self) -> float:
        return self.median / max(1, self.n)


def _short_error(exc: BaseException) -> str:
    msg = f"{type(exc).__name__}: {exc}".replace("\n", " ").replace("|", "/")
    return msg[:160]


@dataclass
class Case:
    """One runner of a table: its row name, runner, items per call and result check."""

    name: str
    runner: RunnerFn
    n: int
    check: Callable[[Any], None] | None = None
    note: str = ""


def _in_thread(fn: Callable[[], Any], timeout: float) -> tuple[bool, Any, BaseException | None]:
    """Run ``fn`` in a daemon thread; ``(finished, value, error)`` after at most ``timeout``."""
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: B036 - reported to the caller
            box["error"] = exc

    t = threading.Thread(target=body, name="bench-call", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return False, None, None
    return True, box.get("value"), box.get("error")


def measure_all(cases: Sequence[Case], *, reps: int, timeout: float) -> list[Measured]:
    """Time every case ``reps`` times, **interleaved**: all runners are set up (warm), then
    each round runs every runner once, in an order rotated from round to round.

    On a shared machine the load changes by the second; interleaving spreads it evenly over
    the runners of a table, so their ratios stay meaningful. A runner that raises, fails its
    check or hangs (``timeout`` seconds for one call) gets an error row and is dropped; the
    suite goes on. A hung runner's thread and pool are abandoned.
    """
    ms = [Measured(c.name, n=c.n, note=c.note) for c in cases]
    gens: list[Any] = [None] * len(cases)
    calls: list[Callable[[], Any] | None] = [None] * len(cases)
    for i, c in enumerate(cases):
        gen = c.runner()
        done, call, err = _in_thread(lambda gen=gen: next(gen), timeout)
        if not done:
            ms[i].error = f"TIMEOUT after {timeout:.0f} s in set-up (abandoned)"
        elif isinstance(err, Skip):
            ms[i].skipped = str(err)
        elif err is not None:
            ms[i].error = "set-up: " + _short_error(err)
            _report(c.name, err)
        else:
            gens[i], calls[i] = gen, call
    order = list(range(len(cases)))
    for rnd in range(reps):
        k = rnd % len(order) if order else 0
        for i in order[k:] + order[:k]:
            call = calls[i]
            if call is None:
                continue
            m, c = ms[i], cases[i]

            def timed(call: Callable[[], Any] = call, c: Case = c) -> tuple[float, float]:
                c0 = time.process_time()
                t0 = time.perf_counter()
                out = call()
                dt = time.perf_counter() - t0
                cpu = time.process_time() - c0
                if c.check is not None:
                    c.check(out)
                return dt, cpu

            done, val, err = _in_thread(timed, timeout)
            if not done:
                m.error = f"TIMEOUT after {timeout:.0f} s ({len(m.times)} reps done; abandoned)"
                calls[i] = gens[i] = None
            elif err is not None:
                m.error = _short_error(err)
                _report(c.name, err)
                calls[i] = None
            else:
                m.times.append(val[0])
                m.cpu.append(val[1])
    for i in reversed(range(len(cases))):
        gen = gens[i]
        if gen is None:
            continue
        done, _, err = _in_thread(gen.close, timeout)
        if (not done or err is not None) and ms[i].error is None:
            ms[i].error = "teardown: " + (_short_error(err) if err else "TIMEOUT")
    for m in ms:
        if m.error:
            status = m.error
        elif m.skipped:
            status = "skipped: " + m.skipped
        else:
            status = f"median {m.median:.4f} s over {len(m.times)}"
        print(f"  {m.name:<64} {status}", file=sys.stderr)
    return ms


def _report(name: str, exc: BaseException) -> None:
    tb = "".join(traceback.format_exception(exc, limit=-6))
    print(f"    ! {name}: {_short_error(exc)}\n{_indent(tb)}", file=sys.stderr)


def _indent(text: str) -> str:
    return "".join("      " + line for line in text.splitlines(True))


def run_script(
    script: str, args: Sequence[str], *, timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``python script args...`` in a fresh interpreter; parse its last stdout line as JSON.

    Raises RuntimeError with the child's stderr tail on failure or timeout.
    """
    try:
        proc = subprocess.run(
            [sys.executable, script, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"TIMEOUT after {timeout:.0f} s (child killed)") from None
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"child exited {proc.returncode}: {tail}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- formatting ------------------------------------------------------------------------------
def fmt(x: float | None, digits: int = 3) -> str:
    """Seconds and ratios: 3 significant-ish digits without scientific notation."""
    if x is None:
        return "–"
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 0.001:
        return f"{x:.{digits}f}"
    return f"{x:.2g}"


def us(x: float) -> str:
    """Seconds as microseconds."""
    return fmt(x * 1e6)


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


class Table:
    """A markdown table with a title and notes, printed to stdout and kept for ``--markdown``."""

    def __init__(self, title: str, columns: Sequence[str]) -> None:
        self.title = title
        self.columns = list(columns)
        self.rows: list[list[str]] = []
        self.notes: list[str] = []

    def add(self, *cells: Any) -> None:
        row = [str(c) for c in cells]
        row += [""] * (len(self.columns) - len(row))
        self.rows.append(row)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def render(self) -> str:
        out = [f"#### {self.title}", ""]
        out.append("| " + " | ".join(self.columns) + " |")
        out.append("|" + "|".join("---" for _ in self.columns) + "|")
        for r in self.rows:
            out.append("| " + " | ".join(r) + " |")
        if self.notes:
            out.append("")
            out.extend(f"- {n}" for n in self.notes)
        out.append("")
        return "\n".join(out)


def failed_row(m: Measured, ncols: int) -> list[str]:
    """The cells of a row for a runner that did not produce times."""
    why = f"skipped: {m.skipped}" if m.skipped else f"ERROR: {m.error}"
    return [m.name, why] + [""] * (ncols - 2)
