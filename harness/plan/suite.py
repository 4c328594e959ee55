"""Suite files (TOML, schema 1): which cells to run and with which budgets.

::

    schema = 1                              # required
    name = "frameworks"                     # optional; default: the file name without .toml
    imports = ["suites/seeds/softplus.py"]  # optional: modules/files that register oracles
    executor = "ray:auto"                   # optional: where cells run (docs/cluster.md); default local

    [[case]]
    oracle = "softplus"
    impls = ["*"]                # every built-in for the oracle, or ids, or custom specs
    framework = "tensorflow"     # for custom implementations (module:function)
    dtypes = ["float16", "bfloat16"]
    devices = ["cpu", "cuda"]
    inputs = ["exhaustive"]
    params = { beta = 1.0 }
    timeout = 300
    mode = "both"                # forward (default), grad, or both; grad = true is mode = "grad"
    wrt = ["x"]                  # the arguments differentiated (default: every real one)
    cotangents = ["ones", "random"]   # ones (default), random, special
    grad_budget = { max_ulp = 2 }     # the gradient cells' budget (default: budget)
    consistency = true           # or a list: ["position", "layout", "monotone"] (README "Consistency")
    consistency_inputs = ["special", "random:2000"]   # default: inputs
    consistency_dtypes = ["bfloat16"]    # some of dtypes (default: all of them)
    consistency_budget = { max_ulp = 0 }  # ULPs two answers may differ by (default: each check's own)
    [case.budget]
    max_ulp = { float16 = 1, bfloat16 = 1, float32 = 4 }   # or one number
    allow = { inherent_inf = true, lost_to_zero = 10 }
    max_bits = 2                 # Herbie's bits of error (also a table per dtype)
    atol = 1e-5                  # torch.testing.assert_close's |c - y| <= atol + rtol |y|;
    rtol = { float32 = 1.3e-6 }  # numbers, tables per dtype, or "torch" (its defaults),
    # or tolerance = "torch" for both

Unknown keys, oracles, dtypes, devices and implementations are errors that name the bad
value and the valid choices. A custom implementation that is a file path is resolved
relative to the suite file.

A case for a user's operation that has no oracle leaves ``oracle`` out: it needs
``consistency`` and custom ``impls``, and its cells are consistency cells of an elementwise
operation over one real argument (so ``params``, ``budget`` and the gradient keys are errors
there).

``schema`` is required (a file without it may be of any format). ``impls``, ``dtypes``,
``devices``, ``inputs`` and ``imports`` are lists even for one entry (``dtypes =
["float16"]``), so a bare string is an error that shows the list to write. The suite name
names the results file and the history entries, so it is a name, not a path: 1 to
64 letters, digits, ``.``, ``_`` and ``-``, not starting with ``.`` or ``-``
(:data:`NAME_RULE`). A file name that breaks the rule gives the default name with the
offending characters replaced by ``-``.
"""

from __future__ import annotations

import importlib
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.frameworks.adapters import DEVICES
from harness.frameworks.autodiff import differentiable
from harness.frameworks.catalogue import get_impl, impls_for
from harness.frameworks.registry import FRAMEWORKS
from harness.plan.cells import Budget, CellSpec, passes
from harness.plan.consistency import checks_for, consistency_params, signature
from harness.plan.executor import ExecutorSpec, parse_executor
from harness.plan.files import regular_file
from harness.plan.inputs import parse_inputs
from harness.plan.loader import load_file
from harness.plan.scenarios import Scenario, parse_scenarios
from oracles.errors import UsageError, choices
from oracles.formats import FORMATS, get_format
from oracles.registry import Oracle, get_oracle

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["NAME_RULE", "SUITE_SCHEMA", "Suite", "load_suite", "suite_name"]

SUITE_SCHEMA = 1
_TOP_KEYS = {"schema", "name", "description", "imports", "executor", "case", "scenario"}
_CASE_KEYS = {"oracle", "impls", "framework", "dtypes", "devices", "inputs", "params", "budget", "timeout", "name", "note",
              "mode", "grad", "wrt", "cotangents", "grad_budget", "consistency", "consistency_inputs", "consistency_dtypes",
              "consistency_budget"}
#: the oracle's parameters and the accuracy cells' keys, which a case without an oracle cannot have
_ORACLE_KEYS = {"params", "budget", "mode", "grad", "wrt", "cotangents", "grad_budget"}
_BUDGET_KEYS = {"max_ulp", "allow", "max_bits", "atol", "rtol", "tolerance"}
#: budget limits that may be one value or a table per dtype
_PER_DTYPE = ("max_ulp", "max_bits", "atol", "rtol")
#: what a suite name may be: it becomes a file name (results/NAME.json) and a history key,
#: so no separators, no leading dot (hidden files, "..") or dash (an option), bounded length
NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_NAME_LIMIT = 64


@dataclass(frozen=True, slots=True)
class Suite:
    """A loaded suite: its name, path and the cells it expands to."""

    name: str
    path: str
    cells: tuple[CellSpec, ...]
    #: the files its ``imports`` loaded (a module imported by name: its file), which a run
    #: must never write over
    imports: tuple[str, ...] = ()
    #: its ``[[scenario]]`` tables (training runs, ``fpharness train``)
    scenarios: tuple[Scenario, ...] = ()
    #: where its cells run when neither ``--executor`` nor $FPHARNESS_EXECUTOR says
    #: (``executor = "ray:auto"``; None: the local worker processes)
    executor: ExecutorSpec | None = None


def _check_keys(where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r}; {choices(allowed, given=unknown[0])}")


def _list_of_str(where: str, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        # one bare string is a common slip, and accepting it would make `impls = "*"` and
        # `impls = ["*"]` two spellings of one thing; the message shows the list to write
        raise UsageError(f"{where}: {key} must be a list of strings, got the string {value!r};"
                         f" write {key} = [{_toml_str(value)}]")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
        raise UsageError(f"{where}: {key} must be a non-empty list of strings, got {_toml_value(value)};"
                         f" e.g. {key} = {_EXAMPLES.get(key, '[...]')}")
    return list(value)


_EXAMPLES = {"impls": '["*"]', "consistency": '["position", "layout"]', "consistency_inputs": '["special"]',
             "consistency_dtypes": '["bfloat16"]',
              "wrt": '["x"]', "cotangents": '["ones", "random"]', "dtypes": '["float16", "bfloat16"]', "devices": '["cpu"]',
             "inputs": '["special", "random:10000"]', "imports": '["my_oracles.py"]'}


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_str(value)
    return repr(value)


def suite_name(text: str) -> str:
    """``text`` made into a valid suite name (see :data:`NAME_RULE`): every run of other
    characters becomes ``-``, leading dots and dashes go, and it is cut to 64 characters;
    ``"suite"`` when nothing is left. ``"../../tmp/x"`` gives ``"tmp-x"``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).lstrip(".-")[:_NAME_LIMIT].rstrip("-")
    return name or "suite"


def _check_name(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{where}: name must be a string, got {_toml_value(value)}; write name ="
                         f" {_toml_str(suite_name(str(value)))}")
    if _NAME.fullmatch(value) is None:
        raise UsageError(f"{where}: name {value!r} is not a valid suite name ({NAME_RULE}; it names the results"
                         f" file); did you mean name = {_toml_str(suite_name(value))}?")
    return value


def _read_suite(p: Path) -> dict[str, Any]:
    """The parsed TOML of ``p``; anything that stops it from being read is one line."""
    shown = str(p)
    regular_file(p, "suite file", shown=shown, inside="the .toml file", otherwise="give a .toml file")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"suite file {shown!r} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset"
                         f" {exc.start}); TOML files must be UTF-8: save it as UTF-8") from None
    except OSError as exc:
        raise UsageError(f"suite file {shown!r} cannot be read: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"suite file {shown!r} is not valid TOML: {exc}") from None


def _import_oracles(suite_dir: Path, specs: list[str]) -> tuple[str, ...]:
    """Import modules or files that register user oracles (and custom implementations);
    the files they were loaded from."""
    files: list[str] = []
    for spec in specs:
        if spec.endswith(".py"):
            path = (suite_dir / spec).resolve()
            load_file(path, what=f"suite import {spec!r}: file", shown=str(path))
            files.append(str(path))
        else:
            try:
                module = importlib.import_module(spec)
            except ImportError as exc:
                raise UsageError(f"suite import {spec!r}: {exc}") from None
            if getattr(module, "__file__", None):
                files.append(str(module.__file__))
    return tuple(files)


def _budget_for(where: str, table: Mapping[str, Any] | None, dtype: str, name: str = "budget") -> Budget:
    table = table if table is not None else {}
    if not isinstance(table, Mapping):
        raise UsageError(f"{where}.{name} must be a table such as {{ max_ulp = 1 }}, got {_toml_value(table)}")
    _check_keys(f"{where}.{name}", table, _BUDGET_KEYS)
    limits: dict[str, Any] = {}
    for key in _PER_DTYPE:
        value = table.get(key)
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(FORMATS))
            if unknown:
                raise UsageError(f"{where}.{name}.{key}: unknown dtype {unknown[0]!r}; {choices(FORMATS, given=unknown[0])}")
            value = value.get(dtype)
        limits[key] = value
    allow = table.get("allow")
    if allow is not None and not isinstance(allow, Mapping):
        raise UsageError(f"{where}.{name}.allow must be a table such as {{ inherent_inf = true }}")
    try:
        return Budget.build(limits["max_ulp"], allow, max_bits=limits["max_bits"], atol=limits["atol"],
                            rtol=limits["rtol"], tolerance=table.get("tolerance"))
    except UsageError as exc:  # "budget: max_ulp must be ..." says what; this says where
        raise UsageError(f"{where}.{name}{str(exc).removeprefix('budget')}") from None


def _resolve_impl(spec: str, suite_dir: Path) -> tuple[str, bool]:
    """A built-in id, or a custom spec (file paths made absolute relative to the suite)."""
    if ":" not in spec:
        return spec, False
    target, _, attr = spec.rpartition(":")
    if target.endswith(".py"):
        return f"{(suite_dir / target).resolve()}:{attr}", True
    return spec, True


def load_suite(path: str | Path) -> Suite:
    """Load and validate a suite file: the :class:`Suite` with every cell it expands to.

    Every problem is a one-line :class:`UsageError` that names the bad value and what to
    write instead: a missing, unreadable, non-UTF-8 or invalid file, a missing or
    unsupported ``schema``, a name that is not a name, unknown keys, oracles, dtypes,
    devices, implementations and parameters, non-finite numbers, a bare string where a
    list belongs."""
    p = Path(path)
    data = _read_suite(p)
    _check_keys(str(p), data, _TOP_KEYS)
    if "schema" in data:
        _check_schema(p, data["schema"])
    name = _check_name(str(p), data["name"]) if "name" in data else suite_name(p.stem)
    cases = data.get("case", [])
    if not isinstance(cases, list) or (not cases and not data.get("scenario")):
        raise UsageError(f"{p}: no [[case]] or [[scenario]] tables; a suite needs at least one")
    for number, case in enumerate(cases, start=1):
        where = f"{p.name} case {number}"
        if not isinstance(case, Mapping):
            raise UsageError(f"{where}: must be a table")
        _check_keys(where, case, _CASE_KEYS)
    # after the keys: a typo in a case of a file without schema is the more useful message
    if "schema" not in data:
        raise UsageError(f"{p}: missing schema; write schema = {SUITE_SCHEMA} as the first line (the suite format"
                         f" this fpharness reads)")
    imported = _import_oracles(p.parent, _list_of_str(str(p), "imports", data["imports"]) if "imports" in data else [])
    cells: list[CellSpec] = []
    for number, case in enumerate(cases, start=1):
        cells += _case_cells(p, f"{p.name} case {number}", case)
    scenarios = parse_scenarios(p, data["scenario"]) if "scenario" in data else ()
    executor = None
    if "executor" in data:
        if not isinstance(data["executor"], str):
            raise UsageError(f"{p}: executor must be a string such as \"ray\" or \"ray:auto\", got {data['executor']!r}")
        executor = parse_executor(data["executor"], f"{p}: executor")
    return Suite(name, str(p), tuple(cells), imported, scenarios, executor)


def _check_schema(p: Path, schema: Any) -> None:
    if isinstance(schema, bool) or not isinstance(schema, int):
        raise UsageError(f"{p}: schema must be the integer {SUITE_SCHEMA}, got {_toml_value(schema)};"
                         f" write schema = {SUITE_SCHEMA}")
    if schema != SUITE_SCHEMA:
        raise UsageError(f"{p}: suite schema {schema!r} is not supported; this fpharness reads schema {SUITE_SCHEMA}")


def _case_cells(p: Path, where: str, case: Mapping[str, Any]) -> list[CellSpec]:
    """The cells of one ``[[case]]`` table (its keys already checked)."""
    for required in ("impls", "dtypes", "inputs"):
        if required not in case:
            raise UsageError(f"{where}: missing required key {required!r}")
    if "oracle" not in case:
        # a user's operation without an oracle: consistency cells only
        if case.get("consistency", False) is False:
            raise UsageError(f"{where}: missing required key 'oracle' (a case without one has only consistency"
                             " checks: add consistency = true)")
        needs_oracle = sorted(_ORACLE_KEYS & set(case))
        if needs_oracle:
            raise UsageError(f"{where}: a case without an oracle has only consistency checks, which take no"
                             f" {needs_oracle[0]}; drop {needs_oracle[0]}, or add oracle = \"NAME\"")
        return _consistency_cells(p, where, case, signature(""), ())
    if not isinstance(case["oracle"], str):
        raise UsageError(f"{where}: oracle must be a string, got {_toml_value(case['oracle'])}; e.g. oracle = \"softplus\"")
    oracle = get_oracle(case["oracle"])
    where = f"{where} ({oracle.name})"
    dtypes = [get_format(d).name for d in _list_of_str(where, "dtypes", case["dtypes"])]
    devices = _devices(where, case)
    inputs = [parse_inputs(s).text for s in _list_of_str(where, "inputs", case["inputs"])]
    params_table = case.get("params") or {}
    if not isinstance(params_table, Mapping):
        raise UsageError(f"{where}: params must be a table such as {{ beta = 2.0 }}")
    bound = oracle.bind(params_table)
    params = tuple(sorted((k, v) for k, v in bound.items()))
    timeout = _timeout(where, case)
    framework = _framework(where, case)
    judged = _passes(where, oracle, case)
    resolved = _impls(p, where, case, oracle, framework)
    wildcard = {i.id for i in impls_for(oracle.name)} if "*" in case["impls"] else set()
    cells: list[CellSpec] = []
    for wrt, cotangent in judged:
        for impl_id, fw, custom in resolved:
            # "*" means every built-in that has a gradient to judge: numpy's have none (an
            # implementation named on its own still gets its cells, which say so)
            if wrt and impl_id in wildcard and differentiable(fw, get_impl(impl_id).fn) is not None:
                continue
            for dtype in dtypes:
                table = case.get("grad_budget", case.get("budget")) if wrt else case.get("budget")
                budget = _budget_for(where, table, dtype, "grad_budget" if wrt and "grad_budget" in case else "budget")
                for device in devices:
                    for spec_text in inputs:
                        cells.append(CellSpec(
                            oracle=oracle.name, impl=impl_id, framework=fw, dtype=dtype, device=device,
                            inputs=spec_text, params=params, budget=budget, custom=custom, timeout=float(timeout),
                            wrt=wrt, cotangent=cotangent,
                        ))
    if case.get("consistency", False) is not False:  # [] or 0 is a mistake to name, not a false
        cells += _consistency_cells(p, where, case, oracle, params)
    elif {"consistency_inputs", "consistency_dtypes", "consistency_budget"} & set(case):
        raise UsageError(f"{where}: consistency_inputs, consistency_dtypes and consistency_budget need"
                         " consistency = true (or a list)")
    return cells



def _devices(where: str, case: Mapping[str, Any]) -> list[str]:
    devices = _list_of_str(where, "devices", case.get("devices", ["cpu"]))
    for device in devices:
        if device not in DEVICES:
            raise UsageError(f"{where}: unknown device {device!r}; {choices(DEVICES, given=device)}")
    return devices


def _impls(p: Path, where: str, case: Mapping[str, Any], oracle: Oracle,
           framework: str | None) -> list[tuple[str, str, bool]]:
    """The case's implementations as (id, framework, custom): ``"*"`` is every built-in of
    the oracle; a case without an oracle (consistency only) takes custom ones alone."""
    resolved: list[tuple[str, str, bool]] = []
    for spec in _list_of_str(where, "impls", case["impls"]):
        if spec == "*" and oracle.name:
            resolved += [(i.id, i.framework, False) for i in impls_for(oracle.name)]
            continue
        impl_id, custom = _resolve_impl(spec, p.parent)
        if not custom and not oracle.name:
            raise UsageError(f"{where}: a case without an oracle takes custom implementations (module:function or"
                             f" file.py:function), got {spec!r}")
        if custom:
            if framework is None:
                raise UsageError(f"{where}: custom implementation {spec!r} needs framework = one of {', '.join(FRAMEWORKS)}")
            resolved.append((impl_id, framework, True))
        else:
            impl = get_impl(impl_id)
            if impl.oracle != oracle.name:
                raise UsageError(f"{where}: {impl_id} implements {impl.oracle}, not {oracle.name}")
            resolved.append((impl.id, impl.framework, False))
    return resolved

def _consistency_cells(p: Path, where: str, case: Mapping[str, Any], oracle: Oracle,
                       params: tuple[tuple[str, Any], ...]) -> list[CellSpec]:
    """The consistency cells of a case (README "Consistency"): one per implementation,
    dtype, device, input set and check."""
    wanted = case["consistency"]
    if isinstance(wanted, bool):
        requested = None
    elif isinstance(wanted, list):
        requested = _list_of_str(where, "consistency", wanted)
    else:
        raise UsageError(f"{where}: consistency must be true, false or a list of checks, got {_toml_value(wanted)};"
                         f" e.g. consistency = true or consistency = {_EXAMPLES['consistency']}")
    table = case.get("consistency_budget", {})
    if isinstance(table, Mapping):
        # two answers of one implementation have no truth: only the ULPs between them count
        _check_keys(f"{where}.consistency_budget", table, {"max_ulp"})
    dtypes = [get_format(d).name for d in _list_of_str(where, "dtypes", case["dtypes"])]
    if "consistency_dtypes" in case:
        names = _list_of_str(where, "consistency_dtypes", case["consistency_dtypes"])
        try:
            wanted_dtypes = [get_format(d).name for d in names]
        except UsageError as exc:
            raise UsageError(f"{where}: consistency_dtypes: {exc}") from None
        extra = [d for d in wanted_dtypes if d not in dtypes]
        if extra:
            raise UsageError(f"{where}: consistency_dtypes names {extra[0]}, which is not in dtypes"
                             f" ({', '.join(dtypes)}); consistency_dtypes picks some of them")
        dtypes = wanted_dtypes
    budgets = {dtype: _budget_for(where, table, dtype, "consistency_budget") for dtype in dtypes}
    devices = _devices(where, case)
    if requested and "device" in requested and "cuda" not in devices:
        raise UsageError(f"{where}: consistency check 'device' compares CPU with CUDA, and the case has no cuda"
                         f" device; add \"cuda\" to devices, or drop \"device\" from consistency")
    specs = case.get("consistency_inputs", case["inputs"])
    inputs = [parse_inputs(s).text for s in _list_of_str(where, "consistency_inputs", specs)]
    bound = consistency_params(oracle, dict(params))
    cparams = tuple(sorted(bound.items()))
    timeout = _timeout(where, case)
    framework = _framework(where, case)
    resolved = _impls(p, where, case, oracle, framework)
    cells: list[CellSpec] = []
    try:
        for impl_id, fw, custom in resolved:
            for dtype in dtypes:
                budget = budgets[dtype]
                for device in devices:
                    for check in checks_for(oracle, bound, device, requested):
                        for spec_text in inputs:
                            cells.append(CellSpec(
                                oracle=oracle.name, impl=impl_id, framework=fw, dtype=dtype, device=device,
                                inputs=spec_text, params=cparams, budget=budget, custom=custom, timeout=timeout,
                                check=check,
                            ))
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    return cells


def _timeout(where: str, case: Mapping[str, Any]) -> float:
    timeout = case.get("timeout", 300)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
        raise UsageError(f"{where}: timeout must be a positive number of seconds, got {_toml_value(timeout)};"
                         " e.g. timeout = 300")
    return float(timeout)


def _framework(where: str, case: Mapping[str, Any]) -> str | None:
    framework = case.get("framework")
    if framework is not None and framework not in FRAMEWORKS:
        raise UsageError(f"{where}: unknown framework {framework!r}; {choices(FRAMEWORKS, given=framework)}")
    return framework


def _passes(where: str, oracle: Any, case: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The case's ``(wrt, cotangent)`` pairs from ``mode``/``grad``/``wrt``/``cotangents``."""
    grad = case.get("grad")
    if grad is not None and not isinstance(grad, bool):
        raise UsageError(f"{where}: grad must be true or false, got {_toml_value(grad)}; e.g. grad = true")
    mode = case.get("mode")
    if mode is not None and not isinstance(mode, str):
        raise UsageError(f'{where}: mode must be "forward", "grad" or "both", got {_toml_value(mode)}')
    if grad is not None and mode is not None and (mode == "forward") == grad:
        raise UsageError(f'{where}: grad = {_toml_value(grad)} contradicts mode = "{mode}"; keep one of them')
    chosen = mode or ("grad" if grad else "forward")
    wrt = _list_of_str(where, "wrt", case["wrt"]) if "wrt" in case else None
    cotangents = _list_of_str(where, "cotangents", case["cotangents"]) if "cotangents" in case else ["ones"]
    if chosen == "forward" and ("wrt" in case or "cotangents" in case or "grad_budget" in case):
        raise UsageError(f'{where}: wrt, cotangents and grad_budget need mode = "grad" or "both" (or grad = true)')
    try:
        return passes(oracle, chosen, wrt, cotangents)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
