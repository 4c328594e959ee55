"""A user's training test: a small torch model trains in bfloat16 and mixed precision
without a NaN, and stays close to the same training in float64.

Run with ``pytest examples/test_my_model_trains.py``. ``assert_trains`` trains the model
beside a float64 shadow (the same initial weights, the same batches) and fails with the
verdict: the step, layer and direction of the first non-finite value, whether that layer
produced it, and the likely cause (README "Training scenarios").
"""

import numpy as np
import pytest
import torch

from harness.testing import assert_trains


def build_model() -> torch.nn.Module:
    """The model under test: a fresh one per call (the harness builds it more than once)."""
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1), torch.nn.Sigmoid())


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8))
    return x, (x[:, :1] > 0).astype(np.float64)


@pytest.mark.parametrize("policy", ["bfloat16", "mixed_bfloat16", "mixed_float16"])
def test_my_model_trains(policy: str) -> None:
    assert_trains(build_model, data(), loss="binary_crossentropy", policy=policy, steps=30, batch_size=64,
                  optimizer={"name": "adam", "learning_rate": 1e-2})


def test_my_model_tracks_float64_in_float32() -> None:
    # a finite run can still drift: max_drift bounds the final loss's distance from the shadow's
    assert_trains(build_model, data(), loss="binary_crossentropy", policy="float32", steps=30, batch_size=64,
                  optimizer={"name": "adam", "learning_rate": 1e-2}, max_drift=1e-4)
