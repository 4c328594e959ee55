"""Scenario tables in suite files (harness/plan/scenarios.py, harness/plan/suite.py): every
mistake is one line naming the problem and its fix, a suite of scenarios only loads, and
``fpharness run``/``fpharness train`` send a suite to the command that runs it.

Layer: configuration. Nothing trains here and no framework is imported: the model, data
and loss references are only checked to exist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.cli.app import main
from harness.frameworks.training import OptimizerConfig
from harness.plan.scenarios import Scenario, parse_optimizer
from harness.plan.suite import load_suite
from oracles.errors import UsageError

MODELS = "def build():\n    raise AssertionError('never called while a suite loads')\n\ndef data():\n    return [[1.0]], [[0.0]]\n"

BASE: dict[str, Any] = {
    "name": "a",
    "framework": "torch",
    "model": "models.py:build",
    "data": {"x": [[1.0], [2.0]], "y": [[0.0], [1.0]]},
    "loss": "mse",
    "policy": "float16",
}

CASE = '[[case]]\noracle = "exp"\nimpls = ["numpy.exp"]\ndtypes = ["float16"]\ninputs = ["special"]\n'


def _toml(value: Any) -> str:
    """A TOML value (inline tables and arrays): enough for scenario tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def _table(scenario: dict[str, Any]) -> str:
    return "[[scenario]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in scenario.items())


def write_suite(tmp_path: Path, *scenarios: dict[str, Any], extra: str = "") -> Path:
    (tmp_path / "models.py").write_text(MODELS, encoding="utf-8")
    path = tmp_path / "s.toml"
    path.write_text("schema = 1\n" + extra + "\n".join(_table(s) for s in scenarios), encoding="utf-8")
    return path


def _with(**changes: Any) -> dict[str, Any]:
    """BASE with keys changed; a value of None removes the key."""
    out = {**BASE, **changes}
    return {k: v for k, v in out.items() if v is not None}


def _load_error(path: Path) -> str:
    with pytest.raises(UsageError) as info:
        load_suite(path)
    message = str(info.value)
    assert "\n" not in message, f"not one line: {message!r}"
    assert message.startswith("s.toml"), message
    return message


# -- one scenario at fault: (changes to BASE, what the message must say) ---------------------------

BAD = [
    pytest.param({"optimiser": "adam"}, ["unknown key 'optimiser'", "did you mean 'optimizer'"], id="unknown-key"),
    pytest.param({"batchsize": 4}, ["unknown key 'batchsize'", "did you mean 'batch_size'"], id="unknown-key-batchsize"),
    pytest.param({"model": None}, ["missing required key 'model'"], id="missing-model"),
    pytest.param({"policy": None}, ["missing required key 'policy'"], id="missing-policy"),
    pytest.param({"name": ""}, ["name must be a non-empty string", "e.g. name ="], id="empty-name"),
    pytest.param({"framework": "pytorch"}, ["unknown framework 'pytorch'", "pick from: keras, torch",
                                            "did you mean 'torch'"], id="unknown-framework"),
    pytest.param({"framework": "keras", "backend": "tensorflw"},
                 ["framework 'keras' has no backend 'tensorflw'", "pick from: jax, tensorflow",
                  "did you mean 'tensorflow'"], id="keras-backend-typo"),
    pytest.param({"backend": "jax"}, ["framework 'torch' has no backend 'jax'", "pick from: torch"],
                 id="torch-has-no-jax-backend"),
    pytest.param({"policy": "fp16"}, ["unknown precision policy 'fp16'",
                                      "pick from: bfloat16, float16, float32, mixed_bfloat16, mixed_float16"],
                 id="unknown-policy"),
    pytest.param({"policy": "float64"}, ["policy 'float64' is the shadow's", "compared with a float64 run",
                                         "mixed_float16"], id="policy-float64-is-the-shadows"),
    pytest.param({"optimizer": {"name": "adamm"}}, ["unknown optimizer 'adamm'", "adam, adamw, rmsprop, sgd",
                                                  "did you mean 'adam'"], id="unknown-optimizer"),
    pytest.param({"optimizer": "sgdd"}, ["unknown optimizer 'sgdd'", "did you mean 'sgd'"], id="unknown-optimizer-name"),
    pytest.param({"optimizer": 3}, ["optimizer must be a name or a table", "learning_rate = 0.001"],
                 id="optimizer-not-a-table"),
    pytest.param({"optimizer": {"name": "sgd", "lr": 0.1}},
                 ["optimizer 'sgd' has no option 'lr'", "learning_rate", "did you mean 'learning_rate'"],
                 id="optimizer-option-lr"),
    pytest.param({"optimizer": {"name": "sgd", "beta_1": 0.9}}, ["optimizer 'sgd' has no option 'beta_1'", "momentum"],
                 id="optimizer-option-of-another-optimizer"),
    pytest.param({"optimizer": {"name": "adam", "learning_rate": -0.1}},
                 ["optimizer option learning_rate must be a finite number >= 0, got -0.1"], id="option-negative"),
    pytest.param({"optimizer": {"name": "sgd", "momentum": True}},
                 ["optimizer option momentum must be a finite number >= 0, got True"], id="option-bool"),
    pytest.param({"optimizer": {"name": "sgd", "learning_rate": "0.1"}},
                 ["optimizer option learning_rate must be a finite number >= 0, got '0.1'"], id="option-string"),
    pytest.param({"optimizer": {"name": "sgd", "clipnorm": 0}}, ["clipnorm = 0 would zero every gradient", "leave it out"],
                 id="clipnorm-zero"),
    pytest.param({"optimizer": {"name": "adam", "loss_scale": "auto"}},
                 ['loss_scale must be "dynamic", "none" or a positive number', "got 'auto'"], id="loss-scale-word"),
    pytest.param({"optimizer": {"name": "adam", "loss_scale": 0}},
                 ['loss_scale must be "dynamic", "none" or a positive number', "got 0"], id="loss-scale-zero"),
    pytest.param({"optimizer": {"name": "adam", "loss_scale": True}},
                 ['loss_scale must be "dynamic", "none" or a positive number', "got True"], id="loss-scale-bool"),
    pytest.param({"loss": "msee"}, ["unknown loss 'msee'", "did you mean 'mse'", "module:function"],
                 id="unknown-builtin-loss"),
    pytest.param({"loss": "nope.py:my_loss"}, ["loss file", "nope.py", "does not exist"], id="loss-file-missing"),
    pytest.param({"model": "models.build"}, ["model 'models.build' is not a function reference",
                                            "module:function or file.py:function", 'e.g. model = "model.py:build"'],
                 id="model-without-colon"),
    pytest.param({"model": "missing.py:build"}, ["model file", "missing.py", "does not exist"], id="model-file-missing"),
    pytest.param({"model": "models.py:2build"}, ["'2build' is not a Python name"], id="model-bad-function-name"),
    pytest.param({"data": {"x": [[1.0], [2.0]], "y": [[0.0], [1.0], [2.0]]}},
                 ["data x has 2 rows but y has 3", "each row of x needs its row of y"], id="data-rows-mismatch"),
    pytest.param({"data": {"x": [[1.0]]}}, ["a data table has exactly the keys x and y"], id="data-table-without-y"),
    pytest.param({"data": {"x": [], "y": []}}, ["need at least one row"], id="data-table-empty"),
    pytest.param({"data": {"x": [["a"]], "y": [[1.0]]}}, ["data x and y must be lists of numbers"], id="data-not-numbers"),
    pytest.param({"data": "nope.npz"}, ["data file", "nope.npz", "does not exist"], id="data-npz-missing"),
    pytest.param({"data": 3}, ["data must be a file, a function or a table"], id="data-a-number"),
    pytest.param({"steps": 0}, ["steps must be an integer >= 1, got 0", "e.g. steps = 50"], id="steps-zero"),
    pytest.param({"steps": True}, ["steps must be an integer >= 1, got True"], id="steps-bool"),
    pytest.param({"steps": 2.5}, ["steps must be an integer >= 1, got 2.5"], id="steps-float"),
    pytest.param({"steps": 200_000}, ["steps = 200000 is more than 100,000"], id="steps-too-many"),
    pytest.param({"batch_size": 0}, ["batch_size must be an integer >= 1, got 0"], id="batch-size-zero"),
    pytest.param({"seed": -1}, ["seed must be an integer >= 0, got -1"], id="seed-negative"),
    pytest.param({"timeout": 0}, ["timeout must be a positive number of seconds, got 0"], id="timeout-zero"),
    pytest.param({"timeout": True}, ["timeout must be a positive number of seconds, got True"], id="timeout-bool"),
    pytest.param({"claim": 3}, ["claim must be a string, got 3"], id="claim-not-a-string"),
]


@pytest.mark.parametrize(("changes", "expected"), BAD)
def test_a_bad_scenario_is_one_line_naming_the_problem(tmp_path: Path, changes: dict[str, Any],
                                                       expected: list[str]) -> None:
    message = _load_error(write_suite(tmp_path, _with(**changes)))
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_the_message_names_the_scenario_once_its_name_is_known(tmp_path: Path) -> None:
    message = _load_error(write_suite(tmp_path, _with(), _with(name="second", steps=0)))
    assert message.startswith("s.toml scenario 'second': "), message
    # before the name is read, the table's number says which one
    message = _load_error(write_suite(tmp_path, _with(), {**_with(name="x"), "optimiser": 1}))
    assert message.startswith("s.toml scenario 2: "), message


def test_a_ragged_data_table_is_one_line(tmp_path: Path) -> None:
    message = _load_error(write_suite(tmp_path, _with(data={"x": [[1.0, 2.0], [3.0]], "y": [[0.0], [1.0]]})))
    assert "data x" in message


def test_a_seed_past_32_bits_is_refused_at_load(tmp_path: Path) -> None:
    message = _load_error(write_suite(tmp_path, _with(seed=2**64)))
    assert "seed must be below 2**32" in message
    message = _load_error(write_suite(tmp_path, _with(seed=2**32)))
    assert "seed must be below 2**32" in message


@pytest.mark.parametrize(("scenarios", "expected"), [
    pytest.param([_with(), _with(steps=3)], ["two scenarios are named 'a'", "names identify scenarios"],
                 id="duplicate-names"),
    pytest.param([_with(), _with(name="b", fixes="c")],
                 ["scenario 'b': fixes = 'c' names no scenario of this file", "pick from: a"], id="fixes-unknown"),
    pytest.param([_with(name="float16"), _with(name="fix", fixes="float61")],
                 ["fixes = 'float61' names no scenario", "pick from: float16", "did you mean 'float16'"], id="fixes-typo"),
    pytest.param([_with(), _with(name="b", fixes="b")], ["scenario 'b': a scenario cannot fix itself"],
                 id="fixes-itself"),
])
def test_bad_scenario_sets_are_one_line(tmp_path: Path, scenarios: list[dict[str, Any]], expected: list[str]) -> None:
    message = _load_error(write_suite(tmp_path, *scenarios))
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_scenario_must_be_an_array_of_tables(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('schema = 1\nscenario = "a"\n', encoding="utf-8")
    with pytest.raises(UsageError, match=r"scenario must be an array of tables: write \[\[scenario\]\]"):
        load_suite(path)


# -- suites that load --------------------------------------------------------------------------------


def test_a_scenario_only_suite_loads_with_no_cells(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.ones((3, 2)), y=np.zeros((3, 1)))
    path = write_suite(
        tmp_path,
        _with(optimizer={"name": "sgd", "learning_rate": 0.5, "momentum": 0.9, "loss_scale": 128}, steps=7,
              batch_size=2, seed=3, claim="clipping helps", note="n", timeout=30),
        _with(name="b", framework="keras", data="d.npz", loss="models.py:build", policy="mixed_float16",
              fixes="a", optimizer="rmsprop"),
        _with(name="c", framework="keras", backend="jax", data="models.py:data", optimizer={"name": "adam",
              "loss_scale": "dynamic"}),
    )
    suite = load_suite(path)
    assert suite.cells == ()
    assert [s.name for s in suite.scenarios] == ["a", "b", "c"]
    a, b, c = suite.scenarios
    assert (a.framework, a.backend, a.policy, a.steps, a.batch_size, a.seed, a.timeout) == (
        "torch", "torch", "float16", 7, 2, 3, 30.0)
    assert a.optimizer == OptimizerConfig("sgd", (("learning_rate", 0.5), ("momentum", 0.9)), 128.0)
    assert a.data == (((1.0,), (2.0,)), ((0.0,), (1.0,)))
    assert a.claim == "clipping helps" and a.suite == str(path)
    # files are made absolute, relative to the suite file; a keras scenario defaults to TensorFlow
    models = str((tmp_path / "models.py").resolve())
    assert a.model == f"{models}:build"
    assert (b.backend, b.data, b.loss, b.fixes, b.optimizer) == (
        "tensorflow", str((tmp_path / "d.npz").resolve()), f"{models}:build", "a", OptimizerConfig("rmsprop"))
    assert b.steps == 50 and b.batch_size is None and b.timeout == 600.0
    assert (c.backend, c.data, c.optimizer.loss_scale) == ("jax", f"{models}:data", "dynamic")


def test_scenarios_and_cases_in_one_suite(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, _with(), extra=CASE))
    assert len(suite.cells) > 0 and len(suite.scenarios) == 1


def test_a_suite_with_neither_cases_nor_scenarios_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('schema = 1\nname = "empty"\n', encoding="utf-8")
    with pytest.raises(UsageError, match=r"no \[\[case\]\] or \[\[scenario\]\] tables; a suite needs at least one"):
        load_suite(path)


def test_an_empty_scenario_array_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("schema = 1\nscenario = []\n", encoding="utf-8")
    with pytest.raises(UsageError, match="a suite needs at least one"):
        load_suite(path)


def test_parse_optimizer_takes_a_name_or_a_table() -> None:
    assert parse_optimizer("w", "sgd") == OptimizerConfig("sgd")
    assert parse_optimizer("w", {}) == OptimizerConfig("adam")
    got = parse_optimizer("w", {"name": "adamw", "weight_decay": 0, "epsilon": 1e-7, "loss_scale": "none"})
    assert got == OptimizerConfig("adamw", (("epsilon", 1e-7), ("weight_decay", 0.0)), "none")
    assert got.id == "adamw(epsilon=1e-07, weight_decay=0)"


# -- Scenario.to_json / from_json ---------------------------------------------------------------------


def test_scenario_json_round_trip(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.ones((3, 2)), y=np.zeros((3, 1)))
    suite = load_suite(write_suite(
        tmp_path,
        _with(data={"x": [[1.5, -2.0], [3.0, 4.0]], "y": [0.0, 1.0]}, batch_size=1, seed=2, claim="c", note="n",
              optimizer={"name": "adam", "learning_rate": 0.01, "clipnorm": 1.0, "loss_scale": 1024}, timeout=12.5),
        _with(name="b", data="d.npz", fixes="a", policy="mixed_float16",
              optimizer={"name": "sgd", "loss_scale": "dynamic"}),
        _with(name="c", framework="keras", backend="jax", data="models.py:data", loss="models.py:build"),
    ))
    for s in suite.scenarios:
        # through real JSON text: tuples come back as lists, and the scenario must not mind
        back = Scenario.from_json(json.loads(json.dumps(s.to_json())))
        assert back == s, s.name
    # a one-column y written as a flat list is rows of one value
    assert suite.scenarios[0].data[1] == ((0.0,), (1.0,))


# -- the CLI sends a suite to the command that runs it --------------------------------------------------


def test_run_on_a_scenario_only_suite_points_at_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_suite(tmp_path, _with(), _with(name="b"))
    assert main(["run", str(path), "-q", "--no-cache", "-j", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "no [[case]] tables, only 2 [[scenario]] table(s)" in err
    assert f"fpharness train {path}" in err
    assert not (tmp_path / "results").exists()


def test_train_on_a_suite_without_scenarios_points_at_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "cases.toml"
    path.write_text("schema = 1\n" + CASE, encoding="utf-8")
    assert main(["train", str(path), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "has no [[scenario]] tables" in err and f"fpharness run {path}" in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(("changes", "expected"), [
    pytest.param({"framework": ["torch"]}, "unknown framework ['torch']", id="framework-not-a-string"),
    pytest.param({"framework": "keras", "backend": ["jax"]}, "has no backend ['jax']", id="backend-not-a-string"),
    pytest.param({"optimizer": {"name": ["adam"]}}, "unknown optimizer ['adam']", id="optimizer-name-not-a-string"),
    pytest.param({"optimizer": {"name": "adam", "clipnorm": 1.0, "clipvalue": 1.0}}, "both clipnorm and clipvalue",
                 id="two-clips"),
    pytest.param({"optimizer": {"name": "adam", "loss_scale": "dynamic"}},
                 "dynamic loss scaling in torch (GradScaler) needs float32 weights", id="torch-dynamic-float16"),
])
def test_values_of_the_wrong_kind_are_one_line(tmp_path: Path, changes: dict[str, Any], expected: str) -> None:
    assert expected in _load_error(write_suite(tmp_path, _with(**changes)))


def test_torch_dynamic_scaling_is_fine_under_a_mixed_policy(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, _with(policy="mixed_float16",
                                                   optimizer={"name": "adam", "loss_scale": "dynamic"})))
    assert suite.scenarios[0].optimizer.loss_scale == "dynamic"
