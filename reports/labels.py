"""The words and numbers every view shows: incidence labels, ULP colour classes and the
ULP formatter. One definition, so the terminal, Markdown, HTML and SVG views never
disagree about what a category is called or how an error is written."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from harness.judgement.definitions import CATEGORIES

__all__ = [
    "CATEGORY_LABELS",
    "INCIDENCE_LABELS",
    "METRICS",
    "ULP_CLASSES",
    "format_metric",
    "format_ulp",
    "metric_class",
    "metric_value",
    "ulp_class",
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
