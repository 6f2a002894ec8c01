"""The ``anypool check`` command line: exit codes, formats, options, config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anypool._cli import main as anypool_main
from anypool.checks._cli import main

BAD = "import time\n\nasync def fetch():\n    time.sleep(5)\n"
GOOD = "import asyncio\n\nasync def fetch():\n    await asyncio.sleep(5)\n"
TWO = "import asyncio, time\n\nasync def f():\n    time.sleep(1)\n    asyncio.sleep(1)\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "good.py").write_text(GOOD)
    return tmp_path


def test_clean_exits_0(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pkg"]) == 0
    assert "All checks passed" in capsys.readouterr().out


def test_problem_exits_1_with_location(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pkg" / "bad.py").write_text(BAD)
    assert main(["pkg"]) == 1
    out = capsys.readouterr().out
    assert "bad.py:4:5: APC101 " in out
    assert "fix:" in out


def test_dispatch_from_anypool_command(project: Path) -> None:
    (project / "bad.py").write_text(BAD)
    assert anypool_main(["check", "bad.py"]) == 1


def test_missing_path_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope.py"]) == 2
    assert "nope.py" in capsys.readouterr().err


def test_usage_errors_exit_2(project: Path) -> None:
    assert main([]) == 2
    assert main(["--format", "xml", "pkg"]) == 2
    assert main(["--select", "XYZ9", "pkg"]) == 2


def test_syntax_error_is_reported_not_raised(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "broken.py").write_text("def f(:\n    pass\n")
    assert main(["broken.py"]) == 1
    assert "broken.py:1:7: APC000 " in capsys.readouterr().out


def test_json_format(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "bad.py").write_text(BAD)
    assert main(["--format", "json", "bad.py"]) == 1
    [item] = json.loads(capsys.readouterr().out)
    assert item == {
        "path": "bad.py",
        "line": 4,
        "col": 5,
        "code": "APC101",
        "name": "blocking-call-in-async",
        "message": item["message"],
        "fix": item["fix"],
    }


def test_json_clean_is_empty_list(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--format", "json", "pkg"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def _codes(out: str) -> list[str]:
    return [line.split()[1] for line in out.splitlines() if ": APC" in line]


def test_select_and_ignore(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "two.py").write_text(TWO)
    assert main(["--select", "APC101", "two.py"]) == 1
    assert _codes(capsys.readouterr().out) == ["APC101"]
    assert main(["--ignore", "APC101,APC102", "two.py"]) == 0
    assert main(["--select", "APC1", "--ignore", "APC102", "two.py"]) == 1
    assert _codes(capsys.readouterr().out) == ["APC101"]


def test_noqa(project: Path) -> None:
    (project / "q.py").write_text(BAD.replace("(5)", "(5)  # noqa: APC101"))
    assert main(["q.py"]) == 0
    (project / "q.py").write_text(BAD.replace("(5)", "(5)  # noqa"))
    assert main(["q.py"]) == 0


def test_pyproject_config(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.anypool.check]\nignore = ["APC102"]\nexclude = ["generated"]\n'
    )
    (project / "pkg" / "two.py").write_text(TWO)
    (project / "generated").mkdir()
    (project / "generated" / "bad.py").write_text(BAD)
    assert main(["."]) == 1
    assert _codes(capsys.readouterr().out) == ["APC101"]
    # the command line replaces the config's ignore list
    assert main(["--ignore", "APC101", "pkg"]) == 1
    assert _codes(capsys.readouterr().out) == ["APC102"]
    # exclude also applies to files named directly (pre-commit passes file names)
    assert main(["generated/bad.py"]) == 0
    assert main(["--no-config", "generated/bad.py"]) == 1


def test_pyproject_found_from_checked_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[tool.anypool.check]\nselect = ["APC102"]\n')
    (project / "src" / "two.py").write_text(TWO)
    monkeypatch.chdir(tmp_path)
    assert main(["proj/src/two.py"]) == 1
    assert _codes(capsys.readouterr().out) == ["APC102"]


def test_invalid_config_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pyproject.toml").write_text("[tool.anypool.check]\nselekt = 1\n")
    assert main(["pkg"]) == 2
    assert "selekt" in capsys.readouterr().err


def test_list_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list-rules"]) == 0
    out = capsys.readouterr().out
    assert "APC101" in out
    assert "APC303" in out


def test_pre_commit_hook_definition() -> None:
    text = (Path(__file__).parents[1] / ".pre-commit-hooks.yaml").read_text()
    assert "id: anypool-check" in text
    assert "entry: anypool check" in text
    assert "language: python" in text
    assert "types: [python]" in text
