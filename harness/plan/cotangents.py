"""The cotangents of gradient cells: what autodiff's vector-Jacobian product multiplies by.

``ones``
    every element 1: what ``loss.backward()`` sends into a loss, and the plain derivative.
``random``
    random values of the format, exactly representable: a random sign, a binade uniform in
    ``[2**-8, 2**8)`` and a uniform significand, the spread of upstream gradients in a
    network (values near the format's limits are ``special``'s job, not this one's).
``special``
    the format's special finite values in turn: ±0, ±1, the smallest subnormal, the
    smallest normal, the largest finite value, a loss scale (``2**(emax // 2)``) and the
    neighbours of 1. Infinite and NaN cotangents are left out: they are a forward pass that
    already failed.

A cell's cotangents depend only on the cell's group and the batch (a seed from a CRC of
their text, never Python's salted ``hash``), so every process, worker and rerun makes the
same ones.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from oracles.formats import Format

__all__ = ["cotangent_values", "special_cotangents"]

_SPREAD = 8  # random cotangents lie in [2**-_SPREAD, 2**_SPREAD)


def special_cotangents(fmt: Format) -> npt.NDArray[np.float64]:
    """The finite special values ``special`` cycles through, as exact float64."""
    one_up = 1.0 + 2.0 ** (1 - fmt.precision)
    one_down = 1.0 - 2.0 ** -fmt.precision
    values = [1.0, -1.0, 0.0, -0.0, fmt.smallest_subnormal, -fmt.smallest_subnormal, fmt.smallest_normal,
              -fmt.smallest_normal, fmt.largest, -fmt.largest, 2.0 ** (fmt.emax // 2), one_up, one_down]
    return np.array(values, dtype=np.float64)


def _seed(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def cotangent_values(kind: str, shape: tuple[int, ...], fmt: Format, *, key: str) -> npt.NDArray[Any]:
    """Cotangents of ``kind`` (``ones``, ``random``, ``special``) with ``shape``, in the
    format's numpy dtype. ``key`` names the group and batch; it seeds ``random`` and picks
    where ``special`` starts its cycle (so a scalar cotangent, one per batch of a reduced
    loss, walks through the values from batch to batch)."""
    size = int(np.prod(shape, dtype=np.int64))
    if kind == "ones":  # 1 is a value of every format: no check (a streamed chunk is 4M of them)
        return np.ones(shape, dtype=fmt.dtype)
    if kind == "random":
        rng = np.random.default_rng(_seed(key))
        exponents = rng.integers(-_SPREAD, _SPREAD, size=size)
        steps = 1 << (fmt.precision - 1)
        significands = 1.0 + rng.integers(0, steps, size=size) / steps  # p bits: exact in the format
        signs = np.where(rng.integers(0, 2, size=size) == 1, -1.0, 1.0)
        values = signs * np.ldexp(significands, exponents)
    elif kind == "special":
        specials = special_cotangents(fmt)
        start = _seed(key) % specials.size
        values = specials[(start + np.arange(size)) % specials.size]
    else:  # CellSpec refuses other names; this is a programming error
        raise ValueError(f"unknown cotangent kind {kind!r}")
    return fmt.from_float64(values.reshape(shape), what="cotangent")
