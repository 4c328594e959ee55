"""The fused judge (harness.judgement.tally) against the definitions, computed the plain way.

``plain_judge`` below is the judge as the module docstring of harness.judgement.summary defines it,
one whole-array step per quantity: exact ULP sum with Fractions, bins by comparing with
the correctly rounded edges 2**(j/16), worst elements by a full stable sort, profiles by
harness.judgement.error_vs_input.error_profile. The fast path must agree with it on every field, with and
without a baseline and at any block boundary, on inputs built to hit the awkward cases: NaN and
infinite results and truths, zeros, subnormals, errors exactly on and beside bin edges,
exact powers of two, ties for the worst elements, saturated float64 errors.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from mpmath import mp, mpf

from harness.judgement.definitions import BINS_PER_OCTAVE, CATEGORIES, LOWEST_BIN, category_indices, ulp_errors
from harness.judgement.error_vs_input import error_profile
from harness.judgement.tally import BLOCK, Baseline, ProfileInputs, tally
from oracles.formats import FLOAT16, FLOAT32, FLOAT64, Format
from oracles.reference import Reference
from oracles.rounding import round_float64, ulp_exponent

with mp.workprec(200):
    EDGES = [float(mp.power(2, mpf(j) / BINS_PER_OCTAVE)) for j in range(BINS_PER_OCTAVE + 1)]


def plain_bin(err: float) -> int:
    """The fine-bin key of one positive error: bins are (2**((k-1)/16), 2**(k/16)] with
    the correctly rounded edges, and everything below 2**-24 in the lowest."""
    m, e = math.frexp(err)
    v, octave = m * 2, e - 1  # err = v 2**octave, 1 <= v < 2
    if v == 1.0:
        key = octave * BINS_PER_OCTAVE
    else:
        key = octave * BINS_PER_OCTAVE + next(j for j in range(1, BINS_PER_OCTAVE + 1) if v <= EDGES[j])
    return max(key, LOWEST_BIN)


def plain_judge(ref: Reference, got: np.ndarray, k_worst: int = 10, k_examples: int = 3) -> dict[str, Any]:
    with np.errstate(invalid="ignore"):
        c = got.astype(np.float64)
    err = ulp_errors(ref, c)
    cats = category_indices(ref.want, ref.hi, c)
    finite = ~np.isnan(err)
    bins: dict[int, int] = {}
    for v in err[finite & (err > 0)].tolist():
        k = plain_bin(v)
        bins[k] = bins.get(k, 0) + 1
    total = sum((Fraction(v) for v in err[finite].tolist()), Fraction(0))
    order = sorted(np.flatnonzero(finite).tolist(), key=lambda i: (-err[i], i))[:k_worst]
    with np.errstate(invalid="ignore"):
        correct = (c == ref.want) | (np.isnan(c) & np.isnan(ref.want))
        lost = (c == 0) & (ref.want != 0) & ~np.isnan(ref.want)
        tiny = np.abs(ref.want) < FMT_OF[got.dtype].smallest_normal
        sub = (c != 0) & (np.abs(c) < FMT_OF[got.dtype].smallest_normal)
    return {
        "n": c.size,
        "correct": int(np.count_nonzero(correct)),
        "counts": tuple(int(np.count_nonzero(cats == i)) for i in range(len(CATEGORIES))),
        "ulp_count": int(np.count_nonzero(finite)),
        "ulp_zero": int(np.count_nonzero(err == 0)),
        "ulp_max": float(err[finite].max()) if finite.any() else 0.0,
        "ulp_sum": int(total * (1 << 1074)),
        "bins": bins,
        "worst": [(float(err[i]), i) for i in order],
        "examples": [np.flatnonzero(cats == i)[:k_examples].tolist() for i in range(len(CATEGORIES))],
        "ftz": (int(np.count_nonzero(lost & tiny)), int(np.count_nonzero(lost & ~tiny)), int(np.count_nonzero(sub))),
    }


FMT_OF = {np.dtype(np.float16): FLOAT16, np.dtype(np.float32): FLOAT32, np.dtype(np.float64): FLOAT64}


def fast_judge(ref: Reference, got: np.ndarray, with_baseline: bool, **kw: Any) -> dict[str, Any]:
    fmt = FMT_OF[got.dtype]
    base = Baseline.of(ref, fmt, kw.get("profile")) if with_baseline else None
    t = tally(ref, got, fmt, baseline=base, **kw)
    return {
        "n": t.n, "correct": t.correct, "counts": t.counts, "ulp_count": t.ulp_count, "ulp_zero": t.ulp_zero,
        "ulp_max": t.ulp_max, "ulp_sum": t.ulp_sum, "bins": t.bins, "worst": t.worst, "examples": t.examples,
        "ftz": t.ftz,
    }


def reference_for(y: np.ndarray, fmt: Format) -> Reference:
    """A Reference whose exact values are the float64 numbers ``y`` (NaN and inf allowed)."""
    want = round_float64(y, fmt)
    e = np.zeros(y.shape, dtype=np.int32)
    fin = np.isfinite(y)
    e[fin] = [ulp_exponent(float(v), fmt) for v in y[fin].tolist()]
    hi = np.where(fin, np.ldexp(np.where(fin, y, 0.0), -e.astype(np.int64)), y)
    return Reference(want, hi, np.zeros(y.shape), e)


def adversarial(fmt: Format, n: int, seed: int) -> tuple[Reference, np.ndarray]:
    """Truths and results that hit every path of the judge."""
    rng = np.random.default_rng(seed)
    dtype = fmt.dtype
    y = rng.standard_normal(n) * np.exp2(rng.integers(-30, 30, n))
    kind = rng.integers(0, 12, n)
    y[kind == 0] = np.nan
    y[kind == 1] = np.inf * rng.choice([-1, 1], size=int(np.count_nonzero(kind == 1)))
    y[kind == 2] = fmt.smallest_subnormal * rng.integers(1, 50, int(np.count_nonzero(kind == 2)))
    y[kind == 3] = fmt.largest * 1.5  # rounds to inf (finite truth)
    ref = reference_for(y, fmt)
    with np.errstate(all="ignore"):
        want = ref.want.astype(dtype)
        ulp = np.exp2(ref.ulp_exp.astype(np.float64))
        got = want.copy()
        # results a whole number of ulps away, and errors exactly on the fine-bin edges
        # (2**(j/16) ulps, rounded to the format), their neighbours and powers of two
        steps = rng.integers(-5, 6, n).astype(np.float64)
        got[kind == 4] = (ref.want + steps * ulp)[kind == 4].astype(dtype)
        edge = np.array(EDGES)[rng.integers(0, BINS_PER_OCTAVE + 1, n)] * np.exp2(rng.integers(0, 8, n))
        got[kind == 5] = (y + edge * ulp)[kind == 5].astype(dtype)
        got[kind == 6] = np.nan
        got[kind == 7] = np.inf
        got[kind == 8] = 0.0
        got[kind == 9] = (fmt.smallest_subnormal * 3)
        got[kind == 10] = (ref.want * (1 + 2.0 ** rng.integers(-30, 0, n)))[kind == 10].astype(dtype)
    return ref, got


@pytest.mark.parametrize("fmt", [FLOAT16, FLOAT32, FLOAT64], ids=lambda f: f.name)
@pytest.mark.parametrize("n", [1, 7, BLOCK - 1, BLOCK + 3, 3 * BLOCK + 5])
def test_fast_judge_equals_the_definitions(fmt: Format, n: int) -> None:
    ref, got = adversarial(fmt, n, seed=n)
    want = plain_judge(ref, got)
    for with_baseline in (False, True):
        assert fast_judge(ref, got, with_baseline) == want


@pytest.mark.parametrize("fmt", [FLOAT32, FLOAT64], ids=lambda f: f.name)
def test_errors_on_bin_edges_land_in_the_bin_they_close(fmt: Format) -> None:
    """err = fl(2**(j/16)) closes bin j; the next float above it opens bin j + 1."""
    errs = []
    for j in range(1, BINS_PER_OCTAVE + 1):
        for scale in (1.0, 2.0**-3, 2.0**5):
            e = EDGES[j] * scale
            errs += [e, math.nextafter(e, math.inf), math.nextafter(e, 0.0)]
    errs += [1.0, 0.5, 4.0, 2.0**-24, 2.0**-25, math.nextafter(2.0**-24, 1.0), 5e-324, 0.0]
    err = np.array(errs)
    # a result of 0 against a truth of -err ulps (ulp 2**0): the ULP error is err exactly
    ref = Reference(np.ones(err.size), -err, np.zeros(err.size), np.zeros(err.size, dtype=np.int32))
    got = np.zeros(err.size, dtype=fmt.dtype)
    t = tally(ref, got, fmt)
    plain = plain_judge(ref, got)
    assert t.bins == plain["bins"] and t.ulp_sum == plain["ulp_sum"]
    assert t.ulp_zero == 1 and t.ulp_count == err.size
    closes = {EDGES[j]: j - 16 * 0 for j in range(1, 17)}
    for e, j in closes.items():
        assert plain_bin(e) == j and plain_bin(math.nextafter(e, math.inf)) == j + 1


@pytest.mark.parametrize(("low", "high"), [(-60, 0), (-900, 40), (-1074, 40), (-1074, -1000), (30, 60), (-3, -3)])
def test_finite_errors_sum_exactly_at_every_scale(low: int, high: int) -> None:
    """A block without NaN or infinite errors is summed in fixed point, level by level (the
    binade sums take scales it cannot): errors with random 53-bit mantissas spread over
    2**low .. 2**high, subnormal and past 2**46 included, sum to the exact rational."""
    rng = np.random.default_rng(low & 0xFFFF)
    n = BLOCK + 5
    err = np.ldexp(1.0 + rng.random(n), rng.integers(low, high + 1, n)) if low > -1022 else np.concatenate(
        [np.ldexp(rng.integers(1, 1 << 52, n // 2).astype(np.float64), -1074),
         np.ldexp(1.0 + rng.random(n - n // 2), rng.integers(max(low, -1021), high + 1, n - n // 2))])
    err[::7] = 0.0
    # a result of 0 against a truth of -err ulps (ulp 2**0): the ULP error is err exactly
    ref = Reference(np.ones(n), -err, np.zeros(n), np.zeros(n, dtype=np.int32))
    t = tally(ref, np.zeros(n, dtype=np.float32), FLOAT32)
    assert t.ulp_sum == int(sum((Fraction(v) for v in err.tolist()), Fraction(0)) * (1 << 1074))


def test_float64_saturated_errors_sum_exactly() -> None:
    """Errors at the 2**1023 saturation add up past float64's range; the sum stays exact."""
    n = 5
    ref = Reference(np.full(n, 2.0**-1074), np.ones(n), np.zeros(n), np.full(n, -1074, dtype=np.int32))
    got = np.full(n, 1e300)
    t = tally(ref, got, FLOAT64)
    assert t.ulp_max == 2.0**1023
    assert t.ulp_sum == n * (1 << 1023) * (1 << 1074)


def test_profile_matches_error_profile() -> None:
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 1 << 16, 4 * BLOCK + 11).astype(np.uint16)
    x = bits.view(np.float16).astype(np.float64)
    ref, got = adversarial(FLOAT16, x.size, seed=9)
    with np.errstate(invalid="ignore"):
        c = got.astype(np.float64)
    plain = error_profile(x, ulp_errors(ref, c), category_indices(ref.want, ref.hi, c), fmt=FLOAT16)
    pi = ProfileInputs.of(x, FLOAT16)
    for base in (None, Baseline.of(ref, FLOAT16, pi)):
        t = tally(ref, got, FLOAT16, profile=pi, baseline=base)
        assert t.profile == plain


def test_profile_buckets_match_bucket_of_for_every_float32_pattern_class() -> None:
    from harness.judgement.error_vs_input import bucket_of
    from harness.judgement.error_vs_input import bucket_slots as _buckets

    rng = np.random.default_rng(2)
    bits = np.concatenate([
        rng.integers(0, 1 << 32, 200_000, dtype=np.uint64).astype(np.uint32),
        np.array([0, 1, 0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x80000000, 0x80000001, 0x007FFFFF, 0x00800000,
                  0x7FC00000, 0xFF7FFFFF], dtype=np.uint32),
    ])
    with np.errstate(invalid="ignore"):
        x = bits.view(np.float32).astype(np.float64)
    np.testing.assert_array_equal(_buckets(x, FLOAT32, 256), bucket_of(x, FLOAT32, 256) + 1)




def test_worst_ties_keep_the_earliest_positions_across_blocks() -> None:
    n = 3 * BLOCK
    y = np.full(n, 1.5)
    ref = reference_for(y, FLOAT32)
    got = np.full(n, np.float32(1.5) + np.float32(2.0**-20), dtype=np.float32)  # 8 ulps everywhere
    got[[5, BLOCK + 7, 2 * BLOCK + 9]] = np.float32(1.5 + 2.0**-18)  # 32 ulps: the three worst
    for base in (None, Baseline.of(ref, FLOAT32)):
        t = tally(ref, got, FLOAT32, k_worst=6, baseline=base)
        assert [i for _, i in t.worst] == [5, BLOCK + 7, 2 * BLOCK + 9, 0, 1, 2]
        assert [e for e, _ in t.worst] == [32.0] * 3 + [8.0] * 3


def _mostly_right(fmt: Format, n: int, seed: int, wrong: float) -> tuple[Reference, np.ndarray]:
    """Correctly rounded results except a fraction ``wrong`` of elements one ulp off:
    the case the baseline is for (most elements match it)."""
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(n) * np.exp2(rng.integers(-20, 20, n))
    y[rng.random(n) < 0.01] = np.nan
    ref = reference_for(y, fmt)
    got = ref.want.astype(fmt.dtype)
    off = rng.random(n) < wrong
    with np.errstate(all="ignore"):
        got[off] = np.nextafter(got[off], np.array(np.inf, dtype=fmt.dtype))
    return ref, got


@pytest.mark.parametrize("wrong", [0.0, 1e-5, 3e-4, 0.05, 0.3])
@pytest.mark.parametrize("fmt", [FLOAT16, FLOAT32], ids=lambda f: f.name)
def test_baseline_path_equals_the_definitions(fmt: Format, wrong: float) -> None:
    """From all-correct (worst elements from the baseline) through a handful wrong (worst
    elements mixed) to many wrong (worst elements all from the differing ones)."""
    ref, got = _mostly_right(fmt, 2 * BLOCK + 77, seed=int(wrong * 1e6), wrong=wrong)
    want = plain_judge(ref, got)
    assert fast_judge(ref, got, True) == want
    x = np.random.default_rng(1).standard_normal(got.size).astype(fmt.dtype).astype(np.float64)
    pi = ProfileInputs.of(x, fmt)
    plain_t = tally(ref, got, fmt, profile=pi)
    based = tally(ref, got, fmt, profile=pi, baseline=Baseline.of(ref, fmt, pi))
    assert based == plain_t


def test_baseline_skips_matching_elements() -> None:
    """The point of it: an implementation that matches R(y) almost everywhere is judged
    on the few elements where it does not (spied through the block routine)."""
    import harness.judgement.tally as tally_module

    ref, got = _mostly_right(FLOAT32, 4 * BLOCK, seed=7, wrong=0.001)
    base = Baseline.of(ref, FLOAT32)
    judged: list[int] = []
    real = tally_module._block

    def spy(acc: Any, where: Any, g: np.ndarray, *rest: Any) -> None:
        judged.append(g.size)
        real(acc, where, g, *rest)

    tally_module._block = spy  # type: ignore[assignment]
    try:
        tally(ref, got, FLOAT32, baseline=base)
    finally:
        tally_module._block = real  # type: ignore[assignment]
    differing = int(np.count_nonzero(got != ref.want.astype(np.float32))) + int(np.count_nonzero(np.isnan(ref.want)))
    assert sum(judged) <= 2 * differing + 10  # judged with got, and R(y)'s share taken back
