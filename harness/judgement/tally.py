"""The judge's inner loop: one fused, blocked pass over a batch that yields everything a
cell keeps about it.

:mod:`harness.judgement.definitions` defines what a verdict *is* (categories, ULP error, the
bins) and :mod:`harness.judgement.summary` the exact mergeable
:class:`~harness.judgement.summary.Summary`; this module computes it fast enough that
judging a 2**24-element float32 batch costs about as much as calling a framework on it.
The straightforward formulation (ten whole-array passes, then a sort for the histogram,
another for the exact sum and a third for the worst elements) took 7 s for 2**24
elements against 0.1 s for ``torch.nn.functional.softplus``.

At about 690 lines this module is longer than most, on purpose: the blocked pass, its
accumulator and the baseline shortcut share private state, and each exactness argument
below holds only if all three keep it; the pieces that stand alone (the fine-bin table in
:mod:`.bins`, the profile's side in :mod:`.error_vs_input`) live apart.

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
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.judgement.bins import KEY_OFFSET, add_keys, raw_keys
from harness.judgement.definitions import (
    BINS_PER_OCTAVE,
    BITS_SHIFT,
    BLOCK,
    LOWEST_BIN,
    MAX_FLOAT,
    SUM_SHIFT,
    ULP_ERR_MAX,
    Tolerance,
    category_indices,
    ordinal_distance,
)
from harness.judgement.error_vs_input import ProfileAcc, ProfileInputs, profile_block, profile_json
from oracles.formats import Format
from oracles.reference import Reference

__all__ = ["BLOCK", "Baseline", "ProfileInputs", "Tally", "tally"]

#: terms per float64 partial sum before it is turned into an integer: 2**25 terms of at
#: most 28 significant bits (27 plus a carry into the next binade) fit in 53
FLUSH = 1 << 25
_BPO = BINS_PER_OCTAVE  # short: the bin arithmetic below uses it everywhere
_HI_MASK = np.int64(~((1 << 26) - 1))  # keeps sign, exponent and the top 26 stored bits
#: keys at or above this are NaN or infinite errors: bits(inf) - 1 has exponent field 2046
#: and a full mantissa (bin 16), NaN has 2047; the largest finite error kept, 2**1023, has
#: key 2046 * 16
_NONFINITE_KEY = 2046 * _BPO + _BPO
_NKEYS = 2048 * _BPO + 1
#: fine-bin keys of absolute errors: the ULP error's (at least LOWEST_BIN) plus 16 log2
#: ulp(y), ulp(y) >= 2**-1074; the largest float64 lies in bin 16 * 1024
_ABS_LO = LOWEST_BIN - 1074 * _BPO
_TOP_KEY = 1024 * _BPO
#: relative errors below 2**-1022 share the lowest bin
REL_LOWEST_BIN = -1022 * _BPO
#: the largest distance between two values of a 64-bit format has 64 bits
_BITS_LEN = 66
#: a float64 tolerance test this close to the limit (relatively) is decided with rationals
_TOL_MARGIN = 2.0**-40


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
    profile: ProfileAcc | None = None
    # bits of error: histogram by bit length of the ordinal distance, the elements with a
    # NaN on either side (not counted), the largest distance, the fixed-point log2 sum
    bits_hist: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(_BITS_LEN, dtype=np.int64))
    bits_nan: int = 0
    bits_max: int = 0
    bits_sum: int = 0
    # absolute and relative errors: fine-bin counts (offsets _ABS_LO and REL_LOWEST_BIN)
    abs_keys: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(_TOP_KEY - _ABS_LO + 1, dtype=np.int64))
    rel_keys: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(_TOP_KEY - REL_LOWEST_BIN + 1, dtype=np.int64))
    abs_max: float = -1.0
    rel_max: float = -1.0
    rel_undefined: int = 0
    # the tolerance counted against (None: not counted) and the elements over it
    tol: Tolerance | None = None
    over: int = 0
    # the largest absolute and relative errors with their positions, largest first (a
    # Baseline keeps them, to find the largest among the elements a cell did not change)
    k_top: int = 0
    abs_top: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]] = field(
        default_factory=lambda: (np.zeros(0), np.zeros(0, dtype=np.int64)))
    rel_top: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]] = field(
        default_factory=lambda: (np.zeros(0), np.zeros(0, dtype=np.int64)))

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


@dataclass(frozen=True)
class Tally:
    """Everything judged about one batch, before it becomes a Summary.

    ``bins`` maps harness.judgement.summary fine-bin keys to counts (errors below 2**-24 folded into
    the lowest); ``worst`` are (error, flat index) pairs, largest first, ties by position;
    ``examples`` the first positions per category; ``ftz`` is (subnormal truths returned
    as 0, other non-zero truths returned as 0, subnormal results).

    Bits of error (see :mod:`harness.judgement.definitions`): ``bits_count`` elements
    without a NaN, ``bits_hist`` maps the bit length of the ordinal distance to a count
    (0: correctly rounded), ``bits_max`` is the largest distance, ``bits_sum`` the sum of
    ``floor(2**32 log2(1 + d))``. Absolute and relative errors are counted where the ULP
    error is (``ulp_count`` elements, ``ulp_zero`` of them 0), less ``rel_undefined``
    (truth 0, result not) for the relative one; ``abs_bins``/``rel_bins`` map fine-bin
    keys to counts, ``abs_max``/``rel_max`` are the largest. ``over_tolerance`` counts the
    elements over ``tolerance`` (0 when it is None)."""

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
    bits_count: int = 0
    bits_hist: dict[int, int] = field(default_factory=dict)
    bits_max: int = 0
    bits_sum: int = 0
    abs_bins: dict[int, int] = field(default_factory=dict)
    abs_max: float = 0.0
    rel_count: int = 0
    rel_bins: dict[int, int] = field(default_factory=dict)
    rel_max: float = 0.0
    rel_undefined: int = 0
    tolerance: Tolerance | None = None
    over_tolerance: int = 0


def tally(
    ref: Reference,
    got: npt.NDArray[Any],
    out_format: Format,
    *,
    k_worst: int = 10,
    k_examples: int = 3,
    profile: ProfileInputs | None = None,
    baseline: Baseline | None = None,
    tolerance: Tolerance | None = None,
) -> Tally:
    """Judge ``got`` (flat, any float dtype holding values of ``out_format``) against
    ``ref`` (flat, same size).

    With ``profile`` (built from the same batch's inputs), also build the error profile of
    :mod:`harness.judgement.error_vs_input`. With ``baseline`` (:meth:`Baseline.of` the same reference and
    profile), only the elements where ``got`` differs from the correctly rounded result
    are judged; the result is identical either way. With ``tolerance`` ``(atol, rtol)``,
    also count the elements over ``atol + rtol * |y|`` (``Tally.over_tolerance``); a
    tolerance needs the elements themselves, so it is given here, not to a summary."""
    got = np.ascontiguousarray(got).reshape(-1)
    n = got.size
    if n != ref.size:
        raise ValueError(f"got {n} values for {ref.size} reference elements")
    if profile is not None and profile.x.size != n:
        raise ValueError(f"profile inputs hold {profile.x.size} elements, the batch {n}")
    tol = _check_tolerance(tolerance)
    if baseline is not None:
        fast = _with_baseline(baseline, ref, got, out_format, k_worst, k_examples, profile, tol)
        if fast is not None:
            return fast
    acc = _Acc(k_worst, k_examples, tol=tol)
    if profile is not None:
        acc.profile = ProfileAcc.new(profile.n.size)
    _accumulate(acc, _flat(ref), got, out_format, _prof_arrays(profile), None)
    return _combine(acc, n, k_worst, k_examples, profile)


def _check_tolerance(tolerance: Tolerance | None) -> Tolerance | None:
    if tolerance is None:
        return None
    atol, rtol = (float(v) for v in tolerance)
    if not (math.isfinite(atol) and math.isfinite(rtol) and atol >= 0 and rtol >= 0):
        raise ValueError(f"tolerance (atol, rtol) must be finite and non-negative, got {tolerance!r}")
    return (atol, rtol)


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
    for s in range(0, got.size, BLOCK):
        t = min(s + BLOCK, got.size)
        _block(acc, s if where is None else where[s:t], got[s:t], want[s:t], hi[s:t], lo[s:t], ue[s:t], out_format,
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
    #: per tolerance, the elements of R(y) over it (computed on a cell's first asking)
    over_cache: dict[Tolerance, int] = field(default_factory=dict)

    def over(self, tol: Tolerance, ref: Reference, out_format: Format) -> int:
        """How many elements of the correctly rounded result are over ``tol``. Usually
        none, known from the largest errors alone: R(y) is within half an ulp of y, inside
        torch's default tolerances for every format."""
        if tol not in self.over_cache:
            atol, rtol = tol
            a = self.acc
            if a.abs_max <= atol * (1 - _TOL_MARGIN) or (a.rel_undefined == 0 and a.rel_max <= rtol * (1 - _TOL_MARGIN)):
                self.over_cache[tol] = 0
            else:
                acc = _Acc(0, 0, tol=tol)
                _accumulate(acc, _flat(ref), self.want, out_format, None, None)
                self.over_cache[tol] = acc.over
        return self.over_cache[tol]

    @staticmethod
    def of(ref: Reference, out_format: Format, profile: ProfileInputs | None = None) -> Baseline:
        want, hi, _, _ = _flat(ref)
        # want holds values of the format, so the cast is exact (no rounding to double)
        with np.errstate(invalid="ignore"):
            native = np.ascontiguousarray(want.astype(out_format.dtype)).reshape(-1)
        acc = _Acc(BASELINE_K, 0, k_top=BASELINE_K)
        if profile is not None:
            acc.profile = ProfileAcc.new(profile.n.size)
        _accumulate(acc, _flat(ref), native, out_format, _prof_arrays(profile), None)
        plain = np.isfinite(hi) & np.isfinite(want)
        return Baseline(acc, native, native.view(out_format.uint_dtype), plain, int(want.size))


def _with_baseline(base: Baseline, ref: Reference, got: npt.NDArray[Any], out_format: Format, k_worst: int,
                   k_examples: int, profile: ProfileInputs | None, tol: Tolerance | None) -> Tally | None:
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
    pos = _Acc(k_worst, k_examples, tol=tol)
    neg = _Acc(0, 0, tol=tol)
    if profile is not None:
        pos.profile = ProfileAcc.new(profile.n.size)
        neg.profile = ProfileAcc.new(profile.n.size)
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
    # the largest absolute and relative errors: a differing plain element with a finite
    # result is at least as far from y as R(y) is (R(y) is the nearest value, and the
    # float64 evaluation is monotone), so the baseline's errors count everywhere except
    # at differing plain elements whose result is NaN or infinite
    with np.errstate(invalid="ignore"):
        finite_got = np.isfinite(got[where].astype(np.float64))
    gone = where[base.plain[where] & ~finite_got]
    abs_max = _max_kept(pos.abs_max, b.abs_top, gone)
    rel_max = _max_kept(pos.rel_max, b.rel_top, gone)
    if abs_max is None or rel_max is None:
        return None
    out = _Acc(k_worst, k_examples, tol=tol)
    out.abs_max, out.rel_max = abs_max, rel_max
    out.abs_keys = b.abs_keys - neg.abs_keys + pos.abs_keys
    out.rel_keys = b.rel_keys - neg.rel_keys + pos.rel_keys
    out.rel_undefined = b.rel_undefined - neg.rel_undefined + pos.rel_undefined
    out.bits_hist = b.bits_hist - neg.bits_hist + pos.bits_hist
    out.bits_nan = b.bits_nan - neg.bits_nan + pos.bits_nan
    out.bits_sum = b.bits_sum - neg.bits_sum + pos.bits_sum
    out.bits_max = pos.bits_max  # an unchanged element is R(y) itself: distance 0
    if tol is not None:
        out.over = base.over(tol, ref, out_format) - neg.over + pos.over
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
        out.profile = ProfileAcc(
            np.maximum(pp.max_ulp, bp.max_ulp),
            bp.over - np_.over + pp.over,
            bp.cat_n - np_.cat_n + pp.cat_n,
            pp.cat_lo, pp.cat_hi,
        )
    return _combine(out, n, k_worst, k_examples, profile)


def _max_kept(differing: float, top: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]],
              gone: npt.NDArray[np.intp]) -> float | None:
    """The largest of ``differing`` and the baseline's errors outside ``gone`` (-1: none),
    or None when the baseline did not keep enough of its largest errors to say."""
    vals, idx = top
    keep = ~np.isin(idx, gone) if gone.size else np.ones(idx.size, dtype=bool)
    if keep.any():
        return max(differing, float(vals[np.argmax(keep)]))
    if idx.size >= BASELINE_K:
        return None
    return differing


def _keep_top(top: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]], vals: npt.NDArray[np.float64],
              pos: npt.NDArray[np.int64], k: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """The ``k`` largest of ``top`` and (``vals``, ``pos``), ties by position."""
    thr = top[0][-1] if top[0].size >= k else -math.inf
    cand = np.flatnonzero(vals > thr)
    if cand.size > 4 * k:
        kth = np.partition(vals[cand], cand.size - k)[cand.size - k]
        cand = cand[vals[cand] >= kth]
    if not cand.size:
        return top
    v = np.concatenate([top[0], vals[cand]])
    i = np.concatenate([top[1], pos[cand]])
    order = np.lexsort((i, -v))[:k]
    return v[order], i[order]


def _over_exact(c: float, hi: float, lo: float, e: int, atol: float, rtol: float) -> bool:
    """|c - y| > atol + rtol |y| in rationals, y = (hi + lo) 2**e."""
    y = (Fraction(hi) + Fraction(lo)) * (Fraction(2) ** e)
    return abs(Fraction(c) - y) > Fraction(atol) + Fraction(rtol) * abs(y)


def _pow2(k: npt.NDArray[np.integer[Any]], *, negated: bool = False) -> npt.NDArray[np.float64]:
    """2.0**k (2.0**-k when ``negated``) exactly, from the exponent bits, for integers whose
    power lies in [2**-1022, 2**1023] (the callers check the range)."""
    bits = np.subtract(1023, k, dtype=np.int64) if negated else np.add(k, 1023, dtype=np.int64)
    np.left_shift(bits, 52, out=bits)
    return bits.view(np.float64)


def _errors_block(acc: _Acc, where: int | npt.NDArray[np.intp], c: npt.NDArray[np.float64],
                  want: npt.NDArray[np.float64], hi: npt.NDArray[np.float64], lo: npt.NDArray[np.float64],
                  e: npt.NDArray[np.int32], err: npt.NDArray[np.float64], key: npt.NDArray[np.int64],
                  fmt: Format, counted: npt.NDArray[np.int64], e_one: int | None, top: float) -> None:
    """Bits of error, absolute and relative errors and the tolerance count of one block;
    ``err`` is its ULP error with -1 where that is not defined, ``key`` its raw fine-bin key,
    ``counted`` the block's histogram of those keys, ``top`` its largest ``err``, ``e_one``
    the ulp exponent where the whole block has one (else None)."""
    # bits: only where c and R(y) differ as values (+0 and -0 do not), NaN included
    dd = np.flatnonzero(c != want)
    nonzero = nan = 0
    if dd.size:
        cs, ws = c[dd], want[dd]
        ok = ~(np.isnan(cs) | np.isnan(ws))
        nan = dd.size - int(np.count_nonzero(ok))
        if nan:
            cs, ws = cs[ok], ws[ok]
        if cs.size:
            d = ordinal_distance(cs, ws, fmt)
            nonzero = d.size
            df = d.astype(np.float64)
            _, ex = np.frexp(df)  # d >= 1; its bit length, or one more where df rounded up
            bl = ex.astype(np.uint64)
            bl -= (np.right_shift(d, bl - np.uint64(1)) == 0).astype(np.uint64)
            acc.bits_hist += np.bincount(bl.astype(np.int64), minlength=_BITS_LEN)[:_BITS_LEN]
            acc.bits_max = max(acc.bits_max, int(d.max()))
            acc.bits_sum += int(np.floor(np.log2(df + 1.0) * float(1 << BITS_SHIFT)).astype(np.int64).sum())
    acc.bits_nan += nan
    acc.bits_hist[0] += c.size - nan - nonzero
    # absolute and relative errors of the elements with a positive ULP error
    if not top > 0:
        return
    pos_err = err > 0
    # nearly every block of an exhaustive run has no zero error: no gathers
    vi = None if pos_err.all() else np.flatnonzero(pos_err)
    ev, hv = (err, hi) if vi is None else (err[vi], hi[vi])
    if e_one is not None and not acc.k_top and acc.tol is None:
        # one ulp exponent (most blocks of a streamed run): an element's absolute error key
        # is its ULP error's key moved by 16 e, so the keys' histogram (positive errors are
        # exactly the keys 1 .. _NONFINITE_KEY - 1) gives them, and x -> min(x 2**e, MAX_FLOAT)
        # is monotonic, so the largest absolute error is the largest ULP error's
        inner = counted[1:_NONFINITE_KEY]
        nz = np.flatnonzero(inner)
        ka = np.minimum(np.maximum(nz + (1 - KEY_OFFSET), LOWEST_BIN) + (e_one << 4), _TOP_KEY)
        np.add.at(acc.abs_keys, ka - _ABS_LO, inner[nz])
        acc.abs_max = max(acc.abs_max, float(np.minimum(np.ldexp(top, e_one), MAX_FLOAT)))
        av = None
    else:
        eb, kv = (e.astype(np.int64), key) if vi is None else (e[vi].astype(np.int64), key[vi])
        ka = np.maximum(kv - KEY_OFFSET, LOWEST_BIN)
        ka += eb << 4
        np.minimum(ka, _TOP_KEY, out=ka)
        add_keys(acc.abs_keys, ka, _ABS_LO)
        if -1022 <= eb.min() and eb.max() <= 1023:  # (vi is not empty here)
            # the same correctly rounded product as ldexp, faster
            av = ev * _pow2(eb)
            np.minimum(av, MAX_FLOAT, out=av)
        else:
            av = np.minimum(np.ldexp(ev, eb), MAX_FLOAT)
        acc.abs_max = max(acc.abs_max, float(av.max()))
    ah = np.abs(hv)
    rv = ev / ah
    zt = ah == 0
    undefined = bool(zt.any())
    if undefined:
        acc.rel_undefined += int(np.count_nonzero(zt))
        rv[zt] = -1.0
    r_top = float(rv.max())
    if r_top > MAX_FLOAT:  # a relative error past float64 (a subnormal truth): saturated
        np.minimum(rv, MAX_FLOAT, out=rv)
        r_top = MAX_FLOAT
    rk = rv[np.flatnonzero(rv > 0)] if undefined else rv
    add_keys(acc.rel_keys, raw_keys(rk.view(np.int64)), REL_LOWEST_BIN, offset=KEY_OFFSET)
    acc.rel_max = max(acc.rel_max, r_top)
    if acc.k_top:
        assert av is not None
        pos = _positions(where, np.arange(err.size) if vi is None else vi).astype(np.int64)
        acc.abs_top = _keep_top(acc.abs_top, av, pos, acc.k_top)
        acc.rel_top = _keep_top(acc.rel_top, rv, pos, acc.k_top)
    if acc.tol is not None:
        atol, rtol = acc.tol
        limit = np.ldexp(atol, -eb) + rtol * ah  # in units of ulp(y), like err
        over = ev > limit
        close = np.abs(ev - limit) <= _TOL_MARGIN * limit
        close &= np.isfinite(limit)
        if close.any():
            for i in np.flatnonzero(close).tolist():
                j = i if vi is None else int(vi[i])
                over[i] = _over_exact(float(c[j]), float(hi[j]), float(lo[j]), int(e[j]), atol, rtol)
        acc.over += int(np.count_nonzero(over))


#: a term of the fixed-point sum stays below 2**46, so a block's 2**16 terms sum below 2**62
_FIXED_BITS = 46
assert BLOCK << _FIXED_BITS <= 1 << 62


def _add_fixed_point(acc: _Acc, err: npt.NDArray[np.float64], top: float) -> None:
    """acc.ulp_sum += sum(err), exactly, for finite non-negative errors (a block: at most
    BLOCK of them) whose largest is ``top``. Level by level: with the largest remaining error below 2**(46 - s), the
    integer parts of err 2**s (truncated, exact) sum exactly in int64, and what is left,
    err - that part 2**-s, is the bits of err below 2**-s, exact as well. Two levels finish
    every error within 2**-39 of the block's largest; the rare smaller ones take more.
    Half the time of two weighted bincounts by binade (:func:`_add_by_binade`, 0.030 against
    0.055 s for a float32 chunk of 2**22), which takes what this cannot scale (a largest
    error of 2**46 or more, remaining ones below 2**-900) and gives the same integer."""
    rest = err
    while top > 0:
        e = math.frexp(top)[1]  # top < 2**e
        shift = _FIXED_BITS - e
        if not 0 <= shift <= 900 + _FIXED_BITS:
            _add_by_binade(acc, rest, rest.view(np.int64), None)
            return
        whole = np.multiply(rest, 2.0**shift).astype(np.int64)
        acc.ulp_sum += int(whole.sum()) << (SUM_SHIFT - shift)
        low = rest - whole * 2.0**-shift
        rest = low[np.flatnonzero(low)]
        top = float(rest.max()) if rest.size else 0.0


def _add_by_binade(acc: _Acc, err: npt.NDArray[np.float64], bits: npt.NDArray[np.int64],
                   big: npt.NDArray[np.intp] | None) -> None:
    """acc's exact sum by binade: each error's top 27 bits and the rest summed per binade in
    float64 (exact, see FLUSH); NaN and infinite errors land in binade 2047, never summed;
    ``big`` (errors of 2**960 and more) are added one by one."""
    ex = bits >> 52
    part_hi = (bits & _HI_MASK).view(np.float64)
    part_lo = err - part_hi
    if big is not None and big.size:
        acc.ulp_sum += sum(_exact_total(np.array([v])) for v in err[big].tolist())
        part_hi[big] = 0.0
        part_lo[big] = 0.0
    acc.sum_hi += np.bincount(ex, weights=part_hi, minlength=2048)[:2048]
    acc.sum_lo += np.bincount(ex, weights=part_lo, minlength=2048)[:2048]
    acc.pending += err.size
    if acc.pending + BLOCK > FLUSH:
        acc.flush()


def _block(acc: _Acc, where: int | npt.NDArray[np.intp], g: npt.NDArray[Any], want: npt.NDArray[np.float64], hi: npt.NDArray[np.float64],
           lo: npt.NDArray[np.float64], e: npt.NDArray[np.int32], fmt: Format,
           prof: tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]] | None) -> None:
    sn = fmt.smallest_normal
    with np.errstate(all="ignore"):
        c = g.astype(np.float64)
        e_min, e_max = int(e.min()), int(e.max())
        big = None
        if -200 <= e_min and e_max <= 1022 and g.dtype.itemsize <= 4:
            # |c| < 2**128 and 2**-e <= 2**200: no overflow, so err is finite exactly
            # where c and hi are, and needs no saturation (formats of up to 32 bits have
            # ulp exponents of -149 and above)
            # one ulp exponent in the block (most of a streamed run's): a scalar, the same product
            err = c * 2.0**-e_min if e_min == e_max else c * _pow2(e, negated=True)
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
        key = raw_keys(bits)  # err == 0 gives key 0 (w = -1, slot 0xFFFF: bin 16); nothing else does
        counted = np.bincount(key, minlength=_NKEYS)
        acc.keys += counted[:_NKEYS]
        nonfinite = int(counted[_NONFINITE_KEY:].sum())
        fixed = big is None and not nonfinite
        if fixed:
            # the largest error, read once: err is not changed below when every error is finite
            top = float(err.max()) if err.size else -1.0
            _add_fixed_point(acc, err, top)
        else:
            _add_by_binade(acc, err, bits, big)
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
        if not fixed:  # (the non-finite errors are -1 by now)
            top = float(err.max()) if err.size else -1.0
        _errors_block(acc, where, c, want, hi, lo, e, err, key, fmt, counted, e_min if e_min == e_max else None, top)
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
            profile_block(acc.profile, prof[0], prof[1], err, cats)


def _positions(where: int | npt.NDArray[np.intp], local: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Positions in the batch of a block's elements ``local``: the block starts at
    ``where``, or its elements sit at the positions ``where``."""
    return local + where if isinstance(where, int) else where[local]


def _combine(acc: _Acc, n: int, k_worst: int, k_examples: int, pi: ProfileInputs | None) -> Tally:
    keys = acc.keys
    nonfinite = int(keys[_NONFINITE_KEY:].sum())
    present = np.flatnonzero(keys[1:_NONFINITE_KEY]) + 1
    folded = np.maximum(present - KEY_OFFSET, LOWEST_BIN)
    fine: dict[int, int] = {}
    for key, count in zip(folded.tolist(), keys[present].tolist(), strict=True):
        fine[key] = fine.get(key, 0) + count
    examples = [sorted(acc.examples[ci])[:k_examples] for ci in range(6)]
    profile = None
    if pi is not None:
        assert acc.profile is not None
        profile = profile_json(pi, acc.profile)
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
        bits_count=n - acc.bits_nan,
        bits_hist={k: int(v) for k, v in enumerate(acc.bits_hist.tolist()) if v},
        bits_max=acc.bits_max,
        bits_sum=acc.bits_sum,
        abs_bins=_bins_of(acc.abs_keys, _ABS_LO),
        abs_max=max(acc.abs_max, 0.0),
        rel_count=n - nonfinite - acc.rel_undefined,
        rel_bins=_bins_of(acc.rel_keys, REL_LOWEST_BIN),
        rel_max=max(acc.rel_max, 0.0),
        rel_undefined=acc.rel_undefined,
        tolerance=acc.tol,
        over_tolerance=acc.over,
    )


def _bins_of(counts: npt.NDArray[np.int64], lowest: int) -> dict[int, int]:
    present = np.flatnonzero(counts)
    return {int(k) + lowest: int(v) for k, v in zip(present.tolist(), counts[present].tolist(), strict=True)}
