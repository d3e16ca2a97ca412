"""A bad value never drops a record: the field is emptied and reported in
``bad_values.csv``; only a record without any identifier is kept out; UI footers are
skipped with a note; a UTF-8 file with one windows-1252 line is read line by line and
the line is named; a generic source's role is never guessed as a second register."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tagsweep.config.engine import EngineSection
from tagsweep.engine.freeze import FreezeError, SourceSpec, freeze
from tagsweep.engine.run import reconcile

SETTINGS = EngineSection()


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_bad_values_empty_the_field_and_keep_the_record(tmp_path: Path) -> None:
    # Snipe-IT's list export writes "Last Audit" with a 12-hour clock and costs with a
    # currency sign; the UI appends a totals row (github.com/snipe/snipe-it/wiki/Assets)
    export = tmp_path / "assets.csv"
    export.write_bytes(
        (
            "Asset Tag,Serial,Model,Status,Purchase Cost,Last Audit\r\n"
            "AST-1,SN00001,Latitude 7440,Ready to Deploy Deployed,"
            '"€1,899.00",2026-06-02 10:14 AM\r\n'
            "AST-2,SN00002,Latitude 7440,Ready to Deploy,twelve,yesterday\r\n"
            'AST-3,SN00003,Latitude 7440,Archived,"(1,234.00)",0001-01-01 00:00:00\r\n'
            ",,,,Total: €3.133,00,\r\n"
        ).encode("windows-1252")
    )
    snapshot = freeze([SourceSpec("itam", export, "snipeit")], tmp_path / "snap", SETTINGS)
    assert snapshot.source("itam").encoding == "windows-1252"
    assert [(r.line, r.reason.split(":")[0]) for r in snapshot.skipped_rows] == [
        (5, "footer/totals row")
    ]
    assert [(v.line, v.column, v.value, v.reason) for v in snapshot.bad_values] == [
        (3, "Purchase Cost", "twelve", "not a number"),
        (3, "Last Audit", "yesterday", "not a date"),
    ]
    run = reconcile(tmp_path / "snap", [], SETTINGS, tmp_path / "run")
    register = {
        r["asset_key"]: r for r in pq.read_table(run.out_dir / "register.parquet").to_pylist()
    }
    assert sorted(register) == ["AST-1", "AST-2", "AST-3"]  # no record lost
    assert register["AST-1"]["value"] == 1899.0
    assert register["AST-1"]["status"] == "in_use"  # "… Deployed": checked out
    assert register["AST-2"]["value"] is None
    assert register["AST-3"]["value"] == -1234.0
    assert register["AST-3"]["status"] == "retired"
    assert _csv(run.out_dir / "bad_values.csv") == [
        {
            "source": "itam",
            "file": "assets.csv",
            "line": "3",
            "column": "Last Audit",
            "value": "yesterday",
            "reason": "not a date",
        },
        {
            "source": "itam",
            "file": "assets.csv",
            "line": "3",
            "column": "Purchase Cost",
            "value": "twelve",
            "reason": "not a number",
        },
    ]
    assert run.manifest["counts"]["bad_values"] == 2
    assert run.manifest["counts"]["bad_rows"] == 0


def test_only_a_record_without_any_identifier_is_kept_out(tmp_path: Path) -> None:
    # NetBox devices need neither serial nor asset tag: the NetBox ID keys them
    export = tmp_path / "netbox.csv"
    export.write_text(
        "ID,Name,Status,Site,Location,Rack,Position,Role,Manufacturer,Type,Serial number,"
        "Asset tag\n"
        "17,pp-r12-01,Active,DC1,Hall A,R12,40,Patch Panel,Panduit,CP48BLY,,\n"
        "18,sw-r12-01,Active,DC1,Hall A,R12,38,Access Switch,Cisco,C9300-48P,FOC2233X0AB,\n"
        ",,Active,DC1,,,,,,,,\n",
        encoding="utf-8",
    )
    freeze([SourceSpec("netbox", export)], tmp_path / "snap", SETTINGS)
    run = reconcile(tmp_path / "snap", [], SETTINGS, tmp_path / "run")
    keys = {r["asset_key"] for r in pq.read_table(run.out_dir / "register.parquet").to_pylist()}
    assert keys == {"ID:netbox|17", "SN:cisco|FOC2233X0AB"}
    bad = _csv(run.out_dir / "bad_rows.csv")
    assert [(b["line"], b["reason"]) for b in bad] == [
        ("4", "no usable identifier: no asset tag, serial, UUID, MAC or record id")
    ]


def test_one_windows_1252_line_in_a_utf8_file_is_named_not_mojibake(tmp_path: Path) -> None:
    export = tmp_path / "assets.csv"
    export.write_bytes(
        b"Asset Tag,Serial,Checked Out To\n"
        + "AST-1,SN1,Zoë Ng\n".encode()
        + "AST-2,SN2,Jürgen Müller\n".encode("windows-1252")
        + "AST-3,SN3,Łukasz Żak\n".encode()
    )
    snapshot = freeze([SourceSpec("itam", export, "snipeit")], tmp_path / "snap", SETTINGS)
    rows = pq.read_table(tmp_path / "snap" / "itam.parquet").to_pylist()
    assert [r["Checked Out To"] for r in rows] == ["Zoë Ng", "Jürgen Müller", "Łukasz Żak"]
    assert snapshot.source("itam").encoding == "utf-8 (1 line(s) windows-1252)"
    assert len(snapshot.warnings) == 1
    assert "line(s) 3 are not" in snapshot.warnings[0]
    assert "mojibake" in snapshot.warnings[0]


def test_a_generic_source_is_never_silently_a_second_register(tmp_path: Path) -> None:
    itam = tmp_path / "itam.csv"
    itam.write_text("Asset Tag,Serial\nAST-1,SN1\n", encoding="utf-8")
    devices = tmp_path / "devices.csv"
    devices.write_text("Serial,Device Name\nSN1,pc-1\n", encoding="utf-8")
    with pytest.raises(FreezeError, match=r"\[engine.sources.devices\] role"):
        freeze(
            [SourceSpec("itam", itam, "snipeit"), SourceSpec("devices", devices)],
            tmp_path / "s1",
            SETTINGS,
        )
    # named after its role, or given one in the config, it is that role
    snap = freeze(
        [SourceSpec("itam", itam, "snipeit"), SourceSpec("mdm", devices)], tmp_path / "s2", SETTINGS
    )
    assert snap.source("mdm").role == "mdm"
    configured = EngineSection.model_validate({"sources": {"devices": {"role": "mdm"}}})
    snap = freeze(
        [SourceSpec("itam", itam, "snipeit"), SourceSpec("devices", devices)],
        tmp_path / "s3",
        configured,
    )
    assert snap.source("devices").role == "mdm"


def test_xlsx_serial_dates_custom_report_statuses_and_configured_conventions(
    tmp_path: Path,
) -> None:
    import openpyxl

    # Snipe-IT's custom asset report writes "Label (deployed)"; a workbook keeps a date
    # cell that is not formatted as a date as Excel's serial day number
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Asset Tag", "Serial", "Status", "Last Audit", "Purchase Cost"])
    sheet.append(["AST-1", "SN00001", "Ready to Deploy (deployed)", 46174, "1.899"])
    sheet.append(["AST-2", "SN00002", "Broken (undeployable)", "03/04/2026", "12,50"])
    book.save(tmp_path / "report.xlsx")
    settings = EngineSection.model_validate(
        {"sources": {"itam": {"preset": "snipeit", "day_first": True, "decimal_comma": True}}}
    )
    freeze([SourceSpec("itam", tmp_path / "report.xlsx")], tmp_path / "snap", settings)
    run = reconcile(tmp_path / "snap", [], settings, tmp_path / "run")
    register = {
        r["asset_key"]: r for r in pq.read_table(run.out_dir / "register.parquet").to_pylist()
    }
    assert register["AST-1"]["status"] == "in_use"
    assert register["AST-2"]["status"] == "defective"
    assert str(register["AST-1"]["last_seen"])[:10] == "2026-06-01"  # serial 46174
    assert str(register["AST-2"]["last_seen"])[:10] == "2026-04-03"  # day first
    assert register["AST-1"]["value"] == 1899.0  # decimal comma: '.' groups thousands
    assert register["AST-2"]["value"] == 12.5
    assert run.manifest["counts"]["bad_values"] == 0
