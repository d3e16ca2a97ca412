"""Dedup kernel: the raw read flood → sightings, on whole numpy columns.

A *sighting* is a run of reads of one EPC on one reader antenna whose gaps stay under
``window_us``. The gap of a read is its ``first_seen_us`` minus the latest
``last_seen_us`` of the reads before it in the run, so an aggregated LLRP report (one
report covering many inventory rounds) counts as covering its whole time span.

Why a vectorised kernel: a handheld reports thousands of reads per second and a portal
many more; a Python loop over reads would be the slowest part of the gateway. The
kernel pulls the EPC words and the numeric fields out of the 100-byte records in two
block copies, then reduces each read once to a dense integer *key id* of its (reader,
antenna, EPC) key within the batch: the key's hash picks a slot of a scratch table, one
read per slot leads, and every read's EPC words and port are compared with its lead's
exactly (a hash only chooses where to look; it never decides that two keys are the
same). Everything after that works on key ids. A key whose reads cannot hold a gap ≥
window (no empty half-window time slice between its first and last read) is one run,
aggregated with ``bincount`` and ``ufunc.at``, no sort; the other keys' reads take one
value sort of packed (key id, arrival) integers, run boundaries from array comparisons
and ``ufunc.reduceat``.

Only the leads are looked up in the persistent key registry, an open-addressing hash
table in numpy whose rows also hold each key's open sighting as columns.

Why carry-over: a sighting that is still open when a batch ends (no gap ≥ window
observed yet) must continue in the next batch, or results would depend on how the
stream happened to be cut. The open sighting of each key lives in the registry row of
the key, and the key's first run in the next batch joins it if the gap allows, so the
result is identical however the stream is split — provided, as readers do, that each
key's reads arrive in time order. (A read older than its key's open sighting still
joins it, through the exact path; it never raises.)

Sightings close when a later read of the key leaves a gap ≥ window, when the reader's
clock has moved on by a window (:meth:`Deduplicator.expire`), or at shutdown
(:meth:`Deduplicator.flush`). Keys without an open sighting are dropped from the
registry from time to time, so it stays about as large as the set of open sightings.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt

from tagsweep.domain import EPC_HEX_MAX, READ_DTYPE, SIGHTING_DTYPE, ReadBatch, SightingBatch

Bool = npt.NDArray[np.bool_]
F4 = npt.NDArray[np.float32]
F8 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Index = npt.NDArray[np.intp]
U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]

_WORDS: Final = EPC_HEX_MAX // 8  # an S64 EPC is eight 8-byte words
_MIN_WORDS: Final = 3  # a 96-bit EPC (24 hex digits) fills exactly three words
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
# Hash tables are sized to 1/16 load (so few keys share a slot), at most about 1 M slots
# while that keeps 1/4 load; a registry table is rebuilt beyond 1/8 load, and grown at
# once beyond 1/4 while keys are being added.
_MIN_TABLE_BITS: Final = 12
_SPARE: Final = 16
_REBUILD_LOAD: Final = 8
_GROW_LOAD: Final = 4


def _table_bits(count: int) -> int:
    """Bits of a hash table for ``count`` keys."""
    slots = min(_SPARE * count, max(4 * count, 1 << 20))
    return max(_MIN_TABLE_BITS, (slots - 1).bit_length())


_FIELDS = READ_DTYPE.fields
assert _FIELDS is not None
_EPC_AT: Final = _FIELDS["epc"][1]
_PORT_AT: Final = _FIELDS["reader"][1]
# (reader, antenna) are read as one 4-byte *port* word: the two u2 fields must be adjacent.
assert _FIELDS["antenna"][1] == _PORT_AT + 2


def _key_view(words: int) -> np.dtype[np.void]:
    """The first ``words`` 8-byte words of the EPC as one opaque field (a view of READ_DTYPE).

    One copy of that field pulls the words out of the 100-byte records in one pass.
    """
    return np.dtype(
        {"names": ["key"], "formats": [f"V{8 * words}"], "offsets": [_EPC_AT], "itemsize": _ITEM}
    )


_ITEM: Final = READ_DTYPE.itemsize
_KEY_VIEWS: Final = tuple(_key_view(w) for w in range(1, _WORDS + 1))
#: The numeric fields the kernel needs lie in one 32-byte stretch from ``reader``: one
#: copy of it makes a compact array whose columns are cheap, aligned strided views.
_TAIL: Final = np.dtype(
    {
        "names": ["port", "rssi", "first", "last", "seen"],
        "formats": ["u4", "f4", "i8", "i8", "u4"],
        "offsets": [
            _FIELDS[name][1] - _PORT_AT
            for name in ("reader", "rssi", "first_seen_us", "last_seen_us", "seen_count")
        ],
        "itemsize": 32,
    }
)
assert _PORT_AT % 4 == 0
assert _PORT_AT + _TAIL.itemsize <= _ITEM
assert _TAIL.fields is not None
assert all(_TAIL.fields[f][1] % 8 == 0 for f in ("first", "last"))
_WORD_VIEWS: Final = tuple(
    np.dtype({"names": ["w"], "formats": ["u8"], "offsets": [_EPC_AT + 8 * k], "itemsize": _ITEM})
    for k in range(_WORDS)
)
_TAIL_VIEW: Final = np.dtype(
    {"names": ["tail"], "formats": ["V32"], "offsets": [_PORT_AT], "itemsize": _ITEM}
)


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


@dataclass(slots=True)
class _Runs:
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
    def none(cls) -> _Runs:
        i, f, u = (
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.float64),
            np.zeros(0, dtype=np.uint64),
        )
        return cls(i.astype(np.intp), i, i, u, f.astype(np.float32), f, f, u)

    def take(self, which: Index | Bool) -> _Runs:
        return _Runs(
            self.key[which],
            self.first[which],
            self.last[which],
            self.count[which],
            self.peak[which],
            self.rssi_sum[which],
            self.rssi_weight[which],
            self.sid[which],
        )


def _hash(words: U64, port: U32, columns: int) -> U64:
    """64-bit hash of (port, EPC words); ``words`` is (n, width).

    All-zero words contribute nothing, so a key's hash does not depend on how many words
    the registry happens to carry. The table slot is taken from the top bits, which a
    multiplication mixes from every bit of its input.
    """
    h = port.astype(np.uint64)
    h *= _MIX_PORT
    t = np.empty_like(h)
    for k in range(columns):
        np.multiply(words[:, k], _MIX[k], out=t)
        h ^= t
    return h


def _width_for(used: int) -> int:
    """Words a registry row carries for EPCs of ``used`` words: one more, always zero, as a
    guard (a batch whose guard word is not zero holds longer EPCs), unless all eight."""
    return min(_WORDS, used + 1)


class _Registry:
    """The (reader, antenna, EPC) keys in play, and the open sighting of each.

    Row 0 is a sentinel (an empty table slot points at it); keys are rows 1…count-1,
    ``words[row]`` their EPC words (and the guard word). ``table`` is an open-addressing
    hash table (linear probing) of row ids, 0 = free.
    """

    def __init__(self) -> None:
        self.width = _width_for(_MIN_WORDS)
        self.count = 1
        self.exact_lookups = 0
        self._allocate(1024)
        self._set_table(_MIN_TABLE_BITS)

    def _allocate(self, capacity: int) -> None:
        self.words = np.zeros((capacity, self.width), dtype=np.uint64)
        self.port = np.zeros(capacity, dtype=np.uint32)
        self.hash = np.zeros(capacity, dtype=np.uint64)
        # The sentinel's hash is 1, never the hash of the all-zero key (0): an empty
        # slot can then never pass for that key in the hash comparison.
        self.hash[0] = 1
        self.sid = np.zeros(capacity, dtype=np.uint64)  # open sighting's id; 0 = none
        self.first = np.zeros(capacity, dtype=np.int64)
        self.last = np.zeros(capacity, dtype=np.int64)
        self.read_count = np.zeros(capacity, dtype=np.uint64)
        self.peak = np.zeros(capacity, dtype=np.float32)
        self.rssi_sum = np.zeros(capacity, dtype=np.float64)
        self.rssi_weight = np.zeros(capacity, dtype=np.float64)

    @property
    def hashed(self) -> int:
        """Word columns that can be non-zero (all but the guard)."""
        return self.width if self.width == _WORDS else self.width - 1

    @property
    def capacity(self) -> int:
        return len(self.port)

    def _columns(self) -> list[npt.NDArray[np.generic]]:
        return [
            self.port,
            self.hash,
            self.sid,
            self.first,
            self.last,
            self.read_count,
            self.peak,
            self.rssi_sum,
            self.rssi_weight,
        ]

    def _set_table(self, bits: int) -> None:
        self.bits = bits
        self.shift = np.uint64(64 - bits)
        self.mask = (1 << bits) - 1
        self.table = np.zeros(1 << bits, dtype=np.int32)
        self.claim = np.zeros(1 << bits, dtype=np.intp)

    # -- keys ----------------------------------------------------------------------------
    def widen(self, width: int) -> None:
        """Carry ``width`` words per key (longer EPCs arrived)."""
        extra = np.zeros((self.capacity, width - self.width), dtype=np.uint64)
        self.words = np.concatenate([self.words, extra], axis=1)
        self.width = width

    def lookup(self, words: U64, port: U32, h: U64) -> Index:
        """Key id of every read, registering keys not seen before. ``words`` is (n, width).

        Reads are matched to keys by their 64-bit hash first (one gather per probe), then
        every read is compared with its key exactly; should two keys ever share a hash,
        the batch is looked up again comparing EPC words at every probe.
        """
        if _REBUILD_LOAD * (self.count + 1) > len(self.table):
            self._rehash(_table_bits(self.count))
        slot = (h >> self.shift).astype(np.intp)
        kid = np.take(self.table, slot).astype(np.intp)
        hit = np.take(self.hash, kid) == h
        if not hit.all():
            # Reads whose key is not at its home slot: all reads of a key share the home
            # slot, so one read per slot stands for the others; only those probe.
            miss = np.flatnonzero(~hit)
            home = np.take(slot, miss)
            self.claim[home] = miss
            rep = np.take(self.claim, home)
            lead = miss[rep == miss]
            self._probe(lead, slot, kid, words=words, port=port, h=h, exact=False)
            same = np.take(h, rep) == np.take(h, miss)
            kid[miss] = np.take(kid, rep)
            if not same.all():
                other = miss[~same]
                slot[other] = (h[other] >> self.shift).astype(np.intp)
                self._probe(other, slot, kid, words=words, port=port, h=h, exact=False)
        if not self._verify(kid, words, port):
            self.exact_lookups += 1
            slot = (h >> self.shift).astype(np.intp)
            self._probe(np.arange(len(h)), slot, kid, words=words, port=port, h=h, exact=True)
        return kid

    def _probe(
        self,
        pending: Index,
        slot: Index,
        kid: Index,
        *,
        words: U64,
        port: U32,
        h: U64,
        exact: bool,
    ) -> None:
        """Linear probing for the ``pending`` reads, in vectorised rounds; fills ``kid``.

        Reads at a free slot claim it; one read per slot wins and its key is added, the
        winner's fellow reads match it, the rest probe on. Reads of one key share a hash,
        so they probe in step and never split.
        """
        while pending.size:
            s = slot[pending]
            c = self.table[s].astype(np.intp)
            free = c == 0
            if free.any():
                pf, sf = pending[free], s[free]
                self.claim[sf] = pf
                won = pf[self.claim[sf] == pf]
                rows = self._add(words[won], port[won], h[won])
                self.table[slot[won]] = rows
                if _GROW_LOAD * self.count > len(self.table):
                    self._rehash(_table_bits(self.count))
                    slot[pending] = (h[pending] >> self.shift).astype(np.intp)
                    continue
                c[free] = self.table[sf]
            if exact:
                hit = self._matches(c, words[pending], port[pending])
            else:
                hit = self.hash[c] == h[pending]
            kid[pending[hit]] = c[hit]
            pending = pending[~hit]
            slot[pending] = (slot[pending] + 1) & self.mask

    def _matches(self, kid: Index, words: U64, port: U32) -> Bool:
        ok: Bool = np.take(self.port, kid) == port
        ok &= kid != 0
        ok &= (np.take(self.words, kid, axis=0) == words).all(axis=1)
        return ok

    def _verify(self, kid: Index, words: U64, port: U32) -> bool:
        """Is every read's key exactly the key of its id?"""
        same = np.take(self.words, kid, axis=0) == words
        return bool(same.all()) and bool((np.take(self.port, kid) == port).all())

    def _add(self, words: U64, port: U32, h: U64) -> I32:
        n = len(port)
        if self.count + n > self.capacity:
            self._grow(max(2 * self.capacity, self.count + n))
        rows = np.arange(self.count, self.count + n, dtype=np.int32)
        self.words[self.count : self.count + n] = words
        self.port[rows] = port
        self.hash[rows] = h
        self.sid[rows] = 0
        self.count += n
        return rows

    def _grow(self, capacity: int) -> None:
        old_words, old = self.words, self._columns()
        self._allocate(capacity)
        self.words[: len(old_words)] = old_words
        for new, column in zip(self._columns(), old, strict=True):
            new[: len(column)] = column

    def _rehash(self, bits: int) -> None:
        """Rebuild the table for rows 1…count-1 (distinct keys: only free slots matter)."""
        self._set_table(bits)
        pending = np.arange(1, self.count, dtype=np.intp)
        slot = (self.hash[pending] >> self.shift).astype(np.intp)
        while pending.size:
            free = self.table[slot] == 0
            pf, sf = pending[free], slot[free]
            self.claim[sf] = pf
            won = self.claim[sf] == pf
            self.table[sf[won]] = pf[won]
            placed = np.zeros(len(pending), dtype=bool)
            placed[np.flatnonzero(free)[won]] = True
            pending, slot = pending[~placed], (slot[~placed] + 1) & self.mask

    def compact(self) -> None:
        """Drop keys without an open sighting; renumbers key ids."""
        keep = np.flatnonzero(self.sid[: self.count])
        rows = np.concatenate([[0], keep])
        words = self.words[rows]
        used = _MIN_WORDS
        for k in range(_MIN_WORDS, self.width):
            if words[:, k].any():
                used = k + 1
        old = [c[rows] for c in self._columns()]
        self.width = _width_for(used)
        self.count = len(rows)
        self._allocate(max(1024, 2 * self.count))
        self.words[: self.count] = words[:, : self.width]
        for new, column in zip(self._columns(), old, strict=True):
            new[: self.count] = column
        self._rehash(_table_bits(self.count))

    def open_keys(self) -> Index:
        return np.flatnonzero(self.sid[: self.count])

    # -- open sightings ------------------------------------------------------------------
    def carried(self, keys: Index) -> _Runs:
        return _Runs(
            keys,
            self.first[keys],
            self.last[keys],
            self.read_count[keys],
            self.peak[keys],
            self.rssi_sum[keys],
            self.rssi_weight[keys],
            self.sid[keys],
        )

    def keep_open(self, runs: _Runs) -> None:
        k = runs.key
        self.sid[k] = runs.sid
        self.first[k] = runs.first
        self.last[k] = runs.last
        self.read_count[k] = runs.count
        self.peak[k] = runs.peak
        self.rssi_sum[k] = runs.rssi_sum
        self.rssi_weight[k] = runs.rssi_weight

    def readers(self, keys: Index) -> npt.NDArray[np.uint16]:
        pair: npt.NDArray[np.uint16] = self.port[keys].view(np.uint16).reshape(-1, 2)
        return pair[:, 0]

    def finish(self, runs: _Runs) -> SightingBatch:
        """Final sighting rows (EPC, reader and antenna come from the keys)."""
        n = len(runs.key)
        out = np.zeros(n, dtype=SIGHTING_DTYPE)
        if n:
            words = np.take(self.words, runs.key, axis=0)
            out["epc"] = words.view(f"S{8 * self.width}").reshape(n)
            pair = self.port[runs.key].view(np.uint16).reshape(n, 2)
            out["reader"] = pair[:, 0]
            out["antenna"] = pair[:, 1]
        out["first_seen_us"] = runs.first
        out["last_seen_us"] = runs.last
        out["read_count"] = runs.count
        out["peak_rssi"] = runs.peak
        with np.errstate(invalid="ignore", divide="ignore"):
            out["mean_rssi"] = np.where(
                runs.rssi_weight > 0, runs.rssi_sum / runs.rssi_weight, np.nan
            )
        return out


_REMIX: Final = (np.uint64(1), np.uint64(0xD1342543DE82EF95), np.uint64(0xAF251AF3B0F025B5))


class _LocalKeys:
    """Dense ids for the distinct keys of one batch, from the reads' key hashes.

    A read's hash picks a slot of a scratch table; one read per slot becomes the *lead*
    of the slot, every read takes its lead's id, and every read's EPC words and port are
    compared with its lead's. Reads of another key than their lead's (two keys in one
    slot) get their ids in another round, with the hash mixed differently; each round
    settles at least its leads, so the rounds end, and the ids are exact.
    """

    def __init__(self) -> None:
        self._bits = 0
        self._lead = np.zeros(0, dtype=np.intp)
        self._id = np.zeros(0, dtype=np.intp)
        self._expect = 4096  # distinct keys expected in a batch (the last batch's count)
        self.rounds = 0  # rounds beyond the first, over the instance's life (for tests)

    def ids(self, words: U64, port: U32, h: U64) -> tuple[Index, Index]:
        """(id of every read, the lead read of every id)."""
        n = len(h)
        bits = _table_bits(min(n, self._expect))
        if bits != self._bits:
            self._bits = bits
            self._lead = np.zeros(1 << bits, dtype=np.intp)
            self._id = np.zeros(1 << bits, dtype=np.intp)
        shift = np.uint64(64 - bits)
        lid = np.empty(n, dtype=np.intp)
        leads: list[Index] = []
        count = 0
        pending: Index | None = None
        for mix in itertools.cycle(_REMIX):
            if pending is None:
                hp, wp, pp = h, words, port
            else:
                hp = np.take(h, pending)
                wp = np.take(words, pending, axis=0)
                pp = np.take(port, pending)
                self.rounds += 1
            slot = ((hp if mix == 1 else hp * mix) >> shift).astype(np.intp)
            rows = np.arange(len(hp), dtype=np.intp)
            self._lead[slot] = rows
            lead = np.take(self._lead, slot)
            first = np.flatnonzero(lead == rows)
            self._id[np.take(slot, first)] = np.arange(count, count + len(first))
            ids = np.take(self._id, slot)
            diff = np.take(wp, lead, axis=0)
            diff ^= wp
            port_diff = np.take(pp, lead)
            port_diff ^= pp
            if pending is None:
                lid = ids
                leads.append(first)
            else:
                lid[pending] = ids
                leads.append(np.take(pending, first))
            count += len(first)
            if not (diff.any() or port_diff.any()):
                break
            either = port_diff.astype(np.uint64)
            for k in range(diff.shape[1]):  # (numpy reduces along a short axis slowly)
                either |= diff[:, k]
            other = either != 0
            pending = np.flatnonzero(other) if pending is None else pending[other]
        self._expect = max(count, 256)
        return lid, leads[0] if len(leads) == 1 else np.concatenate(leads)


@dataclass(slots=True)
class _Batch:
    """The columns of one batch of reads (or of a part of one)."""

    port: U32
    first: I64
    last: I64 | None  # None: every read's last_seen equals its first_seen
    rssi: F4
    count: U64 | None  # None: every read counts once
    known: Bool | None  # None: every RSSI is known

    def take(self, rows: Index) -> _Batch:
        return _Batch(
            port=np.take(self.port, rows),
            first=np.take(self.first, rows),
            last=None if self.last is None else np.take(self.last, rows),
            rssi=np.take(self.rssi, rows),
            count=None if self.count is None else np.take(self.count, rows),
            known=None if self.known is None else np.take(self.known, rows),
        )

    def weights(self) -> tuple[U64, F8, F8]:
        """Per read: read count, RSSI weight (0 when unknown), rssi * weight."""
        count = np.ones(len(self.first), dtype=np.uint64) if self.count is None else self.count
        weight = count.astype(np.float64)
        if self.known is not None:
            weight[~self.known] = 0.0
        return count, weight, np.where(weight > 0, self.rssi * weight, 0.0)


class Deduplicator:
    """Stateful dedup of a read stream into sightings (one instance per gateway).

    ``compact_keys``: the key registry is pruned to the keys with an open sighting when
    it holds more than this many keys and at least four times as many as are open.
    """

    def __init__(
        self, window_us: int, *, next_sighting_id: int = 1, compact_keys: int = 8192
    ) -> None:
        if window_us <= 0:
            raise ValueError("the dedup window must be positive")
        if next_sighting_id < 1:
            raise ValueError("sighting ids start at 1 (0 marks a read not yet in a sighting)")
        self.window_us = int(window_us)
        self._next_id = int(next_sighting_id)
        self._keys = _Registry()
        self._local = _LocalKeys()
        self._compact_keys = compact_keys
        #: batches that needed the exact (slower) path: reads out of time order
        self.exact_sorts = 0

    # -- state ---------------------------------------------------------------------------
    @property
    def open_count(self) -> int:
        return int(np.count_nonzero(self._keys.sid[: self._keys.count]))

    @property
    def next_sighting_id(self) -> int:
        return self._next_id

    @property
    def registered_keys(self) -> int:
        """Keys the registry holds now (for tests and metrics)."""
        return self._keys.count - 1

    def open_sightings(self) -> tuple[SightingBatch, U64]:
        """A snapshot of the sightings still open, as final-format rows (for the store)."""
        runs = self._keys.carried(self._keys.open_keys())
        return self._keys.finish(runs), runs.sid

    # -- processing ----------------------------------------------------------------------
    def process(self, reads: ReadBatch) -> DedupResult:
        """Fold a batch of reads in; return the sightings that closed because of it."""
        if reads.dtype != READ_DTYPE:
            raise TypeError(f"expected a READ_DTYPE batch, got {reads.dtype}")
        if len(reads) == 0:
            return DedupResult.empty()
        words, batch = self._columns(reads)
        keys = self._keys
        h = _hash(words, batch.port, keys.hashed)
        lid, leads = self._local.ids(words, batch.port, h)
        lead_words = np.take(words, leads, axis=0)
        if keys.width < _WORDS and lead_words[:, -1].any():
            # Longer EPCs than so far: the guard word is not zero (checking the leads is
            # enough, every read's words equal its lead's). EPCs are NUL-padded text: the
            # first all-zero word column ends every EPC of the batch.
            used = keys.width
            while used < _WORDS and reads.view(_WORD_VIEWS[used])["w"].any():
                used += 1
            keys.widen(_width_for(used))
            return self.process(reads)
        kid_of = keys.lookup(lead_words, np.take(batch.port, leads), np.take(h, leads))
        settled = self._fast(batch, lid, kid_of)
        if settled is None:
            self.exact_sorts += 1
            settled = self._exact(batch, np.take(kid_of, lid))
        result = self._settle(*settled)
        if keys.count > self._compact_keys and keys.count > 4 * self.open_count:
            keys.compact()
        return result

    def _columns(self, reads: ReadBatch) -> tuple[U64, _Batch]:
        """EPC words (n, registry width) and the other columns, in two copies."""
        n = len(reads)
        keys = self._keys
        width = keys.width
        words = reads.view(_KEY_VIEWS[width - 1])["key"].copy().view(np.uint64).reshape(n, width)
        tail = reads.view(_TAIL_VIEW)["tail"].copy().view(_TAIL)
        first: I64 = tail["first"].copy()
        last: I64 = tail["last"]
        rssi: F4 = tail["rssi"].copy()
        seen: U32 = tail["seen"]
        known = None
        if np.isnan(rssi.sum()):  # a NaN (unknown RSSI) somewhere, or infinities
            known = ~np.isnan(rssi)
            if known.all():
                known = None
        return words, _Batch(
            port=tail["port"].copy(),
            first=first,
            last=None if np.array_equal(first, last) else np.maximum(first, last),
            rssi=rssi,
            count=None if seen.max() <= 1 else np.maximum(seen, 1).astype(np.uint64),
            known=known,
        )

    def _fast(self, batch: _Batch, lid: Index, kid_of: Index) -> tuple[_Runs, _Runs] | None:
        """Runs of the batch alone, then each key's open sighting joined to its first run.

        Exact when every key's reads are in time order and no open sighting ends after
        its key's first read in the batch (readers report in time order, so this is the
        normal case); returns ``None`` otherwise, for the exact path. Returns (runs,
        open sightings closed by a gap before their key's first run).
        """
        keys = len(kid_of)
        single = self._single_runs(batch, lid, keys)
        if single is None:
            runs = self._sorted_runs(batch, lid, keys)
        else:
            runs, gappy = single
            if gappy is not None:
                rows = np.flatnonzero(np.take(gappy, lid))
                more = self._sorted_runs(batch.take(rows), np.take(lid, rows), keys)
                if more is None:
                    return None
                both = _concat(runs, more)
                runs = both.take(np.lexsort((both.first, both.key)))
        if runs is None:
            return None
        runs.key = np.take(kid_of, runs.key)
        return self._join(runs)

    def _single_runs(
        self, batch: _Batch, kid: Index, keys: int
    ) -> tuple[_Runs, Bool | None] | None:
        """One run per key, from scatter reductions (no sort), for keys without a gap.

        A key can only have a gap ≥ window inside the batch if, cutting time into slices
        of at most half a window, some slice between its first and last read holds none
        of its reads. Keys where that may be so are returned as a mask over key ids (or
        None: no such key), for :meth:`_sorted_runs`; the runs of those keys are left out.
        Returns None when the batch spans too many slices for this to pay.
        """
        n = len(kid)
        shift = max(0, (self.window_us // 2).bit_length() - 1)  # slice = 2**shift <= window/2
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
            rsum = _sums(kid, batch.rssi, keys)[present]
            rweight = rcount.astype(np.float64)
        else:
            counts, weight, values = batch.weights()
            rcount = _sums(kid, counts, keys)[present].astype(np.uint64)
            rsum = _sums(kid, values, keys)[present]
            rweight = _sums(kid, weight, keys)[present]
        runs = _Runs(
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

    def _sorted_runs(self, batch: _Batch, kid: Index, keys: int) -> _Runs | None:
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
                ls = _segmented_cummax(ls, start)
        start[1:] |= fs[1:] - ls[:-1] >= self.window_us
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
        return _Runs(
            key=rkey,
            first=np.take(fs, idx),
            last=np.maximum.reduceat(ls, idx),
            count=rcount,
            peak=np.fmax.reduceat(rs, idx),
            rssi_sum=rsum,
            rssi_weight=rweight,
            sid=np.zeros(len(idx), dtype=np.uint64),
        )

    def _join(self, runs: _Runs) -> tuple[_Runs, _Runs] | None:
        """Join each key's open sighting to the key's first run (runs grouped by key)."""
        keys = self._keys
        heads = np.ones(len(runs.key), dtype=bool)
        np.not_equal(runs.key[1:], runs.key[:-1], out=heads[1:])
        head = np.flatnonzero(heads)
        carried = head[np.take(keys.sid, np.take(runs.key, head)) != 0]
        if not carried.size:
            return runs, _Runs.none()
        old = keys.carried(runs.key[carried])
        if np.any(old.last > runs.first[carried]):
            return None  # overlapping reports across the batch boundary
        joins = runs.first[carried] - old.last < self.window_us
        j = carried[joins]
        o = old.take(joins)
        runs.sid[j] = o.sid
        runs.first[j] = o.first
        runs.last[j] = np.maximum(runs.last[j], o.last)
        runs.count[j] += o.count
        runs.peak[j] = np.fmax(runs.peak[j], o.peak)
        runs.rssi_sum[j] += o.rssi_sum
        runs.rssi_weight[j] += o.rssi_weight
        return runs, old.take(~joins)

    def _exact(self, batch: _Batch, kid: Index) -> tuple[_Runs, _Runs]:
        """General path: each key's open sighting re-enters the sort as a partial sighting."""
        keys = self._keys
        n = len(kid)
        seen = np.zeros(keys.count, dtype=bool)
        seen[kid] = True
        old = keys.carried(np.flatnonzero(seen & (keys.sid[: keys.count] != 0)))
        count, weight, values = batch.weights()
        key = np.concatenate([old.key, kid.astype(np.intp)])
        first = np.concatenate([old.first, batch.first])
        last = np.concatenate([old.last, batch.first if batch.last is None else batch.last])
        rows = _Runs(
            key=key,
            first=first,
            last=last,
            count=np.concatenate([old.count, count]),
            peak=np.concatenate([old.peak, batch.rssi]),
            rssi_sum=np.concatenate([old.rssi_sum, values]),
            rssi_weight=np.concatenate([old.rssi_weight, weight]),
            sid=np.concatenate([old.sid, np.zeros(n, dtype=np.uint64)]),
        )
        # Exact order by (key, first_seen, arrival); open sightings arrive first.
        order = np.lexsort((np.arange(len(key)), first, key))
        rows = rows.take(order)
        start = np.ones(len(key), dtype=bool)
        start[1:] = rows.key[1:] != rows.key[:-1]
        last_so_far = _segmented_cummax(rows.last, start)
        start[1:] |= rows.first[1:] - last_so_far[:-1] >= self.window_us
        idx = np.flatnonzero(start)
        runs = _Runs(
            key=rows.key[idx],
            first=rows.first[idx],
            last=np.maximum.reduceat(rows.last, idx),
            count=np.add.reduceat(rows.count, idx),
            peak=np.fmax.reduceat(rows.peak, idx),
            rssi_sum=np.add.reduceat(rows.rssi_sum, idx),
            rssi_weight=np.add.reduceat(rows.rssi_weight, idx),
            # a run holds at most one open sighting; it keeps that sighting's id
            sid=np.maximum.reduceat(rows.sid, idx),
        )
        return runs, _Runs.none()

    def _settle(self, runs: _Runs, closed_before: _Runs) -> DedupResult:
        """The last run of each key stays open; every earlier one is closed for good."""
        n = len(runs.key)
        last_of_key = np.ones(n, dtype=bool)
        np.not_equal(runs.key[1:], runs.key[:-1], out=last_of_key[:-1])
        fresh = np.flatnonzero(runs.sid == 0)
        opened = np.arange(self._next_id, self._next_id + len(fresh), dtype=np.uint64)
        runs.sid[fresh] = opened
        self._next_id += len(fresh)
        self._keys.keep_open(runs.take(last_of_key))
        done = runs.take(~last_of_key)
        if len(closed_before.key):
            done = _concat(closed_before, done)
        return DedupResult(self._keys.finish(done), done.sid, opened)

    def expire(self, cutoff_us: int | npt.NDArray[np.int64]) -> DedupResult:
        """Close sightings whose last read is at least a window before ``cutoff_us``.

        ``cutoff_us`` is the reader's current time: a scalar, or an array indexed by
        reader index. Any later read of such a key would start a new sighting anyway, so
        closing now changes nothing but latency.
        """
        keys = self._keys
        open_keys = keys.open_keys()
        if not open_keys.size:
            return DedupResult.empty()
        if np.ndim(cutoff_us):
            cutoff = np.asarray(cutoff_us, dtype=np.int64)[keys.readers(open_keys)]
        else:
            cutoff = np.full(len(open_keys), int(cutoff_us), dtype=np.int64)
        done = cutoff - keys.last[open_keys] >= self.window_us
        return self._close(open_keys[done])

    def flush(self) -> DedupResult:
        """Close every open sighting (shutdown, or a count session's end)."""
        return self._close(self._keys.open_keys())

    def _close(self, keys: Index) -> DedupResult:
        if not keys.size:
            return DedupResult.empty()
        runs = self._keys.carried(keys)
        self._keys.sid[keys] = 0
        return DedupResult(self._keys.finish(runs), runs.sid, np.zeros(0, dtype=np.uint64))


def _sums(ids: Index, values: npt.NDArray[np.number[Any]], keys: int) -> F8:
    """Sum of ``values`` per id (0 … keys-1), in float64."""
    return np.bincount(ids, weights=values, minlength=keys).astype(np.float64, copy=False)


def _concat(a: _Runs, b: _Runs) -> _Runs:
    return _Runs(
        np.concatenate([a.key, b.key]),
        np.concatenate([a.first, b.first]),
        np.concatenate([a.last, b.last]),
        np.concatenate([a.count, b.count]),
        np.concatenate([a.peak, b.peak]),
        np.concatenate([a.rssi_sum, b.rssi_sum]),
        np.concatenate([a.rssi_weight, b.rssi_weight]),
        np.concatenate([a.sid, b.sid]),
    )


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
