"""Freeze: any delimiter, encoding and BOM; XLSX, JSON, Parquet; bad rows with lines."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.config.engine import EngineSection
from tagsweep.engine.freeze import FreezeError, SourceSpec, freeze, load_snapshot

SETTINGS = EngineSection()


def _frozen(snapshot_dir: Path, name: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = pq.read_table(snapshot_dir / f"{name}.parquet").to_pylist()
    return rows


def test_csv_with_semicolons_latin1_and_bad_rows(tmp_path: Path) -> None:
    export = tmp_path / "assets.csv"
    export.write_bytes(
        "Asset Tag;Serial;Manufacturer;Checked Out To\n"
        "AST-000001;5CG1234ABC;HP;Jürgen Müller\n"
        "AST-000002;ABC;Dell;x;unexpected\n"
        "AST-000003;PF2ABCDE;LENOVO;Zoë Ng\n".encode("latin-1")
    )
    snapshot = freeze([SourceSpec("itam", export, "snipeit")], tmp_path / "snap", SETTINGS)
    rows = _frozen(tmp_path / "snap", "itam")
    assert [r["Asset Tag"] for r in rows] == ["AST-000001", "AST-000003"]
    assert rows[0]["Checked Out To"] == "Jürgen Müller"
    assert [r["_line"] for r in rows] == [2, 4]
    assert [(b.file, b.line) for b in snapshot.bad_rows] == [("assets.csv", 3)]
    source = snapshot.source("itam")
    assert source.encoding == "windows-1252"  # latin-1 text is windows-1252 text
    assert source.rows == 2
    assert source.bad_rows == 1
    assert (tmp_path / "snap" / source.export_copy).read_bytes() == export.read_bytes()


def test_lines_stay_exact_after_quoted_values_that_span_lines(tmp_path: Path) -> None:
    """A note field with line breaks (quoted, as Snipe-IT exports it) must not shift
    the line numbers reported for the rows after it."""
    export = tmp_path / "assets.csv"
    export.write_text(
        "Asset Tag,Serial,Notes\n"  # line 1
        'AST-000001,SN1,"moved to\nroom 2\non Monday"\n'  # lines 2-4
        "AST-000002,SN2,ok\n"  # line 5
        "AST-000003,SN3,too,many,fields\n"  # line 6: bad
        "\n"  # line 7: blank
        'AST-000004,SN4,"two\nlines"\n'  # lines 8-9
        "AST-000005,SN5,last\n",  # line 10
        encoding="utf-8",
    )
    snapshot = freeze([SourceSpec("itam", export, "snipeit")], tmp_path / "snap", SETTINGS)
    rows = _frozen(tmp_path / "snap", "itam")
    assert [(r["Asset Tag"], r["_line"]) for r in rows] == [
        ("AST-000001", 2),
        ("AST-000002", 5),
        ("AST-000004", 8),
        ("AST-000005", 10),
    ]
    assert rows[0]["Notes"] == "moved to\nroom 2\non Monday"
    assert [(b.file, b.line) for b in snapshot.bad_rows] == [("assets.csv", 6)]


def test_csv_with_utf8_bom_and_utf16(tmp_path: Path) -> None:
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfAsset Tag,Serial\r\nAST-000001,SN1\r\n")
    utf16 = tmp_path / "utf16.csv"
    utf16.write_text("Asset Tag\tSerial\nAST-000002\tSN2\n", encoding="utf-16")
    freeze(
        [SourceSpec("itam", bom, "generic"), SourceSpec("far", utf16, "generic")],
        tmp_path / "snap",
        SETTINGS,
    )
    assert _frozen(tmp_path / "snap", "itam")[0]["Asset Tag"] == "AST-000001"
    assert _frozen(tmp_path / "snap", "far")[0]["Serial"] == "SN2"


def test_xlsx_header_below_a_title_and_row_numbers(tmp_path: Path) -> None:
    export = tmp_path / "far.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append([])
    sheet.append(["Asset Number", "Serial Number", "Net Book Value"])
    sheet.append(["AST-000001", "SN1", 1200.5])
    sheet.append(["AST-000002", "SN2", 900, None, "stray"])
    sheet.append(["AST-000003", "SN3", 100])
    book.save(export)
    snapshot = freeze([SourceSpec("finance", export, "fixed_asset")], tmp_path / "s", SETTINGS)
    rows = _frozen(tmp_path / "s", "finance")
    assert [(r["Asset Number"], r["_line"]) for r in rows] == [("AST-000001", 3), ("AST-000003", 5)]
    assert rows[0]["Net Book Value"] == "1200.5"
    assert [(b.line, b.reason) for b in snapshot.bad_rows] == [
        (4, "values beyond the header columns")
    ]


def test_json_envelope_with_display_values_and_json_lines(tmp_path: Path) -> None:
    servicenow = tmp_path / "alm_hardware.json"
    servicenow.write_text(
        json.dumps(
            {
                "result": [
                    {
                        "asset_tag": "AST-000001",
                        "serial_number": "CND1234XYZ",
                        "install_status": {"display_value": "In stock", "value": "6"},
                        "substatus": {"display_value": "Available", "value": "available"},
                        "model": {"display_value": "HP EliteBook 840", "link": "https://x"},
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    lines = tmp_path / "jamf.jsonl"
    lines.write_text(
        '{"general": {"name": "mac-1", "assetTag": "AST-000002"}, '
        '"hardware": {"serialNumber": "C02ABC123DEF"}}\n'
        "{not json\n"
        '{"general": {"name": "mac-2"}, "hardware": {"serialNumber": "C02ABC123DEG"}}\n',
        encoding="utf-8",
    )
    snapshot = freeze(
        [SourceSpec("itam", servicenow, "servicenow"), SourceSpec("mdm", lines, "jamf")],
        tmp_path / "snap",
        SETTINGS,
    )
    itam = _frozen(tmp_path / "snap", "itam")[0]
    assert itam["install_status"] == "In stock"
    assert itam["model"] == "HP EliteBook 840"
    assert snapshot.source("itam").columns["status"] == ["install_status", "substatus"]
    mdm = _frozen(tmp_path / "snap", "mdm")
    assert [r["hardware.serialNumber"] for r in mdm] == ["C02ABC123DEF", "C02ABC123DEG"]
    assert [(b.file, b.line) for b in snapshot.bad_rows] == [("jamf.jsonl", 2)]
    assert snapshot.source("mdm").columns["manufacturer"] == "=Apple"


def test_parquet_export_is_frozen_as_text(tmp_path: Path) -> None:
    export = tmp_path / "netbox.parquet"
    pq.write_table(
        pa.table({"asset_tag": ["AST-000001"], "serial": ["SN1"], "u_height": [2]}), export
    )
    freeze([SourceSpec("dcim", export, "netbox")], tmp_path / "snap", SETTINGS)
    assert _frozen(tmp_path / "snap", "dcim") == [
        {"asset_tag": "AST-000001", "serial": "SN1", "u_height": "2", "_line": 1}
    ]


def test_missing_required_column_stops_with_an_actionable_error(tmp_path: Path) -> None:
    export = tmp_path / "devices.csv"
    export.write_text("Device name,OS\nLT-1,Windows\n", encoding="utf-8")
    with pytest.raises(FreezeError, match=r"none of the columns for serial.*Device name"):
        freeze([SourceSpec("mdm", export, "intune")], tmp_path / "snap", SETTINGS)
    result = CliRunner().invoke(
        app,
        ["reconcile", "freeze", "--source", f"mdm:intune={export}", "--out", str(tmp_path / "s2")],
    )
    assert result.exit_code == 1
    assert "engine.sources.mdm.columns" in result.output


def test_configured_column_mapping_and_unknown_column(tmp_path: Path) -> None:
    export = tmp_path / "cmdb.csv"
    export.write_text("Inventory No,SN\nINV-1,SN1\n", encoding="utf-8")
    settings = EngineSection.model_validate(
        {"sources": {"cmdb": {"columns": {"asset_tag": "Inventory No", "serial": "SN"}}}}
    )
    snapshot = freeze([SourceSpec("cmdb", export)], tmp_path / "snap", settings)
    assert snapshot.source("cmdb").columns["asset_tag"] == "Inventory No"
    bad = EngineSection.model_validate({"sources": {"cmdb": {"columns": {"serial": "Serial#"}}}})
    with pytest.raises(FreezeError, match=r"Serial#"):
        freeze([SourceSpec("cmdb", export)], tmp_path / "snap2", bad)


def test_spread_warning_and_immutability(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("asset_tag\nAST-000001\n", encoding="utf-8")
    b = tmp_path / "b.csv"
    b.write_text("asset_tag\nAST-000001\n", encoding="utf-8")
    snapshot = freeze(
        [
            SourceSpec("itam", a, exported_at=datetime(2026, 11, 20, tzinfo=UTC)),
            SourceSpec("far", b, exported_at=datetime(2026, 11, 23, tzinfo=UTC)),
        ],
        tmp_path / "snap",
        SETTINGS,
    )
    assert len(snapshot.warnings) == 1
    assert "72.0 h apart" in snapshot.warnings[0]
    assert load_snapshot(tmp_path / "snap").source("far").rows == 1
    with pytest.raises(FreezeError, match="not empty"):
        freeze([SourceSpec("itam", a)], tmp_path / "snap", SETTINGS)
    frozen = tmp_path / "snap" / "itam.parquet"
    os.chmod(frozen, 0o644)
    pq.write_table(pa.table({"asset_tag": ["AST-666666"], "_line": [2]}), frozen)
    with pytest.raises(FreezeError, match="must not change"):
        load_snapshot(tmp_path / "snap")
