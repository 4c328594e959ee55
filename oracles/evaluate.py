"""Evaluate an oracle on exact inputs and round every output correctly (Ziv's strategy).

Each output element is computed twice, at a working precision ``wp`` and at a higher one.
The higher-precision value ``v2`` is trusted only within the radius
``|v1 - v2| + |v2| * 2**(8 - wp2)``: the first term catches cancellation that a formula
suffers (the low-precision value is then far off), the second the few ulps of error that
mpmath's functions and a short composition of them make at ``wp2``. The element is
settled when both ends of that interval round to the same value of the output format;
otherwise both precisions grow and the element is evaluated again.

Exact rounding ties: a value that still straddles a rounding midpoint when the two
evaluations agree to more than :data:`TIE_BITS` bits is taken to be that midpoint and
rounded half to even. For the rational oracles (softmax of equal entries, variance
normalisation) such values are exact midpoints; a transcendental value that agrees with a
dyadic midpoint to 1,000 bits is not a practical concern. Past :data:`MAX_PREC` bits the
evaluation gives up with :class:`OracleError`, never with a guess.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from mpmath import mp, mpf

from oracles.formats import Format
from oracles.reference import Reference
from oracles.registry import Oracle
from oracles.rounding import round_mpf, ulp_exponent

__all__ = ["MAX_PREC", "TIE_BITS", "OracleError", "evaluate", "settle"]

FIRST_GUARD = 30
TIE_BITS = 1000
MAX_PREC = 4000

_NAN = mpf("nan")


class OracleError(RuntimeError):
    """The oracle could not produce a certain, correctly rounded value."""


Settled = tuple[float, float, float, int]  # want, hi, lo, ulp_exp


def _classify(v: Any) -> mpf:
    """Coerce an oracle's return value to mpf; complex or non-numeric results are bugs in
    the oracle (log of a negative number returns an mpc in mpmath, for example)."""
    if isinstance(v, mpf):
        return v
    if isinstance(v, (int, float)):
        return mpf(v)
    if hasattr(v, "imag") and hasattr(v, "real"):
        if v.imag == 0:
            return mpf(v.real)
        return _NAN
    raise OracleError(f"oracle returned {type(v).__name__}, expected an mpmath number")


def _settled_value(v: mpf, fmt: Format) -> Settled:
    want = round_mpf(v, fmt)
    if v != v:
        return (math.nan, math.nan, 0.0, 0)
    if mp.isinf(v):
        return (want, float(v), 0.0, 0)
    e = ulp_exponent(v, fmt)
    scaled = mp.ldexp(v, -e)
    hi = float(scaled)
    lo = float(mp.fsub(scaled, hi, exact=True))
    return (want, hi, lo, e)


def _try_settle(v1: mpf, v2: mpf, wp2: int, fmt: Format) -> Settled | None:
    nan1, nan2 = v1 != v1, v2 != v2
    if nan1 or nan2:
        return _settled_value(v2, fmt) if nan1 and nan2 else None
    inf1, inf2 = bool(mp.isinf(v1)), bool(mp.isinf(v2))
    if inf1 or inf2:
        return _settled_value(v2, fmt) if v1 == v2 else None
    if not v2:
        return _settled_value(v2, fmt) if not v1 else None
    with mp.workprec(wp2 + 8):
        radius = abs(mp.fsub(v1, v2, exact=True)) + mp.ldexp(abs(v2), 8 - wp2)
        r_lo = round_mpf(v2 - radius, fmt)
        r_hi = round_mpf(v2 + radius, fmt)
        if r_lo == r_hi:  # +0 == -0 counts as agreement, as it should
            return _settled_value(v2, fmt)
        if wp2 >= TIE_BITS:
            return _settle_tie(v1, v2, radius, r_lo, r_hi, fmt)
    return None


def _settle_tie(v1: mpf, v2: mpf, radius: mpf, r_lo: float, r_hi: float, fmt: Format) -> Settled | None:
    if math.isinf(r_lo) or math.isinf(r_hi):
        # the boundary between the largest finite value and infinity
        mid = mp.fmul(fmt.overflow_threshold, 1 if v2 > 0 else -1, exact=True)
    else:
        mid = mp.ldexp(mp.fadd(r_lo, r_hi, exact=True), -1)
    close = mp.ldexp(abs(mid), 16 - TIE_BITS)
    if abs(v2 - mid) <= radius and abs(v1 - mid) <= close and abs(v2 - mid) <= close:
        return _settled_value(mid, fmt)
    return None


def settle(compute: Callable[[int], Sequence[Any]], n: int, fmt: Format) -> list[Settled]:
    """Evaluate ``compute(wp) -> n mpmath values`` with growing precision until every value
    rounds with certainty into ``fmt``. Raises :class:`OracleError` past :data:`MAX_PREC`."""
    wp1 = fmt.precision + FIRST_GUARD
    wp2 = wp1 + FIRST_GUARD
    out: list[Settled | None] = [None] * n
    with mp.workprec(wp1):
        prev = [_classify(v) for v in compute(wp1)]
    while True:
        with mp.workprec(wp2):
            cur = [_classify(v) for v in compute(wp2)]
        if len(cur) != n or len(prev) != n:
            raise OracleError(f"oracle returned {len(cur)} values, expected {n}")
        missing = False
        for i in range(n):
            if out[i] is None:
                out[i] = _try_settle(prev[i], cur[i], wp2, fmt)
                missing = missing or out[i] is None
        if not missing:
            return [o for o in out if o is not None]
        if wp2 >= MAX_PREC:
            bad = next(i for i in range(n) if out[i] is None)
            raise OracleError(
                f"value {bad} did not settle at {wp2} bits (last {mp.nstr(cur[bad], 30)}); "
                "the oracle may be inaccurate or discontinuous there"
            )
        prev, wp2 = cur, min(2 * wp2, MAX_PREC)


# -- shapes and kinds ------------------------------------------------------------------


def _check_shapes(oracle: Oracle, arrays: Sequence[npt.NDArray[Any]]) -> tuple[int, ...]:
    from oracles.errors import UsageError

    if len(arrays) != len(oracle.args):
        names = ", ".join(str(a) for a in oracle.args)
        raise UsageError(f"{oracle.name} takes {len(oracle.args)} argument(s) ({names}), got {len(arrays)}")
    first = arrays[0]
    for arg, arr in zip(oracle.args, arrays, strict=True):
        if oracle.kind == "elementwise":
            if arr.shape != first.shape:
                raise UsageError(
                    f"{oracle.name}: argument {arg.name} has shape {arr.shape}, expected {first.shape}"
                )
        elif arg.kind == "index":
            if arr.shape != first.shape[:1]:
                raise UsageError(
                    f"{oracle.name}: {arg.name} needs one integer per row, shape {first.shape[:1]}, got {arr.shape}"
                )
        elif arr.ndim != 2 or arr.shape != first.shape:
            raise UsageError(
                f"{oracle.name}: argument {arg.name} must be 2-D (rows x width) like the first, got shape {arr.shape}"
            )
    if oracle.kind != "elementwise" and first.ndim != 2:
        raise UsageError(f"{oracle.name} is row-wise: its input must be 2-D (rows x width), got {first.shape}")
    if oracle.kind == "row_reduce":
        return tuple(first.shape[:1])
    return tuple(first.shape)


def _element_tasks(oracle: Oracle, arrays: Sequence[npt.NDArray[Any]]) -> list[tuple[Any, ...]]:
    """One task per independently evaluated unit: an element, or a row."""
    if oracle.kind == "elementwise":
        cols = [np.asarray(a, dtype=np.float64).ravel().tolist() for a in arrays]
        return list(zip(*cols, strict=True))
    rows: list[tuple[Any, ...]] = []
    lists = [
        np.asarray(a, dtype=np.float64).tolist() if arg.kind == "real" else np.asarray(a).tolist()
        for arg, a in zip(oracle.args, arrays, strict=True)
    ]
    for r in range(arrays[0].shape[0]):
        rows.append(tuple(lst[r] for lst in lists))
    return rows


def _unit_function(oracle: Oracle, params: dict[str, Any]) -> Callable[[tuple[Any, ...]], Callable[[int], list[Any]]]:
    """For one task, a function of the precision returning its exact outputs."""
    fn = oracle.fn
    real = [a.kind == "real" for a in oracle.args]

    if oracle.kind == "elementwise":
        def make(task: tuple[Any, ...]) -> Callable[[int], list[Any]]:
            if any(v != v for v in task):
                return lambda wp: [_NAN]
            return lambda wp: [fn(*(mpf(v) for v in task), **params)]
        return make

    def make_row(task: tuple[Any, ...]) -> Callable[[int], list[Any]]:
        width = len(task[0])
        n_out = width if oracle.kind == "rowwise" else 1
        undefined = any(
            any(v != v for v in col) if is_real else False for col, is_real in zip(task, real, strict=True)
        ) or any(
            not (0 <= int(col) < width) for col, is_real in zip(task, real, strict=True) if not is_real
        )
        if undefined:
            return lambda wp: [_NAN] * n_out

        def compute(wp: int) -> list[Any]:
            args = [[mpf(v) for v in col] if is_real else int(col) for col, is_real in zip(task, real, strict=True)]
            result = fn(*args, **params)
            return list(result) if oracle.kind == "rowwise" else [result]

        return compute

    return make_row


def _settle_tasks(oracle: Oracle, tasks: Iterable[tuple[Any, ...]], fmt: Format, params: dict[str, Any]) -> list[Settled]:
    make = _unit_function(oracle, params)
    out: list[Settled] = []
    for task in tasks:
        n = len(task[0]) if oracle.kind == "rowwise" else 1
        out.extend(settle(make(task), n, fmt))
    return out


def _to_reference(values: list[Settled], shape: tuple[int, ...]) -> Reference:
    if values:
        want, hi, lo, ulp = zip(*values, strict=True)
    else:
        want = hi = lo = ulp = ()
    return Reference(
        np.array(want, dtype=np.float64).reshape(shape),
        np.array(hi, dtype=np.float64).reshape(shape),
        np.array(lo, dtype=np.float64).reshape(shape),
        np.array(ulp, dtype=np.int32).reshape(shape),
    )


def _reduced(oracle: Oracle, tasks: list[tuple[Any, ...]], fmt: Format, params: dict[str, Any], how: str) -> Reference:
    make = _unit_function(oracle, params)
    computes = [make(t) for t in tasks]

    def compute(wp: int) -> list[Any]:
        terms = [v for c in computes for v in (_classify(x) for x in c(wp))]
        if not terms:
            return [_NAN]
        if any(t != t for t in terms):
            return [_NAN]
        total = mp.fsum(terms)
        return [total / len(terms) if how == "mean" else total]

    return _to_reference(settle(compute, 1, fmt), ())


def evaluate(
    oracle: Oracle,
    arrays: Sequence[npt.ArrayLike],
    fmt: Format,
    params: dict[str, Any] | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    chunk: int = 4096,
) -> Reference:
    """The correctly rounded truth of ``oracle`` on ``arrays`` in format ``fmt``.

    ``arrays`` hold exact input values (any float dtype; index arguments as integers).
    ``params`` are validated with :meth:`Oracle.bind`. ``progress`` is called with the
    number of tasks finished after each chunk. Raises :class:`OracleError` when a value
    cannot be settled and :class:`~oracles.errors.UsageError` for malformed inputs.
    """
    arrs = [np.asarray(a) for a in arrays]
    bound = oracle.bind(params)
    shape = _check_shapes(oracle, arrs)
    math_params = oracle.math_params(bound)
    tasks = _element_tasks(oracle, arrs)
    reduction = bound.get("reduction", "none") if oracle.reducible else "none"
    if reduction != "none":
        return _reduced(oracle, tasks, fmt, math_params, str(reduction))
    out: list[Settled] = []
    for start in range(0, len(tasks), chunk):
        out.extend(_settle_tasks(oracle, tasks[start:start + chunk], fmt, math_params))
        if progress is not None:
            progress(min(start + chunk, len(tasks)))
    return _to_reference(out, shape)
