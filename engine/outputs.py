"""Stage 5, outputs: the files a run leaves behind, byte-identical on a re-run.

Everything is sorted on a total order and written with fixed settings, and nothing
records wall-clock time, so the same snapshot, counts and configuration give the same
bytes: an auditor can re-run a reconciliation and compare hashes.

The million-row Parquet files (register, matches, variance log) are streamed from
DuckDB's sorted result as Arrow batches into pyarrow's writer (zstd level 1, no
dictionary pages, no bloom filters): about three times cheaper than DuckDB's own
Parquet writer on wide text tables.

The CSV variance log escapes formula injection (OWASP): a text cell starting with
``=``, ``+``, ``-``, ``@``, tab or carriage return is prefixed with ``'`` so a
spreadsheet shows it as text instead of executing it. Parquet and JSONL keep the raw
values, since no spreadsheet evaluates them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
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

#: register.parquet's data columns: the asset key, then every register field (the
#: status followed by the source's own words for it).
REGISTER_COLUMNS: tuple[str, ...] = (
    "asset_key",
    *(
        c
        for f in REGISTER_FIELDS
        if f != "updated_at"
        for c in ((f, "status_label") if f == "status" else (f,))
    ),
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
BATCH_ROWS = 2 * PARQUET_ROW_GROUP_ROWS


def write_parquet(con: duckdb.DuckDBPyConnection, sql: str, path: Path) -> None:
    """Stream the result of ``sql`` (sorted by the caller) into a Parquet file."""
    reader = con.sql(sql).to_arrow_reader(BATCH_ROWS)
    with pq.ParquetWriter(
        path,
        reader.schema,
        compression="zstd",
        compression_level=1,
        # dictionary pages cost more than they save here: most columns are keys, text
        # and dates of high cardinality, and zstd packs the few repetitive ones anyway
        # (register.parquet: about 3x faster to write, no larger)
        use_dictionary=False,
        # the file describes itself with Parquet types only, as DuckDB's writer did
        store_schema=False,
    ) as writer:
        for batch in reader:
            if batch.num_rows:
                writer.write_batch(batch, row_group_size=PARQUET_ROW_GROUP_ROWS)


#: The variance log's total order (``variance_id`` alone is unique).
VARIANCE_ORDER = ("priority", "type_order", "asset_key", "variance_id")


def variance_select() -> str:
    """The variance log, unsorted, as three renderings of each row: the raw columns
    (Parquet), the formula-escaped text columns (CSV, prefixed ``csv_``) and the row as
    one JSON object plus newline (JSONL, ``jsonl``), with the sort keys."""
    raw, esc, members = [], [], []
    for name, kind in VARIANCE_LOG_COLUMNS.items():
        cast = f"CAST({ident(name)} AS {_SQL_TYPES[kind]})"
        raw.append(f"{cast} AS {ident(name)}")
        if kind == "string":
            esc.append(f"{escape_formula_sql(name)} AS {ident('csv_' + name)}")
        members.append(f"{lit(name)}: {cast}")
    json_row = "CAST(to_json({" + ", ".join(members) + "}) AS VARCHAR) || chr(10) AS jsonl"
    return f"SELECT {', '.join(raw)}, {', '.join(esc)}, {json_row}, type_order FROM variances"


#: Up to this many variances, the log is sorted in memory by Arrow (fast: only the keys
#: are sorted); a longer log is sorted by DuckDB and streamed (memory stays bounded).
IN_MEMORY_SORT_ROWS = 400_000


def sorted_batches(
    con: duckdb.DuckDBPyConnection, sql: str, keys: Sequence[str], rows: int
) -> Iterator[pa.RecordBatch]:
    """The result of ``sql`` in the order of ``keys`` (a total order), in batches of
    whole Parquet row groups.

    A result of up to :data:`IN_MEMORY_SORT_ROWS` rows is computed in parallel and
    sorted by Arrow, which sorts only the keys and gathers the rows once, instead of the
    sort carrying every wide text column along; a larger one is sorted by DuckDB (which
    spills to disk under its memory limit) and streamed. Both give the same batches."""
    batch_rows = PARQUET_ROW_GROUP_ROWS
    if rows <= IN_MEMORY_SORT_ROWS:
        # one chunk per column: a gather from several chunks costs twice as much
        table = con.sql(sql).to_arrow_table().combine_chunks()
        order = pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys])
        for start in range(0, len(order), batch_rows):
            yield from table.take(order[start : start + batch_rows]).to_batches()
        return
    ordered = f"SELECT * FROM ({sql}) ORDER BY {', '.join(ident(k) for k in keys)}"
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in con.sql(ordered).to_arrow_reader(batch_rows):
        pending.append(batch)
        size += batch.num_rows
        while size >= batch_rows:  # regroup: DuckDB's batches need not be full
            whole = pa.Table.from_batches(pending).combine_chunks()
            yield whole.slice(0, batch_rows).to_batches()[0]
            rest = whole.slice(batch_rows)
            pending = rest.to_batches() if rest.num_rows else []
            size = rest.num_rows
    if size:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def write_text_column(column: pa.Array, fh: BinaryIO) -> None:
    """Write the values of a text column back to back (each carries its own newline):
    the Arrow value buffers go to the file as they are."""
    chunk = column.cast(pa.large_string())
    if not len(chunk):
        return
    offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64)
    start = int(offsets[chunk.offset])
    end = int(offsets[chunk.offset + len(chunk)])
    data = chunk.buffers()[2]
    if data is not None:
        fh.write(memoryview(data)[start:end])


#: CSV files: a header, then every row; text quoted, NULL as an empty field.
CSV_OPTIONS = pacsv.WriteOptions(include_header=True, batch_size=1 << 16)


def write_variance_log(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    """``variances.parquet``, ``variances.csv`` (formula-escaped) and ``variances.jsonl``
    from one read of the variance log, sorted once."""
    rows = int(con.execute("SELECT count(*) FROM variances").fetchall()[0][0])
    names = list(VARIANCE_LOG_COLUMNS)
    csv_names = ["csv_" + n if kind == "string" else n for n, kind in VARIANCE_LOG_COLUMNS.items()]
    parquet: pq.ParquetWriter | None = None
    csv: pacsv.CSVWriter | None = None
    try:
        with (
            (out / "variances.jsonl").open("wb") as jsonl,
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="variance-log") as pool,
        ):
            for batch in sorted_batches(con, variance_select(), VARIANCE_ORDER, rows):
                raw = pa.RecordBatch.from_arrays([batch.column(n) for n in names], names=names)
                escaped = pa.RecordBatch.from_arrays(
                    [batch.column(n) for n in csv_names], names=names
                )
                if parquet is None or csv is None:
                    parquet = pq.ParquetWriter(
                        out / "variances.parquet",
                        raw.schema,
                        compression="zstd",
                        compression_level=1,
                        use_dictionary=False,  # as write_parquet
                        store_schema=False,
                    )
                    csv = pacsv.CSVWriter(
                        out / "variances.csv", escaped.schema, write_options=CSV_OPTIONS
                    )
                # three encoders, each mostly one thread of Arrow: run side by side
                parts = [
                    pool.submit(parquet.write_batch, raw, row_group_size=PARQUET_ROW_GROUP_ROWS),
                    pool.submit(csv.write_batch, escaped),
                ]
                write_text_column(batch.column("jsonl"), jsonl)
                for part in parts:
                    part.result()
        if parquet is None:  # no variances: the files still exist, with their columns
            empty = con.sql(variance_select() + " LIMIT 0").to_arrow_table()
            pq.write_table(
                empty.select(names),
                out / "variances.parquet",
                compression="zstd",
                store_schema=False,
            )
            pacsv.write_csv(
                pa.table([empty.column(n) for n in csv_names], names=names),
                out / "variances.csv",
                CSV_OPTIONS,
            )
    finally:
        if parquet is not None:
            parquet.close()
        if csv is not None:
            csv.close()


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
        "WHERE asset_key IS NOT NULL ORDER BY asset_key, obs_key",
        out / "matches.parquet",
    )


def write_corrections(
    con: duckdb.DuckDBPyConnection, out: Path, register_source: str
) -> dict[str, int]:
    """``corrections/<source>.csv``: what each source should change, per variance.

    Proposals only: the seed says to confirm the cause before editing any record.
    """
    # what the count found for the custodian and condition variances, which are all
    # assets with checks of their own (asset_checks is a tenth of found_assets)
    con.execute(
        f"""
CREATE OR REPLACE TABLE corrections AS
WITH v AS (
    SELECT v.*, a.found_custodian, a.found_condition
    FROM variances v LEFT JOIN asset_checks a ON a.asset_key = v.asset_key
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
    cols = ", ".join(
        f"{escape_formula_sql(c)} AS {ident(c)}" if c != "priority" else ident(c)
        for c in CORRECTION_COLUMNS
    )
    # c.source: the raw source name (the select list holds the escaped one); sorted by
    # source first, so each source is one run of rows, written as it streams by
    counts: dict[str, int] = {
        str(source): int(n)
        for source, n in con.execute(
            "SELECT source, count(*) FROM corrections GROUP BY source ORDER BY source"
        ).fetchall()
    }
    reader = con.sql(
        f"SELECT {cols} FROM corrections c "
        "ORDER BY c.source, c.priority, c.variance_type, c.asset_key, c.variance_id"
    ).to_arrow_reader(1 << 17)
    targets = iter(counts.items())
    writer: pacsv.CSVWriter | None = None
    left = 0
    try:
        for batch in reader:
            offset = 0
            while offset < batch.num_rows:
                if left == 0:
                    if writer is not None:
                        writer.close()
                    source, left = next(targets)
                    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in source)
                    writer = pacsv.CSVWriter(
                        out / "corrections" / (safe + ".csv"),
                        batch.schema,
                        write_options=CSV_OPTIONS,
                    )
                take = min(left, batch.num_rows - offset)
                assert writer is not None
                writer.write_batch(batch.slice(offset, take))
                offset += take
                left -= take
    finally:
        if writer is not None:
            writer.close()
    return counts
