"""The deduplicator: the stateful fold of a read stream into sightings.

:class:`Deduplicator` is the one object the gateway holds (see the package docstring
for the algorithm). A call to :meth:`~Deduplicator.process` copies the batch's columns
out (:mod:`~tagsweep.daemon.dedup.columns`), gives every read a key id
(:mod:`~tagsweep.daemon.dedup.keys`), finds the batch's runs
(:mod:`~tagsweep.daemon.dedup.runs`), joins each key's open sighting to its first run and
settles: the last run of each key stays open in the registry, every earlier one closes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tagsweep.daemon.dedup.columns import (
    EPC_WORDS,
    U64,
    WORD_VIEWS,
    Index,
    ReadColumns,
    read_columns,
)
from tagsweep.daemon.dedup.keys import BatchKeys, KeyRegistry, hash_keys, width_for
from tagsweep.daemon.dedup.runs import (
    Runs,
    concat_runs,
    segmented_cummax,
    single_runs,
    sorted_runs,
)
from tagsweep.domain import READ_DTYPE, SIGHTING_DTYPE, ReadBatch, SightingBatch


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
        self._keys = KeyRegistry()
        self._local = BatchKeys()
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
        words, batch = read_columns(reads, self._keys.width)
        keys = self._keys
        h = hash_keys(words, batch.port, keys.hashed)
        lid, leads = self._local.ids(words, batch.port, h)
        lead_words = np.take(words, leads, axis=0)
        if keys.width < EPC_WORDS and lead_words[:, -1].any():
            # Longer EPCs than so far: the guard word is not zero (checking the leads is
            # enough, every read's words equal its lead's). EPCs are NUL-padded text: the
            # first all-zero word column ends every EPC of the batch.
            used = keys.width
            while used < EPC_WORDS and reads.view(WORD_VIEWS[used])["w"].any():
                used += 1
            keys.widen(width_for(used))
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

    def _fast(self, batch: ReadColumns, lid: Index, kid_of: Index) -> tuple[Runs, Runs] | None:
        """Runs of the batch alone, then each key's open sighting joined to its first run.

        Exact when every key's reads are in time order and no open sighting ends after
        its key's first read in the batch (readers report in time order, so this is the
        normal case); returns ``None`` otherwise, for the exact path. Returns (runs,
        open sightings closed by a gap before their key's first run).
        """
        keys = len(kid_of)
        single = single_runs(batch, lid, keys, self.window_us)
        if single is None:
            runs = sorted_runs(batch, lid, keys, self.window_us)
        else:
            runs, gappy = single
            if gappy is not None:
                rows = np.flatnonzero(np.take(gappy, lid))
                more = sorted_runs(batch.take(rows), np.take(lid, rows), keys, self.window_us)
                if more is None:
                    return None
                both = concat_runs(runs, more)
                runs = both.take(np.lexsort((both.first, both.key)))
        if runs is None:
            return None
        runs.key = np.take(kid_of, runs.key)
        return self._join(runs)

    def _join(self, runs: Runs) -> tuple[Runs, Runs] | None:
        """Join each key's open sighting to the key's first run (runs grouped by key)."""
        keys = self._keys
        heads = np.ones(len(runs.key), dtype=bool)
        np.not_equal(runs.key[1:], runs.key[:-1], out=heads[1:])
        head = np.flatnonzero(heads)
        carried = head[np.take(keys.sid, np.take(runs.key, head)) != 0]
        if not carried.size:
            return runs, Runs.none()
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

    def _exact(self, batch: ReadColumns, kid: Index) -> tuple[Runs, Runs]:
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
        rows = Runs(
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
        last_so_far = segmented_cummax(rows.last, start)
        start[1:] |= rows.first[1:] - last_so_far[:-1] >= self.window_us
        idx = np.flatnonzero(start)
        runs = Runs(
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
        return runs, Runs.none()

    def _settle(self, runs: Runs, closed_before: Runs) -> DedupResult:
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
            done = concat_runs(closed_before, done)
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
