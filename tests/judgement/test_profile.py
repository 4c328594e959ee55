"""Error profiles: the ordinal axis, bucketing, the merge law, the JSON shape.

Layer: judging. Hand-built errors and categories; one profile computed from a real
Reference through :func:`batch_profile` agrees with :func:`judge` on the same batch.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from html_crafted import _identity_reference

from harness.judgement.error_vs_input import (
    COLUMNS,
    batch_profile,
    bucket_of,
    error_profile,
    max_ordinal,
    merge_profiles,
    ordinal,
)
from harness.judgement.summary import CATEGORIES, judge
from oracles.formats import get_format


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_ordinal_is_the_bit_pattern_of_every_value(name: str) -> None:
    fmt = get_format(name)
    bits = fmt.all_bit_patterns()
    with np.errstate(invalid="ignore"):
        x = fmt.from_bits(bits).astype(np.float64)
    finite = np.isfinite(x)
    sign = bits >= (1 << 15)
    mag = (bits & 0x7FFF).astype(np.float64)
    assert np.array_equal(ordinal(x[finite], fmt), np.where(sign, -mag, mag)[finite])
    assert max_ordinal(fmt) == np.abs(ordinal(x[finite], fmt)).max()


@pytest.mark.parametrize("name", ["float32", "float64"])
def test_ordinal_is_monotone_in_wide_formats(name: str) -> None:
    fmt = get_format(name)
    rng = np.random.default_rng(1)
    x = np.sort(rng.standard_normal(5000) * 10.0 ** rng.integers(-30, 30, 5000))
    assert np.all(np.diff(ordinal(x, fmt)) >= 0)
    assert ordinal([fmt.largest], fmt)[0] == max_ordinal(fmt)


def test_ordinal_of_non_finite_values() -> None:
    top = max_ordinal("float16")
    assert ordinal([np.inf, -np.inf], "float16").tolist() == [top + 1, -(top + 1)]
    assert np.isnan(ordinal([np.nan], "float16")[0])


def test_buckets_split_the_axis_evenly_and_keep_specials_apart() -> None:
    x = np.array([-65504.0, -1e-7, -0.0, 0.0, 1.0, 2.0, 65504.0, -np.inf, np.inf, np.nan])
    b = bucket_of(x, "float16", bins=4)
    assert b.tolist() == [0, 1, 2, 2, 2, 3, 3, -1, 4, 5]  # 1.0 is ordinal 15360 of 31743: below 3/4


def _random_batch(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fmt = get_format("float16")
    rng = np.random.default_rng(seed)
    with np.errstate(invalid="ignore"):
        x = fmt.from_bits(rng.integers(0, 1 << 16, n).astype(np.uint16)).astype(np.float64)
    err = np.where(np.isfinite(x), rng.random(n) * 4, np.nan)
    cats = rng.integers(-1, len(CATEGORIES), n).astype(np.int8)
    return x, err, cats


def test_chunks_merge_to_the_profile_of_the_whole() -> None:
    x, err, cats = _random_batch(20000)
    whole = error_profile(x, err, cats, fmt="float16")
    merged = None
    for part in np.array_split(np.arange(x.size), 7):
        merged = merge_profiles(merged, error_profile(x[part], err[part], cats[part], fmt="float16"))
    assert merged == whole
    # in either order
    parts = [error_profile(x[p], err[p], cats[p], fmt="float16") for p in np.array_split(np.arange(x.size), 3)]
    assert merge_profiles(merge_profiles(parts[2], parts[0]), parts[1]) == whole


def test_profile_rows_count_every_element_and_are_strict_json() -> None:
    x, err, cats = _random_batch(5000, seed=3)
    prof = error_profile(x, err, cats, fmt="float16", bins=64)
    assert prof["columns"] == list(COLUMNS)
    assert sum(r[3] for r in prof["rows"]) == x.size
    assert [r[0] for r in prof["rows"]] == sorted(r[0] for r in prof["rows"])
    for cat, rows in prof["incidence"].items():
        assert sum(r[1] for r in rows) == int(np.count_nonzero(cats == CATEGORIES.index(cat)))
    finite_rows = [r for r in prof["rows"] if 0 <= r[0] < 64]
    assert max(r[4] for r in finite_rows) == pytest.approx(np.nanmax(err))
    json.dumps(prof, allow_nan=False)  # null, never NaN or Infinity


def test_profile_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="differ in size"):
        error_profile(np.zeros(3), np.zeros(2), np.zeros(3, np.int8), fmt="float16")
    with pytest.raises(ValueError, match="bins must be at least 2"):
        error_profile(np.zeros(3), np.zeros(3), np.zeros(3, np.int8), bins=1, fmt="float16")
    a = error_profile(np.zeros(3), np.zeros(3), np.zeros(3, np.int8), fmt="float16")
    b = error_profile(np.zeros(3), np.zeros(3), np.zeros(3, np.int8), fmt="bfloat16")
    with pytest.raises(ValueError, match="cannot merge"):
        merge_profiles(a, b)


def test_batch_profile_agrees_with_judge() -> None:
    fmt = get_format("float16")
    with np.errstate(invalid="ignore"):
        x16 = fmt.from_bits(np.arange(0, 1 << 16, 5, dtype=np.uint16))
        x = x16.astype(np.float64)
    x16, x = x16[np.isfinite(x)], x[np.isfinite(x)]
    ref = _identity_reference(x, fmt)
    got64 = np.where(x > 100, np.inf, x + 3 * np.ldexp(1.0, ref.ulp_exp.astype(np.int64)) * (x < -2))
    with np.errstate(over="ignore"):
        got = got64.astype(np.float16)
    summary = judge(ref, got, fmt)
    prof = batch_profile(x, ref, got, fmt)
    assert sum(r[3] for r in prof["rows"]) == summary.n
    assert max(r[4] for r in prof["rows"] if r[4] is not None) == summary.ulp_max
    for cat, count in summary.incidence.items():
        assert sum(r[1] for r in prof["incidence"].get(cat, [])) == count
    spurious = prof["incidence"]["unexpected_inf"]
    assert min(r[2] for r in spurious) > 100 and max(r[3] for r in spurious) == float(x.max())
