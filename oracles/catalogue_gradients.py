"""The built-in gradient oracles: the derivatives of every oracle in :mod:`oracles.catalogue`.

Each function is registered with :func:`~oracles.gradients.gradient` and named
``d_<oracle>_d_<argument>``; the float64 fast tiers (:mod:`oracles.fast`) recognise them by
that ``module:qualname``, so a rename costs the tier. What each returns per kind is in
:mod:`oracles.gradients`: the partial derivative (elementwise), the gradient row
(row-reducing oracles; the core multiplies in the per-row cotangent and divides by
``count``) or the vector-Jacobian product row itself (softmax, log_softmax).

Like the catalogue, every function is evaluated by Ziv's loop at a working precision it
does not choose, so it must be accurate to a few ulps *at that precision* for every input,
infinities included, under the catalogue's two rules: no intermediate that overflows where
the result does not (``e**-|x|``, never ``e**|x|``; ``x**2 / 2`` formed exactly for the
normal density), and no avoidable cancellation (sigmoid' is ``e / (1 + e)**2`` with
``e = e**-|x|``, never ``s (1 - s)``; ``1 - p`` and ``p - y`` are exact). Where a value is
an exact number plus a correction too small for any working precision to see (silu'(x) for
large x is ``1 + x e**-x``; the softmax gradient of a row with a dominant tie), the exact
part is kept and the correction keeps its side (:func:`~oracles.catalogue._exact_plus`),
because the cotangent or ``count`` can put that exact part on a rounding midpoint. Where a
value is exactly zero for a structural reason (a softmax VJP whose cotangent is constant on
every group of equal logits), it is returned as an exact zero, never as rounding noise of
either sign: by the Lindemann-Weierstrass theorem, ``sum_d c_d e**d`` over distinct
rational ``d`` vanishes only when every rational ``c_d`` does, which exact arithmetic on
the inputs decides.

Edge policy (the same table is in ``docs/gradients.md``):

* NaN in any input or cotangent gives NaN (for a row: the whole row).
* An infinite input gives the limit of the derivative where it exists: sigmoid', tanh' and
  log_sigmoid'(+inf) are 0; exp'(+inf) and expm1'(+inf) are +inf, and 0 at -inf;
  softplus'(x) tends to 1 or 0 with the sign of ``beta x``; silu' and gelu' are 1 at +inf
  and 0 at -inf; log' and log1p' are 0 at +inf.
* A pole gives the signed infinity of the one-sided limit from inside the domain:
  log'(0) = log1p'(-1) = +inf. Outside the domain (log of x < 0, log1p of x < -1, binary
  cross-entropy with p or y outside [0, 1]) the derivative is NaN, as the forward is.
* Binary cross-entropy at the edge of its domain: the one-sided derivative from inside,
  where a term whose coefficient is an exact 0 vanishes identically (the 0 log 0 = 0 of the
  forward). ``d/dp = -y/p + (1 - y)/(1 - p)``: (p, y) = (0, 0) gives 1, (1, 1) gives -1,
  p = 0 with y > 0 gives -inf, p = 1 with y < 1 gives +inf. ``d/dy = log(1 - p) - log p``
  is +inf at p = 0 and -inf at p = 1.
* Binary cross-entropy with logits: ``d/dx = sigmoid(x) - y`` (``1 - y`` at x = +inf,
  ``-y`` at -inf) and ``d/dy = -x`` (-+inf at x = +-inf). Where the forward is NaN (a finite
  x with an infinite label: inf - inf) both are NaN.
* Row-wise (softmax, log_softmax, logsumexp, cross_entropy): a row with a +inf entry, or
  with no finite entry, is NaN throughout (the forward is inf/inf or 0/0 there; logsumexp of
  an all -inf row is -inf, but its gradient, the softmax, is 0/0). A masked (-inf) entry of
  a valid row gets the limit as it goes to -inf: 0 for softmax, logsumexp and
  cross_entropy, the cotangent itself for log_softmax (``y_i = x_i - logsumexp(x)``, so
  ``d y_i / d x_i`` tends to 1, not 0), and -1 for cross_entropy at a masked target (the
  forward is +inf there, its gradient ``softmax - onehot`` has a finite limit).
* nll_loss is linear: its gradient is ``-onehot(target)`` whatever the row holds.
* In a VJP, ``0 * inf`` is NaN, and so is a sum of opposite infinities: an infinite
  cotangent times a Jacobian entry that is exactly 0 (a masked entry) gives NaN, times a
  non-zero one an infinity of the product's sign.
* An exact zero is +0; a non-zero value that rounds to zero keeps its sign.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

from mpmath import mp, mpf

from oracles.catalogue import _GELU_FAR, _erfcx_far, _exact_plus
from oracles.gradients import gradient

__all__: list[str] = []

NAN = mpf("nan")
INF = mpf("inf")
ZERO = mpf(0)
ONE = mpf(1)
HALF = mpf(0.5)
QUARTER = mpf(0.25)


def _nan(*values: mpf) -> bool:
    return any(v != v for v in values)


def _is_pinf(v: mpf) -> bool:
    return bool(mp.isinf(v)) and v > 0


def _is_ninf(v: mpf) -> bool:
    return bool(mp.isinf(v)) and v < 0


def _sigmoid(z: mpf) -> mpf:
    """1 / (1 + e**-z); above 0 as the exact 1 minus e**-z / (1 + e**-z), so that the side
    of 1 survives when the correction is below every working precision. In (-1, 0) as the
    exact 1/2 plus tanh(z/2)/2 (< 0), rounded once: e / (1 + e) rounds three times, and
    beside 1/2 the correction would drown in them."""
    if mp.isinf(z):
        return ONE if z > 0 else ZERO
    if z > 0:
        e = mp.exp(-z)
        return _exact_plus(ONE, -e / (1 + e))
    if z > -1:
        return _exact_plus(HALF, mp.ldexp(mp.tanh(mp.ldexp(z, -1)), -1))
    e = mp.exp(z)
    return e / (1 + e)


# -- elementwise ------------------------------------------------------------------------


@gradient("exp", wrt="x")
def d_exp_d_x(x: mpf) -> mpf:
    """e**x (+inf at +inf, 0 at -inf)."""
    return NAN if _nan(x) else mp.exp(x)


@gradient("log", wrt="x")
def d_log_d_x(x: mpf) -> mpf:
    """1 / x; +inf at 0 (the pole, from inside), 0 at +inf, NaN below 0."""
    if _nan(x) or x < 0:
        return NAN
    if not x:
        return INF
    if mp.isinf(x):
        return ZERO
    return 1 / x


@gradient("log1p", wrt="x")
def d_log1p_d_x(x: mpf) -> mpf:
    """1 / (1 + x) with 1 + x exact; +inf at -1, 0 at +inf, NaN below -1."""
    if _nan(x) or x < -1:
        return NAN
    if x == -1:
        return INF
    if mp.isinf(x):
        return ZERO
    return 1 / mp.fadd(1, x, exact=True)


@gradient("expm1", wrt="x")
def d_expm1_d_x(x: mpf) -> mpf:
    """e**x (+inf at +inf, 0 at -inf)."""
    return NAN if _nan(x) else mp.exp(x)


@gradient("tanh", wrt="x")
def d_tanh_d_x(x: mpf) -> mpf:
    """1 - tanh(x)**2 = 4 e / (1 + e)**2 with e = e**-2|x|; 0 at +-inf."""
    if _nan(x):
        return NAN
    if mp.isinf(x):
        return ZERO
    a = abs(x)
    if a < 0.5:
        # 1 minus a square that can be far below the working precision (x = 2**-1074)
        t = mp.tanh(x)
        return _exact_plus(ONE, -(t * t))
    e = mp.exp(-mp.ldexp(a, 1))
    return 4 * e / (1 + e) ** 2


@gradient("sigmoid", wrt="x")
def d_sigmoid_d_x(x: mpf) -> mpf:
    """sigmoid(x) sigmoid(-x) = e / (1 + e)**2 with e = e**-|x|; 0 at +-inf."""
    if _nan(x):
        return NAN
    if mp.isinf(x):
        return ZERO
    a = abs(x)
    if a < 1:
        # (1 - tanh(x/2)**2) / 4: the exact 1/4 minus a square that can be invisible
        t = mp.tanh(mp.ldexp(x, -1))
        return _exact_plus(QUARTER, -mp.ldexp(t * t, -2))
    e = mp.exp(-a)
    return e / (1 + e) ** 2


@gradient("softplus", wrt="x", version=2)  # 2: _sigmoid beside 1/2 below 0 rounds once
def d_softplus_d_x(x: mpf, *, beta: float = 1.0) -> mpf:
    """sigmoid(beta x), for either sign of beta (1 or 0 at the infinities, by the sign of
    beta x); NaN for beta = 0, where the forward is."""
    if _nan(x) or beta == 0:
        return NAN
    z = mp.fmul(x, beta, exact=True) if not mp.isinf(x) else x * (1 if beta > 0 else -1)
    return _sigmoid(z)


@gradient("log_sigmoid", wrt="x", version=2)  # 2: as softplus
def d_log_sigmoid_d_x(x: mpf) -> mpf:
    """sigmoid(-x): 0 at +inf, 1 at -inf."""
    return NAN if _nan(x) else _sigmoid(-x)


def _silu_excess(a: mpf) -> mpf:
    """silu'(a) - 1 for finite a >= 0: e (a - 1 - e) / (1 + e)**2 with e = e**-a.

    silu'(x) + silu'(-x) = 1, so silu'(x) is 1 plus this for x >= 1 and minus it at -x for
    x <= -1 (|x| < 1: :func:`_silu_near_zero`); a - 1 is exact and only the root of silu'
    (x = -1.278..., a = 1.278...) cancels.
    """
    e = mp.exp(-a)
    return e * (mp.fsub(a, 1, exact=True) - e) / (1 + e) ** 2


def _silu_near_zero(x: mpf) -> mpf:
    """silu'(x) - 1/2 for |x| < 1: with T = tanh(x/2), sigmoid(+-x) = (1 +- T)/2 and
    silu'(x) = (1 + T)/2 (1 + x (1 - T)/2) = 1/2 + (T + x (1 - T**2)/2)/2. T and x share
    their sign and 1 - T**2 > 0.78, so the correction does not cancel: a few roundings,
    relative. 1/2 plus it cancels only mildly, towards x = -1 (silu'(-1) = 0.072)."""
    t = mp.tanh(mp.ldexp(x, -1))
    return mp.ldexp(t + mp.ldexp(x * (1 - t * t), -1), -1)


@gradient("silu", wrt="x", version=2)  # 2: 1/2 plus a correction rounded once for |x| < 1
def d_silu_d_x(x: mpf) -> mpf:
    """sigmoid(x) (1 + x sigmoid(-x)): 1 at +inf, 0 at -inf. For |x| < 1 the exact 1/2 plus
    :func:`_silu_near_zero`, rounded once (1 plus the excess near -1/2 would round several
    times, and beside 1/2 the binade of the working-precision value would depend on them)."""
    if _nan(x):
        return NAN
    if mp.isinf(x):
        return ONE if x > 0 else ZERO
    if abs(x) < 1:
        return _exact_plus(HALF, _silu_near_zero(x))
    if x >= 0:
        return _exact_plus(ONE, _silu_excess(x))
    return -_silu_excess(-x)


def _gelu_excess(a: mpf) -> mpf:
    """gelu'(a) - 1 = a phi(a) - Phi(-a) for finite a >= 0 (phi, Phi: the normal density
    and distribution), with gelu'(x) + gelu'(-x) = 1 as for silu.

    With t = a / sqrt 2 and t**2 = a**2 / 2 formed exactly: a phi(a) is
    a e**-t**2 / sqrt(2 pi) and Phi(-a) = erfc(t) / 2. Far right, erfc(t) is
    e**-t**2 erfcx(t) from the catalogue's asymptotic series, so nothing rounds inside an
    exponent; the two terms then differ by a factor of about a**2 and do not cancel."""
    t2 = mp.ldexp(mp.fmul(a, a, exact=True), -1)
    density = 1 / mp.sqrt(2 * mp.pi)
    if a > -_GELU_FAR:
        return mp.exp(mp.fneg(t2, exact=True)) * (a * density - _erfcx_far(t2) / 2)
    return a * mp.exp(mp.fneg(t2, exact=True)) * density - mp.erfc(a / mp.sqrt(2)) / 2


def _gelu_near_zero(x: mpf) -> mpf:
    """gelu'(x) - 1/2 for |x| < 1: Phi(x) = (1 + erf(x / sqrt 2))/2, so gelu'(x) =
    1/2 + erf(x / sqrt 2)/2 + x phi(x), two terms of x's sign (erf is odd and increasing,
    phi > 0); erf's condition number is at most 1 there, so a few roundings, relative.
    1/2 plus it cancels near the root of gelu' (x = -0.7518...), as 1 plus the excess did:
    Ziv's loop sees that in the distance between its two values."""
    t2 = mp.ldexp(mp.fmul(x, x, exact=True), -1)
    density = mp.exp(mp.fneg(t2, exact=True)) / mp.sqrt(2 * mp.pi)
    return mp.ldexp(mp.erf(x / mp.sqrt(2)), -1) + x * density


@gradient("gelu", wrt="x", version=2)  # 2: 1/2 plus a correction rounded once for |x| < 1
def d_gelu_d_x(x: mpf) -> mpf:
    """Phi(x) + x phi(x) with the exact normal CDF: 1 at +inf, 0 at -inf. For |x| < 1 the
    exact 1/2 plus :func:`_gelu_near_zero`, rounded once (as silu')."""
    if _nan(x):
        return NAN
    if mp.isinf(x):
        return ONE if x > 0 else ZERO
    if abs(x) < 1:
        return _exact_plus(HALF, _gelu_near_zero(x))
    if x >= 0:
        return _exact_plus(ONE, _gelu_excess(x))
    return -_gelu_excess(-x)


# -- element-wise losses ---------------------------------------------------------------


def _probabilities(p: mpf, y: mpf) -> bool:
    return bool(0 <= p <= 1 and 0 <= y <= 1)  # False for NaN


@gradient("binary_cross_entropy", wrt="p")
def d_binary_cross_entropy_d_p(p: mpf, y: mpf) -> mpf:
    """-y / p + (1 - y) / (1 - p) = (p - y) / (p (1 - p)), exact but for one division; at
    p = 0 or 1 a term with an exact 0 coefficient vanishes: 1 at (0, 0), -1 at (1, 1),
    -inf at p = 0 < y, +inf at p = 1 > y. NaN outside [0, 1]."""
    if not _probabilities(p, y):
        return NAN
    if not p:
        return ONE if not y else -INF
    if p == 1:
        return -ONE if y == 1 else INF
    return mp.fsub(p, y, exact=True) / mp.fmul(p, mp.fsub(1, p, exact=True), exact=True)


@gradient("binary_cross_entropy", wrt="y")
def d_binary_cross_entropy_d_y(p: mpf, y: mpf) -> mpf:
    """log(1 - p) - log(p) = log((1 - p) / p), as log1p of an exact-numerator ratio that
    is >= 0 (so exactly 0 at p = 1/2); +inf at p = 0, -inf at p = 1, NaN outside [0, 1]."""
    if not _probabilities(p, y):
        return NAN
    if not p:
        return INF
    if p == 1:
        return -INF
    if p <= 0.5:
        return mp.log1p(mp.fsub(1, mp.ldexp(p, 1), exact=True) / p)
    return -mp.log1p(mp.fsub(mp.ldexp(p, 1), 1, exact=True) / mp.fsub(1, p, exact=True))


@gradient("binary_cross_entropy_with_logits", wrt="x")
def d_binary_cross_entropy_with_logits_d_x(x: mpf, y: mpf) -> mpf:
    """sigmoid(x) - y, as an exact part plus a correction of known sign (no cancellation
    unless the value itself is near 0): 1/2 - y plus tanh(x/2)/2 for |x| < 1, else 1 - y
    minus sigmoid(-x) or -y plus sigmoid(x). 1 - y at x = +inf, -y at -inf; NaN where the
    forward is (finite x, infinite y)."""
    if _nan(x, y):
        return NAN
    if mp.isinf(y):
        return -y if mp.isinf(x) else NAN
    if mp.isinf(x):
        return mp.fsub(1, y, exact=True) if x > 0 else -y
    if abs(x) < 1:
        # 1/2 - y plus tanh(x/2) / 2: sigmoid(x) rounded to the working precision would be
        # exactly 1/2 for a tiny x, and 1/2 - 1/2 an exact 0 at every precision, however
        # far from 0 the true x/4 is (bfloat16 x = 2**-126, y = 1/2)
        return _exact_plus(mp.fsub(0.5, y, exact=True), mp.tanh(mp.ldexp(x, -1)) / 2)
    if x > 0:
        e = mp.exp(-x)
        return _exact_plus(mp.fsub(1, y, exact=True), -e / (1 + e))
    e = mp.exp(x)
    return _exact_plus(-y, e / (1 + e))


@gradient("binary_cross_entropy_with_logits", wrt="y")
def d_binary_cross_entropy_with_logits_d_y(x: mpf, y: mpf) -> mpf:
    """softplus(-x) - softplus(x) = -x, exactly; NaN where the forward is (finite x,
    infinite y)."""
    if _nan(x, y) or (mp.isinf(y) and not mp.isinf(x)):
        return NAN
    return -x


# -- rows -------------------------------------------------------------------------------


class _Row:
    """A valid row (no NaN, no +inf, a finite entry) split around its maximum m: ``d`` the
    exact x_i - m (None where masked), ``top`` the k entries equal to m (e**0 = 1 exactly),
    ``rest`` the other finite ones with ``e[i] = e**d_i`` (``exp_of[d]`` by gap) and ``r``
    their sum, so that the softmax is s_i = e_i / (k + r)."""

    __slots__ = ("d", "e", "exp_of", "k", "r", "rest", "s_sum", "top")

    def __init__(self, x: Sequence[mpf]) -> None:
        finite = [v for v in x if not _is_ninf(v)]
        m = max(finite)
        self.d: list[mpf | None] = [None if _is_ninf(v) else mp.fsub(v, m, exact=True) for v in x]
        self.top = [i for i, v in enumerate(self.d) if v is not None and not v]
        self.rest = [i for i, v in enumerate(self.d) if v is not None and v]
        self.exp_of: dict[mpf, mpf] = {}
        self.e: dict[int, mpf] = {}
        for i in self.rest:
            di = self.d[i]
            if di not in self.exp_of:
                self.exp_of[di] = mp.exp(di)
            self.e[i] = self.exp_of[di]
        self.k = len(self.top)
        self.r = mp.fsum(self.e.values()) if self.rest else ZERO
        self.s_sum = self.k + self.r

    def masked(self, j: int) -> bool:
        return self.d[j] is None

    def only(self, j: int) -> bool:
        """Whether j is the row's only finite entry (its softmax is exactly 1)."""
        return self.k == 1 and not self.rest and self.top[0] == j

    def softmax(self, j: int) -> mpf:
        """s_j, with 1/k kept exact beside its correction -r / (k (k + r)) for a top entry."""
        if self.d[j] is None:
            return ZERO
        if j in self.e:
            return self.e[j] / self.s_sum
        return _exact_plus(ONE / self.k, -self.r / (self.k * self.s_sum))


def _valid(x: Sequence[mpf]) -> bool:
    """Not NaN, no +inf entry, at least one finite entry."""
    return not any(v != v or _is_pinf(v) for v in x) and any(not _is_ninf(v) for v in x)


def _exact_sum(values: Sequence[mpf]) -> mpf:
    total = ZERO
    for v in values:
        total = mp.fadd(total, v, exact=True)
    return total


def _extended(g: Sequence[mpf], jacobian_sign: Callable[[int], int]) -> mpf:
    """sum_i g_i J_ij for a cotangent with an infinite entry, from the signs of the
    Jacobian's column (exactly 0, or strictly positive or negative): 0 * inf is NaN, and so
    is +inf - inf; the finite terms do not matter."""
    signs: set[int] = set()
    for i, gi in enumerate(g):
        if not mp.isinf(gi):
            continue
        sign = jacobian_sign(i)
        if not sign:
            return NAN
        signs.add(sign * (1 if gi > 0 else -1))
    return NAN if len(signs) > 1 else INF * signs.pop()


def _fraction(v: mpf) -> Fraction:
    """The exact value of a finite mpf."""
    if not v:
        return Fraction(0)
    man, exp = v.man_exp
    f = Fraction(int(man)) * (Fraction(2) ** int(exp))
    return -f if v < 0 else f


class _Classes:
    """Sums over groups of equal d (entries with the same e**d), gathered into classes by
    the mean cotangent of the group, so that a sum leaving out one class is formed as a
    prefix plus a suffix sum, never by subtracting the class from the whole.

    Why classes: sum_i e_i (g_j - g_i) is sum over groups of (n g_j - T) e**d with exact
    coefficients, and by Lindemann-Weierstrass it is 0 exactly when every coefficient is,
    i.e. a group's term vanishes exactly when its mean cotangent T / n equals g_j. Leaving
    those groups out (one class) keeps Ziv's loop from chasing an exact cancellation, and
    costs O(1) per entry instead of regrouping the row for each of its n entries."""

    def __init__(self, groups: Sequence[tuple[int, mpf, mpf]]) -> None:
        by_mean: dict[Fraction, list[tuple[int, mpf, mpf]]] = {}
        for n, total, e in groups:
            by_mean.setdefault(_fraction(total) / n, []).append((n, total, e))
        self.index = {mean: pos for pos, mean in enumerate(by_mean)}
        weights = [mp.fsum(n * e for n, _t, e in members) for members in by_mean.values()]
        weighted = [mp.fsum(t * e for _n, t, e in members) for members in by_mean.values()]
        self.s_prefix, self.s_suffix = _prefix_suffix(weights)
        self.t_prefix, self.t_suffix = _prefix_suffix(weighted)

    def without(self, mean: Fraction) -> tuple[mpf, mpf]:
        """(sum of n e**d, sum of T e**d) over the groups whose mean cotangent is not ``mean``."""
        pos = self.index.get(mean)
        if pos is None:
            return self.s_prefix[-1], self.t_prefix[-1]
        return self.s_prefix[pos] + self.s_suffix[pos + 1], self.t_prefix[pos] + self.t_suffix[pos + 1]


def _prefix_suffix(parts: Sequence[mpf]) -> tuple[list[mpf], list[mpf]]:
    prefix = [ZERO]
    for p in parts:
        prefix.append(prefix[-1] + p)
    suffix = [ZERO]
    for p in reversed(parts):
        suffix.append(suffix[-1] + p)
    suffix.reverse()
    return prefix, suffix


@gradient("softmax", wrt="x")
def d_softmax_d_x(x: Sequence[mpf], *, cotangent: Sequence[mpf]) -> list[mpf]:
    """s_j (g_j - sum_i g_i s_i) = e_j sum_i e_i (g_j - g_i) / (k + r)**2: 0 at masked
    entries; NaN rows where the forward is NaN.

    Terms that vanish exactly are left out by class (:class:`_Classes`). For a top entry
    the value is A / k**2 (A = k g_j - sum of the top's g, exact) plus
    [sum_rest e_i (k**2 (g_j - g_i) - 2 k A) - A r**2] / (k**2 (k + r)**2): an exact part
    and a correction computed without cancelling against it (the rest's coefficient
    vanishes for the groups whose mean cotangent is 2 mean_top - g_j). O(n) per row."""
    g = list(cotangent)
    n = len(x)
    if not _valid(x) or _nan(*g):
        return [NAN] * n
    row = _Row(x)
    if any(mp.isinf(v) for v in g):
        def sign(j: int) -> Callable[[int], int]:
            def of(i: int) -> int:
                if row.masked(i) or row.masked(j):
                    return 0
                if i == j:
                    return 0 if row.only(j) else 1
                return -1
            return of
        return [_extended(g, sign(j)) for j in range(n)]
    k, r, s_sum = row.k, row.r, row.s_sum
    members: dict[mpf, list[mpf]] = {}
    for di, gi in zip(row.d, g, strict=True):
        if di is not None:
            members.setdefault(di, []).append(gi)
    groups = {di: (len(gs), _exact_sum(gs), ONE if not di else row.exp_of[di]) for di, gs in members.items()}
    every = _Classes(list(groups.values()))
    rest = _Classes([v for di, v in groups.items() if di])
    top_sum = groups[ZERO][1]
    twice_top_mean = 2 * _fraction(top_sum) / k
    out: list[mpf] = []
    for j in range(n):
        dj, gj = row.d[j], g[j]
        if dj is None:
            out.append(ZERO)
        elif dj:
            weights, weighted = every.without(_fraction(gj))
            out.append(row.e[j] * (gj * weights - weighted) / s_sum**2)
        else:
            a = mp.fsub(mp.fmul(k, gj, exact=True), top_sum, exact=True)
            if not row.rest:
                out.append(a / k**2)  # rational: Ziv's loop decides an exact tie
                continue
            weights, weighted = rest.without(twice_top_mean - _fraction(gj))
            coefficient = mp.fsub(mp.fmul(k * k, gj, exact=True), mp.fmul(2 * k, a, exact=True), exact=True)
            correction = coefficient * weights - (k * k) * weighted - a * r**2
            out.append(_exact_plus(a / k**2, correction / (k**2 * s_sum**2)))
    return out


@gradient("log_softmax", wrt="x")
def d_log_softmax_d_x(x: Sequence[mpf], *, cotangent: Sequence[mpf]) -> list[mpf]:
    """g_j - s_j sum_i g_i (every i, masked ones included): the cotangent itself at a masked
    entry (the limit); NaN rows where the forward is NaN.

    A top entry is (k g_j - G) / k plus G r / (k (k + r)); any other is g_j minus
    e_j G / (k + r): an exact part and a correction of known sign."""
    g = list(cotangent)
    n = len(x)
    if not _valid(x) or _nan(*g):
        return [NAN] * n
    row = _Row(x)
    if any(mp.isinf(v) for v in g):
        def sign(j: int) -> Callable[[int], int]:
            def of(i: int) -> int:
                if i == j:
                    return 0 if row.only(j) else 1
                return 0 if row.masked(j) else -1
            return of
        return [_extended(g, sign(j)) for j in range(n)]
    total = _exact_sum(g)
    k, r, s_sum = row.k, row.r, row.s_sum
    out: list[mpf] = []
    for j in range(n):
        gj = g[j]
        if row.masked(j) or not total:
            out.append(gj)
        elif j in row.e:
            out.append(_exact_plus(gj, -row.e[j] * total / s_sum))
        else:
            exact = mp.fsub(mp.fmul(k, gj, exact=True), total, exact=True) / k
            out.append(_exact_plus(exact, total * r / (k * s_sum)))
    return out


@gradient("logsumexp", wrt="x")
def d_logsumexp_d_x(x: Sequence[mpf]) -> list[mpf]:
    """The softmax row: 0 at masked entries; NaN where a +inf entry makes the forward +inf
    (inf/inf) and where every entry is -inf (0/0)."""
    if not _valid(x):
        return [NAN] * len(x)
    row = _Row(x)
    return [row.softmax(j) for j in range(len(x))]


@gradient("cross_entropy", wrt="logits")
def d_cross_entropy_d_logits(logits: Sequence[mpf], target: int) -> list[mpf]:
    """softmax(logits) - onehot(target). At a top target s_t - 1 is the exact -(k - 1)/k
    plus -r / (k (k + r)), elsewhere -1 plus e_t / (k + r); -1 at a masked target (the
    forward is +inf, the gradient's limit is finite). NaN rows as for logsumexp."""
    n = len(logits)
    if not _valid(logits) or not 0 <= target < n:
        return [NAN] * n
    row = _Row(logits)
    out = [row.softmax(j) for j in range(n)]
    if row.masked(target):
        out[target] = -ONE
    elif target in row.e:
        out[target] = _exact_plus(-ONE, row.e[target] / row.s_sum)
    else:
        out[target] = _exact_plus(mpf(1 - row.k) / row.k, -row.r / (row.k * row.s_sum))
    return out


@gradient("nll_loss", wrt="logp")
def d_nll_loss_d_logp(logp: Sequence[mpf], target: int) -> list[mpf]:
    """-onehot(target), exactly: the loss is linear in logp, whatever the row holds."""
    n = len(logp)
    if _nan(*logp) or not 0 <= target < n:
        return [NAN] * n
    out = [ZERO] * n
    out[target] = -ONE
    return out
