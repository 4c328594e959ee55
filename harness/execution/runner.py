"""Run cells: generate inputs once per group, compute each reference once, call every
implementation (with a timeout) and judge its output.

A cell never takes the run down with it: an implementation that raises, returns the wrong
shape or a non-array, or hangs past its timeout becomes an ``error`` cell with a one-line
reason; a missing framework or device makes a ``skipped`` cell. References are computed
before any implementation runs in the group, so a crashing implementation cannot cost the
oracle work of the cells after it.

Where an implementation runs: custom ones (users' files and modules) in the isolated
worker process of :mod:`.isolation`, which the runner never imports them into, so that
``sys.exit``, ``os._exit``, a segfault, a GIL-holding hang or unbounded allocation costs
only the cell; built-ins and in-memory implementations (``extra_impls``) in this process,
in a thread with a timeout (a hang there is abandoned, not stopped; ``SystemExit`` and
every other exception but ``KeyboardInterrupt`` still become the cell's error).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import os
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.execution.consistency import CallFailed, Subject, run_check
from harness.execution.isolation import ISOLATION_SUPPORTED, Isolated, accepted_kwargs
from harness.execution.progress import Progress
from harness.frameworks.adapters import DEVICES, get_backend
from harness.frameworks.autodiff import NotDifferentiable, differentiable, vjp
from harness.frameworks.catalogue import get_impl
from harness.frameworks.layouts import to_native_layout
from harness.frameworks.registry import Impl
from harness.judgement.consistency import Consistency
from harness.judgement.definitions import ulp_errors
from harness.judgement.error_vs_input import ProfileInputs, merge_profiles
from harness.judgement.summary import Example, Summary, summarize
from harness.judgement.tally import Baseline, tally
from harness.plan.cells import CellResult, CellSpec
from harness.plan.consistency import cell_oracle
from harness.plan.cotangents import cotangent_values
from harness.plan.implementations import custom_impl, load_custom
from harness.plan.inputs import Batch, InputSet, StreamedPatterns, parse_inputs
from oracles.errors import OracleError, UsageError, choices, one_line
from oracles.evaluate import evaluate
from oracles.formats import Format, format_of_dtype, get_format
from oracles.gradients import COUNT, gradient_oracle
from oracles.properties import Properties, properties_of
from oracles.reference import Reference
from oracles.registry import Oracle, get_oracle

__all__ = ["Part", "Runner"]

GroupKey = tuple[Any, ...]


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




def _expected_shape(oracle: Oracle, batch: Batch, reduction: str) -> tuple[int, ...]:
    if reduction != "none":
        return ()
    x = batch.arrays[0]
    return tuple(x.shape[:1]) if oracle.kind == "row_reduce" else tuple(x.shape)


@dataclass
class _Group:
    """Cells sharing inputs and truth: one oracle, format, input spec and parameters, and
    for gradient cells one argument and cotangent. ``oracle`` and ``params`` are the
    forward ones (what the implementation is called with); ``truth`` is what the outputs
    are judged against: the oracle itself, or its gradient oracle (oracles.gradients)."""

    oracle: Oracle
    fmt: Format
    inputs: InputSet
    params: dict[str, Any]
    truth: Oracle
    #: gradient cells: the position and name of the argument differentiated, the cotangent
    wrt: tuple[int, str] | None = None
    cotangent: str = "ones"
    key: str = ""
    refs: dict[tuple[str, int], Reference] = field(default_factory=dict)
    profiles: dict[int, ProfileInputs] = field(default_factory=dict)
    baselines: dict[tuple[str, int], Baseline] = field(default_factory=dict)

    @property
    def reduction(self) -> str:
        return str(self.params.get("reduction", "none"))

    def output_shape(self, batch: Batch) -> tuple[int, ...]:
        """The shape the implementation must return for ``batch``: the forward output's,
        or for a gradient the differentiated argument's."""
        if self.wrt is not None:
            return tuple(batch.arrays[self.wrt[0]].shape)
        return _expected_shape(self.oracle, batch, self.reduction)

    def cotangent_for(self, index: int, batch: Batch) -> npt.NDArray[Any]:
        """Batch ``index``'s cotangent, shaped like the forward output, in the format."""
        shape = _expected_shape(self.oracle, batch, self.reduction)
        return cotangent_values(self.cotangent, shape, self.fmt, key=f"{self.key}#{index}")

    def truth_cotangent(self, index: int, batch: Batch, cot: npt.NDArray[Any] | None = None) -> npt.NDArray[Any]:
        """The cotangent (by default batch ``index``'s) in the truth's layout: a per-row or
        reduced loss's cotangent repeated over the elements it multiplies (the gradient
        oracle's last argument)."""
        cot = self.cotangent_for(index, batch) if cot is None else cot
        first = batch.arrays[0]
        if cot.ndim == 0:
            return np.full(first.shape, cot, dtype=cot.dtype)
        if self.oracle.kind == "row_reduce":
            return np.repeat(cot[:, None], first.shape[1], axis=1)
        return cot

    def truth_arrays(self, index: int, batch: Batch) -> list[npt.NDArray[Any]]:
        """The exact arguments of ``truth`` for ``batch``: the inputs, then for a gradient
        the cotangent (:meth:`truth_cotangent`; a streamed chunk's cotangent of ones is a
        read-only broadcast of 1.0)."""
        arrays = self.inputs.float64(batch)
        if self.wrt is None:
            return arrays
        if self.cotangent == "ones" and self.inputs.streamed:
            # a streamed chunk's 4M ones, 32 MB in float64, as one number repeated (read-only)
            return [*arrays, np.broadcast_to(np.float64(1.0), batch.arrays[0].shape)]
        with np.errstate(invalid="ignore"):
            return [*arrays, self.truth_cotangent(index, batch).astype(np.float64)]

    def describer(self, index: int, batch: Batch, cot: npt.NDArray[Any] | None = None) -> Callable[[int], Any]:
        """What examples show of an output element: its inputs (and its cotangent)."""
        if self.wrt is None:
            return self.inputs.describer(batch)
        view = InputSet(self.inputs.spec, self.fmt, (), self.truth)
        return view.describer(Batch((*batch.arrays, self.truth_cotangent(index, batch, cot))))

    def truth_params(self, batch: Batch) -> dict[str, Any]:
        """``truth``'s parameters: the forward ones, or for a gradient the math parameters
        and the number of losses a ``mean`` divides by."""
        if self.wrt is None:
            return self.params
        params = self.oracle.math_params(self.params)
        if self.oracle.reducible:
            losses = math.prod(_expected_shape(self.oracle, batch, "none"))
            params[COUNT] = float(losses) if self.reduction == "mean" and losses else 1.0
        return params


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
    #: (version, devices) per framework, as worker processes reported them (harness.execution.parallel)
    framework_info: dict[str, tuple[str | None, dict[str, str]]] = field(default_factory=dict)
    _groups: dict[GroupKey, _Group] = field(default_factory=dict)
    #: the last streamed chunk's reference per output format: judged and dropped before
    #: the next chunk's evaluation refills its arrays (one per process, not per cell)
    _spare: dict[str, Reference] = field(default_factory=dict)
    _customs: dict[tuple[str, str, str], Impl] = field(default_factory=dict)
    #: the process custom implementations run in (harness.execution.isolation), and what
    #: importing each there gave: None (callable) or the reason its cells fail
    _isolated: Isolated | None = None
    _resolved: dict[tuple[str, str, str], str | None] = field(default_factory=dict)
    #: this process's resident memory after its first position cell (see RELEASE_ABOVE)
    _resident_before: int = 0

    # -- planning ---------------------------------------------------------------------
    def isolated(self, cell: CellSpec) -> bool:
        """Whether ``cell``'s implementation runs in the isolated process."""
        return cell.custom and cell.impl not in self.extra_impls and ISOLATION_SUPPORTED

    def impl_for(self, cell: CellSpec) -> Impl:
        """The implementation's record. A custom one that runs isolated is checked here
        without being imported (its ``fn`` cannot be called in this process)."""
        if cell.impl in self.extra_impls:
            return self.extra_impls[cell.impl]
        if not cell.custom:
            return get_impl(cell.impl)
        key = (cell.impl, cell.oracle, cell.framework)
        if key not in self._customs:
            load = custom_impl if self.isolated(cell) else load_custom
            self._customs[key] = load(cell.impl, oracle=cell.oracle, framework=cell.framework)
        return self._customs[key]

    def _resolve(self, cell: CellSpec) -> str | None:
        """Import ``cell``'s custom implementation in the isolated process, once: None when
        it is callable, else why every cell of it fails (its import ended or hung the
        process). Raises the :class:`UsageError` of a missing function or a failed import."""
        key = (cell.impl, cell.oracle, cell.framework)
        if key not in self._resolved:
            self._resolved[key] = self._process().resolve(
                cell.impl, cell.oracle, cell.framework, timeout=cell.timeout, repro=cell.repro())
        return self._resolved[key]

    def _process(self) -> Isolated:
        if self._isolated is None:
            self._isolated = Isolated()
        return self._isolated

    def close(self) -> None:
        """Stop the isolated process, if one runs (it starts again when needed)."""
        if self._isolated is not None:
            self._isolated.close()

    def validate(self, cells: Iterable[CellSpec]) -> None:
        """Raise :class:`UsageError` for anything wrong in the plan before running it."""
        for cell in cells:
            oracle = cell_oracle(cell)
            get_format(cell.dtype)
            oracle.bind(dict(cell.params))
            fmt = get_format(cell.dtype)
            if parse_inputs(cell.inputs).kind == "exhaustive" and fmt.bits > 16:
                if cell.check:
                    raise UsageError(f"{cell.id}: consistency checks hold their inputs in memory, and exhaustive"
                                     f" {fmt.name} is 2**{fmt.bits} inputs; use special or random:N for {fmt.name}")
                StreamedPatterns(fmt, oracle)  # raises the UsageError that explains the choices
            impl = self.impl_for(cell)
            if cell.is_grad:
                gradient_oracle(oracle, cell.wrt)  # an argument that is not a real one
            if self.isolated(cell):
                self._resolve(cell)
            if impl.oracle != cell.oracle and not cell.custom:
                raise UsageError(
                    f"{cell.impl} implements {impl.oracle}, not {cell.oracle}; pass --oracle {impl.oracle}"
                )
            if cell.device not in DEVICES:
                raise UsageError(f"unknown device {cell.device!r}; {choices(DEVICES, given=cell.device)}")

    def _group(self, cell: CellSpec) -> _Group:
        key: GroupKey = cell.group
        group = self._groups.get(key)
        if group is None:
            # a consistency cell needs only the signature: a user's operation may have no oracle
            oracle = cell_oracle(cell)
            fmt = get_format(cell.dtype)
            inputs = parse_inputs(cell.inputs).generate(oracle, fmt)
            params = oracle.bind(dict(cell.params))
            if cell.is_grad:
                truth = gradient_oracle(oracle, cell.wrt)
                position = [a.name for a in oracle.args].index(cell.wrt)
                group = _Group(oracle, fmt, inputs, params, truth, (position, cell.wrt), cell.cotangent,
                               key=repr(key))
            else:
                group = _Group(oracle, fmt, inputs, params, oracle)
            self._groups[key] = group
        return group

    def _reference(self, group: _Group, out_fmt: Format, index: int, batch: Batch | None = None) -> Reference:
        key = (out_fmt.name, index)
        if key not in group.refs:
            batch = batch if batch is not None else group.inputs.batches[index]
            arrays = group.truth_arrays(index, batch)
            params = group.truth_params(batch)
            # 2**32 references do not fit in memory: each streamed cell judges a chunk's
            # reference and drops it before the next, whose evaluation refills its arrays
            spare = self._spare.get(out_fmt.name) if group.inputs.streamed else None
            if self.reference is not None:
                if group.inputs.streamed:
                    ref = self.reference(group.truth, arrays, out_fmt, params, cacheable=False, out=spare)
                else:
                    ref = self.reference(group.truth, arrays, out_fmt, params)
            else:
                ref = evaluate(group.truth, arrays, out_fmt, params, out=spare)
            if group.inputs.streamed:
                self._spare[out_fmt.name] = ref
                return ref
            group.refs[key] = ref
        return group.refs[key]

    def _profile_inputs(self, group: _Group, index: int, batch: Batch) -> ProfileInputs:
        """The input side of the batch's error profile, shared by the group's cells."""
        if index not in group.profiles:
            with np.errstate(invalid="ignore"):
                group.profiles[index] = ProfileInputs.of(group.inputs.float64(batch)[0], group.fmt)
        return group.profiles[index]

    def _baseline(self, group: _Group, out_fmt: Format, index: int, ref: Reference) -> Baseline:
        """The batch's correctly rounded result judged once (see :class:`Baseline`), so
        each cell of the group judges only where it differs."""
        key = (out_fmt.name, index)
        if key not in group.baselines:
            profile = self._profile_inputs(group, index, group.inputs.batches[index]) if _profiled(group) else None
            group.baselines[key] = Baseline.of(ref, out_fmt, profile)
        return group.baselines[key]

    def prepare(self, cell: CellSpec, *, baselines: bool = True) -> None:
        """Compute the inputs, the references in the input format for ``cell`` and (unless
        the cells will run in other processes, which build their own) their baselines: the
        correctly rounded results judged, which each cell's judging starts from."""
        group = self._group(cell)
        if group.inputs.streamed or cell.check:  # a consistency cell evaluates no oracle
            return
        for i in range(len(group.inputs.batches)):
            ref = self._reference(group, group.fmt, i)
            if baselines:
                self._baseline(group, group.fmt, i, ref)

    # -- running ----------------------------------------------------------------------
    def run(self, cell: CellSpec) -> CellResult:
        """Run and judge one cell; never raises for a failing implementation."""
        started = time.perf_counter()
        part = self.run_part(cell, None)
        return self.finish(cell, part, time.perf_counter() - started)

    def batch_count(self, cell: CellSpec) -> int:
        """How many batches (chunks, for a streamed cell) the cell's inputs come in."""
        return len(self._group(cell).inputs.batches)

    def run_part(self, cell: CellSpec, indices: Sequence[int] | None) -> Part:
        """Run and judge the batches ``indices`` of ``cell`` (None: all of them), in order.
        Parts of one cell merge exactly (:meth:`Part.merge`), so a cell split over worker
        processes gives the result of running it whole. Never raises for a failing
        implementation; a harness or oracle failure becomes the part's ``failure``."""
        started = time.perf_counter()
        try:
            return self._run_part(cell, indices, started)
        except UsageError:
            raise
        except OracleError as exc:
            return Part(failure=("error", f"oracle: {exc}"), failed_at=-1, seconds=time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - a harness bug must not lose the other cells
            traceback.print_exc(file=sys.stderr)
            return Part(failure=("error", f"internal error (please report): {one_line(exc)}"), failed_at=-1,
                        seconds=time.perf_counter() - started)

    def _run_part(self, cell: CellSpec, indices: Sequence[int] | None, started: float) -> Part:
        backend = get_backend(cell.framework)
        for reason in (
            backend.unavailable(),
            backend.device_unavailable(cell.device),
            # a format the framework cannot hold as configured (jax without x64 and
            # float64) is a skip, like a missing device: an error cell would fail every run
            backend.dtype_unavailable(cell.dtype),
        ):
            if reason:
                return Part(failure=("skipped", reason), failed_at=-1)
        impl = self.impl_for(cell)
        group = self._group(cell)
        defaults = {p.name: p.default for p in group.oracle.params}
        for name in impl.unsupported:
            if group.params.get(name) != defaults.get(name):
                return Part(failure=("skipped", f"{impl.id} has no public API for {name}={group.params.get(name)}"),
                            failed_at=-1)
        isolated = self.isolated(cell)
        kwargs = {} if isolated else accepted_kwargs(impl.fn, group.params)
        reduction = group.reduction
        if group.wrt is not None and not isolated:
            why_not = differentiable(impl.framework, impl.fn)
            if why_not is not None:
                return Part(failure=("unsupported", why_not), failed_at=-1)
        batches = group.inputs.batches
        streamed = group.inputs.streamed
        todo = range(len(batches)) if indices is None else indices
        part = Part()

        if isolated:
            try:
                why = self._resolve(cell)
            except UsageError as exc:  # validate() raised it already; a worker has no plan to refuse
                why = str(exc)
            if why is not None:
                return _ended(part, "error", todo[0] if len(todo) else 0, why, started)
        if cell.check:
            return self._consistency(cell, group, impl, backend, isolated, kwargs, started)
        with _old_objects_frozen(streamed):
            return self._judge_batches(cell, group, impl, backend, isolated, kwargs, reduction, todo, part, started)

    def _judge_batches(self, cell: CellSpec, group: _Group, impl: Impl, backend: Any, isolated: bool,
                       kwargs: dict[str, Any], reduction: str, todo: Sequence[int], part: Part,
                       started: float) -> Part:
        """Run and judge the batches ``todo`` into ``part`` (the loop of :meth:`run_part`)."""
        batches = group.inputs.batches
        streamed = group.inputs.streamed

        def fail(index: int, reason: str) -> Part:
            return _ended(part, "error", index, reason, started)

        def unsupported(index: int, message: str) -> Part:
            # the framework's own limitation: not a defect of the run
            return _ended(part, "unsupported", index, message, started)

        for index in todo:
            batch = batches[index]
            judged, keep = batch, np.ones(0, dtype=bool)
            if streamed and self.progress is not None:
                self.progress.describe(f"{cell.id}: chunk {index + 1}/{len(batches)}")
            cot = group.cotangent_for(index, batch) if group.wrt is not None else None
            arrays = batch.arrays if cot is None else (*batch.arrays, cot)
            no_support = f"no {cell.dtype} support in {impl.framework}: "
            if isolated:
                outcome = self._process().call(
                    cell.impl, cell.oracle, cell.framework, cell.device, arrays, group.params,
                    timeout=cell.timeout, repro=cell.repro(), grad=group.wrt)
                if outcome.not_differentiable is not None:
                    why, limit = outcome.not_differentiable
                    return unsupported(index, why) if limit else fail(index, why)
                if outcome.failure is not None:
                    return fail(index, outcome.failure)
                raw, part.impl_seconds = outcome.value, part.impl_seconds + outcome.seconds
            else:
                try:
                    native = [backend.to_native(a, cell.device) for a in arrays]
                except Exception as exc:  # noqa: BLE001 - e.g. a dtype the framework lacks
                    if cell.dtype in impl.unsupported_dtypes:
                        return unsupported(index, f"{no_support}inputs: {one_line(exc)}")
                    return fail(index, f"inputs: {one_line(exc)}")
                backend.synchronize(cell.device)  # the inputs' copy to the GPU is not the call's time
                t0 = time.perf_counter()

                try:
                    raw = self._call(backend, impl.fn, native, kwargs, cell.timeout, impl.framework, group.wrt,
                                     cell.device)
                except _Timeout as exc:
                    return fail(index, str(exc))
                except KeyboardInterrupt:
                    raise
                except SystemExit as exc:
                    return fail(index, f"the implementation called sys.exit({exc.code!r})")
                except NotDifferentiable as exc:
                    # the framework declines (or, for a built-in, never connects the argument):
                    # coverage, not a defect; a user's function whose graph is cut is an error
                    return unsupported(index, str(exc)) if exc.limit or not cell.custom else fail(index, str(exc))
                except BaseException as exc:  # noqa: BLE001 - the implementation's failure is the result
                    if cell.dtype in impl.unsupported_dtypes:
                        return unsupported(index, no_support + one_line(exc))
                    retried = self._without_nan_truth(cell, group, index, batch, reduction)
                    if retried is None:
                        return fail(index, one_line(exc))
                    judged, keep = retried
                    if cot is not None:
                        cot = cot[keep]  # the kept elements' own cotangents, as the truth has them
                    try:
                        again_arrays = judged.arrays if cot is None else (*judged.arrays, cot)
                        native = [backend.to_native(a, cell.device) for a in again_arrays]
                        raw = self._call(backend, impl.fn, native, kwargs, cell.timeout, impl.framework, group.wrt,
                                     cell.device)
                    except _Timeout as again:
                        return fail(index, f"{one_line(exc)}; without its inputs whose exact result is NaN: {again}")
                    except KeyboardInterrupt:
                        raise
                    except BaseException:  # noqa: BLE001 - it raises on valid inputs too: the first reason stands
                        return fail(index, one_line(exc))
                    part.rejected += int(keep.size - np.count_nonzero(keep))
                    if part.rejected_why is None:
                        part.rejected_why = one_line(exc)
                part.impl_seconds += time.perf_counter() - t0
            got = np.asarray(raw)
            want_shape = group.output_shape(judged)
            if got.shape != want_shape:
                what = f"gradient of {group.wrt[1]}" if group.wrt else "returned"
                return fail(index, f"{what} shape {got.shape}, expected {want_shape}")
            try:
                out_fmt = format_of_dtype(got.dtype)
            except UsageError:
                return fail(index, f"returned dtype {got.dtype}, expected a float format")
            if part.out_name is None:
                part.out_name = out_fmt.name
            ref = self._reference(group, out_fmt, index, batch)
            profiled = _profiled(group)
            if judged is batch:
                profile = self._profile_inputs(group, index, batch) if profiled else None
                baseline = self._baseline(group, out_fmt, index, ref) if not streamed else None
            else:  # the elements (rows) it rejected are left out of the truth and the profile
                ref = _rows(ref, batch)[keep]
                with np.errstate(invalid="ignore"):
                    profile = ProfileInputs.of(group.inputs.float64(judged)[0], group.fmt) if profiled else None
                baseline = None
            # a signalling NaN in the output (an identity on exhaustive bfloat16 returns
            # 0x7f81) raises FE_INVALID when widened to float64; it is still NaN, judged so
            with np.errstate(invalid="ignore"):
                flat = got.reshape(-1)
                counted = tally(
                    ref, flat, out_fmt, k_worst=self.k_worst, profile=profile, baseline=baseline,
                    tolerance=cell.budget.tolerance_for(out_fmt.name),
                )
                summary = summarize(
                    counted, ref, flat, out_fmt, describe=group.describer(index, judged, cot),
                    offset=self._offset(cell, index), k_worst=self.k_worst,
                )
            if judged is not batch:
                summary = _positions_in_batch(summary, np.flatnonzero(keep), flat.size, self._offset(cell, index))
            part.summary = summary if part.summary is None else part.summary.merge(summary)
            if counted.profile is not None:
                part.profile = merge_profiles(part.profile, counted.profile)
            part.ftz = (part.ftz[0] + counted.ftz[0], part.ftz[1] + counted.ftz[1], part.ftz[2] + counted.ftz[2])
            if streamed:
                gc.freeze()  # this chunk's survivors too (the framework, imported by the first)
        part.seconds = time.perf_counter() - started
        return part

    @staticmethod
    def _call(backend: Any, fn: Callable[..., Any], native: list[Any], kwargs: dict[str, Any], timeout: float,
              framework: str = "", grad: tuple[int, str] | None = None, device: str = "cpu") -> Any:
        """The implementation's output on ``device``, or with ``grad`` (position and name of
        an argument; the last of ``native`` is then the cotangent) the gradient its
        framework's autodiff gives, as a numpy array."""
        def forward() -> Any:
            with backend.placed(device):
                return backend.from_native(fn(*native, **kwargs))

        if grad is None:
            return _call_with_timeout(forward, timeout)
        *args, cotangent = native

        def backward() -> Any:
            with backend.placed(device):
                return backend.from_native(
                    vjp(framework, fn, args, kwargs, wrt=grad[0], wrt_name=grad[1], cotangent=cotangent))

        return _call_with_timeout(backward, timeout)

    def _consistency(self, cell: CellSpec, group: _Group, impl: Impl, backend: Any, isolated: bool,
                     kwargs: dict[str, Any], started: float) -> Part:
        """Run ``cell``'s consistency check (harness.execution.consistency): the
        implementation called in every context the check asks for, no oracle evaluated."""
        part = Part()
        spent = [0.0]
        # set when the check timed out: the abandoned thread then stops at its next call
        # rather than calling the implementation beside the next cells
        abandoned = [False]

        def call(arrays: Sequence[npt.NDArray[Any]], layout: str, device: str) -> npt.NDArray[Any]:
            if abandoned[0]:
                raise CallFailed("abandoned after the cell's timeout")
            if isolated:
                outcome = self._process().call(
                    cell.impl, cell.oracle, cell.framework, device, arrays, group.params,
                    timeout=cell.timeout, repro=cell.repro(), layout=layout)
                if outcome.failure is not None:
                    raise CallFailed(outcome.failure)
                spent[0] += outcome.seconds
                return np.asarray(outcome.value)
            try:
                native = to_native_layout(backend, arrays, layout, device)
            except Exception as exc:  # noqa: BLE001 - e.g. a dtype the framework lacks
                raise CallFailed(f"inputs: {one_line(exc)}") from None
            backend.synchronize(device)  # the inputs' copy to the GPU is not the call's time
            t0 = time.perf_counter()
            try:
                with backend.placed(device):
                    return np.asarray(backend.from_native(impl.fn(*native, **kwargs)))
            except KeyboardInterrupt:
                raise
            except SystemExit as exc:
                raise CallFailed(f"the implementation called sys.exit({exc.code!r})") from None
            except BaseException as exc:  # noqa: BLE001 - the implementation's failure is the result
                raise CallFailed(one_line(exc)) from None
            finally:
                spent[0] += time.perf_counter() - t0

        subject = Subject(
            oracle=group.oracle, params=group.params,
            props=properties_of(group.oracle.name, group.params) if group.oracle.name else Properties(),
            fmt=group.fmt, device=cell.device, framework=cell.framework, tolerance=cell.budget.max_ulp,
        )

        def check() -> Consistency:
            return run_check(cell.check, subject, group.inputs.batches, call)

        try:
            # the isolated process keeps its own time limit per call; in this process the
            # whole check runs under the cell's (a hang is abandoned, as for accuracy cells)
            part.consistency = check() if isolated else _call_with_timeout(check, cell.timeout)
        except _Timeout as exc:
            abandoned[0] = True
            part.failure, part.failed_at = ("error", str(exc)), 0
        except CallFailed as exc:
            kind = "unsupported" if cell.dtype in impl.unsupported_dtypes else "error"
            part.failure, part.failed_at = (kind, str(exc)), 0
        finally:
            # the position check calls 65 shapes; what the framework compiled for them stays
            # for the next cells (the implementation's other input sets have the same shapes)
            # until this process has grown by RELEASE_ABOVE since its first position cell
            if not isolated and cell.check == "position" and not abandoned[0]:
                resident = _resident_bytes()
                self._resident_before = self._resident_before or resident
                if resident > self._resident_before + RELEASE_ABOVE:
                    backend.release_caches()
        part.impl_seconds = spent[0]
        part.seconds = time.perf_counter() - started
        return part

    def _without_nan_truth(
        self, cell: CellSpec, group: _Group, index: int, batch: Batch, reduction: str
    ) -> tuple[Batch, npt.NDArray[np.bool_]] | None:
        """The batch without its elements (rows, for a row-wise oracle) whose correctly
        rounded truth is NaN, and which rows it keeps; None when there are none to leave out,
        nothing would remain, or the oracle reduces the batch (a mean of losses over fewer
        inputs is another truth).

        Raising on an input outside the domain (torch.binary_cross_entropy on p > 1) is a
        legitimate answer where the truth is NaN; what it computes for the other inputs is
        still judged; for a gradient cell, the inputs whose gradient is NaN go. Exact and
        deterministic: which inputs go depends only on the truth."""
        if reduction != "none" or group.inputs.streamed:
            return None
        nan = np.isnan(_rows(self._reference(group, group.fmt, index, batch), batch).want)
        rejected = nan.reshape(nan.shape[0], -1).any(axis=1)
        if not rejected.any() or rejected.all():
            return None
        keep: npt.NDArray[np.bool_] = np.logical_not(rejected)
        return Batch(tuple(a[keep] for a in batch.arrays)), keep

    def _offset(self, cell: CellSpec, index: int) -> int:
        """Position of batch ``index``'s first output element in the whole cell."""
        group = self._group(cell)
        batches = group.inputs.batches
        if isinstance(batches, StreamedPatterns):
            return index * batches.chunk
        return sum(math.prod(group.output_shape(b)) for b in batches[:index])

    def finish(self, cell: CellSpec, part: Part, seconds: float) -> CellResult:
        """The cell's result from the merged part of all its batches."""
        if part.failure is not None:
            status, reason = part.failure
            return CellResult(cell, status, reason, seconds=seconds if status != "skipped" else 0.0)
        if part.consistency is not None:
            found = part.consistency
            reason = "; ".join([found.headline(), *found.notes])
            return CellResult(cell, "pass" if found.consistent else "fail", reason, None, None,
                              seconds=seconds, impl_seconds=part.impl_seconds, consistency=found)
        if part.summary is None:  # a cell with no batches: nothing was judged
            return CellResult(cell, "error", "no inputs", seconds=seconds)
        total = part.summary
        notes: list[str] = []
        if part.out_name is not None and part.out_name != cell.dtype:
            what = "gradient" if cell.is_grad else "output"
            notes.append(f"{what} is {part.out_name}, judged in {part.out_name}")
        violations = cell.budget.violations(total)
        # Flush-to-zero only when every lost value is subnormal and no subnormal survives
        # anywhere: log(1 + exp(x)) also returns 0 for subnormal truths, but it loses
        # normal values too, so it is not reported as FTZ.
        flushed, other_zeros, kept_subnormals = part.ftz
        if flushed and not other_zeros and not kept_subnormals:
            notes.append(
                f"looks like flush-to-zero: all {flushed} results lost to 0 are subnormal in {part.out_name}"
                " and no subnormal result came back (FTZ/DAZ on in the kernel?)"
            )
        if part.rejected:
            unit = "inputs" if get_oracle(cell.oracle).kind == "elementwise" else "rows"
            notes.append(f"rejected {part.rejected} {unit} whose exact result is NaN ({part.rejected_why});"
                         " judged the others")
        status = "fail" if violations else "pass"
        rechecked = 0
        if self._group(cell).inputs.streamed and part.out_name is not None:
            try:
                rechecked, disagreement = self._recheck(cell, get_format(part.out_name), total)
            except Exception as exc:  # noqa: BLE001 - a guard that cannot run is a note, not a lost run
                rechecked, disagreement = 0, None
                notes.append(f"the worst elements could not be re-checked with mpmath: {one_line(exc)}")
            if disagreement is not None:
                status, violations = "error", [disagreement]
        reason = "; ".join(violations + notes)
        return CellResult(
            cell, status, reason, part.out_name, total,
            seconds=seconds, impl_seconds=part.impl_seconds, profile=part.profile, rejected=part.rejected,
            rechecked=rechecked,
        )

    def _recheck(self, cell: CellSpec, out_fmt: Format, total: Summary) -> tuple[int, str | None]:
        """Derive the truth of a streamed cell's worst elements again with mpmath alone (no
        fast tier) and compare the rounded value and the ULP error with the run's: a cheap
        guard, readable in the results, that the tier did not mislead 2**32 verdicts. The
        number that agreed, or a one-line disagreement."""
        group = self._group(cell)
        batches = group.inputs.batches
        shown = [e for e in total.worst if e.ulp is not None and math.isfinite(e.ulp)][:RECHECK]
        if not shown or not isinstance(batches, StreamedPatterns):
            return 0, None
        columns: list[list[Any]] = []
        chunks: dict[int, list[npt.NDArray[Any]]] = {}  # the worst elements often share a chunk
        for e in shown:
            chunk, local = divmod(e.index, batches.chunk)
            if chunk not in chunks:
                chunks[chunk] = [np.asarray(a).reshape(-1) for a in group.truth_arrays(chunk, batches[chunk])]
            columns.append([a[local] for a in chunks[chunk]])
        params = group.truth_params(batches[0])
        ref = evaluate(group.truth, [np.array(col) for col in zip(*columns, strict=True)], out_fmt, params, tier=False)
        got = out_fmt.to_float64(out_fmt.from_bits(np.array([int(e.got, 16) for e in shown], dtype=np.uint64)))
        errors = ulp_errors(ref, got)  # as the run measured them, saturation included
        # the run's hi + lo is y / ulp to ~2**-40 relative (oracles.fast: 1e-13 and better),
        # so its ULP errors agree to 2**(p - 40) ulp, 1.5e-5 in float32
        slack = 2.0 ** (out_fmt.precision - 40)
        for i, e in enumerate(shown):
            want, err, run_err = float(ref.want[i]), float(errors[i]), float(e.ulp or 0.0)  # finite, filtered above
            same_want = out_fmt.hex(want) == e.want
            if not same_want or not math.isclose(err, run_err, rel_tol=1e-9, abs_tol=slack):
                return i, (f"the fast tier's truth at element {e.index} is {e.want} with {e.ulp} ulp, mpmath's"
                           f" alone {out_fmt.hex(want)} with {err:.6g} ulp (please report)")
        return len(shown), None


#: how many of a streamed cell's worst elements :meth:`Runner._recheck` derives again
RECHECK = 10


def _positions_in_batch(summary: Summary, kept_rows: npt.NDArray[np.intp], size: int, offset: int) -> Summary:
    """``summary`` of a batch judged without its rejected rows, with every shown element's
    position (and row) put back where it sits in the whole batch, so positions, repro files
    and tie-breaking in merges refer to the inputs as generated."""
    width = size // kept_rows.size  # output elements per kept row: 1 unless row-wise

    def moved(e: Example) -> Example:
        local = e.index - offset
        row = int(kept_rows[local // width])
        return replace(e, index=offset + row * width + local % width, row=row if e.row is not None else None)

    return replace(summary, worst=tuple(map(moved, summary.worst)), examples=tuple(map(moved, summary.examples)))


#: growth of resident memory (since the first position cell) above which a position cell
#: releases its framework's compiled kernels (JAX keeps about 90 MB of them per
#: implementation and dtype swept, over 10 GB in one worker over the frameworks suite)
RELEASE_ABOVE = 3 << 29


def _ended(part: Part, kind: str, index: int, reason: str, started: float) -> Part:
    """``part`` stopped at batch ``index``: an error, or ``unsupported`` (the framework's limit)."""
    part.failure, part.failed_at = (kind, reason), index
    part.seconds = time.perf_counter() - started
    return part


_collected = False


@contextlib.contextmanager
def _old_objects_frozen(active: bool) -> Iterator[None]:
    """While a streamed cell's chunks run, keep the garbage collector off the objects alive
    before them (torch alone brings 180,000; the loop freezes each chunk's survivors too,
    the framework's among them after the first). Otherwise the full collections that the
    chunks' allocations trigger walk them all, 10-15 ms a 4M-element chunk (5% of an
    exhaustive float32 forward run). Unfrozen at the end, so a caller's process (the
    pytest plugin) collects them as before; the one full collection, before the first
    freeze in a process, leaves no garbage frozen."""
    global _collected
    if not active:
        yield
        return
    if not _collected:
        _collected = True
        gc.collect()
        _malloc_keeps_chunks()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


#: glibc's malloc settings for a process that streams chunks: arrays below 64 MiB (a 4M-element
#: chunk's float64 arrays are 32 MiB) come from the heap, and up to 1 GiB of freed heap stays
#: mapped. By default each chunk's arrays are fresh mmaps whose pages fault in on first touch:
#: 12,800 faults and 23 ms of system time a chunk of exhaustive float32 ∂gelu/∂x, 12% of it
#: (two runs side by side; 260 faults with these settings). glibc before 2.26 refuses a
#: threshold above 32 MiB, the second choice (550 faults a chunk of ∂exp/∂x against 390).
_MMAP_THRESHOLDS = (64 << 20, 32 << 20)
_TRIM_THRESHOLD = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _malloc_keeps_chunks() -> None:
    """Have glibc reuse a streamed chunk's freed memory for the next. Once per process and
    not undone (mallopt has no way back to the default's sliding threshold): the process
    keeps up to a chunk's working set, a few hundred MB, that it would otherwise return.
    Where the threshold is refused, nothing is changed (the trim setting alone would fix
    the threshold at 128 KiB); elsewhere than glibc (macOS, musl) nothing happens."""
    try:
        if not (sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION")):
            return
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, ValueError, AttributeError):
        return
    if any(mallopt(_M_MMAP_THRESHOLD, size) == 1 for size in _MMAP_THRESHOLDS):
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)


def _resident_bytes() -> int:
    """This process's resident memory (Linux ``/proc/self/statm``); where that cannot be
    read, a number above any threshold, so that caches are released rather than kept."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 1 << 62


@dataclass
class Part:
    """What running some batches of a cell produced: the merged summary, profile and
    flush-to-zero evidence, or the failure that stopped it (``failed_at``: the batch, -1
    for one that concerns the whole cell, such as a skip)."""

    summary: Summary | None = None
    out_name: str | None = None
    profile: dict[str, Any] | None = None
    ftz: tuple[int, int, int] = (0, 0, 0)
    impl_seconds: float = 0.0
    seconds: float = 0.0
    failure: tuple[str, str] | None = None
    failed_at: int = 0
    #: how many elements (rows) whose truth is NaN the implementation refused, and the
    #: first refusal's message (see Runner._without_nan_truth)
    rejected: int = 0
    rejected_why: str | None = None
    #: a consistency cell's verdict (its cells run whole: never merged from parts)
    consistency: Consistency | None = None

    def merge(self, later: Part) -> Part:
        """This part followed by ``later`` (batches after this one's). The first failure
        wins, as in a serial run that stops at it."""
        if self.failure is not None:
            return self
        if later.failure is not None:
            return Part(failure=later.failure, failed_at=later.failed_at, seconds=self.seconds + later.seconds)
        summary = self.summary if later.summary is None else (
            later.summary if self.summary is None else self.summary.merge(later.summary))
        return Part(
            summary=summary,
            out_name=self.out_name or later.out_name,
            profile=self.profile if later.profile is None else merge_profiles(self.profile, later.profile),
            ftz=(self.ftz[0] + later.ftz[0], self.ftz[1] + later.ftz[1], self.ftz[2] + later.ftz[2]),
            impl_seconds=self.impl_seconds + later.impl_seconds,
            seconds=self.seconds + later.seconds,
            rejected=self.rejected + later.rejected,
            rejected_why=self.rejected_why or later.rejected_why,
        )


def _rows(ref: Reference, batch: Batch) -> Reference:
    """``ref`` with one entry per row of the batch's first input (per element for an
    elementwise oracle), so a boolean row mask selects from it."""
    rows = batch.arrays[0].shape[0]
    return ref.reshape((rows, ref.size // rows)) if rows else ref


def _profiled(group: _Group) -> bool:
    """Elementwise cells get an error profile, except streamed float32 ones: it would add
    minutes to 1024 chunks."""
    return group.oracle.kind == "elementwise" and group.reduction == "none" and not group.inputs.streamed
