"""Presets for exports of no particular product, by role: a generic asset register,
a fixed-asset ledger, a procurement list, and HR (or a directory standing in for it:
Entra ID, Okta).
"""

from __future__ import annotations

from typing import Final

from tagsweep.engine.presets.preset import Preset

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
