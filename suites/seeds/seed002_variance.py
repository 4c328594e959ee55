"""Seed 002_b83af14b7e011636.txt: "Why is my Tensorflow Keras model returning NaN outputs?"

The document's ``MyCustomLayer`` divides each row by its variance,
``inputs / tf.math.reduce_variance(inputs, axis=1)[:, tf.newaxis]``, and its revised
version adds ``tf.keras.backend.epsilon()`` (1e-7) to the variance. (The other examples are
whole models trained with ``fit``: no function to judge.)

Two user oracles, registered here with the user-oracle API:

``variance_normalize(x)``
    what the author meant: ``x_i / var(x)`` with the population variance (what
    ``tf.math.reduce_variance`` computes). A constant row has variance 0 and the formula
    divides by it: ``+-inf`` for ``x_i != 0`` and NaN for ``x_i == 0``. A row holding an
    infinity has no real variance: NaN throughout.
``variance_normalize_eps(x; eps)``
    the revised layer's function, ``x_i / (var(x) + eps)``: judged against it, the fix's
    arithmetic is separated from the fact that it changes the answer.

Both are computed exactly (:mod:`suites.seeds.exact`): the variance of a constant row must
be exactly 0, which no floating-point evaluation of the mean guarantees.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from mpmath import mp, mpf

from oracles.registry import Param, oracle
from suites.seeds.claims import Check, Claim, Seed, SeedImpl
from suites.seeds.exact import divide, scaled, to_fraction

__all__ = [
    "SEED",
    "my_custom_layer",
    "my_custom_layer_fixed",
    "variance_normalize",
    "variance_normalize_eps",
]

MODULE = "suites.seeds.seed002_variance"


def _tf() -> Any:
    import tensorflow as tf

    return tf


# -- the seed, as written (the layers' call bodies) ---------------------------------------


def my_custom_layer(inputs: Any) -> Any:
    """MyCustomLayer.call: inputs / tf.math.reduce_variance(inputs, axis=1)[:, tf.newaxis]"""
    tf = _tf()
    variance = tf.math.reduce_variance(inputs, axis=1)
    # Now, the problem. What if any of the variances are zero?
    normalized_inputs = inputs / variance[:, tf.newaxis]  # This will cause NaN
    return normalized_inputs


def my_custom_layer_fixed(inputs: Any) -> Any:
    """Revised MyCustomLayer.call: inputs / (variance[:, tf.newaxis] + tf.keras.backend.epsilon())"""
    tf = _tf()
    variance = tf.math.reduce_variance(inputs, axis=1)
    # Epsilon to prevent divide-by-zero
    normalized_inputs = inputs / (variance[:, tf.newaxis] + tf.keras.backend.epsilon())
    return normalized_inputs


# -- oracles ------------------------------------------------------------------------------


def _nan_row(x: Sequence[mpf]) -> list[mpf] | None:
    if any(mp.isinf(v) for v in x):
        return [mpf("nan")] * len(x)
    return None


def _variance(x: Sequence[mpf]) -> tuple[Fraction, list[int], int]:
    """The exact population variance and the row as integers ``a_i * 2**shift``."""
    s = scaled(x)
    n = len(x)
    q = n * s.total_squares - s.total * s.total  # n**2 * var / 2**(2 * shift), exactly
    return Fraction(q, n * n) * (Fraction(2) ** (2 * s.shift)), list(s.ints), s.shift


@oracle("variance_normalize", kind="rowwise", domain="rows of reals; a constant row divides by 0 (+-inf, 0/0 NaN); a row with an infinity is NaN")
def variance_normalize(x: Sequence[mpf]) -> list[mpf]:
    """x_i / var(x) over the last axis, with the population variance (as tf.math.reduce_variance)."""
    bad = _nan_row(x)
    if bad is not None:
        return bad
    var, ints, shift = _variance(x)
    unit = Fraction(2) ** shift
    return [divide(a * unit, var) for a in ints]


@oracle(
    "variance_normalize_eps",
    kind="rowwise",
    params={"eps": Param("eps", 1e-7, doc="added to the variance (keras.backend.epsilon() is 1e-7)")},
    domain="rows of reals; a row with an infinity is NaN",
)
def variance_normalize_eps(x: Sequence[mpf], *, eps: float = 1e-7) -> list[mpf]:
    """x_i / (var(x) + eps) over the last axis: the seed's revised layer."""
    bad = _nan_row(x)
    if bad is not None:
        return bad
    var, ints, shift = _variance(x)
    den = var + to_fraction(eps)
    unit = Fraction(2) ** shift
    return [divide(a * unit, den) for a in ints]


SEED = Seed(
    file="002_b83af14b7e011636.txt",
    title="Why is my Tensorflow Keras model returning NaN outputs?",
    module=MODULE,
    oracles=("variance_normalize", "variance_normalize_eps"),
    impls=(
        SeedImpl(
            label="MyCustomLayer",
            impl=f"{MODULE}:my_custom_layer",
            code="inputs / tf.math.reduce_variance(inputs, axis=1)[:, tf.newaxis]",
            claims=(
                Claim(
                    quote="This will cause NaN",
                    meaning="the document's rows (one constant) give NaN/Inf; is it the formula or the arithmetic?",
                    check=Check(
                        "variance_normalize", "defect", ("unexpected_nan", "unexpected_inf", "inherent_inf"), inputs=("npz:",)
                    ),
                ),
            ),
        ),
        SeedImpl(
            label="MyCustomLayer, revised",
            impl=f"{MODULE}:my_custom_layer_fixed",
            code="inputs / (variance[:, tf.newaxis] + tf.keras.backend.epsilon())",
            claims=(
                Claim(
                    quote="We are likely now free from NaNs",
                    meaning="the revised layer never outputs NaN where x / (var + 1e-7) is a number",
                    check=Check("variance_normalize_eps", "clean", ("unexpected_nan",)),
                ),
                Claim(
                    quote="Epsilon to prevent divide-by-zero",
                    meaning="on the document's rows every output is finite",
                    check=Check(
                        "variance_normalize_eps",
                        "clean",
                        ("unexpected_nan", "unexpected_inf", "inherent_inf"),
                        inputs=("npz:",),
                    ),
                ),
            ),
        ),
    ),
)
