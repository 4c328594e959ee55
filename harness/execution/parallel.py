"""Cells across worker processes (``-j N``), with results identical to a serial run.

The parent computes every reference first (:func:`harness.execution.runner.run_cells`), then hands
out units of work:

* the cells of one reference group (same oracle, dtype, inputs and parameters) and one
  framework, with the group's references, so no reference is computed twice;
* one chunk of a streamed cell (all 2**32 float32 inputs come in 1024 chunks), whose
  reference the worker computes itself; the parent merges the chunks' parts in order,
  which is exact (:meth:`harness.execution.runner.Part.merge`).

Why the results cannot differ from ``-j 1``: each cell's batches are the same, every
batch is judged on its own, merges are exact and order-independent, and the parent puts
the results back in plan order. Frameworks keep their default settings in every worker,
as in a serial run (a thread count changed for "fairness" could change the summation
order of a reduction).

Workers are *spawned*, never forked: the parent may have TensorFlow or JAX loaded with
their thread pools running, and forking that can deadlock. Each worker is a lane with a
queue: all the group units of one framework go to one lane, so a worker imports
TensorFlow, say, and JAX traces a shape, once rather than in every process (measured on
the frameworks suite: a shared queue made the cached re-run slower at -j 2 than serially).
Streamed chunks go to a queue every lane draws from, and an idle lane steals from the
fullest one. A worker runs one unit at a time, so when it dies (an implementation that
segfaults or aborts the process) the unit is known: a group unit is split into its cells,
each run alone, and the cell that kills its worker becomes an error cell; the run goes on
with a fresh worker. (Custom implementations cannot kill a worker: each worker's runner
calls them in an isolated process of its own, :mod:`harness.execution.isolation`, exactly
as a serial run does, so their results and reasons are the same at any ``-j``.)

Workers die with the parent, ``kill -9`` included (:func:`~harness.execution.isolation.die_with_parent`),
so no worker, and then no resource tracker, outlives it. They are started ignoring Ctrl-C
(:func:`~harness.execution.isolation.sigint_ignored`): the parent alone sees the
KeyboardInterrupt, kills its workers and reports one line.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Any

from harness.execution.isolation import sigint_ignored
from harness.execution.progress import Progress
from harness.execution.references import reference_function
from harness.execution.runner import Part, Runner
from harness.frameworks.adapters import get_backend
from harness.plan.cells import CellResult, CellSpec
from harness.plan.loader import import_source, source_of
from oracles.gradients import gradient_for
from oracles.lifetime import die_with_parent
from oracles.properties import PROPERTIES
from oracles.reference import Reference
from oracles.registry import get_oracle

__all__ = ["WorkerSetup", "WorkersUnavailable", "run_parallel"]


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
    #: a spawned worker imports them, since it knows only the built-in catalogue
    oracle_sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _GroupUnit:
    cells: tuple[tuple[int, CellSpec], ...]  # (position in the plan, cell)
    refs: dict[tuple[str, int], Reference]
    cost: int


@dataclass(frozen=True, slots=True)
class _ChunkUnit:
    position: int
    cell: CellSpec
    index: int
    cost: int


_Unit = _GroupUnit | _ChunkUnit
_WORKER: Runner | None = None


def _init_worker(setup: WorkerSetup, parent: int) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited already; also when started elsewhere
    die_with_parent(parent)
    for source in setup.oracle_sources:
        import_source(source)
    reference = None
    if not setup.plain:
        reference = reference_function(cache_dir=setup.cache_dir, use_cache=setup.use_cache, jobs=1)
    _WORKER = Runner(k_worst=setup.k_worst, reference=reference)


#: modules every process has imported with the oracles package
_BUILT_IN = ("oracles.catalogue", "oracles.catalogue_gradients", "oracles.catalogue_properties")


def _oracle_sources(cells: Sequence[CellSpec]) -> tuple[str, ...]:
    """The modules and files defining the plan's oracles that are not built in ("" names
    no oracle: a consistency cell of a user's operation)."""
    names = {c.oracle for c in cells} - {""}
    modules = {get_oracle(name).module for name in names}
    # a user's gradient, or properties, may be registered in another module than its oracle
    modules |= {g.module for g in (gradient_for(c.oracle, c.wrt) for c in cells if c.is_grad) if g is not None}
    modules |= {PROPERTIES.get(name).module for name in names if name in PROPERTIES}
    sources = {source_of(m) for m in modules if m and m not in _BUILT_IN}
    return tuple(sorted(s for s in sources if s is not None))


def _about(framework: str) -> tuple[str, tuple[str | None, dict[str, str]]]:
    """(framework, (version, devices)) as this worker sees them, for the run's metadata."""
    backend = get_backend(framework)
    try:
        return framework, (backend.version(), backend.devices())
    except Exception as exc:  # noqa: BLE001 - metadata must never fail a run
        return framework, (None, {"error": str(exc)})


def _work(unit: _Unit) -> tuple[Any, tuple[str, tuple[str | None, dict[str, str]]]]:
    runner = _WORKER
    assert runner is not None, "worker used before its initializer ran"
    if isinstance(unit, _ChunkUnit):
        return (unit.position, unit.index, runner.run_part(unit.cell, [unit.index])), _about(unit.cell.framework)
    out = []
    for position, cell in unit.cells:
        runner._group(cell).refs.update(unit.refs)
        out.append((position, runner.run(cell)))
    return out, _about(unit.cells[0][1].framework)


class WorkersUnavailable(Exception):
    """Worker processes cannot be started here; the caller runs the cells itself."""


def _ping() -> bool:
    return True


def _crashed(cell: CellSpec) -> str:
    return (
        "the worker process running it died (a crash in the implementation or its framework:"
        f" a segfault or abort); run it alone to see it: {cell.repro()}"
    )


@dataclass
class _Plan:
    units: list[_Unit]
    chunks: dict[int, int] = field(default_factory=dict)  # streamed cell position -> chunk count


def _plan(cells: Sequence[CellSpec], runner: Runner) -> _Plan:
    """Units of work, the most expensive first (so no worker is left with a big one at
    the end); cost is elements times cells."""
    plan = _Plan([])
    groups: dict[Any, list[tuple[int, CellSpec]]] = {}
    for pos, cell in enumerate(cells):
        group = runner._group(cell)
        if group.inputs.streamed:
            n = runner.batch_count(cell)
            plan.chunks[pos] = n
            chunk = group.inputs.n_inputs // max(n, 1)
            plan.units.extend(_ChunkUnit(pos, cell, i, chunk) for i in range(n))
        else:
            key = (*cell.group, cell.framework)
            groups.setdefault(key, []).append((pos, cell))
    for members in groups.values():
        group = runner._group(members[0][1])
        size = group.inputs.n_inputs
        plan.units.append(_GroupUnit(tuple(members), dict(group.refs), size * len(members)))
    plan.units.sort(key=lambda u: -u.cost)
    return plan


def _framework(unit: _Unit) -> str:
    return unit.cell.framework if isinstance(unit, _ChunkUnit) else unit.cells[0][1].framework


@dataclass
class _Lane:
    """One worker process and the units meant for it."""

    queue: deque[_Unit] = field(default_factory=deque)
    pool: ProcessPoolExecutor | None = None
    future: Future[Any] | None = None
    unit: _Unit | None = None
    load: int = 0


def _lanes(units: list[_Unit], jobs: int) -> tuple[list[_Lane], deque[_Unit]]:
    """Each framework's group units go to one lane (so each worker imports, and JAX traces,
    what it needs once), the heaviest framework first onto the lightest lane; chunks of
    streamed cells go to a queue that every lane draws from."""
    lanes = [_Lane() for _ in range(jobs)]
    shared: deque[_Unit] = deque(u for u in units if isinstance(u, _ChunkUnit))
    by_framework: dict[str, list[_Unit]] = {}
    for u in units:
        if isinstance(u, _GroupUnit):
            by_framework.setdefault(_framework(u), []).append(u)
    for name in sorted(by_framework, key=lambda f: -sum(u.cost for u in by_framework[f])):
        lane = min(lanes, key=lambda ln: ln.load)
        lane.queue.extend(by_framework[name])
        lane.load += sum(u.cost for u in by_framework[name])
    return lanes, shared


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor has no public way to stop a running task (terminate_workers()
    # arrives in Python 3.14); its process table is the only handle on them
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        with contextlib.suppress(Exception):
            process.kill()


def run_parallel(
    cells: Sequence[CellSpec],
    runner: Runner,
    jobs: int,
    setup: WorkerSetup,
    *,
    on_result: Callable[[CellResult], None] | None = None,
    progress: Progress | None = None,
) -> list[CellResult]:
    """Run ``cells`` (whose references ``runner`` has prepared) over ``jobs`` spawned
    worker processes; returns the results in plan order, as :func:`run_cells` does."""
    setup = replace(setup, oracle_sources=_oracle_sources(cells))
    plan = _plan(cells, runner)
    results: list[CellResult | None] = [None] * len(cells)
    parts: dict[int, dict[int, Part]] = {pos: {} for pos in plan.chunks}
    failed_at: dict[int, int] = {}  # streamed cell -> lowest failing chunk so far
    emitted = 0

    def record(pos: int, result: CellResult) -> None:
        nonlocal emitted
        results[pos] = result
        if progress:
            progress.advance()
        while emitted < len(results) and results[emitted] is not None:
            if on_result:
                done = results[emitted]
                assert done is not None
                on_result(done)
            emitted += 1

    def take_part(pos: int, index: int, part: Part) -> None:
        if not plan.chunks.get(pos):
            return  # the cell is finished (an earlier chunk failed, or it was skipped)
        parts[pos][index] = part
        if progress:
            progress.describe(f"{cells[pos].id}: {len(parts[pos])}/{plan.chunks[pos]} chunks")
        if part.failure is not None:
            # a skip concerns the whole cell; an error stops it at this chunk, as a serial
            # run would, unless an earlier chunk fails too
            stop = -1 if part.failure[0] == "skipped" else index
            failed_at[pos] = min(failed_at.get(pos, stop), stop)
        last = failed_at.get(pos, plan.chunks[pos] - 1)
        if last == -1:
            merged = next(p for p in parts[pos].values() if p.failure is not None and p.failure[0] == "skipped")
        elif all(i in parts[pos] for i in range(last + 1)):
            merged = parts[pos][0]
            for i in range(1, last + 1):
                merged = merged.merge(parts[pos][i])
        else:
            return
        record(pos, runner.finish(cells[pos], merged, sum(p.seconds for p in parts[pos].values())))
        parts[pos] = {}
        plan.chunks[pos] = 0

    def wanted(unit: _Unit) -> bool:
        if isinstance(unit, _ChunkUnit):
            if not plan.chunks.get(unit.position):
                return False
            stop = failed_at.get(unit.position)
            return stop is None or unit.index < stop
        return True

    def take(unit: _Unit, value: Any) -> None:
        if isinstance(unit, _ChunkUnit):
            take_part(*value)
        else:
            for pos, result in value:
                record(pos, result)

    def crash(unit: _Unit) -> None:
        if isinstance(unit, _ChunkUnit):
            take(unit, (unit.position, unit.index, Part(failure=("error", _crashed(unit.cell)), failed_at=unit.index)))
        else:
            for pos, cell in unit.cells:
                record(pos, CellResult(cell, "error", _crashed(cell)))

    lanes, shared = _lanes(plan.units, jobs)
    context = multiprocessing.get_context("spawn")
    setup = replace(setup, k_worst=runner.k_worst)  # workers judge as this runner would
    started = False

    def new_pool() -> ProcessPoolExecutor:
        nonlocal started
        pool = ProcessPoolExecutor(1, mp_context=context, initializer=_init_worker, initargs=(setup, os.getpid()))
        if not started:
            # a worker that cannot even start (a script without an ``if __name__ ==
            # "__main__"`` guard, which spawn runs again) is not a crashing implementation
            try:
                with sigint_ignored():
                    ping = pool.submit(_ping)
                ping.result()
            except BrokenProcessPool as exc:
                pool.shutdown(wait=True, cancel_futures=True)
                raise WorkersUnavailable(
                    "worker processes could not start (a script calling fpharness needs an"
                    ' `if __name__ == "__main__":` guard for -j); running the cells in this process'
                ) from exc
            started = True
        return pool

    def submit(lane: _Lane, unit: _Unit) -> Future[Any]:
        for _ in range(2):  # a worker that died while idle breaks the pool before the submit
            if lane.pool is None:
                lane.pool = new_pool()
            try:
                with sigint_ignored():  # the submit starts the worker process
                    return lane.pool.submit(_work, unit)
            except BrokenProcessPool:
                lane.pool.shutdown(wait=True, cancel_futures=True)
                lane.pool = None
        raise RuntimeError("could not start a worker process twice in a row")

    def next_unit(lane: _Lane) -> _Unit | None:
        # its own queue, then the shared chunks, then work stolen from the fullest lane
        # (an idle worker would otherwise wait while another has a backlog)
        for source, steal in ((lane.queue, False), (shared, False), (max((ln.queue for ln in lanes), key=len), True)):
            while source:
                unit = source.pop() if steal else source.popleft()  # a thief takes the cheapest
                if wanted(unit):
                    return unit
        return None

    try:
        while True:
            for lane in lanes:
                if lane.future is None:
                    unit = next_unit(lane)
                    if unit is not None:
                        lane.future, lane.unit = submit(lane, unit), unit
            running = {lane.future: lane for lane in lanes if lane.future is not None}
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                lane = running[fut]
                unit = lane.unit
                assert unit is not None
                lane.future = lane.unit = None
                try:
                    value, (framework, about) = fut.result()
                    runner.framework_info[framework] = about
                    take(unit, value)
                except BrokenProcessPool:
                    # one unit in flight per worker: this one killed it
                    assert lane.pool is not None
                    lane.pool.shutdown(wait=True, cancel_futures=True)
                    lane.pool = None
                    if isinstance(unit, _GroupUnit) and len(unit.cells) > 1:
                        # which cell was it? each of them alone, next
                        lane.queue.extendleft(
                            _GroupUnit((member,), unit.refs, unit.cost // len(unit.cells))
                            for member in reversed(unit.cells)
                        )
                    else:
                        crash(unit)
    except BaseException:
        # Ctrl-C (or a bug): stop the workers now rather than wait for their units
        for lane in lanes:
            if lane.pool is not None:
                _kill_workers(lane.pool)
        raise
    finally:
        for lane in lanes:
            if lane.pool is not None:
                lane.pool.shutdown(wait=True, cancel_futures=True)
    out = [r for r in results if r is not None]
    if len(out) != len(cells):  # pragma: no cover - every unit ends in a result or a crash
        missing = [c.id for c, r in zip(cells, results, strict=True) if r is None]
        raise RuntimeError(f"parallel run lost cells: {missing[:3]}")
    return out
