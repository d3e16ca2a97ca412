"""Shared, module-cached scenarios: generating a world takes a moment, checking it is cheap."""

from __future__ import annotations

import functools

from tagsweep.simulators.world import (
    PortalTraffic,
    WalkThrough,
    World,
    build_world,
    portal_traffic,
    walk_through,
)


@functools.cache
def small_world(seed: int = 11) -> World:
    """Two rooms of 2 x 3 racks with 40 assets each (480 assets)."""
    return build_world(
        seed, rooms=2, rows_per_room=2, racks_per_row=3, assets_per_rack=40, untagged_fraction=0.03
    )


@functools.cache
def small_walk(seed: int = 11) -> WalkThrough:
    return walk_through(small_world(seed), seed)


@functools.cache
def small_portal(seed: int = 5, trips: int = 120) -> PortalTraffic:
    return portal_traffic(seed, trips=trips, items=150)
