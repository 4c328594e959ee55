"""fpharness runner: implementations, inputs, execution, verdicts, results and the CLI.

Subpackages, lowest first (each imports only those below it; pyproject.toml's
import-linter contract checks it): :mod:`.judgement` and :mod:`.frameworks`, then
:mod:`.plan`, :mod:`.execution`, :mod:`.record`, and on top the entry points
:mod:`.cli` and :mod:`.testing`. :mod:`reports` sits between the record and the entry
points.

Importing this package imports no ML framework; each framework loads lazily inside its
adapter the first time one of its cells runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oracles.errors import UsageError

if TYPE_CHECKING:
    from harness.testing.assertions import assert_consistent, assert_precision
    from harness.testing.training import assert_trains

__all__ = ["UsageError", "assert_consistent", "assert_precision", "assert_trains"]


def __getattr__(name: str) -> Any:
    if name == "assert_precision":
        from harness.testing.assertions import (
            assert_precision,  # lazy: pulls in the runner; `import harness` stays light
        )

        return assert_precision
    if name == "assert_consistent":
        from harness.testing.assertions import (
            assert_consistent,  # lazy: pulls in the runner; `import harness` stays light
        )

        return assert_consistent
    if name == "assert_trains":
        from harness.testing.training import assert_trains  # lazy: the trainers load only when a test trains

        return assert_trains
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
