"""assert_consistent / check_consistent and ``precision.consistent``: checks that need no
oracle and compare an implementation with itself (position, layout, repeat) or with what
its oracle declares of its answers (monotone, bounds).

The functions under test live at module level so that the reproducer command can import
them from this file (``tests/testing/test_assert_consistent.py:tail_sigmoid``).
"""

from __future__ import annotations

import itertools
import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import ml_dtypes
import numpy as np
import numpy.typing as npt
import pytest

import harness.cli.session
import harness.execution.consistency
import harness.frameworks.catalogue
import harness.testing.assertions
import oracles.catalogue
import reports.terminal
from harness.judgement.consistency import Consistency
from harness.plan.cells import CellResult
from harness.plan.inputs import parse_inputs
from harness.testing.assertions import CONSISTENCY_INPUTS, assert_consistent, check_consistent
from harness.testing.plugin import REPORT_OPTION, RESULTS_NAME
from oracles.errors import UsageError

pytest_plugins = ["pytester"]

# as in test_plugin.py: pytester's in-process runs restore sys.modules afterwards, so every
# module the inner runs use is imported here once (registries must not fill twice)
assert hypothesis and ml_dtypes and harness.cli.session and harness.execution.consistency
assert harness.frameworks.catalogue and harness.testing.assertions and oracles.catalogue and reports.terminal

HERE = "tests/testing/test_assert_consistent.py"
SMALL = "random:300"
NUMPY32: dict[str, Any] = {"framework": "numpy", "dtypes": "float32"}
#: a SIMD-style kernel: a vector body of this many elements, then a scalar tail
VECTOR = 8


def exp32(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    with np.errstate(over="ignore"):
        return np.exp(x)


def expm1_as_exp(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Monotone and self-consistent, but below exp's lower bound of 0 for x < 0."""
    with np.errstate(over="ignore"):
        return np.expm1(x)


def _body_and_tail(x: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], int]:
    flat = x.reshape(-1)
    return flat, flat.size - flat.size % VECTOR


def tail_sigmoid(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Sigmoid whose last ``n % 8`` elements take a scalar path computed another way."""
    flat, body = _body_and_tail(x)
    out = np.empty_like(flat)
    with np.errstate(over="ignore"):
        out[:body] = 1 / (1 + np.exp(-flat[:body]))
        out[body:] = np.exp(-np.logaddexp(np.float32(0), -flat[body:]))
    return out.reshape(x.shape)


def ulp_tail_exp(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """exp whose scalar tail is one ulp higher than the vector body."""
    flat, body = _body_and_tail(x)
    with np.errstate(over="ignore"):
        out = np.exp(flat)
    out[body:] = np.nextafter(out[body:], np.asarray(np.inf, dtype=out.dtype))
    return out.reshape(x.shape)


_calls = itertools.count()


def flaky_exp(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """exp nudged up by one ulp on every second call (a nondeterministic reduction)."""
    out = exp32(x)
    if next(_calls) % 2:
        out = np.nextafter(out, np.asarray(np.inf, dtype=out.dtype))
    return out


def no_singletons(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if x.size == 1:
        raise ValueError("needs at least two elements")
    return exp32(x)


_never: list[int] = []


def never_called(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    _never.append(x.size)
    return exp32(x)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # keep the oracle cache (when installed) out of the home directory
    monkeypatch.setenv("FPHARNESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "oracle-cache"))
    yield


def _message(fn: Any, **kwargs: Any) -> str:
    with pytest.raises(AssertionError) as info:
        assert_consistent(fn, **kwargs)
    return str(info.value)


def _repro(message: str, check: str, inputs: str = "") -> str:
    lines = [line.split("repro: ", 1)[1] for line in message.splitlines()
             if line.strip().startswith("repro: ") and f"--consistency {check}" in line and f"--inputs {inputs}" in line]
    assert lines, message
    return lines[0].split("  (fn is not")[0]


def _found(result: CellResult) -> Consistency:
    assert result.consistency is not None, result
    return result.consistency


def _cli(repro: str) -> int:
    from harness.cli.app import main

    return main([*shlex.split(repro)[1:], "-q", "--no-cache"])


# -- passing -----------------------------------------------------------------------------------


def test_consistent_function_passes_without_an_oracle() -> None:
    results = assert_consistent(exp32, **NUMPY32)
    default_inputs = [parse_inputs(s).text for s in CONSISTENCY_INPUTS]
    # one cell per (check, inputs): the checks that compare it with itself, no property check
    assert [(r.spec.check, r.spec.inputs) for r in results] == [
        (check, inputs) for check in ("position", "layout", "repeat") for inputs in default_inputs
    ]
    for r in results:
        assert r.status == "pass", r.reason
        assert (r.spec.oracle, r.spec.framework, r.spec.dtype, r.spec.device) == ("", "numpy", "float32", "cpu")
        assert r.spec.impl == f"{HERE}:exp32"
        assert r.summary is None  # no oracle was evaluated
        found = _found(r)
        assert found.check == r.spec.check and found.consistent
        assert found.compared > 0 and found.differing == 0 and found.lengths == ()
    position = _found(results[0])
    # every value alone (length 1, the reference) against lengths 2-65 and the batch
    assert [name for name, _, _ in position.contexts] == [*(f"length {n}" for n in range(2, 66)), "batch",
                                                          "batch (n/16, 16)", "batch (n/64, 4, 16)"]


def test_an_oracle_adds_the_properties_it_declares() -> None:
    results = assert_consistent(exp32, oracle="exp", inputs=SMALL, **NUMPY32)
    assert [r.spec.check for r in results] == ["position", "layout", "repeat", "monotone", "bounds"]
    assert [r.status for r in results] == ["pass"] * 5
    assert all(r.spec.oracle == "exp" and _found(r).compared > 0 for r in results)


def test_property_checks_find_what_self_comparison_cannot() -> None:
    # expm1 is monotone and deterministic, but exp's answers are never below 0
    results = check_consistent(expm1_as_exp, oracle="exp", inputs=SMALL, **NUMPY32)
    assert {r.spec.check: r.status for r in results} == {
        "position": "pass", "layout": "pass", "repeat": "pass", "monotone": "pass", "bounds": "fail",
    }
    assert _found(results[-1]).differing > 0
    msg = _message(expm1_as_exp, oracle="exp", inputs=SMALL, checks="bounds", **NUMPY32)
    assert msg.splitlines()[0] == f"exp: 1 of 1 cells of {HERE}:expm1_as_exp (numpy) are inconsistent"
    assert "  check bounds: answers within the function's range" in msg
    assert "lower bound" in msg
    # the same function without an oracle has nothing to be inconsistent with
    assert_consistent(expm1_as_exp, inputs=SMALL, **NUMPY32)


def test_checks_runs_only_the_named_ones_in_the_order_given() -> None:
    results = assert_consistent(exp32, oracle="exp", inputs=SMALL, checks=["bounds", "repeat", "bounds"], **NUMPY32)
    assert [r.spec.check for r in results] == ["bounds", "repeat"]
    results = assert_consistent(exp32, inputs=[SMALL, "special"], dtypes=["float16", "float32"], framework="numpy",
                                checks="repeat")
    assert [(r.spec.dtype, r.spec.inputs) for r in results] == [
        ("float16", "random:300:0"), ("float16", "special"), ("float32", "random:300:0"), ("float32", "special"),
    ]


# -- a defect of position ------------------------------------------------------------------------


def test_planted_scalar_tail_fails_the_position_check() -> None:
    msg = _message(tail_sigmoid, checks="position", **NUMPY32)
    lines = msg.splitlines()
    assert lines[0] == f"tail_sigmoid: 2 of 2 cells of {HERE}:tail_sigmoid (numpy) are inconsistent"
    # one block per input set (the defaults: special, random:2000), each naming where it differs
    heads = [line for line in lines if "-consistency=position] inconsistent: " in line]
    assert [h.split("] inconsistent: ")[0] for h in heads] == [
        f"tail_sigmoid[{HERE}:tail_sigmoid-cpu-float32-{inputs}-consistency=position" for inputs in ("special", "random:2000:0")
    ]
    # every length with a body; the positions the probes that differ happened to sit at
    assert all("comparisons differ (lengths 8-65; positions 0-" in h for h in heads)
    assert ("  check position: each value alone vs at every position of tensors of lengths 1-65 and in the batch"
            " (tolerance 0 ulp)") in lines
    assert "  examples:" in lines
    assert "at length 8, position" in msg and "; alone 0x" in msg
    repro = _repro(msg, "position", "random:2000:0")
    assert repro == (f"fpharness check {HERE}:tail_sigmoid --framework numpy --dtype float32 --device cpu"
                     " --inputs random:2000:0 --consistency position")
    # the repro command finds the same defect
    assert _cli(repro) == 1


def test_position_record_names_the_lengths_and_positions() -> None:
    (result,) = check_consistent(tail_sigmoid, checks="position", inputs="random:2000", **NUMPY32)
    assert result.status == "fail"
    found = _found(result)
    assert found.check == "position" and found.tolerance == 0.0
    # lengths 1-7 are all tail, as is a value alone; from 8 on the body computes some of them
    assert found.lengths == tuple(range(8, 66))
    # the tail of a length-65 tensor is position 64 only: it never differs
    assert set(found.positions) <= set(range(64)) and {0, 63} <= set(found.positions)
    assert 0 < found.differing < found.compared
    by_context = {name: (compared, differing) for name, compared, differing in found.contexts}
    assert all(by_context[f"length {n}"][1] == 0 for n in range(2, VECTOR))
    assert all(by_context[f"length {n}"][1] > 0 for n in range(VECTOR, 66))
    assert found.examples and all(m.context.startswith("at length ") for m in found.examples)
    assert all(m.ulp is not None and m.ulp >= 1 for m in found.examples)
    assert "lengths 8-65; positions 0-" in found.headline()


# -- repeat, errors ------------------------------------------------------------------------------


def test_nondeterministic_function_fails_the_repeat_check() -> None:
    (result,) = check_consistent(flaky_exp, checks="repeat", inputs=SMALL, **NUMPY32)
    assert result.status == "fail"
    found = _found(result)
    assert [(name, compared) for name, compared, _ in found.contexts] == [("second call", 300)]
    assert found.differing > 0 and found.max_ulp == 1.0
    msg = _message(flaky_exp, checks="repeat", inputs=SMALL, **NUMPY32)
    assert "consistency=repeat] inconsistent: " in msg
    assert "  check repeat: the same call twice (tolerance 0 ulp)" in msg.splitlines()
    assert "on the second call; first call 0x" in msg
    assert _repro(msg, "repeat").endswith("--inputs random:300:0 --consistency repeat")


def test_function_that_raises_is_an_error_cell_not_a_crash() -> None:
    results = check_consistent(no_singletons, inputs=SMALL, **NUMPY32)
    assert [(r.spec.check, r.status) for r in results] == [("position", "error"), ("layout", "pass"), ("repeat", "pass")]
    assert results[0].reason == "length 1: ValueError: needs at least two elements"
    msg = _message(no_singletons, inputs=SMALL, **NUMPY32)
    assert msg.splitlines()[0] == f"no_singletons: 1 of 3 cells of {HERE}:no_singletons (numpy) failed"
    assert ("consistency=position] error: length 1: ValueError: needs at least two elements") in msg
    assert "--consistency position" in _repro(msg, "position")
    # without the context that raises, it is consistent
    assert_consistent(no_singletons, inputs=SMALL, checks=["layout", "repeat"], **NUMPY32)


def test_not_importable_function_says_how_to_fix_the_repro() -> None:
    def local_tail(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return tail_sigmoid(x)

    msg = _message(local_tail, inputs=SMALL, checks="position", **NUMPY32)
    assert "fn is not importable by name: define it at module level" in msg


# -- tolerance -----------------------------------------------------------------------------------


def test_max_ulp_is_the_distance_two_answers_may_differ_by() -> None:
    kwargs: dict[str, Any] = {"inputs": SMALL, "checks": "position", **NUMPY32}
    (strict,) = check_consistent(ulp_tail_exp, **kwargs)
    assert strict.status == "fail"
    assert (_found(strict).tolerance, _found(strict).max_ulp) == (0.0, 1.0)
    assert _found(strict).lengths == tuple(range(8, 66))

    results = assert_consistent(ulp_tail_exp, max_ulp=1, **{**kwargs, "checks": None})
    assert [r.status for r in results] == ["pass"] * 3
    assert all(r.spec.budget.max_ulp == 1 and _found(r).tolerance == 1.0 for r in results)
    assert _found(results[0]).max_ulp == 1.0  # still measured, within tolerance

    msg = _message(ulp_tail_exp, max_ulp=0.5, **kwargs)
    assert "(tolerance 0.5 ulp)" in msg
    repro = _repro(msg, "position")
    assert repro.endswith("--consistency position --consistency-ulp 0.5")
    assert _cli(repro) == 1
    assert _cli(repro.replace("--consistency-ulp 0.5", "--consistency-ulp 1")) == 0


# -- usage errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"checks": "positon"}, "unknown consistency check 'positon'; pick from: bounds, device, layout, monotone,"
                                " permutation, position, repeat, symmetry; did you mean 'position'?"),
        ({"checks": "symmetry", "oracle": "exp"}, "consistency check 'symmetry' does not apply: exp declares no"
                                                  " symmetry; checks for exp: position, layout, repeat, device,"
                                                  " monotone, bounds"),
        ({"checks": "monotone"}, "consistency check 'monotone' does not apply: an operation without an oracle"
                                 " declares no properties"),
        ({"checks": "device"}, "assert_consistent: the device check compares CPU with CUDA: pass device='cuda'"),
        ({"checks": []}, "assert_consistent: checks must name at least one"),
        ({"checks": 3}, "assert_consistent: checks must be a name or a list of names, got 3"),
        ({"params": {"beta": 2}}, "assert_consistent: params are an oracle's"),
        ({"framework": "caffe"}, "assert_consistent: unknown framework 'caffe'; pick from: jax, keras, numpy,"
                                 " tensorflow, torch"),
        ({"fn": 3}, "assert_consistent: fn must be callable, got int"),
        ({"device": "tpu"}, "assert_consistent: unknown device 'tpu'; pick from: cpu, cuda"),
        ({"oracle": "expp"}, "unknown oracle 'expp'"),
        ({"dtypes": "float8"}, "unknown dtype 'float8'"),
        ({"max_ulp": -1}, "max_ulp must be a non-negative number, got -1"),
        ({"max_ulp": float("inf")}, "max_ulp must be a finite number, got inf"),
        ({"inputs": []}, "assert_consistent: inputs must name at least one input spec"),
        ({"inputs": 5}, "assert_consistent: inputs must be an input spec (e.g. 'special')"),
        ({"inputs": ["special", 5]}, "assert_consistent: each of inputs must be an input spec"),
        ({"oracle": "exp", "params": [1]}, "assert_consistent: params must be a mapping such as {'beta': 2.0}"),
    ],
    ids=["unknown-check", "undeclared-symmetry", "property-without-oracle", "device-on-cpu", "no-checks",
         "checks-not-names", "params-without-oracle", "framework", "not-callable", "device", "oracle", "dtype",
         "max-ulp-negative", "max-ulp-inf", "no-inputs", "inputs-not-a-spec", "an-input-not-a-spec",
         "params-not-a-mapping"],
)
def test_usage_errors_are_one_line_before_anything_runs(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"fn": never_called, "inputs": SMALL, **NUMPY32, **kwargs}
    fn = args.pop("fn")
    del _never[:]
    for helper in (check_consistent, assert_consistent):
        with pytest.raises(UsageError) as info:
            helper(fn, **args)
        assert match in str(info.value)
        assert "\n" not in str(info.value)
    assert _never == []


def test_a_missing_device_is_a_skipped_cell() -> None:
    results = check_consistent(exp32, inputs=SMALL, device="cuda", **NUMPY32)
    # on cuda the device check (CPU vs CUDA) is planned too
    assert [r.spec.check for r in results] == ["position", "layout", "repeat", "device"]
    assert {(r.status, r.reason) for r in results} == {("skipped", "numpy runs on the CPU only")}


# -- the pytest plugin -------------------------------------------------------------------------------

OPS = '''
import numpy as np
import pytest
from harness import assert_consistent
from harness.testing.plugin import precision_params

VECTOR = 8


def exp32(x):
    with np.errstate(over="ignore"):
        return np.exp(x)


def tail_sigmoid(x):
    flat = x.reshape(-1)
    body = flat.size - flat.size % VECTOR
    out = np.empty_like(flat)
    with np.errstate(over="ignore"):
        out[:body] = 1 / (1 + np.exp(-flat[:body]))
        out[body:] = np.exp(-np.logaddexp(np.float32(0), -flat[body:]))
    return out.reshape(x.shape)


def ulp_tail_exp(x):
    flat = x.reshape(-1)
    body = flat.size - flat.size % VECTOR
    with np.errstate(over="ignore"):
        out = np.exp(flat)
    out[body:] = np.nextafter(out[body:], np.float32(np.inf))
    return out.reshape(x.shape)
'''

TESTS = OPS + '''

def test_consistent(precision):
    results = precision.consistent(exp32, framework="numpy", dtypes="float32", inputs="random:300")
    assert [(r.spec.check, r.status) for r in results] == [("position", "pass"), ("layout", "pass"), ("repeat", "pass")]
    assert precision.results == results


def test_planted(precision):
    precision.consistent(tail_sigmoid, framework="numpy", dtypes="float32", inputs="random:300")


@pytest.mark.precision(framework="numpy", dtypes="float32", checks=["position"], inputs="random:300")
def test_marker_defaults(precision):
    results = precision.consistent(exp32)
    assert [(r.spec.check, r.spec.framework, r.spec.dtype, r.spec.inputs) for r in results] == [
        ("position", "numpy", "float32", "random:300:0")]


@pytest.mark.precision(oracle="exp", framework="numpy", dtypes="float32", inputs="random:300", max_ulp=4)
def test_marker_oracle_but_not_its_budget(precision):
    assert [r.spec.check for r in precision.consistent(exp32)] == [
        "position", "layout", "repeat", "monotone", "bounds"]
    # max_ulp=4 is an accuracy budget against the oracle, not a consistency tolerance
    with pytest.raises(AssertionError, match="tolerance 0 ulp"):
        precision.consistent(ulp_tail_exp, checks="position")
    assert precision.consistent(ulp_tail_exp, checks="position", max_ulp=1)[0].status == "pass"


@pytest.mark.precision(framework="numpy", inputs="random:300", checks="repeat")
@pytest.mark.parametrize(*precision_params(dtypes=["float16", "float32"]))
def test_parameters(precision, device, dtype):
    (result,) = precision.consistent(exp32)
    assert (result.spec.device, result.spec.dtype) == (device, dtype)


def test_bare_assert_consistent_is_recorded():
    assert_consistent(exp32, framework="numpy", dtypes="float32", inputs="random:300", checks="repeat")
'''


def _cells(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema"] == 4
    cells: list[dict[str, Any]] = data["cells"]
    return cells


def test_plugin_fixture_passes_fails_and_takes_defaults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cons=TESTS)
    result = pytester.runpytest(REPORT_OPTION, "out")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_planted*",
            "*AssertionError: tail_sigmoid: * cells of test_cons.py:tail_sigmoid (numpy) are inconsistent",
            "*tail_sigmoid[[]test_cons.py:tail_sigmoid-cpu-float32-random:300:0-consistency=position[]] inconsistent:"
            " * comparisons differ (lengths 8-65; *",
            "*check position: each value alone vs at every position*",
            "*repro: fpharness check test_cons.py:tail_sigmoid --framework numpy --dtype float32 --device cpu"
            " --inputs random:300:0 --consistency position",
        ]
    )
    out = result.stdout.str()
    # the helper frames are hidden: the traceback ends in the user's test
    assert "def assert_consistent(" not in out and "def consistent(" not in out
    assert "fpharness precision summary" in out

    cells = _cells(pytester.path / "out" / RESULTS_NAME)
    assert all("check" in c and "consistency" in c for c in cells)
    # 3 + 3 + 1 + (5 + 1 + 1) + 2 + 1 cells
    assert len(cells) == 17
    failed = [c for c in cells if c["status"] == "fail"]
    assert [c["check"] for c in failed] == ["position", "position"]  # the planted tail; ulp_tail_exp at 0 ulp
    planted = failed[0]
    assert planted["impl"] == "test_cons.py:tail_sigmoid"
    assert planted["consistency"]["check"] == "position"
    assert planted["consistency"]["lengths"] == list(range(8, 66))
    assert max(planted["consistency"]["positions"]) <= 63
    assert planted["consistency"]["differing"] > 0 and planted["consistency"]["examples"]
    # the stored cells come back as the records the helpers returned
    back = CellResult.from_json(planted)
    assert back.spec.check == "position" and _found(back).lengths == tuple(range(8, 66))
    tolerances = sorted({c["consistency"]["tolerance"] for c in cells})
    assert tolerances == [0.0, 1.0]


def test_plugin_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_usage=OPS + '''

def test_unknown_argument(precision):
    precision.consistent(exp32, framework="numpy", dtypes="float32", max_ulps=1)


def test_argument_of_the_other_method(precision):
    precision.consistent(exp32, framework="numpy", dtypes="float32", devices="cpu")


def test_missing(precision):
    precision.consistent(exp32, framework="numpy")


@pytest.mark.precision(framework="numpy", dtypes="float32", devices=["cpu", "cuda"])
def test_two_devices(precision):
    precision.consistent(exp32)


def test_undeclared_check(precision):
    precision.consistent(exp32, oracle="exp", framework="numpy", dtypes="float32", checks="symmetry")
'''
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines(
        [
            "E*UsageError: precision.consistent(...): unknown argument 'max_ulps'; pick from: checks, device, dtypes,"
            " framework, inputs, max_ulp, oracle, params, timeout; did you mean 'max_ulp'?",
        ]
    )
    result.stdout.fnmatch_lines(
        ["E*UsageError: precision.consistent(...): unknown argument 'devices'; 'devices' is an argument of"
         " precision(...); pick from: checks, device,*"]
    )
    result.stdout.fnmatch_lines(["E*UsageError: precision.consistent(...) needs dtypes: pass them*"])
    result.stdout.fnmatch_lines(
        ["E*UsageError: precision.consistent(...) checks on one device, and this test's defaults name 2 (cpu, cuda)*"]
    )
    result.stdout.fnmatch_lines(["E*UsageError: consistency check 'symmetry' does not apply: exp declares no symmetry*"])
    # nothing ran, so nothing was judged
    assert "fpharness precision summary" not in result.stdout.str()


def test_plugin_skips_a_test_whose_cells_all_skipped(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_skip=OPS + '''

def test_on_cuda(precision):
    precision.consistent(exp32, framework="numpy", dtypes="float32", inputs="random:300", device="cuda")


@pytest.mark.precision(framework="numpy", dtypes="float32", inputs="random:300", devices="cuda")
def test_marker_device(precision):
    precision.consistent(exp32)  # the marker's one device is taken
'''
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*every precision cell was skipped: numpy runs on the CPU only*"])
