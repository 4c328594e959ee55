"""JAX: ``jax.nn``, ``jax.numpy`` and ``jax.scipy.special``, called eagerly as a user would.

JAX has no loss functions of its own (they live in optax, which we do not depend on), so the
losses are the short formulas a JAX user writes, with the same algebra optax uses:
cross-entropy is ``logsumexp(logits) - logits[target]`` and the logits form of binary
cross-entropy is ``-(y log_sigmoid(x) + (1 - y) log_sigmoid(-x))``. softplus has no
``beta``; with beta != 1 we compute ``softplus(beta * x) / beta``. Mean and sum are
``jnp.mean``/``jnp.sum`` of the per-sample values.
"""

from __future__ import annotations

from typing import Any

from harness.frameworks.registry import builtin

__all__: list[str] = []


def _reduce(per_sample: Any, reduction: str) -> Any:
    import jax.numpy as jnp

    if reduction == "mean":
        return jnp.mean(per_sample)
    if reduction == "sum":
        return jnp.sum(per_sample)
    return per_sample


def _pick(rows: Any, target: Any) -> Any:
    """rows[i, target[i]] for each row."""
    import jax.numpy as jnp

    return jnp.take_along_axis(rows, target[:, None], axis=-1)[:, 0]


# -- elementwise --------------------------------------------------------------------------


@builtin("jax.exp", oracle="exp")
def exp(x: Any) -> Any:
    """jax.numpy.exp(x)"""
    import jax.numpy as jnp

    return jnp.exp(x)


@builtin("jax.log", oracle="log")
def log(x: Any) -> Any:
    """jax.numpy.log(x)"""
    import jax.numpy as jnp

    return jnp.log(x)


@builtin("jax.log1p", oracle="log1p")
def log1p(x: Any) -> Any:
    """jax.numpy.log1p(x)"""
    import jax.numpy as jnp

    return jnp.log1p(x)


@builtin("jax.expm1", oracle="expm1")
def expm1(x: Any) -> Any:
    """jax.numpy.expm1(x)"""
    import jax.numpy as jnp

    return jnp.expm1(x)


@builtin("jax.tanh", oracle="tanh")
def tanh(x: Any) -> Any:
    """jax.numpy.tanh(x)"""
    import jax.numpy as jnp

    return jnp.tanh(x)


@builtin("jax.sigmoid", oracle="sigmoid")
def sigmoid(x: Any) -> Any:
    """jax.nn.sigmoid(x)"""
    import jax

    return jax.nn.sigmoid(x)


@builtin("jax.softplus", oracle="softplus")
def softplus(x: Any, *, beta: float = 1.0) -> Any:
    """jax.nn.softplus(x) (with beta != 1: jax.nn.softplus(beta * x) / beta)"""
    import jax
    import jax.numpy as jnp

    if beta == 1.0:
        return jax.nn.softplus(x)
    b = jnp.asarray(beta, dtype=x.dtype)
    return jax.nn.softplus(b * x) / b


@builtin("jax.log_sigmoid", oracle="log_sigmoid")
def log_sigmoid(x: Any) -> Any:
    """jax.nn.log_sigmoid(x)"""
    import jax

    return jax.nn.log_sigmoid(x)


@builtin("jax.silu", oracle="silu")
def silu(x: Any) -> Any:
    """jax.nn.silu(x)"""
    import jax

    return jax.nn.silu(x)


@builtin("jax.gelu", oracle="gelu")
def gelu(x: Any) -> Any:
    """jax.nn.gelu(x, approximate=False)"""
    import jax

    # jax.nn.gelu defaults to the tanh approximation; the oracle is the exact erf form
    return jax.nn.gelu(x, approximate=False)


# -- row-wise over the last axis ----------------------------------------------------------


@builtin("jax.softmax", oracle="softmax")
def softmax(x: Any) -> Any:
    """jax.nn.softmax(x, axis=-1)"""
    import jax

    return jax.nn.softmax(x, axis=-1)


@builtin("jax.log_softmax", oracle="log_softmax")
def log_softmax(x: Any) -> Any:
    """jax.nn.log_softmax(x, axis=-1)"""
    import jax

    return jax.nn.log_softmax(x, axis=-1)


@builtin("jax.logsumexp", oracle="logsumexp")
def logsumexp(x: Any) -> Any:
    """jax.nn.logsumexp(x, axis=-1)"""
    import jax

    return jax.nn.logsumexp(x, axis=-1)


# -- losses -------------------------------------------------------------------------------


@builtin("jax.binary_cross_entropy", oracle="binary_cross_entropy")
def binary_cross_entropy(p: Any, y: Any, *, reduction: str = "none") -> Any:
    """-(jax.scipy.special.xlogy(y, p) + jax.scipy.special.xlog1py(1 - y, -p))"""
    from jax.scipy import special

    return _reduce(-(special.xlogy(y, p) + special.xlog1py(1 - y, -p)), reduction)


@builtin("jax.bce_with_logits", oracle="binary_cross_entropy_with_logits")
def bce_with_logits(x: Any, y: Any, *, reduction: str = "none") -> Any:
    """-(y * jax.nn.log_sigmoid(x) + (1 - y) * jax.nn.log_sigmoid(-x)) (optax's formula)"""
    import jax

    per = -(y * jax.nn.log_sigmoid(x) + (1 - y) * jax.nn.log_sigmoid(-x))
    return _reduce(per, reduction)


@builtin("jax.cross_entropy", oracle="cross_entropy")
def cross_entropy(logits: Any, target: Any, *, reduction: str = "none") -> Any:
    """jax.nn.logsumexp(logits, axis=-1) - logits[i, target[i]] (optax's formula)"""
    import jax

    return _reduce(jax.nn.logsumexp(logits, axis=-1) - _pick(logits, target), reduction)


@builtin("jax.nll_loss", oracle="nll_loss")
def nll_loss(logp: Any, target: Any, *, reduction: str = "none") -> Any:
    """-jax.numpy.take_along_axis(logp, target[:, None], axis=-1)[:, 0]"""
    return _reduce(-_pick(logp, target), reduction)
