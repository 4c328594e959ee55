"""PyTorch: ``torch`` and ``torch.nn.functional`` as a user calls them.

Losses pass ``reduction`` straight to torch's own argument. Torch's documented quirks are
kept, because they are what users get: ``F.softplus`` switches to the identity above
``beta * x > 20`` (its ``threshold`` default), and ``F.binary_cross_entropy`` clamps each
log at -100, so a confident wrong prediction costs at most 100.
"""

from __future__ import annotations

from typing import Any

from harness.frameworks.registry import builtin

__all__: list[str] = []


def _f() -> Any:
    import torch.nn.functional as F

    return F


# -- elementwise --------------------------------------------------------------------------


@builtin("torch.exp", oracle="exp")
def exp(x: Any) -> Any:
    """torch.exp(x)"""
    import torch

    return torch.exp(x)


@builtin("torch.log", oracle="log")
def log(x: Any) -> Any:
    """torch.log(x)"""
    import torch

    return torch.log(x)


@builtin("torch.log1p", oracle="log1p")
def log1p(x: Any) -> Any:
    """torch.log1p(x)"""
    import torch

    return torch.log1p(x)


@builtin("torch.expm1", oracle="expm1")
def expm1(x: Any) -> Any:
    """torch.expm1(x)"""
    import torch

    return torch.expm1(x)


@builtin("torch.tanh", oracle="tanh")
def tanh(x: Any) -> Any:
    """torch.tanh(x)"""
    import torch

    return torch.tanh(x)


@builtin("torch.sigmoid", oracle="sigmoid")
def sigmoid(x: Any) -> Any:
    """torch.sigmoid(x)"""
    import torch

    return torch.sigmoid(x)


@builtin("torch.softplus", oracle="softplus")
def softplus(x: Any, *, beta: float = 1.0) -> Any:
    """torch.nn.functional.softplus(x, beta=beta) (torch's default threshold=20)"""
    return _f().softplus(x, beta=beta)


@builtin("torch.log_sigmoid", oracle="log_sigmoid")
def log_sigmoid(x: Any) -> Any:
    """torch.nn.functional.logsigmoid(x)"""
    return _f().logsigmoid(x)


@builtin("torch.silu", oracle="silu")
def silu(x: Any) -> Any:
    """torch.nn.functional.silu(x)"""
    return _f().silu(x)


@builtin("torch.gelu", oracle="gelu")
def gelu(x: Any) -> Any:
    """torch.nn.functional.gelu(x) (approximate='none', the exact erf form)"""
    return _f().gelu(x)


# -- row-wise over the last axis ----------------------------------------------------------


@builtin("torch.softmax", oracle="softmax")
def softmax(x: Any) -> Any:
    """torch.softmax(x, dim=-1)"""
    import torch

    return torch.softmax(x, dim=-1)


@builtin("torch.log_softmax", oracle="log_softmax")
def log_softmax(x: Any) -> Any:
    """torch.log_softmax(x, dim=-1)"""
    import torch

    return torch.log_softmax(x, dim=-1)


@builtin("torch.logsumexp", oracle="logsumexp")
def logsumexp(x: Any) -> Any:
    """torch.logsumexp(x, dim=-1)"""
    import torch

    return torch.logsumexp(x, dim=-1)


# -- losses -------------------------------------------------------------------------------


@builtin("torch.binary_cross_entropy", oracle="binary_cross_entropy")
def binary_cross_entropy(p: Any, y: Any, *, reduction: str = "none") -> Any:
    """torch.nn.functional.binary_cross_entropy(p, y, reduction=reduction) (logs clamped at -100)"""
    return _f().binary_cross_entropy(p, y, reduction=reduction)


@builtin("torch.bce_with_logits", oracle="binary_cross_entropy_with_logits")
def bce_with_logits(x: Any, y: Any, *, reduction: str = "none") -> Any:
    """torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction=reduction)"""
    return _f().binary_cross_entropy_with_logits(x, y, reduction=reduction)


@builtin("torch.cross_entropy", oracle="cross_entropy")
def cross_entropy(logits: Any, target: Any, *, reduction: str = "none") -> Any:
    """torch.nn.functional.cross_entropy(logits, target, reduction=reduction)"""
    return _f().cross_entropy(logits, target, reduction=reduction)


@builtin("torch.nll_log_softmax", oracle="cross_entropy")
def nll_log_softmax(logits: Any, target: Any, *, reduction: str = "none") -> Any:
    """torch.nn.functional.nll_loss(F.log_softmax(logits, dim=-1), target, reduction=reduction)"""
    F = _f()
    return F.nll_loss(F.log_softmax(logits, dim=-1), target, reduction=reduction)


@builtin("torch.nll_loss", oracle="nll_loss")
def nll_loss(logp: Any, target: Any, *, reduction: str = "none") -> Any:
    """torch.nn.functional.nll_loss(logp, target, reduction=reduction)"""
    return _f().nll_loss(logp, target, reduction=reduction)
