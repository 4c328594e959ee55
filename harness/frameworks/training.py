"""What a training step hands back, whichever framework ran it.

A *trainer* runs one model under one precision policy, one optimizer step at a time, and
returns the step's tensors as float64 NumPy arrays holding exactly the values the framework
computed (every float16, bfloat16 and float32 value is exact in float64), so the judgement
layer compares a low-precision run with its float64 shadow without knowing any framework.

The framework trainers (:mod:`.train_torch`, :mod:`.train_keras`) implement it, and
:func:`harness.frameworks.trainers.make_trainers` picks one; importing this module imports
no framework.

Every step records, per layer: its input and output (the forward activation), the gradient
with respect to its output, its input and its own weights (flattened and concatenated),
and the change the optimizer step made to those weights.
The loss is the last "layer" (kind ``"loss"``): its input is the predictions, its output
the loss value, so a log of 0 in a loss is located like any other layer's fault. Gradients
are as the framework computed them, *before* any loss scale is divided out;
:attr:`StepTensors.grad_scale` says by how much they are scaled.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from oracles.errors import UsageError, choices

__all__ = [
    "FRAMEWORK_BACKENDS",
    "LOSSES",
    "OPTIMIZER_OPTIONS",
    "POLICIES",
    "LayerTensors",
    "OptimizerConfig",
    "Policy",
    "StepTensors",
    "Trainer",
    "TrainerPair",
    "error_line",
    "get_policy",
]

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Policy:
    """A precision policy: the format of the weights, the format layers compute in, and
    whether an optimizer step scales the loss by default (dynamic loss scaling, as Keras's
    ``mixed_float16`` and ``torch.amp.GradScaler`` do)."""

    name: str
    variables: str
    compute: str
    loss_scaling: bool = False

    @property
    def mixed(self) -> bool:
        return self.variables != self.compute

    @property
    def loss_dtype(self) -> str:
        """The format the loss is computed in: float32 under a mixed policy (Keras's loss
        objects and torch autocast both compute losses in float32), else the compute format."""
        return "float32" if self.mixed else self.compute


#: every policy a scenario may name; ``float64`` is the shadow's
POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("float32", "float32", "float32"),
        Policy("float16", "float16", "float16"),
        Policy("bfloat16", "bfloat16", "bfloat16"),
        Policy("mixed_float16", "float32", "float16", loss_scaling=True),
        Policy("mixed_bfloat16", "float32", "bfloat16"),
        Policy("float64", "float64", "float64"),
    )
}


def error_line(exc: BaseException) -> str:
    """``Type: the message's first line``, for the one-line errors of a model that fails.
    Keras wraps a layer's error as "Exception encountered when calling X.call()." with the
    cause on the next line (and bold escape codes), so that line is joined on."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Exception encountered when calling"):
        first = f"{lines[0].rstrip('.')}: {lines[1]}"
    else:
        first = lines[0] if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def get_policy(name: str) -> Policy:
    """The policy called ``name``; an unknown name is a one-line :class:`UsageError`."""
    try:
        return POLICIES[name]
    except (KeyError, TypeError):
        valid = [n for n in POLICIES if n != "float64"]
        raise UsageError(f"unknown precision policy {name!r}; {choices(valid, given=name)}") from None


#: optimizer name -> the options a scenario may set (Keras's names; the torch trainer maps
#: them: ``beta_1``/``beta_2`` to ``betas``, ``clipnorm`` to ``clip_grad_norm_``)
OPTIMIZER_OPTIONS: dict[str, frozenset[str]] = {
    "sgd": frozenset({"learning_rate", "momentum", "clipnorm", "clipvalue", "weight_decay"}),
    "adam": frozenset({"learning_rate", "beta_1", "beta_2", "epsilon", "clipnorm", "clipvalue", "weight_decay"}),
    "adamw": frozenset({"learning_rate", "beta_1", "beta_2", "epsilon", "clipnorm", "clipvalue", "weight_decay"}),
    "rmsprop": frozenset({"learning_rate", "rho", "momentum", "epsilon", "clipnorm", "clipvalue", "weight_decay"}),
}


@dataclass(frozen=True, slots=True)
class OptimizerConfig:
    """An optimizer, its options and its loss scaling: ``None`` for the policy's default
    (dynamic under ``mixed_float16``, none otherwise), ``"dynamic"``, ``"none"``, or a fixed
    scale (a number)."""

    name: str = "adam"
    options: tuple[tuple[str, float], ...] = ()
    loss_scale: str | float | None = None

    def option(self, key: str, default: float | None = None) -> float | None:
        return dict(self.options).get(key, default)

    def scaling(self, policy: Policy) -> str | float | None:
        """What the low-precision run does: ``"dynamic"``, a fixed number, or None."""
        if self.loss_scale is None:
            return "dynamic" if policy.loss_scaling else None
        return None if self.loss_scale == "none" else self.loss_scale

    @property
    def id(self) -> str:
        opts = ", ".join(f"{k}={v:g}" for k, v in self.options)
        return f"{self.name}({opts})" if opts else self.name


@dataclass(slots=True)
class LayerTensors:
    """One layer's tensors in one step, as float64 arrays of the computed values (None
    where the layer has no such tensor, e.g. no weights)."""

    name: str
    kind: str
    input: Array | None
    output: Array | None
    grad_output: Array | None = None
    grad_input: Array | None = None
    grad_weights: Array | None = None
    #: whether the layer's weights were all finite when the step began
    weights_finite: bool = True
    #: what the optimizer step changed its weights by (after - before, in float64), flattened
    update: Array | None = None


@dataclass(slots=True)
class StepTensors:
    """What one optimizer step computed (``step`` counts from 1)."""

    step: int
    layers: list[LayerTensors]
    loss: float
    #: the factor the recorded gradients carry (the loss scale; 1.0 without scaling)
    grad_scale: float = 1.0
    #: the loss scale after the step (None without loss scaling)
    loss_scale: float | None = None
    #: the optimizer left the weights unchanged (a loss scaler found non-finite gradients)
    skipped: bool = False
    #: every weight finite after the update
    weights_finite: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer(Protocol):
    """One model under one policy; :meth:`step` runs an optimizer step on a batch."""

    def step(self, step: int, x: Array, y: Array) -> StepTensors: ...


@dataclass(frozen=True, slots=True)
class TrainerPair:
    """The low-precision trainer and its float64 shadow, built from the same initial
    weights; neither ever sees the other's state."""

    low: Trainer
    shadow: Trainer
    framework: str
    version: str


#: framework -> its backends (Keras runs on either; the choice is made before Keras loads)
FRAMEWORK_BACKENDS: dict[str, tuple[str, ...]] = {"keras": ("tensorflow", "jax"), "torch": ("torch",)}

#: the built-in losses a scenario may name (each framework's own: ``keras.losses`` and
#: ``torch.nn.functional``), all the mean over every element
LOSSES: tuple[str, ...] = ("mse", "mae", "binary_crossentropy", "binary_crossentropy_from_logits")

#: a model function: no arguments, returns a fresh model (a keras.Model or torch.nn.Module)
ModelFn = Callable[[], Any]
#: a loss: a built-in name or ``loss(y_true, y_pred)`` in the framework's ops
LossSpec = str | Callable[[Any, Any], Any]
