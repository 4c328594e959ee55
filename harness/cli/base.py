"""What every command module needs: the exit codes and the command registry.

A leaf of :mod:`harness.cli`, so that the command modules import it and :mod:`.app` imports
them, with no cycle between the parser and the commands it serves.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

from oracles.registries import Registry

__all__ = ["COMMANDS", "EXIT_FAIL", "EXIT_OK", "EXIT_USAGE", "Command", "command"]

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]
Configure = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True, slots=True)
class Command:
    """A sub-command: its name, one-line help, how it adds its options, what it runs."""

    name: str
    help: str
    configure: Configure = field(repr=False)
    handler: Handler = field(repr=False)


#: every registered sub-command, by name
COMMANDS: Registry[Command] = Registry("command", key=lambda cmd: cmd.name)


def command(name: str, help: str) -> Callable[[Configure], Callable[[Handler], Handler]]:
    """Register a sub-command: ``@command("oracles", "list the oracles")(configure)`` above
    the handler."""

    def with_configure(configure: Configure) -> Callable[[Handler], Handler]:
        def with_handler(handler: Handler) -> Handler:
            COMMANDS.add(Command(name, help, configure, handler))
            return handler

        return with_handler

    return with_configure
