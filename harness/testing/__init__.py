"""fpharness in users' own tests: the pytest plugin, ``assert_precision``,
``assert_consistent``, ``assert_trains`` and Hypothesis strategies for every format. An entry-point layer,
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
    from harness.testing.training import assert_trains, check_trains

__all__ = ["assert_consistent", "assert_precision", "assert_trains", "check_consistent", "check_precision", "check_trains"]
_TRAINING = ("assert_trains", "check_trains")


def __getattr__(name: str) -> Any:
    if name in _TRAINING:
        from harness.testing import training  # lazy: the trainers load only when a test trains a model

        return getattr(training, name)
    if name in __all__:
        from harness.testing import assertions  # lazy: the runner loads only when a test uses a helper

        return getattr(assertions, name)
    raise AttributeError(f"module 'harness.testing' has no attribute {name!r}")
