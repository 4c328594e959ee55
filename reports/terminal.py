"""Terminal views: registry listings and per-oracle result tables (rich).

A table per oracle and pass: the forward cells under the oracle's name (``softplus``),
then right after them its gradient cells under their subject (``∂softplus``, or
``∂binary_cross_entropy/∂p`` for an oracle of several arguments; a gradient with a
cotangent other than ones says so beside the implementation, or in the inputs column with
``details``). Rows are implementations, columns dtype x device (devices on which no
cell ran collapse into one line saying why); an entry shows the largest error in the
chosen metric (``--metric``, ULP by default) and the defect categories, green when within
budget, red when not. Then the findings summary: the defects ranked by severity, one line
each with the cell id (:mod:`reports.findings`); by default a short list that fits a screen
(dtypes with the same defect on one line, at most :data:`reports.findings.SHORTLIST` lines
with every kind of defect among them, and a last line saying how many more there are and
where to see them). With ``details`` (``--details``/``-v``) every finding, a table row per
input set, with every incidence count, and under each failing cell the elements that break
its budget and the command that reproduces it. The text forms
(:func:`cell_text`, :func:`findings_lines`) are what golden tests pin.

Consistency cells (no oracle evaluated; :mod:`reports.consistency`) have a table per
subject after its accuracy tables, titled ``softplus — consistency``: a row per
implementation, device, dtype and input set, a column per check present, each entry ``ok``,
``12 differ`` (styled as a pass or a failure), ``error``, ``skip`` or ``n/a``
(unsupported). With ``details``, under it each failing check's headline, its first
mismatches and its command; a failing check is a finding like any defect. A run without
consistency cells prints exactly what it printed before they existed.

Everything from a result or a registry is printed verbatim: repro commands, ids, input
specs, file names and exception messages go in as :class:`rich.text.Text` (never parsed as
markup) on a console with emoji codes off, so ``random:100:0`` is not ``random💯0`` and a
reason with ``[red]`` or ``:thumbs_up:`` in it reads as the implementation raised it. Styles
are given as ``Text`` styles, never as markup in a string.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from oracles.errors import UsageError
from oracles.registry import get_oracle
from reports.consistency import check_text, consistency_table, mismatch_lines, verdict_of
from reports.findings import (
    collapsed_devices,
    failing_elements,
    findings,
    left_out_text,
    not_run_lines,
    shortlist,
)
from reports.labels import (
    CONSISTENCY_GROUP,
    INCIDENCE_LABELS,
    consistency_heading,
    cotangent,
    format_metric,
    group_key,
    group_order,
    inputs_label,
    is_consistency,
    metric_value,
    named_example,
    subject,
)

__all__ = [
    "cell_text",
    "findings_lines",
    "group_text",
    "print_registry",
    "print_results",
    "summary_line",
    "verbatim_console",
]


def verbatim_console(min_width: int = 120, **kw: Any) -> Any:
    """A rich console that prints text verbatim: no markup, no emoji codes, no highlighting
    (which only colours, but would colour a user's text by guesswork)."""
    from rich.console import Console

    return Console(width=max(min_width, Console().width), markup=False, emoji=False, highlight=False, **kw)


def print_registry(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain table of a registry (``fpharness oracles`` / ``impls``), every cell verbatim."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"{title} ({len(rows)})"), show_lines=False, header_style="bold")
    for col in columns:
        table.add_column(Text(col), overflow="fold")
    for row in rows:
        table.add_row(*map(Text, row))
    verbatim_console().print(table)


def cell_text(cell: dict[str, Any], metric: str = "ulp") -> str:
    """One cell as plain text: ``0.5 ulp`` / ``2,047 ulp Inf!=12916 →0=1206`` / ``ERR``;
    ``metric`` picks the error shown (:data:`reports.labels.METRICS`; ``-`` when the cell
    has no such summary). A consistency cell reads as its table shows it (``ok``, ``12 differ``)."""
    if is_consistency(cell):
        return check_text(cell)
    status = cell["status"]
    if status == "skipped":
        return "skip"
    if status == "unsupported":
        return "unsupported"
    if status == "error":
        return "ERR"
    parts = [format_metric(metric_value(cell, metric), metric)]
    for cat, count in (cell.get("incidence") or {}).items():
        if count and cat in INCIDENCE_LABELS:
            parts.append(f"{INCIDENCE_LABELS[cat]}={count}")
    if cell.get("rejected"):
        parts.append(f"rej={cell['rejected']}")
    if cell.get("out_dtype") and cell["out_dtype"] != cell["dtype"]:
        parts.append(f"(out {cell['out_dtype']})")
    return " ".join(parts)


def group_text(cells: Sequence[dict[str, Any]], metric: str = "ulp") -> str:
    """Several input sets of one implementation, dtype and device as one table entry: the
    largest error of those that ran, the defect categories any of them shows, and how many
    failed (``109 ulp →0 ✗ 1/3``); ``ERR`` when any raised, ``skip`` when none ran."""
    if cells and all(is_consistency(c) for c in cells):
        return ", ".join(check_text(c) for c in cells)
    ran = [c for c in cells if c["status"] in ("pass", "fail")]
    if any(c["status"] == "error" for c in cells):
        bad = sum(1 for c in cells if c["status"] == "error")
        return "ERR" + (f" {bad}/{len(cells)}" if len(cells) > 1 else "")
    if not ran:
        return cell_text(cells[0], metric)
    values = [v for v in (metric_value(c, metric) for c in ran) if v is not None]
    parts = [format_metric(max(values) if values else None, metric)]
    cats = {cat for c in ran for cat, k in (c.get("incidence") or {}).items() if k and cat != "inherent_inf"}
    parts += [INCIDENCE_LABELS[cat] for cat in INCIDENCE_LABELS if cat in cats]
    failed = sum(1 for c in ran if c["status"] == "fail")
    if failed:
        parts.append("✗" + (f" {failed}/{len(cells)}" if len(cells) > 1 else ""))
    return " ".join(parts)


def summary_line(cells: Sequence[dict[str, Any]]) -> str:
    statuses = ("pass", "fail", "error", "unsupported", "skipped")
    counts = {s: sum(1 for c in cells if c["status"] == s) for s in statuses}
    unsupported = f", {counts['unsupported']} unsupported" if counts["unsupported"] else ""
    return (f"{len(cells)} cells: {counts['pass']} passed, {counts['fail']} failed, {counts['error']} errors"
            f"{unsupported}, {counts['skipped']} skipped")


def _style(status: str) -> str:
    return {"pass": "green", "fail": "bold red", "error": "magenta", "skipped": "dim", "unsupported": "dim"}.get(
        status, "")


def _group_style(cells: Sequence[dict[str, Any]]) -> str:
    for status in ("error", "fail", "pass"):
        if any(c["status"] == status for c in cells):
            return _style(status)
    return "dim"


def print_results(
    cells: Iterable[dict[str, Any]],
    *,
    console: Any = None,
    max_examples: int = 3,
    details: bool = False,
    metric: str = "ulp",
) -> None:
    """Render result cells (results-file dicts) on ``console`` (default:
    :func:`verbatim_console`): one table per oracle and pass (:mod:`reports.terminal`), a
    line per device on which nothing ran,
    the ranked findings, then the counts. By default a table has a row per implementation
    (the worst of its input sets); with ``details`` a row per input set, and under each
    failing cell the elements that break its budget (:func:`reports.findings.failing_elements`)
    and the command that reproduces it. A subject's consistency cells are a table after its
    others (a column per check), and with ``details`` each failing check's first mismatches
    and command under it. Every text from the cells goes in as ``Text``, so it is printed as
    given on any console."""
    from rich.text import Text

    console = console or verbatim_console(140)
    cells = list(cells)
    collapsed = collapsed_devices(cells)
    hidden = {d.device for d in collapsed}
    shown = [c for c in cells if str(c["device"]) not in hidden]
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in shown:
        by_group.setdefault(group_key(c), []).append(c)
    if any(k[1] != CONSISTENCY_GROUP for k in by_group) and not details:
        console.print(Text(f"Max error ({metric}) per implementation and dtype: the worst of its input sets;"
                           " ✗ n/m: n of m input sets over budget (--details: every input set)", style="dim"),
                      soft_wrap=True)
    for key in group_order(list(by_group)):
        group = by_group[key]
        if key[1] == CONSISTENCY_GROUP:
            _print_consistency(console, group, details=details, max_examples=max_examples)
            continue
        console.print(_table(group, details=details, metric=metric))
        if details:
            for c in group:
                if c["status"] in ("fail", "error"):
                    _print_failure(console, c, max_examples)
    for d in collapsed:
        console.print(Text(d.line(), style="dim"), soft_wrap=True)
    for line in findings_lines(cells, metric=metric, details=details):
        console.print(Text(line, style="bold" if line.startswith("findings") else ""), soft_wrap=True)
    console.print(Text(summary_line(cells)))


def findings_lines(cells: Sequence[dict[str, Any]], *, metric: str = "ulp", details: bool = True) -> list[str]:
    """The findings summary as lines: a heading, one line per finding (most severe first),
    then what did not run. Empty when every cell passed or was skipped. Without ``details``
    a short list (:func:`reports.findings.shortlist`): dtypes with the same defect on one
    line, at most :data:`reports.findings.SHORTLIST` lines, then one saying what is left out."""
    found = findings(cells, metric=metric)
    others = not_run_lines(cells, merge_dtypes=not details)
    if not found and not others:
        return []
    lines = []
    if found:
        failing = sum(1 for c in cells if c["status"] == "fail")
        lines.append(f"findings: {_count(len(found), 'defect')} in {_count(failing, 'failing cell')}, most severe first"
                     " (the cell id in brackets; --details or the HTML report for its inputs)")
        shown, left = (found, {}) if details else shortlist(found)
        for f in shown:  # a consistency finding's command on a line of its own, to be copied
            lines += [f"  {f.line()}"] + ([f"      repro: {f.repro}"] if f.repro else [])
        if left:
            lines.append(f"  {left_out_text(left, len(found))}")
    if others:
        lines.append("did not run:")
        lines += [f"  {line}" for line in others]
    return lines


def _table(group: Sequence[dict[str, Any]], *, details: bool, metric: str) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    name = subject(group[0])
    columns = sorted({(c["dtype"], c["device"]) for c in group}, key=lambda k: (_dtype_order(k[0]), k[1]))
    one_device = len({d for _t, d in columns}) == 1
    rows: dict[tuple[str, str], dict[tuple[str, str], list[dict[str, Any]]]] = {}
    for c in group:
        shown = _shown_params(c["oracle"], c.get("params") or {})
        label = c["impl"] + (f" ({shown})" if shown else "")
        cot = cotangent(c)
        if not details and cot not in ("", "ones"):  # with details the inputs column says it
            label += f" · cot={cot}"
        rows.setdefault((label, inputs_label(c) if details else ""), {}).setdefault((c["dtype"], c["device"]), []).append(c)
    title = name + (f" · {columns[0][1]}" if one_device else "")
    table = Table(title=Text(title, style="bold"), header_style="bold", title_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, padding=(0, 1))
    table.add_column("implementation", overflow="fold")
    if details:
        table.add_column("inputs", overflow="fold", style="dim")
    for dtype, device in columns:
        table.add_column(Text(dtype if one_device else f"{dtype} {device}"), overflow="fold")
    for (label, inputs), row in sorted(rows.items()):
        rendered = [Text(label)] + ([Text(inputs)] if details else [])
        for key in columns:
            found = row.get(key)
            if not found:
                rendered.append(Text(""))
            elif details:
                rendered.append(Text(cell_text(found[0], metric), style=_style(found[0]["status"])))
            else:
                rendered.append(Text(group_text(found, metric), style=_group_style(found)))
        table.add_row(*rendered)
    return table


def _print_failure(console: Any, c: dict[str, Any], max_examples: int) -> None:
    from rich.text import Text

    # soft_wrap on every line here: ids, reasons and commands stay whole, to be copied
    console.print(Text.assemble((c["id"], "bold red"), f" {c['status']}: {c.get('reason') or ''}"), soft_wrap=True)
    for group in failing_elements(c, limit=max_examples):
        console.print(Text(f"  {group.title}:"), soft_wrap=True)
        for e in group.examples:
            console.print(Text(f"    {named_example(c, e).describe()}"), soft_wrap=True)
    if c.get("rejected"):
        console.print(Text(f"  rejects {c['rejected']:,} out-of-domain inputs (their truth is NaN)"), soft_wrap=True)
    if c["status"] == "fail":
        console.print(Text(f"    repro: {c['repro']}", style="dim"), soft_wrap=True)


def _print_consistency(console: Any, group: Sequence[dict[str, Any]], *, details: bool, max_examples: int) -> None:
    """A subject's consistency table; with ``details`` each failing (or raising) check under
    it: its headline, first mismatches, notes and command."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    checks, rows = consistency_table(group)
    table = Table(title=Text(consistency_heading(subject(group[0])), style="bold"), header_style="bold",
                  title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    for name in ("implementation", "device", "dtype", "inputs"):
        table.add_column(name, overflow="fold", style="dim" if name == "inputs" else "")
    for name in checks:
        table.add_column(Text(name), overflow="fold")
    for row in rows:
        entries = [Text(row.label), Text(row.device), Text(row.dtype), Text(row.inputs)]
        for name in checks:
            c = row.cell(name)
            entries.append(Text(check_text(c), style=_style(str(c["status"]))) if c is not None else Text(""))
        table.add_row(*entries)
    console.print(table)
    if not details:
        return
    for row in rows:
        for name in checks:
            c = row.cell(name)
            if c is not None and c["status"] in ("fail", "error"):
                _print_consistency_failure(console, dict(c), max_examples)


def _print_consistency_failure(console: Any, c: dict[str, Any], max_examples: int) -> None:
    from rich.text import Text

    # as _print_failure: the id and headline, the first mismatches, then the command
    console.print(Text.assemble((c["id"], "bold red"), f" {c['status']}: {c.get('reason') or ''}"), soft_wrap=True)
    examples = mismatch_lines(c, max_examples) if c["status"] == "fail" else []
    if examples:
        v = verdict_of(c)
        differing = v.differing if v is not None else len(examples)
        heading = "differing answers" if differing <= len(examples) else \
            f"the first {len(examples)} of {differing:,} differing answers"
        console.print(Text(f"  {heading}:"), soft_wrap=True)
        for line in examples:
            console.print(Text(f"    {line}"), soft_wrap=True)
    v = verdict_of(c)
    for note in v.notes if v is not None else ():
        console.print(Text(f"  note: {note}"), soft_wrap=True)
    if c["status"] == "fail":
        console.print(Text(f"    repro: {c['repro']}", style="dim"), soft_wrap=True)


def _dtype_order(name: str) -> int:
    return {"float16": 0, "bfloat16": 1, "float32": 2, "float64": 3}.get(name, 9)


def _shown_params(oracle: str, params: dict[str, Any]) -> str:

    try:
        defaults = {p.name: p.default for p in get_oracle(oracle).params}
    except UsageError:
        defaults = {}
    return ",".join(f"{k}={v}" for k, v in sorted(params.items()) if defaults.get(k) != v)


def _count(n: int, noun: str) -> str:
    """``1 defect``, ``2 defects``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
