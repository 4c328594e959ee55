"""The backward pass of an implementation: the vector-Jacobian product its framework's
autodiff returns, for gradient cells.

:func:`vjp` takes the same native tensors a forward cell gives the implementation, picks
one real argument, and returns what the framework's own reverse mode computes for
``cotangent`` (the ``g`` of ``g^T J``; ``loss.backward()`` is ``g = 1``, 0-d for a reduced
loss): ``torch.autograd.grad``, ``tf.GradientTape.gradient``, ``jax.vjp``. numpy has no
autodiff, so a numpy implementation brings its own, as a ``vjp`` attribute.

What we never do, because the harness judges the bits the framework returns:

* cast the gradient. A float16 input whose gradient comes back in float32 is a finding the
  judge reports, not something to tidy up here;
* change the cotangent. It reaches autodiff with the bits it was given; when its dtype is
  not the output's (an implementation that returns float32 for float16 input) it is
  converted only if the conversion is exact, else the call is refused. torch would cast
  it silently and jax refuses it, so one rule for all is ours to set;
* call anything to answer :func:`differentiable`: it is static, so a plan can leave numpy
  built-ins out of gradient cells without loading a framework.

Where no gradient comes back, :class:`NotDifferentiable` says whose fault it is: the
framework's own (``limit=True``: torch's "the derivative for 'target' is not implemented",
an op with no registered gradient, numpy without a ``vjp``) or the implementation's
(``limit=False``: an output that autodiff cannot connect to the input, typically a custom
function that detached it or computed it in numpy). Any other exception is the
implementation's failure and propagates unchanged, to become the cell's error.

Importing this module imports no framework; each is imported inside its path.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from harness.frameworks.adapters import Backend, get_backend
from harness.frameworks.registry import FRAMEWORKS
from oracles.errors import FpharnessError, UsageError, choices, one_line
from oracles.formats import FORMATS

__all__ = ["NUMPY_NO_VJP", "NotDifferentiable", "differentiable", "vjp"]

#: how torch words a derivative it does not have: RuntimeError in older releases,
#: NotImplementedError now ("the derivative for 'igamma: input' is not implemented.")
_TORCH_NOT_IMPLEMENTED = re.compile(r"derivative for .* (is )?not implemented")
#: jax's words for a rule it lacks (NotImplementedError), a loop it cannot reverse and an
#: argument it does not differentiate (ValueError: "Betainc gradient with respect to a and b
#: not supported."): the framework declining, not the implementation failing
_JAX_NOT_IMPLEMENTED = re.compile(
    r"(Differentiation|Transpose) rule .* not implemented|Reverse-mode differentiation does not work"
    r"|gradient with respect to .* not supported"
)

#: why a numpy implementation without its own ``vjp`` has no gradient, and the fix
NUMPY_NO_VJP = "numpy has no autodiff: give the implementation a vjp attribute, e.g. fn.vjp = {'x': grad_fn} (see README)"


class NotDifferentiable(FpharnessError):
    """No gradient came back; ``reason`` is one line saying what and what to do.

    ``limit=True``: the framework declines (its autodiff has no derivative for this
    argument, or it has no autodiff), a fact about the framework to report like a format it
    lacks. ``limit=False``: the implementation's output is not connected to the argument
    through autodiff (detached, computed outside the framework) or its own ``vjp`` is
    malformed: an error of the implementation, which for a custom one its author must fix."""

    def __init__(self, reason: str, *, limit: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.limit = limit

    def __reduce__(self) -> tuple[Any, ...]:
        # the default pickling rebuilds from ``args`` alone and would lose the keyword-only
        # ``limit`` (an exception crossing to another process is pickled)
        return (_rebuild, (self.reason, self.limit))


def _rebuild(reason: str, limit: bool) -> NotDifferentiable:
    return NotDifferentiable(reason, limit=limit)


def _name_of(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__)


def differentiable(framework: str, fn: Callable[..., Any]) -> str | None:
    """None when a gradient of ``fn`` can be asked for in ``framework``, else the one-line
    reason it cannot (numpy without a ``vjp`` attribute). Static: calls and imports nothing,
    so an argument-specific refusal (torch's target of a loss) still comes from :func:`vjp`.
    :class:`UsageError` for an unknown framework."""
    if framework not in FRAMEWORKS:
        raise UsageError(f"unknown framework {framework!r}; {choices(FRAMEWORKS, given=framework)}")
    if framework == "numpy" and getattr(fn, "vjp", None) is None:
        return NUMPY_NO_VJP
    return None


def vjp(
    framework: str,
    fn: Callable[..., Any],
    native: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    wrt: int,
    wrt_name: str,
    cotangent: Any,
) -> Any:
    """The gradient of ``fn(*native, **kwargs)`` with respect to ``native[wrt]`` (named
    ``wrt_name`` in the oracle), contracted with ``cotangent``, as the framework's own tensor:
    same shape as ``native[wrt]``, and whatever dtype and device autodiff gives (never cast).

    ``native`` and ``cotangent`` are ``framework``'s tensors (:meth:`Backend.to_native`);
    ``cotangent`` has the output's shape (0-d for a reduced loss) and should have its dtype:
    another dtype is converted only when that is exact, else :class:`UsageError`. Raises
    :class:`NotDifferentiable` when no gradient comes back, :class:`UsageError` for a ``wrt``
    that is not a float argument, TypeError when ``fn`` returns no tensor of the framework;
    whatever ``fn`` or autodiff raises otherwise propagates unchanged."""
    if framework not in FRAMEWORKS:
        raise UsageError(f"unknown framework {framework!r}; {choices(FRAMEWORKS, given=framework)}")
    if not 0 <= wrt < len(native):
        raise UsageError(f"wrt={wrt} ({wrt_name}) is not an argument position; fn takes {len(native)} tensors")
    args = list(native)
    if framework == "numpy":
        return _numpy_vjp(fn, args, kwargs, wrt, wrt_name, cotangent)
    path = framework
    if framework == "keras":
        path = _keras_path()
    if path == "torch":
        return _torch_vjp(fn, args, kwargs, wrt, wrt_name, cotangent)
    if path == "jax":
        return _jax_vjp(fn, args, kwargs, wrt, wrt_name, cotangent)
    return _tf_vjp(fn, args, kwargs, wrt, wrt_name, cotangent, framework)


# -- shared checks ----------------------------------------------------------------------------


def _require_float(framework: str, dtype_name: str, wrt_name: str) -> None:
    if dtype_name not in FORMATS:
        raise UsageError(
            f"{framework}: {wrt_name} is a {dtype_name} tensor; gradients are taken with respect to"
            f" float arguments only ({', '.join(FORMATS)}), never index arguments"
        )


def _check_shape(framework: str, out_shape: tuple[int, ...], cot_shape: tuple[int, ...]) -> None:
    if out_shape != cot_shape:
        raise UsageError(
            f"{framework}: the output has shape {out_shape} but the cotangent {cot_shape}; the cotangent"
            " must have the output's shape (0-d for a reduced loss)"
        )


def _exactly_as(backend: Backend, cot: Any, out_dtype: str, device: str) -> Any:
    """``cot`` converted to the output's dtype on ``device`` when that keeps every value
    (bits compared after a round trip, so a NaN payload or a subnormal that would change
    refuses the conversion); :class:`UsageError` otherwise. Done in numpy: from_native and
    to_native are bit-exact and numpy's casts are IEEE's, not a framework kernel that may
    flush subnormals."""
    fmt = FORMATS.get(out_dtype)
    if fmt is None:
        raise TypeError(f"{backend.name}: the output has dtype {out_dtype}; a gradient needs a float output")
    given = backend.from_native(cot)
    with np.errstate(all="ignore"):
        converted = given.astype(fmt.dtype)
        back = converted.astype(given.dtype)
    if back.tobytes() != given.tobytes():
        raise UsageError(
            f"{backend.name}: the cotangent is {given.dtype} and the output {fmt.name}, and not every"
            f" cotangent value is exactly a {fmt.name}; give the cotangent the output's dtype"
        )
    return backend.to_native(converted, device)


# -- torch ------------------------------------------------------------------------------------


def _torch_dtype(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _torch_vjp(fn: Callable[..., Any], args: list[Any], kwargs: Mapping[str, Any], wrt: int, wrt_name: str,
               cotangent: Any) -> Any:
    import torch

    x = args[wrt]
    for value, what in ((x, wrt_name), (cotangent, "the cotangent")):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"torch: {what} must be a torch.Tensor, got {type(value).__qualname__}")
    _require_float("torch", _torch_dtype(x.dtype), wrt_name)
    # a leaf of our own: the caller's tensor is neither marked nor aliased (an implementation
    # writing in place must not change it), and clone() copies the bits as they are
    leaf = x.detach().clone().requires_grad_(True)
    args[wrt] = leaf

    def declined(exc: BaseException) -> NotDifferentiable:
        return NotDifferentiable(f"torch does not differentiate {wrt_name}: {one_line(exc)}", limit=True)

    # grad mode is per thread and on by default; enable_grad keeps a caller's no_grad out
    with torch.enable_grad():
        try:
            out = fn(*args, **kwargs)
        except (RuntimeError, NotImplementedError) as exc:  # some ops refuse at the forward call
            if _TORCH_NOT_IMPLEMENTED.search(str(exc)):
                raise declined(exc) from exc
            raise
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"a torch implementation must return a torch.Tensor, got {type(out).__qualname__}")
        if not out.requires_grad:
            raise NotDifferentiable(
                f"torch: the output does not depend on {wrt_name} through autograd (it has no grad_fn:"
                " detached, computed outside torch or under torch.no_grad); compute it with torch"
                " operations on the tensor the implementation is given",
                limit=False,
            )
        _check_shape("torch", tuple(out.shape), tuple(cotangent.shape))
        if cotangent.dtype != out.dtype or cotangent.device != out.device:
            cotangent = _exactly_as(get_backend("torch"), cotangent, _torch_dtype(out.dtype), out.device.type)
        try:
            (grad,) = torch.autograd.grad(out, leaf, grad_outputs=cotangent, allow_unused=True)
        except (RuntimeError, NotImplementedError) as exc:
            if _TORCH_NOT_IMPLEMENTED.search(str(exc)):
                raise declined(exc) from exc
            raise
    if grad is None:
        raise NotDifferentiable(
            f"torch: the output does not depend on {wrt_name} through autograd (autograd.grad found no"
            f" path from it); compute the output from the {wrt_name} the implementation is given",
            limit=False,
        )
    return grad


# -- TensorFlow and Keras on TensorFlow ---------------------------------------------------------


def _tf_device(tensor: Any) -> str:
    return "cuda" if ":GPU:" in str(getattr(tensor, "device", "")).upper() else "cpu"


def _tf_vjp(fn: Callable[..., Any], args: list[Any], kwargs: Mapping[str, Any], wrt: int, wrt_name: str,
            cotangent: Any, framework: str) -> Any:
    backend = get_backend(framework)
    tf = get_backend("tensorflow")._load()  # quiet first import, as the adapter does it
    x = args[wrt]
    for value, what in ((x, wrt_name), (cotangent, "the cotangent")):
        if not tf.is_tensor(value):
            raise TypeError(f"{framework}: {what} must be a tf.Tensor, got {type(value).__qualname__}")
    _require_float(framework, x.dtype.name, wrt_name)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = fn(*args, **kwargs)
    if isinstance(out, tf.Variable):
        out = tf.convert_to_tensor(out)
    if not tf.is_tensor(out) or isinstance(out, tf.SparseTensor | tf.RaggedTensor):
        raise TypeError(f"a {framework} implementation must return a tf.Tensor, got {type(out).__qualname__}")
    _check_shape(framework, tuple(out.shape), tuple(cotangent.shape))
    if cotangent.dtype != out.dtype or _tf_device(cotangent) != _tf_device(out):
        cotangent = _exactly_as(backend, cotangent, out.dtype.name, _tf_device(out))
    try:
        grad = tape.gradient(out, x, output_gradients=cotangent)
    except LookupError as exc:  # "No gradient defined for operation 'X' (op type: Y)"
        raise NotDifferentiable(f"{framework} does not differentiate {wrt_name}: {one_line(exc)}", limit=True) from exc
    if grad is None:
        # TensorFlow cannot tell an op without a gradient (tf.argmax, tf.stop_gradient)
        # from code outside the tape, so this is the implementation's to fix or explain
        raise NotDifferentiable(
            f"{framework} returns no gradient for {wrt_name} (the output does not depend on it through"
            " the tape: tf.stop_gradient, numpy, or an op without a gradient); compute it with"
            " TensorFlow operations on the tensor the implementation is given",
            limit=False,
        )
    if isinstance(grad, tf.IndexedSlices):  # tf.gather's gradient: the same values, summed dense
        grad = tf.convert_to_tensor(grad)
    return grad


def _keras_path() -> str:
    """The framework whose autodiff Keras's tensors use: its backend, asked of keras as the
    adapter loaded it (it is already loaded when the inputs were made by the adapter)."""
    keras = sys.modules.get("keras")
    if keras is None:
        reason = get_backend("keras").unavailable()  # loads keras the adapter's way
        keras = sys.modules.get("keras")
        if keras is None:
            raise UsageError(f"keras: {reason}")
    backend = str(keras.backend.backend())
    if backend not in ("tensorflow", "jax", "torch"):
        raise NotDifferentiable(
            f"keras on the {backend!r} backend: fpharness takes Keras gradients on tensorflow, jax and"
            " torch (set KERAS_BACKEND before keras is first imported)",
            limit=True,
        )
    return backend


# -- JAX --------------------------------------------------------------------------------------


def _jax_device(array: Any) -> str:
    platforms = {d.platform for d in array.devices()}
    return "cpu" if platforms == {"cpu"} else "cuda"


def _jax_vjp(fn: Callable[..., Any], args: list[Any], kwargs: Mapping[str, Any], wrt: int, wrt_name: str,
             cotangent: Any) -> Any:
    import jax

    x = args[wrt]
    for value, what in ((x, wrt_name), (cotangent, "the cotangent")):
        if not isinstance(value, jax.Array):
            raise TypeError(f"jax: {what} must be a jax.Array, got {type(value).__qualname__}")
    _require_float("jax", x.dtype.name, wrt_name)

    def at(a: Any) -> Any:
        return fn(*args[:wrt], a, *args[wrt + 1:], **kwargs)

    def declined(exc: BaseException) -> NotDifferentiable:
        return NotDifferentiable(f"jax does not differentiate {wrt_name}: {one_line(exc)}", limit=True)

    try:
        out, pullback = jax.vjp(at, x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError) as exc:
        raise NotDifferentiable(
            f"jax cannot trace the output back to {wrt_name} (the implementation turned the traced"
            f" array into a concrete value: {one_line(exc)}); compute it with jax.numpy operations",
            limit=False,
        ) from exc
    except (NotImplementedError, ValueError) as exc:
        if _JAX_NOT_IMPLEMENTED.search(str(exc)):
            raise declined(exc) from exc
        raise
    if not isinstance(out, jax.Array):
        raise TypeError(f"a jax implementation must return a jax.Array, got {type(out).__qualname__}")
    _check_shape("jax", tuple(out.shape), tuple(cotangent.shape))
    if cotangent.dtype != out.dtype or _jax_device(cotangent) != _jax_device(out):
        cotangent = _exactly_as(get_backend("jax"), cotangent, out.dtype.name, _jax_device(out))
    try:
        (grad,) = pullback(cotangent)
    except (NotImplementedError, ValueError) as exc:
        if _JAX_NOT_IMPLEMENTED.search(str(exc)):
            raise declined(exc) from exc
        raise
    return grad


# -- numpy: the implementation's own vjp ---------------------------------------------------------


def _numpy_vjp(fn: Callable[..., Any], args: list[Any], kwargs: Mapping[str, Any], wrt: int, wrt_name: str,
               cotangent: Any) -> Any:
    _require_float("numpy", np.asarray(args[wrt]).dtype.name, wrt_name)
    given = getattr(fn, "vjp", None)
    name = _name_of(fn)
    if given is None:
        raise NotDifferentiable(NUMPY_NO_VJP, limit=True)
    if isinstance(given, Mapping):
        grad_fn = given.get(wrt_name)
        if grad_fn is None:
            has = ", ".join(repr(k) for k in given) or "nothing"
            raise NotDifferentiable(
                f"numpy: {name}.vjp has no entry for {wrt_name!r} (it has {has}); add"
                f" {name}.vjp[{wrt_name!r}] = grad_fn to differentiate it",
                limit=True,
            )
    elif callable(given):
        if wrt != 0:
            raise NotDifferentiable(
                f"numpy: {name}.vjp is one function, the gradient for the first argument; for"
                f" {wrt_name!r} give a mapping, e.g. {name}.vjp = {{'x': grad_x, {wrt_name!r}: grad_{wrt_name}}}",
                limit=True,
            )
        grad_fn = given
    else:
        # the user's code is wrong, not numpy's: an error of the implementation
        raise NotDifferentiable(
            f"numpy: {name}.vjp is a {type(given).__qualname__}; it must be a function"
            f" vjp(*args, cotangent, **params) or a mapping {{arg_name: function}}",
            limit=False,
        )
    if not callable(grad_fn):
        raise NotDifferentiable(
            f"numpy: {name}.vjp[{wrt_name!r}] is a {type(grad_fn).__qualname__}, not a function"
            " vjp(*args, cotangent, **params)",
            limit=False,
        )
    return grad_fn(*args, cotangent, **kwargs)
