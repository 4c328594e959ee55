"""scripts/gpu_check.sh and its Python halves (scripts/gpu_deps.py, harness/cli/gpu_check.py),
on a machine without a GPU: what it says and does where there is none, how it refuses what
it cannot use, that suites/gpu.toml plans every torch and jax built-in on cuda, and how the
summary tells a harness failure from a precision finding.

Layer: end to end. The script runs in a real bash subprocess with this test's python as
FPHARNESS_GPU_PYTHON (a CPU build of torch); the GPU detection is made deterministic with
FPHARNESS_GPU=0 or a fake ``nvidia-smi`` first on PATH. The whole GPU path (a venv, an
install, a run with every cuda cell skipped) is one ``slow`` test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from consistency_crafted import consistency_cell
from crafted import cell, run

from harness.cli.gpu_check import judge, markdown, read_junit, read_timings
from harness.frameworks.catalogue import IMPLS
from harness.judgement.consistency import Consistency
from harness.plan.cells import CellResult
from harness.plan.suite import load_suite
from harness.record.results import Results
from oracles import get_oracle

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
GPU_SUITE = ROOT / "suites" / "gpu.toml"
sys.path.insert(0, str(ROOT / "scripts"))
import gpu_deps  # noqa: E402 - a script, imported from its folder

H100 = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0123)"


def _script(tmp_path: Path, *args: str, env: Mapping[str, str] | None = None,
            nvidia_smi: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the script from ``tmp_path`` with this python; ``nvidia_smi`` is the body of a fake
    ``nvidia-smi`` put first on PATH."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FPHARNESS_GPU")}
    environ.update({"FPHARNESS_GPU_PYTHON": sys.executable, "FPHARNESS_GPU_VENV": str(tmp_path / "venv")})
    if nvidia_smi is not None:
        fake = tmp_path / "bin"
        fake.mkdir(exist_ok=True)
        (fake / "nvidia-smi").write_text(f"#!/bin/sh\n{nvidia_smi}\n")
        (fake / "nvidia-smi").chmod(0o755)
        environ["PATH"] = f"{fake}{os.pathsep}{environ['PATH']}"
    environ.update(env or {})
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, env=environ, capture_output=True, text=True,
                          timeout=600, check=False)


def _made_nothing(tmp_path: Path) -> None:
    __tracebackhide__ = True
    assert not (tmp_path / "out").exists(), "the output folder was made"
    assert not (tmp_path / "venv").exists(), "a venv was made"


# -- the suite ---------------------------------------------------------------------------------------


def test_the_gpu_suite_plans_every_torch_and_jax_builtin_on_cuda() -> None:
    cells = load_suite(GPU_SUITE).cells
    assert {c.device for c in cells} == {"cuda"}
    builtins = [i for i in IMPLS if i.framework in ("torch", "jax")]
    dtypes = ("float16", "bfloat16", "float32")
    planned = {(c.impl, c.dtype, c.pass_, c.check) for c in cells}
    for impl in builtins:
        for dtype in dtypes:
            for judged in (("forward", ""), ("grad", ""), ("consistency", "device")):
                assert (impl.id, dtype, *judged) in planned, (impl.id, dtype, judged)
    assert {c.impl for c in cells} == {i.id for i in builtins}
    for c in cells:  # every 16-bit pattern for the 16-bit formats, the special values for float32
        inputs = {d.inputs for d in cells if (d.impl, d.dtype) == (c.impl, c.dtype)}
        assert ("exhaustive" in inputs) == (c.dtype != "float32"), (c.impl, c.dtype, inputs)
        if c.dtype == "float32" or get_oracle(c.oracle).kind != "elementwise" or len(get_oracle(c.oracle).args) > 1:
            assert "special" in inputs, (c.impl, c.dtype, inputs)


# -- without a GPU: one line, exit 0, after validating the suite -----------------------------------------


def test_without_a_gpu_it_validates_the_suite_and_says_so_in_one_line(tmp_path: Path) -> None:
    done = _script(tmp_path, "--out", "out", env={"FPHARNESS_GPU": "0"})
    assert (done.returncode, done.stderr) == (0, "")
    n = len(load_suite(GPU_SUITE).cells)
    assert done.stdout.count("\n") == 1
    assert done.stdout.startswith(f"gpu_check: no NVIDIA GPU here (FPHARNESS_GPU=0); suite gpu (suites/gpu.toml):"
                                  f" {n} cells, valid (")
    assert done.stdout.rstrip().endswith("nothing was run or written")
    _made_nothing(tmp_path)


def test_a_driver_that_does_not_answer_is_no_gpu(tmp_path: Path) -> None:
    done = _script(tmp_path, "--out", "out",
                   nvidia_smi="echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.';"
                              " exit 9")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("gpu_check: no NVIDIA GPU here (nvidia-smi failed: NVIDIA-SMI has failed because")
    assert done.stdout.count("\n") == 1
    _made_nothing(tmp_path)


def test_a_gpu_with_a_cpu_only_torch_is_refused_in_one_line(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.version.cuda is not None:
        pytest.skip("this python's torch is a CUDA build")
    done = _script(tmp_path, "--out", "out", nvidia_smi=f"echo '{H100}'")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"gpu_check: a GPU is here (GPU 0: NVIDIA H100 80GB HBM3), but torch {torch.__version__} in"
                           f" {sys.executable} is a CPU-only build (torch.version.cuda is None); set"
                           " FPHARNESS_GPU_PYTHON to a python whose torch has CUDA\n")
    _made_nothing(tmp_path)


def test_without_a_gpu_a_python_that_cannot_validate_says_what_it_lacks(tmp_path: Path) -> None:
    bare = tmp_path / "bare-python"  # this python without its site-packages: no numpy, no ml_dtypes
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    bare.chmod(0o755)
    done = _script(tmp_path, "--out", "out", env={"FPHARNESS_GPU": "0", "FPHARNESS_GPU_PYTHON": str(bare)})
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"gpu_check: no NVIDIA GPU here (FPHARNESS_GPU=0), and {bare} cannot validate"
                                  " suites/gpu.toml: it lacks numpy>=1.26 mpmath>=1.3 ml_dtypes>=0.4")
    _made_nothing(tmp_path)


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        pytest.param(["--suite", "broken.toml"], {"FPHARNESS_GPU": "0"},
                     ["broken.toml does not validate", "unknown key 'dtype'", "did you mean 'dtypes'"], id="broken-suite"),
        pytest.param(["--jobs", "0"], {}, ["--jobs '0' must be a whole number", "at least 1"], id="jobs-0"),
        pytest.param(["--jobs=two"], {}, ["--jobs 'two'"], id="jobs-word"),
        pytest.param(["--out"], {}, ["--out needs a value", "e.g. --out results/gpu"], id="out-without-value"),
        pytest.param(["--suite", "--dry-run"], {}, ["--suite needs a value", "e.g. --suite suites/gpu.toml"],
                     id="suite-followed-by-an-option"),
        pytest.param(["--skip-exhaustiv"], {}, ["unknown option '--skip-exhaustiv'", "--skip-exhaustive"],
                     id="unknown-option"),
        pytest.param([], {"FPHARNESS_GPU": "maybe"}, ["FPHARNESS_GPU='maybe'", "auto (the default), 0", "or 1"],
                     id="bad-detection-override"),
        pytest.param([], {"FPHARNESS_GPU_PYTHON": "/nonexistent/python3"},
                     ["no python '/nonexistent/python3'", "FPHARNESS_GPU_PYTHON"], id="no-such-python"),
    ],
)
def test_what_it_cannot_use_is_one_line_and_exit_2(tmp_path: Path, args: list[str], env: dict[str, str],
                                                   words: list[str]) -> None:
    (tmp_path / "broken.toml").write_text(
        'schema = 1\n[[case]]\noracle = "exp"\nimpls = ["torch.exp"]\ndtypes = ["float16"]\ninputs = ["special"]\n'
        'dtype = ["float32"]\n')
    done = _script(tmp_path, "--out", "out", *args, env={"FPHARNESS_GPU": "0", **env})
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("gpu_check: ")
    for word in words:
        assert word in done.stderr
    _made_nothing(tmp_path)


def test_help_names_every_option_and_variable(tmp_path: Path) -> None:
    done = _script(tmp_path, "--help")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("usage: bash scripts/gpu_check.sh")
    for word in ("--out DIR", "--suite FILE", "--jobs N", "--skip-exhaustive", "--skip-tests", "--dry-run",
                 "FPHARNESS_GPU_PYTHON", "FPHARNESS_GPU_VENV", "FPHARNESS_GPU_OUT", "FPHARNESS_GPU ",
                 "--inputs exhaustive", "summary.md"):
        assert word in done.stdout, word


def test_dry_run_prints_the_plan_and_the_phases_and_makes_nothing(tmp_path: Path) -> None:
    done = _script(tmp_path, "--dry-run", "--out", "out", "--jobs", "3", env={"FPHARNESS_GPU": "0"})
    assert (done.returncode, done.stderr) == (0, "")
    lines = done.stdout.splitlines()
    assert lines[0] == "gpu_check: no NVIDIA GPU here (FPHARNESS_GPU=0)"
    assert lines[1].startswith("dry run: suite gpu (suites/gpu.toml): ")
    assert f"  would write  {tmp_path}/out/gpu.json, {tmp_path}/out/gpu.html" in lines
    assert "dry run: check torch.softplus: 1 cell, valid (1 forward); nothing was run or written" in lines
    assert any(line.startswith("  streamed     1 cell on every 32-bit pattern") for line in lines)
    assert f"gpu_check: a real run would, with {sys.executable} and 3 jobs:" in lines
    phases = [line.split()[0] for line in lines[lines.index(f"gpu_check: a real run would, with {sys.executable} and"
                                                                  " 3 jobs:") + 1:]]
    assert phases == ["setup", "environment", "tests", "exhaustive", "suite", "summary"]
    _made_nothing(tmp_path)


@pytest.mark.slow
def test_the_gpu_path_end_to_end_on_a_machine_without_one(tmp_path: Path) -> None:
    """FPHARNESS_GPU=1 skips the detection: a fresh venv over this python, fpharness installed
    into it, the environment, the transfer tests, a small suite and the exhaustive cell, all
    run; every cuda cell is skipped, so the summary reports a harness failure (exit 1)."""
    (tmp_path / "tiny.toml").write_text(textwrap.dedent('''\
        schema = 1
        name = "tiny"
        [[case]]
        oracle = "exp"
        impls = ["torch.exp", "jax.exp"]
        dtypes = ["float16"]
        devices = ["cuda"]
        inputs = ["special"]
        mode = "both"
        consistency = ["device"]
    '''))
    done = _script(tmp_path, "--out", "out", "--suite", "tiny.toml", "--jobs", "1", env={"FPHARNESS_GPU": "1"})
    assert done.returncode == 1, done.stdout + done.stderr
    out = tmp_path / "out"
    for name in ("environment.json", "setup.log", "transfer-tests.log", "gpu.json", "gpu.html", "run.log",
                 "softplus-float32-exhaustive.json", "timings.tsv", "summary.md"):
        assert (out / name).is_file(), name
    assert [line.split("\t")[0] for line in (out / "timings.tsv").read_text().splitlines()] == [
        "setup", "environment", "tests", "exhaustive", "suite"]
    assert "fpharness by pip install -e" in done.stdout
    assert "gpu_check: harness failure: no cuda cell ran (jax: no CUDA device" in done.stderr
    assert "the CUDA transfer tests ran nothing" in done.stderr
    cells = json.loads((out / "gpu.json").read_text())["cells"]
    assert len(cells) == 6 and {c["status"] for c in cells} == {"skipped"}
    assert (tmp_path / "venv" / "pyvenv.cfg").is_file()


# -- scripts/gpu_deps.py ---------------------------------------------------------------------------------


def test_gpu_deps_lists_what_is_missing_as_pip_takes_it(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(textwrap.dedent('''\
        [project]
        name = "x"
        dependencies = [
          "numpy>=1",
          "numpy>=999",
          "fpharness-no-such-distribution>=1",
          "fpharness-no-such-distribution-either; python_version < '3.0'",
        ]
        [project.optional-dependencies]
        fast = ["fpharness-no-such-fast-thing>=2"]
    '''))
    assert gpu_deps.missing(pyproject) == ["numpy>=999", "fpharness-no-such-distribution>=1"]
    assert gpu_deps.missing(pyproject, "fast") == ["fpharness-no-such-fast-thing>=2"]
    assert gpu_deps.missing(ROOT / "pyproject.toml") == []  # this environment has what fpharness needs
    assert gpu_deps.main(["--pyproject", str(pyproject), "--extra", "nope"]) == 2


# -- the summary: a harness failure or a finding -----------------------------------------------------------


def _device_cell(differing: int, impl: str = "torch.exp") -> CellResult:
    verdict = Consistency.of("device", 0, [("cuda", 65536, differing)], max_ulp=1.0 if differing else 0.0)
    return consistency_cell(verdict, impl=impl, oracle="exp", dtype="float16", device="cuda", inputs="exhaustive")


def _results(tmp_path: Path, cells: list[CellResult], name: str = "gpu.json") -> Path:
    info = run()
    info = replace(info, devices={**info.devices, "jax": {"cpu": "x86_64 CPU", "cuda": "NVIDIA H100 80GB HBM3"}},
                   frameworks={**info.frameworks, "jax": "0.11.2"})
    path = tmp_path / name
    Results(info, tuple(cells)).write(path)
    return path


def test_cells_over_budget_are_findings_not_failures(tmp_path: Path) -> None:
    path = _results(tmp_path, [
        cell("exp", "torch.exp", "float16", device="cuda", inputs="exhaustive", ulp=0.5),
        cell("exp", "jax.exp", "float16", device="cuda", inputs="exhaustive", status="fail", ulp=3.0, max_ulp=1),
        cell("exp", "jax.exp", "float16", device="cuda", inputs="special", status="error",
             reason="RuntimeError: the implementation raised"),
        _device_cell(0), _device_cell(12, "jax.exp"),
    ])
    verdict, suite = judge(path, 1)
    assert verdict.failures == [] and verdict.exit_code == 0
    assert verdict.lines[0] == "suite: 5 cuda cells: 2 pass, 2 fail, 1 error"
    assert "  torch 2.3.0 on NVIDIA A100: 2 of 2 ran (2 pass)" in verdict.lines
    assert "  CPU vs CUDA: 1 of 2 device checks gave the same bits" in verdict.lines
    text = markdown(verdict, suite, None)
    assert "| torch.exp | float16 | 0.5 | - | same bits |" in text
    assert "| jax.exp | float16 | 3 (1 over budget, 1 error) | - | 12 of 65,536 differ, max 1 ulp |" in text


@pytest.mark.parametrize(
    ("cells", "rc", "failure"),
    [
        pytest.param([cell("exp", "torch.exp", device="cuda", status="skipped", reason="no CUDA device: none")], 0,
                     "no cuda cell ran (torch: no CUDA device: none)", id="nothing-ran"),
        pytest.param([cell("exp", "torch.exp", device="cuda", status="error",
                           reason="internal error (please report): KeyError: 'x'")], 1,
                     "1 suite cells hit a harness fault, e.g. exp[torch.exp-cuda-float16-special]: internal error",
                     id="internal-error"),
        pytest.param([cell("exp", "torch.exp", device="cuda")], 2, "fpharness run exited with 2, not 0 or 1",
                     id="usage-exit"),
        pytest.param(None, 1, "fpharness run wrote no results at", id="no-results"),
    ],
)
def test_a_harness_failure_makes_exit_1(tmp_path: Path, cells: list[CellResult] | None, rc: int, failure: str) -> None:
    path = _results(tmp_path, cells) if cells is not None else tmp_path / "missing.json"
    verdict, _ = judge(path, rc)
    assert verdict.exit_code == 1
    assert failure in " | ".join(verdict.failures)


def test_transfer_tests_must_have_run_something(tmp_path: Path) -> None:
    path = _results(tmp_path, [cell("exp", "torch.exp", device="cuda")])
    xml = tmp_path / "t.xml"
    xml.write_text('<testsuites><testsuite name="pytest" tests="40" failures="0" errors="0" skipped="40"/></testsuites>')
    assert read_junit(xml) == (40, 0, 40)
    verdict, _ = judge(path, 0, tests_rc=0, junit=read_junit(xml))
    assert verdict.failures == ["the CUDA transfer tests ran nothing: all 40 were skipped (transfer-tests.log says why)"]
    xml.write_text('<testsuites><testsuite name="pytest" tests="40" failures="0" errors="0" skipped="4"/></testsuites>')
    verdict, _ = judge(path, 0, tests_rc=0, junit=read_junit(xml))
    assert verdict.failures == [] and verdict.lines[0].startswith("transfer tests: 36 passed, 4 skipped")
    verdict, _ = judge(path, 0, tests_rc=1, junit=read_junit(xml))
    assert verdict.failures == ["the CUDA transfer tests exited with 1 (transfer-tests.log says why)"]


def test_the_exhaustive_cell_and_the_phases_are_reported(tmp_path: Path) -> None:
    suite = _results(tmp_path, [cell("exp", "torch.exp", device="cuda")])
    streamed = _results(tmp_path, [cell("softplus", "torch.softplus", "float32", device="cuda", inputs="exhaustive",
                                        n=2**32, cr=2**32 - 5, ulp=0.75)], "exhaustive.json")
    tsv = tmp_path / "timings.tsv"
    tsv.write_text("setup\t9.5\tvenv\nnot a phase line\nsuite\t120.25\trun\nexhaustive\t41.0\tcheck\n")
    timings = read_timings(tsv)
    assert timings == [("setup", 9.5, "venv"), ("suite", 120.25, "run"), ("exhaustive", 41.0, "check")]
    verdict, _ = judge(suite, 0, streamed, 0, timings=timings)
    assert verdict.failures == []
    assert ("exhaustive: softplus[torch.softplus-cuda-float32-exhaustive]: pass, max 0.75 ulp over 4,294,967,296"
            " inputs, 41.0 s wall") in verdict.lines
    assert verdict.lines[-1] == "phases: setup 9.5 s, suite 120.2 s, exhaustive 41.0 s"
