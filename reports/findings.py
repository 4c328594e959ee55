"""What a reader acts on, computed from result cells (results-file dicts) and shown by every view.

Pure functions, no printing (STYLE 8, 15): the terminal, the HTML report and the pytest
failure message render what these return.

* :func:`failing_elements`: the elements shown under a failing cell are the ones that
  break its budget, in the order of the budget's verdict: each incidence category over its
  allowance (in definition order), then the worst errors over ``max_ulp``. Correct
  elements (inherent overflow, correctly rounded, within budget) are never among them.
* :func:`findings`: the defects of the failing cells, ranked by severity (spurious NaN,
  spurious Inf, numbers where the result is undefined, inconsistent answers, results lost
  to zero, missing Inf, then errors over budget), one per implementation, dtype and device,
  each with the cell to look up.
* :func:`shortlist`: the findings a screen shows (the terminal's default list): lines that
  differ only in dtype merged into one, then at most :data:`SHORTLIST` lines, an equal share
  for each kind of defect, its most severe ones; and how many of each kind are left out
  (``--details`` and the HTML report list every finding).
* :func:`collapsed_devices`: device columns with no runnable cell (every ``cuda`` column
  on a machine without a GPU), each with one sentence saying why.

Gradient cells (``"pass": "grad"``) are findings of their own, never merged with the
forward cell of the same implementation: their lines start with the cell's subject
(``∂softplus keras.softplus float16: …``, :func:`reports.labels.subject`) and name an
example's cotangent (``e.g. x=-87.5, cotangent=1.0``). Forward lines read as they always did.

Consistency cells (``"pass": "consistency"``) are findings of their own too, one per check:
``torch.softplus float32: answers depend on position: 12 of 4096 comparisons differ
(lengths 17-65; positions 16-64; max 1 ulp); e.g. x=… gave … at length 17, position 16; …``,
with the command that reproduces them (:attr:`Finding.repro`). Where they rank is
:data:`_KINDS`'s comment.

Fields that older results files lack (``bits``, ``abs_error``, ``rel_error``,
``rejected``, the ``unsupported`` status, a budget) are read defensively: absent means
"not measured", never an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.judgement.definitions import CATEGORIES
from harness.judgement.summary import Example
from oracles.registry import get_oracle
from reports.consistency import CHECK_WORDS, verdict_of
from reports.labels import (
    check,
    format_metric,
    input_names,
    is_consistency,
    is_grad,
    metric_value,
    named_values,
    subject,
    wrt,
)
from reports.svg import profile_bands

__all__ = [
    "NOT_RUN",
    "SEVERITY",
    "SHORTLIST",
    "CollapsedDevice",
    "ElementGroup",
    "Finding",
    "collapsed_devices",
    "failing_elements",
    "findings",
    "left_out_text",
    "merge_dtypes",
    "not_run_lines",
    "runnable",
    "shortlist",
]

#: statuses of cells that did not run (a device column of only these collapses)
NOT_RUN = ("skipped", "unsupported")

#: the defect categories of a finding, most severe first, with how a finding words them
SEVERITY: tuple[tuple[str, str], ...] = (
    ("unexpected_nan", "spurious NaN"),
    ("unexpected_inf", "spurious Inf"),
    ("missing_nan", "number where the result is undefined (NaN)"),
    ("lost_to_zero", "result lost to 0"),
    ("missing_inf", "finite result where the correctly rounded result is Inf"),
)
#: every kind of finding, most severe first: the categories of :data:`SEVERITY`, with the
#: failing consistency checks between the defects the mathematics never produces (spurious
#: NaN and Inf, a number where the result is undefined) and the budgeted categories; errors
#: over budget last. Why there: one input with two answers (or an answer the function's
#: range excludes) is wrong whatever the budget, as a spurious NaN is, and code that relies
#: on bitwise reproducibility (a cache, a test, a sharded run) breaks on it; but the
#: answers are usually 1 ulp apart, not NaN for a number, so the defects come first. Results
#: lost to zero, a missing Inf and an error over budget are each a matter of degree that a
#: budget allows or not, and rank after it.
_KINDS: tuple[str, ...] = ("unexpected_nan", "unexpected_inf", "missing_nan", "consistency", "lost_to_zero",
                           "missing_inf", "budget")
_RANK = {kind: i for i, kind in enumerate(_KINDS)}
#: what the line saying what a short list leaves out calls each kind of finding
_KIND = {"unexpected_nan": "spurious NaN", "unexpected_inf": "spurious Inf", "missing_nan": "missing NaN",
         "consistency": "inconsistent", "lost_to_zero": "lost to 0", "missing_inf": "missing Inf",
         "budget": "over budget"}

#: lines of a short list of findings (:func:`shortlist`): the main job has some 270 findings,
#: and its terminal output was 600 lines, most of them findings; 40 fit a screen or two
SHORTLIST = 40
#: the rank of "over budget, no defect": after every category
_OVER_BUDGET = _RANK["budget"]

#: the smallest normal number of each format (a lost-to-zero result below it was subnormal)
_SMALLEST_NORMAL = {"float16": 2.0**-14, "bfloat16": 2.0**-126, "float32": 2.0**-126, "float64": 2.0**-1022}


# -- the elements under a failing cell -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ElementGroup:
    """Elements that break one part of a budget: ``title`` says which, ``category`` is an
    incidence category or ``"ulp"``."""

    title: str
    category: str
    examples: tuple[Example, ...]


def _allowed(limit: Any, n: int) -> float:
    """The rule of :meth:`harness.plan.cells.Budget.violations`: ``true`` is unlimited, a
    fraction below 1 is a share of the elements."""
    if limit is True or limit is None:
        return math.inf
    if limit is False:
        return 0.0
    value = float(limit)
    return value * n if 0 < value < 1 else value


def _examples(cell: Mapping[str, Any], key: str) -> list[Example]:
    out = []
    for raw in cell.get(key) or []:
        try:
            out.append(_labelled(Example.from_json(raw)))
        except (KeyError, TypeError, ValueError):  # a malformed stored example is left out, not fatal
            continue
    return out


def _is_zero(text: str) -> bool:
    try:
        return float(text) == 0.0
    except ValueError:
        return False


def _labelled(e: Example) -> Example:
    """A worst-error element whose result is 0 where the correctly rounded one is not is
    labelled ``lost_to_zero``: that is why its error is large."""
    if e.category == "worst" and _is_zero(e.got_value) and e.want_value and not _is_zero(e.want_value):
        return replace(e, category="lost_to_zero")
    return e


def failing_elements(cell: Mapping[str, Any], limit: int = 3) -> list[ElementGroup]:
    """The elements of ``cell`` that break its budget, at most ``limit`` per group, in the
    order of the budget's verdict: every incidence category over its allowance, then the
    worst errors over ``max_ulp`` (largest first). Empty for a cell within budget. A budget
    this view does not know (``max_bits``, ``atol``/``rtol``) adds the worst incorrectly
    rounded elements, largest error first, so that a failing cell never shows nothing."""
    if cell.get("status") != "fail":
        return []
    budget = cell.get("budget") or {}
    allow = budget.get("allow") or {}
    n = int(cell.get("n") or 0)
    incidence = cell.get("incidence") or {}
    examples = _examples(cell, "examples")
    worst = _examples(cell, "worst")
    groups: list[ElementGroup] = []
    shown: set[int] = set()
    for cat in CATEGORIES:
        count = int(incidence.get(cat) or 0)
        if count and count > _allowed(allow.get(cat), n):
            picked = [e for e in examples if e.category == cat][:limit]
            picked += [e for e in worst if e.category == cat and e.index not in {p.index for p in picked}]
            picked = picked[:limit]
            if picked:
                like = "this input" if count == 1 else f"{count} inputs like these"
                groups.append(ElementGroup(f"{cat}, {like}", cat, tuple(picked)))
                shown.update(e.index for e in picked)
    max_ulp = budget.get("max_ulp")
    ulp_max = (cell.get("ulp") or {}).get("max")
    over: list[Example] = []
    title = ""
    if max_ulp is not None and ulp_max is not None and float(ulp_max) > float(max_ulp):
        over = [e for e in [*worst, *examples] if e.ulp is not None and e.ulp > float(max_ulp)]
        title = f"worst errors over {float(max_ulp):g} ulp"
    elif not groups:
        over = [e for e in [*worst, *examples] if e.category != "inherent_inf" and e.got != e.want]
        title = "worst errors"
    seen: set[int] = set(shown)
    unique = []
    for e in sorted(over, key=Example.sort_key):
        if e.index not in seen:
            seen.add(e.index)
            unique.append(e)
    if unique:  # a result lost to 0 among them says so in its own label (Example.describe)
        groups.append(ElementGroup(title, "ulp", tuple(unique[:limit])))
    return groups


# -- findings ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One defect line: ``subject`` (implementation, dtype, device), what is wrong, and the
    cell to look it up by. ``rank`` orders findings (lower: more severe)."""

    rank: int
    category: str  # a SEVERITY category, "consistency" or "budget"
    subject: str
    text: str
    cell_id: str
    count: int
    error: float  # the cell's error in the chosen metric (for ordering)
    #: the subject in parts: what comes before the dtype (``∂softplus keras.softplus``), the
    #: dtype (or dtypes, once merged), the device where the subject names it
    who: str = ""
    dtype: str = ""
    device: str = ""
    #: the text without its max error (``4 spurious NaN (x = −∞)``): what dtypes must share to merge
    plain: str = ""
    #: how many findings this line stands for (more than one once dtypes are merged)
    covers: int = 1
    #: the command that reproduces the cell, where the line is to show it (a consistency
    #: finding: its example alone does not say which context to run); "" otherwise
    repro: str = ""

    def line(self) -> str:
        return f"{self.subject}: {self.text}  [{self.cell_id}]"


def _range_text(cell: Mapping[str, Any], cat: str) -> str:
    """Where ``cat`` happened: the input range from the cell's profile, else the first
    stored example's input (``x=…`` elementwise, ``row 3`` row-wise); empty when unknown."""
    profile = cell.get("profile")
    if profile:
        try:
            bands = profile_bands(profile).get(cat) or []
        except (KeyError, TypeError, ValueError):
            bands = []
        if bands:
            first = bands[0]
            more = f" and {len(bands) - 1} more range{'s' if len(bands) > 2 else ''}" if len(bands) > 1 else ""
            return f"{_where(first.x_lo, first.x_hi, first.special, _axis(cell))}{more}"
    for e in _examples(cell, "examples") + _examples(cell, "worst"):
        if e.category == cat:
            if e.row is not None:
                return f"e.g. row {e.row}"
            return f"e.g. {_inputs_text(cell, e)}" if e.input_values else ""
    return ""


def _inputs_text(cell: Mapping[str, Any], e: Example) -> str:
    """``x=-87.5`` (one input), ``1.0, 0.0`` (several), ``x=9.07, cotangent=1.0`` (a gradient)."""
    values = named_values(cell, e)
    return f"x={values[0]}" if len(values) == 1 else ", ".join(values)


def _num(v: float | None) -> str:
    return "?" if v is None else f"{float(v):.4g}"


def _axis(cell: Mapping[str, Any]) -> str:
    """What a profile's input axis is called: its first input, ``x``; a gradient names it as
    its examples do (``p`` of ``∂binary_cross_entropy/∂p``). Forward cells keep ``x``."""
    for e in _examples(cell, "examples") + _examples(cell, "worst"):
        names = input_names(cell, e)
        if names and names[0]:
            return names[0]
    return "x"


def _where(lo: float | None, hi: float | None, special: str, axis: str = "x") -> str:
    if special:
        return {"-inf": f"{axis} = −∞", "+inf": f"{axis} = +∞", "nan": f"{axis} = NaN"}.get(special, special)
    if lo == hi:
        return f"{axis} = {_num(lo)}"
    return f"{_num(lo)} ≤ {axis} ≤ {_num(hi)}"


def _subnormal(cell: Mapping[str, Any]) -> bool:
    """Whether every result lost to 0 was subnormal: the run's own diagnosis (a reason that
    says flush-to-zero), else every stored one."""
    if "flush-to-zero" in str(cell.get("reason") or ""):
        return True
    tiny = _SMALLEST_NORMAL.get(str(cell.get("out_dtype") or cell.get("dtype")))
    lost = [e for e in _examples(cell, "examples") + _examples(cell, "worst") if e.category == "lost_to_zero"]
    if tiny is None or not lost:
        return False
    try:
        return all(abs(float(e.want_value)) < tiny for e in lost)
    except ValueError:
        return False


def _describe(cell: Mapping[str, Any], cat: str, count: int, metric: str) -> tuple[str, str]:
    """(the text without the max error, the text)."""
    if cat == "lost_to_zero":
        what = f"subnormal result{'s' if count != 1 else ''} flushed to 0" if _subnormal(cell) \
            else f"result{'s' if count != 1 else ''} lost to 0"
    else:
        wording = dict(SEVERITY)[cat]
        what = wording if count == 1 else _plural(wording)
    where = _range_text(cell, cat)
    plain = f"{count:,} {what}" + (f" ({where})" if where else "")
    value = metric_value(cell, metric)
    if value is not None and value > 0:
        return plain, f"{plain}, max {format_metric(value, metric)}"
    return plain, plain


def _plural(wording: str) -> str:
    head, sep, tail = wording.partition(" where ")
    head = head if head.endswith(("NaN", "Inf")) else head + "s"
    return head + sep + tail


def _over_budget_text(cell: Mapping[str, Any], metric: str) -> str:
    budget = cell.get("budget") or {}
    value = metric_value(cell, metric)
    ulp = metric_value(cell, "ulp")
    limit = budget.get("max_ulp")
    parts = []
    if ulp is not None and limit is not None and ulp > float(limit):
        parts.append(f"max {format_metric(ulp, 'ulp')} > {float(limit):g}")
    elif cell.get("reason"):
        parts.append(str(cell["reason"]).split(";")[0])
    if metric != "ulp" and value is not None:
        parts.append(f"max {format_metric(value, metric)}")
    groups = failing_elements(cell, limit=1)
    if groups and groups[-1].examples:
        e = groups[-1].examples[0]
        if e.row is not None:
            parts.append(f"worst at row {e.row}")
        elif e.input_values:
            parts.append(f"worst at {_inputs_text(cell, e)}")
    return ", ".join(parts) or "over budget"


def _label(cell: Mapping[str, Any]) -> str:
    """The implementation with the parameters that differ from the oracle's defaults."""
    shown = _shown_params(str(cell.get("oracle")), cell.get("params") or {})
    return str(cell.get("impl")) + (f" ({shown})" if shown else "")


def _judged(cell: Mapping[str, Any], *, checks: bool = False) -> str:
    """What opens a gradient cell's line (``∂softplus ``): empty for a forward cell. With
    ``checks`` (a line that does not say what was judged otherwise: an error) a consistency
    cell's opens with its check (``consistency (position) ``)."""
    if checks and is_consistency(cell):
        return f"consistency ({check(cell)}) "
    return f"{subject(cell)} " if is_grad(cell) else ""


def _judgement(cell: Mapping[str, Any]) -> str:
    """Which pass of an implementation a cell judges: ``""`` forward, the differentiated
    argument of a gradient, ``≡position`` for a consistency check (as the cell key writes it)."""
    return f"≡{check(cell)}" if is_consistency(cell) else wrt(cell)


def _subject(cell: Mapping[str, Any], with_device: bool, label: str | None = None) -> str:
    label = _label(cell) if label is None else label
    return f"{_judged(cell)}{label} {cell.get('dtype')}" + (f" {cell.get('device')}" if with_device else "")


def _shown_params(oracle: str, params: Mapping[str, Any]) -> str:
    try:
        defaults = {p.name: p.default for p in get_oracle(oracle).params}
    except Exception:  # noqa: BLE001 - an oracle unknown here: show every parameter
        defaults = {}
    return ",".join(f"{k}={v}" for k, v in sorted(params.items()) if defaults.get(k) != v)


def _consistency_finding(cell: Mapping[str, Any], with_device: bool) -> Finding:
    """``torch.softplus float32: answers depend on position: 12 of 4096 comparisons differ
    (lengths 17-65; positions 16-64; max 1 ulp); e.g. <the first mismatch>``, with the repro.
    ``plain`` (what dtypes must share to merge) is the text without its example: two dtypes
    with the same headline are one line."""
    v = verdict_of(cell)
    name = check(cell)
    words = CHECK_WORDS.get(name, f"the {name} check fails")
    headline = v.headline() if v is not None else str(cell.get("reason") or "answers differ")
    plain = f"{words}: {headline}"
    text = plain + (f"; e.g. {v.examples[0].describe()}" if v is not None and v.examples else "")
    error = -1.0 if v is None or v.max_ulp is None else v.max_ulp
    return Finding(_RANK["consistency"], "consistency", _subject(cell, with_device), text, str(cell["id"]),
                   v.differing if v is not None else 0, error, _label(cell), str(cell.get("dtype")),
                   str(cell.get("device")) if with_device else "", plain, repro=str(cell.get("repro") or ""))


def _cell_finding(cell: Mapping[str, Any], metric: str, with_device: bool) -> Finding:
    if is_consistency(cell):
        return _consistency_finding(cell, with_device)
    incidence = cell.get("incidence") or {}
    value = metric_value(cell, metric)
    error = -1.0 if value is None or math.isnan(value) else value
    subject = _subject(cell, with_device)
    who, dtype = f"{_judged(cell)}{_label(cell)}", str(cell.get("dtype"))
    device = str(cell.get("device")) if with_device else ""
    for cat, _wording in SEVERITY:
        count = int(incidence.get(cat) or 0)
        if count:
            plain, text = _describe(cell, cat, count, metric)
            return Finding(_RANK[cat], cat, subject, text, str(cell["id"]), count, error, who, dtype, device, plain)
    text = _over_budget_text(cell, metric)
    return Finding(_OVER_BUDGET, "budget", subject, text, str(cell["id"]), 0, error, who, dtype, device, text)


def findings(cells: Iterable[Mapping[str, Any]], *, metric: str = "ulp") -> list[Finding]:
    """The defects of the failing cells, most severe first (the category, then the count,
    then the error). One finding per implementation (with its parameters), dtype, device and
    pass (forward, or the gradient with respect to one argument), from its most severe cell
    over the input sets and cotangents, so a defect that three input sets show is one line;
    implementations of one oracle with the same defect in the same words (keras and
    tensorflow share kernels) are one line naming them all, with the first one's cell.
    The device is named only when more than one device ran. A failing consistency check is
    a finding of its own (one per check), ranked as :data:`_KINDS` says."""
    cells = list(cells)
    devices = {c.get("device") for c in cells if c.get("status") not in NOT_RUN}
    best: dict[tuple[Any, ...], tuple[Finding, Mapping[str, Any]]] = {}
    for c in cells:
        if c.get("status") != "fail":
            continue
        f = _cell_finding(c, metric, len(devices) > 1)
        key = (c.get("oracle"), _judgement(c), c.get("impl"), tuple(sorted((c.get("params") or {}).items())),
               c.get("dtype"), c.get("device"))
        old = best.get(key)
        if old is None or _order(f) < _order(old[0]):
            best[key] = (f, c)
    merged: dict[tuple[Any, ...], list[tuple[Finding, Mapping[str, Any]]]] = {}
    for f, c in sorted(best.values(), key=lambda fc: (*_order(fc[0]), fc[0].subject)):
        merged.setdefault((c.get("oracle"), _judgement(c), c.get("dtype"), c.get("device"), f.category, f.text),
                          []).append((f, c))
    out = []
    for group in merged.values():
        first, cell = group[0]
        if len(group) > 1:
            names = ", ".join(_label(c) for _f, c in group)
            first = replace(first, subject=_subject(cell, len(devices) > 1, names), who=f"{_judged(cell)}{names}")
        out.append(first)
    return sorted(out, key=lambda f: (*_order(f), f.subject))


def _order(f: Finding) -> tuple[int, int, float]:
    return (f.rank, -f.count, -f.error)


_DTYPE_ORDER = {"float16": 0, "bfloat16": 1, "float32": 2, "float64": 3}


def merge_dtypes(found: Sequence[Finding]) -> list[Finding]:
    """``found`` with the findings that differ only in dtype (the same implementations, pass
    and device, the same defect in the same words apart from the max error) as one line
    naming the dtypes: ``jax.silu float16, bfloat16: 1 spurious NaN (x = −∞) in each, max
    2,040 ulp``, at the place of its most severe one, with that one's cell and the largest
    error. Errors over budget are never merged: their words name each dtype's worst input."""
    groups: dict[tuple[str, ...], list[Finding]] = {}
    for i, f in enumerate(found):
        key = (f.who, f.device, f.category, f.plain) if f.who and f.category != "budget" else (str(i),)
        groups.setdefault(key, []).append(f)
    out = []
    for group in groups.values():
        first = group[0]
        if len(group) > 1:
            worst = max(group, key=lambda f: f.error)
            dtypes = ", ".join(sorted((f.dtype for f in group), key=lambda d: (_DTYPE_ORDER.get(d, 9), d)))
            first = replace(first, subject=f"{first.who} {dtypes}" + (f" {first.device}" if first.device else ""),
                            text=f"{first.plain} in each{worst.text[len(worst.plain):]}", dtype=dtypes,
                            error=worst.error, covers=sum(f.covers for f in group))
        out.append(first)
    return out


def shortlist(found: Sequence[Finding], limit: int = SHORTLIST) -> tuple[list[Finding], dict[str, int]]:
    """What a screen shows of ``found`` (most severe first, as :func:`findings` orders them):
    the lines of :func:`merge_dtypes`, at most ``limit`` of them, every kind of defect with an
    equal share (one kind's unused share goes to the others), the most severe of each kind,
    in their order; and how many findings of each kind are left out (none: nothing is).

    A plain cut at the ``limit`` most severe lines would show the main job's spurious NaN and
    nothing else: it has more of them than a screen holds, and the results lost to zero and
    errors over budget would go unmentioned."""
    lines = merge_dtypes(found)
    by_kind: dict[str, list[int]] = {}
    for i, f in enumerate(lines):
        by_kind.setdefault(f.category, []).append(i)
    share = dict.fromkeys(by_kind, 0)
    left = limit
    while left > 0 and any(share[k] < len(v) for k, v in by_kind.items()):
        for k, v in by_kind.items():  # round by round, most severe kind first
            if left and share[k] < len(v):
                share[k] += 1
                left -= 1
    kept = {i for k, v in by_kind.items() for i in v[:share[k]]}
    out_of = {k: sum(lines[i].covers for i in v[share[k]:]) for k, v in by_kind.items()}
    return [f for i, f in enumerate(lines) if i in kept], {k: n for k, n in out_of.items() if n}


def left_out_text(left: Mapping[str, int], total: int) -> str:
    """The line that ends a short list: ``… 189 more defects, the less severe of each kind
    (22 spurious NaN, 36 over budget): --details lists all 265, as does the HTML report``."""
    kinds = ", ".join(f"{n} {_KIND.get(k, k)}" for k, n in left.items())
    more = sum(left.values())
    return (f"… {more} more defect{'s' if more != 1 else ''}, the less severe of each kind ({kinds}):"
            f" --details lists all {total}, as does the HTML report")


def not_run_lines(cells: Iterable[Mapping[str, Any]], *, merge_dtypes: bool = False) -> list[str]:
    """One line per implementation and dtype whose cells raised (``error``), and one per
    framework and dtype that does not support it (``unsupported``), with the message:
    what did not run, apart from the collapsed devices. Gradient cells' lines start with
    their subject (``∂softplus torch.softplus float16: error: …``), consistency cells' with
    their check (``consistency (position) torch.softplus float16: error: …``). With ``merge_dtypes``
    (a short list) the dtypes of one implementation with one message share a line, where
    the first of them was (``torch.bce float16, bfloat16: error: …``)."""
    # (status, who, reason) -> dtype -> (the first cell's id, its input sets or implementations)
    found: dict[tuple[str, str, str], dict[str, tuple[str, list[str]]]] = {}
    order: list[tuple[tuple[str, str, str], str]] = []
    for c in cells:
        status, dtype = str(c.get("status")), str(c.get("dtype"))
        if status == "error":
            key = (status, f"{_judged(c, checks=True)}{c.get('impl')}",
                   str(c.get("reason") or "").splitlines()[0] if c.get("reason") else "")
            name = str(c.get("inputs"))
        elif status == "unsupported":
            key, name = (status, f"{_judged(c, checks=True)}{c.get('framework')}",
                         str(c.get("reason") or "")), str(c.get("impl"))
        else:
            continue
        by_dtype = found.setdefault(key, {})
        if dtype not in by_dtype:
            by_dtype[dtype] = (str(c["id"]), [])
            order.append((key, dtype))
        names = by_dtype[dtype][1]
        if status == "error" or name not in names:
            names.append(name)
    entries: list[tuple[tuple[str, str, str], list[str]]] = []
    if merge_dtypes:
        entries = [(key, sorted(found[key], key=lambda d: (_DTYPE_ORDER.get(d, 9), d)))
                   for key in dict.fromkeys(key for key, _d in order)]
    else:
        entries = [(key, [dtype]) for key, dtype in order]
    lines, unsupported = [], []
    for (status, who, reason), dtypes in entries:
        cid = found[(status, who, reason)][dtypes[0]][0]
        names = [n for d in dtypes for n in found[(status, who, reason)][d][1]]
        if status == "error":
            sets = f" ({len(names)} input sets)" if len(names) > len(dtypes) else ""  # more than one a dtype
            lines.append(f"{who} {', '.join(dtypes)}: error{sets}: {reason}  [{cid}]")
        else:
            unsupported.append(f"{who} {', '.join(dtypes)}: unsupported ({', '.join(dict.fromkeys(names))}): {reason}")
    return lines + unsupported


# -- collapsed devices ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CollapsedDevice:
    """A device on which no cell ran: its cells are left out of the tables, and ``why``
    says in one sentence what the frameworks said. ``grad`` of the ``cells`` are gradient
    cells; the line says so when there are any (a forward-only run reads as before)."""

    device: str
    cells: int
    why: str
    grad: int = 0

    def line(self) -> str:
        both = " (forward and gradient cells)" if self.grad and self.grad < self.cells else \
            " (gradient cells)" if self.grad else ""
        return f"{self.device}: skipped{both} — {self.why}"


_NO_DEVICE = re.compile(r"^no [\w-]+ devices?(?: found)?:\s*", re.IGNORECASE)


def _short_reason(reason: str) -> tuple[str, bool]:
    """(the reason without its "no CUDA device:" preamble and its trailing parenthesis,
    whether it had the preamble)."""
    text = reason.strip().splitlines()[0] if reason.strip() else "no reason given"
    had = bool(_NO_DEVICE.match(text))
    text = _NO_DEVICE.sub("", text)
    text = re.sub(r"\s*\([^()]*\)$", "", text)
    return text, had


def runnable(cells: Iterable[Mapping[str, Any]]) -> set[str]:
    """The devices with at least one cell that ran (passed, failed or raised)."""
    return {str(c.get("device")) for c in cells if c.get("status") not in NOT_RUN}


def collapsed_devices(cells: Sequence[Mapping[str, Any]]) -> list[CollapsedDevice]:
    """The devices none of whose cells ran, in name order, each with why: the frameworks'
    reasons, grouped (``torch 2.13.0+cpu is a CPU-only build; no GPU for jax (…)``)."""
    ran = runnable(cells)
    by_device: dict[str, list[Mapping[str, Any]]] = {}
    for c in cells:
        if str(c.get("device")) not in ran:
            by_device.setdefault(str(c.get("device")), []).append(c)
    out = []
    for device in sorted(by_device):
        group = by_device[device]
        reasons: dict[str, list[str]] = {}
        no_device: list[str] = []
        for c in group:
            fw = str(c.get("framework") or c.get("impl", "").split(".")[0])
            text, had = _short_reason(str(c.get("reason") or ""))
            if had and not re.match(rf"{re.escape(fw)} \d", text):
                if fw not in no_device:
                    no_device.append(fw)
                continue
            fws = reasons.setdefault(text, [])
            if fw not in fws:
                fws.append(fw)
        parts = []
        for text, fws in reasons.items():
            named = any(text.startswith(f"{fw} ") for fw in fws)
            parts.append(text if named else f"{', '.join(sorted(fws))}: {text}")
        if no_device:
            parts.append(f"no {device.upper() if device.isalpha() and len(device) <= 4 else device} device for"
                         f" {', '.join(sorted(no_device))}")
        out.append(CollapsedDevice(device, len(group), "; ".join(parts), sum(1 for c in group if is_grad(c))))
    return out
