"""Where a run's cells execute: this machine's worker processes, or a Ray cluster.

Written ``local`` (the default: ``-j N`` worker processes), ``ray`` (a Ray instance this
run starts on this machine and stops at its end), ``ray:auto`` (the cluster this machine
already belongs to, as ``ray start`` made it) or ``ray:ADDRESS`` (``ray:10.0.0.5:6379``,
``ray:ray://head:10001``). The command line's ``--executor`` wins over the environment
variable :data:`ENV_VAR`, which wins over a suite file's ``executor`` key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from oracles.errors import UsageError, close_matches

__all__ = ["ENV_VAR", "LOCAL", "ExecutorSpec", "choose_executor", "parse_executor"]

ENV_VAR = "FPHARNESS_EXECUTOR"
_KINDS = ("local", "ray")


@dataclass(frozen=True, slots=True)
class ExecutorSpec:
    """``kind`` "local" or "ray"; ``address`` the Ray cluster to join (None: start one)."""

    kind: str = "local"
    address: str | None = None

    @property
    def id(self) -> str:
        return self.kind if self.address is None else f"{self.kind}:{self.address}"

    @property
    def is_ray(self) -> bool:
        return self.kind == "ray"


LOCAL = ExecutorSpec()


def parse_executor(text: str, where: str = "--executor") -> ExecutorSpec:
    """The executor ``text`` names; a :class:`UsageError` naming ``where`` otherwise."""
    kind, sep, address = text.strip().partition(":")
    kind = kind.lower()
    if kind not in _KINDS or (kind == "local" and sep):
        near = close_matches(kind, _KINDS)
        guess = f"; did you mean {near[0]!r}?" if near else ""
        raise UsageError(f"{where} {text!r} is not an executor; accepted: local, ray, ray:auto or ray:ADDRESS"
                         f" (e.g. ray:10.0.0.5:6379){guess}")
    if sep and not address.strip():
        raise UsageError(f"{where} {text!r} has no address after 'ray:'; give one (ray:auto, ray:10.0.0.5:6379)"
                         " or write plain 'ray' to start a Ray instance on this machine")
    return ExecutorSpec(kind, address.strip() or None)


def choose_executor(flag: str | None, suite: ExecutorSpec | None = None) -> ExecutorSpec:
    """The executor of a run: ``--executor``, else ``$FPHARNESS_EXECUTOR``, else the suite
    file's, else local."""
    if flag:
        return parse_executor(flag)
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return parse_executor(env, f"${ENV_VAR}")
    return suite or LOCAL
