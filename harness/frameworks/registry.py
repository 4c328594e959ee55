"""Implementations under test, as frozen records in a registry filled by a decorator.

A built-in is named ``FRAMEWORK.NAME`` (``torch.softplus``, ``keras.binary_cross_entropy``)
and judged against one oracle. Its function takes the framework's own tensors, already on
the requested device and in the requested dtype, in the oracle's argument order, plus the
oracle's parameters as keywords (``beta=...``, ``reduction=...``), and returns a tensor.
It imports its framework inside the body: registering never imports a framework.

Custom implementations (``pkg.module:function`` or ``path/to/file.py:function``) become the
same record through :func:`harness.plan.implementations.load_custom`. This module only
holds the records; :mod:`harness.frameworks.catalogue` is the registry with every built-in
module loaded.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from oracles.errors import UsageError
from oracles.registries import Registry

__all__ = [
    "FRAMEWORKS",
    "IMPLS",
    "Impl",
    "builtin",
]

#: frameworks an implementation can take tensors of
FRAMEWORKS: tuple[str, ...] = ("numpy", "torch", "tensorflow", "keras", "jax")


@dataclass(frozen=True, slots=True)
class Impl:
    """An implementation: ``fn(*tensors, **params) -> tensor`` in ``framework``'s types."""

    id: str
    framework: str
    oracle: str
    fn: Callable[..., Any] = field(repr=False, compare=False)
    doc: str = ""
    custom: bool = False
    #: oracle parameters this implementation cannot honour; a cell asking for a
    #: non-default value of one is skipped with that reason
    unsupported: tuple[str, ...] = ()
    #: formats the framework itself cannot compute this function in (scipy's logsumexp and
    #: bfloat16): a cell in one whose call raises is ``unsupported``, with the framework's
    #: message, instead of an ``error``. Declared per built-in, so that a custom
    #: implementation that raises, or a built-in raising in any other format, stays an error;
    #: tests/frameworks/test_builtins.py checks each declaration still raises.
    unsupported_dtypes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.id


#: every implementation registered with :func:`builtin`; :mod:`harness.frameworks.catalogue`
#: is the same registry with the built-in modules loaded
IMPLS: Registry[Impl] = Registry(
    "implementation",
    key=lambda impl: impl.id,
    hint=" (or a custom one as package.module:function or path/to/file.py:function)",
)


def builtin(
    impl_id: str, *, oracle: str, unsupported: tuple[str, ...] = (), unsupported_dtypes: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a built-in implementation named ``FRAMEWORK.NAME`` for ``oracle``;
    ``unsupported``: oracle parameters it cannot honour; ``unsupported_dtypes``: formats its
    framework does not compute it in (see :class:`Impl`)."""
    framework = impl_id.split(".", 1)[0]
    if framework not in FRAMEWORKS or "." not in impl_id:
        raise UsageError(f"built-in id {impl_id!r} must be FRAMEWORK.NAME; frameworks: {', '.join(FRAMEWORKS)}")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        doc = inspect.getdoc(fn) or ""
        IMPLS.add(Impl(impl_id, framework, oracle, fn, doc.splitlines()[0] if doc else "", unsupported=unsupported,
                       unsupported_dtypes=unsupported_dtypes))
        return fn

    return register
