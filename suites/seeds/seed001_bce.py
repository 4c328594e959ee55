"""Seed 001_4f2fa2ed57cb8440.txt: "Why is my TensorFlow Keras loss NaN?"

Example 1 of the document, ``custom_loss_with_log(y_true, y_pred)``: binary cross-entropy
with ``y_pred`` clipped to ``[1e-7, 1.0]`` by ``tf.clip_by_value`` and averaged with
``tf.reduce_mean``. (Examples 2 and 3 are about input scaling and gradient clipping in
training loops: no function to judge.)

The author means binary cross-entropy, the catalogue oracle ``binary_cross_entropy(p, y)``;
the clip changes that function, so we also register the modified function,
``clipped_binary_cross_entropy(p, y; lo, hi)`` = binary cross-entropy of
``min(max(p, lo), hi)``. Judged against the first, a clipped value shows where the fix
changes the answer (``missing_inf``); judged against the second, what is left is the
arithmetic.

Its gradients (:func:`d_clipped_binary_cross_entropy_d_p`, ``..._d_y``) are binary
cross-entropy's at the clipped point times the clip's derivative: 1 on ``[lo, hi]``, the
bounds included, and 0 outside (the policy at a clip bound is in :mod:`suites.seeds.clipping`).
So for ``p < 1e-7`` the truth of the clipped function's gradient is 0, where binary
cross-entropy's own is ``-y / p + (1 - y) / (1 - p)``: judged against the first, a zero
gradient is the clip working as written; against the second, it is the gradient lost.

Two adapters, because the oracle takes ``(p, y)`` and the seed ``(y_true, y_pred)``:

* :func:`custom_loss_with_log_per_sample` is the seed's expression without the final
  ``reduce_mean``, judged element by element (reduction ``none``);
* :func:`custom_loss_with_log_mean` calls the seed's function as written, so it is judged
  with ``reduction = "mean"``.
"""

from __future__ import annotations

from typing import Any

from mpmath import mp, mpf

from oracles.gradients import gradient, gradient_for
from oracles.registry import Param, get_oracle, oracle
from suites.seeds.claims import Check, Claim, Seed, SeedImpl
from suites.seeds.clipping import clip, inside

__all__ = [
    "SEED",
    "clipped_binary_cross_entropy",
    "custom_loss_with_log",
    "custom_loss_with_log_mean",
    "custom_loss_with_log_per_sample",
    "d_clipped_binary_cross_entropy_d_p",
    "d_clipped_binary_cross_entropy_d_y",
]

MODULE = "suites.seeds.seed001_bce"


def _tf() -> Any:
    import tensorflow as tf

    return tf


# -- the seed, as written ----------------------------------------------------------------


def custom_loss_with_log(y_true: Any, y_pred: Any) -> Any:
    """The document's function, verbatim (y_true first, reduce_mean over everything)."""
    tf = _tf()
    epsilon = 1e-7  # Small number to prevent taking log of zero
    y_pred_clipped = tf.clip_by_value(y_pred, epsilon, 1.0)  # Clipping to avoid 0 values
    loss = -tf.reduce_mean(y_true * tf.math.log(y_pred_clipped) + (1 - y_true) * tf.math.log(1 - y_pred_clipped))
    return loss


# -- adapters in the oracle's argument order (p, y) ---------------------------------------


def custom_loss_with_log_per_sample(p: Any, y: Any) -> Any:
    """-(y log(clip(p, 1e-7, 1)) + (1 - y) log(1 - clip(p, 1e-7, 1))) per element (the seed without reduce_mean)"""
    tf = _tf()
    y_true, y_pred = y, p
    epsilon = 1e-7
    y_pred_clipped = tf.clip_by_value(y_pred, epsilon, 1.0)
    return -(y_true * tf.math.log(y_pred_clipped) + (1 - y_true) * tf.math.log(1 - y_pred_clipped))


def custom_loss_with_log_mean(p: Any, y: Any) -> Any:
    """custom_loss_with_log(y, p): the seed's function as written (one mean over the batch)"""
    return custom_loss_with_log(y, p)


# -- the modified function ---------------------------------------------------------------


@oracle(
    "clipped_binary_cross_entropy",
    args=("p", "y"),
    params={
        "lo": Param("lo", 1e-7, doc="lower clip bound for p"),
        "hi": Param("hi", 1.0, doc="upper clip bound for p"),
    },
    reducible=True,
    domain="p real (clipped into [lo, hi]), 0 <= y <= 1 (NaN outside); 0 log 0 = 0",
)
def clipped_binary_cross_entropy(p: mpf, y: mpf, *, lo: float = 1e-7, hi: float = 1.0) -> mpf:
    """binary_cross_entropy(min(max(p, lo), hi), y): the loss the seed's clip computes."""
    q = min(max(p, mpf(lo)), mpf(hi))
    if not 0 <= q <= 1:
        return mpf("nan")
    bce = get_oracle("binary_cross_entropy").fn
    return mp.mpf(bce(q, y))


def _bce_gradient(wrt: str) -> Any:
    found = gradient_for("binary_cross_entropy", wrt)
    assert found is not None, "oracles.catalogue_gradients registers both gradients of binary_cross_entropy"
    return found.fn


@gradient("clipped_binary_cross_entropy", wrt="p")
def d_clipped_binary_cross_entropy_d_p(p: mpf, y: mpf, *, lo: float = 1e-7, hi: float = 1.0) -> mpf:
    """binary cross-entropy's d/dp at p on [lo, hi] (at a bound: from inside), 0 outside;
    NaN where the forward is NaN.

    Inside, the catalogue's derivative ``(p - y) / (p (1 - p))`` with its limits at the ends
    of [0, 1]: with the seed's hi = 1.0, p = 1 gives -1 for y = 1 and +inf for y < 1 (the
    pole of ``(1 - y) log(1 - p)``, approached from inside)."""
    if p != p or y != y:
        return mpf("nan")
    q = clip(p, lo, hi)
    if not (0 <= q <= 1 and 0 <= y <= 1):
        return mpf("nan")
    if not inside(p, lo, hi):
        return mpf(0)
    return mpf(_bce_gradient("p")(p, y))


@gradient("clipped_binary_cross_entropy", wrt="y")
def d_clipped_binary_cross_entropy_d_y(p: mpf, y: mpf, *, lo: float = 1e-7, hi: float = 1.0) -> mpf:
    """``log(1 - q) - log q`` at q = clip(p, lo, hi) (the clip does not involve y); NaN
    where the forward is NaN."""
    if p != p or y != y:
        return mpf("nan")
    return mpf(_bce_gradient("y")(clip(p, lo, hi), y))


_CLIP_CLAIM = Claim(
    quote="clipped the predicted probabilities to avoid such cases",
    meaning="with p clipped no probability gives an infinite or NaN loss",
    check=Check("binary_cross_entropy", "clean", ("unexpected_nan", "unexpected_inf", "inherent_inf")),
)

_CLIP_GRAD_CLAIM = Claim(
    quote="clipped the predicted probabilities to avoid such cases",
    meaning="the gradient with respect to p is never NaN or Inf where binary cross-entropy's is a number",
    check=Check("binary_cross_entropy", "clean", ("unexpected_nan", "unexpected_inf"), wrt="p"),
)

_CLIP_GRAD_NOTE = (
    "tf.clip_by_value passes no gradient where p is clipped: against binary cross-entropy that"
    " zero is a gradient lost (→0, or noInf where the true gradient overflows); against the"
    " clipped function it is the truth. At p = y = 1 the backward pass of (1 - y) * log(1 - p)"
    " is 0 * inf = NaN, as the forward pass is, while the truth is -1. In float16 1 / p"
    " overflows for small p, and with y = 0 the backward pass of y * log(p) is 0 * inf = NaN"
    " where the truth is 1 / (1 - p)."
)

SEED = Seed(
    file="001_4f2fa2ed57cb8440.txt",
    title="Why is my TensorFlow Keras loss NaN?",
    module=MODULE,
    oracles=("clipped_binary_cross_entropy",),
    impls=(
        SeedImpl(
            label="custom_loss_with_log, per sample",
            impl=f"{MODULE}:custom_loss_with_log_per_sample",
            code="-(y*log(clip(p, 1e-7, 1.0)) + (1-y)*log(1 - clip(p, 1e-7, 1.0)))",
            claims=(_CLIP_CLAIM, _CLIP_GRAD_CLAIM),
            grad_note=_CLIP_GRAD_NOTE,
        ),
        SeedImpl(
            label="custom_loss_with_log, as written",
            impl=f"{MODULE}:custom_loss_with_log_mean",
            code="-tf.reduce_mean(...) of the above",
            claims=(
                Claim(
                    quote="Produces NaN",
                    meaning="on the document's own example (y_pred 0/1 against the opposite labels) the loss is NaN",
                    check=Check("binary_cross_entropy", "defect", ("unexpected_nan",), inputs=("npz:",)),
                ),
            ),
            grad_note=_CLIP_GRAD_NOTE + " The mean divides every element's gradient by the batch size.",
        ),
        SeedImpl(
            label="keras.losses.binary_crossentropy (reference)",
            impl="keras.binary_cross_entropy",
            code="keras.losses.binary_crossentropy(y, p)",
            builtin=True,
        ),
    ),
)
