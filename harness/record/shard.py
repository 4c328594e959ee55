"""Splitting a suite into shards and merging the parts back, exactly.

Sharding (``fpharness run SUITE --shard K/N``) assigns whole *groups* of cells, never single
cells: a group is the cells that share (oracle, dtype, inputs, params), the unit for which
the runner generates inputs and computes references once. Splitting a group would make two
shards compute the same (expensive) references. Groups are sorted by their key and dealt
out greedily, the largest estimated cost first, each to the shard with the least cost so
far (ties to the lowest shard number). The cost of a group is its estimated element count
times (1 + its number of cells): one reference evaluation plus one call per cell.

The assignment depends only on the list of cells, so every job of a CI matrix computes the
same split from the same suite, and the union of the shards is the whole suite with no cell
twice. Rejected: hashing each cell key (stable under suite edits, but scatters groups
across shards and balances badly for a handful of large groups) and round-robin over
single cells (splits groups). With fewer groups than shards, some shards are empty.

Merging (``fpharness merge``) concatenates the parts' cells. Two parts holding the same
cell key (chunks of one streamed cell) have their summaries merged with
:meth:`Summary.merge` and the status recomputed with the cell's budget; run metadata is
combined (earliest start, latest finish, union of frameworks and devices) and conflicting
values are recorded in ``run.extra["conflicts"]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.judgement.error_vs_input import merge_profiles
from harness.judgement.training import ScenarioResult
from harness.plan.cells import CellResult, CellSpec
from harness.plan.inputs import parse_inputs
from harness.record.results import Results, RunInfo
from oracles.errors import UsageError
from oracles.formats import get_format

__all__ = ["Shard", "assign", "merge_results", "parse_shard", "select"]

GroupKey = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``: ``Shard(2, 4)`` reads ``2/4``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"K/N"`` with 1 <= K <= N; anything else is a one-line :class:`UsageError`."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise UsageError(f"--shard {text!r} must be K/N, e.g. 1/4 (shard K of N, counting from 1)")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= k <= n:
        raise UsageError(f"--shard {text!r}: K must be between 1 and N (N >= 1), e.g. 1/{max(n, 1)}")
    return Shard(k, n)


def _group_key(cell: CellSpec) -> GroupKey:
    return cell.group


def _elements(cell: CellSpec) -> int:
    """A rough element count of the cell's inputs, for balancing only."""
    spec = parse_inputs(cell.inputs, check_file=False)  # checked when the suite was loaded
    if spec.kind == "exhaustive":
        return 1 << min(get_format(cell.dtype).bits, 24)
    if spec.kind == "special":
        return 200
    return spec.n if spec.n > 0 else 1000  # npy/npz files: unknown until read


def assign(cells: Sequence[CellSpec], count: int) -> list[int]:
    """The shard (0-based) of every cell, in the order given; see the module docstring."""
    if count < 1:
        raise UsageError(f"shard count must be at least 1, got {count}")
    groups: dict[GroupKey, list[int]] = {}
    for i, cell in enumerate(cells):
        groups.setdefault(_group_key(cell), []).append(i)
    costs = {key: _elements(cells[idx[0]]) * (1 + len(idx)) for key, idx in groups.items()}
    # sort by key first (repr: params may mix value types), then stably by falling cost
    order = sorted(groups, key=repr)
    order.sort(key=lambda k: -costs[k])
    load = [0] * count
    out = [0] * len(cells)
    for key in order:
        target = min(range(count), key=lambda s: (load[s], s))
        load[target] += costs[key]
        for i in groups[key]:
            out[i] = target
    return out


def select(cells: Sequence[CellSpec], shard: Shard) -> tuple[CellSpec, ...]:
    """The cells of ``shard``, in the suite's order."""
    where = assign(cells, shard.count)
    return tuple(c for c, s in zip(cells, where, strict=True) if s == shard.index - 1)


# -- merging --------------------------------------------------------------------------------


def _merge_cells(parts: Sequence[CellResult]) -> CellResult:
    """One cell from chunks of it (see the module docstring)."""
    first = parts[0]
    if len(parts) == 1:
        return first
    for p in parts[1:]:
        if p.spec.budget != first.spec.budget or p.spec.framework != first.spec.framework:
            raise UsageError(f"cannot merge {first.spec.id}: the parts were run with different budgets or frameworks")
    seconds = sum(p.seconds for p in parts)
    impl_seconds = sum(p.impl_seconds for p in parts)
    errors = [p for p in parts if p.status == "error"]
    if errors:
        return replace(errors[0], seconds=seconds, impl_seconds=impl_seconds)
    skipped = [p for p in parts if p.status in ("skipped", "unsupported")]
    if len(skipped) == len(parts):
        return replace(first, seconds=seconds, impl_seconds=impl_seconds)
    if skipped:
        return CellResult(
            first.spec, "error", f"incomplete: {len(skipped)} of {len(parts)} parts skipped ({skipped[0].reason})",
            seconds=seconds, impl_seconds=impl_seconds,
        )
    out_dtypes = {p.out_dtype for p in parts}
    if len(out_dtypes) != 1:
        raise UsageError(f"cannot merge {first.spec.id}: the parts have output formats {sorted(map(str, out_dtypes))}")
    summaries = []
    for p in parts:
        if p.summary is None:
            raise UsageError(f"cannot merge {first.spec.id}: a part has no exact summary (written by an older fpharness?)")
        summaries.append(p.summary)
    seen: set[int] = set()
    for s in summaries:
        positions = {e.index for e in s.worst + s.examples}
        if positions & seen:
            raise UsageError(
                f"cannot merge {first.spec.id}: two parts hold the same elements (the same file given twice?)"
            )
        seen |= positions
    merged = summaries[0]
    for s in summaries[1:]:
        merged = merged.merge(s)
    violations = first.spec.budget.violations(merged)
    notes: list[str] = []
    for p, s in zip(parts, summaries, strict=True):
        own = set(p.spec.budget.violations(s))
        for item in filter(None, p.reason.split("; ")):
            if item not in own and item not in notes:
                notes.append(item)
    profile: dict[str, Any] | None = None
    if all(p.profile is not None for p in parts):
        for p in parts:
            assert p.profile is not None
            profile = merge_profiles(profile, p.profile)
    return CellResult(
        first.spec, "fail" if violations else "pass", "; ".join(violations + notes), first.out_dtype, merged,
        seconds=seconds, impl_seconds=impl_seconds, profile=profile,
    )


def _combine(values: Sequence[str | None], what: str, conflicts: dict[str, Any]) -> str | None:
    distinct = sorted({v for v in values if v})
    if len(distinct) > 1:
        conflicts[what] = distinct
        return " | ".join(distinct)
    return distinct[0] if distinct else (None if any(v is None for v in values) else "")


def merge_runs(runs: Sequence[RunInfo]) -> RunInfo:
    """Run metadata of the parts combined (see the module docstring)."""
    conflicts: dict[str, Any] = {}
    frameworks: dict[str, str | None] = {}
    for name in sorted({n for r in runs for n in r.frameworks}):
        values = [r.frameworks[name] for r in runs if name in r.frameworks]
        frameworks[name] = _combine(values, f"frameworks.{name}", conflicts)
    devices: dict[str, dict[str, str]] = {}
    for fw in sorted({n for r in runs for n in r.devices}):
        for dev in sorted({d for r in runs for d in r.devices.get(fw, {})}):
            values = [r.devices[fw][dev] for r in runs if dev in r.devices.get(fw, {})]
            devices.setdefault(fw, {})[dev] = _combine(values, f"devices.{fw}.{dev}", conflicts) or ""
    started = [r.started for r in runs if r.started]
    finished = [r.finished for r in runs if r.finished]
    host = _combine([r.host for r in runs], "host", conflicts) or ""
    python = _combine([r.python for r in runs], "python", conflicts) or ""
    platform = _combine([r.platform for r in runs], "platform", conflicts) or ""
    fpharness = _combine([r.fpharness for r in runs], "fpharness", conflicts) or ""
    git_commit = _combine([r.git_commit for r in runs], "git_commit", conflicts)
    commands = {r.command for r in runs}
    extra: dict[str, Any] = {}
    for r in runs:
        for k, v in r.extra.items():
            if k in ("conflicts", "parts", "shard"):
                continue
            if k in extra and extra[k] != v:
                conflicts[k] = sorted({repr(extra[k]), repr(v)})
            extra.setdefault(k, v)
    # each part's own command and shard stay on record; the merged run has no one command
    extra["parts"] = [
        {"started": r.started, "finished": r.finished, "host": r.host, "shard": r.extra.get("shard"), "command": r.command}
        for r in runs
    ]
    if conflicts:
        extra["conflicts"] = conflicts
    return RunInfo(
        started=min(started) if started else "",
        finished=max(finished) if finished else "",
        host=host,
        python=python,
        platform=platform,
        fpharness=fpharness,
        frameworks=frameworks,
        devices=devices,
        git_commit=git_commit,
        seeds=tuple(sorted({s for r in runs for s in r.seeds})),
        command=commands.pop() if len(commands) == 1 else "",
        extra=extra,
    )


def merge_results(parts: Sequence[Results]) -> Results:
    """Combine shard (or chunk) results into one, exactly: the cells in order of first
    appearance, cells with the same key merged. Raises :class:`UsageError` for parts that
    cannot belong together."""
    if not parts:
        raise UsageError("merge needs at least one results file")
    for i, part in enumerate(parts):
        if any(part == other for other in parts[:i]):
            raise UsageError(f"results part {i + 1} is the same as an earlier one; give each part once")
    by_key: dict[tuple[str, ...], list[CellResult]] = {}
    for part in parts:
        for cell in part.cells:
            by_key.setdefault(cell.spec.key, []).append(cell)
    cells = tuple(_merge_cells(group) for group in by_key.values())
    scenarios: dict[str, ScenarioResult] = {}
    for part in parts:
        for scenario in part.scenarios:
            if scenario.name in scenarios:
                raise UsageError(f"scenario {scenario.name!r} is in two parts; scenarios are not sharded, so give "
                                 "each training run's results once")
            scenarios[scenario.name] = scenario
    return Results(merge_runs([p.run for p in parts]), cells, tuple(scenarios.values()))
