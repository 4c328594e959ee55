"""The consistency pass of a suite against its accuracy pass, in one run; the ratio is the
number to compare (issue 16 asks for consistency <= accuracy on suites/frameworks.toml).

Loads the suite, splits its cells into the accuracy cells (forward and gradient) and the
consistency cells, and runs each set through ``harness.cli.session.run_session`` (what
``fpharness run`` does, without writing results), accuracy first, in this process with the
same ``--jobs`` and the same cache directory (``--cache-dir``, default the user's), which
holds the oracle references and JAX's compiled kernels: with a warm cache both passes run
as a re-run of the suite does, and ``--cold`` gives both a fresh temporary cache, as a
first run on a new machine (the consistency pass computes no references, but JAX compiles
for every new shape). Prints both wall times, their ratio, and
where the consistency pass's time goes: cell seconds per framework and per check (with
``-j`` above 1 the cells run in worker processes and their seconds add up across workers).

Usage::

    python benchmarks/bench_consistency.py                      # suites/frameworks.toml, -j 2
    python benchmarks/bench_consistency.py --cold --json /tmp/consistency.json
    python benchmarks/bench_consistency.py --only consistency   # the consistency pass alone
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.cli.options import JAX_CACHE_SUBDIR  # noqa: E402
from harness.cli.session import ExecOptions, run_session  # noqa: E402
from harness.frameworks.adapters import use_jax_compilation_cache  # noqa: E402
from harness.plan.cells import CellResult, CellSpec  # noqa: E402
from harness.plan.suite import load_suite  # noqa: E402
from oracles.cache import default_cache_dir  # noqa: E402


def _pass(cells: list[CellSpec], options: ExecOptions) -> tuple[float, list[CellResult]]:
    t0 = time.perf_counter()
    session = run_session(cells, options)
    return time.perf_counter() - t0, list(session.results.cells)


def _breakdown(results: list[CellResult]) -> dict[str, dict[str, float]]:
    by: dict[str, dict[str, float]] = {"framework": defaultdict(float), "check": defaultdict(float),
                                       "status": defaultdict(float)}
    for r in results:
        by["framework"][r.spec.framework] += r.seconds
        by["check"][r.spec.check] += r.seconds
        by["status"][r.status] += 1
    return {k: dict(sorted(v.items(), key=lambda kv: -kv[1])) for k, v in by.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default=str(ROOT / "suites" / "frameworks.toml"))
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--cache-dir", help="the oracle cache of the accuracy pass (default: the user's)")
    ap.add_argument("--cold", action="store_true", help="the accuracy pass with a fresh, empty oracle cache")
    ap.add_argument("--only", choices=("accuracy", "consistency"), help="run one pass only")
    ap.add_argument("--framework", action="append", help="only these frameworks' cells (repeatable)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    cells = [c for c in load_suite(args.suite).cells if not args.framework or c.framework in args.framework]
    accuracy = [c for c in cells if not c.is_consistency]
    consistency = [c for c in cells if c.is_consistency]
    print(f"{args.suite}: {len(accuracy)} accuracy cells, {len(consistency)} consistency cells, -j {args.jobs}"
          f" ({platform.platform()}, {datetime.now().isoformat(timespec='seconds')})", flush=True)
    out: dict[str, Any] = {"suite": args.suite, "jobs": args.jobs, "accuracy_cells": len(accuracy),
                           "consistency_cells": len(consistency), "machine": platform.platform()}
    with tempfile.TemporaryDirectory() as fresh:
        cache = fresh if args.cold else args.cache_dir
        # as the CLI does (harness.cli.options.exec_options): JAX's compiled kernels are cached too
        use_jax_compilation_cache(Path(cache or default_cache_dir()).expanduser() / JAX_CACHE_SUBDIR)
        base = ExecOptions(quiet=True, jobs=args.jobs, cache_dir=cache, use_cache=True)
        if args.only != "consistency":
            wall, results = _pass(accuracy, base)
            out["accuracy_seconds"] = wall
            out["accuracy"] = _breakdown(results)
            print(f"accuracy pass    {wall:8.1f} s  ({'cold' if args.cold else 'the given'} oracle cache)", flush=True)
        if args.only != "accuracy":
            wall, results = _pass(consistency, base)
            out["consistency_seconds"] = wall
            out["consistency"] = _breakdown(results)
            print(f"consistency pass {wall:8.1f} s", flush=True)
            for key in ("framework", "check"):
                parts = ", ".join(f"{k} {v:.0f} s" for k, v in out["consistency"][key].items())
                print(f"  cell seconds by {key}: {parts}")
            print("  cells: " + ", ".join(f"{int(v)} {k}" for k, v in out["consistency"]["status"].items()))
            slow = sorted(results, key=lambda r: -r.seconds)[:8]
            print("  slowest: " + "; ".join(f"{r.spec.id} {r.seconds:.1f} s" for r in slow))
    if "accuracy_seconds" in out and "consistency_seconds" in out:
        out["ratio"] = out["consistency_seconds"] / out["accuracy_seconds"]
        print(f"consistency / accuracy = {out['ratio']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
