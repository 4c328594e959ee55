"""The series of silu' and gelu' about their roots (oracles/fast/root_series.py, used by
oracles/fast/gradients.py): its value within its proven bound of an independent MPFR
evaluation (gmpy2, 256 bits) however close x lies to the root, its coefficients equal to
mpmath's numerical Taylor series, and the tiers deciding the window beside each root,
bit for bit as the pure mpmath path does.

Before the series, the tiers' generic bound (libm errors absolute, so unbounded relative
to a vanishing value) left 360,000 float32 inputs beside gelu's root and 15,000 beside
silu's to the exact evaluator."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from mpmath import mp, mpf

from oracles import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, Format, evaluate, fast
from oracles.fast import gradients
from oracles.fast.root_series import RootSeries, root_series
from oracles.gradients import gradient_oracle

gmpy2 = pytest.importorskip("gmpy2")

SERIES: dict[str, Callable[[], RootSeries]] = {"silu": gradients._silu_root, "gelu": gradients._gelu_root}


def _mpfr_d(name: str, x: float) -> object:
    """silu' or gelu' at x with MPFR, 256 bits (no cancellation there: |d| > 2**-80)."""
    with gmpy2.context(precision=256):
        t = gmpy2.mpfr(x)
        if name == "silu":
            s = 1 / (1 + gmpy2.exp(-t))
            return s * (1 + t * (1 - s))
        return gmpy2.erfc(-t / gmpy2.sqrt(2)) / 2 + t * gmpy2.exp(-t * t / 2) / gmpy2.sqrt(2 * gmpy2.const_pi())


def _beside(x0: float, fmt: Format, k: int) -> npt.NDArray[np.float64]:
    """The value of ``fmt`` nearest x0 and the k next ones on each side (by bit pattern: x0
    is not near 0, so the patterns around its own are of its sign)."""
    bits = np.array([x0], dtype=fmt.dtype).view(fmt.uint_dtype).astype(np.int64)[0]
    around = np.arange(bits - k, bits + k + 1, dtype=np.int64).astype(fmt.uint_dtype)
    return fmt.from_bits(around).astype(np.float64)


def _window(series: RootSeries, fmt: Format, rng: np.random.Generator, n: int = 1500) -> npt.NDArray[np.float64]:
    """Values of ``fmt`` in the window: beside the root, at its edges, and uniform within."""
    x0, w = series.x0_hi, series.width
    with np.errstate(all="ignore"):
        inside = rng.uniform(x0 - w, x0 + w, n).astype(fmt.dtype).astype(np.float64)
    edges = np.concatenate([_beside(x0 - w, fmt, 3), _beside(x0 + w, fmt, 3)])
    return np.concatenate([_beside(x0, fmt, 300), edges, inside])


@pytest.mark.parametrize("name", sorted(SERIES))
def test_value_within_its_bound_against_mpfr(name: str) -> None:
    series = SERIES[name]()
    assert series.bound < 2.0**-47  # useful: float32 needs well under 2**-25
    rng = np.random.default_rng(5)
    x0, w = series.x0_hi, series.width
    # float64 inputs as close to the root as there are (h = -x0_lo and its neighbours), the
    # window's edges, and uniform ones
    x = np.concatenate([_beside(x0, FLOAT64, 200), rng.uniform(x0 - w, x0 + w, 2000),
                        [x0 - w, x0 + w]])
    v = series.value(x)
    worst = 0.0
    for xi, vi in zip(x.tolist(), v.tolist(), strict=True):
        d = _mpfr_d(name, xi)
        with gmpy2.context(precision=256):
            rel = float(abs((gmpy2.mpfr(vi) - d) / d))
        worst = max(worst, rel)
    assert worst <= series.bound, (worst, series.bound)


@pytest.mark.parametrize("name", sorted(SERIES))
def test_coefficients_are_the_taylor_series(name: str) -> None:
    """The recurrences against mpmath's numerical differentiation of the catalogue's formula."""
    series = SERIES[name]()

    def d(t: mpf) -> mpf:
        if name == "silu":
            s = 1 / (1 + mp.exp(-t))
            return s * (1 + t * (1 - s))
        return mp.ncdf(t) + t * mp.npdf(t)

    with mp.workprec(200):
        x0 = mpf(series.x0_hi) + mpf(series.x0_lo)
        assert abs(d(x0)) < mpf(2) ** -100  # the root itself
        taylor = mp.taylor(d, x0, len(series.coeffs))[1:]
        for k, (ours, theirs) in enumerate(zip(series.coeffs, taylor, strict=True), start=1):
            assert ours == float(theirs), (k, ours, theirs)


def test_a_window_past_the_factor_two_range_is_refused() -> None:
    with mp.workprec(200):
        x0 = mpf("-0.75")
        with pytest.raises(ValueError, match="factor-2"):
            root_series(x0, [mpf(1), mpf(0)], mpf(1), 0.5)
        with pytest.raises(ValueError, match="clear of 0"):
            root_series(x0, [mpf("0.01"), mpf(5)], mpf(1), 0.25)


@pytest.mark.parametrize("fmt", [FLOAT16, BFLOAT16, FLOAT32], ids=str)
@pytest.mark.parametrize("name", sorted(SERIES))
def test_tier_decides_the_window_beside_the_root(name: str, fmt: Format) -> None:
    """Every value of a 16-bit format in the window, and for float32 the 300 nearest the root
    on each side with 1,500 uniform ones: the tier's answers equal mpmath's (cotangent 1 and
    3), and it decides them (before the series it left every input within about 0.02 of
    gelu's root to the exact evaluator)."""
    series = SERIES[name]()
    o = gradient_oracle(name, "x")
    if fmt.bits == 16:
        with np.errstate(all="ignore"):
            x = fmt.from_bits(fmt.all_bit_patterns()).astype(np.float64)
        x = np.concatenate([x[series.covers(x)], _beside(series.x0_hi, fmt, 3)])
    else:
        x = _window(series, fmt, np.random.default_rng(9))
    for g in (1.0, 3.0):
        gg = np.full_like(x, g)
        fast_ref = evaluate(o, [x, gg], fmt, {}, tier=True)
        slow_ref = evaluate(o, [x, gg], fmt, {}, tier=False, jobs=2)
        same = fast_ref.want.view(np.int64) == slow_ref.want.view(np.int64)
        same &= fast_ref.ulp_exp == slow_ref.ulp_exp
        same &= np.abs((fast_ref.hi + fast_ref.lo) - (slow_ref.hi + slow_ref.lo)) <= 1e-12 * np.abs(slow_ref.hi)
        assert same.all(), x[~same][:5]
    tier = fast.tier_for(o, fmt)
    assert tier is not None
    _, done = fast.run_tier(tier, o, [x, np.ones_like(x)], fmt, o.math_params(o.bind(None)))
    assert np.mean(done) >= 0.999, (np.mean(done), x[~done][:5])

