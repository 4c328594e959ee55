"""Consistency checks (harness/execution/consistency.py) with pure-numpy implementations:
a consistent one passes every check it is given, and each planted fault (a scalar tail, a
length threshold, a layout path, nondeterminism, a non-monotone point, a broken symmetry
or bound, an order-dependent row) is caught with its exact counts, lengths and positions.
Also the ULP distance the checks compare with (harness/judgement/consistency.py).

Layer: execution, without a framework: every ``call`` is numpy, so the module needs no
torch and runs in a few seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from harness.execution.consistency import DEFAULT_TOLERANCE, PROBE_ROWS, CallFailed, Subject, row_lengths, run_check
from harness.judgement.consistency import CHECKS, Consistency, differs, ulp_distance
from harness.plan.consistency import signature
from harness.plan.inputs import Batch
from oracles import UsageError, get_format
from oracles.formats import Format
from oracles.properties import Properties, properties_of

F16 = get_format("float16")
BF16 = get_format("bfloat16")
F32 = get_format("float32")
F64 = get_format("float64")

Array = npt.NDArray[Any]


def subject(oracle: str = "", fmt: Format = F32, props: Properties | None = None, *, framework: str = "torch",
            device: str = "cpu", **kw: Any) -> Subject:
    orc = signature(oracle)
    if props is None:
        props = properties_of(orc.name) if orc.name else Properties()
    return Subject(oracle=orc, params={}, props=props, fmt=fmt, device=device, framework=framework, **kw)


def rounded(fn: Callable[..., Array], out: Any) -> Callable[..., Array]:
    """``fn`` computed in float64 and rounded once into ``out``: the same answer for an
    input wherever it sits."""

    def go(*arrays: Array) -> Array:
        with np.errstate(all="ignore"):
            return np.asarray(fn(*(np.asarray(a, dtype=np.float64) for a in arrays))).astype(out)

    return go


def elementwise(fn: Callable[..., Array]) -> Callable[[Sequence[Array], str, str], Array]:
    """A ``Call`` that ignores the layout and device."""
    return lambda arrays, layout, device: fn(*arrays)


def nudge(y: Array, ulps: int = 1) -> Array:
    """``y`` moved ``ulps`` bit patterns up in magnitude (finite, non-zero values only)."""
    fmt = get_format(y.dtype.name)
    bits = y.view(fmt.uint_dtype).copy()
    ok = np.isfinite(y.astype(np.float64)) & (y != 0)
    bits[ok] += ulps
    return bits.view(y.dtype)


def spread(total: int, budget: int) -> Array:
    """The documented probe selection."""
    return np.arange(total) if total <= budget else (np.arange(budget) * total) // budget


exp32 = rounded(np.exp, np.float32)
X = np.linspace(-5.0, 5.0, 3003).astype(np.float32)  # finite, exp(x) normal: every nudge shows
EVERY16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
NAN16 = int(np.isnan(EVERY16).sum())


def contexts(c: Consistency) -> dict[str, tuple[int, int]]:
    return {name: (n, d) for name, n, d in c.contexts}


# -- a consistent implementation ------------------------------------------------------------


@pytest.mark.parametrize("check", ["position", "layout", "repeat", "monotone", "bounds"])
def test_a_consistent_exp_passes_every_check(check: str) -> None:
    c = run_check(check, subject("exp", probes=512), [Batch((X,))], elementwise(exp32))
    assert c.compared > 0 and c.differing == 0 and c.consistent, c.headline()
    assert c.tolerance == DEFAULT_TOLERANCE[check] == 0
    assert c.examples == () and c.lengths == () and c.positions == ()
    assert c.headline() == f"consistent ({c.compared} comparisons)"


def test_the_position_check_calls_every_length_and_position_once_per_probe_chunk() -> None:
    seen: list[int] = []

    def call(arrays: Sequence[Array], layout: str, device: str) -> Array:
        seen.append(arrays[0].size)
        assert layout == "contiguous" and device == "cpu"
        return exp32(arrays[0])

    c = run_check("position", subject("exp", probes=100, max_length=7), [Batch((X,))], call)
    # lengths 1-7, each in ceil(100 / L) calls of exactly L, then the batch whole, and
    # again as (n/16, 16) and (n/64, 4, 16), padded to 3,008
    padded = -(-X.size // 64) * 64
    want = [L for L in range(1, 8) for _ in range(-(-100 // L))] + [X.size, padded, padded]
    assert seen == want
    assert contexts(c) == {**{f"length {L}": (-(-100 // L) * L, 0) for L in range(2, 8)}, "batch": (100, 0),
                           "batch (n/16, 16)": (100, 0), "batch (n/64, 4, 16)": (100, 0)}


def test_few_inputs_wrap_around_to_fill_every_length() -> None:
    x = np.array([0.5, 1.5, -2.0], dtype=np.float32)
    sizes: list[int] = []

    def call(arrays: Sequence[Array], layout: str, device: str) -> Array:
        sizes.append(arrays[0].size)
        return exp32(arrays[0])

    c = run_check("position", subject("exp"), [Batch((x,))], call)
    assert sizes[:3] == [1, 1, 1] and sizes[3:5] == [2, 2] and sizes[-4:] == [65, 3, 64, 64]
    assert contexts(c)["length 65"] == (65, 0) and contexts(c)["batch"] == (3, 0)


# -- planted faults -----------------------------------------------------------------------------


def tail_nudged(x: Array) -> Array:
    """A vectorised body of 8 and a scalar tail that rounds differently (1 ulp up): the
    tail exists only behind a body, as in a kernel whose short tensors take the body's
    scalar twin."""
    y = exp32(x)
    n = x.size
    tail = n % 8
    if n >= 8 and tail:
        y[n - tail:] = nudge(y[n - tail:])
    return y


def test_position_names_the_lengths_and_positions_of_a_scalar_tail() -> None:
    probes = 512
    c = run_check("position", subject("exp", probes=probes), [Batch((X,))], elementwise(tail_nudged))
    tails = [L for L in range(9, 66) if L % 8]
    assert c.lengths == tuple(tails)
    assert c.positions == tuple(sorted({p for L in tails for p in range(L - L % 8, L)}))
    chosen = spread(X.size, probes)
    last = X.size - X.size % 8  # the batch of 3003 has a tail of 3
    want = {f"length {L}": (-(-probes // L) * L, -(-probes // L) * (L % 8 if L in tails else 0))
            for L in range(2, 66)}
    want["batch"] = (probes, int((chosen >= last).sum()))
    # padded to 3,008 = 376 * 8, the shaped batches have no tail
    want["batch (n/16, 16)"] = want["batch (n/64, 4, 16)"] = (probes, 0)
    assert contexts(c) == want
    assert c.differing == sum(d for _, d in want.values()) and c.max_ulp == 1
    first = c.examples[0]
    assert first.context == "at length 9, position 8" and first.expected.startswith("alone 0x")
    # probe 0 comes round again at the end of length 9: 512 = 56 * 9 + 8
    assert first.index == 0 and first.ulp == 1
    assert "at length 9, position 8; alone 0x" in first.describe()
    assert c.headline().startswith(f"{c.differing} of {c.compared} comparisons differ (lengths 9-15, 17-23")


def test_a_scalar_path_for_short_tensors_shows_at_every_length_of_the_body() -> None:
    """The reference is each value alone: where short tensors take the scalar path, the
    vectorised body is what differs, at every length it runs (8 and more)."""

    def scalar_short(x: Array) -> Array:
        y = exp32(x)
        body = x.size - x.size % 8
        y[:body] = nudge(y[:body])
        return y

    c = run_check("position", subject("exp", probes=256), [Batch((X,))], elementwise(scalar_short))
    assert c.lengths == tuple(range(8, 66))
    assert c.positions == tuple(range(64))


def test_position_catches_the_softplus_shape_long_tensors_only() -> None:
    """torch's float32 softplus: one value in a long tensor, another alone."""

    def long_only(x: Array) -> Array:
        y = exp32(x)
        return nudge(y) if x.size > 16 else y

    c = run_check("position", subject("exp", probes=300), [Batch((X,))], elementwise(long_only))
    assert c.lengths == tuple(range(17, 66)) and c.positions == tuple(range(65))
    ctx = contexts(c)
    assert all(ctx[f"length {L}"][1] == 0 for L in range(2, 17))
    assert all(ctx[f"length {L}"][1] == ctx[f"length {L}"][0] for L in range(17, 66))
    assert ctx["batch"] == (300, 300)
    # one example per input, in input order, each at the first length where it differed
    assert [e.index for e in c.examples] == list(spread(X.size, 300)[:10])
    assert {e.context.split(",")[0] for e in c.examples} == {"at length 17"}


def test_layout_compares_every_view_with_contiguous() -> None:
    shapes: dict[str, tuple[int, ...]] = {}

    def call(arrays: Sequence[Array], layout: str, device: str) -> Array:
        shapes[layout] = arrays[0].shape
        y = exp32(arrays[0])
        return y if layout == "contiguous" else nudge(y)

    c = run_check("layout", subject("exp"), [Batch((X,))], call)
    padded = -(-X.size // 16) * 16
    assert shapes == {"contiguous": (X.size,), "transposed": (padded // 8, 8), "strided": (X.size,),
                      "offset": (X.size,), "channels_last": (padded // 16, 4, 2, 2)}
    assert contexts(c) == {k: (X.size, X.size) for k in ("transposed", "strided", "offset", "channels_last")}
    assert c.examples[0].context == "in the transposed layout" and c.examples[0].expected.startswith("contiguous ")
    assert c.notes == ()


def test_layouts_a_framework_lacks_are_skipped_with_their_reason() -> None:
    c = run_check("layout", subject("exp", framework="numpy"), [Batch((X,))], elementwise(exp32))
    assert set(contexts(c)) == {"transposed", "strided", "offset"} and c.consistent
    assert c.notes == ("channels_last: channels-last is a torch memory format; numpy has none",)


def test_the_padding_of_a_reshaped_layout_is_not_compared() -> None:
    """Pad elements repeat the first ones: a call that breaks only past the real elements
    of the padded view is consistent."""

    def call(arrays: Sequence[Array], layout: str, device: str) -> Array:
        y = exp32(arrays[0]).ravel()
        y[X.size:] = np.nan
        return y

    assert run_check("layout", subject("exp"), [Batch((X,))], call).consistent


def test_rows_keep_their_shape_in_every_layout() -> None:
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(40, 10)).astype(np.float32)
    seen: dict[str, tuple[int, ...]] = {}

    def softmax(arrays: Sequence[Array], layout: str, device: str) -> Array:
        seen[layout] = arrays[0].shape
        x = arrays[0].astype(np.float64)
        e = np.exp(x - x.max(axis=1, keepdims=True))
        y = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        if layout == "strided":
            y[:, 3] = nudge(y[:, 3])
        return y

    c = run_check("layout", subject("softmax"), [Batch((rows,))], softmax)
    assert seen == {k: (40, 10) for k in ("contiguous", "transposed", "strided", "offset")}
    assert contexts(c) == {"transposed": (400, 0), "strided": (400, 40), "offset": (400, 0)}
    assert c.notes == ("channels_last: channels-last needs 4-D tensors (N, C, H, W), got 2-D",)
    assert c.examples[0].context == "in the strided layout, column 3" and c.examples[0].index == 0
    assert c.examples[0].input[:8] == tuple(F32.hex_of_bits(int(b)) for b in rows[0, :8].view(np.uint32))
    assert c.examples[0].input[8] == "..."


def test_repeat_catches_a_second_call_that_differs() -> None:
    calls = [0]

    def flaky(arrays: Sequence[Array], layout: str, device: str) -> Array:
        calls[0] += 1
        y = exp32(arrays[0])
        return nudge(y) if calls[0] % 2 == 0 else y

    c = run_check("repeat", subject("exp"), [Batch((X,)), Batch((X[:100],))], flaky)
    assert contexts(c) == {"second call": (X.size + 100, X.size + 100)}
    assert c.examples[0].context == "on the second call" and c.examples[0].expected.startswith("first call ")
    # the second batch's elements follow the first's in the cell's inputs
    assert [e.index for e in c.examples] == list(range(10))


def test_device_compares_cuda_with_the_cpu() -> None:
    def call(arrays: Sequence[Array], layout: str, device: str) -> Array:
        y = exp32(arrays[0])
        return nudge(y, 3) if device == "cuda" else y

    on_cpu = run_check("device", subject("exp"), [Batch((X,))], call)
    assert on_cpu.compared == 0 and on_cpu.notes and "cpu" in on_cpu.notes[0]
    on_cuda = run_check("device", subject("exp", device="cuda"), [Batch((X,))], call)
    assert contexts(on_cuda) == {"cuda": (X.size, X.size)} and on_cuda.max_ulp == 3
    assert on_cuda.examples[0].expected.startswith("cpu ")


def test_monotone_counts_the_exact_pairs_out_of_order() -> None:
    exp16 = rounded(np.exp, np.float16)

    def planted(x: Array) -> Array:
        y = exp16(x)
        y[(x == 0) & np.signbit(x)] = np.float16(1.0009765625)  # exp(-0) != exp(+0)
        y[x == np.float16(0.5)] = nudge(y[x == np.float16(0.5)], 4)  # above exp(next_up(0.5))
        return y

    clean = run_check("monotone", subject("exp", F16), [Batch((EVERY16,))], elementwise(exp16))
    assert contexts(clean) == {"adjacent inputs": (65536 - NAN16 - 2, 0), "equal inputs": (1, 0)}
    c = run_check("monotone", subject("exp", F16), [Batch((EVERY16,))], elementwise(planted))
    # -0 > +0's answer: equal inputs; 1.0009765625 at 0 then 1.0 at the smallest subnormal;
    # exp(0.5) + 4 ulps then exp(0.50049), itself 1 ulp above exp(0.5): 3 ulps out of order
    assert contexts(c) == {"adjacent inputs": (65536 - NAN16 - 2, 2), "equal inputs": (1, 1)}
    half = np.array([0.5], np.float16)
    step = int(exp16(F16.next_up(half)).view(np.uint16)[0]) - int(exp16(half).view(np.uint16)[0])
    assert step == 1 and c.max_ulp == 4 - step
    by_input = {e.input_values[0]: e for e in c.examples}
    assert by_input["-0.0"].context == "beside the equal input x = 0x0000 (0.0)"
    assert by_input["-0.0"].expected == "the same as 0x3c00"
    sub = by_input[repr(2.0**-24)]
    assert sub.context == "above x = 0x8000 (-0.0)" and sub.expected == "at least 0x3c01" and sub.got == "0x3c00"


def test_monotone_compares_float32_inputs_with_their_next_values() -> None:
    x = np.linspace(0.01, 0.99, 500).astype(np.float32)
    neighbours = F32.next_up(x)

    def call(arrays: Sequence[Array], layout: str, device: str) -> Array:
        y = exp32(arrays[0])
        hit = np.isin(arrays[0].view(np.uint32), neighbours.view(np.uint32))
        y[hit] = F32.next_down(F32.next_down(y[hit]))  # 2 ulps low: below exp(previous input)
        return y

    c = run_check("monotone", subject("exp"), [Batch((x,))], call)
    assert contexts(c) == {"adjacent inputs": (999, 500)}
    assert c.examples[0].input == (F32.hex_of_bits(int(neighbours[:1].view(np.uint32)[0])),)


def test_monotone_applies_to_one_argument_elementwise_oracles() -> None:
    props = Properties(monotone="increasing")
    rows = np.zeros((3, 4), dtype=np.float32)
    c = run_check("monotone", subject("softmax", props=props), [Batch((rows,))], elementwise(exp32))
    assert c.compared == 0 and "one-argument elementwise" in c.notes[0]


def test_symmetry_catches_a_tanh_that_is_not_odd() -> None:
    tanh16 = rounded(np.tanh, np.float16)

    def lopsided(x: Array) -> Array:
        y = tanh16(x)
        neg = np.signbit(x) & ~np.isnan(x)
        bits = y.view(np.uint16)
        bits[neg & (y != 0)] -= 1  # one ulp toward zero for negative x
        return y

    assert run_check("symmetry", subject("tanh", F16), [Batch((EVERY16,))], elementwise(tanh16)).consistent
    c = run_check("symmetry", subject("tanh", F16), [Batch((EVERY16,))], elementwise(lopsided))
    assert contexts(c) == {"f(-x) = -f(x)": (65536 - NAN16, 65536 - NAN16 - 2)}
    assert c.max_ulp == 1 and c.tolerance == 0
    first = c.examples[0]  # x = 0x0001: f(-x) = f(0x8001) is nudged
    assert first.index == 1 and first.input == ("0x8001",) and first.context == "as f(-x)"
    assert first.expected.startswith("-f(x) = ")


def test_an_odd_function_may_give_either_zero_at_zero() -> None:
    def unsigned_zero(x: Array) -> Array:
        y = rounded(np.tanh, np.float16)(x)
        y[y == 0] = 0.0  # +0 for -0 too
        return y

    x = np.array([-0.0, 0.0, 1.0, -2.0], dtype=np.float16)
    assert run_check("symmetry", subject("tanh", F16), [Batch((x,))], elementwise(unsigned_zero)).consistent


def test_even_parity() -> None:
    props = Properties(parity="even")
    square = rounded(np.square, np.float32)
    assert run_check("symmetry", subject(props=props), [Batch((X,))], elementwise(square)).consistent
    c = run_check("symmetry", subject(props=props), [Batch((X,))],
                  elementwise(lambda x: np.where(x < 0, nudge(square(x)), square(x))))
    assert contexts(c) == {"f(-x) = f(x)": (X.size, int((X != 0).sum()))}


def test_bounds_catch_a_sigmoid_above_one() -> None:
    sigmoid16 = rounded(lambda x: 1 / (1 + np.exp(-x)), np.float16)

    def over(x: Array) -> Array:
        y = sigmoid16(x)
        y[x > 8] = np.float16(1.0009765625)
        return y

    assert run_check("bounds", subject("sigmoid", F16), [Batch((EVERY16,))], elementwise(sigmoid16)).consistent
    c = run_check("bounds", subject("sigmoid", F16), [Batch((EVERY16,))], elementwise(over))
    answered = 65536 - NAN16
    assert contexts(c) == {"lower bound": (answered, 0), "upper bound": (answered, int((EVERY16 > 8).sum()))}
    first = c.examples[0]
    assert first.context == "above the upper bound" and first.expected == "at most 1" and first.ulp is None
    assert first.got == "0x3c01" and c.max_ulp is None


def lse(arrays: Sequence[Array], layout: str = "contiguous", device: str = "cpu") -> Array:
    x = arrays[0].astype(np.float64)
    m = x.max(axis=1)
    with np.errstate(all="ignore"):
        return (m + np.log(np.exp(x - m[:, None]).sum(axis=1))).astype(arrays[0].dtype)


def test_bounds_catch_a_logsumexp_below_the_row_max() -> None:
    rows = np.random.default_rng(2).normal(size=(100, 10)).astype(np.float32)
    rows[7, 3] = np.nan  # its max is NaN: not compared

    def low(arrays: Sequence[Array], layout: str, device: str) -> Array:
        y = lse(arrays)
        top = arrays[0].max(axis=1)
        y[::2] = np.nextafter(top[::2], np.float32(-np.inf))
        return y

    assert run_check("bounds", subject("logsumexp"), [Batch((rows,))], lse).consistent
    c = run_check("bounds", subject("logsumexp"), [Batch((rows,))], low)
    assert contexts(c) == {"row max": (99, 50)}
    first = c.examples[0]
    assert first.index == 0 and first.context == "below the row max"
    assert first.expected == f"at least the row max {float(rows[0].max())!r}"


def softmax_rows(arrays: Sequence[Array], layout: str = "contiguous", device: str = "cpu") -> Array:
    x = arrays[0].astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True)).astype(arrays[0].dtype)


def test_permutation_catches_a_softmax_that_depends_on_column_order() -> None:
    rng = np.random.default_rng(3)
    batches = [Batch((rng.normal(size=(60, 10)).astype(np.float32),)),
               Batch((rng.normal(size=(20, 3)).astype(np.float32),))]

    def first_column_off(arrays: Sequence[Array], layout: str, device: str) -> Array:
        y = softmax_rows(arrays)
        y[:, 0] = nudge(y[:, 0], 8)
        return y

    clean = run_check("permutation", subject("softmax"), batches, softmax_rows)
    assert clean.consistent and clean.tolerance == 2 and set(contexts(clean)) == {"reversed", "shuffled"}
    c = run_check("permutation", subject("softmax"), batches, first_column_off)
    # per row, column 0 and the column moved to the front differ by 8 ulps (if they are not the same)
    moved = {w: int(np.random.default_rng(0).permutation(w)[0] != 0) for w in (10, 3)}
    assert contexts(c) == {"reversed": (600 + 60, 2 * (60 + 20)),
                           "shuffled": (600 + 60, 2 * (60 * moved[10] + 20 * moved[3]))}
    assert c.max_ulp == 8 and c.examples[0].context == "with the row reversed, column 0"


def test_permutation_moves_class_targets_with_their_entries() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(50, 7)).astype(np.float32)
    target = rng.integers(0, 7, size=50)

    def cross_entropy(arrays: Sequence[Array], layout: str, device: str) -> Array:
        x, t = arrays
        return (lse([x]).astype(np.float64) - x[np.arange(len(t)), t]).astype(np.float32)

    def ignores_target(arrays: Sequence[Array], layout: str, device: str) -> Array:
        return cross_entropy([arrays[0], np.zeros_like(arrays[1])], layout, device)

    assert run_check("permutation", subject("cross_entropy"), [Batch((logits, target))], cross_entropy).consistent
    wrong = run_check("permutation", subject("cross_entropy"), [Batch((logits, target))], ignores_target)
    assert contexts(wrong)["reversed"][1] > 40
    assert wrong.examples[0].input[-1] == str(int(target[wrong.examples[0].index]))


def bce_logits_stable(x: Array, y: Array) -> Array:
    with np.errstate(all="ignore"):
        xd, yd = x.astype(np.float64), y.astype(np.float64)
        return (np.maximum(xd, 0) - xd * yd + np.log1p(np.exp(-np.abs(xd)))).astype(x.dtype)


def bce_logits_naive(x: Array, y: Array) -> Array:
    with np.errstate(all="ignore"):
        s = np.float32(1) / (np.float32(1) + np.exp(-x))
        return -(y * np.log(s) + (np.float32(1) - y) * np.log(np.float32(1) - s))


def test_label_symmetry_flags_a_naive_bce_with_logits() -> None:
    xs = np.arange(-30, 31, 0.5, dtype=np.float32)
    labels = np.array([0, 0.25, 0.5, 1, 0.3, 0.1, 2.0], dtype=np.float32)
    x = np.repeat(xs, labels.size)
    y = np.tile(labels, xs.size)
    batch = [Batch((x, y))]
    good = run_check("symmetry", subject("binary_cross_entropy_with_logits"), batch, elementwise(bce_logits_stable))
    # y = 0.1 has no exact 1 - y in float32; y = 2 is out of [0, 1] and left out before any call
    eligible = xs.size * 5
    assert contexts(good) == {"L(-x, 1 - y) = L(x, y)": (eligible, 0)} and good.tolerance == 2
    assert good.notes == (f"{xs.size} elements with y outside [0, 1] (or NaN) left out: the label symmetry holds for y in [0, 1] only",)
    bad = run_check("symmetry", subject("binary_cross_entropy_with_logits"), batch, elementwise(bce_logits_naive))
    assert bad.differing > 0 and math.isinf(bad.max_ulp or 0)
    at20 = [e for e in bad.examples if e.input_values == ("-20.0", "1.0")]
    assert not at20 or at20[0].expected == "L(x, y) = 0x7f800000"  # inf at (20, 0): log(1 - 1)
    assert all(e.context == "as L(-x, 1 - y)" for e in bad.examples)


def test_probabilities_out_of_the_domain_never_reach_the_implementation() -> None:
    p = np.array([0.25, -0.5, 0.75, 1.5, np.nan, 1.0, 0.0], dtype=np.float32)
    y = np.array([1.0, 0.0, 0.5, 1.0, 1.0, 0.0, 1.0], dtype=np.float32)
    calls = [0]

    def bce(arrays: Sequence[Array], layout: str, device: str) -> Array:
        pp, yy = (a.astype(np.float64) for a in arrays)
        if not ((pp >= 0) & (pp <= 1)).all():
            raise CallFailed("all elements of input should be between 0 and 1")
        calls[0] += 1
        with np.errstate(all="ignore"):
            out = -(yy * np.maximum(np.log(pp), -100) + (1 - yy) * np.maximum(np.log1p(-pp), -100))
        out = out.astype(np.float32)
        if calls[0] == 2:
            out[-1] = nudge(out[-1:])[0]
        return out

    c = run_check("repeat", subject("binary_cross_entropy"), [Batch((p, y))], bce)
    assert contexts(c) == {"second call": (4, 1)}
    assert c.examples[0].index == 6  # the last input, counted before any was left out
    assert c.notes == ("3 elements with p or y outside [0, 1] (or NaN) left out: the exact answer is NaN there",)
    b = run_check("bounds", subject("binary_cross_entropy"), [Batch((p, y))], bce)
    assert contexts(b) == {"lower bound": (4, 0)}
    s = run_check("symmetry", subject("binary_cross_entropy"), [Batch((p, y))], bce)
    assert contexts(s) == {"L(1 - p, 1 - y) = L(p, y)": (4, 0)}


def test_rows_of_several_widths_share_calls_only_with_their_width() -> None:
    rng = np.random.default_rng(5)
    batches = [Batch((rng.normal(size=(30, 4)).astype(np.float32),)),
               Batch((rng.normal(size=(300, 2)).astype(np.float32),))]
    widths: set[tuple[int, ...]] = set()

    def long_rows(arrays: Sequence[Array], layout: str, device: str) -> Array:
        widths.add(arrays[0].shape[1:])
        y = lse(arrays)
        return nudge(y) if len(y) > 4 else y

    c = run_check("position", subject("logsumexp", max_length=9), batches, long_rows)
    assert widths == {(4,), (2,)}
    assert c.lengths == tuple(range(5, 10)) and c.positions == tuple(range(9))
    probes = min(2048, PROBE_ROWS)
    chosen = spread(330, probes)
    assert contexts(c)["batch"] == (probes, probes)
    assert contexts(c)["length 5"][0] == -(-int((chosen < 30).sum()) // 5) * 5 + -(-int((chosen >= 30).sum()) // 5) * 5
    assert c.examples[0].context == "at length 5, position 0" and c.examples[0].input[:4] == tuple(
        F32.hex_of_bits(int(b)) for b in batches[0].arrays[0][0].view(np.uint32))


def test_a_failing_call_propagates_with_its_context() -> None:
    def single_fails(arrays: Sequence[Array], layout: str, device: str) -> Array:
        if arrays[0].size == 1:
            raise CallFailed("RuntimeError: boom")
        return exp32(arrays[0])

    with pytest.raises(CallFailed, match=r"^length 1: RuntimeError: boom$"):
        run_check("position", subject("exp"), [Batch((X,))], single_fails)

    def transposed_fails(arrays: Sequence[Array], layout: str, device: str) -> Array:
        if layout == "transposed":
            raise CallFailed("no")
        return exp32(arrays[0])

    with pytest.raises(CallFailed, match=r"^transposed: no$"):
        run_check("layout", subject("exp"), [Batch((X,))], transposed_fails)
    with pytest.raises(CallFailed, match="first call: returned list, not an array"):
        run_check("repeat", subject("exp"), [Batch((X,))], lambda a, layout, d: [1.0])  # type: ignore[arg-type,return-value]
    with pytest.raises(CallFailed, match=r"contiguous: returned 1 answers \(shape \(\)\) for 3003"):
        run_check("layout", subject("exp"), [Batch((X,))], lambda a, layout, d: np.ones((), np.float32))


def test_an_answer_in_another_dtype_differs_without_a_crash() -> None:
    x = X.astype(np.float16)

    def widens(arrays: Sequence[Array], layout: str, device: str) -> Array:
        y = np.exp(arrays[0].astype(np.float32))
        return y if arrays[0].size > 16 else y.astype(np.float16)

    c = run_check("position", subject("exp", F16, probes=200), [Batch((x,))], widens)
    assert c.lengths == tuple(range(17, 66)) and contexts(c)["batch"] == (200, 200)
    first = c.examples[0]
    assert first.context == "at length 17, position 0 (returned float32 instead of float16)"
    assert first.ulp is None and first.got.startswith("0x") and len(first.got) == 10  # float32 bits

    def short(arrays: Sequence[Array], layout: str, device: str) -> Array:
        y = exp32(arrays[0]).ravel()
        return y if layout == "contiguous" else y[:-1]

    s = run_check("layout", subject("exp", framework="numpy"), [Batch((X,))], short)
    # transposed pads the 3,003 inputs to 3,008 (a multiple of 16) to view them in 2-D
    assert s.differing == s.compared
    assert s.examples[0].context == "in the transposed layout (returned 3007 answers (shape (3007,)) for 3008)"


def test_examples_keep_the_first_k_inputs_once_each() -> None:
    calls = [0]

    def flaky(arrays: Sequence[Array], layout: str, device: str) -> Array:
        calls[0] += 1
        y = exp32(arrays[0])
        if calls[0] % 2 == 0:
            y[1::7] = nudge(y[1::7])
        return y

    c = run_check("repeat", subject("exp", k=4), [Batch((X,))], flaky)
    assert [e.index for e in c.examples] == [1, 8, 15, 22]


def test_an_explicit_tolerance_applies_to_every_comparison() -> None:
    def off_by_two(arrays: Sequence[Array], layout: str, device: str) -> Array:
        y = exp32(arrays[0])
        return nudge(y, 2) if layout != "contiguous" else y

    assert not run_check("layout", subject("exp"), [Batch((X,))], off_by_two).consistent
    c = run_check("layout", subject("exp", tolerance=2), [Batch((X,))], off_by_two)
    assert c.consistent and c.tolerance == 2 and c.max_ulp == 2


@pytest.mark.parametrize("check", ["symmetry", "bounds", "permutation", "monotone"])
def test_a_property_that_is_not_declared_compares_nothing(check: str) -> None:
    c = run_check(check, subject(), [Batch((X,))], elementwise(exp32))
    assert c.compared == 0 and c.notes and c.headline().startswith("nothing to compare")


@pytest.mark.parametrize(("check", "kw", "message"), [
    pytest.param("sideways", {}, "unknown consistency check 'sideways'; pick from:", id="unknown-check"),
    pytest.param("position", {"max_length": 0}, "max_length must be a positive integer, got 0", id="no-lengths"),
    pytest.param("position", {"probes": 0}, "probes must be a positive integer", id="no-probes"),
    pytest.param("repeat", {"tolerance": -1.0}, "tolerance must be a number of ULPs >= 0", id="negative-tolerance"),
])
def test_bad_requests_are_one_line_usage_errors(check: str, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")) as info:
        run_check(check, subject("exp", **kw), [Batch((X,))], elementwise(exp32))
    assert "\n" not in str(info.value)


def test_every_check_has_a_default_tolerance() -> None:
    assert set(CHECKS) <= set(DEFAULT_TOLERANCE)
    assert {k for k, v in DEFAULT_TOLERANCE.items() if v} == {"permutation", "label_symmetry"}


# -- the distance the checks compare with -------------------------------------------------------


def f(fmt: Format, *values: float) -> Array:
    return np.array(values, dtype=np.float64).astype(fmt.dtype)


@pytest.mark.parametrize("fmt", [F16, BF16, F32, F64], ids=str)
def test_ulp_distance_definitions(fmt: Format) -> None:
    tiny = fmt.smallest_subnormal
    assert ulp_distance(f(fmt, 0.0), f(fmt, -0.0), fmt).tolist() == [0.0]
    assert ulp_distance(f(fmt, tiny), f(fmt, -tiny), fmt).tolist() == [2.0]  # across zero
    assert ulp_distance(f(fmt, math.inf), f(fmt, fmt.largest), fmt).tolist() == [1.0]
    assert ulp_distance(f(fmt, 1.0), fmt.next_up(f(fmt, 1.0)), fmt).tolist() == [1.0]
    nan_a = fmt.from_bits(np.array([fmt.to_bits(f(fmt, math.nan))[0] | 1], dtype=fmt.uint_dtype))
    nan_b = _negate_bits(f(fmt, math.nan), fmt)
    assert ulp_distance(nan_a, nan_b, fmt).tolist() == [0.0]  # payloads and signs aside
    assert ulp_distance(nan_a, f(fmt, 1.0), fmt).tolist() == [math.inf]
    assert differs(f(fmt, 0.0), f(fmt, -0.0), fmt).tolist() == [True]
    assert differs(f(fmt, 0.0), f(fmt, -0.0), fmt, 1).tolist() == [False]
    assert differs(nan_a, nan_b, fmt).tolist() == [False]
    assert differs(f(fmt, 1.0), fmt.next_up(fmt.next_up(f(fmt, 1.0))), fmt, 2).tolist() == [False]
    assert differs(f(fmt, 1.0), fmt.next_up(fmt.next_up(f(fmt, 1.0))), fmt, 1).tolist() == [True]


def _negate_bits(a: Array, fmt: Format) -> Array:
    sign = np.array(1 << (fmt.bits - 1), dtype=fmt.uint_dtype)
    return np.asarray(a.view(fmt.uint_dtype) ^ sign).view(fmt.dtype)


def test_rows_are_swept_at_small_counts_and_around_multiples_of_16_within_a_call_size() -> None:
    beside = (15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65)
    assert row_lengths(65, 10) == (*range(1, 10), *beside)
    assert row_lengths(65, 1000) == (*range(1, 10), *beside)  # 65 rows of 1,000: 65,000 answers
    assert row_lengths(65, 2048) == (*range(1, 10), 15, 16, 17, 31, 32)  # at most 65,536 answers a call
    assert row_lengths(65, 65537) == (1,)
    assert row_lengths(20, 4) == (*range(1, 10), 15, 16, 17)


def test_only_the_widths_with_most_rows_are_swept_the_others_alone_and_in_their_batch() -> None:
    rng = np.random.default_rng(6)
    batches = [Batch((rng.normal(size=(n, w)).astype(np.float32),)) for n, w in ((40, 4), (3, 1000), (60, 2))]
    shapes: set[tuple[int, ...]] = set()

    def wide_rows_differ_in_batches(arrays: Sequence[Array], layout: str, device: str) -> Array:
        shapes.add(arrays[0].shape)
        y = lse(arrays)
        return nudge(y) if arrays[0].shape[1] == 1000 and len(y) > 1 else y

    c = run_check("position", subject("logsumexp"), batches, wide_rows_differ_in_batches)
    assert {s[0] for s in shapes if s[1] == 1000} == {1, 3}  # alone, and the batch of 3
    assert {s[0] for s in shapes if s[1] == 4} >= set(row_lengths(65, 4))
    assert c.notes == ("rows of width 1000: alone and in their batch only (batches of 2-65 rows are swept for the"
                       " 2 widths with the most rows: 2, 4)",)
    assert contexts(c)["batch"] == (103, 3) and c.lengths == ()  # the batch of 3 wide rows differs


def test_labels_outside_0_1_of_the_logit_loss_stay_in_the_self_comparisons() -> None:
    # the exact logit loss is a real number for any label: only its bound and its label
    # symmetry are restricted to y in [0, 1]; binary cross-entropy is NaN outside
    x = np.array([0.5, -1.0, 2.0, 3.0], dtype=np.float32)
    y = np.array([0.25, 1.0, 2.0, -0.5], dtype=np.float32)
    logits = run_check("repeat", subject("binary_cross_entropy_with_logits"), [Batch((x, y))],
                       elementwise(bce_logits_stable))
    assert contexts(logits) == {"second call": (4, 0)} and logits.notes == ()
    bounded = run_check("bounds", subject("binary_cross_entropy_with_logits"), [Batch((x, y))],
                        elementwise(bce_logits_stable))
    assert contexts(bounded) == {"lower bound": (2, 0)}
    assert bounded.notes == ("2 elements with y outside [0, 1] (or NaN) left out: the bound holds for y in [0, 1] only",)
