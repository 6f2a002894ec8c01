"""The command line: ``anypool demo`` and the bare command."""

from __future__ import annotations

from pathlib import Path

import pytest

from anypool import Trace
from anypool._cli import main


def test_demo_prints_a_table_and_autos_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    timeline = tmp_path / "demo.json"
    status = main(
        [
            "demo",
            "--trace",
            str(timeline),
            "--tasks",
            "6",
            "--io-ms",
            "1",
            "--cpu-ms",
            "0.5",
            "--backends",
            "serial,thread,auto",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "| io | thread |" in out
    assert "| cpu | serial |" in out
    assert "| tiny | auto |" in out
    assert "| coro | auto |" in out
    assert "auto chose backend=" in out
    assert f"Timeline of the CPU-bound runs: {timeline}" in out
    tasks = Trace.load(timeline).tasks
    assert {"serial", "thread"} <= {r.backend for r in tasks}  # and whatever auto chose
    assert len(tasks) == 3 * 6  # the cpu workload's tasks on each of the three pools


def test_demo_rejects_an_unknown_workload(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--workloads", "bogus"])
    assert info.value.code == 2
    assert "unknown workload 'bogus'" in capsys.readouterr().err


def test_bare_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_version_is_the_installed_one(capsys: pytest.CaptureFixture[str]) -> None:
    """``anypool --version`` and ``anypool.__version__`` say the version pip installed."""
    import importlib.metadata

    import anypool

    installed = importlib.metadata.version("anypool")
    assert anypool.__version__ == installed
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith(f"anypool {installed} (Python ")
