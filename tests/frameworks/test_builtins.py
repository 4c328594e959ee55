"""The built-in implementations: the registry agrees with the oracles, and every built-in
runs through its framework's adapter on a small float32 input with the oracle's shapes and
parameters and lands near the oracle (a wrong axis, argument order or reduction would not)."""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from harness.frameworks.adapters import get_backend
from harness.frameworks.catalogue import IMPLS
from harness.frameworks.registry import FRAMEWORKS, Impl
from oracles import FLOAT32, Oracle, all_oracles, evaluate, get_oracle

ALL = list(IMPLS)

ROWS, WIDTH = 4, 3


def _param_sets(oracle: Oracle) -> list[dict[str, Any]]:
    """The parameter values each built-in is run with: defaults, then every reduction and a
    non-default softplus beta (the adapters compute these themselves)."""
    names = {p.name for p in oracle.params}
    sets: list[dict[str, Any]] = [{}]
    if "reduction" in names:
        sets += [{"reduction": "mean"}, {"reduction": "sum"}]
    if "beta" in names:
        sets.append({"beta": 2.0})
    return sets


CASES = [
    pytest.param(impl, params, id=f"{impl.id}-{'-'.join(f'{k}={v}' for k, v in params.items()) or 'default'}")
    for impl in ALL
    for params in _param_sets(get_oracle(impl.oracle))
]


@cache
def _inputs(oracle_name: str) -> tuple[npt.NDArray[Any], ...]:
    """float32 inputs inside every oracle's domain (0 < p < 1 for probabilities, x > 0 for
    log), 2-D for row-wise oracles, class indices within the width."""
    oracle = get_oracle(oracle_name)
    rng = np.random.default_rng(sum(map(ord, oracle_name)))
    shape = (5,) if oracle.kind == "elementwise" else (ROWS, WIDTH)
    out: list[npt.NDArray[Any]] = []
    for arg in oracle.args:
        if arg.kind == "index":
            out.append(rng.integers(0, WIDTH, ROWS).astype(np.int64))
        else:
            out.append(rng.uniform(0.05, 0.95, shape).astype(np.float32))
    return tuple(out)


def _expected_shape(oracle: Oracle, params: dict[str, Any]) -> tuple[int, ...]:
    if params.get("reduction", "none") != "none":
        return ()
    if oracle.kind == "row_reduce":
        return (ROWS,)
    return _inputs(oracle.name)[0].shape


# -- the registry -----------------------------------------------------------------------------


def test_builtins_are_registered() -> None:
    assert len(ALL) > 50


@pytest.mark.parametrize("impl", ALL, ids=str)
def test_builtin_names_an_existing_oracle(impl: Impl) -> None:
    assert get_oracle(impl.oracle).name == impl.oracle


@pytest.mark.parametrize("impl", ALL, ids=str)
def test_builtin_id_is_framework_dot_name(impl: Impl) -> None:
    framework, _, name = impl.id.partition(".")
    assert framework == impl.framework
    assert framework in FRAMEWORKS
    assert name and name.replace("_", "").replace(".", "").isalnum()


@pytest.mark.parametrize("impl", ALL, ids=str)
def test_builtin_says_what_it_calls(impl: Impl) -> None:
    # the docstring's first line is what `fpharness impls` shows: it must name a call
    assert "(" in impl.doc, f"{impl.id} needs a one-line docstring naming the public call"
    assert not impl.custom


@pytest.mark.parametrize("impl", ALL, ids=str)
def test_builtin_declares_only_real_parameters(impl: Impl) -> None:
    names = {p.name for p in get_oracle(impl.oracle).params}
    assert set(impl.unsupported) <= names


# the built-in catalogue only: tests elsewhere in this process register oracles of their own
@pytest.mark.parametrize("oracle", [o for o in all_oracles() if o.fn.__module__ == "oracles.catalogue"], ids=str)
@pytest.mark.parametrize("framework", ["numpy", "torch"])
def test_every_oracle_has_a_numpy_and_a_torch_builtin(oracle: Oracle, framework: str) -> None:
    found = [i.id for i in ALL if i.oracle == oracle.name and i.framework == framework]
    assert found, f"oracle {oracle.name} has no {framework} built-in"


def test_registering_builtins_imports_no_framework() -> None:
    # a fresh interpreter: this process has long since imported the frameworks
    code = (
        "import sys; from harness.frameworks.catalogue import IMPLS; n = len(list(IMPLS));"
        " loaded = sorted({'torch', 'tensorflow', 'keras', 'jax', 'scipy'} & set(sys.modules));"
        " print(n, loaded); assert n > 50 and not loaded, loaded"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


# -- each built-in runs ---------------------------------------------------------------------------


@cache
def _truth(oracle_name: str, items: tuple[tuple[str, Any], ...]) -> npt.NDArray[np.float64]:
    oracle = get_oracle(oracle_name)
    return evaluate(oracle, _inputs(oracle_name), FLOAT32, dict(items)).want


@pytest.mark.parametrize(("impl", "params"), CASES)
def test_builtin_runs_on_float32(impl: Impl, params: dict[str, Any]) -> None:
    backend = get_backend(impl.framework)
    # rather than pytest.importorskip: the adapter also knows keras on the wrong backend
    reason = backend.unavailable()
    if reason is not None:
        pytest.skip(reason)
    oracle = get_oracle(impl.oracle)
    bound = oracle.bind(params)
    args = [backend.to_native(a, "cpu") for a in _inputs(oracle.name)]

    got = backend.from_native(impl.fn(*args, **bound))

    assert got.dtype == np.float32, f"{impl.id} returned {got.dtype} for float32 input"
    assert got.shape == _expected_shape(oracle, params)
    want = _truth(oracle.name, tuple(sorted(bound.items())))
    np.testing.assert_allclose(got, want, rtol=1e-4, err_msg=f"{impl.id} with {params}")
