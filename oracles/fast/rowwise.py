"""Fast tiers of the built-in row-wise oracles: softmax, log_softmax and logsumexp.

They share one float64 evaluation of each row (:func:`_rows`: the maximum, the shifted
exponentials and the bound on their sum); each tier's docstring proves what it decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from oracles.fast.decided import Decided
from oracles.fast.float64 import F64, LIBM, MARGIN, Mask, Params, U
from oracles.fast.tier import fast_tier

__all__: list[str] = []  # the tiers are reached through FAST_TIERS, never by name


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
    # finite), R within err_rest of R~.
    with np.errstate(all="ignore"):
        r_lo = np.maximum(r.rest - r.err_rest, 0.0)
        r_hi = r.rest + r.err_rest
        t_lo = np.repeat(r_lo / (1 + r_hi) * (1 - 2.0**-50), n)
        t_hi = np.repeat(r_hi * (1 + 2.0**-50), n)
    out.below_power(ok & (r.top & ~r.single[:, None]).ravel(), 1.0, t_lo, t_hi,
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
    # its L from the exact d_i and rounds once.
    with np.errstate(all="ignore"):
        xm = np.where(np.isfinite(x), x, 0.0)
        m = np.where(np.isfinite(r.m), r.m, 0.0)[:, None]
        bv = d - xm  # Knuth's TwoSum of x and -m: its error term is 0 iff d is exact
        exact_d = ((xm - (d - bv)) + (-m - bv)) == 0
        ad = np.abs(d)
        t_lo = np.maximum(lse - a, 0.0)[:, None] / ad * (1 - 2.0**-50)
        t_hi = (lse + a)[:, None] / ad * (1 + 2.0**-50)
    sel = ok & (exact_d & (d < 0) & ~r.masked).ravel()  # R > 0: entry i itself is in it
    out.near(sel, d.ravel(), 1.0, t_lo.ravel(), t_hi.ravel(), t_approx=(lse[:, None] / ad).ravel())
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
    # path agrees since the oracle's version 2: it adds L to m and rounds once,
    # and below 2**-118 |m| it adds _exact_plus's stand-in 2**-121 |m| instead, which
    # rounds to m at wp2 <= 84 bits just as L does; version 1 rounded the "tie" to even
    # and this tier (version 1) sent such rows to mpmath to agree with it.
    with np.errstate(all="ignore"):
        am = np.abs(r.m)
        t_lo = np.maximum(lse - a, 0.0) / am * (1 - 2.0**-50)
        t_hi = (lse + a) / am * (1 + 2.0**-50)
    sel = r.ok & ~r.single & (r.m != 0)
    out.near(sel, r.m, np.sign(r.m), t_lo, t_hi, t_approx=lse / am)
    out.bounded(r.ok, v, b)

