"""TensorFlow (``tf.math``, ``tf.nn``) and Keras 3 on TensorFlow (``keras.activations``,
``keras.ops``, ``keras.losses``), as users call them.

Both take the same ``tf.Tensor`` inputs (see :class:`harness.frameworks.adapters.KerasBackend`).
Pinned here:

* neither framework's softplus takes ``beta``; with beta != 1 we compute
  ``softplus(beta * x) / beta`` with beta in the input's dtype, as a user would;
* Keras losses take ``y_true`` first and average over the last axis, so they are called on
  ``(n, 1)`` tensors to get one value per element, then reshaped back;
* ``keras.losses.binary_crossentropy`` clips probabilities to ``[eps, 1 - eps]`` with
  ``keras.config.epsilon()`` (1e-7): that is Keras's behaviour and is kept;
* ``keras.activations.gelu`` defaults to the tanh approximation; the oracle is the exact
  erf form, so it is called with ``approximate=False`` (likewise ``tf.nn.gelu``).

Mean and sum use the framework's own ``reduce_mean``/``reduce_sum`` (``keras.ops.mean``/
``sum`` for Keras) of the per-sample values.
"""

from __future__ import annotations

from typing import Any

from harness.frameworks.adapters import get_backend
from harness.frameworks.registry import builtin

__all__: list[str] = []


def _tf() -> Any:
    import tensorflow as tf

    return tf


def _keras() -> Any:
    # the adapter chose the backend; this import finds keras already loaded by it

    return get_backend("keras")._load()


def _tf_reduce(per_sample: Any, reduction: str) -> Any:
    tf = _tf()
    if reduction == "mean":
        return tf.reduce_mean(per_sample)
    if reduction == "sum":
        return tf.reduce_sum(per_sample)
    return per_sample


def _keras_reduce(per_sample: Any, reduction: str) -> Any:
    ops = _keras().ops
    if reduction == "mean":
        return ops.mean(per_sample)
    if reduction == "sum":
        return ops.sum(per_sample)
    return per_sample


def _keras_per_element(loss: Any, y_true: Any, y_pred: Any, **kwargs: Any) -> Any:
    """A Keras loss (mean over the last axis) evaluated per element: called on (n, 1)
    columns, then given the input's shape back."""
    ops = _keras().ops
    shape = ops.shape(y_pred)
    out = loss(ops.reshape(y_true, (-1, 1)), ops.reshape(y_pred, (-1, 1)), **kwargs)
    return ops.reshape(out, shape)


# == TensorFlow =============================================================================


@builtin("tensorflow.exp", oracle="exp")
def tf_exp(x: Any) -> Any:
    """tf.math.exp(x)"""
    return _tf().math.exp(x)


@builtin("tensorflow.log", oracle="log")
def tf_log(x: Any) -> Any:
    """tf.math.log(x)"""
    return _tf().math.log(x)


@builtin("tensorflow.log1p", oracle="log1p")
def tf_log1p(x: Any) -> Any:
    """tf.math.log1p(x)"""
    return _tf().math.log1p(x)


@builtin("tensorflow.expm1", oracle="expm1")
def tf_expm1(x: Any) -> Any:
    """tf.math.expm1(x)"""
    return _tf().math.expm1(x)


@builtin("tensorflow.tanh", oracle="tanh")
def tf_tanh(x: Any) -> Any:
    """tf.math.tanh(x)"""
    return _tf().math.tanh(x)


@builtin("tensorflow.sigmoid", oracle="sigmoid")
def tf_sigmoid(x: Any) -> Any:
    """tf.math.sigmoid(x)"""
    return _tf().math.sigmoid(x)


@builtin("tensorflow.softplus", oracle="softplus")
def tf_softplus(x: Any, *, beta: float = 1.0) -> Any:
    """tf.math.softplus(x) (with beta != 1: tf.math.softplus(beta * x) / beta)"""
    tf = _tf()
    if beta == 1.0:
        return tf.math.softplus(x)
    b = tf.constant(beta, dtype=x.dtype)
    return tf.math.softplus(b * x) / b


@builtin("tensorflow.log_sigmoid", oracle="log_sigmoid")
def tf_log_sigmoid(x: Any) -> Any:
    """tf.math.log_sigmoid(x)"""
    return _tf().math.log_sigmoid(x)


@builtin("tensorflow.silu", oracle="silu")
def tf_silu(x: Any) -> Any:
    """tf.nn.silu(x)"""
    return _tf().nn.silu(x)


@builtin("tensorflow.gelu", oracle="gelu")
def tf_gelu(x: Any) -> Any:
    """tf.nn.gelu(x, approximate=False)"""
    return _tf().nn.gelu(x, approximate=False)


@builtin("tensorflow.softmax", oracle="softmax")
def tf_softmax(x: Any) -> Any:
    """tf.nn.softmax(x, axis=-1)"""
    return _tf().nn.softmax(x, axis=-1)


@builtin("tensorflow.log_softmax", oracle="log_softmax")
def tf_log_softmax(x: Any) -> Any:
    """tf.nn.log_softmax(x, axis=-1)"""
    return _tf().nn.log_softmax(x, axis=-1)


@builtin("tensorflow.reduce_logsumexp", oracle="logsumexp")
def tf_reduce_logsumexp(x: Any) -> Any:
    """tf.math.reduce_logsumexp(x, axis=-1)"""
    return _tf().math.reduce_logsumexp(x, axis=-1)


@builtin("tensorflow.sigmoid_cross_entropy_with_logits", oracle="binary_cross_entropy_with_logits")
def tf_sigmoid_cross_entropy_with_logits(x: Any, y: Any, *, reduction: str = "none") -> Any:
    """tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=x)"""
    return _tf_reduce(_tf().nn.sigmoid_cross_entropy_with_logits(labels=y, logits=x), reduction)


@builtin("tensorflow.sparse_softmax_cross_entropy_with_logits", oracle="cross_entropy")
def tf_sparse_softmax_cross_entropy_with_logits(logits: Any, target: Any, *, reduction: str = "none") -> Any:
    """tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits)"""
    tf = _tf()
    return _tf_reduce(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits), reduction)


@builtin("tensorflow.softmax_cross_entropy_with_logits", oracle="cross_entropy")
def tf_softmax_cross_entropy_with_logits(logits: Any, target: Any, *, reduction: str = "none") -> Any:
    """tf.nn.softmax_cross_entropy_with_logits(labels=tf.one_hot(target, width, dtype=logits.dtype), logits=logits)"""
    tf = _tf()
    labels = tf.one_hot(target, tf.shape(logits)[-1], dtype=logits.dtype)
    return _tf_reduce(tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits), reduction)


@builtin("tensorflow.nll_loss", oracle="nll_loss")
def tf_nll_loss(logp: Any, target: Any, *, reduction: str = "none") -> Any:
    """-tf.gather(logp, target, axis=1, batch_dims=1)"""
    tf = _tf()
    return _tf_reduce(-tf.gather(logp, target, axis=1, batch_dims=1), reduction)


# == Keras 3 ================================================================================


@builtin("keras.exp", oracle="exp")
def keras_exp(x: Any) -> Any:
    """keras.ops.exp(x)"""
    return _keras().ops.exp(x)


@builtin("keras.log", oracle="log")
def keras_log(x: Any) -> Any:
    """keras.ops.log(x)"""
    return _keras().ops.log(x)


@builtin("keras.log1p", oracle="log1p")
def keras_log1p(x: Any) -> Any:
    """keras.ops.log1p(x)"""
    return _keras().ops.log1p(x)


@builtin("keras.expm1", oracle="expm1")
def keras_expm1(x: Any) -> Any:
    """keras.ops.expm1(x)"""
    return _keras().ops.expm1(x)


@builtin("keras.tanh", oracle="tanh")
def keras_tanh(x: Any) -> Any:
    """keras.activations.tanh(x)"""
    return _keras().activations.tanh(x)


@builtin("keras.sigmoid", oracle="sigmoid")
def keras_sigmoid(x: Any) -> Any:
    """keras.activations.sigmoid(x)"""
    return _keras().activations.sigmoid(x)


@builtin("keras.softplus", oracle="softplus")
def keras_softplus(x: Any, *, beta: float = 1.0) -> Any:
    """keras.activations.softplus(x) (with beta != 1: keras.activations.softplus(beta * x) / beta)"""
    keras = _keras()
    if beta == 1.0:
        return keras.activations.softplus(x)
    b = keras.ops.convert_to_tensor(beta, dtype=x.dtype)
    return keras.activations.softplus(b * x) / b


@builtin("keras.log_sigmoid", oracle="log_sigmoid")
def keras_log_sigmoid(x: Any) -> Any:
    """keras.ops.log_sigmoid(x)"""
    return _keras().ops.log_sigmoid(x)


@builtin("keras.silu", oracle="silu")
def keras_silu(x: Any) -> Any:
    """keras.activations.silu(x)"""
    return _keras().activations.silu(x)


@builtin("keras.gelu", oracle="gelu")
def keras_gelu(x: Any) -> Any:
    """keras.activations.gelu(x, approximate=False)"""
    return _keras().activations.gelu(x, approximate=False)


@builtin("keras.softmax", oracle="softmax")
def keras_softmax(x: Any) -> Any:
    """keras.activations.softmax(x, axis=-1)"""
    return _keras().activations.softmax(x, axis=-1)


@builtin("keras.log_softmax", oracle="log_softmax")
def keras_log_softmax(x: Any) -> Any:
    """keras.activations.log_softmax(x, axis=-1)"""
    return _keras().activations.log_softmax(x, axis=-1)


@builtin("keras.logsumexp", oracle="logsumexp")
def keras_logsumexp(x: Any) -> Any:
    """keras.ops.logsumexp(x, axis=-1)"""
    return _keras().ops.logsumexp(x, axis=-1)


@builtin("keras.binary_cross_entropy", oracle="binary_cross_entropy")
def keras_binary_cross_entropy(p: Any, y: Any, *, reduction: str = "none") -> Any:
    """keras.losses.binary_crossentropy(y, p) on (n, 1) columns (clips p with keras.config.epsilon())"""
    keras = _keras()
    return _keras_reduce(_keras_per_element(keras.losses.binary_crossentropy, y, p), reduction)


@builtin("keras.binary_cross_entropy_from_logits", oracle="binary_cross_entropy_with_logits")
def keras_binary_cross_entropy_from_logits(x: Any, y: Any, *, reduction: str = "none") -> Any:
    """keras.losses.binary_crossentropy(y, x, from_logits=True) on (n, 1) columns"""
    keras = _keras()
    per = _keras_per_element(keras.losses.binary_crossentropy, y, x, from_logits=True)
    return _keras_reduce(per, reduction)


@builtin("keras.sparse_categorical_cross_entropy", oracle="cross_entropy")
def keras_sparse_categorical_cross_entropy(logits: Any, target: Any, *, reduction: str = "none") -> Any:
    """keras.losses.sparse_categorical_crossentropy(target, logits, from_logits=True)"""
    keras = _keras()
    per = keras.losses.sparse_categorical_crossentropy(target, logits, from_logits=True)
    return _keras_reduce(per, reduction)


@builtin("keras.categorical_cross_entropy", oracle="cross_entropy")
def keras_categorical_cross_entropy(logits: Any, target: Any, *, reduction: str = "none") -> Any:
    """keras.losses.categorical_crossentropy(keras.ops.one_hot(target, width, dtype=logits.dtype), logits, from_logits=True)"""
    keras = _keras()
    labels = keras.ops.one_hot(target, keras.ops.shape(logits)[-1], dtype=logits.dtype)
    per = keras.losses.categorical_crossentropy(labels, logits, from_logits=True)
    return _keras_reduce(per, reduction)
