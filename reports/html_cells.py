"""What the HTML report shows of one cell: its view model (:class:`CellView`), built from the
cell's JSON by :func:`cell_view`, and what cells share on a page: one block for cells with
the same results, or not run for the same reason (:func:`share_results`), and identical
plots (:func:`share_plots`). The page itself, its groups and their order, is
:mod:`reports.html`'s.

A passing cell, or one of fewer than :data:`PLOT_MIN` elements, has no plots; a failing
elementwise cell has its error-versus-input plot, another failing cell its ULP histogram.
A failing cell shows :data:`EXAMPLES` inputs per part of the budget it breaks.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from harness.judgement.summary import Example
from harness.plan.cells import DEFAULT_ALLOW, CellResult
from harness.record.compare import CellVerdict, Kind
from harness.record.results import RunInfo
from oracles.registry import get_oracle
from reports import svg
from reports.comparison import KIND_LABELS
from reports.findings import failing_elements
from reports.labels import (
    CATEGORY_LABELS,
    METRICS,
    cotangent,
    format_metric,
    format_ulp,
    group_key,
    inputs_label,
    is_grad,
    metric_class,
    metric_value,
    named_values,
    ulp_class,
    wrt,
)

__all__ = [
    "EXAMPLES",
    "PLOT_MIN",
    "TIME_FROM",
    "Badge",
    "CellAnchors",
    "CellView",
    "ExampleRow",
    "VerdictView",
    "cell_view",
    "pct",
    "seconds",
    "share_plots",
    "share_results",
    "shown_params",
    "time_text",
    "verdict_view",
]

#: fewer elements than this and a cell has no plots: its tables list what there is to see
#: (a ``special`` input set is a few dozen values, and 256 buckets of them say little)
PLOT_MIN = 256
#: a cell's time is shown from this many seconds on: the median cell of the main job takes
#: 12 ms, and a time in each of its 1,300 details blocks was 2% of the report for what only
#: someone hunting slow cells reads (the results file keeps every cell's time)
TIME_FROM = 1.0
#: inputs shown per part of the budget a failing cell breaks: two tell a pattern from an
#: accident; the terminal's --details shows three, the results file keeps ten
EXAMPLES = 2

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
    if cell.spec.check:  # a consistency cell: the largest distance between two answers
        v = cell.consistency
        if v is None or what != "ulp" or v.max_ulp is None:
            return "?" if v is None else "–"
        return "NaN" if math.isinf(v.max_ulp) else format_ulp(v.max_ulp, none="–")
    s = cell.summary
    if s is None:
        return "?"
    if what == "ulp":
        return format_ulp(s.ulp_max, none="–") if s.ulp_count else "–"
    return pct(s.correctly_rounded / s.n) if s.n else "–"


def _pair(v: CellVerdict, what: str) -> str:
    before, after = _side_text(v.baseline, what), _side_text(v.current, what)
    return after if before == after else f"{before} → {after}"


def verdict_view(v: CellVerdict) -> VerdictView:
    """How ``v`` marks its cell and reads in the comparison table."""
    mark, css = _MARKS.get(v.kind, ("", "same"))
    incidence = tuple(
        (d.effect, CATEGORY_LABELS[d.metric][0] if d.metric in CATEGORY_LABELS else "differ",
         f"{int(d.before):,} → {int(d.after):,}")
        for d in v.deltas
        # a consistency cell's differing comparisons read as its incidence does
        if (d.metric in CATEGORY_LABELS or d.metric == "differing") and d.effect != "same"
    )
    return VerdictView(v, KIND_LABELS[v.kind], css, mark, _pair(v, "ulp"), _pair(v, "cr"), incidence)


# -- a cell ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Badge:
    category: str
    short: str
    long: str
    count: int
    rate: float


@dataclass(frozen=True, slots=True)
class ExampleRow:
    """One row of a cell's example table: why it is shown (a badge's category and a title),
    the input bits and values (a gradient's cotangent named), the result and the truth."""

    category: str  # an incidence category (badged), or "" (a worst error, or the group's own category)
    short: str  # the category's badge text (``→0``)
    bits: str
    values: str
    where: str  # "row 3, col 2" of a row-wise or reduction cell
    got: str
    got_value: str
    want: str
    want_value: str
    exact: str
    ulp: float | None
    bad: bool

    @staticmethod
    def of(cell: Mapping[str, Any], e: Mapping[str, Any], group: str = "") -> ExampleRow:
        """The row of example ``e``; one of a group of ``group``'s category (its caption
        names it) is not badged again."""
        ex = Example.from_json(e)
        row, col = ex.row, ex.col
        where = "" if row is None else f"row {row}" + (f", col {col}" if col is not None else "")
        cat = ex.category if ex.category in CATEGORY_LABELS and ex.category != group else ""
        return ExampleRow(cat, CATEGORY_LABELS[cat][0] if cat else "", ", ".join(ex.input),
                          ", ".join(named_values(cell, ex)), where, ex.got,
                          ex.got_value, ex.want, ex.want_value, ex.exact, ex.ulp, ex.got != ex.want)


@dataclass(slots=True)
class CellView:
    """Everything the template shows of one cell (the cell's JSON plus derived values)."""

    data: dict[str, Any]
    anchor: str
    label: str
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
    #: an earlier cell with the very same stored inputs and results: this cell is a line in
    #: that cell's details (its id, time and repro), not a details of its own
    same_as: CellView | None = None
    #: the later cells with this cell's results (whose ``same_as`` is this one), in page order
    twins: list[CellView] = field(default_factory=list)
    #: whether the page merges several results files (then a cell names its framework's version)
    several_runs: bool = False

    @property
    def folded(self) -> bool:
        """A twin on its first cell's device: its incidence row is that cell's row."""
        return self.same_as is not None and self.same_as.data["device"] == self.data["device"]

    @property
    def row_twins(self) -> list[CellView]:
        """The twins named in this cell's incidence row (those on its device)."""
        return [t for t in self.twins if t.folded]

    @property
    def twins_note(self) -> str:
        """What the summary says of the twins: ``and 2 more cells with these results``."""
        n = len(self.twins)
        more = f"and {n} more cell{'s' if n != 1 else ''}"
        status = self.data["status"]
        if status in ("pass", "fail"):
            return f"{more} with these results"
        return f"{more} that raised the same error" if status == "error" else f"{more} {status} for the same reason"

    @property
    def twins_heading(self) -> str:
        status = self.data["status"]
        if status in ("pass", "fail"):
            return "The same results"
        return "The same error" if status == "error" else f"{status.capitalize()} for the same reason"

    @property
    def inputs(self) -> str:
        """The inputs column: the spec, and a cotangent other than ones (``· cot=random``)."""
        return inputs_label(self.data)

    @property
    def grad(self) -> str:
        """``∂/∂x, cotangent ones`` for a gradient cell; ``""`` for a forward one."""
        return f"∂/∂{wrt(self.data)}, cotangent {cotangent(self.data)}" if is_grad(self.data) else ""

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
    def reason(self) -> str:
        """The reason to show: a failing cell's that says only ``max ulp 1914.66 > 4`` is
        left out, as its summary (``1,915 ulp``), its budget and the caption of its worst
        inputs (``worst errors over 4 ulp``) say it; any other reason is shown whole."""
        reason = str(self.data.get("reason") or "")
        return "" if self.data["status"] == "fail" and _ONLY_MAX_ULP.fullmatch(reason) else reason

    @property
    def open(self) -> bool:
        return self.data["status"] in ("fail", "error")

    @property
    def budget_text(self) -> str:
        """``max 4 ulp; inherent_inf allowed`` : the limits, and the allowances that differ
        from the default (no spurious NaN/Inf, no missing NaN; the rest reported only)."""
        budget = self.data.get("budget") or {}
        max_ulp = budget.get("max_ulp")
        parts = [f"max {float(max_ulp):g} ulp" if max_ulp is not None else "no ulp limit"]
        for key, unit in (("max_bits", " bits"), ("atol", ""), ("rtol", "")):
            if budget.get(key) is not None:
                parts.append(f"{key} {budget[key]}{unit}")
        allow = budget.get("allow") or {}
        for cat, value in sorted(allow.items()):
            if cat in DEFAULT_ALLOW and value == DEFAULT_ALLOW[cat]:
                continue
            parts.append(f"{cat} allowed" if value is True else f"{cat} ≤ {value}")
        return "; ".join(parts)

    @property
    def time_text(self) -> str:
        """``2.6 s (impl. 1.8 s)``: the cell's time, and the implementation's part of it;
        empty below :data:`TIME_FROM` (:func:`time_text`)."""
        return time_text(self.data)

    @property
    def ulp_text(self) -> str:
        """``0.273 / 0.25 / 0.5 / 1.09 / 1.41``: mean, p50, p90, p99, p99.9."""
        ulp = self.data.get("ulp") or {}
        return " / ".join(format_ulp(ulp.get(k), none="–") for k in ("mean", "p50", "p90", "p99", "p999"))

    def _failing(self) -> list[tuple[str, str, Example]]:
        return [(g.title, g.category, e) for g in failing_elements(self.data, limit=EXAMPLES) for e in g.examples]

    @property
    def example_groups(self) -> list[tuple[str, str, list[ExampleRow]]]:
        """The cell's example inputs as (css class, caption, rows), one table for all: the
        inputs that break the budget, a group per part of the budget they break, in its
        order (at most :data:`EXAMPLES` each, :func:`reports.findings.failing_elements`),
        the worst others (as many; 1 for a passing cell, whose results file has 10; none
        when the failing ones include the worst errors over budget), and the first input of
        each incidence category not shown yet (inherent overflow, which is correct, never)."""
        failing = self._failing()
        shown = {e.index for _t, _c, e in failing}
        groups: list[tuple[str, str, list[ExampleRow]]] = []
        for g in failing_elements(self.data, limit=EXAMPLES):
            rows = [ExampleRow.of(self.data, e.to_json(), g.category) for e in g.examples]
            groups.append(("failing", f"Breaks the budget: {g.title}", rows))
        if not any(cat == "ulp" for _t, cat, _e in failing) and self.max_ulp is not None and self.max_ulp > 0.5:
            keep = EXAMPLES if failing else 1
            worst = [e for e in (self.data.get("worst") or []) if e.get("index") not in shown][:keep]
            if worst:
                caption = "Other worst inputs (largest ULP error)" if failing else "Worst inputs (largest ULP error)"
                groups.append(("worst", caption, [ExampleRow.of(self.data, e) for e in worst]))
        # inherent overflow is correct (its count is in the badge and the incidence table),
        # and beside a failing cell's failing inputs more of the budget's categories are noise
        seen: set[str] = {"inherent_inf"} | {c for _t, c, _e in failing} | {e.category for _t, _c, e in failing}
        first = []
        for e in self.data.get("examples") or []:
            if e.get("index") in shown or e.get("category") in seen:
                continue
            seen.add(str(e.get("category")))
            first.append(ExampleRow.of(self.data, e))
        if first:
            groups.append(("first", "First input of each incidence category", first))
        return groups

    @property
    def all_correct(self) -> bool:
        """Every finite result correctly rounded: no worst inputs to show."""
        return bool(self.data.get("worst")) and not self._failing() and (self.max_ulp or 0.0) <= 0.5

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


def shown_params(oracle: str, params: Mapping[str, Any]) -> str:
    defaults: dict[str, Any] = {}
    try:
        defaults = {p.name: p.default for p in get_oracle(oracle).params}
    except Exception:  # noqa: BLE001 - unknown oracle: show every parameter
        pass
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if defaults.get(k) != v)


class CellAnchors:
    """Short, unique ids for cells: ``c-`` and 7 hex digits of a hash of the cell key, so
    a link to a cell names the same cell in every report of the suite. An id is used four
    times per cell (matrix, details, incidence row, finding); the readable slug it replaced
    was a tenth of a large report. On a clash (one in about 100 reports of 2,500 cells) the
    later cell takes more digits."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def __call__(self, key: object) -> str:
        digest = hashlib.sha1(repr(key).encode()).hexdigest()
        for width in range(7, len(digest) + 1):
            ident = f"c-{digest[:width]}"
            if ident not in self._taken:
                self._taken.add(ident)
                return ident
        raise AssertionError("two cells with one key")  # pragma: no cover - keys are unique


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


def cell_view(
    cell: dict[str, Any], run: RunInfo, run_index: int, kind: str, anchor: str, metric: str = "ulp",
    frames: svg.Frames | None = None,
) -> CellView:
    shown = shown_params(cell["oracle"], cell.get("params") or {})
    fw = str(cell.get("framework", ""))
    version = run.frameworks.get(fw)
    profile = cell.get("profile")
    elementwise = kind == "elementwise" or (kind == "" and profile is not None)
    view = CellView(
        data=cell,
        anchor=anchor,
        label=str(cell["impl"]) + (f" ({shown})" if shown else ""),
        framework_version="" if version is None else str(version),
        run_index=run_index,
        elementwise=elementwise,
        metric=metric,
        badges=_badges(cell),
    )
    ulp = cell.get("ulp") or {}
    # no plots for a passing cell, nor for one of a few elements: its facts (percentiles,
    # the correctly rounded share) and its inputs tell its story, and the report stays
    # small enough to open at once (benchmarks/bench_report_size.py); the histogram only
    # when some error is over 0.5 ulp (else it is one bar the facts already give)
    if cell["status"] != "fail" or int(cell.get("n") or 0) < PLOT_MIN:
        return view
    if elementwise:
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
    # the histogram where there is no error plot (row-wise cells): beside one, the ULP
    # percentiles of the facts already give its shape
    if not view.plot_svg and float(ulp.get("max") or 0.0) > 0.5:
        view.hist_svg = svg.histogram(ulp.get("histogram") or [], total=int(ulp.get("count") or 0), frames=frames)
    return view


#: a failing cell's reason that is only its max ulp over budget (harness.plan.cells.Budget)
_ONLY_MAX_ULP = re.compile(r"max ulp [0-9.e+-]+ > [0-9.e+-]+")

#: statuses without results: cells of one of them share a block by their reason
_NOT_JUDGED = ("skipped", "unsupported", "error")

#: what differs between two cells with the same results (one kernel behind two names):
#: everything else of their JSON must be equal for one to show the other's details
_OWN_FIELDS = frozenset({"id", "impl", "framework", "custom", "device", "seconds", "impl_seconds", "repro"})


def share_results(views: Sequence[CellView]) -> None:
    """Cells with the same results (the same errors, percentiles, incidence, profile, worst
    and example elements, budget and reason: keras and tensorflow often share a kernel, and
    a gradient can equal another) are one details block: the first cell's, which lists the
    later ones (``twins``) with their own id, time and repro line; each later one gets
    ``same_as`` and has its plots dropped before :func:`share_plots` counts them. So are the
    cells of one group (oracle and pass) skipped, unsupported or raising for the same reason.
    A third of the main job's cells are such twins, and a block of their own (summary,
    reason, facts, a link) only repeated what the matrix and the first cell show."""
    first: dict[str, CellView] = {}
    for view in views:
        d = view.data
        if d["status"] in _NOT_JUDGED:
            # a cell that did not run or raised: its block is its reason and its command
            key = json.dumps([d["status"], group_key(d), d.get("reason") or ""])
        elif d.get("worst") or d.get("examples") or d.get("ulp"):
            key = json.dumps({k: v for k, v in d.items() if k not in _OWN_FIELDS}, sort_keys=True, default=str)
        else:
            continue
        if key in first:
            view.same_as = first[key]
            first[key].twins.append(view)
            view.hist_svg = view.plot_svg = Markup("")
            view.bands = []
        else:
            first[key] = view


_SVG_OPEN = re.compile(r'^<svg class="([^"]*)" viewBox="([^"]*)" width="([^"]*)" role="img">')


def share_plots(views: Sequence[CellView]) -> None:
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


def pct(x: float) -> str:
    if x == 0:
        return "0%"
    if x >= 0.9995:
        return "100%"
    pct = 100.0 * x
    return f"{pct:.3g}%" if pct >= 0.001 else f"{pct:.1g}%"


def time_text(cell: Mapping[str, Any]) -> str:
    """``2.6 s (impl. 1.8 s)``: the cell's time and the implementation's part of it, for a
    cell that took :data:`TIME_FROM` or more; empty for a faster one."""
    total = float(cell.get("seconds") or 0.0)
    if total < TIME_FROM:
        return ""
    impl = float(cell.get("impl_seconds") or 0.0)
    return seconds(total) + (f" (impl. {seconds(impl)})" if impl else "")


def seconds(s: float) -> str:
    if s < 1:
        return f"{s * 1000:.0f} ms"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"
