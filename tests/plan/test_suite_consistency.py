"""Suite files' consistency keys (harness/plan/suite.py): ``consistency``,
``consistency_inputs``, ``consistency_budget`` and cases without an oracle expand into the
right consistency cells, and every mistake is one line that names the fix.

Layer: configuration. Nothing is run here; loading a suite imports no framework.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from harness.frameworks.catalogue import IMPLS
from harness.plan.suite import load_suite
from oracles import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
FRAMEWORKS_TOML = REPO / "suites" / "frameworks.toml"
EXP_CHECKS = ["position", "layout", "repeat", "monotone", "bounds"]


def write(tmp_path: Path, case: str, name: str = "suite.toml") -> Path:
    """A schema-1 suite of one ``[[case]]`` with the given body."""
    path = tmp_path / name
    path.write_text("schema = 1\n\n[[case]]\n" + textwrap.dedent(case).lstrip(), encoding="utf-8")
    return path


EXP = """
    oracle = "exp"
    impls = ["numpy.exp", "torch.exp"]
    dtypes = ["float32", "float16"]
    devices = ["cpu", "cuda"]
    inputs = ["special", "random:300"]
"""


def test_consistency_true_adds_a_cell_per_impl_dtype_device_check_and_input(tmp_path: Path) -> None:
    cells = load_suite(write(tmp_path, EXP + "consistency = true\n")).cells
    accuracy = [c for c in cells if not c.is_consistency]
    consistency = [c for c in cells if c.is_consistency]
    assert len(accuracy) == 2 * 2 * 2 * 2 and all(c.pass_ == "forward" for c in accuracy)
    assert cells[:len(accuracy)] == tuple(accuracy)  # accuracy first, then consistency
    # the checks that apply to exp; device (CPU against CUDA) only on the cuda cells
    on = {dev: [c.check for c in consistency if (c.impl, c.dtype, c.device, c.inputs)
                == ("numpy.exp", "float32", dev, "special")] for dev in ("cpu", "cuda")}
    assert on == {"cpu": EXP_CHECKS, "cuda": ["position", "layout", "repeat", "device", "monotone", "bounds"]}
    assert len(consistency) == 2 * 2 * (5 + 6) * 2  # impls x dtypes x (cpu + cuda checks) x inputs
    combos = {(c.impl, c.dtype, c.device, c.inputs, c.check) for c in consistency}
    assert len(combos) == len(consistency)
    assert {c.inputs for c in consistency} == {"special", "random:300:0"}
    for c in consistency:
        assert c.pass_ == "consistency" and c.oracle == "exp" and not c.custom and c.wrt == ""
        assert c.budget.max_ulp is None  # each check's own tolerance
        assert c.id.endswith(f"-consistency={c.check}]")
    assert consistency[0].id == "exp[numpy.exp-cpu-float32-special-consistency=position]"
    assert consistency[0].repro().endswith("--consistency position")


def test_a_list_restricts_the_checks(tmp_path: Path) -> None:
    cells = load_suite(write(tmp_path, EXP + 'consistency = ["position", "monotone"]\n')).cells
    assert {c.check for c in cells if c.is_consistency} == {"position", "monotone"}
    assert len([c for c in cells if c.is_consistency]) == 2 * 2 * 2 * 2 * 2


def test_device_in_a_list_is_planned_on_the_cuda_cells(tmp_path: Path) -> None:
    cells = load_suite(write(tmp_path, EXP + 'consistency = ["device"]\n')).cells
    assert {(c.check, c.device) for c in cells if c.is_consistency} == {("device", "cuda")}


def test_consistency_inputs_replace_the_inputs_of_the_consistency_cells_only(tmp_path: Path) -> None:
    cells = load_suite(write(tmp_path, EXP + 'consistency = true\nconsistency_inputs = ["random:200:7"]\n')).cells
    assert {c.inputs for c in cells if not c.is_consistency} == {"special", "random:300:0"}
    assert {c.inputs for c in cells if c.is_consistency} == {"random:200:7"}


def test_consistency_dtypes_pick_the_dtypes_of_the_consistency_cells_only(tmp_path: Path) -> None:
    cells = load_suite(write(tmp_path, EXP + 'consistency = true\nconsistency_dtypes = ["float16"]\n')).cells
    assert {c.dtype for c in cells if not c.is_consistency} == {"float16", "float32"}
    assert {c.dtype for c in cells if c.is_consistency} == {"float16"}


def test_consistency_budget_sets_the_cells_max_ulp(tmp_path: Path) -> None:
    cells = load_suite(write(tmp_path, EXP + """
        consistency = true
        consistency_budget = { max_ulp = 2 }
        [case.budget]
        max_ulp = 4
    """)).cells
    assert {c.budget.max_ulp for c in cells if c.is_consistency} == {2.0}
    assert {c.budget.max_ulp for c in cells if not c.is_consistency} == {4.0}  # budget stays the accuracy's


def test_consistency_budget_per_dtype(tmp_path: Path) -> None:
    cells = load_suite(write(tmp_path, EXP + """
        consistency = ["position"]
        consistency_budget = { max_ulp = { float32 = 2, float16 = 0 } }
    """)).cells
    assert {(c.dtype, c.budget.max_ulp) for c in cells if c.is_consistency} == {("float32", 2.0), ("float16", 0.0)}


def test_consistency_false_adds_nothing(tmp_path: Path) -> None:
    cells = load_suite(write(tmp_path, EXP + "consistency = false\n")).cells
    assert cells and not any(c.is_consistency for c in cells)


def test_a_loss_is_checked_per_element(tmp_path: Path) -> None:
    """A mean has no position: a loss's consistency cells take reduction = "none"."""
    cells = load_suite(write(tmp_path, """
        oracle = "binary_cross_entropy"
        impls = ["torch.binary_cross_entropy"]
        dtypes = ["float32"]
        inputs = ["random:300"]
        params = { reduction = "mean" }
        consistency = true
    """)).cells
    assert [c.check for c in cells if c.is_consistency] == ["position", "layout", "repeat", "symmetry", "bounds"]
    assert {dict(c.params)["reduction"] for c in cells if c.is_consistency} == {"none"}
    assert {dict(c.params)["reduction"] for c in cells if not c.is_consistency} == {"mean"}


def test_a_case_without_an_oracle_checks_a_custom_function(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("def f(x):\n    return x\n")
    cells = load_suite(write(tmp_path, """
        impls = ["mine.py:f"]
        framework = "numpy"
        dtypes = ["float32"]
        devices = ["cpu", "cuda"]
        inputs = ["random:300"]
        consistency = true
    """)).cells
    assert all(c.is_consistency and c.oracle == "" and c.custom and c.framework == "numpy" for c in cells)
    assert {c.impl for c in cells} == {f"{(tmp_path / 'mine.py').resolve()}:f"}  # relative to the suite
    # no properties without an oracle: only the checks of itself
    assert [(c.device, c.check) for c in cells] == [
        ("cpu", "position"), ("cpu", "layout"), ("cpu", "repeat"),
        ("cuda", "position"), ("cuda", "layout"), ("cuda", "repeat"), ("cuda", "device")]
    assert cells[0].id.startswith("f[") and cells[0].id.endswith("-cpu-float32-random:300:0-consistency=position]")


BASE = """
    oracle = "exp"
    impls = ["numpy.exp"]
    dtypes = ["float32"]
    inputs = ["special"]
"""
NO_ORACLE = """
    impls = ["mine.py:f"]
    framework = "numpy"
    dtypes = ["float32"]
    inputs = ["special"]
"""


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        pytest.param(BASE + 'consistency = "yes"\n',
                     ['consistency must be true, false or a list of checks, got "yes"', "e.g. consistency = true"],
                     id="string"),
        pytest.param(BASE + "consistency = 0\n", ["consistency must be true, false or a list of checks, got 0"],
                     id="zero"),
        pytest.param(BASE + "consistency = []\n", ["consistency must be a non-empty list", 'e.g. consistency = ['],
                     id="empty-list"),
        pytest.param(BASE + 'consistency = ["positon"]\n',
                     ["unknown consistency check 'positon'", "did you mean 'position'"], id="unknown-check"),
        pytest.param(BASE + 'consistency = ["symmetry"]\n',
                     ["'symmetry' does not apply: exp declares no symmetry", "checks for exp: position"],
                     id="not-declared"),
        pytest.param(BASE + 'consistency = ["device"]\n',
                     ["'device' compares CPU with CUDA", 'add "cuda" to devices'], id="device-without-cuda"),
        pytest.param(BASE + "consistency = true\nconsistency_budget = { max_bits = 2 }\n",
                     ["consistency_budget: unknown key 'max_bits'", "pick from: max_ulp"], id="budget-key"),
        pytest.param(BASE + "consistency = true\nconsistency_budget = 2\n",
                     ["consistency_budget must be a table such as { max_ulp = 1 }"], id="budget-not-a-table"),
        pytest.param(BASE + "consistency = true\nconsistency_budget = { max_ulp = -1 }\n",
                     ["consistency_budget: max_ulp must be a non-negative number"], id="budget-negative"),
        pytest.param(BASE + 'consistency_inputs = ["special"]\n',
                     ["consistency_inputs, consistency_dtypes and consistency_budget need consistency = true"],
                     id="inputs-without"),
        pytest.param(BASE + "consistency_budget = { max_ulp = 1 }\n",
                     ["consistency_inputs, consistency_dtypes and consistency_budget need consistency = true"],
                     id="budget-without"),
        pytest.param(BASE + 'consistency_dtypes = ["float32"]\n',
                     ["consistency_inputs, consistency_dtypes and consistency_budget need consistency = true"],
                     id="dtypes-without"),
        pytest.param(BASE + 'consistency = true\nconsistency_dtypes = ["float64"]\n',
                     ["consistency_dtypes names float64, which is not in dtypes", "picks some of them"],
                     id="dtypes-not-in-dtypes"),
        pytest.param(BASE + 'consistency = true\nconsistency_dtypes = ["float33"]\n', ["float33"], id="dtypes-unknown"),
        pytest.param(BASE + 'consistency = true\nconsistency_inputs = "special"\n',
                     ['write consistency_inputs = ["special"]'], id="inputs-bare-string"),
        pytest.param(NO_ORACLE, ["missing required key 'oracle'", "add consistency = true"], id="no-oracle"),
        pytest.param(NO_ORACLE + "consistency = false\n", ["missing required key 'oracle'"], id="no-oracle-false"),
        pytest.param(NO_ORACLE.replace('"mine.py:f"', '"numpy.exp"') + "consistency = true\n",
                     ["a case without an oracle takes custom implementations", "got 'numpy.exp'"],
                     id="no-oracle-builtin"),
        pytest.param(NO_ORACLE.replace('"mine.py:f"', '"*"') + "consistency = true\n",
                     ["a case without an oracle takes custom implementations", "got '*'"], id="no-oracle-star"),
        pytest.param(NO_ORACLE.replace('framework = "numpy"\n', "") + "consistency = true\n",
                     ["custom implementation 'mine.py:f' needs framework = one of numpy"], id="no-framework"),
        pytest.param(BASE.replace('"numpy.exp"', '"mine.py:f"') + "consistency = true\n",
                     ["custom implementation 'mine.py:f' needs framework = one of numpy"],
                     id="custom-no-framework"),
        pytest.param(NO_ORACLE.replace('"numpy"', '"nump"') + "consistency = true\n",
                     ["unknown framework 'nump'", "did you mean 'numpy'"], id="no-oracle-bad-framework"),
        pytest.param(NO_ORACLE + 'consistency = ["monotone"]\n',
                     ["an operation without an oracle declares no properties"], id="no-oracle-property"),
        pytest.param(NO_ORACLE + 'consistency = true\ntimeout = "x"\n',
                     ['timeout must be a positive number of seconds, got "x"'], id="no-oracle-timeout"),
        pytest.param(NO_ORACLE + 'consistency = true\nmode = "both"\n',
                     ["a case without an oracle has only consistency checks, which take no mode", "drop mode"],
                     id="no-oracle-mode"),
        pytest.param(NO_ORACLE + "consistency = true\nparams = { beta = 2 }\n",
                     ["which take no params", "drop params"], id="no-oracle-params"),
        pytest.param(NO_ORACLE + "consistency = true\n[case.budget]\nmax_ulp = 1\n",
                     ["which take no budget", "drop budget"], id="no-oracle-budget"),
        pytest.param(NO_ORACLE + 'consistency = true\ndevices = ["gpu"]\n',
                     ["unknown device 'gpu'"], id="no-oracle-device"),
    ],
)
def test_consistency_mistakes_are_one_line(tmp_path: Path, body: str, fragments: list[str]) -> None:
    (tmp_path / "mine.py").write_text("def f(x):\n    return x\n")
    with pytest.raises(UsageError) as exc:
        load_suite(write(tmp_path, body))
    message = str(exc.value)
    assert "\n" not in message and message.startswith("suite.toml case 1"), message
    assert message.count("suite.toml case 1") == 1, message  # where, said once
    for fragment in fragments:
        assert fragment in message, message


# -- the shipped frameworks suite ---------------------------------------------------------------


def test_frameworks_suite_loads_with_its_consistency_cells() -> None:
    suite = load_suite(FRAMEWORKS_TOML)
    assert suite.cells
    cases = tomllib.loads(FRAMEWORKS_TOML.read_text(encoding="utf-8"))["case"]
    if not any("consistency" in case for case in cases):
        pytest.skip("suites/frameworks.toml has no consistency keys yet")
    consistency = [c for c in suite.cells if c.is_consistency]
    assert consistency and all(not c.custom for c in consistency)
    positioned = {c.impl for c in consistency if c.check == "position"}
    builtins = {i.id for i in IMPLS}
    assert builtins - positioned == set(), "every built-in implementation has a position cell"
    # two cases of one oracle that both ask for consistency (say reduction = "mean" and
    # "none": both check reduction = "none") would list their consistency cells twice
    keys = [c.key for c in consistency]
    assert len(set(keys)) == len(keys), "no consistency cell is listed twice"
