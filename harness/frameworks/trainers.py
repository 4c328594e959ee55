"""Picking a framework's trainer: :func:`make_trainers` (the contract is in :mod:`.training`).

A module of its own so that the trainers, which import :mod:`.training`, are imported by
neither it nor each other; each is imported only when a scenario of its framework runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.frameworks.training import (
    FRAMEWORK_BACKENDS,
    LossSpec,
    ModelFn,
    OptimizerConfig,
    Policy,
    TrainerPair,
)
from oracles.errors import UsageError, choices

__all__ = ["make_trainers"]


def make_trainers(
    framework: str,
    model_fn: ModelFn,
    *,
    loss: LossSpec,
    optimizer: OptimizerConfig,
    policy: Policy,
    seed: int,
    options: Mapping[str, Any] | None = None,
) -> TrainerPair:
    """Build the low-precision trainer and its float64 shadow for ``framework``
    (``"keras"`` or ``"torch"``). Errors building either model, or a layer that cannot run
    in float64, are :class:`UsageError`s naming the scenario's part at fault."""
    if framework == "torch":
        from harness.frameworks import train_torch as module  # lazy: torch's trainer only when it trains
    elif framework == "keras":
        from harness.frameworks import train_keras as module  # type: ignore[no-redef]  # lazy: likewise Keras
    else:
        raise UsageError(f"unknown training framework {framework!r}; {choices(FRAMEWORK_BACKENDS, given=framework)}")
    pair: TrainerPair = module.trainers(model_fn, loss=loss, optimizer=optimizer, policy=policy, seed=seed,
                                        options=dict(options or {}))
    return pair
