"""A float64 fast tier in front of the mpmath oracles, rigorous or silent.

For the built-in elementwise oracles and softmax, log_softmax and logsumexp, a fast tier
computes each output in vectorised numpy float64 and decides the elements about which it
can *prove* enough (the methods of :class:`Decided`):

* ``bounded``: a value v with a proven relative error bound b, so y lies in
  ``[v - b|v|, v + b|v|]``; decided when both ends round to the same value of the output
  format and lie in the same binade (so ``want`` and ``ulp_exp`` are those of y);
* ``near``: y a hair beside an exact float64 v on a known side (exp(x) for tiny x beside
  1, tanh(x) for large x just inside 1, silu(x) ~ x/2 which is often a rounding midpoint);
* ``tiny`` / ``huge``: y provably underflows to +-0 / overflows (exp of large x, with the
  binade from log2 y in double-double), ``exact``, ``zero`` and ``special`` values.

Every other element, and every element of a row that is not entirely decided, goes to the
exact evaluators: MPFR (:mod:`oracles.exact`) for the built-in elementwise oracles when
gmpy2 is installed, the mpmath path (:func:`oracles.ziv.settle`) otherwise. The tier's
``want`` and ``ulp_exp`` are bit-identical to that path's, beside a power of two too: the
binade is the exact value's (:func:`oracles.ziv.binade_of`), which the tier knows from
the side it proves (:meth:`Decided.near`).

What the fast tier gives up: ``hi`` is ``v / ulp(y)`` and ``lo`` is 0, so ULP errors
measured against a fast-tier reference are accurate to the bound (about 1e-13 relative,
i.e. ~1e-13 ULP per ULP of error), not exact to 2**-100 like the mpmath double-double.
``want`` and ``ulp_exp`` are exact.

Error model (u = 2**-53, the unit roundoff of float64; every bound below is for results
and intermediates in float64's normal range, which each evaluator checks):

* a basic operation (+ - * /) rounds once: relative error <= u;
* a libm call (numpy's ``exp``, ``log``, ``log1p``, ``expm1``, ``tanh``): relative error
  <= :data:`LIBM` = 2**-48, i.e. 16 float64 ulps. glibc documents <= 2 ulps for these and
  numpy's AVX-512 SVML paths claim <= 4 ulps (numpy PR #19478); we take 4x the worst
  claim. ``math.erfc`` (glibc, documented <= 5 ulps): :data:`ERFC` = 2**-46 (64 ulps);
* an input error ``delta`` (relative) in the argument of f moves f by
  ``kappa * delta`` relative, with the condition number ``kappa = |t f'(t) / f(t)|``
  bounded per oracle below; second-order terms are below 2**-80 and covered by a 1%
  margin on every bound.

These claims are checked once per process against mpmath on a fixed sample
(:func:`libm_trusted`); if any function is off by more than 4 ulps the fast tier turns
itself off (:func:`tier_for` returns None) and everything goes to mpmath.

Thresholds shared by all evaluators: a value with ``|y| < 2**-960`` rounds to +-0 in every
format the tier serves (their half smallest subnormal is >= 2**-901), with
``ulp_exp = emin - p + 1``; such *tiny* elements are decided from a proven upper bound
on ``|y|`` and its sign, without a float64 value. The tier serves formats with
precision <= 24 and exponent range inside [-900, 900] (float16, bfloat16, float32): for
float64 output no float64 computation can decide a correctly rounded result.

Fast tiers register with :func:`fast_tier`, keyed by oracle name and carrying a version
that enters the cache key (:mod:`oracles.cache`). A tier applies only to the oracle
function it was derived for (module, qualname and oracle version must match), so an
oracle replaced with ``replace=True`` and user oracles simply have none.

Layout, lowest first: :mod:`~oracles.fast.float64` (the error model's constants and the
float64 building blocks), :mod:`~oracles.fast.decided` (turning proven facts into
reference arrays), :mod:`~oracles.fast.tier` (the record and its registry),
:mod:`~oracles.fast.vjp` (facts about a derivative d turned into facts about a gradient
reference g d / count), :mod:`~oracles.fast.elementwise` and :mod:`~oracles.fast.rowwise`
(the tiers themselves), :mod:`~oracles.fast.gradients` and
:mod:`~oracles.fast.gradient_rows` (the tiers of the built-in gradient oracles of
:mod:`oracles.catalogue_gradients`, ``∂exp/∂x`` and the rest), and this module on top:
choosing a tier (:func:`tier_for`) and running it (:func:`run_tier`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

# Imported for their registrations: each module's tiers add themselves to FAST_TIERS.
import oracles.fast.elementwise
import oracles.fast.gradient_rows
import oracles.fast.gradients
import oracles.fast.rowwise  # noqa: F401
from oracles.fast.decided import Decided
from oracles.fast.float64 import ERFC, F64, LIBM, Mask, Params, libm_trusted
from oracles.fast.tier import FAST_TIERS, FastTier, fast_tier
from oracles.formats import Format
from oracles.registry import Oracle, function_target

__all__ = [
    "ERFC",
    "FAST_TIERS",
    "LIBM",
    "Decided",
    "FastTier",
    "fast_tier",
    "libm_trusted",
    "run_tier",
    "tier_applies",
    "tier_for",
    "tier_version",
]


def tier_applies(fmt: Format) -> bool:
    """Whether a float64 computation can decide correct rounding into ``fmt`` at all."""
    return fmt.precision <= 24 and fmt.emin - fmt.precision + 1 >= -900 and fmt.emax <= 900


def tier_for(oracle: Oracle, fmt: Format) -> FastTier | None:
    """The fast tier serving ``oracle`` in ``fmt``, or None (user oracle, replaced oracle,
    float64 output, or a libm that failed :func:`libm_trusted`)."""
    if oracle.name not in FAST_TIERS or not tier_applies(fmt):
        return None
    tier = FAST_TIERS.get(oracle.name)
    if function_target(oracle.fn) != tier.target:
        return None
    if oracle.version != tier.oracle_version or not libm_trusted():
        return None
    return tier


def tier_version(oracle: Oracle, fmt: Format) -> int:
    """The version of the fast tier that would serve ``oracle`` in ``fmt`` (0: none)."""
    tier = tier_for(oracle, fmt)
    return 0 if tier is None else tier.version



def run_tier(tier: FastTier, oracle: Oracle, arrays: Sequence[npt.NDArray[Any]], fmt: Format,
             params: Params, into: tuple[F64, F64, F64, npt.NDArray[np.int32]] | None = None) -> tuple[Decided, Mask]:
    """Apply ``tier`` to one block of inputs: the partially filled output (flat) and, per
    task (element, or row for the row-wise kinds), whether it is decided. A row is decided
    only when every element in it is. ``into`` (elementwise oracles): the output's four
    arrays to fill in place (:class:`Decided`)."""
    xs = [np.asarray(a, dtype=np.float64) for a in arrays]
    if oracle.kind == "elementwise":
        flat = [a.ravel() for a in xs]
        out = Decided(flat[0].size, fmt, into)
        nan = np.isnan(flat[0])
        for a in flat[1:]:
            nan |= np.isnan(a)
        out.special(nan, math.nan)  # NaN in gives NaN out, as in the mpmath path
        with np.errstate(all="ignore"):
            tier.fn(flat, params, out)
        return out, out.done
    rows = xs[0].shape[0]
    size = xs[0].size if oracle.kind == "rowwise" else rows
    out = Decided(size, fmt)
    if xs[0].size:  # empty rows have no maximum; mpmath says what they mean
        with np.errstate(all="ignore"):
            tier.fn(xs, params, out)
    done = np.asarray(out.done.reshape(rows, -1).all(axis=1) if rows else np.zeros(0), dtype=bool)
    return out, done
