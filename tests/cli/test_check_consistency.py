"""``fpharness check ... --consistency``: consistency cells from the command line, their
JSON records, the repro line, and the one-line errors of the new options.

Layer: end to end, in-process through ``harness.cli.app.main`` (one repro runs the real
console script, as a shell would). The planted custom implementations are numpy; the
torch cell skips when torch is missing.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness.cli.app import main

COMMON = ["--no-cache", "-j", "1", "--no-progress"]

PLANTED = textwrap.dedent('''
    import numpy as np

    def tail(x):
        """a logistic whose last n % 8 elements are computed another way (a vector body and a
        scalar tail that disagree): only tensors of length 8 or more see both"""
        x = np.asarray(x)
        with np.errstate(all="ignore"):
            if x.ndim == 0:
                return np.exp(-np.logaddexp(0, -x)).astype(x.dtype)
            n = x.shape[-1]
            k = n - n % 8
            out = np.empty_like(x)
            out[..., :k] = 1 / (1 + np.exp(-x[..., :k]))
            out[..., k:] = np.exp(-np.logaddexp(0, -x[..., k:]))
        return out

    def steady(x):
        """the same logistic for every element wherever it sits"""
        with np.errstate(all="ignore"):
            return 1 / (1 + np.exp(-x))
''')


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FPHARNESS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def planted(tmp_path: Path) -> str:
    """The planted functions' file, named relative to the working directory (tmp_path)."""
    (tmp_path / "planted.py").write_text(PLANTED)
    return "planted.py"


def run(capsys: pytest.CaptureFixture[str], argv: list[str], out: Path) -> tuple[int, str, list[dict[str, Any]]]:
    """Exit code, stdout and the results' cells of ``fpharness check ARGV --json OUT``."""
    code = main(["check", *argv, "--json", str(out), *COMMON])
    text = capsys.readouterr().out
    return code, text, json.loads(out.read_text())["cells"]


def by_check(cells: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in cells if c["pass"] == "consistency"}


# -- torch.softplus: the vectorised kernel and the scalar tail disagree near underflow ------


def test_torch_softplus_depends_on_position(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    # ATen's float kernels run blocks of 2 vectors and leave the rest to a scalar loop: a
    # value in a tensor shorter than one block (and alone) takes the scalar path
    capability = torch.backends.cpu.get_cpu_capability()
    start = {"AVX512": 32, "AVX2": 16}.get(capability)
    if start is None:
        pytest.skip(f"ATen's {capability} kernels: no known vectorised block size for float32")
    out = tmp_path / "r.json"
    code, text, cells = run(capsys, ["torch.softplus", "--consistency", "--dtype", "float32", "--inputs", "special"],
                            out)
    assert code == 1  # a failing cell
    assert [c["check"] for c in cells] == ["position", "layout", "repeat", "monotone", "bounds"]
    assert all(c["pass"] == "consistency" for c in cells)
    cell = by_check(cells)["position"]
    assert cell["id"] == "softplus[torch.softplus-cpu-float32-special-consistency=position]"
    assert cell["status"] == "fail"
    record = cell["consistency"]
    assert record["check"] == "position" and record["tolerance"] == 0.0 and record["max_ulp"] == 1.0
    # observed with torch 2.13 on AVX512: 639 of 11669 comparisons differ, lengths 32-65
    assert tuple(record["lengths"]) == tuple(range(start, 66))
    assert 0 < record["differing"] < record["compared"]
    differing = {c["context"]: c["differing"] for c in record["contexts"]}
    assert all(differing[f"length {n}"] == 0 for n in range(2, start))
    assert all(differing[f"length {n}"] > 0 for n in range(start, 66))
    # -103.97207641601562 alone rounds to the smallest subnormal; in a long tensor, to 0
    (example,) = [e for e in record["examples"] if e["input"] == ["0xc2cff1b4"]]
    assert example["input_values"] == ["-103.97207641601562"]
    assert (example["expected"], example["got"], example["ulp"]) == ("alone 0x00000001", "0x00000000", 1.0)
    assert example["context"].startswith(f"at length {start}, position ")
    assert f"lengths {start}-65" in text and "0xc2cff1b4 (-103.97207641601562) gave 0x00000000" in text
    # the properties hold: softplus is monotone and positive
    assert by_check(cells)["monotone"]["status"] == "pass" and by_check(cells)["bounds"]["status"] == "pass"


def test_consistency_ulp_is_the_tolerance(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "r.json"
    code, _, cells = run(capsys, ["torch.softplus", "--consistency", "position", "--consistency-ulp", "1",
                                  "--dtype", "float32", "--inputs", "special"], out)
    (cell,) = cells
    assert (code, cell["status"], cell["consistency"]["tolerance"]) == (0, "pass", 1.0)
    assert cell["budget"]["max_ulp"] == 1.0 and cell["consistency"]["differing"] == 0


# -- a user's function without an oracle -------------------------------------------------------


def test_planted_tail_is_caught_at_lengths_8_to_65(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                   planted: str) -> None:
    out = tmp_path / "r.json"
    code, text, cells = run(capsys, [f"{planted}:tail", "--framework", "numpy", "--consistency", "--dtype", "float32",
                                     "--inputs", "random:300"], out)
    assert code == 1
    # an operation without an oracle declares no properties: only the checks of itself
    assert [c["check"] for c in cells] == ["position", "layout", "repeat"]
    cells_of = by_check(cells)
    cell = cells_of["position"]
    assert cell["id"] == "tail[planted.py:tail-cpu-float32-random:300:0-consistency=position]"
    assert (cell["status"], cell["oracle"], cell["custom"]) == ("fail", "", True)
    record = cell["consistency"]
    assert tuple(record["lengths"]) == tuple(range(8, 66))
    assert "lengths 8-65" in text
    assert cells_of["layout"]["status"] == cells_of["repeat"]["status"] == "pass"
    example = record["examples"][0]
    assert example["expected"].startswith("alone ") and example["context"].startswith("at length ")


def test_consistent_custom_function_passes(capsys: pytest.CaptureFixture[str], tmp_path: Path, planted: str) -> None:
    out = tmp_path / "r.json"
    code, _, cells = run(capsys, [f"{planted}:steady", "--framework", "numpy", "--consistency", "--dtype", "float32",
                                  "--inputs", "random:300"], out)
    assert code == 0
    assert [(c["check"], c["status"]) for c in cells] == [("position", "pass"), ("layout", "pass"), ("repeat", "pass")]
    assert all(c["consistency"]["differing"] == 0 and c["consistency"]["compared"] > 0 for c in cells)


def test_repro_of_a_failing_cell_reruns_to_the_same_verdict(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                            planted: str) -> None:
    out = tmp_path / "r.json"
    code, text, cells = run(capsys, [f"{planted}:tail", "--framework", "numpy", "--consistency", "--dtype", "float32",
                                     "--inputs", "random:300"], out)
    cell = by_check(cells)["position"]
    repro = cell["repro"]
    assert code == 1 and f"repro: {repro}" in text  # the line printed is the one recorded
    assert repro == ("fpharness check planted.py:tail --framework numpy --dtype float32 --device cpu"
                     " --inputs random:300:0 --consistency position")
    argv = shlex.split(repro)
    script = Path(sys.executable).parent / argv[0]
    if not script.exists():
        pytest.skip("the fpharness console script is not installed (pip install -e .)")
    proc = subprocess.run([str(script), *argv[1:], "--json", "again.json", *COMMON], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (1, "")
    (again,) = json.loads((tmp_path / "again.json").read_text())["cells"]
    assert (again["id"], again["status"], again["reason"]) == (cell["id"], cell["status"], cell["reason"])
    assert again["consistency"] == cell["consistency"]


# -- which cells --------------------------------------------------------------------------------


def test_named_checks_make_only_those_cells(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code, _, cells = run(capsys, ["numpy.exp", "--consistency", "position", "--consistency", "layout",
                                  "--dtype", "float32", "--inputs", "random:300"], out)
    assert code == 0
    assert [(c["pass"], c["check"]) for c in cells] == [("consistency", "position"), ("consistency", "layout")]
    assert [c["id"] for c in cells] == ["exp[numpy.exp-cpu-float32-random:300:0-consistency=position]",
                                        "exp[numpy.exp-cpu-float32-random:300:0-consistency=layout]"]


def test_consistency_with_mode_judges_accuracy_too(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code, text, cells = run(capsys, ["numpy.exp", "--consistency", "--mode", "forward", "--dtype", "float32",
                                     "--inputs", "random:300", "--max-ulp", "2"], out)
    assert code == 0
    assert [(c["pass"], c.get("check")) for c in cells] == [
        ("forward", None), ("consistency", "position"), ("consistency", "layout"), ("consistency", "repeat"),
        ("consistency", "monotone"), ("consistency", "bounds")]
    assert "exp — consistency" in text
    # the accuracy budget is the accuracy cell's; the consistency cells keep their own
    assert cells[0]["budget"]["max_ulp"] == 2.0 and all(c["budget"]["max_ulp"] is None for c in cells[1:])


# -- usage errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        pytest.param(["numpy.exp", "--consistency", "positon"],
                     ["unknown consistency check 'positon'", "pick from: bounds, device, layout", "did you mean 'position'"],
                     id="unknown-check"),
        pytest.param(["torch.exp", "--consistency", "symmetry"],
                     ["'symmetry' does not apply: exp declares no symmetry",
                      "checks for exp: position, layout, repeat, device, monotone, bounds"], id="not-declared"),
        pytest.param(["numpy.exp", "--consistency", "device"], ["compares CPU with CUDA: add --device cuda"],
                     id="device-without-cuda"),
        pytest.param(["numpy.exp", "--consistency-ulp", "1"], ["--consistency-ulp", "add --consistency"],
                     id="ulp-without-consistency"),
        pytest.param(["numpy.exp", "--consistency", "--max-ulp", "1"],
                     ["--max-ulp is an accuracy budget", "use --consistency-ulp X"], id="accuracy-budget-alone"),
        pytest.param(["numpy.exp", "--consistency", "--consistency-ulp", "-1"],
                     ["--consistency-ulp must be a non-negative number of ULPs"], id="negative-ulp"),
        pytest.param(["numpy.exp", "--consistency", "--inputs", "exhaustive"],
                     ["exhaustive float32 is 2**32 inputs", "use special or random:N"], id="exhaustive-float32"),
        pytest.param(["planted.py:steady", "--framework", "numpy"],
                     ["needs --oracle NAME", "--consistency"], id="custom-without-oracle"),
        pytest.param(["planted.py:steady", "--framework", "numpy", "--consistency", "--mode", "forward"],
                     ["needs --oracle NAME"], id="custom-without-oracle-with-mode"),
        pytest.param(["planted.py:steady", "--consistency"], ["needs --framework"], id="custom-without-framework"),
        pytest.param(["planted.py:steady", "--framework", "numpy", "--consistency", "monotone"],
                     ["an operation without an oracle declares no properties"], id="custom-property"),
    ],
)
def test_bad_consistency_options_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                      fragments: list[str], planted: str) -> None:
    if "--inputs" not in argv:
        argv = [*argv, "--inputs", "special"]
    code = main(["check", *argv, "--dtype", "float32", *COMMON])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, captured
    assert err.startswith("fpharness: error: ") and "\n" not in err and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err
    assert captured.out == ""  # refused before anything ran
