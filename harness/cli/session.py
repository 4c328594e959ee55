"""The shared back half of ``fpharness check`` and ``fpharness run``: run the cells (reading
back unchanged ones when asked), keep their results, write the requested files, show them.

:func:`run_session` runs and returns data; :func:`write_outputs` and :func:`show` are the
views, so a caller that only wants the :class:`Results` (the history) never prints.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.execution.progress import Progress
from harness.execution.references import reference_function
from harness.execution.runner import Runner
from harness.execution.schedule import run_cells
from harness.execution.units import WorkerSetup
from harness.plan.cells import CellResult, CellSpec
from harness.plan.executor import LOCAL, ExecutorSpec
from harness.plan.inputs import parse_inputs
from harness.record.results import Results, now, run_info
from harness.record.reuse import ResultStore
from oracles.cache import default_cache_dir, make_cache_dir
from oracles.errors import UsageError
from reports.html import write_html
from reports.terminal import print_results

__all__ = ["DETAILS_UP_TO", "ExecOptions", "Session", "execute", "run_session", "show", "write_outputs"]

#: without ``--details``, the terminal shows every input set and the failing inputs of each
#: failing cell only for runs of at most this many cells (one ``check``); larger runs get
#: the per-implementation tables and the findings summary
DETAILS_UP_TO = 12


@dataclass(frozen=True, slots=True)
class ExecOptions:
    """How to execute: where results go, parallelism and caching, verbosity."""

    json_path: str | None = None
    html_path: str | None = None
    quiet: bool = False
    progress: bool | None = None
    jobs: int = 1
    #: where the cells run: local worker processes, or a Ray cluster (harness.plan.executor)
    executor: ExecutorSpec = LOCAL
    cache_dir: str | None = None
    use_cache: bool = True
    #: read unchanged cells' results from earlier runs (harness.record.reuse); results are
    #: stored whenever the cache is on, so that a later run can reuse them
    reuse_results: bool = False
    #: the terminal view: a row per input set and the failing inputs under each failing cell
    #: (None: only when there are at most DETAILS_UP_TO cells, as for one ``check``)
    details: bool | None = None
    #: what the terminal table and the HTML matrix show (reports.labels.METRICS)
    metric: str = "ulp"


@dataclass(frozen=True, slots=True)
class Session:
    """What a run produced: its results, and how many cells were read back, not run."""

    results: Results
    reused: int = 0


def run_session(
    cells: Sequence[CellSpec],
    options: ExecOptions,
    argv: Sequence[str] | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
) -> Session:
    """Run ``cells`` and collect their :class:`Results`; prints nothing but the progress bar
    (on stderr). ``extra`` is added to the run metadata (e.g. the suite name and the shard)."""
    started = now()
    progress = Progress("cells", enabled=None if options.progress is None else options.progress)
    if options.quiet:
        progress.enabled = False
    runner = Runner(progress=progress, reference=reference_function(
        cache_dir=options.cache_dir, use_cache=options.use_cache, jobs=options.jobs))
    setup = WorkerSetup(k_worst=runner.k_worst, plain=False, cache_dir=options.cache_dir, use_cache=options.use_cache)
    store = ResultStore(options.cache_dir or default_cache_dir(), runner.k_worst) if options.use_cache else None
    if options.use_cache:
        # made (and tagged CACHEDIR.TAG) here, before a worker or JAX can make it untagged
        # on the way to a subdirectory; a cache that cannot be made only costs speed
        with contextlib.suppress(OSError):
            make_cache_dir(Path(options.cache_dir).expanduser() if options.cache_dir else default_cache_dir())
    found: dict[int, CellResult] = {}
    todo = list(range(len(cells)))
    keys: list[str | None] = [None] * len(cells)
    if store is not None:
        keys = store.fingerprints(cells)  # before running: see ResultStore.put
        if options.reuse_results:
            found, todo = store.split(cells, keys)
    ran = iter(run_cells([cells[i] for i in todo], runner=runner, jobs=options.jobs, setup=setup,
                         executor=options.executor))
    results: list[CellResult] = [found[i] if i in found else next(ran) for i in range(len(cells))]
    if store is not None:
        for i in todo:
            with contextlib.suppress(OSError):  # a full disk must not lose the run's results
                store.put(results[i], keys[i])
    seeds = sorted({s for s in map(_seed, (c.inputs for c in cells)) if s is not None})
    command = " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv))
    info = run_info(started, {c.framework for c in cells}, seeds=seeds, command=command,
                    known=runner.framework_info)
    if options.executor.is_ray:
        extra = {**(extra or {}), "executor": options.executor.id}
    if extra:
        info = replace(info, extra={**info.extra, **extra})
    return Session(Results(info, tuple(results)), reused=len(found))


def write_outputs(session: Session, options: ExecOptions) -> None:
    """Write the results file and the HTML report that ``options`` asks for. The paths were
    checked before the run (harness.cli.options.check_exec_outputs); a write that fails all
    the same (the disk filled up, the directory went away) is a one-line
    :class:`UsageError` naming the file, not a traceback."""
    for option, path, write in (
        ("--json", options.json_path, lambda p: session.results.write(p)),
        ("--html", options.html_path, lambda p: write_html([session.results], Path(p), metric=options.metric)),
    ):
        if not path:
            continue
        try:
            write(path)
        except OSError as exc:
            raise UsageError(f"{option} {path!r}: cannot write it ({exc.strerror or exc}); the run's results"
                             " are in the table above") from None


def show(session: Session, options: ExecOptions) -> None:
    """The terminal view: the tables, then where the files went (nothing with ``quiet``)."""
    if options.quiet:
        return
    results = session.results.cells
    details = options.details if options.details is not None else len(results) <= DETAILS_UP_TO
    print_results([c.to_json() for c in results], details=details, metric=options.metric)
    if session.reused:
        print(f"reused {session.reused} of {len(results)} cell results from earlier runs (--reuse-results)")
    if options.json_path:
        print(f"results: {options.json_path}")
    if options.html_path:
        print(f"report: {options.html_path}")


def execute(
    cells: Sequence[CellSpec],
    options: ExecOptions,
    argv: Sequence[str] | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
) -> Results:
    """Run, write and show: what ``check`` and ``run`` do. Returns the :class:`Results`
    (their ``exit_code`` is the command's)."""
    session = run_session(cells, options, argv, extra=extra)
    try:
        write_outputs(session, options)
    except UsageError:
        show(session, replace(options, json_path=None, html_path=None))  # the results, at least on screen
        raise
    show(session, options)
    return session.results


def _seed(spec: str) -> int | None:
    parsed = parse_inputs(spec, check_file=False)  # checked before the run; it may be gone now
    return parsed.seed if parsed.kind in ("random", "normal", "uniform") else None
