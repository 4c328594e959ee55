"""Options shared by the commands that run cells."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from harness.cli.session import ExecOptions
from harness.frameworks.adapters import use_jax_compilation_cache
from oracles.cache import default_cache_dir
from oracles.errors import UsageError

#: JAX's persistent compilation cache lives here inside the oracle cache directory (one of
#: harness.cli.commands.cache.OWNED_SUBDIRS, so ``fpharness cache clear`` empties it too)
JAX_CACHE_SUBDIR = "jax"


def add_exec_options(p: argparse.ArgumentParser, *, default_json: str | None = None) -> None:
    p.add_argument("--json", metavar="PATH", default=default_json, help="write results (schema 1) here")
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report here")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                   help="processes for oracle evaluation and for running cells (default: all cores);"
                   " results are identical for any N")
    p.add_argument("--cache-dir", metavar="DIR", help="oracle cache directory, with JAX's compilation cache in DIR/jax"
                   " (default: $FPHARNESS_CACHE_DIR or ~/.cache/fpharness)")
    p.add_argument("--no-cache", action="store_true", help="compute every reference afresh (and compile JAX afresh)")
    p.add_argument("--reuse-results", action="store_true",
                   help="read back the results of cells unchanged since an earlier run (same implementation"
                   " source, framework versions, inputs, machine; see harness.record.reuse) instead of running them;"
                   " for iterating on your own code, not for nightly runs")
    p.add_argument("-q", "--quiet", action="store_true", help="no tables, no progress bar")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def exec_options(args: argparse.Namespace) -> ExecOptions:
    """The options of ``args``. Also asks for JAX's compilation cache in ``jax/`` of the cache
    directory (not with ``--no-cache``): the commands own their process, and JAX has to be told
    before it first loads (see harness.frameworks.adapters.use_jax_compilation_cache)."""
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    if args.reuse_results and args.no_cache:
        raise UsageError("--reuse-results reads results stored in the cache; it cannot go with --no-cache")
    if args.no_cache:
        use_jax_compilation_cache(None)
    else:
        root = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
        use_jax_compilation_cache(root / JAX_CACHE_SUBDIR)
    return ExecOptions(
        json_path=args.json,
        html_path=args.html,
        quiet=args.quiet,
        progress=False if args.no_progress else None,
        jobs=args.jobs,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        reuse_results=args.reuse_results,
    )


def parse_params(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {item!r} must be KEY=VALUE, e.g. beta=2")
        out[key.strip()] = value.strip()
    return out
