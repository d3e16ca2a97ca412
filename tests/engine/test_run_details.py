"""Run details: formula escaping, EPC decoding in SQL vs the codec, golden-register
baseline, count input checks, business days, configuration errors."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.config.engine import EngineSection
from tagsweep.domain import SESSION_FILE_COLUMNS, VARIANCE_LOG_COLUMNS
from tagsweep.engine import cleaning, match, outputs
from tagsweep.engine.freeze import SourceSpec, freeze
from tagsweep.engine.run import RunError, add_business_days, reconcile
from tagsweep.engine.run_inputs import COUNT_COLUMNS
from tagsweep.engine.stages import RunContext, StageRunner
from tagsweep.epc import asset_tag_for_epc, encode_ascii, encode_giai96

REGISTER = """\
asset_tag,serial,manufacturer,model,location,status,custodian
AST-000001,SN0001,Dell,=cmd|' /C calc'!A0,Room 1,Active,@SUM(A1)
AST-000002,SN0002,Dell,Latitude,Room 1,Active,Ana
AST-000003,SN0003,Dell,Latitude,Room 2,Active,Ben
"""
SHEET = """\
location,asset_tag,serial
Room 1,AST-000002,SN0002
Room 1,AST-000003,SN0003
Room 1,-2+3,
"""


def _snapshot(tmp_path: Path) -> Path:
    (tmp_path / "register.csv").write_text(REGISTER, encoding="utf-8")
    (tmp_path / "sheet.csv").write_text(SHEET, encoding="utf-8")
    freeze([SourceSpec("itam", tmp_path / "register.csv")], tmp_path / "snap", EngineSection())
    return tmp_path / "snap"


def test_csv_escapes_formula_injection_parquet_keeps_raw(tmp_path: Path) -> None:
    snap = _snapshot(tmp_path)
    run = reconcile(snap, [tmp_path / "sheet.csv"], EngineSection(), tmp_path / "run")
    with (run.out_dir / "variances.csv").open(encoding="utf-8", newline="") as fh:
        rows = {r["asset_key"]: r for r in csv.DictReader(fh)}
    assert rows["AST-000001"]["model"] == "'=cmd|' /C calc'!A0"
    assert rows["'-2+3"]["asset_tag"] == "'-2+3"
    raw = {r["asset_key"]: r for r in pq.read_table(run.out_dir / "variances.parquet").to_pylist()}
    assert raw["AST-000001"]["model"] == "=cmd|' /C calc'!A0"
    with (run.out_dir / "corrections" / "itam.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            assert all(not v.startswith(("=", "+", "-", "@")) for v in row.values())


def test_golden_register_as_baseline_keeps_variance_ids(tmp_path: Path) -> None:
    snap = _snapshot(tmp_path)
    sheet = tmp_path / "sheet.csv"
    first = reconcile(snap, [sheet], EngineSection(), tmp_path / "run1")
    second = reconcile(
        first.out_dir / "register.parquet", [sheet], EngineSection(), tmp_path / "r2"
    )
    one = pq.read_table(first.out_dir / "variances.parquet").to_pylist()
    two = pq.read_table(second.out_dir / "variances.parquet").to_pylist()
    assert {(v["variance_id"], v["variance_type"]) for v in one} == {
        (v["variance_id"], v["variance_type"]) for v in two
    }
    assert {v["variance_type"] for v in one} == {"missing", "unrecorded", "location_mismatch"}
    assert first.run_id != second.run_id
    assert second.manifest["inputs"]["baseline"]["kind"] == "register"


def test_count_without_location_column_stops(tmp_path: Path) -> None:
    snap = _snapshot(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("asset_tag\nAST-000001\n", encoding="utf-8")
    with pytest.raises(RunError, match="needs a 'location' column"):
        reconcile(snap, [bad], EngineSection(), tmp_path / "run")
    result = CliRunner().invoke(
        app, ["reconcile", "run", "--snapshot", str(snap), "--count", str(bad), "--out",
              str(tmp_path / "run2")],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "location" in result.output


def _session_file(path: Path, rows: list[dict[str, object]], sha: str | None = None) -> None:
    types = {
        "string": pa.string(),
        "timestamp[us, UTC]": pa.timestamp("us", tz="UTC"),
        "int64": pa.int64(),
        "float32": pa.float32(),
    }
    table = pa.table(
        {c: pa.array([r.get(c) for r in rows], types[t]) for c, t in SESSION_FILE_COLUMNS.items()}
    )
    pq.write_table(table, path)
    import hashlib

    digest = sha or hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_suffix(".json").write_text(
        json.dumps(
            {
                "session_id": "cs-1",
                "scope": ["Room 1"],
                "sha256": digest,
                "row_count": len(rows),
                "gateway": "gw-1",
            }
        ),
        encoding="utf-8",
    )


def test_session_file_manifest_scope_and_tamper_check(tmp_path: Path) -> None:
    snap = _snapshot(tmp_path)
    session = tmp_path / "cs-1.parquet"
    epc = encode_giai96("0614141", 2)
    _session_file(
        session,
        [{"session_id": "cs-1", "method": "rfid", "location": "Room 1", "epc": epc,
          "last_seen": 1_795_000_000_000_000, "read_count": 4}],
    )  # fmt: skip
    run = reconcile(snap, [session], EngineSection(), tmp_path / "run")
    assert run.manifest["scope"] == ["Room 1"]
    log = pq.read_table(run.out_dir / "variances.parquet").to_pylist()
    # Room 2 is out of this session's scope: AST-000003 is not missing, AST-000001 is;
    # and nothing has ever seen AST-000003, so its record is stale
    assert {(v["variance_type"], v["asset_key"]) for v in log} == {
        ("missing", "AST-000001"),
        ("stale_record", "AST-000003"),
    }
    _session_file(session, [{"location": "Room 1", "epc": epc}], sha="0" * 64)
    with pytest.raises(RunError, match="must not change"):
        reconcile(snap, [session], EngineSection(), tmp_path / "run2")


def _decode_in_sql(epcs: list[str], settings_: EngineSection) -> list[str | None]:
    con = duckdb.connect()
    ctx = RunContext(settings_, date(2026, 11, 24), "R", [], date.min, date.min, [])
    cleaning.create_lookup_tables(con, ctx)
    con.execute("CREATE TABLE person_keys (key VARCHAR, person_key VARCHAR, leaver BOOLEAN)")
    con.execute("CREATE TABLE epc_map (epc VARCHAR, asset_tag VARCHAR)")
    cols = ", ".join(
        f"CAST(NULL AS {'TIMESTAMPTZ' if c in {'first_seen', 'last_seen'} else 'VARCHAR'}) AS {c}"
        for c in COUNT_COLUMNS
        if c not in {"epc", "location"}
    )
    con.execute(
        f"CREATE TABLE count_rows AS SELECT 'f' AS file, i AS line, e AS epc, 'L' AS location, "
        f"{cols}, CAST(NULL AS VARCHAR) AS last_seen_text "
        "FROM (SELECT unnest(?) AS e, generate_subscripts(?, 1) AS i)",
        [epcs, epcs],
    )
    StageRunner(con).run(match.stages(ctx)[:1])
    rows = con.execute("SELECT line, asset_tag FROM observations_all ORDER BY line").fetchall()
    return [r[1] for r in rows]


@settings(max_examples=25, deadline=None)
@given(
    refs=st.lists(st.integers(0, 2**40), min_size=1, max_size=20),
    prefix=st.sampled_from(["0614141", "061414", "000123456789", "12345678"]),
    junk=st.lists(st.binary(min_size=12, max_size=12).map(lambda b: b.hex().upper()), max_size=5),
)
def test_sql_epc_decode_matches_the_codec(refs: list[int], prefix: str, junk: list[str]) -> None:
    epcs = [encode_giai96(prefix, r, filter_value=r % 8) for r in refs] + junk
    for configured in ("0614141", None):
        s = EngineSection.model_validate(
            {"giai_company_prefix": configured, "giai_asset_tag_format": "IT-{ref:08d}"}
        )
        expected = [
            asset_tag_for_epc(e, "giai96", company_prefix=configured, tag_format="IT-{ref:08d}")
            for e in epcs
        ]
        assert _decode_in_sql(epcs, s) == expected


@settings(max_examples=15, deadline=None)
@given(
    tags=st.lists(
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12),
        min_size=1,
        max_size=10,
    )
)
def test_sql_ascii_decode_matches_the_codec(tags: list[str]) -> None:
    epcs = [encode_ascii(t) for t in tags] + [encode_giai96("0614141", 7)]
    s = EngineSection(epc_scheme="ascii")
    expected = [None if (t := asset_tag_for_epc(e, "ascii")) is None else t.upper() for e in epcs]
    assert _decode_in_sql(epcs, s) == expected


def test_business_days_skip_weekends_and_holidays() -> None:
    friday = date(2026, 11, 27)
    assert add_business_days(friday, 1) == date(2026, 11, 30)
    assert add_business_days(friday, 5) == date(2026, 12, 4)
    assert add_business_days(friday, 1, [date(2026, 11, 30)]) == date(2026, 12, 1)


def test_engine_configuration_errors_are_precise() -> None:
    with pytest.raises(ValidationError, match=r"only the fields \{ref\}"):
        EngineSection(giai_asset_tag_format="AST-{serial}")
    with pytest.raises(ValidationError, match="needs epc_mapping_file"):
        EngineSection(epc_scheme="mapping")
    with pytest.raises(ValidationError, match="unknown variance type"):
        EngineSection.model_validate({"priorities": {"lost": "P1"}})
    with pytest.raises(ValidationError, match="not in the lifecycle"):
        EngineSection.model_validate({"status_map": {"Gone": "vanished"}})
    settings_ = EngineSection.model_validate({"field_precedence": {"location": ["mdm"]}})
    assert settings_.field_precedence["location"] == ["mdm"]
    assert settings_.field_precedence["status"][0] == "itam"


def test_mapping_scheme_resolves_epcs_through_the_table(tmp_path: Path) -> None:
    snap = _snapshot(tmp_path)
    mapping = tmp_path / "epc_map.csv"
    mapping.write_text("epc,asset_tag\nE2801160600002095A7B1C2D,ast-000002\n", encoding="utf-8")
    sheet = tmp_path / "rfid.csv"
    sheet.write_text(
        "location,epc\nRoom 1,e2801160600002095a7b1c2d\nRoom 1,E2801160600002095A7B1C2E\n",
        encoding="utf-8",
    )
    settings_ = EngineSection.model_validate(
        {"epc_scheme": "mapping", "epc_mapping_file": str(mapping), "scope": ["Room 1"]}
    )
    run = reconcile(snap, [sheet], settings_, tmp_path / "run")
    log = {(v["variance_type"], v["asset_key"]) for v in pq.read_table(
        run.out_dir / "variances.parquet").to_pylist()}  # fmt: skip
    assert ("unrecorded", "EPC:E2801160600002095A7B1C2E") in log
    assert ("missing", "AST-000001") in log
    assert not any(key == "AST-000002" for _, key in log)
    assert run.manifest["inputs"]["epc_mapping_sha256"]


def test_a_clean_count_writes_an_empty_variance_log(tmp_path: Path) -> None:
    (tmp_path / "register.csv").write_text(
        "asset_tag,serial,manufacturer,model,location,status\n"
        "AST-000002,SN0002,Dell,Latitude,Room 1,Active\n",
        encoding="utf-8",
    )
    (tmp_path / "sheet.csv").write_text(
        "location,asset_tag,serial,last_seen\nRoom 1,AST-000002,SN0002,2026-11-24 10:00\n",
        encoding="utf-8",
    )
    freeze([SourceSpec("itam", tmp_path / "register.csv")], tmp_path / "snap", EngineSection())
    run = reconcile(tmp_path / "snap", [tmp_path / "sheet.csv"], EngineSection(), tmp_path / "r")
    assert run.manifest["counts"]["variances"] == 0
    log = pq.read_table(run.out_dir / "variances.parquet")
    assert log.num_rows == 0
    assert log.column_names == list(VARIANCE_LOG_COLUMNS)
    header = (run.out_dir / "variances.csv").read_text(encoding="utf-8").splitlines()
    assert [h.strip('"') for h in header[0].split(",")] == list(VARIANCE_LOG_COLUMNS)
    assert header[1:] == []
    assert (run.out_dir / "variances.jsonl").read_bytes() == b""


def test_a_long_variance_log_is_streamed_to_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above IN_MEMORY_SORT_ROWS the log is sorted by DuckDB and streamed: the files
    must not depend on which path wrote them."""
    snap = _snapshot(tmp_path)
    monkeypatch.setattr(outputs, "PARQUET_ROW_GROUP_ROWS", 2)  # several batches and groups
    first = reconcile(snap, [tmp_path / "sheet.csv"], EngineSection(), tmp_path / "memory")
    monkeypatch.setattr(outputs, "IN_MEMORY_SORT_ROWS", 0)
    second = reconcile(snap, [tmp_path / "sheet.csv"], EngineSection(), tmp_path / "stream")
    assert first.manifest["counts"]["variances"] >= 3
    for name in ("variances.parquet", "variances.csv", "variances.jsonl", "corrections/itam.csv"):
        assert (first.out_dir / name).read_bytes() == (second.out_dir / name).read_bytes(), name
    lines = (second.out_dir / "variances.jsonl").read_text(encoding="utf-8").splitlines()
    ids = [json.loads(line)["variance_id"] for line in lines]
    parquet = pq.ParquetFile(second.out_dir / "variances.parquet")
    assert parquet.metadata.num_row_groups == 2
    assert ids == parquet.read().column("variance_id").to_pylist()


def test_serials_a_spreadsheet_turned_into_numbers_identify_nothing(tmp_path: Path) -> None:
    """Long numeric serials saved through a spreadsheet come back as "1.23457E+11": the
    digits are gone, so equal texts are not the same machine and must not merge."""
    (tmp_path / "register.csv").write_text(
        "asset_tag,serial,manufacturer,model,location,status\n"
        "AST-000001,1.23457E+11,Supermicro,SYS-1029,Room 1,Active\n"
        "AST-000002,1.23457E+11,Supermicro,SYS-1029,Room 1,Active\n"
        "AST-000003,123456789012,Supermicro,SYS-1029,Room 1,Active\n"
        ",9.87654e+11,Supermicro,SYS-1029,Room 1,Active\n",
        encoding="utf-8",
    )
    (tmp_path / "sheet.csv").write_text(
        "location,asset_tag,serial\n"
        "Room 1,AST-000001,\n"
        "Room 1,AST-000002,\n"
        "Room 1,,123456789012\n"
        "Room 1,,1.23457E+11\n",
        encoding="utf-8",
    )
    freeze([SourceSpec("itam", tmp_path / "register.csv")], tmp_path / "snap", EngineSection())
    run = reconcile(tmp_path / "snap", [tmp_path / "sheet.csv"], EngineSection(), tmp_path / "r")
    log = pq.read_table(run.out_dir / "variances.parquet").to_pylist()
    assert [v for v in log if v["variance_type"] == "duplicate_record"] == []
    assert {v["variance_type"] for v in log} <= {"unrecorded"}  # 3 found by tag or serial
    register = {
        r["asset_key"]: r for r in pq.read_table(run.out_dir / "register.parquet").to_pylist()
    }
    assert register["AST-000001"]["serial"] is None
    assert register["AST-000003"]["serial"] == "123456789012"
    with (run.out_dir / "bad_rows.csv").open(encoding="utf-8", newline="") as fh:
        bad = {(r["file"], r["line"]): r["reason"] for r in csv.DictReader(fh)}
    assert "lost its digits to a spreadsheet" in bad[("register.csv", "5")]
    # the count's row with only a mangled serial identifies nothing either
    assert any("usable serial" in reason for reason in bad.values())


def test_money_in_the_formats_exports_write_it(tmp_path: Path) -> None:
    """Book values with currency signs, thousands separators and decimal commas."""
    values = {
        "AST-000001": ("$1,299.00", 1299.0),
        "AST-000002": ("1.299,00 €", 1299.0),
        "AST-000003": ("1 299,50", 1299.5),
        "AST-000004": ("EUR 12.345.678,9", 12345678.9),
        "AST-000005": ("1,299", 1299.0),
        "AST-000006": ("-1.234,50", -1234.5),
        "AST-000007": ("703", 703.0),
        "AST-000008": ("0,5", 0.5),
    }
    rows = "".join(
        f'{tag},SN{tag[-2:]},Dell,R650,Room 1,Active,"{raw}"\n' for tag, (raw, _) in values.items()
    )
    (tmp_path / "register.csv").write_text(
        "asset_tag,serial,manufacturer,model,location,status,value\n" + rows, encoding="utf-8"
    )
    (tmp_path / "sheet.csv").write_text("location,asset_tag\nRoom 1,AST-000001\n", encoding="utf-8")
    freeze([SourceSpec("itam", tmp_path / "register.csv")], tmp_path / "snap", EngineSection())
    run = reconcile(tmp_path / "snap", [tmp_path / "sheet.csv"], EngineSection(), tmp_path / "r")
    register = pq.read_table(run.out_dir / "register.parquet").to_pylist()
    assert {r["asset_key"]: r["value"] for r in register} == {
        tag: value for tag, (_, value) in values.items()
    }


def test_timings_report_seconds_and_peak_memory_per_stage(tmp_path: Path) -> None:
    snap = _snapshot(tmp_path)
    sheet = tmp_path / "sheet.csv"
    result = CliRunner().invoke(
        app, ["reconcile", "run", "--snapshot", str(snap), "--count", str(sheet), "--out",
              str(tmp_path / "run"), "--timings"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    profile = json.loads((tmp_path / "run" / "timings.json").read_text())
    names = [s["name"] for s in profile["stages"]]
    # every SQL stage of the three method steps, the file writers and the reports
    for name in ("register", "observations_all", "matches", "variances", "out:variance_log",
                 "out:register", "out:matches", "reports_and_manifest"):  # fmt: skip
        assert name in names, names
    assert {s["group"] for s in profile["stages"]} >= {"normalize", "match", "classify", "outputs"}
    assert all(s["seconds"] >= 0 and s["peak_rss_mb"] > 10 for s in profile["stages"])
    assert profile["peak_rss_mb"] >= max(s["peak_rss_mb"] for s in profile["stages"])
    assert "classify/variances" in result.output
    assert "peak MB" in result.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["timings"] == "timings.json"
