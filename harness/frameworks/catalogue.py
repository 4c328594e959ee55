"""The implementation registry with every built-in loaded.

Importing this module imports the four built-in modules, which register their functions
and import no framework (each imports its framework inside the functions it registers).
Lookups go through here rather than :mod:`.registry`, so a listing is never missing the
built-ins of a module nobody happened to import yet.
"""

from __future__ import annotations

from harness.frameworks.builtins import jax_impls, numpy_impls, tensorflow_impls, torch_impls
from harness.frameworks.registry import FRAMEWORKS, IMPLS, Impl
from oracles.errors import close_matches

__all__ = ["BUILTIN_MODULES", "IMPLS", "get_impl", "impls_for", "suggest_impl"]

#: the modules that registered the built-ins, one per framework family
BUILTIN_MODULES = (numpy_impls, torch_impls, tensorflow_impls, jax_impls)


def get_impl(impl_id: str) -> Impl:
    """A registered built-in by id; :class:`~oracles.errors.UsageError` listing the valid ids otherwise."""
    return IMPLS.get(impl_id)


def impls_for(oracle: str) -> list[Impl]:
    """Every built-in judged against ``oracle``, in id order."""
    return [i for i in IMPLS if i.oracle == oracle]


def suggest_impl(name: str) -> str:
    """What an unknown built-in id probably meant, as one clause for the registry's message
    (empty when nothing fits): a user writes the oracle's name after the framework
    (``numpy.softplus``), or a name another framework uses (``numpy.log_softmax`` exists,
    ``jax.log_softmax`` is ``jax.nn.log_softmax``), and needs the id that framework's
    built-in has: ``numpy implements softplus as numpy.logaddexp``."""
    framework, _, rest = name.partition(".")
    if framework not in FRAMEWORKS:
        return f"{framework!r} is not a framework ({', '.join(FRAMEWORKS)})"
    oracles = sorted({i.oracle for i in IMPLS})
    meant = [rest] if rest in oracles else close_matches(rest, oracles, n=1)
    meant += sorted({i.oracle for i in IMPLS if i.id.partition(".")[2] == rest} - set(meant))
    clauses = []
    for oracle in meant:
        ours = [i.id for i in impls_for(oracle) if i.framework == framework]
        if ours:
            clauses.append(f"{framework} implements {oracle} as {' and '.join(ours)}")
        else:
            others = [i.id for i in impls_for(oracle)]
            clauses.append(f"{framework} has no built-in for {oracle}; {', '.join(others)} do")
    return "; ".join(clauses)


IMPLS.suggest = suggest_impl
