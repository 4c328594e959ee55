#!/usr/bin/env bash
# Set up a virtual environment with every framework (CPU builds) and run the main job:
# every built-in implementation of every oracle against the correctly rounded truth.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${FPHARNESS_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[all]"
"$VENV/bin/fpharness" run suites/frameworks.toml --json results/frameworks.json --html results/frameworks.html "$@"
