"""A small data centre created in a real NetBox through its REST API.

Names follow NetBox's own demo data (netbox-community/netbox-demo-data: sites, racks
"R101", device roles, manufacturers with device types); each test gets its own site and
asset-tag prefix so tests can share one server.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from tagsweep.netbox.client import NetBoxClient


@dataclass
class World:
    site: str
    site_id: int
    location_id: int
    racks: dict[str, int]
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # asset tag → device


async def _one(nb: NetBoxClient, path: str, lookup: dict[str, str], body: dict[str, Any]) -> int:
    found = await nb.get(path, lookup)
    if found["results"]:
        return int(found["results"][0]["id"])
    return int((await nb.send("POST", path, body))["id"])


async def build_world_async(
    url: str, token: str, prefix: str, *, racks: int = 3, devices: int = 6, chunk: int = 500
) -> World:
    """Site ``<prefix>-DC`` with one room, ``racks`` racks and ``devices`` devices
    spread over them (asset tags ``<prefix>-000001``...)."""
    async with NetBoxClient(url, token, concurrency=4) as nb:
        slug = prefix.lower()
        site = await _one(nb, "dcim/sites/", {"slug": slug},
                          {"name": f"{prefix}-DC", "slug": slug, "status": "active"})  # fmt: skip
        location = await _one(
            nb, "dcim/locations/", {"site_id": str(site), "slug": f"{slug}-room-302"},
            {"name": "Room 302", "slug": f"{slug}-room-302", "site": site, "status": "active"},
        )  # fmt: skip
        # a maker of its own: the demo makes "Dell" device types 0U (not rackable)
        maker = await _one(nb, "dcim/manufacturers/", {"slug": "dell-technologies"},
                           {"name": "Dell Technologies", "slug": "dell-technologies"})  # fmt: skip
        dtype = await _one(
            nb, "dcim/device-types/", {"manufacturer_id": str(maker), "model": "PowerEdge R650"},
            {"manufacturer": maker, "model": "PowerEdge R650", "slug": "dell-technologies-r650",
             "u_height": 1},
        )  # fmt: skip
        role = await _one(nb, "dcim/device-roles/", {"slug": "server"},
                          {"name": "Server", "slug": "server", "color": "2196f3"})  # fmt: skip
        rack_ids: dict[str, int] = {}
        for i in range(racks):
            name = f"R{101 + i}"
            rack_ids[name] = await _one(
                nb, "dcim/racks/", {"site_id": str(site), "name": name},
                {"name": name, "site": site, "location": location, "status": "active",
                 "u_height": 48},
            )  # fmt: skip
        world = World(f"{prefix}-DC", site, location, rack_ids)
        names = list(rack_ids)
        bodies = []
        for n in range(1, devices + 1):
            rack = names[(n - 1) % len(names)]
            bodies.append({
                "name": f"{slug}-srv-{n:05d}", "device_type": dtype, "role": role, "site": site,
                "location": location, "rack": rack_ids[rack],
                "position": 1 + (n - 1) // len(names) % 48, "face": "front", "status": "active",
                "serial": f"{prefix}SN{n:07d}", "asset_tag": f"{prefix}-{n:06d}",
            })  # fmt: skip
        # more devices than rack units: the rest are unracked, in the room
        for body in bodies[len(names) * 48 :]:
            body.update(rack=None, position=None, face="")
        parts = [bodies[i : i + chunk] for i in range(0, len(bodies), chunk)]
        for created in await asyncio.gather(*(nb.send("POST", "dcim/devices/", p) for p in parts)):
            for device in created:
                world.devices[device["asset_tag"]] = device
        return world


def build_world(url: str, token: str, prefix: str, **kwargs: Any) -> World:
    return asyncio.run(build_world_async(url, token, prefix, **kwargs))


async def _get_all(url: str, token: str, path: str, params: list[tuple[str, str]]) -> Any:
    async with NetBoxClient(url, token) as nb:
        return await nb.all(path, params)


def get_all(url: str, token: str, path: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = asyncio.run(_get_all(url, token, path, params))
    return result
