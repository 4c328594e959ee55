"""Turning a proven fact about the exact value into bit-exact reference arrays.

A fast tier proves something about each exact value y (it lies within a relative bound of
a float64 value, a hair beside an exact float64 on a known side, below 2**-960, past
overflow, ...); :class:`Decided` turns each such fact into the ``want`` and ``ulp_exp``
that the mpmath path (:mod:`oracles.ziv`) would record, bit for bit, or leaves the element
undecided. The caller is responsible for the fact, this module for the rounding.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from oracles.fast.float64 import F64, MAX_BOUND, MAX_V, MIN_V, Mask
from oracles.formats import Format
from oracles.rounding import round_float64
from oracles.ziv import NEAR_POWER, ULP_EXP_MAX

__all__ = ["Decided"]


def _binade(a: F64) -> npt.NDArray[np.int64]:
    """floor(log2|a|) of finite non-zero float64 values, exactly."""
    return np.frexp(a)[1].astype(np.int64) - 1


_NONE = np.zeros(0, dtype=np.intp)


def _pow2(k: npt.NDArray[np.int64]) -> F64:
    """2.0**k, exactly, from the exponent bits (ldexp is several times slower); the
    callers' k are ulp exponents of served formats, well inside [-1022, 1023]."""
    if k.size and (k.min() < -1022 or k.max() > 1023):
        return np.ldexp(1.0, k.astype(np.int32))
    return ((k + 1023).astype(np.int64) << 52).view(np.float64)


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

    def __init__(self, n: int, fmt: Format, into: tuple[F64, F64, F64, npt.NDArray[np.int32]] | None = None) -> None:
        """``into``: four arrays of n elements (views into a larger reference, say) to fill
        in place of fresh ones, which saves copying the block afterwards."""
        self.fmt = fmt
        self.n = n
        if into is None:
            self.want, self.hi, self.lo = np.empty(n), np.empty(n), np.empty(n)
            self.ulp_exp = np.empty(n, dtype=np.int32)
        else:
            self.want, self.hi, self.lo, self.ulp_exp = into
        self.want.fill(np.nan)
        self.hi.fill(np.nan)
        self.lo.fill(0.0)
        self.ulp_exp.fill(0)
        self.done = np.zeros(n, dtype=bool)
        self._ulp0 = fmt.emin - fmt.precision + 1  # ulp of zero and of every tiny value

    def todo(self, mask: Mask) -> Mask:
        """The elements of ``mask`` not yet decided. A tier tests ``todo(m).any()`` before
        computing the arguments of a regime: an exhaustive chunk's block of contiguous
        bit patterns is usually all in one regime, and the others then cost nothing."""
        return np.asarray(mask, dtype=bool) & ~self.done

    def _fresh(self, mask: Mask) -> npt.NDArray[np.intp]:
        m = np.asarray(mask, dtype=bool)
        if not m.any():  # most regimes are empty in most blocks: one pass, and out
            return _NONE
        return np.flatnonzero(m & ~self.done)

    def _set(self, idx: npt.NDArray[np.intp], want: Any, hi: Any, lo: Any, ulp: Any) -> None:
        if not idx.size:
            return
        if idx.size == self.n:  # the whole block (an exhaustive chunk is often one regime)
            self.want[:], self.hi[:], self.lo[:], self.ulp_exp[:] = want, hi, lo, ulp
            self.done[:] = True
            return
        self.want[idx] = want
        self.hi[idx] = hi
        self.lo[idx] = lo
        self.ulp_exp[idx] = ulp
        self.done[idx] = True

    def special(self, mask: Mask, value: float) -> None:
        """y is exactly ``value``: NaN or +-inf (as mpmath's settle records them)."""
        idx = self._fresh(mask)
        if not idx.size:
            return
        want = float(round_float64(np.array([value]), self.fmt)[0])
        self._set(idx, want, value, 0.0, 0)

    def zero(self, mask: Mask) -> None:
        """y is exactly 0 (mpmath has no signed zero: the oracle's 0 rounds to +0)."""
        self._set(self._fresh(mask), 0.0, 0.0, 0.0, self._ulp0)

    def exact(self, mask: Mask, y: F64) -> None:
        """y is exactly the float64 value ``y`` (finite, non-zero)."""
        if not np.any(mask):
            return
        idx = self._fresh(mask & np.isfinite(y) & (y != 0))
        ys = y[idx]
        ulp = np.maximum(_binade(ys), self.fmt.emin) - self.fmt.precision + 1
        self._set(idx, round_float64(ys, self.fmt), np.ldexp(ys, -ulp), 0.0, ulp)

    def tiny(self, mask: Mask, negative: Mask | bool, approx: F64 | float = 0.0) -> None:
        """0 < |y| < 2**-960 with the sign given by ``negative``; ``approx`` (any float64
        value close to y, 0 allowed) only feeds ``hi``."""
        idx = self._fresh(mask)
        if not idx.size:
            return
        neg = np.broadcast_to(np.asarray(negative, dtype=bool), self.done.shape)[idx]
        mag = np.abs(np.broadcast_to(np.asarray(approx, dtype=np.float64), self.done.shape)[idx])
        sign = np.where(neg, -1.0, 1.0)
        self._set(idx, sign * 0.0, sign * np.ldexp(mag, -self._ulp0), 0.0, self._ulp0)

    def below_power(self, mask: Mask, c: F64 | float, t_lo: F64 | float, t_hi: F64 | float,
                    *, t_approx: F64 | float = 0.0, log2_t: tuple[F64, F64] | None = None) -> None:
        """y = c (1 - t) with c = +-2**k and 0 < t, t_lo <= t <= t_hi: y lies just inside
        the power of two c. A special case of :meth:`near`."""
        self.near(mask, c, -1.0, t_lo, t_hi, t_approx=t_approx, log2_t=log2_t)

    def near(self, mask: Mask, v: F64 | float, s: F64 | float, t_lo: F64 | float, t_hi: F64 | float,
             *, t_approx: F64 | float = 0.0, log2_t: tuple[F64, F64] | None = None) -> None:
        """|y| = |v| (1 + s t) for an exact float64 v != 0, a known direction s = +-1 and
        0 < t with t_lo <= t <= t_hi <= 2**-(p+3) (the caller proves t > 0; t_lo may be 0):
        y is a hair away from v on a known side (tanh(x) just inside x, exp(x) just above 1,
        sigmoid(x) beside 1/2, ...).

        ``want``: w, the float64 neighbour of v on y's side, and y lie in the open interval
        (v, w] resp. beyond it; when w is not a rounding boundary of the format and w and the
        outer end v (1 + s t_hi) round alike, nothing in between is a boundary, so y rounds
        like w. This holds even when v itself is a rounding midpoint (silu(x) ~ x/2).

        ``ulp_exp``: the binade of y as :func:`oracles.ziv.binade_of` defines it, which is
        what the mpmath path records. For any v but a power of two that is v's binade b
        where the outer end stays inside [2**b, 2**(b+1)) (a float64 below 2**(b+1) is
        below the band under it). For |v| = 2**b it is b above v; inside it is b - 1 when
        t > 2**-NEAR_POWER and b when t is within that band, since t <= 2**-(p+3) keeps y
        within a factor 2. Any t_lo > 0 is above the band (float64 has nothing below
        2**-1074); where t underflows float64 (expm1 of x < -745), ``log2_t`` = (lo, hi),
        bounds on log2 t, tells which side of the band t is on."""
        fmt = self.fmt
        p = fmt.precision
        idx = self._fresh(mask)
        if not idx.size:
            return
        if np.ndim(v) == 0 and self._near_value(idx, float(v), s, t_lo, t_hi, t_approx, log2_t):  # type: ignore[arg-type]
            return
        with np.errstate(all="ignore"):
            # only the masked elements are gathered: most of a block is in other regimes
            vs, sg, tl, th = (self._gather(a, idx) for a in (v, s, t_lo, t_hi))
            av = np.abs(vs)
            ok = (av >= MIN_V) & (av <= MAX_V) & (tl >= 0) & (tl <= th) & (th <= 2.0 ** -(p + 3))
            if not ok.all():
                idx, vs, sg, tl, th, av = idx[ok], vs[ok], sg[ok], tl[ok], th[ok], av[ok]
            up = sg > 0  # |y| > |v|
            m, e = np.frexp(vs)
            b = e.astype(np.int64) - 1
            pow2 = np.abs(m) == 0.5
            # v a value of the format (1, 1/2, x itself: nearly always): y is within
            # |v| 2**-(p+3) of it, under half the gap to either neighbour, so it rounds to v
            # and, unless v is a power of two, stays in v's binade
            want = round_float64(vs, fmt)
            inside = want == vs
            ok = np.ones(idx.shape, dtype=bool)
            gen = np.flatnonzero(~inside)
            if gen.size:
                g_v, g_up, g_th = vs[gen], up[gen], th[gen]
                dirn = np.where(g_up == (g_v > 0), np.inf, -np.inf)
                w = np.nextafter(g_v, dirn)
                # fl(v + v s t_hi) is within half an ulp of the exact end, and the product's
                # own rounding (u v t_hi) is smaller than that half ulp: one step outward
                # covers both
                outer = np.nextafter(g_v + g_v * np.where(g_up, g_th, -g_th), dirn)
                # the one of w and outer farther from v: the larger magnitude above v, the
                # smaller inside (until 2026-12 the larger in both directions, which missed a
                # boundary inside a v that is not a value of the format)
                far = np.where((np.abs(outer) > np.abs(w)) == g_up, outer, w)
                r_w = round_float64(w, fmt)
                want[gen] = r_w
                ok[gen] = (r_w == round_float64(far, fmt)) & ~_is_boundary(w, fmt)
                # the end of [v, outer] away from v stays in v's binade (it lies beyond v)
                inside[gen] = np.frexp(far)[1] == e[gen]
            above_band = tl > 0
            below_band = np.zeros(idx.shape, dtype=bool)
            if log2_t is not None:
                l2_lo, l2_hi = (self._gather(a, idx) for a in log2_t)
                above_band |= l2_lo > -NEAR_POWER
                below_band = l2_hi < -NEAR_POWER
            binade = np.where(pow2 & ~up & above_band, b - 1, b)
            ulp = np.maximum(binade, fmt.emin) - p + 1
            # below emin the binade does not matter: the ulp is clamped either way
            ok &= np.where(pow2, up | above_band | below_band, inside) | (av <= 2.0**fmt.emin)
            if not ok.all():
                idx, vs, sg, ulp, want = idx[ok], vs[ok], sg[ok], ulp[ok], want[ok]
            t = self._gather(t_approx, idx)
            scale = _pow2(-ulp)
            self._set(idx, want, vs * scale, vs * sg * t * scale, ulp)

    def _near_value(self, idx: npt.NDArray[np.intp], v: float, s: F64 | float, t_lo: F64 | float,
                    t_hi: F64 | float, t_approx: F64 | float, log2_t: tuple[F64, F64] | None) -> bool:
        """near() where v is one number that is a value of the format (1, 1/2, 1/4: the
        Taylor regimes at 0, a third of an exhaustive float32 run's chunks): v's rounding,
        binade and range are worked out once, not per element, with the same results as the
        general path. False (nothing done) for any other v."""
        fmt = self.fmt
        p = fmt.precision
        if not (MIN_V <= abs(v) <= MAX_V) or float(round_float64(np.array([v]), fmt)[0]) != v:
            return False
        m, e = math.frexp(v)
        b = e - 1
        with np.errstate(all="ignore"):
            sg, tl, th = (self._gather(a, idx) for a in (s, t_lo, t_hi))
            ok = (tl >= 0) & (tl <= th) & (th <= 2.0 ** -(p + 3))
            above_band = tl > 0
            below_band = None
            if log2_t is not None:
                l2_lo, l2_hi = (self._gather(a, idx) for a in log2_t)
                above_band |= l2_lo > -NEAR_POWER
                below_band = l2_hi < -NEAR_POWER
            if abs(m) == 0.5 and abs(v) > 2.0**fmt.emin:  # a power of two: the side decides
                up = sg > 0
                ok &= up | above_band if below_band is None else up | above_band | below_band
                ulp = np.maximum(np.where(~up & above_band, b - 1, b), fmt.emin) - p + 1
            else:  # y stays in v's binade, or below emin, where the ulp is clamped either way
                ulp = np.full(idx.size, max(b, fmt.emin) - p + 1, dtype=np.int64)
            if not ok.all():
                idx, sg, ulp = idx[ok], sg[ok], ulp[ok]
            t = self._gather(t_approx, idx)
            scale = _pow2(-ulp)
            self._set(idx, v, v * scale, v * sg * t * scale, ulp)
        return True

    def _gather(self, a: F64 | float, idx: npt.NDArray[np.intp]) -> F64:
        """The elements idx of a block-sized array, or a number repeated."""
        if np.ndim(a) == 0:
            return np.full(idx.size, float(a))  # type: ignore[arg-type]
        if idx.size == self.n:  # the whole block (idx is sorted and unique): no copy
            return np.asarray(a, dtype=np.float64)
        return np.asarray(a, dtype=np.float64)[idx]

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
            whole = idx.size == self.n  # the whole block: no gather (an exhaustive chunk often is)
            vs = v if whole else v[idx]
            b2 = (float(bound) if scalar else (np.asarray(bound) if whole else np.asarray(bound)[idx])) + 2.0**-51
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
            if not ok.all():
                idx, ri, q, m, hi = idx[ok], ri[ok], q[ok], m[ok], hi[ok]
            want = np.copysign(ri * _pow2(q), m)
            over = np.abs(want) > fmt.largest
            if over.any():
                want[over] = np.copysign(np.inf, m[over]) if fmt.has_inf else np.nan
            self._set(idx, want, hi, 0.0, q)

