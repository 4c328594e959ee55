"""Run cells: generate inputs once per group, compute each reference once, call every
implementation (with a timeout) and judge its output.

A cell never takes the run down with it: an implementation that raises, returns the wrong
shape or a non-array, or hangs past its timeout becomes an ``error`` cell with a one-line
reason; a missing framework or device makes a ``skipped`` cell. References are computed
before any implementation runs in the group, so a crashing implementation cannot cost the
oracle work of the cells after it.
"""

from __future__ import annotations

import inspect
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.cells import CellResult, CellSpec
from harness.frameworks import get_backend
from harness.impls import Impl, get_impl, load_custom
from harness.inputs import Batch, InputSet, StreamedPatterns, parse_inputs
from harness.profile import merge_profiles
from harness.progress import Progress
from harness.tally import ProfileInputs, tally
from harness.verdict import Summary, summarize
from oracles.errors import UsageError
from oracles.evaluate import OracleError
from oracles.formats import Format, format_of_dtype, get_format
from oracles.reference import Reference
from oracles.registry import Oracle, get_oracle

__all__ = ["Runner", "run_cells"]

GroupKey = tuple[str, str, str, tuple[tuple[str, Any], ...]]


class _Timeout(Exception):
    pass


def _call_with_timeout(fn: Callable[[], Any], seconds: float) -> Any:
    """Run ``fn`` in a daemon thread. A hung implementation is abandoned (Python cannot
    kill a thread), the cell becomes an error and the run goes on."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            # overflow and invalid operations are what we measure, not warnings to print;
            # framework advice ("softmax over an axis of size 1") would only clutter tables
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported as the cell's error
            box["error"] = exc

    thread = threading.Thread(target=target, name="fpharness-impl", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise _Timeout(f"timed out after {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300]


def _expected_shape(oracle: Oracle, batch: Batch, reduction: str) -> tuple[int, ...]:
    if reduction != "none":
        return ()
    x = batch.arrays[0]
    return tuple(x.shape[:1]) if oracle.kind == "row_reduce" else tuple(x.shape)


@dataclass
class _Group:
    oracle: Oracle
    fmt: Format
    inputs: InputSet
    params: dict[str, Any]
    refs: dict[tuple[str, int], Reference] = field(default_factory=dict)
    profiles: dict[int, ProfileInputs] = field(default_factory=dict)


@dataclass
class Runner:
    """Executes cells. ``reference`` computes a Reference (the default evaluates the oracle
    with mpmath; the CLI plugs in the cache and the fast tier)."""

    progress: Progress | None = None
    k_worst: int = 10
    reference: Callable[..., Reference] | None = None
    #: implementations supplied in memory (``assert_precision``), by id; they win over
    #: the registry and over loading ``cell.impl`` from disk
    extra_impls: dict[str, Impl] = field(default_factory=dict)
    #: threads judging one batch (None: all cores); results do not depend on it
    judge_threads: int | None = None
    _groups: dict[GroupKey, _Group] = field(default_factory=dict)
    _customs: dict[tuple[str, str, str], Impl] = field(default_factory=dict)

    # -- planning ---------------------------------------------------------------------
    def impl_for(self, cell: CellSpec) -> Impl:
        if cell.impl in self.extra_impls:
            return self.extra_impls[cell.impl]
        if not cell.custom:
            return get_impl(cell.impl)
        key = (cell.impl, cell.oracle, cell.framework)
        if key not in self._customs:
            self._customs[key] = load_custom(cell.impl, oracle=cell.oracle, framework=cell.framework)
        return self._customs[key]

    def validate(self, cells: Iterable[CellSpec]) -> None:
        """Raise :class:`UsageError` for anything wrong in the plan before running it."""
        for cell in cells:
            oracle = get_oracle(cell.oracle)
            get_format(cell.dtype)
            oracle.bind(dict(cell.params))
            fmt = get_format(cell.dtype)
            if parse_inputs(cell.inputs).kind == "exhaustive" and fmt.bits > 16:
                StreamedPatterns(fmt, oracle)  # raises the UsageError that explains the choices
            impl = self.impl_for(cell)
            if impl.oracle != cell.oracle and not cell.custom:
                raise UsageError(
                    f"{cell.impl} implements {impl.oracle}, not {cell.oracle}; pass --oracle {impl.oracle}"
                )
            if cell.device not in ("cpu", "cuda"):
                raise UsageError(f"unknown device {cell.device!r}; pick from: cpu, cuda")

    def _group(self, cell: CellSpec) -> _Group:
        key: GroupKey = (cell.oracle, cell.dtype, cell.inputs, cell.params)
        group = self._groups.get(key)
        if group is None:
            oracle = get_oracle(cell.oracle)
            fmt = get_format(cell.dtype)
            inputs = parse_inputs(cell.inputs).generate(oracle, fmt)
            group = _Group(oracle, fmt, inputs, oracle.bind(dict(cell.params)))
            self._groups[key] = group
        return group

    def _reference(self, group: _Group, out_fmt: Format, index: int, batch: Batch | None = None) -> Reference:
        key = (out_fmt.name, index)
        if key not in group.refs:
            arrays = group.inputs.float64(batch if batch is not None else group.inputs.batches[index])
            if self.reference is not None:
                if group.inputs.streamed:
                    ref = self.reference(group.oracle, arrays, out_fmt, group.params, cacheable=False)
                else:
                    ref = self.reference(group.oracle, arrays, out_fmt, group.params)
            else:
                from oracles.evaluate import evaluate

                ref = evaluate(group.oracle, arrays, out_fmt, group.params)
            if group.inputs.streamed:
                return ref  # 2**32 references do not fit in memory; each cell streams its own
            group.refs[key] = ref
        return group.refs[key]

    def _profile_inputs(self, group: _Group, index: int, batch: Batch) -> ProfileInputs:
        """The input side of the batch's error profile, shared by the group's cells."""
        if index not in group.profiles:
            with np.errstate(invalid="ignore"):
                group.profiles[index] = ProfileInputs.of(group.inputs.float64(batch)[0], group.fmt)
        return group.profiles[index]

    def prepare(self, cell: CellSpec) -> None:
        """Compute the inputs and the references in the input format for ``cell``."""
        group = self._group(cell)
        if group.inputs.streamed:
            return
        for i in range(len(group.inputs.batches)):
            self._reference(group, group.fmt, i)

    # -- running ----------------------------------------------------------------------
    def run(self, cell: CellSpec) -> CellResult:
        """Run and judge one cell; never raises for a failing implementation."""
        started = time.perf_counter()
        try:
            return self._run(cell, started)
        except UsageError:
            raise
        except OracleError as exc:
            return CellResult(cell, "error", f"oracle: {exc}", seconds=time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - a harness bug must not lose the other cells
            traceback.print_exc(file=sys.stderr)
            return CellResult(
                cell, "error", f"internal error (please report): {_one_line(exc)}",
                seconds=time.perf_counter() - started,
            )

    def _run(self, cell: CellSpec, started: float) -> CellResult:
        backend = get_backend(cell.framework)
        reason = backend.unavailable()
        if reason:
            return CellResult(cell, "skipped", reason)
        reason = backend.device_unavailable(cell.device)
        if reason:
            return CellResult(cell, "skipped", reason)
        # a format the framework cannot hold as configured (jax without x64 and float64) is
        # a skip, like a missing device: an error cell would fail every default run
        reason = backend.dtype_unavailable(cell.dtype)
        if reason:
            return CellResult(cell, "skipped", reason)
        impl = self.impl_for(cell)
        group = self._group(cell)
        defaults = {p.name: p.default for p in group.oracle.params}
        for name in impl.unsupported:
            if group.params.get(name) != defaults.get(name):
                return CellResult(cell, "skipped", f"{impl.id} has no public API for {name}={group.params.get(name)}")
        kwargs = _accepted_kwargs(impl.fn, group.params)
        reduction = str(group.params.get("reduction", "none"))
        total: Summary | None = None
        out_name: str | None = None
        notes: list[str] = []
        offset = 0
        flushed = other_zeros = kept_subnormals = 0
        profile: dict[str, Any] | None = None
        impl_seconds = 0.0
        streamed = group.inputs.streamed
        for index, batch in enumerate(group.inputs.batches):
            if streamed and self.progress is not None:
                self.progress.describe(f"{cell.id}: chunk {index + 1}/{len(group.inputs.batches)}")
            try:
                native = [backend.to_native(a, cell.device) for a in batch.arrays]
            except Exception as exc:  # noqa: BLE001 - e.g. a dtype the framework lacks
                return CellResult(cell, "error", f"inputs: {_one_line(exc)}", seconds=time.perf_counter() - started)
            t0 = time.perf_counter()
            def call(native: list[Any] = native) -> Any:
                return backend.from_native(impl.fn(*native, **kwargs))

            try:
                raw = _call_with_timeout(call, cell.timeout)
            except _Timeout as exc:
                return CellResult(cell, "error", str(exc), seconds=time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001 - the implementation's failure is the result
                return CellResult(cell, "error", _one_line(exc), seconds=time.perf_counter() - started)
            impl_seconds += time.perf_counter() - t0
            got = np.asarray(raw)
            want_shape = _expected_shape(group.oracle, batch, reduction)
            if got.shape != want_shape:
                return CellResult(
                    cell, "error", f"returned shape {got.shape}, expected {want_shape}",
                    seconds=time.perf_counter() - started,
                )
            try:
                out_fmt = format_of_dtype(got.dtype)
            except UsageError:
                return CellResult(
                    cell, "error", f"returned dtype {got.dtype}, expected a float format",
                    seconds=time.perf_counter() - started,
                )
            if out_name is None:
                out_name = out_fmt.name
                if out_fmt.name != cell.dtype:
                    notes.append(f"output is {out_fmt.name}, judged in {out_fmt.name}")
            ref = self._reference(group, out_fmt, index, batch)
            # streamed float32 cells skip the profile: it would add minutes to 1024 chunks
            profiled = group.oracle.kind == "elementwise" and reduction == "none" and not streamed
            # a signalling NaN in the output (an identity on exhaustive bfloat16 returns
            # 0x7f81) raises FE_INVALID when widened to float64; it is still NaN, judged so
            with np.errstate(invalid="ignore"):
                flat = got.reshape(-1)
                counted = tally(
                    ref, flat, out_fmt, k_worst=self.k_worst,
                    profile=self._profile_inputs(group, index, batch) if profiled else None,
                    threads=self.judge_threads,
                )
                summary = summarize(
                    counted, ref, flat, out_fmt, describe=group.inputs.describer(batch), offset=offset,
                    k_worst=self.k_worst,
                )
            total = summary if total is None else total.merge(summary)
            if counted.profile is not None:
                profile = merge_profiles(profile, counted.profile)
            flushed, other_zeros, kept_subnormals = (
                flushed + counted.ftz[0], other_zeros + counted.ftz[1], kept_subnormals + counted.ftz[2]
            )
            offset += ref.size
        assert total is not None
        violations = cell.budget.violations(total)
        # Flush-to-zero only when every lost value is subnormal and no subnormal survives
        # anywhere: log(1 + exp(x)) also returns 0 for subnormal truths, but it loses
        # normal values too, so it is not reported as FTZ.
        if flushed and not other_zeros and not kept_subnormals:
            notes.append(
                f"looks like flush-to-zero: all {flushed} results lost to 0 are subnormal in {out_name}"
                " and no subnormal result came back (FTZ/DAZ on in the kernel?)"
            )
        status = "fail" if violations else "pass"
        reason = "; ".join(violations + notes)
        return CellResult(
            cell, status, reason, out_name, total,
            seconds=time.perf_counter() - started, impl_seconds=impl_seconds, profile=profile,
        )


def _accepted_kwargs(fn: Callable[..., Any], params: dict[str, Any]) -> dict[str, Any]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return dict(params)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return dict(params)
    return {k: v for k, v in params.items() if k in sig.parameters}


def run_cells(
    cells: Sequence[CellSpec],
    *,
    runner: Runner | None = None,
    on_result: Callable[[CellResult], None] | None = None,
) -> list[CellResult]:
    """Validate the plan, compute every group's references, then run every cell in order.

    References come first for the whole plan: oracle evaluation forks worker processes,
    and forking after TensorFlow or JAX has started its threads can deadlock.
    """
    runner = runner or Runner()
    runner.validate(cells)
    progress = runner.progress
    results: list[CellResult] = []
    firsts = list({(c.oracle, c.dtype, c.inputs, c.params): c for c in reversed(cells)}.values())[::-1]
    if progress:
        progress.label = "references"
        progress.start(total=len(firsts))
    try:
        for cell in firsts:
            if progress:
                progress.describe(f"{cell.oracle} {cell.dtype} {cell.inputs}")
            try:
                runner.prepare(cell)
            except UsageError:
                raise
            except Exception:  # noqa: BLE001 - the cell itself reports it when it runs
                pass
            if progress:
                progress.advance()
    finally:
        if progress:
            progress.stop()
    if progress:
        progress.label = "cells"
        progress.start(total=len(cells))
    try:
        for cell in cells:
            if progress:
                progress.describe(cell.id)
            result = runner.run(cell)
            results.append(result)
            if on_result:
                on_result(result)
            if progress:
                progress.advance()
    finally:
        if progress:
            progress.stop()
    return results
