"""Oracles as frozen records, registered by a decorator.

An oracle is the mathematics an implementation is judged against: a plain function over
mpmath numbers, evaluated by :mod:`oracles.evaluate` at whatever precision makes the
correctly rounded result certain. Users add their own in a few lines::

    from mpmath import mp
    from oracles import oracle

    @oracle("mish", domain="all reals")
    def mish(x):
        return x * mp.tanh(mp.log1p(mp.exp(x)))

Kinds:

``elementwise``
    ``fn(*scalars, **params) -> mpf``; every argument has the same shape as the output.
``rowwise``
    ``fn(*rows, **params) -> list[mpf]`` over the last axis of 2-D arguments; the output
    has the shape of the first argument (softmax).
``row_reduce``
    ``fn(*rows, **params) -> mpf``; one value per row (logsumexp, cross-entropy).

An argument named with the suffix ``:index`` (``"target:index"``) is an integer per row
(a class index) rather than a real tensor. ``reducible=True`` adds the parameter
``reduction`` (``none``, ``mean``, ``sum``) that losses take.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from oracles.errors import UsageError, choices
from oracles.registries import Registry, origin_of

__all__ = [
    "PARAM_DOMAINS",
    "REGISTRY",
    "TARGET_ATTR",
    "Arg",
    "Kind",
    "Oracle",
    "OracleRegistry",
    "Param",
    "function_target",
    "get_oracle",
    "oracle",
]

Kind = Literal["elementwise", "rowwise", "row_reduce"]
KINDS: tuple[str, ...] = ("elementwise", "rowwise", "row_reduce")
REDUCTIONS: tuple[str, ...] = ("none", "mean", "sum")


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument of an oracle: a real tensor, or an integer index per row."""

    name: str
    kind: Literal["real", "index"] = "real"

    def __str__(self) -> str:
        return self.name if self.kind == "real" else f"{self.name}:index"


#: the domains a numeric parameter can declare: name -> (test, what the user is told)
PARAM_DOMAINS: Mapping[str, tuple[Callable[[float], bool], str]] = {
    "real": (lambda v: True, "a finite number"),
    "nonzero": (lambda v: v != 0, "a finite non-zero number"),
    "positive": (lambda v: v > 0, "a finite number > 0"),
    "non-negative": (lambda v: v >= 0, "a finite number >= 0"),
}


@dataclass(frozen=True, slots=True)
class Param:
    """A keyword parameter with a default: a real number in ``domain`` (one of
    :data:`PARAM_DOMAINS`; every one of them is finite), or one of a few strings.

    A declaration whose domain is unknown or whose default lies outside it is a
    :class:`UsageError` for the oracle's author, raised when the oracle is declared."""

    name: str
    default: float | str
    options: tuple[str, ...] = ()
    doc: str = ""
    domain: str = "real"

    def __post_init__(self) -> None:
        if self.options:
            if self.default not in self.options:
                raise UsageError(f"parameter {self.name!r}: default {self.default!r} is not one of its options; "
                                 f"{choices(self.options)}")
            return
        if self.domain not in PARAM_DOMAINS:
            raise UsageError(f"parameter {self.name!r}: unknown domain {self.domain!r}; {choices(PARAM_DOMAINS)}")
        self.coerce("a parameter declaration", self.default)

    def coerce(self, oracle_name: str, value: object) -> float | str:
        """``value`` as this parameter's type: one of the options, or a float (a number or
        the text of one, as ``--param beta=2`` gives it). Raises :class:`UsageError` naming
        the value and what is accepted for anything else: text that is not a number, a
        boolean, NaN or an infinity (they cannot be stored in results), or a number outside
        the domain (``beta=0`` for softplus)."""
        if self.options:
            text = str(value)
            if text not in self.options:
                raise UsageError(
                    f"{oracle_name}: parameter {self.name}={value!r} is not valid; "
                    f"{choices(self.options, given=text)}"
                )
            return text
        accepted = PARAM_DOMAINS[self.domain][1]
        example = f"e.g. {self.name}={self.default}"
        if isinstance(value, bool):  # float(True) is 1.0: a TOML `beta = true` is a slip, not a number
            raise UsageError(f"{oracle_name}: parameter {self.name}={value!r} must be {accepted}, {example}")
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            raise UsageError(
                f"{oracle_name}: parameter {self.name}={value!r} must be a number, e.g. "
                f"{self.name}={self.default}"
            ) from None
        if not math.isfinite(number):
            raise UsageError(
                f"{oracle_name}: parameter {self.name}={value!r} is not finite; {self.name} must be {accepted},"
                f" {example}"
            )
        test, _ = PARAM_DOMAINS[self.domain]
        if not test(number):
            raise UsageError(
                f"{oracle_name}: parameter {self.name}={value!r} is outside its domain: {self.name} must be"
                f" {accepted}, {example}"
            )
        return number


@dataclass(frozen=True, slots=True)
class Oracle:
    """A registered oracle. ``version`` must change whenever the mathematics does: it keys
    every cached reference value."""

    name: str
    kind: Kind
    args: tuple[Arg, ...]
    fn: Callable[..., Any] = field(repr=False, compare=False)
    params: tuple[Param, ...] = ()
    domain: str = "all reals"
    doc: str = ""
    version: int = 1
    reducible: bool = False
    #: the module whose code registered it (``mymod`` for ``oracle("x")(helpers.kernel)``
    #: run in ``mymod``): what another process imports to know it
    module: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.name

    @property
    def real_args(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if a.kind == "real")

    @property
    def signature(self) -> str:
        """``softplus(x; beta=1.0)`` as listed by ``fpharness oracles``."""
        params = ", ".join(f"{p.name}={p.default}" for p in self.params)
        body = ", ".join(str(a) for a in self.args)
        return f"{self.name}({body}{'; ' + params if params else ''})"

    def bind(self, given: Mapping[str, object] | None = None) -> dict[str, float | str]:
        """Validate user parameters against the declaration and fill in defaults."""
        given = dict(given or {})
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            valid = choices(known, given=unknown[0]) if known else "this oracle takes no parameters"
            raise UsageError(f"{self.name}: unknown parameter {unknown[0]!r}; {valid}")
        return {name: p.coerce(self.name, given.get(name, p.default)) for name, p in known.items()}

    def math_params(self, bound: Mapping[str, float | str]) -> dict[str, float | str]:
        """The parameters the mathematical function itself takes (not ``reduction``)."""
        return {k: v for k, v in bound.items() if not (self.reducible and k == "reduction")}


class OracleRegistry(Registry[Oracle]):
    """Name -> :class:`Oracle`, filled by :func:`oracle`. Iterates in name order.

    Registering a name again with a function from the same line of the same file is not an
    error (see :func:`_same_definition`); any other second registration is, unless
    ``replace=True``."""

    def __init__(self) -> None:
        super().__init__(
            "oracle",
            key=lambda o: o.name,
            origin=lambda o: origin_of(o.fn),
            same=lambda old, new: _same_definition(old.fn, new.fn),
        )


def _same_definition(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """Whether two functions come from the same line of the same source file: one file
    executed twice under different module names (a suite's ``imports = ["mine.py"]`` and its
    custom implementation ``"mine.py:fn"`` each load it), which re-registers the same oracle
    and must not be an error. A different function under a taken name still is."""
    ca, cb = getattr(a, "__code__", None), getattr(b, "__code__", None)
    if ca is None or cb is None:
        return False
    return (
        ca.co_filename == cb.co_filename
        and ca.co_firstlineno == cb.co_firstlineno
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
    )


REGISTRY = OracleRegistry()

#: the attribute by which a wrapper names the function whose mathematics it evaluates
#: (``module:qualname``): a gradient oracle's function (oracles.gradients) wraps the
#: registered derivative, and the fast tier must recognise the derivative
TARGET_ATTR = "__fpharness_target__"


def function_target(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of the mathematics ``fn`` evaluates (see :data:`TARGET_ATTR`)."""
    marked = getattr(fn, TARGET_ATTR, None)
    if isinstance(marked, str):
        return marked
    return f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', '')}"


def _parse_arg(spec: str | Arg) -> Arg:
    if isinstance(spec, Arg):
        return spec
    name, _, kind = spec.partition(":")
    if kind not in ("", "index", "real"):
        raise UsageError(f"argument {spec!r}: the suffix must be ':index' or nothing")
    if not name.isidentifier():
        raise UsageError(f"argument name {name!r} must be a Python identifier")
    return Arg(name, "index" if kind == "index" else "real")


def oracle(
    name: str,
    *,
    kind: Kind = "elementwise",
    args: tuple[str | Arg, ...] | list[str | Arg] = ("x",),
    params: Mapping[str, float | str | Param] | None = None,
    domain: str = "all reals",
    version: int = 1,
    reducible: bool = False,
    replace: bool = False,
    registry: OracleRegistry | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn`` as the oracle ``name`` and return ``fn`` unchanged.

    ``params`` maps parameter names to defaults (a number) or to a :class:`Param`. The
    function receives mpmath values (``mpf``, possibly +-inf) and the parameters as
    keywords; NaN inputs never reach it (NaN in gives NaN out). It returns ``mpf('nan')``
    where the mathematics is undefined. Raises :class:`UsageError` for a duplicate name, an
    unknown kind, or parameters the function does not accept.
    """
    if kind not in KINDS:
        raise UsageError(f"oracle {name!r}: unknown kind {kind!r}; {choices(KINDS)}")
    parsed_args = tuple(_parse_arg(a) for a in args)
    if not parsed_args or parsed_args[0].kind != "real":
        raise UsageError(f"oracle {name!r}: the first argument must be a real tensor")
    if kind == "elementwise" and any(a.kind == "index" for a in parsed_args):
        raise UsageError(f"oracle {name!r}: index arguments need kind 'rowwise' or 'row_reduce'")
    plist: list[Param] = []
    for pname, spec in (params or {}).items():
        plist.append(spec if isinstance(spec, Param) else Param(pname, spec))
    if reducible:
        plist.append(Param("reduction", "none", REDUCTIONS, "how per-sample losses combine"))

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        # the caller of the decorator is the registering module; fn may come from anywhere
        caller = sys._getframe(1).f_globals.get("__name__", "")
        accepted = inspect.signature(fn).parameters
        has_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
        for p in plist:
            if p.name != "reduction" and p.name not in accepted and not has_kwargs:
                raise UsageError(
                    f"oracle {name!r}: parameter {p.name!r} is declared but "
                    f"{fn.__qualname__} does not accept it"
                )
        doc = inspect.getdoc(fn) or ""
        (registry if registry is not None else REGISTRY).add(
            Oracle(
                name=name,
                kind=kind,
                args=parsed_args,
                fn=fn,
                params=tuple(plist),
                domain=domain,
                doc=doc.splitlines()[0] if doc else "",
                version=version,
                reducible=reducible,
                module=str(caller),
            ),
            replace=replace,
        )
        return fn

    return register


def get_oracle(name: str | Oracle) -> Oracle:
    """The registered oracle ``name``; unknown names raise :class:`UsageError` listing the
    valid ones. The built-ins are registered whenever the :mod:`oracles` package is
    imported, which any import of this module does first."""
    if isinstance(name, Oracle):
        return name
    return REGISTRY.get(name)
