"""numpy and scipy: the formulations a user of plain arrays writes.

Two things differ from the tensor frameworks and are pinned here:

* scipy's special functions have no float16 or bfloat16 loops; they compute 16-bit input in
  float64 and return float64. Every function here returns the input's dtype, so a 16-bit
  result is scipy's float64 value rounded once more (what ``.astype(x.dtype)`` gives a user).
* numpy reports overflow and division by zero through warnings; the harness judges values,
  so each call runs under ``np.errstate(all="ignore")`` and leaves the values untouched.

Constants are made in the input's dtype: ml_dtypes' bfloat16 promotes a Python float to
float32, which would silently turn a bfloat16 computation into a float32 one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from harness.frameworks.registry import builtin

__all__: list[str] = []

Array = npt.NDArray[Any]


def _like(x: Array, value: Any) -> Array:
    """``value`` as an array of ``x``'s dtype (a no-op when it already is)."""
    return np.asarray(value).astype(x.dtype, copy=False)


def _const(x: Array, value: float) -> Array:
    return np.asarray(value, dtype=x.dtype)


def _reduce(per_sample: Array, reduction: str) -> Array:
    """numpy's own mean/sum of the per-sample losses, as an array of their dtype."""
    if reduction == "mean":
        return _like(per_sample, np.mean(per_sample))
    if reduction == "sum":
        return _like(per_sample, np.sum(per_sample))
    return per_sample


def _pick(rows: Array, target: Array) -> Array:
    """rows[i, target[i]] for each row."""
    return np.take_along_axis(rows, target.astype(np.intp)[:, None], axis=-1)[:, 0]


# -- elementwise --------------------------------------------------------------------------


@builtin("numpy.exp", oracle="exp")
def exp(x: Array) -> Array:
    """numpy.exp(x)"""
    with np.errstate(all="ignore"):
        return np.exp(x)


@builtin("numpy.log", oracle="log")
def log(x: Array) -> Array:
    """numpy.log(x)"""
    with np.errstate(all="ignore"):
        return np.log(x)


@builtin("numpy.log1p", oracle="log1p")
def log1p(x: Array) -> Array:
    """numpy.log1p(x)"""
    with np.errstate(all="ignore"):
        return np.log1p(x)


@builtin("numpy.expm1", oracle="expm1")
def expm1(x: Array) -> Array:
    """numpy.expm1(x)"""
    with np.errstate(all="ignore"):
        return np.expm1(x)


@builtin("numpy.tanh", oracle="tanh")
def tanh(x: Array) -> Array:
    """numpy.tanh(x)"""
    with np.errstate(all="ignore"):
        return np.tanh(x)


@builtin("numpy.expit", oracle="sigmoid")
def expit(x: Array) -> Array:
    """scipy.special.expit(x), cast back to x's dtype"""
    from scipy import special

    with np.errstate(all="ignore"):
        return _like(x, special.expit(x))


@builtin("numpy.logaddexp", oracle="softplus")
def logaddexp(x: Array, *, beta: float = 1.0) -> Array:
    """numpy.logaddexp(0, x) (with beta != 1: numpy.logaddexp(0, beta * x) / beta)"""
    with np.errstate(all="ignore"):
        if beta == 1.0:
            return np.logaddexp(_const(x, 0.0), x)
        b = _const(x, beta)
        return np.logaddexp(_const(x, 0.0), b * x) / b


@builtin("numpy.log_expit", oracle="log_sigmoid")
def log_expit(x: Array) -> Array:
    """scipy.special.log_expit(x), cast back to x's dtype"""
    from scipy import special

    with np.errstate(all="ignore"):
        return _like(x, special.log_expit(x))


@builtin("numpy.silu", oracle="silu")
def silu(x: Array) -> Array:
    """x * scipy.special.expit(x), cast back to x's dtype"""
    from scipy import special

    with np.errstate(all="ignore"):
        return _like(x, x * special.expit(x))


@builtin("numpy.gelu", oracle="gelu")
def gelu(x: Array) -> Array:
    """x * scipy.special.ndtr(x), cast back to x's dtype"""
    from scipy import special

    with np.errstate(all="ignore"):
        return _like(x, x * special.ndtr(x))


@builtin("numpy.gelu_erf", oracle="gelu")
def gelu_erf(x: Array) -> Array:
    """0.5 * x * (1 + scipy.special.erf(x / numpy.sqrt(2))), the textbook formula, cast back to x's dtype"""
    from scipy import special

    # kept beside numpy.gelu on purpose: 1 + erf(...) cancels for x << 0, which is the
    # difference between the formula in papers and the one in libraries
    with np.errstate(all="ignore"):
        return _like(x, 0.5 * x * (1.0 + special.erf(x / np.sqrt(2.0))))


# -- row-wise over the last axis ----------------------------------------------------------


@builtin("numpy.softmax", oracle="softmax")
def softmax(x: Array) -> Array:
    """scipy.special.softmax(x, axis=-1), cast back to x's dtype"""
    from scipy import special

    with np.errstate(all="ignore"):
        return _like(x, special.softmax(x, axis=-1))


@builtin("numpy.log_softmax", oracle="log_softmax")
def log_softmax(x: Array) -> Array:
    """scipy.special.log_softmax(x, axis=-1), cast back to x's dtype"""
    from scipy import special

    with np.errstate(all="ignore"):
        return _like(x, special.log_softmax(x, axis=-1))


# scipy.special.logsumexp makes its accumulator with np.finfo/np.result_type of the input,
# which ml_dtypes' bfloat16 is not ("dtype argument must be a NumPy dtype"): numpy users get
# no bfloat16 logsumexp, and those cells say so (unsupported) instead of failing the run.
@builtin("numpy.logsumexp", oracle="logsumexp", unsupported_dtypes=("bfloat16",))
def logsumexp(x: Array) -> Array:
    """scipy.special.logsumexp(x, axis=-1), cast back to x's dtype"""
    from scipy import special

    with np.errstate(all="ignore"):
        return _like(x, special.logsumexp(x, axis=-1))


# -- losses -------------------------------------------------------------------------------


@builtin("numpy.binary_cross_entropy", oracle="binary_cross_entropy")
def binary_cross_entropy(p: Array, y: Array, *, reduction: str = "none") -> Array:
    """-(scipy.special.xlogy(y, p) + scipy.special.xlog1py(1 - y, -p)), cast back to p's dtype"""
    from scipy import special

    with np.errstate(all="ignore"):
        one = _const(y, 1.0)
        per = _like(p, -(special.xlogy(y, p) + special.xlog1py(one - y, -p)))
        return _reduce(per, reduction)


@builtin("numpy.bce_with_logits", oracle="binary_cross_entropy_with_logits")
def bce_with_logits(x: Array, y: Array, *, reduction: str = "none") -> Array:
    """numpy.logaddexp(0, x) - x * y"""
    with np.errstate(all="ignore"):
        per = _like(x, np.logaddexp(_const(x, 0.0), x) - x * y)
        return _reduce(per, reduction)


@builtin("numpy.cross_entropy", oracle="cross_entropy", unsupported_dtypes=("bfloat16",))  # logsumexp's
def cross_entropy(logits: Array, target: Array, *, reduction: str = "none") -> Array:
    """scipy.special.logsumexp(logits, axis=-1) - logits[i, target[i]], cast back to logits' dtype"""
    from scipy import special

    with np.errstate(all="ignore"):
        lse = _like(logits, special.logsumexp(logits, axis=-1))
        return _reduce(lse - _pick(logits, target), reduction)


@builtin("numpy.nll_loss", oracle="nll_loss")
def nll_loss(logp: Array, target: Array, *, reduction: str = "none") -> Array:
    """-numpy.take_along_axis(logp, target[:, None], axis=-1)[:, 0]"""
    with np.errstate(all="ignore"):
        return _reduce(-_pick(logp, target), reduction)
