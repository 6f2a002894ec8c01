"""``check_source`` and ``check_paths``: run the rules over source text and files."""

from __future__ import annotations

import ast
import io
import os
import re
import tokenize
from collections.abc import Iterable, Iterator, Sequence
from fnmatch import fnmatch
from importlib.util import decode_source
from pathlib import Path

from ._model import RULES, SYNTAX_ERROR, Diagnostic
from ._rules import analyse

__all__ = ("check_paths", "check_source", "iter_python_files", "validate_codes")

_NOQA = re.compile(
    r"#\s*noqa(?::\s*(?P<codes>[A-Za-z]+[0-9]*(?:[\s,]+[A-Za-z]+[0-9]*)*))?", re.IGNORECASE
)
_SKIP_DIRS = frozenset(
    {
        "__pycache__",
        "build",
        "dist",
        "node_modules",
        "site-packages",
        "venv",
    }
)
_ALL = "ALL"


def validate_codes(codes: Iterable[str]) -> tuple[str, ...]:
    """Check that each code prefix names at least one rule.

    Args:
        codes: Code prefixes such as ``"APC1"`` or ``"APC101"``, or ``"ALL"``.

    Returns:
        The prefixes, upper-cased.

    Raises:
        ValueError: A prefix matches no rule.
    """
    result = []
    for raw in codes:
        code = raw.strip().upper()
        if code != _ALL and not any(rule.startswith(code) for rule in RULES):
            raise ValueError(f"unknown rule code {raw!r} (see `anypool check --list-rules`)")
        result.append(code)
    return tuple(result)


def _matches(code: str, prefixes: Iterable[str]) -> bool:
    return any(prefix == _ALL or code.startswith(prefix) for prefix in prefixes)


def _selected(code: str, select: Sequence[str] | None, ignore: Sequence[str]) -> bool:
    if code == SYNTAX_ERROR:
        return True  # a file that cannot be parsed is always reported
    if select is not None and not _matches(code, select):
        return False
    return not _matches(code, ignore)


def _noqa_lines(source: str) -> dict[int, frozenset[str] | None]:
    """Map line numbers to the codes their ``# noqa`` comment silences (None: all)."""
    found: dict[int, frozenset[str] | None] = {}
    try:
        comments = [
            (tok.start[0], tok.string)
            for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.COMMENT
        ]
    except (tokenize.TokenError, SyntaxError):  # pragma: no cover - source already parsed
        comments = [(n, line) for n, line in enumerate(source.splitlines(), 1) if "#" in line]
    for line, text in comments:
        match = _NOQA.search(text)
        if match is None:
            continue
        codes = match.group("codes")
        if codes is None:
            found[line] = None
        else:
            found[line] = frozenset(c.upper() for c in re.split(r"[\s,]+", codes) if c)
    return found


def _silenced(diagnostic: Diagnostic, noqa: dict[int, frozenset[str] | None]) -> bool:
    if diagnostic.line not in noqa:
        return False
    codes = noqa[diagnostic.line]
    return codes is None or any(diagnostic.code.startswith(code) for code in codes)


def check_source(
    source: str | bytes,
    path: str = "<string>",
    *,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
) -> list[Diagnostic]:
    """Check Python source text for concurrency mistakes, without running it.

    Args:
        source: The module's source (bytes are decoded like Python does, honouring an
            encoding declaration).
        path: The name to put in each diagnostic.
        select: Rule code prefixes to report (default: every rule).
        ignore: Rule code prefixes not to report.

    Returns:
        The problems found, sorted by line and column. A file that cannot be parsed gives a
        single ``APC000`` diagnostic. Lines ending in ``# noqa`` or ``# noqa: CODE`` are
        silenced.

    Example:
        >>> [d.code for d in check_source("import time\\nasync def f():\\n    time.sleep(1)\\n")]
        ['APC101']
    """
    try:
        text = decode_source(source) if isinstance(source, bytes) else source
        tree = ast.parse(text, filename=path)
    except (SyntaxError, ValueError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None) or 1
        col = getattr(exc, "offset", None) or 1
        reason = getattr(exc, "msg", None) or str(exc)
        return [
            Diagnostic(
                path,
                line,
                col,
                SYNTAX_ERROR,
                f"cannot parse this file: {reason}; nothing else in it was checked",
                "fix the syntax error (or the file's encoding)",
            )
        ]
    except RecursionError:
        return [
            Diagnostic(
                path, 1, 1, SYNTAX_ERROR, "file is too deeply nested to check", "simplify it"
            )
        ]
    noqa = _noqa_lines(text)
    found = [
        d
        for d in analyse(tree, path)
        if _selected(d.code, select, ignore) and not _silenced(d, noqa)
    ]
    return sorted(set(found))


def _excluded(path: Path, exclude: Sequence[str], root: Path) -> bool:
    if not exclude:
        return False
    absolute = path.resolve()
    try:
        relative = absolute.relative_to(root.resolve()).as_posix()
    except ValueError:
        relative = path.as_posix()
    parts = Path(relative).parts
    for pattern in exclude:
        pattern = pattern.rstrip("/")
        if fnmatch(relative, pattern) or fnmatch(relative, pattern + "/*"):
            return True
        if "/" not in pattern and any(fnmatch(part, pattern) for part in parts):
            return True
    return False


def iter_python_files(
    paths: Iterable[str | os.PathLike[str]],
    *,
    exclude: Sequence[str] = (),
    root: Path | None = None,
) -> Iterator[Path]:
    """Yield the Python files named by ``paths``, walking folders (sorted, recursively).

    Hidden folders, ``__pycache__``, virtual environments and build output are skipped when
    walking. ``exclude`` patterns apply to every file, including files named directly (so a
    pre-commit hook honours them).

    Args:
        paths: Files and folders.
        exclude: Glob patterns, matched against the path relative to ``root`` and against
            each path component.
        root: The folder ``exclude`` patterns are relative to (default: the current folder).

    Yields:
        Paths of ``.py`` files (and of files named directly, whatever their suffix).

    Raises:
        FileNotFoundError: A path does not exist.
    """
    base = Path.cwd() if root is None else root
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"{raw}: no such file or directory")
        if path.is_file():
            if not _excluded(path, exclude, base):
                yield path
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(
                d
                for d in dirs
                if not d.startswith(".")
                and d not in _SKIP_DIRS
                and not (Path(folder, d) / "pyvenv.cfg").exists()
                and not _excluded(Path(folder, d), exclude, base)
            )
            for name in sorted(files):
                file = Path(folder, name)
                if name.endswith(".py") and not _excluded(file, exclude, base):
                    yield file


def check_paths(
    paths: Iterable[str | os.PathLike[str]],
    select: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
    *,
    exclude: Sequence[str] = (),
    root: Path | None = None,
) -> list[Diagnostic]:
    """Check Python files and folders for concurrency mistakes, without running them.

    This applies only the settings passed in; the ``anypool check`` command also reads
    ``[tool.anypool.check]`` from ``pyproject.toml``.

    Args:
        paths: Files and folders (folders are walked recursively for ``*.py``).
        select: Rule code prefixes to report (default: every rule).
        ignore: Rule code prefixes not to report.
        exclude: Glob patterns of files and folders to skip (see :func:`iter_python_files`).
        root: The folder ``exclude`` patterns are relative to (default: the current folder).

    Returns:
        The problems found in every file, sorted by path, line and column.

    Raises:
        FileNotFoundError: A path does not exist.
        ValueError: A code in ``select`` or ``ignore`` matches no rule.
    """
    select_codes = None if select is None else validate_codes(select)
    ignore_codes = validate_codes(ignore or ())
    found: list[Diagnostic] = []
    for file in iter_python_files(paths, exclude=exclude, root=root):
        try:
            data = file.read_bytes()
        except OSError as exc:
            found.append(
                Diagnostic(
                    str(file),
                    1,
                    1,
                    SYNTAX_ERROR,
                    f"cannot read this file: {exc.strerror}",
                    "check the file's permissions",
                )
            )
            continue
        found.extend(check_source(data, str(file), select=select_codes, ignore=ignore_codes))
    return sorted(found)
