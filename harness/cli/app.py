"""The ``fpharness`` command line: the parser and the one error boundary.

Each sub-command lives in its own module under :mod:`harness.cli.commands` and registers
itself with :func:`harness.cli.base.command`; importing them here fills the registry.
:func:`main` is the only place that catches :class:`~oracles.errors.FpharnessError`: it
prints the one-line message and exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from harness.cli.base import COMMANDS, EXIT_OK, EXIT_USAGE
from harness.cli.commands import cache, check, compare, history, listing, merge, report, run, train
from oracles.errors import FpharnessError

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

#: the modules whose import registers the sub-commands
COMMAND_MODULES = (listing, check, run, train, compare, history, merge, report, cache)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints usage and exits 2 itself; keep its exit code, shorten the text
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"fpharness: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``fpharness`` parser with every registered sub-command."""
    parser = _Parser(
        prog="fpharness",
        description=(
            "Differential float-precision test harness: how wrong is an implementation, in ULPs,"
            " per dtype and device, and where does it produce NaN or Inf that the mathematics does not?"
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fpharness`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS.get(args.command).handler(args)
    except FpharnessError as exc:
        print(f"fpharness: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fpharness: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `fpharness oracles | head` closes our stdout early; that is not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
