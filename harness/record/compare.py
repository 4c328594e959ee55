"""Comparing a run with a baseline: a pure function that returns typed verdicts.

:func:`compare` matches cells by :attr:`CellSpec.key` and gives each pair one
:class:`Kind`. The rules, in the order they are applied:

1. Only in the current run: ``new_cell``. Only in the baseline: ``missing_cell``.
2. ``error`` now and not before (also when it was skipped before): ``new_failure``.
3. Not run on exactly one side, ``skipped`` or ``unsupported`` (a format the framework
   lacks): ``incomparable`` (coverage changed, e.g. a framework or a GPU went missing in
   CI); the same of the two on both sides: ``unchanged``.
   ``error`` before and ``pass`` now: ``fixed``; ``error`` before and ``fail`` now:
   ``improved`` (it runs again; there are no old numbers to compare); ``error`` on both
   sides: ``unchanged``.
4. ``pass`` before and ``fail`` now: ``new_failure``; ``fail`` before and ``pass`` now:
   ``fixed``. A status change is meaningful even when the numbers are not comparable,
   so it is decided before rule 5. The metric deltas are still listed.
5. The numbers are comparable only when both cells carry an exact summary, judge the same
   number of elements ``n`` and have the same ``out_dtype``. Otherwise ``incomparable``:
   a different output format means the ULPs are in different units, a different ``n``
   means the input generator (or an ``npy:`` file) produced a different set. (Two input
   files of the same size with different contents are not detected: results carry no
   input digest.)
6. Otherwise the metrics decide. *Worse*, any of: max ULP grew by more than the
   tolerance of the output format (:attr:`Tolerance.max_ulp`, in ULPs of ``out_dtype``);
   the correctly rounded fraction dropped by more than :attr:`Tolerance.correctly_rounded`;
   the count of a watched incidence category (:attr:`Tolerance.incidence`, by default the
   defects unexpected_nan, missing_nan, unexpected_inf) went up **at all**. Counts are
   exact over identical inputs, so there is no noise to tolerate: 3 -> 4 unexpected
   infinities is as real as 0 -> 1. *Better* is the mirror image. Any worse metric makes
   the cell ``regressed`` (even when another improved); else any better one makes it
   ``improved``; else ``unchanged``. Unwatched categories (inherent_inf, missing_inf,
   lost_to_zero) are listed as information: their accuracy cost already shows in the max
   ULP and the correctly rounded fraction.

Consistency cells (``"pass": "consistency"``; their key ends with ``≡<check>``, so they
meet only the same check of the same cell) follow rules 1 to 4 as they stand: consistent
before and differing now is ``new_failure``. Rules 5 and 6 read their
:class:`~harness.judgement.consistency.Consistency` instead of a summary (they have none,
and no accuracy delta is computed for them): they are comparable when both sides have a
verdict that made the same number of comparisons with the same tolerance (else
``incomparable``: the check or its inputs changed), and then *worse* is more differing
comparisons, or a larger max ULP distance between the answers (``max_ulp_apart``; a NaN
met by a number is the largest), and *better* the mirror image, both decisive and exact:
the counts are of identical comparisons.

Training scenarios (results schema 4) are matched by name and judged on their verdicts:
an error now and not before, or non-finite now and finite before, is ``new_failure``; the
reverse ``fixed``; both non-finite: the first non-finite step earlier is ``regressed``,
later ``improved``. Both finite: the final loss's relative distance from the float64
shadow (:attr:`~harness.judgement.training.ScenarioResult.drift`) more than doubled, by
at least :data:`DRIFT_FLOOR`, is ``regressed`` (the run drifted further than its
baseline); halved likewise, ``improved``. A different number of steps, batch size,
policy or optimizer makes the pair ``incomparable``.

``regressed`` and ``new_failure`` fail a comparison (:attr:`Comparison.exit_code` 1).
A changed framework version or device name is attached to every verdict of that
framework's cells (:attr:`CellVerdict.environment`), so that "torch 2.3 -> 2.4 made
bfloat16 softmax worse" is one row. Views live in :mod:`reports.comparison`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from harness.judgement.consistency import Consistency
from harness.judgement.summary import CATEGORIES, DEFECTS, Summary
from harness.judgement.training import ScenarioResult
from harness.plan.cells import CellResult
from harness.record.results import Results, RunInfo
from oracles.errors import UsageError, choices
from oracles.formats import FORMATS

__all__ = [
    "FAILING",
    "CellKey",
    "CellVerdict",
    "Comparison",
    "Delta",
    "EnvChange",
    "Kind",
    "ScenarioVerdict",
    "Tolerance",
    "compare",
    "compare_scenarios",
]

#: statuses of cells that did not run: nothing to compare, only coverage
_NOT_RUN = ("skipped", "unsupported")

CellKey = tuple[str, str, str, str, str, str, str]


class Kind(str, enum.Enum):
    """What happened to a cell between the baseline and the current run. The definition
    order is the display order: what needs attention first."""

    NEW_FAILURE = "new_failure"
    REGRESSED = "regressed"
    INCOMPARABLE = "incomparable"
    MISSING_CELL = "missing_cell"
    NEW_CELL = "new_cell"
    FIXED = "fixed"
    IMPROVED = "improved"
    UNCHANGED = "unchanged"

    def __str__(self) -> str:
        return self.value


#: the kinds that fail a comparison
FAILING: frozenset[Kind] = frozenset({Kind.NEW_FAILURE, Kind.REGRESSED})


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How much worse a metric may get before it counts as a regression.

    ``max_ulp`` maps an output format to the allowed growth of the max ULP error (in ULPs
    of that format); formats not named get ``default``. ``correctly_rounded`` is the
    allowed drop of the correctly rounded fraction (0.01 = one percentage point).
    ``incidence`` names the categories whose every increase is a regression.
    """

    max_ulp: Mapping[str, float] = field(default_factory=dict)
    default: float = 0.0
    correctly_rounded: float = 0.0
    incidence: tuple[str, ...] = DEFECTS

    def __post_init__(self) -> None:
        for name, value in self.max_ulp.items():
            if name not in FORMATS:
                raise UsageError(f"tolerance: unknown dtype {name!r}; {choices(FORMATS)}")
            _check_non_negative(f"tolerance for {name}", value)
        _check_non_negative("tolerance", self.default)
        _check_non_negative("correctly rounded tolerance", self.correctly_rounded)
        if self.correctly_rounded > 1:
            raise UsageError(f"correctly rounded tolerance is a fraction in [0, 1], got {self.correctly_rounded!r}")
        for cat in self.incidence:
            if cat not in CATEGORIES:
                raise UsageError(f"tolerance: unknown incidence category {cat!r}; {choices(CATEGORIES)}")

    def ulp_for(self, dtype: str) -> float:
        """The allowed max-ULP growth for errors measured in ``dtype``."""
        return float(self.max_ulp.get(dtype, self.default))


def _check_non_negative(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise UsageError(f"{what} must be a non-negative number, got {value!r}")


@dataclass(frozen=True, slots=True)
class EnvChange:
    """Something about the environment that differs between the runs: ``torch 2.3 -> 2.4``."""

    what: str
    before: str | None
    after: str | None

    def __str__(self) -> str:
        return f"{self.what} {self.before or 'unavailable'} → {self.after or 'unavailable'}"


Effect = Literal["worse", "better", "same"]


@dataclass(frozen=True, slots=True)
class Delta:
    """One metric of a cell before and after. ``metric`` is ``max_ulp``,
    ``correctly_rounded`` (a fraction) or an incidence category; for a consistency cell
    ``differing`` (comparisons that differed) or ``max_ulp_apart`` (the largest ULP distance
    between two answers; ``inf`` for a NaN met by a number). ``decisive`` is False for
    metrics shown for information only (unwatched incidence categories)."""

    metric: str
    before: float
    after: float
    effect: Effect
    decisive: bool = True

    def __str__(self) -> str:
        if self.metric == "max_ulp":
            diff = self.after - self.before
            return f"max ulp {_num(self.before)} → {_num(self.after)} ({'+' if diff >= 0 else '-'}{_num(abs(diff))})"
        if self.metric == "correctly_rounded":
            return f"correctly rounded {_pct(self.before)} → {_pct(self.after)}"
        if self.metric == "differing":
            return f"differing comparisons {int(self.before)} → {int(self.after)}"
        if self.metric == "max_ulp_apart":
            return f"max ulp apart {_apart(self.before)} → {_apart(self.after)}"
        return f"{self.metric} {int(self.before)} → {int(self.after)}"


def _num(x: float) -> str:
    return f"{x:.4g}" if x < 1e5 else f"{x:.3e}"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _apart(x: float) -> str:
    return "NaN vs a number" if math.isinf(x) else _num(x)


@dataclass(frozen=True, slots=True)
class CellVerdict:
    """The verdict for one cell: its kind, a one-line reason, the metric deltas, the
    environment changes of its framework and device, and both results."""

    key: CellKey
    id: str
    kind: Kind
    why: str
    deltas: tuple[Delta, ...] = ()
    environment: tuple[EnvChange, ...] = ()
    baseline: CellResult | None = None
    current: CellResult | None = None

    @property
    def failing(self) -> bool:
        return self.kind in FAILING

    def delta(self, metric: str) -> Delta | None:
        return next((d for d in self.deltas if d.metric == metric), None)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Every cell's verdict (in display order: by kind, then id) and the run-level
    environment changes. ``labels`` name the two sides (file names, history run ids)."""

    baseline: RunInfo
    current: RunInfo
    tolerance: Tolerance
    verdicts: tuple[CellVerdict, ...]
    environment: tuple[EnvChange, ...] = ()
    labels: tuple[str, str] = ("baseline", "current")
    #: the training scenarios' verdicts (results schema 4), in display order
    scenarios: tuple[ScenarioVerdict, ...] = ()

    def of_kind(self, kind: Kind) -> tuple[CellVerdict, ...]:
        return tuple(v for v in self.verdicts if v.kind is kind)

    @property
    def counts(self) -> dict[Kind, int]:
        """Number of cells of every kind (zeros included), in display order."""
        out = dict.fromkeys(Kind, 0)
        for v in self.verdicts:
            out[v.kind] += 1
        return out

    @property
    def failed(self) -> bool:
        return any(v.failing for v in self.verdicts) or any(v.failing for v in self.scenarios)

    @property
    def exit_code(self) -> int:
        """1 when any cell or scenario regressed or newly fails, else 0."""
        return 1 if self.failed else 0


# -- the rules ------------------------------------------------------------------------------


def compare(
    baseline: Results,
    current: Results,
    tolerance: Tolerance | None = None,
    *,
    labels: tuple[str, str] = ("baseline", "current"),
) -> Comparison:
    """Judge every cell of ``current`` against ``baseline`` (see the module docstring for
    the rules). Pure: reads nothing, writes nothing, raises only for a results object that
    holds the same cell twice (a :class:`UsageError` naming it)."""
    tol = tolerance if tolerance is not None else Tolerance()
    base = _by_key(baseline, labels[0])
    cur = _by_key(current, labels[1])
    env = _environment(baseline.run, current.run)
    verdicts: list[CellVerdict] = []
    for key in sorted(set(base) | set(cur)):
        b, c = base.get(key), cur.get(key)
        anchor = c if c is not None else b
        assert anchor is not None
        cell_env = _cell_environment(anchor, baseline.run, current.run)
        verdicts.append(_judge(key, b, c, tol, cell_env))
    order = list(Kind)
    verdicts.sort(key=lambda v: (order.index(v.kind), v.id, v.key))
    scenarios = compare_scenarios(baseline.scenarios, current.scenarios)
    return Comparison(baseline.run, current.run, tol, tuple(verdicts), env, labels, scenarios)


# -- training scenarios ------------------------------------------------------------------------

#: the smallest growth of a finite scenario's drift (final loss relative error against its
#: shadow) that counts: below it, a doubling is noise between builds (0.1% of the loss)
DRIFT_FLOOR = 1e-3


@dataclass(frozen=True, slots=True)
class ScenarioVerdict:
    """What happened to one training scenario between the baseline and now."""

    name: str
    kind: Kind
    why: str
    baseline: ScenarioResult | None = None
    current: ScenarioResult | None = None

    @property
    def failing(self) -> bool:
        return self.kind in FAILING


def _where(r: ScenarioResult) -> str:
    f = r.first
    if f is None:
        return "finite"
    return f"non-finite from step {f.step} ({f.name} {f.direction})"


def _scenario_verdict(b: ScenarioResult | None, c: ScenarioResult | None) -> ScenarioVerdict:
    if b is None:
        assert c is not None
        return ScenarioVerdict(c.name, Kind.NEW_CELL, f"new scenario: {c.status}", None, c)
    if c is None:
        return ScenarioVerdict(b.name, Kind.MISSING_CELL, "not in the current run", b, None)

    def v(kind: Kind, why: str) -> ScenarioVerdict:
        return ScenarioVerdict(c.name, kind, why, b, c)

    if c.status == "error":
        return v(Kind.UNCHANGED, f"error, as before: {c.error}") if b.status == "error" else v(
            Kind.NEW_FAILURE, f"now fails: {c.error}")
    if b.status == "error":
        return v(Kind.IMPROVED if c.first is not None else Kind.FIXED, f"runs again: {_where(c)}")
    same = (b.steps, b.batch_size, b.policy, b.optimizer) == (c.steps, c.batch_size, c.policy, c.optimizer)
    if b.first is None and c.first is not None:
        return v(Kind.NEW_FAILURE, f"became {_where(c)}; was finite")
    if b.first is not None and c.first is None:
        return v(Kind.FIXED, f"now finite; was {_where(b)}")
    if not same:
        return v(Kind.INCOMPARABLE, "steps, batch size, policy or optimizer changed")
    if b.first is not None and c.first is not None:
        if c.first.step < b.first.step:
            return v(Kind.REGRESSED, f"{_where(c)}; was step {b.first.step}")
        if c.first.step > b.first.step:
            return v(Kind.IMPROVED, f"{_where(c)}; was step {b.first.step}")
        return v(Kind.UNCHANGED, _where(c))
    bd, cd = b.drift, c.drift
    if bd is None or cd is None:
        return v(Kind.UNCHANGED, "finite")
    shown = f"final loss {cd:.3%} from the shadow, was {bd:.3%}"
    if cd > 2 * bd and cd - bd >= DRIFT_FLOOR:
        return v(Kind.REGRESSED, f"drifted further: {shown}")
    if bd > 2 * cd and bd - cd >= DRIFT_FLOOR:
        return v(Kind.IMPROVED, f"drifts less: {shown}")
    return v(Kind.UNCHANGED, shown)


def compare_scenarios(baseline: Sequence[ScenarioResult], current: Sequence[ScenarioResult]) -> tuple[ScenarioVerdict, ...]:
    """A verdict per scenario name of either side (module docstring), in display order."""
    base = {r.name: r for r in baseline}
    cur = {r.name: r for r in current}
    order = list(Kind)
    out = [_scenario_verdict(base.get(n), cur.get(n)) for n in sorted(set(base) | set(cur))]
    out.sort(key=lambda v: (order.index(v.kind), v.name))
    return tuple(out)


def _by_key(results: Results, label: str) -> dict[CellKey, CellResult]:
    out: dict[CellKey, CellResult] = {}
    for cell in results.cells:
        if cell.spec.key in out:
            raise UsageError(f"{label}: cell {cell.spec.id} appears twice; merge parts with `fpharness merge` first")
        out[cell.spec.key] = cell
    return out


def _judge(
    key: CellKey, b: CellResult | None, c: CellResult | None, tol: Tolerance, env: tuple[EnvChange, ...]
) -> CellVerdict:
    def verdict(kind: Kind, why: str, deltas: tuple[Delta, ...] = ()) -> CellVerdict:
        anchor = c if c is not None else b
        assert anchor is not None
        return CellVerdict(key, anchor.spec.id, kind, why, deltas, env, b, c)

    if b is None:
        assert c is not None
        return verdict(Kind.NEW_CELL, f"new cell, {c.status}" + (f": {c.reason}" if c.reason else ""))
    if c is None:
        return verdict(Kind.MISSING_CELL, f"not in the current run (was {b.status})")
    if c.status == "error" and b.status != "error":
        return verdict(Kind.NEW_FAILURE, f"errors now (was {b.status}): {c.reason}")
    if b.status in _NOT_RUN or c.status in _NOT_RUN:
        if b.status == c.status:
            return verdict(Kind.UNCHANGED, f"{c.status}: {c.reason}")
        if c.status in _NOT_RUN:
            return verdict(Kind.INCOMPARABLE, f"{c.status} now (was {b.status}): {c.reason}")
        return verdict(Kind.INCOMPARABLE, f"{b.status} in the baseline: {b.reason}; now {c.status}")
    if c.status == "error" or b.status == "error":
        if b.status == c.status:
            same = b.reason == c.reason
            return verdict(Kind.UNCHANGED, f"error: {c.reason}" if same else f"error: {b.reason} → {c.reason}")
        if c.status == "pass":
            return verdict(Kind.FIXED, f"passes now (was error: {b.reason})")
        return verdict(Kind.IMPROVED, f"runs again (was error: {b.reason}) but fails: {c.reason}")

    if b.spec.check:  # the same key: both are consistency cells of one check
        comparable, why_not = _consistency_comparable(b.consistency, c.consistency)
        deltas = _consistency_deltas(b.consistency, c.consistency) if comparable else ()
    else:
        comparable, why_not = _comparable(b, c)
        deltas = _deltas(b, c, tol) if comparable else ()
    budget_note = "; budget changed" if b.spec.budget != c.spec.budget else ""
    if b.status == "pass" and c.status == "fail":
        return verdict(Kind.NEW_FAILURE, f"fails now: {c.reason}{budget_note}", deltas)
    if b.status == "fail" and c.status == "pass":
        return verdict(Kind.FIXED, f"passes now (was: {b.reason}){budget_note}", deltas)
    if not comparable:
        return verdict(Kind.INCOMPARABLE, why_not)
    worse = [d for d in deltas if d.decisive and d.effect == "worse"]
    better = [d for d in deltas if d.decisive and d.effect == "better"]
    if worse:
        return verdict(Kind.REGRESSED, "; ".join(str(d) for d in worse), deltas)
    if better:
        return verdict(Kind.IMPROVED, "; ".join(str(d) for d in better), deltas)
    return verdict(Kind.UNCHANGED, "within tolerance", deltas)


def _comparable(b: CellResult, c: CellResult) -> tuple[bool, str]:
    if b.summary is None or c.summary is None:
        side = "baseline" if b.summary is None else "current run"
        return False, f"no exact summary in the {side} (a results file from an older fpharness?)"
    if b.out_dtype != c.out_dtype:
        return False, f"output format {b.out_dtype} → {c.out_dtype}: the ULPs are in different units"
    if b.summary.n != c.summary.n:
        return False, f"inputs differ: {b.summary.n} → {c.summary.n} elements (input generator or file changed)"
    return True, ""


def _consistency_comparable(b: Consistency | None, c: Consistency | None) -> tuple[bool, str]:
    if b is None or c is None:
        side = "baseline" if b is None else "current run"
        return False, f"no consistency verdict in the {side} (a results file from another fpharness?)"
    if b.compared != c.compared and not (c.differing > b.differing and c.compared <= b.compared):
        # the count of comparisons moves with the implementation too (monotone and bounds
        # leave NaN answers out): more differing answers out of no more comparisons is a
        # regression whatever else changed; fewer differing out of fewer proves nothing
        return False, (f"comparisons differ: {b.compared} → {c.compared} (the check, its inputs, or which"
                       " answers are NaN changed)")
    if b.tolerance != c.tolerance:
        return False, f"tolerance {b.tolerance:g} → {c.tolerance:g} ulp: the answers are counted against another"
    return True, ""


def _consistency_deltas(b: Consistency | None, c: Consistency | None) -> tuple[Delta, ...]:
    """Differing comparisons, and the largest distance between answers where both sides
    measure one (the bounds check measures none). Exact: there is no noise to tolerate."""
    assert b is not None and c is not None
    out = [Delta("differing", float(b.differing), float(c.differing), _exact(c.differing - b.differing))]
    if b.max_ulp is not None and c.max_ulp is not None:
        growth = 0.0 if b.max_ulp == c.max_ulp else c.max_ulp - b.max_ulp  # inf - inf is NaN, not 0
        out.append(Delta("max_ulp_apart", b.max_ulp, c.max_ulp, _exact(growth)))
    return tuple(out)


def _exact(growth: float) -> Effect:
    return "worse" if growth > 0 else ("better" if growth < 0 else "same")


def _effect(growth: float, allowed: float) -> Effect:
    if growth > allowed:
        return "worse"
    if -growth > allowed:
        return "better"
    return "same"


def _deltas(b: CellResult, c: CellResult, tol: Tolerance) -> tuple[Delta, ...]:
    sb, sc = b.summary, c.summary
    assert sb is not None and sc is not None
    out: list[Delta] = []
    if sb.ulp_count and sc.ulp_count:
        allowed = tol.ulp_for(c.out_dtype or c.spec.dtype)
        out.append(Delta("max_ulp", sb.ulp_max, sc.ulp_max, _effect(sc.ulp_max - sb.ulp_max, allowed)))
    if sb.n:
        fb, fc = _cr(sb), _cr(sc)
        # compare the integer counts when no tolerance is given, so 1/3 vs 1/3 is never noise
        if tol.correctly_rounded == 0:
            eff: Effect = "worse" if sc.correctly_rounded < sb.correctly_rounded else (
                "better" if sc.correctly_rounded > sb.correctly_rounded else "same")
        else:
            eff = _effect(fb - fc, tol.correctly_rounded)
        out.append(Delta("correctly_rounded", fb, fc, eff))
    ib, ic = sb.incidence, sc.incidence
    for cat in CATEGORIES:
        if ib[cat] == 0 and ic[cat] == 0:
            continue
        eff = "worse" if ic[cat] > ib[cat] else ("better" if ic[cat] < ib[cat] else "same")
        out.append(Delta(cat, float(ib[cat]), float(ic[cat]), eff, decisive=cat in tol.incidence))
    return tuple(out)


def _cr(s: Summary) -> float:
    return s.correctly_rounded / s.n if s.n else 0.0


# -- environment ------------------------------------------------------------------------------


def _environment(b: RunInfo, c: RunInfo) -> tuple[EnvChange, ...]:
    """Run-level differences worth a line in the header: framework versions, devices,
    fpharness, Python and platform. (The git commit changes every night; views show it.)"""
    out: list[EnvChange] = []
    for name in sorted(set(b.frameworks) | set(c.frameworks)):
        if name in b.frameworks and name in c.frameworks and b.frameworks[name] != c.frameworks[name]:
            out.append(EnvChange(name, b.frameworks[name], c.frameworks[name]))
    out.extend(_device_changes(b, c, None))
    for what, before, after in (
        ("fpharness", b.fpharness, c.fpharness),
        ("python", b.python, c.python),
        ("platform", b.platform, c.platform),
    ):
        if before and after and before != after:
            out.append(EnvChange(what, before, after))
    return tuple(out)


def _device_changes(b: RunInfo, c: RunInfo, only: tuple[str, str] | None) -> list[EnvChange]:
    out: list[EnvChange] = []
    for fw in sorted(set(b.devices) & set(c.devices)):
        db, dc = b.devices[fw], c.devices[fw]
        for dev in sorted(set(db) & set(dc)):
            if only is not None and only != (fw, dev):
                continue
            if db[dev] != dc[dev]:
                out.append(EnvChange(f"{fw} {dev}", db[dev], dc[dev]))
    return out


def _cell_environment(cell: CellResult, b: RunInfo, c: RunInfo) -> tuple[EnvChange, ...]:
    fw = cell.spec.framework
    out: list[EnvChange] = []
    if fw in b.frameworks and fw in c.frameworks and b.frameworks[fw] != c.frameworks[fw]:
        out.append(EnvChange(fw, b.frameworks[fw], c.frameworks[fw]))
    out.extend(_device_changes(b, c, (fw, cell.spec.device)))
    return tuple(out)

