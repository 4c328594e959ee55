"""The ``fpharness`` command line.

Each sub-command lives in its own module under :mod:`harness.commands` and registers
itself with :func:`command`. :func:`main` is the only place that catches
:class:`~oracles.errors.UsageError`: it prints the one-line message and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from oracles.errors import UsageError

__all__ = ["EXIT_FAIL", "EXIT_OK", "EXIT_USAGE", "command", "main"]

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]
Configure = Callable[[argparse.ArgumentParser], None]

_COMMANDS: dict[str, tuple[str, Configure, Handler]] = {}

#: modules that define sub-commands, imported when the parser is built
COMMAND_MODULES: tuple[str, ...] = (
    "harness.commands.registry",
    "harness.commands.check",
    "harness.commands.run",
    "harness.commands.compare",
    "harness.commands.history",
    "harness.commands.merge",
    "harness.commands.report",
    "harness.commands.cache",
)


def command(name: str, help: str) -> Callable[[Configure], Callable[[Handler], Handler]]:
    """Register a sub-command: ``@command("oracles", "list the oracles")(configure)(handler)``
    is spelled as two decorators in the command modules."""

    def with_configure(configure: Configure) -> Callable[[Handler], Handler]:
        def with_handler(handler: Handler) -> Handler:
            _COMMANDS[name] = (help, configure, handler)
            return handler

        return with_handler

    return with_configure


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints usage and exits 2 itself; keep its exit code, shorten the text
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"fpharness: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    for module in COMMAND_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a command module not present in this build
            if exc.name != module:
                raise
    parser = _Parser(
        prog="fpharness",
        description=(
            "Differential float-precision test harness: how wrong is an implementation, in ULPs,"
            " per dtype and device, and where does it produce NaN or Inf that the mathematics does not?"
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in sorted(_COMMANDS):
        help_text, configure, _handler = _COMMANDS[name]
        p = sub.add_parser(name, help=help_text, description=help_text)
        configure(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fpharness`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _help, _configure, handler = _COMMANDS[args.command]
    try:
        return handler(args)
    except UsageError as exc:
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


if __name__ == "__main__":  # pragma: no cover
    # `python -m harness.cli`: this copy of the module is __main__, while the command modules
    # register with `harness.cli`; its own main would see no commands
    from harness.cli import main as _main

    sys.exit(_main())
