"""Cells and budgets: what one (implementation, dtype, device, inputs) run is and how it is
judged pass or fail. Pure records; running them is :mod:`harness.execution.runner`'s job."""

from __future__ import annotations

import math
import shlex
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.judgement.consistency import CHECKS, Consistency
from harness.judgement.definitions import CATEGORIES, TORCH_TOLERANCES, Tolerance
from harness.judgement.summary import Summary
from oracles.errors import UsageError, choices
from oracles.registry import Oracle, get_oracle

__all__ = ["COTANGENTS", "DEFAULT_ALLOW", "MODES", "TORCH", "Budget", "CellResult", "CellSpec", "passes"]

#: what a gradient cell multiplies the Jacobian by: all ones (``loss.backward()``), random
#: values of the format, or the format's special finite values (see harness.plan.cotangents)
COTANGENTS: tuple[str, ...] = ("ones", "random", "special")

#: which passes a plan judges: the forward values, the gradients, or both
MODES: tuple[str, ...] = ("forward", "grad", "both")


def passes(oracle: Oracle, mode: str, wrt: Sequence[str] | None = None,
           cotangents: Sequence[str] = ("ones",)) -> list[tuple[str, str]]:
    """The ``(wrt, cotangent)`` pairs a plan's cells take for ``oracle``: ``("", "ones")``
    for the forward pass, then one per differentiated argument and cotangent. ``wrt``
    defaults to every real argument (``p`` and ``y`` of a loss; a framework that does not
    differentiate one makes those cells ``unsupported``). Raises :class:`UsageError` for
    an unknown mode, argument or cotangent."""
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; {choices(MODES, given=mode)}")
    real = [a.name for a in oracle.real_args]
    chosen = list(dict.fromkeys(wrt)) if wrt else real
    for name in chosen:
        if name not in real:
            index = " (a class index has no gradient)" if name in [a.name for a in oracle.args] else ""
            raise UsageError(f"{oracle.name} has no real argument {name!r} to differentiate{index};"
                             f" {choices(real, given=name)}")
    cots = list(dict.fromkeys(cotangents)) or ["ones"]
    for cot in cots:
        if cot not in COTANGENTS:
            raise UsageError(f"unknown cotangent {cot!r}; {choices(COTANGENTS, given=cot)}")
    out: list[tuple[str, str]] = [("", "ones")] if mode in ("forward", "both") else []
    if mode in ("grad", "both"):
        out += [(name, cot) for name in chosen for cot in cots]
    return out

#: by default the defects that the mathematics never produces are not allowed; the other
#: categories are reported but do not fail a cell unless a budget says so
DEFAULT_ALLOW: Mapping[str, float] = {"unexpected_nan": 0, "missing_nan": 0, "unexpected_inf": 0}


#: what ``atol``/``rtol``/``tolerance`` accept besides a number: torch.testing.assert_close's
#: default for the output's dtype
TORCH = "torch"


def _num(v: float) -> str:
    """``1e-05`` as ``1e-5``: the short way people write tolerances."""
    text = f"{v:g}"
    mant, sep, exp = text.partition("e")
    return f"{mant}e{int(exp)}" if sep else text


def _limit(name: str, value: Any, *, torch: bool, example: str) -> float | str | None:
    """A non-negative finite number (or ``"torch"`` where ``torch``), or None when not given."""
    if value is None:
        return None
    if torch and value == TORCH:
        return TORCH
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
        also = ' or "torch" (torch.testing.assert_close\'s default for the dtype)' if torch else ""
        raise UsageError(f"budget: {name} must be a finite, non-negative number{also}, got {value!r}; e.g. {example},"
                         f" or leave {name} out for no limit")
    return float(value)


@dataclass(frozen=True, slots=True)
class Budget:
    """Max ULP error (None: unlimited) and allowed incidence per category: a count (int),
    a fraction of the elements (float below 1), or unlimited (``true``). Optionally a max
    bits of error (``max_bits``) and an element-wise tolerance with the meaning of
    ``torch.testing.assert_close``: an element is over it when ``|c - y| > atol + rtol |y|``
    (c and y finite; NaN and Inf stay with the incidence categories). ``atol``/``rtol`` are
    numbers or ``"torch"`` (torch's default for the output dtype); giving one of them
    leaves the other 0."""

    max_ulp: float | None = None
    allow: tuple[tuple[str, float], ...] = tuple(sorted(DEFAULT_ALLOW.items()))
    max_bits: float | None = None
    atol: float | str | None = None
    rtol: float | str | None = None

    @property
    def has_tolerance(self) -> bool:
        return self.atol is not None or self.rtol is not None

    def tolerance_for(self, out_dtype: str | None) -> Tolerance | None:
        """(atol, rtol) for results in ``out_dtype``: what the tally counts against (None:
        no tolerance, or ``"torch"`` for an unknown dtype)."""
        if not self.has_tolerance:
            return None
        torch = TORCH_TOLERANCES.get(out_dtype or "")
        out: list[float] = []
        for i, value in enumerate((self.atol, self.rtol)):
            if value == TORCH:
                if torch is None:
                    return None
                out.append(torch[i])
            else:
                out.append(0.0 if value is None else float(value))
        return (out[0], out[1])

    @staticmethod
    def build(max_ulp: float | None = None, allow: Mapping[str, Any] | None = None, *, max_bits: float | None = None,
              atol: float | str | None = None, rtol: float | str | None = None,
              tolerance: str | None = None) -> Budget:
        """A budget from what the user wrote (``--max-ulp``/``--allow``, a suite's
        ``[case.budget]``, ``assert_precision``'s arguments). Raises :class:`UsageError`
        naming the value and what is accepted for an unknown category, a negative or
        non-finite ``max_ulp`` (leave it out for no limit) and an ``allow`` value that is not
        ``true``/``false`` or a finite count or fraction (``true`` is the unlimited one):
        NaN and infinities cannot be stored in results, and a NaN limit would pass
        everything."""
        limits: dict[str, float] = dict(DEFAULT_ALLOW)
        for cat, value in (allow or {}).items():
            if cat not in CATEGORIES:
                raise UsageError(f"budget: unknown incidence category {cat!r}; {choices(CATEGORIES)}")
            if value is True:
                limits[cat] = math.inf
            elif value is False:
                limits[cat] = 0
            elif isinstance(value, (int, float)) and math.isinf(value) and value > 0:
                raise UsageError(f"budget: allow.{cat} = {value!r} is not a count; write true to allow any number")
            elif isinstance(value, (int, float)) and value >= 0:  # NaN fails `>= 0`
                limits[cat] = float(value)
            else:
                raise UsageError(
                    f"budget: allow.{cat} must be true, false, a count or a fraction below 1, got {value!r}"
                )
        if max_ulp is not None:
            if not isinstance(max_ulp, (int, float)) or isinstance(max_ulp, bool) or not max_ulp >= 0:
                raise UsageError(f"budget: max_ulp must be a non-negative number, got {max_ulp!r}; e.g. max_ulp = 1,"
                                 " or leave it out for no ULP limit")
            if math.isinf(max_ulp):
                raise UsageError(f"budget: max_ulp must be a finite number, got {max_ulp!r}; leave max_ulp out for"
                                 " no ULP limit")
        bits = _limit("max_bits", max_bits, torch=False, example="max_bits = 2")
        if tolerance is not None and tolerance != TORCH:
            raise UsageError(f'budget: tolerance must be "torch" (torch.testing.assert_close\'s defaults for the'
                             f" dtype), got {tolerance!r}; or give atol and rtol")
        a = _limit("atol", atol if atol is not None else tolerance, torch=True, example="atol = 1e-5")
        r = _limit("rtol", rtol if rtol is not None else tolerance, torch=True, example="rtol = 1.3e-6")
        return Budget(None if max_ulp is None else float(max_ulp), tuple(sorted(limits.items())),
                      None if bits is None else float(bits), a, r)

    def violations(self, s: Summary, out_dtype: str | None = None) -> list[str]:
        """Why ``s`` is over this budget (empty when within it). ``out_dtype`` resolves a
        ``"torch"`` tolerance; without it the tolerance ``s`` was counted against is taken.
        A tolerance ``s`` was not counted against (an older file, a merge of parts counted
        against different ones) passes only when its largest errors prove it does."""
        out: list[str] = []
        if self.max_ulp is not None and s.ulp_count and s.ulp_max > self.max_ulp:
            out.append(f"max ulp {s.ulp_max:.6g} > {self.max_ulp:g}")
        if self.max_bits is not None:
            if not s.measured:
                out.append("bits of error not measured (results written by an older fpharness): re-run the cell")
            elif s.bits_count and s.bits_max is not None and s.bits_max > self.max_bits:
                out.append(f"max bits {s.bits_max:.4g} > {_num(self.max_bits)}")
        if self.has_tolerance:
            out.extend(self._tolerance_violations(s, out_dtype))
        inc = s.incidence
        for cat, limit in self.allow:
            count = inc.get(cat, 0)
            allowed = limit * s.n if 0 < limit < 1 else limit
            if count > allowed:
                out.append(f"{cat} {count} > {limit:g}" if limit >= 1 or limit == 0 else f"{cat} {count} > {limit:g} of {s.n}")
        return out

    def _tolerance_violations(self, s: Summary, out_dtype: str | None) -> list[str]:
        expected = self.tolerance_for(out_dtype) if out_dtype is not None or TORCH not in (self.atol, self.rtol) else None
        if s.tolerance is not None and (expected is None or s.tolerance == expected):
            atol, rtol = s.tolerance
            if s.over_tolerance:
                return [f"{s.over_tolerance} elements over atol {_num(atol)} + rtol {_num(rtol)}·|y|"]
            return []
        if expected is None or not s.measured:
            shown = " + ".join(f"{k} {_num(v) if isinstance(v, float) else v or 0}"
                               for k, v in (("atol", self.atol), ("rtol", self.rtol)))
            return [f"tolerance {shown}·|y| not judged element by element"
                    " (results without the count, or of an unknown dtype): re-run the cell with this budget"]
        atol, rtol = expected
        # without a count, only the largest errors can prove every element within it
        if not s.ulp_count or s.abs_max <= atol or (not s.rel_undefined and s.rel_max <= rtol):
            return []
        return [f"tolerance atol {_num(atol)} + rtol {_num(rtol)}·|y| not judged element by element and not"
                f" proven by the largest errors (abs {s.abs_max:.3g}, rel {s.rel_max:.3g}): re-run the cell with"
                " this budget"]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "max_ulp": self.max_ulp,
            "allow": {k: (True if math.isinf(v) else (int(v) if v >= 1 or v == 0 else v)) for k, v in self.allow},
        }
        # written only when set, so budgets without them read as they always did
        for key in ("max_bits", "atol", "rtol"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @staticmethod
    def from_json(d: Mapping[str, Any] | None) -> Budget:
        d = d or {}
        return Budget.build(d.get("max_ulp"), d.get("allow"), max_bits=d.get("max_bits"), atol=d.get("atol"),
                            rtol=d.get("rtol"))


@dataclass(frozen=True, slots=True)
class CellSpec:
    """One cell of the matrix: an implementation judged against an oracle for one input
    dtype, device and input spec. ``id`` reads like ``softplus[torch.softplus-cpu-float16-exhaustive]``."""

    oracle: str
    impl: str
    framework: str
    dtype: str
    device: str
    inputs: str
    params: tuple[tuple[str, Any], ...] = ()
    budget: Budget = field(default_factory=Budget)
    custom: bool = False
    timeout: float = 300.0
    #: "" for the forward pass; otherwise the argument whose gradient (the vector-Jacobian
    #: product autodiff returns) the cell judges
    wrt: str = ""
    #: a gradient cell's cotangent, one of :data:`COTANGENTS`
    cotangent: str = "ones"
    #: "" for an accuracy cell; otherwise the consistency check the cell runs (one of
    #: harness.judgement.consistency.CHECKS), which needs no oracle: ``oracle`` is then
    #: the function the implementation computes, or "" for a user's operation without one
    check: str = ""

    def __post_init__(self) -> None:
        if self.check:
            if self.check not in CHECKS:
                raise UsageError(f"unknown consistency check {self.check!r}; {choices(CHECKS, given=self.check)}")
            if self.wrt:
                raise UsageError("a consistency check judges forward values: drop the gradient argument")
        if self.cotangent not in COTANGENTS:
            raise UsageError(f"unknown cotangent {self.cotangent!r}; {choices(COTANGENTS, given=self.cotangent)}")
        if not self.wrt and self.cotangent != "ones":
            object.__setattr__(self, "cotangent", "ones")  # a forward cell has none: one spelling of it
        # every way of making a cell (check, a suite, assert_precision) passes through here:
        # a timeout the runner cannot wait for must be refused before anything runs
        t = self.timeout
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= threading.TIMEOUT_MAX:
            raise UsageError(
                f"timeout must be a positive, finite number of seconds (at most {threading.TIMEOUT_MAX:.0f}),"
                f" got {t!r}; e.g. timeout = 300"
            )

    @property
    def shown_params(self) -> tuple[tuple[str, Any], ...]:
        """The parameters that differ from the oracle's defaults (what ids and repro show)."""
        try:  # an oracle unknown here (a results file from another build) shows every parameter
            oracle = get_oracle(self.oracle)
        except UsageError:
            return self.params
        defaults = {p.name: p.default for p in oracle.params}
        return tuple((k, v) for k, v in self.params if defaults.get(k) != v)

    @property
    def is_consistency(self) -> bool:
        """Whether the cell runs a consistency check rather than judging accuracy."""
        return bool(self.check)

    @property
    def is_grad(self) -> bool:
        """Whether the cell judges a gradient rather than forward values."""
        return bool(self.wrt)

    @property
    def subject(self) -> str:
        """What the cell judges, as tables title it: ``softplus``, its gradient ``∂softplus``,
        or ``∂binary_cross_entropy/∂p`` for an oracle with several real arguments."""
        if not self.wrt:
            # an operation without an oracle is titled by its function's name
            return self.oracle or self.impl.rpartition(":")[2] or self.impl
        try:
            single = len(get_oracle(self.oracle).real_args) == 1
        except UsageError:  # an oracle unknown here (a results file from another build)
            single = False
        return f"∂{self.oracle}" if single else f"∂{self.oracle}/∂{self.wrt}"

    @property
    def id(self) -> str:
        extra = "".join(f"-{k}={v}" for k, v in self.shown_params)
        if self.wrt and self.cotangent != "ones":
            extra += f"-cotangent={self.cotangent}"
        if self.check:
            extra += f"-consistency={self.check}"
        return f"{self.subject}[{self.impl}-{self.device}-{self.dtype}-{self.inputs}{extra}]"

    @property
    def pass_(self) -> str:
        """``"forward"``, ``"grad"`` or ``"consistency"``: what the cell judges (the JSON
        field ``pass``)."""
        return "consistency" if self.check else "grad" if self.wrt else "forward"

    @property
    def key(self) -> tuple[str, str, str, str, str, str, str]:
        """How cells are matched across runs (baseline comparison, merging)."""
        params = ",".join(f"{k}={v}" for k, v in self.params)
        judged = f"∂{self.wrt}:{self.cotangent}" if self.wrt else f"≡{self.check}" if self.check else ""
        return (self.oracle, self.impl, self.dtype, self.device, self.inputs, params, judged)

    @property
    def group(self) -> tuple[Any, ...]:
        """Cells with one group share their inputs and references (a consistency cell shares
        its forward cells' inputs and needs no references)."""
        return (self.oracle, self.dtype, self.inputs, self.params, self.wrt, self.cotangent if self.wrt else "")

    def repro(self) -> str:
        """The command line that reproduces this cell."""
        parts = ["fpharness", "check", self.impl] + (["--oracle", self.oracle] if self.oracle else [])
        if self.custom:
            parts += ["--framework", self.framework]
        parts += ["--dtype", self.dtype, "--device", self.device, "--inputs", self.inputs]
        for k, v in self.shown_params:
            parts += ["--param", f"{k}={v}"]
        if self.wrt:
            parts += ["--grad", self.wrt]
            if self.cotangent != "ones":
                parts += ["--cotangent", self.cotangent]
        if self.check:
            parts += ["--consistency", self.check]
            if self.budget.max_ulp is not None:
                # a consistency tolerance decides what differs, not only the verdict: keep it
                parts += ["--consistency-ulp", f"{self.budget.max_ulp:g}"]
        return " ".join(_quote(p) for p in parts)


def _quote(text: str) -> str:
    return shlex.quote(text)


@dataclass(frozen=True, slots=True)
class CellResult:
    """A judged cell: status, reason, the output format and the verdict summary."""

    spec: CellSpec
    status: str
    reason: str = ""
    out_dtype: str | None = None
    summary: Summary | None = None
    seconds: float = 0.0
    impl_seconds: float = 0.0
    #: error-versus-input profile of elementwise cells (see :mod:`harness.judgement.error_vs_input`)
    profile: dict[str, Any] | None = field(default=None, compare=False)
    #: inputs (rows, for row-wise oracles) whose exact result is NaN that the implementation
    #: refused by raising; the cell was judged on the others
    rejected: int = 0
    #: a consistency cell's findings (harness.judgement.consistency)
    consistency: Consistency | None = field(default=None, compare=False)
    #: a streamed cell's worst elements whose truth was derived again by mpmath alone,
    #: without the fast tier, and agreed (a disagreement makes the cell an error)
    rechecked: int = 0

    def to_json(self) -> dict[str, Any]:
        s = self.spec
        out: dict[str, Any] = {
            "id": s.id,
            "oracle": s.oracle,
            "impl": s.impl,
            "framework": s.framework,
            "device": s.device,
            "dtype": s.dtype,
            "out_dtype": self.out_dtype,
            "inputs": s.inputs,
            "params": dict(s.params),
            "status": self.status,
            "reason": self.reason,
            "custom": s.custom,
            "pass": s.pass_,
            "budget": s.budget.to_json(),
            "seconds": round(self.seconds, 4),
            "impl_seconds": round(self.impl_seconds, 6),
            "repro": s.repro(),
        }
        if s.wrt:
            out["wrt"], out["cotangent"] = s.wrt, s.cotangent
        if s.check:
            out["check"] = s.check
        if self.consistency is not None:
            out["consistency"] = self.consistency.to_json()
        if self.profile is not None:
            out["profile"] = self.profile
        if self.rejected:
            out["rejected"] = self.rejected
        if self.rechecked:
            out["rechecked"] = self.rechecked
        if self.summary is not None:
            out.update(self.summary.to_json())
        else:
            n = self.consistency.compared if self.consistency is not None else 0
            out.update({"n": n, "correctly_rounded": 0, "ulp": None, "incidence": None, "worst": [], "examples": []})
        return out

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> CellResult:
        judged = d.get("pass", "forward")
        if (judged not in ("forward", "grad", "consistency") or (judged == "grad" and not d.get("wrt"))
                or (judged == "consistency" and not d.get("check"))):
            # a gradient or consistency cell read as a forward one would take its key
            raise ValueError(f"cell {d.get('id')!r}: pass {judged!r} (with wrt {d.get('wrt')!r}, check"
                             f" {d.get('check')!r}) is not 'forward', 'grad' with the argument differentiated"
                             " or 'consistency' with its check")
        spec = CellSpec(
            oracle=d["oracle"],
            impl=d["impl"],
            framework=d["framework"],
            dtype=d["dtype"],
            device=d["device"],
            inputs=d["inputs"],
            params=tuple(sorted((d.get("params") or {}).items())),
            budget=Budget.from_json(d.get("budget")),
            custom=bool(d.get("custom", False)),
            wrt=str(d["wrt"]) if judged == "grad" else "",
            cotangent=str(d.get("cotangent", "ones")),
            check=str(d["check"]) if judged == "consistency" else "",
        )
        summary = Summary.from_json(d) if d.get("exact_summary") else None
        return CellResult(
            spec=spec,
            status=d["status"],
            reason=d.get("reason", ""),
            out_dtype=d.get("out_dtype"),
            summary=summary,
            seconds=float(d.get("seconds", 0.0)),
            impl_seconds=float(d.get("impl_seconds", 0.0)),
            profile=d.get("profile"),
            rejected=int(d.get("rejected", 0)),
            consistency=Consistency.from_json(d["consistency"]) if d.get("consistency") else None,
            rechecked=int(d.get("rechecked", 0)),
        )
