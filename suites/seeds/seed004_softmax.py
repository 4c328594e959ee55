"""Seed 004_885b73b0c101fc7a.txt: "Why does my custom PyTorch softmax function produce NaN
values?"

Three PyTorch functions and the native modules the document compares them with:

* ``naive_softmax``: ``exp(x) / sum(exp(x))``, against ``nn.Softmax(dim=-1)`` (built-in
  ``torch.softmax``); oracle ``softmax``;
* ``stable_softmax``: the same after subtracting the row maximum; oracle ``softmax``;
* ``log_softmax``: ``x - max - log(sum(exp(x - max)))``, against ``nn.LogSoftmax``
  (``torch.log_softmax``); oracle ``log_softmax``;
* the custom ``log_softmax`` followed by ``nn.NLLLoss``, against ``nn.LogSoftmax`` +
  ``nn.NLLLoss`` (``torch.nll_log_softmax``); oracle ``cross_entropy`` (the negative log
  of the target's softmax probability), per sample (``reduction="none"``) and as the
  document calls it (``nn.NLLLoss()`` averages: ``reduction="mean"``).

Every oracle here is in the catalogue; this module registers none.
"""

from __future__ import annotations

from typing import Any

from suites.seeds.claims import Check, Claim, Seed, SeedImpl

__all__ = ["SEED", "log_softmax", "naive_softmax", "nll_custom_log_softmax", "stable_softmax"]

MODULE = "suites.seeds.seed004_softmax"


def naive_softmax(x: Any) -> Any:
    """exp_x = torch.exp(x); exp_x / torch.sum(exp_x, dim=-1, keepdim=True)"""
    import torch

    exp_x = torch.exp(x)
    return exp_x / torch.sum(exp_x, dim=-1, keepdim=True)


def stable_softmax(x: Any) -> Any:
    """x_max = torch.max(x, dim=-1, keepdim=True).values; exp_x = torch.exp(x - x_max); exp_x / sum(exp_x)"""
    import torch

    x_max = torch.max(x, dim=-1, keepdim=True).values
    exp_x = torch.exp(x - x_max)
    return exp_x / torch.sum(exp_x, dim=-1, keepdim=True)


def log_softmax(x: Any) -> Any:
    """x - x_max - torch.log(torch.sum(torch.exp(x - x_max), dim=-1, keepdim=True))"""
    import torch

    x_max = torch.max(x, dim=-1, keepdim=True).values
    return x - x_max - torch.log(torch.sum(torch.exp(x - x_max), dim=-1, keepdim=True))


def nll_custom_log_softmax(logits: Any, target: Any, *, reduction: str = "mean") -> Any:
    """nn.NLLLoss(reduction=reduction)(log_softmax(logits), target) with the custom log_softmax"""
    from torch import nn

    log_probs = log_softmax(logits)
    nll_loss = nn.NLLLoss(reduction=reduction)
    return nll_loss(log_probs, target)


SEED = Seed(
    file="004_885b73b0c101fc7a.txt",
    title="Why does my custom PyTorch softmax function produce NaN values?",
    module=MODULE,
    impls=(
        SeedImpl(
            label="naive_softmax",
            impl=f"{MODULE}:naive_softmax",
            code="exp(x) / sum(exp(x))",
            claims=(
                Claim(
                    quote="results in NaN output",
                    meaning="on the document's example rows (1000 ... 6000) the output is NaN",
                    check=Check("softmax", "defect", ("unexpected_nan",), inputs=("npz:",)),
                ),
                Claim(
                    quote="results in NaN output",
                    meaning="and so does the backward pass on those rows, where the softmax's gradient is finite",
                    check=Check("softmax", "defect", ("unexpected_nan",), inputs=("npz:",), wrt="x"),
                ),
            ),
            grad_note=(
                "Without the max subtraction exp(x) overflows (or underflows to 0 in every entry of"
                " a row), and autograd's backward pass of exp_x / sum(exp_x) divides and"
                " multiplies those infinities and zeros: NaN, where the softmax and its gradient are"
                " finite. stable_softmax's backward pass goes through the same operations on"
                " x - max(x) and has no NaN."
            ),
        ),
        SeedImpl(
            label="stable_softmax",
            impl=f"{MODULE}:stable_softmax",
            code="exp(x - max) / sum(exp(x - max))",
            claims=(
                Claim(
                    quote="accurate probabilities even with large input numbers",
                    meaning="no NaN/Inf and no lost-to-zero for any finite row (we read 'accurate' as within 4 ulp)",
                    check=Check("softmax", "clean", ("unexpected_nan", "unexpected_inf", "lost_to_zero"), max_ulp=4),
                ),
            ),
        ),
        SeedImpl(
            label="nn.Softmax (reference)",
            impl="torch.softmax",
            code="torch.softmax(x, dim=-1)",
            builtin=True,
            claims=(
                Claim(
                    quote="handles these values without issues",
                    meaning="no NaN/Inf on the document's example rows",
                    check=Check("softmax", "clean", ("unexpected_nan", "unexpected_inf"), inputs=("npz:",)),
                ),
            ),
        ),
        SeedImpl(
            label="log_softmax (custom)",
            impl=f"{MODULE}:log_softmax",
            code="x - max - log(sum(exp(x - max)))",
            claims=(
                Claim(
                    quote="better numeric precision",
                    meaning="as precise as the log-softmax the document compares it with, nn.LogSoftmax",
                    check=Check(
                        "log_softmax", "like", ("unexpected_nan", "unexpected_inf", "lost_to_zero"),
                        max_ulp=1, versus="torch.log_softmax",
                    ),
                ),
            ),
        ),
        SeedImpl(
            label="nn.LogSoftmax (reference)",
            impl="torch.log_softmax",
            code="torch.log_softmax(x, dim=-1)",
            builtin=True,
        ),
        SeedImpl(
            label="log_softmax + nn.NLLLoss",
            impl=f"{MODULE}:nll_custom_log_softmax",
            code="nn.NLLLoss()(log_softmax(logits), target)",
            claims=(
                Claim(
                    quote="both achieve very similar loss",
                    meaning="the custom log_softmax + NLLLoss is as good as nn.LogSoftmax + nn.NLLLoss",
                    check=Check(
                        "cross_entropy", "like", ("unexpected_nan", "unexpected_inf", "lost_to_zero"),
                        max_ulp=1, versus="torch.nll_log_softmax",
                    ),
                ),
            ),
        ),
        SeedImpl(
            label="nn.LogSoftmax + nn.NLLLoss (reference)",
            impl="torch.nll_log_softmax",
            code="F.nll_loss(F.log_softmax(logits, dim=-1), target)",
            builtin=True,
        ),
    ),
)
