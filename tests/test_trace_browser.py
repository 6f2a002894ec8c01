"""The trace page in a real headless browser: Debian's chromium driven by Playwright.

`make browser` installs chromium (never `playwright install`: it downloads browsers). Without
it this test skips, unless ANYPOOL_REQUIRE_BROWSER=1 (set by .ci/run), where it fails.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
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
    assert page.locator("g.wevent, #legend .wkey").count() == 0  # no worker events here
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


def wait_forever(x: int) -> int:
    threading.Event().wait()
    return x


def _problems(page: Any) -> list[str]:
    """Console errors, page errors and fetches of ``page``, as they happen."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "request",
        lambda r: None if r.url.startswith(("file:", "data:")) else problems.append(r.url),
    )
    return problems


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="worker sizes are measured through /proc here"
)
def test_workers_replaced_for_their_memory_are_marked_on_their_lanes(
    browser: Any, tmp_path: Path
) -> None:
    with anypool.trace(tmp_path / "run.html") as t:
        # each worker is over 1 MB after its task: recycled
        anypool.map(
            spin, range(3), backend="process", workers=1, chunksize=1, max_memory_per_worker="1MB"
        )
        # the watchdog ends the worker during its task
        anypool.map(
            wait_forever,
            [0],
            backend="process",
            workers=1,
            task_memory_limit="1MB",
            errors="collect",
        )
    events = t.worker_events
    assert [e.kind for e in events] == ["recycle"] * 3 + ["memory_kill"]
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    problems = _problems(page)
    page.goto((tmp_path / "run.html").as_uri())
    page.wait_for_selector("g.wevent")
    assert page.locator("rect.task").count() == len(t.tasks)
    assert page.locator("g.wevent.k-recycle").count() == 3
    assert page.locator("g.wevent.k-memory_kill").count() == 1
    # the legend names the two kinds of marker, after the outcomes
    assert page.locator("#legend .key").count() == 6 + 2
    keys = page.locator("#legend .wkey")
    assert [keys.nth(i).get_attribute("data-kind") for i in range(2)] == ["recycle", "memory_kill"]
    assert keys.nth(0).inner_text() == "recycled for its memory"
    assert keys.nth(1).inner_text() == "killed for its memory"
    # two kinds, two colours
    fill = "(g) => getComputedStyle(g.querySelector('polygon')).fill"
    recycle = page.locator("g.wevent.k-recycle").first.evaluate(fill)
    kill = page.locator("g.wevent.k-memory_kill").evaluate(fill)
    assert recycle != kill
    labels = page.locator(".lane-label")
    lane_box = {
        labels.nth(i).text_content(): labels.nth(i).bounding_box() for i in range(labels.count())
    }
    xs = []
    for i, e in enumerate(events):
        mark = page.locator(f'g.wevent[data-e="{i}"]')
        box = mark.bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        # on its worker's lane (lanes are 22 px apart) ...
        label = lane_box[e.worker]
        assert abs(cy - (label["y"] + label["height"] / 2)) < 8, (e.worker, box, label)
        # ... not before the start of the task that ran there
        task = next(r for r in t.tasks if r.worker == e.worker)
        j = page.evaluate(
            "([w, p]) => DATA.tasks.findIndex(t => t.worker === w && t.position === p)",
            [e.worker, task.position],
        )
        bar = page.locator(f'rect.task[data-i="{j}"]').bounding_box()
        assert cx >= bar["x"] - 1
        xs.append(cx)
        # hovering it shows what happened and why
        mark.hover()
        tip = page.locator("#tip")
        assert tip.is_visible()
        assert tip.get_attribute("data-e") == str(i)
        text = tip.inner_text()
        assert e.kind in text
        assert e.reason in text
        assert e.worker in text
    assert xs == sorted(xs)  # in time order
    assert "task_memory_limit=1.0 MB" in page.locator("#tip").inner_text()
    page.close()
    assert problems == []
