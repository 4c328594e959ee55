"""An independent second reference for every built-in oracle, in gmpy2/MPFR.

The oracles in ``oracles/`` are mpmath functions settled by a two-precision Ziv loop. This
module shares no code with them and differs in each layer where a shared mistake could
hide:

* **arithmetic**: MPFR (every operation correctly rounded in a chosen direction), not
  mpmath;
* **error control**: rigorous interval arithmetic. Every quantity is a pair ``(lo, hi)``
  computed with MPFR's round-down and round-up modes, so the exact value always lies in
  the interval; a value is settled when both ends round to the same format value, else
  the working precision doubles. There is no error estimate to get wrong. (The
  alternative, comparing two precisions as the oracles do, is exactly what we want to
  check, so it is rejected here.)
* **exact ties**: an interval that collapses to a point is an exact value (MPFR's round-
  down and round-up agree only when no rounding happened), and it is rounded once, half
  to even; there is no "agrees to 1,000 bits" heuristic;
* **near ties**: a value that is an exact part plus a correction known to be positive
  (log_softmax's d_i - log1p(rest), BCE-with-logits' linear part + log1p(exp(-|x|))) is
  kept as that pair (:class:`Near`), so that an exact part sitting on a midpoint is still
  rounded to the side the correction puts it, however small the correction (e**-4000);
* **rounding into the format**: MPFR's own emulation of IEEE formats (a context with
  precision ``p``, the format's exponent range in MPFR's convention, ``subnormalize``),
  not integer shifting;
* **formulas** where a different one is as good: sigmoid is (1 + tanh(x/2)) / 2, silu
  and gelu are x/2 (1 + tanh(x/2)) and (x/2) erfc(-x/sqrt 2) as intervals, BCE-with-logits
  is max(x, 0) - x y + log1p(exp(-|x|)), BCE uses log(1 - p) with 1 - p exact.

The public entry point is :func:`reference`, which takes the same arrays as
``oracles.evaluate`` and returns the correctly rounded values as float64 carriers.
Special values follow the spec's table, written out here a second time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import gmpy2
import numpy as np
import numpy.typing as npt
from gmpy2 import mpfr

__all__ = [
    "ELEMENTWISE",
    "FORMATS",
    "LOSSES",
    "ROWWISE",
    "ROW_REDUCE",
    "MpfrFormat",
    "NotSettledError",
    "reference",
    "round_to_format",
]

INF = math.inf
NAN = math.nan

#: working precision gives up past this many bits (never reached by the built-ins; the
#: deepest case, a float64 result near 2**-1074 reached through cancellation, needs ~2,200)
MAX_PREC = 1 << 16

#: 4,400 bits hold every exact sum, difference or product of two float64 values that this
#: module forms (a difference spans at most 2**1024 .. 2**-1074, 2,098 bits; (1 - y) * x at
#: most 1,075 + 53 bits), so operations in this context never round.
_EXACT = gmpy2.context(precision=4400, round=gmpy2.RoundToNearest)


class NotSettledError(RuntimeError):
    """The MPFR reference could not settle a value below :data:`MAX_PREC` bits."""


@dataclass(frozen=True, slots=True)
class MpfrFormat:
    """An IEEE binary format as MPFR emulates it. ``emin``/``emax`` are IEEE exponents of
    the smallest normal and largest finite values; MPFR writes x = m 2**E with m in
    [1/2, 1), so its exponents are one larger, and its ``emin`` is the exponent of the
    smallest *subnormal*: emin - p + 2."""

    name: str
    precision: int
    emin: int
    emax: int

    def context(self) -> Any:
        return gmpy2.context(
            precision=self.precision,
            emin=self.emin - self.precision + 2,
            emax=self.emax + 1,
            subnormalize=True,
            round=gmpy2.RoundToNearest,
        )


FORMATS: dict[str, MpfrFormat] = {
    f.name: f
    for f in (
        MpfrFormat("float16", 11, -14, 15),
        MpfrFormat("bfloat16", 8, -126, 127),
        MpfrFormat("float32", 24, -126, 127),
        MpfrFormat("float64", 53, -1022, 1023),
    )
}
_CONTEXTS = {name: f.context() for name, f in FORMATS.items()}


def _fmt(fmt: object) -> MpfrFormat:
    return FORMATS[str(fmt)]


def round_to_format(v: mpfr | float, fmt: str | object) -> float:
    """The value of ``fmt`` nearest ``v`` (ties to even; gradual underflow; overflow to
    +-inf) as a float64. MPFR rounds to ``p`` bits in its extended exponent range, then
    ``check_range`` and ``subnormalize`` use that rounding's ternary value, so a subnormal
    result is rounded once, not twice."""
    ctx = _CONTEXTS[str(fmt)]
    return float(ctx.plus(v if isinstance(v, mpfr) else mpfr(v, 53)))


# -- interval arithmetic ---------------------------------------------------------------

Iv = tuple[mpfr, mpfr]


class Near(NamedTuple):
    """``exact + sign * t`` for an exact value and a t known to be > 0 from the structure
    of the formula (a sum of exponentials), with ``t`` in the interval ``tiny``. t may be
    e**-4000 or smaller, far below any working precision, and ``exact`` may be a rounding
    midpoint (log_softmax of [5604, 650] is -4954 - e**-4134 in float16): the rounding is
    decided by which side of ``exact`` the value lies on, see :func:`_round_near`."""

    exact: mpfr
    sign: int
    tiny: Iv


#: what an oracle returns for one output element: a float for a special value that the
#: spec fixes (NaN, +-inf, 0, +-1), an enclosing interval, or a :class:`Near`
Out = float | Iv | Near


def _exact(x: float | mpfr) -> mpfr:
    return mpfr(x, 53) if isinstance(x, float) else x


def _x(a: mpfr | float, b: mpfr | float, op: str) -> mpfr:
    """a op b without rounding (see :data:`_EXACT`)."""
    return getattr(_EXACT, op)(_exact(a), _exact(b))


class Arith:
    """Interval arithmetic at working precision ``wp``: every result encloses the exact
    one. Arguments are finite intervals; callers deal with infinities first."""

    def __init__(self, wp: int) -> None:
        self.wp = wp
        self.dn = gmpy2.context(precision=wp, round=gmpy2.RoundDown)
        self.up = gmpy2.context(precision=wp, round=gmpy2.RoundUp)

    @staticmethod
    def pt(x: float | mpfr) -> Iv:
        m = _exact(x)
        return (m, m)

    def neg(self, a: Iv) -> Iv:
        return (self.dn.minus(a[1]), self.up.minus(a[0]))

    def add(self, a: Iv, b: Iv) -> Iv:
        return (self.dn.add(a[0], b[0]), self.up.add(a[1], b[1]))

    def sub(self, a: Iv, b: Iv) -> Iv:
        return (self.dn.sub(a[0], b[1]), self.up.sub(a[1], b[0]))

    def mul(self, a: Iv, b: Iv) -> Iv:
        lo = min(self.dn.mul(x, y) for x in a for y in b)
        hi = max(self.up.mul(x, y) for x in a for y in b)
        return (lo, hi)

    def div(self, a: Iv, b: Iv) -> Iv:
        if not (b[0] > 0 or b[1] < 0):
            raise ZeroDivisionError("interval divisor contains 0")
        lo = min(self.dn.div(x, y) for x in a for y in b)
        hi = max(self.up.div(x, y) for x in a for y in b)
        return (lo, hi)

    def scale2(self, a: Iv, k: int) -> Iv:
        """a * 2**k (exact unless the exponent range is left, where it stays enclosing)."""
        return (self.dn.mul_2exp(a[0], k), self.up.mul_2exp(a[1], k))

    def fsum(self, items: Sequence[Iv]) -> Iv:
        return (self.dn.fsum([i[0] for i in items]), self.up.fsum([i[1] for i in items]))

    # increasing functions map ends to ends
    def exp(self, a: Iv) -> Iv:
        return (self.dn.exp(a[0]), self.up.exp(a[1]))

    def expm1(self, a: Iv) -> Iv:
        return (self.dn.expm1(a[0]), self.up.expm1(a[1]))

    def log(self, a: Iv) -> Iv:
        return (self.dn.log(a[0]), self.up.log(a[1]))

    def log1p(self, a: Iv) -> Iv:
        return (self.dn.log1p(a[0]), self.up.log1p(a[1]))

    def tanh(self, a: Iv) -> Iv:
        return (self.dn.tanh(a[0]), self.up.tanh(a[1]))

    def sqrt(self, a: Iv) -> Iv:
        return (self.dn.sqrt(a[0]), self.up.sqrt(a[1]))

    # erfc decreases
    def erfc(self, a: Iv) -> Iv:
        return (self.dn.erfc(a[1]), self.up.erfc(a[0]))


_ARITH: dict[int, Arith] = {}


def _arith(wp: int) -> Arith:
    a = _ARITH.get(wp)
    if a is None:
        a = _ARITH[wp] = Arith(wp)
    return a


def _just_past(exact: mpfr, sign: int) -> mpfr:
    """A value strictly beyond ``exact`` in direction ``sign`` with no rounding boundary of
    any format (a format value or a midpoint) strictly in between: it moves by less than the
    lowest set bit of ``exact`` and by less than 2**-64 of its magnitude."""
    if exact == 0:
        return gmpy2.mul_2exp(mpfr(sign, 2), -100_000)  # far below every smallest subnormal
    prec = exact.precision + 80
    step = gmpy2.mul_2exp(mpfr(sign, 2), gmpy2.get_exp(exact) - exact.precision - 64)
    return gmpy2.context(precision=prec).add(exact, step)


def _round_near(o: Near, A: Arith, fmt: MpfrFormat) -> float | None:
    """R(exact + sign t) for every t in (0, tiny.hi] with t >= tiny.lo, when that is one
    value, else None. Rounding is monotone, so the two ends of the range decide: the far
    one rounded outward, and the near one rounded inward, exact + sign tiny.lo. Where that
    collapses onto ``exact`` (tiny.lo is below the working precision, or 0 because exp
    underflowed), the point just past ``exact`` stands in: rounding is constant on
    (exact, _just_past(exact)], which then covers the near end of the range."""
    lo, hi = o.tiny
    near = _just_past(o.exact, o.sign)
    if lo > 0:
        inner = A.dn.add(o.exact, lo) if o.sign > 0 else A.up.sub(o.exact, lo)
        if inner != o.exact:
            near = inner
    far = A.up.add(o.exact, hi) if o.sign > 0 else A.dn.sub(o.exact, hi)
    r_far = round_to_format(far, fmt.name)
    r_near = round_to_format(near, fmt.name)
    return r_far if r_far == r_near else None


def _settle(compute: Callable[[Arith], list[Out]], fmt: MpfrFormat) -> list[float]:
    """Run ``compute`` at doubling precision until each output rounds with certainty."""
    wp = fmt.precision + 24
    done: list[float | None] | None = None
    while True:
        A = _arith(wp)
        outs = compute(A)
        if done is None:
            done = [None] * len(outs)
        for i, o in enumerate(outs):
            if done[i] is not None:
                continue
            if isinstance(o, float):
                done[i] = o
                continue
            if isinstance(o, Near):
                done[i] = _round_near(o, A, fmt)
                continue
            lo, hi = o
            if gmpy2.is_nan(lo) or gmpy2.is_nan(hi):
                continue
            r_lo = round_to_format(lo, fmt.name)
            if lo == hi:  # no operation rounded: an exact value, rounded once here
                done[i] = r_lo
                continue
            r_hi = round_to_format(hi, fmt.name)
            if r_lo == r_hi:  # every value in between rounds the same way
                done[i] = r_hi
        if all(d is not None for d in done):
            return [float(d) for d in done if d is not None]
        wp *= 2
        if wp > MAX_PREC:
            raise NotSettledError(f"MPFR reference did not settle below {MAX_PREC} bits")


# -- elementwise oracles -------------------------------------------------------------


def _softplus(A: Arith, z: mpfr) -> Iv:
    """log(1 + e**z) for finite exact z, as max(z, 0) + log1p(exp(-|z|))."""
    if z > 0:
        return A.add(A.pt(z), A.log1p(A.exp(A.pt(-z))))
    return A.log1p(A.exp(A.pt(z)))


def _sigmoid(A: Arith, x: float) -> Iv:
    """(1 + tanh(x / 2)) / 2: a different formula from the oracle's 1 / (1 + e**-x)."""
    t = A.tanh(A.scale2(A.pt(x), -1))
    return A.scale2(A.add(A.pt(1.0), t), -1)


def e_exp(A: Arith, x: float) -> Out:
    if math.isinf(x):
        return INF if x > 0 else 0.0
    return A.exp(A.pt(x))


def e_log(A: Arith, x: float) -> Out:
    if x < 0:
        return NAN
    if x == 0:
        return -INF
    if x == INF:
        return INF
    return A.log(A.pt(x))


def e_log1p(A: Arith, x: float) -> Out:
    if x < -1:
        return NAN
    if x == -1:
        return -INF
    if x == INF:
        return INF
    return A.log1p(A.pt(x))


def e_expm1(A: Arith, x: float) -> Out:
    if math.isinf(x):
        return INF if x > 0 else -1.0
    return A.expm1(A.pt(x))


def e_tanh(A: Arith, x: float) -> Out:
    if math.isinf(x):
        return 1.0 if x > 0 else -1.0
    return A.tanh(A.pt(x))


def e_sigmoid(A: Arith, x: float) -> Out:
    if math.isinf(x):
        return 1.0 if x > 0 else 0.0
    return _sigmoid(A, x)


def e_softplus(A: Arith, x: float, beta: float = 1.0) -> Out:
    if beta == 0:
        return NAN
    if math.isinf(x):
        z_pos = (x > 0) == (beta > 0)
        return (INF if z_pos else 0.0) * (1.0 if beta > 0 else -1.0)
    z = _x(x, beta, "mul")
    return A.div(_softplus(A, z), A.pt(beta))


def e_log_sigmoid(A: Arith, x: float) -> Out:
    if math.isinf(x):
        return 0.0 if x > 0 else -INF
    return A.neg(_softplus(A, _exact(-x)))


def e_silu(A: Arith, x: float) -> Out:
    if math.isinf(x):
        return INF if x > 0 else 0.0
    return A.mul(A.pt(x), _sigmoid(A, x))


def e_gelu(A: Arith, x: float) -> Out:
    """x Phi(x) = (x / 2) erfc(-x / sqrt 2), with the exact normal CDF."""
    if math.isinf(x):
        return INF if x > 0 else 0.0
    z = A.div(A.pt(-x), A.sqrt(A.pt(2.0)))
    return A.scale2(A.mul(A.pt(x), A.erfc(z)), -1)


ELEMENTWISE: dict[str, Callable[..., Out]] = {
    "exp": e_exp,
    "log": e_log,
    "log1p": e_log1p,
    "expm1": e_expm1,
    "tanh": e_tanh,
    "sigmoid": e_sigmoid,
    "softplus": e_softplus,
    "log_sigmoid": e_log_sigmoid,
    "silu": e_silu,
    "gelu": e_gelu,
}


# -- row-wise oracles --------------------------------------------------------------


def _row_parts(A: Arith, row: Sequence[float]) -> tuple[list[mpfr | None], Iv, bool] | None:
    """Exact d_j = x_j - max (None for -inf entries), an enclosure of ``rest``, the sum of
    exp(d_j) over every finite entry but the first maximum, and whether rest > 0 (it is
    whenever such an entry exists, even where exp underflows MPFR's range). None when every
    entry is -inf. The caller has ruled out NaN and +inf."""
    finite = [v for v in row if v != -INF]
    if not finite:
        return None
    m = max(finite)
    top = row.index(m)
    d = [None if v == -INF else _x(v, m, "sub") for v in row]
    terms = [A.exp(A.pt(v)) for j, v in enumerate(d) if v is not None and j != top]
    zero = A.pt(0.0)
    return d, (A.fsum(terms) if terms else zero), bool(terms)


def r_softmax(A: Arith, row: Sequence[float]) -> list[Out]:
    if INF in row:
        return [NAN] * len(row)
    parts = _row_parts(A, row)
    if parts is None:
        return [NAN] * len(row)
    d, rest, _ = parts
    s = A.add(A.pt(1.0), rest)
    return [0.0 if v is None else A.div(A.exp(A.pt(v)), s) for v in d]


def r_log_softmax(A: Arith, row: Sequence[float]) -> list[Out]:
    if INF in row:
        return [NAN] * len(row)
    parts = _row_parts(A, row)
    if parts is None:
        return [NAN] * len(row)
    d, rest, positive = parts
    lse = A.log1p(rest)
    out: list[Out] = []
    for v in d:
        if v is None:
            out.append(-INF)
        elif v == 0 or not positive:
            out.append(A.neg(lse))
        else:  # d_j - lse with lse > 0, however small: Near keeps the side of d_j
            out.append(Near(v, -1, lse))
    return out


def r_logsumexp(A: Arith, row: Sequence[float]) -> Out:
    if INF in row:
        return INF
    parts = _row_parts(A, row)
    if parts is None:
        return -INF
    _d, rest, _ = parts
    m = max(v for v in row if v != -INF)
    return A.add(A.pt(m), A.log1p(rest))


def r_cross_entropy(A: Arith, row: Sequence[float], target: int) -> Out:
    if not 0 <= target < len(row) or INF in row:
        return NAN
    parts = _row_parts(A, row)
    if parts is None:
        return NAN
    d, rest, positive = parts
    dt = d[target]
    if dt is None:
        return INF  # the target has probability 0
    lse = A.log1p(rest)
    if dt == 0 or not positive:
        return lse
    return Near(_x(0.0, dt, "sub"), 1, lse)


def r_nll_loss(A: Arith, row: Sequence[float], target: int) -> Out:
    if not 0 <= target < len(row):
        return NAN
    v = row[target]
    if math.isinf(v):
        return -v
    return A.pt(-v)


ROWWISE: dict[str, Callable[..., list[Out]]] = {"softmax": r_softmax, "log_softmax": r_log_softmax}
ROW_REDUCE: dict[str, Callable[..., Out]] = {
    "logsumexp": r_logsumexp,
    "cross_entropy": r_cross_entropy,
    "nll_loss": r_nll_loss,
}


# -- element-wise losses -------------------------------------------------------------


def l_binary_cross_entropy(A: Arith, p: float, y: float) -> Out:
    """-(y log p + (1 - y) log(1 - p)) with 0 log 0 = 0; NaN unless p, y in [0, 1]."""
    if not (0 <= p <= 1 and 0 <= y <= 1):
        return NAN
    terms: list[Iv] = []
    if y != 0:
        if p == 0:
            return INF
        terms.append(A.mul(A.pt(y), A.neg(A.log(A.pt(p)))))
    if y != 1:
        if p == 1:
            return INF
        terms.append(A.mul(A.pt(_x(1.0, y, "sub")), A.neg(A.log(A.pt(_x(1.0, p, "sub"))))))
    return A.fsum(terms)


def _sign(v: float) -> float:
    return 0.0 if v == 0 else math.copysign(1.0, v)


def l_bce_with_logits(A: Arith, x: float, y: float) -> Out:
    """y softplus(-x) + (1 - y) softplus(x), as max(x, 0) - x y + log1p(exp(-|x|))."""
    if math.isinf(x) or math.isinf(y):
        # extended reals with 0 * inf = 0; softplus(+inf) = inf, softplus(-inf) = 0
        sp_neg = INF if x == -INF else (0.0 if x == INF else 1.0)  # only sign/zero matter
        sp_pos = INF if x == INF else (0.0 if x == -INF else 1.0)
        one_minus_y = -y if math.isinf(y) else (1.0 - y if y != 1 else 0.0)
        t1 = 0.0 if (y == 0 or sp_neg == 0) else _sign(y) * sp_neg * (INF if math.isinf(y) else 1.0)
        t2 = 0.0 if (one_minus_y == 0 or sp_pos == 0) else _sign(one_minus_y) * sp_pos * (
            INF if math.isinf(one_minus_y) else 1.0)
        return t1 + t2  # inf - inf is NaN
    if x >= 0:
        lin = _x(x, _x(1.0, y, "sub"), "mul")
        tail = A.log1p(A.exp(A.pt(-x)))
    else:
        lin = _x(-x, y, "mul")
        tail = A.log1p(A.exp(A.pt(x)))
    return tail if lin == 0 else Near(lin, 1, tail)


LOSSES: dict[str, Callable[..., Out]] = {
    "binary_cross_entropy": l_binary_cross_entropy,
    "binary_cross_entropy_with_logits": l_bce_with_logits,
}

_REDUCIBLE = {"binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss"}


# -- entry point -----------------------------------------------------------------------


def _reduce(outs: list[Out], how: str, A: Arith) -> Out:
    """Sum or mean of per-sample values (extended reals; NaN if any is NaN or inf - inf).

    Exact parts are summed exactly and the inexact ones as intervals; when some term is a
    :class:`Near` with a positive t and no inexact term can be negative, the total is again
    a Near, so that an exact total on a midpoint (a tie of a mean) is still decided."""
    if not outs:
        return NAN
    specials = [o for o in outs if isinstance(o, float)]
    if any(math.isnan(o) for o in specials):
        return NAN
    infs = {o for o in specials if math.isinf(o)}
    if infs:
        return NAN if len(infs) == 2 else infs.pop()
    exact = mpfr(0)
    inexact: list[Iv] = []
    strict = False
    for o in outs:
        if isinstance(o, float):
            exact = _x(exact, o, "add")
        elif isinstance(o, Near):
            exact = _x(exact, o.exact, "add")
            inexact.append(o.tiny if o.sign > 0 else A.neg(o.tiny))
            strict = strict or o.sign > 0
        elif o[0] == o[1]:
            exact = _x(exact, o[0], "add")
        else:
            inexact.append(o)
    n = mpfr(len(outs))
    rest = A.fsum(inexact) if inexact else A.pt(0.0)
    if strict and rest[0] >= 0:
        if how == "sum":
            return Near(exact, 1, rest)
        mean = _x(exact, n, "div")
        if _x(mean, n, "mul") == exact:  # the exact part of the mean is itself exact
            return Near(mean, 1, A.div(rest, A.pt(n)))
    total = A.add(A.pt(exact), rest)
    return total if how == "sum" else A.div(total, A.pt(n))


def reference(
    name: str,
    arrays: Sequence[npt.ArrayLike],
    fmt: str | object,
    params: dict[str, Any] | None = None,
) -> npt.NDArray[np.float64]:
    """Correctly rounded values of the built-in oracle ``name`` in ``fmt`` (float64
    carriers), for the same arguments ``oracles.evaluate`` takes. ``params`` may hold
    ``beta`` (softplus) and ``reduction`` (``none``/``mean``/``sum``, losses). Any NaN in
    an element's inputs (for row oracles: anywhere in the row) gives NaN."""
    f = _fmt(fmt)
    params = dict(params or {})
    reduction = str(params.pop("reduction", "none"))
    if reduction != "none" and name not in _REDUCIBLE:
        raise ValueError(f"{name} takes no reduction")
    if name in ELEMENTWISE or name in LOSSES:
        fn = ELEMENTWISE.get(name) or LOSSES[name]
        with np.errstate(invalid="ignore"):  # signalling NaNs (bfloat16 0x7f81) raise FE_INVALID
            cols = [np.asarray(a).astype(np.float64) for a in arrays]
        shape = cols[0].shape
        tasks = list(zip(*(c.ravel().tolist() for c in cols), strict=True))

        def one(t: tuple[float, ...]) -> Callable[[Arith], list[Out]]:
            if any(v != v for v in t):
                return lambda A: [NAN]
            return lambda A: [fn(A, *t, **params)]

        if reduction != "none":
            return np.array(_settle(lambda A: [_reduce([one(t)(A)[0] for t in tasks], reduction, A)], f)[0])
        flat = [_settle(one(t), f)[0] for t in tasks]
        return np.array(flat, dtype=np.float64).reshape(shape)

    if name in ROWWISE or name in ROW_REDUCE:
        with np.errstate(invalid="ignore"):
            data = np.asarray(arrays[0]).astype(np.float64)
        if data.ndim != 2:
            raise ValueError(f"{name} needs a 2-D array, got shape {data.shape}")
        rows = data.tolist()
        targets = np.asarray(arrays[1]).tolist() if len(arrays) > 1 else [None] * len(rows)

        if name in ROWWISE:
            rfn = ROWWISE[name]
            out = []
            for row in rows:
                if any(v != v for v in row):
                    out.append([NAN] * len(row))
                else:
                    out.append(_settle(lambda A, row=row: rfn(A, row, **params), f))
            return np.array(out, dtype=np.float64).reshape(data.shape)

        qfn = ROW_REDUCE[name]

        def row_out(row: list[float], t: Any) -> Callable[[Arith], list[Out]]:
            if any(v != v for v in row):
                return lambda A: [NAN]
            args = (row,) if t is None else (row, int(t))
            return lambda A: [qfn(A, *args, **params)]

        tasks_r = [row_out(r, t) for r, t in zip(rows, targets, strict=True)]
        if reduction != "none":
            return np.array(_settle(lambda A: [_reduce([c(A)[0] for c in tasks_r], reduction, A)], f)[0])
        return np.array([_settle(c, f)[0] for c in tasks_r], dtype=np.float64)

    raise KeyError(f"no MPFR reference for oracle {name!r}")
