"""Running training scenarios: the low-precision run and its float64 shadow, step by step.

:func:`train` runs one resolved scenario in this process (the plugin's ``assert_trains``
does); :func:`run_scenarios` runs a suite's scenarios, each in a fresh Python process,
because Keras picks its backend once per process (``KERAS_BACKEND``) and keeps its dtype
policy in a global, and because a model that crashes its process must fail that scenario
only.

Before any scenario trains, :func:`run_scenarios` checks them all (one process per
framework backend builds each model twice, low precision and float64, and runs a first
step of both): a model function that fails, layers that cannot run in float64 or data of
the wrong shape stop the command with one line (exit 2) before an hour of training. An
exception *during* training is the scenario's result (``status = "error"``, with the step
and the end of its traceback), and the other scenarios still run.

The low-precision run stops early once its weights are non-finite: every later step would
only carry the NaN on, and the verdict is already decided.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.frameworks.trainers import make_trainers
from harness.frameworks.training import TrainerPair, error_line, get_policy
from harness.judgement.training import ScenarioResult, StepRecord, compare_step, first_nonfinite
from harness.plan.scenarios import Resolved, Scenario
from oracles.errors import UsageError

__all__ = ["WORKER", "preflight", "run_scenarios", "train"]

#: the module a scenario's process runs (``python -m``)
WORKER = "harness.execution.train_worker"
#: frames of a mid-run traceback kept in the result (the innermost ones: where it broke)
TRACEBACK_LINES = 8

Progress = Callable[[str], None]


def _pair(r: Resolved) -> TrainerPair:
    s = r.scenario
    return make_trainers(s.framework, r.model_fn, loss=r.loss, optimizer=s.optimizer, policy=get_policy(s.policy),
                         seed=s.seed)


def preflight(r: Resolved) -> None:
    """Build the scenario's two models and run a first step of each (on models built for
    this check alone), so that a model that cannot be built, cannot run in float64 or does
    not fit the data fails here, as one :class:`UsageError`, before any training."""
    s = r.scenario
    where = f"scenario {s.name!r}"
    try:
        pair = _pair(r)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the user's model could not be set up for training
        raise UsageError(f"{where}: the model cannot be set up for training: {error_line(exc)}") from None
    x, y = r.batch(1)
    for run, trainer in (("low-precision", pair.low), ("float64 shadow", pair.shadow)):
        try:
            trainer.step(1, x, y)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - the user's model or data does not fit
            hint = (f"the model cannot run in float64: {error_line(exc)}" if run == "float64 shadow"
                    else f"the model cannot train on the data (x {x.shape}, y {y.shape}; check the data's shape): "
                         f"{error_line(exc)}")
            raise UsageError(f"{where}: {hint}") from None


def train(r: Resolved, *, until: int | None = None, progress: Progress | None = None) -> ScenarioResult:
    """Run a resolved scenario (both runs) in this process; ``until`` stops after that
    step. Never raises for what happens during training: an exception is the result."""
    s = r.scenario
    policy = get_policy(s.policy)
    steps = min(s.steps, until) if until else s.steps
    started = time.perf_counter()
    records: list[StepRecord] = []
    layers: tuple[tuple[str, str], ...] = ()
    version = ""
    head = _head(s, steps, r.batch_size)
    step = 0
    stopped = ""
    cautions: list[str] = []
    seen_narrow: set[str] = set()
    try:
        pair = _pair(r)
        version = pair.version
        for step in range(1, steps + 1):
            x, y = r.batch(step)
            low = pair.low.step(step, x, y)
            shadow = pair.shadow.step(step, x, y)
            ran = tuple((lt.name, lt.kind) for lt in low.layers)
            if not layers:
                layers = ran
                cautions += _cautions(layers)
            elif ran != layers:
                raise ValueError(f"the model ran other layers in step {step} than in step 1 ({_names(ran)} against "
                                 f"{_names(layers)}); per-layer records need the same layers every step")
            narrow = [n for n in shadow.extra.get("not_float64", ()) if n not in seen_narrow]
            if narrow:
                seen_narrow.update(narrow)
                cautions.append(f"the float64 shadow computed {', '.join(narrow)} in a narrower format (from step "
                                f"{step}): those layers are compared with less than float64")
            records.append(compare_step(low, shadow, compute=policy.compute, variables=policy.variables,
                                        loss_dtype=policy.loss_dtype))
            if progress is not None:
                progress(f"{s.name}: step {step}/{steps}")
            if not low.weights_finite:
                if step < steps:
                    stopped = (f"stopped after step {step} of {steps}: the low-precision weights are non-finite, and "
                               "every later step would only carry that on")
                break
    except Exception as exc:  # noqa: BLE001 - a model that raises mid-run fails its scenario only
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        summary = "".join(tb).strip().splitlines()[-TRACEBACK_LINES:]
        where = f"at step {step}" if step else "while building"
        return replace(head, status="error", layers=layers, cautions=tuple(cautions), records=tuple(records),
                       first=first_nonfinite(records, layers), error=f"{where}: {error_line(exc)}",
                       error_step=step or None, traceback="\n".join(summary), seconds=time.perf_counter() - started,
                       version=version)
    first = first_nonfinite(records, layers)
    absorbed = first_nonfinite(records, layers, absorbed=True)
    return replace(head, status="finite" if first is None else "nonfinite", layers=layers, records=tuple(records),
                   first=first, seconds=time.perf_counter() - started, version=version, stopped=stopped,
                   absorbed=None if absorbed == first else absorbed, cautions=tuple(cautions))


#: layer kinds that draw random numbers: their draws in float64 and in a 16-bit format can
#: differ (a uniform number compared with a rate rounds differently), so the two runs may
#: not drop the same units
_RANDOM_KINDS = ("Dropout", "Noise", "RandomZoom", "RandomFlip", "RandomRotation", "RandomCrop", "RReLU")


def _cautions(layers: tuple[tuple[str, str], ...]) -> list[str]:
    random = [name for name, kind in layers if any(k in kind for k in _RANDOM_KINDS)]
    if not random:
        return []
    return [f"random layers ({', '.join(random)}): both runs are seeded alike each step, but a draw compared in "
            "two formats can fall differently, so their masks may differ; some of the distance from the shadow is "
            "that, not rounding"]


def _names(layers: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(name for name, _kind in layers)


# -- one process per scenario ------------------------------------------------------------------


def _env(backend: str) -> dict[str, str]:
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend if backend in ("tensorflow", "jax") else env.get("KERAS_BACKEND", "tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _worker(mode: str, scenarios: Sequence[Scenario], *, until: int | None, timeout: float) -> dict[str, Any]:
    """Run the worker on ``scenarios`` (all of one backend); its JSON answer."""
    with tempfile.TemporaryDirectory(prefix="fpharness-train-") as tmp:
        spec = Path(tmp) / "spec.json"
        out = Path(tmp) / "out.json"
        spec.write_text(json.dumps({"mode": mode, "until": until, "scenarios": [s.to_json() for s in scenarios]}),
                        encoding="utf-8")
        try:
            proc = subprocess.run([sys.executable, "-m", WORKER, str(spec), str(out)], env=_env(scenarios[0].backend),
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return {"timeout": timeout}
        if out.exists():
            answer: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
            return answer
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-TRACEBACK_LINES:]
        return {"crashed": proc.returncode, "tail": "\n".join(tail)}


def _head(s: Scenario, steps: int, batch_size: int) -> ScenarioResult:
    """The result's description of the scenario, before anything ran (a loss given as
    ``file.py:function`` is named by its function)."""
    return ScenarioResult(name=s.name, framework=s.framework, backend=s.backend, policy=s.policy,
                          optimizer=s.optimizer.id, loss=s.loss.rpartition(":")[2], steps=steps,
                          batch_size=batch_size, seed=s.seed, status="finite", suite=s.suite, fixes=s.fixes,
                          claim=s.claim, note=s.note)


def _crashed(s: Scenario, answer: dict[str, Any], steps: int) -> ScenarioResult:
    if "timeout" in answer:
        error = f"timed out after {answer['timeout']:g} s (the scenario's timeout)"
        tail = ""
    else:
        error = f"its process died (exit code {answer['crashed']}) before it wrote a result"
        tail = answer.get("tail", "")
    return replace(_head(s, steps, s.batch_size or 0), status="error", error=error, traceback=tail)


def run_scenarios(scenarios: Sequence[Scenario], *, jobs: int = 1, until: int | None = None,
                  progress: Progress | None = None,
                  on_result: Callable[[ScenarioResult], None] | None = None) -> list[ScenarioResult]:
    """Check every scenario (one process per backend), then train each in its own process,
    ``jobs`` at a time; the results in the scenarios' order. ``on_result`` hears of each
    result as it arrives, so that a caller interrupted (Ctrl-C: the pending scenarios are
    cancelled and ``KeyboardInterrupt`` propagates) still has the finished ones."""
    groups: dict[tuple[str, str], list[Scenario]] = {}
    for s in scenarios:
        groups.setdefault((s.framework, s.backend), []).append(s)
    for group in groups.values():
        if progress is not None:
            progress(f"checking {len(group)} {group[0].framework}/{group[0].backend} scenario(s)")
        answer = _worker("check", group, until=until, timeout=max(s.timeout for s in group))
        if "usage" in answer:
            raise UsageError(answer["usage"])
        if "timeout" in answer or "crashed" in answer:
            raise UsageError(f"checking the {group[0].framework}/{group[0].backend} scenarios failed: "
                             + (f"timed out after {answer['timeout']:g} s" if "timeout" in answer
                                else f"the process died (exit code {answer['crashed']}): {answer.get('tail', '')}"))

    def one(s: Scenario) -> ScenarioResult:
        steps = min(s.steps, until) if until else s.steps
        answer = _worker("train", [s], until=until, timeout=s.timeout)
        if "usage" in answer:
            raise UsageError(answer["usage"])
        result = ScenarioResult.from_json(answer["result"]) if "result" in answer else _crashed(s, answer, steps)
        if progress is not None:
            progress(f"{s.name}: {result.status}")
        if on_result is not None and not stop.is_set():
            on_result(result)
        return result

    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = [pool.submit(one, s) for s in scenarios]
        return [f.result() for f in futures]
    except KeyboardInterrupt:
        # what finishes after this (its process was interrupted too) is not a result
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=False)
