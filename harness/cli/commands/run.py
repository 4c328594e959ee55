"""``fpharness run SUITE.toml``: every cell of a suite (or one shard of it); exit 0/1/2."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.cli.base import command
from harness.cli.dry_run import add_dry_run_option, dry_run
from harness.cli.options import Input, add_exec_options, check_exec_outputs, exec_options
from harness.cli.session import execute
from harness.plan.suite import load_suite
from harness.record.history import DEFAULT_DB, History
from harness.record.shard import parse_shard, select
from oracles.errors import UsageError


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", metavar="SUITE.toml", help="a suite file, e.g. suites/frameworks.toml")
    add_exec_options(p)
    p.add_argument("--shard", metavar="K/N",
                   help="run only shard K of N (whole groups of cells that share inputs; see docs/nightly.md)")
    p.add_argument("--record", action="store_true", help="record the run in the history database")
    p.add_argument("--db", metavar="PATH", help="history database (default .fpharness/history.sqlite)")
    add_dry_run_option(p)


@command("run", "run a suite: exit 0 when every cell is within budget, 1 otherwise, 2 on usage errors")(_configure)
def run_command(args: argparse.Namespace) -> int:
    """Run the suite (or one shard); exit 0/1 by the cells, 2 before anything runs on a bad
    option or path (an output that is a directory, the suite file or another input). With
    ``--dry-run``: validate the suite and the paths, print the plan, exit 0; nothing runs."""
    suite = load_suite(args.suite)
    if not suite.cells:
        raise UsageError(f"{args.suite} has no [[case]] tables, only {len(suite.scenarios)} [[scenario]] table(s); "
                         f"train them with: fpharness train {args.suite}")
    if args.dry_run and args.record:
        raise UsageError("--record with --dry-run: a dry run has no results to record; drop one of them")
    options = exec_options(args, suite.executor)
    cells = suite.cells
    extra: dict[str, Any] = {"suite": suite.name}
    stem = suite.name
    if args.shard:
        shard = parse_shard(args.shard)
        if args.record:
            raise UsageError(
                "--record with --shard would record a partial run; merge the shards and record that:"
                " fpharness merge PARTS... -o ALL.json --record"
            )
        cells = select(cells, shard)
        extra["shard"] = str(shard)
        stem = f"{suite.name}.shard-{shard.index}-of-{shard.count}"
    if options.json_path is None:
        options = replace(options, json_path=str(Path("results") / f"{stem}.json"))
    inputs = [Input("the suite file", args.suite)]
    inputs += [Input("a module the suite imports", path) for path in suite.imports]
    if args.record:
        inputs.append(Input("the history database", args.db or DEFAULT_DB))
    check_exec_outputs(options, cells, inputs)
    if args.dry_run:
        return dry_run(cells, f"suite {stem} ({args.suite})", options)
    history = None
    if args.record:
        history = History(args.db or DEFAULT_DB)  # opened (and migrated) first: a bad --db fails before the run
    try:
        results = execute(cells, options, extra=extra)
        if history is not None:
            run_id = history.record(results, suite=suite.name)
            if not options.quiet:
                print(f"recorded: run {run_id} in {history.path}")
    finally:
        if history is not None:
            history.close()
    return results.exit_code
