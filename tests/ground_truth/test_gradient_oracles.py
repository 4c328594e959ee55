"""The built-in gradient oracles against the independent MPFR reference (``gradient_mpfr.py``).

``oracles.evaluate(gradient_oracle(name, wrt), [*args, cotangent], fmt).want`` must equal
the MPFR interval reference bit for bit: NaN equal to NaN and, unlike the forward tests,
the sign of zero compared (an exact zero is +0, a value that underflows keeps its sign).

(a) float16 and bfloat16, elementwise: every bit pattern with a cotangent of ones and again
    with random and special cotangents (``slow``); in CI every 16th pattern with ones and
    every 64th with the others, plus the special values. The losses' two arguments: every
    pattern of one against a set of values of the other, both ways (every 512th in CI).
    float32 and float64: specials, random patterns and moderate values.
(b) row-wise and row-reducing gradients in every format on rows built to be hard: gaps
    where e**d leaves the format, masked entries, ties (softmax exactly 1/n, so a VJP can be
    an exact midpoint), a tie plus an invisible tail, +inf rows and all -inf rows, masked
    targets, ``count`` for reduction="mean"; then hand-derived hard cases.
(c) agreement with mpmath's numerical differentiation at benign points, every gradient.
(d) the edge policy as a table, the numerical fallback for user oracles, registration
    errors, and the registry agreeing with the catalogue.

Each comparison runs the gradient oracles themselves (``tier=False``: mpmath and Ziv's loop)
and, on a share of the inputs, evaluate's default path, where the float64 fast tiers of
``oracles/fast/`` decide what they can prove (the ``tiered`` tests and labels): a failure
labelled ``tiered`` only is the tier's. CI sizes keep the file to about a minute with two
workers; ``--run-slow`` runs the sweeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from mpmath import mp, mpf

try:
    import gradient_mpfr as gref  # tests/helpers on sys.path (pyproject's pythonpath)
except ModuleNotFoundError:  # pragma: no cover - tests/ made a package
    from tests.helpers import gradient_mpfr as gref

from oracles import (
    BFLOAT16,
    FLOAT16,
    FLOAT32,
    FLOAT64,
    GRADIENTS,
    REGISTRY,
    Format,
    OracleError,
    UsageError,
    evaluate,
    get_oracle,
    gradient,
    gradient_oracle,
    round_mpf,
)
from oracles.gradients import gradient_for
from oracles.registry import Arg, Oracle, function_target

ALL = [FLOAT16, BFLOAT16, FLOAT32, FLOAT64]
SMALL = [FLOAT16, BFLOAT16]
NAN, INF = math.nan, math.inf
F64 = npt.NDArray[np.float64]
JOBS = 2
#: the gradient oracles themselves (mpmath, Ziv's loop); the ``tiered`` tests repeat a share
#: of the inputs through evaluate's default path, where the float64 fast tiers of
#: oracles/fast/ decide what they can prove
MPMATH, TIERED = False, True

ELEMENTWISE: list[tuple[str, dict[str, Any]]] = [
    ("exp", {}),
    ("log", {}),
    ("log1p", {}),
    ("expm1", {}),
    ("tanh", {}),
    ("sigmoid", {}),
    ("softplus", {"beta": 1.0}),
    ("softplus", {"beta": -2.0}),
    ("log_sigmoid", {}),
    ("silu", {}),
    ("gelu", {}),
]
LOSSES = [
    ("binary_cross_entropy", "p"),
    ("binary_cross_entropy", "y"),
    ("binary_cross_entropy_with_logits", "x"),
    ("binary_cross_entropy_with_logits", "y"),
]
ROWS = [("softmax", "x"), ("log_softmax", "x"), ("logsumexp", "x"), ("cross_entropy", "logits"), ("nll_loss", "logp")]


def case_id(name: str, params: dict[str, Any]) -> str:
    return name + ("" if not params else "[" + ",".join(f"{k}={v:g}" for k, v in params.items()) + "]")


# -- comparing ---------------------------------------------------------------------------


def _hex(fmt: Format, v: float) -> str:
    try:
        return fmt.hex(float(v))
    except ValueError:
        return "?"


def same_bits(label: str, fmt: Format, got: npt.ArrayLike, want: npt.ArrayLike, where: Callable[[int], str]) -> int:
    """Fail with the first disagreements unless the arrays agree value for value, the sign
    of zero included and NaN equal to NaN; returns how many values were compared."""
    __tracebackhide__ = True
    a = np.asarray(got, dtype=np.float64).ravel()
    b = np.asarray(want, dtype=np.float64).ravel()
    assert a.shape == b.shape, f"{label}: {a.shape} oracle values, {b.shape} MPFR values"
    same = (np.isnan(a) & np.isnan(b)) | ((a == b) & (np.signbit(a) == np.signbit(b)))
    if not same.all():
        bad = np.flatnonzero(~same)
        lines = [f"{label}: {bad.size} of {a.size} values differ between the gradient oracle and MPFR"]
        for i in bad[:8]:
            lines.append(f"  {where(int(i))}: oracle {a[i]!r} ({_hex(fmt, a[i])}), mpfr {b[i]!r} ({_hex(fmt, b[i])})")
        pytest.fail("\n".join(lines), pytrace=False)
    return int(a.size)


def _cast(fmt: Format, values: npt.ArrayLike) -> F64:
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(values, dtype=np.float64).astype(fmt.dtype).astype(np.float64)


def _patterns(fmt: Format, pats: npt.ArrayLike) -> F64:
    with np.errstate(invalid="ignore"):  # signalling NaN patterns
        return fmt.from_bits(np.asarray(pats, dtype=np.uint64).astype(fmt.uint_dtype)).astype(np.float64)


def _pattern(fmt: Format, v: float) -> int:
    return int(fmt.to_bits(np.array([v]).astype(fmt.dtype))[0])


def special_values(fmt: Format) -> F64:
    """+-0, +-inf, NaN, the edges of the subnormal and normal ranges, 1 and their
    neighbours."""
    sign = 1 << (fmt.bits - 1)
    inf = _pattern(fmt, INF)
    anchors = [0, 1, _pattern(fmt, fmt.smallest_normal), _pattern(fmt, fmt.largest), inf, _pattern(fmt, 1.0),
               _pattern(fmt, 0.5), _pattern(fmt, 2.0)]
    pats = {inf + 1}
    for a in anchors:
        for d in (-2, -1, 0, 1, 2):
            if 0 <= a + d <= inf:
                pats.update((a + d, (a + d) | sign))
    return _patterns(fmt, sorted(pats))


def random_cotangents(fmt: Format, n: int, rng: np.random.Generator) -> F64:
    """Random format values with a binade in [2**-8, 2**8) (harness.plan.cotangents'
    ``random``), every 5th replaced by a special one: +-0, +-1, +-smallest subnormal,
    smallest normal, largest, a loss scale, the neighbours of 1; and a few +-inf."""
    exps = rng.integers(-8, 8, n)
    sig = 1.0 + rng.integers(0, 1 << (fmt.precision - 1), n) / (1 << (fmt.precision - 1))
    g = np.where(rng.integers(0, 2, n) == 1, -1.0, 1.0) * np.ldexp(sig, exps)
    specials = np.array([0.0, -0.0, 1.0, -1.0, fmt.smallest_subnormal, -fmt.smallest_subnormal, fmt.smallest_normal,
                         fmt.largest, -fmt.largest, 2.0 ** (fmt.emax // 2), 1.0 + 2.0 ** (1 - fmt.precision),
                         1.0 - 2.0 ** -fmt.precision, INF, -INF])
    g[::5] = specials[rng.integers(0, specials.size, g[::5].size)]
    return _cast(fmt, g)


def check_elementwise(name: str, wrt: str, args: Sequence[F64], g: F64, fmt: Format,
                      params: dict[str, Any] | None = None, *, tier: bool = MPMATH) -> int:
    __tracebackhide__ = True
    params = dict(params or {})
    got = evaluate(gradient_oracle(name, wrt), [*args, g], fmt, params, jobs=JOBS, tier=tier).want
    want = gref.reference_gradient(name, wrt, [*args, g], fmt.name, params)

    def where(i: int) -> str:
        shown = ", ".join(f"{a[i]!r} ({_hex(fmt, a[i])})" for a in args)
        return f"({shown}), cotangent {g[i]!r}"

    path = "tiered" if tier else "mpmath"
    return same_bits(f"∂{case_id(name, params)}/∂{wrt}[{fmt}, {path}]", fmt, got, want, where)


# -- (a) float16 / bfloat16, elementwise ----------------------------------------------------


def every(fmt: Format, step: int) -> F64:
    """Every ``step``-th 16-bit pattern and the special values."""
    return np.concatenate([_patterns(fmt, np.arange(0, 1 << 16, step)), special_values(fmt)])


EW_CASES = [pytest.param(n, p, f, id=f"{case_id(n, p)}-{f}") for n, p in ELEMENTWISE for f in SMALL]


@pytest.mark.parametrize(("name", "params", "fmt"), EW_CASES)
def test_elementwise_16bit_ones(name: str, params: dict[str, Any], fmt: Format) -> None:
    x = every(fmt, 16)
    assert check_elementwise(name, "x", [x], np.ones_like(x), fmt, params) > 4000


@pytest.mark.parametrize(("name", "params", "fmt"), EW_CASES)
def test_elementwise_16bit_tiered(name: str, params: dict[str, Any], fmt: Format) -> None:
    """What evaluate returns by default (the fast tier where it decides) on every 8th
    pattern with ones, and on every 64th with random and special cotangents."""
    x = every(fmt, 8)
    check_elementwise(name, "x", [x], np.ones_like(x), fmt, params, tier=TIERED)
    x = every(fmt, 64)
    g = random_cotangents(fmt, x.size, np.random.default_rng(15))
    check_elementwise(name, "x", [x], g, fmt, params, tier=TIERED)


@pytest.mark.parametrize(("name", "params", "fmt"), EW_CASES)
def test_elementwise_16bit_cotangents(name: str, params: dict[str, Any], fmt: Format) -> None:
    """Random and special cotangents (``count``, the divisor of a mean, is the losses' own
    parameter: test_loss_gradients_16bit)."""
    rng = np.random.default_rng(11)
    x = every(fmt, 16)
    check_elementwise(name, "x", [x], random_cotangents(fmt, x.size, rng), fmt, params)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "params", "fmt"), EW_CASES)
def test_elementwise_16bit_exhaustive(name: str, params: dict[str, Any], fmt: Format,
                                      record_property: Callable[[str, object], None]) -> None:
    x = _patterns(fmt, np.arange(1 << 16))
    g = random_cotangents(fmt, x.size, np.random.default_rng(12))
    n = 0
    for tier in (MPMATH, TIERED):
        n += check_elementwise(name, "x", [x], np.ones_like(x), fmt, params, tier=tier)
        n += check_elementwise(name, "x", [x], g, fmt, params, tier=tier)
    assert n == 4 << 16
    record_property("points", n)


def loss_pairs(name: str, fmt: Format, step: int) -> tuple[F64, F64]:
    """Every ``step``-th pattern of the argument differentiated against a set of values of
    the other, and every ``step``-th pattern of the other against a set of the first: the
    edges of [0, 1], values just inside, 1/2, subnormals, and out-of-domain labels."""
    one_down = 1.0 - 2.0 ** -fmt.precision
    probs = [0.0, -0.0, 1.0, 0.5, 0.25, 0.3, fmt.smallest_subnormal, fmt.smallest_normal, one_down,
             2.0 ** -fmt.precision, 1.5, -0.5, NAN]
    logits = [0.0, 1.0, -1.0, 30.0, -30.0, 1e4, -1e4, fmt.largest, -fmt.largest, fmt.smallest_subnormal,
              INF, -INF, NAN]
    labels = [*probs, 2.0, -3.0, INF, -INF] if name == "binary_cross_entropy_with_logits" else probs
    first = logits if name == "binary_cross_entropy_with_logits" else probs
    sweep = every(fmt, step)
    a1, b1 = np.meshgrid(sweep, _cast(fmt, labels))
    a2, b2 = np.meshgrid(_cast(fmt, first), sweep)
    return np.concatenate([a1.ravel(), a2.ravel()]), np.concatenate([b1.ravel(), b2.ravel()])


LOSS_CASES = [pytest.param(n, w, f, id=f"{n}-{w}-{f}") for n, w in LOSSES for f in SMALL]


@pytest.mark.parametrize("tier", [MPMATH, TIERED], ids=["mpmath", "tiered"])
@pytest.mark.parametrize(("name", "wrt", "fmt"), LOSS_CASES)
def test_loss_gradients_16bit(name: str, wrt: str, fmt: Format, tier: bool) -> None:
    a, b = loss_pairs(name, fmt, 512 if tier is MPMATH else 128)
    check_elementwise(name, wrt, [a, b], np.ones_like(a), fmt, tier=tier)
    rng = np.random.default_rng(13)
    check_elementwise(name, wrt, [a, b], random_cotangents(fmt, a.size, rng), fmt, {"count": 3.0}, tier=tier)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "wrt", "fmt"), LOSS_CASES)
def test_loss_gradients_16bit_sweep(name: str, wrt: str, fmt: Format,
                                    record_property: Callable[[str, object], None]) -> None:
    a, b = loss_pairs(name, fmt, 1)
    n = sum(check_elementwise(name, wrt, [a, b], np.ones_like(a), fmt, tier=tier) for tier in (MPMATH, TIERED))
    record_property("points", n)


@pytest.mark.parametrize("fmt", [FLOAT32, FLOAT64], ids=["float32", "float64"])
@pytest.mark.parametrize(("name", "params"), ELEMENTWISE, ids=[case_id(n, p) for n, p in ELEMENTWISE])
def test_elementwise_wide(name: str, params: dict[str, Any], fmt: Format) -> None:
    """float32 and float64: specials, random bit patterns and moderate values, with ones
    and random cotangents."""
    rng = np.random.default_rng(14)
    n = 200
    bits = rng.integers(0, 1 << fmt.bits, n, dtype=np.uint64)
    x = np.concatenate([special_values(fmt), _patterns(fmt, bits),
                        _cast(fmt, rng.standard_normal(n) * 10.0 ** rng.uniform(-4, 2.5, n))])
    g = random_cotangents(fmt, x.size, rng)
    for tier in (MPMATH, TIERED):
        check_elementwise(name, "x", [x], np.ones_like(x), fmt, params, tier=tier)
        check_elementwise(name, "x", [x], g, fmt, params, tier=tier)


BESIDE_HALF = [("softplus", {"beta": 1.0}), ("softplus", {"beta": -2.0}), ("log_sigmoid", {}), ("silu", {}),
               ("gelu", {})]


@pytest.mark.parametrize("fmt", [BFLOAT16, FLOAT32], ids=["bfloat16", "float32"])
@pytest.mark.parametrize(("name", "params"), BESIDE_HALF, ids=[case_id(n, p) for n, p in BESIDE_HALF])
def test_elementwise_beside_one_half(name: str, params: dict[str, Any], fmt: Format) -> None:
    """Near 0 these derivatives are the exact 1/2 plus a correction of x's sign (silu',
    gelu'; sigmoid(z) for z < 0 in softplus', log_sigmoid'). Inputs of both signs with
    2**-(p+66) <= |x| <= 2**-(p+46) (bfloat16: every pattern; float32: powers of two, their
    neighbours and random values), with ones and power-of-two cotangents, which keep g d
    beside a power of two, and random ones; both paths."""
    p = fmt.precision
    lo, hi = -(p + 66), -(p + 46)
    if fmt is BFLOAT16:
        x = _patterns(fmt, np.arange(1 << 16))
        x = x[(np.abs(x) >= 2.0**lo) & (np.abs(x) <= 2.0**hi)]
    else:
        rng = np.random.default_rng(16)
        pow2 = np.exp2(np.arange(lo, hi + 1, dtype=np.float64))
        x = np.concatenate([pow2, _cast(fmt, pow2 * (1 + 2.0 ** (1 - p))), _cast(fmt, pow2 * (1 - 2.0**-p)),
                            _cast(fmt, np.exp2(rng.uniform(lo, hi, 300)))])
        x = np.concatenate([x, -x])
    pow2_g = np.repeat(np.array([1.0, -1.0, 2.0**-5, -(2.0**9)]), x.size)
    xx = np.tile(x, 4)
    for tier in (MPMATH, TIERED):
        check_elementwise(name, "x", [xx], pow2_g, fmt, params, tier=tier)
        check_elementwise(name, "x", [x], random_cotangents(fmt, x.size, np.random.default_rng(17)), fmt, params,
                          tier=tier)


# -- (b) rows -----------------------------------------------------------------------------


def _gaps(fmt: Format) -> list[float]:
    """Distances below the maximum where e**-d leaves the format: a rounding of 1 + e**-d,
    the subnormal and normal underflow, and the brief's ~±11 (float16) / ±700 (float32)."""
    edges = [(fmt.precision + 1) * math.log(2), -math.log(fmt.smallest_subnormal), -math.log(fmt.smallest_normal)]
    return [*edges, 11.0 if fmt is FLOAT16 else (88.0 if fmt is BFLOAT16 else 700.0)]


def hard_row(fmt: Format, rng: np.random.Generator) -> list[float]:
    w = int(rng.choice([1, 2, 3, 4, 5, 8, 17]))
    big = fmt.largest
    family = int(rng.integers(0, 9))
    if family == 0:  # plain rows at a scale the format holds
        row = rng.standard_normal(w) * 10.0 ** rng.uniform(-2, 1.5 if fmt is FLOAT16 else 2.5)
    elif family == 1:  # ties: softmax exactly 1/n, sometimes with masked entries
        row = np.full(w, float(rng.standard_normal() * 10))
        row[rng.random(w) < 0.3] = -INF
    elif family == 2:  # masked entries, sometimes all of them
        row = rng.standard_normal(w) * 4
        row[rng.random(w) < (1.0 if rng.random() < 0.15 else 0.4)] = -INF
    elif family == 3:  # one special entry
        row = rng.standard_normal(w) * 4
        row[int(rng.integers(w))] = rng.choice([INF, -INF, big, -big, fmt.smallest_subnormal, 0.0])
    elif family == 4:  # a dominant entry, the others near where e**-d leaves the format
        top = float(rng.standard_normal() * 10)
        d = np.array([rng.choice(_gaps(fmt)) * rng.uniform(0.9, 1.1) for _ in range(w)])
        row = np.concatenate([[top], top - d[1:]])
        rng.shuffle(row)
    elif family == 5:  # a tie at the top and a tail at the edges
        top = float(rng.standard_normal() * 10)
        row = np.concatenate([[top, top], top - np.array([rng.choice(_gaps(fmt)) for _ in range(max(0, w - 2))])])
    elif family == 6:  # magnitudes near overflow
        row = np.array([rng.choice([big, -big, big / 2, -big / 3, 0.0, -INF]) for _ in range(w)])
    elif family == 7:  # all equal but one, an ulp away
        a = float(rng.standard_normal() * 10)
        row = np.full(w, a)
        row[int(rng.integers(w))] = float(fmt.to_float64(fmt.next_up(np.array([a]).astype(fmt.dtype)))[0])
    else:  # +inf somewhere, or nothing finite
        row = np.full(w, -INF)
        if rng.random() < 0.6:
            row[int(rng.integers(w))] = INF
    return _cast(fmt, row).tolist()


def row_cotangent(fmt: Format, row: list[float], rng: np.random.Generator) -> list[float]:
    """A VJP cotangent: ones, random, special, constant on each group of equal entries (an
    exact zero), or small integers times a power of two (differences on midpoints)."""
    w = len(row)
    kind = int(rng.integers(0, 5))
    if kind == 0:
        g = np.ones(w)
    elif kind == 1:
        g = random_cotangents(fmt, w, rng)
        g[np.isinf(g)] = 1.0  # infinite cotangents have their own tests
    elif kind == 2:
        g = np.array([rng.choice([0.0, -0.0, 1.0, -1.0, fmt.smallest_subnormal, fmt.largest,
                                  2.0 ** (fmt.emax // 2)]) for _ in range(w)])
    elif kind == 3:
        values = {v: float(rng.integers(-3, 4)) for v in set(row)}
        g = np.array([values[v] for v in row])
    else:
        g = rng.integers(-(1 << fmt.precision), 1 << fmt.precision, w) * 2.0 ** int(rng.integers(-fmt.precision, 2))
    return _cast(fmt, g).tolist()


#: the largest gap below the maximum that the MPFR reference resolves in a VJP row: its
#: intervals see a tail e**-gap only at about 1.44 gap bits (it stops at 2**19), and MPFR's
#: exponents end near e**-7.4e8. float16 gaps (at most 131,008) are all within reach;
#: wider formats' VJP rows with larger gaps are tested by hand (test_extreme_gaps)
MPFR_GAP = 1e5


def _resolvable(row: list[float]) -> bool:
    finite = [v for v in row if math.isfinite(v)]
    return not finite or max(finite) - min(finite) <= MPFR_GAP or any(v == INF for v in row)


def row_batches(name: str, fmt: Format, n_rows: int, seed: int) -> list[list[npt.NDArray[Any]]]:
    """The derived oracle's arrays, grouped by width: rows, (targets,) cotangents."""
    rng = np.random.default_rng(seed)
    reduce = get_oracle(name).kind == "row_reduce"
    targets = len(get_oracle(name).args) == 2
    by_width: dict[int, list[tuple[list[float], int, list[float]]]] = {}
    for _ in range(n_rows):
        row = hard_row(fmt, rng)
        while not reduce and not _resolvable(row):
            row = hard_row(fmt, rng)
        w = len(row)
        masked = [i for i, v in enumerate(row) if v == -INF]
        t = int(rng.choice(masked)) if masked and rng.random() < 0.25 else int(rng.integers(w))
        if reduce:
            g = [float(random_cotangents(fmt, 1, rng)[0]) if rng.random() < 0.5 else 1.0] * w
        else:
            g = row_cotangent(fmt, row, rng)
        by_width.setdefault(w, []).append((row, t, g))
    batches = []
    for _w, items in sorted(by_width.items()):
        x = np.array([r for r, _, _ in items])
        g = np.array([c for _, _, c in items])
        t = np.array([t for _, t, _ in items], dtype=np.int64)
        batches.append([x, t, g] if targets else [x, g])
    return batches


def check_rows(name: str, wrt: str, fmt: Format, batches: list[list[npt.NDArray[Any]]],
               params: dict[str, Any] | None = None) -> int:
    """Both paths (mpmath, tiered) against MPFR."""
    __tracebackhide__ = True
    derived = gradient_oracle(name, wrt)
    n = 0
    for arrays in batches:
        want = gref.reference_gradient(name, wrt, arrays, fmt.name, params)
        width = arrays[0].shape[1]

        def where(i: int, arrays: list[npt.NDArray[Any]] = arrays, width: int = width) -> str:
            r = i // width
            extra = f" target {int(arrays[1][r])}" if len(arrays) == 3 else ""
            return f"row {arrays[0][r].tolist()}{extra} cotangent {arrays[-1][r].tolist()} col {i % width}"

        for tier in (MPMATH, TIERED):
            got = evaluate(derived, arrays, fmt, params, tier=tier).want
            path = "tiered" if tier else "mpmath"
            n += same_bits(f"∂{name}/∂{wrt}[{fmt}, {path}] width {width}", fmt, got, want, where)
    return n


ROW_CASES = [pytest.param(n, w, f, id=f"{n}-{f}") for n, w in ROWS for f in ALL]


@pytest.mark.parametrize(("name", "wrt", "fmt"), ROW_CASES)
def test_rows_hard_inputs(name: str, wrt: str, fmt: Format) -> None:
    batches = row_batches(name, fmt, 250, seed=21)
    n = check_rows(name, wrt, fmt, batches)
    if get_oracle(name).reducible:
        n += check_rows(name, wrt, fmt, batches, {"count": 3.0})
    assert n > 1000


@pytest.mark.slow
@pytest.mark.parametrize(("name", "wrt", "fmt"), ROW_CASES)
def test_rows_sweep(name: str, wrt: str, fmt: Format, record_property: Callable[[str, object], None]) -> None:
    n, seed = 0, 100
    while n < 100_000:
        params = {"count": float(seed % 4 + 1)} if get_oracle(name).reducible else {}
        n += check_rows(name, wrt, fmt, row_batches(name, fmt, 5000, seed=seed), params)
        seed += 1
    record_property("points", n)


def both(name: str, wrt: str, arrays: Sequence[npt.ArrayLike], fmt: Format,
         params: dict[str, Any] | None = None) -> F64:
    """The gradient oracle's values, after checking that MPFR and the tiered path agree."""
    __tracebackhide__ = True
    arrs = [np.asarray(a) for a in arrays]
    got = _oracle_only(name, wrt, arrs, fmt, params)
    want = gref.reference_gradient(name, wrt, arrs, fmt.name, params)
    same_bits(f"∂{name}/∂{wrt}[{fmt}]", fmt, got, want, lambda i: repr([a.tolist() for a in arrs]))
    return got


def _oracle_only(name: str, wrt: str, arrays: Sequence[npt.ArrayLike], fmt: Format,
                 params: dict[str, Any] | None = None) -> F64:
    """The mpmath path's values, after checking that the tiered path gives the same."""
    __tracebackhide__ = True
    arrs = [np.asarray(a) for a in arrays]
    got = evaluate(gradient_oracle(name, wrt), arrs, fmt, params, tier=MPMATH).want
    tiered = evaluate(gradient_oracle(name, wrt), arrs, fmt, params, tier=TIERED).want
    same_bits(f"∂{name}/∂{wrt}[{fmt}] tiered", fmt, tiered, got, lambda i: repr([a.tolist() for a in arrs]))
    return np.asarray(got, dtype=np.float64)


def _round_exact(q: Fraction, fmt: Format) -> float:
    with mp.workprec(4000):
        return round_mpf(mpf(q.numerator) / q.denominator, fmt)


@pytest.mark.parametrize("fmt", ALL, ids=[f.name for f in ALL])
def test_ties_are_exact(fmt: Format) -> None:
    """Rows of equal entries have a rational gradient (softmax 1/n): exact values, exact
    zeros for a constant cotangent, and exact ties rounded to even."""
    for a in (0.0, -3.5, 100.0, fmt.largest, -fmt.largest):
        assert both("softmax", "x", [[[a, a]], [[1.0, 3.0]]], fmt).tolist() == [[-0.5, 0.5]]
        assert both("softmax", "x", [[[a, a, a]], [[2.0, 2.0, 2.0]]], fmt).tolist() == [[0.0, 0.0, 0.0]]
        assert both("log_softmax", "x", [[[a, -INF, a]], [[1.0, 5.0, 3.0]]], fmt).tolist() == [[-3.5, 5.0, -1.5]]
        assert both("logsumexp", "x", [[[a] * 4], [[1.0] * 4]], fmt).tolist() == [[0.25] * 4]
        got = both("cross_entropy", "logits", [[[a, a, a]], [0], [[1.0] * 3]], fmt)
        assert got.tolist() == [[_round_exact(Fraction(-2, 3), fmt), *[_round_exact(Fraction(1, 3), fmt)] * 2]]
    # softmax VJP of [a, a]: (g0 - g1) / 4, a midpoint when g0 - g1 has p + 1 bits
    p = fmt.precision
    g0, g1 = 1.0 + 2.0 ** (1 - p), -(2.0 ** -p)
    got = both("softmax", "x", [[[0.0, 0.0]], [[g0, g1]]], fmt)
    assert got[0, 0] == _round_exact((Fraction(g0) - Fraction(g1)) / 4, fmt) == (1.0 + 2.0 ** (2 - p)) / 4


def _tail_gap(fmt: Format) -> float:
    """A gap whose e**-gap is below 2**-2000 (beyond Ziv's tie agreement) yet a value of
    the format: the tail that only an exact part plus a side-keeping correction sees."""
    return 3000.0 if fmt is not FLOAT16 else 2000.0


@pytest.mark.parametrize("fmt", ALL, ids=[f.name for f in ALL])
def test_tie_plus_invisible_tail_keeps_its_side(fmt: Format) -> None:
    """A value that is a rounding midpoint plus e**-3000: Ziv's loop alone would take it for
    an exact tie and round to even; the oracles keep the exact part and the side of the
    correction (and MPFR, with intervals of 8,192 bits, sees the tail itself)."""
    p, gap = fmt.precision, _tail_gap(fmt)
    # softmax of [0, 0, -gap] with g = [1 + 2**(1-p), -2**-p, 0]: (g0 - g1) / 4 is a midpoint;
    # the tail moves it down (its coefficient is 4 g1 < 0), so it rounds down, to the odd side
    got = both("softmax", "x", [[[0.0, 0.0, -gap]], [[1.0 + 2.0 ** (1 - p), -(2.0 ** -p), 0.0]]], fmt)
    assert got[0, 0] == (1.0 + 2.0 ** (1 - p)) / 4
    # log_softmax of [0, -gap, -inf] with g = [-4, 1, 2**-p]: -(1 + 2**-p) plus G e**-gap / S,
    # G < 0, so the value rounds away from -1 (even) to -(1 + 2**(1-p))
    got = both("log_softmax", "x", [[[0.0, -gap, -INF]], [[-4.0, 1.0, 2.0**-p]]], fmt)
    assert got[0, 0] == -(1.0 + 2.0 ** (1 - p))
    # logsumexp and cross_entropy at a tie of two: g / 2 on a subnormal midpoint, minus a tail
    tiny = fmt.smallest_subnormal
    got = both("logsumexp", "x", [[[0.0, 0.0, -gap]], [[7 * tiny] * 3]], fmt)
    assert got[0, 0] == 3 * tiny  # 3.5 -> 3, not to even 4
    got = both("cross_entropy", "logits", [[[0.0, 0.0, -gap]], [0], [[5 * tiny] * 3]], fmt)
    assert got[0].tolist() == [-3 * tiny, 2 * tiny, 0.0]  # -2.5 -> -3 (not -2), 2.5 -> 2


@pytest.mark.parametrize("fmt", ALL, ids=[f.name for f in ALL])
def test_extreme_gaps(fmt: Format) -> None:
    """Rows spanning the whole format: tails like e**-(2 * largest), beyond MPFR's exponent
    range (except in float16), decided by hand. A VJP that is a sum of such tails is a
    signed zero, with the sign of its dominant tail; an exact part keeps its side."""
    big = fmt.largest
    check = both if fmt is FLOAT16 else _oracle_only
    # softmax of [L, -L]: s0 s1 (g0 - g1) and its negative, far below every subnormal
    got = check("softmax", "x", [[[big, -big], [big, -big]], [[1.0, 3.0], [2.0, 2.0]]], fmt)
    same_bits("softmax [L, -L]", fmt, got, np.array([[-0.0, 0.0], [0.0, 0.0]]), lambda i: f"element {i}")
    # [1, 2, L], g = [1, -1, 0]: the top's VJP is s2 (s1 - s0) > 0, decided by the larger tail
    got = check("softmax", "x", [[[1.0, 2.0, big]], [[1.0, -1.0, 0.0]]], fmt)
    same_bits("softmax [1, 2, L]", fmt, got, np.array([[0.0, -0.0, 0.0]]), lambda i: f"element {i}")
    got = check("softmax", "x", [[[1.0, 2.0, big]], [[-1.0, 1.0, 0.0]]], fmt)
    same_bits("softmax [1, 2, L] negated", fmt, got, np.array([[-0.0, 0.0, -0.0]]), lambda i: f"element {i}")
    # log_softmax of [0, -L, -inf]: -(1 + 2**-p) (a midpoint) plus G e**-L / S with G < 0
    p = fmt.precision
    got = check("log_softmax", "x", [[[0.0, -big, -INF]], [[-4.0, 1.0, 2.0**-p]]], fmt)
    assert got.tolist() == [[-(1.0 + 2.0 ** (1 - p)), 1.0, 2.0**-p]]
    # cross_entropy at a target that is the only top: -(e**-2L) / (1 + e**-2L), a negative zero
    got = check("cross_entropy", "logits", [[[big, -big]], [0], [[1.0, 1.0]]], fmt)
    same_bits("cross_entropy [L, -L]", fmt, got, np.array([[-0.0, 0.0]]), lambda i: f"element {i}")


@pytest.mark.parametrize("fmt", ALL, ids=[f.name for f in ALL])
def test_reduction_mean_divides_by_count(fmt: Format) -> None:
    x = np.array([[1.0, 1.0], [0.0, -INF]])
    t = np.array([0, 1])
    ones = np.ones_like(x)
    assert both("cross_entropy", "logits", [x, t, ones], fmt, {"count": 4.0}).tolist() == [[-0.125, 0.125],
                                                                                           [0.25, -0.25]]
    assert both("nll_loss", "logp", [x, t, ones], fmt, {"count": 2.0}).tolist() == [[-0.5, 0.0], [0.0, -0.5]]
    p = np.array([0.5, 0.25])
    assert both("binary_cross_entropy", "p", [p, np.zeros(2), np.ones(2)], fmt, {"count": 2.0}).tolist() == [
        1.0, _round_exact(Fraction(2, 3), fmt)]


# -- the edge policy ------------------------------------------------------------------------

P = pytest.param
#: (oracle, wrt, arguments, cotangent, params, expected): the docs' table, as data
EDGES: list[Any] = [
    P("exp", "x", [[INF, -INF, 0.0]], [1.0] * 3, {}, [INF, 0.0, 1.0], id="exp-infinities"),
    P("exp", "x", [[INF, 0.0]], [0.0, INF], {}, [NAN, INF], id="exp-zero-times-inf"),
    P("log", "x", [[0.0, -0.0, -1.0, INF, -INF, 2.0]], [1.0] * 6, {}, [INF, INF, NAN, 0.0, NAN, 0.5], id="log"),
    P("log", "x", [[0.0]], [0.0], {}, [NAN], id="log-pole-times-zero"),
    P("log1p", "x", [[-1.0, -2.0, INF, 1.0]], [1.0] * 4, {}, [INF, NAN, 0.0, 0.5], id="log1p"),
    P("expm1", "x", [[INF, -INF, 0.0]], [1.0] * 3, {}, [INF, 0.0, 1.0], id="expm1"),
    P("tanh", "x", [[INF, -INF, 0.0]], [1.0] * 3, {}, [0.0, 0.0, 1.0], id="tanh"),
    P("sigmoid", "x", [[INF, -INF, 0.0, -200.0]], [1.0, 1.0, 1.0, -1.0], {}, [0.0, 0.0, 0.25, -0.0], id="sigmoid"),
    P("sigmoid", "x", [[INF]], [INF], {}, [NAN], id="sigmoid-zero-times-inf"),
    P("softplus", "x", [[INF, -INF, 0.0]], [1.0] * 3, {}, [1.0, 0.0, 0.5], id="softplus"),
    P("softplus", "x", [[INF, -INF, 0.0]], [1.0] * 3, {"beta": -2.0}, [0.0, 1.0, 0.5], id="softplus-beta<0"),
    P("log_sigmoid", "x", [[INF, -INF, 0.0]], [1.0] * 3, {}, [0.0, 1.0, 0.5], id="log_sigmoid"),
    P("silu", "x", [[INF, -INF, 0.0]], [1.0] * 3, {}, [1.0, 0.0, 0.5], id="silu"),
    P("gelu", "x", [[INF, -INF, 0.0]], [1.0] * 3, {}, [1.0, 0.0, 0.5], id="gelu"),
    P("binary_cross_entropy", "p",
      [[0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.5, 0.5, -0.0, 1.5, 0.5], [0.0, 1.0, 0.5, 0.5, 1.0, 0.0, 0.5, 0.0, 0.0, 0.0, -0.5]],
      [1.0] * 11, {}, [1.0, -1.0, -INF, INF, -INF, INF, 0.0, 2.0, 1.0, NAN, NAN], id="bce-p"),
    P("binary_cross_entropy", "y", [[0.0, 1.0, 0.5, 0.5, -1.0], [0.5, 0.5, 0.3, 2.0, 0.0]], [1.0] * 5, {},
      [INF, -INF, 0.0, NAN, NAN], id="bce-y"),
    P("binary_cross_entropy_with_logits", "x",
      [[INF, -INF, 0.0, 0.0, INF, -INF, 1.0, 0.0], [0.25, 0.25, 0.5, 0.0, INF, -INF, INF, -INF]],
      [1.0] * 8, {}, [0.75, -0.25, 0.0, 0.5, -INF, INF, NAN, NAN], id="bce-logits-x"),
    P("binary_cross_entropy_with_logits", "y", [[INF, -INF, 2.0, 0.0, 1.0], [0.5, 0.5, 0.3, 0.3, INF]], [1.0] * 5, {},
      [-INF, INF, -2.0, 0.0, NAN], id="bce-logits-y"),
    P("softmax", "x", [[[0.0, -INF], [-INF, -INF], [INF, 0.0], [1.0, 1.0]]], [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0],
                                                                              [1.0, 3.0]], {},
      [0.0, 0.0, NAN, NAN, NAN, NAN, -0.5, 0.5], id="softmax"),
    P("softmax", "x", [[[0.0, -INF], [0.0, 0.0], [0.0, -INF]]], [[1.0, INF], [INF, 0.0], [INF, 1.0]], {},
      [NAN, NAN, INF, -INF, NAN, NAN], id="softmax-infinite-cotangent"),
    P("log_softmax", "x", [[[0.0, -INF], [-INF, -INF], [1.0, 1.0]]], [[1.0, 2.0], [1.0, 1.0], [1.0, 3.0]], {},
      [-2.0, 2.0, NAN, NAN, -1.0, 1.0], id="log_softmax-masked-gets-its-cotangent"),
    P("log_softmax", "x", [[[0.0, 0.0], [0.0, -INF]]], [[INF, 0.0], [1.0, INF]], {},
      [INF, -INF, -INF, INF], id="log_softmax-infinite-cotangent"),
    P("logsumexp", "x", [[[0.0, -INF], [-INF, -INF], [INF, 0.0], [2.0, 2.0]]], [[1.0] * 2] * 4, {},
      [1.0, 0.0, NAN, NAN, NAN, NAN, 0.5, 0.5], id="logsumexp"),
    P("logsumexp", "x", [[[0.0, -INF]]], [[INF, INF]], {}, [INF, NAN], id="logsumexp-masked-times-inf"),
    P("cross_entropy", "logits", [[[0.0, -INF], [0.0, -INF], [1.0, 1.0], [-INF, -INF], [INF, 0.0], [0.0, 1.0]],
                                  [0, 1, 0, 0, 1, 2]], [[1.0] * 2] * 6, {},
      [0.0, 0.0, 1.0, -1.0, -0.5, 0.5, NAN, NAN, NAN, NAN, NAN, NAN], id="cross_entropy"),
    P("nll_loss", "logp", [[[-1.0, -INF], [INF, 2.0], [NAN, 1.0]], [1, 1, 0]], [[1.0] * 2] * 3, {},
      [0.0, -1.0, 0.0, -1.0, NAN, NAN], id="nll_loss-linear"),
]


@pytest.mark.parametrize("fmt", [FLOAT16, FLOAT32], ids=["float16", "float32"])
@pytest.mark.parametrize(("name", "wrt", "args", "cot", "params", "expected"), EDGES)
def test_edge_policy(name: str, wrt: str, args: list[Any], cot: list[Any], params: dict[str, Any],
                     expected: list[float], fmt: Format) -> None:
    arrays = [np.asarray(a) for a in args]
    if get_oracle(name).kind == "row_reduce":
        cotangent = np.asarray(cot, dtype=np.float64)
    else:
        cotangent = np.asarray(cot, dtype=np.float64).reshape(arrays[0].shape)
    got = both(name, wrt, [*arrays, cotangent], fmt, params).ravel()
    want = np.asarray(expected, dtype=np.float64)
    same_bits(f"∂{name}/∂{wrt} table", fmt, got, want, lambda i: f"element {i}")


# -- (c) mpmath's numerical differentiation at benign points -----------------------------------


def _close(got: mpf, want: mpf, label: str) -> None:
    # 2**-100: the exact part plus a correction is exact to 2**-118 by design
    assert abs(got - want) <= mp.ldexp(max(1, abs(want)), -100), f"{label}: {got} vs numerical {want}"


@pytest.mark.parametrize(("name", "params"), ELEMENTWISE, ids=[case_id(n, p) for n, p in ELEMENTWISE])
def test_elementwise_agree_with_numerical_derivative(name: str, params: dict[str, Any]) -> None:
    f = get_oracle(name).fn
    d = gradient_for(name, "x")
    assert d is not None
    points = [-6.1, -1.3, -0.6, -0.01, 0.2, 0.9, 2.5, 7.3, 30.0]
    if name == "log":
        points = [p for p in points if p > 0]
    if name == "log1p":
        points = [p for p in points if p > -1]
    with mp.workprec(240):
        for x in points:
            want = mp.diff(lambda t: f(t, **params), mpf(x))
            _close(d.fn(mpf(x), **params), want, f"{name}'({x})")


@pytest.mark.parametrize(("name", "wrt"), LOSSES, ids=[f"{n}-{w}" for n, w in LOSSES])
def test_losses_agree_with_numerical_derivative(name: str, wrt: str) -> None:
    f = get_oracle(name).fn
    d = gradient_for(name, wrt)
    assert d is not None
    pairs = [(0.3, 0.7), (0.8, 0.1), (0.55, 0.55), (0.01, 0.99), (0.999, 0.25)]
    if name == "binary_cross_entropy_with_logits":
        pairs += [(-2.5, 0.3), (4.0, 1.0), (-0.7, 0.0), (12.0, 0.5)]
    with mp.workprec(240):
        for a, b in pairs:
            if wrt == get_oracle(name).args[0].name:
                want = mp.diff(lambda t, b=b: f(t, mpf(b)), mpf(a))
            else:
                want = mp.diff(lambda t, a=a: f(mpf(a), t), mpf(b))
            _close(d.fn(mpf(a), mpf(b)), want, f"d{name}/d{wrt} at ({a}, {b})")


@pytest.mark.parametrize(("name", "wrt"), ROWS, ids=[n for n, _ in ROWS])
def test_rows_agree_with_numerical_derivative(name: str, wrt: str) -> None:
    """Each VJP entry is d/dt of sum_i g_i y_i(x + t e_j) (row-wise) or d/dt L(x + t e_j)
    (row-reducing), differentiated numerically at t = 0."""
    orc = get_oracle(name)
    d = gradient_for(name, wrt)
    assert d is not None
    rows = [[0.3, -1.2, 2.0], [5.0, 5.0, -3.5, 0.25], [-0.5, 40.0, 39.0], [1.0]]
    g_rows = [[0.7, -1.1, 0.25], [1.0, -2.0, 0.5, 3.0], [0.1, 0.2, -0.3], [2.0]]
    with mp.workprec(240):
        for row, g_row in zip(rows, g_rows, strict=True):
            x = [mpf(v) for v in row]
            g = [mpf(v) for v in g_row]
            extra = (len(row) - 1,) if len(orc.args) == 2 else ()
            if orc.kind == "rowwise":
                got = d.fn(x, *extra, cotangent=g)
            else:
                got = d.fn(x, *extra)
            for j in range(len(row)):

                def moved(t: mpf, j: int = j, x: list[mpf] = x, g: list[mpf] = g, extra: tuple[int, ...] = extra) -> mpf:
                    y = orc.fn([v + t if i == j else v for i, v in enumerate(x)], *extra)
                    return mp.fsum(gi * yi for gi, yi in zip(g, y, strict=True)) if orc.kind == "rowwise" else y

                _close(got[j], mp.diff(moved, 0), f"{name} VJP {row} col {j}")


# -- the numerical fallback for user oracles ----------------------------------------------------


def _user(name: str, fn: Callable[..., Any], kind: str = "elementwise") -> Oracle:
    """An oracle object that is not registered (so that no test leaves one behind)."""
    return Oracle(name=name, kind=kind, args=(Arg("x"),), fn=fn)  # type: ignore[arg-type]


def test_numerical_fallback_is_certified_on_smooth_points() -> None:
    cubic = _user("test_grad_cubic", lambda x: x**3 + mp.sin(x))
    derivative = _user("test_grad_cubic_prime", lambda x: 3 * x**2 + mp.cos(x))
    x = np.array([0.5, -1.25, 3.0, 1e-3, 100.0, 0.0, -7.75, 1e-30])
    assert gradient_for("test_grad_cubic", "x") is None
    for fmt in (FLOAT16, FLOAT32, FLOAT64):
        xs = _cast(fmt, x)
        got = evaluate(gradient_oracle(cubic), [xs, np.ones_like(xs)], fmt).want
        want = evaluate(derivative, [xs], fmt).want
        same_bits(f"numerical ∂cubic[{fmt}]", fmt, got, want, lambda i, xs=xs: repr(xs[i]))
        got = evaluate(gradient_oracle(cubic), [xs, np.full_like(xs, -1.0)], fmt).want
        same_bits(f"numerical ∂cubic[{fmt}] times -1", fmt, got, -want, lambda i, xs=xs: repr(xs[i]))


def test_numerical_fallback_outside_the_domain_is_nan() -> None:
    root = _user("test_grad_root", lambda x: mp.sqrt(x) if x >= 0 else mpf("nan"))
    got = evaluate(gradient_oracle(root), [np.array([-1.0, 4.0]), np.ones(2)], FLOAT32).want
    assert math.isnan(got[0]) and got[1] == 0.25


@pytest.mark.parametrize(("fn", "x", "why"), [
    P(lambda x: x**3, INF, "a limit", id="at+inf"),
    P(lambda x: x**3, -INF, "a limit", id="at-inf"),
    P(lambda x: abs(x), 0.0, "kink", id="abs-at-0"),
    P(lambda x: abs(x - 1), 1.0, "kink", id="abs-at-1"),
    P(lambda x: 1 / x if x else mpf("inf"), 0.0, "not finite", id="pole"),
])
def test_numerical_fallback_refuses(fn: Callable[..., Any], x: float, why: str) -> None:
    derived = gradient_oracle(_user("test_grad_refused", fn))
    with pytest.raises(OracleError, match="no gradient oracle for test_grad_refused") as info:
        evaluate(derived, [np.array([x]), np.ones(1)], FLOAT32)
    assert why in str(info.value) and "@gradient('test_grad_refused', wrt='x')" in str(info.value)


def test_numerical_fallback_at_a_smooth_stationary_point() -> None:
    """f' = 0 with f'' != 0: the one-sided slopes are +-h f'', which shrink with h (a
    kink's do not), so the point is certified, not refused."""
    square = _user("test_grad_square", lambda x: x * x)
    assert evaluate(gradient_oracle(square), [np.array([0.0, 3.0]), np.ones(2)], FLOAT32).want.tolist() == [0.0, 6.0]
    cosine = _user("test_grad_cos", lambda x: mp.cos(x))
    assert evaluate(gradient_oracle(cosine), [np.array([0.0]), np.ones(1)], FLOAT32).want.tolist() == [0.0]
    tiny_kink = _user("test_grad_tiny_kink", lambda x: abs(x) * mpf("1e-30"))
    with pytest.raises(OracleError, match="a kink"):
        evaluate(gradient_oracle(tiny_kink), [np.array([0.0]), np.ones(1)], FLOAT32)


def test_rowwise_user_oracle_without_gradient_is_refused() -> None:
    rowwise = _user("test_grad_rows", lambda row: list(row), kind="rowwise")
    derived = gradient_oracle(rowwise)
    with pytest.raises(OracleError, match=r"no gradient oracle for test_grad_rows .* not differentiated numerically"):
        evaluate(derived, [np.zeros((1, 2)), np.ones((1, 2))], FLOAT32)


# -- registration ------------------------------------------------------------------------------


@pytest.mark.parametrize(("oracle_name", "wrt", "match"), [
    P("softpluss", "x", r"unknown oracle 'softpluss'.*did you mean 'softplus'", id="unknown-oracle"),
    P("binary_cross_entropy", "q", r"binary_cross_entropy has no real argument 'q'; pick from: p, y", id="unknown-wrt"),
    P("cross_entropy", "logit", r"no real argument 'logit'.*did you mean 'logits'", id="did-you-mean"),
    P("cross_entropy", "target", r"target is a class index: it has no derivative", id="index-argument"),
    P("nll_loss", "target", r"class index", id="index-argument-nll"),
    P("exp", "x", r"gradient 'exp/x' is already registered by oracles\.catalogue_gradients:d_exp_d_x", id="duplicate"),
])
def test_registration_errors(oracle_name: str, wrt: str, match: str) -> None:
    before = GRADIENTS.names()
    with pytest.raises(UsageError, match=match) as info:
        @gradient(oracle_name, wrt=wrt)
        def d_other(*args: Any) -> Any:  # pragma: no cover - never called
            return args[0]
    assert "\n" not in str(info.value)
    assert GRADIENTS.names() == before
    assert gradient_for("exp", "x").fn.__name__ == "d_exp_d_x"  # type: ignore[union-attr]


def test_gradient_oracle_refuses_an_index_argument() -> None:
    with pytest.raises(UsageError, match="class index"):
        gradient_oracle("cross_entropy", "target")


# -- the registry agrees with the catalogue -------------------------------------------------------


def _builtins() -> list[Oracle]:
    return [o for o in REGISTRY if o.module == "oracles.catalogue"]


#: gradients past version 1 (their mathematics changed, which keys cached references):
#: silu', gelu' and sigmoid(z) in (-1, 0) for softplus', log_sigmoid' add a correction to
#: the exact 1/2 near 0 (version 2)
VERSIONS = {("silu", "x"): 2, ("gelu", "x"): 2, ("softplus", "x"): 2, ("log_sigmoid", "x"): 2}


def test_every_builtin_real_argument_has_a_gradient() -> None:
    builtins = _builtins()
    assert len(builtins) == 17
    expected = {(o.name, a.name) for o in builtins for a in o.real_args}
    registered = {(g.oracle, g.wrt) for g in GRADIENTS if g.module == "oracles.catalogue_gradients"}
    assert registered == expected
    for name, wrt in expected:
        g = gradient_for(name, wrt)
        assert g is not None and g.version == VERSIONS.get((name, wrt), 1)
        # the fast tiers are keyed to exactly these targets
        assert (g.fn.__module__, g.fn.__qualname__) == ("oracles.catalogue_gradients", f"d_{name}_d_{wrt}")
        derived = gradient_oracle(name, wrt)
        assert function_target(derived.fn) == f"oracles.catalogue_gradients:d_{name}_d_{wrt}"
        assert derived.name == f"∂{name}/∂{wrt}" and derived.args[-1] == Arg("cotangent")
        names = [p.name for p in derived.params]
        assert "reduction" not in names and ("count" in names) == get_oracle(name).reducible
    # the MPFR reference covers the same gradients
    assert set(gref.ELEMENTWISE) | set(gref.ROWS) == expected


def test_a_replaced_oracle_does_not_keep_the_old_definitions_gradient() -> None:
    """@oracle(..., replace=True) is other mathematics: the gradient registered for the
    old definition no longer applies (the numerical fallback, or a new @gradient, does)."""
    from oracles.registry import REGISTRY, oracle

    original = REGISTRY.get("softplus")
    try:
        @oracle("softplus", params={"beta": 1.0}, replace=True)
        def doubled(x: Any, *, beta: float = 1.0) -> Any:
            return 2 * mp.log1p(mp.exp(x))

        derived = gradient_oracle("softplus")
        assert evaluate(derived, [np.array([0.0]), np.ones(1)], FLOAT32, {"beta": 1.0}).want.tolist() == [1.0]
    finally:
        REGISTRY.add(original, replace=True)
    assert evaluate(gradient_oracle("softplus"), [np.array([0.0]), np.ones(1)], FLOAT32, {"beta": 1.0}).want.tolist() == [0.5]
