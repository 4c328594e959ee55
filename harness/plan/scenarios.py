"""Training scenarios: a model trained under a precision policy beside its float64 shadow.

A suite file's ``[[scenario]]`` tables (``fpharness train SUITE.toml`` runs them)::

    [[scenario]]
    name = "planted-float16"              # required; names the scenario in reports and repros
    framework = "torch"                   # "torch" or "keras"
    backend = "tensorflow"                # keras only: "tensorflow" (default) or "jax"
    model = "models.py:build"             # a function with no arguments that returns the model
    data = "models.py:batches"            # a function returning (x, y); or "data.npz" (arrays x, y);
                                          # or a table { x = [[...]], y = [[...]] }
    loss = "mse"                          # mse, mae, binary_crossentropy, binary_crossentropy_from_logits,
                                          # or module:function / file.py:function, loss(y_true, y_pred)
    optimizer = { name = "adam", learning_rate = 0.01, clipnorm = 1.0 }   # and loss_scale
    policy = "mixed_float16"              # float32, float16, bfloat16, mixed_float16, mixed_bfloat16
    steps = 50                            # default 50
    batch_size = 64                       # default: every row in one batch
    seed = 0                              # the weights' initialisation
    fixes = "other-scenario"              # this one is a fix of another: did it remove the cause or hide it?
    claim = "gradient clipping prevents this"   # what the fix's author says it does (shown in reports)
    timeout = 600                         # seconds for the whole run (both trainings)

Batches are the data's rows in order, ``batch_size`` at a time, starting again at the first
row when the rows run out; both runs see the same batches. Files and functions are resolved
relative to the suite file. Everything that can be checked without importing a framework is
checked here, when the suite loads; the model, the data and the loss are resolved in the
process that trains them (:func:`resolve`), where Keras's backend is already chosen.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.frameworks.training import (
    FRAMEWORK_BACKENDS,
    LOSSES,
    OPTIMIZER_OPTIONS,
    POLICIES,
    OptimizerConfig,
    get_policy,
)
from harness.plan.files import regular_file
from harness.plan.loader import load_file
from oracles.errors import UsageError, choices

__all__ = ["SCENARIO_KEYS", "Resolved", "Scenario", "parse_optimizer", "parse_scenarios", "resolve"]

SCENARIO_KEYS = {"name", "framework", "backend", "model", "data", "loss", "optimizer", "policy", "steps", "batch_size",
                 "seed", "fixes", "claim", "note", "timeout"}
_LOSS_SCALES = ("dynamic", "none")
#: the scenario's own steps are bounded so a typo (steps = 50000) is caught before an hour of training
MAX_STEPS = 100_000


@dataclass(frozen=True, slots=True)
class Scenario:
    """One ``[[scenario]]`` table, validated. ``model``, ``data`` and ``loss`` keep the
    user's references (file paths made absolute); :func:`resolve` turns them into objects."""

    name: str
    framework: str
    backend: str
    model: str
    data: str | tuple[tuple[tuple[float, ...], ...], tuple[tuple[float, ...], ...]]
    loss: str
    optimizer: OptimizerConfig
    policy: str
    steps: int = 50
    batch_size: int | None = None
    seed: int = 0
    fixes: str = ""
    claim: str = ""
    note: str = ""
    timeout: float = 600.0
    suite: str = ""

    @property
    def id(self) -> str:
        return self.name

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "framework": self.framework, "backend": self.backend, "model": self.model,
            "data": self.data if isinstance(self.data, str) else {"x": self.data[0], "y": self.data[1]},
            "loss": self.loss,
            "optimizer": {"name": self.optimizer.name, "options": dict(self.optimizer.options),
                          "loss_scale": self.optimizer.loss_scale},
            "policy": self.policy, "steps": self.steps, "batch_size": self.batch_size, "seed": self.seed,
            "fixes": self.fixes, "claim": self.claim, "note": self.note, "timeout": self.timeout, "suite": self.suite,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Scenario:
        data = d["data"]
        opt = d["optimizer"]
        return Scenario(
            name=d["name"], framework=d["framework"], backend=d["backend"], model=d["model"],
            data=data if isinstance(data, str) else (_rows(data["x"]), _rows(data["y"])), loss=d["loss"],
            optimizer=OptimizerConfig(opt["name"], tuple(sorted(opt["options"].items())), opt.get("loss_scale")),
            policy=d["policy"], steps=int(d["steps"]), batch_size=d.get("batch_size"), seed=int(d["seed"]),
            fixes=d.get("fixes", ""), claim=d.get("claim", ""), note=d.get("note", ""),
            timeout=float(d.get("timeout", 600.0)), suite=d.get("suite", ""),
        )


def _rows(values: Any) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in (row if isinstance(row, (list, tuple)) else [row])) for row in values)


def _int(where: str, key: str, value: Any, *, low: int, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UsageError(f"{where}: {key} must be an integer >= {low}, got {value!r}; e.g. {key} = {example}")
    return value


def _seed(where: str, value: Any) -> int:
    # every framework seeds NumPy too, which takes 32 bits
    seed = _int(where, "seed", value, low=0, example="0")
    if seed >= 2**32:
        raise UsageError(f"{where}: seed must be below 2**32 (NumPy's seeds are 32-bit), got {seed}")
    return seed


def _str(where: str, key: str, value: Any, example: str) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"{where}: {key} must be a non-empty string, got {value!r}; e.g. {key} = {example}")
    return value


def _reference(where: str, key: str, value: str, suite_dir: Path, *, example: str) -> str:
    """``file.py:function`` (made absolute and checked to exist) or ``module:function``."""
    if ":" not in value:
        raise UsageError(f"{where}: {key} {value!r} is not a function reference; write module:function or "
                         f"file.py:function, e.g. {key} = {example}")
    target, _, attr = value.rpartition(":")
    if not attr.isidentifier():
        raise UsageError(f"{where}: {key} {value!r}: {attr!r} is not a Python name")
    if target.endswith(".py"):
        path = (suite_dir / target).resolve()
        regular_file(path, f"{where}: {key} file", shown=str(path), inside="the .py file", otherwise="give a .py file")
        return f"{path}:{attr}"
    return value


def parse_optimizer(where: str, table: Any) -> OptimizerConfig:
    """An optimizer given as a name or a table (``{ name = \"adam\", learning_rate = 0.01 }``)."""
    if isinstance(table, str):
        table = {"name": table}
    if not isinstance(table, Mapping):
        raise UsageError(f'{where}: optimizer must be a name or a table, e.g. optimizer = {{ name = "adam", '
                         f"learning_rate = 0.001 }}; got {table!r}")
    name = table.get("name", "adam")
    if not isinstance(name, str) or name not in OPTIMIZER_OPTIONS:
        raise UsageError(f"{where}: unknown optimizer {name!r}; {choices(OPTIMIZER_OPTIONS, given=name)}")
    allowed = OPTIMIZER_OPTIONS[name]
    options: list[tuple[str, float]] = []
    for key, value in table.items():
        if key in ("name", "loss_scale"):
            continue
        if key not in allowed:
            hint = ""
            if key in ("lr",):
                hint = "; did you mean 'learning_rate'?"
            raise UsageError(f"{where}: optimizer {name!r} has no option {key!r}; "
                             f"{choices(sorted(allowed | {'loss_scale'}), given=key)}{hint}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise UsageError(f"{where}: optimizer option {key} must be a finite number >= 0, got {value!r}")
        if key in ("clipnorm", "clipvalue") and value == 0:
            raise UsageError(f"{where}: optimizer option {key} = 0 would zero every gradient; leave it out for no clipping")
        options.append((key, float(value)))
    if "clipnorm" in table and "clipvalue" in table:
        raise UsageError(f"{where}: optimizer sets both clipnorm and clipvalue; Keras takes one of them: keep one")
    scale = table.get("loss_scale")
    if scale is not None:
        ok = (isinstance(scale, str) and scale in _LOSS_SCALES) or (
            not isinstance(scale, bool) and isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0)
        if not ok:
            raise UsageError(f'{where}: optimizer loss_scale must be "dynamic", "none" or a positive number, got '
                             f"{scale!r}")
        scale = scale if isinstance(scale, str) else float(scale)
    return OptimizerConfig(name, tuple(sorted(options)), scale)


def _data(where: str, value: Any, suite_dir: Path) -> str | tuple[tuple[tuple[float, ...], ...], tuple[tuple[float, ...], ...]]:
    example = '"data.npz", "data.py:make", or { x = [[1.0], [2.0]], y = [[0.0], [1.0]] }'
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"x", "y"})
        if unknown or "x" not in value or "y" not in value:
            raise UsageError(f"{where}: a data table has exactly the keys x and y (lists of rows); e.g. data = {example}")
        try:
            x, y = _rows(value["x"]), _rows(value["y"])
            arrays = np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise UsageError(f"{where}: data x and y must be lists of numbers or of rows of numbers, every row of "
                             "the same length") from None
        _check_xy(where, *arrays)
        return x, y
    if not isinstance(value, str):
        raise UsageError(f"{where}: data must be a file, a function or a table; e.g. data = {example}")
    if value.endswith(".npz"):
        path = (suite_dir / value).resolve()
        regular_file(path, f"{where}: data file", shown=str(path), inside="the .npz file", otherwise="give a .npz file")
        return str(path)
    return _reference(where, "data", value, suite_dir, example=example)


def _check_xy(where: str, x: npt.NDArray[Any], y: npt.NDArray[Any]) -> None:
    if x.ndim < 1 or y.ndim < 1 or x.shape[0] == 0:
        raise UsageError(f"{where}: data x and y need at least one row; got x of shape {x.shape}, y of shape {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise UsageError(f"{where}: data x has {x.shape[0]} rows but y has {y.shape[0]}; each row of x needs its "
                         "row of y")


def parse_scenarios(p: Path, tables: Any) -> tuple[Scenario, ...]:
    """Validate a suite's ``[[scenario]]`` tables (module docstring)."""
    if not isinstance(tables, list):
        raise UsageError(f"{p}: scenario must be an array of tables: write [[scenario]] above each one")
    out: list[Scenario] = []
    for number, table in enumerate(tables, start=1):
        where = f"{p.name} scenario {number}"
        if not isinstance(table, Mapping):
            raise UsageError(f"{where}: must be a table")
        unknown = sorted(set(table) - SCENARIO_KEYS)
        if unknown:
            raise UsageError(f"{where}: unknown key {unknown[0]!r}; {choices(SCENARIO_KEYS, given=unknown[0])}")
        for required in ("name", "framework", "model", "data", "loss", "policy"):
            if required not in table:
                raise UsageError(f"{where}: missing required key {required!r}")
        name = _str(where, "name", table["name"], '"seed001-float16"')
        where = f"{p.name} scenario {name!r}"
        framework = table["framework"]
        if not isinstance(framework, str) or framework not in FRAMEWORK_BACKENDS:
            raise UsageError(f"{where}: unknown framework {framework!r}; {choices(FRAMEWORK_BACKENDS, given=framework)}")
        backends = FRAMEWORK_BACKENDS[framework]
        backend = table.get("backend", backends[0])
        if not isinstance(backend, str) or backend not in backends:
            raise UsageError(f"{where}: framework {framework!r} has no backend {backend!r}; {choices(backends, given=backend)}")
        policy = table["policy"]
        if policy == "float64":
            valid = ", ".join(n for n in POLICIES if n != "float64")
            raise UsageError(f"{where}: policy 'float64' is the shadow's: every scenario is compared with a float64 "
                             f"run; pick the policy under test from: {valid}")
        if not isinstance(policy, str) or policy not in POLICIES:
            try:
                get_policy(str(policy))
            except UsageError as exc:
                raise UsageError(f"{where}: {exc}") from None
        optimizer = parse_optimizer(where, table.get("optimizer", "adam"))
        if (framework == "torch" and optimizer.loss_scale == "dynamic" and not POLICIES[policy].mixed
                and POLICIES[policy].variables != "float32"):
            raise UsageError(f"{where}: dynamic loss scaling in torch (GradScaler) needs float32 weights, and policy "
                             f"{policy!r} keeps them in {POLICIES[policy].variables}; use a mixed policy, or a fixed "
                             "loss_scale")
        loss = _str(where, "loss", table["loss"], '"mse"')
        if loss not in LOSSES:
            if ":" not in loss:
                raise UsageError(f"{where}: unknown loss {loss!r}; {choices(LOSSES, given=loss)}, "
                                 "or a function module:function / file.py:function")
            loss = _reference(where, "loss", loss, p.parent, example='"losses.py:my_loss"')
        timeout = table.get("timeout", 600)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
            raise UsageError(f"{where}: timeout must be a positive number of seconds, got {timeout!r}")
        for key in ("fixes", "claim", "note"):
            if key in table and not isinstance(table[key], str):
                raise UsageError(f"{where}: {key} must be a string, got {table[key]!r}")
        batch = table.get("batch_size")
        out.append(Scenario(
            name=name, framework=framework, backend=backend,
            model=_reference(where, "model", _str(where, "model", table["model"], '"model.py:build"'), p.parent,
                             example='"model.py:build"'),
            data=_data(where, table["data"], p.parent), loss=loss, optimizer=optimizer,
            policy=policy, steps=_int(where, "steps", table.get("steps", 50), low=1, example="50"),
            batch_size=None if batch is None else _int(where, "batch_size", batch, low=1, example="64"),
            seed=_seed(where, table.get("seed", 0)),
            fixes=table.get("fixes", ""), claim=table.get("claim", ""), note=table.get("note", ""),
            timeout=float(timeout), suite=str(p),
        ))
        if out[-1].steps > MAX_STEPS:
            raise UsageError(f"{where}: steps = {out[-1].steps} is more than {MAX_STEPS:,}; a scenario is a short run")
    names = [s.name for s in out]
    for s in out:
        if names.count(s.name) > 1:
            raise UsageError(f"{p.name}: two scenarios are named {s.name!r}; names identify scenarios in reports")
        if s.fixes and s.fixes not in names:
            raise UsageError(f"{p.name} scenario {s.name!r}: fixes = {s.fixes!r} names no scenario of this file; "
                             f"{choices([n for n in names if n != s.name], given=s.fixes)}")
        if s.fixes == s.name:
            raise UsageError(f"{p.name} scenario {s.name!r}: a scenario cannot fix itself")
    return tuple(out)


# -- resolving references (in the training process) ---------------------------------------


@dataclass(frozen=True, slots=True)
class Resolved:
    """A scenario's objects: the model function, the data and the loss."""

    scenario: Scenario
    model_fn: Callable[[], Any]
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    loss: str | Callable[[Any, Any], Any]

    @property
    def batch_size(self) -> int:
        return self.scenario.batch_size or int(self.x.shape[0])

    def batch(self, step: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The rows of ``step`` (from 1): the next ``batch_size`` rows, wrapping around."""
        n = self.x.shape[0]
        b = self.batch_size
        idx = (np.arange(b) + (step - 1) * b) % n
        return self.x[idx], self.y[idx]


def _function(where: str, key: str, ref: str) -> Callable[..., Any]:
    target, _, attr = ref.rpartition(":")
    if target.endswith(".py"):
        module = load_file(Path(target), what=f"{where}: {key} file")
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:  # noqa: BLE001 - the user's module failed to import
            raise UsageError(f"{where}: {key}: importing {target!r} failed: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise UsageError(f"{where}: {key}: {target!r} has no function {attr!r}")
    return fn  # type: ignore[no-any-return]


def resolve(s: Scenario) -> Resolved:
    """Import the scenario's model function, data and loss (one-line :class:`UsageError`s)."""
    where = f"scenario {s.name!r}"
    model_fn = _function(where, "model", s.model)
    if isinstance(s.data, tuple):
        x, y = np.array(s.data[0], dtype=np.float64), np.array(s.data[1], dtype=np.float64)
    elif s.data.endswith(".npz"):
        try:
            with np.load(s.data, allow_pickle=False) as z:
                if "x" not in z or "y" not in z:
                    raise UsageError(f"{where}: data file {s.data!r} needs arrays named x and y; it has "
                                     f"{', '.join(sorted(z.files)) or 'none'}")
                x, y = np.asarray(z["x"], dtype=np.float64), np.asarray(z["y"], dtype=np.float64)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{where}: data file {s.data!r} cannot be read as .npz: {exc}") from None
    else:
        make = _function(where, "data", s.data)
        try:
            got = make()
            x, y = (np.asarray(a, dtype=np.float64) for a in got)
        except UsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's data function failed or returned the wrong thing
            raise UsageError(f"{where}: the data function must return (x, y), two arrays of numbers: "
                             f"{type(exc).__name__}: {exc}") from None
    _check_xy(where, x, y)
    loss: str | Callable[[Any, Any], Any] = s.loss if s.loss in LOSSES else _function(where, "loss", s.loss)
    return Resolved(s, model_fn, x, y, loss)
