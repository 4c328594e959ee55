"""Crafted consistency cells for the view and comparison tests (a helper, not tests).

A consistency cell evaluates no oracle: its verdict is a
:class:`~harness.judgement.consistency.Consistency` built here by hand, with the contexts
the position check makes (``length 1`` … ``length 65``, ``batch``) and mismatches whose
input can be anything a test plants (``<script>`` included).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.judgement.consistency import Consistency, Mismatch
from harness.plan.cells import CellResult, CellSpec
from harness.record.results import Results, RunInfo

SCRIPT = "<script>alert(1)</script>"


def mismatch(i: int = 0, *, context: str = "at length 17, position 16", got: str = "0x00000008",
             expected: str = "0x00000007", ulp: float | None = 1.0, inputs: Sequence[str] = ("0xc2cacccd",),
             values: Sequence[str] = ("-101.4",)) -> Mismatch:
    return Mismatch(index=i, context=context, input=tuple(inputs), input_values=tuple(values), expected=expected,
                    expected_value="9.8e-45", got=got, got_value="1.1e-44", ulp=ulp)


def position(differing: int = 12, *, per_length: int = 64, max_ulp: float | None = 1.0,
             examples: Sequence[Mismatch] | None = None, notes: Sequence[str] = (), tolerance: float = 0.0,
             batch: int = 4096) -> Consistency:
    """The position check's verdict: ``differing`` comparisons spread over lengths 17 on
    (one a length), at positions 16 on; ``per_length`` comparisons per length 1-65 and
    ``batch`` in the batch."""
    contexts: list[tuple[str, int, int]] = []
    lengths = []
    left = differing
    for n in range(1, 66):
        d = 1 if n >= 17 and left > 0 else 0
        left -= d
        if d:
            lengths.append(n)
        contexts.append((f"length {n}", per_length, d))
    contexts.append(("batch", batch, left))
    shown = list(examples) if examples is not None else [mismatch(i, context=f"at length {17 + i}, position 16")
                                                         for i in range(min(differing, 4))]
    return Consistency.of("position", tolerance, contexts, max_ulp=max_ulp if differing else 0.0, lengths=lengths,
                          positions=[16 + i for i in range(len(lengths))], examples=shown if differing else (),
                          notes=notes)


def layout(differing: int = 3, *, notes: Sequence[str] = ("channels-last: numpy has no such layout",)) -> Consistency:
    contexts = [("transposed", 4096, differing), ("strided", 4096, 0), ("offset", 4096, 0)]
    shown = [mismatch(i, context="transposed", ulp=2.0) for i in range(min(differing, 2))]
    return Consistency.of("layout", 0, contexts, max_ulp=2.0 if differing else 0.0, examples=shown, notes=notes)


def bounds(differing: int = 2) -> Consistency:
    shown = [mismatch(i, context="row 3", got="0x3f800001", expected="at most 1.0", ulp=None) for i in range(differing)]
    return Consistency.of("bounds", 0, [("rows", 512, differing)], examples=shown)


def consistency_cell(verdict: Consistency | None, *, impl: str = "torch.softplus", oracle: str = "softplus",
                     dtype: str = "float32", device: str = "cpu", inputs: str = "special", status: str | None = None,
                     reason: str = "", framework: str | None = None, check: str | None = None) -> CellResult:
    """A consistency cell of ``verdict``'s check: status fail when it differs (its reason
    the headline, as the runner writes it), pass otherwise; ``status`` for error, skipped,
    unsupported (then ``verdict`` may be None and ``check`` names the check)."""
    name = check or (verdict.check if verdict is not None else "position")
    spec = CellSpec(oracle, impl, framework or impl.split(".")[0].split(":")[0], dtype, device, inputs, check=name,
                    custom=":" in impl)
    if status is None:
        assert verdict is not None
        status = "pass" if verdict.consistent else "fail"
        reason = reason or (verdict.headline() if status == "fail" else "")
    return CellResult(spec, status, reason, dtype if status in ("pass", "fail") else None, consistency=verdict)


def run_info(started: str = "2026-01-01T00:00:00+00:00") -> RunInfo:
    return RunInfo(
        started=started, finished=started.replace("T00:00:00", "T00:01:00"), host="ci", python="3.11.7",
        platform="Linux", fpharness="0.1.0", frameworks={"torch": "2.3.0", "numpy": "2.0.0"},
        devices={"torch": {"cpu": "x86_64 CPU"}, "numpy": {"cpu": "x86_64 CPU"}}, git_commit="a" * 40, seeds=(),
        command="fpharness run suites/frameworks.toml --consistency",
    )


def mixed_cells() -> list[CellResult]:
    """A subject with every kind of consistency cell (and its check columns out of order in
    the file), a user's operation without an oracle, and nothing else."""
    return [
        consistency_cell(layout(3), impl="numpy.softplus", dtype="float32"),
        consistency_cell(position(12)),
        consistency_cell(position(0), inputs="random:1000:0"),
        consistency_cell(position(0), dtype="bfloat16"),
        consistency_cell(layout(0, notes=()), dtype="float32"),
        consistency_cell(None, check="repeat", status="error", reason="RuntimeError: kaboom"),
        consistency_cell(None, check="device", status="skipped", device="cuda", reason="no CUDA device: none here"),
        consistency_cell(None, check="layout", impl="numpy.softplus", dtype="bfloat16", status="unsupported",
                         reason="numpy has no bfloat16"),
        consistency_cell(position(0), impl="my_ops.py:fused_gelu", oracle="", framework="torch"),
    ]


def as_dicts(cells: Sequence[CellResult]) -> list[dict[str, Any]]:
    return [c.to_json() for c in cells]


def results(cells: Sequence[CellResult], started: str = "2026-01-01T00:00:00+00:00") -> Results:
    return Results(run_info(started), tuple(cells))
