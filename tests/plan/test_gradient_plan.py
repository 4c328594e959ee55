"""Planning gradient cells: which (argument, cotangent) pairs a plan takes, how suites and
cells spell them, and the cotangents themselves.

Layer: plan. Nothing here runs an implementation.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness.plan.cells import CellSpec, passes
from harness.plan.cotangents import cotangent_values, special_cotangents
from harness.plan.suite import load_suite
from oracles import FORMATS, UsageError, get_format, get_oracle


def test_passes_cover_every_real_argument_by_default() -> None:
    bce = get_oracle("binary_cross_entropy")
    assert passes(bce, "forward") == [("", "ones")]
    assert passes(bce, "grad") == [("p", "ones"), ("y", "ones")]
    assert passes(bce, "both", ["y"], ["ones", "random"]) == [("", "ones"), ("y", "ones"), ("y", "random")]
    assert passes(get_oracle("cross_entropy"), "grad") == [("logits", "ones")]


@pytest.mark.parametrize(
    ("oracle", "mode", "wrt", "cotangents", "fragment"),
    [
        pytest.param("softplus", "backward", None, ["ones"], "unknown mode 'backward'", id="mode"),
        pytest.param("binary_cross_entropy", "grad", ["q"], ["ones"], "no real argument 'q'", id="wrt"),
        pytest.param("cross_entropy", "grad", ["target"], ["ones"], "a class index has no gradient", id="index"),
        pytest.param("softplus", "grad", None, ["one"], "unknown cotangent 'one'", id="cotangent"),
    ],
)
def test_bad_passes_are_one_line_usage_errors(oracle: str, mode: str, wrt: list[str] | None,
                                              cotangents: list[str], fragment: str) -> None:
    with pytest.raises(UsageError) as exc:
        passes(get_oracle(oracle), mode, wrt, cotangents)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_gradient_cells_read_as_gradients() -> None:
    fwd = CellSpec("softplus", "torch.softplus", "torch", "float16", "cpu", "exhaustive")
    grad = CellSpec("softplus", "torch.softplus", "torch", "float16", "cpu", "exhaustive", wrt="x")
    rand = CellSpec("binary_cross_entropy", "torch.binary_cross_entropy", "torch", "float32", "cpu", "special",
                    wrt="p", cotangent="random")
    assert fwd.id == "softplus[torch.softplus-cpu-float16-exhaustive]" and fwd.subject == "softplus"
    assert grad.id == "∂softplus[torch.softplus-cpu-float16-exhaustive]" and grad.is_grad
    assert rand.subject == "∂binary_cross_entropy/∂p"
    assert rand.id.endswith("-special-cotangent=random]")
    assert len({fwd.key, grad.key}) == 2 and fwd.key[-1] == ""
    assert fwd.group != grad.group
    assert "--grad p --cotangent random" in rand.repro()
    assert "--grad" not in fwd.repro()
    with pytest.raises(UsageError, match="unknown cotangent 'zeros'"):
        CellSpec("softplus", "torch.softplus", "torch", "float16", "cpu", "special", wrt="x", cotangent="zeros")


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_cotangents_are_exact_values_of_the_format_and_reproducible(fmt: str) -> None:
    f = get_format(fmt)
    a = cotangent_values("random", (1000,), f, key="k")
    assert a.dtype == f.dtype and np.array_equal(a, cotangent_values("random", (1000,), f, key="k"))
    assert not np.array_equal(a, cotangent_values("random", (1000,), f, key="other"))
    mags = np.abs(a.astype(np.float64))
    assert mags.min() >= 2.0**-8 and mags.max() < 2.0**8 and (a.astype(np.float64) < 0).any()
    special = cotangent_values("special", (26,), f, key="k").astype(np.float64)
    assert set(special.tolist()) == set(special_cotangents(f).tolist())
    assert np.all(np.isfinite(special))
    assert np.all(cotangent_values("ones", (3, 4), f, key="k").astype(np.float64) == 1.0)
    assert cotangent_values("special", (), f, key="k").shape == ()


def _suite(tmp_path: Path, case: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text("schema = 1\n[[case]]\n" + textwrap.dedent(case))
    return path


def test_suite_cases_plan_gradient_cells(tmp_path: Path) -> None:
    suite = load_suite(_suite(tmp_path, """
        oracle = "binary_cross_entropy_with_logits"
        impls = ["*"]
        dtypes = ["float32"]
        inputs = ["special"]
        mode = "both"
        wrt = ["x"]
        cotangents = ["ones", "special"]
    """))
    forward = [c for c in suite.cells if not c.is_grad]
    grads = [c for c in suite.cells if c.is_grad]
    assert {c.impl.split(".")[0] for c in forward} >= {"numpy", "torch"}
    # "*" leaves out the built-ins whose framework has no autodiff
    assert grads and all(not c.impl.startswith("numpy.") for c in grads)
    assert {(c.wrt, c.cotangent) for c in grads} == {("x", "ones"), ("x", "special")}
    only = load_suite(_suite(tmp_path, """
        oracle = "softplus"
        impls = ["torch.softplus", "numpy.logaddexp"]
        dtypes = ["float16"]
        inputs = ["special"]
        grad = true
    """))
    # a built-in named on its own keeps its cells (which will say it has no gradient)
    assert [(c.impl, c.wrt) for c in only.cells] == [("torch.softplus", "x"), ("numpy.logaddexp", "x")]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        pytest.param('grad = true\nmode = "forward"', 'grad = true contradicts mode = "forward"', id="contradiction"),
        pytest.param('grad = "yes"', "grad must be true or false", id="grad-type"),
        pytest.param('mode = "backward"', "unknown mode 'backward'", id="mode"),
        pytest.param('wrt = ["x"]', 'wrt, cotangents and grad_budget need mode = "grad" or "both"', id="wrt-without-grad"),
        pytest.param("grad_budget = { max_ulp = 1 }", "grad_budget need mode", id="grad-budget-without-grad"),
        pytest.param('grad = true\nwrt = ["z"]', "no real argument 'z'", id="wrt"),
        pytest.param('grad = true\ncotangents = "ones"', 'write cotangents = ["ones"]', id="cotangents-string"),
    ],
)
def test_suite_gradient_keys_are_checked(tmp_path: Path, extra: str, fragment: str) -> None:
    path = _suite(tmp_path, 'oracle = "softplus"\nimpls = ["*"]\ndtypes = ["float16"]\ninputs = ["special"]\n' + extra)
    with pytest.raises(UsageError) as exc:
        load_suite(path)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_grad_budget_applies_to_the_gradient_cells_only(tmp_path: Path) -> None:
    suite = load_suite(_suite(tmp_path, """
        oracle = "log"
        impls = ["torch.log"]
        dtypes = ["float16"]
        inputs = ["special"]
        mode = "both"
        budget = { max_ulp = 1 }
        grad_budget = { max_ulp = 2, allow = { missing_nan = true } }
    """))
    forward, grad = suite.cells
    assert forward.budget.max_ulp == 1 and dict(forward.budget.allow)["missing_nan"] == 0
    assert grad.budget.max_ulp == 2 and dict(grad.budget.allow)["missing_nan"] == float("inf")
    bad = _suite(tmp_path, 'oracle = "log"\nimpls = ["*"]\ndtypes = ["float16"]\ninputs = ["special"]\n'
                           'grad = true\ngrad_budget = { max_ulp = -1 }\n')
    with pytest.raises(UsageError, match=r"case 1 \(log\)\.grad_budget: max_ulp must be a non-negative number"):
        load_suite(bad)
