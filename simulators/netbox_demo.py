"""``tagsweep demo --netbox URL``: the demo's register lives in a NetBox.

The demo's ITAM export (with its injected variances) is loaded into the NetBox as
devices — sites, rooms as locations, racks, manufacturers, device types and roles made
as needed, every device tagged ``tagsweep-demo`` — then frozen back from the API, so the
count is reconciled against what NetBox says, and the run is pushed back (custom
fields, journal entries, audit trails). Meant for a test NetBox: it adds objects.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tagsweep.engine.freeze import load_snapshot
from tagsweep.engine.presets import PRESETS
from tagsweep.netbox.client import NetBoxClient, NetBoxError
from tagsweep.netbox.fields import LIFECYCLE_TO_STATUS

DEMO_TAG = "tagsweep-demo"


@dataclass(frozen=True, slots=True)
class Loaded:
    devices: int
    refused: list[str]  # "AST-000123: why"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:100] or "x"


def _value(row: Mapping[str, Any], columns: Mapping[str, Any], name: str) -> str | None:
    col = columns.get(name)
    if isinstance(col, list):
        parts = [str(row[c]) for c in col if row.get(c)]
        return "/".join(parts) or None
    value = row.get(col) if isinstance(col, str) else None
    return str(value).strip() or None if value is not None else None


class _Objects:
    """Find-or-create of the NetBox objects the devices refer to (cached by key)."""

    def __init__(self, nb: NetBoxClient) -> None:
        self.nb = nb
        self.cache: dict[tuple[str, str], int] = {}

    async def get(self, path: str, key: str, lookup: list[tuple[str, str]], body: Any) -> int:
        if (path, key) in self.cache:
            return self.cache[(path, key)]
        found = await self.nb.get(path, lookup)
        if found["results"]:
            ident = int(found["results"][0]["id"])
        else:
            ident = int((await self.nb.send("POST", path, body))["id"])
        self.cache[(path, key)] = ident
        return ident


async def _placement(objs: _Objects, location: str | None, fallback: str) -> dict[str, Any]:
    parts = [p for p in (location or fallback).split("/") if p]
    site_name = parts[0]
    site = await objs.get("dcim/sites/", site_name, [("slug", _slug(site_name))],
                          {"name": site_name, "slug": _slug(site_name)})  # fmt: skip
    out: dict[str, Any] = {"site": site}
    if len(parts) > 1:
        room = parts[1]
        slug = _slug(f"{site_name}-{room}")
        out["location"] = await objs.get(
            "dcim/locations/", slug, [("slug", slug)],
            {"name": room, "slug": slug, "site": site},
        )  # fmt: skip
    if len(parts) > 2:
        rack = parts[2]
        where = [("site_id", str(site)), ("name", rack)]
        if "location" in out:
            where.append(("location_id", str(out["location"])))
        out["rack"] = await objs.get(
            "dcim/racks/", "/".join(parts[:3]), where,
            {"name": rack, "site": site, "location": out.get("location")},
        )  # fmt: skip
    return out


async def _load(url: str, token: str, snapshot: Path, source: str) -> Loaded:
    frozen = load_snapshot(snapshot).source(source)
    rows = pq.read_table(snapshot / frozen.file).to_pylist()
    status_map = PRESETS[frozen.preset].status_map
    refused: list[str] = []
    created = 0
    async with NetBoxClient(url, token, concurrency=4) as nb:
        objs = _Objects(nb)
        tag = await objs.get("extras/tags/", DEMO_TAG, [("slug", DEMO_TAG)],
                             {"name": DEMO_TAG, "slug": DEMO_TAG})  # fmt: skip
        fallback = next(
            (loc.split("/")[0] for r in rows if (loc := _value(r, frozen.columns, "location"))),
            "DC1",
        )
        bodies: list[tuple[str, dict[str, Any]]] = []
        for row in rows:
            asset_tag = _value(row, frozen.columns, "asset_tag")
            maker = _value(row, frozen.columns, "manufacturer") or "Unknown"
            model = _value(row, frozen.columns, "model") or "Unknown"
            role = _value(row, frozen.columns, "category") or "Asset"
            label = (_value(row, frozen.columns, "status") or "").lower()
            status = LIFECYCLE_TO_STATUS.get(status_map.get(label, label), "active")
            maker_id = await objs.get("dcim/manufacturers/", maker, [("slug", _slug(maker))],
                                      {"name": maker, "slug": _slug(maker)})  # fmt: skip
            type_slug = _slug(f"{maker}-{model}")
            dtype = await objs.get(
                "dcim/device-types/", type_slug, [("slug", type_slug)],
                {"manufacturer": maker_id, "model": model, "slug": type_slug, "u_height": 0},
            )  # fmt: skip
            role_body = {"name": role, "slug": _slug(role), "color": "9e9e9e"}
            role_id = await objs.get("dcim/device-roles/", role, [("slug", _slug(role))], role_body)
            place = await _placement(objs, _value(row, frozen.columns, "location"), fallback)
            body = {
                "device_type": dtype, "role": role_id, "status": status, "tags": [tag],
                "serial": _value(row, frozen.columns, "serial") or "",
                "asset_tag": asset_tag, **place,
            }  # fmt: skip
            bodies.append((asset_tag or "?", body))
        for i in range(0, len(bodies), 200):
            part = bodies[i : i + 200]
            try:
                await nb.send("POST", "dcim/devices/", [b for _, b in part])
                created += len(part)
            except NetBoxError:
                for key, body in part:  # find the records NetBox refuses (duplicate tags)
                    try:
                        await nb.send("POST", "dcim/devices/", body)
                        created += 1
                    except NetBoxError as exc:
                        refused.append(f"{key}: {exc}")
    return Loaded(created, refused)


def load_into_netbox(url: str, token: str, snapshot: Path, source: str = "itam") -> Loaded:
    """Create the devices of ``source`` in the snapshot in NetBox."""
    return asyncio.run(_load(url, token, snapshot, source))
