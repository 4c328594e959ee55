"""Cells on a Ray cluster (``--executor ray[:ADDRESS]``), with results identical to ``-j 1``.

The same units as the local executor (:mod:`.units`: a reference group's cells of one
framework, or one 4M-input chunk of a streamed exhaustive cell) go to Ray *actors*, one per
lane: an actor keeps its frameworks imported and its JAX traces, and each framework's
group units go to one actor, as each goes to one process under ``-j``. Streamed chunks go
to any actor of their kind. Lanes are as many as the cluster has CPUs (for a Ray instance
this run starts: ``-j``, default all cores); cuda cells go to actors that each ask Ray for
one GPU (and no CPU), where the cluster has GPUs, and CPU cells never occupy those.

References: the driver computes every reference group's references (with its own oracle
cache) and ships them with the units; a chunk's reference is computed by the actor that
runs it (the fast tier). Workers therefore need no shared cache directory. They do need
the same fpharness installed, and custom implementation files at the same paths (a shared
volume or the same image), since a cell names its implementation by path.

Faults: an actor that dies (its process killed, its node lost) is restarted by Ray, and
the unit it was running is retried on it (:data:`RETRIES` times); a unit whose answer was
lost with its node after it ran is run again. An actor that cannot start at all (a file
of the plan missing on its node) stops the run with one line. A unit that kills its
actor every time is a crash: a group unit is split into its cells, each retried alone, and
the cell that still kills its actor becomes an error cell; the run goes on. Ctrl-C cancels
the tasks in flight by killing the actors and stops a Ray instance this run started; the CLI
then writes nothing (results are written only at the end).

The threads: Ray sets ``OMP_NUM_THREADS=1`` in its workers, which would change torch's
CPU thread count and with it the summation order of some reductions; each actor restores
the driver's setting before every unit, so before torch, TensorFlow or JAX loads (lazily,
in the first unit of their cells), and results equal ``-j 1``'s. (numpy is loaded with
the actor; its functions under test use no threads.)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.execution.progress import Progress
from harness.execution.runner import Runner
from harness.execution.units import (
    Collector,
    GroupUnit,
    Lanes,
    Unit,
    WorkerSetup,
    crashed,
    oracle_sources,
    plan_units,
    unit_kind,
    work,
    worker_runner,
)
from harness.plan.cells import CellResult, CellSpec
from harness.plan.executor import ExecutorSpec
from oracles.errors import UsageError, one_line

__all__ = ["RETRIES", "check_executor", "run_on_ray"]

#: times Ray reruns a unit whose actor died before the unit counts as a crash
RETRIES = 2
_THREADS = "OMP_NUM_THREADS"


@dataclass(frozen=True, slots=True)
class _ActorSetup:
    worker: WorkerSetup
    threads: str | None  # the driver's OMP_NUM_THREADS (None: unset)


class _Worker:
    """One lane: a Runner that lives as long as the actor (frameworks imported once)."""

    def __init__(self, setup: _ActorSetup) -> None:
        self.threads = setup.threads
        self._restore_threads()
        self.runner = worker_runner(setup.worker)

    def _restore_threads(self) -> None:
        # before every unit, not only at start: some Ray versions set the variable again
        # around each actor call, and a framework loads lazily inside the first unit of its
        # cells
        if self.threads is None:
            os.environ.pop(_THREADS, None)
        else:
            os.environ[_THREADS] = self.threads

    def work(self, unit: Unit) -> tuple[Any, tuple[str, tuple[str | None, dict[str, str]]]]:
        self._restore_threads()
        return work(self.runner, unit)

    def pid(self) -> int:
        return os.getpid()


def check_executor(spec: ExecutorSpec) -> None:
    """What can be known about a Ray executor before any work: Ray is installed, and
    something listens at its address. Raises a one-line :class:`UsageError` otherwise."""
    if spec.is_ray:
        _import_ray()
        if spec.address is not None:
            _reachable(spec)


def _import_ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no prompt, no message
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray, which is not installed; install it with"
                         " pip install 'fpharness[ray]', or run with -j N (the local executor)") from None
    return ray


@functools.lru_cache(maxsize=1)
def _actor_class() -> Any:
    return _import_ray().remote(_Worker)


def _connect(ray: Any, spec: ExecutorSpec, jobs: int) -> bool:
    """Start or join Ray; True when this run did (and must shut it down), False when the
    process was connected already (a test's, or a user's, ``ray.init``)."""
    if spec.address is not None:
        _reachable(spec)
    if ray.is_initialized():
        return False
    common: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if spec.address is None:
            ray.init(address="local", num_cpus=jobs, include_dashboard=False, **common)
        else:
            ray.init(address=spec.address, **common)
    except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError
        where = "start a Ray instance on this machine" if spec.address is None else f"join the Ray cluster at {spec.address!r}"
        raise UsageError(f"--executor {spec.id}: could not {where} ({one_line(exc)}); check that the cluster is"
                         " up (ray status) or run with -j N (the local executor)") from None
    return True


def _reachable(spec: ExecutorSpec, timeout: float = 5.0) -> None:
    """Fail in seconds, with one line, where nothing listens at the address: ray.init
    retries an unreachable one for minutes, logging as it goes."""
    address = spec.address or ""
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UsageError(f"--executor {spec.id}: nothing answers at {host}:{port} ({exc.strerror or exc}); give the"
                         " address of a running Ray head (ray status shows it), ray:auto on a node of the cluster,"
                         " or run with -j N (the local executor)") from None


def _lanes(ray: Any, units: Sequence[Unit], jobs: int, spec: ExecutorSpec) -> list[str]:
    """Each lane's kind: a GPU lane per GPU of the cluster (at most one per cuda unit) and a
    CPU lane per CPU (at most one per CPU unit; at least one where there is no GPU lane).
    A GPU lane's actor asks Ray for its GPU and no CPU, so that it can always be placed
    beside the CPU lanes: driving a GPU keeps a core only partly busy."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    if spec.address is None:
        cpus = min(cpus, jobs)
    n_gpu = min(gpus, sum(unit_kind(u) == "gpu" for u in units))
    n_cpu = min(max(cpus, 1), sum(unit_kind(u) == "cpu" for u in units))
    if not n_gpu:
        n_cpu = max(n_cpu, 1)  # the cuda units, if any, run (and skip) on CPU lanes
    return ["gpu"] * n_gpu + ["cpu"] * n_cpu


def _merge_about(runner: Runner, framework: str, about: tuple[str | None, dict[str, str]]) -> None:
    """Keep every device the actors saw: a CPU lane's actor is not shown the cluster's
    GPUs, so the last answer alone could deny the GPU that the cuda cells ran on."""
    version, devices = about
    known = runner.framework_info.get(framework)
    if known is not None and known[0] == version and "error" not in devices:
        devices = {**known[1], **devices}
    runner.framework_info[framework] = (version, devices)


def run_on_ray(
    cells: Sequence[CellSpec],
    runner: Runner,
    spec: ExecutorSpec,
    jobs: int,
    setup: WorkerSetup,
    *,
    on_result: Callable[[CellResult], None] | None = None,
    progress: Progress | None = None,
) -> list[CellResult]:
    """Run ``cells`` (whose references ``runner`` has prepared) on the Ray cluster ``spec``
    names; returns the results in plan order, equal to a serial run's, as
    :func:`harness.execution.schedule.run_cells` does. ``jobs``: the CPUs of a Ray instance
    this run starts. Raises :class:`UsageError` when Ray is missing or unreachable."""
    ray = _import_ray()
    # workers compute no cached reference (group references travel with their units), so
    # they need no cache directory: one on the driver's disk may not exist on a node
    setup = replace(setup, oracle_sources=oracle_sources(cells), k_worst=runner.k_worst, plain=True)
    plan = plan_units(cells, runner)
    collector = Collector(cells, runner, plan, on_result=on_result, progress=progress)
    started = _connect(ray, spec, jobs)
    actors: list[Any] = []
    in_flight: dict[Any, tuple[int, Unit]] = {}
    try:
        kinds = _lanes(ray, plan.units, jobs, spec)
        queues = Lanes(plan.units, kinds, collector.wanted)
        actor_setup = _ActorSetup(setup, os.environ.get(_THREADS))
        actors = [
            _actor_class().options(num_cpus=0 if kind == "gpu" else 1, num_gpus=1 if kind == "gpu" else 0,
                                   max_restarts=-1, max_task_retries=RETRIES).remote(actor_setup)
            for kind in kinds
        ]
        total, done = len(plan.units), 0
        lost: dict[int, int] = {}  # units whose answers were lost, and how often

        def fill(lane: int) -> None:
            unit = queues.next_unit(lane)
            if unit is not None:
                in_flight[actors[lane].work.remote(unit)] = (lane, unit)

        for lane in range(len(actors)):
            fill(lane)
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                lane, unit = in_flight.pop(ref)
                try:
                    value, (framework, about) = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    if getattr(exc, "actor_init_failed", False):
                        # the worker cannot even start (a file of the plan missing on its
                        # node, another fpharness there): no cell is to blame
                        raise UsageError(f"--executor {spec.id}: a worker could not start ({one_line(exc)}); the"
                                         " nodes need the same fpharness, frameworks and the plan's files at the"
                                         " same paths (docs/cluster.md)") from None
                    # Ray reran it RETRIES times on a restarted actor: this unit kills it
                    if isinstance(unit, GroupUnit) and len(unit.cells) > 1:
                        queues.requeue(lane, unit.split())  # which cell was it? each alone, next
                        total += len(unit.cells) - 1
                    else:
                        collector.crash(unit, lambda c: crashed(c, f"died {RETRIES + 1} times in a row"))
                        done += 1
                except ray.exceptions.ObjectLostError:
                    # the answer was lost with its node after the unit ran: run it again
                    lost[id(unit)] = lost.get(id(unit), 0) + 1
                    if lost[id(unit)] > RETRIES:
                        raise
                    queues.requeue(lane, [unit])
                except ray.exceptions.RayTaskError as exc:
                    raise exc.as_instanceof_cause() from None  # a bug of ours, as under -j N
                else:
                    _merge_about(runner, framework, about)
                    collector.take(unit, value)
                    done += 1
                if progress:
                    progress.describe(f"ray: {done}/{total} units on {len(actors)} workers")
                fill(lane)
    finally:
        # also on Ctrl-C (or a bug): killing an actor ends the task it runs and drops those
        # queued on it, so nothing more runs
        for actor in actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        if started:
            ray.shutdown()
    return collector.finished()
