"""Fast tiers of the built-in elementwise oracles (exp, log, ..., silu, gelu).

Each tier's docstring proves the bounds it passes to :class:`~oracles.fast.decided.Decided`;
the error model they rest on is in :mod:`oracles.fast`.
"""

from __future__ import annotations

import math

import numpy as np

from oracles.fast.decided import Decided
from oracles.fast.float64 import (
    ERF_SMALL,
    ERF_SMALL_BOUND,
    ERFC,
    F64,
    HUGE_X,
    INV_SQRT_2PI,
    L2E_HI,
    LIBM,
    MARGIN,
    RSQRT2,
    SMALL,
    Mask,
    Params,
    U,
    erf_small,
    erfc,
    log2_exp,
    log2_exp_bounds,
    sigmoid64,
    softplus64,
)
from oracles.fast.tier import fast_tier

__all__: list[str] = []  # the tiers are reached through FAST_TIERS, never by name


def _exp_huge(out: Decided, mask: Mask, x: F64, *, minus_one: bool = False) -> None:
    """exp(x) (or expm1(x): log2(1 - e**-x) is below 2**-1000, inside the allowance) for
    x > 700: y > 2**1009 overflows. Up to 2**31, log2 y = k + f from log2_exp; beyond,
    log2 y > 2**31 * 1.44 and ulp_exp saturates, so k is a stand-in above the limit."""
    within = x <= HUGE_X
    k, f = log2_exp(np.where(mask & within, x, 701.0))
    k = np.where(within, k, 2.0**40)
    out.huge(mask, k, f, 2.0**-50)



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
    if (m := out.todo(fin & (ax <= SMALL) & (x != 0))).any():
        out.near(m, 1.0, np.sign(x), ax * (1 - ax) * (1 - 2.0**-50), ax * (1 + ax) * (1 + 2.0**-50), t_approx=ax)
    if (m := out.todo(fin & (x < -666.0))).any():
        out.tiny(m, False, np.exp(np.maximum(x, -800.0)))
    if (m := out.todo(fin & (x >= -666.0) & (x <= 700.0))).any():
        out.bounded(m, np.exp(x), LIBM * MARGIN)
    if (m := out.todo(fin & (x > 700.0))).any():
        _exp_huge(out, m, x)


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
    if (m := out.todo(fin & (ax <= SMALL))).any():
        out.near(m, x, -np.sign(x), ax / 2 * (1 - ax) * (1 - 2.0**-50), ax / 2 * (1 + ax) * (1 + 2.0**-50),
                 t_approx=ax / 2)
    if (m := out.todo(fin & (x > -1))).any():
        out.bounded(m, np.log1p(np.where(x > -1, x, 0.0)), LIBM * MARGIN)


@fast_tier("expm1", version=1)
def _expm1(xs: list[F64], params: Params, out: Decided) -> None:
    """expm1: 0 -> 0; 0 < |x| < 2**-962 tiny; x < -20: y = -(1 - e**x) with 0 < e**x <
    2**-28.8, just inside -1 (below_power: one libm call for the rounding would leave
    x in [-40, -33] to mpmath, where y is within LIBM of -1); -20 <= x <= 700 one libm call
    (normal); x > 700 overflows (_exp_huge)."""
    x = xs[0]
    fin = np.isfinite(x)
    out.special(x == math.inf, math.inf)
    out.zero(x == 0)
    out.tiny(fin & (np.abs(x) < 2.0**-962), x < 0, x)
    ax = np.abs(x)  # |x| <= 2**-30: expm1(x) = x (1 + x/2 + x^2/6 + ...), |y| = |x| (1 +- t)
    if (m := out.todo(fin & (ax <= SMALL))).any():
        out.near(m, x, np.sign(x), ax / 2 * (1 - ax) * (1 - 2.0**-50), ax / 2 * (1 + ax) * (1 + 2.0**-50),
                 t_approx=ax / 2)
    if (m := out.todo(fin & (x < -20.0))).any():
        e = np.exp(np.maximum(x, -800.0))  # t = e**x exactly; exp within LIBM, or below 2**-1000
        out.below_power(m, -1.0, np.maximum(e * (1 - 2.0**-40) - 2.0**-1000, 0.0), e * (1 + 2.0**-40) + 2.0**-1000,
                        t_approx=e, log2_t=log2_exp_bounds(np.minimum(x, -20.0)))
    if (m := out.todo(fin & (x >= -20.0) & (x <= 700.0))).any():
        out.bounded(m, np.expm1(x), LIBM * MARGIN)
    if (m := out.todo(fin & (x > 700.0))).any():
        _exp_huge(out, m, x, minus_one=True)


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
    if (m := out.todo(fin & (ax <= SMALL))).any():
        x2 = ax * ax / 3
        out.near(m, x, -1.0, x2 * (1 - ax) * (1 - 2.0**-50), x2 * (1 + 2.0**-50) + 2.0**-1000, t_approx=x2)
    if (m := out.todo(fin & (ax >= 12.0))).any():
        e = np.exp(-2 * np.minimum(ax, 400.0))  # t = 2E / (1 + E) in [2E (1 - E), 2E], E = e**-2|x|
        out.below_power(m, np.where(x < 0, -1.0, 1.0), 2 * e * (1 - 2.0**-40) * (1 - math.exp(-24.0)),
                        2 * e * (1 + 2.0**-40) + 2.0**-1000, t_approx=2 * e,
                        log2_t=log2_exp_bounds(-2 * np.maximum(ax, 12.0), 1.0))
    if (m := out.todo(fin)).any():
        out.bounded(m, np.tanh(x), LIBM * MARGIN)


@fast_tier("sigmoid", version=1)
def _sigmoid(xs: list[F64], params: Params, out: Decided) -> None:
    """sigmoid: 0 -> 1/2; x < -666: y < e**x < 2**-960, tiny; x > 20: y = 1 - t with t <
    e**-x < 2**-28.8 (below_power); otherwise sigmoid64, 1.5 LIBM + 2u (y >= e**x / 2
    normal)."""
    x = xs[0]
    fin = np.isfinite(x)
    out.exact(x == 0, np.full_like(x, 0.5))
    ax = np.abs(x)  # |x| <= 2**-30: y = (1 + sign(x) t) / 2, t = tanh(|x|/2) in [|x|/2 (1 - x^2/12), |x|/2]
    if (m := out.todo(fin & (ax <= SMALL) & (x != 0))).any():
        out.near(m, 0.5, np.sign(x), ax / 2 * (1 - ax) * (1 - 2.0**-50), ax / 2 * (1 + 2.0**-50), t_approx=ax / 2)
    if (m := out.todo(fin & (x < -666.0))).any():
        out.tiny(m, False, np.exp(np.maximum(x, -800.0)))
    if (m := out.todo(fin & (x > 20.0))).any():
        e = np.exp(-np.minimum(x, 800.0))  # t = E / (1 + E) in [E (1 - E), E], E = e**-x
        out.below_power(m, 1.0, e * (1 - 2.0**-40) * (1 - math.exp(-20.0)), e * (1 + 2.0**-40) + 2.0**-1000,
                        t_approx=e, log2_t=log2_exp_bounds(-np.maximum(x, 20.0)))
    if (m := out.todo(fin)).any():
        out.bounded(m, sigmoid64(x), (2 * LIBM + 3 * U) * MARGIN)


@fast_tier("softplus", version=1)
def _softplus(xs: list[F64], params: Params, out: Decided) -> None:
    """softplus(x; beta) = softplus(z) / beta with z = x beta.

    z = fl(x beta) carries u relative (unless exact). The condition number of softplus,
    kappa = |z| sigmoid(z) / softplus(z), is <= 1 for z >= 0 (softplus(z) >= z) and <= |z|
    for z < 0 (log(1 + a) >= a / (1 + a) at a = e**z), so the product's rounding costs
    kappa u <= 681 u where the bound is used (z >= -681); softplus64 adds 2 LIBM + u and
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
        if (m := out.todo(fin & (z < -681.0))).any():
            out.tiny(m, beta < 0, 0.0)
        zz = np.where(fin & (z >= -681.0), z, 0.0)
        v = softplus64(zz) / beta
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
    out.bounded(fin & (x <= 667.0), -softplus64(z), (2 * LIBM + 2 * U) * MARGIN)


@fast_tier("silu", version=1, oracle_version=2)
def _silu(xs: list[F64], params: Params, out: Decided) -> None:
    """silu = x sigmoid(x): 0 -> 0; |x| < 2**-962: |y| <= |x|, tiny; x < -680: |y| <=
    |x| e**x <= 680 e**-680 < 2**-971 (decreasing below -1), tiny negative; otherwise
    sigmoid64 (1.5 LIBM + 2u, normal for x >= -680) and one product: 2 LIBM + 4u."""
    x = xs[0]
    fin = np.isfinite(x)
    out.zero(x == 0)
    out.tiny(fin & (np.abs(x) < 2.0**-962), x < 0, x)
    out.tiny(fin & (x < -680.0), True, 0.0)
    ax = np.abs(x)  # |x| <= 2**-30: y = (x/2)(1 + tanh(x/2)), x/2 exact; often a rounding midpoint
    if (m := out.todo(fin & (ax <= SMALL))).any():
        out.near(m, x / 2, np.sign(x), ax / 2 * (1 - ax) * (1 - 2.0**-50), ax / 2 * (1 + 2.0**-50), t_approx=ax / 2)
    if (m := out.todo(fin & (x >= -680.0))).any():
        xx = np.where(m, x, 0.0)
        with np.errstate(all="ignore"):
            v = xx * sigmoid64(xx)
        out.bounded(m, v, (2 * LIBM + 4 * U) * MARGIN)


_LOG2_SQRT_2PI = 1.3257480647361593  # log2 sqrt(2 pi), within u
_GELU_TAIL = 8.0  # x from here: gelu(x) = x (1 - Q(x)) with Q(x) < 2**-50, by near()


@fast_tier("gelu", version=2, oracle_version=2)
def _gelu(xs: list[F64], params: Params, out: Decided) -> None:
    """gelu = x erfc(t) / 2 with t = -x / sqrt 2.

    t = fl(-x * fl(1/sqrt 2)) has relative error <= 2.01u. The condition number of erfc
    is |t erfc'(t) / erfc(t)| <= t (2t + 2) for t > 0, from erfc(t) > 2 e**-t^2 /
    (sqrt(pi) (t + sqrt(t^2 + 2))) (Abramowitz & Stegun 7.1.13), and <= 2|t| e**-t^2 /
    sqrt(pi) <= 1/2 for t <= 0 because erfc(t) >= 1. Then erfc itself (ERFC), the product
    (u) and the exact halving:
    b = ERFC + 2.01u kappa + u, plus the margin. 0 -> 0; |x| < 2**-962 tiny (|y| <= |x|);
    x < -36.5: |y| <= e**-x^2/2 / sqrt(2 pi) < 2**-961 (erfc(s) <= e**-s^2 / (s sqrt pi)),
    tiny negative; for x >= -36.5, erfc(t) >= 2**-967 is normal.

    Two regimes spare math.erfc (one Python call an element) for most inputs.
    2**-30 < |x| <= 2**-4: erfc(t) = 1 - erf(t) with erf from its series
    (:func:`erf_small`, 5u, and t's 2.01u with erf's condition number below 1):
    |erf| <= 0.05, so 1 - erf~ is within 7.01u 0.05 / 0.95 + u < 1.4u relative, and with
    the product under 2.4u. x >= 8: y = x (1 - Q), Q(x) = erfc(x / sqrt 2) / 2 in
    [phi x / (x^2 + 1), phi / x] (Mills' ratio), phi = e**-x^2/2 / sqrt(2 pi), computed as
    the gradient tier's phi (within 2**-43 relative while e**-x^2/2 is normal, x < 37.6;
    below 2**-1000 past it, which the bounds' 2**-1000 covers), and x / (x^2 + 1) >= (1 - 1/x^2) / x. Q < 2**-50 there, a hair
    inside x; ``log2_t`` bounds log2 Q by -x^2/2 log2 e - log2 sqrt(2 pi) - log2 x (log2 x
    between the exponent's e - 1 and e, and log2(1 + 1/x^2) < 1.5/x^2 below), widened by
    2**-47 relative and 2**-20, for the band below x = 2**k (k >= 6)."""
    x = xs[0]
    fin = np.isfinite(x)
    out.zero(x == 0)
    out.tiny(fin & (np.abs(x) < 2.0**-962), x < 0, x)
    out.tiny(fin & (x < -36.5), True, 0.0)
    # |x| <= 2**-30: y = (x/2)(1 + erf(x / sqrt 2)), erf(|x|/sqrt 2) in [c|x| (1 - x^2/6), c|x|]
    # with c = sqrt(2/pi)
    ax = np.abs(x)
    c = 0.7978845608028654
    if (m := out.todo(fin & (ax <= SMALL))).any():
        out.near(m, x / 2, np.sign(x), c * ax * (1 - ax) * (1 - 2.0**-48), c * ax * (1 + 2.0**-48), t_approx=c * ax)
    with np.errstate(all="ignore"):
        if (m := out.todo(ax <= ERF_SMALL)).any():
            # erf's error (its own and t's 2.01u) shrinks by |erf| / (1 - |erf|) <= 0.05 / 0.95
            # in 1 - erf, which rounds (u), as does the product (u): under 2.4u
            bound = (ERF_SMALL_BOUND + 2.01 * U) * (0.05 / 0.95) + 2 * U
            out.bounded(m, x * (1.0 - erf_small(-x * RSQRT2)) / 2.0, bound * MARGIN)
        if (m := out.todo(fin & (x >= _GELU_TAIL))).any():
            x2 = x * x
            q = np.exp(-x2 / 2) * INV_SQRT_2PI / x
            r2 = 1.0 / x2
            # log2 x in [e - 1, e) for x = m 2**e, 1/2 <= m < 1
            e = np.frexp(x)[1].astype(np.float64)
            a = x2 * (0.5 * L2E_HI)
            l2_hi = -a * (1 - 2.0**-47) - _LOG2_SQRT_2PI - (e - 1) + 2.0**-20
            l2_lo = -a * (1 + 2.0**-47) - _LOG2_SQRT_2PI - e - 1.5 * r2 - 2.0**-20
            # t_approx: Q = q (1 - 1/x^2 + ...), and q / x^2 < 2**-56 is below what hi and lo hold
            out.near(m, x, -1.0, np.maximum(q * (1 - r2) * (1 - 2.0**-40) - 2.0**-1000, 0.0),
                     q * (1 + 2.0**-40) + 2.0**-1000, t_approx=q, log2_t=(l2_lo, l2_hi))
    sel = fin & (x >= -36.5) & ~out.done
    idx = np.flatnonzero(sel)
    if not idx.size:
        return
    xs_ = x[idx]
    with np.errstate(all="ignore"):
        t = -xs_ * RSQRT2
        v = np.full_like(x, np.nan)
        v[idx] = xs_ * erfc(t) / 2.0
        at = np.abs(t) * 1.001
        kappa = np.where(t > 0, at * (2 * at + 2), 0.5)
        b = np.zeros_like(x)
        b[idx] = (ERFC + 2.01 * U * kappa + U) * MARGIN
    out.bounded(sel, v, b)

