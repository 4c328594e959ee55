"""Inline SVG plots for the HTML report, drawn in Python: no chart library, no script.

Two plots per cell: the ULP histogram and the error-versus-input plot (Herbie's "bits of
error" view: input along x, ULP error on a log scale along y, NaN/Inf and lost-to-zero
results in a band of their own above it). Each plot is a string of SVG markup (its height
follows from its ``viewBox``, as the CSS sets ``height: auto``); every piece
of text that could come from a user is escaped here, so the template may mark the result
safe. Same-coloured bars share one ``<path>``, and an error plot's buckets are drawn in
bucket units under one scaling transform (``h1`` rather than ``h2.39``), to keep a report
of thousands of cells small.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from markupsafe import Markup, escape

from harness.judgement.definitions import CATEGORIES
from harness.judgement.error_vs_input import max_ordinal, ordinal
from oracles.formats import get_format
from reports.labels import CATEGORY_LABELS, format_ulp, ulp_class

__all__ = [
    "BAND_ORDER",
    "Frames",
    "error_plot",
    "fmt_count",
    "histogram",
    "profile_bands",
]

_FILL = {"u0": "#1a9850", "u1": "#91cf60", "u2": "#e6c619", "u3": "#f46d43", "u4": "#c2182b"}

_CAT_FILL = {
    "unexpected_nan": "#7b3294",
    "missing_nan": "#c2a5cf",
    "unexpected_inf": "#b2182b",
    "inherent_inf": "#8c8c8c",
    "missing_inf": "#2166ac",
    "lost_to_zero": "#35978f",
}
#: the order of the rows in the NaN/Inf band, defects first
BAND_ORDER: tuple[str, ...] = (
    "unexpected_nan", "missing_nan", "unexpected_inf", "missing_inf", "lost_to_zero", "inherent_inf",
)
if set(BAND_ORDER) != set(CATEGORIES):  # pragma: no cover - a new category needs a band row
    raise ImportError("reports.svg: BAND_ORDER must name every category")


def fmt_count(value: int) -> str:
    return f"{value:,}"


def _short(v: float) -> str:
    """Axis tick text for a ULP value."""
    if v == 0:
        return "0"
    if v < 1:
        return f"{v:g}"
    for div, suffix in ((2.0**60, "E"), (2.0**50, "P"), (2.0**40, "T"), (2.0**30, "G"), (2.0**20, "M"), (2.0**10, "k")):
        if v >= div:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"


def _num(v: float) -> str:
    """A coordinate, short."""
    return f"{v:.1f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def _title(text: str) -> Markup:
    return Markup("<title>{}</title>").format(text)


_MONO = "ui-monospace, Menlo, Consolas, monospace"
#: how a frame's parts look, as presentation attributes: the page's CSS does not reach the
#: copies that ``<use>`` draws (they live in a shadow tree), so each frame carries its own
#: (the same as report.css gives the plot's own elements)
_FRAME_LOOK = {
    "grid": 'stroke="#e6e9ef"',
    "axis": 'stroke="#7b8494"',
    "ref": 'stroke="#1a9850" stroke-dasharray="4 3"',
    "budget": 'stroke="#c2182b" stroke-width="1.2" stroke-dasharray="6 3"',
    "tick": 'font-size="10" fill="#5d6677" text-anchor="middle"',
    "tick y": 'font-size="10" fill="#5d6677" text-anchor="end"',
    "axlabel": 'font-size="10.5" fill="#5d6677" text-anchor="middle"',
    "band-label": f'font-size="9" fill="#3b4350" text-anchor="end" font-family="{_MONO}"',
    "band-bg": 'fill="#f3f4f7"',
    "slot": 'fill="#f3f4f7"',
}


def _with_look(markup: str) -> str:
    return re.sub(r'class="([^"]*)"', lambda m: f'{m.group(0)} {_FRAME_LOOK[m.group(1)]}'
                  if m.group(1) in _FRAME_LOOK else m.group(0), markup)


class Frames:
    """The parts of plots that many plots share (grid, axes, ticks, labels), each drawn once
    in a hidden ``<svg>`` (:meth:`defs`) at the top of the page and shown in every plot with
    ``<use>``: a plain reference inside one HTML document, so it works with scripts off."""

    def __init__(self, prefix: str = "frame") -> None:
        self._prefix = prefix
        self._ids: dict[str, str] = {}

    def use(self, markup: str) -> str:
        """``<use>`` of ``markup`` (SVG elements), registered under a new id the first time."""
        if not markup:
            return ""
        ident = self._ids.get(markup)
        if ident is None:
            ident = self._ids[markup] = f"{self._prefix}-{len(self._ids)}"
        return f'<use href="#{ident}"/>'

    def __len__(self) -> int:
        return len(self._ids)

    def defs(self) -> Markup:
        """The hidden ``<svg>`` with every registered frame (empty markup when none is)."""
        if not self._ids:
            return Markup("")
        groups = "".join(f'<g id="{ident}">{_with_look(markup)}</g>' for markup, ident in self._ids.items())
        return Markup(
            '<svg class="plot frames" width="0" height="0" aria-hidden="true" focusable="false">'
            f"<defs>{groups}</defs></svg>"
        )


def _framed(frames: Frames | None, *pieces: list[str]) -> str:
    """The pieces of a frame, each drawn once per page with ``frames`` (pieces that vary
    independently, like the axes and the band rows, are shared more often apart)."""
    if frames is None:
        return "".join("".join(p) for p in pieces)
    return "".join(frames.use("".join(p)) for p in pieces)


# -- histogram --------------------------------------------------------------------------------


def histogram(
    hist: Sequence[Mapping[str, Any]], *, total: int, width: int = 380, height: int = 210, frames: Frames | None = None
) -> Markup:
    """Bars of element counts per ULP bucket (``<= 0.5``, ``<= 1``, ``<= 2`` ...), height on a
    log scale so that a tail of a few elements beside tens of thousands stays visible.

    Same-coloured bars share one ``<path>``; a few bars are labelled with their counts,
    many are listed in the tooltip of the whole plot. The axis, ticks and labels depend only on the buckets,
    so with ``frames`` they are drawn once per page and shown with ``<use>``."""
    if not hist:
        return Markup("")
    left, right, top, bottom = 8, 8, 16, 40
    pw, ph = width - left - right, height - top - bottom
    counts = [int(h["count"]) for h in hist]
    peak = max(max(counts), 1)
    scale = math.log10(1 + peak)
    slot = pw / len(hist)
    bar = max(min(slot * 0.8, 40.0), 1.0)
    label_every = max(1, math.ceil(len(hist) / max(1, pw // 34)))
    few = len(hist) <= 16

    # few buckets: every bar is labelled with its count; many: one tooltip lists them all
    listing = "" if few else "; ".join(
        f"≤ {_short(float(h['le']))}: {c:,}" for h, c in zip(hist, counts, strict=True) if c)
    frame = [f'<line class="axis" x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}"/>']
    parts: list[str] = [
        f'<svg class="plot hist" viewBox="0 0 {width} {height}" width="{width}" role="img">',
        str(_title(f"ULP error histogram{': ' + listing if listing else ''}")),
    ]
    paths: dict[str, list[str]] = {}
    values: list[str] = []
    ticks: list[str] = []
    for i, (h, count) in enumerate(zip(hist, counts, strict=True)):
        le = float(h["le"])
        x = left + i * slot + (slot - bar) / 2
        if i % label_every == 0:
            ticks.append(f'<text x="{_num(x + bar / 2)}" y="{top + ph + 13}">{escape(_short(le))}</text>')
        if not count:
            continue
        bh = max(ph * math.log10(1 + count) / scale, 1.0)
        y = top + ph - bh
        paths.setdefault(_FILL[ulp_class(le)], []).append(f"M{_num(x)} {top + ph}V{_num(y)}h{_num(bar)}V{top + ph}z")
        if few:
            # whole pixels: a label half a pixel off is not seen, its decimals in every cell are
            values.append(f'<text x="{x + bar / 2:.0f}" y="{y - 3:.0f}">{_compact(count)}</text>')
    frame.append(f'<g class="tick">{"".join(ticks)}</g>')
    frame.append(
        f'<text class="axlabel" x="{left + pw / 2:.0f}" y="{height - 6}">ULP error (bucket top); log count</text>'
    )
    parts.insert(2, _framed(frames, frame))
    parts += [f'<path fill="{fill}" d="{"".join(d)}"/>' for fill, d in paths.items()]
    if values:
        parts.append(f'<g class="val">{"".join(values)}</g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _compact(n: int) -> str:
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1e6:.1f}M"


# -- error versus input -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Band:
    """A run of neighbouring buckets with elements in one incidence category."""

    category: str
    count: int
    x_lo: float | None
    x_hi: float | None
    lo_bucket: int
    hi_bucket: int
    special: str = ""  # "-inf", "+inf" or "nan" for the buckets of non-finite inputs

    def text(self) -> str:
        lo, hi = self.x_lo, self.x_hi
        if self.special:
            where = {"-inf": "x = −∞", "+inf": "x = +∞", "nan": "x = NaN"}[self.special]
        elif lo == hi:
            where = f"x = {_repr(lo)}"
        else:
            where = f"{_repr(lo)} ≤ x ≤ {_repr(hi)}"
        return f"{where} ({self.count:,} input{'s' if self.count != 1 else ''})"


def _repr(v: float | None) -> str:
    if v is None:
        return "?"
    return repr(float(v)) if abs(v) < 1e16 or not math.isfinite(v) else f"{v:.6g}"


def profile_bands(profile: Mapping[str, Any], *, gap: int = 1) -> dict[str, list[Band]]:
    """Per category, the contiguous input ranges (buckets at most ``gap`` apart joined)
    where it happened, with exact end points (the smallest and largest input seen)."""
    bins = int(profile["bins"])
    out: dict[str, list[Band]] = {}
    for cat in BAND_ORDER:
        rows = profile.get("incidence", {}).get(cat) or []
        bands: list[Band] = []
        for k, count, lo, hi in rows:
            k = int(k)
            if bands and 0 <= k < bins and 0 <= bands[-1].hi_bucket < bins and k - bands[-1].hi_bucket <= gap + 1:
                b = bands[-1]
                bands[-1] = Band(cat, b.count + int(count), _min(b.x_lo, lo), _max(b.x_hi, hi), b.lo_bucket, k)
                continue
            special = "-inf" if k < 0 else "+inf" if k == bins else "nan" if k > bins else ""
            bands.append(Band(cat, int(count), lo, hi, k, k, special))
        if bands:
            out[cat] = bands
    return out


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


@dataclass(frozen=True, slots=True)
class _Point:
    """One thing to draw: a bucket (profile) or one stored example (fallback)."""

    slot: str  # "finite", "-inf", "+inf", "nan"
    u: float  # position in [0, 1] over the format's finite values (finite slot only)
    u_hi: float
    max_ulp: float | None
    n: int
    cats: dict[str, int]
    label: str


def _profile_points(profile: Mapping[str, Any]) -> list[_Point]:
    bins = int(profile["bins"])
    cats: dict[int, dict[str, int]] = {}
    for cat, rows in (profile.get("incidence") or {}).items():
        for r in rows:
            cats.setdefault(int(r[0]), {})[cat] = int(r[1])
    out: list[_Point] = []
    for k, _lo, _hi, n, mx, _over in profile["rows"]:
        k = int(k)
        slot = "-inf" if k < 0 else "+inf" if k == bins else "nan" if k > bins else "finite"
        # bars carry no tooltip of their own (the range list below the plot says where), so no label
        out.append(_Point(slot, k / bins, (k + 1) / bins, None if mx is None else float(mx), int(n), cats.get(k, {}), ""))
    return out


def _example_points(examples: Iterable[Mapping[str, Any]], fmt: str) -> list[_Point]:
    top = max_ordinal(fmt)
    out: list[_Point] = []
    for e in examples:
        values = e.get("input_values") or []
        if not values:
            continue
        try:
            x = float(values[0])
        except ValueError:
            continue
        slot = "nan" if math.isnan(x) else "+inf" if x == math.inf else "-inf" if x == -math.inf else "finite"
        u = (float(ordinal([x], fmt)[0]) + top) / (2 * top) if slot == "finite" else 0.0
        cat = str(e.get("category", "worst"))
        ulp = e.get("ulp")
        cats = {cat: 1} if cat in CATEGORY_LABELS else {}
        out.append(_Point(slot, u, u, None if ulp is None or cats else float(ulp), 1, cats, f"x = {values[0]}"))
    return out


@cache
def _decades(fmt: str) -> tuple[tuple[float, float, int], ...]:
    """(u, value, decade) of +-10**k for every k inside the format's range."""
    f = get_format(fmt)
    top = max_ordinal(fmt)
    kmin = math.ceil(math.log10(f.smallest_subnormal))
    kmax = math.floor(math.log10(f.largest))
    cand = [(s * 10.0**k, k) for k in range(kmin, kmax + 1) for s in (1.0, -1.0)]
    us = (ordinal([v for v, _ in cand], fmt) + top) / (2 * top)
    return tuple((float(u), v, k) for u, (v, k) in zip(us.tolist(), cand, strict=True))


def _x_ticks(fmt: str, u0: float, u1: float, pw: float) -> list[tuple[float, str]]:
    """Tick positions (as u) and labels: zero and powers of ten that fit, sparse enough."""
    top = max_ordinal(fmt)
    us = _decades(fmt)
    inside = [(u, v, k) for u, v, k in us if u0 <= u <= u1]
    min_gap = 34.0 / pw * (u1 - u0)
    ticks: list[tuple[float, str]] = []
    if u0 <= 0.5 <= u1:
        ticks.append((0.5, "0"))
    # the smallest decade step whose ticks fit; ticks crowding zero (the subnormals and
    # tiny values take little room on this axis) are dropped rather than forcing a larger step
    for step in (1, 2, 3, 4, 5, 10, 20, 25, 50, 100):
        chosen = sorted(((u, v) for u, v, k in inside if k % step == 0), key=lambda t: -abs(t[0] - 0.5))
        picked: list[tuple[float, str]] = list(ticks)
        clashes = 0
        for u, v in chosen:
            near = [t for t in picked if abs(t[0] - u) < min_gap]
            if not near:
                picked.append((u, _tick_text(v)))
            elif any(t[1] != "0" for t in near):
                clashes += 1
        if clashes == 0:
            ticks = picked
            break
    if len(ticks) < 3:  # a narrow range: label evenly spaced positions with their values
        ticks = []
        for i in range(5):
            u = u0 + (u1 - u0) * (i + 0.5) / 5
            ordv = u * 2 * top - top
            ticks.append((u, _tick_text(_value_at(ordv, fmt))))
    return sorted(ticks)


def _value_at(ordv: float, fmt: str) -> float:
    """Inverse of :func:`ordinal` (for tick labels of narrow ranges)."""
    f = get_format(fmt)
    step = 2.0 ** (f.precision - 1)
    a = abs(ordv)
    if a < step:
        v = a * f.smallest_subnormal
    else:
        e = math.floor(a / step) - 1 + f.emin
        v = math.ldexp(1.0 + (a / step - math.floor(a / step)), e)
    return math.copysign(v, ordv)


def _tick_text(v: float) -> str:
    """``0``, ``0.01``, ``1``, ``1000``, ``1e4``, ``-1e-5``; other values with 2-3 digits."""
    a = abs(v)
    if a == 0:
        return "0"
    k = math.floor(math.log10(a) + 1e-9)
    sign = "-" if v < 0 else ""
    if abs(a - 10.0**k) <= 1e-9 * a:
        return sign + (f"{10.0**k:g}" if -2 <= k <= 3 else f"1e{k}")
    return f"{v:.3g}" if 1e-3 <= a < 1e5 else f"{v:.2g}"


def _y_ticks(ymax: float, ph: float) -> list[float]:
    """ULP values to label on the log axis, at least 12 px apart; 0.5 and 1 (correct
    rounding, faithful) win over the others."""
    cand = [0.0, 0.5, 1.0, 2.0, 4.0, 16.0, 64.0] + [2.0**k for k in range(8, 1024, 2)]
    inside = [c for c in cand if math.log2(1 + c) <= ymax + 1e-9]
    big = [c for c in inside if c > 1]
    step = 1
    while len(big[::step]) > 6:
        step += 1
    order = [c for c in (0.5, 1.0) if c in inside] + big[::-1][::step] + [0.0]
    picked: list[float] = []
    for c in order:
        y = math.log2(1 + c) / ymax * ph
        if all(abs(y - math.log2(1 + p) / ymax * ph) >= 12 for p in picked):
            picked.append(c)
    return sorted(picked)


def _nice_top(y: float) -> float:
    """The top of the y axis (in log2(1 + ulp)): ``y`` rounded up to log2(3), 2, 3, 4, 6, 8,
    12, 16 ..., so that plots of similar error share one frame (:class:`Frames`)."""
    if y <= math.log2(3.0) + 1e-9:
        return math.log2(3.0)
    k = 1.0
    while True:
        for nice in (2 * k, 3 * k):
            if y <= nice + 1e-9:
                return nice
        k *= 2


def error_plot(
    fmt: str,
    *,
    profile: Mapping[str, Any] | None = None,
    examples: Sequence[Mapping[str, Any]] = (),
    budget: float | None = None,
    width: int = 680,
    height: int = 270,
    frames: Frames | None = None,
) -> Markup:
    """ULP error versus input for an elementwise cell. With a ``profile`` every bucket of
    inputs is drawn (its max error); without one only the stored ``examples`` (worst and
    per-category) are, as points. NaN/Inf/lost-to-zero results get a row each in a band
    above the plot. Returns empty markup when there is nothing to draw.

    The frame (grid, axes, ticks, reference lines, slots, band rows and labels) is the same
    for every plot of one format, input range and y range; with ``frames`` it is drawn once
    per page and shown with ``<use>``, which keeps a report of hundreds of plots small."""
    points = _profile_points(profile) if profile else _example_points(examples, fmt)
    if not points:
        return Markup("")
    finite = [p for p in points if p.slot == "finite"]
    cats_present = [c for c in BAND_ORDER if any(c in p.cats for p in points)]
    row_h, band_gap = 10, 8
    band_h = row_h * len(cats_present)
    left, right, bottom = 56, 12, 36
    top = 10 + band_h + (band_gap if cats_present else 0)
    specials = [s for s in ("-inf", "+inf", "nan") if any(p.slot == s for p in points)]
    special_w = 16
    pl = left + (special_w + 6 if "-inf" in specials else 0)
    n_right = sum(1 for s in ("+inf", "nan") if s in specials)
    pr = width - right - n_right * (special_w + 4) - (2 if n_right else 0)
    pw, ph = pr - pl, height - top - bottom

    # x range: the whole format when the data covers most of it, else the occupied part
    if profile and finite:
        u0, u1 = min(p.u for p in finite), max(p.u_hi for p in finite)
        if u1 - u0 > 0.5:
            u0, u1 = 0.0, 1.0
    else:
        u0, u1 = 0.0, 1.0
    span = max(u1 - u0, 1e-12)

    def xpos(u: float) -> float:
        return pl + (u - u0) / span * pw

    slot_x = {"-inf": left, "+inf": pr + 6, "nan": pr + 6 + (special_w + 4 if "+inf" in specials else 0)}
    ulps = [p.max_ulp for p in points if p.max_ulp is not None]
    ymax = _nice_top(max(math.log2(1 + max(ulps, default=0.0)), math.log2(1 + 2.0), math.log2(1 + (budget or 0.0))))
    ymax *= 1.04

    def ypos(ulp: float) -> float:
        return top + ph - math.log2(1 + ulp) / ymax * ph

    out: list[str] = [
        f'<svg class="plot err" viewBox="0 0 {width} {height}" width="{width}" role="img">',
        str(_title("ULP error versus input")),
    ]
    # the frame in pieces: y grid and ticks (by y range), x grid, ticks, axes and slots (by
    # format and x range), reference lines, a row per band; grid lines one path each
    frame_y: list[str] = []
    frame: list[str] = []
    lines: list[str] = []
    grid: list[str] = []
    ticks: list[str] = []
    for t in _y_ticks(ymax, ph):
        y = ypos(t)
        grid.append(f"M{pl} {_num(y)}H{_num(pr)}")
        ticks.append(f'<text x="{left - 4}" y="{_num(y + 3)}">{escape(_short(t))}</text>')
    if grid:
        frame_y.append(f'<path class="grid" d="{"".join(grid)}"/>')
    frame_y.append(f'<g class="tick y">{"".join(ticks)}</g>')
    grid, ticks = [], []
    for u, text in _x_ticks(fmt, u0, u1, pw):
        x = xpos(u)
        grid.append(f"M{_num(x)} {top}V{top + ph}")
        ticks.append(f'<text x="{_num(x)}" y="{top + ph + 13}">{escape(text)}</text>')
    if grid:
        frame.append(f'<path class="grid" d="{"".join(grid)}"/>')
    frame.append(f'<g class="tick">{"".join(ticks)}</g>')
    frame.append(f'<line class="axis" x1="{pl}" y1="{top + ph}" x2="{_num(pr)}" y2="{top + ph}"/>')
    frame.append(f'<line class="axis" x1="{pl}" y1="{top}" x2="{pl}" y2="{top + ph}"/>')
    half = ypos(0.5)
    lines.append(
        f'<line class="ref" x1="{pl}" y1="{_num(half)}" x2="{_num(pr)}" y2="{_num(half)}">'
        f"{_title('0.5 ulp: correctly rounded')}</line>"
    )
    if budget is not None:
        yb = ypos(budget)
        lines.append(
            f'<line class="budget" x1="{pl}" y1="{_num(yb)}" x2="{_num(pr)}" y2="{_num(yb)}">'
            f"{_title(f'budget: max {budget:g} ulp')}</line>"
        )
    for s in specials:
        x = slot_x[s]
        frame.append(f'<rect class="slot" x="{x}" y="{top}" width="{special_w}" height="{ph}"/>')
        label = {"-inf": "−∞", "+inf": "+∞", "nan": "NaN"}[s]
        frame.append(f'<text class="tick" x="{x + special_w / 2:.0f}" y="{top + ph + 13}">{label}</text>')

    def span_of(p: _Point) -> tuple[float, float]:
        if p.slot != "finite":
            return slot_x[p.slot] + 2.0, special_w - 4.0
        if profile:
            x0, x1 = xpos(p.u), xpos(p.u_hi)
            return x0, max(x1 - x0 - 0.3, 1.0)
        return xpos(p.u) - 1.5, 3.0

    # bars (profile): one step-shaped area per run of neighbouring buckets of one colour.
    # Finite buckets are drawn in bucket units, scaled to pixels by one transform, so a step
    # is ``h1`` rather than ``h2.4`` and heights are whole pixels: a 256-bucket plot takes
    # a kilobyte or two. The -inf/+inf/NaN slots stay in pixels. Dots (examples, no profile)
    # get a tooltip each.
    base = top + ph
    bins = int(profile["bins"]) if profile else 0
    k0 = round(u0 * bins)
    in_buckets: list[str] = []  # drawn inside the scaling group
    dots: list[str] = []
    if profile:
        bars: dict[str, list[tuple[int, int]]] = {}  # colour class -> (bucket, height in px)
        specials_d: dict[str, list[str]] = {}
        for p in points:
            if p.max_ulp is None:
                continue
            cls = ulp_class(p.max_ulp)
            y = min(round(ypos(p.max_ulp)), base - 1)
            if p.slot == "finite":
                bars.setdefault(cls, []).append((round(p.u * bins) - k0, y))
            else:
                x, w = span_of(p)
                specials_d.setdefault(cls, []).append(f"M{_num(x)} {base}V{y}h{_num(w)}V{base}z")
        for cls, cells in sorted(bars.items()):
            in_buckets.append(f'<path fill="{_FILL[cls]}" d="{_step_path(sorted(cells), base)}"/>')
        out += [f'<path fill="{_FILL[cls]}" d="{"".join(d)}"/>' for cls, d in sorted(specials_d.items())]
    else:
        for p in sorted(points, key=lambda p: (p.slot != "-inf", p.slot == "finite" and p.u, p.slot)):
            if p.max_ulp is None:
                continue
            x, w = span_of(p)
            y = ypos(p.max_ulp)
            cls = ulp_class(p.max_ulp)
            dots.append(
                f'<circle cx="{_num(x + 1.5)}" cy="{_num(y)}" r="3" fill="{_FILL[cls]}">'
                f"{_title(f'{p.label}: {format_ulp(p.max_ulp)} ulp')}</circle>"
            )
    out += dots

    # the NaN/Inf band: a row per category, shaded by the share of the bucket it hit
    # No tooltip per band: the report lists each category's input ranges right below the
    # plot ("Where it happens"), and a transparent rect with a title per range repeated that
    # list in every failing cell (a twentieth of the main job's report).
    band_rows: list[list[str]] = []
    for row, cat in enumerate(cats_present):
        y = 10 + row * row_h
        short, _long = CATEGORY_LABELS[cat]
        band_rows.append([f'<text class="band-label" x="{left - 4}" y="{y + row_h - 2}">{escape(short)}</text>'])
        band_rows[-1].append(f'<rect class="band-bg" x="{pl}" y="{y}" width="{_num(pr - pl)}" height="{row_h - 1}"/>')
        levels: dict[float, list[str]] = {}
        finite_levels: dict[float, list[int]] = {}
        for p in points:
            c = p.cats.get(cat, 0)
            if not c:
                continue
            level = 1.0 if not profile else round(min(1.0, 0.35 + 0.65 * c / max(p.n, 1)), 1)
            if profile and p.slot == "finite":
                finite_levels.setdefault(level, []).append(round(p.u * bins) - k0)
                continue
            x, w = span_of(p)
            if not profile:
                x, w = x - 1.0, 5.0
            levels.setdefault(level, []).append(f"M{_num(x)} {y}h{_num(w)}v{row_h - 1}h{_num(-w)}z")
        for level, ks in sorted(finite_levels.items()):
            opacity = "" if level == 1 else f' fill-opacity="{level:g}"'
            in_buckets.append(f'<path fill="{_CAT_FILL[cat]}"{opacity} d="{_run_rects(sorted(ks), y, row_h - 1)}"/>')
        for level, segs in sorted(levels.items()):
            opacity = "" if level == 1 else f' fill-opacity="{level:g}"'
            out.append(f'<path fill="{_CAT_FILL[cat]}"{opacity} d="{"".join(segs)}"/>')
    if in_buckets:
        scale = pw / (span * bins)  # pixels per bucket
        out.append(f'<g transform="matrix({scale:.6g} 0 0 1 {_num(pl)} 0)">{"".join(in_buckets)}</g>')
    axis_text = "input x (every representable value the same width)" if profile else "input x (stored examples only)"
    frame.append(f'<text class="axlabel" x="{pl + pw / 2:.0f}" y="{height - 5}">{escape(axis_text)}</text>')
    frame.append(
        f'<text class="axlabel" transform="translate(12 {top + ph / 2:.0f}) rotate(-90)">ULP error (log)</text>'
    )
    out.insert(2, _framed(frames, frame_y, frame, lines, *band_rows))
    out.append("</svg>")
    return Markup("".join(out))


def _step_path(cells: Sequence[tuple[int, int]], base: float) -> str:
    """One path of bars over buckets (bucket, top in px), sorted by bucket: a step-shaped
    area per run of neighbouring buckets, neighbours of one height sharing one ``h``. Each
    run after the first moves relative to the one before (``m3 0``: ``z`` leaves the pen at
    a run's start, on the base line) and drops back to the base relatively (``v5``): a few
    bytes less per bar than absolute coordinates."""
    d: list[str] = []
    i = 0
    start: int | None = None
    while i < len(cells):
        k, y = cells[i]
        seg = [f"M{k} {_num(base)}V{y}" if start is None else f"m{k - start} 0V{y}"]
        start = k
        width = 1
        while i + 1 < len(cells) and cells[i + 1][0] == cells[i][0] + 1:
            i += 1
            if cells[i][1] != y:
                seg.append(f"h{width}V{cells[i][1]}")
                y, width = cells[i][1], 1
            else:
                width += 1
        seg.append(f"h{width}v{_num(base - y)}z")
        d.append("".join(seg))
        i += 1
    return "".join(d)


def _run_rects(ks: Sequence[int], y: int, h: int) -> str:
    """Rectangles ``h`` px tall at ``y`` over the buckets ``ks`` (sorted), neighbours joined;
    each after the first moves relative to the one before (as in :func:`_step_path`)."""
    d: list[str] = []
    i = 0
    start = 0
    while i < len(ks):
        j = i
        while j + 1 < len(ks) and ks[j + 1] == ks[j] + 1:
            j += 1
        n = j - i + 1
        d.append(f"M{ks[i]} {y}h{n}v{h}h-{n}z" if i == 0 else f"m{ks[i] - start} 0h{n}v{h}h-{n}z")
        start = ks[i]
        i = j + 1
    return "".join(d)
