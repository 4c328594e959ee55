"""From facts about a derivative d to facts about the gradient reference y = g d / count.

A gradient oracle (:mod:`oracles.gradients`) is worth ``y = g d / count`` per element: the
exact cotangent g (any float64, a value of the cotangent's format in practice: 0, +-subnormal
and +-largest included), the derivative d of the forward oracle (the built-in functions of
:mod:`oracles.catalogue_gradients`) and the divisor ``count`` of a mean (a positive finite
float64). The mpmath path multiplies and divides at its working precision
(:func:`oracles.gradients._scaled`): ``0 * inf`` is NaN, an exact 0 is +0.

:class:`Vjp` wraps a :class:`~oracles.fast.decided.Decided` and offers the same kinds of
facts about d that the forward tiers state about their values (exact, bounded, near an
exact value, below 2**L, 2**(k + f)); it turns each into the fact about y and hands it on.
The arithmetic is done on the mantissas: with ``g = mg 2**eg``, ``d ~ v = mv 2**ev`` and
``count = mc 2**ec`` (``0.5 <= |m| < 1``, exact by frexp), ``M = fl(fl(mg mv) / mc)`` lies in
``[0.25, 2)`` and rounds twice in float64's normal range, so ``y = M 2**(eg + ev - ec)``
with relative error ``(b + 2u + u^2)(1 + 2.01u) <= b (1 + 2**-50) + 2.02u`` for ``b <= 2**-20``
(:func:`scaled_bound`), whatever the magnitudes: no product of g and d ever under- or
overflows, and y outside float64's range is still decided (tiny, or past overflow).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from oracles.fast.decided import Decided
from oracles.fast.float64 import F64, L2E_HI, LIBM, MAX_V, MIN_V, Mask, U, two_prod
from oracles.rounding import round_float64
from oracles.ziv import FIRST_GUARD

__all__ = ["HI_BOUND", "Vjp", "scaled_bound"]

_LN2 = math.log(2.0)
#: the loosest relative bound :meth:`Vjp.value` decides from: ``hi`` is v / ulp(y), so it is
#: only as accurate as the bound, and the tier promises hi within 1e-12 (oracles.evaluate);
#: looser elements (a cancellation near a root of the derivative) go to mpmath
HI_BOUND = 2.0**-40
I64 = npt.NDArray[np.int64]


def scaled_bound(b: F64 | float) -> F64 | float:
    """The relative bound of y = g v / count (two roundings on mantissas) from that of v."""
    return b * (1 + 2.0**-50) + 2.02 * U


def _full(a: F64 | float, n: int) -> F64:
    return np.broadcast_to(np.asarray(a, dtype=np.float64), (n,))


def _ints(a: I64 | npt.NDArray[np.int32] | int, n: int) -> I64:
    return np.broadcast_to(np.asarray(a, dtype=np.int64), (n,))


class Vjp:
    """Decides y = g d / count in ``out`` from proven facts about d, element by element.

    Elements with an infinite cotangent are left to mpmath (every method skips them, but
    :meth:`nan`); for g = 0 every finite d gives y = +0 exactly, an infinite d NaN."""

    def __init__(self, out: Decided, g: F64, count: float) -> None:
        self.out = out
        self.n = out.done.shape[0]
        self.g = g
        self.live = np.isfinite(g)
        mg, eg = np.frexp(np.where(self.live, g, 1.0))
        self.mg: F64 = mg
        self.eg: I64 = eg.astype(np.int64)
        mc, ec = math.frexp(count)
        self.mc = mc
        self.ec = ec
        #: count a power of two: dividing by it is exact at every precision
        self.count_pow2 = mc == 0.5
        self.zero_g = self.live & (g == 0)

    # -- the facts ------------------------------------------------------------------------

    def nan(self, mask: Mask) -> None:
        """d is undefined: y is NaN whatever g."""
        self.out.special(mask, math.nan)

    def inf(self, mask: Mask, negative: Mask | bool) -> None:
        """d = +-inf (a pole or a limit): y = +-inf with the sign of g d, NaN for g = 0."""
        sel = np.asarray(mask, dtype=bool) & self.live & ~self.out.done
        self.out.special(sel & self.zero_g, math.nan)
        neg = np.asarray(negative, dtype=bool) ^ (self.g < 0)
        self.out.special(sel & ~self.zero_g & ~neg, math.inf)
        self.out.special(sel & ~self.zero_g & neg, -math.inf)

    def zero(self, mask: Mask) -> None:
        """d = 0 exactly: y = +0 (mpmath has no signed zero)."""
        self.out.zero(np.asarray(mask, dtype=bool) & self.live)

    def exact(self, mask: Mask, v: F64 | float, e: I64 | int = 0) -> None:
        """d = v 2**e exactly (v finite, non-zero). Where g v / count is a float64 in
        [MIN_V, MAX_V] (its mantissa product exact, the division exact) y is exactly that;
        elsewhere it is known to two roundings (:meth:`value` with b = 0)."""
        sel = self._fresh(mask)
        vv = _full(v, self.n)
        sel &= np.isfinite(vv) & (vv != 0)
        vy, ok = self._exact_scaled(sel, vv, _ints(e, self.n))
        self.out.exact(ok, vy)
        self.value(sel, vv, 0.0, e)

    def value(self, mask: Mask, v: F64 | float, b: F64 | float, e: I64 | int = 0) -> None:
        """|d - v 2**e| <= b |v 2**e| for a finite non-zero v: y = M 2**E within
        :func:`scaled_bound` (b). Past 2**1000 y overflows every served format
        (:meth:`Decided.huge`, from log2 y = E - 1 + log2(2|M|)); below 2**-961 it is tiny;
        in between it is bounded. Bounds looser than :data:`HI_BOUND` decide nothing."""
        sel = self._fresh(mask)
        vv = _full(v, self.n)
        bb = _full(b, self.n)
        sel &= np.isfinite(vv) & (vv != 0) & (scaled_bound(bb) <= HI_BOUND)
        idx = np.flatnonzero(sel)
        if not idx.size:
            return
        mv, ev = np.frexp(vv[idx])
        m0 = self.mg[idx] * mv / self.mc  # in [0.25, 2): two roundings, both normal
        m, e0 = np.frexp(m0)
        big_e = self.eg[idx] + ev.astype(np.int64) + _ints(e, self.n)[idx] - self.ec + e0.astype(np.int64)
        by = scaled_bound(bb[idx])
        n = self.n
        mm = np.zeros(n)
        ee = np.zeros(n, dtype=np.int64)
        bnd = np.zeros(n)
        mm[idx], ee[idx], bnd[idx] = m, big_e, by
        huge = sel & (ee >= 1001)
        tiny = sel & (ee <= -961)
        mid = sel & ~huge & ~tiny
        if huge.any():
            # log2|y| = (E - 1) + F, F = log2(2|M|) in [0, 1): log of [1, 2) within 0.7 LIBM,
            # the product with L2E_HI 2u, and the bound on M moves F by <= 1.45 b_y
            f = np.log(2 * np.abs(mm)) * L2E_HI
            df = 1.45 * float(np.max(bnd[huge])) + LIBM + 3 * U
            self._huge(huge, (ee - 1).astype(np.float64), f, df, mm < 0)
        # |y| <= |M| 2**E (1 + b_y) < 2**-960
        self.out.tiny(tiny, mm < 0, np.ldexp(mm, np.clip(ee, -1100, 0).astype(np.int32)))
        vy = np.ldexp(mm, np.clip(ee, -1100, 1100).astype(np.int32))
        self.out.bounded(mid, vy, bnd)

    def near(self, mask: Mask, v: F64 | float, s: F64 | float, t_lo: F64 | float, t_hi: F64 | float, *,
             t_approx: F64 | float, mimic: bool, once: bool = False) -> None:
        """|d| = |v| (1 + s t) for an exact float64 v, s = +-1, t in [t_lo, t_hi] (the
        arguments of :meth:`Decided.near`): then |y| = |v_y| (1 + s t) with v_y = g v / count,
        decided by :meth:`Decided.near` where v_y is exactly a float64.

        ``mimic``: the gradient's mpmath code satisfies :meth:`Decided.near`'s mimic
        assumption (v2 within two ulps of d, on d's side of a power of two at the distances
        it names). Where count is a power of two and v_y is one, g is one too, so the
        product and division are exact in mpmath as well, and the assumption carries over
        to y. Without it (or with another count), an element whose v_y is a power of two is
        decided only in the two regimes that need no knowledge of the code beyond this:
        t >= 2**(10 - wp2) (mpmath's value is on y's side, by settle's own trust radius) and
        t <= 2**-(wp2 + 3), where every function of :mod:`oracles.catalogue_gradients` that
        calls this returns exactly v at working precision wp2 and wp1 (an exact v plus a
        correction below half an ulp, rounded once: ``_exact_plus`` or one correctly rounded
        operation), so mpmath records v's binade, as :meth:`Decided.near` does with mimic.

        ``once`` (with ``mimic``): more is known, mpmath's d is v plus a correction accurate to
        2**(8 - wp) relative, rounded once to nearest (``_exact_plus``, or one correctly rounded
        operation); see :meth:`_once`.

        Elements it cannot decide so (v_y not a float64, or near() declined) are bounded:
        |d - v| <= t_hi |v| (:meth:`value`), which settles them where t_hi is small and
        g v / count is not beside a rounding boundary or a power of two."""
        base = self._fresh(mask)
        vv = _full(v, self.n)
        vy, sel = self._exact_scaled(base, vv, _ints(0, self.n))
        if not (mimic and self.count_pow2):
            wp2 = self.out.fmt.precision + 2 * FIRST_GUARD
            lo, hi = _full(t_lo, self.n), _full(t_hi, self.n)
            pow2 = np.frexp(vy)[0] == np.copysign(0.5, vy)
            sel &= ~pow2 | (hi <= 2.0 ** -(wp2 + 3)) | (lo >= 2.0 ** (10 - wp2))
        self.out.near(sel, vy, s, t_lo, t_hi, mimic=True, t_approx=t_approx)
        if once and mimic and self.count_pow2:
            self._once(sel & ~self.out.done, vy, _full(s, self.n), _full(t_lo, self.n), _full(t_hi, self.n),
                       _full(t_approx, self.n))
        # the rest (g v / count not a float64, or near() declined): |d - v| <= t_hi |v|
        self.value(base & (_full(t_hi, self.n) <= 2.0**-42), vv, _full(t_hi, self.n) * (1 + 2.0**-50))

    def log2(self, mask: Mask, k: F64, f: F64, df: float, negative: Mask | bool) -> None:
        """|d| = 2**(k + f') with k an integer (or a stand-in beyond +-2**31), |f' - f| <= df.

        log2|y| = (k + eg - ec) + (f' + lg), lg = log2(|mg| / mc) in (-1, 1) computed as
        log(|mg| / mc) L2E_HI within 1.02 LIBM + 4u; F = f + lg rounds (2u) and splits into
        floor(F) and F - floor(F) (exact but for F in (-1, 0): u). Past 2**1000: overflow
        (:meth:`Decided.huge`); K <= -962: tiny; in between (an extreme g or count) bounded
        through 2**F = e**(F ln 2) within 0.7 DF + LIBM + 2u."""
        sel = self._fresh(mask)
        if not sel.any():
            return
        n = self.n
        lg = np.log(np.abs(self.mg) / self.mc) * L2E_HI
        big_f = f + lg
        fl = np.floor(big_f)
        frac = big_f - fl
        big_k = k + (self.eg - self.ec).astype(np.float64) + fl
        dff = df + 1.02 * LIBM + 8 * U
        neg = np.broadcast_to(np.asarray(negative, dtype=bool), (n,)) ^ (self.g < 0)  # the sign of y
        self._huge(sel & (big_k >= 1000), big_k, frac, dff, neg)
        self.out.tiny(sel & (big_k <= -962), neg, 0.0)
        mid = sel & (big_k > -962) & (big_k < 1000)
        if mid.any():
            kk = np.where(mid, big_k, 0.0).astype(np.int32)
            v = np.ldexp(np.exp(frac * _LN2), kk) * np.where(neg, -1.0, 1.0)
            self.out.bounded(mid, v, 0.7 * dff + LIBM + 2 * U)

    def below(self, mask: Mask, log2_max: F64, negative: Mask | bool) -> None:
        """0 < |d| <= 2**log2_max (an upper bound; -inf allowed) with the sign given: y is
        tiny where log2_max + eg - (ec - 1) <= -961, since |g| < 2**eg and count >= 2**(ec - 1)."""
        sel = self._fresh(mask)
        bound = log2_max + (self.eg - self.ec + 1).astype(np.float64)
        neg = np.broadcast_to(np.asarray(negative, dtype=bool), (self.n,)) ^ (self.g < 0)
        self.out.tiny(sel & (bound <= -961), neg, 0.0)

    # -- helpers ----------------------------------------------------------------------

    def _fresh(self, mask: Mask) -> Mask:
        """The live, undecided elements of mask with g != 0; those with g = 0 are decided
        here as +0 (every caller states a finite d)."""
        sel = np.asarray(mask, dtype=bool) & self.live & ~self.out.done
        self.out.zero(sel & self.zero_g)
        return sel & ~self.zero_g

    def _exact_scaled(self, sel: Mask, v: F64, e: I64) -> tuple[F64, Mask]:
        """g v 2**e / count as a float64 over ``sel`` (0 elsewhere), and where in ``sel``
        that is exact and in [MIN_V, MAX_V]."""
        idx = np.flatnonzero(sel)
        vy = np.zeros(self.n)
        ok = np.zeros(self.n, dtype=bool)
        if not idx.size:
            return vy, ok
        mv, ev = np.frexp(v[idx])
        p, err = two_prod(self.mg[idx], mv)
        q = p / self.mc
        back, err2 = two_prod(q, self.mc)
        big_e = np.clip(self.eg[idx] + ev.astype(np.int64) + e[idx] - self.ec, -1100, 1100).astype(np.int32)
        vy[idx] = np.ldexp(q, big_e)
        ok[idx] = (err == 0) & (err2 == 0) & (back == p) & (q != 0)
        ok &= (np.abs(vy) >= MIN_V) & (np.abs(vy) <= MAX_V)
        return vy, ok

    def _once(self, sel: Mask, vy: F64, s: F64, t_lo: F64, t_hi: F64, t_approx: F64) -> None:
        """|y| = |v_y| (1 - t) just inside a power of two v_y >= 2**emin, where
        :meth:`Decided.near` leaves 2**-(wp2+3) < t < 2**(2 - wp2) to mpmath because its
        recorded binade is that of its working-precision value v2. When v2 is v plus the
        correction rounded once (and g, count are powers of two, so the scaling is exact), v2
        is v exactly iff the computed correction is at most half an ulp below |v|,
        2**-(wp2+1) |v| (a tie rounds to v, which is even): certain where
        t_hi (1 + 2**(8 - wp2)) < 2**-(wp2+1) (binade of v) or
        t_lo (1 - 2**(8 - wp2)) > 2**-(wp2+1) (the binade below). mpmath settles at that first
        wp2: v1 and v2 are within 2**-(p+29) |v| of v, a value of the format with no rounding
        boundary nearer than 2**-(p+1) |v|. ``want`` is then that of v's float64 neighbour
        below (nothing between it and y is a boundary), and hi, lo are set as
        :meth:`Decided.near` sets them. :class:`Decided` has no method for this regime, so the
        arrays are written here."""
        fmt = self.out.fmt
        p = fmt.precision
        wp2 = p + 2 * FIRST_GUARD
        half = 2.0 ** -(wp2 + 1)
        slack = 2.0 ** (8 - wp2)
        av = np.abs(vy)
        pow2 = np.frexp(vy)[0] == np.copysign(0.5, vy)
        sel = sel & pow2 & (s < 0) & (av >= np.ldexp(1.0, fmt.emin)) & (t_lo >= 0) & (t_hi <= 2.0 ** -(p + 3))
        at_v = sel & (t_hi * (1 + slack) < half)
        below = sel & ~at_v & (t_lo * (1 - slack) > half)
        idx = np.flatnonzero(at_v | below)
        if not idx.size:
            return
        v = vy[idx]
        b = np.frexp(v)[1].astype(np.int64) - 1 - below[idx]
        ulp = (np.maximum(b, fmt.emin) - p + 1).astype(np.int64)
        out = self.out
        out.want[idx] = round_float64(np.nextafter(v, 0.0), fmt)
        out.hi[idx] = np.ldexp(v, (-ulp).astype(np.int32))
        out.lo[idx] = np.ldexp(-v * t_approx[idx], (-ulp).astype(np.int32))
        out.ulp_exp[idx] = ulp
        out.done[idx] = True

    def _huge(self, mask: Mask, k: F64, f: F64, df: float, negative: Mask) -> None:
        """:meth:`Decided.huge` for either sign: it records +inf and a positive hi; mpmath
        records -inf and a negative hi (``_settled_value``) for a negative y."""
        before = self.out.done.copy()
        self.out.huge(mask, k, f, df)
        flip = self.out.done & ~before & negative
        self.out.want[flip] = -self.out.want[flip]
        self.out.hi[flip] = -self.out.hi[flip]
