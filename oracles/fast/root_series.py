"""A derivative beside its root, from its Taylor series about the root, with a proven bound.

Where a function d has a simple root x0 (gelu' at -0.7518, silu' at -1.2785), its float64
evaluation as a sum of terms cancels: the terms' libm errors are absolute, so relative to
|d| they grow without bound as x -> x0, and the tiers' generic bound left about 360,000
float32 inputs beside gelu's root (15,000 beside silu's) to the exact evaluator, 29 of the
291 CPU seconds of an exhaustive float32 gelu' run. Written as

    d(x0 + h) = h (c_1 + c_2 h + ... + c_N h**(N-1)) + R,    |h| <= width,

the value is a product of h and a polynomial that stays near c_1 = d'(x0) != 0, so its
relative error is a few units of roundoff however close x is to the root:

* h = (x - x0_hi) - x0_lo with x0 = x0_hi + x0_lo + r: the first subtraction is exact
  (Sterbenz: x and x0_hi lie within a factor 2 of each other), the second rounds once (u),
  and r (|r| <= 2**-106 |x0|) is at most ``rho`` = |r| / |x0 - x0_hi| of any |x - x0|, since
  x0_hi is the float64 nearest x0;
* Horner with the coefficients rounded to float64: (2N - 1) u of sum |c_k| |h|**(k-1), at
  most S = sum |c_k| width**(k-1), against |P| >= L = |c_1| - sum_{k>1} |c_k| width**(k-1);
* P read at the rounded h: |P(h~) - P(h)| <= eps_h |h| |P'|, at most
  eps_h sum (k - 1) |c_k| width**(k-1), relative to L;
* the product h P rounds once (u);
* the remainder: |R| <= tail |h|**(N+1), with ``tail`` the caller's bound on
  |d**(N+1)| / (N+1)! over the window, so relative to |d| >= |h| (L - tail width**N) it is
  T = tail width**N / (L - tail width**N).

``bound`` is their sum times MARGIN (which covers the second-order products). The
coefficients are computed once per process in mpmath at 200 bits; their own error is
below 2**-190 relative, far inside MARGIN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpmath import mp, mpf

from oracles.fast.float64 import F64, MARGIN, Mask, U

__all__ = ["RootSeries", "derivative", "horner", "multiply", "root_series", "subtract"]


@dataclass(frozen=True)
class RootSeries:
    """d near its root: ``value(x)`` is within ``bound`` of d(x), relative, where ``covers(x)``."""

    x0_hi: float
    x0_lo: float
    width: float
    coeffs: tuple[float, ...]  # c_1 .. c_N, rounded to float64
    bound: float

    def covers(self, x: F64) -> Mask:
        with np.errstate(invalid="ignore"):  # inf - inf: NaN, outside
            return np.abs(x - self.x0_hi) <= self.width

    def value(self, x: F64) -> F64:
        h = x - self.x0_hi
        h -= self.x0_lo
        p = np.full_like(h, self.coeffs[-1])
        for c in self.coeffs[-2::-1]:
            p *= h
            p += c
        p *= h
        return p


def root_series(x0: mpf, coeffs: Sequence[mpf], tail: mpf, width: float) -> RootSeries:
    """The series of d about its simple root ``x0`` (at least 200 bits), from its Taylor
    coefficients c_1 .. c_N (``coeffs``, d(x0 + h) = sum c_k h**k + R) and a bound ``tail``
    on |R| / |h|**(N+1) for |h| <= ``width``; raises ValueError where they prove no useful
    bound (the window too wide for the series)."""
    with mp.workprec(max(mp.prec, 200)):
        return _series(x0, coeffs, tail, width)


def _series(x0: mpf, coeffs: Sequence[mpf], tail: mpf, width: float) -> RootSeries:
    n = len(coeffs)
    x0_hi = float(x0)
    x0_lo = float(x0 - x0_hi)
    r = abs(x0 - x0_hi - x0_lo)
    lo, hi = sorted((x0_hi / 2, x0_hi * 2))
    if not lo <= x0_hi - width < x0_hi + width <= hi:
        raise ValueError(f"width {width} leaves the factor-2 range of the root {x0_hi}")
    rho = r / abs(x0 - x0_hi) if r else mpf(0)
    w = mpf(width)
    rest = sum(abs(c) * w ** k for k, c in enumerate(coeffs[1:], start=1))
    low = abs(coeffs[0]) - rest
    big = abs(coeffs[0]) + rest
    t_abs = tail * w ** n
    if not (low > 0 and low - t_abs > 0):
        raise ValueError(f"the series about {x0_hi} does not stay clear of 0 within {width}")
    eps_h = U * (1 + rho) + rho
    eps_p = (2 * n - 1) * U * 1.0001 * big / low
    eps_p += eps_h * sum((k - 1) * abs(c) * w ** (k - 1) for k, c in enumerate(coeffs, start=1)) / low
    trunc = t_abs / (low - t_abs)
    bound = float((eps_h + eps_p + U + trunc) * MARGIN)
    return RootSeries(x0_hi, x0_lo, width, tuple(float(c) for c in coeffs), bound)


# -- polynomials with mpmath coefficients (lowest power first), for the callers' derivatives


def derivative(a: Sequence[mpf]) -> list[mpf]:
    return [i * a[i] for i in range(1, len(a))] or [mpf(0)]


def multiply(a: Sequence[mpf], b: Sequence[mpf]) -> list[mpf]:
    out = [mpf(0)] * (len(a) + len(b) - 1)
    for i, ai in enumerate(a):
        for j, bj in enumerate(b):
            out[i + j] += ai * bj
    return out


def subtract(a: Sequence[mpf], b: Sequence[mpf]) -> list[mpf]:
    n = max(len(a), len(b))
    return [(a[i] if i < len(a) else mpf(0)) - (b[i] if i < len(b) else mpf(0)) for i in range(n)]


def horner(a: Sequence[Any], x: Any) -> Any:
    """a(x), for mpf or mpmath interval (iv) arguments alike."""
    r = a[-1]
    for c in a[-2::-1]:
        r = r * x + c
    return r
