"""The properties of the built-in oracles (see :mod:`oracles.properties`).

Each declaration is a claim about the exact function that correct rounding keeps, with the
reason it holds. ``tests/ground_truth/test_properties.py`` checks every one against the
correctly rounded truth (every float16 and bfloat16 pattern for the elementwise ones).
Every built-in oracle has a declaration, an empty one where nothing exact holds, so that a
new oracle without one is noticed (the test checks they agree).

Considered and not declared:

* silu and gelu are not monotone (each has a minimum below 0, near x = -1.28 and -0.75)
  and their minima are not values of every format, so no exact bound either;
* sigmoid's point symmetry ``sigmoid(-x) = 1 - sigmoid(x)`` is not kept by rounding
  (``1 - r`` of a rounded ``r`` is not the rounded ``1 - sigmoid``);
* log_softmax >= x_i - max(x) and cross_entropy <= logsumexp - min need a rounded
  subtraction on the right-hand side;
* nll_loss has no bound: its input is any row of reals, not necessarily log-probabilities.
"""

from __future__ import annotations

from oracles.properties import Properties, properties

__all__: list[str] = []


# -- elementwise ------------------------------------------------------------------------


@properties("exp")
def _exp() -> Properties:
    """e**x is increasing and positive; an underflow rounds to 0, never below."""
    return Properties(monotone="increasing", lower=0.0)


@properties("log")
def _log() -> Properties:
    """Increasing on [0, inf]; NaN below 0 is left out of the order."""
    return Properties(monotone="increasing")


@properties("log1p")
def _log1p() -> Properties:
    return Properties(monotone="increasing")


@properties("expm1")
def _expm1() -> Properties:
    """e**x - 1 > -1, and -1 is a value of every format (expm1(-inf) = -1)."""
    return Properties(monotone="increasing", lower=-1.0)


@properties("tanh")
def _tanh() -> Properties:
    return Properties(monotone="increasing", parity="odd", lower=-1.0, upper=1.0)


@properties("sigmoid")
def _sigmoid() -> Properties:
    return Properties(monotone="increasing", lower=0.0, upper=1.0)


@properties("softplus")
def _softplus(beta: float) -> Properties:
    """d/dx log(1 + e**(beta x)) / beta = sigmoid(beta x) > 0 for either sign of beta, so
    increasing always; log(1 + e**(beta x)) > 0, so the sign of the result is beta's."""
    if beta > 0:
        return Properties(monotone="increasing", lower=0.0)
    return Properties(monotone="increasing", upper=0.0)


@properties("log_sigmoid")
def _log_sigmoid() -> Properties:
    """-softplus(-x): increasing, and log of a value in (0, 1) is below 0."""
    return Properties(monotone="increasing", upper=0.0)


@properties("silu")
def _silu() -> Properties:
    return Properties()  # not monotone, minimum not a value of every format (module docstring)


@properties("gelu")
def _gelu() -> Properties:
    return Properties()


# -- row-wise ---------------------------------------------------------------------------


@properties("softmax")
def _softmax() -> Properties:
    """exp(x_i) / sum_j exp(x_j) lies in [0, 1] and is symmetric in the entries."""
    return Properties(lower=0.0, upper=1.0, permutation="equivariant")


@properties("log_softmax")
def _log_softmax() -> Properties:
    return Properties(upper=0.0, permutation="equivariant")


@properties("logsumexp")
def _logsumexp() -> Properties:
    """log(sum_j exp(x_j)) >= log(exp(max x)) = max x, an input, so a value of the format;
    symmetric in the entries."""
    return Properties(at_least_row_max=True, permutation="invariant")


# -- losses -----------------------------------------------------------------------------
#
# The reduction parameter (none, mean, sum) keeps each of these: a sum or mean of losses
# >= 0 is >= 0, and the exact sum of the same per-sample values is the same number however
# each row is permuted or each label swapped.


@properties("binary_cross_entropy")
def _binary_cross_entropy() -> Properties:
    """-(y log p + (1 - y) log(1 - p)): both logs <= 0 with weights >= 0 for p, y in
    [0, 1] (NaN outside: the oracle's domain), and swapping (p, y) for (1 - p, 1 - y) swaps
    the two terms."""
    return Properties(lower=0.0, label_symmetry="probabilities", unit_args=("p", "y"), unit_domain=("p", "y"))


@properties("binary_cross_entropy_with_logits")
def _binary_cross_entropy_with_logits() -> Properties:
    """y softplus(-x) + (1 - y) softplus(x): >= 0 for y in [0, 1] only (y = 2, x = 10 gives
    about -10), and (x, y) -> (-x, 1 - y) swaps the two terms for every real y."""
    return Properties(lower=0.0, label_symmetry="logits", unit_args=("y",))


@properties("cross_entropy")
def _cross_entropy() -> Properties:
    """logsumexp(x) - x_t >= max(x) - x_t >= 0; permuting the logits with the target
    following its entry changes neither term."""
    return Properties(lower=0.0, permutation="invariant")


@properties("nll_loss")
def _nll_loss() -> Properties:
    """-logp[target]: the same entry wherever the permutation moves it."""
    return Properties(permutation="invariant")
