"""Walk-through location attribution, on hand-made cases and scored against the world model."""

from __future__ import annotations

import math

import numpy as np
from benchmarks.baselines import attribute_last_seen
from hypothesis import given, settings
from hypothesis import strategies as st

from tagsweep.daemon.location import (
    LocationAttributor,
    LocationTimeline,
    attribute,
    evidence,
    evidence_from_reads,
    merge_evidence,
)
from tagsweep.domain import SIGHTING_DTYPE, SightingBatch
from tagsweep.simulators.world import score_locations
from tests.world.conftest import small_walk
from tests.world.sightings import group_sightings

S = 1_000_000


def sightings(*rows: tuple[str, int, int, int, float, float]) -> SightingBatch:
    """(epc, first_s, last_s, read_count, peak, mean) rows; times in seconds."""
    out = np.zeros(len(rows), dtype=SIGHTING_DTYPE)
    for i, (epc, first, last, count, peak, mean) in enumerate(rows):
        out[i] = (epc.encode(), 0, 1, first * S, last * S, count, peak, mean)
    return out


def test_timeline_gives_the_context_in_force() -> None:
    timeline = LocationTimeline([(10 * S, "A"), (20 * S, "B")])
    timeline.set(15 * S, "C")  # delivered late: still lands in order
    assert timeline.at(5 * S) is None
    assert timeline.at(10 * S) == "A"
    assert timeline.at(16 * S) == "C"
    assert timeline.at(99 * S) == "B"
    assert timeline.locations == ["A", "B", "C"]


def test_sighting_spanning_a_context_change_is_split_by_time() -> None:
    timeline = LocationTimeline([(0, "A"), (10 * S, "B")])
    ev = evidence(timeline, sightings(("E1", 6, 14, 100, -40, -50)))
    by_loc = {timeline.locations[int(r["location"])]: r for r in ev}
    assert set(by_loc) == {"A", "B"}
    assert math.isclose(float(by_loc["A"]["reads"]), 50.0)
    assert math.isclose(float(by_loc["B"]["reads"]), 50.0)
    assert math.isclose(float(by_loc["A"]["rssi_sum"]), -2500.0)
    assert int(by_loc["A"]["last_seen_us"]) == 10 * S
    assert int(by_loc["B"]["first_seen_us"]) == 10 * S
    # Reads before the first context have no location.
    assert (
        evidence(LocationTimeline([(50 * S, "A")]), sightings(("E1", 1, 2, 5, -40, -50))).size == 0
    )


def test_strong_persistent_evidence_beats_the_last_location() -> None:
    timeline = LocationTimeline([(0, "Rack A01"), (30 * S, "Rack A02")])
    batch = sightings(
        ("E1", 2, 25, 200, -38, -50),  # swept at its own rack
        ("E1", 35, 50, 8, -60, -63),  # cross-read from the next rack, later
        ("E2", 40, 55, 150, -36, -49),  # a tag of the next rack
    )
    naive = attribute_last_seen(timeline, batch)
    assert naive == {"E1": "Rack A02", "E2": "Rack A02"}
    result = {a.epc: a for a in attribute(evidence(timeline, batch), timeline.locations)}
    assert result["E1"].location == "Rack A01"
    assert result["E1"].runner_up == "Rack A02"
    assert result["E1"].reads == 200
    assert result["E1"].total_reads == 208
    assert result["E1"].locations_seen == 2
    assert 0.9 < result["E1"].confidence <= 1.0
    assert result["E1"].margin_db > 10
    assert result["E1"].first_seen_us == 2 * S
    assert result["E1"].last_seen_us == 50 * S
    assert result["E2"].location == "Rack A02"
    assert result["E2"].margin_db == math.inf
    assert result["E2"].confidence == 1.0


def test_a_single_lucky_read_does_not_outvote_a_sweep() -> None:
    timeline = LocationTimeline([(0, "A"), (30 * S, "B")])
    batch = sightings(("E1", 1, 20, 40, -50, -58), ("E1", 40, 40, 1, -35, -35))
    (only,) = attribute(evidence(timeline, batch), timeline.locations)
    assert only.location == "A"
    assert only.runner_up == "B"


sighting_rows = st.lists(
    st.tuples(
        st.sampled_from(["E1", "E2", "E3"]),
        st.integers(0, 100),
        st.integers(0, 30),
        st.integers(1, 50),
        st.floats(-80, -30, allow_nan=False),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(sighting_rows, st.integers(0, 30))
def test_evidence_merges_across_batches_as_if_computed_at_once(
    rows: list[tuple[str, int, int, int, float]], cut: int
) -> None:
    timeline = LocationTimeline([(10 * S, "A"), (40 * S, "B"), (70 * S, "A"), (90 * S, "C")])
    batch = sightings(*[(e, f, f + d, n, r + 3, r) for e, f, d, n, r in rows])
    cut = min(cut, batch.size)
    whole = evidence(timeline, batch)
    merged = merge_evidence(evidence(timeline, batch[:cut]), evidence(timeline, batch[cut:]))
    assert whole["epc"].tolist() == merged["epc"].tolist()
    assert whole["location"].tolist() == merged["location"].tolist()
    assert np.allclose(whole["reads"], merged["reads"])
    assert np.allclose(whole["rssi_sum"], merged["rssi_sum"])
    assert np.array_equal(whole["first_seen_us"], merged["first_seen_us"])
    # Evidence never invents or loses reads inside the timeline.
    inside = batch["last_seen_us"] >= 10 * S
    assert whole["reads"].sum() <= batch["read_count"].sum() + 1e-6
    assert (
        whole["reads"].sum() >= batch["read_count"][batch["first_seen_us"] >= 10 * S].sum() - 1e-6
    )
    assert inside.any() or whole.size == 0


def test_walk_through_attribution_beats_the_naive_baseline() -> None:
    walk = small_walk()
    assert walk.cross_read_share() >= 0.2
    timeline = LocationTimeline(walk.contexts)
    # As the daemon does it: dedup flushed at each location-context change.
    cut = group_sightings(walk.reads, 2 * S, timeline.starts)
    ours = {a.epc: a.location for a in attribute(evidence(timeline, cut), timeline.locations)}
    accuracy, n = score_locations(walk.truth, ours)
    naive_accuracy, _ = score_locations(walk.truth, attribute_last_seen(timeline, cut))
    assert n == len(walk.read_epcs)
    assert accuracy >= 0.995
    assert naive_accuracy < accuracy - 0.2
    # Straight from the reads: exact, same bar.
    exact = attribute(evidence_from_reads(timeline, walk.reads), timeline.locations)
    assert score_locations(walk.truth, {a.epc: a.location for a in exact})[0] >= 0.995
    # Sightings that span context changes lose some accuracy but stay far above naive.
    uncut = group_sightings(walk.reads, 2 * S)
    loose = {a.epc: a.location for a in attribute(evidence(timeline, uncut), timeline.locations)}
    assert score_locations(walk.truth, loose)[0] >= naive_accuracy + 0.2


def test_incremental_attributor_matches_one_shot() -> None:
    walk = small_walk()
    attributor = LocationAttributor()
    contexts = list(walk.contexts)
    reads = walk.reads
    # Feed the session as it happens: each label scan, then the reads up to the next.
    bounds = [t for t, _ in contexts[1:]] + [walk.end_us + 1]
    for (t, location), end in zip(contexts, bounds, strict=True):
        attributor.set_context(t, location)
        chunk = reads[(reads["first_seen_us"] >= t) & (reads["first_seen_us"] < end)]
        for part in np.array_split(chunk, 3):
            attributor.add_reads(part)
    live = {a.epc: a for a in attributor.attribute()}
    timeline = LocationTimeline(contexts)
    once = {a.epc: a for a in attribute(evidence_from_reads(timeline, reads), timeline.locations)}
    assert live.keys() == once.keys()
    assert all(live[e].location == once[e].location for e in once)
    assert all(math.isclose(live[e].confidence, once[e].confidence) for e in once)
    low = sorted(once.values(), key=lambda a: a.confidence)[:5]
    assert all(0 < a.confidence < 1 for a in low)
