"""The findings (issue 14): what breaks a budget, the ranked defects, the short list a
screen shows, collapsed devices.

Layer: reports. Cells are schema-1 dicts written here, shaped like the cells of the main
job (``exp`` in bfloat16 on JAX: inherent overflows stored as examples, the results flushed
to zero only among the worst); the terminal text is pinned by golden files in
tests/golden/ (regenerate with ``FPHARNESS_REGEN_GOLDEN=1``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from rich.console import Console

from reports.findings import SHORTLIST, collapsed_devices, failing_elements, findings, not_run_lines, shortlist
from reports.terminal import findings_lines, print_results

GOLDEN = Path(__file__).parent.parent / "golden"


def _example(index: int, category: str, x: str, got: str, want: str, ulp: float | None, *, bits: str = "0x0000",
             got_bits: str = "0x0000", want_bits: str = "0x0001") -> dict[str, Any]:
    return {"index": index, "category": category, "ulp": ulp, "input": [bits], "input_values": [x], "got": got_bits,
            "got_value": got, "want": want_bits, "want_value": want, "exact": want}


def _cell(impl: str, dtype: str, *, status: str = "fail", device: str = "cpu", oracle: str = "exp",
          inputs: str = "exhaustive", **kw: Any) -> dict[str, Any]:
    framework = impl.split(".")[0]
    cell: dict[str, Any] = {
        "id": f"{oracle}[{impl}-{device}-{dtype}-{inputs}]", "oracle": oracle, "impl": impl, "framework": framework,
        "device": device, "dtype": dtype, "out_dtype": dtype, "inputs": inputs, "params": {}, "status": status,
        "reason": kw.pop("reason", ""), "budget": {"max_ulp": 1.0, "allow": {"inherent_inf": True, "missing_nan": 0,
                                                                              "unexpected_inf": 0, "unexpected_nan": 0}},
        "repro": f"fpharness check {impl} --oracle {oracle} --dtype {dtype} --device {device} --inputs {inputs}",
        "n": 65536, "correctly_rounded": 65000, "ulp": None, "incidence": None, "worst": [], "examples": [],
    }
    cell.update(kw)
    return cell


def _incidence(**counts: int) -> dict[str, int]:
    cats = ("unexpected_nan", "missing_nan", "unexpected_inf", "inherent_inf", "missing_inf", "lost_to_zero")
    return {c: counts.get(c, 0) for c in cats}


def flushed_exp(impl: str = "jax.exp") -> dict[str, Any]:
    """exp bfloat16 as the main job found it: 15,567 inherent overflows (correct), 11
    subnormal results flushed to 0 (max 108.7 ulp > 1)."""
    return _cell(
        impl, "bfloat16",
        reason="max ulp 108.698 > 1; looks like flush-to-zero: all 11 results lost to 0 are subnormal in bfloat16",
        ulp={"count": 49715, "max": 108.698, "mean": 0.03, "p50": 0.0, "p90": 0.02, "p99": 0.46, "p999": 0.5},
        incidence=_incidence(inherent_inf=15567, lost_to_zero=11),
        examples=[_example(17074 + i, "inherent_inf", x, "inf", "inf", None, bits=b, got_bits="0x7f80",
                           want_bits="0x7f80") for i, (b, x) in enumerate([("0x42b2", "89.0"), ("0x42b3", "89.5")])],
        worst=[_example(49839 + i, "worst", x, "0.0", w, u, bits=b)
               for i, (b, x, w, u) in enumerate([("0xc2af", "-87.5", "1.001e-38", 108.698),
                                                  ("0xc2b0", "-88.0", "6.061e-39", 65.93),
                                                  ("0xc2b1", "-88.5", "3.673e-39", 39.99),
                                                  ("0xc2b2", "-89.0", "2.204e-39", 24.25)])],
    )


def crafted_cells() -> list[dict[str, Any]]:
    nan = _cell("keras.binary_cross_entropy", "float16", oracle="binary_cross_entropy", inputs="special",
                ulp={"count": 80, "max": 2046.0}, incidence=_incidence(unexpected_nan=388),
                examples=[_example(3, "unexpected_nan", "1.0", "nan", "0.0", None, bits="0x3c00")])
    over = _cell("jax.expm1", "float16", oracle="expm1", reason="max ulp 2.11 > 1",
                 ulp={"count": 65000, "max": 2.11}, incidence=_incidence(),
                 worst=[_example(7, "worst", "0.05576", "0.05737", "0.05734", 2.11, bits="0x2b23")])
    passing = _cell("torch.exp", "bfloat16", status="pass", ulp={"count": 49715, "max": 0.5},
                    incidence=_incidence(inherent_inf=15567))
    skipped = [
        _cell("torch.exp", "bfloat16", status="skipped", device="cuda",
              reason="no CUDA device: torch 2.13.0+cpu is a CPU-only build (torch.version.cuda is None)"),
        _cell("jax.exp", "bfloat16", status="skipped", device="cuda",
              reason="no CUDA device: jax.devices('cuda') found none (jax platforms: cpu)"),
        _cell("tensorflow.exp", "bfloat16", status="skipped", device="cuda",
              reason="no CUDA device: tf.config.list_physical_devices('GPU') is empty"),
        _cell("numpy.exp", "bfloat16", status="skipped", device="cuda", reason="numpy runs on the CPU only"),
    ]
    error = _cell("numpy.logsumexp", "bfloat16", status="error", oracle="logsumexp", inputs="special",
                  reason="TypeError: dtype argument must be a NumPy dtype, but it is a <class 'ml_dtypes.bfloat16'>.")
    return [over, flushed_exp(), flushed_exp("tensorflow.exp"), passing, nan, error, *skipped]


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("FPHARNESS_REGEN_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_failing_elements_are_the_ones_over_budget_not_the_correct_overflows() -> None:
    groups = failing_elements(flushed_exp())
    assert [g.title for g in groups] == ["worst errors over 1 ulp"]
    shown = [e for g in groups for e in g.examples]
    assert [e.input_values[0] for e in shown] == ["-87.5", "-88.0", "-88.5"]
    assert {e.category for e in shown} == {"lost_to_zero"}


def test_failing_elements_list_a_category_over_its_allowance_before_ulp() -> None:
    cell = flushed_exp()
    cell["incidence"] = _incidence(inherent_inf=15567, lost_to_zero=11, unexpected_inf=2)
    cell["examples"].append(_example(9, "unexpected_inf", "3.0", "inf", "20.08", None, bits="0x4040"))
    groups = failing_elements(cell)
    assert [g.category for g in groups] == ["unexpected_inf", "ulp"]
    assert all(e.category != "inherent_inf" for g in groups for e in g.examples)


def test_findings_rank_nan_then_lost_to_zero_then_budget_and_merge_shared_kernels() -> None:
    found = findings(crafted_cells())
    assert [f.category for f in found] == ["unexpected_nan", "lost_to_zero", "budget"]
    assert found[1].subject == "jax.exp, tensorflow.exp bfloat16"
    assert found[1].text == "11 subnormal results flushed to 0 (e.g. x=-87.5), max 109 ulp"


def test_findings_summary_golden() -> None:
    _golden("findings_terminal.txt", "\n".join(findings_lines(crafted_cells())) + "\n")


def test_collapsed_device_line_golden() -> None:
    lines = [d.line() for d in collapsed_devices(crafted_cells())]
    assert len(lines) == 1
    _golden("collapsed_device.txt", "\n".join(lines) + "\n")


def _render(cells: list[dict[str, Any]], **kw: Any) -> str:
    buf = io.StringIO()
    print_results(cells, console=Console(file=buf, width=140, no_color=True, highlight=False), **kw)
    return buf.getvalue()


def test_default_output_is_tables_then_findings_without_per_cell_blocks() -> None:
    out = _render(crafted_cells())
    assert "repro:" not in out and "gave" not in out
    lines = out.rstrip("\n").splitlines()
    assert lines[-1].startswith("10 cells: 1 passed, 4 failed, 1 errors, 4 skipped")
    assert any(line.startswith("findings: 3 defects") for line in lines)
    assert "cuda" not in "".join(line for line in lines if "│" in line or "float16" in line or "bfloat16" in line)
    assert sum(1 for line in lines if line.startswith("cuda: skipped — ")) == 1


def test_details_show_the_failing_elements_first() -> None:
    out = _render([flushed_exp()], details=True)
    lines = out.splitlines()
    first = next(line for line in lines if line.startswith("    ") and " gave " in line)
    assert first.strip().startswith("0xc2af (-87.5) gave 0.0")
    assert "gave inf" not in out
    assert any(line.startswith("    repro: fpharness check jax.exp") for line in lines)


def test_metric_picks_what_the_table_shows_and_missing_fields_read_as_a_dash() -> None:
    cells = [flushed_exp()]
    assert "109 ulp" in _render(cells)
    bits = _render(cells, metric="bits")
    assert "- →0 ✗" in bits and "109 ulp" not in bits.split("findings")[0]
    cells[0]["bits"] = {"count": 49715, "max": 7.0, "p50": 0.0}
    assert "7 bits →0 ✗" in _render(cells, metric="bits")


# -- the short list: what a screen shows of many findings ---------------------------------


def many_findings() -> list[dict[str, Any]]:
    """More findings than a screen holds: one spurious NaN in three dtypes (in the same
    words), a flush to zero, errors over budget in fifty implementations, and one
    implementation that raises in two dtypes."""
    cells = [
        _cell("jax.silu", dtype, oracle="silu", inputs="special", ulp={"count": 40, "max": 2.0 if dtype == "float16" else 0.5},
              incidence=_incidence(unexpected_nan=1), examples=[_example(3, "unexpected_nan", "-inf", "nan", "-0.0", None)])
        for dtype in ("float32", "float16", "bfloat16")
    ]
    cells.append(flushed_exp())
    cells += [_cell(f"impl{i:02d}.expm1", "float16", oracle="expm1", reason=f"max ulp {2 + i} > 1",
                    ulp={"count": 65000, "max": 2.0 + i}, incidence=_incidence(),
                    worst=[_example(7, "worst", "0.05576", "0.05737", "0.05734", 2.0 + i, bits="0x2b23")])
              for i in range(50)]
    cells += [_cell("torch.bce", dtype, status="error", oracle="binary_cross_entropy", inputs="special",
                    reason="RuntimeError: all elements of input should be between 0 and 1") for dtype in ("float16", "bfloat16")]
    return cells


def test_a_short_list_merges_dtypes_and_gives_every_kind_a_share() -> None:
    found = findings(many_findings())
    assert len(found) == 54
    shown, left = shortlist(found, limit=4)
    # one line for the three dtypes with the same NaN, the flush to zero, then the worst two over budget
    assert [f.category for f in shown] == ["unexpected_nan", "lost_to_zero", "budget", "budget"]
    assert shown[0].subject == "jax.silu float16, bfloat16, float32"
    assert shown[0].text == "1 spurious NaN (e.g. x=-inf) in each, max 2 ulp"  # the largest error of the three
    assert shown[0].cell_id == "silu[jax.silu-cpu-float16-special]"  # the most severe one's cell
    assert [f.subject for f in shown[2:]] == ["impl49.expm1 float16", "impl48.expm1 float16"]
    assert left == {"budget": 48}
    # a kind with fewer lines than its share leaves the rest to the others
    shown, left = shortlist(found, limit=SHORTLIST)
    assert len(shown) == SHORTLIST and left == {"budget": 12}
    shown, left = shortlist(found, limit=100)  # room for every line: nothing is left out
    assert len(shown) == 52 and left == {}


def test_not_run_lines_merge_dtypes_only_when_asked() -> None:
    cells = many_findings()
    assert not_run_lines(cells) == [
        f"torch.bce {d}: error: RuntimeError: all elements of input should be between 0 and 1"
        f"  [binary_cross_entropy[torch.bce-cpu-{d}-special]]" for d in ("float16", "bfloat16")]
    assert not_run_lines(cells, merge_dtypes=True) == [
        "torch.bce float16, bfloat16: error: RuntimeError: all elements of input should be between 0 and 1"
        "  [binary_cross_entropy[torch.bce-cpu-float16-special]]"]


def test_short_findings_golden() -> None:
    """The terminal's default list: at most SHORTLIST lines, then what it leaves out and
    where to see it; --details lists every finding, each dtype on its own line."""
    lines = findings_lines(many_findings(), details=False)
    assert sum(1 for line in lines if line.startswith("  ") and "[" in line) == SHORTLIST + 1  # and the error line
    assert lines[SHORTLIST + 1].startswith("  … 12 more defects, the less severe of each kind (12 over budget):")
    _golden("findings_short_terminal.txt", "\n".join(lines) + "\n")
    every = findings_lines(many_findings())
    assert len(every) == 1 + 54 + 1 + 2 and not any("more defects" in line for line in every)


def test_default_output_prints_the_short_list_and_details_everything() -> None:
    out = _render(many_findings()).splitlines()
    assert any("… 12 more defects" in line for line in out)
    assert sum(1 for line in out if line.startswith("  impl")) == SHORTLIST - 2
    details = _render(many_findings(), details=True).splitlines()
    assert sum(1 for line in details if line.startswith("  impl") and "ulp > 1" in line) == 50
