"""Every built-in oracle against the independent MPFR reference (``reference_mpfr.py``).

``oracles.evaluate(...).want`` (the float64 fast tier where it decides, mpmath otherwise)
must equal the MPFR interval reference bit for bit, NaN equal to NaN; signs of zero are
not compared. Three kinds of input:

(a) float16 and bfloat16, elementwise: every bit pattern (``slow``); in CI every 16th
    pattern, all special values with their neighbours, and every pattern between two
    sampled ones whose outputs differ in kind (overflow, underflow, subnormal, saturation
    to +-1 or to x itself), which puts each threshold of each oracle under test exactly;
(b) float32 and float64, elementwise: specials, thresholds found by bisection in bit space
    with a neighbourhood on each side, random bit patterns and random moderate values;
(c) row-wise, row-reducing and loss oracles in every format: rows built to be hard
    (equal entries, masked -inf, a dominant entry, logsumexp cancelling to ~0, +inf and
    NaN entries, extreme magnitudes, widths 1..100) plus reductions with exact ties.

CI sizes keep the whole file to about two minutes; ``--run-slow`` runs the exhaustive
sweeps and at least 100,000 points per remaining oracle and format.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

try:
    import reference_mpfr as mref  # tests/helpers on sys.path (pyproject's pythonpath)
except ModuleNotFoundError:  # pragma: no cover - tests/ made a package
    from tests import reference_mpfr as mref

from oracles import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, Format, all_oracles, evaluate, get_oracle

ALL = [FLOAT16, BFLOAT16, FLOAT32, FLOAT64]
SMALL = [FLOAT16, BFLOAT16]
NAN, INF = math.nan, math.inf
F64 = npt.NDArray[np.float64]

ELEMENTWISE: list[tuple[str, dict[str, Any]]] = [
    ("exp", {}),
    ("log", {}),
    ("log1p", {}),
    ("expm1", {}),
    ("tanh", {}),
    ("sigmoid", {}),
    ("softplus", {"beta": 1.0}),
    ("softplus", {"beta": 2.0}),
    ("log_sigmoid", {}),
    ("silu", {}),
    ("gelu", {}),
]
#: float64 is mpmath-only (no fast tier) and costs ~1 ms a point: a few oracles, chosen for
#: their hazards (huge arguments, subnormal results, near-ties x/2 + x**2/4)
FLOAT64_ELEMENTWISE = [c for c in ELEMENTWISE if c[0] in ("exp", "log1p", "expm1", "sigmoid", "silu", "gelu")]
ROWS = ["softmax", "log_softmax", "logsumexp", "cross_entropy", "nll_loss"]
LOSSES = ["binary_cross_entropy", "binary_cross_entropy_with_logits"]
REDUCIBLE = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss"]

SLOW_POINTS = 100_000


def case_id(name: str, params: dict[str, Any]) -> str:
    return name + ("" if not params else "[" + ",".join(f"{k}={v:g}" for k, v in params.items()) + "]")


def ids(cases: Iterable[tuple[str, dict[str, Any]]]) -> list[str]:
    return [case_id(n, p) for n, p in cases]


# -- comparing ---------------------------------------------------------------------------


def agree(
    label: str,
    fmt: Format,
    oracle_want: npt.ArrayLike,
    mpfr_want: npt.ArrayLike,
    where: Callable[[int], str],
) -> int:
    """Fail with the first disagreements (input, both values, their bit patterns) unless
    the two arrays are equal value for value; returns how many values were compared."""
    __tracebackhide__ = True
    a = np.asarray(oracle_want, dtype=np.float64).ravel()
    b = np.asarray(mpfr_want, dtype=np.float64).ravel()
    assert a.shape == b.shape, f"{label}: {a.shape} oracle values, {b.shape} MPFR values"
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    if not same.all():
        bad = np.flatnonzero(~same)
        lines = [f"{label}: {bad.size} of {a.size} values differ between the oracle and MPFR"]
        for i in bad[:8]:
            lines.append(
                f"  {where(int(i))}: oracle {a[i]!r} ({_hex(fmt, a[i])}), mpfr {b[i]!r} ({_hex(fmt, b[i])})"
            )
        pytest.fail("\n".join(lines), pytrace=False)
    return int(a.size)


def _hex(fmt: Format, v: float) -> str:
    try:
        return fmt.hex(float(v))
    except ValueError:
        return "?"


def _cast(fmt: Format, values: npt.ArrayLike) -> F64:
    """Float64 carriers of format values (inputs only need to *be* format values, so the
    cast's own rounding does not matter)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(values, dtype=np.float64).astype(fmt.dtype).astype(np.float64)


def _patterns_to_values(fmt: Format, pats: Iterable[int]) -> F64:
    arr = np.array(sorted(set(int(p) for p in pats)), dtype=np.uint64).astype(fmt.uint_dtype)
    with np.errstate(invalid="ignore"):  # signalling NaN patterns
        return fmt.from_bits(arr).astype(np.float64)


def _bits_values(fmt: Format, pats: npt.NDArray[np.uint64]) -> F64:
    """The values of bit patterns, in order, duplicates kept."""
    with np.errstate(invalid="ignore"):
        return fmt.from_bits(pats.astype(fmt.uint_dtype)).astype(np.float64)


def _pattern(fmt: Format, v: float) -> int:
    return int(fmt.to_bits(np.array([v]).astype(fmt.dtype))[0])


# -- output kinds: where thresholds are ---------------------------------------------------


def kind(fmt: Format, x: F64, y: F64) -> npt.NDArray[np.int64]:
    """A code for what an output is: NaN, inf, zero, smallest subnormal, subnormal, largest,
    +-1, equal to the input, its sign. Where the code changes between neighbouring inputs
    lies a threshold worth testing pattern by pattern."""
    ay = np.abs(y)
    with np.errstate(invalid="ignore"):
        code = (
            np.isnan(y) * 1
            | np.isinf(y) * 2
            | (y == 0) * 4
            | (ay == fmt.smallest_subnormal) * 8
            | ((ay > 0) & (ay < fmt.smallest_normal)) * 16
            | (ay == fmt.largest) * 32
            | (ay == 1) * 64
            | (y == x) * 128
            | (y < 0) * 256
        )
    return code.astype(np.int64)


def special_patterns(fmt: Format, k: int) -> set[int]:
    """Bit patterns of +-0, +-inf, NaNs, the edges of the subnormal and normal ranges,
    +-1, +-2, +-0.5 and their k neighbours on each side (staying within one sign)."""
    sign = 1 << (fmt.bits - 1)
    inf = _pattern(fmt, INF)
    anchors = [0, 1, _pattern(fmt, fmt.smallest_normal) - 1, _pattern(fmt, fmt.smallest_normal),
               _pattern(fmt, fmt.largest), inf, _pattern(fmt, 1.0), _pattern(fmt, 2.0), _pattern(fmt, 0.5)]
    out: set[int] = {inf + 1, inf + (1 << (fmt.precision - 2)), sign | (inf + 1)}  # NaNs: signalling, quiet
    for a in anchors:
        for d in range(-k, k + 1):
            m = a + d
            if 0 <= m <= inf:
                out.add(m)
                out.add(m | sign)
    return out


def mpfr_values(name: str, params: dict[str, Any], fmt: Format, x: F64) -> F64:
    return mref.reference(name, [x], fmt.name, params)


# -- (a) float16 / bfloat16, elementwise ----------------------------------------------


def ci_subset_16(name: str, params: dict[str, Any], fmt: Format) -> tuple[F64, F64]:
    """Every 16th pattern, the specials, and every pattern between two sampled ones whose
    outputs differ in kind. Returns the inputs and their MPFR values."""
    grid = np.arange(0, 1 << 16, 16, dtype=np.uint64).astype(np.uint16)
    with np.errstate(invalid="ignore"):
        gx = fmt.from_bits(grid).astype(np.float64)
    gy = mpfr_values(name, params, fmt, gx)
    codes = kind(fmt, gx, gy)
    change = np.flatnonzero(codes[1:] != codes[:-1])
    extra: set[int] = set(special_patterns(fmt, 8))
    for i in change:
        extra.update(range(int(grid[i]) + 1, int(grid[i + 1])))
    extra -= set(grid.tolist())
    ex = _patterns_to_values(fmt, extra)
    ey = mpfr_values(name, params, fmt, ex)
    return np.concatenate([gx, ex]), np.concatenate([gy, ey])


def _where_x(fmt: Format, x: F64) -> Callable[[int], str]:
    return lambda i: f"x={_hex(fmt, x[i])} ({x[i]!r})"


@pytest.mark.parametrize("fmt", SMALL, ids=[f.name for f in SMALL])
@pytest.mark.parametrize(("name", "params"), ELEMENTWISE, ids=ids(ELEMENTWISE))
def test_elementwise_16bit_subset(name: str, params: dict[str, Any], fmt: Format) -> None:
    x, want = ci_subset_16(name, params, fmt)
    got = evaluate(get_oracle(name), [x], fmt, params).want
    n = agree(f"{case_id(name, params)}[{fmt}]", fmt, got, want, _where_x(fmt, x))
    assert n > 4096


@pytest.mark.slow
@pytest.mark.parametrize("fmt", SMALL, ids=[f.name for f in SMALL])
@pytest.mark.parametrize(("name", "params"), ELEMENTWISE, ids=ids(ELEMENTWISE))
def test_elementwise_16bit_exhaustive(name: str, params: dict[str, Any], fmt: Format,
                                      record_property: Callable[[str, object], None]) -> None:
    x = _patterns_to_values(fmt, range(1 << 16))
    want = mpfr_values(name, params, fmt, x)
    got = evaluate(get_oracle(name), [x], fmt, params).want
    n = agree(f"{case_id(name, params)}[{fmt}]", fmt, got, want, _where_x(fmt, x))
    assert n == 1 << 16
    record_property("points", n)


# -- (b) float32 / float64, elementwise: thresholds by bisection ---------------------------


def thresholds(name: str, params: dict[str, Any], fmt: Format, per_sign: int) -> list[int]:
    """Bit patterns where the output changes kind, found by sampling ``per_sign`` patterns
    per sign and bisecting every change down to adjacent patterns."""
    sign = 1 << (fmt.bits - 1)
    inf = _pattern(fmt, INF)
    found: list[int] = []

    def code_of(pats: list[int]) -> npt.NDArray[np.int64]:
        x = np.array(pats, dtype=np.uint64).astype(fmt.uint_dtype)
        xv = fmt.from_bits(x).astype(np.float64)
        return kind(fmt, xv, mpfr_values(name, params, fmt, xv))

    for s in (0, sign):
        grid = sorted({s | int(v) for v in np.linspace(0, inf, per_sign, dtype=np.float64).astype(np.uint64)})
        codes = code_of(grid)
        for i in np.flatnonzero(codes[1:] != codes[:-1]):
            lo, c_lo = grid[i], codes[i]
            # several thresholds can share one interval (normal -> subnormal -> smallest
            # subnormal -> 0): bisect for the first change, then go on from there
            while c_lo != codes[i + 1]:
                hi = grid[i + 1]
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if code_of([mid])[0] == c_lo:
                        lo = mid
                    else:
                        hi = mid
                found.append(hi)
                lo, c_lo = hi, code_of([hi])[0]
    return found


def wide_inputs(name: str, params: dict[str, Any], fmt: Format, *, per_sign: int, k: int, n_random: int,
                seed: int, at_least: int = 0) -> F64:
    rng = np.random.default_rng(seed)
    pats: set[int] = set(special_patterns(fmt, 16))
    inf = _pattern(fmt, INF)
    sign = 1 << (fmt.bits - 1)
    for t in thresholds(name, params, fmt, per_sign):
        base = t & (sign - 1)
        for d in range(-k, k + 1):
            if 0 <= base + d <= inf:
                pats.add((t & sign) | (base + d))
    pats.update(int(p) for p in rng.integers(0, 1 << fmt.bits, n_random // 2, dtype=np.uint64))
    moderate = rng.standard_normal(n_random // 2) * 10.0 ** rng.uniform(-4, 2.5, n_random // 2)
    x = np.concatenate([_patterns_to_values(fmt, pats), _cast(fmt, moderate)])
    while x.size < at_least:
        more = rng.integers(0, 1 << fmt.bits, at_least - x.size + 1000, dtype=np.uint64)
        x = np.concatenate([x, _patterns_to_values(fmt, more.tolist())])
    return x


def _first_above(fmt: Format, t: float) -> float:
    """The smallest value of ``fmt`` at or above the real number t (t a float64)."""
    v = _cast(fmt, [t])
    if v[0] < t:
        v = fmt.to_float64(fmt.next_up(v.astype(fmt.dtype)))
    return float(v[0])


@pytest.mark.parametrize("fmt", [FLOAT16, FLOAT32], ids=["float16", "float32"])
def test_threshold_search_finds_exp_thresholds(fmt: Format) -> None:
    """The input sets reach each threshold exactly: for exp, the first x that overflows
    (x >= log(largest + half ulp)), the first x whose result is not 0 (x > log(half the
    smallest subnormal)) and the first with a normal result (x >= log(smallest normal))."""
    overflow = _first_above(fmt, math.log(fmt.overflow_threshold))
    nonzero = _first_above(fmt, math.log(fmt.smallest_subnormal / 2))
    normal = _first_above(fmt, math.log(fmt.smallest_normal))
    if fmt is FLOAT16:
        x, _ = ci_subset_16("exp", {}, fmt)
    else:
        x = wide_inputs("exp", {}, fmt, per_sign=128, k=1, n_random=0, seed=0)
    for t in (overflow, nonzero, normal):
        before = float(fmt.to_float64(fmt.next_down(np.array([t]).astype(fmt.dtype)))[0])
        assert t in x and before in x, (t, before)


WIDE_CASES = [pytest.param(FLOAT32, n, p, id=f"float32-{case_id(n, p)}") for n, p in ELEMENTWISE] + [
    pytest.param(FLOAT64, n, p, id=f"float64-{case_id(n, p)}") for n, p in FLOAT64_ELEMENTWISE
]


@pytest.mark.parametrize(("fmt", "name", "params"), WIDE_CASES)
def test_elementwise_wide_hard_inputs(fmt: Format, name: str, params: dict[str, Any]) -> None:
    n_random = 1500 if fmt is FLOAT32 else 500
    x = wide_inputs(name, params, fmt, per_sign=128, k=12, n_random=n_random, seed=1)
    want = mpfr_values(name, params, fmt, x)
    got = evaluate(get_oracle(name), [x], fmt, params).want
    agree(f"{case_id(name, params)}[{fmt}]", fmt, got, want, _where_x(fmt, x))


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "name", "params"), WIDE_CASES)
def test_elementwise_wide_sweep(fmt: Format, name: str, params: dict[str, Any],
                                record_property: Callable[[str, object], None]) -> None:
    x = wide_inputs(name, params, fmt, per_sign=4096, k=1500, n_random=60_000, seed=2, at_least=SLOW_POINTS)
    want = mpfr_values(name, params, fmt, x)
    got = evaluate(get_oracle(name), [x], fmt, params).want
    n = agree(f"{case_id(name, params)}[{fmt}]", fmt, got, want, _where_x(fmt, x))
    assert n >= SLOW_POINTS
    record_property("points", n)


# -- (c) rows -----------------------------------------------------------------------------


def _width(rng: np.random.Generator) -> int:
    r = rng.random()
    if r < 0.45:
        return int(rng.integers(1, 5))
    if r < 0.8:
        return int(rng.integers(5, 17))
    return int(rng.integers(17, 101))


def _near(fmt: Format, v: float, k: int, rng: np.random.Generator) -> float:
    """A finite format value within k patterns of the one nearest v (same sign)."""
    p = _pattern(fmt, float(_cast(fmt, [v])[0]))
    sign = p & (1 << (fmt.bits - 1))
    mag = min(max((p ^ sign) + int(rng.integers(-k, k + 1)), 0), _pattern(fmt, INF) - 1)
    return float(_bits_values(fmt, np.array([sign | mag], dtype=np.uint64))[0])


def make_row(fmt: Format, rng: np.random.Generator) -> list[float]:
    """One row from a family of hard cases (see the module docstring)."""
    w = _width(rng)
    big = fmt.largest
    family = int(rng.integers(0, 9))
    if family == 0:  # plain rows at many scales
        scale = 10.0 ** rng.uniform(-3, min(math.log10(big) - 1, 30))
        row = np.clip(rng.standard_normal(w) * scale, -big, big)
    elif family == 1:  # equal entries: softmax exactly 1/w
        a = float(np.clip(rng.standard_normal() * 10.0 ** rng.uniform(-2, 4), -big, big))
        row = np.full(w, a)
    elif family == 2:  # masked entries, sometimes all of them
        row = rng.standard_normal(w) * 10.0 ** rng.uniform(-1, 2)
        row[rng.random(w) < (1.0 if rng.random() < 0.1 else 0.35)] = -INF
    elif family == 3:  # one special entry
        row = rng.standard_normal(w) * 10.0 ** rng.uniform(-1, 2)
        row[int(rng.integers(w))] = rng.choice([INF, NAN, -INF, big, -big, fmt.smallest_subnormal, 0.0])
    elif family == 4:  # a dominant entry: the others sit near where exp(-d) leaves the format
        top = float(rng.standard_normal() * 10.0 ** rng.uniform(-1, 3))
        edges = [(fmt.precision + 1) * math.log(2), -math.log(fmt.smallest_subnormal), -math.log(fmt.smallest_normal)]
        d = np.array([rng.choice(edges) * rng.uniform(0.8, 1.2) for _ in range(w)])
        d[rng.random(w) < 0.3] = 10.0 ** rng.uniform(0, 5)
        row = np.concatenate([[top], top - d[1:]]) if w > 1 else np.array([top])
        rng.shuffle(row)
    elif family == 5:  # logsumexp cancelling to ~0: [x]*w with x near -log(w)
        ww = max(w, 2) if rng.random() < 0.8 else w
        row = np.full(ww, _near(fmt, -math.log(ww), 6, rng))
    elif family == 6:  # two values near -log 2 and a tail: logsumexp of [x, y] ~ 0
        x = _near(fmt, -math.log(2), 6, rng)
        row = np.concatenate([[x, _near(fmt, x, 3, rng)], rng.standard_normal(max(0, w - 2)) * 3 - 40])
    elif family == 7:  # extreme magnitudes
        pool = [big, -big, fmt.smallest_normal, -fmt.smallest_normal, fmt.smallest_subnormal,
                -fmt.smallest_subnormal, 0.0, -0.0, 1.0, -1.0]
        row = np.array([rng.choice(pool) for _ in range(w)])
    else:  # all-equal but one, one ulp apart: ratios 1 +- tiny
        a = float(rng.standard_normal() * 10)
        row = np.full(w, a)
        row[int(rng.integers(w))] = _near(fmt, a, 2, rng)
    return _cast(fmt, row).tolist()


def row_batches(fmt: Format, n_rows: int, seed: int) -> list[tuple[F64, npt.NDArray[np.int64]]]:
    """Rows grouped by width (evaluate takes one 2-D array per width), each with a target
    index: mostly in range, sometimes on a masked entry, sometimes out of range."""
    rng = np.random.default_rng(seed)
    by_width: dict[int, list[tuple[list[float], int]]] = {}
    for _ in range(n_rows):
        row = make_row(fmt, rng)
        w = len(row)
        r = rng.random()
        if r < 0.03:
            t = int(rng.choice([-1, w]))
        elif r < 0.15 and -INF in row:
            t = row.index(-INF)
        else:
            t = int(rng.integers(w))
        by_width.setdefault(w, []).append((row, t))
    return [(np.array([r for r, _ in items]), np.array([t for _, t in items], dtype=np.int64))
            for _w, items in sorted(by_width.items())]


def _where_row(x: F64, t: npt.NDArray[np.int64], per_row: int) -> Callable[[int], str]:
    def where(i: int) -> str:
        r = i // per_row
        col = f" col {i % per_row}" if per_row > 1 else ""
        return f"row {r}{col} (target {int(t[r])}): {x[r].tolist()}"
    return where


def check_rows(name: str, fmt: Format, batches: list[tuple[F64, npt.NDArray[np.int64]]]) -> int:
    __tracebackhide__ = True
    oracle = get_oracle(name)
    n = 0
    for x, t in batches:
        args = [x] if len(oracle.args) == 1 else [x, t]
        got = evaluate(oracle, args, fmt).want
        want = mref.reference(name, args, fmt.name)
        per_row = x.shape[1] if oracle.kind == "rowwise" else 1
        n += agree(f"{name}[{fmt}] width {x.shape[1]}", fmt, got, want, _where_row(x, t, per_row))
    return n


ROW_CASES = [pytest.param(name, fmt, id=f"{name}-{fmt}") for name in ROWS for fmt in ALL]


@pytest.mark.parametrize(("name", "fmt"), ROW_CASES)
def test_rows_hard_inputs(name: str, fmt: Format) -> None:
    n_rows = 400 if get_oracle(name).kind == "rowwise" else 1200
    assert check_rows(name, fmt, row_batches(fmt, n_rows, seed=3)) > 1000


@pytest.mark.slow
@pytest.mark.parametrize(("name", "fmt"), ROW_CASES)
def test_rows_sweep(name: str, fmt: Format, record_property: Callable[[str, object], None]) -> None:
    rowwise = get_oracle(name).kind == "rowwise"
    n, seed = 0, 100
    while n < SLOW_POINTS:  # points: output elements (rowwise) or rows (row_reduce)
        n += check_rows(name, fmt, row_batches(fmt, 2500 if rowwise else 25_000, seed=seed))
        seed += 1
    record_property("points", n)


# -- (c) losses ---------------------------------------------------------------------------


def _probabilities(fmt: Format, rng: np.random.Generator, n: int, *, labels: bool) -> F64:
    s, one_minus = fmt.smallest_subnormal, 1 - 2.0**-fmt.precision
    pool_in = [0.0, 1.0, 0.5, -0.0, s, fmt.smallest_normal, one_minus, 1 - 2.0 ** (1 - fmt.precision)]
    pool_out = [-s, 1 + 2.0 ** (1 - fmt.precision), -1.0, 2.0, INF, -INF, NAN]
    if labels:
        pool_out += [-1e4, 1e4, -0.5, 1.5]
    out = np.empty(n)
    r = rng.random(n)
    out[:] = rng.random(n)  # uniform in [0, 1)
    near0 = r < 0.2
    out[near0] = 2.0 ** -rng.uniform(1, -math.log2(s), near0.sum())
    near1 = (r >= 0.2) & (r < 0.4)
    out[near1] = 1 - 2.0 ** -rng.uniform(1, fmt.precision + 4, near1.sum())
    pick = (r >= 0.4) & (r < 0.5)
    out[pick] = rng.choice(pool_in, pick.sum())
    bad = (r >= 0.5) & (r < 0.56)
    out[bad] = rng.choice(pool_out, bad.sum())
    return _cast(fmt, out)


def loss_inputs(name: str, fmt: Format, n: int, seed: int) -> tuple[F64, F64]:
    rng = np.random.default_rng(seed)
    if name == "binary_cross_entropy":
        return _probabilities(fmt, rng, n, labels=False), _probabilities(fmt, rng, n, labels=True)
    # logits: moderate values, huge ones, random bit patterns, specials
    x = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 2, n)
    r = rng.random(n)
    huge = r < 0.1
    x[huge] = np.clip(rng.standard_normal(huge.sum()) * 10.0 ** rng.uniform(2, 40, huge.sum()), -fmt.largest, fmt.largest)
    bits = (r >= 0.1) & (r < 0.2)
    x[bits] = _bits_values(fmt, rng.integers(0, 1 << fmt.bits, bits.sum(), dtype=np.uint64))
    y = _probabilities(fmt, rng, n, labels=True)
    return _cast(fmt, x), y


def _where_pair(fmt: Format, a: F64, b: F64) -> Callable[[int], str]:
    return lambda i: f"({a[i]!r}, {b[i]!r}) = ({_hex(fmt, a[i])}, {_hex(fmt, b[i])})"


LOSS_CASES = [pytest.param(name, fmt, id=f"{name}-{fmt}") for name in LOSSES for fmt in ALL]


@pytest.mark.parametrize(("name", "fmt"), LOSS_CASES)
def test_losses_hard_inputs(name: str, fmt: Format) -> None:
    a, b = loss_inputs(name, fmt, 2500, seed=4)
    got = evaluate(get_oracle(name), [a, b], fmt).want
    want = mref.reference(name, [a, b], fmt.name)
    agree(f"{name}[{fmt}]", fmt, got, want, _where_pair(fmt, a, b))


@pytest.mark.slow
@pytest.mark.parametrize(("name", "fmt"), LOSS_CASES)
def test_losses_sweep(name: str, fmt: Format, record_property: Callable[[str, object], None]) -> None:
    a, b = loss_inputs(name, fmt, SLOW_POINTS, seed=5)
    got = evaluate(get_oracle(name), [a, b], fmt).want
    want = mref.reference(name, [a, b], fmt.name)
    n = agree(f"{name}[{fmt}]", fmt, got, want, _where_pair(fmt, a, b))
    record_property("points", n)


# -- reductions -----------------------------------------------------------------------------


def check_reductions(name: str, fmt: Format, groups: int, seed: int) -> int:
    __tracebackhide__ = True
    rng = np.random.default_rng(seed)
    oracle = get_oracle(name)
    n = 0
    for g in range(groups):
        size = int(rng.integers(1, 40))
        if oracle.kind == "elementwise":
            a, b = loss_inputs(name, fmt, size, seed=seed * 1000 + g)
            if rng.random() < 0.7:  # mostly finite, in-domain groups: NaN would win everything
                keep = np.isfinite(a) & np.isfinite(b) & ((b >= 0) & (b <= 1) | (name != "binary_cross_entropy"))
                a, b = (a[keep], b[keep]) if keep.any() else (a, b)
            args: list[Any] = [a, b]
        else:
            (x, _t), *_ = row_batches(fmt, 1, seed=seed * 1000 + g)
            rows = np.repeat(x, size, axis=0)
            rows = rows + _cast(fmt, rng.standard_normal(rows.shape)) * (rng.random() < 0.5)
            rows = _cast(fmt, rows)
            args = [rows, rng.integers(0, rows.shape[1], rows.shape[0])]
        for how in ("mean", "sum"):
            got = evaluate(oracle, args, fmt, {"reduction": how}).want
            want = mref.reference(name, args, fmt.name, {"reduction": how})
            n += agree(f"{name}[{fmt}, reduction={how}] group {g}", fmt, got, want, lambda i, a=args: repr(a))
    return n


RED_CASES = [pytest.param(name, fmt, id=f"{name}-{fmt}") for name in REDUCIBLE for fmt in ALL]


@pytest.mark.parametrize(("name", "fmt"), RED_CASES)
def test_reductions(name: str, fmt: Format) -> None:
    assert check_reductions(name, fmt, groups=6, seed=6) == 12


@pytest.mark.slow
@pytest.mark.parametrize(("name", "fmt"), RED_CASES)
def test_reductions_sweep(name: str, fmt: Format, record_property: Callable[[str, object], None]) -> None:
    record_property("points", check_reductions(name, fmt, groups=150, seed=7))


# -- exact ties and hand-checked hard cases --------------------------------------------------


def both(name: str, args: Sequence[npt.ArrayLike], fmt: Format, params: dict[str, Any] | None = None) -> F64:
    """The oracle's values, after checking that MPFR agrees."""
    __tracebackhide__ = True
    arrays = [np.asarray(a) for a in args]
    got = evaluate(get_oracle(name), arrays, fmt, params).want
    want = mref.reference(name, arrays, fmt.name, params)
    agree(f"{name}[{fmt}]", fmt, got, want, lambda i: repr(arrays))
    return np.asarray(got)


@pytest.mark.parametrize("fmt", ALL, ids=[f.name for f in ALL])
def test_softmax_of_equal_entries_is_exact(fmt: Format) -> None:
    for a in (0.0, 1.0, -3.5, 100.0, fmt.largest, -fmt.largest, fmt.smallest_subnormal):
        assert both("softmax", [[[a, a]]], fmt).tolist() == [[0.5, 0.5]]
        assert both("softmax", [[[a] * 4]], fmt).tolist() == [[0.25] * 4]
        assert both("softmax", [[[a, -INF, a]]], fmt).tolist() == [[0.5, 0.0, 0.5]]
        assert both("log_softmax", [[[a, -INF]]], fmt).tolist() == [[0.0, -INF]]
        assert both("softmax", [[[a] * 3]], fmt)[0, 0] == _round_exact(Fraction(1, 3), fmt)


@pytest.mark.parametrize("fmt", ALL, ids=[f.name for f in ALL])
def test_reduction_ties_round_to_even(fmt: Format) -> None:
    """nll_loss with reduction is an exact rational: the mean of two neighbouring values
    is their midpoint, and it must round to the even one (on both sides of 1, and at the
    overflow threshold, which rounds to inf)."""
    for a in (1.0, 1.0 + 2.0 ** (1 - fmt.precision), 3.0, fmt.smallest_subnormal):
        b = float(fmt.to_float64(fmt.next_up(np.array([a]).astype(fmt.dtype)))[0])
        even = a if _pattern(fmt, a) % 2 == 0 else b
        got = both("nll_loss", [np.array([[-a], [-b]]), np.array([0, 0])], fmt, {"reduction": "mean"})
        assert float(got) == even, (a, b)
    half_ulp = 2.0 ** (fmt.emax - fmt.precision)
    got = both("nll_loss", [np.array([[-fmt.largest], [-half_ulp]]), np.array([0, 0])], fmt, {"reduction": "sum"})
    assert float(got) == INF
    below = float(fmt.to_float64(fmt.next_down(np.array([half_ulp]).astype(fmt.dtype)))[0])
    got = both("nll_loss", [np.array([[-fmt.largest], [-below]]), np.array([0, 0])], fmt, {"reduction": "sum"})
    assert float(got) == fmt.largest


@pytest.mark.parametrize("fmt", ALL, ids=[f.name for f in ALL])
def test_cancellation_cases(fmt: Format) -> None:
    rng = np.random.default_rng(8)
    # logsumexp([x, x]) = x + log 2 with x near -log 2: results from ~0 to a few ulps
    xs = sorted({_near(fmt, -math.log(2), 40, rng) for _ in range(200)})
    both("logsumexp", [np.array([[x, x] for x in xs])], fmt)
    # log_softmax of the dominant entry: -log1p(sum of tiny others)
    gaps = np.exp(np.linspace(0, math.log(-math.log(fmt.smallest_subnormal) * 1.5), 200))
    rows = _cast(fmt, np.stack([np.zeros_like(gaps), -gaps, -gaps * 1.5], axis=1))
    both("log_softmax", [rows], fmt)
    both("cross_entropy", [rows, np.zeros(len(rows), dtype=np.int64)], fmt)
    # BCE near p = 1 and p = 0 with soft labels
    one = np.array([1.0]).astype(fmt.dtype)
    ps = [one]
    for _ in range(60):
        ps.append(fmt.next_down(ps[-1]))
    p = fmt.to_float64(np.concatenate(ps))
    for y in (0.0, 0.5, 1.0, 2.0**-fmt.precision):
        both("binary_cross_entropy", [p, np.full_like(p, y)], fmt)
        both("binary_cross_entropy", [1 - p, np.full_like(p, y)], fmt)


def _midpoint_maxima(fmt: Format) -> tuple[F64, F64]:
    """Rows whose maximum m is a rounding midpoint of ``fmt`` (float64 inputs, wider than
    the output), the other entries 200, 1500 and 5000 below it, and the value each rounds
    to: logsumexp = m + log1p(R) with 0 < log1p(R) < e**-199 (log 2 or log 3 where m is so
    large that m - 200 is m in float64, still far below half an ulp), a hair above m, so the
    format value just above m, whichever neighbour is even. Midpoints at several
    magnitudes, two consecutive ones at each (one of each parity), both signs, and the
    overflow threshold (which rounds to inf, and its negative to -largest)."""
    with np.errstate(over="ignore"):
        base = np.array([fmt.smallest_subnormal, fmt.smallest_normal, 1.0, 3.0, 5600.0, 2.0**40,
                         fmt.largest / 4]).astype(fmt.dtype)
        base = base[np.isfinite(base)]  # 2**40 is not a float16 value
        vals = [fmt.to_float64(base)]
        for _ in range(2):
            vals.append(fmt.to_float64(fmt.next_up(vals[-1].astype(fmt.dtype))))
    lower = np.concatenate([vals[0], vals[1], [fmt.largest]])
    upper = np.concatenate([vals[1], vals[2], [INF]])
    mids = (lower + upper) / 2
    mids[-1] = fmt.overflow_threshold  # between largest and inf
    # the value above m is upper; above -m it is -lower
    rows, want = [], []
    for m, y in zip(np.concatenate([mids, -mids]).tolist(), np.concatenate([upper, -lower]).tolist(), strict=True):
        for row in ([m, m - 200, -INF], [-INF, m - 1500, m], [m - 5000, m, m - 5000]):
            lse = math.log1p(sum(math.exp(v - m) for v in row if v != -INF) - 1)
            assert 0 <= lse < 1.1 and lse < abs(y - m) / 4, (m, row)  # a hair above m, as claimed
            rows.append(row)
            want.append(y)
    return np.array(rows), np.array(want)


@pytest.mark.parametrize("tier", [True, False], ids=["tiered", "mpmath"])
@pytest.mark.parametrize("fmt", [FLOAT16, BFLOAT16, FLOAT32], ids=["float16", "bfloat16", "float32"])
def test_logsumexp_of_a_midpoint_maximum_rounds_up(fmt: Format, tier: bool) -> None:
    """Regression: logsumexp([5602, 650]) in float16 is 5602 + e**-4952. No working
    precision sees the e**-4952, 5602 is a float16 midpoint, and the oracle (version 1)
    took the value for an exact tie and rounded it to even (5600, not 5604); the fast tier
    deferred such rows to it. The oracle now keeps the side (``_exact_plus``)."""
    x, expected = _midpoint_maxima(fmt)
    mpfr = mref.reference("logsumexp", [x], fmt.name)
    np.testing.assert_array_equal(mpfr, expected, err_msg="MPFR reference against the hand-derived values")
    got = evaluate(get_oracle("logsumexp"), [x], fmt, tier=tier).want
    agree(f"logsumexp[{fmt}]", fmt, got, mpfr, _where_row(x, np.zeros(len(x), dtype=np.int64), 1))
    # the regression bites: round half to even of m differs in about half the rows
    assert np.count_nonzero(_cast(fmt, x.max(axis=1)) != expected) >= len(x) // 3
    # m the only finite entry: logsumexp is m exactly, a true tie, rounded to even
    single = np.stack([x.max(axis=1), np.full(len(x), -INF), np.full(len(x), -INF)], axis=1)
    even = _cast(fmt, single[:, 0])
    np.testing.assert_array_equal(mref.reference("logsumexp", [single], fmt.name), even)
    got = evaluate(get_oracle("logsumexp"), [single], fmt, tier=tier).want
    agree(f"logsumexp[{fmt}] single", fmt, got, even, _where_row(single, np.zeros(len(x), dtype=np.int64), 1))


# -- special values: the spec's table, for both references -----------------------------------

SPECIALS: list[tuple[str, dict[str, Any], list[Any], list[float]]] = [
    ("exp", {}, [[INF, -INF, NAN, 0.0]], [INF, 0.0, NAN, 1.0]),
    ("log", {}, [[0.0, -0.0, -1.0, -INF, INF, NAN, 1.0]], [-INF, -INF, NAN, NAN, INF, NAN, 0.0]),
    ("log1p", {}, [[-1.0, -2.0, INF, NAN, 0.0]], [-INF, NAN, INF, NAN, 0.0]),
    ("expm1", {}, [[INF, -INF, 0.0]], [INF, -1.0, 0.0]),
    ("tanh", {}, [[INF, -INF, 0.0]], [1.0, -1.0, 0.0]),
    ("sigmoid", {}, [[INF, -INF, 0.0]], [1.0, 0.0, 0.5]),
    ("softplus", {}, [[INF, -INF, NAN]], [INF, 0.0, NAN]),
    ("softplus", {"beta": 2.0}, [[INF, -INF]], [INF, 0.0]),
    ("log_sigmoid", {}, [[INF, -INF]], [0.0, -INF]),
    ("silu", {}, [[INF, -INF, 0.0]], [INF, 0.0, 0.0]),
    ("gelu", {}, [[INF, -INF, 0.0]], [INF, 0.0, 0.0]),
    ("softmax", {}, [[[0.0, -INF], [-INF, -INF], [INF, 0.0], [NAN, 0.0]]], [1.0, 0.0, NAN, NAN, NAN, NAN, NAN, NAN]),
    ("log_softmax", {}, [[[0.0, -INF], [-INF, -INF], [INF, 0.0]]], [0.0, -INF, NAN, NAN, NAN, NAN]),
    ("logsumexp", {}, [[[0.0, -INF], [-INF, -INF], [INF, 0.0], [INF, -INF], [NAN, 0.0]]], [0.0, -INF, INF, INF, NAN]),
    ("cross_entropy", {}, [[[0.0, -INF], [0.0, -INF], [-INF, -INF], [INF, 0.0]], [0, 1, 0, 1]], [0.0, INF, NAN, NAN]),
    ("cross_entropy", {}, [[[0.0, 1.0], [0.0, 1.0]], [-1, 2]], [NAN, NAN]),
    ("nll_loss", {}, [[[-1.0, -INF], [-1.0, -INF], [NAN, -2.0]], [0, 1, 1]], [1.0, INF, NAN]),
    ("binary_cross_entropy", {}, [[0.0, 1.0, 0.0, 1.0, 1.5, -0.5, 0.5, 0.5, NAN],
                                  [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.5, -0.5, 0.0]],
     [0.0, 0.0, INF, INF, NAN, NAN, NAN, NAN, NAN]),
    ("binary_cross_entropy_with_logits", {}, [[INF, -INF, INF, -INF, 0.0, INF, NAN],
                                              [1.0, 0.0, 0.0, 1.0, INF, INF, 0.5]],
     [0.0, 0.0, INF, INF, NAN, -INF, NAN]),
]


@pytest.mark.parametrize("fmt", [FLOAT16, FLOAT32], ids=["float16", "float32"])
@pytest.mark.parametrize(("name", "params", "args", "expected"), SPECIALS,
                         ids=[f"{case_id(s[0], s[1])}-{i}" for i, s in enumerate(SPECIALS)])
def test_special_values(name: str, params: dict[str, Any], args: list[Any], expected: list[float],
                        fmt: Format) -> None:
    arrays = [np.array(a) for a in args]
    exp = np.array(expected, dtype=np.float64)
    mine = np.asarray(mref.reference(name, arrays, fmt.name, params)).ravel()
    theirs = np.asarray(evaluate(get_oracle(name), arrays, fmt, params).want).ravel()
    np.testing.assert_array_equal(mine, exp, err_msg=f"MPFR reference, {name}")
    np.testing.assert_array_equal(theirs, exp, err_msg=f"oracle, {name}")


# -- the reference itself ------------------------------------------------------------------


def test_every_builtin_oracle_has_an_mpfr_reference() -> None:
    builtin = {o.name for o in all_oracles() if getattr(o.fn, "__module__", "") == "oracles.catalogue"}
    covered = set(mref.ELEMENTWISE) | set(mref.ROWWISE) | set(mref.ROW_REDUCE) | set(mref.LOSSES)
    assert builtin == covered
    tested = {n for n, _ in ELEMENTWISE} | set(ROWS) | set(LOSSES)
    assert builtin == tested


def _round_exact(y: Fraction, fmt: Format) -> float:
    if y == 0:
        return 0.0
    a = abs(y)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    e += 1 if Fraction(2) ** (e + 1) <= a else 0
    e -= 1 if Fraction(2) ** e > a else 0
    q = max(e, fmt.emin) - fmt.precision + 1
    m = round(a / Fraction(2) ** q)
    v = Fraction(m) * Fraction(2) ** q
    out = math.inf if v > Fraction(fmt.largest) else float(v)
    return -out if y < 0 else out


@pytest.mark.parametrize("fmt", ALL, ids=[f.name for f in ALL])
def test_mpfr_rounding_into_format(fmt: Format) -> None:
    """MPFR's emulation of the format (subnormalize, emin/emax shifted by one) rounds like
    the IEEE definition, ties and thresholds included, at 200 bits of input."""
    import gmpy2

    exact = gmpy2.context(precision=4400)
    rng = np.random.default_rng(9)
    s = Fraction(fmt.smallest_subnormal)
    largest = Fraction(fmt.largest)
    ulp_top = Fraction(2) ** (fmt.emax - fmt.precision + 1)
    tiny = Fraction(1, 2**1400)
    cases = [s / 2, s / 2 + tiny, s / 2 - tiny, 3 * s / 2, 5 * s / 2, largest + ulp_top / 2,
             largest + ulp_top / 2 - tiny, Fraction(1) + Fraction(2) ** -fmt.precision,
             Fraction(1) + 3 * Fraction(2) ** -fmt.precision, Fraction(fmt.smallest_normal) - s / 2]
    for _ in range(300):
        bits = int(rng.integers(1, 120))
        e = int(rng.integers(fmt.emin - fmt.precision - 4, fmt.emax + 3)) - bits
        cases.append(Fraction(int(rng.integers(1, 2**62)) * 2 ** max(0, bits - 62) + 1) * Fraction(2) ** e)
    for y in cases:
        for v in (y, -y):
            m = exact.div(gmpy2.mpfr(v.numerator, 4400), gmpy2.mpfr(v.denominator, 4400))
            assert mref.round_to_format(m, fmt.name) == _round_exact(v, fmt), float(v)
