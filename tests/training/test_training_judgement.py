"""Judging a training run against its float64 shadow (harness/judgement/training.py) and
comparing scenarios between runs (harness/record/compare.py ``compare_scenarios``).

Layer: judging. Pure NumPy on hand-built tensors: no framework is imported, so every
number here is chosen by hand and every expected value is exact.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from harness.frameworks.training import LayerTensors, StepTensors
from harness.judgement.training import (
    Entry,
    FirstNonFinite,
    ScenarioResult,
    StepRecord,
    TensorStats,
    compare_step,
    first_nonfinite,
    fix_verdict,
    tensor_stats,
)
from harness.record.compare import Kind, compare_scenarios
from oracles.formats import get_format

F16 = get_format("float16")
BF16 = get_format("bfloat16")
F32 = get_format("float32")


def a(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


# -- tensor_stats -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [F16, BF16, F32], ids=lambda f: f.name)
@pytest.mark.parametrize("k", [-20, -1, 0, 3, 10, 15])
def test_headroom_is_log2_of_largest_over_max_abs(fmt: Any, k: int) -> None:
    st = tensor_stats(a(0.0, -(2.0**k), 2.0 ** (k - 1)), None, fmt)
    assert st.max_abs == 2.0**k
    # largest / 2**k is exact, so the only rounding is log2's
    assert st.headroom == pytest.approx(math.log2(fmt.largest) - k, abs=1e-12)
    assert st.headroom == math.log2(fmt.largest / 2.0**k)


def test_headroom_of_the_largest_value_is_zero_and_of_zeros_is_capped() -> None:
    assert tensor_stats(a(F16.largest), None, F16).headroom == 0.0
    zeros = tensor_stats(a(0.0, -0.0), a(0.0, 0.0), F16)
    assert zeros.max_abs == 0.0 and zeros.headroom == 1024.0
    # nothing finite: no magnitude, no headroom
    none = tensor_stats(a(math.inf, math.nan), None, F16)
    assert none.max_abs is None and none.headroom is None


def test_underflow_counts_zeros_where_the_shadow_is_not_zero() -> None:
    low = a(0.0, 0.0, -0.0, 1.0, 0.0, 0.0)
    shadow = a(1e-9, 0.0, -3e-8, 1.0, math.nan, math.inf)
    st = tensor_stats(low, shadow, F16)
    # a zero in both is not an underflow, nor a zero where the shadow is not finite
    assert st.underflow == 2
    assert st.underflow_share == pytest.approx(2 / 6)
    assert st.shadow_nonfinite == 2 and st.shadow_max_abs == 1.0


def test_bits_of_error() -> None:
    p = F16.precision
    same = tensor_stats(a(1.0, -2.5, 0.0, 3e-5), a(1.0, -2.5, 0.0, 3e-5), F16)
    assert (same.bits_p50, same.bits_p99, same.rel_p50, same.rel_max) == (0.0, 0.0, 0.0, 0.0)
    # a zero where the shadow is not: no correct bit; and a non-zero where the shadow is 0
    lost = tensor_stats(a(0.0), a(1e-9), F16)
    assert lost.bits_p99 == p and lost.rel_max == 1.0
    made_up = tensor_stats(a(1e-3), a(0.0), F16)
    assert made_up.bits_p99 == p and made_up.rel_max is None
    # a relative error of 2**-p is one rounding: 0 bits; of 2**-5: p - 5 bits
    half_ulp = tensor_stats(a(1.0 + 2.0**-p), a(1.0), F16)
    assert half_ulp.bits_p99 == 0.0 and half_ulp.rel_max == 2.0**-p
    coarse = tensor_stats(a(1.0 + 2.0**-5), a(1.0), F16)
    assert coarse.bits_p99 == p - 5
    # errors are clamped to [0, p]
    assert tensor_stats(a(3.0), a(1.0), F16).bits_p99 == p
    assert tensor_stats(a(1.0 + 2.0**-30), a(1.0), F32).bits_p99 == 0.0
    # the percentiles pick an element: p99 of one bad value in a hundred is that value
    many = tensor_stats(np.r_[np.ones(99), 0.0], np.ones(100), F16)
    assert (many.bits_p50, many.bits_p99) == (0.0, float(p))


def test_the_scale_divides_before_comparing_but_not_for_headroom() -> None:
    shadow = a(1.0, -0.5, 2.0**-20)
    low = shadow * 1024
    st = tensor_stats(low, shadow, F16, scale=1024.0)
    assert (st.rel_max, st.bits_p99, st.underflow) == (0.0, 0.0, 0)
    # headroom and max |x| are of the values as computed, scale included
    assert st.max_abs == 1024.0
    assert st.headroom == math.log2(F16.largest / 1024)
    unscaled = tensor_stats(low, shadow, F16)
    assert unscaled.rel_max == 1023.0 and unscaled.bits_p99 == F16.precision


def test_nan_and_inf_counts() -> None:
    st = tensor_stats(a(math.nan, math.inf, -math.inf, 4.0, -8.0), a(1.0, 2.0, 3.0, 4.0, math.nan), F16)
    assert (st.size, st.nan, st.inf, st.nonfinite, st.max_abs) == (5, 1, 2, 3, 8.0)
    # errors only over values finite in both
    assert st.rel_max == 0.0 and st.shadow_nonfinite == 1
    assert tensor_stats(a(1.0, 2.0), a(1.0), F16).rel_max is None  # a shadow of another size: no errors


def test_tensor_stats_json_round_trip_with_inf_and_nan() -> None:
    st = TensorStats(size=4, nan=1, inf=2, max_abs=math.inf, headroom=-math.inf, underflow=3, rel_p50=math.nan,
                     rel_p99=0.5, rel_max=math.inf, bits_p50=0.0, bits_p99=11.0, shadow_max_abs=2.0,
                     shadow_nonfinite=1)
    text = json.dumps(st.to_json(), allow_nan=False)
    back = TensorStats.from_json(json.loads(text))
    assert math.isnan(back.rel_p50 or 0.0)
    assert replace(back, rel_p50=None) == replace(st, rel_p50=None)
    # a plain one, with absent fields left out and restored to their defaults
    plain = tensor_stats(a(1.0, 2.0), None, F16)
    assert TensorStats.from_json(json.loads(json.dumps(plain.to_json()))) == plain
    assert "underflow" not in plain.to_json() and "rel_p50" not in plain.to_json()


# -- compare_step and first_nonfinite ------------------------------------------------------------------
#
# A hand-built step of a 3-layer model and its loss: layer 0 (Linear, weights), layer 1 (ReLU),
# layer 2 (Linear, weights), then the loss as layer 3.

LAYERS = (("0", "Linear"), ("1", "ReLU"), ("2", "Linear"), ("loss", "mae"))


def _layers(out1: np.ndarray | None = None, out2: np.ndarray | None = None, loss: float = 1.0,
            gw2: np.ndarray | None = None, gi2: np.ndarray | None = None) -> list[LayerTensors]:
    x = a(1.0, 2.0)
    h0 = a(2.0, 4.0)
    h1 = h0 if out1 is None else out1
    h2 = a(8.0) if out2 is None else out2
    return [
        LayerTensors("0", "Linear", x, h0, grad_output=a(0.5, 0.5), grad_input=a(0.25, 0.25),
                     grad_weights=a(0.5, 1.0)),
        LayerTensors("1", "ReLU", h0, h1, grad_output=a(0.5, 0.5), grad_input=a(0.5, 0.5)),
        LayerTensors("2", "Linear", h1, h2, grad_output=a(1.0), grad_input=a(0.5, 0.5) if gi2 is None else gi2,
                     grad_weights=a(2.0, 4.0) if gw2 is None else gw2),
        LayerTensors("loss", "mae", h2, a(loss), grad_output=a(1.0), grad_input=a(1.0)),
    ]


def _step(step: int = 1, **kw: Any) -> StepTensors:
    meta = {k: kw.pop(k) for k in ("grad_scale", "loss_scale", "skipped", "weights_finite") if k in kw}
    layers = _layers(**kw)
    return StepTensors(step=step, layers=layers, loss=float(layers[-1].output[0]), **meta)  # type: ignore[index]


def _compare(low: StepTensors, shadow: StepTensors, compute: str = "float16", variables: str | None = None,
             loss_dtype: str | None = None) -> StepRecord:
    return compare_step(low, shadow, compute=compute, variables=variables or compute, loss_dtype=loss_dtype or compute)


def _entry(rec: StepRecord, layer: int, stage: str) -> Entry:
    return next(e for e in rec.entries if e.layer == layer and e.stage == stage)


def test_entries_run_forward_first_then_backward_from_the_last_layer() -> None:
    rec = _compare(_step(), _step())
    assert [(e.layer, e.stage) for e in rec.entries] == [
        (0, "forward"), (1, "forward"), (2, "forward"), (3, "forward"),
        (3, "grad_input"),
        (2, "grad_input"), (2, "grad_weights"),
        (1, "grad_input"),
        (0, "grad_input"), (0, "grad_weights"),
    ]
    assert all(e.produced is None and not e.cause and e.stats.nonfinite == 0 for e in rec.entries)
    assert (rec.step, rec.loss, rec.shadow_loss, rec.loss_rel) == (1, 1.0, 1.0, 0.0)
    assert first_nonfinite([rec], LAYERS) is None


def test_overflow_is_produced_where_it_happens_and_propagated_after() -> None:
    low = _step(4, out1=a(math.inf, 4.0), out2=a(math.inf), loss=math.inf)
    shadow = _step(4, out1=a(70000.0, 4.0), out2=a(70004.0), loss=70003.0)
    rec = _compare(low, shadow)
    one, two, loss = _entry(rec, 1, "forward"), _entry(rec, 2, "forward"), _entry(rec, 3, "forward")
    assert one.produced is True and two.produced is False and loss.produced is False
    assert "overflow" in one.cause and "70000" in one.cause and "65504" in one.cause and "float16" in one.cause
    assert two.cause == "" and loss.cause == ""
    first = first_nonfinite([rec], LAYERS)
    assert first is not None
    assert (first.step, first.layer, first.name, first.kind, first.stage, first.produced) == (
        4, 1, "1", "ReLU", "forward", True)
    assert (first.nan, first.inf, first.size, first.shadow_finite) == (0, 1, 2, True)
    assert first.direction == "forward" and first.tensor == "output"
    assert first.cause == one.cause


def test_the_shadow_non_finite_too_is_the_formula_failing_in_float64() -> None:
    low = _step(2, out2=a(math.nan))
    shadow = _step(2, out2=a(math.nan))
    rec = _compare(low, shadow)
    entry = _entry(rec, 2, "forward")
    assert entry.produced is True
    assert "float64 as well" in entry.cause and "not only in float16" in entry.cause
    first = first_nonfinite([rec], LAYERS)
    assert first is not None and first.shadow_finite is False and first.nan == 1


def test_a_prediction_rounded_to_one_is_the_losss_cause() -> None:
    def layers(pred: float, loss: float) -> list[LayerTensors]:
        ls = _layers(out2=a(pred))
        ls[-1] = LayerTensors("loss", "binary_crossentropy", a(pred), a(loss), grad_output=a(1.0), grad_input=a(1.0))
        return ls

    low = StepTensors(3, layers(1.0, math.inf), math.inf)
    shadow = StepTensors(3, layers(0.99999, 11.5), 11.5)
    rec = _compare(low, shadow)
    entry = _entry(rec, 3, "forward")
    assert entry.produced is True
    assert "1 prediction(s) rounded to 1" in entry.cause and "0.99999" in entry.cause and "1 - p is 0" in entry.cause
    first = first_nonfinite([rec], (*LAYERS[:3], ("loss", "binary_crossentropy")))
    assert first is not None and (first.layer, first.name, first.stage) == (3, "loss", "forward")


def test_a_backward_overflow_is_produced_by_the_layer_and_carries_the_loss_scale() -> None:
    low = _step(5, gw2=a(math.inf, 4.0), grad_scale=1024.0, loss_scale=1024.0)
    shadow = _step(5, gw2=a(100.0, 4.0 / 1024))
    rec = _compare(low, shadow)
    entry = _entry(rec, 2, "grad_weights")
    assert entry.produced is True
    assert "overflow" in entry.cause and "102400" in entry.cause and "loss scale 1024" in entry.cause
    assert rec.loss_scale == 1024.0
    first = first_nonfinite([rec], LAYERS)
    assert first is not None and first.stage == "grad_weights" and first.direction == "backward"
    assert first.tensor == "gradient w.r.t. its weights"


def test_a_gradient_that_overflows_crossing_into_the_layer_is_the_boundarys() -> None:
    # mixed_float16: the float32 loss sends a finite gradient of 1e5, which is inf in float16
    low = _step(1, gi2=a(math.inf, math.inf))
    low.layers[-1].grad_input = a(1e5)
    low.layers[2].grad_output = a(math.inf)
    shadow = _step(1)
    rec = _compare(low, shadow, compute="float16", variables="float32", loss_dtype="float32")
    entry = _entry(rec, 2, "grad_input")
    assert entry.produced is True
    assert "overflow converting the gradient from the layer after it to float16" in entry.cause
    assert "100000" in entry.cause and "65504" in entry.cause


def test_a_non_finite_gradient_in_a_skipped_step_is_absorbed_not_the_verdict() -> None:
    skipped = _compare(_step(1, gw2=a(math.inf, 4.0), grad_scale=65536.0, loss_scale=32768.0, skipped=True),
                       _step(1))
    clean = _compare(_step(2, loss_scale=32768.0, grad_scale=32768.0), _step(2))
    assert skipped.skipped and _entry(skipped, 2, "grad_weights").stats.inf == 1
    assert first_nonfinite([skipped, clean], LAYERS) is None
    absorbed = first_nonfinite([skipped, clean], LAYERS, absorbed=True)
    assert absorbed is not None and (absorbed.step, absorbed.layer, absorbed.stage) == (1, 2, "grad_weights")
    # a forward value in a skipped step is never absorbed: the loss is what the user sees
    forward = _compare(_step(1, out2=a(math.inf), loss=math.inf, skipped=True, grad_scale=2.0), _step(1))
    first = first_nonfinite([forward], LAYERS)
    assert first is not None and (first.layer, first.stage) == (2, "forward")


def test_weights_non_finite_after_an_update_from_finite_gradients_is_the_update() -> None:
    records = [_compare(_step(1), _step(1)), _compare(_step(2, weights_finite=False), _step(2))]
    assert records[1].weights_finite is False and records[1].shadow_weights_finite is True
    first = first_nonfinite(records, LAYERS)
    assert first is not None
    assert (first.step, first.layer, first.name, first.stage, first.produced, first.shadow_finite) == (
        2, -1, "weights", "update", True, True)
    assert first.direction == "optimizer update" and "update" in first.tensor
    assert "became non-finite in the step although every recorded gradient and update was finite" in first.cause


def test_a_layer_with_non_finite_weights_propagates() -> None:
    low = _step(3, out2=a(math.nan))
    low.layers[2].weights_finite = False
    rec = _compare(low, _step(3))
    assert _entry(rec, 2, "forward").produced is False


def test_step_record_json_round_trip() -> None:
    rec = _compare(_step(4, out1=a(math.inf, 4.0), out2=a(math.inf), loss=math.inf, grad_scale=8.0, loss_scale=4.0,
                         skipped=True, weights_finite=False),
                   _step(4, out1=a(70000.0, 4.0), out2=a(70004.0), loss=70003.0))
    back = StepRecord.from_json(json.loads(json.dumps(rec.to_json(), allow_nan=False)))
    assert back.loss == math.inf and back.skipped and not back.weights_finite and back.loss_scale == 4.0
    assert [(e.layer, e.stage, e.produced, e.cause, e.stats.inf) for e in back.entries] == [
        (e.layer, e.stage, e.produced, e.cause, e.stats.inf) for e in rec.entries]


# -- ScenarioResult helpers --------------------------------------------------------------------------------


def _record(step: int, loss: float = 1.0, shadow_loss: float = 1.0, entries: tuple[Entry, ...] = ()) -> StepRecord:
    return StepRecord(step=step, loss=loss, shadow_loss=shadow_loss, entries=entries)


def _stats(*, headroom: float = 8.0, underflow: int = 0, max_abs: float = 1.0) -> TensorStats:
    return TensorStats(size=4, nan=0, inf=0, max_abs=max_abs, headroom=headroom, underflow=underflow)


def _first(step: int = 5, layer: int = 2, stage: str = "forward") -> FirstNonFinite:
    return FirstNonFinite(step=step, layer=layer, name=str(layer), kind="Linear", stage=stage, produced=True, nan=0,
                          inf=4, size=4, cause="overflow", shadow_finite=True)


def _result(name: str = "s", *, status: str | None = None, first: FirstNonFinite | None = None,
            records: tuple[StepRecord, ...] | None = None, **kw: Any) -> ScenarioResult:
    if records is None:
        records = tuple(_record(k) for k in range(1, 11))
    if status is None:
        status = "finite" if first is None else "nonfinite"
    fields: dict[str, Any] = dict(name=name, framework="torch", backend="torch", policy="float16", optimizer="sgd",
                                  loss="mse", steps=10, batch_size=4, seed=0)
    fields.update(kw)
    return ScenarioResult(**fields, status=status, layers=LAYERS, records=records, first=first)


def test_scenario_result_properties() -> None:
    records = (_record(1, 1.0, 1.0), _record(2, 1.005, 1.0), _record(3, 1.5, 1.0), _record(4, math.inf, 2.0))
    r = _result(records=records)
    assert r.parted_at == 3 and r.final is records[-1] and r.drift is None
    assert _result(records=(_record(1, 1.25, 1.0),)).drift == 0.25
    assert replace(r, records=records[:2]).parted_at is None
    dead = (_record(1, entries=(Entry(0, "grad_weights", replace(_stats(), max_abs=0.0, shadow_max_abs=0.0)),)),
            _record(2, entries=(Entry(0, "grad_weights", replace(_stats(), max_abs=0.0, shadow_max_abs=1.0)),)),
            _record(3, entries=(Entry(0, "grad_weights", _stats()),)))
    assert _result(records=dead).dead_steps == (2, 1)


# -- fix_verdict -----------------------------------------------------------------------------------------


def _at_fault(**stats: Any) -> tuple[StepRecord, ...]:
    """Ten finite steps with layer 2's forward output as ``stats`` says."""
    return tuple(_record(k, 1.0, 1.0, (Entry(2, "forward", _stats(**stats)), Entry(1, "forward", _stats(underflow=9))))
                 for k in range(1, 11))


BASE = _result("base", first=_first())


def test_fix_failed_when_still_non_finite() -> None:
    same = fix_verdict(_result("fix", first=_first(step=8)), BASE)
    assert (same.fix, same.base, same.outcome) == ("fix", "base", "failed")
    assert "still non-finite at step 8, " in same.reason and "the same place" in same.reason
    assert "the original at step 5, " in same.reason and "2 forward" in same.reason
    elsewhere = fix_verdict(_result("fix", first=_first(step=2, layer=0, stage="grad_weights")), BASE)
    assert elsewhere.outcome == "failed" and "elsewhere" in elsewhere.reason


def test_fix_hid_the_cause_by_underflow_at_the_fault() -> None:
    v = fix_verdict(_result("fix", records=_at_fault(underflow=3)), BASE)
    # 3 per step at layer 2; layer 1's underflow is not where the original failed
    assert v.outcome == "hid" and "30 value(s) at " in v.reason and "2 (forward) are 0 where the shadow's are not" in v.reason


def test_fix_hid_the_cause_within_a_bit_of_overflow() -> None:
    v = fix_verdict(_result("fix", records=_at_fault(headroom=0.5)), BASE)
    assert v.outcome == "hid" and "within 0.50 bits of overflowing" in v.reason


def test_fix_hid_the_cause_when_its_shadow_is_not_finite() -> None:
    records = (*_at_fault()[:9], _record(10, 1.0, math.nan))
    v = fix_verdict(_result("fix", records=records), BASE)
    assert v.outcome == "hid" and "its own float64 shadow is not" in v.reason


def test_fix_removed_the_cause() -> None:
    records = (*_at_fault(headroom=3.0)[:9], _record(10, 1.02, 1.0, (Entry(2, "forward", _stats(headroom=1.5)),)))
    v = fix_verdict(_result("fix", records=records), BASE)
    assert v.outcome == "removed"
    assert "finite for 10 steps (the original failed at step 5, " in v.reason
    assert "2 (forward) at least 1.5 bits of headroom" in v.reason and "final loss 2.00% from its float64 shadow's" in v.reason


def test_fix_is_judged_at_the_layer_of_the_same_name() -> None:
    # the fix put a layer before the original's layer "2", which is now the fourth
    layers = (("0", "Linear"), ("1", "ReLU"), ("extra", "Linear"), ("2", "Linear"), ("loss", "mae"))
    records = tuple(_record(k, entries=(Entry(2, "forward", _stats(headroom=9.0)),
                                        Entry(3, "forward", _stats(headroom=0.25)))) for k in range(1, 11))
    v = fix_verdict(replace(_result("fix", records=records), layers=layers), BASE)
    assert v.outcome == "hid" and "within 0.25 bits of overflowing" in v.reason
    renamed = (("0", "Linear"), ("1", "ReLU"), ("other", "Linear"), ("loss", "mae"))
    v = fix_verdict(replace(_result("fix", records=records[:3]), layers=renamed), BASE)
    assert v.outcome == "removed" and "no layer 2" in v.reason


def test_fix_of_a_run_that_never_failed_has_nothing_to_fix_and_errors_are_errors() -> None:
    v = fix_verdict(_result("fix"), _result("base"))
    assert v.outcome == "nothing" and "base stays finite for its 10 steps" in v.reason
    assert fix_verdict(_result("fix", status="error"), BASE).outcome == "error"
    assert fix_verdict(_result("fix"), _result("base", status="error")).outcome == "error"


def test_scenario_result_json_round_trip() -> None:
    r = _result("r", first=_first(), records=(_record(1), _record(2, math.inf, 3.0)), error="", claim="c",
                fixes="other", suite="/x/s.toml", version="2.0", stopped="stopped after step 2")
    r = replace(r, absorbed=_first(step=1, stage="grad_input"), error_step=None, seconds=1.5)
    back = ScenarioResult.from_json(json.loads(json.dumps(r.to_json(), allow_nan=False)))
    assert back == r


# -- compare_scenarios ---------------------------------------------------------------------------------------


def _drifting(name: str, drift: float, **kw: Any) -> ScenarioResult:
    return _result(name, records=(_record(1), _record(2, 1.0 + drift, 1.0)), **kw)


@pytest.mark.parametrize(("baseline", "current", "kind", "why"), [
    pytest.param(_result("s"), _result("s", first=_first()), Kind.NEW_FAILURE,
                 "became non-finite from step 5 (2 forward); was finite", id="became-non-finite"),
    pytest.param(_result("s"), _result("s", status="error", error="at step 3: RuntimeError: x"), Kind.NEW_FAILURE,
                 "now fails: at step 3: RuntimeError: x", id="now-errors"),
    pytest.param(_result("s", status="error", error="e"), _result("s", status="error", error="e"), Kind.UNCHANGED,
                 "error, as before", id="error-as-before"),
    pytest.param(_result("s", status="error", error="e"), _result("s"), Kind.FIXED, "runs again: finite",
                 id="error-then-finite"),
    pytest.param(_result("s", first=_first()), _result("s"), Kind.FIXED,
                 "now finite; was non-finite from step 5", id="fixed"),
    pytest.param(_result("s", first=_first(step=5)), _result("s", first=_first(step=3)), Kind.REGRESSED,
                 "non-finite from step 3 (2 forward); was step 5", id="earlier-first-step"),
    pytest.param(_result("s", first=_first(step=5)), _result("s", first=_first(step=7)), Kind.IMPROVED,
                 "was step 5", id="later-first-step"),
    pytest.param(_result("s", first=_first(step=5)), _result("s", first=_first(step=5, layer=0)), Kind.UNCHANGED,
                 "non-finite from step 5", id="same-first-step"),
    pytest.param(_drifting("s", 0.002), _drifting("s", 0.005), Kind.REGRESSED,
                 "drifted further: final loss 0.500% from the shadow, was 0.200%", id="drift-more-than-doubled"),
    pytest.param(_drifting("s", 0.0001), _drifting("s", 0.0009), Kind.UNCHANGED,
                 "final loss 0.090%", id="drift-doubled-below-the-floor"),
    pytest.param(_drifting("s", 0.002), _drifting("s", 0.0035), Kind.UNCHANGED,
                 "final loss 0.350%", id="drift-less-than-doubled"),
    pytest.param(_drifting("s", 0.005), _drifting("s", 0.002), Kind.IMPROVED, "drifts less", id="drift-halved"),
    pytest.param(_result("s"), _result("s", steps=20), Kind.INCOMPARABLE,
                 "steps, batch size, policy or optimizer changed", id="different-steps"),
    pytest.param(_result("s", first=_first(step=5)), _result("s", first=_first(step=3), policy="bfloat16"),
                 Kind.INCOMPARABLE, "changed", id="different-policy"),
])
def test_compare_scenarios_kinds(baseline: ScenarioResult, current: ScenarioResult, kind: Kind, why: str) -> None:
    (verdict,) = compare_scenarios([baseline], [current])
    assert verdict.name == "s" and verdict.kind is kind, verdict.why
    assert why in verdict.why
    assert verdict.baseline is baseline and verdict.current is current
    assert verdict.failing is (kind in (Kind.NEW_FAILURE, Kind.REGRESSED))


def test_compare_scenarios_new_missing_and_order() -> None:
    verdicts = compare_scenarios(
        [_result("kept"), _result("gone"), _result("worse")],
        [_result("kept"), _result("added", first=_first()), _result("worse", first=_first())],
    )
    assert [(v.name, v.kind) for v in verdicts] == [
        ("worse", Kind.NEW_FAILURE), ("gone", Kind.MISSING_CELL), ("added", Kind.NEW_CELL), ("kept", Kind.UNCHANGED)]
    assert verdicts[1].current is None and verdicts[2].baseline is None
    assert "new scenario: nonfinite" in verdicts[2].why and "not in the current run" in verdicts[1].why
    assert compare_scenarios([], []) == ()
