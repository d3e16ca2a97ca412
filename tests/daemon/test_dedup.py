"""The dedup kernel against its plain-Python definition, however the stream is split."""

from __future__ import annotations

import itertools
import math
from unittest import mock

import numpy as np
import pytest
from benchmarks.baselines import reference_dedup, sightings_as_tuples
from hypothesis import given, settings
from hypothesis import strategies as st

from tagsweep.daemon.dedup import deduplicator as deduplicator_module
from tagsweep.daemon.dedup.deduplicator import Deduplicator
from tagsweep.domain import READ_DTYPE, SIGHTING_DTYPE, ReadBatch, empty_reads

WINDOW = 1_000


def _stream(draw: st.DrawFn) -> ReadBatch:
    """Reads of a few keys, each key's reads in time order, interleaved across keys."""
    n = draw(st.integers(1, 120))
    epcs = draw(
        st.lists(
            st.sampled_from([b"E200AA01", b"E200AA02", b"3034F8" + b"0" * 18, b"AB" * 31]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    batch = empty_reads(n)
    t = 0
    for i in range(n):
        t += draw(st.integers(0, 2 * WINDOW))  # gaps straddle the window
        span = draw(st.integers(0, WINDOW // 2))
        batch[i]["epc"] = draw(st.sampled_from(epcs))
        batch[i]["reader"] = draw(st.integers(0, 1))
        batch[i]["antenna"] = draw(st.integers(1, 2))
        batch[i]["first_seen_us"] = t
        batch[i]["last_seen_us"] = t + span
        batch[i]["seen_count"] = draw(st.integers(1, 3))
        rssi = draw(st.one_of(st.just(math.nan), st.integers(-80, -30)))
        batch[i]["rssi"] = rssi
    return batch


reads_streams = st.composite(_stream)


def _run_split(reads: ReadBatch, cuts: list[int]) -> np.ndarray:
    dedup = Deduplicator(WINDOW)
    out = []
    bounds = [0, *sorted(c % (len(reads) + 1) for c in cuts), len(reads)]
    for a, b in itertools.pairwise(bounds):
        out.append(dedup.process(reads[a:b]).closed)
    out.append(dedup.flush().closed)
    return np.concatenate(out)


def _assert_same(got: list[tuple[object, ...]], want: list[tuple[object, ...]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g[:6] == w[:6]
        for a, b in zip(g[6:], w[6:], strict=True):
            assert isinstance(a, float)
            assert isinstance(b, float)
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-5)


@settings(max_examples=100, deadline=None)
@given(reads=reads_streams(), cuts=st.lists(st.integers(0, 10_000), max_size=6))
def test_kernel_matches_reference_however_split(reads: ReadBatch, cuts: list[int]) -> None:
    want = reference_dedup(reads, WINDOW)
    got = sightings_as_tuples(_run_split(reads, cuts))
    _assert_same(list(got), list(want))


def test_gap_at_window_splits_and_below_joins() -> None:
    reads = empty_reads(3)
    reads["epc"] = b"E2001"
    reads["antenna"] = 1
    reads["first_seen_us"] = [0, WINDOW - 1, 2 * WINDOW - 1]
    reads["last_seen_us"] = reads["first_seen_us"]
    reads["rssi"] = [-60, -50, -70]
    dedup = Deduplicator(WINDOW)
    assert len(dedup.process(reads).closed) == 1  # the third read closed the first two
    rest = dedup.flush().closed
    both = np.concatenate([dedup.process(empty_reads(0)).closed, rest])
    assert len(both) == 1
    assert int(rest[0]["read_count"]) == 1


def test_sighting_ids_are_stable_while_open_and_expire_by_reader_clock() -> None:
    dedup = Deduplicator(WINDOW, next_sighting_id=100)
    reads = empty_reads(2)
    reads["epc"] = [b"E2001", b"E2002"]
    reads["reader"] = [0, 1]
    reads["first_seen_us"] = 10
    reads["last_seen_us"] = 10
    first = dedup.process(reads)
    assert sorted(first.opened_ids.tolist()) == [100, 101]
    more = reads.copy()
    more["first_seen_us"] = 20
    more["last_seen_us"] = 20
    second = dedup.process(more)
    assert second.opened_ids.size == 0  # both continued their open sightings
    _, ids = dedup.open_sightings()
    assert sorted(ids.tolist()) == [100, 101]
    # reader 1's clock moved past the window, reader 0's did not
    expired = dedup.expire(np.array([500, 20 + WINDOW], dtype=np.int64))
    assert expired.closed_ids.tolist() == [101] or expired.closed_ids.tolist() == [100]
    closed = expired.closed[0]
    assert int(closed["reader"]) == 1
    assert int(closed["read_count"]) == 2
    assert dedup.open_count == 1


def test_hash_collisions_and_out_of_order_fall_back_to_exact_sort() -> None:
    dedup = Deduplicator(WINDOW)
    reads = empty_reads(4)
    reads["epc"] = b"E2001"
    reads["first_seen_us"] = [300, 100, 200, 5000]  # out of order within the batch
    reads["last_seen_us"] = reads["first_seen_us"]
    result = dedup.process(reads)
    assert dedup.exact_sorts == 1
    assert len(result.closed) == 1
    assert int(result.closed[0]["first_seen_us"]) == 100
    assert int(result.closed[0]["read_count"]) == 3


def test_large_random_stream_matches_reference() -> None:
    rng = np.random.default_rng(5)
    n = 20_000
    reads = empty_reads(n)
    epcs = np.array([f"{i:024X}".encode() for i in rng.integers(0, 2**40, 300)], dtype="S64")
    reads["epc"] = epcs[rng.integers(0, len(epcs), n)]
    reads["antenna"] = rng.integers(1, 5, n)
    reads["first_seen_us"] = np.sort(rng.integers(0, 200 * WINDOW, n))
    reads["last_seen_us"] = reads["first_seen_us"]
    reads["rssi"] = rng.normal(-60, 5, n)
    got = sightings_as_tuples(_run_split(reads, [3_000, 3_001, 9_999, 15_000]))
    want = reference_dedup(reads, WINDOW)
    _assert_same(list(got), list(want))
    assert len(got) > 300  # the stream really produced several sightings per key


def test_rejects_foreign_dtype() -> None:
    with pytest.raises(TypeError, match="READ_DTYPE"):
        Deduplicator(WINDOW).process(np.zeros(1, dtype=SIGHTING_DTYPE))
    assert READ_DTYPE.names is not None


def _wide_stream(draw: st.DrawFn) -> ReadBatch:
    """Like :func:`_stream`, with EPCs of every length class (up to all 64 hex digits)."""
    batch = _stream(draw)
    epcs = [b"E2", b"E200AA01", b"3034F8" + b"0" * 18, b"E2" * 16, b"AB" * 31, b"3" * 64]
    picks = draw(st.lists(st.sampled_from(epcs), min_size=len(batch), max_size=len(batch)))
    batch["epc"] = picks
    return batch


wide_streams = st.composite(_wide_stream)


def _run_split_with(dedup: Deduplicator, reads: ReadBatch, cuts: list[int]) -> np.ndarray:
    out = []
    bounds = [0, *sorted(c % (len(reads) + 1) for c in cuts), len(reads)]
    for a, b in itertools.pairwise(bounds):
        out.append(dedup.process(reads[a:b]).closed)
        if b and b % 3 == 0:  # now and then, close what a reader clock has left behind
            out.append(dedup.expire(int(reads["last_seen_us"][:b].max()) - WINDOW).closed)
    out.append(dedup.flush().closed)
    return np.concatenate(out)


@settings(max_examples=100, deadline=None)
@given(
    reads=wide_streams(),
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
    weak_hash=st.booleans(),
)
def test_exact_however_keys_collide_and_the_registry_is_pruned(
    reads: ReadBatch, cuts: list[int], weak_hash: bool
) -> None:
    """Key ids stay exact when every key hashes alike, over EPCs of every length, with the
    key registry pruned after every batch."""
    dedup = Deduplicator(WINDOW, compact_keys=1)
    if weak_hash:
        with mock.patch.object(deduplicator_module, "hash_keys", _weak_hash):
            got = _run_split_with(dedup, reads, cuts)
    else:
        got = _run_split_with(dedup, reads, cuts)
    _assert_same(list(sightings_as_tuples(got)), list(reference_dedup(reads, WINDOW)))


def _weak_hash(words: np.ndarray, port: np.ndarray, columns: int) -> np.ndarray:
    """Two hash values for all keys: every table slot is shared."""
    return (port & 1).astype(np.uint64) << np.uint64(63)


def test_weak_hash_takes_extra_rounds_and_exact_lookups() -> None:
    reads = empty_reads(6)
    reads["epc"] = [b"E2001", b"E2002", b"E2003", b"E2001", b"E2002", b"E2003"]
    reads["antenna"] = 2
    reads["first_seen_us"] = np.arange(6) * 10
    reads["last_seen_us"] = reads["first_seen_us"]
    dedup = Deduplicator(WINDOW)
    with mock.patch.object(deduplicator_module, "hash_keys", _weak_hash):
        dedup.process(reads)
    assert dedup._local.rounds >= 2  # three keys in one slot: one settles per round
    assert dedup._keys.exact_lookups >= 1  # three keys share one whole hash
    closed = dedup.flush().closed
    assert sorted(bytes(e) for e in closed["epc"]) == [b"E2001", b"E2002", b"E2003"]
    assert closed["read_count"].tolist() == [2, 2, 2]


def test_registry_is_pruned_to_open_sightings_and_ids_survive() -> None:
    dedup = Deduplicator(WINDOW, compact_keys=8)
    reads = empty_reads(40)
    reads["epc"] = [f"E2{i:06X}".encode() for i in range(40)]
    reads["antenna"] = 1
    reads["first_seen_us"] = 0
    reads["last_seen_us"] = 0
    opened = dedup.process(reads).opened_ids
    assert dedup.registered_keys == 40
    # 38 of them close by the reader clock; then a batch with the other two prunes.
    keep = reads[:2].copy()
    keep["first_seen_us"] = keep["last_seen_us"] = 2 * WINDOW
    dedup._keys.last[3:41] = -WINDOW  # (38 keys ended long ago)
    assert len(dedup.expire(WINDOW // 2).closed) == 38
    assert dedup.process(keep).closed.size == 2  # the gap closed the first two too
    assert dedup.registered_keys == 2
    _, ids = dedup.open_sightings()
    assert len(ids) == 2
    assert not set(ids.tolist()) & set(opened.tolist())


def test_longer_epcs_widen_the_registry_mid_stream() -> None:
    dedup = Deduplicator(WINDOW)
    short = empty_reads(2)
    short["epc"] = [b"E2001", b"3034F8" + b"0" * 18]
    dedup.process(short)
    long = empty_reads(2)
    long["epc"] = [b"AB" * 32, b"E2001"]
    long["first_seen_us"] = long["last_seen_us"] = 5
    dedup.process(long)
    rows, _ = dedup.open_sightings()
    assert sorted(bytes(e) for e in rows["epc"]) == sorted(
        [b"E2001", b"3034F8" + b"0" * 18, b"AB" * 32]
    )
    e2001 = rows[rows["epc"] == b"E2001"][0]
    assert int(e2001["read_count"]) == 2  # the short key kept its open sighting


def test_many_keys_in_one_batch_use_the_wide_sort() -> None:
    """More keys and reads than fit a 32-bit packed sort key, with gaps inside the batch."""
    rng = np.random.default_rng(11)
    n = 70_000
    reads = empty_reads(n)
    epcs = np.array([f"3034{i:020X}".encode() for i in range(40_000)], dtype="S64")
    reads["epc"] = epcs[rng.integers(0, len(epcs), n)]
    reads["antenna"] = rng.integers(1, 3, n)
    reads["first_seen_us"] = np.sort(rng.integers(0, 400 * WINDOW, n))
    reads["last_seen_us"] = reads["first_seen_us"]
    reads["rssi"] = rng.normal(-60, 5, n)
    got = sightings_as_tuples(_run_split(reads, []))  # one batch: 17 + 16 bits
    _assert_same(list(got), list(reference_dedup(reads, WINDOW)))
