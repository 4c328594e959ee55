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
* **Bits of error** (Herbie's): ``log2(1 + |ord(c) - ord(R(y))|)``, where ``ord`` numbers
  the output format's values in order: ``ord(+0) = ord(-0) = 0``, ``ord(x) = -ord(-x)``,
  consecutive values one apart, ``ord(+-inf) = +-(ord(largest finite) + 1)`` (an infinity
  is the value just beyond the largest finite one, as in the format's bit patterns). 0
  for a correctly rounded result, 1 for a neighbour, at most the format's width. Defined
  wherever neither c nor R(y) is NaN: an infinite result or truth has bits like any other
  value (inf against R(y) = largest is 1 bit, against 1.0 about width - 1), while NaN is
  judged by the incidence categories only. Kept as an exact histogram of the ordinal
  distance ``d`` by bit length (bucket ``k`` holds ``d`` in ``[2**(k-1), 2**k - 1]``, so
  its bits lie in ``(k - 1, k]``), the exact largest distance, and the sum of ``floor(2**32
  log2(1 + d))`` (an integer, so means merge exactly; the mean is low by under 2**-32 bits).
* **Absolute error** ``|c - y|`` and **relative error** ``|c - y| / |y|``, y the exact
  value (the reference's double-double), for finite c and finite y, exactly where the ULP
  error is defined: ``|c - y| = ulp_err * ulp(y)`` (a power-of-two scaling) and
  ``|c - y| / |y| = ulp_err / |hi + lo|``. At y = 0 the relative error is 0 when c = 0 and
  undefined otherwise (counted apart as ``rel_undefined``, never infinite). Both are kept
  in the ULP error's fine bins (16 per octave; their percentiles are upper bounds within
  4.4%): the absolute error's bin is the ULP error's bin shifted by ``16 * log2 ulp(y)``
  (exact, and errors below 2**-24 ulp(y) share that bin), the relative error's is computed
  from its float64 value (errors below 2**-1022 share one bin). Absolute and relative
  errors saturate at the largest float64 (only float64 cells against truths beyond it
  get there).
* **Tolerance** (``torch.testing.assert_close``): an element is over ``atol + rtol * |y|``
  when c and y are finite and ``|c - y| > atol + rtol * |y|``; NaN and infinities are left
  to the incidence categories. Counted per element in float64 and decided exactly (with
  rationals) where float64 is too close to call. :data:`TORCH_TOLERANCES` holds torch's
  per-dtype defaults.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from oracles.formats import Format
from oracles.reference import Reference

__all__ = [
    "BINS_PER_OCTAVE",
    "BITS_SHIFT",
    "BLOCK",
    "CATEGORIES",
    "DEFECTS",
    "LOWEST_BIN",
    "MAX_FLOAT",
    "SUM_SHIFT",
    "TORCH_TOLERANCES",
    "ULP_ERR_MAX",
    "Tolerance",
    "bits_of_error",
    "category_indices",
    "ordinal_distance",
    "ordinals",
    "ulp_errors",
]

#: elements judged per block of the fused pass (and of the profile's input side)
BLOCK = 1 << 16  # measured: 2**15 and 2**17 are 10-20% slower, 2**20 60%

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
MAX_FLOAT = float(np.finfo(np.float64).max)  # absolute and relative errors saturate here
#: the bits-of-error sum counts units of 2**-BITS_SHIFT bits (an integer, so it merges exactly)
BITS_SHIFT = 32

#: (atol, rtol) of an element-wise tolerance: |c - y| <= atol + rtol * |y|
Tolerance = tuple[float, float]

#: torch.testing.assert_close's defaults, ``torch.testing._comparison._DTYPE_PRECISIONS``
#: ({dtype: (rtol, atol)} there), as (atol, rtol) per output format name
TORCH_TOLERANCES: dict[str, Tolerance] = {
    "float16": (1e-5, 1e-3),
    "bfloat16": (1e-5, 1.6e-2),
    "float32": (1e-5, 1.3e-6),
    "float64": (1e-7, 1e-7),
}


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


def ordinals(x: npt.NDArray[np.float64], fmt: Format) -> npt.NDArray[np.int64]:
    """``ord`` of values of ``fmt`` given as float64 (NaN gives an unspecified number):
    consecutive values of the format are one apart, +0 and -0 are both 0, and the
    infinities are one beyond the largest finite values. Integer arithmetic on the
    float64 bits, exact for every format of up to 53 bits of precision."""
    p, emin = fmt.precision, fmt.emin
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    mag = bits & 0x7FFFFFFFFFFFFFFF
    # a normal value 2**E (1 + f): (E - emin + 1) 2**(p-1) + f 2**(p-1); a subnormal one
    # (below 2**emin) is a whole number of smallest subnormals
    ordv = (mag >> (53 - p)) - ((1023 + emin - 1) << (p - 1))
    small = mag < ((1023 + emin) << 52)
    if small.any():
        ordv[small] = (np.abs(x[small]) / fmt.smallest_subnormal).astype(np.int64)
    inf = mag == (0x7FF << 52)
    if inf.any():
        ordv[inf] = (fmt.emax - fmt.emin + 2) * (1 << (p - 1))  # ord(largest) + 1
    neg = bits >> 63  # 0 or -1
    ordv ^= neg
    ordv -= neg
    return ordv


def ordinal_distance(c: npt.NDArray[np.float64], want: npt.NDArray[np.float64], fmt: Format) -> npt.NDArray[np.uint64]:
    """``|ord(c) - ord(want)|`` as unsigned integers (float64's distances reach 2**64 - 2**53)."""
    a, b = ordinals(c, fmt), ordinals(want, fmt)
    with np.errstate(over="ignore"):
        return np.where(a >= b, a.view(np.uint64) - b.view(np.uint64), b.view(np.uint64) - a.view(np.uint64))


def bits_of_error(c: float, want: float, fmt: Format) -> float | None:
    """Herbie's bits of error of one element, ``log2(1 + |ord(c) - ord(R(y))|)`` (None
    where either is NaN)."""
    if math.isnan(c) or math.isnan(want):
        return None
    d = int(ordinal_distance(np.array([c]), np.array([want]), fmt)[0])
    return math.log2(1 + d)
