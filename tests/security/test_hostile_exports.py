"""Hostile exports: column names and values that try to become SQL.

Defended: an export comes from another team's system, so every column name and value
in it is untrusted. A column name that closes a quoted identifier must stay a column
name: the engine quotes every identifier it puts in SQL (``stages.ident``) and binds or
quotes every literal (``stages.lit``), so the name is frozen verbatim and nothing else
runs. How it is checked: a Parquet export whose column names are a working injection
(it read a system file into the snapshot before identifiers were quoted) is frozen, and
the snapshot must hold exactly the columns and values of the file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tagsweep.config.engine import EngineSection
from tagsweep.engine.freeze import SourceSpec, freeze

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
