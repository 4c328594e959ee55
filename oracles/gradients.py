"""Gradient oracles: the correctly rounded vector-Jacobian product of an oracle.

A gradient cell judges what autodiff returns for ``d/d(arg)`` of an implementation, given
a cotangent ``g`` with the shape of the forward output (``loss.backward()`` is ``g = 1``).
Its truth is the VJP of the oracle's mathematics, rounded once into the gradient's
format; it is evaluated like any oracle (Ziv's loop, the fast tier, the cache) because
:func:`gradient_oracle` turns it into an ordinary :class:`~oracles.registry.Oracle`
named ``∂softplus/∂x`` whose last argument is the cotangent.

Users register the derivative of their own oracle in a few lines::

    from mpmath import mp
    from oracles import gradient, oracle

    @oracle("mish")
    def mish(x):
        return x * mp.tanh(mp.log1p(mp.exp(x)))

    @gradient("mish")                      # wrt= the first real argument by default
    def mish_grad(x):
        sp = mp.log1p(mp.exp(x))           # (a real oracle guards against overflow)
        t = mp.tanh(sp)
        return t + x * (1 - t**2) * mp.exp(x) / (1 + mp.exp(x))

What the function returns depends on the oracle's kind:

``elementwise``
    ``fn(*scalars, **params) -> mpf``: the partial derivative at the point. The VJP is
    ``g * fn(...)`` (divided by the number of losses for ``reduction="mean"``).
``row_reduce``
    ``fn(*rows, **params) -> list[mpf]``: the gradient row (index arguments as ints).
``rowwise``
    ``fn(*rows, cotangent, **params) -> list[mpf]``: the VJP row
    ``sum_i cotangent[i] * d y_i / d x_j`` itself (the Jacobian is never formed).

Edge policy (docs/gradients.md, "The edge policy"): NaN in any input gives NaN; where the
derivative is a limit (an infinite input, a masked ``-inf`` entry, a point where the
forward value is infinite but the derivative's limit from inside the domain exists) it
is that limit; where it has a pole it is the signed infinity; where it does not exist
(outside the domain, ``inf/inf``) it is NaN. At a kink a registered gradient says what it
means (the seed suite's clips take the one-sided derivative from inside the clipped
range); the numerical fallback refuses. In the VJP, ``0 * inf`` is NaN (the
product of an infinite derivative and a zero cotangent is undefined).

Where no gradient is registered, an elementwise oracle is differentiated numerically
(:func:`_numerical`) when, and only when, its rounding can be certified with the same
certainty as a forward value; otherwise the cell reports the gradient oracle missing.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mpmath import mp, mpf

from oracles.errors import OracleError, UsageError, choices
from oracles.registries import Registry, origin_of
from oracles.registry import TARGET_ATTR, Arg, Kind, Oracle, Param, _same_definition, get_oracle

__all__ = [
    "COTANGENT",
    "COUNT",
    "GRADIENTS",
    "Gradient",
    "gradient",
    "gradient_for",
    "gradient_name",
    "gradient_oracle",
]

#: the derived oracle's last argument: the cotangent, with the forward output's shape
#: (a row-reduce oracle's per-row cotangent comes repeated along the row)
COTANGENT = "cotangent"
#: the derived oracle's divisor parameter: the number of losses a ``mean`` averages (1 for
#: ``none`` and ``sum``)
COUNT = "count"

_NAN = mpf("nan")
_INF = mpf("inf")


@dataclass(frozen=True, slots=True)
class Gradient:
    """The derivative of oracle ``oracle`` with respect to its argument ``wrt`` (see the
    module docstring for what ``fn`` returns per kind). ``version`` must change whenever
    the mathematics does: it keys cached gradient references."""

    oracle: str
    wrt: str
    fn: Callable[..., Any] = field(repr=False, compare=False)
    version: int = 1
    doc: str = ""
    #: the module whose code registered it, which another process imports to know it
    module: str = field(default="", compare=False)
    #: the oracle function it is the derivative of, and that oracle's version: a gradient
    #: of a definition since replaced is not the replacement's
    of: tuple[Callable[..., Any] | None, int] = field(default=(None, 0), compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.oracle}/{self.wrt}"


#: every registered gradient, by ``oracle/wrt``
GRADIENTS: Registry[Gradient] = Registry(
    "gradient",
    key=lambda g: g.key,
    origin=lambda g: origin_of(g.fn),
    same=lambda old, new: _same_definition(old.fn, new.fn),
    hint=" (register one with @gradient(oracle, wrt=...))",
)


def gradient(
    oracle_name: str, *, wrt: str | None = None, version: int = 1, replace: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn`` as the derivative of ``oracle_name`` with respect to ``wrt`` (default:
    its first argument) and return ``fn`` unchanged. Raises :class:`UsageError` for an
    unknown oracle or argument, an index argument, or a second registration (unless
    ``replace``)."""
    orc = get_oracle(oracle_name)
    arg = _real_arg(orc, wrt)

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        doc = inspect.getdoc(fn) or ""
        GRADIENTS.add(
            Gradient(orc.name, arg, fn, version, doc.splitlines()[0] if doc else "", module=str(caller),
                     of=(orc.fn, orc.version)),
            replace=replace,
        )
        return fn

    return register


def _real_arg(orc: Oracle, wrt: str | None) -> str:
    real = [a.name for a in orc.real_args]
    if wrt is None:
        return real[0]
    if wrt not in real:
        index = [a.name for a in orc.args if a.kind == "index"]
        why = f" ({wrt} is a class index: it has no derivative)" if wrt in index else ""
        raise UsageError(f"{orc.name} has no real argument {wrt!r}{why}; {choices(real, given=wrt)}")
    return wrt


def gradient_name(oracle_name: str, wrt: str) -> str:
    """``∂softplus/∂x``: the derived oracle's name (and the cache's)."""
    return f"∂{oracle_name}/∂{wrt}"


def gradient_for(oracle_name: str, wrt: str) -> Gradient | None:
    """The registered gradient of ``oracle_name`` with respect to ``wrt``, or None; None
    too when it was registered for a definition of the oracle that has since been
    replaced (``@oracle(..., replace=True)``): it is the derivative of other mathematics."""
    key = f"{oracle_name}/{wrt}"
    if key not in GRADIENTS:
        return None
    found = GRADIENTS.get(key)
    current = get_oracle(oracle_name)
    fn, version = found.of
    # the same line of the same file counts as the same definition: a file imported under
    # two module names registers its oracle twice (see oracles.registry._same_definition)
    same = fn is not None and (fn is current.fn or _same_definition(fn, current.fn))
    return found if same and version == current.version else None


# -- the derived oracle ---------------------------------------------------------------


def _product(g: mpf, d: mpf) -> mpf:
    """g * d with 0 * inf = NaN (an infinite derivative is not rescued by a zero
    cotangent) and NaN propagating."""
    if g != g or d != d:
        return _NAN
    if (not g and mp.isinf(d)) or (not d and mp.isinf(g)):
        return _NAN
    return g * d


def _scaled(g: mpf, d: mpf, count: float) -> mpf:
    v = _product(g, d)
    return v if count == 1 else v / mpf(count)


def _derived(orc: Oracle, wrt: str, registered: Gradient | None) -> Oracle:
    params = tuple(p for p in orc.params if not (orc.reducible and p.name == "reduction"))
    if orc.reducible:
        params = (*params, Param(COUNT, 1.0, doc="losses a mean averages (1 otherwise)", domain="positive"))
    position = [a.name for a in orc.args].index(wrt)
    if registered is not None:
        target = registered.fn
        version = registered.version
        module = registered.module
    elif orc.kind == "elementwise":
        target = functools.partial(_numerical, orc.fn, position, orc.name, wrt)
        version = orc.version
        module = orc.module
    else:
        # a row-wise oracle is never differentiated numerically; the cell says what is missing
        target = functools.partial(_no_gradient, orc.name, wrt)
        version = orc.version
        module = orc.module

    if orc.kind == "elementwise":
        def fn(*args: Any, **kw: Any) -> Any:
            count = kw.pop(COUNT, 1.0)
            *xs, g = args
            return _scaled(g, target(*xs, **kw), count)
    elif orc.kind == "row_reduce":
        def fn(*args: Any, **kw: Any) -> Any:
            count = kw.pop(COUNT, 1.0)
            *rows, g_row = args
            g = g_row[0] if len(g_row) else mpf(1)
            return [_scaled(g, d, count) for d in target(*rows, **kw)]
    else:
        def fn(*args: Any, **kw: Any) -> Any:
            *rows, g_row = args
            return target(*rows, cotangent=list(g_row), **kw)

    if registered is not None:
        # the fast tier recognises the function it was derived for by module:qualname; a
        # marker rather than functools.wraps, which would make fn unpicklable and hide its
        # signature behind the derivative's
        setattr(fn, TARGET_ATTR, f"{registered.fn.__module__}:{registered.fn.__qualname__}")
    kind: Kind = "elementwise" if orc.kind == "elementwise" else "rowwise"
    return Oracle(
        name=gradient_name(orc.name, wrt),
        kind=kind,
        args=(*orc.args, Arg(COTANGENT)),
        fn=fn,
        params=params,
        domain=f"the gradient of {orc.name} with respect to {wrt}",
        doc=f"vector-Jacobian product of {orc.name} with respect to {wrt}",
        version=version,
        module=module,
    )


def gradient_oracle(oracle: str | Oracle, wrt: str | None = None) -> Oracle:
    """The derived oracle whose truth is the VJP of ``oracle`` with respect to ``wrt``
    (default: the first real argument). Its arguments are the oracle's, then the cotangent;
    its parameters the oracle's, for a loss without ``reduction`` and with ``count``, the
    divisor of a mean. Raises :class:`UsageError` when ``wrt`` is not a real argument. Without a
    registered gradient, an elementwise oracle is differentiated numerically and a
    row-wise one raises :class:`OracleError` when evaluated (the cell's error says so)."""
    orc = get_oracle(oracle)
    arg = _real_arg(orc, wrt)
    return _derived(orc, arg, gradient_for(orc.name, arg))


# -- the numerical fallback -----------------------------------------------------------


def _missing(name: str, wrt: str, where: str) -> OracleError:
    return OracleError(
        f"no gradient oracle for {name} with respect to {wrt}: its numerical derivative cannot be certified"
        f" {where}; register one with @gradient({name!r}, wrt={wrt!r})"
    )


def _no_gradient(name: str, wrt: str, *args: Any, **params: Any) -> Any:
    raise OracleError(f"no gradient oracle for {name} with respect to {wrt}: register one with"
                      f" @gradient({name!r}, wrt={wrt!r}) (row-wise oracles are not differentiated numerically)")


def _numerical(f: Callable[..., Any], position: int, name: str, wrt: str, *xs: mpf, **params: Any) -> mpf:
    """d f / d xs[position] by central differences at the caller's working precision.

    Called by Ziv's loop at growing precision ``wp``: the step is ``h = 2**(e - wp)`` for
    ``e`` the exponent of the point (or of 1 at 0), and ``f`` is evaluated at ``3 wp``
    bits, so that the difference loses at most ``wp`` bits to cancellation and the
    truncation error (``h**2 f''' / 6``) is about ``2**-2wp`` relative. Successive
    precisions must then decide the rounding, as for any forward value. The forward and
    backward one-sided differences must also agree to ``2**(-wp/2)``, or their difference
    must shrink with the step (``h f''`` at a smooth point where f' is 0): at a kink the
    central difference converges (to the mean of the one-sided slopes), the one-sided
    ones do not. An infinite point, a non-finite value of f at or beside the point, or a
    kink raise :class:`OracleError` saying the gradient oracle is missing."""
    wp = mp.prec
    x = xs[position]
    if mp.isinf(x):
        raise _missing(name, wrt, f"at {wrt}={mp.nstr(x, 8)} (a limit, not a difference quotient)")
    with mp.workprec(3 * wp + 20):
        e = int(mp.floor(mp.log(abs(x), 2))) if x else 0
        h = mp.ldexp(1, e - wp)

        def at(v: mpf) -> mpf:
            args = list(xs)
            args[position] = v
            return mpf(f(*args, **params))

        centre = at(x)
        if centre != centre:
            return _NAN  # outside the domain: the derivative does not exist
        up, down = at(mp.fadd(x, h, exact=True)), at(mp.fsub(x, h, exact=True))
        if not all(mp.isfinite(v) for v in (centre, up, down)):
            shown = ", ".join(f"{n}={mp.nstr(v, 8)}" for n, v in zip(("x", "x+h", "x-h"), (centre, up, down),
                                                                        strict=True))
            raise _missing(name, wrt, f"at {wrt}={mp.nstr(x, 17)} (f is not finite beside the point: {shown})")
        central = (up - down) / (2 * h)
        jump = abs(up - 2 * centre + down) / h  # forward minus backward slope
        scale = max(abs(central), abs(up - centre) / h, abs(centre - down) / h, mp.ldexp(1, -wp))
        if jump > scale * mp.ldexp(1, -(wp // 2)):
            # either a kink (the slopes differ by a constant) or a smooth point where f' is
            # small beside h f'' (x**2 at 0): a smooth jump shrinks with the step, a kink's not
            q = max(4, wp // 4)
            small = mp.ldexp(h, -q)
            up2, down2 = at(mp.fadd(x, small, exact=True)), at(mp.fsub(x, small, exact=True))
            jump2 = abs(up2 - 2 * centre + down2) / small
            if not (mp.isfinite(up2) and mp.isfinite(down2)) or jump2 > jump * mp.ldexp(1, -(q // 2)):
                raise _missing(name, wrt, f"at {wrt}={mp.nstr(x, 17)} (the one-sided slopes differ: a kink?)")
        return central
