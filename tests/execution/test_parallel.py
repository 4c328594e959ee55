"""Cells over worker processes (-j N): the same results as a serial run, in the same
order, and a worker that dies takes only its own cell down."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from executors import numpy_cell, untimed

from harness.execution.runner import Part, Runner
from harness.execution.schedule import run_cells
from harness.execution.units import WorkerSetup
from harness.plan.cells import CellResult, CellSpec


@pytest.fixture(scope="module")
def impls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("par") / "par_impls.py"
    path.write_text(textwrap.dedent('''
        import os

        import numpy as np

        def naive_softplus(x):
            with np.errstate(all="ignore"):
                return np.log(1 + np.exp(x))

        def exp_f32(x):
            with np.errstate(all="ignore"):
                return np.exp(x.astype(np.float32)).astype(x.dtype)

        def abort(x):
            os.abort()  # takes its process down: no exception to catch

        def abort_later(x):
            import threading, time
            def die():
                time.sleep(1.5)
                os.abort()
            threading.Thread(target=die, daemon=True).start()
            return x  # the worker dies while idle, after returning

        def log_failing_in_chunk_2(x):
            # chunk 2 of the exhaustive float32 stream holds the patterns 2**23 .. 3 * 2**22
            bits = x.view(np.uint32)
            if bits.size and bits[0] == 2 * (1 << 22):
                raise ValueError("refuses chunk 2")
            with np.errstate(all="ignore"):
                return np.log(x)
    '''))
    return path


def test_parallel_run_equals_serial_run(impls: Path) -> None:
    f = str(impls)
    cells = [
        numpy_cell(f"{f}:naive_softplus", "softplus", "float16", "exhaustive"),
        numpy_cell("numpy.logaddexp", "softplus", "float16", "exhaustive", custom=False),
        numpy_cell(f"{f}:naive_softplus", "softplus", "float32", "random:20000:3"),
        numpy_cell(f"{f}:exp_f32", "exp", "bfloat16", "special"),
        numpy_cell("numpy.softmax", "softmax", "float32", "random:2000:1", custom=False),
        numpy_cell("numpy.logsumexp", "logsumexp", "float16", "special", custom=False),
    ]
    serial = run_cells(cells, runner=Runner())
    seen: list[str] = []
    par_runner = Runner()
    parallel = run_cells(cells, runner=par_runner, jobs=2, setup=WorkerSetup(),
                         on_result=lambda r: seen.append(r.spec.id))
    # the workers report what they ran with, for the run's metadata
    import numpy as np

    assert par_runner.framework_info["numpy"][0] == np.__version__
    assert untimed(parallel) == untimed(serial)
    assert seen == [c.id for c in cells], "results are reported in plan order"
    assert {r.status for r in serial} >= {"pass", "fail"}


def test_a_crashing_implementation_costs_only_its_own_cell(impls: Path) -> None:
    f = str(impls)
    cells = [
        numpy_cell(f"{f}:naive_softplus", "softplus", "float16", "exhaustive"),
        numpy_cell(f"{f}:abort", "exp", "float16", "special"),
        numpy_cell(f"{f}:exp_f32", "exp", "float16", "special"),  # same group as the crash
        numpy_cell(f"{f}:exp_f32", "exp", "float16", "exhaustive"),
    ]
    results = run_cells(cells, runner=Runner(), jobs=2, setup=WorkerSetup())
    assert [r.status for r in results] == ["fail", "error", "pass", "pass"]
    assert "worker process running it died" in results[1].reason
    assert results[1].spec.repro() in results[1].reason


def test_parts_of_a_streamed_cell_merge_to_the_whole(impls: Path) -> None:
    cell = numpy_cell("numpy.log", "log", "float32", "exhaustive", custom=False)
    runner = Runner()
    whole = runner.run_part(cell, [0, 1, 3])
    merged = runner.run_part(cell, [0]).merge(runner.run_part(cell, [1])).merge(runner.run_part(cell, [3]))
    assert merged.summary == whole.summary
    assert merged.ftz == whole.ftz and merged.out_name == whole.out_name == "float32"
    assert whole.summary is not None and whole.summary.n == 3 << 22


def test_first_failing_chunk_wins_as_in_a_serial_run(impls: Path) -> None:
    cell = numpy_cell(f"{impls}:log_failing_in_chunk_2", "log", "float32", "exhaustive")
    serial = Runner().run_part(cell, [0, 1, 2, 3])
    assert serial.failure == ("error", "ValueError: refuses chunk 2") and serial.failed_at == 2
    (result,) = run_cells([cell], runner=Runner(), jobs=2, setup=WorkerSetup())
    assert (result.status, result.reason) == ("error", "ValueError: refuses chunk 2")


def test_failure_in_a_part_stops_the_merge() -> None:
    ok = Part(out_name="float32")
    bad = Part(failure=("error", "boom"), failed_at=4)
    assert ok.merge(bad).failure == ("error", "boom")
    assert bad.merge(ok).failure == ("error", "boom")


def test_a_worker_dying_while_idle_does_not_end_the_run(impls: Path) -> None:
    import time

    f = str(impls)
    cells = [
        numpy_cell(f"{f}:abort_later", "log", "float16", "special"),
        numpy_cell(f"{f}:exp_f32", "exp", "float16", "special"),
    ]
    runner = Runner()
    runner.validate(cells)
    for c in cells:
        runner.prepare(c)
    from harness.execution.parallel import run_parallel

    results: list[CellResult] = []

    def slow(r: CellResult) -> None:
        results.append(r)
        time.sleep(2)  # let the first worker die before the next unit is submitted

    out = run_parallel(cells, runner, 1, WorkerSetup(), on_result=slow)
    assert [r.spec.id for r in out] == [c.id for c in cells]
    assert out[1].status == "pass"


def test_a_script_without_a_main_guard_falls_back_to_running_in_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent('''
        from harness.plan.cells import CellSpec
        from harness.execution.schedule import run_cells
        cells = [CellSpec("exp", "numpy.exp", "numpy", "float16", "cpu", "special"),
                 CellSpec("log", "numpy.log", "numpy", "float16", "cpu", "special")]
        print([r.status for r in run_cells(cells, jobs=2)])
    '''))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "['pass', 'pass']" in proc.stdout.splitlines()[-1]
    assert "worker processes could not start" in proc.stderr


SUITE_ORACLES = {
    "decorated": '''
        from mpmath import mp
        from oracles import oracle

        @oracle("fpharness_test_suite_exp")
        def suite_exp(x):
            """exp, registered by a suite's import."""
            return mp.exp(x)
    ''',
    # the function's own module (functools) registers nothing: the worker must import the
    # module that called oracle(), not the one that defined the function
    "registered-elsewhere": '''
        import functools
        from mpmath import mp
        from oracles import oracle

        def _scaled(k, x):
            return mp.exp(k * x)

        oracle("fpharness_test_suite_exp")(functools.partial(_scaled, 1))
    ''',
}


@pytest.mark.parametrize("body", list(SUITE_ORACLES.values()), ids=list(SUITE_ORACLES))
def test_workers_know_the_suites_own_oracles(tmp_path: Path, body: str) -> None:
    """A spawned worker knows only the built-in oracles: it imports the modules and files
    that define the plan's own ones (here a suite's `imports`), whose implementation module
    it never imports itself (custom implementations run in the isolated process)."""
    from harness.cli.app import main
    from oracles.registry import REGISTRY

    REGISTRY._items.pop("fpharness_test_suite_exp", None)  # each case registers it its own way
    (tmp_path / "my_oracles.py").write_text(textwrap.dedent(body))
    (tmp_path / "my_impls.py").write_text("import numpy as np\n\ndef f(x):\n    return np.exp(x)\n")
    suite = tmp_path / "s.toml"
    suite.write_text(textwrap.dedent('''
        schema = 1
        imports = ["my_oracles.py"]
        [[case]]
        oracle = "fpharness_test_suite_exp"
        impls = ["my_impls.py:f"]
        framework = "numpy"
        dtypes = ["float16", "bfloat16"]
        inputs = ["special", "random:200:1"]
        [case.budget]
        allow = { inherent_inf = true, lost_to_zero = true, missing_inf = true }
        max_ulp = 1
    '''))
    out = tmp_path / "r.json"
    code = main(["run", str(suite), "-j", "2", "-q", "--no-cache", "--json", str(out)])
    cells = json.loads(out.read_text())["cells"]
    assert [c["status"] for c in cells] == ["pass"] * 4, [c["reason"] for c in cells]
    assert code == 0


def test_unsupported_and_rejecting_cells_are_the_same_at_j2() -> None:
    """numpy.logsumexp has no bfloat16 (unsupported); torch.binary_cross_entropy raises on
    the special inputs whose truth is NaN (rejected, the rest judged)."""
    pytest.importorskip("torch")
    cells = [
        CellSpec("logsumexp", "numpy.logsumexp", "numpy", "bfloat16", "cpu", "special"),
        CellSpec("binary_cross_entropy", "torch.binary_cross_entropy", "torch", "float32", "cpu", "special"),
        CellSpec("binary_cross_entropy", "torch.binary_cross_entropy", "torch", "float16", "cpu", "special"),
    ]
    serial = run_cells(cells, runner=Runner())
    parallel = run_cells(cells, runner=Runner(), jobs=2, setup=WorkerSetup())
    assert untimed(parallel) == untimed(serial)
    assert serial[0].status == "unsupported"
    assert [r.status for r in serial[1:]] != ["error", "error"]
    assert all(r.reason.startswith("rejected 12 inputs whose exact result is NaN") for r in serial[1:])
