"""An independent second reference for the built-in gradients, in gmpy2/MPFR.

``oracles/catalogue_gradients.py`` computes each derivative in mpmath, settled by Ziv's
two-precision loop. This module shares no code with it (it borrows only the interval
arithmetic and the emulation of formats of ``reference_mpfr``) and differs where a shared
mistake could hide:

* **error control**: rigorous intervals (every quantity a pair rounded down and up), the
  precision doubling until both ends round alike; an interval that collapses to a point is
  an exact value, rounded once. Exact rationals (binary cross-entropy's d/dp, the VJP of a
  row whose finite entries are all equal, log1p') are ``fractions.Fraction`` and rounded
  once, so their ties are exact ties without a "close enough" rule;
* **formulas**: sigmoid' = 1 / (4 cosh(x/2)**2), tanh' = 1 / cosh(x)**2, softplus' =
  (1 + tanh(beta x / 2)) / 2 near 0 and 1 / (1 + e**-z) elsewhere, silu' = sigmoid(x) (1 +
  x sigmoid(-x)), gelu' = erfc(-x / sqrt 2) / 2 + x e**(-x**2/2) / sqrt(2 pi), BCE's d/dy =
  log(1 - p) - log p as two logarithms, the softmax VJP as s_j times the softmax-weighted
  mean of the exact differences g_j - g_i, the log_softmax VJP as g_j - s_j G with s_j an
  interval, the cross-entropy target entry as -(sum of the other exponentials) / (sum of
  all); the oracles use other forms of each;
* **exact zeros** are found by the same theorem but separate code: a VJP row that is
  sum_d c_d e**d (d the distinct exact logit gaps, c_d rational) is 0 exactly when every
  c_d is (Lindemann-Weierstrass), computed here with Fractions;
* **signs of zero**: an exact zero is +0; a non-zero value that rounds to zero takes the
  sign of its enclosing interval, which must exclude 0 (a value whose sign the precision
  cannot yet tell is not settled).

* **limits of the reference**: a value that is an exact part plus a tail is kept as such
  (``Near``: silu' and gelu' beside 1, sigmoid(z) beside 1, BCE-with-logits' 1 - y or -y,
  the softmax at a top entry beside 1/k, cross-entropy's target), so a tail of any size
  keeps its side. A VJP row (softmax, log_softmax) mixing tails of both signs is settled
  by precision alone, up to :data:`MAX_PREC` bits: tails down to about e**-360000, and
  none beyond MPFR's exponent range (e**-7.4e8); past that it raises
  :class:`NotSettledError` rather than guess.

Convention inside: a derivative returns a float (a special value the edge policy fixes,
or an exact format value), an interval (then the true value is *not* exactly 0), a
``Near`` (exact part and a one-signed correction) or a ``Fraction`` (exact). The VJP
multiplies by the cotangent exactly, with 0 * inf = NaN, and divides by ``count``.

The public entry point is :func:`reference_gradient`, which takes the arrays
``oracles.evaluate(gradient_oracle(name, wrt), arrays, fmt, params)`` takes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import gmpy2
import numpy as np
import numpy.typing as npt
from gmpy2 import mpfr

try:
    import reference_mpfr as mref  # tests/helpers on sys.path (pyproject's pythonpath)
except ModuleNotFoundError:  # pragma: no cover - tests/ made a package
    from tests.helpers import reference_mpfr as mref

__all__ = ["ELEMENTWISE", "ROWS", "NotSettledError", "reference_gradient"]

INF = math.inf
NAN = math.nan
#: enough to see e**-131008 (the widest float16 row) beside an exact part: 189,000 bits
MAX_PREC = 1 << 19
NotSettledError = mref.NotSettledError
Near = mref.Near
Iv = tuple[mpfr, mpfr]
Out = float | Iv | mref.Near | Fraction


# -- arithmetic -------------------------------------------------------------------------


class GArith(mref.Arith):
    """reference_mpfr's interval arithmetic plus what derivatives need."""

    def pi(self) -> Iv:
        return (self.dn.const_pi(), self.up.const_pi())

    def sech2(self, x: mpfr) -> Iv:
        """1 / cosh(x)**2 for an exact finite x (cosh grows with |x|; overflow gives
        [0, tiny], which is right)."""
        a = _neg(x) if x < 0 else x
        c_hi = self.up.cosh(a)
        c_lo = self.dn.cosh(a)
        return (self.dn.div(1, self.up.mul(c_hi, c_hi)), self.up.div(1, self.dn.mul(c_lo, c_lo)))

    def recip1p_exp(self, z: mpfr) -> Iv:
        """1 / (1 + e**z) for exact finite z (decreasing in z): sigmoid(-z)."""
        return (self.dn.div(1, self.up.add(1, self.up.exp(z))), self.up.div(1, self.dn.add(1, self.dn.exp(z))))


_ARITH: dict[int, GArith] = {}


def _arith(wp: int) -> GArith:
    a = _ARITH.get(wp)
    if a is None:
        a = _ARITH[wp] = GArith(wp)
    return a


def _m(x: float) -> mpfr:
    return mpfr(x, 53)


def _scaled(v: mpfr, k: int) -> mpfr:
    """v * 2**k without rounding (gmpy2.mul_2exp rounds to the context's 53 bits)."""
    return gmpy2.context(precision=max(2, v.precision)).mul_2exp(v, k)


def _neg(v: mpfr) -> mpfr:
    """-v without rounding (unary minus rounds to the context's 53 bits)."""
    return gmpy2.context(precision=max(2, v.precision)).minus(v)


def _rational(q: Fraction, A: GArith) -> Out:
    """An exact rational as an exact point (dyadic) or a one-ulp interval (never exact)."""
    if not q:
        return 0.0
    num, den = q.numerator, q.denominator
    n = mpfr(num, max(2, abs(num).bit_length()))
    if den & (den - 1) == 0:
        v = _scaled(n, -(den.bit_length() - 1))
        return (v, v)
    d = mpfr(den, max(2, den.bit_length()))
    return (A.dn.div(n, d), A.up.div(n, d))


def _sign_of(o: Out, A: GArith) -> int | None:
    """The sign of a value (None while the precision cannot tell)."""
    if isinstance(o, float):
        return 0 if o == 0 else (1 if o > 0 else -1)
    if isinstance(o, Fraction):
        return (o > 0) - (o < 0)
    if isinstance(o, mref.Near):
        lo, hi = _near_ends(o, A)
        if lo > 0:
            return 1
        if hi < 0:
            return -1
        return None
    lo, hi = o
    if lo >= 0 and hi > 0:
        return 1
    if hi <= 0 and lo < 0:
        return -1
    return None


def _just_past(exact: mpfr, sign: int) -> mpfr:
    """A point strictly beyond ``exact`` in direction ``sign`` with no rounding boundary of
    any format strictly between (as reference_mpfr does for its Near values)."""
    if exact == 0:
        return gmpy2.mul_2exp(mpfr(sign, 2), -100_000)
    step = gmpy2.mul_2exp(mpfr(sign, 2), gmpy2.get_exp(exact) - exact.precision - 64)
    return gmpy2.context(precision=exact.precision + 80).add(exact, step)


def _near_ends(o: mref.Near, A: GArith) -> tuple[mpfr, mpfr]:
    """An interval holding exact + sign * t for every admissible t, whose inner end is
    beyond ``exact`` (rounding is constant between exact and that end)."""
    lo, hi = o.tiny
    near = _just_past(o.exact, o.sign)
    if lo > 0:
        inner = A.dn.add(o.exact, lo) if o.sign > 0 else A.up.sub(o.exact, lo)
        if inner != o.exact:
            near = inner
    far = A.up.add(o.exact, hi) if o.sign > 0 else A.dn.sub(o.exact, hi)
    return (near, far) if o.sign > 0 else (far, near)


def _round(o: Out, A: GArith, fmt: str) -> float | None:
    """The correctly rounded value of ``o`` in ``fmt``, or None while undecided."""
    if isinstance(o, float):
        return o
    if isinstance(o, Fraction):
        o = _rational(o, A)
        if isinstance(o, float):
            return o
    if isinstance(o, mref.Near):
        lo, hi = _near_ends(o, A)
    else:
        lo, hi = o  # type: ignore[misc]
    if gmpy2.is_nan(lo) or gmpy2.is_nan(hi):
        return None
    r_lo = mref.round_to_format(lo, fmt)
    if lo == hi and not isinstance(o, mref.Near):
        return 0.0 if lo == 0 else r_lo
    r_hi = mref.round_to_format(hi, fmt)
    if r_lo != r_hi:
        return None
    if r_lo == 0:
        if lo >= 0 and hi > 0:
            return 0.0
        if hi <= 0 and lo < 0:
            return -0.0
        return None
    return r_hi


def _settle(compute: Callable[[GArith], list[Out]], fmt: str) -> list[float]:
    wp = mref.FORMATS[fmt].precision + 24
    done: list[float | None] | None = None
    while True:
        A = _arith(wp)
        outs = compute(A)
        if done is None:
            done = [None] * len(outs)
        for i, o in enumerate(outs):
            if done[i] is None:
                done[i] = _round(o, A, fmt)
        if all(d is not None for d in done):
            return [float(d) for d in done if d is not None]
        wp *= 2
        if wp > MAX_PREC:
            raise NotSettledError(f"MPFR gradient reference did not settle below {MAX_PREC} bits")


# -- the VJP: times the cotangent, over count -----------------------------------------------


def _times(d: Out, g: float, A: GArith) -> Out:
    """d * g exactly, with 0 * inf = NaN."""
    if math.isnan(g) or (isinstance(d, float) and math.isnan(d)):
        return NAN
    if math.isinf(g) or (isinstance(d, float) and math.isinf(d)):
        sd = _sign_of(d, A)
        if sd is None:
            return (mpfr("nan"), mpfr("nan"))  # the sign needs more precision
        sg = (g > 0) - (g < 0)
        return NAN if not sd or not sg else math.copysign(INF, sd * sg)
    if g == 0:
        return 0.0
    if isinstance(d, float):
        return Fraction(d) * Fraction(g) if d else 0.0
    if isinstance(d, Fraction):
        return d * Fraction(g)
    if isinstance(d, mref.Near):
        exact = mref._x(d.exact, g, "mul")
        gabs = A.pt(abs(g))
        return Near(exact, d.sign * (1 if g > 0 else -1), A.mul(d.tiny, gabs))
    return A.mul(d, A.pt(g))


def _over(v: Out, count: float, A: GArith) -> Out:
    if count == 1 or (isinstance(v, float) and (v == 0 or not math.isfinite(v))):
        return v
    if isinstance(v, float):
        v = Fraction(v)
    if isinstance(v, Fraction):
        return v / Fraction(count)
    c = A.pt(count)
    if isinstance(v, mref.Near):
        # only an exact quotient stays an exact part (a product check at 4,400 bits would
        # round back to the dividend and take -y/3 for exact)
        q = Fraction(*v.exact.as_integer_ratio()) / Fraction(count)
        if q.denominator & (q.denominator - 1) == 0:
            return Near(_exact_mpfr(q), v.sign, A.div(v.tiny, c))
        tiny = v.tiny if v.sign > 0 else A.neg(v.tiny)
        return A.div(A.add(A.pt(v.exact), tiny), c)
    if gmpy2.is_nan(v[0]):
        return v
    return A.div(v, c)


# -- elementwise derivatives ------------------------------------------------------------


def _sigmoid(A: GArith, z: float | mpfr) -> Out:
    """sigmoid(z) for finite exact z: (1 + tanh(z/2)) / 2 for |z| <= 8, else 1 / (1 + e**-z)
    (kept as 1 minus a positive part above 0)."""
    zz = z if isinstance(z, mpfr) else _m(z)
    if abs(zz) <= 8:
        t = A.tanh(A.scale2(A.pt(zz), -1))
        return A.scale2(A.add(A.pt(1.0), t), -1)
    if zz > 0:
        return Near(_m(1.0), -1, A.recip1p_exp(zz))
    return A.recip1p_exp(_neg(zz))


def g_exp(A: GArith, x: float) -> Out:
    if math.isinf(x):
        return INF if x > 0 else 0.0
    return A.exp(A.pt(x))


def g_log(A: GArith, x: float) -> Out:
    if x < 0:
        return NAN
    if x == 0:
        return INF
    if x == INF:
        return 0.0
    return 1 / Fraction(x)


def g_log1p(A: GArith, x: float) -> Out:
    if x < -1:
        return NAN
    if x == -1:
        return INF
    if x == INF:
        return 0.0
    return 1 / (1 + Fraction(x))


def g_expm1(A: GArith, x: float) -> Out:
    if math.isinf(x):
        return INF if x > 0 else 0.0
    return A.add(A.expm1(A.pt(x)), A.pt(1.0))


def g_tanh(A: GArith, x: float) -> Out:
    if math.isinf(x):
        return 0.0
    return A.sech2(_m(x))


def g_sigmoid(A: GArith, x: float) -> Out:
    if math.isinf(x):
        return 0.0
    return A.scale2(A.sech2(_scaled(_m(x), -1)), -2)


def g_softplus(A: GArith, x: float, beta: float = 1.0) -> Out:
    if beta == 0:
        return NAN
    if math.isinf(x):
        return 1.0 if (x > 0) == (beta > 0) else 0.0
    return _sigmoid(A, mref._x(x, beta, "mul"))


def g_log_sigmoid(A: GArith, x: float) -> Out:
    if math.isinf(x):
        return 0.0 if x > 0 else 1.0
    return _sigmoid(A, -x)


def g_silu(A: GArith, x: float) -> Out:
    """sigmoid(x) (1 + x sigmoid(-x)); above 2 as 1 + sigmoid(-x) (x sigmoid(x) - 1), a
    positive correction to an exact 1."""
    if math.isinf(x):
        return 1.0 if x > 0 else 0.0
    xm = _m(x)
    if x >= 2:
        s_neg = A.recip1p_exp(xm)
        s_pos = A.sub(A.pt(1.0), s_neg)
        return Near(_m(1.0), 1, A.mul(s_neg, A.sub(A.mul(A.pt(xm), s_pos), A.pt(1.0))))
    s_pos = A.recip1p_exp(_neg(xm))
    s_neg = A.recip1p_exp(xm)
    return A.mul(s_pos, A.add(A.pt(1.0), A.mul(A.pt(xm), s_neg)))


#: beyond, e**(-x**2/2) is below 2**-(6.4e8), far under every subnormal times every finite
#: cotangent, and MPFR's exponent range (2**-(2**30)) is near: Mills-ratio bounds take over
_GELU_TAIL = 30_000.0


def g_gelu(A: GArith, x: float) -> Out:
    """erfc(-x / sqrt 2) / 2 + x e**(-x**2/2) / sqrt(2 pi); from x = 2 on as 1 plus
    x phi(x) - erfc(x / sqrt 2) / 2, which is > 0 there."""
    if math.isinf(x):
        return 1.0 if x > 0 else 0.0
    xm = _m(x)
    half_x2 = _scaled(mref._x(xm, xm, "mul"), -1)
    sqrt2pi = A.sqrt(A.scale2(A.pi(), 1))
    phi = A.div(A.exp(A.pt(_neg(half_x2))), sqrt2pi)
    if abs(x) >= _GELU_TAIL:
        # Phi(-a) / phi(a) lies in [1/a - 1/a**3, 1/a] for a > 0 (Mills' ratio), so
        # gelu'(a) - 1 = phi(a) (a - Mills) > 0 and gelu'(-a) = -(that), both tiny
        a = _neg(xm) if x < 0 else xm
        inv = A.div(A.pt(1.0), A.pt(a))
        inv3 = A.div(inv, A.pt(mref._x(a, a, "mul")))
        lo_c = A.sub(A.pt(a), inv)
        hi_c = A.add(lo_c, inv3)
        excess = (A.dn.mul(phi[0], lo_c[0]), A.up.mul(phi[1], hi_c[1]))
        return Near(_m(1.0), 1, excess) if x > 0 else A.neg(excess)
    x_phi = A.mul(A.pt(xm), phi)
    if x >= 2:
        t = A.div(A.pt(xm), A.sqrt(A.pt(2.0)))
        return Near(_m(1.0), 1, A.sub(x_phi, A.scale2(A.erfc(t), -1)))
    t = A.div(A.pt(_neg(xm)), A.sqrt(A.pt(2.0)))
    return A.add(A.scale2(A.erfc(t), -1), x_phi)


def g_bce_p(A: GArith, p: float, y: float) -> Out:
    """-y/p + (1 - y)/(1 - p) in Fractions, a term with an exact 0 coefficient dropped."""
    if not (0 <= p <= 1 and 0 <= y <= 1):
        return NAN
    fp, fy = Fraction(p), Fraction(y)
    parts: list[Fraction | float] = []
    if fy:
        parts.append(-fy / fp if fp else -INF)
    if fy != 1:
        parts.append((1 - fy) / (1 - fp) if fp != 1 else INF)
    infinite = [v for v in parts if isinstance(v, float)]
    if infinite:
        return infinite[0]
    return sum(parts, Fraction(0))  # type: ignore[arg-type]


def g_bce_y(A: GArith, p: float, y: float) -> Out:
    """log(1 - p) - log(p), two logarithms of exact arguments."""
    if not (0 <= p <= 1 and 0 <= y <= 1):
        return NAN
    if p == 0:
        return INF
    if p == 1:
        return -INF
    if p == 0.5:
        return 0.0
    return A.sub(A.log(A.pt(mref._x(1.0, p, "sub"))), A.log(A.pt(p)))


def g_bcel_x(A: GArith, x: float, y: float) -> Out:
    """sigmoid(x) - y: the exact -y plus sigmoid(x), or 1 - y minus sigmoid(-x)."""
    if math.isinf(y):
        return -y if math.isinf(x) else NAN
    if math.isinf(x):
        return Fraction(1) - Fraction(y) if x > 0 else -Fraction(y)
    if x == 0 and y == 0.5:
        return 0.0
    xm = _m(x)
    if x > 0:
        return Near(mref._x(1.0, y, "sub"), -1, A.recip1p_exp(xm))
    return Near(mref._x(0.0, y, "sub"), 1, A.recip1p_exp(_neg(xm)))


def g_bcel_y(A: GArith, x: float, y: float) -> Out:
    if math.isinf(y) and not math.isinf(x):
        return NAN
    return -x if x else 0.0


ELEMENTWISE: dict[tuple[str, str], Callable[..., Out]] = {
    ("exp", "x"): g_exp,
    ("log", "x"): g_log,
    ("log1p", "x"): g_log1p,
    ("expm1", "x"): g_expm1,
    ("tanh", "x"): g_tanh,
    ("sigmoid", "x"): g_sigmoid,
    ("softplus", "x"): g_softplus,
    ("log_sigmoid", "x"): g_log_sigmoid,
    ("silu", "x"): g_silu,
    ("gelu", "x"): g_gelu,
    ("binary_cross_entropy", "p"): g_bce_p,
    ("binary_cross_entropy", "y"): g_bce_y,
    ("binary_cross_entropy_with_logits", "x"): g_bcel_x,
    ("binary_cross_entropy_with_logits", "y"): g_bcel_y,
}


# -- rows -------------------------------------------------------------------------------


class _RowParts:
    """Exact gaps d_i = x_i - max as Fractions (None where masked) and their intervals."""

    def __init__(self, row: Sequence[float]) -> None:
        finite = [v for v in row if v != -INF]
        m = max(finite)
        self.gaps: list[Fraction | None] = [None if v == -INF else Fraction(v) - Fraction(m) for v in row]
        self.rational = all(d is None or d == 0 for d in self.gaps)  # every finite entry the maximum
        self.finite = [i for i, d in enumerate(self.gaps) if d is not None]

    def exp_gap(self, A: GArith, i: int) -> Iv:
        d = self.gaps[i]
        assert d is not None
        return A.pt(1.0) if d == 0 else A.exp(A.pt(_exact_mpfr(d)))

    def softmax(self, A: GArith) -> list[Iv | None]:
        es = [None if d is None else self.exp_gap(A, i) for i, d in enumerate(self.gaps)]
        total = A.fsum([e for e in es if e is not None])
        return [None if e is None else A.div(e, total) for e in es]


def _exact_mpfr(d: Fraction) -> mpfr:
    """A dyadic Fraction (a difference of floats) as an exact mpfr."""
    num, den = d.numerator, d.denominator
    return _scaled(mpfr(num, max(2, abs(num).bit_length())), -(den.bit_length() - 1))


def _lw_zero(parts: _RowParts, coefficients: Sequence[Fraction], extra: dict[Fraction, Fraction]) -> bool:
    """Whether sum_i coefficients[i] e**d_i + sum_d extra[d] e**d is exactly 0: every
    coefficient of a distinct gap vanishes (Lindemann-Weierstrass)."""
    groups: dict[Fraction, Fraction] = dict(extra)
    for i in parts.finite:
        d = parts.gaps[i]
        assert d is not None
        groups[d] = groups.get(d, Fraction(0)) + coefficients[i]
    return all(c == 0 for c in groups.values())


def _row_invalid(row: Sequence[float]) -> bool:
    return any(v != v or v == INF for v in row) or all(v == -INF for v in row)


def _jacobian_sign_softmax(parts: _RowParts, i: int, j: int) -> int:
    if parts.gaps[i] is None or parts.gaps[j] is None:
        return 0
    if i == j:
        return 0 if len(parts.finite) == 1 else 1
    return -1


def _jacobian_sign_log_softmax(parts: _RowParts, i: int, j: int) -> int:
    if i == j:
        return 0 if parts.finite == [j] else 1
    return 0 if parts.gaps[j] is None else -1


def _infinite_cotangent(parts: _RowParts, g: Sequence[float], sign: Callable[[_RowParts, int, int], int]) -> list[Out]:
    out: list[Out] = []
    for j in range(len(g)):
        terms = set()
        for i, gi in enumerate(g):
            if math.isinf(gi):
                s = sign(parts, i, j)
                terms.add(NAN if s == 0 else math.copysign(INF, s * gi))
        nan = any(math.isnan(t) for t in terms) or len(terms) > 1
        out.append(NAN if nan else terms.pop())
    return out


def r_softmax(A: GArith, row: Sequence[float], g: Sequence[float]) -> list[Out]:
    """s_j (g_j - sum_i s_i g_i) = s_j sum_d C_d s(d): the softmax-weighted mean of the exact
    differences g_j - g_i, summed per distinct gap d (C_d exact), so that nothing exact is
    subtracted from an interval (g_j - W for a dominant j would need 2**17 bits to see a
    tail of e**-65504)."""
    n = len(row)
    if _row_invalid(row) or any(v != v for v in g):
        return [NAN] * n
    parts = _RowParts(row)
    if any(math.isinf(v) for v in g):
        return _infinite_cotangent(parts, g, _jacobian_sign_softmax)
    if parts.rational:
        k = len(parts.finite)
        mean = sum((Fraction(g[i]) for i in parts.finite), Fraction(0)) / k
        return [Fraction(0) if parts.gaps[j] is None else (Fraction(g[j]) - mean) / k for j in range(n)]
    s = parts.softmax(A)
    share: dict[Fraction, Iv] = {}  # s(d): the softmax of one entry with gap d
    for i in parts.finite:
        d = parts.gaps[i]
        assert d is not None
        si = s[i]
        assert si is not None
        share[d] = si
    out: list[Out] = []
    for j in range(n):
        sj = s[j]
        if sj is None:
            out.append(0.0)
            continue
        groups: dict[Fraction, Fraction] = {}
        for i in parts.finite:
            d = parts.gaps[i]
            assert d is not None
            groups[d] = groups.get(d, Fraction(0)) + Fraction(g[j]) - Fraction(g[i])
        if all(c == 0 for c in groups.values()):  # Lindemann-Weierstrass: exactly 0
            out.append(0.0)
            continue
        terms = [A.mul(share[d], _rational_iv(c, A)) for d, c in groups.items() if c]
        out.append(A.mul(sj, A.fsum(terms)))
    return out


def r_log_softmax(A: GArith, row: Sequence[float], g: Sequence[float]) -> list[Out]:
    """g_j - s_j sum_i g_i."""
    n = len(row)
    if _row_invalid(row) or any(v != v for v in g):
        return [NAN] * n
    parts = _RowParts(row)
    if any(math.isinf(v) for v in g):
        return _infinite_cotangent(parts, g, _jacobian_sign_log_softmax)
    total = sum((Fraction(v) for v in g), Fraction(0))
    if parts.rational:
        k = len(parts.finite)
        return [Fraction(g[j]) - (0 if parts.gaps[j] is None else total / k) for j in range(n)]
    s = parts.softmax(A)
    out: list[Out] = []
    for j in range(n):
        sj = s[j]
        if sj is None or total == 0:
            out.append(Fraction(g[j]))
            continue
        dj = parts.gaps[j]
        assert dj is not None
        # g_j (sum_i e_i) - e_j G = 0 ?
        if _lw_zero(parts, [Fraction(g[j])] * n, {dj: -total}):
            out.append(0.0)
        else:
            out.append(A.sub(A.pt(g[j]), A.mul(sj, _rational_iv(total, A))))
    return out


def _rational_iv(q: Fraction, A: GArith) -> Iv:
    v = _rational(q, A)
    return A.pt(0.0) if isinstance(v, float) else v  # type: ignore[return-value]


def _top_tail(A: GArith, parts: _RowParts) -> tuple[int, Iv]:
    """k, the number of entries at the maximum, and an enclosure of r / (k (k + r)) with r
    the sum of the other exponentials: how far 1/(k + r) lies below 1/k. A tail that MPFR's
    exponent range cannot hold (e**-1e38) is [0, tiny], which is still on its side."""
    top = [i for i in parts.finite if parts.gaps[i] == 0]
    k = len(top)
    r = A.fsum([parts.exp_gap(A, i) for i in parts.finite if parts.gaps[i] != 0])
    kk = A.pt(float(k))
    return k, A.div(r, A.mul(kk, A.add(kk, r)))


def _dyadic(q: Fraction) -> bool:
    return q.denominator & (q.denominator - 1) == 0


def r_logsumexp(A: GArith, row: Sequence[float]) -> list[Out]:
    """The softmax row; at the maximum 1/k minus a positive tail where 1/k is dyadic (the
    tail can lie beyond every precision, and g/k on a rounding midpoint)."""
    n = len(row)
    if _row_invalid(row):
        return [NAN] * n
    parts = _RowParts(row)
    if parts.rational:
        k = len(parts.finite)
        return [Fraction(0) if d is None else Fraction(1, k) for d in parts.gaps]
    out: list[Out] = [0.0 if s is None else s for s in parts.softmax(A)]
    k, tail = _top_tail(A, parts)
    if _dyadic(Fraction(1, k)):
        for i in parts.finite:
            if parts.gaps[i] == 0:
                out[i] = Near(_exact_mpfr(Fraction(1, k)), -1, tail)
    return out


def r_cross_entropy(A: GArith, row: Sequence[float], target: int) -> list[Out]:
    """softmax - onehot(target); at the target -(sum of the others) / (sum of all), or where
    that is an exact part and a tail: -(k - 1)/k minus the tail at a top target, -1 plus
    s_t elsewhere."""
    n = len(row)
    if _row_invalid(row) or not 0 <= target < n:
        return [NAN] * n
    out = r_logsumexp(A, row)
    parts = _RowParts(row)
    if parts.gaps[target] is None:
        out[target] = -1.0
    elif parts.rational:
        out[target] = Fraction(1, len(parts.finite)) - 1
    elif parts.gaps[target] == 0:
        k, tail = _top_tail(A, parts)
        exact = Fraction(1 - k, k)
        if _dyadic(exact):
            out[target] = Near(_exact_mpfr(exact), -1, tail) if exact else A.neg(tail)
        else:
            es = {i: parts.exp_gap(A, i) for i in parts.finite}
            others = A.fsum([e for i, e in es.items() if i != target])
            out[target] = A.neg(A.div(others, A.fsum(list(es.values()))))
    else:
        s_t = parts.softmax(A)[target]
        assert s_t is not None
        out[target] = Near(_m(-1.0), 1, s_t)
    return out


def r_nll_loss(A: GArith, row: Sequence[float], target: int) -> list[Out]:
    n = len(row)
    if any(v != v for v in row) or not 0 <= target < n:
        return [NAN] * n
    return [-1.0 if j == target else 0.0 for j in range(n)]


ROWS: dict[tuple[str, str], Callable[..., list[Out]]] = {
    ("softmax", "x"): r_softmax,
    ("log_softmax", "x"): r_log_softmax,
    ("logsumexp", "x"): r_logsumexp,
    ("cross_entropy", "logits"): r_cross_entropy,
    ("nll_loss", "logp"): r_nll_loss,
}
_VJP_ROWS = {"softmax", "log_softmax"}


# -- entry point ------------------------------------------------------------------------


def reference_gradient(
    name: str,
    wrt: str,
    arrays: Sequence[npt.ArrayLike],
    fmt: str | object,
    params: dict[str, Any] | None = None,
) -> npt.NDArray[np.float64]:
    """The correctly rounded VJP of the built-in oracle ``name`` with respect to ``wrt`` in
    ``fmt`` (float64 carriers), for the arrays the derived oracle takes: the oracle's
    arguments, then the cotangent (for row-reducing oracles one value per row, repeated
    along it). ``params`` may hold ``beta`` and ``count``."""
    f = str(fmt)
    params = dict(params or {})
    count = float(params.pop("count", 1.0))
    with np.errstate(invalid="ignore"):  # signalling NaNs
        if (name, wrt) in ELEMENTWISE:
            fn = ELEMENTWISE[(name, wrt)]
            cols = [np.asarray(a).astype(np.float64) for a in arrays]
            shape = cols[0].shape
            tasks = list(zip(*(c.ravel().tolist() for c in cols), strict=True))

            def one(t: tuple[float, ...]) -> Callable[[GArith], list[Out]]:
                *xs, g = t
                if any(v != v for v in t):
                    return lambda A: [NAN]
                return lambda A: [_over(_times(fn(A, *xs, **params), g, A), count, A)]

            return np.array([_settle(one(t), f)[0] for t in tasks], dtype=np.float64).reshape(shape)
        if (name, wrt) not in ROWS:
            raise KeyError(f"no MPFR gradient reference for {name!r} with respect to {wrt!r}")
        rfn = ROWS[(name, wrt)]
        data = np.asarray(arrays[0]).astype(np.float64)
        cot = np.asarray(arrays[-1]).astype(np.float64)
        targets = np.asarray(arrays[1]).tolist() if len(arrays) == 3 else None
    out = []
    for r, row in enumerate(data.tolist()):
        g_row = cot[r].tolist()
        if name in _VJP_ROWS:

            def vjp(A: GArith, row: list[float] = row, g_row: list[float] = g_row) -> list[Out]:
                return rfn(A, row, g_row)

            out.append(_settle(vjp, f))
            continue
        if any(v != v for v in g_row):
            out.append([NAN] * len(row))
            continue
        args: tuple[Any, ...] = (row,) if targets is None else (row, int(targets[r]))
        g = g_row[0] if g_row else 1.0

        def compute(A: GArith, args: tuple[Any, ...] = args, g: float = g) -> list[Out]:
            return [_over(_times(d, g, A), count, A) for d in rfn(A, *args)]

        out.append(_settle(compute, f))
    return np.array(out, dtype=np.float64).reshape(data.shape)
