"""The errors fpharness raises, under one root.

Every error we raise derives from :class:`FpharnessError`, so a caller can catch "anything
fpharness refused" in one clause. The kinds below it say who must act:

* :class:`UsageError`: the user asked for something we cannot do (an unknown oracle, a dtype
  we do not support, a value that is not representable). The CLI catches exactly this kind,
  prints its one-line message and exits 2.
* :class:`OracleError`: an oracle could not produce a certain, correctly rounded value (it
  did not settle below the precision limit, returned the wrong thing, or a worker process
  evaluating it died). The oracle's author, or whoever chose its inputs, must look.

Anything else that escapes is a bug and keeps its traceback. Each kind also derives from the
builtin a caller would expect (``ValueError``, ``RuntimeError``), so code written against
those keeps working.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["FpharnessError", "OracleError", "UsageError", "choices"]


class FpharnessError(Exception):
    """Root of everything fpharness raises; the kinds below it say who must act:
    :class:`UsageError` the user, :class:`OracleError` the oracle's author."""


class UsageError(FpharnessError, ValueError):
    """A problem with what the user asked for, explained in one line."""


class OracleError(FpharnessError, RuntimeError):
    """The oracle could not produce a certain, correctly rounded value."""


def choices(values: Iterable[object]) -> str:
    """Render valid choices for an error message: ``pick from: a, b, c``."""
    items = sorted(str(v) for v in values)
    return "pick from: " + ", ".join(items)
