"""A file a user names (a suite, an input file, an implementation) must be a regular file.

One check, one message shape, for every file fpharness reads on a user's word: a missing
file, a directory (the message says to give the file inside it) and anything that is not a
regular file (``/dev/zero`` would be read forever, a FIFO would block) are one-line
:class:`~oracles.errors.UsageError`s before a byte is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from oracles.errors import UsageError

__all__ = ["regular_file"]


def regular_file(path: Path, what: str, *, shown: str, inside: str, otherwise: str) -> os.stat_result:
    """``path``'s stat when it is a regular file. ``what`` and ``shown`` name it in messages
    (``suite file 'x.toml'``), ``inside`` says what to pick in a directory (``the .toml
    file``) and ``otherwise`` what to give instead of a special file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UsageError(f"{what} {shown!r} does not exist") from None
    except OSError as exc:
        raise UsageError(f"{what} {shown!r} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{what} {shown!r} is a directory; give {inside} inside it")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{what} {shown!r} is not a regular file; {otherwise}")
    return st
