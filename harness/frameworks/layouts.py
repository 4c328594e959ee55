"""Memory layouts: the same logical tensor, laid out differently in memory.

An implementation must give the same bits for the same values wherever they sit. Kernels
branch on memory layout (a contiguous fast path, a vectorised loop that assumes aligned
rows, a ``channels_last`` convolution path), and a branch that rounds differently, or that
reads memory it was not given, shows only when the layout changes. :func:`to_native_layout`
builds native tensors whose *logical* values and shapes are exactly the input's, through
one of :data:`LAYOUTS`:

``contiguous``
    what :meth:`Backend.to_native` gives: row-major, starting at its buffer.
``transposed``
    the last two axes swapped in memory: built from the swapped array, then swapped back
    natively (a column-major view in torch and numpy; a transpose op in jax and TensorFlow,
    which have no views, so a different chain of ops rather than a different layout).
``strided``
    every other row of a buffer twice as long along axis 0, sliced ``[::2]`` natively. The
    rows in between hold NaN (0 for integer indices): an implementation that reads the gaps
    shows NaN in its result.
``offset``
    ``[1:]`` of a buffer with one extra leading row: the data starts one element (1-D) or
    one row in, misaligned for SIMD loads that assume an aligned start.
``channels_last``
    torch's NHWC memory format for 4-D tensors (torch only; other frameworks have no such
    thing).

Every array gets the same layout; an array the layout cannot apply to (a 1-D integer target
array under ``transposed``) stays contiguous. The first array is the oracle's first real
argument, so it must take the layout: callers ask :func:`layout_unavailable` first and turn
its reason into a skipped cell.

Bits cross exactly as with :meth:`Backend.to_native` (NaN payloads, signalling NaNs, -0.0,
subnormals, bfloat16): the arrays go in through it, and the native op that makes the layout
(a view, a slice, a transpose, a memory-format copy) only moves elements.

Importing this module imports no framework: each is loaded through its :class:`Backend`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.frameworks.adapters import BACKENDS, Backend, get_backend
from oracles.errors import UsageError, choices

__all__ = ["LAYOUTS", "layout_unavailable", "to_native_layout"]

#: the memory layouts an input can be given in, ``contiguous`` (today's) first
LAYOUTS: tuple[str, ...] = ("contiguous", "transposed", "strided", "offset", "channels_last")

#: the fewest dimensions each layout needs (strided and offset work along axis 0)
_MIN_NDIM: dict[str, int] = {"contiguous": 0, "transposed": 2, "strided": 1, "offset": 1, "channels_last": 4}


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r}; {choices(LAYOUTS, given=layout)}")


def layout_unavailable(framework: str, layout: str, ndim: int) -> str | None:
    """None when ``layout`` can be built for arrays of ``ndim`` dimensions in ``framework``,
    else a one-line reason (``channels-last is a torch memory format``). Needs no framework
    installed: whether the framework itself is there is :meth:`Backend.unavailable`'s answer.

    Raises :class:`UsageError` for an unknown layout or framework, naming the choices."""
    _check_layout(layout)
    if framework not in BACKENDS:
        raise UsageError(f"unknown framework {framework!r}; {choices(BACKENDS, given=framework)}")
    if layout == "channels_last":
        if framework != "torch":
            return f"channels-last is a torch memory format; {framework} has none"
        if ndim != 4:
            return f"channels-last needs 4-D tensors (N, C, H, W), got {ndim}-D"
        return None
    need = _MIN_NDIM[layout]
    if ndim < need:
        return f"{layout} needs {need}-D or more, got {ndim}-D"
    return None


# -- building the buffers in numpy ------------------------------------------------------------


def _filler(a: npt.NDArray[Any]) -> Any:
    """What the gaps of a strided buffer hold: NaN, or 0 for integer indices."""
    return 0 if a.dtype.kind in "iub" else np.nan


def _with_gaps(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A buffer twice as long along axis 0 with ``a`` at the even rows, filler at the odd."""
    buf = np.full((2 * a.shape[0], *a.shape[1:]), _filler(a), dtype=a.dtype)
    buf[::2] = a  # an element copy: bits are kept (no arithmetic on NaN payloads)
    return buf


def _with_lead(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``a`` with its first row repeated in front (so ``[1:]`` is ``a``)."""
    return np.concatenate([a[:1], a], axis=0)


# -- the native op per framework --------------------------------------------------------------
#
# Each maps (framework module, native tensor, device) -> the tensor with the layout. The
# buffer built above goes through Backend.to_native onto the device, and the op runs there.


def _torch_op(layout: str) -> Callable[[Any, Any], Any]:
    if layout == "transposed":
        return lambda fw, t: t.transpose(-1, -2)
    if layout == "strided":
        return lambda fw, t: t[::2]
    if layout == "offset":
        return lambda fw, t: t[1:]
    return lambda fw, t: t.contiguous(memory_format=fw.channels_last)


def _numpy_op(layout: str) -> Callable[[Any, Any], Any]:
    if layout == "transposed":
        return lambda fw, a: np.swapaxes(a, -1, -2)
    if layout == "strided":
        return lambda fw, a: a[::2]
    return lambda fw, a: a[1:]


def _jax_op(layout: str) -> Callable[[Any, Any], Any]:
    # XLA has no views: each op is a copy on the array's device, still another chain of ops
    # (a transpose, a strided slice) in front of the implementation
    jnp = importlib.import_module("jax.numpy")
    if layout == "transposed":
        return lambda fw, x: jnp.swapaxes(x, -1, -2)
    if layout == "strided":
        return lambda fw, x: x[::2]
    return lambda fw, x: x[1:]


def _tf_op(layout: str, device: str) -> Callable[[Any, Any], Any]:
    # TensorFlow (and Keras 3 on it, whose tensors are TensorFlow's) would place an op on a
    # GPU whenever one exists, whatever device its input is on: pin it to the cell's device
    tf = get_backend("tensorflow")._load()
    where = "/GPU:0" if device == "cuda" else "/CPU:0"

    def apply(fw: Any, t: Any) -> Any:
        with tf.device(where):
            if layout == "transposed":
                return tf.linalg.matrix_transpose(t)
            if layout == "strided":
                return t[::2]
            return t[1:]

    return apply


def _native_op(backend: Backend, layout: str, device: str) -> Callable[[Any, Any], Any]:
    if backend.name == "torch":
        return _torch_op(layout)
    if backend.name == "numpy":
        return _numpy_op(layout)
    if backend.name == "jax":
        return _jax_op(layout)
    if backend.name in ("tensorflow", "keras"):
        return _tf_op(layout, device)
    raise UsageError(f"no layouts for framework {backend.name!r}; {choices(BACKENDS)}")


_BUFFER: dict[str, Callable[[npt.NDArray[Any]], npt.NDArray[Any]]] = {
    "transposed": lambda a: np.swapaxes(a, -1, -2),  # made C-contiguous by to_native
    "strided": _with_gaps,
    "offset": _with_lead,
    "channels_last": lambda a: a,  # the format is a native copy of the plain tensor
}


def to_native_layout(backend: Backend, arrays: Sequence[npt.ArrayLike], layout: str, device: str) -> list[Any]:
    """Native tensors of ``backend`` on ``device`` whose logical values and shapes equal
    ``arrays`` bit for bit (as :meth:`Backend.to_native`: every format, bfloat16, NaN
    payloads, integer index arrays), laid out in memory as ``layout`` says (module docstring).

    An array the layout cannot apply to (too few dimensions) stays contiguous, except the
    first: raises :class:`UsageError` when :func:`layout_unavailable` gives a reason for it,
    for an unknown layout, and for whatever :meth:`Backend.to_native` refuses."""
    _check_layout(layout)
    arrs = [np.asarray(a) for a in arrays]
    if layout == "contiguous":
        return [backend.to_native(a, device) for a in arrs]
    if arrs:
        why = layout_unavailable(backend.name, layout, arrs[0].ndim)
        if why is not None:
            raise UsageError(f"{backend.name}: cannot lay out the inputs as {layout}: {why}")
    fw = backend._load() if arrs else None
    op = _native_op(backend, layout, device) if arrs else None
    out: list[Any] = []
    for a in arrs:
        if layout_unavailable(backend.name, layout, a.ndim) is not None:
            out.append(backend.to_native(a, device))
            continue
        assert op is not None
        out.append(op(fw, backend.to_native(_BUFFER[layout](a), device)))
    return out
