"""Built-in implementations under test, one module per framework.

Each module registers its functions with :func:`harness.frameworks.registry.builtin` when imported and
imports its framework only inside those functions, so loading every module
(:func:`harness.frameworks.registry.load_builtins`) costs no framework import.

The adapters pin semantics the frameworks leave open, so that every built-in of an oracle
answers the same question: row-wise functions work over the last axis, losses return one
value per sample unless ``reduction`` is ``mean`` or ``sum`` (then the framework's own
reduction, or its own mean/sum of the per-sample values), and a parameter a framework does
not take (softplus ``beta``) is computed the way a user of that framework would write it.
Everything else, clamps, thresholds and epsilons included, is the framework's behaviour and
is what the harness measures.
"""

__all__: list[str] = []
