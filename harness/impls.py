"""Implementations under test, as frozen records in a registry filled by a decorator.

A built-in is named ``FRAMEWORK.NAME`` (``torch.softplus``, ``keras.binary_cross_entropy``)
and judged against one oracle. Its function takes the framework's own tensors, already on
the requested device and in the requested dtype, in the oracle's argument order, plus the
oracle's parameters as keywords (``beta=...``, ``reduction=...``), and returns a tensor.
It imports its framework inside the body: registering never imports a framework.

Custom implementations (``pkg.module:function`` or ``path/to/file.py:function``) become the
same record through :func:`load_custom`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oracles.errors import UsageError, choices

__all__ = [
    "FRAMEWORKS",
    "IMPLS",
    "Impl",
    "builtin",
    "get_impl",
    "impls_for",
    "load_builtins",
    "load_custom",
]

#: frameworks an implementation can take tensors of
FRAMEWORKS: tuple[str, ...] = ("numpy", "torch", "tensorflow", "keras", "jax")

#: modules that register the built-in implementations (imported lazily; each imports its
#: framework only inside the functions it registers)
BUILTIN_MODULES: tuple[str, ...] = (
    "harness.builtins.numpy_impls",
    "harness.builtins.torch_impls",
    "harness.builtins.tensorflow_impls",
    "harness.builtins.jax_impls",
)


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

    def __str__(self) -> str:
        return self.id


class _Registry:
    def __init__(self) -> None:
        self._items: dict[str, Impl] = {}

    def add(self, impl: Impl) -> Impl:
        if impl.id in self._items:
            raise UsageError(f"implementation {impl.id!r} is registered twice")
        self._items[impl.id] = impl
        return impl

    def get(self, impl_id: str) -> Impl:
        load_builtins()
        try:
            return self._items[impl_id]
        except KeyError:
            raise UsageError(
                f"unknown implementation {impl_id!r}; {choices(self._items)}"
                " (or a custom one as package.module:function or path/to/file.py:function)"
            ) from None

    def __iter__(self) -> Iterator[Impl]:
        load_builtins()
        return iter(sorted(self._items.values(), key=lambda i: i.id))

    def __contains__(self, impl_id: object) -> bool:
        load_builtins()
        return impl_id in self._items


IMPLS = _Registry()
_loaded = False


def builtin(
    impl_id: str, *, oracle: str, unsupported: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a built-in implementation named ``FRAMEWORK.NAME`` for ``oracle``."""
    framework = impl_id.split(".", 1)[0]
    if framework not in FRAMEWORKS or "." not in impl_id:
        raise UsageError(f"built-in id {impl_id!r} must be FRAMEWORK.NAME; frameworks: {', '.join(FRAMEWORKS)}")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        doc = inspect.getdoc(fn) or ""
        IMPLS.add(Impl(impl_id, framework, oracle, fn, doc.splitlines()[0] if doc else "", unsupported=unsupported))
        return fn

    return register


def load_builtins() -> None:
    """Import the modules that register built-ins (idempotent; imports no framework)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # only a missing builtins module is tolerated, never a missing dependency inside it
            if not exc.name or not module.startswith(exc.name):
                raise


def get_impl(impl_id: str) -> Impl:
    """A registered built-in by id; :class:`UsageError` listing the valid ids otherwise."""
    return IMPLS.get(impl_id)


def impls_for(oracle: str) -> list[Impl]:
    """Every built-in judged against ``oracle``."""
    return [i for i in IMPLS if i.oracle == oracle]


def load_custom(spec: str, *, oracle: str, framework: str) -> Impl:
    """Load ``package.module:function`` or ``path/to/file.py:function`` as an implementation
    taking ``framework`` tensors. Errors say what was wrong and what is accepted."""
    if framework not in FRAMEWORKS:
        raise UsageError(f"unknown framework {framework!r}; {choices(FRAMEWORKS)}")
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise UsageError(
            f"custom implementation {spec!r} must be package.module:function or path/to/file.py:function"
        )
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise UsageError(f"custom implementation file {target!r} does not exist")
        mod_name = f"fpharness_custom_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise UsageError(f"cannot import {target!r} as a Python file")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - the user's module failed to import
            raise UsageError(f"importing {target!r} failed: {type(exc).__name__}: {exc}") from None
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise UsageError(f"cannot import module {target!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        found = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
        raise UsageError(f"{target!r} has no function {attr!r}; callables there: {', '.join(found[:20]) or 'none'}")
    return Impl(spec, framework, oracle, fn, (inspect.getdoc(fn) or "").split("\n")[0], custom=True)
