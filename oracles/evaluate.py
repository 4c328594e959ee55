"""Evaluate an oracle on exact inputs and round every output correctly.

Every element (or row, for the row-wise kinds) is one independent task, settled by Ziv's
strategy (:func:`oracles.ziv.settle`: growing precision until the rounding is certain,
never a guess). In front of that sits the float64 fast tier (:mod:`oracles.fast`) for the
built-in oracles that have one: it decides the elements whose correct rounding it can
prove and leaves the rest to :func:`~oracles.ziv.settle`, or, for the built-in
elementwise oracles when gmpy2 is installed, to the same values computed in MPFR
(:mod:`oracles.exact`); ``tier=False`` is mpmath alone, the definition. What remains for
mpmath can be spread over forked worker processes (``jobs``); every task is settled
independently, so the result does not depend on how the work was split.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import numpy.typing as npt
from mpmath import mp, mpf

from oracles.errors import OracleError, UsageError
from oracles.exact import settle_fast
from oracles.fast import FastTier, run_tier, tier_for
from oracles.formats import Format
from oracles.lifetime import die_with_parent
from oracles.reference import Reference
from oracles.registry import Oracle
from oracles.ziv import Settled, classify, settle

__all__ = ["evaluate"]

_NAN = mpf("nan")


# -- shapes and kinds ------------------------------------------------------------------


def _check_shapes(oracle: Oracle, arrays: Sequence[npt.NDArray[Any]]) -> tuple[int, ...]:
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
        terms = [v for c in computes for v in (classify(x) for x in c(wp))]
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


def _init_worker(oracle: Oracle, fmt: Format, params: dict[str, Any], parent: int) -> None:
    global _WORKER
    _WORKER = (oracle, fmt, params)
    die_with_parent(parent)
    # Ctrl-C reaches the whole process group; the parent alone reports it and ends the pool
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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
            initializer=_init_worker, initargs=(oracle, fmt, params, os.getpid()),
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


#: output elements per fast-tier block of an elementwise oracle: the tier's temporaries stay
#: near the core while Python's cost per numpy call (a tier makes 50-150 a block) is spread
#: over enough elements. Whole exhaustive float32 chunks, two processes side by side (-j 2)
#: on a 2-core EPYC, 2026-12, after the tiers learned to skip empty regimes and the
#: gradients to hand the cotangent of ones on unscaled: 2**14 took 0.89x the time of 2**13
#: for ∂exp/∂x and ∂gelu/∂x and 0.93x for exp; 2**15 0.90x, 0.94x and 0.90x (no better
#: over the three, and twice the memory). Earlier the same day, before those changes,
#: 2**13 had beaten 2**12 and 2**14, and before the regimes were skipped 2**15 was 2.7x
#: slower than 2**12.
FAST_BLOCK = 1 << 14
#: the same for the row-wise kinds, whose tiers make more numpy calls per block
ROW_BLOCK = 1 << 15


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
    out: Reference | None = None,
) -> Reference:
    """The fast tier decides what it can, block by block; MPFR or mpmath settles the rest."""
    size = math.prod(shape)
    elementwise = oracle.kind == "elementwise"
    if out is not None and out.size == size and all(a.flags.c_contiguous for a in _arrays(out)):
        want, hi, lo, ulp = (a.reshape(-1) for a in _arrays(out))
    else:
        want, hi, lo = np.empty(size), np.empty(size), np.empty(size)
        ulp = np.empty(size, dtype=np.int32)
    if elementwise:
        units = [np.asarray(a, dtype=np.float64).reshape(-1) for a in arrs]
        n_tasks, per_task = size, 1
    else:
        units = arrs
        n_tasks = arrs[0].shape[0]
        per_task = arrs[0].shape[1] if oracle.kind == "rowwise" else 1
    block = FAST_BLOCK if elementwise else max(1, ROW_BLOCK // max(1, arrs[0].shape[1]))
    decided = np.zeros(n_tasks, dtype=bool)
    finished = 0
    for start in range(0, n_tasks, block):
        stop = min(start + block, n_tasks)
        span = slice(start * per_task, stop * per_task)
        blocks = [u[start:stop] for u in units]
        if elementwise:  # the tier writes straight into the output: no copy of 28 bytes an element
            _, done = run_tier(tier, oracle, blocks, fmt, params, into=(want[span], hi[span], lo[span], ulp[span]))
        else:
            got, done = run_tier(tier, oracle, blocks, fmt, params)
            want[span], hi[span], lo[span], ulp[span] = got.want, got.hi, got.lo, got.ulp_exp
        decided[start:stop] = done
        if progress is not None:
            finished += int(np.count_nonzero(done))
            if finished:
                progress(finished)
    finished = int(np.count_nonzero(decided))
    todo = np.flatnonzero(~decided)
    if todo.size:
        # what the tier leaves goes to MPFR where a built-in has an exact formula there
        # (oracles.exact: the same values, ~15x faster), else to mpmath
        settled = None
        if elementwise and len(units) == 1:
            with contextlib.suppress(OracleError):  # an element MPFR gives up on goes to mpmath, with the rest
                settled = settle_fast(oracle, units[0][todo], fmt, params)
        if settled is None:
            tasks = _element_tasks(oracle, [u[todo] for u in units])
            settled = _settle_all(oracle, tasks, fmt, params, chunk=chunk, jobs=jobs, progress=progress,
                                  base=finished)
        elif progress is not None:
            progress(finished + len(settled))
        where = (todo[:, None] * per_task + np.arange(per_task)).reshape(-1)
        w, h, l_, e = zip(*settled, strict=True)
        want[where], hi[where], lo[where] = w, h, l_
        ulp[where] = np.array(e, dtype=np.int32)
    return Reference(want.reshape(shape), hi.reshape(shape), lo.reshape(shape), ulp.reshape(shape))


def _arrays(ref: Reference) -> tuple[npt.NDArray[Any], ...]:
    return (ref.want, ref.hi, ref.lo, ref.ulp_exp)


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
    out: Reference | None = None,
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
    accurate to about 1e-13 relative instead of exact. ``out``: a reference of the same
    size whose arrays may be overwritten and returned instead of new ones, for a caller
    that streams chunks and is done with the previous one (a 4M-element chunk's fresh
    arrays cost about as much in page faults as the fast tier's arithmetic). Raises
    :class:`OracleError` when a value cannot be settled and
    :class:`~oracles.errors.UsageError` for malformed inputs.
    """
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
        return _tiered(fast, oracle, arrs, fmt, math_params, shape, chunk=chunk, jobs=jobs, progress=progress,
                       out=out)
    tasks = _element_tasks(oracle, arrs)
    settled = _settle_all(oracle, tasks, fmt, math_params, chunk=chunk, jobs=jobs, progress=progress)
    return _to_reference(settled, shape)
