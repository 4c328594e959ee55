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

Their gradients are vector-Jacobian products (registered with
:func:`oracles.gradients.gradient`), also exact: for ``W = var(x) + eps`` and a cotangent
``g``, ``d var / d x_j = 2 (x_j - m) / n`` gives

    (g^T J)_j = g_j / W - 2 (x_j - m) (sum_i g_i x_i) / (n W**2),

a rational function of the inputs, formed in integers and rounded once. Edges: a row with
NaN or an infinity is NaN throughout (as the forward). A constant row with ``eps = 0``
(``W = 0``) is NaN throughout too, although the forward there is ``+-inf``: near the row
``W`` vanishes like the square of the distance while the second term's numerator vanishes
like its first power only, so the VJP grows like ``1 / distance**3`` with a sign that
depends on the direction of approach: no limit, signed or not (the edge policy's "does
not exist"; the zero row is 0/0 already in the forward). With ``eps > 0`` every finite row has a finite gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from mpmath import mp, mpf

from oracles.gradients import gradient
from oracles.registry import Param, oracle
from suites.seeds.claims import Check, Claim, Seed, SeedImpl
from suites.seeds.exact import divide, quotient, scaled, to_fraction

__all__ = [
    "SEED",
    "d_variance_normalize_d_x",
    "d_variance_normalize_eps_d_x",
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


# -- gradients (vector-Jacobian products) ----------------------------------------------------

NAN = mpf("nan")
INF = mpf("inf")


def _vjp_extended(x: Sequence[mpf], g: Sequence[mpf], w: Fraction) -> list[mpf]:
    """The VJP for a cotangent with an infinite entry (never one the harness makes, but a
    derived oracle takes any): from the exact sign of each Jacobian entry, as the catalogue
    does it, ``0 * inf`` and ``+inf - inf`` are NaN and the finite terms do not matter."""
    n = len(x)
    xs = [to_fraction(v) for v in x]
    mean = sum(xs, Fraction(0)) / n
    out: list[mpf] = []
    for j in range(n):
        signs: set[int] = set()
        nan = False
        for i, gi in enumerate(g):
            if not mp.isinf(gi):
                continue
            # n W**2 J_ij = n W [i == j] - 2 x_i (x_j - m)
            entry = (n * w if i == j else 0) - 2 * xs[i] * (xs[j] - mean)
            if not entry:
                nan = True
                break
            signs.add((1 if entry > 0 else -1) * (1 if gi > 0 else -1))
        out.append(NAN if nan or len(signs) > 1 else INF * signs.pop())
    return out


def _variance_vjp(x: Sequence[mpf], g: Sequence[mpf], eps: float) -> list[mpf]:
    """``g^T J`` of ``x / (var(x) + eps)`` (see the module docstring), exact, one rounding.

    With ``x_i = a_i 2**s``, ``g_i = b_i 2**t``, ``Q = n sum a**2 - (sum a)**2``, ``P = sum a b``
    and ``eps = e / f``, everything is an integer once multiplied through: ``W = A / R`` with
    ``A = Q 2**2s f + n**2 e`` and ``R = n**2 f`` (both times ``2**-2s`` when ``s < 0``), and
    ``(g^T J)_j = 2**t R (b_j A - 2 P 2**2s f (n a_j - sum a)) / A**2``. A row of 65537
    entries then costs integer products, not Fraction normalisations."""
    n = len(x)
    if _nan_row(x) is not None or any(v != v for v in g):
        return [NAN] * n
    xs = scaled(x)
    s1 = xs.total
    q = n * xs.total_squares - s1 * s1
    e = to_fraction(eps)
    u = 2 * xs.shift
    up, down = (1 << u, 1) if u >= 0 else (1, 1 << -u)  # 2**2s = up / down
    a_big = q * up * e.denominator + n * n * e.numerator * down  # W = a_big / r
    r = n * n * e.denominator * down
    if a_big == 0:
        return [NAN] * n  # W = 0: a constant row without epsilon (module docstring)
    if any(mp.isinf(v) for v in g):
        return _vjp_extended(x, g, Fraction(a_big, r))
    gs = scaled(g)
    p = sum(a * b for a, b in zip(xs.ints, gs.ints, strict=True))
    b_coef = 2 * p * up * e.denominator
    t = gs.shift
    num_scale, den_scale = (r << t, a_big * a_big) if t >= 0 else (r, (a_big * a_big) << -t)
    return [
        quotient((b * a_big - b_coef * (n * a - s1)) * num_scale, den_scale)
        for a, b in zip(xs.ints, gs.ints, strict=True)
    ]


@gradient("variance_normalize", wrt="x")
def d_variance_normalize_d_x(x: Sequence[mpf], *, cotangent: Sequence[mpf]) -> list[mpf]:
    """g_j / var - 2 (x_j - m) (g . x) / (n var**2); NaN for a constant row (no limit) and
    for a row with NaN or an infinity."""
    return _variance_vjp(x, cotangent, 0.0)


@gradient("variance_normalize_eps", wrt="x")
def d_variance_normalize_eps_d_x(x: Sequence[mpf], *, cotangent: Sequence[mpf], eps: float = 1e-7) -> list[mpf]:
    """The same with var + eps for var: finite for every finite row when eps > 0."""
    return _variance_vjp(x, cotangent, eps)


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
            grad_note=(
                "A constant row has no gradient (its variance is 0 and the VJP has no limit"
                " there): NaN is the truth, and the backward pass's NaN is right."
            ),
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
                    quote="We are likely now free from NaNs",
                    meaning="the backward pass never gives NaN where the gradient of x / (var + 1e-7) is a number",
                    check=Check("variance_normalize_eps", "clean", ("unexpected_nan",), wrt="x"),
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
            grad_note=(
                "The backward pass multiplies x / (var + eps)**2 (TensorFlow divides by"
                " var + eps twice) by d var / d x_j = 2 (x_j - mean) / n. In float16"
                " keras.backend.epsilon() = 1e-7 is the subnormal 2**-23: on a constant row the"
                " first factor overflows and the second is 0, and 0 * inf = NaN where the truth is"
                " 1 / 1e-7 (which float16 rounds to inf). Rows whose squares overflow the format"
                " make the variance inf, and the gradient NaN or 0."
            ),
        ),
    ),
)
