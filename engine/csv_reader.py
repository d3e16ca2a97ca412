"""Reading a CSV export: every column as text, each row with the line it is on.

DuckDB parses the file (after it is transcoded to UTF-8 when it is not; see
:mod:`tagsweep.engine.text_encoding`) and keeps the records it cannot split as bad
rows. The line numbers are those an editor shows, also after a quoted value that spans
lines, so a bad row or bad value can be found in the original file. :func:`csv_rows` is
the small reader for mapping tables (EPC → asset tag).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from tagsweep.engine import sandbox
from tagsweep.engine.hygiene import free_name, with_header
from tagsweep.engine.snapshot import LINE_COLUMN, BadRow, FreezeError
from tagsweep.engine.text_encoding import TextEncoding, decode_lines, detect_encoding


def _csv_to_utf8(path: Path, enc: TextEncoding, tmp_dir: Path) -> Path:
    if enc.encoding == "utf-8" and not enc.foreign_lines:
        return path
    out = tmp_dir / (path.stem + ".utf8.csv")
    with out.open("w", encoding="utf-8", newline="") as dst:
        dst.writelines(decode_lines(path, enc))
    return out


def _physical_lines(path: Path) -> int:
    """Lines in a file (a last line without a newline counts)."""
    count = 0
    last = b"\n"
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (0 if last == b"\n" else 1)


def _record_start_lines(path: Path, delimiter: str) -> list[int]:
    """The line each CSV record starts on (header included, blank lines skipped): a
    quoted value may span lines, so records and lines part ways after it."""
    starts: list[int] = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        while True:
            start = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            if record:
                starts.append(start)
    return starts


def _record_lines(path: Path, records: int, columns: int) -> list[int] | None:
    """Line of each record (index 0: the header) when some record spans several lines;
    None when every record is one line (record n is on line n + 1), or when the file
    cannot be re-read as the same number of records. The delimiter is the one that
    splits the header into the ``columns`` DuckDB found."""
    if _physical_lines(path) == records + 1:
        return None
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            header = fh.readline()
        delimiter = next(
            (d for d in ",;\t|" if len(next(csv.reader([header], delimiter=d), [])) == columns),
            None,
        )
        if delimiter is None:
            return None
        starts = _record_start_lines(path, delimiter)
    except (csv.Error, UnicodeDecodeError):
        return None
    return starts if len(starts) == records + 1 else None


def _accepted_lines(
    n_rows: int, rejected: Sequence[int], record_lines: Sequence[int] | None = None
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Line numbers of the accepted data rows, given the rejected records (numbered as
    DuckDB numbers them: the header is 1, the first data record 2).

    Without ``record_lines`` record n is on line n; with it (quoted values spanning
    lines), each record's own starting line."""
    total = n_rows + len(rejected)
    records = np.arange(2, total + 2, dtype=np.int64)
    if rejected:
        records = records[~np.isin(records, np.asarray(rejected, dtype=np.int64))]
    records = records[:n_rows]
    if record_lines is None:
        return records
    return np.asarray(record_lines, dtype=np.int64)[records - 1]


def read_csv(
    path: Path, source: str, tmp_dir: Path, encoding: str | None = None
) -> tuple[pa.Table, list[BadRow], TextEncoding]:
    """Every column as text plus ``_line``; rows DuckDB cannot parse become bad rows.

    ``_line`` and the bad rows' lines are lines of the file as an editor shows them,
    also after a quoted value that spans lines. ``encoding`` overrides detection."""
    enc = TextEncoding(encoding) if encoding else detect_encoding(path)
    try:
        readable = _csv_to_utf8(path, enc, tmp_dir)
    except UnicodeDecodeError as exc:
        raise FreezeError(f"{path}: not {enc.encoding} at byte {exc.start}: {exc.reason}") from None
    con = sandbox.connect(read=[readable])
    try:
        con.execute(
            "CREATE TABLE t AS SELECT * FROM read_csv(?, all_varchar=true, header=true, "
            "store_rejects=true, null_padding=false)",
            [str(readable)],
        )
        table = con.sql("SELECT * FROM t").to_arrow_table()
        rejects = con.execute(
            "SELECT line, error_type, error_message FROM reject_errors ORDER BY line"
        ).fetchall()
        first = con.execute(
            "SELECT * FROM read_csv(?, all_varchar=true, header=false) LIMIT 1", [str(readable)]
        ).fetchone()
        seen = sorted({int(line) for line, _, _ in rejects})
        record_lines = _record_lines(readable, table.num_rows + len(seen), table.num_columns)
    except duckdb.Error as exc:
        raise FreezeError(f"{path}: cannot read as CSV: {exc}") from None
    finally:
        con.close()
    bad: list[BadRow] = []
    reported: set[int] = set()
    for line, kind, message in rejects:
        if int(line) in reported:
            continue
        reported.add(int(line))
        where = record_lines[int(line) - 1] if record_lines is not None else int(line)
        bad.append(BadRow(source, path.name, where, f"{kind}: {message}".strip()))
    lines = _accepted_lines(table.num_rows, seen, record_lines)
    table = table.rename_columns(free_name(table.column_names, LINE_COLUMN))
    table = table.append_column(LINE_COLUMN, pa.array(lines, pa.int64()))
    if first is not None and len(first) == table.num_columns - 1:
        table = with_header(table, [str(v or "") for v in first])
    return table, bad, enc


def csv_rows(path: Path) -> list[dict[str, str]]:
    """Small helper for mapping tables (EPC → asset tag): a CSV as dictionaries."""
    with path.open(encoding=detect_encoding(path).encoding, newline="") as fh:
        return [dict(r) for r in csv.DictReader(fh)]
