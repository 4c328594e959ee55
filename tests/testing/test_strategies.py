"""Hypothesis strategies for every format, bfloat16 included, and ULP-error targeting."""

from __future__ import annotations

import math
from typing import Any

import ml_dtypes
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from harness.testing import strategies as hs
from oracles.errors import UsageError
from oracles.formats import FORMATS, get_format

FAST = settings(max_examples=60, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FORMAT_NAMES = sorted(FORMATS)


def _sample(strategy: st.SearchStrategy[Any], n: int = 300) -> list[Any]:
    """Draw ``n`` examples through a @given run (strategy.example() is for interactive use)."""
    out: list[Any] = []

    # derandomized: the statistical assertions below see the same draws every run
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate], derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: Any) -> None:
        out.append(value)

    collect()
    return out


def _float64(values: list[Any]) -> npt.NDArray[np.float64]:
    with np.errstate(invalid="ignore"):  # bfloat16 NaN payloads warn on the way to NaN
        return np.array([np.asarray(v).astype(np.float64) for v in values], dtype=np.float64)


def _bits(values: list[Any], name: str) -> npt.NDArray[Any]:
    fmt = get_format(name)
    return np.array(values, dtype=fmt.dtype).view(fmt.uint_dtype)


# -- floats --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_floats_are_numpy_scalars_of_the_format(name: str) -> None:
    fmt = get_format(name)
    values = _sample(hs.floats(name), 100)
    assert all(isinstance(v, np.generic) and np.asarray(v).dtype == fmt.dtype for v in values)


def test_bfloat16_is_ml_dtypes() -> None:
    values = _sample(hs.floats("bfloat16", allow_nan=False, allow_infinity=False), 50)
    assert all(type(v) is ml_dtypes.bfloat16 for v in values)


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_bits_spread_covers_the_binades(name: str) -> None:
    fmt = get_format(name)
    values = _float64(_sample(hs.floats(name, allow_nan=False, allow_infinity=False), 200))
    exps = {math.frexp(abs(v))[1] for v in values if v != 0}
    n_binades = fmt.emax - fmt.emin + fmt.precision  # normal and subnormal binades
    # uniform over patterns: every binade is as likely as any other, so 400 draws see many
    assert len(exps) >= min(n_binades, 200) * 0.4
    assert (values > 0).any() and (values < 0).any()


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_bounds_and_flags_are_respected(name: str) -> None:
    arr = _float64(_sample(hs.floats(name, min_value=-2.0, max_value=0.5, allow_subnormal=False), 100))
    assert np.all((arr >= -2.0) & (arr <= 0.5))
    tiny = get_format(name).smallest_normal
    assert not np.any((arr != 0) & (np.abs(arr) < tiny))


@pytest.mark.parametrize("spread", ["bits", "values"])
@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_specials_appear_when_allowed(name: str, spread: str) -> None:
    values = _float64(_sample(hs.floats(name, spread=spread), 150))  # type: ignore[arg-type]
    assert np.isnan(values).any()
    finite = values[np.isfinite(values)]
    assert finite.size > values.size // 2


def test_no_nan_or_inf_when_disallowed() -> None:
    values = _float64(_sample(hs.floats("bfloat16", allow_nan=False, allow_infinity=False), 200))
    assert np.isfinite(values).all()


def test_values_spread_for_bfloat16_stays_in_bounds() -> None:
    arr = _float64(_sample(hs.floats("bfloat16", min_value=-1.0, max_value=3.0, spread="values"), 100))
    assert np.all((arr >= -1.0) & (arr <= 3.0))


def test_negative_zero_sorts_below_positive_zero() -> None:
    bits = _bits(_sample(hs.floats("float16", min_value=0.0, max_value=1.0), 200), "float16")
    assert not (bits == 0x8000).any()  # -0.0 is below a lower bound of +0.0
    bits = _bits(_sample(hs.floats("float16", min_value=-0.0, max_value=0.0), 60), "float16")
    assert set(bits.tolist()) <= {0x0000, 0x8000}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_value": 0.1}, r"min_value=0.1 is not exactly representable in float16; use min_value=0.1000366"),
        ({"max_value": 0.1}, r"max_value=0.1 is not exactly representable in float16; use max_value=0.0999755"),
        ({"min_value": 0.0, "allow_nan": True}, "allow_nan=True cannot be combined"),
        ({"min_value": 0.0, "max_value": 1.0, "allow_infinity": True}, "allow_infinity=True needs"),
        ({"min_value": 2.0, "max_value": 1.0}, "is above max_value"),
        ({"min_value": 2.0**-20, "max_value": 2.0**-19, "allow_subnormal": False}, "holds only subnormal"),
        ({"spread": "log"}, "spread='log' is not valid; pick from: bits, values"),
    ],
    ids=["min-inexact", "max-inexact", "nan-bounds", "inf-bounds", "empty", "only-subnormal", "spread"],
)
def test_invalid_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        hs.floats("float16", **kwargs)


def test_unknown_format() -> None:
    with pytest.raises(UsageError, match="unknown dtype 'float8'; pick from: bfloat16, float16, float32, float64"):
        hs.floats("float8")


# -- arrays, rows, loss pairs --------------------------------------------------------------------------


@FAST
@given(hs.arrays("bfloat16", (3, 5), allow_nan=False, allow_infinity=False))
def test_arrays_shape_and_dtype(a: npt.NDArray[Any]) -> None:
    assert a.shape == (3, 5) and a.dtype == ml_dtypes.bfloat16
    assert np.isfinite(a.astype(np.float32)).all()


@FAST
@given(hs.rows("float16", mask=True, max_width=6))
def test_rows_masked_but_never_fully(x: npt.NDArray[Any]) -> None:
    assert x.ndim == 2 and x.dtype == np.float16
    f = x.astype(np.float64)
    assert not np.isnan(f).any() and not np.isposinf(f).any()
    assert np.isfinite(f).any(axis=1).all()


def test_rows_masking_happens_and_can_be_full() -> None:
    samples = _sample(hs.rows("float32", mask=True, allow_fully_masked=True, max_width=3, max_rows=2), 100)
    assert any(np.isneginf(x).any() for x in samples)
    assert any(np.isneginf(x).all(axis=1).any() for x in samples)


@FAST
@given(hs.loss_pairs("bfloat16", labels="hard"))
def test_loss_pairs_hard_labels(pair: tuple[npt.NDArray[Any], npt.NDArray[Any]]) -> None:
    p, y = (a.astype(np.float64) for a in pair)
    assert p.shape == y.shape and pair[0].dtype == ml_dtypes.bfloat16
    assert np.all((p >= 0) & (p <= 1))
    assert set(np.unique(y).tolist()) <= {0.0, 1.0}


def test_loss_pairs_are_dense_at_both_ends() -> None:
    ps = np.concatenate([pair[0].astype(np.float64) for pair in _sample(hs.loss_pairs("float16", shape=16), 50)])
    ys = np.concatenate(
        [pair[1].astype(np.float64) for pair in _sample(hs.loss_pairs("float16", shape=8, labels="soft"), 20)]
    )
    assert (ps < 1e-3).mean() > 0.1 and (ps > 0.999).mean() > 0.1
    assert (ps == 1.0).any()
    assert np.all((ys >= 0) & (ys <= 1)) and ((ys > 0) & (ys < 1)).any()


# -- ULP error and targeting ------------------------------------------------------------------------


def naive_softplus(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.log(1 + np.exp(x))


def stable_softplus(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.logaddexp(np.zeros_like(x), x)


def test_ulp_error_of() -> None:
    assert hs.ulp_error_of(stable_softplus, "softplus", np.float16(3.0)) <= 0.5
    assert hs.ulp_error_of(naive_softplus, "softplus", np.float16(12.0)) == hs.ULP_ERROR_CAP  # overflow to inf
    err = hs.ulp_error_of(naive_softplus, "softplus", np.array([-7.625], dtype=np.float16))
    assert 2046 < err < 2047  # 1 + e**-7.625 rounds to 1 in float16
    # inputs are converted exactly into the requested format
    assert hs.ulp_error_of(stable_softplus, "softplus", [np.array([0.5, 2.0])], "bfloat16") <= 0.5
    with pytest.raises(UsageError, match="not exactly representable in float16"):
        hs.ulp_error_of(stable_softplus, "softplus", np.array([0.1]), "float16")
    with pytest.raises(UsageError, match=r"takes 2 argument\(s\) \(p, y\), got 1"):
        hs.ulp_error_of(stable_softplus, "binary_cross_entropy", np.float16(0.5))


def test_ulp_error_of_two_arguments() -> None:
    def bce(p: npt.NDArray[Any], y: npt.NDArray[Any]) -> npt.NDArray[Any]:
        p32, y32 = p.astype(np.float32), y.astype(np.float32)
        return (-(y32 * np.log(p32) + (1 - y32) * np.log1p(-p32))).astype(p.dtype)

    p = np.array([0.25, 0.5], dtype=np.float16)
    y = np.array([0.0, 1.0], dtype=np.float16)
    assert hs.ulp_error_of(bce, "binary_cross_entropy", (p, y)) <= 1.0


def test_targeting_finds_the_float16_overflow() -> None:
    @settings(max_examples=150, database=None, deadline=None, derandomize=True)
    @given(hs.floats("float16", min_value=-20.0, max_value=20.0))
    def naive_is_accurate(x: Any) -> None:
        assert hs.target_ulp_error(naive_softplus, "softplus", x) <= 1.0

    with pytest.raises(AssertionError):
        naive_is_accurate()
