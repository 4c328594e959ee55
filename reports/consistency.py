"""What every view shows of consistency cells (``"pass": "consistency"``): the words, the
table and the compact forms. Pure functions of results-file dicts, no printing: the
terminal, the findings and the HTML report render what these return.

A consistency cell evaluates no oracle; it checks that an implementation gives the same
answer for the same input wherever it sits (position, layout, repeat, device) and that its
answers keep the function's properties (monotone, symmetry, bounds, permutation). Its
verdict is a :class:`~harness.judgement.consistency.Consistency`: comparisons made, those
that differed, where, and the first few :class:`~harness.judgement.consistency.Mismatch`
examples.

* :func:`check_text`: a cell of a consistency table: ``ok``, ``12 differ``, ``error``,
  ``skip``, ``n/a`` (unsupported).
* :func:`consistency_table`: the table of one subject: a row per implementation, device,
  dtype and input set, a column per check present (in :data:`CHECKS` order).
* :func:`context_lines`: where a check compared, compact: the position check's hundred
  ``length N`` contexts as one line ``length 1-65: 12 of 2,145 differ (at length 17-65)``.
* :data:`CHECK_WORDS`: how a finding says what is wrong (``answers depend on position``).

Fields a results file lacks, or a malformed verdict, read as "no verdict" (None), never as
an error: a view must not fail on a file from another build.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.judgement.consistency import CHECKS, MEANING, Consistency, spans
from reports.labels import check, impl_label

__all__ = [
    "CHECKS",
    "CHECK_WORDS",
    "MEANING",
    "ConsistencyRow",
    "ContextLine",
    "check_text",
    "checks_present",
    "consistency_table",
    "context_lines",
    "mismatch_lines",
    "verdict_of",
]

#: how a finding words a failing check: ``torch.softplus float32: answers depend on position: …``
CHECK_WORDS: Mapping[str, str] = {
    "position": "answers depend on position",
    "layout": "answers depend on memory layout",
    "repeat": "answers change from call to call",
    "device": "CPU and CUDA answers differ",
    "monotone": "answers of a monotone function are not monotone",
    "symmetry": "answers break the function's symmetry",
    "bounds": "answers outside the function's range",
    "permutation": "permuting a row changes its answers",
}
if tuple(CHECK_WORDS) != CHECKS:  # pragma: no cover - a new check needs its words here
    raise ImportError("reports.consistency: CHECK_WORDS must name every check, in CHECKS order")

_DTYPE_ORDER = {"float16": 0, "bfloat16": 1, "float32": 2, "float64": 3}


def verdict_of(cell: Mapping[str, Any]) -> Consistency | None:
    """The cell's :class:`Consistency`, or None when it has none (it did not run, raised,
    or the file lacks a readable one)."""
    raw = cell.get("consistency")
    if not isinstance(raw, Mapping):
        return None
    try:
        return Consistency.from_json(raw)
    except (KeyError, TypeError, ValueError):  # a malformed stored verdict is left out, not fatal
        return None


def check_text(cell: Mapping[str, Any]) -> str:
    """A consistency cell as a table shows it: ``ok``, ``12 differ``, ``error``, ``skip``,
    ``n/a`` (unsupported); ``nothing compared`` for a pass with no comparison made (its
    notes say why), ``fail`` for a failing cell whose file has no count."""
    status = cell.get("status")
    if status == "skipped":
        return "skip"
    if status == "unsupported":
        return "n/a"
    if status == "error":
        return "error"
    v = verdict_of(cell)
    if status == "fail":
        return f"{v.differing:,} differ" if v is not None and v.differing else "fail"
    return "nothing compared" if v is not None and not v.compared else "ok"


def mismatch_lines(cell: Mapping[str, Any], limit: int = 3) -> list[str]:
    """The first ``limit`` stored mismatches of ``cell`` as sentences
    (:meth:`~harness.judgement.consistency.Mismatch.describe`)."""
    v = verdict_of(cell)
    return [] if v is None else [m.describe() for m in v.examples[:limit]]


def checks_present(cells: Iterable[Mapping[str, Any]]) -> list[str]:
    """The checks of ``cells``, in :data:`CHECKS` order (a check this build does not know,
    from a newer file, after them)."""
    found = {check(c) for c in cells} - {""}
    return [c for c in CHECKS if c in found] + sorted(found - set(CHECKS))


@dataclass(frozen=True, slots=True)
class ConsistencyRow:
    """One row of a consistency table: an implementation (with the parameters that differ
    from its oracle's defaults), device, dtype and input set, and its cell per check."""

    label: str
    device: str
    dtype: str
    inputs: str
    cells: Mapping[str, Mapping[str, Any]]

    def cell(self, name: str) -> Mapping[str, Any] | None:
        return self.cells.get(name)


def consistency_table(cells: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[ConsistencyRow]]:
    """The table of one subject's consistency cells: its columns (the checks present, in
    :data:`CHECKS` order) and its rows (by implementation, device, dtype, input set)."""
    rows: dict[tuple[str, str, str, str], dict[str, Mapping[str, Any]]] = {}
    for c in cells:
        key = (impl_label(c), str(c.get("device")), str(c.get("dtype")), str(c.get("inputs")))
        rows.setdefault(key, {})[check(c)] = c
    order = sorted(rows, key=lambda k: (k[0], k[1], _DTYPE_ORDER.get(k[2], 9), k[2], k[3]))
    return checks_present(cells), [ConsistencyRow(*key, rows[key]) for key in order]


@dataclass(frozen=True, slots=True)
class ContextLine:
    """Where a check compared: one context (``transposed``, ``batch``), or a family of
    numbered ones as a range (``length 1-65``); ``where`` is the range of those that
    differed in a family (``length 17-65``), empty otherwise."""

    name: str
    compared: int
    differing: int
    where: str = ""

    def text(self) -> str:
        """``length 1-65: 12 of 2,145 differ (at length 17-65)``, ``transposed: 0 of 4,096 differ``."""
        at = f" (at {self.where})" if self.where else ""
        return f"{self.name}: {self.differing:,} of {self.compared:,} differ{at}"


_NUMBERED = re.compile(r"(.*\S)\s+(\d+)")


def context_lines(v: Consistency) -> list[ContextLine]:
    """``v``'s contexts, compact: contexts named by a word and a number (``length 17``) are
    one line per word with the numbers as ranges, where the first of them was; the others
    a line each, in their order."""
    families: dict[str, list[tuple[int, int, int]]] = {}
    order: list[tuple[str, str, int, int]] = []  # ("family", word, 0, 0) or ("own", name, compared, differing)
    for name, compared, differing in v.contexts:
        m = _NUMBERED.fullmatch(name)
        if m is None:
            order.append(("own", name, compared, differing))
            continue
        if m[1] not in families:
            order.append(("family", m[1], 0, 0))
        families.setdefault(m[1], []).append((int(m[2]), compared, differing))
    out = []
    for what, name, compared, differing in order:
        if what == "own":
            out.append(ContextLine(name, compared, differing))
            continue
        members = families[name]
        if len(members) == 1:
            number, compared, differing = members[0]
            out.append(ContextLine(f"{name} {number}", compared, differing))
            continue
        bad = [n for n, _c, d in members if d]
        partial = bad and len(bad) < len(members)
        out.append(ContextLine(f"{name} {spans(n for n, _c, _d in members)}", sum(c for _n, c, _d in members),
                               sum(d for _n, _c, d in members), f"{name} {spans(bad)}" if partial else ""))
    return out
