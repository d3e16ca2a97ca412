"""The simulated site: rooms side by side, rows of racks facing their aisles, and the
assets in the racks with their labels (:func:`build_world`), in metres, seeded and
deterministic. Also the world's fixed start time and array type names."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from tagsweep.epc import giai96_for_asset_tag
from tagsweep.simulators.world.catalogue import CATALOGUE, LETTERS

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
            letter = LETTERS[row] if row < len(LETTERS) else f"R{row}"
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
