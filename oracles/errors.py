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

import difflib
from collections.abc import Iterable

__all__ = ["LONG_LIST", "FpharnessError", "OracleError", "UsageError", "choices", "close_matches", "one_line"]


class FpharnessError(Exception):
    """Root of everything fpharness raises; the kinds below it say who must act:
    :class:`UsageError` the user, :class:`OracleError` the oracle's author."""


class UsageError(FpharnessError, ValueError):
    """A problem with what the user asked for, explained in one line."""


class OracleError(FpharnessError, RuntimeError):
    """The oracle could not produce a certain, correctly rounded value."""


#: a list longer than this is not spelled out when close matches say what was meant
LONG_LIST = 20


def close_matches(given: str, values: Iterable[object], n: int = 3) -> list[str]:
    """The registered names closest to ``given`` (difflib, case-insensitive), best first."""
    names = {str(v).lower(): str(v) for v in values}
    key = str(given).lower()
    found = difflib.get_close_matches(key, list(names), n=n, cutoff=0.8)
    if not found:
        return []
    # only the ones about as close as the best: "bfloat" means bfloat16, not also float64
    best = difflib.SequenceMatcher(None, key, found[0]).ratio()
    return [names[m] for m in found if difflib.SequenceMatcher(None, key, m).ratio() >= best - 0.05]


def choices(values: Iterable[object], given: object = None) -> str:
    """Render valid choices for an error message: ``pick from: a, b, c``.

    With ``given`` (the name the user wrote), the closest valid names follow, in the order
    of a usage message (what is accepted, then what was probably meant):
    ``pick from: bfloat16, float16, float32, float64; did you mean 'bfloat16'?``. A list longer than
    :data:`LONG_LIST` whose names are dotted (``numpy.exp``) is cut to the names with the
    given one's prefix, and a count: 90 implementation ids in one line bury the answer."""
    items = sorted(str(v) for v in values)
    if given is None:
        return "pick from: " + ", ".join(items)
    near = close_matches(str(given), items)
    guess = ("; did you mean " + " or ".join(repr(m) for m in near) + "?") if near else ""
    # the prefix the user wrote, or the closest name's when no name has theirs ("nmpy.exp")
    prefix = str(given).partition(".")[0] + "."
    if near and not any(i.startswith(prefix) for i in items):
        prefix = near[0].partition(".")[0] + "."
    same = [i for i in items if i.startswith(prefix)] if "." in str(given) else []
    if len(items) > LONG_LIST and same:
        return "pick from: " + ", ".join(same) + f" ({prefix}*; {len(items)} in all){guess}"
    return "pick from: " + ", ".join(items) + guess


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, at most 300 characters: how a failure an
    implementation raised reads in a cell's reason."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return (f"{type(exc).__name__}: {first}" if first else type(exc).__name__)[:300]
