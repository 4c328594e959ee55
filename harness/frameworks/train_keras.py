"""The Keras 3 trainer: one model under a precision policy, and its float64 shadow.

:func:`trainers` builds the model twice from the user's model function, once under the
scenario's dtype policy (Keras's own names: ``float16``, ``mixed_float16``, ...) and once
under ``float64``, copies the low-precision model's initial weights into the shadow (every
value is exact in float64), and returns a :class:`~.training.TrainerPair` whose trainers run
one optimizer step at a time and record every tensor the contract in :mod:`.training` asks
for, as float64 arrays of exactly the values Keras computed.

It runs on whichever backend Keras was loaded with (``tensorflow`` or ``jax``); only the
gradient computation and the optimizer update differ per backend:

* TensorFlow: a ``tf.GradientTape`` over the layers called one by one, gradients taken with
  respect to every intermediate activation, and ``optimizer.apply``; the step is a
  ``tf.function`` without XLA, which is what ``model.fit`` runs on a CPU-only machine.
* JAX: a pure function of the variable values (the layers called inside a
  ``keras.StatelessScope``, as ``Model.stateless_call`` does for its own layers); a
  ``-0.0`` tensor is added after each layer (the exact identity in IEEE arithmetic) and the
  gradient with respect to it is the gradient with respect to that layer's output. The
  update is ``optimizer.stateless_apply``, the new values are assigned back. The step is
  ``jax.jit``-compiled, as ``model.fit`` does; XLA may keep a fused intermediate *inside* a
  layer in excess precision, but every recorded tensor is materialised in its own format.
  The shadow runs inside ``jax.enable_x64`` (scoped, never switched on for the process):
  without it JAX silently truncates float64 to float32.

Decisions worth knowing:

* A ``keras.Sequential`` (or a functional model whose layers form one chain) is run layer by
  layer, so each layer gets its own record; any other model (branches, subclassed) is one
  "layer" named after the model. Masks are not propagated between layers.
* The shadow is as float64 as the model allows: a layer with a hard-coded dtype (say
  ``Dense(1, dtype="float32")``) keeps that dtype in the shadow too, and nothing marks it.
* Loss scaling: ``"dynamic"`` wraps the optimizer in ``keras.optimizers.LossScaleOptimizer``
  with its defaults (2**15, doubling every 2000 good steps, halving and skipping the step on
  a non-finite gradient). A fixed scale is Keras's own fixed scaling, the inner optimizer's
  ``loss_scale_factor``: the loss is multiplied, the gradients divided, and a non-finite
  gradient is *applied*, not skipped (so ``skipped`` stays False). We rejected
  ``LossScaleOptimizer(initial_scale=s, dynamic_growth_steps=huge)``: it still halves the
  scale on overflow, so it is not a fixed scale. The shadow never scales its loss.
* Options read from ``options``: ``jit`` (default True; False runs the step eagerly).
* Building sets the global dtype policy and seeds every generator (``set_random_seed``); the
  dtype policy that was set before is always restored.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.frameworks.training import (
    LOSSES,
    OPTIMIZER_OPTIONS,
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

_OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}


def trainers(
    model_fn: ModelFn,
    *,
    loss: LossSpec,
    optimizer: OptimizerConfig,
    policy: Policy,
    seed: int,
    options: dict[str, Any],
) -> TrainerPair:
    """The low-precision trainer and its float64 shadow, starting from the same weights.

    Fails with a one-line :class:`UsageError` when the model function raises, returns no
    Keras model, or the model cannot be built or run in float64; the optimizer, its options
    and the loss are checked here too. Exceptions during a step propagate unchanged."""
    import keras

    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax"):
        raise UsageError(f"the Keras trainer runs on the tensorflow or jax backend, not {backend!r}")
    loss_fn, loss_name = _loss(loss)
    jit = bool(options.get("jit", True))
    scaling = optimizer.scaling(policy)

    previous = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy(policy.name)
        keras.utils.set_random_seed(seed)
        try:
            low = model_fn()
        except Exception as e:  # any failure of user code is a usage error
            raise UsageError(f"the model function failed to build the model: {error_line(e)}") from e
        if not isinstance(low, keras.Model):
            raise UsageError(f"the model function must return a keras.Model, got {type(low).__name__}")
        keras.config.set_dtype_policy("float64")
        keras.utils.set_random_seed(seed)
        try:
            with _x64(backend):
                shadow = model_fn()
        except Exception as e:
            raise UsageError(f"the model cannot run in float64: building it failed: {error_line(e)}") from e
    finally:
        keras.config.set_dtype_policy(previous)

    pair = _Pair(low, shadow, backend, policy, seed)
    if low.built and low.weights:
        shape = _input_shape(low)
        pair.build(None if shape is None else np.zeros(shape, dtype=np.float64))
    make = _TFTrainer if backend == "tensorflow" else _JaxTrainer
    low_t = make(pair, low, policy, _optimizer(optimizer, scaling), scaling, loss_fn, loss_name, jit)
    shadow_t = make(pair, shadow, _FLOAT64, _optimizer(optimizer, None), None, loss_fn, loss_name, jit)
    return TrainerPair(low=low_t, shadow=shadow_t, framework="keras",
                       version=f"{keras.__version__} ({backend} {_backend_version(backend)})")


_FLOAT64 = Policy("float64", "float64", "float64")


@contextlib.contextmanager
def _x64(backend: str) -> Iterator[None]:
    """Float64 for the block only: Keras's floatx, and JAX's 64-bit mode on that backend."""
    import keras

    # Keras resolves a Python float in an op's result type by floatx(): with the default
    # float32, ops.tanh of a float64 tensor returns float32 on JAX. The shadow is float64
    # only with floatx float64 too (restored after the block, like the dtype policy)
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        if backend != "jax":
            yield
            return
        import jax

        # jax.enable_x64 is the scoped switch since JAX 0.6; older releases had it in experimental
        # (a config State, not a function: never test it for truth)
        ctx: Any = jax.enable_x64 if hasattr(jax, "enable_x64") else importlib.import_module("jax.experimental").enable_x64
        with ctx(True), _keras_jax_float64():
            yield
    finally:
        keras.config.set_floatx(previous)


@contextlib.contextmanager
def _keras_jax_float64() -> Iterator[None]:
    """Keras's type promotion on JAX maps float64 to float32 (``BIT64_TO_BIT32_DTYPE``,
    "aligned with JAX's default"), so ``ops.tanh`` of a float64 tensor is float32 even with
    JAX's 64-bit mode on. For the shadow's block only, float64 promotes to float64; the
    table is restored after it. Where Keras keeps the table elsewhere this does nothing, and
    the shadow's step reports the layers whose output is not float64
    (``StepTensors.extra["not_float64"]``)."""
    try:
        table = importlib.import_module("keras.src.backend.common.dtypes").BIT64_TO_BIT32_DTYPE
    except (ImportError, AttributeError):
        yield
        return
    saved = table.get("float64")
    table["float64"] = "float64"
    try:
        yield
    finally:
        table["float64"] = saved


def _input_shape(model: Any) -> tuple[int, ...] | None:
    """A one-sample input shape when the model declares it, else None."""
    try:
        inputs = model.inputs
        if not inputs or len(inputs) != 1:
            return None
        return (1, *(1 if d is None else int(d) for d in inputs[0].shape[1:]))
    except (AttributeError, ValueError, TypeError):
        return None


# -- loss and optimizer --------------------------------------------------------------------


def _loss(spec: LossSpec) -> tuple[Callable[[Any, Any], Any], str]:
    """``(loss(y_true, y_pred) -> per-element or scalar, name)``; the caller takes the mean."""
    import keras

    if callable(spec):
        return spec, getattr(spec, "__name__", type(spec).__name__)
    builtin: dict[str, Callable[[Any, Any], Any]] = {
        "mse": keras.losses.mean_squared_error,
        "mae": keras.losses.mean_absolute_error,
        "binary_crossentropy": lambda t, p: keras.losses.binary_crossentropy(t, p, from_logits=False),
        "binary_crossentropy_from_logits": lambda t, p: keras.losses.binary_crossentropy(t, p, from_logits=True),
    }
    assert set(builtin) == set(LOSSES)
    if spec not in builtin:
        raise UsageError(f"unknown loss {spec!r}; {choices(LOSSES, given=spec)} or pass a callable")
    return builtin[spec], spec


def _optimizer(config: OptimizerConfig, scaling: str | float | None) -> Any:
    """A fresh Keras optimizer for ``config``, wrapped for dynamic scaling or carrying a
    fixed ``loss_scale_factor``."""
    import keras

    if config.name not in _OPTIMIZERS:
        raise UsageError(f"unknown optimizer {config.name!r}; {choices(_OPTIMIZERS, given=config.name)}")
    allowed = OPTIMIZER_OPTIONS[config.name]
    kwargs: dict[str, Any] = {}
    for key, value in config.options:
        if key not in allowed:
            raise UsageError(f"optimizer {config.name!r} has no option {key!r}; {choices(allowed, given=key)}")
        kwargs[key] = value
    if isinstance(scaling, (int, float)) and not isinstance(scaling, bool):
        kwargs["loss_scale_factor"] = float(scaling)
    inner = getattr(keras.optimizers, _OPTIMIZERS[config.name])(**kwargs)
    if scaling == "dynamic":
        return keras.optimizers.LossScaleOptimizer(inner)
    return inner


# -- building ------------------------------------------------------------------------------


class _Pair:
    """The two models' shared start: built (on the first batch when the model declares no
    input), the float64 forward probed, and the low model's initial weights copied into the
    shadow, exactly once, whichever trainer steps first."""

    def __init__(self, low: Any, shadow: Any, backend: str, policy: Policy, seed: int) -> None:
        self.low, self.shadow, self.backend, self.policy, self.seed = low, shadow, backend, policy, seed
        self.built = False

    def build(self, x: Array | None) -> None:
        if self.built:
            return
        import keras

        previous = keras.config.dtype_policy()
        try:
            if x is not None and not (self.low.built and self.low.weights):
                keras.config.set_dtype_policy(self.policy.name)
                keras.utils.set_random_seed(self.seed)
                self.low(x[:1].astype(np.float32), training=False)
            keras.config.set_dtype_policy("float64")
            with _x64(self.backend):
                try:
                    if x is not None:
                        self.shadow(x[:1], training=False)
                    self.shadow.set_weights([_np(w.value) for w in self.low.weights])
                except Exception as e:  # the model's own failure, told as usage
                    raise UsageError(f"the model cannot run in float64: {error_line(e)}") from e
        finally:
            keras.config.set_dtype_policy(previous)
        self.built = True


def _chain(model: Any) -> list[Any]:
    """The model's layers when they run one after the other (Sequential, or a functional
    chain), else ``[model]``: the whole model is one layer."""
    import keras

    if isinstance(model, keras.Sequential):
        return list(model.layers)
    try:
        if not isinstance(model, keras.Model) or len(model.inputs) != 1 or len(model.outputs) != 1:
            return [model]
        layers = [lay for lay in model.layers if not isinstance(lay, keras.layers.InputLayer)]
        h = model.inputs[0]
        for lay in layers:
            if len(lay._inbound_nodes) != 1 or lay.input is not h:
                return [model]
            h = lay.output
        return layers if layers and h is model.outputs[0] else [model]
    except (AttributeError, ValueError, TypeError):
        return [model]


def _np(t: Any) -> Array:
    """Exact float64 copy of a tensor of any float format (bfloat16 through ml_dtypes)."""
    import keras

    return np.asarray(keras.ops.convert_to_numpy(t)).astype(np.float64)


@dataclass(frozen=True, slots=True)
class _Raw:
    """One step's tensors straight from the backend, before conversion."""

    x: Any
    acts: list[Any]
    pred: Any
    loss: Any
    grad_x: Any
    grad_acts: list[Any]
    grad_pred: Any
    grad_weights: list[Any]


class _Base:
    """What both backends share: the layer plan, the scale bookkeeping and the records."""

    def __init__(self, pair: _Pair, model: Any, policy: Policy, opt: Any, scaling: str | float | None,
                 loss_fn: Callable[[Any, Any], Any], loss_name: str, jit: bool) -> None:
        self.pair, self.model, self.policy, self.opt, self.scaling = pair, model, policy, opt, scaling
        self.loss_fn, self.loss_name, self.jit = loss_fn, loss_name, jit
        self.shadow = policy.name == "float64"
        self.ready = False

    def _setup(self) -> None:
        self.layers = _chain(self.model)
        tv = list(self.model.trainable_variables)
        pos = {id(v): i for i, v in enumerate(tv)}
        self.tv_index = [[pos[id(v)] for v in lay.trainable_variables] for lay in self.layers]
        self.opt.build(tv)
        self.ready = True

    def _scale(self) -> float:
        if self.scaling == "dynamic":
            import keras

            return float(keras.ops.convert_to_numpy(self.opt.dynamic_scale.value))
        if self.scaling is not None:
            return float(self.scaling)
        return 1.0

    def _loss_value(self, y_true: Any, pred: Any) -> Any:
        import keras

        return keras.ops.mean(self.loss_fn(keras.ops.cast(y_true, pred.dtype), pred))

    def _x(self, x: Array) -> Array:
        return np.asarray(x, dtype=np.float64 if self.shadow else np.float32)

    def _context(self) -> contextlib.AbstractContextManager[None]:
        return _x64(self.pair.backend) if self.shadow else contextlib.nullcontext()

    def _run(self, x: Array, y: Array) -> _Raw:
        raise NotImplementedError

    def step(self, step: int, x: Array, y: Array) -> StepTensors:
        self.pair.build(np.asarray(x, dtype=np.float64))
        with self._context():
            if not self.ready:
                self._setup()
            before = [_all_finite(lay.weights) for lay in self.layers]
            old = [[_np(v.value) for v in lay.trainable_variables] for lay in self.layers]
            grad_scale = self._scale()
            raw = self._run(self._x(x), np.asarray(y, dtype=np.float64 if self.shadow else np.float32))
            after = _all_finite(self.model.weights)
            updates = [np.concatenate([(_np(v.value) - o).ravel() for v, o in zip(lay.trainable_variables, olds,
                                                                                  strict=True)]) if olds else None
                       for lay, olds in zip(self.layers, old, strict=True)]
            loss_scale = None if self.scaling is None else self._scale()
        gw = [_np(g).ravel() for g in raw.grad_weights]
        skipped = self.scaling == "dynamic" and not all(bool(np.all(np.isfinite(g))) for g in gw)
        records: list[LayerTensors] = []
        inp, g_inp = raw.x, raw.grad_x
        for i, lay in enumerate(self.layers):
            idx = self.tv_index[i]
            records.append(LayerTensors(
                name=lay.name, kind=type(lay).__name__, input=_np(inp), output=_np(raw.acts[i]),
                grad_output=_np(raw.grad_acts[i]), grad_input=_np(g_inp),
                grad_weights=np.concatenate([gw[j] for j in idx]) if idx else None,
                weights_finite=before[i], update=updates[i],
            ))
            inp, g_inp = raw.acts[i], raw.grad_acts[i]
        loss = _np(raw.loss).reshape(1)
        records.append(LayerTensors(
            name="loss", kind=self.loss_name, input=_np(raw.pred), output=loss,
            grad_output=np.array([grad_scale]), grad_input=_np(raw.grad_pred),
        ))
        extra = {}
        if self.shadow:
            narrow = [lay.name for lay, a in zip(self.layers, raw.acts, strict=True) if _dtype_name(a) != "float64"]
            if narrow:
                extra["not_float64"] = narrow
        return StepTensors(step=step, layers=records, loss=float(loss[0]), grad_scale=grad_scale,
                           loss_scale=loss_scale, skipped=bool(skipped), weights_finite=after, extra=extra)


def _all_finite(variables: Sequence[Any]) -> bool:
    import keras

    for v in variables:
        a = np.asarray(keras.ops.convert_to_numpy(v.value))
        if a.dtype.kind == "f" or a.dtype.name == "bfloat16":
            if not np.all(np.isfinite(a.astype(np.float64))):
                return False
    return True


class _TFTrainer(_Base):
    """TensorFlow: a gradient tape over the layers, one ``tf.function`` per step."""

    def _setup(self) -> None:
        import tensorflow as tf

        super()._setup()
        self.fn = tf.function(self._tf_step, reduce_retracing=True) if self.jit else self._tf_step

    def _tf_step(self, x: Any, y: Any) -> tuple[Any, ...]:
        import keras
        import tensorflow as tf

        tv = list(self.model.trainable_variables)
        with tf.GradientTape() as tape:
            tape.watch(x)
            h, acts = x, []
            for lay in self.layers:
                h = lay(h, training=True)
                acts.append(h)
            pred = keras.ops.cast(h, self.policy.loss_dtype)
            loss = self._loss_value(y, pred)
            scaled = self.opt.scale_loss(loss)
        grads = tape.gradient(scaled, [x, *acts, pred, *tv], unconnected_gradients=tf.UnconnectedGradients.ZERO)
        n = len(acts)
        gw = grads[n + 2:]
        self.opt.apply(gw, tv)
        return acts, pred, loss, grads[0], grads[1:n + 1], grads[n + 1], gw

    def _run(self, x: Array, y: Array) -> _Raw:
        import tensorflow as tf

        xt = tf.convert_to_tensor(x)
        acts, pred, loss, gx, gacts, gpred, gw = self.fn(xt, tf.convert_to_tensor(y))
        return _Raw(xt, list(acts), pred, loss, gx, list(gacts), gpred, list(gw))


class _JaxTrainer(_Base):
    """JAX: the layers in a ``StatelessScope``, -0.0 deltas for the activation gradients, and
    ``stateless_apply``; one ``jax.jit`` per step."""

    def _setup(self) -> None:
        import jax

        super()._setup()
        self.scale_index = None
        if self.scaling == "dynamic":
            self.scale_index = next(i for i, v in enumerate(self.opt.variables) if v is self.opt.dynamic_scale)
        self.fn = jax.jit(self._jax_step) if self.jit else self._jax_step

    def _forward(self, tv: list[Any], ntv: list[Any], x: Any, y: Any, deltas: list[Any] | None,
                 scale: Any) -> tuple[Any, tuple[Any, ...]]:
        import keras

        # One StatelessScope over the model's variables and each layer through __call__, not
        # layer.stateless_call: that calls layer.call directly, skipping the input cast and
        # the autocast scope, so a mixed policy's layers would compute in float32.
        mapping = [*zip(self.model.trainable_variables, tv, strict=True),
                   *zip(self.model.non_trainable_variables, ntv, strict=True)]
        h, acts = x, []
        with keras.StatelessScope(state_mapping=mapping) as scope:
            for i, lay in enumerate(self.layers):
                h = lay(h, training=True)
                if deltas is not None:
                    h = h + deltas[i]
                acts.append(h)
        new_ntv = [scope.get_current_value(v) for v in self.model.non_trainable_variables]
        pred = keras.ops.cast(h, self.policy.loss_dtype)
        if deltas is not None:
            pred = pred + deltas[-1]
        loss = self._loss_value(y, pred)
        if self.scaling == "dynamic":
            scaled = keras.ops.multiply(loss, scale)  # what LossScaleOptimizer.scale_loss does
        else:
            scaled = self.opt.scale_loss(loss)  # a fixed factor, or the loss itself
        return scaled, (loss, acts, pred, new_ntv)

    def _jax_step(self, tv: list[Any], ntv: list[Any], ov: list[Any], x: Any, y: Any) -> tuple[Any, ...]:
        import jax
        import jax.numpy as jnp

        scale = ov[self.scale_index] if self.scale_index is not None else None
        _, (_, acts, pred, _) = jax.eval_shape(lambda: self._forward(tv, ntv, x, y, None, scale))
        deltas = [jnp.full(s.shape, -0.0, s.dtype) for s in [*acts, pred]]

        def f(tv_: list[Any], deltas_: list[Any], x_: Any) -> tuple[Any, tuple[Any, ...]]:
            return self._forward(tv_, ntv, x_, y, deltas_, scale)

        (_, (loss, acts, pred, new_ntv)), (gtv, gd, gx) = jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True)(
            tv, deltas, x)
        new_tv, new_ov = self.opt.stateless_apply(ov, gtv, tv)
        return acts, pred, loss, gx, gd[:-1], gd[-1], gtv, new_tv, new_ntv, new_ov

    def _run(self, x: Array, y: Array) -> _Raw:
        import jax.numpy as jnp

        tv = [v.value for v in self.model.trainable_variables]
        ntv = [v.value for v in self.model.non_trainable_variables]
        ov = [v.value for v in self.opt.variables]
        xj = jnp.asarray(x)
        acts, pred, loss, gx, gacts, gpred, gw, new_tv, new_ntv, new_ov = self.fn(tv, ntv, ov, xj, jnp.asarray(y))
        for var, val in zip(self.model.trainable_variables, new_tv, strict=True):
            var.assign(val)
        for var, val in zip(self.model.non_trainable_variables, new_ntv, strict=True):
            var.assign(val)
        for var, val in zip(self.opt.variables, new_ov, strict=True):
            var.assign(val)
        return _Raw(xj, list(acts), pred, loss, gx, list(gacts), gpred, list(gw))


def _backend_version(backend: str) -> str:
    try:
        return str(importlib.import_module(backend).__version__)
    except (ImportError, AttributeError):
        return "?"


def _dtype_name(t: Any) -> str:
    import keras

    return str(keras.backend.standardize_dtype(t.dtype))
