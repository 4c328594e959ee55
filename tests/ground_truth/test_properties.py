"""Declared properties (oracles/properties.py, oracles/catalogue_properties.py) hold for the
correctly rounded truth, exactly.

One helper, :func:`violations`, checks a :class:`Properties` against the results of an
oracle on given inputs; it judges the truth here, and it catches false declarations (exp
declared odd, sigmoid bounded by 0.5), so a passing sweep means something. The elementwise
oracles are swept over every float16 and bfloat16 bit pattern (the fast tier makes that
seconds); the two-argument losses over every 16th pattern paired with a set of labels (all
of them under ``--run-slow``); the row-wise ones over a few hundred random rows in float16
and float32, including ties, masked ``-inf`` entries, ``+inf`` and NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from oracles import (
    BFLOAT16,
    FLOAT16,
    FLOAT32,
    PROPERTIES,
    REGISTRY,
    Format,
    Oracle,
    Properties,
    UsageError,
    evaluate,
    get_oracle,
    properties,
    properties_of,
)
from oracles.rounding import round_float64

F64 = npt.NDArray[np.float64]
Truth = Callable[[Sequence[npt.NDArray[Any]]], F64]

ELEMENTWISE_FORMATS = [FLOAT16, BFLOAT16]
ROW_FORMATS = [FLOAT16, FLOAT32]
#: softplus' beta of either sign, and a non-integer one
SOFTPLUS_BETAS = [1.0, 0.125, -2.5]


def _truth(orc: Oracle, fmt: Format, params: dict[str, Any] | None = None, jobs: int = 1) -> Truth:
    def run(arrays: Sequence[npt.NDArray[Any]]) -> F64:
        return np.asarray(evaluate(orc, list(arrays), fmt, params, jobs=jobs).want, dtype=np.float64)
    return run


# -- the helper ---------------------------------------------------------------------------------


def _same_bits(a: F64, b: F64) -> npt.NDArray[np.bool_]:
    """Bit for bit (sign of zero included); NaN equals NaN whatever its payload."""
    both_nan = np.isnan(a) & np.isnan(b)
    return both_nan | (a.view(np.uint64) == b.view(np.uint64))


def _same_value(a: F64, b: F64) -> npt.NDArray[np.bool_]:
    """As numbers (either zero); NaN equals NaN."""
    return (np.isnan(a) & np.isnan(b)) | (a == b)


def _exact_one_minus(v: F64, fmt: Format) -> tuple[F64, npt.NDArray[np.bool_]]:
    """1 - v, and where it is exact in ``fmt`` (it is exact in float64 for the 16-bit
    formats; the second test catches a float64 rounding for wider ones)."""
    with np.errstate(invalid="ignore"):  # 1 - inf - inf is NaN, and not exact
        w = 1.0 - v
        exact = (round_float64(w, fmt) == w) & ((1.0 - w) == v)
    return w, exact


def _show(arrays: Sequence[npt.NDArray[Any]], i: int) -> str:
    return ", ".join(f"{np.asarray(a).reshape(len(arrays[0]), -1)[i].tolist()}" if np.asarray(a).ndim > 1
                     else repr(np.asarray(a)[i].item()) for a in arrays)


def _report(found: list[str], name: str, fmt: Format, what: str, bad: npt.NDArray[np.bool_],
            arrays: Sequence[npt.NDArray[Any]], got: Callable[[int], str]) -> None:
    """One line per broken property: what, the first input, what came out, how many more."""
    idx = np.flatnonzero(bad)
    if idx.size:
        i = int(idx[0])
        row = int(np.unravel_index(i, bad.shape)[0]) if bad.ndim > 1 else i  # row-wise: show the row
        found.append(f"{name}[{fmt}]: {what}: inputs ({_show(arrays, row)}) gave {got(i)};"
                     f" {idx.size} input(s) like it")


def violations(name: str, props: Properties, fmt: Format, arrays: Sequence[npt.NDArray[Any]],
               truth: Truth, seed: int = 0) -> list[str]:
    """The properties of ``props`` that the results of ``truth`` on ``arrays`` break, one
    line each (empty when all hold). ``arrays`` hold values of ``fmt`` as float64 (index
    arguments as integers), in the oracle's argument order; ``truth`` is called again on
    the transformed inputs a property compares with (negated, permuted, labels swapped)."""
    orc = get_oracle(name)
    found: list[str] = []
    arrays = [np.asarray(a) for a in arrays]
    r = truth(arrays)
    real = [i for i, a in enumerate(orc.args) if a.kind == "real"]
    x = arrays[0].astype(np.float64)
    ok = ~np.isnan(r)

    # the elements a bound or label symmetry is checked on: unit arguments in [0, 1]
    unit = np.ones(x.shape[:1] if orc.kind == "row_reduce" else x.shape, dtype=bool)
    if orc.kind == "elementwise":
        for arg in props.unit_args:
            v = arrays[[a.name for a in orc.args].index(arg)]
            unit &= (v >= 0) & (v <= 1)
    if r.shape != unit.shape:  # a reduced loss: one value for all of them
        unit = np.array(bool(unit.all()))
    # unit_domain: outside [0, 1] (or NaN) the truth is NaN, so the checks may leave it out
    if orc.kind == "elementwise" and props.unit_domain and r.shape == x.shape:
        outside = np.zeros(x.shape, dtype=bool)
        for arg in props.unit_domain:
            v = arrays[[a.name for a in orc.args].index(arg)].astype(np.float64)
            outside |= ~((v >= 0) & (v <= 1))
        _report(found, name, fmt, "NaN outside the unit domain", outside & ok, arrays,
                lambda i: repr(r.reshape(-1)[i]))

    if props.lower is not None:
        lo = props.lower
        _report(found, name, fmt, f"result >= {lo:g}", ok & unit & ~(r >= lo), arrays,
                lambda i: repr(r.reshape(-1)[i]) if r.ndim else repr(float(r)))
    if props.upper is not None:
        hi = props.upper
        _report(found, name, fmt, f"result <= {hi:g}", ok & unit & ~(r <= hi), arrays,
                lambda i: repr(r.reshape(-1)[i]) if r.ndim else repr(float(r)))

    if props.monotone:
        # within groups of equal other arguments, in the order of x; NaN inputs and results out
        others = [arrays[i].astype(np.float64) for i in real[1:]]
        keep = ok & ~np.isnan(x)
        for o in others:
            keep &= ~np.isnan(o)
        xs, rs, os_ = x[keep], r[keep], [o[keep] for o in others]
        order = np.lexsort((xs, *os_[::-1]))
        xs, rs, os_ = xs[order], rs[order], [o[order] for o in os_]
        same_group = np.ones(max(xs.size - 1, 0), dtype=bool)
        for o in os_:
            same_group &= o[1:] == o[:-1]
        in_order = rs[1:] >= rs[:-1] if props.monotone == "increasing" else rs[1:] <= rs[:-1]
        bad = same_group & ~in_order
        kept = [xs, *os_]
        _report(found, name, fmt, f"monotone {props.monotone}", bad, kept,
                lambda i: f"{rs[i]!r}, then x={xs[i + 1]!r} gave {rs[i + 1]!r}")

    if props.parity:
        with np.errstate(invalid="ignore"):
            nonzero = ~np.isnan(x) & (x != 0)  # mpmath has no signed zero: f(±0) is either zero
        r_neg = truth([-x])
        want = -r if props.parity == "odd" else r
        _report(found, name, fmt, f"parity {props.parity}", nonzero & ~_same_bits(r_neg, want), arrays,
                lambda i: f"{r[i]!r}, but -x gave {r_neg[i]!r}")

    if props.label_symmetry:
        a, y = (arrays[i].astype(np.float64) for i in real[:2])
        y2, exact = _exact_one_minus(y, fmt)
        if props.label_symmetry == "logits":
            a2 = -a
        else:
            a2, exact_a = _exact_one_minus(a, fmt)
            exact &= exact_a
        swapped = list(arrays)
        swapped[real[0]], swapped[real[1]] = a2, y2
        if r.ndim == 0:  # reduced: all or nothing
            exact = np.array(bool(exact.all()))
            r2 = truth(swapped)
        else:
            r2 = np.full_like(r, np.nan)
            if exact.any():
                r2[exact] = truth([s[exact] for s in swapped])
        _report(found, name, fmt, f"label symmetry ({props.label_symmetry})", unit & exact & ~_same_value(r, r2),
                arrays, lambda i: f"{r.reshape(-1)[i]!r}, swapped {r2.reshape(-1)[i]!r}")

    if props.at_least_row_max:
        with np.errstate(invalid="ignore"):
            row_max = np.max(x, axis=1)
            bad = ok & ~(r >= (row_max[:, None] if r.ndim == 2 else row_max))
        _report(found, name, fmt, "result >= row max", bad, arrays,
                lambda i: f"{r.reshape(-1)[i]!r} below the row max {row_max[np.unravel_index(i, r.shape)[0]]!r}")

    if props.permutation:
        rng = np.random.default_rng(seed)
        perm = np.argsort(rng.random(x.shape), axis=1)
        moved = list(arrays)
        for i in real:
            moved[i] = np.take_along_axis(arrays[i], perm, axis=1)
        for i, spec in enumerate(orc.args):
            if spec.kind == "index":  # the class follows its entry: new position of the old target
                moved[i] = np.argmax(perm == np.asarray(arrays[i])[:, None], axis=1).astype(arrays[i].dtype)
        r_p = truth(moved)
        if props.permutation == "equivariant":
            want = np.take_along_axis(r, perm, axis=1)
            bad = np.asarray(~_same_bits(r_p, want).all(axis=1))
        else:
            want = r
            bad = ~_same_bits(np.atleast_1d(r_p), np.atleast_1d(want))
        _report(found, name, fmt, f"permutation {props.permutation}", bad, moved,
                lambda i: f"{np.atleast_1d(r_p)[i]!r}, unpermuted {np.atleast_1d(want)[i]!r}")
    return found


# -- inputs ---------------------------------------------------------------------------------


def _all_patterns(fmt: Format, every: int = 1) -> F64:
    with np.errstate(invalid="ignore"):
        return fmt.to_float64(fmt.from_bits(fmt.all_bit_patterns()[::every]))


def _labels(fmt: Format) -> F64:
    """Labels of ``fmt``: the ends, exact halves and quarters, values whose 1 - y is not
    exact (near 0), the neighbours of 0 and 1, and two outside [0, 1]."""
    raw = [0.0, 1.0, 0.5, 0.25, 0.75, 0.1, 0.9, 1e-3, fmt.smallest_subnormal, 1 - 2.0 ** -fmt.precision,
           2.0, -0.5, -0.0]
    return np.unique(round_float64(np.array(raw), fmt))


def _pairs(first: F64, labels: F64) -> tuple[F64, F64]:
    return np.repeat(first, labels.size), np.tile(labels, first.size)


def _rows(fmt: Format, width: int, n: int, seed: int) -> F64:
    """Rows of ``fmt`` values: moderate normals, wide uniforms (within 1e5, so that the
    mpmath path of the losses sums quickly), ties, masked -inf, and rare +inf and NaN."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 4, (n, 1))
    v = np.where(kind == 0, rng.normal(0, 3, (n, width)),
                 np.where(kind == 1, rng.uniform(-1e4, 1e4, (n, width)),
                          np.where(kind == 2, rng.normal(-5, 30, (n, width)), rng.integers(-3, 3, (n, width)))))
    special = rng.random((n, width))
    v = np.where(special < 0.08, -np.inf, v)
    v = np.where((special > 0.995), np.inf, v)
    v = np.where((special > 0.99) & (special <= 0.995), np.nan, v)
    with np.errstate(over="ignore", invalid="ignore"):
        return round_float64(v, fmt)


def _row_inputs(orc: Oracle, fmt: Format, width: int, n: int, seed: int) -> list[npt.NDArray[Any]]:
    rows = _rows(fmt, width, n, seed)
    out: list[npt.NDArray[Any]] = [rows]
    for arg in orc.args[1:]:
        out.append(np.random.default_rng(seed + 1).integers(0, width, n) if arg.kind == "index"
                   else _rows(fmt, width, n, seed + 2))
    return out


# -- the truth keeps every declaration -------------------------------------------------------------

UNARY = [o.name for o in REGISTRY if o.module == "oracles.catalogue" and o.kind == "elementwise"
         and len(o.args) == 1]
BINARY = [o.name for o in REGISTRY if o.module == "oracles.catalogue" and o.kind == "elementwise"
          and len(o.args) == 2]
ROWS = [o.name for o in REGISTRY if o.module == "oracles.catalogue" and o.kind != "elementwise"]


def _unary_cases() -> list[Any]:
    cases = []
    for name in UNARY:
        for params in ([{"beta": b} for b in SOFTPLUS_BETAS] if name == "softplus" else [None]):
            for fmt in ELEMENTWISE_FORMATS:
                pid = f"{name}-{fmt}" + (f"-beta={params['beta']:g}" if params else "")
                cases.append(pytest.param(name, params, fmt, id=pid))
    return cases


@pytest.mark.parametrize(("name", "params", "fmt"), _unary_cases())
def test_every_16_bit_pattern_keeps_the_declared_properties(name: str, params: dict[str, Any] | None,
                                                            fmt: Format) -> None:
    props = properties_of(name, params)
    if props.empty:
        pytest.skip(f"{name} declares no properties")
    found = violations(name, props, fmt, [_all_patterns(fmt)], _truth(get_oracle(name), fmt, params))
    assert not found, "\n".join(found)


def _binary_case(name: str, fmt: Format, every: int) -> None:
    orc = get_oracle(name)
    first = _all_patterns(fmt, every)
    if name == "binary_cross_entropy":  # probabilities: p outside [0, 1] is NaN, so a share is enough
        inside = (first >= 0) & (first <= 1)
        first = np.concatenate([first[inside], first[~inside][::16]])
    arrays = _pairs(first, _labels(fmt))
    found = violations(name, properties_of(name), fmt, list(arrays), _truth(orc, fmt, jobs=2))
    assert not found, "\n".join(found)


@pytest.mark.parametrize("fmt", ELEMENTWISE_FORMATS, ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary_losses_keep_their_properties_on_a_share(name: str, fmt: Format) -> None:
    _binary_case(name, fmt, every=61)  # prime: a spread of exponents and mantissas


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ELEMENTWISE_FORMATS, ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary_losses_keep_their_properties_on_every_pattern(name: str, fmt: Format) -> None:
    _binary_case(name, fmt, every=1)


@pytest.mark.parametrize("fmt", ROW_FORMATS, ids=str)
@pytest.mark.parametrize("name", ROWS)
def test_row_oracles_keep_their_properties_on_random_rows(name: str, fmt: Format) -> None:
    orc = get_oracle(name)
    props = properties_of(name)
    assert not props.empty
    found: list[str] = []
    for k, width in enumerate((1, 2, 3, 5, 8)):
        arrays = _row_inputs(orc, fmt, width, 60, seed=17 * k)
        found += violations(name, props, fmt, arrays, _truth(orc, fmt), seed=k)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy",
                                  "nll_loss"])
def test_reduced_losses_keep_their_properties(name: str, reduction: str) -> None:
    orc = get_oracle(name)
    fmt = FLOAT32
    params = {"reduction": reduction}
    props = properties_of(name, params)
    if orc.kind == "elementwise":
        rng = np.random.default_rng(3)
        first = rng.random(40) if name == "binary_cross_entropy" else rng.normal(0, 4, 40)
        labels = rng.integers(0, 5, 40) / 4  # in [0, 1], 1 - y exact
        arrays: list[npt.NDArray[Any]] = [round_float64(first, fmt), labels]
        if name == "binary_cross_entropy":  # 1 - p exact too
            arrays[0] = np.round(arrays[0] * 1024) / 1024
    else:
        arrays = _row_inputs(orc, fmt, 4, 30, seed=5)
        arrays[0] = np.where(np.isfinite(arrays[0]), arrays[0], 0.0)  # one NaN would make the mean NaN
    found = violations(name, props, fmt, arrays, _truth(orc, fmt, params))
    assert not found, "\n".join(found)


# -- false declarations are caught ---------------------------------------------------------------

FALSE = [
    pytest.param("exp", Properties(parity="odd"), "parity odd", id="exp-odd"),
    pytest.param("exp", Properties(monotone="decreasing"), "monotone decreasing", id="exp-decreasing"),
    pytest.param("sigmoid", Properties(upper=0.5), "result <= 0.5", id="sigmoid-upper-half"),
    pytest.param("silu", Properties(monotone="increasing"), "monotone increasing", id="silu-increasing"),
    pytest.param("gelu", Properties(lower=0.0), "result >= 0", id="gelu-non-negative"),
    pytest.param("tanh", Properties(parity="even"), "parity even", id="tanh-even"),
]


@pytest.mark.parametrize(("name", "props", "what"), FALSE)
def test_a_false_elementwise_declaration_is_caught(name: str, props: Properties, what: str) -> None:
    fmt = FLOAT16
    found = violations(name, props, fmt, [_all_patterns(fmt, 7)], _truth(get_oracle(name), fmt))
    assert found and what in found[0], found
    assert found[0].startswith(f"{name}[float16]: {what}: inputs (")


FALSE_BINARY = [
    pytest.param("binary_cross_entropy_with_logits", Properties(lower=0.0), "result >= 0", id="bcewl-lower-any-label"),
    pytest.param("binary_cross_entropy", Properties(label_symmetry="logits"), "label symmetry (logits)",
                 id="bce-logits-symmetry"),
    pytest.param("binary_cross_entropy_with_logits", Properties(label_symmetry="probabilities", unit_args=("y",)),
                 "label symmetry (probabilities)", id="bcewl-probability-symmetry"),
    # the logit loss is a number for any label: leaving y outside [0, 1] out of every check
    # would hide what an implementation does there
    pytest.param("binary_cross_entropy_with_logits", Properties(unit_domain=("y",)), "NaN outside the unit domain",
                 id="bcewl-label-domain"),
]


@pytest.mark.parametrize(("name", "props", "what"), FALSE_BINARY)
def test_a_false_loss_declaration_is_caught(name: str, props: Properties, what: str) -> None:
    fmt = FLOAT16
    arrays = _pairs(round_float64(np.array([-10.0, -1.0, 0.0, 0.25, 0.5, 0.75, 1.0, 3.0, 10.0]), fmt), _labels(fmt))
    found = violations(name, props, fmt, list(arrays), _truth(get_oracle(name), fmt))
    assert found and what in found[0], found


FALSE_ROWS = [
    pytest.param("logsumexp", Properties(lower=0.0), "result >= 0", id="logsumexp-non-negative"),
    pytest.param("softmax", Properties(upper=0.5), "result <= 0.5", id="softmax-below-half"),
    pytest.param("nll_loss", Properties(lower=0.0), "result >= 0", id="nll-non-negative"),
    pytest.param("log_softmax", Properties(at_least_row_max=True), "result >= row max", id="log-softmax-row-max"),
    pytest.param("softmax", Properties(permutation="invariant"), "permutation invariant", id="softmax-invariant"),
]


@pytest.mark.parametrize(("name", "props", "what"), FALSE_ROWS)
def test_a_false_row_declaration_is_caught(name: str, props: Properties, what: str) -> None:
    orc = get_oracle(name)
    fmt = FLOAT32
    arrays = _row_inputs(orc, fmt, 4, 40, seed=9)
    found = violations(name, props, fmt, arrays, _truth(orc, fmt))
    assert found and what in found[0], found


def test_a_class_index_that_does_not_follow_its_entry_is_caught() -> None:
    """An implementation that permutes the logits but keeps the old target position breaks
    cross_entropy's invariance; the helper moves the target with its entry, so it sees it."""
    orc = get_oracle("cross_entropy")
    fmt = FLOAT32
    arrays = _row_inputs(orc, fmt, 4, 40, seed=9)
    truth = _truth(orc, fmt)

    def stale_target(a: Sequence[npt.NDArray[Any]]) -> F64:
        return truth([a[0], arrays[1]])

    found = violations("cross_entropy", properties_of("cross_entropy"), fmt, arrays, stale_target)
    assert found and "permutation invariant" in found[0], found


# -- the registry ---------------------------------------------------------------------------------


def test_every_builtin_oracle_has_a_declaration() -> None:
    builtins = {o.name for o in REGISTRY if o.module == "oracles.catalogue"}
    declared = {d.oracle for d in PROPERTIES if d.module == "oracles.catalogue_properties"}
    assert declared == builtins


def test_the_declarations_say_what_the_brief_says() -> None:
    assert properties_of("exp") == Properties(monotone="increasing", lower=0.0)
    assert properties_of("tanh") == Properties(monotone="increasing", parity="odd", lower=-1.0, upper=1.0)
    assert properties_of("softplus") == Properties(monotone="increasing", lower=0.0)
    assert properties_of("softplus", {"beta": -2}) == Properties(monotone="increasing", upper=0.0)
    assert properties_of("silu").empty and properties_of("gelu").empty
    assert properties_of("logsumexp") == Properties(at_least_row_max=True, permutation="invariant")
    assert properties_of("binary_cross_entropy_with_logits").unit_args == ("y",)
    assert properties_of("cross_entropy", {"reduction": "mean"}).lower == 0.0


def test_describe_gives_one_sentence_per_property() -> None:
    lines = properties_of("tanh").describe()
    assert lines == [
        "Weakly increasing in its first argument: a larger input never gives a smaller result"
        " (inputs whose result is NaN aside).",
        "Odd: f(-x) is -f(x) bit for bit (at x = ±0 a zero of either sign; NaN results equal).",
        "Every result that is not NaN lies in [-1, 1].",
    ]
    assert properties_of("binary_cross_entropy_with_logits").describe()[0] == (
        "Every result that is not NaN is >= 0 for y in [0, 1].")
    assert Properties().describe() == []
    for d in PROPERTIES:
        for line in properties_of(d.oracle).describe():
            assert line.endswith(".") and "\n" not in line


def test_an_oracle_without_a_declaration_has_none() -> None:
    assert properties_of("no_such_oracle") == Properties()
    assert properties_of("no_such_oracle", {"beta": 2}) == Properties()


def test_registering_twice_is_an_error_unless_replace() -> None:
    original = PROPERTIES.get("exp")
    with pytest.raises(UsageError, match=r"property declaration 'exp' is already registered by"
                       r" oracles\.catalogue_properties:_exp; .* pass replace=True") as info:
        @properties("exp")
        def _again() -> Properties:  # pragma: no cover - refused before use
            return Properties()
    assert "\n" not in str(info.value)
    assert PROPERTIES.get("exp") is original
    try:
        @properties("exp", replace=True)
        def _mine() -> Properties:
            return Properties(lower=0.0)

        assert properties_of("exp") == Properties(lower=0.0)
    finally:
        PROPERTIES.add(original, replace=True)
    assert properties_of("exp").monotone == "increasing"


def _declare(name: str, fn: Callable[..., Any]) -> None:
    properties(name, replace=True)(fn)


@pytest.mark.parametrize(("name", "fn", "match"), [
    pytest.param("no_such_oracle", lambda: Properties(), r"unknown oracle 'no_such_oracle'", id="unknown-oracle"),
    pytest.param("softplus", lambda alpha: Properties(), r"takes 'alpha', which is not a parameter of softplus;"
                 r" pick from: beta", id="unknown-parameter"),
    pytest.param("exp", lambda beta: Properties(), r"exp takes no parameters", id="parameter-of-none"),
    pytest.param("softmax", lambda: Properties(parity="odd"), r"parity is for elementwise", id="parity-of-rows"),
    pytest.param("logsumexp", lambda: Properties(permutation="equivariant"), r"is for rowwise oracles",
                 id="equivariant-reduce"),
    pytest.param("exp", lambda: Properties(at_least_row_max=True), r"at_least_row_max is for row_reduce",
                 id="row-max-elementwise"),
    pytest.param("binary_cross_entropy", lambda: Properties(unit_args=("q",)), r"unit_args names 'q'",
                 id="unknown-unit-arg"),
    pytest.param("exp", lambda: Properties(label_symmetry="logits"), r"label_symmetry is for elementwise losses",
                 id="label-symmetry-unary"),
    pytest.param("exp", lambda: {"lower": 0}, r"returned dict, not Properties", id="not-properties"),
])
def test_declaration_errors_are_one_line(name: str, fn: Callable[..., Any], match: str) -> None:
    before = {d.oracle: d for d in PROPERTIES}
    with pytest.raises(UsageError, match=match) as info:
        _declare(name, fn)
    assert "\n" not in str(info.value)
    assert {d.oracle: d for d in PROPERTIES} == before
    assert all(PROPERTIES.get(k) is v for k, v in before.items())


@pytest.mark.parametrize(("kwargs", "match"), [
    pytest.param({"monotone": "up"}, r"monotone='up' is not valid; pick from: .*increasing", id="monotone"),
    pytest.param({"parity": "odd!"}, r"parity='odd!' is not valid", id="parity"),
    pytest.param({"permutation": "equivariance"}, r"did you mean 'equivariant'", id="permutation"),
    pytest.param({"label_symmetry": "logit"}, r"label_symmetry='logit'", id="label-symmetry"),
    pytest.param({"lower": 0.1}, r"not exactly representable in float16", id="bound-not-representable"),
    pytest.param({"upper": float("inf")}, r"must be a finite number", id="bound-infinite"),
    pytest.param({"lower": 1.0, "upper": 0.0}, r"lower=1.0 is above upper=0.0", id="empty-range"),
    pytest.param({"unit_args": "y"}, r"must be a tuple of argument names", id="unit-args-string"),
])
def test_invalid_properties_are_one_line_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(UsageError, match=match) as info:
        Properties(**kwargs)
    assert "\n" not in str(info.value)


def test_parameters_are_validated_when_looked_up() -> None:
    with pytest.raises(UsageError, match="outside its domain"):
        properties_of("softplus", {"beta": 0})
    with pytest.raises(UsageError, match="unknown parameter 'alpha'"):
        properties_of("softplus", {"alpha": 1})


def test_a_replaced_oracle_does_not_keep_the_old_properties() -> None:
    from mpmath import mp

    from oracles.registry import oracle

    original = REGISTRY.get("exp")
    try:
        @oracle("exp", replace=True)
        def _negated(x: Any) -> Any:
            return -mp.exp(x)

        assert properties_of("exp") == Properties()
    finally:
        REGISTRY.add(original, replace=True)
    assert properties_of("exp").lower == 0.0
