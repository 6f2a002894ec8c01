"""Timing, isolation and table printing shared by ``benchmarks/run.py``.

A *runner* is a generator function: it sets up (starts its pool and warms it), yields one
zero-argument callable that runs the workload once, and tears down when the generator is
closed (so ``with`` blocks around the ``yield`` shut pools down). The harness times the
callable ``reps`` times, checks its output, and turns any error or hang into a row that says
so instead of stopping the suite.
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


def measure(
    name: str,
    runner: RunnerFn,
    *,
    n: int,
    reps: int,
    check: Callable[[Any], None] | None = None,
    note: str = "",
    timeout: float = 180.0,
) -> Measured:
    """Set ``runner`` up, time its callable ``reps`` times, tear it down.

    Runs in a daemon thread so a hang becomes a ``TIMEOUT`` row after ``timeout`` seconds
    (the stuck thread and its pool are then abandoned, and the suite goes on).
    """
    m = Measured(name, n=n, note=note)

    def body() -> None:
        gen = runner()
        try:
            call = next(gen)
            for _ in range(reps):
                c0 = time.process_time()
                t0 = time.perf_counter()
                out = call()
                dt = time.perf_counter() - t0
                m.cpu.append(time.process_time() - c0)
                if check is not None:
                    check(out)
                del out
                m.times.append(dt)
        except Skip as exc:
            m.skipped = str(exc)
        except BaseException as exc:
            m.error = _short_error(exc)
            tb = traceback.format_exc(limit=6)
            print(f"    ! {name}: {m.error}\n{_indent(tb)}", file=sys.stderr)
        finally:
            try:
                gen.close()
            except BaseException as exc:
                if m.error is None:
                    m.error = "teardown: " + _short_error(exc)

    t = threading.Thread(target=body, name=f"bench-{name}", daemon=True)
    start = time.perf_counter()
    t.start()
    t.join(timeout)
    if t.is_alive():
        m.error = f"TIMEOUT after {timeout:.0f} s (abandoned; {len(m.times)} reps done)"
    if m.error:
        status = m.error
    elif m.skipped:
        status = "skipped: " + m.skipped
    else:
        status = f"median {m.median:.3f} s" if m.times else ""
    print(f"  {name:<58} {status}  [{time.perf_counter() - start:.1f} s]", file=sys.stderr)
    return m


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
