"""The process a training scenario runs in: ``python -m harness.execution.train_worker SPEC OUT``.

SPEC is a JSON file ``{"mode": "check" | "train", "until": N | null, "scenarios": [...]}``;
the answer, written atomically to OUT, is ``{"ok": true}`` (check), ``{"result": {...}}``
(train: a :class:`~harness.judgement.training.ScenarioResult`) or ``{"usage": "one line"}``
for a scenario that cannot run. :mod:`harness.execution.training` starts it with
``KERAS_BACKEND`` set, which is why it is a process of its own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.execution.training import preflight, train
from harness.plan.scenarios import Scenario, resolve
from oracles.atomic import atomic_write_text
from oracles.errors import UsageError


def main(argv: list[str]) -> int:
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    scenarios = [Scenario.from_json(d) for d in spec["scenarios"]]
    try:
        if spec["mode"] == "check":
            for s in scenarios:
                preflight(resolve(s))
            answer: dict[str, object] = {"ok": True}
        else:
            result = train(resolve(scenarios[0]), until=spec.get("until"))
            answer = {"result": result.to_json()}
    except UsageError as exc:
        answer = {"usage": str(exc)}
    atomic_write_text(out_path, json.dumps(answer, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
