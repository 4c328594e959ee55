"""A faster exact evaluator for the built-in elementwise oracles, in MPFR (gmpy2).

:func:`oracles.ziv.settle` over mpmath is the definition of a correctly rounded reference;
it settles a few thousand elements a second, and results in the band just below a power
of two (tanh(1000), sigmoid(2000)) or exact ones (exp(0)) need 2,000 to 4,000 bits there.
:func:`settle_fast` computes the same :data:`~oracles.ziv.Settled` tuples for the ten
built-in elementwise forward oracles (exp, log, log1p, expm1, tanh, sigmoid, softplus,
log_sigmoid, silu, gelu) about 15 times faster on float32 inputs, and 50 times where ziv
needs 2,000+ bits (``benchmarks/bench_exact.py``). mpmath stays the definition: the
user's oracles, replaced built-ins and any format or parameter not covered here return
None, and the caller settles those with :func:`~oracles.ziv.settle` as before.

Design
------
* **Rigorous enclosures, not a radius heuristic.** Every formula is evaluated twice per
  operation, rounding down and rounding up (MPFR rounds each operation correctly in the
  direction asked), and composed so that the exact value y lies in ``[lo, hi]`` whatever
  the working precision: increasing functions map ends to ends, decreasing ones swap them.
* **An exact part and a small part.** Where y lies a hair beside a simple exact value c
  (a power of two, a rounding midpoint), the formula returns c and an enclosure of the
  correction t = y - c with its sign, evaluated without cancellation: exp(x) = 1 +
  expm1(x) for small x, tanh(x) = 1 - 2 / (e**2x + 1), silu(x) = x/2 + (x/2) tanh(x/2),
  softplus(x) = x + log1p(e**-x). The ends c + t are then formed exactly, so the side of c
  that y lies on is never lost to rounding, however small t is. A t below
  2**-(NEAR_POWER + 64) |c| (tanh(1e30), softplus(1e30)) is replaced by a stand-in
  2**-(NEAR_POWER + 72) |c| of its sign: no rounding boundary of any format, and no edge of
  the band below a power of two, lies between the two (c is +-1, 1/2, x or x/2, of at
  most 53 bits, so every boundary other than c itself is 2**-60 |c| away).
* **Settling** is ziv's rule applied to that enclosure: both ends round to the same value
  of the format, and have the same ulp exponent under :func:`oracles.ziv.binade_of` (the
  band of 2**-NEAR_POWER below each power of two counts as the power's binade).
  Otherwise the working precision doubles, from 128 bits; the enclosure must also be
  narrower than 2**-99 relative, so that ``hi + lo`` is good to that.
* **Ranges MPFR cannot hold** (gmpy2 keeps exponents within about 2**30): exp and expm1 of
  x > 2**16 are settled from an enclosure of log2 y = x / log 2 (y overflows every format;
  ``ulp_exp`` is floor(log2 y) - p + 1, saturated at ``ULP_EXP_MAX``), and results below
  2**-4096 in magnitude (exp(-5000), gelu(-100)) are +-0 with ``hi = lo = +-0``, which is
  what scaling them by the smallest ulp gives in float64.

Why this agrees with :func:`oracles.ziv.settle`
-----------------------------------------------
ziv settles the correct rounding of y (ties, to even, only where y is exactly a midpoint)
with the ulp exponent of :func:`~oracles.ziv.binade_of`, provided the oracle is accurate
to its radius and no y comes within 2**(16 - TIE_BITS) of a midpoint without being on it.
Both hold for the built-ins on inputs that are values of the output format (see the ziv
docstring); this module settles the same mathematical quantity from a proven enclosure, so
the two agree on ``want`` and ``ulp_exp``. (An input that is itself a midpoint of the
output format, a float32 1412 settled into bfloat16, broke the second until the catalogue
formed softplus(1412) = 1412 + e**-1412 and its kin as the exact x plus a correction that
keeps its side.) The conventions are copied, not re-derived: NaN gives ``(nan, nan, 0, 0)``;
an infinite result ``(+-inf, +-inf, 0, 0)``; an exact 0 is +0, never -0 (mpmath has no
signed zero: tanh(-0.0) is +0), while a tiny negative result rounds to -0; the special
values at +-inf inputs are those of :mod:`oracles.catalogue`. ``hi + lo`` is y / 2**ulp_exp
to 2**-98, closer than ziv's own (its v2 carries only the p + 60 bits of its precision).
The agreement is tested element by element in ``tests/ground_truth/test_exact.py``; a
formula here must change with its oracle, so each is registered for one oracle version
and one function, and anything else falls back to mpmath.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from oracles.errors import OracleError
from oracles.formats import Format
from oracles.registries import Registry
from oracles.registry import Oracle, function_target
from oracles.ziv import NEAR_POWER, ULP_EXP_MAX, Settled

__all__ = ["EXACT", "ExactFormula", "exact_formula", "settle_fast"]

Mpfr = Any  # gmpy2.mpfr; gmpy2 is optional and imported lazily, so it cannot name types

FIRST_PREC = 128  # bits: settles nearly every element at once, hi + lo included
LAST_PREC = 1 << 14  # the deepest built-in case known, tanh of a tiny power of two in float64, needs 2,048
HI_LO_BITS = 100  # the enclosure is narrower than 2**-(HI_LO_BITS - 1) relative: hi + lo is good to that

# Thresholds on x beyond which a formula need not evaluate anything (each formula says why)
FAR = 1500.0  # e**-1500 < 2**-2164: a correction below 2**-(NEAR_POWER + 64) of an O(1)..O(x) part
TINY = 4000.0  # e**-4000 < 2**-5770: a result below 2**-4096 even times 2**1074
HUGE = 65536.0  # exp(x) > 2**94548 overflows every format served; gmpy2's exponents end near 2**30
TINY_LOG2 = 4096  # |y| < 2**-TINY_LOG2: y / 2**ulp_exp is +-0 in float64 for the formats served


# -- what a formula returns -----------------------------------------------------------


class Near(NamedTuple):
    """y = c + t with c exact (None for 0) and t in [lo, hi], lo and hi of one strict sign."""

    c: Mpfr | None
    lo: Mpfr
    hi: Mpfr


class Beside(NamedTuple):
    """y = c + t with 0 < sign t < 2**-(NEAR_POWER + 64) |c|: settled from a stand-in."""

    c: Mpfr
    sign: int


class Huge(NamedTuple):
    """y = 2**q (``minus_one``: 2**q - 1) with q in [lo, hi], q > 2**16: y overflows."""

    lo: Mpfr
    hi: Mpfr
    minus_one: bool


class Tiny(NamedTuple):
    """0 < |y| < 2**-TINY_LOG2, of the given sign."""

    negative: bool


#: a float is an exact result (NaN, +-inf, 0, 1, 1/2, -1)
Value = float | Near | Beside | Huge | Tiny
FormulaFn = Callable[[float, "Arith", Mapping[str, float]], Value]


@dataclass(frozen=True, slots=True)
class ExactFormula:
    """The MPFR formula for the oracle ``oracle``, derived from the function ``target``
    (``module:qualname``) at ``oracle_version``; ``params`` are the parameters it takes
    (any value in the oracle's domain), all others must be absent."""

    oracle: str
    fn: FormulaFn
    target: str
    oracle_version: int = 1
    params: tuple[str, ...] = ()


#: the registered formulas, by oracle name
EXACT: Registry[ExactFormula] = Registry("exact formula", key=lambda f: f.oracle)


def exact_formula(
    oracle: str, *, oracle_version: int = 1, params: tuple[str, ...] = (), target: str | None = None,
    replace: bool = False,
) -> Callable[[FormulaFn], FormulaFn]:
    """Register an MPFR formula for ``oracle`` (default target: the built-in
    ``oracles.catalogue:<oracle>``); it applies only while the oracle's function and version
    are those it was written for."""

    def register(fn: FormulaFn) -> FormulaFn:
        EXACT.add(ExactFormula(oracle, fn, target or f"oracles.catalogue:{oracle}", oracle_version, params),
                  replace=replace)
        return fn

    return register


# -- MPFR, lazily ---------------------------------------------------------------------

_GMPY2: list[Any] = []  # [module] once imported, [None] when it is not installed


def _gmpy2() -> Any:
    if not _GMPY2:
        try:
            import gmpy2  # lazy: optional dependency (the test extra), never needed to import fpharness
        except ImportError:
            _GMPY2.append(None)
        else:
            _GMPY2.append(gmpy2)
    return _GMPY2[0]


class Arith:
    """Contexts at working precision ``wp``: ``dn`` rounds every operation down, ``up`` up.
    MPFR arguments that are Python floats are converted exactly (wp >= 53)."""

    def __init__(self, g: Any, wp: int) -> None:
        self.g = g
        self.wp = wp
        self.dn = g.context(precision=wp, round=g.RoundDown)
        self.up = g.context(precision=wp, round=g.RoundUp)
        self.one = self.dn.plus(1.0)
        self.minus_one = self.dn.plus(-1.0)
        self._wider: dict[int, tuple[Any, Any]] = {}

    def wider(self, extra: int) -> tuple[Any, Any]:
        """Down and up contexts ``extra`` bits wider, for an argument whose error a large
        condition number will magnify."""
        got = self._wider.get(extra)
        if got is None:
            g = self.g
            got = self._wider[extra] = (
                g.context(precision=self.wp + extra, round=g.RoundDown),
                g.context(precision=self.wp + extra, round=g.RoundUp),
            )
        return got

    def exact(self, x: float) -> Mpfr:
        return self.dn.plus(x)

    def neg(self, lo: Mpfr, hi: Mpfr) -> tuple[Mpfr, Mpfr]:
        return self.dn.minus(hi), self.dn.minus(lo)  # negation is exact

    def recip1p(self, e_lo: Mpfr, e_hi: Mpfr) -> tuple[Mpfr, Mpfr]:
        """1 / (1 + e) for e in [e_lo, e_hi], e >= 0 (decreasing in e)."""
        dn, up = self.dn, self.up
        return dn.div(1, up.add(1, e_hi)), up.div(1, dn.add(1, e_lo))

    def softplus_tail(self, z: Mpfr) -> tuple[Mpfr, Mpfr]:
        """log1p(e**z), increasing in z."""
        dn, up = self.dn, self.up
        return dn.log1p(dn.exp(z)), up.log1p(up.exp(z))

    def scale(self, h: Mpfr, lo: Mpfr, hi: Mpfr) -> tuple[Mpfr, Mpfr]:
        """h * [lo, hi] for an exact h of either sign."""
        dn, up = self.dn, self.up
        if h >= 0:
            return dn.mul(h, lo), up.mul(h, hi)
        return dn.mul(h, hi), up.mul(h, lo)

    def erfc(self, z_lo: Mpfr, z_hi: Mpfr) -> tuple[Mpfr, Mpfr]:
        """erfc on [z_lo, z_hi], 0 < z_lo (decreasing). MPFR's own below 5; above, where it
        costs 0.1 to 2 ms (z = 7 to 20), Laplace's continued fraction, 10x faster."""
        if z_lo < 5:
            return self.dn.erfc(z_hi), self.up.erfc(z_lo)
        # terms for wp bits, as measured for z in [5, 40] (the fraction converges slowly
        # near 5); doubled until the bounds are as narrow as z's own 2**-(wp + 16) allows
        z = float(z_lo)
        n = int(0.07 * self.wp**2 / z**2 + 1.5 * self.wp / z) + 12
        while True:
            lo, hi = self._erfc_fraction(z_hi, n, lower=True), self._erfc_fraction(z_lo, n, lower=False)
            if n > 1 << 16 or self.g.get_exp(self.up.sub(hi, lo)) <= self.g.get_exp(lo) - self.wp + 8:
                return lo, hi
            n *= 2

    def _erfc_fraction(self, z: Mpfr, n: int, *, lower: bool) -> Mpfr:
        """A lower (upper) bound of erfc(z), z > 0, from about n terms of sqrt(pi) e**z**2
        erfc(z) = 1 / (z + (1/2) / (z + (2/2) / (z + (3/2) / ...))). All its terms are
        positive, so its convergents alternate around the value, odd ones below and even
        ones above; evaluated from the inside out, a convergent is a bound when each level
        rounds against the one above it."""
        dn, up = self.wider(16)
        n += (n % 2 == 0) == lower  # odd for a lower bound, even for an upper one
        t = z
        for k in range(n, 0, -1):
            # level k - 1 = z + (k/2) / level k: level 0 up for a lower bound of 1 / level 0
            ctx = up if ((k - 1) % 2 == 0) == lower else dn
            t = ctx.add(z, ctx.div(k * 0.5, t))
        if lower:
            return dn.div(dn.mul(dn.exp(dn.minus(up.mul(z, z))), dn.div(1, t)), up.sqrt(up.const_pi()))
        return up.div(up.mul(up.exp(up.minus(dn.mul(z, z))), up.div(1, t)), dn.sqrt(dn.const_pi()))

    def divide(self, lo: Mpfr, hi: Mpfr, b: float) -> tuple[Mpfr, Mpfr]:
        """[lo, hi] / b for an exact non-zero b."""
        dn, up = self.dn, self.up
        if b > 0:
            return dn.div(lo, b), up.div(hi, b)
        return dn.div(hi, b), up.div(lo, b)


_ARITH: dict[int, Arith] = {}
_EXACT_CTX: dict[int, Any] = {}
_FORMAT_CTX: dict[tuple[int, int, int], Any] = {}


def _arith(g: Any, wp: int) -> Arith:
    a = _ARITH.get(wp)
    if a is None:
        a = _ARITH[wp] = Arith(g, wp)
    return a


def _exact_ctx(g: Any, bits: int) -> Any:
    """A context wide enough that an operation on values spanning ``bits`` does not round
    (widths in steps of 64 bits, so that few contexts are made)."""
    key = (bits + 63) // 64
    ctx = _EXACT_CTX.get(key)
    if ctx is None:
        ctx = _EXACT_CTX[key] = g.context(precision=64 * key)
    return ctx


def _span(g: Any, v: Mpfr) -> tuple[int, int]:
    """(exponent above the top bit, exponent of the lowest possible bit) of a non-zero v."""
    e = g.get_exp(v)
    return e, e - v.precision


def _exact_add(g: Any, a: Mpfr, b: Mpfr) -> Mpfr:
    if not a:
        return b
    if not b:
        return a
    (ta, la), (tb, lb) = _span(g, a), _span(g, b)
    return _exact_ctx(g, max(ta, tb) - min(la, lb) + 2).add(a, b)


# -- formats ----------------------------------------------------------------------------


def _served(fmt: Format) -> bool:
    """Formats whose smallest ulp is far above 2**-TINY_LOG2 and largest value far below
    2**HUGE, with at most 64 bits (the stand-in and FIRST_PREC assume a narrow format)."""
    return fmt.precision <= 64 and fmt.emin - fmt.precision + 1 >= -3000 and fmt.emax <= 3000


def _round(g: Any, v: Mpfr, fmt: Format) -> float:
    """v rounded to nearest-even into fmt: MPFR's emulation of the format (precision p, the
    format's exponent range, subnormalize), which rounds a subnormal once, not twice."""
    key = (fmt.precision, fmt.emin, fmt.emax)
    ctx = _FORMAT_CTX.get(key)
    if ctx is None:
        ctx = _FORMAT_CTX[key] = g.context(
            precision=fmt.precision, emin=fmt.emin - fmt.precision + 2, emax=fmt.emax + 1,
            subnormalize=True, round=g.RoundToNearest,
        )
    r = float(ctx.plus(v))
    if math.isinf(r) and not fmt.has_inf:
        return math.nan
    return r


def _binade_of(g: Any, v: Mpfr) -> int:
    """:func:`oracles.ziv.binade_of` of a finite non-zero v: one more than floor(log2|v|)
    when the top NEAR_POWER bits of its significand are all set (so never for a v of
    fewer bits)."""
    b = int(g.get_exp(v)) - 1
    if v.precision >= NEAR_POWER:
        m = abs(v.as_mantissa_exp()[0])
        bits = m.bit_length()
        if bits >= NEAR_POWER and m >= (1 << bits) - (1 << (bits - NEAR_POWER)):
            return b + 1
    return b


def _ulp_exp(g: Any, v: Mpfr, fmt: Format) -> int:
    if not v:
        return fmt.emin - fmt.precision + 1
    return max(_binade_of(g, v), fmt.emin) - fmt.precision + 1


def _hi_lo(g: Any, v: Mpfr, e: int) -> tuple[float, float]:
    """v / 2**e as a double-double, as ziv's _settled_value forms it (nearest, then the
    exact remainder to nearest)."""
    if 2.0**-900 < abs(f := float(v)) < 2.0**900 and -900 < e < 900:
        # where v, its rest v - f and both scaled by 2**-e are normal doubles, rounding
        # commutes with the scaling (and gmpy2's mul_2exp costs 10x a subtraction)
        rest = _exact_ctx(g, v.precision + 2).sub(v, f)
        lo = math.ldexp(r := float(rest), -e)
        if not rest or (2.0**-1000 < abs(r) and 2.0**-1000 < abs(lo)):
            return math.ldexp(f, -e), lo
    scaled = _exact_ctx(g, v.precision).mul_2exp(v, -e)
    hi = float(scaled)
    if not math.isfinite(hi):
        return hi, 0.0
    return hi, float(_exact_ctx(g, scaled.precision + 2).sub(scaled, hi))


# -- settling ---------------------------------------------------------------------------


def _settle_point(g: Any, v: Mpfr, fmt: Format) -> Settled:
    e = _ulp_exp(g, v, fmt)
    hi, lo = _hi_lo(g, v, e)
    return (_round(g, v, fmt), hi, lo, min(e, ULP_EXP_MAX))


def _settle_exact(g: Any, v: float, fmt: Format) -> Settled:
    if v != v:
        return (math.nan, math.nan, 0.0, 0)
    if math.isinf(v):
        return (v if fmt.has_inf else math.nan, v, 0.0, 0)
    if v == 0:
        return (0.0, 0.0, 0.0, fmt.emin - fmt.precision + 1)  # +0: mpmath's zero is unsigned
    return _settle_point(g, g.mpfr(v, 53), fmt)


def _settle_huge(g: Any, a: Arith, v: Huge, fmt: Format) -> Settled | None:
    """y = 2**q: binade floor(q), unless q is within 2**-1900 below an integer (the band;
    never for q = x / log 2 of a float x, but not assumed) or, for 2**q - 1, within 2**-64
    above one (2**q - 1 < 2**K needs q - K < 2**-K / log 2 with K > 2**16)."""
    ctx = _exact_ctx(g, max(v.lo.precision, v.hi.precision) + 64)
    k = int(ctx.floor(v.lo))
    if int(ctx.floor(v.hi)) != k:
        return None
    f_lo, f_hi = ctx.sub(v.lo, k), ctx.sub(v.hi, k)
    if ctx.sub(1, f_hi) < g.mul_2exp(g.mpfr(1), -1900) or (v.minus_one and f_lo < g.mul_2exp(g.mpfr(1), -64)):
        return None
    if g.get_exp(ctx.sub(f_hi, f_lo)) > -HI_LO_BITS - 4:
        return None
    e = k - fmt.precision + 1
    # y / 2**e = 2**(f + p - 1); for expm1 the 2**-q it lacks is far below 2**-HI_LO_BITS
    hi, lo = _hi_lo(g, a.dn.mul_2exp(a.dn.exp2(ctx.mul(ctx.add(f_lo, f_hi), 0.5)), fmt.precision - 1), 0)
    return (math.inf if fmt.has_inf else math.nan, hi, lo, min(e, ULP_EXP_MAX))


def _decide(g: Any, a: Arith, v: Value, fmt: Format) -> Settled | None:
    """The settled tuple of y, or None when the enclosure at this precision is too wide."""
    if isinstance(v, float):
        return _settle_exact(g, v, fmt)
    if isinstance(v, Tiny):
        zero = -0.0 if v.negative else 0.0
        return (zero, zero, zero, fmt.emin - fmt.precision + 1)
    if isinstance(v, Huge):
        return _settle_huge(g, a, v, fmt)
    if isinstance(v, Beside):
        stand_in = a.dn.mul_2exp(a.one if v.sign > 0 else a.minus_one, int(g.get_exp(v.c)) - NEAR_POWER - 72)
        return _settle_point(g, _exact_add(g, v.c, stand_in), fmt)
    c, t_lo, t_hi = v
    if c is not None and max(g.get_exp(t_lo), g.get_exp(t_hi)) < g.get_exp(c) - NEAR_POWER - 64:
        return _decide(g, a, Beside(c, 1 if t_lo > 0 else -1), fmt)
    lo = t_lo if c is None else _exact_add(g, c, t_lo)
    hi = t_hi if c is None else _exact_add(g, c, t_hi)
    want = _round(g, lo, fmt)
    if _round(g, hi, fmt) != want:
        return None
    e = _ulp_exp(g, lo, fmt)
    if _ulp_exp(g, hi, fmt) != e:
        return None
    if lo == hi:
        return _settle_point(g, lo, fmt)
    # either end is y to 2**-HI_LO_BITS relative once the enclosure is that narrow
    if g.get_exp(a.up.sub(hi, lo)) > g.get_exp(lo) - HI_LO_BITS:
        return None
    return (want, *_hi_lo(g, lo, e), min(e, ULP_EXP_MAX))


def _settle_one(g: Any, fn: FormulaFn, x: float, fmt: Format, params: Mapping[str, float]) -> Settled:
    if x != x:
        return (math.nan, math.nan, 0.0, 0)  # NaN in, NaN out, as evaluate does before the oracle
    wp = FIRST_PREC
    while True:
        a = _arith(g, wp)
        got = _decide(g, a, fn(x, a, params), fmt)
        if got is not None:
            return got
        if wp >= LAST_PREC:
            raise OracleError(f"exact evaluator: value at x = {x!r} did not settle at {wp} bits in {fmt}")
        wp *= 2


def _formula_for(oracle: Oracle, params: Mapping[str, Any]) -> ExactFormula | None:
    """The formula serving ``oracle`` with ``params``, checked as oracles.fast.tier_for
    checks a fast tier: the same name, function and oracle version."""
    if oracle.kind != "elementwise" or oracle.name not in EXACT:
        return None
    formula = EXACT.get(oracle.name)
    if function_target(oracle.fn) != formula.target or oracle.version != formula.oracle_version:
        return None
    for name, value in params.items():
        if name not in formula.params or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if not math.isfinite(value) or value == 0:
            return None
    return formula


def settle_fast(
    oracle: Oracle, xs: Sequence[float] | npt.NDArray[Any], fmt: Format, params: Mapping[str, Any],
) -> list[Settled] | None:
    """The settled references of ``oracle`` at the inputs ``xs`` in ``fmt``, identical in
    ``want`` and ``ulp_exp`` to :func:`oracles.ziv.settle` over the mpmath oracle; or None
    when this module does not serve the call (gmpy2 missing, an oracle without a formula
    here or replaced since, unexpected ``params``, a format wider than float64's range).
    ``params`` are the oracle's mathematical parameters (``beta`` of softplus; any finite
    non-zero value). Raises :class:`~oracles.errors.OracleError` if an element does not
    settle (no built-in input is known to come near)."""
    formula = _formula_for(oracle, params)
    if formula is None or not _served(fmt):
        return None
    g = _gmpy2()
    if g is None:
        return None
    with np.errstate(invalid="ignore"):  # signalling NaNs raise FE_INVALID on the cast
        values = np.asarray(xs, dtype=np.float64).ravel().tolist()
    numbers = {k: float(v) for k, v in params.items()}
    # a default global context for the duration: float() of an mpfr rounds in the global
    # context's direction, and a caller may have set another
    with g.context():
        return [_settle_one(g, formula.fn, x, fmt, numbers) for x in values]


# -- the formulas -------------------------------------------------------------------------
# Each returns the exact result of the catalogue function, as one of the Value kinds.
# Every MPFR operation is rounded down in ``a.dn`` and up in ``a.up``; Python floats enter
# exactly. Thresholds FAR / TINY / HUGE are justified where they are defined.


@exact_formula("exp")
def _exp(x: float, a: Arith, params: Mapping[str, float]) -> Value:
    if math.isinf(x):
        return math.inf if x > 0 else 0.0
    if x == 0:
        return 1.0
    if x > HUGE:
        return _log2_exp(x, a, minus_one=False)
    if x < -TINY:
        return Tiny(False)
    if abs(x) < 0.25:
        # e**x = 1 + expm1(x): which side of 1, and of the band below it, y is on
        return Near(a.one, a.dn.expm1(x), a.up.expm1(x))
    return Near(None, a.dn.exp(x), a.up.exp(x))


def _log2_exp(x: float, a: Arith, *, minus_one: bool) -> Huge:
    """log2 e**x = x / log 2, with ``log2(x)`` more bits so that its fraction keeps wp."""
    dn, up = a.wider(64 + max(0, int(a.g.get_exp(a.exact(x)))))
    return Huge(dn.div(x, up.const_log2()), up.div(x, dn.const_log2()), minus_one)


@exact_formula("log")
def _log(x: float, a: Arith, params: Mapping[str, float]) -> Value:
    if x < 0:
        return math.nan
    if x == 0:
        return -math.inf
    if math.isinf(x):
        return math.inf
    if x == 1:
        return 0.0
    return Near(None, a.dn.log(x), a.up.log(x))


@exact_formula("log1p")
def _log1p(x: float, a: Arith, params: Mapping[str, float]) -> Value:
    if x < -1:
        return math.nan
    if x == -1:
        return -math.inf
    if math.isinf(x):
        return math.inf
    if x == 0:
        return 0.0
    return Near(None, a.dn.log1p(x), a.up.log1p(x))


@exact_formula("expm1")
def _expm1(x: float, a: Arith, params: Mapping[str, float]) -> Value:
    if math.isinf(x):
        return math.inf if x > 0 else -1.0
    if x == 0:
        return 0.0
    if x > HUGE:
        return _log2_exp(x, a, minus_one=True)
    if x < -FAR:
        return Beside(a.minus_one, 1)
    if x < -1:
        # -1 + e**x: which side of the band below -1 y is on
        return Near(a.minus_one, a.dn.exp(x), a.up.exp(x))
    return Near(None, a.dn.expm1(x), a.up.expm1(x))


@exact_formula("tanh")
def _tanh(x: float, a: Arith, params: Mapping[str, float]) -> Value:
    if math.isinf(x):
        return 1.0 if x > 0 else -1.0
    if x == 0:
        return 0.0
    s = 1 if x > 0 else -1
    c = a.one if s > 0 else a.minus_one
    if abs(x) > FAR:
        return Beside(c, -s)
    if abs(x) >= 1:
        # |tanh x| = 1 - t, t = 2u / (1 + u), u = e**-2|x|, increasing in u
        dn, up = a.dn, a.up
        u_lo, u_hi = dn.exp(-2 * abs(x)), up.exp(-2 * abs(x))
        t_lo, t_hi = dn.div(dn.mul(u_lo, 2), up.add(1, u_lo)), up.div(up.mul(u_hi, 2), dn.add(1, u_hi))
        return Near(c, *(a.neg(t_lo, t_hi) if s > 0 else (t_lo, t_hi)))
    return Near(None, a.dn.tanh(x), a.up.tanh(x))


@exact_formula("sigmoid")
def _sigmoid(x: float, a: Arith, params: Mapping[str, float]) -> Value:
    if math.isinf(x):
        return 1.0 if x > 0 else 0.0
    if x == 0:
        return 0.5
    if x > FAR:
        return Beside(a.one, -1)
    if x < -TINY:
        return Tiny(False)
    if x >= 1:
        # 1 - 1 / (1 + e**x)
        return Near(a.one, *a.neg(*a.recip1p(a.dn.exp(x), a.up.exp(x))))
    if x <= -1:
        return Near(None, *a.recip1p(a.dn.exp(-x), a.up.exp(-x)))
    # 1/2 + tanh(x/2) / 2: which side of 1/2 y is on, even for a subnormal x
    h = a.dn.mul(x, 0.5)
    return Near(a.dn.mul(a.one, 0.5), a.dn.mul(a.dn.tanh(h), 0.5), a.up.mul(a.up.tanh(h), 0.5))


@exact_formula("softplus", params=("beta",))
def _softplus(x: float, a: Arith, params: Mapping[str, float]) -> Value:
    beta = params.get("beta", 1.0)
    if math.isinf(x):
        # the catalogue: softplus(+-inf * sign(beta)) / beta, inf / beta or 0 / beta (+0)
        return (math.inf if beta > 0 else -math.inf) if (x > 0) == (beta > 0) else 0.0
    z = _exact_ctx(a.g, 128).mul(x, beta)  # two 53-bit significands: exact
    if z > 0:
        # (z + log1p(e**-z)) / beta = x + log1p(e**-z) / beta, since z / beta = x exactly
        if z > FAR:
            return Beside(a.exact(x), 1 if beta > 0 else -1)  # log1p(e**-z) / |beta x| < e**-z / z
        return Near(a.exact(x), *a.divide(*a.softplus_tail(a.dn.minus(z)), beta))
    if z < -TINY:
        return Tiny(beta < 0)  # log1p(e**z) / |beta| < e**-4000 * 2**1074
    return Near(None, *a.divide(*a.softplus_tail(z), beta))


@exact_formula("log_sigmoid")
def _log_sigmoid(x: float, a: Arith, params: Mapping[str, float]) -> Value:
    if math.isinf(x):
        return 0.0 if x > 0 else -math.inf
    if x < 0:
        # -softplus(-x) = x - log1p(e**x): beside x for x << 0
        if x < -FAR:
            return Beside(a.exact(x), -1)
        return Near(a.exact(x), *a.neg(*a.softplus_tail(x)))
    if x > TINY:
        return Tiny(True)
    return Near(None, *a.neg(*a.softplus_tail(-x)))


@exact_formula("silu", oracle_version=2)
def _silu(x: float, a: Arith, params: Mapping[str, float]) -> Value:
    if math.isinf(x):
        return math.inf if x > 0 else 0.0
    if x == 0:
        return 0.0
    dn, up = a.dn, a.up
    if x > FAR:
        return Beside(a.exact(x), -1)
    if x < -TINY:
        return Tiny(True)
    if x >= 1:
        # x - x / (1 + e**x)
        s_lo, s_hi = a.recip1p(dn.exp(x), up.exp(x))
        return Near(a.exact(x), *a.neg(dn.mul(x, s_lo), up.mul(x, s_hi)))
    if x <= -1:
        # x / (1 + e**-x), no cancellation
        return Near(None, *a.scale(a.exact(x), *a.recip1p(dn.exp(-x), up.exp(-x))))
    # x/2 + (x/2) tanh(x/2) with x/2 exact: x/2 is a midpoint for an odd subnormal x, and the
    # correction, positive for either sign of x, says which way y rounds
    h = dn.mul(x, 0.5)
    return Near(h, *a.scale(h, dn.tanh(h), up.tanh(h)))


@exact_formula("gelu", oracle_version=2)
def _gelu(x: float, a: Arith, params: Mapping[str, float]) -> Value:
    if math.isinf(x):
        return math.inf if x > 0 else 0.0
    if x == 0:
        return 0.0
    if x >= 64:
        return Beside(a.exact(x), -1)  # (x/2) erfc(x / sqrt 2) <= (x/2) e**-2048
    if x < -80:
        return Tiny(True)  # |x/2| erfc(|x| / sqrt 2) < 2**-4600 for |x| <= 2**1024
    dn, up = a.dn, a.up
    # z = x / sqrt 2 with 16 more bits: erfc's condition number 2 z**2 + 2 reaches 2**12
    wdn, wup = a.wider(16)
    r_lo, r_hi = wdn.sqrt(2), wup.sqrt(2)
    z_lo, z_hi = (wdn.div(x, r_hi), wup.div(x, r_lo)) if x > 0 else (wdn.div(x, r_lo), wup.div(x, r_hi))
    h = dn.mul(x, 0.5)
    if x >= 1:
        # x - (x/2) erfc(x / sqrt 2); erfc decreases
        return Near(a.exact(x), *a.neg(*a.scale(h, *a.erfc(z_lo, z_hi))))
    if x <= -1:
        # (x/2) erfc(|x| / sqrt 2); negated at their own width, z's ends stay exact
        return Near(None, *a.scale(h, *a.erfc(wdn.minus(z_hi), wdn.minus(z_lo))))
    # x/2 + (x/2) erf(x / sqrt 2): the correction is positive, as for silu
    return Near(h, *a.scale(h, dn.erf(z_lo), up.erf(z_hi)))
