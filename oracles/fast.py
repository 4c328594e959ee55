"""A float64 fast tier in front of the mpmath oracles, rigorous or silent.

For the built-in elementwise oracles and softmax, log_softmax and logsumexp, a fast tier
computes each output in vectorised numpy float64 and decides the elements about which it
can *prove* enough (the methods of :class:`Decided`):

* ``bounded``: a value v with a proven relative error bound b, so y lies in
  ``[v - b|v|, v + b|v|]``; decided when both ends round to the same value of the output
  format and lie in the same binade (so ``want`` and ``ulp_exp`` are those of y);
* ``near``: y a hair beside an exact float64 v on a known side (exp(x) for tiny x beside
  1, tanh(x) for large x just inside 1, silu(x) ~ x/2 which is often a rounding midpoint);
* ``tiny`` / ``huge``: y provably underflows to +-0 / overflows (exp of large x, with the
  binade from log2 y in double-double), ``exact``, ``zero`` and ``special`` values.

Every other element, and every element of a row that is not entirely decided, goes to the
mpmath path (:func:`oracles.evaluate.settle`) as before. The tier's ``want`` and
``ulp_exp`` are bit-identical to that path's, including one quirk: within ~2**-(p+60) of
a power of two the mpmath path records the binade of its working-precision value, not of
y (see :meth:`Decided.near`), and the tier reproduces it.

What the fast tier gives up: ``hi`` is ``v / ulp(y)`` and ``lo`` is 0, so ULP errors
measured against a fast-tier reference are accurate to the bound (about 1e-13 relative,
i.e. ~1e-13 ULP per ULP of error), not exact to 2**-100 like the mpmath double-double.
``want`` and ``ulp_exp`` are exact.

Error model (u = 2**-53, the unit roundoff of float64; every bound below is for results
and intermediates in float64's normal range, which each evaluator checks):

* a basic operation (+ - * /) rounds once: relative error <= u;
* a libm call (numpy's ``exp``, ``log``, ``log1p``, ``expm1``, ``tanh``): relative error
  <= :data:`LIBM` = 2**-48, i.e. 16 float64 ulps. glibc documents <= 2 ulps for these and
  numpy's AVX-512 SVML paths claim <= 4 ulps (numpy PR #19478); we take 4x the worst
  claim. ``math.erfc`` (glibc, documented <= 5 ulps): :data:`ERFC` = 2**-46 (64 ulps);
* an input error ``delta`` (relative) in the argument of f moves f by
  ``kappa * delta`` relative, with the condition number ``kappa = |t f'(t) / f(t)|``
  bounded per oracle below; second-order terms are below 2**-80 and covered by a 1%
  margin on every bound.

These claims are checked once per process against mpmath on a fixed sample
(:func:`libm_trusted`); if any function is off by more than 4 ulps the fast tier turns
itself off (:func:`tier_for` returns None) and everything goes to mpmath.

Thresholds shared by all evaluators: a value with ``|y| < 2**-960`` rounds to +-0 in every
format the tier serves (their half smallest subnormal is >= 2**-901), with
``ulp_exp = emin - p + 1``; such *tiny* elements are decided from a proven upper bound
on ``|y|`` and its sign, without a float64 value. The tier serves formats with
precision <= 24 and exponent range inside [-900, 900] (float16, bfloat16, float32): for
float64 output no float64 computation can decide a correctly rounded result.

Fast tiers register with :func:`fast_tier`, keyed by oracle name and carrying a version
that enters the cache key (:mod:`oracles.cache`). A tier applies only to the oracle
function it was derived for (module, qualname and oracle version must match), so an
oracle replaced with ``replace=True`` and user oracles simply have none.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from oracles.errors import UsageError
from oracles.formats import Format
from oracles.registry import Oracle
from oracles.rounding import round_float64

__all__ = [
    "ERFC",
    "FAST_TIERS",
    "LIBM",
    "Decided",
    "FastTier",
    "fast_tier",
    "libm_trusted",
    "run_tier",
    "tier_applies",
    "tier_for",
    "tier_version",
]

F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Params = Mapping[str, float | str]

U = 2.0**-53
LIBM = 2.0**-48
ERFC = 2.0**-46
TINY = 2.0**-960  # |y| below this rounds to +-0 in every served format
MIN_V = 2.0**-1000  # decided values stay this far inside float64's normal range ...
MAX_V = 2.0**1020  # ... so that the endpoint arithmetic below cannot under/overflow
MAX_BOUND = 2.0**-20  # a bound this loose decides nothing useful; leave it to mpmath
HUGE_X = 2.0**31  # exp/expm1: _log2_exp is exact enough up to here; beyond, ulp_exp saturates
MARGIN = 1.01
SMALL = 2.0**-30  # |x| up to this: y from a two-term expansion with an explicit remainder

# log2(e) as a double-double: L2E_HI + L2E_LO within 2**-106 relative
L2E_HI = 1.4426950408889634
L2E_LO = 2.0355273740931033e-17
RSQRT2 = 0.7071067811865476  # fl(1/sqrt(2)), relative error <= u


# -- registry --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FastTier:
    """A float64 fast tier for the oracle ``oracle``, derived for the function ``target``
    (``module:qualname``) at oracle version ``oracle_version``."""

    oracle: str
    version: int
    fn: Callable[[list[F64], Params, Decided], None]
    target: str
    oracle_version: int = 1

    def __str__(self) -> str:
        return f"{self.oracle}@fast{self.version}"


FAST_TIERS: dict[str, FastTier] = {}


def fast_tier(
    oracle: str, *, version: int, target: str | None = None, oracle_version: int = 1
) -> Callable[[Callable[[list[F64], Params, Decided], None]], Callable[[list[F64], Params, Decided], None]]:
    """Register a fast tier for ``oracle``. ``version`` must change whenever the tier's
    arithmetic or bounds do (it keys cached references). Raises :class:`UsageError` for a
    second tier under one name."""

    def register(fn: Callable[[list[F64], Params, Decided], None]) -> Callable[[list[F64], Params, Decided], None]:
        if oracle in FAST_TIERS:
            raise UsageError(f"a fast tier for oracle {oracle!r} is already registered ({FAST_TIERS[oracle]})")
        FAST_TIERS[oracle] = FastTier(oracle, version, fn, target or f"oracles.catalogue:{oracle}", oracle_version)
        return fn

    return register


def tier_applies(fmt: Format) -> bool:
    """Whether a float64 computation can decide correct rounding into ``fmt`` at all."""
    return fmt.precision <= 24 and fmt.emin - fmt.precision + 1 >= -900 and fmt.emax <= 900


def tier_for(oracle: Oracle, fmt: Format) -> FastTier | None:
    """The fast tier serving ``oracle`` in ``fmt``, or None (user oracle, replaced oracle,
    float64 output, or a libm that failed :func:`libm_trusted`)."""
    tier = FAST_TIERS.get(oracle.name)
    if tier is None or not tier_applies(fmt):
        return None
    fn = oracle.fn
    if f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', '')}" != tier.target:
        return None
    if oracle.version != tier.oracle_version or not libm_trusted():
        return None
    return tier


def tier_version(oracle: Oracle, fmt: Format) -> int:
    """The version of the fast tier that would serve ``oracle`` in ``fmt`` (0: none)."""
    tier = tier_for(oracle, fmt)
    return 0 if tier is None else tier.version


# -- deciding elements -------------------------------------------------------------------


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
        from oracles.evaluate import FIRST_GUARD

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
        from oracles.evaluate import _ULP_EXP_MAX

        p = self.fmt.precision
        saturated = k - p >= _ULP_EXP_MAX
        idx = self._fresh(mask & (k >= 1000) & (((f - df >= 0) & (f + df < 1)) | saturated))
        want = float(round_float64(np.array([np.inf]), self.fmt)[0])
        ulp = np.minimum(k[idx], float(_ULP_EXP_MAX + p)).astype(np.int64) - p + 1
        ulp = np.minimum(ulp, _ULP_EXP_MAX)
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


# -- the libm assumption, checked ------------------------------------------------------


@functools.lru_cache(maxsize=1)
def libm_trusted() -> bool:
    """Whether numpy's float64 exp/log/log1p/expm1/tanh and math.erfc are within 4 ulps
    (2**-50 relative; the tier assumes 2**-48) on a fixed sample covering each function's
    awkward regions. Runs once per process (about 20 ms)."""
    from mpmath import mp, mpf

    grid = np.linspace(-1.0, 1.0, 41)
    small = np.array([2.0**-k for k in (1, 3, 8, 20, 30, 52, 60, 200, 900, 1000)])
    small = np.concatenate([small, -small])
    cases: list[tuple[Callable[[F64], F64], Callable[[Any], Any], F64, float]] = [
        (np.exp, mp.exp, np.concatenate([grid * 700, grid, small]), LIBM),
        (np.log, mp.log, np.concatenate([np.exp(grid * 700), 1 + small[np.abs(small) < 1], [0.5, 2.0, 1e-310]]), LIBM),
        (np.log1p, mp.log1p, np.concatenate([np.expm1(grid * 30), small]), LIBM),
        (np.expm1, mp.expm1, np.concatenate([grid * 700, grid * 0.5, small]), LIBM),
        (np.tanh, mp.tanh, np.concatenate([grid * 20, grid * 0.5, small]), LIBM),
        (_erfc, mp.erfc, np.concatenate([grid * 6, 6 + (grid + 1) * 10]), ERFC),
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


_ERFC_UFUNC = np.frompyfunc(math.erfc, 1, 1)


def _erfc(t: F64) -> F64:
    """glibc's erfc, element by element (numpy has none; scipy's is not documented to a
    ulp bound)."""
    return np.asarray(_ERFC_UFUNC(t), dtype=np.float64)


# -- shared float64 building blocks ----------------------------------------------------


def _two_prod(a: F64, b: float) -> tuple[F64, F64]:
    """p + e == a * b exactly (Dekker with Veltkamp's split; |a| <= 2**900)."""
    p = a * b
    c = a * 134217729.0
    ah = c - (c - a)
    al = a - ah
    cb = b * 134217729.0
    bh = cb - (cb - b)
    bl = b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def _log2_exp(x: F64) -> tuple[F64, F64]:
    """log2(e**x) = k + f for 700 < x <= 2**31, k an integer, |f - exact| <= 2**-50.

    x L2E_HI = p1 + e1 exactly; k = floor(p1) and r = p1 - k are exact (p1 < 2**32 is a
    multiple of ulp(p1) <= 2**-20, and so is k); e1 (< 2**-21), x L2E_LO (< 2**-24) and
    their sum round with error < 2**-72, the final r + s with error <= u, and the dropped
    x (log2 e - L2E_HI - L2E_LO) is below 2**-70: |f - exact| < 2**-52."""
    p1, e1 = _two_prod(x, L2E_HI)
    k = np.floor(p1)
    f = (p1 - k) + (e1 + x * L2E_LO)
    return k, f


def _exp_huge(out: Decided, mask: Mask, x: F64, *, minus_one: bool = False) -> None:
    """exp(x) (or expm1(x): log2(1 - e**-x) is below 2**-1000, inside the allowance) for
    x > 700: y > 2**1009 overflows. Up to 2**31, log2 y = k + f from _log2_exp; beyond,
    log2 y > 2**31 * 1.44 and ulp_exp saturates, so k is a stand-in above the limit."""
    within = x <= HUGE_X
    k, f = _log2_exp(np.where(mask & within, x, 701.0))
    k = np.where(within, k, 2.0**40)
    out.huge(mask, k, f, 2.0**-50)


def _sigmoid64(x: F64) -> F64:
    """1 / (1 + e**-x) for x >= 0, e**x / (1 + e**x) below: relative error
    <= 1.5 LIBM + 2u for x >= -700.

    With E = e**-|x| <= 1 computed as E (1 + eta): 1 + E(1 + eta) = (1 + E)(1 + E eta /
    (1 + E)), so the sum carries at most LIBM/2 (plus u for its rounding) and the division
    u; for x < 0 the numerator adds its own LIBM."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus64(z: F64) -> F64:
    """log(1 + e**z) for an exact float64 z >= -700: relative error <= 2 LIBM + u.

    z > 0: z + log1p(e**-z); log1p has condition number a / ((1 + a) log1p(a)) <= 1 at
    a = e**-z, so the log1p term carries 2 LIBM; adding the positive z dilutes that and
    rounds once (u). z <= 0: log1p(e**z), 2 LIBM by the same argument."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))  # the + is exact for z <= 0


# -- elementwise tiers -------------------------------------------------------------------


@fast_tier("exp", version=1)
def _exp(xs: list[F64], params: Params, out: Decided) -> None:
    """exp: one libm call, |y - v| <= LIBM |y| for -666 <= x <= 700 (y in [2**-961,
    2**1010], normal). x < -666: y < e**-666 < 2**-960.8, tiny. x > 700: y > 2**1009
    overflows (_exp_huge)."""
    x = xs[0]
    fin = np.isfinite(x)
    out.exact(fin & (x == 0), np.ones_like(x))
    ax = np.abs(x)
    # |x| <= 2**-30: e**x = 1 + t (x > 0, t in [x, x (1 + x)]) or 1 - t (x < 0, t in
    # [|x| (1 - |x|/2), |x|]); the float64 bounds carry their own three roundings
    out.near(fin & (ax <= SMALL) & (x != 0), 1.0, np.sign(x), ax * (1 - ax) * (1 - 2.0**-50),
             ax * (1 + ax) * (1 + 2.0**-50), mimic=True, t_approx=ax)
    out.tiny(fin & (x < -666.0), False, np.exp(np.maximum(x, -800.0)))
    out.bounded(fin & (x >= -666.0) & (x <= 700.0), np.exp(x), LIBM * MARGIN)
    _exp_huge(out, fin & (x > 700.0), x)


@fast_tier("log", version=1)
def _log(xs: list[F64], params: Params, out: Decided) -> None:
    """log: x < 0 -> NaN, x = 0 -> -inf, x = 1 -> 0, +inf -> +inf exactly. Otherwise one
    libm call: log(x), or log1p(x - 1) on [0.5, 2] where x - 1 is exact (Sterbenz), so no
    libm is trusted near its zero for more than relative accuracy of log1p at a small
    argument. |log x| >= 2**-54 (normal) for every float64 x != 1 in (0, inf)."""
    x = xs[0]
    out.special(x < 0, math.nan)
    out.special(x == 0, -math.inf)
    out.special(x == math.inf, math.inf)
    out.zero(x == 1)
    pos = np.isfinite(x) & (x > 0)
    near = (x >= 0.5) & (x <= 2.0)
    out.bounded(pos, np.where(near, np.log1p(x - 1.0), np.log(np.where(pos, x, 1.0))), LIBM * MARGIN)


@fast_tier("log1p", version=1)
def _log1p(xs: list[F64], params: Params, out: Decided) -> None:
    """log1p: x < -1 -> NaN, x = -1 -> -inf, 0 -> 0, +inf -> +inf exactly; 0 < |x| <
    2**-962: |y| <= 2|x| < 2**-960, tiny with the sign of x; otherwise one libm call
    (|y| >= |x| / 2 >= 2**-963 is normal)."""
    x = xs[0]
    fin = np.isfinite(x)
    out.special(x < -1, math.nan)
    out.special(x == -1, -math.inf)
    out.special(x == math.inf, math.inf)
    out.zero(x == 0)
    out.tiny(fin & (np.abs(x) < 2.0**-962), x < 0, x)
    ax = np.abs(x)  # |x| <= 2**-30: log1p(x) = x (1 - x/2 + x^2/3 - ...), |y| = |x| (1 -+ t)
    out.near(fin & (ax <= SMALL), x, -np.sign(x), ax / 2 * (1 - ax) * (1 - 2.0**-50),
             ax / 2 * (1 + ax) * (1 + 2.0**-50), mimic=True, t_approx=ax / 2)
    out.bounded(fin & (x > -1), np.log1p(np.where(x > -1, x, 0.0)), LIBM * MARGIN)


@fast_tier("expm1", version=1)
def _expm1(xs: list[F64], params: Params, out: Decided) -> None:
    """expm1: 0 -> 0; 0 < |x| < 2**-962 tiny; x < -40: y = -(1 - e**x) with 0 < e**x <
    2**-57, just inside -1 (below_power); -40 <= x <= 700 one libm call (normal); x > 700
    overflows (_exp_huge)."""
    x = xs[0]
    fin = np.isfinite(x)
    out.special(x == math.inf, math.inf)
    out.zero(x == 0)
    out.tiny(fin & (np.abs(x) < 2.0**-962), x < 0, x)
    ax = np.abs(x)  # |x| <= 2**-30: expm1(x) = x (1 + x/2 + x^2/6 + ...), |y| = |x| (1 +- t)
    out.near(fin & (ax <= SMALL), x, np.sign(x), ax / 2 * (1 - ax) * (1 - 2.0**-50),
             ax / 2 * (1 + ax) * (1 + 2.0**-50), mimic=True, t_approx=ax / 2)
    e = np.exp(np.maximum(x, -800.0))  # t = e**x exactly; exp within LIBM, or below 2**-1000
    out.below_power(fin & (x < -40.0), -1.0, np.maximum(e * (1 - 2.0**-40) - 2.0**-1000, 0.0), e * (1 + 2.0**-40) + 2.0**-1000,
                    mimic=True, t_approx=e)
    out.bounded(fin & (x >= -40.0) & (x <= 700.0), np.expm1(x), LIBM * MARGIN)
    _exp_huge(out, fin & (x > 700.0), x, minus_one=True)


@fast_tier("tanh", version=1)
def _tanh(xs: list[F64], params: Params, out: Decided) -> None:
    """tanh: 0 -> 0; 0 < |x| < 2**-962: |y| < |x|, tiny; |x| >= 12: y = sign(x)(1 - t),
    t = 2e**-2|x| / (1 + e**-2|x|) <= 2e**-24 < 2**-33 (below_power; +-inf inputs, where
    y = +-1 exactly, go to mpmath); otherwise one libm call (|y| >= |x|/2, normal)."""
    x = xs[0]
    fin = np.isfinite(x)
    out.zero(x == 0)
    out.tiny(fin & (np.abs(x) < 2.0**-962), x < 0, x)
    ax = np.abs(x)
    # |x| <= 2**-30: tanh(x) = x (1 - t), t = x^2/3 - 2x^4/15 + ... in [x^2/3 (1 - x^2), x^2/3]
    # (x^2 may underflow: 2**-1000 keeps the upper bound an upper bound)
    x2 = ax * ax / 3
    out.near(fin & (ax <= SMALL), x, -1.0, x2 * (1 - ax) * (1 - 2.0**-50), x2 * (1 + 2.0**-50) + 2.0**-1000,
             mimic=True, t_approx=x2)
    e = np.exp(-2 * np.minimum(ax, 400.0))  # t = 2E / (1 + E) in [2E (1 - E), 2E], E = e**-2|x|
    out.below_power(fin & (ax >= 12.0), np.where(x < 0, -1.0, 1.0), 2 * e * (1 - 2.0**-40) * (1 - math.exp(-24.0)),
                    2 * e * (1 + 2.0**-40) + 2.0**-1000, mimic=True, t_approx=2 * e)
    out.bounded(fin, np.tanh(x), LIBM * MARGIN)


@fast_tier("sigmoid", version=1)
def _sigmoid(xs: list[F64], params: Params, out: Decided) -> None:
    """sigmoid: 0 -> 1/2; x < -666: y < e**x < 2**-960, tiny; x > 20: y = 1 - t with t <
    e**-x < 2**-28.8 (below_power); otherwise _sigmoid64, 1.5 LIBM + 2u (y >= e**x / 2
    normal)."""
    x = xs[0]
    fin = np.isfinite(x)
    out.exact(x == 0, np.full_like(x, 0.5))
    ax = np.abs(x)  # |x| <= 2**-30: y = (1 + sign(x) t) / 2, t = tanh(|x|/2) in [|x|/2 (1 - x^2/12), |x|/2]
    out.near(fin & (ax <= SMALL) & (x != 0), 0.5, np.sign(x), ax / 2 * (1 - ax) * (1 - 2.0**-50),
             ax / 2 * (1 + 2.0**-50), mimic=True, t_approx=ax / 2)
    out.tiny(fin & (x < -666.0), False, np.exp(np.maximum(x, -800.0)))
    e = np.exp(-np.minimum(x, 800.0))  # t = E / (1 + E) in [E (1 - E), E], E = e**-x
    out.below_power(fin & (x > 20.0), 1.0, e * (1 - 2.0**-40) * (1 - math.exp(-20.0)), e * (1 + 2.0**-40) + 2.0**-1000,
                    mimic=True, t_approx=e)
    out.bounded(fin, _sigmoid64(x), (2 * LIBM + 3 * U) * MARGIN)


@fast_tier("softplus", version=1)
def _softplus(xs: list[F64], params: Params, out: Decided) -> None:
    """softplus(x; beta) = softplus(z) / beta with z = x beta.

    z = fl(x beta) carries u relative (unless exact). The condition number of softplus,
    kappa = |z| sigmoid(z) / softplus(z), is <= 1 for z >= 0 (softplus(z) >= z) and <= |z|
    for z < 0 (log(1 + a) >= a / (1 + a) at a = e**z), so the product's rounding costs
    kappa u <= 681 u where the bound is used (z >= -681); _softplus64 adds 2 LIBM + u and
    the division by beta u: b = 2 LIBM + (1.01 * 681 + 2) u, plus the 1% margin.
    Tiny when z < -681: |y| <= e**z / |beta| < 2**-982 * 2**20. beta = 0: every y is NaN;
    |beta| outside [2**-20, 2**20] or not finite: no fast tier (mpmath decides all)."""
    beta = float(params.get("beta", 1.0))
    if beta == 0:
        out.special(np.ones(out.done.shape, dtype=bool), math.nan)
        return
    if not (math.isfinite(beta) and 2.0**-20 <= abs(beta) <= 2.0**20):
        return
    x = xs[0]
    with np.errstate(all="ignore"):
        z = x * beta
        fin = np.isfinite(x) & np.isfinite(z) & (np.abs(z) <= 2.0**900)
        out.tiny(fin & (z < -681.0), beta < 0, 0.0)
        zz = np.where(fin & (z >= -681.0), z, 0.0)
        v = _softplus64(zz) / beta
    # kappa <= 681 wherever this bound is used: one scalar bound (2**-47.4) for all, which
    # costs nothing in decided elements and saves an array of bounds
    out.bounded(fin & (z >= -681.0), v, (2 * LIBM + (1.01 * 681 + 2) * U) * MARGIN)


@fast_tier("log_sigmoid", version=1)
def _log_sigmoid(xs: list[F64], params: Params, out: Decided) -> None:
    """log_sigmoid(x) = -softplus(-x); -x is exact: 2 LIBM + u, plus u to spare. x > 667:
    |y| < e**-667 < 2**-962, tiny and negative (+inf goes to mpmath, whose 0 is +0)."""
    x = xs[0]
    fin = np.isfinite(x)
    out.tiny(fin & (x > 667.0), True, 0.0)
    z = np.where(fin & (x <= 667.0), -x, 0.0)
    out.bounded(fin & (x <= 667.0), -_softplus64(z), (2 * LIBM + 2 * U) * MARGIN)


@fast_tier("silu", version=1, oracle_version=2)
def _silu(xs: list[F64], params: Params, out: Decided) -> None:
    """silu = x sigmoid(x): 0 -> 0; |x| < 2**-962: |y| <= |x|, tiny; x < -680: |y| <=
    |x| e**x <= 680 e**-680 < 2**-971 (decreasing below -1), tiny negative; otherwise
    _sigmoid64 (1.5 LIBM + 2u, normal for x >= -680) and one product: 2 LIBM + 4u."""
    x = xs[0]
    fin = np.isfinite(x)
    out.zero(x == 0)
    out.tiny(fin & (np.abs(x) < 2.0**-962), x < 0, x)
    out.tiny(fin & (x < -680.0), True, 0.0)
    ax = np.abs(x)  # |x| <= 2**-30: y = (x/2)(1 + tanh(x/2)), x/2 exact; often a rounding midpoint
    out.near(fin & (ax <= SMALL), x / 2, np.sign(x), ax / 2 * (1 - ax) * (1 - 2.0**-50),
             ax / 2 * (1 + 2.0**-50), mimic=True, t_approx=ax / 2)
    xx = np.where(fin & (x >= -680.0), x, 0.0)
    with np.errstate(all="ignore"):
        v = xx * _sigmoid64(xx)
    out.bounded(fin & (x >= -680.0), v, (2 * LIBM + 4 * U) * MARGIN)


@fast_tier("gelu", version=1, oracle_version=2)
def _gelu(xs: list[F64], params: Params, out: Decided) -> None:
    """gelu = x erfc(t) / 2 with t = -x / sqrt 2.

    t = fl(-x * fl(1/sqrt 2)) has relative error <= 2.01u. The condition number of erfc
    is |t erfc'(t) / erfc(t)| <= t (2t + 2) for t > 0, from erfc(t) > 2 e**-t^2 /
    (sqrt(pi) (t + sqrt(t^2 + 2))) (Abramowitz & Stegun 7.1.13), and <= 2|t| e**-t^2 /
    sqrt(pi) <= 1/2 for t <= 0 because erfc(t) >= 1. Then erfc itself (ERFC), the product
    (u) and the exact halving:
    b = ERFC + 2.01u kappa + u, plus the margin. 0 -> 0; |x| < 2**-962 tiny (|y| <= |x|);
    x < -36.5: |y| <= e**-x^2/2 / sqrt(2 pi) < 2**-961 (erfc(s) <= e**-s^2 / (s sqrt pi)),
    tiny negative; for x >= -36.5, erfc(t) >= 2**-967 is normal."""
    x = xs[0]
    fin = np.isfinite(x)
    out.zero(x == 0)
    out.tiny(fin & (np.abs(x) < 2.0**-962), x < 0, x)
    out.tiny(fin & (x < -36.5), True, 0.0)
    # |x| <= 2**-30: y = (x/2)(1 + erf(x / sqrt 2)), erf(|x|/sqrt 2) in [c|x| (1 - x^2/6), c|x|]
    # with c = sqrt(2/pi); mpmath's erfc is not known to round to nearest: no mimic
    ax = np.abs(x)
    c = 0.7978845608028654
    out.near(fin & (ax <= SMALL), x / 2, np.sign(x), c * ax * (1 - ax) * (1 - 2.0**-48),
             c * ax * (1 + 2.0**-48), mimic=False, t_approx=c * ax)
    sel = fin & (x >= -36.5) & ~out.done
    idx = np.flatnonzero(sel)
    xs_ = x[idx]
    with np.errstate(all="ignore"):
        t = -xs_ * RSQRT2
        v = np.full_like(x, np.nan)
        v[idx] = xs_ * _erfc(t) / 2.0
        at = np.abs(t) * 1.001
        kappa = np.where(t > 0, at * (2 * at + 2), 0.5)
        b = np.zeros_like(x)
        b[idx] = (ERFC + 2.01 * U * kappa + U) * MARGIN
    out.bounded(sel, v, b)


# -- row-wise tiers -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rows:
    """Shared float64 pieces of a row-wise softmax family evaluation (rows x n)."""

    ok: Mask  # rows: only finite entries and -inf, at least one finite, |x| <= 2**1000
    d: F64  # fl(x - max), -inf for masked entries
    e: F64  # exp(d), exactly 1 where d == 0, exactly 0 for masked entries
    eps: F64  # per entry: relative error bound of e (entries with d >= -700)
    rest: F64  # per row: R~ = fl(sum of e over entries other than the first maximum)
    err_rest: F64  # per row: |R~ - R| <= err_rest
    masked: Mask  # -inf entries
    single: Mask  # rows with exactly one finite entry (R = 0 exactly)
    top: Mask  # the first maximum of each row
    m: F64  # per row maximum


def _rows(x: F64) -> _Rows:
    """d_j = x_j - m rounds once: |d~ - d| <= u |d|, so e**d~ = e**d (1 + theta) with
    |theta| <= 1.01 u |d~| (|d| <= 700), and exp adds LIBM: eps_j = (LIBM + 1.01 u |d~_j|).
    Entries with d~ < -700 may be subnormal: absolute error <= 2**-1000 each. The sum R~
    of the n - 1 non-top terms adds gamma_{n-1} = (n-1)u / (1 - (n-1)u) relative to the
    exact sum of the computed terms, whatever order numpy sums in. So
    |R~ - R| <= (R~ + 2n 2**-1000)(eps + 2 gamma) 1.01 + 2n 2**-1000 (R <= (R~ + 2n 2**-1000)
    1.001 because eps + 2 gamma < 2**-20 for n < 2**30)."""
    rows, n = x.shape
    with np.errstate(all="ignore"):
        finite = np.isfinite(x)
        masked = x == -np.inf
        ok = np.all(finite | masked, axis=1) & np.any(finite, axis=1) & (n < 2**30)
        ok &= np.all(~finite | (np.abs(x) <= 2.0**1000), axis=1)
        xm = np.where(finite, x, -np.inf)
        top_i = np.argmax(xm, axis=1)
        m = xm[np.arange(rows), top_i]
        d = xm - np.where(np.isfinite(m), m, 0.0)[:, None]
        e = np.exp(d)
        e[d == 0] = 1.0
        e[masked] = 0.0
        top = np.zeros(x.shape, dtype=bool)
        top[np.arange(rows), top_i] = True
        rest = np.sum(np.where(top, 0.0, e), axis=1)
        normal = finite & ~top & (d >= -700.0)
        eps = (LIBM + 1.01 * U * np.abs(np.where(finite, d, 0.0))) * 1.001
        eps_max = np.max(np.where(normal, eps, 0.0), axis=1) if n > 1 else np.zeros(rows)
        gamma = (n - 1) * U / (1 - (n - 1) * U)
        floor = 2 * n * 2.0**-1000
        err_rest = (rest + floor) * (eps_max + 2 * gamma) * 1.01 + floor
        single = np.count_nonzero(finite, axis=1) == 1
    return _Rows(ok, d, e, eps, rest, err_rest, masked, single, top, m)


def _row_mask(r: _Rows, n: int) -> Mask:
    return np.repeat(r.ok, n)


@fast_tier("softmax", version=1)
def _softmax(xs: list[F64], params: Params, out: Decided) -> None:
    """softmax_i = e_i / S, S = 1 + R. S~ = fl(1 + R~): |S~ - S| <= err_rest + 1.01u S~.
    p~_i = fl(e~_i / S~): relative error eps_i + |S~ - S| / S~ + u (S >= 1), with margin.
    Masked entries are exactly 0; d~_i < -667 gives p_i <= e**d_i < 2**-962, tiny; a row
    with one finite entry is exactly [1, 0, ...]. Rows with NaN, +inf or no finite entry go
    to mpmath."""
    x = xs[0]
    rows, n = x.shape
    r = _rows(x)
    ok = _row_mask(r, n)
    with np.errstate(all="ignore"):
        s = 1.0 + r.rest
        rel_s = (r.err_rest + 1.01 * U * s) / s
        p = r.e / s[:, None]
        b = (r.eps + rel_s[:, None] + U) * MARGIN
    out.zero(ok & r.masked.ravel())
    out.exact(ok & (r.top & r.single[:, None]).ravel(), np.ones(rows * n))
    out.tiny(ok & (r.d < -667.0).ravel(), False, p.ravel())
    # The first maximum: p = 1 / (1 + R) = 1 - t with t = R / (1 + R) > 0 (another entry is
    # finite), R within err_rest of R~. mpmath divides 1 by fl(1 + R) (its fsum rounds once),
    # which is exactly 1 when R is far below 2**-wp2: mimic applies.
    with np.errstate(all="ignore"):
        r_lo = np.maximum(r.rest - r.err_rest, 0.0)
        r_hi = r.rest + r.err_rest
        t_lo = np.repeat(r_lo / (1 + r_hi) * (1 - 2.0**-50), n)
        t_hi = np.repeat(r_hi * (1 + 2.0**-50), n)
    out.below_power(ok & (r.top & ~r.single[:, None]).ravel(), 1.0, t_lo, t_hi, mimic=True,
                    t_approx=np.repeat(r.rest / (1 + r.rest), n))
    out.bounded(ok, p.ravel(), b.ravel())


def _lse(r: _Rows) -> tuple[F64, F64]:
    """log(sum_j e**d_j) = log1p(R): L~ = fl(log1p(R~)) within
    A = (err_rest + LIBM L~) 1.01 (log1p has slope <= 1 on [0, inf))."""
    with np.errstate(all="ignore"):
        lse = np.log1p(r.rest)
        return lse, (r.err_rest + LIBM * lse) * 1.01


@fast_tier("log_softmax", version=1, oracle_version=2)
def _log_softmax(xs: list[F64], params: Params, out: Decided) -> None:
    """log_softmax_i = d_i - log1p(R) with d_i <= 0 <= log1p(R): the two terms never cancel.
    |v_i - y_i| <= 1.01u |d~_i| + A + 1.01u |v_i|; masked entries are exactly -inf; a row
    with one finite entry has y = 0 there."""
    x = xs[0]
    n = x.shape[1]
    r = _rows(x)
    ok = _row_mask(r, n)
    lse, a = _lse(r)
    with np.errstate(all="ignore"):
        d = np.where(r.masked, 0.0, r.d)
        v = d - lse[:, None]
        b = (1.01 * U * np.abs(d) + a[:, None] + 1.01 * U * np.abs(v)) / np.abs(v) * MARGIN
    out.special(ok & r.masked.ravel(), -math.inf)
    out.zero(ok & (r.top & r.single[:, None]).ravel())
    # the first maximum when 0 < R <= R~ + err_rest < 2**-961: y = -log1p(R), tiny negative
    small = (r.rest + r.err_rest < 2.0**-961) & ~r.single
    out.tiny(ok & (r.top & small[:, None]).ravel(), True, np.repeat(-r.rest, n))
    # d_i - L with d_i < 0 exact in float64 (x_i - m often is: two values of one narrow
    # format) and L = log1p(R) > 0 tiny beside it: |y| = |d_i| (1 + L / |d_i|), a hair
    # beyond d_i, which may well be a value or a midpoint of the format. mpmath subtracts
    # its L from the exact d_i and rounds once (mimic).
    with np.errstate(all="ignore"):
        xm = np.where(np.isfinite(x), x, 0.0)
        m = np.where(np.isfinite(r.m), r.m, 0.0)[:, None]
        bv = d - xm  # Knuth's TwoSum of x and -m: its error term is 0 iff d is exact
        exact_d = ((xm - (d - bv)) + (-m - bv)) == 0
        ad = np.abs(d)
        t_lo = np.maximum(lse - a, 0.0)[:, None] / ad * (1 - 2.0**-50)
        t_hi = (lse + a)[:, None] / ad * (1 + 2.0**-50)
    sel = ok & (exact_d & (d < 0) & ~r.masked).ravel()  # R > 0: entry i itself is in it
    out.near(sel, d.ravel(), 1.0, t_lo.ravel(), t_hi.ravel(), mimic=True, t_approx=(lse[:, None] / ad).ravel())
    out.bounded(ok, v.ravel(), b.ravel())


@fast_tier("logsumexp", version=2, oracle_version=2)
def _logsumexp(xs: list[F64], params: Params, out: Decided) -> None:
    """logsumexp = m + log1p(R), m an exact input value: |v - y| <= A + 1.01u |v|. When m
    and log1p(R) nearly cancel the relative bound blows up and mpmath takes the row. A row
    with one finite entry is exactly m."""
    x = xs[0]
    r = _rows(x)
    lse, a = _lse(r)
    with np.errstate(all="ignore"):
        v = r.m + lse
        b = (a + 1.01 * U * np.abs(v)) / np.abs(v) * MARGIN
    out.exact(r.ok & r.single, r.m)
    # m + L with 0 < L = log1p(R) within A of L~ (L > 0: another entry is finite): |y| =
    # |m| (1 + sign(m) L / |m|), a hair beside the input value m when L is small. This
    # holds however small L is (e**-4954 for [5602, 650], where L~ underflows to 0 and
    # t_lo = 0), and when m is itself a rounding midpoint of the format (inputs wider than
    # the output): y then rounds away from m on L's side, which near() decides. The mpmath
    # path agrees since the oracle's version 2: it adds L to m and rounds once (mimic),
    # and below 2**-118 |m| it adds _exact_plus's stand-in 2**-121 |m| instead, which
    # rounds to m at wp2 <= 84 bits just as L does; version 1 rounded the "tie" to even
    # and this tier (version 1) sent such rows to mpmath to agree with it.
    with np.errstate(all="ignore"):
        am = np.abs(r.m)
        t_lo = np.maximum(lse - a, 0.0) / am * (1 - 2.0**-50)
        t_hi = (lse + a) / am * (1 + 2.0**-50)
    sel = r.ok & ~r.single & (r.m != 0)
    out.near(sel, r.m, np.sign(r.m), t_lo, t_hi, mimic=True, t_approx=lse / am)
    out.bounded(r.ok, v, b)


# -- running a tier ------------------------------------------------------------------------


def run_tier(tier: FastTier, oracle: Oracle, arrays: Sequence[npt.NDArray[Any]], fmt: Format,
             params: Params) -> tuple[Decided, Mask]:
    """Apply ``tier`` to one block of inputs: the partially filled output (flat) and, per
    task (element, or row for the row-wise kinds), whether it is decided. A row is decided
    only when every element in it is."""
    xs = [np.asarray(a, dtype=np.float64) for a in arrays]
    if oracle.kind == "elementwise":
        flat = [a.ravel() for a in xs]
        out = Decided(flat[0].size, fmt)
        nan = np.zeros(flat[0].shape, dtype=bool)
        for a in flat:
            nan |= np.isnan(a)
        out.special(nan, math.nan)  # NaN in gives NaN out, as in the mpmath path
        with np.errstate(all="ignore"):
            tier.fn(flat, params, out)
        return out, out.done
    rows = xs[0].shape[0]
    size = xs[0].size if oracle.kind == "rowwise" else rows
    out = Decided(size, fmt)
    if xs[0].size:  # empty rows have no maximum; mpmath says what they mean
        with np.errstate(all="ignore"):
            tier.fn(xs, params, out)
    done = np.asarray(out.done.reshape(rows, -1).all(axis=1) if rows else np.zeros(0), dtype=bool)
    return out, done
