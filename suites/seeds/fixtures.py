"""The seed documents' own example data, as ``npz:`` input files for suites/seeds.toml.

Every array here is copied from a seed document (or, for seed 003's Example 2, which has no
data, built to hit the one case the document worries about: a denominator that is exactly
zero). The ``.npz`` files under ``suites/seeds/inputs/`` are generated from this module,
never edited::

    python -m suites.seeds.fixtures            # rewrites suites/seeds/inputs/*.npz

Arrays are float32 (the documents' dtype). A file listed with ``dtypes`` of 16-bit formats
holds only values exact in those formats too; the others are used in float32 cells only
(``fpharness`` refuses an input it would have to round, rather than rounding it).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FIXTURES", "INPUTS_DIR", "Fixture", "load", "write_all"]

INPUTS_DIR = Path(__file__).with_name("inputs")


@dataclass(frozen=True, slots=True)
class Fixture:
    """One ``npz`` file: arrays named after the oracle's arguments."""

    name: str
    source: str
    arrays: dict[str, Any] = field(hash=False)
    dtypes: tuple[str, ...] = ("float32",)

    @property
    def path(self) -> Path:
        return INPUTS_DIR / f"{self.name}.npz"

    @property
    def spec(self) -> str:
        """The input spec suites/seeds.toml uses (relative to the repository root)."""
        return f"npz:suites/seeds/inputs/{self.name}.npz"

    def as_numpy(self) -> dict[str, Any]:
        return {
            k: np.asarray(v, dtype=np.int64 if k == "target" else np.float32) for k, v in self.arrays.items()
        }


_ALL16 = ("float16", "bfloat16", "float32")

FIXTURES: tuple[Fixture, ...] = (
    Fixture(
        "seed001_problematic",
        "seed 001 Example 1: y_true_example, y_pred_problematic",
        {"p": [0.0, 1.0, 0.0, 1.0], "y": [1.0, 0.0, 1.0, 0.0]},
        _ALL16,
    ),
    Fixture(
        "seed001_okay",
        "seed 001 Example 1: y_true_example, y_pred_okay",
        {"p": [0.1, 0.9, 0.99, 0.01], "y": [1.0, 0.0, 1.0, 0.0]},
    ),
    Fixture(
        "seed002_x_train",
        "seed 002: x_train of MyCustomLayer (a constant row, 1..10, a zero row)",
        {"x": [[1.0] * 10, [float(i) for i in range(1, 11)], [0.0] * 10]},
        _ALL16,
    ),
    Fixture(
        "seed003_zero_denominator",
        "seed 003 Example 2 has no data: rows with sum(y_pred - y_true) == 0 exactly, and one nearly",
        {
            "p": [[1, 2, 3, 4], [0, 0, 0, 0], [1, 0, 0, 0], [0.5, -0.5, 2, 0], [-1, -2, -3, -4], [1, 1, 1, 1.0078125]],
            "y": [[1, 2, 3, 4], [0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [-1, -2, -3, -4], [1, 1, 1, 1]],
        },
        _ALL16,
    ),
    Fixture(
        "seed003_example3",
        "seed 003 Example 3: y_true = [1000, 2000, 3000], y_pred = [1001, 2001, 3001]",
        {"p": [[1001.0, 2001.0, 3001.0]], "y": [[1000.0, 2000.0, 3000.0]]},
    ),
    Fixture(
        "seed004_example",
        "seed 004 Examples 1 and 2: x = [[1000, 2000, 3000], [4000, 5000, 6000]]",
        {"x": [[1000.0, 2000.0, 3000.0], [4000.0, 5000.0, 6000.0]]},
        ("float16", "float32"),
    ),
    Fixture(
        "seed004_example_nll",
        "seed 004: the Example 1 rows as logits, targets 0 and 1 (Example 3's first targets)",
        {"logits": [[1000.0, 2000.0, 3000.0], [4000.0, 5000.0, 6000.0]], "target": [0, 1]},
        ("float16", "float32"),
    ),
)


def load(name: str) -> Fixture:
    """The fixture called ``name``; KeyError lists the names."""
    for f in FIXTURES:
        if f.name == name:
            return f
    raise KeyError(f"no fixture {name!r}; fixtures: {', '.join(f.name for f in FIXTURES)}")


def write_all(directory: Path = INPUTS_DIR) -> list[Path]:
    """Write every fixture as ``directory/NAME.npz``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for f in FIXTURES:
        path = directory / f"{f.name}.npz"
        np.savez(path, **f.as_numpy())
        out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for path in write_all(Path(args[0]) if args else INPUTS_DIR):
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
