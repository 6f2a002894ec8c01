"""``anypool check PATH...``: the command line of the static checker.

Exit status: 0 when nothing is found, 1 when a problem is found (a file that cannot be parsed
counts), 2 on a usage error (bad option, unknown rule code, missing path, invalid config).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ._api import check_paths, validate_codes
from ._config import CheckConfig, ConfigError, find_config
from ._model import RULES, Diagnostic

__all__ = ("main",)


def _code_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anypool check",
        description="Find common concurrency mistakes in Python source, without running it.",
        epilog="Exit status: 0 clean, 1 problems found, 2 usage error. "
        "Settings are read from [tool.anypool.check] in the nearest pyproject.toml.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or folders to check")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (text)"
    )
    parser.add_argument(
        "--select",
        type=_code_list,
        metavar="CODES",
        help="comma-separated rule codes or prefixes to report (replaces the config's)",
    )
    parser.add_argument(
        "--ignore",
        type=_code_list,
        metavar="CODES",
        help="comma-separated rule codes or prefixes not to report (replaces the config's)",
    )
    parser.add_argument(
        "--no-config", action="store_true", help="do not read pyproject.toml settings"
    )
    parser.add_argument(
        "--list-rules", action="store_true", help="print every rule's code and summary and exit"
    )
    return parser


def _print_rules() -> None:
    for rule in RULES.values():
        print(f"{rule.code}  {rule.name:34} {rule.summary}")


def _report(found: Sequence[Diagnostic], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps([d.to_dict() for d in found], indent=2))
        return
    for diagnostic in found:
        print(diagnostic.format())
    if found:
        noun = "problem" if len(found) == 1 else "problems"
        print(f"Found {len(found)} {noun}.")
    else:
        print("All checks passed.")


def main(argv: list[str]) -> int:
    """Run ``anypool check`` with the given arguments and return the exit status.

    Args:
        argv: The arguments after ``check``, e.g. ``["src", "--format", "json"]``.

    Returns:
        0 when nothing is found, 1 when problems are found, 2 on a usage error.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on errors and 0 on --help
        return exc.code if isinstance(exc.code, int) else 2
    if args.list_rules:
        _print_rules()
        return 0
    if not args.paths:
        parser.print_usage(sys.stderr)
        print("anypool check: error: give at least one PATH", file=sys.stderr)
        return 2
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        for path in missing:
            print(f"anypool check: error: {path}: no such file or directory", file=sys.stderr)
        return 2
    config: CheckConfig | None = None
    try:
        if not args.no_config:
            config = find_config(Path(args.paths[0])) or find_config(Path.cwd())
        select: Sequence[str] | None = args.select
        if select is None and config is not None:
            select = config.select
        ignore: Sequence[str] = args.ignore if args.ignore is not None else ()
        if args.ignore is None and config is not None:
            ignore = config.ignore
        select_codes = None if select is None else validate_codes(select)
        ignore_codes = validate_codes(ignore)
        found = check_paths(
            args.paths,
            select=select_codes,
            ignore=ignore_codes,
            exclude=config.exclude if config else (),
            root=config.root if config else None,
        )
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"anypool check: error: {exc}", file=sys.stderr)
        return 2
    _report(found, args.format)
    return 1 if found else 0
