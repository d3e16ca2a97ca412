"""The walk-through count: an operator walks a route of racks, scans each rack's
location label and the barcodes of unlabelled assets, and sweeps the rack with a
handheld (:func:`walk_through`); the result carries the reads, the scan script and the
truth (the rack of every EPC)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tagsweep.domain import ReadBatch, empty_reads
from tagsweep.simulators.world.radio import Radio, reads_from_hits, sort_reads
from tagsweep.simulators.world.replay import Replay, ReplayClock, tag_source
from tagsweep.simulators.world.site import (
    DEFAULT_START_US,
    RACK_WIDTH_M,
    Asset,
    FloatArray,
    IntArray,
    TagState,
    World,
)


@dataclass(frozen=True, slots=True)
class HandheldParams:
    """How the operator and the handheld behave during a walk-through count."""

    radio: Radio = field(
        default_factory=lambda: Radio(ref_rssi_dbm=-52.0, pattern_exp=4.0, sensitivity_dbm=-70.0)
    )
    rounds_per_s: float = 10.0
    sweep_s: tuple[float, float] = (8.0, 22.0)  # time spent sweeping one rack
    distance_m: float = 0.25  # handheld to rack face while sweeping
    walk_speed_m_s: float = 1.0
    trigger_while_walking: float = 0.5  # chance the trigger stays pressed between racks
    rack_panel_loss_db: float = 6.0  # tag in another rack than the one being swept
    wall_loss_db: float = 6.0  # rooms are separated by mesh cage partitions
    tag_gain_db: tuple[float, float] = (-1.0, 4.0)  # mean, sd of per-label orientation gain
    through_rack_loss_db: float = 10.0  # labels at the rear, read through the equipment
    barcode_s: float = 3.0  # extra time per barcode scanned at a rack
    label_format: str = "LOC:{path}"


ScanKindName = Literal["location", "asset"]


@dataclass(frozen=True, slots=True)
class ScriptedScan:
    """One scan line the scanner will send, when, and what it truly refers to."""

    t_us: int
    line: str
    kind: ScanKindName
    location: str  # the location the operator was at (truth)


@dataclass(frozen=True)
class WalkThrough:
    """A walk-through count: what the handheld and the scanner report, and the truth."""

    world: World
    reader: str
    reads: ReadBatch  # time-ordered, READ_DTYPE, world time
    scans: tuple[ScriptedScan, ...]
    truth: dict[str, str]  # EPC → rack path, for every live tag
    start_us: int
    end_us: int

    @property
    def contexts(self) -> tuple[tuple[int, str], ...]:
        """The location-context timeline the label scans set: (time, location path)."""
        return tuple((s.t_us, s.location) for s in self.scans if s.kind == "location")

    @property
    def asset_locations(self) -> dict[str, str]:
        """Asset tag → rack path of every asset on the route, whatever its label state
        (the truth for barcode observations and for dead tags the count will miss)."""
        visited = {s.location for s in self.scans if s.kind == "location"}
        return {a.asset_tag: a.rack for a in self.world.assets if a.rack in visited}

    @property
    def read_epcs(self) -> set[str]:
        """EPCs read at least once (only these can be attributed at all)."""
        return {e.decode() for e in np.unique(self.reads["epc"])}

    def replay(self, speed: float = 1.0, *, batch_s: float = 0.1) -> Replay:
        """Handheld reads and scan script as live sources, ``speed`` times real time."""
        clock = ReplayClock(self.start_us, speed)
        return Replay(clock, tag_source(self.reads, clock, batch_s=batch_s), self.scans)

    def context_of_reads(self) -> list[str | None]:
        """Location context in force at each read (None before the first label scan)."""
        times = np.array([t for t, _ in self.contexts], dtype=np.int64)
        names = [loc for _, loc in self.contexts]
        idx = np.searchsorted(times, self.reads["first_seen_us"], side="right") - 1
        return [names[i] if i >= 0 else None for i in idx.tolist()]

    def cross_read_share(self) -> float:
        """Share of reads taken while the context was another location than the tag's."""
        if self.reads.size == 0:
            return 0.0
        contexts = self.context_of_reads()
        epcs = self.reads["epc"].tolist()
        wrong = sum(ctx != self.truth[e.decode()] for ctx, e in zip(contexts, epcs, strict=True))
        return wrong / self.reads.size


def serpentine_route(world: World) -> list[str]:
    """Rack paths in walking order: room by room, row by row, alternating direction."""
    route: list[str] = []
    for r in range(len(world.rooms)):
        rows = sorted({k.row for k in world.racks if k.room == r})
        for j, row in enumerate(rows):
            in_row = sorted(
                (k for k in world.racks if k.room == r and k.row == row), key=lambda k: k.index
            )
            if j % 2:
                in_row.reverse()
            route.extend(k.path for k in in_row)
    return route


def walk_through(
    world: World,
    seed: int = 0,
    *,
    params: HandheldParams | None = None,
    route: Sequence[str] | None = None,
    start_us: int = DEFAULT_START_US,
    reader: str = "handheld",
) -> WalkThrough:
    """Simulate the operator counting ``route`` (default: every rack, serpentine).

    At each rack: walk there (trigger possibly held, so tags on the way are read under
    the previous location context), scan the rack's location label, scan the barcode of
    each asset without an RFID label, and sweep the handheld over the rack face in a
    vertical zig-zag with a side-to-side wobble.
    """
    p = params or HandheldParams()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x57414C4B]))
    route = list(route) if route is not None else serpentine_route(world)
    live = world.tagged
    rack_ids = {r.path: i for i, r in enumerate(world.racks)}
    q = np.array([a.position for a in live], dtype=np.float64).reshape(-1, 3)
    tag_rack = np.array([rack_ids[a.rack] for a in live], dtype=np.int64)
    tag_room = np.array([world.rack_of(a.rack).room for a in live], dtype=np.int64)
    rear = np.array(
        [abs(a.position[1] - world.rack_of(a.rack).y_front) > 0.5 for a in live], dtype=bool
    )
    epcs = np.array([a.epc for a in live], dtype="S64")
    tag_gain = rng.normal(p.tag_gain_db[0], p.tag_gain_db[1], size=len(live))
    tag_gain -= p.through_rack_loss_db * rear
    untagged_by_rack: dict[str, list[Asset]] = {}
    for a in world.assets:
        if a.tag_state is TagState.NONE:
            untagged_by_rack.setdefault(a.rack, []).append(a)

    period_us = int(1_000_000 / p.rounds_per_s)
    batches: list[ReadBatch] = []
    scans: list[ScriptedScan] = []

    def rounds(t0: int, t1: int) -> IntArray:
        times = np.arange(t0, t1, period_us, dtype=np.int64)
        jittered: IntArray = times + rng.integers(0, period_us // 2, size=times.size)
        return np.minimum(jittered, t1 - 1)

    def read(times: IntArray, pos: FloatArray, aim: FloatArray, swept_rack: int | None) -> None:
        if times.size == 0 or q.size == 0:
            return
        v = q[None, :, :] - pos[:, None, :]
        d = np.linalg.norm(v, axis=2)
        cos = np.einsum("rtk,rk->rt", v, aim) / np.maximum(d, 1e-6)
        nominal = p.radio.nominal_rssi(d, cos) + tag_gain[None, :]
        walker_room = world.room_at(pos[:, 0])
        nominal = nominal - p.wall_loss_db * (walker_room[:, None] != tag_room[None, :])
        if swept_rack is not None:
            nominal = nominal - p.rack_panel_loss_db * (tag_rack != swept_rack)[None, :]
        hit, rssi = p.radio.detect(nominal, rng)
        batches.append(reads_from_hits(hit, rssi, times, epcs))

    t = start_us
    here: FloatArray | None = None
    for path in route:
        rack = world.rack_of(path)
        stand = np.array(
            [rack.x0 + RACK_WIDTH_M / 2, rack.y_front + rack.facing * p.distance_m, 1.2]
        )
        aim_sweep = np.array([0.0, -float(rack.facing), 0.0])
        if here is not None:
            dist = float(np.linalg.norm(stand[:2] - here[:2]))
            t_walk = int(dist / p.walk_speed_m_s * 1_000_000) + 1_500_000  # plus a pause
            if rng.random() < p.trigger_while_walking and dist > 0:
                times = rounds(t, t + t_walk)
                frac = ((times - t) / t_walk)[:, None]
                pos = here[None, :] * (1 - frac) + stand[None, :] * frac
                pos[:, 2] = 1.0
                heading = np.append((stand - here)[:2], 0.0)
                heading /= np.linalg.norm(heading)
                read(times, pos, np.broadcast_to(heading, pos.shape).copy(), None)
            t += t_walk
        scans.append(ScriptedScan(t, p.label_format.format(path=path), "location", path))
        t += int(rng.uniform(0.8, 1.5) * 1_000_000)
        barcodes = untagged_by_rack.get(path, [])
        sweep_us = int(rng.uniform(*p.sweep_s) * 1_000_000)
        total_us = sweep_us + int(len(barcodes) * p.barcode_s * 1_000_000)
        for i, asset in enumerate(barcodes):
            t_scan = t + int((i + 0.5) * total_us / max(1, len(barcodes)))
            scans.append(ScriptedScan(t_scan, asset.asset_tag, "asset", path))
        times = rounds(t, t + total_us)
        phase = (times - t) / total_us
        # Vertical zig-zag (2.5 passes bottom↔top) with a side-to-side wobble.
        zig = np.abs(((phase * 2.5) % 2.0) - 1.0)
        pos = np.empty((times.size, 3))
        pos[:, 0] = rack.x0 + RACK_WIDTH_M / 2 + 0.22 * np.sin(2 * np.pi * (times - t) / 2.3e6)
        pos[:, 1] = rack.y_front + rack.facing * (
            p.distance_m + 0.05 * np.sin(2 * np.pi * (times - t) / 1.7e6)
        )
        pos[:, 2] = 0.15 + 1.85 * (1 - zig)
        read(times, pos, np.broadcast_to(aim_sweep, pos.shape).copy(), rack_ids[path])
        t += total_us
        here = stand
    reads = sort_reads(np.concatenate(batches)) if batches else empty_reads()
    truth = {a.epc: a.rack for a in live if a.epc is not None}
    scans.sort(key=lambda s: s.t_us)
    return WalkThrough(
        world=world,
        reader=reader,
        reads=reads,
        scans=tuple(scans),
        truth=truth,
        start_us=start_us,
        end_us=t,
    )
