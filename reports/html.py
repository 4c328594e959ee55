"""The HTML report: one self-contained file a person reads and CI keeps as an artifact.

What it shows, first: the findings, the defects of the failing cells ranked by severity
(:func:`reports.findings.findings`), each linking to its cell, and one line per device on
which no cell ran (its columns are left out of the matrices). Then, per oracle: a matrix of implementations x (dtype, device) coloured by max
ULP error and badged with NaN/Inf incidence, every cell a link to its details; incidence
tables with counts and rates (inherent overflow apart from the defects); per failing cell
the ULP histogram and ULP error versus input (from the cell's ``profile`` when the results
have one, else from its stored examples; the plots' frames drawn once, see
:class:`reports.svg.Frames`), where each incidence category happened, the worst inputs
with bits and values, and the repro command; then the run metadata. Given a baseline it
also shows what got better or worse, cell by cell.

How it is built: Jinja2 with autoescape on (an implementation called
``<script>alert(1)</script>`` renders as text), plots as inline SVG drawn in Python
(:mod:`reports.svg`), CSS and a little optional JavaScript inlined from
``reports/static``. Nothing is fetched when the page opens: no CDN, no web fonts; the page
works with scripts off (filters and expand-all are the only things the script adds).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any

from markupsafe import Markup

from harness.judgement.summary import DEFECTS
from harness.plan.cells import CellResult
from harness.record.compare import CellKey, CellVerdict, Comparison, Kind, Tolerance, compare
from harness.record.results import Results, RunInfo
from oracles.atomic import atomic_write_text
from oracles.registry import get_oracle
from reports import svg
from reports.comparison import KIND_LABELS
from reports.findings import collapsed_devices, failing_elements, findings, not_run_lines
from reports.labels import (
    CATEGORY_LABELS,
    METRICS,
    ULP_CLASSES,
    format_metric,
    format_ulp,
    metric_class,
    metric_value,
    ulp_class,
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

#: how a verdict marks its cell in the matrix: (symbol, css class)
_MARKS: dict[Kind, tuple[str, str]] = {
    Kind.NEW_FAILURE: ("▲", "worse"),
    Kind.REGRESSED: ("▲", "worse"),
    Kind.INCOMPARABLE: ("≠", "odd"),
    Kind.NEW_CELL: ("new", "odd"),
    Kind.MISSING_CELL: ("", "odd"),
    Kind.FIXED: ("▼", "better"),
    Kind.IMPROVED: ("▼", "better"),
}


def _merged(results: Sequence[Results]) -> Results:
    """One Results of several files: a later file's cell replaces the same cell of an
    earlier one (as the matrix shows it); the run metadata is the last file's."""
    cells: dict[CellKey, CellResult] = {}
    for res in results:
        for c in res.cells:
            cells[c.spec.key] = c
    return Results(results[-1].run, tuple(cells.values()))


@dataclass(frozen=True, slots=True)
class VerdictView:
    """A :class:`~harness.record.compare.CellVerdict` as the report shows it."""

    verdict: CellVerdict
    label: str
    css: str
    mark: str
    ulp: str
    correctly_rounded: str
    incidence: tuple[tuple[str, str, str], ...]  # (effect, badge text, "3 → 4")

    @property
    def kind(self) -> str:
        return self.verdict.kind.value


def _side_text(cell: CellResult | None, what: str) -> str:
    if cell is None:
        return "–"
    if cell.status in ("skipped", "unsupported", "error"):
        return cell.status
    s = cell.summary
    if s is None:
        return "?"
    if what == "ulp":
        return format_ulp(s.ulp_max, none="–") if s.ulp_count else "–"
    return _pct(s.correctly_rounded / s.n) if s.n else "–"


def _pair(v: CellVerdict, what: str) -> str:
    before, after = _side_text(v.baseline, what), _side_text(v.current, what)
    return after if before == after else f"{before} → {after}"


def _verdict_view(v: CellVerdict) -> VerdictView:
    mark, css = _MARKS.get(v.kind, ("", "same"))
    incidence = tuple(
        (d.effect, CATEGORY_LABELS[d.metric][0], f"{int(d.before):,} → {int(d.after):,}")
        for d in v.deltas
        if d.metric in CATEGORY_LABELS and d.effect != "same"
    )
    return VerdictView(v, KIND_LABELS[v.kind], css, mark, _pair(v, "ulp"), _pair(v, "cr"), incidence)


# -- view model ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Badge:
    category: str
    short: str
    long: str
    count: int
    rate: float


@dataclass(slots=True)
class CellView:
    """Everything the template shows of one cell (the cell's JSON plus derived values)."""

    data: dict[str, Any]
    anchor: str
    label: str
    device_name: str
    framework_version: str
    run_index: int
    elementwise: bool
    metric: str = "ulp"
    verdict: VerdictView | None = None
    badges: list[Badge] = field(default_factory=list)
    hist_svg: Markup = field(default_factory=Markup)
    plot_svg: Markup = field(default_factory=Markup)
    plot_note: str = ""
    bands: list[tuple[str, str, str, list[str]]] = field(default_factory=list)
    #: an earlier cell with the very same stored inputs and results (its tables are linked)
    same_as: CellView | None = None

    @property
    def max_ulp(self) -> float | None:
        value = (self.data.get("ulp") or {}).get("max")
        return None if value is None else float(value)

    @property
    def ulp_cls(self) -> str:
        return ulp_class(self.max_ulp)

    @property
    def metric_value(self) -> float | None:
        """The error the matrix shows (``--metric``)."""
        return metric_value(self.data, self.metric)

    @property
    def metric_text(self) -> str:
        """``2,047`` / ``11 bits`` / ``abs 1.2e-07`` without the ulp unit (the matrix adds it)."""
        text = format_metric(self.metric_value, self.metric, none="–")
        return text[: -len(" ulp")] if text.endswith(" ulp") else text

    @property
    def metric_cls(self) -> str:
        return metric_class(self.metric_value, self.metric)

    @property
    def open(self) -> bool:
        return self.data["status"] in ("fail", "error")

    @property
    def failing(self) -> list[tuple[str, str, dict[str, Any]]]:
        """The elements that break the budget, in the budget's order: (group title,
        category, example JSON), at most 3 per group (:func:`reports.findings.failing_elements`)."""
        return [(g.title, g.category, e.to_json()) for g in failing_elements(self.data, limit=3) for e in g.examples]

    @property
    def worst_rows(self) -> list[dict[str, Any]]:
        """The stored worst inputs not already shown as failing: 3 of them (10 are stored;
        1 for a passing cell), none when the failing ones include the worst errors over budget."""
        failing = self.failing
        if any(cat == "ulp" for _t, cat, _e in failing):
            return []
        shown = {e["index"] for _t, _c, e in failing}
        keep = 3 if failing else 1  # a passing cell: its worst input (the results file has 10)
        return [e for e in (self.data.get("worst") or []) if e.get("index") not in shown][:keep]

    @property
    def example_rows(self) -> list[dict[str, Any]]:
        """The first stored input of each incidence category not already shown as failing."""
        failing = self.failing
        shown = {e["index"] for _t, _c, e in failing}
        # beside a failing cell's failing inputs, inherent overflow (correct) is noise
        seen: set[str] = {"inherent_inf"} if failing else set()
        out = []
        for e in self.data.get("examples") or []:
            if e.get("index") in shown or e.get("category") in seen:
                continue
            seen.add(str(e.get("category")))
            out.append(e)
        if failing:  # the failing table has the budget's categories; one row of each other one
            out = [e for e in out if e.get("category") not in {c for _t, c, _e in failing}]
        return out

    @property
    def other_metrics(self) -> list[tuple[str, str]]:
        """(label, ``max …, p99 …``) of bits, abs and rel error; ``–`` where the results lack them."""
        out = []
        for metric, label in (("bits", "bits of error"), ("abs", "abs error"), ("rel", "rel error")):
            summary = self.data.get(METRICS[metric][0])
            if isinstance(summary, Mapping) and summary.get("max") is not None:
                p99 = summary.get("p99")
                out.append((label, f"max {_short(summary['max'])}" + (f", p99 {_short(p99)}" if p99 is not None else "")))
            else:
                out.append((label, "–"))
        return out


@dataclass(slots=True)
class OracleView:
    name: str
    anchor: str
    signature: str
    doc: str
    columns: list[tuple[str, str]]
    rows: list[tuple[str, str, list[CellView | None]]]
    cells: list[CellView]
    incidence_rows: list[CellView]
    counts: dict[str, int]


def _oracle_info(name: str) -> tuple[str, str, str]:
    """(kind, signature, doc) of a registered oracle; unknown ones (a results file from a
    build with more oracles) get empty text and are drawn like elementwise ones."""
    try:
        o = get_oracle(name)
    except Exception:  # noqa: BLE001 - an unknown oracle must not stop a report
        return ("", "", "")
    return (o.kind, o.signature, o.doc.strip().splitlines()[0] if o.doc.strip() else "")


def _shown_params(oracle: str, params: Mapping[str, Any]) -> str:
    defaults: dict[str, Any] = {}
    try:
        defaults = {p.name: p.default for p in get_oracle(oracle).params}
    except Exception:  # noqa: BLE001 - unknown oracle: show every parameter
        pass
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if defaults.get(k) != v)


def _anchor(prefix: str, text: str, key: object) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:72]
    digest = hashlib.sha1(repr(key).encode()).hexdigest()[:6]
    return f"{prefix}-{slug}-{digest}"


def _badges(cell: Mapping[str, Any]) -> list[Badge]:
    inc = cell.get("incidence") or {}
    n = int(cell.get("n") or 0)
    return [
        Badge(cat, *CATEGORY_LABELS[cat], int(inc[cat]), int(inc[cat]) / n if n else 0.0)
        for cat in svg.BAND_ORDER
        if inc.get(cat)
    ]


def _short(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return "0" if v == 0 else f"{v:.3g}"


def _cell_view(
    cell: dict[str, Any], run: RunInfo, run_index: int, kind: str, metric: str = "ulp",
    frames: svg.Frames | None = None,
) -> CellView:
    shown = _shown_params(cell["oracle"], cell.get("params") or {})
    fw = str(cell.get("framework", ""))
    device_name = str((run.devices.get(fw) or {}).get(cell["device"], ""))
    version = run.frameworks.get(fw)
    profile = cell.get("profile")
    elementwise = kind == "elementwise" or (kind == "" and profile is not None)
    view = CellView(
        data=cell,
        anchor=_anchor("cell", str(cell["id"]), (cell["oracle"], cell["impl"], cell["dtype"], cell["device"],
                                                 cell["inputs"], sorted((cell.get("params") or {}).items()))),
        label=str(cell["impl"]) + (f" ({shown})" if shown else ""),
        device_name=device_name,
        framework_version="" if version is None else str(version),
        run_index=run_index,
        elementwise=elementwise,
        metric=metric,
        badges=_badges(cell),
    )
    ulp = cell.get("ulp") or {}
    # no plots for a passing cell: its facts (percentiles, the correctly rounded share) and
    # its worst input tell its story, and the report stays small enough to open at once
    # (benchmarks/bench_report_size.py)
    if cell["status"] != "pass":
        view.hist_svg = svg.histogram(ulp.get("histogram") or [], total=int(ulp.get("count") or 0), frames=frames)
    if elementwise and cell["status"] == "fail":
        budget = (cell.get("budget") or {}).get("max_ulp")
        try:
            if profile:
                view.plot_svg = svg.error_plot(str(profile.get("format", cell["dtype"])), profile=profile, budget=budget,
                                               frames=frames)
                total = sum(int(r[3]) for r in profile.get("rows") or [])
                # how to read the plot is said once, above the details (report.html.j2)
                view.plot_note = f"All {total:,} inputs in {profile.get('bins')} buckets along the {profile.get('format')} axis."
                for cat, bands in svg.profile_bands(profile).items():
                    short, long = CATEGORY_LABELS[cat]
                    view.bands.append((cat, short, long, [b.text() for b in bands]))
            else:
                points = list(cell.get("worst") or []) + list(cell.get("examples") or [])
                view.plot_svg = svg.error_plot(str(cell["dtype"]), examples=points, budget=budget, frames=frames)
                if view.plot_svg:
                    view.plot_note = (
                        f"Only the {len(points)} stored worst inputs and examples are plotted: these results"
                        " carry no error profile."
                    )
        except Exception as exc:  # noqa: BLE001 - a plot must never cost the whole report
            view.plot_note = f"plot unavailable: {type(exc).__name__}: {exc}"
    return view


def _duration(run: RunInfo) -> str:
    try:
        a = _dt.datetime.fromisoformat(run.started)
        b = _dt.datetime.fromisoformat(run.finished)
    except ValueError:
        return ""
    seconds = (b - a).total_seconds()
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


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
    return RunView(title, res.run, _duration(res.run), len(res.cells), sum(c.seconds for c in res.cells), extra)


def _build(
    results: Sequence[Results], comparison: Comparison | None, metric: str = "ulp", hidden: frozenset[str] = frozenset(),
    frames: svg.Frames | None = None,
) -> tuple[list[OracleView], list[CellView]]:
    """The oracles and their cells as the page shows them; cells on the ``hidden`` devices
    (collapsed: nothing ran there) are left out of the matrices and the details. The plots'
    shared frames go to ``frames`` (drawn once at the top of the page)."""
    latest: dict[CellKey, tuple[dict[str, Any], int]] = {}
    for i, res in enumerate(results):
        for c in res.cells:
            latest[c.spec.key] = (c.to_json(), i)  # a later file replaces an earlier one's cell
    verdicts = {v.key: _verdict_view(v) for v in comparison.verdicts} if comparison is not None else {}
    by_oracle: dict[str, list[CellView]] = {}
    for key, (cell, i) in latest.items():
        if str(cell["device"]) in hidden and key not in verdicts:
            continue
        kind = _oracle_info(cell["oracle"])[0]
        view = _cell_view(cell, results[i].run, i, kind, metric, frames)
        view.verdict = verdicts.get(key)
        by_oracle.setdefault(cell["oracle"], []).append(view)
    oracles: list[OracleView] = []
    every: list[CellView] = []
    for name in sorted(by_oracle):
        views = by_oracle[name]
        columns = sorted({(v.data["dtype"], v.data["device"]) for v in views},
                         key=lambda k: (_DTYPE_ORDER.get(k[0], 9), k[0], k[1]))
        grid: dict[tuple[str, str], dict[tuple[str, str], CellView]] = {}
        for v in views:
            grid.setdefault((v.label, v.data["inputs"]), {})[(v.data["dtype"], v.data["device"])] = v
        rows = [(label, inputs, [grid[(label, inputs)].get(col) for col in columns])
                for label, inputs in sorted(grid)]
        ordered = [v for _l, _i, row in rows for v in row if v is not None]
        _kind, signature, doc = _oracle_info(name)
        counts = {s: sum(1 for v in views if v.data["status"] == s) for s in _STATUSES}
        oracles.append(OracleView(
            name=name,
            anchor=_anchor("oracle", name, name),
            signature=signature,
            doc=doc,
            columns=columns,
            rows=rows,
            cells=ordered,
            # inherent overflow alone is correct: such cells are counted below the table, not listed
            incidence_rows=[v for v in ordered if any(b.category != "inherent_inf" for b in v.badges)],
            counts=counts,
        ))
        every += ordered
    _share_plots(every)
    _share_inputs(every)
    return oracles, every


def _share_inputs(views: Sequence[CellView]) -> None:
    """A cell whose stored inputs and results are those of an earlier cell (same errors,
    same incidence, same worst and example elements: one kernel behind two names) links
    to that cell's tables instead of repeating them."""
    first: dict[str, CellView] = {}
    for view in views:
        d = view.data
        if d["status"] not in ("pass", "fail") or not (d.get("worst") or d.get("examples")):
            continue
        key = json.dumps([d.get("dtype"), d.get("inputs"), d.get("ulp"), d.get("incidence"), d.get("worst"),
                          d.get("examples"), d.get("budget")], sort_keys=True, default=str)
        if key in first:
            view.same_as = first[key]
        else:
            first[key] = view


_SVG_OPEN = re.compile(r'^<svg class="([^"]*)" viewBox="([^"]*)" width="([^"]*)" role="img">')


def _share_plots(views: Sequence[CellView]) -> None:
    """Draw each distinct plot once: a later cell with the same plot (keras and tensorflow
    often share a kernel, so every number) shows it with ``<use>``, which keeps the report
    small; the first one gets an id (only a plot drawn again does). Works with scripts off."""
    seen = Counter(str(getattr(view, attr)) for view in views for attr in ("hist_svg", "plot_svg"))
    first: dict[str, str] = {}
    for view in views:
        for attr in ("hist_svg", "plot_svg"):
            text = str(getattr(view, attr))
            head = _SVG_OPEN.match(text)
            if not text or head is None or seen[text] < 2:
                continue
            if text in first:
                cls, box, w = head.groups()
                setattr(view, attr, Markup(
                    f'<svg class="{cls}" viewBox="{box}" width="{w}" role="img">'
                    f'<use href="#{first[text]}"/></svg>'))
            else:
                ident = f"plot-{len(first)}"
                first[text] = ident
                setattr(view, attr, Markup(f'<svg id="{ident}"' + text[len("<svg"):]))


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
    env.filters["pct"] = _pct
    env.filters["seconds"] = _seconds
    return env


def _pct(x: float) -> str:
    if x == 0:
        return "0%"
    if x >= 0.9995:
        return "100%"
    pct = 100.0 * x
    return f"{pct:.3g}%" if pct >= 0.001 else f"{pct:.1g}%"


def _seconds(s: float) -> str:
    if s < 1:
        return f"{s * 1000:.0f} ms"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


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
    frames = svg.Frames()
    oracles, cells = _build(results, comparison, metric, frozenset(d.device for d in collapsed), frames)
    counts = {s: sum(1 for c in every if c["status"] == s) for s in _STATUSES}
    anchors = {c.data["id"]: c.anchor for c in cells}
    runs = [_run_view(sources[i] if i < len(sources) else f"run {i + 1}", r) for i, r in enumerate(results)]
    base_view = _run_view(baseline_source or "baseline", baseline) if baseline is not None else None
    template = _environment().get_template("report.html.j2")
    return _squeeze(template.render(
        title=title or "fpharness report",
        generated=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        oracles=oracles,
        cells=cells,
        counts=counts,
        runs=runs,
        baseline=base_view,
        comparison=comparison,
        changed=[_verdict_view(v) for v in comparison.verdicts if v.kind is not Kind.UNCHANGED] if comparison else [],
        kind_counts=[(k.value, KIND_LABELS[k], n) for k, n in comparison.counts.items() if n] if comparison else [],
        anchors=anchors,
        ulp_classes=[(cls, text) for _b, cls, text in ULP_CLASSES],
        category_labels=[(c, *CATEGORY_LABELS[c]) for c in svg.BAND_ORDER],
        table_groups=[(name, [(c, *CATEGORY_LABELS[c]) for c in cats]) for name, cats in _TABLE_GROUPS],
        open_all=len(cells) < _OPEN_ALL_BELOW,
        total=len(every),
        findings=findings(every, metric=metric),
        not_run=not_run_lines(every),
        collapsed=collapsed,
        metric=metric,
        metric_unit=METRICS[metric][1],
        plot_frames=frames.defs(),
        css=_static("report.css"),
        js=_static("report.js"),
    ))


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
