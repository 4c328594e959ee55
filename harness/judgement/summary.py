"""Judging computed values against the truth: categories, ULP error, mergeable summaries.

Definitions (every table fpharness prints uses exactly these):

* ``ulp(y) = 2**(max(e, emin) - p + 1)`` with ``e = floor(log2|y|)``: the ulp of the
  *exact* value in the output format; ``ulp(0)`` is the smallest subnormal.
* ULP error ``|c - y| / ulp(y)``, for a finite computed ``c`` and a finite exact ``y``.
* ``correctly_rounded``: ``c == R(y)`` as values (+0 equals -0), or both NaN.
* Incidence categories, each element in at most one, the first that applies winning:
  ``unexpected_nan`` (c NaN, y not), ``missing_nan`` (y NaN, c not), ``unexpected_inf``
  (c infinite and not R(y)), ``inherent_inf`` (c infinite and equal to R(y): the truth
  overflows), ``missing_inf`` (c finite where R(y) is infinite), ``lost_to_zero`` (c zero
  where R(y) is not).

A :class:`Summary` is mergeable: ``merge(judge(a), judge(b)) == judge(a + b)`` exactly,
including the ULP mean (an exact integer sum), the histogram, the percentiles (read off
a fine histogram of 16 bins per binade, so they are upper bounds within 4.4%), and the
worst and example elements (ties broken by position).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.judgement.definitions import BINS_PER_OCTAVE, CATEGORIES, DEFECTS, LOWEST_BIN, SUM_SHIFT, ulp_errors
from harness.judgement.tally import Tally, tally
from oracles.formats import Format
from oracles.reference import Reference

__all__ = [
    "CATEGORIES",
    "DEFECTS",
    "Describe",
    "Example",
    "Summary",
    "judge",
    "summarize",
    "ulp_errors",
]

#: describe(flat_index) -> (input bit patterns, input values, row, col)
Describe = Callable[[int], tuple[tuple[str, ...], tuple[str, ...], int | None, int | None]]


@dataclass(frozen=True, slots=True)
class Example:
    """One output element worth showing: its position, inputs, result and truth."""

    index: int
    category: str
    ulp: float | None
    input: tuple[str, ...]
    input_values: tuple[str, ...]
    got: str
    got_value: str
    want: str
    want_value: str
    exact: str
    row: int | None = None
    col: int | None = None

    def sort_key(self) -> tuple[float, int]:
        return (-(self.ulp if self.ulp is not None else -1.0), self.index)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "category": self.category,
            "ulp": self.ulp,
            "input": list(self.input),
            "input_values": list(self.input_values),
            "got": self.got,
            "got_value": self.got_value,
            "want": self.want,
            "want_value": self.want_value,
            "exact": self.exact,
        }
        if self.row is not None:
            out["row"] = self.row
        if self.col is not None:
            out["col"] = self.col
        return out

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Example:
        return Example(
            index=int(d["index"]),
            category=str(d["category"]),
            ulp=None if d.get("ulp") is None else float(d["ulp"]),
            input=tuple(d.get("input", ())),
            input_values=tuple(d.get("input_values", ())),
            got=str(d["got"]),
            got_value=str(d.get("got_value", "")),
            want=str(d["want"]),
            want_value=str(d.get("want_value", "")),
            exact=str(d["exact"]),
            row=d.get("row"),
            col=d.get("col"),
        )

    def describe(self) -> str:
        """``x=0x4a00 (12.0) gave inf, oracle 12.000006 rounds to 12.0 [unexpected_inf]``."""
        args = ", ".join(f"{b} ({v})" for b, v in zip(self.input, self.input_values, strict=False))
        where = f"row {self.row}" + (f" col {self.col}" if self.col is not None else "") if self.row is not None else ""
        err = f", {self.ulp:.6g} ulp" if self.ulp is not None else ""
        label = f" [{self.category}]" if self.category != "worst" else ""
        pos = f"{where}: " if where else ""
        return f"{pos}{args} gave {self.got_value}, oracle {self.exact} rounds to {self.want_value}{err}{label}"


@dataclass(frozen=True, slots=True)
class Summary:
    """Verdict over a set of output elements; see the module docstring for definitions."""

    n: int = 0
    correctly_rounded: int = 0
    counts: tuple[int, ...] = (0,) * len(CATEGORIES)
    ulp_count: int = 0
    ulp_max: float = 0.0
    ulp_sum: int = 0
    ulp_zero: int = 0
    bins: tuple[tuple[int, int], ...] = ()
    worst: tuple[Example, ...] = ()
    examples: tuple[Example, ...] = ()
    k_worst: int = 10
    k_examples: int = 3

    # -- derived ----------------------------------------------------------------------
    @property
    def incidence(self) -> dict[str, int]:
        return dict(zip(CATEGORIES, self.counts, strict=True))

    @property
    def ulp_mean(self) -> float | None:
        if not self.ulp_count:
            return None
        return float(Fraction(self.ulp_sum, 1 << SUM_SHIFT) / self.ulp_count)

    def percentile(self, q: float) -> float | None:
        """The q-quantile (0 < q <= 1) of the ULP errors, as the upper edge of its fine
        bin (within 4.4% above the true value) and never above the maximum."""
        if not self.ulp_count:
            return None
        rank = max(1, math.ceil(q * self.ulp_count - 1e-9))
        seen = self.ulp_zero
        if rank <= seen:
            return 0.0
        for key, count in self.bins:
            seen += count
            if rank <= seen:
                return min(2.0 ** (key / BINS_PER_OCTAVE), self.ulp_max)
        return self.ulp_max

    def histogram(self) -> list[tuple[float, int]]:
        """Counts of ULP errors in buckets ``<= 0.5, <= 1, <= 2, <= 4, ...`` up to the
        bucket of the maximum (each count is of errors above the previous edge)."""
        if not self.ulp_count:
            return []
        coarse: dict[int, int] = {-1: self.ulp_zero}
        for key, count in self.bins:
            octave = max(-(-key // BINS_PER_OCTAVE), -1)
            coarse[octave] = coarse.get(octave, 0) + count
        top = max(coarse)
        return [(2.0**o, coarse.get(o, 0)) for o in range(-1, top + 1)]

    @property
    def clean(self) -> bool:
        """No element in a defect category."""
        inc = self.incidence
        return not any(inc[c] for c in DEFECTS)

    # -- merging ----------------------------------------------------------------------
    def merge(self, other: Summary) -> Summary:
        """The summary of the union of both element sets (their positions must differ)."""
        merged_bins: dict[int, int] = dict(self.bins)
        for key, count in other.bins:
            merged_bins[key] = merged_bins.get(key, 0) + count
        k_worst = max(self.k_worst, other.k_worst)
        k_examples = max(self.k_examples, other.k_examples)
        worst = heapq.nsmallest(k_worst, self.worst + other.worst, key=Example.sort_key)
        return Summary(
            n=self.n + other.n,
            correctly_rounded=self.correctly_rounded + other.correctly_rounded,
            counts=tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)),
            ulp_count=self.ulp_count + other.ulp_count,
            ulp_max=max(self.ulp_max, other.ulp_max),
            ulp_sum=self.ulp_sum + other.ulp_sum,
            ulp_zero=self.ulp_zero + other.ulp_zero,
            bins=tuple(sorted(merged_bins.items())),
            worst=tuple(worst),
            examples=_pick_examples(self.examples + other.examples, k_examples),
            k_worst=k_worst,
            k_examples=k_examples,
        )

    @staticmethod
    def merge_all(parts: Iterable[Summary]) -> Summary:
        # Fold from the first part, not from Summary(): the empty summary carries the
        # default k_worst/k_examples, and merging keeps the larger k, so starting from it
        # would turn a k_worst=5 cell into a k_worst=10 one.
        it = iter(parts)
        out = next(it, Summary())
        for p in it:
            out = out.merge(p)
        return out

    # -- JSON ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The cell fields of results schema 1 (``n``, ``correctly_rounded``, ``ulp``,
        ``incidence``, ``worst``, ``examples``) plus ``exact_summary`` for lossless merges."""
        pct = {name: self.percentile(q) for name, q in _PERCENTILES}
        return {
            "n": self.n,
            "correctly_rounded": self.correctly_rounded,
            "ulp": {
                "count": self.ulp_count,
                "max": self.ulp_max if self.ulp_count else None,
                "mean": self.ulp_mean,
                **pct,
                "histogram": [{"le": le, "count": c} for le, c in self.histogram()],
            },
            "incidence": self.incidence,
            "worst": [e.to_json() for e in self.worst],
            "examples": [e.to_json() for e in self.examples],
            "exact_summary": {
                "ulp_sum": hex(self.ulp_sum),
                "ulp_sum_scale": -SUM_SHIFT,
                "ulp_zero": self.ulp_zero,
                "bins_per_octave": BINS_PER_OCTAVE,
                "bins": [list(b) for b in self.bins],
                "k_worst": self.k_worst,
                "k_examples": self.k_examples,
            },
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Summary:
        exact = d["exact_summary"]
        per_octave = int(exact.get("bins_per_octave", BINS_PER_OCTAVE))
        if per_octave % BINS_PER_OCTAVE:
            raise ValueError(
                f"exact_summary has {per_octave} bins per octave, this fpharness"
                f" reads {BINS_PER_OCTAVE}: re-run the cell to compare or merge it"
            )
        # Files from before the switch to 16 bins per octave had 64: every old bin lies
        # inside one new bin (edges 2**(k/64) nest in 2**(j/16)), so folding is exact.
        fold = per_octave // BINS_PER_OCTAVE
        folded: dict[int, int] = {}
        for k, c in exact["bins"]:
            key = max(-(-int(k) // fold), LOWEST_BIN)
            folded[key] = folded.get(key, 0) + int(c)
        ulp = d.get("ulp") or {}
        return Summary(
            n=int(d["n"]),
            correctly_rounded=int(d["correctly_rounded"]),
            counts=tuple(int(d["incidence"][c]) for c in CATEGORIES),
            ulp_count=int(ulp.get("count", 0)),
            ulp_max=float(ulp["max"]) if ulp.get("max") is not None else 0.0,
            ulp_sum=int(exact["ulp_sum"], 16),
            ulp_zero=int(exact["ulp_zero"]),
            bins=tuple(sorted(folded.items())),
            worst=tuple(Example.from_json(e) for e in d.get("worst", ())),
            examples=tuple(Example.from_json(e) for e in d.get("examples", ())),
            k_worst=int(exact.get("k_worst", 10)),
            k_examples=int(exact.get("k_examples", 3)),
        )


_PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999))


def _pick_examples(candidates: Sequence[Example], k: int) -> tuple[Example, ...]:
    """The first ``k`` examples (by position) of every category."""
    out: list[Example] = []
    for cat in CATEGORIES:
        mine = sorted((e for e in candidates if e.category == cat), key=lambda e: e.index)
        out.extend(mine[:k])
    return tuple(out)


# -- computing ---------------------------------------------------------------------------


def _fmt_value(v: float) -> str:
    if v != v:
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(float(v))


def judge(
    ref: Reference,
    got: npt.NDArray[Any],
    out_format: Format,
    *,
    describe: Describe | None = None,
    offset: int = 0,
    k_worst: int = 10,
    k_examples: int = 3,
) -> Summary:
    """Compare computed values ``got`` (stored in ``out_format``'s dtype) with ``ref``.

    ``offset`` is the position of ``got``'s first element in the whole cell, so that
    summaries of chunks merge with stable tie-breaking. ``describe`` turns a flat index
    (within this chunk) into the input's bits and values for examples.
    """
    return summarize(
        tally(ref, np.asarray(got), out_format, k_worst=k_worst, k_examples=k_examples),
        ref, got, out_format, describe=describe, offset=offset, k_worst=k_worst, k_examples=k_examples,
    )


def summarize(
    t: Tally,
    ref: Reference,
    got: npt.NDArray[Any],
    out_format: Format,
    *,
    describe: Describe | None = None,
    offset: int = 0,
    k_worst: int = 10,
    k_examples: int = 3,
) -> Summary:
    """The :class:`Summary` of a :class:`~harness.judgement.tally.Tally` of ``got`` against ``ref``:
    the counts as they are, and the worst and example elements spelled out."""
    got_arr = np.asarray(got).ravel()
    want = ref.want.ravel()

    def example(i: int, category: str, err: float | None) -> Example:
        bits_in, values_in, row, col = describe(i) if describe else ((), (), None, None)
        raw = got_arr[i : i + 1]
        with np.errstate(invalid="ignore"):
            c = float(raw.astype(np.float64)[0])
        try:
            got_hex = out_format.hex_of_bits(int(out_format.to_bits(raw)[0]))
        except Exception:  # noqa: BLE001 - a foreign dtype still gets value-based bits
            got_hex = out_format.hex(c)
        return Example(
            index=offset + i,
            category=category,
            ulp=err,
            input=bits_in,
            input_values=values_in,
            got=got_hex,
            got_value=_fmt_value(c),
            want=out_format.hex(float(want[i])),
            want_value=_fmt_value(float(want[i])),
            exact=ref.exact_str(i),
            row=row,
            col=col,
        )

    worst = [example(i, "worst", err) for err, i in t.worst]
    examples: list[Example] = []
    for ci, cat in enumerate(CATEGORIES):
        examples.extend(example(i, cat, _one_error(ref, got_arr, i)) for i in t.examples[ci])
    return Summary(
        n=t.n,
        correctly_rounded=t.correct,
        counts=t.counts,
        ulp_count=t.ulp_count,
        ulp_max=t.ulp_max,
        ulp_sum=t.ulp_sum,
        ulp_zero=t.ulp_zero,
        bins=tuple(sorted(t.bins.items())),
        worst=tuple(worst),
        examples=tuple(examples),
        k_worst=k_worst,
        k_examples=k_examples,
    )


def _one_error(ref: Reference, got: npt.NDArray[Any], i: int) -> float | None:
    with np.errstate(invalid="ignore"):
        c = got[i : i + 1].astype(np.float64)
    err = float(ulp_errors(ref.ravel()[i : i + 1], c)[0])
    return None if math.isnan(err) else err


# the tally's tables are built for this many bins per octave
