"""Presets: exports as Snipe-IT, NetBox, ServiceNow, Intune, Jamf and a generic CSV
write them, mapped into one register with canonical statuses and manufacturers."""

from __future__ import annotations

import json
from pathlib import Path

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
        {
            "manufacturer_aliases": {"American Power Conversion": "APC"},
            # a generic export is a second register only when the config says so
            "sources": {"generic": {"role": "itam"}},
        }
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


#: Snipe-IT's REST API (GET /api/v1/hardware): an envelope with "rows", related records
#: as objects, dates as {datetime, formatted}, custom fields by label, nulls where unset.
SNIPEIT_API = {
    "total": 2,
    "rows": [
        {
            "id": 1, "name": "lt-11", "asset_tag": "AST-000011", "serial": "5CG1111ABC",
            "model": {"id": 3, "name": "EliteBook 840 G10"}, "model_number": "840G10",
            "status_label": {"id": 2, "name": "Deployed", "status_type": "deployable",
                             "status_meta": "deployed"},
            "category": {"id": 2, "name": "Laptops"},
            "manufacturer": {"id": 1, "name": "HP Inc."},
            "company": None,
            "location": {"id": 4, "name": "DC1/Room 101"},
            "rtd_location": {"id": 4, "name": "DC1/Room 101"},
            "assigned_to": {"id": 5, "username": "ana", "name": "Ana Ng",
                            "email": "ana.ng@example.com", "type": "user"},
            "purchase_cost": "1,250.00",
            "last_audit_date": {"datetime": "2026-10-01 10:00:00",
                                "formatted": "2026-10-01 10:00 AM"},
            "updated_at": {"datetime": "2026-10-02 09:00:00", "formatted": "x"},
            "custom_fields": {"MAC Address": {"field": "_snipeit_mac_address_1",
                                              "value": "00:11:22:33:44:55",
                                              "field_format": "MAC"}},
        },
        {
            "id": 2, "name": "lt-12", "asset_tag": "AST-000012", "serial": "5CG2222ABC",
            "model": {"id": 3, "name": "EliteBook 840 G10"},
            "status_label": {"id": 1, "name": "Ready to Deploy", "status_type": "deployable",
                             "status_meta": "deployable"},
            "category": {"id": 2, "name": "Laptops"},
            "manufacturer": {"id": 1, "name": "HP Inc."},
            "company": None, "location": None, "rtd_location": None, "assigned_to": None,
            "purchase_cost": None, "last_audit_date": None,
            "updated_at": {"datetime": "2026-10-02 09:00:00", "formatted": "x"},
            "custom_fields": [],
        },
    ],
}  # fmt: skip

#: NetBox's REST API (GET /api/dcim/devices/): "results", nested related objects.
NETBOX_API = {
    "count": 1, "next": None, "previous": None,
    "results": [
        {
            "id": 7, "name": "sw-21", "serial": "FOC2233X0CD", "asset_tag": "AST-000021",
            "device_type": {"id": 1, "model": "C9300-48P",
                            "manufacturer": {"id": 2, "name": "Cisco Systems"}},
            "role": {"id": 3, "name": "Network"},
            "tenant": None,
            "site": {"id": 1, "name": "DC1"}, "location": {"id": 2, "name": "Room 101"},
            "rack": {"id": 9, "name": "Rack A04"},
            "status": {"value": "active", "label": "Active"},
            "last_updated": "2026-11-01T10:00:00Z",
        }
    ],
}  # fmt: skip


def test_api_json_exports_of_snipeit_and_netbox(tmp_path: Path) -> None:
    (tmp_path / "snipeit.json").write_text(json.dumps(SNIPEIT_API), encoding="utf-8")
    (tmp_path / "netbox.json").write_text(json.dumps(NETBOX_API), encoding="utf-8")
    settings = EngineSection()
    freeze(
        [
            SourceSpec("snipeit", tmp_path / "snipeit.json"),
            SourceSpec("netbox", tmp_path / "netbox.json"),
        ],
        tmp_path / "snap",
        settings,
    )
    run = reconcile(tmp_path / "snap", [], settings, tmp_path / "run")
    rows = pq.read_table(run.out_dir / "register.parquet").to_pylist()
    register = {str(r["asset_key"]): r for r in rows}
    laptop = register["AST-000011"]
    assert (laptop["manufacturer"], laptop["model"], laptop["category"]) == (
        "HP", "EliteBook 840 G10", "Laptops",
    )  # fmt: skip
    assert (laptop["status"], laptop["status_label"]) == ("in_use", "Deployed")
    assert laptop["location"] == "DC1/Room 101"
    assert laptop["custodian"] == "ana.ng@example.com"
    assert laptop["value"] == 1250.0
    assert laptop["mac"] == "001122334455"
    assert str(laptop["last_seen"]).startswith("2026-10-01 10:00:00")
    spare = register["AST-000012"]
    assert (spare["status"], spare["location"], spare["custodian"]) == ("in_stock", None, None)
    switch = register["AST-000021"]
    assert switch["location"] == "DC1/Room 101/Rack A04"
    assert (switch["manufacturer"], switch["model"]) == ("Cisco", "C9300-48P")
    assert (switch["status"], switch["category"]) == ("in_use", "Network")


def test_directory_exports_stand_in_for_hr(tmp_path: Path) -> None:
    """Leavers from an Entra ID (Microsoft Graph) user export and an Okta one."""
    graph = {"value": [
        {"id": "0f8f", "displayName": "Ana Ng", "mail": "ana.ng@example.com",
         "userPrincipalName": "ana.ng@example.com", "accountEnabled": False},
        {"id": "1a2b", "displayName": "Cy Park", "mail": "cy.park@example.com",
         "userPrincipalName": "cy.park@example.com", "accountEnabled": True},
        {"id": "3c4d", "displayName": "Di Roe", "mail": "di.roe@example.com",
         "accountEnabled": True, "employeeLeaveDateTime": "2026-01-31T00:00:00Z"},
    ]}  # fmt: skip
    okta = [
        {"id": "00u1", "status": "DEPROVISIONED",
         "profile": {"login": "ben.o@example.com", "email": "ben.o@example.com",
                     "firstName": "Ben", "lastName": "O"}},
        {"id": "00u2", "status": "ACTIVE",
         "profile": {"login": "eve@example.com", "email": "eve@example.com"}},
    ]  # fmt: skip
    (tmp_path / "entra.json").write_text(json.dumps(graph), encoding="utf-8")
    (tmp_path / "okta.json").write_text(json.dumps(okta), encoding="utf-8")
    custodians = ["ana.ng@example.com", "cy.park@example.com", "di.roe@example.com",
                  "ben.o@example.com", "eve@example.com"]  # fmt: skip
    rows = "".join(
        f"AST-00001{i},SN{i}X,Dell,Latitude,DC1/Room 1,Deployed,{c}\n"
        for i, c in enumerate(custodians)
    )
    (tmp_path / "itam.csv").write_text(
        "Asset Tag,Serial,Manufacturer,Model,Location,Status,Checked Out To\n" + rows,
        encoding="utf-8",
    )
    settings = EngineSection()
    freeze(
        [
            SourceSpec("itam", tmp_path / "itam.csv", "snipeit"),
            SourceSpec("entra", tmp_path / "entra.json", "hr"),
            SourceSpec("okta", tmp_path / "okta.json", "hr"),
        ],
        tmp_path / "snap",
        settings,
    )
    run = reconcile(tmp_path / "snap", [], settings, tmp_path / "run")
    log = pq.read_table(run.out_dir / "variances.parquet").to_pylist()
    left = {v["asset_tag"] for v in log if v["variance_type"] == "custodian_mismatch"}
    assert left == {"AST-000010", "AST-000012", "AST-000013"}  # Ana, Di and Ben left
