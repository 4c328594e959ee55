"""Input sets: parsing specs like ``random:10000:7`` and generating exact inputs.

Every generated value is a value of the requested format (the arrays are in the format's
own dtype), so the implementation and the oracle see exactly the same numbers. An input
set is a list of *batches*: row-wise oracles need rows of several widths, and a batch is
one call of the implementation.

Specs (the CLI and suite contract):

``exhaustive``
    every bit pattern of a 16-bit format (NaNs and infinities included); row-wise
    oracles get the rows ``[x, 0]``; two-argument losses pair every pattern with each label.
``special``
    signed zeros, infinities, NaN, the subnormal and normal extremes, +-1, and the
    thresholds where results overflow, underflow, turn subnormal or where common
    implementations switch branch, each with its bit neighbours; crafted rows for row-wise
    oracles; probabilities at and next to 0 and 1 for losses.
``random:N[:SEED]``
    N values uniform over the bit patterns of finite values (as Herbie samples).
``normal:MEAN:STD:N[:SEED]``, ``uniform:LO:HI:N[:SEED]``
    value distributions, rounded once into the format.
``npy:PATH``, ``npz:PATH``
    exact user inputs: one array, or arrays named after the oracle's arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from oracles.errors import UsageError
from oracles.formats import Format
from oracles.registry import Oracle
from oracles.rounding import round_float64

__all__ = ["DEFAULT_SEED", "KINDS", "Batch", "InputSet", "InputSpec", "parse_inputs"]

DEFAULT_SEED = 0
ROW_WIDTH = 10  # the seeds use (100, 10) batches
STREAM_CHUNK = 1 << 22  # 4M elements: ~150 MB of working arrays per chunk
KINDS = ("exhaustive", "special", "random", "normal", "uniform", "npy", "npz")
_USAGE = "exhaustive, special, random:N[:SEED], normal:MEAN:STD:N[:SEED], uniform:LO:HI:N[:SEED], npy:PATH, npz:PATH"


@dataclass(frozen=True, slots=True)
class InputSpec:
    """A parsed input spec; ``text`` is the canonical string stored in results."""

    kind: str
    text: str
    n: int = 0
    seed: int = DEFAULT_SEED
    a: float = 0.0
    b: float = 0.0
    path: str = ""

    def __str__(self) -> str:
        return self.text

    def generate(self, oracle: Oracle, fmt: Format) -> InputSet:
        """The exact inputs of this spec for ``oracle`` in format ``fmt``."""
        rng = np.random.default_rng(self.seed)
        if self.kind in ("npy", "npz"):
            return _load_user(self, oracle, fmt)
        if self.kind == "exhaustive" and fmt.bits > 16:
            return InputSet(self.text, fmt, StreamedPatterns(fmt, oracle), oracle)
        if oracle.kind == "elementwise":
            batches = [_elementwise(self, oracle, fmt, rng)]
        else:
            batches = _rows(self, oracle, fmt, rng)
        return InputSet(self.text, fmt, tuple(batches), oracle)


@dataclass(frozen=True, slots=True, eq=False)
class Batch:
    """One call's worth of arguments: reals in the format's dtype, indices as int64."""

    arrays: tuple[npt.NDArray[Any], ...]

    @property
    def size(self) -> int:
        return int(self.arrays[0].size)


class StreamedPatterns(Sequence[Batch]):
    """Every bit pattern of a 32-bit format, as :data:`STREAM_CHUNK`-element batches made
    on demand: 2**32 inputs in bounded memory. Only for one-argument elementwise oracles."""

    def __init__(self, fmt: Format, oracle: Oracle) -> None:
        if fmt.bits != 32 or oracle.kind != "elementwise" or len(oracle.args) != 1:
            raise UsageError(
                f"exhaustive {fmt.name} inputs are streamed only for one-argument elementwise oracles"
                f" in a 32-bit format; {oracle.name} in {fmt.name} needs special, random:N or a distribution"
            )
        self.fmt = fmt
        self.total = 1 << fmt.bits
        self.chunk = min(STREAM_CHUNK, self.total)

    def __len__(self) -> int:
        return -(-self.total // self.chunk)

    @overload
    def __getitem__(self, index: int) -> Batch: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Batch]: ...

    def __getitem__(self, index: int | slice) -> Batch | Sequence[Batch]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        start = index * self.chunk
        stop = min(start + self.chunk, self.total)
        bits = np.arange(start, stop, dtype=np.uint64).astype(self.fmt.uint_dtype)
        return Batch((self.fmt.from_bits(bits),))


@dataclass(frozen=True, slots=True, eq=False)
class InputSet:
    """The batches of one input spec for one oracle and format."""

    spec: str
    fmt: Format
    batches: Sequence[Batch]
    oracle: Oracle

    @property
    def streamed(self) -> bool:
        """Batches are made on demand (exhaustive 32-bit); references are not kept."""
        return isinstance(self.batches, StreamedPatterns)

    @property
    def n_inputs(self) -> int:
        if isinstance(self.batches, StreamedPatterns):
            return self.batches.total
        return sum(b.size for b in self.batches)

    def float64(self, batch: Batch) -> list[npt.NDArray[Any]]:
        """The batch as exact float64 (reals) and int64 (indices) for the oracle."""
        with np.errstate(invalid="ignore"):  # NaN payloads convert to NaN, as they should
            return [
                a.astype(np.float64) if arg.kind == "real" else a
                for arg, a in zip(self.oracle.args, batch.arrays, strict=True)
            ]

    def describer(self, batch: Batch) -> Callable[[int], tuple[tuple[str, ...], tuple[str, ...], int | None, int | None]]:
        """Map a flat output index of ``batch`` to its inputs' bits and values."""
        fmt, oracle = self.fmt, self.oracle
        reals = [(arg, a) for arg, a in zip(oracle.args, batch.arrays, strict=True)]

        def bits_of(arr: npt.NDArray[Any], i: int) -> tuple[str, str]:
            v = arr.ravel()[i]
            if arr.dtype.kind in "iu":
                return (str(int(v)), str(int(v)))
            return (fmt.hex_of_bits(int(arr.view(fmt.uint_dtype).ravel()[i])), repr(float(v)))

        def describe(i: int) -> tuple[tuple[str, ...], tuple[str, ...], int | None, int | None]:
            if oracle.kind == "elementwise":
                pairs = [bits_of(a, i) for _, a in reals]
                return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs), None, None
            width = batch.arrays[0].shape[1]
            if oracle.kind == "rowwise":
                row, col = divmod(i, width)
                pairs = [bits_of(a, i) for arg, a in reals if arg.kind == "real"]
                return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs), row, col
            row = i
            shown = min(width, 8)
            pairs = [bits_of(batch.arrays[0], row * width + j) for j in range(shown)]
            extra = [bits_of(a, row) for arg, a in reals if arg.kind == "index"]
            more = ["..."] if width > shown else []
            return (
                tuple([p[0] for p in pairs] + more + [p[0] for p in extra]),
                tuple([p[1] for p in pairs] + more + [p[1] for p in extra]),
                row,
                None,
            )

        return describe


def _int(text: str, what: str, spec: str, least: int = 0) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"input spec {spec!r}: {what} must be an integer, got {text!r}") from None
    if value < least:
        # N = 0 would make a cell that judges nothing and passes
        raise UsageError(f"input spec {spec!r}: {what} must be at least {least}" if least else
                         f"input spec {spec!r}: {what} must not be negative")
    return value


def _float(text: str, what: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"input spec {spec!r}: {what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise UsageError(f"input spec {spec!r}: {what} must be finite")
    return value


def parse_inputs(text: str) -> InputSpec:
    """Parse an input spec; a malformed one is a :class:`UsageError` showing the grammar."""
    spec = text.strip()
    kind, _, rest = spec.partition(":")
    parts = rest.split(":") if rest else []
    if kind in ("exhaustive", "special"):
        if parts:
            raise UsageError(f"input spec {spec!r}: {kind} takes no arguments")
        return InputSpec(kind, kind)
    if kind == "random":
        if len(parts) not in (1, 2):
            raise UsageError(f"input spec {spec!r}: expected random:N[:SEED]")
        n = _int(parts[0], "N", spec, least=1)
        seed = _int(parts[1], "SEED", spec) if len(parts) == 2 else DEFAULT_SEED
        return InputSpec(kind, f"random:{n}:{seed}", n=n, seed=seed)
    if kind in ("normal", "uniform"):
        if len(parts) not in (3, 4):
            names = "MEAN:STD" if kind == "normal" else "LO:HI"
            raise UsageError(f"input spec {spec!r}: expected {kind}:{names}:N[:SEED]")
        a = _float(parts[0], "MEAN" if kind == "normal" else "LO", spec)
        b = _float(parts[1], "STD" if kind == "normal" else "HI", spec)
        if kind == "normal" and b < 0:
            raise UsageError(f"input spec {spec!r}: STD must not be negative")
        if kind == "uniform" and not a < b:
            raise UsageError(f"input spec {spec!r}: LO must be below HI")
        n = _int(parts[2], "N", spec, least=1)
        seed = _int(parts[3], "SEED", spec) if len(parts) == 4 else DEFAULT_SEED
        return InputSpec(kind, f"{kind}:{parts[0]}:{parts[1]}:{n}:{seed}", n=n, seed=seed, a=a, b=b)
    if kind in ("npy", "npz"):
        if not rest:
            raise UsageError(f"input spec {spec!r}: expected {kind}:PATH")
        return InputSpec(kind, f"{kind}:{rest}", path=rest)
    raise UsageError(f"unknown input spec {spec!r}; expected one of: {_USAGE}")


# -- value sources ------------------------------------------------------------------------


def _finite_patterns(fmt: Format, n: int, rng: np.random.Generator) -> npt.NDArray[Any]:
    """n values uniform over the bit patterns of finite values."""
    exp_mask = ((1 << fmt.exponent_bits) - 1) << (fmt.precision - 1)
    out = np.empty(0, dtype=fmt.uint_dtype)
    while out.size < n:
        draw = rng.integers(0, 1 << fmt.bits, size=max(2 * (n - out.size), 16), dtype=np.uint64)
        keep = draw[(draw & exp_mask) != exp_mask].astype(fmt.uint_dtype)
        out = np.concatenate([out, keep])
    return fmt.from_bits(out[:n])


def _distribution(spec: InputSpec, fmt: Format, n: int, rng: np.random.Generator) -> npt.NDArray[Any]:
    if spec.kind == "random":
        return _finite_patterns(fmt, n, rng)
    if spec.kind == "normal":
        values = rng.normal(spec.a, spec.b, size=n)
    else:
        values = rng.uniform(spec.a, spec.b, size=n)
    # round once, directly, into the format (never through float32 for bfloat16)
    return round_float64(values, fmt).astype(fmt.dtype)


def _neighbours(fmt: Format, values: Sequence[float], radius: int = 2) -> list[float]:
    """Each value rounded into ``fmt`` and its ``radius`` bit neighbours on each side."""
    base = round_float64(np.array([v for v in values if math.isfinite(v)], dtype=np.float64), fmt)
    base = base[np.isfinite(base)].astype(fmt.dtype)
    out = [base]
    up = down = base
    for _ in range(radius):
        up, down = fmt.next_up(up), fmt.next_down(down)
        out += [up, down]
    return np.concatenate(out).astype(np.float64).tolist() if out else []


def _format_specials(fmt: Format) -> list[float]:
    sub_max = fmt.smallest_normal - fmt.smallest_subnormal
    base = [0.0, math.inf, math.nan, fmt.smallest_subnormal, sub_max, fmt.smallest_normal, fmt.largest, 1.0]
    return [s * v for v in base for s in (1.0, -1.0)]


def _thresholds(fmt: Format) -> list[float]:
    """Inputs where ML functions change behaviour in *some* format: overflow and underflow
    of exp, subnormal results, where 1 + e**x rounds to 1, and the branch points that
    frameworks use (softplus' 20, float16/float32 exp overflow inside float32 kernels)."""
    eps = math.ldexp(1.0, 1 - fmt.precision)
    ln2 = math.log(2.0)
    # the overflow threshold and half the smallest subnormal are not float64 numbers when
    # fmt is float64 itself (inf and 0), so their logs are taken in log space
    log_overflow = math.log(2.0 - math.ldexp(1.0, -fmt.precision)) + fmt.emax * ln2
    points = {
        math.log(fmt.largest), log_overflow, math.log(fmt.smallest_normal),
        math.log(fmt.smallest_subnormal), math.log(fmt.smallest_subnormal) - ln2, math.log(eps),
        math.log(eps / 2), 20.0, 15.0, 11.0898, 88.7228, 709.78, 0.5, 2.0,
        math.log(65504.0), math.log(3.4028234663852886e38), -math.log(2.0),
    }
    return sorted({s * p for p in points for s in (1.0, -1.0)})


def _as_format(values: Sequence[float], fmt: Format) -> npt.NDArray[Any]:
    """Round values into the format and drop duplicates (keeping order)."""
    arr = round_float64(np.asarray(values, dtype=np.float64), fmt).astype(fmt.dtype)
    bits = arr.view(fmt.uint_dtype)
    _, first = np.unique(bits, return_index=True)
    return arr[np.sort(first)]


def _probabilities(fmt: Format) -> list[float]:
    """p at and next to 0 and 1, at the usual clip constants, and just outside [0, 1]."""
    eps = math.ldexp(1.0, -fmt.precision)
    core = [0.0, 1.0, 0.5, 1e-7, 1 - 1e-7, 1e-12, 1 - 1e-12, 1e-3, 0.999, eps, 1 - eps,
            fmt.smallest_subnormal, fmt.smallest_normal, 0.1, 0.9]
    inside = [v for v in _neighbours(fmt, core, radius=1) if 0.0 <= v <= 1.0]
    return [*inside, -0.0, -fmt.smallest_subnormal, 1 + 2 * eps, math.inf, math.nan]


def _label_values(arg_name: str) -> list[float]:
    return [0.0, 1.0, 0.5] if arg_name == "y" else [0.0]


def _elementwise(spec: InputSpec, oracle: Oracle, fmt: Format, rng: np.random.Generator) -> Batch:
    first_is_p = oracle.args[0].name == "p"
    if spec.kind == "exhaustive":
        first = fmt.from_bits(fmt.all_bit_patterns())
    elif spec.kind == "special":
        values = _probabilities(fmt) if first_is_p else (
            _format_specials(fmt) + _neighbours(fmt, _thresholds(fmt)) + [math.nan]
        )
        first = _as_format(values, fmt)
    elif first_is_p and spec.kind == "random":
        # uniform over the bit patterns of [0, 1], half of them reflected to 1 - p so that
        # both ends of the interval (where log-losses break) are equally dense
        raw = np.abs(_finite_patterns(fmt, 4 * spec.n + 16, rng).astype(np.float64))
        raw = raw[raw <= 1.0][: spec.n]
        flip = rng.random(raw.size) < 0.5
        first = round_float64(np.where(flip, 1.0 - raw, raw), fmt).astype(fmt.dtype)
    else:
        first = _distribution(spec, fmt, spec.n, rng)
    if len(oracle.args) == 1:
        return Batch((first,))
    # second argument: labels. Exhaustive and special inputs pair every value with each
    # label; random inputs draw labels in {0, 1} and in [0, 1].
    labels = _label_values(oracle.args[1].name)
    if spec.kind in ("exhaustive", "special"):
        xs = np.tile(first, len(labels))
        ys = np.repeat(np.asarray(labels), first.size)
    else:
        xs = first
        hard = rng.integers(0, 2, size=first.size).astype(np.float64)
        soft = rng.random(first.size)
        ys = np.where(rng.random(first.size) < 0.75, hard, soft)
    return Batch((xs, round_float64(ys, fmt).astype(fmt.dtype)))


def _special_rows(fmt: Format, rng: np.random.Generator) -> list[npt.NDArray[np.float64]]:
    """Crafted rows, grouped by width (one 2-D array per width)."""
    big = fmt.largest
    inf = math.inf
    w4 = [
        [0, 0, 0, 0], [1, 1, 1, 1], [-1e4, -1e4, -1e4, -1e4],   # all equal
        [0, -1, -2, -3], [100, 0, -100, 50],                    # spread
        [30, 0, 0, 0], [90, 0, 0, 0], [12, 0, 0, 0],            # one dominant logit
        [-inf, 0, 1, 2], [-inf, -inf, 0, -inf],                 # masked entries
        [-inf, -inf, -inf, -inf],                               # fully masked
        [inf, 0, 1, 2], [inf, inf, 0, 0], [inf, -inf, 0, 1],    # +inf entries
        [1e7, 1e7 + 1, 1e7 + 2, 1e7 - 1],                       # large offset, small differences
        [-1e7, -1e7 + 1, -1e7 + 2, -1e7 - 1],
        [big, big, 0, -big], [-big, -big, -big, -big],
        [fmt.smallest_subnormal, 0, -fmt.smallest_subnormal, 0],
        [-math.log(2), -math.log(2), -30, -30],                  # logsumexp near 0
        [11.0, 11.0, 11.0, 11.0], [88.0, 88.0, 1.0, 0.0], [1e4, 1e4, 1e4, -1e4],
    ]
    rows = [np.array(w4, dtype=np.float64)]
    rows.append(np.array([[0.0], [1.0], [-inf], [inf], [big], [-big], [1e7]], dtype=np.float64))
    rows.append(np.array([[0.0, 0.0], [1.0, 0.0], [-math.log(2), -math.log(2)], [30.0, 0.0], [-inf, 5.0]]))
    for width, nrows, scale in ((3, 6, 10.0), (16, 8, 30.0), (1000, 2, 10.0), (65537, 1, 10.0)):
        rows.append(rng.normal(0.0, scale, size=(nrows, width)))
    return rows


def _rows(spec: InputSpec, oracle: Oracle, fmt: Format, rng: np.random.Generator) -> list[Batch]:
    exact: npt.NDArray[Any] | None = None
    if spec.kind == "exhaustive":
        # the rows are built in the format itself: a float64 round trip quiets signalling
        # NaNs (bfloat16 0x7f81 would come back as 0x7fc1) and warns on the cast
        patterns = fmt.from_bits(fmt.all_bit_patterns())
        exact = np.stack([patterns, np.zeros_like(patterns)], axis=1)
        with np.errstate(invalid="ignore"):
            mats = [exact.astype(np.float64)]
    elif spec.kind == "special":
        mats = _special_rows(fmt, rng)
    else:
        nrows = max(1, spec.n // ROW_WIDTH)
        mats = [_distribution(spec, fmt, nrows * ROW_WIDTH, rng).astype(np.float64).reshape(nrows, ROW_WIDTH)]
    batches = []
    for m in mats:
        x = exact if exact is not None else round_float64(m, fmt).astype(fmt.dtype)
        arrays: list[npt.NDArray[Any]] = []
        for arg in oracle.args:
            if arg.kind == "index":
                arrays.append(_targets(m, rng))
            elif not arrays:
                arrays.append(x)
            else:  # a second real row argument gets its own draw of the same shape
                arrays.append(round_float64(rng.normal(0.0, 1.0, size=m.shape), fmt).astype(fmt.dtype))
        batches.append(Batch(tuple(arrays)))
    return batches


def _targets(m: npt.NDArray[np.float64], rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Class indices: random, but the first rows hit the hard cases: the arg-max entry, the
    arg-min entry and (where present) a masked -inf entry."""
    rows, width = m.shape
    t: npt.NDArray[np.int64] = np.asarray(rng.integers(0, width, size=rows), dtype=np.int64)
    with np.errstate(invalid="ignore"):
        for r in range(min(rows, 64)):
            finite = np.where(np.isnan(m[r]), -np.inf, m[r])
            choice = r % 3
            if choice == 0:
                t[r] = int(np.argmax(finite))
            elif choice == 1:
                t[r] = int(np.argmin(np.where(np.isnan(m[r]), np.inf, m[r])))
            else:
                masked = np.flatnonzero(np.isneginf(m[r]))
                if masked.size:
                    t[r] = int(masked[0])
    return t


def _load_user(spec: InputSpec, oracle: Oracle, fmt: Format) -> InputSet:
    path = Path(spec.path)
    if not path.is_file():
        raise UsageError(f"input file {spec.path!r} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UsageError(f"cannot read {spec.path!r} as {spec.kind}: {exc}") from None
    names = [a.name for a in oracle.args]
    if spec.kind == "npy":
        if len(names) != 1:
            raise UsageError(
                f"{oracle.name} takes {len(names)} arguments ({', '.join(names)}): use npz:PATH with arrays named so"
            )
        raw = {names[0]: np.asarray(loaded)}
    else:
        try:
            raw = {k: np.asarray(loaded[k]) for k in loaded.files}
        finally:
            loaded.close()  # an NpzFile keeps its file open until closed
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
            arrays.append(arr.astype(np.int64))
        elif arr.dtype == fmt.dtype:
            arrays.append(arr)
        elif fmt.name == "bfloat16" and arr.dtype.kind == "V" and arr.dtype.itemsize == 2:
            # np.save writes ml_dtypes' bfloat16 as raw 2-byte records (|V2) and np.load
            # gives them back so; they are the bfloat16 bits
            arrays.append(arr.view(fmt.dtype))
        elif arr.dtype.kind == "f" or arr.dtype == np.dtype(_bf16()):
            arrays.append(fmt.from_float64(arr.astype(np.float64), what=f"{spec.path}:{arg.name}"))
        else:
            raise UsageError(
                f"{spec.path!r}: {arg.name} has dtype {arr.dtype}; expected {fmt.name} or float values exactly"
                f" representable in {fmt.name}"
            )
    return InputSet(spec.text, fmt, (Batch(tuple(arrays)),), oracle)


def _bf16() -> Any:
    import ml_dtypes

    return ml_dtypes.bfloat16

