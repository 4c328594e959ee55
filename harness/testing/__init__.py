"""fpharness in users' own tests: the pytest plugin, ``assert_precision`` and Hypothesis
strategies for every format. An entry-point layer, like :mod:`harness.cli`."""
