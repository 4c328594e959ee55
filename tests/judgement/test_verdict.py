"""The judge: hand-computed categories and ULP errors, and exactly mergeable summaries.

References are built by ``oracles.evaluate`` on an identity oracle, so the exact value y
is any float64 we like (65519.99 just below float16's overflow threshold, 70000 past it)
and the Reference is the one the harness would really hand the judge. The expected
numbers are worked out by hand from the definitions in the spec:
ulp(y) = 2**(max(floor(log2|y|), emin) - p + 1), error = |c - y| / ulp(y).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.judgement.summary import BINS_PER_OCTAVE, CATEGORIES, DEFECTS, Summary, judge, ulp_errors
from oracles import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, Arg, Format, Oracle, Reference, evaluate

IDENTITY = Oracle(name="identity", kind="elementwise", args=(Arg("x"),), fn=lambda x: x)
NAN, INF = math.nan, math.inf
T16 = 65520.0  # float16 overflow threshold: 65504 + 32 / 2
BELOW_T16 = float(np.nextafter(T16, 0.0))


def ref_of(ys: list[float], fmt: Format = FLOAT16) -> Reference:
    """The Reference for exact values ``ys`` (any float64, NaN and +-inf included)."""
    return evaluate(IDENTITY, [np.array(ys, dtype=np.float64)], fmt)


def got(cs: list[float], fmt: Format = FLOAT16) -> np.ndarray:
    return fmt.from_float64(np.array(cs, dtype=np.float64), what="computed")


def judge_one(y: float, c: float, fmt: Format = FLOAT16) -> Summary:
    return judge(ref_of([y], fmt), got([c], fmt), fmt)


# -- ulp at binade edges and subnormals ------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "y", "ulp_exp"),
    [
        (FLOAT16, 1.0, -10),
        (FLOAT16, 1 - 2.0**-20, -11),  # just below a binade edge the ulp halves
        (FLOAT16, 2.0, -9),
        (FLOAT16, 65504.0, 5),  # ulp(largest) = 32
        (FLOAT16, BELOW_T16, 5),
        (FLOAT16, 70000.0, 6),  # past overflow y keeps its own binade
        (FLOAT16, 2.0**-14, -24),  # smallest normal
        (FLOAT16, 2.0**-14 - 2.0**-30, -24),  # subnormal range: fixed spacing
        (FLOAT16, 3 * 2.0**-24, -24),
        (FLOAT16, 2.0**-30, -24),  # below the smallest subnormal
        (FLOAT16, 0.0, -24),  # ulp(0) = smallest subnormal
        (FLOAT16, -1.0, -10),
        (BFLOAT16, 1.0, -7),
        (BFLOAT16, 2.0**-127, -133),
        (FLOAT32, 1.0, -23),
        (FLOAT32, 0.0, -149),
        (FLOAT64, 1.0, -52),
        (FLOAT64, 0.0, -1074),
    ],
    ids=lambda v: str(v),
)
def test_reference_ulp_exponent(fmt: Format, y: float, ulp_exp: int) -> None:
    ref = ref_of([y], fmt)
    assert int(ref.ulp_exp[0]) == ulp_exp
    # hi + lo is y / ulp(y), exactly
    assert Fraction(float(ref.hi[0])) + Fraction(float(ref.lo[0])) == Fraction(y) / Fraction(2) ** ulp_exp


@pytest.mark.parametrize(
    ("y", "c", "error"),
    [
        (1.0, 1.0 + 2.0**-10, 1.0),  # ulp(1) = 2**-10
        (1.0, 1.0 - 2.0**-11, 0.5),  # the error is in ulps of y, not of c
        (1 - 2.0**-20, 1.0, 2.0**-9),  # ulp(1-) = 2**-11
        (1 - 2.0**-20, 1 - 2.0**-11, 1 - 2.0**-9),
        (1 + 2.0**-11, 1.0, 0.5),  # an exact tie, correctly rounded (to even): 0.5
        (1 + 2.0**-11, 1 + 2.0**-10, 0.5),  # the other side of the tie: 0.5, but wrong
        (65504.0, 65472.0, 1.0),  # ulp(65504) = 32
        (BELOW_T16, 65504.0, (BELOW_T16 - 65504.0) / 32),  # just under 0.5
        (T16, 65504.0, 0.5),  # the threshold itself rounds to inf; c is still 0.5 ulp away
        (70000.0, 65504.0, (70000.0 - 65504.0) / 64),  # overflowing y: finite error (ulp 64)
        (3 * 2.0**-24 + 2.0**-30, 3 * 2.0**-24, 2.0**-6),  # subnormal: ulp 2**-24
        (0.0, 2.0**-24, 1.0),  # ulp(0) = 2**-24
        (0.0, -(2.0**-23), 2.0),
        (2.0**-30, 0.0, 2.0**-6),
        (-1.0, -1.0 - 2.0**-10, 1.0),
    ],
    ids=lambda v: repr(v),
)
def test_ulp_error_by_hand(y: float, c: float, error: float) -> None:
    s = judge_one(y, c)
    assert s.ulp_count == 1
    assert s.ulp_max == error
    assert s.ulp_mean == error
    ref = ref_of([y])
    assert ulp_errors(ref, np.array([c]))[0] == error


def test_tie_is_correctly_rounded_at_exactly_half_an_ulp() -> None:
    ref = ref_of([1 + 2.0**-11, 1 + 3 * 2.0**-11])  # ties: 1 (even) and 1 + 2**-9 (even)
    assert ref.want.tolist() == [1.0, 1 + 2.0**-9]
    s = judge(ref, got([1.0, 1 + 2.0**-9]), FLOAT16)
    assert s.correctly_rounded == 2
    assert s.ulp_max == 0.5 and s.ulp_mean == 0.5
    wrong = judge(ref, got([1 + 2.0**-10, 1 + 2.0**-10]), FLOAT16)
    assert wrong.correctly_rounded == 0
    assert wrong.ulp_max == 0.5


# -- categories -------------------------------------------------------------------------

CATEGORY_CASES = [
    # (id, y, c, category or None, correctly_rounded)
    ("unexpected_nan", 1.0, NAN, "unexpected_nan", False),
    ("unexpected_nan-vs-inf-truth", INF, NAN, "unexpected_nan", False),
    ("missing_nan", NAN, 1.0, "missing_nan", False),
    ("missing_nan-beats-unexpected_inf", NAN, INF, "missing_nan", False),
    ("missing_nan-beats-lost_to_zero", NAN, 0.0, "missing_nan", False),
    ("unexpected_inf", 1.0, INF, "unexpected_inf", False),
    ("unexpected_inf-below-threshold", BELOW_T16, INF, "unexpected_inf", False),
    ("unexpected_inf-wrong-sign", 70000.0, -INF, "unexpected_inf", False),
    ("inherent_inf", 70000.0, INF, "inherent_inf", True),
    ("inherent_inf-at-threshold", T16, INF, "inherent_inf", True),
    ("inherent_inf-pole", -INF, -INF, "inherent_inf", True),
    ("missing_inf", 70000.0, 65504.0, "missing_inf", False),
    ("missing_inf-at-threshold", T16, 65504.0, "missing_inf", False),
    ("missing_inf-infinite-truth", -INF, -65504.0, "missing_inf", False),
    ("missing_inf-beats-lost_to_zero", INF, 0.0, "missing_inf", False),
    ("lost_to_zero", 2.0**-20, 0.0, "lost_to_zero", False),
    ("lost_to_zero-negative", -(2.0**-20), -0.0, "lost_to_zero", False),
    ("lost_to_zero-smallest-subnormal", 2.0**-24, 0.0, "lost_to_zero", False),
    ("lost_to_zero-just-above-half", 2.0**-25 + 2.0**-40, 0.0, "lost_to_zero", False),
    ("zero-right-tie-to-even", 2.0**-25, 0.0, None, True),
    ("zero-right-underflow", 2.0**-26, -0.0, None, True),
    ("zero-sign-ignored", 0.0, -0.0, None, True),
    ("nan-is-nan", NAN, NAN, None, True),
    ("finite-right", 1.0, 1.0, None, True),
    ("finite-wrong", 1.0, 1.5, None, False),
    ("largest-right", BELOW_T16, 65504.0, None, True),
]


@pytest.mark.parametrize(("y", "c", "category", "correct"), [c[1:] for c in CATEGORY_CASES],
                         ids=[c[0] for c in CATEGORY_CASES])
def test_category(y: float, c: float, category: str | None, correct: bool) -> None:
    s = judge_one(y, c)
    expected = {name: int(name == category) for name in CATEGORIES}
    assert s.incidence == expected
    assert s.correctly_rounded == int(correct)
    assert s.n == 1
    finite = math.isfinite(y) and math.isfinite(c)
    assert s.ulp_count == int(finite)  # ULP errors only for finite c and finite y
    assert s.clean == (category not in DEFECTS)
    if category is not None:
        (ex,) = s.examples
        assert ex.category == category
        assert ex.index == 0


def test_every_category_has_a_case() -> None:
    assert {c[3] for c in CATEGORY_CASES} - {None} == set(CATEGORIES)


def test_float64_error_saturates_instead_of_overflowing() -> None:
    """|c - y| / ulp(y) can pass float64's range in a float64 cell; it saturates at 2**1023
    so that the exact sum, the bins and the JSON stay finite."""
    ref = ref_of([5e-324, 2.0**52, 1.0], FLOAT64)
    s = judge(ref, np.array([1e300, 1.7e308, 1.0]), FLOAT64)
    assert s.ulp_count == 3
    assert s.ulp_max == 2.0**1023
    assert s.histogram()[-1] == (2.0**1023, 2)
    assert s.percentile(1.0) == 2.0**1023
    json.dumps(s.to_json(), allow_nan=False)
    assert Summary.from_json(s.to_json()) == s


def test_judge_rejects_a_size_mismatch() -> None:
    with pytest.raises(ValueError, match="got 1 values for 2 reference elements"):
        judge(ref_of([1.0, 2.0]), got([1.0]), FLOAT16)


# -- mergeable summaries ------------------------------------------------------------------


@functools.cache
def cell() -> tuple[Reference, np.ndarray, np.ndarray]:
    """A float16 cell of 1,500 elements with every category, many equal errors (so that
    ties in the worst list are broken by position) and the inputs for examples."""
    rng = np.random.default_rng(20240611)
    n = 1500
    y = rng.standard_normal(n) * np.exp2(rng.integers(-30, 17, n))
    exact = rng.random(n) < 0.3  # values of the format itself: the truth needs no rounding
    with np.errstate(over="ignore"):
        y[exact] = y[exact].astype(np.float16).astype(np.float64)
    specials = np.array([NAN, INF, -INF, 70000.0, -70000.0, 0.0, 2.0**-26, T16, 1 + 2.0**-11])
    y[rng.choice(n, 200, replace=False)] = rng.choice(specials, 200)
    ref = ref_of(y.tolist())
    want = ref.want.copy()
    c = want.copy()
    nudge = rng.integers(-3, 4, n)  # up to 3 ulps off; nudge 0 (about 1 in 7) is exact
    for k in (-3, -2, -1, 1, 2, 3):
        sel = (nudge == k) & np.isfinite(c)
        arr = c[sel].astype(np.float16)
        step = FLOAT16.next_up if k > 0 else FLOAT16.next_down
        for _ in range(abs(k)):
            arr = step(arr)
        c[sel] = arr.astype(np.float64)
    c[rng.choice(n, 40, replace=False)] = NAN
    c[rng.choice(n, 40, replace=False)] = INF
    c[rng.choice(n, 40, replace=False)] = 0.0
    return ref, c.astype(np.float16), y


def describe(i: int) -> tuple[tuple[str, ...], tuple[str, ...], int | None, int | None]:
    _ref, _c, y = cell()
    return (f"y#{i}",), (repr(float(y[i])),), None, None


def judge_chunks(cuts: list[int], k_worst: int = 10) -> Summary:
    ref, c, _y = cell()
    edges = [0, *sorted(set(cuts)), ref.size]
    parts = []
    for a, b in itertools.pairwise(edges):
        parts.append(judge(ref[a:b], c[a:b], FLOAT16, describe=lambda i, a=a: describe(a + i), offset=a,
                           k_worst=k_worst))
    return Summary.merge_all(parts)


@functools.cache
def whole(k_worst: int = 10) -> Summary:
    ref, c, _y = cell()
    return judge(ref, c, FLOAT16, describe=describe, k_worst=k_worst)


def test_cell_covers_everything() -> None:
    s = whole()
    assert all(s.incidence[name] > 0 for name in CATEGORIES), s.incidence
    assert s.ulp_zero > 30  # many equal (zero) errors
    assert len(s.worst) == 10


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(0, 1500), max_size=6), k_worst=st.sampled_from([1, 10, 2000]))
def test_merge_of_any_split_equals_whole(cuts: list[int], k_worst: int) -> None:
    merged = judge_chunks(cuts, k_worst)
    full = whole(k_worst)
    assert merged == full
    assert json.dumps(merged.to_json(), sort_keys=True) == json.dumps(full.to_json(), sort_keys=True)


@pytest.mark.parametrize("seed", range(5))
def test_merge_is_order_independent(seed: int) -> None:
    ref, c, _y = cell()
    rng = np.random.default_rng(seed)
    cuts = sorted(rng.choice(np.arange(1, ref.size), 4, replace=False).tolist())
    edges = [0, *cuts, ref.size]
    parts = [judge(ref[a:b], c[a:b], FLOAT16, describe=lambda i, a=a: describe(a + i), offset=a)
             for a, b in itertools.pairwise(edges)]
    order = rng.permutation(len(parts))
    assert Summary.merge_all(parts[i] for i in order) == whole()
    assert Summary().merge(whole()) == whole() == whole().merge(Summary())


def test_worst_ties_broken_by_position() -> None:
    ref = ref_of([1 + 2.0**-11] * 30)
    s = judge(ref, got([1.0] * 30), FLOAT16, k_worst=5)
    assert [e.index for e in s.worst] == [0, 1, 2, 3, 4]
    parts = [judge(ref[a:a + 7], got([1.0] * 30)[a:a + 7], FLOAT16, k_worst=5, offset=a) for a in (28, 21, 14, 7, 0)]
    assert Summary.merge_all(parts) == s


def test_json_round_trip() -> None:
    s = whole()
    assert Summary.from_json(s.to_json()) == s
    assert Summary.from_json(json.loads(json.dumps(s.to_json(), allow_nan=False))) == s
    assert Summary.from_json(Summary().to_json()) == Summary()
    d = s.to_json()
    assert d["n"] == 1500
    assert d["incidence"] == s.incidence
    assert d["ulp"]["count"] == s.ulp_count


# -- percentiles, histogram and mean -------------------------------------------------------


def summary_of_errors(errors: list[float]) -> Summary:
    """A float64 cell whose ULP errors are exactly ``errors``: y = 0 with the stored ulp
    scaled to 1 (hi = lo = 0, ulp_exp = 0), so that the error is |c|."""
    n = len(errors)
    ref = Reference(np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int32))
    return judge(ref, np.array(errors, dtype=np.float64), FLOAT64)


QUANTILES = (0.5, 0.9, 0.99, 0.999, 1.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.just(0.0), st.floats(1e-12, 1e12), st.sampled_from([0.5, 1.0, 2.0, 0.25])),
                min_size=1, max_size=300))
def test_percentiles_are_tight_upper_bounds(errors: list[float]) -> None:
    s = summary_of_errors(errors)
    arr = np.array(errors)
    for q in QUANTILES:
        exact = float(np.percentile(arr, 100 * q, method="inverted_cdf"))
        p = s.percentile(q)
        assert p is not None
        assert p <= s.ulp_max == arr.max()
        if exact == 0:
            assert p == 0
        else:
            # the upper edge of a fine bin, 2**(1/BINS_PER_OCTAVE) wide; errors below 2**-24
            # ULP all share the lowest bin, whose upper edge is 2**-24
            bound = max(exact * 2 ** (1 / BINS_PER_OCTAVE) * (1 + 1e-12), 2.0**-24)
            assert exact <= p <= bound, (q, exact, p)


def test_percentile_of_nothing() -> None:
    s = judge_one(NAN, NAN)
    assert s.ulp_count == 0
    assert s.percentile(0.5) is None
    assert s.ulp_mean is None
    assert s.histogram() == []


def test_histogram_edges_are_exact() -> None:
    def up(v: float) -> float:
        return float(np.nextafter(v, np.inf))

    errors = [0.0, 0.25, 0.5, float(up(0.5)), 1.0, float(up(1.0)), 2.0, float(up(2.0)), 3.0, 4.0]
    s = summary_of_errors(errors)
    assert s.histogram() == [(0.5, 3), (1.0, 2), (2.0, 2), (4.0, 3)]
    assert s.percentile(0.3) == 0.5  # rank 3 of 10 is 0.5 itself, an exact power of two
    assert s.percentile(0.5) == 1.0


def test_histogram_of_real_ties() -> None:
    s = judge(ref_of([1 + 2.0**-11, 1.0, 1 + 2.0**-12]), got([1.0, 1.0, 1.0]), FLOAT16)
    assert s.histogram() == [(0.5, 3)]  # 0.5, 0 and 0.25 all fall at or below 0.5


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1e9), min_size=1, max_size=200))
def test_mean_is_exact(errors: list[float]) -> None:
    s = summary_of_errors(errors)
    exact = sum((Fraction(e) for e in errors), Fraction(0)) / len(errors)
    assert s.ulp_mean == float(exact)
