"""A user's precision test: my_softplus in three formats, on the CPU and on a GPU.

Run with ``pytest examples/test_my_softplus.py``; the CUDA cases skip cleanly without a
GPU. See examples/README.md for what a failure looks like.
"""

import pytest
import torch

from harness.testing.plugin import precision_params


def my_softplus(x: torch.Tensor) -> torch.Tensor:
    """The op under test: softplus that cannot overflow, max(x, 0) + log1p(exp(-|x|))."""
    return torch.clamp(x, min=0) + torch.log1p(torch.exp(-torch.abs(x)))


CASES = precision_params(dtypes=["float16", "bfloat16", "float32"], devices=["cpu", "cuda"], frameworks=["torch"])


@pytest.mark.parametrize(*CASES)
def test_my_softplus(precision, framework, device, dtype):
    precision(my_softplus, oracle="softplus", max_ulp=2)
