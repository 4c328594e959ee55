"""What the float64 shadow and the per-layer records cost a training run, in one run.

Issue 17 asks that a 50-step run of a small model (a few dense layers, batch 64) with its
shadow and records take under a minute on the 2-core machine. For each framework (torch,
Keras on TensorFlow, Keras on JAX) this trains the same model twice, each in a fresh
process: *plain*, the framework's own loop (``model.fit`` for Keras, the usual
``autocast``/``GradScaler`` loop for torch) with no shadow and nothing recorded, and
*fpharness*, :func:`harness.execution.training.train` (the low-precision run, its float64
shadow, every layer's tensors compared each step). It prints the seconds of both (the
training itself, models built and compiled included, imports not) and their ratio, the
number to compare on a noisy machine, and the process's wall time with imports.

Model: 16 inputs → Dense(64, relu) ×3 → Dense(1, sigmoid), Adam (lr 1e-3), binary
cross-entropy, ``mixed_float16``, 50 steps of 64 rows.

Usage::

    python benchmarks/bench_training.py                 # all three
    python benchmarks/bench_training.py --only torch --policy float16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STEPS, BATCH, FEATURES, WIDTH = 50, 64, 16, 64


def _data() -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS * BATCH, FEATURES))
    return x, (x[:, :1] > 0).astype(np.float64)


def keras_model() -> Any:
    import keras

    return keras.Sequential([keras.Input((FEATURES,)), *(keras.layers.Dense(WIDTH, activation="relu") for _ in range(3)),
                             keras.layers.Dense(1, activation="sigmoid")])


def torch_model() -> Any:
    import torch

    layers: list[Any] = []
    width = FEATURES
    for _ in range(3):
        layers += [torch.nn.Linear(width, WIDTH), torch.nn.ReLU()]
        width = WIDTH
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 1), torch.nn.Sigmoid())


def _plain(framework: str, policy: str) -> float:
    x, y = _data()
    t0 = time.perf_counter()
    if framework == "torch":
        import torch

        torch.manual_seed(0)
        model = torch_model()
        dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16}
        if policy in dtypes:
            model = model.to(dtypes[policy])
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=False)
        scaler = torch.amp.GradScaler("cpu") if policy == "mixed_float16" else None
        xt, yt = torch.as_tensor(x), torch.as_tensor(y)
        for step in range(STEPS):
            xb = xt[step * BATCH:(step + 1) * BATCH]
            yb = yt[step * BATCH:(step + 1) * BATCH].float()
            opt.zero_grad()
            if policy.startswith("mixed"):
                with torch.autocast("cpu", dtype=torch.float16 if "float16" in policy else torch.bfloat16):
                    pred = model(xb.float())
            else:
                pred = model(xb.to(next(model.parameters()).dtype))
            loss = torch.nn.functional.binary_cross_entropy(pred.float(), yb)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
    else:
        import keras

        keras.config.set_dtype_policy(policy)
        keras.utils.set_random_seed(0)
        model = keras_model()
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        model.fit(x.astype("float32"), y.astype("float32"), batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    return time.perf_counter() - t0


def _fpharness(framework: str, policy: str) -> float:
    sys.path.insert(0, str(ROOT))
    from harness.execution.training import train
    from harness.frameworks.training import OptimizerConfig
    from harness.plan.scenarios import Resolved, Scenario

    x, y = _data()
    fw = "torch" if framework == "torch" else "keras"
    scenario = Scenario(name="bench", framework=fw, backend=framework, model="<bench>", data="<bench>",
                        loss="binary_crossentropy", optimizer=OptimizerConfig("adam", (("learning_rate", 1e-3),)),
                        policy=policy, steps=STEPS, batch_size=BATCH)
    fn = torch_model if framework == "torch" else keras_model
    t0 = time.perf_counter()
    result = train(Resolved(scenario, fn, x, y, "binary_crossentropy"))
    seconds = time.perf_counter() - t0
    if result.status == "error":
        raise SystemExit(f"{framework}: {result.error}\n{result.traceback}")
    return seconds


def _child(framework: str, what: str, policy: str) -> None:
    seconds = (_plain if what == "plain" else _fpharness)(framework, policy)
    print(json.dumps({"seconds": seconds}))


def _run(framework: str, what: str, policy: str) -> tuple[float, float]:
    env = dict(os.environ, KERAS_BACKEND=framework if framework != "torch" else "tensorflow", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", framework, what, policy], env=env, capture_output=True,
                         text=True, check=False)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{framework} {what} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"], wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("torch", "tensorflow", "jax"))
    parser.add_argument("--policy", default="mixed_float16")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    frameworks = [args.only] if args.only else ["torch", "tensorflow", "jax"]
    print(f"{STEPS} steps of {BATCH} rows, {FEATURES} → 3×Dense({WIDTH}, relu) → Dense(1, sigmoid), Adam, BCE, "
          f"{args.policy}; one process each, {os.cpu_count()} cores")
    print(f"{'framework':<12} {'plain s':>8} {'fpharness s':>12} {'ratio':>6} {'wall s (with imports)':>22}")
    for fw in frameworks:
        plain, _ = _run(fw, "plain", args.policy)
        ours, wall = _run(fw, "fpharness", args.policy)
        print(f"{fw:<12} {plain:8.2f} {ours:12.2f} {ours / plain:6.2f} {wall:22.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
