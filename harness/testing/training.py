"""``assert_trains``: a user's own model trained under a precision policy, in a test.

::

    from harness.testing import assert_trains

    def test_my_model_trains_in_mixed_float16():
        assert_trains(build_model, (x, y), loss="binary_crossentropy", policy="mixed_float16",
                      steps=50, optimizer={"name": "adam", "learning_rate": 1e-3})

The model trains in this process (Keras on whichever backend it was imported with, or
PyTorch), beside a float64 shadow from the same initial weights, exactly as ``fpharness
train`` runs a ``[[scenario]]``. The assertion fails with the verdict: the step, layer and
direction of the first non-finite value, whether that layer produced it, the likely cause;
or, with ``max_drift``, how far a finite run's loss drifted from the shadow's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from harness.execution.training import preflight, train
from harness.frameworks.training import OptimizerConfig, get_policy
from harness.judgement.training import ScenarioResult
from harness.plan.scenarios import Resolved, Scenario, parse_optimizer
from oracles.errors import UsageError
from reports.training import scenario_lines

__all__ = ["assert_trains", "check_trains"]


def _framework(model_fn: Callable[[], Any]) -> tuple[str, str]:
    """torch or keras (and Keras's backend), from the class of the model ``model_fn`` builds."""
    try:
        model = model_fn()
    except Exception as exc:  # noqa: BLE001 - the user's function failed
        raise UsageError(f"the model function failed to build the model: {type(exc).__name__}: {exc}") from None
    root = type(model).__module__.split(".")[0]
    if root == "torch" or any(c.__module__.startswith("torch.") for c in type(model).__mro__):
        return "torch", "torch"
    if any(c.__module__.startswith("keras") for c in type(model).__mro__):
        import keras

        return "keras", keras.backend.backend()
    raise UsageError(f"the model function returned a {type(model).__name__}, which is neither a keras.Model nor a "
                     "torch.nn.Module")


def check_trains(
    model_fn: Callable[[], Any],
    data: tuple[Any, Any],
    *,
    loss: str | Callable[[Any, Any], Any] = "mse",
    policy: str = "float32",
    steps: int = 50,
    optimizer: str | Mapping[str, Any] | OptimizerConfig = "adam",
    batch_size: int | None = None,
    seed: int = 0,
) -> ScenarioResult:
    """Train ``model_fn()`` on ``data = (x, y)`` under ``policy`` beside a float64 shadow
    and return the :class:`~harness.judgement.training.ScenarioResult` (never raises for
    what happens during training; a model or data that cannot start is a
    :class:`UsageError`). Arguments as in a suite's ``[[scenario]]`` table."""
    framework, backend = _framework(model_fn)
    config = optimizer if isinstance(optimizer, OptimizerConfig) else parse_optimizer("check_trains", optimizer)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UsageError(f"check_trains: steps must be an integer >= 1, got {steps!r}")
    x, y = (np.asarray(a, dtype=np.float64) for a in data)
    if x.shape[:1] != y.shape[:1] or not x.shape[:1] or x.shape[0] == 0:
        raise UsageError(f"check_trains: data x {x.shape} and y {y.shape} need the same number of rows, at least one")
    name = getattr(model_fn, "__name__", "model")
    loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "loss")
    scenario = Scenario(name=name, framework=framework, backend=backend, model=f"<{name}>", data="<in memory>",
                        loss=loss_name, optimizer=config, policy=policy, steps=steps, batch_size=batch_size, seed=seed)
    get_policy(policy)
    resolved = Resolved(scenario, model_fn, x, y, loss)
    preflight(resolved)
    return train(resolved)


def assert_trains(
    model_fn: Callable[[], Any],
    data: tuple[Any, Any],
    *,
    loss: str | Callable[[Any, Any], Any] = "mse",
    policy: str = "float32",
    steps: int = 50,
    optimizer: str | Mapping[str, Any] | OptimizerConfig = "adam",
    batch_size: int | None = None,
    seed: int = 0,
    max_drift: float | None = None,
) -> ScenarioResult:
    """Like :func:`check_trains`, and fail (``AssertionError``) when the run went non-finite
    or raised, or when its final loss is further than ``max_drift`` (a share: 0.01 is 1%)
    from the float64 shadow's. The message is the verdict."""
    __tracebackhide__ = True
    result = check_trains(model_fn, data, loss=loss, policy=policy, steps=steps, optimizer=optimizer,
                          batch_size=batch_size, seed=seed)
    text = "\n".join(scenario_lines(result))
    if result.status != "finite":
        raise AssertionError(f"{result.name} does not train in {policy}:\n{text}")
    drift = result.drift
    if max_drift is not None and (drift is None or drift > max_drift):
        shown = "not measurable (the shadow's loss is 0 or not finite)" if drift is None else f"{drift:.3%}"
        raise AssertionError(f"{result.name} in {policy} drifts from its float64 shadow: final loss {shown} away, "
                             f"more than max_drift {max_drift:.3%}\n{text}")
    return result
