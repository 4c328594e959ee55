"""Formats and correct rounding: the bottom layer every ULP number rests on.

Three independent descriptions of round-to-nearest-even are checked against each other:
``round_mpf`` (integer shifting of mpmath values), ``round_float64`` (vectorised numpy
scaling) and :func:`_round_exact` below (Python ``Fraction`` arithmetic, written from the
IEEE 754 definition). Format constants are checked against ``numpy.finfo`` and
``ml_dtypes.finfo`` in the style of ml_dtypes' ``finfo_test.py``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from mpmath import mp, mpf

from oracles import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, FORMATS, Format, UsageError, get_format
from oracles.rounding import round_float64, round_mpf, ulp_exponent

ALL = [FLOAT16, BFLOAT16, FLOAT32, FLOAT64]
NARROW = [FLOAT16, BFLOAT16, FLOAT32]
SMALL = [FLOAT16, BFLOAT16]
IDS = [f.name for f in ALL]

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- an independent model of round-to-nearest-even ---------------------------------------


def _floor_log2(a: Fraction) -> int:
    """floor(log2(a)) for a > 0, exactly."""
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    return e


def _round_exact(y: Fraction, fmt: Format) -> float:
    """IEEE 754 roundTiesToEven of an exact rational into ``fmt``, by the book."""
    if y == 0:
        return 0.0
    a = abs(y)
    q = max(_floor_log2(a), fmt.emin) - fmt.precision + 1
    m = round(a / Fraction(2) ** q)  # Fraction.__round__ rounds half to even
    value = Fraction(m) * Fraction(2) ** q
    largest = Fraction(2 ** fmt.precision - 1) * Fraction(2) ** (fmt.emax - fmt.precision + 1)
    out = math.inf if value > largest else float(value)
    return -out if y < 0 else out


def _mpf(y: Fraction) -> mpf:
    """The exact mpf of a dyadic rational (the precision is raised so nothing rounds)."""
    num, den = y.numerator, y.denominator
    assert den & (den - 1) == 0, "dyadic rationals only"
    with mp.workprec(max(64, num.bit_length() + 8)):
        return mp.ldexp(mpf(num), -(den.bit_length() - 1))


def _frac(v: float) -> Fraction:
    return Fraction(v)


def _values(fmt: Format, xs: list[float]) -> np.ndarray:
    return fmt.from_float64(np.array(xs, dtype=np.float64))


def _f64(fmt: Format, arr: np.ndarray) -> list[float]:
    # a signalling NaN pattern (bfloat16 0x7f81) raises FE_INVALID when widened; it is
    # still NaN, which the callers skip
    with np.errstate(invalid="ignore"):
        return fmt.to_float64(arr).tolist()


@st.composite
def dyadic(draw: st.DrawFn, fmt: Format) -> Fraction:
    """Exact dyadic rationals spread over (and a little beyond) ``fmt``'s range, with up to
    40 bits more than the format holds so that every rounding case occurs."""
    bits = draw(st.integers(1, fmt.precision + 40))
    man = draw(st.integers(0, (1 << bits) - 1))
    lo = fmt.emin - fmt.precision - 3 - bits
    hi = fmt.emax + 3 - bits
    exp = draw(st.integers(lo, hi))
    sign = draw(st.sampled_from([1, -1]))
    return sign * Fraction(man) * Fraction(2) ** exp


# -- format identities -------------------------------------------------------------------


def _finfo(fmt: Format) -> object:
    return ml_dtypes.finfo(fmt.dtype) if fmt is BFLOAT16 else np.finfo(fmt.dtype)


@pytest.mark.parametrize("fmt", ALL, ids=IDS)
def test_format_constants_match_finfo(fmt: Format) -> None:
    fi = _finfo(fmt)
    assert fmt.largest == float(fi.max)
    assert fmt.smallest_normal == float(fi.smallest_normal)
    assert fmt.smallest_subnormal == float(fi.smallest_subnormal)
    assert fmt.precision == fi.nmant + 1
    assert fmt.emin == fi.minexp
    assert fmt.emax == fi.maxexp - 1  # finfo.maxexp is the first power of 2 that overflows
    assert fmt.bits == fi.bits
    assert fmt.exponent_bits == fi.nexp  # bits = sign + exponent + (precision - hidden bit)
    assert fmt.dtype == np.dtype(fi.dtype)


@pytest.mark.parametrize("fmt", NARROW, ids=[f.name for f in NARROW])
def test_overflow_threshold_is_largest_plus_half_ulp(fmt: Format) -> None:
    half_ulp = math.ldexp(1.0, fmt.emax - fmt.precision)
    assert fmt.overflow_threshold == fmt.largest + half_ulp


@pytest.mark.parametrize(
    ("name", "expected"),
    [("float16", FLOAT16), ("fp16", FLOAT16), ("half", FLOAT16), ("BF16", BFLOAT16), ("bfloat16", BFLOAT16),
     ("single", FLOAT32), ("fp32", FLOAT32), (" float64 ", FLOAT64), ("double", FLOAT64)],
)
def test_get_format_names_and_aliases(name: str, expected: Format) -> None:
    assert get_format(name) is expected
    assert get_format(expected) is expected


@pytest.mark.parametrize("bad", ["float8", "int32", "", "bfloat"], ids=lambda b: repr(b))
def test_get_format_unknown_lists_choices(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        get_format(bad)
    msg = str(info.value)
    assert "\n" not in msg
    assert "pick from: bfloat16, float16, float32, float64" in msg


@pytest.mark.parametrize("fmt", SMALL, ids=[f.name for f in SMALL])
def test_all_bit_patterns(fmt: Format) -> None:
    pats = fmt.all_bit_patterns()
    assert pats.dtype == fmt.uint_dtype
    assert len(pats) == 1 << 16
    assert len(np.unique(pats)) == 1 << 16
    assert np.all(pats[1:] > pats[:-1])
    assert fmt.to_bits(fmt.from_bits(pats)).tolist() == pats.tolist()


@pytest.mark.parametrize("fmt", [FLOAT32, FLOAT64], ids=["float32", "float64"])
def test_all_bit_patterns_refuses_wide_formats(fmt: Format) -> None:
    with pytest.raises(UsageError, match=f"at most 16 bits; {fmt.name} has {fmt.bits}"):
        fmt.all_bit_patterns()


@pytest.mark.parametrize(
    ("fmt", "value", "hexbits"),
    [(FLOAT16, 1.0, "0x3c00"), (FLOAT16, -2.0, "0xc000"), (FLOAT16, 65504.0, "0x7bff"),
     (FLOAT16, 2.0**-24, "0x0001"), (BFLOAT16, 1.0, "0x3f80"), (BFLOAT16, -0.0, "0x8000"),
     (FLOAT32, 1.0, "0x3f800000"), (FLOAT64, 1.0, "0x3ff0000000000000")],
    ids=lambda v: str(v),
)
def test_hex(fmt: Format, value: float, hexbits: str) -> None:
    assert fmt.hex(value) == hexbits


# -- from_float64: representable values only ---------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "value"),
    [(FLOAT16, 0.1), (FLOAT16, 65505.0), (FLOAT16, 1e6), (FLOAT16, 2.0**-26), (FLOAT16, 1 + 2.0**-11),
     (BFLOAT16, 1 + 2.0**-8), (BFLOAT16, 1e-45), (FLOAT32, 0.1), (FLOAT32, 1e39), (FLOAT32, 2.0**-150)],
    ids=lambda v: str(v),
)
def test_from_float64_rejects_unrepresentable(fmt: Format, value: float) -> None:
    with pytest.raises(UsageError) as info:
        fmt.from_float64(np.array([1.0, value]), what="logits")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"logits value {value!r} (element 1) is not exactly representable in {fmt.name}")
    nearest = _round_exact(Fraction(value), fmt)
    assert f"the nearest {fmt.name} is {nearest!r}" in msg


@pytest.mark.parametrize("fmt", ALL, ids=IDS)
def test_from_float64_accepts_representable_and_specials(fmt: Format) -> None:
    xs = [0.0, -0.0, 1.0, -1.0, fmt.largest, -fmt.largest, fmt.smallest_subnormal, fmt.smallest_normal,
          math.inf, -math.inf, math.nan]
    arr = fmt.from_float64(np.array(xs))
    assert arr.dtype == fmt.dtype
    back = fmt.to_float64(arr)
    np.testing.assert_array_equal(back, np.array(xs))
    assert np.signbit(back[1])


# -- next_up / next_down ------------------------------------------------------------------


def _cases(fmt: Format) -> list[tuple[float, float, float]]:
    """(x, next_up(x), next_down(x)) worked out by hand from the format parameters."""
    p = fmt.precision
    s, n, big = fmt.smallest_subnormal, fmt.smallest_normal, fmt.largest
    inf = math.inf
    return [
        (1.0, 1 + 2.0 ** (1 - p), 1 - 2.0**-p),  # binade edge: the gap halves below 1
        (-1.0, -1 + 2.0**-p, -1 - 2.0 ** (1 - p)),
        (2.0, 2 + 2.0 ** (2 - p), 2 - 2.0 ** (1 - p)),
        (0.0, s, -s),
        (-0.0, s, -s),
        (s, 2 * s, 0.0),
        (-s, -0.0, -2 * s),
        (n, n + s, n - s),  # smallest normal: the subnormal spacing continues below
        (n - s, n, n - 2 * s),  # largest subnormal
        (big, inf, big - 2.0 ** (fmt.emax - p + 1)),
        (-big, -big + 2.0 ** (fmt.emax - p + 1), -inf),
        (inf, inf, big),
        (-inf, -big, -inf),
    ]


@pytest.mark.parametrize("fmt", ALL, ids=IDS)
def test_next_up_down_by_hand(fmt: Format) -> None:
    cases = _cases(fmt)
    xs = _values(fmt, [c[0] for c in cases])
    ups = _f64(fmt, fmt.next_up(xs))
    downs = _f64(fmt, fmt.next_down(xs))
    for (x, up, down), got_up, got_down in zip(cases, ups, downs, strict=True):
        assert got_up == up, f"{fmt}.next_up({x!r}) = {got_up!r}, expected {up!r}"
        assert got_down == down, f"{fmt}.next_down({x!r}) = {got_down!r}, expected {down!r}"
    assert math.copysign(1.0, _f64(fmt, fmt.next_up(_values(fmt, [-fmt.smallest_subnormal])))[0]) == -1.0


@pytest.mark.parametrize("fmt", ALL, ids=IDS)
def test_next_up_down_keep_nan(fmt: Format) -> None:
    x = _values(fmt, [math.nan])
    assert math.isnan(_f64(fmt, fmt.next_up(x))[0])
    assert math.isnan(_f64(fmt, fmt.next_down(x))[0])


@pytest.mark.parametrize("fmt", [FLOAT16, FLOAT32, FLOAT64], ids=["float16", "float32", "float64"])
def test_next_up_down_match_nextafter(fmt: Format) -> None:
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 1 << fmt.bits, 20000, dtype=np.uint64).astype(fmt.uint_dtype)
    x = fmt.from_bits(bits)
    x = x[np.isfinite(x)]
    inf = np.array(np.inf, dtype=fmt.dtype)
    np.testing.assert_array_equal(fmt.next_up(x), np.nextafter(x, inf))
    np.testing.assert_array_equal(fmt.next_down(x), np.nextafter(x, -inf))


@pytest.mark.parametrize("fmt", SMALL, ids=[f.name for f in SMALL])
def test_next_up_walks_every_value_in_order(fmt: Format) -> None:
    """Exhaustively: next_up of each value is the next one in sorted order, and next_down
    undoes it (the ordered set of all finite values and +-inf, with +-0 merged)."""
    with np.errstate(invalid="ignore"):
        vals = fmt.to_float64(fmt.from_bits(fmt.all_bit_patterns()))
    ordered = np.unique(vals[~np.isnan(vals)])  # -0 and +0 collapse to one value
    arr = ordered.astype(fmt.dtype)
    up = fmt.to_float64(fmt.next_up(arr[:-1]))
    np.testing.assert_array_equal(up, ordered[1:])
    down = fmt.to_float64(fmt.next_down(arr[1:]))
    np.testing.assert_array_equal(down, ordered[:-1])


# -- the rounding functions ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ALL, ids=IDS)
@PROPERTY
@given(data=st.data())
def test_round_mpf_is_nearest_neighbour(fmt: Format, data: st.DataObject) -> None:
    """R(y) lies next to y (next_down(R) <= y <= next_up(R)), no format value is nearer,
    an exact tie goes to the even bit pattern, and all three rounding models agree."""
    y = data.draw(dyadic(fmt))
    r = round_mpf(_mpf(y), fmt)
    assert r == _round_exact(y, fmt)
    if math.isinf(r):
        assert abs(y) >= Fraction(2 ** (fmt.precision + 1) - 1) * Fraction(2) ** (fmt.emax - fmt.precision)
        return
    rv = _values(fmt, [r])
    up = _f64(fmt, fmt.next_up(rv))[0]
    down = _f64(fmt, fmt.next_down(rv))[0]
    ry = _frac(r)
    if y >= ry:
        other = up
        assert math.isinf(up) or y <= _frac(up)
    else:
        other = down
        assert math.isinf(down) or y >= _frac(down)
    if math.isinf(other):  # beyond largest: the gap to "2**(emax+1)" is a normal gap
        other_f = Fraction(2) ** (fmt.emax + 1) * (1 if other > 0 else -1)
    else:
        other_f = _frac(other)
    assert abs(y - ry) <= abs(y - other_f)
    if abs(y - ry) == abs(y - other_f) and y != ry:
        assert int(fmt.to_bits(rv)[0]) % 2 == 0, f"tie {y} went to odd {r!r}"


@pytest.mark.parametrize("fmt", ALL, ids=IDS)
@PROPERTY
@given(data=st.data())
def test_exact_midpoints_round_to_even(fmt: Format, data: st.DataObject) -> None:
    pattern = data.draw(st.integers(0, (1 << fmt.bits) - 1))
    a = fmt.from_bits(np.array([pattern], dtype=np.uint64).astype(fmt.uint_dtype))
    with np.errstate(invalid="ignore"):  # NaN patterns are drawn too, and skipped below
        a64 = _f64(fmt, a)[0]
        b64 = _f64(fmt, fmt.next_up(a))[0]
    assume(math.isfinite(a64) and math.isfinite(b64))
    mid = (_frac(a64) + _frac(b64)) / 2
    even = a64 if int(fmt.to_bits(a)[0]) % 2 == 0 else b64
    assert round_mpf(_mpf(mid), fmt) == even
    nudge = Fraction(1, 2**1200)  # far below any gap, yet decisive
    assert round_mpf(_mpf(mid - nudge), fmt) == a64
    assert round_mpf(_mpf(mid + nudge), fmt) == b64
    if fmt is not FLOAT64:  # the midpoint is a float64 when the format is narrower
        assert round_float64(np.array([float(mid)]), fmt)[0] == even


@pytest.mark.parametrize("fmt", ALL, ids=IDS)
def test_overflow_threshold_is_exact(fmt: Format) -> None:
    p, emax = fmt.precision, fmt.emax
    threshold = Fraction(2 ** (p + 1) - 1) * Fraction(2) ** (emax - p)  # largest + half ulp
    tiny = Fraction(1, 2**1200)
    for sign in (1, -1):
        assert round_mpf(_mpf(sign * threshold), fmt) == sign * math.inf
        assert round_mpf(_mpf(sign * (threshold - tiny)), fmt) == sign * fmt.largest
        assert round_mpf(_mpf(sign * (threshold + tiny)), fmt) == sign * math.inf
        assert round_mpf(_mpf(sign * Fraction(2) ** (emax + 1)), fmt) == sign * math.inf
    if fmt is not FLOAT64:
        t = fmt.overflow_threshold
        below = float(np.nextafter(t, 0.0))
        got = round_float64(np.array([t, below, -t, -below, 2 * t]), fmt)
        np.testing.assert_array_equal(got, [math.inf, fmt.largest, -math.inf, -fmt.largest, math.inf])


@pytest.mark.parametrize("fmt", ALL, ids=IDS)
def test_smallest_subnormal_threshold_is_exact(fmt: Format) -> None:
    s = Fraction(fmt.smallest_subnormal)
    tiny = Fraction(1, 2**1500)
    cases = [
        (s / 2, 0.0),  # a tie between 0 and s: 0 is even
        (s / 2 + tiny, fmt.smallest_subnormal),
        (s / 2 - tiny, 0.0),
        (3 * s / 2, 2 * fmt.smallest_subnormal),  # a tie between s (odd) and 2s (even)
        (5 * s / 2, 2 * fmt.smallest_subnormal),  # between 2s (even) and 3s (odd)
        (s / 4, 0.0),
    ]
    for y, want in cases:
        for sign in (1, -1):
            got = round_mpf(_mpf(sign * y), fmt)
            assert got == sign * want, f"R({float(sign * y)!r}) = {got!r}, expected {sign * want!r}"
            if sign < 0 and want == 0:
                assert math.copysign(1.0, got) == -1.0, "a negative value rounds to -0"
    if fmt is not FLOAT64:
        half = fmt.smallest_subnormal / 2
        xs = np.array([half, np.nextafter(half, 1.0), np.nextafter(half, 0.0), -half])
        got = round_float64(xs, fmt)
        np.testing.assert_array_equal(got, [0.0, fmt.smallest_subnormal, 0.0, -0.0])
        assert np.signbit(got[3])


@pytest.mark.parametrize("fmt", ALL, ids=IDS)
@PROPERTY
@given(x=st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True))
@example(x=1 + 2.0**-8 + 2.0**-40)
@example(x=65519.99999999999)
@example(x=2.0**-25)
@example(x=-(2.0**-25) * 1.0000001)
def test_round_mpf_and_round_float64_agree(fmt: Format, x: float) -> None:
    via_array = float(round_float64(np.array([x]), fmt)[0])
    via_mpf = round_mpf(mpf(x), fmt)
    if math.isnan(x):
        assert math.isnan(via_array) and math.isnan(via_mpf)
        return
    assert via_array == via_mpf
    assert via_array == _round_exact(Fraction(x), fmt) if math.isfinite(x) else via_array == x


def test_float32_fast_path_rounds_midpoints_exactly() -> None:
    """round_float64 into float32 is the hardware conversion: held to exact rational
    rounding where it is hardest, on midpoints between float32 neighbours (normal,
    subnormal, at the overflow threshold) and one float64 step either side of them."""
    rng = np.random.default_rng(11)
    a = np.concatenate([
        rng.integers(0, 0x7F7FFFFF, 3000, dtype=np.uint32).view(np.float32),
        np.arange(0, 200, dtype=np.uint32).view(np.float32),  # subnormals from 0
        np.array([np.finfo(np.float32).max, np.finfo(np.float32).tiny], dtype=np.float32),
    ]).astype(np.float64)
    with np.errstate(over="ignore"):
        up = np.nextafter(a.astype(np.float32), np.float32(np.inf)).astype(np.float64)
    up[~np.isfinite(up)] = 2.0**128  # past the largest: the overflow threshold is the midpoint
    mid = (a + up) / 2  # exact: 25 significant bits at most
    x = np.concatenate([mid, np.nextafter(mid, np.inf), np.nextafter(mid, -np.inf)])
    x = np.concatenate([x, -x])
    got = round_float64(x, FLOAT32)
    want = [_round_exact(Fraction(float(v)), FLOAT32) for v in x]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fmt", [FLOAT16, FLOAT32], ids=["float16", "float32"])
def test_round_float64_matches_numpy_casts(fmt: Format) -> None:
    """numpy's float64 -> float16/float32 casts round once, correctly: a bulk oracle."""
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 1 << 64, 200000, dtype=np.uint64)
    x = bits.view(np.float64)
    x = np.concatenate([x, rng.standard_normal(200000) * np.exp2(rng.integers(-160, 140, 200000))])
    with np.errstate(over="ignore", invalid="ignore"):
        want = x.astype(fmt.dtype).astype(np.float64)
    np.testing.assert_array_equal(round_float64(x, fmt), want)


def test_round_float64_is_not_double_rounding_for_bfloat16() -> None:
    """1 + 2**-8 + 2**-40 lies just above the bfloat16 midpoint 1 + 2**-8. Rounding to
    float32 first lands exactly on that midpoint, which then ties to even (1.0); rounding
    once goes up to 1 + 2**-7."""
    x = 1 + 2.0**-8 + 2.0**-40
    direct = _round_exact(Fraction(x), BFLOAT16)
    assert direct == 1 + 2.0**-7
    twice = float(np.array([x]).astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)[0])
    assert twice == 1.0  # the premise: the two-step path differs
    assert float(round_float64(np.array([x]), BFLOAT16)[0]) == direct
    assert round_mpf(mpf(x), BFLOAT16) == direct
    # ml_dtypes' own float64 -> bfloat16 cast is the two-step path (0.6 at least); we only
    # record that here, since fixing it upstream would be welcome rather than a failure.
    ml = float(np.array([x]).astype(ml_dtypes.bfloat16).astype(np.float64)[0])
    assert ml in (twice, direct)


@PROPERTY
@given(x=st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_round_float64_matches_ml_dtypes_from_float32(x: float) -> None:
    """float32 -> bfloat16 is a single rounding in ml_dtypes, so it is a bulk oracle for
    float64 inputs that are float32 values."""
    with np.errstate(over="ignore"):
        want = float(np.array([x], dtype=np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)[0])
    assert float(round_float64(np.array([x]), BFLOAT16)[0]) == want


@pytest.mark.parametrize("fmt", ALL, ids=IDS)
def test_round_float64_specials(fmt: Format) -> None:
    got = round_float64(np.array([math.nan, math.inf, -math.inf, 0.0, -0.0]), fmt)
    assert math.isnan(got[0])
    assert got[1:].tolist() == [math.inf, -math.inf, 0.0, -0.0]
    assert np.signbit(got[4])
    assert math.isnan(round_mpf(mpf("nan"), fmt))
    assert round_mpf(mpf("inf"), fmt) == math.inf
    assert round_mpf(mpf("-inf"), fmt) == -math.inf


@pytest.mark.parametrize(
    ("fmt", "y", "exp"),
    [(FLOAT16, 1.0, -10), (FLOAT16, 1 - 2.0**-20, -11), (FLOAT16, 65504.0, 5), (FLOAT16, 70000.0, 6),
     (FLOAT16, 3 * 2.0**-24, -24), (FLOAT16, 2.0**-14, -24), (FLOAT16, 2.0**-15, -24), (FLOAT16, 0.0, -24),
     (BFLOAT16, 1.0, -7), (BFLOAT16, 2.0**-130, -133), (FLOAT32, 1.0, -23), (FLOAT32, 0.0, -149),
     (FLOAT64, 1.0, -52), (FLOAT64, 5e-324, -1074), (FLOAT64, 0.0, -1074), (FLOAT64, -2.0**1023, 971)],
    ids=lambda v: str(v),
)
def test_ulp_exponent(fmt: Format, y: float, exp: int) -> None:
    assert ulp_exponent(y, fmt) == exp
    assert ulp_exponent(mpf(y), fmt) == exp


def test_formats_registry_is_complete() -> None:
    assert set(FORMATS) == {"float16", "bfloat16", "float32", "float64"}
    for name, fmt in FORMATS.items():
        assert fmt.name == name
        assert str(fmt) == name
