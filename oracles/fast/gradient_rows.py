"""Fast tiers of the built-in row-wise gradient oracles: the softmax and log_softmax VJPs,
and the gradients of logsumexp, cross_entropy and nll_loss.

They share one float64 evaluation of the softmax of each row (:func:`_softmax`), grouping
the tied maxima as :mod:`oracles.catalogue_gradients` does (``k`` top entries, the rest
summing to ``r``, so s_j = e_j / (k + r)); each tier's docstring proves what it decides, in
the error model of :mod:`oracles.fast`. The row-reducing oracles' gradients are multiplied
by the row's cotangent g (the first entry of the repeated cotangent row) and divided by
``count`` through :class:`~oracles.fast.vjp.Vjp`; the VJPs take no ``count``.

NaN rows are decided here as the mpmath path makes them: a NaN anywhere in a real argument
(the cotangent included), a target outside [0, width), and, for all but nll_loss, a +inf
entry or a row without a finite entry. A row with an infinite cotangent entry goes to mpmath.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from oracles.fast.decided import Decided
from oracles.fast.float64 import F64, LIBM, MARGIN, Mask, Params, U
from oracles.fast.tier import fast_tier
from oracles.fast.vjp import Vjp
from oracles.gradients import COUNT, gradient_name

__all__: list[str] = []  # the tiers are reached through FAST_TIERS, never by name

_TARGET = "oracles.catalogue_gradients:d_{}_d_{}"
_FLOOR = 2.0**-1000  # every e_j with d_j < -700 is below this, and within it of its float64 value


@dataclass(frozen=True, slots=True)
class _Softmax:
    """Float64 pieces of the softmax of each row (rows x n), with proven bounds."""

    ok: Mask  # rows: entries finite or -inf, one finite at least, |x| <= 2**1000, n < 2**30
    masked: Mask  # -inf entries
    top: Mask  # entries equal to the row maximum (e = 1 exactly)
    d: F64  # fl(x - m), -inf where masked
    e: F64  # exp(d~): 1 at the top, 0 where masked, within eps_e (relative) or 2**-1000 (tiny)
    eps_e: F64
    norest: Mask  # rows whose finite entries are all top entries: s = 1/k exactly there
    k: F64  # per row: the number of top entries
    r: F64  # per row: fl(sum of e over the other finite entries), err_r from the exact r
    err_r: F64
    s: F64  # fl(e / fl(k + r)): the softmax, within eps (relative) ...
    eps: F64
    tiny: Mask  # ... except where d < -700: s < 2**-1000 (and s = 0 where masked)
    big_s: F64  # per row: fl(k + r), within rel_s (relative)
    rel_s: F64


def _softmax(x: F64) -> _Softmax:
    """d_j = fl(x_j - m) rounds once, so e**d~ = e**d (1 + theta), |theta| <= 1.01u|d~| for
    |d| <= 700, and exp adds LIBM: eps_e = LIBM + 1.01u|d~|. e_j with d~ < -700 may be
    subnormal: within 2**-1000 absolutely. The sum r~ over the non-top finite entries adds
    gamma_{n-1} relative in any order: |r~ - r| <= (r~ + 2n 2**-1000)(eps_max + 2 gamma) 1.01
    + 2n 2**-1000 = err_r (the forward softmax tier's bound). S~ = fl(k + r~) (k exact):
    |S~ - S| <= err_r + 1.01u S~, relative to S >= 1: rel_s. s~_j = fl(e~_j / S~):
    eps_j = eps_e + rel_s + u, with the margin."""
    rows, n = x.shape
    finite = np.isfinite(x)
    masked = x == -math.inf
    ok = np.all(finite | masked, axis=1) & np.any(finite, axis=1) & (n < 2**30)
    ok &= np.all(~finite | (np.abs(x) <= 2.0**1000), axis=1)
    xm = np.where(finite, x, -math.inf)
    m = np.max(xm, axis=1) if n else np.zeros(rows)
    m = np.where(np.isfinite(m), m, 0.0)
    d = xm - m[:, None]
    top = finite & (d == 0)
    e = np.exp(d)
    e[top] = 1.0
    e[masked] = 0.0
    k = np.count_nonzero(top, axis=1).astype(np.float64)
    rest = finite & ~top
    r = np.sum(np.where(rest, e, 0.0), axis=1)
    eps_e = (LIBM + 1.01 * U * np.abs(np.where(finite, d, 0.0))) * 1.001
    eps_max = np.max(np.where(rest & (d >= -700.0), eps_e, 0.0), axis=1) if n else np.zeros(rows)
    gamma = (n - 1) * U / (1 - (n - 1) * U) if n > 1 else 0.0
    floor = 2 * n * _FLOOR
    err_r = (r + floor) * (eps_max + 2 * gamma) * 1.01 + floor
    big_s = k + r
    rel_s = (err_r + 1.01 * U * big_s) / np.maximum(big_s, 1.0)
    s = e / big_s[:, None]
    eps = (np.where(top, 0.0, eps_e) + rel_s[:, None] + U) * MARGIN
    tiny = rest & (d < -700.0)
    norest = ~np.any(rest, axis=1)
    return _Softmax(ok, masked, top, d, e, eps_e, norest, k, r, err_r, s, eps, tiny, big_s, rel_s)


def _nan_rows(out: Decided, rows: Mask, n: int) -> None:
    out.special(np.repeat(rows, n), math.nan)


def _any_nan(*arrays: F64) -> Mask:
    bad = np.zeros(arrays[0].shape[0], dtype=bool)
    for a in arrays:
        bad |= np.any(np.isnan(a), axis=1)
    return bad


def _invalid(x: F64) -> Mask:
    """Rows whose softmax is NaN throughout: a +inf entry, or no finite entry."""
    return np.any(x == math.inf, axis=1) | ~np.any(np.isfinite(x), axis=1)


def _target(t: F64, n: int) -> tuple[Mask, Mask]:
    """Which rows have a valid class index, and a one-hot mask of it (rows x n)."""
    valid = np.isfinite(t) & (t >= 0) & (t < n) & (t == np.floor(t))
    ti = np.where(valid, t, 0).astype(np.int64)
    hot = np.zeros((t.shape[0], n), dtype=bool)
    hot[np.arange(t.shape[0]), ti] = True
    return valid, hot & valid[:, None]


def _log2_up(a: F64) -> F64:
    """An upper bound on log2(a) for a > 0 (numpy's log2 is good to an ulp or two; this
    adds 1e-4 relative and 1e-3 absolute), never below log2(2**-1000)."""
    v = np.log2(np.maximum(a, 2.0**-1000))
    return v + 1e-4 * np.abs(v) + 1e-3


def _log2_tiny(sm: _Softmax) -> F64:
    """An upper bound on log2 s_j for the entries with d < -700: s_j <= e**d_j (S >= 1),
    d <= d~ / (1 + u) (negative), so log2 s_j <= d~ 1.4426 (1 - 2**-40)."""
    return np.where(sm.tiny, sm.d, 0.0) * (1.4426 * (1 - 2.0**-40))


def _scaled_softmax(d: Vjp, sm: _Softmax, sel: Mask) -> None:
    """The softmax entries j in ``sel`` (flat, rows x n) of the valid rows, as facts for ``d``.

    Masked: 0. A row whose finite entries all tie: 1/k exactly (fl(1/k), within u, for k
    not a power of two). d_j < -700: below 2**(_log2_tiny). A top entry of another row:
    s = 1/S = (1/k)(1 - t), t = r/(k + r) > 0 in [r_lo/(k (k + r_hi)), r_hi/k], beside the
    exact 1/k when k is a power of two (the catalogue's ``_exact_plus(1/k, -r/(k (k + r)))``);
    otherwise within rel_s + u. The rest: within eps."""
    n = sm.d.shape[1]
    okr = sel & np.repeat(sm.ok, n)
    d.zero(okr & sm.masked.ravel())
    kk = sm.k
    pow2 = np.frexp(kk)[0] == 0.5
    tie = okr & (sm.top & sm.norest[:, None]).ravel()
    d.exact(tie & np.repeat(pow2, n), np.repeat(1.0 / kk, n))
    d.value(tie, np.repeat(1.0 / kk, n), U * MARGIN)
    d.below(okr & sm.tiny.ravel(), _log2_tiny(sm).ravel(), False)
    r_lo = np.maximum(sm.r - sm.err_r, 0.0)
    r_hi = sm.r + sm.err_r
    t_lo = np.repeat(r_lo / (kk * (kk + r_hi)) * (1 - 2.0**-50), n)
    t_hi = np.repeat(r_hi / kk * (1 + 2.0**-50), n)
    t_ap = np.repeat(sm.r / (kk + sm.r), n)
    top_sel = okr & sm.top.ravel() & np.repeat(pow2 & ~sm.norest, n)
    d.near(top_sel, np.repeat(1.0 / kk, n), -1.0, t_lo, t_hi, t_approx=t_ap)
    d.value(okr & np.isfinite(sm.d).ravel() & ~sm.tiny.ravel(), sm.s.ravel(), sm.eps.ravel())


def _row_vjp(xs: list[F64], params: Params, out: Decided) -> Vjp:
    """The Vjp of a row-reducing oracle: the row's cotangent (its first entry), repeated."""
    c = xs[-1]
    n = c.shape[1]
    return Vjp(out, np.repeat(c[:, 0], n), float(params.get(COUNT, 1.0)))


@fast_tier(gradient_name("logsumexp", "x"), version=1, target=_TARGET.format("logsumexp", "x"))
def _d_logsumexp(xs: list[F64], params: Params, out: Decided) -> None:
    """g softmax(x) / count (_scaled_softmax); NaN rows as the module says."""
    x, c = xs[0], xs[-1]
    n = x.shape[1]
    _nan_rows(out, _any_nan(x, c) | _invalid(x), n)
    sm = _softmax(x)
    _scaled_softmax(_row_vjp(xs, params, out), sm, np.ones(x.size, dtype=bool))


@fast_tier(gradient_name("cross_entropy", "logits"), version=1, target=_TARGET.format("cross_entropy", "logits"))
def _d_cross_entropy(xs: list[F64], params: Params, out: Decided) -> None:
    """g (softmax(x) - onehot(target)) / count: the softmax entries as logsumexp's, and at
    the target

    * masked: -1 exactly (the limit);
    * a top entry: -(S - 1)/S = -((k - 1) + r)/S. With k = 1 that is -r/S, r~ within
      err_r, then S and the division: err_r/r~ + rel_s + u (r~ > err_r), exactly 0 when the
      row has no other finite entry; with k > 1 the numerator (k - 1) + r~ >= 1 rounds once:
      err_r + u + rel_s + u. For k a power of two, -(k - 1)/k is exact and
      |y| = ((k - 1)/k)(1 + t), t = r/((k - 1) S) (``_exact_plus((1 - k)/k, -r/(k S))``);
    * another entry: -(1 - s_t) = -(k + (r - e_t))/S with k >= 1: the numerator within
      err_r + eps_e e_t + u (r~ + e~_t) + u of itself (>= 1), then rel_s + u. Beside -1:
      |y| = 1 - s_t (``_exact_plus(-1, e_t/S)``), t = s_t within eps."""
    x, t, c = xs[0], xs[1], xs[-1]
    rows, n = x.shape
    valid, hot = _target(t, n)
    _nan_rows(out, _any_nan(x, c) | _invalid(x) | ~valid, n)
    sm = _softmax(x)
    d = _row_vjp(xs, params, out)
    okr = np.repeat(sm.ok, n)
    hot_f = hot.ravel() & okr
    d.exact(hot_f & sm.masked.ravel(), np.full(rows * n, -1.0))
    kk, r, err_r = sm.k, sm.r, sm.err_r
    # a top target: exactly 0, or -(k - 1)/k, in a row whose finite entries all tie
    top_t = hot_f & sm.top.ravel()
    tie = top_t & np.repeat(sm.norest, n)
    d.zero(tie & np.repeat(kk == 1, n))
    pow2 = (np.frexp(kk)[0] == 0.5) & (kk > 1)
    d.exact(tie & np.repeat(pow2, n), np.repeat((1 - kk) / kk, n))
    d.value(tie, np.repeat((1 - kk) / kk, n), U * MARGIN)
    num = (kk - 1) + r
    rel_num = np.where(kk > 1, err_r / np.maximum(num, 1.0) + U, np.where(r > err_r, err_r / np.maximum(r - err_r, 1e-300), math.inf))
    r_lo = np.maximum(r - err_r, 0.0)
    r_hi = r + err_r
    km1 = np.maximum(kk - 1, 1.0)
    d.near(top_t & np.repeat(pow2 & ~sm.norest, n), np.repeat((1 - kk) / kk, n), 1.0,
           np.repeat(r_lo / (km1 * (kk + r_hi)) * (1 - 2.0**-50), n), np.repeat(r_hi / (km1 * kk) * (1 + 2.0**-50), n),
           t_approx=np.repeat(r / (km1 * sm.big_s), n))
    d.value(top_t, np.repeat(-num / sm.big_s, n), np.repeat((rel_num + sm.rel_s + U) * MARGIN, n))
    # another target (s_t within eps, or below 2**-1000 where tiny)
    e = sm.e
    rest_t = hot_f & ~sm.top.ravel() & ~sm.masked.ravel()
    s_t = sm.s.ravel()
    tiny = sm.tiny.ravel()
    eps = np.where(tiny, 0.0, sm.eps.ravel())
    d.near(rest_t, -1.0, -1.0, np.where(tiny, 0.0, s_t * (1 - eps) * (1 - 2.0**-50)),
           np.where(tiny, _FLOOR, s_t * (1 + eps) * (1 + 2.0**-50)), t_approx=s_t)
    eps_e = np.where(sm.tiny, 0.0, sm.eps_e)
    num_t = kk[:, None] + (r[:, None] - e)
    rel_t = (err_r[:, None] + eps_e * e + _FLOOR + U * (r[:, None] + e) + U * num_t) / np.maximum(num_t, 1.0)
    d.value(rest_t, (-num_t / sm.big_s[:, None]).ravel(), ((rel_t + sm.rel_s[:, None] + U) * MARGIN).ravel())
    # the other entries: the softmax
    _scaled_softmax(d, sm, ~hot.ravel() & np.repeat(valid, n))


@fast_tier(gradient_name("nll_loss", "logp"), version=1, target=_TARGET.format("nll_loss", "logp"))
def _d_nll_loss(xs: list[F64], params: Params, out: Decided) -> None:
    """-g onehot(target) / count, exactly, whatever the row holds (but NaN): 0 off the target
    (+0, as 0 g / count), -g / count at it (:meth:`Vjp.exact`)."""
    x, t, c = xs[0], xs[1], xs[-1]
    rows, n = x.shape
    valid, hot = _target(t, n)
    _nan_rows(out, _any_nan(x, c) | ~valid, n)
    d = _row_vjp(xs, params, out)
    ok = np.repeat(valid, n)
    d.exact(ok & hot.ravel(), np.full(rows * n, -1.0))
    d.zero(ok & ~hot.ravel())


def _far_rest(d: Vjp, sm: _Softmax, x: F64, h: F64, okr: Mask) -> None:
    """The top entries (h = 0) of rows with one top entry whose other finite entries are
    all below d = -700, where H underflows: y = -s_top H with H = sum_i s_i h_i =
    e**d2 H' / S, d2 the largest other d, H' = sum_i e**(x_i - x2) h_i over the rest.
    x_i - x2 rounds once (u), so e**fl(x_i - x2) is within LIBM + 1.01u|x_i - x2|, or
    2**-1000 absolutely below -700; the products and the sum add 2u + gamma_n:
    |H'~ - H'| <= sum e'_i |h_i| (eps'_i + 2u + gamma_n) 1.01 + 2n 2**-1000 max|h| = D'.
    Where |H'~| > D', y has the sign of -H' and |y| <= e**d2 (|H'~| + D') (S >= 1, s_top <= 1)."""
    rows, n = sm.d.shape
    rest = np.isfinite(sm.d) & ~sm.top
    far = (sm.k == 1) & np.any(rest, axis=1) & ~np.any(rest & ~sm.tiny, axis=1)
    if not far.any():
        return
    xr = np.where(rest, x, -math.inf)
    i2 = np.argmax(xr, axis=1)
    x2 = xr[np.arange(rows), i2]
    dx = np.where(rest & far[:, None], x - np.where(far, x2, 0.0)[:, None], -math.inf)
    e = np.exp(dx)
    eps = LIBM + 1.01 * U * np.abs(np.where(np.isfinite(dx), dx, 0.0))
    gamma = n * U / (1 - n * U)
    hp = np.sum(np.where(rest, e * h, 0.0), axis=1)
    ah = np.abs(np.where(rest, h, 0.0))
    err = np.sum(e * ah * (eps + 2 * U + gamma), axis=1) * 1.01 + 2 * n * _FLOOR * np.max(ah, axis=1)
    d2 = np.where(far, sm.d[np.arange(rows), i2], 0.0)
    known = far & (np.abs(hp) > err)
    log2_max = d2 * (1.4426 * (1 - 2.0**-40)) + _log2_up(np.abs(hp) + err)
    sel = okr & (sm.top & known[:, None]).ravel()
    d.below(sel, np.repeat(log2_max, n), np.repeat(hp > 0, n))


@fast_tier(gradient_name("softmax", "x"), version=1, target=_TARGET.format("softmax", "x"))
def _d_softmax(xs: list[F64], params: Params, out: Decided) -> None:
    """s_j (g_j - sum_i g_i s_i), with the cotangent g per entry (no count).

    Masked entries: 0. A cotangent constant over the finite entries: every finite entry is
    exactly 0 (the catalogue's exact zero). Otherwise, relative to the first maximum's
    cotangent g0 (so that a dominant entry does not cancel): h_i = fl(g_i - g0) (u),
    H = sum_i s_i h_i with |H~ - H| <= sum s~_i |h~_i| (eps_i + 2u + gamma_n) 1.01 +
    2n 2**-1000 max|h~| = D, w_j = h_j - H within u|h~_j| + D + u|w~_j| = A_j, relative
    A_j / (|w~_j| - A_j); y_j = s_j w_j within eps_j + that + u. Entries with d < -700:
    |y| <= e**d_j (|h_j| + |H|), tiny where that is below 2**-960 with the sign of w~ certain."""
    x, g = xs[0], xs[-1]
    rows, n = x.shape
    _nan_rows(out, _any_nan(x, g) | _invalid(x), n)
    sm = _softmax(x)
    live = sm.ok & np.all(np.isfinite(g), axis=1)
    d = Vjp(out, np.ones(rows * n), 1.0)
    okr = np.repeat(live, n)
    fin = np.isfinite(sm.d)
    d.zero(okr & sm.masked.ravel())
    gf = np.where(fin, g, 0.0)
    const = np.all(~fin | (gf == np.max(np.where(fin, gf, -math.inf), axis=1)[:, None]), axis=1)
    d.zero(okr & np.repeat(const, n))
    first = np.argmax(sm.top, axis=1)
    g0 = gf[np.arange(rows), first]
    h = np.where(fin, gf - g0[:, None], 0.0)
    s = np.where(fin, sm.s, 0.0)
    gamma = n * U / (1 - n * U)
    big_h = np.sum(s * h, axis=1)
    hmax = np.max(np.abs(h), axis=1) if n else np.zeros(rows)
    err_h = np.sum(s * np.abs(h) * (np.where(fin, sm.eps, 0.0) + 2 * U + gamma), axis=1) * 1.01
    err_h += 2 * n * _FLOOR * hmax
    w = h - big_h[:, None]
    big_a = U * np.abs(h) + err_h[:, None] + U * np.abs(w)
    known = np.abs(w) > 2 * big_a
    rel_w = np.where(known, big_a / (np.abs(w) - big_a), math.inf)
    _far_rest(d, sm, x, h, okr)
    sel = okr & fin.ravel() & known.ravel()
    bound = _log2_up(np.abs(h) + np.abs(big_h)[:, None] + err_h[:, None])
    d.below(sel & sm.tiny.ravel(), (_log2_tiny(sm) + bound).ravel(), (w < 0).ravel())
    d.value(sel & ~sm.tiny.ravel(), (s * w).ravel(), ((np.where(fin, sm.eps, 0.0) + rel_w + U) * MARGIN).ravel())


@fast_tier(gradient_name("log_softmax", "x"), version=1, target=_TARGET.format("log_softmax", "x"))
def _d_log_softmax(xs: list[F64], params: Params, out: Decided) -> None:
    """g_j - s_j G with G = sum_i g_i over every entry (no count).

    Masked entries, and rows whose cotangent is all 0: g_j itself, exactly. G~ = fl(sum g)
    within gamma_n sum|g| = dG; rows with |G~| <= dG (G may be 0) go to mpmath. v~_j =
    fl(g_j - fl(s~_j G~)) within A_j = |G~| s~_j (eps_j + u) + s~_j dG + u|v~_j|, relative
    A_j / (|v~_j| - A_j). Beside g_j != 0: |y| = |g_j| (1 - sign(g_j G) t), t = s_j |G| / |g_j|
    (``_exact_plus(g_j, -e_j G / S)``); s_j < 2**-1000 where d < -700. Where g_j = 0 and
    d < -700: y = -s_j G, below 2**(_log2_tiny + log2(|G~| + dG))."""
    x, g = xs[0], xs[-1]
    rows, n = x.shape
    _nan_rows(out, _any_nan(x, g) | _invalid(x), n)
    sm = _softmax(x)
    live = sm.ok & np.all(np.isfinite(g), axis=1)
    d = Vjp(out, np.ones(rows * n), 1.0)
    okr = np.repeat(live, n)
    gflat = g.ravel()
    zero_row = np.repeat(np.all(g == 0, axis=1), n)
    d.zero(okr & (gflat == 0) & (sm.masked.ravel() | zero_row))
    d.exact(okr & sm.masked.ravel(), gflat)
    gamma = n * U / (1 - n * U)
    big_g = np.sum(g, axis=1)
    d_g = gamma * np.sum(np.abs(g), axis=1)
    known = np.abs(big_g) > d_g
    okr &= np.repeat(known, n)
    fin = np.isfinite(sm.d)
    s = np.where(fin, sm.s, 0.0)
    eps = np.where(fin, sm.eps, 0.0)
    ag = np.abs(big_g)[:, None]
    sgn = np.where(g * big_g[:, None] > 0, -1.0, 1.0)
    # beside g_j: the entries with d < -700 have s_j < 2**-1000
    s_hi = np.where(sm.tiny, _FLOOR, s * (1 + eps))
    s_lo = np.where(sm.tiny, 0.0, s * (1 - eps))
    ratio = 1 / np.where(g != 0, np.abs(g), 1.0)
    t_lo = s_lo * (ag - d_g[:, None]) * ratio * (1 - 2.0**-50)
    t_hi = s_hi * (ag + d_g[:, None]) * ratio * (1 + 2.0**-50)
    nz = okr & fin.ravel() & (gflat != 0)
    d.near(nz, gflat, sgn.ravel(), t_lo.ravel(), t_hi.ravel(), t_approx=(s * ag * ratio).ravel())
    neg = np.repeat(big_g > 0, n)
    log2_g = _log2_up(ag + d_g[:, None])
    d.below(okr & (gflat == 0) & sm.tiny.ravel(), (_log2_tiny(sm) + log2_g).ravel(), neg)
    sg = s * big_g[:, None]
    v = g - sg
    big_a = ag * s * (eps + U) + s * d_g[:, None] + U * np.abs(v)
    rel = np.where(np.abs(v) > 2 * big_a, big_a / (np.abs(v) - big_a), math.inf)
    d.value(okr & fin.ravel() & ~sm.tiny.ravel(), v.ravel(), (rel * MARGIN).ravel())
