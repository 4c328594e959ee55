"""The HTML report: one self-contained file a person reads and CI keeps as an artifact.

What it shows, first: the findings, the defects of the failing cells ranked by severity
(:func:`reports.findings.findings`), each linking to its cell, and one line per device on
which no cell ran (its columns are left out of the matrices). Then, per oracle and pass
(the forward values under the oracle's name, then right after them each gradient under
its subject, ``∂softplus`` or ``∂binary_cross_entropy/∂p``, headed "gradient
(vector-Jacobian product)" with its cotangents): a matrix of implementations x (dtype,
device) coloured by max ULP error and badged with NaN/Inf incidence, every cell a link to
its details; incidence tables with counts and rates (inherent overflow apart from the
defects); per failing cell with enough elements to draw (:data:`reports.html_cells.PLOT_MIN`) the ULP error
versus input of an elementwise cell (from the cell's ``profile`` when the results have
one, else from its stored examples) or else the ULP histogram (when some error is over 0.5
ulp; beside an error plot the facts' ULP percentiles give its shape), the plots' frames
drawn once (:class:`reports.svg.Frames`), where each incidence category happened, the
inputs that break the budget and the worst ones, with bits and values (a gradient's
cotangent named), and the repro command; a passing cell, closed in a large report, has
its facts and its worst input in a line (its command is its id's). Cells with the very
results of an earlier one (one kernel behind two names), and cells of one group skipped,
unsupported or raising for one reason, are a line each (id, command) in that cell's block,
and share its incidence row. Then the run metadata. Given a baseline it also shows what
got better or worse, cell by cell.

Consistency cells (no oracle evaluated; :mod:`reports.html_consistency`) are a section of
their own, after the incidence tables: a table per subject whose columns are the checks
(``ok``, ``12 differ``, ``error``, ``skip``, ``n/a``), and under it a block per failing
check with its contexts, first mismatches, notes and command. Its section, its link in the
contents and its few style rules (``reports/static/consistency.css``) are on the page only
when there are such cells: a report without them is byte for byte what it was before.

Training scenarios (``Results.scenarios``; :mod:`reports.html_training`) are a section of
their own too, after the consistency section: a summary table, then a block per scenario
with its verdict (where it first went non-finite, or how far it drifted from its float64
shadow, or its error), a fix's verdict, the loss of both runs, a layer x step heatmap and
the layers at the verdict's step. Its section, link, header pills, findings lines and
style rules (``reports/static/training.css``) are there only when there are scenarios; a
page of scenarios alone leaves out the cells' sections (findings of cells, matrices,
incidence, details) rather than showing them empty. A later results file's scenario
replaces an earlier one's of the same name, as cells do.

What keeps it small (benchmarks/bench_report_size.py and tests/views/test_gradient_views.py:
the main job's report must stay under 3 MB, and is held to 2.6 MB to leave room, as the
suite doubles with gradients): cell ids in the page are short hashes of the cell key
(``c-1a2b3c4``, stable from run to run); the matrix carries no per-cell tooltip beyond an
error's message, its status marks, units and badge layout come from the style sheet; a
cell's facts are one wrapped line without what the page says once (the framework's
version, in the run metadata, unless several results files are merged; a time under
:data:`reports.html_cells.TIME_FROM`; a reason that only restates the max ulp) and its
example inputs one five-column table (two per part of the budget broken); passing cells
and cells with few elements have no plots, and an error plot no tooltips that the range
list below it repeats; cells with the same results share one block (above); identical
plots and plot frames are drawn once.

How it is built: Jinja2 with autoescape on (an implementation called
``<script>alert(1)</script>`` renders as text), plots as inline SVG drawn in Python
(:mod:`reports.svg`), CSS and a little optional JavaScript inlined from
``reports/static``. Nothing is fetched when the page opens: no CDN, no web fonts; the page
works with scripts off (filters and expand-all are the only things the script adds).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

from markupsafe import Markup

from harness.judgement.summary import DEFECTS
from harness.plan.cells import CellResult
from harness.record.compare import CellKey, Comparison, Kind, Tolerance, compare
from harness.record.results import Results, RunInfo
from oracles.atomic import atomic_write_text
from oracles.registry import get_oracle
from reports import svg
from reports.comparison import KIND_LABELS, ordered
from reports.consistency import CHECKS, MEANING
from reports.findings import collapsed_devices, findings, not_run_lines
from reports.html_cells import (
    PLOT_MIN,
    TIME_FROM,
    CellAnchors,
    CellView,
    cell_view,
    pct,
    seconds,
    share_plots,
    share_results,
    verdict_view,
)
from reports.html_consistency import ConsistencyGroup, consistency_groups
from reports.html_training import BITS_CLASSES, headroom_legend, merged_scenarios, scenario_findings, scenario_views
from reports.labels import (
    CATEGORY_LABELS,
    CONSISTENCY_GROUP,
    METRICS,
    ULP_CLASSES,
    cotangent,
    format_ulp,
    grad_heading,
    group_key,
    group_order,
    is_consistency,
    subject,
)

__all__ = ["render_html", "write_html"]

_HERE = Path(__file__).parent
_DTYPE_ORDER = {"float16": 0, "bfloat16": 1, "float32": 2, "float64": 3}
#: incidence columns of the tables: defects, then the budgeted ones, then inherent overflow
_TABLE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("defects", DEFECTS),
    ("judged by budget", ("missing_inf", "lost_to_zero")),
    ("inherent overflow (correct)", ("inherent_inf",)),
)
#: a cell's details start open when it failed, or when the report is this small
_OPEN_ALL_BELOW = 13
_STATUSES = ("pass", "fail", "error", "unsupported", "skipped")


# -- comparison --------------------------------------------------------------------------------

def _merged(results: Sequence[Results]) -> Results:
    """One Results of several files: a later file's cell replaces the same cell of an
    earlier one (as the matrix shows it); the run metadata is the last file's."""
    cells: dict[CellKey, CellResult] = {}
    for res in results:
        for c in res.cells:
            cells[c.spec.key] = c
    return Results(results[-1].run, tuple(cells.values()))


# -- the page --------------------------------------------------------------------------------------


@dataclass(slots=True)
class OracleView:
    """One group of the page: an oracle's forward cells (``name`` is the oracle), or its
    gradient with respect to one argument (``name`` is the subject, ``∂softplus``)."""

    name: str
    oracle: str
    wrt: str
    heading: str
    anchor: str
    signature: str
    doc: str
    columns: list[tuple[str, str]]
    rows: list[tuple[str, str, list[CellView | None]]]
    cells: list[CellView]
    incidence_rows: list[CellView]
    counts: dict[str, int]
    #: cells with no NaN/Inf/zero defect (or that did not run): counted below the incidence table
    quiet: int = 0

    @property
    def grad(self) -> bool:
        return bool(self.wrt)


def _oracle_info(name: str) -> tuple[str, str, str]:
    """(kind, signature, doc) of a registered oracle; unknown ones (a results file from a
    build with more oracles) get empty text and are drawn like elementwise ones."""
    try:
        o = get_oracle(name)
    except Exception:  # noqa: BLE001 - an unknown oracle must not stop a report
        return ("", "", "")
    return (o.kind, o.signature, o.doc.strip().splitlines()[0] if o.doc.strip() else "")


def _anchor(prefix: str, text: str, key: object) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:72]
    digest = hashlib.sha1(repr(key).encode()).hexdigest()[:6]
    return f"{prefix}-{slug}-{digest}"


def _duration(run: RunInfo) -> str:
    try:
        a = _dt.datetime.fromisoformat(run.started)
        b = _dt.datetime.fromisoformat(run.finished)
    except ValueError:
        return ""
    try:
        span = (b - a).total_seconds()
    except TypeError:  # one time with a zone and one without: no duration rather than no report
        return ""
    return f"{span:.0f} s" if span < 120 else f"{span / 60:.1f} min"


@dataclass(slots=True)
class RunView:
    title: str
    run: RunInfo
    duration: str
    cells: int
    cell_seconds: float
    extra: list[tuple[str, str]]


def _run_view(title: str, res: Results) -> RunView:
    extra = [(k, str(v)) for k, v in sorted(res.run.extra.items())]
    if res.scenarios:
        extra.append(("training scenarios", str(len(res.scenarios))))
    return RunView(title, res.run, _duration(res.run), len(res.cells), sum(c.seconds for c in res.cells), extra)


def _build(
    results: Sequence[Results], comparison: Comparison | None, metric: str = "ulp", hidden: frozenset[str] = frozenset(),
    frames: svg.Frames | None = None,
) -> tuple[list[OracleView], list[CellView], list[ConsistencyGroup]]:
    """The groups (an oracle's forward cells, then each of its gradients) and their cells
    as the page shows them, and the consistency groups; cells on the ``hidden`` devices
    (collapsed: nothing ran there) are left out of the matrices and the details. The plots'
    shared frames go to ``frames`` (drawn once at the top of the page)."""
    latest: dict[CellKey, tuple[dict[str, Any], int]] = {}
    for i, res in enumerate(results):
        for c in res.cells:
            latest[c.spec.key] = (c.to_json(), i)  # a later file replaces an earlier one's cell
    verdicts = {v.key: verdict_view(v) for v in comparison.verdicts} if comparison is not None else {}
    anchors = CellAnchors()
    by_group: dict[tuple[str, str], list[CellView]] = {}
    checks: list[tuple[CellKey, dict[str, Any]]] = []
    for key, (cell, i) in latest.items():
        if str(cell["device"]) in hidden and key not in verdicts:
            continue
        if is_consistency(cell):  # their own section, after the accuracy cells took their anchors
            checks.append((key, cell))
            continue
        kind = _oracle_info(cell["oracle"])[0]
        view = cell_view(cell, results[i].run, i, kind, anchors(key), metric, frames)
        view.verdict = verdicts.get(key)
        by_group.setdefault(group_key(cell), []).append(view)
    oracles: list[OracleView] = []
    every: list[CellView] = []
    for oracle, arg in group_order(sorted(by_group)):
        views = by_group[(oracle, arg)]
        columns = sorted({(v.data["dtype"], v.data["device"]) for v in views},
                         key=lambda k: (_DTYPE_ORDER.get(k[0], 9), k[0], k[1]))
        grid: dict[tuple[str, str], dict[tuple[str, str], CellView]] = {}
        for v in views:
            grid.setdefault((v.label, v.inputs), {})[(v.data["dtype"], v.data["device"])] = v
        rows = [(label, inputs, [grid[(label, inputs)].get(col) for col in columns])
                for label, inputs in sorted(grid)]
        ordered_views = [v for _l, _i, row in rows for v in row if v is not None]
        _kind, signature, doc = _oracle_info(oracle)
        counts = {s: sum(1 for v in views if v.data["status"] == s) for s in _STATUSES}
        name = subject(views[0].data)
        if arg:
            heading = grad_heading(name, sorted({cotangent(v.data) for v in views}, key=_cotangent_order))
            anchor, signature, doc = _anchor("grad", f"{oracle}-{arg}", (oracle, arg)), "", ""
        else:
            heading, anchor = name, _anchor("oracle", name, name)
        oracles.append(OracleView(
            name=name,
            oracle=oracle,
            wrt=arg,
            heading=heading,
            anchor=anchor,
            signature=signature,
            doc=doc,
            columns=columns,
            rows=rows,
            cells=ordered_views,
            incidence_rows=[],  # once twins are known (share_results)
            counts=counts,
        ))
        every += ordered_views
    share_results(every)
    share_plots(every)
    for o in oracles:
        # inherent overflow alone is correct: such cells are counted below the table, not
        # listed; a twin on its first cell's device is named in that cell's row
        o.incidence_rows = [v for v in o.cells if not v.folded and any(b.category != "inherent_inf" for b in v.badges)]
        o.quiet = len(o.cells) - len(o.incidence_rows) - sum(len(v.row_twins) for v in o.incidence_rows)
    if len(results) > 1:
        for v in every:
            v.several_runs = True
    order = group_order(sorted({*by_group, *(group_key(c) for _k, c in checks)}))
    consistency = consistency_groups(checks, anchors, verdicts, [k for k in order if k[1] == CONSISTENCY_GROUP],
                                     lambda name: _anchor("consistency", name, (name, CONSISTENCY_GROUP)))
    return oracles, every, consistency


def _cotangent_order(name: str) -> tuple[int, str]:
    order = ("ones", "random", "special")
    return (order.index(name) if name in order else len(order), name)


@cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
        autoescape=True,  # every value is escaped unless it is Markup built by us
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["ulp"] = partial(format_ulp, none="–")
    env.filters["count"] = svg.fmt_count
    env.filters["pct"] = pct
    env.filters["seconds"] = seconds
    return env


def _static(name: str) -> Markup:
    # our own files, inlined so that the report needs nothing beside itself
    return Markup((_HERE / "static" / name).read_text(encoding="utf-8"))


def _load_oracles() -> None:
    """Register the built-in oracles: cell ids leave out default parameters only once
    they are known (``softplus[...-float16-exhaustive]``, not ``...-beta=1.0]``)."""
    try:
        get_oracle("softplus")  # the first lookup imports the catalogue
    except Exception:  # noqa: BLE001 - a build without that oracle still renders
        pass


def render_html(
    results: Sequence[Results],
    *,
    baseline: Results | None = None,
    title: str | None = None,
    sources: Sequence[str] = (),
    baseline_source: str = "",
    tolerance: Tolerance | None = None,
    metric: str = "ulp",
) -> str:
    """The report as one HTML string. ``sources`` name the results files (shown in the
    metadata); ``baseline`` adds the comparison view, judged by
    :func:`harness.record.compare.compare` with ``tolerance`` (default: exact); ``metric``
    picks what the matrix shows (:data:`reports.labels.METRICS`).

    It opens with the findings (the defects ranked by severity, each linking to its cell)
    and a line per device on which nothing ran; those devices' columns are left out."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if not results:
        raise ValueError("render_html needs at least one Results")
    _load_oracles()
    comparison = None
    if baseline is not None:
        labels = (baseline_source or "baseline", ", ".join(sources) or "current")
        comparison = compare(baseline, _merged(results), tolerance, labels=labels)
    every = [c.to_json() for c in _merged(results).cells]
    collapsed = collapsed_devices(every)
    frames = svg.Frames("f")
    oracles, cells, consistency = _build(results, comparison, metric, frozenset(d.device for d in collapsed), frames)
    counts = {s: sum(1 for c in every if c["status"] == s) for s in _STATUSES}
    anchors = {c.data["id"]: c.anchor for c in cells}
    anchors.update((c.data["id"], c.anchor) for g in consistency for c in g.cells if c.linked)
    runs = [_run_view(sources[i] if i < len(sources) else f"run {i + 1}", r) for i, r in enumerate(results)]
    base_view = _run_view(baseline_source or "baseline", baseline) if baseline is not None else None
    scenarios = scenario_views(merged_scenarios(r.scenarios for r in results))
    template = _environment().get_template("report.html.j2")
    return _squeeze(template.render(
        title=title or "fpharness report",
        generated=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        oracles=oracles,
        consistency=consistency,
        consistency_checks=[(name, MEANING[name]) for name in CHECKS
                            if any(name == n for g in consistency for n, _m in g.checks)],
        oracle_count=len({o.oracle for o in oracles}),
        cells=cells,
        counts=counts,
        runs=runs,
        baseline=base_view,
        comparison=comparison,
        changed=[verdict_view(v) for v in ordered(comparison.verdicts) if v.kind is not Kind.UNCHANGED]
        if comparison else [],
        kind_counts=[(k.value, KIND_LABELS[k], n) for k, n in comparison.counts.items() if n] if comparison else [],
        anchors=anchors,
        ulp_classes=[(cls, text) for _b, cls, text in ULP_CLASSES],
        category_labels=[(c, *CATEGORY_LABELS[c]) for c in svg.BAND_ORDER],
        table_groups=[(name, [(c, *CATEGORY_LABELS[c]) for c in cats]) for name, cats in _TABLE_GROUPS],
        open_all=len(cells) < _OPEN_ALL_BELOW,
        plot_min=PLOT_MIN,
        time_from=TIME_FROM,
        total=len(every),
        findings=findings(every, metric=metric),
        not_run=not_run_lines(every),
        collapsed=collapsed,
        metric=metric,
        metric_unit=METRICS[metric][1],
        plot_frames=frames.defs(),
        css=_static("report.css"),
        consistency_css=_static("consistency.css") if consistency else Markup(""),
        scenarios=scenarios,
        scenario_sub=_scenario_sub(len(scenarios), cellular=bool(every)),
        bits_classes=BITS_CLASSES,
        headroom_legend=headroom_legend(),
        scenario_counts=[(st, label, sum(1 for v in scenarios if v.status == st))
                         for st, label in (("finite", "finite"), ("nonfinite", "non-finite"), ("error", "errors"))],
        scenario_findings=scenario_findings(scenarios),
        training_css=_static("training.css") if scenarios else Markup(""),
        js=_static("report.js"),
    ))


def _scenario_sub(n: int, *, cellular: bool) -> str:
    """The header's words for the training scenarios, after the cells' (if any)."""
    if not n:
        return ""
    return f"{' · ' if cellular else ''}{n} training scenario{'s' if n != 1 else ''}"


def _squeeze(html: str) -> str:
    """The template's indentation, dropped: it is a tenth of a large report, and no element
    of ours keeps white space (``<pre>`` holds one line each). So are the line breaks between
    table rows and cells, list items and cells' details, where white space is never shown."""
    html = re.sub(r"\n[ \t]+", "\n", html)
    return re.sub(r"(</t[dhr]>|<tr>|</li>|</details>)\n(?=</?(?:t[dhr]|li|details)\b)", r"\1", html)


def write_html(
    results: Sequence[Results],
    path: Path,
    *,
    baseline: Results | None = None,
    title: str | None = None,
    sources: Sequence[str] = (),
    baseline_source: str = "",
    tolerance: Tolerance | None = None,
    metric: str = "ulp",
) -> None:
    """Render the report and write it to ``path`` atomically (readers see the old file or
    the new one, never half of one)."""
    text = render_html(
        results, baseline=baseline, title=title, sources=sources, baseline_source=baseline_source, tolerance=tolerance,
        metric=metric,
    )
    atomic_write_text(Path(path), text)
