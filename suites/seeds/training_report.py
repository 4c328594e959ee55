"""The training section of ``docs/seeds.md``: the model-level claims of seeds 001 and 002,
answered from ``fpharness train suites/seed_training.toml``'s results.

What each claim predicts is data (:data:`PREDICTS`); whether it holds, and every number
beside it, is read from the results file. A claim that a run goes NaN holds when the
low-precision run went non-finite; a claim that a fix works holds only when the fix
*removed* the cause (:func:`harness.judgement.training.fix_verdict`): a fix that is finite
but hides the cause, or that had nothing to fix in that run, does not prove it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.judgement.training import ScenarioResult, fix_verdict
from reports.training import departure_line, notes, short_number

__all__ = ["PREDICTS", "training_lines"]

#: what each scenario's claim predicts: "nonfinite" (the document says it goes NaN),
#: "finite" (it says the run is fine), "fix" (it says this change repairs what it ``fixes``)
PREDICTS: dict[str, str] = {
    "001-unscaled-log-loss": "finite",
    "001-unscaled-log-loss-init0": "finite",
    "001-unscaled-log-loss-clipvalue": "fix",
    "001-scaled-log-loss": "fix",
    "001-scaled-log-loss-mixed_float16": "nonfinite",
    "001-unscaled-mse": "nonfinite",
    "001-unscaled-mse-mixed_float16": "nonfinite",
    "001-unscaled-mse-float16": "nonfinite",
    "001-scaled-mse-float16": "fix",
    "002-relu-stack": "nonfinite",
    "002-relu-stack-mixed_float16": "nonfinite",
    "002-batchnorm-mixed_float16": "fix",
    "002-relu-stack-float16": "nonfinite",
    "002-batchnorm-float16": "fix",
    "002-relu-stack-float16-clipnorm": "fix",
    "002-variance": "nonfinite",
    "002-variance-eps": "fix",
    "002-variance-eps-mixed_float16": "fix",
}


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _first(r: ScenarioResult) -> str:
    f = r.first
    assert f is not None
    layer = "the weights" if f.stage == "update" else f"`{f.name}` ({f.kind})"
    kind = "NaN" if f.nan and not f.inf else "Inf" if f.inf and not f.nan else "NaN/Inf"
    made = "produced there" if f.produced else "propagated"
    shadow = "; the float64 shadow is finite there" if f.shadow_finite else "; **the float64 shadow is not finite either**"
    parted = r.parted_at
    before = f"; the losses were more than 1% apart from step {parted}" if parted is not None and parted < f.step else ""
    found = r.departure()
    if found is not None and found[0] < f.step:
        before += f"; {departure_line(found)}"
    return f"{kind} at step {f.step}, {layer}, {f.direction} ({f.tensor}), {made}: {f.cause}{shadow}{before}"


def _finite(r: ScenarioResult) -> str:
    final = r.final
    parts = [f"finite for {len(r.records)} steps"]
    if final is not None:
        rel = final.loss_rel
        parts.append(f"final loss {short_number(final.loss)} vs the shadow's {short_number(final.shadow_loss)}"
                     + ("" if rel is None else f" ({rel:.2%} apart)"))
    parts += notes(r)
    found = r.departure()
    if found is not None:
        parts.append(departure_line(found))
    return "; ".join(parts)


def measured(r: ScenarioResult) -> str:
    if r.status == "error":
        return f"error: {r.error}"
    return _first(r) if r.first is not None else _finite(r)


def _decide(r: ScenarioResult, by_name: Mapping[str, ScenarioResult]) -> tuple[str, str]:
    """(verdict, why) for the scenario's claim."""
    predicts = PREDICTS.get(r.name, "fix" if r.fixes else "")
    if r.status == "error":
        return "not run", r.error
    if predicts == "nonfinite":
        return ("holds" if r.first is not None else "**fails**"), ""
    if predicts == "finite":
        dead, _ = r.dead_steps
        if r.first is None and r.records and dead == len(r.records):
            return "**hides it**", "finite only because no gradient reaches the weights: the model never learns"
        return ("holds" if r.first is None else "**fails**"), ""
    if predicts == "fix" and r.fixes in by_name:
        v = fix_verdict(r, by_name[r.fixes])
        verdict = {"removed": "holds", "nothing": "untested", "error": "not run"}.get(v.outcome, "**fails**")
        return verdict, f"{v.outcome}: {v.reason}"
    return "–", ""


def training_lines(results: Mapping[str, Any], *, source: str = "results/seed_training.json") -> list[str]:
    """The Markdown lines of the training section for a results dict (schema 4)."""
    scenarios = [ScenarioResult.from_json(s) for s in results.get("scenarios", [])]
    by_name = {s.name: s for s in scenarios}
    lines = [
        "## The models in training (seeds 001 and 002)",
        "",
        "Seeds 001 and 002 make claims about whole models, not one operation: that a NaN loss comes from"
        " unscaled inputs or a missing epsilon, and that gradient clipping, input scaling, BatchNorm or mixed"
        " precision change that. Each model of the documents is trained by `fpharness train"
        " suites/seed_training.toml` under a precision policy, beside a float64 *shadow* run from the same"
        " initial weights on the same batches (README \"Training scenarios\"). A claim that a run goes NaN holds"
        " when the low-precision run went non-finite; a claim that a change fixes it holds only when the change"
        " *removed* the cause (finite, with no underflow and at least a bit of headroom where the original"
        " failed): a change that is finite but *hid* the cause, or had *nothing* to fix in that run, does not"
        " prove it.",
        "",
        "```",
        f"fpharness train suites/seed_training.toml --json {source}",
        f"python -m suites.seeds.report results/seeds.json --training {source} > docs/seeds.md",
        "```",
        "",
        "| seed | scenario | policy | claim | verdict | measured |",
        "|---|---|---|---|---|---|",
    ]
    for r in scenarios:
        seed = r.name.split("-", 1)[0]
        verdict, why = _decide(r, by_name)
        shown = measured(r) + (f". {'Fix: ' if r.fixes else ''}{why}" if why else "")
        fixes = f" (fixes `{r.fixes}`)" if r.fixes else ""
        lines.append(f"| {seed} | `{r.name}`{fixes} | {r.policy} | “{_md(r.claim)}” | {verdict} | {_md(shown)} |")
    lines += ["", *_notes(scenarios), ""]
    return lines


def _notes(scenarios: Sequence[ScenarioResult]) -> list[str]:
    """Each run's setup, so a reader can rerun one."""
    out = ["Setups (framework, optimizer, loss, steps × batch):", ""]
    for r in scenarios:
        backend = r.framework if r.backend in ("", r.framework) else f"{r.framework}/{r.backend}"
        note = f"; {r.note}" if r.note else ""
        out.append(f"- `{r.name}`: {backend}, {r.optimizer}, loss {r.loss}, {r.steps} × {r.batch_size}, seed {r.seed}"
                   f"{note}")
    return out
