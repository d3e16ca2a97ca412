"""What the systems of record actually write (see ``tests/engine/real_exports/SOURCES.md``):
Snipe-IT's and Intune's column orders and value formats, the rows Intune lists that are
not company hardware, and the HR directory's Graph-style JSON envelope. Shared by the
invented fleet's exports and the world model's (:mod:`tagsweep.simulators.world_exports`)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from tagsweep.simulators.fleet_exports.fleet import Person


#: Columns of an Intune "All devices" CSV export, in the portal's order.
INTUNE_COLUMNS: Final = (
    "Device name", "Serial number", "Manufacturer", "Model", "Primary user UPN",
    "Last check-in", "Azure AD Device ID", "Wi-Fi MAC", "OS", "Ownership",
)  # fmt: skip

SNIPEIT_COLUMNS: Final = (
    "Asset Tag", "Asset Name", "Serial", "Manufacturer", "Model", "Category", "Status",
    "Checked Out To", "Location", "Purchase Cost", "Last Audit", "Condition",
    "MAC Address", "Updated At",
)  # fmt: skip


def snipeit_status(label: str) -> str:
    """Snipe-IT's UI export writes a checked-out asset's status as its label plus the
    status meta "Deployed", an archived one as label plus "Archived"."""
    if label == "Deployed":
        return "Ready to Deploy Deployed"
    if label == "Archived":
        return "Archived Archived"
    return label


def snipeit_cost(value: float) -> str:
    """A purchase cost as the UI shows it: currency sign and thousands separators."""
    return f"${value:,.2f}"


def snipeit_audit(stamp: str | None) -> str:
    """ "Last Audit" on the UI's 12-hour clock ("2026-06-02 10:14 AM")."""
    if not stamp:
        return ""
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").strftime("%Y-%m-%d %I:%M %p")


def snipeit_user(name: str, email: str) -> str:
    """ "Checked Out To" as the UI writes a user: "First Last (username)"."""
    return f"{name} ({email.split('@', maxsplit=1)[0]})"


def snipeit_footer(writer: Any, total: float) -> None:
    """The totals row the UI's table export appends (a note at freeze, not a record)."""
    row = [""] * len(SNIPEIT_COLUMNS)
    row[SNIPEIT_COLUMNS.index("Location")] = "Total"
    row[SNIPEIT_COLUMNS.index("Purchase Cost")] = snipeit_cost(total)
    writer.writerow(row)


def intune_checkin(when: datetime) -> str:
    """Intune's export writes "Last check-in" with seven fractional digits."""
    return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond:06d}0"


def intune_not_hardware(writer: Any, rng: random.Random, now: datetime, upn: str) -> None:
    """A personal phone and a Windows 365 Cloud PC, enrolled in Intune but not company
    hardware: the engine leaves them out with a note."""
    writer.writerow([
        "iPhone", f"F2L{rng.getrandbits(36):09X}", "Apple", "iPhone 14", upn,
        intune_checkin(now - timedelta(days=1)), f"{rng.getrandbits(128):032x}", "", "iOS",
        "Personal",
    ])  # fmt: skip
    user = upn.split("@", maxsplit=1)[0][:6]
    writer.writerow([
        f"CPC-{user}-{rng.getrandbits(16):04X}", "0000-0002-1234-5678-9012",
        "Microsoft Corporation", "Cloud PC Enterprise 2vCPU/8GB/128GB", upn,
        intune_checkin(now - timedelta(days=1)), f"{rng.getrandbits(128):032x}", "",
        "Windows", "Corporate",
    ])  # fmt: skip


def write_hr_json(path: Path, people: Sequence[Person]) -> Path:
    """The HR export as a Graph-style JSON envelope (leavers disabled and terminated)."""
    path.write_text(
        json.dumps(
            {
                "value": [
                    {
                        "employeeId": p.person_id,
                        "mail": p.email,
                        "displayName": p.name,
                        "accountEnabled": not p.leaver,
                        "employmentStatus": "Terminated" if p.leaver else "Active",
                    }
                    for p in people
                ]
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    return path
