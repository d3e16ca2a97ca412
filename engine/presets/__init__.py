"""Column presets for the exports of common sources.

A preset says which export column holds each canonical field, as a list of candidate
headers matched case-insensitively with spaces, dots and underscores ignored, because
the same product exports different headers from its UI, its API and its report
builder (ServiceNow ``serial_number`` vs "Serial number"; Intune ``serialNumber`` vs
"Serial number"). A candidate starting with ``=`` is a constant (Jamf only manages
Apple hardware). A tuple of candidates joined by ``/`` builds a location path from
several columns (Jamf's Building and Room, NetBox's Site, Location and Rack).

Per-source column overrides in ``[engine.sources.<name>.columns]`` win over a preset.

Besides columns, a preset says how its system writes values (decimal comma, day-first
dates, the encoding a German Excel saves with) and which of its records are not
company hardware (Intune's personal devices and Windows 365 Cloud PCs). Where each
system's conventions come from is cited next to its preset; the README lists, per
preset, what it reads and how each quirk is handled.

The package holds what a preset is and how it finds columns (:mod:`.preset`), the
presets per kind of system (:mod:`.registers`: Snipe-IT, NetBox, ServiceNow;
:mod:`.devices`: Intune, Jamf; :mod:`.sap`: SAP FI-AA; :mod:`.generic`: generic,
fixed_asset, procurement, hr), and here the table of all presets by name, the source
names that say a role, and the status labels every source may use.
"""

from __future__ import annotations

from typing import Final

from tagsweep.config.engine import LIFECYCLE
from tagsweep.engine.presets.devices import INTUNE, JAMF, PLACEHOLDER_MANUFACTURERS
from tagsweep.engine.presets.generic import FIXED_ASSET, GENERIC, HR, PROCUREMENT
from tagsweep.engine.presets.preset import (
    Candidate,
    Preset,
    conventions,
    header_key,
    resolve_columns,
)
from tagsweep.engine.presets.registers import NETBOX, SERVICENOW, SNIPEIT
from tagsweep.engine.presets.sap import SAP_FIAA

__all__ = [
    "COMMON_STATUS_MAP", "FIXED_ASSET", "GENERIC", "HR", "INTUNE", "JAMF", "NETBOX",
    "PLACEHOLDER_MANUFACTURERS", "PRESETS", "PROCUREMENT", "ROLE_NAMES", "SAP_FIAA",
    "SERVICENOW", "SNIPEIT", "Candidate", "Preset", "conventions", "header_key",
    "resolve_columns",
]  # fmt: skip

PRESETS: Final[dict[str, Preset]] = {
    p.name: p
    for p in (
        SNIPEIT, NETBOX, SERVICENOW, INTUNE, JAMF, GENERIC, FIXED_ASSET, SAP_FIAA, PROCUREMENT, HR,
    )
}  # fmt: skip

#: Source names that say a generic export's role ("mdm=devices.csv").
ROLE_NAMES: Final[dict[str, str]] = {
    "itam": "itam", "register": "itam", "cmdb": "itam", "dcim": "itam",
    "mdm": "mdm", "uem": "mdm", "discovery": "mdm",
    "fixed_asset": "fixed_asset", "fixed_assets": "fixed_asset", "far": "fixed_asset",
    "erp": "fixed_asset", "finance": "fixed_asset",
    "procurement": "procurement", "purchasing": "procurement",
    "hr": "hr",
}  # fmt: skip

#: Status labels every source may use, on top of its preset's (case-insensitive).
COMMON_STATUS_MAP: Final[dict[str, str]] = {s: s for s in LIFECYCLE} | {
    "in stock": "in_stock",
    "in use": "in_use",
    "in repair": "in_repair",
    "in transit": "in_transit",
    "pending disposal": "pending_disposal",
    "active": "in_use",
    "disposed": "retired",
    "decommissioned": "retired",
    "lost": "missing",
    "on order": "planned",
}
