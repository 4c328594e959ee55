"""Gradient cells through the runner: the vector-Jacobian product a framework's autodiff
returns, judged against the gradient oracle, for built-ins, in-memory functions and
custom implementations in the isolated process.

Layer: runner integration. The oracle here (``fpharness_test_square``, x**2 with
gradient 2x) has exact truths, so each assertion says what a user would see: a gradient
that is right passes, a gradient that is lost, NaN or never computed says so.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.execution.runner import Runner
from harness.execution.schedule import run_cells
from harness.frameworks.registry import Impl
from harness.plan.cells import Budget, CellResult, CellSpec
from oracles import evaluate, get_format, oracle
from oracles.gradients import gradient, gradient_oracle

SQUARE = "fpharness_test_square"


@oracle(SQUARE, replace=True)
def _square(x: Any) -> Any:
    """x**2."""
    return x * x


@gradient(SQUARE, replace=True)
def _square_grad(x: Any) -> Any:
    """2x."""
    return 2 * x


def _cell(impl: str, framework: str, dtype: str = "float32", inputs: str = "random:500", *, wrt: str = "x",
          cotangent: str = "ones", oracle_name: str = SQUARE, custom: bool = True,
          params: tuple[tuple[str, Any], ...] = (), budget: Budget | None = None) -> CellSpec:
    return CellSpec(oracle_name, impl, framework, dtype, "cpu", inputs, params, budget or Budget(max_ulp=1),
                    custom=custom, wrt=wrt, cotangent=cotangent)


def _run(cell: CellSpec, fn: Any = None) -> CellResult:
    runner = Runner()
    if fn is not None:
        runner.extra_impls[cell.impl] = Impl(cell.impl, cell.framework, cell.oracle, fn, custom=True)
    try:
        return run_cells([cell], runner=runner)[0]
    finally:
        runner.close()


def test_the_gradient_oracle_multiplies_the_cotangent_and_divides_a_mean() -> None:
    truth = gradient_oracle(SQUARE)
    assert truth.name == f"∂{SQUARE}/∂x" and [a.name for a in truth.args] == ["x", "cotangent"]
    x = np.array([3.0, -0.5, 0.0, np.inf])
    g = np.array([0.25, 2.0, -1.0, 0.0])
    ref = evaluate(truth, [x, g], get_format("float32"))
    assert ref.want.tolist()[:3] == [3 * 2 * 0.25, -0.5 * 2 * 2, 0.0]
    assert np.isnan(ref.want[3])  # an infinite derivative times a zero cotangent is undefined
    # a loss's gradient divides by the number of losses a mean averages: d/dy = -x g / count
    loss = gradient_oracle("binary_cross_entropy_with_logits", "y")
    assert [p.name for p in loss.params] == ["count"]
    ref = evaluate(loss, [np.array([3.0]), np.array([0.5]), np.array([1.0])], get_format("float32"), {"count": 4.0})
    assert ref.want.tolist() == [-0.75]


def test_torch_autograd_is_judged_and_passes() -> None:
    torch = pytest.importorskip("torch")
    result = _run(_cell("mem:square", "torch"), lambda x: x * x)
    assert result.status == "pass", result.reason
    assert result.spec.id.startswith(f"∂{SQUARE}[") and result.out_dtype == "float32"
    assert result.summary is not None and result.summary.n == 500
    del torch


@pytest.mark.parametrize("cotangent", ["random", "special"])
def test_cotangents_reach_autodiff_and_the_truth(cotangent: str) -> None:
    pytest.importorskip("torch")
    result = _run(_cell("mem:square", "torch", "float16", cotangent=cotangent), lambda x: x * x)
    # 2 x g is one rounding in float16 when torch computes it as (g * x) * 2 or g * 2x
    assert result.status == "pass", result.reason
    assert result.spec.id.endswith(f"-cotangent={cotangent}]")


def test_a_gradient_lost_in_the_backward_pass_is_reported() -> None:
    torch = pytest.importorskip("torch")

    def square_through_float16(x: Any) -> Any:
        # the forward value is right, but the backward pass goes through float16 and
        # underflows for |x| below float16's subnormals
        return (x.to(torch.float16) * x.to(torch.float16)).to(x.dtype)

    result = _run(_cell("mem:lossy", "torch", "float32", "uniform:-1e-9:1e-9:200"), square_through_float16)
    assert result.status == "fail"
    assert result.summary is not None and result.summary.incidence["lost_to_zero"] > 0


def test_numpy_without_a_vjp_is_unsupported_and_with_one_is_judged() -> None:
    plain = _run(_cell("mem:np", "numpy"), lambda x: x * x)
    assert plain.status == "unsupported" and "vjp" in plain.reason

    def square(x: Any) -> Any:
        return x * x

    square.vjp = lambda x, cotangent: 2 * x * cotangent  # type: ignore[attr-defined]
    judged = _run(_cell("mem:np2", "numpy"), square)
    assert judged.status == "pass", judged.reason


def test_an_argument_that_is_not_real_is_refused_before_running() -> None:
    from oracles.errors import UsageError

    with pytest.raises(UsageError, match="no real argument 'target'"):
        gradient_oracle("cross_entropy", "target")


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "impls.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_custom_files_are_differentiated_in_the_isolated_process(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = _write(tmp_path, """
        import torch

        def square(x):
            return x * x

        def detached(x):
            return (x.detach() * x.detach())

        def nan_backward(x):
            # finite forward, NaN gradient at 0: sqrt's derivative there is infinite
            return torch.sqrt(x * x) ** 2
    """)
    good, cut, nan = (_run(_cell(f"{path}:{name}", "torch", inputs="special")) for name in
                      ("square", "detached", "nan_backward"))
    assert good.status == "pass", good.reason
    assert cut.status == "error" and "torch" in cut.reason  # a user's function whose graph is cut
    assert nan.status == "fail" and nan.summary is not None and nan.summary.incidence["unexpected_nan"] > 0


def test_forward_and_gradient_cells_of_one_plan_do_not_share_references() -> None:
    pytest.importorskip("torch")
    forward = _cell("mem:square", "torch", wrt="")
    grad = _cell("mem:square", "torch")
    runner = Runner()
    runner.extra_impls["mem:square"] = Impl("mem:square", "torch", SQUARE, lambda x: x * x, custom=True)
    results = run_cells([forward, grad], runner=runner)
    assert [r.status for r in results] == ["pass", "pass"], [r.reason for r in results]
    assert results[0].spec.key != results[1].spec.key


def test_a_user_oracle_without_a_gradient_is_differentiated_numerically_or_reported_missing() -> None:
    pytest.importorskip("torch")
    name = "fpharness_test_cube_no_gradient"

    @oracle(name, replace=True)
    def cube(x: Any) -> Any:
        return x * x * x

    # autodiff of x*x*x sums two products: a few roundings, so 2 ulp
    smooth = _run(_cell("mem:cube", "torch", "float32", "uniform:-3:3:200", oracle_name=name,
                        budget=Budget(max_ulp=2)), lambda x: x * x * x)
    assert smooth.status == "pass", smooth.reason
    special = _run(_cell("mem:cube2", "torch", "float32", "special", oracle_name=name), lambda x: x * x * x)
    assert special.status == "error" and "no gradient oracle" in special.reason
    del cube


def test_a_backward_pass_that_raises_outside_the_domain_is_judged_on_the_rest(tmp_path: Path) -> None:
    """torch.binary_cross_entropy raises for p outside [0, 1], where the gradient is NaN:
    as for forward cells, the batch runs again without those inputs, each kept input with
    its own random cotangent (a misaligned one would be thousands of ulps off)."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    p = rng.uniform(0.05, 0.95, 400).astype(np.float32)
    p[::17] = 1.5  # outside the domain: torch raises for the whole batch
    y = rng.uniform(0.0, 1.0, 400).astype(np.float32)
    path = tmp_path / "bce.npz"
    np.savez(path, p=p, y=y)
    cell = _cell("torch.binary_cross_entropy", "torch", "float32", f"npz:{path}", wrt="p", cotangent="random",
                 oracle_name="binary_cross_entropy", custom=False, params=(("reduction", "none"),),
                 budget=Budget(max_ulp=8))
    result = _run(cell)
    assert result.status == "pass", result.reason
    assert result.rejected == len(p[::17]) and "rejected" in result.reason


@pytest.mark.parametrize(("oracle_name", "impl"), [("cross_entropy", "torch.cross_entropy"),
                                                   ("nll_loss", "torch.nll_loss")])
def test_a_mean_loss_divides_its_gradient_by_the_number_of_rows(oracle_name: str, impl: str) -> None:
    """reduction="mean" over rows: one scalar cotangent for the batch, repeated along every
    row, divided by the number of rows (not of elements: that would be width times off)."""
    pytest.importorskip("torch")
    wrt = "logits" if oracle_name == "cross_entropy" else "logp"
    for cotangent in ("ones", "random"):
        # torch's cross-entropy backward forms 1 - p from a rounded p (tens of ulps, a
        # finding of the frameworks suite); a count off by any factor is 2**23 ulps off
        cell = _cell(impl, "torch", "float32", "normal:0:3:300", wrt=wrt, cotangent=cotangent,
                     oracle_name=oracle_name, custom=False, params=(("reduction", "mean"),),
                     budget=Budget(max_ulp=1000))
        result = _run(cell)
        assert result.status == "pass", (cotangent, result.reason)
