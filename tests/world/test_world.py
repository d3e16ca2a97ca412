"""The world model: deterministic, self-consistent, and as hard as the requirements say."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tagsweep.domain import READ_DTYPE, empty_reads
from tagsweep.epc import asset_tag_for_epc
from tagsweep.simulators.world import (
    ReplayClock,
    TagState,
    aggregate_reports,
    build_world,
    portal_traffic,
    scan_delays,
    scan_lines,
    serpentine_route,
    tag_source,
    walk_through,
)
from tests.world.conftest import small_portal, small_walk, small_world


def test_same_seed_same_world_and_walk() -> None:
    a = build_world(3, rooms=1, racks_per_row=2, assets_per_rack=10)
    b = build_world(3, rooms=1, racks_per_row=2, assets_per_rack=10)
    c = build_world(4, rooms=1, racks_per_row=2, assets_per_rack=10)
    assert a == b
    assert [x.serial for x in a.assets] != [x.serial for x in c.assets]
    wa, wb = walk_through(a, 1), walk_through(b, 1)
    assert wa.reads.tobytes() == wb.reads.tobytes()
    assert wa.scans == wb.scans
    assert walk_through(a, 2).reads.tobytes() != wa.reads.tobytes()


def test_assets_have_tags_serials_and_giai_epcs() -> None:
    world = small_world()
    tags = [a.asset_tag for a in world.assets]
    assert len(set(tags)) == len(tags) == 480
    assert all(re.fullmatch(r"AST-\d{6}", t) for t in tags)
    assert len({a.serial for a in world.assets}) == len(tags)
    assert len({a.manufacturer for a in world.assets}) >= 5
    for asset in world.assets:
        if asset.tag_state is TagState.NONE:
            assert asset.epc is None
        else:
            assert asset.epc is not None
            assert asset_tag_for_epc(asset.epc, "giai96") == asset.asset_tag
        assert asset.location.startswith(asset.rack + "/U")
    states = Counter(a.tag_state for a in world.assets)
    assert states[TagState.NONE] > 0
    assert states[TagState.LIVE] > 0.9 * len(tags)
    assert {r.path.split("/")[1] for r in world.racks} == {"Room 301", "Room 302"}


def test_walk_reads_are_well_formed_and_cover_the_live_tags() -> None:
    walk = small_walk()
    reads = walk.reads
    assert reads.dtype == READ_DTYPE
    assert np.all(np.diff(reads["first_seen_us"]) >= 0)
    assert reads["first_seen_us"].min() >= walk.start_us
    assert reads["last_seen_us"].max() <= walk.end_us
    assert np.all(reads["rssi"] < -20)
    assert np.all(reads["rssi"] > -90)
    dead = {a.epc for a in walk.world.assets if a.tag_state is TagState.DEAD}
    assert dead, "the scenario should contain dead tags"
    assert not dead & walk.read_epcs
    assert walk.read_epcs <= set(walk.truth)
    assert len(walk.read_epcs) >= 0.98 * len(walk.truth)


def test_walk_scan_script_follows_the_route() -> None:
    walk = small_walk()
    labels = [s for s in walk.scans if s.kind == "location"]
    assert [s.location for s in labels] == serpentine_route(walk.world)
    assert all(s.line == f"LOC:{s.location}" for s in labels)
    assert walk.scans[0].kind == "location"
    untagged = {a.asset_tag: a.rack for a in walk.world.assets if a.tag_state is TagState.NONE}
    scanned = {s.line: s.location for s in walk.scans if s.kind == "asset"}
    assert scanned == untagged
    assert len(walk.asset_locations) == len(walk.world.assets)
    assert all(walk.asset_locations[tag] == rack for tag, rack in untagged.items())
    times = [s.t_us for s in walk.scans]
    assert times == sorted(times)
    # Reads happen between the label scans, interleaved with them in time.
    first_label, last_label = labels[0].t_us, labels[-1].t_us
    assert np.any(walk.reads["first_seen_us"] < last_label)
    assert np.any(walk.reads["first_seen_us"] > last_label)
    assert walk.reads["first_seen_us"].min() > first_label


def test_walk_has_at_least_a_fifth_cross_reads() -> None:
    share = small_walk().cross_read_share()
    assert 0.2 <= share <= 0.7


def test_walk_cross_reads_reach_the_neighbouring_room() -> None:
    walk = small_walk()
    contexts = walk.context_of_reads()
    epcs = walk.reads["epc"].tolist()
    crossings = sum(
        ctx is not None and ctx.split("/")[1] != walk.truth[e.decode()].split("/")[1]
        for ctx, e in zip(contexts, epcs, strict=True)
    )
    assert crossings > 0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.integers(1, 2),
            st.integers(0, 3_000_000),
            st.floats(-80, -30, allow_nan=False),
            st.integers(1, 5),
        ),
        max_size=60,
    ),
    st.sampled_from([0.05, 0.2, 1.0]),
)
def test_aggregate_reports_conserves_reads(
    rows: list[tuple[int, int, int, float, int]], interval_s: float
) -> None:
    reads = empty_reads(len(rows))
    for i, (tag, antenna, t, rssi, count) in enumerate(rows):
        reads[i] = (f"E{tag:03d}".encode(), 0, antenna, rssi, t, t, count, np.nan, np.nan)
    out = aggregate_reports(reads, interval_s)
    assert int(out["seen_count"].sum()) == int(reads["seen_count"].sum())
    for tag in {r[0] for r in rows}:
        for antenna in (1, 2):
            mine = reads[(reads["epc"] == f"E{tag:03d}".encode()) & (reads["antenna"] == antenna)]
            theirs = out[(out["epc"] == f"E{tag:03d}".encode()) & (out["antenna"] == antenna)]
            if mine.size:
                assert theirs["rssi"].max() == mine["rssi"].max()
                assert theirs["first_seen_us"].min() == mine["first_seen_us"].min()
                bucket = int(interval_s * 1_000_000)
                assert np.all(theirs["last_seen_us"] - theirs["first_seen_us"] < bucket)
            else:
                assert theirs.size == 0


def test_portal_truth_is_consistent() -> None:
    traffic = small_portal()
    assert len(traffic.passes) > 150
    assert traffic.turnbacks
    assert traffic.walk_bys
    assert traffic.shelf_epcs
    assert {p.direction for p in traffic.passes} == {"in", "out"}
    assert max(p.group_size for p in traffic.passes) > 3
    by_item: dict[str, list[str]] = {}
    for p in sorted(traffic.passes, key=lambda p: p.t_us):
        by_item.setdefault(p.epc, []).append(p.direction)
    for epc, directions in by_item.items():
        # An item alternates in/out and ends on the side its last pass took it to.
        assert all(a != b for a, b in itertools.pairwise(directions))
        assert traffic.final_side[epc] == ("inside" if directions[-1] == "in" else "outside")
    assert np.all(np.diff(traffic.reads["first_seen_us"]) >= 0)
    assert set(np.unique(traffic.reads["antenna"]).tolist()) == {1, 2}
    assert traffic.start_us < min(p.t_us for p in traffic.passes)
    assert portal_traffic(5, trips=10, items=30).reads.tobytes() == (
        portal_traffic(5, trips=10, items=30).reads.tobytes()
    )


def test_passing_item_is_read_on_the_outside_first_when_going_in() -> None:
    traffic = small_portal()
    reads = traffic.reads
    single = [p for p in traffic.passes if p.group_size == 1 and p.epc not in traffic.shelf_epcs]
    assert single
    agree = 0
    for p in single:
        mine = reads[
            (reads["epc"] == p.epc.encode()) & (np.abs(reads["last_seen_us"] - p.t_us) < 4_000_000)
        ]
        strongest = mine[np.argsort(mine["rssi"])[-6:]]
        before = strongest["last_seen_us"] < p.t_us
        origin = 2 if p.direction == "in" else 1  # outside antenna 2, inside 1
        agree += bool(np.mean(strongest["antenna"][before] == origin) >= 0.5) if before.any() else 0
    assert agree >= 0.8 * len(single)


def test_scan_delays_replay_the_script_timing() -> None:
    walk = small_walk()
    delays = scan_delays(walk.scans, speed=10.0, since_us=walk.start_us)
    assert [line for _, line in delays] == [s.line for s in walk.scans]
    total = sum(d for d, _ in delays)
    assert abs(total - (walk.scans[-1].t_us - walk.start_us) / 10e6) < 1e-3


async def test_live_sources_share_one_clock_and_rebase_timestamps() -> None:
    walk = small_walk()
    # Two seconds of world time around the first label scans, replayed 20x faster.
    t0 = walk.scans[0].t_us
    window = walk.reads[
        (walk.reads["last_seen_us"] >= t0) & (walk.reads["last_seen_us"] < t0 + 2_000_000)
    ]
    scans = [s for s in walk.scans if t0 <= s.t_us < t0 + 2_000_000]
    assert window.size
    assert scans
    clock = ReplayClock(t0, speed=20.0)
    source = tag_source(window, clock, batch_s=0.02)
    started = time.time_ns() // 1000
    got: list[np.ndarray] = []
    lines: list[tuple[int, str]] = []

    async def read_all() -> None:
        got.extend([batch async for batch in source()])

    async def scan_all() -> None:
        lines.extend([(time.time_ns() // 1000, line) async for line in scan_lines(scans, clock)])

    await asyncio.wait_for(asyncio.gather(read_all(), scan_all()), timeout=5)
    reads = np.concatenate(got)
    assert reads.size == window.size
    assert int(reads["seen_count"].sum()) == int(window["seen_count"].sum())
    # Timestamps now live on the wall clock, compressed by the speed factor (exactly:
    # the stamps do not depend on how busy the machine is).
    assert clock.anchor_wall_us is not None
    assert clock.anchor_wall_us >= started
    expected = clock.anchor_wall_us + (window["last_seen_us"] - t0) / 20.0
    assert np.all(np.abs(reads["last_seen_us"] - expected) <= 1)
    # Paced, not dumped: nothing is delivered before its wall time, so the replay takes
    # at least the world span / speed (a loaded machine can only make it later).
    span_us = int(window["last_seen_us"].max() - t0) / 20.0
    assert time.time_ns() // 1000 - clock.anchor_wall_us >= span_us - 1_000
    # Scan lines are never early: each arrives at or after its wall time.
    for wall_us, line in lines:
        scan = next(s for s in scans if s.line == line)
        assert wall_us >= int(clock.to_wall(scan.t_us)) - 1_000
