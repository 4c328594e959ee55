"""Correct rounding into a :class:`~oracles.formats.Format`, directly and only once.

Two entry points: :func:`round_mpf` rounds one arbitrary-precision mpmath value, and
:func:`round_float64` rounds a float64 array. Both round half to even, with gradual
underflow and overflow to infinity exactly as IEEE 754 does. Neither goes through an
intermediate format: ml_dtypes' float64 -> bfloat16 cast goes through float32 and can
round twice, which is why this module exists.

The format argument is anything with a format's parameters (:class:`FormatParams`), not
:class:`~oracles.formats.Format` itself: ``Format.from_float64`` rounds with this module,
so this module naming ``Format`` would make the two import each other.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import numpy.typing as npt
from mpmath import mpf
from mpmath.libmp import finf, fnan, fninf

__all__ = ["FormatParams", "binade", "round_float64", "round_mpf", "ulp_exponent"]


class FormatParams(Protocol):
    """What rounding needs of a format; :class:`~oracles.formats.Format` provides it."""

    @property
    def precision(self) -> int:
        """Significand bits, the hidden bit included."""

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""

    @property
    def emax(self) -> int:
        """Exponent of the largest finite number."""

    @property
    def has_inf(self) -> bool:
        """False for formats that overflow to NaN (float8 e4m3fn)."""

    @property
    def largest(self) -> float:
        """The largest finite value."""


def binade(v: mpf) -> int:
    """floor(log2(|v|)) of a finite non-zero mpf, exactly."""
    _sign, _man, exp, bc = v._mpf_
    return int(exp) + int(bc) - 1


def ulp_exponent(v: mpf | float, fmt: FormatParams) -> int:
    """log2 of ulp(v) in ``fmt``: ``max(floor(log2|v|), emin) - p + 1``; ulp(0) is the
    smallest subnormal. Values beyond the largest finite keep their own binade, so the ULP
    error of a finite result against an overflowing truth stays finite."""
    if not isinstance(v, mpf):
        v = mpf(v)
    if not v:
        return fmt.emin - fmt.precision + 1
    return max(binade(v), fmt.emin) - fmt.precision + 1


def round_mpf(v: mpf, fmt: FormatParams) -> float:
    """Round an mpf to the nearest value of ``fmt`` (ties to even), returned as an exact
    float64. NaN stays NaN; overflow gives +-inf (NaN for a format without infinities)."""
    raw = v._mpf_
    if raw == fnan:
        return math.nan
    if raw == finf:
        return math.inf if fmt.has_inf else math.nan
    if raw == fninf:
        return -math.inf if fmt.has_inf else math.nan
    sign, man, exp, bc = raw
    if not man:
        return 0.0
    q = max(int(exp) + int(bc) - 1, fmt.emin) - fmt.precision + 1
    shift = q - int(exp)
    if shift <= 0:
        m = int(man) << -shift
    elif shift > int(bc):
        m = 0  # below half the smallest unit; avoids building a huge 1 << (shift - 1)
    else:
        m = int(man) >> shift
        rem = int(man) - (m << shift)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and m & 1):
            m += 1
    # m <= 2**p, and m == 2**p only when rounding carried into the next binade. The value
    # m * 2**q is past the largest finite exactly when its binade exceeds emax; testing
    # that on integers avoids math.ldexp overflowing for float64 itself.
    if q + m.bit_length() - 1 > fmt.emax:
        result = math.inf if fmt.has_inf else math.nan
    else:
        result = math.ldexp(float(m), q)
    return -result if sign else result


def _hardware_subnormals() -> bool:
    """Whether the CPU converts to float32 subnormals now: a library built with fast-math
    can turn flush-to-zero on for the process at any time, so this is asked per call."""
    return bool(np.float32(2.0**-149) != 0)


def round_float64(values: npt.ArrayLike, fmt: FormatParams) -> npt.NDArray[np.float64]:
    """Round float64 values into ``fmt`` (ties to even, subnormals, overflow), returning
    float64 carriers of the rounded values. Exact: scaling by a power of two and ``rint``
    are exact operations in binary floating point."""
    x = np.asarray(values, dtype=np.float64)
    if fmt.precision >= 53 and fmt.emin <= -1022:
        return x.copy()
    if (fmt.precision, fmt.emin, fmt.emax, fmt.has_inf) == (24, -126, 127, True) and _hardware_subnormals():
        # float32 itself: the hardware conversion rounds once, half to even, with gradual
        # underflow (unless flush-to-zero is on) and overflow to inf (IEEE 754
        # convertFormat); 5x faster than below.
        # tests/ground_truth/test_rounding.py holds it to the generic path.
        with np.errstate(over="ignore", invalid="ignore"):  # invalid: a signalling NaN
            return x.astype(np.float32).astype(np.float64)
    out = np.array(x, dtype=np.float64, copy=True)
    finite = np.isfinite(x) & (x != 0)
    xf = x[finite]
    _, e = np.frexp(xf)  # xf = m * 2**e with 0.5 <= |m| < 1, so floor(log2|xf|) = e - 1
    q = np.maximum(e - 1, fmt.emin) - fmt.precision + 1
    # Near float64's own maximum the carry of rint can reach 2**1024; that inf is the right
    # answer (it is past every narrower format's largest), so the warning is noise.
    with np.errstate(over="ignore"):
        r = np.ldexp(np.rint(np.ldexp(xf, -q)), q)
    over = np.abs(r) > fmt.largest
    if over.any():
        r[over] = np.copysign(np.inf if fmt.has_inf else np.nan, xf[over])
    out[finite] = r
    if not fmt.has_inf:
        out[np.isinf(x)] = np.nan
    return out


