"""anypool's benchmark suite: anypool's backends next to the peers, on the same workloads.

    .venv/bin/python benchmarks/run.py                  # everything (about 10 minutes)
    .venv/bin/python benchmarks/run.py --quick          # smaller sizes, 1 rep (smoke test)
    .venv/bin/python benchmarks/run.py --only a,d --reps 5 --markdown out.md
    .venv/bin/python benchmarks/run.py --only startup,cpu_speedup

Each workload is one module of this directory (listed below: key, module, what it measures),
registered in SECTIONS; see /work/shared/baselines.md for the peers' reference figures.

Times are medians over --reps repetitions; "x best" is median / best median in the table
(per item where runners time different sizes). Absolute times drift on a shared machine:
read the ratios, which are measured in the same run. Every runner is isolated: an error or
a hang becomes a row that says so, and the suite goes on.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing as mp
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from harness import Table
from runners import AVAILABLE, anypool_backends, version

# The registry: one module per workload, in the order `make bench` runs them. A section module
# defines KEY (a one-letter alias), NAME (its module name), a docstring whose first line says
# what it measures, `bench(cfg) -> Table`, and optionally `configure(cfg)` to set its sizes
# (`cfg.quick` for smaller ones). To add a section: write the module, add its name here.
SECTIONS: list[str] = [
    "startup",
    "overhead_small_tasks",
    "cpu_speedup",
    "blocking_io_threads",
    "asyncio_vs_handwritten",
    "auto_vs_best",
    "lazy_input_memory",
    "million_tasks",
    "checks_cost",
    "tracing_cost",
    "faults_and_leaks",
    "sync_primitives",
    "share_large_object",
    "dask_overhead",
    "pipeline_vs_handwritten",
    "expensive_init",
    "repeated_calls",
    "first_call",
    "mpire_numerical",
    "mpire_stateful",
    "memory_limits_cost",
    "memory_soak",
]


def load_sections() -> dict[str, ModuleType]:
    """KEY -> section module, in the registry's order; checks that keys and names are unique."""
    out: dict[str, ModuleType] = {}
    for name in SECTIONS:
        mod = importlib.import_module(name)
        if getattr(mod, "NAME", None) != name or not callable(getattr(mod, "bench", None)):
            raise RuntimeError(f"benchmarks/{name}.py must define NAME = {name!r} and bench(cfg)")
        if mod.KEY in out or mod.KEY in SECTIONS:
            raise RuntimeError(f"benchmarks/{name}.py: KEY {mod.KEY!r} is taken")
        out[mod.KEY] = mod
    return out


MODULES = load_sections()
BENCH: dict[str, Callable[[argparse.Namespace], Table]] = {k: m.bench for k, m in MODULES.items()}


def section_key(word: str) -> str | None:
    """A workload's letter from its letter or its module name; None if unknown."""
    if word in MODULES:
        return word
    return next((k for k, m in MODULES.items() if word == m.NAME), None)


def listing() -> str:
    lines = ["workloads (--only takes the key or the name):"]
    for key, mod in MODULES.items():
        what = (mod.__doc__ or "").strip().splitlines()[0]
        what = what.split(") ", 1)[-1] if what.startswith(f"({key})") else what
        lines.append(f"  {key}  {mod.NAME:<24} {what}")
    return "\n".join(lines)


def targets_summary(tables: list[Table]) -> Table:
    """Every PASS/FAIL cell of the run, in one table."""
    t = Table("Targets", ["workload", "runner", "target", "result"])
    passed = failed = 0
    for table in tables:
        key = table.title.split(")", 1)[0] + ")"
        for row in table.rows:
            for col, cell in zip(table.columns, row, strict=False):
                if "**PASS**" in cell or "**FAIL**" in cell:
                    what = col.removeprefix("target").strip()
                    if what.startswith("(") and what.endswith(")"):
                        what = what[1:-1]
                    t.add(key, row[0], what, cell)
                    passed += "**PASS**" in cell
                    failed += "**FAIL**" in cell
    skipped = sum(1 for table in tables for row in table.rows if row[1].startswith("skipped"))
    t.note(
        f"{passed} passed, {failed} failed; {skipped} rows skipped (backend or package missing)."
    )
    return t


def machine() -> str:
    cpus = os.cpu_count()
    try:
        aff = len(os.sched_getaffinity(0))
    except AttributeError:
        aff = cpus
    try:
        import anypool

        av = ", ".join(b for b, why in AVAILABLE.items() if why is None)
        ver = anypool.__version__
    except Exception:
        av, ver = "none", "?"
    deps = ", ".join(f"{d} {version(d)}" for d in ("joblib", "mpire", "psutil", "uvloop"))
    return (
        f"Machine: {cpus} CPUs ({aff} usable), Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.platform()}; "
        f"default start method {mp.get_start_method()}\n"
        f"anypool {ver}; backends here: {av}; peers: {deps}"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        epilog=listing(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="smaller sizes and 1 rep (about 2 minutes)")
    p.add_argument(
        "--only",
        default="",
        help="comma-separated workloads, by key or name: " + ",".join(MODULES),
    )
    p.add_argument(
        "--reps", type=int, default=None, help="repetitions per runner (default 3; 1 with --quick)"
    )
    p.add_argument("--markdown", metavar="FILE", help="also write the tables to FILE")
    cfg = p.parse_args(argv)
    if cfg.reps is None:
        cfg.reps = 1 if cfg.quick else 3
    if cfg.reps < 1:
        p.error("--reps must be 1 or more")
    words = [s.strip() for s in cfg.only.split(",") if s.strip()] or list(MODULES)
    bad = [s for s in words if section_key(s) is None]
    if bad:
        p.error(f"unknown workload(s) {bad}; choose from\n{listing()}")
    cfg.sections = list(dict.fromkeys(section_key(s) for s in words))  # a workload once
    cfg.timeout = 90.0 if cfg.quick else 240.0
    for mod in MODULES.values():
        configure = getattr(mod, "configure", None)
        if configure is not None:
            configure(cfg)
    return cfg


def compile_bytecode() -> str:
    """Compile anypool's modules to bytecode, as installing a wheel does (pip compiles every
    module). An editable install leaves none, and where PYTHONDONTWRITEBYTECODE is set (as on
    this project's CI machines) none is ever written: every fresh program a section starts
    would compile anypool again, a cost no installed user pays. The peers come from wheels."""
    import compileall

    import anypool

    where = Path(anypool.__file__).resolve().parent
    ok = compileall.compile_dir(str(where), quiet=1)
    return f"anypool's bytecode: {'compiled' if ok else 'NOT all compiled'} in {where}"


def main(argv: list[str] | None = None) -> int:
    cfg = parse(argv)
    AVAILABLE.update(anypool_backends())
    compiled = compile_bytecode()
    started = time.perf_counter()
    head = [
        "## anypool benchmarks"
        + (" (--quick: smaller sizes, indicative only)" if cfg.quick else ""),
        "",
        machine(),
        f"reps: {cfg.reps}; workloads: {','.join(cfg.sections)}",
        compiled + " (as a wheel install has it)",
        "",
    ]
    missing = [why for why in AVAILABLE.values() if why]
    if missing:
        head += [f"NOTE: {why}: its rows are skipped." for why in missing] + [""]
    print("\n".join(head), flush=True)
    tables: list[Table] = []
    for key in cfg.sections:
        print(f"[{key}] running...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            table = BENCH[key](cfg)
        except Exception as exc:
            table = Table(f"({key}) failed", ["error"])
            table.add(f"{type(exc).__name__}: {exc}")
        table.note(f"section time {time.perf_counter() - t0:.0f} s")
        tables.append(table)
        print(table.render(), flush=True)
    summary = targets_summary(tables)
    tables.append(summary)
    print(summary.render())
    tail = f"Total time {time.perf_counter() - started:.0f} s."
    print(tail)
    if cfg.markdown:
        Path(cfg.markdown).write_text(
            "\n".join(head) + "\n" + "\n".join(t.render() for t in tables) + "\n" + tail + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
