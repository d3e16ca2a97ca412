"""The door portal: people carry items through a storage-room door in groups, turn back
at it or walk past it, and park items on a shelf beside it, under an inside and an
outside antenna (:func:`portal_traffic`); the result carries the reads and the true
passes with direction and crossing time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from tagsweep.domain import ReadBatch, empty_reads
from tagsweep.epc import giai96_for_asset_tag
from tagsweep.simulators.world.radio import Radio, reads_from_hits, sort_reads
from tagsweep.simulators.world.replay import Replay, ReplayClock, tag_source
from tagsweep.simulators.world.site import DEFAULT_START_US, FloatArray, IntArray

Direction = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class PortalParams:
    """Geometry and radio of a door portal: the wall is the plane x = 0, inside is x > 0."""

    inside_antenna: int = 1
    outside_antenna: int = 2
    radio: Radio = field(
        default_factory=lambda: Radio(ref_rssi_dbm=-42.0, pattern_exp=2.0, back_lobe_db=-15.0)
    )
    rounds_per_s: float = 16.0  # per antenna; the reader alternates between them
    door_half_width_m: float = 0.5
    door_height_m: float = 2.1
    wall_loss_db: float = 16.0
    antenna_offset_m: float = 0.2  # antennas sit this far from the wall, beside the door
    walk_speed_m_s: tuple[float, float] = (0.7, 1.6)
    approach_m: float = 4.5  # trips start and end at most this far from the wall
    group_shadow_db: float = 1.0  # extra loss per other item carried in the same group
    shelf_loss_db: float = 22.0  # items parked on the metal shelf beside the door
    scatter_dbm: float = -73.0  # scattered signal of a tag near the door, on either antenna
    scatter_range_m: float = 3.5
    tag_gain_db: tuple[float, float] = (-1.0, 3.0)


@dataclass(frozen=True, slots=True)
class TruePass:
    """The ground truth of one item through the door: crossing time (at the wall plane)
    and direction (what the daemon's detected ``PortalPass`` is scored against)."""

    epc: str
    t_us: int
    direction: Direction
    trip: int  # items carried together share a trip number
    group_size: int


@dataclass(frozen=True)
class PortalTraffic:
    """Portal reads and the truth about what went through the door."""

    reads: ReadBatch  # time-ordered, READ_DTYPE, world time
    passes: tuple[TruePass, ...]
    turnbacks: tuple[tuple[str, int], ...]  # (EPC, time at the door): no pass
    walk_bys: tuple[tuple[str, int], ...]  # (EPC, time abreast the door): no pass
    shelf_epcs: frozenset[str]  # items that rested, readable, near the inside antenna
    final_side: dict[str, Literal["inside", "outside"]]
    params: PortalParams
    zone: str
    start_us: int
    end_us: int

    def replay(self, speed: float = 1.0, *, batch_s: float = 0.1) -> Replay:
        """Portal reads as a live tag source, ``speed`` times real time."""
        clock = ReplayClock(self.start_us, speed)
        return Replay(clock, tag_source(self.reads, clock, batch_s=batch_s))


def _portal_antennas(p: PortalParams) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """(position, aim) of the inside and outside antennas: beside the door at 1.5 m,
    tilted down and towards the doorway, each looking into its own side."""
    y = p.door_half_width_m + 0.15
    pos_in = np.array([p.antenna_offset_m, y, 1.5])
    pos_out = np.array([-p.antenna_offset_m, y, 1.5])
    aim_in = np.array([1.0, -0.6, -0.35])
    aim_out = np.array([-1.0, -0.6, -0.35])
    return pos_in, aim_in / np.linalg.norm(aim_in), pos_out, aim_out / np.linalg.norm(aim_out)


def _through_wall(p: PortalParams, ant: FloatArray, tags: FloatArray) -> npt.NDArray[np.bool_]:
    """True where the straight line antenna→tag crosses the wall outside the door opening."""
    ax = ant[0]
    tx = tags[..., 0]
    crosses = (tx - 0.0) * (ax - 0.0) < 0
    s = np.where(crosses, (0.0 - ax) / np.where(crosses, tx - ax, 1.0), 0.0)
    y = ant[1] + s * (tags[..., 1] - ant[1])
    z = ant[2] + s * (tags[..., 2] - ant[2])
    in_door = (np.abs(y) <= p.door_half_width_m) & (z >= 0) & (z <= p.door_height_m)
    result: npt.NDArray[np.bool_] = crosses & ~in_door
    return result


def portal_traffic(
    seed: int = 0,
    *,
    trips: int = 300,
    items: int = 400,
    max_group: int = 8,
    turnback_rate: float = 0.03,
    walk_by_rate: float = 0.08,
    shelf_slots: int = 4,
    mean_gap_s: float = 12.0,
    params: PortalParams | None = None,
    zone: str = "DC1/Storage 1",
    start_us: int = DEFAULT_START_US,
    first_asset_number: int = 500_000,
) -> PortalTraffic:
    """Simulate ``trips`` people at a storage-room door.

    A trip carries 1..``max_group`` items (geometric sizes) in or out; a few turn back at
    the threshold and a few walk along the corridor past the door. Items start half
    inside, half outside; an item carried in may be put on the shelf beside the door
    (``shelf_slots`` places), where the inside antenna keeps reading it until someone
    carries it out again. Trips are spaced so one item's trips never overlap.
    """
    p = params or PortalParams()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x504F5254]))
    pos_in, aim_in, pos_out, aim_out = _portal_antennas(p)
    tags = [f"AST-{first_asset_number + i:06d}" for i in range(items)]
    epcs = np.array([giai96_for_asset_tag(t) for t in tags], dtype="S64")
    side = np.where(rng.random(items) < 0.5, 1, -1)  # +1 inside
    on_shelf = np.full(items, -1, dtype=np.int64)  # shelf slot or -1
    shelf_pos = np.array(
        [[1.6 + 0.35 * k, p.door_half_width_m + 1.0, 1.1] for k in range(shelf_slots)]
    ).reshape(-1, 3)
    shelf_since = np.zeros(items, dtype=np.int64)
    busy_until = np.zeros(items, dtype=np.int64)
    period_us = int(1_000_000 / p.rounds_per_s)
    batches: list[ReadBatch] = []
    passes: list[TruePass] = []
    turnbacks: list[tuple[str, int]] = []
    walk_bys: list[tuple[str, int]] = []
    shelf_epcs: set[str] = set()
    shelf_intervals: list[tuple[int, int, int, int]] = []  # (item, slot, t0, t1)

    def antenna_rounds(t0: int, t1: int) -> tuple[IntArray, IntArray]:
        """Round times and antennas: the reader alternates inside/outside."""
        k0 = -(-t0 // (period_us // 2))
        k1 = t1 // (period_us // 2)
        k = np.arange(k0, k1 + 1, dtype=np.int64)
        ant = np.where(k % 2 == 0, p.inside_antenna, p.outside_antenna).astype(np.int64)
        return k * (period_us // 2) + rng.integers(0, 2000, size=k.size), ant

    def read(
        times: IntArray, ant: IntArray, tag_pos: FloatArray, idx: IntArray, extra_db: float
    ) -> None:
        """tag_pos: (rounds, items, 3) positions of the items ``idx`` at those rounds."""
        inside = (ant == p.inside_antenna)[:, None, None]
        apos = np.where(inside, pos_in[None, None, :], pos_out[None, None, :])
        aim = np.where(inside, aim_in[None, None, :], aim_out[None, None, :])
        v = tag_pos - apos
        d = np.linalg.norm(v, axis=2)
        cos = np.sum(v * aim, axis=2) / np.maximum(d, 1e-6)
        nominal = p.radio.nominal_rssi(d, cos) + gains[idx][None, :] - extra_db
        wall = np.where(
            inside[:, :, 0],
            _through_wall(p, pos_in, tag_pos),
            _through_wall(p, pos_out, tag_pos),
        )
        nominal = nominal - p.wall_loss_db * wall
        # Scattered paths (door frame, ceiling, carts) give every tag near the door a
        # weak signal on both antennas, whatever the direct path: stray reads.
        near = np.linalg.norm(tag_pos[..., :2], axis=-1) < p.scatter_range_m
        scatter = np.where(near, p.scatter_dbm - extra_db, -200.0)
        nominal = 10.0 * np.log10(10.0 ** (nominal / 10.0) + 10.0 ** (scatter / 10.0))
        hit, rssi = p.radio.detect(nominal, rng)
        batches.append(reads_from_hits(hit, rssi, times, epcs[idx], ant))

    gains = rng.normal(p.tag_gain_db[0], p.tag_gain_db[1], size=items)
    t = start_us + 2_000_000
    for trip in range(trips):
        t += int(rng.exponential(mean_gap_s) * 1_000_000) + 1_000_000
        draw = rng.random()
        kind = (
            "turnback"
            if draw < turnback_rate
            else ("walk_by" if draw < turnback_rate + walk_by_rate else "pass")
        )
        going_in = bool(rng.random() < 0.5)
        origin = -1 if going_in else 1
        if kind == "walk_by":
            origin = -1
        group = min(max_group, int(rng.geometric(0.45)))
        free = np.flatnonzero((side == origin) & (busy_until < t))
        if free.size == 0:
            continue
        chosen = rng.choice(free, size=min(group, free.size), replace=False).astype(np.int64)
        g = chosen.size
        speed = float(rng.uniform(*p.walk_speed_m_s))
        lane_y = float(rng.uniform(-0.3, 0.3))
        carry = np.column_stack(
            [rng.normal(0, 0.15, g), rng.normal(0, 0.12, g), rng.uniform(0.5, 1.3, g)]
        )
        # People come into the field from, and leave it to, anywhere between 2 m and
        # approach_m from the door (round a corner, behind shelving): a trip that ends
        # close to the door ends with weak scattered reads on both antennas.
        start_m = float(rng.uniform(2.0, p.approach_m))
        end_m = float(rng.uniform(2.0, p.approach_m))
        if kind == "pass":
            length = start_m + end_m
        elif kind == "turnback":
            length = 2 * (start_m - 0.15) + 0.8 * speed
        else:
            length = 2 * p.approach_m
        span_us = int(length / speed * 1_000_000)
        t_end = t + span_us
        times, ant = antenna_rounds(t, t_end)
        s = (times - t) / 1_000_000 * speed  # metres walked
        if kind == "pass":
            x = origin * (start_m - s)
            y = np.full_like(s, lane_y)
        elif kind == "turnback":
            turn = start_m - 0.15  # reach the threshold, pause, go back
            pause = 0.8 * speed
            along = np.where(s < turn, s, np.where(s < turn + pause, turn, 2 * turn + pause - s))
            along = np.maximum(along, 0.0)
            x = origin * (start_m - along)
            y = np.full_like(s, lane_y)
        else:  # walk along the corridor past the door, 1.2-2.5 m from the wall
            x = np.full_like(s, -float(rng.uniform(1.2, 2.5)))
            y = -p.approach_m + s
        tag_pos = np.empty((times.size, g, 3))
        tag_pos[:, :, 0] = x[:, None] + carry[None, :, 0]
        tag_pos[:, :, 1] = y[:, None] + carry[None, :, 1]
        tag_pos[:, :, 2] = carry[None, :, 2]
        read(times, ant, tag_pos, chosen, p.group_shadow_db * (g - 1))
        t_mid = t + span_us // 2
        for item in chosen.tolist():
            epc = epcs[item].decode()
            busy_until[item] = t_end + 5_000_000
            if kind == "pass":
                crossing = t + int(start_m / speed * 1_000_000)
                passes.append(TruePass(epc, crossing, "in" if going_in else "out", trip, g))
                if on_shelf[item] >= 0:
                    shelf_intervals.append((item, int(on_shelf[item]), int(shelf_since[item]), t))
                    on_shelf[item] = -1
                side[item] = -origin
                if going_in:
                    free_slots = set(range(shelf_slots)) - set(on_shelf[on_shelf >= 0].tolist())
                    if free_slots and rng.random() < 0.5:
                        on_shelf[item] = min(free_slots)
                        shelf_since[item] = t_end
                        shelf_epcs.add(epc)
            elif kind == "turnback":
                turnbacks.append((epc, t + int((start_m - 0.15) / speed * 1_000_000)))
            else:
                walk_bys.append((epc, t_mid))
        t = t_end
    end_us = t + 5_000_000
    shelf_intervals.extend(
        (item, int(on_shelf[item]), int(shelf_since[item]), end_us)
        for item in np.flatnonzero(on_shelf >= 0).tolist()
    )
    for item, slot, t0, t1 in shelf_intervals:
        # A shelved item stays readable (weakly, at the edge of the inside field) until
        # the trip that carries it out starts.
        times, ant = antenna_rounds(t0, t1)
        tag_pos = np.broadcast_to(shelf_pos[slot], (times.size, 1, 3)).copy()
        read(times, ant, tag_pos, np.array([item]), p.shelf_loss_db)
    reads = sort_reads(np.concatenate(batches)) if batches else empty_reads()
    return PortalTraffic(
        reads=reads,
        passes=tuple(passes),
        turnbacks=tuple(turnbacks),
        walk_bys=tuple(walk_bys),
        shelf_epcs=frozenset(shelf_epcs),
        final_side={
            epcs[i].decode(): ("inside" if side[i] > 0 else "outside") for i in range(items)
        },
        params=p,
        zone=zone,
        start_us=start_us,
        end_us=end_us,
    )
