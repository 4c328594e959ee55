"""``assert_precision``: judge a user's function against an oracle from inside a test.

::

    from harness import assert_precision

    def test_softplus():
        assert_precision(my_softplus, oracle="softplus", framework="torch",
                         dtypes=["float16", "bfloat16"], max_ulp=1)

The function is run through the same :class:`~harness.execution.runner.Runner` as ``fpharness
check``, so the verdicts, the budgets and the result records are the CLI's. When a cell is
over budget (or errors) the :class:`AssertionError` says what was measured against which
budget, shows the worst inputs with their computed and correct values, and gives the
command line that reproduces the failure from the failing inputs, which are saved as
``.npy`` / ``.npz`` where pytest keeps its temporary files (a :mod:`tempfile` directory
outside pytest).

The pytest plugin (:mod:`harness.testing.plugin`) collects every result through :func:`recording`
so that the session report and the terminal summary see them, also under ``pytest -n``.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import itertools
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.execution.references import reference_function
from harness.execution.runner import Runner
from harness.frameworks.adapters import DEVICES
from harness.frameworks.registry import FRAMEWORKS, Impl
from harness.judgement.consistency import MEANING, Consistency
from harness.judgement.summary import CATEGORIES, Example, Summary
from harness.plan.cells import Budget, CellResult, CellSpec, passes
from harness.plan.consistency import cell_oracle, checks_for, consistency_params, signature
from harness.plan.inputs import parse_inputs
from oracles.errors import UsageError, choices
from oracles.formats import FORMATS, Format, get_format
from oracles.registry import Oracle, get_oracle
from reports.findings import failing_elements

__all__ = [
    "CONSISTENCY_INPUTS",
    "DEFAULT_INPUTS",
    "DEFAULT_MAX_ULP",
    "Recorder",
    "assert_consistent",
    "assert_precision",
    "assert_results",
    "check_consistent",
    "check_precision",
    "default_inputs",
    "failure_message",
    "implementation_ref",
    "recording",
]

#: inputs for formats too wide to sweep, and for row-wise oracles: the crafted special
#: values, values uniform over the bit patterns, and a realistic activation distribution
DEFAULT_INPUTS: tuple[str, ...] = ("special", "random:4000", "normal:0:10:2000")

#: default ULP budgets. A 16-bit result computed in float32 and rounded once is within
#: 0.5 ulp plus a hair, so 1 ulp catches real bugs (cancellation, a float16 intermediate)
#: without flagging double rounding; float32/float64 library functions are typically
#: within a few ulp. Correct rounding (0.5) is asked for by passing max_ulp=0.5.
DEFAULT_MAX_ULP: Mapping[str, float] = {"float16": 1.0, "bfloat16": 1.0, "float32": 4.0, "float64": 4.0}

#: the widest format whose every bit pattern is swept by default for elementwise oracles
_EXHAUSTIVE_MAX_BITS = 16

InputsArg = str | npt.NDArray[Any] | Mapping[str, npt.ArrayLike]


# -- recording (how the pytest plugin sees results) -----------------------------------------


@dataclass(frozen=True, slots=True)
class Recorder:
    """Where results go while one is active: ``record`` receives every judged cell and
    ``repro_dir`` returns the directory for reproducer inputs (created on first use)."""

    record: Callable[[CellResult], None]
    repro_dir: Callable[[], Path]
    #: inside pytest: a call whose cells were all skipped skips the test
    in_pytest: bool = False


_ACTIVE: ContextVar[Recorder | None] = ContextVar("fpharness_recorder", default=None)
_fallback_dir: Path | None = None


@contextlib.contextmanager
def recording(recorder: Recorder) -> Iterator[Recorder]:
    """Send the results of every :func:`check_precision` / :func:`assert_precision` call
    made inside the ``with`` block to ``recorder`` (the pytest plugin wraps each test in
    one; other runners can collect results the same way)."""
    token = _ACTIVE.set(recorder)
    try:
        yield recorder
    finally:
        _ACTIVE.reset(token)


def _repro_dir() -> Path:
    active = _ACTIVE.get()
    if active is not None:
        return active.repro_dir()
    global _fallback_dir
    if _fallback_dir is None:
        _fallback_dir = Path(tempfile.mkdtemp(prefix="fpharness-"))
    return _fallback_dir


# -- the runner shared by every call in a process -------------------------------------------

_runner: Runner | None = None


def _shared_runner() -> Runner:
    """One Runner per process, so that inputs and references of a (oracle, dtype, inputs)
    group are computed once however many tests check it; the reference function adds the
    on-disk cache and the fast tier when they are installed."""
    global _runner
    if _runner is None:
        # under pytest-xdist every worker is already a process per core
        jobs = 1 if os.environ.get("PYTEST_XDIST_WORKER") else (os.cpu_count() or 1)
        _runner = Runner(reference=reference_function(jobs=jobs))
    return _runner


# -- naming the user's function ---------------------------------------------------------------


def implementation_ref(fn: Callable[..., Any]) -> tuple[str, bool]:
    """How ``fpharness check`` names ``fn``: ``path/to/file.py:name`` for a module-level
    function in a source file (relative to the working directory when below it), else
    ``package.module:name``; the flag says whether the CLI can import it by that name."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    module_name = getattr(fn, "__module__", None)
    module = sys.modules.get(module_name) if module_name else None
    top_level = "." not in name and "<" not in name and module is not None and getattr(module, name, None) is fn
    try:
        source = inspect.getsourcefile(fn)
    except TypeError:  # builtins and C functions have no source file
        source = None
    if source and source.endswith(".py"):
        rel = os.path.relpath(source)
        shown = rel if not rel.startswith("..") else source
        return f"{shown}:{name}", top_level
    if module_name and top_level and module_name != "__main__":
        return f"{module_name}:{name}", True
    return f"{module_name or '?'}:{name}", False


# -- arguments -------------------------------------------------------------------------------


#: the helper named in usage errors: the accuracy one unless said otherwise
_PRECISION = "assert_precision"
_CONSISTENT = "assert_consistent"


def _names(value: str | Sequence[str], what: str, where: str = _PRECISION) -> list[str]:
    items = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if items is None or not all(isinstance(v, str) for v in items):
        raise UsageError(f"{where}: {what} must be a name or a list of names, got {value!r}")
    if not items:
        raise UsageError(f"{where}: {what} must name at least one")
    return items


def _formats(dtypes: str | Sequence[str], where: str = _PRECISION) -> list[Format]:
    out: list[Format] = []
    for d in _names(dtypes, "dtypes", where):
        fmt = get_format(d)
        if fmt not in out:
            out.append(fmt)
    return out


def _max_ulp_for(max_ulp: float | Mapping[str, float] | None, formats: Sequence[Format]) -> dict[str, float | None]:
    if max_ulp is None:
        return {f.name: DEFAULT_MAX_ULP.get(f.name) for f in formats}
    if isinstance(max_ulp, Mapping):
        given = {get_format(k).name: v for k, v in max_ulp.items()}
        extra = sorted(set(given) - {f.name for f in formats})
        if extra:
            raise UsageError(
                f"assert_precision: max_ulp names {', '.join(extra)}, which is not among dtypes"
                f" ({', '.join(f.name for f in formats)}); add it to dtypes or drop it from max_ulp"
            )
        return {f.name: given.get(f.name, DEFAULT_MAX_ULP.get(f.name)) for f in formats}
    return {f.name: max_ulp for f in formats}


def default_inputs(oracle: Oracle, fmt: Format) -> tuple[str, ...]:
    """Every bit pattern for elementwise oracles in 16-bit formats (65,536 inputs; cheap
    once the reference is cached), :data:`DEFAULT_INPUTS` otherwise."""
    if oracle.kind == "elementwise" and fmt.bits <= _EXHAUSTIVE_MAX_BITS:
        return ("exhaustive",)
    return DEFAULT_INPUTS


def _array_spec(value: npt.NDArray[Any] | Mapping[str, npt.ArrayLike], oracle: Oracle) -> str:
    """Save in-memory inputs to a file named by its content; the spec is then reproducible."""
    if isinstance(value, Mapping):
        arrays = {k: _savable(np.asarray(v)) for k, v in sorted(value.items())}
        kind = "npz"
    else:
        arrays = {oracle.args[0].name: _savable(np.asarray(value))}
        kind = "npy"
    digest = hashlib.sha256()
    for k, a in arrays.items():
        digest.update(f"{k}:{a.dtype.str}:{a.shape}".encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    path = _repro_dir() / f"inputs-{digest.hexdigest()[:16]}.{kind}"
    if not path.exists():
        _save(path, arrays)
    return f"{kind}:{path}"


def _savable(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    # np.save writes bfloat16 as raw void bytes that np.load cannot give back as numbers;
    # float32 holds every bfloat16 value exactly, and the loader converts it back exactly
    if arr.dtype == FORMATS["bfloat16"].dtype:
        return arr.astype(np.float32)
    return arr


def _save(path: Path, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        if path.suffix == ".npy":
            np.save(fh, next(iter(arrays.values())), allow_pickle=False)
        else:
            np.savez(fh, **arrays)  # type: ignore[arg-type]


def _params(params: Mapping[str, Any] | None, where: str) -> Mapping[str, Any] | None:
    if params is not None and not isinstance(params, Mapping):
        raise UsageError(f"{where}: params must be a mapping such as {{'beta': 2.0}}, got {type(params).__name__}")
    return params


def _input_specs(inputs: InputsArg | Sequence[InputsArg] | None, oracle: Oracle, defaults: Sequence[str],
                 where: str = _PRECISION) -> list[str]:
    """The input specs of a call: ``defaults`` when ``inputs`` is None; arrays are saved
    to files named by their content (:func:`_array_spec`)."""
    if inputs is None:
        return [parse_inputs(spec).text for spec in defaults]
    if not isinstance(inputs, str | np.ndarray | Mapping | list | tuple):
        raise UsageError(f"{where}: inputs must be an input spec (e.g. 'special'), an array, a mapping of arrays"
                         f" or a list of them, got {type(inputs).__name__}")
    items: list[InputsArg] = [inputs] if isinstance(inputs, str | np.ndarray | Mapping) else list(inputs)
    if not items:
        raise UsageError(f"{where}: inputs must name at least one input spec")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str | np.ndarray | Mapping):
            raise UsageError(f"{where}: each of inputs must be an input spec, an array or a mapping of arrays,"
                             f" got {type(item).__name__}")
        spec = item if isinstance(item, str) else _array_spec(item, oracle)
        text = parse_inputs(spec).text
        if text not in out:
            out.append(text)
    return out


# -- running ---------------------------------------------------------------------------------


def check_precision(
    fn: Callable[..., Any],
    *,
    oracle: str,
    framework: str,
    dtypes: str | Sequence[str],
    devices: str | Sequence[str] = ("cpu",),
    inputs: InputsArg | Sequence[InputsArg] | None = None,
    params: Mapping[str, Any] | None = None,
    max_ulp: float | Mapping[str, float] | None = None,
    allow: Mapping[str, bool | float] | None = None,
    timeout: float = 300.0,
    max_bits: float | None = None,
    atol: float | str | None = None,
    rtol: float | str | None = None,
    tolerance: str | None = None,
    grad: bool = False,
    wrt: str | Sequence[str] | None = None,
    cotangent: str | Sequence[str] = "ones",
) -> list[CellResult]:
    """Run ``fn`` for every (dtype, device, inputs) cell and return the judged cells
    without raising for a failing one (see :func:`assert_precision` for the arguments).
    Raises :class:`~oracles.errors.UsageError` for arguments that cannot make a cell,
    before anything runs; inside pytest that fails the calling test like any exception."""
    _check_fn(fn, framework, _PRECISION)
    orc = get_oracle(oracle)
    formats = _formats(dtypes)
    device_list = _names(devices, "devices")
    bound = orc.bind(_params(params, _PRECISION))
    budgets = {name: Budget.build(limit, allow, max_bits=max_bits, atol=atol, rtol=rtol, tolerance=tolerance)
               for name, limit in _max_ulp_for(max_ulp, formats).items()}
    ref, _loadable = implementation_ref(fn)
    if not isinstance(grad, bool):
        raise UsageError(f"assert_precision: grad must be True or False, got {grad!r}")
    if not grad and (wrt is not None or cotangent != "ones"):
        raise UsageError("assert_precision: wrt and cotangent judge a gradient: pass grad=True as well")
    judged = passes(orc, "grad" if grad else "forward", _names(wrt, "wrt") if wrt is not None else None,
                    _names(cotangent, "cotangent"))
    cells = [
        CellSpec(orc.name, ref, framework, fmt.name, device, spec, tuple(sorted(bound.items())),
                 budgets[fmt.name], custom=True, timeout=timeout, wrt=w, cotangent=cot)
        for w, cot in judged
        for fmt in formats
        for device in device_list
        for spec in _input_specs(inputs, orc, default_inputs(orc, fmt))
    ]
    return _run_cells(fn, framework, orc.name, cells)


def _check_fn(fn: Callable[..., Any], framework: str, where: str) -> None:
    if not callable(fn):
        raise UsageError(f"{where}: fn must be callable, got {type(fn).__name__}")
    if framework not in FRAMEWORKS:
        raise UsageError(f"{where}: unknown framework {framework!r}; {choices(FRAMEWORKS, given=framework)}")


def _run_cells(fn: Callable[..., Any], framework: str, oracle: str, cells: Sequence[CellSpec]) -> list[CellResult]:
    """Run ``cells`` of ``fn`` (all named by :func:`implementation_ref`) in the shared
    runner, validated first, and send every result to the active :class:`Recorder`."""
    runner = _shared_runner()
    ref = implementation_ref(fn)[0]
    # The user's function is registered under its reference for this call only: another
    # call may bring a different function with the same name (two lambdas in one file).
    runner.extra_impls[ref] = Impl(ref, framework, oracle, fn, custom=True)
    runner.validate(cells)
    results = [runner.run(cell) for cell in cells]
    active = _ACTIVE.get()
    if active is not None:
        for result in results:
            active.record(result)
    return results


def assert_precision(
    fn: Callable[..., Any],
    *,
    oracle: str,
    framework: str,
    dtypes: str | Sequence[str],
    devices: str | Sequence[str] = ("cpu",),
    inputs: InputsArg | Sequence[InputsArg] | None = None,
    params: Mapping[str, Any] | None = None,
    max_ulp: float | Mapping[str, float] | None = None,
    allow: Mapping[str, bool | float] | None = None,
    timeout: float = 300.0,
    max_bits: float | None = None,
    atol: float | str | None = None,
    rtol: float | str | None = None,
    tolerance: str | None = None,
    grad: bool = False,
    wrt: str | Sequence[str] | None = None,
    cotangent: str | Sequence[str] = "ones",
) -> list[CellResult]:
    """Judge ``fn`` against ``oracle`` and raise :class:`AssertionError` when a cell is
    over budget or errors; returns the judged cells (:class:`~harness.plan.cells.CellResult`).

    ``fn`` takes ``framework``'s tensors (numpy, torch, tensorflow, keras, jax) in the
    oracle's argument order, already in the dtype and on the device of the cell, plus the
    oracle's ``params`` as keywords it accepts, and returns a tensor.

    ``dtypes`` and ``devices`` are names or lists of names. ``inputs`` is an input spec
    (``special``, ``exhaustive``, ``random:N[:SEED]``, ``normal:MEAN:STD:N[:SEED]``,
    ``uniform:LO:HI:N[:SEED]``, ``npy:PATH``, ``npz:PATH``), an array, a mapping of
    argument names to arrays, or a list of these; by default every bit pattern of a
    16-bit format for elementwise oracles and :data:`DEFAULT_INPUTS` otherwise.

    ``max_ulp`` is a number or a mapping per dtype (default :data:`DEFAULT_MAX_ULP`);
    ``allow`` permits incidence categories: ``{"inherent_inf": True}`` (any number),
    a count, or a fraction below 1 of the elements. NaN and Inf that the mathematics
    does not produce fail by default. ``max_bits`` limits the bits of error; ``atol`` and
    ``rtol`` (numbers, or ``"torch"``) or ``tolerance="torch"`` ask what
    ``torch.testing.assert_close`` would: every finite element within ``atol + rtol |y|``.

    ``grad=True`` judges the gradient instead: ``framework``'s autodiff differentiates
    ``fn`` with respect to ``wrt`` (an argument name or a list; default every real
    argument) and the vector-Jacobian product for the ``cotangent`` (``"ones"``, as
    ``loss.backward()``, ``"random"`` or ``"special"``; or a list) is judged against the
    correctly rounded gradient of the oracle, in the gradient's dtype. A numpy ``fn``
    gives its own VJP as ``fn.vjp`` (see the README).

    A cell whose framework or device is missing is skipped; when every cell is skipped
    inside pytest, the test is skipped. Bad arguments raise
    :class:`~oracles.errors.UsageError` naming the bad value and the valid choices, before
    anything runs: unknown names, a NaN or infinite ``max_ulp``, ``allow`` count, parameter
    or ``timeout`` (leave ``max_ulp`` out, or allow ``True``, for no limit), a parameter
    outside the oracle's domain (softplus ``beta=0``), input sets that are empty or larger
    than :data:`~harness.plan.inputs.MAX_INPUTS`.
    """
    __tracebackhide__ = True
    results = check_precision(
        fn, oracle=oracle, framework=framework, dtypes=dtypes, devices=devices, inputs=inputs,
        params=params, max_ulp=max_ulp, allow=allow, timeout=timeout, max_bits=max_bits, atol=atol, rtol=rtol,
        tolerance=tolerance, grad=grad, wrt=wrt, cotangent=cotangent,
    )
    return assert_results(results, fn=fn)


def assert_results(results: Sequence[CellResult], *, fn: Callable[..., Any] | None = None) -> list[CellResult]:
    """Raise :class:`AssertionError` with :func:`failure_message` when a cell failed or
    errored; inside pytest, skip the test when every cell was skipped. Returns ``results``."""
    __tracebackhide__ = True
    message = failure_message(results, fn=fn)
    if message:
        raise AssertionError(message)
    active = _ACTIVE.get()
    if results and all(r.status == "skipped" for r in results) and active is not None and active.in_pytest:
        import pytest

        reasons = sorted({r.reason for r in results})
        pytest.skip(f"every precision cell was skipped: {'; '.join(reasons)}")
    return list(results)


# -- consistency -----------------------------------------------------------------------------

#: inputs of a consistency call: the crafted special values and 2,000 values uniform over
#: the bit patterns. Fewer than :data:`DEFAULT_INPUTS`, and never every 16-bit pattern:
#: the position check calls the function about 10,000 times (every value alone, then at
#: every position of tensors of lengths 1-65 and in the batch), and a defect of position
#: or layout shows on any value, so more inputs cost time without finding more.
CONSISTENCY_INPUTS: tuple[str, ...] = ("special", "random:2000")


def check_consistent(
    fn: Callable[..., Any],
    *,
    oracle: str | None = None,
    framework: str,
    dtypes: str | Sequence[str],
    inputs: InputsArg | Sequence[InputsArg] | None = None,
    checks: str | Sequence[str] | None = None,
    device: str = "cpu",
    max_ulp: float | None = None,
    params: Mapping[str, Any] | None = None,
    timeout: float = 300.0,
) -> list[CellResult]:
    """Run the consistency checks of ``fn``, one cell per (check, dtype, inputs), and
    return the judged cells without raising for a failing one (see
    :func:`assert_consistent` for the arguments). Raises
    :class:`~oracles.errors.UsageError` for arguments that cannot make a cell, before
    anything runs."""
    _check_fn(fn, framework, _CONSISTENT)
    orc = signature(oracle or "")  # "" as the CLI and suites name an operation without an oracle
    if not orc.name and params:
        raise UsageError(f"{_CONSISTENT}: params are an oracle's (e.g. oracle='softplus', params={{'beta': 2}});"
                         " an operation without an oracle takes none")
    if device not in DEVICES:
        raise UsageError(f"{_CONSISTENT}: unknown device {device!r}; {choices(DEVICES, given=device)}")
    requested = None if checks is None else _names(checks, "checks", _CONSISTENT)
    if requested is not None and "device" in requested and device != "cuda":
        raise UsageError(f"{_CONSISTENT}: the device check compares CPU with CUDA: pass device='cuda'")
    formats = _formats(dtypes, _CONSISTENT)
    bound = consistency_params(orc, orc.bind(_params(params, _CONSISTENT)))
    planned = checks_for(orc, bound, device, requested)
    if not planned:  # only reachable through an empty request, which _names refuses; kept as a guard
        raise UsageError(f"{_CONSISTENT}: no consistency check applies to {orc.name or 'this operation'}")
    budget = Budget.build(max_ulp)  # the ULPs two answers may differ by; None: each check's own
    ref, _loadable = implementation_ref(fn)
    cells = [
        CellSpec(orc.name, ref, framework, fmt.name, device, spec, tuple(sorted(bound.items())), budget,
                 custom=True, timeout=timeout, check=check)
        for check in planned
        for fmt in formats
        for spec in _input_specs(inputs, orc, CONSISTENCY_INPUTS, _CONSISTENT)
    ]
    return _run_cells(fn, framework, orc.name, cells)


def assert_consistent(
    fn: Callable[..., Any],
    *,
    oracle: str | None = None,
    framework: str,
    dtypes: str | Sequence[str],
    inputs: InputsArg | Sequence[InputsArg] | None = None,
    checks: str | Sequence[str] | None = None,
    device: str = "cpu",
    max_ulp: float | None = None,
    params: Mapping[str, Any] | None = None,
    timeout: float = 300.0,
) -> list[CellResult]:
    """Check, without evaluating any oracle, that ``fn`` gives the same answer for the same
    input wherever it sits and the answers its mathematics relates; raise
    :class:`AssertionError` when a check finds a difference or the function raises in
    some context. Returns the judged cells (their ``consistency`` holds what was found).

    ``fn`` takes ``framework``'s tensors as for :func:`assert_precision`. Without an
    ``oracle`` it is taken as an elementwise operation of one real argument, and the checks
    that compare it with itself apply: ``position`` (each value alone vs at every position
    of tensors of lengths 1-65 and in the batch), ``layout`` (transposed, strided, offset,
    channels-last views), ``repeat`` (the same call twice) and ``device`` (CPU vs CUDA,
    only with ``device="cuda"``). A named ``oracle`` gives the signature (its arguments,
    row-wise or elementwise) and adds the properties it declares: ``monotone``,
    ``symmetry`` (odd functions, label symmetry of the logit losses), ``bounds``,
    ``permutation`` (row-wise oracles).

    ``checks`` is a check name or a list (default: every one that applies). ``inputs`` as
    for :func:`assert_precision`; by default :data:`CONSISTENCY_INPUTS`. ``max_ulp`` is the
    number of ULPs two answers may differ by (default: each check's own, 0 for most: then a
    zero of the other sign differs too). A cell whose framework or device is missing is
    skipped. Bad arguments raise :class:`~oracles.errors.UsageError` before anything
    runs: an unknown check, a check the oracle does not declare (``symmetry`` of ``exp``),
    unknown names, ``params`` without an oracle.
    """
    __tracebackhide__ = True
    results = check_consistent(
        fn, oracle=oracle, framework=framework, dtypes=dtypes, inputs=inputs, checks=checks, device=device,
        max_ulp=max_ulp, params=params, timeout=timeout,
    )
    return assert_results(results, fn=fn)


# -- the failure message ---------------------------------------------------------------------

#: cells described in full in one message; the rest get one line each
_MAX_BLOCKS = 4


def failure_message(results: Sequence[CellResult], *, fn: Callable[..., Any] | None = None) -> str | None:
    """The message for the failing and erroring cells of ``results`` (None when there are
    none): what failed against which budget, what was measured, the worst inputs with
    computed and correct values, and a command line that reproduces each cell."""
    __tracebackhide__ = True
    bad = [r for r in results if r.status in ("fail", "error")]
    if not bad:
        return None
    first = bad[0].spec
    loadable = implementation_ref(fn)[1] if fn is not None else True
    kinds = {bool(r.spec.check) for r in bad}
    verdict = ("failed" if any(r.status == "error" for r in bad) or len(kinds) > 1
               else "are inconsistent" if first.check else "are over budget")
    head = f"{first.oracle or first.subject}: {len(bad)} of {len(results)} cells of {first.impl} ({first.framework}) {verdict}"
    blocks = [head]
    for result in bad[:_MAX_BLOCKS]:
        blocks.append(_consistency_block(result, loadable) if result.spec.check else _cell_block(result, loadable))
    if len(bad) > _MAX_BLOCKS:
        more = bad[_MAX_BLOCKS:]
        blocks.append(f"{len(more)} more: " + ", ".join(f"{r.spec.id} ({r.reason})" for r in more))
    skipped = [r for r in results if r.status == "skipped"]
    if skipped:
        blocks.append("skipped: " + "; ".join(f"{r.spec.dtype} on {r.spec.device} ({r.reason})" for r in skipped))
    return "\n\n".join(blocks)


def _cell_block(result: CellResult, loadable: bool) -> str:
    cell, s = result.spec, result.summary
    verdict = "over budget" if result.status == "fail" else "error"
    lines = [f"{cell.id} {verdict}: {result.reason}"]
    n_text = f", {s.n} outputs" if s is not None else ""
    lines.append(
        f"  oracle {cell.oracle}, implementation {cell.impl} ({cell.framework}), {cell.dtype} on {cell.device},"
        f" inputs {cell.inputs}{n_text}" + (f", output {result.out_dtype}" if result.out_dtype not in (None, cell.dtype) else "")
    )
    lines.append(f"  budget: {_budget_text(cell.budget)}")
    repro_inputs = cell.inputs
    if s is not None:
        lines.append(f"  measured: {_measured_text(s)}")
        names = _arg_names(cell)
        for title, examples in _failing_examples(s, cell.budget):
            lines.append(f"  {title}:")
            lines.extend(f"    {_example_line(e, names)}" for e in examples)
        saved = _save_failing_inputs(result)
        if saved is not None:
            repro_inputs = saved
    repro = _repro_command(cell, repro_inputs)
    hint = "" if loadable else "  (fn is not importable by name: define it at module level to run this)"
    lines.append(f"  repro: {repro}{hint}")
    return "\n".join(lines)


#: examples and differing contexts shown per consistency cell
_MAX_MISMATCHES = 5
_MAX_CONTEXTS = 6


def _consistency_block(result: CellResult, loadable: bool) -> str:
    """A failing or erroring consistency cell: the check and what consistent meant there,
    what differed where, up to :data:`_MAX_MISMATCHES` examples, the notes, and the
    command line that runs the check again."""
    cell, found = result.spec, result.consistency
    tolerance = cell.budget.max_ulp if found is None else found.tolerance
    if result.status == "error" or found is None:
        lines = [f"{cell.id} error: {result.reason}"]
    else:
        lines = [f"{cell.id} inconsistent: {found.headline()}"]
    tol = "" if tolerance is None else f" (tolerance {tolerance:g} ulp)"
    lines.append(f"  check {cell.check}: {MEANING[cell.check]}{tol}")
    lines.append(f"  implementation {cell.impl} ({cell.framework}), {cell.dtype} on {cell.device}, inputs {cell.inputs}"
                 + (f", oracle {cell.oracle}" if cell.oracle else ""))
    if found is not None:
        lines.extend(_mismatch_lines(found, cell))
        lines.extend(f"  note: {note}" for note in found.notes)
    repro = cell.repro()
    hint = "" if loadable else "  (fn is not importable by name: define it at module level to run this)"
    lines.append(f"  repro: {repro}{hint}")
    return "\n".join(lines)


def _mismatch_lines(found: Consistency, cell: CellSpec) -> list[str]:
    differing = [(name, compared, d) for name, compared, d in found.contexts if d]
    lines: list[str] = []
    if differing:
        shown = "; ".join(f"{name}: {d} of {compared}" for name, compared, d in differing[:_MAX_CONTEXTS])
        more = f"; {len(differing) - _MAX_CONTEXTS} more" if len(differing) > _MAX_CONTEXTS else ""
        lines.append(f"  differing: {shown}{more}")
    if found.examples:
        names = _arg_names(cell)
        lines.append("  examples:")
        lines.extend(f"    {_named(m.describe(), m.input, m.input_values, names)}"
                     for m in found.examples[:_MAX_MISMATCHES])
    return lines


def _budget_text(budget: Budget) -> str:
    ulp = "max ulp unlimited" if budget.max_ulp is None else f"max ulp {budget.max_ulp:g}"
    limits = []
    allow = dict(budget.allow)
    for cat in CATEGORIES:
        limit = allow.get(cat, math.inf)
        if math.isinf(limit):
            continue
        limits.append(f"{cat} {limit:g}" + (" of the outputs" if 0 < limit < 1 else ""))
    extra = ""
    if budget.max_bits is not None:
        extra += f"; max bits {budget.max_bits:g}"
    if budget.has_tolerance:
        extra += f"; atol {budget.atol if budget.atol is not None else 0} rtol {budget.rtol if budget.rtol is not None else 0}"
    return f"{ulp}{extra}; allowed: {', '.join(limits) or 'any NaN or Inf'} (other categories unlimited)"


def _measured_text(s: Summary) -> str:
    if s.ulp_count:
        mean = s.ulp_mean
        p99 = s.percentile(0.99)
        ulp = f"max ulp {s.ulp_max:.6g} (mean {mean:.3g}, p99 {p99:.3g})"
    else:
        ulp = "no finite results to measure in ulp"
    pct = 100.0 * s.correctly_rounded / s.n if s.n else 0.0
    incidence = ", ".join(f"{cat} {count}" for cat, count in s.incidence.items() if count) or "no NaN/Inf defects"
    errors = ""
    if s.bits_max is not None:
        errors = f"; max bits {s.bits_max:.3g}, max abs error {s.abs_max:.3g}"
    return f"{ulp}{errors}; {s.correctly_rounded} of {s.n} correctly rounded ({pct:.1f}%); {incidence}"


def _failing_examples(s: Summary, budget: Budget) -> list[tuple[str, list[Example]]]:
    """The elements that break ``budget``, in the order of its verdict: the one rule
    (:func:`reports.findings.failing_elements`) that the terminal and the HTML report show too."""
    cell = {"status": "fail", "budget": budget.to_json(), **s.to_json()}
    return [(g.title, list(g.examples)) for g in failing_elements(cell, limit=3)]


def _arg_names(cell: CellSpec) -> tuple[str, ...]:
    try:
        orc = cell_oracle(cell)
    except UsageError:
        return ()
    if orc.kind != "elementwise":
        return ()
    return (*(a.name for a in orc.args), *(("cotangent",) if cell.is_grad else ()))


def _example_line(e: Example, names: tuple[str, ...]) -> str:
    """``Example.describe()`` with the arguments named (``x=0x498c (11.09375) gave inf, ...``)
    and without the category label the heading above already gives."""
    text = e.describe()
    label = f" [{e.category}]"
    if text.endswith(label):
        text = text[: -len(label)]
    return _named(text, e.input, e.input_values, names) if e.row is None else text


def _named(text: str, bits: Sequence[str], values: Sequence[str], names: tuple[str, ...]) -> str:
    """``text`` that starts with the arguments as ``0x498c (11.09375), ...`` with their
    names put in front (``x=0x498c (11.09375)``), when there is a name for each."""
    if not names or len(names) != len(bits) or len(bits) != len(values):
        return text
    plain = ", ".join(f"{b} ({v})" for b, v in zip(bits, values, strict=True))
    named = ", ".join(f"{n}={b} ({v})" for n, b, v in zip(names, bits, values, strict=True))
    return named + text[len(plain):] if text.startswith(plain) else text


# -- reproducing -----------------------------------------------------------------------------

_counter = itertools.count()


def _save_failing_inputs(result: CellResult) -> str | None:
    """Save the inputs of the shown failing elements (rows for row-wise oracles) as a
    .npy (one argument) or .npz (several) and return its input spec; None when there is
    nothing to save or the inputs cannot be regenerated."""
    cell, s = result.spec, result.summary
    if s is None:
        return None
    shown = {e.index: e for _, examples in _failing_examples(s, cell.budget) for e in examples}
    picked = sorted(shown)
    if not picked:
        return None
    orc = get_oracle(cell.oracle)
    fmt = get_format(cell.dtype)
    reduction = str(dict(cell.params).get("reduction", "none"))
    if orc.kind == "elementwise" and reduction == "none":
        # each example carries the bit pattern of every argument: no need to regenerate
        # the inputs (exhaustive float32 would mean streaming up to 2**32 of them)
        return _save_repro(cell, {
            arg.name: np.array([int(shown[i].input[k], 16) for i in picked], dtype=fmt.uint_dtype).view(fmt.dtype)
            for k, arg in enumerate(orc.args)
        })
    try:
        inputs = parse_inputs(cell.inputs).generate(orc, fmt)
    except UsageError:
        return None
    # Example.index counts output elements across the cell's batches; find each batch's
    # share, then keep the batch holding the first failing element (rows of one width)
    offset = 0
    for batch in inputs.batches:
        x = batch.arrays[0]
        if reduction != "none":
            size = 1
        elif orc.kind == "row_reduce":
            size = int(x.shape[0])
        else:
            size = int(x.size)
        local = [i - offset for i in picked if offset <= i < offset + size]
        offset += size
        if not local:
            continue
        arrays: dict[str, npt.NDArray[Any]] = {}
        for arg, a in zip(orc.args, batch.arrays, strict=True):
            if reduction != "none":  # the whole batch makes the one output
                arrays[arg.name] = a
            else:
                width = int(x.shape[1]) if x.ndim > 1 else 1
                rows = sorted({i // width for i in local} if orc.kind == "rowwise" else set(local))
                arrays[arg.name] = a[rows]
        return _save_repro(cell, arrays)
    return None


def _save_repro(cell: CellSpec, arrays: Mapping[str, npt.NDArray[Any]]) -> str:
    kind = "npy" if len(arrays) == 1 else "npz"
    name = f"{cell.oracle}-{cell.dtype}-{cell.device}-{os.getpid()}-{next(_counter)}.{kind}"
    path = _repro_dir() / name
    _save(path, {k: _savable(v) for k, v in arrays.items()})
    return f"{kind}:{path}"


def _repro_command(cell: CellSpec, inputs: str) -> str:
    """``fpharness check FILE.py:fn --oracle ... --inputs ...`` plus the cell's budget."""
    import shlex

    parts = [replace(cell, inputs=inputs).repro()]
    if cell.budget.max_ulp is not None:
        parts.append(f"--max-ulp {cell.budget.max_ulp:g}")
    defaults = dict(Budget.build().allow)
    for cat, limit in cell.budget.allow:
        if limit == defaults.get(cat, math.inf):
            continue
        if math.isinf(limit):
            parts.append(f"--allow {shlex.quote(cat)}")
        else:
            value = f"{int(limit)}" if limit >= 1 or limit == 0 else f"{limit!r}"
            parts.append(f"--allow {shlex.quote(f'{cat}={value}')}")
    return " ".join(parts)
