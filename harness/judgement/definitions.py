"""What a verdict is: the incidence categories, the ULP error and the histogram's bins.

The leaf of :mod:`harness.judgement`: :mod:`.tally` (the fast judge), :mod:`.summary` (the
mergeable record) and :mod:`.error_vs_input` (profiles) all compute with these, so each
definition is written once.

* ``ulp(y) = 2**(max(e, emin) - p + 1)`` with ``e = floor(log2|y|)``: the ulp of the
  *exact* value in the output format; ``ulp(0)`` is the smallest subnormal.
* ULP error ``|c - y| / ulp(y)``, for a finite computed ``c`` and a finite exact ``y``.
* ``correctly_rounded``: ``c == R(y)`` as values (+0 equals -0), or both NaN.
* Incidence categories, each element in at most one, the first that applies winning:
  ``unexpected_nan`` (c NaN, y not), ``missing_nan`` (y NaN, c not), ``unexpected_inf``
  (c infinite and not R(y)), ``inherent_inf`` (c infinite and equal to R(y): the truth
  overflows), ``missing_inf`` (c finite where R(y) is infinite), ``lost_to_zero`` (c zero
  where R(y) is not).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from oracles.reference import Reference

__all__ = [
    "BINS_PER_OCTAVE",
    "CATEGORIES",
    "DEFECTS",
    "LOWEST_BIN",
    "SUM_SHIFT",
    "ULP_ERR_MAX",
    "category_indices",
    "ulp_errors",
]

CATEGORIES: tuple[str, ...] = (
    "unexpected_nan",
    "missing_nan",
    "unexpected_inf",
    "inherent_inf",
    "missing_inf",
    "lost_to_zero",
)
#: the categories that are defects of the arithmetic (inherent_inf is correct behaviour
#: shown for information; missing_inf and lost_to_zero are judged by budgets)
DEFECTS: tuple[str, ...] = ("unexpected_nan", "missing_nan", "unexpected_inf")

BINS_PER_OCTAVE = 16
#: errors below 2**-24 ULP share the lowest bin: they are all "exact" for any table
LOWEST_BIN = -24 * BINS_PER_OCTAVE
SUM_SHIFT = 1074  # ulp_sum is an integer count of 2**-1074, so float sums are exact
ULP_ERR_MAX = 2.0**1023  # ULP errors saturate here (only float64 cells get near it)


def ulp_errors(ref: Reference, got64: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """|c - y| / ulp(y) per element (NaN where c or y is not finite). Exact up to the
    double-double representation of y: scaling by a power of two is exact, and c / ulp(y)
    - hi is exact whenever the two are close (Sterbenz)."""
    c = np.asarray(got64, dtype=np.float64).ravel()
    hi, lo, e = ref.hi.ravel(), ref.lo.ravel(), ref.ulp_exp.ravel()
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.ldexp(c, -e.astype(np.int64))
        err = np.abs((scaled - hi) - lo)
    err[~(np.isfinite(c) & np.isfinite(hi))] = np.nan
    # In a float64 cell the ratio can pass float64's range (c = 1e300 against y = 2**-1074):
    # saturate at 2**1023 instead. inf breaks the exact sum (int64 cast) and lands in the
    # "<= 1 ulp" fine bin; anything above 2**1023 makes the bucket edge 2.0**1024 overflow.
    return np.minimum(err, ULP_ERR_MAX)


def category_indices(want: npt.NDArray[np.float64], hi: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> npt.NDArray[np.int8]:
    """Category index per element (-1 for none), the first applicable one winning."""
    y_nan = np.isnan(hi)
    c_nan = np.isnan(c)
    c_inf = np.isinf(c)
    want_inf = np.isinf(want)
    with np.errstate(invalid="ignore"):
        rules = (
            c_nan & ~y_nan,
            y_nan & ~c_nan,
            c_inf & (c != want),
            c_inf & (c == want),
            np.isfinite(c) & want_inf,
            (c == 0) & (want != 0) & ~np.isnan(want),
        )
    out = np.full(c.shape, -1, dtype=np.int8)
    for idx in range(len(rules) - 1, -1, -1):  # reverse so the first rule wins
        out[rules[idx]] = idx
    return out
