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
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from tagsweep.config.engine import LIFECYCLE
from tagsweep.netbox.fields import STATUS_TO_LIFECYCLE as NETBOX_STATUS

Candidate = str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Preset:
    """How one kind of export maps onto canonical fields."""

    name: str
    role: str
    fields: dict[str, list[Candidate]]
    #: at least one of these canonical fields must be mapped, or the export is unusable
    required_any: tuple[str, ...] = ("asset_tag", "serial")
    #: source-specific status labels (case-insensitive) → canonical lifecycle
    status_map: dict[str, str] = field(default_factory=dict)
    #: numbers written with a decimal comma ("1.899,00"), dates day first ("03.04.2026")
    decimal_comma: bool = False
    day_first: bool = False
    #: records that are not company hardware: (field, case-insensitive full-match
    #: regular expression over the raw value, reason reported)
    exclude: tuple[tuple[str, str, str], ...] = ()


def header_key(name: str) -> str:
    """Comparison key of a column header: lower-case, without spaces, dots, dashes, '_'."""
    return re.sub(r"[\s._\-]+", "", name.strip().lower())


# Snipe-IT: the asset list's CSV export (bootstrap-table, the columns shown in the UI:
# "Asset Tag", "Serial", "Model", "Status", "Checked Out To", "Location", "Purchase
# Cost", "Last Audit" written as "2026-06-02 10:14 AM"), the custom asset report
# (Reports > Custom Asset Report), and the REST API's JSON. The UI writes the status as
# label plus status meta ("Ready to Deploy Deployed" for a checked-out asset) and the
# custom report as "Label (deployed)"; an asset is Deployed when checked out, Pending,
# Ready to Deploy (deployable), Undeployable or Archived by its label's type
# (https://github.com/snipe/snipe-it/wiki/Assets; status label types deployable /
# undeployable / pending / archived in the API, /api/v1/statuslabels).
SNIPEIT: Final = Preset(
    "snipeit",
    "itam",
    {
        # the UI's CSV export first, then the API's JSON (hardware list, flattened)
        "asset_tag": ["Asset Tag", "asset_tag"],
        "serial": ["Serial", "serial"],
        "manufacturer": ["Manufacturer", "manufacturer", "manufacturer.name"],
        "model": ["Model", "Model Name", "asset_model", "model.name"],
        "category": ["Category", "category.name"],
        "location": [
            "Location",
            "Default Location",
            "rtd_location",
            "location.name",
            "rtd_location.name",
        ],
        "status": ["Status", "Status Label", "status_label", "status_label.name"],
        "condition": ["Condition"],
        "custodian": [
            "Checked Out To",
            "Assigned To",
            "Email",
            "assigned_to",
            "assigned_to.email",
            "assigned_to.username",
            "assigned_to.name",
        ],
        "value": ["Current Value", "Purchase Cost", "purchase_cost"],
        "mac": [
            "MAC Address",
            "_snipeit_mac_address_1",
            "custom_fields.MAC Address.value",
        ],
        "hostname": ["Asset Name", "Name"],
        "last_seen": ["Last Audit", "last_audit_date", "last_audit_date.datetime"],
        "updated_at": ["Updated At", "updated_at", "updated_at.datetime"],
        "record_id": ["ID", "id"],
    },
    status_map={
        "ready to deploy": "in_stock",
        "undeployable": "defective",
        "deployable": "in_stock",
        "deployed": "in_use",
        "pending": "staged",
        "archived": "retired",
        "broken": "defective",
        "out for repair": "in_repair",
        "out for diagnostics": "in_repair",
        "lost/stolen": "stolen",
        "lost": "missing",
        "stolen": "stolen",
    },
)

# NetBox devices: the UI's CSV export of the device list ("ID", "Name", "Status",
# "Tenant", "Site", "Location", "Rack", "Position", "Role", "Manufacturer", "Type",
# "Serial number", "Asset tag") and the REST API (/api/dcim/devices/). A device needs
# neither serial nor asset tag in NetBox, so its NetBox ID is its identifier of last
# resort; statuses offline / active / planned / staged / failed / inventory /
# decommissioning (DeviceStatusChoices; the same enum in nautobot's client docs,
# github.com/jqueuniet/nautobot-go WritableDeviceWithConfigContextStatusEnum.md).
NETBOX: Final = Preset(
    "netbox",
    "itam",
    {
        # the UI's CSV export first, then the REST API's JSON (flattened)
        "asset_tag": ["Asset tag", "asset_tag"],
        "serial": ["Serial number", "Serial", "serial"],
        "manufacturer": [
            "Manufacturer",
            "device_type.manufacturer",
            "manufacturer",
            "device_type.manufacturer.name",
        ],
        "model": ["Type", "Device type", "device_type", "device_type.model"],
        "category": ["Role", "Device role", "role", "device_role", "role.name", "device_role.name"],
        "location": [
            ("Site", "Location", "Rack", "Position"),
            ("site", "location", "rack", "position"),
            ("site.name", "location.name", "rack.name", "position"),
        ],
        "status": ["Status", "status", "status.value"],
        "custodian": ["Tenant", "Contact", "tenant.name"],
        "hostname": ["Name", "name"],
        "updated_at": ["Last updated", "last_updated"],
        # the NetBox ID; an export without it names a device by site + name (unique)
        "record_id": ["ID", "id", ("Site", "Name"), ("site.name", "name")],
    },
    status_map=dict(NETBOX_STATUS),
)

# ServiceNow alm_hardware: the list export (display values: "Display name", "Asset tag",
# "Model category", "State", "Substate", "Assigned to", "Cost" per the platform's Assets
# documentation, ServiceNowDocs platform-administration/ia-assets.md) and the Table API
# (install_status codes, substatus values, sys_id). The model's display value carries
# the manufacturer ("Dell Inc. Latitude 7440"); the engine strips it before comparing.
SERVICENOW: Final = Preset(
    "servicenow",
    "itam",
    {
        "asset_tag": ["Asset tag", "asset_tag"],
        "serial": ["Serial number", "serial_number"],
        "manufacturer": ["Manufacturer", "model.manufacturer", "manufacturer"],
        "model": ["Model", "model", "model.display_name"],
        "category": ["Model category", "model_category"],
        "location": ["Location", "location"],
        "status": [
            ("State", "Substate"),
            ("State", "Substatus"),
            ("install_status", "substatus"),
        ],
        "custodian": ["Assigned to", "assigned_to", "assigned_to.email"],
        "value": ["Cost", "cost"],
        "hostname": ["Configuration Item", "ci", "Display name", "display_name"],
        "last_seen": ["Last discovered", "ci.last_discovered"],
        "updated_at": ["Updated", "sys_updated_on"],
        "record_id": ["Sys ID", "sys_id"],
    },
    # State and substatus are joined with '/' by the preset ("In stock/Available").
    status_map={
        "in use": "in_use",
        "1": "in_use",
        "in stock": "in_stock",
        "6": "in_stock",
        "in stock/available": "in_stock",
        "in stock/reserved": "staged",
        "in stock/pending install": "staged",
        "in stock/defective": "defective",
        "in stock/pending repair": "in_repair",
        "in stock/pending disposal": "pending_disposal",
        "in stock/pending transfer": "in_transit",
        "on order": "planned",
        "2": "planned",
        "in maintenance": "in_repair",
        "3": "in_repair",
        "retired": "retired",
        "7": "retired",
        "retired/disposed": "retired",
        "retired/sold": "retired",
        "retired/donated": "retired",
        "retired/vendor credit": "retired",
        "retired/stolen": "stolen",
        "retired/lost": "missing",
        "missing": "missing",
        "8": "missing",
        "missing/stolen": "stolen",
        "missing/lost": "missing",
        "in transit": "in_transit",
        "9": "in_transit",
        "in use/in use": "in_use",
        "in maintenance/in maintenance": "in_repair",
        "retired/absent": "missing",
    },
)

#: BIOS placeholders some machines report as their manufacturer (Intune, SCCM, Jamf):
#: never a manufacturer, never part of a key.
PLACEHOLDER_MANUFACTURERS: Final = (
    "to be filled by o.e.m.", "to be filled by oem", "system manufacturer", "default string",
    "oem", "o.e.m.", "unknown", "not specified", "none", "n/a", "0",
)  # fmt: skip

# Intune: the "Export" of Devices > All devices (columns "Device ID", "Device name",
# "Serial number", "Manufacturer", "Model", "Ownership", "Last check-in" written with
# seven fractional digits, "Primary user UPN", "Wi-Fi MAC", "Azure AD Device ID") and
# Microsoft Graph managedDevice (serialNumber, managedDeviceOwnerType, lastSyncDateTime).
# Personal (BYOD) devices and Windows 365 Cloud PCs ("Cloud PC Enterprise ..." models,
# "CPC-" device names) are enrolled but are not company hardware.
INTUNE: Final = Preset(
    "intune",
    "mdm",
    {
        "serial": ["Serial number", "serialNumber"],
        "manufacturer": ["Manufacturer", "manufacturer"],
        "model": ["Model", "model"],
        "custodian": [
            "Primary user UPN",
            "Primary user email address",
            "userPrincipalName",
            "emailAddress",
        ],
        "hardware_uuid": ["Azure AD Device ID", "azureADDeviceId", "Device ID", "id"],
        "mac": ["Wi-Fi MAC", "wiFiMacAddress", "Ethernet MAC", "ethernetMacAddress"],
        "hostname": ["Device name", "deviceName"],
        "last_seen": ["Last check-in", "lastSyncDateTime"],
        "ownership": ["Ownership", "managedDeviceOwnerType", "ownerType"],
        "record_id": ["Device ID", "id"],
    },
    required_any=("serial",),
    exclude=(
        ("ownership", "personal", "personal device (Ownership: Personal), not company hardware"),
        ("model", "cloud ?pc.*", "Windows 365 Cloud PC, not hardware"),
        ("hostname", "cpc-.*", "Windows 365 Cloud PC, not hardware"),
        (
            "model",
            "virtual machine|vmware.*|virtualbox|kvm|qemu.*|standard pc.*|hvm domu",
            "virtual machine, not hardware",
        ),
    ),
)

# Jamf Pro: an advanced computer search exported as CSV ("Computer Name", "Serial
# Number", "Model", "UDID", "Last Check-in", "Managed", "Asset Tag", "Building", "Room")
# and the Pro API's computers-inventory JSON. A Mac that was wiped and enrolled again
# leaves its old record (unmanaged, last check-in long ago) next to the new one: the
# engine keeps the most recent record per serial and reports the stale one.
JAMF: Final = Preset(
    "jamf",
    "mdm",
    {
        "asset_tag": ["Asset Tag", "general.assetTag"],
        "serial": ["Serial Number", "hardware.serialNumber", "general.serialNumber"],
        "manufacturer": ["=Apple"],
        "model": ["Model", "hardware.model"],
        "location": [("Building", "Room"), ("location.building", "location.room")],
        "custodian": ["Email Address", "location.emailAddress", "Username", "location.username"],
        "hardware_uuid": ["UDID", "udid", "general.udid"],
        "mac": ["MAC Address", "hardware.macAddress"],
        "hostname": ["Computer Name", "general.name"],
        "last_seen": ["Last Check-in", "general.lastContactTime", "Last Inventory Update"],
        "record_id": ["Jamf Pro Computer ID", "JSS Computer ID", "ID", "id"],
    },
    required_any=("serial",),
)

GENERIC: Final = Preset(
    "generic",
    "itam",
    {
        "asset_tag": ["asset_tag", "Asset Tag", "Asset ID", "Tag"],
        "serial": ["serial", "Serial", "Serial Number", "serial_number"],
        "manufacturer": ["manufacturer", "Manufacturer", "Make", "Vendor"],
        "model": ["model", "Model"],
        "category": ["category", "Category", "Type"],
        "location": ["location", "Location", "Room"],
        "status": ["status", "Status", "Lifecycle Status", "State"],
        "condition": ["condition", "Condition"],
        "custodian": ["custodian", "Custodian", "User", "Assigned User", "Assigned To", "Owner"],
        "value": ["value", "Value", "Book Value", "Net Book Value", "Cost", "Purchase Cost"],
        "hardware_uuid": ["hardware_uuid", "UUID", "Hardware UUID"],
        "mac": ["mac", "MAC", "MAC Address"],
        "hostname": ["hostname", "Hostname", "Device Name"],
        "last_seen": ["last_seen", "Last Seen", "Last Audit"],
        "updated_at": ["updated_at", "Updated At", "Last Updated"],
        "record_id": ["record_id", "Record ID", "id", "ID"],
        "ownership": ["ownership", "Ownership"],
        "retired_on": ["retired_on", "Retired On", "Disposal Date", "Deactivation Date"],
    },
    status_map={
        "active": "in_use",
        "deployed": "in_use",
        "in service": "in_use",
        "available": "in_stock",
        "spare": "in_stock",
        "disposed": "retired",
        "written off": "retired",
        "sold": "retired",
        "scrapped": "retired",
        "capitalized": "in_use",
        "fully depreciated": "in_use",
        "broken": "defective",
        "repair": "in_repair",
        "lost": "missing",
    },
)

FIXED_ASSET: Final = Preset(
    "fixed_asset",
    "fixed_asset",
    {
        **GENERIC.fields,
        "asset_tag": ["asset_tag", "Asset Tag", "Asset Number", "Tag Number"],
        "status": ["Disposal Status", "status", "Status", "Asset Status"],
        "value": ["Net Book Value", "Book Value", "value", "Cost", "Acquisition Cost"],
    },
    status_map=GENERIC.status_map,
)

# SAP FI-AA: an asset list (AS03 master data, S_ALR_87011990 / AR01 asset balances, the
# Asset Explorer) saved from the ALV grid by a German Excel: ';'-separated,
# windows-1252, "1.899,00" and "17.04.2023", English or German headers. "Inventory
# number" (Inventarnummer, ANLA-INVNR) is the asset tag, "Deactivation on"
# (Deaktivierung am, ANLA-DEAKT) set means the asset is retired, "Asset" and "Subnumber"
# (Anlage, Unternummer) are SAP's own record id, "Acquis.val." the acquisition value.
# An inventory number "can be used as an alternative to the asset number" (SAP Business
# One SDK help, Items.InventoryNumber).
SAP_FIAA: Final = Preset(
    "sap_fiaa",
    "fixed_asset",
    {
        "asset_tag": [
            "Inventory number",
            "Inventory No.",
            "Inventarnummer",
            "Inventarnr.",
            "Inv.-Nr.",
            "INVNR",
        ],
        "serial": ["Serial number", "Serial no.", "Serialnummer", "Serialnr.", "SERNR"],
        "manufacturer": ["Manufacturer", "Hersteller"],
        "category": ["Asset Class", "Anlagenklasse", "ANLKL"],
        # the asset description is free text ("Notebook Dell Latitude 7440"), and SAP's
        # location and person codes are not an ITAM's: none is compared unless mapped
        # in [engine.sources.<name>.columns]
        "value": [
            "Acquis.val.",
            "Acquisition value",
            "APC",
            "AnschWert",
            "Anschaffungswert",
            "Anschaffungs- und Herstellungskosten",
            "AHK",
            "Acq. value",
            "Book val.",
            "Buchwert",
        ],
        "record_id": [
            ("Asset", "Subnumber"),
            ("Asset", "SNo."),
            ("Anlage", "Unternummer"),
            ("Anlage", "UNr"),
            ("ANLN1", "ANLN2"),
        ],
        "retired_on": [
            "Deactivation on",
            "Deactivation date",
            "Deaktivierung am",
            "Deaktivierungsdatum",
            "Deakt.Dat.",
            "Deact.date",
            "DEAKT",
        ],
        "updated_at": ["Changed on", "Geändert am"],
    },
    required_any=("asset_tag", "serial", "record_id"),
    status_map={"deactivated": "retired"},
    decimal_comma=True,
    day_first=True,
)

PROCUREMENT: Final = Preset(
    "procurement",
    "procurement",
    {
        **GENERIC.fields,
        "value": ["Unit Price", "Cost", "value", "Amount"],
    },
    status_map=GENERIC.status_map,
)

HR: Final = Preset(
    "hr",
    "hr",
    {
        # HR system exports first; then directory exports standing in for HR: Microsoft
        # Graph / Entra ID users (accountEnabled, employeeLeaveDateTime) and Okta users
        # (status DEPROVISIONED, profile.*)
        "person_id": [
            "Employee ID",
            "employee_id",
            "person_id",
            "ID",
            "profile.employeeNumber",
        ],
        "email": [
            "Email",
            "email",
            "Work Email",
            "mail",
            "userPrincipalName",
            "profile.email",
            "profile.login",
        ],
        "name": ["Display Name", "Name", "name", "Full Name", "displayName", "profile.displayName"],
        "employment_status": [
            "Status",
            "Employment Status",
            "employment_status",
            "accountEnabled",
            "Account enabled",
        ],
        "end_date": [
            "Termination Date",
            "End Date",
            "end_date",
            "Leaving Date",
            "employeeLeaveDateTime",
        ],
    },
    required_any=("email", "person_id", "name"),
)

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


def conventions(
    preset: Preset, decimal_comma: bool | None, day_first: bool | None
) -> tuple[bool, bool]:
    """(decimal comma, day-first dates) of a source: the configured choice, else the
    preset's."""
    return (
        preset.decimal_comma if decimal_comma is None else decimal_comma,
        preset.day_first if day_first is None else day_first,
    )


def resolve_columns(
    preset: Preset, headers: Iterable[str], overrides: dict[str, str]
) -> dict[str, list[str] | str]:
    """Map each canonical field to the export column(s) holding it, or a ``=constant``.

    Returns field → header, field → [headers to join with '/'], or field → '=value'.
    Fields no candidate matches are absent.
    """
    by_key = {header_key(h): h for h in headers}
    out: dict[str, list[str] | str] = {}
    for name, candidates in preset.fields.items():
        for cand in candidates:
            if isinstance(cand, tuple):
                # the first column must be there; the others refine it when present
                found = [by_key[header_key(c)] for c in cand if header_key(c) in by_key]
                if header_key(cand[0]) in by_key:
                    out[name] = found if len(found) > 1 else found[0]
                    break
            elif cand.startswith("="):
                out[name] = cand
                break
            elif header_key(cand) in by_key:
                out[name] = by_key[header_key(cand)]
                break
    for name, column in overrides.items():
        out[name] = by_key.get(header_key(column), column)
    return out
