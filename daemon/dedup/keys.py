"""Key ids: every read reduced to a dense integer id of its (reader, antenna, EPC) key.

Two tables, both hash tables in numpy where a hash only chooses where to look and never
decides that two keys are the same (EPC words and port are always compared exactly):

* :class:`BatchKeys` — dense ids for the distinct keys of one batch: one read per
  scratch-table slot *leads*, every read takes its lead's id;
* :class:`KeyRegistry` — the persistent registry the leads are looked up in, an
  open-addressing table whose rows also hold each key's open sighting as columns (so a
  sighting still open when a batch ends continues in the next one).
"""

from __future__ import annotations

import itertools
from typing import Final

import numpy as np
import numpy.typing as npt

from tagsweep.daemon.dedup.columns import EPC_WORDS, I32, MIN_WORDS, U32, U64, Bool, Index
from tagsweep.daemon.dedup.runs import Runs
from tagsweep.domain import SIGHTING_DTYPE, SightingBatch

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


def hash_keys(words: U64, port: U32, columns: int) -> U64:
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


def width_for(used: int) -> int:
    """Words a registry row carries for EPCs of ``used`` words: one more, always zero, as a
    guard (a batch whose guard word is not zero holds longer EPCs), unless all eight."""
    return min(EPC_WORDS, used + 1)


class KeyRegistry:
    """The (reader, antenna, EPC) keys in play, and the open sighting of each.

    Row 0 is a sentinel (an empty table slot points at it); keys are rows 1…count-1,
    ``words[row]`` their EPC words (and the guard word). ``table`` is an open-addressing
    hash table (linear probing) of row ids, 0 = free.
    """

    def __init__(self) -> None:
        self.width = width_for(MIN_WORDS)
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
        return self.width if self.width == EPC_WORDS else self.width - 1

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
        used = MIN_WORDS
        for k in range(MIN_WORDS, self.width):
            if words[:, k].any():
                used = k + 1
        old = [c[rows] for c in self._columns()]
        self.width = width_for(used)
        self.count = len(rows)
        self._allocate(max(1024, 2 * self.count))
        self.words[: self.count] = words[:, : self.width]
        for new, column in zip(self._columns(), old, strict=True):
            new[: self.count] = column
        self._rehash(_table_bits(self.count))

    def open_keys(self) -> Index:
        return np.flatnonzero(self.sid[: self.count])

    # -- open sightings ------------------------------------------------------------------
    def carried(self, keys: Index) -> Runs:
        return Runs(
            keys,
            self.first[keys],
            self.last[keys],
            self.read_count[keys],
            self.peak[keys],
            self.rssi_sum[keys],
            self.rssi_weight[keys],
            self.sid[keys],
        )

    def keep_open(self, runs: Runs) -> None:
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

    def finish(self, runs: Runs) -> SightingBatch:
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


class BatchKeys:
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
