"""Turning a proven fact about the exact value into bit-exact reference arrays.

A fast tier proves something about each exact value y (it lies within a relative bound of
a float64 value, a hair beside an exact float64 on a known side, below 2**-960, past
overflow, ...); :class:`Decided` turns each such fact into the ``want`` and ``ulp_exp``
that the mpmath path (:mod:`oracles.ziv`) would record, bit for bit, or leaves the element
undecided. The caller is responsible for the fact, this module for the rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from oracles.fast.float64 import F64, MAX_BOUND, MAX_V, MIN_V, Mask
from oracles.formats import Format
from oracles.rounding import round_float64
from oracles.ziv import FIRST_GUARD, ULP_EXP_MAX

__all__ = ["Decided"]


def _binade(a: F64) -> npt.NDArray[np.int64]:
    """floor(log2|a|) of finite non-zero float64 values, exactly."""
    return np.frexp(a)[1].astype(np.int64) - 1


def _is_boundary(w: F64, fmt: Format) -> Mask:
    """Whether each w is a rounding boundary of ``fmt``: an odd multiple of half its ulp
    (a midpoint between neighbours, or the overflow threshold)."""
    q = np.maximum(_binade(w), fmt.emin) - fmt.precision + 1
    m = np.ldexp(w, 1 - q)
    return (m == np.rint(m)) & (np.fmod(m, 2) != 0)


class Decided:
    """The four :class:`~oracles.reference.Reference` arrays (flat) under construction,
    with ``done`` marking decided elements. Each method decides the elements of its mask
    that are not yet done, from a *proven* fact about the exact value y; the caller is
    responsible for the fact, the method for turning it into bit-exact ``want`` and
    ``ulp_exp``."""

    def __init__(self, n: int, fmt: Format) -> None:
        self.fmt = fmt
        self.want = np.full(n, np.nan)
        self.hi = np.full(n, np.nan)
        self.lo = np.zeros(n)
        self.ulp_exp = np.zeros(n, dtype=np.int32)
        self.done = np.zeros(n, dtype=bool)
        self._ulp0 = fmt.emin - fmt.precision + 1  # ulp of zero and of every tiny value

    def _fresh(self, mask: Mask) -> npt.NDArray[np.intp]:
        return np.flatnonzero(np.asarray(mask, dtype=bool) & ~self.done)

    def _set(self, idx: npt.NDArray[np.intp], want: Any, hi: Any, lo: Any, ulp: Any) -> None:
        self.want[idx] = want
        self.hi[idx] = hi
        self.lo[idx] = lo
        self.ulp_exp[idx] = ulp
        self.done[idx] = True

    def special(self, mask: Mask, value: float) -> None:
        """y is exactly ``value``: NaN or +-inf (as mpmath's settle records them)."""
        idx = self._fresh(mask)
        want = float(round_float64(np.array([value]), self.fmt)[0])
        self._set(idx, want, value, 0.0, 0)

    def zero(self, mask: Mask) -> None:
        """y is exactly 0 (mpmath has no signed zero: the oracle's 0 rounds to +0)."""
        self._set(self._fresh(mask), 0.0, 0.0, 0.0, self._ulp0)

    def exact(self, mask: Mask, y: F64) -> None:
        """y is exactly the float64 value ``y`` (finite, non-zero)."""
        idx = self._fresh(mask & np.isfinite(y) & (y != 0))
        ys = y[idx]
        ulp = np.maximum(_binade(ys), self.fmt.emin) - self.fmt.precision + 1
        self._set(idx, round_float64(ys, self.fmt), np.ldexp(ys, -ulp), 0.0, ulp)

    def tiny(self, mask: Mask, negative: Mask | bool, approx: F64 | float = 0.0) -> None:
        """0 < |y| < 2**-960 with the sign given by ``negative``; ``approx`` (any float64
        value close to y, 0 allowed) only feeds ``hi``."""
        idx = self._fresh(mask)
        neg = np.broadcast_to(np.asarray(negative, dtype=bool), self.done.shape)[idx]
        mag = np.abs(np.broadcast_to(np.asarray(approx, dtype=np.float64), self.done.shape)[idx])
        sign = np.where(neg, -1.0, 1.0)
        self._set(idx, sign * 0.0, sign * np.ldexp(mag, -self._ulp0), 0.0, self._ulp0)

    def below_power(self, mask: Mask, c: F64 | float, t_lo: F64 | float, t_hi: F64 | float,
                    *, mimic: bool, t_approx: F64 | float = 0.0) -> None:
        """y = c (1 - t) with c = +-2**k and 0 < t, t_lo <= t <= t_hi: y lies just inside
        the power of two c. A special case of :meth:`near`."""
        self.near(mask, c, -1.0, t_lo, t_hi, mimic=mimic, t_approx=t_approx)

    def near(self, mask: Mask, v: F64 | float, s: F64 | float, t_lo: F64 | float, t_hi: F64 | float,
             *, mimic: bool, t_approx: F64 | float = 0.0) -> None:
        """|y| = |v| (1 + s t) for an exact float64 v != 0, a known direction s = +-1 and
        0 < t with t_lo <= t <= t_hi <= 2**-(p+3) (the caller proves t > 0; t_lo may be 0):
        y is a hair away from v on a known side (tanh(x) just inside x, exp(x) just above 1,
        sigmoid(x) beside 1/2, ...).

        ``want``: w, the float64 neighbour of v on y's side, and y lie in the open interval
        (v, w] resp. beyond it; when w is not a rounding boundary of the format and w and the
        outer end v (1 + s t_hi) round alike, nothing in between is a boundary, so y rounds
        like w. This holds even when v itself is a rounding midpoint (silu(x) ~ x/2).

        ``ulp_exp``: the binade of y, unless y is within 2**(10 - wp2) of a power of two
        (wp2 = p + 60, the working precision at which mpmath settles such values): there
        the mpmath path records the binade of its own value v2, and settle trusts v2 only to
        2**(8 - wp2). ``mimic`` says more is known of mpmath's code for this oracle: it
        computes with at least 14 guard bits and rounds once to nearest (exp, tanh, expm1,
        log1p in mpmath 1.3, and the catalogue's own rounded arithmetic on them: at most
        three roundings), so v2 is within two ulps (2**(1 - wp2) relative) of y. Then
        |v| = 2**b with t >= 2**(2 - wp2) puts v2 on y's side of v, and t <= 2**-(wp2 + 3)
        makes v2 = v exactly (y is within an eighth of an ulp of v): the mpmath path
        records the ulp of v, one binade above the exact y's, and the fast tier reproduces
        that, because it must agree with the mpmath path bit for bit (and
        tests/test_fast_tier.py checks this assumption directly). In between, mpmath
        decides."""
        fmt = self.fmt
        p = fmt.precision
        wp2 = p + 2 * FIRST_GUARD
        shape = self.done.shape
        vv, ss, lo_t, hi_t = (np.broadcast_to(np.asarray(a, dtype=np.float64), shape) for a in (v, s, t_lo, t_hi))
        fine = 2.0 ** (10 - wp2)
        with np.errstate(all="ignore"):
            sel = np.asarray(mask, dtype=bool) & np.isfinite(vv) & (vv != 0) & (np.abs(vv) >= MIN_V)
            sel &= (np.abs(vv) <= MAX_V) & (lo_t >= 0) & (lo_t <= hi_t) & (hi_t <= 2.0 ** -(p + 3))
            idx = self._fresh(sel)
            vs, sg, tl, th = vv[idx], ss[idx], lo_t[idx], hi_t[idx]
            up = sg > 0  # |y| > |v|
            dirn = np.where(up == (vs > 0), np.inf, -np.inf)
            w = np.nextafter(vs, dirn)
            # fl(v + v s t_hi) is within half an ulp of the exact end, and the product's own
            # rounding (u v t_hi) is smaller than that half ulp: one step outward covers both
            outer = np.nextafter(vs + vs * np.where(up, th, -th), dirn)
            far = np.where(np.abs(outer) > np.abs(w), outer, w)
            r_w = round_float64(w, fmt)
            ok = (r_w == round_float64(far, fmt)) & ~_is_boundary(w, fmt)
            av = np.abs(vs)
            b = _binade(vs)
            pow2 = np.frexp(vs)[0] == np.copysign(0.5, vs)
            # binade of |y| where it is certain for y and for mpmath's v2 alike: 2**-40 exceeds
            # both 2**(10 - wp2) and the float64 rounding of these products
            clear_below = av * (1 - th) >= np.ldexp(1 + 2.0**-40, b)
            clear_above = av * (1 + th) <= np.ldexp(2 - 2.0**-39, b)
            side = tl >= (2.0 ** (2 - wp2) if mimic else fine)  # v2 certainly on y's side of v
            binade = np.where(up | ~pow2, b, np.where(side, b - 1, b))
            certain = np.where(up, np.where(pow2, side | mimic, clear_above),
                               np.where(pow2, side | ((th <= 2.0 ** -(wp2 + 3)) & mimic), clear_below))
            ulp = np.maximum(binade, fmt.emin) - p + 1
            # below emin the binade does not matter: the ulp is clamped either way
            certain |= (av < np.ldexp(1.0, fmt.emin)) | ((av == np.ldexp(1.0, fmt.emin)) & ~up)
            ok &= certain
            idx, vs, ulp = idx[ok], vs[ok], ulp[ok]
            t = np.broadcast_to(np.asarray(t_approx, dtype=np.float64), shape)[idx]
            self._set(idx, r_w[ok], np.ldexp(vs, -ulp), np.ldexp(vs * sg[ok] * t, -ulp), ulp)

    def huge(self, mask: Mask, k: F64, f: F64, df: float) -> None:
        """y = 2**(k + f') > 2**1000 for an integer k and |f' - f| <= df: y overflows every
        served format; ulp_exp = k - p + 1 when f' is certainly in [0, 1).

        Like the mpmath path (``_settled_value``), ulp_exp saturates at 2**31 - 1, the
        int32 limit; that takes no knowledge of f' once k - p >= 2**31 - 1 (a caller may
        pass any such k, with ``f`` then only feeding ``hi``, which is meaningless there:
        c / 2**ulp_exp is 0 for every float64 c)."""
        p = self.fmt.precision
        saturated = k - p >= ULP_EXP_MAX
        idx = self._fresh(mask & (k >= 1000) & (((f - df >= 0) & (f + df < 1)) | saturated))
        want = float(round_float64(np.array([np.inf]), self.fmt)[0])
        ulp = np.minimum(k[idx], float(ULP_EXP_MAX + p)).astype(np.int64) - p + 1
        ulp = np.minimum(ulp, ULP_EXP_MAX)
        self._set(idx, want, np.ldexp(np.exp2(np.clip(f[idx], 0.0, 1.0)), p - 1), 0.0, ulp)

    def bounded(self, mask: Mask, v: F64, bound: F64 | float) -> None:
        """|y - v| <= bound * |v|: decided where the whole interval rounds to one value of
        the format and stays in one binade (clamped at emin).

        Works on the mantissa m of v = m 2**e (0.5 <= |m| < 1; scaling by 2**e is exact).
        The interval ends |m| -+ |m| b2 are computed in float64 with b2 = bound + 2**-51:
        fl(|m| b2) loses at most u relative and the subtraction or addition at most
        u |m| (1 + b2), together less than 2**-52 |m|, so the computed ends enclose the
        exact interval. Both ends in [0.5, 1) means one binade; both ends scaled to units of
        the format's ulp and rounded half to even (rint, exact) alike means one rounded
        value, because rounding is monotonic."""
        fmt = self.fmt
        p = fmt.precision
        scalar = np.ndim(bound) == 0
        with np.errstate(all="ignore"):
            av = np.abs(v)
            sel = np.asarray(mask, dtype=bool) & ~self.done & (av >= MIN_V) & (av <= MAX_V)
            if scalar:
                if not 0 <= float(bound) <= MAX_BOUND:
                    return
            else:
                sel &= (bound >= 0) & (bound <= MAX_BOUND)
            idx = np.flatnonzero(sel)
            if not idx.size:
                return
            vs = v[idx]
            b2 = (float(bound) if scalar else np.asarray(bound)[idx]) + 2.0**-51
            m, e = np.frexp(vs)
            am = np.abs(m)
            r = am * b2
            inner, outer = am - r, am + r
            q = np.maximum(e - 1, fmt.emin) - p + 1
            # In units of the format's ulp the ends are am 2**(e - q): for every binade from
            # emin up that is am 2**p, a scalar (exact) scaling; only the values below emin
            # need their own power of two.
            unit = 2.0**p
            s_in, s_out, hi = inner * unit, outer * unit, m * unit
            low = e - 1 < fmt.emin
            if low.any():
                sh = (e - q)[low]
                s_in[low], s_out[low], hi[low] = np.ldexp(inner[low], sh), np.ldexp(outer[low], sh), np.ldexp(m[low], sh)
            ri = np.rint(s_in)
            ok = (outer < 1) & ((inner >= 0.5) | low) & (ri == np.rint(s_out))
            idx, ri, q, m, hi = idx[ok], ri[ok], q[ok], m[ok], hi[ok]
            want = np.copysign(np.ldexp(ri, q), m)
            over = np.abs(want) > fmt.largest
            if over.any():
                want[over] = np.copysign(np.inf, m[over]) if fmt.has_inf else np.nan
            self._set(idx, want, hi, 0.0, q)

