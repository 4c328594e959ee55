"""Cells on a local Ray instance (``--executor ray``, issue 19): the same results as a
serial run, in plan order; a killed worker's unit reruns; an implementation that kills its
worker every time is an error cell, not a failed run."""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from executors import numpy_cell, untimed

from harness.execution.runner import Runner
from harness.execution.schedule import run_cells
from harness.execution.units import WorkerSetup
from harness.plan.cells import CellResult, CellSpec
from harness.plan.executor import ExecutorSpec, parse_executor
from oracles.errors import UsageError

RAY = ExecutorSpec("ray")

# Starting Ray runs its processes through fork + exec; in an xdist worker that has run a JAX
# test before, JAX's at-fork hook warns about forking a multithreaded process (the exec
# follows at once, so nothing is at risk), which the suite's warnings-as-errors would turn
# into an error of whichever test starts the instance
pytestmark = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    """One local Ray instance of 2 CPUs for the module (starting one takes seconds); the
    executor joins it instead of starting its own."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def impls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ray") / "ray_impls.py"
    marker = path.parent / "killed-once"
    path.write_text(textwrap.dedent(f'''
        import os
        import signal

        import numpy as np

        def naive_softplus(x):
            with np.errstate(all="ignore"):
                return np.log(1 + np.exp(x))

        def exp_f32(x):
            with np.errstate(all="ignore"):
                return np.exp(x.astype(np.float32)).astype(x.dtype)

        def kills_its_worker_once(x):
            # runs in the worker's isolated process: its parent is the Ray actor
            try:
                fd = os.open({str(marker)!r}, os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                return np.exp(x)
            os.close(fd)
            os.kill(os.getppid(), signal.SIGKILL)
            return np.exp(x)

        def kills_its_worker(x):
            os.kill(os.getppid(), signal.SIGKILL)
            return x

        def says_its_threads(x):
            # runs in the isolated process, which inherits the actor's environment
            with open({str(path.parent / "threads")!r}, "w") as fh:
                fh.write(repr(os.environ.get("OMP_NUM_THREADS")))
            return np.exp(x)
    '''))
    return path


CHUNKS = 6  # of the streamed cell's 1024: enough to spread over both workers


def _serial(cells: list[CellSpec]) -> list[CellResult]:
    """What -j 1 gives, the streamed cell cut to its first CHUNKS chunks."""
    runner = Runner()
    out = []
    for cell in cells:
        if runner._group(cell).inputs.streamed:
            out.append(runner.finish(cell, runner.run_part(cell, range(CHUNKS)), 0.0))
        else:
            out.append(runner.run(cell))
    runner.close()
    return out


@pytest.fixture
def fewer_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # the driver plans the units; the workers run the chunks they are given
    real = Runner.batch_count
    monkeypatch.setattr(Runner, "batch_count", lambda self, cell: min(real(self, cell), CHUNKS))


def test_ray_run_equals_serial_run(ray_instance: Any, impls: Path, fewer_chunks: None) -> None:
    f = str(impls)
    cells = [
        numpy_cell(f"{f}:naive_softplus", "softplus", "float16", "exhaustive"),
        numpy_cell("numpy.logaddexp", "softplus", "float16", "exhaustive", custom=False),
        numpy_cell("numpy.log", "log", "float32", "exhaustive", custom=False),  # streamed: CHUNKS chunk units
        numpy_cell(f"{f}:exp_f32", "exp", "bfloat16", "special"),
        numpy_cell("numpy.softmax", "softmax", "float32", "random:2000:1", custom=False),
    ]
    seen: list[str] = []
    runner = Runner()
    on_ray = run_cells(cells, runner=runner, jobs=2, setup=WorkerSetup(), executor=RAY,
                       on_result=lambda r: seen.append(r.spec.id))
    assert seen == [c.id for c in cells], "results are reported in plan order"
    assert untimed(on_ray) == untimed(_serial(cells))
    streamed = on_ray[2].to_json()
    assert streamed["n"] == CHUNKS << 22 and streamed["rechecked"] == 10
    import numpy as np

    assert runner.framework_info["numpy"][0] == np.__version__  # the workers' versions, for the metadata
    assert {r.status for r in on_ray} >= {"pass", "fail"}


def test_a_killed_worker_reruns_its_unit(ray_instance: Any, impls: Path) -> None:
    f = str(impls)
    cells = [
        numpy_cell(f"{f}:kills_its_worker_once", "exp", "float16", "special"),
        numpy_cell(f"{f}:exp_f32", "exp", "float16", "exhaustive"),
    ]
    on_ray = run_cells(cells, runner=Runner(), setup=WorkerSetup(), executor=RAY)
    assert (impls.parent / "killed-once").exists(), "the worker was killed"
    # the marker now exists: the serial run calls the implementation without dying
    assert untimed(on_ray) == untimed(_serial(cells))
    assert [r.status for r in on_ray] == ["pass", "pass"]


def test_an_implementation_killing_its_worker_every_time_is_an_error_cell(ray_instance: Any, impls: Path) -> None:
    f = str(impls)
    cells = [
        numpy_cell(f"{f}:exp_f32", "exp", "float16", "special"),
        numpy_cell(f"{f}:kills_its_worker", "exp", "float16", "special"),  # same group: split, then alone
        numpy_cell(f"{f}:naive_softplus", "softplus", "float16", "special"),
    ]
    results = run_cells(cells, runner=Runner(), setup=WorkerSetup(), executor=RAY)
    assert [r.status for r in results] == ["pass", "error", "fail"]
    assert "died 3 times in a row" in results[1].reason
    assert cells[1].repro() in results[1].reason


@pytest.mark.parametrize("threads", [None, "3"])
def test_workers_run_with_the_drivers_thread_setting(ray_instance: Any, impls: Path, threads: str | None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray sets OMP_NUM_THREADS=1 in its workers; the frameworks must see what the driver
    has (unset, or the user's value), or torch's reductions could sum in another order."""
    if threads is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
    cells = [numpy_cell(f"{impls}:says_its_threads", "exp", "float16", "special")]
    assert [r.status for r in run_cells(cells, runner=Runner(), setup=WorkerSetup(), executor=RAY)] == ["pass"]
    assert (impls.parent / "threads").read_text() == repr(threads)


def test_a_worker_that_cannot_start_stops_the_run_with_one_line(ray_instance: Any, impls: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An actor whose start fails (here: a user oracle's file missing where it runs) is no
    crash of an implementation: one line, not error cells."""
    import harness.execution.cluster as cluster

    monkeypatch.setattr(cluster, "oracle_sources", lambda cells: ("/nonexistent/my_oracles.py",))
    cells = [numpy_cell(f"{impls}:exp_f32", "exp", "float16", "special")]
    with pytest.raises(UsageError, match=r"a worker could not start .*same paths") as exc:
        run_cells(cells, runner=Runner(), setup=WorkerSetup(), executor=RAY)
    assert "\n" not in str(exc.value)


def test_ctrl_c_stops_the_run_and_ray_goes_on_working(ray_instance: Any, impls: Path) -> None:
    cells = [
        numpy_cell(f"{impls}:exp_f32", "exp", "float16", "special"),
        numpy_cell(f"{impls}:exp_f32", "exp", "bfloat16", "special"),
    ]

    def interrupt(result: CellResult) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cells(cells, runner=Runner(), setup=WorkerSetup(), executor=RAY, on_result=interrupt)
    # the actors of the interrupted run are gone; the next run gets fresh ones
    assert [r.status for r in run_cells(cells, runner=Runner(), setup=WorkerSetup(), executor=RAY)] == ["pass"] * 2


@pytest.mark.parametrize(("text", "expected"), [
    ("local", ExecutorSpec()),
    ("ray", ExecutorSpec("ray")),
    ("ray:auto", ExecutorSpec("ray", "auto")),
    ("ray:10.0.0.5:6379", ExecutorSpec("ray", "10.0.0.5:6379")),
    ("RAY:ray://head:10001", ExecutorSpec("ray", "ray://head:10001")),
])
def test_executor_names(text: str, expected: ExecutorSpec) -> None:
    assert parse_executor(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("raay", "did you mean 'ray'"),
    ("ray:", "no address after 'ray:'"),
    ("local:4", "not an executor"),
    ("dask", "accepted: local, ray, ray:auto or ray:ADDRESS"),
])
def test_bad_executor_names_say_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_executor(text)


# -- the command line, the environment and the suite file --------------------------------------


def test_check_on_ray_from_the_command_line(ray_instance: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.cli.app import main

    monkeypatch.delenv("FPHARNESS_EXECUTOR", raising=False)
    args = ["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "-q", "--no-cache"]
    assert main([*args, "--executor", "ray", "--json", str(tmp_path / "ray.json")]) == 0
    assert main([*args, "-j", "1", "--json", str(tmp_path / "serial.json")]) == 0
    on_ray, serial = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("ray", "serial"))
    assert on_ray["run"]["executor"] == "ray" and "executor" not in serial["run"]
    assert untimed([CellResult.from_json(c) for c in on_ray["cells"]]) == untimed(
        [CellResult.from_json(c) for c in serial["cells"]])


@pytest.mark.parametrize(("flag", "message"), [
    ("raay", "did you mean 'ray'"),
    ("ray:127.0.0.1:1", "nothing answers at 127.0.0.1:1"),
])
def test_a_bad_executor_is_one_line_and_exit_2(flag: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli.app import main

    assert main(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--executor", flag]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_an_unreachable_cluster_is_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Checked with the options, before references are computed: a dry run refuses it too."""
    from harness.cli.app import main

    args = ["check", "numpy.exp", "--dtype", "float16", "--inputs", "exhaustive", "--executor", "ray:127.0.0.1:1"]
    assert main([*args, "--dry-run"]) == 2
    assert "nothing answers at 127.0.0.1:1" in capsys.readouterr().err


def test_the_flag_wins_over_the_environment_which_wins_over_the_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.plan.executor import choose_executor

    suite = ExecutorSpec("ray", "10.0.0.5:6379")
    monkeypatch.delenv("FPHARNESS_EXECUTOR", raising=False)
    assert choose_executor(None, suite) == suite
    assert choose_executor(None) == ExecutorSpec()
    monkeypatch.setenv("FPHARNESS_EXECUTOR", "ray:auto")
    assert choose_executor(None, suite) == ExecutorSpec("ray", "auto")
    assert choose_executor("local", suite) == ExecutorSpec()
    monkeypatch.setenv("FPHARNESS_EXECUTOR", "dask")
    with pytest.raises(UsageError, match=r"\$FPHARNESS_EXECUTOR 'dask' is not an executor"):
        choose_executor(None)


def test_a_suite_file_names_its_executor(tmp_path: Path) -> None:
    from harness.plan.suite import load_suite

    body = 'schema = 1\n{}\n[[case]]\noracle = "exp"\nimpls = ["numpy.exp"]\ndtypes = ["float16"]\ninputs = ["special"]\n'
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(body.format('executor = "ray:auto"'))
    bad.write_text(body.format('executor = "ray:"'))
    assert load_suite(good).executor == ExecutorSpec("ray", "auto")
    with pytest.raises(UsageError, match=r"bad\.toml: executor 'ray:' has no address"):
        load_suite(bad)


def test_cuda_units_get_gpu_lanes_and_cpu_units_never_do() -> None:
    """The lanes a cluster of 8 CPUs and 2 GPUs gets, and where units go (no Ray needed)."""
    from harness.execution.cluster import _lanes
    from harness.execution.units import ChunkUnit, Lanes, unit_kind

    class FakeRay:
        def __init__(self, resources: dict[str, float]) -> None:
            self.resources = resources

        def cluster_resources(self) -> dict[str, float]:
            return self.resources

    def chunk(device: str, i: int) -> ChunkUnit:
        return ChunkUnit(0, CellSpec("softplus", "torch.softplus", "torch", "float32", device, "exhaustive"), i, 1)

    units = [chunk("cuda", i) for i in range(3)] + [chunk("cpu", i) for i in range(20)]
    on_cluster = ExecutorSpec("ray", "auto")
    kinds = _lanes(FakeRay({"CPU": 8.0, "GPU": 2.0}), units, 1, on_cluster)
    assert kinds == ["gpu"] * 2 + ["cpu"] * 8
    lanes = Lanes(units, kinds, lambda u: True)
    taken = {lane: [lanes.next_unit(lane) for _ in range(3)] for lane in range(len(kinds))}
    assert all(u is not None and unit_kind(u) == "gpu" for u in taken[0] + taken[1] if u is not None)
    assert all(u is None or unit_kind(u) == "cpu" for lane in range(2, 10) for u in taken[lane])
    # no GPU in the cluster: the cuda units run on CPU lanes (and skip there, as without -j)
    kinds = _lanes(FakeRay({"CPU": 4.0}), units, 1, on_cluster)
    assert kinds == ["cpu"] * 4
    lanes = Lanes(units, kinds, lambda u: True)
    assert sum(1 for lane in range(4) for _ in range(23) if lanes.next_unit(lane) is not None) == 23
    # a Ray instance this run starts has -j CPUs
    assert _lanes(FakeRay({"CPU": 16.0}), units, 2, ExecutorSpec("ray")) == ["cpu"] * 2
