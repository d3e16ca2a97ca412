"""The demo's scenario: its options and fixed names (site, storage zone, the portal's
asset numbers), the world's shape for a number of assets and racks (:func:`layout`),
and the truth of what the count can physically find (:func:`found_truth`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypedDict

from tagsweep.epc import giai96_for_asset_tag
from tagsweep.simulators.world import PortalTraffic, WalkThrough

#: Replay speed of the default demo: 460 s of world time (20 racks swept one by one)
#: take ~38 s of wall clock, which keeps the whole demo under a minute on two cores.
DEFAULT_SPEED: Final = 12.0
SITE: Final = "DC1"
STORAGE_ZONE: Final = "DC1/Storage 1"
PORTAL_FIRST_ASSET: Final = 500_000


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the demo counts and how fast; the defaults are the README's ``make demo``."""

    out: Path | None = None  # default: a new folder under the system temp directory
    assets: int = 2000
    racks: int = 20
    rooms: int = 2
    speed: float = DEFAULT_SPEED
    seed: int = 1
    per_type: int | None = None  # injected variances of each type (default: by size)
    portal_items: int | None = None  # default: one per door trip
    #: share of assets whose RFID label never answers (default: 1 %, or enough for the
    #: paper spot check to find a few look-alike serials in a small world)
    dead_labels: float | None = None
    mqtt_probe: str | None = "127.0.0.1:1883"  # publish there if a broker answers
    metrics: bool = True
    #: a (test) NetBox to hold the register: loaded, frozen from its API, pushed back
    netbox: str | None = None
    netbox_token: str | None = field(default=None, repr=False)


class Layout(TypedDict):
    rooms: int
    rows_per_room: int
    racks_per_row: int
    assets_per_rack: int


def layout(assets: int, racks: int, rooms: int) -> Layout:
    """``build_world`` arguments for ``assets`` items in ``racks`` racks over ``rooms``."""
    if rooms < 1 or racks < rooms or racks % rooms:
        raise ValueError(f"racks ({racks}) must be a positive multiple of rooms ({rooms})")
    per_room = racks // rooms
    rows = 2 if per_room >= 4 and per_room % 2 == 0 else 1
    if assets < racks:
        raise ValueError(f"assets ({assets}) must be at least the number of racks ({racks})")
    return {
        "rooms": rooms,
        "rows_per_room": rows,
        "racks_per_row": per_room // rows,
        "assets_per_rack": assets // racks,
    }


def found_truth(walk: WalkThrough, traffic: PortalTraffic) -> set[str]:
    """Asset tags the count can physically find: a label the handheld or the portal read,
    or the barcode of an unlabelled asset scanned at its rack."""
    by_epc = {a.epc: a.asset_tag for a in walk.world.assets if a.epc}
    tags = {by_epc[e] for e in walk.read_epcs if e in by_epc}
    tags |= {s.line for s in walk.scans if s.kind == "asset"}
    portal_epcs = {e.decode() for e in set(traffic.reads["epc"].tolist())}
    tags |= {t for t in storage_tags(traffic) if giai96_for_asset_tag(t) in portal_epcs}
    return tags


def storage_tags(traffic: PortalTraffic) -> list[str]:
    """Asset tags of the laptops that live behind the portal door."""
    return [f"AST-{PORTAL_FIRST_ASSET + i:06d}" for i in range(len(traffic.final_side))]
