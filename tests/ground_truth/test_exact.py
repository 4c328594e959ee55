"""The MPFR evaluator (``oracles/exact.py``) against ziv over mpmath, element by element.

``settle_fast`` must reproduce ``oracles.evaluate(..., tier=False)`` (the definition):
``want`` bit for bit (NaN equal to NaN, the sign of zero compared) and ``ulp_exp``
exactly, and ``hi + lo`` within ziv's own accuracy (its v2 carries p + 60 bits, less what
the formula loses: 2**-(p + 36) relative here), on

* every 64th float16 and bfloat16 bit pattern, in its own format, for the ten oracles;
* 3,000 random float32 bit patterns per oracle, in float32;
* specials (NaN, +-0, +-inf, +-1, the formulas' own thresholds and their neighbours,
  subnormals, the largest values) and the hard inputs of ``benchmarks/bench_exact.py``
  (results exact, or a hair beside a power of two or a float32 midpoint), rounded into
  each of float16, bfloat16, float32 and float64 so that they are values of the format,
  as the harness passes them.

Separately: ``hi + lo`` against a 600-bit evaluation to 2**-90; softplus with other betas;
which oracles, parameters and formats the evaluator declines (None); and inputs that are
*not* values of the output format (float32 values settled into bfloat16), where y = x +
e**-x lies beside a midpoint x that no working precision separates it from.

Skipped without gmpy2. About 12 s in one process.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from mpmath import mp, mpf

from oracles import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, Format, OracleError, evaluate, exact, get_oracle
from oracles.exact import settle_fast
from oracles.registry import Oracle
from oracles.rounding import round_float64

pytest.importorskip("gmpy2")

ORACLES = ["exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus", "log_sigmoid", "silu", "gelu"]
ALL = [FLOAT16, BFLOAT16, FLOAT32, FLOAT64]
F64 = npt.NDArray[np.float64]


def _bench() -> ModuleType:
    """benchmarks/bench_exact.py, for its hard inputs (the benchmarks are scripts, not a package)."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_exact.py"
    spec = importlib.util.spec_from_file_location("bench_exact", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # it imports its sibling bench_oracle, as a script does
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


BENCH = _bench()


# -- comparison ------------------------------------------------------------------------


def _settled(name: str, x: F64, fmt: Format, params: dict[str, Any] | None = None) -> tuple[Any, list[Any]]:
    o = get_oracle(name)
    ref = evaluate(o, [x], fmt, params, tier=False)
    got = settle_fast(o, x, fmt, o.math_params(o.bind(params)))
    assert got is not None
    return ref, got


def _same_bits(a: F64, b: F64) -> npt.NDArray[np.bool_]:
    return (np.isnan(a) & np.isnan(b)) | ((a == b) & (np.signbit(a) == np.signbit(b)))


def _agree(name: str, x: F64, fmt: Format, params: dict[str, Any] | None = None) -> None:
    """settle_fast equals ziv on every element of ``x`` (see the module docstring)."""
    ref, got = _settled(name, x, fmt, params)
    want, hi, lo, ulp = (np.array(c, dtype=np.float64) for c in zip(*got, strict=True))
    bad = ~_same_bits(want, ref.want) | (ulp != ref.ulp_exp)
    if bad.any():
        i = np.flatnonzero(bad)[:8]
        rows = [f"x={x[j]!r}: ziv ({ref.want[j]!r}, {int(ref.ulp_exp[j])}) exact ({want[j]!r}, {int(ulp[j])})" for j in i]
        pytest.fail(f"{name} in {fmt}: {int(bad.sum())} of {x.size} differ:\n  " + "\n  ".join(rows))
    finite = np.isfinite(ref.hi) & (ref.hi != 0)
    special = _same_bits(hi, ref.hi) & _same_bits(lo, ref.lo)
    assert special[~finite].all(), f"{name} in {fmt}: hi, lo of x={x[~finite & ~special][:4]!r}"
    with np.errstate(all="ignore"):
        rel = np.abs((hi - ref.hi) + (lo - ref.lo))[finite] / np.abs(ref.hi[finite])
    tol = 2.0 ** -(fmt.precision + 36)
    assert not (rel > tol).any(), f"{name} in {fmt}: hi + lo off by {rel.max():.3g} at x={x[finite][rel.argmax()]!r}"


def _in_format(values: npt.ArrayLike, fmt: Format) -> F64:
    """Distinct values of ``fmt`` nearest to ``values`` (the harness passes format values)."""
    with np.errstate(all="ignore"):
        v = round_float64(np.asarray(values, dtype=np.float64), fmt)
    return np.unique(v[~np.isnan(v)])


# -- inputs ----------------------------------------------------------------------------


def _patterns(fmt: Format, step: int) -> F64:
    bits = np.arange(0, 1 << 16, step, dtype=np.uint32).astype(fmt.uint_dtype)
    with np.errstate(invalid="ignore"):
        return fmt.from_bits(bits).astype(np.float64)


def _specials(fmt: Format) -> F64:
    """Special values, each format's extremes, and the evaluator's regime thresholds
    (0.25, 1, 64, 80, FAR, TINY, HUGE) with their neighbours in ``fmt``."""
    base = [0.0, -0.0, math.inf, -math.inf, math.nan, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, -0.999, 1e-3,
            fmt.largest, -fmt.largest, fmt.smallest_normal, -fmt.smallest_normal,
            fmt.smallest_subnormal, -fmt.smallest_subnormal, 3 * fmt.smallest_subnormal, -3 * fmt.smallest_subnormal,
            88.72, 89.0, -87.3, -103.9, -104.0, 11.0, -11.0, 709.78, 710.0, -745.13, -745.2, 680.0, 679.0,
            1360.0, -1360.0, -38.0, -40.0, -55.0, 3e38, -3e38, 1e20, -1e20, 2.0**-24, -(2.0**-24), 2.0**-53,
            1 + 2.0**-52, 1 - 2.0**-53, -1 + 2.0**-53, 2.0**-1000, -(2.0**-1000), 2.0**-979, 2.0**-980, 5e-324, -5e-324]
    edges = [0.25, 1.0, 64.0, 80.0, exact.FAR, exact.TINY, exact.HUGE]
    x = _in_format(base + edges + [-e for e in edges], fmt)
    with np.errstate(all="ignore"):
        v = x.astype(fmt.dtype)
        near = np.concatenate([fmt.next_up(v), fmt.next_down(v)]).astype(np.float64)
    return np.concatenate([x, near[np.isfinite(near)], [math.nan]])


def _hard(name: str, per_family: int = 160) -> F64:
    """The benchmark's hard inputs: every structural family (a sample of each) and the
    closest near-midpoints of a small search."""
    rng = np.random.default_rng(zlib_seed(name))
    fams = BENCH.hard_families(name, rng, n=per_family)
    parts = [f if f.size <= per_family else rng.choice(f, per_family, replace=False) for f in fams.values()]
    parts.append(BENCH.near_midpoints(name, 64, rng, samples=1 << 15))
    return np.concatenate(parts).astype(np.float64)


def zlib_seed(name: str) -> int:
    return sum(ord(c) * 31**i for i, c in enumerate(name)) % (1 << 32)


# -- agreement -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [FLOAT16, BFLOAT16], ids=str)
@pytest.mark.parametrize("name", ORACLES)
def test_every_64th_16_bit_pattern(name: str, fmt: Format) -> None:
    _agree(name, _patterns(fmt, 64), fmt)


@pytest.mark.parametrize("name", ORACLES)
def test_random_float32_patterns(name: str) -> None:
    rng = np.random.default_rng(zlib_seed(name) + 1)
    bits = rng.integers(0, 1 << 32, 3000, dtype=np.uint64).astype(np.uint32)
    with np.errstate(invalid="ignore"):
        _agree(name, bits.view(np.float32).astype(np.float64), FLOAT32)


@pytest.mark.parametrize("fmt", ALL, ids=str)
@pytest.mark.parametrize("name", ORACLES)
def test_specials_and_hard_inputs(name: str, fmt: Format) -> None:
    _agree(name, np.concatenate([_specials(fmt), _in_format(_hard(name), fmt)]), fmt)


@pytest.mark.parametrize("beta", [2.0, -0.5, 1e-3, -300.0])
def test_softplus_with_other_betas(beta: float) -> None:
    for fmt in (FLOAT16, BFLOAT16):
        _agree("softplus", np.concatenate([_patterns(fmt, 64), _specials(fmt)]), fmt, {"beta": beta})
    _agree("softplus", np.concatenate([_specials(FLOAT32), _in_format(_hard("softplus"), FLOAT32)]), FLOAT32,
           {"beta": beta})


# -- hi + lo is y / 2**ulp_exp to 2**-90 ----------------------------------------------------------


@pytest.mark.parametrize("fmt", [FLOAT16, FLOAT32, FLOAT64], ids=str)
def test_hi_lo_against_600_bits(fmt: Format) -> None:
    """ziv's own hi + lo is only as good as its last precision; this one is checked
    against the catalogue function evaluated directly at 600 bits."""
    rng = np.random.default_rng(7)
    for name in ORACLES:
        o = get_oracle(name)
        x = _in_format(np.concatenate([rng.normal(0, 20, 60), _hard(name, 8)]), fmt)
        x = x[np.isfinite(x)]
        got = settle_fast(o, x, fmt, o.math_params(o.bind(None)))
        assert got is not None
        for xi, (_, hi, lo, e) in zip(x.tolist(), got, strict=True):
            if not math.isfinite(hi) or hi == 0 or e == exact.ULP_EXP_MAX:
                continue
            with mp.workprec(600):
                y = mp.ldexp(o.fn(mpf(xi)), -e)
                err = abs(mp.fsub(mp.fadd(hi, lo, exact=True), y, exact=True)) / abs(y)
            assert err <= mpf(2) ** -90, f"{name}({xi!r}) in {fmt}: hi + lo off by {mp.nstr(err, 3)}"


@pytest.mark.parametrize("wp", [128, 512])
def test_erfc_continued_fraction_encloses_erfc(wp: int) -> None:
    """gelu's erfc above z = 5 is a continued fraction with hand-directed rounding: its two
    ends must enclose erfc (here at 700 bits) and be narrow enough to settle."""
    a = exact._arith(exact._gmpy2(), wp)
    for z in [5.0, 5.000001, 6.25, 7.3, 9.99, 14.0, 22.6, 31.5, 45.2, 59.9]:
        lo, hi = a.erfc(a.exact(z), a.exact(z))
        with mp.workprec(700):
            truth = mp.erfc(mpf(z))
            assert mpf(lo) <= truth <= mpf(hi), z
            assert (mpf(hi) - mpf(lo)) / truth < mpf(2) ** (8 - wp), z


# -- what it declines ----------------------------------------------------------------------


def test_declines_what_it_was_not_written_for(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.array([0.5, -3.0])
    builtin = get_oracle("exp")
    assert settle_fast(builtin, x, FLOAT32, {}) is not None

    def my_exp(v: Any) -> Any:
        return mp.exp(v) + 1

    user = Oracle("exp", "elementwise", builtin.args, my_exp)
    assert settle_fast(user, x, FLOAT32, {}) is None  # a user oracle under a built-in name
    bumped = Oracle(builtin.name, builtin.kind, builtin.args, builtin.fn, builtin.params, version=builtin.version + 1)
    assert settle_fast(bumped, x, FLOAT32, {}) is None  # the formula was written for version 1
    assert settle_fast(get_oracle("softmax"), x, FLOAT32, {}) is None
    assert settle_fast(builtin, x, FLOAT32, {"beta": 2.0}) is None  # exp takes no parameters
    softplus = get_oracle("softplus")
    for beta in (0.0, math.inf, math.nan, "2"):
        assert settle_fast(softplus, x, FLOAT32, {"beta": beta}) is None
    wide = Format("wide", precision=113, emin=-16382, emax=16383, bits=128)
    assert settle_fast(builtin, x, wide, {}) is None
    monkeypatch.setattr(exact, "_GMPY2", [None])  # as if gmpy2 were not installed
    assert settle_fast(builtin, x, FLOAT32, {}) is None


def test_raises_when_a_value_does_not_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """tanh(2**-100) = 2**-100 (1 - 2**-200 / 3) is below the power of two by far less than
    128 bits resolve: with no precision to grow into, it is an OracleError, never a guess."""
    monkeypatch.setattr(exact, "LAST_PREC", exact.FIRST_PREC)
    with pytest.raises(OracleError, match="did not settle at 128 bits"):
        settle_fast(get_oracle("tanh"), [2.0**-100], FLOAT32, {})


# -- inputs that are not values of the output format ------------------------------------------


#: y = x + t with 0 < |t| < 2**-1900 |x| for these x, and the direction t points
_BESIDE = {"softplus": (1412.0, 1), "log_sigmoid": (-1412.0, -1), "silu": (1412.0, -1), "gelu": (1412.0, -1)}


@pytest.mark.parametrize("name", sorted(_BESIDE))
def test_midpoint_inputs_round_the_way_the_correction_points(name: str) -> None:
    """1412 is a bfloat16 midpoint (between 1408 and 1416); softplus(1412) = 1412 + e**-1412
    rounds up however small e**-1412 is. No working precision sees e**-1412 beside 1412, and
    ziv took the apparent tie for an exact one and rounded it to even (1408) until the
    catalogue formed these as the exact x plus a correction that keeps its side
    (``_exact_plus``: softplus and log_sigmoid far from 0, silu and gelu from x = 1). Both
    evaluators now round it the way the correction points."""
    x, direction = _BESIDE[name]
    o = get_oracle(name)
    got = settle_fast(o, [x], BFLOAT16, o.math_params(o.bind(None)))
    assert got is not None
    assert got[0][0] == x + 4.0 * direction
    assert got[0][3] == 10 - 7
    ref = evaluate(o, [np.array([x])], BFLOAT16, tier=False)
    assert ref.want[0] == got[0][0]
    assert ref.ulp_exp[0] == got[0][3]


@pytest.mark.parametrize("name", ORACLES)
def test_float32_inputs_in_bfloat16_agree(name: str) -> None:
    """The hard float32 inputs, unrounded, settled into bfloat16: the same as ziv, also
    where x itself is a bfloat16 midpoint and y lies within e**-1000 of it (the case
    above). Inputs beyond 2**40 are left out: there ziv's first evaluation at 38 bits
    gets the exponent of e**x wrong and the exact |v1 - v2| overflows memory."""
    x = _hard(name, 80)
    x = x[np.abs(x) <= 2.0**40]
    ref, got = _settled(name, x, BFLOAT16)
    want = np.array([g[0] for g in got])
    ulp = np.array([g[3] for g in got])
    bad = ~_same_bits(want, ref.want) | (ulp != ref.ulp_exp)
    for i in np.flatnonzero(bad):
        xi = float(x[i])
        raise AssertionError(f"{name}({xi!r}): ziv {ref.want[i]!r}, exact {want[i]!r}")

