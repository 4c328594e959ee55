"""A fast tier as a record, and the registry the tiers fill with :func:`fast_tier`.

A tier is keyed by the oracle it serves and carries a version that enters the cache key
(:mod:`oracles.cache`), so a changed tier never reuses references computed by the old one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from oracles.fast.decided import Decided
from oracles.fast.float64 import F64, Params
from oracles.registries import Registry

__all__ = ["FAST_TIERS", "FastTier", "TierFn", "fast_tier"]

#: a tier's function: decide what it can of one block of inputs into the Decided arrays
TierFn = Callable[[list[F64], Params, Decided], None]


@dataclass(frozen=True, slots=True)
class FastTier:
    """A float64 fast tier for the oracle ``oracle``, derived for the function ``target``
    (``module:qualname``) at oracle version ``oracle_version``."""

    oracle: str
    version: int
    fn: TierFn
    target: str
    oracle_version: int = 1

    def __str__(self) -> str:
        return f"{self.oracle}@fast{self.version}"


#: the registered fast tiers, by oracle name
FAST_TIERS: Registry[FastTier] = Registry("fast tier", key=lambda tier: tier.oracle)


def fast_tier(
    oracle: str, *, version: int, target: str | None = None, oracle_version: int = 1, replace: bool = False
) -> Callable[[TierFn], TierFn]:
    """Register a fast tier for ``oracle``. ``version`` must change whenever the tier's
    arithmetic or bounds do (it keys cached references). ``target`` is the oracle function
    the tier was derived for (default: the built-in ``oracles.catalogue:<oracle>``). Raises
    :class:`~oracles.errors.UsageError` for a second tier under one name, unless
    ``replace``."""

    def register(fn: TierFn) -> TierFn:
        tier = FastTier(oracle, version, fn, target or f"oracles.catalogue:{oracle}", oracle_version)
        FAST_TIERS.add(tier, replace=replace)
        return fn

    return register

