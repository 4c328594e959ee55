"""Views of a :class:`~harness.record.compare.Comparison`: a terminal table (rich) and Markdown
(for CI step summaries and pull requests). Both are pure functions returning text, pinned
by golden-text tests; neither decides anything: the verdicts come from
:func:`harness.record.compare.compare`.

A row per cell that changed, most urgent first (new failures, regressions, incomparable,
missing and new cells, fixes, improvements); unchanged cells are counted, and listed only
when asked. Each row shows the max ULP and the correctly rounded fraction before and after,
the incidence counts that changed, why the verdict was given and the framework or device
changes of that cell, so "numpy 2.0 → 2.1 made float16 softplus worse" reads as one row.

Cells are matched with their pass (the seventh element of the cell key: ``""`` forward,
``∂x:ones`` a gradient), so a forward cell and the gradient of the same implementation are
two rows, the gradient's id reading ``∂softplus[…]``. Within a kind, an oracle's gradient
rows follow its forward rows; forward-only comparisons keep the order by id.

A consistency cell (key ending ``≡position``) follows its oracle's gradient rows. It has
no accuracy summary: its max ulp column is the largest distance between two of its answers
(``NaN`` where a NaN met a number), its correctly rounded column ``-``, and its incidence
column the differing comparisons before and after (``differ 3 → 12``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable

from harness.plan.cells import CellResult
from harness.record.compare import CellVerdict, Comparison, Kind
from harness.record.results import RunInfo
from reports.labels import format_ulp

__all__ = ["KIND_LABELS", "markdown", "ordered", "summary_line", "terminal_text"]

#: how each kind reads in a table
KIND_LABELS: dict[Kind, str] = {
    Kind.NEW_FAILURE: "new failure",
    Kind.REGRESSED: "regressed",
    Kind.INCOMPARABLE: "incomparable",
    Kind.MISSING_CELL: "missing",
    Kind.NEW_CELL: "new cell",
    Kind.FIXED: "fixed",
    Kind.IMPROVED: "improved",
    Kind.UNCHANGED: "unchanged",
}

_STYLES: dict[Kind, str] = {
    Kind.NEW_FAILURE: "bold red",
    Kind.REGRESSED: "bold red",
    Kind.INCOMPARABLE: "yellow",
    Kind.MISSING_CELL: "yellow",
    Kind.NEW_CELL: "cyan",
    Kind.FIXED: "green",
    Kind.IMPROVED: "green",
    Kind.UNCHANGED: "dim",
}

#: short incidence labels for the terminal (the Markdown view spells the categories out)
_SHORT: dict[str, str] = {
    "unexpected_nan": "NaN!",
    "missing_nan": "noNaN",
    "unexpected_inf": "Inf!",
    "inherent_inf": "inf",
    "missing_inf": "noInf",
    "lost_to_zero": "→0",
    # a consistency cell's comparisons that differed (the Markdown view writes "differing")
    "differing": "differ",
}


def summary_line(comparison: Comparison) -> str:
    """``5 cells: 1 new failure, 1 regressed, 3 unchanged: REGRESSION`` (kinds with no cell
    are left out)."""
    counts = comparison.counts
    parts = [f"{n} {KIND_LABELS[k]}" for k, n in counts.items() if n]
    verdict = "REGRESSION" if comparison.failed else "no regression"
    scenarios = ""
    if comparison.scenarios:
        by_kind = {k: sum(v.kind is k for v in comparison.scenarios) for k in Kind}
        shown = ", ".join(f"{n} {_SCENARIO_LABELS.get(k, KIND_LABELS[k])}" for k, n in by_kind.items() if n)
        scenarios = f"; {len(comparison.scenarios)} scenarios: {shown}"
    return f"{len(comparison.verdicts)} cells: {', '.join(parts) or 'none'}{scenarios}: {verdict}"


#: the kinds whose cell label does not fit a scenario
_SCENARIO_LABELS = {Kind.NEW_CELL: "new scenario", Kind.MISSING_CELL: "missing scenario"}


def _side(cell: CellResult | None, what: str) -> str:
    if cell is None:
        return "—"
    if cell.status == "skipped":
        return "skip"
    if cell.status == "unsupported":
        return "n/a"
    if cell.status == "error":
        return "ERR"
    if cell.spec.check:
        return _consistency_side(cell, what)
    s = cell.summary
    if s is None:
        return "?"
    if what == "ulp":
        return format_ulp(s.ulp_max) if s.ulp_count else "-"
    return f"{100 * s.correctly_rounded / s.n:.2f}%" if s.n else "-"


def _consistency_side(cell: CellResult, what: str) -> str:
    """A consistency cell's max ULP distance between answers; it has no correctly rounded share."""
    v = cell.consistency
    if v is None:
        return "?"
    if what != "ulp" or v.max_ulp is None:
        return "-"
    return "NaN" if math.isinf(v.max_ulp) else format_ulp(v.max_ulp)


def _pair(v: CellVerdict, what: str) -> str:
    before, after = _side(v.baseline, what), _side(v.current, what)
    return after if before == after else f"{before} → {after}"


def _incidence(v: CellVerdict, short: bool) -> str:
    parts = []
    for d in v.deltas:
        if d.metric in _SHORT and d.effect != "same":
            name = _SHORT[d.metric] if short else d.metric
            parts.append(f"{name} {int(d.before)} → {int(d.after)}")
    return ", ".join(parts)


def _run_text(run: RunInfo) -> str:
    bits = [run.started or "?"]
    if run.host:
        bits.append(run.host)
    if run.git_commit:
        bits.append(f"git {run.git_commit[:10]}")
    return ", ".join(bits)


def _order(v: CellVerdict) -> tuple[int, str, bool, str, str]:
    """By kind, then oracle, forward before gradient, then id. ``oracle[`` as the second
    key orders forward cells exactly as their ids do (an id starts with it), so forward-only
    views are unchanged; ``∂softplus[…]`` would otherwise sort after every forward id."""
    judged = str(v.key[6]) if len(v.key) > 6 else ""
    return (list(Kind).index(v.kind), f"{v.key[0]}[", judged != "", judged, v.id)


def ordered(verdicts: Iterable[CellVerdict]) -> list[CellVerdict]:
    """``verdicts`` in the order every comparison view lists them (see :func:`_order`)."""
    return sorted(verdicts, key=_order)


def _rows(comparison: Comparison, show_unchanged: bool) -> list[CellVerdict]:
    return sorted((v for v in comparison.verdicts if show_unchanged or v.kind is not Kind.UNCHANGED), key=_order)


# -- terminal ------------------------------------------------------------------------------


def terminal_text(comparison: Comparison, *, width: int = 140, color: bool = False, show_unchanged: bool = False) -> str:
    """The comparison as a rich table rendered to text (ANSI colours only when ``color``)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buf = io.StringIO()
    # markup and emoji codes off: labels are file names and reasons are exception text,
    # printed as given ("[red]" and ":thumbs_up:" included); styles go in as Text styles
    console = Console(
        file=buf, width=width, force_terminal=color, color_system="standard" if color else None,
        highlight=False, emoji=False, markup=False, soft_wrap=False,
    )
    base_label, cur_label = comparison.labels
    console.print(f"baseline: {base_label} ({_run_text(comparison.baseline)})")
    console.print(f"current:  {cur_label} ({_run_text(comparison.current)})")
    if comparison.environment:
        console.print("environment: " + "; ".join(str(e) for e in comparison.environment))
    rows = _rows(comparison, show_unchanged)
    if rows:
        # the environment of a row goes after its reason, so that ids stay whole in 100 columns
        data = [
            [KIND_LABELS[v.kind], v.id, _pair(v, "ulp"), _pair(v, "cr"), _incidence(v, short=True),
             v.why + "".join(f" [{e}]" for e in v.environment)]
            for v in rows
        ]
        names = ("verdict", "cell", "max ulp", "correctly rounded", "incidence", "why")
        keep = [i for i, name in enumerate(names) if name != "incidence" or any(d[i] for d in data)]
        table = Table(header_style="bold", show_lines=False, box=box.SIMPLE_HEAD, pad_edge=False)
        longest = max(len(v.id) for v in rows)
        for i in keep:
            minimum = {"cell": min(longest, width // 3), "why": 30}.get(names[i])
            table.add_column(names[i], overflow="fold", min_width=minimum)
        for v, d in zip(rows, data, strict=True):
            table.add_row(*(Text(d[i], style=_STYLES[v.kind] if i == 0 else "") for i in keep))
        console.print(table)
    for line in scenario_lines(comparison, show_unchanged):
        console.print(line)
    console.print(Text(summary_line(comparison), style="bold red" if comparison.failed else "bold green"))
    # rich pads every line to the width; trailing blanks only make golden files fragile
    return "".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines())


def scenario_lines(comparison: Comparison, show_unchanged: bool = False) -> list[str]:
    """The training scenarios' verdicts, a line each (none when there are no scenarios)."""
    shown = [v for v in comparison.scenarios if show_unchanged or v.kind is not Kind.UNCHANGED]
    if not comparison.scenarios:
        return []
    same = len(comparison.scenarios) - len(shown)
    head = f"scenarios: {len(comparison.scenarios)}" + (f" ({same} unchanged)" if same else "")
    return [head, *(f"  {_SCENARIO_LABELS.get(v.kind, KIND_LABELS[v.kind]):<16} {v.name}: {v.why}" for v in shown)]


# -- Markdown ------------------------------------------------------------------------------


def _md(text: str) -> str:
    """Escape what would break a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    quoted = text.replace("`", "'")
    return f"`{quoted}`".replace("|", "\\|")


def markdown(comparison: Comparison, *, show_unchanged: bool = False, title: str = "fpharness comparison") -> str:
    """The comparison as GitHub-flavoured Markdown: a headline, the runs, the environment
    changes and a table of changed cells; unchanged cells in a collapsed list."""
    counts = comparison.counts
    failing = [f"{counts[k]} {KIND_LABELS[k]}" for k in (Kind.REGRESSED, Kind.NEW_FAILURE) if counts[k]]
    bad_scenarios = sum(v.failing for v in comparison.scenarios)
    if bad_scenarios:
        failing.append(f"{bad_scenarios} scenario(s) regressed or newly non-finite")
    headline = "REGRESSION: " + ", ".join(failing) if failing else "no regression"
    base_label, cur_label = comparison.labels
    lines = [
        f"### {title}: {headline}",
        "",
        f"- baseline: {_code(base_label)} ({_md(_run_text(comparison.baseline))})",
        f"- current: {_code(cur_label)} ({_md(_run_text(comparison.current))})",
    ]
    if comparison.environment:
        lines.append("- environment: " + _md("; ".join(str(e) for e in comparison.environment)))
    lines += ["", summary_line(comparison), ""]
    rows = _rows(comparison, show_unchanged)
    if rows:
        lines += [
            "| verdict | cell | max ulp | correctly rounded | incidence | why | environment |",
            "|---|---|---|---|---|---|---|",
        ]
        for v in rows:
            label = KIND_LABELS[v.kind]
            lines.append(
                f"| {f'**{label}**' if v.failing else label} | {_code(v.id)} | {_md(_pair(v, 'ulp'))} "
                f"| {_md(_pair(v, 'cr'))} | {_md(_incidence(v, short=False))} | {_md(v.why)} "
                f"| {_md('; '.join(str(e) for e in v.environment))} |"
            )
        lines.append("")
    scenarios = [v for v in comparison.scenarios if show_unchanged or v.kind is not Kind.UNCHANGED]
    if scenarios:
        lines += ["| verdict | scenario | why |", "|---|---|---|"]
        for sv in scenarios:
            label = _SCENARIO_LABELS.get(sv.kind, KIND_LABELS[sv.kind])
            lines.append(f"| {f'**{label}**' if sv.failing else label} | {_code(sv.name)} | {_md(sv.why)} |")
        lines.append("")
    unchanged = sorted(comparison.of_kind(Kind.UNCHANGED), key=_order)
    if unchanged and not show_unchanged:
        plural = "s" if len(unchanged) != 1 else ""
        lines += [f"<details><summary>{len(unchanged)} unchanged cell{plural}</summary>", ""]
        lines += [f"- {_code(v.id)}" for v in unchanged]
        lines += ["", "</details>", ""]
    return "\n".join(lines)
