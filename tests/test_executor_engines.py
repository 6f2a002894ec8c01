"""Engines beyond one machine, run for real on this one: mpi4py.futures under Open MPI, Parsl.

Each engine runs ``tests/engines/checks.py`` in a program of its own and prints what happened;
the test compares it with what a well-behaved backend gives. The engines are installed by the
project's own files (``make engines``: Debian's Open MPI and the ``engines`` extra); where they
are missing the tests skip and say why, except under ``ANYPOOL_REQUIRE_ENGINES=1`` (CI), where
a missing engine fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent / "engines"
sys.path.insert(0, str(HERE))
from checks import expected  # noqa: E402

REQUIRED = os.environ.get("ANYPOOL_REQUIRE_ENGINES") == "1"


def _need(module: str, command: str | None = None) -> None:
    missing = importlib.util.find_spec(module) is None or (
        command is not None and shutil.which(command) is None
    )
    if missing:
        why = f"{module}{' and ' + command if command else ''} not installed (make engines)"
        if REQUIRED:
            pytest.fail(why + "; ANYPOOL_REQUIRE_ENGINES=1 says they must be here")
        pytest.skip(why)


def _run(cmd: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    proc = subprocess.run(
        cmd, cwd=HERE, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    said = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, said
    assert lines, said
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return result


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # the engines start helper programs by name (Parsl's interchange.py, MPI's orted)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    src = str(Path(__file__).parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.timeout(150)
def test_mpi4py_futures_under_mpiexec() -> None:
    _need("mpi4py", "mpiexec")
    env = _env()
    # as root (CI, containers) Open MPI refuses to start unless told
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = ["mpiexec", "--oversubscribe", "-n", "3", sys.executable, "-m", "mpi4py.futures"]
    assert _run([*cmd, "mpi_map.py"], env, timeout=120) == expected()


@pytest.mark.timeout(200)
def test_parsl_high_throughput_executor(tmp_path: Path) -> None:
    _need("parsl")
    result = _run([sys.executable, "parsl_map.py", str(tmp_path)], _env(), timeout=180)
    assert result == expected()
