"""Cells across worker processes (``-j N``), with results identical to a serial run.

The parent computes every reference first (:func:`harness.runner.run_cells`), then hands
out units of work:

* the cells of one reference group (same oracle, dtype, inputs and parameters), with the
  group's references, so no reference is computed twice and nothing is shared between
  workers;
* one chunk of a streamed cell (all 2**32 float32 inputs come in 1024 chunks), whose
  reference the worker computes itself; the parent merges the chunks' parts in order,
  which is exact (:meth:`harness.runner.Part.merge`).

Why the results cannot differ from ``-j 1``: each cell's batches are the same, every
batch is judged on its own, merges are exact and order-independent, and the parent puts
the results back in plan order. Frameworks keep their default settings in every worker,
as in a serial run (a thread count changed for "fairness" could change the summation
order of a reduction).

Workers are *spawned*, never forked: the parent may have TensorFlow or JAX loaded with
their thread pools running, and forking that can deadlock. At most ``jobs`` units are in
flight, so when a worker dies (an implementation that segfaults or aborts the process),
only those few units are suspects: each is re-run alone in a fresh worker, the one that
kills it again becomes an error cell, and the run goes on.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from harness.cells import CellResult, CellSpec
from harness.progress import Progress
from harness.runner import Part, Runner
from oracles.reference import Reference

__all__ = ["WorkerSetup", "run_parallel"]


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    """How a worker builds its Runner: the parent's judging options and reference source
    (``cache_dir``/``use_cache`` as in :class:`harness.execute.ExecOptions`; ``plain``
    evaluates with mpmath and the fast tier, without a disk cache)."""

    k_worst: int = 10
    plain: bool = True
    cache_dir: str | None = None
    use_cache: bool = True


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


def _init_worker(setup: WorkerSetup) -> None:
    global _WORKER
    reference = None
    if not setup.plain:
        from harness.execute import ExecOptions, reference_function

        reference = reference_function(ExecOptions(cache_dir=setup.cache_dir, use_cache=setup.use_cache, jobs=1))
    _WORKER = Runner(k_worst=setup.k_worst, reference=reference)


def _work(unit: _Unit) -> list[tuple[int, CellResult]] | tuple[int, int, Part]:
    runner = _WORKER
    assert runner is not None, "worker used before its initializer ran"
    if isinstance(unit, _ChunkUnit):
        return unit.position, unit.index, runner.run_part(unit.cell, [unit.index])
    out = []
    for position, cell in unit.cells:
        runner._group(cell).refs.update(unit.refs)
        out.append((position, runner.run(cell)))
    return out


def _crashed(cell: CellSpec) -> str:
    return (
        "the worker process running it died (a crash in the implementation or its framework:"
        f" a segfault or abort); run it alone to see it: {cell.repro()}"
    )


@dataclass
class _Plan:
    cells: Sequence[CellSpec]
    units: list[_Unit]
    chunks: dict[int, int] = field(default_factory=dict)  # streamed cell position -> chunk count


def _plan(cells: Sequence[CellSpec], runner: Runner) -> _Plan:
    """Units of work, the most expensive first (so no worker is left with a big one at
    the end); cost is elements times cells."""
    plan = _Plan(cells, [])
    groups: dict[Any, list[tuple[int, CellSpec]]] = {}
    for pos, cell in enumerate(cells):
        group = runner._group(cell)
        if group.inputs.streamed:
            n = runner.batch_count(cell)
            plan.chunks[pos] = n
            chunk = group.inputs.n_inputs // max(n, 1)
            plan.units.extend(_ChunkUnit(pos, cell, i, chunk) for i in range(n))
        else:
            groups.setdefault((cell.oracle, cell.dtype, cell.inputs, cell.params), []).append((pos, cell))
    for members in groups.values():
        group = runner._group(members[0][1])
        size = group.inputs.n_inputs
        plan.units.append(_GroupUnit(tuple(members), dict(group.refs), size * len(members)))
    plan.units.sort(key=lambda u: -u.cost)
    return plan


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

    pending = list(plan.units)
    pending.reverse()  # pop() from the end takes the most expensive first
    suspects: list[_Unit] = []
    context = multiprocessing.get_context("spawn")
    while pending or suspects:
        if suspects:
            # alone in a fresh worker: the unit that kills it again is the culprit
            unit = suspects.pop()
            with ProcessPoolExecutor(1, mp_context=context, initializer=_init_worker, initargs=(setup,)) as solo:
                try:
                    take(unit, solo.submit(_work, unit).result())
                except BrokenProcessPool:
                    crash(unit)
            continue
        pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(setup,))
        flight: dict[Future[Any], _Unit] = {}
        try:
            while pending or flight:
                while pending and len(flight) < jobs:
                    unit = pending.pop()
                    if wanted(unit):
                        flight[pool.submit(_work, unit)] = unit
                if not flight:
                    break
                done, _ = wait(flight, return_when=FIRST_COMPLETED)
                broken = False
                for fut in done:
                    unit = flight.pop(fut)
                    try:
                        take(unit, fut.result())
                    except BrokenProcessPool:
                        suspects.append(unit)
                        broken = True
                if broken:
                    suspects.extend(flight.values())
                    flight.clear()
                    break
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    out = [r for r in results if r is not None]
    if len(out) != len(cells):  # pragma: no cover - every unit ends in a result or a crash
        missing = [c.id for c, r in zip(cells, results, strict=True) if r is None]
        raise RuntimeError(f"parallel run lost cells: {missing[:3]}")
    return out
