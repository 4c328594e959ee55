"""``fpharness report RESULTS.json [...] -o report.html``: a self-contained HTML report.

With ``--baseline BASE.json`` (or ``--compare``, which takes the first file as the
baseline) the report also shows what got better or worse, cell by cell. Exit 0 when the
report was written, 2 on usage errors (a missing or malformed results file, say).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.base import EXIT_OK, command
from harness.cli.options import Input, Output, add_display_options, check_outputs
from harness.record.compare import Tolerance
from harness.record.results import load_results
from oracles.errors import UsageError
from reports.html import write_html


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", metavar="RESULTS.json",
                   help="results files (schema 1 or 2); a cell in a later file replaces the same cell in an earlier one")
    p.add_argument("-o", "--output", metavar="PATH", default="report.html",
                   help="where to write the report (default: report.html)")
    p.add_argument("--baseline", metavar="BASE.json", help="compare with these results: what got better or worse")
    p.add_argument("--compare", action="store_true",
                   help="take the first RESULTS.json as the baseline and compare the others with it")
    p.add_argument("--tolerance", type=float, default=0.0, metavar="ULP",
                   help="with a baseline: allowed growth of the max ULP error before it is a regression (default 0)")
    p.add_argument("--title", help="the page title (default: fpharness report)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print where the report went")
    add_display_options(p, details=False)


@command("report", "write a self-contained HTML report of results files, optionally against a baseline")(_configure)
def report_command(args: argparse.Namespace) -> int:
    paths: list[str] = list(args.results)
    base_path: str | None = args.baseline
    if args.compare:
        if base_path is not None:
            raise UsageError("--compare takes the first RESULTS.json as the baseline; drop --baseline or --compare")
        if len(paths) < 2:
            raise UsageError("--compare needs two results files: BASE.json CURRENT.json")
        base_path, paths = paths[0], paths[1:]
    out = Path(args.output)
    inputs = [Input("one of the results files", p) for p in paths]
    if base_path is not None:
        inputs.append(Input("the baseline results file", base_path))
    check_outputs([Output("-o", args.output, "report.html")], inputs)

    tolerance = Tolerance(default=args.tolerance)  # checks the value: a UsageError when negative
    results = [load_results(p) for p in paths]
    baseline = load_results(base_path) if base_path is not None else None


    try:
        write_html(results, out, baseline=baseline, title=args.title, sources=paths, baseline_source=base_path or "",
                   tolerance=tolerance, metric=args.metric)
    except OSError as exc:
        raise UsageError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None
    if not args.quiet:
        print(f"report: {out}")
    return EXIT_OK
