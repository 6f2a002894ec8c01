"""``anypool trace show run.json [-o out.html] [--open]``: the timeline page of a saved trace."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``anypool trace`` and return its exit status."""
    parser = argparse.ArgumentParser(
        prog="anypool trace",
        description="Work with traces written by trace='run.json' or anypool.trace('run.json').",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    show = sub.add_parser(
        "show",
        help="render the timeline page (HTML) of a Chrome-trace JSON file written by anypool",
    )
    show.add_argument("json", help="the trace, e.g. run.json")
    show.add_argument(
        "-o", "--output", help="where to write the page (default: the JSON's name with .html)"
    )
    show.add_argument("--open", action="store_true", help="open the page in a web browser")
    ns = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if ns.command is None:
        parser.print_help()
        return 2
    from ._core._tracing import show as render

    try:
        out = render(ns.json, ns.output)
    except (OSError, ValueError, KeyError) as exc:
        print(f"anypool trace show: {ns.json}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    if ns.open:
        import webbrowser

        webbrowser.open(out.resolve().as_uri())
    return 0
