"""Presets: exports as Snipe-IT, NetBox, ServiceNow, Intune, Jamf and a generic CSV
write them, mapped into one register with canonical statuses and manufacturers."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from tagsweep.config.engine import EngineSection
from tagsweep.engine.freeze import SourceSpec, freeze
from tagsweep.engine.presets import PRESETS, resolve_columns
from tagsweep.engine.run import reconcile

SNIPEIT = """\
Asset Tag,Asset Name,Serial,Model,Category,Status,Checked Out To,Location,Manufacturer,\
Purchase Cost,Last Audit
AST-000001,lt-1,5CG1234ABC,EliteBook 840 G10,Laptops,Deployed,Ana Ng,DC1/Room 101,HP Inc.,\
"1,250.00",2026-10-01 10:00:00
AST-000002,srv-2,7XK9P2Q,PowerEdge R650,Servers,Ready to Deploy,,DC1/Room 102,Dell Inc.,\
9800.00,2026-10-02 10:00:00
"""

NETBOX = """\
Name,Status,Tenant,Site,Location,Rack,Role,Manufacturer,Type,Serial number,Asset tag
sw-1,active,,DC1,Room 101,Rack A04,Network,Cisco Systems,C9300-48P,FOC2233X0AB,AST-000003
pdu-1,decommissioning,,DC1,Room 102,,Power,APC,AP8941,5A1234E56789,AST-000004
"""

SERVICENOW = {
    "result": [
        {
            "asset_tag": "AST-000005",
            "serial_number": "CND5678XYZ",
            "model": {"display_value": "ProBook 450 G9"},
            "model_category": {"display_value": "Computer"},
            "install_status": {"display_value": "In stock", "value": "6"},
            "substatus": {"display_value": "Pending disposal", "value": "pending_disposal"},
            "assigned_to": {"display_value": ""},
            "location": {"display_value": "DC1/Room 103"},
            "cost": "899.00",
        }
    ]
}

INTUNE = """\
Device name,Serial number,Manufacturer,Model,Primary user UPN,Last check-in,Azure AD Device ID
LT-1,5CG1234ABC,HP,HP EliteBook 840 G10,ana.ng@example.com,11/20/2026 08:15,0f8fad5b-d9cb-469f
"""

JAMF = """\
Computer Name,Serial Number,Model,Asset Tag,Building,Room,Email Address,Last Check-in,UDID
mac-1,C02XK1ABJGH5,MacBook Pro (14-inch),AST-000006,HQ,Room 2,ben.owens@example.com,\
2026-11-21 09:00:00,1A2B
"""

GENERIC = """\
asset_tag,serial,manufacturer,model,location,status,custodian,value
AST-000007,PF2ABCDE,LENOVO,ThinkPad T14,DC1/Room 104,active,Chloe Patel,1400
"""


@pytest.fixture(scope="module")
def register(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    base = tmp_path_factory.mktemp("presets")
    (base / "snipeit.csv").write_text(SNIPEIT, encoding="utf-8")
    (base / "netbox.csv").write_text(NETBOX, encoding="utf-8")
    (base / "servicenow.json").write_text(json.dumps(SERVICENOW), encoding="utf-8")
    (base / "intune.csv").write_text(INTUNE, encoding="utf-8")
    (base / "jamf.csv").write_text(JAMF, encoding="utf-8")
    (base / "generic.csv").write_text(GENERIC, encoding="utf-8")
    settings = EngineSection.model_validate(
        {"manufacturer_aliases": {"American Power Conversion": "APC"}}
    )
    freeze(
        [
            SourceSpec("snipeit", base / "snipeit.csv"),
            SourceSpec("netbox", base / "netbox.csv"),
            SourceSpec("servicenow", base / "servicenow.json"),
            SourceSpec("intune", base / "intune.csv"),
            SourceSpec("jamf", base / "jamf.csv"),
            SourceSpec("generic", base / "generic.csv"),
        ],
        base / "snap",
        settings,
    )
    run = reconcile(base / "snap", [], settings, base / "run", debug_dir=base / "debug")
    rows = pq.read_table(run.out_dir / "register.parquet").to_pylist()
    return {str(r["asset_key"]): r for r in rows}


def test_snipeit(register: dict[str, dict[str, object]]) -> None:
    laptop = register["AST-000001"]
    assert laptop["manufacturer"] == "HP"
    assert laptop["status"] == "in_use"
    assert laptop["status_label"] == "Deployed"
    assert laptop["value"] == 1250.0
    assert laptop["custodian"] == "Ana Ng"
    assert register["AST-000002"]["status"] == "in_stock"
    assert register["AST-000002"]["manufacturer"] == "Dell"
    # the Intune record of the same laptop is linked by serial and wins hostname
    assert laptop["hostname"] == "LT-1"
    assert laptop["hostname_source"] == "intune"
    assert "intune" in str(laptop["sources"])


def test_netbox_builds_the_location_path(register: dict[str, dict[str, object]]) -> None:
    switch = register["AST-000003"]
    assert switch["location"] == "DC1/Room 101/Rack A04"
    assert switch["status"] == "in_use"
    assert switch["manufacturer"] == "Cisco"
    assert switch["category"] == "Network"
    assert register["AST-000004"]["status"] == "pending_disposal"
    assert register["AST-000004"]["location"] == "DC1/Room 102"


def test_servicenow_state_and_substatus(register: dict[str, dict[str, object]]) -> None:
    asset = register["AST-000005"]
    assert asset["status"] == "pending_disposal"
    assert asset["status_label"] == "In stock/Pending disposal"
    assert asset["model"] == "ProBook 450 G9"
    assert asset["value"] == 899.0


def test_jamf_is_apple_and_not_a_register_source(register: dict[str, dict[str, object]]) -> None:
    # Jamf is discovery (role mdm): its Mac is not in any register source
    assert "AST-000006" not in register


def test_generic(register: dict[str, dict[str, object]]) -> None:
    asset = register["AST-000007"]
    assert asset["manufacturer"] == "Lenovo"
    assert asset["status"] == "in_use"
    assert asset["custodian"] == "Chloe Patel"


def test_every_preset_maps_its_own_headers() -> None:
    headers = {
        "snipeit": ["Asset Tag", "Serial", "Status", "Checked Out To"],
        "netbox": ["Asset tag", "Serial number", "Site", "Rack"],
        "servicenow": ["asset_tag", "serial_number", "install_status", "substatus"],
        "intune": ["serialNumber", "userPrincipalName", "lastSyncDateTime"],
        "jamf": ["Serial Number", "Building", "Room"],
        "generic": ["Asset ID", "Serial Number", "Status"],
        "hr": ["Employee ID", "mail", "displayName", "Termination Date"],
    }
    for name, cols in headers.items():
        mapped = resolve_columns(PRESETS[name], cols, {})
        assert any(f in mapped for f in PRESETS[name].required_any), name
    assert resolve_columns(PRESETS["jamf"], headers["jamf"], {})["location"] == ["Building", "Room"]
    assert resolve_columns(PRESETS["hr"], headers["hr"], {})["end_date"] == "Termination Date"
