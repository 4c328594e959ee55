"""Results files (harness/record/results.py): schema 1, atomic writes, checked loading.

Layer: storage. Results are built from judged cells of a tiny numpy run (no framework);
the CLI's --json output is checked field by field in test_cli.py.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import harness.record.results as results_module
from harness.execution.runner import Runner
from harness.plan.cells import Budget, CellResult, CellSpec
from harness.record.results import SCHEMA, Results, RunInfo, load_results, run_info
from oracles import UsageError
from oracles.atomic import atomic_write_text


@pytest.fixture(scope="module")
def judged() -> tuple[CellResult, ...]:
    runner = Runner()
    passing = runner.run(CellSpec("exp", "numpy.exp", "numpy", "float16", "cpu", "special", budget=Budget.build(1)))
    failing = runner.run(CellSpec("exp", "numpy.exp", "numpy", "float16", "cpu", "special", budget=Budget.build(0)))
    skipped = runner.run(CellSpec("exp", "numpy.exp", "numpy", "float16", "cuda", "special"))
    errored = CellResult(CellSpec("exp", "x.py:f", "numpy", "float16", "cpu", "special", custom=True), "error",
                         "RuntimeError: kaboom")
    assert [c.status for c in (passing, failing, skipped, errored)] == ["pass", "fail", "skipped", "error"]
    return passing, failing, skipped, errored


def make(cells: tuple[CellResult, ...]) -> Results:
    return Results(run_info("2024-01-01T00:00:00+00:00", {c.spec.framework for c in cells}, seeds=[3, 1, 3]), cells)


def test_roundtrip_keeps_every_field(tmp_path: Path, judged: tuple[CellResult, ...]) -> None:
    res = make(judged)
    path = tmp_path / "r.json"
    res.write(path)
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA == 4
    loaded = load_results(path)
    assert loaded.to_json() == res.to_json() == data
    assert loaded.run.seeds == (1, 3)


def test_run_info_fields() -> None:
    info = run_info("2024-01-01T00:00:00+00:00", ["numpy", "numpy"], seeds=[2], command="fpharness check x")
    d = info.to_json()
    for key in ("started", "finished", "host", "python", "platform", "fpharness", "frameworks", "devices",
                "git_commit", "seeds", "command"):
        assert key in d
    assert d["frameworks"] == {"numpy": __import__("numpy").__version__}
    assert d["devices"]["numpy"]["cpu"]
    assert d["seeds"] == [2] and d["command"] == "fpharness check x"
    assert RunInfo.from_json(d) == info


def test_a_cuda_device_is_recorded_by_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a run on a GPU records about it: the device's own name (torch's
    get_device_name), beside the CPU, per framework, through a write and a load."""
    pytest.importorskip("torch")
    import harness.frameworks.adapters as adapters

    monkeypatch.setattr(adapters.TorchBackend, "_cuda_name", lambda self, fw: "NVIDIA H100 80GB HBM3")
    info = run_info("2024-01-01T00:00:00+00:00", ["torch"])
    path = tmp_path / "r.json"
    Results(info, ()).write(path)
    devices = json.loads(path.read_text())["run"]["devices"]["torch"]
    assert devices == {"cpu": devices["cpu"], "cuda": "NVIDIA H100 80GB HBM3"} and devices["cpu"].endswith("CPU")
    assert load_results(path).run.devices["torch"]["cuda"] == "NVIDIA H100 80GB HBM3"


def test_unavailable_framework_has_no_version(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.frameworks.adapters as frameworks

    monkeypatch.setitem(frameworks.BACKENDS, "torch", frameworks.TorchBackend("torch", "fpharness_no_torch", "torch"))
    info = run_info("t", ["torch"])
    assert info.frameworks == {"torch": None} and info.devices == {}


def test_unknown_run_keys_survive_a_roundtrip(tmp_path: Path, judged: tuple[CellResult, ...]) -> None:
    data = make(judged[:1]).to_json()
    data["run"]["shard"] = "2/4"
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    assert load_results(path).run.to_json()["shard"] == "2/4"


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        pytest.param(("pass",), 0, id="pass"),
        pytest.param(("pass", "skipped"), 0, id="skip-is-not-failure"),
        pytest.param((), 0, id="empty"),
        pytest.param(("pass", "fail"), 1, id="fail"),
        pytest.param(("skipped", "error"), 1, id="error"),
    ],
)
def test_exit_code(judged: tuple[CellResult, ...], statuses: tuple[str, ...], code: int) -> None:
    by_status = {c.status: c for c in judged}
    assert Results(make(()).run, tuple(by_status[s] for s in statuses)).exit_code == code


# -- atomic writes ----------------------------------------------------------------------------


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "r.json")


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise OSError("disk on fire")


@pytest.mark.parametrize(
    ("target", "name"),
    [
        pytest.param(results_module.json, "dumps", id="crash-while-serialising"),
        pytest.param(os, "fsync", id="crash-while-flushing"),
        pytest.param(os, "replace", id="crash-while-renaming"),
    ],
)
def test_crash_mid_write_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, judged: tuple[CellResult, ...], target: Any, name: str
) -> None:
    path = tmp_path / "r.json"
    make(judged[:1]).write(path)
    before = path.read_bytes()
    monkeypatch.setattr(target, name, _boom)
    with pytest.raises(OSError, match="disk on fire"):
        make(judged).write(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_results(path).to_json() == json.loads(before)
    assert _leftovers(tmp_path) == [], "no temporary file is left behind"


def test_atomic_write_creates_parents_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "r.json"
    atomic_write_text(path, "one\n")
    atomic_write_text(path, "two\n")
    assert path.read_text() == "two\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]


def test_results_are_strict_json(tmp_path: Path, judged: tuple[CellResult, ...]) -> None:
    path = tmp_path / "r.json"
    make(judged).write(path)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


# -- loading ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param(None, "does not exist", id="missing"),
        pytest.param("{not json", "is not valid JSON", id="invalid-json"),
        pytest.param("[1, 2]", "is not an fpharness results file (no 'schema' key)", id="not-an-object"),
        pytest.param('{"cells": []}', "no 'schema' key", id="no-schema"),
        pytest.param('{"schema": 5, "cells": []}', "has results schema 5; this fpharness reads schemas 1, 2, 3 and 4 (upgrade fpharness)",
                     id="newer-schema"),
        pytest.param('{"schema": "1", "cells": []}', "it is not a known version", id="schema-as-text"),
        pytest.param('{"schema": 1, "cells": [{"oracle": "exp"}]}', "has a malformed cell: KeyError", id="malformed-cell"),
    ],
)
def test_load_errors_are_one_line(tmp_path: Path, content: str | None, fragment: str) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError) as exc:
        load_results(path)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_error_and_skipped_cells_have_empty_verdicts(judged: tuple[CellResult, ...]) -> None:
    for cell in judged[2:]:
        d = cell.to_json()
        assert d["n"] == 0 and d["ulp"] is None and d["incidence"] is None and d["worst"] == []
        assert d["reason"]
        back = CellResult.from_json(d)
        assert back.summary is None and back.status == cell.status and back.reason == cell.reason


def test_budget_json_roundtrip() -> None:
    budget = Budget.build(2.5, {"inherent_inf": True, "lost_to_zero": 0.01, "missing_inf": 4})
    d = budget.to_json()
    assert d == {"max_ulp": 2.5, "allow": {"inherent_inf": True, "lost_to_zero": 0.01, "missing_inf": 4,
                                          "missing_nan": 0, "unexpected_inf": 0, "unexpected_nan": 0}}
    assert Budget.from_json(d) == budget
    assert Budget.from_json(None) == Budget()


def test_schema_1_files_load_as_forward_cells(tmp_path: Path, judged: tuple[CellResult, ...]) -> None:
    """A file written before gradient cells existed: no "pass" key, schema 1."""
    data = make(judged).to_json()
    data["schema"] = 1
    for cell in data["cells"]:
        del cell["pass"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    loaded = load_results(path)
    assert [c.spec.key for c in loaded.cells] == [c.spec.key for c in judged]
    assert all(not c.spec.is_grad and c.spec.key[-1] == "" for c in loaded.cells)


def test_gradient_cells_round_trip_and_differ_from_forward(tmp_path: Path, judged: tuple[CellResult, ...]) -> None:
    forward = judged[0]
    grad = replace(forward, spec=replace(forward.spec, wrt="x", cotangent="random"))
    path = tmp_path / "r.json"
    make((forward, grad)).write(path)
    data = json.loads(path.read_text())
    assert [c["pass"] for c in data["cells"]] == ["forward", "grad"]
    assert data["cells"][1]["wrt"] == "x" and data["cells"][1]["cotangent"] == "random"
    assert "wrt" not in data["cells"][0]
    loaded = load_results(path)
    assert loaded.cells[1].spec == grad.spec
    assert loaded.cells[0].spec.key != loaded.cells[1].spec.key
    assert loaded.cells[1].spec.id.startswith("∂") and loaded.cells[1].spec.id.endswith("-cotangent=random]")


@pytest.mark.parametrize("change", [{"pass": "backward"}, {"wrt": ""}], ids=["unknown-pass", "grad-without-wrt"])
def test_a_gradient_cell_never_loads_as_a_forward_one(tmp_path: Path, judged: tuple[CellResult, ...],
                                                      change: dict[str, str]) -> None:
    grad = replace(judged[0], spec=replace(judged[0].spec, wrt="x"))
    data = make((grad,)).to_json()
    data["cells"][0].update(change)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match=r"has a malformed cell: ValueError: .* is not 'forward', 'grad' with the argument differentiated or 'consistency' with its check"):
        load_results(path)
