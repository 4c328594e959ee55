"""What an implementation name means: a built-in id or a user's function.

``torch.softplus`` names a registered built-in (:mod:`harness.frameworks.catalogue`);
``package.module:function`` and ``path/to/file.py:function`` name a user's function, which
:func:`load_custom` turns into the same :class:`~harness.frameworks.registry.Impl` record.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from harness.frameworks.registry import FRAMEWORKS, Impl
from harness.plan.loader import load_file
from oracles.errors import UsageError, choices

__all__ = ["load_custom"]


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
        module = load_file(Path(target), what="custom implementation file", shown=target)
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
