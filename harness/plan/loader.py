"""Importing users' Python files: one module per file, whoever asks.

A suite's ``imports = ["mine.py"]`` and a custom implementation ``mine.py:f`` name the same
file; both get the same module object, so the file's oracles register once and its
functions are the ones the suite's oracles see. The module name is derived from the
resolved path with SHA-256 (not ``hash()``, which is salted per process, so worker
processes and the parent would disagree). A file whose bytes changed since it was loaded
is executed again: an in-process caller that edits and re-checks gets the new code.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from harness.plan.files import regular_file
from oracles.errors import UsageError

__all__ = ["import_source", "load_file", "module_name_for", "source_of"]

_DIGEST_ATTR = "__fpharness_digest__"
_PREFIX = "fpharness_user_"


def module_name_for(path: Path) -> str:
    """The module name a user's file is loaded under (stable across processes)."""
    key = hashlib.sha256(str(path.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{_PREFIX}{path.stem if path.stem.isidentifier() else 'file'}_{key}"


def load_file(path: Path, *, what: str, shown: str | None = None) -> ModuleType:
    """Import ``path`` as a module (once per content). Errors read ``{what} {shown!r} does
    not exist`` and ``importing {shown!r} failed: ...`` (``shown`` defaults to the path as
    given); any exception the file raises while importing becomes that one-line
    :class:`UsageError`."""
    shown = str(path) if shown is None else shown
    regular_file(path, what, shown=shown, inside="the .py file", otherwise="give a .py file")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    name = module_name_for(path)
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, _DIGEST_ATTR, None) == digest:
        return loaded
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot import {shown!r} as a Python file")
    module = importlib.util.module_from_spec(spec)
    setattr(module, _DIGEST_ATTR, digest)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's module failed to import
        del sys.modules[name]
        raise UsageError(f"importing {shown!r} failed: {type(exc).__name__}: {exc}") from None
    return module


def source_of(module_name: str) -> str | None:
    """How another process imports the module ``module_name`` that is loaded here: the
    path of a user's file loaded by :func:`load_file`, else the module name; None for
    ``__main__``, which no other process can import."""
    if module_name in ("__main__", "__mp_main__"):
        return None
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if module_name.startswith(_PREFIX) and file:
        return str(file)
    return module_name


def import_source(source: str) -> ModuleType:
    """Import what :func:`source_of` returned (in a worker process): a file by path, under
    the same module name as in the parent, or a module by name."""
    if source.endswith(".py"):
        return load_file(Path(source), what="user module")
    try:
        return importlib.import_module(source)
    except ImportError as exc:
        raise UsageError(f"cannot import module {source!r}: {exc}") from None
