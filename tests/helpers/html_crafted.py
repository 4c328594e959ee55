"""Crafted results for the HTML report tests (a helper, not tests).

Cells are judged for real (:func:`harness.judgement.summary.judge`) against a hand-built reference:
the truth is the input itself, so ``got = x + k ulp`` has an error of exactly k ULP, and
NaN/Inf/zero results are planted where a test wants them. Each elementwise cell also gets
the error profile the runner stores (:func:`harness.judgement.error_vs_input.batch_profile`). A tiny HTML
tree (stdlib ``html.parser``) lets the tests ask structural questions of the page.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.judgement.error_vs_input import batch_profile
from harness.judgement.summary import judge
from harness.plan.cells import Budget, CellResult, CellSpec
from harness.record.results import Results, RunInfo
from oracles.formats import Format, get_format
from oracles.reference import Reference

SCRIPT_IMPL = "<script>alert(1)</script>"

Mask = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.bool_]]


def _has_profile_field() -> bool:
    return any(f.name == "profile" for f in dataclasses.fields(CellResult))


@dataclass(frozen=True, slots=True)
class ProfiledCell(CellResult):
    """A CellResult that carries an error profile in its JSON (until CellResult has one)."""

    profile: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = CellResult.to_json(self)
        if self.profile is not None:
            out["profile"] = self.profile
        return out


def with_profile(cell: CellResult, profile: dict[str, Any] | None) -> CellResult:
    if _has_profile_field():
        return dataclasses.replace(cell, profile=profile)  # type: ignore[call-arg]
    return ProfiledCell(cell.spec, cell.status, cell.reason, cell.out_dtype, cell.summary, cell.seconds,
                        cell.impl_seconds, profile)


def _values(fmt: Format, step: int) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]:
    bits = fmt.all_bit_patterns()[::step]
    x = fmt.from_bits(bits)
    with np.errstate(invalid="ignore"):
        x64 = x.astype(np.float64)
    keep = np.isfinite(x64)
    return x[keep], x64[keep]


def _identity_reference(x64: npt.NDArray[np.float64], fmt: Format) -> Reference:
    mag = np.abs(x64)
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where(mag > 0, mag, 1.0)))
    exp = (np.maximum(e, fmt.emin) - fmt.precision + 1).astype(np.int32)
    exp[mag == 0] = fmt.emin - fmt.precision + 1
    return Reference(x64.copy(), np.ldexp(x64, -exp), np.zeros_like(x64), exp)


def judged_cell(
    impl: str,
    dtype: str = "float16",
    *,
    oracle: str = "softplus",
    framework: str = "numpy",
    device: str = "cpu",
    inputs: str = "exhaustive",
    ulps: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]] | None = None,
    inf: Mask | None = None,
    nan: Mask | None = None,
    zero: Mask | None = None,
    inherent: Mask | None = None,
    max_ulp: float | None = None,
    step: int = 8,
    profile: bool = True,
    custom: bool = False,
    seconds: float = 0.25,
) -> CellResult:
    """A judged elementwise cell over every ``step``-th finite value of ``dtype``: errors of
    ``ulps(x)`` ULP (integers), Inf/NaN/0 results where the masks say; ``inherent`` marks
    where the truth itself overflows (and the result is Inf, correctly)."""
    fmt = get_format(dtype)
    x, x64 = _values(fmt, step)
    ref = _identity_reference(x64, fmt)
    got64 = x64 + (ulps(x64) if ulps else 0.0) * np.ldexp(1.0, ref.ulp_exp.astype(np.int64))
    for mask, value in ((inf, np.inf), (nan, np.nan), (zero, 0.0)):
        if mask is not None:
            got64 = np.where(mask(x64), value, got64)
    if inherent is not None:
        m = inherent(x64)
        ref = Reference(np.where(m, np.inf, ref.want), np.where(m, np.inf, ref.hi), ref.lo, ref.ulp_exp)
        got64 = np.where(m, np.inf, got64)
    with np.errstate(over="ignore"):
        got = got64.astype(fmt.dtype)
    bits = fmt.to_bits(x)

    def describe(i: int) -> tuple[tuple[str, ...], tuple[str, ...], int | None, int | None]:
        return (fmt.hex_of_bits(int(bits[i])),), (repr(float(x64[i])),), None, None

    summary = judge(ref, got, fmt, describe=describe)
    spec = CellSpec(oracle, impl, framework, dtype, device, inputs, budget=Budget.build(max_ulp), custom=custom)
    violations = spec.budget.violations(summary)
    cell = CellResult(spec, "fail" if violations else "pass", "; ".join(violations), dtype, summary,
                      seconds=seconds, impl_seconds=seconds / 10)
    return with_profile(cell, batch_profile(x64, ref, got, fmt) if profile else None)


def rowwise_cell(impl: str, dtype: str = "float16") -> CellResult:
    """A log_softmax cell: judged, with row/column examples and no profile (not elementwise)."""
    fmt = get_format(dtype)
    x, x64 = _values(fmt, 64)
    x, x64 = x[: (x.size // 10) * 10], x64[: (x64.size // 10) * 10]
    ref = _identity_reference(x64, fmt)
    got = (x64 + 3.0 * np.ldexp(1.0, ref.ulp_exp.astype(np.int64))).astype(fmt.dtype)
    bits = fmt.to_bits(x)

    def describe(i: int) -> tuple[tuple[str, ...], tuple[str, ...], int | None, int | None]:
        row, col = divmod(i, 10)
        return (fmt.hex_of_bits(int(bits[i])),), (repr(float(x64[i])),), row, col

    summary = judge(ref, got, fmt, describe=describe)
    spec = CellSpec("log_softmax", impl, impl.split(".")[0], dtype, "cpu", "random:100")
    return CellResult(spec, "pass", "", dtype, summary, seconds=0.1)


def other_cell(impl: str, status: str, reason: str, *, dtype: str = "float16", device: str = "cpu",
               oracle: str = "softplus") -> CellResult:
    spec = CellSpec(oracle, impl, impl.split(".")[0], dtype, device, "exhaustive")
    return CellResult(spec, status, reason)


def run_info(started: str = "2026-01-01T00:00:00+00:00", *, numpy: str = "2.0.0", torch: str | None = "2.3.0",
             host: str = "ci-runner-7") -> RunInfo:
    return RunInfo(
        started=started, finished=started.replace("T00:00:00", "T00:04:10"), host=host, python="3.11.7",
        platform="Linux-6.1-x86_64", fpharness="0.1.0", frameworks={"numpy": numpy, "torch": torch},
        devices={"numpy": {"cpu": "x86_64 CPU"}, "torch": {"cpu": "x86_64 CPU", "cuda": "NVIDIA H100 80GB HBM3"}},
        git_commit="0123456789abcdef0123456789abcdef01234567", seeds=(0, 7),
        command="fpharness run suites/frameworks.toml --json results/frameworks.json",
    )


def naive_softplus_like(dtype: str = "float16", *, impl: str = "naive.softplus", **kw: Any) -> CellResult:
    """Overflow to Inf from 11.09 up (as log(1 + exp(x)) does in float16), lost to zero
    below -17, errors growing to 2 ULP between."""
    return judged_cell(
        impl, dtype,
        ulps=lambda x: np.where((x > 1) & (x < 11), 2.0, np.where(x < -8, 40.0, 0.0)),
        inf=lambda x: (x > 11.09) & (x < 6e4), zero=lambda x: x < -17.3, inherent=lambda x: x >= 6e4, **kw,
    )


def suite_results() -> Results:
    """The cells most tests look at: two oracles, three dtypes x two devices, an error, a
    skip, a failing cell with every kind of badge, the ``<script>`` implementation."""
    cells = [
        judged_cell("numpy.logaddexp", "float16"),
        judged_cell("numpy.logaddexp", "bfloat16"),
        judged_cell("torch.softplus", "float16", framework="torch", ulps=lambda x: np.where((np.abs(x) < 1) & (np.abs(x) > 1e-3), 1.0, 0.0)),
        judged_cell("torch.softplus", "bfloat16", framework="torch", ulps=lambda x: np.where((x > 3) & (x < 1e4), 5.0, 0.0)),
        other_cell("torch.softplus", "skipped", "no CUDA device: torch 2.3.0 was built without CUDA", device="cuda"),
        naive_softplus_like("float16"),
        naive_softplus_like("bfloat16", profile=False),
        other_cell("boom.softplus", "error", "RuntimeError: kaboom <b>&</b> friends"),
        judged_cell(SCRIPT_IMPL, "float16", custom=True, nan=lambda x: x < -60000),
        judged_cell("numpy.expit", "float16", oracle="sigmoid", ulps=lambda x: np.where(x < -10, 70.0, 0.0)),
        rowwise_cell("torch.log_softmax"),
    ]
    return Results(run_info(), tuple(cells))


# -- a tiny HTML tree --------------------------------------------------------------------------

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self) -> Iterator[Node]:
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        return [
            n for n in self.iter()
            if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
            and all(n.attrs.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items())
        ]

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, cls, **attrs)
        assert found, f"no <{tag} class={cls} {attrs}>"
        return found[0]

    def text(self) -> str:
        return "".join(self.text_parts) + "".join(c.text() for c in self.children)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(Node("#text", {}, text_parts=[data]))


def cell_lines(td: Node) -> list[str]:
    """The text of a table cell, a string per line (its ``<br>`` break them)."""
    lines = [""]
    for n in td.children:
        if n.tag == "br":
            lines.append("")
        else:
            lines[-1] += n.text()
    return lines


def parse(html: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root
