"""Oracle throughput: the pure mpmath path against the float64 fast tier, in one run.

Correctly rounded float32 softplus references per second, plain mpmath (``tier=False``)
versus tiered (``tier=True``), on uniform finite float32 bit patterns and on normal(0, 10)
values; the ratio is what to compare across machines (both sides share the run's noise).
Then tiered throughput on 2**24 uniform float32 patterns and the time that extrapolates to
for all 2**32 (single process; the mpmath fallbacks are included), and a tiered-only table
for the other oracles.

Usage::

    python benchmarks/bench_oracle.py                  # the numbers in benchmarks/README.md
    python benchmarks/bench_oracle.py --n 5000 --big-log2 20 --json out.json   # quicker
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from oracles import FLOAT32, evaluate, get_oracle
from oracles.fast import run_tier, tier_for

OTHERS = ["exp", "log", "log1p", "expm1", "tanh", "sigmoid", "log_sigmoid", "silu", "gelu"]
ROWS = ["softmax", "log_softmax", "logsumexp"]


def uniform_patterns(n: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """n finite float32 values, uniform over the finite bit patterns."""
    out = np.empty(0, dtype=np.float32)
    while out.size < n:
        bits = rng.integers(0, 1 << 32, 2 * (n - out.size) + 16, dtype=np.uint64).astype(np.uint32)
        x = bits.view(np.float32)
        out = np.concatenate([out, x[np.isfinite(x)]])
    return out[:n]


def normal10(n: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    return rng.normal(0, 10, n).astype(np.float32)


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def fallbacks(name: str, x: npt.NDArray[Any]) -> int:
    o = get_oracle(name)
    tier = tier_for(o, FLOAT32)
    assert tier is not None, f"no fast tier for {name}"
    _, done = run_tier(tier, o, [x], FLOAT32, o.math_params(o.bind(None)))
    return int(np.count_nonzero(~done))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="inputs for the plain-vs-tiered comparison")
    ap.add_argument("--big-log2", type=int, default=24, help="log2 of the inputs for the 2**32 extrapolation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    softplus = get_oracle("softplus")
    results: dict[str, Any] = {
        "machine": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
        "n": args.n, "comparisons": {},
    }
    print(f"softplus -> float32, {args.n} inputs per distribution ({results['machine']})")
    for label, draw in (("uniform float32 bit patterns", uniform_patterns), ("normal(0, 10)", normal10)):
        x = draw(args.n, rng)
        t0 = time.perf_counter()
        evaluate(softplus, [x], FLOAT32, tier=False)
        plain_s = time.perf_counter() - t0
        # the tier is ~1000x faster: repeat it on the same inputs for a measurable time
        reps = min(200, max(1, int(2.0 / max(plain_s / 1000, 1e-4))))
        t0 = time.perf_counter()
        for _ in range(reps):
            evaluate(softplus, [x], FLOAT32)
        tier_s = (time.perf_counter() - t0) / reps
        same = evaluate(softplus, [x], FLOAT32).want.view(np.int64)
        assert np.array_equal(same, evaluate(softplus, [x], FLOAT32, tier=False).want.view(np.int64))
        row = {
            "plain_refs_per_s": args.n / plain_s,
            "tiered_refs_per_s": args.n / tier_s,
            "ratio": plain_s / tier_s,
            "fallbacks": fallbacks("softplus", x.astype(np.float64)),
        }
        results["comparisons"][label] = row
        print(f"  {label:30s} plain {row['plain_refs_per_s']:10.0f}/s  tiered {row['tiered_refs_per_s']:12.0f}/s"
              f"  ratio {row['ratio']:7.0f}x  (mpmath fallbacks {row['fallbacks']})")

    big = 1 << args.big_log2
    x = uniform_patterns(big, rng)
    seen: list[int] = []
    big_s = timed(lambda: evaluate(softplus, [x], FLOAT32, progress=seen.append))
    rate = big / big_s
    results["big"] = {
        "inputs": big, "seconds": big_s, "refs_per_s": rate,
        "fallbacks": fallbacks("softplus", x.astype(np.float64)),
        "extrapolated_2_32_s": (1 << 32) / rate,
    }
    print(f"softplus -> float32, 2**{args.big_log2} uniform patterns, tiered: {big_s:.1f} s, {rate:,.0f} refs/s, "
          f"{results['big']['fallbacks']} mpmath fallbacks")
    print(f"  extrapolated to all 2**32 float32 inputs: {(1 << 32) / rate / 60:.1f} min in one process")

    results["others"] = {}
    n_other = min(big, 1 << 20)
    xo = uniform_patterns(n_other, rng)
    xn = normal10(n_other, rng)
    print(f"tiered only, float32: refs/s on {xo.size} uniform patterns, and the fraction left to mpmath"
          " there and on normal(0, 10)")
    for name in OTHERS:
        o = get_oracle(name)
        t0 = time.perf_counter()
        evaluate(o, [xo], FLOAT32)
        s = time.perf_counter() - t0
        fb = fallbacks(name, xo.astype(np.float64))
        fbn = fallbacks(name, xn.astype(np.float64))
        results["others"][name] = {"refs_per_s": xo.size / s, "fallbacks": fb, "inputs": int(xo.size),
                                   "fallbacks_normal10": fbn, "inputs_normal10": int(xn.size)}
        print(f"  {name:12s} {xo.size / s:12,.0f}/s  fallbacks {fb / xo.size:8.4%}  normal(0,10) {fbn / xn.size:8.4%}")
    rows = (rng.normal(0, 1, (n_other // 8, 8)) * rng.choice([0.1, 1.0, 10.0, 100.0], (n_other // 8, 1)))
    rows = rows.astype(np.float32)
    print(f"tiered only, float32 rows of 8 (normal, scales 0.1..100): {rows.shape[0]} rows")
    for name in ROWS:
        o = get_oracle(name)
        t0 = time.perf_counter()
        evaluate(o, [rows], FLOAT32)
        s = time.perf_counter() - t0
        tier = tier_for(o, FLOAT32)
        assert tier is not None
        _, done = run_tier(tier, o, [rows], FLOAT32, {})
        fb = int(np.count_nonzero(~done))
        results["others"][name] = {"rows_per_s": rows.shape[0] / s, "elements_per_s": rows.size / s,
                                   "fallback_rows": fb, "rows": rows.shape[0]}
        print(f"  {name:12s} {rows.size / s:12,.0f} elements/s  rows left to mpmath {fb / rows.shape[0]:8.4%}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
