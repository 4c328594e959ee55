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

What is refused, with a one-line :class:`~oracles.errors.UsageError` naming the value and
what is accepted, before any cell runs:

* **Empty input sets.** A cell that judges nothing would pass: an array with no elements
  (an empty file, zero rows, zero columns) is an error, never a vacuous pass.
* **Sizes.** At most :data:`MAX_INPUTS` (2**24 = 16,777,216) inputs are made and held in
  memory per input set: ``random:N`` and the distributions take N up to that, and a user's
  array may hold that many elements. A cell needs about 90 bytes per input at its peak
  (inputs, outputs, references, verdicts), so the limit keeps one input set near 1.5 GB.
  Only ``exhaustive`` in a 32-bit format is streamed (2**32 inputs in chunks of
  :data:`STREAM_CHUNK`), and it has no such limit.
* **Files** that are not a regular file (a directory, ``/dev/zero``, a FIFO), the wrong
  container (``npz:`` on a ``.npy`` file or ``npy:`` on an ``.npz`` archive: the message
  names the spec to use), arrays of Python objects (never unpickled), and arrays that the
  oracle cannot take. :func:`parse_inputs` reads the file's headers only (a few hundred
  bytes); the values are read and checked when the inputs are made.
* **Class targets** (``target:index`` arguments of ``cross_entropy`` and ``nll_loss``):
  every target must be a class index in ``[0, C)`` for rows of C classes. Anything else,
  -1 and C included, is refused when an ``npz`` file is read, naming the first bad row
  and its value, so neither the oracle nor an implementation ever sees an invalid target.
  There is no ``ignore_index``: drop such rows from the file. The built-in generators only
  ever make targets in ``[0, C)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from harness.plan.userfiles import MAX_INPUTS, check_user_file, load_arrays
from oracles.errors import UsageError
from oracles.formats import Format
from oracles.registry import Oracle
from oracles.rounding import round_float64

__all__ = ["DEFAULT_SEED", "KINDS", "MAX_INPUTS", "Batch", "InputSet", "InputSpec", "parse_inputs"]

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

    def streams(self, fmt: Format) -> bool:
        """Whether this spec's inputs in ``fmt`` come as a stream of chunks (exhaustive
        inputs of a format wider than 16 bits) rather than held in memory."""
        return self.kind == "exhaustive" and fmt.bits > 16

    def generate(self, oracle: Oracle, fmt: Format) -> InputSet:
        """The exact inputs of this spec for ``oracle`` in format ``fmt``. Raises
        :class:`UsageError` for a user's file the oracle cannot take (see the module
        docstring: empty, too large, wrong dtype or shape, targets out of range)."""
        rng = np.random.default_rng(self.seed)
        if self.kind in ("npy", "npz"):
            return InputSet(self.text, fmt, (Batch(tuple(load_arrays(self, oracle, fmt))),), oracle)
        if self.streams(fmt):
            return InputSet(self.text, fmt, StreamedPatterns(fmt, oracle), oracle)
        if oracle.kind == "elementwise":
            batches = [_elementwise(self, oracle, fmt, rng)]
        else:
            batches = _rows(self, oracle, fmt, rng)
        if any(b.size == 0 for b in batches):  # a cell that judges nothing would pass
            raise UsageError(f"input spec {self.text!r} makes no inputs for {oracle.name} in {fmt.name}")
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


def _count(text: str, spec: str) -> int:
    """N of a generated spec: 1 to :data:`MAX_INPUTS`."""
    n = _int(text, "N", spec, least=1)
    if n > MAX_INPUTS:
        raise UsageError(
            f"input spec {spec!r}: N = {n} is over the limit of {MAX_INPUTS} (2**24) inputs held in memory per input"
            f" set; use N <= {MAX_INPUTS} (only exhaustive float32 is streamed, in bounded memory)"
        )
    return n


def _float(text: str, what: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"input spec {spec!r}: {what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise UsageError(f"input spec {spec!r}: {what} must be finite")
    return value


def parse_inputs(text: str, *, check_file: bool = True) -> InputSpec:
    """Parse an input spec into its canonical :class:`InputSpec`.

    A malformed spec is a :class:`UsageError` showing the grammar; so is a count over
    :data:`MAX_INPUTS` and a non-finite distribution parameter. For ``npy:``/``npz:`` the
    file's headers are checked too (unless ``check_file`` is false, for re-reading the
    specs of stored results): a missing path, a directory, something that is not a regular
    file, the other container, an array of objects, no elements or too many are each a
    :class:`UsageError` naming the file and what to give instead."""
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
        n = _count(parts[0], spec)
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
        n = _count(parts[2], spec)
        seed = _int(parts[3], "SEED", spec) if len(parts) == 4 else DEFAULT_SEED
        return InputSpec(kind, f"{kind}:{parts[0]}:{parts[1]}:{n}:{seed}", n=n, seed=seed, a=a, b=b)
    if kind in ("npy", "npz"):
        if not rest:
            raise UsageError(f"input spec {spec!r}: expected {kind}:PATH")
        parsed = InputSpec(kind, f"{kind}:{rest}", path=rest)
        if check_file:
            check_user_file(parsed)
        return parsed
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
