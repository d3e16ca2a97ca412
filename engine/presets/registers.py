"""Presets of the asset registers a count is reconciled against: Snipe-IT, NetBox
(devices) and ServiceNow (alm_hardware), each from its UI's export and its API.

Where each system's headers and status labels come from is cited next to its preset.
"""

from __future__ import annotations

from typing import Final

from tagsweep.engine.presets.preset import Preset
from tagsweep.netbox.fields import STATUS_TO_LIFECYCLE as NETBOX_STATUS

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
