"""A planted model for the README's training example: its third layer overflows float16.

Linear(4→8, all 1/4) → ReLU → Linear(8→8, all 8) → Linear(8→1, all 2⁻¹⁰); the inputs of
step k are all 2^(k-1), so the third layer outputs 2^(k+5), which passes float16's largest
value (65504) at step 11. torch is imported inside the function.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def planted() -> Any:
    import torch

    m = torch.nn.Sequential(torch.nn.Linear(4, 8, bias=False), torch.nn.ReLU(), torch.nn.Linear(8, 8, bias=False),
                            torch.nn.Linear(8, 1, bias=False))
    with torch.no_grad():
        m[0].weight.fill_(0.25)
        m[2].weight.fill_(8.0)
        m[3].weight.fill_(2.0**-10)
    return m


def growing() -> tuple[np.ndarray, np.ndarray]:
    """Batches of 4 rows whose values double every step."""
    x = np.concatenate([np.full((4, 4), 2.0**k) for k in range(20)])
    return x, np.zeros((x.shape[0], 1))
