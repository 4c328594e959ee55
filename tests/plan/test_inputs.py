"""Input sets (harness/plan/inputs.py): what each spec generates, bit by bit.

Layer: pure input generation. No framework, no oracle evaluation; every test here runs in
milliseconds. The runner's use of these inputs is in test_runner.py.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from harness.plan.inputs import DEFAULT_SEED, ROW_WIDTH, InputSet, parse_inputs
from oracles import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, UsageError, get_format, get_oracle
from oracles.formats import Format
from oracles.rounding import round_float64

SIXTEEN = [pytest.param(FLOAT16, id="float16"), pytest.param(BFLOAT16, id="bfloat16")]
ALL = [*SIXTEEN, pytest.param(FLOAT32, id="float32"), pytest.param(FLOAT64, id="float64")]


def gen(spec: str, oracle: str, fmt: Format) -> InputSet:
    return parse_inputs(spec).generate(get_oracle(oracle), fmt)


def bits(arr: np.ndarray, fmt: Format) -> np.ndarray:
    assert arr.dtype == fmt.dtype, f"expected {fmt.name} storage, got {arr.dtype}"
    return arr.view(fmt.uint_dtype)


def bitset(arr: np.ndarray, fmt: Format) -> set[int]:
    return {int(b) for b in bits(arr, fmt).ravel()}


def as64(arr: np.ndarray) -> np.ndarray:
    """Exact float64 values (a signalling NaN raises FE_INVALID on the cast; it stays NaN)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(arr).astype(np.float64)


def bits_of(value: float, fmt: Format) -> int:
    return int(fmt.from_float64(np.array([value])).view(fmt.uint_dtype)[0])


def one_line(exc: pytest.ExceptionInfo[UsageError]) -> str:
    text = str(exc.value)
    assert "\n" not in text, f"usage errors are one line: {text!r}"
    return text


# -- parse_inputs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "canonical"),
    [
        pytest.param("exhaustive", "exhaustive", "exhaustive", id="exhaustive"),
        pytest.param(" special ", "special", "special", id="special-stripped"),
        pytest.param("random:100", "random", f"random:100:{DEFAULT_SEED}", id="random-default-seed"),
        pytest.param("random:100:7", "random", "random:100:7", id="random-seed"),
        pytest.param("normal:0:1:10", "normal", f"normal:0:1:10:{DEFAULT_SEED}", id="normal-default-seed"),
        pytest.param("normal:-3.5:2:10:4", "normal", "normal:-3.5:2:10:4", id="normal-seed"),
        pytest.param("uniform:-1:1:10", "uniform", f"uniform:-1:1:10:{DEFAULT_SEED}", id="uniform"),
        pytest.param("npy:data/x.npy", "npy", "npy:data/x.npy", id="npy"),
        pytest.param("npz:C:/data/x.npz", "npz", "npz:C:/data/x.npz", id="npz-colon-in-path"),
    ],
)
def test_parse_inputs_canonical_text(text: str, kind: str, canonical: str) -> None:
    # the grammar only: the files named here do not exist (test_hostile_inputs checks them)
    spec = parse_inputs(text, check_file=False)
    assert (spec.kind, spec.text, str(spec)) == (kind, canonical, canonical)
    # the canonical text is what results store; it must parse to itself
    assert parse_inputs(spec.text, check_file=False) == spec


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("", "unknown input spec ''", id="empty"),
        pytest.param("gaussian:0:1:10", "expected one of: exhaustive, special, random:N[:SEED]", id="unknown-kind"),
        pytest.param("Random:10", "unknown input spec", id="kind-is-case-sensitive"),
        pytest.param("exhaustive:1", "exhaustive takes no arguments", id="exhaustive-with-arg"),
        pytest.param("special:x", "special takes no arguments", id="special-with-arg"),
        pytest.param("random", "expected random:N[:SEED]", id="random-no-n"),
        pytest.param("random:1:2:3", "expected random:N[:SEED]", id="random-too-many"),
        pytest.param("random:x", "N must be an integer, got 'x'", id="random-n-not-int"),
        pytest.param("random:1.5", "N must be an integer, got '1.5'", id="random-n-float"),
        pytest.param("random:0", "N must be at least 1", id="random-n-zero"),
        pytest.param("random:-5", "N must be at least 1", id="random-n-negative"),
        pytest.param("random:10:s", "SEED must be an integer, got 's'", id="random-seed-not-int"),
        pytest.param("random:10:-1", "SEED must not be negative", id="random-seed-negative"),
        pytest.param("normal:0:1", "expected normal:MEAN:STD:N[:SEED]", id="normal-too-few"),
        pytest.param("normal:a:1:10", "MEAN must be a number, got 'a'", id="normal-mean-nan-text"),
        pytest.param("normal:nan:1:10", "MEAN must be finite", id="normal-mean-nan"),
        pytest.param("normal:0:inf:10", "STD must be finite", id="normal-std-inf"),
        pytest.param("normal:0:-1:10", "STD must not be negative", id="normal-std-negative"),
        pytest.param("normal:0:1:0", "N must be at least 1", id="normal-n-zero"),
        pytest.param("uniform:0:1", "expected uniform:LO:HI:N[:SEED]", id="uniform-too-few"),
        pytest.param("uniform:1:1:10", "LO must be below HI", id="uniform-empty"),
        pytest.param("uniform:2:1:10", "LO must be below HI", id="uniform-reversed"),
        pytest.param("uniform:0:x:10", "HI must be a number, got 'x'", id="uniform-hi-text"),
        pytest.param("npy", "expected npy:PATH", id="npy-no-path"),
        pytest.param("npz:", "expected npz:PATH", id="npz-empty-path"),
    ],
)
def test_parse_inputs_rejects(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_inputs(text)
    assert fragment in one_line(exc)


# -- exhaustive ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", SIXTEEN)
def test_exhaustive_is_every_pattern_once(fmt: Format) -> None:
    inputs = gen("exhaustive", "exp", fmt)
    assert len(inputs.batches) == 1
    (x,) = inputs.batches[0].arrays
    assert x.shape == (65536,)
    np.testing.assert_array_equal(bits(x, fmt), np.arange(65536, dtype=np.uint16))
    values = as64(x)
    assert np.isnan(values).sum() == 2 * ((1 << (fmt.precision - 1)) - 1)  # every NaN payload, both signs
    assert np.isposinf(values).sum() == 1 and np.isneginf(values).sum() == 1
    assert inputs.n_inputs == 65536


@pytest.mark.parametrize("fmt", SIXTEEN)
@pytest.mark.parametrize("oracle", ["softmax", "log_softmax", "logsumexp"])
def test_exhaustive_rows_are_x_and_zero(fmt: Format, oracle: str) -> None:
    (batch,) = gen("exhaustive", oracle, fmt).batches
    (rows,) = batch.arrays
    assert rows.shape == (65536, 2)
    np.testing.assert_array_equal(bits(rows[:, 0].copy(), fmt), np.arange(65536, dtype=np.uint16))
    assert not bits(rows[:, 1].copy(), fmt).any(), "second column must be +0 (bits 0)"


def test_exhaustive_rows_with_targets() -> None:
    (batch,) = gen("exhaustive", "cross_entropy", FLOAT16).batches
    logits, target = batch.arrays
    assert logits.shape == (65536, 2)
    assert target.dtype == np.int64 and target.shape == (65536,)
    assert set(np.unique(target).tolist()) <= {0, 1}


@pytest.mark.parametrize("fmt", SIXTEEN)
@pytest.mark.parametrize("oracle", ["binary_cross_entropy", "binary_cross_entropy_with_logits"])
def test_exhaustive_loss_pairs_every_pattern_with_each_label(fmt: Format, oracle: str) -> None:
    (batch,) = gen("exhaustive", oracle, fmt).batches
    first, labels = batch.arrays
    assert first.dtype == labels.dtype == fmt.dtype
    label_values = labels.astype(np.float64)
    assert sorted(set(label_values.tolist())) == [0.0, 0.5, 1.0]
    for label in (0.0, 0.5, 1.0):
        paired = first[label_values == label]
        np.testing.assert_array_equal(np.sort(bits(paired, fmt)), np.arange(65536, dtype=np.uint16))


@pytest.mark.parametrize(
    ("oracle_name", "fmt"),
    [pytest.param("softmax", FLOAT32, id="float32-rowwise"), pytest.param("exp", FLOAT64, id="float64")],
)
def test_exhaustive_beyond_16_bits_streams_only_elementwise_float32(oracle_name: str, fmt: Format) -> None:
    with pytest.raises(UsageError) as exc:
        gen("exhaustive", oracle_name, fmt)
    text = one_line(exc)
    assert "streamed only for" in text and fmt.name in text and "random:N" in text


# -- special ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ALL)
def test_special_has_the_format_extremes_with_signs(fmt: Format) -> None:
    (batch,) = gen("special", "exp", fmt).batches
    (x,) = batch.arrays
    have = bitset(x, fmt)
    assert len(have) == x.size, "special inputs hold each bit pattern once"
    sign = 1 << (fmt.bits - 1)
    expected = {
        "+0": 0, "-0": sign,
        "+inf": bits_of(math.inf, fmt), "-inf": bits_of(-math.inf, fmt),
        "+1": bits_of(1.0, fmt), "-1": bits_of(-1.0, fmt),
        "smallest subnormal": 1, "-smallest subnormal": sign | 1,
        "largest subnormal": (1 << (fmt.precision - 1)) - 1,
        "-largest subnormal": sign | ((1 << (fmt.precision - 1)) - 1),
        "smallest normal": 1 << (fmt.precision - 1), "-smallest normal": sign | (1 << (fmt.precision - 1)),
        "largest finite": bits_of(fmt.largest, fmt), "-largest finite": bits_of(-fmt.largest, fmt),
        "20": bits_of(20.0, fmt), "-20": bits_of(-20.0, fmt),
    }
    missing = {name for name, b in expected.items() if b not in have}
    assert not missing, f"special {fmt.name} inputs lack {sorted(missing)}"
    assert np.isnan(as64(x)).any()


@pytest.mark.parametrize(
    ("fmt", "threshold"),
    [
        pytest.param(FLOAT16, math.log(65504.0), id="float16-log-largest"),
        pytest.param(FLOAT16, math.log(FLOAT16.smallest_subnormal), id="float16-log-smallest-subnormal"),
        pytest.param(BFLOAT16, math.log(BFLOAT16.largest), id="bfloat16-log-largest"),
        pytest.param(FLOAT32, math.log(FLOAT32.largest), id="float32-log-largest"),
        pytest.param(FLOAT64, math.log(FLOAT64.largest), id="float64-log-largest"),
        pytest.param(FLOAT64, math.log(FLOAT64.smallest_subnormal), id="float64-log-smallest-subnormal"),
    ],
)
def test_special_has_threshold_neighbours(fmt: Format, threshold: float) -> None:
    (x,) = gen("special", "exp", fmt).batches[0].arrays
    have = bitset(x, fmt)
    for signed in (threshold, -threshold):
        centre = round_float64(np.array([signed]), fmt).astype(fmt.dtype)
        around = [centre]
        up = down = centre
        for _ in range(2):
            up, down = fmt.next_up(up), fmt.next_down(down)
            around += [up, down]
        wanted = {int(b) for a in around for b in a.view(fmt.uint_dtype)}
        assert wanted <= have, f"{signed!r} and its two neighbours each side must be special inputs"


@pytest.mark.parametrize("fmt", ALL)
def test_special_probabilities(fmt: Format) -> None:
    p, y = gen("special", "binary_cross_entropy", fmt).batches[0].arrays
    assert p.dtype == y.dtype == fmt.dtype
    labels = y.astype(np.float64)
    values = p[labels == 0.0].astype(np.float64)  # each label sees the same probabilities
    finite = values[~np.isnan(values)]
    inside = finite[(finite >= 0) & (finite <= 1)]
    outside = finite[(finite < 0) | (finite > 1)]
    for v in (0.0, 0.5, 1.0, fmt.smallest_subnormal, float(fmt.next_down(np.array(1.0, fmt.dtype)))):
        assert v in inside, f"p={v!r} belongs in the special probabilities"
    assert 1 <= outside.size <= 4, "a few probabilities just outside [0, 1], no more"
    assert (outside < 0).any() and (outside > 1).any()
    assert np.isnan(values).any()
    assert sorted(set(labels.tolist())) == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("fmt", ALL)
def test_special_rows(fmt: Format) -> None:
    batches = gen("special", "softmax", fmt).batches
    widths = {b.arrays[0].shape[1] for b in batches}
    assert {1, 2, 3, 4, 16, 1000, 65537} <= widths
    rows = [as64(r) for b in batches for r in b.arrays[0]]
    for b in batches:
        assert b.arrays[0].dtype == fmt.dtype
    masked = [r for r in rows if np.isneginf(r).any() and np.isfinite(r).any()]
    fully_masked = [r for r in rows if r.size > 1 and np.isneginf(r).all()]
    plus_inf = [r for r in rows if np.isposinf(r).any()]
    assert masked and fully_masked and plus_inf


def test_special_targets_hit_masked_and_extreme_entries() -> None:
    for batch in gen("special", "cross_entropy", FLOAT32).batches:
        logits, target = batch.arrays
        assert target.dtype == np.int64
        assert ((target >= 0) & (target < logits.shape[1])).all()
    (logits, target), *_ = (b.arrays for b in gen("special", "cross_entropy", FLOAT32).batches)
    picked = logits[np.arange(len(target)), target]
    assert np.isneginf(picked).any(), "some target must point at a masked (-inf) logit"


# -- random -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ALL)
def test_random_is_uniform_over_finite_bit_patterns(fmt: Format) -> None:
    ebits = fmt.exponent_bits
    n_exponents = (1 << ebits) - 1  # finite exponent fields
    n = min(400 * n_exponents, 60_000)
    (x,) = gen(f"random:{n}:3", "exp", fmt).batches[0].arrays
    assert x.shape == (n,)
    b = bits(x, fmt).astype(np.uint64)
    exponent = (b >> np.uint64(fmt.precision - 1)) & np.uint64((1 << ebits) - 1)
    assert (exponent != (1 << ebits) - 1).all(), "random values are finite"
    negative = (b >> np.uint64(fmt.bits - 1)).astype(bool)
    assert abs(negative.mean() - 0.5) < 0.02
    # the exponent field is uniform over its finite values: a Kolmogorov-Smirnov distance
    # far below what any real skew gives (the 1% critical value here is about 0.007) ...
    ecdf = np.cumsum(np.bincount(exponent.astype(np.int64), minlength=n_exponents)) / n
    assert np.abs(ecdf - np.arange(1, n_exponents + 1) / n_exponents).max() < 0.02
    # ... and, where the bins are populous enough to say so, no exponent is starved
    if n_exponents <= 255:
        counts = np.bincount(exponent.astype(np.int64), minlength=n_exponents)
        expected = n / n_exponents
        assert counts.min() > 0.6 * expected and counts.max() < 1.4 * expected


@pytest.mark.parametrize("fmt", SIXTEEN)
def test_random_is_reproducible_and_seeded(fmt: Format) -> None:
    def draw(spec: str) -> np.ndarray:
        return bits(gen(spec, "exp", fmt).batches[0].arrays[0], fmt)

    np.testing.assert_array_equal(draw("random:500:11"), draw("random:500:11"))
    np.testing.assert_array_equal(draw("random:500"), draw(f"random:500:{DEFAULT_SEED}"))
    assert not np.array_equal(draw("random:500:11"), draw("random:500:12"))


@pytest.mark.parametrize("fmt", ALL)
def test_random_probabilities_stay_in_unit_interval(fmt: Format) -> None:
    p, y = gen("random:2000:5", "binary_cross_entropy", fmt).batches[0].arrays
    pv = p.astype(np.float64)
    assert p.shape == y.shape == (2000,)
    assert ((pv >= 0) & (pv <= 1)).all()
    # both ends of the interval are dense (half the draws are reflected to 1 - p)
    assert (pv < 0.01).sum() > 200 and (pv > 0.99).sum() > 200
    yv = y.astype(np.float64)
    assert ((yv >= 0) & (yv <= 1)).all()


def test_random_rows_have_row_width() -> None:
    (batch,) = gen("random:95:1", "log_softmax", FLOAT32).batches
    assert batch.arrays[0].shape == (95 // ROW_WIDTH, ROW_WIDTH)
    logits, target = gen("random:40", "cross_entropy", FLOAT16).batches[0].arrays
    assert logits.shape == (4, ROW_WIDTH) and target.shape == (4,)


# -- normal and uniform -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [pytest.param(FLOAT32, id="float32"), pytest.param(BFLOAT16, id="bfloat16")])
def test_normal_moments(fmt: Format) -> None:
    (x,) = gen("normal:3:2:40000:1", "exp", fmt).batches[0].arrays
    v = as64(x)
    assert abs(v.mean() - 3.0) < 0.05 and abs(v.std() - 2.0) < 0.05


@pytest.mark.parametrize("fmt", [pytest.param(FLOAT16, id="float16"), pytest.param(FLOAT64, id="float64")])
def test_uniform_moments_and_bounds(fmt: Format) -> None:
    (x,) = gen("uniform:-2:6:40000:1", "exp", fmt).batches[0].arrays
    v = x.astype(np.float64)
    assert v.min() >= -2.0 and v.max() <= 6.0
    assert abs(v.mean() - 2.0) < 0.05 and abs(v.var() - 64 / 12) < 0.1


@pytest.mark.parametrize("kind", ["normal:0:1", "uniform:-1:1"])
def test_distributions_round_once_directly_into_bfloat16(kind: str) -> None:
    """Each draw is rounded once from float64. Going through float32 (which is also what
    ml_dtypes' float64 -> bfloat16 cast does) double-rounds a few draws; this seed has
    such draws, so the test tells the two apart."""
    n, seed = 200_000, 0
    (x,) = gen(f"{kind}:{n}:{seed}", "exp", BFLOAT16).batches[0].arrays
    rng = np.random.default_rng(seed)
    draws = rng.normal(0.0, 1.0, n) if kind.startswith("normal") else rng.uniform(-1.0, 1.0, n)
    direct = round_float64(draws, BFLOAT16)
    via_float32 = draws.astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)
    assert (direct != via_float32).sum() > 0, "the seed should contain a double-rounding witness"
    np.testing.assert_array_equal(x.astype(np.float64), direct)


# -- npy and npz --------------------------------------------------------------------------


def _save(path: Path, **arrays: Any) -> str:
    if path.suffix == ".npy":
        (arr,) = arrays.values()
        np.save(path, arr)
    else:
        np.savez(path, **arrays)
    return f"{path.suffix[1:]}:{path}"


@pytest.mark.parametrize("fmt", SIXTEEN)
def test_npy_is_bit_exact(tmp_path: Path, fmt: Format) -> None:
    raw = np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x7FFF, 0xFFFF, 0x7F81, 0x3C00], dtype=np.uint16)
    arr = raw.view(fmt.dtype)
    spec = _save(tmp_path / "x.npy", x=arr)  # bfloat16 comes back from np.load as |V2 records
    (x,) = gen(spec, "exp", fmt).batches[0].arrays
    np.testing.assert_array_equal(bits(x, fmt), raw)


def test_npy_float64_holding_exact_values_is_converted(tmp_path: Path) -> None:
    spec = _save(tmp_path / "x.npy", x=np.array([0.5, -0.0, 65504.0, math.inf, 2.0**-24]))
    (x,) = gen(spec, "exp", FLOAT16).batches[0].arrays
    assert x.dtype == np.float16
    np.testing.assert_array_equal(x.astype(np.float64), [0.5, -0.0, 65504.0, math.inf, 2.0**-24])
    assert np.signbit(x[1])


def test_npy_not_representable_names_the_value(tmp_path: Path) -> None:
    spec = _save(tmp_path / "x.npy", x=np.array([0.5, 0.1, 0.3]))
    with pytest.raises(UsageError) as exc:
        gen(spec, "exp", FLOAT16)
    text = one_line(exc)
    assert "0.1" in text and "element 1" in text and "not exactly representable in float16" in text
    assert "round it first" in text


def test_npz_missing_array_lists_names(tmp_path: Path) -> None:
    spec = _save(tmp_path / "x.npz", p=np.array([0.5], dtype=np.float32), labels=np.array([1.0], dtype=np.float32))
    with pytest.raises(UsageError) as exc:
        gen(spec, "binary_cross_entropy", FLOAT32)
    text = one_line(exc)
    assert "lacks array(s) y" in text and "it has labels, p" in text and "needs p, y" in text


def test_npz_integer_targets(tmp_path: Path) -> None:
    logits = np.array([[0.0, 1.0, -np.inf], [2.0, 2.0, 2.0]], dtype=np.float32)
    spec = _save(tmp_path / "x.npz", logits=logits, target=np.array([2, 0], dtype=np.int32))
    inputs = gen(spec, "cross_entropy", FLOAT32)
    got_logits, got_target = inputs.batches[0].arrays
    np.testing.assert_array_equal(got_logits, logits)
    assert got_target.dtype == np.int64 and got_target.tolist() == [2, 0]
    # the oracle sees exact float64 reals and the indices untouched
    as64 = inputs.float64(inputs.batches[0])
    assert as64[0].dtype == np.float64 and as64[1].dtype == np.int64


@pytest.mark.parametrize(
    ("oracle", "arrays", "fragment"),
    [
        pytest.param("cross_entropy", {"logits": np.zeros((2, 3), np.float32), "target": np.array([0.0, 1.0])},
                     "target must hold integers, got float64", id="float-targets"),
        pytest.param("exp", {"x": np.array([1, 2, 3])}, "x has dtype int64; expected float32", id="int-reals"),
    ],
)
def test_npz_wrong_dtypes(tmp_path: Path, oracle: str, arrays: dict[str, np.ndarray], fragment: str) -> None:
    spec = _save(tmp_path / "x.npz", **arrays)
    with pytest.raises(UsageError) as exc:
        gen(spec, oracle, FLOAT32)
    assert fragment in one_line(exc)


def test_npy_for_two_argument_oracle_asks_for_npz(tmp_path: Path) -> None:
    spec = _save(tmp_path / "x.npy", x=np.zeros(3, np.float32))
    with pytest.raises(UsageError) as exc:
        gen(spec, "binary_cross_entropy", FLOAT32)
    assert "takes 2 arguments (p, y): use npz:PATH" in one_line(exc)


def test_user_file_missing_or_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as exc:
        gen(f"npy:{tmp_path / 'nope.npy'}", "exp", FLOAT32)
    assert "does not exist" in one_line(exc)
    junk = tmp_path / "junk.npy"
    junk.write_text("not numpy\n")
    with pytest.raises(UsageError) as exc:
        gen(f"npy:{junk}", "exp", FLOAT32)
    assert "cannot read" in one_line(exc)


def test_format_lookup_used_by_inputs_lists_choices() -> None:
    with pytest.raises(UsageError) as exc:
        get_format("float8")
    assert "pick from: bfloat16, float16, float32, float64" in one_line(exc)
