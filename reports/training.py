"""Terminal views of training scenarios: the verdict per scenario, and one step's layers.

Per scenario: a heading (framework, policy, optimizer, loss, steps), then the verdict. A run
that went non-finite says where first (step, layer, forward or backward, produced or
propagated), the likely cause, whether the float64 shadow was finite there, and the command
that reruns it up to that step with the per-layer table. A finite run says how far it
drifted from the shadow. A scenario that ``fixes`` another says whether it removed the cause
or hid it (:func:`harness.judgement.training.fix_verdict`).

:func:`step_table` is that per-layer table: for one step, every layer's forward output and
backward gradients against the shadow's. Plain text, printed verbatim.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Sequence

from harness.judgement.training import FixVerdict, ScenarioResult, StepRecord, fix_verdict

__all__ = ["STAGE_LABELS", "departure_line", "fix_verdicts", "notes", "render_scenarios", "repro", "scenario_lines", "short_number", "step_table", "summary_lines"]

STAGE_LABELS = {"forward": "forward", "grad_input": "∂input", "grad_weights": "∂weights", "update": "update"}


def short_number(v: float | None, digits: int = 3) -> str:
    """A number, short: ``1.02e3``, ``0.5``, ``6``, ``inf``; ``–`` for none."""
    if v is None:
        return "–"
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    if 1e-2 <= abs(v) < 1e4:
        text = f"{v:.{digits}g}"
        return f"{v:.0f}" if "e" in text else text
    mantissa, _, exp = f"{v:.{digits - 1}e}".partition("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exp)}"


def _shown(path: str) -> str:
    if not path:
        return "SUITE.toml"
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


def repro(result: ScenarioResult, step: int) -> str:
    """The command that reruns ``result`` up to ``step`` and prints that step's layers (for
    a run from ``check_trains``, which has no suite file: the call that reruns it)."""
    if not result.suite:
        return f"check_trains(..., steps={step}) and read result.records[{step - 1}] (the step's layers)"
    return "fpharness train " + " ".join(shlex.quote(a) for a in (_shown(result.suite), "--scenario", result.name,
                                                                     "--step", str(step)))


def fix_verdicts(results: Sequence[ScenarioResult]) -> dict[str, FixVerdict]:
    """The fix verdict of every scenario whose ``fixes`` names another one present."""
    by_name = {r.name: r for r in results}
    return {r.name: fix_verdict(r, by_name[r.fixes]) for r in results if r.fixes and r.fixes in by_name}


def _heading(r: ScenarioResult) -> str:
    # the version names the backend too: "keras 3.15.1 (tensorflow 2.21.0)"
    return (f"{r.name}   {r.framework} {r.version}".rstrip() + f"   policy {r.policy}   {r.optimizer}   loss {r.loss}   "
            f"{r.steps} steps of {r.batch_size}")


def _loss_line(rec: StepRecord) -> str:
    rel = rec.loss_rel
    shown = "" if rel is None else f", {rel:.2%} apart"
    return f"step {rec.step}: loss {short_number(rec.loss)} (shadow {short_number(rec.shadow_loss)}{shown})"


def scenario_lines(r: ScenarioResult, fix: FixVerdict | None = None) -> list[str]:
    """The verdict of one scenario, as lines."""
    lines = [_heading(r)]
    if r.claim:
        lines.append(f"  claim: “{r.claim}”")
    first = r.first
    if r.status == "error":
        lines.append(f"  ERROR {r.error}")
        lines += ["    " + ln for ln in r.traceback.splitlines()[-4:]]
    if first is not None:
        what = "produced it" if first.produced else "propagated it (what went in was already non-finite)"
        layer = "the weights" if first.stage == "update" else f"layer {first.name} ({first.kind})"
        counts = "" if first.stage == "update" else f": {first.nan} NaN, {first.inf} Inf of {first.size} values"
        lines.append(f"  NON-FINITE first at step {first.step}, {layer}, {first.direction} ({first.tensor}){counts}; "
                     f"{what}")
        if first.cause:
            lines.append(f"    cause: {first.cause}")
        lines.append("    the float64 shadow is finite there" if first.shadow_finite
                     else "    the float64 shadow is not finite there either")
        parted = r.parted_at
        if parted is not None and parted < first.step:
            lines.append(f"    the two runs' losses were more than 1% apart from step {parted}")
        lines += _departure(r, before=first.step)
        lines.append(f"    repro: {repro(r, first.step)}")
        finite = [rec for rec in r.records if math.isfinite(rec.loss)]
        if finite and finite[-1].step < first.step:
            lines.append(f"    last finite loss: {_loss_line(finite[-1])}")
    elif r.status == "finite":
        final = r.final
        if final is not None:
            lines.append(f"  finite for {len(r.records)} steps; final {_loss_line(final)}")
            parted = r.parted_at
            bits = r.max_bits("forward")
            gbits = r.max_bits("grad_weights")
            lines.append("    " + "; ".join([
                "never more than 1% apart" if parted is None else f"losses more than 1% apart from step {parted}",
                f"worst forward bits of error (p99) {short_number(bits)}", f"weight gradients {short_number(gbits)}",
            ]))
            lines += _departure(r)
    lines += ["    " + note for note in notes(r)]
    if fix is not None:
        lines.append(f"  fix of {fix.base}: {fix.outcome.upper()} — {fix.reason}")
    return lines


def notes(r: ScenarioResult) -> list[str]:
    """What a reader should know beside the verdict, a sentence each: the loss scale and the
    steps it skipped, the first value it absorbed, steps in which nothing learns, why the
    run stopped early, and the cautions on the comparison with the shadow."""
    out = []
    scales = [rec.loss_scale for rec in r.records if rec.loss_scale is not None]
    if scales:
        out.append(f"loss scale {short_number(scales[0])} → {short_number(scales[-1])} (lowest {short_number(min(scales))}); {r.skipped_steps} of "
                   f"{len(r.records)} step(s) skipped by the loss scaler")
    if r.absorbed is not None:
        a = r.absorbed
        layer = "the weights" if a.layer < 0 else f"{a.name} ({a.kind})"
        out.append(f"absorbed by the loss scaler: first non-finite at step {a.step}, {layer}, {a.direction} "
                   f"({a.tensor})" + (f": {a.cause}" if a.cause else ""))
    dead, shadow_dead = r.dead_steps
    if dead:
        also = "the shadow's too" if shadow_dead == dead else f"the shadow's in {shadow_dead}"
        out.append(f"every weight gradient is exactly 0 in {dead} of {len(r.records)} steps ({also}): "
                   "the model does not learn there")
    if r.stopped:
        out.append(r.stopped)
    out += [f"caution: {c}" for c in r.cautions]
    return out


def _departure(r: ScenarioResult, *, before: int | None = None) -> list[str]:
    """Where the runs first parted (half the bits of a typical value wrong), if before ``before``."""
    found = r.departure()
    if found is None or (before is not None and found[0] >= before):
        return []
    return ["    " + departure_line(found)]


def departure_line(found: tuple[int, str, str, float, int]) -> str:
    """Where the runs part (:meth:`ScenarioResult.departure`), in words."""
    step, name, stage, rel, p = found
    shown = f"{rel:.2%}" if rel < 10 else short_number(rel)
    return (f"the runs part first at step {step}, {name} {STAGE_LABELS[stage]}: half its values have a relative "
            f"error of {shown} or more against the shadow's (fewer than {p / 2:g} of the compute format's {p} bits)")


def summary_lines(results: Sequence[ScenarioResult]) -> list[str]:
    """A line per scenario: its outcome in a few words, then the fixes' verdicts."""
    fixes = fix_verdicts(results)
    width = max((len(r.name) for r in results), default=0)
    out = []
    for r in results:
        if r.status == "error":
            text = f"error {r.error}"
        elif r.first is not None:
            f = r.first
            where = "weights (update)" if f.stage == "update" else f"{f.name} {STAGE_LABELS[f.stage]}"
            text = f"non-finite at step {f.step}, {where}, {'produced' if f.produced else 'propagated'}"
        else:
            drift = r.drift
            text = "finite" + ("" if drift is None else f", final loss {drift:.2%} from the shadow")
        if r.name in fixes:
            text += f"; fix of {fixes[r.name].base}: {fixes[r.name].outcome}"
        out.append(f"  {r.name.ljust(width)}  {r.policy:<14} {text}")
    return out


def step_table(r: ScenarioResult, step: int) -> list[str]:
    """Every layer's tensors at ``step`` against the shadow's, in the order they ran."""
    rec = next((x for x in r.records if x.step == step), None)
    if rec is None:
        return [f"{r.name}: no step {step} (the run recorded steps 1 to {len(r.records)})"]
    header = ("layer", "stage", "max |x|", "headroom", "→0", "NaN", "Inf", "rel p50", "rel p99", "bits p99", "")
    rows = []
    for e in rec.entries:
        name, kind = r.layers[e.layer] if e.layer < len(r.layers) else (str(e.layer), "")
        s = e.stats
        status = "" if not s.nonfinite else ("produced" if e.produced else "propagated")
        rows.append((f"{name} ({kind})", STAGE_LABELS[e.stage], short_number(s.max_abs),
                     "–" if s.headroom is None else f"{s.headroom:.1f}", str(s.underflow or ""), str(s.nan or ""),
                     str(s.inf or ""), short_number(s.rel_p50), short_number(s.rel_p99), short_number(s.bits_p99), status))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [f"step {step} of {r.name}: loss {short_number(rec.loss)}, shadow {short_number(rec.shadow_loss)}"
             + ("" if rec.loss_scale is None else f", loss scale {short_number(rec.loss_scale)}")
             + (", skipped by the loss scaler" if rec.skipped else "")]
    lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    lines += ["  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    for e in rec.entries:
        if e.cause:
            name = r.layers[e.layer][0] if e.layer < len(r.layers) else str(e.layer)
            lines.append(f"  {name} {STAGE_LABELS[e.stage]}: {e.cause}")
    lines.append("  headroom: log2(largest finite value / max |x|), bits before overflow; →0: zero here, not in the "
                 "shadow; bits: bits of error against the shadow")
    return lines


def render_scenarios(results: Sequence[ScenarioResult], *, step: int | None = None) -> str:
    """The whole terminal view: each scenario's verdict (and ``step``'s layers), then a summary."""
    fixes = fix_verdicts(results)
    blocks = []
    for r in results:
        lines = scenario_lines(r, fixes.get(r.name))
        if step is not None:
            lines += ["", *step_table(r, step)]
        blocks.append("\n".join(lines))
    if len(results) > 1:
        blocks.append("\n".join(["scenarios:", *summary_lines(results)]))
    return "\n\n".join(blocks)

