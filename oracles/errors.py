"""The single user-facing error type.

Every mistake a user can make (an unknown oracle, a dtype we do not support, a value that
is not representable) raises :class:`UsageError`. The CLI catches exactly this type, prints
its one-line message and exits 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["UsageError", "choices"]


class UsageError(ValueError):
    """A problem with what the user asked for, explained in one line."""


def choices(values: object) -> str:
    """Render valid choices for an error message: ``pick from: a, b, c``."""
    items = sorted(str(v) for v in values)  # type: ignore[attr-defined]
    return "pick from: " + ", ".join(items)
