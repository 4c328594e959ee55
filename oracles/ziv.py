"""Ziv's strategy: evaluate at growing precision until the rounding is certain.

Each output element is computed twice, at a working precision ``wp`` and at a higher one.
The higher-precision value ``v2`` is trusted only within the radius
``|v1 - v2| + |v2| * 2**(8 - wp2)``: the first term catches cancellation that a formula
suffers (the low-precision value is then far off), the second the few ulps of error that
mpmath's functions and a short composition of them make at ``wp2``. The element is
settled when both ends of that interval round to the same value of the output format *and*
have the same ulp in it (:func:`binade_of`, clamped at emin); otherwise both
precisions grow and the element is evaluated again. The second condition matters just
beside a power of two: exp(-2**-84) rounds to 1 in float32 from either end, but the ulp
that measures an error is that of the exact value, 2**-24 below 1 and 2**-23 above. Until
2026-12 (reference cache schema 1) settling took v2's binade, which could sit on the wrong
side of the power of two; the fast tier had to mimic that and left about 1% of exp and
sigmoid's float32 inputs to mpmath.

Which side of a power of two y lies on cannot always be settled: expm1(-7844) is
-1 + e**-7844, within 2**-11000 of -1. So the binade is defined with a band of
2**-:data:`NEAR_POWER` (relative) below every power of two, crisply: a value in
``[P (1 - 2**-NEAR_POWER), P)`` is measured in the ulp of P, as if it were P
(:func:`binade_of`). No float64 input or product of float64 values lies in that band by
accident (it is 900 binades below float64's smallest subnormal), every value in it differs
from P far below any error an implementation can make, and both the band's edge and an
exact power settle below :data:`MAX_PREC`: exp(0) = 1 and sigmoid(0) = 1/2 settle at
2,688 bits, with both ends of the interval in the band. The band ends 2**24 times farther
from P than the 2**(16 - TIE_BITS) within which a value straddling a rounding midpoint is
taken to be the midpoint, so a value in the band is never mistaken for a tie.

Exact rounding ties: a value that still straddles a rounding midpoint when the two
evaluations agree to more than :data:`TIE_BITS` bits is taken to be that midpoint and
rounded half to even. For the rational oracles (softmax of equal entries, variance
normalisation) such values are exact midpoints. A transcendental value can come within
2**-1075 (relative) of a float64 midpoint without being on it: silu(x) = x/2 + x**2/4 for
a subnormal x with an odd last bit. So the agreement asked for is 2,000 bits, beyond any
such offset; closer than that is not a practical concern. Past :data:`MAX_PREC` bits the
evaluation gives up with :class:`~oracles.errors.OracleError`, never with a guess.

This module sits below both :mod:`oracles.evaluate`, which drives it, and the fast tier
(:mod:`oracles.fast`) and the MPFR evaluator (:mod:`oracles.exact`), which must reproduce
its ``want`` and ``ulp_exp`` and so need its band (:data:`NEAR_POWER`) and exponent limit
(:data:`ULP_EXP_MAX`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from mpmath import mp, mpf

from oracles.errors import OracleError
from oracles.formats import Format
from oracles.rounding import binade, round_mpf

__all__ = [
    "FIRST_GUARD", "MAX_PREC", "NEAR_POWER", "TIE_BITS", "ULP_EXP_MAX", "Settled", "binade_of", "classify", "settle",
]

FIRST_GUARD = 30  # bits beyond the format at the first evaluation; the second adds as many
TIE_BITS = 2000  # > 1,075 + margin: see the module docstring (was 1000: silu/gelu misrounded)
MAX_PREC = 4000
NEAR_POWER = 1960  # the band below a power of two measured in its ulp: see the module docstring

_NAN = mpf("nan")
ULP_EXP_MAX = 2**31 - 1  # Reference.ulp_exp is int32


Settled = tuple[float, float, float, int]  # want, hi, lo, ulp_exp


def classify(v: Any) -> mpf:
    """Coerce an oracle's return value to mpf; complex or non-numeric results are bugs in
    the oracle (log of a negative number returns an mpc in mpmath, for example)."""
    if isinstance(v, mpf):
        return v
    if isinstance(v, (int, float)):
        return mpf(v)
    if hasattr(v, "imag") and hasattr(v, "real"):
        if v.imag == 0:
            return mpf(v.real)
        return _NAN
    raise OracleError(f"oracle returned {type(v).__name__}, expected an mpmath number")


def binade_of(v: mpf) -> int:
    """floor(log2|v|) of a finite non-zero v, but one more for |v| in the band
    ``[2**(b+1) (1 - 2**-NEAR_POWER), 2**(b+1))`` just below the next power of two: the
    binade whose ulp measures errors against v (see the module docstring). Exact."""
    b = binade(v)
    if int(v._mpf_[3]) < NEAR_POWER:  # a value in the band has at least NEAR_POWER bits
        return b
    # built and compared without rounding (abs() and negation round to the working
    # precision), so the answer does not depend on the precision it is asked at
    power, band = mp.ldexp(mpf(1), b + 1), mp.ldexp(mpf(1), b + 1 - NEAR_POWER)
    if v > 0:
        return b + 1 if v >= mp.fsub(power, band, exact=True) else b
    return b + 1 if v <= mp.fsub(band, power, exact=True) else b


def _ulp_exp(v: mpf, fmt: Format) -> int:
    """:func:`~oracles.rounding.ulp_exponent` of v with the binade of :func:`binade_of`."""
    if not v:
        return fmt.emin - fmt.precision + 1
    return max(binade_of(v), fmt.emin) - fmt.precision + 1


def _settled_value(v: mpf, fmt: Format) -> Settled:
    want = round_mpf(v, fmt)
    if v != v:
        return (math.nan, math.nan, 0.0, 0)
    if mp.isinf(v):
        return (want, float(v), 0.0, 0)
    e = _ulp_exp(v, fmt)
    scaled = mp.ldexp(v, -e)
    hi = float(scaled)
    lo = float(mp.fsub(scaled, hi, exact=True))
    # Far past overflow (exp(3e38) in bfloat16) the binade does not fit the int32 array.
    # Saturating the stored exponent keeps the ULP error exact: c / 2**e is 0 for every
    # float64 c once e > 2**11, and the true c / ulp(y) is below 2**-1000 there.
    return (want, hi, lo, min(e, ULP_EXP_MAX))


def _try_settle(v1: mpf, v2: mpf, wp2: int, fmt: Format) -> Settled | None:
    nan1, nan2 = v1 != v1, v2 != v2
    if nan1 or nan2:
        return _settled_value(v2, fmt) if nan1 and nan2 else None
    inf1, inf2 = bool(mp.isinf(v1)), bool(mp.isinf(v2))
    if inf1 or inf2:
        return _settled_value(v2, fmt) if v1 == v2 else None
    if not v2:
        return _settled_value(v2, fmt) if not v1 else None
    with mp.workprec(wp2 + 8):
        radius = abs(mp.fsub(v1, v2, exact=True)) + mp.ldexp(abs(v2), 8 - wp2)
        end_lo, end_hi = v2 - radius, v2 + radius
        r_lo = round_mpf(end_lo, fmt)
        r_hi = round_mpf(end_hi, fmt)
        # +0 == -0 counts as agreement, as it should; an interval that crosses 0 rounds
        # alike only when both ends are below the smallest subnormal, where the ulp is
        # clamped alike too
        if r_lo == r_hi and _ulp_exp(end_lo, fmt) == _ulp_exp(end_hi, fmt):
            return _settled_value(v2, fmt)
        if wp2 >= TIE_BITS and r_lo != r_hi:
            return _settle_tie(v1, v2, radius, r_lo, r_hi, fmt)
    return None


def _settle_tie(v1: mpf, v2: mpf, radius: mpf, r_lo: float, r_hi: float, fmt: Format) -> Settled | None:
    if math.isinf(r_lo) or math.isinf(r_hi):
        # the boundary between the largest finite value and infinity
        # (2**(p+1) - 1) 2**(emax-p), built exactly: Format.overflow_threshold is a float
        # and does not exist for float64 (2**1024 - 2**970 overflows)
        mid = mp.ldexp(mpf(2 ** (fmt.precision + 1) - 1), fmt.emax - fmt.precision)
        mid = mid if v2 > 0 else -mid
    else:
        mid = mp.ldexp(mp.fadd(r_lo, r_hi, exact=True), -1)
    close = mp.ldexp(abs(mid), 16 - TIE_BITS)
    if abs(v2 - mid) <= radius and abs(v1 - mid) <= close and abs(v2 - mid) <= close:
        return _settled_value(mid, fmt)
    return None


def settle(compute: Callable[[int], Sequence[Any]], n: int, fmt: Format) -> list[Settled]:
    """Evaluate ``compute(wp) -> n mpmath values`` with growing precision until every value
    rounds with certainty into ``fmt``. Raises :class:`OracleError` past :data:`MAX_PREC`."""
    wp1 = fmt.precision + FIRST_GUARD
    wp2 = wp1 + FIRST_GUARD
    out: list[Settled | None] = [None] * n
    with mp.workprec(wp1):
        prev = [classify(v) for v in compute(wp1)]
    while True:
        with mp.workprec(wp2):
            cur = [classify(v) for v in compute(wp2)]
        if len(cur) != n or len(prev) != n:
            raise OracleError(f"oracle returned {len(cur)} values, expected {n}")
        missing = False
        for i in range(n):
            if out[i] is None:
                out[i] = _try_settle(prev[i], cur[i], wp2, fmt)
                missing = missing or out[i] is None
        if not missing:
            return [o for o in out if o is not None]
        if wp2 >= MAX_PREC:
            bad = next(i for i in range(n) if out[i] is None)
            raise OracleError(
                f"value {bad} did not settle at {wp2} bits (last {mp.nstr(cur[bad], 30)}); "
                "the oracle may be inaccurate or discontinuous there"
            )
        prev, wp2 = cur, min(2 * wp2, MAX_PREC)
