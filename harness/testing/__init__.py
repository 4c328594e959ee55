"""fpharness in users' own tests: the pytest plugin, ``assert_precision``,
``assert_consistent`` and Hypothesis strategies for every format. An entry-point layer,
like :mod:`harness.cli`.

The helpers are re-exported lazily (module ``__getattr__``): the pytest plugin imports
this package in every session, and the runner behind the helpers is loaded only when a
test uses one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.testing.assertions import (
        assert_consistent,
        assert_precision,
        check_consistent,
        check_precision,
    )

__all__ = ["assert_consistent", "assert_precision", "check_consistent", "check_precision"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from harness.testing import assertions  # lazy: the runner loads only when a test uses a helper

        return getattr(assertions, name)
    raise AttributeError(f"module 'harness.testing' has no attribute {name!r}")
