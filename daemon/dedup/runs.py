"""Runs: sightings (whole or partial) as columns, and how a batch's reads fold into them.

A *run* is a stretch of one key's reads whose gaps stay under the window. Two ways to
find the runs of a batch, both on key ids from :mod:`~tagsweep.daemon.dedup.keys`:

* :func:`single_runs` — for keys whose reads cannot hold a gap ≥ window, one run per key
  from scatter reductions (``bincount``, ``ufunc.at``), no sort;
* :func:`sorted_runs` — one value sort of packed (key id, arrival) integers, run
  boundaries from array comparisons and ``ufunc.reduceat``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from tagsweep.daemon.dedup.columns import F4, F8, I64, U64, Bool, Index, ReadColumns


@dataclass(slots=True)
class Runs:
    """Sightings (partial or whole) as columns; ``key`` is the registry row of each."""

    key: Index
    first: I64
    last: I64
    count: U64
    peak: F4
    rssi_sum: F8  # sum of rssi * seen_count over reads with a known RSSI
    rssi_weight: F8  # sum of seen_count over those reads
    sid: U64  # sighting id; 0 = not assigned yet

    @classmethod
    def none(cls) -> Runs:
        i, f, u = (
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.float64),
            np.zeros(0, dtype=np.uint64),
        )
        return cls(i.astype(np.intp), i, i, u, f.astype(np.float32), f, f, u)

    def take(self, which: Index | Bool) -> Runs:
        return Runs(
            self.key[which],
            self.first[which],
            self.last[which],
            self.count[which],
            self.peak[which],
            self.rssi_sum[which],
            self.rssi_weight[which],
            self.sid[which],
        )


def single_runs(
    batch: ReadColumns, kid: Index, keys: int, window_us: int
) -> tuple[Runs, Bool | None] | None:
    """One run per key, from scatter reductions (no sort), for keys without a gap.

    A key can only have a gap ≥ window inside the batch if, cutting time into slices
    of at most half a window, some slice between its first and last read holds none
    of its reads. Keys where that may be so are returned as a mask over key ids (or
    None: no such key), for :func:`sorted_runs`; the runs of those keys are left out.
    Returns None when the batch spans too many slices for this to pay.
    """
    n = len(kid)
    shift = max(0, (window_us // 2).bit_length() - 1)  # slice = 2**shift <= window/2
    t0 = int(batch.first.min())
    slices = ((int(batch.first.max()) - t0) >> shift) + 1
    if keys * slices > 4 * n + 65536:
        return None
    count = np.bincount(kid, minlength=keys)
    present = np.flatnonzero(count)
    gappy: Bool | None = None
    if slices > 2:  # (within two adjacent slices, no slice can be missing)
        code = kid * slices
        code += (batch.first - t0) >> shift
        occupied = np.zeros((keys, slices), dtype=bool)
        occupied.ravel()[code] = True
        occ = occupied[present]
        filled = occ.sum(axis=1)
        lo = occ.argmax(axis=1)
        hi = slices - 1 - occ[:, ::-1].argmax(axis=1)
        holes = hi - lo + 1 != filled
        if holes.any():
            gappy = np.zeros(keys, dtype=bool)
            gappy[present[holes]] = True
            present = present[~holes]
    first = np.full(keys, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, kid, batch.first)
    last = np.full(keys, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, kid, batch.first if batch.last is None else batch.last)
    if batch.known is None:
        peak = np.full(keys, -np.inf, dtype=np.float32)
        np.maximum.at(peak, kid, batch.rssi)
    else:
        peak = np.full(keys, np.nan, dtype=np.float32)
        np.fmax.at(peak, kid, batch.rssi)
    if batch.count is None and batch.known is None:
        rcount = count[present].astype(np.uint64)
        rsum = sums_per_id(kid, batch.rssi, keys)[present]
        rweight = rcount.astype(np.float64)
    else:
        counts, weight, values = batch.weights()
        rcount = sums_per_id(kid, counts, keys)[present].astype(np.uint64)
        rsum = sums_per_id(kid, values, keys)[present]
        rweight = sums_per_id(kid, weight, keys)[present]
    runs = Runs(
        key=present,
        first=first[present],
        last=last[present],
        count=rcount,
        peak=peak[present],
        rssi_sum=rsum,
        rssi_weight=rweight,
        sid=np.zeros(len(present), dtype=np.uint64),
    )
    return runs, gappy


def sorted_runs(batch: ReadColumns, kid: Index, keys: int, window_us: int) -> Runs | None:
    """Runs from one value sort of (key id, arrival); None if reads are out of order."""
    n = len(kid)
    idx_bits = max(1, (n - 1).bit_length())
    ids = kid
    present: Index | None = None
    if (keys - 1).bit_length() + idx_bits > 32:
        # Ids of a part of the batch: number just the keys of that part, densely.
        seen = np.zeros(keys, dtype=bool)
        seen[kid] = True
        present = np.flatnonzero(seen)
        rank = np.cumsum(seen, dtype=np.intp)
        ids = np.take(rank, kid) - 1
        id_bits = (len(present) - 1).bit_length()
    else:
        id_bits = (keys - 1).bit_length()
    if id_bits + idx_bits > 64:
        return None
    packed_type = np.uint32 if id_bits + idx_bits <= 32 else np.uint64
    # One value sort of (key id, arrival) packed into one integer: sorting plain
    # values is several times faster than argsort, and arrival breaks ties.
    packed = cast("U64", ids.astype(packed_type))
    packed <<= idx_bits
    packed |= cast("U64", np.arange(n, dtype=packed_type))
    packed.sort()
    order = (packed & ((1 << idx_bits) - 1)).astype(np.intp)
    skey = (packed >> idx_bits).astype(np.intp)
    fs = np.take(batch.first, order)
    start = np.empty(n, dtype=bool)
    start[0] = True
    new_key = start[1:]
    np.not_equal(skey[1:], skey[:-1], out=new_key)
    step = fs[1:] - fs[:-1]
    back = step < 0
    if back.any() and (back & ~new_key).any():
        return None  # some key's reads are out of time order in this batch
    if batch.last is None:
        ls = fs
    else:
        ls = np.take(batch.last, order)
        if n > 1 and not np.all((ls[1:] >= ls[:-1]) | new_key):
            ls = segmented_cummax(ls, start)
    start[1:] |= fs[1:] - ls[:-1] >= window_us
    idx = np.flatnonzero(start)
    rkey = np.take(skey, idx)
    if present is not None:
        rkey = np.take(present, rkey)
    rs = np.take(batch.rssi, order)
    if batch.count is None and batch.known is None:
        rcount = np.diff(idx, append=n).astype(np.uint64)
        rsum = np.add.reduceat(rs, idx, dtype=np.float64)
        rweight = rcount.astype(np.float64)
    else:
        count, weight, values = batch.weights()
        rcount = np.add.reduceat(np.take(count, order), idx)
        rsum = np.add.reduceat(np.take(values, order), idx)
        rweight = np.add.reduceat(np.take(weight, order), idx)
    return Runs(
        key=rkey,
        first=np.take(fs, idx),
        last=np.maximum.reduceat(ls, idx),
        count=rcount,
        peak=np.fmax.reduceat(rs, idx),
        rssi_sum=rsum,
        rssi_weight=rweight,
        sid=np.zeros(len(idx), dtype=np.uint64),
    )


def sums_per_id(ids: Index, values: npt.NDArray[np.number[Any]], keys: int) -> F8:
    """Sum of ``values`` per id (0 … keys-1), in float64."""
    return np.bincount(ids, weights=values, minlength=keys).astype(np.float64, copy=False)


def concat_runs(a: Runs, b: Runs) -> Runs:
    return Runs(
        np.concatenate([a.key, b.key]),
        np.concatenate([a.first, b.first]),
        np.concatenate([a.last, b.last]),
        np.concatenate([a.count, b.count]),
        np.concatenate([a.peak, b.peak]),
        np.concatenate([a.rssi_sum, b.rssi_sum]),
        np.concatenate([a.rssi_weight, b.rssi_weight]),
        np.concatenate([a.sid, b.sid]),
    )


def segmented_cummax(values: I64, new_segment: npt.NDArray[np.bool_]) -> I64:
    """Running maximum that restarts at each segment start."""
    seg = np.cumsum(new_segment) - 1
    lo = int(values.min())
    span = int(values.max()) - lo + 1
    if span * (int(seg[-1]) + 1) < 2**62:
        shifted = seg.astype(np.int64) * span + (values - lo)
        return np.maximum.accumulate(shifted) - seg.astype(np.int64) * span + lo
    out = values.copy()  # a huge time span in one batch: rare, so a plain loop is fine
    starts = [*np.flatnonzero(new_segment).tolist(), len(values)]
    for a, b in itertools.pairwise(starts):
        out[a:b] = np.maximum.accumulate(values[a:b])
    return out
