"""Cold run against cached re-run of a suite, in one run; the ratio is the number to compare.

Runs ``fpharness run SUITE --json ...`` twice as subprocesses with a fresh temporary cache
directory: cold (no references, no JAX executables on disk), then warm (both cached). Prints
both wall times and their ratio, then where the warm run's time goes, from its results file:
per framework, the cells' seconds and the part spent inside the implementation calls
(``impl_seconds``: the framework computing, JAX compiling included); the rest of a cell is
moving inputs in, judging, the error profile and the first-use import of the framework.
What is outside the cells (process start and imports, the reference phase, writing and
printing the results) is ``wall - sum(cell seconds)``, split at the run's start and finish
timestamps (whole seconds).

With ``-j N`` above 1 (fpharness's default is every core) the cells run in worker processes:
their seconds then add up across the workers and exceed the wall time they took; ``-j 1``
gives a serial run whose parts add up to its wall time.

``--profile DIR`` adds a third, warm run under cProfile (``DIR/warm.pstats``) and reports the
cumulative time of the harness's phases from it. cProfile sees the main thread of the main
process only: implementations run in a thread (for the timeout), so their time shows as the
wait in ``_call_with_timeout``, and with ``-j N`` the cells run in workers it does not see at
all (profile with ``-j 1``). The import cost of the harness and each framework is measured
in fresh interpreters.

Usage::

    python benchmarks/bench_rerun.py                               # suites/frameworks.toml
    python benchmarks/bench_rerun.py --suite suites/seeds.toml --json /tmp/rerun.json
    python benchmarks/bench_rerun.py --profile /tmp/prof           # + phases of a warm run
    python benchmarks/bench_rerun.py --no-jax-cache                # JAX compiles every time
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]

#: (label, function name, file suffix) of the phases read from a warm run's profile; the
#: cumulative time of each (nested phases are included in their parents)
PHASES: tuple[tuple[str, str, str], ...] = (
    ("run_cells (references + cells)", "run_cells", "harness/execution/schedule.py"),
    ("  references (Runner.prepare)", "prepare", "harness/execution/runner.py"),
    ("  cells (Runner.run)", "run", "harness/execution/runner.py"),
    ("    implementation calls (thread wait)", "_call_with_timeout", "harness/execution/runner.py"),
    ("    inputs to the framework (to_native)", "to_native", "harness/frameworks/adapters.py"),
    # judging: tally + summarize since the judge's rewrite, judge + batch_profile before it
    ("    judging: counts and profile (tally.tally)", "tally", "harness/judgement/tally.py"),
    ("    judging: summary, examples (verdict.summarize)", "summarize", "harness/judgement/summary.py"),
    ("    judging (verdict.judge)", "judge", "harness/judgement/summary.py"),
    ("    error profile (batch_profile)", "batch_profile", "harness/judgement/error_vs_input.py"),
    ("    flush-to-zero evidence", "_ftz_evidence", "harness/execution/runner.py"),
    ("    framework imports (Backend.unavailable)", "unavailable", "harness/frameworks/adapters.py"),
    ("run metadata (run_info)", "run_info", "harness/record/results.py"),
    ("results JSON (Results.write)", "write", "harness/record/results.py"),
    ("terminal tables (print_results)", "print_results", "reports/terminal.py"),
    ("suite loading (load_suite)", "load_suite", "harness/plan/suite.py"),
)

FRAMEWORK_MODULES = ("numpy", "scipy", "torch", "tensorflow", "keras", "jax")


def fpharness_command() -> list[str]:
    """The console script next to this interpreter, else ``python -m harness.cli``."""
    script = Path(sys.executable).parent / "fpharness"
    if script.exists():
        return [str(script)]
    found = shutil.which("fpharness")
    return [found] if found else [sys.executable, "-m", "harness.cli"]


def child_env(no_jax_cache: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # the user's own JAX cache would win over ours
    env.pop("FPHARNESS_CACHE_DIR", None)
    env.pop("FPHARNESS_JAX_CACHE_DIR", None)  # set by the CLI itself, from --cache-dir
    if no_jax_cache:
        env["JAX_ENABLE_COMPILATION_CACHE"] = "false"  # JAX's own switch; ours stays as it is
    return env


def _cells_without_timing(path: Path) -> list[dict[str, Any]]:
    cells = json.loads(path.read_text())["cells"]
    return [{k: v for k, v in c.items() if k not in ("seconds", "impl_seconds")} for c in cells]


def run_suite(
    suite: Path, cache: Path, out: Path, *, jobs: int | None, env: dict[str, str], profile: Path | None = None,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One ``fpharness run``; its wall time, exit code and the tail of its stderr."""
    argv = ["run", str(suite), "--json", str(out), "--cache-dir", str(cache), "--no-progress", *extra]
    if jobs is not None:
        argv += ["-j", str(jobs)]
    if profile is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "harness.cli", *argv]
    else:
        command = [*fpharness_command(), *argv]
    t0 = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):  # 1: some cell over budget, which frameworks.toml has
        sys.exit(f"fpharness exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, "exit_code": proc.returncode, "stderr_tail": proc.stderr[-2000:]}


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def breakdown(results_path: Path, wall: float) -> dict[str, Any]:
    """Where a run's wall time went, from its results file."""
    data = json.loads(results_path.read_text())
    cells = data["cells"]
    per_fw: dict[str, dict[str, float]] = defaultdict(lambda: {"cells": 0, "seconds": 0.0, "impl_seconds": 0.0})
    statuses: dict[str, int] = defaultdict(int)
    for c in cells:
        fw = per_fw[c["framework"]]
        fw["cells"] += 1
        fw["seconds"] += float(c.get("seconds", 0.0))
        fw["impl_seconds"] += float(c.get("impl_seconds", 0.0))
        statuses[c["status"]] += 1
    in_cells = sum(fw["seconds"] for fw in per_fw.values())
    window = _stamp(data["run"]["finished"]) - _stamp(data["run"]["started"])
    slowest = sorted(cells, key=lambda c: -float(c.get("seconds", 0.0)))[:10]
    return {
        "cells": len(cells),
        "statuses": dict(statuses),
        "frameworks": {k: {kk: round(vv, 3) for kk, vv in v.items()} for k, v in sorted(per_fw.items())},
        "in_cells_s": round(in_cells, 3),
        "impl_s": round(sum(fw["impl_seconds"] for fw in per_fw.values()), 3),
        # started..finished covers the references and the cells (whole seconds)
        "references_and_setup_s": round(max(0.0, window - in_cells), 1),
        "startup_and_output_s": round(max(0.0, wall - window), 1),
        "slowest_cells": [
            {"id": c["id"], "seconds": c.get("seconds"), "impl_seconds": c.get("impl_seconds")} for c in slowest
        ],
    }


def profile_phases(path: Path) -> dict[str, float]:
    """Cumulative seconds of :data:`PHASES` in a cProfile dump (absent ones are left out)."""
    stats: Any = cast(Any, pstats.Stats(str(path))).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    out: dict[str, float] = {}
    total = max((v[3] for v in stats.values()), default=0.0)
    out["whole process (profiled)"] = round(total, 2)
    for label, name, suffix in PHASES:
        ct = sum(v[3] for (file, _, fn), v in stats.items() if fn == name and file.endswith(suffix))
        if ct:
            out[label] = round(ct, 2)
    return out


def top_functions(path: Path, n: int = 25) -> list[dict[str, Any]]:
    """The functions with the most own time (tottime) in a cProfile dump."""
    stats: Any = cast(Any, pstats.Stats(str(path))).stats
    rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:n]
    return [
        {"function": f"{Path(file).name}:{line}({fn})", "calls": v[1], "tottime_s": round(v[2], 3),
         "cumtime_s": round(v[3], 3)}
        for (file, line, fn), v in rows
    ]


def import_costs(env: dict[str, str], repeat: int = 3) -> dict[str, float]:
    """Seconds to import the CLI and each framework in a fresh interpreter (best of ``repeat``),
    less an empty interpreter's start."""

    def best(code: str) -> float | None:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True)
            if proc.returncode != 0:
                return None
            times.append(time.perf_counter() - t0)
        return min(times)

    empty = best("pass") or 0.0
    out: dict[str, float] = {"python start": round(empty, 3)}
    for label, code in [("harness.cli.app + commands", "import harness.cli.app, harness.cli.commands.run"),
                        *[(m, f"import {m}") for m in FRAMEWORK_MODULES]]:
        t = best(code)
        if t is not None:
            out[label] = round(t - empty, 3)
    return out


def print_breakdown(label: str, b: dict[str, Any], wall: float) -> None:
    print(f"\n{label}: {wall:.1f} s wall, {b['cells']} cells {b['statuses']}")
    print(f"  {'framework':<12} {'cells':>5} {'cell s':>8} {'impl s':>8} {'rest s':>8}")
    for name, fw in b["frameworks"].items():
        rest = fw["seconds"] - fw["impl_seconds"]
        print(f"  {name:<12} {int(fw['cells']):>5} {fw['seconds']:>8.1f} {fw['impl_seconds']:>8.1f} {rest:>8.1f}")
    print(f"  {'all cells':<12} {b['cells']:>5} {b['in_cells_s']:>8.1f} {b['impl_s']:>8.1f}"
          f" {b['in_cells_s'] - b['impl_s']:>8.1f}")
    print(f"  outside the cells: references and setup ~{b['references_and_setup_s']:.0f} s,"
          f" process start, imports and output ~{b['startup_and_output_s']:.0f} s")
    print("  slowest cells: " + ", ".join(f"{c['id']} {c['seconds']:.1f} s" for c in b["slowest_cells"][:5]))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", type=Path, default=ROOT / "suites" / "frameworks.toml", help="the suite to run")
    ap.add_argument("--json", type=Path, help="also write the measurements here")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="add a profiled warm run: DIR/warm.pstats, phases and top functions")
    ap.add_argument("-j", "--jobs", type=int, help="passed to fpharness run (default: its own, all cores)")
    ap.add_argument("--no-jax-cache", action="store_true",
                    help="turn JAX's persistent compilation cache off (JAX_ENABLE_COMPILATION_CACHE=false)")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="keep the cache and results files in DIR")
    args = ap.parse_args(argv)
    suite = args.suite.resolve()
    env = child_env(args.no_jax_cache)
    work = Path(tempfile.mkdtemp(prefix="fpharness-rerun-")) if args.keep is None else args.keep.resolve()
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    if cache.exists():
        sys.exit(f"{cache} exists; the cold run needs an empty cache directory")
    result: dict[str, Any] = {
        "suite": str(suite), "machine": platform.platform(), "python": platform.python_version(),
        "cpus": os.cpu_count(), "jax_cache": not args.no_jax_cache, "jobs": args.jobs,
    }
    try:
        print(f"{suite.name}: cold run (empty cache {cache}) ...", flush=True)
        cold = run_suite(suite, cache, work / "cold.json", jobs=args.jobs, env=env)
        print(f"  {cold['wall_s']:.1f} s; warm run ...", flush=True)
        warm = run_suite(suite, cache, work / "warm.json", jobs=args.jobs, env=env)
        ratio = cold["wall_s"] / warm["wall_s"]
        print(f"  {warm['wall_s']:.1f} s")
        result["cold"] = {**cold, "breakdown": breakdown(work / "cold.json", cold["wall_s"])}
        result["warm"] = {**warm, "breakdown": breakdown(work / "warm.json", warm["wall_s"])}
        result["ratio"] = round(ratio, 2)
        jax_dir = cache / "jax"
        result["jax_cache_entries"] = len(list(jax_dir.iterdir())) if jax_dir.is_dir() else 0
        print(f"\ncold {cold['wall_s']:.1f} s, warm {warm['wall_s']:.1f} s: ratio {ratio:.2f}x"
              f" ({result['jax_cache_entries']} files in the JAX compilation cache)")
        print_breakdown("cold", result["cold"]["breakdown"], cold["wall_s"])
        print_breakdown("warm", result["warm"]["breakdown"], warm["wall_s"])

        # the opt-in result reuse (harness/record/reuse.py): nothing changed, so no cell runs; the
        # results must be the warm run's, field for field (timings aside)
        print("\nwarm run with --reuse-results ...", flush=True)
        reused = run_suite(suite, cache, work / "reused.json", jobs=args.jobs, env=env, extra=("--reuse-results",))
        same = _cells_without_timing(work / "reused.json") == _cells_without_timing(work / "warm.json")
        result["reused"] = {**reused, "identical_to_warm": same, "ratio": round(cold["wall_s"] / reused["wall_s"], 2)}
        print(f"  {reused['wall_s']:.1f} s: cold / reused {cold['wall_s'] / reused['wall_s']:.1f}x;"
              f" results identical to the warm run's: {same}")

        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            prof = args.profile / "warm.pstats"
            print(f"\nprofiled warm run -> {prof} ...", flush=True)
            profiled = run_suite(suite, cache, work / "profiled.json", jobs=args.jobs, env=env, profile=prof)
            phases = profile_phases(prof)
            # what cProfile cannot see: interpreter start and the teardown of the frameworks
            phases["outside the profile (start, exit)"] = round(
                profiled["wall_s"] - phases["whole process (profiled)"], 2)
            result["profile"] = {"wall_s": profiled["wall_s"], "pstats": str(prof), "phases": phases,
                                 "top_tottime": top_functions(prof)}
            print(f"  {profiled['wall_s']:.1f} s wall under cProfile; cumulative seconds (main thread):")
            for label, seconds in phases.items():
                print(f"  {label:<44} {seconds:>8.2f}")
            print("  most own time:")
            for row in result["profile"]["top_tottime"][:15]:
                print(f"    {row['tottime_s']:>7.2f} s {row['calls']:>9} calls  {row['function']}")
            imports = import_costs(env)
            result["imports"] = imports
            print("  import seconds in a fresh interpreter (best of 3, less the interpreter start):")
            for label, seconds in imports.items():
                print(f"    {label:<24} {seconds:>6.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwritten: {args.json}")
    return result


if __name__ == "__main__":
    main()
