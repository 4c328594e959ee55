"""Write a file so that readers see the old content or the new, never half of either.

The one way fpharness writes a file others may read meanwhile: results files, reports,
cache entries. The data goes to a temporary file in the destination's directory (same file
system, so the rename below cannot turn into a copy), is flushed and, when ``durable``,
fsynced, gets the permissions a plain ``open(path, "w")`` would have given it, and is
renamed over the destination with :func:`os.replace`, which is atomic. On any failure,
KeyboardInterrupt included, the temporary file is removed and the error propagates.

Temporary files are named ``.<destination name>.<random>.tmp`` (:data:`TEMP_NAME`), so a
directory scanner can recognise the leftovers of a write that was killed, and which file
each was meant to become.

Rejected: writing in place (a reader, or a crash, sees half a file) and a temporary file
in the system temp directory (often another file system, where the rename fails).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from pathlib import Path

__all__ = ["TEMP_NAME", "atomic_write_bytes", "atomic_write_text"]

#: the name of a temporary file of this module; ``name`` is the destination's file name
TEMP_NAME = re.compile(r"\.(?P<name>.+)\.(?P<random>\w+)\.tmp")

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask. Linux reports it in /proc without changing it; elsewhere reading
    it means setting it, which a lock at least serialises among our own writers."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically, creating its parent directories.

    ``durable=False`` skips the fsync, for files whose loss in a crash costs nothing but
    recomputation (a cache entry that does not parse is a miss). Even durable, a crash right
    after the rename may leave the old file (the directory itself is not fsynced); never a
    partial one. Raises OSError when the directory cannot be created or written."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        # mkstemp creates the file 0600; a results file or a shared cache is for others to
        # read too, so give it what the umask allows, as open() would have
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str, *, durable: bool = True) -> None:
    """Replace ``path`` with ``text`` encoded as UTF-8, atomically; see
    :func:`atomic_write_bytes`. Newlines are written as given, on every platform."""
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable)
