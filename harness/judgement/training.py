"""Judging a training run against its float64 shadow: per-step records and the verdict.

A low-precision run and its float64 shadow start from the same weights and see the same
batches, and then run freely. Each step, every layer's tensors are reduced to a
:class:`TensorStats` (how close to the format's largest value, how many values underflowed
to zero where the shadow's did not, how many are non-finite, how far from the shadow), and
the run's verdict names the first non-finite value: step, layer, forward or backward, and
whether that layer *produced* it (what went in was finite) or *propagated* it, with the
likely cause in plain words where the numbers tell it.

Stages of a step, in the order they run: ``forward`` (each layer's output, the loss last),
then backward from the loss to the first layer: ``grad_input`` (the gradient with respect
to the layer's input) and ``grad_weights`` (to its own weights), then ``update`` (what the
optimizer step changed each layer's weights by). Under loss scaling a non-finite gradient makes the
optimizer skip the step; such a value is *absorbed* (counted, not the verdict), because
that is how dynamic loss scaling finds its scale. A non-finite forward value or loss is
never absorbed: the step's loss is what the user sees.

*Bits of error* of a value: ``log2(|low - shadow| / |shadow|) + p`` clamped to ``[0, p]``
for a format of ``p`` significand bits: 0 is about one rounding, ``p`` means no correct
bit (a zero where the shadow is not, too).

This module is pure NumPy; it never imports a framework.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from oracles.formats import FORMATS as _FORMATS
from oracles.formats import Format, get_format

__all__ = [
    "STAGES",
    "Entry",
    "FirstNonFinite",
    "FixVerdict",
    "ScenarioResult",
    "StepRecord",
    "TensorStats",
    "compare_step",
    "first_nonfinite",
    "fix_verdict",
    "tensor_stats",
]

Array = npt.NDArray[np.float64]

#: the stages of a step, in the order they run (backward stages per layer, last layer first)
STAGES: tuple[str, ...] = ("forward", "grad_input", "grad_weights", "update")
#: the share of the shadow's loss by which the two runs' losses may differ before they
#: count as parted (see :attr:`ScenarioResult.parted_at`)
PART_REL = 0.01


def _num(v: float | None) -> float | str | None:
    """A float for JSON, which has no NaN or infinity: those become strings."""
    if v is None:
        return None
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def _unnum(v: Any) -> float | None:
    if v is None:
        return None
    return float(v)


@dataclass(frozen=True, slots=True)
class TensorStats:
    """One tensor of one step, against the shadow's same tensor."""

    size: int
    nan: int
    inf: int
    #: the largest finite magnitude (None when no value is finite)
    max_abs: float | None
    #: log2(largest finite value of the format / max_abs): bits of room before overflow
    #: (negative in the shadow's view means the shadow's value would not fit)
    headroom: float | None
    #: values that are zero here where the shadow's are not but below the format's smallest
    #: normal value (so rounding or flushing made them 0)
    underflow: int
    #: relative error against the shadow, over values finite in both with a non-zero shadow
    rel_p50: float | None = None
    rel_p99: float | None = None
    rel_max: float | None = None
    #: bits of error (module docstring), over values finite in both
    bits_p50: float | None = None
    bits_p99: float | None = None
    #: the shadow's largest finite magnitude, and its non-finite count
    shadow_max_abs: float | None = None
    shadow_nonfinite: int = 0
    #: significand bits of the tensor's format (the scale of the bits of error)
    precision: int = 0

    @property
    def nonfinite(self) -> int:
        return self.nan + self.inf

    @property
    def underflow_share(self) -> float:
        return self.underflow / self.size if self.size else 0.0

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"size": self.size, "nan": self.nan, "inf": self.inf}
        for key in ("max_abs", "headroom", "rel_p50", "rel_p99", "rel_max", "bits_p50", "bits_p99", "shadow_max_abs"):
            value = getattr(self, key)
            if value is not None:
                d[key] = _num(value)
        if self.underflow:
            d["underflow"] = self.underflow
        if self.shadow_nonfinite:
            d["shadow_nonfinite"] = self.shadow_nonfinite
        if self.precision:
            d["p"] = self.precision
        return d

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> TensorStats:
        return TensorStats(
            size=int(d["size"]), nan=int(d.get("nan", 0)), inf=int(d.get("inf", 0)),
            max_abs=_unnum(d.get("max_abs")), headroom=_unnum(d.get("headroom")), underflow=int(d.get("underflow", 0)),
            rel_p50=_unnum(d.get("rel_p50")), rel_p99=_unnum(d.get("rel_p99")), rel_max=_unnum(d.get("rel_max")),
            bits_p50=_unnum(d.get("bits_p50")), bits_p99=_unnum(d.get("bits_p99")),
            shadow_max_abs=_unnum(d.get("shadow_max_abs")), shadow_nonfinite=int(d.get("shadow_nonfinite", 0)),
            precision=int(d.get("p", 0)),
        )


def _quantile(values: Array, q: float) -> float | None:
    if values.size == 0:
        return None
    # "higher" picks an element: no interpolation between a finite value and a huge one
    return float(np.quantile(values, q, method="higher"))


def tensor_stats(low: Array, shadow: Array | None, fmt: Format, *, scale: float = 1.0) -> TensorStats:
    """Reduce one tensor of the low-precision run, in format ``fmt``, against the shadow's.
    ``scale`` is the factor the low tensor carries (a loss scale): headroom and non-finite
    counts are of the values as computed, errors of the values divided by ``scale``."""
    low = np.asarray(low, dtype=np.float64).ravel()
    finite = np.isfinite(low)
    nan = int(np.isnan(low).sum())
    inf = int(np.isinf(low).sum())
    max_abs = float(np.max(np.abs(low[finite]))) if finite.any() else None
    headroom = None
    if max_abs is not None:
        headroom = math.inf if max_abs == 0 else math.log2(fmt.largest / max_abs)
    if shadow is None or np.size(shadow) != low.size:
        return TensorStats(low.size, nan, inf, max_abs, _cap(headroom), 0, precision=fmt.precision)
    sh = np.asarray(shadow, dtype=np.float64).ravel()
    unscaled = low / scale if scale != 1.0 else low
    sh_finite = np.isfinite(sh)
    both = finite & sh_finite
    # underflow: a zero where the shadow's value is below the format's smallest normal (as
    # computed, scale included): rounding or flushing could make that 0; a zero where the
    # shadow has 0.3 is a departure (a ReLU that flipped), not an underflow
    underflow = int(((low == 0) & (sh != 0) & sh_finite & (np.abs(sh * scale) < fmt.smallest_normal)).sum())
    a, b = unscaled[both], sh[both]
    nonzero = b != 0
    rel = np.abs(a[nonzero] - b[nonzero]) / np.abs(b[nonzero])
    p = fmt.precision
    with np.errstate(divide="ignore"):
        bits_nz = np.clip(np.log2(rel) + p, 0.0, p) if rel.size else rel
    # a value the shadow has as zero: exact if zero here too, else no bit is right
    bits_zero = np.where(a[~nonzero] == 0, 0.0, float(p))
    bits = np.concatenate([bits_nz, bits_zero])
    sh_max = float(np.max(np.abs(sh[sh_finite]))) if sh_finite.any() else None
    return TensorStats(
        size=low.size, nan=nan, inf=inf, max_abs=max_abs, headroom=_cap(headroom), underflow=underflow,
        rel_p50=_quantile(rel, 0.5), rel_p99=_quantile(rel, 0.99), rel_max=float(rel.max()) if rel.size else None,
        bits_p50=_quantile(bits, 0.5), bits_p99=_quantile(bits, 0.99),
        shadow_max_abs=sh_max, shadow_nonfinite=int((~sh_finite).sum()), precision=fmt.precision,
    )


def _cap(headroom: float | None) -> float | None:
    # an all-zero tensor has infinite room; 1024 bits says so and stays a JSON number
    return None if headroom is None else min(headroom, 1024.0)


@dataclass(frozen=True, slots=True)
class Entry:
    """One layer's tensor at one stage of one step."""

    layer: int
    stage: str
    stats: TensorStats
    #: for a non-finite tensor: whether this layer made it (what it computed from was finite)
    produced: bool | None = None
    #: for a produced non-finite tensor: the likely cause, in words
    cause: str = ""

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"layer": self.layer, "stage": self.stage, **self.stats.to_json()}
        if self.produced is not None:
            d["produced"] = self.produced
        if self.cause:
            d["cause"] = self.cause
        return d

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Entry:
        if d["stage"] not in STAGES:
            raise ValueError(f"unknown stage {d['stage']!r}; one of {', '.join(STAGES)}")
        return Entry(layer=int(d["layer"]), stage=str(d["stage"]), stats=TensorStats.from_json(d),
                     produced=d.get("produced"), cause=str(d.get("cause", "")))


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One optimizer step of both runs."""

    step: int
    loss: float
    shadow_loss: float
    entries: tuple[Entry, ...]
    loss_scale: float | None = None
    skipped: bool = False
    weights_finite: bool = True
    shadow_weights_finite: bool = True

    @property
    def loss_rel(self) -> float | None:
        """|loss - shadow loss| / |shadow loss| (None unless both are finite and the shadow's is not 0)."""
        if not (math.isfinite(self.loss) and math.isfinite(self.shadow_loss)) or self.shadow_loss == 0:
            return None
        return abs(self.loss - self.shadow_loss) / abs(self.shadow_loss)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"step": self.step, "loss": _num(self.loss), "shadow_loss": _num(self.shadow_loss),
                             "entries": [e.to_json() for e in self.entries]}
        if self.loss_scale is not None:
            d["loss_scale"] = self.loss_scale
        if self.skipped:
            d["skipped"] = True
        if not self.weights_finite:
            d["weights_finite"] = False
        if not self.shadow_weights_finite:
            d["shadow_weights_finite"] = False
        return d

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> StepRecord:
        return StepRecord(
            step=int(d["step"]), loss=float(d["loss"]), shadow_loss=float(d["shadow_loss"]),
            entries=tuple(Entry.from_json(e) for e in d.get("entries", ())), loss_scale=_unnum(d.get("loss_scale")),
            skipped=bool(d.get("skipped", False)), weights_finite=bool(d.get("weights_finite", True)),
            shadow_weights_finite=bool(d.get("shadow_weights_finite", True)),
        )


# -- comparing one step ---------------------------------------------------------------------


def _finite(a: Array | None) -> bool:
    return a is None or bool(np.isfinite(a).all())


def _g(v: float) -> str:
    return f"{v:.6g}" if abs(v) < 1e7 or not math.isfinite(v) else f"{v:.3e}"


def _cause(low_in: Array | None, low_out: Array, sh_in: Array | None, sh_out: Array | None, fmt: Format,
           *, stage: str, kind: str, scale: float, forward: tuple[Array | None, Array | None] = (None, None)) -> str:
    """The likely cause of non-finite values in ``low_out`` that finite inputs produced.
    For a gradient, ``low_in``/``sh_in`` are the gradients that came in and ``forward``
    the layer's forward input in both runs (a prediction rounded to 1 shows there)."""
    out = np.asarray(low_out, dtype=np.float64).ravel()
    bad = ~np.isfinite(out)
    grad = stage != "forward"
    what = "gradient" if grad else "value"
    sh = None if sh_out is None or np.size(sh_out) != out.size else np.asarray(sh_out, dtype=np.float64).ravel()
    look_in, look_sh = (forward if grad else (low_in, sh_in))
    exact = _exact_inputs(look_in, look_sh, fmt, loss=kind == "loss")
    if sh is not None and not np.isfinite(sh[bad]).any():
        both = f"; {exact[1]}" if exact[1] else ""
        return (f"the float64 shadow is non-finite at the same {int(bad.sum())} place(s): the formula fails in "
                f"float64 as well, not only in {fmt.name}{both}")
    if sh is not None:
        magnitude = np.abs(sh[bad & np.isfinite(sh)]) * scale
        over = magnitude[magnitude >= fmt.overflow_threshold]
        if over.size and np.isinf(out[bad]).any():
            scaled = f" (the gradient carries the loss scale {scale:g})" if scale != 1.0 else ""
            return (f"overflow: max |{'∂' if grad else 'x'}| {_g(float(over.max()))} above {fmt.largest:g} "
                    f"in {fmt.name}{scaled}")
    if exact[0]:
        return exact[0] + ": a log of 0 or a division by 0 followed"
    big = ""
    if low_in is not None and np.size(low_in):
        big = f"; max |input| {_g(float(np.max(np.abs(np.asarray(low_in)))))}"
    if np.isnan(out[bad]).all():
        return f"NaN from finite inputs: an intermediate {what} overflowed or cancelled (inf - inf, 0 × inf, 0/0){big}"
    return f"an intermediate {what} overflowed inside the layer; the shadow's result fits in {fmt.name}{big}"


def _boundary_cause(sent: Array | None, fmt: Format, scale: float) -> str:
    biggest = float(np.max(np.abs(np.asarray(sent)))) if sent is not None and np.size(sent) else 0.0
    scaled = f" (it carries the loss scale {scale:g})" if scale != 1.0 else ""
    if biggest >= fmt.overflow_threshold:
        return (f"overflow converting the gradient from the layer after it to {fmt.name}: max |∂| {_g(biggest)} above "
                f"{fmt.largest:g}{scaled}")
    return f"the gradient from the layer after it became non-finite converting to {fmt.name}{scaled}"


def _exact_inputs(low_in: Array | None, sh_in: Array | None, fmt: Format, *, loss: bool) -> tuple[str, str]:
    """What the inputs say about a log of 0 or a division by 0: inputs that are exactly 0
    (and, for a loss, predictions exactly ±1, where ``1 - p`` is 0) here but not in the
    shadow (rounding made them), and those exact in both runs (the formula's own)."""
    if low_in is None or sh_in is None or np.size(low_in) != np.size(sh_in):
        return "", ""
    li = np.asarray(low_in, dtype=np.float64).ravel()
    si = np.asarray(sh_in, dtype=np.float64).ravel()
    rounded: list[str] = []
    both: list[str] = []
    to_zero = (li == 0) & (si != 0) & np.isfinite(si)
    if loss:
        to_one = (np.abs(li) == 1) & (np.abs(si) != 1) & np.isfinite(si)
        if to_one.any():
            near = float(si[to_one][np.argmin(np.abs(1 - np.abs(si[to_one])))])
            rounded.append(f"{int(to_one.sum())} prediction(s) rounded to 1 (shadow e.g. {near!r}), so 1 - p is 0")
        ones = (np.abs(li) == 1) & (np.abs(si) == 1)
        if ones.any():
            both.append(f"{int(ones.sum())} prediction(s) are exactly 1 in both runs, so log(1 - p) is log 0")
    if to_zero.any():
        tiny = float(np.min(np.abs(si[to_zero])))
        if tiny < fmt.smallest_normal:
            rounded.append(f"{int(to_zero.sum())} input(s) underflowed to 0 (shadow as small as {tiny:.3g})")
        else:
            # no rounding makes 0 of 0.4: the two runs had parted before this layer
            rounded.append(f"{int(to_zero.sum())} input(s) are 0 where the shadow's are at least {tiny:.3g} (the "
                           "runs had already parted: see the earlier steps)")
    zeros = (li == 0) & (si == 0)
    if zeros.any() and loss:
        both.append(f"{int(zeros.sum())} prediction(s) are exactly 0 in both runs")
    return "; ".join(rounded), "; ".join(both)


def compare_step(low: Any, shadow: Any, *, compute: str, variables: str, loss_dtype: str) -> StepRecord:
    """Reduce one step of both runs (two :class:`~harness.frameworks.training.StepTensors`)
    to a :class:`StepRecord`. ``compute``/``variables``/``loss_dtype`` name the formats of
    the low-precision run's activations, weights and loss."""
    fc, fv, fl = get_format(compute), get_format(variables), get_format(loss_dtype)
    # the same kinds in the same order (names may differ: Keras numbers the layers of the
    # second model it builds, dense_4 for dense)
    kinds, shadow_kinds = [lt.kind for lt in low.layers], [lt.kind for lt in shadow.layers]
    if kinds != shadow_kinds:
        raise ValueError(f"step {low.step}: the low-precision run and its shadow ran different layers "
                         f"({', '.join(kinds)} against {', '.join(shadow_kinds)}); per-layer records need the same "
                         "layers in both runs")
    scale = float(low.grad_scale)
    forward: list[Entry] = []
    backward: list[Entry] = []
    for i, (lo, sh) in enumerate(zip(low.layers, shadow.layers, strict=True)):
        is_loss = lo.kind and i == len(low.layers) - 1 and lo.name == "loss"
        f_out = fl if is_loss else fc
        if lo.output is not None:
            produced = None
            cause = ""
            if not _finite(lo.output):
                produced = _finite(lo.input) and lo.weights_finite
                if produced:
                    cause = _cause(lo.input, lo.output, sh.input, sh.output, f_out, stage="forward",
                                   kind="loss" if is_loss else lo.kind, scale=1.0)
            forward.append(Entry(i, "forward", tensor_stats(lo.output, sh.output, f_out), produced, cause))
        for stage, tensor, shadow_tensor, fmt in (("grad_input", lo.grad_input, sh.grad_input, fl if is_loss else fc),
                                                  ("grad_weights", lo.grad_weights, sh.grad_weights, fv)):
            if tensor is None:
                continue
            produced = None
            cause = ""
            if not _finite(tensor):
                produced = _finite(lo.grad_output) and (stage == "grad_input" or _finite(lo.input))
                if produced:
                    cause = _cause(lo.grad_output, tensor, sh.grad_output, shadow_tensor, fmt, stage=stage,
                                   kind="loss" if is_loss else lo.kind, scale=scale, forward=(lo.input, sh.input))
                elif i + 1 < len(low.layers) and _finite(low.layers[i + 1].grad_input) and _finite(lo.input):
                    # the layer after this one sent a finite gradient and it arrived non-finite:
                    # it overflowed converting to this layer's format (a float32 loss's gradient
                    # into a float16 layer under a mixed policy)
                    produced = True
                    cause = _boundary_cause(low.layers[i + 1].grad_input, fc, scale)
            backward.append(Entry(i, stage, tensor_stats(tensor, shadow_tensor, fmt, scale=scale), produced, cause))
    order = {i: n for n, i in enumerate(range(len(low.layers) - 1, -1, -1))}
    backward.sort(key=lambda e: (order[e.layer], e.stage != "grad_input"))
    updates: list[Entry] = []
    for i, (lo, sh) in enumerate(zip(low.layers, shadow.layers, strict=True)):
        if lo.update is None:
            continue
        produced = None
        cause = ""
        if not _finite(lo.update):
            produced = _finite(lo.grad_weights) or bool(low.skipped)
            if produced:
                cause = (f"the optimizer made a non-finite update from finite gradients, computing in {fv.name} "
                         "(a moment that overflowed or underflowed to 0, an epsilon that rounds to 0, 0/0)")
        updates.append(Entry(i, "update", tensor_stats(lo.update, sh.update, fv), produced, cause))
    entries = forward + backward + updates
    return StepRecord(step=int(low.step), loss=float(low.loss), shadow_loss=float(shadow.loss), entries=tuple(entries),
                      loss_scale=low.loss_scale, skipped=bool(low.skipped), weights_finite=bool(low.weights_finite),
                      shadow_weights_finite=bool(shadow.weights_finite))


# -- the verdict -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FirstNonFinite:
    """Where a run first computed a value that is not finite."""

    step: int
    layer: int
    name: str
    kind: str
    stage: str
    produced: bool
    nan: int
    inf: int
    size: int
    cause: str
    #: the shadow's same tensor was finite everywhere
    shadow_finite: bool

    @property
    def direction(self) -> str:
        return {"forward": "forward", "update": "optimizer update"}.get(self.stage, "backward")

    @property
    def tensor(self) -> str:
        if self.stage == "update" and self.layer < 0:
            return "weights after the update"  # no layer recorded its update: the model's weights
        return {"forward": "output", "grad_input": "gradient w.r.t. its input",
                "grad_weights": "gradient w.r.t. its weights", "update": "its weights' update"}[self.stage]

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "layer": self.layer, "name": self.name, "kind": self.kind, "stage": self.stage,
                "produced": self.produced, "nan": self.nan, "inf": self.inf, "size": self.size, "cause": self.cause,
                "shadow_finite": self.shadow_finite}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> FirstNonFinite:
        return FirstNonFinite(step=int(d["step"]), layer=int(d["layer"]), name=str(d["name"]), kind=str(d["kind"]),
                              stage=str(d["stage"]), produced=bool(d["produced"]), nan=int(d["nan"]), inf=int(d["inf"]),
                              size=int(d["size"]), cause=str(d.get("cause", "")),
                              shadow_finite=bool(d.get("shadow_finite", True)))


def first_nonfinite(records: Iterable[StepRecord], layers: Sequence[tuple[str, str]], *,
                    absorbed: bool = False) -> FirstNonFinite | None:
    """The first non-finite tensor, in the order the steps ran. With ``absorbed=False``
    (the verdict) a non-finite gradient in a step the loss scaler skipped does not count;
    with ``absorbed=True`` it does."""
    for rec in records:
        for e in rec.entries:
            if not e.stats.nonfinite:
                continue
            if rec.skipped and e.stage != "forward" and not absorbed:
                continue
            name, kind = layers[e.layer] if e.layer < len(layers) else (str(e.layer), "")
            return FirstNonFinite(rec.step, e.layer, name, kind, e.stage, bool(e.produced), e.stats.nan, e.stats.inf,
                                  e.stats.size, e.cause, e.stats.shadow_nonfinite == 0)
        if not rec.weights_finite:
            return FirstNonFinite(rec.step, -1, "weights", "optimizer", "update", True, 0, 0, 0,
                                  "a weight or a layer's state (such as BatchNorm's moving statistics) became "
                                  "non-finite in the step although every recorded gradient and update was finite",
                                  rec.shadow_weights_finite)
    return None


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """A scenario's run: what was run, every step's record and the verdict."""

    name: str
    framework: str
    backend: str
    policy: str
    optimizer: str
    loss: str
    steps: int
    batch_size: int
    seed: int
    status: str  # "finite", "nonfinite" or "error"
    layers: tuple[tuple[str, str], ...] = ()
    records: tuple[StepRecord, ...] = ()
    first: FirstNonFinite | None = None
    error: str = ""
    error_step: int | None = None
    traceback: str = ""
    seconds: float = 0.0
    suite: str = ""
    fixes: str = ""
    claim: str = ""
    note: str = ""
    version: str = ""
    #: why the run ended before ``steps`` (the weights of the low-precision run non-finite)
    stopped: str = ""
    #: the first non-finite value counting the steps a loss scaler skipped (None when it
    #: is the verdict's, or there is none): what the loss scaler absorbed
    absorbed: FirstNonFinite | None = None
    #: what limits the comparison with the shadow (random layers, a shadow layer not in float64)
    cautions: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.name

    @property
    def skipped_steps(self) -> int:
        return sum(r.skipped for r in self.records)

    @property
    def final(self) -> StepRecord | None:
        return self.records[-1] if self.records else None

    @property
    def parted_at(self) -> int | None:
        """The first step whose losses differ by more than :data:`PART_REL` of the shadow's
        (or where one is finite and the other is not)."""
        for r in self.records:
            if math.isfinite(r.loss) != math.isfinite(r.shadow_loss):
                return r.step
            rel = r.loss_rel
            if rel is not None and rel > PART_REL:
                return r.step
        return None

    def departure(self) -> tuple[int, str, str, float, int] | None:
        """Where the two runs first part: the first tensor (in the order the steps ran)
        whose typical value agrees with the shadow's in fewer than half the significand bits
        of the format the policy computes in (relative error p50 >= 2^(-p/2): float16's
        p = 11 gives 2.2%, float32's 0.024%), as (step, layer name, stage, relative error
        p50, p). Measured against the compute format, so that a float32 tensor computed
        from float16 activations under a mixed policy does not part by its rounding alone."""
        fmt = get_format(self.policy.removeprefix("mixed_")) if self.policy.removeprefix("mixed_") in _FORMATS else None
        if fmt is None:
            return None
        limit = 2.0 ** (-fmt.precision / 2)
        for r in self.records:
            for e in r.entries:
                rel = e.stats.rel_p50
                if rel is not None and rel >= limit:
                    name = self.layers[e.layer][0] if e.layer < len(self.layers) else str(e.layer)
                    return r.step, name, e.stage, rel, fmt.precision
        return None

    @property
    def drift(self) -> float | None:
        """The final step's loss relative error against the shadow."""
        return None if self.final is None else self.final.loss_rel

    @property
    def dead_steps(self) -> tuple[int, int]:
        """Steps in which every weight gradient of the low-precision run is exactly 0, and
        how many of them have all-zero weight gradients in the shadow too (a model that
        does not learn, e.g. behind a clip)."""
        dead = shadow_dead = 0
        for r in self.records:
            grads = [e.stats for e in r.entries if e.stage == "grad_weights"]
            if grads and all(g.max_abs == 0 for g in grads):
                dead += 1
                shadow_dead += all(g.shadow_max_abs == 0 for g in grads)
        return dead, shadow_dead

    def max_bits(self, stage: str = "forward") -> float | None:
        """The largest p99 bits of error of any layer at ``stage`` over the run."""
        values = [e.stats.bits_p99 for r in self.records for e in r.entries
                  if e.stage == stage and e.stats.bits_p99 is not None]
        return max(values) if values else None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name, "framework": self.framework, "backend": self.backend, "policy": self.policy,
            "optimizer": self.optimizer, "loss": self.loss, "steps": self.steps, "batch_size": self.batch_size,
            "seed": self.seed, "status": self.status, "layers": [list(pair) for pair in self.layers],
            "first_nonfinite": None if self.first is None else self.first.to_json(),
            "first_absorbed": None if self.absorbed is None else self.absorbed.to_json(),
            "seconds": round(self.seconds, 3), "records": [r.to_json() for r in self.records],
        }
        for key in ("error", "traceback", "suite", "fixes", "claim", "note", "version", "stopped"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        if self.cautions:
            d["cautions"] = list(self.cautions)
        if self.error_step is not None:
            d["error_step"] = self.error_step
        return d

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> ScenarioResult:
        first = d.get("first_nonfinite")
        absorbed = d.get("first_absorbed")
        return ScenarioResult(
            name=str(d["name"]), framework=str(d["framework"]), backend=str(d.get("backend", "")),
            policy=str(d["policy"]), optimizer=str(d.get("optimizer", "")), loss=str(d.get("loss", "")),
            steps=int(d["steps"]), batch_size=int(d.get("batch_size", 0)), seed=int(d.get("seed", 0)),
            status=str(d["status"]), layers=tuple((str(a), str(b)) for a, b in d.get("layers", ())),
            records=tuple(StepRecord.from_json(r) for r in d.get("records", ())),
            first=None if first is None else FirstNonFinite.from_json(first),
            error=str(d.get("error", "")), error_step=d.get("error_step"), traceback=str(d.get("traceback", "")),
            seconds=float(d.get("seconds", 0.0)), suite=str(d.get("suite", "")), fixes=str(d.get("fixes", "")),
            claim=str(d.get("claim", "")), note=str(d.get("note", "")), version=str(d.get("version", "")),
            stopped=str(d.get("stopped", "")),
            absorbed=None if absorbed is None else FirstNonFinite.from_json(absorbed),
            cautions=tuple(str(c) for c in d.get("cautions", ())),
        )


# -- did a fix remove the cause or hide it? ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class FixVerdict:
    """What a scenario that ``fixes`` another one did to the other's first non-finite value:
    ``removed`` it, ``hid`` it, ``failed`` (still non-finite), or there was ``nothing`` to
    fix (see :func:`fix_verdict`)."""

    fix: str
    base: str
    outcome: str  # removed | hid | failed | nothing | error
    reason: str


#: a fix that leaves less than this many bits of headroom where the original overflowed
#: only moved the edge: a value within a factor of 2 of the format's largest
EDGE_BITS = 1.0


def fix_verdict(fix: ScenarioResult, base: ScenarioResult) -> FixVerdict:
    """Judge ``fix`` against the run it claims to fix. The fix *failed* if it still goes
    non-finite. It *hid* the cause if it stays finite only by luck or by rounding: its own
    float64 shadow is not finite (the formula is still undefined there), or, at the layer
    and stage where the original first went non-finite, values underflow to 0 where the
    shadow's do not, or come within :data:`EDGE_BITS` of overflowing. Otherwise it
    *removed* the cause; the reason gives its distance from its shadow either way."""
    if fix.status == "error" or base.status == "error":
        return FixVerdict(fix.name, base.name, "error", "one of the runs failed with an error")
    if base.first is None:
        return FixVerdict(fix.name, base.name, "nothing", f"{base.name} stays finite for its {len(base.records)} steps")
    where = f"step {base.first.step}, layer {base.first.name} {base.first.direction}"
    if fix.first is not None:
        same = fix.first.name == base.first.name and fix.first.stage == base.first.stage
        at = f"step {fix.first.step}, layer {fix.first.name} {fix.first.direction}"
        return FixVerdict(fix.name, base.name, "failed",
                          f"still non-finite at {at} ({'the same place' if same else 'elsewhere'}; "
                          f"the original at {where})")
    drift = fix.drift
    apart = "" if drift is None else f"; final loss {drift:.2%} from its float64 shadow's"
    # the fix may change the model: the layer is the one of the same name (the loss is "loss")
    index = next((i for i, (name, _kind) in enumerate(fix.layers) if name == base.first.name), None)
    at_fault = [e.stats for r in fix.records for e in r.entries if e.layer == index and e.stage == base.first.stage]
    underflow = sum(st.underflow for st in at_fault)
    rooms = [st.headroom for st in at_fault if st.headroom is not None]
    least = min(rooms) if rooms else None
    if any(not math.isfinite(r.shadow_loss) for r in fix.records):
        return FixVerdict(fix.name, base.name, "hid",
                          "finite, but its own float64 shadow is not: the low-precision run is finite only by rounding")
    if underflow:
        return FixVerdict(fix.name, base.name, "hid",
                          f"finite, but {underflow} value(s) at layer {base.first.name} ({base.first.stage}) are 0 where the "
                          f"shadow's are not (the original failed at {where}){apart}")
    if least is not None and least < EDGE_BITS:
        return FixVerdict(fix.name, base.name, "hid",
                          f"finite, but layer {base.first.name} ({base.first.stage}) comes within {least:.2f} bits of "
                          f"overflowing (the original failed at {where}){apart}")
    room = (f"; its model has no layer {base.first.name}" if index is None else "" if least is None
            else f"; at layer {base.first.name} ({base.first.stage}) at least {least:.1f} bits of headroom")
    return FixVerdict(fix.name, base.name, "removed",
                      f"finite for {len(fix.records)} steps (the original failed at {where}){room}{apart}")
