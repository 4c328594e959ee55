"""The HTML report of a results file: its size, what the size is made of, how long it takes
to render, and (with Chromium) how long it takes to open. Issue 14 §7: the main suite's
report is at most 3 MB and opens in a second.

Usage::

    fpharness run suites/frameworks.toml --json /tmp/q.json --html /tmp/q.html
    python benchmarks/bench_report_size.py /tmp/q.json                # render and measure
    python benchmarks/bench_report_size.py /tmp/q.json --open          # + load time in Chromium
    python benchmarks/bench_report_size.py /tmp/q.json --json /tmp/size.json
    python benchmarks/bench_report_size.py /tmp/q.json --grad 1000     # + 1,000 gradient cells

``--grad N`` adds N gradient cells made from the file's own cells (evenly spaced through
it; two in three with cotangent ones, the others random; an elementwise or row-wise
cell's example inputs gain the cotangent, as the runner stores them), for the size of the
report once the suite judges gradients too: the frameworks suite will add about 1,000.

Parts are measured on the rendered text with patterns (plots, example tables, the matrices,
the incidence tables, the cell details), so they overlap: details contain plots and tables.
Bytes per cell are given by status (passing, failing, error, skipped, unsupported): the
details blocks of that status, the cell's matrix entry and its incidence row, over the cells
of that status the page shows (cells with the same results share a block, so a block can
stand for several cells: each names its cells with a ``span.cid``). The main job's report
is held to :data:`TARGET_BYTES`, below the limit, to leave room for the suite to grow.
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
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.judgement.summary import Example  # noqa: E402
from harness.plan.cells import CellResult  # noqa: E402
from harness.record.results import Results, load_results  # noqa: E402
from oracles.errors import UsageError  # noqa: E402
from oracles.formats import get_format  # noqa: E402
from oracles.registry import get_oracle  # noqa: E402
from reports.html import render_html  # noqa: E402

LIMIT_BYTES = 3_000_000  # 3 MB, not MiB (issue 14 §7)
TARGET_BYTES = 2_600_000  # the main job's report, with room to grow below the limit
STATUSES = ("pass", "fail", "error", "skipped", "unsupported")

PARTS = {
    "plots (svg)": r"<svg.*?</svg>",
    "example tables": r'<table class="data examples.*?</table>',
    "matrices": r'<table class="matrix[ "].*?</table>',
    "incidence tables": r'<section id="incidence">.*?</section>',
    "findings": r'<section id="findings">.*?</section>',
    "cell details": r'<details class="cell.*?</details>',
}


def _with_cotangent(e: Example, dtype: str, value: float) -> Example:
    fmt = get_format(dtype)
    bits = int(fmt.to_bits(fmt.from_float64([value]))[0])
    return replace(e, input=(*e.input, fmt.hex_of_bits(bits)), input_values=(*e.input_values, repr(value)))


def grad_twins(cells: tuple[CellResult, ...], count: int) -> list[CellResult]:
    """``count`` gradient cells made from ``cells`` (evenly spaced through them): the same
    verdicts, judged as the gradient with respect to the oracle's first real argument, with
    errors half as large again along the error profile (so that their plots are their own)."""
    out: list[CellResult] = []
    if not cells or count <= 0:
        return out
    for i in range(count):
        cell = cells[(i * len(cells)) // count if count <= len(cells) else i % len(cells)]
        kind: str
        try:
            oracle = get_oracle(cell.spec.oracle)
            arg, kind = oracle.real_args[0].name, oracle.kind
        except (UsageError, IndexError):
            arg, kind = "x", ""
        cot = "random" if i % 3 == 2 else "ones"
        # a cycle past the file's length differs in its cotangent or argument, so keys stay unique
        spec = replace(cell.spec, wrt=arg if i < len(cells) else f"{arg}{i // len(cells)}", cotangent=cot)
        summary = cell.summary
        if summary is not None and kind in ("elementwise", "rowwise"):
            value = 1.0 if cot == "ones" else 0.75
            summary = replace(summary, worst=tuple(_with_cotangent(e, cell.spec.dtype, value) for e in summary.worst),
                              examples=tuple(_with_cotangent(e, cell.spec.dtype, value) for e in summary.examples))
        # a gradient's errors are not its forward values': its plot is drawn, not shared
        profile = cell.profile
        if profile is not None:
            profile = {**profile, "rows": [[*r[:4], None if r[4] is None else float(r[4]) * 1.5 + 0.25, *r[5:]]
                                           for r in profile.get("rows") or []]}
        out.append(replace(cell, spec=spec, summary=summary, profile=profile))
    return out


def measure(results_path: str, grad: int = 0) -> dict[str, Any]:
    results = load_results(results_path)
    if grad:
        results = Results(results.run, results.cells + tuple(grad_twins(results.cells, grad)))
    start = time.perf_counter()
    page = render_html([results], sources=[results_path])
    seconds = time.perf_counter() - start
    return {"results": results_path, "cells": len(results.cells), "grad_cells": grad, **measure_page(page),
            "render_seconds": round(seconds, 3), "page": page}


def _bytes(matches: list[str]) -> int:
    return sum(len(m.encode("utf-8")) for m in matches)


def measure_page(page: str) -> dict[str, Any]:
    """The figures of a rendered report (any version of the page's markup: a block per cell,
    or one per cells with the same results)."""
    size = len(page.encode("utf-8"))
    cells = len(re.findall(r'<span class="cid">', _section(page, "details")))
    parts = {name: _bytes(re.findall(rx, page, re.S)) for name, rx in PARTS.items()}
    per_status: dict[str, dict[str, int]] = {}
    for s in STATUSES:
        blocks = re.findall(rf'<details class="cell st-{s}".*?</details>', page, re.S)
        shown = sum(b.count('<span class="cid">') for b in blocks)
        if not shown:
            continue
        per_status[s] = {
            "cells": shown,
            "blocks": len(blocks),
            "details": _bytes(blocks),
            "matrix": _bytes(re.findall(rf'<td class="m [^"]*\bst-{s}">.*?</td>', page, re.S)),
            "incidence": _bytes(re.findall(rf'<tr class="st-{s}">.*?</tr>', _section(page, "incidence"), re.S)),
        }
    return {"bytes": size, "shown_cells": cells, "limit_bytes": LIMIT_BYTES, "within_limit": size <= LIMIT_BYTES,
            "target_bytes": TARGET_BYTES, "within_target": size <= TARGET_BYTES, "parts": parts,
            "per_status": per_status,
            "bytes_per_cell": {s: round(sum(v for k, v in f.items() if k not in ("cells", "blocks")) / f["cells"])
                               for s, f in per_status.items()}}


def _section(page: str, ident: str) -> str:
    found = re.search(rf'<section id="{ident}">.*?</section>', page, re.S)
    return found.group(0) if found else ""


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
    ap.add_argument("--grad", metavar="N", type=int, default=0,
                    help="add N gradient cells made from the file's cells (the suite's gradients, synthesised)")
    args = ap.parse_args(argv)
    out = measure(args.results, args.grad)
    page = out.pop("page")
    if args.open:
        out["open_seconds"] = open_seconds(page)
    grad = f" ({out['grad_cells']:,} of them synthesised gradient cells)" if out["grad_cells"] else ""
    print(f"{out['cells']} cells{grad}, {out['shown_cells']:,} shown: report {out['bytes'] / 1e6:.2f} MB"
          f" ({out['bytes']:,} bytes, {out['bytes'] / max(out['cells'], 1):,.0f} per cell; limit {LIMIT_BYTES:,}:"
          f" {'within' if out['within_limit'] else 'OVER'}; target {TARGET_BYTES:,}:"
          f" {'within' if out['within_target'] else 'over'}), rendered in {out['render_seconds']} s")
    print("  bytes per shown cell (details + matrix entry + incidence row):")
    for s, f in out["per_status"].items():
        print(f"    {s:<12} {out['bytes_per_cell'][s]:6,} B  ({f['cells']:,} cells in {f['blocks']:,} blocks:"
              f" details {f['details'] / f['cells']:,.0f}, matrix {f['matrix'] / f['cells']:,.0f},"
              f" incidence {f['incidence'] / f['cells']:,.0f})")
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
