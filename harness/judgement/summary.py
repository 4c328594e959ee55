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

Next to the ULP error (the primary metric), bits of error, absolute and relative error
and a count over an ``atol``/``rtol`` tolerance, as :mod:`harness.judgement.definitions`
defines them.

A :class:`Summary` is mergeable: ``merge(judge(a), judge(b)) == judge(a + b)`` exactly,
including the ULP mean (an exact integer sum), the histogram, the percentiles (read off
a fine histogram of 16 bins per binade, so they are upper bounds within 4.4%), the bits
histogram, largest distance and mean (an exact integer sum), the absolute and relative
errors' fine bins and maxima, and the worst and example elements (ties broken by
position). A count over a tolerance merges when both sides counted against the same
tolerance; otherwise the merge has none (``tolerance`` None). Summaries read from files
written before bits and absolute/relative errors existed have ``measured`` False: their
JSON has no ``bits``/``abs_error``/``rel_error``, and neither has anything merged with
them (the other fields merge as before).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.judgement.definitions import (
    BINS_PER_OCTAVE,
    BITS_SHIFT,
    CATEGORIES,
    DEFECTS,
    LOWEST_BIN,
    SUM_SHIFT,
    Tolerance,
    ulp_errors,
)
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
    #: False for a summary read from a file without bits and absolute/relative errors.
    #: Not compared: such a summary equals the one its file was written from (history and
    #: results migrations check exactly that); its JSON and merges show the difference.
    measured: bool = field(default=True, compare=False)
    bits_count: int = 0
    bits_hist: tuple[tuple[int, int], ...] = ()  # (bit length of the ordinal distance, count)
    bits_max_distance: int = 0
    bits_sum: int = 0  # sum of floor(2**32 log2(1 + d))
    abs_bins: tuple[tuple[int, int], ...] = ()  # fine bins; count ulp_count, zeros ulp_zero
    abs_max: float = 0.0
    rel_count: int = 0  # ulp_count less rel_undefined; zeros ulp_zero
    rel_bins: tuple[tuple[int, int], ...] = ()
    rel_max: float = 0.0
    rel_undefined: int = 0  # exact value 0, result not: no relative error
    tolerance: Tolerance | None = None  # (atol, rtol) over_tolerance was counted against
    over_tolerance: int = 0

    # -- derived ----------------------------------------------------------------------
    @property
    def bits_max(self) -> float | None:
        """The largest bits of error, log2(1 + largest ordinal distance)."""
        return math.log2(1 + self.bits_max_distance) if self.bits_count else None

    @property
    def bits_mean(self) -> float | None:
        return float(Fraction(self.bits_sum, (1 << BITS_SHIFT) * self.bits_count)) if self.bits_count else None

    def bits_percentile(self, q: float) -> float | None:
        """The q-quantile of the bits of error as its bucket's upper edge (bucket k holds
        bits in (k - 1, k]), never above the maximum."""
        if not self.bits_count:
            return None
        rank = max(1, math.ceil(q * self.bits_count - 1e-9))
        seen = 0
        top = math.log2(1 + self.bits_max_distance)
        for k, count in self.bits_hist:
            seen += count
            if rank <= seen:
                return min(float(k), top)
        return top

    def bits_histogram(self) -> list[tuple[int, int]]:
        """Counts per bucket ``le`` k = 0, 1, ... up to the maximum's bucket: bits of error
        in (k - 1, k], i.e. ordinal distances in [2**(k-1), 2**k - 1] (k = 0: distance 0)."""
        if not self.bits_count:
            return []
        have = dict(self.bits_hist)
        return [(k, have.get(k, 0)) for k in range(max(have) + 1)]

    def abs_percentile(self, q: float) -> float | None:
        """The q-quantile of the absolute errors, an upper bound as :meth:`percentile`'s."""
        return _fine_percentile(q, self.ulp_count, self.ulp_zero, self.abs_bins, self.abs_max)

    def rel_percentile(self, q: float) -> float | None:
        """The q-quantile of the relative errors, an upper bound as :meth:`percentile`'s."""
        return _fine_percentile(q, self.rel_count, self.ulp_zero, self.rel_bins, self.rel_max)

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
        same_tol = self.tolerance == other.tolerance
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
            measured=self.measured and other.measured,
            bits_count=self.bits_count + other.bits_count,
            bits_hist=_add_bins(self.bits_hist, other.bits_hist),
            bits_max_distance=max(self.bits_max_distance, other.bits_max_distance),
            bits_sum=self.bits_sum + other.bits_sum,
            abs_bins=_add_bins(self.abs_bins, other.abs_bins),
            abs_max=max(self.abs_max, other.abs_max),
            rel_count=self.rel_count + other.rel_count,
            rel_bins=_add_bins(self.rel_bins, other.rel_bins),
            rel_max=max(self.rel_max, other.rel_max),
            rel_undefined=self.rel_undefined + other.rel_undefined,
            tolerance=self.tolerance if same_tol else None,
            over_tolerance=self.over_tolerance + other.over_tolerance if same_tol else 0,
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
        out: dict[str, Any] = {
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
        if self.measured:
            out.update(self._errors_json())
            out["exact_summary"].update({
                "bits_hist": [list(b) for b in self.bits_hist],
                "bits_max_distance": self.bits_max_distance,
                "bits_sum": hex(self.bits_sum),
                "bits_sum_scale": -BITS_SHIFT,
                "abs_bins": [list(b) for b in self.abs_bins],
                "abs_max": self.abs_max,
                "rel_bins": [list(b) for b in self.rel_bins],
                "rel_max": self.rel_max,
                "rel_undefined": self.rel_undefined,
            })
            if self.tolerance is not None:
                out["exact_summary"]["tolerance"] = {
                    "atol": self.tolerance[0], "rtol": self.tolerance[1], "over": self.over_tolerance,
                }
        return out

    def _errors_json(self) -> dict[str, Any]:
        """The cell fields ``bits``, ``abs_error`` and ``rel_error``."""
        return {
            "bits": {
                "count": self.bits_count,
                "max": self.bits_max,
                "mean": self.bits_mean,
                **{name: self.bits_percentile(q) for name, q in _PERCENTILES},
                "histogram": [{"le": k, "count": c} for k, c in self.bits_histogram()],
            },
            "abs_error": {
                "count": self.ulp_count,
                "max": self.abs_max if self.ulp_count else None,
                **{name: self.abs_percentile(q) for name, q in _PERCENTILES},
            },
            "rel_error": {
                "count": self.rel_count,
                "max": self.rel_max if self.rel_count else None,
                **{name: self.rel_percentile(q) for name, q in _PERCENTILES},
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
        errors: dict[str, Any] = {"measured": False}
        if "bits_hist" in exact:  # written by an fpharness that measures them
            tol = exact.get("tolerance")
            errors = {
                "measured": True,
                "bits_count": int((d.get("bits") or {}).get("count", 0)),
                "bits_hist": tuple((int(k), int(c)) for k, c in exact["bits_hist"]),
                "bits_max_distance": int(exact["bits_max_distance"]),
                "bits_sum": int(exact["bits_sum"], 16),
                "abs_bins": tuple((int(k), int(c)) for k, c in exact["abs_bins"]),
                "abs_max": float(exact["abs_max"]),
                "rel_count": int((d.get("rel_error") or {}).get("count", 0)),
                "rel_bins": tuple((int(k), int(c)) for k, c in exact["rel_bins"]),
                "rel_max": float(exact["rel_max"]),
                "rel_undefined": int(exact["rel_undefined"]),
                "tolerance": None if tol is None else (float(tol["atol"]), float(tol["rtol"])),
                "over_tolerance": 0 if tol is None else int(tol["over"]),
            }
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
            **errors,
        )


def _add_bins(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    merged = dict(a)
    for key, count in b:
        merged[key] = merged.get(key, 0) + count
    return tuple(sorted(merged.items()))


def _fine_percentile(q: float, count: int, zero: int, bins: tuple[tuple[int, int], ...], top: float) -> float | None:
    """The q-quantile of ``count`` values (``zero`` of them 0, the rest in fine ``bins``)
    as the upper edge of its bin, never above the maximum ``top``."""
    if not count:
        return None
    rank = max(1, math.ceil(q * count - 1e-9))
    seen = zero
    if rank <= seen:
        return 0.0
    for key, n in bins:
        seen += n
        if rank <= seen:
            try:
                edge = 2.0 ** (key / BINS_PER_OCTAVE)
            except OverflowError:
                edge = math.inf
            return min(max(edge, 5e-324), top)  # an edge below float64's range: its least value
    return top


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
    tolerance: Tolerance | None = None,
) -> Summary:
    """Compare computed values ``got`` (stored in ``out_format``'s dtype) with ``ref``.

    ``offset`` is the position of ``got``'s first element in the whole cell, so that
    summaries of chunks merge with stable tie-breaking. ``describe`` turns a flat index
    (within this chunk) into the input's bits and values for examples. ``tolerance``
    (atol, rtol) also counts the elements over it (see :func:`~harness.judgement.tally.tally`).
    """
    return summarize(
        tally(ref, np.asarray(got), out_format, k_worst=k_worst, k_examples=k_examples, tolerance=tolerance),
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
        bits_count=t.bits_count,
        bits_hist=tuple(sorted(t.bits_hist.items())),
        bits_max_distance=t.bits_max,
        bits_sum=t.bits_sum,
        abs_bins=tuple(sorted(t.abs_bins.items())),
        abs_max=t.abs_max,
        rel_count=t.rel_count,
        rel_bins=tuple(sorted(t.rel_bins.items())),
        rel_max=t.rel_max,
        rel_undefined=t.rel_undefined,
        tolerance=t.tolerance,
        over_tolerance=t.over_tolerance if t.tolerance is not None else 0,
    )


def _one_error(ref: Reference, got: npt.NDArray[Any], i: int) -> float | None:
    with np.errstate(invalid="ignore"):
        c = got[i : i + 1].astype(np.float64)
    err = float(ulp_errors(ref.ravel()[i : i + 1], c)[0])
    return None if math.isnan(err) else err


# the tally's tables are built for this many bins per octave
