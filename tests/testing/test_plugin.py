"""The pytest plugin, run through pytester: fixture, parametrisation, skips, the terminal
summary, --precision-report, and the pytest-xdist path (cells cross from the workers on
the test reports)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import hypothesis
import ml_dtypes
import pytest

import harness.cli.session
import harness.frameworks.catalogue
import harness.testing.assertions
import oracles.catalogue
import reports.terminal
from harness.testing.plugin import (
    GROUP,
    HTML_NAME,
    REPORT_ATTR,
    REPORT_OPTION,
    RESULTS_NAME,
    Precision,
    precision_params,
)
from oracles.errors import UsageError

pytest_plugins = ["pytester"]

# pytester's in-process runs restore sys.modules afterwards: a module first imported inside
# an inner run is imported again by the next one, so registries would fill twice and
# ml_dtypes would make a second bfloat16 type; hypothesis's plugin would import (and
# assertion-rewrite) all of hypothesis in every run. Everything the runs use is imported here.
assert hypothesis and ml_dtypes and harness.testing.assertions and harness.cli.session and oracles.catalogue and reports.terminal

ROOT = Path(__file__).resolve().parents[2]

OPS = '''
import numpy as np
import pytest
from harness import assert_precision
from harness.testing.plugin import precision_params

SMALL = ["special", "random:200"]


def naive_softplus(x):
    return np.log(1 + np.exp(x))


def stable_softplus(x):
    return np.logaddexp(np.zeros_like(x), x)
'''

TESTS = OPS + '''

def test_naive():
    assert_precision(naive_softplus, oracle="softplus", framework="numpy", dtypes="float16", inputs="special")


@pytest.mark.precision(oracle="softplus", inputs=SMALL, max_ulp=1)
@pytest.mark.parametrize(*precision_params(dtypes=["float16", "bfloat16"], devices=["cpu", "cuda"], frameworks=["numpy"]))
def test_stable(precision, framework, device, dtype):
    results = precision(stable_softplus)
    assert [r.status for r in results] == ["pass", "pass"]
    assert precision.results == results
'''


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # the oracle cache (when installed) stays out of the home directory, workers included
    monkeypatch.setenv("FPHARNESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "oracle-cache"))


def _cells(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema"] == 4
    cells: list[dict[str, Any]] = data["cells"]
    return cells


def test_failing_and_passing_ops(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ops=TESTS)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=2, failed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: softplus: 1 of 1 cells of test_ops.py:naive_softplus (numpy) are over budget",
            "*softplus[[]test_ops.py:naive_softplus-cpu-float16-special[]] over budget: max ulp 2046.72 > 1;"
            " unexpected_inf 34 > 0*",
            "*unexpected_inf, 34 inputs like these:",
            "*x=0x498c (11.09375) gave inf, oracle 11.093765* rounds to 11.09375",
            "*repro: fpharness check test_ops.py:naive_softplus --oracle softplus --framework numpy --dtype float16"
            " --device cpu --inputs npy:*fpharness*.npy --max-ulp 1",
        ]
    )
    # the helper frames are hidden: the traceback ends in the user's test
    assert "def assert_precision(" not in result.stdout.str()
    assert "def _cell_block(" not in result.stdout.str()


def test_summary_table_lists_every_cell(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ops=TESTS)
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        [
            "*= fpharness precision summary =*",
            "softplus*",
            "*test_ops.py:naive_softplus*special*2,047 ulp Inf!=34*",
            "*test_ops.py:stable_softplus*random:200:0*",
            "5 cells: 4 passed, 1 failed, 0 errors, 0 skipped",
        ]
    )


def test_no_summary_without_precision_cells(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "fpharness precision summary" not in result.stdout.str()


def test_parameter_ids_and_cuda_skip(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    # the skip path must be exercised on a GPU machine too
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    pytester.makepyfile(
        test_ids='''
import pytest
from harness.testing.plugin import precision_params

@pytest.mark.parametrize(*precision_params(dtypes=["bfloat16"], devices=["cpu", "cuda"], frameworks=["torch"]))
def test_softplus(framework, device, dtype):
    assert (framework, device) == ("torch", "cpu")

@pytest.mark.parametrize(*precision_params(dtypes=["float16"], devices=["cuda"]))
def test_any(device, dtype):
    raise AssertionError("never runs without CUDA")
'''
    )
    result = pytester.runpytest("-v", "-rs", "-m", "not cuda or cuda")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*test_softplus[[]torch-cpu-bfloat16[]] PASSED*",
            "*test_softplus[[]torch-cuda-bfloat16[]] SKIPPED*",
            "*test_any[[]cuda-float16[]] SKIPPED*",
            "SKIPPED*no CUDA device*",
        ]
    )
    # the cuda marker is registered and carried, so -m selects on it
    result = pytester.runpytest("-m", "not cuda", "--strict-markers")
    result.assert_outcomes(passed=1, deselected=2)


def test_precision_params_direct() -> None:
    names, params = precision_params(dtypes=["float16", "bf16"], devices=["cpu", "cuda"], frameworks=["numpy"])
    assert names == "framework,device,dtype"
    assert [p.id for p in params] == [
        "numpy-cpu-float16", "numpy-cpu-bfloat16", "numpy-cuda-float16", "numpy-cuda-bfloat16",
    ]
    skipped = [p.id for p in params if any(m.name == "skip" for m in p.marks)]
    assert skipped == ["numpy-cuda-float16", "numpy-cuda-bfloat16"]
    assert all(any(m.name == "cuda" for m in p.marks) for p in params if "cuda" in str(p.id))
    names, params = precision_params(dtypes=["float32"])
    assert names == "device,dtype" and [p.id for p in params] == ["cpu-float32"]
    with pytest.raises(UsageError, match="unknown device 'tpu'; pick from: cpu, cuda"):
        precision_params(dtypes=["float16"], devices=["tpu"])
    with pytest.raises(UsageError, match="unknown framework 'caffe'"):
        precision_params(dtypes=["float16"], frameworks=["caffe"])


def test_precision_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ops=TESTS)
    result = pytester.runpytest(REPORT_OPTION, "out")
    result.assert_outcomes(passed=2, failed=1, skipped=2)
    report = pytester.path / "out" / RESULTS_NAME
    cells = _cells(report)
    assert len(cells) == 5
    assert sorted(c["status"] for c in cells) == ["fail", "pass", "pass", "pass", "pass"]
    assert {c["dtype"] for c in cells} == {"float16", "bfloat16"}
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["run"]["command"].startswith(f"pytest {REPORT_OPTION} out")
    assert data["run"]["seeds"] == [0]
    result.stdout.fnmatch_lines([f"precision report: *{RESULTS_NAME}"])
    try:
        import reports.html  # noqa: F401
    except ImportError:
        return
    assert (pytester.path / "out" / HTML_NAME).stat().st_size > 0
    result.stdout.fnmatch_lines([f"precision report: *{HTML_NAME}"])


def test_report_written_even_when_empty(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    pytester.runpytest(REPORT_OPTION, "empty").assert_outcomes(passed=1)
    assert _cells(pytester.path / "empty" / RESULTS_NAME) == []


def test_xdist_workers_reach_summary_and_report(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_ops=TESTS)
    result = pytester.runpytest("-n", "2", REPORT_OPTION, "out")
    result.assert_outcomes(passed=2, failed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*= fpharness precision summary =*",
            "5 cells: 4 passed, 1 failed, 0 errors, 0 skipped",
        ]
    )
    cells = _cells(pytester.path / "out" / RESULTS_NAME)
    assert len(cells) == 5
    # every cell keeps its full verdict across the worker boundary
    naive = next(c for c in cells if c["status"] == "fail")
    assert naive["incidence"]["unexpected_inf"] == 34
    assert naive["exact_summary"]["bins"]


def test_cells_travel_on_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ops=TESTS)
    recorder = pytester.inline_run()
    reports = [r for r in recorder.getreports("pytest_runtest_logreport") if getattr(r, REPORT_ATTR, None)]
    assert {r.when for r in reports} == {"call"}
    by_test = {r.nodeid.split("::")[1]: json.loads(getattr(r, REPORT_ATTR)) for r in reports}
    assert sorted(by_test) == ["test_naive", "test_stable[numpy-cpu-bfloat16]", "test_stable[numpy-cpu-float16]"]
    assert [c["status"] for c in by_test["test_naive"]] == ["fail"]
    # a report serialised the way pytest-xdist does keeps the cells
    report = reports[0]
    data = pytester.parseconfig().hook.pytest_report_to_serializable(config=pytester.parseconfig(), report=report)
    assert data[REPORT_ATTR] == getattr(report, REPORT_ATTR)


def test_all_cells_skipped_skips_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_skip=OPS + '''

def test_on_cuda():
    assert_precision(stable_softplus, oracle="softplus", framework="numpy", dtypes="float16", devices="cuda",
                     inputs="special")
'''
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*every precision cell was skipped: numpy runs on the CPU only*"])


def test_fixture_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_usage=OPS + '''

def test_missing(precision):
    precision(stable_softplus, dtypes="float16")

@pytest.mark.precision(oracle="softplus", framework="numpy", dtypes="float16", max_ulps=1)
def test_typo(precision):
    precision(stable_softplus)
'''
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1, errors=1)  # the marker is checked when the fixture is set up
    result.stdout.fnmatch_lines(
        ["*UsageError: precision(...) needs oracle, framework: pass them, set them with @pytest.mark.precision*"]
    )
    result.stdout.fnmatch_lines(
        ["*UsageError: @pytest.mark.precision: unknown argument 'max_ulps'; pick from: allow, atol, checks, cotangent, devices, dtypes,*did you mean 'max_ulp'?*"]
    )


def test_non_finite_arguments_fail_their_test_not_the_session(pytester: pytest.Pytester) -> None:
    # issue 13, defect 7: max_ulp=nan used to reach the report hook, whose JSON refused it:
    # an INTERNALERROR that ended the session and lost every result
    pytester.makepyfile(
        test_nan=OPS + '''

def test_nan_budget():
    assert_precision(stable_softplus, oracle="softplus", framework="numpy", dtypes="float16", inputs="special",
                     max_ulp=float("nan"))

def test_inf_param():
    assert_precision(stable_softplus, oracle="softplus", framework="numpy", dtypes="float16", inputs="special",
                     params={"beta": float("inf")})

def test_nan_timeout():
    assert_precision(stable_softplus, oracle="softplus", framework="numpy", dtypes="float16", inputs="special",
                     timeout=float("nan"))

def test_after():
    assert_precision(stable_softplus, oracle="softplus", framework="numpy", dtypes="float16", inputs="special")
'''
    )
    result = pytester.runpytest(REPORT_OPTION, "report")
    result.assert_outcomes(passed=1, failed=3)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*UsageError: budget: max_ulp must be a non-negative number, got nan*"])
    result.stdout.fnmatch_lines(["*UsageError: softplus: parameter beta=inf is not finite*"])
    result.stdout.fnmatch_lines(["*UsageError: timeout must be a positive, finite number of seconds*got nan*"])
    assert [c["status"] for c in _cells(pytester.path / "report" / RESULTS_NAME)] == ["pass"]


def test_a_cell_that_cannot_be_stored_costs_only_its_record(pytester: pytest.Pytester) -> None:
    # defence in depth behind Budget and Param: a report hook that raises is an INTERNALERROR
    pytester.makepyfile(
        test_unstorable=OPS + '''
from harness.plan.cells import Budget, CellResult, CellSpec
from harness.testing import assertions

def test_unstorable():
    cell = CellSpec("exp", "numpy.exp", "numpy", "float16", "cpu", "special", budget=Budget(max_ulp=float("nan")))
    assertions._ACTIVE.get().record(CellResult(cell, "pass"))

def test_after():
    assert_precision(stable_softplus, oracle="softplus", framework="numpy", dtypes="float16", inputs="special")
'''
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*fpharness: 1 precision cell(s) of test_unstorable.py::test_unstorable not recorded:*"])


def test_marker_and_option_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.precision(**kwargs): default arguments of the precision fixture*"])
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines([f"{GROUP} precision testing:", f"*{REPORT_OPTION}=DIR*"])


def test_precision_object_defaults() -> None:
    p = Precision({"oracle": "softplus"})
    with pytest.raises(UsageError, match="needs framework, dtypes"):
        p(lambda x: x)
    assert p.results == []


@pytest.mark.slow
def test_example_file_runs(pytester: pytest.Pytester) -> None:
    pytest.importorskip("torch")
    example = ROOT / "examples" / "test_my_softplus.py"
    shutil.copy(example, pytester.path / example.name)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=3, skipped=3)


def test_training_example_file_runs(pytester: pytest.Pytester) -> None:
    pytest.importorskip("torch")
    example = ROOT / "examples" / "test_my_model_trains.py"
    shutil.copy(example, pytester.path / example.name)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


GRAD_TESTS = """
import numpy as np
import pytest


def softplus(x):
    return np.logaddexp(np.zeros_like(x), x)


def sigmoid_vjp(x, cotangent):
    with np.errstate(over="ignore"):
        return (cotangent.astype(np.float64) / (1 + np.exp(-x.astype(np.float64)))).astype(x.dtype)


softplus.vjp = sigmoid_vjp


@pytest.mark.precision(oracle="softplus", framework="numpy", grad=True, inputs="special")
def test_grad(precision):
    results = precision(softplus, dtypes=["float32"], max_ulp=1)
    assert [r.spec.id for r in results] == [
        "∂softplus[test_grad.py:softplus-cpu-float32-special]"]
"""


def test_precision_fixture_judges_gradients(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_grad=GRAD_TESTS)
    result = pytester.runpytest("--precision-report", "report")
    result.assert_outcomes(passed=1)
    (cell,) = _cells(pytester.path / "report" / "results.json")
    assert (cell["pass"], cell["wrt"], cell["status"]) == ("grad", "x", "pass")
