"""The built-in oracles: the mathematics ML frameworks mean by these names.

Every function here is evaluated by :mod:`oracles.evaluate` at a working precision it sets
(``mp.prec``); a function only has to be accurate to a few ulps *at that precision*, for
every input including +-inf. Two rules keep that true:

* never form a quantity that can overflow where the result does not (exp(3e38) is a
  number with 10**38 digits): softplus is x + log1p(exp(-x)) for x > 0, and row-wise
  oracles subtract the row maximum exactly before exponentiating;
* never subtract nearly equal numbers where a rewrite avoids it: log(1 - p) is
  log1p(-p), log_softmax of the dominant entry is -log1p(sum of the others).

Subtractions of input values use ``exact=True``: inputs are floats, so the exact
difference is cheap and the only rounding left is in the transcendental functions.
"""

from __future__ import annotations

from collections.abc import Sequence

from mpmath import mp, mpf

from oracles.registry import Param, oracle
from oracles.ziv import NEAR_POWER

__all__: list[str] = []

NAN = mpf("nan")
INF = mpf("inf")
ZERO = mpf(0)


def _is_pinf(v: mpf) -> bool:
    return bool(mp.isinf(v)) and v > 0


def _is_ninf(v: mpf) -> bool:
    return bool(mp.isinf(v)) and v < 0


def _times(a: mpf, b: mpf) -> mpf:
    """a * b with 0 * inf = 0: the convention of cross-entropy (0 log 0 = 0) and of the
    limits x * sigmoid(x) -> 0 as x -> -inf."""
    if not a or not b:
        return ZERO
    return a * b


_STANDIN_BITS = 120


def _exact_plus(exact: mpf, small: mpf) -> mpf:
    """exact + small, for an exact value (built from inputs without rounding) and a
    correction known only to the working precision.

    When |small| is below about 2**-118 |exact|, ``small`` is replaced by the stand-in
    sign(small) 2**-121 |exact|. No value of any format, and no midpoint between two, lies
    strictly between exact + small and exact + stand-in (those are at least 2**-55 |exact|
    apart), so the rounding is the same, and the exact value moves by under 2**-118
    relative. Without it, log_softmax([5604, 650]) in float16 is -4954 - e**-4134: no
    working precision sees the e**-4134, -4954 is a float16 midpoint, and evaluate took
    the value for an exact tie and rounded it to even (-4952, not -4956).

    Beside a power of two the stand-in also keeps which side of the band below it the value
    is on (:func:`oracles.ziv.binade_of`): a correction deep inside the band is replaced by
    2**-(NEAR_POWER + 8) |exact| (still 2**16 times farther from exact than a rounding tie
    is taken to be, :data:`oracles.ziv.TIE_BITS`), one near its edge is kept as it is.
    """
    if exact and small:
        depth = mp.mag(exact) - mp.mag(small)
        power = int(exact._mpf_[1]) == 1  # the mantissa of a power of two, read without rounding
        if power and depth > NEAR_POWER + 4:
            small = mp.ldexp(abs(exact), -NEAR_POWER - 8) * mp.sign(small)
        elif depth > _STANDIN_BITS and not (power and depth >= NEAR_POWER - 4):
            small = mp.ldexp(abs(exact), -_STANDIN_BITS - 1) * mp.sign(small)
    return exact + small


def _softplus(z: mpf) -> mpf:
    if _is_pinf(z):
        return INF
    if _is_ninf(z):
        return ZERO
    if z > 0:
        # z exact plus a correction that keeps its side: softplus(1536.5) in float16 is
        # 1536.5 + e**-1536.5, above the midpoint that no working precision sees it beside
        return _exact_plus(z, mp.log1p(mp.exp(-z)))
    return mp.log1p(mp.exp(z))


# -- elementwise ------------------------------------------------------------------------


@oracle("exp")
def exp(x: mpf) -> mpf:
    """e**x."""
    return mp.exp(x)


@oracle("log", domain="x >= 0 (log(0) = -inf; NaN below 0)")
def log(x: mpf) -> mpf:
    """Natural logarithm."""
    if x < 0:
        return NAN
    if not x:
        return -INF
    return mp.log(x)


@oracle("log1p", domain="x >= -1 (log1p(-1) = -inf; NaN below -1)")
def log1p(x: mpf) -> mpf:
    """log(1 + x)."""
    if x < -1:
        return NAN
    if x == -1:
        return -INF
    return mp.log1p(x)


@oracle("expm1")
def expm1(x: mpf) -> mpf:
    """e**x - 1."""
    if _is_ninf(x):
        return mpf(-1)
    return mp.expm1(x)


@oracle("tanh")
def tanh(x: mpf) -> mpf:
    """Hyperbolic tangent."""
    if mp.isinf(x):
        return mpf(1) if x > 0 else mpf(-1)
    return mp.tanh(x)


@oracle("sigmoid")
def sigmoid(x: mpf) -> mpf:
    """Logistic function 1 / (1 + e**-x)."""
    if mp.isinf(x):
        return mpf(1) if x > 0 else ZERO
    if x >= 0:
        return 1 / (1 + mp.exp(-x))
    e = mp.exp(x)
    return e / (1 + e)


@oracle(
    "softplus",
    # beta = 0 divides by zero: the oracle is NaN there, so the parameter's domain excludes
    # it rather than letting every cell be judged against NaN
    params={"beta": Param("beta", 1.0, doc="sharpness: log(1 + exp(beta x)) / beta", domain="nonzero")},
    domain="all reals; beta != 0",
)
def softplus(x: mpf, *, beta: float = 1.0) -> mpf:
    """log(1 + e**(beta x)) / beta, the smooth ReLU."""
    if beta == 0:
        return NAN
    z = mp.fmul(x, beta, exact=True) if not mp.isinf(x) else x * (1 if beta > 0 else -1)
    return _softplus(z) / mpf(beta)


@oracle("log_sigmoid")
def log_sigmoid(x: mpf) -> mpf:
    """log(sigmoid(x)) = -softplus(-x)."""
    return -_softplus(-x)


@oracle("silu", version=2)
def silu(x: mpf) -> mpf:
    """x * sigmoid(x) (also called swish)."""
    if x >= 1 and not _is_pinf(x):
        # x - x e**-x / (1 + e**-x): the exact x keeps the side of a midpoint it may be (a
        # float32 x judged in bfloat16) however small the correction
        e = mp.exp(-x)
        return _exact_plus(x, -x * e / (1 + e))
    return _times(x, sigmoid(x))


@oracle("gelu", version=2)
def gelu(x: mpf) -> mpf:
    """x * Phi(x) with the exact normal CDF (not the tanh approximation)."""
    if _is_pinf(x):
        return INF
    if _is_ninf(x):
        return ZERO
    if x >= 1:
        # x - x Phi(-x), the exact x first, as silu's
        return _exact_plus(x, -x * mp.erfc(x / mp.sqrt(2)) / 2)
    if x >= _GELU_FAR:
        # erfc(-x / sqrt 2) avoids the cancellation in 1 + erf(x / sqrt 2) for x << 0
        return x * mp.erfc(-x / mp.sqrt(2)) / 2
    # Far left, erfc(t) = exp(-t^2) erfcx(t) with t^2 = x^2 / 2 formed exactly. erfc's
    # condition number is 2 t^2, so rounding -x / sqrt 2 would put an error of about
    # t^2 2**-prec into the *exponent* of the result (10**15 bits for x = -1e20 at 83
    # bits): evaluate could not even subtract its two estimates (mpmath raised
    # OverflowError, and GMP aborted the process for float64 inputs).
    t2 = mp.ldexp(mp.fmul(x, x, exact=True), -1)
    return x / 2 * mp.exp(mp.fneg(t2, exact=True)) * _erfcx_far(t2)


_GELU_FAR = -1024  # below this, t^2 = x^2 / 2 >= 2**19 and the asymptotic series is quick


def _erfcx_far(t2: mpf) -> mpf:
    """exp(t^2) erfc(t) for t^2 >= 2**19, from the asymptotic series
    1 / (t sqrt(pi)) * sum_k (-1)^k (2k - 1)!! / (2 t^2)^k. Its terms alternate and shrink
    by a factor below 2**-10 for every k < 2**8, so stopping at a term under
    2**-(prec + 8) leaves an error smaller than that term."""
    eps = mp.ldexp(1, -(mp.prec + 8))
    inv = 1 / (2 * t2)
    term = total = mpf(1)
    k = 0
    while abs(term) > eps:
        k += 1
        term = -term * (2 * k - 1) * inv
        total += term
    return total / mp.sqrt(mp.pi * t2)


# -- row-wise over the last axis ------------------------------------------------------


def _shifted(row: Sequence[mpf]) -> tuple[list[mpf | None], int] | None:
    """Exact x_i - max(x) (None for -inf entries) and the index of the first maximum, or
    None when the row has no finite maximum (all -inf)."""
    finite = [v for v in row if not _is_ninf(v)]
    if not finite:
        return None
    m = max(finite)
    top = next(i for i, v in enumerate(row) if v == m)
    return [None if _is_ninf(v) else mp.fsub(v, m, exact=True) for v in row], top


def _log1p_rest(d: list[mpf | None], top: int) -> mpf:
    """log(sum_j exp(d_j)) where d_top == 0, as log1p of the other terms so that the
    dominant entry loses nothing to cancellation."""
    rest = mp.fsum(mp.exp(v) for j, v in enumerate(d) if j != top and v is not None)
    return mp.log1p(rest)


@oracle("softmax", kind="rowwise", domain="rows of reals; -inf entries are masked")
def softmax(x: Sequence[mpf]) -> list[mpf]:
    """exp(x_i) / sum_j exp(x_j) over the last axis; NaN rows where it is 0/0 or inf/inf."""
    if any(_is_pinf(v) for v in x):
        return [NAN] * len(x)
    shifted = _shifted(x)
    if shifted is None:
        return [NAN] * len(x)
    d, _top = shifted
    e = [ZERO if v is None else mp.exp(v) for v in d]
    s = mp.fsum(e)
    return [v / s for v in e]


@oracle("log_softmax", kind="rowwise", domain="rows of reals; -inf entries are masked", version=2)
def log_softmax(x: Sequence[mpf]) -> list[mpf]:
    """x_i - logsumexp(x) over the last axis."""
    if any(_is_pinf(v) for v in x):
        return [NAN] * len(x)
    shifted = _shifted(x)
    if shifted is None:
        return [NAN] * len(x)
    d, top = shifted
    lse = _log1p_rest(d, top)
    return [-INF if v is None else _exact_plus(v, -lse) for v in d]


@oracle(
    "logsumexp",
    kind="row_reduce",
    version=2,  # near-tie fix: cached references of version 1 may be wrong
    domain="rows of reals; -inf entries are masked",
)
def logsumexp(x: Sequence[mpf]) -> mpf:
    """log(sum_j exp(x_j)) over the last axis."""
    if any(_is_pinf(v) for v in x):
        return INF
    shifted = _shifted(x)
    if shifted is None:
        return -INF
    d, top = shifted
    # m, an input value, plus log1p of the others, which is > 0 whenever another entry is
    # finite (e**-4954 for [5602, 650]) and exactly 0 when none is (the result is m). m can
    # be a rounding midpoint of a narrower output format: _exact_plus keeps the value on
    # the side of m that the log term puts it, for either sign of m.
    return _exact_plus(x[top], _log1p_rest(d, top))


# -- losses (per sample; reduction mean/sum as a parameter) ---------------------------------


@oracle(
    "binary_cross_entropy",
    args=("p", "y"),
    reducible=True,
    domain="0 <= p <= 1, 0 <= y <= 1 (NaN outside); 0 log 0 = 0",
)
def binary_cross_entropy(p: mpf, y: mpf) -> mpf:
    """-(y log p + (1 - y) log(1 - p)) from probabilities."""
    if not (0 <= p <= 1 and 0 <= y <= 1):
        return NAN
    one_minus_y = mp.fsub(1, y, exact=True)
    a = _times(y, -INF if not p else mp.log(p))
    b = _times(one_minus_y, -INF if p == 1 else mp.log1p(-p))
    return -(a + b)


@oracle(
    "binary_cross_entropy_with_logits",
    args=("x", "y"),
    reducible=True,
    version=2,  # near-tie fix: cached references of version 1 may be wrong
    domain="x real, y real (labels usually in [0, 1])",
)
def binary_cross_entropy_with_logits(x: mpf, y: mpf) -> mpf:
    """y softplus(-x) + (1 - y) softplus(x): binary cross-entropy of sigmoid(x)."""
    one_minus_y = mp.fsub(1, y, exact=True) if not mp.isinf(y) else -y
    if mp.isinf(x) or mp.isinf(y):
        return _times(y, _softplus(-x)) + _times(one_minus_y, _softplus(x))
    # The same for finite x and y, since softplus(x) = x + softplus(-x): an exact linear
    # part and a positive tail, log1p(exp(-|x|)), which _exact_plus keeps on its side.
    linear = mp.fmul(x, one_minus_y, exact=True) if x >= 0 else mp.fmul(-x, y, exact=True)
    return _exact_plus(linear, mp.log1p(mp.exp(-abs(x))))


@oracle(
    "cross_entropy",
    kind="row_reduce",
    args=("logits", "target:index"),
    reducible=True,
    version=2,  # near-tie fix: cached references of version 1 may be wrong
    domain="rows of logits; target a class index in [0, width)",
)
def cross_entropy(logits: Sequence[mpf], target: int) -> mpf:
    """logsumexp(logits) - logits[target] = -log_softmax(logits)[target]."""
    if any(_is_pinf(v) for v in logits):
        return NAN
    shifted = _shifted(logits)
    if shifted is None:
        return NAN
    d, top = shifted
    dt = d[target]
    if dt is None:
        return INF
    return _exact_plus(-dt, _log1p_rest(d, top))


@oracle(
    "nll_loss",
    kind="row_reduce",
    args=("logp", "target:index"),
    reducible=True,
    domain="rows of log-probabilities; target a class index in [0, width)",
)
def nll_loss(logp: Sequence[mpf], target: int) -> mpf:
    """-logp[target]: negative log-likelihood of the target class."""
    return -logp[target]
