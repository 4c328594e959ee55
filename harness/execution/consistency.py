"""Consistency checks: call an implementation in several contexts and compare its answers
with each other, or with what the mathematics says of them. No oracle is evaluated.

The runner hands :func:`run_check` a :class:`Subject` (what is checked), the cell's input
batches and a :data:`Call` that runs the implementation on given arrays, in a given memory
layout, on a given device. Each check is one small function below; each makes one call per
context and does everything else with numpy, except ``position``, which needs about
``probes * H(max_length)`` calls (H the harmonic number: 1,024 probes and lengths 1-65
make about 4,900 calls of at most 65 elements).

Decisions the runner and the views rely on:

* **Units.** An elementwise oracle's unit is an element (its arrays are flattened); a
  row-wise one's is a row (``(rows, C)`` real arrays and 1-D class indices). ``compared``
  counts answers: one per element, ``C`` per row (``rowwise``) or one per row
  (``row_reduce``). :attr:`Mismatch.index` is the unit's position in the cell's inputs (an
  element, or a row, counted across batches as generated, before any is dropped); a
  row-wise mismatch names its column in its context.
* **Out of the domain.** Units whose ``Properties.unit_domain`` arguments are outside
  ``[0, 1]`` or NaN are dropped from every check before anything is called: there the
  exact answer is NaN and ``torch.binary_cross_entropy`` raises. ``bounds`` and
  ``symmetry`` also drop units whose ``unit_args`` are outside ``[0, 1]`` (the logit
  loss is bounded by 0 for labels in [0, 1] only). A note gives the count and the reason.
* **Contexts** (``Consistency.contexts``): position: ``length 2`` ... ``length 65`` and
  ``batch`` (length 1 is the reference, each probe alone, and is not a comparison);
  layout: ``transposed``, ``strided``, ``offset``, ``channels_last``; repeat:
  ``second call``; device: ``cuda``; monotone: ``adjacent inputs``, ``equal inputs``;
  symmetry: ``f(-x) = -f(x)`` (or ``f(-x) = f(x)``), ``L(-x, 1 - y) = L(x, y)`` (or
  ``L(1 - p, 1 - y) = L(p, y)``); bounds: ``lower bound``, ``upper bound``, ``row max``;
  permutation: ``reversed``, ``shuffled``.
* **Probes** (position): every unit when there are at most ``probes`` elements (rows: at
  most ``min(probes, PROBE_ROWS)``), else an even spread over the input order,
  ``floor(i * n / probes)`` for ``i < probes`` (deterministic; it starts at the first
  input). For each length ``L`` the probes go in chunks of ``L`` (the last chunk wraps
  around to the start, so every call has exactly ``L``), which puts every probe at some
  position of every length. Rows of different widths never share a call: probes are
  chained per width. ``lengths`` and ``positions`` come from the sweep only; a difference
  in the ``batch`` context (the batch called whole, as generated) is counted there and
  named in its examples.
* **Reference calls** (alone, contiguous, first call, CPU, f(x)) must return one answer
  per input, or the check stops with :class:`CallFailed`. Any other context that returns
  another number of answers or another dtype than its reference differs at every element,
  and its examples say so (``returned float32 instead of float16``): no crash.
* **Examples**: the first ``k`` differing units in input order, each once, with the first
  context in which it differed (a probe that differs at 49 lengths is one example).
* **Tolerances**: :data:`DEFAULT_TOLERANCE` unless ``Subject.tolerance`` is given, which
  then applies to every comparison of the check. ``symmetry`` keeps parity (bitwise by
  default) and label symmetry (2 ulps) in separate contexts; its ``tolerance`` field is
  the label symmetry's where that is checked.
* ``monotone`` checks one-argument elementwise oracles only; with float32 and float64
  inputs it also calls each input's next larger value (one extra call), so neighbours are
  compared: random inputs of a 32-bit format are otherwise far apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.frameworks.layouts import LAYOUTS, layout_unavailable
from harness.judgement.consistency import CHECKS, Consistency, Mismatch, differs, ulp_distance
from harness.plan.inputs import Batch
from oracles.errors import FpharnessError, UsageError, choices
from oracles.formats import Format, format_of_dtype
from oracles.properties import Properties
from oracles.registry import Oracle

__all__ = ["DEFAULT_TOLERANCE", "PROBE_ROWS", "ROW_ELEMENTS", "Call", "CallFailed", "Subject", "row_lengths", "run_check"]

#: the most rows the position check evaluates alone (a row is up to a few thousand answers)
PROBE_ROWS = 256

#: the most answers one call of the row sweep holds: wider rows are swept at fewer
#: lengths (a 65,537-wide row only alone and in its batch)
ROW_ELEMENTS = 1 << 16


def row_lengths(max_length: int, width: int) -> tuple[int, ...]:
    """The batch lengths (in rows) the position check puts rows of ``width`` in: 1-9 and
    the lengths beside each multiple of 16 (15-17, 31-33, ...) up to ``max_length``, while
    a call holds at most :data:`ROW_ELEMENTS` answers. A row-wise kernel vectorises along
    the row, so the row count matters where the rows are split into blocks, unrolled or
    shared among threads: at small counts and around powers of two. Every length of
    1..max_length would multiply the calls (and a JAX compilation per shape) by three."""
    cap = max(1, ROW_ELEMENTS // max(width, 1))
    return tuple(n for n in range(1, max_length + 1) if n == 1 or (n <= cap and (n <= 9 or (n + 1) % 16 <= 2)))

#: ULPs allowed per comparison when the subject gives none. Self-comparisons and the
#: properties a correctly rounded answer keeps exactly are bitwise; a permuted row and a
#: mirrored loss are other computations of the same truth: an implementation within 1 ulp
#: of the truth is within 2 of itself there. ``label_symmetry`` is the symmetry check's
#: second tolerance (``symmetry`` is its parity's).
DEFAULT_TOLERANCE: Mapping[str, float] = {
    "position": 0.0, "layout": 0.0, "repeat": 0.0, "device": 0.0, "monotone": 0.0,
    "symmetry": 0.0, "label_symmetry": 2.0, "bounds": 0.0, "permutation": 2.0,
}


class CallFailed(FpharnessError):
    """The implementation raised, timed out or returned something that is not an array of
    a float format; ``str`` is one line, led by the context (``length 17: ...``)."""


#: ``call(arrays, layout, device)``: the implementation's output for exactly those inputs
#: (logical values, in the oracle's argument order; ``layout`` one of LAYOUTS, ``device``
#: ``"cpu"`` or ``"cuda"``) as a numpy array in its own output format. Raises CallFailed.
Call = Callable[[Sequence[npt.NDArray[Any]], str, str], npt.NDArray[Any]]


@dataclass(frozen=True, slots=True)
class Subject:
    """What a check examines: an implementation of ``oracle``'s signature (kind and
    arguments: :data:`harness.plan.consistency.UNARY` for an operation without an oracle)
    with bound ``params``, the oracle's declared ``props``, in input format ``fmt`` on
    ``device`` through ``framework``."""

    oracle: Oracle
    params: Mapping[str, Any]
    props: Properties
    fmt: Format
    device: str
    framework: str
    #: ULPs allowed per comparison; None: :data:`DEFAULT_TOLERANCE` of the check
    tolerance: float | None = None
    #: position check: tensors of lengths 1..max_length
    max_length: int = 65
    #: position check: at most this many elements (rows: min(probes, PROBE_ROWS)) alone
    probes: int = 1024
    #: examples kept
    k: int = 10


# -- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class _Piece:
    """One batch after the domain filter: the arrays in argument order (elementwise ones
    flattened) and, per unit, its position in the cell's inputs."""

    arrays: tuple[npt.NDArray[Any], ...]
    origin: npt.NDArray[np.int64]

    @property
    def n(self) -> int:
        return int(self.origin.size)

    @property
    def width(self) -> int:
        """Entries per row (0 for elementwise arrays)."""
        return int(self.arrays[0].shape[1]) if self.arrays[0].ndim == 2 else 0

    def take(self, units: npt.NDArray[np.intp]) -> tuple[npt.NDArray[Any], ...]:
        return tuple(a[units] for a in self.arrays)


def _in_unit(a: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Per unit: every value of ``a`` in [0, 1] (NaN is not)."""
    v = a.astype(np.float64)
    ok: npt.NDArray[np.bool_] = np.asarray((v >= 0.0) & (v <= 1.0))
    return ok if ok.ndim == 1 else np.asarray(ok.reshape(ok.shape[0], -1).all(axis=1))


def _negate(a: npt.NDArray[Any], fmt: Format) -> npt.NDArray[Any]:
    """``-a`` by flipping the sign bit: exact for every value, NaN payloads kept."""
    bits = np.ascontiguousarray(a).view(fmt.uint_dtype)
    sign = np.array(1 << (fmt.bits - 1), dtype=fmt.uint_dtype)
    return np.asarray(bits ^ sign).view(fmt.dtype)


def _one_minus(a: npt.NDArray[Any], fmt: Format) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """``1 - a`` in ``fmt``, and where it is exact with ``a`` in [0, 1]."""
    v = a.astype(np.float64)
    r = 1.0 - v
    # Fast2Sum (|1| >= |v| on [0, 1]): the rounding error of 1 - v is -v - (r - 1), exactly
    exact = _in_unit(v) & (-v - (r - 1.0) == 0.0)
    out = r.astype(fmt.dtype)
    exact &= out.astype(np.float64) == r
    return out, exact


def _spread(total: int, budget: int) -> npt.NDArray[np.int64]:
    """Which of ``total`` units are probes: all, or ``floor(i * total / budget)``."""
    if total <= budget:
        return np.arange(total, dtype=np.int64)
    return (np.arange(budget, dtype=np.int64) * total) // budget


# -- answers of one context -------------------------------------------------------------------


class _Answers:
    """The answers of one context, ``per_call`` from each of ``calls`` calls, in the
    reference's dtype; ``bad`` marks those of a call that returned another dtype or another
    number of answers (kept to show in examples)."""

    def __init__(self, dtype: np.dtype[Any] | None, per_call: int, calls: int = 1) -> None:
        self.dtype = dtype
        self.per_call = per_call
        self.values: npt.NDArray[Any] = np.zeros(per_call * calls, dtype=dtype or np.float64)
        self.bad = np.zeros(per_call * calls, dtype=bool)
        self.failed: dict[int, tuple[npt.NDArray[Any], str]] = {}
        self.src: npt.NDArray[np.intp] | None = None

    def put(self, c: int, out: npt.NDArray[Any], context: str, *, reference: bool = False) -> None:
        """The output of call ``c``; a reference call with the wrong number of answers is a
        :class:`CallFailed` (nothing could be compared with it)."""
        flat = out.ravel()
        if self.dtype is None:
            self.dtype = out.dtype
            self.values = np.zeros(self.bad.size, dtype=out.dtype)
        lo, hi = c * self.per_call, (c + 1) * self.per_call
        if flat.size != self.per_call:
            why = f"returned {flat.size} answers (shape {tuple(out.shape)}) for {self.per_call}"
            if reference:
                raise CallFailed(f"{context}: {why}")
            self.bad[lo:hi] = True
            self.failed[c] = (flat, why)
        elif out.dtype != self.dtype:
            self.bad[lo:hi] = True
            self.failed[c] = (flat, f"returned {out.dtype.name} instead of {self.dtype.name}")
        else:
            self.values[lo:hi] = flat

    def take(self, slots: npt.NDArray[np.intp]) -> _Answers:
        """These answers at ``slots`` (a selection or a permutation)."""
        out = _Answers(self.dtype, self.per_call, 0)
        out.values, out.bad, out.failed = self.values[slots], self.bad[slots], self.failed
        out.src = slots if self.src is None else self.src[slots]
        return out

    def shown(self, j: int) -> tuple[str, str, str]:
        """A bad answer as (got, its value, why): the value in its own format if any."""
        s = int(j if self.src is None else self.src[j])
        c, o = divmod(s, self.per_call)
        flat, why = self.failed[c]
        if o >= flat.size:
            return "no answer", "", why
        fmt = format_of_dtype(flat.dtype)  # Cell.invoke let only float formats through
        return _hex(flat, o, fmt), repr(float(flat[o])), why


def _hex(a: npt.NDArray[Any], i: int, fmt: Format) -> str:
    return fmt.hex_of_bits(int(np.ascontiguousarray(a[i:i + 1]).view(fmt.uint_dtype)[0]))


# -- tallying ------------------------------------------------------------------------------------


Described = tuple[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True, slots=True, eq=False)
class _Where:
    """Where one context's comparisons sit, to count and describe them: per compared unit
    its row in ``arrays`` (the inputs of the call that gave the answers) and its index in
    the cell's inputs; ``u`` answers per unit; ``text`` the context of a mismatch, in which
    ``{p}`` is the unit's entry of ``positions``."""

    arrays: Sequence[npt.NDArray[Any]]
    units: npt.NDArray[np.intp]
    origins: npt.NDArray[np.int64]
    text: str
    u: int = 1
    positions: npt.NDArray[np.intp] | None = None


class _Tally:
    """One check's counts per context, largest distance, lengths, positions and examples."""

    def __init__(self, check: str, tolerance: float, k: int) -> None:
        self.check, self.tolerance, self.k = check, tolerance, k
        self.contexts: dict[str, list[int]] = {}
        self.max_ulp: float | None = None
        self.examples: dict[int, Mismatch] = {}
        self.lengths: set[int] = set()
        self.positions: set[int] = set()
        self.notes: list[str] = []

    def add(self, family: str, compared: int, differing: int) -> None:
        counts = self.contexts.setdefault(family, [0, 0])
        counts[0] += compared
        counts[1] += differing

    def distance(self, ulp: float) -> None:
        self.max_ulp = ulp if self.max_ulp is None else max(self.max_ulp, ulp)

    def offer(self, origins: npt.NDArray[np.int64], make: Callable[[int], Mismatch]) -> None:
        """Candidates (``origins[j]`` the unit of differing comparison ``j``, in the order
        compared): keep the first k units in input order, each with its first mismatch."""
        js = np.arange(origins.size)
        if len(self.examples) >= self.k:
            keep = origins < max(self.examples)
            origins, js = origins[keep], js[keep]
        units, first = np.unique(origins, return_index=True)
        for unit, j in zip(units.tolist(), first.tolist(), strict=True):
            if unit in self.examples:
                continue
            if len(self.examples) >= self.k and unit >= max(self.examples):
                break
            self.examples[unit] = make(int(js[j]))
            if len(self.examples) > self.k:
                del self.examples[max(self.examples)]

    def result(self, notes: Sequence[str] = ()) -> Consistency:
        return Consistency.of(
            self.check, self.tolerance, [(n, c, d) for n, (c, d) in self.contexts.items()],
            max_ulp=self.max_ulp, lengths=self.lengths, positions=self.positions,
            examples=[self.examples[i] for i in sorted(self.examples)], notes=[*self.notes, *notes],
        )


# -- one run ----------------------------------------------------------------------------------


class _Cell:
    """What every check needs: the filtered inputs, the guarded call, descriptions."""

    def __init__(self, check: str, subject: Subject, batches: Sequence[Batch], call: Call) -> None:
        self.check, self.s, self.batches, self.call = check, subject, batches, call
        oracle = subject.oracle
        self.kind = oracle.kind
        self.rows = oracle.kind != "elementwise"
        self.real = [arg.kind == "real" for arg in oracle.args]
        props = subject.props
        # out of the domain (the exact answer NaN) for every check; out of [0, 1] where a
        # bound or the label symmetry holds only there, for those checks
        self.in_domain = check not in ("bounds", "symmetry") or set(props.unit_args) <= set(props.unit_domain)
        names = set(props.unit_domain) | (set() if self.in_domain else set(props.unit_args))
        self.unit_idx = [i for i, arg in enumerate(oracle.args) if arg.kind == "real" and arg.name in names]
        self.dropped: dict[int, int] = {}

    # inputs
    def pieces(self) -> Iterator[_Piece]:
        """The batches without units out of the domain (batches left empty are skipped)."""
        offset = 0
        for b, batch in enumerate(self.batches):
            arrays = tuple(np.asarray(a) for a in batch.arrays)
            if not self.rows:
                arrays = tuple(a.ravel() for a in arrays)
            n = int(arrays[0].shape[0]) if arrays[0].ndim else 1
            origin = np.arange(offset, offset + n, dtype=np.int64)
            offset += n
            if self.unit_idx:
                keep = np.ones(n, dtype=bool)
                for i in self.unit_idx:
                    keep &= _in_unit(arrays[i])
                self.dropped[b] = int(n - keep.sum())
                if not keep.all():
                    arrays, origin = tuple(a[keep] for a in arrays), origin[keep]
            if origin.size:
                yield _Piece(arrays, origin)

    def notes(self) -> list[str]:
        dropped = sum(self.dropped.values())
        if not dropped:
            return []
        names = " or ".join(self.s.oracle.args[i].name for i in self.unit_idx)
        what = "rows" if self.rows else "elements"
        law = "the bound" if self.check == "bounds" else "the label symmetry"
        why = "the exact answer is NaN there" if self.in_domain else f"{law} holds for {names} in [0, 1] only"
        return [f"{dropped} {what} with {names} outside [0, 1] (or NaN) left out: {why}"]

    def per_unit(self, piece: _Piece) -> int:
        """Answers per unit: a row's width for rowwise oracles, else 1."""
        return piece.width if self.kind == "rowwise" else 1

    def tolerance(self, key: str) -> float:
        return float(self.s.tolerance) if self.s.tolerance is not None else float(DEFAULT_TOLERANCE[key])

    def tally(self, key: str | None = None) -> _Tally:
        return _Tally(self.check, self.tolerance(key or self.check), self.s.k)

    # calls
    def invoke(self, arrays: Sequence[npt.NDArray[Any]], context: str, *, layout: str = "contiguous",
               device: str | None = None) -> npt.NDArray[Any]:
        try:
            out = self.call(arrays, layout, device or self.s.device)
        except CallFailed as exc:
            raise CallFailed(f"{context}: {exc}") from exc
        if not isinstance(out, np.ndarray):
            raise CallFailed(f"{context}: returned {type(out).__name__}, not an array")
        try:
            format_of_dtype(out.dtype)
        except UsageError:
            raise CallFailed(f"{context}: returned {out.dtype} answers, not a float format") from None
        return out

    def reference(self, arrays: Sequence[npt.NDArray[Any]], answers: int, context: str, *,
                  device: str | None = None) -> npt.NDArray[Any]:
        """The flat answers of a reference call (one per input, or CallFailed)."""
        out = self.invoke(arrays, context, device=device)
        ans = _Answers(out.dtype, answers)
        ans.put(0, out, context, reference=True)
        return ans.values

    def answers(self, ref: npt.NDArray[Any], arrays: Sequence[npt.NDArray[Any]], context: str, *,
                layout: str = "contiguous", device: str | None = None) -> _Answers:
        """A context call's answers, held against the reference answers ``ref``."""
        ans = _Answers(ref.dtype, ref.size)
        ans.put(0, self.invoke(arrays, context, layout=layout, device=device), context)
        return ans

    # descriptions
    def describe(self, arrays: Sequence[npt.NDArray[Any]], i: int) -> Described:
        """Unit ``i`` of ``arrays`` as InputSet.describer shows it: bits and values of each
        argument; a row's first 8 entries (``...`` for more) and its class indices."""
        fmt = self.s.fmt
        bits: list[str] = []
        values: list[str] = []
        for real, a in zip(self.real, arrays, strict=True):
            if not real or a.dtype.kind in "iub":
                bits.append(str(int(a[i])))
                values.append(str(int(a[i])))
                continue
            entries = a[i] if a.ndim == 2 else a[i:i + 1]
            shown = min(entries.size, 8)
            for j in range(shown):
                bits.append(_hex(entries, j, fmt))
                values.append(repr(float(entries[j])))
            if entries.size > shown:
                bits.append("...")
                values.append("...")
        return tuple(bits), tuple(values)

    def column(self, u: int, j: int) -> str:
        return f", column {j % u}" if self.kind == "rowwise" else ""

    def judge(self, tally: _Tally, family: str, ref: npt.NDArray[Any], got: _Answers, at: _Where, *,
              expected: str, valid: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.bool_]:
        """Compare ``got`` with the reference answers ``ref`` (aligned, flat: ``at.u`` per
        unit) where ``valid``; count them under ``family`` and return where they differ."""
        fmt = format_of_dtype(ref.dtype)
        sel = np.ones(ref.size, dtype=bool) if valid is None else valid
        good = sel & ~got.bad
        diff = sel & got.bad
        if good.any():
            r, g = ref[good], got.values[good]
            diff[good] = differs(r, g, fmt, tally.tolerance)
            tally.distance(float(ulp_distance(r, g, fmt).max()))
        tally.add(family, int(sel.sum()), int(diff.sum()))
        js = np.flatnonzero(diff)

        def make(m: int) -> Mismatch:
            j = int(js[m])
            unit = j // at.u
            bits, values = self.describe(at.arrays, int(at.units[unit]))
            where = at.text.format(p=int(at.positions[unit]) if at.positions is not None else "")
            where += self.column(at.u, j)
            if got.bad[j]:
                shown, value, why = got.shown(j)
                where, ulp = f"{where} ({why})", None
            else:
                shown, value = _hex(got.values, j, fmt), repr(float(got.values[j]))
                ulp = float(ulp_distance(ref[j:j + 1], got.values[j:j + 1], fmt)[0])
            return Mismatch(index=int(at.origins[unit]), context=where, input=bits, input_values=values,
                            expected=f"{expected} {_hex(ref, j, fmt)}", expected_value=repr(float(ref[j])),
                            got=shown, got_value=value, ulp=ulp)

        if js.size:
            tally.offer(at.origins[js // at.u], make)
        return diff


def _units_of(slots: npt.NDArray[np.intp], u: int) -> npt.NDArray[np.intp]:
    """Answer slots of the units ``slots`` (each unit's ``u`` answers, in order)."""
    return np.asarray((slots[:, None] * u + np.arange(u)).ravel(), dtype=np.intp)


# -- the self-comparisons -------------------------------------------------------------------------


def _position(cell: _Cell) -> Consistency:
    s = cell.s
    tally = cell.tally()
    budget = min(s.probes, PROBE_ROWS) if cell.rows else s.probes
    pieces = list(cell.pieces())  # filtered once: the sweep and the batch comparisons share them
    chosen = _spread(sum(p.n for p in pieces), budget)
    # probes of one width share calls: pool them (one pool for elementwise inputs)
    pooled: dict[int, list[tuple[tuple[npt.NDArray[Any], ...], npt.NDArray[np.int64]]]] = {}
    plan: list[tuple[npt.NDArray[np.intp], int, npt.NDArray[np.intp]]] = []
    start = 0
    for piece in pieces:
        n = piece.n
        lo, hi = np.searchsorted(chosen, [start, start + n])
        local = np.asarray(chosen[lo:hi] - start, dtype=np.intp)
        start += n
        parts = pooled.setdefault(piece.width, [])
        before = sum(o.size for _, o in parts)
        parts.append((piece.take(local), piece.origin[local]))
        plan.append((local, piece.width, np.arange(before, before + local.size, dtype=np.intp)))
    pools = {w: (tuple(np.concatenate([a[i] for a, _ in parts]) for i in range(len(parts[0][0]))),
                 np.concatenate([o for _, o in parts]))
             for w, parts in pooled.items()}
    swept = _swept_widths(pools)
    if len(swept) < len(pools):
        others = ", ".join(str(w) for w in sorted(set(pools) - set(swept)))
        tally.notes.append(f"rows of width {others}: alone and in their batch only (batches of 2-65 rows are"
                           f" swept for the {len(swept)} widths with the most rows: {', '.join(map(str, swept))})")
    alone: dict[int, _Answers] = {}
    for width, (arrays, origin) in pools.items():
        lengths = _lengths(cell, tally, width) if width in swept else (1,)
        alone[width] = _sweep(cell, tally, arrays, origin, width if cell.kind == "rowwise" else 1, lengths)
    # each batch whole, as generated: its probes compared with alone
    for piece, (local, width, slots) in zip(pieces, plan, strict=True):
        if not local.size:
            continue
        u = cell.per_unit(piece)
        ref = alone[width]
        rows = " rows" if cell.rows else ""
        ctx = f"the batch of {piece.n}{rows}"
        got = _Answers(ref.dtype, piece.n * u)
        got.put(0, cell.invoke(piece.arrays, ctx), ctx)
        mine, theirs = _units_of(local, u), _units_of(slots, u)
        at = _Where(piece.arrays, local, piece.origin[local], f"in {ctx} at position {{p}}", u, local)
        cell.judge(tally, "batch", ref.values[theirs], got.take(mine), at, expected="alone", valid=~ref.bad[theirs])
        if cell.rows:
            continue
        # the same batch in the shapes a model gives an elementwise op: (batch, features)
        # and (batch, sequence, features), padded by repeating from the start
        padded = -(-piece.n // 64) * 64
        for name, shape in _BATCH_SHAPES.items():
            ctx = f"the batch as {name}"
            got = _Answers(ref.dtype, padded)
            got.put(0, cell.invoke([np.resize(a, padded).reshape(shape) for a in piece.arrays], ctx), ctx)
            at = _Where(piece.arrays, local, piece.origin[local], f"in {ctx} at element {{p}}", u, local)
            cell.judge(tally, f"batch {name}", ref.values[theirs], got.take(mine), at, expected="alone",
                       valid=~ref.bad[theirs])
    return tally.result(cell.notes())


#: the contiguous shapes an elementwise batch is also called in by the position check
_BATCH_SHAPES: Mapping[str, tuple[int, ...]] = {"(n/16, 16)": (-1, 16), "(n/64, 4, 16)": (-1, 4, 16)}


#: row widths swept over batch lengths in one position cell: every (width, length) is a new
#: shape, which JAX compiles anew for every operation of the implementation
ROW_WIDTHS = 2


def _swept_widths(pools: Mapping[int, tuple[tuple[npt.NDArray[Any], ...], npt.NDArray[np.int64]]]) -> list[int]:
    """The widths whose probes go through every batch length: all for elementwise inputs
    (one pool, width 0), else the :data:`ROW_WIDTHS` with the most probe rows (narrower
    first among equals). The others are compared alone against their batch only."""
    ranked = sorted(pools, key=lambda w: (-pools[w][1].size, w))
    return ranked if 0 in pools else ranked[:ROW_WIDTHS]


def _lengths(cell: _Cell, tally: _Tally, width: int) -> tuple[int, ...]:
    """The lengths the probes of ``width`` are swept at (rows: :func:`row_lengths`)."""
    if not cell.rows:
        return tuple(range(1, cell.s.max_length + 1))
    lengths = row_lengths(cell.s.max_length, width)
    if len(lengths) < len(row_lengths(cell.s.max_length, 1)):
        tally.notes.append(f"rows of {width}: in batches of at most {max(lengths)} rows"
                           f" (a call holds at most {ROW_ELEMENTS:,} answers)")
    return lengths


def _sweep(cell: _Cell, tally: _Tally, arrays: tuple[npt.NDArray[Any], ...], origin: npt.NDArray[np.int64],
           u: int, lengths: Sequence[int]) -> _Answers:
    """Call the pooled probes at every position of each of ``lengths`` (1 first: alone);
    return them alone."""
    p = origin.size
    alone: _Answers | None = None
    for length in lengths:
        chunks = -(-p // length)
        idx = np.arange(chunks * length, dtype=np.intp) % p
        laid = [a[idx] for a in arrays]
        ctx = f"length {length}"
        got = _Answers(None if alone is None else alone.dtype, length * u, chunks)
        for c in range(chunks):
            out = cell.invoke([a[c * length:(c + 1) * length] for a in laid], ctx)
            got.put(c, out, ctx, reference=alone is None)
        if alone is None:
            # the probes alone are the reference; one whose answer came in another dtype
            # than the first probe's differs here and is compared no further
            alone = got
            if got.bad.any():
                tally.add(ctx, int(got.bad.sum()), int(got.bad.sum()))
            continue
        ref_slots = _units_of(idx, u)
        at = _Where(arrays, idx, origin[idx], f"at length {length}, position {{p}}", u, np.arange(idx.size) % length)
        diff = cell.judge(tally, ctx, alone.values[ref_slots], got, at, expected="alone", valid=~alone.bad[ref_slots])
        if diff.any():
            tally.lengths.add(length)
            tally.positions.update(np.unique((np.flatnonzero(diff) // u) % length).tolist())
    assert alone is not None
    return alone


#: dimensions an elementwise batch is viewed in for each layout (rows keep theirs)
_LAYOUT_SHAPE: Mapping[str, tuple[int, ...]] = {"transposed": (-1, 8), "channels_last": (-1, 4, 2, 2)}


def _whole(piece: _Piece, text: str, u: int) -> _Where:
    """A context that compares every unit of ``piece`` (described from its own arrays)."""
    return _Where(piece.arrays, np.arange(piece.n, dtype=np.intp), piece.origin, text, u)


def _layout(cell: _Cell) -> Consistency:
    s = cell.s
    tally = cell.tally()
    usable: list[str] = []
    for layout in LAYOUTS[1:]:
        ndim = 2 if cell.rows else len(_LAYOUT_SHAPE.get(layout, (-1,)))
        why = layout_unavailable(s.framework, layout, ndim)
        if why is None:
            usable.append(layout)
        else:
            tally.notes.append(f"{layout}: {why}")
    for piece in cell.pieces():
        u = cell.per_unit(piece)
        ref = cell.reference(piece.arrays, piece.n * u, "contiguous")
        for layout in usable:
            arrays: Sequence[npt.NDArray[Any]] = piece.arrays
            shape = None if cell.rows else _LAYOUT_SHAPE.get(layout)
            if shape is not None:
                # pad (repeating from the start) to a multiple of 16 and view in more dims
                m = -(-piece.n // 16) * 16
                arrays = [np.resize(a, m).reshape(shape) for a in piece.arrays]
            got = _Answers(ref.dtype, arrays[0].size if shape is not None else ref.size)
            got.put(0, cell.invoke(arrays, layout, layout=layout), layout)
            if shape is not None:
                got = got.take(np.arange(piece.n, dtype=np.intp))
            cell.judge(tally, layout, ref, got, _whole(piece, f"in the {layout} layout", u), expected="contiguous")
    return tally.result(cell.notes())


def _repeat(cell: _Cell) -> Consistency:
    tally = cell.tally()
    for piece in cell.pieces():
        u = cell.per_unit(piece)
        ref = cell.reference(piece.arrays, piece.n * u, "first call")
        got = cell.answers(ref, piece.arrays, "second call")
        cell.judge(tally, "second call", ref, got, _whole(piece, "on the second call", u), expected="first call")
    return tally.result(cell.notes())


def _device(cell: _Cell) -> Consistency:
    tally = cell.tally()
    if cell.s.device != "cuda":
        tally.notes.append(f"CPU vs CUDA is checked on cuda cells; this one runs on {cell.s.device}")
        return tally.result()
    for piece in cell.pieces():
        u = cell.per_unit(piece)
        ref = cell.reference(piece.arrays, piece.n * u, "cpu", device="cpu")
        got = cell.answers(ref, piece.arrays, "cuda", device="cuda")
        cell.judge(tally, "cuda", ref, got, _whole(piece, "on cuda", u), expected="cpu")
    return tally.result(cell.notes())


# -- the properties ---------------------------------------------------------------------------------


def _monotone(cell: _Cell) -> Consistency:
    s = cell.s
    tally = cell.tally()
    direction = s.props.monotone
    if direction not in ("increasing", "decreasing"):
        tally.notes.append(f"not declared monotone ({direction!r})" if direction else "not declared monotone")
        return tally.result(cell.notes())
    if cell.kind != "elementwise" or len(s.oracle.args) != 1:
        tally.notes.append("monotonicity is checked for one-argument elementwise oracles only")
        return tally.result(cell.notes())
    xs: list[npt.NDArray[Any]] = []
    ys: list[npt.NDArray[Any]] = []
    origins: list[npt.NDArray[np.int64]] = []
    for piece in cell.pieces():
        xs.append(piece.arrays[0])
        ys.append(cell.reference(piece.arrays, piece.n, "the inputs"))
        origins.append(piece.origin)
    if not xs:
        return tally.result(cell.notes())
    dtype = ys[0].dtype
    if any(y.dtype != dtype for y in ys):
        tally.notes.append(f"batches answered in {sorted({y.dtype.name for y in ys})}: only {dtype.name} ones compared")
        keep = [i for i, y in enumerate(ys) if y.dtype == dtype]
        xs, ys, origins = [xs[i] for i in keep], [ys[i] for i in keep], [origins[i] for i in keep]
    x, y, origin = np.concatenate(xs), np.concatenate(ys), np.concatenate(origins)
    if s.fmt.bits > 16:
        # random inputs of a 32-bit format are far apart: add each one's upper neighbour
        up = s.fmt.next_up(x)
        new = up.view(s.fmt.uint_dtype) != x.view(s.fmt.uint_dtype)
        if new.any():
            ctx = "the inputs' next larger values"
            got = _Answers(dtype, int(new.sum()))
            got.put(0, cell.invoke([up[new]], ctx), ctx, reference=True)
            if got.bad.any():
                tally.notes.append(f"{ctx} {got.failed[0][1]}: not compared")
            else:
                x, y = np.concatenate([x, up[new]]), np.concatenate([y, got.values])
                origin = np.concatenate([origin, origin[new]])
    ofmt = format_of_dtype(dtype)
    xv, yv = x.astype(np.float64), y.astype(np.float64)
    kept = np.flatnonzero(~np.isnan(xv) & ~np.isnan(yv))
    increasing = direction == "increasing"
    order = kept[np.lexsort((yv[kept] if increasing else -yv[kept], xv[kept]))]
    a, b = order[:-1], order[1:]
    dist = ulp_distance(y[a], y[b], ofmt)
    equal = xv[a] == xv[b]
    wrong = (yv[b] < yv[a]) if increasing else (yv[b] > yv[a])
    over = dist > tally.tolerance
    bad_eq, bad_adj = equal & over, ~equal & wrong & over
    tally.add("adjacent inputs", int((~equal).sum()), int(bad_adj.sum()))
    if equal.any():
        tally.add("equal inputs", int(equal.sum()), int(bad_eq.sum()))
    tally.distance(float(dist[bad_eq | bad_adj].max()) if (bad_eq | bad_adj).any() else 0.0)
    fmt = s.fmt
    js = np.flatnonzero(bad_eq | bad_adj)

    def make(m: int) -> Mismatch:
        i = int(js[m])
        ia, ib = int(a[i]), int(b[i])
        if equal[i]:
            context, expected = f"beside the equal input x = {_hex(x, ia, fmt)} ({float(x[ia])!r})", "the same as"
        else:
            context = f"above x = {_hex(x, ia, fmt)} ({float(x[ia])!r})"
            expected = "at least" if increasing else "at most"
        return Mismatch(index=int(origin[ib]), context=context, input=(_hex(x, ib, fmt),),
                        input_values=(repr(float(x[ib])),), expected=f"{expected} {_hex(y, ia, ofmt)}",
                        expected_value=repr(float(y[ia])), got=_hex(y, ib, ofmt), got_value=repr(float(y[ib])),
                        ulp=float(dist[i]))

    if js.size:
        tally.offer(origin[b[js]], make)
    return tally.result(cell.notes())


def _symmetry(cell: _Cell) -> Consistency:
    s = cell.s
    props = s.props
    parity, label = props.parity, props.label_symmetry
    tally = cell.tally("label_symmetry" if label else "symmetry")
    t_parity = cell.tolerance("symmetry")
    n_real = sum(cell.real)
    if parity and (cell.kind != "elementwise" or n_real != 1):
        tally.notes.append(f"parity ({parity}) is checked for one-argument elementwise oracles only")
        parity = ""
    if label and (cell.kind != "elementwise" or n_real != 2):
        tally.notes.append(f"label symmetry ({label}) is checked for two-argument elementwise losses only")
        label = ""
    if parity and label and t_parity != tally.tolerance:
        tally.notes.append(f"parity compared within {t_parity:g} ulp, label symmetry within {tally.tolerance:g}")
    if not (parity or label):
        if not tally.notes:
            tally.notes.append("no symmetry declared")
        return tally.result(cell.notes())
    fmt = s.fmt
    for piece in cell.pieces():
        if parity:
            x = piece.arrays[0]
            fx = cell.reference([x], piece.n, "f(x)")
            neg = _negate(x, fmt)
            got = cell.answers(fx, [neg], "f(-x)")
            odd = parity == "odd"
            want = _negate(fx, format_of_dtype(fx.dtype)) if odd else fx
            # at x = ±0 an odd function's answer may be a zero of either sign (the truth has
            # no signed zero): two zeros agree there
            with np.errstate(invalid="ignore"):
                zeros = (x.astype(np.float64) == 0) & (want == 0) & (got.values == 0) & ~got.bad
            want = np.where(zeros, got.values, want) if odd else want
            family = "f(-x) = -f(x)" if odd else "f(-x) = f(x)"
            saved, tally.tolerance = tally.tolerance, t_parity
            at = _Where([neg], np.arange(piece.n, dtype=np.intp), piece.origin, "as f(-x)")
            cell.judge(tally, family, want, got, at, expected="-f(x) =" if odd else "f(x) =",
                       valid=~np.isnan(x.astype(np.float64)))
            tally.tolerance = saved
        if label:
            first, y = piece.arrays
            y1, ok = _one_minus(y, fmt)
            if label == "probabilities":
                first1, ok_first = _one_minus(first, fmt)
                ok &= ok_first
                family, mirrored, word = "L(1 - p, 1 - y) = L(p, y)", "as L(1 - p, 1 - y)", "L(p, y) ="
            else:
                first1 = _negate(first, fmt)
                ok &= ~np.isnan(first.astype(np.float64))
                family, mirrored, word = "L(-x, 1 - y) = L(x, y)", "as L(-x, 1 - y)", "L(x, y) ="
            sel = np.flatnonzero(ok)
            if not sel.size:
                continue
            ref = cell.reference([first[sel], y[sel]], sel.size, word.removesuffix(" ="))
            pair = [first1[sel], y1[sel]]
            got = cell.answers(ref, pair, mirrored.removeprefix("as "))
            at = _Where(pair, np.arange(sel.size, dtype=np.intp), piece.origin[sel], mirrored)
            cell.judge(tally, family, ref, got, at, expected=word)
    return tally.result(cell.notes())


def _bounds(cell: _Cell) -> Consistency:
    s = cell.s
    props = s.props
    # a bound is a value of every format and the answer must not cross it: no ULPs allowed
    tally = _Tally(cell.check, 0.0, s.k)
    if s.tolerance:
        tally.notes.append(f"bounds are exact: the tolerance of {s.tolerance:g} ulp does not apply")
    row_max = props.at_least_row_max
    if row_max and cell.kind != "row_reduce":
        tally.notes.append("the row-max bound applies to row reductions only")
        row_max = False
    if props.lower is None and props.upper is None and not row_max:
        if not tally.notes:
            tally.notes.append("no bounds declared")
        return tally.result(cell.notes())
    for piece in cell.pieces():
        u = cell.per_unit(piece)
        out = cell.reference(piece.arrays, piece.n * u, "the inputs")
        v = out.astype(np.float64)
        answered = ~np.isnan(v)
        if props.lower is not None:
            _bound(cell, tally, piece, out, "lower bound", answered, np.full(v.size, float(props.lower)), "at least")
        if props.upper is not None:
            _bound(cell, tally, piece, out, "upper bound", answered, np.full(v.size, float(props.upper)), "at most")
        if row_max:
            with np.errstate(invalid="ignore"):
                top = piece.arrays[0].astype(np.float64).max(axis=1)
            _bound(cell, tally, piece, out, "row max", answered & ~np.isnan(top), top, "at least the row max")
    return tally.result(cell.notes())


def _bound(cell: _Cell, tally: _Tally, piece: _Piece, out: npt.NDArray[Any], family: str,
           sel: npt.NDArray[np.bool_], limit: npt.NDArray[np.float64], phrase: str) -> None:
    """Count the answers ``out`` (where ``sel``) beyond ``limit`` (one per answer):
    below it for ``at least ...``, above it for ``at most``."""
    u = cell.per_unit(piece)
    v = out.astype(np.float64)
    beyond = sel & ((v > limit) if phrase == "at most" else (v < limit))
    tally.add(family, int(sel.sum()), int(beyond.sum()))
    js = np.flatnonzero(beyond)
    ofmt = format_of_dtype(out.dtype)
    where = {"lower bound": "below the lower bound", "upper bound": "above the upper bound"}.get(family, "below the row max")

    def make(m: int) -> Mismatch:
        j = int(js[m])
        bits, values = cell.describe(piece.arrays, j // u)
        bound = float(limit[j])
        shown = repr(bound) if family == "row max" else f"{bound:g}"
        return Mismatch(index=int(piece.origin[j // u]), context=where + cell.column(u, j), input=bits,
                        input_values=values, expected=f"{phrase} {shown}", expected_value=repr(bound),
                        got=_hex(out.ravel(), j, ofmt), got_value=repr(float(out.ravel()[j])))

    if js.size:
        tally.offer(piece.origin[js // u], make)


def _permutation(cell: _Cell) -> Consistency:
    s = cell.s
    tally = cell.tally()
    kind = s.props.permutation
    if not kind or not cell.rows:
        tally.notes.append("no permutation property declared" if not kind else
                           f"permutation ({kind}) is checked for row-wise oracles only")
        return tally.result(cell.notes())
    equivariant = kind == "equivariant"
    for piece in cell.pieces():
        width, u = piece.width, cell.per_unit(piece)
        ref = cell.reference(piece.arrays, piece.n * u, "unpermuted")
        for name, perm in (("reversed", np.arange(width)[::-1]),
                           ("shuffled", np.random.default_rng(0).permutation(width))):
            inv = np.argsort(perm)
            arrays = [a[:, perm] if real else inv[a] for real, a in zip(cell.real, piece.arrays, strict=True)]
            got = cell.answers(ref, arrays, name)
            if equivariant and cell.kind == "rowwise":
                # column c of the row is column inv[c] of the permuted one
                got = got.take(np.asarray((np.arange(piece.n)[:, None] * width + inv[None, :]).ravel(), dtype=np.intp))
            cell.judge(tally, name, ref, got, _whole(piece, f"with the row {name}", u), expected="unpermuted")
    return tally.result(cell.notes())


_CHECKS: Mapping[str, Callable[[_Cell], Consistency]] = {
    "position": _position, "layout": _layout, "repeat": _repeat, "device": _device,
    "monotone": _monotone, "symmetry": _symmetry, "bounds": _bounds, "permutation": _permutation,
}


def run_check(check: str, subject: Subject, batches: Sequence[Batch], call: Call) -> Consistency:
    """Run consistency check ``check`` (one of CHECKS) of ``subject`` on the cell's input
    ``batches`` through ``call``, and return what it found.

    Raises :class:`CallFailed` when a call fails (its message leads with the context,
    ``length 1: ...``) or a reference call returns the wrong number of answers, and
    :class:`UsageError` for an unknown check or a subject whose sizes are not positive."""
    if check not in _CHECKS:
        raise UsageError(f"unknown consistency check {check!r}; {choices(CHECKS, given=check)}")
    for name in ("max_length", "probes", "k"):
        value = getattr(subject, name)
        if not isinstance(value, int) or value < 1:
            raise UsageError(f"consistency check {check}: {name} must be a positive integer, got {value!r}")
    if subject.tolerance is not None and not (subject.tolerance >= 0 and not math.isnan(subject.tolerance)):
        raise UsageError(f"consistency check {check}: tolerance must be a number of ULPs >= 0, got {subject.tolerance!r}")
    return _CHECKS[check](_Cell(check, subject, batches, call))
