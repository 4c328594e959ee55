"""assert_precision: verdicts, budgets, the failure message and its reproducer.

The functions under test live at module level so that the reproducer command can import
them from this file (``tests/testing/test_assert_precision.py:naive_softplus``).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import harness.testing.assertions as assertions
from harness.plan.cells import CellResult
from harness.testing.assertions import (
    DEFAULT_INPUTS,
    Recorder,
    assert_precision,
    check_precision,
    default_inputs,
    failure_message,
    implementation_ref,
    recording,
)
from oracles.errors import UsageError
from oracles.formats import get_format
from oracles.registry import get_oracle

SMALL = ["special", "random:300"]


def naive_softplus(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.log(1 + np.exp(x))


def stable_softplus(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.logaddexp(np.zeros_like(x), x)


def naive_softmax(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def naive_bce(p: npt.NDArray[Any], y: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def raises(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    raise RuntimeError("kernel exploded")


def wrong_shape(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return x[:1]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # keep the oracle cache (when installed) out of the home directory
    monkeypatch.setenv("FPHARNESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "oracle-cache"))
    yield


def _message(fn: Any, **kwargs: Any) -> str:
    with pytest.raises(AssertionError) as info:
        assert_precision(fn, **kwargs)
    return str(info.value)


def _repro(message: str) -> str:
    lines = [line for line in message.splitlines() if line.strip().startswith("repro: ")]
    assert lines, message
    return lines[0].split("repro: ", 1)[1].split("  (fn is not")[0]


# -- verdicts ----------------------------------------------------------------------------------


def test_naive_softplus_fails_in_float16_naming_the_overflow() -> None:
    msg = _message(naive_softplus, oracle="softplus", framework="numpy", dtypes="float16", inputs="special")
    assert "softplus[tests/testing/test_assert_precision.py:naive_softplus-cpu-float16-special] over budget" in msg
    assert "unexpected_inf 34 > 0" in msg
    assert "unexpected_inf, 34 inputs like these:" in msg
    # what, got, expected: the overflow at 11.09375 and the value it should have been
    assert "x=0x498c (11.09375) gave inf, oracle 11.093765" in msg
    assert "rounds to 11.09375" in msg
    assert "budget: max ulp 1; allowed: unexpected_nan 0, missing_nan 0, unexpected_inf 0" in msg
    assert "measured: max ulp 2046.72" in msg
    # cancellation in 1 + exp(x) is reported too, as the worst ULP errors
    assert "worst errors over 1 ulp:" in msg
    assert "x=0xc7a0 (-7.625) gave 0.0" in msg


def test_stable_softplus_passes_within_one_ulp() -> None:
    results = assert_precision(
        stable_softplus, oracle="softplus", framework="numpy", dtypes=["float16", "bfloat16"], inputs=SMALL, max_ulp=1
    )
    assert [r.status for r in results] == ["pass"] * 4
    assert all(r.summary is not None and r.summary.ulp_max <= 0.5 + 1e-3 for r in results)
    assert {r.spec.dtype for r in results} == {"float16", "bfloat16"}


def test_repro_command_reproduces_from_saved_inputs() -> None:
    msg = _message(naive_softplus, oracle="softplus", framework="numpy", dtypes="float16", inputs="special")
    repro = _repro(msg)
    assert repro.startswith(
        "fpharness check tests/testing/test_assert_precision.py:naive_softplus --oracle softplus --framework numpy"
        " --dtype float16 --device cpu --inputs npy:"
    )
    assert repro.endswith("--max-ulp 1")
    path = Path(repro.split("--inputs npy:", 1)[1].split()[0])
    saved = np.load(path)
    assert saved.dtype == np.float16
    assert 0x498C in saved.view(np.uint16).tolist()
    from harness.cli.app import main

    assert main([*shlex.split(repro)[1:], "-q", "--no-cache"]) == 1


def test_rowwise_repro_saves_rows() -> None:
    msg = _message(naive_softmax, oracle="softmax", framework="numpy", dtypes="float16", inputs="special")
    assert "row 2 col 0: 0xf0e2 (-10000.0) gave nan" in msg
    path = Path(_repro(msg).split("--inputs npy:", 1)[1].split()[0])
    rows = np.load(path)
    assert rows.ndim == 2 and rows.dtype == np.float16


def test_two_argument_oracle_names_arguments_and_saves_npz() -> None:
    msg = _message(naive_bce, oracle="binary_cross_entropy", framework="numpy", dtypes="float16", inputs="special")
    assert "p=0x0000 (0.0), y=0x0000 (0.0) gave nan" in msg
    repro = _repro(msg)
    path = Path(repro.split("--inputs npz:", 1)[1].split()[0])
    with np.load(path) as data:
        assert sorted(data.files) == ["p", "y"]


def test_bfloat16_inputs_are_saved_loadably() -> None:
    msg = _message(naive_softplus, oracle="softplus", framework="numpy", dtypes="bfloat16", inputs="special")
    repro = _repro(msg)
    saved = np.load(Path(repro.split("--inputs npy:", 1)[1].split()[0]))
    # float32 holds every bfloat16 exactly; np.save cannot store bfloat16 as numbers
    assert saved.dtype == np.float32
    from harness.cli.app import main

    assert main([*shlex.split(repro)[1:], "-q", "--no-cache"]) == 1


# -- budgets -------------------------------------------------------------------------------------


def test_allow_and_max_ulp_relax_the_budget() -> None:
    kwargs: dict[str, Any] = {"oracle": "softplus", "framework": "numpy", "dtypes": "float16", "inputs": "special"}
    results = assert_precision(naive_softplus, max_ulp=1e4, allow={"unexpected_inf": True}, **kwargs)
    assert [r.status for r in results] == ["pass"]
    # a fraction of the outputs: 34 of 147 is under a half, not under a tenth
    assert_precision(naive_softplus, max_ulp=1e4, allow={"unexpected_inf": 0.5}, **kwargs)
    msg = _message(naive_softplus, max_ulp=1e4, allow={"unexpected_inf": 0.1}, **kwargs)
    assert "unexpected_inf 34 > 0.1 of 147" in msg
    assert "--allow unexpected_inf=0.1" in msg


def test_max_ulp_per_dtype() -> None:
    results = check_precision(
        naive_softplus, oracle="softplus", framework="numpy", dtypes=["float16", "bfloat16"], inputs="special",
        max_ulp={"float16": 3000, "bfloat16": 1}, allow={"unexpected_inf": True},
    )
    assert {r.spec.dtype: r.status for r in results} == {"float16": "pass", "bfloat16": "fail"}
    with pytest.raises(UsageError, match="max_ulp names float32, which is not among dtypes"):
        check_precision(stable_softplus, oracle="softplus", framework="numpy", dtypes="float16",
                        inputs="special", max_ulp={"float32": 1})


def test_default_budget_and_inputs() -> None:
    assert assertions.DEFAULT_MAX_ULP["float16"] == 1.0
    softplus, softmax = get_oracle("softplus"), get_oracle("softmax")
    assert default_inputs(softplus, get_format("float16")) == ("exhaustive",)
    assert default_inputs(softplus, get_format("bfloat16")) == ("exhaustive",)
    assert default_inputs(softplus, get_format("float32")) == DEFAULT_INPUTS
    assert default_inputs(softmax, get_format("float16")) == DEFAULT_INPUTS


# -- errors and skips ------------------------------------------------------------------------------


def test_an_implementation_that_raises_is_an_error_cell() -> None:
    msg = _message(raises, oracle="softplus", framework="numpy", dtypes="float16", inputs="special")
    assert "over budget" not in msg.splitlines()[0]
    assert "softplus[tests/testing/test_assert_precision.py:raises-cpu-float16-special] error: RuntimeError: kernel exploded" in msg
    assert "--inputs special" in _repro(msg)


def test_wrong_shape_is_an_error_cell() -> None:
    msg = _message(wrong_shape, oracle="softplus", framework="numpy", dtypes="float16", inputs="special")
    assert "returned shape (1,)" in msg


def test_missing_device_is_a_skipped_cell(tmp_path: Path) -> None:
    seen: list[CellResult] = []
    # a recorder that is not pytest's: skipped cells are returned, not turned into a skip
    with recording(Recorder(seen.append, lambda: tmp_path, in_pytest=False)):
        results = assert_precision(
            stable_softplus, oracle="softplus", framework="numpy", dtypes="float16", devices="cuda", inputs="special"
        )
    assert [(r.status, r.reason) for r in results] == [("skipped", "numpy runs on the CPU only")]
    assert seen == results


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"framework": "caffe"}, "unknown framework 'caffe'; pick from: jax, keras, numpy"),
        ({"oracle": "softplsu"}, "unknown oracle 'softplsu'; pick from: "),
        ({"dtypes": "float8"}, "unknown dtype 'float8'; pick from: bfloat16, float16"),
        ({"dtypes": []}, "dtypes must name at least one"),
        ({"inputs": "random:many"}, "N must be an integer"),
        ({"params": {"alpha": 2}}, "unknown parameter 'alpha'; pick from: beta"),
        ({"allow": {"unexpected_infs": True}}, "unknown incidence category 'unexpected_infs'"),
        ({"max_ulp": -1}, "max_ulp must be a non-negative number"),
        ({"max_ulp": float("nan")}, "max_ulp must be a non-negative number, got nan"),
        ({"max_ulp": {"float16": float("inf")}}, "max_ulp must be a finite number, got inf"),
        ({"allow": {"lost_to_zero": float("nan")}}, "allow.lost_to_zero must be true, false, a count"),
        ({"params": {"beta": 0}}, "beta=0 is outside its domain: beta must be a finite non-zero number"),
        ({"timeout": float("inf")}, "timeout must be a positive, finite number of seconds"),
        ({"inputs": "random:99999999999"}, "over the limit of 16777216"),
    ],
    ids=["framework", "oracle", "dtype", "no-dtypes", "inputs", "params", "allow", "max-ulp",
         "max-ulp-nan", "max-ulp-inf", "allow-nan", "beta-zero", "timeout-inf", "inputs-too-many"],
)
def test_usage_errors_name_the_choices(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"oracle": "softplus", "framework": "numpy", "dtypes": "float16", "inputs": "special"}
    args.update(kwargs)
    with pytest.raises(UsageError, match=match.replace("(", r"\(")):
        assert_precision(stable_softplus, **args)


# -- inputs and naming ------------------------------------------------------------------------------


def test_in_memory_array_inputs() -> None:
    x = np.array([11.09375, 0.0, -3.0], dtype=np.float16)
    msg = _message(naive_softplus, oracle="softplus", framework="numpy", dtypes="float16", inputs=x)
    assert "unexpected_inf, this input:" in msg
    assert "x=0x498c (11.09375) gave inf" in msg
    ok = assert_precision(stable_softplus, oracle="softplus", framework="numpy", dtypes="float16", inputs=[x, "special"])
    assert ok[0].spec.inputs.startswith("npy:") and ok[0].summary is not None and ok[0].summary.n == 3


def test_params_reach_oracle_and_function() -> None:
    def scaled(x: npt.NDArray[Any], beta: float = 1.0) -> npt.NDArray[Any]:
        return (np.logaddexp(np.zeros(x.shape, np.float32), beta * x.astype(np.float32)) / beta).astype(x.dtype)

    results = assert_precision(scaled, oracle="softplus", framework="numpy", dtypes="float16", inputs=SMALL,
                               params={"beta": 2.0}, max_ulp=1)
    assert dict(results[0].spec.params)["beta"] == 2.0


def test_implementation_ref() -> None:
    assert implementation_ref(naive_softplus) == ("tests/testing/test_assert_precision.py:naive_softplus", True)
    assert implementation_ref(np.exp) == ("numpy:exp", True)
    ref, loadable = implementation_ref(lambda x: x)
    assert ref.endswith(":test_implementation_ref.<locals>.<lambda>") and not loadable


def test_unloadable_function_says_how_to_fix_the_repro() -> None:
    msg = _message(lambda x: np.log(1 + np.exp(x)), oracle="softplus", framework="numpy", dtypes="float16",
                   inputs="special")
    assert "fn is not importable by name: define it at module level" in msg


def test_failure_message_is_none_when_all_pass() -> None:
    results = check_precision(stable_softplus, oracle="softplus", framework="numpy", dtypes="float16", inputs="special")
    assert failure_message(results) is None


def test_many_failing_cells_are_summarised() -> None:
    msg = _message(naive_softplus, oracle="softplus", framework="numpy", dtypes=["float16", "bfloat16"],
                   inputs=["special", "random:50", "random:50:1"])
    assert msg.splitlines()[0] == (
        "softplus: 6 of 6 cells of tests/testing/test_assert_precision.py:naive_softplus (numpy) are over budget"
    )
    assert "2 more: softplus[" in msg


def test_import_harness_stays_light() -> None:
    code = (
        "import sys, harness\n"
        "assert 'harness.testing.assertions' not in sys.modules\n"
        "assert 'harness.execution.runner' not in sys.modules\n"
        "from harness import assert_precision\n"
        "assert assert_precision.__module__ == 'harness.testing.assertions'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def ftz_exp(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """exp with subnormal results flushed to 0 (as XLA's bfloat16 kernel does)."""
    y = np.exp(x.astype(np.float64))
    y[np.abs(y) < 2.0**-126] = 0.0
    return y.astype(x.dtype)


def test_failure_message_shows_the_elements_that_break_the_budget_first() -> None:
    """Issue 14 §1: the elements under a failing cell are the ones over its budget (here the
    results flushed to 0), never the correct inherent overflows (89.0 gave inf)."""
    results = check_precision(ftz_exp, oracle="exp", framework="numpy", dtypes="bfloat16", inputs="exhaustive",
                              max_ulp=1, allow={"inherent_inf": True})
    message = failure_message(results, fn=ftz_exp)
    assert message is not None
    lines = message.splitlines()
    heading = next(i for i, line in enumerate(lines) if line.strip().startswith("worst errors over 1 ulp"))
    shown = [line for line in lines[heading + 1:] if line.startswith("    ")]
    assert shown and all(" gave 0.0," in line for line in shown[:3])
    assert "gave inf" not in message


# -- gradients -------------------------------------------------------------------------------


def torch_naive_softplus(x: Any) -> Any:
    import torch

    return torch.log(1 + torch.exp(x))


def torch_stable_softplus(x: Any) -> Any:
    import torch

    return torch.nn.functional.softplus(x)


def test_assert_precision_judges_the_gradient_with_grad_true() -> None:
    pytest.importorskip("torch")
    # log(1 + exp(x)) has a finite forward value for x <= 11.09 in float16, but its
    # backward pass exp(x) / (1 + exp(x)) is inf / inf = NaN once exp(x) overflows
    with pytest.raises(AssertionError) as info:
        assert_precision(torch_naive_softplus, oracle="softplus", framework="torch", dtypes="float16",
                         inputs="special", grad=True, max_ulp=1)
    message = str(info.value)
    assert "∂softplus" in message and "unexpected_nan" in message and "--grad x" in message
    # away from the subnormal range, where g * sigmoid(x) with a subnormal sigmoid(x) loses
    # bits (the frameworks suite shows that)
    results = assert_precision(torch_stable_softplus, oracle="softplus", framework="torch", dtypes="float32",
                               inputs=["uniform:-20:20:500", "normal:0:3:500"], grad=True,
                               cotangent=["ones", "random"], max_ulp=4)
    assert [(r.spec.wrt, r.spec.cotangent) for r in results] == [("x", "ones")] * 2 + [("x", "random")] * 2
    assert all(r.status == "pass" for r in results)


def test_gradient_arguments_are_checked() -> None:
    with pytest.raises(UsageError, match="pass grad=True as well"):
        check_precision(stable_softplus, oracle="softplus", framework="numpy", dtypes="float16", wrt="x")
    with pytest.raises(UsageError, match="no real argument 'q'"):
        check_precision(stable_softplus, oracle="binary_cross_entropy", framework="numpy", dtypes="float16",
                        grad=True, wrt="q")
    with pytest.raises(UsageError, match="wrt must be a name or a list of names, got 5"):
        check_precision(stable_softplus, oracle="softplus", framework="numpy", dtypes="float16",
                        grad=True, wrt=5)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="cotangent must be a name or a list of names, got None"):
        check_precision(stable_softplus, oracle="softplus", framework="numpy", dtypes="float16",
                        grad=True, cotangent=None)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="grad must be True or False"):
        check_precision(stable_softplus, oracle="softplus", framework="numpy", dtypes="float16",
                        grad="yes")  # type: ignore[arg-type]
