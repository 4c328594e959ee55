"""A typed name -> item registry with the error messages a user needs.

Oracles, fast tiers, implementations and CLI commands are all registered by a decorator
under a readable id and looked up by that id. :class:`Registry` is that one piece, so every
registry iterates in name order, lists the valid choices when a name is unknown, and says
who registered a name first when it is registered twice::

    IMPLS: Registry[Impl] = Registry("implementation", key=lambda impl: impl.id)
    IMPLS.add(impl)          # UsageError if the id is taken by another definition
    IMPLS.get("torch.epx")   # UsageError "unknown implementation 'torch.epx'; pick from: ...; did you mean 'torch.exp'?"

Rejected: a plain dict per registry (each grew its own, slightly different messages) and a
registry keyed by the item's ``__str__`` only (a fast tier's readable form, ``exp@fast1``,
is not the name it is looked up by).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from oracles.errors import UsageError, choices

__all__ = ["Registry", "origin_of"]

T = TypeVar("T")


def origin_of(obj: object) -> str:
    """Where ``obj`` was defined, as ``module:qualname`` (its ``fn`` attribute's, for a
    record wrapping a function); ``repr(obj)`` when it says nothing of its origin."""
    target = getattr(obj, "fn", obj)
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
    if module is None or qualname is None:
        return repr(obj)
    return f"{module}:{qualname}"


def _identical(old: object, new: object) -> bool:
    return old is new


class Registry(Generic[T]):
    """Items of type ``T`` by a string id, filled by :meth:`add`.

    ``noun`` names an item in messages (``"oracle"``, ``"implementation"``); ``key`` gives
    an item's id (default ``str(item)``); ``hint`` ends the unknown-name message (what else
    is accepted besides the registered ids); ``suggest`` says what an unknown name probably
    meant, beyond the close names difflib finds (empty: nothing to add); ``origin`` says where an item was defined, for the
    "registered twice" message (default :func:`origin_of`); ``same`` decides that a second
    registration under a taken id is the first one again and not an error (default: the
    very same object, so re-running a module that registers the object it already holds is
    harmless).
    """

    def __init__(
        self,
        noun: str,
        *,
        key: Callable[[T], str] = str,
        origin: Callable[[T], str] = origin_of,
        same: Callable[[T, T], bool] = _identical,
        hint: str = "",
        suggest: Callable[[str], str] | None = None,
    ) -> None:
        self.noun = noun
        self._hint = hint
        #: what a wrong name probably meant, beyond the close names (see :meth:`get`)
        self.suggest = suggest
        self._key = key
        self._origin = origin
        self._same = same
        self._items: dict[str, T] = {}

    def __repr__(self) -> str:
        return f"Registry({self.noun!r}, {len(self._items)} registered)"

    def key(self, item: T) -> str:
        """The id ``item`` is (or would be) registered under."""
        return self._key(item)

    def add(self, item: T, *, replace: bool = False) -> T:
        """Register ``item`` under its id and return it. Raises :class:`UsageError` when the
        id is taken by a different definition, unless ``replace``."""
        name = self._key(item)
        old = self._items.get(name)
        if old is not None and not replace and not self._same(old, item):
            raise UsageError(
                f"{self.noun} {name!r} is already registered by {self._origin(old)}; "
                f"{self._origin(item)} registers it twice: choose another name or pass replace=True"
            )
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """The item registered as ``name``; an unknown name raises :class:`UsageError`
        listing the registered ones."""
        try:
            return self._items[name]
        except KeyError:
            raise UsageError(self.unknown(name)) from None

    def unknown(self, name: str) -> str:
        """The one-line message for an unknown ``name``: what is accepted (see
        :func:`~oracles.errors.choices`), the closest registered names, and what the
        registry's ``suggest`` says it probably meant (``numpy implements softplus as
        numpy.logaddexp``)."""
        meant = self.suggest(name) if self.suggest is not None else ""
        message = f"unknown {self.noun} {name!r}; {choices(self._items, given=name)}{self._hint}"
        return f"{message}; {meant}" if meant else message

    def names(self) -> list[str]:
        """Every registered id, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        """The items, in id order."""
        return iter([self._items[name] for name in sorted(self._items)])

    def __len__(self) -> int:
        return len(self._items)
