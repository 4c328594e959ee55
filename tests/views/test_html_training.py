"""The HTML report's training scenarios: the verdict in words, the loss plot, the layer x
step heatmap, the table at the verdict's step, the fix verdict, and a page of scenarios
alone.

Layer: reports. The scenarios are real: a planted torch model (its third layer overflows
float16 at step 11) and its float32 fix train once, in this process, beside their float64
shadows (``harness.execution.training.train``); longer runs and the other statuses are
built from those records, so the page's numbers are the ones the runner produces.
"""

from __future__ import annotations

import math
import re
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from html_crafted import Node, parse, run_info, suite_results

from harness.judgement.training import ScenarioResult, StepRecord
from harness.record.results import Results
from reports.html import render_html
from reports.html_training import MAX_COLUMNS, loss_plot, merged_scenarios, scenario_views

_MODELS = '''
import numpy as np

def planted():
    import torch
    m = torch.nn.Sequential(torch.nn.Linear(4, 8, bias=False), torch.nn.ReLU(), torch.nn.Linear(8, 8, bias=False),
                            torch.nn.Linear(8, 1, bias=False))
    with torch.no_grad():
        m[0].weight.fill_(0.25); m[2].weight.fill_(8.0); m[3].weight.fill_(2.0**-10)
    return m

def data():
    x = np.concatenate([np.full((4, 4), 2.0**k) for k in range(20)])
    return x, np.zeros((x.shape[0], 1))
'''

_SUITE = '''
schema = 1
[[scenario]]
name = "planted"
framework = "torch"
model = "models.py:planted"
data = "models.py:data"
loss = "mae"
optimizer = { name = "sgd", learning_rate = 0.0 }
policy = "float16"
steps = 14
batch_size = 4

[[scenario]]
name = "planted-float32"
framework = "torch"
model = "models.py:planted"
data = "models.py:data"
loss = "mae"
optimizer = { name = "sgd", learning_rate = 0.0 }
policy = "float32"
steps = 14
batch_size = 4
fixes = "planted"
claim = "float32 has the room <b>"
'''


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ScenarioResult, ScenarioResult]:
    pytest.importorskip("torch")
    from harness.execution.training import train
    from harness.plan.scenarios import resolve
    from harness.plan.suite import load_suite

    folder = tmp_path_factory.mktemp("scenarios")
    (folder / "models.py").write_text(textwrap.dedent(_MODELS), encoding="utf-8")
    (folder / "s.toml").write_text(_SUITE, encoding="utf-8")
    suite = load_suite(str(folder / "s.toml"))
    base, fix = (train(resolve(s)) for s in suite.scenarios)
    assert base.status == "nonfinite" and fix.status == "finite", (base.error, fix.error)
    return base, fix


@pytest.fixture(scope="module")
def results(trained: tuple[ScenarioResult, ScenarioResult]) -> Results:
    return Results(run_info(), (), trained)


@pytest.fixture(scope="module")
def page(results: Results) -> str:
    return render_html([results], sources=["results/train.json"])


@pytest.fixture(scope="module")
def tree(page: str) -> Node:
    return parse(page)


def _block(tree: Node, name: str) -> Node:
    for div in tree.find_all("div", "scenario"):
        if div.find("h3").text().split()[0] == name:
            return div
    raise AssertionError(f"no block for scenario {name}")


def _steps(s: ScenarioResult, n: int) -> ScenarioResult:
    """``s`` run for ``n`` steps: its records repeated, numbered on."""
    records = tuple(replace(s.records[i % len(s.records)], step=i + 1) for i in range(n))
    return replace(s, name=f"{s.name}-{n}", records=records, steps=n, fixes="", claim="")


# -- the verdict -----------------------------------------------------------------------------------


def test_verdict_names_the_step_layer_direction_and_cause(tree: Node) -> None:
    block = _block(tree, "planted")
    verdict = block.find("p", "verdict").text()
    assert verdict.startswith("first non-finite at step 11, layer 2 (Linear), forward (output), produced: overflow")
    lines = [li.text() for li in block.find("ul", "vlines").find_all("li")]
    assert "the float64 shadow was finite there" in lines
    assert "32 Inf of 32 values" in lines
    repro = block.find("pre", "repro").text()
    assert re.fullmatch(r"fpharness train \S*s\.toml --scenario planted --step 11", repro), repro
    assert "non-finite" in block.find("span", "pill").text()


def test_findings_list_the_nonfinite_scenario_with_a_link(tree: Node) -> None:
    items = tree.find("section", id="findings").find_all("li", "f-nonfinite")
    assert len(items) == 1 and "step 11, layer 2 (Linear)" in items[0].text()
    assert items[0].find("a").attrs["href"] == "#" + _block(tree, "planted").attrs["id"]


def test_a_finite_run_says_how_far_it_drifted(tree: Node) -> None:
    block = _block(tree, "planted-float32")
    assert block.find("p", "verdict").text().startswith("finite for 14 steps; final loss 0.00% from the float64")
    text = block.text()
    assert "the losses stayed within 1% of each other" in text
    assert "max bits of error p99: forward 0" in text
    assert "--step" not in block.find("pre", "repro").text()


def test_the_fix_verdict_and_the_claim(tree: Node, page: str) -> None:
    block = _block(tree, "planted-float32")
    fix = block.find("p", "fix")
    assert "fx-removed" in fix.classes
    assert fix.text().startswith("fix of planted: removed: finite for 14 steps")
    assert fix.find("a").attrs["href"] == "#" + _block(tree, "planted").attrs["id"]
    assert block.find("p", "claim").text() == "claim: “float32 has the room <b>”"
    assert "room <b>" not in page  # escaped
    assert "planted-float32" in _block(tree, "planted").text()  # the base names its fixes


def test_error_scenario_shows_the_error_step_and_traceback(trained: tuple[ScenarioResult, ScenarioResult]) -> None:
    base = trained[0]
    broken = replace(base, name="broken", status="error", first=None, records=base.records[:3], error_step=4,
                     error="at step 4: RuntimeError: boom", traceback="Traceback ...\nRuntimeError: boom")
    block = _block(parse(render_html([Results(run_info(), (), (broken,))])), "broken")
    assert block.find("p", "verdict").text() == "error at step 4: RuntimeError: boom"
    assert "--step 4" in block.find("pre", "repro").text()
    tb = block.find("details", "tb")
    assert "at step 4" in tb.find("summary").text() and "RuntimeError: boom" in tb.find("pre").text()
    # a process that died: no records, no plots, an error from elsewhere than the runner's steps
    died = replace(broken, name="died", records=(), error_step=None, error="its process died (exit code -9)",
                   traceback="", policy="float8_unknown")
    block = _block(parse(render_html([Results(run_info(), (), (died,))])), "died")
    assert block.find("p", "verdict").text() == "error: its process died (exit code -9)"
    assert not block.find_all("svg") and not block.find_all("table", "hm") and not block.find_all("details")


# -- the loss plot ---------------------------------------------------------------------------------


def test_loss_plot_has_both_runs_and_marks_the_nonfinite_step(tree: Node) -> None:
    svg = _block(tree, "planted").find("svg", "loss")
    assert svg.find("path", "low") and svg.find("path", "shadow")
    marks = svg.find_all("circle", "nf")
    assert len(marks) == 1 and marks[0].find("title").text().startswith("step 11: loss inf")
    assert "log scale" in svg.find("text", "axlabel").text()
    assert [t.text() for t in svg.find("g", "tick").find_all("text")]  # x ticks


def _loss_records(pairs: list[tuple[float, float]]) -> list[StepRecord]:
    return [StepRecord(i + 1, low, shadow, ()) for i, (low, shadow) in enumerate(pairs)]


def test_loss_plot_falls_back_to_linear_for_negative_losses_and_keeps_zeros() -> None:
    linear = str(loss_plot(_loss_records([(-1.0, -1.1), (-2.0, -2.0), (0.5, 0.5)])))
    assert "log scale" not in linear and 'class="low"' in linear
    with_zero = str(loss_plot(_loss_records([(1.0, 1.0), (0.0, 1e-3), (math.nan, 1e-4)])))
    assert "log scale" in with_zero and with_zero.count('class="nf"') == 1
    assert str(loss_plot([])) == ""


# -- the heatmap -----------------------------------------------------------------------------------


def test_heatmap_has_a_row_per_layer_and_stage_and_a_column_per_step(tree: Node, trained: tuple) -> None:
    base = trained[0]
    table = _block(tree, "planted").find("table", "hm")
    rows = table.find("tbody").find_all("tr")
    # five layers (the loss last): forward and ∂input each, ∂weights and the update for the
    # three Linear layers
    assert len(rows) == 16
    steps = len(base.records)
    assert steps == 11  # stopped once the weights were non-finite
    assert all(len(tr.find_all("td")) == steps for tr in rows)
    assert sum(int(th.attrs["colspan"]) for th in table.find("thead").find_all("th")[1:]) == steps
    labels = [th.text() for th in table.find_all("th", "ly")]
    assert labels == ["0 (Linear)", "1 (ReLU)", "2 (Linear)", "3 (Linear)", "loss (mae)"]


def test_nonfinite_cells_are_marked_and_the_first_is_outlined(tree: Node) -> None:
    table = _block(tree, "planted").find("table", "hm")
    bad = table.find_all("td", "nf")
    assert bad and all("Inf" in td.attrs["title"] or "NaN" in td.attrs["title"] for td in bad)
    assert all(td.attrs["title"].startswith("11:") for td in bad)
    first = table.find_all("td", "first")
    assert len(first) == 1 and "nf" in first[0].classes and "32 Inf of 32" in first[0].attrs["title"]
    # the row of layer 2's forward output, last column
    row = next(tr for tr in table.find("tbody").find_all("tr") if tr.find_all("th", "ly")
               and tr.find("th", "ly").text() == "2 (Linear)")
    assert row.find_all("td")[-1] is first[0]
    # a finite cell carries both colourings and its numbers
    fine = table.find("tbody").find("tr").find_all("td")[0]
    assert re.fullmatch(r"b\d h\d", fine.attrs["class"]), fine.attrs
    assert re.match(r"1: \|x\| \S+ ↑\S+ bits \S+/\S+", fine.attrs["title"])


def test_heatmap_switches_between_bits_and_headroom_without_script(tree: Node) -> None:
    wrap = _block(tree, "planted").find("div", "hmw")
    radios = wrap.find_all("input")
    assert [r.attrs["class"] for r in radios] == ["hb", "hr"] and "checked" in radios[0].attrs
    assert len({r.attrs["name"] for r in radios}) == 1
    assert "p = 11" in wrap.find("span", "lg-b").text()


def test_long_runs_are_bucketed(trained: tuple[ScenarioResult, ScenarioResult]) -> None:
    long = _steps(trained[1], 250)
    (view,) = scenario_views([long])
    assert view.columns == 84 and view.bucketed  # 3 steps a column
    tds = parse(str(view.heatmap)).find("tbody").find("tr").find_all("td")
    assert len(tds) == 84 and tds[1].attrs["title"].startswith("4–6:")
    (short,) = scenario_views([_steps(trained[1], MAX_COLUMNS)])
    assert short.columns == MAX_COLUMNS and not short.bucketed


def test_mixed_policy_scales_the_loss_rows_by_float32(trained: tuple[ScenarioResult, ScenarioResult]) -> None:
    (view,) = scenario_views([replace(trained[1], policy="mixed_float16")])
    assert view.precisions == "p = 11; ∂weights 24; loss 24"


# -- the table at the verdict's step ------------------------------------------------------------------


def test_layer_table_at_the_verdict_step(tree: Node) -> None:
    table = _block(tree, "planted").find("table", "layers")
    rows = {tr.find("th").text().split()[0]: tr for tr in table.find("tbody").find_all("tr")}
    assert list(rows) == ["0", "1", "2", "3", "loss"]
    statuses = {name: [td.text() for td in tr.find_all("td") if any(c.startswith("ls-") for c in td.classes)]
                for name, tr in rows.items()}
    assert statuses["0"][0] == "finite"
    assert statuses["2"][0] == "produced"
    assert statuses["3"][0] == "propagated" and statuses["loss"][0] == "propagated"
    produced = rows["2"].find("td", "ls-produced")
    assert "overflow" in produced.attrs["title"] and "shadow: max |x| 6.55e4" in produced.attrs["title"]


# -- the page ----------------------------------------------------------------------------------------


def test_a_page_of_scenarios_alone_has_no_cell_sections(tree: Node, page: str) -> None:
    sections = [s.attrs["id"] for s in tree.find_all("section")]
    assert sections == ["findings", "training", "runs"]
    assert "0 cells" not in page and "2 training scenarios" in tree.find("p", "sub").text()
    assert not tree.find_all("div", id="controls")
    toc = [a.attrs["href"] for a in tree.find("nav").find_all("a")]
    assert toc == ["#findings", "#training", "#runs"]
    pills = [a.text() for a in tree.find("p", "pills").find_all("a")]
    assert pills == ["1 finite", "1 non-finite"]
    assert "training.css" not in page and "table.hm td.nf" in page  # inlined, not linked


def test_cells_and_scenarios_share_a_page(results: Results) -> None:
    cells = suite_results()
    page = render_html([cells, results])
    tree = parse(page)
    ids = [s.attrs["id"] for s in tree.find_all("section")]
    assert ids.index("incidence") < ids.index("training") < ids.index("details")
    assert tree.find("nav").find("a", href="#training")
    assert "training scenarios" in [dt.text() for dt in tree.find("section", id="runs").find_all("dt")]


def test_a_page_without_scenarios_has_none_of_their_markup() -> None:
    page = render_html([suite_results()])
    assert 'id="training"' not in page and "table.hm" not in page and "#training" not in page


def test_later_files_replace_a_scenario_of_the_same_name(trained: tuple[ScenarioResult, ScenarioResult]) -> None:
    base, fix = trained
    newer = replace(base, policy="bfloat16")
    merged = merged_scenarios([(base, fix), (newer,)])
    assert [s.name for s in merged] == ["planted", "planted-float32"] and merged[0].policy == "bfloat16"


def test_nothing_is_loaded_from_the_network(tree: Node) -> None:
    for node in tree.iter():
        for attr in ("src", "href", "action", "xlink:href", "data"):
            value = node.attrs.get(attr, "")
            assert not re.match(r"\s*(https?:)?//", value), f"<{node.tag} {attr}={value!r}>"
    assert not tree.find_all("link") and not tree.find_all("img") and not tree.find_all("iframe")
    assert not re.search(r"url\(|@import|https?://", "".join(s.text() for s in tree.find_all("style")))


def test_a_50_step_scenario_stays_small(trained: tuple[ScenarioResult, ScenarioResult]) -> None:
    """The frameworks report is held under 3 MB; a scenario must not cost it more than
    about 60 KB per 50 steps (here 13 rows; a 15-row real run measured 53 KB)."""
    long = _steps(trained[1], 50)
    page = render_html([Results(run_info(), (), (long,))])
    start = page.index('<div class="scenario ')
    block = page[start:page.index("</section>", start)]
    assert len(block.encode()) < 60_000, len(block.encode())


def test_suite_path_is_relative_to_the_working_directory(trained: tuple[ScenarioResult, ScenarioResult],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    suite = Path(trained[0].suite)
    monkeypatch.chdir(suite.parent.parent)
    (view,) = scenario_views([trained[0]])
    assert view.repro == f"fpharness train {suite.parent.name}/s.toml --scenario planted --step 11"
