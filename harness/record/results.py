"""Results files (schema 4): ``{"schema": 4, "run": {...}, "cells": [...], "scenarios": [...]}``.

Schema 2 added gradient cells: every cell says which pass it judges (``"pass":
"forward"`` or ``"grad"``, with ``"wrt"`` and ``"cotangent"`` for a gradient). Schema 3
added consistency cells (``"pass": "consistency"``, with ``"check"`` and the
``"consistency"`` record instead of error statistics). Schema 4 added training scenarios
(``"scenarios"``: :class:`~harness.judgement.training.ScenarioResult` records, written by
``fpharness train``). Files of schemas 1 to 3 still load (schema 1: every cell a forward
one); an fpharness that reads only older schemas refuses a newer file rather than
misreading or dropping what it does not know.

Written atomically (a temporary file in the same directory, flushed, fsynced and renamed
over the target), so a crash never leaves a half-written file. Loading checks the schema
version and says what to do with a file from a newer fpharness.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.frameworks.adapters import get_backend
from harness.judgement.training import ScenarioResult
from harness.plan.cells import CellResult
from oracles.atomic import atomic_write_text
from oracles.errors import UsageError

__all__ = ["SCHEMA", "Results", "RunInfo", "load_results", "run_info"]

SCHEMA = 4
#: the schemas this fpharness reads (1: before gradient cells, every cell a forward one;
#: 2: before consistency cells; 3: before training scenarios)
READABLE = (1, 2, 3, 4)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Metadata of a run: when, where, with which versions and devices."""

    started: str
    finished: str
    host: str
    python: str
    platform: str
    fpharness: str
    frameworks: dict[str, str | None] = field(default_factory=dict)
    devices: dict[str, dict[str, str]] = field(default_factory=dict)
    git_commit: str | None = None
    seeds: tuple[int, ...] = ()
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "finished": self.finished,
            "host": self.host,
            "python": self.python,
            "platform": self.platform,
            "fpharness": self.fpharness,
            "frameworks": dict(self.frameworks),
            "devices": {k: dict(v) for k, v in self.devices.items()},
            "git_commit": self.git_commit,
            "seeds": list(self.seeds),
            "command": self.command,
            **self.extra,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> RunInfo:
        known = {"started", "finished", "host", "python", "platform", "fpharness", "frameworks", "devices",
                 "git_commit", "seeds", "command"}
        return RunInfo(
            started=str(d.get("started", "")),
            finished=str(d.get("finished", "")),
            host=str(d.get("host", "")),
            python=str(d.get("python", "")),
            platform=str(d.get("platform", "")),
            fpharness=str(d.get("fpharness", "")),
            frameworks=dict(d.get("frameworks") or {}),
            devices={k: dict(v) for k, v in (d.get("devices") or {}).items()},
            git_commit=d.get("git_commit"),
            seeds=tuple(d.get("seeds") or ()),
            command=str(d.get("command", "")),
            extra={k: v for k, v in d.items() if k not in known},
        )


@dataclass(frozen=True, slots=True)
class Results:
    """A run's metadata, its judged cells and its training scenarios."""

    run: RunInfo
    cells: tuple[CellResult, ...]
    scenarios: tuple[ScenarioResult, ...] = ()

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"schema": SCHEMA, "run": self.run.to_json(), "cells": [c.to_json() for c in self.cells]}
        if self.scenarios:
            d["scenarios"] = [s.to_json() for s in self.scenarios]
        return d

    def write(self, path: str | os.PathLike[str]) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False, default=_default) + "\n")

    @property
    def exit_code(self) -> int:
        """0 when every cell passed, was skipped or is unsupported (a format the framework
        does not compute the function in: a fact about the framework, not a failure) and
        every scenario stayed finite; 1 when any cell failed or errored, or any scenario
        went non-finite or errored."""
        bad_cell = any(c.status in ("fail", "error") for c in self.cells)
        return 1 if bad_cell or any(s.status != "finite" for s in self.scenarios) else 0


def _default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def load_results(path: str | os.PathLike[str]) -> Results:
    """Read a results file, checking its schema; problems are one-line :class:`UsageError`s."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"results file {str(p)!r} does not exist") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"results file {str(p)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "schema" not in data:
        raise UsageError(f"{str(p)!r} is not an fpharness results file (no 'schema' key)")
    schema = data["schema"]
    if schema not in READABLE:
        hint = "upgrade fpharness" if isinstance(schema, int) and schema > SCHEMA else "it is not a known version"
        readable = ", ".join(map(str, READABLE[:-1])) + f" and {READABLE[-1]}"
        raise UsageError(f"{str(p)!r} has results schema {schema!r}; this fpharness reads schemas {readable} ({hint})")
    try:
        cells = tuple(CellResult.from_json(c) for c in data.get("cells", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{str(p)!r} has a malformed cell: {type(exc).__name__}: {exc}") from None
    try:
        scenarios = tuple(ScenarioResult.from_json(s) for s in data.get("scenarios", []))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{str(p)!r} has a malformed scenario: {type(exc).__name__}: {exc}") from None
    return Results(RunInfo.from_json(data.get("run") or {}), cells, scenarios)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run_info(
    started: str,
    frameworks: Iterable[str],
    *,
    seeds: Sequence[int] = (),
    command: str = "",
    known: Mapping[str, tuple[str | None, dict[str, str]]] | None = None,
) -> RunInfo:
    """Collect metadata for the frameworks a run used (versions, devices and their names).

    ``known`` holds (version, devices) that worker processes reported for the frameworks
    they ran, so this process need not import them just to ask (TensorFlow alone takes
    seconds). A framework this process has neither imported nor been told about (every
    cell of it was read back by --reuse-results) gets its installed version from package
    metadata and no devices."""
    from importlib.metadata import PackageNotFoundError, version


    versions: dict[str, str | None] = {}
    devices: dict[str, dict[str, str]] = {}
    for name in sorted(set(frameworks)):
        if known and name in known:
            versions[name], devices[name] = known[name][0], dict(known[name][1])
            continue
        backend = get_backend(name)
        if backend.module not in sys.modules:
            versions[name] = _installed_version(backend.distributions)
            continue
        if backend.unavailable():
            versions[name] = None
            continue
        versions[name] = backend.version()
        try:
            devices[name] = backend.devices()
        except Exception as exc:  # noqa: BLE001 - metadata must never fail a run
            devices[name] = {"error": str(exc)}
    try:
        own = version("fpharness")
    except PackageNotFoundError:
        own = "unknown"
    return RunInfo(
        started=started,
        finished=_now(),
        host=socket.gethostname(),
        python=sys.version.split()[0],
        platform=platform.platform(),
        fpharness=own,
        frameworks=versions,
        devices=devices,
        git_commit=_git_commit(),
        seeds=tuple(sorted(set(seeds))),
        command=command,
    )


def _installed_version(distributions: Sequence[str]) -> str | None:
    """The version of the first of ``distributions`` that is installed."""
    from importlib.metadata import PackageNotFoundError, version

    for dist in distributions:
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


now = _now
