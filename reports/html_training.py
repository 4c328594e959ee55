"""What the HTML report shows of training scenarios: a block per scenario, built by
:func:`scenario_views`. The page, and where the section goes in it, is :mod:`reports.html`'s.

A scenario's block opens with its verdict in words: where it first went non-finite (step,
layer, forward or backward, produced there or carried in, the likely cause, whether the
float64 shadow was finite there, and the command that replays it up to that step); how far
a finite run drifted from its shadow; or the error it stopped with. A scenario that
``fixes`` another has the :func:`~harness.judgement.training.fix_verdict` line and its
author's claim. Then three views of the records:

- the loss of both runs against the step (:func:`loss_plot`, inline SVG): log y where every
  finite loss is positive (a 0 sits on the bottom edge), linear where one is negative; a
  step whose low-precision loss is NaN/Inf is a red mark on the top edge;
- a layer x step heatmap (:func:`heatmap`), an HTML table with a coloured cell per step and
  one row per layer and stage: bits of error p99 on the scale of the row's format (0 bits:
  agrees with the shadow; ``p``: nothing does), or, with the radio buttons beside it (CSS
  only), the headroom (log2 bits to overflow); a non-finite cell is red whichever is shown.
  Every cell's tooltip (a ``title``) has its numbers;
- at the verdict's step, a table of each layer's forward and backward tensors: finite,
  produced or propagated, with max |x| and headroom.

What keeps it small: a table cell is ``<td class="b3 h5" title="…">``, the colours coming
from ``reports/static/training.css``, which is inlined only when the page has scenarios; a
tooltip leaves out what its row and column say, and the zeros; runs of more than
:data:`MAX_COLUMNS` steps are bucketed (the worst value of each bucket). An SVG rect per
cell with a ``<title>`` child was a third larger for the same information.
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup, escape

from harness.judgement.training import (
    PART_REL,
    Entry,
    FixVerdict,
    ScenarioResult,
    StepRecord,
    TensorStats,
    fix_verdict,
)
from oracles.formats import get_format
from reports.training import departure_line, notes, short_number

__all__ = [
    "BITS_CLASSES",
    "HEADROOM_EDGES",
    "MAX_COLUMNS",
    "LayerRow",
    "ScenarioView",
    "headroom_legend",
    "heatmap",
    "loss_plot",
    "merged_scenarios",
    "repro",
    "scenario_findings",
    "scenario_views",
]

#: a heatmap has at most this many step columns; longer runs are bucketed
MAX_COLUMNS = 100
#: colour classes of bits of error p99, ``b0`` (agrees) to ``b7`` (no correct bit)
BITS_CLASSES = 8
#: upper edges (bits to overflow) of the headroom classes ``h0``..``h6``; ``h7`` is the rest
HEADROOM_EDGES: tuple[float, ...] = (1, 2, 4, 6, 8, 12, 16)
#: the heatmap's stages and their row labels (``update``: what the optimizer changed the
#: layer's weights by)
_STAGE_LABELS = {"forward": "forward", "grad_input": "∂input", "grad_weights": "∂weights", "update": "update"}
_STATUS_TEXT = {"finite": "finite", "nonfinite": "non-finite", "error": "error"}


# -- numbers -------------------------------------------------------------------------------------


def _room(headroom: float | None) -> str:
    """Bits to overflow: ``15``, ``0.5``; an all-zero tensor's (capped at 1024) is ``∞``."""
    if headroom is None:
        return "–"
    if headroom >= 1024:
        return "∞"
    return f"{headroom:.0f}" if abs(headroom) >= 10 else short_number(headroom, 2)


def _pct(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.2%}" if v < 0.1 else f"{v:.1%}"


# -- merging and formats ---------------------------------------------------------------------------


def merged_scenarios(groups: Iterable[Sequence[ScenarioResult]]) -> list[ScenarioResult]:
    """The scenarios of several results files in first-seen order; a later file's scenario
    replaces an earlier one of the same name (as a later file's cell replaces a cell)."""
    out: dict[str, ScenarioResult] = {}
    for group in groups:
        for s in group:
            out[s.name] = s
    return list(out.values())


@dataclass(frozen=True, slots=True)
class _Formats:
    """The significand bits of the low-precision run's activations, weights and loss."""

    compute: int
    variables: int
    loss: int

    def of(self, stage: str, is_loss: bool) -> int:
        if stage in ("grad_weights", "update"):
            return self.variables
        return self.loss if is_loss else self.compute


def _formats(s: ScenarioResult) -> _Formats:
    """From the policy's name (as :mod:`harness.frameworks.training` defines them: mixed
    policies compute in 16 bits, keep weights and the loss in float32); a policy this build
    does not know falls back to the largest bits of error the scenario recorded."""
    name = s.policy
    compute = "bfloat16" if "bfloat16" in name else "float16" if "float16" in name else name
    mixed = name.startswith("mixed_")
    try:
        pc = get_format(compute).precision
        pv = get_format("float32" if mixed else compute).precision
    except Exception:  # noqa: BLE001 - an unknown policy: the scale comes from the data
        seen = [e.stats.bits_p99 for r in s.records for e in r.entries if e.stats.bits_p99 is not None]
        p = max(1, math.ceil(max(seen, default=24.0)))
        return _Formats(p, p, p)
    return _Formats(pc, pv, pv if mixed else pc)


# -- the loss plot ---------------------------------------------------------------------------------


def _nice_linear(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(math.ceil((hi - first) / step) + 1)]


def _step_ticks(first: int, last: int) -> list[int]:
    span = max(last - first, 1)
    raw = span / 6
    mag = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = max(1, int(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)))
    ticks = [t for t in range((first // step) * step, last + 1, step) if t >= first]
    return ticks or [first]


def loss_plot(records: Sequence[StepRecord], *, width: int = 560, height: int = 200) -> Markup:
    """The two runs' losses against the step (module docstring); empty without records."""
    if not records:
        return Markup("")
    left, right, top, bottom = 52, 12, 16, 30
    pw, ph = width - left - right, height - top - bottom
    steps = [r.step for r in records]
    x0, x1 = steps[0], steps[-1]
    finite = [v for r in records for v in (r.loss, r.shadow_loss) if math.isfinite(v)]
    log = bool(finite) and min(finite) >= 0 and max(finite) > 0
    if log:
        positive = [v for v in finite if v > 0]
        lo, hi = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
        if hi - lo < 1:
            hi = lo + 1
        y_lo, y_hi = float(lo), float(hi)
        decades = hi - lo
        mults = (1,) if decades > 3 else (1, 2, 5) if decades > 1 else (1, 2, 3, 5)
        ticks = [m * 10.0**e for e in range(lo, hi + 1) for m in mults if lo <= math.log10(m * 10.0**e) <= hi]
    else:
        ticks = _nice_linear(min(finite, default=0.0), max(finite, default=1.0))
        y_lo, y_hi = ticks[0], ticks[-1]

    def fy(v: float) -> float:
        """The y of a finite loss; a 0 on a log scale sits on the bottom edge."""
        if log:
            t = 0.0 if v <= 0 else (math.log10(v) - y_lo) / (y_hi - y_lo)
        else:
            t = (v - y_lo) / (y_hi - y_lo)
        return top + ph * (1 - min(max(t, 0.0), 1.0))

    def fx(step: int) -> float:
        return left + (pw * (step - x0) / (x1 - x0) if x1 > x0 else pw / 2)

    out = [f'<svg class="plot loss" viewBox="0 0 {width} {height}" width="{width}" role="img">',
           str(Markup("<title>{}</title>").format(
               "loss against the step: low precision (solid) and float64 shadow (dashed)"))]
    grid, labels = [], []
    for t in ticks:
        y = fy(t)
        grid.append(f"M{left} {y:.1f}h{pw}")
        labels.append(f'<text x="{left - 4}" y="{y + 3.5:.1f}">{escape(short_number(t, 2))}</text>')
    xt = [f'<text x="{fx(s):.1f}" y="{top + ph + 13}">{s}</text>' for s in _step_ticks(x0, x1)]
    out += [f'<path class="grid" d="{"".join(grid)}"/>',
            f'<path class="axis" fill="none" d="M{left} {top}V{top + ph}h{pw}"/>',
            f'<g class="tick y">{"".join(labels)}</g><g class="tick">{"".join(xt)}</g>',
            f'<text class="axlabel" x="{left + pw / 2:.0f}" y="{height - 4}">step{" (loss on a log scale)" if log else ""}'
            "</text>"]
    for cls, key in (("shadow", "shadow_loss"), ("low", "loss")):
        segments: list[list[str]] = [[]]
        for r in records:
            v: float = getattr(r, key)
            if math.isfinite(v):
                segments[-1].append(f"{fx(r.step):.1f} {fy(v):.1f}")
            elif segments[-1]:
                segments.append([])
        d = "".join(f"M{seg[0]}" + (f"L{' '.join(seg[1:])}" if len(seg) > 1 else "h0.01")
                    for seg in segments if seg)
        if d:
            out.append(f'<path class="{cls}" d="{d}"/>')
    marks = []
    for r in records:
        if not math.isfinite(r.loss):
            marks.append(f'<circle class="nf" cx="{fx(r.step):.1f}" cy="{top}" r="3.5"><title>step {r.step}: '
                         f'loss {short_number(r.loss)} (shadow {short_number(r.shadow_loss)})</title></circle>')
        if not math.isfinite(r.shadow_loss):
            marks.append(f'<circle class="snf" cx="{fx(r.step):.1f}" cy="{top + 8}" r="3"><title>step {r.step}: '
                         f'shadow loss {short_number(r.shadow_loss)}</title></circle>')
    out += marks
    lx = left + pw - 200
    out.append(f'<g class="key"><path class="low" d="M{lx} 9h18"/><text x="{lx + 22}" y="12">low precision</text>'
               f'<path class="shadow" d="M{lx + 110} 9h18"/><text x="{lx + 132}" y="12">float64</text></g>')
    out.append("</svg>")
    return Markup("".join(out))


# -- the heatmap -------------------------------------------------------------------------------------


def _worst(stats: Sequence[TensorStats]) -> TensorStats:
    """The worst of several steps' stats of one tensor: the most non-finite values and
    underflows, the largest magnitude and error, the least headroom."""
    if len(stats) == 1:
        return stats[0]

    def mx(values: Iterable[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return max(present) if present else None

    heads = [s.headroom for s in stats if s.headroom is not None]
    return TensorStats(
        size=max(s.size for s in stats), nan=max(s.nan for s in stats), inf=max(s.inf for s in stats),
        max_abs=mx(s.max_abs for s in stats), headroom=min(heads) if heads else None,
        underflow=max(s.underflow for s in stats), rel_p50=mx(s.rel_p50 for s in stats),
        rel_p99=mx(s.rel_p99 for s in stats), rel_max=mx(s.rel_max for s in stats),
        bits_p50=mx(s.bits_p50 for s in stats), bits_p99=mx(s.bits_p99 for s in stats),
        shadow_max_abs=mx(s.shadow_max_abs for s in stats), shadow_nonfinite=max(s.shadow_nonfinite for s in stats),
    )


def _columns(records: Sequence[StepRecord], limit: int) -> list[list[StepRecord]]:
    """The records in at most ``limit`` consecutive buckets of (nearly) equal size."""
    n = len(records)
    k = max(1, math.ceil(n / limit))
    return [list(records[i:i + k]) for i in range(0, n, k)]


def _bits_class(bits: float | None, precision: int) -> str:
    if bits is None:
        return ""
    k = min(BITS_CLASSES - 1, max(0, math.ceil(bits / precision * (BITS_CLASSES - 1) - 1e-9)))
    return f"b{k}"


def _headroom_class(headroom: float | None) -> str:
    if headroom is None:
        return ""
    for i, edge in enumerate(HEADROOM_EDGES):
        if headroom < edge:
            return f"h{i}"
    return f"h{len(HEADROOM_EDGES)}"


def _tip(st: TensorStats, where: str) -> str:
    """A heatmap cell's tooltip: ``12: |x| 1.92 ↑15 bits 0/4.8`` (the step, max |x|, the
    headroom, bits of error p50/p99), and the underflows and NaN/Inf where there are some.
    Not the row, which its header names, nor the relative error: it is the bits in other
    units (``rel = 2**(bits - p)`` between the clamps), and a thousand cells of it cost a
    50-step scenario a third of its size; the table at the verdict's step has it."""
    parts = [f"{where}:"]
    if st.max_abs is not None:
        parts.append(f"|x| {short_number(st.max_abs)} ↑{_room(st.headroom)}")
    if st.bits_p99 is not None:
        parts.append(f"bits {short_number(st.bits_p50, 2)}/{short_number(st.bits_p99, 2)}")
    lines = [" ".join(parts)]
    if st.nonfinite:
        what = " and ".join(f"{n} {w}" for n, w in ((st.nan, "NaN"), (st.inf, "Inf")) if n)
        lines.append(f"{what} of {st.size}")
    if st.underflow:
        lines.append(f"{st.underflow} underflowed to 0")
    if st.shadow_nonfinite:
        lines.append(f"shadow: {st.shadow_nonfinite} non-finite")
    return "\n".join(lines)


def _long_tip(st: TensorStats, what: str) -> str:
    """A tensor's numbers in words (the table at the verdict's step: a few dozen of them)."""
    lines = [what]
    if st.nonfinite:
        lines.append(" and ".join(f"{n} {w}" for n, w in ((st.nan, "NaN"), (st.inf, "Inf")) if n) + f" of {st.size}")
    lines.append(f"max |x| {short_number(st.max_abs)}, headroom {_room(st.headroom)} bits")
    if st.underflow:
        lines.append(f"{st.underflow} underflowed to 0")
    if st.bits_p99 is not None:
        lines.append(f"bits of error p50/p99 {short_number(st.bits_p50)}/{short_number(st.bits_p99)}, "
                     f"rel p50/p99 {short_number(st.rel_p50)}/{short_number(st.rel_p99)}")
    if st.shadow_max_abs is not None or st.shadow_nonfinite:
        lines.append(f"shadow: max |x| {short_number(st.shadow_max_abs)}"
                     + (f", {st.shadow_nonfinite} non-finite" if st.shadow_nonfinite else ""))
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class _Row:
    layer: int
    name: str
    kind: str
    stage: str
    precision: int


def _rows(s: ScenarioResult, fmts: _Formats) -> list[_Row]:
    """The heatmap's rows, layer by layer (forward, ∂input, ∂weights), leaving out the
    pairs no step recorded."""
    seen = {(e.layer, e.stage) for r in s.records for e in r.entries if e.stage in _STAGE_LABELS}
    count = max([len(s.layers)] + [layer + 1 for layer, _st in seen])
    rows = []
    for i in range(count):
        name, kind = s.layers[i] if i < len(s.layers) else (str(i), "")
        is_loss = i == len(s.layers) - 1 and name == "loss"
        rows += [_Row(i, name, kind, stage, fmts.of(stage, is_loss)) for stage in _STAGE_LABELS if (i, stage) in seen]
    return rows


def heatmap(s: ScenarioResult, *, limit: int = MAX_COLUMNS) -> tuple[Markup, int, int]:
    """The layer x step table (module docstring) and its numbers of columns and rows;
    empty markup without records."""
    if not s.records:
        return Markup(""), 0, 0
    fmts = _formats(s)
    rows = _rows(s, fmts)
    buckets = _columns(s.records, limit)
    by_key = [{(e.layer, e.stage): e for r in b for e in r.entries} for b in buckets]  # the step's own, for one-step buckets
    first = s.first
    every = 5 if len(buckets) <= 50 else 10
    head = ['<thead><tr><th colspan="2" class="corner">step</th>']
    for i in range(0, len(buckets), every):
        span = min(every, len(buckets) - i)
        head.append(f'<th colspan="{span}">{buckets[i][0].step}</th>')
    head.append("</tr></thead>")
    body = ["<tbody>"]
    per_layer: dict[int, int] = {}
    for row in rows:
        per_layer[row.layer] = per_layer.get(row.layer, 0) + 1
    for row in rows:
        body.append("<tr>")
        if per_layer.get(row.layer):
            label = f"{row.name} ({row.kind})" if row.kind and row.kind != row.name else row.name
            body.append(str(Markup('<th rowspan="{}" class="ly">{}</th>').format(per_layer.pop(row.layer), label)))
        body.append(f'<th class="st">{_STAGE_LABELS[row.stage]}</th>')
        for b, bucket in enumerate(buckets):
            found: list[Entry] = []
            if len(bucket) == 1:
                e = by_key[b].get((row.layer, row.stage))
                found = [e] if e is not None else []
            else:
                found = [e for r in bucket for e in r.entries if e.layer == row.layer and e.stage == row.stage]
            if not found:
                body.append("<td></td>")
                continue
            st = _worst([e.stats for e in found])
            steps = str(bucket[0].step) if len(bucket) == 1 else f"{bucket[0].step}–{bucket[-1].step}"
            if any(r.skipped for r in bucket):
                steps += " (skipped)"
            if st.nonfinite:
                cls = "nf"
            else:
                cls = " ".join(c for c in (_bits_class(st.bits_p99, row.precision), _headroom_class(st.headroom)) if c)
            if st.underflow:
                cls += " uf"
            if first is not None and first.layer == row.layer and first.stage == row.stage and \
                    bucket[0].step <= first.step <= bucket[-1].step:
                cls += " first"
            body.append(str(Markup('<td class="{}" title="{}"></td>').format(cls.strip(), _tip(st, steps))))
        body.append("</tr>")
    body.append("</tbody>")
    return Markup(f'<table class="hm">{"".join(head)}{"".join(body)}</table>'), len(buckets), len(rows)


# -- the table at the verdict's step -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StageCell:
    """One tensor of one layer at the verdict's step."""

    status: str  # finite | produced | propagated | "" (not recorded)
    max_abs: str
    headroom: str
    title: str


@dataclass(frozen=True, slots=True)
class LayerRow:
    name: str
    kind: str
    cells: tuple[StageCell, ...]  # forward, grad_input, grad_weights, update


def _stage_cell(e: Entry | None) -> StageCell:
    if e is None:
        return StageCell("", "", "", "")
    st = e.stats
    if not st.nonfinite:
        status = "finite"
    else:
        status = "produced" if e.produced else "propagated"
    title = _long_tip(st, e.cause or status)
    return StageCell(status, short_number(st.max_abs), _room(st.headroom), title)


def _layer_rows(s: ScenarioResult, step: int) -> list[LayerRow]:
    rec = next((r for r in s.records if r.step == step), None)
    if rec is None:
        return []
    entries = {(e.layer, e.stage): e for e in rec.entries}
    count = max([len(s.layers)] + [e.layer + 1 for e in rec.entries])
    out = []
    for i in range(count):
        name, kind = s.layers[i] if i < len(s.layers) else (str(i), "")
        out.append(LayerRow(name, kind, tuple(_stage_cell(entries.get((i, st))) for st in _STAGE_LABELS)))
    return out


# -- the scenario's view -----------------------------------------------------------------------------


def _anchor(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:60]
    return f"train-{slug}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def _suite_path(suite: str) -> str:
    """The suite file relative to the working directory where it is under it."""
    if not suite:
        return "SUITE.toml"
    try:
        return str(Path(suite).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return suite


def repro(s: ScenarioResult, step: int | None) -> str:
    args = ["fpharness", "train", _suite_path(s.suite), "--scenario", s.name]
    if step is not None:
        args += ["--step", str(step)]
    return " ".join(shlex.quote(a) for a in args)


@dataclass(slots=True)
class ScenarioView:
    """Everything the template shows of one scenario."""

    result: ScenarioResult
    anchor: str
    status: str  # finite | nonfinite | error
    status_text: str
    #: the verdict in one sentence, and the lines under it
    headline: str
    lines: list[str]
    facts: list[tuple[str, str]]
    repro: str
    fix: FixVerdict | None = None
    fix_anchor: str = ""
    fixed_by: list[tuple[str, str]] = field(default_factory=list)  # (name, anchor)
    loss_svg: Markup = field(default_factory=Markup)
    heatmap: Markup = field(default_factory=Markup)
    columns: int = 0
    rows: int = 0
    bucketed: bool = False
    layer_rows: list[LayerRow] = field(default_factory=list)
    precisions: str = ""

    @property
    def name(self) -> str:
        return self.result.name

    @property
    def nonfinite_losses(self) -> int:
        return sum(1 for r in self.result.records if not math.isfinite(r.loss))

    @property
    def short(self) -> str:
        """The verdict in a few words, for the section's summary table."""
        s = self.result
        if s.status == "error":
            return s.error
        if s.first is not None:
            f = s.first
            return f"step {f.step}, {f.name} {f.direction}, {'produced' if f.produced else 'propagated'}"
        return f"final loss within {_pct(s.drift)} of float64" if s.drift is not None else "finite"


def _headline(s: ScenarioResult) -> tuple[str, list[str]]:
    ran = len(s.records)
    if s.status == "error":
        # the runner's errors say where already ("at step 4: …", "while building: …")
        if s.error.startswith(("at step", "while")):
            return f"error {s.error}", ([s.stopped] if s.stopped else [])
        at = f" at step {s.error_step}" if s.error_step is not None else ""
        return f"error{at}: {s.error}", ([s.stopped] if s.stopped else [])
    if s.first is not None:
        f = s.first
        kind = f" ({f.kind})" if f.kind and f.kind != f.name else ""
        how = "produced" if f.produced else "propagated"
        cause = f": {f.cause}" if f.cause else ""
        head = f"first non-finite at step {f.step}, layer {f.name}{kind}, {f.direction} ({f.tensor}), {how}{cause}"
        counts = " and ".join(f"{n} {w}" for n, w in ((f.nan, "NaN"), (f.inf, "Inf")) if n)
        lines = []
        if counts:
            lines.append(f"{counts} of {f.size} values")
        lines.append("the float64 shadow was finite there" if f.shadow_finite
                     else "the float64 shadow was non-finite there too: the computation fails in float64 as well")
        if not f.produced:
            lines.append("propagated: what this layer computed from was already non-finite")
        found = s.departure()
        if found is not None and found[0] < f.step:
            lines.append(departure_line(found))
        return head, lines + notes(s)
    drift = s.drift
    parted = s.parted_at
    head = f"finite for {ran} step{'s' if ran != 1 else ''}"
    if drift is not None:
        head += f"; final loss {_pct(drift)} from the float64 shadow's"
    lines = [f"the losses parted (more than {PART_REL:.0%} apart) at step {parted}" if parted is not None
             else f"the losses stayed within {PART_REL:.0%} of each other"]
    bits = [(label, s.max_bits(stage)) for stage, label in _STAGE_LABELS.items()]
    shown = [f"{label} {short_number(b, 3)}" for label, b in bits if b is not None]
    if shown:
        lines.append("max bits of error p99: " + ", ".join(shown))
    found = s.departure()
    if found is not None:
        lines.append(departure_line(found))
    return head, lines + notes(s)


def _facts(s: ScenarioResult) -> list[tuple[str, str]]:
    ran = len(s.records)
    fw = s.framework + (f" {s.version}" if s.version else "")
    if s.backend and s.backend != s.framework and s.backend not in s.version:
        fw += f" ({s.backend})"
    out = [("policy", s.policy), ("framework", fw), ("optimizer", s.optimizer), ("loss", s.loss),
           ("steps", f"{ran} of {s.steps}" if ran != s.steps else str(ran)),
           ("batch", f"{s.batch_size} rows, seed {s.seed}")]
    if s.skipped_steps:
        out.append(("skipped steps", f"{s.skipped_steps} (the loss scaler skipped them)"))
    scales = [r.loss_scale for r in s.records if r.loss_scale is not None]
    if scales:
        lo, hi = min(scales), max(scales)
        out.append(("loss scale", short_number(lo) if lo == hi else f"{short_number(lo)} … {short_number(hi)}"))
    if s.seconds:
        out.append(("time", f"{s.seconds:.1f} s"))
    return out


def _precisions(s: ScenarioResult) -> str:
    """What ``p`` is in the heatmap's rows: ``p = 11`` or ``p = 11; ∂weights 24; loss 24``."""
    f = _formats(s)
    parts = [f"p = {f.compute}"]
    if f.variables != f.compute:
        parts.append(f"∂weights {f.variables}")
    if f.loss != f.compute:
        parts.append(f"loss {f.loss}")
    return "; ".join(parts)


def headroom_legend() -> list[tuple[str, str]]:
    """(class, text) of the headroom colours, least room first."""
    edges = [f"{e:g}" for e in HEADROOM_EDGES]
    return [("h0", f"<{edges[0]}")] + [(f"h{i}", f"<{e}") for i, e in enumerate(edges[1:], 1)] + \
        [(f"h{len(edges)}", f"≥{edges[-1]}")]


def scenario_views(scenarios: Sequence[ScenarioResult], *, limit: int = MAX_COLUMNS) -> list[ScenarioView]:
    """A view per scenario, in order; a fix is judged against its base where the base is
    among ``scenarios``."""
    by_name = {s.name: s for s in scenarios}
    views = []
    for s in scenarios:
        head, lines = _headline(s)
        step = s.first.step if s.first is not None else s.error_step if s.status == "error" else None
        hm, cols, rows = heatmap(s, limit=limit)
        view = ScenarioView(
            result=s, anchor=_anchor(s.name), status=s.status, status_text=_STATUS_TEXT.get(s.status, s.status),
            headline=head, lines=lines, facts=_facts(s), repro=repro(s, step), loss_svg=loss_plot(s.records),
            heatmap=hm, columns=cols, rows=rows, bucketed=cols < len(s.records),
            layer_rows=_layer_rows(s, s.first.step) if s.first is not None else [], precisions=_precisions(s),
        )
        if s.fixes and s.fixes in by_name:
            view.fix = fix_verdict(s, by_name[s.fixes])
            view.fix_anchor = _anchor(s.fixes)
        views.append(view)
    anchors = {v.name: v for v in views}
    for v in views:
        if v.result.fixes in anchors:
            anchors[v.result.fixes].fixed_by.append((v.name, v.anchor))
    return views


def scenario_findings(views: Sequence[ScenarioView]) -> list[ScenarioView]:
    """The scenarios that went non-finite or raised: a line each in the page's findings."""
    return [v for v in views if v.status != "finite"]
