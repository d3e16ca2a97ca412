"""What NetBox's device fields mean to tagsweep: status values, location paths.

One place for the mapping, used by the ``netbox`` export preset, the live count view's
expected register, and the push of accepted corrections back to NetBox.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

#: NetBox device status value → canonical lifecycle (the ``netbox`` preset's status map).
STATUS_TO_LIFECYCLE: Final[dict[str, str]] = {
    "active": "in_use",
    "offline": "in_stock",
    "planned": "planned",
    "staged": "staged",
    "failed": "defective",
    "inventory": "in_stock",
    "decommissioning": "pending_disposal",
}

#: Canonical lifecycle → the NetBox status a correction sets (the first of the map above
#: that means it; ``in_stock`` is NetBox's ``inventory``).
LIFECYCLE_TO_STATUS: Final[dict[str, str]] = {
    "in_use": "active",
    "in_stock": "inventory",
    "planned": "planned",
    "staged": "staged",
    "defective": "failed",
    "in_repair": "failed",
    "pending_disposal": "decommissioning",
    "retired": "decommissioning",
    "disposed": "decommissioning",
}


def _name(value: Any) -> str | None:
    if isinstance(value, Mapping):
        name = value.get("name") or value.get("display")
        return str(name) if name else None
    return str(value) if value else None


def location_path(device: Mapping[str, Any]) -> str | None:
    """``Site/Location/Rack`` of a device as the ``netbox`` preset builds it."""
    parts = [_name(device.get(k)) for k in ("site", "location", "rack")]
    kept = [p for p in parts if p]
    return "/".join(kept) if kept else None


def status_value(device: Mapping[str, Any]) -> str | None:
    status = device.get("status")
    if isinstance(status, Mapping):
        status = status.get("value")
    return str(status) if status else None


def register_row(device: Mapping[str, Any]) -> dict[str, str | None]:
    """A device as a row of an expected register (the live count view's columns)."""
    device_type = device.get("device_type") or {}
    manufacturer = device_type.get("manufacturer") if isinstance(device_type, Mapping) else None
    status = status_value(device)
    position = device.get("position")
    return {
        "asset_tag": device.get("asset_tag") or None,
        "serial": device.get("serial") or None,
        "manufacturer": _name(manufacturer),
        "model": device_type.get("model") if isinstance(device_type, Mapping) else None,
        "location": location_path(device),
        "status": STATUS_TO_LIFECYCLE.get(status, status) if status else None,
        "position": None if position is None else f"U{float(position):g}",
        "hostname": device.get("name") or None,
    }
