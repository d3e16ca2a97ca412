"""Hostile values: what an export or a scanned label carries into the outputs.

Defended, and how:

* NUL characters never reach an asset tag or any other field: freeze removes them from
  every value and header and the snapshot's warnings say how many and where
  (``engine.hygiene.strip_nul``).
* Duplicate headers are a reported decision, not a silent rename: every column is
  kept, the presets read the first, and the snapshot's warnings name the columns and how
  to choose another (``engine.hygiene.duplicate_headers``). An XLSX with a repeated
  header used to crash the freeze.
* Every CSV the engine writes escapes spreadsheet formulas (``engine.escaping.csv_safe``),
  ``bad_rows.csv`` included.
* ``report.md`` shows scanned text as text: HTML, links and images in a location label
  are escaped (``engine.escaping.markdown_text``); ``report.html`` was already escaped.
* Hypothesis feeds column names and values made of quotes, semicolons, SQL comments,
  NULs and unicode through freeze, a full run, the case store and the gateway's store:
  every one comes out as it went in (NULs removed), and nothing else runs.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path

import duckdb
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagsweep.config.engine import EngineSection
from tagsweep.daemon.store import Store
from tagsweep.engine.cases import CaseStore
from tagsweep.engine.freeze import SourceSpec, freeze
from tagsweep.engine.run import reconcile


def _frozen(snapshot: Path, name: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = pq.read_table(snapshot / f"{name}.parquet").to_pylist()
    return rows


def test_nul_characters_never_reach_a_field(tmp_path: Path) -> None:
    export = tmp_path / "assets.json"
    export.write_text(
        json.dumps(
            [
                {"asset_tag": "AST-000001", "serial": "SN1"},
                {"asset_tag": "AST-0\x0000002", "serial": "SN2\x00", "lo\x00cation": "Room 1"},
            ]
        )
    )
    snapshot = freeze([SourceSpec("itam", export)], tmp_path / "snap", EngineSection())
    rows = _frozen(tmp_path / "snap", "itam")
    assert [r["asset_tag"] for r in rows] == ["AST-000001", "AST-000002"]
    assert rows[1]["serial"] == "SN2"
    assert rows[1]["location"] == "Room 1"
    assert not any("\x00" in str(v) for r in rows for v in (*r, *r.values()))
    assert snapshot.warnings == [
        "source itam: assets.json: NUL characters removed from 2 value(s) (first on line 2, "
        "column 'asset_tag') and 1 column name(s)"
    ]

    sheet = tmp_path / "count.csv"
    sheet.write_bytes(b"location,asset_tag\nRoom 1,AST-00\x000002\n")
    run = reconcile(tmp_path / "snap", [sheet], EngineSection(), tmp_path / "run")
    register = pq.read_table(run.out_dir / "register.parquet").column("asset_tag").to_pylist()
    assert register == ["AST-000001", "AST-000002"]
    found = pq.read_table(run.out_dir / "matches.parquet").column("observed_asset_tag")
    assert found.to_pylist() == ["AST-000002"]


def test_duplicate_headers_are_kept_and_reported(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Asset Tag", "Serial", "Serial", "asset_tag"])
    sheet.append(["AST-000001", "SN1", "SN1-OLD", "X"])
    book.save(tmp_path / "assets.xlsx")
    snapshot = freeze(
        [SourceSpec("itam", tmp_path / "assets.xlsx")], tmp_path / "snap", EngineSection()
    )
    assert _frozen(tmp_path / "snap", "itam") == [
        {"Asset Tag": "AST-000001", "Serial": "SN1", "Serial_1": "SN1-OLD", "asset_tag": "X",
         "_line": 2}
    ]  # fmt: skip
    assert snapshot.source("itam").columns["serial"] == "Serial"
    assert snapshot.warnings == [
        "source itam: assets.xlsx: header 'Serial' appears in columns 2, 3: the first is "
        "read as 'Serial', the others are kept as 'Serial_1'; map "
        "[engine.sources.<source>.columns] to read another",
        "source itam: assets.xlsx: headers 'Asset Tag', 'asset_tag' differ only in case, "
        "spaces or punctuation: the presets read 'Asset Tag'; map "
        "[engine.sources.<source>.columns] to read another",
    ]
    csv_export = tmp_path / "assets.csv"
    csv_export.write_text("asset_tag,Serial,serial\nAST-000001,SN1,SN2\n")
    snapshot = freeze([SourceSpec("itam", csv_export)], tmp_path / "snap2", EngineSection())
    assert snapshot.warnings == [
        "source itam: assets.csv: header 'Serial' appears in columns 2, 3: the first is read "
        "as 'Serial', the others are kept as 'serial_1'; map "
        "[engine.sources.<source>.columns] to read another"
    ]


def test_a_column_named_like_the_line_numbers_keeps_its_data(tmp_path: Path) -> None:
    """``_line`` is the snapshot's own column; an export's ``_line`` used to be
    overwritten (JSON, XLSX), dropped (Parquet) or doubled into a broken file (CSV)."""

    def parquet(path: Path) -> None:
        pq.write_table(pa.table({"asset_tag": ["AST-1"], "_line": ["x"]}), path)

    exports: dict[str, Callable[[Path], object]] = {
        "a.csv": lambda p: p.write_text("asset_tag,_line\nAST-1,x\n"),
        "b.json": lambda p: p.write_text(json.dumps([{"asset_tag": "AST-1", "_line": "x"}])),
        "c.parquet": parquet,
    }
    for name, write in exports.items():
        export = tmp_path / name
        write(export)
        snapshot = freeze([SourceSpec("itam", export)], tmp_path / f"snap-{name}", EngineSection())
        (row,) = _frozen(tmp_path / f"snap-{name}", "itam")
        assert row["_line_1"] == "x"
        assert isinstance(row["_line"], int)
        assert snapshot.warnings == [
            f"source itam: {name}: column '_line' is kept as '_line_1' (the snapshot's "
            "'_line' holds the line numbers)"
        ]


REGISTER = "asset_tag,serial,location,status\nAST-000001,SN1,Room 1,in_use\n"


def test_bad_rows_csv_escapes_formulas(tmp_path: Path) -> None:
    export = tmp_path / "@SUM(A1).csv"
    export.write_text(REGISTER + ",,Room 1,in_use\n")  # no identifier: a bad row
    freeze([SourceSpec("itam", export)], tmp_path / "snap", EngineSection())
    run = reconcile(tmp_path / "snap", [], EngineSection(), tmp_path / "run")
    with (run.out_dir / "bad_rows.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["file"], r["line"]) for r in rows] == [("'@SUM(A1).csv", "3")]


def test_report_markdown_shows_scanned_html_as_text(tmp_path: Path) -> None:
    (tmp_path / "register.csv").write_text(REGISTER)
    freeze([SourceSpec("itam", tmp_path / "register.csv")], tmp_path / "snap", EngineSection())
    label = "<img src=//evil.example/x onerror=alert(1)>[click](javascript:alert(1))"
    sheet = tmp_path / "count.csv"
    with sheet.open("w", newline="") as fh:
        csv.writer(fh).writerows([["location", "asset_tag"], [label, "AST-000009"]])
    run = reconcile(tmp_path / "snap", [sheet], EngineSection(), tmp_path / "run")
    report = (run.out_dir / "report.md").read_text()
    assert "<img" not in report
    assert not re.search(r"(?<!\\)\]\(javascript", report)  # no link is formed
    assert "&lt;img src=//evil.example/x onerror=alert(1)&gt;\\[click\\]" in report
    assert "<img" not in (run.out_dir / "report.html").read_text()


# -- hostile names and values through every store ---------------------------------------

#: Quotes, statement ends, comments, dollar quotes, NUL, accents, emoji, RTL override.
CHARACTERS = list("\"';-/*\\\x00$() aZéß😀ヅ\u202e\n%?`")
INJECTIONS = [
    "'; DROP TABLE cases; --",
    '" OR 1=1 --',
    "*/ SELECT 1 /*",
    "$$; COPY x TO '/tmp/y'$$",
    "x\x00y",
    "Robert'); DROP TABLE students;--",
]
HOSTILE = st.text(alphabet=st.sampled_from(CHARACTERS), min_size=1, max_size=24) | st.sampled_from(
    INJECTIONS
)


def _clean(text: str) -> str:
    return text.replace("\x00", "")


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    names=st.lists(HOSTILE, min_size=3, max_size=3, unique_by=lambda n: _clean(n).lower()),
    tag=HOSTILE,
    location=HOSTILE,
)
def test_hostile_names_and_values_through_freeze_run_cases(
    tmp_path_factory: object, names: list[str], tag: str, location: str
) -> None:
    assert hasattr(tmp_path_factory, "mktemp")
    base: Path = tmp_path_factory.mktemp("hostile")
    if any(not _clean(n).strip() or _clean(n) == "_line" for n in names):
        return
    tag_col, serial_col, location_col = names
    export = base / "cmdb.parquet"
    pq.write_table(
        pa.table({tag_col: [tag, "AST-000002"], serial_col: ["SN1", "SN2"],
                  location_col: [location, "Room 1"]}),
        export,
    )  # fmt: skip
    settings_ = EngineSection.model_validate(
        {"sources": {"cmdb": {"preset": "generic", "role": "itam", "columns": {
            "asset_tag": _clean(tag_col), "serial": _clean(serial_col),
            "location": _clean(location_col)}}}}
    )  # fmt: skip
    snapshot = freeze([SourceSpec("cmdb", export)], base / "snap", settings_)
    frozen = _frozen(base / "snap", "cmdb")
    assert [r[_clean(tag_col)] for r in frozen] == [_clean(tag), "AST-000002"]
    assert [r[_clean(location_col)] for r in frozen] == [_clean(location), "Room 1"]
    assert snapshot.source("cmdb").rows == 2

    count = base / "count.csv"
    count.write_text("location,serial\nRoom 1,SN2\n")
    run = reconcile(base / "snap", [count], settings_, base / "run")
    register = pq.read_table(run.out_dir / "register.parquet").to_pylist()
    con = duckdb.connect()
    expected_tag = con.execute("SELECT upper(nullif(trim(?), ''))", [_clean(tag)]).fetchone()
    con.close()
    assert expected_tag is not None
    assert {r["serial"] for r in register} == {"SN1", "SN2"}
    assert expected_tag[0] in {r["asset_tag"] for r in register} | {None}

    store = CaseStore(base / "cases")
    store.import_run(run.out_dir, actor=f"auditor {tag}")  # a blank actor is refused
    variances = pq.read_table(run.out_dir / "variances.parquet").to_pylist()
    assert len(store.list_cases()) == len(variances)
    assert {c.variance_id for c in store.list_cases()} == {v["variance_id"] for v in variances}


@settings(max_examples=25, deadline=None)
@given(site=HOSTILE, operator=HOSTILE, scope=st.lists(HOSTILE, max_size=3), value=HOSTILE)
def test_hostile_text_through_the_gateway_store(
    site: str, operator: str, scope: list[str], value: str
) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "gateway.duckdb")
        try:
            store.insert_session(value, site, operator, scope, 1, expected=value)
            store.set_session_state(value, "closed", file=value, sha256=value, row_count=1)
            rows = store.session_rows(session_id=value)
            assert len(rows) == 1
            row = rows[0]
            assert (row["site"], row["operator"], row["scope"], row["file"]) == (
                site,
                operator,
                scope,
                value,
            )
            assert store.counts()["sessions"] == 1
            assert store.contexts(value) == []
        finally:
            store.close()


def test_nul_in_a_scanned_label_never_reaches_the_count(tmp_path: Path) -> None:
    from tagsweep.daemon.sessions import SESSION_FILE_SCHEMA, write_session_file
    from tagsweep.domain import CountSession, Location

    (tmp_path / "register.csv").write_text(REGISTER)
    freeze([SourceSpec("itam", tmp_path / "register.csv")], tmp_path / "snap", EngineSection())
    t0 = 1_795_000_000_000_000
    row = {"session_id": "cs-1", "site": "DC1", "method": "barcode", "location": "Room\x00 1",
           "asset_tag": "AST-000001\x00", "first_seen": t0, "last_seen": t0, "read_count": 1,
           "reader": "sc1", "operator": "jdoe"}  # fmt: skip
    table = pa.Table.from_pylist([row], schema=SESSION_FILE_SCHEMA)
    session = CountSession("cs-1", "DC1", "jdoe", (Location("Room 1"),), t0, t0 + 1)
    closed = write_session_file(table, session, session_dir=tmp_path / "s", gateway="gw-1")
    run = reconcile(tmp_path / "snap", [closed.parquet], EngineSection(), tmp_path / "run")
    assert run.manifest["counts"]["found"] == 1
    assert run.manifest["counts"]["variances"] == 0
    assert (
        "count file cs-1.parquet: NUL characters removed from 1 row(s) (first on row 1)"
        in (run.manifest["warnings"])
    )
