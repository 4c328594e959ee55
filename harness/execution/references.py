"""Where a runner gets its references: the on-disk cache and the fast tier.

:class:`~harness.execution.runner.Runner` takes a reference function; this builds the one
every entry point uses, so the CLI, worker processes, ``assert_precision`` and the
strategies share one cache policy.
"""

from __future__ import annotations

from typing import Any

from oracles.cache import ReferenceCache, cached_evaluate
from oracles.formats import Format
from oracles.reference import Reference
from oracles.registry import Oracle

__all__ = ["ReferenceFunction", "reference_function"]

ReferenceFunction = Any  # Callable[[Oracle, list[array], Format, params, *, cacheable, out], Reference]


def reference_function(*, cache_dir: str | None = None, use_cache: bool = True, jobs: int = 1) -> ReferenceFunction:
    """The Runner's reference hook: the cache in ``cache_dir`` (default: the per-user one)
    unless ``use_cache`` is false, the fast tier, and ``jobs`` processes for mpmath."""
    cache = ReferenceCache(cache_dir) if use_cache else None

    def compute(
        oracle: Oracle, arrays: list[Any], fmt: Format, params: dict[str, Any], *, cacheable: bool = True,
        out: Reference | None = None,
    ) -> Reference:
        # streamed chunks (exhaustive float32: 120 GB of references) are never cached; their
        # caller hands back the previous chunk's arrays to fill (evaluate's ``out``)
        return cached_evaluate(cache if cacheable else None, oracle, arrays, fmt, params, jobs=jobs, out=out)

    return compute
