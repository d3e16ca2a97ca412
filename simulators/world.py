"""World model: a data centre full of tagged assets, a person counting it, and a door portal.

Every test and the demo run on simulated hardware, so the simulated *world* must be
physical enough that the location and portal algorithms face the problems real sites
give them: a handheld swept over one rack also reads the racks beside it, the rack
across the aisle through its back lobe and the room behind the wall; tags are missed;
items go through a door in groups, people turn back at the door or walk past it. Every
scenario records its ground truth so benchmarks can score the daemon against it.

Building blocks (all seeded and deterministic: the same arguments give the same bytes):

* :func:`build_world` — site → rooms → rows → racks → slots with assets: asset tag
  ``AST-000123``, vendor serial, model, and a GIAI-96 EPC (company prefix ``0614141``,
  reference = the tag's digits, :func:`tagsweep.epc.giai96_for_asset_tag`). Some assets
  carry no RFID label (barcode only), some a dead one.
* :func:`walk_through` — an operator walks a route; at each rack they scan its location
  label (``LOC:DC1/Room 301/Rack A01``), scan the barcodes of untagged assets, and sweep
  the rack with a handheld. Returns the reads (:data:`~tagsweep.domain.READ_DTYPE`), the
  scan script and the truth (rack of every EPC).
* :func:`portal_traffic` — a storage-room door with an inside and an outside antenna;
  people carry items through it either way, singly and in groups, turn back at the
  door, walk past it; items parked on a shelf near the door keep being read. Returns
  the reads and the true passes with direction and crossing time.

Radio model (deliberately simple, but with the shape that matters): RSSI at the reader
is ``ref_rssi - 10·n·log10(d) + G(θ) + g_tag - losses + fading`` where ``G`` is the
reader antenna pattern (``cosⁿ θ`` main lobe, a flat back lobe), ``g_tag`` a per-tag
orientation gain, losses are rack panels and walls, and fading is Gaussian per read.
A tag is read in an inventory round when its instantaneous RSSI clears the reader's
sensitivity and it wins anti-collision (a fixed per-round efficiency).

Clock model
-----------
A scenario is generated in *world time*: UTC microseconds from ``start_us`` (a fixed
date by default, so output never depends on when it ran). For live replay a
:class:`ReplayClock` maps world time onto the wall clock::

    wall_us = anchor_wall_us + (world_us - world_start_us) / speed

``speed > 1`` compresses time for a demo. Reads and scan lines are *released* at their
wall time, and read timestamps are *rewritten* to that wall time, so they agree with the
timestamps the daemon gives scans when it receives them (it stamps scans on arrival).
Durations therefore shrink by ``speed`` too: at ``speed=10`` a 20 s rack sweep takes 2 s
of wall clock, and the daemon's dedup window and portal quiet time act on that
compressed clock (choose them accordingly, or keep ``speed`` modest). One clock is
shared by every source of one scenario; it is anchored the first time any of them
starts, so a reader and a scanner started a little apart stay in step. A reader that
(re)connects late misses the reads whose wall time has passed, as a real one would.

Live sources (``walk.replay(speed)`` / ``traffic.replay(speed)`` bundle them as a
:class:`Replay` on one clock)::

    replay = walk_through(build_world(1), 1).replay(speed=10)
    LlrpSimulator(port=0, tag_source=replay.tag_source)       # reads, paced
    ScannerSimulator(mode="tcp", script=replay.scan_script())  # label and asset scans

* :func:`tag_source` → ``Callable[[], AsyncIterator[ReadBatch]]`` for the LLRP
  simulator (one fresh iterator per connection);
* :func:`scan_lines` → async iterator of scan lines paced by the same clock;
  :func:`scan_delays` gives the same script as ``(delay_s, line)`` pairs.

Scoring helpers: :func:`score_locations` (EPC → location against the truth) and
:func:`score_passes` (portal passes matched by tag and time).
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from tagsweep.domain import READ_DTYPE, ReadBatch, empty_reads
from tagsweep.epc import giai96_for_asset_tag

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Default world start: a fixed Monday morning, so generated data never depends on the
#: day it was generated.
DEFAULT_START_US: Final = int(datetime(2026, 1, 5, 9, 0, tzinfo=UTC).timestamp() * 1_000_000)

RACK_WIDTH_M: Final = 0.6
RACK_DEPTH_M: Final = 1.1
AISLE_M: Final = 1.3
ROW_END_GAP_M: Final = 0.9
WALL_M: Final = 0.25
U_HEIGHT_M: Final = 0.0445
RACK_UNITS: Final = 42


class TagState(enum.StrEnum):
    """The RFID label of an asset."""

    LIVE = "live"
    DEAD = "dead"  # label present but never answers (damaged, detuned on metal)
    NONE = "none"  # no RFID label: counted by barcode only


# -- catalogue: vendor, model, serial format ---------------------------------------------

_ALNUM: Final = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # vendors avoid I and O
_DIGITS: Final = "0123456789"
_LETTERS: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def _pick(rng: np.random.Generator, alphabet: str, n: int) -> str:
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), size=n))


def _dell(rng: np.random.Generator) -> str:  # service tag: 7 alphanumerics
    return _pick(rng, _ALNUM, 7)


def _hpe(rng: np.random.Generator) -> str:  # e.g. CZJ12345AB: country, site, yww, seq
    return (
        _pick(rng, "CM", 1)
        + _pick(rng, "XZ", 1)
        + _pick(rng, _LETTERS, 1)
        + (_pick(rng, _DIGITS, 5) + _pick(rng, _ALNUM, 2))
    )


def _lenovo(rng: np.random.Generator) -> str:  # e.g. J30A1B2C
    return _pick(rng, "JS", 1) + _pick(rng, _DIGITS, 2) + _pick(rng, _ALNUM, 5)


def _cisco(rng: np.random.Generator) -> str:  # LLLYYWWSSSS, e.g. FDO2134X0AB
    year = int(rng.integers(18, 26))
    week = int(rng.integers(1, 53))
    return (
        _pick(rng, "FJ", 1)
        + _pick(rng, "DOC", 1)
        + _pick(rng, _LETTERS, 1)
        + (f"{year:02d}{week:02d}" + _pick(rng, _ALNUM, 4))
    )


def _juniper(rng: np.random.Generator) -> str:  # e.g. WS3718150123
    return _pick(rng, _LETTERS, 2) + _pick(rng, _DIGITS, 10)


def _apc(rng: np.random.Generator) -> str:  # e.g. 5A1834E01234
    return (
        _pick(rng, _DIGITS, 1)
        + _pick(rng, _LETTERS, 1)
        + _pick(rng, _DIGITS, 4)
        + (_pick(rng, _LETTERS, 1) + _pick(rng, _DIGITS, 5))
    )


def _netapp(rng: np.random.Generator) -> str:  # 12 digits
    return _pick(rng, "79", 1) + _pick(rng, _DIGITS, 11)


SerialMaker = Callable[[np.random.Generator], str]

#: (manufacturer, model, height in U, serial format, relative frequency)
CATALOGUE: Final[tuple[tuple[str, str, int, SerialMaker, float], ...]] = (
    ("Dell", "PowerEdge R650", 1, _dell, 6.0),
    ("Dell", "PowerEdge R750", 2, _dell, 5.0),
    ("HPE", "ProLiant DL360 Gen10", 1, _hpe, 5.0),
    ("HPE", "ProLiant DL380 Gen10 Plus", 2, _hpe, 5.0),
    ("Lenovo", "ThinkSystem SR650 V2", 2, _lenovo, 3.0),
    ("Cisco", "Catalyst 9300-48P", 1, _cisco, 3.0),
    ("Cisco", "Nexus 93180YC-FX", 1, _cisco, 2.0),
    ("Juniper", "EX4300-48T", 1, _juniper, 1.5),
    ("APC", "AP8841 Rack PDU", 1, _apc, 2.0),
    ("NetApp", "AFF A250", 2, _netapp, 1.0),
)


# -- the world ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rack:
    path: str  # "DC1/Room 301/Rack A01"
    room: int
    row: int  # row index inside the room
    index: int  # position in the row
    x0: float  # left edge of the rack face
    y_front: float  # plane of the rack face
    facing: int  # +1: face looks towards +y; -1: towards -y


@dataclass(frozen=True, slots=True)
class Asset:
    asset_tag: str
    serial: str
    manufacturer: str
    model: str
    epc: str | None  # GIAI-96 hex, None when the asset has no RFID label
    tag_state: TagState
    rack: str  # location path of its rack: the attribution target
    slot: str  # "U12": position in the rack
    position: tuple[float, float, float]  # label position (m)

    @property
    def location(self) -> str:
        """Slot-level location path, ``DC1/Room 301/Rack A01/U12``."""
        return f"{self.rack}/{self.slot}"


@dataclass(frozen=True)
class World:
    """A site with rooms of racks full of assets (immutable; geometry in metres)."""

    site: str
    rooms: tuple[str, ...]  # room paths, "DC1/Room 301"
    room_x: tuple[tuple[float, float], ...]  # x extent of each room
    racks: tuple[Rack, ...]
    assets: tuple[Asset, ...]

    @property
    def tagged(self) -> tuple[Asset, ...]:
        """Assets whose RFID label answers (the ones a reader can see)."""
        return tuple(a for a in self.assets if a.tag_state is TagState.LIVE)

    def rack_of(self, path: str) -> Rack:
        for rack in self.racks:
            if rack.path == path:
                return rack
        raise KeyError(path)

    def room_at(self, x: FloatArray) -> IntArray:
        """Index of the room containing each x coordinate (nearest room in a wall)."""
        centres = np.array([(a + b) / 2 for a, b in self.room_x])
        edges = (centres[1:] + centres[:-1]) / 2
        return np.searchsorted(edges, x).astype(np.int64)


def build_world(
    seed: int = 0,
    *,
    site: str = "DC1",
    rooms: int = 2,
    rows_per_room: int = 2,
    racks_per_row: int = 5,
    assets_per_rack: int = 100,
    untagged_fraction: float = 0.02,
    dead_tag_fraction: float = 0.01,
    first_room_number: int = 301,
) -> World:
    """Lay out ``rooms`` side by side, each with rows of racks, and fill the racks.

    Rows come in pairs facing one (cold) aisle, so the rack across the aisle is behind
    the operator's back; rooms share a wall, so the end racks of one room are a wall's
    thickness from the first racks of the next. A rack holds ``assets_per_rack`` items
    from 1U/2U servers, switches and PDUs; above 42 per rack, several share a U
    (blade-style chassis), placed side by side.
    """
    if rooms < 1 or rows_per_room < 1 or racks_per_row < 1 or assets_per_rack < 1:
        raise ValueError("rooms, rows_per_room, racks_per_row and assets_per_rack must be >= 1")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x574F524C]))
    room_len = 2 * ROW_END_GAP_M + racks_per_row * RACK_WIDTH_M
    pair_pitch = 2 * RACK_DEPTH_M + AISLE_M + 1.2  # two rows, their aisle, a hot aisle
    room_paths: list[str] = []
    room_x: list[tuple[float, float]] = []
    racks: list[Rack] = []
    for r in range(rooms):
        x_start = r * (room_len + WALL_M)
        room_paths.append(f"{site}/Room {first_room_number + r}")
        room_x.append((x_start, x_start + room_len))
        for row in range(rows_per_room):
            pair, second = divmod(row, 2)
            facing = -1 if second else 1
            y_front = pair * pair_pitch + (AISLE_M if second else 0.0)
            letter = _LETTERS[row] if row < len(_LETTERS) else f"R{row}"
            racks.extend(
                Rack(
                    path=f"{room_paths[-1]}/Rack {letter}{i + 1:02d}",
                    room=r,
                    row=row,
                    index=i,
                    x0=x_start + ROW_END_GAP_M + i * RACK_WIDTH_M,
                    y_front=y_front,
                    facing=facing,
                )
                for i in range(racks_per_row)
            )
    n = len(racks) * assets_per_rack
    weights = np.array([c[4] for c in CATALOGUE])
    models = rng.choice(len(CATALOGUE), size=n, p=weights / weights.sum())
    # Asset tags were issued in batches: increasing numbers with gaps.
    numbers = 100 + np.cumsum(rng.integers(1, 4, size=n))
    state_draw = rng.random(n)
    per_u = max(1, math.ceil(assets_per_rack / RACK_UNITS))
    assets: list[Asset] = []
    serials: set[str] = set()
    for k in range(n):
        rack = racks[k // assets_per_rack]
        pos_in_rack = k % assets_per_rack
        u, lane = divmod(pos_in_rack, per_u)
        u = u % RACK_UNITS
        manufacturer, model, _, make_serial, _ = CATALOGUE[int(models[k])]
        serial = make_serial(rng)
        while serial in serials:
            serial = make_serial(rng)
        serials.add(serial)
        tag = f"AST-{int(numbers[k]):06d}"
        if state_draw[k] < untagged_fraction:
            tag_state = TagState.NONE
        elif state_draw[k] < untagged_fraction + dead_tag_fraction:
            tag_state = TagState.DEAD
        else:
            tag_state = TagState.LIVE
        x = rack.x0 + RACK_WIDTH_M * (lane + 0.5) / per_u + float(rng.normal(0, 0.03))
        z = 0.15 + u * U_HEIGHT_M + float(rng.uniform(0, 0.02))
        # Labels sit on the front bezel, just inside the door, except on PDUs, which are
        # mounted at the rear of the rack and read through it.
        depth = RACK_DEPTH_M - 0.05 if model.endswith("PDU") else 0.03
        y = rack.y_front - rack.facing * depth
        assets.append(
            Asset(
                asset_tag=tag,
                serial=serial,
                manufacturer=manufacturer,
                model=model,
                epc=None if tag_state is TagState.NONE else giai96_for_asset_tag(tag),
                tag_state=tag_state,
                rack=rack.path,
                slot=f"U{u + 1:02d}",
                position=(x, y, z),
            )
        )
    return World(
        site=site,
        rooms=tuple(room_paths),
        room_x=tuple(room_x),
        racks=tuple(racks),
        assets=tuple(assets),
    )


# -- radio ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Radio:
    """Link budget of one reader antenna (dBm, dB, metres)."""

    ref_rssi_dbm: float  # RSSI of a boresight tag at 1 m
    path_loss_exp: float = 2.2
    pattern_exp: float = 3.0  # main lobe ~ cos^n(theta)
    back_lobe_db: float = -18.0
    sensitivity_dbm: float = -76.0
    fading_sd_db: float = 3.0
    round_efficiency: float = 0.85  # share of in-field tags a round singulates

    def nominal_rssi(self, d: FloatArray, cos_theta: FloatArray) -> FloatArray:
        d = np.maximum(d, 0.08)
        main = self.pattern_exp * 10.0 * np.log10(np.maximum(cos_theta, 1e-4))
        gain = np.maximum(main, self.back_lobe_db)
        result: FloatArray = self.ref_rssi_dbm - 10.0 * self.path_loss_exp * np.log10(d) + gain
        return result

    def detect(
        self, rssi_nominal: FloatArray, rng: np.random.Generator
    ) -> tuple[npt.NDArray[np.bool_], FloatArray]:
        """(read?, reported RSSI) for each candidate; RSSI quantised to 0.5 dB like readers."""
        inst = rssi_nominal + rng.normal(0.0, self.fading_sd_db, size=rssi_nominal.shape)
        hit = (inst > self.sensitivity_dbm) & (
            rng.random(rssi_nominal.shape) < self.round_efficiency
        )
        return hit, np.round(inst * 2.0) / 2.0


def _reads_from_hits(
    hit: npt.NDArray[np.bool_],
    rssi: FloatArray,
    times_us: IntArray,
    epcs: npt.NDArray[np.bytes_],
    antenna: int | IntArray = 1,
) -> ReadBatch:
    """Rows (rounds) by columns (tags) hit matrix → a READ_DTYPE batch, one read per hit."""
    rows, cols = np.nonzero(hit)
    batch = empty_reads(rows.size)
    batch["epc"] = epcs[cols]
    batch["antenna"] = antenna if isinstance(antenna, int) else antenna[rows]
    batch["rssi"] = rssi[rows, cols]
    batch["first_seen_us"] = times_us[rows]
    batch["last_seen_us"] = times_us[rows]
    return batch


def _sort_reads(batch: ReadBatch) -> ReadBatch:
    order = np.lexsort((batch["antenna"], batch["epc"], batch["first_seen_us"]))
    return batch[order]


def aggregate_reports(reads: ReadBatch, interval_s: float) -> ReadBatch:
    """Fold reads into per-(EPC, antenna) reports every ``interval_s``, as an LLRP reader
    with ``report_every_ms`` does: first/last seen, seen count and peak RSSI."""
    if interval_s <= 0 or reads.size == 0:
        return reads.copy()
    interval_us = int(interval_s * 1_000_000)
    bucket = reads["first_seen_us"] // interval_us
    order = np.lexsort((reads["first_seen_us"], reads["antenna"], reads["epc"], bucket))
    r = reads[order]
    b = bucket[order]
    new = np.ones(r.size, dtype=bool)
    new[1:] = (
        (b[1:] != b[:-1])
        | (r["epc"][1:] != r["epc"][:-1])
        | (r["antenna"][1:] != r["antenna"][:-1])
    )
    starts = np.flatnonzero(new)
    out = empty_reads(starts.size)
    out["epc"] = r["epc"][starts]
    out["reader"] = r["reader"][starts]
    out["antenna"] = r["antenna"][starts]
    out["first_seen_us"] = r["first_seen_us"][starts]
    out["last_seen_us"] = np.maximum.reduceat(r["last_seen_us"], starts)
    out["seen_count"] = np.add.reduceat(r["seen_count"].astype(np.int64), starts)
    out["rssi"] = np.fmax.reduceat(r["rssi"], starts)
    # Reports go out at the end of their interval, so a consumer sees them in that order.
    return out[np.lexsort((out["epc"], out["last_seen_us"]))]


# -- walk-through count ---------------------------------------------------------------------


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
        batches.append(_reads_from_hits(hit, rssi, times, epcs))

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
    reads = _sort_reads(np.concatenate(batches)) if batches else empty_reads()
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


# -- portal ---------------------------------------------------------------------------------

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
        batches.append(_reads_from_hits(hit, rssi, times, epcs[idx], ant))

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
    reads = _sort_reads(np.concatenate(batches)) if batches else empty_reads()
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


# -- live replay ----------------------------------------------------------------------------


class ReplayClock:
    """Maps world time onto the wall clock (see the module docstring's clock model)."""

    def __init__(
        self, world_start_us: int, speed: float = 1.0, *, wait_for_open: bool = False
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.world_start_us = world_start_us
        self.speed = speed
        self.anchor_wall_us: int | None = None
        #: with ``wait_for_open``, the replay (reads and scans) waits for :meth:`open`:
        #: a test opens it once its count session is, however long start-up took
        self._opened: asyncio.Event | None = asyncio.Event() if wait_for_open else None

    def open(self) -> None:
        """Anchor the clock now and release the replay waiting in :meth:`opened`."""
        self.start()
        if self._opened is not None:
            self._opened.set()

    async def opened(self) -> None:
        if self._opened is not None:
            await self._opened.wait()

    def start(self, wall_us: int | None = None) -> None:
        """Anchor the clock now (first call only; later calls keep the first anchor)."""
        if self.anchor_wall_us is None:
            self.anchor_wall_us = wall_us if wall_us is not None else time.time_ns() // 1000

    def _anchor(self) -> int:
        self.start()
        assert self.anchor_wall_us is not None
        return self.anchor_wall_us

    def to_wall(self, world_us: int | IntArray) -> IntArray:
        delta = (np.asarray(world_us, dtype=np.int64) - self.world_start_us) / self.speed
        result: IntArray = self._anchor() + np.round(delta).astype(np.int64)
        return result

    def to_world(self, wall_us: int) -> int:
        return self.world_start_us + int((wall_us - self._anchor()) * self.speed)

    async def sleep_until(self, world_us: int) -> None:
        wall = int(self.to_wall(world_us))
        delay = (wall - time.time_ns() // 1000) / 1_000_000
        if delay > 0:
            await asyncio.sleep(delay)


def replay_batches(
    reads: ReadBatch, clock: ReplayClock, *, from_world_us: int, batch_s: float = 0.1
) -> Iterator[tuple[int, ReadBatch]]:
    """(world release time, batch) pairs: the reads from ``from_world_us`` on, cut into
    batches of ``batch_s`` wall seconds, timestamps rewritten to the wall clock."""
    times = reads["last_seen_us"]
    step = max(1, int(batch_s * 1_000_000 * clock.speed))
    lo = int(np.searchsorted(times, from_world_us, side="left"))
    while lo < reads.size:
        edge = int(times[lo]) - int(times[lo]) % step + step
        hi = int(np.searchsorted(times, edge, side="left"))
        batch = reads[lo:hi].copy()
        batch["first_seen_us"] = clock.to_wall(batch["first_seen_us"])
        batch["last_seen_us"] = clock.to_wall(batch["last_seen_us"])
        yield edge, batch
        lo = hi


def tag_source(
    reads: ReadBatch, clock: ReplayClock, *, batch_s: float = 0.1
) -> Callable[[], AsyncIterator[ReadBatch]]:
    """A per-connection tag source for the LLRP simulator.

    Each call starts an iterator that yields batches when their wall time comes. The
    first call anchors the clock; a later (re)connection picks up at the present and
    never sees reads from while it was away. The iterator ends after the last read.
    """
    reads = reads[np.argsort(reads["last_seen_us"], kind="stable")]

    async def source() -> AsyncIterator[ReadBatch]:
        await clock.opened()
        clock.start()
        now_world = clock.to_world(time.time_ns() // 1000)
        for release, batch in replay_batches(
            reads, clock, from_world_us=now_world, batch_s=batch_s
        ):
            await clock.sleep_until(release)
            yield batch

    return source


async def scan_lines(scans: Sequence[ScriptedScan], clock: ReplayClock) -> AsyncIterator[str]:
    """The scan script as lines released at their wall time (shares the reads' clock)."""
    await clock.opened()
    clock.start()
    for scan in sorted(scans, key=lambda s: s.t_us):
        await clock.sleep_until(scan.t_us)
        yield scan.line


def scan_delays(
    scans: Sequence[ScriptedScan], *, speed: float = 1.0, since_us: int | None = None
) -> list[tuple[float, str]]:
    """The scan script as ``(seconds after the previous line, line)`` pairs.

    ``since_us`` is the world time the first delay counts from (the scenario start, so
    the script lines up with a tag source anchored at the same moment).
    """
    ordered = sorted(scans, key=lambda s: s.t_us)
    prev = since_us if since_us is not None else (ordered[0].t_us if ordered else 0)
    out: list[tuple[float, str]] = []
    for scan in ordered:
        out.append((max(0.0, (scan.t_us - prev) / 1_000_000 / speed), scan.line))
        prev = scan.t_us
    return out


__all__ = [
    "CATALOGUE",
    "DEFAULT_START_US",
    "READ_DTYPE",
    "Asset",
    "HandheldParams",
    "PortalParams",
    "PortalScore",
    "PortalTraffic",
    "Rack",
    "Radio",
    "Replay",
    "ReplayClock",
    "ScriptedScan",
    "TagState",
    "TruePass",
    "WalkThrough",
    "World",
    "aggregate_reports",
    "build_world",
    "portal_traffic",
    "replay_batches",
    "scan_delays",
    "scan_lines",
    "score_locations",
    "score_passes",
    "serpentine_route",
    "tag_source",
    "walk_through",
]


@dataclass(frozen=True)
class Replay:
    """Live sources of one scenario on one shared clock (see the clock model above).

    ``tag_source`` plugs into the LLRP simulator (``LlrpSimulator(tag_source=...)``);
    ``scan_script()`` into the scanner simulator (``ScannerSimulator(script=...)``).
    """

    clock: ReplayClock
    tag_source: Callable[[], AsyncIterator[ReadBatch]]
    scans: tuple[ScriptedScan, ...] = ()

    def scan_script(self) -> AsyncIterator[str]:
        return scan_lines(self.scans, self.clock)


# -- scoring against the truth ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortalScore:
    true_passes: int
    detected: int
    correct: int  # matched a true pass of the same tag, in time, with the right direction
    wrong_direction: int
    missed: int  # true passes with no detected pass
    spurious: int  # detected passes matching no true pass (turn-backs, walk-bys, noise)

    @property
    def direction_accuracy(self) -> float:
        """Correct passes over true passes (a missed pass counts against it)."""
        return self.correct / self.true_passes if self.true_passes else 1.0


def score_passes(
    truth: Sequence[TruePass],
    detected: Sequence[tuple[str, int, str]],
    *,
    tolerance_s: float = 3.0,
) -> PortalScore:
    """Match detected ``(epc, t_us, direction)`` passes to the truth, one to one, by tag
    and time (nearest within ``tolerance_s``)."""
    tol = int(tolerance_s * 1_000_000)
    by_epc: dict[str, list[TruePass]] = {}
    for p in truth:
        by_epc.setdefault(p.epc, []).append(p)
    used: set[tuple[str, int]] = set()
    correct = wrong = spurious = 0
    for epc, t_us, direction in sorted(detected, key=lambda d: d[1]):
        candidates = [
            p
            for p in by_epc.get(epc, ())
            if abs(p.t_us - t_us) <= tol and (epc, p.t_us) not in used
        ]
        if not candidates:
            spurious += 1
            continue
        best = min(candidates, key=lambda p: abs(p.t_us - t_us))
        used.add((epc, best.t_us))
        if best.direction == direction:
            correct += 1
        else:
            wrong += 1
    return PortalScore(
        true_passes=len(truth),
        detected=len(detected),
        correct=correct,
        wrong_direction=wrong,
        missed=len(truth) - len(used),
        spurious=spurious,
    )


def score_locations(truth: dict[str, str], attributed: dict[str, str]) -> tuple[float, int]:
    """(accuracy, count) of attributed EPC → location against the truth, over the EPCs
    attributed (an EPC never read cannot be attributed; report coverage separately)."""
    if not attributed:
        return 0.0, 0
    right = sum(truth.get(epc) == loc for epc, loc in attributed.items())
    return right / len(attributed), len(attributed)
