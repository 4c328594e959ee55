"""Memory layouts (harness/frameworks/layouts.py): the same logical values, laid out
differently in memory, cross into every framework bit for bit.

For each available framework and each layout it can build, float16/bfloat16/float32/float64
arrays holding NaN payloads (quiet and signalling), -0.0, subnormals and infinities go in
through ``to_native_layout`` and come back through ``from_native`` unchanged, shape
included. For torch and numpy the tensors really are views of another layout (strides,
storage offsets, the channels-last format). A custom implementation in the isolated process
receives the layout it was asked for. CUDA variants carry the ``cuda`` marker.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from harness.execution.isolation import Isolated
from harness.frameworks.adapters import BACKENDS, Backend, get_backend
from harness.frameworks.layouts import LAYOUTS, layout_unavailable, to_native_layout
from oracles import FORMATS, Format, UsageError

#: a 4-D shape with every axis > 1, so each layout differs from the contiguous one
SHAPE = (3, 4, 5, 6)




def _hostile_values(fmt: Format, shape: tuple[int, ...], seed: int = 0) -> npt.NDArray[Any]:
    """Random bit patterns of ``fmt`` with the hard ones planted: NaN payloads (quiet and
    signalling, both signs), -0.0, the smallest and largest subnormals, infinities."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    bits = rng.integers(0, 1 << fmt.bits, n, dtype=np.uint64).astype(fmt.uint_dtype)
    m = fmt.precision - 1  # mantissa bits
    exp_all = ((1 << fmt.exponent_bits) - 1) << m
    sign = 1 << (fmt.bits - 1)
    planted = [
        exp_all | 1,  # signalling NaN, payload 1
        exp_all | (1 << (m - 1)) | 5,  # quiet NaN, payload 5
        sign | exp_all | (1 << (m - 2)),  # negative signalling NaN
        sign,  # -0.0
        1,  # smallest subnormal
        (1 << m) - 1,  # largest subnormal
        sign | 1,  # -smallest subnormal
        exp_all,  # +inf
        sign | exp_all,  # -inf
    ]
    bits[: len(planted)] = np.array(planted, dtype=np.uint64).astype(fmt.uint_dtype)
    rng.shuffle(bits)
    return fmt.from_bits(bits).reshape(shape)


def _assert_same_bits(got: npt.NDArray[Any], want: npt.NDArray[Any]) -> None:
    __tracebackhide__ = True
    assert got.dtype == want.dtype, f"dtype {got.dtype}, expected {want.dtype}"
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    width = {2: np.uint16, 4: np.uint32, 8: np.uint64}[want.dtype.itemsize]
    got_bits = np.ascontiguousarray(got).reshape(-1).view(width)
    want_bits = np.ascontiguousarray(want).reshape(-1).view(width)
    bad = np.flatnonzero(got_bits != want_bits)
    if bad.size:
        i = int(bad[0])
        pytest.fail(f"{bad.size} of {want_bits.size} elements changed, e.g. element {i}:"
                    f" {int(want_bits[i]):#x} came back as {int(got_bits[i]):#x}")


def _skip_unless_buildable(backend: Backend, fmt: Format | None, layout: str, ndim: int) -> None:
    if fmt is not None:
        reason = backend.dtype_unavailable(fmt)
        if reason is not None:
            pytest.skip(reason)
    why = layout_unavailable(backend.name, layout, ndim)
    if why is not None:
        pytest.skip(why)


# -- bits in, bits out ------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=str)
@pytest.mark.parametrize("shape", [(13,), (5, 6), SHAPE], ids=lambda s: f"{len(s)}d")
def test_every_layout_keeps_the_bits_and_the_shape(
    backend: Backend, device: str, layout: str, fmt: Format, shape: tuple[int, ...]
) -> None:
    _skip_unless_buildable(backend, fmt, layout, len(shape))
    a = _hostile_values(fmt, shape)
    (native,) = to_native_layout(backend, [a], layout, device)
    _assert_same_bits(backend.from_native(native), a)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_arrays_the_layout_cannot_apply_to_stay_contiguous_and_exact(
    backend: Backend, device: str, layout: str
) -> None:
    """Logits (2-D) and their integer targets (1-D, as cross_entropy takes them): the
    targets come through whatever the layout, and the strided gaps of integers hold 0."""
    _skip_unless_buildable(backend, None, layout, 2)
    fmt = FORMATS["float32"]
    logits = _hostile_values(fmt, (6, 5), seed=1)
    target = np.array([0, 4, 2, 1, 3, 4], dtype=np.int64 if backend.name != "jax" else np.int32)
    native = to_native_layout(backend, [logits, target], layout, device)
    _assert_same_bits(backend.from_native(native[0]), logits)
    got = backend.from_native(native[1])
    assert got.shape == target.shape
    assert got.tolist() == target.tolist()


# -- the layouts really are other layouts (torch and numpy, which have views) -------------------


def _torch_layouts(device: str) -> dict[str, Any]:
    backend = get_backend("torch")
    a = _hostile_values(FORMATS["bfloat16"], SHAPE)
    return {layout: to_native_layout(backend, [a], layout, device)[0] for layout in LAYOUTS}


@pytest.mark.parametrize("device_name", [pytest.param("cpu"), pytest.param("cuda", marks=pytest.mark.cuda)])
def test_torch_tensors_are_views_of_other_layouts(device_name: str) -> None:
    torch = pytest.importorskip("torch")
    reason = get_backend("torch").device_unavailable(device_name)
    if reason is not None:
        pytest.skip(reason)
    t = _torch_layouts(device_name)
    n, c, h, w = SHAPE
    assert t["contiguous"].is_contiguous()
    assert t["contiguous"].stride() == (c * h * w, h * w, w, 1)

    assert not t["transposed"].is_contiguous()
    assert t["transposed"].stride() == (c * h * w, h * w, 1, h)  # column-major in the last two

    assert not t["strided"].is_contiguous()
    assert t["strided"].stride() == (2 * c * h * w, h * w, w, 1)
    assert t["strided"].untyped_storage().nbytes() == 2 * n * c * h * w * 2  # the gaps are there

    assert t["offset"].storage_offset() == c * h * w  # one row in
    assert t["offset"].is_contiguous()  # contiguous from a misaligned start
    assert t["offset"].untyped_storage().data_ptr() != t["offset"].data_ptr()

    cl = t["channels_last"]
    assert cl.is_contiguous(memory_format=torch.channels_last)
    assert not cl.is_contiguous()
    assert cl.stride() == (h * w * c, 1, w * c, c)
    for layout, tensor in t.items():
        assert tensor.device.type == device_name, layout
        assert tensor.dtype == torch.bfloat16, layout


def test_torch_offset_of_a_vector_is_one_element_in() -> None:
    pytest.importorskip("torch")
    backend = get_backend("torch")
    a = _hostile_values(FORMATS["float16"], (9,))
    (t,) = to_native_layout(backend, [a], "offset", "cpu")
    assert t.storage_offset() == 1
    (s,) = to_native_layout(backend, [a], "strided", "cpu")
    assert s.stride() == (2,)
    assert not s.is_contiguous()


def test_torch_strided_gaps_hold_nan() -> None:
    """An implementation that read past its view would see NaN, not plausible numbers."""
    torch = pytest.importorskip("torch")
    backend = get_backend("torch")
    a = np.arange(12, dtype=np.float32).reshape(6, 2)
    (t,) = to_native_layout(backend, [a], "strided", "cpu")
    whole = torch.as_strided(t, (12, 2), (2, 1), 0)  # the buffer under the view
    assert torch.isnan(whole[1::2]).all()
    assert torch.equal(whole[::2], torch.from_numpy(a))


def test_numpy_arrays_are_views_of_other_layouts() -> None:
    backend = get_backend("numpy")
    a = _hostile_values(FORMATS["float32"], (6, 5))
    got = {layout: to_native_layout(backend, [a], layout, "cpu")[0] for layout in LAYOUTS if layout != "channels_last"}
    assert got["contiguous"].flags.c_contiguous
    assert got["transposed"].flags.f_contiguous and not got["transposed"].flags.c_contiguous
    assert got["transposed"].strides == (4, 24)
    assert got["strided"].strides == (2 * 5 * 4, 4) and not got["strided"].flags.c_contiguous
    off = got["offset"]
    assert off.base is not None and off.__array_interface__["data"][0] - off.base.__array_interface__["data"][0] == 20
    assert np.isnan(got["strided"].base[1::2]).all()  # type: ignore[index]


# -- the isolated process ---------------------------------------------------------------------


IDENTITY = '''
import numpy as np

def numpy_identity(x):
    """A copy of its input; refuses a contiguous one, so the test knows the layout arrived."""
    if x.flags.c_contiguous:
        raise AssertionError(f"got a contiguous array, strides {x.strides}")
    return x.copy()

def torch_identity(x):
    if x.is_contiguous():
        raise AssertionError(f"got a contiguous tensor, stride {x.stride()}")
    return x.clone()
'''


@pytest.mark.skipif(os.name != "posix", reason="isolation needs POSIX (pass_fds)")
@pytest.mark.parametrize("framework", ["numpy", "torch"])
def test_the_isolated_process_calls_with_the_layout(tmp_path: Path, framework: str) -> None:
    reason = get_backend(framework).unavailable()
    if reason is not None:
        pytest.skip(reason)
    path = tmp_path / "ident.py"
    path.write_text(textwrap.dedent(IDENTITY))
    spec = f"{path}:{framework}_identity"
    a = _hostile_values(FORMATS["bfloat16"], (8, 3))
    iso = Isolated()
    try:
        strided = iso.call(spec, "exp", framework, "cpu", [a], {}, timeout=120, repro="-", layout="strided")
        assert strided.failure is None, strided.failure
        assert strided.value is not None
        _assert_same_bits(strided.value, a)
        plain = iso.call(spec, "exp", framework, "cpu", [a], {}, timeout=120, repro="-")
        assert plain.failure is not None and "got a contiguous" in plain.failure  # default: as before
        with pytest.raises(UsageError, match="a gradient call takes contiguous inputs"):
            iso.call(spec, "exp", framework, "cpu", [a, a], {}, timeout=120, repro="-", grad=(0, "x"),
                     layout="strided")
        with pytest.raises(UsageError, match="cannot lay out the inputs as channels_last: channels-"):
            iso.call(spec, "exp", framework, "cpu", [a], {}, timeout=120, repro="-", layout="channels_last")
    finally:
        iso.close()


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("framework", "layout", "ndim", "reason"),
    [
        pytest.param("numpy", "channels_last", 4, "channels-last is a torch memory format", id="channels-last-numpy"),
        pytest.param("jax", "channels_last", 4, "channels-last is a torch memory format", id="channels-last-jax"),
        pytest.param("torch", "channels_last", 3, "channels-last needs 4-D", id="channels-last-3d"),
        pytest.param("torch", "transposed", 1, "transposed needs 2-D or more", id="transposed-1d"),
        pytest.param("tensorflow", "strided", 0, "strided needs 1-D or more", id="strided-0d"),
        pytest.param("keras", "offset", 0, "offset needs 1-D or more", id="offset-0d"),
    ],
)
def test_layout_unavailable_says_why(framework: str, layout: str, ndim: int, reason: str) -> None:
    why = layout_unavailable(framework, layout, ndim)
    assert why is not None and why.startswith(reason)
    assert "\n" not in why


@pytest.mark.parametrize("framework", list(BACKENDS))
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided", "offset"])
def test_the_common_layouts_exist_everywhere(framework: str, layout: str) -> None:
    assert layout_unavailable(framework, layout, 2) is None


def test_an_unknown_layout_is_a_usage_error_with_the_choices() -> None:
    with pytest.raises(UsageError, match=r"unknown layout 'stridded'; pick from: .*strided.*did you mean 'strided'") as e:
        layout_unavailable("torch", "stridded", 2)
    assert "\n" not in str(e.value)
    with pytest.raises(UsageError, match="unknown layout 'nhwc'"):
        to_native_layout(get_backend("numpy"), [np.zeros(3, np.float32)], "nhwc", "cpu")
    with pytest.raises(UsageError, match="unknown framework 'pytorch'"):
        layout_unavailable("pytorch", "strided", 2)


def test_a_layout_the_first_array_cannot_take_is_refused() -> None:
    with pytest.raises(UsageError, match="numpy: cannot lay out the inputs as transposed: transposed needs 2-D"):
        to_native_layout(get_backend("numpy"), [np.zeros(3, np.float32)], "transposed", "cpu")
