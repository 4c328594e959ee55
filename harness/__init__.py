"""fpharness runner: implementations, inputs, execution, verdicts, results and the CLI.

Importing this package imports no ML framework; each framework loads lazily inside its
adapter the first time one of its cells runs.
"""

from oracles.errors import UsageError

__all__ = ["UsageError"]
