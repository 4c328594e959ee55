"""The HTML report in a real browser: headless Chromium driven by Playwright.

Layer: reports. Needs the ``playwright`` Python package and a Chromium binary; the
system one is used (``chromium`` from Debian/Ubuntu, or ``$FPHARNESS_CHROMIUM``), so no
browser download is needed. Without either, every test here is skipped with the reason.
Screenshots of the overview and of a failing cell are saved next to the report and copied
to ``$FPHARNESS_SCREENSHOT_DIR`` (default: the temp directory, e.g.
``/tmp/fpharness-report.png``) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from html_crafted import SCRIPT_IMPL, judged_cell, suite_results

from harness.record.results import Results
from reports.html import write_html

pytestmark = pytest.mark.browser

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _chromium() -> str | None:
    explicit = os.environ.get("FPHARNESS_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Page:
    """A loaded report and what happened while it loaded and was used."""

    page: Any
    url: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright)")
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium binary: install chromium (apt-get install chromium) or set FPHARNESS_CHROMIUM")
    with sync_playwright() as pw:
        try:
            b = pw.chromium.launch(executable_path=executable, headless=True)
        except Error as exc:
            pytest.skip(f"Chromium at {executable} does not start: {str(exc).splitlines()[0]}")
        yield b
        b.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The crafted suite plus passing cells enough that passing details start closed."""
    res = suite_results()
    extra = tuple(
        judged_cell(f"extra{i}.softplus", "float16", ulps=lambda x: np.where(x > 1, 1.0, 0.0)) for i in range(4)
    )
    path = tmp_path_factory.mktemp("html") / "report.html"
    write_html([Results(res.run, res.cells + extra)], path, sources=["results/frameworks.json"])
    return path


def _open(browser: Any, report: Path, *, javascript: bool = True) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, java_script_enabled=javascript)
    page = context.new_page()
    loaded = Page(page, report.resolve().as_uri())
    page.on("request", lambda r: loaded.requests.append(r.url))
    page.on("console", lambda m: loaded.errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: loaded.errors.append(f"page error: {e}"))

    def on_dialog(d: Any) -> None:
        loaded.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)
    page.goto(loaded.url)
    page.wait_for_load_state("load")
    try:
        yield loaded
    finally:
        context.close()


@pytest.fixture()
def page(browser: Any, report: Path) -> Iterator[Page]:
    yield from _open(browser, report)


@pytest.fixture()
def page_without_js(browser: Any, report: Path) -> Iterator[Page]:
    yield from _open(browser, report, javascript=False)


def _save(path: Path, name: str) -> None:
    """Copy a screenshot where a person (or a CI artifact step) finds it."""
    target_dir = Path(os.environ.get("FPHARNESS_SCREENSHOT_DIR") or tempfile.gettempdir())
    target_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, target_dir / name)


def test_loads_without_errors_network_or_dialogs(page: Page) -> None:
    page.page.wait_for_timeout(100)
    assert page.errors == []
    assert page.requests == [page.url]  # the file itself, nothing else
    assert page.dialogs == []


def test_matrix_and_tables_have_the_expected_rows(page: Page) -> None:
    p = page.page
    assert p.locator("table.matrix").count() == 3
    softplus = p.locator("table.matrix[data-oracle=softplus]")
    assert softplus.locator("tbody tr").count() == 9
    # the cuda column (one skipped cell, nothing ran there) collapses into one line
    assert softplus.locator("th.colh").all_inner_texts() == ["float16\ncpu", "bfloat16\ncpu"]
    assert softplus.locator("td.m.st-fail").count() == 3
    assert softplus.locator("td.m.st-error").count() == 1
    assert softplus.locator("td.m.st-skipped").count() == 0
    assert p.locator("table.incidence[data-oracle=softplus] tbody tr").count() == 3
    # 14 cells: the 4 extra ones have the same results, so one block lists the 3 later ones
    assert p.locator("details.cell").count() == 11
    assert p.locator("details.cell ul.same > li").count() == 3
    collapsed = p.locator("#overview p.collapsed")
    assert collapsed.count() == 1 and collapsed.is_visible()
    assert collapsed.inner_text().startswith("cuda: skipped — torch 2.3.0 was built without CUDA")


def test_the_page_opens_on_the_ranked_findings(page: Page) -> None:
    p = page.page
    first = p.locator("main > section").first
    assert first.get_attribute("id") == "findings"
    assert first.is_visible() and first.bounding_box()["y"] < 900  # on the first screen
    items = first.locator("ol.findings > li")
    assert items.count() == 3
    assert "spurious NaN" in items.nth(0).inner_text()
    assert p.locator("#findings p.collapsed[data-device=cuda]").is_visible()
    link = items.nth(1).locator("a.cid")
    href = link.get_attribute("href")
    link.click()
    p.wait_for_function("id => document.getElementById(id).open", arg=href[1:], timeout=5000)
    assert p.locator(f"details[id='{href[1:]}'] > summary").is_visible()
    assert page.errors == []


def test_script_implementation_name_is_text(page: Page) -> None:
    cell = page.page.locator("table.matrix th.impl", has_text="alert(1)")
    assert cell.inner_text() == SCRIPT_IMPL
    assert cell.is_visible()
    assert page.page.locator("script").count() == 1
    assert page.dialogs == []


def _svg_stats(page: Page, selector: str) -> list[dict[str, float]]:
    return list(page.page.eval_on_selector_all(selector, """els => els.map(svg => {
        const box = svg.getBoundingClientRect();
        const drawn = [...svg.querySelectorAll('path, rect, circle, use')].filter(e => {
            const b = e.getBBox(); return b.width > 0 && b.height > 0 && !e.classList.contains('band-bg');
        });
        return {width: box.width, height: box.height, drawn: drawn.length};
    })"""))


def test_plots_are_drawn(page: Page) -> None:
    err = _svg_stats(page, "details.cell[open] svg.err")
    # the failing elementwise cells; the passing ones start closed and have none, and beside
    # an error plot the facts' percentiles stand for the histogram
    assert len(err) == 3 and not _svg_stats(page, "details.cell[open] svg.hist")
    for stats in err:
        assert stats["width"] > 200 and stats["height"] > 150, stats
        assert stats["drawn"] > 0, stats


def test_a_matrix_link_opens_and_shows_the_cell(page: Page) -> None:
    p = page.page
    row = p.locator("table.matrix[data-oracle=softplus] tr", has=p.locator("th.impl", has_text="numpy.logaddexp"))
    link = row.locator("td.m a").first
    href = link.get_attribute("href")
    assert href and href.startswith("#c-")
    target = p.locator(f"details[id='{href[1:]}']")
    assert target.evaluate("d => d.open") is False  # a passing cell in a large report starts closed
    link.click()
    p.wait_for_function("h => location.hash === h", arg=href)
    # the hashchange handler runs as a task after the hash changes: wait for it
    p.wait_for_function("id => document.getElementById(id).open", arg=href[1:], timeout=5000)
    assert target.is_visible()
    # scrolled into view (smoothly: wait for the scroll to end up there)
    p.wait_for_function(
        "id => { const r = document.getElementById(id).getBoundingClientRect(); return r.top >= 0 && r.top < innerHeight; }",
        arg=href[1:], timeout=5000,
    )
    # a passing cell shows its facts and worst input, no plots (those are the failing cells')
    assert target.locator("dl.facts").is_visible()
    assert target.locator("svg").count() == 0
    assert page.errors == []


def test_plot_frames_and_shared_plots_are_drawn(page: Page) -> None:
    # the frames (axes, ticks, band rows) live in a hidden <svg> and are drawn with <use>;
    # every shown plot's frame has size, and the hidden <svg> takes no room
    p = page.page
    box = p.eval_on_selector("svg.frames", "s => { const b = s.getBoundingClientRect(); return [b.width, b.height]; }")
    assert box == [0, 0]
    sizes = p.eval_on_selector_all("details.cell[open] svg.plot use", """els => els.map(u => {
        const b = u.getBBox(); return b.width + b.height; })""")  # a reference line has no height
    assert sizes and all(s > 0 for s in sizes), sizes
    # the page's CSS does not reach what <use> draws: a frame's text carries its own look
    look = p.eval_on_selector_all("svg.frames text", "ts => ts.map(t => t.closest('[font-size]') !== null)")
    assert look and all(look)


def test_status_filter_hides_passing_cells(page: Page) -> None:
    p = page.page
    assert p.locator("#controls").is_visible()
    first_pass = p.locator("details.cell.st-pass").first
    assert first_pass.is_visible()
    p.locator("#controls input[data-status=pass]").uncheck()
    assert not first_pass.is_visible()
    assert p.locator("details.cell.st-fail").first.is_visible()
    p.locator("#controls input[data-status=pass]").check()
    assert first_pass.is_visible()


def test_screenshots(page: Page, report: Path) -> None:
    p = page.page
    overview = report.parent / "overview.png"
    p.screenshot(path=str(overview))
    _save(overview, "fpharness-report.png")
    failing = report.parent / "failing-cell.png"
    p.locator("details.cell.st-fail", has_text="naive.softplus-cpu-float16").screenshot(path=str(failing))
    _save(failing, "fpharness-report-cell.png")
    assert overview.stat().st_size > 20_000 and failing.stat().st_size > 20_000


def test_the_page_works_without_javascript(page_without_js: Page) -> None:
    p = page_without_js.page
    assert page_without_js.errors == [] and page_without_js.requests == [page_without_js.url]
    assert not p.locator("#controls").is_visible()
    assert p.locator("table.matrix[data-oracle=softplus] tbody tr").count() == 9
    assert p.locator("details.cell.st-fail[open]").count() == 3
    link = p.locator("table.matrix[data-oracle=softplus] td.m.st-fail a").first
    href = link.get_attribute("href")
    link.click()
    p.wait_for_function("h => location.hash === h", arg=href)
    assert p.locator(f"details[id='{href[1:]}'] summary").is_visible()


@pytest.fixture(scope="module")
def mixed_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Forward and gradient cells (tests/views/test_gradient_views.py builds them)."""
    from test_gradient_views import mixed_results

    path = tmp_path_factory.mktemp("html-grad") / "report.html"
    write_html([mixed_results()], path)
    return path


def test_gradient_sections_read_without_javascript(browser: Any, mixed_report: Path) -> None:
    for loaded in _open(browser, mixed_report, javascript=False):
        p = loaded.page
        assert loaded.errors == [] and loaded.requests == [loaded.url]
        heading = p.locator("#overview div.oracle.grad h3", has_text="∂softplus")
        assert heading.is_visible()
        assert heading.inner_text() == "∂softplus — gradient (vector-Jacobian product), cotangents ones, random"
        # the gradient's matrix links to its cells, which open on their own (no script)
        link = p.locator("table.matrix[data-pass=grad][data-wrt=x] td.m.st-fail a").first
        href = link.get_attribute("href")
        link.click()
        p.wait_for_function("h => location.hash === h", arg=href)
        target = p.locator(f"details[id='{href[1:]}']")
        assert target.evaluate("d => d.open") and "∂softplus[" in target.locator("summary").inner_text()
        # the input cell: bits over values
        values = target.locator("table.examples tbody.failing tr:not(.cap) td:nth-child(1)").first.inner_text()
        assert values.split("\n")[1].startswith("x=") and ", cotangent=" in values
        target.screenshot(path=str(mixed_report.parent / "gradient-cell.png"))
        _save(mixed_report.parent / "gradient-cell.png", "fpharness-report-gradient-cell.png")
