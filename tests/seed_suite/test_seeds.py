"""The seed suite: its records agree with suites/seeds.toml, its oracles mean what the
documents mean, and the key verdicts come out as the mathematics says they must.

Every expected count here is derived in the test from the mathematics (mpmath for exact
values, numpy only for IEEE rounding of single operations, the way the kernels round), never
copied from a run. That holds for the gradient cells too (the backward pass each framework
runs, judged against the oracles' gradients); the gradients themselves are checked against
independent derivations in test_seed_gradients.py. Cells are run one at a time through :class:`harness.execution.runner.Runner`, on
small input sets wherever the claim allows, so the file stays well under three minutes.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mpmath import mp, mpf

import suites.seeds
from harness.execution.runner import Runner
from harness.plan.cells import CellResult, CellSpec
from oracles.evaluate import evaluate
from oracles.formats import get_format
from oracles.registry import get_oracle
from suites.seeds import SEEDS
from suites.seeds.claims import CATEGORIES, Check, Claim
from suites.seeds.fixtures import FIXTURES, INPUTS_DIR, write_all
from suites.seeds.report import decide, render

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "suites" / "seeds.toml"
SHARED_SEEDS = ROOT.parent / "shared" / "seeds"

F16 = get_format("float16")
F32 = get_format("float32")

S000 = "suites.seeds.seed000_softplus"
S001 = "suites.seeds.seed001_bce"
S002 = "suites.seeds.seed002_variance"
S003 = "suites.seeds.seed003_losses"
S004 = "suites.seeds.seed004_softmax"


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runner() -> Runner:
    """One runner for the module: cells on the same inputs share their reference values."""
    return Runner()


def run_cell(
    runner: Runner,
    impl: str,
    oracle: str,
    dtype: str,
    inputs: str,
    *,
    framework: str = "tensorflow",
    params: dict[str, Any] | None = None,
    wrt: str = "",
    cotangent: str = "ones",
) -> CellResult:
    bound = get_oracle(oracle).bind(params or {})
    spec = CellSpec(oracle, impl, framework, dtype, "cpu", inputs, tuple(sorted(bound.items())), custom=":" in impl,
                    wrt=wrt, cotangent=cotangent)
    result = runner.run(spec)
    assert result.status in ("pass", "fail"), f"{spec.id}: {result.status}: {result.reason}"
    assert result.summary is not None
    return result


def incidence(result: CellResult) -> dict[str, int]:
    assert result.summary is not None
    return result.summary.incidence


def needs(module: str) -> None:
    pytest.importorskip(module)


def all_float16() -> np.ndarray:
    return F16.from_bits(F16.all_bit_patterns())


def f16_via_f32(v: mpf) -> np.float16:
    """How TensorFlow's float16 kernels round: the float32 result, rounded to float16.
    (mpf -> float64 -> float32 is one correct rounding up to ties no input here meets.)"""
    with np.errstate(over="ignore"):  # overflow to inf is what the callers look for
        return np.float16(np.float32(float(v)))


def softplus_exact(x: float) -> mpf:
    with mp.workprec(200):
        return mp.log1p(mp.exp(mpf(x)))


def write_npz(tmp_path: Path, name: str, **arrays: Any) -> str:
    path = tmp_path / f"{name}.npz"
    np.savez(path, **arrays)
    return f"npz:{path}"


# -- records, suite and fixtures agree ------------------------------------------------------


def test_every_seed_module_names_its_document() -> None:
    assert [s.number for s in SEEDS] == ["000", "001", "002", "003", "004"]
    for seed in SEEDS:
        module = __import__(seed.module, fromlist=["SEED"])
        assert seed.file in (module.__doc__ or ""), seed.module
        assert module.SEED is seed


def test_claim_categories_are_the_verdict_categories() -> None:
    from harness.judgement.summary import CATEGORIES as VERDICT_CATEGORIES

    assert CATEGORIES == VERDICT_CATEGORIES


def test_every_seed_implementation_is_in_the_suite_and_back() -> None:
    from harness.plan.suite import load_suite

    cells = load_suite(SUITE).cells
    in_suite = {c.impl for c in cells}
    recorded = {i.impl for s in SEEDS for i in s.impls}
    assert recorded <= in_suite, sorted(recorded - in_suite)
    custom = {c.impl for c in cells if c.custom}
    assert custom <= recorded, sorted(custom - recorded)
    for seed in SEEDS:
        for impl in seed.impls:
            for claim in impl.claims:
                judged = {c.oracle for c in cells if c.impl == impl.impl}
                assert claim.check.oracle in judged, f"{impl.label}: {claim.check.oracle} never judged"


def test_every_seed_implementation_has_gradient_cells_and_every_gradient_claim_is_judged() -> None:
    from harness.plan.suite import load_suite

    cells = load_suite(SUITE).cells
    for seed in SEEDS:
        for impl in seed.impls:
            mine = [c for c in cells if c.impl == impl.impl]
            # whatever an implementation is judged against in a dtype, its gradient is too
            # (on the same inputs, or on smaller ones where suites/seeds.toml says why)
            forward = {(c.oracle, c.dtype, c.device, c.params) for c in mine if not c.is_grad}
            grads = {(c.oracle, c.dtype, c.device, c.params) for c in mine if c.is_grad}
            assert forward == grads, f"{impl.label}: no gradient cell for {sorted(forward - grads)}"
            for claim in impl.claims:
                if claim.check.wrt:
                    judged = [c for c in mine if c.oracle == claim.check.oracle and c.wrt == claim.check.wrt
                              and claim.check.applies_to(c.inputs)]
                    assert judged, f"{impl.label}: {claim.check.describe()} is never judged"


def test_every_registered_oracle_is_used_by_the_suite() -> None:
    from harness.plan.suite import load_suite

    used = {c.oracle for c in load_suite(SUITE).cells}
    for seed in SEEDS:
        for name in seed.oracles:
            assert get_oracle(name).name == name
            assert name in used, name


@pytest.mark.skipif(not SHARED_SEEDS.is_dir(), reason="the seed documents are not checked out here")
def test_quotes_are_in_the_documents() -> None:
    for seed in SEEDS:
        text = " ".join((SHARED_SEEDS / seed.file).read_text(encoding="utf-8").split())
        for impl in seed.impls:
            for claim in impl.claims:
                assert " ".join(claim.quote.split()) in text, f"{seed.file}: {claim.quote!r}"


def test_fixtures_are_generated_from_the_module(tmp_path: Path) -> None:
    for path in write_all(tmp_path):
        committed = np.load(INPUTS_DIR / path.name)
        fresh = np.load(path)
        assert sorted(committed.files) == sorted(fresh.files)
        for key in fresh.files:
            np.testing.assert_array_equal(committed[key], fresh[key])
            assert committed[key].dtype == fresh[key].dtype
    for fixture in FIXTURES:
        for dtype in fixture.dtypes:  # the file is usable in every dtype the suite uses it in
            for key, arr in fixture.as_numpy().items():
                if key != "target":
                    get_format(dtype).from_float64(arr.astype(np.float64), what=fixture.name)


def test_suite_uses_fixtures_only_in_their_dtypes() -> None:
    from harness.plan.suite import load_suite

    allowed = {f.spec: set(f.dtypes) for f in FIXTURES}
    for cell in load_suite(SUITE).cells:
        if cell.inputs.startswith("npz:"):
            assert cell.dtype in allowed[cell.inputs], cell.id


# -- the oracles mean what the documents mean ------------------------------------------------


def test_variance_normalize_is_x_over_population_variance() -> None:
    rows = np.array([[1.0, -2.0, 3.0, -4.0], [-1.0, -1.0, -1.0, -1.0], [0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    got = evaluate(get_oracle("variance_normalize"), [rows], F32).want
    for row, out in zip(rows, got, strict=True):
        xs = [Fraction(v) for v in row]
        mean = sum(xs) / len(xs)
        var = sum((v - mean) ** 2 for v in xs) / len(xs)
        for v, o in zip(xs, out, strict=True):
            if var:
                assert o == np.float32(float(v / var))
            elif v:
                assert o == math.copysign(math.inf, v)
            else:
                assert math.isnan(o)
    eps = evaluate(get_oracle("variance_normalize_eps"), [rows[1:2]], F32, {"eps": 1e-7}).want
    assert np.all(eps == np.float32(-1 / 1e-7))


def test_ratio_loss_divides_by_an_exact_zero() -> None:
    p = np.array([[0.5, -0.5, 2.0, 0.0], [-1.0, -2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    y = np.array([[0.0, 0.0, 1.0, 1.0], [-1.0, -2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    got = evaluate(get_oracle("ratio_loss"), [p, y], F32).want
    assert got[0] == math.inf and got[1] == -math.inf and math.isnan(got[2])
    eps = evaluate(get_oracle("ratio_loss_eps"), [p, y], F32).want
    assert eps[0] == np.float32(2 / 1e-7) and eps[1] == np.float32(-3 / 1e-7) and eps[2] == 0


def test_clipped_neg_log_at_one_is_minus_log_of_the_bound() -> None:
    got = evaluate(get_oracle("clipped_neg_log"), [np.array([1.0, 2.0, 0.0, -1.0])], F32).want
    with mp.workprec(200):
        top = -mp.log1p(-mpf(1e-7))
        bottom = -mp.log(mpf(1e-7))
    assert list(got) == [np.float32(float(top))] * 2 + [np.float32(float(bottom))] * 2


# -- 000 softplus ----------------------------------------------------------------------------


def _float16_naive_softplus_sets() -> tuple[set[float], set[float]]:
    """The float16 inputs where log(1 + exp(x)) overflows and where it is lost to zero,
    with every operation rounded the way TensorFlow's float16 kernels round (computed in
    float32, rounded to float16; numpy's float16 addition does the same)."""
    overflow: set[float] = set()
    lost: set[float] = set()
    tiny = mpf(2) ** -25  # below half the smallest subnormal, float16 rounds to zero
    for x in all_float16():
        xf = float(x)
        if not math.isfinite(xf):
            continue
        with mp.workprec(100):
            e16 = f16_via_f32(mp.exp(mpf(xf)))
        if math.isinf(e16):
            overflow.add(xf)
        elif np.float16(1) + e16 == np.float16(1) and softplus_exact(xf) > tiny:
            lost.add(xf)
    return overflow, lost


@pytest.fixture(scope="module")
def float16_softplus_sets() -> tuple[set[float], set[float]]:
    return _float16_naive_softplus_sets()


def test_naive_softplus_float16_overflows_exactly_where_exp_does(
    runner: Runner, float16_softplus_sets: tuple[set[float], set[float]]
) -> None:
    needs("tensorflow")
    overflow, lost = float16_softplus_sets
    # exp(x) >= 65520 (float16's overflow threshold) exactly when x >= log(65520) = 11.0901
    assert min(overflow) == 11.09375 and max(overflow) == 65504.0
    assert all(x > math.log(65520) for x in overflow)
    result = run_cell(runner, f"{S000}:naive_softplus", "softplus", "float16", "exhaustive")
    inc = incidence(result)
    assert inc["unexpected_inf"] == len(overflow)
    assert inc["lost_to_zero"] == len(lost)
    assert inc["unexpected_nan"] == 0  # the document's NaN does not come from this function
    assert inc["inherent_inf"] == 1  # softplus(+inf) = +inf


def test_stabilized_softplus_float16_still_overflows_below_20(
    runner: Runner, float16_softplus_sets: tuple[set[float], set[float]]
) -> None:
    needs("tensorflow")
    overflow, lost = float16_softplus_sets
    below_20 = {x for x in overflow if x < 20}
    assert min(below_20) > 11.09 and max(below_20) < 20
    result = run_cell(runner, f"{S000}:stabilized_softplus", "softplus", "float16", "exhaustive")
    inc = incidence(result)
    assert inc["unexpected_inf"] == len(below_20)
    assert inc["lost_to_zero"] == len(lost)  # the "stabilisation" does nothing for x < 20
    claim = next(c for i in suites.seeds.seed000_softplus.SEED.impls for c in i.claims if c.quote == "avoids NaN issues")
    verdict = decide(claim, f"{S000}:stabilized_softplus", "float16", [result.to_json()])
    assert verdict.holds is False


def test_naive_softplus_float32_loses_where_one_plus_exp_rounds_to_one(runner: Runner) -> None:
    needs("tensorflow")
    from harness.plan.inputs import parse_inputs

    spec = "normal:0:10:5000:3"
    xs = parse_inputs(spec).generate(get_oracle("softplus"), F32).batches[0].arrays[0]
    lost = overflow = 0
    for x in xs.astype(np.float64):
        with mp.workprec(100), np.errstate(over="ignore"):
            e32 = np.float32(float(mp.exp(mpf(x))))
        if math.isinf(e32):
            overflow += 1
        elif np.float32(1) + e32 == np.float32(1) and softplus_exact(x) > mpf(2) ** -150:
            lost += 1
    assert lost > 100  # x < log(2**-24) = -16.6 is common under N(0, 10)
    inc = incidence(run_cell(runner, f"{S000}:naive_softplus", "softplus", "float32", spec))
    assert inc["lost_to_zero"] == lost
    assert inc["unexpected_inf"] == overflow


# -- 001 custom_loss_with_log --------------------------------------------------------------


def test_custom_loss_with_log_is_nan_for_a_confident_right_answer(runner: Runner) -> None:
    needs("tensorflow")
    from harness.plan.inputs import parse_inputs

    batch = parse_inputs("special").generate(get_oracle("binary_cross_entropy"), F16).batches[0]
    p, y = (a.astype(np.float64) for a in batch.arrays)
    # clip(1, 1e-7, 1) = 1, so (1 - y) * log(1 - 1) is 0 * -inf = NaN, while the loss is 0
    nan_expected = int(np.sum((p == 1) & (y == 1)))
    # and for y < 1 the loss is +inf: the clip's upper bound 1.0 does not keep log away from 0
    inf_expected = int(np.sum((p == 1) & (y < 1)))
    assert nan_expected == 1 and inf_expected == 2
    result = run_cell(runner, f"{S001}:custom_loss_with_log_per_sample", "binary_cross_entropy", "float16", "special")
    inc = incidence(result)
    assert inc["unexpected_nan"] == nan_expected
    assert inc["inherent_inf"] == inf_expected
    nan_example = next(e for e in result.summary.examples if e.category == "unexpected_nan")  # type: ignore[union-attr]
    assert [float(v) for v in nan_example.input_values] == [1.0, 1.0]


def test_custom_loss_with_log_mean_is_inf_not_nan_on_the_document_example(runner: Runner, tmp_path: Path) -> None:
    needs("tensorflow")
    # y_true = [1, 0, 1, 0], y_pred = [0, 1, 0, 1]: the y=0, p=1 terms are log(1 - 1) = -inf
    spec = write_npz(tmp_path, "problematic", p=np.array([0.0, 1.0, 0.0, 1.0], np.float32), y=np.array([1.0, 0.0, 1.0, 0.0], np.float32))
    for dtype in ("float16", "bfloat16", "float32"):
        result = run_cell(runner, f"{S001}:custom_loss_with_log_mean", "binary_cross_entropy", dtype, spec, params={"reduction": "mean"})
        assert incidence(result) == dict.fromkeys(CATEGORIES, 0) | {"inherent_inf": 1}


# -- 002 MyCustomLayer ---------------------------------------------------------------------


def test_my_custom_layer_and_its_fix_on_the_document_rows(runner: Runner, tmp_path: Path) -> None:
    needs("tensorflow")
    rows = np.array([[1.0] * 10, list(range(1, 11)), [0.0] * 10], np.float32)
    spec = write_npz(tmp_path, "x_train", x=rows)
    none = dict.fromkeys(CATEGORIES, 0)
    # x / var: the constant row of ones is 1/0 = +inf (the formula, not the arithmetic), and
    # the zero row is 0/0 = NaN as the truth is: no defect at all
    for dtype in ("float16", "bfloat16", "float32"):
        r = run_cell(runner, f"{S002}:my_custom_layer", "variance_normalize", dtype, spec)
        assert incidence(r) == none | {"inherent_inf": 10}
    # the fix: 1 / (0 + eps) with eps = 1e-7 stored in the dtype. In float16 1e-7 is the
    # subnormal 2**-23 and 1 / 2**-23 = 8388608 > 65504: still +inf, and so is the truth
    # 1 / 1e-7 = 1e7 of the modified function. In bfloat16 and float32 it is finite.
    assert np.float16(1e-7) == np.float16(2.0**-23) and 1 / float(np.float16(1e-7)) > 65504
    fixed = f"{S002}:my_custom_layer_fixed"
    assert incidence(run_cell(runner, fixed, "variance_normalize_eps", "float16", spec)) == none | {"inherent_inf": 10}
    assert incidence(run_cell(runner, fixed, "variance_normalize_eps", "float32", spec)) == none
    # against what the author meant, the fix changes the answer: 0/0 becomes 0 (noNaN) and,
    # where the dtype can hold 1e7, 1/0 becomes finite (noInf)
    assert incidence(run_cell(runner, fixed, "variance_normalize", "float16", spec)) == none | {
        "inherent_inf": 10, "missing_nan": 10}
    assert incidence(run_cell(runner, fixed, "variance_normalize", "float32", spec)) == none | {
        "missing_inf": 10, "missing_nan": 10}


# -- 003 Example 1: -log(clip(p, 1e-7, 1 - 1e-7)) ---------------------------------------------


def test_corrected_log_loss_float16_against_the_clipped_function(runner: Runner) -> None:
    needs("tensorflow")
    hi, lo = np.float16(1 - 1e-7), np.float16(1e-7)
    assert hi == 1.0  # 1 - 1e-7 rounds to 1 in float16: the upper clip is a no-op
    assert lo == np.float16(2.0**-23)  # and 1e-7 rounds to the subnormal 1.19e-7
    xs = all_float16().astype(np.float64)
    # every p >= 1 (and +inf) is clipped to 1.0 and gives -log(1) = 0, where the clipped
    # function is -log(1 - 1e-7) = 1.0e-7, which float16 rounds to 2**-23, not 0
    with mp.workprec(200):
        truth_at_top = -mp.log1p(-mpf(1e-7))
    assert np.float16(float(truth_at_top)) != 0
    lost = int(np.sum(xs >= 1.0))
    # below the lower bound the result is -log(2**-23) = 15.94, where -log(1e-7) = 16.118:
    # the rounded constant, not the log, is what is off
    with mp.workprec(200):
        want = -mp.log(mpf(1e-7))
        got = f16_via_f32(-mp.log(mpf(float(lo))))
    ulp = 2.0 ** (math.floor(math.log2(float(want))) - 10)
    worst = abs(float(mpf(float(got)) - want)) / ulp
    assert 11 < worst < 11.1
    result = run_cell(runner, f"{S003}:ex1_corrected", "clipped_neg_log", "float16", "exhaustive")
    inc = incidence(result)
    assert inc["lost_to_zero"] == lost == 0x7C00 - 0x3C00 + 1
    assert result.summary is not None and result.summary.ulp_max == pytest.approx(worst, rel=1e-9)
    assert inc["unexpected_nan"] == inc["unexpected_inf"] == inc["missing_nan"] == 0


# -- 003 Examples 2 and 3 -------------------------------------------------------------------


def test_division_loss_epsilon_still_overflows_in_float16(runner: Runner, tmp_path: Path) -> None:
    needs("tensorflow")
    p = np.array([[1, 2, 3, 4], [0, 0, 0, 0], [1, 0, 0, 0], [-1, -2, -3, -4]], np.float32)
    y = np.array([[1, 2, 3, 4], [0, 0, 0, 0], [0, 1, 0, 0], [-1, -2, -3, -4]], np.float32)
    spec = write_npz(tmp_path, "zero_den", p=p, y=y)
    sums = y.sum(axis=1)
    zero_den = (p - y).sum(axis=1) == 0
    assert zero_den.all()
    # sum(y) / (0 + fl16(1e-7)) overflows float16 for |sum(y)| >= 65520 * 2**-23 = 0.0078,
    # and the modified function sum(y) / 1e-7 overflows for |sum(y)| >= 0.00655: inherent
    n_inf = int(np.sum(np.abs(sums) >= 65520 * 2.0**-23))
    assert n_inf == 3
    none = dict.fromkeys(CATEGORIES, 0)
    corrected = f"{S003}:ex2_corrected_rows"
    assert incidence(run_cell(runner, corrected, "ratio_loss_eps", "float16", spec)) == none | {"inherent_inf": n_inf}
    assert incidence(run_cell(runner, corrected, "ratio_loss_eps", "float32", spec)) == none
    # against what the author meant (sum(y) / 0 = +-inf, 0 / 0 = NaN) the fix changes the answer
    assert incidence(run_cell(runner, corrected, "ratio_loss", "float32", spec)) == none | {
        "missing_inf": n_inf, "missing_nan": 1}
    assert incidence(run_cell(runner, f"{S003}:ex2_incorrect_rows", "ratio_loss", "float32", spec)) == none | {
        "inherent_inf": n_inf}


def test_exponential_loss_document_example_is_finite_and_the_clip_never_engages(runner: Runner, tmp_path: Path) -> None:
    needs("tensorflow")
    # the document's own example: y_true - y_pred = -1 everywhere, so the loss is e
    spec = write_npz(tmp_path, "ex3", p=np.array([[1001.0, 2001.0, 3001.0]], np.float32), y=np.array([[1000.0, 2000.0, 3000.0]], np.float32))
    for impl in ("ex3_custom_rows", "ex3_corrected_rows"):
        r = run_cell(runner, f"{S003}:{impl}", "mean_exp_square", "float32", spec)
        assert incidence(r) == dict.fromkeys(CATEGORIES, 0)
        assert r.summary is not None and r.summary.ulp_max <= 1
    # exp(d**2) overflows float32 once d**2 > log(2**128) = 88.7, i.e. |d| > 9.42: a clip
    # at 100 changes nothing that is still finite, so both versions fail identically
    assert math.sqrt(128 * math.log(2)) < 100
    cells = {
        impl: run_cell(runner, f"{S003}:{impl}", "mean_exp_square", "float32", "normal:0:10:2000")
        for impl in ("ex3_custom_rows", "ex3_corrected_rows")
    }
    a, b = (incidence(c) for c in cells.values())
    assert a == b and a["inherent_inf"] + a["unexpected_inf"] > 0


# -- 004 softmax -----------------------------------------------------------------------------


def test_naive_softmax_is_nan_on_the_document_rows_and_stable_softmax_exact(runner: Runner, tmp_path: Path) -> None:
    needs("torch")
    rows = np.array([[1000.0, 2000.0, 3000.0], [4000.0, 5000.0, 6000.0]], np.float32)
    spec = write_npz(tmp_path, "ex1", x=rows)
    # every entry exceeds log(2**128) = 88.7: exp overflows everywhere, inf / inf = NaN,
    # while the truth is (0, 0, 1) up to e**-1000
    assert (rows > 128 * math.log(2)).all()
    naive = run_cell(runner, f"{S004}:naive_softmax", "softmax", "float32", spec, framework="torch")
    assert incidence(naive)["unexpected_nan"] == rows.size
    stable = run_cell(runner, f"{S004}:stable_softmax", "softmax", "float32", spec, framework="torch")
    assert stable.summary is not None and stable.summary.correctly_rounded == rows.size


# -- gradients (the backward pass) ----------------------------------------------------------


def test_softplus_backward_is_nan_wherever_exp_overflows_tf_where_or_not(
    runner: Runner, float16_softplus_sets: tuple[set[float], set[float]]
) -> None:
    """TensorFlow differentiates log(1 + exp(x)) as (1 / (1 + e)) * e: 0 * inf = NaN once
    exp(x) overflows, and +inf, where the true gradient (the sigmoid) is 1. tf.where's
    untaken branch is differentiated too (tensorflow/tensorflow#38349): the "stabilized"
    version is NaN at the same inputs, x >= 20 included, where its forward value is x."""
    needs("tensorflow")
    overflow, _lost = float16_softplus_sets
    assert any(x >= 20 for x in overflow)
    results = {
        impl: run_cell(runner, f"{S000}:{impl}", "softplus", "float16", "exhaustive", wrt="x")
        for impl in ("naive_softplus", "stabilized_softplus")
    }
    for result in results.values():
        inc = incidence(result)
        assert inc["unexpected_nan"] == len(overflow) + 1  # and x = +inf, whose gradient is 1
        assert inc["missing_nan"] == inc["unexpected_inf"] == inc["lost_to_zero"] == 0
        nan_inputs = {float(e.input_values[0]) for e in result.summary.examples  # type: ignore[union-attr]
                      if e.category == "unexpected_nan"}
        assert nan_inputs and nan_inputs <= overflow | {math.inf}
    # the claims: the gradient claim is decided on the gradient cell alone, the forward one
    # on the forward cell alone (adding gradient cells never changes a forward verdict)
    forward = run_cell(runner, f"{S000}:stabilized_softplus", "softplus", "float16", "exhaustive")
    stab = next(i for i in suites.seeds.seed000_softplus.SEED.impls if i.label == "StabilizedSoftplus")
    fwd_claim, grad_claim = stab.claims
    assert grad_claim.check.wrt == "x" and not fwd_claim.check.wrt
    cells = [forward.to_json(), results["stabilized_softplus"].to_json()]
    alone = decide(fwd_claim, stab.impl, "float16", [forward.to_json()])
    assert decide(fwd_claim, stab.impl, "float16", cells) == alone
    verdict = decide(grad_claim, stab.impl, "float16", cells)
    assert verdict.holds is False and dict(verdict.counts)["unexpected_nan"] == len(overflow) + 1


def test_corrected_log_loss_float16_gradient_is_zero_where_clipped(runner: Runner, tmp_path: Path) -> None:
    """tf.clip_by_value(p, 1e-7, 1 - 1e-7) passes no gradient where it clips. In float16 the
    bounds are 2**-23 and 1: every finite p > 1 gets 0 where -1/p is a float16 number (lost
    to zero), and p = +-0 and 2**-24 get 0 where -1/p is -inf (noInf). Against the clipped
    function the zeros are right; only p = 1, which the float16 bound 1.0 does not clip but
    the exact bound 1 - 1e-7 does, is off: -1 where the truth is 0."""
    needs("tensorflow")
    xs = all_float16().astype(np.float64)
    above = xs[np.isfinite(xs) & (xs > 1.0)]
    with np.errstate(over="ignore", divide="ignore"):
        assert np.all(np.float16(-1.0) / above.astype(np.float16) != 0)
    tiny = [0.0, -0.0, 2.0**-24]
    with np.errstate(over="ignore"):
        assert all(float(np.float16(1e-7)) > v for v in tiny) and np.float16(-1 / 2.0**-24) == -np.inf
    inc = incidence(run_cell(runner, f"{S003}:ex1_corrected", "neg_log", "float16", "exhaustive", wrt="p"))
    assert inc["lost_to_zero"] == above.size == 0x7BFF - 0x3C00
    assert inc["missing_inf"] == len(tiny)
    assert inc["unexpected_nan"] == inc["unexpected_inf"] == 0
    # against the clipped function, on the values that decide it (the exhaustive sweep of
    # the user oracle's gradient would take as long as the rest of this file)
    ps = np.array([*tiny, 2.0**-23, 0.5, 1.0, 2.0, 65504.0, np.inf, -1.0], np.float16)
    clipped = run_cell(runner, f"{S003}:ex1_corrected", "clipped_neg_log", "float16", write_npz(tmp_path, "p", p=ps),
                       wrt="p")
    cinc = incidence(clipped)
    assert cinc["lost_to_zero"] == cinc["missing_inf"] == cinc["unexpected_nan"] == 0
    assert cinc["inherent_inf"] == 1  # p = 2**-23 is inside both bounds: -1/p overflows, truly
    assert clipped.summary is not None
    worst = clipped.summary.worst[0]
    assert [float(v) for v in worst.input_values] == [1.0, 1.0]  # p = 1, cotangent 1
    assert float(worst.got_value) == -1.0 and float(worst.want_value) == 0.0
    assert clipped.summary.ulp_max == 2.0**24  # |-1 - 0| / ulp(0) = 1 / 2**-24


def test_custom_loss_with_log_float16_gradient_nan_where_y_over_p_overflows(runner: Runner, tmp_path: Path) -> None:
    """The backward pass of y * log(q) is y * (1 / q): with y = 0 and 1 / q above float16's
    range that is 0 * inf = NaN where the truth is 1 / (1 - p); and (1 - y) * log(1 - q) at
    p = y = 1 is 0 * inf too (the truth is -1). The clip passes no gradient below its float16
    bound 2**-23, so only q in [2**-23, 1 / 65520] and p = y = 1 are NaN."""
    needs("tensorflow")
    xs = all_float16().astype(np.float64)
    lo = float(np.float16(1e-7))
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        recip_inf = np.isinf(np.float16(1.0) / xs.astype(np.float16))
    inside = np.isfinite(xs) & (xs >= lo) & (xs <= 1.0)
    nan_expected = int(np.sum(inside & recip_inf)) + 1  # y = 0 ones, and p = y = 1
    assert nan_expected == 256
    # every float16 p with the labels 0, 1/2, 1 (the built-in gradient oracle is fast) ...
    r = run_cell(runner, f"{S001}:custom_loss_with_log_per_sample", "binary_cross_entropy", "float16", "exhaustive",
                 wrt="p")
    assert incidence(r)["unexpected_nan"] == nan_expected
    shown = {tuple(float(v) for v in e.input_values[:2]) for e in r.summary.examples  # type: ignore[union-attr]
             if e.category == "unexpected_nan"}
    assert shown and all((y == 0.0 and lo <= p <= 2.0**-16) or (p, y) == (1.0, 1.0) for p, y in shown)
    # ... and against the clipped function (a user oracle, evaluated in mpmath) the same NaNs,
    # on p from 0 to 2**-14 and at 1 with y = 0 and 1: the clip's zeros below 2**-23 are right
    small = xs[(xs >= 0) & (xs <= 2.0**-14)]
    ps = np.concatenate([small, small, [1.0, 1.0]]).astype(np.float16)
    ys = np.concatenate([np.zeros(small.size), np.ones(small.size), [0.0, 1.0]]).astype(np.float16)
    spec = write_npz(tmp_path, "bce", p=ps, y=ys)
    clipped = incidence(run_cell(runner, f"{S001}:custom_loss_with_log_per_sample", "clipped_binary_cross_entropy",
                                 "float16", spec, params={"lo": 1e-7, "hi": 1.0}, wrt="p"))
    assert clipped["unexpected_nan"] == nan_expected
    assert clipped["lost_to_zero"] == clipped["missing_nan"] == clipped["missing_inf"] == 0


def test_variance_layers_backward_on_the_document_rows(runner: Runner, tmp_path: Path) -> None:
    """Constant rows have no gradient (NaN is the truth), so MyCustomLayer's NaN there is
    right. The revised layer's backward pass divides x by var + eps twice: in float16 eps is
    2**-23, and on the row of ones that overflows while d var / d x_j = 0, so 0 * inf = NaN
    where the truth 1 / 1e-7 rounds to inf; on the zero row it is 1 / 2**-23 = inf, as the
    truth rounds. In float32 every value is right."""
    needs("tensorflow")
    rows = np.array([[1.0] * 10, list(range(1, 11)), [0.0] * 10], np.float32)
    spec = write_npz(tmp_path, "x_train", x=rows)
    none = dict.fromkeys(CATEGORIES, 0)
    with np.errstate(over="ignore"):
        assert np.float16(1) / np.float16(1e-7) == np.inf and np.float16(1 / 1e-7) == np.inf
    fixed = f"{S002}:my_custom_layer_fixed"
    assert incidence(run_cell(runner, fixed, "variance_normalize_eps", "float16", spec, wrt="x")) == none | {
        "unexpected_nan": 10, "inherent_inf": 10}
    assert incidence(run_cell(runner, fixed, "variance_normalize_eps", "float32", spec, wrt="x")) == none
    assert incidence(run_cell(runner, f"{S002}:my_custom_layer", "variance_normalize", "float32", spec, wrt="x")) == none


def test_naive_softmax_backward_is_nan_on_the_document_rows(runner: Runner, tmp_path: Path) -> None:
    needs("torch")
    rows = np.array([[1000.0, 2000.0, 3000.0], [4000.0, 5000.0, 6000.0]], np.float32)
    spec = write_npz(tmp_path, "ex1", x=rows)
    naive = run_cell(runner, f"{S004}:naive_softmax", "softmax", "float32", spec, framework="torch",
                     wrt="x", cotangent="random")
    assert incidence(naive)["unexpected_nan"] == rows.size
    stable = run_cell(runner, f"{S004}:stable_softmax", "softmax", "float32", spec, framework="torch",
                      wrt="x", cotangent="random")
    assert stable.summary is not None and stable.summary.correctly_rounded == rows.size


# -- deciding claims and rendering ---------------------------------------------------------


def _cell(impl: str, oracle: str, dtype: str, inputs: str, *, wrt: str = "", **counts: int) -> dict[str, Any]:
    cell: dict[str, Any] = {
        "id": f"{oracle}[{impl}-cpu-{dtype}-{inputs}]", "impl": impl, "oracle": oracle, "dtype": dtype,
        "device": "cpu", "inputs": inputs, "status": "fail" if counts else "pass", "params": {},
        "n": 10, "ulp": {"max": 0.5}, "incidence": dict.fromkeys(CATEGORIES, 0) | counts,
        "examples": [], "worst": [], "pass": "forward",
    }
    if wrt:
        cell |= {"pass": "grad", "wrt": wrt, "cotangent": "ones", "id": f"∂{cell['id']}"}
    return cell


def test_decide_clean_defect_and_inputs() -> None:
    clean = Claim("q", "m", Check("softplus", "clean", ("unexpected_inf",), max_ulp=1))
    defect = Claim("q", "m", Check("softplus", "defect", ("unexpected_nan",), inputs=("npz:",)))
    cells = [
        _cell("a", "softplus", "float16", "exhaustive", unexpected_inf=3),
        _cell("a", "softplus", "float32", "special"),
        _cell("a", "softplus", "float32", "npz:x.npz", unexpected_nan=1),
        _cell("a", "log", "float16", "exhaustive"),
    ]
    assert decide(clean, "a", "float16", cells).holds is False
    assert decide(clean, "a", "float32", cells).holds is True
    assert decide(clean, "a", "bfloat16", cells).holds is None
    assert decide(defect, "a", "float32", cells).holds is True
    assert decide(defect, "a", "float16", cells).holds is None  # no npz cell in float16
    assert "Inf! 3" in decide(clean, "a", "float16", cells).text()


def test_decide_like_compares_input_set_by_input_set() -> None:
    like = Claim("q", "m", Check("softplus", "like", ("lost_to_zero",), max_ulp=1, versus="ref"))
    cells = [
        _cell("a", "softplus", "float16", "exhaustive", lost_to_zero=2),
        _cell("ref", "softplus", "float16", "exhaustive", lost_to_zero=2),
        _cell("a", "softplus", "float32", "special", lost_to_zero=1),
        _cell("ref", "softplus", "float32", "special"),
        _cell("a", "softplus", "bfloat16", "special"),
    ]
    assert decide(like, "a", "float16", cells).holds is True
    assert decide(like, "a", "float32", cells).holds is False
    assert decide(like, "a", "bfloat16", cells).holds is None  # the reference never ran there
    assert "→0 1 vs 0" in decide(like, "a", "float32", cells).text()
    with pytest.raises(Exception, match="versus"):
        Check("softplus", "like", ("lost_to_zero",))


def test_decide_keeps_forward_and_gradient_claims_apart() -> None:
    fwd = Claim("q", "m", Check("softplus", "clean", ("unexpected_nan",)))
    grad = Claim("q", "m", Check("softplus", "clean", ("unexpected_nan",), wrt="x"))
    cells = [
        _cell("a", "softplus", "float16", "exhaustive"),
        _cell("a", "softplus", "float16", "exhaustive", wrt="x", unexpected_nan=7),
    ]
    assert decide(fwd, "a", "float16", cells).holds is True
    assert decide(fwd, "a", "float16", cells[:1]) == decide(fwd, "a", "float16", cells)
    verdict = decide(grad, "a", "float16", cells)
    assert verdict.holds is False and verdict.counts == (("unexpected_nan", 7),)
    assert decide(grad, "a", "float16", cells[:1]).holds is None  # no gradient cell: not measured
    assert "`∂softplus` (the gradient)" in grad.check.describe()
    bce = Check("binary_cross_entropy", "clean", ("unexpected_nan",), wrt="p")
    assert bce.subject == "∂binary_cross_entropy/∂p"


def test_render_puts_gradients_in_their_own_sections_and_keeps_the_forward_part() -> None:
    forward = [_cell(f"{S000}:naive_softplus", "softplus", "float16", "exhaustive", unexpected_inf=3)]
    grad = _cell(f"{S000}:naive_softplus", "softplus", "float16", "exhaustive", wrt="x", unexpected_nan=5)
    grad["profile"] = {
        "version": 1, "bins": 256,
        "incidence": {"unexpected_nan": [[200, 4, 11.09375, 20.0], [256, 1, None, None]]},
    }
    grad["examples"] = [{"category": "unexpected_nan", "input_values": ["11.09375", "1.0"], "got_value": "nan",
                         "want_value": "1.0"}]
    bce = _cell(f"{S001}:custom_loss_with_log_per_sample", "binary_cross_entropy", "float32", "special", wrt="p",
                lost_to_zero=2)
    bce["examples"] = [{"category": "lost_to_zero", "input_values": ["1e-08", "1.0", "1.0"], "got_value": "0.0",
                        "want_value": "-1e+08"}]
    plain = render({"schema": 2, "run": {}, "cells": forward})
    both = render({"schema": 2, "run": {}, "cells": [*forward, grad, bce]})
    assert "## The backward pass" not in plain and "## The backward pass" in both
    lines = iter(both.splitlines())
    assert all(line in lines for line in plain.splitlines())  # the forward page, in order, unchanged
    assert "#### NaiveSoftplus: the gradient" in both
    assert "NaN! 11.0938 ≤ x ≤ 20 (4), x = +inf (1), e.g. x=11.0938: got nan, want 1" in both
    assert "→0 first at p=1e-08, y=1 (got 0, want -1e+08)" in both  # named arguments, the ones cotangent left out
    assert "| 000 | NaiveSoftplus | `∂softplus` | NaN! 5 | – | – |" in both


def test_where_reads_profile_ranges() -> None:
    from suites.seeds.report import _profile_ranges, _where

    cell = _cell("a", "softplus", "float16", "exhaustive", unexpected_inf=12, lost_to_zero=1)
    cell["profile"] = {
        "version": 1, "bins": 256,
        "incidence": {
            "unexpected_inf": [[200, 4, 11.09375, 20.0], [201, 8, 20.5, 65504.0], [256, 0, None, None]],
            "lost_to_zero": [[10, 1, -7.625, -7.625]],
        },
    }
    assert _profile_ranges(cell, "unexpected_inf") == "11.0938 ≤ x ≤ 65504 (12), x = +inf (0)"
    assert "→0 x = -7.625 (1)" in _where(cell)
    assert _profile_ranges(_cell("a", "softplus", "float16", "exhaustive"), "unexpected_inf") is None


GRAD_HEADINGS = ("Which gradient claims hold", "Where each gradient differs in kind from the mathematics'")


def test_render_names_every_claim_and_is_generated() -> None:
    text = render({"schema": 1, "run": {}, "cells": []})
    for seed in SEEDS:
        assert seed.file in text
        for impl in seed.impls:
            for claim in impl.claims:
                assert claim.quote.replace("|", "\\|") in text
    docs = ROOT / "docs" / "seeds.md"
    if docs.exists():  # the committed page is this generator's output, with the same claims
        committed = docs.read_text(encoding="utf-8")
        assert "Generated by `python -m suites.seeds.report" in committed
        headings = re.findall(r"^### (.+)$", text, flags=re.M)
        committed_headings = re.findall(r"^### (.+)$", committed, flags=re.M)
        # the page adds the backward-pass tables' headings to the implementations'
        assert [h for h in committed_headings if h not in GRAD_HEADINGS] == headings
        assert "## The backward pass" in committed
        for seed in SEEDS:
            for impl in seed.impls:  # each implementation's gradient subsection
                assert f"#### {impl.label}: the gradient" in committed, impl.label


def test_a_user_file_can_register_an_oracle_and_implement_it(tmp_path: Path) -> None:
    """The layout the seed suite would use with files instead of modules: the suite imports
    the file (registering the oracle) and names a function in it as the implementation (which
    loads the file a second time). Re-registering the same definition is not an error."""
    from harness.plan.suite import load_suite

    (tmp_path / "mine.py").write_text(
        "from oracles import oracle\n\n"
        "@oracle('seedtest_cube')\n"
        "def seedtest_cube(x):\n    return x * x * x\n\n"
        "def cube(x):\n    return x * x * x\n",
        encoding="utf-8",
    )
    (tmp_path / "suite.toml").write_text(
        'schema = 1\nimports = ["mine.py"]\n[[case]]\noracle = "seedtest_cube"\nimpls = ["mine.py:cube"]\n'
        'framework = "numpy"\ndtypes = ["float32"]\ninputs = ["random:50"]\n',
        encoding="utf-8",
    )
    cells = load_suite(tmp_path / "suite.toml").cells
    result = Runner().run(cells[0])
    assert result.status in ("pass", "fail"), result.reason
    with pytest.raises(Exception, match="already registered"):
        from oracles import oracle

        oracle("seedtest_cube")(lambda x: x)
