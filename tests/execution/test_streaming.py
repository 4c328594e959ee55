"""Exhaustive float32 inputs stream in bounded chunks, and the merged verdict of the
chunks is exactly the verdict of the whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_runner import IDENTITY, identity_reference

import harness.plan.inputs as inputs_mod
from harness.execution.runner import Runner
from harness.judgement.summary import judge
from harness.plan.cells import CellSpec
from harness.plan.inputs import StreamedPatterns, parse_inputs
from oracles import FLOAT32, FLOAT64, UsageError, get_oracle


def test_float32_exhaustive_covers_every_pattern_once_in_chunks() -> None:
    batches = parse_inputs("exhaustive").generate(get_oracle("softplus"), FLOAT32).batches
    assert isinstance(batches, StreamedPatterns)
    assert len(batches) * inputs_mod.STREAM_CHUNK == 1 << 32
    first, second, last = batches[0], batches[1], batches[-1]
    bits0 = first.arrays[0].view(np.uint32)
    assert bits0[0] == 0 and np.all(np.diff(bits0.astype(np.int64)) == 1)
    assert int(second.arrays[0].view(np.uint32)[0]) == inputs_mod.STREAM_CHUNK
    assert int(last.arrays[0].view(np.uint32)[-1]) == 0xFFFFFFFF
    assert first.arrays[0].dtype == np.float32


@pytest.mark.parametrize(
    ("oracle", "fmt"),
    [
        pytest.param("softmax", FLOAT32, id="rowwise"),
        pytest.param("binary_cross_entropy", FLOAT32, id="two-arguments"),
        pytest.param("softplus", FLOAT64, id="float64"),
    ],
)
def test_streaming_refuses_what_it_cannot_enumerate(oracle: str, fmt: Any) -> None:
    with pytest.raises(UsageError) as err:
        parse_inputs("exhaustive").generate(get_oracle(oracle), fmt)
    assert "\n" not in str(err.value)


def test_streamed_cell_merges_to_the_one_shot_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four chunks of 4096 patterns, judged one by one and merged, equal one judge() over
    all 16384 (worst examples and the exact mean included)."""
    monkeypatch.setattr(inputs_mod, "STREAM_CHUNK", 1 << 12)
    monkeypatch.setattr(StreamedPatterns, "__len__", lambda self: 4)
    impl = tmp_path / "impl.py"
    impl.write_text("import numpy as np\n\ndef nudge(x):\n    return np.nextafter(x, np.float32(np.inf))\n")
    seen: list[int] = []

    def reference(oracle: Any, arrays: list[np.ndarray], fmt: Any, params: dict[str, Any], **kw: Any) -> Any:
        assert kw.pop("cacheable") is False  # streamed chunks never go to the disk cache
        assert set(kw) == {"out"}  # and the previous chunk's arrays come back to be refilled
        seen.append(len(arrays[0]))
        return identity_reference(oracle, arrays, fmt, params)

    cell = CellSpec(IDENTITY, f"{impl}:nudge", "numpy", "float32", "cpu", "exhaustive", custom=True)
    result = Runner(reference=reference).run(cell)
    assert result.status in ("pass", "fail"), result.reason
    assert seen == [4096] * 4
    x = np.arange(0, 1 << 14, dtype=np.uint32).view(np.float32)
    with np.errstate(all="ignore"):
        got = np.nextafter(x, np.float32(np.inf))
    whole = judge(identity_reference(get_oracle(IDENTITY), [x.astype(np.float64)], FLOAT32, {}), got, FLOAT32)
    assert result.summary is not None
    assert result.summary.n == 1 << 14
    assert result.summary.to_json()["ulp"] == whole.to_json()["ulp"]
    assert result.summary.counts == whole.counts
    assert [e.index for e in result.summary.worst] == [e.index for e in whole.worst]


def _sigmoid_near_one(monkeypatch: pytest.MonkeyPatch) -> CellSpec:
    """torch.sigmoid over 4 chunks of 4096 patterns from 0x41a00000 (x = 20 upwards), where
    sigmoid is a hair below 1 and its ulp is that of the binade below: the fast tier's
    ``Decided.near`` regime, whose binade choice issue 18 changed."""
    pytest.importorskip("torch")
    monkeypatch.setattr(inputs_mod, "STREAM_CHUNK", 1 << 12)
    monkeypatch.setattr(StreamedPatterns, "__len__", lambda self: 4)
    start = 0x41A00000
    real = StreamedPatterns.__getitem__

    def shifted(self: StreamedPatterns, index: Any) -> Any:
        batch = real(self, index)
        bits = batch.arrays[0].view(np.uint32) + np.uint32(start)
        return type(batch)((bits.view(np.float32),))

    monkeypatch.setattr(StreamedPatterns, "__getitem__", shifted)
    return CellSpec("sigmoid", "torch.sigmoid", "torch", "float32", "cpu", "exhaustive")


def test_streamed_cell_rechecks_its_worst_elements_with_mpmath(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worst elements of a streamed cell are derived again by mpmath alone and agree;
    the results say how many."""
    result = Runner().run(_sigmoid_near_one(monkeypatch))
    assert result.status in ("pass", "fail"), result.reason
    assert result.rechecked == 10
    assert result.to_json()["rechecked"] == 10


def test_a_recheck_that_disagrees_makes_the_cell_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reference whose ulp is a binade off (the fast tier's bug before issue 18, in
    effect) gives ULP errors twice too large; mpmath alone disagrees at the worst element
    and the cell is an error that says so, not a verdict."""
    from oracles.evaluate import evaluate

    def off_by_a_binade(oracle: Any, arrays: list[np.ndarray], fmt: Any, params: dict[str, Any], **kw: Any) -> Any:
        ref = evaluate(oracle, arrays, fmt, params)
        ref.ulp_exp[:] -= 1
        ref.hi[:] *= 2
        ref.lo[:] *= 2
        return ref

    result = Runner(reference=off_by_a_binade).run(_sigmoid_near_one(monkeypatch))
    assert result.status == "error"
    assert "mpmath's alone" in result.reason and "please report" in result.reason
    assert result.rechecked == 0


_GLIBC = sys.platform.startswith("linux") and bool(getattr(os, "confstr", lambda _: None)("CS_GNU_LIBC_VERSION"))


@pytest.mark.skipif(not _GLIBC, reason="malloc's settings are glibc's")
def test_streamed_chunks_reuse_the_memory_of_the_previous_ones(tmp_path: Path) -> None:
    """A process that streams chunks has glibc keep their freed arrays for the next
    (runner._malloc_keeps_chunks): once the heap has grown to a chunk's working set (three
    chunks), a 4M-element chunk of numpy.exp faults in no page at all, against 2,400 with
    a fresh mmap per array (12,800 a chunk of torch's ∂gelu/∂x: 12% of its run)."""
    code = (
        "import resource\n"
        "from harness.execution.runner import Runner\n"
        "from harness.plan.cells import CellSpec\n"
        "cell = CellSpec('exp', 'numpy.exp', 'numpy', 'float32', 'cpu', 'exhaustive')\n"
        "r = Runner(); r.prepare(cell); r.run_part(cell, [497, 498, 499])\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "r.run_part(cell, [500, 501, 502])\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3)\n"
    )
    env = {**os.environ, "FPHARNESS_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert int(out.stdout.split()[-1]) < 500, out.stdout
