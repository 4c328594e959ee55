"""Gradient references for every 16-bit input: the fast tier against plain mpmath and
against the forward reference, as ratios taken in one run.

For each elementwise oracle with a built-in gradient and each 16-bit format, the script
times, in one process, on all 65,536 bit patterns (NaNs included) with cotangent 1:

* the gradient reference with the fast tier (``evaluate(gradient_oracle(name), ...)``);
* the same with ``tier=False`` (plain mpmath, every element settled by Ziv's loop);
* the forward reference with its own fast tier (``evaluate(get_oracle(name), ...)``);

checks that both gradient references agree bit for bit, and prints the ratios
plain / tiered (the tier's speed-up) and tiered gradient / tiered forward (what a gradient
reference costs beside the forward one), with the fraction the tier left to mpmath. Both
sides of each ratio share the machine's noise, so the ratios are what to compare.

Usage::

    python benchmarks/bench_grad_reference.py --json /tmp/grad.json
    python benchmarks/bench_grad_reference.py --oracles exp,gelu --formats bfloat16   # a quick look
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from oracles import BFLOAT16, FLOAT16, Format, evaluate, get_oracle
from oracles.fast import run_tier, tier_for
from oracles.gradients import gradient_oracle

ORACLES = ["exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus", "log_sigmoid", "silu", "gelu"]
FORMATS = {"float16": FLOAT16, "bfloat16": BFLOAT16}


def patterns(fmt: Format) -> npt.NDArray[np.float64]:
    """Every bit pattern of the 16-bit format, as float64 (NaN patterns included)."""
    with np.errstate(invalid="ignore"):
        return fmt.from_bits(fmt.all_bit_patterns()).astype(np.float64)


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--oracles", default=",".join(ORACLES), help="comma-separated forward oracles")
    ap.add_argument("--formats", default="float16,bfloat16", help="comma-separated: float16, bfloat16")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs for the tiered sides")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    results: dict[str, Any] = {
        "machine": platform.platform(), "python": platform.python_version(), "numpy": np.__version__, "rows": [],
    }
    print(f"gradient references for every 16-bit pattern, cotangent 1, one process ({results['machine']})")
    print(f"  {'gradient':22s} {'format':9s} {'tiered':>9s} {'plain':>9s} {'forward':>9s} {'plain/tiered':>13s}"
          f" {'grad/fwd':>9s} {'to mpmath':>10s}")
    for fmt_name in args.formats.split(","):
        fmt = FORMATS[fmt_name]
        x = patterns(fmt)
        g = np.ones_like(x)
        for name in args.oracles.split(","):
            grad = gradient_oracle(name)
            fwd = get_oracle(name)
            tiered_s = best_of(functools.partial(evaluate, grad, [x, g], fmt), args.repeat)
            fwd_s = best_of(functools.partial(evaluate, fwd, [x], fmt), args.repeat)
            t0 = time.perf_counter()
            plain = evaluate(grad, [x, g], fmt, tier=False)
            plain_s = time.perf_counter() - t0
            tiered = evaluate(grad, [x, g], fmt)
            w1, w2 = tiered.want, plain.want  # bit for bit, the sign of zero included; NaN is NaN
            same = bool(np.all((w1.view(np.int64) == w2.view(np.int64)) | (np.isnan(w1) & np.isnan(w2))))
            same = same and bool(np.array_equal(tiered.ulp_exp, plain.ulp_exp))
            tier = tier_for(grad, fmt)
            assert tier is not None, f"no fast tier for {grad.name}"
            _, done = run_tier(tier, grad, [x, g], fmt, grad.math_params(grad.bind(None)))
            row = {
                "gradient": grad.name, "format": fmt_name, "elements": int(x.size), "tiered_s": tiered_s,
                "plain_s": plain_s, "forward_tiered_s": fwd_s, "plain_over_tiered": plain_s / tiered_s,
                "gradient_over_forward": tiered_s / fwd_s, "left_to_mpmath": int(np.count_nonzero(~done)),
                "identical": same,
            }
            results["rows"].append(row)
            print(f"  {grad.name:22s} {fmt_name:9s} {tiered_s:8.3f}s {plain_s:8.1f}s {fwd_s:8.3f}s"
                  f" {row['plain_over_tiered']:12.0f}x {row['gradient_over_forward']:8.2f}x"
                  f" {row['left_to_mpmath'] / x.size:10.4%}{'' if same else '  DIFFERENT'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
