"""Comparing consistency cells with a baseline (issue 16): harness.record.compare's rules
for cells that carry a Consistency verdict instead of a Summary, and how the comparison
views (terminal, Markdown, HTML, ``fpharness compare``) show them.

Layer: record. Cells are crafted (tests/helpers/consistency_crafted.py); no check runs.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
from consistency_crafted import consistency_cell, layout, position, results
from crafted import cell as accuracy_cell
from html_crafted import parse

from harness.cli.app import main
from harness.judgement.consistency import Consistency
from harness.plan.cells import CellResult
from harness.record.compare import Comparison, Kind, compare
from harness.record.results import Results, load_results
from reports.comparison import markdown, terminal_text
from reports.html import render_html

LATER = "2026-01-02T00:00:00+00:00"


def _compare(before: list[CellResult], after: list[CellResult]) -> Comparison:
    return compare(results(before), results(after, LATER))


def _verdict(before: CellResult | None, after: CellResult | None) -> tuple[Kind, str, list[str]]:
    cmp = _compare([before] if before else [], [after] if after else [])
    assert len(cmp.verdicts) == 1
    v = cmp.verdicts[0]
    return v.kind, v.why, [d.metric for d in v.deltas]


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        pytest.param(position(0), position(12), Kind.NEW_FAILURE, id="consistent-then-differs"),
        pytest.param(position(3), position(12), Kind.REGRESSED, id="3-then-12-differing"),
        pytest.param(position(12), position(3), Kind.IMPROVED, id="12-then-3-differing"),
        pytest.param(position(12), position(12), Kind.UNCHANGED, id="equal"),
        pytest.param(position(0), position(0), Kind.UNCHANGED, id="consistent-both"),
        pytest.param(position(12), position(0), Kind.FIXED, id="differs-then-consistent"),
        pytest.param(position(3, max_ulp=1.0), position(3, max_ulp=4.0), Kind.REGRESSED, id="larger-max-ulp"),
        pytest.param(position(3, max_ulp=4.0), position(3, max_ulp=1.0), Kind.IMPROVED, id="smaller-max-ulp"),
        pytest.param(position(3, max_ulp=1.0), position(3, max_ulp=math.inf), Kind.REGRESSED, id="now-nan-vs-number"),
        pytest.param(position(3, max_ulp=math.inf), position(3, max_ulp=math.inf), Kind.UNCHANGED, id="nan-both"),
        pytest.param(position(3), position(12, per_length=128), Kind.INCOMPARABLE, id="other-comparisons"),
        pytest.param(position(3), position(3, tolerance=1.0), Kind.INCOMPARABLE, id="other-tolerance"),
    ],
)
def test_verdicts_of_consistency_cells(before: Consistency, after: Consistency, kind: Kind) -> None:
    got, why, metrics = _verdict(consistency_cell(before), consistency_cell(after))
    assert got is kind, why
    # no accuracy delta is ever computed for a consistency cell (it has no summary)
    assert set(metrics) <= {"differing", "max_ulp_apart"}


def test_regressed_and_new_failure_fail_the_comparison() -> None:
    for before, after, code in ((position(0), position(12), 1), (position(3), position(12), 1),
                                (position(12), position(3), 0), (position(12), position(12), 0)):
        cmp = _compare([consistency_cell(before)], [consistency_cell(after)])
        assert cmp.exit_code == code, cmp.verdicts[0]


def test_why_names_the_counts_and_the_distance() -> None:
    kind, why, _m = _verdict(consistency_cell(position(3)), consistency_cell(position(12)))
    assert kind is Kind.REGRESSED and why == "differing comparisons 3 → 12"
    kind, why, _m = _verdict(consistency_cell(position(3)), consistency_cell(position(3, max_ulp=math.inf)))
    assert why == "max ulp apart 1 → NaN vs a number"
    kind, why, _m = _verdict(consistency_cell(position(0)), consistency_cell(position(12)))
    assert kind is Kind.NEW_FAILURE and why.startswith("fails now: 12 of 8256 comparisons differ (lengths 17-28;")
    kind, why, metrics = _verdict(consistency_cell(position(3)), consistency_cell(position(3, per_length=128)))
    assert metrics == []
    assert why == "comparisons differ: 8256 → 12416 (the check, its inputs, or which answers are NaN changed)"


def test_more_differing_out_of_fewer_comparisons_is_a_regression() -> None:
    # a monotone check leaves NaN answers out: an implementation that now answers NaN for
    # some inputs and breaks the order more often has regressed, not become incomparable
    fewer = consistency_cell(position(9, per_length=32))
    kind, why, _m = _verdict(consistency_cell(position(3)), fewer)
    assert kind is Kind.REGRESSED and why.startswith("differing comparisons 3 → 9")
    kind, why, _m = _verdict(consistency_cell(position(9)), consistency_cell(position(3, per_length=32)))
    assert kind is Kind.INCOMPARABLE and why.startswith("comparisons differ: 8256 → ")


def test_bounds_has_no_distance_to_compare() -> None:
    cells = [consistency_cell(Consistency.of("bounds", 0, [("rows", 512, n)]), impl="torch.softmax", oracle="softmax")
             for n in (2, 2)]
    kind, _why, metrics = _verdict(*cells)
    assert kind is Kind.UNCHANGED and metrics == ["differing"]


def test_a_verdict_missing_on_one_side_is_incomparable() -> None:
    failing = consistency_cell(position(3))
    bare = replace(failing, consistency=None)
    kind, why, _m = _verdict(bare, failing)
    assert kind is Kind.INCOMPARABLE and "no consistency verdict in the baseline" in why


def test_statuses_follow_the_general_rules() -> None:
    ok = consistency_cell(position(0))
    error = consistency_cell(None, check="position", status="error", reason="RuntimeError: boom")
    skipped = consistency_cell(None, check="position", status="skipped", reason="no CUDA device")
    assert _verdict(ok, error)[0] is Kind.NEW_FAILURE
    assert _verdict(error, ok)[0] is Kind.FIXED
    assert _verdict(ok, skipped)[0] is Kind.INCOMPARABLE
    assert _verdict(None, ok)[0] is Kind.NEW_CELL and _verdict(ok, None)[0] is Kind.MISSING_CELL


def test_consistency_and_accuracy_cells_of_one_implementation_are_matched_apart() -> None:
    fwd = accuracy_cell("softplus", "torch.softplus", "float32")
    base = [fwd, consistency_cell(position(0)), consistency_cell(layout(0, notes=()))]
    cur = [fwd, consistency_cell(position(5)), consistency_cell(layout(0, notes=()))]
    kinds = {v.id: v.kind for v in _compare(base, cur).verdicts}
    assert kinds == {
        "softplus[torch.softplus-cpu-float32-special]": Kind.UNCHANGED,
        "softplus[torch.softplus-cpu-float32-special-consistency=position]": Kind.NEW_FAILURE,
        "softplus[torch.softplus-cpu-float32-special-consistency=layout]": Kind.UNCHANGED,
    }


# -- the views ---------------------------------------------------------------------------------


@pytest.fixture
def nightly() -> Comparison:
    base = [consistency_cell(position(0)), consistency_cell(position(3), impl="jax.softplus"),
            consistency_cell(position(12), impl="numpy.softplus"), consistency_cell(layout(3), impl="keras.softplus"),
            accuracy_cell("softplus", "torch.softplus", "float32")]
    cur = [consistency_cell(position(4)), consistency_cell(position(12), impl="jax.softplus"),
           consistency_cell(position(3), impl="numpy.softplus"), consistency_cell(layout(3), impl="keras.softplus"),
           accuracy_cell("softplus", "torch.softplus", "float32")]
    return _compare(base, cur)


def test_terminal_and_markdown_rows(nightly: Comparison) -> None:
    text = terminal_text(nightly, width=240)

    def row(cell_id: str) -> list[str]:
        return next(line for line in text.splitlines() if f" {cell_id} " in line).split()

    jax = "softplus[jax.softplus-cpu-float32-special-consistency=position]"
    # max ulp: the largest distance between answers; no correctly rounded share; the counts as incidence
    assert row(jax) == ["regressed", jax, "1", "-", "differ", "3", "→", "12", "differing", "comparisons", "3", "→", "12"]
    torch = row("softplus[torch.softplus-cpu-float32-special-consistency=position]")
    assert torch[:2] == ["new", "failure"] and torch[3:10] == ["0", "→", "1", "-", "differ", "0", "→"]
    assert text.rstrip().endswith("5 cells: 1 new failure, 1 regressed, 1 improved, 2 unchanged: REGRESSION")
    md = markdown(nightly)
    assert ("| **regressed** | `softplus[jax.softplus-cpu-float32-special-consistency=position]` | 1 | - "
            "| differing 3 → 12 | differing comparisons 3 → 12 |  |") in md
    assert "| improved | `softplus[numpy.softplus-cpu-float32-special-consistency=position]` | 1 | - " \
           "| differing 12 → 3 |" in md
    # within a kind, a consistency row follows its oracle's accuracy rows
    assert "- `softplus[torch.softplus-cpu-float32-special]`\n- `softplus[keras.softplus-cpu-float32-special-" \
           "consistency=layout]`" in md


def test_html_comparison_links_consistency_cells(nightly: Comparison) -> None:
    base = Results(nightly.baseline, tuple(v.baseline for v in nightly.verdicts if v.baseline is not None))
    cur = Results(nightly.current, tuple(v.current for v in nightly.verdicts if v.current is not None))
    tree = parse(render_html([cur], baseline=base))
    rows = {tr.find_all("td")[1].text(): tr for tr in tree.find("table", "compare").find_all("tr")[1:]}
    jax = rows["softplus[jax.softplus-cpu-float32-special-consistency=position]"]
    assert [td.text() for td in jax.find_all("td")][2:5] == ["1", "–", "differ 3 → 12"]
    href = jax.find("a").attrs["href"]
    block = tree.find("details", id=href[1:])
    assert block.find("span", "cid").text() == "softplus[jax.softplus-cpu-float32-special-consistency=position]"
    assert "differing comparisons 3 → 12" in block.find("p", "change").text()
    # the table cell is marked as a matrix cell is
    cells = tree.find("table", "consistency").find_all("td", "cc")
    assert any(td.find_all("span", "chg") and "c-worse" in td.find("span", "chg").classes for td in cells)


def test_cli_compare_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results([consistency_cell(position(3))]).write(tmp_path / "b.json")
    results([consistency_cell(position(12))], LATER).write(tmp_path / "c.json")
    results([consistency_cell(position(1))], LATER).write(tmp_path / "d.json")
    loaded = load_results(tmp_path / "c.json").cells[0]
    assert loaded.consistency is not None and loaded.consistency.differing == 12  # the verdict survives the file
    b, c, d = (str(tmp_path / f"{n}.json") for n in "bcd")
    assert main(["compare", b, c]) == 1
    assert "differing comparisons 3 → 12" in capsys.readouterr().out
    assert main(["compare", b, d]) == 0
    assert main(["compare", b, b]) == 0
    assert "1 cells: 1 unchanged: no regression" in capsys.readouterr().out
