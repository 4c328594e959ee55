"""fpharness runner: implementations, inputs, execution, verdicts, results and the CLI.

Importing this package imports no ML framework; each framework loads lazily inside its
adapter the first time one of its cells runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oracles.errors import UsageError

if TYPE_CHECKING:
    from harness.assertions import assert_precision

__all__ = ["UsageError", "assert_precision"]


def __getattr__(name: str) -> Any:
    # assert_precision pulls in the runner; `import harness` stays light until it is used
    if name == "assert_precision":
        from harness.assertions import assert_precision

        return assert_precision
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
