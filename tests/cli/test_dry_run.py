"""``--dry-run`` of ``fpharness run`` and ``fpharness check`` (harness/cli/dry_run.py): the plan
is validated as a run validates it and printed; nothing runs and nothing is written.

Layer: end to end, in-process through ``harness.cli.app.main``. "Nothing runs" is checked by
making the command's executor raise, "nothing is written" by the absence of the output files.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import harness.cli.commands.check as check_module
import harness.cli.commands.run as run_module
from harness.cli.app import main
from harness.cli.dry_run import plan_lines
from harness.plan.cells import CellSpec
from harness.plan.suite import load_suite

ROOT = Path(__file__).resolve().parents[2]
GPU_SUITE = ROOT / "suites" / "gpu.toml"


@pytest.fixture(autouse=True)
def _nothing_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to run a cell fails the test; results and the cache stay in tmp."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FPHARNESS_CACHE_DIR", str(tmp_path / "cache"))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a dry run ran cells")

    monkeypatch.setattr(run_module, "execute", refuse)
    monkeypatch.setattr(check_module, "execute", refuse)


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_gpu_suite_plan_is_printed_and_nothing_is_written(capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path) -> None:
    json_path, html_path = tmp_path / "out" / "gpu.json", tmp_path / "out" / "gpu.html"
    code, out, err = run_main(capsys, "run", str(GPU_SUITE), "--dry-run", "--json", str(json_path),
                              "--html", str(html_path))
    assert (code, err) == (0, "")
    cells = load_suite(GPU_SUITE).cells
    passes = Counter(c.pass_ for c in cells)
    lines = out.splitlines()
    assert lines[0] == (f"dry run: suite gpu ({GPU_SUITE}): {len(cells)} cells, valid ({passes['forward']} forward,"
                        f" {passes['grad']} gradient, {passes['consistency']} consistency); nothing was run or written")
    assert f"  devices      cuda {len(cells)}" in lines
    frameworks = Counter(c.framework for c in cells)
    assert any(line.startswith("  frameworks ") and f"torch {frameworks['torch']}" in line
               and f"jax {frameworks['jax']}" in line for line in lines)
    for oracle in {c.oracle for c in cells}:  # a line per oracle, with its implementations
        row = next(line for line in lines if line.split()[:1] == [oracle])
        assert "consistency device" in row and all(c.impl in row for c in cells if c.oracle == oracle)
    assert lines[-1] == f"  would write  {json_path}, {html_path}"
    assert not (tmp_path / "out").exists() and not (tmp_path / "results").exists()


def test_quiet_dry_run_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "run", str(GPU_SUITE), "--dry-run", "-q")
    assert (code, err) == (0, "")
    assert len(out.splitlines()) == 1 and out.startswith("dry run: suite gpu (")


def test_the_exhaustive_float32_cell_is_planned_as_streamed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "check", "torch.softplus", "--oracle", "softplus", "--dtype", "float32",
                              "--device", "cuda", "--inputs", "exhaustive", "--dry-run")
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == ("dry run: check torch.softplus: 1 cell, valid (1 forward);"
                                   " nothing was run or written")
    assert "  streamed     1 cell on every 32-bit pattern (2**32 inputs each), in 1,024 chunks" in out


@pytest.mark.parametrize(
    ("case", "argv", "words"),
    [
        pytest.param("oracle = \"softplus\"\nimpls = [\"*\"]\ndtypes = [\"float16\"]\ninputs = [\"special\"]\n"
                     "devices = [\"gpu\"]\n", [], ["unknown device 'gpu'", "pick from: cpu, cuda"], id="bad-device"),
        pytest.param("oracle = \"softplus\"\nimpls = [\"*\"]\ndtypes = [\"float16\"]\ninputs = [\"special\"]\n"
                     "dtype = [\"float32\"]\n", [], ["unknown key 'dtype'", "did you mean 'dtypes'"], id="unknown-key"),
        # only Runner.validate knows this one: what a dry run checks beyond parsing the suite
        pytest.param("oracle = \"softmax\"\nimpls = [\"torch.softmax\"]\ndtypes = [\"float32\"]\n"
                     "inputs = [\"exhaustive\"]\n", [], ["streamed only for one-argument elementwise oracles"],
                     id="exhaustive-float32-row-wise"),
        pytest.param("oracle = \"exp\"\nimpls = [\"numpy.exp\"]\ndtypes = [\"float16\"]\ninputs = [\"special\"]\n",
                     ["--record"], ["--record with --dry-run"], id="record"),
    ],
)
def test_a_broken_plan_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str,
                                              argv: list[str], words: list[str]) -> None:
    suite = tmp_path / "broken.toml"
    suite.write_text(f"schema = 1\n[[case]]\n{case}")
    code, out, err = run_main(capsys, "run", str(suite), "--dry-run", *argv)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("fpharness: error: ")
    for word in words:
        assert word in err
    assert not (tmp_path / "results").exists() and not (tmp_path / ".fpharness").exists()


def test_a_bad_output_path_is_refused_by_a_dry_run_too(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_main(capsys, "check", "numpy.exp", "--dtype", "float16", "--dry-run", "--json", str(tmp_path))
    assert code == 2 and "is a directory" in err and len(err.splitlines()) == 1


def test_plan_lines_count_by_pass_device_framework_dtype_and_input() -> None:
    cells = [
        CellSpec("exp", "torch.exp", "torch", "float16", "cuda", "exhaustive"),
        CellSpec("exp", "torch.exp", "torch", "float16", "cuda", "exhaustive", wrt="x"),
        CellSpec("exp", "jax.exp", "jax", "bfloat16", "cuda", "exhaustive", check="device"),
        CellSpec("softplus", "torch.softplus", "torch", "float32", "cpu", "exhaustive"),
    ]
    assert plan_lines("suite s (s.toml)", cells, ["r.json"]) == [
        "dry run: suite s (s.toml): 4 cells, valid (2 forward, 1 gradient, 1 consistency); nothing was run or written",
        "  devices      cuda 3, cpu 1",
        "  frameworks   torch 3, jax 1",
        "  dtypes       float16 2, bfloat16 1, float32 1",
        "  inputs       exhaustive 4",
        "  streamed     1 cell on every 32-bit pattern (2**32 inputs each), in 1,024 chunks",
        "  per oracle (cells per pass and consistency check; implementations):",
        "    exp       1 forward, 1 gradient; consistency device 1  (jax.exp, torch.exp)",
        "    softplus  1 forward  (torch.softplus)",
        "  would write  r.json",
    ]
