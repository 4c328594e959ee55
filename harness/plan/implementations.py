"""What an implementation name means: a built-in id or a user's function.

``torch.softplus`` names a registered built-in (:mod:`harness.frameworks.catalogue`);
``package.module:function`` and ``path/to/file.py:function`` name a user's function, which
:func:`load_custom` turns into the same :class:`~harness.frameworks.registry.Impl` record.

The runner never calls :func:`load_custom` itself: importing a user's module may end or crash
the process, so that happens in the isolated worker process
(:mod:`harness.execution.isolation`). The runner checks the name with :func:`check_custom`,
which imports nothing, and describes the implementation with :func:`custom_impl`.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from harness.frameworks.registry import FRAMEWORKS, Impl
from harness.plan.loader import load_file
from oracles.errors import UsageError, choices

__all__ = ["check_custom", "custom_impl", "load_custom"]


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def check_custom(spec: str, *, framework: str) -> tuple[str, str]:
    """``(target, function)`` of ``spec`` after the checks that import nothing: the form,
    the framework, and that a file exists. Raises the :class:`UsageError` that
    :func:`load_custom` would raise for them."""
    if framework not in FRAMEWORKS:
        raise UsageError(f"unknown framework {framework!r}; {choices(FRAMEWORKS)}")
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise UsageError(
            f"custom implementation {spec!r} must be package.module:function or path/to/file.py:function"
        )
    if _is_file(target) and not Path(target).is_file():
        raise UsageError(f"custom implementation file {target!r} does not exist")
    return target, attr


def _runs_isolated(*args: object, **kwargs: object) -> object:
    raise RuntimeError("a custom implementation is called in its isolated process (harness.execution.isolation)")


def custom_impl(spec: str, *, oracle: str, framework: str) -> Impl:
    """The record of a custom implementation without importing it (``check_custom``'s
    checks): its ``fn`` refuses to be called, since the function lives in the isolated
    process."""
    check_custom(spec, framework=framework)
    return Impl(spec, framework, oracle, _runs_isolated, custom=True)


def load_custom(spec: str, *, oracle: str, framework: str) -> Impl:
    """Load ``package.module:function`` or ``path/to/file.py:function`` as an implementation
    taking ``framework`` tensors. Errors say what was wrong and what is accepted."""
    target, attr = check_custom(spec, framework=framework)
    if _is_file(target):
        module = load_file(Path(target), what="custom implementation file", shown=target)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise UsageError(f"cannot import module {target!r}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - the user's module failed to import, as load_file says
            raise UsageError(f"importing {target!r} failed: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        found = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
        raise UsageError(f"{target!r} has no function {attr!r}; callables there: {', '.join(found[:20]) or 'none'}")
    return Impl(spec, framework, oracle, fn, (inspect.getdoc(fn) or "").split("\n")[0], custom=True)
