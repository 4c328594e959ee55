"""The HTML report: page structure, escaping, links, plots, comparison, the CLI.

Layer: reports. Results are crafted (``html_crafted``): judged for real against a
hand-built reference, so the summaries and profiles are the ones the runner produces. The
page is parsed with the standard library and asked structural questions; the browser test
(``test_html_browser.py``) checks how it renders.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from html_crafted import (
    SCRIPT_IMPL,
    Node,
    cell_lines,
    judged_cell,
    naive_softplus_like,
    other_cell,
    parse,
    rowwise_cell,
    run_info,
    suite_results,
)

from harness.cli.app import main
from harness.record.results import Results, load_results
from reports.html import render_html, write_html


@pytest.fixture(scope="module")
def results() -> Results:
    return suite_results()


@pytest.fixture(scope="module")
def page(results: Results) -> str:
    return render_html([results], sources=["results/frameworks.json"])


@pytest.fixture(scope="module")
def tree(page: str) -> Node:
    return parse(page)


def _matrix(tree: Node, oracle: str) -> Node:
    return tree.find("table", "matrix", data_oracle=oracle)


def _details(tree: Node, impl: str, dtype: str, device: str = "cpu") -> Node:
    for d in tree.find_all("details", "cell"):
        cid = d.find("span", "cid").text()
        if cid.startswith(f"softplus[{impl}-{device}-{dtype}-") or f"[{impl}-{device}-{dtype}-" in cid:
            return d
    raise AssertionError(f"no details for {impl} {dtype} {device}")


# -- the overview matrix ------------------------------------------------------------------------


def test_one_matrix_per_oracle_in_name_order(tree: Node) -> None:
    assert [t.attrs["data-oracle"] for t in tree.find_all("table", "matrix")] == ["log_softmax", "sigmoid", "softplus"]


def test_matrix_rows_are_implementations_and_columns_dtype_device(tree: Node) -> None:
    table = _matrix(tree, "softplus")
    columns = [(th.attrs["data-dtype"], th.attrs["data-device"]) for th in table.find_all("th", "colh")]
    # the cuda column has no runnable cell: it collapses into one line (issue 14 §4, §7)
    assert columns == [("float16", "cpu"), ("bfloat16", "cpu")]
    rows = [th.text() for th in table.find_all("th", "impl")]
    assert rows == sorted(rows)
    assert set(rows) == {SCRIPT_IMPL, "boom.softplus", "naive.softplus", "numpy.logaddexp", "torch.softplus"}
    for tr in table.find("tbody").find_all("tr"):
        assert len(tr.find_all("td")) == 1 + len(columns)  # the inputs, then a slot per column, empty or not


def _by_id(tree: Node, table: Node) -> dict[str, Node]:
    """The matrix cells of ``table`` by the id of the cell they link to (the details say it)."""
    details = {d.attrs["id"]: d.find("span", "cid").text() for d in tree.find_all("details", "cell")}
    return {details[td.find("a").attrs["href"][1:]]: td for td in table.find_all("td", "m")}


def test_matrix_cells_are_coloured_by_max_ulp_and_marked_with_status(tree: Node) -> None:
    table = _matrix(tree, "softplus")
    by_title = _by_id(tree, table)
    assert {"u0", "st-pass"} <= by_title["softplus[numpy.logaddexp-cpu-float16-exhaustive]"].classes
    assert {"u1", "st-pass"} <= by_title["softplus[torch.softplus-cpu-float16-exhaustive]"].classes
    assert {"u3", "st-pass"} <= by_title["softplus[torch.softplus-cpu-bfloat16-exhaustive]"].classes
    naive = by_title["softplus[naive.softplus-cpu-float16-exhaustive]"]
    assert {"u4", "st-fail"} <= naive.classes
    assert naive.find("span", "v").text() == "2,040"
    assert "n" in naive.find("span", "v").classes  # a number: the style sheet writes its unit, and ✓/✗ by status
    badges = [b.text() for b in naive.find_all("i")]  # after the value, no wrapper
    assert badges == ["Inf!", "ovf", "→0"] or badges == ["Inf!", "→0", "ovf"]
    # the counts are in the cell's details: its summary badges say them
    d = _details(tree, "naive.softplus", "float16")
    assert d.find("summary").find("span", "b-inherent_inf").text() == "ovf 21"


def test_errors_and_skips_show_their_reason(tree: Node) -> None:
    table = _matrix(tree, "softplus")
    error = table.find("td", "st-error")
    assert error.find("span", "v").text() == "error"
    assert "RuntimeError: kaboom <b>&</b> friends" in error.find("a").attrs["title"]
    assert not table.find_all("td", "st-skipped")  # the only skipped cell is on the collapsed device
    collapsed = [p.text() for p in tree.find_all("p", "collapsed")]
    assert collapsed and all(t.startswith("cuda: skipped — torch 2.3.0 was built without CUDA") for t in collapsed)


def test_every_internal_link_resolves(tree: Node) -> None:
    ids = {n.attrs["id"] for n in tree.iter() if "id" in n.attrs}
    hrefs = [a.attrs["href"] for a in tree.find_all("a") if a.attrs.get("href", "").startswith("#")]
    assert len(hrefs) > 20
    assert [h for h in hrefs if h[1:] not in ids] == []
    assert len(ids) == sum(1 for n in tree.iter() if "id" in n.attrs)  # ids are unique


def test_every_matrix_cell_links_to_its_details(results: Results, tree: Node) -> None:
    details = {d.attrs["id"]: d for d in tree.find_all("details", "cell")}
    ran = [c for c in results.cells if c.spec.device != "cuda"]  # cuda collapsed: nothing ran there
    assert len(details) == len(ran)
    links = [td.find("a") for t in tree.find_all("table", "matrix") for td in t.find_all("td", "m") if td.find_all("a")]
    assert len(links) == len(ran)
    ids = {c.spec.id for c in ran}
    assert {details[a.attrs["href"][1:]].find("span", "cid").text() for a in links} == ids
    # short ids, a hash of the cell key: the same cell has the same id in every report
    assert all(re.fullmatch(r"c-[0-9a-f]{7,}", i) for i in details)
    again = parse(render_html([Results(results.run, tuple(reversed(results.cells)))]))
    assert {d.attrs["id"] for d in again.find_all("details", "cell")} == set(details)


# -- escaping and self-containment ----------------------------------------------------------------


def test_script_implementation_renders_as_text(page: str, tree: Node) -> None:
    assert SCRIPT_IMPL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert len(tree.find_all("script")) == 1  # ours, at the end
    assert SCRIPT_IMPL in [th.text() for th in tree.find_all("th", "impl")]
    assert "<b>&</b>" not in page  # the exception text, too


def test_nothing_is_loaded_from_the_network(page: str, tree: Node) -> None:
    for node in tree.iter():
        for attr in ("src", "href", "action", "xlink:href", "data"):
            value = node.attrs.get(attr, "")
            assert not re.match(r"\s*(https?:)?//", value), f"<{node.tag} {attr}={value!r}>"
    assert not tree.find_all("link") and not tree.find_all("img") and not tree.find_all("iframe")
    assert not re.search(r"url\(|@import|https?://", "".join(s.text() for s in tree.find_all("style")))
    assert "src=" not in tree.find("script").text()


def test_page_size_stays_small_for_hundreds_of_cells() -> None:
    cells = []
    for i in range(60):
        for dtype in ("float16", "bfloat16"):
            cells.append(naive_softplus_like(dtype, impl=f"impl{i:02d}.softplus", step=4))
            cells.append(judged_cell(f"impl{i:02d}.softplus", dtype, device="cuda", step=4,
                                     ulps=lambda x: np.where(x > 2, 3.0, 0.0)))
        cells.append(other_cell(f"impl{i:02d}.softplus", "skipped", "no CUDA device", dtype="float32", device="cuda"))
    page = render_html([Results(run_info(), tuple(cells))])
    assert len(cells) == 300
    assert len(page.encode()) < 5_000_000, len(page.encode())
    # in a large report only the cells that failed or errored start open
    for d in parse(page).find_all("details", "cell"):
        assert ("open" in d.attrs) == bool(d.classes & {"st-fail", "st-error"})


# -- incidence tables ----------------------------------------------------------------------------------


def test_incidence_table_counts_rates_and_inherent_overflow_apart(tree: Node) -> None:
    table = tree.find("table", "incidence", data_oracle="softplus")
    groups = [th.text() for th in table.find_all("th", "grp")]
    assert groups == ["defects", "judged by budget", "inherent overflow (correct)"]
    rows = table.find("tbody").find_all("tr")
    labels = [(r.find_all("td")[0].text(), r.find_all("td")[1].text()) for r in rows]
    # only the cells with incidence; the clean ones are counted below the table
    assert labels == [(SCRIPT_IMPL, "float16"), ("naive.softplus", "float16"), ("naive.softplus", "bfloat16")]
    naive = rows[1].find_all("td")
    header = [th.attrs.get("title", "").split(":")[0] for th in table.find("thead").find_all("tr")[1].find_all("th")]
    col = {name: i + 5 for i, name in enumerate(header)}
    assert "defect" in naive[col["spurious Inf"]].classes
    assert naive[col["spurious Inf"]].text().startswith("1,593")
    assert naive[col["spurious Inf"]].find("i").text().endswith("%")  # the rate
    assert "inherent" in naive[col["inherent overflow"]].classes
    assert naive[col["unexpected NaN"]].text() == "·"


# -- cell details -------------------------------------------------------------------------------------------


def _plot_nodes(tree: Node, svg: Node) -> list[Node]:
    """A plot's own nodes and those of the frames (and earlier plots) it shows with ``<use>``."""
    nodes = list(svg.iter())
    for use in svg.find_all("use"):
        nodes += tree.find(id=use.attrs["href"].removeprefix("#")).iter()
    return nodes


def _svg_drawn(svg: Node) -> int:
    """Shapes drawn in a plot (a bar or band segment each: same-coloured ones share a path)."""
    return sum(n.attrs.get("d", "").count("M") if n.tag == "path" else 1 for n in svg.iter()
               if n.tag in ("path", "rect", "circle") and not n.classes & {"band-bg", "grid"})


def _texts(nodes: list[Node], cls: str) -> list[str]:
    """The text of every ``<text>`` of class ``cls``, or inside a group of that class."""
    return [t.text() for n in nodes if cls in n.classes for t in n.find_all("text")]


def test_small_reports_start_with_every_cell_open(tree: Node) -> None:
    assert all("open" in d.attrs for d in tree.find_all("details", "cell"))


def test_error_plot_from_the_profile(tree: Node) -> None:
    d = _details(tree, "naive.softplus", "float16")
    # beside an error plot, the ULP percentiles of the facts give the histogram's shape
    assert not d.find_all("svg", "hist")
    assert "p50 / p90 / p99 / p99.9" in d.find("dl", "facts").text()
    err = d.find("svg", "err")
    assert _svg_drawn(err) >= 3
    nodes = _plot_nodes(tree, err)  # the frame (axes, ticks, band rows) is drawn once per page
    labels = _texts(nodes, "band-label")
    assert labels == ["Inf!", "→0", "ovf"]  # defects first, inherent overflow last
    assert "All 7,936 inputs" in d.find("figure", "fig-err").text()
    ticks = _texts(nodes, "tick")
    assert "0" in ticks and "1" in ticks and "-1" in ticks


def test_plot_frames_are_drawn_once_at_the_top(tree: Node, page: str) -> None:
    frames = tree.find("svg", "frames")
    ids = [g.attrs["id"] for g in frames.find_all("g") if "id" in g.attrs]
    assert ids and len(ids) == len(set(ids))
    used = set(re.findall(r'<use href="#(f-\d+)"/>', page))
    assert used == set(ids)  # every frame is used, every use finds its frame
    assert page.index('class="plot frames"') < page.index('<section id="details">')


def test_where_it_happens_lists_exact_input_ranges(tree: Node) -> None:
    d = _details(tree, "naive.softplus", "float16")
    items = [li.text() for li in d.find("ul", "bands").find_all("li")]
    assert any("spurious Inf" in t and "11.125 ≤ x ≤ 59904.0" in t for t in items), items
    assert any("lost to zero" in t and "-65280.0 ≤ x ≤ -17.375" in t for t in items), items


def test_error_plot_falls_back_to_the_stored_examples(tree: Node) -> None:
    d = _details(tree, "naive.softplus", "bfloat16")  # crafted without a profile
    err = d.find("svg", "err")
    assert len(err.find_all("circle")) >= 5
    assert "Only the" in d.find("figure", "fig-err").text()
    assert not d.find_all("ul", "bands")


def test_passing_cells_have_their_worst_input_and_no_plots(tree: Node) -> None:
    d = next(d for d in tree.find_all("details", "cell") if "log_softmax" in d.find("span", "cid").text())
    assert not d.find_all("svg")  # a passing cell: its facts and worst input tell it
    worst = d.find("ul", "ex").find("li")  # a line, not a table: a header would be most of it
    assert worst.text().startswith("worst ") and "at row 0, col 0 gave" in worst.text()
    assert "p50 / p90 / p99 / p99.9" in d.text()
    assert not d.find_all("pre", "repro")  # its command is its id's; failing cells carry one


def test_failing_rowwise_cells_have_a_histogram_but_no_error_plot() -> None:
    cell = replace(rowwise_cell("torch.log_softmax"), status="fail", reason="max ulp 3 > 1")
    d = parse(render_html([Results(run_info(), (cell,))])).find("details", "cell")
    assert d.find_all("svg", "hist") and not d.find_all("svg", "err")
    assert "row 0, col 0" in d.find("table", "examples").find("tbody", "failing").text()


def test_worst_inputs_show_bits_values_and_the_repro_command(tree: Node) -> None:
    d = _details(tree, "naive.softplus", "float16")
    # first the inputs that break the budget (spurious Inf), never the correct inherent overflow
    table = d.find("table", "examples")
    assert [th.text() for th in table.find("thead").find_all("th")] == [
        "input", "computed", "correctly rounded", "exact (oracle)", "ulp"]
    failing = table.find_all("tbody", "failing")
    assert [t.find("tr", "cap").text() for t in failing] == ["Breaks the budget: unexpected_inf, 1593 inputs like these"]
    first = failing[0].find_all("tr")[1].find_all("td")
    bits, value = cell_lines(first[0])  # input, result and truth: bits over value
    assert re.fullmatch(r"0x[0-9a-f]{4}", bits)
    assert float(value) > 11
    assert cell_lines(first[1]) == ["0x7c00", "inf"]  # the caption names the category: no badge
    assert not first[1].find_all("span")
    assert len(failing[0].find_all("tr")) == 1 + 2  # two inputs of each part of the budget it breaks
    assert d.find("pre", "repro").text().startswith("fpharness check naive.softplus --oracle softplus")
    others = table.find("tbody", "first")
    assert {b.attrs["class"] for b in others.find_all("span", "badge")} == {"badge b-lost_to_zero"}


def test_run_metadata(tree: Node) -> None:
    runs = tree.find("section", id="runs")
    text = runs.text()
    for expected in ("results/frameworks.json", "ci-runner-7", "2026-01-01T00:04:10", "(4.2 min)", "0, 7",
                     "0123456789abcdef0123456789abcdef01234567", "fpharness run suites/frameworks.toml"):
        assert expected in text
    meta = {tr.find_all("td")[0].text(): tr.find_all("td")[2].text() for tr in runs.find("table", "meta").find("tbody").find_all("tr")}
    assert meta["torch"] == "cpu: x86_64 CPUcuda: NVIDIA H100 80GB HBM3"
    assert "2.3.0" in runs.find("table", "meta").text()


def test_a_missing_framework_reads_not_installed() -> None:
    res = Results(replace(run_info(), frameworks={"numpy": "2.0.0", "torch": None}), suite_results().cells)
    assert "not installed" in parse(render_html([res])).find("section", id="runs").text()


# -- comparison ------------------------------------------------------------------------------------------------


def _base_and_current() -> tuple[Results, Results]:
    base = Results(run_info(), (
        judged_cell("torch.softplus", "float16", framework="torch"),
        judged_cell("numpy.logaddexp", "float16", ulps=lambda x: np.where(x > 2, 3.0, 0.0)),
        judged_cell("numpy.logaddexp", "bfloat16"),
        judged_cell("old.softplus", "float16"),
    ))
    cur = Results(run_info("2026-01-02T00:00:00+00:00", torch="2.4.0"), (
        judged_cell("torch.softplus", "float16", framework="torch", inf=lambda x: x > 30000),  # worse
        judged_cell("numpy.logaddexp", "float16"),  # better
        judged_cell("numpy.logaddexp", "bfloat16"),  # the same
        judged_cell("new.softplus", "float16"),
    ))
    return base, cur


def test_comparison_shows_what_got_better_or_worse() -> None:
    base, cur = _base_and_current()
    tree = parse(render_html([cur], baseline=base, sources=["cur.json"], baseline_source="base.json"))
    section = tree.find("section", id="comparison")
    rows = {tr.find("td", "cid").text(): tr for tr in section.find("table", "compare").find("tbody").find_all("tr")}
    assert set(rows) == {
        "softplus[torch.softplus-cpu-float16-exhaustive]",
        "softplus[numpy.logaddexp-cpu-float16-exhaustive]",
        "softplus[old.softplus-cpu-float16-exhaustive]",
        "softplus[new.softplus-cpu-float16-exhaustive]",
    }
    worse = rows["softplus[torch.softplus-cpu-float16-exhaustive]"]
    assert "k-new_failure" in worse.classes and "c-worse" in worse.classes
    assert "Inf! 0 → 149" in worse.text()
    better = rows["softplus[numpy.logaddexp-cpu-float16-exhaustive]"]
    assert "k-improved" in better.classes and "3 → 0" in better.text()
    assert "torch 2.3.0 → 2.4.0" in section.text()
    assert "base.json" in section.text() and "cur.json" in section.text()
    # the matrix marks the moved cells and the details say why
    marks = {a.attrs["href"]: a.find("span", "chg").text() for a in _matrix(tree, "softplus").find_all("a")
             if a.find_all("span", "chg")}
    assert sorted(marks.values()) == ["new", "▲", "▼"]
    pills = [p.text() for p in tree.find("header").find_all("a", "pill")]
    assert "1 new failure" in pills and "1 improved" in pills


def test_comparison_with_no_change_says_so() -> None:
    base, _ = _base_and_current()
    section = parse(render_html([base], baseline=base)).find("section", id="comparison")
    assert "Nothing got better or worse." in section.text()


def test_render_needs_results() -> None:
    with pytest.raises(ValueError, match="at least one"):
        render_html([])


# -- writing and the CLI ------------------------------------------------------------------------------------


def test_write_html_replaces_the_file_atomically(tmp_path: Path, results: Results) -> None:
    out = tmp_path / "sub" / "report.html"
    write_html([results], out)
    first = out.read_text(encoding="utf-8")
    write_html([results], out, title="second")
    assert out.read_text(encoding="utf-8") != first
    assert "<title>second</title>" in out.read_text(encoding="utf-8")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


@pytest.fixture()
def results_files(tmp_path: Path) -> tuple[Path, Path]:
    base, cur = _base_and_current()
    base.write(tmp_path / "base.json")
    cur.write(tmp_path / "cur.json")
    return tmp_path / "base.json", tmp_path / "cur.json"


def test_cli_report_exits_0_and_writes_the_page(
    capsys: pytest.CaptureFixture[str], results_files: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    assert main(["report", str(results_files[1]), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {out}"
    tree = parse(out.read_text(encoding="utf-8"))
    # a block per cell, or a line in the block of the cell with the same results
    listed = [s.text() for s in tree.find("section", id="details").find_all("span", "cid")]
    assert sorted(listed) == sorted(c.spec.id for c in load_results(results_files[1]).cells)
    assert not tree.find_all("section", id="comparison")


@pytest.mark.parametrize("how", ["compare", "baseline"])
def test_cli_report_compares_with_a_baseline(
    capsys: pytest.CaptureFixture[str], results_files: tuple[Path, Path], tmp_path: Path, how: str
) -> None:
    base, cur = results_files
    out = tmp_path / "cmp.html"
    argv = ["report", str(base), str(cur), "--compare"] if how == "compare" else ["report", str(cur), "--baseline", str(base)]
    assert main([*argv, "-o", str(out), "-q"]) == 0
    assert capsys.readouterr().out == ""
    section = parse(out.read_text(encoding="utf-8")).find("section", id="comparison")
    assert "new failure" in section.text()


def test_cli_report_tolerance_forgives_small_growth(results_files: tuple[Path, Path], tmp_path: Path) -> None:
    base, cur = results_files
    out = tmp_path / "tol.html"
    assert main(["report", str(base), str(cur), "--compare", "--tolerance", "5", "-o", str(out), "-q"]) == 0
    rows = parse(out.read_text(encoding="utf-8")).find("table", "compare").find("tbody").find_all("tr")
    improved = next(r for r in rows if "k-improved" in r.classes)  # by its correctly rounded fraction only:
    assert "max ulp" not in improved.find_all("td")[-1].text()  # 3 -> 0 ulp is within a 5 ulp tolerance


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["report", "{tmp}/missing.json"], "does not exist", id="missing-file"),
        pytest.param(["report", "{tmp}/not.json"], "is not valid JSON", id="not-json"),
        pytest.param(["report", "{cur}", "--compare"], "--compare needs two results files", id="compare-one-file"),
        pytest.param(["report", "{base}", "{cur}", "--compare", "--baseline", "{base}"], "drop --baseline or --compare",
                     id="compare-and-baseline"),
        pytest.param(["report", "{cur}", "--baseline", "{tmp}/missing.json"], "does not exist", id="missing-baseline"),
        pytest.param(["report", "{cur}", "-o", "{tmp}"], "is a directory", id="output-is-a-directory"),
        pytest.param(["report", "{cur}", "--baseline", "{base}", "--tolerance", "-1"], "non-negative",
                     id="negative-tolerance"),
    ],
)
def test_cli_report_usage_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], results_files: tuple[Path, Path], tmp_path: Path, argv: list[str], message: str
) -> None:
    (tmp_path / "not.json").write_text("{", encoding="utf-8")
    base, cur = results_files
    args = [a.format(tmp=tmp_path, base=base, cur=cur) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fpharness: error: ") and message in err, err


def test_check_html_option_writes_a_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "check.html"
    code = main(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--html", str(out), "-q",
                 "--cache-dir", str(tmp_path / "cache"), "-j", "1"])
    assert code == 0
    tree = parse(out.read_text(encoding="utf-8"))
    assert [t.attrs["data-oracle"] for t in tree.find_all("table", "matrix")] == ["exp"]


def test_correctly_rounded_cells_list_no_worst_inputs(tree: Node) -> None:
    d = _details(tree, "numpy.logaddexp", "float16")
    assert "Every finite result is correctly rounded" in d.text()
    assert not d.find_all("table", "examples")


def test_a_later_results_file_replaces_the_same_cell() -> None:
    first = Results(run_info(), (judged_cell("numpy.logaddexp", "float16"), judged_cell("numpy.logaddexp", "bfloat16")))
    second = Results(run_info("2026-01-02T00:00:00+00:00"), (judged_cell("numpy.logaddexp", "float16", max_ulp=0.5,
                                                                           ulps=lambda x: np.where(x > 1, 2.0, 0.0)),))
    tree = parse(render_html([first, second], sources=["a.json", "b.json"]))
    assert len(tree.find_all("details", "cell")) == 2
    assert [d.find("b", "pill").text() for d in tree.find_all("details", "cell")] == ["fail", "pass"]
    assert [h.text() for h in tree.find("section", id="runs").find_all("h3")] == ["a.json", "b.json"]


# -- findings first, collapsed devices, size (issue 14 §7) ---------------------------------------


def test_the_first_section_is_the_ranked_findings_linking_to_cells(tree: Node) -> None:
    main_ = tree.find("main")
    first = next(n for n in main_.children if n.tag == "section")
    assert first.attrs["id"] == "findings"
    items = first.find("ol", "findings").find_all("li")
    # spurious NaN before spurious Inf; of two Inf findings, the one with more elements first
    assert [li.attrs["class"] for li in items] == ["f-unexpected_nan", "f-unexpected_inf", "f-unexpected_inf"]
    ids = {n.attrs["id"] for n in tree.iter() if "id" in n.attrs}
    for li in items:
        assert li.find("a", "cid").attrs["href"][1:] in ids
    assert "float16" in items[1].text() and "bfloat16" in items[2].text()


def test_identical_plots_are_drawn_once() -> None:
    cell = judged_cell("a.softplus", "float16", ulps=lambda x: np.where(x > 1, 9.0, 0.0), max_ulp=1)
    other = judged_cell("b.sigmoid", "float16", oracle="sigmoid", ulps=lambda x: np.where(x > 1, 9.0, 0.0), max_ulp=1)
    page = render_html([Results(run_info(), (cell, other))])
    assert page.count('<use href="#plot-0"/>') == 1


def test_cells_with_the_same_results_share_one_block() -> None:
    """keras and tensorflow share kernels: the second cell is a line in the first one's
    block (its id, its command), which the matrix and the incidence row link to; the facts,
    plot, inputs and reason are the first one's, shown once."""
    cell = judged_cell("keras.softplus", "float16", ulps=lambda x: np.where(x > 1, 9.0, 0.0), max_ulp=1,
                       inf=lambda x: x > 60000)
    twin = judged_cell("tensorflow.softplus", "float16", ulps=lambda x: np.where(x > 1, 9.0, 0.0), max_ulp=1,
                       inf=lambda x: x > 60000)
    other = judged_cell("numpy.softplus", "float16", ulps=lambda x: np.where(x > 1, 2.0, 0.0), max_ulp=1)
    tree = parse(render_html([Results(run_info(), (cell, twin, other))]))
    blocks = tree.find_all("details", "cell")
    assert len(blocks) == 2
    first = next(d for d in blocks if d.find("span", "cid").text() == cell.spec.id)
    assert first.find_all("svg", "err") and first.find_all("table", "examples")
    assert "and 1 more cell with these results" in first.find("summary").text()
    assert first.find("p", "reason").text() == cell.reason  # spurious Inf and max ulp: shown
    line = first.find("ul", "same").find("li")
    assert line.find("span", "cid").text() == twin.spec.id
    assert line.find("pre", "repro").text().startswith("fpharness check tensorflow.softplus")
    # the matrix links each cell to its own place; the incidence table gives them one row
    links = {a.text(): a.attrs["href"] for a in tree.find("table", "incidence").find_all("a")}
    assert links == {"keras.softplus": f"#{first.attrs['id']}", "tensorflow.softplus": f"#{line.attrs['id']}"}
    assert len(tree.find("table", "incidence").find("tbody").find_all("tr")) == 1
    matrix = [a.attrs["href"] for a in _matrix(tree, "softplus").find_all("a")]
    assert sorted(matrix) == sorted({f"#{first.attrs['id']}", f"#{line.attrs['id']}", f"#{blocks[1].attrs['id']}"})


def test_cells_skipped_for_one_reason_share_one_block() -> None:
    reason = "float64 needs jax_enable_x64, which is off"
    cells = (
        other_cell("jax.softplus", "skipped", reason, dtype="float64"),
        other_cell("jax.softplus2", "skipped", reason, dtype="float64"),
        other_cell("jax.softplus3", "skipped", "something else", dtype="float64"),
        judged_cell("numpy.softplus", "float16"),
    )
    tree = parse(render_html([Results(run_info(), cells)]))
    skipped = tree.find_all("details", "st-skipped")
    assert [d.find("p", "reason").text() for d in skipped] == [reason, "something else"]
    assert [li.find("span", "cid").text() for li in skipped[0].find("ul", "same").find_all("li")] == [
        cells[1].spec.id]
    assert "and 1 more cell skipped for the same reason" in skipped[0].find("summary").text()
    ids = {n.attrs["id"] for n in tree.iter() if "id" in n.attrs}
    assert all(a.attrs["href"][1:] in ids for a in _matrix(tree, "softplus").find_all("a"))


def test_a_reason_that_only_restates_the_max_ulp_is_left_out(tree: Node) -> None:
    cell = judged_cell("numpy.softplus", "float16", ulps=lambda x: np.where((x > 1) & (x < 1e3), 9.0, 0.0), max_ulp=1)
    assert cell.reason == "max ulp 9 > 1"
    d = parse(render_html([Results(run_info(), (cell,))])).find("details", "cell")
    assert not d.find_all("p", "reason")  # the summary, the budget and the caption say it
    assert d.find("span", "mini").text() == "9 ulp"
    assert "max 1 ulp" in d.find("dl", "facts").text()
    assert "worst errors over 1 ulp" in d.find("table", "examples").find("tbody", "failing").text()
    # a reason that says more is shown whole
    assert _details(tree, "naive.softplus", "float16").find("p", "reason").text().startswith("unexpected_inf")


def test_a_cells_time_is_shown_from_a_second_on() -> None:
    quick = judged_cell("numpy.softplus", "float16", seconds=0.25)
    slow = judged_cell("numpy.softplus", "bfloat16", seconds=2.5)
    tree = parse(render_html([Results(run_info(), (quick, slow))]))
    facts = {d.find("span", "cid").text(): d.find("dl", "facts").text() for d in tree.find_all("details", "cell")}
    assert "time" not in facts[quick.spec.id]
    assert "time2.5 s (impl. 250 ms)" in facts[slow.spec.id]
