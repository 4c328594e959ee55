"""The harness's overhead over the bare implementation call, for one large cell.

For a 2**24-element float32 cell (``random:16777216``: bit patterns uniform over the
finite float32 values, so every binade, subnormals, zeros and huge values are in it), in
one process and one run:

* **bare**: the implementation itself, called on inputs already in its framework
  (``torch.nn.functional.softplus(t)``), best of ``--repeat``;
* **harness**: ``Runner.run(cell)`` with the references already computed (they are the
  oracle's cost, measured by ``bench_oracle.py`` and cached on disk between runs): moving
  the inputs into the framework, the call, moving the result back bit-exactly, the full
  judgement (categories, exact ULP statistics, worst elements, error profile), best of
  ``--repeat``. The batch's baseline (the correctly rounded result judged once, see
  ``harness.judgement.tally.Baseline``) is built with the references, before timing, as a run
  builds it once per batch for all the implementations judged on it; its cost is
  reported too, and the ratio for a group's first cell with it.

The figure is ``harness / bare`` (issue 8 asks for at most 3). Both sides run in the same
process within seconds of each other, so machine load cancels out of the ratio.

    python benchmarks/bench_overhead.py                       # torch.softplus, 2**24
    python benchmarks/bench_overhead.py --impl numpy.softplus --log2 22
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def best(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", default="torch.softplus", help="a built-in implementation id (default torch.softplus)")
    ap.add_argument("--oracle", default="softplus")
    ap.add_argument("--log2", type=int, default=24, help="cell size as a power of two (default 24)")
    ap.add_argument("--repeat", type=int, default=5, help="best of this many runs per side (default 5)")
    ap.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = ap.parse_args(argv)

    from harness.execution.runner import Runner
    from harness.frameworks.adapters import get_backend
    from harness.frameworks.catalogue import get_impl
    from harness.plan.cells import CellSpec

    impl = get_impl(args.impl)
    n = 1 << args.log2
    cell = CellSpec(args.oracle, args.impl, impl.framework, "float32", "cpu", f"random:{n}:0")
    runner = Runner()
    runner.validate([cell])
    group = runner._group(cell)
    (batch,) = group.inputs.batches
    t0 = time.perf_counter()
    ref = runner._reference(group, group.fmt, 0)  # the references: not part of either side
    refs = time.perf_counter() - t0
    t0 = time.perf_counter()
    runner._profile_inputs(group, 0, batch)  # the inputs' side of the error profile
    runner._baseline(group, group.fmt, 0, ref)
    baseline = time.perf_counter() - t0
    backend = get_backend(impl.framework)
    native = [backend.to_native(a, "cpu") for a in batch.arrays]

    result = runner.run(cell)  # warm-up: framework import, first-call setup, profile inputs
    if result.status == "error":
        print(f"the cell failed to run: {result.reason}", file=sys.stderr)
        return 1
    bare = best(lambda: impl.fn(*native), args.repeat)
    harness = best(lambda: runner.run(cell), args.repeat)
    bare_again = best(lambda: impl.fn(*native), args.repeat)
    bare = min(bare, bare_again)
    ratio = harness / bare
    print(f"{cell.id}: {n:,} elements ({platform.platform()}, {os.cpu_count()} cores)")
    print(f"  references (not timed below)  {refs:8.2f} s")
    print(f"  bare call                     {bare * 1e3:8.1f} ms")
    print(f"  harness (Runner.run)          {harness * 1e3:8.1f} ms")
    print(f"  harness / bare                {ratio:8.2f}x   (target: at most 3x)")
    print(f"  per-batch preparation         {baseline * 1e3:8.1f} ms   (profile inputs and baseline, shared by")
    print(f"  a group's first cell, with it {(harness + baseline) / bare:8.2f}x   every cell judged on the batch)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "schema": 1, "cell": cell.id, "elements": n, "bare_s": bare, "harness_s": harness,
            "ratio": ratio, "references_s": refs, "baseline_s": baseline,
            "first_cell_ratio": (harness + baseline) / bare, "platform": platform.platform(), "cores": os.cpu_count(),
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
