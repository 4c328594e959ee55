"""``fpharness run SUITE.toml``: every cell of a suite; exit 0/1/2."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli import command
from harness.commands.common import add_exec_options, exec_options
from harness.execute import execute
from harness.suite import load_suite


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", metavar="SUITE.toml", help="a suite file, e.g. suites/frameworks.toml")
    add_exec_options(p)


@command("run", "run a suite: exit 0 when every cell is within budget, 1 otherwise, 2 on usage errors")(_configure)
def run_command(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    options = exec_options(args)
    if options.json_path is None:
        from dataclasses import replace

        options = replace(options, json_path=str(Path("results") / f"{suite.name}.json"))
    return execute(suite.cells, options)
