"""Reading any export by its kind (CSV, XLSX, JSON, Parquet) into one shape: every
column as text plus ``_line``, with the rows that could not be read, within limits.

:func:`read_export` checks the file against the configured limits before, while and
after reading (:mod:`tagsweep.engine.limits`), hands it to the reader of its kind
(:mod:`~tagsweep.engine.csv_reader`, :mod:`~tagsweep.engine.xlsx_reader`,
:mod:`~tagsweep.engine.json_reader`, or :func:`read_parquet` here) and cleans the result
(:func:`tagsweep.engine.hygiene.clean_table`). Whatever cannot be read is a
:class:`~tagsweep.engine.snapshot.FreezeError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from tagsweep.config.engine import ExportLimits
from tagsweep.engine import sandbox
from tagsweep.engine.csv_reader import read_csv
from tagsweep.engine.hygiene import clean_table, free_name, with_header
from tagsweep.engine.json_reader import read_json
from tagsweep.engine.limits import LimitError, check_file_size, check_json_depth, check_table
from tagsweep.engine.snapshot import LINE_COLUMN, BadRow, FreezeError
from tagsweep.engine.stages import ident, lit
from tagsweep.engine.text_encoding import TextEncoding, detect_encoding
from tagsweep.engine.xlsx_reader import read_xlsx


def read_parquet(path: Path) -> pa.Table:
    con = sandbox.connect(read=[path])
    try:
        names = [
            r[0]
            for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
        ]
        cols = ", ".join(
            f"CAST({ident(n)} AS VARCHAR) AS {ident(free)}"
            for n, free in zip(names, free_name(names, LINE_COLUMN), strict=True)
        )
        return con.sql(
            f"SELECT {cols}, CAST(file_row_number + 1 AS BIGINT) AS {LINE_COLUMN} "
            f"FROM read_parquet({lit(str(path))}, file_row_number = true) "
            "ORDER BY file_row_number"
        ).to_arrow_table()
    except duckdb.Error as exc:
        raise FreezeError(f"{path}: cannot read as Parquet: {exc}") from None
    finally:
        con.close()


def read_export(
    path: Path,
    source: str,
    tmp_dir: Path,
    limits: ExportLimits | None = None,
    encoding: str | None = None,
) -> tuple[pa.Table, list[BadRow], str, TextEncoding | None]:
    """(table of text columns + ``_line``, bad rows, format, text encoding) of any
    export, within ``limits`` (engine.limits: checked before, while and after reading);
    ``encoding`` overrides the detection for CSV."""
    limits = limits or ExportLimits()
    try:
        check_file_size(path, limits)
        if path.suffix.lower() in {".json", ".jsonl", ".ndjson"}:
            check_json_depth(path.read_bytes(), path, limits)
        table, bad, fmt, enc = _read_export(path, source, tmp_dir, limits, encoding)
        check_table(table, path, limits, LINE_COLUMN)
    except LimitError as exc:
        raise FreezeError(str(exc)) from None
    return clean_table(table, path), bad, fmt, enc


def _read_export(
    path: Path, source: str, tmp_dir: Path, limits: ExportLimits, encoding: str | None
) -> tuple[pa.Table, list[BadRow], str, TextEncoding | None]:
    suffix = path.suffix.lower()
    if suffix in {".xlsx", ".xlsm"}:
        table, bad = read_xlsx(path, source, limits)
        return table, bad, "xlsx", None
    if suffix in {".json", ".jsonl", ".ndjson"}:
        table, bad = read_json(path, source)
        return table, bad, "json", detect_encoding(path)
    if suffix == ".parquet":
        table = read_parquet(path)
        written = pq.read_schema(path).names
        read = table.column_names[:-1]  # the last is _line
        if len(written) == len(read) and any("\x00" in n for n in written):
            # DuckDB ends a column name at a NUL: keep the name as written (hygiene
            # strips the NUL and says so)
            names = [w if "\x00" in w else n for w, n in zip(written, read, strict=True)]
            table = table.rename_columns([*names, LINE_COLUMN])
        return with_header(table, written), [], "parquet", None
    table, bad, enc = read_csv(path, source, tmp_dir, encoding)
    return table, bad, "csv", enc
