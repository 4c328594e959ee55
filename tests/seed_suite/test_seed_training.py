"""The seed training scenarios and the training section of docs/seeds.md.

The suite file loads, every scenario's claim has a prediction, and the section decides each
claim from the verdicts: a NaN claim holds when the run went non-finite; a fix claim holds
only when the fix removed the cause; a finite run that never learns does not prove a claim
that it is fine. Runs are built by hand (no training here); ``fpharness train`` is tested in
tests/training.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from harness.judgement.training import FirstNonFinite, ScenarioResult, StepRecord
from harness.plan.suite import load_suite
from suites.seeds.training_report import PREDICTS, training_lines

ROOT = Path(__file__).resolve().parents[2]


def test_every_seed_scenario_loads_and_has_a_prediction() -> None:
    suite = load_suite(ROOT / "suites" / "seed_training.toml")
    names = [s.name for s in suite.scenarios]
    assert sorted(names) == sorted(PREDICTS)
    assert all(s.claim for s in suite.scenarios)
    for s in suite.scenarios:  # a fix claim needs what it fixes
        assert (PREDICTS[s.name] == "fix") == bool(s.fixes), s.name
    # seed 001's and 002's models, under the policies the documents discuss
    assert {s.policy for s in suite.scenarios} >= {"float32", "float16", "mixed_float16"}
    assert {s.backend for s in suite.scenarios} == {"tensorflow", "jax"}


def _run(name: str, *, first: FirstNonFinite | None = None, fixes: str = "", losses: tuple[float, float] = (1.0, 1.0),
         grads_zero: bool = False) -> ScenarioResult:
    from harness.judgement.training import Entry, TensorStats

    zero = TensorStats(size=4, nan=0, inf=0, max_abs=0.0 if grads_zero else 1.0, headroom=10.0, underflow=0,
                       shadow_max_abs=0.0 if grads_zero else 1.0, precision=24)
    records = tuple(StepRecord(step=k, loss=losses[0], shadow_loss=losses[1],
                               entries=(Entry(0, "grad_weights", zero),)) for k in (1, 2))
    return ScenarioResult(name=name, framework="keras", backend="tensorflow", policy="float32", optimizer="adam",
                          loss="mse", steps=2, batch_size=4, seed=0, status="finite" if first is None else "nonfinite",
                          layers=(("dense", "Dense"), ("loss", "mse")), records=records, first=first, fixes=fixes,
                          claim="c")


NAN = FirstNonFinite(step=1, layer=1, name="loss", kind="mse", stage="forward", produced=True, nan=1, inf=0, size=1,
                     cause="log of 0", shadow_finite=True)


def _verdicts(*runs: ScenarioResult) -> dict[str, str]:
    lines = training_lines({"schema": 4, "scenarios": [r.to_json() for r in runs]})
    rows = [ln for ln in lines if ln.startswith("| 00")]
    return {re.search(r"`([^`]+)`", row).group(1): row.split(" | ")[4] for row in rows}  # type: ignore[union-attr]


def test_the_claims_are_decided_from_the_verdicts() -> None:
    base = _run("002-variance", first=NAN)
    removed = _run("002-variance-eps", fixes="002-variance")
    failed = _run("002-variance-eps-mixed_float16", first=NAN, fixes="002-variance")
    finite_claim = _run("002-relu-stack")  # the document says NaN; it stays finite
    stuck = _run("001-unscaled-log-loss-init0", grads_zero=True)
    verdicts = _verdicts(base, removed, failed, finite_claim, stuck)
    assert verdicts == {
        "002-variance": "holds",
        "002-variance-eps": "holds",
        "002-variance-eps-mixed_float16": "**fails**",
        "002-relu-stack": "**fails**",
        "001-unscaled-log-loss-init0": "**hides it**",
    }
    # a fix of a run that stayed finite proves nothing
    assert _verdicts(replace(base, first=None, status="finite"), removed)["002-variance-eps"] == "untested"


def test_the_committed_page_answers_the_model_claims() -> None:
    docs = (ROOT / "docs" / "seeds.md").read_text(encoding="utf-8")
    assert "## The models in training (seeds 001 and 002)" in docs
    for name in PREDICTS:
        assert f"`{name}`" in docs, name
