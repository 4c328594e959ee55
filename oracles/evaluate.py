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
normalisation) such values are exact midpoints. A transcendental value can come within
2**-1075 (relative) of a float64 midpoint without being on it: silu(x) = x/2 + x**2/4 for
a subnormal x with an odd last bit. So the agreement asked for is 2,000 bits, beyond any
such offset; closer than that is not a practical concern. Past :data:`MAX_PREC` bits the
evaluation gives up with :class:`OracleError`, never with a guess.

In front of all this sits the float64 fast tier (:mod:`oracles.fast`) for the built-in
oracles that have one: it decides the elements whose correct rounding it can prove and
leaves the rest to :func:`settle`. What remains for mpmath can be spread over forked
worker processes (``jobs``); every task is settled independently, so the result does not
depend on how the work was split.
"""

from __future__ import annotations

import math
import multiprocessing
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import numpy.typing as npt
from mpmath import mp, mpf

from oracles.fast import FastTier, run_tier, tier_for
from oracles.formats import Format
from oracles.reference import Reference
from oracles.registry import Oracle
from oracles.rounding import round_mpf, ulp_exponent

__all__ = ["MAX_PREC", "TIE_BITS", "OracleError", "evaluate", "settle"]

FIRST_GUARD = 30
TIE_BITS = 2000  # > 1,075 + margin: see the module docstring (was 1000: silu/gelu misrounded)
MAX_PREC = 4000

_NAN = mpf("nan")
_ULP_EXP_MAX = 2**31 - 1  # Reference.ulp_exp is int32


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
    # Far past overflow (exp(3e38) in bfloat16) the binade does not fit the int32 array.
    # Saturating the stored exponent keeps the ULP error exact: c / 2**e is 0 for every
    # float64 c once e > 2**11, and the true c / ulp(y) is below 2**-1000 there.
    return (want, hi, lo, min(e, _ULP_EXP_MAX))


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
        # (2**(p+1) - 1) 2**(emax-p), built exactly: Format.overflow_threshold is a float
        # and does not exist for float64 (2**1024 - 2**970 overflows)
        mid = mp.ldexp(mpf(2 ** (fmt.precision + 1) - 1), fmt.emax - fmt.precision)
        mid = mid if v2 > 0 else -mid
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


#: frameworks whose threads make a later fork unsafe (JAX says so itself; TensorFlow's
#: thread pools deadlock the same way)
_THREADED = ("jax", "tensorflow", "torch")


def _can_fork() -> bool:
    """Forking is safe only before a threaded framework has started: the CLI computes all
    references first; later callers (the pytest plugin, a notebook) settle serially."""
    if any(name in sys.modules for name in _THREADED):
        return False
    return "fork" in multiprocessing.get_all_start_methods()


# The worker's oracle, format and parameters. Under the 'fork' start method an executor's
# initializer arguments are inherited with the process image, never pickled, so a user
# oracle (even one outside REGISTRY, or a lambda) reaches the worker exactly as the
# parent holds it; looking it up by name in the child would miss unregistered oracles.
_WORKER: tuple[Oracle, Format, dict[str, Any]] | None = None


def _init_worker(oracle: Oracle, fmt: Format, params: dict[str, Any]) -> None:
    global _WORKER
    _WORKER = (oracle, fmt, params)


def _worker_settle(tasks: list[tuple[Any, ...]]) -> list[Settled]:
    assert _WORKER is not None
    oracle, fmt, params = _WORKER
    return _settle_tasks(oracle, tasks, fmt, params)


def _settle_all(
    oracle: Oracle,
    tasks: list[tuple[Any, ...]],
    fmt: Format,
    params: dict[str, Any],
    *,
    chunk: int,
    jobs: int,
    progress: Callable[[int], None] | None,
    base: int = 0,
) -> list[Settled]:
    """Settle ``tasks`` in order, serially or over ``jobs`` forked workers; ``progress``
    receives ``base`` + the number of tasks finished after each piece."""
    out: list[Settled] = []
    if jobs > 1 and len(tasks) > 1 and _can_fork():
        # Pieces small enough to balance the workers, at most ``chunk`` for progress.
        size = max(1, min(chunk, -(-len(tasks) // (4 * jobs))))
        pieces = [tasks[i:i + size] for i in range(0, len(tasks), size)]
        finished = 0
        # ProcessPoolExecutor rather than multiprocessing.Pool: when a worker dies (gmp
        # aborts on some extreme inputs) Pool waits forever, the executor raises.
        with ProcessPoolExecutor(
            max_workers=min(jobs, len(pieces)), mp_context=multiprocessing.get_context("fork"),
            initializer=_init_worker, initargs=(oracle, fmt, params),
        ) as pool:
            try:
                for piece, part in zip(pieces, pool.map(_worker_settle, pieces), strict=True):
                    out.extend(part)
                    finished += len(piece)
                    if progress is not None:
                        progress(base + finished)
            except BrokenProcessPool as exc:
                raise OracleError(
                    f"{oracle.name}: a worker process died while settling values in {fmt} (mpmath or gmp"
                    " crashed on one of the inputs); evaluate with jobs=1 to find which"
                ) from exc
        return out
    for start in range(0, len(tasks), chunk):
        out.extend(_settle_tasks(oracle, tasks[start:start + chunk], fmt, params))
        if progress is not None:
            progress(base + min(start + chunk, len(tasks)))
    return out


FAST_BLOCK = 1 << 15  # output elements per fast-tier block: temporaries stay in cache (2-3x faster than 2**18)


def _tiered(
    tier: FastTier,
    oracle: Oracle,
    arrs: list[npt.NDArray[Any]],
    fmt: Format,
    params: dict[str, Any],
    shape: tuple[int, ...],
    *,
    chunk: int,
    jobs: int,
    progress: Callable[[int], None] | None,
) -> Reference:
    """The fast tier decides what it can, block by block; mpmath settles the rest."""
    size = math.prod(shape)
    want = np.empty(size)
    hi = np.empty(size)
    lo = np.empty(size)
    ulp = np.empty(size, dtype=np.int32)
    if oracle.kind == "elementwise":
        units = [np.asarray(a, dtype=np.float64).reshape(-1) for a in arrs]
        n_tasks, per_task = size, 1
    else:
        units = arrs
        n_tasks = arrs[0].shape[0]
        per_task = arrs[0].shape[1] if oracle.kind == "rowwise" else 1
    block = max(1, FAST_BLOCK // max(1, 1 if oracle.kind == "elementwise" else arrs[0].shape[1]))
    undecided: list[npt.NDArray[np.intp]] = []
    finished = 0
    for start in range(0, n_tasks, block):
        stop = min(start + block, n_tasks)
        got, done = run_tier(tier, oracle, [u[start:stop] for u in units], fmt, params)
        span = slice(start * per_task, stop * per_task)
        want[span], hi[span], lo[span], ulp[span] = got.want, got.hi, got.lo, got.ulp_exp
        undecided.append(start + np.flatnonzero(~done))
        finished += int(np.count_nonzero(done))
        if progress is not None and finished:
            progress(finished)
    todo = np.concatenate(undecided) if undecided else np.zeros(0, dtype=np.intp)
    if todo.size:
        tasks = _element_tasks(oracle, [u[todo] for u in units])
        settled = _settle_all(oracle, tasks, fmt, params, chunk=chunk, jobs=jobs, progress=progress, base=finished)
        where = (todo[:, None] * per_task + np.arange(per_task)).reshape(-1)
        w, h, l_, e = zip(*settled, strict=True)
        want[where], hi[where], lo[where] = w, h, l_
        ulp[where] = np.array(e, dtype=np.int32)
    return Reference(want.reshape(shape), hi.reshape(shape), lo.reshape(shape), ulp.reshape(shape))


def evaluate(
    oracle: Oracle,
    arrays: Sequence[npt.ArrayLike],
    fmt: Format,
    params: dict[str, Any] | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    chunk: int = 4096,
    jobs: int = 1,
    tier: bool = True,
) -> Reference:
    """The correctly rounded truth of ``oracle`` on ``arrays`` in format ``fmt``.

    ``arrays`` hold exact input values (any float dtype; index arguments as integers).
    ``params`` are validated with :meth:`Oracle.bind`. ``progress`` is called with the
    number of tasks (elements, or rows for row-wise oracles) finished so far, after each
    block or chunk. ``jobs > 1`` settles the mpmath work over that many forked processes
    (serial where the platform cannot fork; reduced losses settle in one piece and ignore
    it); the result is identical. ``tier`` lets the
    float64 fast tier (:mod:`oracles.fast`) decide the elements it can prove; ``want`` and
    ``ulp_exp`` are identical either way, while ``hi``/``lo`` of fast-tier elements are
    accurate to about 1e-13 relative instead of exact. Raises :class:`OracleError` when a
    value cannot be settled and :class:`~oracles.errors.UsageError` for malformed inputs.
    """
    from oracles.errors import UsageError

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"jobs={jobs!r} must be a positive integer (1 runs serially)")
    if chunk < 1:
        raise UsageError(f"chunk={chunk!r} must be a positive integer")
    # Casting a signalling NaN (bfloat16 0x7f81, say) to float64 raises FE_INVALID. NaN
    # inputs are expected (NaN in, NaN out), so the warning is noise, and an error under
    # pytest's "warnings as errors"; every path below works in float64, so cast once here.
    with np.errstate(invalid="ignore"):
        arrs = [
            np.asarray(a, dtype=np.float64) if i < len(oracle.args) and oracle.args[i].kind == "real" else np.asarray(a)
            for i, a in enumerate(arrays)
        ]
    bound = oracle.bind(params)
    shape = _check_shapes(oracle, arrs)
    math_params = oracle.math_params(bound)
    reduction = bound.get("reduction", "none") if oracle.reducible else "none"
    if reduction != "none":
        return _reduced(oracle, _element_tasks(oracle, arrs), fmt, math_params, str(reduction))
    fast = tier_for(oracle, fmt) if tier else None
    if fast is not None:
        return _tiered(fast, oracle, arrs, fmt, math_params, shape, chunk=chunk, jobs=jobs, progress=progress)
    tasks = _element_tasks(oracle, arrs)
    out = _settle_all(oracle, tasks, fmt, math_params, chunk=chunk, jobs=jobs, progress=progress)
    return _to_reference(out, shape)
