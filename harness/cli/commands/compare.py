"""``fpharness compare BASELINE CURRENT``: judge a run against a baseline.

Exit 1 when a cell regressed or newly fails (with ``--strict`` also when a cell is
incomparable or missing), 0 otherwise, 2 on usage errors. BASELINE and CURRENT are
results files or history references: ``history:last-accepted``, ``history:latest``,
``history:RUN_ID`` (from ``--db``).
"""

from __future__ import annotations

import argparse
import shutil
import sys

from harness.cli.base import EXIT_FAIL, EXIT_OK, command
from harness.cli.options import Input, Output, check_outputs
from harness.judgement.summary import DEFECTS
from harness.record.compare import Kind, Tolerance, compare
from harness.record.history import DEFAULT_DB, REF_PREFIX, load_ref
from oracles.atomic import atomic_write_text
from oracles.errors import UsageError
from reports.comparison import markdown, terminal_text


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("baseline", metavar="BASELINE",
                   help="a results file, or history:last-accepted / history:latest / history:RUN_ID")
    p.add_argument("current", metavar="CURRENT", help="a results file or a history reference")
    p.add_argument("--tolerance", type=float, default=0.0, metavar="ULP",
                   help="allowed growth of the max ULP error before it is a regression (default 0)")
    p.add_argument("--tolerance-dtype", action="append", default=[], metavar="DTYPE=ULP",
                   help="the same for one output format, e.g. float32=0.5 (repeatable)")
    p.add_argument("--tolerance-cr", type=float, default=0.0, metavar="FRACTION",
                   help="allowed drop of the correctly rounded fraction, e.g. 0.01 (default 0)")
    p.add_argument("--watch", action="append", default=[], metavar="CATEGORY",
                   help=f"also count any increase of this incidence category as a regression (always: {', '.join(DEFECTS)})")
    p.add_argument("--markdown", metavar="PATH", help="write the comparison as Markdown here ('-': print it instead of the table)")
    p.add_argument("--all", action="store_true", help="list unchanged cells too")
    p.add_argument("--strict", action="store_true", help="also fail on incomparable and missing cells")
    p.add_argument("--db", metavar="PATH", help="history database for history: references (default .fpharness/history.sqlite)")


def tolerance_from_args(args: argparse.Namespace) -> Tolerance:
    per_dtype: dict[str, float] = {}
    for item in args.tolerance_dtype:
        name, sep, value = item.partition("=")
        try:
            per_dtype[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise UsageError(f"--tolerance-dtype {item!r} must be DTYPE=ULP, e.g. float16=0 or float32=0.5")
    watch = tuple(dict.fromkeys((*DEFECTS, *args.watch)))
    return Tolerance(per_dtype, args.tolerance, args.tolerance_cr, watch)


@command("compare", "compare a run with a baseline: exit 1 on a regression or new failure, 0 otherwise")(_configure)
def compare_command(args: argparse.Namespace) -> int:
    """Compare and print; exit 2 before loading anything when ``--markdown`` is a
    directory, one of the compared files or the history database, or cannot be written."""
    tolerance = tolerance_from_args(args)
    db = args.db or DEFAULT_DB
    if args.markdown and args.markdown != "-":
        refs = (args.baseline, args.current)
        inputs = [Input("one of the results files", r) for r in refs if not r.startswith(REF_PREFIX)]
        if any(r.startswith(REF_PREFIX) for r in refs):
            inputs.append(Input("the history database", db))
        check_outputs([Output("--markdown", args.markdown, "comparison.md")], inputs)
    baseline, base_label = load_ref(args.baseline, db)
    current, cur_label = load_ref(args.current, db)
    result = compare(baseline, current, tolerance, labels=(base_label, cur_label))
    md = markdown(result, show_unchanged=args.all) if args.markdown else None
    if args.markdown == "-":
        print(md)
    else:
        width = min(max(shutil.get_terminal_size((140, 24)).columns, 140), 240)
        sys.stdout.write(terminal_text(result, width=width, color=sys.stdout.isatty(), show_unchanged=args.all))
        if args.markdown:
            assert md is not None
            try:
                atomic_write_text(args.markdown, md)
            except OSError as exc:
                raise UsageError(f"--markdown {args.markdown!r}: cannot write it ({exc.strerror or exc})") from None
    if result.failed:
        return EXIT_FAIL
    if args.strict and any(result.of_kind(k) for k in (Kind.INCOMPARABLE, Kind.MISSING_CELL)):
        return EXIT_FAIL
    return EXIT_OK
