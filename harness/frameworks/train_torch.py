"""The PyTorch trainer: an ``nn.Module`` under a precision policy, and its float64 shadow.

Layers are the model's leaf modules, in the order their forward hooks fire (a module called
twice is two layers, ``name`` and ``name#2``); what a ``forward()`` computes with functions
between modules shows in the next module's input. Each layer's input and output keep their
gradients (``retain_grad``), which is how the backward pass is recorded per layer without
changing it. ``inplace=True`` activations are switched to out-of-place: the values are the
same and an in-place op would overwrite the tensor whose gradient is recorded.

Randomness: both runs reseed torch's generator with the same value at the start of each
step, so dropout draws the same numbers in both (the masks can still differ where a draw
falls on the threshold differently in the two formats).

Policies: ``float16``/``bfloat16``/``float32`` convert the model (weights and compute) and
the batch; ``mixed_*`` keep float32 weights and run the forward pass under
``torch.autocast`` in the 16-bit format, with ``torch.amp.GradScaler`` for
``mixed_float16`` (dynamic loss scaling, as ``torch.amp`` recommends). The loss is computed
outside autocast, on the predictions cast to :attr:`Policy.loss_dtype`.

Optimizer options keep Keras's names (the scenario format is shared); defaults are torch's.
``clipnorm`` clips each parameter's gradient to that norm (Keras's meaning; torch's
``clip_grad_norm_`` over all parameters is Keras's ``global_clipnorm``), ``clipvalue``
clamps elements. Both act on unscaled gradients.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.frameworks.training import (
    LOSSES,
    POLICIES,
    Array,
    LayerTensors,
    LossSpec,
    ModelFn,
    OptimizerConfig,
    Policy,
    StepTensors,
    TrainerPair,
    error_line,
)
from oracles.errors import UsageError, choices

__all__ = ["trainers"]


def _np(t: Any) -> Array:
    return np.asarray(t.detach().to("cpu").double().numpy(), dtype=np.float64)


def _loss_fn(loss: LossSpec) -> tuple[str, Callable[[Any, Any], Any]]:
    import torch.nn.functional as F

    if callable(loss):
        return getattr(loss, "__name__", "loss"), loss
    table: dict[str, Callable[[Any, Any], Any]] = {
        "mse": lambda y, p: F.mse_loss(p, y),
        "mae": lambda y, p: F.l1_loss(p, y),
        "binary_crossentropy": lambda y, p: F.binary_cross_entropy(p, y),
        "binary_crossentropy_from_logits": lambda y, p: F.binary_cross_entropy_with_logits(p, y),
    }
    if loss not in table:
        raise UsageError(f"unknown loss {loss!r}; {choices(LOSSES, given=loss)}, or a function module:name")
    return str(loss), table[loss]


def _optimizer(config: OptimizerConfig, params: list[Any]) -> Any:
    import torch

    o = dict(config.options)
    kw: dict[str, Any] = {}
    if "learning_rate" in o:
        kw["lr"] = o["learning_rate"]
    if "weight_decay" in o:
        kw["weight_decay"] = o["weight_decay"]
    if "momentum" in o:
        kw["momentum"] = o["momentum"]
    if "epsilon" in o:
        kw["eps"] = o["epsilon"]
    if "beta_1" in o or "beta_2" in o:
        kw["betas"] = (o.get("beta_1", 0.9), o.get("beta_2", 0.999))
    if "rho" in o:
        kw["alpha"] = o["rho"]
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
           "rmsprop": torch.optim.RMSprop}[config.name]
    # foreach kernels refuse some 16-bit CPU cases; the per-tensor loop computes the same
    return cls(params, foreach=False, **kw)


class _Recorder:
    """Forward hooks on the leaf modules: each call's input and output, gradients kept."""

    def __init__(self, model: Any) -> None:
        self.calls: list[tuple[str, Any, Any, Any]] = []
        self._seen: dict[str, int] = {}
        leaves = [(n, m) for n, m in model.named_modules() if not any(True for _ in m.children())]
        for name, module in leaves:
            if getattr(module, "inplace", False):
                module.inplace = False
            module.register_forward_hook(self._hook(name or type(module).__name__))

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: Any, inputs: tuple[Any, ...], output: Any) -> None:
            import torch

            first = next((t for t in inputs if isinstance(t, torch.Tensor)), None)
            out = output if isinstance(output, torch.Tensor) else None
            for t in (first, out):
                if t is not None and t.requires_grad and t.is_floating_point():
                    t.retain_grad()
            self._seen[name] = self._seen.get(name, 0) + 1
            shown = name if self._seen[name] == 1 else f"{name}#{self._seen[name]}"
            self.calls.append((shown, module, first, out))

        return hook

    def reset(self) -> None:
        self.calls.clear()
        self._seen.clear()


def _finite(params: list[Any]) -> bool:
    import torch

    return all(bool(torch.isfinite(p).all()) for p in params)


class _TorchTrainer:
    def __init__(self, model: Any, *, loss: LossSpec, optimizer: OptimizerConfig, policy: Policy,
                 scaling: str | float | None, seed: int) -> None:
        import torch

        self.torch = torch
        self.seed = seed
        self.model = model
        self.policy = policy
        self.loss_name, self.loss_fn = _loss_fn(loss)
        self.config = optimizer
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = _optimizer(optimizer, self.params)
        self.recorder = _Recorder(model)
        dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
                  "float64": torch.float64}
        self.compute = dtypes[policy.compute]
        self.input_dtype = dtypes[policy.variables]
        self.loss_dtype = dtypes[policy.loss_dtype]
        self.scaling = scaling
        self.scaler = torch.amp.GradScaler("cpu") if scaling == "dynamic" else None
        model.train()

    def _forward(self, xt: Any) -> Any:
        torch = self.torch
        if self.policy.mixed:
            with torch.autocast(device_type="cpu", dtype=self.compute):
                return self.model(xt)
        return self.model(xt)

    def step(self, step: int, x: Array, y: Array) -> StepTensors:
        torch = self.torch
        # both runs draw the same random numbers in a step (dropout and the like), whatever
        # the other has drawn before
        torch.manual_seed(self.seed * 1_000_003 + step)
        own = {id(m): [p for p in m.parameters(recurse=False) if p.requires_grad] for m in self.model.modules()}
        self.recorder.reset()
        self.opt.zero_grad(set_to_none=True)
        xt = torch.as_tensor(x).to(self.input_dtype).requires_grad_(True)
        yt = torch.as_tensor(y)
        weights_before = {key: _finite(params) for key, params in own.items()}
        pred = self._forward(xt)
        pred_l = pred.to(self.loss_dtype)
        if pred_l is pred:
            pred_l = pred.view_as(pred)  # a distinct tensor whose gradient is the loss's own
        pred_l.retain_grad()
        loss = self.loss_fn(yt.to(self.loss_dtype), pred_l)
        if loss.ndim:
            loss = loss.mean()
        scale = 1.0
        if self.scaler is not None:
            scale = float(self.scaler.get_scale())
            self.scaler.scale(loss).backward()
        elif isinstance(self.scaling, (int, float)):
            scale = float(self.scaling)
            (loss * scale).backward()
        else:
            loss.backward()
        # a module called twice accumulates one gradient over its calls: it is recorded on its
        # first call only, so that a fault of the second call is not blamed on the first
        first_call: set[int] = set()
        layers = []
        for name, module, inp, out in self.recorder.calls:
            first = id(module) not in first_call
            first_call.add(id(module))
            layers.append(LayerTensors(
                name=name,
                kind=type(module).__name__,
                input=None if inp is None else _np(inp),
                output=None if out is None else _np(out),
                grad_output=None if out is None or out.grad is None else _np(out.grad),
                grad_input=None if inp is None or inp.grad is None else _np(inp.grad),
                grad_weights=self._weight_grads(own[id(module)]) if first else None,
                weights_finite=weights_before[id(module)],
            ))
        layers.append(LayerTensors(
            name="loss", kind=self.loss_name, input=_np(pred_l), output=_np(loss.reshape(1)),
            grad_output=np.array([scale]), grad_input=None if pred_l.grad is None else _np(pred_l.grad),
        ))
        before = {id(module): [p.detach().clone() for p in own[id(module)]] for _n, module, _i, _o in self.recorder.calls}
        skipped, loss_scale = self._update(scale)
        for lt, (_name, module, _inp, _out) in zip(layers[: len(self.recorder.calls)], self.recorder.calls, strict=True):
            params = own[id(module)]
            if params and lt.grad_weights is not None:
                lt.update = np.concatenate([(_np(p) - _np(b)).ravel() for p, b in zip(params, before[id(module)],
                                                                                          strict=True)])
        return StepTensors(step=step, layers=layers, loss=float(loss.item()), grad_scale=scale, loss_scale=loss_scale,
                           skipped=skipped, weights_finite=_finite(list(self.model.parameters())))

    def _weight_grads(self, params: list[Any]) -> Array | None:
        grads = [_np(p.grad).ravel() for p in params if p.grad is not None]
        return np.concatenate(grads) if grads else None

    def _clip(self) -> None:
        torch = self.torch
        clipnorm = self.config.option("clipnorm")
        clipvalue = self.config.option("clipvalue")
        if clipnorm is not None:
            for p in self.params:
                if p.grad is not None:
                    torch.nn.utils.clip_grad_norm_([p], clipnorm)
        if clipvalue is not None:
            torch.nn.utils.clip_grad_value_(self.params, clipvalue)

    def _update(self, scale: float) -> tuple[bool, float | None]:
        if self.scaler is not None:
            self.scaler.unscale_(self.opt)
            self._clip()
            self.scaler.step(self.opt)
            self.scaler.update()
            after = float(self.scaler.get_scale())
            # GradScaler backs off exactly when it found a non-finite gradient and skipped
            return after < scale, after
        if scale != 1.0:
            # a fixed scale is divided out and the step applied whatever the gradients hold,
            # as Keras's fixed loss_scale_factor does: only dynamic scaling skips steps
            for p in self.params:
                if p.grad is not None:
                    p.grad.div_(scale)
            self._clip()
            self.opt.step()
            return False, scale
        self._clip()
        self.opt.step()
        return False, None


def trainers(model_fn: ModelFn, *, loss: LossSpec, optimizer: OptimizerConfig, policy: Policy, seed: int,
             options: dict[str, Any]) -> TrainerPair:
    """The low-precision trainer for ``policy`` and its float64 shadow, from one model built
    by ``model_fn`` (the shadow is a float64 copy of the low-precision model's initial
    weights, so both start from the same values)."""
    import torch

    torch.manual_seed(seed)
    try:
        model = model_fn()
    except Exception as exc:  # noqa: BLE001 - the user's model function failed
        raise UsageError(f"the model function failed to build the model: {error_line(exc)}") from None
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"the model function returned {type(model).__name__}, not a torch.nn.Module; "
                         "return the model (an nn.Module) from a function that takes no arguments")
    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    low = model.to(dtypes[policy.variables])
    try:
        shadow = copy.deepcopy(low).double()
    except Exception as exc:  # noqa: BLE001 - a module holding something that cannot be copied
        raise UsageError(f"the model cannot be copied for its float64 shadow (copy.deepcopy failed: "
                         f"{error_line(exc)}); keep locks, files and handles out of the module") from None
    scaling = optimizer.scaling(policy)
    pair = TrainerPair(
        low=_TorchTrainer(low, loss=loss, optimizer=optimizer, policy=policy, scaling=scaling, seed=seed),
        shadow=_TorchTrainer(shadow, loss=loss, optimizer=optimizer, policy=POLICIES["float64"], scaling=None, seed=seed),
        framework="torch",
        version=str(torch.__version__),
    )
    return pair

