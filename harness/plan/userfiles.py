"""Users' input files (``npy:PATH``, ``npz:PATH``): checked from their headers, then read.

:mod:`harness.plan.inputs` parses the spec and builds the input set; this module knows the
file formats and what no oracle can take from them (see that module's docstring for the
rules: regular files only, the right container, no objects, 1 to :data:`MAX_INPUTS`
elements per array, exact values of the format, class targets in ``[0, C)``).
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from harness.plan.files import regular_file
from oracles.errors import UsageError
from oracles.formats import Format
from oracles.registry import Oracle

__all__ = ["MAX_INPUTS", "Header", "UserFile", "check_user_file", "load_arrays"]

#: the most inputs made and held in memory for one input set (see harness.plan.inputs):
#: random:16777216 peaks at 1.4 GB in `fpharness check`; 2**26 would need about 6 GB
MAX_INPUTS = 1 << 24
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip


class UserFile(Protocol):
    """What this module needs of an input spec (:class:`harness.plan.inputs.InputSpec`)."""

    @property
    def kind(self) -> str: ...  # "npy" or "npz"

    @property
    def path(self) -> str: ...

    @property
    def text(self) -> str: ...  # the spec as the user wrote it, for messages


@dataclass(frozen=True, slots=True)
class Header:
    """One array of a user's file as its header describes it (nothing read beyond it)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]


def _read_header(fh: Any, where: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:  # 2.0 and 3.0 differ only in the header's length field and text encoding
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    except Exception as exc:  # noqa: BLE001 - any malformed header is the user's to fix
        raise UsageError(f"cannot read {where}: not a valid .npy header ({exc})") from None
    return tuple(int(d) for d in shape), np.dtype(dtype)


def check_user_file(spec: UserFile) -> list[Header]:
    """The arrays of ``spec``'s file from their headers, checked for what no oracle can take:
    the path is a regular file of ``spec.kind``'s container, no array holds objects, and the
    arrays have at least one and at most :data:`MAX_INPUTS` elements each. Reads a few
    hundred bytes; raises a one-line :class:`UsageError` naming the file and the fix."""
    path = Path(spec.path)
    shown = spec.path
    regular_file(path, "input file", shown=shown, inside=f"the .{spec.kind} file",
                 otherwise="save the inputs with numpy.save (npy) or numpy.savez (npz) and give that file")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
            is_npy = magic == _NPY_MAGIC
            is_npz = magic[:4] in _ZIP_MAGIC
            if spec.kind == "npy" and is_npz:
                raise UsageError(f"input file {shown!r} is an .npz archive, not a .npy file: use npz:{spec.path}")
            if spec.kind == "npz" and is_npy:
                raise UsageError(f"input file {shown!r} is a .npy file, not an .npz archive: use npy:{spec.path}")
            if not (is_npy or is_npz):
                what = "is empty" if not magic else "is neither a .npy file nor an .npz archive"
                raise UsageError(f"cannot read {shown!r} as {spec.kind}: it {what}; save the inputs with numpy.save"
                                 " (npy) or numpy.savez (npz)")
            if is_npy:
                fh.seek(0)
                shape, dtype = _read_header(fh, repr(shown))
                headers = [Header("", shape, dtype)]
            else:
                headers = _npz_headers(path, shown)
    except OSError as exc:
        raise UsageError(f"input file {shown!r} cannot be read: {exc.strerror or exc}") from None
    if not headers:
        raise UsageError(f"{spec.text} holds no inputs: the archive has no arrays; an input set needs at least"
                         " one value")
    for h in headers:
        label = f"array {h.name!r}" if h.name else "its array"
        if h.dtype.hasobject:
            raise UsageError(f"{spec.text}: {label} holds Python objects (dtype {h.dtype}), which are never"
                             " unpickled; save numbers (float16, float32, float64, or integers for targets)")
        size = math.prod(h.shape)
        if size == 0:
            raise UsageError(f"{spec.text} holds no inputs: {label} has shape {h.shape}; an input set needs at least"
                             " one value")
        if size > MAX_INPUTS:
            raise UsageError(f"{spec.text}: {label} has {size} elements (shape {h.shape}), over the limit of"
                             f" {MAX_INPUTS} (2**24) inputs held in memory per input set; split it into several files")
    return headers


def _npz_headers(path: Path, shown: str) -> list[Header]:
    headers: list[Header] = []
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue  # np.load ignores them too
                with archive.open(member) as fh:
                    shape, dtype = _read_header(fh, f"{shown!r} member {member!r}")
                headers.append(Header(member[: -len(".npy")], shape, dtype))
    except zipfile.BadZipFile as exc:
        raise UsageError(f"cannot read {shown!r} as npz: {exc}") from None
    return headers


def load_arrays(spec: UserFile, oracle: Oracle, fmt: Format) -> list[npt.NDArray[Any]]:
    """The arguments of ``oracle`` in format ``fmt`` from ``spec``'s file: exact values of
    the format (floats must be representable), integer class targets in ``[0, C)``. Raises a
    one-line :class:`UsageError` for anything the oracle cannot take."""
    check_user_file(spec)  # again: the spec may come from stored results, the file may have changed
    path = Path(spec.path)
    names = [a.name for a in oracle.args]
    if spec.kind == "npy" and len(names) != 1:
        raise UsageError(
            f"{oracle.name} takes {len(names)} arguments ({', '.join(names)}): use npz:PATH with arrays named so"
        )
    try:
        loaded = np.load(path, allow_pickle=False)
        if spec.kind == "npy":
            raw = {names[0]: np.asarray(loaded)}
        else:
            try:
                raw = {k: np.asarray(loaded[k]) for k in loaded.files}
            finally:
                loaded.close()  # an NpzFile keeps its file open until closed
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UsageError(f"cannot read {spec.path!r} as {spec.kind}: {_one_line(exc)}") from None
    missing = [n for n in names if n not in raw]
    if missing:
        raise UsageError(
            f"{spec.path!r} lacks array(s) {', '.join(missing)}; it has {', '.join(sorted(raw)) or 'none'}"
            f" and {oracle.name} needs {', '.join(names)}"
        )
    arrays: list[npt.NDArray[Any]] = []
    for arg in oracle.args:
        arr = raw[arg.name]
        if arg.kind == "index":
            if arr.dtype.kind not in "iu":
                raise UsageError(f"{spec.path!r}: {arg.name} must hold integers, got {arr.dtype}")
            arrays.append(arr)  # made int64 by _check_targets, after the range check
        elif arr.dtype == fmt.dtype:
            arrays.append(arr)
        elif fmt.name == "bfloat16" and arr.dtype.kind == "V" and arr.dtype.itemsize == 2:
            # np.save writes ml_dtypes' bfloat16 as raw 2-byte records (|V2) and np.load
            # gives them back so; they are the bfloat16 bits
            arrays.append(arr.view(fmt.dtype))
        elif arr.dtype.kind == "f" or arr.dtype == np.dtype(_bfloat16()):
            arrays.append(fmt.from_float64(arr.astype(np.float64), what=f"{spec.path}:{arg.name}"))
        else:
            raise UsageError(
                f"{spec.path!r}: {arg.name} has dtype {arr.dtype}; expected {fmt.name} or float values exactly"
                f" representable in {fmt.name}"
            )
    if oracle.kind != "elementwise":
        arrays = _check_rows(spec, oracle, arrays)
    return arrays


def _check_rows(spec: UserFile, oracle: Oracle, arrays: list[npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
    """Row-wise arguments: 2-D reals of one shape and, per row, a class index in [0, C)
    (the rule in the module docstring); index arguments come back as int64."""
    first_name = oracle.args[0].name
    first = arrays[0]
    if first.ndim != 2:
        raise UsageError(f"{spec.text}: {oracle.name} is row-wise: {first_name} must be 2-D (rows x width), got"
                         f" shape {first.shape}")
    rows, width = first.shape
    out: list[npt.NDArray[Any]] = []
    for arg, arr in zip(oracle.args, arrays, strict=True):
        if arg.kind == "real":
            if arr.shape != first.shape:
                raise UsageError(f"{spec.text}: {arg.name} has shape {arr.shape}; it must have the shape of"
                                 f" {first_name}, {first.shape}")
            out.append(arr)
            continue
        if arr.shape != (rows,):
            raise UsageError(f"{spec.text}: {arg.name} needs one class index per row of {first_name}, shape"
                             f" ({rows},), got {arr.shape}")
        bad = np.flatnonzero((arr < 0) | (arr >= width))
        if bad.size:
            row = int(bad[0])
            raise UsageError(
                f"{spec.text}: {arg.name}[{row}] = {int(arr[row])} is not a class index; {oracle.name} takes"
                f" {arg.name} in [0, {width}) for {first_name} of {width} columns ({bad.size} of {rows} rows are"
                " outside; there is no ignore_index: drop those rows)"
            )
        out.append(arr.astype(np.int64))
    return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _bfloat16() -> Any:
    import ml_dtypes  # lazy: 0.4 s to import; only a user's bfloat16 file needs it

    return ml_dtypes.bfloat16
