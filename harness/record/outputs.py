"""Checking where a command will write, before it does any work.

Every command that writes files (``check``/``run`` with ``--json``/``--html``, ``merge -o``,
``compare --markdown``, ``report -o``, ``python -m suites.seeds.report -o``) calls
:func:`check_outputs` with its outputs and its inputs first. A path that cannot be written,
or whose writing would destroy an input, is a :class:`~oracles.errors.UsageError` (one
line, exit 2) before a single cell runs; found after the run it would lose the run's
results, or, written, the input.

Nothing is created or changed by the check: a missing parent directory is judged by the
nearest one that exists (can a file be made there?), and made only when the output is
written. The one probe is an anonymous temporary file in that directory, gone when closed,
because permission bits alone do not tell (root passes every ``os.access`` check, yet cannot
write in ``/proc``). A race (the directory made read-only during the run) can still fail
the write; that is reported then, as one line too.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from oracles.errors import UsageError

__all__ = ["Input", "Output", "check_outputs"]


@dataclass(frozen=True, slots=True)
class Output:
    """A file a command will write: the option that names it (``--json``), the path as the
    user gave it, and a file name to suggest when the path is a directory
    (``results.json``)."""

    option: str
    path: str | os.PathLike[str]
    example: str


@dataclass(frozen=True, slots=True)
class Input:
    """A file a command reads, and what it is to the user (``the suite file``)."""

    what: str
    path: str | os.PathLike[str]


def _same(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (links, ``./``, ``..`` and hard links seen
    through); two missing paths are the same when they resolve alike."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _nearest_existing(path: Path) -> Path:
    parent = path.absolute().parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    return parent


def _can_create_in(directory: Path) -> str | None:
    """None when a file can be created in ``directory``, else why not."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _suggest(out: Output, taken: Sequence[Path]) -> str:
    """A path like the bad one that is no input: ``s.toml`` -> ``s.json``."""
    path = Path(out.path)
    suffix = Path(out.example).suffix
    for candidate in (path.with_suffix(suffix), path.with_name(f"{path.stem}-{Path(out.example).stem}{suffix}")):
        if not any(_same(candidate, t) for t in taken):
            return str(candidate)
    return out.example


def _check_one(out: Output, inputs: Sequence[Input], earlier: Sequence[Output]) -> None:
    given = os.fspath(out.path)
    path = Path(given)
    fix = f"give a file path, e.g. {out.option} {str(path / out.example)!r}"
    for inp in inputs:
        if _same(path, Path(inp.path)):
            taken = [Path(i.path) for i in inputs]
            raise UsageError(
                f"{out.option} {given!r} is {inp.what}, an input of this command: writing it would destroy it;"
                f" give another file, e.g. {out.option} {_suggest(out, taken)!r}"
            )
    for other in earlier:
        if _same(path, Path(other.path)):
            raise UsageError(
                f"{out.option} {given!r} is also the {other.option} file; give each output its own file,"
                f" e.g. {out.option} {_suggest(out, [Path(other.path)])!r}"
            )
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        st = None  # a parent is a file: said below
    except OSError as exc:
        raise UsageError(f"{out.option} {given!r}: cannot use it ({exc.strerror or exc}); give a file path"
                         f" in a directory you can write, e.g. {out.option} {out.example!r}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{out.option} {given!r} is a directory; {fix}")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{out.option} {given!r} is not a regular file (a device, pipe or socket); it would be"
                         f" replaced, not written to; give a file path, e.g. {out.option} {out.example!r}")
    parent = _nearest_existing(path)
    if not parent.is_dir():
        shown = os.path.relpath(parent) if not Path(given).is_absolute() else str(parent)
        raise UsageError(f"{out.option} {given!r}: {shown!r} is not a directory; give a path in a directory,"
                         f" e.g. {out.option} {out.example!r}")
    why = _can_create_in(parent)
    if why is not None:
        raise UsageError(f"{out.option} {given!r}: cannot write in {str(parent)!r} ({why}); give a path in"
                         f" a directory you can write, e.g. {out.option} {out.example!r}")


def check_outputs(outputs: Sequence[Output | None], inputs: Sequence[Input] = ()) -> None:
    """Check every output path before any work, in order; ``None`` entries (an option not
    given) are skipped. Raises :class:`UsageError` naming the first bad path when it is a
    directory or not a regular file, names the same file as one of ``inputs`` or as an
    earlier output, lies under a file, or lies where no file can be created. An existing
    regular file is fine: it is replaced, atomically, when the work is done."""
    seen: list[Output] = []
    for out in outputs:
        if out is None:
            continue
        _check_one(out, inputs, seen)
        seen.append(out)
