"""Exact arithmetic for the seed oracles that divide by sums of their inputs.

Variance normalisation and the ratio loss divide by quantities (a variance, a sum of
differences) that cancel to exactly zero on the inputs that matter most: a constant row,
predictions equal to the targets. Evaluated in floating point at any finite precision those
quantities come out as tiny non-zeros, and Ziv's loop in :mod:`oracles.evaluate` would chase
them to its precision limit. So the sums are formed exactly, as integers scaled by a common
power of two (every input is a binary float), and only the final quotient is rounded, at the
working precision the evaluator has set.

Infinite inputs follow the extended reals: ``inf - inf`` and ``inf / inf`` are NaN, a finite
value over an infinite one is 0, and a non-zero value over an exact zero is an infinity with
the numerator's sign (0 / 0 is NaN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from mpmath import mp, mpf

__all__ = [
    "Scaled",
    "divide",
    "extended_add",
    "extended_divide",
    "extended_sum",
    "quotient",
    "scaled",
    "to_fraction",
]

NAN = mpf("nan")
INF = mpf("inf")


def _man_exp(v: mpf) -> tuple[int, int]:
    """``(m, e)`` with ``v == m * 2**e`` exactly; ``mpf.man_exp`` drops the sign."""
    if not v:
        return (0, 0)
    man, exp = v.man_exp
    return (-int(man) if v < 0 else int(man)), int(exp)


def to_fraction(v: mpf | float | int) -> Fraction:
    """The exact value of a finite mpmath or binary float number."""
    if isinstance(v, mpf):
        man, exp = _man_exp(v)
        return Fraction(man) * (Fraction(2) ** exp)
    return Fraction(v)


@dataclass(frozen=True, slots=True)
class Scaled:
    """Finite values as integers ``ints[i] * 2**shift`` (exact)."""

    ints: tuple[int, ...]
    shift: int

    @property
    def total(self) -> int:
        """The exact sum, in units of ``2**shift``."""
        return sum(self.ints)

    @property
    def total_squares(self) -> int:
        """The exact sum of squares, in units of ``2**(2 * shift)``."""
        return sum(a * a for a in self.ints)


def scaled(values: Sequence[mpf]) -> Scaled:
    """Finite mpmath values as integers over one common power of two."""
    pairs = [_man_exp(v) for v in values]
    shift = min((e for m, e in pairs if m), default=0)
    return Scaled(tuple(m << (e - shift) if m else 0 for m, e in pairs), shift)


def _mpf_exact(n: int) -> mpf:
    # mpf(int) rounds to the working precision; widen it so that the conversion is exact
    # and the only rounding left is the one correctly rounded division
    with mp.workprec(max(n.bit_length(), 1) + 8):
        return mpf(n)


def quotient(num: int, den: int) -> mpf:
    """``num / den`` for integers, ``den != 0``, rounded once at the current precision
    (an exact zero is +0)."""
    if num == 0:
        return mpf(0)
    return mp.fdiv(_mpf_exact(num), _mpf_exact(den))


def divide(num: Fraction, den: Fraction) -> mpf:
    """``num / den`` rounded once at the current precision; x / 0 is +-inf (0 / 0 NaN)."""
    if den == 0:
        if num == 0:
            return NAN
        return INF if num > 0 else -INF
    return quotient(num.numerator * den.denominator, num.denominator * den.numerator)


def extended_sum(values: Sequence[mpf]) -> mpf | Fraction:
    """The exact sum of finite values as a Fraction; +-inf or NaN when infinities occur."""
    pos = any(mp.isinf(v) and v > 0 for v in values)
    neg = any(mp.isinf(v) and v < 0 for v in values)
    if pos and neg:
        return NAN
    if pos:
        return INF
    if neg:
        return -INF
    s = scaled(values)
    return Fraction(s.total) * (Fraction(2) ** s.shift)


def extended_divide(num: mpf | Fraction, den: mpf | Fraction) -> mpf:
    """Division in the extended reals (see the module docstring)."""
    if (isinstance(num, mpf) and num != num) or (isinstance(den, mpf) and den != den):
        return NAN
    num_inf = isinstance(num, mpf) and bool(mp.isinf(num))
    den_inf = isinstance(den, mpf) and bool(mp.isinf(den))
    if num_inf and den_inf:
        return NAN
    if den_inf:
        return mpf(0)
    if num_inf:
        assert isinstance(num, mpf)
        d = den if isinstance(den, Fraction) else to_fraction(den)
        if d == 0:
            return num
        return num if d > 0 else -num
    n = num if isinstance(num, Fraction) else to_fraction(num)
    d = den if isinstance(den, Fraction) else to_fraction(den)
    return divide(n, d)


def extended_add(a: mpf | Fraction, b: mpf | Fraction) -> mpf | Fraction:
    """``a + b`` in the extended reals: exact for finite values, IEEE rules otherwise."""
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return a + b
    fa = a if isinstance(a, mpf) else mpf(0)
    fb = b if isinstance(b, mpf) else mpf(0)
    # at least one is an infinity or NaN: a finite partner does not change the outcome
    return fa + fb
