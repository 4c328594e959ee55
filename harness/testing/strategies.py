"""Hypothesis strategies for ML numerics in every fpharness format, bfloat16 included.

Hypothesis cannot build bfloat16 values itself (``st.floats`` knows widths 16, 32 and 64,
which are IEEE binary16/32/64); these strategies draw *bit patterns* and view them in the
format's numpy dtype (``ml_dtypes.bfloat16`` for bfloat16), so every format works the same.

* :func:`floats` and :func:`arrays`: values of a format as numpy scalars or arrays,
  uniform over bit patterns (``spread="bits"``: every binade equally likely, the way
  floating-point bugs are distributed) or over values (``spread="values"``: hypothesis's
  own float distribution at the format's width), with or without subnormals, NaN and
  infinities;
* :func:`rows`: 2-D arrays for row-wise ops (softmax, logsumexp), optionally with entries
  masked to ``-inf`` as attention masks do;
* :func:`loss_pairs`: ``(p, y)`` for losses, ``p`` in [0, 1] and dense near both ends,
  ``y`` a hard label in {0, 1} or a soft one in [0, 1];
* :func:`ulp_error_of` / :func:`target_ulp_error`: a function's ULP error on one example
  against an oracle, finite so that ``hypothesis.target`` can steer towards bad inputs.

Bounds must be exactly representable in the format; anything else is a
:class:`~oracles.errors.UsageError` that names the representable value to use instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness.execution.references import reference_function
from harness.frameworks.adapters import get_backend
from harness.judgement.summary import DEFECTS, judge
from oracles.errors import UsageError, choices
from oracles.formats import Format, format_of_dtype, get_format
from oracles.registry import get_oracle
from oracles.rounding import round_float64

__all__ = [
    "SPREADS",
    "ULP_ERROR_CAP",
    "arrays",
    "floats",
    "loss_pairs",
    "rows",
    "target_ulp_error",
    "ulp_error_of",
]

SPREADS: tuple[str, ...] = ("bits", "values")
Spread = Literal["bits", "values"]
Shape = int | tuple[int, ...] | st.SearchStrategy[tuple[int, ...]]

#: what :func:`ulp_error_of` reports for a NaN or Inf the mathematics does not produce
#: (and for errors too large for a float): finite, as ``hypothesis.target`` requires, and
#: above any real ULP error of a format narrower than float64
ULP_ERROR_CAP = 1e300


# -- bit patterns --------------------------------------------------------------------------


def _key_of_bits(fmt: Format, bits: int) -> int:
    """A monotone integer key: +0 -> 0, +x -> its magnitude bits, -0 -> -1, -x -> -mag - 1
    (so -0.0 sorts below +0.0, as hypothesis treats bounds)."""
    sign = 1 << (fmt.bits - 1)
    mag = bits & (sign - 1)
    return -mag - 1 if bits & sign else mag


def _bits_of_key(fmt: Format, key: int) -> int:
    return key if key >= 0 else (1 << (fmt.bits - 1)) | (-key - 1)


def _bits_of_value(fmt: Format, value: float) -> int:
    arr = round_float64(np.array([value], dtype=np.float64), fmt).astype(fmt.dtype)
    return int(arr.view(fmt.uint_dtype)[0])


def _exact_bound(fmt: Format, value: float, name: str, inward: int) -> float:
    """``value`` if representable in ``fmt``; otherwise a UsageError naming the nearest
    representable value inside the range (``inward`` +1 for a lower bound, -1 for upper)."""
    v = float(value)
    if math.isnan(v):
        raise UsageError(f"{name} must not be NaN")
    rounded = float(round_float64(np.array([v]), fmt)[0])
    if rounded == v:
        return v
    arr = np.array([rounded]).astype(fmt.dtype)
    if (rounded < v) == (inward > 0):
        arr = fmt.next_up(arr) if inward > 0 else fmt.next_down(arr)
    fix = float(arr.astype(np.float64)[0])
    raise UsageError(f"{name}={v!r} is not exactly representable in {fmt.name}; use {name}={fix!r}")


def _is_subnormal_bits(fmt: Format, bits: int) -> bool:
    mag = bits & ((1 << (fmt.bits - 1)) - 1)
    return 0 < mag < (1 << (fmt.precision - 1))


def _nan_bits(fmt: Format) -> st.SearchStrategy[int]:
    """Every NaN pattern: either sign, any non-zero mantissa (quiet and signalling)."""
    exp_all = ((1 << fmt.exponent_bits) - 1) << (fmt.precision - 1)
    sign = 1 << (fmt.bits - 1)
    mantissas = st.integers(1, (1 << (fmt.precision - 1)) - 1)
    return st.tuples(st.booleans(), mantissas).map(lambda t: (sign if t[0] else 0) | exp_all | t[1])


def _element_bits(
    fmt: Format,
    *,
    min_value: float | None,
    max_value: float | None,
    allow_nan: bool | None,
    allow_infinity: bool | None,
    allow_subnormal: bool,
    spread: str,
) -> st.SearchStrategy[int]:
    """Bit patterns (Python ints) of the values the arguments describe, validated."""
    if spread not in SPREADS:
        raise UsageError(f"spread={spread!r} is not valid; {choices(SPREADS)}")
    lo = None if min_value is None else _exact_bound(fmt, min_value, "min_value", +1)
    hi = None if max_value is None else _exact_bound(fmt, max_value, "max_value", -1)
    if allow_nan is None:
        allow_nan = lo is None and hi is None
    elif allow_nan and (lo is not None or hi is not None):
        raise UsageError("allow_nan=True cannot be combined with min_value or max_value; drop the bounds or the NaN")
    unbounded_side = lo is None or hi is None or math.isinf(lo) or math.isinf(hi)
    if allow_infinity is None:
        allow_infinity = unbounded_side
    elif allow_infinity and not unbounded_side:
        raise UsageError("allow_infinity=True needs min_value or max_value left out (or infinite)")
    big = fmt.largest
    lo_v = lo if lo is not None else (-math.inf if allow_infinity else -big)
    hi_v = hi if hi is not None else (math.inf if allow_infinity else big)
    if not allow_infinity:
        lo_v, hi_v = max(lo_v, -big), min(hi_v, big)
    if lo_v > hi_v:
        raise UsageError(f"min_value={lo_v!r} is above max_value={hi_v!r}")
    lo_key = _key_of_bits(fmt, _bits_of_value(fmt, lo_v))
    hi_key = _key_of_bits(fmt, _bits_of_value(fmt, hi_v))
    if lo_v == 0 and math.copysign(1.0, lo_v) < 0:  # -0.0 as a lower bound includes -0.0
        lo_key = -1
    if not allow_subnormal:
        tiny = fmt.smallest_normal
        if 0 < abs(lo_v) < tiny and 0 < abs(hi_v) < tiny and (lo_v > 0) == (hi_v > 0):
            raise UsageError(
                f"[{lo_v!r}, {hi_v!r}] holds only subnormal {fmt.name} values; allow_subnormal=False leaves nothing"
            )

    if spread == "bits":
        body: st.SearchStrategy[int] = _uniform_keys(lo_key, hi_key).map(lambda k: _bits_of_key(fmt, k))
        if not allow_subnormal:
            body = body.filter(lambda b: not _is_subnormal_bits(fmt, b))
    else:
        body = _value_bits(fmt, lo_v, hi_v, allow_infinity, allow_subnormal)
    if not allow_nan:
        return body
    nan = _nan_bits(fmt)
    # one draw in 16 is a NaN; the selector shrinks towards 0, i.e. away from NaN
    return st.tuples(st.integers(0, 15), body, nan).map(lambda t: t[2] if t[0] == 15 else t[1])


def _uniform_keys(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Integers uniform on [lo, hi] (within 2**-16) that shrink towards the one nearest 0.

    ``st.integers`` is uniform only near zero and heavy-tailed beyond, which for bit keys
    would mean mostly tiny subnormals. Uniform bytes, scaled by multiply-and-shift, give
    an offset; the offset is laid out zig-zag around the centre (0, +0.0's key, when in
    range), so the all-zero bytes that hypothesis shrinks to are the value nearest zero."""
    size = hi - lo + 1
    nbytes = ((size - 1).bit_length() + 16 + 7) // 8
    center = min(max(0, lo), hi)
    up, down = hi - center, center - lo
    both = min(up, down)

    def place(raw: bytes) -> int:
        u = (int.from_bytes(raw, "big") * size) >> (8 * nbytes)
        if u <= 2 * both:
            return center + (u + 1) // 2 if u % 2 else center - u // 2
        extra = u - 2 * both
        return center + both + extra if up > down else center - both - extra

    return st.binary(min_size=nbytes, max_size=nbytes).map(place)


def _value_bits(fmt: Format, lo: float, hi: float, allow_infinity: bool, allow_subnormal: bool) -> st.SearchStrategy[int]:
    """Hypothesis's float distribution at the format's width. bfloat16 draws float32 and
    rounds once into bfloat16: rounding is monotone and the bounds are representable, so
    the result stays inside them, and float32 and bfloat16 share their exponent range."""
    width = {"float16": 16, "float32": 32, "float64": 64}.get(fmt.name, 32)
    values = st.floats(
        min_value=lo, max_value=hi, allow_nan=False, allow_infinity=allow_infinity,
        allow_subnormal=None if allow_subnormal else False, width=width,  # type: ignore[arg-type]
    )
    return values.map(lambda v: _bits_of_value(fmt, v))


def _scalar(fmt: Format, bits: int) -> Any:
    return np.array(bits, dtype=fmt.uint_dtype).view(fmt.dtype)[()]


# -- public strategies -----------------------------------------------------------------------


def floats(
    dtype: str | Format,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    allow_nan: bool | None = None,
    allow_infinity: bool | None = None,
    allow_subnormal: bool = True,
    spread: Spread = "bits",
) -> st.SearchStrategy[Any]:
    """Numpy scalars of ``dtype`` (float16, bfloat16, float32, float64).

    ``spread="bits"`` draws uniformly over the bit patterns in the range (and shrinks
    towards +0.0); ``"values"`` uses hypothesis's float distribution at the format's width.
    NaN (any payload) is allowed by default only without bounds, infinities only with a
    bound left out, as in ``hypothesis.strategies.floats``; ``-0.0`` sorts below ``+0.0``.
    """
    fmt = get_format(dtype)
    bits = _element_bits(fmt, min_value=min_value, max_value=max_value, allow_nan=allow_nan,
                         allow_infinity=allow_infinity, allow_subnormal=allow_subnormal, spread=spread)
    return bits.map(lambda b: _scalar(fmt, b))


def arrays(
    dtype: str | Format,
    shape: Shape,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    allow_nan: bool | None = None,
    allow_infinity: bool | None = None,
    allow_subnormal: bool = True,
    spread: Spread = "bits",
    unique: bool = False,
) -> st.SearchStrategy[npt.NDArray[Any]]:
    """Arrays of ``dtype`` with elements as :func:`floats` draws them; ``shape`` is an
    int, a tuple or a strategy of tuples (e.g. ``hypothesis.extra.numpy.array_shapes()``)."""
    fmt = get_format(dtype)
    bits = _element_bits(fmt, min_value=min_value, max_value=max_value, allow_nan=allow_nan,
                         allow_infinity=allow_infinity, allow_subnormal=allow_subnormal, spread=spread)
    raw = hnp.arrays(np.dtype(fmt.uint_dtype), shape, elements=bits, unique=unique)
    return raw.map(lambda a: a.view(fmt.dtype))


def rows(
    dtype: str | Format,
    *,
    min_rows: int = 1,
    max_rows: int = 8,
    min_width: int = 1,
    max_width: int = 16,
    mask: bool = False,
    allow_fully_masked: bool = False,
    min_value: float | None = None,
    max_value: float | None = None,
    allow_subnormal: bool = True,
    spread: Spread = "bits",
) -> st.SearchStrategy[npt.NDArray[Any]]:
    """2-D arrays (rows x width) of finite ``dtype`` values for row-wise ops. With
    ``mask=True`` some entries are ``-inf`` (attention masking); every row keeps a finite
    entry unless ``allow_fully_masked`` (the softmax-of-all-``-inf`` case)."""
    if not 1 <= min_rows <= max_rows or not 1 <= min_width <= max_width:
        raise UsageError(
            f"rows: need 1 <= min_rows <= max_rows and 1 <= min_width <= max_width,"
            f" got rows {min_rows}..{max_rows}, width {min_width}..{max_width}"
        )
    fmt = get_format(dtype)
    bits = _element_bits(fmt, min_value=min_value, max_value=max_value, allow_nan=False,
                         allow_infinity=False, allow_subnormal=allow_subnormal, spread=spread)

    @st.composite
    def draw_rows(draw: st.DrawFn) -> npt.NDArray[Any]:
        n = draw(st.integers(min_rows, max_rows))
        width = draw(st.integers(min_width, max_width))
        x = draw(hnp.arrays(np.dtype(fmt.uint_dtype), (n, width), elements=bits)).view(fmt.dtype).copy()
        if mask:
            masked = draw(hnp.arrays(np.bool_, (n, width)))
            if not allow_fully_masked:
                full = masked.all(axis=1)
                keep = draw(st.integers(0, width - 1))
                masked[full, keep] = False
            x[masked] = -np.inf
        return x

    return draw_rows()


def loss_pairs(
    dtype: str | Format,
    *,
    shape: Shape | None = None,
    labels: Literal["hard", "soft", "any"] = "any",
    allow_subnormal: bool = True,
) -> st.SearchStrategy[tuple[npt.NDArray[Any], npt.NDArray[Any]]]:
    """``(p, y)`` arrays of ``dtype`` for losses such as binary cross-entropy.

    ``p`` is in [0, 1], uniform over the bit patterns there (dense near 0) and reflected
    to ``1 - p`` half of the time (dense near 1, with 1.0 itself common), since log-losses
    break at both ends. ``y`` is a hard label in {0, 1} (``"hard"``), a soft one in [0, 1]
    (``"soft"``), or either (``"any"``)."""
    fmt = get_format(dtype)
    shape = st.integers(1, 32).map(lambda n: (n,)) if shape is None else shape
    if labels not in ("hard", "soft", "any"):
        raise UsageError(f"loss_pairs: labels={labels!r} is not valid; {choices(('hard', 'soft', 'any'))}")
    unit = _element_bits(fmt, min_value=0.0, max_value=1.0, allow_nan=False, allow_infinity=False,
                         allow_subnormal=allow_subnormal, spread="bits")

    def reflect(t: tuple[bool, int]) -> int:
        flip, b = t
        if not flip:
            return b
        q = float(_scalar(fmt, b))
        return _bits_of_value(fmt, 1.0 - q)

    p_bits = st.tuples(st.booleans(), unit).map(reflect)
    hard = st.sampled_from([_bits_of_value(fmt, 0.0), _bits_of_value(fmt, 1.0)])
    soft = _element_bits(fmt, min_value=0.0, max_value=1.0, allow_nan=False, allow_infinity=False,
                         allow_subnormal=allow_subnormal, spread="values")
    y_bits = {"hard": hard, "soft": soft, "any": st.one_of(hard, soft)}[labels]
    uint = np.dtype(fmt.uint_dtype)

    @st.composite
    def draw_pairs(draw: st.DrawFn) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        shp = draw(shape) if isinstance(shape, st.SearchStrategy) else shape
        p = draw(hnp.arrays(uint, shp, elements=p_bits)).view(fmt.dtype)
        y = draw(hnp.arrays(uint, shp, elements=y_bits)).view(fmt.dtype)
        return p, y

    return draw_pairs()


# -- steering towards large errors -------------------------------------------------------------


def ulp_error_of(
    fn: Callable[..., Any],
    oracle: str,
    x: Any,
    dtype: str | Format | None = None,
    *,
    framework: str = "numpy",
    device: str = "cpu",
    params: Mapping[str, Any] | None = None,
) -> float:
    """The largest ULP error of ``fn`` on the inputs ``x`` (an array or scalar, or a tuple
    of them in the oracle's argument order), judged against ``oracle`` in ``fn``'s output
    format; :data:`ULP_ERROR_CAP` when ``fn`` returns a NaN or Inf the mathematics does not
    (or misses a NaN it does). Always finite, so it can be passed to ``hypothesis.target``.

    ``x`` is converted exactly into ``dtype`` (default: its own format; a value that is
    not representable is a :class:`~oracles.errors.UsageError`), moved to ``framework`` on
    ``device``, and ``fn(*tensors, **params)`` is called."""
    orc = get_oracle(oracle)
    given: Sequence[Any] = x if isinstance(x, tuple | list) else (x,)
    if len(given) != len(orc.args):
        raise UsageError(
            f"{orc.name} takes {len(orc.args)} argument(s) ({', '.join(a.name for a in orc.args)}), got {len(given)}"
        )
    first = np.asarray(given[0])
    fmt = get_format(dtype) if dtype is not None else format_of_dtype(first.dtype)
    arrays_in: list[npt.NDArray[Any]] = []
    for arg, value in zip(orc.args, given, strict=True):
        a = np.asarray(value)
        if arg.kind == "index":
            arrays_in.append(a.astype(np.int64))
        elif a.dtype == fmt.dtype:
            arrays_in.append(a)
        else:
            with np.errstate(invalid="ignore"):
                wide = a.astype(np.float64)
            arrays_in.append(fmt.from_float64(wide, what=arg.name))
    backend = get_backend(framework)
    reason = backend.device_unavailable(device)
    if reason:
        raise UsageError(f"ulp_error_of: {framework} on {device}: {reason}")
    native = [backend.to_native(a, device) for a in arrays_in]
    with np.errstate(all="ignore"):
        got = np.asarray(backend.from_native(fn(*native, **dict(params or {}))))
    out_fmt = format_of_dtype(got.dtype)
    bound = orc.bind(params)
    with np.errstate(invalid="ignore"):  # bfloat16 NaN payloads warn on the way to NaN
        exact_in = [
            a.astype(np.float64) if arg.kind == "real" else a for arg, a in zip(orc.args, arrays_in, strict=True)
        ]
    # the fast tier without the disk cache: thousands of one-off examples are not worth keeping
    ref = reference_function(use_cache=False)(orc, exact_in, out_fmt, bound)
    if got.size != ref.size:
        raise UsageError(f"ulp_error_of: {fn!r} returned shape {got.shape}, the oracle gives {ref.shape}")
    summary = judge(ref, got.reshape(ref.shape), out_fmt, k_worst=0, k_examples=0)
    incidence = summary.incidence
    if any(incidence[c] for c in DEFECTS):
        return ULP_ERROR_CAP
    err = summary.ulp_max
    return min(err, ULP_ERROR_CAP) if math.isfinite(err) else ULP_ERROR_CAP


def target_ulp_error(
    fn: Callable[..., Any],
    oracle: str,
    x: Any,
    dtype: str | Format | None = None,
    *,
    label: str = "ulp error",
    framework: str = "numpy",
    device: str = "cpu",
    params: Mapping[str, Any] | None = None,
) -> float:
    """:func:`ulp_error_of`, reported to ``hypothesis.target`` under ``label`` so that the
    search steers towards inputs with larger errors; returns the error (call it once per
    label inside a ``@given`` test)."""
    from hypothesis import target

    err = ulp_error_of(fn, oracle, x, dtype, framework=framework, device=device, params=params)
    target(err, label=label)
    return err
