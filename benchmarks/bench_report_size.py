"""The HTML report of a results file: its size, what the size is made of, how long it takes
to render, and (with Chromium) how long it takes to open. Issue 14 §7: the main suite's
report is at most 3 MB and opens in a second.

Usage::

    fpharness run suites/frameworks.toml --json /tmp/q.json --html /tmp/q.html
    python benchmarks/bench_report_size.py /tmp/q.json                # render and measure
    python benchmarks/bench_report_size.py /tmp/q.json --open          # + load time in Chromium
    python benchmarks/bench_report_size.py /tmp/q.json --json /tmp/size.json

Parts are measured on the rendered text with patterns (plots, example tables, the matrices,
the incidence tables, the cell details), so they overlap: details contain plots and tables.
The load time is Playwright's ``load`` event of the file in headless Chromium (the system
one, as tests/views/test_html_browser.py finds it), the median of three loads.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.record.results import load_results  # noqa: E402
from reports.html import render_html  # noqa: E402

LIMIT_BYTES = 3_000_000  # 3 MB, not MiB (issue 14 §7)

PARTS = {
    "plots (svg)": r"<svg.*?</svg>",
    "example tables": r'<table class="data examples.*?</table>',
    "matrices": r'<table class="matrix".*?</table>',
    "incidence tables": r'<section id="incidence">.*?</section>',
    "findings": r'<section id="findings">.*?</section>',
    "cell details": r'<details class="cell.*?</details>',
}


def measure(results_path: str) -> dict[str, Any]:
    results = load_results(results_path)
    start = time.perf_counter()
    page = render_html([results], sources=[results_path])
    seconds = time.perf_counter() - start
    size = len(page.encode("utf-8"))
    parts = {name: sum(len(m.encode("utf-8")) for m in re.findall(rx, page, re.S)) for name, rx in PARTS.items()}
    return {"results": results_path, "cells": len(results.cells), "bytes": size, "limit_bytes": LIMIT_BYTES,
            "within_limit": size <= LIMIT_BYTES, "render_seconds": round(seconds, 3), "parts": parts, "page": page}


def open_seconds(page: str) -> float | None:
    """Median load time of the page in headless Chromium; None without playwright/Chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.html"
        path.write_text(page, encoding="utf-8")
        times = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, headless=True)
            for _ in range(3):
                ctx = browser.new_context(viewport={"width": 1360, "height": 900})
                tab = ctx.new_page()
                start = time.perf_counter()
                tab.goto(path.as_uri())
                tab.wait_for_load_state("load")
                times.append(time.perf_counter() - start)
                ctx.close()
            browser.close()
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="a results file, e.g. of fpharness run suites/frameworks.toml")
    ap.add_argument("--open", action="store_true", help="also time opening the page in headless Chromium")
    ap.add_argument("--json", metavar="PATH", help="write the figures here")
    args = ap.parse_args(argv)
    out = measure(args.results)
    page = out.pop("page")
    if args.open:
        out["open_seconds"] = open_seconds(page)
    print(f"{out['cells']} cells: report {out['bytes'] / 1e6:.2f} MB ({out['bytes']:,} bytes; limit"
          f" {LIMIT_BYTES:,}: {'within' if out['within_limit'] else 'OVER'}), rendered in {out['render_seconds']} s")
    for name, size in out["parts"].items():
        print(f"  {name:<18} {size / 1e6:6.2f} MB")
    if args.open:
        opened = out.get("open_seconds")
        print("  opens in " + (f"{opened:.2f} s (Chromium, load event)" if opened is not None else "? (no Chromium)"))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
