"""Consistency cells in every view (issue 16): the terminal's consistency tables and
failing checks, their findings and where they rank, and the HTML report's Consistency
section. (Comparing them with a baseline: tests/record/test_compare_consistency.py.)

Layer: reports. Cells are crafted by hand (tests/helpers/consistency_crafted.py): a
Consistency verdict, no check run. The terminal text is pinned by
``golden/consistency_terminal.txt`` (regenerate with ``FPHARNESS_REGEN_GOLDEN=1``); the
views of results without consistency cells are pinned, unchanged, by the other goldens.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
from consistency_crafted import (
    SCRIPT,
    as_dicts,
    bounds,
    consistency_cell,
    layout,
    mismatch,
    mixed_cells,
    position,
    results,
)
from html_crafted import Node, judged_cell, parse, suite_results
from rich.console import Console

from harness.judgement.consistency import CHECKS, Consistency
from reports.consistency import CHECK_WORDS, check_text, consistency_table, context_lines
from reports.findings import SHORTLIST, findings, merge_dtypes, not_run_lines, shortlist
from reports.html import render_html
from reports.html_consistency import EXAMPLES
from reports.labels import group_key, group_order, subject
from reports.terminal import cell_text, findings_lines, print_results, summary_line

GOLDEN = Path(__file__).parent.parent / "golden"
POSITION_ID = "softplus[torch.softplus-cpu-float32-special-consistency=position]"
REPRO = ("fpharness check torch.softplus --oracle softplus --dtype float32 --device cpu --inputs special"
         " --consistency position")


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("FPHARNESS_REGEN_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def _render(cells: list[dict[str, Any]], **kw: Any) -> str:
    buf = io.StringIO()
    print_results(cells, console=Console(file=buf, width=160, no_color=True, highlight=False), **kw)
    return buf.getvalue()


def _table(out: str, title: str) -> list[list[str]]:
    """The rows of the table titled ``title`` (header first), cut at the header's columns."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    header = lines[start + 1]
    starts = [m.start() for m in re.finditer(r"(?<!\S)\S", header)]  # every header word starts a column
    rows = []
    for line in [header, *lines[start + 3:]]:
        cut = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        if not cut[0] or len(line) < starts[-1]:  # the end of the table
            break
        rows.append(cut)
    return rows


def _accuracy(impl: str, dtype: str = "float32", *, oracle: str = "softplus", status: str = "fail",
              **kw: Any) -> dict[str, Any]:
    """An accuracy cell as a results file has it."""
    cats = ("unexpected_nan", "missing_nan", "unexpected_inf", "inherent_inf", "missing_inf", "lost_to_zero")
    cell: dict[str, Any] = {
        "id": f"{oracle}[{impl}-cpu-{dtype}-special]", "oracle": oracle, "impl": impl, "framework": impl.split(".")[0],
        "device": "cpu", "dtype": dtype, "out_dtype": dtype, "inputs": "special", "params": {}, "status": status,
        "reason": kw.pop("reason", "over budget"), "pass": "forward",
        "budget": {"max_ulp": 1.0, "allow": {"missing_nan": 0, "unexpected_inf": 0, "unexpected_nan": 0}},
        "repro": f"fpharness check {impl} --oracle {oracle} --dtype {dtype} --device cpu --inputs special",
        "n": 4096, "correctly_rounded": 4000, "ulp": {"count": 4096, "max": kw.pop("ulp", 3.0)},
        "incidence": {c: kw.pop(c, 0) for c in cats}, "worst": [], "examples": [],
    }
    cell.update(kw)
    return cell


# -- the terminal --------------------------------------------------------------------------------


def test_terminal_output_golden() -> None:
    cells = as_dicts(mixed_cells())
    _golden("consistency_terminal.txt", _render(cells) + "=====\n" + _render(cells, details=True))


def test_a_table_per_subject_a_column_per_check_in_check_order() -> None:
    out = _render(as_dicts(mixed_cells()))
    rows = _table(out, "softplus — consistency")
    # the file lists layout before position; the columns follow CHECKS
    assert rows[0] == ["implementation", "device", "dtype", "inputs", "position", "layout", "repeat"]
    by_row = {tuple(r[:4]): r[4:] for r in rows[1:]}
    assert by_row[("torch.softplus", "cpu", "float32", "special")] == ["12 differ", "ok", "error"]
    assert by_row[("numpy.softplus", "cpu", "float32", "special")] == ["", "3 differ", ""]
    assert by_row[("numpy.softplus", "cpu", "bfloat16", "special")] == ["", "n/a", ""]
    # a user's operation without an oracle is titled by its function
    assert _table(out, "fused_gelu — consistency")[1] == ["my_ops.py:fused_gelu", "cpu", "float32", "special", "ok"]
    # the cuda device, where nothing ran, collapses into one line as it does for accuracy cells
    assert "cuda: skipped — no CUDA device for torch" in out
    assert "Max error (ulp)" not in out  # no accuracy table, so no line about how to read one


def test_cell_texts() -> None:
    def text(**kw: Any) -> str:
        return check_text(consistency_cell(**kw).to_json())

    assert text(verdict=position(12)) == "12 differ"
    assert text(verdict=position(1234)) == "1,234 differ"
    assert text(verdict=position(0)) == "ok"
    assert text(verdict=None, status="error", reason="boom") == "error"
    assert text(verdict=None, status="skipped", reason="no GPU") == "skip"
    assert text(verdict=None, status="unsupported", reason="no bfloat16") == "n/a"
    assert text(verdict=Consistency.of("layout", 0, [], notes=("no views",))) == "nothing compared"
    # the accuracy views' entry points read a consistency cell the same way
    assert cell_text(consistency_cell(position(12)).to_json()) == "12 differ"


def test_skipped_checks_on_a_device_that_ran_read_skip() -> None:
    cells = as_dicts([consistency_cell(position(0)),
                      consistency_cell(None, check="repeat", status="skipped", reason="not asked for")])
    rows = _table(_render(cells), "softplus — consistency")
    assert rows[1] == ["torch.softplus", "cpu", "float32", "special", "ok", "skip"]


def test_fail_is_styled_as_a_failure_and_ok_as_a_pass() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=160, force_terminal=True, color_system="standard", highlight=False)
    print_results(as_dicts([consistency_cell(position(12)), consistency_cell(position(0), dtype="bfloat16")]),
                  console=console)
    out = buf.getvalue()
    assert "\x1b[1;31m12 differ" in out and "\x1b[32mok" in out


def test_details_show_the_headline_examples_notes_and_repro() -> None:
    verdict = position(12, notes=("batch of 65 rows only",))
    out = _render(as_dicts([consistency_cell(verdict)]), details=True)
    lines = out.splitlines()
    start = lines.index(f"{POSITION_ID} fail: {verdict.headline()}")
    block = lines[start:start + 7]
    assert block[1] == "  the first 3 of 12 differing answers:"
    assert block[2:5] == [f"    {m.describe()}" for m in verdict.examples[:3]]
    assert block[2] == ("    0xc2cacccd (-101.4) gave 0x00000008 (1.1e-44) at length 17, position 16; 0x00000007"
                        " (9.8e-45) [1 ulp]")
    assert block[5:] == ["  note: batch of 65 rows only", f"    repro: {REPRO}"]
    # max_examples bounds them, as it bounds an accuracy cell's (the pytest plugin shows 1)
    buf = io.StringIO()
    print_results(as_dicts([consistency_cell(verdict)]), console=Console(file=buf, width=160, no_color=True),
                  details=True, max_examples=1)
    assert "  the first 1 of 12 differing answers:" in buf.getvalue()


def test_without_details_no_examples_under_the_table() -> None:
    out = _render(as_dicts([consistency_cell(position(12))]))
    assert f"{POSITION_ID} fail:" not in out and "differing answers:" not in out
    # the finding still has one example and the command
    assert f"      repro: {REPRO}" in out


def test_summary_line_counts_consistency_cells() -> None:
    cells = [*as_dicts(mixed_cells()), _accuracy("torch.softplus", status="pass")]
    assert summary_line(cells) == "10 cells: 5 passed, 2 failed, 1 errors, 1 unsupported, 1 skipped"
    assert _render(cells).rstrip().endswith(summary_line(cells))


def test_consistency_tables_follow_their_subjects_accuracy_tables() -> None:
    cells = [*as_dicts([consistency_cell(position(12))]), _accuracy("torch.softplus", status="pass"),
             _accuracy("torch.exp", oracle="exp", status="pass")]
    out = _render(cells)
    titles = [line.strip() for line in out.splitlines() if re.fullmatch(r"\S+( · cpu| — consistency)", line.strip())]
    assert titles == ["softplus · cpu", "softplus — consistency", "exp · cpu"]
    assert group_order([("softplus", "≡"), ("softplus", "x"), ("softplus", "")]) == [
        ("softplus", ""), ("softplus", "x"), ("softplus", "≡")]


def test_labels_of_consistency_cells() -> None:
    own = consistency_cell(position(0), impl="my_ops.py:fused_gelu", oracle="", framework="torch").to_json()
    assert subject(own) == "fused_gelu" and group_key(own) == ("fused_gelu", "≡")
    columns, rows = consistency_table(as_dicts(mixed_cells()))
    assert columns == ["position", "layout", "repeat", "device"] and all(c in CHECKS for c in columns)
    assert [(r.label, r.dtype, r.inputs) for r in rows][:2] == [("my_ops.py:fused_gelu", "float32", "special"),
                                                               ("numpy.softplus", "bfloat16", "special")]
    assert set(CHECK_WORDS) == set(CHECKS)


def test_contexts_read_compactly() -> None:
    lines = [c.text() for c in context_lines(position(12))]
    assert lines == ["length 1-65: 12 of 4,160 differ (at length 17-28)", "batch: 0 of 4,096 differ"]
    assert [c.text() for c in context_lines(layout(3))] == [
        "transposed: 3 of 4,096 differ", "strided: 0 of 4,096 differ", "offset: 0 of 4,096 differ"]


# -- findings --------------------------------------------------------------------------------------


def test_a_failing_check_is_a_finding_with_an_example_and_its_repro() -> None:
    verdict = position(12)
    found = findings(as_dicts([consistency_cell(verdict)]))
    assert len(found) == 1
    f = found[0]
    assert f.category == "consistency" and f.count == 12 and f.repro == REPRO
    assert f.line() == (f"torch.softplus float32: answers depend on position: {verdict.headline()};"
                        f" e.g. {verdict.examples[0].describe()}  [{POSITION_ID}]")
    lines = findings_lines(as_dicts([consistency_cell(verdict)]))
    assert lines[1:] == [f"  {f.line()}", f"      repro: {REPRO}"]


def test_ranking_after_spurious_nan_and_inf_before_the_budgeted_defects() -> None:
    cells = [
        _accuracy("a.over_budget", reason="max ulp 3 > 1"),
        _accuracy("b.lost", lost_to_zero=5),
        as_dicts([consistency_cell(position(12), impl="c.inconsistent")])[0],
        _accuracy("d.nan", unexpected_nan=1),
        _accuracy("e.inf", unexpected_inf=1),
        _accuracy("f.undefined", missing_nan=1),
        _accuracy("g.noinf", missing_inf=1),
        as_dicts([consistency_cell(bounds(2), impl="h.bounds", oracle="softmax")])[0],
    ]
    order = [(f.who, f.category) for f in findings(cells)]
    assert order == [("d.nan", "unexpected_nan"), ("e.inf", "unexpected_inf"), ("f.undefined", "missing_nan"),
                     ("c.inconsistent", "consistency"), ("h.bounds", "consistency"), ("b.lost", "lost_to_zero"),
                     ("g.noinf", "missing_inf"), ("a.over_budget", "budget")]
    # within the kind: more differing comparisons first
    line = next(f.line() for f in findings(cells) if f.who == "h.bounds")
    assert line.startswith("h.bounds float32: answers outside the function's range: 2 of 512 comparisons differ (rows)")


def test_one_finding_per_check_from_the_worst_input_set() -> None:
    cells = as_dicts([consistency_cell(position(3), inputs="random:100:0"), consistency_cell(position(12)),
                      consistency_cell(layout(3))])
    found = findings(cells)
    assert [(f.text.split(":")[0], f.count, f.cell_id) for f in found] == [
        ("answers depend on position", 12, POSITION_ID),
        ("answers depend on memory layout", 3, "softplus[torch.softplus-cpu-float32-special-consistency=layout]")]


def test_identical_findings_merge_across_implementations_and_dtypes() -> None:
    same = position(5)
    cells = as_dicts([consistency_cell(same, impl="keras.softplus"), consistency_cell(same, impl="tensorflow.softplus"),
                      consistency_cell(same, impl="jax.softplus", dtype="float16"),
                      consistency_cell(same, impl="jax.softplus", dtype="bfloat16")])
    found = findings(cells)
    assert [f.subject for f in found] == ["jax.softplus bfloat16", "jax.softplus float16",
                                          "keras.softplus, tensorflow.softplus float32"]
    merged = merge_dtypes(found)
    assert [f.subject for f in merged] == ["jax.softplus float16, bfloat16", "keras.softplus, tensorflow.softplus float32"]
    assert merged[0].text.startswith(f"answers depend on position: {same.headline()} in each; e.g. ")
    assert merged[0].covers == 2


def test_the_short_list_gives_consistency_its_share_and_names_what_it_leaves_out() -> None:
    cells = as_dicts([consistency_cell(position(k), impl=f"fw{k:02d}.softplus") for k in range(1, 26)])
    cells += [_accuracy(f"nan{k:02d}.softplus", unexpected_nan=k + 1) for k in range(25)]
    shown, left = shortlist(findings(cells))
    assert len(shown) == SHORTLIST and left == {"unexpected_nan": 5, "consistency": 5}
    assert [f.category for f in shown] == ["unexpected_nan"] * 20 + ["consistency"] * 20
    lines = findings_lines(cells, details=False)
    assert lines[-1].endswith("(5 spurious NaN, 5 inconsistent): --details lists all 50, as does the HTML report")
    # each consistency line has its command under it
    assert sum(1 for line in lines if line.startswith("      repro: ")) == 20


def test_not_run_lines_name_the_check() -> None:
    lines = not_run_lines(as_dicts(mixed_cells()))
    assert lines == [
        "consistency (repeat) torch.softplus float32: error: RuntimeError: kaboom"
        "  [softplus[torch.softplus-cpu-float32-special-consistency=repeat]]",
        "consistency (layout) numpy bfloat16: unsupported (numpy.softplus): numpy has no bfloat16",
    ]


# -- the HTML report -------------------------------------------------------------------------------


def _html_cells() -> list[Any]:
    twin = position(5, examples=[mismatch(0, inputs=(SCRIPT,), values=(SCRIPT,), context=f"at {SCRIPT}")])
    return [*mixed_cells(), consistency_cell(twin, impl="keras.softplus"),
            consistency_cell(twin, impl="tensorflow.softplus"),
            consistency_cell(position(4, notes=(f"note {SCRIPT}",)), impl=SCRIPT, framework="torch")]


@pytest.fixture(scope="module")
def page() -> str:
    return render_html([results(list(suite_results().cells) + _html_cells())])


@pytest.fixture(scope="module")
def tree(page: str) -> Node:
    return parse(page)


def _rows(table: Node) -> dict[str, list[str]]:
    out = {}
    for tr in table.find_all("tr")[1:]:
        head = [c.text() for c in tr.children if c.tag in ("th", "td")]
        out[" ".join(head[:4])] = head[4:]
    return out


def test_html_consistency_section_a_table_per_subject(tree: Node) -> None:
    section = tree.find("section", id="consistency")
    assert [h.text() for h in section.find_all("h3")] == ["fused_gelu — consistency", "softplus — consistency"]
    table = section.find("table", "consistency", data_subject="softplus")
    assert [th.text() for th in table.find("thead").find_all("th")] == [
        "implementation", "device", "dtype", "inputs", "position", "layout", "repeat"]
    rows = _rows(table)
    assert rows["torch.softplus cpu float32 special"] == ["12 differ", "ok", "error"]
    assert rows["numpy.softplus cpu bfloat16 special"] == ["", "n/a", ""]
    assert rows["torch.softplus cpu bfloat16 special"] == ["ok", "", ""]
    # the checks' meanings are said once, above the tables
    assert [dt.text() for dt in section.find("dl", "checks").find_all("dt")] == ["position", "layout", "repeat"]
    # consistency cells are not in the accuracy matrices, and the contents link to the section
    assert all(t.attrs["data-oracle"] != "" for t in tree.find_all("table", "matrix"))
    assert "consistency" not in " ".join(td.text() for td in tree.find("section", id="overview").find_all("td"))
    assert tree.find("nav").find("a", href="#consistency").text() == "Consistency"


def test_html_failing_check_block(tree: Node) -> None:
    section = tree.find("section", id="consistency")
    link = next(a for a in section.find_all("a") if a.text() == "12 differ")
    block = section.find("details", id=link.attrs["href"][1:])
    assert "open" in block.attrs and "st-fail" in block.classes
    assert block.find("span", "cid").text() == POSITION_ID
    verdict = position(12)
    assert block.find("p", "reason").text() == verdict.headline()
    contexts = [[td.text() for td in tr.find_all("td")] for tr in block.find("table", "contexts").find_all("tr")[1:]]
    assert contexts == [["length 1-65 (at length 17-28)", "4,160", "12"], ["batch", "4,096", "0"]]
    rows = block.find("table", "mismatches").find_all("tr")[1:]
    assert len(rows) == EXAMPLES == 2
    assert [td.text() for td in rows[0].find_all("td")] == ["0xc2cacccd-101.4", "0x000000081.1e-44",
                                                            "at length 17, position 16", "0x000000079.8e-45", "1"]
    assert block.find("pre", "repro").text() == REPRO
    facts = block.find("dl", "facts").text()
    assert "lengths17-28" in facts and "positions16-27" in facts and "max apart1 ulp" in facts


def test_html_notes_and_passing_cells(tree: Node) -> None:
    section = tree.find("section", id="consistency")
    layout_block = next(d for d in section.find_all("details") if d.find("span", "cid").text().startswith(
        "softplus[numpy.softplus-cpu-float32-special-consistency=layout]"))
    assert [li.text() for li in layout_block.find("ul", "notes").find_all("li")] == [
        "channels-last: numpy has no such layout"]
    # a passing check has no block: its table cell says it, with its headline as a tooltip
    ok = [td for td in section.find_all("td", "cc") if "st-pass" in td.classes]
    assert ok and all(not td.find_all("a") for td in ok)
    assert "title" not in ok[0].attrs  # "ok" says it; a thousand tooltips would weigh on the report
    blocks = section.find_all("details", "cell")
    assert not any("st-pass" in d.classes for d in blocks)


def test_html_escapes_what_the_cells_carry(page: str, tree: Node) -> None:
    assert SCRIPT not in page.replace("<script>{", "")  # only our own script element
    assert len(tree.find_all("script")) == 1
    section = tree.find("section", id="consistency")
    cells = [td.text() for td in section.find_all("td")]
    assert f"{SCRIPT}{SCRIPT}" in cells and f"at {SCRIPT}" in cells
    assert f"note {SCRIPT}" in [li.text() for li in section.find_all("li")]
    assert any(th.text() == SCRIPT for th in section.find_all("th", "impl"))


def test_html_identical_cells_share_one_block(tree: Node) -> None:
    section = tree.find("section", id="consistency")
    keras = next(d for d in section.find_all("details") if "keras.softplus" in d.find("span", "cid").text())
    assert "and 1 more cell with this verdict" in keras.find("summary").text()
    twin = keras.find("ul", "same").find("li")
    assert twin.find("span", "cid").text() == "softplus[tensorflow.softplus-cpu-float32-special-consistency=position]"
    assert twin.find("pre", "repro").text().endswith("tensorflow.softplus --oracle softplus --dtype float32 --device"
                                                     " cpu --inputs special --consistency position")
    # the twin's table cell links to its line in the shared block
    link = next(a for a in section.find_all("a") if a.attrs["href"] == f"#{twin.attrs['id']}")
    assert link.text() == "5 differ"
    assert not [d for d in section.find_all("details") if "tensorflow" in d.find("span", "cid").text()]


def test_html_links_resolve_and_findings_link_to_blocks(tree: Node) -> None:
    ids = [n.attrs["id"] for n in tree.iter() if "id" in n.attrs]
    assert len(ids) == len(set(ids))
    hrefs = [a.attrs["href"][1:] for a in tree.find_all("a") if a.attrs.get("href", "").startswith("#")]
    assert set(hrefs) <= set(ids)
    items = [li for li in tree.find("ol", "findings").find_all("li") if "f-consistency" in li.classes]
    assert items and items[0].find("span", "subj").text() == "torch.softplus float32"
    assert "answers depend on position: 12 of 8256" in items[0].text()
    block = tree.find("details", "check", id=items[0].find("a").attrs["href"][1:])
    assert block.find("span", "cid").text() == POSITION_ID


def test_html_without_consistency_cells_has_no_trace_of_them() -> None:
    page = render_html([suite_results()])
    assert 'id="consistency"' not in page and "td.cc" not in page and "Consistency" not in page


def test_html_accuracy_sections_are_the_same_with_consistency_cells(page: str) -> None:
    alone = render_html([results(list(suite_results().cells))])

    def section(text: str, name: str) -> str:
        start = text.index(f'<section id="{name}">')
        return text[start:text.index("</section>", start)]

    for name in ("incidence", "details"):
        assert section(page, name) == section(alone, name), name
    # the matrices (the legend above them names the unsupported status the consistency cells add)
    matrices = [section(text, "overview").partition('<div class="matrices">')[2] for text in (page, alone)]
    assert matrices[0] == matrices[1] and matrices[0]


def test_html_stays_small_for_hundreds_of_consistency_cells() -> None:
    """300 consistency cells, two in three failing (a block each, unshared): under 2 kB a
    cell, so that the main job's report keeps its 3 MB bound with its consistency cells."""
    cells = []
    for i in range(300):
        verdict = position(i % 7) if i % 3 else layout(i % 4, notes=())
        cells.append(consistency_cell(verdict, impl=f"fw{i // 24:02d}.softplus", dtype=("float16", "float32")[i % 2],
                                      inputs=f"random:{i // 2}:0"))
    accuracy = [judged_cell("torch.softplus", "float16", step=64)]
    page = render_html([results(cells + accuracy)])
    tree = parse(page)
    assert len(tree.find("section", id="consistency").find_all("td", "cc")) == 300
    per_cell = (len(page.encode()) - len(render_html([results(accuracy)]).encode())) / 300
    assert per_cell < 2_000, per_cell
