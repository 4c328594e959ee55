"""``docs/seeds.md``: every seed implementation, its document's claim, and what a run measured.

::

    fpharness run suites/seeds.toml --json results/seeds.json
    python -m suites.seeds.report results/seeds.json > docs/seeds.md
    # with the models of seeds 001 and 002 trained (fpharness train suites/seed_training.toml):
    python -m suites.seeds.report results/seeds.json --training results/seed_training.json > docs/seeds.md

The claims are data in the seed modules (:data:`suites.seeds.SEEDS`); every number, every
"holds"/"fails" and every failing input is read from the results file, never typed. The
module only reads results: it runs nothing.

Where an implementation fails, the table shows where: from a cell's ``profile`` when the
results carry one (:mod:`harness.judgement.error_vs_input`: the input ranges of each incidence category),
otherwise from the first examples of each category that the results keep (exhaustive
inputs are in bit-pattern order, so those are the smallest failing magnitudes).

Gradient cells (``"pass": "grad"``: the VJP autodiff returns, judged against the oracle's
gradient) are kept apart from forward ones everywhere: forward claims and tables read
forward cells only, so the forward part of the page is the same with or without gradient
cells in the results. Each implementation gets a gradient subsection (its gradient claims,
where its gradient is NaN, Inf or zero and the mathematics' is not, with input ranges and
an example of what the truth is there, and the table of its gradient cells), and the page a
section on the backward pass that gathers them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.record.outputs import Input, Output, check_outputs
from harness.record.results import load_results
from oracles.atomic import atomic_write_text
from oracles.errors import UsageError
from oracles.registry import REGISTRY
from reports.labels import INCIDENCE_LABELS as LABELS
from reports.labels import cotangent, inputs_label, is_grad, subject
from suites.seeds import SEEDS
from suites.seeds.claims import CATEGORIES, Claim, Seed, SeedImpl
from suites.seeds.training_report import training_lines

__all__ = ["ClaimVerdict", "decide", "main", "render"]

DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32")
Cell = Mapping[str, Any]
#: failing inputs shown per category when the results carry no profile
MAX_EXAMPLES = 2


# -- deciding claims ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimVerdict:
    """A claim decided for one dtype: ``holds`` is None when no cell measured it.
    ``counts`` are the claim's categories, ``others`` what else the same cells showed."""

    dtype: str
    holds: bool | None
    counts: tuple[tuple[str, int], ...]
    max_ulp: float | None
    cells: int
    others: tuple[tuple[str, int], ...] = ()
    #: for a ``like`` claim: the reference's counts and max ULP on the same input sets
    versus: tuple[tuple[str, int], ...] | None = None
    versus_ulp: float | None = None
    #: for a ``like`` claim that fails: the input sets where it is worse, and how
    worse: tuple[str, ...] = ()

    def evidence(self) -> str:
        """``Inf! 1,998; max 2,047 ulp`` (the claim's own numbers, then the rest)."""
        if self.versus is not None:
            ref = dict(self.versus)
            own = [f"{LABELS[c]} {n:,} vs {ref.get(c, 0):,}" for c, n in self.counts]
            if self.max_ulp is not None:
                own.append(f"max {_ulp(self.max_ulp)} vs {_ulp(self.versus_ulp)} ulp")
        else:
            own = [f"{LABELS[c]} {n:,}" for c, n in self.counts]
            if self.max_ulp is not None:
                own.append(f"max {_ulp(self.max_ulp)} ulp")
        rest = [f"{LABELS[c]} {n:,}" for c, n in self.others if n]
        worse = f"; worse on {', '.join(self.worse)}" if self.worse else ""
        return "; ".join(own) + (f"; also {', '.join(rest)}" if rest else "") + worse

    def short(self) -> str:
        if self.holds is None:
            return "–"
        return ("holds" if self.holds else "**fails**") + f" ({self.evidence()})"

    def text(self) -> str:
        if self.holds is None:
            return "not measured"
        return ("**holds**" if self.holds else "**fails**") + f" ({self.evidence()})"


def _measured(cells: Iterable[Cell]) -> list[Cell]:
    return [c for c in cells if c["status"] in ("pass", "fail")]


def _key(c: Cell) -> tuple[str, str, str, str]:
    return (c["oracle"], c["inputs"], json.dumps(c.get("params") or {}, sort_keys=True), f"{subject(c)}:{cotangent(c)}")


def _max_ulp(cells: Iterable[Cell]) -> float | None:
    ulps = [float(c["ulp"]["max"]) for c in cells if (c.get("ulp") or {}).get("max") is not None]
    return max(ulps) if ulps else None


def _count(cells: Iterable[Cell], cat: str) -> int:
    return sum(int((c.get("incidence") or {}).get(cat, 0)) for c in cells)


def _decide_like(claim: Claim, dtype: str, mine: list[Cell], cells: Sequence[Cell]) -> ClaimVerdict:
    check = claim.check
    ref = {_key(c): c for c in _measured(cells) if c["impl"] == check.versus and c["dtype"] == dtype and check.judges(c)}
    pairs = [(c, ref[_key(c)]) for c in mine if _key(c) in ref]
    if not pairs:
        return ClaimVerdict(dtype, None, (), None, 0)
    worse: list[str] = []
    for c, r in pairs:
        why = [
            f"{LABELS[cat]} {_count([c], cat):,} vs {_count([r], cat):,}"
            for cat in check.categories if _count([c], cat) > _count([r], cat)
        ]
        ulp_c, ulp_r = _max_ulp([c]) or 0.0, _max_ulp([r]) or 0.0
        if check.max_ulp is not None and ulp_c > ulp_r + check.max_ulp:
            why.append(f"max {_ulp(ulp_c)} vs {_ulp(ulp_r)} ulp")
        if why:
            worse.append(f"{c['inputs']}{_params(c)} ({', '.join(why)})")
    ours, theirs = [c for c, _ in pairs], [r for _, r in pairs]
    return ClaimVerdict(
        dtype, not worse, tuple((cat, _count(ours, cat)) for cat in check.categories),
        _max_ulp(ours) if check.max_ulp is not None else None, len(pairs), (),
        tuple((cat, _count(theirs, cat)) for cat in check.categories), _max_ulp(theirs), tuple(worse),
    )


def decide(claim: Claim, impl: str, dtype: str, cells: Sequence[Cell]) -> ClaimVerdict:
    """Decide ``claim`` about ``impl`` in ``dtype`` from result cells (see claims.py)."""
    check = claim.check
    mine = _measured(c for c in cells if c["impl"] == impl and c["dtype"] == dtype and check.judges(c))
    if not mine:
        return ClaimVerdict(dtype, None, (), None, 0)
    if check.expect == "like":
        return _decide_like(claim, dtype, mine, cells)
    totals = {cat: _count(mine, cat) for cat in CATEGORIES}
    counts = tuple((cat, totals[cat]) for cat in check.categories)
    others = tuple((cat, n) for cat, n in totals.items() if cat not in check.categories)
    max_ulp = _max_ulp(mine)
    if check.expect == "defect":
        holds = any(n for _, n in counts)
    else:
        holds = not any(n for _, n in counts)
        if check.max_ulp is not None and max_ulp is not None:
            holds = holds and max_ulp <= check.max_ulp
    shown_ulp = max_ulp if check.max_ulp is not None else None
    return ClaimVerdict(dtype, holds, counts, shown_ulp, len(mine), others)


# -- formatting -----------------------------------------------------------------------------


def _ulp(value: float | None) -> str:
    if value is None:
        return "–"
    if value == 0:
        return "0"
    if value < 10:
        return f"{value:.3g}"
    if value < 1e6:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _num(text: str) -> str:
    """An input value as the results store it (repr of a float), shortened for a table."""
    try:
        v = float(text)
    except ValueError:
        return text
    if v != v or v in (float("inf"), float("-inf")):
        return text
    return f"{v:.6g}"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _params(cell: Cell, seed_oracles: frozenset[str] = frozenset()) -> str:
    """Parameters worth showing: all of a seed oracle's (its constants are the point),
    only non-default ones of a catalogue oracle, never ``reduction=none``."""
    name = cell["oracle"]
    defaults = {p.name: p.default for p in REGISTRY.get(name).params} if name in REGISTRY else {}
    params = {
        k: v for k, v in (cell.get("params") or {}).items()
        if not (k == "reduction" and v == "none") and (name in seed_oracles or defaults.get(k) != v)
    }
    if not params:
        return ""
    return "(" + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items())) + ")"


def _arg_names(cell: Cell) -> tuple[str, ...] | None:
    """The names of a gradient example's inputs: the oracle's real arguments (an element of
    each), then the cotangent; None for forward cells and oracles this build does not know."""
    name = cell["oracle"]
    if not is_grad(cell) or name not in REGISTRY:
        return None
    return (*(a.name for a in REGISTRY.get(name).real_args), "cotangent")


def _example_inputs(example: Mapping[str, Any], cell: Cell | None = None) -> str:
    values = [_num(v) for v in example.get("input_values", [])]
    row = example.get("row")
    names = _arg_names(cell) if cell is not None else None
    if names is not None and len(names) == len(values):
        # a gradient: name each value; an all-ones cotangent is left out (it is 1 everywhere)
        pairs = [f"{n}={v}" for n, v in zip(names, values, strict=True)]
        shown = pairs[:-1] if cotangent(cell or {}) == "ones" else [*pairs[:-1], f"cot={values[-1]}"]
        return (f"row {row}: " if row is not None else "") + ", ".join(shown)
    if row is not None and example.get("col") is None:
        # a row-reducing oracle: the first entries of the row's first argument
        return f"row {row} [{', '.join(values[:3])}{', …' if len(values) > 3 else ''}]"
    if row is not None:
        return f"row {row}: " + ", ".join(values)
    return ", ".join(values)


def _profile_ranges(cell: Cell, category: str, limit: int = 4, name: str = "x", precise: bool = False) -> str | None:
    """The input ranges of ``category`` from a cell's ``profile`` (harness/judgement/error_vs_input.py,
    version 1: per category ``[bucket, count, x_lo, x_hi]`` rows over ordinal buckets), along
    the first argument, called ``name``. Adjacent buckets merge into one range; None when the
    cell has no such profile. ``precise``: a range whose ends read the same at 6 digits
    (``0.99999994 ≤ p ≤ 1``) is written with 9."""
    profile = cell.get("profile")
    if not isinstance(profile, Mapping) or profile.get("version") != 1:
        return None
    rows = (profile.get("incidence") or {}).get(category)
    if not rows:
        return None
    bins = int(profile.get("bins", 0))
    special = {-1: f"{name} = -inf", bins: f"{name} = +inf", bins + 1: f"{name} = NaN"}
    ranges: list[list[Any]] = []  # [first bucket, last bucket, count, x_lo, x_hi]
    for bucket, count, x_lo, x_hi in sorted(rows, key=lambda r: int(r[0])):
        bucket = int(bucket)
        last = ranges[-1] if ranges else None
        if last is not None and bucket not in special and last[1] == bucket - 1 and last[1] not in special:
            last[1], last[2], last[4] = bucket, last[2] + int(count), x_hi
        else:
            ranges.append([bucket, bucket, int(count), x_lo, x_hi])
    texts = []
    for first, _last, count, x_lo, x_hi in ranges:
        if first in special:
            where = special[first]
        elif x_lo == x_hi:
            exact = precise and float(_num(str(x_lo))) != float(x_lo)  # 1.0000001 is not 1
            where = f"{name} = {float(x_lo):.9g}" if exact else f"{name} = {_num(str(x_lo))}"
        elif precise and _num(str(x_lo)) == _num(str(x_hi)):
            where = f"{float(x_lo):.9g} ≤ {name} ≤ {float(x_hi):.9g}"
        else:
            where = f"{_num(str(x_lo))} ≤ {name} ≤ {_num(str(x_hi))}"
        texts.append(f"{where} ({count:,})")
    more = f", … {len(texts) - limit} more ranges" if len(texts) > limit else ""
    return ", ".join(texts[:limit]) + more


def _reduced(cell: Cell) -> bool:
    return str((cell.get("params") or {}).get("reduction", "none")) != "none"


def _got_want(e: Mapping[str, Any]) -> str:
    return f"got {_num(e['got_value'])}, want {_num(e['want_value'])}"


def _category_where(cell: Cell, cat: str) -> str | None:
    """Where ``cat`` occurs in ``cell``: its profile ranges, else its first examples; for a
    gradient cell followed by one example of what the truth is there. None if nowhere shown."""
    inc = cell.get("incidence") or {}
    grad = is_grad(cell)
    names = _arg_names(cell)
    examples = [e for e in cell.get("examples", []) if e.get("category") == cat]
    if grad:  # a gradient's examples often repeat an input (p = y = 1 in a batch): show each once
        examples = list({_example_inputs(e, cell): e for e in reversed(examples)}.values())[::-1]
    ranges = _profile_ranges(cell, cat, name=names[0] if names else "x", precise=grad)
    if ranges is not None:
        if grad and examples:
            return f"{LABELS[cat]} {ranges}, e.g. {_example_inputs(examples[0], cell)}: {_got_want(examples[0])}"
        return f"{LABELS[cat]} {ranges}"
    shown = examples[:MAX_EXAMPLES]
    if not shown:
        return None
    if grad:
        first = "; ".join(f"{_example_inputs(e, cell)} ({_got_want(e)})" for e in shown)
    else:
        first = "; ".join(_example_inputs(e) for e in shown)
    more = ", …" if int(inc.get(cat, 0)) > len(shown) else ""
    return f"{LABELS[cat]} first at {first}{more}"


def _where(cell: Cell) -> str:
    """Where each failing category occurs: a profile range or the first examples."""
    parts: list[str] = []
    inc = cell.get("incidence") or {}
    if _reduced(cell) and not is_grad(cell):
        # one value for the whole batch: an example's "input" is only its first element
        # (a gradient of a reduced loss still has one value per input element)
        return ""
    for cat in CATEGORIES:
        if cat == "inherent_inf" or not inc.get(cat):
            continue
        text = _category_where(cell, cat)
        if text is not None:
            parts.append(text)
    worst = cell.get("worst") or []
    if worst and worst[0].get("ulp"):
        w = worst[0]
        parts.append(f"worst {_ulp(w['ulp'])} ulp at {_example_inputs(w, cell)}: {_got_want(w)}")
    return "<br>".join(_md(p) for p in parts)


def _judged(cell: Cell, seed_oracles: frozenset[str]) -> str:
    """The first column: the oracle (or the gradient's subject) and its parameters."""
    return f"`{subject(cell)}`{_md(_params(cell, seed_oracles))}"


def _cell_row(cell: Cell, seed_oracles: frozenset[str] = frozenset()) -> str:
    inc = cell.get("incidence") or {}
    ulp = cell.get("ulp") or {}
    status = cell["status"]
    inputs = _md(inputs_label(cell))
    if status in ("error", "skipped", "unsupported"):
        reason = _md(cell.get("reason") or "")
        lead = f"| {_judged(cell, seed_oracles)} | {inputs} | {cell['dtype']} | {cell['device']}"
        return f"{lead} | {status}: {reason} |" + " |" * 9
    counts = " | ".join(f"{int(inc.get(c, 0)):,}" if inc.get(c) else "·" for c in CATEGORIES)
    out = f" (out {cell['out_dtype']})" if cell.get("out_dtype") and cell["out_dtype"] != cell["dtype"] else ""
    return (
        f"| {_judged(cell, seed_oracles)} | {inputs} | {cell['dtype']}{out} | {cell['device']} | {status} "
        f"| {int(cell.get('n', 0)):,} | {_ulp(ulp.get('max'))} | {counts} | {_where(cell)} |"
    )


_TABLE_HEAD = (
    "| judged against | inputs | dtype | device | status | n | max ulp | "
    + " | ".join(LABELS[c] for c in CATEGORIES)
    + " | where |\n|"
    + "---|" * (8 + len(CATEGORIES))
)

#: what a gradient summary lists: every category in which the gradient differs in kind from
#: the mathematics' (a number, NaN, an infinity or zero where the truth is something else)
GRAD_DEFECTS: tuple[str, ...] = ("unexpected_nan", "unexpected_inf", "lost_to_zero", "missing_nan", "missing_inf")


def _dtype_key(c: Cell) -> tuple[int, str, str, str, str]:
    order = {d: i for i, d in enumerate(DTYPES)}
    return (order.get(c["dtype"], 9), c["oracle"], subject(c), inputs_label(c), c["device"])


# -- rendering ------------------------------------------------------------------------------


def _claim_lines(impl: SeedImpl, claims: Iterable[Claim], cells: Sequence[Cell]) -> list[str]:
    out = []
    for claim in claims:
        out.append(f"- Claim: “{_md(claim.quote)}” — {claim.meaning}. Decided by: {claim.check.describe()}.")
        for dtype in DTYPES:
            out.append(f"  - {dtype}: {decide(claim, impl.impl, dtype, cells).text()}")
    return out


def _impl_section(
    seed: Seed, impl: SeedImpl, cells: Sequence[Cell], show_skipped: bool, with_grad: bool = True
) -> list[str]:
    out = [f"### {impl.label}" + (" (built-in)" if impl.builtin else ""), ""]
    out.append(f"`{impl.impl}` computes `{_md(impl.code)}`.")
    out.append("")
    forward = [c for c in impl.claims if not c.check.wrt]
    out += _claim_lines(impl, forward, cells)
    if not forward:
        out.append("- No claim: shown for comparison.")
    mine = sorted((c for c in cells if c["impl"] == impl.impl and not is_grad(c)), key=_dtype_key)
    if not show_skipped:
        mine = [c for c in mine if c["status"] != "skipped"]
    out.append("")
    if mine:
        seed_oracles = frozenset(seed.oracles)
        out += [_TABLE_HEAD, *(_cell_row(c, seed_oracles) for c in mine)]
    else:
        out.append("_No cell of this implementation in the results._")
    out.append("")
    # results without a gradient cell (a forward-only run, a schema-1 file) get the page they always did
    return out + (_grad_section(seed, impl, cells, show_skipped) if with_grad else [])


def _broken(cell: Cell) -> bool:
    inc = cell.get("incidence") or {}
    return cell["status"] in ("pass", "fail") and any(inc.get(c) for c in GRAD_DEFECTS)


def _grad_section(seed: Seed, impl: SeedImpl, cells: Sequence[Cell], show_skipped: bool) -> list[str]:
    """The implementation's backward pass: its gradient claims, where the gradient breaks and
    the mathematics' does not (from each cell's profile or examples, with what the truth is
    there), and the table of its gradient cells."""
    grads = sorted((c for c in cells if c["impl"] == impl.impl and is_grad(c)), key=_dtype_key)
    if not show_skipped:
        grads = [c for c in grads if c["status"] != "skipped"]
    claims = [c for c in impl.claims if c.check.wrt]
    if not grads and not claims and not impl.grad_note:
        return []
    out = [f"#### {impl.label}: the gradient", ""]
    if impl.grad_note:
        out += [_md(impl.grad_note), ""]
    out += _claim_lines(impl, claims, cells)
    if not grads:
        return [*out, "", "_No gradient cell of this implementation in the results._", ""]
    broken = [c for c in grads if _broken(c)]
    if broken:
        out.append(
            "- Where the gradient is NaN, Inf or zero and the mathematics' is not"
            " (or a number where it is NaN or ±inf):"
        )
        for c in broken:
            found = [cat for cat in GRAD_DEFECTS if c["incidence"].get(cat)]
            parts = [t for t in (_category_where(c, cat) for cat in found) if t]
            where = "; ".join(parts) or ", ".join(f"{LABELS[cat]} {int(c['incidence'][cat]):,}" for cat in found)
            judged = f"`{subject(c)}`{_md(_params(c, frozenset(seed.oracles)))}"
            out.append(f"  - {judged} {c['dtype']}, {_md(inputs_label(c))}: {_md(where)}")
    else:
        out.append("- The gradient is NaN, Inf or zero only where the mathematics' is, in every gradient cell.")
    seed_oracles = frozenset(seed.oracles)
    return [*out, "", _TABLE_HEAD, *(_cell_row(c, seed_oracles) for c in grads), ""]


def _overview(seeds: Sequence[Seed], cells: Sequence[Cell], *, grad: bool = False) -> list[str]:
    out = [
        "| seed | implementation | claim | " + " | ".join(DTYPES) + " |",
        "|---|---|---|" + "---|" * len(DTYPES),
    ]
    for seed in seeds:
        for impl in seed.impls:
            for claim in impl.claims:
                if bool(claim.check.wrt) != grad:
                    continue
                marks = [decide(claim, impl.impl, d, cells).short() for d in DTYPES]
                what = f"“{_md(claim.quote)}”" + (f" (`{claim.check.subject}`)" if grad else "")
                out.append(f"| {seed.number} | {_md(impl.label)} | {what} | " + " | ".join(marks) + " |")
    return out


def _grad_counts(cells: Sequence[Cell]) -> str:
    """``NaN! 12,917; →0 3`` over gradient cells, or ``none`` / ``–`` (no cell)."""
    measured = _measured(cells)
    if not measured:
        return "–"
    shown = [f"{LABELS[cat]} {n:,}" for cat in GRAD_DEFECTS if (n := _count(measured, cat))]
    return "; ".join(shown) if shown else "none"


def _grad_overview(seeds: Sequence[Seed], cells: Sequence[Cell]) -> list[str]:
    """One row per implementation and gradient subject: the elements, over every input set,
    where the gradient differs in kind from the mathematics'."""
    out = [
        "| seed | implementation | gradient judged against | " + " | ".join(DTYPES) + " |",
        "|---|---|---|" + "---|" * len(DTYPES),
    ]
    for seed in seeds:
        for impl in seed.impls:
            grads = [c for c in cells if c["impl"] == impl.impl and is_grad(c)]
            for subj in dict.fromkeys(subject(c) for c in grads):
                mine = [c for c in grads if subject(c) == subj]
                marks = [_grad_counts([c for c in mine if c["dtype"] == d]) for d in DTYPES]
                out.append(f"| {seed.number} | {_md(impl.label)} | `{subj}` | " + " | ".join(marks) + " |")
    return out


def _backward_lines(seeds: Sequence[Seed], cells: Sequence[Cell]) -> list[str]:
    grads = [c for c in cells if is_grad(c)]
    if not grads:
        return []
    others = sorted({f"`{subject(c)}`" for c in grads if cotangent(c) != "ones"})
    cots = (
        "cotangent all ones, what `loss.backward()` sends"
        + (f"; other cotangents for {', '.join(others)}, as the tables say" if others else "")
    )
    return [
        "## The backward pass",
        "",
        "Every case of the suite also judges the gradient: the vector-Jacobian product the"
        f" framework's autodiff returns for the implementation ({cots}), against the correctly"
        " rounded gradient of the same mathematics: `∂softplus` is the sigmoid,"
        " `∂binary_cross_entropy/∂p` is `(p - y) / (p (1 - p))`."
        " The seed modules register the gradients of their own oracles. At a clip bound the"
        " truth is the one-sided derivative from inside the clipped range, and strictly outside"
        " it is 0 (`suites/seeds/clipping.py` says why); NaN where the mathematics is undefined"
        " (outside the domain, a constant row divided by its zero variance); the signed infinity"
        " at a pole.",
        "",
        "Against the function the author meant, a clip's zero gradient shows as `→0` (or `noInf`"
        " where that gradient overflows); against the clipped function it is the truth.",
        "",
        "### Which gradient claims hold",
        "",
        *_overview(seeds, cells, grad=True),
        "",
        "### Where each gradient differs in kind from the mathematics'",
        "",
        "Elements, over every input set of the dtype, where the gradient is NaN (`NaN!`), an"
        " infinity (`Inf!`) or zero (`→0`) and the truth is not, or a number where the truth is"
        " NaN (`noNaN`) or rounds to ±inf (`noInf`); `none`: no such element. Each"
        " implementation's section below says where.",
        "",
        *_grad_overview(seeds, cells),
        "",
    ]


def _run_lines(run: Mapping[str, Any]) -> list[str]:
    fws = ", ".join(f"{k} {v}" for k, v in sorted((run.get("frameworks") or {}).items()) if v)
    devices = sorted({f"{dev} ({name})" for d in (run.get("devices") or {}).values() for dev, name in d.items()})
    return [
        f"- run: {run.get('started', '?')} to {run.get('finished', '?')} on {run.get('host', '?')},"
        f" fpharness {run.get('fpharness', '?')}, git {str(run.get('git_commit') or '?')[:12]}",
        f"- frameworks: {fws or 'none'}",
        f"- devices: {', '.join(devices) or 'none'}",
    ]


def render(results: Mapping[str, Any], seeds: Sequence[Seed] | None = None, *, source: str = "results/seeds.json") -> str:
    """The Markdown of docs/seeds.md for a results dict (schema 1 or 2)."""
    if seeds is None:
        seeds = SEEDS
    cells: list[Cell] = list(results.get("cells", []))
    skipped = [c for c in cells if c["status"] == "skipped"]
    ran_cuda = any(c["device"] == "cuda" and c["status"] != "skipped" for c in cells)
    lines = [
        "# The seed documents, judged",
        "",
        "<!-- Generated by `python -m suites.seeds.report " + source + "`; do not edit by hand. -->",
        "",
        "Every implementation in the five seed documents (`shared/seeds/*.txt`), run by"
        " `fpharness run suites/seeds.toml` and judged against what its author meant, with the"
        " framework built-ins the documents compare it with. Regenerate this page with:",
        "",
        "```",
        f"fpharness run suites/seeds.toml --json {source}",
        f"python -m suites.seeds.report {source} > docs/seeds.md",
        "```",
        "",
        *_run_lines(results.get("run") or {}),
        "",
        "## How to read it",
        "",
        "Each implementation is judged against the mathematics its author intended (softplus,"
        " binary cross-entropy, x / var(x), -log p, ...). Where a fix changes the function (a clip,"
        " an epsilon) it is judged a second time against the modified function (`clipped_neg_log`,"
        " `variance_normalize_eps`, ...): against the first, `noInf`/`noNaN` show where the fix"
        " changes the answer; against the second, ULP errors, `Inf!` and `→0` show whether the"
        " arithmetic computes the fix.",
        "",
        "- `NaN!` unexpected NaN (the truth is a number); `noNaN` a number where the truth is NaN;",
        f"  `Inf!` an infinity the truth does not round to; `{LABELS['inherent_inf']}` an infinity that *is* the truth",
        "  rounded (correct, shown for information); `noInf` a finite value where the truth rounds to",
        "  an infinity; `→0` zero where the truth rounds to a non-zero value.",
        "- max ulp: the largest |computed − exact| / ulp(exact) over the elements where both are finite.",
        "- where: the input range of each category when the results carry a profile, otherwise the"
        " first inputs of each category (in bit-pattern order for exhaustive inputs: the smallest"
        " failing magnitudes) and the worst ULP error.",
        "- A claim *holds* or *fails* per dtype by the rule printed under it, decided over every"
        " cell of that dtype judged against the named oracle.",
        "- Gradients: a cell judged against `∂oracle` (`∂oracle/∂p` for an oracle of several"
        " arguments) judges the backward pass, against the oracle's correctly rounded gradient"
        " (see *The backward pass*); the forward claims and tables read forward cells only.",
    ]
    if skipped and not ran_cuda:
        reasons = sorted({c.get("reason", "") for c in skipped})
        grad_skipped = sum(1 for c in skipped if is_grad(c))
        counted = f"{len(skipped) - grad_skipped} cells"
        if grad_skipped:
            counted += f" (and {grad_skipped:,} gradient cells)"
        lines.append(f"- {counted} were skipped and are not listed: {_md('; '.join(reasons))}.")
    lines += ["", "## Which claims hold", "", *_overview(seeds, cells), "", *_backward_lines(seeds, cells)]
    for seed in seeds:
        lines += [f"## {seed.number}: {_md(seed.title)}", "", f"Source: `shared/seeds/{seed.file}`; module `{seed.module}`."]
        if seed.oracles:
            lines.append("User oracles registered by the module: " + ", ".join(f"`{o}`" for o in seed.oracles) + ".")
        lines.append("")
        for impl in seed.impls:
            lines += _impl_section(seed, impl, cells, show_skipped=ran_cuda, with_grad=any(is_grad(c) for c in cells))
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m suites.seeds.report RESULTS.json [-o docs/seeds.md]``: exit 0, or 2 with
    one line when the results file is bad or ``-o`` cannot be written (a directory, the
    results file itself, a place nothing can be written), checked before anything is read."""
    parser = argparse.ArgumentParser(prog="python -m suites.seeds.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="a results file of `fpharness run suites/seeds.toml`")
    parser.add_argument("-o", "--output", help="write here instead of standard output")
    parser.add_argument("--training", metavar="RESULTS.json",
                        help="also answer the model-level claims of seeds 001 and 002 from a results file of "
                        "`fpharness train suites/seed_training.toml`")
    args = parser.parse_args(argv)

    try:
        if args.output:
            check_outputs([Output("-o", args.output, "seeds.md")], [Input("the results file", args.results)])
        load_results(args.results)  # checks the schema; the rendering reads the raw cells
        if args.training:
            load_results(args.training)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = json.loads(Path(args.results).read_text(encoding="utf-8"))
    text = render(data, source=args.results)
    if args.training:
        training = json.loads(Path(args.training).read_text(encoding="utf-8"))
        text = text.rstrip("\n") + "\n\n" + "\n".join(training_lines(training, source=args.training))
    if args.output:
        try:
            atomic_write_text(Path(args.output), text)
        except OSError as exc:
            print(f"error: -o {args.output!r}: cannot write it ({exc.strerror or exc})", file=sys.stderr)
            return 2
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
