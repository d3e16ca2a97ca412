"""The variance review table of the seed method (000), reproduced through the CLI.

Seed, Step 3 (asset, physical count result, system record result, variance type):

* AST-102: Serial: SN123 / User: J. Doe; Serial: SN123 / User: M. Smith; Custodian Mismatch
* AST-105: Not Found; Status: Active / Loc: Room 302; Missing Asset
* NEW-001: Serial: SN999 / Loc: Room 101; No Record Found; Unrecorded Asset
* AST-110: Serial: SN456 / Loc: Room 205; Serial: SN456 / Loc: Room 404; Location Mismatch
* AST-115: Status: Damaged (Broken Screen); Status: Excellent; Status/Condition Mismatch
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.domain import VARIANCE_LOG_COLUMNS

SEED_TABLE = {
    "AST-102": (
        "Serial: SN123 / User: J. Doe",
        "Serial: SN123 / User: M. Smith",
        "Custodian Mismatch",
    ),
    "AST-105": ("Not Found", "Status: Active / Loc: Room 302", "Missing Asset"),
    "NEW-001": ("Serial: SN999 / Loc: Room 101", "No Record Found", "Unrecorded Asset"),
    "AST-110": (
        "Serial: SN456 / Loc: Room 205",
        "Serial: SN456 / Loc: Room 404",
        "Location Mismatch",
    ),
    "AST-115": (
        "Status: Damaged (Broken Screen)",
        "Status: Excellent",
        "Status/Condition Mismatch",
    ),
}

REGISTER = """\
Asset Tag,Serial,Manufacturer,Model,Location,Status,Condition,Assigned To
AST-102,SN123,Dell Inc.,Latitude 5440,Room 101,Active,Good,M. Smith
AST-105,SN200,Dell Inc.,Latitude 5440,Room 302,Active,Good,A. Jones
AST-110,SN456,HP,EliteBook 840,Room 404,Active,Good,B. Brown
AST-115,SN789,LENOVO,ThinkPad T14,Room 205,Active,Excellent,C. White
"""

COUNT_SHEET = """\
location,asset_tag,serial,custodian,condition
Room 101,AST-102,SN123,J. Doe,Good
Room 101,NEW-001,SN999,,
Room 205,AST-110,SN456,B. Brown,Good
Room 205,AST-115,SN789,C. White,Damaged (Broken Screen)
"""


def _reconcile(tmp_path: Path, out: str) -> Path:
    runner = CliRunner()
    snap = tmp_path / "snap"
    if not snap.exists():
        (tmp_path / "register.csv").write_text(REGISTER, encoding="utf-8")
        (tmp_path / "sheet.csv").write_text(COUNT_SHEET, encoding="utf-8")
        result = runner.invoke(
            app,
            [
                "reconcile",
                "freeze",
                "--source",
                f"itam:generic={tmp_path / 'register.csv'}",
                "--out",
                str(snap),
            ],
        )
        assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "reconcile",
            "run",
            "--snapshot",
            str(snap),
            "--count",
            str(tmp_path / "sheet.csv"),
            "--out",
            str(tmp_path / out),
            "--as-of",
            "2026-11-24",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Custodian Mismatch" in result.output
    return tmp_path / out


def test_seed_variance_review_table_is_reproduced_exactly(tmp_path: Path) -> None:
    run = _reconcile(tmp_path, "run")
    report = (run / "report.md").read_text(encoding="utf-8")
    rows: dict[str, tuple[str, str, str]] = {}
    in_table = False
    for line in report.splitlines():
        if line.startswith("| Asset ID | Physical Count Result"):
            in_table = True
            continue
        if in_table and line.startswith("|---"):
            continue
        if in_table and line.startswith("| "):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0]] = (cells[1], cells[2], cells[3])
        elif in_table:
            break
    assert rows == SEED_TABLE

    with (run / "variances.csv").open(encoding="utf-8", newline="") as fh:
        log = list(csv.DictReader(fh))
    assert list(log[0]) == list(VARIANCE_LOG_COLUMNS)
    assert {(r["asset_tag"], r["variance_type"]) for r in log} == {
        ("AST-102", "custodian_mismatch"),
        ("AST-105", "missing"),
        ("NEW-001", "unrecorded"),
        ("AST-110", "location_mismatch"),
        ("AST-115", "status_condition_mismatch"),
    }
    table = pq.read_table(run / "variances.parquet")
    assert table.column_names == list(VARIANCE_LOG_COLUMNS)
    assert str(table.schema.field("sla_due").type) == "date32[day]"
    # 2026-11-24 is a Tuesday: five business days later is Tuesday 2026-12-01
    assert set(table.column("sla_due").to_pylist()) == {date(2026, 12, 1)}
    jsonl = [json.loads(x) for x in (run / "variances.jsonl").read_text().splitlines()]
    assert [j["variance_id"] for j in jsonl] == table.column("variance_id").to_pylist()
    missing = next(j for j in jsonl if j["variance_type"] == "missing")
    assert json.loads(missing["evidence"])["status"] == "in_use"


def test_rerun_is_byte_identical(tmp_path: Path) -> None:
    first = _reconcile(tmp_path, "run1")
    second = _reconcile(tmp_path, "run2")
    names = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    assert "manifest.json" in names
    assert "corrections/itam.csv" in names
    # timings.json says how long this run took: named by the manifest, never hashed
    names.remove("timings.json")
    assert "timings.json" not in json.loads((first / "manifest.json").read_text())["outputs"]
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
