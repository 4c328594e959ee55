"""Consistency verdicts: does an implementation give the same answer for the same input,
and the answers the mathematics relates, without any oracle?

Definitions (README "Consistency" states them for users):

* Two answers of one format are compared by their **ULP distance**: the number of
  representable values between them, counted on the format's ordered bit patterns with
  ``+0`` and ``-0`` both at 0 (so the smallest positive and negative subnormals are 2
  apart), and infinite when exactly one of them is NaN. Two NaNs are the same answer
  whatever their payloads and signs (SIMD and scalar code make different default NaNs).
* An answer **differs** when its distance exceeds the check's tolerance; with the default
  tolerance of 0 a zero of the other sign differs too (``1/x`` tells them apart).
* A :class:`Consistency` counts the comparisons a check made and those that differed,
  where they differed (contexts, and for the position check the tensor lengths and
  positions) and keeps the first few :class:`Mismatch` examples to show and reproduce.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from oracles.formats import Format

__all__ = ["CHECKS", "PROPERTY_CHECKS", "Consistency", "Mismatch", "differs", "spans", "ulp_distance"]

#: every consistency check, in the order tables show them. The first four compare an
#: implementation with itself; the last four with what the mathematics says of its answers.
CHECKS: tuple[str, ...] = ("position", "layout", "repeat", "device", "monotone", "symmetry", "bounds", "permutation")
PROPERTY_CHECKS: tuple[str, ...] = ("monotone", "symmetry", "bounds", "permutation")

#: what each check's table column is headed by, and what one sentence of it means
MEANING: Mapping[str, str] = {
    "position": "each value alone vs at every position of tensors of lengths 1-65 and in the batch",
    "layout": "contiguous vs transposed, strided, offset (and channels-last) views",
    "repeat": "the same call twice",
    "device": "CPU vs CUDA",
    "monotone": "a monotone function's answers are monotone",
    "symmetry": "f(-x) = -f(x) for odd f; L(x, y) = L(-x, 1 - y) for the logit losses",
    "bounds": "answers within the function's range (softmax in [0, 1], logsumexp >= row max)",
    "permutation": "permuting a row permutes (or leaves) its answers",
}


def _ordered(values: npt.NDArray[Any], fmt: Format) -> npt.NDArray[np.uint64]:
    """Bit patterns as unsigned integers in value order, both zeros at 2**63: unsigned so
    that float64's whole range (and the distance from -inf to +inf) fits without overflow."""
    bits = np.ascontiguousarray(values).view(fmt.uint_dtype).astype(np.uint64)
    shift = np.uint64(fmt.bits - 1)
    magnitude = bits & ((np.uint64(1) << shift) - np.uint64(1))
    middle = np.uint64(1) << np.uint64(63)
    return np.where((bits >> shift) != 0, middle - magnitude, middle + magnitude)


def ulp_distance(a: npt.ArrayLike, b: npt.ArrayLike, fmt: Format) -> npt.NDArray[np.float64]:
    """Elementwise ULP distance between answers ``a`` and ``b`` in ``fmt`` (same shape):
    0 for two NaNs, ``inf`` where exactly one is NaN."""
    a = np.asarray(a, dtype=fmt.dtype)
    b = np.asarray(b, dtype=fmt.dtype)
    with np.errstate(invalid="ignore"):
        nan_a, nan_b = np.isnan(a), np.isnan(b)
    ka, kb = _ordered(a, fmt), _ordered(b, fmt)
    dist = np.where(ka >= kb, ka - kb, kb - ka).astype(np.float64)
    dist[nan_a != nan_b] = math.inf
    dist[nan_a & nan_b] = 0.0
    return dist


def differs(a: npt.ArrayLike, b: npt.ArrayLike, fmt: Format, tolerance: float = 0.0) -> npt.NDArray[np.bool_]:
    """Where answers ``a`` and ``b`` differ by more than ``tolerance`` ULPs; with a
    tolerance of 0, a zero of the other sign differs as well."""
    a = np.asarray(a, dtype=fmt.dtype)
    b = np.asarray(b, dtype=fmt.dtype)
    over = ulp_distance(a, b, fmt) > tolerance
    if tolerance == 0:
        with np.errstate(invalid="ignore"):
            zeros = (a == 0) & (b == 0)
        over |= zeros & (np.signbit(a) != np.signbit(b))
    return over


def spans(numbers: Iterable[int]) -> str:
    """``1-15, 17, 33-47``: sorted integers as ranges, how lengths and positions are shown."""
    ordered = sorted(set(numbers))
    out: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(out)


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One comparison that differed: which element (``index`` in the cell's inputs; a row
    for row-wise oracles), what it was given, the answer it was compared with (``expected``:
    alone, contiguous, the first call, the CPU's, or a bound) and the answer it gave in
    ``context`` (``length 17, position 16``; ``transposed``; ``second call``)."""

    index: int
    context: str
    input: tuple[str, ...]
    input_values: tuple[str, ...]
    expected: str
    expected_value: str
    got: str
    got_value: str
    #: the ULP distance between the two answers; None where it is not a distance (a bound)
    ulp: float | None = None

    def describe(self) -> str:
        """``x=0xc2cacccd (-101.4) gave 0x00000008 (1.1e-44) at length 17, position 16;
        0x00000007 (9.8e-45) alone [1 ulp]``."""
        args = ", ".join(f"{b} ({v})" for b, v in zip(self.input, self.input_values, strict=False))
        dist = "" if self.ulp is None else (" [NaN vs a number]" if math.isinf(self.ulp) else f" [{self.ulp:g} ulp]")
        return (f"{args} gave {self.got} ({self.got_value}) {self.context}; {self.expected}"
                f" ({self.expected_value}){dist}")

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "context": self.context,
            "input": list(self.input),
            "input_values": list(self.input_values),
            "expected": self.expected,
            "expected_value": self.expected_value,
            "got": self.got,
            "got_value": self.got_value,
            "ulp": None if self.ulp is None or math.isinf(self.ulp) else self.ulp,
            "nan_vs_number": bool(self.ulp is not None and math.isinf(self.ulp)),
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Mismatch:
        ulp = math.inf if d.get("nan_vs_number") else (None if d.get("ulp") is None else float(d["ulp"]))
        return Mismatch(
            index=int(d["index"]),
            context=str(d["context"]),
            input=tuple(str(v) for v in d.get("input", ())),
            input_values=tuple(str(v) for v in d.get("input_values", ())),
            expected=str(d["expected"]),
            expected_value=str(d.get("expected_value", "")),
            got=str(d["got"]),
            got_value=str(d.get("got_value", "")),
            ulp=ulp,
        )


@dataclass(frozen=True, slots=True)
class Consistency:
    """What one check found in one cell.

    ``compared`` comparisons were made (an element in one context is one comparison) and
    ``differing`` of them differed by more than ``tolerance`` ULPs; ``max_ulp`` is the
    largest distance among all of them (None when the check measures no distance, as
    bounds; ``inf`` when a NaN met a number). ``contexts`` lists ``(context, compared,
    differing)`` per context family (``length 17``, ``batch``, ``transposed``,
    ``second call``); ``lengths`` and ``positions`` are, for the position check, the tensor
    lengths with a differing element and the positions it sat at. ``notes`` say what could
    not be checked and why (a layout the framework does not have)."""

    check: str
    compared: int = 0
    differing: int = 0
    tolerance: float = 0.0
    max_ulp: float | None = None
    contexts: tuple[tuple[str, int, int], ...] = ()
    lengths: tuple[int, ...] = ()
    positions: tuple[int, ...] = ()
    examples: tuple[Mismatch, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def consistent(self) -> bool:
        return self.differing == 0

    def headline(self) -> str:
        """One line for a table's reason column: ``12 of 4096 comparisons differ (lengths
        17-65 at positions 16-64; max 1 ulp)`` or ``consistent (4096 comparisons)``."""
        if not self.compared:
            return "nothing to compare" + (f" ({self.notes[0]})" if self.notes else "")
        if self.consistent:
            return f"consistent ({self.compared} comparisons)"
        where: list[str] = []
        if self.lengths:
            where.append(f"lengths {spans(self.lengths)}")
        if self.positions:
            where.append(f"positions {spans(self.positions)}")
        if not where:
            where = [c for c, _, d in self.contexts if d][:4]
        if self.max_ulp is not None:
            where.append("NaN vs a number" if math.isinf(self.max_ulp) else f"max {self.max_ulp:g} ulp")
        return f"{self.differing} of {self.compared} comparisons differ ({'; '.join(where)})"

    @staticmethod
    def of(check: str, tolerance: float, contexts: Sequence[tuple[str, int, int]], *,
           max_ulp: float | None = None, lengths: Iterable[int] = (), positions: Iterable[int] = (),
           examples: Sequence[Mismatch] = (), notes: Sequence[str] = ()) -> Consistency:
        """A verdict from per-context counts (the totals are their sums)."""
        return Consistency(
            check=check,
            compared=sum(c for _, c, _ in contexts),
            differing=sum(d for _, _, d in contexts),
            tolerance=float(tolerance),
            max_ulp=max_ulp,
            contexts=tuple((str(n), int(c), int(d)) for n, c, d in contexts),
            lengths=tuple(sorted(set(int(v) for v in lengths))),
            positions=tuple(sorted(set(int(v) for v in positions))),
            examples=tuple(examples),
            notes=tuple(notes),
        )

    def to_json(self) -> dict[str, Any]:
        inf = self.max_ulp is not None and math.isinf(self.max_ulp)
        return {
            "check": self.check,
            "compared": self.compared,
            "differing": self.differing,
            "tolerance": self.tolerance,
            "max_ulp": None if inf else self.max_ulp,
            "nan_vs_number": inf,
            "contexts": [{"context": n, "compared": c, "differing": d} for n, c, d in self.contexts],
            "lengths": list(self.lengths),
            "positions": list(self.positions),
            "examples": [e.to_json() for e in self.examples],
            "notes": list(self.notes),
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Consistency:
        max_ulp = math.inf if d.get("nan_vs_number") else (None if d.get("max_ulp") is None else float(d["max_ulp"]))
        return Consistency(
            check=str(d["check"]),
            compared=int(d.get("compared", 0)),
            differing=int(d.get("differing", 0)),
            tolerance=float(d.get("tolerance", 0.0)),
            max_ulp=max_ulp,
            contexts=tuple((str(c["context"]), int(c["compared"]), int(c["differing"]))
                           for c in d.get("contexts", ())),
            lengths=tuple(int(v) for v in d.get("lengths", ())),
            positions=tuple(int(v) for v in d.get("positions", ())),
            examples=tuple(Mismatch.from_json(e) for e in d.get("examples", ())),
            notes=tuple(str(n) for n in d.get("notes", ())),
        )
