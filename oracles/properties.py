"""Mathematical properties that an oracle's correctly rounded results satisfy exactly.

Consistency mode judges an implementation without a reference value: whatever it returns
must obey the laws its mathematics obeys. Only laws that survive correct rounding exactly,
in every format, are declared here; an implementation that breaks one is wrong for sure,
however close its values are:

* monotonicity: rounding to nearest is monotone, so a weakly increasing function gives
  weakly increasing rounded results;
* parity: rounding to nearest even is symmetric, so an odd function's rounded results are
  odd bit for bit (even ones even);
* bounds that are values of every format (0, 1, -1): rounding never crosses a representable
  value, so ``exp(x) >= 0`` holds for the rounded results too (``exp(x) > 0`` does not:
  ``exp(-1000)`` rounds to 0);
* a row-reduction bounded below by its row's maximum, which is an input and so a value of
  the format (logsumexp);
* symmetry under permuting a row's entries, and under swapping a binary loss's labels,
  where ``1 - y`` is exact.

Declarations are data, one per oracle, registered by a decorator and looked up with the
oracle's parameters (softplus is bounded below by 0 for ``beta > 0`` and above by 0 for
``beta < 0``)::

    from oracles import Properties, properties

    @properties("mish")
    def _mish() -> Properties:
        return Properties()                     # not monotone: declare nothing rather than guess

    @properties("softplus")
    def _softplus(beta: float) -> Properties:   # receives the bound parameters it names
        return Properties(monotone="increasing", lower=0.0 if beta > 0 else None)

Each declaration is checked against the correctly rounded truth by
``tests/ground_truth/test_properties.py``; the built-ins are in
:mod:`oracles.catalogue_properties`.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oracles.errors import UsageError, choices
from oracles.formats import FORMATS
from oracles.registries import Registry, origin_of
from oracles.registry import REGISTRY, Oracle, _same_definition, get_oracle

__all__ = ["LABEL_SYMMETRIES", "MONOTONE", "PARITIES", "PERMUTATIONS", "PROPERTIES", "Properties",
           "PropertyDecl", "properties", "properties_of"]

MONOTONE: tuple[str, ...] = ("", "increasing", "decreasing")
PARITIES: tuple[str, ...] = ("", "odd", "even")
PERMUTATIONS: tuple[str, ...] = ("", "equivariant", "invariant")
LABEL_SYMMETRIES: tuple[str, ...] = ("", "logits", "probabilities")


def _check_choice(what: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        shown = tuple(o or '""' for o in options)
        raise UsageError(f"Properties: {what}={value!r} is not valid; {choices(shown, given=value)}")


def _check_bound(what: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageError(f"Properties: {what}={value!r} must be a finite number (or None for no bound)")
    for fmt in FORMATS.values():  # raises, naming the nearest value, where it is not exact
        fmt.from_float64(np.array([float(value)]), what=f"Properties: bound {what}")


def _number(v: float) -> str:
    return f"{v:g}"


@dataclass(frozen=True, slots=True)
class Properties:
    """What the correctly rounded results of one oracle (with given parameters) satisfy
    exactly. Every field's default declares nothing. A value outside a field's choices, a
    bound that is not a value of every format, or ``lower > upper`` is a :class:`UsageError`.

    ``monotone``: ``"increasing"`` or ``"decreasing"``, weakly, in the first real argument of
    an elementwise oracle, among the inputs whose result is not NaN.
    ``parity``: ``"odd"`` (``f(-x)`` is ``-f(x)`` bit for bit) or ``"even"`` (``f(-x)`` is
    ``f(x)``), for elementwise oracles of one real argument; at ``x = ±0`` an odd function's
    result is a zero of either sign (mpmath, and so the truth, has no signed zero).
    ``lower``/``upper``: every non-NaN result is ``>= lower`` / ``<= upper``.
    ``at_least_row_max``: a row-reduction's result is ``>=`` the largest entry of its row.
    ``permutation``: ``"equivariant"`` (row-wise: permuting a row's entries permutes its
    results the same way) or ``"invariant"`` (row-reduce: the result is unchanged); a
    class-index argument moves with its entry. Bit for bit; NaN equals NaN.
    ``label_symmetry``: ``"logits"``, ``L(x, y) == L(-x, 1 - y)``, or ``"probabilities"``,
    ``L(p, y) == L(1 - p, 1 - y)``, for elementwise oracles of two real arguments, where
    ``1 - y`` (and ``1 - p``) are exact in the format; equal as numbers (either zero, NaN
    equals NaN).
    ``unit_args``: arguments that must lie in ``[0, 1]`` for the bounds and the label
    symmetry to be checked on an element (a logits loss is bounded by 0 only for labels in
    ``[0, 1]``).
    ``unit_domain``: arguments outside whose ``[0, 1]`` (or NaN) the exact result is NaN
    (binary cross-entropy's ``p`` and ``y``): every consistency check leaves those elements
    out, since an implementation may raise there rather than answer.
    """

    monotone: str = ""
    parity: str = ""
    lower: float | None = None
    upper: float | None = None
    at_least_row_max: bool = False
    permutation: str = ""
    label_symmetry: str = ""
    unit_args: tuple[str, ...] = field(default=())
    unit_domain: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        _check_choice("monotone", self.monotone, MONOTONE)
        _check_choice("parity", self.parity, PARITIES)
        _check_choice("permutation", self.permutation, PERMUTATIONS)
        _check_choice("label_symmetry", self.label_symmetry, LABEL_SYMMETRIES)
        _check_bound("lower", self.lower)
        _check_bound("upper", self.upper)
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise UsageError(f"Properties: lower={self.lower!r} is above upper={self.upper!r}")
        for what in ("unit_args", "unit_domain"):
            names = getattr(self, what)
            if not isinstance(names, tuple) or not all(isinstance(a, str) for a in names):
                raise UsageError(f"Properties: {what}={names!r} must be a tuple of argument names")

    @property
    def empty(self) -> bool:
        """Nothing is declared."""
        return self == Properties()

    def describe(self) -> list[str]:
        """One sentence per declared property, in the order of the fields (docs, reports)."""
        out: list[str] = []
        if self.monotone:
            out.append(f"Weakly {self.monotone} in its first argument: a larger input never gives a"
                       f" {'smaller' if self.monotone == 'increasing' else 'larger'} result"
                       " (inputs whose result is NaN aside).")
        if self.parity == "odd":
            out.append("Odd: f(-x) is -f(x) bit for bit (at x = ±0 a zero of either sign; NaN results equal).")
        elif self.parity == "even":
            out.append("Even: f(-x) is f(x) bit for bit (NaN results equal).")
        where = f" for {' and '.join(self.unit_args)} in [0, 1]" if self.unit_args else ""
        if self.lower is not None and self.upper is not None:
            out.append(f"Every result that is not NaN lies in [{_number(self.lower)}, {_number(self.upper)}]{where}.")
        elif self.lower is not None:
            out.append(f"Every result that is not NaN is >= {_number(self.lower)}{where}.")
        elif self.upper is not None:
            out.append(f"Every result that is not NaN is <= {_number(self.upper)}{where}.")
        if self.at_least_row_max:
            out.append("Each row's result is >= the largest entry of the row (NaN results aside).")
        if self.permutation == "equivariant":
            out.append("Permuting a row's entries permutes its results the same way, bit for bit.")
        elif self.permutation == "invariant":
            out.append("Permuting a row's entries (a class-index argument moving with its entry) leaves the result"
                       " unchanged, bit for bit.")
        if self.label_symmetry == "logits":
            out.append(f"Label symmetry: L(-x, 1 - y) equals L(x, y) wherever 1 - y is exact in the format{',' if where else ''}{where}.")
        elif self.label_symmetry == "probabilities":
            out.append("Label symmetry: L(1 - p, 1 - y) equals L(p, y) wherever 1 - p and 1 - y are exact"
                       f" in the format{',' if where else ''}{where}.")
        return out


@dataclass(frozen=True, slots=True)
class PropertyDecl:
    """The properties of oracle ``oracle``: ``fn`` takes (some of) the oracle's bound
    parameters as keywords and returns :class:`Properties`."""

    oracle: str
    fn: Callable[..., Properties] = field(repr=False, compare=False)
    #: the module whose code registered it
    module: str = field(default="", compare=False)
    #: the oracle function it describes and that oracle's version: the properties of a
    #: definition since replaced (``oracle(name, replace=True)``) are not the replacement's
    of: tuple[Callable[..., Any] | None, int] = field(default=(None, 0), compare=False, repr=False)


#: every registered declaration, by oracle name
PROPERTIES: Registry[PropertyDecl] = Registry(
    "property declaration",
    key=lambda d: d.oracle,
    origin=lambda d: origin_of(d.fn),
    same=lambda old, new: _same_definition(old.fn, new.fn),
    hint=" (declare one with @properties(oracle))",
)


def _accepted(fn: Callable[..., Any]) -> tuple[set[str], bool]:
    """The keyword names ``fn`` takes, and whether it takes ``**kwargs``."""
    params = inspect.signature(fn).parameters.values()
    named = {p.name for p in params if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)}
    return named, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _call(decl: PropertyDecl, orc: Oracle, bound: Mapping[str, Any]) -> Properties:
    named, has_kwargs = _accepted(decl.fn)
    got = decl.fn(**(dict(bound) if has_kwargs else {k: v for k, v in bound.items() if k in named}))
    if not isinstance(got, Properties):
        raise UsageError(f"properties of {orc.name}: {origin_of(decl.fn)} returned {type(got).__name__},"
                         " not Properties")
    _check_fits(orc, got, origin_of(decl.fn))
    return got


def _check_fits(orc: Oracle, props: Properties, where: str) -> None:
    """A declaration must make sense for the oracle's kind and arguments."""

    def refuse(what: str) -> None:
        raise UsageError(f"properties of {orc.name} ({orc.kind}, {orc.signature}) from {where}: {what}")

    real = [a.name for a in orc.real_args]
    if props.monotone and orc.kind != "elementwise":
        refuse("monotone is for elementwise oracles")
    if props.parity and (orc.kind != "elementwise" or len(orc.args) != 1):
        refuse("parity is for elementwise oracles of one argument")
    if props.at_least_row_max and orc.kind != "row_reduce":
        refuse("at_least_row_max is for row_reduce oracles")
    if props.permutation == "equivariant" and orc.kind != "rowwise":
        refuse("permutation='equivariant' is for rowwise oracles (a row_reduce oracle is 'invariant')")
    if props.permutation == "invariant" and orc.kind != "row_reduce":
        refuse("permutation='invariant' is for row_reduce oracles (a rowwise oracle is 'equivariant')")
    if props.label_symmetry and (orc.kind != "elementwise" or len(real) != 2):
        refuse("label_symmetry is for elementwise losses of two real arguments")
    for what in ("unit_args", "unit_domain"):
        for name in getattr(props, what):
            if name not in real:
                refuse(f"{what} names {name!r}, not one of its real arguments; {choices(real, given=name)}")


def properties(oracle_name: str, *, replace: bool = False) -> Callable[[Callable[..., Properties]], Callable[..., Properties]]:
    """Register ``fn`` as the properties of ``oracle_name`` and return ``fn`` unchanged.

    ``fn`` takes any of the oracle's parameters by name (or ``**params``) and returns
    :class:`Properties`. Raises :class:`UsageError` for an unknown oracle, a parameter the
    oracle does not have, a declaration that does not fit the oracle (``parity`` of a
    row-wise oracle; checked with the default parameters), and a second registration for
    the same oracle unless ``replace``."""
    orc = get_oracle(oracle_name)

    def register(fn: Callable[..., Properties]) -> Callable[..., Properties]:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        named, _ = _accepted(fn)
        known = {p.name for p in orc.params}
        extra = sorted(named - known)
        if extra:
            valid = choices(known, given=extra[0]) if known else f"{orc.name} takes no parameters"
            raise UsageError(f"properties of {orc.name}: {origin_of(fn)} takes {extra[0]!r}, which is not a"
                             f" parameter of {orc.name}; {valid}")
        decl = PropertyDecl(orc.name, fn, module=str(caller), of=(orc.fn, orc.version))
        _call(decl, orc, orc.bind(None))  # a declaration that cannot be read fails here, not in a run
        PROPERTIES.add(decl, replace=replace)
        return fn

    return register


def properties_of(oracle_name: str | Oracle, params: Mapping[str, Any] | None = None) -> Properties:
    """The properties of ``oracle_name`` with ``params`` (validated by
    :meth:`Oracle.bind`, defaults filled in); ``Properties()`` when none are declared,
    including for a name no oracle is registered under and for an oracle redefined since
    its properties were declared (they were the old mathematics'). Raises :class:`UsageError` for
    parameters the oracle does not take or does not accept."""
    name = oracle_name.name if isinstance(oracle_name, Oracle) else oracle_name
    if name not in PROPERTIES or name not in REGISTRY:
        return Properties()
    decl = PROPERTIES.get(name)
    orc = REGISTRY.get(name) if isinstance(oracle_name, str) else oracle_name
    fn, version = decl.of
    # the same line of the same file is the same definition (oracles.registry._same_definition)
    if fn is not None and (not (fn is orc.fn or _same_definition(fn, orc.fn)) or version != orc.version):
        return Properties()
    return _call(decl, orc, orc.bind(params))
