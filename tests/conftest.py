"""Shared test configuration: slow sweeps run only with --run-slow (or FPHARNESS_SLOW=1)."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow") or os.environ.get("FPHARNESS_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow sweep: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _undo_jax_cache_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """``fpharness check``/``run`` called in-process set FPHARNESS_JAX_CACHE_DIR (for their
    worker processes); restore it after each test so no later test inherits the directory."""
    monkeypatch.setenv("FPHARNESS_JAX_CACHE_DIR", "")
