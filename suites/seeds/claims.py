"""Records for the seed suite: which implementation a seed document shows, what it claims
about it, and how that claim is decided from a run's incidence counts.

A claim is data, never a verdict: :mod:`suites.seeds.report` decides it per dtype from the
cells of a results file, so ``docs/seeds.md`` is regenerated from a run and never typed.

Two kinds of claim cover the documents:

``clean``
    "this implementation avoids NaN/Inf" (and, with ``max_ulp``, "is accurate"): holds in
    a dtype when every cell of that dtype judged against ``oracle`` has zero elements in
    ``categories`` (and a max ULP error within ``max_ulp``).
``defect``
    "this implementation produces NaN" or "overflows": holds in a dtype when some cell of
    that dtype has an element in one of ``categories``.
``like``
    "as good as the built-in ``versus``": holds in a dtype when, on every input set both
    ran, the implementation has no more elements in ``categories`` than ``versus`` and a
    max ULP error at most ``max_ulp`` above ``versus``'s.

``inputs`` narrows the evidence to some input sets (a claim about the document's own
example is decided on that example, not on random inputs).

``wrt`` makes a claim about the backward pass: it is decided on the gradient cells that
differentiate ``oracle``'s argument ``wrt`` (the VJP autodiff returns, judged against the
oracle's gradient), every cotangent together. Without it a claim is decided on forward
cells only, so adding gradient cells to a suite never changes a forward verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from harness.judgement.definitions import CATEGORIES
from oracles.errors import UsageError, choices
from reports.labels import INCIDENCE_LABELS, subject
from reports.labels import wrt as differentiated

__all__ = ["CATEGORIES", "Check", "Claim", "Seed", "SeedImpl"]

Expect = Literal["clean", "defect", "like"]
EXPECTS: tuple[str, ...] = ("clean", "defect", "like")


@dataclass(frozen=True, slots=True)
class Check:
    """How a claim is decided from the cells judged against ``oracle``."""

    oracle: str
    expect: Expect
    categories: tuple[str, ...]
    max_ulp: float | None = None
    #: only cells whose input spec starts with one of these (e.g. ``npz:`` for the
    #: document's own example); empty: every input set
    inputs: tuple[str, ...] = ()
    #: the implementation a ``like`` claim compares with
    versus: str | None = None
    #: a gradient claim: the argument whose gradient is judged; "" for the forward values
    wrt: str = ""

    def __post_init__(self) -> None:
        if self.expect not in EXPECTS:
            raise UsageError(f"claim check: expect={self.expect!r}; {choices(EXPECTS)}")
        if (self.expect == "like") != (self.versus is not None):
            raise UsageError("claim check: versus= names the implementation of a 'like' claim, and only of one")
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown:
            raise UsageError(f"claim check: unknown category {unknown[0]!r}; {choices(CATEGORIES)}")
        if not self.categories:
            raise UsageError("claim check: name at least one incidence category")
        if self.max_ulp is not None and self.expect == "defect":
            raise UsageError("claim check: max_ulp only makes sense for a 'clean' or 'like' claim")

    @property
    def subject(self) -> str:
        """What the claim is decided against: ``softplus``, or the gradient ``∂softplus``
        (``∂binary_cross_entropy/∂p`` for an oracle of several real arguments)."""
        if not self.wrt:
            return self.oracle
        return subject({"oracle": self.oracle, "pass": "grad", "wrt": self.wrt})

    def describe(self) -> str:
        """``no NaN!/Inf! against softplus`` / ``some NaN! against softmax`` / ``some NaN!
        against ∂softplus (the gradient)``."""
        cats = "/".join(INCIDENCE_LABELS.get(c, c) for c in self.categories)
        where = f" on {', '.join(self.inputs)} inputs" if self.inputs else ""
        against = f"`{self.subject}`" + (" (the gradient)" if self.wrt else "")
        if self.expect == "like":
            ulp = f" and max ulp within {self.max_ulp:g} of it" if self.max_ulp is not None else ""
            return f"no more {cats} than `{self.versus}`{ulp}, input set by input set, against {against}{where}"
        ulp = f", max ulp <= {self.max_ulp:g}" if self.max_ulp is not None else ""
        word = "no" if self.expect == "clean" else "some"
        return f"{word} {cats}{ulp} against {against}{where}"

    def applies_to(self, inputs: str) -> bool:
        """Whether a cell with input spec ``inputs`` is evidence for this claim."""
        return not self.inputs or any(inputs.startswith(prefix) for prefix in self.inputs)

    def judges(self, cell: Mapping[str, Any]) -> bool:
        """Whether a results cell is evidence for this claim: same oracle, same pass (forward,
        or the gradient with respect to ``wrt``), and an input set the claim names."""
        return cell["oracle"] == self.oracle and differentiated(cell) == self.wrt and self.applies_to(cell["inputs"])


@dataclass(frozen=True, slots=True)
class Claim:
    """What a document says about an implementation: ``quote`` is a short phrase from it,
    ``meaning`` our one-line reading of it, ``check`` how a run decides it."""

    quote: str
    meaning: str
    check: Check


@dataclass(frozen=True, slots=True)
class SeedImpl:
    """An implementation a seed document shows (or compares with).

    ``impl`` is the id cells carry in results: a built-in id (``keras.softplus``) or the
    custom spec ``suites.seeds.MODULE:FUNCTION`` exactly as suites/seeds.toml names it.
    ``label`` is the name the document uses, ``code`` the expression it computes.
    ``grad_note`` explains, in words and without measured numbers (those come from the
    results), how the implementation's backward pass breaks where it does."""

    label: str
    impl: str
    code: str
    claims: tuple[Claim, ...] = ()
    builtin: bool = False
    grad_note: str = ""

    def __post_init__(self) -> None:
        if len(self.quote_words()) > 25:
            raise UsageError(f"{self.label}: quotes must stay short phrases (at most 25 words in all)")

    def quote_words(self) -> list[str]:
        return [w for c in self.claims for w in c.quote.split()]


@dataclass(frozen=True, slots=True)
class Seed:
    """One seed document (``file`` under the shared seeds directory) and what it shows."""

    file: str
    title: str
    module: str
    impls: tuple[SeedImpl, ...]
    oracles: tuple[str, ...] = ()
    note: str = ""

    @property
    def number(self) -> str:
        return self.file.split("_", 1)[0]
