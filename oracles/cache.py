"""An on-disk cache of oracle references, content-addressed and safe to share.

A reference (:class:`~oracles.reference.Reference`) depends on the oracle (name and
``version``), the fast tier that helped compute it (its version; 0 for pure mpmath), the
bound parameters, the input and output formats, and the exact input bytes. The key is the
SHA-256 of all of that, so a changed oracle, tier, parameter or input is simply a
different entry: nothing is ever invalidated in place.

Each entry is one ``.npz`` file (no pickle: it is read with ``allow_pickle=False``) holding
the four arrays and a JSON ``meta`` record with :data:`SCHEMA`. Writes go through
:func:`oracles.atomic.atomic_write_bytes` (a temporary file in the same directory, fsynced,
renamed over the final name): a reader sees either nothing or a whole file, and two
processes writing the same key just write the same bytes twice. A file that does not load,
has another schema or key, or has malformed arrays is a miss and is removed.

Rejected alternatives: pickle (executes code on load, and breaks across versions), one
SQLite database (a single writer lock under ``pytest -n``, and a corrupt page loses
everything rather than one entry), compressed ``.npz`` (zlib costs more time than the disk
it saves for references that are mostly incompressible float64).

Maintenance (``fpharness cache info|clear``): :func:`cache_stats` and :func:`clear_cache`
recognise the cache's own files by name (``XY/<hex key>.npz`` entries, and
``XY/.<hex key>.npz.*.tmp`` or, from older versions, ``XY/.tmp-*.npz`` leftovers of
interrupted writes) and never follow a symbolic link; anything else in the directory is
reported and left alone. In the subdirectories the caller owns (``extra_dirs``), a file is
removed only when the caller's recogniser says it is one of its own. This module does not
know what those are: the harness keeps its JAX compilation cache and stored cell results
beside the references, and recognises their files by name and content.

A cache directory that the cache creates gets a ``CACHEDIR.TAG`` (:func:`make_cache_dir`,
the standard of https://bford.info/cachedir/: backup tools and ``tar --exclude-caches``
skip it). :func:`clear_cache` refuses a directory with neither the tag nor any file it
recognises: ``--cache-dir .`` in a project is a mistake, and clearing there must not
touch a single file. An existing directory is never tagged: it may be the user's own
folder, which the tag would hide from their backups.

This module is longer than most (about 790 lines) on purpose: the writer and the
maintenance code share the on-disk naming rules (entry, shard, temporary-file and tag
names), and keeping them in one file is what guarantees ``clear`` only ever removes what
``put`` wrote.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import stat
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import platformdirs

from oracles.atomic import TEMP_NAME, atomic_write_bytes, atomic_write_text
from oracles.errors import UsageError
from oracles.evaluate import evaluate
from oracles.fast import tier_version
from oracles.formats import Format, format_of_dtype
from oracles.reference import Reference
from oracles.registry import Oracle

__all__ = [
    "CACHEDIR_TAG",
    "ENV_VAR",
    "INFO_SCHEMA",
    "SCHEMA",
    "STALE_TEMP_SECONDS",
    "CacheStats",
    "ClearResult",
    "GroupStats",
    "OwnsFile",
    "ReferenceCache",
    "SubdirStats",
    "cache_stats",
    "cached_evaluate",
    "clear_cache",
    "default_cache_dir",
    "make_cache_dir",
]

#: 2 (2026-12): ulp_exp is the exact value's binade beside a power of two (oracles.ziv); a
#: schema-1 entry may hold the binade above, so none is read again
SCHEMA = 2
#: schema of the record :meth:`CacheStats.to_json` returns (``fpharness cache info --json``)
INFO_SCHEMA = 1
#: a temporary file younger than this may belong to a write in progress and is left alone;
#: one put writes a whole reference in seconds, so an hour is generous
STALE_TEMP_SECONDS = 3600.0
ENV_VAR = "FPHARNESS_CACHE_DIR"
_ARRAYS = (("want", np.float64), ("hi", np.float64), ("lo", np.float64), ("ulp_exp", np.int32))
# What a damaged file can raise while being read: a truncated or garbled zip, a missing
# member, a bad header, an unreadable file, bad JSON.
_CORRUPT = (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile, zlib.error)


def default_cache_dir() -> Path:
    """Where references are cached unless the caller names a directory.

    ``$FPHARNESS_CACHE_DIR`` if set and not empty (``~`` expanded): one variable moves the
    cache for every command, test run and worker process, e.g. onto a shared or faster disk,
    or into a CI cache. Otherwise the platform's per-user cache directory, from
    ``platformdirs.user_cache_dir("fpharness")``: ``$XDG_CACHE_HOME/fpharness`` (if that
    variable is set) or ``~/.cache/fpharness`` on Linux, ``~/Library/Caches/fpharness`` on
    macOS, ``%LOCALAPPDATA%\\fpharness\\Cache`` on Windows."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    # appauthor=False: no vendor folder on Windows (fpharness\Cache, not fpharness\fpharness\Cache)
    return Path(platformdirs.user_cache_dir("fpharness", appauthor=False))


#: the name of the cache directory's tag file (https://bford.info/cachedir/)
CACHEDIR_TAG = "CACHEDIR.TAG"
_TAG_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"
_TAG_TEXT = (
    _TAG_SIGNATURE.decode()
    + "\n# This file is a cache directory tag created by fpharness (oracle references, JAX's"
    "\n# compilation cache, stored cell results); `fpharness cache clear` empties it."
    "\n# For information about cache directory tags, see https://bford.info/cachedir/\n"
)


def make_cache_dir(path: str | os.PathLike[str]) -> None:
    """Create the cache directory ``path`` with a ``CACHEDIR.TAG`` in it, when it does not
    exist yet; an existing directory is left as it is (it may be the user's own folder,
    which a tag would hide from backups). Raises OSError when it cannot be created; a tag
    that cannot be written is not an error (``clear`` then recognises the cache by its
    entries)."""
    path = Path(path)
    if path.is_dir():
        return
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        return  # another process made it first, and tags it
    with contextlib.suppress(OSError):
        atomic_write_text(path / CACHEDIR_TAG, _TAG_TEXT, durable=False)


def _tagged(path: Path) -> bool:
    """Whether ``path`` holds a valid CACHEDIR.TAG: a regular file (not a link) that starts
    with the signature."""
    try:
        fd = os.open(path / CACHEDIR_TAG, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    except OSError:
        return False
    with os.fdopen(fd, "rb") as fh:
        try:
            return stat.S_ISREG(os.fstat(fh.fileno()).st_mode) and fh.read(len(_TAG_SIGNATURE)) == _TAG_SIGNATURE
        except OSError:
            return False


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

    def put(self, key: str, ref: Reference, *, about: Mapping[str, str | int] | None = None) -> Path:
        """Store ``ref`` under ``key`` atomically; returns the file. ``about`` adds
        descriptive fields to the entry's meta record (:func:`cached_evaluate` stores the
        oracle, its version and the formats, which :func:`cache_stats` reports and
        :func:`clear_cache` selects by); it never changes the key or what ``get`` accepts.
        Raises OSError when the directory cannot be written."""
        file = self._file(key)
        make_cache_dir(self.path)
        meta = json.dumps({**(about or {}), "schema": SCHEMA, "key": key, "shape": list(ref.shape)})
        payload: dict[str, Any] = {name: np.asarray(getattr(ref, name), dtype=dt) for name, dt in _ARRAYS}
        payload["meta"] = np.array(meta)
        buf = io.BytesIO()
        np.savez(buf, **payload)
        atomic_write_bytes(file, buf.getvalue(), durable=True)
        return file

    def _discard(self, file: Path) -> None:
        with contextlib.suppress(OSError):
            file.unlink()

    def info(self) -> dict[str, Any]:
        """``{"entries": n, "bytes": their total size, "path": str}``; :func:`cache_stats`
        has the details."""
        stats = cache_stats(self.path)
        return {"entries": stats.entries, "bytes": stats.entry_bytes, "path": str(self.path)}

    def clear(self) -> int:
        """Remove every entry and every temporary file (even a fresh one: the caller says no
        write is in progress); returns the entries removed. Subdirectories stay."""
        return clear_cache(self.path, stale_after_s=-math.inf).entries


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
    about: dict[str, str | int] = {"oracle": oracle.name, "oracle_version": oracle.version,
                                   "in": _format_name(in_fmt), "out": fmt.name}
    with contextlib.suppress(OSError):
        cache.put(key, ref, about=about)
    return ref


# -- maintenance: what the directory holds, and removing it -----------------------------------
# Files are recognised by name and by being regular files seen without following links
# (lstat): a link is never read through nor descended into, so nothing outside the directory
# is ever counted or removed. Every step tolerates a file vanishing under it, since another
# process may be clearing or writing the same directory.

_SHARD = re.compile(r"[0-9a-f]{2}")
_ENTRY = re.compile(r"([0-9a-f]{3,})\.npz")  # the names ReferenceCache._file gives
# oracles.atomic names a temporary file after its destination; `.tmp-*.npz` is the name
# versions before it gave, whose leftovers may still lie in an old cache directory
_LEGACY_TEMP = re.compile(r"\.tmp-\w+\.npz")
_UNKNOWN = "unknown"  # oracle or format of an entry whose meta record does not name them
_DAY = 86400.0

#: ``owns(relative, path)``: whether the file at ``path``, ``relative`` (a POSIX path) to the
#: owned subdirectory, is one its owner wrote; it may read the file (never through a link:
#: only regular files are asked about)
OwnsFile = Callable[[str, str], bool]


@dataclass(frozen=True, slots=True)
class GroupStats:
    """The readable entries of one oracle into one output format. ``oracle`` and
    ``out_format`` are ``"unknown"`` for entries written before the meta record named them."""

    oracle: str
    out_format: str
    entries: int
    bytes: int

    @property
    def id(self) -> str:
        return f"{self.oracle}[{self.out_format}]"


@dataclass(frozen=True, slots=True)
class SubdirStats:
    """A subdirectory of the cache directory that holds no entries: one the caller owns
    (named in ``extra_dirs``) or a foreign one, only reported. ``files`` and ``bytes`` count
    everything in it; ``own_files`` and ``own_bytes`` the files its owner recognises, which
    :func:`clear_cache` removes (0 in a foreign one)."""

    name: str
    files: int
    bytes: int
    owned: bool
    own_files: int = 0
    own_bytes: int = 0


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What a cache directory holds (see :func:`cache_stats`). Sizes are file sizes in bytes.

    ``groups``: readable entries per oracle and output format; ``unreadable``: entry files
    that ``ReferenceCache.get`` would discard (damaged, another schema or key);
    ``temp_files``: leftovers of interrupted writes (``stale_temp_files`` of them older than
    :data:`STALE_TEMP_SECONDS`); ``foreign_files``: files the cache did not make, left
    alone; ``subdirs``: other subdirectories, owned or not; ``tagged``: whether the
    directory holds a CACHEDIR.TAG (not counted in any size)."""

    path: Path
    exists: bool
    tagged: bool = False
    groups: tuple[GroupStats, ...] = ()
    unreadable: int = 0
    unreadable_bytes: int = 0
    temp_files: int = 0
    temp_bytes: int = 0
    stale_temp_files: int = 0
    foreign_files: int = 0
    foreign_bytes: int = 0
    subdirs: tuple[SubdirStats, ...] = ()

    @property
    def entries(self) -> int:
        """Every entry file, unreadable ones included."""
        return sum(g.entries for g in self.groups) + self.unreadable

    @property
    def entry_bytes(self) -> int:
        return sum(g.bytes for g in self.groups) + self.unreadable_bytes

    @property
    def total_bytes(self) -> int:
        """Everything under the directory but its CACHEDIR.TAG: entries, temporary, foreign
        and subdirectory files."""
        return self.entry_bytes + self.temp_bytes + self.foreign_bytes + sum(d.bytes for d in self.subdirs)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record with ``"schema": INFO_SCHEMA`` (``fpharness cache info --json``)."""
        return {
            "schema": INFO_SCHEMA,
            "path": str(self.path),
            "exists": self.exists,
            "tagged": self.tagged,
            "entry_schema": SCHEMA,
            "entries": self.entries,
            "entry_bytes": self.entry_bytes,
            "total_bytes": self.total_bytes,
            "by_oracle": [
                {"oracle": g.oracle, "out_format": g.out_format, "entries": g.entries, "bytes": g.bytes}
                for g in self.groups
            ],
            "unreadable": {"entries": self.unreadable, "bytes": self.unreadable_bytes},
            "temp_files": {"files": self.temp_files, "bytes": self.temp_bytes, "stale": self.stale_temp_files},
            "foreign_files": {"files": self.foreign_files, "bytes": self.foreign_bytes},
            "other": [{"name": d.name, "files": d.files, "bytes": d.bytes, "owned": d.owned,
                       "own_files": d.own_files, "own_bytes": d.own_bytes} for d in self.subdirs],
        }


@dataclass(frozen=True, slots=True)
class ClearResult:
    """What :func:`clear_cache` removed (with ``dry_run``: would remove). ``entries`` and
    ``temp_files`` count files in the entry shards, ``subdir_files`` the recognised files
    under the owned subdirectories named in ``subdirs`` (those of ``extra_dirs`` that had
    files to remove);
    ``kept`` counts the entries left in place and
    ``failed`` names the files that could not be removed, with the reason."""

    path: Path
    exists: bool
    dry_run: bool
    entries: int = 0
    entry_bytes: int = 0
    temp_files: int = 0
    temp_bytes: int = 0
    subdir_files: int = 0
    subdir_bytes: int = 0
    subdirs: tuple[str, ...] = ()
    kept: int = 0
    failed: tuple[str, ...] = ()

    @property
    def files(self) -> int:
        return self.entries + self.temp_files + self.subdir_files

    @property
    def bytes(self) -> int:
        return self.entry_bytes + self.temp_bytes + self.subdir_bytes


@dataclass(frozen=True, slots=True)
class _File:
    path: str
    kind: str  # "entry", "temp", "tag" or "foreign"
    size: int
    mtime: float
    key: str = ""


def _resolve(path: str | os.PathLike[str] | None) -> Path:
    return Path(path).expanduser() if path is not None else default_cache_dir()


def _is_dir(path: Path) -> bool:
    """Whether the cache directory exists. It may itself be a link (the user chose where it
    points); a file in its place is a usage error."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise UsageError(f"cannot read the cache directory {str(path)!r}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(
            f"the cache directory {str(path)!r} is not a directory; give another with --cache-dir or {ENV_VAR}"
        )
    return True


def _listdir(path: str | Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []  # removed since it was listed


def _lstat(entry: os.DirEntry[str]) -> os.stat_result | None:
    try:
        return entry.stat(follow_symlinks=False)
    except OSError:
        return None  # vanished (or unreadable): nothing to count or remove


def _size(st: os.stat_result) -> int:
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _scan(path: Path) -> tuple[list[_File], list[os.DirEntry[str]]]:
    """The files of the entry shards and the top level, classified, and the other
    subdirectories (never links)."""
    files: list[_File] = []
    subdirs: list[os.DirEntry[str]] = []
    for top in sorted(_listdir(path), key=lambda e: e.name):
        st = _lstat(top)
        if st is None:
            continue
        if not stat.S_ISDIR(st.st_mode):
            kind = "tag" if top.name == CACHEDIR_TAG and stat.S_ISREG(st.st_mode) else "foreign"
            files.append(_File(top.path, kind, _size(st), st.st_mtime))
        elif not _SHARD.fullmatch(top.name):
            subdirs.append(top)
        else:
            for e in sorted(_listdir(top.path), key=lambda e: e.name):
                est = _lstat(e)
                if est is None:
                    continue
                kind, key = "foreign", ""
                if stat.S_ISREG(est.st_mode):
                    m = _ENTRY.fullmatch(e.name)
                    if m and m.group(1).startswith(top.name):
                        kind, key = "entry", m.group(1)
                    elif _is_temp(e.name, top.name):
                        kind = "temp"
                files.append(_File(e.path, kind, _size(est), est.st_mtime, key))
    return files, subdirs


def _owners(extra_dirs: Mapping[str, OwnsFile]) -> Mapping[str, OwnsFile]:
    # a name alone owned every file under it, which is how `cache clear --cache-dir .` once
    # emptied a user's results/; now each owner must say which files are its own
    if not isinstance(extra_dirs, Mapping) or not all(callable(f) for f in extra_dirs.values()):
        raise UsageError(
            f"extra_dirs={extra_dirs!r} must map each subdirectory name to a function (relative, path) -> bool"
            " that recognises its owner's files, e.g. {'results': ResultStore.owns}"
        )
    return extra_dirs


def _is_temp(name: str, shard: str) -> bool:
    """Whether ``name`` in the shard directory ``shard`` is a leftover of an entry's write."""
    if _LEGACY_TEMP.fullmatch(name):
        return True
    m = TEMP_NAME.fullmatch(name)
    if m is None:
        return False
    entry = _ENTRY.fullmatch(m.group("name"))
    return entry is not None and entry.group(1).startswith(shard)


def _tree(top: str, prefix: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
    """Every non-directory under ``top`` (links included, as links), depth first, as
    (path, path relative to ``top`` in POSIX form, lstat)."""
    for e in _listdir(top):
        st = _lstat(e)
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _tree(e.path, f"{prefix}{e.name}/")
        else:
            yield e.path, prefix + e.name, st


def _own(owns: OwnsFile | None, path: str, relative: str, st: os.stat_result) -> bool:
    """Whether the owner of a subdirectory claims this file: only regular files are asked,
    and an owner that fails to decide does not claim it."""
    if owns is None or not stat.S_ISREG(st.st_mode):
        return False
    try:
        return bool(owns(relative, path))
    except OSError:
        return False


def _prune(top: str, *, keep_top: bool) -> None:
    """Remove the empty directories under ``top`` (and ``top`` itself unless ``keep_top``)."""
    for e in _listdir(top):
        st = _lstat(e)
        if st is not None and stat.S_ISDIR(st.st_mode):
            _prune(e.path, keep_top=False)
    if not keep_top:
        with contextlib.suppress(OSError):  # not empty, or gone: both fine
            os.rmdir(top)


def _prune_up(directory: str, top: str) -> None:
    """Remove ``directory`` and its parents below ``top`` while they are empty."""
    while os.path.normpath(directory) != os.path.normpath(top) and directory.startswith(top):
        try:
            os.rmdir(directory)
        except OSError:  # not empty, or gone: both fine
            return
        directory = os.path.dirname(directory)


def _entry_meta(file: str, key: str) -> dict[str, Any] | None:
    """An entry's meta record, or None when ``ReferenceCache.get`` would discard the entry
    (damaged, another schema or key). Reads only the small ``meta`` member. Raises
    FileNotFoundError when the file has vanished."""
    try:
        # O_NOFOLLOW: the file was a regular one when listed; never read through a link
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"][()]))
    except FileNotFoundError:
        raise
    except (*_CORRUPT, AttributeError):  # AttributeError: a plain .npy is no context manager
        return None
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA or meta.get("key") != key:
        return None
    return meta


def _label(meta: Mapping[str, Any], name: str) -> str:
    value = meta.get(name)
    return value if isinstance(value, str) and value else _UNKNOWN


def cache_stats(
    path: str | os.PathLike[str] | None = None,
    *,
    extra_dirs: Mapping[str, OwnsFile] | None = None,
    now: float | None = None,
) -> CacheStats:
    """What the cache directory ``path`` (default :func:`default_cache_dir`) holds: entries
    per oracle and output format (read from each entry's meta member, never its arrays),
    unreadable entries, leftover temporary files, foreign files and other subdirectories.
    ``extra_dirs`` maps the subdirectories the caller owns to a recogniser of its files
    (reported with ``owned=True`` and the recognised files counted; the harness passes
    ``jax`` and ``results``). ``now`` (seconds since the epoch) decides which temporary files
    are stale.

    A missing directory gives ``exists=False`` and zeros. Raises :class:`UsageError` when
    ``path`` is a file or cannot be read. Files that vanish meanwhile are not counted."""
    owned = _owners(extra_dirs or {})
    path = _resolve(path)
    if not _is_dir(path):
        return CacheStats(path, exists=False)
    now = time.time() if now is None else now
    files, subdirs = _scan(path)
    groups: dict[tuple[str, str], tuple[int, int]] = {}
    counts = {"unreadable": 0, "unreadable_bytes": 0, "temp_files": 0, "temp_bytes": 0,
              "stale_temp_files": 0, "foreign_files": 0, "foreign_bytes": 0}
    for f in files:
        if f.kind == "entry":
            try:
                meta = _entry_meta(f.path, f.key)
            except FileNotFoundError:
                continue
            if meta is None:
                counts["unreadable"] += 1
                counts["unreadable_bytes"] += f.size
            else:
                label = (_label(meta, "oracle"), _label(meta, "out"))
                n, size = groups.get(label, (0, 0))
                groups[label] = (n + 1, size + f.size)
        elif f.kind == "temp":
            counts["temp_files"] += 1
            counts["temp_bytes"] += f.size
            counts["stale_temp_files"] += now - f.mtime >= STALE_TEMP_SECONDS
        elif f.kind == "foreign":
            counts["foreign_files"] += 1
            counts["foreign_bytes"] += f.size
    others = []
    for d in subdirs:
        tree = list(_tree(d.path))
        mine = [st for file, rel, st in tree if _own(owned.get(d.name), file, rel, st)]
        others.append(SubdirStats(d.name, len(tree), sum(_size(st) for *_, st in tree), d.name in owned,
                                  len(mine), sum(_size(st) for st in mine)))
    return CacheStats(
        path,
        exists=True,
        tagged=any(f.kind == "tag" for f in files) and _tagged(path),
        groups=tuple(GroupStats(o, fmt, n, size) for (o, fmt), (n, size) in sorted(groups.items())),
        subdirs=tuple(others),
        **counts,
    )


def _unlink(path: str, failed: list[str]) -> bool:
    """Remove one file (a link itself, never its target). False when it was already gone
    (another process removed it: not an error) or could not be removed (noted in ``failed``)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        failed.append(f"{path}: {exc.strerror or exc}")
        return False
    return True


def clear_cache(
    path: str | os.PathLike[str] | None = None,
    *,
    oracle: str | None = None,
    older_than_days: float | None = None,
    dry_run: bool = False,
    stale_after_s: float = STALE_TEMP_SECONDS,
    extra_dirs: Mapping[str, OwnsFile] | None = None,
    now: float | None = None,
) -> ClearResult:
    """Remove cache files from ``path`` (default :func:`default_cache_dir`) and say what
    went (with ``dry_run``: what would go; nothing is touched).

    Removed: entry files, of ``oracle`` only when given (an entry whose meta does not name
    its oracle is then kept), and of those only the ones last written more than
    ``older_than_days`` days ago when given. Without ``oracle`` also temporary files older
    than ``stale_after_s`` (younger ones may be writes in progress) and, in the
    subdirectories named in ``extra_dirs``, the files their recogniser claims (with the same
    age limit), then the directories left empty (the ``extra_dirs`` themselves stay). The
    CACHEDIR.TAG, foreign files (in owned subdirectories too), other subdirectories and
    links are never removed or followed. Safe while other processes use the cache: a file
    that vanishes is skipped, and a writer that loses its shard directory only loses that
    one write.

    A missing directory removes nothing (``exists=False``), nor does an empty one. Raises
    :class:`UsageError` for a negative or non-finite age, when ``path`` is a file, and when
    ``path`` does not look like a cache: no CACHEDIR.TAG and not one file the cache or an
    owner recognises (``--cache-dir .`` in a project), before removing anything."""
    if older_than_days is not None and not (math.isfinite(older_than_days) and older_than_days >= 0):
        raise UsageError(f"older_than_days={older_than_days!r}: give a number of days >= 0, e.g. 30")
    owned = _owners(extra_dirs or {})
    path = _resolve(path)
    if not _is_dir(path):
        return ClearResult(path, exists=False, dry_run=dry_run)
    now = time.time() if now is None else now
    min_age = -math.inf if older_than_days is None else older_than_days * _DAY

    def old(mtime: float, at_least: float = min_age) -> bool:
        return now - mtime >= at_least

    failed: list[str] = []
    files, others = _scan(path)
    trees = {d.name: [(file, st) for file, rel, st in _tree(d.path) if _own(owned[d.name], file, rel, st)]
             for d in others if d.name in owned}
    recognised = any(f.kind in ("entry", "temp") for f in files) or any(trees.values())
    if not recognised and not _tagged(path) and (files or others):
        raise UsageError(
            f"{str(path)!r} does not look like an fpharness cache (no {CACHEDIR_TAG}, no entries), so nothing"
            f" in it was removed; pass the cache directory itself, e.g. --cache-dir {str(default_cache_dir())!r}"
        )
    n = {"entries": 0, "entry_bytes": 0, "temp_files": 0, "temp_bytes": 0,
         "subdir_files": 0, "subdir_bytes": 0, "kept": 0}
    for f in files:
        if f.kind == "entry":
            chosen = old(f.mtime)
            if chosen and oracle is not None:
                try:
                    meta = _entry_meta(f.path, f.key)
                except FileNotFoundError:
                    continue
                chosen = meta is not None and meta.get("oracle") == oracle
            if not chosen:
                n["kept"] += 1
            elif dry_run or _unlink(f.path, failed):
                n["entries"] += 1
                n["entry_bytes"] += f.size
        elif f.kind == "temp" and oracle is None and old(f.mtime, max(min_age, stale_after_s)):
            if dry_run or _unlink(f.path, failed):
                n["temp_files"] += 1
                n["temp_bytes"] += f.size
    touched: list[str] = []
    if oracle is None:
        for d in others:
            if d.name not in owned:
                continue
            before = n["subdir_files"]
            for file, st in trees[d.name]:
                if old(st.st_mtime) and (dry_run or _unlink(file, failed)):
                    n["subdir_files"] += 1
                    n["subdir_bytes"] += _size(st)
                    if not dry_run:
                        # only folders we emptied go, never the subdirectory itself: a JAX
                        # process using it keeps a directory to write to
                        _prune_up(os.path.dirname(file), d.path)
            if n["subdir_files"] > before:
                touched.append(d.name)
    if not dry_run:
        for d in _listdir(path):
            if _SHARD.fullmatch(d.name) and d.is_dir(follow_symlinks=False):
                _prune(d.path, keep_top=False)
    return ClearResult(path, exists=True, dry_run=dry_run, subdirs=tuple(touched), failed=tuple(failed), **n)
