"""Binary floating-point formats as small frozen records.

A :class:`Format` knows its IEEE 754 parameters (precision including the hidden bit,
exponent range), its numpy dtype (bfloat16 through ``ml_dtypes``), how to move between
values and bit patterns, and how to step to the next value in bit space. Everything here
is exact: values of every format fit float64 exactly, and float64 is the carrier the rest
of fpharness uses for "a value of some format".

float8 formats (e4m3fn without infinities, e5m2) fit the same record: ``has_inf`` and
``nan_is_max_pattern`` describe where they differ, so callers need no changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from oracles.errors import UsageError, choices
from oracles.rounding import round_float64

__all__ = [
    "BFLOAT16",
    "FLOAT16",
    "FLOAT32",
    "FLOAT64",
    "FORMATS",
    "Format",
    "format_of_dtype",
    "get_format",
]

_UINT: dict[int, type[np.unsignedinteger[Any]]] = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}


@dataclass(frozen=True, slots=True)
class Format:
    """An IEEE-754-style binary format.

    ``precision`` counts the hidden bit (float16: 11); ``emin`` is the exponent of the
    smallest normal number and ``emax`` of the largest finite one.
    """

    name: str
    precision: int
    emin: int
    emax: int
    bits: int
    has_inf: bool = True

    def __str__(self) -> str:
        return self.name

    # -- parameters ---------------------------------------------------------------
    @property
    def exponent_bits(self) -> int:
        return self.bits - self.precision

    @property
    def largest(self) -> float:
        """Largest finite value."""
        return math.ldexp(2.0 - math.ldexp(1.0, 1 - self.precision), self.emax)

    @property
    def smallest_normal(self) -> float:
        return math.ldexp(1.0, self.emin)

    @property
    def smallest_subnormal(self) -> float:
        return math.ldexp(1.0, self.emin - self.precision + 1)

    @property
    def overflow_threshold(self) -> float:
        """Smallest magnitude that rounds to infinity (largest + half an ulp); exact in float64
        for every format narrower than float64."""
        return math.ldexp(2.0 - math.ldexp(1.0, -self.precision), self.emax)

    @property
    def uint_dtype(self) -> type[np.unsignedinteger[Any]]:
        return _UINT[self.bits]

    @property
    def dtype(self) -> np.dtype[Any]:
        """The numpy dtype that stores this format (``ml_dtypes.bfloat16`` for bfloat16)."""
        return _numpy_dtype(self.name)

    # -- values and bits ------------------------------------------------------------
    def all_bit_patterns(self) -> npt.NDArray[Any]:
        """Every bit pattern of a format of at most 16 bits, in increasing unsigned order."""
        if self.bits > 16:
            raise UsageError(
                f"exhaustive inputs need a format of at most 16 bits; {self.name} has {self.bits}"
                " (use random:N or special inputs, or stream with the performance tier)"
            )
        return np.arange(1 << self.bits, dtype=np.uint64).astype(self.uint_dtype)

    def from_bits(self, bits: npt.ArrayLike) -> npt.NDArray[Any]:
        """Reinterpret unsigned bit patterns as values of this format."""
        return np.asarray(bits, dtype=self.uint_dtype).view(self.dtype)

    def to_bits(self, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Bit patterns of an array stored in this format's dtype."""
        arr = np.asarray(values)
        if arr.dtype != self.dtype:
            raise UsageError(f"expected an array of {self.name}, got {arr.dtype}")
        return arr.view(self.uint_dtype)

    def to_float64(self, values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Exact float64 copies of this format's values (every format here embeds exactly)."""
        return np.asarray(values).astype(np.float64)

    def from_float64(self, values: npt.ArrayLike, *, what: str = "input") -> npt.NDArray[Any]:
        """Convert float64 values that are exactly representable here; anything else is a
        :class:`UsageError` naming the first offending value."""
        arr = np.asarray(values, dtype=np.float64)
        rounded = round_float64(arr, self)
        bad = ~((rounded == arr) | (np.isnan(rounded) & np.isnan(arr)))
        if bad.any():
            i = int(np.flatnonzero(bad.ravel())[0])
            v = float(arr.ravel()[i])
            r = float(rounded.ravel()[i])
            raise UsageError(
                f"{what} value {v!r} (element {i}) is not exactly representable in {self.name};"
                f" the nearest {self.name} is {r!r}: round it first or use an array of dtype"
                f" {self.name}"
            )
        return arr.astype(self.dtype)

    def hex(self, value: float) -> str:
        """The bit pattern of one value, as ``0x`` and a fixed number of hex digits."""
        bits = int(self.from_float64(np.array([value])).view(self.uint_dtype)[0])
        return f"0x{bits:0{self.bits // 4}x}"

    def hex_of_bits(self, bits: int) -> str:
        return f"0x{int(bits):0{self.bits // 4}x}"

    # -- stepping in bit space ----------------------------------------------------------
    def next_up(self, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The next larger value of each element (NaN stays NaN, +inf stays +inf, -0 and +0
        both step to the smallest subnormal)."""
        return self._step(values, up=True)

    def next_down(self, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The next smaller value of each element."""
        return self._step(values, up=False)

    def _step(self, values: npt.NDArray[Any], *, up: bool) -> npt.NDArray[Any]:
        arr = np.asarray(values, dtype=self.dtype)
        # uint64, not int64: the sign bit of float64 does not fit a signed 64-bit integer
        bits = arr.view(self.uint_dtype).astype(np.uint64)
        sign_bit = 1 << (self.bits - 1)
        negative = (bits & sign_bit) != 0
        mag = bits & (sign_bit - 1)
        # Bit space is sign-magnitude: moving up means growing the magnitude of a positive
        # number and shrinking that of a negative one.
        grow = negative != up
        new_mag = np.where(grow, mag + 1, mag - 1)
        out = np.where(negative, new_mag | sign_bit, new_mag)
        zero = mag == 0
        out = np.where(zero, 1 if up else (1 | sign_bit), out)
        f64 = arr.astype(np.float64)
        keep = np.isnan(f64) | (np.isinf(f64) & ((f64 > 0) == up))
        out = np.where(keep, bits, out)
        return out.astype(self.uint_dtype).view(self.dtype)


def _numpy_dtype(name: str) -> np.dtype[Any]:
    if name == "bfloat16":
        import ml_dtypes  # why: ~0.4 s to import, and only bfloat16 needs it

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


FLOAT16 = Format("float16", precision=11, emin=-14, emax=15, bits=16)
BFLOAT16 = Format("bfloat16", precision=8, emin=-126, emax=127, bits=16)
FLOAT32 = Format("float32", precision=24, emin=-126, emax=127, bits=32)
FLOAT64 = Format("float64", precision=53, emin=-1022, emax=1023, bits=64)

FORMATS: dict[str, Format] = {f.name: f for f in (FLOAT16, BFLOAT16, FLOAT32, FLOAT64)}


def get_format(name: str | Format) -> Format:
    """Look a format up by name; an unknown name is a :class:`UsageError` listing the valid ones."""
    if isinstance(name, Format):
        return name
    key = str(name).strip().lower()
    aliases = {"half": "float16", "fp16": "float16", "bf16": "bfloat16", "single": "float32",
               "fp32": "float32", "double": "float64", "fp64": "float64"}
    key = aliases.get(key, key)
    try:
        return FORMATS[key]
    except KeyError:
        raise UsageError(f"unknown dtype {name!r}; {choices(FORMATS, given=key)}") from None


def format_of_dtype(dtype: Any) -> Format:
    """The format stored by a numpy dtype (including ml_dtypes' bfloat16)."""
    dt = np.dtype(dtype)
    for fmt in FORMATS.values():
        if fmt.dtype == dt:
            return fmt
    raise UsageError(f"dtype {dt} is not a supported float format; {choices(FORMATS)}")
