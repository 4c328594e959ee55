"""The float64 side of the fast tier: its error model and the building blocks with bounds.

The constants are the error model of :mod:`oracles.fast` (its docstring derives them):
``U`` the unit roundoff, ``LIBM`` and ``ERFC`` the assumed accuracy of the libm calls, which
:func:`libm_trusted` checks once per process. The functions are float64 computations
shared by several tiers, each with its proven relative error bound in its docstring.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from mpmath import mp, mpf

__all__ = [
    "ERFC",
    "ERF_SMALL",
    "ERF_SMALL_BOUND",
    "F64",
    "HUGE_X",
    "INV_SQRT_2PI",
    "L2E_HI",
    "L2E_LO",
    "LIBM",
    "MARGIN",
    "MAX_BOUND",
    "MAX_V",
    "MIN_V",
    "RSQRT2",
    "SMALL",
    "Mask",
    "Params",
    "U",
    "erf_small",
    "erfc",
    "libm_trusted",
    "log2_exp",
    "log2_exp_bounds",
    "sigmoid64",
    "softplus64",
    "two_prod",
]

F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Params = Mapping[str, float | str]

U = 2.0**-53
LIBM = 2.0**-48
ERFC = 2.0**-46
MIN_V = 2.0**-1000  # decided values stay this far inside float64's normal range ...
MAX_V = 2.0**1020  # ... so that Decided's endpoint arithmetic cannot under/overflow
MAX_BOUND = 2.0**-20  # a bound this loose decides nothing useful; leave it to mpmath
HUGE_X = 2.0**31  # exp/expm1: log2_exp is exact enough up to here; beyond, ulp_exp saturates
MARGIN = 1.01
SMALL = 2.0**-30  # |x| up to this: y from a two-term expansion with an explicit remainder

# log2(e) as a double-double: L2E_HI + L2E_LO within 2**-106 relative
L2E_HI = 1.4426950408889634
L2E_LO = 2.0355273740931033e-17
RSQRT2 = 0.7071067811865476  # fl(1/sqrt(2)), relative error <= u
INV_SQRT_2PI = 0.3989422804014327  # fl(1 / sqrt(2 pi)), relative error <= u


# -- the libm assumption, checked ------------------------------------------------------


@functools.lru_cache(maxsize=1)
def libm_trusted() -> bool:
    """Whether numpy's float64 exp/log/log1p/expm1/tanh and math.erfc are within 4 ulps
    (2**-50 relative; the tier assumes 2**-48) on a fixed sample covering each function's
    awkward regions. Runs once per process (about 20 ms)."""
    grid = np.linspace(-1.0, 1.0, 41)
    small = np.array([2.0**-k for k in (1, 3, 8, 20, 30, 52, 60, 200, 900, 1000)])
    small = np.concatenate([small, -small])
    cases: list[tuple[Callable[[F64], F64], Callable[[Any], Any], F64, float]] = [
        (np.exp, mp.exp, np.concatenate([grid * 700, grid, small]), LIBM),
        (np.log, mp.log, np.concatenate([np.exp(grid * 700), 1 + small[np.abs(small) < 1], [0.5, 2.0, 1e-310]]), LIBM),
        (np.log1p, mp.log1p, np.concatenate([np.expm1(grid * 30), small]), LIBM),
        (np.expm1, mp.expm1, np.concatenate([grid * 700, grid * 0.5, small]), LIBM),
        (np.tanh, mp.tanh, np.concatenate([grid * 20, grid * 0.5, small]), LIBM),
        (erfc, mp.erfc, np.concatenate([grid * 6, 6 + (grid + 1) * 10]), ERFC),
    ]
    with mp.workprec(128), np.errstate(all="ignore"):
        for ours, exact, xs, assumed in cases:
            xs = xs[np.isfinite(xs)]
            got = ours(xs)
            for x, g in zip(xs.tolist(), got.tolist(), strict=True):
                y = exact(mpf(x))
                if not y or abs(y) < mpf(2) ** -1000:
                    continue
                if not (abs(mpf(g) - y) <= abs(y) * (assumed / 4)):
                    return False
    return True


def erfc(t: F64) -> F64:
    """glibc's erfc, element by element (numpy has none; scipy's is not documented to a
    ulp bound). fromiter over map is 30% faster than a frompyfunc ufunc."""
    a = np.asarray(t, dtype=np.float64)
    return np.fromiter(map(math.erfc, a.ravel().tolist()), np.float64, a.size).reshape(a.shape)



#: erf's Maclaurin coefficients (-1)**n / (n! (2n + 1)), n = 0..5
_ERF_SERIES = (1.0, -1.0 / 3, 1.0 / 10, -1.0 / 42, 1.0 / 216, -1.0 / 1320)
_TWO_RSQRTPI = 1.1283791670955126  # fl(2 / sqrt(pi)), relative error <= u
ERF_SMALL = 2.0**-4  # |z| up to this: erf_small is within ERF_SMALL_BOUND
ERF_SMALL_BOUND = 5 * U


def erf_small(z: F64) -> F64:
    """erf(z) for |z| <= :data:`ERF_SMALL`, within :data:`ERF_SMALL_BOUND` relative,
    vectorised (math.erfc is one Python call an element).

    (2/sqrt pi) z P(z^2), P the series' first six terms. The series alternates with
    falling terms, so the rest is below the next one, z^12 / 9360 < 2**-61 relative. Horner
    on w = z^2 <= 2**-8: the last step's product and sum round (under u (1 + w/3)), the
    earlier steps and the rounded coefficients move P by under u w / 2, and z^2's own
    rounding by under u w / 3: under 1.01u in all. The constant (u) and the two products
    (2u) bring it below 4.1u."""
    w = z * z
    acc = np.full_like(w, _ERF_SERIES[-1])
    for c in _ERF_SERIES[-2::-1]:
        acc = acc * w + c
    return _TWO_RSQRTPI * z * acc


# -- shared float64 building blocks ----------------------------------------------------


def two_prod(a: F64, b: F64 | float) -> tuple[F64, F64]:
    """p + e == a * b exactly (Dekker with Veltkamp's split; |a|, |b| <= 2**900); ``b`` a
    number or an array like ``a``."""
    p = a * b
    c = a * 134217729.0
    ah = c - (c - a)
    al = a - ah
    cb = b * 134217729.0
    bh = cb - (cb - b)
    bl = b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def log2_exp(x: F64) -> tuple[F64, F64]:
    """log2(e**x) = k + f for 700 < x <= 2**31, k an integer, |f - exact| <= 2**-50.

    x L2E_HI = p1 + e1 exactly; k = floor(p1) and r = p1 - k are exact (p1 < 2**32 is a
    multiple of ulp(p1) <= 2**-20, and so is k); e1 (< 2**-21), x L2E_LO (< 2**-24) and
    their sum round with error < 2**-72, the final r + s with error <= u, and the dropped
    x (log2 e - L2E_HI - L2E_LO) is below 2**-70: |f - exact| < 2**-52."""
    p1, e1 = two_prod(x, L2E_HI)
    k = np.floor(p1)
    f = (p1 - k) + (e1 + x * L2E_LO)
    return k, f



def log2_exp_bounds(z: F64, extra: float = 0.0) -> tuple[F64, F64]:
    """Bounds (lo, hi) on log2 t for t = 2**extra e**z / (1 + e**z) or t = 2**extra e**z,
    z <= -20 (extra = 1 for tanh's 2E / (1 + E)): log2 t = extra + z log2 e - log2(1 + e**z),
    the last term in [0, 2**-27]. z L2E_HI within 2**-45 relative covers L2E_HI's and the
    product's roundings. The bounds only feed the comparison with -NEAR_POWER
    (:meth:`Decided.near`), for t below float64's range."""
    l2 = z * L2E_HI + extra
    return l2 - np.abs(z) * 2.0**-44 - 2.0**-27, l2 + np.abs(z) * 2.0**-44


def sigmoid64(x: F64) -> F64:
    """1 / (1 + e**-x) for x >= 0, e**x / (1 + e**x) below: relative error
    <= 1.5 LIBM + 2u for x >= -700.

    With E = e**-|x| <= 1 computed as E (1 + eta): 1 + E(1 + eta) = (1 + E)(1 + E eta /
    (1 + E)), so the sum carries at most LIBM/2 (plus u for its rounding) and the division
    u; for x < 0 the numerator adds its own LIBM."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus64(z: F64) -> F64:
    """log(1 + e**z) for an exact float64 z >= -700: relative error <= 2 LIBM + u.

    z > 0: z + log1p(e**-z); log1p has condition number a / ((1 + a) log1p(a)) <= 1 at
    a = e**-z, so the log1p term carries 2 LIBM; adding the positive z dilutes that and
    rounds once (u). z <= 0: log1p(e**z), 2 LIBM by the same argument."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))  # the + is exact for z <= 0

