"""Pull a register from NetBox's REST API into an export file.

``--source dcim:netbox-api=https://netbox.example.com/?site=dc1&role=server`` lists
``/api/dcim/devices/`` (every page, in ``id`` order) with the URL's query as NetBox
filters — ``site``, ``role``, ``tenant``, ``tag``, ``status``, ``location``, any filter
the endpoint accepts, repeated for several values. A URL ending in
``/api/dcim/inventory-items/`` or ``/api/dcim/modules/`` lists those instead (optional
register records; they carry their device, not a location).

The export written is one NetBox list answer holding every record exactly as the API
returned it (``{"count", "next": null, "previous": null, "results"}``): freezing copies
and hashes it like any exported file, and the ``netbox`` preset reads it, so a frozen
NetBox snapshot reconciles the same forever.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from tagsweep.netbox.client import PAGE_SIZE, NetBoxClient, api_root

#: Endpoints a register can be pulled from, by the path a URL may name.
ENDPOINTS: Final = {
    "dcim/devices": "dcim/devices/",
    "dcim/inventory-items": "dcim/inventory-items/",
    "dcim/modules": "dcim/modules/",
}
#: Query parameters that steer paging, never passed on as filters.
_PAGING: Final = frozenset({"limit", "offset", "ordering", "brief", "format"})


@dataclass(frozen=True, slots=True)
class PulledExport:
    """An export written from the API: where, how many records, from what."""

    path: Path
    records: int
    pages: int
    endpoint: str
    origin: str  # API endpoint and filters (no token)
    fetched_at: datetime


def split_url(url: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(API root, endpoint, filters) of a ``netbox-api`` source URL."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    endpoint = ENDPOINTS["dcim/devices"]
    for name, value in ENDPOINTS.items():
        if path.endswith("/" + name):
            endpoint = value
    filters = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=False)]
    filters = [(k, v) for k, v in filters if k not in _PAGING]
    return api_root(url), endpoint, filters


def origin_of(root: str, endpoint: str, filters: list[tuple[str, str]]) -> str:
    query = "&".join(f"{k}={v}" for k, v in filters)
    return root + endpoint + (f"?{query}" if query else "")


async def fetch_records(
    url: str, token: str, *, concurrency: int = 4, page_size: int = PAGE_SIZE
) -> tuple[list[dict[str, Any]], int, str, str]:
    """(records, pages, endpoint, origin) of a ``netbox-api`` URL."""
    root, endpoint, filters = split_url(url)
    async with NetBoxClient(root, token, concurrency=concurrency) as nb:
        pages = await nb.pages(endpoint, filters, page_size=page_size)
    seen: dict[int, dict[str, Any]] = {}
    for page in pages:
        for record in page.get("results", []):
            seen.setdefault(int(record["id"]), record)
    return list(seen.values()), len(pages), endpoint, origin_of(root, endpoint, filters)


def pull_export(url: str, token: str, dest: Path, *, concurrency: int = 4) -> PulledExport:
    """Write every record of ``url`` to ``dest`` as one NetBox list answer."""
    fetched_at = datetime.now(UTC).replace(microsecond=0)
    records, pages, endpoint, origin = asyncio.run(
        fetch_records(url, token, concurrency=concurrency)
    )
    envelope = {"count": len(records), "next": None, "previous": None, "results": records}
    dest.write_text(json.dumps(envelope, ensure_ascii=False) + "\n", encoding="utf-8")
    return PulledExport(dest, len(records), pages, endpoint, origin, fetched_at)
