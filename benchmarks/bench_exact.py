"""Exact evaluators against mpmath: what settling float32 references costs in each.

Issue 18: the elements the float64 fast tier cannot decide go to an exact evaluator, today
mpmath through :func:`oracles.ziv.settle` (a few thousand elements a second). This script
measures, in one run and on one machine, the throughput (elements per second) of settling
correctly rounded float32 references of the ten built-in elementwise forward oracles
(exp, log, log1p, expm1, tanh, sigmoid, softplus, log_sigmoid, silu, gelu; default
parameters) with

(a) mpmath: ``oracles.evaluate(..., tier=False)``, the definition;
(b) MPFR through gmpy2: :func:`oracles.exact.settle_fast`;
(c) arb through python-flint, if it is installed: :func:`flint_settle` below, the same
    formulas as (b) in ball arithmetic, settled in integer arithmetic on the balls' exact
    ends (the rules of ``round_mpf`` and ``binade_of`` rewritten for (man, exp) pairs);

on three input sets per oracle:

* **random**: finite float32 bit patterns, uniform (most give results far from any rounding
  boundary, or overflow/underflow outright);
* **hard**: inputs whose exact result lies within 2**-70 (relative) of a power of two or
  of a float32 rounding midpoint, or is exact, from structural families (exp and sigmoid of
  tiny x, tanh/sigmoid/expm1 of large |x|, silu/gelu of odd subnormals, softplus of powers
  of two, ...; :func:`hard_families`), topped up with the closest near-midpoints a float64
  search of a few million random inputs finds (those are only within ~2**-36..2**-46; no
  float64 screen can see closer);
* **band**: the hard family whose results lie in the band of 2**-NEAR_POWER below a power
  of two, where ziv needs 2,000+ bits (expm1, tanh, sigmoid, silu, gelu: the others have
  no such float32 inputs but 0 or 1).

Every reference of (b) and (c) is compared with (a): mismatches of ``want`` (bits) or
``ulp_exp`` are counted, and the worst relative difference of ``hi + lo`` is shown (ziv's
own is good to about 2**-(p + 50)). Each path is timed ``--repeat`` times (default 3) and
the best kept, as the machines are shared; ratios are against (a) in the same run, which
is what to compare across machines.

Usage::

    python benchmarks/bench_exact.py --json /tmp/exact.json   # 2,000 inputs per oracle and set
    python benchmarks/bench_exact.py --n 300 --repeat 1       # a quick look
    python benchmarks/bench_exact.py --oracles exp,gelu --sets band --no-flint
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from bench_oracle import uniform_patterns  # benchmarks/ is on sys.path: scripts run from it

from oracles import FLOAT32, Format, evaluate, get_oracle
from oracles.exact import settle_fast
from oracles.ziv import NEAR_POWER, ULP_EXP_MAX, Settled

ORACLES = ["exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus", "log_sigmoid", "silu", "gelu"]
F32 = npt.NDArray[np.float32]


# -- inputs ----------------------------------------------------------------------------


def _float32(e: npt.NDArray[np.int64], m: npt.NDArray[np.int64], negative: npt.NDArray[np.bool_]) -> F32:
    """Values 2**e (1 + m 2**-23) for e >= -126, and subnormals m 2**-149 for e < -126."""
    bits = np.where(e >= -126, ((e + 127) << 23) | m, m).astype(np.uint32)
    bits |= np.where(negative, np.uint32(1 << 31), np.uint32(0))
    return bits.view(np.float32)


def _magnitudes(rng: np.random.Generator, n: int, lo: int, hi: int, sign: int = 0) -> F32:
    """n float32 values with binades uniform in [lo, hi] and a random significand;
    ``sign`` +1 or -1 fixes the sign, 0 draws it."""
    e = rng.integers(lo, hi + 1, n)
    m = rng.integers(0, 1 << 23, n)
    negative = rng.random(n) < 0.5 if sign == 0 else np.full(n, sign < 0)
    return _float32(e, m, negative)


def _powers(lo: int, hi: int, sign: int = 0) -> F32:
    k = np.arange(lo, hi + 1, dtype=np.float64)
    p = np.exp2(k).astype(np.float32)
    if sign == 0:
        return np.concatenate([p, -p])
    return p if sign > 0 else -p


def _odd_subnormals(rng: np.random.Generator, n: int) -> F32:
    m = rng.integers(0, 1 << 22, n) * 2 + 1
    return _float32(np.full(n, -127), m, rng.random(n) < 0.5)


def _uniform(rng: np.random.Generator, n: int, lo: float, hi: float) -> F32:
    return rng.uniform(lo, hi, n).astype(np.float32)


def hard_families(name: str, rng: np.random.Generator, n: int = 600) -> dict[str, F32]:
    """The structural families of hard inputs of ``name``: each result is exact or within
    2**-70 relative of a power of two or of a float32 midpoint. ``band``: results in the band
    of 2**-NEAR_POWER below a power of two (or an exact power), which ziv settles at 2,000+
    bits. At most ``n`` values per family (fewer where the family is smaller)."""
    zeros = np.array([0.0, -0.0], dtype=np.float32)
    fam: dict[str, F32] = {}
    if name == "exp":
        fam["tiny"] = _magnitudes(rng, n, -149, -71)
        fam["band"] = zeros
    elif name == "log":
        fam["band"] = np.array([1.0], dtype=np.float32)
    elif name == "log1p":
        fam["powers"] = _powers(-149, -71)
        fam["band"] = zeros
    elif name == "expm1":
        fam["near -1"] = _uniform(rng, n, -1360.0, -49.0)
        fam["band"] = np.concatenate([_uniform(rng, n // 2, -3000.0, -1361.0), _magnitudes(rng, n // 2, 11, 127, -1)])
        fam["powers"] = _powers(-149, -71)
    elif name == "tanh":
        fam["near 1"] = _uniform(rng, n, 25.0, 679.0) * rng.choice(np.array([-1, 1], dtype=np.float32), n)
        fam["band"] = np.concatenate([_magnitudes(rng, n - 1, 10, 127), zeros[:1]])
        fam["powers"] = _powers(-149, -36)
    elif name == "sigmoid":
        fam["near 1/2"] = _magnitudes(rng, n, -149, -69)
        fam["near 1"] = _uniform(rng, n, 49.0, 1359.0)
        fam["band"] = np.concatenate([_magnitudes(rng, n - 2, 11, 127, 1), zeros])
    elif name == "softplus":
        fam["powers"] = _powers(6, 127, 1)
    elif name == "log_sigmoid":
        fam["powers"] = _powers(6, 127, -1)
    elif name == "silu":
        fam["odd subnormals"] = _odd_subnormals(rng, n)
        fam["powers"] = _powers(6, 10, 1)
        fam["band"] = np.concatenate([_powers(11, 127, 1), zeros])
    elif name == "gelu":
        fam["odd subnormals"] = _odd_subnormals(rng, n)
        fam["powers"] = _powers(4, 5, 1)
        fam["band"] = np.concatenate([_powers(6, 127, 1), zeros])
    else:
        raise KeyError(name)
    return {k: np.unique(v) for k, v in fam.items()}


def _approx(name: str, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """float64 values of the oracle, good to a few float64 ulps where the search looks."""
    def sig(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 0.5 * (1 + np.tanh(v / 2))

    if name == "gelu":
        erfc = np.frompyfunc(math.erfc, 1, 1)
        return 0.5 * x * np.asarray(erfc(-x / math.sqrt(2)), dtype=np.float64)
    table: dict[str, Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]] = {
        "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "tanh": np.tanh, "sigmoid": sig,
        "softplus": lambda v: np.logaddexp(0, v), "log_sigmoid": lambda v: -np.logaddexp(0, -v),
        "silu": lambda v: v * sig(v),
    }
    return table[name](x)


#: where the near-midpoint search draws x: (lowest binade, highest binade, sign)
_SEARCH: dict[str, list[tuple[int, int, int]]] = {
    "exp": [(-20, 6, 0)], "log": [(-126, 127, 1)], "log1p": [(-20, 60, 1), (-20, -1, -1)],
    "expm1": [(-20, 6, 0)], "tanh": [(-10, 3, 0)], "sigmoid": [(-10, 4, 0)], "softplus": [(-10, 4, 0)],
    "log_sigmoid": [(-10, 4, 0)], "silu": [(-10, 4, 0)], "gelu": [(-10, 2, 0)],
}


def near_midpoints(name: str, n: int, rng: np.random.Generator, samples: int = 1 << 22) -> F32:
    """The ``n`` inputs among ``samples`` random ones whose float64 result is closest to a
    float32 rounding midpoint (relative to the float32 ulp), closest first."""
    parts = [_magnitudes(rng, samples // len(_SEARCH[name]), lo, hi, s) for lo, hi, s in _SEARCH[name]]
    x = np.unique(np.concatenate(parts))
    with np.errstate(all="ignore"):
        y = _approx(name, x.astype(np.float64))
        ok = np.isfinite(y) & (np.abs(y) >= 2.0**-125) & (np.abs(y) < 2.0**127)
        x, y = x[ok], y[ok]
        _, e = np.frexp(y)
        k = np.ldexp(np.abs(y), 24 - e)  # y in float32 ulps: a midpoint is k + 1/2
        d = np.abs(k - np.floor(k) - 0.5)
    return x[np.argsort(d, kind="stable")[:n]]


def hard_inputs(name: str, n: int, rng: np.random.Generator, samples: int = 1 << 22) -> F32:
    """``n`` hard inputs of ``name``: the families (up to 3/4 of n, spread over them), then
    the closest near-midpoints among ``samples`` random inputs."""
    fams = list(hard_families(name, rng).values())
    share = (3 * n // 4) // len(fams)
    chosen = [f if f.size <= share else rng.choice(f, share, replace=False) for f in fams]
    picked = np.unique(np.concatenate(chosen))
    rest = near_midpoints(name, n, rng, samples)
    rest = rest[~np.isin(rest.view(np.uint32), picked.view(np.uint32))][: n - picked.size]
    return np.concatenate([picked, rest]).astype(np.float32)


# -- (c) arb through python-flint -------------------------------------------------------
# The formulas of oracles.exact in ball arithmetic. A ball's ends are exact binary numbers
# (man, exp) = man * 2**exp, so everything after the formula is integer arithmetic here:
# the rounding of oracles.rounding.round_mpf, the binade of oracles.ziv.binade_of (the band
# of 2**-NEAR_POWER below a power of two), exact sums with the exact part c, and ziv's
# hi/lo. (Settling through mpmath values instead made the decision cost 10x the formula.)

FAR, TINY = 1500.0, 4000.0  # as in oracles.exact: a negligible correction / a result below 2**-4096
Exact = tuple[int, int]  # man * 2**exp, man signed

_FLINT_SPECIAL: dict[str, tuple[float | None, float, float]] = {  # y at x = 0, +inf, -inf
    "exp": (1.0, math.inf, 0.0), "log": (-math.inf, math.inf, math.nan), "log1p": (0.0, math.inf, math.nan),
    "expm1": (0.0, math.inf, -1.0), "tanh": (0.0, 1.0, -1.0), "sigmoid": (0.5, 1.0, 0.0),
    "softplus": (None, math.inf, 0.0), "log_sigmoid": (None, 0.0, -math.inf), "silu": (0.0, math.inf, 0.0),
    "gelu": (0.0, math.inf, 0.0),
}


def _of_float(v: float) -> Exact:
    n, d = v.as_integer_ratio()
    return n, 1 - d.bit_length()


def _add(a: Exact, b: Exact) -> Exact:
    (ma, ea), (mb, eb) = a, b
    if ea > eb:
        return (ma << (ea - eb)) + mb, eb
    return ma + (mb << (eb - ea)), ea


def _mag(v: Exact) -> int:
    """|v| < 2**mag (v != 0)."""
    return v[1] + abs(v[0]).bit_length()


def _binade(v: Exact) -> int:
    m, bc = abs(v[0]), abs(v[0]).bit_length()
    b = v[1] + bc - 1
    # in the band below 2**(b+1): the top NEAR_POWER bits of the significand all set
    if bc >= NEAR_POWER and m >= (1 << bc) - (1 << (bc - NEAR_POWER)):
        return b + 1
    return b


def _ulp(v: Exact, fmt: Format) -> int:
    if not v[0]:
        return fmt.emin - fmt.precision + 1
    return max(_binade(v), fmt.emin) - fmt.precision + 1


def _round(v: Exact, fmt: Format) -> float:
    """oracles.rounding.round_mpf on (man, exp)."""
    man, exp = v
    if not man:
        return 0.0
    m0 = abs(man)
    q = max(exp + m0.bit_length() - 1, fmt.emin) - fmt.precision + 1
    shift = q - exp
    if shift <= 0:
        m = m0 << -shift
    elif shift > m0.bit_length():
        m = 0
    else:
        m = m0 >> shift
        rem, half = m0 - (m << shift), 1 << (shift - 1)
        if rem > half or (rem == half and m & 1):
            m += 1
    r = math.inf if q + m.bit_length() - 1 > fmt.emax else math.ldexp(float(m), q)
    if math.isinf(r) and not fmt.has_inf:
        r = math.nan
    return -r if man < 0 else r


def _to_float(v: Exact) -> float:
    """man * 2**exp to nearest (Python's int / int is correctly rounded, subnormals too)."""
    man, exp = v
    top = exp + abs(man).bit_length()
    if top > 1025:
        return math.copysign(math.inf, man)
    if top < -1080:  # below half the smallest subnormal, and no huge shift for exp(-3e38)
        return math.copysign(0.0, man)
    if exp >= 0:
        return float(man << exp)
    out = man / (1 << -exp)
    return -0.0 if out == 0 and man < 0 else out


def _settled(v: Exact, fmt: Format, e: int | None = None) -> Settled:
    """ziv's _settled_value: hi = v / 2**e to nearest, lo the exact rest to nearest."""
    if e is None:
        e = _ulp(v, fmt)
    scaled = (v[0], v[1] - e)
    hi = _to_float(scaled)
    hm, he = _of_float(hi)
    rest = _add(scaled, (-hm, he))
    lo = _to_float(rest) if rest[0] else (-0.0 if v[0] < 0 else 0.0)
    return (_round(v, fmt), hi, lo, min(e, ULP_EXP_MAX))


FlintValue = float | str | tuple[Exact | None, Any]


def _flint_formula(name: str, x: float, flint: Any) -> FlintValue:
    """y as (exact part c or None, arb ball of the correction), an exact float, or "far+"
    / "far-" (y = c + t, t negligible, c = x or +-1 by the oracle) / "tiny+" / "tiny-"."""
    arb = flint.arb
    if math.isinf(x) or x == 0:
        got = _FLINT_SPECIAL[name][0 if x == 0 else (1 if x > 0 else 2)]
        if got is not None:
            return got
    if name == "log" and (x < 0 or x == 1):
        return math.nan if x < 0 else 0.0
    if name == "log1p" and x <= -1:
        return math.nan if x < -1 else -math.inf
    a = arb(x)
    ex = _of_float(x)
    half_x = (ex[0], ex[1] - 1)
    if name == "exp":
        return ((1, 0), a.expm1()) if abs(x) < 0.25 else (None, a.exp())
    if name == "log":
        return None, a.log()
    if name == "log1p":
        return None, a.log1p()
    if name == "expm1":
        if x < -FAR:
            return "far+"
        return ((-1, 0), a.exp()) if x < -1 else (None, a.expm1())
    if name == "tanh":
        if abs(x) > FAR:
            return "far-" if x > 0 else "far+"
        if abs(x) < 1:
            return None, a.tanh()
        u = arb(-2 * abs(x)).exp()
        t = 2 * u / (1 + u)
        return ((1, 0), -t) if x > 0 else ((-1, 0), t)
    if name in ("sigmoid", "silu"):
        if x > FAR:
            return "far-"
        if x < -TINY:
            return "tiny+" if name == "sigmoid" else "tiny-"
        if x >= 1:
            s = 1 / (1 + a.exp())
            return ((1, 0), -s) if name == "sigmoid" else (ex, -(a * s))
        if x <= -1:
            s = 1 / (1 + (-a).exp())
            return None, (s if name == "sigmoid" else a * s)
        h = a * 0.5
        return ((1, -1), h.tanh() * 0.5) if name == "sigmoid" else (half_x, h * h.tanh())
    if name == "softplus":
        if x > FAR:
            return "far+"
        if x < -TINY:
            return "tiny+"
        return (ex, (-a).exp().log1p()) if x > 0 else (None, a.exp().log1p())
    if name == "log_sigmoid":
        if x < -FAR:
            return "far-"
        if x > TINY:
            return "tiny-"
        return (ex, -(a.exp().log1p())) if x < 0 else (None, -((-a).exp().log1p()))
    if name == "gelu":
        if x >= 64:
            return "far-"
        if x < -80:
            return "tiny-"
        z = a / arb(2).sqrt()
        h = a * 0.5
        if x >= 1:
            return ex, -(h * z.erfc())
        if x <= -1:
            return None, h * (-z).erfc()
        return half_x, h * z.erf()
    raise KeyError(name)


def _flint_decide(got: FlintValue, x: float, name: str, fmt: Format) -> Settled | None:
    if isinstance(got, float):
        if got != got:
            return (math.nan, math.nan, 0.0, 0)
        if math.isinf(got):
            return (got, got, 0.0, 0)
        if got == 0:
            return (0.0, 0.0, 0.0, fmt.emin - fmt.precision + 1)
        return _settled(_of_float(got), fmt)
    if isinstance(got, str):
        if got.startswith("tiny"):
            zero = -0.0 if got == "tiny-" else 0.0
            return (zero, zero, zero, fmt.emin - fmt.precision + 1)
        far = _of_float(x) if name not in ("expm1", "tanh", "sigmoid") else ((-1, 0) if x < 0 else (1, 0))
        return _settled(_add(far, (1 if got == "far+" else -1, _mag(far) - NEAR_POWER - 72)), fmt)
    c, t = got
    if not t.is_finite():
        return None
    (lo_man, lo_exp), (hi_man, hi_exp) = t.lower().man_exp(), t.upper().man_exp()
    lo, hi = (int(lo_man), int(lo_exp)), (int(hi_man), int(hi_exp))
    if not lo[0] or not hi[0] or (lo[0] > 0) != (hi[0] > 0):
        return None  # the ball touches 0: its sign, and so a rounding to +-0, is open
    if c is not None:
        if max(_mag(lo), _mag(hi)) < _mag(c) - NEAR_POWER - 64:
            return _settled(_add(c, (1 if lo[0] > 0 else -1, _mag(c) - NEAR_POWER - 72)), fmt)
        lo, hi = _add(c, lo), _add(c, hi)
    want = _round(lo, fmt)
    e = _ulp(lo, fmt)
    if _round(hi, fmt) != want or _ulp(hi, fmt) != e:
        return None
    width = _add(hi, (-lo[0], lo[1]))
    if width[0] and _mag(width) > _mag(lo) - 100:
        return None
    mid = _add(lo, hi)
    return (want, *_settled((mid[0], mid[1] - 1), fmt, e)[1:])


def _flint_one(name: str, x: float, fmt: Format, flint: Any) -> Settled:
    if x != x:
        return (math.nan, math.nan, 0.0, 0)
    wp = 128
    while True:
        flint.ctx.prec = wp
        got = _flint_decide(_flint_formula(name, x, flint), x, name, fmt)
        if got is not None:
            return got
        if wp >= 1 << 14:
            raise RuntimeError(f"flint: {name}({x!r}) did not settle")
        wp *= 2


def flint_settle(name: str, xs: Sequence[float], fmt: Format) -> list[Settled]:
    """Settled tuples of the built-in oracle ``name`` (default parameters) with arb balls,
    at 128 bits doubling up to 2**14."""
    import flint  # lazy: optional, only for this measurement

    saved = flint.ctx.prec
    try:
        return [_flint_one(name, x, fmt, flint) for x in xs]
    finally:
        flint.ctx.prec = saved


# -- measurement ------------------------------------------------------------------------


def _mismatches(ref: list[Settled], got: list[Settled], fmt: Format) -> tuple[int, float]:
    """(elements whose want or ulp_exp differ, worst |hi + lo| difference relative)."""
    bad, worst = 0, 0.0
    for (w1, h1, l1, e1), (w2, h2, l2, e2) in zip(ref, got, strict=True):
        same_want = (w1 == w2 and math.copysign(1, w1) == math.copysign(1, w2)) or (w1 != w1 and w2 != w2)
        if not same_want or e1 != e2:
            bad += 1
        elif math.isfinite(h1) and h1:
            worst = max(worst, abs((h2 - h1) + (l2 - l1)) / abs(h1))
    return bad, worst


def _timed(fn: Callable[[], list[Settled]], repeat: int) -> tuple[float, list[Settled]]:
    """The best of ``repeat`` timings (the machines are shared: the minimum is the least
    disturbed run) and the result."""
    best, out = math.inf, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def measure(name: str, x: F32, fmt: Format, use_flint: bool, repeat: int = 1) -> dict[str, Any]:
    """Elements/s of each path on ``x``, and how (b) and (c) compare with (a)."""
    o = get_oracle(name)
    params = o.math_params(o.bind(None))
    xs = x.astype(np.float64)

    def mpmath_path() -> list[Settled]:
        r = evaluate(o, [xs], fmt, tier=False)
        return list(zip(r.want.tolist(), r.hi.tolist(), r.lo.tolist(), r.ulp_exp.tolist(), strict=True))

    def gmpy2_path() -> list[Settled]:
        got = settle_fast(o, xs, fmt, params)
        assert got is not None, "gmpy2 is not installed"
        return got

    t_mp, ref = _timed(mpmath_path, repeat)
    t_g, got = _timed(gmpy2_path, repeat)
    row: dict[str, Any] = {"n": int(x.size), "mpmath": x.size / t_mp, "gmpy2": x.size / t_g}
    row["gmpy2_mismatch"], row["gmpy2_hi_lo"] = _mismatches(ref, got, fmt)
    if use_flint:
        t_f, got_f = _timed(lambda: flint_settle(name, xs.tolist(), fmt), repeat)
        row["flint"] = x.size / t_f
        row["flint_mismatch"], row["flint_hi_lo"] = _mismatches(ref, got_f, fmt)
    return row


def band_inputs(name: str, n: int, rng: np.random.Generator) -> F32 | None:
    """Up to ``n`` inputs whose result lies in the band below a power of two (ziv: 2,000+
    bits), or None where the oracle has fewer than 100 such float32 inputs."""
    band = hard_families(name, rng, n).get("band")
    return band if band is not None and band.size >= 100 else None


SETS: dict[str, Callable[[str, int, np.random.Generator], F32 | None]] = {
    "random": lambda name, n, rng: uniform_patterns(n, rng),
    "hard": hard_inputs,
    "band": band_inputs,
}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="inputs per oracle and set (default 2000)")
    ap.add_argument("--oracles", default=",".join(ORACLES), help="comma-separated subset")
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated subset of " + ", ".join(SETS))
    ap.add_argument("--repeat", type=int, default=3, help="time each path this many times, keep the best")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-flint", action="store_true", help="skip python-flint even if installed")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)

    use_flint = not args.no_flint
    flint_version = None
    if use_flint:
        try:
            import flint  # lazy: optional

            flint_version = flint.__version__
        except ImportError:
            use_flint = False
    import gmpy2  # the test extra; settle_fast returns None without it

    rng = np.random.default_rng(args.seed)
    names = [s for s in args.oracles.split(",") if s]
    results: dict[str, Any] = {
        "machine": platform.platform(), "python": platform.python_version(), "gmpy2": gmpy2.version(),
        "mpfr": gmpy2.mpfr_version(), "flint": flint_version, "format": "float32", "repeat": args.repeat, "sets": {},
    }
    print(f"float32 references, elements/s, best of {args.repeat} ({results['machine']}; {results['mpfr']}, "
          f"python-flint {flint_version})")
    header = f"{'':14}{'mpmath':>10}{'gmpy2':>10}{'ratio':>8}"
    if use_flint:
        header += f"{'flint':>10}{'ratio':>8}"
    for set_name in [s for s in args.sets.split(",") if s]:
        print(f"\n{set_name} inputs (up to {args.n} per oracle)\n{header}")
        rows: dict[str, Any] = {}
        seconds = {"mpmath": 0.0, "gmpy2": 0.0, "flint": 0.0}
        count = 0
        for name in names:
            x = SETS[set_name](name, args.n, rng)
            if x is None:
                continue
            row = rows[name] = measure(name, x, FLOAT32, use_flint, args.repeat)
            count += row["n"]
            paths = ["mpmath", "gmpy2"] + (["flint"] if use_flint else [])
            for path in paths:
                seconds[path] += row["n"] / row[path]
            line = f"{name:14}" + "".join(
                f"{row[p]:>10.0f}" + (f"{row[p] / row['mpmath']:>7.1f}x" if p != "mpmath" else "") for p in paths)
            bad = row["gmpy2_mismatch"] + row.get("flint_mismatch", 0)
            line += f"   n {row['n']}, want/ulp mismatches {bad}, hi+lo within "
            line += f"{max(row['gmpy2_hi_lo'], row.get('flint_hi_lo', 0)):.0e}"
            print(line)
        overall = {k: count / v for k, v in seconds.items() if v}
        print(f"{'all':14}" + "".join(
            f"{overall[p]:>10.0f}" + (f"{overall[p] / overall['mpmath']:>7.1f}x" if p != "mpmath" else "")
            for p in overall))
        results["sets"][set_name] = {"oracles": rows, "overall": overall}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
