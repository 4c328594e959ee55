"""Crafted results for the comparison and history tests: cells built from Summary records,
with fixed run metadata so that views render the same text every time."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness.judgement.summary import CATEGORIES, Summary
from harness.plan.cells import Budget, CellResult, CellSpec
from harness.record.results import Results, RunInfo


def summary(n: int = 100, cr: int = 90, ulp: float = 0.5, incidence: Mapping[str, int] | None = None) -> Summary:
    counts = tuple((incidence or {}).get(c, 0) for c in CATEGORIES)
    finite = n - sum(counts)
    return Summary(
        n=n, correctly_rounded=cr, counts=counts, ulp_count=finite, ulp_max=ulp,
        # the key written at 64 bins per octave, folded to 16 as Summary.from_json folds old files
        ulp_sum=0, ulp_zero=cr, bins=((-(-(int(ulp * 64) - 64) // 4), finite - cr),) if finite > cr else (),
    )


def cell(
    oracle: str = "softplus",
    impl: str = "torch.softplus",
    dtype: str = "float16",
    *,
    framework: str | None = None,
    device: str = "cpu",
    inputs: str = "special",
    status: str = "pass",
    reason: str = "",
    out_dtype: str | None = "same",
    n: int = 100,
    cr: int = 90,
    ulp: float = 0.5,
    incidence: Mapping[str, int] | None = None,
    max_ulp: float | None = None,
) -> CellResult:
    spec = CellSpec(
        oracle=oracle, impl=impl, framework=framework or impl.split(".")[0], dtype=dtype, device=device,
        inputs=inputs, budget=Budget.build(max_ulp),
    )
    if status in ("error", "skipped"):
        return CellResult(spec, status, reason)
    return CellResult(
        spec, status, reason, dtype if out_dtype == "same" else out_dtype, summary(n, cr, ulp, incidence),
    )


def run(started: str = "2026-01-01T00:00:00+00:00", *, torch: str = "2.3.0", numpy: str = "2.0.0",
        git: str = "aaaaaaaaaaaa", gpu: str = "NVIDIA A100") -> RunInfo:
    return RunInfo(
        started=started, finished=started.replace("00:00:00", "00:10:00"), host="ci", python="3.11.7",
        platform="Linux", fpharness="0.1.0", frameworks={"torch": torch, "numpy": numpy},
        devices={"torch": {"cpu": "x86_64 CPU", "cuda": gpu}, "numpy": {"cpu": "x86_64 CPU"}},
        git_commit=git, seeds=(), command="fpharness run suites/frameworks.toml",
    )


def baseline_and_current() -> tuple[Results, Results]:
    """One cell of every verdict kind (and a defect regression) between two nightly runs."""
    base = Results(run(), (
        cell("softplus", "torch.softplus", "float16", ulp=0.5),                      # regressed (ulp)
        cell("softplus", "torch.softplus", "bfloat16", ulp=0.5),                     # regressed (defect)
        cell("exp", "torch.exp", "bfloat16", ulp=1.0, cr=90),                        # improved
        cell("log", "numpy.log", "float16", ulp=0.5),                                # unchanged
        cell("sigmoid", "torch.sigmoid", "float32", ulp=1.0),                        # new failure
        cell("silu", "numpy.silu", "float16", status="fail", ulp=3.0, max_ulp=1,
             reason="max ulp 3 > 1"),                                                 # fixed
        cell("expm1", "numpy.expm1", "float16"),                                     # missing
        cell("log1p", "torch.log1p", "float16", device="cuda"),                      # incomparable
    ))
    cur = Results(run("2026-01-02T00:00:00+00:00", torch="2.4.0", git="bbbbbbbbbbbb", gpu="NVIDIA H100"), (
        cell("softplus", "torch.softplus", "float16", ulp=2.0, cr=85),
        cell("softplus", "torch.softplus", "bfloat16", ulp=0.5, incidence={"unexpected_inf": 3}),
        cell("exp", "torch.exp", "bfloat16", ulp=0.5, cr=95),
        cell("log", "numpy.log", "float16", ulp=0.5),
        cell("sigmoid", "torch.sigmoid", "float32", status="error", reason="RuntimeError: kaboom"),
        cell("silu", "numpy.silu", "float16", ulp=0.75, max_ulp=1),
        cell("gelu", "numpy.gelu", "float16"),
        cell("log1p", "torch.log1p", "float16", device="cuda", out_dtype="float32"),
    ))
    return base, cur


TINY_IMPLS = '''
import numpy as np


def naive_softplus(x):
    return np.log(np.asarray(1, x.dtype) + np.exp(x))


def stable_softplus(x):
    return np.logaddexp(np.asarray(0, x.dtype), x)


def np_exp(x):
    return np.exp(x)


def np_log(x):
    return np.log(x)
'''

TINY_SUITE = '''
schema = 1
name = "tiny"

[[case]]
oracle = "softplus"
impls = ["impls.py:naive_softplus", "impls.py:stable_softplus"]
framework = "numpy"
dtypes = ["float16", "bfloat16"]
inputs = ["special", "random:200:7"]

[[case]]
oracle = "exp"
impls = ["impls.py:np_exp"]
framework = "numpy"
dtypes = ["float16", "float32"]
inputs = ["special"]

[[case]]
oracle = "log"
impls = ["impls.py:np_log"]
framework = "numpy"
dtypes = ["float16"]
inputs = ["special"]
'''


def tiny_suite(directory: Path) -> Path:
    """A fast suite of custom numpy implementations (11 cells in 7 input groups)."""
    (directory / "impls.py").write_text(TINY_IMPLS, encoding="utf-8")
    path = directory / "tiny.toml"
    path.write_text(TINY_SUITE, encoding="utf-8")
    return path
