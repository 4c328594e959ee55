"""What the executor tests (-j N, Ray) share: numpy cells, and results without timings, so
that a run elsewhere can be compared with a serial run field by field."""

from __future__ import annotations

from typing import Any

from harness.plan.cells import CellResult, CellSpec


def numpy_cell(impl: str, oracle: str, dtype: str, inputs: str, *, custom: bool = True) -> CellSpec:
    """A cpu cell of a numpy implementation (a custom ``path.py:function`` by default)."""
    return CellSpec(oracle, impl, "numpy", dtype, "cpu", inputs, custom=custom)


def untimed(results: list[CellResult]) -> list[dict[str, Any]]:
    """The results' JSON without the two timings, which differ from run to run."""
    out = []
    for r in results:
        d = r.to_json()
        d.pop("seconds")
        d.pop("impl_seconds")
        out.append(d)
    return out
