"""Which of fpharness's requirements are missing from this Python: one per line, as pip
takes them (``platformdirs>=3``). Used by scripts/gpu_check.sh before fpharness itself can
be imported, so it needs the standard library only (Python 3.11+ for tomllib).

    python scripts/gpu_deps.py [--extra NAME] [--pyproject PATH]

Without ``--extra`` it checks the runtime dependencies of pyproject.toml
(``[project] dependencies``); with it, that optional extra (``fast``: gmpy2). A requirement
counts as present when its distribution is installed in a version the specifier accepts;
environment markers (``python_version < '3.11'``) are honoured. The version test and the
markers use ``packaging`` (or the copy pip vendors); without either, a requirement counts as
present when installed at all, and a marker is read only for ``python_version``. Exit 0 with
the missing ones printed (nothing printed: all present), 2 when pyproject.toml cannot be read.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import tomllib

__all__ = ["main", "missing"]

_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_PY_MARKER = re.compile(r"python_version\s*(<=|>=|==|!=|<|>)\s*['\"](\d+(?:\.\d+)*)['\"]")


def _packaging() -> tuple[ModuleType, ModuleType] | None:
    """(requirements, version) modules of ``packaging``, or of pip's vendored copy; None."""
    for root in ("packaging", "pip._vendor.packaging"):
        try:
            return importlib.import_module(f"{root}.requirements"), importlib.import_module(f"{root}.version")
        except ImportError:
            continue
    return None


def _plain_marker_holds(marker: str) -> bool:
    """A ``python_version <op> 'X.Y'`` marker judged without packaging; any other is taken to hold."""
    found = _PY_MARKER.search(marker)
    if found is None:
        return True
    op, text = found.groups()
    have, want = sys.version_info[:2], tuple(int(p) for p in text.split("."))
    return {"<": have < want, "<=": have <= want, ">": have > want, ">=": have >= want,
            "==": have == want, "!=": have != want}[op]


def _is_missing(requirement: str, tools: tuple[ModuleType, ModuleType] | None) -> bool:
    if tools is not None:
        requirements, version = tools
        req: Any = requirements.Requirement(requirement)
        if req.marker is not None and not req.marker.evaluate():
            return False
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            return True
        return bool(req.specifier) and not req.specifier.contains(version.Version(installed), prereleases=True)
    spec, _, marker = requirement.partition(";")
    if marker and not _plain_marker_holds(marker):
        return False
    name = _NAME.match(spec)
    if name is None:
        return True
    try:
        importlib.metadata.version(name.group(1))
    except importlib.metadata.PackageNotFoundError:
        return True
    return False


def missing(pyproject: Path, extra: str | None = None) -> list[str]:
    """The requirements (runtime ones, or the ``extra``'s) this Python lacks, as written in
    ``pyproject``. Raises OSError or ValueError when the file cannot be read, KeyError for
    an unknown extra."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    wanted = project.get("dependencies", []) if extra is None else project["optional-dependencies"][extra]
    tools = _packaging()
    return [r.split(";")[0].strip() for r in wanted if _is_missing(r, tools)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_deps.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--extra", help="an optional extra of pyproject.toml (e.g. fast) instead of the runtime ones")
    parser.add_argument("--pyproject", type=Path, default=Path(__file__).resolve().parents[1] / "pyproject.toml")
    args = parser.parse_args(argv)
    try:
        lacking = missing(args.pyproject, args.extra)
    except KeyError:
        print(f"gpu_deps.py: {args.pyproject} has no extra {args.extra!r}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"gpu_deps.py: cannot read {args.pyproject}: {exc}", file=sys.stderr)
        return 2
    for requirement in lacking:
        print(requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main())
