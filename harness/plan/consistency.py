"""Which consistency checks a plan runs for an oracle, and the stand-in signature of a
user's operation that has no oracle.

The checks that compare an implementation with itself (position, layout, repeat, device)
apply to every operation; the property checks apply where the oracle declares the
property (oracles.properties). ``device`` compares CPU with CUDA, so it is planned only
for cells on ``cuda``. A consistency cell never evaluates an oracle: an operation without
one is taken as elementwise over one real argument ``x``, and gets only the first four.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.judgement.consistency import CHECKS, PROPERTY_CHECKS
from oracles.errors import OracleError, UsageError, choices
from oracles.properties import Properties, properties_of
from oracles.registry import Arg, Oracle, get_oracle

if TYPE_CHECKING:
    from harness.plan.cells import CellSpec

__all__ = ["UNARY", "cell_oracle", "checks_for", "consistency_params", "signature"]


def _no_truth(*args: Any, **params: Any) -> Any:
    raise OracleError("an operation without an oracle has no truth to evaluate: only consistency checks apply")


#: the signature of a user's operation without an oracle: elementwise over one real ``x``
UNARY = Oracle(name="", kind="elementwise", args=(Arg("x"),), fn=_no_truth, domain="all reals")


def signature(oracle: str) -> Oracle:
    """The oracle a consistency cell names (its arguments, kind and domain shape the
    inputs), or :data:`UNARY` for ``""``."""
    return get_oracle(oracle) if oracle else UNARY


def cell_oracle(cell: CellSpec) -> Oracle:
    """The oracle whose signature shapes ``cell``'s inputs: a consistency cell's
    :func:`signature` (no oracle for a user's operation), an accuracy cell's oracle (an
    unknown or empty name is a UsageError)."""
    return signature(cell.oracle) if cell.check else get_oracle(cell.oracle)


def consistency_params(oracle: Oracle, params: Mapping[str, Any]) -> dict[str, Any]:
    """A consistency cell's parameters: a loss's ``reduction`` is ``none`` (one answer per
    element or row: a mean has no position)."""
    out = dict(params)
    if oracle.reducible:
        out["reduction"] = "none"
    return out


def _applies(check: str, props: Properties, oracle: Oracle) -> str | None:
    """None when ``check`` applies to ``oracle``; else why not."""
    if check not in PROPERTY_CHECKS:
        return None
    if not oracle.name:
        return "an operation without an oracle declares no properties"
    if check == "monotone":
        return None if props.monotone else f"{oracle.name} is not declared monotone"
    if check == "symmetry":
        return None if props.parity or props.label_symmetry else f"{oracle.name} declares no symmetry"
    if check == "bounds":
        ok = props.lower is not None or props.upper is not None or props.at_least_row_max
        return None if ok else f"{oracle.name} declares no bounds"
    return None if props.permutation else f"{oracle.name} is not row-wise with a permutation property"


def checks_for(oracle: Oracle, params: Mapping[str, Any], device: str,
               requested: Sequence[str] | None = None) -> list[str]:
    """The checks a cell of ``oracle`` on ``device`` runs: ``requested`` ones (None: every
    one that applies). Raises :class:`UsageError` for an unknown check and for one asked
    for by name that does not apply (``permutation`` of ``exp``), naming those that do."""
    props = properties_of(oracle.name, params) if oracle.name else Properties()
    applicable = [c for c in CHECKS if _applies(c, props, oracle) is None]
    if requested is None:
        return [c for c in applicable if c != "device" or device == "cuda"]
    out: list[str] = []
    for check in dict.fromkeys(requested):
        if check not in CHECKS:
            raise UsageError(f"unknown consistency check {check!r}; {choices(CHECKS, given=check)}")
        why = _applies(check, props, oracle)
        if why is not None:
            raise UsageError(f"consistency check {check!r} does not apply: {why}; checks for"
                             f" {oracle.name or 'an operation without an oracle'}: {', '.join(applicable)}")
        if check == "device" and device != "cuda":
            continue  # CPU against CUDA is planned on the cuda cells
        out.append(check)
    return out
