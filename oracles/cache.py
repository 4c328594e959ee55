"""An on-disk cache of oracle references, content-addressed and safe to share.

A reference (:class:`~oracles.reference.Reference`) depends on the oracle (name and
``version``), the fast tier that helped compute it (its version; 0 for pure mpmath), the
bound parameters, the input and output formats, and the exact input bytes. The key is the
SHA-256 of all of that, so a changed oracle, tier, parameter or input is simply a
different entry: nothing is ever invalidated in place.

Each entry is one ``.npz`` file (no pickle: it is read with ``allow_pickle=False``) holding
the four arrays and a JSON ``meta`` record with :data:`SCHEMA`. Writes go to a temporary
file in the same directory, are fsynced, and are renamed over the final name with
:func:`os.replace`, which is atomic: a reader sees either nothing or a whole file, and two
processes writing the same key just write the same bytes twice. A file that does not load,
has another schema or key, or has malformed arrays is a miss and is removed.

Rejected alternatives: pickle (executes code on load, and breaks across versions), one
SQLite database (a single writer lock under ``pytest -n``, and a corrupt page loses
everything rather than one entry), compressed ``.npz`` (zlib costs more time than the disk
it saves for references that are mostly incompressible float64).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from oracles.evaluate import evaluate
from oracles.fast import tier_version
from oracles.formats import Format, format_of_dtype
from oracles.reference import Reference
from oracles.registry import Oracle

__all__ = ["ENV_VAR", "SCHEMA", "ReferenceCache", "cached_evaluate", "default_cache_dir"]

SCHEMA = 1
ENV_VAR = "FPHARNESS_CACHE_DIR"
_ARRAYS = (("want", np.float64), ("hi", np.float64), ("lo", np.float64), ("ulp_exp", np.int32))
# What a damaged file can raise while being read: a truncated or garbled zip, a missing
# member, a bad header, an unreadable file, bad JSON.
_CORRUPT = (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile, zlib.error)


def default_cache_dir() -> Path:
    """``$FPHARNESS_CACHE_DIR`` if set, else the platform's user cache directory:
    ``$XDG_CACHE_HOME/fpharness`` or ``~/.cache/fpharness`` on Linux,
    ``~/Library/Caches/fpharness`` on macOS, ``%LOCALAPPDATA%/fpharness/Cache`` on Windows."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        return (Path(base) if base else Path.home() / "AppData" / "Local") / "fpharness" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "fpharness"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "fpharness"


def _param_text(value: float | str) -> str:
    # float.hex is exact: 0.1 and 0.1000000000000000055 are the same float and one key
    return float(value).hex() if isinstance(value, (int, float)) else str(value)


def _format_name(fmt: Format | str | None) -> str:
    return "" if fmt is None else str(fmt)


class ReferenceCache:
    """References on disk under ``path`` (default: :func:`default_cache_dir`)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"ReferenceCache({str(self.path)!r})"

    # -- keys -----------------------------------------------------------------------------
    def key(
        self,
        oracle: Oracle,
        params: dict[str, Any] | None,
        in_fmt: Format | str | None,
        out_fmt: Format,
        arrays: Sequence[npt.ArrayLike],
        *,
        tier: bool = True,
    ) -> str:
        """The content address of ``oracle`` evaluated on ``arrays`` into ``out_fmt``:
        64 hex digits. ``params`` are bound first (defaults filled in, numbers normalised),
        so ``{}`` and the explicit defaults give one key. ``tier`` says whether the fast tier
        may be used; it keys the entry by the tier's version (0 without one)."""
        digest = hashlib.sha256()
        for a in arrays:
            arr = np.ascontiguousarray(np.asarray(a))
            digest.update(f"{arr.dtype.name}|{arr.dtype.str}|{arr.shape}|".encode())
            digest.update(arr.reshape(-1).view(np.uint8).data)
        bound = oracle.bind(params)
        material = {
            "schema": SCHEMA,
            "oracle": oracle.name,
            "oracle_version": oracle.version,
            "fast_version": tier_version(oracle, out_fmt) if tier else 0,
            "params": {k: _param_text(v) for k, v in sorted(bound.items())},
            "in": _format_name(in_fmt),
            "out": out_fmt.name,
            "inputs": digest.hexdigest(),
        }
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()

    def _file(self, key: str) -> Path:
        if len(key) < 3 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"cache key {key!r} is not a hex digest from ReferenceCache.key")
        return self.path / key[:2] / f"{key}.npz"

    # -- entries ------------------------------------------------------------------------
    def get(self, key: str) -> Reference | None:
        """The stored reference, or None on a miss. A damaged entry counts as a miss and is
        removed, so the caller recomputes and rewrites it."""
        file = self._file(key)
        try:
            # our own handle: np.load leaks the one it opens when the zip is damaged
            with open(file, "rb") as fh, np.load(fh, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"][()]))
                arrays = [np.asarray(data[name]) for name, _ in _ARRAYS]
        except FileNotFoundError:
            return None
        except _CORRUPT:
            self._discard(file)
            return None
        shapes = {a.shape for a in arrays}
        good = (
            isinstance(meta, dict)
            and meta.get("schema") == SCHEMA
            and meta.get("key") == key
            and len(shapes) == 1
            and all(a.dtype == dt for a, (_, dt) in zip(arrays, _ARRAYS, strict=True))
        )
        if not good:
            self._discard(file)
            return None
        return Reference(*arrays)

    def put(self, key: str, ref: Reference) -> Path:
        """Store ``ref`` under ``key`` atomically; returns the file. Raises OSError when the
        directory cannot be written."""
        file = self._file(key)
        file.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"schema": SCHEMA, "key": key, "shape": list(ref.shape)})
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".tmp-", suffix=".npz")
        try:
            payload: dict[str, Any] = {name: np.asarray(getattr(ref, name), dtype=dt) for name, dt in _ARRAYS}
            payload["meta"] = np.array(meta)
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return file

    def _discard(self, file: Path) -> None:
        with contextlib.suppress(OSError):
            file.unlink()

    def _files(self, pattern: str) -> list[Path]:
        return sorted(self.path.glob(f"??/{pattern}")) if self.path.is_dir() else []

    def info(self) -> dict[str, Any]:
        """``{"entries": n, "bytes": total size, "path": str}``."""
        files = self._files("*.npz")
        size = 0
        for f in files:
            with contextlib.suppress(OSError):
                size += f.stat().st_size
        return {"entries": len([f for f in files if not f.name.startswith(".")]), "bytes": size,
                "path": str(self.path)}

    def clear(self) -> int:
        """Remove every entry (and leftover temporary files); returns the entries removed."""
        removed = 0
        for f in self._files("*.npz"):
            try:
                f.unlink()
            except OSError:
                continue
            removed += not f.name.startswith(".")
        if self.path.is_dir():
            for d in self.path.iterdir():
                if d.is_dir() and len(d.name) == 2:
                    with contextlib.suppress(OSError):
                        d.rmdir()  # only empty shard directories go
        return removed


def cached_evaluate(
    cache: ReferenceCache | None,
    oracle: Oracle,
    arrays: Sequence[npt.ArrayLike],
    fmt: Format,
    params: dict[str, Any] | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    **kw: Any,
) -> Reference:
    """:func:`~oracles.evaluate.evaluate` through ``cache`` (None: no cache). The input
    format is read off the first array's dtype. ``kw`` (``jobs``, ``tier``, ``chunk``) go to
    evaluate; only ``tier`` changes the key, the others cannot change the result. A cache
    that cannot be written is not an error: the reference is still returned."""
    if cache is None:
        return evaluate(oracle, arrays, fmt, params, progress=progress, **kw)
    arrs = [np.asarray(a) for a in arrays]
    try:
        in_fmt: Format | str = format_of_dtype(arrs[0].dtype) if arrs else ""
    except ValueError:
        in_fmt = arrs[0].dtype.name
    key = cache.key(oracle, params, in_fmt, fmt, arrs, tier=bool(kw.get("tier", True)))
    hit = cache.get(key)
    if hit is not None:
        if progress is not None:
            progress(hit.shape[0] if oracle.kind == "rowwise" else hit.size)
        return hit
    ref = evaluate(oracle, arrs, fmt, params, progress=progress, **kw)
    with contextlib.suppress(OSError):
        cache.put(key, ref)
    return ref
