"""The judge's inner loop: one fused, blocked pass over a batch that yields everything a
cell keeps about it.

:mod:`harness.judgement.definitions` defines what a verdict *is* (categories, ULP error, the
bins) and :mod:`harness.judgement.summary` the exact mergeable
:class:`~harness.judgement.summary.Summary`; this module computes it fast enough that
judging a 2**24-element float32 batch costs about as much as calling a framework on it.
The straightforward formulation (ten whole-array passes, then a sort for the histogram,
another for the exact sum and a third for the worst elements) took 7 s for 2**24
elements against 0.1 s for ``torch.nn.functional.softplus``.

What makes it fast, and why each step is still exact:

* **Blocks** of :data:`BLOCK` elements, so every temporary stays in the core's cache (a
  numpy pass over an array in cache is 20-40 times cheaper than over one that is not).
  Threads do not help: numpy's ``bincount``, ``take`` and ``ufunc.at`` hold the GIL, and
  two threads judged a batch no faster than one; ``-j`` spreads cells over processes.
* **ULP error** ``|c 2**-e - hi - lo|``: the power of two is built from its exponent
  bits (``ldexp`` is five times slower) wherever 2**-e is a normal float64; scaling by a
  power of two is exact either way.
* **Histogram without sorting**: the fine bin ``ceil(16 log2 err)`` comes from a 2**16
  table indexed by the top mantissa bits of ``err`` (of ``bits(err) - 1`` in fact, so that
  an exact power of two lands in the bin it closes, as bins are right-closed). The 15
  table slots that contain an irrational bin edge ``2**(j/16)`` are marked, and their few
  elements compare their mantissa with the correctly rounded edge. ``np.bincount`` then
  counts the keys; NaN and infinite errors get keys of their own at the top.
* **Exact sum without sorting**: each error splits into its top 27 significant bits and
  the exact remainder; per binade, ``bincount`` with weights adds each part in float64
  without rounding (at most :data:`FLUSH` terms of at most 28 bits into 53), and the
  partial sums are turned into one Python integer (units of 2**-1074) before they could
  overflow that.
* **Worst elements without sorting**: a running threshold (the k-th largest error so
  far); a block only offers the elements above it. Blocks come in position order, so an
  element equal to the threshold never displaces an earlier one.
* **Categories only where they can apply**: each needs a NaN or infinite result or
  truth, a zero result, or an infinite rounded truth; a block counts those and classifies
  just that subset (often empty).
* **Only where the result differs from the truth's rounding** (:class:`Baseline`): the
  correctly rounded result is judged once per batch; a cell then judges only its elements
  that differ from it (2% of a 2**24 batch for torch's float32 softplus) and corrects the
  baseline's totals by them. With it a 2**24-element cell costs about 2.3 times the bare
  ``torch.nn.functional.softplus`` call (benchmarks/bench_overhead.py), down from 70.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from mpmath import mp, mpf

from harness.judgement.definitions import (
    BINS_PER_OCTAVE,
    CATEGORIES,
    LOWEST_BIN,
    SUM_SHIFT,
    ULP_ERR_MAX,
    category_indices,
)
from harness.judgement.error_vs_input import COLUMNS, PROFILE_VERSION, bucket_of
from oracles.formats import Format
from oracles.reference import Reference

__all__ = ["BLOCK", "Baseline", "ProfileInputs", "Tally", "tally"]

BLOCK = 1 << 16  # measured: 2**15 and 2**17 are 10-20% slower, 2**20 60%
#: terms per float64 partial sum before it is turned into an integer: 2**25 terms of at
#: most 28 significant bits (27 plus a carry into the next binade) fit in 53
FLUSH = 1 << 25
_BPO = BINS_PER_OCTAVE  # short: the bin arithmetic below uses it everywhere
_HI_MASK = np.int64(~((1 << 26) - 1))  # keeps sign, exponent and the top 26 stored bits
#: keys at or above this are NaN or infinite errors: bits(inf) - 1 has exponent field 2046
#: and a full mantissa (bin 16), NaN has 2047; the largest finite error kept, 2**1023, has
#: key 2046 * 16
_NONFINITE_KEY = 2046 * _BPO + _BPO
_KEY_OFFSET = 1023 * _BPO  # key - _KEY_OFFSET is the fine-bin key of harness.judgement.summary
_NKEYS = 2048 * _BPO + 1


def _edge_tables() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(slot table, edge mantissas). ``table[i]`` is the fine bin within an octave of every
    w whose top 16 mantissa bits are i, or 16 + j when slot i holds the edge 2**(j/16)
    (then the bin is j or j + 1). ``edges[j]`` is the 52-bit mantissa of the correctly
    rounded 2**(j/16)."""
    edges = np.zeros(_BPO + 1, dtype=np.int64)
    with mp.workprec(200):
        for j in range(1, _BPO):
            v = float(mp.power(2, mpf(j) / _BPO))  # correctly rounded: one rounding from 200 bits
            edges[j] = np.array([v]).view(np.int64)[0] & ((1 << 52) - 1)
    slots = np.arange(1 << 16, dtype=np.int64)
    # bin of slot i: 1 + the number of edges below the slot's first value
    starts = slots << 36
    table = np.ones(1 << 16, dtype=np.int64)
    for j in range(1, _BPO):
        table += starts > edges[j]
        holder = int(edges[j] >> 36)
        table[holder] = _BPO + j  # marked: resolved element by element
    return table, edges


_TABLE64, _EDGES = _edge_tables()
_TABLE = _TABLE64.astype(np.int8)  # 64 KiB: stays in cache while blocks stream past


@dataclass
class _Acc:
    """Running totals over the blocks judged so far."""

    k_worst: int
    k_examples: int
    keys: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(_NKEYS, dtype=np.int64))
    sum_hi: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(2048))
    sum_lo: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(2048))
    pending: int = 0
    ulp_sum: int = 0
    ulp_max: float = math.nan
    correct: int = 0
    counts: list[int] = field(default_factory=lambda: [0] * 6)
    ftz: list[int] = field(default_factory=lambda: [0, 0, 0])
    worst_err: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    worst_idx: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    examples: list[list[int]] = field(default_factory=lambda: [[] for _ in range(6)])
    profile: _ProfileAcc | None = None

    def flush(self) -> None:
        self.ulp_sum += _exact_total(self.sum_hi) + _exact_total(self.sum_lo)
        self.sum_hi[:] = 0
        self.sum_lo[:] = 0
        self.pending = 0


def _exact_total(sums: npt.NDArray[np.float64]) -> int:
    """sum(sums) as an exact integer count of 2**-1074 (every entry is a float64, exact).
    The last slot, binade 2047, collected the NaN and infinite errors: not part of it."""
    total = 0
    finite = sums[:2047]
    for v in finite[np.flatnonzero(finite)].tolist():
        num, den = float(v).as_integer_ratio()
        total += num * ((1 << SUM_SHIFT) // den) if den <= (1 << SUM_SHIFT) else 0
    return total


@dataclass(frozen=True, eq=False)
class ProfileInputs:
    """The input side of an error profile (see :mod:`harness.judgement.error_vs_input`): each input's
    bucket, and per bucket the count and the smallest and largest input. It depends on
    the inputs only, so a runner computes it once per batch and shares it among every
    implementation judged on that batch."""

    format: Format
    bins: int
    x: npt.NDArray[np.float64]
    slots: npt.NDArray[np.intp]  # bucket + 1 per input (native ints: ufunc.at's fast path)
    n: npt.NDArray[np.int64]
    x_lo: npt.NDArray[np.float64]
    x_hi: npt.NDArray[np.float64]

    @staticmethod
    def of(x: npt.ArrayLike, fmt: Format, bins: int = 256) -> ProfileInputs:
        """``x``: the first real input of every element, exact float64 values of ``fmt``."""
        xs = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
        m = bins + 3  # slot = bucket + 1: slot 0 is the input -inf, bins + 1 +inf, bins + 2 NaN
        slots = np.empty(xs.size, dtype=np.intp)
        n = np.zeros(m, dtype=np.int64)
        x_lo, x_hi = np.full(m, np.nan), np.full(m, np.nan)
        with np.errstate(invalid="ignore"):  # NaN inputs keep their bucket's ends NaN
            for s in range(0, xs.size, BLOCK):  # in cache-sized blocks, as the judge works
                t = min(s + BLOCK, xs.size)
                b = slots[s:t] = _buckets(xs[s:t], fmt, bins)
                n += np.bincount(b, minlength=m)
                np.fmin.at(x_lo, b, xs[s:t])
                np.fmax.at(x_hi, b, xs[s:t])
        return ProfileInputs(fmt, bins, xs, slots, n, x_lo, x_hi)


@dataclass
class _ProfileAcc:
    """Per-bucket running aggregates of the error side of a profile."""

    max_ulp: npt.NDArray[np.float64]
    over: npt.NDArray[np.int64]
    cat_n: npt.NDArray[np.int64]  # (6, slots)
    cat_lo: npt.NDArray[np.float64]
    cat_hi: npt.NDArray[np.float64]

    @staticmethod
    def new(slots: int) -> _ProfileAcc:
        return _ProfileAcc(np.full(slots, -1.0), np.zeros(slots, np.int64), np.zeros((6, slots), np.int64),
                           np.full((6, slots), np.nan), np.full((6, slots), np.nan))


@dataclass(frozen=True)
class Tally:
    """Everything judged about one batch, before it becomes a Summary.

    ``bins`` maps harness.judgement.summary fine-bin keys to counts (errors below 2**-24 folded into
    the lowest); ``worst`` are (error, flat index) pairs, largest first, ties by position;
    ``examples`` the first positions per category; ``ftz`` is (subnormal truths returned
    as 0, other non-zero truths returned as 0, subnormal results)."""

    n: int
    correct: int
    counts: tuple[int, ...]
    ulp_count: int
    ulp_zero: int
    ulp_max: float
    ulp_sum: int
    bins: dict[int, int]
    worst: list[tuple[float, int]]
    examples: list[list[int]]
    ftz: tuple[int, int, int]
    profile: dict[str, Any] | None


def tally(
    ref: Reference,
    got: npt.NDArray[Any],
    out_format: Format,
    *,
    k_worst: int = 10,
    k_examples: int = 3,
    profile: ProfileInputs | None = None,
    baseline: Baseline | None = None,
) -> Tally:
    """Judge ``got`` (flat, any float dtype) against ``ref`` (flat, same size).

    With ``profile`` (built from the same batch's inputs), also build the error profile of
    :mod:`harness.judgement.error_vs_input`. With ``baseline`` (:meth:`Baseline.of` the same reference and
    profile), only the elements where ``got`` differs from the correctly rounded result
    are judged; the result is identical either way."""
    got = np.ascontiguousarray(got).reshape(-1)
    n = got.size
    if n != ref.size:
        raise ValueError(f"got {n} values for {ref.size} reference elements")
    if profile is not None and profile.x.size != n:
        raise ValueError(f"profile inputs hold {profile.x.size} elements, the batch {n}")
    if baseline is not None:
        fast = _with_baseline(baseline, ref, got, out_format, k_worst, k_examples, profile)
        if fast is not None:
            return fast
    acc = _Acc(k_worst, k_examples)
    if profile is not None:
        acc.profile = _ProfileAcc.new(profile.n.size)
    _accumulate(acc, _flat(ref), got, out_format, _prof_arrays(profile), None)
    return _combine(acc, n, k_worst, k_examples, profile)


def _flat(ref: Reference) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64],
                                   npt.NDArray[np.int32]]:
    return (np.ascontiguousarray(ref.want, dtype=np.float64).reshape(-1),
            np.ascontiguousarray(ref.hi, dtype=np.float64).reshape(-1),
            np.ascontiguousarray(ref.lo, dtype=np.float64).reshape(-1),
            np.ascontiguousarray(ref.ulp_exp, dtype=np.int32).reshape(-1))


_Arrays = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int32]]
_ProfArrays = tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]


def _accumulate(acc: _Acc, ref: _Arrays, got: npt.NDArray[Any], out_format: Format,
                prof: _ProfArrays | None, where: npt.NDArray[np.intp] | None) -> None:
    """Add elements to ``acc``: ``ref`` (want, hi, lo, ulp_exp) and ``prof`` (profile slots
    and inputs) hold the same elements as ``got``, which sit at positions ``where`` of the
    batch (None: all of it, in order)."""
    want, hi, lo, ue = ref
    sn = out_format.smallest_normal
    for s in range(0, got.size, BLOCK):
        t = min(s + BLOCK, got.size)
        _block(acc, s if where is None else where[s:t], got[s:t], want[s:t], hi[s:t], lo[s:t], ue[s:t], sn,
               None if prof is None else (prof[0][s:t], prof[1][s:t]))
    acc.flush()


def _prof_arrays(profile: ProfileInputs | None) -> _ProfArrays | None:
    return None if profile is None else (profile.slots, profile.x)


#: how many worst elements of the correctly rounded result a Baseline keeps
BASELINE_K = 32


@dataclass(frozen=True, eq=False)
class Baseline:
    """The correctly rounded result judged against its own reference, once per batch.

    Where a result matches it bit for bit at a "plain" element (the truth and its
    rounding finite), the element has the baseline's ULP error (at most 1/2) and no
    category. So judging an implementation only needs the elements where it differs or
    that are not plain: every additive total is the baseline's, minus the baseline's share
    of those elements, plus theirs. Maxima and worst elements do not subtract; they are
    exact whenever a differing element reaches 1/2 ulp (every differing finite result
    does: R(y) is the nearest value to y), and otherwise :func:`tally` judges the whole
    batch instead. Results are identical either way. A runner builds one per batch and
    output format and shares it among the cells of the batch."""

    acc: _Acc
    want: npt.NDArray[Any]  # R(y) in the output format's dtype
    bits: npt.NDArray[Any]  # its bit patterns
    plain: npt.NDArray[np.bool_]
    size: int

    @staticmethod
    def of(ref: Reference, out_format: Format, profile: ProfileInputs | None = None) -> Baseline:
        want, hi, _, _ = _flat(ref)
        # want holds values of the format, so the cast is exact (no rounding to double)
        with np.errstate(invalid="ignore"):
            native = np.ascontiguousarray(want.astype(out_format.dtype)).reshape(-1)
        acc = _Acc(BASELINE_K, 0)
        if profile is not None:
            acc.profile = _ProfileAcc.new(profile.n.size)
        _accumulate(acc, _flat(ref), native, out_format, _prof_arrays(profile), None)
        plain = np.isfinite(hi) & np.isfinite(want)
        return Baseline(acc, native, native.view(out_format.uint_dtype), plain, int(want.size))


def _with_baseline(base: Baseline, ref: Reference, got: npt.NDArray[Any], out_format: Format, k_worst: int,
                   k_examples: int, profile: ProfileInputs | None) -> Tally | None:
    """tally() through ``base``, or None where only judging every element is exact."""
    n = got.size
    if got.dtype != base.want.dtype or n != base.size or k_worst > BASELINE_K:
        return None
    if (profile is None) != (base.acc.profile is None):
        return None
    gb = got.view(base.bits.dtype)
    picks = []
    for s in range(0, n, BLOCK):
        t = min(s + BLOCK, n)
        r = gb[s:t] != base.bits[s:t]
        r |= ~base.plain[s:t]
        picks.append(np.flatnonzero(r) + s)
    where = np.concatenate(picks) if picks else np.zeros(0, dtype=np.intp)
    if where.size > n // 2:
        return None  # as cheap to judge everything
    pos = _Acc(k_worst, k_examples)
    neg = _Acc(0, 0)
    if profile is not None:
        pos.profile = _ProfileAcc.new(profile.n.size)
        neg.profile = _ProfileAcc.new(profile.n.size)
    # gathered once for both passes: these reads are scattered over the whole batch
    sub = tuple(a[where] for a in _flat(ref))
    sub_prof = None if profile is None else (profile.slots[where], profile.x[where])
    _accumulate(pos, sub, got[where], out_format, sub_prof, where)  # type: ignore[arg-type]
    _accumulate(neg, sub, base.want[where], out_format, sub_prof, where)  # type: ignore[arg-type]
    b = base.acc
    differing_plain = where[base.plain[where]]
    # the largest error: a differing plain element is at least 1/2 ulp away (or is R(y)
    # with the other sign of zero, whose small error sends us to the fallbacks), a
    # matching one (R(y) itself) at most 1/2 ulp
    if not math.isnan(pos.ulp_max) and pos.ulp_max >= 0.5:
        ulp_max = pos.ulp_max
    else:
        if b.worst_idx.size and np.isin(b.worst_idx[:1], where).any():
            return None
        maxes = [v for v in (pos.ulp_max, float(b.worst_err[0]) if b.worst_err.size else math.nan)
                 if not math.isnan(v)]
        ulp_max = max(maxes) if maxes else math.nan
    # the worst elements
    if k_worst and (pos.worst_err.size < k_worst or pos.worst_err[k_worst - 1] <= 0.5):
        keep = ~np.isin(b.worst_idx, where)
        complete = b.worst_idx.size < BASELINE_K  # then the list holds every finite error
        if not complete and int(np.count_nonzero(keep)) < k_worst:
            return None
        errs = np.concatenate([pos.worst_err, b.worst_err[keep]])
        idxs = np.concatenate([pos.worst_idx, b.worst_idx[keep]])
        order = np.lexsort((idxs, -errs))[:k_worst]
        worst_err, worst_idx = errs[order], idxs[order]
    else:
        worst_err, worst_idx = pos.worst_err[:k_worst], pos.worst_idx[:k_worst]
    out = _Acc(k_worst, k_examples)
    out.keys = b.keys - neg.keys + pos.keys
    out.ulp_sum = b.ulp_sum - neg.ulp_sum + pos.ulp_sum
    out.ulp_max = ulp_max
    out.correct = b.correct - neg.correct + pos.correct
    out.counts = [x - y + z for x, y, z in zip(b.counts, neg.counts, pos.counts, strict=True)]
    out.ftz = [x - y + z for x, y, z in zip(b.ftz, neg.ftz, pos.ftz, strict=True)]
    out.worst_err, out.worst_idx = worst_err, worst_idx
    out.examples = pos.examples  # a matching plain element has no category
    if profile is not None:
        bp, np_, pp = b.profile, neg.profile, pos.profile
        assert bp is not None and np_ is not None and pp is not None
        # a bucket holding a differing plain element has its maximum among the differing
        # ones (>= 1/2, and the baseline's <= 1/2 there) unless that element's result is
        # NaN or infinite; the baseline's maximum of such a bucket may be that element's
        touched = np.bincount(profile.slots[differing_plain], minlength=pp.max_ulp.size) > 0
        if np.any(touched & (pp.max_ulp < 0.5)):
            return None
        out.profile = _ProfileAcc(
            np.maximum(pp.max_ulp, bp.max_ulp),
            bp.over - np_.over + pp.over,
            bp.cat_n - np_.cat_n + pp.cat_n,
            pp.cat_lo, pp.cat_hi,
        )
    return _combine(out, n, k_worst, k_examples, profile)


def _block(acc: _Acc, where: int | npt.NDArray[np.intp], g: npt.NDArray[Any], want: npt.NDArray[np.float64], hi: npt.NDArray[np.float64],
           lo: npt.NDArray[np.float64], e: npt.NDArray[np.int32], sn: float,
           prof: tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]] | None) -> None:
    with np.errstate(all="ignore"):
        c = g.astype(np.float64)
        e_min, e_max = int(e.min()), int(e.max())
        big = None
        if -200 <= e_min and e_max <= 1022 and g.dtype.itemsize <= 4:
            # |c| < 2**128 and 2**-e <= 2**200: no overflow, so err is finite exactly
            # where c and hi are, and needs no saturation (formats of up to 32 bits have
            # ulp exponents of -149 and above)
            scale = np.subtract(1023, e, dtype=np.int64)
            np.left_shift(scale, 52, out=scale)
            err = c * scale.view(np.float64)
            err -= hi
            err -= lo
            np.abs(err, out=err)
        else:
            err = np.ldexp(c, -e.astype(np.int64))
            err -= hi
            err -= lo
            np.abs(err, out=err)
            err[~(np.isfinite(c) & np.isfinite(hi))] = np.nan
            np.minimum(err, ULP_ERR_MAX, out=err)
            # float64 sums of errors this large could overflow: those are added exactly
            big = np.flatnonzero(err >= 2.0**960)
        bits = err.view(np.int64)
        w = bits - 1
        slot = w >> 36
        slot &= 0xFFFF
        sub = np.take(_TABLE, slot)
        marked = sub > _BPO
        if marked.any():
            i = np.flatnonzero(marked)
            j = sub[i].astype(np.int64) - _BPO
            sub[i] = j + ((w[i] & ((1 << 52) - 1)) >= _EDGES[j])
        key = w >> 52
        key <<= 4
        key += sub  # err == 0 gives key 0 (w = -1, slot 0xFFFF: bin 16); nothing else does
        counted = np.bincount(key, minlength=_NKEYS)
        acc.keys += counted[:_NKEYS]
        nonfinite = int(counted[_NONFINITE_KEY:].sum())
        ex = bits >> 52
        part_hi = (bits & _HI_MASK).view(np.float64)
        part_lo = err - part_hi
        if big is not None and big.size:
            acc.ulp_sum += sum(_exact_total(np.array([v])) for v in err[big].tolist())
            part_hi[big] = 0.0
            part_lo[big] = 0.0
        acc.sum_hi += np.bincount(ex, weights=part_hi, minlength=2048)[:2048]
        acc.sum_lo += np.bincount(ex, weights=part_lo, minlength=2048)[:2048]
        acc.pending += g.size
        if acc.pending + BLOCK > FLUSH:
            acc.flush()
        acc.correct += int(np.count_nonzero(c == want))
        zero = c == 0
        zeros = int(np.count_nonzero(zero))
        acc.ftz[2] += int(np.count_nonzero(np.abs(c) < sn)) - zeros
        # Every category needs a NaN or infinite result or truth (a non-finite error), an
        # infinite rounded truth, or a zero result where the truth does not round to 0.
        special = np.isinf(want)
        if nonfinite:
            nonfin = key >= _NONFINITE_KEY
            special |= nonfin
            err[nonfin] = -1.0  # never ranks among the worst, never counts above 1 ulp
        if zeros:
            zero &= want != 0
            special |= zero
        cats = None
        sp = np.flatnonzero(special)
        if sp.size:
            cs, ws, hs = c[sp], want[sp], hi[sp]
            sc = category_indices(ws, hs, cs)
            acc.correct += int(np.count_nonzero(np.isnan(cs) & np.isnan(ws)))
            for ci in range(6):
                hit = sc == ci
                cnt = int(np.count_nonzero(hit))
                acc.counts[ci] += cnt
                room = acc.k_examples - len(acc.examples[ci])
                if cnt and room > 0:
                    acc.examples[ci].extend(_positions(where, sp[np.flatnonzero(hit)[:room]]).tolist())
            lost = (cs == 0) & (ws != 0) & ~np.isnan(ws)
            tiny = np.abs(ws) < sn
            acc.ftz[0] += int(np.count_nonzero(lost & tiny))
            acc.ftz[1] += int(np.count_nonzero(lost & ~tiny))
            if prof is not None:
                cats = (sp, sc)
        top = float(err.max()) if err.size else -1.0
        if top >= 0:
            acc.ulp_max = top if math.isnan(acc.ulp_max) else max(acc.ulp_max, top)
        if acc.k_worst > 0:
            thr = acc.worst_err[-1] if acc.worst_err.size >= acc.k_worst else -1.0
            cand = np.flatnonzero(err > thr)
            if cand.size > 4 * acc.k_worst:  # the first block: keep the top k and its ties
                kth = np.partition(err[cand], cand.size - acc.k_worst)[cand.size - acc.k_worst]
                cand = cand[err[cand] >= kth]
            if cand.size:
                errs = np.concatenate([acc.worst_err, err[cand]])
                idxs = np.concatenate([acc.worst_idx, _positions(where, cand)])
                order = np.lexsort((idxs, -errs))[: acc.k_worst]
                acc.worst_err, acc.worst_idx = errs[order], idxs[order]
        if prof is not None and acc.profile is not None:
            _profile_block(acc.profile, prof[0], prof[1], err, cats)


def _positions(where: int | npt.NDArray[np.intp], local: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Positions in the batch of a block's elements ``local``: the block starts at
    ``where``, or its elements sit at the positions ``where``."""
    return local + where if isinstance(where, int) else where[local]


def _buckets(x: npt.NDArray[np.float64], fmt: Format, bins: int) -> npt.NDArray[np.int64]:
    """harness.judgement.error_vs_input.bucket_of + 1 (so -inf is slot 0), for values of ``fmt``; integer
    arithmetic on the bits for formats of up to 32 bits (equal to bucket_of's float
    formula there: its quotient is never within 2**-45 of an integer without being one)."""
    if fmt.bits > 32:
        return bucket_of(x, fmt, bins) + 1
    p, emin = fmt.precision, fmt.emin
    bits = x.view(np.int64)
    mag = bits & 0x7FFFFFFFFFFFFFFF
    ordv = (mag >> (53 - p)) - ((1023 + emin - 1) << (p - 1))
    small = mag < ((1023 + emin) << 52)
    if small.any():
        ordv[small] = (np.abs(x[small]) / fmt.smallest_subnormal).astype(np.int64)
    top = (fmt.emax - fmt.emin + 2) * (1 << (p - 1)) - 1
    neg = bits >> 63  # 0 or -1
    ordv ^= neg
    ordv -= neg  # -ordv where x < 0
    b = (ordv + top) * bins // (2 * top)
    np.clip(b, 0, bins - 1, out=b)
    b += 1
    nonfinite = mag >= (0x7FF << 52)
    if nonfinite.any():
        nan = mag > (0x7FF << 52)
        b[nonfinite & ~nan & (bits >= 0)] = bins + 1
        b[nonfinite & ~nan & (bits < 0)] = 0
        b[nan] = bins + 2
    return b


def _profile_block(pa: _ProfileAcc, b: npt.NDArray[np.intp], x: npt.NDArray[np.float64],
                   err: npt.NDArray[np.float64],
                   cats: tuple[npt.NDArray[np.intp], npt.NDArray[np.int8]] | None) -> None:
    slots = pa.over.size
    np.maximum.at(pa.max_ulp, b, err)  # non-finite errors are -1 here: they never win
    pa.over += np.bincount(b[err > 1], minlength=slots)
    if cats is None:
        return
    sp, sc = cats
    bs, xs = b[sp], x[sp]
    for ci in range(6):
        hit = sc == ci
        if not hit.any():
            continue
        bh, xh = bs[hit], xs[hit]
        pa.cat_n[ci] += np.bincount(bh, minlength=slots)
        np.fmin.at(pa.cat_lo[ci], bh, xh)
        np.fmax.at(pa.cat_hi[ci], bh, xh)


def _finite_or_none(v: float) -> float | None:
    return None if not math.isfinite(v) else float(v)


def _profile_json(pi: ProfileInputs, pa: _ProfileAcc) -> dict[str, Any]:
    rows = []
    for s in np.flatnonzero(pi.n).tolist():
        mx = float(pa.max_ulp[s])
        rows.append([s - 1, _finite_or_none(float(pi.x_lo[s])), _finite_or_none(float(pi.x_hi[s])),
                     int(pi.n[s]), None if mx < 0 else mx, int(pa.over[s])])
    incidence: dict[str, list[list[Any]]] = {}
    for ci, cat in enumerate(CATEGORIES):
        hit = np.flatnonzero(pa.cat_n[ci]).tolist()
        if hit:
            incidence[cat] = [[s - 1, int(pa.cat_n[ci, s]), _finite_or_none(float(pa.cat_lo[ci, s])),
                               _finite_or_none(float(pa.cat_hi[ci, s]))] for s in hit]
    return {"version": PROFILE_VERSION, "axis": "ordinal", "format": pi.format.name, "bins": pi.bins,
            "columns": list(COLUMNS), "rows": rows, "incidence": incidence}


def _combine(acc: _Acc, n: int, k_worst: int, k_examples: int, pi: ProfileInputs | None) -> Tally:
    keys = acc.keys
    nonfinite = int(keys[_NONFINITE_KEY:].sum())
    present = np.flatnonzero(keys[1:_NONFINITE_KEY]) + 1
    folded = np.maximum(present - _KEY_OFFSET, LOWEST_BIN)
    fine: dict[int, int] = {}
    for key, count in zip(folded.tolist(), keys[present].tolist(), strict=True):
        fine[key] = fine.get(key, 0) + count
    examples = [sorted(acc.examples[ci])[:k_examples] for ci in range(6)]
    profile = None
    if pi is not None:
        assert acc.profile is not None
        profile = _profile_json(pi, acc.profile)
    return Tally(
        n=n,
        correct=acc.correct,
        counts=tuple(acc.counts),
        ulp_count=n - nonfinite,
        ulp_zero=int(keys[0]),
        ulp_max=0.0 if math.isnan(acc.ulp_max) else acc.ulp_max,
        ulp_sum=acc.ulp_sum,
        bins=fine,
        worst=[(float(e), int(i)) for e, i in zip(acc.worst_err[:k_worst], acc.worst_idx[:k_worst], strict=True)],
        examples=examples,
        ftz=(acc.ftz[0], acc.ftz[1], acc.ftz[2]),
        profile=profile,
    )
