#!/usr/bin/env bash
# The project's checks, in one place: lint, types, the layer contract, the tests.
# scripts/test.sh runs it inside the venv it sets up; tox runs it inside its own env.
# Arguments go to pytest. Uses the python on PATH (the venv's).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m ruff check oracles harness reports suites tests benchmarks
python -m mypy
lint-imports --no-cache
python -m pytest -n 2 "$@"
