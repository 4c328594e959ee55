"""Every elementwise oracle exhaustive in float32, one after another: issue 18's table.

For each of exp, log, log1p, expm1, tanh, sigmoid, softplus, log_sigmoid, silu, gelu (and
with ``--grad`` their gradients, ``∂f/∂x`` with the cotangent 1) this runs, as a user
would, in a fresh process with an empty reference cache::

    fpharness check torch.F --oracle F --dtype float32 --inputs exhaustive -j N [--grad x]

and reports the wall time, that all 2**32 elements were judged, the verdict, and how many
worst elements were re-derived by mpmath alone (``rechecked``). The fraction the fast
tier leaves to the exact evaluator is measured on every 16th chunk of 2**22 contiguous
patterns (2**28 inputs, the tier alone), so the table costs little beyond the runs;
``--stride 1`` counts it over all 2**32 (a sample can miss a narrow window: it missed the
two chunks beside the root of gelu', issue 18's third round).

    python benchmarks/bench_exhaustive_all.py                      # forward, -j all cores
    python benchmarks/bench_exhaustive_all.py --grad --only exp,gelu
    python benchmarks/bench_exhaustive_all.py --json out.json

Figures go to benchmarks/README.md ("Exhaustive float32 for every elementwise oracle").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ORACLES = ["exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus", "log_sigmoid", "silu", "gelu"]
CHUNK = 1 << 22


def left_to_exact(name: str, grad: bool, stride: int = 16) -> tuple[int, int]:
    """(undecided, inputs) of the fast tier on every ``stride``-th chunk of float32 patterns."""
    from oracles import FLOAT32, get_oracle
    from oracles.evaluate import FAST_BLOCK
    from oracles.fast import run_tier, tier_for
    from oracles.gradients import gradient_oracle

    o = get_oracle(name)
    if grad:
        o = gradient_oracle(o, "x")
    tier = tier_for(o, FLOAT32)
    if tier is None:
        return -1, 0
    params = o.math_params(o.bind(None))
    undecided = seen = 0
    for i in range(0, (1 << 32) // CHUNK, stride):
        bits = np.arange(i * CHUNK, (i + 1) * CHUNK, dtype=np.uint64).astype(np.uint32)
        with np.errstate(invalid="ignore"):
            x = bits.view(np.float32).astype(np.float64)
        arrays = [x, np.ones_like(x)] if grad else [x]
        for s in range(0, CHUNK, FAST_BLOCK):
            _, done = run_tier(tier, o, [a[s:s + FAST_BLOCK] for a in arrays], FLOAT32, params)
            undecided += int(np.count_nonzero(~done))
        seen += CHUNK
    return undecided, seen


def run_one(exe: str, name: str, grad: bool, jobs: int, tmp: Path) -> dict[str, object]:
    out = tmp / f"{name}{'-grad' if grad else ''}.json"
    cache = tmp / f"cache-{name}{'-grad' if grad else ''}"  # empty: the goal is a cold cache
    cmd = [exe, "check", f"torch.{name}", "--oracle", name, "--dtype", "float32", "--inputs", "exhaustive",
           "-j", str(jobs), "--cache-dir", str(cache), "--json", str(out), "-q"]
    if grad:
        cmd += ["--grad", "x"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1) or not out.exists():
        return {"oracle": name, "grad": grad, "error": f"exit {proc.returncode}"}
    cell = json.loads(out.read_text())["cells"][0]
    ulp = cell.get("ulp") or {}
    return {"oracle": name, "grad": grad, "wall_s": round(wall, 1), "n": cell.get("n"), "status": cell["status"],
            "ulp_max": ulp.get("max"), "rechecked": cell.get("rechecked", 0), "reason": cell.get("reason", "")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--grad", action="store_true", help="the gradients ∂f/∂x instead of the forward values")
    ap.add_argument("--only", help="comma-separated oracles (default: all ten)")
    ap.add_argument("--no-fraction", action="store_true", help="skip measuring the fraction left to mpmath")
    ap.add_argument("--stride", type=int, default=16,
                    help="measure that fraction on every STRIDE-th chunk (default 16; 1: all 2**32, ~100 s an oracle)")
    ap.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else ORACLES
    exe = shutil.which("fpharness") or str(Path(sys.executable).with_name("fpharness"))
    rows = []
    print(f"{platform.platform()}, {os.cpu_count()} cores, -j {args.jobs}", flush=True)
    print(f"{'oracle':22s} {'wall':>8s} {'all 2**32':>9s} {'status':>6s} {'max ulp':>9s} {'rechecked':>9s}"
          f" {'left to mpmath':>15s}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            row = run_one(exe, name, args.grad, args.jobs, Path(tmp))
            if not args.no_fraction:
                und, seen = left_to_exact(name, args.grad, max(1, args.stride))
                row["left_to_exact"], row["sampled"] = und, seen
            rows.append(row)
            label = f"∂{name}/∂x" if args.grad else name
            if "error" in row:
                print(f"{label:22s} {row['error']}", flush=True)
                continue
            frac = f"{row['left_to_exact'] / row['sampled']:.1e}" if row.get("sampled") else "-"
            print(f"{label:22s} {row['wall_s']:7.1f}s {row['n'] == 1 << 32!s:>9s} {row['status']:>6s}"
                  f" {row['ulp_max'] if row['ulp_max'] is not None else '-':>9} {row['rechecked']:>9}"
                  f" {frac:>15s}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"schema": 1, "jobs": args.jobs, "platform": platform.platform(),
                                               "cores": os.cpu_count(), "rows": rows}, indent=2) + "\n")
    return 0 if all(r.get("n") == 1 << 32 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
