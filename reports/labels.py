"""The words and numbers every view shows: incidence labels, ULP colour classes, the ULP
formatter, and what a cell judges (its subject: ``softplus``, the gradient ``∂softplus``,
or ``∂binary_cross_entropy/∂p``; a consistency cell's check). One definition, so the
terminal, Markdown, HTML and SVG views never disagree about what a category is called, how
an error is written or how a gradient or consistency cell is told from a forward one.

Cells are results-file dicts. A schema-1 file has no ``pass`` field: every cell in it is a
forward cell, and reads as it always did."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cache
from typing import Any

from harness.judgement.definitions import CATEGORIES
from harness.judgement.summary import Example
from harness.plan.cells import CellSpec
from oracles.errors import UsageError
from oracles.registry import get_oracle

__all__ = [
    "CATEGORY_LABELS",
    "CONSISTENCY_GROUP",
    "INCIDENCE_LABELS",
    "METRICS",
    "ULP_CLASSES",
    "check",
    "consistency_heading",
    "cotangent",
    "format_metric",
    "format_ulp",
    "grad_heading",
    "group_key",
    "group_order",
    "impl_label",
    "input_names",
    "inputs_label",
    "is_consistency",
    "is_grad",
    "metric_class",
    "metric_value",
    "named_example",
    "named_values",
    "subject",
    "ulp_class",
    "wrt",
]

#: what ``--metric`` picks for the terminal table and the HTML matrix: (cell JSON field,
#: unit); the JSON always has all of them (fields an older results file lacks read as "-")
METRICS: dict[str, tuple[str, str]] = {
    "ulp": ("ulp", "ulp"),
    "bits": ("bits", "bits"),
    "abs": ("abs_error", "abs"),
    "rel": ("rel_error", "rel"),
}

#: (upper bound, css class, legend text): the colour scale of the matrix and the plots
ULP_CLASSES: tuple[tuple[float, str, str], ...] = (
    (0.5, "u0", "≤ 0.5 ulp (correctly rounded)"),
    (1.0, "u1", "≤ 1 ulp (faithful)"),
    (4.0, "u2", "≤ 4 ulp"),
    (64.0, "u3", "≤ 64 ulp"),
    (math.inf, "u4", "> 64 ulp"),
)

#: short badge text and long description per incidence category, in definition order
CATEGORY_LABELS: dict[str, tuple[str, str]] = {
    "unexpected_nan": ("NaN!", "unexpected NaN: NaN where the mathematics has a value"),
    "missing_nan": ("noNaN", "missing NaN: a number where the mathematics is undefined"),
    "unexpected_inf": ("Inf!", "spurious Inf: Inf where the correctly rounded result is finite"),
    "inherent_inf": ("ovf", "inherent overflow: Inf where the exact result overflows the format (correct)"),
    "missing_inf": ("noInf", "missing Inf: a finite result where the correctly rounded result is Inf"),
    "lost_to_zero": ("→0", "lost to zero: 0 where the correctly rounded result is not 0"),
}
if tuple(CATEGORY_LABELS) != CATEGORIES:  # pragma: no cover - a new category needs a label here
    raise ImportError("reports.labels: CATEGORY_LABELS must name every category, in definition order")

#: the short label alone, for tables
INCIDENCE_LABELS: dict[str, str] = {cat: short for cat, (short, _long) in CATEGORY_LABELS.items()}


def ulp_class(max_ulp: float | None) -> str:
    """The colour class of a max ULP error (``un`` when there is none)."""
    if max_ulp is None or not math.isfinite(max_ulp):
        return "un"
    for bound, cls, _ in ULP_CLASSES:
        if max_ulp <= bound:
            return cls
    return "u4"  # pragma: no cover - the last bound is inf


def format_ulp(value: float | None, *, none: str = "-") -> str:
    """A ULP error as every view writes it: ``0``, ``0.5``, ``2.13``, ``2,047``, ``1.2e+09``;
    ``none`` when there is none. A value just above a colour bound keeps the digits that
    show it (``0.5002``, not ``0.5``), so the text never contradicts the colour."""
    if value is None:
        return none
    if value == 0:
        return "0"
    if value < 0.01:
        return f"{value:.1e}"
    if value < 10:
        for digits in range(3, 10):
            text = f"{value:.{digits}g}"
            if not _hides_a_bound(float(text), value):
                return text
        return f"{value:.10g}"
    if value < 1e6:
        for decimals in range(0, 7):
            text = f"{value:,.{decimals}f}"
            if not _hides_a_bound(float(text.replace(",", "")), value):
                return text
        return f"{value:,.7f}"
    return f"{value:.2g}"


def _hides_a_bound(shown: float, value: float) -> bool:
    """Whether the text ``shown`` would read as within a colour bound that ``value`` is over."""
    return any(shown <= bound < value for bound, _c, _t in ULP_CLASSES)


def metric_value(cell: Mapping[str, Any], metric: str = "ulp") -> float | None:
    """The max error of ``cell`` in ``metric`` (one of :data:`METRICS`); None when the cell
    has no such summary (it did not run, or the results file predates the field)."""
    field, _unit = METRICS[metric]
    summary = cell.get(field)
    if not isinstance(summary, Mapping) or summary.get("max") is None:
        return None
    try:
        return float(summary["max"])
    except (TypeError, ValueError):
        return None


def format_metric(value: float | None, metric: str = "ulp", *, none: str = "-") -> str:
    """An error with its unit, as the tables write it: ``2,047 ulp``, ``11 bits``,
    ``abs 1.2e-07``, ``rel 0.031``; ``none`` alone when there is none."""
    if value is None:
        return none
    if metric == "ulp":
        return f"{format_ulp(value)} ulp"
    if metric == "bits":
        return f"{value:.3g} bits"
    text = "0" if value == 0 else f"{value:.2g}" if (abs(value) >= 1e4 or abs(value) < 1e-3) else f"{value:.3g}"
    return f"{METRICS[metric][1]} {text}"


def metric_class(value: float | None, metric: str = "ulp") -> str:
    """The colour class of an error in ``metric``: the ULP scale for ulp; bits of error map
    onto it by the ULP distance they stand for (``2**bits - 1``); abs and rel errors have no
    scale shared by every format, so they are coloured only as none/zero/non-zero."""
    if value is None or not math.isfinite(value):
        return "un"
    if metric == "ulp":
        return ulp_class(value)
    if metric == "bits":
        return ulp_class(0.5 if value == 0 else 2.0**value - 1)
    return "u0" if value == 0 else "u2"


# -- what a cell judges: the forward values or a gradient ------------------------------------------


def wrt(cell: Mapping[str, Any]) -> str:
    """The argument a gradient cell differentiates (``x``, ``p``); ``""`` for a forward
    cell, and for every cell of a schema-1 file (no ``pass`` field). The rule of
    :meth:`harness.plan.cells.CellResult.from_json`."""
    return str(cell.get("wrt") or "") if cell.get("pass", "forward") == "grad" else ""


def is_grad(cell: Mapping[str, Any]) -> bool:
    """Whether ``cell`` judges a gradient (the vector-Jacobian product autodiff returns)."""
    return bool(wrt(cell))


def cotangent(cell: Mapping[str, Any]) -> str:
    """A gradient cell's cotangent (``ones`` when the file does not say); ``""`` forward."""
    return str(cell.get("cotangent") or "ones") if is_grad(cell) else ""


def check(cell: Mapping[str, Any]) -> str:
    """The consistency check a cell runs (``position``, ``bounds``; one of
    :data:`harness.judgement.consistency.CHECKS`); ``""`` for an accuracy cell. The rule of
    :meth:`harness.plan.cells.CellResult.from_json`: ``"pass": "consistency"`` and a check."""
    return str(cell.get("check") or "") if cell.get("pass") == "consistency" else ""


def is_consistency(cell: Mapping[str, Any]) -> bool:
    """Whether ``cell`` is a consistency cell (no oracle evaluated; a check of the answers)."""
    return bool(check(cell))


@cache
def _subject(oracle: str, arg: str, impl: str = "") -> str:
    # CellSpec.subject is the one definition (it decides when ``/∂p`` is needed, and names
    # an operation without an oracle by its function); the other fields do not enter it.
    # Cached: a report asks once per cell and several times at that
    return CellSpec(oracle, impl, "", "", "", "", wrt=arg).subject


def subject(cell: Mapping[str, Any]) -> str:
    """What ``cell`` judges, as tables title it: ``softplus`` (forward), ``∂softplus``
    (the gradient of a one-argument oracle) or ``∂binary_cross_entropy/∂p``. An oracle
    unknown here (a file from a build with more oracles) gets the long form. A consistency
    cell of a user's operation without an oracle is titled by its function's name."""
    oracle = str(cell.get("oracle") or "")
    return _subject(oracle, wrt(cell), "" if oracle else str(cell.get("impl") or ""))


#: the second element of a consistency cell's :func:`group_key`: its subject's checks are
#: one group (a table whose columns are the checks), shown after the subject's other groups
CONSISTENCY_GROUP = "≡"


def group_key(cell: Mapping[str, Any]) -> tuple[str, str]:
    """The group a view shows ``cell`` in: (oracle, differentiated argument). Cotangents
    are not a group of their own: like input sets they are rows of the subject's table.
    A consistency cell's group is (its subject, :data:`CONSISTENCY_GROUP`): every check of
    one subject is a column of one table."""
    if is_consistency(cell):
        return (subject(cell), CONSISTENCY_GROUP)
    return (str(cell.get("oracle")), wrt(cell))


def group_order(keys: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """``keys`` (of :func:`group_key`) in the order views show them: the oracles in the order
    given (their first appearance), each forward group first, its gradient groups right
    after it, in the order given, and its consistency group last."""
    first: dict[str, int] = {}
    for oracle, _wrt in keys:
        first.setdefault(oracle, len(first))
    seen = list(dict.fromkeys(keys))
    return sorted(seen, key=lambda k: (first[k[0]], 2 if k[1] == CONSISTENCY_GROUP else k[1] != "", seen.index(k)))


def consistency_heading(name: str) -> str:
    """The heading of a consistency group: ``softplus — consistency``."""
    return f"{name} — consistency"


def impl_label(cell: Mapping[str, Any]) -> str:
    """The implementation with the parameters that differ from its oracle's defaults:
    ``torch.softplus (beta=2.0)``; every parameter for an oracle unknown here."""
    try:
        defaults = {p.name: p.default for p in get_oracle(str(cell.get("oracle"))).params}
    except UsageError:
        defaults = {}
    shown = ",".join(f"{k}={v}" for k, v in sorted((cell.get("params") or {}).items()) if defaults.get(k) != v)
    return str(cell.get("impl")) + (f" ({shown})" if shown else "")


def inputs_label(cell: Mapping[str, Any]) -> str:
    """The inputs column: the input spec, and a gradient cell's cotangent when it is not
    the default (``random:2000:0 · cot=random``)."""
    cot = cotangent(cell)
    return str(cell.get("inputs")) + (f" · cot={cot}" if cot and cot != "ones" else "")


def grad_heading(name: str, cotangents: Sequence[str]) -> str:
    """The heading of a gradient group: ``∂softplus — gradient (vector-Jacobian product),
    cotangent ones`` (``cotangents ones, random`` when the group has several)."""
    cots = list(dict.fromkeys(cotangents)) or ["ones"]
    noun = "cotangent" if len(cots) == 1 else "cotangents"
    return f"{name} — gradient (vector-Jacobian product), {noun} {', '.join(cots)}"


@cache
def _arg_names(oracle: str) -> tuple[str, ...] | None:
    try:
        o = get_oracle(oracle)
    except UsageError:  # an oracle unknown here: only the cotangent is named
        return None
    return tuple(a.name for a in o.args) if o.kind in ("elementwise", "rowwise") else None


def input_names(cell: Mapping[str, Any], e: Example) -> tuple[str, ...] | None:
    """The names of ``e``'s inputs where a bare list would mislead, else None: a gradient
    cell's example carries the cotangent as its last input (elementwise and row-wise
    oracles), so its inputs are named (``x``, ``cotangent``; ``""`` for one this build
    cannot name, an argument of an oracle it does not know). Forward examples and examples
    of other shapes (a row of a reduction) get None."""
    if not is_grad(cell) or len(e.input) < 2 or (e.row is not None and e.col is None):
        return None
    names = _arg_names(str(cell.get("oracle")))
    if names is not None and len(names) + 1 == len(e.input):
        return (*names, "cotangent")
    return ("",) * (len(e.input) - 1) + ("cotangent",)


def named_values(cell: Mapping[str, Any], e: Example) -> tuple[str, ...]:
    """``e``'s input values as views list them: ``x=9.078125``, ``cotangent=1.0`` for a
    gradient cell (:func:`input_names`), the plain values otherwise."""
    names = input_names(cell, e)
    if names is None:
        return e.input_values
    return tuple(f"{n}={v}" if n else v for n, v in zip(names, e.input_values, strict=False))


def named_example(cell: Mapping[str, Any], e: Example) -> Example:
    """``e`` with its inputs named as :func:`input_names` says, so that
    :meth:`~harness.judgement.summary.Example.describe` reads ``x=0x488a (9.078125),
    cotangent=0x3c00 (1.0) gave …``; forward examples come back as they are."""
    names = input_names(cell, e)
    if names is None:
        return e
    return replace(e, input=tuple(f"{n}={b}" if n else b for n, b in zip(names, e.input, strict=True)))
