"""Framework adapters: one small frozen record per framework that moves arrays in and out.

A :class:`Backend` answers four questions without ever raising: is the framework importable
(:meth:`Backend.unavailable`), which version (:meth:`Backend.version`), which devices
(:meth:`Backend.devices`, :meth:`Backend.device_unavailable`), and which formats it can hold
(:meth:`Backend.dtype_unavailable`). Each answer is ``None`` when all is well, otherwise a
one-line reason the runner turns into a ``skipped`` cell.

:meth:`Backend.to_native` and :meth:`Backend.from_native` move arrays across *bit-exactly*:
every float16 and bfloat16 pattern, NaN payloads, signalling NaNs, -0.0 and subnormals
survive the round trip. That matters because the harness judges an implementation by the
bits it returns; a transfer that quietly canonicalised a NaN or flushed a subnormal would be
blamed on the implementation. Wherever a framework's own conversion could touch the bits we
go through integer views of the same width (``int16`` -> ``torch.bfloat16``, ``tf.bitcast``).

Importing this module imports no framework; each loads the first time its backend is asked.
We never change a framework's global settings: TensorFlow flushes subnormals to zero in its
kernels and JAX runs without 64-bit types by default, and both are findings a user must see.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import numpy.typing as npt

from oracles.cache import make_cache_dir
from oracles.errors import UsageError, choices
from oracles.formats import BFLOAT16, FORMATS, Format

__all__ = [
    "BACKENDS",
    "DEVICES",
    "GPU_MEMORY_ENV",
    "JAX_CACHE_ENV",
    "TF_LOG_ENV",
    "Backend",
    "JaxBackend",
    "KerasBackend",
    "NumpyBackend",
    "TensorFlowBackend",
    "TorchBackend",
    "get_backend",
    "use_jax_compilation_cache",
]

#: device names a cell can ask for; "cuda" means the first CUDA device
DEVICES: tuple[str, ...] = ("cpu", "cuda")

#: signed integer views used to carry float bits through a framework's integer tensors
#: (signed, because every framework has int16/int32/int64 while unsigned support varies)
_INT_OF_WIDTH: dict[int, type[np.signedinteger[Any]]] = {2: np.int16, 4: np.int32, 8: np.int64}


class _Unavailable(Exception):
    """Raised inside a backend's loader with the one-line reason it cannot be used."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- TensorFlow's C++ log lines ----------------------------------------------------------
#
# TensorFlow's C++ runtime writes INFO/WARNING/ERROR lines straight to file descriptor 2
# (cpu_feature_guard's "This TensorFlow binary is optimized...", "oneDNN custom operations
# are on", absl's "All log messages before absl::InitializeLog()", "oneDNN supports DT_HALF
# only on platforms with AVX-512"): noise in our output that says nothing about the
# numbers. TF_CPP_MIN_LOG_LEVEL=3 silences the ones its own logger writes, ERROR included
# (DT_HALF is logged as an ERROR on every float16 op; a real failure reaches us as a Python
# exception, which becomes the cell's reason). It is set with setdefault, so a user who set
# it (to debug TensorFlow) keeps their value, and it is inherited by workers and the
# isolated process, which load TensorFlow through this adapter too. Two lines ignore it:
# absl's and oneDNN's, both written while the shared libraries load; they are caught by
# pointing fd 2 at a temporary file during the first import and writing back every other
# line, so nothing else that was printed is lost.
# Rejected: TF_ENABLE_ONEDNN_OPTS=0, which silences oneDNN by changing the kernels (and
# so the results we are there to judge).
TF_LOG_ENV: dict[str, str] = {"TF_CPP_MIN_LOG_LEVEL": "3"}
_TF_NOISE = re.compile(
    r"absl::InitializeLog|oneDNN custom operations are on|cpu_feature_guard|DT_HALF"
    r"|rebuild TensorFlow with the appropriate compiler flags"
)
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _without_native_noise(noise: re.Pattern[str]) -> Iterator[None]:
    """Run the body with fd 2 captured, then write back every captured line that does not
    match ``noise``. Used only around a framework's first import: fd 2 is process-wide."""
    with _STDERR_LOCK, tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 (a daemon with it closed): nothing to keep clean
            yield
            return
        try:
            os.dup2(captured.fileno(), 2)
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not noise.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


# -- GPU memory ----------------------------------------------------------------------------
#
# With -j N every worker process that runs a cuda cell loads the framework on the GPU, and
# an idle worker takes units from busy ones, so several processes share one GPU. JAX
# (XLA's client) reserves 75% of the GPU's memory in the first process to touch it and
# TensorFlow nearly all of it, so the second process fails with an out-of-memory error
# before it has computed anything; torch's caching allocator grows as needed. These
# variables make JAX and TensorFlow allocate what they use, as torch does. They change where
# buffers come from, never a kernel or its results. Set with setdefault before the framework
# is first imported (they are read then), so a user's own value wins; inherited by workers.
# Rejected: running every cuda cell in one worker, which would serialise the streamed
# float32 chunks behind one process.
GPU_MEMORY_ENV: dict[str, str] = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}


def _share_gpu_memory() -> None:
    for name, value in GPU_MEMORY_ENV.items():
        os.environ.setdefault(name, value)


def _import_tensorflow(module: str) -> Any:
    """Import ``module`` (tensorflow, or keras, which imports it) without TensorFlow's C++
    log lines (see TF_LOG_ENV) and without reserving the whole GPU (see GPU_MEMORY_ENV)."""
    for name, value in TF_LOG_ENV.items():
        os.environ.setdefault(name, value)
    _share_gpu_memory()
    if "tensorflow" in sys.modules:
        return importlib.import_module(module)
    with _without_native_noise(_TF_NOISE):
        return importlib.import_module(module)


def _cpu_name() -> str:
    return f"{platform.machine() or 'unknown'} CPU"


def _format_of(arr: npt.NDArray[Any]) -> Format | None:
    """The float format stored in ``arr``, None for an integer array; anything else is an
    error naming what is accepted."""
    if arr.dtype.kind in "iu":
        return None
    for fmt in FORMATS.values():
        if fmt.dtype == arr.dtype:
            return fmt
    raise UsageError(f"cannot transfer an array of {arr.dtype}; {choices(FORMATS)} (or an integer index array)")


def _prepare(arr: npt.ArrayLike) -> npt.NDArray[Any]:
    """A private, C-contiguous, native-byte-order copy: frameworks may alias the buffer they
    are given, and an implementation that writes in place must not change the caller's input."""
    a = np.asarray(arr)
    if not a.dtype.isnative:
        # byteswap + relabel is a pure byte shuffle; astype to native order would go through
        # a value cast we would rather not trust with NaN payloads
        a = a.byteswap().view(a.dtype.newbyteorder("="))
    return np.array(a, copy=True, order="C")


def _as_float_view(ints: npt.NDArray[Any], fmt: Format) -> npt.NDArray[Any]:
    """Reinterpret signed integer bits from a framework as ``fmt`` values (a copy we own)."""
    return np.array(ints.view(fmt.uint_dtype).view(fmt.dtype), copy=True)


@dataclass(frozen=True, slots=True)
class Backend:
    """A framework adapter. ``name`` is the framework as implementation ids spell it,
    ``module`` what is imported, ``extra`` the pip extra that installs it."""

    name: str
    module: str
    extra: str
    #: the installed distributions whose versions decide its results, the framework's own
    #: first (read from package metadata, without importing: harness.record.reuse, run metadata)
    distributions: tuple[str, ...] = ()

    #: what a caller of from_native should have returned, for TypeError messages
    native_type: ClassVar[str] = "array"

    def __str__(self) -> str:
        return self.name

    # -- loading ------------------------------------------------------------------------
    def _load(self) -> Any:
        """Import and return the framework module; ``_Unavailable`` or ``ImportError`` if it
        cannot be used."""
        return importlib.import_module(self.module)

    def unavailable(self) -> str | None:
        """None when the framework can be used, else one line saying why not and how to fix
        it. Never raises: a framework whose import crashes is reported, not propagated."""
        try:
            self._load()
        except _Unavailable as exc:
            return str(exc)
        except ImportError as exc:
            missing = (getattr(exc, "name", None) or "").split(".")[0]
            if missing == self.module or not missing:
                return f"{self.module} is not installed (pip install 'fpharness[{self.extra}]')"
            return f"{self.name} needs {missing}, which is not installed (pip install 'fpharness[{self.extra}]')"
        except Exception as exc:  # noqa: BLE001 - a broken install must become a skip reason
            return f"importing {self.module} failed: {type(exc).__name__}: {_first_line(exc)}"
        return None

    def _require(self) -> Any:
        reason = self.unavailable()
        if reason is not None:
            raise UsageError(f"{self.name}: {reason}")
        return self._load()

    def version(self) -> str | None:
        """The framework's version string, None when it is unavailable."""
        if self.unavailable() is not None:
            return None
        return str(getattr(self._load(), "__version__", "unknown"))

    # -- devices --------------------------------------------------------------------------
    def _cuda_name(self, fw: Any) -> str | None:
        """Human name of the first CUDA device, None when there is none."""
        return None

    def _no_cuda_reason(self, fw: Any) -> str:
        return f"no CUDA device visible to {self.name}"

    def devices(self) -> dict[str, str]:
        """Usable devices -> human names, e.g. ``{"cpu": "x86_64 CPU", "cuda": "NVIDIA H100"}``;
        empty when the framework is unavailable. Never raises."""
        if self.unavailable() is not None:
            return {}
        found = {"cpu": _cpu_name()}
        try:
            cuda = self._cuda_name(self._load())
        except Exception:  # noqa: BLE001 - a driver problem means "no CUDA", not a crash
            cuda = None
        if cuda is not None:
            found["cuda"] = cuda
        return found

    def device_unavailable(self, device: str) -> str | None:
        """None when ``device`` can run this framework's cells, else the reason. Never raises."""
        if device not in DEVICES:
            return f"unknown device {device!r}; {choices(DEVICES, given=device)}"
        reason = self.unavailable()
        if reason is not None:
            return reason
        if device == "cpu":
            return None
        fw = self._load()
        try:
            if self._cuda_name(fw) is not None:
                return None
            return self._no_cuda_reason(fw)
        except Exception as exc:  # noqa: BLE001 - the reason is the answer
            return f"no CUDA device: {type(exc).__name__}: {_first_line(exc)}"

    def dtype_unavailable(self, dtype: str | Format) -> str | None:
        """None when this framework can hold ``dtype`` (a format name), else the reason."""
        return None

    def synchronize(self, device: str) -> None:
        """Wait until queued work on ``device`` has finished: the runner calls it before it
        starts an implementation's clock, so that a copy to the GPU still in flight is not
        timed as the implementation's work (from_native already waits for the value it
        reads, which stops the clock honestly). Nothing to wait for on the CPU."""

    def release_caches(self) -> None:
        """Drop what the framework keeps per tensor shape (compiled kernels), after work
        that called it with many shapes. Nothing to drop by default."""

    def placed(self, device: str) -> contextlib.AbstractContextManager[Any]:
        """A context in which the implementation's ops run on ``device``. Frameworks whose
        ops follow their inputs' device need none (the default)."""
        return contextlib.nullcontext()

    # -- transfer -------------------------------------------------------------------------
    def to_native(self, arr: npt.ArrayLike, device: str) -> Any:
        """A tensor of this framework on ``device`` with exactly ``arr``'s bits and dtype
        (float16, bfloat16, float32, float64, or integer indices). 0-d arrays stay 0-d.

        Raises :class:`UsageError` for an unavailable framework or device and for a dtype
        the framework cannot hold (rather than converting it silently)."""
        reason = self.device_unavailable(device)
        if reason is not None:
            raise UsageError(f"{self.name} on {device}: {reason}")
        a = _prepare(arr)
        fmt = _format_of(a)
        if fmt is not None:
            why = self.dtype_unavailable(fmt)
            if why is not None:
                raise UsageError(f"{self.name}: {why}")
        return self._put(self._load(), a, fmt, device)

    def from_native(self, value: Any) -> npt.NDArray[Any]:
        """A numpy array we own with exactly the bits of ``value`` (bfloat16 as
        ``ml_dtypes.bfloat16``), after the device has finished computing it.

        Raises TypeError when ``value`` is not a tensor of this framework."""
        fw = self._require()
        return self._get(fw, value)

    def _put(self, fw: Any, arr: npt.NDArray[Any], fmt: Format | None, device: str) -> Any:
        raise NotImplementedError

    def _get(self, fw: Any, value: Any) -> npt.NDArray[Any]:
        raise NotImplementedError

    def _wrong_type(self, value: Any) -> TypeError:
        return TypeError(
            f"a {self.name} implementation must return a {self.native_type}, got"
            f" {type(value).__module__}.{type(value).__qualname__}"
        )


@dataclass(frozen=True, slots=True)
class NumpyBackend(Backend):
    """numpy arrays (and the scipy functions that take them); CPU only."""

    native_type: ClassVar[str] = "numpy.ndarray"

    def _no_cuda_reason(self, fw: Any) -> str:
        return "numpy runs on the CPU only"

    def _put(self, fw: Any, arr: npt.NDArray[Any], fmt: Format | None, device: str) -> Any:
        return arr  # already a private copy

    def _get(self, fw: Any, value: Any) -> npt.NDArray[Any]:
        # numpy reductions return scalars (np.float32, ml_dtypes.bfloat16), which carry a dtype
        # and so are as good as 0-d arrays; a Python float has lost its format and is refused
        if isinstance(value, np.ndarray | np.generic):
            return np.array(value, copy=True)
        raise self._wrong_type(value)


@dataclass(frozen=True, slots=True)
class TorchBackend(Backend):
    """PyTorch tensors on ``cpu`` or ``cuda`` (the first CUDA device)."""

    native_type: ClassVar[str] = "torch.Tensor"

    def _cuda_name(self, fw: Any) -> str | None:
        if not fw.cuda.is_available():
            return None
        return str(fw.cuda.get_device_name(0))

    def _no_cuda_reason(self, fw: Any) -> str:
        if getattr(fw.version, "cuda", None) is None:
            return f"no CUDA device: torch {fw.__version__} is a CPU-only build (torch.version.cuda is None)"
        return "no CUDA device: torch.cuda.is_available() is False"

    def synchronize(self, device: str) -> None:
        if device == "cuda" and self.unavailable() is None:
            fw = self._load()
            if fw.cuda.is_available():
                fw.cuda.synchronize()

    def _put(self, fw: Any, arr: npt.NDArray[Any], fmt: Format | None, device: str) -> Any:
        # torch.from_numpy cannot take ml_dtypes' bfloat16, so every 16-bit float travels as
        # int16 and is relabelled; .view(dtype) reinterprets without touching the bits
        if fmt is not None and fmt.bits == 16:
            t = fw.from_numpy(arr.view(np.int16)).view(getattr(fw, fmt.name))
        else:
            t = fw.from_numpy(arr)
        return t.to(fw.device(device)) if device != "cpu" else t

    def _get(self, fw: Any, value: Any) -> npt.NDArray[Any]:
        if not isinstance(value, fw.Tensor):
            raise self._wrong_type(value)
        t = value.detach().cpu()  # .cpu() waits for the device
        if t.dtype == fw.bfloat16:
            return _as_float_view(t.view(fw.int16).numpy(), BFLOAT16)
        return np.array(t.numpy(), copy=True)


_TF_FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True, slots=True)
class TensorFlowBackend(Backend):
    """TensorFlow eager tensors on ``cpu`` (``/CPU:0``) or ``cuda`` (``/GPU:0``)."""

    native_type: ClassVar[str] = "tf.Tensor"

    def _load(self) -> Any:
        return _import_tensorflow(self.module)

    def _tf(self, fw: Any) -> Any:
        """The tensorflow module (keras shares its tensors)."""
        return fw

    def _cuda_name(self, fw: Any) -> str | None:
        tf = self._tf(fw)
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        details = tf.config.experimental.get_device_details(gpus[0])
        return str(details.get("device_name", gpus[0].name))

    def _no_cuda_reason(self, fw: Any) -> str:
        return "no CUDA device: tf.config.list_physical_devices('GPU') is empty"

    def synchronize(self, device: str) -> None:
        if device == "cuda" and self.unavailable() is None:
            tf = self._tf(self._load())
            sync = getattr(getattr(tf.test, "experimental", None), "sync_devices", None)
            if sync is not None:
                sync()

    def _put(self, fw: Any, arr: npt.NDArray[Any], fmt: Format | None, device: str) -> Any:
        tf = self._tf(fw)
        # Build the value on the host from its integer bits (tf.bitcast reinterprets; a float
        # conversion is not promised to keep NaN payloads), then copy it to the device: a
        # device copy is a memcpy, while bitcasting on a GPU would put an int32 tensor through
        # TensorFlow's host-memory special case for int32.
        with tf.device("/CPU:0"):
            if fmt is None:
                t = tf.constant(arr)
            else:
                ints = tf.constant(arr.view(_INT_OF_WIDTH[arr.dtype.itemsize]))
                t = tf.bitcast(ints, getattr(tf, fmt.name))
        if device == "cpu":
            return t
        with tf.device("/GPU:0"):
            return tf.identity(t)

    def placed(self, device: str) -> contextlib.AbstractContextManager[Any]:
        """TensorFlow runs an op on the GPU whenever there is one, wherever its inputs are:
        without this a ``cpu`` cell (and the CPU side of the device check) would run there."""
        tf = self._tf(self._require())
        return cast("contextlib.AbstractContextManager[Any]", tf.device("/GPU:0" if device == "cuda" else "/CPU:0"))

    def _to_tf_tensor(self, fw: Any, value: Any) -> Any:
        tf = self._tf(fw)
        if isinstance(value, tf.Variable):
            return tf.convert_to_tensor(value)
        if isinstance(value, tf.Tensor) and hasattr(value, "numpy"):
            return value
        raise self._wrong_type(value)

    def _get(self, fw: Any, value: Any) -> npt.NDArray[Any]:
        tf = self._tf(fw)
        t = self._to_tf_tensor(fw, value)
        if t.dtype.name not in _TF_FLOAT_NAMES:
            return np.array(t.numpy(), copy=True)
        fmt = FORMATS[t.dtype.name]
        int_dtype = _INT_OF_WIDTH[fmt.bits // 8]
        # copy to the host first, then bitcast there (the mirror of _put); .numpy() waits
        with tf.device("/CPU:0"):
            ints = tf.bitcast(tf.identity(t), tf.as_dtype(int_dtype))
        return _as_float_view(ints.numpy(), fmt)


@dataclass(frozen=True, slots=True)
class KerasBackend(TensorFlowBackend):
    """Keras 3 on the TensorFlow backend: the same tensors as :class:`TensorFlowBackend`.

    The backend is chosen when keras is first imported; we ask for TensorFlow with
    ``os.environ.setdefault("KERAS_BACKEND", "tensorflow")`` and report keras unavailable if
    it was already loaded on another backend, rather than reloading it under the user."""

    native_type: ClassVar[str] = "tf.Tensor (Keras 3 on TensorFlow)"

    def _load(self) -> Any:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        keras = _import_tensorflow("keras")
        backend = str(keras.backend.backend())
        if backend != "tensorflow":
            raise _Unavailable(
                f"keras is running on the {backend!r} backend; fpharness tests keras on TensorFlow"
                " (set KERAS_BACKEND=tensorflow before keras is first imported)"
            )
        return keras

    def version(self) -> str | None:
        if self.unavailable() is not None:
            return None
        tf = importlib.import_module("tensorflow")
        return f"{self._load().__version__} (tensorflow {tf.__version__})"

    def _tf(self, fw: Any) -> Any:
        return _import_tensorflow("tensorflow")

    def _to_tf_tensor(self, fw: Any, value: Any) -> Any:
        if isinstance(value, fw.Variable):
            value = fw.ops.convert_to_tensor(value)
        return TensorFlowBackend._to_tf_tensor(self, fw, value)


# -- JAX's persistent compilation cache ---------------------------------------------------
#
# Eager JAX compiles every primitive for every shape and dtype it meets: the row-wise and
# loss built-ins of suites/frameworks.toml cost ~50 s of XLA compilation per process on the
# 2-core machine, and every run compiled it all again. JAX's persistent cache keeps the
# executables on disk, and eager dispatch (each op is a small jit) uses it too: a second
# process spends ~8-18 s there instead (tracing and lowering still happen, per op and shape),
# with bit-identical outputs (the executable is the same, keyed by its HLO, compile options,
# XLA flags and platform). Eager ops need two settings: the directory, and
# jax_persistent_cache_min_compile_time_secs=0 (at the default of 1 s none of the ~20-50 ms
# compilations is written); jax_persistent_cache_min_entry_size_bytes is already 0.
# Rejected: wrapping the built-ins in jax.jit. XLA then fuses the whole function, which
# changes bits in 6 of the 101 CPU cells (gelu, softmax, the cross-entropies), and we test
# JAX the way a user calls it, eagerly.
#
# JAX's configuration is process-global and is read once, at the first compilation, so only
# the CLI asks for the cache (harness/cli/options.py, before any framework loads); the
# library and the pytest plugin do not. The request travels in an environment variable so
# that the CLI's worker processes (spawned, not forked) see it too. A cache directory the
# user configured for JAX (JAX_COMPILATION_CACHE_DIR or jax.config) wins. JAX's guide calls
# the cache trusted, as its entries are machine code, so it is used only in a directory that
# this user owns and nobody else can write to. XLA's loader refuses an entry built for CPU
# features this machine lacks and compiles afresh, so a cache copied between machines is
# safe; an entry that does not load (a write cut short) is compiled afresh too.

#: the directory for JAX's persistent compilation cache; unset or empty: leave JAX alone
JAX_CACHE_ENV = "FPHARNESS_JAX_CACHE_DIR"

_jax_cache_lock = threading.Lock()
#: the value of JAX_CACHE_ENV this process last acted on
_jax_cache_seen: list[str] = [""]


def use_jax_compilation_cache(directory: str | os.PathLike[str] | None) -> None:
    """Use JAX's persistent compilation cache in ``directory`` (None: leave JAX as it is),
    in this process and the processes it starts, by setting :data:`JAX_CACHE_ENV`.

    Takes effect when the JAX backend next loads, and only if JAX has no cache directory of
    its own yet; the first directory a process gives JAX stays for that process. Meant for
    command-line entry points, which own their process: it changes JAX's global settings."""
    os.environ[JAX_CACHE_ENV] = "" if directory is None else str(Path(directory).expanduser())


def _private_dir(path: Path) -> str | None:
    """Create ``path`` (mode 0700); None when it is ours alone, else why it is not used.
    Its parent, the fpharness cache directory, is created tagged when it does not exist yet
    (``cache clear`` recognises a cache by its CACHEDIR.TAG)."""
    try:
        make_cache_dir(path.parent)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError as exc:
        return f"cannot create {path}: {exc.strerror or exc}"
    if not path.is_dir():
        return f"{path} is not a directory"
    getuid = getattr(os, "getuid", None)
    if getuid is not None and (st.st_uid != getuid() or st.st_mode & 0o022):
        return f"{path} is writable by other users"
    return None


def _configure_jax_cache(jax: Any, wanted: str) -> None:
    """Point ``jax`` at the cache directory ``wanted`` (once per value of the variable)."""
    with _jax_cache_lock:
        if wanted == _jax_cache_seen[0]:
            return
        _jax_cache_seen[0] = wanted
        if jax.config.jax_compilation_cache_dir:
            return
        why = _private_dir(Path(wanted))
        try:
            if why is None:
                jax.config.update("jax_compilation_cache_dir", wanted)
                jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        except Exception as exc:  # noqa: BLE001 - a speed-up must never make JAX unusable
            why = _first_line(exc)
        if why is not None:
            # a note, not a warning: under pytest's -W error it would make JAX "unavailable"
            print(f"fpharness: not using a JAX compilation cache: {why}", file=sys.stderr)


@dataclass(frozen=True, slots=True)
class JaxBackend(Backend):
    """JAX arrays on ``cpu`` or ``cuda``. 64-bit types follow JAX's own setting
    (``jax_enable_x64``, off by default): float64 is refused, not downcast, when it is off."""

    native_type: ClassVar[str] = "jax.Array"

    def _load(self) -> Any:
        if self.module not in sys.modules:
            _share_gpu_memory()  # read by JAX's GPU client when it starts: see GPU_MEMORY_ENV
        jax = importlib.import_module(self.module)
        wanted = os.environ.get(JAX_CACHE_ENV, "")
        if wanted != _jax_cache_seen[0]:  # cheap test first: _load runs for every cell
            _configure_jax_cache(jax, wanted)
        return jax

    def release_caches(self) -> None:
        """JAX compiles every primitive for every new shape and keeps the executables for
        the life of the process: a consistency position check (65 lengths) leaves about
        90 MB of them per implementation and dtype, which summed to over 10 GB in one
        worker over the frameworks suite."""
        if self.module in sys.modules:
            sys.modules[self.module].clear_caches()

    def _cuda_device(self, fw: Any) -> Any | None:
        for platform_name in ("cuda", "gpu"):
            try:
                found = fw.devices(platform_name)
            except RuntimeError:  # jax raises this for a platform that is not present
                continue
            if found:
                return found[0]
        return None

    def _cuda_name(self, fw: Any) -> str | None:
        dev = self._cuda_device(fw)
        return None if dev is None else str(dev.device_kind)

    def _no_cuda_reason(self, fw: Any) -> str:
        platforms = sorted({d.platform for d in fw.devices()})
        return f"no CUDA device: jax.devices('cuda') found none (jax platforms: {', '.join(platforms)})"

    @staticmethod
    def _x64(fw: Any) -> bool:
        # canonicalize_dtype is how jax itself decides; reading the flag would need the
        # config API, whose spelling has moved between versions
        return bool(np.dtype(fw.dtypes.canonicalize_dtype(np.float64)) == np.float64)

    def dtype_unavailable(self, dtype: str | Format) -> str | None:
        name = dtype.name if isinstance(dtype, Format) else str(dtype)
        if name != "float64" or self.unavailable() is not None:
            return None
        if self._x64(self._load()):
            return None
        return (
            "float64 needs jax_enable_x64, which is off (JAX's default); set JAX_ENABLE_X64=1"
            " to test float64 (jax.device_put would silently give float32)"
        )

    def _device(self, fw: Any, device: str) -> Any:
        """The jax device of the cell's ``device``; :class:`UsageError` when there is none."""
        dev = fw.devices("cpu")[0] if device == "cpu" else self._cuda_device(fw)
        if dev is None:
            raise UsageError(f"{self.name} on {device}: {self._no_cuda_reason(fw)}")
        return dev

    def placed(self, device: str) -> contextlib.AbstractContextManager[Any]:
        """JAX puts an array the implementation creates itself (``jnp.asarray(beta)``, a
        constant, a random key) on its default device, which is the GPU whenever there is
        one: without this, part of a ``cpu`` cell (and of the CPU side of the device check)
        could run on the GPU, and part of a ``cuda`` cell's work on whichever device JAX
        picked. ``jax.default_device`` is per thread, like the call it wraps."""
        fw = self._require()
        return cast("contextlib.AbstractContextManager[Any]", fw.default_device(self._device(fw, device)))

    def _put(self, fw: Any, arr: npt.NDArray[Any], fmt: Format | None, device: str) -> Any:
        dev = self._device(fw, device)
        if fmt is None and arr.dtype.itemsize == 8 and not self._x64(fw):
            # without x64 jax would turn int64 into int32 anyway; do it ourselves so an index
            # that does not fit is an error instead of wrapping around
            info = np.iinfo(np.int32)
            if arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise UsageError("jax without jax_enable_x64 holds int32 indices; an index does not fit")
            arr = arr.astype(np.int32)
        # device_put copies the bytes as they are (ml_dtypes' bfloat16 is jax's own dtype). It
        # returns before a copy to a GPU has finished; waiting here keeps that copy out of
        # the implementation's timing, as the synchronize() before a timed call does for torch
        out = fw.device_put(arr, dev)
        out.block_until_ready()
        return out

    def _get(self, fw: Any, value: Any) -> npt.NDArray[Any]:
        if not isinstance(value, fw.Array):
            raise self._wrong_type(value)
        value.block_until_ready()
        return np.array(value, copy=True)


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        NumpyBackend("numpy", "numpy", "scipy", ("numpy", "scipy")),
        TorchBackend("torch", "torch", "torch", ("torch",)),
        TensorFlowBackend("tensorflow", "tensorflow", "tensorflow", ("tensorflow", "tensorflow-cpu")),
        KerasBackend("keras", "keras", "tensorflow", ("keras", "tensorflow", "tensorflow-cpu")),
        JaxBackend("jax", "jax", "jax", ("jax", "jaxlib")),
    )
}


def get_backend(name: str) -> Backend:
    """The adapter for framework ``name``; :class:`UsageError` listing the choices otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise UsageError(f"unknown framework {name!r}; {choices(BACKENDS, given=name)}") from None
