"""Suite files (TOML, schema 1): which cells to run and with which budgets.

::

    schema = 1
    name = "frameworks"                     # optional
    imports = ["suites/seeds/softplus.py"]  # optional: modules/files that register oracles

    [[case]]
    oracle = "softplus"
    impls = ["*"]                # every built-in for the oracle, or ids, or custom specs
    framework = "tensorflow"     # for custom implementations (module:function)
    dtypes = ["float16", "bfloat16"]
    devices = ["cpu", "cuda"]
    inputs = ["exhaustive"]
    params = { beta = 1.0 }
    timeout = 300
    [case.budget]
    max_ulp = { float16 = 1, bfloat16 = 1, float32 = 4 }   # or one number
    allow = { inherent_inf = true, lost_to_zero = 10 }

Unknown keys, oracles, dtypes, devices and implementations are errors that name the bad
value and the valid choices. A custom implementation that is a file path is resolved
relative to the suite file.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.frameworks.adapters import DEVICES
from harness.frameworks.catalogue import get_impl, impls_for
from harness.frameworks.registry import FRAMEWORKS
from harness.plan.cells import Budget, CellSpec
from harness.plan.inputs import parse_inputs
from harness.plan.loader import load_file
from oracles.errors import UsageError, choices
from oracles.formats import FORMATS, get_format
from oracles.registry import get_oracle

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["SUITE_SCHEMA", "Suite", "load_suite"]

SUITE_SCHEMA = 1
_TOP_KEYS = {"schema", "name", "description", "imports", "case"}
_CASE_KEYS = {"oracle", "impls", "framework", "dtypes", "devices", "inputs", "params", "budget", "timeout", "name", "note"}
_BUDGET_KEYS = {"max_ulp", "allow"}


@dataclass(frozen=True, slots=True)
class Suite:
    """A loaded suite: its name, path and the cells it expands to."""

    name: str
    path: str
    cells: tuple[CellSpec, ...]


def _check_keys(where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r}; {choices(allowed)}")


def _list_of_str(where: str, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
        raise UsageError(f"{where}: {key} must be a non-empty list of strings")
    return list(value)


def _import_oracles(suite_dir: Path, specs: list[str]) -> None:
    """Import modules or files that register user oracles (and custom implementations)."""
    for spec in specs:
        if spec.endswith(".py"):
            path = (suite_dir / spec).resolve()
            load_file(path, what=f"suite import {spec!r}: file", shown=str(path))
        else:
            try:
                importlib.import_module(spec)
            except ImportError as exc:
                raise UsageError(f"suite import {spec!r}: {exc}") from None


def _budget_for(where: str, table: Mapping[str, Any] | None, dtype: str) -> Budget:
    table = table or {}
    _check_keys(f"{where}.budget", table, _BUDGET_KEYS)
    max_ulp = table.get("max_ulp")
    if isinstance(max_ulp, Mapping):
        unknown = sorted(set(max_ulp) - set(FORMATS))
        if unknown:
            raise UsageError(f"{where}.budget.max_ulp: unknown dtype {unknown[0]!r}; {choices(FORMATS)}")
        max_ulp = max_ulp.get(dtype)
    allow = table.get("allow")
    if allow is not None and not isinstance(allow, Mapping):
        raise UsageError(f"{where}.budget.allow must be a table such as {{ inherent_inf = true }}")
    return Budget.build(max_ulp, allow)


def _resolve_impl(spec: str, suite_dir: Path) -> tuple[str, bool]:
    """A built-in id, or a custom spec (file paths made absolute relative to the suite)."""
    if ":" not in spec:
        return spec, False
    target, _, attr = spec.rpartition(":")
    if target.endswith(".py"):
        return f"{(suite_dir / target).resolve()}:{attr}", True
    return spec, True


def load_suite(path: str | Path) -> Suite:
    """Load and validate a suite file; every problem is a one-line :class:`UsageError`."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"suite file {str(p)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"suite file {str(p)!r} is not valid TOML: {exc}") from None
    _check_keys(str(p), data, _TOP_KEYS)
    schema = data.get("schema", SUITE_SCHEMA)
    if schema != SUITE_SCHEMA:
        raise UsageError(f"{p}: suite schema {schema!r} is not supported; this fpharness reads schema {SUITE_SCHEMA}")
    _import_oracles(p.parent, _list_of_str(str(p), "imports", data["imports"]) if "imports" in data else [])
    cases = data.get("case")
    if not isinstance(cases, list) or not cases:
        raise UsageError(f"{p}: no [[case]] tables; a suite needs at least one")
    cells: list[CellSpec] = []
    for number, case in enumerate(cases, start=1):
        where = f"{p.name} case {number}"
        if not isinstance(case, Mapping):
            raise UsageError(f"{where}: must be a table")
        _check_keys(where, case, _CASE_KEYS)
        for required in ("oracle", "impls", "dtypes", "inputs"):
            if required not in case:
                raise UsageError(f"{where}: missing required key {required!r}")
        oracle = get_oracle(str(case["oracle"]))
        where = f"{p.name} case {number} ({oracle.name})"
        dtypes = [get_format(d).name for d in _list_of_str(where, "dtypes", case["dtypes"])]
        devices = _list_of_str(where, "devices", case.get("devices", ["cpu"]))
        for device in devices:
            if device not in DEVICES:
                raise UsageError(f"{where}: unknown device {device!r}; {choices(DEVICES)}")
        inputs = [parse_inputs(s).text for s in _list_of_str(where, "inputs", case["inputs"])]
        params_table = case.get("params") or {}
        if not isinstance(params_table, Mapping):
            raise UsageError(f"{where}: params must be a table such as {{ beta = 2.0 }}")
        bound = oracle.bind(params_table)
        params = tuple(sorted((k, v) for k, v in bound.items()))
        timeout = case.get("timeout", 300)
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise UsageError(f"{where}: timeout must be a positive number of seconds")
        framework = case.get("framework")
        if framework is not None and framework not in FRAMEWORKS:
            raise UsageError(f"{where}: unknown framework {framework!r}; {choices(FRAMEWORKS)}")
        impl_specs = _list_of_str(where, "impls", case["impls"])
        resolved: list[tuple[str, str, bool]] = []
        for spec in impl_specs:
            if spec == "*":
                resolved += [(i.id, i.framework, False) for i in impls_for(oracle.name)]
                continue
            impl_id, custom = _resolve_impl(spec, p.parent)
            if custom:
                if framework is None:
                    raise UsageError(f"{where}: custom implementation {spec!r} needs framework = one of {', '.join(FRAMEWORKS)}")
                resolved.append((impl_id, framework, True))
            else:
                impl = get_impl(impl_id)
                if impl.oracle != oracle.name:
                    raise UsageError(f"{where}: {impl_id} implements {impl.oracle}, not {oracle.name}")
                resolved.append((impl.id, impl.framework, False))
        for impl_id, fw, custom in resolved:
            for dtype in dtypes:
                budget = _budget_for(where, case.get("budget"), dtype)
                for device in devices:
                    for spec_text in inputs:
                        cells.append(CellSpec(
                            oracle=oracle.name, impl=impl_id, framework=fw, dtype=dtype, device=device,
                            inputs=spec_text, params=params, budget=budget, custom=custom, timeout=float(timeout),
                        ))
    name = str(data.get("name", p.stem))
    return Suite(name, str(p), tuple(cells))
