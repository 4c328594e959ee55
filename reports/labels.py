"""The words and numbers every view shows: incidence labels, ULP colour classes and the
ULP formatter. One definition, so the terminal, Markdown, HTML and SVG views never
disagree about what a category is called or how an error is written."""

from __future__ import annotations

import math

from harness.judgement.definitions import CATEGORIES

__all__ = ["CATEGORY_LABELS", "INCIDENCE_LABELS", "ULP_CLASSES", "format_ulp", "ulp_class"]

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
