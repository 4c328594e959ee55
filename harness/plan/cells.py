"""Cells and budgets: what one (implementation, dtype, device, inputs) run is and how it is
judged pass or fail. Pure records; running them is :mod:`harness.execution.runner`'s job."""

from __future__ import annotations

import math
import shlex
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.judgement.definitions import CATEGORIES
from harness.judgement.summary import Summary
from oracles.errors import UsageError, choices
from oracles.registry import get_oracle

__all__ = ["DEFAULT_ALLOW", "Budget", "CellResult", "CellSpec"]

#: by default the defects that the mathematics never produces are not allowed; the other
#: categories are reported but do not fail a cell unless a budget says so
DEFAULT_ALLOW: Mapping[str, float] = {"unexpected_nan": 0, "missing_nan": 0, "unexpected_inf": 0}


@dataclass(frozen=True, slots=True)
class Budget:
    """Max ULP error (None: unlimited) and allowed incidence per category: a count (int),
    a fraction of the elements (float below 1), or unlimited (``true``)."""

    max_ulp: float | None = None
    allow: tuple[tuple[str, float], ...] = tuple(sorted(DEFAULT_ALLOW.items()))

    @staticmethod
    def build(max_ulp: float | None = None, allow: Mapping[str, Any] | None = None) -> Budget:
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
        return Budget(None if max_ulp is None else float(max_ulp), tuple(sorted(limits.items())))

    def violations(self, s: Summary) -> list[str]:
        """Why ``s`` is over this budget (empty when within it)."""
        out: list[str] = []
        if self.max_ulp is not None and s.ulp_count and s.ulp_max > self.max_ulp:
            out.append(f"max ulp {s.ulp_max:.6g} > {self.max_ulp:g}")
        inc = s.incidence
        for cat, limit in self.allow:
            count = inc.get(cat, 0)
            allowed = limit * s.n if 0 < limit < 1 else limit
            if count > allowed:
                out.append(f"{cat} {count} > {limit:g}" if limit >= 1 or limit == 0 else f"{cat} {count} > {limit:g} of {s.n}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "max_ulp": self.max_ulp,
            "allow": {k: (True if math.isinf(v) else (int(v) if v >= 1 or v == 0 else v)) for k, v in self.allow},
        }

    @staticmethod
    def from_json(d: Mapping[str, Any] | None) -> Budget:
        d = d or {}
        return Budget.build(d.get("max_ulp"), d.get("allow"))


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

    def __post_init__(self) -> None:
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
    def id(self) -> str:
        extra = "".join(f"-{k}={v}" for k, v in self.shown_params)
        return f"{self.oracle}[{self.impl}-{self.device}-{self.dtype}-{self.inputs}{extra}]"

    @property
    def key(self) -> tuple[str, str, str, str, str, str]:
        """How cells are matched across runs (baseline comparison, merging)."""
        params = ",".join(f"{k}={v}" for k, v in self.params)
        return (self.oracle, self.impl, self.dtype, self.device, self.inputs, params)

    def repro(self) -> str:
        """The command line that reproduces this cell."""
        parts = ["fpharness", "check", self.impl, "--oracle", self.oracle]
        if self.custom:
            parts += ["--framework", self.framework]
        parts += ["--dtype", self.dtype, "--device", self.device, "--inputs", self.inputs]
        for k, v in self.shown_params:
            parts += ["--param", f"{k}={v}"]
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
            "budget": s.budget.to_json(),
            "seconds": round(self.seconds, 4),
            "impl_seconds": round(self.impl_seconds, 6),
            "repro": s.repro(),
        }
        if self.profile is not None:
            out["profile"] = self.profile
        if self.summary is not None:
            out.update(self.summary.to_json())
        else:
            out.update({"n": 0, "correctly_rounded": 0, "ulp": None, "incidence": None, "worst": [], "examples": []})
        return out

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> CellResult:
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
        )
