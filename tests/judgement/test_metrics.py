"""Bits of error, absolute and relative error and the tolerance count, against plain
computations: ``ord`` by sorting every value of a format (or by the format's own bit
patterns), errors and tolerances in exact rationals; the fused judge (with and without a
baseline) must agree with them on every field, and summaries must merge exactly."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from harness.judgement.definitions import (
    BINS_PER_OCTAVE,
    LOWEST_BIN,
    MAX_FLOAT,
    TORCH_TOLERANCES,
    bits_of_error,
    ordinals,
    ulp_errors,
)
from harness.judgement.summary import Summary, judge
from harness.judgement.tally import BLOCK, REL_LOWEST_BIN, Baseline, tally
from harness.plan.cells import Budget
from harness.plan.suite import load_suite
from oracles.errors import UsageError
from oracles.formats import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, Format
from oracles.reference import Reference
from tests.judgement.test_tally import EDGES, adversarial, reference_for

FORMATS = [FLOAT16, BFLOAT16, FLOAT32, FLOAT64]
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def plain_ord_table(fmt: Format) -> dict[float, int]:
    """ord of every value of a 16-bit format: its rank among the sorted distinct values,
    counted from 0."""
    with np.errstate(invalid="ignore"):  # signalling NaN patterns
        vals = fmt.to_float64(fmt.from_bits(np.arange(1 << 16, dtype=np.uint16)))
    distinct = sorted({float(v) for v in vals.tolist() if not math.isnan(v)})
    zero = distinct.index(0.0)
    return {v: i - zero for i, v in enumerate(distinct)}


def plain_ord(v: float, fmt: Format) -> int:
    """ord from the format's own bit pattern: sign-magnitude, so the magnitude bits count
    the values from 0 and the infinities sit one beyond the largest finite."""
    bits = int(np.array([v], dtype=fmt.dtype).view(fmt.uint_dtype)[0])
    mag = bits & ((1 << (fmt.bits - 1)) - 1)
    return -mag if bits >> (fmt.bits - 1) else mag


def awkward_values(fmt: Format) -> list[float]:
    tiny, big = fmt.smallest_subnormal, fmt.largest
    out = [0.0, -0.0, tiny, -tiny, 2 * tiny, fmt.smallest_normal, -fmt.smallest_normal,
           fmt.smallest_normal - tiny, 1.0, -1.0, 1.5, big, -big, math.inf, -math.inf]
    return [float(np.array([v]).astype(fmt.dtype).astype(np.float64)[0]) for v in out]


@pytest.mark.parametrize("fmt", [FLOAT16, BFLOAT16], ids=lambda f: f.name)
def test_ordinals_of_every_16_bit_value(fmt: Format) -> None:
    table = plain_ord_table(fmt)
    with np.errstate(invalid="ignore"):
        vals = fmt.to_float64(fmt.from_bits(np.arange(1 << 16, dtype=np.uint16)))
    vals = vals[~np.isnan(vals)]
    assert ordinals(vals, fmt).tolist() == [table[float(v)] for v in vals.tolist()]
    assert table[math.inf] == table[float(fmt.largest)] + 1


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_ordinals_of_awkward_values(fmt: Format) -> None:
    vals = awkward_values(fmt)
    assert ordinals(np.array(vals), fmt).tolist() == [plain_ord(v, fmt) for v in vals]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_bits_of_error_reads_as_herbie_defines_it(fmt: Format) -> None:
    one = 1.0
    up = float(fmt.next_up(np.array([one], dtype=fmt.dtype)).astype(np.float64)[0])
    assert bits_of_error(one, one, fmt) == 0
    assert bits_of_error(-0.0, 0.0, fmt) == 0  # +0 and -0 are one value
    assert bits_of_error(up, one, fmt) == 1
    assert bits_of_error(math.inf, float(fmt.largest), fmt) == 1
    assert bits_of_error(fmt.smallest_subnormal, -fmt.smallest_subnormal, fmt) == math.log2(3)
    assert bits_of_error(math.nan, one, fmt) is None
    widest = bits_of_error(math.inf, -math.inf, fmt)
    assert widest is not None and fmt.bits - 1 < widest <= fmt.bits


# -- the fused judge against plain definitions -----------------------------------------------


def plain_bin(v: float, lowest: int) -> int:
    m, e = math.frexp(v)
    x, octave = m * 2, e - 1
    if x == 1.0:
        key = octave * BINS_PER_OCTAVE
    else:
        key = octave * BINS_PER_OCTAVE + next(j for j in range(1, BINS_PER_OCTAVE + 1) if x <= EDGES[j])
    return max(key, lowest)


def plain_metrics(ref: Reference, got: np.ndarray, fmt: Format, tol: tuple[float, float]) -> dict[str, Any]:
    with np.errstate(invalid="ignore"):
        c = got.astype(np.float64)
    err = ulp_errors(ref, c)
    hist: dict[int, int] = {}
    dmax, bsum, bcount = 0, 0, 0
    abs_bins: dict[int, int] = {}
    rel_bins: dict[int, int] = {}
    abs_max = rel_max = 0.0
    undefined = over = 0
    atol, rtol = Fraction(tol[0]), Fraction(tol[1])
    for i in range(c.size):
        ci, wi = float(c[i]), float(ref.want[i])
        if not (math.isnan(ci) or math.isnan(wi)):
            d = abs(plain_ord(ci, fmt) - plain_ord(wi, fmt))
            hist[d.bit_length()] = hist.get(d.bit_length(), 0) + 1
            dmax, bcount = max(dmax, d), bcount + 1
            bsum += math.floor(float(np.log2(np.float64(d) + 1.0)) * 2.0**32)
        ei = float(err[i])
        if math.isnan(ei) or ei == 0:
            continue
        e = int(ref.ulp_exp[i])
        ka = min(plain_bin(ei, LOWEST_BIN) + BINS_PER_OCTAVE * e, 1024 * BINS_PER_OCTAVE)
        abs_bins[ka] = abs_bins.get(ka, 0) + 1
        abs_max = max(abs_max, min(math.ldexp(ei, e), MAX_FLOAT))
        hi = float(ref.hi[i])
        if hi == 0:
            undefined += 1
        else:
            rel = min(ei / abs(hi), MAX_FLOAT)
            kr = plain_bin(rel, REL_LOWEST_BIN)
            rel_bins[kr] = rel_bins.get(kr, 0) + 1
            rel_max = max(rel_max, rel)
        y = (Fraction(hi) + Fraction(float(ref.lo[i]))) * Fraction(2) ** e
        over += abs(Fraction(ci) - y) > atol + rtol * abs(y)
    return {"bits_count": bcount, "bits_hist": hist, "bits_max": dmax, "bits_sum": bsum, "abs_bins": abs_bins,
            "abs_max": abs_max, "rel_bins": rel_bins, "rel_max": rel_max, "rel_undefined": undefined,
            "over_tolerance": over, "rel_count": int(np.count_nonzero(~np.isnan(err))) - undefined}


def mostly_right(fmt: Format, n: int, seed: int) -> tuple[Reference, np.ndarray]:
    """Correctly rounded results but a few (so a Baseline judges only those), with zeros,
    subnormals, the largest finite, infinities and NaN among truths and results."""
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(n) * np.exp2(rng.integers(-20, 20, n))
    kind = rng.integers(0, 40, n)
    y[kind == 0] = 0.0
    y[kind == 1] = fmt.smallest_subnormal * rng.integers(1, 9, int(np.count_nonzero(kind == 1))) * 0.75
    y[kind == 2] = fmt.largest * 0.99
    y[kind == 3] = fmt.largest * 1.5
    y[kind == 4] = np.nan
    ref = reference_for(y, fmt)
    with np.errstate(all="ignore"):
        got = ref.want.astype(fmt.dtype)
        ulp = np.exp2(ref.ulp_exp.astype(np.float64))
        got[kind == 5] = (ref.want + rng.integers(-3, 4, n) * ulp)[kind == 5].astype(fmt.dtype)
        got[kind == 6] = np.nan
        got[kind == 7] = 0.0
        got[kind == 8] = np.inf
        got[kind == 9] = (ref.want * (1 + 2.0 ** rng.integers(-12, 0, n)))[kind == 9].astype(fmt.dtype)
        got[kind == 10] = (fmt.smallest_subnormal * 3)
    return ref, got


def fused(ref: Reference, got: np.ndarray, fmt: Format, tol: tuple[float, float], with_baseline: bool) -> dict[str, Any]:
    base = Baseline.of(ref, fmt) if with_baseline else None
    t = tally(ref, got, fmt, baseline=base, tolerance=tol)
    return {k: getattr(t, k) for k in ("bits_count", "bits_hist", "bits_max", "bits_sum", "abs_bins", "abs_max",
                                       "rel_bins", "rel_max", "rel_undefined", "over_tolerance", "rel_count")}


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("n", [9, BLOCK + 3])
@pytest.mark.parametrize("make", ["mostly_right", "adversarial"])
def test_fused_judge_equals_the_definitions(fmt: Format, n: int, make: str) -> None:
    if make == "adversarial":
        if fmt is BFLOAT16:
            pytest.skip("adversarial() builds float16/32/64 batches")
        ref, got = adversarial(fmt, n, seed=n + 1)
    else:
        ref, got = mostly_right(fmt, n, seed=n)
    for tol in [TORCH_TOLERANCES[fmt.name], (0.0, 0.0), (2.0**-30, 0.0)]:
        want = plain_metrics(ref, got, fmt, tol)
        for with_baseline in (False, True):
            assert fused(ref, got, fmt, tol, with_baseline) == want, (tol, with_baseline)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_blocks_of_one_ulp_exponent_equal_the_definitions(fmt: Format) -> None:
    """A streamed run's blocks mostly hold one binade of truths: without a tolerance the judge
    then reads the absolute errors off the ULP histogram. Wrong results of every size (bin
    edges, many ulps, NaN, inf, 0) and a block with no error at all still equal the plain
    definitions."""
    rng = np.random.default_rng(7)
    n = 2 * BLOCK + 11
    y = 1.0 + rng.random(n)  # [1, 2): one ulp exponent
    y[BLOCK:2 * BLOCK] = -0.75 - rng.random(BLOCK) / 4  # [-1, -0.75): one other
    ref = reference_for(y, fmt)
    assert len(set(ref.ulp_exp[:BLOCK].tolist())) == len(set(ref.ulp_exp[BLOCK:2 * BLOCK].tolist())) == 1
    with np.errstate(all="ignore"):
        got = ref.want.astype(fmt.dtype)
        kind = rng.integers(0, 8, n)
        kind[BLOCK:2 * BLOCK] = 7  # the second block: every result correctly rounded
        ulp = np.exp2(ref.ulp_exp.astype(np.float64))
        edge = np.array(EDGES)[rng.integers(0, len(EDGES), n)] * np.exp2(rng.integers(-8, 12, n))
        got[kind == 0] = (y + edge * ulp)[kind == 0].astype(fmt.dtype)
        got[kind == 1] = (y * (1 + 2.0 ** rng.integers(-20, 3, n)))[kind == 1].astype(fmt.dtype)
        got[kind == 2] = np.nan
        got[kind == 3] = -np.inf
        got[kind == 4] = 0.0
    t = tally(ref, got, fmt)
    want = plain_metrics(ref, got, fmt, (0.0, 0.0))
    del want["over_tolerance"]
    assert {k: getattr(t, k) for k in want} == want


def test_relative_errors_below_the_float64_normals_share_the_lowest_bin() -> None:
    """A correctly rounded float32 result whose truth carries a tail of 2**-1000 ulps or
    less has a relative error below 2**-1022 (subnormal, not 0): counted in the lowest
    relative bin, beside the ordinary ones of the same block."""
    fmt = FLOAT32
    rng = np.random.default_rng(3)
    y = ((1.0 + rng.random(300)) * np.exp2(rng.integers(-20, 20, 300))).astype(np.float32).astype(np.float64)
    base = reference_for(y, fmt)  # exact: the result R(y) = y has no error of its own
    tail = np.where(np.arange(300) % 3 == 0, 2.0 ** rng.integers(-1040, -1000, 300).astype(np.float64), 0.25)
    ref = Reference(base.want, base.hi, tail, base.ulp_exp)
    got = base.want.astype(np.float32)
    t = tally(ref, got, fmt)
    want = plain_metrics(ref, got, fmt, (0.0, 0.0))
    assert t.rel_bins == want["rel_bins"] and t.rel_max == want["rel_max"]
    assert t.rel_bins[REL_LOWEST_BIN] == 100


def test_the_tolerance_boundary_is_decided_exactly() -> None:
    """|c - y| equal to atol is within it; one float64 step more of error is over it."""
    fmt = FLOAT32
    y = np.array([1.0, 1.0, 0.0, 0.0])
    ref = reference_for(y, fmt)
    c = np.array([1.0 + 2.0**-20, 1.0 + 2.0**-20, 2.0**-20, 2.0**-20], dtype=np.float32)
    assert tally(reference_for(y[:1], fmt), c[:1], fmt, tolerance=(2.0**-20, 0.0)).over_tolerance == 0
    assert tally(reference_for(y[:1], fmt), c[:1], fmt,
                 tolerance=(math.nextafter(2.0**-20, 0.0), 0.0)).over_tolerance == 1
    # rtol alone: an exact value of 0 allows no error at all
    assert tally(ref, c, fmt, tolerance=(0.0, 1.0)).over_tolerance == 2


def test_zero_truth_reads_sensibly() -> None:
    """keras.binary_cross_entropy float32: exact loss 0, computed 2**-23 (1.19e-7)."""
    fmt = FLOAT32
    ref = reference_for(np.array([0.0]), fmt)
    s = judge(ref, np.array([2.0**-23], dtype=np.float32), fmt, tolerance=TORCH_TOLERANCES["float32"])
    j = s.to_json()
    assert j["ulp"]["max"] == 2.0**126  # ulp(0) is the smallest subnormal: 8.5e+37 ulp
    assert j["bits"]["max"] == math.log2(1 + (127 - 23) * 2**23)  # about 29.7 of 32 bits
    assert j["abs_error"]["max"] == 2.0**-23
    assert j["rel_error"] == {"count": 0, "max": None, "p50": None, "p90": None, "p99": None, "p999": None}
    assert j["exact_summary"]["rel_undefined"] == 1
    assert s.over_tolerance == 0  # 1.19e-7 <= atol 1e-5: assert_close would pass it


# -- merging and JSON ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [BFLOAT16, FLOAT32, FLOAT64], ids=lambda f: f.name)
def test_merge_of_parts_is_the_judgement_of_the_whole(fmt: Format) -> None:
    ref, got = mostly_right(fmt, 3000, seed=5)
    tol = TORCH_TOLERANCES[fmt.name]
    whole = judge(ref, got, fmt, tolerance=tol)
    cut = 1234
    parts = judge(ref[:cut], got[:cut], fmt, tolerance=tol).merge(
        judge(ref[cut:], got[cut:], fmt, offset=cut, tolerance=tol))
    assert parts == whole
    assert Summary.from_json(json.loads(json.dumps(whole.to_json()))) == whole
    # counted against different tolerances: the merge has no count
    other = judge(ref[cut:], got[cut:], fmt, offset=cut, tolerance=(0.0, 0.0))
    assert judge(ref[:cut], got[:cut], fmt, tolerance=tol).merge(other).tolerance is None


def test_old_cells_load_and_merge_without_the_new_fields() -> None:
    old = json.loads((FIXTURES / "cell-before-bits.json").read_text())
    s = Summary.from_json(old)
    assert not s.measured
    out = s.to_json()
    assert not {"bits", "abs_error", "rel_error"} & set(out)
    assert "bits_hist" not in out["exact_summary"]
    assert {k: out[k] for k in ("n", "incidence")} == {k: old[k] for k in ("n", "incidence")}
    assert out["ulp"]["max"] == old["ulp"]["max"] and out["ulp"]["count"] == old["ulp"]["count"]
    ref, got = mostly_right(FLOAT16, 50, seed=1)
    merged = s.merge(judge(ref, got, FLOAT16, offset=100))
    assert not merged.measured and "bits" not in merged.to_json()
    assert merged.n == 150


def test_torch_defaults_are_torchs() -> None:
    torch = pytest.importorskip("torch")
    precisions = pytest.importorskip("torch.testing._comparison")._DTYPE_PRECISIONS

    for name, (atol, rtol) in TORCH_TOLERANCES.items():
        dtype = getattr(torch, name)
        assert precisions[dtype] == (rtol, atol)


def test_bfloat16_values_are_ml_dtypes_values() -> None:
    assert np.dtype(BFLOAT16.dtype) == np.dtype(ml_dtypes.bfloat16)


# -- budgets ---------------------------------------------------------------------------------


def _summary(tol: tuple[float, float] | None) -> Summary:
    fmt = FLOAT32
    ref = reference_for(np.array([1.0, 2.0, 0.0]), fmt)
    got = np.array([1.0 + 2.0**-10, 2.0, 2.0**-23], dtype=np.float32)
    return judge(ref, got, fmt, tolerance=tol)


def test_budget_violations_name_bits_and_tolerances() -> None:
    torch32 = TORCH_TOLERANCES["float32"]
    s = _summary(torch32)
    # the worst is the exact 0 computed as 2**-23: (127 - 23) 2**23 values away
    assert Budget.build(max_bits=4).violations(s) == ["max bits 29.7 > 4"]
    assert Budget.build(max_bits=30).violations(s) == []
    assert Budget.build(tolerance="torch").violations(s, "float32") == ["1 elements over atol 1e-5 + rtol 1.3e-6·|y|"]
    assert Budget.build(tolerance="torch").violations(s) == ["1 elements over atol 1e-5 + rtol 1.3e-6·|y|"]
    assert Budget.build(atol=1e-2).violations(_summary((1e-2, 0.0))) == []
    # not counted against this tolerance: the largest errors prove it, or it fails
    assert Budget.build(atol=1e-2).violations(_summary(None)) == []
    (why,) = Budget.build(atol=1e-5).violations(_summary(None))
    assert "not judged element by element" in why


def test_budget_json_round_trip_and_validation() -> None:
    for b in (Budget.build(1, max_bits=3, tolerance="torch"), Budget.build(atol=1e-5, rtol="torch"), Budget.build()):
        assert Budget.from_json(json.loads(json.dumps(b.to_json()))) == b
    assert "atol" not in Budget.build().to_json()  # budgets without them read as before
    assert Budget.build(atol=0.5).tolerance_for("float16") == (0.5, 0.0)
    assert Budget.build(tolerance="torch", rtol=0).tolerance_for("bfloat16") == (1e-5, 0.0)
    for kw in ({"atol": -1.0}, {"rtol": math.nan}, {"atol": math.inf}, {"max_bits": -2}, {"tolerance": "numpy"},
               {"atol": "Torch"}, {"max_bits": True}):
        with pytest.raises(UsageError) as info:
            Budget.build(**kw)  # type: ignore[arg-type]
        assert "\n" not in str(info.value) and str(info.value).startswith("budget: ")


def test_suite_budgets_take_bits_and_tolerances(tmp_path: Path) -> None:
    def suite(budget: str) -> Path:
        p = tmp_path / "s.toml"
        p.write_text('schema = 1\n[[case]]\noracle = "softplus"\nimpls = ["torch.softplus"]\n'
                     f'dtypes = ["float16", "float32"]\ninputs = ["special"]\n[case.budget]\n{budget}\n')
        return p

    cells = load_suite(suite('max_bits = { float16 = 1, float32 = 3 }\ntolerance = "torch"\natol = 1e-3')).cells
    by_dtype = {c.dtype: c.budget for c in cells}
    assert by_dtype["float16"].max_bits == 1 and by_dtype["float32"].max_bits == 3
    assert by_dtype["float32"].tolerance_for("float32") == (1e-3, 1.3e-6)
    with pytest.raises(UsageError, match=r"budget: rtol must be a finite, non-negative number"):
        load_suite(suite("rtol = -1"))
    with pytest.raises(UsageError, match=r"budget.atol: unknown dtype 'float8'"):
        load_suite(suite("atol = { float8 = 1 }"))
