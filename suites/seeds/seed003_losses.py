"""Seed 003_6f7bd129f115a9be.txt: "Why is my custom loss function producing NaN values during
model training?"

Three pairs of TensorFlow losses, each an "incorrect" version and a "corrected" one. The
document reuses the names ``incorrect_loss``/``corrected_loss`` for Examples 1 and 2, so
the verbatim functions here carry the example's number.

Example 1, ``-tf.math.log(y_pred)`` and its clipped version
    oracles ``neg_log(p)`` (what the author means) and ``clipped_neg_log(p; lo, hi)`` =
    ``-log(min(max(p, lo), hi))`` (what the correction computes). Elementwise; ``y_true``
    is unused by the document's functions.
Example 2, ``reduce_sum(y_true) / reduce_sum(y_pred - y_true)`` and its epsilon version
    oracles ``ratio_loss(p, y)`` and ``ratio_loss_eps(p, y; eps)``, one value per row,
    computed exactly (:mod:`suites.seeds.exact`): the case the document worries about is a
    denominator that is exactly zero.
Example 3, ``reduce_mean(exp(square(y_true - y_pred)))`` and its clipped version
    oracles ``mean_exp_square(p, y)`` and ``clipped_mean_exp_square(p, y; lo, hi)``, one
    value per row.

Every oracle has its gradients registered beside it (:func:`oracles.gradients.gradient`):
``-1 / p`` for ``neg_log``; for the ratio, ``-sum(y) / D**2`` with respect to each ``p_j``
and ``(sum(p) + eps) / D**2`` with respect to each ``y_j`` (``D`` the denominator), exact
rationals rounded once; for Example 3, ``-+2 d_j e**(d_j**2) / n`` with ``d = y - p``. The
clipped versions multiply by the clip's derivative, 1 on ``[lo, hi]`` with the bounds
included and 0 outside (the policy at a bound, and why, is in :mod:`suites.seeds.clipping`).

The losses of Examples 2 and 3 reduce over the whole tensor; the adapters apply the
document's function, as written, to each row (one call per row, ``p`` the predictions
and ``y`` the targets), so a row is one judged sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from mpmath import mp, mpf

from oracles.gradients import gradient
from oracles.registry import Param, oracle
from suites.seeds.claims import Check, Claim, Seed, SeedImpl
from suites.seeds.clipping import clip, inside
from suites.seeds.exact import divide, extended_add, extended_divide, extended_sum, to_fraction

__all__ = [
    "SEED",
    "clipped_mean_exp_square",
    "clipped_neg_log",
    "corrected_custom_loss_ex3",
    "corrected_loss_ex1",
    "corrected_loss_ex2",
    "custom_loss_ex3",
    "d_clipped_mean_exp_square_d_p",
    "d_clipped_mean_exp_square_d_y",
    "d_clipped_neg_log_d_p",
    "d_mean_exp_square_d_p",
    "d_mean_exp_square_d_y",
    "d_neg_log_d_p",
    "d_ratio_loss_d_p",
    "d_ratio_loss_d_y",
    "d_ratio_loss_eps_d_p",
    "d_ratio_loss_eps_d_y",
    "ex1_corrected",
    "ex1_incorrect",
    "ex2_corrected_rows",
    "ex2_incorrect_rows",
    "ex3_corrected_rows",
    "ex3_custom_rows",
    "incorrect_loss_ex1",
    "incorrect_loss_ex2",
    "mean_exp_square",
    "neg_log",
    "ratio_loss",
    "ratio_loss_eps",
]

MODULE = "suites.seeds.seed003_losses"
NAN = mpf("nan")
INF = mpf("inf")
ZERO = mpf(0)


def _tf() -> Any:
    import tensorflow as tf

    return tf


# -- the seed, as written -------------------------------------------------------------------


def incorrect_loss_ex1(y_true: Any, y_pred: Any) -> Any:
    """Example 1 ``incorrect_loss``: -tf.math.log(y_pred)"""
    tf = _tf()
    return -tf.math.log(y_pred)  # Potential NaN if y_pred <= 0


def corrected_loss_ex1(y_true: Any, y_pred: Any) -> Any:
    """Example 1 ``corrected_loss``: -tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0 - 1e-7))"""
    tf = _tf()
    epsilon = 1e-7
    return -tf.math.log(tf.clip_by_value(y_pred, epsilon, 1.0 - epsilon))


def incorrect_loss_ex2(y_true: Any, y_pred: Any) -> Any:
    """Example 2 ``incorrect_loss``: tf.reduce_sum(y_true) / tf.reduce_sum(y_pred - y_true)"""
    tf = _tf()
    return tf.reduce_sum(y_true) / tf.reduce_sum(y_pred - y_true)  # Potential NaN if sum(y_pred - y_true) == 0


def corrected_loss_ex2(y_true: Any, y_pred: Any) -> Any:
    """Example 2 ``corrected_loss``: tf.reduce_sum(y_true) / (tf.reduce_sum(y_pred - y_true) + 1e-7)"""
    tf = _tf()
    epsilon = 1e-7
    return tf.reduce_sum(y_true) / (tf.reduce_sum(y_pred - y_true) + epsilon)


def custom_loss_ex3(y_true: Any, y_pred: Any) -> Any:
    """Example 3 ``custom_loss``: tf.reduce_mean(tf.exp(tf.square(y_true - y_pred)))"""
    tf = _tf()
    diff = y_true - y_pred
    squared_diff = tf.square(diff)
    # potential for infinities if diff is very large
    exponential_diff = tf.exp(squared_diff)
    return tf.reduce_mean(exponential_diff)


def corrected_custom_loss_ex3(y_true: Any, y_pred: Any) -> Any:
    """Example 3 ``corrected_custom_loss``: the same with tf.clip_by_value(diff, -100, 100)"""
    tf = _tf()
    diff = y_true - y_pred
    clipped_diff = tf.clip_by_value(diff, -100, 100)  # example clipping range
    squared_diff = tf.square(clipped_diff)
    exponential_diff = tf.exp(squared_diff)
    return tf.reduce_mean(exponential_diff)


# -- adapters in the oracles' argument order ----------------------------------------------


def ex1_incorrect(p: Any) -> Any:
    """incorrect_loss(None, p) = -tf.math.log(p)"""
    return incorrect_loss_ex1(None, p)


def ex1_corrected(p: Any) -> Any:
    """corrected_loss(None, p) = -tf.math.log(tf.clip_by_value(p, 1e-7, 1.0 - 1e-7))"""
    return corrected_loss_ex1(None, p)


def _per_row(loss: Callable[[Any, Any], Any], p: Any, y: Any) -> Any:
    """``loss(y[i], p[i])`` for every row, stacked: the document's function on one sample."""
    tf = _tf()
    return tf.stack([loss(y[i], p[i]) for i in range(int(p.shape[0]))])


def ex2_incorrect_rows(p: Any, y: Any) -> Any:
    """incorrect_loss(y[i], p[i]) per row: sum(y) / sum(p - y)"""
    return _per_row(incorrect_loss_ex2, p, y)


def ex2_corrected_rows(p: Any, y: Any) -> Any:
    """corrected_loss(y[i], p[i]) per row: sum(y) / (sum(p - y) + 1e-7)"""
    return _per_row(corrected_loss_ex2, p, y)


def ex3_custom_rows(p: Any, y: Any) -> Any:
    """custom_loss(y[i], p[i]) per row: mean(exp((y - p)**2))"""
    return _per_row(custom_loss_ex3, p, y)


def ex3_corrected_rows(p: Any, y: Any) -> Any:
    """corrected_custom_loss(y[i], p[i]) per row: mean(exp(clip(y - p, -100, 100)**2))"""
    return _per_row(corrected_custom_loss_ex3, p, y)


# -- oracles: Example 1 -----------------------------------------------------------------------


def _neg_log(q: mpf) -> mpf:
    if q < 0:
        return NAN
    if not q:
        return INF
    if mp.isinf(q):
        return -INF
    # -log(q) as -log1p(q - 1) with the difference exact: no cancellation near q = 1
    return -mp.log1p(mp.fsub(q, 1, exact=True))


@oracle("neg_log", args=("p",), domain="p >= 0 (-log(0) = +inf; NaN below 0)")
def neg_log(p: mpf) -> mpf:
    """-log(p): the negative log-likelihood of a predicted probability."""
    return _neg_log(p)


@oracle(
    "clipped_neg_log",
    args=("p",),
    params={
        "lo": Param("lo", 1e-7, doc="lower clip bound"),
        "hi": Param("hi", 1 - 1e-7, doc="upper clip bound"),
    },
    domain="all reals (clipped into [lo, hi] first)",
)
def clipped_neg_log(p: mpf, *, lo: float = 1e-7, hi: float = 1 - 1e-7) -> mpf:
    """-log(min(max(p, lo), hi)): what a clipped log-loss computes."""
    return _neg_log(min(max(p, mpf(lo)), mpf(hi)))


def _d_neg_log(q: mpf) -> mpf:
    if q != q or q < 0:
        return NAN
    if not q:
        return -INF  # the pole, approached from inside the domain
    if mp.isinf(q):
        return ZERO
    return -1 / q


@gradient("neg_log", wrt="p")
def d_neg_log_d_p(p: mpf) -> mpf:
    """-1 / p: -inf at 0 (the pole, from inside), 0 at +inf, NaN below 0 (as the forward)."""
    return _d_neg_log(p)


@gradient("clipped_neg_log", wrt="p")
def d_clipped_neg_log_d_p(p: mpf, *, lo: float = 1e-7, hi: float = 1 - 1e-7) -> mpf:
    """-1 / p on [lo, hi] (at a bound: from inside), 0 outside; NaN where the forward is."""
    if p != p:
        return NAN
    q = clip(p, lo, hi)
    if q != q or q < 0:
        return NAN
    return _d_neg_log(p) if inside(p, lo, hi) else ZERO


# -- oracles: Example 2 -----------------------------------------------------------------------


def _ratio(p: Sequence[mpf], y: Sequence[mpf], eps: float) -> mpf:
    num = extended_sum(y)
    den = extended_add(extended_sum(p), -extended_sum(y))
    if eps:
        den = extended_add(den, to_fraction(eps))
    return extended_divide(num, den)


@oracle(
    "ratio_loss",
    kind="row_reduce",
    args=("p", "y"),
    domain="rows of reals; a zero denominator gives +-inf (0/0 NaN)",
)
def ratio_loss(p: Sequence[mpf], y: Sequence[mpf]) -> mpf:
    """sum(y) / sum(p - y) over the last axis (seed 003's division loss)."""
    return _ratio(p, y, 0.0)


@oracle(
    "ratio_loss_eps",
    kind="row_reduce",
    args=("p", "y"),
    params={"eps": Param("eps", 1e-7, doc="added to the denominator")},
    domain="rows of reals; a denominator of exactly -eps gives +-inf",
)
def ratio_loss_eps(p: Sequence[mpf], y: Sequence[mpf], *, eps: float = 1e-7) -> mpf:
    """sum(y) / (sum(p - y) + eps) over the last axis: the epsilon version."""
    return _ratio(p, y, eps)


def _ratio_gradient(p: Sequence[mpf], y: Sequence[mpf], eps: float, wrt: str) -> list[mpf]:
    """The gradient row of ``sum(y) / D`` with ``D = sum(p) - sum(y) + eps``, exact:
    ``-sum(y) / D**2`` for every ``p_j`` and ``(D + sum(y)) / D**2 = (sum(p) + eps) / D**2``
    for every ``y_j``. Edges: NaN where the forward is NaN (0/0, inf/inf, inf - inf); 0 where
    ``D`` is infinite and the forward 0 (the limits); at ``D = 0`` with ``sum(y) != 0`` the
    pole, whose sign does not depend on the side (``D**2 > 0``): ``-+inf`` by ``sum(y)``."""
    n = len(p)
    s_y = extended_sum(y)
    s_p = extended_sum(p)
    den = extended_add(s_p, -s_y)
    if eps:
        den = extended_add(den, to_fraction(eps))
    forward = extended_divide(s_y, den)
    if forward != forward:
        return [NAN] * n
    if not isinstance(den, Fraction):
        return [ZERO] * n  # D = +-inf and sum(y) finite: the forward and the gradient tend to 0
    assert isinstance(s_y, Fraction)  # an infinite sum(y) makes D infinite or NaN
    num = -s_y if wrt == "p" else den + s_y
    return [divide(num, den * den)] * n


@gradient("ratio_loss", wrt="p")
def d_ratio_loss_d_p(p: Sequence[mpf], y: Sequence[mpf]) -> list[mpf]:
    """-sum(y) / sum(p - y)**2 for every p_j; -+inf at a zero denominator (the pole)."""
    return _ratio_gradient(p, y, 0.0, "p")


@gradient("ratio_loss", wrt="y")
def d_ratio_loss_d_y(p: Sequence[mpf], y: Sequence[mpf]) -> list[mpf]:
    """sum(p) / sum(p - y)**2 for every y_j; +-inf at a zero denominator (the pole)."""
    return _ratio_gradient(p, y, 0.0, "y")


@gradient("ratio_loss_eps", wrt="p")
def d_ratio_loss_eps_d_p(p: Sequence[mpf], y: Sequence[mpf], *, eps: float = 1e-7) -> list[mpf]:
    """-sum(y) / (sum(p - y) + eps)**2 for every p_j."""
    return _ratio_gradient(p, y, eps, "p")


@gradient("ratio_loss_eps", wrt="y")
def d_ratio_loss_eps_d_y(p: Sequence[mpf], y: Sequence[mpf], *, eps: float = 1e-7) -> list[mpf]:
    """(sum(p) + eps) / (sum(p - y) + eps)**2 for every y_j."""
    return _ratio_gradient(p, y, eps, "y")


# -- oracles: Example 3 -----------------------------------------------------------------------


def _mean_exp_square(p: Sequence[mpf], y: Sequence[mpf], lo: mpf | None, hi: mpf | None) -> mpf:
    terms = []
    for pi, yi in zip(p, y, strict=True):
        if mp.isinf(pi) or mp.isinf(yi):
            d = yi - pi  # inf - inf is NaN, as in the extended reals
        else:
            d = mp.fsub(yi, pi, exact=True)
        if d != d:
            return NAN
        if lo is not None and hi is not None:
            d = min(max(d, lo), hi)
        terms.append(mp.exp(d * d) if mp.isinf(d) else mp.exp(mp.fmul(d, d, exact=True)))
    return mp.fsum(terms) / len(terms)


@oracle("mean_exp_square", kind="row_reduce", args=("p", "y"), domain="rows of reals")
def mean_exp_square(p: Sequence[mpf], y: Sequence[mpf]) -> mpf:
    """mean(exp((y - p)**2)) over the last axis (seed 003's exponential loss)."""
    return _mean_exp_square(p, y, None, None)


@oracle(
    "clipped_mean_exp_square",
    kind="row_reduce",
    args=("p", "y"),
    params={"lo": Param("lo", -100.0, doc="lower clip bound of y - p"), "hi": Param("hi", 100.0, doc="upper clip bound")},
    domain="rows of reals",
)
def clipped_mean_exp_square(p: Sequence[mpf], y: Sequence[mpf], *, lo: float = -100.0, hi: float = 100.0) -> mpf:
    """mean(exp(min(max(y - p, lo), hi)**2)) over the last axis: the clipped version."""
    return _mean_exp_square(p, y, mpf(lo), mpf(hi))


def _mean_exp_square_gradient(
    p: Sequence[mpf], y: Sequence[mpf], bounds: tuple[float, float] | None, sign: int
) -> list[mpf]:
    """``sign * 2 d_j e**(d_j**2) / n`` with ``d = y - p`` exact (``sign`` -1 for p, +1 for
    y), times the clip's derivative when ``bounds`` are given: 0 outside them. NaN rows
    where the forward is NaN; +-inf for an infinite d_j inside the bounds (the limit)."""
    ds: list[mpf] = []
    for pi, yi in zip(p, y, strict=True):
        d = yi - pi if mp.isinf(pi) or mp.isinf(yi) else mp.fsub(yi, pi, exact=True)
        if d != d:
            return [NAN] * len(p)
        ds.append(d)
    n = len(ds)
    out: list[mpf] = []
    for d in ds:
        if (bounds is not None and not inside(d, *bounds)) or not d:
            out.append(ZERO)
        elif mp.isinf(d):
            out.append(d if sign > 0 else -d)
        else:
            term = mp.ldexp(d, 1) * mp.exp(mp.fmul(d, d, exact=True)) / n
            out.append(term if sign > 0 else -term)
    return out


@gradient("mean_exp_square", wrt="p")
def d_mean_exp_square_d_p(p: Sequence[mpf], y: Sequence[mpf]) -> list[mpf]:
    """-2 (y_j - p_j) e**((y_j - p_j)**2) / n."""
    return _mean_exp_square_gradient(p, y, None, -1)


@gradient("mean_exp_square", wrt="y")
def d_mean_exp_square_d_y(p: Sequence[mpf], y: Sequence[mpf]) -> list[mpf]:
    """2 (y_j - p_j) e**((y_j - p_j)**2) / n."""
    return _mean_exp_square_gradient(p, y, None, 1)


@gradient("clipped_mean_exp_square", wrt="p")
def d_clipped_mean_exp_square_d_p(
    p: Sequence[mpf], y: Sequence[mpf], *, lo: float = -100.0, hi: float = 100.0
) -> list[mpf]:
    """-2 d_j e**(d_j**2) / n where lo <= d_j = y_j - p_j <= hi, 0 where the clip holds d_j."""
    return _mean_exp_square_gradient(p, y, (lo, hi), -1)


@gradient("clipped_mean_exp_square", wrt="y")
def d_clipped_mean_exp_square_d_y(
    p: Sequence[mpf], y: Sequence[mpf], *, lo: float = -100.0, hi: float = 100.0
) -> list[mpf]:
    """2 d_j e**(d_j**2) / n where lo <= d_j <= hi, 0 where the clip holds d_j."""
    return _mean_exp_square_gradient(p, y, (lo, hi), 1)


_NON_FINITE = ("unexpected_nan", "unexpected_inf", "inherent_inf")

_EX3_GRAD_NOTE = (
    "The gradient 2 (p - y) exp((y - p)**2) / n overflows where the forward value does and a"
    " little earlier (the factor 2 |y - p|). In float16, tf.reduce_mean's backward pass divides"
    " by the element count in float16: a row of 65520 entries or more (the count rounds to inf;"
    " the special inputs hold one of 65537) gets the gradient 0, or 0 * inf = NaN where exp"
    " overflows."
)

SEED = Seed(
    file="003_6f7bd129f115a9be.txt",
    title="Why is my custom loss function producing NaN values during model training?",
    module=MODULE,
    oracles=(
        "neg_log",
        "clipped_neg_log",
        "ratio_loss",
        "ratio_loss_eps",
        "mean_exp_square",
        "clipped_mean_exp_square",
    ),
    impls=(
        SeedImpl(
            label="Example 1 incorrect_loss",
            impl=f"{MODULE}:ex1_incorrect",
            code="-tf.math.log(y_pred)",
            claims=(
                Claim(
                    quote="Potential NaN if y_pred <= 0",
                    meaning="p <= 0 gives a non-finite loss: NaN below 0 and +inf at 0, the mathematics of -log p",
                    check=Check("neg_log", "defect", ("inherent_inf",)),
                ),
            ),
        ),
        SeedImpl(
            label="Example 1 corrected_loss",
            impl=f"{MODULE}:ex1_corrected",
            code="-tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0 - 1e-7))",
            claims=(
                Claim(
                    quote="preventing NaNs",
                    meaning="no NaN or Inf for any input that is not NaN",
                    check=Check("neg_log", "clean", _NON_FINITE),
                ),
                Claim(
                    quote="prevents issues with values very close to zero or one",
                    meaning="near 0 and 1 the result is -log of p clipped to [1e-7, 1 - 1e-7], within 1 ulp",
                    check=Check("clipped_neg_log", "clean", ("lost_to_zero", "unexpected_inf"), max_ulp=1),
                ),
                Claim(
                    quote="prevents issues with values very close to zero or one",
                    meaning="near 0 and 1 the gradient is still -1/p's: not lost to zero, NaN or Inf",
                    check=Check("neg_log", "clean", ("unexpected_nan", "unexpected_inf", "lost_to_zero"), wrt="p"),
                ),
            ),
            grad_note=(
                "tf.clip_by_value passes no gradient where p is clipped (below 1e-7 and above"
                " 1 - 1e-7): against -log p that zero is a gradient lost (→0, or noInf where -1/p"
                " overflows the format); against the clipped function it is the truth. In float16"
                " 1 - 1e-7 rounds to 1, so the implementation does not clip p = 1, while the"
                " clipped function does: its truth there is 0, the implementation gives -1 (the"
                " worst ULP error of that cell)."
            ),
        ),
        SeedImpl(
            label="Example 2 incorrect_loss",
            impl=f"{MODULE}:ex2_incorrect_rows",
            code="tf.reduce_sum(y_true) / tf.reduce_sum(y_pred - y_true)",
            claims=(
                Claim(
                    quote="Potential NaN if sum(y_pred - y_true) == 0",
                    meaning="a zero denominator gives a non-finite loss (it is +-inf unless sum(y_true) is 0 too)",
                    check=Check("ratio_loss", "defect", _NON_FINITE, inputs=("npz:",)),
                ),
            ),
        ),
        SeedImpl(
            label="Example 2 corrected_loss",
            impl=f"{MODULE}:ex2_corrected_rows",
            code="tf.reduce_sum(y_true) / (tf.reduce_sum(y_pred - y_true) + epsilon)",
            claims=(
                Claim(
                    quote="adds a small epsilon to the denominator, preventing this",
                    meaning="rows with sum(y_pred - y_true) == 0 now give a finite loss",
                    check=Check("ratio_loss_eps", "clean", _NON_FINITE, inputs=("npz:",)),
                ),
                Claim(
                    quote="adds a small epsilon to the denominator, preventing this",
                    meaning="on those rows the gradient -sum(y) / (sum(p - y) + eps)**2 is finite too",
                    check=Check("ratio_loss_eps", "clean", _NON_FINITE, inputs=("npz:",), wrt="p"),
                ),
            ),
        ),
        SeedImpl(
            label="Example 3 custom_loss",
            impl=f"{MODULE}:ex3_custom_rows",
            code="tf.reduce_mean(tf.exp(tf.square(y_true - y_pred)))",
            grad_note=_EX3_GRAD_NOTE,
            claims=(
                Claim(
                    quote="likely infinities",
                    meaning="on the document's own example (y_true = 1000, 2000, 3000; y_pred one more) the loss is infinite",
                    check=Check("mean_exp_square", "defect", ("unexpected_inf", "inherent_inf"), inputs=("npz:",)),
                ),
            ),
        ),
        SeedImpl(
            label="Example 3 corrected_custom_loss",
            impl=f"{MODULE}:ex3_corrected_rows",
            code="... tf.clip_by_value(diff, -100, 100) ...",
            claims=(
                Claim(
                    quote="Clipping the differences to a reasonable range prevents this",
                    meaning="with y - p clipped to [-100, 100] the loss never overflows",
                    check=Check("clipped_mean_exp_square", "clean", ("unexpected_inf", "inherent_inf")),
                ),
                Claim(
                    quote="Clipping the differences to a reasonable range prevents this",
                    meaning="nor does its gradient, 2 (p - y) exp((y - p)**2) / n inside the clip",
                    check=Check("clipped_mean_exp_square", "clean", ("unexpected_inf", "inherent_inf"), wrt="p"),
                ),
            ),
            grad_note=_EX3_GRAD_NOTE + (
                " A clip at 100 leaves every difference whose exp(d**2) is finite unclipped, so"
                " the clip changes neither: where it engages, the truth of the clipped function's"
                " gradient is 0 and the implementation's is 0 too."
            ),
        ),
    ),
)
