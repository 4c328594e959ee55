"""``--executor ray`` against ``-j N`` on one machine: issue 19's figure.

Runs, as a user would (a fresh process each, an empty reference cache), the exhaustive
float32 cell of one implementation (all 2**32 inputs, 1024 chunks of 4M)::

    fpharness check torch.softplus --oracle softplus --dtype float32 --inputs exhaustive -j N
    fpharness check torch.softplus ... --executor ray          # a local Ray instance of N CPUs

alternating them ``--rounds`` times (these machines are noisy: the ratio within a round is
the figure, never a wall time alone), and checks that both judged every input and wrote
the same results apart from timings. The Ray time includes starting and stopping the Ray
instance (about 6 s here).

    python benchmarks/bench_ray.py                  # torch.softplus, -j all cores, 1 round
    python benchmarks/bench_ray.py --rounds 2 --json /tmp/ray.json

Figures go to benchmarks/README.md ("Ray against -j").
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
from typing import Any


def run_one(exe: str, impl: str, oracle: str, jobs: int, ray: bool, tmp: Path, tag: str) -> dict[str, Any]:
    out = tmp / f"{tag}.json"
    cmd = [exe, "check", impl, "--oracle", oracle, "--dtype", "float32", "--inputs", "exhaustive",
           "-j", str(jobs), "--cache-dir", str(tmp / f"cache-{tag}"), "--json", str(out), "-q"]
    if ray:
        cmd += ["--executor", "ray"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1) or not out.exists():
        return {"ray": ray, "error": f"exit {proc.returncode}"}
    cell = json.loads(out.read_text())["cells"][0]
    return {"ray": ray, "wall_s": round(wall, 1), "cell": cell}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    drop = ("seconds", "impl_seconds")
    return {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--impl", default="torch.softplus")
    ap.add_argument("--oracle", default="softplus")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    exe = shutil.which("fpharness") or str(Path(sys.executable).with_name("fpharness"))
    print(f"{platform.platform()}, {os.cpu_count()} cores, -j {args.jobs}; {args.impl} float32 exhaustive", flush=True)
    rows = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            local = run_one(exe, args.impl, args.oracle, args.jobs, False, Path(tmp), f"local-{r}")
            on_ray = run_one(exe, args.impl, args.oracle, args.jobs, True, Path(tmp), f"ray-{r}")
            if "error" in local or "error" in on_ray:
                print(f"round {r + 1}: local {local.get('error', 'ok')}, ray {on_ray.get('error', 'ok')}", flush=True)
                ok = False
                continue
            same = _same(local["cell"], on_ray["cell"])
            n = on_ray["cell"]["n"]
            ratio = on_ray["wall_s"] / local["wall_s"]
            ok &= same and n == 1 << 32
            rows.append({"round": r + 1, "local_s": local["wall_s"], "ray_s": on_ray["wall_s"], "ratio": round(ratio, 3),
                         "identical": same, "n": n, "status": on_ray["cell"]["status"]})
            print(f"round {r + 1}: -j {args.jobs} {local['wall_s']:.1f}s, --executor ray {on_ray['wall_s']:.1f}s,"
                  f" ratio {ratio:.2f}; all 2**32 judged: {n == 1 << 32}; identical results: {same}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"schema": 1, "jobs": args.jobs, "platform": platform.platform(),
                                               "cores": os.cpu_count(), "impl": args.impl, "rows": rows}, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
