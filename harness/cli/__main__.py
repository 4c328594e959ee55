"""``python -m harness.cli``: the same entry point as the ``fpharness`` script."""

import sys

from harness.cli.app import main

sys.exit(main())
