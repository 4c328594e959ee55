"""The ULP histogram's fine bins, found from a float64's bits with a table.

A bin is ``(2**((k-1)/16), 2**(k/16)]`` with correctly rounded edges
(:data:`~harness.judgement.definitions.BINS_PER_OCTAVE` = 16). The fused judge
(:mod:`.tally`) bins millions of errors per second this way: the top 16 mantissa bits pick
a slot, and only the slot holding an edge compares the full mantissa.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from mpmath import mp, mpf

from harness.judgement.definitions import BINS_PER_OCTAVE

__all__ = ["EDGES", "KEY_OFFSET", "TABLE", "add_keys", "raw_keys"]

_BPO = BINS_PER_OCTAVE
KEY_OFFSET = 1023 * _BPO  # a raw key (biased exponent * 16 + bin) minus this is the fine-bin key


def _edge_tables() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(slot table, edge mantissas). ``table[i]`` is the fine bin within an octave of every
    w whose top 16 mantissa bits are i, or 16 + j when slot i holds the edge 2**(j/16)
    (then the bin is j or j + 1). ``edges[j]`` is the 52-bit mantissa of the correctly
    rounded 2**(j/16)."""
    edges = np.zeros(_BPO + 1, dtype=np.int64)
    with mp.workprec(200):
        for j in range(1, _BPO):
            v = float(mp.power(2, mpf(j) / _BPO))  # correctly rounded: one rounding from 200 bits
            edges[j] = np.array([v]).view(np.int64)[0] & ((1 << 52) - 1)
    slots = np.arange(1 << 16, dtype=np.int64)
    # bin of slot i: 1 + the number of edges below the slot's first value
    starts = slots << 36
    table = np.ones(1 << 16, dtype=np.int64)
    for j in range(1, _BPO):
        table += starts > edges[j]
        holder = int(edges[j] >> 36)
        table[holder] = _BPO + j  # marked: resolved element by element
    return table, edges


_TABLE64, EDGES = _edge_tables()
TABLE = _TABLE64.astype(np.int8)  # 64 KiB: stays in cache while blocks stream past


def raw_keys(bits: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``biased exponent * 16 + bin`` of the float64s whose bits are ``bits``: the fine bin
    (2**((k-1)/16), 2**(k/16)] with correctly rounded edges, found from ``bits - 1`` so an
    exact power of two lands in the bin it closes (0 gives key 0, nothing else does)."""
    w = bits - 1
    slot = w >> 36
    slot &= 0xFFFF
    sub = np.take(TABLE, slot)
    if sub.size and int(sub.max()) > _BPO:  # one pass over int8s; the marked slots are rare
        i = np.flatnonzero(sub > _BPO)
        j = sub[i].astype(np.int64) - _BPO
        sub[i] = j + ((w[i] & ((1 << 52) - 1)) >= EDGES[j])
    key = w >> 52
    key <<= 4
    key += sub
    return key


def add_keys(counts: npt.NDArray[np.int64], keys: npt.NDArray[np.int64], lowest: int, *, offset: int = 0) -> None:
    """counts[max(key - offset, lowest) - lowest] += 1 for every key: a bincount over just
    the keys' span, the keys below ``lowest`` folded into it. With ``offset`` KEY_OFFSET,
    :func:`raw_keys` go in as fine-bin keys without the passes that shift and clamp them."""
    if not keys.size:
        return
    lo = int(keys.min())
    got = np.bincount(keys - lo)
    start = lo - offset - lowest  # where got[0] goes
    if start < 0:
        counts[0] += int(got[:-start].sum())
        got = got[-start:]
        start = 0
    counts[start : start + got.size] += got
