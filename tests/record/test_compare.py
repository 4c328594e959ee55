"""harness.record.compare (the verdict rules), reports.comparison (golden text) and
``fpharness compare`` (exit codes 0/1/2)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from crafted import baseline_and_current, cell, run

from harness.cli.app import main
from harness.plan.cells import CellResult
from harness.record.compare import FAILING, Comparison, Kind, Tolerance, compare
from harness.record.results import Results, load_results
from oracles.errors import UsageError
from reports.comparison import markdown, summary_line, terminal_text

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _one(base: Results | list[CellResult], cur: Results | list[CellResult], tol: Tolerance | None = None) -> Comparison:
    b = base if isinstance(base, Results) else Results(run(), tuple(base))
    c = cur if isinstance(cur, Results) else Results(run("2026-01-02T00:00:00+00:00"), tuple(cur))
    return compare(b, c, tol)


def _kind(before: CellResult | None, after: CellResult | None, tol: Tolerance | None = None) -> Kind:
    cmp = _one([before] if before else [], [after] if after else [], tol)
    assert len(cmp.verdicts) == 1
    return cmp.verdicts[0].kind


# -- every verdict kind from the crafted nightly pair -----------------------------------------


@pytest.fixture
def nightly() -> Comparison:
    base, cur = baseline_and_current()
    return compare(base, cur, Tolerance(), labels=("baselines/frameworks.json", "results/frameworks.json"))


def test_every_kind_from_crafted_results(nightly: Comparison) -> None:
    kinds = {v.id: v.kind for v in nightly.verdicts}
    assert kinds == {
        "softplus[torch.softplus-cpu-float16-special]": Kind.REGRESSED,
        "softplus[torch.softplus-cpu-bfloat16-special]": Kind.REGRESSED,
        "exp[torch.exp-cpu-bfloat16-special]": Kind.IMPROVED,
        "log[numpy.log-cpu-float16-special]": Kind.UNCHANGED,
        "sigmoid[torch.sigmoid-cpu-float32-special]": Kind.NEW_FAILURE,
        "silu[numpy.silu-cpu-float16-special]": Kind.FIXED,
        "expm1[numpy.expm1-cpu-float16-special]": Kind.MISSING_CELL,
        "gelu[numpy.gelu-cpu-float16-special]": Kind.NEW_CELL,
        "log1p[torch.log1p-cuda-float16-special]": Kind.INCOMPARABLE,
    }
    assert nightly.failed and nightly.exit_code == 1
    assert [v.kind for v in nightly.verdicts] == sorted((v.kind for v in nightly.verdicts), key=list(Kind).index)


def test_regression_names_the_metric_and_the_framework_change(nightly: Comparison) -> None:
    v = next(v for v in nightly.verdicts if v.id == "softplus[torch.softplus-cpu-float16-special]")
    assert v.why == "max ulp 0.5 → 2 (+1.5); correctly rounded 90.00% → 85.00%"
    assert [str(e) for e in v.environment] == ["torch 2.3.0 → 2.4.0"]
    ulp = v.delta("max_ulp")
    assert ulp is not None and (ulp.before, ulp.after, ulp.effect) == (0.5, 2.0, "worse")
    # a CPU cell is not told about the GPU change; the CUDA cell is
    cuda = next(v for v in nightly.verdicts if v.kind is Kind.INCOMPARABLE)
    assert [str(e) for e in cuda.environment] == ["torch 2.3.0 → 2.4.0", "torch cuda NVIDIA A100 → NVIDIA H100"]
    assert "output format float16 → float32" in cuda.why
    assert [str(e) for e in nightly.environment] == ["torch 2.3.0 → 2.4.0", "torch cuda NVIDIA A100 → NVIDIA H100"]


def test_improvement(nightly: Comparison) -> None:
    v = nightly.of_kind(Kind.IMPROVED)[0]
    assert v.why == "max ulp 1 → 0.5 (-0.5); correctly rounded 90.00% → 95.00%"
    assert not v.failing


# -- the rules one at a time -------------------------------------------------------------------


def test_identical_runs_are_unchanged() -> None:
    base, _ = baseline_and_current()
    cmp = compare(base, base)
    assert {v.kind for v in cmp.verdicts} == {Kind.UNCHANGED}
    assert cmp.exit_code == 0
    assert summary_line(cmp) == "8 cells: 8 unchanged: no regression"


def test_max_ulp_tolerance_is_per_output_dtype() -> None:
    before, after = cell(dtype="float32", ulp=1.0), cell(dtype="float32", ulp=1.4)
    assert _kind(before, after) is Kind.REGRESSED
    assert _kind(before, after, Tolerance(max_ulp={"float32": 0.5})) is Kind.UNCHANGED
    assert _kind(before, after, Tolerance(max_ulp={"float16": 0.5})) is Kind.REGRESSED
    assert _kind(before, after, Tolerance(default=0.5)) is Kind.UNCHANGED
    # the tolerance is of the output format: float16 inputs computed in float32
    b16, a16 = cell(ulp=1.0, out_dtype="float32"), cell(ulp=1.4, out_dtype="float32")
    assert _kind(b16, a16, Tolerance(max_ulp={"float32": 0.5, "float16": 0})) is Kind.UNCHANGED
    # improvements within the tolerance are not improvements either
    assert _kind(after, before, Tolerance(default=0.5)) is Kind.UNCHANGED
    assert _kind(after, before) is Kind.IMPROVED


def test_correctly_rounded_drop() -> None:
    assert _kind(cell(cr=90), cell(cr=89)) is Kind.REGRESSED
    assert _kind(cell(cr=90), cell(cr=89), Tolerance(correctly_rounded=0.02)) is Kind.UNCHANGED
    assert _kind(cell(cr=90), cell(cr=87), Tolerance(correctly_rounded=0.02)) is Kind.REGRESSED
    assert _kind(cell(cr=89), cell(cr=90)) is Kind.IMPROVED


@pytest.mark.parametrize("category", ["unexpected_nan", "missing_nan", "unexpected_inf"])
def test_any_defect_increase_is_a_regression(category: str) -> None:
    assert _kind(cell(), cell(incidence={category: 1})) is Kind.REGRESSED
    assert _kind(cell(incidence={category: 3}), cell(incidence={category: 4})) is Kind.REGRESSED
    assert _kind(cell(incidence={category: 4}), cell(incidence={category: 3})) is Kind.IMPROVED


def test_unwatched_categories_are_information_unless_watched() -> None:
    before, after = cell(incidence={"lost_to_zero": 1}), cell(incidence={"lost_to_zero": 5})
    cmp = _one([before], [after])
    v = cmp.verdicts[0]
    assert v.kind is Kind.UNCHANGED
    d = v.delta("lost_to_zero")
    assert d is not None and d.effect == "worse" and not d.decisive
    assert _kind(before, after, Tolerance(incidence=("lost_to_zero",))) is Kind.REGRESSED


def test_a_regression_outweighs_an_improvement() -> None:
    v = _one([cell(ulp=1.0, cr=90)], [cell(ulp=0.5, cr=80)]).verdicts[0]
    assert v.kind is Kind.REGRESSED
    assert v.why == "correctly rounded 90.00% → 80.00%"


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        pytest.param(cell(), cell(status="error", reason="E: x"), Kind.NEW_FAILURE, id="pass-error"),
        pytest.param(cell(status="fail", max_ulp=0.1), cell(status="error", reason="E"), Kind.NEW_FAILURE, id="fail-error"),
        pytest.param(cell(), cell(status="fail", max_ulp=0.1), Kind.NEW_FAILURE, id="pass-fail"),
        pytest.param(cell(status="error", reason="E"), cell(), Kind.FIXED, id="error-pass"),
        pytest.param(cell(status="fail", max_ulp=0.1), cell(), Kind.FIXED, id="fail-pass"),
        pytest.param(cell(status="error", reason="E"), cell(status="fail", max_ulp=0.1), Kind.IMPROVED, id="error-fail"),
        pytest.param(cell(status="error", reason="E"), cell(status="error", reason="F"), Kind.UNCHANGED, id="error-error"),
        pytest.param(cell(), cell(status="skipped", reason="torch not installed"), Kind.INCOMPARABLE, id="pass-skipped"),
        pytest.param(cell(status="skipped", reason="no cuda"), cell(), Kind.INCOMPARABLE, id="skipped-pass"),
        pytest.param(cell(status="skipped", reason="no cuda"), cell(status="error", reason="E"), Kind.NEW_FAILURE,
                     id="skipped-error"),
        pytest.param(cell(status="error", reason="E"), cell(status="skipped", reason="r"), Kind.INCOMPARABLE,
                     id="error-skipped"),
        pytest.param(cell(status="skipped", reason="r"), cell(status="skipped", reason="r"), Kind.UNCHANGED, id="skipped-skipped"),
        pytest.param(cell(status="error", reason="E"), cell(status="unsupported", reason="no bfloat16 support in numpy"),
                     Kind.INCOMPARABLE, id="error-unsupported"),
        pytest.param(cell(status="unsupported", reason="u"), cell(status="unsupported", reason="u"), Kind.UNCHANGED,
                     id="unsupported-unsupported"),
        pytest.param(cell(status="unsupported", reason="u"), cell(status="error", reason="E"), Kind.NEW_FAILURE,
                     id="unsupported-error"),
        pytest.param(cell(n=100), cell(n=120), Kind.INCOMPARABLE, id="inputs-differ"),
        pytest.param(cell(out_dtype="float16"), cell(out_dtype="float32"), Kind.INCOMPARABLE, id="out-dtype"),
        pytest.param(cell(status="fail", max_ulp=0.1), cell(status="fail", max_ulp=0.1, ulp=4), Kind.REGRESSED,
                     id="fail-fail-worse"),
        pytest.param(None, cell(), Kind.NEW_CELL, id="new"),
        pytest.param(cell(), None, Kind.MISSING_CELL, id="missing"),
    ],
)
def test_status_transitions(before: CellResult | None, after: CellResult | None, kind: Kind) -> None:
    assert _kind(before, after) is kind


def test_a_status_change_wins_over_incomparable_numbers() -> None:
    v = _one([cell(n=100)], [cell(n=120, status="fail", max_ulp=0.1, reason="max ulp 0.5 > 0.1")]).verdicts[0]
    assert v.kind is Kind.NEW_FAILURE
    assert v.deltas == ()


def test_no_exact_summary_is_incomparable() -> None:
    old = replace(cell(), summary=None)
    v = _one([old], [cell()]).verdicts[0]
    assert v.kind is Kind.INCOMPARABLE and "no exact summary in the baseline" in v.why


def test_only_regressions_and_new_failures_fail() -> None:
    assert frozenset({Kind.REGRESSED, Kind.NEW_FAILURE}) == FAILING
    assert _one([cell()], [cell(n=3)]).exit_code == 0


def test_a_cell_twice_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="appears twice"):
        _one([cell(), cell()], [cell()])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_ulp": {"float8": 1}}, "unknown dtype 'float8'; pick from: "),
        ({"max_ulp": {"float16": -1}}, "tolerance for float16 must be a non-negative number"),
        ({"default": float("nan")}, "tolerance must be a non-negative number"),
        ({"correctly_rounded": 2.0}, "is a fraction in"),
        ({"incidence": ("nan",)}, "unknown incidence category 'nan'"),
    ],
    ids=["dtype", "negative", "nan", "fraction", "category"],
)
def test_invalid_tolerances(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        Tolerance(**kwargs)


def test_compare_is_pure_and_files_round_trip(tmp_path: Path) -> None:
    base, cur = baseline_and_current()
    base.write(tmp_path / "b.json")
    cur.write(tmp_path / "c.json")
    direct = compare(base, cur)
    loaded = compare(load_results(tmp_path / "b.json"), load_results(tmp_path / "c.json"))
    assert [(v.id, v.kind, v.why) for v in direct.verdicts] == [(v.id, v.kind, v.why) for v in loaded.verdicts]
    assert compare(base, cur) == direct


# -- golden text ---------------------------------------------------------------------------------


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("FPHARNESS_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; FPHARNESS_UPDATE_GOLDEN=1 rewrites it"


def test_terminal_view_golden(nightly: Comparison) -> None:
    _golden("compare_terminal.txt", terminal_text(nightly, width=160))


def test_terminal_view_all_golden(nightly: Comparison) -> None:
    _golden("compare_terminal_all.txt", terminal_text(nightly, width=160, show_unchanged=True))


def test_markdown_view_golden(nightly: Comparison) -> None:
    _golden("compare_markdown.md", markdown(nightly))


def test_markdown_without_regressions_golden() -> None:
    base, _ = baseline_and_current()
    _golden("compare_markdown_clean.md", markdown(compare(base, base, labels=("a.json", "a.json"))))


def test_terminal_colour_only_when_asked(nightly: Comparison) -> None:
    assert "\x1b[" not in terminal_text(nightly)
    assert "\x1b[" in terminal_text(nightly, color=True)


# -- the command -----------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    base, cur = baseline_and_current()
    base.write(tmp_path / "base.json")
    cur.write(tmp_path / "cur.json")
    return str(tmp_path / "base.json"), str(tmp_path / "cur.json")


def test_cli_exit_0_without_regression(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", files[0], files[0]]) == 0
    assert "8 cells: 8 unchanged: no regression" in capsys.readouterr().out


def test_cli_exit_1_on_regression_and_writes_markdown(
    files: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    md = tmp_path / "summary.md"
    assert main(["compare", files[0], files[1], "--markdown", str(md)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "new failure" in out
    assert md.read_text(encoding="utf-8").startswith("### fpharness comparison: REGRESSION: 2 regressed, 1 new failure")


def test_cli_tolerance_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Results(run(), (cell(dtype="float32", ulp=1.0),)).write(tmp_path / "b.json")
    Results(run(), (cell(dtype="float32", ulp=1.4),)).write(tmp_path / "c.json")
    b, c = str(tmp_path / "b.json"), str(tmp_path / "c.json")
    assert main(["compare", b, c]) == 1
    assert main(["compare", b, c, "--tolerance", "0.5"]) == 0
    assert main(["compare", b, c, "--tolerance-dtype", "float32=0.5"]) == 0
    assert main(["compare", b, c, "--tolerance", "0.5", "--tolerance-dtype", "float32=0"]) == 1
    assert main(["compare", b, c, "--markdown", "-", "--tolerance", "1"]) == 0
    assert "### fpharness comparison: no regression" in capsys.readouterr().out


def test_cli_strict_fails_on_incomparable(tmp_path: Path) -> None:
    Results(run(), (cell(n=10),)).write(tmp_path / "b.json")
    Results(run(), (cell(n=11),)).write(tmp_path / "c.json")
    assert main(["compare", str(tmp_path / "b.json"), str(tmp_path / "c.json")]) == 0
    assert main(["compare", str(tmp_path / "b.json"), str(tmp_path / "c.json"), "--strict"]) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tolerance-dtype", "float16"], "--tolerance-dtype 'float16' must be DTYPE=ULP"),
        (["--tolerance-dtype", "float16=x"], "must be DTYPE=ULP"),
        (["--tolerance-dtype", "float7=1"], "unknown dtype 'float7'"),
        (["--tolerance", "-1"], "tolerance must be a non-negative number"),
        (["--watch", "nan"], "unknown incidence category 'nan'"),
    ],
    ids=["no-value", "not-a-number", "dtype", "negative", "category"],
)
def test_cli_usage_errors_exit_2(
    files: tuple[str, str], extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", files[0], files[1], *extra]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_missing_file_and_missing_history_exit_2(
    files: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(tmp_path / "nope.json"), files[1]]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["compare", "history:last-accepted", files[1], "--db", str(tmp_path / "h.sqlite")]) == 2
    assert "no history database" in capsys.readouterr().err
    assert not (tmp_path / "h.sqlite").exists()
