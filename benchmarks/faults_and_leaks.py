"""(f) fault soak (10,000 process tasks) and 1,000 create/use/close cycles per backend.

Crashes, timeouts, retries and errors over 10,000 process tasks; and 1,000 pool create/use/close
cycles per backend, counting threads, processes, descriptors and /dev/shm entries. The work
runs in fresh interpreters (faults_soak.py).

Target: no result lost, no process leaked.
"""

from __future__ import annotations

import argparse
import sys

import harness as h
from harness import Table, fmt, verdict
from runners import AVAILABLE, HERE

KEY = "f"
NAME = "faults_and_leaks"


def configure(cfg: argparse.Namespace) -> None:
    """Sizes (``cfg.quick``: smaller)."""
    cfg.n_f = 10_000  # the soak's size is part of its claim: the full size even with --quick
    cfg.cycles_f = 200 if cfg.quick else 1_000


FAULTS = str(HERE / "faults_soak.py")


def bench(cfg: argparse.Namespace) -> Table:
    n = cfg.n_f
    cols = [
        "runner",
        "time s",
        "done",
        "failed as expected",
        "wrong outcome",
        "leaked",
        "target results lost (= 0)",
        "target leaked processes (= 0)",
    ]
    t = Table(
        f"(f) fault soak: {n:,} process tasks with crashes, timeouts, retries and errors; "
        f"{cfg.cycles_f:,} create/use/close cycles per backend",
        cols,
    )
    label = "soak: Pool('process', workers=2, retries=1, task_timeout=0.25)"
    try:
        out = h.run_script(FAULTS, ["soak", str(n)], timeout=cfg.timeout)
    except Exception as exc:
        t.add(label, f"ERROR: {str(exc)[:160]}")
    else:
        print(f"  {label:<58} {out['time_s']:.2f} s", file=sys.stderr)
        leaks = (
            f"threads {out['leaked_threads']}, fds {out['leaked_fds']}, shm {len(out['new_shm'])}"
        )
        t.add(
            label,
            fmt(out["time_s"]),
            f"{out['done']:,}",
            f"{out['failed_as_expected']:,}",
            f"{out['wrong']}" + (f" ({out['wrong_examples'][0]})" if out["wrong"] else ""),
            leaks,
            f"{out['lost']} lost: {verdict(out['lost'] == 0 and out['wrong'] == 0)}",
            f"{out['leaked_processes']}: {verdict(out['leaked_processes'] == 0)}",
        )
        mix = ", ".join(f"{k} {v}" for k, v in sorted(out["kinds"].items()))
        t.note(
            f"Fault mix per input: {mix}. `crash` = os._exit on every attempt "
            "(WorkerCrashed after its retry); `crash-once` succeeds on a fresh worker; "
            "`hang` overruns task_timeout (worker killed); `error` = ValueError (not in "
            "retry_on); `flaky` raises once then succeeds."
        )
    for backend in ("serial", "thread", "process", "asyncio"):
        label = f"{cfg.cycles_f:,} cycles backend='{backend}'"
        if AVAILABLE.get(backend) is not None:
            t.add(label, f"skipped: {AVAILABLE[backend]}")
            continue
        try:
            out = h.run_script(FAULTS, ["cycles", backend, str(cfg.cycles_f)], timeout=cfg.timeout)
        except Exception as exc:
            t.add(label, f"ERROR: {str(exc)[:160]}")
            continue
        print(f"  {label:<58} {out['time_s']:.2f} s", file=sys.stderr)
        clean = out["threads"] == 0 and out["fds"] == 0 and not out["new_shm"]
        t.add(
            label,
            fmt(out["time_s"]),
            f"{out['n']:,} cycles",
            "",
            "",
            f"threads {out['threads']:+d}, fds {out['fds']:+d}, shm {len(out['new_shm'])}: "
            f"{verdict(clean)}",
            "",
            f"{out['children']}: {verdict(out['children'] == 0)}",
        )
    t.note(
        "Each cycle: `with Pool(backend, workers=2)` + a 4-item map + close. Counts are the "
        "difference between the start and the end (after one warm-up cycle)."
    )
    return t
