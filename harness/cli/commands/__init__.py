"""Sub-commands of the ``fpharness`` CLI, one module each (see :mod:`harness.cli.app`)."""
