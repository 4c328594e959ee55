"""Wall time of an exhaustive float32 check: every one of the 2**32 inputs.

Runs, as a user would (a fresh process, the console script)::

    fpharness check torch.softplus --oracle softplus --dtype float32 --inputs exhaustive -j N

and reports the wall time, the elements judged (must be 2**32), the result's ULP
statistics and its NaN/Inf incidence, read back from the results JSON. Issue 8 asks for at
most 10 minutes on the 2-core development machine.

    python benchmarks/bench_exhaustive.py                  # -j all cores
    python benchmarks/bench_exhaustive.py --jobs 1         # the serial figure
    python benchmarks/bench_exhaustive.py --impl numpy.log --oracle log
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", default="torch.softplus")
    ap.add_argument("--oracle", default="softplus")
    ap.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    exe = shutil.which("fpharness") or str(Path(sys.executable).with_name("fpharness"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        cmd = [exe, "check", args.impl, "--oracle", args.oracle, "--dtype", "float32", "--device", args.device,
               "--inputs", "exhaustive", "-j", str(args.jobs), "--json", str(out), "-q"]
        print(" ".join(cmd[1:-3]), flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode not in (0, 1) or not out.exists():
            print(f"fpharness exited {proc.returncode} without results", file=sys.stderr)
            return 1
        cell = json.loads(out.read_text())["cells"][0]
    ulp = cell.get("ulp") or {}
    inc = {k: v for k, v in (cell.get("incidence") or {}).items() if v}
    print(f"  {cell['id']} on {platform.platform()}, {os.cpu_count()} cores, -j {args.jobs}")
    print(f"  wall time       {wall / 60:6.2f} min ({wall:.0f} s)   (target: at most 10 min)")
    print(f"  elements        {cell['n']:,}  ({'all 2**32' if cell['n'] == 1 << 32 else 'NOT all 2**32'})")
    print(f"  status          {cell['status']}: {cell['reason']}")
    print(f"  ulp max / mean  {ulp.get('max')} / {ulp.get('mean')}")
    print(f"  incidence       {inc}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "schema": 1, "command": " ".join(cmd[1:-3]), "wall_s": wall, "n": cell["n"], "jobs": args.jobs,
            "status": cell["status"], "ulp_max": ulp.get("max"), "ulp_mean": ulp.get("mean"), "incidence": inc,
            "platform": platform.platform(), "cores": os.cpu_count(),
        }, indent=2) + "\n")
    return 0 if cell["n"] == 1 << 32 else 1


if __name__ == "__main__":
    raise SystemExit(main())
