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
Where every g is 1 and count is 1 (an exhaustive gradient run's cotangent of ones), y is
d itself: ``Vjp.identity`` hands the facts on unscaled, with no added rounding.
"""

from __future__ import annotations

import functools
import math
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from oracles.fast.decided import Decided
from oracles.fast.float64 import F64, L2E_HI, LIBM, MAX_V, MIN_V, Mask, U, two_prod

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


@functools.lru_cache(maxsize=256)
def _repeated(bits: int, n: int) -> F64:
    # keyed by the float64's bits, not its value: -0.0 == 0.0 and NaN != NaN
    return np.broadcast_to(np.array([bits], dtype=np.int64).view(np.float64)[0], (n,))


def _full(a: F64 | float, n: int) -> F64:
    """``a`` as a (read-only) block of n; a number's block is made once per block size,
    since np.broadcast_to costs ~4 us a call and a gradient tier asks ~5 times a block."""
    if isinstance(a, float):
        return _repeated(struct.unpack("<q", struct.pack("<d", a))[0], n)
    return np.broadcast_to(np.asarray(a, dtype=np.float64), (n,))


def _spread(idx: slice | npt.NDArray[np.intp], values: npt.NDArray[Any], n: int) -> npt.NDArray[Any]:
    """``values`` of the elements ``idx`` as a block of n, zero (False) elsewhere; a slice
    (the whole block) comes back as it is."""
    if isinstance(idx, slice):
        return values
    out = np.zeros(n, dtype=values.dtype)
    out[idx] = values
    return out


@functools.lru_cache(maxsize=256)
def _repeated_exact(a: int, dtype: str, n: int) -> npt.NDArray[Any]:
    # integers and booleans compare exactly (True == 1 only within one dtype's key)
    return np.broadcast_to(np.asarray(a, dtype=dtype), (n,))


def _ints(a: I64 | npt.NDArray[np.int32] | int, n: int) -> I64:
    if isinstance(a, int):
        return _repeated_exact(a, "int64", n)
    return np.broadcast_to(np.asarray(a, dtype=np.int64), (n,))


class Vjp:
    """Decides y = g d / count in ``out`` from proven facts about d, element by element.

    Elements with an infinite cotangent are left to mpmath (every method skips them, but
    :meth:`nan`); for g = 0 every finite d gives y = +0 exactly, an infinite d NaN."""

    def __init__(self, out: Decided, g: F64, count: float) -> None:
        self.out = out
        self.n = n = out.done.shape[0]
        self.g = g
        mc, ec = math.frexp(count)
        self.mc = mc
        self.ec = ec
        #: y = d: the cotangent of ones without a mean (every exhaustive gradient run), where
        #: value() and near() hand the facts on unscaled; one pass instead of eight a block
        self.identity = count == 1.0 and n > 0 and bool((g == 1.0).all())
        if self.identity:
            self.live = _repeated_exact(True, "bool", n)
            self.all_live = True
            self.mg: F64 = _full(0.5, n)  # frexp(1) = (0.5, 1)
            self.eg: I64 = _ints(1, n)
            self.zero_g = _repeated_exact(False, "bool", n)
            self.any_zero_g = False
            self.uniform = n > 1
            return
        self.live = np.isfinite(g)
        self.all_live = bool(self.live.all())
        mg, eg = np.frexp(g if self.all_live else np.where(self.live, g, 1.0))
        self.mg = mg
        self.eg = eg.astype(np.int64)
        self.zero_g = self.live & (g == 0)
        self.any_zero_g = bool(self.zero_g.any())
        #: g the same at every element, as the cotangent of ones (see _exact_scaled, which
        #: reads it only for elements with g != 0, where == means the same float64)
        self.uniform = bool(self.n > 1 and (g == g[0]).all())

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
        if not sel.any():
            return
        vv = _full(v, self.n)
        sel &= np.isfinite(vv) & (vv != 0)
        vy, ok = self._exact_scaled(sel, vv, _ints(e, self.n))
        self.out.exact(ok, vy)
        self.value(sel, vv, 0.0, e)

    def value(self, mask: Mask, v: F64 | float, b: F64 | float, e: I64 | int = 0) -> None:
        """|d - v 2**e| <= b |v 2**e| for a finite non-zero v: y = M 2**E within
        :func:`scaled_bound` (b), or within b itself where y = d (``identity``). Past 2**1000 y overflows every served format
        (:meth:`Decided.huge`, from log2 y = E - 1 + log2(2|M|)); below 2**-961 it is tiny;
        in between it is bounded. Bounds looser than :data:`HI_BOUND` decide nothing."""
        sel = self._fresh(mask)
        if not sel.any():
            return
        vv = _full(v, self.n)
        # fast path: one bound for every element (most callers) is tested, scaled and
        # handed on as a number, which out.bounded treats as that array of equal bounds
        scalar = np.ndim(b) == 0
        if scalar:
            by_s = scaled_bound(float(b))
            if not by_s <= HI_BOUND:
                return
            if self.identity and np.ndim(e) == 0 and e == 0:
                # y = d = v within b itself. Below, only the tiny and huge ends (|y| < 2**-961,
                # |y| >= 2**1000) decide what bounded() left: in between it would be asked
                # again with the looser scaled bound
                self.out.bounded(sel, vv, float(b))
                av = np.abs(vv)
                sel &= ~self.out.done & ((av < 2.0**-961) | (av >= 2.0**1000))
                if not sel.any():
                    return
            sel &= np.isfinite(vv) & (vv != 0)
        else:
            bb = _full(b, self.n)
            sel &= np.isfinite(vv) & (vv != 0) & (scaled_bound(bb) <= HI_BOUND)
        n = self.n
        # the whole block (an exhaustive chunk's usually is) is a slice: no gather or scatter
        whole = bool(sel.all())
        picked = np.flatnonzero(sel) if not whole else None
        if picked is not None and not picked.size:
            return
        idx: slice | npt.NDArray[np.intp] = slice(None) if picked is None else picked
        mv, ev = np.frexp(vv[idx])
        m0 = self.mg[idx] * mv / self.mc  # in [0.25, 2): two roundings, both normal
        m, e0 = np.frexp(m0)
        big_e = self.eg[idx] + ev.astype(np.int64) + _ints(e, n)[idx] - self.ec + e0.astype(np.int64)
        bnd: F64 | float = by_s if scalar else _spread(idx, np.asarray(scaled_bound(bb[idx])), n)
        mm, ee = _spread(idx, m, n), _spread(idx, big_e, n)
        if ee.max() < 1001 and ee.min() > -961:
            # fast path: nothing huge or tiny (ee is 0 outside sel), so mid is sel and the
            # clip below is the identity
            self.out.bounded(sel, np.ldexp(mm, ee.astype(np.int32)), bnd)
            return
        huge = sel & (ee >= 1001)
        tiny = sel & (ee <= -961)
        mid = sel & ~huge & ~tiny
        if huge.any():
            # log2|y| = (E - 1) + F, F = log2(2|M|) in [0, 1): log of [1, 2) within 0.7 LIBM,
            # the product with L2E_HI 2u, and the bound on M moves F by <= 1.45 b_y
            f = np.log(2 * np.abs(mm)) * L2E_HI
            df = 1.45 * float(bnd if scalar else np.max(np.asarray(bnd)[huge])) + LIBM + 3 * U
            self._huge(huge, (ee - 1).astype(np.float64), f, df, mm < 0)
        if tiny.any():
            # |y| <= |M| 2**E (1 + b_y) < 2**-960
            self.out.tiny(tiny, mm < 0, np.ldexp(mm, np.clip(ee, -1100, 0).astype(np.int32)))
        vy = np.ldexp(mm, np.clip(ee, -1100, 1100).astype(np.int32))
        self.out.bounded(mid, vy, bnd)

    def near(self, mask: Mask, v: F64 | float, s: F64 | float, t_lo: F64 | float, t_hi: F64 | float, *,
             t_approx: F64 | float, log2_t: tuple[F64, F64] | None = None) -> None:
        """|d| = |v| (1 + s t) for an exact float64 v, s = +-1, t in [t_lo, t_hi] (the
        arguments of :meth:`Decided.near`, ``log2_t`` too): then |y| = |v_y| (1 + s t) with v_y = g v / count,
        decided by :meth:`Decided.near` where v_y is exactly a float64.

        Elements it cannot decide so (v_y not a float64, or near() declined) are bounded:
        |d - v| <= t_hi |v| (:meth:`value`), which settles them where t_hi is small and
        g v / count is not beside a rounding boundary or a power of two."""
        base = self._fresh(mask)
        if not base.any():
            return
        vv = _full(v, self.n)
        vy: F64 | float
        if self.identity and np.ndim(v) == 0:
            # v_y = v, one number (1, 1/2): handed on as a number, which Decided.near works
            # out once rather than per element
            vy = float(v)  # type: ignore[arg-type]
            sel = base if MIN_V <= abs(vy) <= MAX_V else np.zeros_like(base)
        elif self.identity:  # v_y = v, a float64 wherever _exact_scaled would say so
            av = np.abs(vv)
            vy, sel = vv, base & (av >= MIN_V) & (av <= MAX_V)
        else:
            vy, sel = self._exact_scaled(base, vv, _ints(0, self.n))
        self.out.near(sel, vy, s, t_lo, t_hi, t_approx=t_approx, log2_t=log2_t)
        if not (base & ~self.out.done).any():  # near() decided them all (it usually does)
            return
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
        if (hm := sel & (big_k >= 1000)).any():
            self._huge(hm, big_k, frac, dff, neg)
        if (tm := sel & (big_k <= -962)).any():
            self.out.tiny(tm, neg, 0.0)
        mid = sel & (big_k > -962) & (big_k < 1000)
        if mid.any():
            kk = np.where(mid, big_k, 0.0).astype(np.int32)
            v = np.ldexp(np.exp(frac * _LN2), kk) * np.where(neg, -1.0, 1.0)
            self.out.bounded(mid, v, 0.7 * dff + LIBM + 2 * U)

    def below(self, mask: Mask, log2_max: F64, negative: Mask | bool) -> None:
        """0 < |d| <= 2**log2_max (an upper bound; -inf allowed) with the sign given: y is
        tiny where log2_max + eg - (ec - 1) <= -961, since |g| < 2**eg and count >= 2**(ec - 1)."""
        sel = self._fresh(mask)
        if not sel.any():
            return
        bound = log2_max + (self.eg - self.ec + 1).astype(np.float64)
        neg = np.broadcast_to(np.asarray(negative, dtype=bool), (self.n,)) ^ (self.g < 0)
        self.out.tiny(sel & (bound <= -961), neg, 0.0)

    # -- helpers ----------------------------------------------------------------------

    def _fresh(self, mask: Mask) -> Mask:
        """The live, undecided elements of mask with g != 0; those with g = 0 are decided
        here as +0 (every caller states a finite d)."""
        m = np.asarray(mask, dtype=bool)
        if not m.any():
            return np.zeros(self.n, dtype=bool)
        sel = m & ~self.out.done
        if not self.all_live:
            sel &= self.live
        if not self.any_zero_g:  # the cotangent of ones, and most blocks of the others
            return sel
        self.out.zero(sel & self.zero_g)
        return sel & ~self.zero_g

    def _exact_scaled(self, sel: Mask, v: F64, e: I64) -> tuple[F64, Mask]:
        """g v 2**e / count as a float64 over ``sel`` (0 elsewhere), and where in ``sel``
        that is exact and in [MIN_V, MAX_V]."""
        n = self.n
        whole = bool(sel.all())  # fast path: the whole block, no gather or scatter
        idx: slice | npt.NDArray[np.intp] = slice(None)
        if not whole:
            idx = np.flatnonzero(sel)
            if not idx.size:
                return np.zeros(n), np.zeros(n, dtype=bool)
        if self.uniform and not v.strides[0] and not e.strides[0]:
            # fast path: g, v and e the same at every element (the cotangent of ones and a
            # number v, as near() passes): so is the result, computed once in Python floats
            # (the same IEEE operations; vy is only read where ok, a normal value)
            mv1, ev1 = math.frexp(float(v[0]))
            p1, err1 = two_prod(float(self.mg[0]), mv1)  # type: ignore[arg-type]
            q1 = p1 / self.mc
            back1, err21 = two_prod(q1, self.mc)  # type: ignore[arg-type]
            e1 = min(max(int(self.eg[0]) + ev1 + int(e[0]) - self.ec, -1100), 1100)
            try:
                r1 = math.ldexp(q1, e1)
            except OverflowError:
                r1 = math.copysign(math.inf, q1)
            good1 = bool(err1 == 0 and err21 == 0 and back1 == p1 and q1 != 0 and MIN_V <= abs(r1) <= MAX_V)
            count = n if isinstance(idx, slice) else idx.size
            return _spread(idx, np.full(count, r1), n), _spread(idx, np.full(count, good1), n)
        mv, ev = np.frexp(v[idx])
        p, err = two_prod(self.mg[idx], mv)
        q = p / self.mc
        back, err2 = two_prod(q, self.mc)
        big_e = np.clip(self.eg[idx] + ev.astype(np.int64) + e[idx] - self.ec, -1100, 1100).astype(np.int32)
        r = np.ldexp(q, big_e)
        # not ok outside sel (vy = 0 there), as the magnitude test would say
        good = (err == 0) & (err2 == 0) & (back == p) & (q != 0) & (np.abs(r) >= MIN_V) & (np.abs(r) <= MAX_V)
        return _spread(idx, r, n), _spread(idx, good, n)

    def _huge(self, mask: Mask, k: F64, f: F64, df: float, negative: Mask) -> None:
        """:meth:`Decided.huge` for either sign: it records +inf and a positive hi; mpmath
        records -inf and a negative hi (``_settled_value``) for a negative y."""
        before = self.out.done.copy()
        self.out.huge(mask, k, f, df)
        flip = self.out.done & ~before & negative
        if flip.any():
            self.out.want[flip] = -self.out.want[flip]
            self.out.hi[flip] = -self.out.hi[flip]
