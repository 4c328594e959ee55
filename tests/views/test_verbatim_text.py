"""Everything a view prints that a user may copy comes out verbatim (issue 13, defect 10):
repro commands, ids, input specs, file names, labels and exception messages, through every
view (terminal tables and failure details, registry tables, the comparison table and
Markdown, the history table, the HTML report, the one-line error).

Layer: reports, fed by real runs through the CLI. Each test pushes the same three hostile
texts through one view: an input spec rich once turned into an emoji (``random:100:0`` ->
``random💯0``), markup rich would eat (``[red]x[/red]``) and an emoji code
(``:thumbs_up:``).
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness.cli.app import main
from harness.record.compare import compare
from harness.record.results import Results, load_results
from reports.comparison import markdown, terminal_text
from reports.html import render_html
from reports.terminal import print_registry, print_results

SPEC = "random:100:0"
MARKUP = "[red]x[/red]"
EMOJI = ":thumbs_up:"
HOSTILE = (SPEC, MARKUP, EMOJI)
EMOJIS = ("💯", "👍")

IMPLS = f'''
import numpy as np

def wrong(x):
    """twice the truth: every cell fails, with a repro"""
    return (2 * np.exp(x.astype(np.float64))).astype(x.dtype)

def boom(x):
    raise RuntimeError("{MARKUP} {EMOJI} {SPEC}")
'''

SUITE = f'''
schema = 1
name = "verbatim"

[[case]]
oracle = "exp"
impls = ["impls.py:wrong", "impls.py:boom"]
framework = "numpy"
dtypes = ["float16"]
inputs = ["{SPEC}"]
budget = {{ max_ulp = 1 }}
'''


def assert_verbatim(text: str, *expected: str) -> None:
    for fragment in (*HOSTILE, *expected):
        assert fragment in text, f"{fragment!r} missing from:\n{text}"
    for emoji in EMOJIS:
        assert emoji not in text, f"{emoji} printed:\n{text}"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """``fpharness run`` of a failing and a raising implementation on random:100:0: its
    terminal output and its results file."""
    root = tmp_path_factory.mktemp("verbatim")
    (root / "impls.py").write_text(textwrap.dedent(IMPLS))
    (root / "suite.toml").write_text(SUITE)
    out = root / "r.json"
    buf = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(buf):
        mp.setenv("FPHARNESS_JAX_CACHE_DIR", "")
        code = main(["run", str(root / "suite.toml"), "--json", str(out), "--no-cache", "-j", "1", "--no-progress"])
    assert code == 1
    return buf.getvalue(), out


def _cells(path: Path) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = json.loads(path.read_text())["cells"]
    return cells


def test_terminal_tables_and_failure_details(run: tuple[str, Path]) -> None:
    out, path = run
    wrong, boom = sorted(_cells(path), key=lambda c: c["impl"], reverse=True)
    assert wrong["status"] == "fail" and boom["status"] == "error"
    assert f"    repro: {wrong['repro']}" in out.splitlines()  # whole, on one line, to be copied
    assert SPEC in wrong["repro"]
    assert_verbatim(out, boom["reason"])


def test_terminal_view_of_crafted_cells(run: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """The same view called directly, with the hostile text in every field a user names."""
    _, path = run
    cells = _cells(path)
    for c in cells:
        c["impl"] = f"{c['impl']} {MARKUP}{EMOJI}"
        c["id"] = f"{c['id']} {EMOJI}"
    print_results(cells)
    assert_verbatim(capsys.readouterr().out, f"{MARKUP}{EMOJI}")


def test_registry_table(capsys: pytest.CaptureFixture[str]) -> None:
    print_registry(f"oracles {EMOJI}", ["name", "doc"], [[SPEC, f"{MARKUP} {EMOJI}"]])
    assert_verbatim(capsys.readouterr().out, f"oracles {EMOJI} (1)")


def test_comparison_table_and_markdown(run: tuple[str, Path]) -> None:
    _, path = run
    results = load_results(path)
    labels = (f"base {MARKUP} {SPEC}", f"cur {EMOJI}")
    comparison = compare(results, results, labels=labels)
    text = terminal_text(comparison, show_unchanged=True)
    assert_verbatim(text, *labels)
    assert_verbatim(markdown(comparison, show_unchanged=True), MARKUP, EMOJI)


def test_history_table(run: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, path = run
    db = tmp_path / f"h {MARKUP} {EMOJI} {SPEC}.sqlite"
    assert main(["merge", str(path), "-o", str(tmp_path / "m.json"), "--record", "--db", str(db), "-q"]) == 0
    capsys.readouterr()
    assert main(["history", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert_verbatim(out.replace("\n", ""))  # the title may fold; join it back
    assert main(["history", "--db", str(db), "--cell", "exp"]) == 0
    assert "* accepted run" in capsys.readouterr().out


def test_html_report(run: tuple[str, Path]) -> None:
    _, path = run
    results: Results = load_results(path)
    page = html.unescape(render_html([results], sources=[f"{MARKUP} {EMOJI} {SPEC}.json"]))
    assert_verbatim(page)


def test_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = f"{MARKUP}{EMOJI}{SPEC.replace(':', '-')}.npy"
    code = main(["check", "numpy.exp", "--dtype", "float16", "--inputs", f"npy:{missing}", "--inputs", SPEC,
                 "--no-cache", "-q", "-j", "1"])
    err = capsys.readouterr().err
    assert code == 2 and missing in err and "👍" not in err
