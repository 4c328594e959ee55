"""Consistency cells through the runner: built-ins, functions held in memory and custom
implementations in the isolated process, judged without any oracle evaluated.

Layer: runner integration. The checks' arithmetic is tested in test_consistency_checks.py;
here each assertion is what a user of ``fpharness check --consistency`` sees in a cell: a
planted tail is caught at exactly the lengths that have one, the same function gives the
same verdict in this process and in the isolated one, and an implementation that raises,
hangs or lacks a dtype becomes an error, timeout or unsupported cell while the run goes on.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.execution.runner import Runner
from harness.execution.schedule import run_cells
from harness.frameworks.registry import Impl
from harness.plan.cells import Budget, CellResult, CellSpec

TAIL = textwrap.dedent('''
    import numpy as np

    def tail_sigmoid(x):
        """A body of 8-wide vectors and a scalar tail that rounds another way."""
        flat = np.asarray(x).ravel()
        body = flat.size - flat.size % 8
        out = np.empty_like(flat)
        out[:body] = 1 / (1 + np.exp(-flat[:body]))
        out[body:] = np.exp(-np.logaddexp(0, -flat[body:]))
        return out.reshape(np.shape(x))

    def steady_sigmoid(x):
        return 1 / (1 + np.exp(-np.asarray(x)))
''')


def _cell(impl: str, check: str, *, oracle: str = "", framework: str = "numpy", dtype: str = "float32",
          inputs: str = "random:300", custom: bool = True, timeout: float = 300.0,
          max_ulp: float | None = None, params: tuple[tuple[str, Any], ...] = ()) -> CellSpec:
    return CellSpec(oracle, impl, framework, dtype, "cpu", inputs, params, Budget(max_ulp=max_ulp),
                    custom=custom, timeout=timeout, check=check)


def _run(cells: list[CellSpec], fns: dict[str, Any] | None = None) -> list[CellResult]:
    runner = Runner()
    for ref, fn in (fns or {}).items():
        runner.extra_impls[ref] = Impl(ref, cells[0].framework, cells[0].oracle, fn, custom=True)
    return run_cells(cells, runner=runner)


@pytest.fixture
def tail_file(tmp_path: Path) -> Path:
    path = tmp_path / "kernels.py"
    path.write_text(TAIL, encoding="utf-8")
    return path


def test_a_planted_tail_is_caught_at_exactly_the_lengths_with_a_body(tail_file: Path) -> None:
    planted, steady = (f"{tail_file}:{name}" for name in ("tail_sigmoid", "steady_sigmoid"))
    results = _run([_cell(planted, "position"), _cell(steady, "position"), _cell(planted, "layout")])
    caught, clean, layout = results
    assert caught.status == "fail" and caught.consistency is not None
    # alone, every value is in the tail; from length 8 on the first L - L % 8 are not
    assert caught.consistency.lengths == tuple(range(8, 66))
    # position 64 of length 65 is the tail, as alone: it never differs
    assert max(caught.consistency.positions) <= 63 and caught.reason.startswith(caught.consistency.headline())
    assert all(int(m.context.split("position ")[1]) < 64 for m in caught.consistency.examples
               if m.context.startswith("at length"))
    assert clean.status == "pass" and clean.consistency is not None and clean.consistency.differing == 0
    assert clean.consistency.compared > 300 * 64  # every value at a position of every length 2-65
    # the views of a 304-long (padded) batch all have their body at the same elements
    assert layout.status == "pass", layout.reason


def test_in_memory_and_isolated_give_the_same_record(tail_file: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("fpharness_test_kernels", tail_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    isolated = _run([_cell(f"{tail_file}:tail_sigmoid", check) for check in ("position", "layout", "repeat")])
    in_memory = _run([_cell("mem:tail", check) for check in ("position", "layout", "repeat")],
                     {"mem:tail": module.tail_sigmoid})
    for a, b in zip(isolated, in_memory, strict=True):
        assert a.status == b.status and a.consistency == b.consistency, a.spec.check


def test_a_builtin_with_an_oracle_gets_its_properties_judged() -> None:
    cells = [_cell("numpy.exp", check, oracle="exp", custom=False, inputs="special")
             for check in ("position", "layout", "repeat", "monotone", "bounds")]
    results = _run(cells)
    assert [r.status for r in results] == ["pass"] * 5, [r.reason for r in results]
    monotone = results[3].consistency
    assert monotone is not None and dict((n, c) for n, c, _ in monotone.contexts)["adjacent inputs"] > 100


def test_the_torch_softplus_length_dependence_is_flagged() -> None:
    pytest.importorskip("torch")
    [result] = _run([_cell("torch.softplus", "position", oracle="softplus", framework="torch", custom=False,
                           inputs="special", params=(("beta", 1.0),))])
    found = result.consistency
    assert result.status == "fail" and found is not None
    # pytorch#48235: the vectorised path starts at 32 elements in torch 2.13 on x86 CPUs
    assert min(found.lengths) >= 16 and found.max_ulp is not None and found.max_ulp >= 1


def test_a_failing_or_hanging_implementation_is_a_cell_and_the_run_goes_on() -> None:
    def raises_alone(x: Any) -> Any:
        if np.asarray(x).size == 1:
            raise ValueError("needs a batch")
        return np.exp(x)

    def hangs_alone(x: Any) -> Any:
        if np.asarray(x).size == 1:
            time.sleep(30)
        return np.exp(x)

    cells = [_cell("mem:raises", "position"), _cell("mem:hangs", "position", timeout=1.0), _cell("mem:ok", "repeat")]
    runner = Runner()
    for ref, fn in (("mem:raises", raises_alone), ("mem:hangs", hangs_alone), ("mem:ok", np.exp)):
        runner.extra_impls[ref] = Impl(ref, "numpy", "", fn, custom=True)
    raised, hung, ok = run_cells(cells, runner=runner)
    assert raised.status == "error" and raised.reason == "length 1: ValueError: needs a batch"
    assert hung.status == "error" and "timed out" in hung.reason
    assert ok.status == "pass"


def test_a_dtype_the_framework_lacks_is_unsupported_not_an_error() -> None:
    def no_bfloat16(x: Any) -> Any:
        raise TypeError("bfloat16 is not supported")

    runner = Runner()
    runner.extra_impls["mem:f"] = Impl("mem:f", "numpy", "", no_bfloat16, custom=True, unsupported_dtypes=("bfloat16",))
    [result] = run_cells([_cell("mem:f", "repeat", dtype="bfloat16")], runner=runner)
    assert result.status == "unsupported" and "bfloat16 is not supported" in result.reason


def test_the_record_survives_the_results_file(tail_file: Path) -> None:
    [result] = _run([_cell(f"{tail_file}:tail_sigmoid", "position", max_ulp=0)])
    again = CellResult.from_json(result.to_json())
    assert again.consistency == result.consistency and again.spec == result.spec
    assert result.to_json()["check"] == "position" and result.to_json()["pass"] == "consistency"


def test_a_tolerance_lets_small_differences_pass(tail_file: Path) -> None:
    strict, loose = _run([_cell(f"{tail_file}:tail_sigmoid", "position", inputs="uniform:-4:4:300"),
                          _cell(f"{tail_file}:tail_sigmoid", "position", inputs="uniform:-4:4:300", max_ulp=64)])
    assert strict.status == "fail" and strict.consistency is not None and strict.consistency.max_ulp is not None
    assert strict.consistency.max_ulp <= 64, "the two formulas agree to a few ulps on [-4, 4]"
    assert loose.status == "pass" and loose.consistency is not None and loose.consistency.tolerance == 64


def test_an_operation_without_an_oracle_runs_in_worker_processes(tail_file: Path) -> None:
    # -j N (the CLI's default is every core): the workers import no oracle for these cells
    cells = [_cell(f"{tail_file}:tail_sigmoid", check, inputs=inputs)
             for check in ("position", "repeat") for inputs in ("special", "random:200")]
    serial = _run(cells)
    parallel = run_cells(cells, runner=Runner(), jobs=2)
    assert [r.status for r in parallel] == [r.status for r in serial] == ["fail", "fail", "pass", "pass"]
    assert [r.consistency for r in parallel] == [r.consistency for r in serial]


def test_a_reused_cell_keeps_its_record(tail_file: Path, tmp_path: Path) -> None:
    from harness.record.reuse import ResultStore

    cell = _cell(f"{tail_file}:tail_sigmoid", "position")
    [result] = _run([cell])
    store = ResultStore(tmp_path / "cache")
    [key] = store.fingerprints([cell])
    assert store.put(result, key)
    again = store.get(cell)
    assert again is not None and again.status == "fail" and again.consistency == result.consistency
    assert again.to_json()["consistency"] == result.to_json()["consistency"]


def test_a_timed_out_check_stops_calling_the_implementation() -> None:
    calls = [0]

    def slow_first(x: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            time.sleep(1.5)
        return np.exp(x)

    runner = Runner()
    runner.extra_impls["mem:slow"] = Impl("mem:slow", "numpy", "", slow_first, custom=True)
    [result] = run_cells([_cell("mem:slow", "position", timeout=0.5)], runner=runner)
    assert result.status == "error" and "timed out" in result.reason
    time.sleep(2.0)  # the abandoned thread wakes up, and stops at its next call
    assert calls[0] == 1
