"""The command line (harness/cli/app.py, harness/cli/commands/): exit codes 0/1/2, one-line usage
errors, the --json results contract, and the registry listings.

Layer: end to end. Most calls go through ``harness.cli.app.main(argv)`` in-process (fast);
a few run the real console script in a subprocess to pin what a shell sees. Only numpy
implementations run, on small input sets.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.cli.app import main
from harness.cli.base import COMMANDS
from harness.frameworks.catalogue import IMPLS
from harness.judgement.summary import CATEGORIES
from oracles import all_oracles
from oracles.errors import FpharnessError, OracleError, UsageError

COMMON = ["-q", "--no-cache", "-j", "1"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Results default to ./results and the oracle cache to ~/.cache: keep both in tmp."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FPHARNESS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def impls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "impls.py"
    path.write_text(textwrap.dedent('''
        import numpy as np

        def exact_exp(x):
            """exp in float64, rounded once into x's format"""
            with np.errstate(all="ignore"):
                return np.exp(x.astype(np.float64)).astype(x.dtype)

        def naive_softplus(x):
            """log(1 + exp(x)) in x's own format: exp overflows early in float16"""
            with np.errstate(all="ignore"):
                return np.log(1 + np.exp(x))

        def boom(x):
            raise RuntimeError("kaboom")
    '''))
    return path


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def fpharness_script() -> str:
    script = Path(sys.executable).parent / "fpharness"
    found = str(script) if script.exists() else shutil.which("fpharness")
    if not found:
        pytest.skip("the fpharness console script is not installed (pip install -e .)")
    return found


# -- exit 0 and 1 ---------------------------------------------------------------------------


def test_builtin_within_budget_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "check", "numpy.exp", "--dtype", "float16", "--inputs", "special",
                            "--max-ulp", "1", *COMMON)
    assert (code, err) == (0, "")


def test_custom_exact_implementation_exits_0(capsys: pytest.CaptureFixture[str], impls: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code, _, err = run_main(capsys, "check", f"{impls}:exact_exp", "--oracle", "exp", "--framework", "numpy",
                            "--dtype", "float16", "--dtype", "bfloat16", "--inputs", "special", "--max-ulp", "1",
                            "--json", str(out), *COMMON)
    assert (code, err) == (0, "")
    cells = json.loads(out.read_text())["cells"]
    assert [(c["dtype"], c["status"]) for c in cells] == [("float16", "pass"), ("bfloat16", "pass")]
    assert all(c["custom"] and c["ulp"]["max"] <= 0.5 for c in cells)


def test_naive_softplus_fails_in_float16_exits_1(capsys: pytest.CaptureFixture[str], impls: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code, _, _ = run_main(capsys, "check", f"{impls}:naive_softplus", "--oracle", "softplus", "--framework", "numpy",
                          "--dtype", "float16", "--inputs", "special", "--json", str(out), *COMMON)
    assert code == 1
    (cell,) = json.loads(out.read_text())["cells"]
    assert cell["status"] == "fail" and "unexpected_inf" in cell["reason"]
    assert cell["incidence"]["unexpected_inf"] > 0
    # the repro line reproduces the cell
    assert cell["repro"].startswith(f"fpharness check {impls}:naive_softplus --oracle softplus --framework numpy")


def test_erroring_implementation_exits_1(capsys: pytest.CaptureFixture[str], impls: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code, _, err = run_main(capsys, "check", f"{impls}:boom", "--oracle", "exp", "--framework", "numpy",
                            "--dtype", "float16", "--inputs", "special", "--json", str(out), *COMMON)
    assert code == 1 and "Traceback" not in err
    (cell,) = json.loads(out.read_text())["cells"]
    assert (cell["status"], cell["reason"]) == ("error", "RuntimeError: kaboom")


def test_skipped_cells_do_not_fail_the_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code, _, _ = run_main(capsys, "check", "numpy.exp", "--dtype", "float16", "--device", "cpu", "--device", "cuda",
                          "--inputs", "special", "--json", str(out), *COMMON)
    assert code == 0
    statuses = [(c["device"], c["status"]) for c in json.loads(out.read_text())["cells"]]
    assert statuses == [("cpu", "pass"), ("cuda", "skipped")]


SUITE = """
    schema = 1
    name = "tiny"

    [[case]]
    oracle = "exp"
    impls = ["numpy.exp"]
    dtypes = ["float16", "bfloat16"]
    inputs = ["special", "random:300:5"]
    budget = {{ max_ulp = {max_ulp}, allow = {{ inherent_inf = true }} }}

    [[case]]
    oracle = "binary_cross_entropy"
    impls = ["numpy.binary_cross_entropy"]
    dtypes = ["float32"]
    inputs = ["random:200:9"]
    budget = {{ allow = {{ inherent_inf = true, unexpected_inf = true, unexpected_nan = true, missing_nan = true }} }}
"""


@pytest.mark.parametrize(("max_ulp", "code"), [pytest.param(1, 0, id="within-budget"),
                                                 pytest.param(0, 1, id="over-budget")])
def test_run_suite_exit_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path, max_ulp: int, code: int) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(textwrap.dedent(SUITE.format(max_ulp=max_ulp)))
    got, _, err = run_main(capsys, "run", str(suite), "--json", str(tmp_path / "r.json"), *COMMON)
    assert (got, err) == (code, "")


def test_run_writes_results_by_default_under_results(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(textwrap.dedent(SUITE.format(max_ulp=1)))
    assert run_main(capsys, "run", str(suite), *COMMON)[0] == 0
    assert json.loads((tmp_path / "results" / "tiny.json").read_text())["schema"] == 4


# -- the --json contract ----------------------------------------------------------------------

HEX16 = re.compile(r"^0x[0-9a-f]{4}$")
HEX32 = re.compile(r"^0x[0-9a-f]{8}$")


@pytest.fixture
def suite_results(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> dict[str, Any]:
    suite = tmp_path / "tiny.toml"
    suite.write_text(textwrap.dedent(SUITE.format(max_ulp=1)))
    out = tmp_path / "r.json"
    code, _, _ = run_main(capsys, "run", str(suite), "--json", str(out), *COMMON)
    assert code == 0
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_json_top_level_and_run(suite_results: dict[str, Any]) -> None:
    assert set(suite_results) >= {"schema", "run", "cells"} and suite_results["schema"] == 4
    run = suite_results["run"]
    for key in ("started", "finished", "host", "python", "frameworks", "devices", "git_commit", "seeds"):
        assert key in run, f"run.{key} is part of the contract"
    assert run["started"] <= run["finished"]
    assert run["frameworks"] == {"numpy": __import__("numpy").__version__}
    assert "cpu" in run["devices"]["numpy"]
    assert run["seeds"] == [5, 9]
    assert run["python"] == sys.version.split()[0]
    assert run["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", run["git_commit"])


def test_json_cells(suite_results: dict[str, Any]) -> None:
    cells = suite_results["cells"]
    assert len(cells) == 2 * 2 + 1
    for c in cells:
        for key in ("oracle", "impl", "framework", "device", "dtype", "out_dtype", "inputs", "params", "status",
                    "reason", "n", "correctly_rounded", "ulp", "incidence", "worst", "budget"):
            assert key in c, f"cells[].{key} is part of the contract"
        assert c["status"] == "pass" and c["device"] == "cpu" and c["framework"] == "numpy"
        assert c["out_dtype"] == c["dtype"]
        assert 0 < c["correctly_rounded"] <= c["n"]
        ulp = c["ulp"]
        for key in ("max", "mean", "p50", "p90", "p99", "p999", "histogram"):
            assert key in ulp, f"cells[].ulp.{key} is part of the contract"
        assert 0 <= ulp["p50"] <= ulp["p90"] <= ulp["p99"] <= ulp["p999"] <= ulp["max"]
        assert sum(b["count"] for b in ulp["histogram"]) == ulp["count"]
        assert set(c["incidence"]) == set(CATEGORIES) == {
            "unexpected_nan", "missing_nan", "unexpected_inf", "inherent_inf", "missing_inf", "lost_to_zero"}
        assert set(c["budget"]) == {"max_ulp", "allow"}
        assert c["worst"], "a judged cell lists its worst elements"
        n_args = 2 if c["oracle"] == "binary_cross_entropy" else 1
        hex_re = HEX32 if c["dtype"] == "float32" else HEX16
        for w in c["worst"]:
            for key in ("input", "got", "want", "exact", "ulp", "category"):
                assert key in w, f"cells[].worst[].{key} is part of the contract"
            assert isinstance(w["input"], list) and len(w["input"]) == n_args
            assert all(hex_re.match(h) for h in w["input"]), w["input"]
            assert hex_re.match(w["got"]) and hex_re.match(w["want"])
            assert w["category"] == "worst" and w["ulp"] <= ulp["max"]
    exp_cells = [c for c in cells if c["oracle"] == "exp"]
    assert [(c["dtype"], c["inputs"]) for c in exp_cells] == [
        ("float16", "special"), ("float16", "random:300:5"), ("bfloat16", "special"), ("bfloat16", "random:300:5")]
    assert exp_cells[1]["n"] == 300
    assert cells[-1]["params"] == {"reduction": "none"}


# -- exit 2: one line, no traceback ---------------------------------------------------------


@pytest.fixture
def bad_suite(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text('schema = 1\n[[case]]\noracle = "exp"\nimpls = ["numpy.exp"]\ndtypes = ["float16"]\ninputs = ["special"]\n'
                    'colour = "red"\n')
    return path


USAGE_ERRORS = [
    pytest.param(["check", "numpy.exp", "--oracle", "nope", "--dtype", "float16"],
                 ["unknown oracle 'nope'", "pick from: binary_cross_entropy"], id="unknown-oracle"),
    pytest.param(["check", "numpy.exp", "--dtype", "float8"],
                 ["unknown dtype 'float8'; pick from: bfloat16, float16, float32, float64"], id="unknown-dtype"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--param", "beta"],
                 ["--param 'beta' must be KEY=VALUE"], id="param-without-value"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--param", "beta=2"],
                 ["exp: unknown parameter 'beta'"], id="param-unknown"),
    pytest.param(["check", "numpy.logaddexp", "--dtype", "float16", "--param", "beta=soft"],
                 ["softplus: parameter beta='soft' must be a number"], id="param-not-a-number"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "random:x"],
                 ["input spec 'random:x': N must be an integer"], id="bad-input-spec"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "gauss:1"],
                 ["unknown input spec 'gauss:1'; expected one of: exhaustive"], id="unknown-input-kind"),
    pytest.param(["check", "numpy.exp", "--dtype", "float64", "--inputs", "exhaustive"],
                 ["streamed only for"], id="exhaustive-float64"),
    pytest.param(["check", "numpy.nope", "--dtype", "float16"],
                 ["unknown implementation 'numpy.nope'", "numpy.exp", "path/to/file.py:function"], id="unknown-impl"),
    pytest.param(["check", "numpy.exp", "--oracle", "log", "--dtype", "float16"],
                 ["numpy.exp implements exp, not log"], id="builtin-for-other-oracle"),
    pytest.param(["check", "impls.py:f", "--oracle", "exp", "--dtype", "float16"],
                 ["a custom implementation needs --framework numpy|torch|tensorflow|keras|jax (and --oracle NAME, unless only --consistency is checked)"], id="custom-without-framework"),
    pytest.param(["check", "nope.py:f", "--oracle", "exp", "--framework", "numpy", "--dtype", "float16"],
                 ["custom implementation file 'nope.py' does not exist"], id="custom-missing-file"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--device", "gpu"],
                 ["unknown device 'gpu'; pick from: cpu, cuda"], id="unknown-device"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--allow", "nan"],
                 ["unknown incidence category 'nan'"], id="unknown-allow-category"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--allow", "missing_inf=many"],
                 ["--allow 'missing_inf=many'"], id="allow-not-a-number"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--max-ulp", "-1"],
                 ["max_ulp must be a non-negative number"], id="negative-max-ulp"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--timeout", "0"],
                 ["--timeout must be a positive number"], id="zero-timeout"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "-j", "0"],
                 ["--jobs must be at least 1"], id="zero-jobs"),
    pytest.param(["run", "missing.toml"], ["suite file 'missing.toml' does not exist"], id="missing-suite"),
    pytest.param(["run", "BAD_SUITE"], ["unknown key 'colour'", "pick from: budget, consistency, consistency_budget, consistency_dtypes, consistency_inputs, cotangents, devices, dtypes, framework"],
                 id="suite-unknown-key"),
    pytest.param(["impls", "--oracle", "nope"], ["unknown oracle 'nope'"], id="impls-unknown-oracle"),
    # what a wrong name probably meant (issue 14, section 5)
    pytest.param(["run", "SOFTPLUS_SUITE"], ["unknown implementation 'numpy.softplus'",
                                             "numpy implements softplus as numpy.logaddexp", "(numpy.*; "],
                 id="suite-impl-named-after-the-oracle"),
    pytest.param(["check", "torch.epx", "--dtype", "float16"], ["; did you mean 'torch.exp'?"], id="impl-typo"),
    pytest.param(["check", "numpy.exp", "--dtype", "bfloat"], ["unknown dtype 'bfloat'; pick from: bfloat16, float16, float32, float64; did you mean 'bfloat16'?"],
                 id="dtype-typo"),
    pytest.param(["check", "numpy.exp", "--oracle", "expp", "--dtype", "float16"],
                 ["unknown oracle 'expp'; pick from: ", "; did you mean 'exp'?"], id="oracle-typo"),
]


@pytest.mark.parametrize(("argv", "fragments"), USAGE_ERRORS)
def test_usage_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], bad_suite: Path, argv: list[str], fragments: list[str]
) -> None:
    if "SOFTPLUS_SUITE" in argv:
        softplus = bad_suite.with_name("softplus.toml")
        softplus.write_text('schema = 1\n[[case]]\noracle = "softplus"\nimpls = ["numpy.softplus"]\n'
                            'dtypes = ["float16"]\ninputs = ["special"]\n')
        argv = [str(softplus) if a == "SOFTPLUS_SUITE" else a for a in argv]
    argv = [str(bad_suite) if a == "BAD_SUITE" else a for a in argv]
    extra = COMMON[1:] if argv[0] in ("check", "run") else []  # before the case's own options, which win
    code, out, err = run_main(capsys, argv[0], *extra, *argv[1:])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"one line on stderr, got {err!r}"
    assert lines[0].startswith("fpharness: error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]
    assert out == ""


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["check", "numpy.exp"], id="missing-dtype"),
        pytest.param(["check", "x.py:f", "--dtype", "float16", "--framework", "mxnet"], id="framework-choice"),
        pytest.param(["frobnicate"], id="unknown-command"),
        pytest.param([], id="no-command"),
    ],
)
def test_argparse_errors_exit_2_without_traceback(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("fpharness: error: ") and "Traceback" not in err


def test_console_script_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([fpharness_script(), "check", "numpy.exp", "--oracle", "nope", "--dtype", "float16"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("fpharness: error: unknown oracle 'nope'")
    assert proc.stdout == ""


def test_console_script_check_passes(tmp_path: Path) -> None:
    proc = subprocess.run([fpharness_script(), "check", "numpy.exp", "--dtype", "float16", "--inputs", "special",
                           "--max-ulp", "1", "--json", "r.json", *COMMON], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")
    run = json.loads((tmp_path / "r.json").read_text())["run"]
    assert "fpharness check numpy.exp" in run["command"]


def test_python_dash_m_harness_cli(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "oracles", "--json"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert {o["name"] for o in json.loads(proc.stdout)} >= {"exp", "softplus"}


# -- registries -------------------------------------------------------------------------------


def test_oracles_json_is_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "oracles", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [o["name"] for o in listed] == [o.name for o in all_oracles()]
    softplus = next(o for o in listed if o["name"] == "softplus")
    assert softplus["params"] == {"beta": 1.0} and softplus["args"] == ["x"] and softplus["kind"] == "elementwise"


def test_oracles_table_and_markdown_list_every_oracle(capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # rich folds long names in narrow terminals
    code, table, _ = run_main(capsys, "oracles")
    assert code == 0
    code, markdown, _ = run_main(capsys, "oracles", "--markdown")
    assert code == 0
    rows = [line for line in markdown.splitlines() if line.startswith("| `")]
    assert len(rows) == len(all_oracles())
    for o in all_oracles():
        assert o.name in table
        assert f"| `{o.name}` | {o.kind} | `{o.signature}` |" in markdown


def test_impls_json_lists_every_registered_id(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "impls", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [i["id"] for i in listed] == [i.id for i in IMPLS]
    oracle_names = {o.name for o in all_oracles()}
    for item in listed:
        assert item["oracle"] in oracle_names, f"{item['id']} names an oracle that does not exist"
        assert item["id"].split(".")[0] == item["framework"]


def test_impls_filters(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run_main(capsys, "impls", "--oracle", "softplus", "--json")
    assert code == 0 and {i["oracle"] for i in json.loads(out)} == {"softplus"}
    monkeypatch.setenv("COLUMNS", "400")
    # the table also reports whether each framework is importable; numpy alone keeps it fast
    code, table, _ = run_main(capsys, "impls", "--framework", "numpy")
    assert code == 0
    numpy_ids = [i.id for i in IMPLS if i.framework == "numpy"]
    assert numpy_ids and all(i in table for i in numpy_ids)
    assert "torch." not in table and "available" in table


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(UsageError("bad value 'x'; pick from: a, b"), id="usage"),
        pytest.param(OracleError("softplus: could not decide the rounding at 0x3c00"), id="oracle"),
    ],
)
def test_every_fpharness_error_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, error: FpharnessError
) -> None:
    """The CLI boundary catches the root error type, whatever kind is below it."""

    def handler(args: Any) -> int:
        raise error

    monkeypatch.setitem(COMMANDS._items, "oracles", replace(COMMANDS.get("oracles"), handler=handler))
    assert main(["oracles"]) == 2
    err = capsys.readouterr().err
    assert err == f"fpharness: error: {error}\n"
