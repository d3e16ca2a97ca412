"""Stage 5, outputs: the files a run leaves behind, byte-identical on a re-run.

Everything is sorted on a total order and written with fixed settings, and nothing
records wall-clock time, so the same snapshot, counts and configuration give the same
bytes: an auditor can re-run a reconciliation and compare hashes.

The million-row Parquet files (register, matches, variance log) are streamed from
DuckDB's sorted result as Arrow batches into pyarrow's writer (zstd level 1, no bloom
filters): about three times cheaper than DuckDB's own Parquet writer on wide text
tables.

The CSV variance log escapes formula injection (OWASP): a text cell starting with
``=``, ``+``, ``-``, ``@``, tab or carriage return is prefixed with ``'`` so a
spreadsheet shows it as text instead of executing it. Parquet and JSONL keep the raw
values, since no spreadsheet evaluates them.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from tagsweep.config.engine import REGISTER_FIELDS
from tagsweep.domain import VARIANCE_LOG_COLUMNS
from tagsweep.engine.stages import PARQUET_ROW_GROUP_ROWS, ident, lit

_SQL_TYPES = {
    "string": "VARCHAR",
    "date32": "DATE",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
}

REGISTER_COLUMNS = (
    "asset_key",
    "asset_tag",
    "serial",
    "manufacturer",
    "model",
    "category",
    "location",
    "status",
    "status_label",
    "condition",
    "custodian",
    "value",
    "hardware_uuid",
    "mac",
    "hostname",
    "last_seen",
)
PROVENANCE_FIELDS = tuple(f for f in REGISTER_FIELDS if f != "updated_at")

CORRECTION_COLUMNS = (
    "variance_id",
    "variance_type",
    "priority",
    "source",
    "asset_key",
    "asset_tag",
    "serial",
    "action",
    "field",
    "current_value",
    "proposed_value",
    "reason",
)


def escape_formula_sql(column: str) -> str:
    """SQL expression: the column's text, prefixed with ' when a spreadsheet would
    evaluate it."""
    col = ident(column)
    return (
        f"CASE WHEN left({col}, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) "
        f"THEN '''' || {col} ELSE {col} END"
    )


#: Rows per Arrow batch when streaming an output file.
BATCH_ROWS = 1 << 20


def write_parquet(con: duckdb.DuckDBPyConnection, sql: str, path: Path) -> None:
    """Stream the result of ``sql`` (sorted by the caller) into a Parquet file."""
    reader = con.sql(sql).to_arrow_reader(BATCH_ROWS)
    with pq.ParquetWriter(
        path,
        reader.schema,
        compression="zstd",
        compression_level=1,
        # the file describes itself with Parquet types only, as DuckDB's writer did
        store_schema=False,
    ) as writer:
        for batch in reader:
            if batch.num_rows:
                writer.write_batch(batch, row_group_size=PARQUET_ROW_GROUP_ROWS)


def variance_select(escape: bool) -> str:
    parts = []
    for name, kind in VARIANCE_LOG_COLUMNS.items():
        expr = escape_formula_sql(name) if escape and kind == "string" else ident(name)
        parts.append(f"CAST({expr} AS {_SQL_TYPES[kind]}) AS {ident(name)}")
    return (
        "SELECT " + ", ".join(parts) + " FROM variances "
        "ORDER BY priority, type_order, asset_key, variance_id"
    )


def write_variance_log(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    raw = variance_select(escape=False)
    esc = variance_select(escape=True)
    write_parquet(con, raw, out / "variances.parquet")
    con.execute(f"COPY ({raw}) TO {lit(str(out / 'variances.jsonl'))} (FORMAT JSON)")
    con.execute(
        f"COPY ({esc}) TO {lit(str(out / 'variances.csv'))} "
        "(FORMAT CSV, HEADER, DELIMITER ',', QUOTE '\"', DATEFORMAT '%Y-%m-%d')"
    )


def write_register(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    prov = ", ".join(
        f"{ident(f + '_source') if f != 'last_seen' else 'last_seen_source'} "
        f"AS {ident(f + '_source')}"
        for f in PROVENANCE_FIELDS
    )
    cols = ", ".join(ident(c) for c in REGISTER_COLUMNS)
    write_parquet(
        con,
        f"SELECT {cols}, {prov}, sources FROM register ORDER BY asset_key",
        out / "register.parquet",
    )


def write_matches(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    write_parquet(
        con,
        "SELECT asset_key, obs_key, tier, match_status, session_id, observed_asset_tag, "
        "observed_serial, epc, found_location, methods FROM matches "
        "ORDER BY asset_key, obs_key",
        out / "matches.parquet",
    )


def write_corrections(
    con: duckdb.DuckDBPyConnection, out: Path, register_source: str
) -> dict[str, int]:
    """``corrections/<source>.csv``: what each source should change, per variance.

    Proposals only: the seed says to confirm the cause before editing any record.
    """
    con.execute(
        f"""
CREATE OR REPLACE TABLE corrections AS
WITH v AS (
    SELECT v.*, f.found_custodian, f.found_condition
    FROM variances v LEFT JOIN found_assets f ON f.asset_key = v.asset_key
), s AS (
    SELECT v.*, trim(unnest(string_split(coalesce(v.source, {lit(register_source)}), ',')))
        AS target
    FROM v
)
SELECT variance_id, variance_type, priority, target AS source, asset_key, asset_tag, serial,
    CASE variance_type
        WHEN 'location_mismatch' THEN 'update'
        WHEN 'missing' THEN 'update'
        WHEN 'status_condition_mismatch' THEN 'update'
        WHEN 'source_conflict' THEN CASE WHEN starts_with(expected, 'No register')
                                         THEN 'review' ELSE 'update' END
        WHEN 'custodian_mismatch' THEN CASE WHEN found_custodian IS NOT NULL
                                            THEN 'update' ELSE 'review' END
        WHEN 'unrecorded' THEN 'create'
        WHEN 'duplicate_record' THEN 'retire'
        ELSE 'review' END AS action,
    CASE variance_type
        WHEN 'location_mismatch' THEN 'location'
        WHEN 'missing' THEN 'status'
        WHEN 'retired_but_active' THEN 'status'
        WHEN 'status_condition_mismatch' THEN CASE WHEN found_condition IS NOT NULL
                                                   THEN 'condition' ELSE 'status' END
        WHEN 'custodian_mismatch' THEN 'custodian'
        WHEN 'source_conflict' THEN split_part(expected, ':', 1)
        WHEN 'identity_conflict' THEN 'serial'
        WHEN 'probable_match' THEN 'serial'
        ELSE 'record' END AS field,
    expected AS current_value,
    CASE variance_type
        WHEN 'location_mismatch' THEN found_location
        WHEN 'missing' THEN 'missing (under investigation)'
        WHEN 'retired_but_active' THEN 'in_use, once disposal records are checked'
        WHEN 'status_condition_mismatch' THEN coalesce(found_condition, 'in_use')
        WHEN 'custodian_mismatch' THEN coalesce(found_custodian, '')
        WHEN 'source_conflict' THEN expected
        WHEN 'unrecorded' THEN found
        WHEN 'duplicate_record' THEN 'keep ' || asset_key
        ELSE '' END AS proposed_value,
    detail AS reason
FROM s
"""
    )
    (out / "corrections").mkdir(exist_ok=True)
    counts: dict[str, int] = {}
    rows = con.execute(
        "SELECT source, count(*) FROM corrections GROUP BY source ORDER BY source"
    ).fetchall()
    cols = ", ".join(
        f"{escape_formula_sql(c)} AS {ident(c)}" if c != "priority" else ident(c)
        for c in CORRECTION_COLUMNS
    )
    for source, n in rows:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(source))
        con.execute(
            f"COPY (SELECT {cols} FROM corrections WHERE source = {lit(str(source))} "
            "ORDER BY priority, variance_type, asset_key, variance_id) "
            f"TO {lit(str(out / 'corrections' / (safe + '.csv')))} (FORMAT CSV, HEADER)"
        )
        counts[str(source)] = int(n)
    return counts
