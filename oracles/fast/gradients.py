"""Fast tiers of the built-in elementwise gradient oracles (∂exp/∂x, ..., ∂gelu/∂x, and
the binary cross-entropies' partial derivatives).

Each tier states proven facts about the derivative d of :mod:`oracles.catalogue_gradients`
(an exact value, a relative bound, a hair beside an exact value, 2**(k + f), an upper bound
on log2|d|) to a :class:`~oracles.fast.vjp.Vjp`, which turns them into facts about the
reference ``y = g d / count`` (two more roundings, on mantissas). The error model is that of
:mod:`oracles.fast`; the bounds below are on d alone, first order, with the 1% ``MARGIN``
covering the second-order terms. Every tier leaves an infinite cotangent to mpmath.

Where d is a hair beside 1, 1/2 or 1/4 (the Taylor regimes at x -> 0 and the saturated
tails), the tier states it with :meth:`Vjp.near`: the side of the exact value is proven,
so the binade is too (:func:`oracles.ziv.binade_of`), whatever mpmath's working-precision
value does. Until 2026-12 the mpmath path recorded the binade of that value, and these
tiers had to claim things of the catalogue's code (its value within two ulps, or the exact
part plus a correction rounded once) to reproduce it, leaving a window beside each power
of two to mpmath; issue 18 made the binade a property of the exact value and dropped those
claims. Where the distance t to the power of two underflows float64 (sigmoid(z) for z >
745), ``log2_t`` bounds tell near() which side of the band below it t is on.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from mpmath import iv, mp, mpf

from oracles.fast.decided import Decided
from oracles.fast.float64 import (
    ERF_SMALL_BOUND,
    ERFC,
    F64,
    HUGE_X,
    INV_SQRT_2PI,
    LIBM,
    MARGIN,
    RSQRT2,
    Mask,
    Params,
    U,
    erf_small,
    erfc,
    log2_exp,
    log2_exp_bounds,
    sigmoid64,
    two_prod,
)
from oracles.fast.root_series import RootSeries, derivative, horner, multiply, root_series, subtract
from oracles.fast.tier import TierFn, fast_tier
from oracles.fast.vjp import Vjp
from oracles.gradients import COUNT, gradient_name

__all__: list[str] = []  # the tiers are reached through FAST_TIERS, never by name

_TARGET = "oracles.catalogue_gradients:d_{}_d_{}"
_C_GELU = 1.5957691216057308  # fl(4 / sqrt(2 pi)), relative error <= u
_TAYLOR = 2.0**-4  # |x| up to this: the near() regimes at 0 (near() itself asks t <= 2**-(p+3))


def _tier(oracle: str, wrt: str, *, version: int = 1, oracle_version: int = 1) -> Callable[[TierFn], TierFn]:
    """Register a tier for the gradient of ``oracle`` with respect to ``wrt``, derived for
    version ``oracle_version`` of its catalogue function."""
    return fast_tier(gradient_name(oracle, wrt), version=version, target=_TARGET.format(oracle, wrt),
                     oracle_version=oracle_version)


def _vjp(xs: list[F64], params: Params, out: Decided) -> Vjp:
    return Vjp(out, xs[-1], float(params.get(COUNT, 1.0)))


def _log2_far(x: F64) -> tuple[F64, F64]:
    """(k, f) with x log2(e) = k + f within 2**-50, for |x| > 700 (elsewhere 0, 0); beyond
    +-2**31, k is a stand-in (+-2**40) past every threshold. :func:`log2_exp`'s proof holds
    for negative x as well: |p1| in (1000, 2**32), so k = floor(p1) and p1 - k in [0, 1)
    are exact."""
    ax = np.abs(x)
    sel = np.isfinite(x) & (ax > 700.0)
    if sel.all():  # the whole block (an exhaustive chunk's usually is): no gather or scatter
        within = ax <= HUGE_X
        if within.all():
            return log2_exp(x)
        k, f = log2_exp(np.where(within, x, 701.0))
        return np.where(within, k, np.copysign(2.0**40, x)), f
    k = np.zeros_like(x)
    f = np.zeros_like(x)
    idx = np.flatnonzero(sel)
    if idx.size:
        xi = x[idx]
        within = np.abs(xi) <= HUGE_X
        ki, fi = log2_exp(np.where(within, xi, 701.0))
        k[idx] = np.where(within, ki, np.copysign(2.0**40, xi))
        f[idx] = fi
    return k, f


def _ones(x: F64) -> F64:
    return np.ones_like(x)


# Every tier below tests each regime's mask (cheap comparisons) with ``out.todo(...).any()``
# before computing that regime's arguments: an exhaustive chunk feeds blocks of contiguous
# bit patterns, nearly always in one regime, and at a few thousand elements numpy's
# per-call overhead, not the arithmetic, is the cost. A regime's arguments are computed
# over the whole block (or gathered where noted) but read only on its mask, so they are the
# arrays the unguarded code computed there, bit for bit. A comparison with a finite bound
# (``ax <= 700``) is false at NaN and +-inf, which makes ``isfinite`` redundant beside it.


# -- exp, expm1: d = e**x ------------------------------------------------------------------


def _exp_like(xs: list[F64], params: Params, out: Decided) -> None:
    """d = e**x (both catalogue functions are ``mp.exp(x)``): +inf at +inf, 0 at -inf, 1 at
    0. |x| <= 2**-30: d = 1 +- t as in the forward exp tier.
    |x| <= 700: one libm call, LIBM. |x| > 700: log2 d = k + f within 2**-50 (_log2_far),
    which decides y past overflow or below 2**-960."""
    x = xs[0]
    d = _vjp(xs, params, out)
    todo = out.todo
    fin = np.isfinite(x)
    if not fin.all():
        d.inf(x == math.inf, False)
        d.zero(x == -math.inf)
    ax = np.abs(x)
    if (small := ax <= 2.0**-30).any():
        if (m := x == 0).any():
            d.exact(m, _ones(x))
        if (m := todo(small & (x != 0))).any():
            sx = np.sign(x)
            d.near(m, 1.0, sx, ax * (1 - ax) * (1 - 2.0**-50), ax * (1 + ax) * (1 + 2.0**-50),
                   t_approx=np.expm1(x) * sx)
    if (m := ax <= 700.0).any() and (m := todo(m)).any():
        d.value(m, np.exp(np.where(m, x, 0.0)), LIBM * MARGIN)
    if (m := ax > 700.0).any() and (m := todo(m & fin)).any():
        k, f = _log2_far(x)
        d.log2(m, k, f, 2.0**-50, False)


@_tier("exp", "x")
def _d_exp(xs: list[F64], params: Params, out: Decided) -> None:
    """d exp / dx = e**x: see _exp_like."""
    _exp_like(xs, params, out)


@_tier("expm1", "x")
def _d_expm1(xs: list[F64], params: Params, out: Decided) -> None:
    """d expm1 / dx = e**x: see _exp_like."""
    _exp_like(xs, params, out)


# -- log, log1p: d = 1 / x, 1 / (1 + x) --------------------------------------------------


@_tier("log", "x")
def _d_log(xs: list[F64], params: Params, out: Decided) -> None:
    """d = 1/x: NaN below 0 (-inf included), +inf at the pole 0, 0 at +inf. x = m 2**e,
    1/x = (1/m) 2**-e with 1/m in (1, 2] rounded once (u; exact, 2, when x is a power of
    two)."""
    x = xs[0]
    d = _vjp(xs, params, out)
    pos = np.isfinite(x) & (x > 0)
    if not pos.all():  # NaN is decided before the tier runs
        d.nan(x < 0)
        if (m := x == 0).any():
            d.inf(m, False)
        d.zero(x == math.inf)
    if (pos := out.todo(pos)).any():
        m, e = np.frexp(np.where(pos, x, 1.0))
        r = 1.0 / m
        ne = -e.astype(np.int64)
        d.exact(pos & (m == 0.5), r, ne)
        d.value(pos, r, U * MARGIN, ne)


@_tier("log1p", "x")
def _d_log1p(xs: list[F64], params: Params, out: Decided) -> None:
    """d = 1/(1 + x): NaN below -1, +inf at -1, 0 at +inf. s = fl(1 + x) is exact or within
    u (Knuth's TwoSum tells which); 1/s adds u after frexp: u or 2u. |x| <= 2**-4: d is
    1 -+ t, t = |x| / (1 + x) in [|x| (1 - |x|), |x| (1 + 2|x|)]; the catalogue divides 1 by
    the exact 1 + x once, correctly rounded; so for x = 2**k >= 2**20, beside
    the exact 1/x."""
    x = xs[0]
    d = _vjp(xs, params, out)
    todo = out.todo
    ok = np.isfinite(x) & (x > -1)
    if not ok.all():  # NaN is decided before the tier runs
        d.nan(x < -1)
        if (m := x == -1).any():
            d.inf(m, False)
        d.zero(x == math.inf)
    if not todo(ok).any():
        return
    xx = np.where(ok, x, 0.0)
    s = 1.0 + xx
    ax = np.abs(xx)
    if (m := ax <= _TAYLOR).any() and (m := todo(ok & m & (x != 0))).any():
        d.near(m, 1.0, -np.sign(xx), ax * (1 - ax) * (1 - 2.0**-50), ax * (1 + 2 * ax) * (1 + 2.0**-50),
               t_approx=ax / s)
    # x = 2**k >= 2**20: d = (1/x)(1 - t), t = 1/(1 + x) in [(1/x)(1 - 1/x), 1/x], beside the
    # exact 1/x (s rounds there, so the bound below could not settle it)
    if (m := xx >= 2.0**20).any() and (m := todo(ok & m)).any():
        mx, ex = np.frexp(xx)
        inv = np.ldexp(1.0, 1 - ex)
        d.near(m & (mx == 0.5), inv, -1.0, inv * (1 - inv) * (1 - 2.0**-50), inv * (1 + 2.0**-50),
               t_approx=1 / s)
    if (ok := todo(ok)).any():
        bb = s - 1.0
        exact_s = ((1.0 - (s - bb)) + (xx - bb)) == 0
        m, e = np.frexp(s)
        r = 1.0 / m
        ne = -e.astype(np.int64)
        d.exact(ok & exact_s & (m == 0.5), r, ne)
        d.value(ok, r, np.where(exact_s, U, 2 * U) * MARGIN, ne)


# -- tanh, sigmoid: d = 4E / (1 + E)**2, E / (1 + E)**2 -----------------------------------


def _bell(d: Vjp, x: F64, ax: F64, scale: float, rate: float) -> None:
    """d = scale E / (1 + E)**2 with E = e**-(rate |x|) (tanh': 4, 2; sigmoid': 1, 1), for
    |x| > 2**-4. rate |x| <= 700: E within LIBM; 1 + E within LIBM/2 + u (E <= 1), its
    square LIBM + 2u, rounded u; the division u, the scaling exact: 2 LIBM + 4u. Beyond:
    log2 d = log2(scale) + log2 E - 2 log2(1 + E) with E < 2**-1000."""
    todo = d.out.todo
    a = rate * ax  # exact: rate is 1 or 2
    if (m := a <= 700.0).any() and (m := todo(m)).any():
        e = np.exp(-np.where(m, a, 0.0))
        ope = 1.0 + e
        d.value(m, scale * e / (ope * ope), (2 * LIBM + 4 * U) * MARGIN)
    if (m := a > 700.0).any() and (m := todo(m & np.isfinite(x))).any():
        # 2|x| overflows to inf for |x| > 2**1023 (a float64 input), and _log2_far(-inf)
        # said d = 4 until version 2 of tanh'; any a past 2**31 gives a tiny d alike
        k, f = _log2_far(-np.minimum(a, 2.0**31))
        d.log2(m, k + math.log2(scale), f, 2.0**-49, False)


@_tier("tanh", "x", version=2)
def _d_tanh(xs: list[F64], params: Params, out: Decided) -> None:
    """d = 1 - tanh(x)**2: 0 at +-inf, 1 at 0. |x| <= 2**-4: d = 1 - t, t = tanh(x)**2 in
    [x^2 (1 - x^2), x^2] (tanh x >= x - x^3/3 for x >= 0); the catalogue returns
    ``_exact_plus(1, -tanh(x)**2)`` for |x| < 1/2, one rounding of 1 minus an accurate square.
    Otherwise _bell(4, 2)."""
    x = xs[0]
    d = _vjp(xs, params, out)
    if (m := np.isinf(x)).any():
        d.zero(m)
    ax = np.abs(x)
    if (small := ax <= _TAYLOR).any():
        if (m := x == 0).any():
            d.exact(m, _ones(x))
        if (m := out.todo(small & (x != 0))).any():
            x2 = ax * ax
            lo = np.where(x2 >= 2.0**-1000, x2 * (1 - x2) * (1 - 2.0**-50), 0.0)  # x^2 rounded up in the subnormals
            # tanh(min(|x|, 1)) before the guards: the same as tanh(|x|) on this mask
            d.near(m, 1.0, -1.0, lo, x2 * (1 + 2.0**-50) + 2.0**-1000, t_approx=np.tanh(ax) ** 2)
    _bell(d, x, ax, 4.0, 2.0)


@_tier("sigmoid", "x")
def _d_sigmoid(xs: list[F64], params: Params, out: Decided) -> None:
    """d = sigmoid(x) sigmoid(-x): 0 at +-inf, 1/4 at 0. |x| <= 2**-4: d = (1 - t)/4 with
    t = tanh(x/2)**2 in [(x/2)^2 (1 - x^2/4), (x/2)^2]; the catalogue returns
    ``_exact_plus(1/4, -tanh(x/2)**2 / 4)`` for |x| < 1. Otherwise _bell(1, 1)."""
    x = xs[0]
    d = _vjp(xs, params, out)
    if (m := np.isinf(x)).any():
        d.zero(m)
    ax = np.abs(x)
    if (small := ax <= _TAYLOR).any():
        if (m := x == 0).any():
            d.exact(m, np.full_like(x, 0.25))
        if (m := out.todo(small & (x != 0))).any():
            x2 = ax * ax
            h2 = x2 / 4
            lo = np.where(h2 >= 2.0**-1000, h2 * (1 - x2) * (1 - 2.0**-50), 0.0)
            d.near(m, 0.25, -1.0, lo, h2 * (1 + 2.0**-50) + 2.0**-1000, t_approx=np.tanh(ax / 2) ** 2)
    _bell(d, x, ax, 1.0, 1.0)


# -- softplus, log_sigmoid: d = sigmoid(z) ---------------------------------------------------


def _sigmoid_of(d: Vjp, x: F64, z: F64, z_exact: bool) -> None:
    """d = sigmoid(z) for finite x, z = fl(x beta) (relative error u unless ``z_exact``).

    z = 0 exactly only at x = 0: 1/2. |z| <= 2**-4: 1/2 (1 +- t), t = tanh(|z|/2) in
    [|z|/2 (1 - |z|), |z|/2], widened by 2**-50 for z's rounding (its sign is exact); the
    catalogue's _sigmoid is ``_exact_plus(1, -e/(1 + e))`` above 0 and
    ``_exact_plus(1/2, tanh(z/2)/2)`` in (-1, 0). z > 20: 1 - t with
    t = E/(1 + E) in [E (1 - E), E], E = e**-z within LIBM + 1.01u z < 2**-40 (z <= 745;
    beyond, E < 2**-1000 is covered absolutely, and log2 t = -z log2 e - log2(1 + E) says
    on which side of the band below 1 t is). -700 <= z <= 20:
    sigmoid64, 2 LIBM + 3u, plus the condition number |z| (1 - sigmoid(z)) <= |z| times z's
    u. z < -700: d < e**z, and log2 d <= fl(z) 1.4426 (1 - 2**-40) covers z's rounding."""
    todo = d.out.todo
    fin = np.isfinite(x)  # a finite z has a finite x (|beta| >= 2**-20), not the converse
    az = np.abs(z)
    if (small := az <= _TAYLOR).any():  # x = 0 (z = 0) among them
        if (m := x == 0).any():
            d.exact(m, np.full_like(x, 0.5))
        if (small := todo(small & fin & (az >= 2.0**-1000))).any():
            t_lo, t_hi = az / 2 * (1 - az) * (1 - 2.0**-50), az / 2 * (1 + 2.0**-50)
            t_approx = np.tanh(az / 2)  # tanh(min(|z|, 1) / 2) before the guards: the same here
            d.near(small & (z > 0), 0.5, 1.0, t_lo, t_hi, t_approx=t_approx)
            d.near(small & (z < 0), 0.5, -1.0, t_lo, t_hi, t_approx=t_approx)
    if (m := z > 20.0).any() and (m := todo(m & fin)).any():
        e = np.exp(-np.minimum(z, 800.0))
        d.near(m, 1.0, -1.0, np.maximum(e * (1 - 2.0**-40) * (1 - math.exp(-20.0)) - 2.0**-1000, 0.0),
               e * (1 + 2.0**-40) + 2.0**-1000, t_approx=e / (1 + e), log2_t=log2_exp_bounds(-np.maximum(z, 20.0)))
    if (m := (z >= -700.0) & (z <= 20.0)).any() and (m := todo(m & (az >= 2.0**-1000))).any():
        zz = np.where(m, z, 0.0)
        kappa_u = 0.0 if z_exact else 1.01 * U * np.abs(zz)
        d.value(m, sigmoid64(zz), (2 * LIBM + 3 * U + kappa_u) * MARGIN)
    if (m := z < -700.0).any() and (m := todo(m & fin)).any():
        d.below(m, z * (1.4426 * (1 - 2.0**-40)), False)


@_tier("softplus", "x", version=2, oracle_version=2)
def _d_softplus(xs: list[F64], params: Params, out: Decided) -> None:
    """d = sigmoid(beta x) (_sigmoid_of with z = fl(x beta)); at x = +-inf 1 or 0 by the sign
    of beta x. |beta| outside [2**-20, 2**20]: no tier (as the forward)."""
    beta = float(params.get("beta", 1.0))
    if not (math.isfinite(beta) and 2.0**-20 <= abs(beta) <= 2.0**20):
        return
    x = xs[0]
    d = _vjp(xs, params, out)
    if (inf := np.isinf(x)).any():
        up = (x == math.inf) == (beta > 0)
        d.exact(inf & up, _ones(x))
        d.zero(inf & ~up)
    _sigmoid_of(d, x, x * beta, beta in (1.0, -1.0))


@_tier("log_sigmoid", "x", version=2, oracle_version=2)
def _d_log_sigmoid(xs: list[F64], params: Params, out: Decided) -> None:
    """d = sigmoid(-x) (_sigmoid_of with the exact z = -x): 0 at +inf, 1 at -inf."""
    x = xs[0]
    d = _vjp(xs, params, out)
    if np.isinf(x).any():
        d.zero(x == math.inf)
        d.exact(x == -math.inf, _ones(x))
    _sigmoid_of(d, x, -x, True)


# -- silu, gelu: 1/2 + a correction near 0, 1 +- an excess beyond, a root at x < 0 ----------


#: the series about the roots of silu' and gelu': 10 terms over |x - x0| <= 2**-5 bound the
#: value within 2**-48.5 (gelu) relative, the truncation included (see root_series)
_ROOT_TERMS = 10
_ROOT_WIDTH = 2.0**-5


def _window(x0: mpf) -> Any:
    """The inputs |x - x0| <= _ROOT_WIDTH as an interval, a little wider (53-bit ends)."""
    return iv.mpf([float(x0) - 1.01 * _ROOT_WIDTH, float(x0) + 1.01 * _ROOT_WIDTH])


def _enclosed(a: list[mpf]) -> list[Any]:
    """Intervals around the coefficients (iv rounds outward), for a rigorous bound."""
    return [iv.mpf(c) for c in a]


@functools.cache
def _silu_root() -> RootSeries:
    """silu' = s + x s' with s = sigmoid(x) about its root x0 = -1.2785: every derivative of s
    is a polynomial in s, s**(k+1) = P_k'(s) s (1 - s) with P_0(s) = s, so
    d**(k) = (k + 1) P_k(s) + x P_(k+1)(s)."""
    n = _ROOT_TERMS
    with mp.workprec(200):
        x0 = mp.findroot(lambda t: 1 + t / (1 + mp.exp(t)), mpf(-1.28))
        ps = [[mpf(0), mpf(1)]]
        for _ in range(n + 2):
            ps.append(multiply(derivative(ps[-1]), [mpf(0), mpf(1), mpf(-1)]))
        s0 = 1 / (1 + mp.exp(-x0))
        coeffs = [((k + 1) * horner(ps[k], s0) + x0 * horner(ps[k + 1], s0)) / mp.factorial(k) for k in range(1, n + 1)]
        xs = _window(x0)
        ss = 1 / (1 + iv.exp(-xs))
        top = abs((n + 2) * horner(_enclosed(ps[n + 1]), ss) + xs * horner(_enclosed(ps[n + 2]), ss)) / mp.factorial(n + 1)
        return root_series(x0, coeffs, mpf(top.b), _ROOT_WIDTH)


@functools.cache
def _gelu_root() -> RootSeries:
    """gelu' = Phi + x phi about its root x0 = -0.7518: d**(k) = phi q_k with q_1 = 2 - x**2
    and q_(k+1) = q_k' - x q_k."""
    n = _ROOT_TERMS
    with mp.workprec(200):
        x0 = mp.findroot(lambda t: mp.ncdf(t) + t * mp.npdf(t), mpf(-0.75))
        qs = [[mpf(2), mpf(0), mpf(-1)]]
        for _ in range(n):
            qs.append(subtract(derivative(qs[-1]), multiply([mpf(0), mpf(1)], qs[-1])))
        coeffs = [mp.npdf(x0) * horner(qs[k - 1], x0) / mp.factorial(k) for k in range(1, n + 1)]
        xs = _window(x0)
        top = abs(iv.exp(-xs * xs / 2) / iv.sqrt(2 * iv.pi) * horner(_enclosed(qs[n]), xs)) / mp.factorial(n + 1)
        return root_series(x0, coeffs, mpf(top.b), _ROOT_WIDTH)


def _beside_root(d: Vjp, todo: Callable[[Mask], Mask], x: F64, sel: Mask, series: RootSeries) -> None:
    """What the regime ``sel`` left undecided within the series' window: beside the root."""
    if (m := todo(sel)).any() and (m := m & series.covers(x)).any():
        d.value(m, series.value(x), series.bound)


@_tier("silu", "x", version=3, oracle_version=2)
def _d_silu(xs: list[F64], params: Params, out: Decided) -> None:
    """d = sigmoid(x) (1 + x sigmoid(-x)): 1 at +inf, 0 at -inf, 1/2 at 0.

    |x| <= 2**-4: d = (1 + sign(x) t)/2, t = |x| (1 - x^2/6 + ...) in [|x| (1 - |x|), |x|];
    the catalogue computes ``_exact_plus(1/2, c)`` for |x| < 1 with c = (T + x (1 - T^2)/2)/2,
    T = tanh(x/2): two terms of x's sign (1 - T^2 > 0.78), four roundings and a tanh, so c~
    is within 2**(8 - wp) of c relative and of x's sign, added to the exact 1/2 and rounded
    once. x >= 20: d = 1 + t, t = E (x - 1 - E) / (1 + E)**2 in
    [E (x - 1)(1 - 3E), E (x - 1)] with E = e**-x; ``_exact_plus(1, t~)`` with t~ > 0.

    x >= 0: (1 + E + xE) / (1 + E)**2, all terms positive: numerator LIBM + 2u, denominator
    LIBM + 3u, division u: 2 LIBM + 6u. x < 0, a = -x, E = e**-a: d = -E w / (1 + E)**2 with
    w = (a - 1) - E, which vanishes at the root a = 1.278...: |w~ - w| <= u |a - 1| +
    LIBM E + u |w~| = A, so w is within A / (|w~| - A) relative; with E (LIBM), the
    denominator (LIBM + 3u) and two roundings: 2 LIBM + 5u + that. What this leaves
    within 2**-5 of the root, the series about it decides (_silu_root). a > 700: |d| <= E a,
    log2|d| <= -a log2(e) + log2(a), negative."""
    x = xs[0]
    d = _vjp(xs, params, out)
    todo = out.todo
    fin = np.isfinite(x)
    if not fin.all():
        d.exact(x == math.inf, _ones(x))
        d.zero(x == -math.inf)
    ax = np.abs(x)
    if (small := ax <= _TAYLOR).any():
        if (m := x == 0).any():
            d.exact(m, np.full_like(x, 0.5))
        if (m := todo(small & (x != 0))).any():
            th = np.tanh(ax / 2)  # 2d - 1 = tanh(x/2) + x (1 - tanh(x/2)**2) / 2, no cancellation
            d.near(m, 0.5, np.sign(x), ax * (1 - ax) * (1 - 2.0**-50), ax * (1 + 2.0**-50),
                   t_approx=th + ax * (1 - th * th) / 2)
    # E = e**-|x|, shared by the three regimes of x >= -700 (finite: E at +inf is never read)
    if (m := x >= -700.0).any() and todo(m & fin).any():
        e = np.exp(-np.minimum(ax, 800.0))
        ope = 1.0 + e
        den = ope * ope
        if (m := x >= 20.0).any() and (m := todo(m & fin)).any():
            xm1 = x - 1.0
            d.near(m, 1.0, 1.0, np.maximum(e * xm1 * (1 - 3 * e) * (1 - 2.0**-40) - 2.0**-1000, 0.0),
                   e * xm1 * (1 + 2.0**-40) + 2.0**-1000, t_approx=e * (xm1 - e) / den)
        if (m := x >= 0).any() and (m := todo(m & fin)).any():
            d.value(m, (ope + x * e) / den, (2 * LIBM + 6 * U) * MARGIN)
        if (m := x < 0).any() and (m := todo(m & (ax <= 700.0))).any():
            am1 = ax - 1.0
            w = am1 - e
            big_a = U * np.abs(am1) + LIBM * e + U * np.abs(w)
            rel_w = np.where(np.abs(w) > 2 * big_a, big_a / (np.abs(w) - big_a), math.inf)
            d.value(m, -e * w / den, (2 * LIBM + 5 * U + rel_w) * MARGIN)
            _beside_root(d, todo, x, m, _silu_root())
    if (m := x < -700.0).any() and (m := todo(m & fin)).any():
        with np.errstate(all="ignore"):
            log2_max = -ax * 1.4426 + np.log(ax) * 1.4427 + 0.01
        d.below(m, log2_max, True)


def _erfc_half(x: F64, mask: Mask, sign: float) -> F64:
    """erfc(sign x / sqrt 2) / 2 on ``mask`` (0 elsewhere): math.erfc is one Python call per
    element, so only the elements a regime reads are evaluated."""
    if mask.all():
        return erfc(sign * x * RSQRT2) / 2.0
    out = np.zeros_like(x)
    idx = np.flatnonzero(mask)
    out[idx] = erfc(sign * x[idx] * RSQRT2) / 2.0
    return out


@_tier("gelu", "x", version=5, oracle_version=2)
def _d_gelu(xs: list[F64], params: Params, out: Decided) -> None:
    """d = Phi(x) + x phi(x): 1 at +inf, 0 at -inf, 1/2 at 0.

    |x| <= 2**-4: d = (1 + sign(x) t)/2, t = c|x| (1 - x^2/3 + ...) in [c|x| (1 - |x|), c|x|],
    c = 4/sqrt(2 pi) (within u; the bounds carry 2**-48); the catalogue computes
    ``_exact_plus(1/2, erf(x/sqrt 2)/2 + x phi(x))`` for |x| < 1: two terms of x's sign, erf's
    condition number below 1, a few roundings, so the correction is within 2**(8 - wp) of
    its value, added to the exact 1/2 and rounded once (as silu); where that t is too large
    for near(), d is bounded from the same series. x >= 3: d = 1 + t with t = x phi - Phi(-x) in
    [phi (x - 1/x), x phi] (Mills' ratio: x/(x^2 + 1) <= Phi(-x)/phi(x) <= 1/x);
    ``_exact_plus(1, t~)`` with t~ > 0 (the two terms differ by a factor ~x^2).

    phi~ = exp(-fl(x^2)/2) fl(1/sqrt(2 pi)): x^2 rounds (u) and moves the exponent by
    u x^2/2 relative: eps_phi = LIBM + u (1.01 x^2/2 + 2) (< 2**-40 for |x| < 37.6, where
    e**-x^2/2 is normal; past it phi < 2**-1000, which the bounds' 2**-1000 covers).
    Phi~ = erfc(-x/sqrt 2)/2 as the forward gelu: ERFC + 2.01u kappa, kappa = t (2t + 2) for
    t = -x/sqrt 2 > 0 and 1/2 otherwise. x >= 0: two positive terms, max(eps) + u each. x in
    [-37, 0): Phi > 0 > x phi: |d~ - d| <= Phi~ eps_Phi + |x phi~| (eps_phi + u) + u|d~| = A,
    relative A / (|d~| - A), which cancels near the root x = -0.7518: what that leaves within
    2**-5 of it, the series about the root decides (_gelu_root). x < -37: |d| < |x| phi(x),
    log2|d| <= (1.01 ln|x| - x^2/2 (1 - 2**-50)) 1.4426, negative."""
    x = xs[0]
    d = _vjp(xs, params, out)
    todo = out.todo
    fin = np.isfinite(x)
    if not fin.all():
        d.exact(x == math.inf, _ones(x))
        d.zero(x == -math.inf)
    if (m := x == 0).any():
        d.exact(m, np.full_like(x, 0.5))
    ax = np.abs(x)
    # phi and erfc are read only on finite x: no need to replace the others by 0 first.
    # Phi(x) = erfc(-x/sqrt 2)/2 (and Phi(-x) where x >= 3: 1 - Phi(x) would cancel) is
    # evaluated only where its regime reads it, since math.erfc is one Python call per element
    if (m := x >= -37.0).any() and todo(m & fin).any():
        x2 = x * x
        phi = np.exp(-x2 / 2) * INV_SQRT_2PI
        xphi = x * phi
        # t_approx (hi and lo only): 2 Phi - 1 + 2 x phi and x phi - Phi(-x), both within 1e-14
        if (m := ax <= _TAYLOR).any() and (m := todo(m & (x != 0))).any():
            # 2 Phi - 1 = erf(x / sqrt 2), by its series here (|x| / sqrt 2 < ERF_SMALL)
            d.near(m, 0.5, np.sign(x), _C_GELU * ax * (1 - ax) * (1 - 2.0**-48),
                   _C_GELU * ax * (1 + 2.0**-48), t_approx=np.abs(erf_small(x * RSQRT2) + 2 * x * phi))
        if (m := ax <= _TAYLOR).any() and (m := todo(m)).any():
            # where near() declines (its t_hi = c|x| beyond 2**-(p+3): |x| > 2**-27.7 in float32, 96 of the 1024
            # float32 chunks, which erfc took 3x as long over): d = 1/2 + S/2 with
            # S = erf(x / sqrt 2) + 2 x phi, two terms of x's sign, |S| <= 1.596 |x| < 0.1.
            # erf_small's error and the argument's 2.01u (erf's condition number <= 1.002
            # here) make 7.03u of its term, eps_phi + u that of 2 x phi; the sum rounds (u).
            # d's error: S's, halved, plus v's own rounding, relative to v >= 0.449
            eps_s = max(ERF_SMALL_BOUND + 2.03 * U, LIBM + 3.02 * U) + 1.01 * U
            v = 0.5 + 0.5 * (erf_small(x * RSQRT2) + 2 * xphi)
            d.value(m, v, (0.5 * eps_s * 0.1 / 0.449 + U) * MARGIN)
        if (m := x >= 3.0).any() and (m := todo(m & fin)).any():
            # Phi(-x) (t_approx only) by erfc below 7, by its asymptotic series from 7: within
            # 945/x^10 < 2**-18 of a Phi(-x) < 2**-39, so under 2**-57 of d; 0 past 38
            r2 = 1.0 / (x * x)
            tail = np.where(x < 7.0, _erfc_half(x, m & (x < 7.0), 1.0),
                            phi / x * (1 - r2 * (1 - r2 * (3 - r2 * (15 - 105 * r2)))))
            d.near(m, 1.0, 1.0, np.maximum(phi * (x - 1 / x) * (1 - 2.0**-40) - 2.0**-1000, 0.0),
                   phi * x * (1 + 2.0**-40) + 2.0**-1000, t_approx=xphi - tail)
        if (sel := todo((x >= -37.0) & (ax <= 38.0))).any():
            big_phi = _erfc_half(x, sel, -1.0)
            t = -x * RSQRT2
            at = np.abs(t) * 1.001
            eps_big_phi = ERFC + 2.01 * U * np.where(t > 0, at * (2 * at + 2), 0.5)
            eps_phi = LIBM + U * (1.01 * x2 / 2 + 2)
            v = big_phi + xphi
            b_pos = np.maximum(eps_big_phi, eps_phi + U) + U
            big_a = big_phi * eps_big_phi + np.abs(xphi) * (eps_phi + U) + U * np.abs(v)
            b_neg = np.where(np.abs(v) > 2 * big_a, big_a / (np.abs(v) - big_a), math.inf)
            d.value(sel, v, np.where(x >= 0, b_pos, b_neg) * MARGIN)
            _beside_root(d, todo, x, sel, _gelu_root())
    if (m := x < -37.0).any() and (m := todo(m & fin)).any():
        x2 = x * x
        with np.errstate(all="ignore"):
            log2_max = (1.01 * np.log(ax) - x2 / 2 * (1 - 2.0**-50)) * 1.4426
        d.below(m, log2_max, True)


# -- binary cross-entropy: d/dp, d/dy ----------------------------------------------------------


def _two_sum_exact(a: F64, b: F64) -> tuple[F64, Mask]:
    """s = fl(a + b) and whether it is exact (Knuth's TwoSum error term is 0)."""
    s = a + b
    bb = s - a
    return s, ((a - (s - bb)) + (b - bb)) == 0


def _probabilities(d: Vjp, p: F64, y: F64) -> Mask:
    """NaN outside 0 <= p, y <= 1 (the forward's domain; +-inf included); the mask inside."""
    inside = (p >= 0) & (p <= 1) & (y >= 0) & (y <= 1)
    d.nan(~inside)
    return inside


@_tier("binary_cross_entropy", "p")
def _d_bce_p(xs: list[F64], params: Params, out: Decided) -> None:
    """d = (p - y) / (p (1 - p)) for 0 < p < 1, with the catalogue's one-sided values at the
    edges: 1 at (0, 0), -inf at p = 0 < y, -1 at (1, 1), +inf at p = 1 > y; 0 where p = y.
    In float64 (p >= 2**-900, so that nothing below is subnormal), p - y, 1 - p and p (1 - p)
    are each exact or within u (TwoSum and Dekker tell which) and the quotient rounds once:
    u times one plus the number of inexact steps; exact where all are and the quotient is
    (the catalogue divides the exact numerator by the exact denominator once)."""
    p, y = xs[0], xs[1]
    d = _vjp(xs, params, out)
    inside = _probabilities(d, p, y)
    d.exact(inside & (p == 0) & (y == 0), _ones(p))
    d.inf(inside & (p == 0) & (y > 0), True)
    d.exact(inside & (p == 1) & (y == 1), -_ones(p))
    d.inf(inside & (p == 1) & (y < 1), False)
    mid = inside & (p >= 2.0**-900) & (p < 1)
    d.zero(mid & (p == y))
    pp, yy = np.where(mid, p, 0.5), np.where(mid, y, 0.0)
    num, num_ok = _two_sum_exact(pp, -yy)
    q, q_ok = _two_sum_exact(np.ones_like(pp), -pp)
    den, den_err = two_prod(pp, q)
    ratio = num / den
    back, back_err = two_prod(ratio, den)
    inexact = 1.0 + np.count_nonzero(np.stack([~num_ok, ~q_ok, den_err != 0]), axis=0)
    d.exact(mid & num_ok & q_ok & (den_err == 0) & (back == num) & (back_err == 0), ratio)
    # beside +-1, one correctly rounded division: y = 0, p <= 2**-4: d = 1/(1 - p) =
    # 1 + t, t = p/(1 - p) in [p, p (1 + 2p)]; y = 1, p >= 1 - 2**-4: d = -1/p, |d| = 1 + t,
    # t = q/p with q = 1 - p exact (Sterbenz), within u
    d.near(mid & (y == 0) & (p <= _TAYLOR), 1.0, 1.0, pp * (1 - 2.0**-50), pp * (1 + 2 * pp) * (1 + 2.0**-50),
           t_approx=pp / q)
    d.near(mid & (y == 1) & (p >= 1 - _TAYLOR), -1.0, 1.0, q / pp * (1 - 2.0**-50), q / pp * (1 + 2.0**-50),
           t_approx=q / pp)
    d.value(mid, ratio, inexact * U * MARGIN)


@_tier("binary_cross_entropy", "y")
def _d_bce_y(xs: list[F64], params: Params, out: Decided) -> None:
    """d = log(1 - p) - log(p): +inf at p = 0, -inf at p = 1, 0 at p = 1/2 exactly. As the
    catalogue: p <= 1/2: log1p(a), a = (1 - 2p)/p >= 0, where 1 - 2p is exact for p >= 1/4
    (Sterbenz) and within u below, the quotient u, and log1p's condition number
    a/((1 + a) log1p a) <= 1 on a >= 0: LIBM + 2u. p > 1/2: -log1p(a), a = (2p - 1)/(1 - p)
    with both exact (Sterbenz): LIBM + u. p >= 2**-900 keeps a finite."""
    p, y = xs[0], xs[1]
    d = _vjp(xs, params, out)
    inside = _probabilities(d, p, y)
    d.inf(inside & (p == 0), False)
    d.inf(inside & (p == 1), True)
    d.zero(inside & (p == 0.5))
    pp = np.where(inside & (p >= 2.0**-900) & (p < 1), p, 0.25)
    low = inside & (p >= 2.0**-900) & (p < 0.5)
    high = inside & (p > 0.5) & (p < 1)
    d.value(low, np.log1p((1 - 2 * pp) / pp), (LIBM + 2 * U) * MARGIN)
    d.value(high, -np.log1p((2 * pp - 1) / (1 - pp)), (LIBM + U) * MARGIN)


# -- binary cross-entropy with logits: d/dx, d/dy -----------------------------------------------


@_tier("binary_cross_entropy_with_logits", "x", version=2)
def _d_bce_logits_x(xs: list[F64], params: Params, out: Decided) -> None:
    """d = sigmoid(x) - y, as the catalogue: c + q with the exact c = 1 - y, q = -E/(1 + E),
    E = e**-x for x > 0, and c = -y, q = E/(1 + E), E = e**x for x <= 0 (so |q| <= 1/2).
    NaN for a finite x and an infinite y; -y at x = +-inf with an infinite y; 1 - y at
    x = +inf and -y at -inf otherwise.

    c~ = fl(c) is exact or within u (TwoSum); q~ is within 1.5 LIBM + 2u (sigmoid64's
    argument); v = fl(c~ + q~) within A = |c~ - c| + |q~| (2 LIBM + 3u) + u|v|, relative
    A/(|v| - A). Beside c != 0 exact: |d| = |c| (1 + sign(q c) t), t = |q|/|c|, with
    sign(q) = -sign(x) taken from x (q~ underflows to +-0 past |x| ~ 745, and np.sign(0) = 0
    would put d on the wrong side of c) and |q| < 2**-1000 for |x| > 700. The catalogue
    computes ``_exact_plus(c, q)`` for |x| >= 1 and ``_exact_plus(1/2 - y, tanh(x/2)/2)``
    below: the same c + q with q = (1/2 - y - c) + r, r = tanh(x/2)/2, one exact +-1/2 plus
    r accurate to u_wp |r| <= u_wp/4, so within 2**(8 - wp) |q| since |q| > 1/4 there, rounded
    once. Its stand-in for a tiny r (|r| < 2**-120 |1/2 - y|) moves d by under 2**-118
    relative and keeps r's sign. Where c = 0,
    d = q: below 2**(-|x| 1.4426 (1 - 2**-40)) for |x| > 700."""
    x, y = xs[0], xs[1]
    d = _vjp(xs, params, out)
    xinf, yinf = np.isinf(x), np.isinf(y)
    d.nan(yinf & ~xinf)
    d.inf(xinf & yinf, y > 0)
    fy = np.isfinite(y)
    yy = np.where(fy, y, 0.0)
    one_minus, one_ok = _two_sum_exact(np.ones_like(yy), -yy)
    for at, limit, limit_ok in ((x == math.inf, one_minus, one_ok), (x == -math.inf, -yy, np.ones_like(fy))):
        d.zero(at & fy & (limit == 0))
        d.exact(at & fy & limit_ok, limit)
        d.value(at & fy, limit, U * MARGIN)
    fin = np.isfinite(x) & fy
    xx = np.where(fin, x, 0.0)
    pos = xx > 0
    c = np.where(pos, one_minus, -yy)
    c_ok: Mask = np.where(pos, one_ok, True)
    ax = np.abs(xx)
    e = np.exp(-np.minimum(ax, 800.0))
    q = np.where(pos, -1.0, 1.0) * (e / (1.0 + e))
    bq = (2 * LIBM + 3 * U) * 1.01
    far = ax > 700.0  # |q| < e**-700 < 2**-1000, and q~ may be subnormal
    aq_lo = np.where(far, 0.0, np.abs(q) * (1 - bq))
    aq_hi = np.where(far, 2.0**-1000, np.abs(q) * (1 + bq))
    # y = 1/2: d = tanh(x/2)/2 exactly, without the cancellation of c + q (LIBM + u)
    half = fin & (yy == 0.5) & (ax >= 2.0**-1000)
    d.value(half, np.tanh(xx / 2) / 2, (LIBM + U) * MARGIN)
    # y = 0 or 1, |x| <= 2**-4: d = sigmoid(x) or -sigmoid(-x), beside +-1/2 as the sigmoid
    # forward's near() (t = tanh(|x|/2) in [|x|/2 (1 - |x|), |x|/2]); the catalogue computes
    # _exact_plus(+-1/2, tanh(x/2)/2), the exact +-1/2 plus an accurate correction rounded
    # once
    small = fin & (ax <= _TAYLOR) & (ax >= 2.0**-1000) & ((yy == 0) | (yy == 1))
    sgn = np.where(yy == 0, 1.0, -1.0)
    d.near(small, 0.5 * sgn, np.sign(xx) * sgn, ax / 2 * (1 - ax) * (1 - 2.0**-50), ax / 2 * (1 + 2.0**-50),
           t_approx=np.tanh(np.minimum(ax, 1.0) / 2))
    exact_c = fin & c_ok & (c != 0)
    inv = 1 / np.where(c != 0, np.abs(c), 1.0)
    # the sign of q from that of x, not from q~: past |x| ~ 745 e**-|x| underflows to 0, and
    # np.sign(+-0) = 0 would read as "|d| below |c|" (x = 1e4, y = 2176 in float16: -2175 - E
    # is not the midpoint -2175, and rounds to -2176, not -2174)
    sq = np.where(pos, -1.0, 1.0)
    d.near(exact_c, c, sq * np.sign(c), aq_lo * inv * (1 - 2.0**-50), aq_hi * inv * (1 + 2.0**-50),
           t_approx=np.abs(q) * inv)
    d.below(fin & (c == 0) & far, -ax * (1.4426 * (1 - 2.0**-40)), pos)  # q < 0 for x > 0, even where it underflows
    v = c + q
    big_a = np.where(c_ok, 0.0, U * np.abs(c)) + aq_hi * bq + U * np.abs(v) + np.where(far, 2.0**-1000, 0.0)
    rel = np.where(np.abs(v) > 2 * big_a, big_a / (np.abs(v) - big_a), math.inf)
    d.value(fin & ~((c == 0) & far), v, rel * MARGIN)


@_tier("binary_cross_entropy_with_logits", "y")
def _d_bce_logits_y(xs: list[F64], params: Params, out: Decided) -> None:
    """d = -x exactly (softplus(-x) - softplus(x)); NaN for a finite x and an infinite y."""
    x, y = xs[0], xs[1]
    d = _vjp(xs, params, out)
    d.nan(np.isinf(y) & np.isfinite(x))
    d.inf(x == math.inf, True)
    d.inf(x == -math.inf, False)
    d.zero(x == 0)
    d.exact(np.isfinite(x) & (x != 0), -x)
