"""The models, data and losses of seeds 001 and 002, for ``suites/seed_training.toml``.

Each is the document's code with two changes that do not touch its numerics: Keras 3's
``keras.ops`` instead of ``tf.*`` (so one model runs on the TensorFlow and the JAX backend),
and ``keras.Input`` instead of the deprecated ``input_shape=``. The data is generated from
a fixed seed (nothing is downloaded); where a document shows its data, it is that data.

Keras is imported inside the functions: loading this file imports no framework.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# == seed 001: "Why is my TensorFlow Keras loss NaN?" =========================================


def seed001_model() -> Any:
    """Example 2's network (Dense(10, relu) on one input), with a sigmoid output: Example 1's
    ``custom_loss_with_log`` takes probabilities."""
    import keras

    return keras.Sequential([
        keras.Input((1,)),
        keras.layers.Dense(10, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])


def seed001_regression_model() -> Any:
    """Example 2's network exactly: Dense(10, relu), Dense(1), trained with mse."""
    import keras

    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(10, activation="relu"), keras.layers.Dense(1)])


def custom_loss_with_log(y_true: Any, y_pred: Any) -> Any:
    """Example 1's loss: ``y_pred`` clipped to [1e-7, 1.0], then the log loss."""
    from keras import ops

    epsilon = 1e-7  # Small number to prevent taking log of zero
    y_pred_clipped = ops.clip(y_pred, epsilon, 1.0)  # Clipping to avoid 0 values
    return -ops.mean(y_true * ops.log(y_pred_clipped) + (1 - y_true) * ops.log(1 - y_pred_clipped))


def _unscaled(rows: int = 64) -> np.ndarray:
    # the document's four inputs, then more of the same range (|x| up to 10000)
    rng = np.random.default_rng(1)
    shown = np.array([[1000.0], [-1000.0], [10000.0], [-10000.0]])
    return np.concatenate([shown, rng.uniform(-10000.0, 10000.0, size=(rows - 4, 1))])


def seed001_unscaled() -> tuple[np.ndarray, np.ndarray]:
    """Inputs in [-10000, 10000], label 1 for a positive input."""
    x = _unscaled()
    return x, (x > 0).astype(np.float64)


def seed001_scaled() -> tuple[np.ndarray, np.ndarray]:
    """The same rows divided by 10000 (the document's fix: inputs in [-1, 1])."""
    x, y = seed001_unscaled()
    return x / 10000.0, y


def seed001_regression_unscaled() -> tuple[np.ndarray, np.ndarray]:
    """Example 2: the targets are the inputs."""
    x = _unscaled()
    return x, x.copy()


def seed001_regression_scaled() -> tuple[np.ndarray, np.ndarray]:
    x = _unscaled() / 10000.0
    return x, x.copy()


# == seed 002: "Why is my Tensorflow Keras model returning NaN outputs?" ======================


def seed002_relu_stack() -> Any:
    """Three Dense(128, relu) and a sigmoid output, for binary cross-entropy."""
    import keras

    return keras.Sequential([
        keras.Input((10,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])


def seed002_batchnorm() -> Any:
    """The document's fix: BatchNormalization after each Dense, then the ReLU."""
    import keras

    layers: list[Any] = [keras.Input((10,))]
    for _ in range(3):
        layers += [keras.layers.Dense(128), keras.layers.BatchNormalization(), keras.layers.Activation("relu")]
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    return keras.Sequential(layers)


def seed002_random() -> tuple[np.ndarray, np.ndarray]:
    """``np.random.rand(1000, 10)`` and random 0/1 labels, from a fixed seed."""
    rng = np.random.default_rng(2)
    return rng.random((1000, 10)), rng.integers(0, 2, size=(1000, 1)).astype(np.float64)


def _variance_layer(epsilon: bool) -> Any:
    import keras
    from keras import ops

    class MyCustomLayer(keras.layers.Layer):
        def call(self, inputs: Any) -> Any:
            variance = ops.var(inputs, axis=1)
            if epsilon:
                # Epsilon to prevent divide-by-zero
                return inputs / (variance[:, None] + keras.backend.epsilon())
            return inputs / variance[:, None]  # This will cause NaN

    return MyCustomLayer()


def seed002_variance() -> Any:
    """``MyCustomLayer`` (x / var(x) per row), then Dense(1)."""
    import keras

    return keras.Sequential([keras.Input((10,)), _variance_layer(epsilon=False), keras.layers.Dense(1)])


def seed002_variance_eps() -> Any:
    """The revised layer: x / (var(x) + keras.backend.epsilon()), epsilon = 1e-7."""
    import keras

    return keras.Sequential([keras.Input((10,)), _variance_layer(epsilon=True), keras.layers.Dense(1)])


def seed002_variance_data() -> tuple[np.ndarray, np.ndarray]:
    """The document's three rows: all ones, 1..10, all zeros."""
    x = np.array([[1.0] * 10, [float(i) for i in range(1, 11)], [0.0] * 10])
    return x, np.array([[1.0], [2.0], [0.0]])
