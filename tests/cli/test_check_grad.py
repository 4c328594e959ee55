"""``fpharness check ... --grad``: gradient cells from the command line, their JSON fields,
and the one-line errors of the new options.

Layer: end to end, in-process through ``harness.cli.app.main``. torch cells skip when
torch is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli.app import main

COMMON = ["--no-cache", "-j", "1", "--no-progress"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FPHARNESS_CACHE_DIR", str(tmp_path / "cache"))


def test_check_grad_prints_a_gradient_table_and_writes_the_pass(capsys: pytest.CaptureFixture[str],
                                                               tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "r.json"
    code = main(["check", "torch.sigmoid", "--grad", "--dtype", "float32", "--inputs", "special",
                 "--json", str(out), *COMMON])
    text = capsys.readouterr().out
    assert "∂sigmoid" in text
    data = json.loads(out.read_text())
    assert data["schema"] == 4
    (cell,) = data["cells"]
    assert (cell["pass"], cell["wrt"], cell["cotangent"]) == ("grad", "x", "ones")
    assert cell["id"] == "∂sigmoid[torch.sigmoid-cpu-float32-special]"
    assert "--grad x" in cell["repro"]
    assert code in (0, 1) and cell["status"] in ("pass", "fail")


def test_mode_both_judges_both_passes(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "r.json"
    main(["check", "torch.binary_cross_entropy", "--mode", "both", "--cotangent", "random", "--dtype", "float32",
          "--inputs", "random:200", "-q", "--json", str(out), *COMMON])
    cells = json.loads(out.read_text())["cells"]
    assert [(c["pass"], c.get("wrt"), c.get("cotangent")) for c in cells] == [
        ("forward", None, None), ("grad", "p", "random"), ("grad", "y", "random")]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        pytest.param(["torch.sigmoid", "--grad", "z"], "no real argument 'z'", id="unknown-argument"),
        pytest.param(["torch.cross_entropy", "--grad", "target"], "a class index has no gradient", id="index"),
        pytest.param(["torch.sigmoid", "--mode", "forward", "--grad"], "--mode forward judges no gradient",
                     id="contradiction"),
        pytest.param(["torch.sigmoid", "--cotangent", "random"], "--cotangent is a gradient's: add --grad",
                     id="cotangent-without-grad"),
    ],
)
def test_bad_gradient_options_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                   fragment: str) -> None:
    code = main(["check", *argv, "--dtype", "float32", "--inputs", "special", *COMMON])
    err = capsys.readouterr().err.strip()
    assert code == 2 and fragment in err and "\n" not in err and "Traceback" not in err
