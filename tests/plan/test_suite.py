"""Suite files (harness/plan/suite.py): expansion into cells and one-line errors for every
mistake, and the shipped suites/frameworks.toml.

Layer: configuration. Nothing is run here; loading a suite imports no framework.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

from harness.execution.runner import Runner
from harness.frameworks.catalogue import get_impl
from harness.plan.cells import Budget
from harness.plan.suite import Suite, load_suite
from oracles import UsageError, get_oracle

REPO = Path(__file__).resolve().parents[2]
FRAMEWORKS_TOML = REPO / "suites" / "frameworks.toml"


def write(tmp_path: Path, body: str, name: str = "suite.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


VALID = """
    schema = 1
    name = "mine"

    [[case]]
    oracle = "softplus"
    impls = ["numpy.logaddexp", "impls.py:naive"]
    framework = "numpy"
    dtypes = ["float16", "bf16"]
    devices = ["cpu", "cuda"]
    inputs = ["special", "random:100"]
    params = { beta = 2 }
    timeout = 5
    [case.budget]
    max_ulp = { float16 = 1, bfloat16 = 2 }
    allow = { inherent_inf = true, lost_to_zero = 3 }
"""


def test_valid_suite_expands_to_the_right_cells(tmp_path: Path) -> None:
    (tmp_path / "impls.py").write_text("def naive(x, beta=1.0):\n    return x\n")
    suite = load_suite(write(tmp_path, VALID))
    assert suite.name == "mine" and suite.path.endswith("suite.toml")
    cells = suite.cells
    # impls x dtypes x devices x inputs, nested in that order
    assert len(cells) == 2 * 2 * 2 * 2
    impl_path = str((tmp_path / "impls.py").resolve()) + ":naive"  # relative to the suite file
    assert [(c.impl, c.framework, c.custom) for c in cells[::8]] == [
        ("numpy.logaddexp", "numpy", False), (impl_path, "numpy", True),
    ]
    assert [(c.dtype, c.device, c.inputs) for c in cells[:8]] == [
        ("float16", "cpu", "special"), ("float16", "cpu", "random:100:0"),
        ("float16", "cuda", "special"), ("float16", "cuda", "random:100:0"),
        ("bfloat16", "cpu", "special"), ("bfloat16", "cpu", "random:100:0"),
        ("bfloat16", "cuda", "special"), ("bfloat16", "cuda", "random:100:0"),
    ]
    for c in cells:
        assert (c.oracle, c.timeout, c.params) == ("softplus", 5.0, (("beta", 2.0),))
        assert c.budget.max_ulp == {"float16": 1.0, "bfloat16": 2.0}[c.dtype]
        allow = dict(c.budget.allow)
        assert allow["inherent_inf"] == float("inf") and allow["lost_to_zero"] == 3.0
        assert allow["unexpected_nan"] == 0  # the defaults stay
    assert cells[0].id == "softplus[numpy.logaddexp-cpu-float16-special-beta=2.0]"


def test_star_expands_to_every_builtin_of_the_oracle(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, """
        schema = 1
        [[case]]
        oracle = "exp"
        impls = ["*"]
        dtypes = ["float32"]
        inputs = ["special"]
    """))
    from harness.frameworks.catalogue import impls_for

    expected = sorted(i.id for i in impls_for("exp"))
    assert expected, "exp has built-ins"
    assert sorted(c.impl for c in suite.cells) == expected
    assert all(c.device == "cpu" and not c.custom and c.budget == Budget() for c in suite.cells)
    assert {c.framework for c in suite.cells} == {i.split(".")[0] for i in expected}


def test_suite_imports_register_user_oracles(tmp_path: Path) -> None:
    (tmp_path / "my_oracles.py").write_text(textwrap.dedent("""
        from oracles import oracle

        @oracle("fpharness_test_suite_double", replace=True)
        def double(x):
            return 2 * x

        def impl(x):
            return x + x
    """))
    suite = load_suite(write(tmp_path, """
        schema = 1
        imports = ["my_oracles.py"]
        [[case]]
        oracle = "fpharness_test_suite_double"
        impls = ["my_oracles.py:impl"]
        framework = "numpy"
        dtypes = ["float16"]
        inputs = ["special"]
    """))
    assert [c.oracle for c in suite.cells] == ["fpharness_test_suite_double"]


CASE = """
[[case]]
oracle = "exp"
impls = ["numpy.exp"]
dtypes = ["float16"]
inputs = ["special"]
"""


def case_with(line: str) -> str:
    return CASE + line + "\n"


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        pytest.param("colour = 1\n" + CASE, ["unknown key 'colour'", "pick from: case, description, executor, imports, name, scenario, schema"],
                     id="unknown-top-key"),
        pytest.param(case_with("dtype = 'float16'"),
                     ["case 1: unknown key 'dtype'", "pick from: budget, consistency, consistency_budget, consistency_dtypes, consistency_inputs, cotangents, devices, dtypes, framework, grad, grad_budget, impls"],
                     id="unknown-case-key"),
        pytest.param(case_with("budget = { max_ulps = 1 }"),
                     ["case 1 (exp).budget: unknown key 'max_ulps'", "pick from: allow, atol, max_bits, max_ulp, rtol, tolerance"],
                     id="unknown-budget-key"),
        pytest.param(CASE.replace('"exp"', '"expp"'), ["unknown oracle 'expp'", "pick from: ", "exp, expm1"],
                     id="unknown-oracle"),
        pytest.param(CASE.replace('["float16"]', '["float8"]'),
                     ["unknown dtype 'float8'", "pick from: bfloat16, float16, float32, float64"],
                     id="unknown-dtype"),
        pytest.param(case_with("devices = ['cpu', 'tpu']"), ["unknown device 'tpu'", "pick from: cpu, cuda"],
                     id="unknown-device"),
        pytest.param(CASE.replace('"numpy.exp"', '"numpy.expo"'),
                     ["unknown implementation 'numpy.expo'", "pick from: ", "numpy.exp,"],
                     id="unknown-impl"),
        pytest.param(CASE.replace('"numpy.exp"', '"numpy.log"'), ["numpy.log implements log, not exp"],
                     id="impl-of-other-oracle"),
        pytest.param(case_with("budget = { allow = { nan = true } }"),
                     ["unknown incidence category 'nan'", "pick from: inherent_inf, lost_to_zero, missing_inf"],
                     id="unknown-budget-category"),
        pytest.param(case_with("budget = { max_ulp = { float8 = 1 } }"),
                     ["budget.max_ulp: unknown dtype 'float8'", "pick from: bfloat16, float16"],
                     id="unknown-max-ulp-dtype"),
        pytest.param(case_with("budget = { max_ulp = -1 }"), ["max_ulp must be a non-negative number, got -1"],
                     id="negative-max-ulp"),
        pytest.param(case_with("budget = { allow = { inherent_inf = 'yes' } }"),
                     ["allow.inherent_inf must be true, false, a count or a fraction"], id="bad-allow-value"),
        pytest.param(case_with("budget = { allow = true }"), ["budget.allow must be a table"], id="allow-not-table"),
        pytest.param(case_with("framework = 'mxnet'"), ["unknown framework 'mxnet'", "pick from: jax, keras, numpy"],
                     id="unknown-framework"),
        pytest.param(CASE.replace('"numpy.exp"', '"impls.py:f"'),
                     ["custom implementation 'impls.py:f' needs framework = one of numpy"], id="custom-without-framework"),
        pytest.param(case_with("params = { beta = 2 }"), ["exp: unknown parameter 'beta'"], id="unknown-param"),
        pytest.param(case_with("params = 3"), ["params must be a table"], id="params-not-table"),
        pytest.param(case_with("timeout = 0"), ["timeout must be a positive number"], id="zero-timeout"),
        pytest.param(CASE.replace('["special"]', '["random:x"]'), ["input spec 'random:x'"], id="bad-input-spec"),
        pytest.param(CASE.replace('["special"]', '["gauss"]'), ["unknown input spec 'gauss'"], id="unknown-input-kind"),
        pytest.param(CASE.replace('dtypes = ["float16"]', 'dtypes = []'), ["dtypes must be a non-empty list"],
                     id="empty-dtypes"),
        pytest.param(CASE.replace('impls = ["numpy.exp"]\n', ""), ["case 1: missing required key 'impls'"],
                     id="missing-impls"),
        pytest.param("schema = 2\n" + CASE, ["suite schema 2 is not supported", "reads schema 1"], id="future-schema"),
        pytest.param("name = 'x'\n", ["no [[case]] or [[scenario]] tables"], id="no-cases"),
        pytest.param("[[case]\n", ["is not valid TOML"], id="invalid-toml"),
        pytest.param("imports = ['nope.py']\n" + CASE, ["suite import 'nope.py'", "does not exist"],
                     id="missing-import-file"),
        pytest.param("imports = ['fpharness_no_such_module']\n" + CASE, ["suite import 'fpharness_no_such_module'"],
                     id="missing-import-module"),
    ],
)
def test_suite_errors_are_one_line_and_name_the_fix(tmp_path: Path, body: str, fragments: list[str]) -> None:
    if "schema" not in body:  # a suite needs one (a missing schema is in test_hostile_inputs)
        body = "schema = 1\n" + body
    with pytest.raises(UsageError) as exc:
        load_suite(write(tmp_path, body))
    text = str(exc.value)
    assert "\n" not in text, f"one line: {text!r}"
    for fragment in fragments:
        assert fragment in text


def test_missing_suite_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"suite file '.*nope\.toml' does not exist"):
        load_suite(tmp_path / "nope.toml")


# -- the shipped suite ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def frameworks_suite() -> Suite:
    if importlib.util.find_spec("harness.frameworks.builtins") is None:
        pytest.skip("harness/builtins has not landed: suites/frameworks.toml names built-ins that do not exist yet")
    return load_suite(FRAMEWORKS_TOML)


def test_frameworks_suite_loads_and_every_impl_exists(frameworks_suite: Suite) -> None:
    cells = frameworks_suite.cells
    assert frameworks_suite.name == "frameworks" and cells
    for c in cells:
        assert not c.custom
        impl = get_impl(c.impl)
        assert impl.oracle == c.oracle and impl.framework == c.framework
        get_oracle(c.oracle)
    # every case contributes cells: an oracle whose "*" matched nothing would vanish silently
    import tomllib

    cases = tomllib.loads(FRAMEWORKS_TOML.read_text())["case"]
    assert {c["oracle"] for c in cases} == {c.oracle for c in cells}
    assert len({c.key for c in cells}) == len(cells), "no cell is listed twice"


def test_frameworks_suite_passes_the_runners_validation(frameworks_suite: Suite) -> None:
    Runner().validate(frameworks_suite.cells)  # would raise a UsageError for a bad plan
