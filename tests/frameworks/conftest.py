"""Fixtures of the framework-adapter tests: every backend, on every device, skipped with
the backend's own reason where it is missing."""

from __future__ import annotations

import pytest

from harness.frameworks.adapters import BACKENDS, Backend, get_backend

DEVICE_PARAMS = [pytest.param("cpu"), pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.fixture(params=list(BACKENDS), ids=str)
def backend(request: pytest.FixtureRequest) -> Backend:
    b = get_backend(request.param)
    reason = b.unavailable()
    if reason is not None:
        pytest.skip(reason)
    return b


@pytest.fixture(params=DEVICE_PARAMS)
def device(request: pytest.FixtureRequest, backend: Backend) -> str:
    reason = backend.device_unavailable(request.param)
    if reason is not None:
        pytest.skip(reason)
    return str(request.param)
