"""Error profiles: where along the input axis an elementwise implementation goes wrong.

A cell's :class:`~harness.judgement.summary.Summary` keeps the ten worst inputs and a few examples
per incidence category: enough to reproduce a failure, not enough to plot one. A profile
buckets *every* input by its value and keeps, per bucket, the input range, the element
count, the largest ULP error and the count above 1 ULP, and per incidence category the
count and the smallest and largest input that fell in it. The HTML report draws it as
ULP error versus input (as Herbie plots bits of error), with NaN/Inf in a band of its own,
and lists the input ranges of each category ("unexpected Inf for 11.09 <= x <= 65504").

The input axis is the *ordinal* of the value in its format: 0 at zero, k for the k-th
representable value away from zero, negative below zero. Every representable number gets
the same width, so subnormals, small and huge values are all visible, and an exhaustive
or bit-pattern-uniform sample (``random:N``) fills the axis evenly. The rejected
alternative, a symmetric log axis ``sign(x) log2(1 + |x|)``, squeezes everything below 1
(half of all floats) into one unit. Bucket edges depend only on the format and the bucket
count, so profiles of chunks merge exactly: add the counts, take the max and the min/max
(:func:`merge_profiles`), and ``merge(profile(a), profile(b)) == profile(a + b)``.

Schema (a JSON object, stored per cell under ``"profile"``)::

    {"version": 1, "axis": "ordinal", "format": "float16", "bins": 256,
     "columns": ["bucket", "x_lo", "x_hi", "n", "max_ulp", "over_1ulp"],
     "rows": [[bucket, x_lo, x_hi, n, max_ulp | null, over_1ulp], ...],
     "incidence": {category: [[bucket, count, x_lo, x_hi], ...], ...}}

Buckets ``0 .. bins-1`` split the finite values evenly by ordinal; ``-1`` holds the input
-inf, ``bins`` +inf and ``bins + 1`` NaN (their ``x_lo``/``x_hi`` are null, since results
files are strict JSON). Rows are sparse (empty buckets are left out) and sorted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.judgement.definitions import BLOCK, CATEGORIES, category_indices, ulp_errors
from oracles.formats import Format, get_format

__all__ = [
    "COLUMNS",
    "DEFAULT_BINS",
    "PROFILE_VERSION",
    "ProfileAcc",
    "ProfileInputs",
    "batch_profile",
    "bucket_of",
    "bucket_slots",
    "error_profile",
    "max_ordinal",
    "merge_profiles",
    "ordinal",
    "profile_block",
    "profile_json",
]

PROFILE_VERSION = 1
DEFAULT_BINS = 256
COLUMNS: tuple[str, ...] = ("bucket", "x_lo", "x_hi", "n", "max_ulp", "over_1ulp")


def _parts(x: npt.ArrayLike, f: Format) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """(|ordinal| with 0 for non-finite values, sign, special code: 0 finite, 1 inf, 2 NaN).

    Read off the float64 bits rather than with frexp/log2: a profile buckets every input
    of a cell (4M-element chunks of an exhaustive float32 sweep), and integer field
    extraction is several times faster. Exact for every value of ``f``; values between
    representable ones get a fractional position (monotone)."""
    v = np.ascontiguousarray(x, dtype=np.float64).ravel()
    bits = v.view(np.uint64)
    sign = (bits >> np.uint64(63)).astype(np.bool_)
    e64 = ((bits >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64)
    mant = (bits & np.uint64((1 << 52) - 1)).astype(np.float64)
    step = 2.0 ** (f.precision - 1)
    # normal in f: (E - emin + 1) * step + (significand - 1) * step, with E = e64 - 1023
    mag = ((e64 - (1023 + f.emin - 1)).astype(np.float64) + mant * 2.0**-52) * step
    small = e64 < 1023 + f.emin  # below f's smallest normal: a multiple of its smallest subnormal
    if small.any():
        mag[small] = np.abs(v[small]) / f.smallest_subnormal
    special = np.zeros(v.shape, dtype=np.int64)
    top = e64 == 0x7FF
    if top.any():
        special[top] = np.where(mant[top] == 0, 1, 2)
        mag[top] = 0.0
    return mag, sign, special


def ordinal(x: npt.ArrayLike, fmt: Format | str) -> npt.NDArray[np.float64]:
    """The signed position of each value among ``fmt``'s finite values (its bit pattern
    for a non-negative representable value). Values between representable ones get a
    fractional position, so the map is monotone for any real (tick marks use this);
    +-inf map to +-(max_ordinal + 1) and NaN to NaN."""
    f = get_format(fmt)
    mag, sign, special = _parts(x, f)
    mag = np.where(special == 1, max_ordinal(f) + 1.0, np.where(special == 2, np.nan, mag))
    return np.where(sign, -mag, mag).reshape(np.shape(x))


def max_ordinal(fmt: Format | str) -> float:
    """The ordinal of the largest finite value (0x7bff = 31743 for float16)."""
    f = get_format(fmt)
    return float((f.emax - f.emin + 2) * 2.0 ** (f.precision - 1) - 1)


def bucket_of(x: npt.ArrayLike, fmt: Format | str, bins: int = DEFAULT_BINS) -> npt.NDArray[np.int64]:
    """The profile bucket of each value: ``0 .. bins-1`` for finite values, ``-1`` for
    -inf, ``bins`` for +inf, ``bins + 1`` for NaN."""
    f = get_format(fmt)
    mag, sign, special = _parts(x, f)
    top = max_ordinal(f)
    signed = np.where(sign, -mag, mag)
    # multiply before dividing: bucket edges that are exact quotients stay exact (zero
    # starts bucket bins/2, not the one below it)
    b = np.clip(np.floor((signed + top) * bins / (2.0 * top)), 0, bins - 1).astype(np.int64)
    if special.any():
        b[special == 2] = bins + 1
        b[(special == 1) & ~sign] = bins
        b[(special == 1) & sign] = -1
    return b


def _empty(fmt: str, bins: int) -> dict[str, Any]:
    return {
        "version": PROFILE_VERSION,
        "axis": "ordinal",
        "format": fmt,
        "bins": bins,
        "columns": list(COLUMNS),
        "rows": [],
        "incidence": {},
    }


def _x(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def error_profile(
    x_values: npt.ArrayLike,
    errors: npt.ArrayLike,
    categories: npt.ArrayLike,
    bins: int = DEFAULT_BINS,
    *,
    fmt: Format | str,
) -> dict[str, Any]:
    """The profile of one batch of an elementwise cell.

    ``x_values``: the inputs (the first real argument) as exact float64; ``errors``: ULP
    error per element, NaN where the result or the truth is not finite
    (:func:`harness.judgement.summary.ulp_errors`); ``categories``: int8 per element, -1 for none,
    else an index into :data:`~harness.judgement.summary.CATEGORIES`; ``fmt``: the *input* format,
    which fixes the bucket edges. All three arrays must have one size.
    """
    f = get_format(fmt)
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    x = np.asarray(x_values, dtype=np.float64).ravel()
    err = np.asarray(errors, dtype=np.float64).ravel()
    cats = np.asarray(categories).ravel()
    if not (x.size == err.size == cats.size):
        raise ValueError(f"x_values, errors and categories differ in size: {x.size}, {err.size}, {cats.size}")
    out = _empty(f.name, bins)
    if not x.size:
        return out
    keys = bucket_of(x, f, bins)
    order = np.argsort(keys, kind="stable")
    keys_s, x_s, err_s = keys[order], x[order], err[order]
    uniq, starts = np.unique(keys_s, return_index=True)
    n = np.diff(np.r_[starts, keys_s.size])
    with np.errstate(invalid="ignore"):
        x_lo = np.fmin.reduceat(x_s, starts)
        x_hi = np.fmax.reduceat(x_s, starts)
        max_ulp = np.fmax.reduceat(err_s, starts)  # NaN only where a bucket has no finite error
        over = np.add.reduceat((err_s > 1).astype(np.int64), starts)
    rows = []
    for k, lo, hi, cnt, mx, ov in zip(
        uniq.tolist(), x_lo.tolist(), x_hi.tolist(), n.tolist(), max_ulp.tolist(), over.tolist(), strict=True
    ):
        rows.append([int(k), _x(lo), _x(hi), int(cnt), None if math.isnan(mx) else float(mx), int(ov)])
    out["rows"] = rows
    cats_s = cats[order]
    for ci, cat in enumerate(CATEGORIES):
        mask = cats_s == ci
        if not mask.any():
            continue
        ck, cx = keys_s[mask], x_s[mask]
        cu, cs = np.unique(ck, return_index=True)
        cn = np.diff(np.r_[cs, ck.size])
        with np.errstate(invalid="ignore"):
            clo = np.fmin.reduceat(cx, cs)
            chi = np.fmax.reduceat(cx, cs)
        out["incidence"][cat] = [
            [int(k), int(c), _x(lo), _x(hi)]
            for k, c, lo, hi in zip(cu.tolist(), cn.tolist(), clo.tolist(), chi.tolist(), strict=True)
        ]
    return out


def _lo(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _hi(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def merge_profiles(a: Mapping[str, Any] | None, b: Mapping[str, Any]) -> dict[str, Any]:
    """The profile of the union of both element sets (``a`` may be None: nothing yet).
    Raises ValueError when the two have different formats or bucket counts."""
    if a is None:
        return {**b, "rows": [list(r) for r in b["rows"]],
                "incidence": {k: [list(r) for r in v] for k, v in b["incidence"].items()}}
    if (a["format"], a["bins"], a.get("axis")) != (b["format"], b["bins"], b.get("axis")):
        raise ValueError(
            f"cannot merge profiles over {a['format']}/{a['bins']} bins and {b['format']}/{b['bins']} bins"
        )
    rows: dict[int, list[Any]] = {int(r[0]): list(r) for r in a["rows"]}
    for r in b["rows"]:
        k = int(r[0])
        if k not in rows:
            rows[k] = list(r)
            continue
        mine = rows[k]
        mx = [v for v in (mine[4], r[4]) if v is not None]
        rows[k] = [k, _lo(mine[1], r[1]), _hi(mine[2], r[2]), mine[3] + r[3], max(mx) if mx else None, mine[5] + r[5]]
    incidence: dict[str, list[list[Any]]] = {}
    for cat in CATEGORIES:
        merged: dict[int, list[Any]] = {int(r[0]): list(r) for r in a["incidence"].get(cat, ())}
        for r in b["incidence"].get(cat, ()):
            k = int(r[0])
            if k in merged:
                m = merged[k]
                merged[k] = [k, m[1] + r[1], _lo(m[2], r[2]), _hi(m[3], r[3])]
            else:
                merged[k] = list(r)
        if merged:
            incidence[cat] = [merged[k] for k in sorted(merged)]
    out = _empty(str(a["format"]), int(a["bins"]))
    out["rows"] = [rows[k] for k in sorted(rows)]
    out["incidence"] = incidence
    return out


def batch_profile(
    x_values: npt.ArrayLike,
    ref: Any,
    got: npt.ArrayLike,
    fmt: Format | str,
    bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """The profile of one judged batch: ``ref`` the batch's
    :class:`~oracles.reference.Reference` (in the output format), ``got`` the computed
    values (any float dtype), ``fmt`` the input format. Computes the same ULP errors and
    categories as :func:`harness.judgement.summary.judge`."""
    with np.errstate(invalid="ignore"):  # NaN payloads convert to NaN, as they should
        c = np.asarray(got).astype(np.float64).ravel()
    cats = category_indices(ref.want.ravel(), ref.hi.ravel(), c)
    return error_profile(x_values, ulp_errors(ref, c), cats, bins, fmt=fmt)


# -- the profile's side of the fused judge (harness.judgement.tally) ----------------------------


@dataclass(frozen=True, eq=False)
class ProfileInputs:
    """The input side of an error profile (see the module docstring): each input's
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
                b = slots[s:t] = bucket_slots(xs[s:t], fmt, bins)
                n += np.bincount(b, minlength=m)
                np.fmin.at(x_lo, b, xs[s:t])
                np.fmax.at(x_hi, b, xs[s:t])
        return ProfileInputs(fmt, bins, xs, slots, n, x_lo, x_hi)


@dataclass
class ProfileAcc:
    """Per-bucket running aggregates of the error side of a profile."""

    max_ulp: npt.NDArray[np.float64]
    over: npt.NDArray[np.int64]
    cat_n: npt.NDArray[np.int64]  # (6, slots)
    cat_lo: npt.NDArray[np.float64]
    cat_hi: npt.NDArray[np.float64]

    @staticmethod
    def new(slots: int) -> ProfileAcc:
        return ProfileAcc(np.full(slots, -1.0), np.zeros(slots, np.int64), np.zeros((6, slots), np.int64),
                           np.full((6, slots), np.nan), np.full((6, slots), np.nan))


def bucket_slots(x: npt.NDArray[np.float64], fmt: Format, bins: int) -> npt.NDArray[np.int64]:
    """:func:`bucket_of` + 1 (so -inf is slot 0), for values of ``fmt``; integer
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


def profile_block(pa: ProfileAcc, b: npt.NDArray[np.intp], x: npt.NDArray[np.float64],
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


def profile_json(pi: ProfileInputs, pa: ProfileAcc) -> dict[str, Any]:
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
