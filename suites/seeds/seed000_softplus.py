"""Seed 000_fea7bed7891ebed6.txt: "Why does Keras produce NaN loss with a custom Softplus
activation function?"

The document shows two TensorFlow layers and Keras' built-in activation:

* ``NaiveSoftplus.call``: ``tf.math.log(1.0 + tf.math.exp(x))``;
* ``StabilizedSoftplus.call``: ``tf.where(x < 20, tf.math.log(1.0 + tf.math.exp(x)), x)``;
* ``tf.keras.layers.Activation('softplus')``, i.e. ``keras.activations.softplus`` (the
  built-in ``keras.softplus``).

All three mean softplus(x) = log(1 + e**x), the catalogue oracle ``softplus``. The
stabilised layer's switch to ``x`` at 20 changes the function by log1p(e**-20) = 2.1e-9,
below half an ulp of 20 in every format the suite tests (float32's is 9.5e-7), so the
switch needs no oracle of its own: judged against ``softplus`` its ULP errors are its own.

We call the layers' ``call`` bodies, not the layers: ``Layer.__call__`` in Keras 3 casts
float16 inputs to the layer's float32 compute dtype, which would test float32 arithmetic
under a float16 label. The functions import TensorFlow only when called.
"""

from __future__ import annotations

from typing import Any

from suites.seeds.claims import Check, Claim, Seed, SeedImpl

__all__ = ["SEED", "naive_softplus", "stabilized_softplus"]

MODULE = "suites.seeds.seed000_softplus"


def _tf() -> Any:
    import tensorflow as tf

    return tf


def naive_softplus(x: Any) -> Any:
    """NaiveSoftplus.call: tf.math.log(1.0 + tf.math.exp(x))"""
    tf = _tf()
    return tf.math.log(1.0 + tf.math.exp(x))


def stabilized_softplus(x: Any) -> Any:
    """StabilizedSoftplus.call: tf.where(x < 20, tf.math.log(1.0 + tf.math.exp(x)), x)"""
    tf = _tf()
    return tf.where(x < 20, tf.math.log(1.0 + tf.math.exp(x)), x)


SEED = Seed(
    file="000_fea7bed7891ebed6.txt",
    title="Why does Keras produce NaN loss with a custom Softplus activation function?",
    module=MODULE,
    impls=(
        SeedImpl(
            label="NaiveSoftplus",
            impl=f"{MODULE}:naive_softplus",
            code="tf.math.log(1.0 + tf.math.exp(x))",
            claims=(
                Claim(
                    quote="NaN values propagate through the network",
                    meaning="the layer itself outputs NaN (the document blames exp(x) underflowing at very negative x)",
                    check=Check("softplus", "defect", ("unexpected_nan",)),
                ),
                Claim(
                    quote="underflow issues in the calculation of `exp(x)`",
                    meaning="very negative x lose the result: the output is 0 where softplus(x) is not",
                    check=Check("softplus", "defect", ("lost_to_zero",)),
                ),
                Claim(
                    quote="NaN values propagate through the network",
                    meaning="the backward pass gives NaN where softplus' gradient, the sigmoid, is a number",
                    check=Check("softplus", "defect", ("unexpected_nan",), wrt="x"),
                ),
            ),
            grad_note=(
                "Where exp(x) overflows, TensorFlow's backward pass of log(1 + exp(x)) multiplies"
                " the gradient of the log, 1 / (1 + exp(x)) = 0, by the derivative of exp, exp(x) ="
                " inf: 0 * inf = NaN, where the forward pass gave only Inf. The only NaN this"
                " implementation produces, forward or backward, comes from large positive x in"
                " the backward pass, not from exp(x) underflowing at very negative x (which loses"
                " the value to 0 instead)."
            ),
        ),
        SeedImpl(
            label="StabilizedSoftplus",
            impl=f"{MODULE}:stabilized_softplus",
            code="tf.where(x < 20, tf.math.log(1.0 + tf.math.exp(x)), x)",
            claims=(
                Claim(
                    quote="avoids NaN issues",
                    meaning="no NaN and no Inf wherever softplus(x) is finite",
                    check=Check("softplus", "clean", ("unexpected_nan", "unexpected_inf")),
                ),
                Claim(
                    quote="avoids NaN issues",
                    meaning="no NaN and no Inf in the gradient wherever softplus' gradient is a number",
                    check=Check("softplus", "clean", ("unexpected_nan", "unexpected_inf"), wrt="x"),
                ),
            ),
            grad_note=(
                "tf.where differentiates both branches: for x >= 20 the untaken branch"
                " log(1 + exp(x)) still receives the gradient 0, and its backward pass computes"
                " 0 * exp(x), NaN wherever exp(x) overflows, which tf.where's gradient then"
                " passes on (tensorflow/tensorflow#38349). The switch to x does not reach the"
                " backward pass at all: its gradient breaks wherever NaiveSoftplus' does. Masking"
                " the input of the untaken branch (tf.where(x < 20, x, 0) inside the exp) avoids"
                " the NaN above 20, though not in float16, whose exp(x) overflows below 20, in"
                " the branch that is taken."
            ),
        ),
        SeedImpl(
            label="Activation('softplus')",
            impl="keras.softplus",
            code="keras.activations.softplus(x)",
            builtin=True,
            claims=(
                Claim(
                    quote="designed to avoid this numerical instability issue",
                    meaning="no NaN, Inf or lost-to-zero, and accurate (we read 'acceptable' as within 4 ulp)",
                    check=Check("softplus", "clean", ("unexpected_nan", "unexpected_inf", "lost_to_zero"), max_ulp=4),
                ),
                Claim(
                    quote="designed to avoid this numerical instability issue",
                    meaning="its gradient has no NaN, Inf or lost-to-zero either",
                    check=Check("softplus", "clean", ("unexpected_nan", "unexpected_inf", "lost_to_zero"), wrt="x"),
                ),
            ),
        ),
    ),
)
