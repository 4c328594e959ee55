"""``fpharness merge PARTS... -o ALL.json``: combine shard results exactly (see
:mod:`harness.record.shard`), optionally recording the merged run in the history."""

from __future__ import annotations

import argparse

from harness.cli.base import EXIT_OK, command
from harness.cli.options import Input, Output, check_outputs
from harness.record.history import DEFAULT_DB, History
from harness.record.results import load_results
from harness.record.shard import merge_results
from oracles.errors import UsageError


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("parts", nargs="+", metavar="PART.json", help="results files of the shards (or chunks)")
    p.add_argument("-o", "--output", required=True, metavar="ALL.json", help="where to write the merged results")
    p.add_argument("--record", action="store_true", help="record the merged run in the history database")
    p.add_argument("--db", metavar="PATH", help="history database (default .fpharness/history.sqlite)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")


@command("merge", "combine results files of shards into one (exit 0, or 2 for parts that do not fit together)")(_configure)
def merge_command(args: argparse.Namespace) -> int:
    """Merge the parts into ``-o``; exit 2 before reading them when ``-o`` is a directory,
    one of the parts or the history database, or cannot be written."""
    inputs = [Input("one of the results files", p) for p in args.parts]
    if args.record:
        inputs.append(Input("the history database", args.db or DEFAULT_DB))
    check_outputs([Output("-o", args.output, "merged.json")], inputs)
    parts = [load_results(p) for p in args.parts]
    merged = merge_results(parts)
    try:
        merged.write(args.output)
    except OSError as exc:
        raise UsageError(f"-o {args.output!r}: cannot write it ({exc.strerror or exc})") from None
    if not args.quiet:
        print(f"merged {len(parts)} parts: {len(merged.cells)} cells -> {args.output}")
        conflicts = merged.run.extra.get("conflicts")
        if conflicts:
            print("conflicting run metadata: " + "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in conflicts.items()))
    if args.record:
        with History(args.db or DEFAULT_DB) as h:
            run_id = h.record(merged)
        if not args.quiet:
            print(f"recorded: run {run_id} in {h.path}")
    return EXIT_OK
