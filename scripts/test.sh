#!/usr/bin/env bash
# Set up a virtual environment with every framework (CPU builds, pinned by constraints.txt)
# and run the test suite. Used by the README's second command and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${FPHARNESS_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[all,test]"
"$VENV/bin/python" -m ruff check oracles harness reports suites tests benchmarks
"$VENV/bin/python" -m mypy
"$VENV/bin/python" -m pytest -n 2 "$@"
