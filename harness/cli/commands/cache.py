"""``fpharness cache info|clear``: what the on-disk oracle reference cache holds, and
removing it.

The logic is :func:`oracles.cache.cache_stats` and :func:`oracles.cache.clear_cache`; this
module parses options, checks them (a :class:`UsageError`, exit 2) and prints. Exit 0, or
1 when ``clear`` could not remove some files (permissions), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

from harness.cli.base import EXIT_FAIL, EXIT_OK, command
from harness.cli.options import JAX_CACHE_SUBDIR
from harness.record.reuse import SUBDIR as RESULTS_SUBDIR
from harness.record.reuse import ResultStore
from oracles import all_oracles
from oracles.cache import (
    ENV_VAR,
    STALE_TEMP_SECONDS,
    CacheStats,
    ClearResult,
    OwnsFile,
    cache_stats,
    clear_cache,
    default_cache_dir,
)
from oracles.errors import UsageError, choices

# What JAX (0.4.26 and later, through 0.10) writes in its persistent compilation cache,
# jax/ here: jax._src.lru_cache names an executable `<module>-<sha256 hex>-cache` and its
# access time `...-atime` (older versions: the key alone), and locks with `.lockfile`; XLA's
# GPU autotuner (jax_persistent_cache_enable_xla_caches, on by default) keeps one
# `<base64url sha256>.textproto` per fusion in xla_gpu_per_fusion_autotune_cache_dir/, written
# through tmp/tmp_per_fusion_cache_<n>.textproto, and its kernel cache in one file.
_JAX_FILES = re.compile(
    r"[^/]+-[0-9a-f]{64}(-cache|-atime)?"
    r"|\.lockfile"
    r"|xla_gpu_kernel_cache_file"
    r"|xla_gpu_per_fusion_autotune_cache_dir/[A-Za-z0-9_-]{43}=?\.textproto"
    r"|xla_gpu_per_fusion_autotune_cache_dir/tmp/tmp_per_fusion_cache_[0-9]+\.textproto"
)


def jax_owns(relative: str, path: str) -> bool:
    """Whether ``relative`` (inside ``jax/``) is a file JAX's compilation cache writes,
    recognised by name: its entries are opaque serialised executables."""
    return _JAX_FILES.fullmatch(relative) is not None


#: the folders inside the cache directory that the harness keeps there (JAX's compilation
#: cache, the reuse store), each with the recogniser of its files: ``cache clear`` removes
#: those and leaves anything else; oracles.cache does not know them
OWNED_SUBDIRS: dict[str, OwnsFile] = {JAX_CACHE_SUBDIR: jax_owns, RESULTS_SUBDIR: ResultStore.owns}

__all__ = ["OWNED_SUBDIRS", "cache_command", "clear_line", "human_bytes", "info_lines", "jax_owns"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"``; below 1 KiB the exact count, ``"512 B"``."""
    size, unit = float(n), 0
    while size >= 1024 and unit < len(_UNITS) - 1:
        size /= 1024
        unit += 1
    return f"{n} B" if unit == 0 else f"{size:.1f} {_UNITS[unit]}"


def _size(n: int) -> str:
    return f"{human_bytes(n)} ({n:,} bytes)"


def _plural(n: int, word: str, words: str = "") -> str:
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def _add_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", metavar="DIR",
                   help=f"the cache directory (default: ${ENV_VAR}, else the per-user cache directory, "
                        "~/.cache/fpharness on Linux)")


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="{info,clear}")
    sub.required = True
    owned = ", ".join(f"{d}/" for d in OWNED_SUBDIRS)
    info_help = "what the cache holds: entries and bytes per oracle and output format, leftovers, other subdirectories"
    info = sub.add_parser("info", help=info_help, description=info_help)
    _add_dir(info)
    info.add_argument("--json", action="store_true",
                      help='print a machine-readable record (with "schema": 1) instead of text')
    clear_help = (
        "remove cached references (only files the cache made; foreign files and links stay); "
        f"without --oracle also stale temporary files and the cache's own files in {owned}; "
        "refuses a directory with no CACHEDIR.TAG and no entries"
    )
    clear = sub.add_parser("clear", help=clear_help, description=clear_help)
    _add_dir(clear)
    clear.add_argument("--oracle", metavar="NAME",
                       help="only entries of this oracle (temporary files and subdirectories stay)")
    clear.add_argument("--older-than", type=float, metavar="DAYS",
                       help="only files last written more than DAYS days ago (fractions allowed, e.g. 0.5)")
    clear.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")


@command("cache", "inspect or clear the on-disk oracle reference cache: `cache info`, `cache clear`")(_configure)
def cache_command(args: argparse.Namespace) -> int:
    path = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    if args.action == "info":
        stats = cache_stats(path, extra_dirs=OWNED_SUBDIRS)
        if args.json:
            print(json.dumps(stats.to_json(), indent=2))
        else:
            print("\n".join(info_lines(stats)))
        return EXIT_OK
    older = args.older_than
    if older is not None and not (math.isfinite(older) and older >= 0):
        raise UsageError(f"--older-than {older:g}: give a number of days >= 0, e.g. --older-than 30")
    if args.oracle is not None:
        _check_oracle(args.oracle, path)
    result = clear_cache(path, oracle=args.oracle, older_than_days=older, dry_run=args.dry_run,
                         extra_dirs=OWNED_SUBDIRS)
    print(clear_line(result))
    for failure in result.failed:
        print(f"  could not remove {failure}")
    return EXIT_FAIL if result.failed else EXIT_OK


def _check_oracle(name: str, path: Path) -> None:
    """A name that is neither registered nor in the cache is a typo, not "nothing to
    clear"; a custom oracle's entries are found by name without importing its module."""
    registered = {o.name for o in all_oracles()}
    if name in registered:
        return
    cached = {g.oracle for g in cache_stats(path).groups} - {"unknown"}
    if name not in cached:
        raise UsageError(f"--oracle {name!r}: no such oracle and no cached entries of it; {choices(registered | cached)}")


def info_lines(stats: CacheStats) -> list[str]:
    """The text of ``fpharness cache info``."""
    lines = [f"cache directory: {stats.path}"]
    if not stats.exists:
        return [*lines, "exists: no (nothing cached yet)"]
    lines += ["exists: yes", f"entries: {stats.entries:,}, {_size(stats.entry_bytes)}"]
    rows = [(g.oracle, g.out_format, f"{g.entries:,}", _size(g.bytes)) for g in stats.groups]
    if stats.unreadable:
        rows.append(("unreadable", "", f"{stats.unreadable:,}", _size(stats.unreadable_bytes)))
    if rows:
        header = ("oracle", "format", "entries", "size")
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(3)]
        for row in (header, *rows):
            lines.append("  " + "  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]),
                                           row[2].rjust(widths[2]), row[3]]).rstrip())
    if stats.temp_files:
        lines.append(f"temporary files from interrupted writes: {stats.temp_files:,}, {_size(stats.temp_bytes)}"
                     f" ({stats.stale_temp_files:,} older than {STALE_TEMP_SECONDS / 3600:g} h, removed by `cache clear`)")
    for d in stats.subdirs:
        others = d.files - d.own_files
        if d.owned and not others:
            note = "emptied by `cache clear`"
        elif not d.owned or not d.own_files:
            note = "not the cache's, left alone"
        else:
            note = f"{_plural(d.own_files, 'file')} removed by `cache clear`, {others:,} not the cache's, left alone"
        lines.append(f"other: {d.name} {_size(d.bytes)}, {_plural(d.files, 'file')}; {note}")
    if stats.foreign_files:
        lines.append(f"foreign files: {stats.foreign_files:,}, {_size(stats.foreign_bytes)}; not the cache's, left alone")
    lines.append(f"total: {_size(stats.total_bytes)}")
    return lines


def clear_line(result: ClearResult) -> str:
    """The one-line summary of ``fpharness cache clear``."""
    if not result.exists:
        return f"nothing to clear: {result.path} does not exist"
    kept = f"; {_plural(result.kept, 'entry', 'entries')} kept" if result.kept else ""
    if not result.files:
        return f"nothing to clear in {result.path}{kept}"
    parts = [_plural(result.entries, "entry", "entries")] if result.entries or not result.files else []
    if result.temp_files:
        parts.append(_plural(result.temp_files, "temporary file"))
    if result.subdir_files:
        parts.append(f"{_plural(result.subdir_files, 'file')} under {', '.join(d + '/' for d in result.subdirs)}")
    what = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    verb = "would remove" if result.dry_run else "removed"
    return f"{verb} {what}: {_size(result.bytes)} from {result.path}{kept}"
