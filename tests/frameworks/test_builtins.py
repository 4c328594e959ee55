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
from oracles import FLOAT32, Oracle, UsageError, all_oracles, evaluate, get_format, get_oracle

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
@pytest.mark.parametrize("oracle", [o for o in all_oracles() if o.module == "oracles.catalogue"], ids=str)
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


# -- declared unsupported formats are still unsupported -----------------------------------

_DECLARED = [pytest.param(i.id, d, id=f"{i.id}-{d}") for i in IMPLS for d in i.unsupported_dtypes]


@pytest.mark.parametrize(("impl_id", "dtype"), _DECLARED)
def test_a_declared_unsupported_format_still_raises(impl_id: str, dtype: str) -> None:
    """If a framework learns the format, the declaration must go (its cells would be judged
    anyway, but the declaration would hide a later regression as 'unsupported')."""
    from harness.execution.runner import Runner
    from harness.plan.cells import CellSpec

    impl = IMPLS.get(impl_id)
    result = Runner().run(CellSpec(impl.oracle, impl.id, impl.framework, dtype, "cpu", "special"))
    if result.status == "skipped":
        pytest.skip(result.reason)
    assert result.status == "unsupported", result.reason
    assert result.reason.startswith(f"no {dtype} support in {impl.framework}: ")


def test_numpy_logsumexp_and_cross_entropy_declare_bfloat16() -> None:
    assert [p.id for p in _DECLARED] == ["numpy.cross_entropy-bfloat16", "numpy.logsumexp-bfloat16"]


# -- names a user gets wrong: what they probably meant (issue 14, section 5) ---------------

WRONG_NAMES = [
    pytest.param("numpy.softplus", ["unknown implementation 'numpy.softplus'; pick from: numpy.bce_with_logits,",
                                    "(numpy.*; ", "; numpy implements softplus as numpy.logaddexp"],
                 id="oracle-name-after-framework"),
    pytest.param("torch.epx", ["pick from: torch.bce_with_logits,", "; did you mean 'torch.exp'?"], id="typo"),
    pytest.param("nmpy.exp", ["; did you mean 'numpy.exp'?",
                              "'nmpy' is not a framework (numpy, torch, tensorflow, keras, jax)"], id="framework-typo"),
    pytest.param("jax.logaddexp", ["jax implements softplus as jax.softplus"], id="another-frameworks-name"),
    pytest.param("tensorflow.cross_entropy", ["tensorflow implements cross_entropy as"
                                              " tensorflow.softmax_cross_entropy_with_logits and"
                                              " tensorflow.sparse_softmax_cross_entropy_with_logits"],
                 id="two-builtins-for-one-oracle"),
]


@pytest.mark.parametrize(("name", "fragments"), WRONG_NAMES)
def test_an_unknown_implementation_says_what_was_probably_meant(name: str, fragments: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        IMPLS.get(name)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    assert message.count(",") < 40, "not every built-in in one line"


WRONG_OTHER_NAMES = [
    pytest.param(lambda: get_oracle("softpls"), "unknown oracle 'softpls'; pick from: ", "; did you mean 'softplus'?",
                 id="oracle"),
    pytest.param(lambda: get_format("bfloat"), "unknown dtype 'bfloat'; pick from: ", "; did you mean 'bfloat16'?",
                 id="dtype"),
    pytest.param(lambda: get_format("float8"), "unknown dtype 'float8'; pick from: bfloat16, float16", "float64",
                 id="dtype-nothing-close"),
    pytest.param(lambda: get_backend("pytorch"), "unknown framework 'pytorch'; pick from: ", "; did you mean 'torch'?",
                 id="framework"),
]


@pytest.mark.parametrize(("call", "start", "end"), WRONG_OTHER_NAMES)
def test_other_unknown_names_say_what_was_probably_meant(call: Any, start: str, end: str) -> None:
    with pytest.raises(UsageError) as info:
        call()
    assert str(info.value).startswith(start) and str(info.value).endswith(end)


def test_an_unknown_device_says_what_was_probably_meant() -> None:
    assert get_backend("numpy").device_unavailable("cuda0") == "unknown device 'cuda0'; pick from: cpu, cuda; did you mean 'cuda'?"
