"""The ``anypool`` command line: ``anypool demo``, ``anypool check`` and ``anypool trace``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``anypool`` command line and return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    modules = {
        "check": "anypool.checks._cli",
        "demo": "anypool._demo",
        "trace": "anypool._trace_cli",
    }
    if args and args[0] in modules:
        module = modules[args[0]]
        sub_main = importlib.import_module(module).main
        return int(sub_main(args[1:]))
    parser = argparse.ArgumentParser(
        prog="anypool",
        description="Run work concurrently the right way by default.",
    )
    from . import __version__

    parser.add_argument(
        "--version",
        action="version",
        version=f"anypool {__version__} (Python {sys.version.split()[0]})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("demo", help="measure threads, processes and asyncio on this machine")
    sub.add_parser("check", help="find common concurrency mistakes in Python source")
    sub.add_parser("trace", help="render a saved trace: anypool trace show run.json")
    ns = parser.parse_args(args)
    if ns.command is None:
        parser.print_help()
        return 2
    return 0  # pragma: no cover - subcommands are dispatched above
