"""The seed suite: every implementation in the five seed documents, judged.

One module per seed document (its docstring names the file under ``shared/seeds/``):

* :mod:`suites.seeds.seed000_softplus`: NaiveSoftplus, StabilizedSoftplus, Keras' softplus;
* :mod:`suites.seeds.seed001_bce`: ``custom_loss_with_log`` (clipped binary cross-entropy);
* :mod:`suites.seeds.seed002_variance`: ``MyCustomLayer`` (x / var(x)) and its fix;
* :mod:`suites.seeds.seed003_losses`: three custom losses and their corrections;
* :mod:`suites.seeds.seed004_softmax`: naive/stable softmax, a custom log_softmax + NLLLoss.

Importing this package registers the user oracles the documents need (with
:func:`oracles.oracle`, the API users have) and their gradients (with
:func:`oracles.gradient`; at a clip bound, see :mod:`suites.seeds.clipping`), and imports no
ML framework. ``suites/seeds.toml``
runs everything (``fpharness run suites/seeds.toml``) and :mod:`suites.seeds.report` turns
the results into ``docs/seeds.md``.
"""

from __future__ import annotations

from suites.seeds import seed000_softplus, seed001_bce, seed002_variance, seed003_losses, seed004_softmax
from suites.seeds.claims import Check, Claim, Seed, SeedImpl

__all__ = ["SEEDS", "Check", "Claim", "Seed", "SeedImpl"]

#: the five documents, in file order
SEEDS: tuple[Seed, ...] = (
    seed000_softplus.SEED,
    seed001_bce.SEED,
    seed002_variance.SEED,
    seed003_losses.SEED,
    seed004_softmax.SEED,
)
