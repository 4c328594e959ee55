"""Framework adapters: bit-exact transfers in and out, and reasons instead of exceptions.

The transfer tests push every float16 and bfloat16 bit pattern (NaN payloads, signalling
NaNs, -0.0, subnormals) and random float32/float64 patterns through ``to_native`` and
``from_native`` and compare bits, per framework, device and format. CUDA variants carry the
``cuda`` marker and skip with the adapter's reason where there is no device.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from harness.frameworks.adapters import BACKENDS, DEVICES, Backend, KerasBackend, get_backend
from harness.frameworks.registry import FRAMEWORKS
from oracles import FORMATS, Format, UsageError, get_format

FLOAT_NAMES = tuple(FORMATS)  # float16, bfloat16, float32, float64





def _skip_unless_holds(backend: Backend, fmt: Format) -> None:
    reason = backend.dtype_unavailable(fmt)
    if reason is not None:
        pytest.skip(reason)


def _round_trip(backend: Backend, arr: npt.NDArray[Any], device: str) -> npt.NDArray[Any]:
    native = backend.to_native(arr, device)
    _assert_on_device(backend, native, device)
    return backend.from_native(native)


def _assert_on_device(backend: Backend, native: Any, device: str) -> None:
    """The tensor lives where it was asked to (numpy has only the CPU)."""
    if backend.name == "torch":
        assert native.device.type == device
    elif backend.name in ("tensorflow", "keras"):
        assert ("GPU" if device == "cuda" else "CPU") in native.device
    elif backend.name == "jax":
        platforms = {d.platform for d in native.devices()}
        assert platforms == {"cpu"} if device == "cpu" else platforms <= {"gpu", "cuda"}


def _assert_same_bits(got: npt.NDArray[Any], want: npt.NDArray[Any], fmt: Format) -> None:
    __tracebackhide__ = True
    assert got.dtype == want.dtype, f"dtype {got.dtype}, expected {want.dtype}"
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    got_bits = got.reshape(-1).view(fmt.uint_dtype)
    want_bits = want.reshape(-1).view(fmt.uint_dtype)
    bad = np.flatnonzero(got_bits != want_bits)
    if bad.size:
        i = int(bad[0])
        pytest.fail(
            f"{bad.size} of {want_bits.size} {fmt.name} patterns changed, e.g."
            f" {fmt.hex_of_bits(int(want_bits[i]))} came back as {fmt.hex_of_bits(int(got_bits[i]))}"
        )


def _random_bits(fmt: Format, n: int = 20_000) -> npt.NDArray[Any]:
    """Random patterns of a 32- or 64-bit format, plus the awkward ones by hand: both zeros,
    the smallest and largest subnormals, infinities, quiet and signalling NaNs with payloads
    and either sign; a quarter of the random ones forced subnormal, a quarter NaN."""
    rng = np.random.default_rng(fmt.bits)
    u = fmt.uint_dtype
    bits = rng.integers(0, np.iinfo(u).max, n, dtype=u, endpoint=True)
    mant_mask = u((1 << (fmt.precision - 1)) - 1)
    exp_mask = u(((1 << fmt.exponent_bits) - 1) << (fmt.precision - 1))
    sign = u(1 << (fmt.bits - 1))
    q = n // 4
    bits[:q] &= sign | mant_mask  # exponent 0: subnormal (or zero)
    bits[q : 2 * q] |= exp_mask  # exponent all ones: NaN (or inf)
    quiet = u(1 << (fmt.precision - 2))
    special = [
        0,
        sign,
        1,
        mant_mask,
        sign | 1,
        sign | mant_mask,
        exp_mask,
        sign | exp_mask,
        exp_mask | quiet,
        exp_mask | 1,
        sign | exp_mask | mant_mask,
        exp_mask | quiet | 1,
    ]
    return np.concatenate([np.array(special, dtype=u), bits])


# -- registry of adapters -------------------------------------------------------------------


def test_there_is_one_backend_per_framework() -> None:
    assert set(BACKENDS) == set(FRAMEWORKS)
    for name, b in BACKENDS.items():
        assert b.name == name == str(b)


def test_unknown_framework_lists_choices() -> None:
    with pytest.raises(UsageError, match=r"unknown framework 'pytorch'; pick from: .*torch"):
        get_backend("pytorch")


# -- bit-exact transfers --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt_name", ["float16", "bfloat16"])
def test_every_16_bit_pattern_survives(backend: Backend, device: str, fmt_name: str) -> None:
    fmt = get_format(fmt_name)
    arr = fmt.all_bit_patterns().view(fmt.dtype)
    _assert_same_bits(_round_trip(backend, arr, device), arr, fmt)


@pytest.mark.parametrize("fmt_name", ["float32", "float64"])
def test_random_wide_patterns_survive(backend: Backend, device: str, fmt_name: str) -> None:
    fmt = get_format(fmt_name)
    _skip_unless_holds(backend, fmt)
    arr = _random_bits(fmt).view(fmt.dtype)
    assert np.isnan(arr).sum() > 1000 and (np.abs(arr) < fmt.smallest_normal).sum() > 1000
    _assert_same_bits(_round_trip(backend, arr, device), arr, fmt)


@pytest.mark.parametrize("fmt_name", FLOAT_NAMES)
def test_zero_dimensional_arrays_stay_zero_dimensional(backend: Backend, device: str, fmt_name: str) -> None:
    fmt = get_format(fmt_name)
    _skip_unless_holds(backend, fmt)
    for bits in (fmt.uint_dtype(1 << (fmt.bits - 1)), fmt.uint_dtype(1)):  # -0.0, the smallest subnormal
        arr = np.array(bits).view(fmt.dtype)
        assert arr.shape == ()
        _assert_same_bits(_round_trip(backend, arr, device), arr, fmt)


@pytest.mark.parametrize("fmt_name", FLOAT_NAMES)
def test_awkward_layouts_arrive_as_values(backend: Backend, device: str, fmt_name: str) -> None:
    """2-D shape, a strided view and a non-native byte order all transfer as their values."""
    fmt = get_format(fmt_name)
    _skip_unless_holds(backend, fmt)
    base = np.arange(24, dtype=np.float64).reshape(4, 6).astype(fmt.dtype) - 7
    strided = base[:, ::2]
    _assert_same_bits(_round_trip(backend, strided, device), np.ascontiguousarray(strided), fmt)
    if fmt.name != "bfloat16":  # ml_dtypes has no byte-swapped bfloat16
        swapped = base.astype(base.dtype.newbyteorder(">"))
        _assert_same_bits(_round_trip(backend, swapped, device), base, fmt)


def test_index_arrays_keep_their_values(backend: Backend, device: str) -> None:
    target = np.array([0, 3, 1, 2, 2**20], dtype=np.int64)
    back = _round_trip(backend, target, device)
    assert back.dtype.kind == "i"
    # jax without x64 holds indices as int32; every other framework keeps int64
    assert back.dtype == np.int64 or (backend.name == "jax" and back.dtype == np.int32)
    np.testing.assert_array_equal(back, target)
    zero_d = _round_trip(backend, np.array(7, dtype=np.int64), device)
    assert zero_d.shape == () and int(zero_d) == 7


def test_to_native_does_not_alias_the_input(backend: Backend) -> None:
    arr = np.array([1.0, 2.0], dtype=np.float32)
    native = backend.to_native(arr, "cpu")
    arr[0] = 99.0
    np.testing.assert_array_equal(backend.from_native(native), [1.0, 2.0])


def test_from_native_returns_an_array_we_own(backend: Backend) -> None:
    native = backend.to_native(np.array([1.0, 2.0], dtype=np.float32), "cpu")
    out = backend.from_native(native)
    out[0] = 5.0  # writable, and writing it changes nothing the framework holds
    np.testing.assert_array_equal(backend.from_native(native), [1.0, 2.0])


@pytest.mark.parametrize("bad", [1.5, [1.0, 2.0], "x", None], ids=repr)
def test_from_native_refuses_what_is_not_a_tensor(backend: Backend, bad: object) -> None:
    with pytest.raises(TypeError, match=rf"a {backend.name} implementation must return"):
        backend.from_native(bad)


def test_from_native_refuses_another_frameworks_tensor(backend: Backend) -> None:
    if backend.name == "numpy":
        pytest.skip("every framework's tensor can be read by numpy; the numpy adapter takes arrays")
    with pytest.raises(TypeError, match=r"got numpy\.ndarray"):
        backend.from_native(np.zeros(2, dtype=np.float32))


def test_numpy_scalars_count_as_zero_dimensional_arrays() -> None:
    import ml_dtypes

    b = get_backend("numpy")
    for value in (np.float32(-0.0), ml_dtypes.bfloat16(1.5), np.float16(np.inf)):
        out = b.from_native(value)
        assert out.shape == () and out.dtype == np.asarray(value).dtype


@pytest.mark.parametrize(
    "dtype",
    [np.complex64, np.bool_, np.float128 if hasattr(np, "float128") else np.longdouble],
    ids=lambda d: np.dtype(d).name,
)
def test_unsupported_dtypes_are_usage_errors(backend: Backend, dtype: Any) -> None:
    with pytest.raises(
        UsageError, match=r"cannot transfer an array of .*pick from: bfloat16, float16, float32, float64"
    ):
        backend.to_native(np.zeros(3, dtype=dtype), "cpu")


def test_jax_refuses_float64_without_x64_rather_than_downcasting() -> None:
    b = get_backend("jax")
    if b.unavailable() is not None:
        pytest.skip(b.unavailable() or "")
    reason = b.dtype_unavailable("float64")
    if reason is None:
        pytest.skip("this JAX runs with jax_enable_x64 on")
    assert "JAX_ENABLE_X64" in reason
    with pytest.raises(UsageError, match="jax_enable_x64"):
        b.to_native(np.zeros(2, dtype=np.float64), "cpu")


# -- availability: reasons, never exceptions ------------------------------------------------------


def test_reasons_are_one_line_strings_or_none() -> None:
    for b in BACKENDS.values():
        for answer in (
            b.unavailable(),
            b.device_unavailable("cpu"),
            b.device_unavailable("cuda"),
            *(b.dtype_unavailable(f) for f in FLOAT_NAMES),
        ):
            assert answer is None or (isinstance(answer, str) and answer and "\n" not in answer)


def test_devices_agree_with_device_unavailable(backend: Backend) -> None:
    found = backend.devices()
    assert found.get("cpu", "").endswith("CPU")
    for dev in DEVICES:
        assert (dev in found) == (backend.device_unavailable(dev) is None), dev
    assert isinstance(backend.version(), str)


def test_numpy_is_cpu_only() -> None:
    assert get_backend("numpy").device_unavailable("cuda") == "numpy runs on the CPU only"


def test_unknown_device_lists_the_choices(backend: Backend) -> None:
    assert backend.device_unavailable("tpu") == "unknown device 'tpu'; pick from: cpu, cuda"
    with pytest.raises(UsageError, match="unknown device 'tpu'"):
        backend.to_native(np.zeros(1, dtype=np.float32), "tpu")


def test_missing_cuda_is_a_reason_and_a_usage_error(backend: Backend) -> None:
    reason = backend.device_unavailable("cuda")
    if reason is None:
        pytest.skip("a CUDA device is present")
    assert "CUDA" in reason or "CPU only" in reason
    with pytest.raises(UsageError, match=r"on cuda: "):
        backend.to_native(np.zeros(1, dtype=np.float32), "cuda")


@pytest.mark.parametrize("name", ["torch", "tensorflow", "jax", "keras"])
def test_a_missing_framework_is_a_reason(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    b = get_backend(name)
    # None in sys.modules makes `import name` fail as if it were not installed
    monkeypatch.setitem(sys.modules, b.module, None)  # type: ignore[arg-type]
    reason = b.unavailable()
    assert reason == f"{b.module} is not installed (pip install 'fpharness[{b.extra}]')"
    assert b.version() is None
    assert b.devices() == {}
    assert b.device_unavailable("cpu") == reason
    assert b.device_unavailable("cuda") == reason
    with pytest.raises(UsageError, match="not installed"):
        b.to_native(np.zeros(1, dtype=np.float32), "cpu")
    with pytest.raises(UsageError, match="not installed"):
        b.from_native(np.zeros(1, dtype=np.float32))


def _fake_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> Backend:
    (tmp_path / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return Backend("fake", name, "fake")


def test_a_framework_that_crashes_on_import_is_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = _fake_module(
        tmp_path, monkeypatch, "fpharness_fake_crashing", "raise RuntimeError('CUDA driver too old\\nsecond line')\n"
    )
    assert b.unavailable() == "importing fpharness_fake_crashing failed: RuntimeError: CUDA driver too old"
    assert b.devices() == {}
    assert b.version() is None


def test_a_framework_missing_a_dependency_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = _fake_module(tmp_path, monkeypatch, "fpharness_fake_needy", "import fpharness_no_such_dependency\n")
    assert b.unavailable() == (
        "fake needs fpharness_no_such_dependency, which is not installed (pip install 'fpharness[fake]')"
    )


def test_keras_on_another_backend_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    b = get_backend("keras")
    assert isinstance(b, KerasBackend)
    if b.unavailable() is not None:
        pytest.skip(b.unavailable() or "")
    import keras

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    reason = b.unavailable()
    assert reason is not None and "'jax' backend" in reason and "KERAS_BACKEND=tensorflow" in reason
    assert b.devices() == {}


def test_tensorflow_transfers_keep_subnormals_its_kernels_may_flush() -> None:
    """TensorFlow's CPU kernels flush subnormals to zero on their own threads; the adapter
    leaves that alone (users must see it) and still moves subnormals exactly, before and
    after TensorFlow has run a kernel."""
    b = get_backend("tensorflow")
    if b.unavailable() is not None:
        pytest.skip(b.unavailable() or "")
    import tensorflow as tf

    tiny = np.array([1e-40, -1e-45], dtype=np.float32)  # float32 subnormals
    x = b.to_native(tiny, "cpu")
    b.from_native(x * tf.constant(1.0))  # whatever it gives is TensorFlow's finding
    _assert_same_bits(b.from_native(x), tiny, get_format("float32"))
    _assert_same_bits(b.from_native(b.to_native(tiny, "cpu")), tiny, get_format("float32"))


# -- TensorFlow's C++ log lines never reach our output (issue 14, section 4) ---------------

TF_NOISE = ("cpu_feature_guard", "oneDNN custom operations are on", "absl::InitializeLog", "DT_HALF",
            "rebuild TensorFlow with the appropriate compiler flags")


@pytest.mark.parametrize("impl", ["tensorflow.exp", "keras.exp"])
def test_tensorflow_prints_no_log_lines_on_stderr(impl: str) -> None:
    if get_backend(impl.split(".")[0]).unavailable() is not None:
        pytest.skip(get_backend(impl.split(".")[0]).unavailable() or "")
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP_", "TF_ENABLE_ONEDNN"))}
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "check", impl, "--dtype", "float16", "--inputs", "special",
         "--no-progress"],
        capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).resolve().parents[2], check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    noise = [line for line in proc.stderr.splitlines() if any(n in line for n in TF_NOISE)]
    assert noise == [], "\n".join(noise)
    assert "1 passed" in proc.stdout


def test_tensorflow_log_level_the_user_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from harness.frameworks.adapters import TF_LOG_ENV, _import_tensorflow

    if get_backend("tensorflow").unavailable() is not None:
        pytest.skip(get_backend("tensorflow").unavailable() or "")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    _import_tensorflow("tensorflow")
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    _import_tensorflow("tensorflow")
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == TF_LOG_ENV["TF_CPP_MIN_LOG_LEVEL"]


def test_native_stderr_noise_is_dropped_and_other_lines_kept(capfd: pytest.CaptureFixture[str]) -> None:
    import os
    import re

    from harness.frameworks.adapters import _without_native_noise

    with _without_native_noise(re.compile("noise")):
        os.write(2, b"some noise from C++\na line that matters\n")
    assert capfd.readouterr().err == "a line that matters\n"


# -- on a GPU: sharing it between worker processes, and where JAX computes ------------------------


def test_jax_and_tensorflow_are_asked_to_allocate_what_they_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """-j N workers share one GPU: JAX would reserve 75% of it in the first process and
    TensorFlow nearly all; a value the user set is kept."""
    import os

    from harness.frameworks.adapters import GPU_MEMORY_ENV, _share_gpu_memory

    assert GPU_MEMORY_ENV == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "true")  # the user's own choice
    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    _share_gpu_memory()
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"
    assert os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


def test_jax_is_loaded_with_its_gpu_memory_setting_in_place() -> None:
    """The setting is read when JAX's GPU client starts: the adapter sets it before its first
    import of jax (a fresh interpreter, so that jax is not loaded yet)."""
    import os
    import subprocess

    if get_backend("jax").unavailable() is not None:
        pytest.skip(get_backend("jax").unavailable() or "")
    code = ("import os, sys; from harness.frameworks.adapters import get_backend;"
            " assert 'jax' not in sys.modules; reason = get_backend('jax').unavailable();"
            " print(os.environ.get('XLA_PYTHON_CLIENT_PREALLOCATE'), reason)")
    env = {k: v for k, v in os.environ.items() if k != "XLA_PYTHON_CLIENT_PREALLOCATE"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["false", "None"]


def test_jax_runs_what_an_implementation_makes_on_the_cells_device() -> None:
    """An array the implementation creates (jnp.asarray(beta)) goes to JAX's default device,
    the GPU whenever there is one; inside placed() it is the cell's device. Without CUDA,
    placed("cuda") says why, as to_native does."""
    b = get_backend("jax")
    if b.unavailable() is not None:
        pytest.skip(b.unavailable() or "")
    import jax.numpy as jnp

    with b.placed("cpu"):
        made = jnp.asarray(2.0, dtype=jnp.float32) * 3
    assert {d.platform for d in made.devices()} == {"cpu"}
    why = b.device_unavailable("cuda")
    if why is None:
        with b.placed("cuda"):
            made = jnp.asarray(2.0, dtype=jnp.float32) * 3
        assert {d.platform for d in made.devices()} <= {"gpu", "cuda"}
    else:
        with pytest.raises(UsageError, match=r"^jax on cuda: no CUDA device"):
            b.placed("cuda")
