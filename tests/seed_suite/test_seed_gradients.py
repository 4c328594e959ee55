"""The seed oracles' gradients mean what their mathematics means.

Each registered gradient is checked against a derivation that does not share its code:

* rational gradients (variance normalisation, the ratio loss, -log p) against forward-mode
  automatic differentiation in exact rational arithmetic (:class:`Dual`) of the textbook
  formula, compared bit for bit after one correct rounding to float64;
* transcendental ones (clipped binary cross-entropy, the exponential loss) against mpmath's
  numerical differentiation of the *forward* oracle at 50 digits, at benign points;
* the edges (poles, limits, NaN, the clip bounds) against a table written from the edge
  policy (oracles/gradients.py) and the clip policy (suites/seeds/clipping.py).

No framework is needed: this file runs without TensorFlow or torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from mpmath import mp, mpf

import suites.seeds  # noqa: F401  (registers the seed oracles and their gradients)
from oracles import evaluate, get_format, get_oracle, gradient_oracle
from oracles.gradients import gradient_for
from suites.seeds import SEEDS

F64 = get_format("float64")
F32 = get_format("float32")
NAN = mpf("nan")
INF = mpf("inf")


def grad_fn(oracle: str, wrt: str) -> Callable[..., Any]:
    found = gradient_for(oracle, wrt)
    assert found is not None, f"no gradient registered for {oracle}/{wrt}"
    return found.fn


def is_nan(v: Any) -> bool:
    return bool(v != v)


# -- registration ----------------------------------------------------------------------------


def test_every_seed_oracle_has_a_gradient_for_every_real_argument() -> None:
    names = [name for seed in SEEDS for name in seed.oracles]
    assert names, "the seed modules register oracles"
    for name in names:
        orc = get_oracle(name)
        for arg in orc.real_args:
            found = gradient_for(name, arg.name)
            assert found is not None, f"{name}: no gradient with respect to {arg.name}"
            assert found.module.startswith("suites.seeds."), found.module
            # the derived oracle is buildable (row-wise ones would raise without a gradient)
            assert gradient_oracle(name, arg.name).name == f"∂{name}/∂{arg.name}"


# -- exact rational derivatives --------------------------------------------------------------


@dataclass(frozen=True)
class Dual:
    """a + b ε with ε² = 0, over the rationals: forward-mode differentiation, exactly."""

    a: Fraction
    b: Fraction = Fraction(0)

    @staticmethod
    def of(v: Any) -> Dual:
        return v if isinstance(v, Dual) else Dual(Fraction(v))

    def __add__(self, o: Any) -> Dual:
        o = Dual.of(o)
        return Dual(self.a + o.a, self.b + o.b)

    __radd__ = __add__

    def __neg__(self) -> Dual:
        return Dual(-self.a, -self.b)

    def __sub__(self, o: Any) -> Dual:
        return self + (-Dual.of(o))

    def __rsub__(self, o: Any) -> Dual:
        return Dual.of(o) - self

    def __mul__(self, o: Any) -> Dual:
        o = Dual.of(o)
        return Dual(self.a * o.a, self.a * o.b + self.b * o.a)

    __rmul__ = __mul__

    def __truediv__(self, o: Any) -> Dual:
        o = Dual.of(o)
        return Dual(self.a / o.a, (self.b * o.a - self.a * o.b) / (o.a * o.a))


def seeded(values: Sequence[float], j: int) -> list[Dual]:
    return [Dual(Fraction(v), Fraction(1 if i == j else 0)) for i, v in enumerate(values)]


def textbook_variance_normalize(x: Sequence[Dual], eps: Fraction) -> list[Dual]:
    """x / (var(x) + eps), the two-pass population variance: what the seed's layer means."""
    n = len(x)
    mean = sum(x, Dual(Fraction(0))) / n
    var = sum(((v - mean) * (v - mean) for v in x), Dual(Fraction(0))) / n
    return [v / (var + eps) for v in x]


def vjp_by_duals(x: Sequence[float], g: Sequence[float], eps: float) -> list[Fraction]:
    out = []
    for j in range(len(x)):
        column = textbook_variance_normalize(seeded(x, j), Fraction(eps))
        out.append(sum((Fraction(gi) * yi.b for gi, yi in zip(g, column, strict=True)), Fraction(0)))
    return out


ROWS = [
    ([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]),
    ([0.5, -3.0, 2.0, 0.25, 7.75], [1.0, -0.5, 2.0, 0.125, -3.0]),
    ([1e-3, 2e-3, -5e-4], [0.3, -0.7, 1.1]),
    ([65504.0, -65504.0, 1.0], [1.0, 1.0, 1.0]),
    ([1.0, 1.0, 1.0, 1.0000001], [2.0, -1.0, 0.5, 0.25]),  # a nearly constant row
]


@pytest.mark.parametrize("eps", [0.0, 1e-7], ids=["variance_normalize", "variance_normalize_eps"])
@pytest.mark.parametrize("row", ROWS, ids=[f"row{i}" for i in range(len(ROWS))])
def test_variance_vjp_is_the_exact_derivative(row: tuple[list[float], list[float]], eps: float) -> None:
    x, g = row
    name = "variance_normalize_eps" if eps else "variance_normalize"
    params = {"eps": eps} if eps else {}
    got = evaluate(gradient_oracle(name), [np.array([x]), np.array([g])], F64, params).want[0]
    want = [float(v) for v in vjp_by_duals(x, g, eps)]  # int / int division rounds correctly
    assert list(got) == want


@pytest.mark.parametrize("eps", [0.0, 1e-7])
@pytest.mark.parametrize("wrt", ["p", "y"])
def test_ratio_gradient_is_the_exact_derivative(wrt: str, eps: float) -> None:
    p = [0.5, -1.25, 3.0, 0.125]
    y = [1.0, 0.0, 0.25, -2.0]
    name = "ratio_loss_eps" if eps else "ratio_loss"
    params = {"eps": eps} if eps else {}
    got = evaluate(gradient_oracle(name, wrt), [np.array([p]), np.array([y]), np.ones((1, 4))], F64,
                   params).want[0]
    for j in range(4):
        ps = seeded(p, j) if wrt == "p" else [Dual(Fraction(v)) for v in p]
        ys = seeded(y, j) if wrt == "y" else [Dual(Fraction(v)) for v in y]
        den = sum((a - b for a, b in zip(ps, ys, strict=True)), Dual(Fraction(0))) + Fraction(eps)
        loss = sum(ys, Dual(Fraction(0))) / den
        assert got[j] == float(loss.b), (wrt, j)


def test_neg_log_gradient_is_minus_one_over_p_correctly_rounded() -> None:
    p = np.array([0.1, 3.0, 1e-30, 7.5e300, 1.0])
    got = evaluate(gradient_oracle("neg_log"), [p, np.ones_like(p)], F64).want
    assert list(got) == [float(Fraction(-1) / Fraction(v)) for v in p]


# -- transcendental derivatives: numerical differentiation of the forward oracle -------------


def numeric(f: Callable[[mpf], Any], at: float) -> mpf:
    return mp.diff(lambda t: mpf(f(t)), mpf(at))


def close(a: mpf, b: mpf) -> bool:
    return bool(abs(a - b) <= mpf(10) ** -35 * max(abs(b), 1))


@pytest.mark.parametrize(("p", "y"), [(0.3, 1.0), (0.3, 0.0), (0.7, 0.25), (1e-5, 0.5), (0.999, 1.0)])
def test_clipped_bce_gradients_inside_the_clip_match_numerical_derivatives(p: float, y: float) -> None:
    fwd = get_oracle("clipped_binary_cross_entropy").fn
    params = {"lo": 1e-7, "hi": 1.0}
    with mp.workdps(50):
        d_p = grad_fn("clipped_binary_cross_entropy", "p")(mpf(p), mpf(y), **params)
        d_y = grad_fn("clipped_binary_cross_entropy", "y")(mpf(p), mpf(y), **params)
        assert close(d_p, numeric(lambda t: fwd(t, mpf(y), **params), p))
        # d/dy does not depend on y (the loss is linear in it): differentiate at an inside label
        assert close(d_y, numeric(lambda t: fwd(mpf(p), t, **params), 0.5))


@pytest.mark.parametrize("name", ["mean_exp_square", "clipped_mean_exp_square"])
@pytest.mark.parametrize("wrt", ["p", "y"])
def test_exponential_loss_gradient_rows_match_numerical_derivatives(name: str, wrt: str) -> None:
    p = [1.5, -0.25, 3.0]
    y = [0.5, 0.75, 1.0]
    fwd = get_oracle(name).fn
    with mp.workdps(50):
        row = grad_fn(name, wrt)([mpf(v) for v in p], [mpf(v) for v in y])
        for j in range(3):
            def f(t: mpf, j: int = j) -> Any:
                ps = [mpf(v) for v in p]
                ys = [mpf(v) for v in y]
                (ps if wrt == "p" else ys)[j] = t
                return fwd(ps, ys)
            assert close(row[j], numeric(f, (p if wrt == "p" else y)[j])), (j, row[j])


def test_clipped_neg_log_gradient_inside_matches_numerical_derivative() -> None:
    fwd = get_oracle("clipped_neg_log").fn
    with mp.workdps(50):
        for p in (1e-6, 0.5, 0.9999):
            got = grad_fn("clipped_neg_log", "p")(mpf(p))
            assert close(got, numeric(lambda t: fwd(t), p))


# -- edges ---------------------------------------------------------------------------------


def _bound(v: float) -> mpf:
    with mp.workprec(64):
        return mpf(v)


CLIPPED_BCE_P = [
    # (p, y, expected, why)
    (1.0, 1.0, mpf(-1), "at the bound hi = 1: the one-sided derivative from inside, -1"),
    (1.0, 0.0, INF, "at the bound hi = 1 with y < 1: the pole of (1 - y) log(1 - p), from inside"),
    (1.0, 0.5, INF, "the same pole for a soft label"),
    (2.0, 0.0, mpf(0), "clipped above: 0, although the loss there is +inf (it does not depend on p)"),
    (2.0, 1.0, mpf(0), "clipped above, finite loss: 0"),
    (5e-8, 1.0, mpf(0), "clipped below: 0"),
    (-math.inf, 0.5, mpf(0), "p = -inf is clipped: 0"),
    (math.inf, 1.0, mpf(0), "p = +inf is clipped: 0"),
    (math.nan, 0.0, NAN, "NaN in, NaN out"),
    (0.5, 1.5, NAN, "a label outside [0, 1]: the forward is NaN"),
]


@pytest.mark.parametrize(("p", "y", "expected", "why"), CLIPPED_BCE_P, ids=[c[3][:40] for c in CLIPPED_BCE_P])
def test_clipped_bce_gradient_edges(p: float, y: float, expected: mpf, why: str) -> None:
    got = grad_fn("clipped_binary_cross_entropy", "p")(mpf(p), mpf(y), lo=1e-7, hi=1.0)
    assert (is_nan(got) and is_nan(expected)) or got == expected, why


def test_clipped_bce_gradient_at_the_lower_bound_is_the_inside_derivative() -> None:
    lo = _bound(1e-7)
    with mp.workdps(40):
        got = grad_fn("clipped_binary_cross_entropy", "p")(lo, mpf(0), lo=1e-7, hi=1.0)
        assert close(got, 1 / (1 - lo))  # (p - y) / (p (1 - p)) at y = 0
    below = grad_fn("clipped_binary_cross_entropy", "p")(mp.mpf(9.999999e-8), mpf(0), lo=1e-7, hi=1.0)
    assert below == 0


def test_clipped_bce_gradient_with_respect_to_y_follows_the_clipped_p() -> None:
    d_y = grad_fn("clipped_binary_cross_entropy", "y")
    assert d_y(mpf(2), mpf(0.5)) == -INF  # q = 1: log(1 - q) - log q = -inf
    assert d_y(mpf(0.5), mpf(0.25)) == 0  # exactly 0 at q = 1/2
    with mp.workdps(40):
        lo = _bound(1e-7)
        assert close(d_y(mpf(-3), mpf(1)), mp.log1p(-lo) - mp.log(lo))  # q = lo


NEG_LOG = [
    ("neg_log", 0.0, {}, -INF, "the pole at 0, from inside"),
    ("neg_log", -1.0, {}, NAN, "outside the domain"),
    ("neg_log", math.inf, {}, mpf(0), "the limit at +inf"),
    ("clipped_neg_log", 1e-7, {}, None, "at the lower bound: -1 / lo, from inside"),
    ("clipped_neg_log", 1 - 1e-7, {}, None, "at the upper bound: -1 / hi, from inside"),
    ("clipped_neg_log", 5e-8, {}, mpf(0), "clipped below"),
    ("clipped_neg_log", 1.0, {}, mpf(0), "clipped above (1 > 1 - 1e-7)"),
    ("clipped_neg_log", math.inf, {}, mpf(0), "+inf is clipped"),
    ("clipped_neg_log", 0.0, {"lo": 0.0, "hi": 1.0}, -INF, "lo = 0: the pole at the bound, from inside"),
    ("clipped_neg_log", -2.0, {"lo": -1.0, "hi": 1.0}, NAN, "a bound below 0: the forward is NaN there"),
]


@pytest.mark.parametrize(("name", "p", "params", "expected", "why"), NEG_LOG, ids=[c[4][:40] for c in NEG_LOG])
def test_neg_log_gradient_edges(name: str, p: float, params: dict[str, float], expected: mpf | None, why: str) -> None:
    with mp.workdps(30):
        got = grad_fn(name, "p")(_bound(p), **params)
        if expected is None:
            expected = -1 / _bound(p)
    assert (is_nan(got) and is_nan(expected)) or got == expected, why


def _ratio(name: str, wrt: str, p: list[float], y: list[float], **params: float) -> list[mpf]:
    with mp.workdps(30):
        row: list[mpf] = grad_fn(name, wrt)([mpf(v) for v in p], [mpf(v) for v in y], **params)
        return row


def test_ratio_gradient_edges() -> None:
    # sum(p - y) == 0: the pole, with one sign from both sides (D**2 > 0)
    assert _ratio("ratio_loss", "p", [1, 2], [1, 2]) == [-INF, -INF]
    assert _ratio("ratio_loss", "y", [1, 2], [1, 2]) == [INF, INF]
    assert _ratio("ratio_loss", "p", [-1, -2], [-1, -2]) == [INF, INF]
    assert all(is_nan(v) for v in _ratio("ratio_loss", "p", [0, 0], [0, 0]))  # 0 / 0
    # an infinite denominator: the forward and the gradient tend to 0
    assert _ratio("ratio_loss", "p", [math.inf, 0], [1, 0]) == [0, 0]
    assert _ratio("ratio_loss", "y", [math.inf, 0], [1, 0]) == [0, 0]
    # an infinite numerator: inf / -inf, NaN
    assert all(is_nan(v) for v in _ratio("ratio_loss", "p", [0, 0], [math.inf, 0]))
    # eps: the zero row is 0 / eps: d/dp = 0 exactly, d/dy = eps / eps**2 = 1 / eps
    assert _ratio("ratio_loss_eps", "p", [0, 0], [0, 0], eps=1e-7) == [0, 0]
    with mp.workdps(30):
        assert all(close(v, 1 / _bound(1e-7)) for v in _ratio("ratio_loss_eps", "y", [0, 0], [0, 0], eps=1e-7))


def _exp_loss(name: str, wrt: str, p: list[float], y: list[float]) -> list[mpf]:
    row: list[mpf] = grad_fn(name, wrt)([mpf(v) for v in p], [mpf(v) for v in y])
    return row


def test_exponential_loss_gradient_edges() -> None:
    # d = y - p = -inf: the derivative of exp(d**2) tends to -inf (d/dp: +inf); d = 0: exactly 0
    assert _exp_loss("mean_exp_square", "p", [math.inf, 1.0], [0.0, 1.0]) == [INF, 0]
    assert _exp_loss("mean_exp_square", "y", [math.inf, 1.0], [0.0, 1.0]) == [-INF, 0]
    assert all(is_nan(v) for v in _exp_loss("mean_exp_square", "p", [math.inf, 1.0], [math.inf, 0.0]))
    # clipped: at the bound d = +-100 the inside derivative (huge but finite in mpmath),
    # outside 0, infinite differences clipped to 0
    with mp.workdps(40):
        at, out, far = _exp_loss("clipped_mean_exp_square", "p", [-100.0, -100.5, -math.inf], [0.0, 0.0, 0.0])
        assert close(at, -2 * 100 * mp.exp(10000) / 3)
    assert out == 0 and far == 0


def test_variance_vjp_edges() -> None:
    vjp = grad_fn("variance_normalize", "x")
    vjp_eps = grad_fn("variance_normalize_eps", "x")
    ones = [mpf(1)] * 3
    # a constant row: W = 0 and no limit (the sign depends on the direction): NaN
    assert all(is_nan(v) for v in vjp([mpf(2)] * 3, cotangent=ones))
    assert all(is_nan(v) for v in vjp([mpf(0)] * 3, cotangent=ones))
    # an infinity in the row or NaN in the cotangent: NaN throughout
    assert all(is_nan(v) for v in vjp([mpf(1), INF, mpf(0)], cotangent=ones))
    assert all(is_nan(v) for v in vjp([mpf(1), mpf(2), mpf(0)], cotangent=[mpf(1), NAN, mpf(1)]))
    # with eps the constant row is finite: g_j / eps (x_j - mean = 0)
    with mp.workdps(30):
        assert all(close(v, 1 / _bound(1e-7)) for v in vjp_eps([mpf(2)] * 3, cotangent=ones, eps=1e-7))
    # an infinite cotangent: J_00 = 1 / W > 0 (x_0 = 0) gives +inf, J_01 = 0 gives 0 * inf = NaN
    out = vjp([mpf(0), mpf(1)], cotangent=[INF, mpf(0)])
    assert out[0] == INF and is_nan(out[1])


def test_the_derived_oracles_settle_on_clip_bounds_in_every_format() -> None:
    """Ziv's loop decides every value, the exact 0s and the bounds included (float32)."""
    p = np.array([0.0, 1e-7, 0.5, 1.0, 2.0, np.inf, -1.0], dtype=np.float32).astype(np.float64)
    got = evaluate(gradient_oracle("clipped_neg_log"), [p, np.ones_like(p)], F32).want
    assert got[0] == 0 and got[3] == 0 and got[4] == 0 and got[5] == 0 and got[6] == 0
    assert got[2] == np.float32(-2.0)
    # float32(1e-7) is above the float64 bound 1e-7: inside, -1 / p
    assert float(np.float32(1e-7)) > 1e-7 and got[1] == np.float32(-1 / float(np.float32(1e-7)))
