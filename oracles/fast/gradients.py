"""Fast tiers of the built-in elementwise gradient oracles (∂exp/∂x, ..., ∂gelu/∂x, and
the binary cross-entropies' partial derivatives).

Each tier states proven facts about the derivative d of :mod:`oracles.catalogue_gradients`
(an exact value, a relative bound, a hair beside an exact value, 2**(k + f), an upper bound
on log2|d|) to a :class:`~oracles.fast.vjp.Vjp`, which turns them into facts about the
reference ``y = g d / count`` (two more roundings, on mantissas). The error model is that of
:mod:`oracles.fast`; the bounds below are on d alone, first order, with the 1% ``MARGIN``
covering the second-order terms. Every tier leaves an infinite cotangent to mpmath.

Where d is a hair beside 1, 1/2 or 1/4 (the Taylor regimes at x -> 0 and the saturated
tails), the tier states it with :meth:`Vjp.near`. There ``mimic`` claims of the catalogue
function what :meth:`Decided.near` needs (its value within two ulps, on the right side of
the power of two), and ``once`` the stronger claim that it is the exact value plus an
accurate correction rounded once (``_exact_plus``, or one correctly rounded operation such
as ``mp.exp`` or a division of exact numbers), which also decides the window near()
leaves to mpmath; each tier's docstring says which applies and why. silu', gelu' and
sigmoid(z) below 0 (softplus', log_sigmoid') are computed near 0 as the exact 1/2 plus a
correction that does not cancel, rounded once (version 2 of those gradients; version 1
formed 1 plus an excess near -1/2, or e/(1 + e), in several roundings, and the tier left
2**-71 < |x| < 2**-58 in bfloat16 to mpmath), so both claims hold there.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from oracles.fast.decided import Decided
from oracles.fast.float64 import (
    ERFC,
    F64,
    HUGE_X,
    LIBM,
    MARGIN,
    RSQRT2,
    Mask,
    Params,
    U,
    erfc,
    log2_exp,
    sigmoid64,
    two_prod,
)
from oracles.fast.tier import TierFn, fast_tier
from oracles.fast.vjp import Vjp
from oracles.gradients import COUNT, gradient_name

__all__: list[str] = []  # the tiers are reached through FAST_TIERS, never by name

_TARGET = "oracles.catalogue_gradients:d_{}_d_{}"
_INV_SQRT_2PI = 0.3989422804014327  # fl(1 / sqrt(2 pi)), relative error <= u
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
    k = np.zeros_like(x)
    f = np.zeros_like(x)
    idx = np.flatnonzero(np.isfinite(x) & (ax > 700.0))
    if idx.size:
        xi = x[idx]
        within = np.abs(xi) <= HUGE_X
        ki, fi = log2_exp(np.where(within, xi, 701.0))
        k[idx] = np.where(within, ki, np.copysign(2.0**40, xi))
        f[idx] = fi
    return k, f


def _ones(x: F64) -> F64:
    return np.ones_like(x)


# -- exp, expm1: d = e**x ------------------------------------------------------------------


def _exp_like(xs: list[F64], params: Params, out: Decided) -> None:
    """d = e**x (both catalogue functions are ``mp.exp(x)``): +inf at +inf, 0 at -inf, 1 at
    0. |x| <= 2**-30: d = 1 +- t as in the forward exp tier, with its mimic; once, too: mp.exp
    rounds once to nearest from guard bits.
    |x| <= 700: one libm call, LIBM. |x| > 700: log2 d = k + f within 2**-50 (_log2_far),
    which decides y past overflow or below 2**-960."""
    x = xs[0]
    d = _vjp(xs, params, out)
    fin = np.isfinite(x)
    d.inf(x == math.inf, False)
    d.zero(x == -math.inf)
    d.exact(x == 0, _ones(x))
    ax = np.abs(x)
    d.near(fin & (ax <= 2.0**-30) & (x != 0), 1.0, np.sign(x), ax * (1 - ax) * (1 - 2.0**-50),
           ax * (1 + ax) * (1 + 2.0**-50), t_approx=np.expm1(x) * np.sign(x), mimic=True, once=True)
    mid = fin & (ax <= 700.0)
    d.value(mid, np.exp(np.where(mid, x, 0.0)), LIBM * MARGIN)
    k, f = _log2_far(x)
    d.log2(fin & (ax > 700.0), k, f, 2.0**-50, False)


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
    d.nan(x < 0)
    d.inf(x == 0, False)
    d.zero(x == math.inf)
    pos = np.isfinite(x) & (x > 0)
    m, e = np.frexp(np.where(pos, x, 1.0))
    r = 1.0 / m
    d.exact(pos & (m == 0.5), r, -e.astype(np.int64))
    d.value(pos, r, U * MARGIN, -e.astype(np.int64))


@_tier("log1p", "x")
def _d_log1p(xs: list[F64], params: Params, out: Decided) -> None:
    """d = 1/(1 + x): NaN below -1, +inf at -1, 0 at +inf. s = fl(1 + x) is exact or within
    u (Knuth's TwoSum tells which); 1/s adds u after frexp: u or 2u. |x| <= 2**-4: d is
    1 -+ t, t = |x| / (1 + x) in [|x| (1 - |x|), |x| (1 + 2|x|)]; the catalogue divides 1 by
    the exact 1 + x once, correctly rounded (mimic, once); so for x = 2**k >= 2**20, beside
    the exact 1/x."""
    x = xs[0]
    d = _vjp(xs, params, out)
    d.nan(x < -1)
    d.inf(x == -1, False)
    d.zero(x == math.inf)
    ok = np.isfinite(x) & (x > -1)
    xx = np.where(ok, x, 0.0)
    s = 1.0 + xx
    bb = s - 1.0
    exact_s = ((1.0 - (s - bb)) + (xx - bb)) == 0
    ax = np.abs(xx)
    d.near(ok & (ax <= _TAYLOR) & (x != 0), 1.0, -np.sign(xx), ax * (1 - ax) * (1 - 2.0**-50),
           ax * (1 + 2 * ax) * (1 + 2.0**-50), t_approx=ax / s, mimic=True, once=True)
    # x = 2**k >= 2**20: d = (1/x)(1 - t), t = 1/(1 + x) in [(1/x)(1 - 1/x), 1/x], beside the
    # exact 1/x (s rounds there, so the bound below could not settle it); mimic as above
    mx, ex = np.frexp(xx)
    inv = np.ldexp(1.0, 1 - ex)
    d.near(ok & (xx >= 2.0**20) & (mx == 0.5), inv, -1.0, inv * (1 - inv) * (1 - 2.0**-50), inv * (1 + 2.0**-50),
           t_approx=1 / s, mimic=True, once=True)
    m, e = np.frexp(s)
    r = 1.0 / m
    d.exact(ok & exact_s & (m == 0.5), r, -e.astype(np.int64))
    d.value(ok, r, np.where(exact_s, U, 2 * U) * MARGIN, -e.astype(np.int64))


# -- tanh, sigmoid: d = 4E / (1 + E)**2, E / (1 + E)**2 -----------------------------------


def _bell(d: Vjp, x: F64, scale: float, rate: float) -> None:
    """d = scale E / (1 + E)**2 with E = e**-(rate |x|) (tanh': 4, 2; sigmoid': 1, 1), for
    |x| > 2**-4. rate |x| <= 700: E within LIBM; 1 + E within LIBM/2 + u (E <= 1), its
    square LIBM + 2u, rounded u; the division u, the scaling exact: 2 LIBM + 4u. Beyond:
    log2 d = log2(scale) + log2 E - 2 log2(1 + E) with E < 2**-1000."""
    fin = np.isfinite(x)
    a = rate * np.abs(x)  # exact: rate is 1 or 2
    mid = fin & (a <= 700.0)
    e = np.exp(-np.where(mid, a, 0.0))
    d.value(mid, scale * e / ((1.0 + e) * (1.0 + e)), (2 * LIBM + 4 * U) * MARGIN)
    k, f = _log2_far(-a)
    d.log2(fin & (a > 700.0), k + math.log2(scale), f, 2.0**-49, False)


@_tier("tanh", "x")
def _d_tanh(xs: list[F64], params: Params, out: Decided) -> None:
    """d = 1 - tanh(x)**2: 0 at +-inf, 1 at 0. |x| <= 2**-4: d = 1 - t, t = tanh(x)**2 in
    [x^2 (1 - x^2), x^2] (tanh x >= x - x^3/3 for x >= 0); the catalogue returns
    ``_exact_plus(1, -tanh(x)**2)`` for |x| < 1/2, one rounding of 1 minus an accurate square
    (mimic, once). Otherwise _bell(4, 2)."""
    x = xs[0]
    d = _vjp(xs, params, out)
    d.zero(np.isinf(x))
    d.exact(x == 0, _ones(x))
    ax = np.abs(x)
    x2 = ax * ax
    lo = np.where(x2 >= 2.0**-1000, x2 * (1 - x2) * (1 - 2.0**-50), 0.0)  # x^2 rounded up in the subnormals
    d.near(np.isfinite(x) & (ax <= _TAYLOR) & (x != 0), 1.0, -1.0, lo, x2 * (1 + 2.0**-50) + 2.0**-1000,
           t_approx=np.tanh(np.minimum(ax, 1.0)) ** 2, mimic=True, once=True)
    _bell(d, x, 4.0, 2.0)


@_tier("sigmoid", "x")
def _d_sigmoid(xs: list[F64], params: Params, out: Decided) -> None:
    """d = sigmoid(x) sigmoid(-x): 0 at +-inf, 1/4 at 0. |x| <= 2**-4: d = (1 - t)/4 with
    t = tanh(x/2)**2 in [(x/2)^2 (1 - x^2/4), (x/2)^2]; the catalogue returns
    ``_exact_plus(1/4, -tanh(x/2)**2 / 4)`` for |x| < 1 (mimic, once). Otherwise _bell(1, 1)."""
    x = xs[0]
    d = _vjp(xs, params, out)
    d.zero(np.isinf(x))
    d.exact(x == 0, np.full_like(x, 0.25))
    ax = np.abs(x)
    h2 = ax * ax / 4
    lo = np.where(h2 >= 2.0**-1000, h2 * (1 - ax * ax) * (1 - 2.0**-50), 0.0)
    d.near(np.isfinite(x) & (ax <= _TAYLOR) & (x != 0), 0.25, -1.0, lo, h2 * (1 + 2.0**-50) + 2.0**-1000,
           t_approx=np.tanh(np.minimum(ax, 1.0) / 2) ** 2, mimic=True, once=True)
    _bell(d, x, 1.0, 1.0)


# -- softplus, log_sigmoid: d = sigmoid(z) ---------------------------------------------------


def _sigmoid_of(d: Vjp, x: F64, z: F64, z_exact: bool) -> None:
    """d = sigmoid(z) for finite x, z = fl(x beta) (relative error u unless ``z_exact``).

    z = 0 exactly only at x = 0: 1/2. |z| <= 2**-4: 1/2 (1 +- t), t = tanh(|z|/2) in
    [|z|/2 (1 - |z|), |z|/2], widened by 2**-50 for z's rounding (its sign is exact); the
    catalogue's _sigmoid is ``_exact_plus(1, -e/(1 + e))`` above 0, the forward sigmoid's
    arithmetic, whose mimic the forward tier argues, and ``_exact_plus(1/2, tanh(z/2)/2)``
    in (-1, 0): the exact 1/2 plus a correction within two ulps (tanh once, halvings exact)
    of z's sign, rounded once (mimic, once). z > 20: 1 - t with
    t = E/(1 + E) in [E (1 - E), E], E = e**-z within LIBM + 1.01u z < 2**-40 (z <= 745;
    beyond, E < 2**-1000 is covered absolutely): ``_exact_plus(1, -e/(1 + e))``, mimic and
    once. -700 <= z <= 20:
    sigmoid64, 2 LIBM + 3u, plus the condition number |z| (1 - sigmoid(z)) <= |z| times z's
    u. z < -700: d < e**z, and log2 d <= fl(z) 1.4426 (1 - 2**-40) covers z's rounding."""
    fin = np.isfinite(x)
    az = np.abs(z)
    d.exact(fin & (x == 0), np.full_like(x, 0.5))
    small = fin & (az <= _TAYLOR) & (az >= 2.0**-1000)
    t_lo, t_hi = az / 2 * (1 - az) * (1 - 2.0**-50), az / 2 * (1 + 2.0**-50)
    t_approx = np.tanh(np.minimum(az, 1.0) / 2)
    d.near(small & (z > 0), 0.5, 1.0, t_lo, t_hi, t_approx=t_approx, mimic=True)
    d.near(small & (z < 0), 0.5, -1.0, t_lo, t_hi, t_approx=t_approx, mimic=True, once=True)
    e = np.exp(-np.minimum(np.where(fin, z, 0.0), 800.0))
    d.near(fin & (z > 20.0), 1.0, -1.0, np.maximum(e * (1 - 2.0**-40) * (1 - math.exp(-20.0)) - 2.0**-1000, 0.0),
           e * (1 + 2.0**-40) + 2.0**-1000, t_approx=e / (1 + e), mimic=True, once=True)
    mid = fin & (z >= -700.0) & (z <= 20.0) & (az >= 2.0**-1000)
    zz = np.where(mid, z, 0.0)
    kappa_u = 0.0 if z_exact else 1.01 * U * np.abs(zz)
    d.value(mid, sigmoid64(zz), (2 * LIBM + 3 * U + kappa_u) * MARGIN)
    d.below(fin & (z < -700.0), z * (1.4426 * (1 - 2.0**-40)), False)


@_tier("softplus", "x", version=2, oracle_version=2)
def _d_softplus(xs: list[F64], params: Params, out: Decided) -> None:
    """d = sigmoid(beta x) (_sigmoid_of with z = fl(x beta)); at x = +-inf 1 or 0 by the sign
    of beta x. |beta| outside [2**-20, 2**20]: no tier (as the forward)."""
    beta = float(params.get("beta", 1.0))
    if not (math.isfinite(beta) and 2.0**-20 <= abs(beta) <= 2.0**20):
        return
    x = xs[0]
    d = _vjp(xs, params, out)
    up = (x == math.inf) == (beta > 0)
    d.exact(np.isinf(x) & up, _ones(x))
    d.zero(np.isinf(x) & ~up)
    _sigmoid_of(d, x, x * beta, beta in (1.0, -1.0))


@_tier("log_sigmoid", "x", version=2, oracle_version=2)
def _d_log_sigmoid(xs: list[F64], params: Params, out: Decided) -> None:
    """d = sigmoid(-x) (_sigmoid_of with the exact z = -x): 0 at +inf, 1 at -inf."""
    x = xs[0]
    d = _vjp(xs, params, out)
    d.zero(x == math.inf)
    d.exact(x == -math.inf, _ones(x))
    _sigmoid_of(d, x, -x, True)


# -- silu, gelu: 1/2 + a correction near 0, 1 +- an excess beyond, a root at x < 0 ----------


@_tier("silu", "x", version=2, oracle_version=2)
def _d_silu(xs: list[F64], params: Params, out: Decided) -> None:
    """d = sigmoid(x) (1 + x sigmoid(-x)): 1 at +inf, 0 at -inf, 1/2 at 0.

    |x| <= 2**-4: d = (1 + sign(x) t)/2, t = |x| (1 - x^2/6 + ...) in [|x| (1 - |x|), |x|];
    the catalogue computes ``_exact_plus(1/2, c)`` for |x| < 1 with c = (T + x (1 - T^2)/2)/2,
    T = tanh(x/2): two terms of x's sign (1 - T^2 > 0.78), four roundings and a tanh, so c~
    is within 2**(8 - wp) of c relative and of x's sign, added to the exact 1/2 and rounded
    once: within an ulp of d and never across 1/2 (mimic), the correction rounded once
    (once). x >= 20: d = 1 + t, t = E (x - 1 - E) / (1 + E)**2 in
    [E (x - 1)(1 - 3E), E (x - 1)] with E = e**-x; ``_exact_plus(1, t~)`` with t~ > 0,
    so mpmath's value is never below 1 (mimic).

    x >= 0: (1 + E + xE) / (1 + E)**2, all terms positive: numerator LIBM + 2u, denominator
    LIBM + 3u, division u: 2 LIBM + 6u. x < 0, a = -x, E = e**-a: d = -E w / (1 + E)**2 with
    w = (a - 1) - E, which vanishes at the root a = 1.278...: |w~ - w| <= u |a - 1| +
    LIBM E + u |w~| = A, so w is within A / (|w~| - A) relative; with E (LIBM), the
    denominator (LIBM + 3u) and two roundings: 2 LIBM + 5u + that. a > 700: |d| <= E a,
    log2|d| <= -a log2(e) + log2(a), negative."""
    x = xs[0]
    d = _vjp(xs, params, out)
    fin = np.isfinite(x)
    d.exact(x == math.inf, _ones(x))
    d.zero(x == -math.inf)
    d.exact(x == 0, np.full_like(x, 0.5))
    ax = np.abs(x)
    th = np.tanh(np.minimum(ax, 1.0) / 2)  # 2d - 1 = tanh(x/2) + x (1 - tanh(x/2)**2) / 2, no cancellation
    d.near(fin & (ax <= _TAYLOR) & (x != 0), 0.5, np.sign(x), ax * (1 - ax) * (1 - 2.0**-50),
           ax * (1 + 2.0**-50), t_approx=th + ax * (1 - th * th) / 2, mimic=True, once=True)
    e = np.exp(-np.minimum(np.where(fin, ax, 0.0), 800.0))
    xm1 = x - 1.0
    d.near(fin & (x >= 20.0), 1.0, 1.0, np.maximum(e * xm1 * (1 - 3 * e) * (1 - 2.0**-40) - 2.0**-1000, 0.0),
           e * xm1 * (1 + 2.0**-40) + 2.0**-1000, t_approx=e * (xm1 - e) / ((1 + e) * (1 + e)), mimic=True)
    pos = fin & (x >= 0)
    d.value(pos, ((1.0 + e) + x * e) / ((1.0 + e) * (1.0 + e)), (2 * LIBM + 6 * U) * MARGIN)
    neg = fin & (x < 0) & (ax <= 700.0)
    am1 = ax - 1.0
    w = am1 - e
    big_a = U * np.abs(am1) + LIBM * e + U * np.abs(w)
    rel_w = np.where(np.abs(w) > 2 * big_a, big_a / (np.abs(w) - big_a), math.inf)
    d.value(neg, -e * w / ((1.0 + e) * (1.0 + e)), (2 * LIBM + 5 * U + rel_w) * MARGIN)
    with np.errstate(all="ignore"):
        log2_max = -ax * 1.4426 + np.log(ax) * 1.4427 + 0.01
    d.below(fin & (x < -700.0), log2_max, True)


@_tier("gelu", "x", version=2, oracle_version=2)
def _d_gelu(xs: list[F64], params: Params, out: Decided) -> None:
    """d = Phi(x) + x phi(x): 1 at +inf, 0 at -inf, 1/2 at 0.

    |x| <= 2**-4: d = (1 + sign(x) t)/2, t = c|x| (1 - x^2/3 + ...) in [c|x| (1 - |x|), c|x|],
    c = 4/sqrt(2 pi) (within u; the bounds carry 2**-48); the catalogue computes
    ``_exact_plus(1/2, erf(x/sqrt 2)/2 + x phi(x))`` for |x| < 1: two terms of x's sign, erf's
    condition number below 1, a few roundings, so the correction is within 2**(8 - wp) of
    its value, added to the exact 1/2 and rounded once (mimic, once; as silu). x >= 3: d = 1 + t with t = x phi - Phi(-x) in
    [phi (x - 1/x), x phi] (Mills' ratio: x/(x^2 + 1) <= Phi(-x)/phi(x) <= 1/x);
    ``_exact_plus(1, t~)`` with t~ > 0 (the two terms differ by a factor ~x^2): mimic.

    phi~ = exp(-fl(x^2)/2) fl(1/sqrt(2 pi)): x^2 rounds (u) and moves the exponent by
    u x^2/2 relative: eps_phi = LIBM + u (1.01 x^2/2 + 2) (< 2**-40 for |x| <= 38).
    Phi~ = erfc(-x/sqrt 2)/2 as the forward gelu: ERFC + 2.01u kappa, kappa = t (2t + 2) for
    t = -x/sqrt 2 > 0 and 1/2 otherwise. x >= 0: two positive terms, max(eps) + u each. x in
    [-37, 0): Phi > 0 > x phi: |d~ - d| <= Phi~ eps_Phi + |x phi~| (eps_phi + u) + u|d~| = A,
    relative A / (|d~| - A) (undecided near the root x = -0.7518). x < -37: |d| < |x| phi(x),
    log2|d| <= (1.01 ln|x| - x^2/2 (1 - 2**-50)) 1.4426, negative."""
    x = xs[0]
    d = _vjp(xs, params, out)
    fin = np.isfinite(x)
    d.exact(x == math.inf, _ones(x))
    d.zero(x == -math.inf)
    d.exact(x == 0, np.full_like(x, 0.5))
    ax = np.abs(x)
    xx = np.where(fin, x, 0.0)
    x2 = xx * xx
    phi = np.exp(-x2 / 2) * _INV_SQRT_2PI
    core = fin & (x >= -37.0) & (ax <= 38.0) & ~out.done
    idx = np.flatnonzero(core)
    big_phi = np.zeros_like(x)  # Phi(x), and Phi(-x) where x >= 3 (1 - Phi(x) would cancel)
    big_phi[idx] = erfc(-xx[idx] * RSQRT2) / 2.0
    right = np.flatnonzero(core & (x >= 3.0))
    tail = np.zeros_like(x)
    tail[right] = erfc(xx[right] * RSQRT2) / 2.0
    # t_approx (hi and lo only): 2 Phi - 1 + 2 x phi and x phi - Phi(-x), both within 1e-14
    d.near(fin & (ax <= _TAYLOR) & (x != 0), 0.5, np.sign(x), _C_GELU * ax * (1 - ax) * (1 - 2.0**-48),
           _C_GELU * ax * (1 + 2.0**-48), t_approx=np.abs(2 * big_phi - 1 + 2 * xx * phi), mimic=True, once=True)
    d.near(fin & (x >= 3.0), 1.0, 1.0, np.maximum(phi * (xx - 1 / xx) * (1 - 2.0**-40) - 2.0**-1000, 0.0),
           phi * xx * (1 + 2.0**-40) + 2.0**-1000, t_approx=xx * phi - tail, mimic=True)
    sel = core & ~out.done
    t = -xx * RSQRT2
    at = np.abs(t) * 1.001
    eps_big_phi = ERFC + 2.01 * U * np.where(t > 0, at * (2 * at + 2), 0.5)
    eps_phi = LIBM + U * (1.01 * x2 / 2 + 2)
    xphi = xx * phi
    v = big_phi + xphi
    b_pos = np.maximum(eps_big_phi, eps_phi + U) + U
    big_a = big_phi * eps_big_phi + np.abs(xphi) * (eps_phi + U) + U * np.abs(v)
    b_neg = np.where(np.abs(v) > 2 * big_a, big_a / (np.abs(v) - big_a), math.inf)
    d.value(sel, v, np.where(x >= 0, b_pos, b_neg) * MARGIN)
    with np.errstate(all="ignore"):
        log2_max = (1.01 * np.log(ax) - x2 / 2 * (1 - 2.0**-50)) * 1.4426
    d.below(fin & (x < -37.0), log2_max, True)


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
    # beside +-1, one correctly rounded division (mimic): y = 0, p <= 2**-4: d = 1/(1 - p) =
    # 1 + t, t = p/(1 - p) in [p, p (1 + 2p)]; y = 1, p >= 1 - 2**-4: d = -1/p, |d| = 1 + t,
    # t = q/p with q = 1 - p exact (Sterbenz), within u
    d.near(mid & (y == 0) & (p <= _TAYLOR), 1.0, 1.0, pp * (1 - 2.0**-50), pp * (1 + 2 * pp) * (1 + 2.0**-50),
           t_approx=pp / q, mimic=True, once=True)
    d.near(mid & (y == 1) & (p >= 1 - _TAYLOR), -1.0, 1.0, q / pp * (1 - 2.0**-50), q / pp * (1 + 2.0**-50),
           t_approx=q / pp, mimic=True, once=True)
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
    relative (mimic), and keeps r's sign: in _once's range (|c| < 2**(wp2 + 2) <= 2**115)
    both r and the stand-in are below 2**-5, so |q| stays in (1/2 - 2**-5, 1/2), on the
    same side of every power-of-two half ulp _once compares it with (once). Where c = 0,
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
    # once (its stand-in only below t = 2**-120, where v2 = +-1/2 either way): mimic
    small = fin & (ax <= _TAYLOR) & (ax >= 2.0**-1000) & ((yy == 0) | (yy == 1))
    sgn = np.where(yy == 0, 1.0, -1.0)
    d.near(small, 0.5 * sgn, np.sign(xx) * sgn, ax / 2 * (1 - ax) * (1 - 2.0**-50), ax / 2 * (1 + 2.0**-50),
           t_approx=np.tanh(np.minimum(ax, 1.0) / 2), mimic=True)
    exact_c = fin & c_ok & (c != 0)
    inv = 1 / np.where(c != 0, np.abs(c), 1.0)
    # the sign of q from that of x, not from q~: past |x| ~ 745 e**-|x| underflows to 0, and
    # np.sign(+-0) = 0 would read as "|d| below |c|" (x = 1e4, y = 2176 in float16: -2175 - E
    # is not the midpoint -2175, and rounds to -2176, not -2174)
    sq = np.where(pos, -1.0, 1.0)
    d.near(exact_c, c, sq * np.sign(c), aq_lo * inv * (1 - 2.0**-50), aq_hi * inv * (1 + 2.0**-50),
           t_approx=np.abs(q) * inv, mimic=True, once=True)
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
