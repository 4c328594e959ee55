"""The implementation registry with every built-in loaded.

Importing this module imports the four built-in modules, which register their functions
and import no framework (each imports its framework inside the functions it registers).
Lookups go through here rather than :mod:`.registry`, so a listing is never missing the
built-ins of a module nobody happened to import yet.
"""

from __future__ import annotations

from harness.frameworks.builtins import jax_impls, numpy_impls, tensorflow_impls, torch_impls
from harness.frameworks.registry import IMPLS, Impl

__all__ = ["BUILTIN_MODULES", "IMPLS", "get_impl", "impls_for"]

#: the modules that registered the built-ins, one per framework family
BUILTIN_MODULES = (numpy_impls, torch_impls, tensorflow_impls, jax_impls)


def get_impl(impl_id: str) -> Impl:
    """A registered built-in by id; :class:`~oracles.errors.UsageError` listing the valid ids otherwise."""
    return IMPLS.get(impl_id)


def impls_for(oracle: str) -> list[Impl]:
    """Every built-in judged against ``oracle``, in id order."""
    return [i for i in IMPLS if i.oracle == oracle]
