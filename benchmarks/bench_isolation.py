"""What isolating custom implementations costs (harness/execution/isolation.py), as ratios
measured in one run (the machine is shared and noisy; both sides of each ratio run within
seconds of each other).

(a) **frameworks suite, before/after**: ``fpharness run suites/frameworks.toml`` (built-ins
    only, which stay in-process) with the code of ``--before`` (default ``HEAD``, exported
    with ``git archive`` into a temporary folder) and with this working tree, alternately,
    best of ``--repeat``, ``--no-progress -q`` and a warm ``--cache-dir`` (one untimed
    warm-up run fills it). Issue 13 allows at most 1.20.
(b) **one custom cell, isolated vs in-process**: a float32 ``numpy`` implementation
    (``np.exp`` in float32, cheap, so that the transfer shows) on ``random:2**k`` inputs,
    run by :class:`~harness.execution.runner.Runner` once through the isolated process and
    once in-process (the same function handed over as ``extra_impls``), with the
    references computed before timing, best of ``--repeat``.

    python benchmarks/bench_isolation.py                 # both
    python benchmarks/bench_isolation.py --skip-suite    # only (b)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IMPL = textwrap.dedent('''
    import numpy as np

    def exp32(x):
        with np.errstate(all="ignore"):
            return np.exp(x)
''')


def _suite_seconds(tree: Path, cache: str, jobs: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "harness.cli", "run", str(ROOT / "suites" / "frameworks.toml"), "--no-progress",
           "-q", "--cache-dir", cache, "-j", str(jobs), "--json", os.path.join(cache, "out.json")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{tree}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    return seconds


def suite_ratio(before: str, repeat: int, jobs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", before], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        cache = str(Path(tmp) / "cache")
        _suite_seconds(ROOT, cache, jobs)  # warm the oracle cache and JAX's compilation cache
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(repeat):
            times["before"].append(_suite_seconds(old, cache, jobs))
            times["after"].append(_suite_seconds(ROOT, cache, jobs))
    best = {k: min(v) for k, v in times.items()}
    return {"before_ref": before, "jobs": jobs, "times": times, "best": best,
            "ratio_after_over_before": best["after"] / best["before"]}


def cell_ratios(log2s: list[int], repeat: int) -> list[dict[str, Any]]:
    from harness.execution.runner import Runner
    from harness.frameworks.registry import Impl
    from harness.plan.cells import CellSpec
    from harness.plan.implementations import load_custom

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_impl.py"
        path.write_text(IMPL)
        spec = f"{path}:exp32"
        fn = load_custom(spec, oracle="exp", framework="numpy").fn  # the in-process side only
        for k in log2s:
            inputs = f"random:{1 << k}:1"
            isolated = CellSpec("exp", spec, "numpy", "float32", "cpu", inputs, custom=True)
            inproc = CellSpec("exp", "in-process:exp32", "numpy", "float32", "cpu", inputs, custom=True)
            runner = Runner(extra_impls={inproc.impl: Impl(inproc.impl, "numpy", "exp", fn, custom=True)})
            runner.validate([isolated, inproc])
            runner.prepare(isolated)  # the references, shared by both cells (one group)
            runner.run(isolated)  # start the isolated process; not timed
            times: dict[str, list[float]] = {"isolated": [], "in_process": []}
            impl: dict[str, float] = {}
            for _ in range(repeat):
                for name, cell in (("isolated", isolated), ("in_process", inproc)):
                    t0 = time.perf_counter()
                    result = runner.run(cell)
                    times[name].append(time.perf_counter() - t0)
                    assert result.status in ("pass", "fail"), result.reason
                    impl[name] = min(impl.get(name, 1e9), result.impl_seconds)
            runner.close()
            best = {n: min(v) for n, v in times.items()}
            out.append({"elements": 1 << k, "best_seconds": best, "impl_seconds": impl,
                        "ratio_isolated_over_in_process": best["isolated"] / best["in_process"],
                        "added_seconds": best["isolated"] - best["in_process"]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="HEAD", help="git revision to compare the suite with (default HEAD)")
    ap.add_argument("--repeat", type=int, default=2, help="best of this many runs per side (default 2)")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="-j of the suite runs")
    ap.add_argument("--log2", type=int, action="append", help="cell sizes for (b) (default 16 and 24)")
    ap.add_argument("--skip-suite", action="store_true", help="only measure (b)")
    ap.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    report: dict[str, Any] = {}
    report["cells"] = cell_ratios(args.log2 or [16, 24], max(args.repeat, 3))
    for c in report["cells"]:
        b = c["best_seconds"]
        print(f"(b) 2**{c['elements'].bit_length() - 1} float32: isolated {b['isolated']:.3f} s,"
              f" in-process {b['in_process']:.3f} s, ratio {c['ratio_isolated_over_in_process']:.2f}"
              f" (+{c['added_seconds'] * 1000:.0f} ms)")
    if not args.skip_suite:
        report["suite"] = suite_ratio(args.before, args.repeat, args.jobs)
        s = report["suite"]
        print(f"(a) frameworks suite -j {s['jobs']}: before {s['best']['before']:.1f} s, after {s['best']['after']:.1f} s,"
              f" ratio {s['ratio_after_over_before']:.3f} (runs: {s['times']})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
