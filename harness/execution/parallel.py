"""Cells across worker processes (``-j N``), with results identical to a serial run.

The parent computes every reference first (:func:`harness.execution.schedule.run_cells`),
then hands out the units of :mod:`.units` (a reference group's cells of one framework, or
one chunk of a streamed cell) to its lanes, and the :class:`~.units.Collector` turns the
answers into results in plan order, equal to a serial run's (see :mod:`.units` for why).
Frameworks keep their default settings in every worker, as in a serial run (a thread count
changed for "fairness" could change the summation order of a reduction).

Workers are *spawned*, never forked: the parent may have TensorFlow or JAX loaded with
their thread pools running, and forking that can deadlock. Each lane is one worker process
(measured on the frameworks suite: a shared queue made the cached re-run slower at -j 2
than serially). A worker runs one unit at a time, so when it dies (an implementation that
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
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Any

from harness.execution.isolation import sigint_ignored
from harness.execution.progress import Progress
from harness.execution.runner import Runner
from harness.execution.units import (
    Collector,
    GroupUnit,
    Lanes,
    Unit,
    WorkerSetup,
    oracle_sources,
    plan_units,
    work,
    worker_runner,
)
from harness.plan.cells import CellResult, CellSpec
from oracles.lifetime import die_with_parent

__all__ = ["WorkerSetup", "WorkersUnavailable", "run_parallel"]

_WORKER: Runner | None = None


def _init_worker(setup: WorkerSetup, parent: int) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited already; also when started elsewhere
    die_with_parent(parent)
    _WORKER = worker_runner(setup)


def _work(unit: Unit) -> tuple[Any, tuple[str, tuple[str | None, dict[str, str]]]]:
    assert _WORKER is not None, "worker used before its initializer ran"
    return work(_WORKER, unit)


class WorkersUnavailable(Exception):
    """Worker processes cannot be started here; the caller runs the cells itself."""


def _ping() -> bool:
    return True


@dataclass
class _Lane:
    """One worker process and the unit it runs."""

    pool: ProcessPoolExecutor | None = None
    future: Future[Any] | None = None
    unit: Unit | None = None


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
    setup = replace(setup, oracle_sources=oracle_sources(cells))
    plan = plan_units(cells, runner)
    collector = Collector(cells, runner, plan, on_result=on_result, progress=progress)
    queues = Lanes(plan.units, ["cpu"] * jobs, collector.wanted)
    lanes = [_Lane() for _ in range(jobs)]
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

    def submit(lane: _Lane, unit: Unit) -> Future[Any]:
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

    try:
        while True:
            for i, lane in enumerate(lanes):
                if lane.future is None:
                    unit = queues.next_unit(i)
                    if unit is not None:
                        lane.future, lane.unit = submit(lane, unit), unit
            running = {lane.future: i for i, lane in enumerate(lanes) if lane.future is not None}
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                i = running[fut]
                lane = lanes[i]
                unit = lane.unit
                assert unit is not None
                lane.future = lane.unit = None
                try:
                    value, (framework, about) = fut.result()
                    runner.framework_info[framework] = about
                    collector.take(unit, value)
                except BrokenProcessPool:
                    # one unit in flight per worker: this one killed it
                    assert lane.pool is not None
                    lane.pool.shutdown(wait=True, cancel_futures=True)
                    lane.pool = None
                    if isinstance(unit, GroupUnit) and len(unit.cells) > 1:
                        queues.requeue(i, unit.split())  # which cell was it? each of them alone, next
                    else:
                        collector.crash(unit)
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
    return collector.finished()
