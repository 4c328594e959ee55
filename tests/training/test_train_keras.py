"""The Keras trainer: planted overflows are found at the step and layer they happen, the
float64 shadow starts from the low-precision weights, loss scaling behaves as Keras's, and
build failures are one-line usage errors that leave the global dtype policy alone.

In-process tests use the TensorFlow backend (Keras's default, and the one a test process
that already imported Keras most likely has); the JAX backend runs in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.frameworks.trainers import make_trainers
from harness.frameworks.training import OptimizerConfig, StepTensors, TrainerPair, get_policy
from oracles.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
SGD0 = OptimizerConfig("sgd", (("learning_rate", 0.0),))


@pytest.fixture
def keras() -> Any:
    keras = pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip(f"in-process tests need Keras on TensorFlow, this process has {keras.backend.backend()!r}")
    return keras


def _pair(model_fn: Callable[[], Any], policy: str, *, loss: Any = "mae", optimizer: OptimizerConfig = SGD0,
          **options: Any) -> TrainerPair:
    return make_trainers("keras", model_fn, loss=loss, optimizer=optimizer, policy=get_policy(policy), seed=0,
                         options=options)


# The planted model: 4 inputs of value v -> Dense(8, kernel 1/4) = v -> ReLU -> Dense(8, kernel 8)
# = 64 v -> Dense(1, kernel 1/64) = 8 v. With v = 2**(k-1) at step k, layer 2's output is
# 2**(k+5): 2**16 = 65536 at step 11, past float16's largest finite value 65504.
PLANTED = textwrap.dedent("""
    import keras
    def planted():
        c = keras.initializers.Constant
        return keras.Sequential([
            keras.Input((4,)),
            keras.layers.Dense(8, use_bias=False, kernel_initializer=c(0.25)),
            keras.layers.ReLU(),
            keras.layers.Dense(8, use_bias=False, kernel_initializer=c(8.0)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer=c(1 / 64)),
        ])
""")
OVERFLOW_STEP = 11  # 64 * 2**(k-1) >= 2**16


def _planted(keras: Any) -> Callable[[], Any]:
    scope: dict[str, Any] = {}
    exec(PLANTED, scope)
    return scope["planted"]  # type: ignore[no-any-return]


def _batch(k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((2, 4), 2.0 ** (k - 1)), np.zeros((2, 1))


def test_planted_float16_overflow_is_found_at_its_step_and_layer(keras: Any) -> None:
    pair = _pair(_planted(keras), "float16")
    steps: list[tuple[StepTensors, StepTensors]] = []
    for k in range(1, OVERFLOW_STEP + 1):
        x, y = _batch(k)
        steps.append((pair.low.step(k, x, y), pair.shadow.step(k, x, y)))
    for low, shadow in steps[:-1]:
        assert all(np.all(np.isfinite(layer.output)) for layer in low.layers), low.step
        assert low.weights_finite and shadow.weights_finite
    low, shadow = steps[-1]
    assert [layer.kind for layer in low.layers] == ["Dense", "ReLU", "Dense", "Dense", "mae"]
    assert np.all(np.isfinite(low.layers[2].input)) and np.all(low.layers[2].input == 2.0**10)
    assert np.all(np.isposinf(low.layers[2].output))
    assert np.all(shadow.layers[2].output == 2.0**16)  # the exact value, in float64
    assert np.all(shadow.layers[3].output == 2.0**13)
    # lr=0 still multiplies the infinite weight gradient: 0 * inf is NaN in the weights
    assert not low.weights_finite and shadow.weights_finite


def test_shadow_starts_from_the_low_precision_weights(keras: Any) -> None:
    built: list[Any] = []

    def model_fn() -> Any:
        m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(2)])
        built.append(m)
        return m

    pair = _pair(model_fn, "bfloat16", loss="mse")
    low_model, shadow_model = built
    weights = [np.asarray(keras.ops.convert_to_numpy(w)).astype(np.float64) for w in low_model.weights]
    assert any(np.any(w != np.round(w)) for w in weights)  # not a trivial initialisation
    x = np.random.default_rng(1).normal(size=(6, 3))
    shadow = pair.shadow.step(1, x, np.zeros((6, 2)))
    w1, b1, w2, b2 = weights
    h = np.tanh(x @ w1 + b1)
    np.testing.assert_allclose(shadow.layers[0].output, h, rtol=1e-13)
    np.testing.assert_allclose(shadow.layers[1].output, h @ w2 + b2, rtol=1e-12, atol=1e-15)
    assert [str(w.dtype) for w in shadow_model.weights] == ["float64"] * 4
    assert shadow.grad_scale == 1.0 and shadow.loss_scale is None and not shadow.skipped


def test_mixed_float16_scales_the_loss_and_skips_an_overflowing_step(keras: Any) -> None:
    def model_fn() -> Any:
        one = keras.initializers.Constant(1.0)
        return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer=one)])

    pair = _pair(model_fn, "mixed_float16", loss="mse", optimizer=OptimizerConfig("sgd", (("learning_rate", 0.01),)))
    # pred 16, y 0: d(mse)/d(pred) = 32, times the scale 2**15 is 2**20, infinite in float16
    first = pair.low.step(1, np.array([[16.0]]), np.array([[0.0]]))
    assert first.grad_scale == 32768.0 and first.loss_scale == 16384.0 and first.skipped
    assert first.weights_finite
    assert first.layers[-1].grad_input is not None and first.layers[-1].grad_input[0, 0] == 2.0**20  # float32
    assert np.isposinf(first.layers[0].grad_output[0, 0])  # float16 after the cast
    assert first.layers[-1].grad_output is not None and first.layers[-1].grad_output[0] == 32768.0
    second = pair.low.step(2, np.array([[1.0]]), np.array([[0.0]]))
    assert second.grad_scale == 16384.0 and not second.skipped and second.loss_scale == 16384.0
    assert second.layers[0].output[0, 0] == 1.0  # the skipped step left the kernel at 1
    assert second.layers[0].grad_weights is not None and second.layers[0].grad_weights[0] == 2.0 * 16384
    shadow = pair.shadow.step(1, np.array([[16.0]]), np.array([[0.0]]))
    assert shadow.grad_scale == 1.0 and shadow.loss_scale is None and not shadow.skipped
    assert shadow.loss == 256.0


def test_a_fixed_loss_scale_never_skips(keras: Any) -> None:
    def model_fn() -> Any:
        return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")])

    opt = OptimizerConfig("sgd", (("learning_rate", 0.01),), loss_scale=1024.0)
    low = _pair(model_fn, "float16", loss="mse", optimizer=opt).low.step(1, np.array([[64.0]]), np.array([[0.0]]))
    assert low.grad_scale == 1024.0 and low.loss_scale == 1024.0 and not low.skipped
    assert not low.weights_finite  # 2*64*1024 overflows float16, and Keras applies it


def test_batch_normalization_updates_its_moving_statistics_in_both_runs(keras: Any) -> None:
    built: list[Any] = []

    def model_fn() -> Any:
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.BatchNormalization(), keras.layers.Dense(1, activation="sigmoid")])
        built.append(m)
        return m

    pair = _pair(model_fn, "mixed_float16", loss="binary_crossentropy", optimizer=OptimizerConfig("adam"))
    rng = np.random.default_rng(0)
    for k in range(1, 4):
        x, y = rng.normal(size=(16, 4)) + 3.0, (rng.random((16, 1)) > 0.5).astype(np.float64)
        low, shadow = pair.low.step(k, x, y), pair.shadow.step(k, x, y)
        assert np.isfinite(low.loss) and abs(low.loss - shadow.loss) < 1e-2
        assert [layer.kind for layer in low.layers][1] == "BatchNormalization"
    means = [np.asarray(keras.ops.convert_to_numpy(m.layers[1].moving_mean)) for m in built]
    assert all(np.any(m != 0) for m in means)
    np.testing.assert_allclose(means[0], means[1], rtol=1e-2, atol=1e-3)


def test_unbuilt_models_and_hard_coded_dtypes_still_train(keras: Any) -> None:
    def model_fn() -> Any:  # no Input: built on the first batch; the last layer stays float32
        return keras.Sequential([keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1, dtype="float32")])

    pair = _pair(model_fn, "float16", loss="mse", optimizer=OptimizerConfig("adam"))
    x, y = np.random.default_rng(2).normal(size=(8, 3)), np.zeros((8, 1))
    low, shadow = pair.low.step(1, x, y), pair.shadow.step(1, x, y)
    assert low.layers[0].output.shape == (8, 4) and shadow.layers[1].output.shape == (8, 1)
    assert abs(low.loss - shadow.loss) < 1e-2 * max(1.0, shadow.loss)
    # the hard-coded layer stays float32 in the shadow, and the step says so
    assert shadow.extra["not_float64"] == [shadow.layers[1].name]
    assert "not_float64" not in low.extra


def test_a_branched_model_is_one_layer_named_after_it(keras: Any) -> None:
    def model_fn() -> Any:
        inp = keras.Input((3,))
        out = keras.layers.Add()([keras.layers.Dense(2)(inp), keras.layers.Dense(2)(inp)])
        return keras.Model(inp, out, name="branchy")

    low = _pair(model_fn, "float32", loss="mse").low.step(1, np.ones((2, 3)), np.zeros((2, 2)))
    assert [(layer.name, layer.kind) for layer in low.layers] == [("branchy", "Functional"), ("loss", "mse")]
    assert low.layers[0].grad_weights is not None and low.layers[0].grad_weights.size == 2 * (3 * 2 + 2)


def test_a_failing_model_function_is_a_one_line_usage_error(keras: Any) -> None:
    def model_fn() -> Any:
        raise ValueError("no such layer\nsecond line")

    before = keras.config.dtype_policy().name
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        with pytest.raises(UsageError) as info:
            _pair(model_fn, "float16")
        assert str(info.value) == "the model function failed to build the model: ValueError: no such layer"
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    finally:
        keras.config.set_dtype_policy(before)


def test_an_unknown_loss_or_option_is_a_usage_error(keras: Any) -> None:
    with pytest.raises(UsageError, match="unknown loss 'mse2'"):
        _pair(_planted(keras), "float16", loss="mse2")
    with pytest.raises(UsageError, match="has no option 'rho'"):
        _pair(_planted(keras), "float16", optimizer=OptimizerConfig("sgd", (("rho", 0.9),)))


JAX_SCRIPT = PLANTED + textwrap.dedent(f"""
    import json, time
    import numpy as np
    from harness.frameworks.trainers import make_trainers
    from harness.frameworks.training import OptimizerConfig, get_policy
    assert keras.backend.backend() == "jax"
    t0 = time.perf_counter()
    pair = make_trainers("keras", planted, loss="mae", optimizer=OptimizerConfig("sgd", (("learning_rate", 0.0),)),
                         policy=get_policy("float16"), seed=0)
    first, found = None, []
    for k in range(1, {OVERFLOW_STEP + 1}):
        x, y = np.full((2, 4), 2.0 ** (k - 1)), np.zeros((2, 1))
        low, shadow = pair.low.step(k, x, y), pair.shadow.step(k, x, y)
        bad = [i for i, layer in enumerate(low.layers) if not np.all(np.isfinite(layer.output))]
        if bad and first is None:
            first = (k, bad[0], low.layers[bad[0]].input.tolist(), shadow.layers[bad[0]].output.tolist())
    # mixed_float16: the layers compute in float16 (their outputs are float16 values)
    mixed = make_trainers("keras", lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]), loss="mse",
                          optimizer=OptimizerConfig("adam"), policy=get_policy("mixed_float16"), seed=0)
    x = np.random.default_rng(0).normal(size=(5, 4))
    m = mixed.low.step(1, x, np.zeros((5, 3)))
    out, out64 = m.layers[0].output, mixed.shadow.step(1, x, np.zeros((5, 3))).layers[0].output
    print(json.dumps({{"first": first, "seconds": time.perf_counter() - t0, "grad_scale": m.grad_scale,
                      "mixed_is_float16": bool(np.all(out.astype(np.float16).astype(np.float64) == out)),
                      "shadow_is_float64": bool(np.any(out64.astype(np.float32).astype(np.float64) != out64))}}))
""")


def _on_jax(script: str) -> dict[str, Any]:
    """Run ``script`` with Keras on the JAX backend (a process of its own: this one may have
    loaded Keras on TensorFlow); the JSON it prints last."""
    pytest.importorskip("keras")
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=env, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def test_jax_backend_finds_the_planted_overflow() -> None:
    result = _on_jax(JAX_SCRIPT)
    assert result["mixed_is_float16"] and result["shadow_is_float64"] and result["grad_scale"] == 32768.0
    step, layer, inp, shadow_out = result["first"]
    assert (step, layer) == (OVERFLOW_STEP, 2)
    assert np.all(np.asarray(inp) == 2.0**10) and np.all(np.asarray(shadow_out) == 2.0**16)


def test_a_model_that_cannot_run_in_float64_is_a_usage_error(keras: Any) -> None:
    class NoFloat64(keras.layers.Layer):  # type: ignore[misc]
        def call(self, x: Any) -> Any:
            if keras.backend.standardize_dtype(x.dtype) == "float64":
                raise TypeError("float64 is not supported here")
            return x

    def model_fn() -> Any:
        return keras.Sequential([keras.Input((2,)), NoFloat64()])

    with pytest.raises(UsageError, match=r"^the model cannot run in float64: .*NoFloat64") as info:
        _pair(model_fn, "float16")
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


def test_a_callable_loss_is_averaged_and_named(keras: Any) -> None:
    def squared_error(y_true: Any, y_pred: Any) -> Any:
        return keras.ops.square(y_pred - y_true)  # per element; the trainer takes the mean

    def model_fn() -> Any:
        return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")])

    low = _pair(model_fn, "float32", loss=squared_error).low.step(1, np.array([[1.0], [3.0]]), np.zeros((2, 1)))
    assert low.layers[-1].kind == "squared_error" and low.loss == 5.0
    assert low.layers[-1].grad_input is not None and low.layers[-1].grad_input.ravel().tolist() == [1.0, 3.0]


TANH_SCRIPT = textwrap.dedent("""
    import json
    import keras
    import numpy as np
    from harness.frameworks.trainers import make_trainers
    from harness.frameworks.training import OptimizerConfig, get_policy

    def model():
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])

    pair = make_trainers("keras", model, loss="mse", optimizer=OptimizerConfig("sgd", (("learning_rate", 0.1),)),
                         policy=get_policy("float32"), seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 1))
    shadow = pair.shadow.step(1, x, y)
    out = shadow.layers[0].output
    print(json.dumps({"narrow": shadow.extra.get("not_float64", []), "floatx": keras.config.floatx(),
                      "float32_values": bool(np.all(out.astype(np.float32).astype(np.float64) == out))}))
""")


def test_the_jax_shadow_computes_tanh_in_float64() -> None:
    # Keras's type promotion on JAX maps float64 to float32: ops.tanh of a float64 tensor is
    # float32 unless the shadow's block says otherwise; floatx is restored after it
    result = _on_jax(TANH_SCRIPT)
    assert result == {"narrow": [], "floatx": "float32", "float32_values": False}
