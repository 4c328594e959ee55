#!/usr/bin/env bash
# Set up a virtual environment with every framework (CPU builds, pinned by constraints.txt)
# and run the project's checks (scripts/checks.sh). Used by the README's second command and
# by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${FPHARNESS_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[all,test]"
# The HTML report's browser tests drive Debian's Chromium; without it they skip with a reason.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "chromium could not be installed: browser tests will skip" >&2
fi
PATH="$(cd "$VENV/bin" && pwd):$PATH" bash scripts/checks.sh "$@"
