"""The derivative of a clip, ``min(max(v, lo), hi)``, for the gradients of the seeds' clipped
oracles (``clipped_binary_cross_entropy``, ``clipped_neg_log``, ``clipped_mean_exp_square``).

The clip's derivative is 1 strictly inside ``(lo, hi)`` and 0 strictly outside it. At
``v == lo`` and ``v == hi`` the function has a kink: its one-sided derivatives differ and
the derivative does not exist. The general edge policy of :mod:`oracles.gradients` says a
kink is NaN. The seed gradients deliberately do **not** follow it at a clip bound:

*At a clip bound the gradient is the one-sided derivative from inside the clipped range*,
i.e. the derivative of the function restricted to ``[lo, hi]``: the clipped range is
closed, and a bound belongs to it.

Why, and the alternative rejected:

* NaN (the derivative does not exist) would make every framework's clip a defect at every
  input that equals a bound: no framework returns NaN there. ``tf.clip_by_value`` and
  ``torch.clamp`` pass the incoming gradient at the bounds themselves (their masks are
  ``lo <= v <= hi``; checked with TensorFlow 2.21 and torch 2.13), and ``jnp.clip``, a
  ``maximum`` then a ``minimum``, passes half of it (JAX splits the gradient of a tie).
  The gradient cells would report ``noNaN`` there for every implementation, a convention
  counted as a defect, hiding the findings that matter (a gradient lost to zero, a NaN
  from ``0 * inf`` at ``p = 1``). With the one-sided derivative, the seeds' TensorFlow
  clips are exact at a bound and a JAX clip shows as a ULP error of a factor 2 there.
* A clip is a device to keep an argument inside a range, and the range includes its
  ends: ``-log(clip(p, 1e-7, 1 - 1e-7))`` is meant as ``-log p`` on ``[1e-7, 1 - 1e-7]``.
  Its gradient at ``p = 1e-7`` is then ``-1 / 1e-7``, not "undefined".
* The bounds are float64 parameters and are rarely values of the judged format
  (``1e-7`` is not a float16, bfloat16 or float32): an input falls on a bound only where
  the bound is exact (``1.0``, ``-100``, ``100``), so the choice decides few elements, and
  an implementation whose own bound is the rounded constant is judged by the exact one.

Strictly outside ``[lo, hi]`` the clipped function does not depend on ``v`` at all, and the
derivative is exactly 0, also where the constant value it takes there is infinite
(``binary_cross_entropy(1, y)`` for ``p > 1`` and ``y < 1``): the loss cannot be moved
by ``v`` there, which is the point of the clip. It is NaN only where the function is NaN.
"""

from __future__ import annotations

from mpmath import mp, mpf

__all__ = ["bound", "clip", "inside"]


def bound(value: float) -> mpf:
    """A clip bound (a float64 parameter) as an exact mpf, whatever the working precision
    (``mpf(float)`` would round it below 53 bits)."""
    with mp.workprec(64):
        return mpf(value)


def clip(v: mpf, lo: float, hi: float) -> mpf:
    """``min(max(v, lo), hi)`` with exact bounds, as the forward oracles compute it."""
    return min(max(v, bound(lo)), bound(hi))


def inside(v: mpf, lo: float, hi: float) -> bool:
    """Whether the clip passes ``v``'s derivative: ``lo <= v <= hi``, the bounds included
    (the module docstring says why). False for NaN and for infinite ``v`` with finite bounds."""
    return bool(bound(lo) <= v <= bound(hi))
