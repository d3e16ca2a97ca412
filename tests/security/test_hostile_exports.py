"""Hostile exports: SQL in column names, files built to exhaust the engine.

Defended: an export comes from another team's system, so every column name, value and
byte of it is untrusted.

* SQL: a column name that closes a quoted identifier must stay a column name. The engine
  quotes every identifier it puts in SQL (``stages.ident``) and binds or quotes every
  literal (``stages.lit``); checked with a Parquet export whose column names are a
  working injection (it read a system file into the snapshot before identifiers were
  quoted). Second wall: the engine's DuckDB connections may open only the files of the
  job (``engine.sandbox``); checked by asking such a connection for a system file and
  to lift the restriction.
* Cost: ``[engine.limits]`` bounds, for exports and count sheets, the file size, rows,
  columns, cells, value length, JSON nesting and what an XLSX unpacks to
  (``engine.limits``); entity declarations in XLSX XML are refused by defusedxml; a
  malformed file is a clear error with the file and position, never a traceback.
  Checked with a zip bomb, an entity-expansion sheet, a sheet that declares a
  billion-cell dimension, malformed XML and 100,000-deep JSON.
* A failed freeze leaves nothing behind (it writes a hidden folder and renames it), so
  the retry works.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.config.engine import EngineSection
from tagsweep.engine import sandbox
from tagsweep.engine.freeze import FreezeError, SourceSpec, freeze
from tagsweep.engine.run import RunError, reconcile

#: Reads a file the export has no business with; ``$$`` quoting keeps it free of
#: single quotes so that it survives inside the injected projection.
LEAK = "(SELECT string_agg(content) FROM read_text($$/etc/hostname$$))"
#: Two column names that, pasted unquoted into ``CAST("{n}" AS VARCHAR) AS "{n}"``,
#: close the identifier, add a projection of LEAK and swallow the rest in a string.
INJECTING_NAMES = (f'a" AS VARCHAR) AS "a", {LEAK} AS "leak", \'', ", ' AS \"x")


def test_injecting_parquet_column_names_are_frozen_verbatim(tmp_path: Path) -> None:
    export = tmp_path / "cmdb.parquet"
    columns = {"a": ["A1"], INJECTING_NAMES[0]: ["v"], INJECTING_NAMES[1]: ["w"]}
    pq.write_table(pa.table(columns), export)
    settings = EngineSection.model_validate({"sources": {"cmdb": {"columns": {"asset_tag": "a"}}}})
    freeze(
        [SourceSpec("cmdb", export, exported_at=datetime(2026, 11, 20, tzinfo=UTC))],
        tmp_path / "snap",
        settings,
    )
    rows = pq.read_table(tmp_path / "snap" / "cmdb.parquet").to_pylist()
    assert rows == [{"a": "A1", INJECTING_NAMES[0]: "v", INJECTING_NAMES[1]: "w", "_line": 1}]


def test_updated_at_column_with_a_quote_in_its_name(tmp_path: Path) -> None:
    """The export time is read from the mapped ``updated_at`` column by SQL too."""
    export = tmp_path / "cmdb.parquet"
    name = 'changed") AS x, now() AS "y'
    pq.write_table(pa.table({"asset_tag": ["A1"], name: ["2026-11-20T08:00:00Z"]}), export)
    settings = EngineSection.model_validate(
        {"sources": {"cmdb": {"columns": {"updated_at": name}}}}
    )
    snapshot = freeze([SourceSpec("cmdb", export)], tmp_path / "snap", settings)
    assert snapshot.source("cmdb").exported_at == "2026-11-20T08:00:00+00:00"


def test_sandboxed_connection_reaches_only_the_files_of_the_job(tmp_path: Path) -> None:
    allowed = tmp_path / "export.parquet"
    pq.write_table(pa.table({"a": ["1"]}), allowed)
    con = sandbox.connect(read=[allowed], dirs=[tmp_path / "out"])
    try:
        assert con.execute("SELECT * FROM read_parquet(?)", [str(allowed)]).fetchall() == [("1",)]
        with pytest.raises(duckdb.PermissionException):
            con.execute("SELECT * FROM read_text('/etc/hostname')")
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"COPY (SELECT 1) TO '{tmp_path / 'elsewhere.csv'}'")
        with pytest.raises(duckdb.PermissionException):  # no way out through '..'
            con.execute(f"SELECT * FROM read_text('{tmp_path / 'out' / '..' / 'x.txt'}')")
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            con.execute("SET enable_external_access = true")
        (tmp_path / "out").mkdir()
        con.execute(f"COPY (SELECT 1 AS x) TO '{tmp_path / 'out' / 'ok.csv'}'")
    finally:
        con.close()


# -- untrusted files: limits ---------------------------------------------------------


def _xlsx(path: Path, rows: list[list[str]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def _rewrite_member(path: Path, member: str, change: Callable[[bytes], bytes]) -> None:
    """Replace one member of a zip (an XLSX) by ``change`` of it."""
    with zipfile.ZipFile(path) as src:
        items = [(info, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info, data in items:
            dst.writestr(info.filename, change(data) if info.filename == member else data)


SHEET = "xl/worksheets/sheet1.xml"
ROWS = [["asset_tag", "serial"], ["AST-000001", "SN1"]]


def _freeze_fails(tmp_path: Path, export: Path, match: str, **limits: float) -> None:
    settings = EngineSection.model_validate({"limits": limits})
    with pytest.raises(FreezeError, match=match):
        freeze([SourceSpec("itam", export)], tmp_path / "failed", settings)
    assert not (tmp_path / "failed").exists()
    assert not list(tmp_path.glob(".failed.*"))  # nothing half-written is left


def test_xlsx_zip_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    export = _xlsx(tmp_path / "assets.xlsx", ROWS)
    # 40 MB of whitespace between the rows: legal XML, deflated a thousand times over
    pad = b" " * (40 << 20)
    _rewrite_member(export, SHEET, lambda xml: xml.replace(b"</row>", b"</row>" + pad, 1))
    assert export.stat().st_size < 200_000
    _freeze_fails(tmp_path, export, rf"zip member {SHEET} unpacks .* times.*max_zip_ratio")


def test_xlsx_entity_expansion_is_refused(tmp_path: Path) -> None:
    export = _xlsx(tmp_path / "assets.xlsx", ROWS)
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY a "lol">'
        + b"".join(
            b'<!ENTITY %c "%s">' % (ord("b") + i, b"&%c;" % (ord("a") + i) * 10) for i in range(6)
        )
        + b"]>"
    )
    _rewrite_member(export, SHEET, lambda xml: laughs + xml.replace(b"<t>SN1</t>", b"<t>&g;</t>"))
    _freeze_fails(tmp_path, export, r"assets\.xlsx: cannot read as XLSX.*EntitiesForbidden")


def test_malformed_xlsx_xml_is_a_clear_error(tmp_path: Path) -> None:
    export = _xlsx(tmp_path / "assets.xlsx", ROWS)
    _rewrite_member(export, SHEET, lambda xml: xml.replace(b"</row>", b"</rw>", 1))
    _freeze_fails(tmp_path, export, r"cannot read as XLSX \(XML line 1, column \d+\)")
    (tmp_path / "junk.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    _freeze_fails(tmp_path, tmp_path / "junk.xlsx", r"junk\.xlsx: not a readable XLSX")


def test_declared_dimension_does_not_pad_every_row(tmp_path: Path) -> None:
    """A sheet that claims A1:XFD2000 holds two columns: rows are read as they are,
    not padded to 16,384 cells each (the padding is what made a small XLSX take
    gigabytes)."""
    export = _xlsx(
        tmp_path / "assets.xlsx", [ROWS[0]] + [[f"AST-{i:06d}", f"SN{i}"] for i in range(1, 2000)]
    )
    _rewrite_member(
        export,
        SHEET,
        lambda xml: xml.replace(b'<dimension ref="A1:B2000"', b'<dimension ref="A1:XFD2000"'),
    )
    settings = EngineSection.model_validate({"limits": {"max_cells": 10_000}})
    snapshot = freeze([SourceSpec("itam", export)], tmp_path / "snap", settings)
    assert snapshot.source("itam").rows == 1999
    _freeze_fails(
        tmp_path, export, r"sheet row 1001: more than \[engine.limits\] max_cells", max_cells=2_000
    )


def test_deep_json_is_refused_with_its_position(tmp_path: Path) -> None:
    export = tmp_path / "devices.json"
    export.write_text('[{"serial": "SN1", "x": ' + "[" * 100_000 + "]" * 100_000 + "}]")
    _freeze_fails(tmp_path, export, r"devices\.json: line 1, column 87: JSON nested deeper than")
    # brackets inside strings are text, not nesting
    export.write_text(json.dumps([{"serial": "SN1", "note": "[" * 1000}]))
    freeze([SourceSpec("itam", export)], tmp_path / "ok", EngineSection())


def test_rows_cells_value_length_and_size_limits(tmp_path: Path) -> None:
    export = tmp_path / "assets.csv"
    export.write_text("asset_tag,serial\n" + "".join(f"AST-{i},SN{i}\n" for i in range(11)))
    _freeze_fails(
        tmp_path, export, r"11 data rows, more than \[engine.limits\] max_rows = 10", max_rows=10
    )
    _freeze_fails(tmp_path, export, r"max_cells = 20", max_cells=20)
    _freeze_fails(tmp_path, export, r"max_file_mb", max_file_mb=0.0001)
    notes = tmp_path / "notes.json"
    notes.write_text(json.dumps([{"serial": "SN1"}, {"serial": "SN2", "note": "x" * 500}]))
    _freeze_fails(
        tmp_path,
        notes,
        r"notes\.json: line 2, column 'note': a value of 500 characters",
        max_cell_chars=100,
    )


def test_failed_freeze_leaves_nothing_and_the_retry_works(tmp_path: Path) -> None:
    good = tmp_path / "assets.csv"
    good.write_text("asset_tag,serial\nAST-1,SN1\n")
    bad = tmp_path / "devices.json"
    bad.write_text("[" * 1000 + "]" * 1000)
    specs = [SourceSpec("itam", good), SourceSpec("mdm", bad)]
    with pytest.raises(FreezeError, match="nested deeper"):
        freeze(specs, tmp_path / "snap", EngineSection())
    assert not (tmp_path / "snap").exists()
    assert not list(tmp_path.glob(".snap*"))
    bad.write_text(json.dumps([{"serial": "SN1"}]))
    snapshot = freeze(specs, tmp_path / "snap", EngineSection())
    assert [s.name for s in snapshot.sources] == ["itam", "mdm"]
    assert snapshot.directory == tmp_path / "snap"
    assert (tmp_path / "snap" / "snapshot.json").is_file()


def test_cli_reports_a_hostile_file_without_a_traceback(tmp_path: Path) -> None:
    export = tmp_path / "devices.json"
    export.write_text("[" * 100_000 + "]" * 100_000)
    result = CliRunner().invoke(
        app, ["reconcile", "freeze", "--source", f"mdm={export}", "--out", str(tmp_path / "s")]
    )
    assert result.exit_code == 1
    assert "error:" in result.output
    assert "JSON nested deeper" in result.output
    assert "Traceback" not in result.output


def test_count_sheets_are_held_to_the_same_limits(tmp_path: Path) -> None:
    (tmp_path / "register.csv").write_text("asset_tag\nAST-1\n")
    freeze([SourceSpec("itam", tmp_path / "register.csv")], tmp_path / "snap", EngineSection())
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("location,asset_tag,note\nRoom 1,AST-1," + "x" * 300 + "\n")
    settings = EngineSection.model_validate({"limits": {"max_cell_chars": 100}})
    with pytest.raises(RunError, match=r"sheet\.csv: line 2, column 'note': a value of 300"):
        reconcile(tmp_path / "snap", [sheet], settings, tmp_path / "run")
