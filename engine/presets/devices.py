"""Presets of device management (MDM): Intune and Jamf Pro, from their consoles'
exports and their APIs, with the records that are not company hardware (personal
devices, Cloud PCs, virtual machines) and the BIOS placeholders such systems report
as a manufacturer.
"""

from __future__ import annotations

from typing import Final

from tagsweep.engine.presets.preset import Preset

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
