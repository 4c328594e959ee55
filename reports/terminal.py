"""Terminal views: registry listings and per-oracle result tables (rich).

A table per oracle: rows are implementations (and input sets), columns dtype x device; a
cell shows the max ULP error and every incidence count that is not zero, green when the
cell is within budget, red when not; below it, the worst inputs of each failing cell and
the command that reproduces it. The text form (:func:`cell_text`) is what golden tests pin.

Everything from a result or a registry is printed verbatim: repro commands, ids, input
specs, file names and exception messages go in as :class:`rich.text.Text` (never parsed as
markup) on a console with emoji codes off, so ``random:100:0`` is not ``random💯0`` and a
reason with ``[red]`` or ``:thumbs_up:`` in it reads as the implementation raised it. Styles
are given as ``Text`` styles, never as markup in a string.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from harness.judgement.summary import Example
from oracles.errors import UsageError
from oracles.registry import get_oracle
from reports.labels import INCIDENCE_LABELS, format_ulp

__all__ = ["cell_text", "print_registry", "print_results", "summary_line", "verbatim_console"]


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


def cell_text(cell: dict[str, Any]) -> str:
    """One cell as plain text: ``0.5 ulp`` / ``2,047 ulp Inf!=12916 →0=1206`` / ``ERR``."""
    status = cell["status"]
    if status == "skipped":
        return "skip"
    if status == "error":
        return "ERR"
    ulp = cell.get("ulp") or {}
    parts = [f"{format_ulp(ulp.get('max'))} ulp"]
    for cat, count in (cell.get("incidence") or {}).items():
        if count:
            parts.append(f"{INCIDENCE_LABELS[cat]}={count}")
    if cell.get("out_dtype") and cell["out_dtype"] != cell["dtype"]:
        parts.append(f"(out {cell['out_dtype']})")
    return " ".join(parts)


def summary_line(cells: Sequence[dict[str, Any]]) -> str:
    counts = {s: sum(1 for c in cells if c["status"] == s) for s in ("pass", "fail", "error", "skipped")}
    return f"{len(cells)} cells: {counts['pass']} passed, {counts['fail']} failed, {counts['error']} errors, {counts['skipped']} skipped"


def _style(status: str) -> str:
    return {"pass": "green", "fail": "bold red", "error": "magenta", "skipped": "dim"}[status]


def print_results(cells: Iterable[dict[str, Any]], *, console: Any = None, max_examples: int = 3) -> None:
    """Render result cells (schema-1 dicts) as one table per oracle plus failing details, on
    ``console`` (default: :func:`verbatim_console`). Every text from the cells goes in as
    ``Text``, so it is printed as given on any console."""
    from rich.table import Table
    from rich.text import Text

    console = console or verbatim_console(140)
    cells = list(cells)
    by_oracle: dict[str, list[dict[str, Any]]] = {}
    for c in cells:
        by_oracle.setdefault(c["oracle"], []).append(c)
    for oracle, group in by_oracle.items():
        columns = sorted({(c["dtype"], c["device"]) for c in group}, key=lambda k: (_dtype_order(k[0]), k[1]))
        rows: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        for c in group:
            shown = _shown_params(c["oracle"], c.get("params") or {})
            label = c["impl"] + (f" ({shown})" if shown else "")
            rows.setdefault((label, c["inputs"]), {})[(c["dtype"], c["device"])] = c
        table = Table(title=Text(oracle, style="bold"), header_style="bold", title_justify="left")
        table.add_column("implementation", overflow="fold")
        table.add_column("inputs", overflow="fold", style="dim")
        for dtype, device in columns:
            table.add_column(Text(f"{dtype}\n{device}"), overflow="fold")
        for (label, inputs), row in sorted(rows.items()):
            rendered = [Text(label), Text(inputs)]
            for key in columns:
                found = row.get(key)
                rendered.append(Text("") if found is None else Text(cell_text(found), style=_style(found["status"])))
            table.add_row(*rendered)
        console.print(table)
        for c in group:
            if c["status"] in ("fail", "error"):
                _print_failure(console, c, max_examples)
    console.print(Text(summary_line(cells)))


def _print_failure(console: Any, c: dict[str, Any], max_examples: int) -> None:
    from rich.text import Text

    # soft_wrap on every line here: ids, reasons and commands stay whole, to be copied
    console.print(Text.assemble((c["id"], "bold red"), f" {c['status']}: {c.get('reason') or ''}"), soft_wrap=True)
    shown = [Example.from_json(e) for e in c.get("examples", [])][:max_examples]
    shown += [Example.from_json(e) for e in c.get("worst", [])][: max(0, max_examples - len(shown))]
    for e in shown:
        console.print(Text(f"    {e.describe()}"), soft_wrap=True)
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
