"""``fpharness history`` (recorded runs, per-cell trends) and ``fpharness accept`` (promote
a run to the accepted baseline). See :mod:`harness.record.history` for the database."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from harness.cli.base import EXIT_OK, command
from harness.record.history import DEFAULT_DB, History
from oracles.errors import UsageError

_DB_HELP = "history database (default .fpharness/history.sqlite)"


def _configure_history(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="PATH", help=_DB_HELP)
    p.add_argument("--cell", metavar="SUBSTRING", help="show the trend of every cell whose id contains SUBSTRING")
    p.add_argument("--suite", metavar="NAME", help="only runs of this suite")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="the last N runs (default 20; 0 for all)")
    p.add_argument("--json", action="store_true", help="print as JSON")


def _ulp(value: float | None) -> str:
    if value is None:
        return "-"
    return "0" if value == 0 else (f"{value:.3g}" if value < 10 else f"{value:,.0f}")


@command("history", "list the recorded runs, or per-cell trends with --cell")(_configure_history)
def history_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if args.limit < 0:
        raise UsageError(f"--limit must be 0 (all) or more, got {args.limit}")
    limit = args.limit or None
    # verbatim: paths, suite names and host names are printed as given, never as markup or emoji
    console = Console(width=max(120, Console().width), highlight=False, markup=False, emoji=False)
    with History(args.db or DEFAULT_DB, create=False) as h:
        if args.cell is None:
            runs = [r for r in h.runs() if args.suite is None or r.suite == args.suite]
            runs = runs[-limit:] if limit else runs
            if args.json:
                print(json.dumps([{**asdict(r), "cells": r.cells} for r in runs], indent=1))
                return EXIT_OK
            table = Table(title=Text(f"runs in {h.path}"), header_style="bold", title_justify="left")
            for name in ("run", "started", "suite", "host", "git", "frameworks", "cells", "pass/fail/error/skip", "accepted"):
                table.add_column(name, overflow="fold")
            for r in runs:
                s = r.statuses
                table.add_row(*map(Text, (
                    str(r.id), r.started, r.suite or "", r.host, (r.git_commit or "")[:10],
                    ", ".join(f"{k} {v or 'unavailable'}" for k, v in sorted(r.frameworks.items())),
                    str(r.cells), "/".join(str(s.get(k, 0)) for k in ("pass", "fail", "error", "skipped")),
                    f"yes ({r.accepted_at or '?'})" if r.accepted else "",
                )))
            console.print(table)
            return EXIT_OK
        trends = h.trends(cell=args.cell, suite=args.suite, limit=limit)
    if not trends:
        raise UsageError(f"no recorded cell id contains {args.cell!r}; see fpharness history for the runs")
    if args.json:
        out: list[dict[str, Any]] = [
            {"id": t.id, "key": list(t.key), "framework": t.framework,
             "points": [{**asdict(p), "changes": [str(c) for c in p.changes]} for p in t.points]}
            for t in trends
        ]
        print(json.dumps(out, indent=1))
        return EXIT_OK
    for t in trends:
        # the id as a line of its own: a table title would be folded to the table's width
        console.print(Text(t.id, style="bold"), soft_wrap=True)
        table = Table(header_style="bold")
        for name in ("run", "started", "status", "max ulp", "correctly rounded", "defects", t.framework, "changed"):
            table.add_column(Text(name), overflow="fold")
        for p in t.points:
            defects = ", ".join(f"{k} {v}" for k, v in p.incidence.items() if v and k in ("unexpected_nan", "missing_nan", "unexpected_inf"))
            table.add_row(*map(Text, (
                f"{p.run_id}{' *' if p.accepted else ''}", p.started, p.status, _ulp(p.max_ulp),
                "-" if p.correctly_rounded is None else f"{100 * p.correctly_rounded:.2f}%", defects,
                p.framework_version or "", "; ".join(str(c) for c in p.changes),
            )))
        console.print(table)
    console.print(Text("* accepted run", style="dim"))
    return EXIT_OK


def _configure_accept(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN_ID|latest", help="the run to make the baseline (see fpharness history)")
    p.add_argument("--db", metavar="PATH", help=_DB_HELP)


@command("accept", "make a recorded run the accepted baseline (history:last-accepted)")(_configure_accept)
def accept_command(args: argparse.Namespace) -> int:

    with History(args.db or DEFAULT_DB, create=False) as h:
        run_id = h.accept(args.run)
    print(f"accepted: run {run_id} is the baseline (history:last-accepted)")
    return EXIT_OK
