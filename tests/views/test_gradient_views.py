"""Gradient cells in every view: their own group, titled by the cell's subject.

Layer: reports. A results file of schema 2 mixes forward cells (``"pass": "forward"``) with
gradient cells (``"pass": "grad"``, ``"wrt"``, ``"cotangent"``); a schema-1 file has no
``pass`` at all. Every view groups, titles and labels by the subject
(:func:`reports.labels.subject`): ``softplus``, then right after it ``∂softplus`` (a
one-argument oracle), or ``∂binary_cross_entropy/∂p``. The terminal text is pinned by
golden files in tests/golden/ (regenerate with ``FPHARNESS_REGEN_GOLDEN=1``):
``gradient_terminal.txt`` (mixed) and ``terminal_forward.txt`` (forward only, as the
views printed it before gradients existed); the HTML report and the comparison views are
asked structural questions. The last test bounds the size of a report of ~2,500 cells.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from html_crafted import Node, cell_lines, judged_cell, other_cell, parse, run_info
from rich.console import Console

from harness.judgement.summary import Example
from harness.plan.cells import CellResult
from harness.record.compare import Kind, compare
from harness.record.results import Results, load_results
from oracles.formats import get_format
from reports.comparison import markdown, terminal_text
from reports.findings import collapsed_devices, findings, not_run_lines
from reports.html import render_html
from reports.labels import cotangent, group_order, inputs_label, is_grad, named_values, subject
from reports.terminal import print_results

GOLDEN = Path(__file__).parent.parent / "golden"
#: issue 14 §7: the main job's report, 3 MB (not MiB)
LIMIT_BYTES = 3_000_000


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("FPHARNESS_REGEN_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


# -- results-file dicts --------------------------------------------------------------------------


def _ex(index: int, category: str, xs: list[str], got: str, want: str, ulp: float | None,
        bits: list[str] | None = None) -> dict[str, Any]:
    bits = bits or [f"0x{0x3C00 + i:04x}" for i in range(len(xs))]
    return {"index": index, "category": category, "ulp": ulp, "input": bits, "input_values": xs, "got": "0x0000",
            "got_value": got, "want": "0x0001", "want_value": want, "exact": want}


def _inc(**counts: int) -> dict[str, int]:
    cats = ("unexpected_nan", "missing_nan", "unexpected_inf", "inherent_inf", "missing_inf", "lost_to_zero")
    return {c: counts.get(c, 0) for c in cats}


def _cell(oracle: str, impl: str, dtype: str, *, status: str = "pass", device: str = "cpu",
          inputs: str = "exhaustive", **kw: Any) -> dict[str, Any]:
    """A forward cell as a schema-1 file has it: no ``pass`` field."""
    out: dict[str, Any] = {
        "id": f"{oracle}[{impl}-{device}-{dtype}-{inputs}]", "oracle": oracle, "impl": impl,
        "framework": impl.split(".")[0], "device": device, "dtype": dtype, "out_dtype": dtype, "inputs": inputs,
        "params": {}, "status": status, "reason": kw.pop("reason", ""), "custom": False,
        "budget": {"max_ulp": 1.0, "allow": {"missing_nan": 0, "unexpected_inf": 0, "unexpected_nan": 0}},
        "repro": f"fpharness check {impl} --oracle {oracle} --dtype {dtype} --device {device} --inputs {inputs}",
        "n": 4096, "correctly_rounded": 4000, "ulp": {"count": 4096, "max": 0.5}, "incidence": _inc(),
        "worst": [], "examples": [],
    }
    out.update(kw)
    return out


def _grad(cell: dict[str, Any], wrt: str = "x", cot: str = "ones", *, single: bool = True) -> dict[str, Any]:
    """``cell`` judged as its gradient: schema-2 fields, the subject in the id, the cotangent
    at the end of the example inputs (as the runner stores them) and in the repro."""
    g = copy.deepcopy(cell)
    name = f"∂{g['oracle']}" if single else f"∂{g['oracle']}/∂{wrt}"
    extra = f"-cotangent={cot}" if cot != "ones" else ""
    g.update({"pass": "grad", "wrt": wrt, "cotangent": cot, "id": f"{name}{g['id'][len(g['oracle']):-1]}{extra}]",
              "repro": g["repro"] + f" --grad {wrt}" + (f" --cotangent {cot}" if cot != "ones" else "")})
    value, bits = ("1.0", "0x3c00") if cot == "ones" else ("-0.375", "0xb600")
    for key in ("worst", "examples"):
        for e in g[key]:
            e["input"], e["input_values"] = [*e["input"], bits], [*e["input_values"], value]
    return g


def forward_cells() -> list[dict[str, Any]]:
    """Two oracles, every status; a schema-1 file's cells."""
    return [
        _cell("softplus", "torch.softplus", "float16", ulp={"count": 4096, "max": 0.51}),
        _cell("softplus", "jax.softplus", "bfloat16", status="fail", reason="max ulp 40 > 1",
              ulp={"count": 4000, "max": 40.0}, incidence=_inc(lost_to_zero=96),
              worst=[_ex(7, "worst", ["-20.5"], "0.0", "1.2e-9", 40.0),
                     _ex(8, "worst", ["-21.0"], "0.0", "7.5e-10", 39.0)]),
        _cell("softplus", "jax.softplus", "bfloat16", status="fail", inputs="special", reason="unexpected_nan 2 > 0",
              n=40, correctly_rounded=30, ulp={"count": 38, "max": 0.5}, incidence=_inc(unexpected_nan=2),
              examples=[_ex(3, "unexpected_nan", ["inf"], "nan", "inf", None)]),
        _cell("softplus", "torch.softplus", "float16", status="skipped", device="cuda",
              reason="no CUDA device: torch 2.13.0+cpu is a CPU-only build (torch.version.cuda is None)"),
        _cell("binary_cross_entropy", "torch.binary_cross_entropy", "float16", status="fail", inputs="random:2000:0",
              reason="max ulp 3 > 1", ulp={"count": 2000, "max": 3.0},
              worst=[_ex(11, "worst", ["0.25", "1.0"], "1.387", "1.386", 3.0)]),
        _cell("binary_cross_entropy", "numpy.bce", "float16", status="error", inputs="random:2000:0",
              reason="TypeError: boom"),
    ]


def mixed_cells() -> list[dict[str, Any]]:
    """The forward cells, and gradients of both oracles: ``∂softplus`` with cotangents ones
    and random, ``∂binary_cross_entropy/∂p`` that raised, a skipped gradient on cuda. The
    gradients come first in the file: the views still put each after its forward group."""
    fwd = forward_cells()
    grads = [
        _grad(_cell("softplus", "torch.softplus", "float16", ulp={"count": 4096, "max": 1.0})),
        _grad(_cell("softplus", "torch.softplus", "float16", status="fail", reason="max ulp 3 > 1",
                    ulp={"count": 4096, "max": 3.0},
                    worst=[_ex(5, "worst", ["9.078125"], "0.0001141", "0.0001140", 3.0)]), cot="random"),
        _grad(_cell("softplus", "jax.softplus", "bfloat16", status="fail", inputs="special",
                    reason="unexpected_nan 4 > 0", n=40, correctly_rounded=36, ulp={"count": 36, "max": 0.5},
                    incidence=_inc(unexpected_nan=4), examples=[_ex(2, "unexpected_nan", ["inf"], "nan", "1.0", None)])),
        _grad(_cell("softplus", "torch.softplus", "float16", status="skipped", device="cuda",
                    reason="no CUDA device: torch 2.13.0+cpu is a CPU-only build (torch.version.cuda is None)")),
        _grad(_cell("binary_cross_entropy", "torch.binary_cross_entropy", "float16", status="error",
                    inputs="random:2000:0", reason="oracle: no gradient oracle for binary_cross_entropy with respect"
                    " to p"), wrt="p", single=False),
    ]
    return grads + fwd


def _render(cells: list[dict[str, Any]], **kw: Any) -> str:
    buf = io.StringIO()
    print_results(cells, console=Console(file=buf, width=140, no_color=True, highlight=False), **kw)
    return buf.getvalue()


# -- the subject and its helpers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        pytest.param({"oracle": "softplus"}, "softplus", id="schema-1"),
        pytest.param({"oracle": "softplus", "pass": "forward"}, "softplus", id="forward"),
        pytest.param({"oracle": "softplus", "pass": "grad", "wrt": "x"}, "∂softplus", id="one-argument"),
        pytest.param({"oracle": "binary_cross_entropy", "pass": "grad", "wrt": "p"}, "∂binary_cross_entropy/∂p",
                     id="several-arguments"),
        pytest.param({"oracle": "made_up", "pass": "grad", "wrt": "x"}, "∂made_up/∂x", id="unknown-oracle"),
        pytest.param({"oracle": "softplus", "wrt": "x"}, "softplus", id="wrt-without-pass-is-forward"),
    ],
)
def test_subject_mirrors_the_cell_spec(cell: dict[str, Any], expected: str) -> None:
    assert subject(cell) == expected


def test_a_results_file_and_the_labels_agree_on_the_subject(tmp_path: Path) -> None:
    forward = judged_cell("torch.softplus", "float16", step=64)
    cells = (forward, replace(forward, spec=replace(forward.spec, wrt="x", cotangent="random")))
    Results(run_info(), cells).write(tmp_path / "r.json")
    for c in json.loads((tmp_path / "r.json").read_text())["cells"]:
        spec = CellResult.from_json(c).spec
        assert subject(c) == spec.subject and is_grad(c) == spec.is_grad
        assert c["id"].startswith(subject(c) + "[")
    assert [inputs_label(c) for c in json.loads((tmp_path / "r.json").read_text())["cells"]] == [
        "exhaustive", "exhaustive · cot=random"]


def test_groups_follow_their_forward_group() -> None:
    keys = [("softplus", "x"), ("exp", ""), ("softplus", ""), ("bce", "y"), ("bce", "p"), ("exp", "x")]
    assert group_order(keys) == [("softplus", ""), ("softplus", "x"), ("exp", ""), ("exp", "x"), ("bce", "y"),
                                 ("bce", "p")]


def test_example_inputs_of_a_gradient_name_the_cotangent() -> None:
    g = _grad(_cell("binary_cross_entropy", "t.bce", "float16",
                    worst=[_ex(1, "worst", ["0.25", "1.0"], "1", "1", 2.0)]), wrt="p", single=False)
    e = Example.from_json(g["worst"][0])
    assert named_values(g, e) == ("p=0.25", "y=1.0", "cotangent=1.0")
    assert cotangent(g) == "ones" and cotangent(forward_cells()[0]) == ""
    fwd = forward_cells()[4]
    assert named_values(fwd, Example.from_json(fwd["worst"][0])) == ("0.25", "1.0")  # forward: as before


# -- terminal, findings ---------------------------------------------------------------------------


def test_forward_only_terminal_output_is_unchanged_golden() -> None:
    """Forward cells print as they did before gradients existed (the golden file was
    written by that version), and a schema-1 cell (no ``pass``) prints as a forward one."""
    text = _render(forward_cells()) + "=====\n" + _render(forward_cells(), details=True)
    _golden("terminal_forward.txt", text)
    marked = [{**c, "pass": "forward"} for c in forward_cells()]
    assert _render(marked) + "=====\n" + _render(marked, details=True) == text


def test_mixed_terminal_output_golden() -> None:
    text = _render(mixed_cells()) + "=====\n" + _render(mixed_cells(), details=True)
    _golden("gradient_terminal.txt", text)


def test_gradient_tables_are_titled_by_the_subject_after_their_forward_table() -> None:
    out = _render(mixed_cells())
    titles = [line.split(" · ")[0] for line in out.splitlines() if re.match(r"^∂?\w[\w∂/]* · cpu", line)]
    assert titles == ["softplus", "∂softplus", "binary_cross_entropy", "∂binary_cross_entropy/∂p"]
    # a cotangent other than ones is a row of its own, and says so
    assert re.search(r"^torch\.softplus · cot=random +3 ulp ✗", out, re.M)
    details = _render(mixed_cells(), details=True)
    assert re.search(r"^torch\.softplus +exhaustive · cot=random +3 ulp", details, re.M)
    assert "    x=0x3c00 (9.078125), cotangent=0xb600 (-0.375) gave 0.0001141" in details


def test_findings_keep_gradients_apart_and_say_so() -> None:
    found = findings(mixed_cells())
    lines = [f.line() for f in found]
    # the forward and the gradient defect of jax.softplus bfloat16 are two findings
    assert "∂softplus jax.softplus bfloat16: 4 spurious NaN (e.g. x=inf, cotangent=1.0), max 0.5 ulp" \
           "  [∂softplus[jax.softplus-cpu-bfloat16-special]]" in lines
    assert "jax.softplus bfloat16: 2 spurious NaN (e.g. x=inf), max 0.5 ulp" \
           "  [softplus[jax.softplus-cpu-bfloat16-special]]" in lines
    assert "∂softplus torch.softplus float16: max 3 ulp > 1, worst at x=9.078125, cotangent=-0.375" \
           "  [∂softplus[torch.softplus-cpu-float16-exhaustive-cotangent=random]]" in lines
    assert not_run_lines(mixed_cells())[0].startswith("∂binary_cross_entropy/∂p torch.binary_cross_entropy float16:")
    # the collapsed device says that gradients are among what did not run there
    assert [d.line() for d in collapsed_devices(mixed_cells())] == [
        "cuda: skipped (forward and gradient cells) — torch 2.13.0+cpu is a CPU-only build"]
    assert [d.line() for d in collapsed_devices(forward_cells())] == ["cuda: skipped — torch 2.13.0+cpu is a CPU-only build"]


# -- the HTML report ------------------------------------------------------------------------------


def _with_cotangent(cell: CellResult, value: float, *more: tuple[str, str]) -> CellResult:
    """``cell``'s examples with inputs ``more`` and then the cotangent, as a gradient's are."""
    fmt = get_format(cell.spec.dtype)
    bits = fmt.hex_of_bits(int(fmt.to_bits(fmt.from_float64([value]))[0]))
    extra_bits = (*(b for b, _v in more), bits)
    extra_values = (*(v for _b, v in more), repr(value))
    s = cell.summary
    assert s is not None
    moved = [tuple(replace(e, input=e.input + extra_bits, input_values=e.input_values + extra_values) for e in es)
             for es in (s.worst, s.examples)]
    return replace(cell, summary=replace(s, worst=moved[0], examples=moved[1]))


def _as_grad(cell: CellResult, wrt: str = "x", cot: str = "ones", *more: tuple[str, str]) -> CellResult:
    return _with_cotangent(replace(cell, spec=replace(cell.spec, wrt=wrt, cotangent=cot)), 1.0 if cot == "ones"
                           else -0.375, *more)


def mixed_results() -> Results:
    fwd = judged_cell("torch.softplus", "float16", framework="torch", ulps=lambda x: np.where(x > 3, 2.0, 0.0))
    naive = judged_cell("naive.softplus", "float16", zero=lambda x: x < -17.3, max_ulp=1)
    grad_ones = _as_grad(judged_cell("torch.softplus", "float16", framework="torch",
                                     ulps=lambda x: np.where(x > 5, 9.0, 0.0), max_ulp=4))
    grad_random = _as_grad(judged_cell("torch.softplus", "float16", framework="torch",
                                       ulps=lambda x: np.where(x < -5, 1.0, 0.0), max_ulp=4), "x", "random")
    bce = _as_grad(judged_cell("torch.binary_cross_entropy", "float16", oracle="binary_cross_entropy",
                               framework="torch", ulps=lambda x: np.where(x > 0.5, 6.0, 0.0), max_ulp=4, step=64),
                   "p", "ones", ("0x3c00", "1.0"))
    cuda = other_cell("torch.softplus", "skipped", "no CUDA device: torch 2.3.0 was built without CUDA", device="cuda")
    cuda_grad = replace(cuda, spec=replace(cuda.spec, wrt="x"))
    return Results(run_info(), (grad_ones, bce, fwd, naive, grad_random, cuda, cuda_grad))


@pytest.fixture(scope="module")
def mixed_tree() -> Node:
    return parse(render_html([mixed_results()]))


def test_html_gradient_groups_follow_their_forward_group(mixed_tree: Node) -> None:
    matrices = mixed_tree.find_all("table", "matrix")
    assert [(t.attrs["data-oracle"], t.attrs.get("data-pass", ""), t.attrs.get("data-wrt", "")) for t in matrices] == [
        ("binary_cross_entropy", "grad", "p"), ("softplus", "", ""), ("softplus", "grad", "x")]
    headings = [d.find("h3").text() for d in mixed_tree.find("section", id="overview").find_all("div", "oracle")]
    assert headings[0] == "∂binary_cross_entropy/∂p — gradient (vector-Jacobian product), cotangent ones"
    assert headings[1].startswith("softplus softplus(x")  # the forward heading as before: name, signature
    assert headings[2] == "∂softplus — gradient (vector-Jacobian product), cotangents ones, random"
    # the gradient sections are marked, in the contents, the incidence tables and the details too
    grads = [d for d in mixed_tree.find_all("div", "oracle") if "grad" in d.classes]
    assert [re.sub(r"-[0-9a-f]{6}$", "", d.attrs["id"]) for d in grads] == ["grad-binary_cross_entropy-p",
                                                                           "grad-softplus-x"]
    toc = {a.text().strip(): a for a in mixed_tree.find("nav").find_all("a", "oracle-link")}
    assert list(toc) == ["∂binary_cross_entropy/∂p", "softplus", "∂softplus"]
    assert "grad" in toc["∂softplus"].classes and toc["∂softplus"].attrs["href"] == f"#{grads[1].attrs['id']}"
    details = [h.text() for h in mixed_tree.find("section", id="details").find_all("h3")]
    assert details == [headings[0], "softplus", headings[2]]
    assert "2 oracles" in mixed_tree.find("p", "sub").text()


def test_html_gradient_cells_say_what_they_judge(mixed_tree: Node) -> None:
    table = mixed_tree.find("table", "matrix", data_pass="grad", data_wrt="x")
    assert sorted(td.text() for td in table.find_all("td", "inputs")) == ["exhaustive", "exhaustive · cot=random"]
    cells = {d.find("span", "cid").text(): d for d in mixed_tree.find_all("details", "cell")}
    assert set(cells) >= {"∂softplus[torch.softplus-cpu-float16-exhaustive]",
                          "∂softplus[torch.softplus-cpu-float16-exhaustive-cotangent=random]",
                          "∂binary_cross_entropy/∂p[torch.binary_cross_entropy-cpu-float16-exhaustive]",
                          "softplus[torch.softplus-cpu-float16-exhaustive]"}
    grad = cells["∂softplus[torch.softplus-cpu-float16-exhaustive]"]
    facts = grad.find("dl", "facts").text()
    assert "gradient∂/∂x, cotangent ones" in facts
    rows = grad.find("table", "examples").find("tbody", "failing").find_all("tr")[1:]
    # the input cell: its bits over its values
    assert rows and all(re.fullmatch(r"x=[-0-9.e]+, cotangent=1\.0", cell_lines(r.find_all("td")[0])[1]) for r in rows)
    assert grad.find("pre", "repro").text().endswith("--grad x")
    bce = cells["∂binary_cross_entropy/∂p[torch.binary_cross_entropy-cpu-float16-exhaustive]"]
    values = cell_lines(bce.find("table", "examples").find_all("tr")[2].find_all("td")[0])[1]
    assert re.fullmatch(r"p=[-0-9.e]+, y=1\.0, cotangent=1\.0", values)
    assert "gradient" not in cells["softplus[torch.softplus-cpu-float16-exhaustive]"].find("dl", "facts").text()
    findings_ = [li.text() for li in mixed_tree.find("ol", "findings").find_all("li")]
    assert any(t.startswith("∂softplus torch.softplus float16: ") and "∂softplus[torch.softplus-cpu-float16-exhaustive]"
               in t for t in findings_), findings_
    collapsed = mixed_tree.find("section", id="findings").find("p", "collapsed").text()
    assert collapsed.startswith("cuda: skipped — torch 2.3.0") and "2 cells" in collapsed


def test_html_links_resolve_and_gradients_read_without_javascript(mixed_tree: Node) -> None:
    ids = [n.attrs["id"] for n in mixed_tree.iter() if "id" in n.attrs]
    assert len(ids) == len(set(ids))
    hrefs = [a.attrs["href"][1:] for a in mixed_tree.find_all("a") if a.attrs.get("href", "").startswith("#")]
    assert set(hrefs) <= set(ids)
    # nothing of a gradient section is left to the script: failing cells start open, the
    # headings are text, and the script is the one optional one at the end
    failing = [d for d in mixed_tree.find_all("details", "cell") if "st-fail" in d.classes]
    assert failing and all("open" in d.attrs for d in failing)
    assert len(mixed_tree.find_all("script")) == 1


def test_a_schema_1_results_file_renders_as_forward_cells(tmp_path: Path) -> None:
    cells = (judged_cell("torch.softplus", "float16", step=64), judged_cell("numpy.logaddexp", "float16", step=64))
    current = Results(run_info(), cells)
    data = current.to_json()
    data["schema"] = 1
    for c in data["cells"]:
        del c["pass"]
    (tmp_path / "old.json").write_text(json.dumps(data), encoding="utf-8")
    old = load_results(tmp_path / "old.json")
    assert old.cells == current.cells
    strip = re.compile(r"generated [^<]*")
    assert strip.sub("", render_html([old])) == strip.sub("", render_html([current]))
    tree = parse(render_html([old]))
    assert [t.attrs.get("data-pass", "") for t in tree.find_all("table", "matrix")] == [""]
    assert not tree.find_all(cls="grad")


# -- comparison ------------------------------------------------------------------------------------


def test_comparison_views_key_cells_with_their_pass() -> None:
    fwd = judged_cell("torch.softplus", "float16", framework="torch", step=64)
    grad = _as_grad(judged_cell("torch.softplus", "float16", framework="torch", step=64))
    worse = _as_grad(judged_cell("torch.softplus", "float16", framework="torch", step=64,
                                 ulps=lambda x: np.where(x > 1, 3.0, 0.0), max_ulp=1))
    other = judged_cell("numpy.softplus", "float16", step=64)
    other_worse = judged_cell("numpy.softplus", "float16", step=64, ulps=lambda x: np.where(x > 1, 3.0, 0.0),
                              max_ulp=1)
    tanh = judged_cell("numpy.tanh", "float16", oracle="tanh", step=64)
    tanh_worse = judged_cell("numpy.tanh", "float16", oracle="tanh", step=64, ulps=lambda x: np.where(x > 1, 3.0, 0.0),
                             max_ulp=1)
    base = Results(run_info(), (grad, fwd, other, tanh))
    cur = Results(run_info("2026-01-02T00:00:00+00:00"), (worse, fwd, other_worse, tanh_worse))
    comparison = compare(base, cur, labels=("base.json", "cur.json"))
    by_id = {v.id: v for v in comparison.verdicts}
    assert by_id["softplus[torch.softplus-cpu-float16-exhaustive]"].kind is Kind.UNCHANGED
    assert by_id["∂softplus[torch.softplus-cpu-float16-exhaustive]"].kind is Kind.NEW_FAILURE
    text = terminal_text(comparison, width=160)
    rows = [line.split()[2] for line in text.splitlines() if line.strip().startswith("new failure")]
    # within a kind, an oracle's gradient rows follow its forward rows (not every forward id)
    assert rows == ["softplus[numpy.softplus-cpu-float16-exhaustive]", "∂softplus[torch.softplus-cpu-float16-exhaustive]",
                    "tanh[numpy.tanh-cpu-float16-exhaustive]"]
    md = markdown(comparison)
    assert [m for m in re.findall(r"^\| \*\*new failure\*\* \| `([^`]*)`", md, re.M)] == rows
    assert "- `softplus[torch.softplus-cpu-float16-exhaustive]`" in md  # the unchanged forward cell, apart
    tree = parse(render_html([cur], baseline=base))
    listed = [td.text() for td in tree.find("table", "compare").find_all("td", "cid")]
    assert listed == rows


# -- size ------------------------------------------------------------------------------------------


def _pool() -> list[CellResult]:
    """Judged cells of the kinds a suite has: correct, faithful, over budget with errors
    spread, flushed to zero, spurious Inf, and a row-wise one."""
    kw: dict[str, Any] = {"step": 16}
    return [
        judged_cell("p.softplus", "float16", **kw),
        judged_cell("p.softplus", "bfloat16", ulps=lambda x: np.where(np.abs(x) < 1, 1.0, 0.0), **kw),
        judged_cell("p.softplus", "float16", ulps=lambda x: np.where(x > 2, 3.0, 0.0), max_ulp=4, **kw),
        judged_cell("f.softplus", "float16", ulps=lambda x: np.where(x > 2, 7.0, np.where(x < -3, 40.0, 0.0)), max_ulp=4,
                    **kw),
        judged_cell("f.softplus", "bfloat16", zero=lambda x: np.abs(x) < 1e-30, max_ulp=1, **kw),
        judged_cell("f.softplus", "float16", inf=lambda x: x > 11, ulps=lambda x: np.where(x < 0, 2.0, 0.0), max_ulp=1,
                    **kw),
        judged_cell("f.softplus", "bfloat16", nan=lambda x: x < -1e4, ulps=lambda x: np.where(x > 0, 5.0, 0.0),
                    max_ulp=4, **kw),
    ]


def synthetic_suite(cells: int = 2500) -> Results:
    """~2,500 cells shaped like the frameworks suite once it judges gradients: about half of
    them skipped on a device the machine lacks, the rest passing and failing in the
    proportions of the main job, as forward cells and gradients (cotangent ones and random),
    every one with its own numbers (no two cells share their results or their plots)."""
    pool = _pool()
    out: list[CellResult] = []
    for i in range(cells):
        impl = f"fw{i % 40:02d}.softplus"
        if i % 2:
            cell = other_cell(impl, "skipped", "no CUDA device: torch 2.3.0 was built without CUDA", device="cuda")
        elif i % 50 == 4:
            cell = other_cell(impl, "error", f"RuntimeError: kernel {i} failed")
        else:
            base = pool[(i // 2) % len(pool)]
            s = base.summary
            assert s is not None and base.profile is not None
            # own numbers: a few more incorrectly rounded elements, and larger errors along the profile
            rows = [[*r[:4], None if r[4] is None else float(r[4]) * (1 + i / 997), *r[5:]] for r in base.profile["rows"]]
            cell = replace(base, summary=replace(s, correctly_rounded=s.correctly_rounded - i % 89),
                           profile={**base.profile, "rows": rows})
        spec = replace(cell.spec, impl=impl, inputs=f"random:{1000 + i}:0", framework=impl.split(".")[0])
        if i % 4 >= 2:  # half of them gradients, one in four of those with random cotangents
            spec = replace(spec, wrt="x", cotangent="random" if i % 16 >= 12 else "ones")
        out.append(replace(cell, spec=spec))
    if any(c.spec.is_grad for c in out):
        out = [_with_cotangent(c, 1.0) if c.spec.is_grad and c.summary is not None else c for c in out]
    return Results(run_info(), tuple(out))


def test_a_report_of_2500_cells_stays_under_3_mb() -> None:
    results = synthetic_suite()
    assert len(results.cells) == 2500 and sum(c.spec.is_grad for c in results.cells) == 1250
    page = render_html([results])
    size = len(page.encode("utf-8"))
    tree = parse(page)
    shown = tree.find_all("details", "cell")
    assert len(shown) == 1250  # the skipped device collapsed; every other cell has its details
    assert not tree.find_all("p", "same")  # no cell borrows another's results: each is paid for in full
    passing = [d for d in shown if "st-pass" in d.classes]
    assert passing
    per_pass = sum(len(_html(page, d.attrs["id"]).encode()) for d in passing) / len(passing)
    assert per_pass < 1_200, per_pass
    assert size < LIMIT_BYTES, f"{size:,} bytes for {len(results.cells):,} cells"


def _html(page: str, anchor: str) -> str:
    """The markup of the cell details with id ``anchor``."""
    start = page.index(f'<details class="cell st-pass" id="{anchor}"')
    return page[start:page.index("</details>", start) + len("</details>")]
