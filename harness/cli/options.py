"""Options shared by the commands that run cells, and the checks every command makes of
its paths before it does any work (:func:`check_outputs`, :func:`check_cache_dir`)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.cli.session import ExecOptions
from harness.execution.cluster import check_executor
from harness.frameworks.adapters import use_jax_compilation_cache
from harness.plan.cells import CellSpec
from harness.plan.executor import ExecutorSpec, choose_executor
from harness.plan.inputs import parse_inputs
from harness.record.outputs import Input, Output, check_outputs
from oracles.cache import ENV_VAR, default_cache_dir
from oracles.errors import UsageError
from reports.labels import METRICS

__all__ = [
    "JAX_CACHE_SUBDIR",
    "METRIC_CHOICES",
    "Input",
    "Output",
    "add_display_options",
    "add_exec_options",
    "cell_inputs",
    "check_cache_dir",
    "check_exec_outputs",
    "check_outputs",
    "exec_options",
    "parse_params",
]

#: JAX's persistent compilation cache lives here inside the oracle cache directory (one of
#: harness.cli.commands.cache.OWNED_SUBDIRS, so ``fpharness cache clear`` empties it too)
JAX_CACHE_SUBDIR = "jax"

#: the values of ``--metric``
METRIC_CHOICES = tuple(METRICS)


def add_exec_options(p: argparse.ArgumentParser, *, default_json: str | None = None) -> None:
    p.add_argument("--json", metavar="PATH", default=default_json, help="write results (schema 4) here")
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report here")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                   help="processes for oracle evaluation and for running cells (default: all cores);"
                   " results are identical for any N")
    p.add_argument("--executor", metavar="EXEC",
                   help="where cells run: local (default: -j N processes here), ray (a Ray instance started here),"
                   " ray:auto (the cluster this machine belongs to) or ray:ADDRESS; also $FPHARNESS_EXECUTOR or a"
                   " suite's executor key; results are identical (docs/cluster.md)")
    p.add_argument("--cache-dir", metavar="DIR", help="oracle cache directory, with JAX's compilation cache in DIR/jax"
                   " (default: $FPHARNESS_CACHE_DIR or ~/.cache/fpharness)")
    p.add_argument("--no-cache", action="store_true", help="compute every reference afresh (and compile JAX afresh)")
    p.add_argument("--reuse-results", action="store_true",
                   help="read back the results of cells unchanged since an earlier run (same implementation"
                   " source, framework versions, inputs, machine; see harness.record.reuse) instead of running them;"
                   " for iterating on your own code, not for nightly runs")
    p.add_argument("-q", "--quiet", action="store_true", help="no tables, no progress bar")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_display_options(p)


def add_display_options(p: argparse.ArgumentParser, *, details: bool = True) -> None:
    """``--metric`` (what the terminal table and the HTML matrix show) and, for commands
    that print results, ``--details``/``-v``."""
    p.add_argument("--metric", choices=METRIC_CHOICES, default="ulp",
                   help="the error the terminal table and the HTML matrix show: ulp (default), bits of error,"
                   " abs or rel error; the results file always has all of them")
    if details:
        p.add_argument("-v", "--details", action="store_true", default=None,
                       help="a table row per input set, and under each failing cell the inputs that break its budget"
                       " and the command that reproduces it (default: on for at most 12 cells)")


def exec_options(args: argparse.Namespace, suite_executor: ExecutorSpec | None = None) -> ExecOptions:
    """The options of ``args``. Also asks for JAX's compilation cache in ``jax/`` of the cache
    directory (not with ``--no-cache``): the commands own their process, and JAX has to be told
    before it first loads (see harness.frameworks.adapters.use_jax_compilation_cache).

    Raises :class:`UsageError` for ``--jobs`` below 1, ``--reuse-results`` with
    ``--no-cache``, and a cache directory that is a file or lies under one
    (:func:`check_cache_dir`): without this check the run went on silently without a cache,
    and for an executor that is not one (``--executor``, else $FPHARNESS_EXECUTOR, else
    ``suite_executor``: see :func:`harness.plan.executor.choose_executor`)."""
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    executor = choose_executor(getattr(args, "executor", None), suite_executor)
    check_executor(executor)  # Ray installed and reachable: known now, not after the references
    if args.reuse_results and args.no_cache:
        raise UsageError("--reuse-results reads results stored in the cache; it cannot go with --no-cache")
    if args.no_cache:
        use_jax_compilation_cache(None)
    else:
        root = check_cache_dir(args.cache_dir)
        use_jax_compilation_cache(root / JAX_CACHE_SUBDIR)
    return ExecOptions(
        json_path=args.json,
        html_path=args.html,
        quiet=args.quiet,
        progress=False if args.no_progress else None,
        jobs=args.jobs,
        executor=executor,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        reuse_results=args.reuse_results,
        details=getattr(args, "details", None),
        metric=getattr(args, "metric", "ulp"),
    )


def parse_params(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {item!r} must be KEY=VALUE, e.g. beta=2")
        out[key.strip()] = value.strip()
    return out


def check_cache_dir(given: str | None) -> Path:
    """The cache directory ``--cache-dir`` names (None: $FPHARNESS_CACHE_DIR or the per-user
    default), checked: a path that is a file, or lies under a file, is a :class:`UsageError`.
    A missing directory is fine (the cache makes it); one it cannot write only costs speed."""
    root = Path(given).expanduser() if given else default_cache_dir()
    where = f"--cache-dir {given!r}" if given else f"the cache directory {str(root)!r} (from ${ENV_VAR} or the default)"
    probe = root
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if os.path.lexists(probe) and not probe.is_dir():
        what = "it is a file" if probe == root else f"it lies under the file {str(probe)!r}"
        raise UsageError(f"{where} is not a directory ({what}); give a directory, e.g. --cache-dir fpharness-cache,"
                         " or run without a cache: --no-cache")
    return root


def cell_inputs(cells: Iterable[CellSpec]) -> list[Input]:
    """The files ``cells`` read: npy/npz input files and custom implementations' sources,
    each once, named as the user wrote them."""
    found: dict[str, Input] = {}
    for cell in cells:
        spec = parse_inputs(cell.inputs)
        if spec.kind in ("npy", "npz") and spec.path not in found:
            found[spec.path] = Input(f"the input file of --inputs {spec.text}", spec.path)
        target = cell.impl.rsplit(":", 1)[0]
        if cell.custom and target.endswith(".py") and target not in found:
            found[target] = Input(f"the source of the implementation {cell.impl}", target)
    return list(found.values())


def check_exec_outputs(options: ExecOptions, cells: Sequence[CellSpec], inputs: Sequence[Input] = ()) -> None:
    """Check ``--json`` and ``--html`` of ``check``/``run`` against the files the cells read and
    ``inputs`` (the suite file, the history database), before any cell runs; see
    :func:`harness.record.outputs.check_outputs` for what is refused."""
    check_outputs(
        [Output("--json", options.json_path, "results.json") if options.json_path else None,
         Output("--html", options.html_path, "report.html") if options.html_path else None],
        [*inputs, *cell_inputs(cells)],
    )
