"""What an oracle hands the judge: per output element, the truth in a compact exact form.

For each element the exact value y is one of: undefined (NaN), +-infinity (a pole or a
limit), or a finite real. We store

* ``want``: R(y), the correctly rounded value in the output format, as a float64 carrier;
* ``ulp_exp``: log2 of ulp(y) in the output format (:func:`oracles.rounding.ulp_exponent`
  of y, with the band below a power of two of :func:`oracles.ziv.binade_of`);
* ``hi + lo``: y / ulp(y) as a double-double (NaN for undefined, +-inf for infinite y).

Scaling by ulp(y) keeps the numbers small even where y overflows every format (the ULP
error of a finite result against an overflowing truth stays finite and meaningful), and
the double-double keeps the ULP error of a float64 result exact to about 2**-50 ULP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from mpmath import mp, mpf

__all__ = ["Reference"]


@dataclass(frozen=True, slots=True, eq=False)
class Reference:
    """Exact truth for an array of output elements (all four arrays share one shape)."""

    want: npt.NDArray[np.float64]
    hi: npt.NDArray[np.float64]
    lo: npt.NDArray[np.float64]
    ulp_exp: npt.NDArray[np.int32]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.want.shape)

    @property
    def size(self) -> int:
        return int(self.want.size)

    def ravel(self) -> Reference:
        return Reference(self.want.ravel(), self.hi.ravel(), self.lo.ravel(), self.ulp_exp.ravel())

    def reshape(self, shape: tuple[int, ...]) -> Reference:
        return Reference(
            self.want.reshape(shape), self.hi.reshape(shape), self.lo.reshape(shape),
            self.ulp_exp.reshape(shape),
        )

    def __getitem__(self, index: Any) -> Reference:
        return Reference(self.want[index], self.hi[index], self.lo[index], self.ulp_exp[index])

    @staticmethod
    def empty(shape: tuple[int, ...]) -> Reference:
        return Reference(
            np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(shape),
            np.zeros(shape, dtype=np.int32),
        )

    @staticmethod
    def concat(parts: Sequence[Reference]) -> Reference:
        return Reference(
            np.concatenate([p.want.ravel() for p in parts]),
            np.concatenate([p.hi.ravel() for p in parts]),
            np.concatenate([p.lo.ravel() for p in parts]),
            np.concatenate([p.ulp_exp.ravel() for p in parts]),
        )

    def equal(self, other: Reference) -> bool:
        """Bit-identical contents (NaN equal to NaN)."""
        mine: tuple[npt.NDArray[Any], ...] = (self.want, self.hi, self.lo, self.ulp_exp)
        theirs: tuple[npt.NDArray[Any], ...] = (other.want, other.hi, other.lo, other.ulp_exp)
        return all(
            np.array_equal(a, b, equal_nan=True)
            for a, b in zip(
                mine,
                theirs,
                strict=True,
            )
        )

    def exact(self, flat_index: int) -> mpf:
        """The exact value of one element, to about 106 bits (NaN/inf where y is)."""
        hi = float(self.hi.ravel()[flat_index])
        if hi != hi or hi in (np.inf, -np.inf):
            return mpf(hi)
        lo = float(self.lo.ravel()[flat_index])
        e = int(self.ulp_exp.ravel()[flat_index])
        with mp.workprec(128):
            return mp.ldexp(mp.fadd(hi, lo, exact=True), e)

    def exact_str(self, flat_index: int, digits: int = 21) -> str:
        """The exact value as a decimal string with ``digits`` significant digits."""
        v = self.exact(flat_index)
        if v != v:
            return "nan"
        if mp.isinf(v):
            return "inf" if v > 0 else "-inf"
        with mp.workprec(128):
            return str(mp.nstr(v, digits, min_fixed=-4, max_fixed=8, strip_zeros=False))
