"""The runner (harness/execution/runner.py): bit-exact transfer through every framework, and every
way a cell can go wrong without taking the run down.

Layer: runner integration. Implementations are custom functions written to tmp files;
the oracles are small ones registered here. Exhaustive identity cells get their reference
from an exact numpy construction (checked against the mpmath oracle on a sample below),
so the whole module runs in seconds apart from importing the frameworks.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import harness.execution.runner as runner_module
import harness.frameworks.adapters as frameworks
from harness.execution.runner import Runner
from harness.execution.schedule import run_cells
from harness.plan.cells import Budget, CellResult, CellSpec
from harness.plan.inputs import parse_inputs
from oracles import FORMATS, Format, Reference, UsageError, evaluate, get_format, get_oracle, oracle
from oracles.registry import REGISTRY

IDENTITY = "fpharness_test_identity"
BROKEN = "fpharness_test_broken"


@oracle(IDENTITY, replace=True)
def _identity(x: Any) -> Any:
    """x itself: the truth is the input, so any deviation is the transfer's fault."""
    return x


@oracle(BROKEN, replace=True)
def _broken(x: Any) -> Any:
    """Returns a string: the evaluator must refuse it (an OracleError)."""
    return "not a number"


def identity_reference(oracle_: Any, arrays: list[np.ndarray], fmt: Format, params: dict[str, Any]) -> Reference:
    """The identity oracle's Reference built exactly in numpy (what oracles.evaluate gives,
    without 65,536 mpmath evaluations per format)."""
    assert oracle_.name == IDENTITY
    (x,) = arrays
    x = np.asarray(x, dtype=np.float64)
    want = np.where(np.isnan(x), np.nan, x)
    from oracles.rounding import round_float64

    want = round_float64(want, fmt)
    finite = np.isfinite(x)
    _, e = np.frexp(np.where(finite, x, 0.0))
    ulp_exp = np.where(finite, np.maximum(e - 1, fmt.emin) - fmt.precision + 1, 0)
    ulp_exp[x == 0] = fmt.emin - fmt.precision + 1  # ulp(0) is the smallest subnormal
    hi = np.where(finite, np.ldexp(np.where(finite, x, 0.0), -ulp_exp), x)
    return Reference(want, hi, np.zeros_like(x), ulp_exp.astype(np.int32))


@pytest.fixture(scope="module")
def impl_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("impls") / "impls.py"
    path.write_text(textwrap.dedent('''
        import threading

        import numpy as np

        RELEASE = threading.Event()

        def ident(x):
            """returns its input"""
            return x

        def exp64(x):
            """exp in float64, rounded once"""
            with np.errstate(all="ignore"):
                return np.exp(x.astype(np.float64)).astype(x.dtype)

        def to_float32(x):
            return x.astype(np.float32)

        def boom(x):
            raise RuntimeError("kaboom\\nsecond line of the message")

        def too_short(x):
            return x[:-1]

        def a_string(x):
            return "hello"

        def nothing(x):
            return None

        def ints(x):
            return np.zeros(x.shape, dtype=np.int32)

        def python_float(x):
            return 1.0

        def hang(x):
            RELEASE.wait(30)
            return x
    '''))
    return path


def cell(impl: str, *, oracle_: str = IDENTITY, framework: str = "numpy", dtype: str = "float16",
         device: str = "cpu", inputs: str = "special", custom: bool | None = None, **kw: Any) -> CellSpec:
    return CellSpec(oracle_, impl, framework, dtype, device, inputs,
                    custom=(":" in impl) if custom is None else custom, **kw)


# -- the identity reference is the oracle's ------------------------------------------------


@pytest.mark.parametrize("fmt", [pytest.param(FORMATS[n], id=n) for n in ("float16", "bfloat16", "float32")])
def test_identity_reference_matches_the_oracle(fmt: Format) -> None:
    o = get_oracle(IDENTITY)
    if fmt.bits == 16:  # a sample of every 97th pattern, NaNs, infs and signed zeros included
        x = fmt.from_bits(np.unique(np.r_[np.arange(0, 65536, 97), 0, 0x8000, 0x7C00, 0xFC00, 0x7F80, 0xFF80,
                                          0x7E00, 0x7FFF, 0x0001, 0x8001]).astype(np.uint16))
    else:
        x = parse_inputs("special").generate(o, fmt).batches[0].arrays[0]
    with np.errstate(invalid="ignore"):
        x64 = x.astype(np.float64)
    assert identity_reference(o, [x64], fmt, {}).equal(evaluate(o, [x64], fmt))


# -- bit-exact transfer through every framework ---------------------------------------------

FRAMEWORKS = ("numpy", "torch", "tensorflow", "keras", "jax")


def _require(framework: str) -> frameworks.Backend:
    """The framework's backend, or a skip. Asking the backend (rather than importing the
    module here) gives the reason a user sees, and lets keras pick its TensorFlow backend
    before anything imports it."""
    backend = frameworks.get_backend(framework)
    reason = backend.unavailable()
    if reason:
        pytest.skip(reason)
    return backend


@pytest.fixture
def spy_judge(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """Every array the runner hands to the judge, so tests can compare bits, not values
    (the judge rightly counts -0 == +0 and any NaN == NaN as correctly rounded)."""
    seen: list[np.ndarray] = []
    real = runner_module.tally

    def spy(ref: Reference, got: np.ndarray, fmt: Format, **kw: Any) -> Any:
        seen.append(np.array(got, copy=True))
        return real(ref, got, fmt, **kw)

    monkeypatch.setattr(runner_module, "tally", spy)
    return seen


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(
    ("dtype", "inputs"),
    [
        pytest.param("float16", "exhaustive", id="float16-exhaustive"),
        pytest.param("bfloat16", "exhaustive", id="bfloat16-exhaustive"),
        pytest.param("float32", "special", id="float32-special"),
        pytest.param("float32", "random:3000:1", id="float32-random"),
        pytest.param("float64", "special", id="float64-special"),
    ],
)
def test_identity_is_bit_exact_through_framework(
    framework: str, device: str, dtype: str, inputs: str, impl_file: Path, spy_judge: list[np.ndarray]
) -> None:
    """On a machine without the device (CI) the cell must be skipped with the backend's
    reason; with it, the bits must survive the trip to the device and back."""
    backend = _require(framework)
    spec = cell(f"{impl_file}:ident", framework=framework, device=device, dtype=dtype, inputs=inputs,
                budget=Budget.build(max_ulp=0))
    result = Runner(reference=identity_reference).run(spec)
    why_not = backend.device_unavailable(device) or backend.dtype_unavailable(dtype)
    if why_not:
        assert (result.status, result.reason) == ("skipped", why_not)
        assert not spy_judge, "a skipped cell never calls the implementation"
        if framework == "jax" and dtype == "float64" and device == "cpu":
            assert "jax_enable_x64" in why_not
        return
    assert result.status == "pass", result.reason
    assert result.reason == "" and result.out_dtype == dtype
    s = result.summary
    assert s is not None
    fmt = get_format(dtype)
    x = parse_inputs(inputs).generate(get_oracle(IDENTITY), fmt).batches[0].arrays[0]
    assert s.n == s.correctly_rounded == x.size
    assert s.ulp_max == 0.0 and s.ulp_mean == 0.0
    assert s.incidence["unexpected_nan"] == s.incidence["missing_nan"] == s.incidence["unexpected_inf"] == 0
    (got,) = spy_judge
    # bits, not values: NaN payloads (signalling ones too), -0 and subnormals come back as sent
    np.testing.assert_array_equal(got.view(fmt.uint_dtype), x.view(fmt.uint_dtype))
    if inputs == "exhaustive":
        assert s.n == 65536 and s.incidence["inherent_inf"] == 2  # +-inf in, +-inf out


def test_float16_output_of_identity_keeps_minus_zero_and_payloads(impl_file: Path, spy_judge: list[np.ndarray]) -> None:
    """The judge sees -0 and NaN payloads exactly (worst-case examples print these bits)."""
    result = Runner(reference=identity_reference).run(cell(f"{impl_file}:ident", inputs="exhaustive"))
    got = spy_judge[0].view(np.uint16)
    assert 0x8000 in got and 0x7C01 in got and 0xFE00 in got
    assert result.status == "pass"


# -- error paths: the cell errs, the run goes on -------------------------------------------


@pytest.mark.parametrize(
    ("fn", "reason"),
    [
        pytest.param("boom", "RuntimeError: kaboom", id="raises"),
        pytest.param("too_short", "returned shape (", id="wrong-shape"),
        pytest.param("a_string", "must return a numpy.ndarray, got builtins.str", id="returns-string"),
        pytest.param("nothing", "must return a numpy.ndarray, got builtins.NoneType", id="returns-none"),
        pytest.param("python_float", "must return a numpy.ndarray, got builtins.float", id="returns-python-float"),
        pytest.param("ints", "returned dtype int32, expected a float format", id="returns-int-array"),
    ],
)
def test_bad_implementation_is_an_error_cell(impl_file: Path, fn: str, reason: str) -> None:
    result = Runner().run(cell(f"{impl_file}:{fn}"))
    assert result.status == "error"
    assert reason in result.reason
    assert "\n" not in result.reason and len(result.reason) <= 300
    assert result.summary is None
    assert result.to_json()["n"] == 0


def test_error_cell_does_not_stop_the_run(impl_file: Path) -> None:
    cells = [cell(f"{impl_file}:boom"), cell(f"{impl_file}:nothing"), cell(f"{impl_file}:ident")]
    seen: list[CellResult] = []
    results = run_cells(cells, on_result=seen.append)
    assert [r.status for r in results] == ["error", "error", "pass"]
    assert seen == results
    assert results[0].reason == "RuntimeError: kaboom"  # only the first line


def test_hang_past_timeout_is_an_error_and_the_run_goes_on(impl_file: Path) -> None:
    runner = Runner()
    hung = cell(f"{impl_file}:hang", timeout=1)
    # the isolated process running it is killed at the timeout: nothing is left waiting
    results = run_cells([hung, cell(f"{impl_file}:ident")], runner=runner)
    assert results[0].status == "error" and results[0].reason == "timed out after 1 s"
    assert 0.9 < results[0].seconds < 10
    assert results[1].status == "pass"


def test_broken_oracle_is_an_error_cell() -> None:
    result = Runner().run(cell("numpy.exp", oracle_=BROKEN, custom=False, inputs="random:4"))
    assert result.status == "error"
    assert result.reason.startswith("oracle: ") and "expected an mpmath number" in result.reason


# -- skip paths ------------------------------------------------------------------------------


def test_missing_framework_is_skipped_with_reason(monkeypatch: pytest.MonkeyPatch, impl_file: Path) -> None:
    # a backend whose module is not importable: what a machine without torch sees
    monkeypatch.setitem(frameworks.BACKENDS, "torch", frameworks.TorchBackend("torch", "fpharness_no_torch", "torch"))
    for spec in (cell("torch.exp", oracle_="exp", framework="torch", custom=False),
                 cell(f"{impl_file}:ident", framework="torch")):
        result = Runner().run(spec)
        assert result.status == "skipped"
        assert result.reason == "fpharness_no_torch is not installed (pip install 'fpharness[torch]')"


def test_framework_whose_import_crashes_is_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   impl_file: Path) -> None:
    (tmp_path / "fpharness_crashing_fw.py").write_text("raise RuntimeError('driver exploded\\nmore')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(frameworks.BACKENDS, "jax", frameworks.JaxBackend("jax", "fpharness_crashing_fw", "jax"))
    result = Runner().run(cell(f"{impl_file}:ident", framework="jax"))
    assert result.status == "skipped"
    assert result.reason == "importing fpharness_crashing_fw failed: RuntimeError: driver exploded"


def test_cuda_unavailable_is_skipped_with_reason(impl_file: Path) -> None:
    result = Runner().run(cell(f"{impl_file}:ident", device="cuda"))
    assert (result.status, result.reason) == ("skipped", "numpy runs on the CPU only")


def test_torch_without_cuda_is_skipped_with_reason(impl_file: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    result = Runner().run(cell("torch.exp", oracle_="exp", framework="torch", device="cuda", custom=False))
    assert result.status == "skipped" and result.reason.startswith("no CUDA device")


def test_unsupported_parameter_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.frameworks.registry import Impl

    impl = Impl("numpy.fake_softplus", "numpy", "softplus", lambda x: x, unsupported=("beta",))
    monkeypatch.setattr(runner_module, "get_impl", lambda impl_id: impl)
    spec = cell("numpy.fake_softplus", oracle_="softplus", custom=False, params=(("beta", 2.0),))
    result = Runner().run(spec)
    assert (result.status, result.reason) == ("skipped", "numpy.fake_softplus has no public API for beta=2.0")


# -- judging ------------------------------------------------------------------------------


def test_output_dtype_other_than_input_is_judged_in_its_own_format(impl_file: Path) -> None:
    result = Runner().run(cell(f"{impl_file}:to_float32", dtype="float16"))
    assert result.out_dtype == "float32"
    assert result.status == "pass"
    assert "output is float32, judged in float32" in result.reason
    assert result.to_json()["out_dtype"] == "float32" and result.to_json()["dtype"] == "float16"


def test_custom_exact_exp_is_correctly_rounded_nearly_everywhere(impl_file: Path) -> None:
    result = Runner().run(cell(f"{impl_file}:exp64", oracle_="exp", inputs="special", budget=Budget.build(1)))
    assert result.status == "pass", result.reason
    assert result.summary is not None and result.summary.ulp_max <= 0.5


def test_budget_violation_fails_the_cell(impl_file: Path) -> None:
    # the identity is not exp: most elements are far off, and finite x gives no inf where
    # exp(x) overflows (missing_inf is not allowed by this budget)
    result = Runner().run(cell(f"{impl_file}:ident", oracle_="exp", budget=Budget.build(1, {"missing_inf": 0})))
    assert result.status == "fail"
    assert "max ulp" in result.reason and "> 1" in result.reason and "missing_inf" in result.reason


def test_references_are_computed_once_per_group(impl_file: Path) -> None:
    calls: list[str] = []

    def counting(o: Any, arrays: list[np.ndarray], fmt: Format, params: dict[str, Any]) -> Reference:
        calls.append(fmt.name)
        return evaluate(o, arrays, fmt, params)

    runner = Runner(reference=counting)
    run_cells([cell(f"{impl_file}:ident"), cell(f"{impl_file}:exp64"), cell(f"{impl_file}:to_float32")], runner=runner)
    assert calls == ["float16", "float32"]  # one per output format, shared by the impls


def test_rowwise_expected_shapes(impl_file: Path, tmp_path: Path) -> None:
    impl = tmp_path / "rows.py"
    impl.write_text(textwrap.dedent('''
        import numpy as np
        def softmax(x):
            return x  # right shape, wrong values
        def lse_wrong_shape(x):
            return x  # a row reduction must return one value per row
    '''))
    ok = Runner().run(cell(f"{impl}:softmax", oracle_="softmax", inputs="random:20"))
    assert ok.status in ("pass", "fail") and ok.summary is not None and ok.summary.n == 20
    bad = Runner().run(cell(f"{impl}:lse_wrong_shape", oracle_="logsumexp", inputs="random:20"))
    assert bad.status == "error" and bad.reason == "returned shape (2, 10), expected (2,)"


# -- validation before running ------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        pytest.param(lambda f: cell(f"{f}:ident", device="gpu"), "unknown device 'gpu'; pick from: cpu, cuda",
                     id="unknown-device"),
        pytest.param(lambda f: cell(f"{f}:ident", dtype="float8"), "unknown dtype 'float8'", id="unknown-dtype"),
        pytest.param(lambda f: cell(f"{f}:ident", oracle_="nope"), "unknown oracle 'nope'", id="unknown-oracle"),
        pytest.param(lambda f: cell(f"{f}:ident", dtype="float64", inputs="exhaustive"), "streamed only for",
                     id="exhaustive-float64"),
        pytest.param(lambda f: cell("numpy.exp", oracle_="log", custom=False), "implements exp, not log",
                     id="builtin-for-other-oracle"),
        pytest.param(lambda f: cell("numpy.nope", oracle_="exp", custom=False), "unknown implementation 'numpy.nope'",
                     id="unknown-builtin"),
        pytest.param(lambda f: cell(f"{f}:missing_fn"), "has no function 'missing_fn'", id="custom-missing-function"),
        pytest.param(lambda f: cell("/no/such/file.py:f"), "does not exist", id="custom-missing-file"),
        pytest.param(lambda f: cell(f"{f}:ident", params=(("beta", 1.0),)), "unknown parameter 'beta'",
                     id="unknown-param"),
    ],
)
def test_validate_rejects_bad_plans_before_running(
    impl_file: Path, make: Callable[[Path], CellSpec], fragment: str
) -> None:
    with pytest.raises(UsageError) as exc:
        run_cells([cell(f"{impl_file}:ident"), make(impl_file)], on_result=lambda r: pytest.fail("ran a cell"))
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_test_oracles_are_in_the_registry() -> None:
    assert IDENTITY in REGISTRY and get_oracle(IDENTITY).kind == "elementwise"
    assert get_oracle(IDENTITY).doc.startswith("x itself")


# -- a format the framework lacks is unsupported; refusing NaN-truth inputs is no error ----


def test_a_builtin_in_a_format_its_framework_lacks_is_unsupported() -> None:
    spec = cell("numpy.logsumexp", oracle_="logsumexp", dtype="bfloat16", custom=False)
    result = Runner().run(spec)
    assert result.status == "unsupported"
    assert result.reason == ("no bfloat16 support in numpy: TypeError: dtype argument must be a NumPy dtype,"
                             " but it is a <class 'ml_dtypes.bfloat16'>.")
    assert "\n" not in result.reason


def test_a_builtin_raising_in_a_format_not_declared_unsupported_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.frameworks.registry import Impl

    def refuse(x: Any) -> Any:
        raise TypeError("no bfloat16 here")

    impl = Impl("numpy.fake_exp", "numpy", "exp", refuse, unsupported_dtypes=("float16",))
    monkeypatch.setattr(runner_module, "get_impl", lambda impl_id: impl)
    result = Runner().run(cell("numpy.fake_exp", oracle_="exp", dtype="bfloat16", custom=False))
    assert (result.status, result.reason) == ("error", "TypeError: no bfloat16 here")
    result = Runner().run(cell("numpy.fake_exp", oracle_="exp", dtype="float16", custom=False))
    assert (result.status, result.reason) == ("unsupported", "no float16 support in numpy: TypeError: no bfloat16 here")


def test_a_custom_implementation_that_raises_stays_an_error(impl_file: Path) -> None:
    result = Runner().run(cell(f"{impl_file}:boom", oracle_="exp", dtype="bfloat16"))
    assert result.status == "error"


def _refuses_nan_truth(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Exact-enough BCE that raises, as torch does, on any p outside [0, 1]."""
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise RuntimeError("all elements of input should be between 0 and 1")
    with np.errstate(all="ignore"):
        p64, y64 = p.astype(np.float64), y.astype(np.float64)
        return (-(y64 * np.log(p64) + (1 - y64) * np.log1p(-p64))).astype(p.dtype)


def _in_memory(fn: Callable[..., Any], oracle_: str) -> Runner:
    from harness.frameworks.registry import Impl

    return Runner(extra_impls={"mem.fn": Impl("mem.fn", "numpy", oracle_, fn, custom=True)})


def test_refusing_inputs_whose_truth_is_nan_is_recorded_and_the_rest_judged() -> None:
    spec = cell("mem.fn", oracle_="binary_cross_entropy", dtype="float32", inputs="special")
    result = _in_memory(_refuses_nan_truth, "binary_cross_entropy").run(spec)
    whole = Runner().run(cell("numpy.binary_cross_entropy", oracle_="binary_cross_entropy", dtype="float32",
                              inputs="special", custom=False))
    assert result.summary is not None and whole.summary is not None
    rejected = whole.summary.n - result.summary.n
    assert rejected > 0 and result.summary.incidence.get("missing_nan", 0) == 0
    assert result.status in ("pass", "fail")
    assert (f"rejected {rejected} inputs whose exact result is NaN (RuntimeError: all elements of input should be"
            " between 0 and 1); judged the others") in result.reason
    assert result.rejected == rejected
    assert result.to_json()["rejected"] == rejected
    assert CellResult.from_json(result.to_json()).rejected == rejected


def test_the_device_is_synchronised_before_every_timed_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy to the GPU may still be in flight when to_native returns (torch's .to from
    pageable memory): the runner waits for the cell's device before it starts the clock, for
    accuracy cells and for each call of a consistency check alike."""
    events: list[object] = []
    monkeypatch.setattr(frameworks.NumpyBackend, "synchronize", lambda self, device: events.append(("sync", device)))

    def exp(x: np.ndarray) -> np.ndarray:
        events.append("call")
        with np.errstate(all="ignore"):
            return np.exp(x.astype(np.float64)).astype(x.dtype)

    runner = _in_memory(exp, "exp")
    assert runner.run(cell("mem.fn", oracle_="exp")).status == "pass"
    assert events == [("sync", "cpu"), "call"]
    events.clear()
    assert runner.run(cell("mem.fn", oracle_="exp", check="repeat")).status == "pass"
    assert len(events) >= 4 and events == [("sync", "cpu"), "call"] * (len(events) // 2)


def test_refusing_inputs_whose_truth_is_not_nan_is_still_an_error() -> None:
    def refuses_everything_above_half(p: np.ndarray, y: np.ndarray) -> np.ndarray:
        if np.any(p > 0.5) or np.any(np.isnan(p)):
            raise RuntimeError("p > 0.5")
        return p

    spec = cell("mem.fn", oracle_="binary_cross_entropy", dtype="float32", inputs="special")
    result = _in_memory(refuses_everything_above_half, "binary_cross_entropy").run(spec)
    assert (result.status, result.reason) == ("error", "RuntimeError: p > 0.5")


def test_a_reducing_loss_that_raises_is_an_error() -> None:
    def mean_refusing(p: np.ndarray, y: np.ndarray, reduction: str = "none") -> np.ndarray:
        return _refuses_nan_truth(p, y)

    spec = cell("mem.fn", oracle_="binary_cross_entropy", dtype="float32", inputs="special",
                params=(("reduction", "mean"),))
    result = _in_memory(mean_refusing, "binary_cross_entropy").run(spec)
    assert result.status == "error"


def test_rowwise_refusal_leaves_out_whole_rows() -> None:
    def softmax_refusing_inf(x: np.ndarray) -> np.ndarray:
        if np.any(np.isposinf(x)):
            raise ValueError("+inf logits")
        with np.errstate(all="ignore"):
            x64 = x.astype(np.float64)
            e = np.exp(x64 - x64.max(axis=-1, keepdims=True))
            return (e / e.sum(axis=-1, keepdims=True)).astype(x.dtype)

    spec = cell("mem.fn", oracle_="softmax", dtype="float32", inputs="special")
    result = _in_memory(softmax_refusing_inf, "softmax").run(spec)
    whole = _in_memory(lambda x: x, "softmax").run(spec)
    assert result.summary is not None and whole.summary is not None
    # special inputs come in batches of several row widths: count the rows in the reason
    rows = int(result.reason.split()[1])
    assert rows > 0 and whole.summary.n > result.summary.n >= whole.summary.n - rows * 8
    assert result.reason.startswith(f"rejected {rows} rows whose exact result is NaN (ValueError: +inf logits)")

    # logsumexp of a row holding +inf is +inf, not NaN: refusing it is an error
    lse = _in_memory(lambda x: softmax_refusing_inf(x)[:, 0], "logsumexp").run(
        cell("mem.fn", oracle_="logsumexp", dtype="float32", inputs="special"))
    assert (lse.status, lse.reason) == ("error", "ValueError: +inf logits")


def test_shown_elements_keep_their_positions_after_a_rejection(tmp_path: Path) -> None:
    """Elements shown after a rejection are numbered as the inputs were generated: the input
    4.0 sits at position 3, whatever was left out before it (once it was reported at 2)."""
    x = np.array([-1.0, 1.0, 2.0, 4.0, 8.0], dtype=np.float32)
    np.save(tmp_path / "x.npy", x)

    def log_refusing_negatives(v: np.ndarray) -> np.ndarray:
        if np.any(v < 0):
            raise ValueError("math domain error")
        out = np.log(v)
        return np.where(v == 4.0, np.nextafter(out, np.float32(10)), out).astype(np.float32)

    spec = cell("mem.fn", oracle_="log", dtype="float32", inputs=f"npy:{tmp_path / 'x.npy'}")
    result = _in_memory(log_refusing_negatives, "log").run(spec)
    assert result.rejected == 1, result.reason
    worst = result.summary.worst[0] if result.summary is not None else None
    assert worst is not None and worst.input_values == ("4.0",) and worst.index == 3
