"""Dedup kernel: the raw read flood → sightings, on whole numpy columns.

A *sighting* is a run of reads of one EPC on one reader antenna whose gaps stay under
``window_us``. The gap of a read is its ``first_seen_us`` minus the latest
``last_seen_us`` of the reads before it in the run, so an aggregated LLRP report (one
report covering many inventory rounds) counts as covering its whole time span.

Why a vectorised kernel: a handheld reports thousands of reads per second and a portal
many more; a Python loop over reads would be the slowest part of the gateway. The
kernel hashes the (reader, antenna, EPC) key, sorts once, finds run boundaries with
array comparisons and aggregates with ``ufunc.reduceat``.

Why carry-over: a sighting that is still open when a batch ends (no gap ≥ window
observed yet) must continue in the next batch, or results would depend on how the
stream happened to be cut. Open sightings are kept as *partial* sightings and re-enter
the next batch as if they were one long read, so the result is identical however the
stream is split — provided, as readers do, that each key's reads arrive in time order.
(A read older than its key's open sighting still joins it; it never raises.)

Sightings close when a later read of the key leaves a gap ≥ window, when the reader's
clock has moved on by a window (:meth:`Deduplicator.expire`), or at shutdown
(:meth:`Deduplicator.flush`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from tagsweep.domain import EPC_HEX_MAX, READ_DTYPE, SIGHTING_DTYPE, ReadBatch, SightingBatch

_WORDS: Final = EPC_HEX_MAX // 8  # an S64 EPC viewed as eight little-endian u64 words
_MIX: Final = np.array(
    [
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0xD6E8FEB86659FD93,
        0xFF51AFD7ED558CCD,
        0xC4CEB9FE1A85EC53,
        0x94D049BB133111EB,
        0xBF58476D1CE4E5B9,
    ],
    dtype=np.uint64,
)
_MIX_PORT: Final = np.uint64(0xA0761D6478BD642F)

#: Columns of an open (partial) sighting carried between batches.
OPEN_DTYPE: Final = np.dtype(
    [
        ("sighting_id", "u8"),
        ("key_hash", "u8"),  # _key_hash of (reader, antenna, EPC): the open set is sorted by it
        ("epc", f"S{EPC_HEX_MAX}"),
        ("reader", "u2"),
        ("antenna", "u2"),
        ("first_seen_us", "i8"),
        ("last_seen_us", "i8"),
        ("read_count", "u8"),
        ("peak_rssi", "f4"),
        ("rssi_sum", "f8"),  # sum of rssi * seen_count over reads with a known RSSI
        ("rssi_weight", "f8"),  # sum of seen_count over those reads
    ]
)

I64 = npt.NDArray[np.int64]
Columns = dict[str, npt.NDArray[Any]]
U64 = npt.NDArray[np.uint64]


@dataclass(frozen=True, slots=True)
class DedupResult:
    """What one call produced.

    ``closed`` sightings are final; ``closed_ids`` are their sighting ids (stable from
    the moment the sighting opened). ``opened_ids`` are ids of sightings that started in
    this call and may still be open (they are also in ``closed`` when they closed
    within the same call).
    """

    closed: SightingBatch
    closed_ids: U64
    opened_ids: U64

    @classmethod
    def empty(cls) -> DedupResult:
        none = np.zeros(0, dtype=np.uint64)
        return cls(np.zeros(0, dtype=SIGHTING_DTYPE), none, none)


def _key_hash(words: list[U64], port: npt.NDArray[np.uint32]) -> U64:
    """64-bit hash of the (reader, antenna, EPC) key; collisions are detected, not assumed away.

    All-zero words contribute nothing, so the hash of a key does not depend on how many
    trailing zero words :func:`_epc_words` kept for the array it came from.
    """
    with np.errstate(over="ignore"):
        h = port.astype(np.uint64) * _MIX_PORT
        for k, column in enumerate(words):
            h ^= column * _MIX[k]
        h ^= h >> np.uint64(32)
        h *= _MIX[0]
        h ^= h >> np.uint64(29)
    return h


def _epc_words(epc: npt.NDArray[np.bytes_]) -> list[U64]:
    """The EPC column as u64 word columns, without trailing all-zero words (short EPCs).

    Separate columns (strided views, no copies), because gathering and comparing a 2-D
    array row-wise is an order of magnitude slower in numpy than doing it per column.
    """
    words = np.ascontiguousarray(epc).view(np.uint64).reshape(len(epc), _WORDS)
    # EPCs are non-NUL text padded with NULs: once a word is zero in every row, so is
    # every later word. 96-bit EPCs (24 hex digits) fill exactly three words.
    used = min(3, _WORDS)
    if words[:, used].any():
        while used < _WORDS and words[:, used].any():
            used += 1
    else:
        while used > 1 and not words[:, used - 1].any():
            used -= 1
    return [words[:, k] for k in range(used)]


def _same_as_previous(
    columns: list[npt.NDArray[Any]], order: npt.NDArray[np.intp]
) -> npt.NDArray[np.bool_]:
    """For rows in ``order``: does each row have the same key as the row before it?"""
    same: npt.NDArray[np.bool_] | None = None
    for column in columns:
        c = column[order]
        eq = c[1:] == c[:-1]
        same = eq if same is None else same & eq
    assert same is not None
    return same


class Deduplicator:
    """Stateful dedup of a read stream into sightings (one instance per gateway)."""

    def __init__(self, window_us: int, *, next_sighting_id: int = 1) -> None:
        if window_us <= 0:
            raise ValueError("the dedup window must be positive")
        if next_sighting_id < 1:
            raise ValueError("sighting ids start at 1 (0 marks a read not yet in a sighting)")
        self.window_us = int(window_us)
        self._next_id = int(next_sighting_id)
        self._open = np.zeros(0, dtype=OPEN_DTYPE)
        #: batches that needed the exact (slower) sort: hash collision or out-of-order reads
        self.exact_sorts = 0

    # -- state ---------------------------------------------------------------------------
    @property
    def open_count(self) -> int:
        return len(self._open)

    @property
    def next_sighting_id(self) -> int:
        return self._next_id

    def open_sightings(self) -> tuple[SightingBatch, U64]:
        """A snapshot of the sightings still open, as final-format rows (for the store)."""
        return _finish(self._open), self._open["sighting_id"].copy()

    # -- processing ----------------------------------------------------------------------
    def process(self, reads: ReadBatch) -> DedupResult:
        """Fold a batch of reads in; return the sightings that closed because of it."""
        if reads.dtype != READ_DTYPE:
            raise TypeError(f"expected a READ_DTYPE batch, got {reads.dtype}")
        if len(reads) == 0:
            return DedupResult.empty()
        fast = self._runs_then_join(reads)
        if fast is not None:
            closed, still_open, opened_ids = fast
        else:
            # General path: carried sightings re-enter the sort as partial sightings.
            self.exact_sorts += 1
            merged = self._merge(_columns(self._open, reads))
            opened_ids = self._assign_ids(merged, merged["sighting_id"] == 0)
            # The last run of each key stays open; every earlier one is closed for good.
            last_of_key = np.ones(len(merged), dtype=bool)
            last_of_key[:-1] = ~_same_key(merged[:-1], merged[1:])
            closed, still_open = merged[~last_of_key], merged[last_of_key]
            still_open["key_hash"] = _key_hash(_epc_words(still_open["epc"]), _port(still_open))
        self._open = still_open[np.argsort(still_open["key_hash"], kind="stable")]
        return DedupResult(_finish(closed), closed["sighting_id"].copy(), opened_ids)

    def _assign_ids(self, runs: npt.NDArray[np.void], fresh: npt.NDArray[np.bool_]) -> U64:
        n_fresh = int(fresh.sum())
        ids = np.arange(self._next_id, self._next_id + n_fresh, dtype=np.uint64)
        runs["sighting_id"][fresh] = ids
        self._next_id += n_fresh
        return ids

    def expire(self, cutoff_us: int | npt.NDArray[np.int64]) -> DedupResult:
        """Close sightings whose last read is at least a window before ``cutoff_us``.

        ``cutoff_us`` is the reader's current time: a scalar, or an array indexed by
        reader index. Any later read of such a key would start a new sighting anyway, so
        closing now changes nothing but latency.
        """
        if not len(self._open):
            return DedupResult.empty()
        if np.ndim(cutoff_us):
            cutoff = np.asarray(cutoff_us, dtype=np.int64)[self._open["reader"]]
        else:
            cutoff = np.full(len(self._open), int(cutoff_us), dtype=np.int64)
        done = cutoff - self._open["last_seen_us"] >= self.window_us
        return self._close(done)

    def flush(self) -> DedupResult:
        """Close every open sighting (shutdown, or a count session's end)."""
        return self._close(np.ones(len(self._open), dtype=bool))

    def _close(self, done: npt.NDArray[np.bool_]) -> DedupResult:
        closed = self._open[done]
        self._open = self._open[~done]
        return DedupResult(
            _finish(closed), closed["sighting_id"].copy(), np.zeros(0, dtype=np.uint64)
        )

    # -- the kernel ----------------------------------------------------------------------
    def _runs_then_join(
        self, reads: ReadBatch
    ) -> tuple[npt.NDArray[np.void], npt.NDArray[np.void], U64] | None:
        """Fast path: runs of the batch alone, then carried sightings joined per key.

        Exact when every key's reads are in time order and no carried sighting ends
        after its key's first read in the batch (readers report in time order, so this
        is the normal case); returns ``None`` otherwise, for the general path. Returns
        (closed, still open, ids of sightings opened).
        """
        cols = _read_columns(reads)
        words = _epc_words(cols["epc"])
        found = _fast_order(cols, words)
        if found is None:
            return None
        order, same_key, key_hash = found
        runs, src = _aggregate(cols, order, same_key, self.window_us)
        runs["key_hash"] = key_hash[src]
        last_of_key = np.ones(len(runs), dtype=bool)
        last_of_key[:-1] = runs["key_hash"][1:] != runs["key_hash"][:-1]
        carry = self._open
        joined = np.zeros(len(runs), dtype=bool)
        leftover = carry
        carry_closed = carry[:0]
        if len(carry):
            # First run of each key in the batch, matched to that key's open sighting
            # (the open set is kept sorted by key hash).
            first_of_key = np.ones(len(runs), dtype=bool)
            first_of_key[1:] = last_of_key[:-1]
            heads = np.flatnonzero(first_of_key)
            carry_keys = carry["key_hash"]
            pos = np.searchsorted(carry_keys, runs["key_hash"][heads])
            pos = np.minimum(pos, len(carry) - 1)
            hit = carry_keys[pos] == runs["key_hash"][heads]
            if len(carry_keys) > 1 and np.any(carry_keys[1:] == carry_keys[:-1]):
                return None  # two open keys share a hash: let the exact path decide
            heads, pos = heads[hit], pos[hit]
            c = carry[pos]
            if not np.all(_same_key(c, runs[heads])):
                return None  # a hash collision between a carried key and a new one
            if np.any(c["last_seen_us"] > runs["first_seen_us"][heads]):
                return None  # overlapping reports across the batch boundary
            joins = runs["first_seen_us"][heads] - c["last_seen_us"] < self.window_us
            jh, jc = heads[joins], c[joins]
            runs["sighting_id"][jh] = jc["sighting_id"]
            runs["first_seen_us"][jh] = jc["first_seen_us"]
            runs["last_seen_us"][jh] = np.maximum(runs["last_seen_us"][jh], jc["last_seen_us"])
            runs["read_count"][jh] += jc["read_count"]
            runs["peak_rssi"][jh] = np.fmax(runs["peak_rssi"][jh], jc["peak_rssi"])
            runs["rssi_sum"][jh] += jc["rssi_sum"]
            runs["rssi_weight"][jh] += jc["rssi_weight"]
            joined[jh] = True
            touched = np.zeros(len(carry), dtype=bool)
            touched[pos] = True
            leftover = carry[~touched]  # no reads this batch: still open
            carry_closed = c[~joins]  # a gap before this batch's first read: closed
        opened_ids = self._assign_ids(runs, ~joined)
        closed = np.concatenate([carry_closed, runs[~last_of_key]])
        still_open = np.concatenate([leftover, runs[last_of_key]])
        return closed, still_open, opened_ids

    def _merge(self, cols: Columns) -> npt.NDArray[np.void]:
        """General path: sort carried and new rows together by exact key and time."""
        words = _epc_words(cols["epc"])
        order = _exact_order(cols, words)
        same_key = _same_as_previous([cols["port"], *words], order)
        return _aggregate(cols, order, same_key, self.window_us)[0]


def _port(rows: npt.NDArray[np.void]) -> npt.NDArray[np.uint32]:
    port: npt.NDArray[np.uint32] = (rows["reader"].astype(np.uint32) << 16) | rows["antenna"]
    return port


def _aggregate(
    cols: Columns, order: npt.NDArray[np.intp], same_key: npt.NDArray[np.bool_], window_us: int
) -> tuple[npt.NDArray[np.void], npt.NDArray[np.intp]]:
    """Cut rows (sorted by key, then time) into runs at key changes and gaps ≥ window.

    Optional columns may be absent: no ``read_count`` means every row counts once, no
    ``rssi_sum``/``rssi_weight`` means every RSSI is known and counts once. Returns the
    runs and the row each run starts with.
    """
    n = len(order)
    start = np.ones(n, dtype=bool)
    start[1:] = ~same_key
    first = cols["_first_sorted"] if "_first_sorted" in cols else cols["first_seen_us"][order]
    last = first if cols["last_seen_us"] is cols["first_seen_us"] else cols["last_seen_us"][order]
    # Latest last_seen of the run so far: plain `last` when it never decreases.
    if last is not first and n > 1 and not np.all((last[1:] >= last[:-1]) | start[1:]):
        last_so_far = _segmented_cummax(last, start)
    else:
        last_so_far = last
    start[1:] |= (first[1:] - last_so_far[:-1]) >= window_us
    idx = np.flatnonzero(start)
    src = order[idx]
    out = np.empty(len(idx), dtype=OPEN_DTYPE)
    out["key_hash"] = 0
    sid = cols.get("sighting_id")
    out["sighting_id"] = 0 if sid is None else sid[src]
    out["epc"] = cols["epc"][src]
    port = cols["port"][src]
    out["reader"] = port >> 16
    out["antenna"] = port & 0xFFFF
    out["first_seen_us"] = first[idx]  # rows of a run are in time order
    if last is first:
        ends = np.empty_like(idx)
        ends[:-1] = idx[1:] - 1
        ends[-1] = n - 1
        out["last_seen_us"] = first[ends]
    else:
        out["last_seen_us"] = np.maximum.reduceat(last, idx)
    lengths = np.diff(idx, append=n)
    count = cols.get("read_count")
    out["read_count"] = lengths if count is None else np.add.reduceat(count[order], idx)
    rssi = cols["peak_rssi"][order]
    out["peak_rssi"] = np.fmax.reduceat(rssi, idx)
    if "rssi_sum" in cols:
        out["rssi_sum"] = np.add.reduceat(cols["rssi_sum"][order], idx)
        out["rssi_weight"] = np.add.reduceat(cols["rssi_weight"][order], idx)
    else:
        out["rssi_sum"] = np.add.reduceat(rssi, idx, dtype=np.float64)
        out["rssi_weight"] = lengths
    return out, src


def _fast_order(
    cols: Columns, words: list[U64]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_], U64] | None:
    """Order by (key hash, arrival) with one value sort of packed u64 keys.

    The row index rides in the low bits, so sorting plain values (several times faster
    than argsort) yields the permutation, and arrival order within a key. Valid when
    each key's rows arrive in time order and no two keys share the truncated hash; both
    are checked here, and ``None`` asks for the exact sort instead. Returns the order and
    whether each row has the same key as the row before it, and the rows' key hashes.
    """
    n = len(cols["port"])
    idx_bits = max(1, (n - 1).bit_length())
    if idx_bits > 40:
        return None
    h = _key_hash(words, cols["port"])
    packed = (h >> np.uint64(idx_bits)) << np.uint64(idx_bits)
    packed |= np.arange(n, dtype=np.uint64)
    packed.sort()
    order = (packed & np.uint64((1 << idx_bits) - 1)).astype(np.intp)
    trunc = packed >> np.uint64(idx_bits)
    # Exact key boundaries in this order; a key split into several segments shows up as
    # two adjacent segments with the same truncated hash but different keys.
    same_key = _same_as_previous([cols["port"], *words], order)
    if np.any(~same_key & (trunc[1:] == trunc[:-1])):
        return None
    fs = cols["first_seen_us"][order]
    if np.any(same_key & (fs[1:] < fs[:-1])):
        return None  # some key's reads are out of time order in this batch
    cols["_first_sorted"] = fs  # the aggregation needs exactly this gather
    return order, same_key, h


def _read_columns(reads: ReadBatch) -> Columns:
    """The batch's reads as columns, leaving out what is implied in the common case."""
    first = np.ascontiguousarray(reads["first_seen_us"])
    last = reads["last_seen_us"]
    rssi = np.ascontiguousarray(reads["rssi"])
    seen = reads["seen_count"]
    cols: Columns = {
        "epc": np.ascontiguousarray(reads["epc"]),
        "port": _port(reads),
        "first_seen_us": first,
        "last_seen_us": first if np.array_equal(first, last) else np.maximum(first, last),
        "peak_rssi": rssi,
    }
    ones = bool(np.all(seen <= 1))
    if not ones:
        cols["read_count"] = np.maximum(seen, 1).astype(np.uint64)
    known = ~np.isnan(rssi)
    if not ones or not known.all():
        count = cols.get("read_count", np.ones(len(reads), dtype=np.uint64))
        cols["rssi_sum"] = np.where(known, rssi.astype(np.float64) * count, 0.0)
        cols["rssi_weight"] = np.where(known, count.astype(np.float64), 0.0)
    return cols


def _columns(carry: npt.NDArray[np.void], reads: ReadBatch) -> Columns:
    """Carried sightings followed by the batch's reads, as one-read partial sightings."""
    count = np.maximum(reads["seen_count"], 1).astype(np.uint64)
    rssi = reads["rssi"]
    known = ~np.isnan(rssi)
    first = reads["first_seen_us"]
    new: Columns = {
        "sighting_id": np.zeros(len(reads), dtype=np.uint64),
        "epc": reads["epc"],
        "port": _port(reads),
        "first_seen_us": first,
        "last_seen_us": np.maximum(first, reads["last_seen_us"]),
        "read_count": count,
        "peak_rssi": rssi,
        "rssi_sum": np.where(known, rssi.astype(np.float64) * count, 0.0),
        "rssi_weight": np.where(known, count.astype(np.float64), 0.0),
    }
    if not len(carry):
        return {k: np.ascontiguousarray(v) for k, v in new.items()}
    old: Columns = {k: carry[k] for k in new if k != "port"}
    old["port"] = _port(carry)
    return {k: np.concatenate([old[k], v]) for k, v in new.items()}


def _same_key(a: npt.NDArray[np.void], b: npt.NDArray[np.void]) -> npt.NDArray[np.bool_]:
    same: npt.NDArray[np.bool_] = (
        (a["reader"] == b["reader"]) & (a["antenna"] == b["antenna"]) & (a["epc"] == b["epc"])
    )
    return same


def _exact_order(cols: Columns, words: list[U64]) -> npt.NDArray[np.intp]:
    """Exact lexicographic order by (reader, antenna, EPC words, first_seen, arrival)."""
    keys: list[npt.NDArray[Any]] = [np.arange(len(cols["port"])), cols["first_seen_us"]]
    keys += words[::-1]
    keys.append(cols["port"])
    return np.lexsort(keys).astype(np.intp)


def _segmented_cummax(values: I64, new_segment: npt.NDArray[np.bool_]) -> I64:
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


def _finish(rows: npt.NDArray[np.void]) -> SightingBatch:
    out = np.zeros(len(rows), dtype=SIGHTING_DTYPE)
    for name in ("epc", "reader", "antenna", "first_seen_us", "last_seen_us", "read_count"):
        out[name] = rows[name]
    out["peak_rssi"] = rows["peak_rssi"]
    weight = rows["rssi_weight"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["mean_rssi"] = np.where(weight > 0, rows["rssi_sum"] / weight, np.nan)
    return out


SightingTuple = tuple[bytes, int, int, int, int, int, float, float]


def reference_dedup(reads: ReadBatch, window_us: int) -> list[SightingTuple]:
    """Plain-Python definition of a sighting, for tests and the benchmark baseline.

    Reads of each key are taken in (first_seen, arrival) order; returns tuples of
    (epc, reader, antenna, first, last, read_count, peak_rssi, mean_rssi).
    """
    runs: dict[tuple[bytes, int, int], list[list[float]]] = {}
    order = sorted(range(len(reads)), key=lambda i: int(reads["first_seen_us"][i]))
    for i in order:
        r = reads[i]
        key = (bytes(r["epc"]), int(r["reader"]), int(r["antenna"]))
        first = int(r["first_seen_us"])
        last = max(first, int(r["last_seen_us"]))
        count = max(int(r["seen_count"]), 1)
        rssi = float(r["rssi"])
        known = not math.isnan(rssi)
        runs_of_key = runs.setdefault(key, [])
        current = runs_of_key[-1] if runs_of_key else None
        if current is None or first - current[1] >= window_us:
            runs_of_key.append(
                [first, last, count, rssi, rssi * count if known else 0.0, count if known else 0]
            )
        else:
            current[1] = max(current[1], last)
            current[2] += count
            if known:
                current[3] = rssi if math.isnan(current[3]) else max(current[3], rssi)
                current[4] += rssi * count
                current[5] += count
    out: list[SightingTuple] = []
    for (epc, reader, antenna), runs_of_key in runs.items():
        for run in runs_of_key:
            mean = run[4] / run[5] if run[5] else float("nan")
            out.append(
                (epc, reader, antenna, int(run[0]), int(run[1]), int(run[2]), float(run[3]), mean)
            )
    return sorted(out, key=lambda t: (t[1], t[2], t[0], t[3]))


def sightings_as_tuples(batch: SightingBatch) -> list[SightingTuple]:
    """Kernel output in the reference's shape and order (for comparisons)."""
    out: list[SightingTuple] = [
        (
            bytes(r["epc"]),
            int(r["reader"]),
            int(r["antenna"]),
            int(r["first_seen_us"]),
            int(r["last_seen_us"]),
            int(r["read_count"]),
            float(r["peak_rssi"]),
            float(r["mean_rssi"]),
        )
        for r in batch
    ]
    return sorted(out, key=lambda t: (t[1], t[2], t[0], t[3]))
