"""The units of work a run hands to other processes, and how their answers become results.

Both executors (:mod:`.parallel`, local worker processes for ``-j N``; :mod:`.cluster`, Ray
actors) share this module, so they cut a plan into the same units and merge the answers
the same way; they differ only in where a unit runs and how a lost worker shows.

* A *group unit* is the cells of one reference group (same oracle, dtype, inputs and
  parameters) and one framework, with the group's references, so no reference is
  computed twice.
* A *chunk unit* is one chunk of a streamed cell (all 2**32 float32 inputs come in 1024
  chunks), whose reference the worker computes itself; the :class:`Collector` merges a
  cell's chunk parts in order, which is exact (:meth:`harness.execution.runner.Part.merge`).

Why results cannot differ from ``-j 1``: each cell's batches are the same, every batch is
judged on its own, merges are exact and order-independent, and the collector puts the
results back in plan order.

Units go to *lanes* (one worker each, :class:`Lanes`): all the group units of one
framework to one lane, so a worker imports TensorFlow, say, and JAX traces a shape, once
rather than in every process; chunks to a queue every lane of their kind draws from; an
idle lane steals from the fullest one of its kind. A lane's kind is ``"cpu"`` or
``"gpu"``: cuda cells go to GPU lanes where there are any, every other unit to CPU lanes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.execution.progress import Progress
from harness.execution.references import reference_function
from harness.execution.runner import Part, Runner
from harness.frameworks.adapters import get_backend
from harness.plan.cells import CellResult, CellSpec
from harness.plan.loader import import_source, source_of
from oracles.gradients import gradient_for
from oracles.properties import PROPERTIES
from oracles.reference import Reference
from oracles.registry import get_oracle

__all__ = [
    "ChunkUnit",
    "Collector",
    "GroupUnit",
    "Lanes",
    "Unit",
    "UnitPlan",
    "WorkerSetup",
    "about",
    "crashed",
    "oracle_sources",
    "plan_units",
    "unit_kind",
    "work",
    "worker_runner",
]


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    """How a worker builds its Runner: the parent's judging options and reference source
    (``cache_dir``/``use_cache`` as in :func:`harness.execution.references.reference_function`; ``plain``
    evaluates with mpmath and the fast tier, without a disk cache)."""

    k_worst: int = 10
    plain: bool = True
    cache_dir: str | None = None
    use_cache: bool = True
    #: where the plan's user oracles are defined (see :func:`harness.plan.loader.source_of`):
    #: a worker imports them, since it knows only the built-in catalogue
    oracle_sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupUnit:
    cells: tuple[tuple[int, CellSpec], ...]  # (position in the plan, cell)
    refs: dict[tuple[str, int], Reference]
    cost: int

    @property
    def first(self) -> CellSpec:
        return self.cells[0][1]

    def split(self) -> list[GroupUnit]:
        """One unit per cell (to find which of them kills its worker)."""
        return [GroupUnit((member,), self.refs, self.cost // len(self.cells)) for member in self.cells]


@dataclass(frozen=True, slots=True)
class ChunkUnit:
    position: int
    cell: CellSpec
    index: int
    cost: int

    @property
    def first(self) -> CellSpec:
        return self.cell


Unit = GroupUnit | ChunkUnit


def unit_kind(unit: Unit) -> str:
    """The kind of lane a unit asks for: "gpu" for cuda cells, "cpu" for the rest."""
    return "gpu" if unit.first.device == "cuda" else "cpu"


def worker_runner(setup: WorkerSetup) -> Runner:
    """The Runner a worker judges with: the parent's options, and the plan's user oracles
    imported (a worker knows only the built-in catalogue)."""
    for source in setup.oracle_sources:
        import_source(source)
    reference = None
    if not setup.plain:
        reference = reference_function(cache_dir=setup.cache_dir, use_cache=setup.use_cache, jobs=1)
    return Runner(k_worst=setup.k_worst, reference=reference)


def about(framework: str) -> tuple[str, tuple[str | None, dict[str, str]]]:
    """(framework, (version, devices)) as this worker sees them, for the run's metadata."""
    backend = get_backend(framework)
    try:
        return framework, (backend.version(), backend.devices())
    except Exception as exc:  # noqa: BLE001 - metadata must never fail a run
        return framework, (None, {"error": str(exc)})


def work(runner: Runner, unit: Unit) -> tuple[Any, tuple[str, tuple[str | None, dict[str, str]]]]:
    """Run one unit in a worker: (its answer for :meth:`Collector.take`, :func:`about`)."""
    if isinstance(unit, ChunkUnit):
        return (unit.position, unit.index, runner.run_part(unit.cell, [unit.index])), about(unit.cell.framework)
    out = []
    for position, cell in unit.cells:
        runner._group(cell).refs.update(unit.refs)
        out.append((position, runner.run(cell)))
    return out, about(unit.first.framework)


#: modules every process has imported with the oracles package
_BUILT_IN = ("oracles.catalogue", "oracles.catalogue_gradients", "oracles.catalogue_properties")


def oracle_sources(cells: Sequence[CellSpec]) -> tuple[str, ...]:
    """The modules and files defining the plan's oracles that are not built in ("" names
    no oracle: a consistency cell of a user's operation)."""
    names = {c.oracle for c in cells} - {""}
    modules = {get_oracle(name).module for name in names}
    # a user's gradient, or properties, may be registered in another module than its oracle
    modules |= {g.module for g in (gradient_for(c.oracle, c.wrt) for c in cells if c.is_grad) if g is not None}
    modules |= {PROPERTIES.get(name).module for name in names if name in PROPERTIES}
    sources = {source_of(m) for m in modules if m and m not in _BUILT_IN}
    return tuple(sorted(s for s in sources if s is not None))


def crashed(cell: CellSpec, how: str = "died") -> str:
    """The reason of a cell whose worker died running it."""
    return (
        f"the worker process running it {how} (a crash in the implementation or its framework:"
        f" a segfault or abort); run it alone to see it: {cell.repro()}"
    )


@dataclass
class UnitPlan:
    units: list[Unit]
    chunks: dict[int, int] = field(default_factory=dict)  # streamed cell position -> chunk count


def plan_units(cells: Sequence[CellSpec], runner: Runner) -> UnitPlan:
    """Units of work, the most expensive first (so no worker is left with a big one at
    the end); cost is elements times cells."""
    plan = UnitPlan([])
    groups: dict[Any, list[tuple[int, CellSpec]]] = {}
    for pos, cell in enumerate(cells):
        group = runner._group(cell)
        if group.inputs.streamed:
            n = runner.batch_count(cell)
            plan.chunks[pos] = n
            chunk = group.inputs.n_inputs // max(n, 1)
            plan.units.extend(ChunkUnit(pos, cell, i, chunk) for i in range(n))
        else:
            key = (*cell.group, cell.framework)
            groups.setdefault(key, []).append((pos, cell))
    for members in groups.values():
        group = runner._group(members[0][1])
        size = group.inputs.n_inputs
        plan.units.append(GroupUnit(tuple(members), dict(group.refs), size * len(members)))
    plan.units.sort(key=lambda u: -u.cost)
    return plan


class Lanes:
    """The units meant for each lane, and the chunks any lane of a kind may take."""

    def __init__(self, units: Sequence[Unit], kinds: Sequence[str], wanted: Callable[[Unit], bool]) -> None:
        """``kinds``: each lane's kind ("cpu" or "gpu"). A unit whose kind has no lane goes
        to the CPU lanes (a cuda cell then skips there, as in a serial run without a GPU).
        Each framework's group units go to one lane, the heaviest framework first onto the
        lightest lane; ``wanted`` tells whether a queued unit is still worth running."""
        self.kinds = list(kinds)
        self.queues: list[deque[Unit]] = [deque() for _ in kinds]
        self.shared: dict[str, deque[Unit]] = {k: deque() for k in set(kinds)}
        self._wanted = wanted
        load = [0] * len(kinds)
        by_framework: dict[tuple[str, str], list[Unit]] = {}
        for u in units:
            kind = self._kind(u)
            if isinstance(u, ChunkUnit):
                self.shared[kind].append(u)
            else:
                by_framework.setdefault((u.first.framework, kind), []).append(u)
        for key in sorted(by_framework, key=lambda f: -sum(u.cost for u in by_framework[f])):
            lane = min((i for i, k in enumerate(kinds) if k == key[1]), key=lambda i: load[i])
            self.queues[lane].extend(by_framework[key])
            load[lane] += sum(u.cost for u in by_framework[key])

    def _kind(self, unit: Unit) -> str:
        kind = unit_kind(unit)
        return kind if kind in self.shared else "cpu" if "cpu" in self.shared else self.kinds[0]

    def next_unit(self, lane: int) -> Unit | None:
        """Lane ``lane``'s next unit: its own queue, then the shared chunks of its kind,
        then the cheapest unit of the fullest lane of its kind (an idle worker would
        otherwise wait while another has a backlog)."""
        kind = self.kinds[lane]
        fullest = max((q for q, k in zip(self.queues, self.kinds, strict=True) if k == kind), key=len)
        for source, steal in ((self.queues[lane], False), (self.shared[kind], False), (fullest, True)):
            while source:
                unit = source.pop() if steal else source.popleft()
                if self._wanted(unit):
                    return unit
        return None

    def requeue(self, lane: int, units: Sequence[Unit]) -> None:
        """Put ``units`` first in lane ``lane``'s queue, in order."""
        self.queues[lane].extendleft(reversed(units))


class Collector:
    """Answers of units in, results in plan order out: merges the chunks of streamed
    cells (stopping a cell at its first failing chunk, as a serial run would), reports each
    result to ``on_result`` once every earlier cell's has been, and advances ``progress``."""

    def __init__(self, cells: Sequence[CellSpec], runner: Runner, plan: UnitPlan, *,
                 on_result: Callable[[CellResult], None] | None = None, progress: Progress | None = None) -> None:
        self.cells = cells
        self.runner = runner
        self.chunks = dict(plan.chunks)
        self.on_result = on_result
        self.progress = progress
        self.results: list[CellResult | None] = [None] * len(cells)
        self.parts: dict[int, dict[int, Part]] = {pos: {} for pos in plan.chunks}
        self.failed_at: dict[int, int] = {}  # streamed cell -> lowest failing chunk so far
        self.emitted = 0

    def record(self, pos: int, result: CellResult) -> None:
        self.results[pos] = result
        if self.progress:
            self.progress.advance()
        while self.emitted < len(self.results) and (done := self.results[self.emitted]) is not None:
            if self.on_result:
                self.on_result(done)
            self.emitted += 1

    def take_part(self, pos: int, index: int, part: Part) -> None:
        if not self.chunks.get(pos):
            return  # the cell is finished (an earlier chunk failed, or it was skipped)
        parts = self.parts[pos]
        parts[index] = part
        if self.progress:
            self.progress.describe(f"{self.cells[pos].id}: {len(parts)}/{self.chunks[pos]} chunks")
        if part.failure is not None:
            # a skip concerns the whole cell; an error stops it at this chunk, as a serial
            # run would, unless an earlier chunk fails too
            stop = -1 if part.failure[0] == "skipped" else index
            self.failed_at[pos] = min(self.failed_at.get(pos, stop), stop)
        last = self.failed_at.get(pos, self.chunks[pos] - 1)
        if last == -1:
            merged = next(p for p in parts.values() if p.failure is not None and p.failure[0] == "skipped")
        elif all(i in parts for i in range(last + 1)):
            merged = parts[0]
            for i in range(1, last + 1):
                merged = merged.merge(parts[i])
        else:
            return
        self.record(pos, self.runner.finish(self.cells[pos], merged, sum(p.seconds for p in parts.values())))
        self.parts[pos] = {}
        self.chunks[pos] = 0

    def wanted(self, unit: Unit) -> bool:
        """Whether a unit can still change a result (not a chunk past its cell's first
        failing chunk, nor of a finished cell)."""
        if isinstance(unit, ChunkUnit):
            if not self.chunks.get(unit.position):
                return False
            stop = self.failed_at.get(unit.position)
            return stop is None or unit.index < stop
        return True

    def take(self, unit: Unit, value: Any) -> None:
        """A unit's answer (what :func:`work` returned first)."""
        if isinstance(unit, ChunkUnit):
            self.take_part(*value)
        else:
            for pos, result in value:
                self.record(pos, result)

    def crash(self, unit: Unit, reason: Callable[[CellSpec], str] = crashed) -> None:
        """A unit whose worker died running it: its cells (or its chunk) are errors."""
        if isinstance(unit, ChunkUnit):
            self.take(unit, (unit.position, unit.index,
                             Part(failure=("error", reason(unit.cell)), failed_at=unit.index)))
        else:
            for pos, cell in unit.cells:
                self.record(pos, CellResult(cell, "error", reason(cell)))

    def finished(self) -> list[CellResult]:
        out = [r for r in self.results if r is not None]
        if len(out) != len(self.cells):  # pragma: no cover - every unit ends in a result or a crash
            missing = [c.id for c, r in zip(self.cells, self.results, strict=True) if r is None]
            raise RuntimeError(f"a run lost cells: {missing[:3]}")
        return out
