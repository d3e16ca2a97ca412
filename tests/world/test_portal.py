"""Portal direction and presence events, on hand-made tracks and on simulated door traffic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from benchmarks.baselines import last_antenna_passes
from hypothesis import given, settings
from hypothesis import strategies as st

from tagsweep.config.schema import PortalSection
from tagsweep.daemon.events import EventKind, GatewayEvent
from tagsweep.daemon.portal import PortalSettings, PortalTracker
from tagsweep.domain import SIGHTING_DTYPE, ReadBatch, empty_reads
from tagsweep.simulators.world import PortalTraffic, aggregate_reports, score_passes
from tests.world.conftest import small_portal

S = 1_000_000
INSIDE, OUTSIDE = 1, 2
SETTINGS = PortalSettings(
    portal="store-door", zone="DC1/Storage 1", inside_antenna=INSIDE, outside_antenna=OUTSIDE
)


def track(epc: str, rows: list[tuple[float, int, float]]) -> ReadBatch:
    """(time_s, antenna, rssi) reads of one tag."""
    out = empty_reads(len(rows))
    for i, (t, antenna, rssi) in enumerate(rows):
        out[i]["epc"] = epc.encode()
        out[i]["antenna"] = antenna
        out[i]["rssi"] = rssi
        out[i]["first_seen_us"] = out[i]["last_seen_us"] = int(t * S)
    return out


def crossing(epc: str, direction: str, t0: float = 100.0) -> ReadBatch:
    """A tag carried through: the origin antenna's peak, then the destination's."""
    first, second = (OUTSIDE, INSIDE) if direction == "in" else (INSIDE, OUTSIDE)
    rows: list[tuple[float, int, float]] = []
    for k in range(40):
        t = t0 - 2.0 + k * 0.1
        near_first = -48 - 8 * abs(t - (t0 - 0.6))
        near_second = -48 - 8 * abs(t - (t0 + 0.6))
        rows.append((t, first, near_first if t < t0 else -72.0))
        rows.append((t + 0.05, second, near_second if t > t0 else -73.0))
    # A stray read of the origin antenna at the very end: fools "last antenna seen".
    rows.append((t0 + 2.2, first, -74.0))
    return track(epc, rows)


def run(tracker: PortalTracker, reads: ReadBatch, step_s: float = 0.2) -> list[GatewayEvent]:
    reads = reads[np.argsort(reads["last_seen_us"], kind="stable")]
    times = reads["last_seen_us"]
    events: list[GatewayEvent] = []
    edges = np.arange(int(times[0]), int(times[-1]) + int(step_s * S), int(step_s * S))
    idx = np.searchsorted(times, edges)
    for lo, hi, edge in zip(idx[:-1], idx[1:], edges[1:], strict=True):
        events += tracker.feed(reads[lo:hi])
        events += tracker.advance(int(edge))
    return events + tracker.flush()


@pytest.mark.parametrize("direction", ["in", "out"])
def test_a_pass_gets_its_direction_from_the_peak_order(direction: str) -> None:
    tracker = PortalTracker(SETTINGS)
    events = run(tracker, crossing("E1", direction))
    kinds = [e.kind for e in events]
    assert kinds.count(EventKind.PORTAL_PASS) == 1
    (passed,) = [e for e in events if e.kind is EventKind.PORTAL_PASS]
    assert passed.payload["direction"] == direction
    assert passed.payload["portal"] == "store-door"
    assert passed.payload["location"] == ("DC1/Storage 1" if direction == "in" else None)
    assert abs(passed.ts_us - 100 * S) < 0.3 * S
    assert passed.payload["confidence"] > 0.5
    # ALE-style presence: arrive and depart once per zone, arrivals in the order walked.
    arrivals = [e.payload["zone"] for e in events if e.kind is EventKind.ARRIVE]
    departures = [e.payload["zone"] for e in events if e.kind is EventKind.DEPART]
    assert sorted(arrivals) == sorted(departures) == ["inside", "outside"]
    assert tracker.open_tracks == 0
    # The naive baseline is fooled by the stray read at the end.
    (naive,) = last_antenna_passes(crossing("E1", direction), SETTINGS)
    assert naive.direction != direction


def test_turning_back_at_the_door_is_no_pass() -> None:
    rows: list[tuple[float, int, float]] = []
    for k in range(50):
        t = 10.0 + k * 0.1
        rows.append((t, OUTSIDE, -50 - 6 * abs(t - 12.5)))
        if 12.0 < t < 13.0:
            rows.append((t + 0.05, INSIDE, -62.0))
    tracker = PortalTracker(SETTINGS)
    events = run(tracker, track("E2", rows))
    assert not [e for e in events if e.kind is EventKind.PORTAL_PASS]
    assert [e.kind for e in events].count(EventKind.ARRIVE) == 2


def test_one_antenna_only_is_presence_not_a_pass() -> None:
    rows = [(5.0 + k * 0.5, INSIDE, -60.0) for k in range(30)]
    tracker = PortalTracker(SETTINGS)
    events = run(tracker, track("E3", rows))
    assert [e.kind for e in events] == [EventKind.ARRIVE, EventKind.DEPART]
    assert events[0].ts_us == 5 * S
    assert events[1].ts_us == int(19.5 * S)
    assert events[1].payload["zone"] == "inside"


def test_item_parked_in_the_field_after_going_in_still_passes() -> None:
    parked = track("E4", [(102.5 + k * 0.25, INSIDE, -66.0) for k in range(200)])
    tracker = PortalTracker(SETTINGS)
    reads = np.concatenate([crossing("E4", "in")[:-1], parked])
    events = run(tracker, reads)
    passes = [e for e in events if e.kind is EventKind.PORTAL_PASS]
    assert [p.payload["direction"] for p in passes] == ["in"]
    # It was decided when the outside antenna lost the tag, long before the tag went quiet.
    assert passes[0].ts_us < 101 * S
    assert tracker.open_tracks == 0


def test_other_antennas_and_readers_are_ignored() -> None:
    reads = crossing("E5", "in")
    reads["antenna"] = np.where(reads["antenna"] == INSIDE, 3, reads["antenna"])
    assert not PortalTracker(SETTINGS).feed(reads)[1:]
    only_reader_1 = PortalSettings(
        portal="p", zone="DC1/Storage 1", inside_antenna=1, outside_antenna=2, reader=1
    )
    tracker = PortalTracker(only_reader_1)
    assert tracker.feed(crossing("E5", "in")) == []
    assert tracker.open_tracks == 0


def test_sightings_feed_with_short_windows() -> None:
    reads = crossing("E6", "out")
    # One sighting per 0.3 s window and antenna, as a short dedup window would give.
    batches = []
    for antenna in (INSIDE, OUTSIDE):
        mine = reads[reads["antenna"] == antenna]
        for chunk in np.array_split(mine, max(1, mine.size // 3)):
            s = np.zeros(1, dtype=SIGHTING_DTYPE)
            s["epc"], s["antenna"] = chunk["epc"][0], antenna
            s["first_seen_us"], s["last_seen_us"] = (
                chunk["first_seen_us"][0],
                chunk["last_seen_us"][-1],
            )
            s["read_count"] = chunk.size
            s["peak_rssi"], s["mean_rssi"] = chunk["rssi"].max(), chunk["rssi"].mean()
            batches.append(s)
    sightings = np.concatenate(batches)
    sightings = sightings[np.argsort(sightings["last_seen_us"])]
    tracker = PortalTracker(SETTINGS)
    tracker.feed(sightings)
    tracker.flush()
    assert [p.direction for p in tracker.passes] == ["out"]


def test_from_config_and_settings_validation() -> None:
    section = PortalSection(inside_antenna=1, outside_antenna=2, zone="DC1/Storage 1")
    tracker = PortalTracker.from_config("store-door", section, quiet_s=1.5)
    assert tracker.settings.zone == "DC1/Storage 1"
    assert tracker.settings.quiet_s == 1.5
    with pytest.raises(ValueError, match="must differ"):
        PortalSettings(portal="p", zone="Z", inside_antenna=1, outside_antenna=1)


def score(traffic: PortalTraffic, reads: ReadBatch, step_s: float = 0.5) -> tuple[float, int]:
    tracker = PortalTracker(SETTINGS)
    run(tracker, reads, step_s)
    result = score_passes(traffic.passes, [(p.epc, p.t_us, p.direction) for p in tracker.passes])
    return result.direction_accuracy, result.spurious


def test_simulated_door_traffic_direction_accuracy() -> None:
    traffic = small_portal()
    accuracy, spurious = score(traffic, traffic.reads)
    assert accuracy >= 0.99
    assert spurious <= 0.01 * len(traffic.passes)
    # Same traffic through a reader reporting every 200 ms (aggregated reports).
    accuracy, spurious = score(traffic, aggregate_reports(traffic.reads, 0.2))
    assert accuracy >= 0.99
    assert spurious <= 0.01 * len(traffic.passes)
    naive = last_antenna_passes(traffic.reads, SETTINGS)
    naive_score = score_passes(traffic.passes, [(p.epc, p.t_us, p.direction) for p in naive])
    assert naive_score.spurious > 5 * max(1, spurious)
    assert naive_score.direction_accuracy < accuracy - 0.05


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=30), st.sampled_from([0.1, 0.4, 0.9]))
def test_passes_do_not_depend_on_batching(cuts: list[int], advance_s: float) -> None:
    """Whatever the batch boundaries, and however often advance() runs (up to quiet_s/2),
    the same passes come out."""
    traffic = small_portal(seed=8, trips=6)
    reads = traffic.reads
    reference = PortalTracker(SETTINGS)
    run(reference, reads, 0.2)
    assert len(reference.passes) >= 6
    # Batches of arbitrary sizes, advancing on the reader clock every advance_s.
    bounds = np.cumsum([0, *cuts * (reads.size // max(1, sum(cuts)) + 1)])
    bounds = np.unique(np.clip(bounds, 0, reads.size))
    tracker = PortalTracker(SETTINGS)
    next_advance = int(reads["last_seen_us"][0])
    for lo, hi in itertools.pairwise(bounds):
        batch = reads[lo:hi]
        while next_advance < int(batch["last_seen_us"][0]):
            tracker.advance(next_advance)
            next_advance += int(advance_s * S)
        tracker.feed(batch)
    tracker.flush()
    assert sorted((p.t_us, p.epc, p.direction) for p in tracker.passes) == sorted(
        (p.t_us, p.epc, p.direction) for p in reference.passes
    )
