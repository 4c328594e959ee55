"""The PyTorch trainer and the verdict on planted models whose fault is known exactly.

Each planted model has constant weights and data chosen so that the step, the layer and the
direction of the first overflow follow from arithmetic done here, not from running it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness.plan.loader import load_file  # noqa: E402
from harness.testing import assert_trains, check_trains  # noqa: E402

F16_OVERFLOW = 65520.0  # the smallest magnitude that rounds to inf in float16


# the README's example (examples/training/models.py) is the planted model: its docstring
# gives the arithmetic, and these tests check it
_EXAMPLE = load_file(Path(__file__).resolve().parents[2] / "examples" / "training" / "models.py", what="example")
planted_forward = _EXAMPLE.planted
growing_data = _EXAMPLE.growing


def expected_overflow_step() -> int:
    # the first k with 2^(k+5) >= the float16 overflow threshold
    return next(k for k in range(1, 40) if 2.0 ** (k + 5) >= F16_OVERFLOW)


SGD0 = {"name": "sgd", "learning_rate": 0.0}


def test_third_layer_forward_overflow_is_located_exactly() -> None:
    k = expected_overflow_step()
    assert k == 11
    result = check_trains(planted_forward, growing_data(), loss="mae", policy="float16", steps=14, optimizer=SGD0,
                          batch_size=4)
    assert result.status == "nonfinite"
    first = result.first
    assert first is not None
    assert (first.step, first.layer, first.name, first.kind, first.stage, first.produced) == (k, 2, "2", "Linear",
                                                                                              "forward", True)
    assert first.inf == 32 and first.nan == 0 and first.shadow_finite
    assert "overflow" in first.cause and "65536" in first.cause and "65504" in first.cause
    # the steps before are finite, and the layer's headroom shrinks by one bit a step
    rooms = [next(e.stats.headroom for e in r.entries if e.layer == 2 and e.stage == "forward")
             for r in result.records[: k - 1]]
    assert all(math.isfinite(h) for h in rooms)
    assert rooms[-1] == pytest.approx(math.log2(65504 / 2.0 ** (k - 1 + 5)))
    assert np.allclose(np.diff(rooms), -1.0)
    # what comes after layer 2 in that step propagated it
    later = [e for e in result.records[k - 1].entries if e.stage == "forward" and e.layer > 2]
    assert later and all(e.produced is False for e in later)


def test_the_same_model_in_float32_and_bfloat16_stays_finite() -> None:
    for policy in ("float32", "bfloat16", "mixed_bfloat16"):
        result = check_trains(planted_forward, growing_data(), loss="mae", policy=policy, steps=14, optimizer=SGD0,
                              batch_size=4)
        assert result.status == "finite", policy
        # with lr = 0 the two runs compute the same values: powers of two are exact everywhere
        assert all(r.loss == r.shadow_loss for r in result.records), policy


def planted_backward() -> object:
    """Linear(4→1, all 2⁻⁴): with inputs 8 every prediction is 2 and the loss below is
    2¹⁵, finite; it sends 2¹⁴/4 = 2¹² per element back, so ∂weights = Σ_rows x·2¹² =
    4·8·2¹² = 2¹⁷ overflows float16 while ∂input = 2⁻⁴·2¹² = 2⁸ does not."""
    m = torch.nn.Sequential(torch.nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        m[0].weight.fill_(2.0**-4)
    return m


def heavy_sum(y_true: object, y_pred: object) -> object:
    return (y_pred * 2.0**14).mean()


def test_a_weight_gradient_overflow_is_backward_and_produced() -> None:
    x = np.full((4, 4), 8.0)
    result = check_trains(planted_backward, (x, np.zeros((4, 1))), loss=heavy_sum, policy="float16", steps=3,
                          optimizer=SGD0)
    first = result.first
    assert first is not None
    assert (first.step, first.name, first.stage, first.produced) == (1, "0", "grad_weights", True)
    assert first.direction == "backward"
    assert "overflow" in first.cause and "131072" in first.cause  # 2^17, the shadow's value
    # the forward pass and the gradient w.r.t. the input were finite in that step
    step1 = result.records[0]
    assert all(not e.stats.nonfinite for e in step1.entries if e.stage in ("forward", "grad_input"))


def test_mixed_float16_loss_scaling_absorbs_a_gradient_overflow() -> None:
    # under mixed_float16 the weights are float32, so the same gradient fits once unscaled;
    # the scaled one (×65536, torch's initial scale) overflows in float16 inside autocast
    x = np.full((4, 4), 8.0)
    result = check_trains(planted_backward, (x, np.zeros((4, 1))), loss="mae", policy="mixed_float16", steps=20,
                          optimizer=SGD0)
    assert result.status == "finite"
    scales = [r.loss_scale for r in result.records]
    assert scales[0] is not None
    skipped = [r.step for r in result.records if r.skipped]
    # mae sends 1/4 per row; the float16 weight gradient is Σ_rows 8·scale/4 = 8·scale, which
    # overflows for scale >= 8192: 65536, 32768, 16384 and 8192 are skipped, 4096 is not
    assert skipped == [1, 2, 3, 4]
    assert result.absorbed is not None and result.absorbed.stage == "grad_weights" and result.absorbed.step == 1
    # every skipped step halves the scale; no step that was not skipped lowers it
    for before, after, rec in zip([65536.0, *scales[:-1]], scales, result.records, strict=True):
        assert (after < before) == rec.skipped


def test_the_shadow_starts_from_the_low_precision_weights() -> None:
    def random_model() -> object:
        return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 1))
    result = check_trains(random_model, (x, y), loss="mse", policy="bfloat16", steps=1, optimizer=SGD0)
    # recompute step 1 in float64 from the bfloat16 weights the model was built with
    torch.manual_seed(0)
    m = random_model().to(torch.bfloat16).double()
    expected = torch.nn.functional.mse_loss(m(torch.as_tensor(x)), torch.as_tensor(y)).item()
    assert result.records[0].shadow_loss == expected


def test_assert_trains_fails_with_the_verdict() -> None:
    with pytest.raises(AssertionError) as info:
        assert_trains(planted_forward, growing_data(), loss="mae", policy="float16", steps=14, optimizer=SGD0,
                      batch_size=4)
    text = str(info.value)
    assert "step 11" in text and "layer 2 (Linear)" in text and "forward" in text and "produced it" in text
    assert "overflow" in text


def test_assert_trains_max_drift() -> None:
    def model() -> object:
        return torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))

    rng = np.random.default_rng(1)
    data = (rng.normal(size=(64, 3)), rng.normal(size=(64, 1)))
    result = assert_trains(model, data, policy="float32", steps=5, max_drift=1e-4)
    assert result.drift is not None and result.drift < 1e-4
    with pytest.raises(AssertionError, match="drifts from its float64 shadow"):
        assert_trains(model, data, policy="bfloat16", steps=5, max_drift=1e-12)


class Twice(torch.nn.Module):
    """One Linear(1→1, weight 1) applied twice; the second call's output is scaled so that the
    loss's gradient reaching it overflows float16 while the first call's input gradient would not."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            self.lin.weight.fill_(1.0)

    def forward(self, x: object) -> object:
        return self.lin(self.lin(x))


def test_a_module_called_twice_records_its_weight_gradient_once() -> None:
    result = check_trains(Twice, (np.ones((2, 1)), np.zeros((2, 1))), loss="mse", policy="float32", steps=2,
                          optimizer=SGD0)
    names = [name for name, _kind in result.layers]
    assert names == ["lin", "lin#2", "loss"]
    step = result.records[0]
    weights = [e for e in step.entries if e.stage == "grad_weights"]
    updates = [e for e in step.entries if e.stage == "update"]
    # the accumulated gradient of both calls, once, on the first call
    assert [result.layers[e.layer][0] for e in weights] == ["lin"]
    assert [result.layers[e.layer][0] for e in updates] == ["lin"]


def test_a_fixed_loss_scale_applies_every_step_as_keras_does() -> None:
    # mae sends 1/4 per row, times 2**20 is 2**18: the scaled gradients overflow float16 from
    # the loss on; the step is applied (the weights go non-finite), not skipped
    x = np.full((4, 4), 8.0)
    result = check_trains(planted_backward, (x, np.zeros((4, 1))), loss="mae", policy="float16", steps=3,
                          optimizer={"name": "sgd", "learning_rate": 0.0, "loss_scale": 2.0**20})
    assert not any(r.skipped for r in result.records)
    assert result.status == "nonfinite" and result.first is not None
    assert result.first.direction == "backward" and result.first.step == 1
    assert result.first.name == "loss" and "loss scale 1.04858e+06" in result.first.cause
    assert not result.records[0].weights_finite


def test_dropout_draws_the_same_mask_in_both_runs() -> None:
    def model() -> object:
        return torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.Dropout(0.5), torch.nn.Linear(64, 1))

    rng = np.random.default_rng(3)
    data = (rng.normal(size=(16, 8)), rng.normal(size=(16, 1)))
    result = check_trains(model, data, policy="float32", steps=3, optimizer=SGD0)
    dropout = next(i for i, (_n, kind) in enumerate(result.layers) if kind == "Dropout")
    for r in result.records:
        e = next(e for e in r.entries if e.layer == dropout and e.stage == "forward")
        # the same units dropped: a unit kept in one run and dropped in the other would be
        # 100% off (a relative error of 1), not a rounding
        assert e.stats.rel_max is not None and e.stats.rel_max < 1e-4
    assert any("random layers (1)" in c for c in result.cautions)
