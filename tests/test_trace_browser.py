"""The trace page in a real headless browser: Debian's chromium driven by Playwright.

`make browser` installs chromium (never `playwright install`: it downloads browsers). Without
it this test skips, unless ANYPOOL_REQUIRE_BROWSER=1 (set by .ci/run), where it fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import anypool

CHROMIUM = os.environ.get("ANYPOOL_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing() -> str | None:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no chromium at {CHROMIUM} (run `make browser`)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[browser]')"
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    why = _missing()
    if why is not None:
        if os.environ.get("ANYPOOL_REQUIRE_BROWSER") == "1":
            pytest.fail(f"ANYPOOL_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def spin(x: int) -> int:
    """About 2 ms of CPU: bars wide enough to hover one by one."""
    total = 0
    for i in range(60_000):
        total += i
    if x == 5:
        raise ValueError(f"input {x} is unlucky")
    return x


def test_the_page_draws_one_bar_per_task_and_hover_shows_it(browser: Any, tmp_path: Path) -> None:
    with anypool.trace(tmp_path / "run.html") as t:
        anypool.map(spin, range(12), backend="thread", workers=2, errors="collect")
        anypool.map(spin, range(8), backend="process", workers=2, errors="collect")
    tasks = t.tasks
    assert len(tasks) == 20
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(  # nothing may be fetched: the page is self-contained
        "request",
        lambda r: None if r.url.startswith(("file:", "data:")) else problems.append(r.url),
    )
    page.goto((tmp_path / "run.html").as_uri())
    page.wait_for_selector("rect.task")
    assert page.locator("rect.task").count() == len(tasks)
    assert page.locator("#legend .key").count() == 6
    assert page.locator("#workers tr").count() == 1 + len({r.worker for r in tasks})
    # hover the failing input of the process run: the tooltip names that task
    target = next(r for r in tasks if r.backend == "process" and r.position == 5)
    i = page.evaluate(
        "(w) => DATA.tasks.findIndex(t => t.position === 5 && t.worker === w)", target.worker
    )
    assert i >= 0
    assert page.locator("#tip").is_hidden()
    page.locator(f'rect.task[data-i="{i}"]').hover()
    tip = page.locator("#tip")
    assert tip.is_visible()
    text = tip.inner_text()
    assert "spin" in text
    assert "input #5" in text
    assert target.worker in text
    assert "ValueError: input 5 is unlucky" in text
    assert "error" in text
    # another bar: the tooltip follows
    other = page.evaluate("() => DATA.tasks.findIndex(t => t.position === 0)")
    page.locator(f'rect.task[data-i="{other}"]').hover()
    assert "input #0" in tip.inner_text()
    # zoom in around that bar: it gets wider, every bar is still drawn; double-click resets
    bar = page.locator(f'rect.task[data-i="{other}"]')
    before = float(bar.get_attribute("width"))
    box = bar.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(4):
        page.mouse.wheel(0, -200)
    width = f"+document.querySelector('rect.task[data-i=\"{other}\"]').getAttribute('width')"
    page.wait_for_function(f"{width} > {before * 1.5}")
    assert page.locator("rect.task").count() == len(tasks)
    page.locator("#timeline").dblclick()
    page.wait_for_function(f"Math.abs({width} - {before}) < 0.01")
    page.close()
    assert problems == []
