"""The shared back half of ``fpharness check`` and ``fpharness run``: run cells, write the
results atomically, render them, and turn them into an exit code."""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.cells import CellResult, CellSpec
from harness.parallel import WorkerSetup
from harness.progress import Progress
from harness.results import Results, now, run_info
from harness.runner import Runner, run_cells
from oracles.formats import Format
from oracles.reference import Reference
from oracles.registry import Oracle

__all__ = ["ExecOptions", "execute", "execute_results", "reference_function"]


@dataclass(frozen=True, slots=True)
class ExecOptions:
    """How to execute: where results go, parallelism and caching, verbosity."""

    json_path: str | None = None
    html_path: str | None = None
    quiet: bool = False
    progress: bool | None = None
    jobs: int = 1
    cache_dir: str | None = None
    use_cache: bool = True
    #: read unchanged cells' results from earlier runs (harness.reuse); results are stored
    #: whenever the cache is on, so that a later run can reuse them
    reuse_results: bool = False


def reference_function(options: ExecOptions) -> Any:
    """The Runner's reference hook: the on-disk cache and the fast tier when available."""
    try:
        from oracles.cache import ReferenceCache, cached_evaluate
    except ImportError:  # pragma: no cover - the cache module ships with the package
        return None
    cache = ReferenceCache(options.cache_dir) if options.use_cache else None

    def compute(
        oracle: Oracle, arrays: list[Any], fmt: Format, params: dict[str, Any], *, cacheable: bool = True
    ) -> Reference:
        # streamed chunks (exhaustive float32: 120 GB of references) are never cached
        return cached_evaluate(cache if cacheable else None, oracle, arrays, fmt, params, jobs=options.jobs)

    return compute


def execute(cells: Sequence[CellSpec], options: ExecOptions, argv: Sequence[str] | None = None) -> int:
    """Run ``cells`` and report; returns 0 (all within budget), 1 (a cell failed or errored)."""
    return execute_results(cells, options, argv).exit_code


def execute_results(
    cells: Sequence[CellSpec],
    options: ExecOptions,
    argv: Sequence[str] | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
) -> Results:
    """:func:`execute`, returning the :class:`Results` (for recording in the history).
    ``extra`` is added to the run metadata (e.g. the suite name and the shard)."""
    started = now()
    progress = Progress("cells", enabled=None if options.progress is None else options.progress)
    if options.quiet:
        progress.enabled = False
    runner = Runner(progress=progress, reference=reference_function(options))
    setup = WorkerSetup(k_worst=runner.k_worst, plain=False, cache_dir=options.cache_dir, use_cache=options.use_cache)
    store = None
    if options.use_cache:
        from harness.reuse import ResultStore
        from oracles.cache import default_cache_dir

        store = ResultStore(options.cache_dir or default_cache_dir(), runner.k_worst)
    found: dict[int, CellResult] = {}
    todo = list(range(len(cells)))
    keys: list[str | None] = [None] * len(cells)
    if store is not None:
        keys = store.fingerprints(cells)  # before running: see ResultStore.put
        if options.reuse_results:
            found, todo = store.split(cells, keys)
    ran = iter(run_cells([cells[i] for i in todo], runner=runner, jobs=options.jobs, setup=setup))
    results: list[CellResult] = [found[i] if i in found else next(ran) for i in range(len(cells))]
    if store is not None:
        for i in todo:
            with contextlib.suppress(OSError):  # a full disk must not lose the run's results
                store.put(results[i], keys[i])
    seeds = sorted({s for s in map(_seed, (c.inputs for c in cells)) if s is not None})
    command = " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv))
    info = run_info(started, {c.framework for c in cells}, seeds=seeds, command=command,
                    known=runner.framework_info)
    if extra:
        info = replace(info, extra={**info.extra, **extra})
    res = Results(info, tuple(results))
    if options.json_path:
        res.write(options.json_path)
    if options.html_path:
        from reports.html import write_html

        write_html([res], Path(options.html_path))
    if not options.quiet:
        from reports.terminal import print_results

        print_results([c.to_json() for c in results])
        if found:
            print(f"reused {len(found)} of {len(cells)} cell results from earlier runs (--reuse-results)")
        if options.json_path:
            print(f"results: {options.json_path}")
        if options.html_path:
            print(f"report: {options.html_path}")
    return res


def _seed(spec: str) -> int | None:
    from harness.inputs import parse_inputs

    parsed = parse_inputs(spec)
    return parsed.seed if parsed.kind in ("random", "normal", "uniform") else None
