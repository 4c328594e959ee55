"""Run a plan of cells: references first, then the cells, serially or in worker processes.

The one entry point for running cells (the CLI, the plugin and the benchmarks call it);
:mod:`.runner` runs a group in this process and :mod:`.parallel` spreads groups over
spawned workers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from harness.execution.cluster import run_on_ray
from harness.execution.parallel import WorkersUnavailable, run_parallel
from harness.execution.runner import Runner
from harness.execution.units import WorkerSetup
from harness.plan.cells import CellResult, CellSpec
from harness.plan.executor import LOCAL, ExecutorSpec
from oracles.errors import UsageError

__all__ = ["run_cells"]


def _worth_splitting(cells: Sequence[CellSpec], runner: Runner) -> bool:
    """More than one unit of work (a reference group, or a streamed cell's chunks): for a
    single group, starting worker processes costs more than it could save."""
    groups = {c.group for c in cells}
    return len(groups) > 1 or any(runner._group(c).inputs.streamed for c in cells)



def run_cells(
    cells: Sequence[CellSpec],
    *,
    runner: Runner | None = None,
    on_result: Callable[[CellResult], None] | None = None,
    jobs: int = 1,
    setup: WorkerSetup | None = None,
    executor: ExecutorSpec = LOCAL,
) -> list[CellResult]:
    """Validate the plan, compute every group's references, then run every cell.

    References come first for the whole plan: oracle evaluation forks worker processes,
    and forking after TensorFlow or JAX has started its threads can deadlock. With
    ``jobs > 1`` the cells then run in that many spawned processes
    (:mod:`harness.execution.parallel`, which ``setup`` configures); results and ``on_result`` calls
    come in plan order and equal a serial run's. Implementations held in memory
    (``runner.extra_impls``) cannot cross a process boundary: those plans run serially.
    ``executor`` a Ray one (:mod:`harness.execution.cluster`): the cells run on that cluster
    instead, results again equal to a serial run's.
    Custom implementations run in the runner's isolated process
    (:mod:`harness.execution.isolation`), which is stopped when this returns.
    """
    runner = runner or Runner()
    try:
        return _run_cells(cells, runner, on_result, jobs, setup, executor)
    finally:
        runner.close()  # the isolated process of custom implementations (Ctrl-C included)


def _run_cells(
    cells: Sequence[CellSpec],
    runner: Runner,
    on_result: Callable[[CellResult], None] | None,
    jobs: int,
    setup: WorkerSetup | None,
    executor: ExecutorSpec,
) -> list[CellResult]:
    runner.validate(cells)
    progress = runner.progress
    results: list[CellResult] = []
    # one cell per group computes its references; consistency cells evaluate no oracle
    firsts = list({c.group: c for c in reversed(cells) if not c.check}.values())[::-1]
    on_ray = executor.is_ray and not runner.extra_impls and bool(cells)
    parallel = on_ray or (jobs > 1 and not runner.extra_impls and _worth_splitting(cells, runner))
    if progress:
        progress.label = "references"
        progress.start(total=len(firsts))
    try:
        for cell in firsts:
            if progress:
                progress.describe(f"{cell.subject} {cell.dtype} {cell.inputs}")
            try:
                runner.prepare(cell, baselines=not parallel)
            except UsageError:
                raise
            except Exception:  # noqa: BLE001 - the cell itself reports it when it runs
                pass
            if progress:
                progress.advance()
    finally:
        if progress:
            progress.stop()
    if progress:
        progress.label = "cells"
        progress.start(total=len(cells))
    try:
        if on_ray:
            runner.close()
            return run_on_ray(cells, runner, executor, jobs, setup or WorkerSetup(k_worst=runner.k_worst),
                              on_result=on_result, progress=progress)
        if parallel:
            runner.close()  # validating imported custom implementations here; workers have their own
            try:
                return run_parallel(cells, runner, jobs, setup or WorkerSetup(k_worst=runner.k_worst),
                                    on_result=on_result, progress=progress)
            except WorkersUnavailable as exc:  # raised before any cell ran
                print(f"fpharness: {exc}", file=sys.stderr)
        for cell in cells:
            if progress:
                progress.describe(cell.id)
            result = runner.run(cell)
            results.append(result)
            if on_result:
                on_result(result)
            if progress:
                progress.advance()
    finally:
        if progress:
            progress.stop()
    return results
