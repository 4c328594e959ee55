"""``fpharness train`` end to end (harness/cli/commands/train.py, harness/execution/training.py):
exit codes, one-line errors before anything trains, the verdict of a planted overflow, the
per-layer table of ``--step``, a model that raises mid-run, and the schema 4 results file
through ``load_results``, ``fpharness compare`` and ``fpharness merge``.

Layer: end to end. ``harness.cli.app.main(argv)`` in-process; the command starts its own
worker processes (one to check the scenarios, one per scenario). Every scenario is a small
torch model, and the expensive runs are shared by module-scoped fixtures.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from harness.cli.app import main
from harness.judgement.training import ScenarioResult
from harness.record.results import SCHEMA, Results, load_results

pytest.importorskip("torch")

FIXTURES = Path(__file__).resolve().parent / "fixtures"
COMMON = ["--no-progress"]


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def cli(*argv: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return Run(code, out.getvalue(), err.getvalue())


def _copy_fixtures(tmp: Path) -> Path:
    """The suite and its models in a directory of their own (nothing is written beside the
    checked-in fixtures)."""
    for name in ("train.toml", "models.py"):
        shutil.copy(FIXTURES / name, tmp / name)
    return tmp / "train.toml"


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory every pytest-xdist worker of this session sees (the session's own base
    temp directory without xdist): the training runs below happen once per session, not
    once per worker, because each costs several worker processes."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _once(tmp_path_factory: pytest.TempPathFactory, key: str, *argv: str) -> tuple[Run, Path]:
    """``fpharness train`` on a copy of the fixture suite with ``argv``, run by the first
    worker that asks; the others read its output. Returns the run and its directory."""
    filelock = pytest.importorskip("filelock")  # torch's own dependency
    root = _shared_root(tmp_path_factory)
    folder = root / f"train-cli-{key}"
    record = folder / "run.json"
    with filelock.FileLock(str(root / f"train-cli-{key}.lock")):
        if not record.exists():
            folder.mkdir()
            suite = _copy_fixtures(folder)
            run = cli("train", str(suite), *(a.replace("{dir}", str(folder)) for a in argv), *COMMON)
            record.write_text(json.dumps([run.code, run.out, run.err]), encoding="utf-8")
    code, out, err = json.loads(record.read_text(encoding="utf-8"))
    return Run(code, out, err), folder


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_fixtures(tmp_path_factory.mktemp("train-suite"))


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Path, Path]:
    """Every scenario of the suite: (the run, its --json, its --html)."""
    run, folder = _once(tmp_path_factory, "full", "--json", "{dir}/all.json", "--html", "{dir}/all.html", "-j", "3")
    return run, folder / "all.json", folder / "all.html"


@pytest.fixture(scope="module")
def at_step(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Path]:
    run, folder = _once(tmp_path_factory, "step", "--scenario", "planted", "--step", "11", "--json", "{dir}/step.json")
    return run, folder / "step.json"


def _results(full: tuple[Run, Path, Path]) -> dict[str, ScenarioResult]:
    return {r.name: r for r in load_results(full[1]).scenarios}


# -- one-line errors before anything trains ------------------------------------------------------------

OK = """
[[scenario]]
name = "ok"
framework = "torch"
model = "models.py:small"
data = { x = [[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]], y = [[1.0], [0.0]] }
loss = "mse"
policy = "float32"
steps = 2
"""


@pytest.mark.parametrize(("bad", "expected"), [
    pytest.param('model = "models.py:fails_to_build"\ndata = { x = [[1.0, 2.0, 3.0, 4.0]], y = [[1.0]] }',
                 ["the model function failed to build the model", "ValueError: no such layer size"],
                 id="model-function-raises"),
    pytest.param('model = "models.py:not_a_module"\ndata = { x = [[1.0, 2.0, 3.0, 4.0]], y = [[1.0]] }',
                 ["the model function returned function, not a torch.nn.Module"], id="not-a-module"),
    pytest.param('model = "models.py:small"\ndata = { x = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], y = [[1.0], [0.0]] }',
                 ["the model cannot train on the data", "x (2, 3)", "check the data's shape"], id="data-wrong-shape"),
])
def test_a_scenario_that_cannot_start_stops_the_command_before_any_trains(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str, expected: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(FIXTURES / "models.py", tmp_path / "models.py")
    path = tmp_path / "s.toml"
    path.write_text(f'schema = 1\n{OK}\n[[scenario]]\nname = "bad"\nframework = "torch"\n{bad}\nloss = "mse"\n'
                    'policy = "float16"\nsteps = 2\n', encoding="utf-8")
    run = cli("train", str(path), "--json", str(tmp_path / "out.json"), *COMMON)
    assert run.code == 2, run
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("fpharness: error: scenario 'bad': "), lines[0]
    for fragment in expected:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert run.out == ""
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "results").exists()


def test_a_model_that_cannot_be_copied_for_the_shadow_is_one_line_naming_it(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(FIXTURES / "models.py", tmp_path / "models.py")
    path = tmp_path / "s.toml"
    path.write_text('schema = 1\n[[scenario]]\nname = "bad"\nframework = "torch"\nmodel = "models.py:uncopyable"\n'
                    'data = { x = [[1.0, 2.0, 3.0, 4.0]], y = [[1.0]] }\nloss = "mse"\npolicy = "float16"\n',
                    encoding="utf-8")
    run = cli("train", str(path), *COMMON)
    assert run.code == 2, run
    assert len(run.err.strip().splitlines()) == 1, run.err
    assert "scenario 'bad'" in run.err


def test_unknown_scenario_and_bad_steps_are_usage_errors(suite: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = cli("train", str(suite), "--scenario", "plantd", *COMMON)
    assert run.code == 2 and len(run.err.strip().splitlines()) == 1, run
    assert "--scenario 'plantd'" in run.err and "no such scenario" in run.err
    assert "pick from: crashes, planted, planted-f32" in run.err and "did you mean 'planted'" in run.err
    for step, message in (("0", "--step counts optimizer steps from 1, got 0"),
                          ("-3", "--step counts optimizer steps from 1, got -3"),
                          ("13", "--step 13 is past the end: the scenarios run at most 12 steps")):
        run = cli("train", str(suite), "--scenario", "planted", "--step", step, *COMMON)
        assert run.code == 2 and message in run.err, run
    run = cli("train", str(suite), "-j", "0", *COMMON)
    assert run.code == 2 and "--jobs must be at least 1, got 0" in run.err
    assert not (tmp_path / "results").exists()


# -- the planted overflow, a mid-run error, a finite run --------------------------------------------------


def test_the_planted_overflow_is_named_at_its_step_and_layer(full: tuple[Run, Path, Path]) -> None:
    run = full[0]
    assert run.code == 1, run
    assert run.err == ""
    block = run.out.split("\n\n")[0]
    assert block.startswith("planted   torch "), block
    assert "policy float16" in block and "12 steps of 4" in block
    assert ("NON-FINITE first at step 11, layer 2 (Linear), forward (output): 0 NaN, 32 Inf of 32 values; "
            "produced it") in block
    assert "cause: overflow: max |x| 65536 above 65504 in float16" in block
    assert "the float64 shadow is finite there" in block
    assert "repro: fpharness train" in block and "--scenario planted --step 11" in block
    assert "last finite loss: step 10" in block
    assert "stopped after step 11 of 12" in block


def test_a_model_that_raises_mid_run_is_that_scenarios_error(full: tuple[Run, Path, Path]) -> None:
    run = full[0]
    assert "ERROR at step 3: RuntimeError: marker row reached" in run.out
    results = _results(full)
    crashed = results["crashes"]
    assert crashed.status == "error" and crashed.error_step == 3
    assert crashed.error == "at step 3: RuntimeError: marker row reached"
    assert "RuntimeError: marker row reached" in crashed.traceback and "forward" in crashed.traceback
    assert [r.step for r in crashed.records] == [1, 2]  # the steps before it are kept
    # the other scenarios still ran to their verdicts
    assert results["planted"].status == "nonfinite" and results["planted-f32"].status == "finite"


def test_the_summary_lists_every_scenario(full: tuple[Run, Path, Path]) -> None:
    out = full[0].out
    summary = out[out.index("scenarios:"):]
    assert "planted      float16        non-finite at step 11, 2 forward, produced" in summary
    assert "planted-f32  float32        finite, final loss 0.00% from the shadow" in summary
    assert "crashes      float32        error at step 3: RuntimeError: marker row reached" in summary
    assert f"results: {full[1]}" in out and f"report: {full[2]}" in out


def test_step_prints_every_layer_with_produced_and_propagated(at_step: tuple[Run, Path]) -> None:
    run, json_path = at_step
    assert run.code == 1, run
    assert "crashes" not in run.out and "planted-f32" not in run.out
    lines = run.out.splitlines()
    start = lines.index(next(ln for ln in lines if ln.startswith("step 11 of planted: loss inf, shadow 512")))
    rows = lines[start + 2:]
    forward = [ln.split() for ln in rows if "forward" in ln.split()]
    assert [r[0] for r in forward] == ["0", "1", "2", "3", "loss"]
    assert [r[-1] for r in forward] == ["0", "0", "produced", "propagated", "propagated"]
    assert "2 forward: overflow: max |x| 65536 above 65504 in float16" in run.out
    (result,) = load_results(json_path).scenarios
    # the run stops after step 11; the verdict is the same
    assert result.steps == 11 and len(result.records) == 11 and result.first is not None
    assert (result.first.step, result.first.layer, result.first.stage) == (11, 2, "forward")


# -- the results file ------------------------------------------------------------------------------------


def test_the_results_file_is_schema_4_and_loads_back_equal(full: tuple[Run, Path, Path]) -> None:
    raw = json.loads(full[1].read_text(encoding="utf-8"))
    assert raw["schema"] == SCHEMA == 4
    assert raw["cells"] == [] and [s["name"] for s in raw["scenarios"]] == ["planted", "planted-f32", "crashes"]
    assert raw["run"]["suite"] == "train-cli" and "torch" in raw["run"]["frameworks"]
    loaded = load_results(full[1])
    assert loaded.exit_code == 1
    for result in loaded.scenarios:
        assert ScenarioResult.from_json(result.to_json()) == result
        assert ScenarioResult.from_json(json.loads(json.dumps(result.to_json(), allow_nan=False))) == result
    planted = _results(full)["planted"]
    assert planted.layers == (("0", "Linear"), ("1", "ReLU"), ("2", "Linear"), ("3", "Linear"), ("loss", "mae"))
    assert planted.records[-1].loss == float("inf") and planted.records[-1].shadow_loss == 512.0
    assert planted.version.startswith(tuple("0123456789"))


def test_compare_flags_a_scenario_that_became_non_finite(full: tuple[Run, Path, Path], tmp_path: Path) -> None:
    current = load_results(full[1])
    by_name = {r.name: r for r in current.scenarios}
    # the baseline: the same scenario name, when it still trained in float32 and stayed finite
    base = Results(current.run, (), (replace(by_name["planted-f32"], name="planted"),))
    base.write(tmp_path / "base.json")
    run = cli("compare", str(tmp_path / "base.json"), str(full[1]))
    assert run.code == 1, run
    out = " ".join(run.out.split())
    assert "new failure planted: became non-finite from step 11 (2 forward); was finite" in out
    assert "new scenario crashes" in out
    assert "scenarios: 1 new failure, 2 new scenario: REGRESSION" in out
    # the other way round the scenario is fixed, and nothing fails
    run = cli("compare", str(full[1]), str(tmp_path / "base.json"))
    assert run.code == 0, run
    assert "fixed planted: now finite; was non-finite from step 11" in " ".join(run.out.split())
    # the same file against itself: unchanged
    run = cli("compare", str(full[1]), str(full[1]))
    assert run.code == 0 and "scenarios: 3 (3 unchanged)" in run.out


def test_merge_keeps_the_scenarios_of_every_part(full: tuple[Run, Path, Path], tmp_path: Path) -> None:
    current = load_results(full[1])
    first, *rest = current.scenarios
    Results(current.run, (), (first,)).write(tmp_path / "a.json")
    Results(current.run, (), tuple(rest)).write(tmp_path / "b.json")
    run = cli("merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-o", str(tmp_path / "all.json"))
    assert run.code == 0, run
    merged = load_results(tmp_path / "all.json")
    assert merged.scenarios == current.scenarios
    assert merged.exit_code == 1
    # the same scenario in two parts is refused: scenarios are not sharded
    run = cli("merge", str(full[1]), str(tmp_path / "a.json"), "-o", str(tmp_path / "twice.json"))
    assert run.code == 2 and "scenario 'planted' is in two parts" in run.err
    assert not (tmp_path / "twice.json").exists()


def test_html_report_mentions_the_scenarios(full: tuple[Run, Path, Path]) -> None:
    html = full[2].read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "planted" in html and "crashes" in html


def test_a_look_at_one_step_writes_no_results_unless_asked(suite: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # the verdict's repro command must not replace the suite's results with one cut-short run
    monkeypatch.chdir(tmp_path)
    run = cli("train", str(suite), "--scenario", "planted-f32", "--step", "2", *COMMON)
    assert run.code == 0, run
    assert "step 2 of planted-f32" in run.out and "results:" not in run.out
    assert not (tmp_path / "results").exists()


def test_ctrl_c_keeps_the_scenarios_that_had_finished(suite: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # the workers stand in for the processes: the first scenario finishes, then the user
    # presses Ctrl-C while the second trains (-j 1, so in order)
    from harness.execution import training

    done = ScenarioResult(name="planted", framework="torch", backend="torch", policy="float16", optimizer="sgd",
                          loss="mae", steps=12, batch_size=4, seed=0, status="finite")

    def worker(mode: str, scenarios: list, **_kw: object) -> dict:
        if mode == "check":
            return {"ok": True}
        if scenarios[0].name == "planted":
            return {"result": done.to_json()}
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "_worker", worker)
    run = cli("train", str(suite), "--json", str(tmp_path / "r.json"), *COMMON)
    assert run.code == 130, run
    assert "interrupted: 1 of 3 scenario(s) had finished" in run.err
    results = load_results(tmp_path / "r.json")
    assert [r.name for r in results.scenarios] == ["planted"]
    assert results.run.extra.get("interrupted") is True


def test_data_from_an_npz_file_trains_like_the_same_rows_from_a_function(suite: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # a data set shipped as a file: the batches, and so the whole run, are the function's
    import numpy as np

    from harness.plan.loader import load_file

    monkeypatch.chdir(tmp_path)
    models = load_file(suite.parent / "models.py", what="fixture")
    x, y = models.planted_data()
    np.savez(suite.parent / "planted.npz", x=x, y=y)
    text = suite.read_text(encoding="utf-8").replace('data = "models.py:planted_data"', 'data = "planted.npz"', 1)
    (suite.parent / "npz.toml").write_text(text, encoding="utf-8")
    run = cli("train", str(suite.parent / "npz.toml"), "--scenario", "planted", "--json", str(tmp_path / "n.json"),
              *COMMON)
    assert run.code == 1, run
    (result,) = load_results(tmp_path / "n.json").scenarios
    assert result.first is not None and (result.first.step, result.first.name) == (11, "2")


def test_a_scenario_that_timed_out_is_a_result_like_any_other(suite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # its error result is heard as it arrives too, so an interrupted run keeps it
    from harness.execution import training
    from harness.plan.suite import load_suite

    def worker(mode: str, scenarios: list, **_kw: object) -> dict:
        return {"ok": True} if mode == "check" else {"timeout": 5.0}

    monkeypatch.setattr(training, "_worker", worker)
    heard: list[ScenarioResult] = []
    scenarios = load_suite(suite).scenarios[:1]
    (result,) = training.run_scenarios(scenarios, on_result=heard.append)
    assert heard == [result]
    assert result.status == "error" and result.error == "timed out after 5 s (the scenario's timeout)"
    assert (result.name, result.loss, result.steps) == ("planted", "mae", 12)
