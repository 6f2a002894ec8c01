"""Make docs/img/trace.png: a real traced run, rendered and photographed by headless chromium.

    make browser && .venv/bin/python docs/img/trace_screenshot.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anypool

HERE = Path(__file__).resolve().parent


def crunch(n: int) -> int:
    """About 15 ms of pure-Python arithmetic; input 9 fails, input 4 fails once per worker."""
    total = 0
    for i in range(n):
        total += i * i % 7
    x = n % 100
    if x == 9:
        raise ValueError("input 9 is malformed")
    seen = anypool.current_worker().state.setdefault("seen", set())
    if x == 4 and x not in seen:
        seen.add(x)
        raise ConnectionError("flaky upstream")
    return total


def main() -> None:
    from playwright.sync_api import sync_playwright

    items = [300_000 + k for k in range(12)]
    out = Path(tempfile.mkdtemp()) / "run.html"
    with anypool.trace(out):
        anypool.map(crunch, items, backend="thread", workers=2, errors="collect")
        anypool.map(
            crunch, items, backend="process", workers=2, errors="collect", retries=1,
            retry_on=ConnectionError, chunksize=1,
        )
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page(viewport={"width": 1100, "height": 560}, device_scale_factor=1)
        page.goto(out.as_uri())
        i = page.evaluate("() => DATA.tasks.findIndex(t => t.outcome === 'error' && t.backend === 'process')")
        page.locator(f'rect.task[data-i="{i}"]').hover()
        page.screenshot(path=str(HERE / "trace.png"))
        browser.close()
    print(f"wrote {HERE / 'trace.png'} from {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
