"""What the HTML report shows of consistency cells: a group per subject (a table whose
columns are the checks present) and a block per failing or raising check, built by
:func:`consistency_groups`. The page, and where the section goes in it, is
:mod:`reports.html`'s; the words and compact forms are :mod:`reports.consistency`'s.

A table cell reads ``ok``, ``12 differ``, ``error``, ``skip`` or ``n/a`` and carries its
headline (and notes, or the reason it did not run) as a tooltip; a failing or raising one
links to its block: the headline, what the check compares, the contexts compared (the
position check's lengths as ranges), the first :data:`EXAMPLES` mismatches, the notes and
the command that reproduces it. Cells with the very same verdict (one kernel behind two
names) share one block that names them all, as accuracy cells do
(:func:`reports.html_cells.share_results`). A passing check has no block: its headline
is all there is to say, and some 300 of them must not cost the report its size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.judgement.consistency import Consistency, Mismatch, spans
from reports.consistency import (
    MEANING,
    ContextLine,
    check_text,
    consistency_table,
    context_lines,
    verdict_of,
)
from reports.html_cells import CellAnchors, VerdictView
from reports.labels import check, consistency_heading, format_ulp, group_key

__all__ = ["EXAMPLES", "ConsistencyCellView", "ConsistencyGroup", "ConsistencyRowView", "MismatchRow",
           "consistency_groups"]

#: mismatches shown per failing check (the terminal's --details shows 3): a third row on the
#: 126 failing checks of the main report took it over 3 MB
EXAMPLES = 2

#: statuses whose check has a block of its own (the others: the table cell says it all)
_BLOCK = ("fail", "error")

#: what differs between two cells with the same verdict (one kernel behind two names)
_OWN_FIELDS = frozenset({"id", "impl", "framework", "custom", "device", "seconds", "impl_seconds", "repro"})


@dataclass(slots=True)
class ConsistencyCellView:
    """Everything the template shows of one consistency cell."""

    data: dict[str, Any]
    anchor: str
    found: Consistency | None
    verdict: VerdictView | None = None
    #: an earlier cell with the very same verdict: this cell is a line in that one's block
    same_as: ConsistencyCellView | None = None
    twins: list[ConsistencyCellView] = field(default_factory=list)

    @property
    def check(self) -> str:
        return check(self.data)

    @property
    def meaning(self) -> str:
        return MEANING.get(self.check, "")

    @property
    def text(self) -> str:
        """``ok``, ``12 differ``, ``error``, ``skip``, ``n/a``."""
        return check_text(self.data)

    @property
    def linked(self) -> bool:
        """Whether the table cell links to a block (its own, or the one it shares)."""
        return self.data["status"] in _BLOCK

    @property
    def headline(self) -> str:
        """``12 of 4096 comparisons differ (…)``; the reason of a cell without a verdict."""
        if self.found is not None and self.data["status"] in ("pass", "fail"):
            return self.found.headline()
        return str(self.data.get("reason") or "")

    @property
    def title(self) -> str:
        """The table cell's tooltip: the headline, and for a failing check its notes (what
        could not be checked); none for a passing check, whose tooltips would repeat on a
        thousand cells of the main report (a sixth of what its consistency adds)."""
        if self.data["status"] == "pass":
            return ""  # "ok" says it; the comparisons' count is in the results file
        notes = list(self.found.notes) if self.found is not None and self.data["status"] == "fail" else []
        return "; ".join(t for t in [self.headline, *notes] if t)

    @property
    def facts(self) -> list[tuple[str, str]]:
        """(term, text): what the check compares, its tolerance, where it differed, the
        largest distance between two answers."""
        out = [("check", f"{self.check}: {self.meaning}" if self.meaning else self.check)]
        v = self.found
        if v is None:
            return out
        tol = "0 ulp (bitwise)" if v.tolerance == 0 else f"{v.tolerance:g} ulp"
        out.append(("tolerance", tol))
        if v.lengths:
            out.append(("lengths", spans(v.lengths)))
        if v.positions:
            out.append(("positions", spans(v.positions)))
        if v.max_ulp is not None:
            out.append(("max apart", "a NaN and a number" if math.isinf(v.max_ulp) else f"{format_ulp(v.max_ulp)} ulp"))
        return out

    @property
    def contexts(self) -> list[ContextLine]:
        return context_lines(self.found) if self.found is not None else []

    @property
    def examples(self) -> list[MismatchRow]:
        """The first :data:`EXAMPLES` mismatches, as the table shows them."""
        return [MismatchRow.of(m) for m in self.found.examples[:EXAMPLES]] if self.found is not None else []

    @property
    def notes(self) -> list[str]:
        return list(self.found.notes) if self.found is not None else []

    @property
    def twins_note(self) -> str:
        n = len(self.twins)
        more = f"and {n} more cell{'s' if n != 1 else ''}"
        return f"{more} that raised the same error" if self.data["status"] == "error" else f"{more} with this verdict"

    @property
    def twins_heading(self) -> str:
        return "The same error" if self.data["status"] == "error" else "The same verdict"


@dataclass(frozen=True, slots=True)
class MismatchRow:
    """One mismatch as a row: the input (bits over values), the answer it gave and where,
    the answer it was compared with, and how far apart they are."""

    bits: str
    values: str
    got: str
    got_value: str
    context: str
    expected: str
    expected_value: str
    apart: str

    @staticmethod
    def of(m: Mismatch) -> MismatchRow:
        apart = "–" if m.ulp is None else "NaN vs a number" if math.isinf(m.ulp) else format_ulp(m.ulp)
        return MismatchRow(", ".join(m.input), ", ".join(m.input_values), m.got, m.got_value, m.context, m.expected,
                           m.expected_value, apart)


@dataclass(frozen=True, slots=True)
class ConsistencyRowView:
    label: str
    device: str
    dtype: str
    inputs: str
    cells: list[ConsistencyCellView | None]


@dataclass(slots=True)
class ConsistencyGroup:
    """One subject's consistency table and the blocks of its failing checks."""

    name: str
    heading: str
    anchor: str
    checks: list[tuple[str, str]]  # (check, what it compares)
    rows: list[ConsistencyRowView]
    cells: list[ConsistencyCellView]

    @property
    def blocks(self) -> list[ConsistencyCellView]:
        """The cells with a block of their own, in table order."""
        return [c for c in self.cells if c.linked and c.same_as is None]

    @property
    def failing(self) -> int:
        return sum(1 for c in self.cells if c.data["status"] in _BLOCK)


def consistency_groups(
    cells: Sequence[tuple[Any, dict[str, Any]]], anchors: CellAnchors, verdicts: Mapping[Any, VerdictView],
    order: Sequence[tuple[str, str]], group_anchor: Any,
) -> list[ConsistencyGroup]:
    """The groups of consistency ``cells`` ((cell key, JSON) pairs), in ``order`` (group
    keys, :func:`reports.labels.group_order`); cell anchors from ``anchors``, the group's
    from ``group_anchor(subject)``."""
    by_group: dict[tuple[str, str], list[ConsistencyCellView]] = {}
    for key, data in cells:
        view = ConsistencyCellView(data, anchors(key), verdict_of(data), verdicts.get(key))
        by_group.setdefault(group_key(data), []).append(view)
    out: list[ConsistencyGroup] = []
    for gkey in [k for k in order if k in by_group]:
        views = by_group[gkey]
        by_id = {id(v.data): v for v in views}
        columns, rows = consistency_table([v.data for v in views])
        row_views = [ConsistencyRowView(r.label, r.device, r.dtype, r.inputs,
                                        [by_id[id(c)] if (c := r.cell(name)) is not None else None for name in columns])
                     for r in rows]
        ordered = [c for r in row_views for c in r.cells if c is not None]
        name = gkey[0]
        out.append(ConsistencyGroup(name, consistency_heading(name), group_anchor(name),
                                    [(n, MEANING.get(n, "")) for n in columns], row_views, ordered))
    _share([c for g in out for c in g.cells])
    return out


def _share(views: Sequence[ConsistencyCellView]) -> None:
    """Failing cells with the same verdict, and cells raising the same error in one group,
    share the first one's block (its ``twins``)."""
    first: dict[str, ConsistencyCellView] = {}
    for view in views:
        d = view.data
        if d["status"] == "error":
            key = json.dumps(["error", group_key(d), check(d), d.get("reason") or ""])
        elif d["status"] == "fail":
            key = json.dumps({k: v for k, v in d.items() if k not in _OWN_FIELDS}, sort_keys=True, default=str)
        else:
            continue
        if key in first:
            view.same_as = first[key]
            first[key].twins.append(view)
        else:
            first[key] = view
