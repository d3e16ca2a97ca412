"""Stage 1, freeze: copy each export into a hashed, immutable snapshot.

The seed method starts from "one controlled export from each source at the same time",
frozen before any comparison, so that a reconciliation can be re-run and audited
against exactly the data it saw. A snapshot directory holds, per source, the original
file byte for byte (``exports/``), a Parquet copy with every value as text plus the
line it came from (``<source>.parquet``), and ``snapshot.json`` with hashes, row
counts, the column mapping chosen, export times and every rejected row. The engine
reads only snapshots, never the live exports.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tagsweep import __version__
from tagsweep.config.engine import EngineSection, ExportLimits
from tagsweep.engine import sandbox
from tagsweep.engine.export_rules import (
    BadValue,
    ExportAt,
    RoleError,
    SkippedRow,
    find_bad_values,
    resolve_roles,
    skip_footer_rows,
)
from tagsweep.engine.hygiene import duplicate_headers, free_name, strip_nul, unique_names
from tagsweep.engine.limits import (
    LimitError,
    RowBudget,
    check_file_size,
    check_json_depth,
    check_table,
    check_zip,
)
from tagsweep.engine.normalize import MACROS
from tagsweep.engine.presets import PRESETS, Preset, header_key, resolve_columns
from tagsweep.engine.stages import PARQUET_ROW_GROUP_ROWS, ident, lit
from tagsweep.hashing import sha256_file

SNAPSHOT_MANIFEST = "snapshot.json"
SNAPSHOT_FORMAT = 1
LINE_COLUMN = "_line"

#: Keys under which JSON exports nest their list of records (ServiceNow ``result`` and
#: ``records``, Microsoft Graph ``value``, Jamf Pro API ``results``).
#: Where API envelopes keep their records: ServiceNow ``result``, NetBox and Jamf Pro
#: ``results``, Snipe-IT ``rows``, Microsoft Graph ``value``, Jamf Classic ``computers``...
_JSON_LIST_KEYS = (
    "records", "result", "results", "rows", "value", "data", "items", "devices", "computers",
)  # fmt: skip


class FreezeError(Exception):
    """An export cannot be frozen (unreadable, or a required column is missing)."""


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One export to freeze: ``name`` of the source, the file, and how to read it."""

    name: str
    path: Path
    preset: str | None = None
    exported_at: datetime | None = None
    #: where a pulled export came from (a NetBox API endpoint and its filters)
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row kept out of the snapshot or the run, with where it is and why."""

    source: str
    file: str
    line: int
    reason: str


@dataclass(slots=True)
class FrozenSource:
    name: str
    preset: str
    role: str
    original_name: str
    file: str  # the frozen Parquet, relative to the snapshot directory
    export_copy: str
    sha256: str  # of the original export
    rows: int
    bad_rows: int
    exported_at: str
    columns: dict[str, list[str] | str]
    format: str
    encoding: str | None = None
    bad_values: int = 0
    skipped_rows: int = 0
    origin: str | None = None  # API endpoint and filters of a pulled export


@dataclass(slots=True)
class Snapshot:
    """A frozen set of exports: what ``reconcile run`` reads."""

    directory: Path
    sources: list[FrozenSource]
    frozen_at: str
    warnings: list[str] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    #: values that will not parse (the run empties them, keeping the record)
    bad_values: list[BadValue] = field(default_factory=list)
    #: rows that are not records (UI footers and totals), skipped
    skipped_rows: list[SkippedRow] = field(default_factory=list)

    def source(self, name: str) -> FrozenSource:
        for src in self.sources:
            if src.name == name:
                return src
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class TextEncoding:
    """How a text export is decoded: ``encoding`` for the whole file, except the
    ``foreign_lines`` (a UTF-8 file with a few windows-1252 lines), decoded as
    ``FALLBACK_ENCODING`` one by one."""

    encoding: str
    foreign_lines: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        if not self.foreign_lines:
            return self.encoding
        return f"{self.encoding} ({len(self.foreign_lines)} line(s) {FALLBACK_ENCODING})"


#: What a byte that is not UTF-8 most likely is: Excel on Windows in Western Europe and
#: the Americas saves "CSV" as windows-1252 (a superset of latin-1 with '€' at 0x80).
FALLBACK_ENCODING = "windows-1252"


def _single_byte(data: bytes) -> str:
    try:
        data.decode(FALLBACK_ENCODING)
    except UnicodeDecodeError:
        return "latin-1"  # bytes windows-1252 leaves undefined (0x81, 0x8D, ...)
    return FALLBACK_ENCODING


def detect_encoding(path: Path) -> TextEncoding:
    """UTF-16 by BOM; UTF-8 (with or without BOM) when every byte fits; windows-1252
    (latin-1 where it has no character) when no line is UTF-8 beyond ASCII; and when
    most non-ASCII lines are UTF-8 but a few are not, UTF-8 with those lines read as
    windows-1252 and named, instead of a whole file of mojibake."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return TextEncoding("utf-16")
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        pass
    else:
        return TextEncoding("utf-8")
    utf8_lines = 0
    foreign: list[int] = []
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if line.isascii():
                continue
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                foreign.append(number)
            else:
                utf8_lines += 1
    if utf8_lines == 0:
        return TextEncoding(_single_byte(path.read_bytes()))
    return TextEncoding("utf-8", tuple(foreign))


def _detect_encoding(path: Path) -> str:
    return detect_encoding(path).encoding


def decode_lines(path: Path, enc: TextEncoding) -> Iterator[str]:
    """The file's text, line by line, each line in the encoding it is in."""
    if not enc.foreign_lines:
        with path.open(encoding=enc.encoding, newline="") as fh:
            yield from fh
        return
    foreign = set(enc.foreign_lines)
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if number in foreign:
                yield line.decode(_single_byte(line), errors="replace")
            else:
                yield line.decode("utf-8-sig" if number == 1 else "utf-8")


def _csv_to_utf8(path: Path, enc: TextEncoding, tmp_dir: Path) -> Path:
    if enc.encoding == "utf-8" and not enc.foreign_lines:
        return path
    out = tmp_dir / (path.stem + ".utf8.csv")
    with out.open("w", encoding="utf-8", newline="") as dst:
        dst.writelines(decode_lines(path, enc))
    return out


def encoding_warning(source: str, path: Path, enc: TextEncoding) -> str | None:
    """What to tell the user about a UTF-8 file with lines in another encoding."""
    if not enc.foreign_lines:
        return None
    shown = ", ".join(str(n) for n in enc.foreign_lines[:10])
    more = f" and {len(enc.foreign_lines) - 10} more" if len(enc.foreign_lines) > 10 else ""
    return (
        f"source {source}: {path.name} is UTF-8 but line(s) {shown}{more} are not; they "
        f"were read as {FALLBACK_ENCODING} (one such byte would otherwise turn every accent "
        "in the file into mojibake): check those values, and export the file as UTF-8"
    )


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


def _cell_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def read_xlsx(
    path: Path, source: str, limits: ExportLimits | None = None
) -> tuple[pa.Table, list[BadRow]]:
    """First worksheet; the first non-empty row is the header; ``_line`` is the sheet row.

    The zip is checked against ``limits`` before it is opened, and rows and width as
    they stream; whatever the XML parser refuses (entity declarations, malformed XML)
    is a FreezeError naming the file, never a traceback."""
    try:
        return _read_xlsx(path, source, limits or ExportLimits())
    except (FreezeError, LimitError, MemoryError):
        raise
    except Exception as exc:  # openpyxl and its XML parser raise many kinds
        root: BaseException = exc  # openpyxl wraps the parser's error: report that one
        while root.__cause__ is not None or root.__context__ is not None:
            root = root.__cause__ or root.__context__ or root
        where = getattr(root, "position", None)  # ElementTree
        lineno = getattr(root, "lineno", None)
        if where is None and isinstance(lineno, int):
            where = (lineno, getattr(root, "offset", 0) + 1)  # expat (defusedxml)
        at = f" (XML line {where[0]}, column {where[1]})" if where else ""
        why = f"{type(root).__name__}: {root}"
        if type(root).__name__ in {"EntitiesForbidden", "DTDForbidden"}:
            why += " (XML entity and DTD declarations are refused in exports)"
        raise FreezeError(f"{path}: cannot read as XLSX{at}: {why}") from None


def _read_xlsx(path: Path, source: str, limits: ExportLimits) -> tuple[pa.Table, list[BadRow]]:
    import openpyxl

    check_zip(path, limits)
    budget = RowBudget(path, limits, unit="sheet row")
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        # The declared dimension is not trusted: rows padded to a bogus "A1:XFD1048576"
        # are billions of empty cells. Without it, each row has the cells it holds.
        sheet.reset_dimensions()
        header: list[str] | None = None
        original: list[str] = []
        columns: dict[str, list[str | None]] = {}
        lines: list[int] = []
        bad: list[BadRow] = []
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            budget.read(len(row), number)
            cells = [_cell_text(v) for v in row]
            if header is None:
                if any(cells):
                    # read-only sheets pad every row to the widest one: drop empty tails
                    width = max(i for i, c in enumerate(cells) if c) + 1
                    original = [c or f"column{i + 1}" for i, c in enumerate(cells[:width])]
                    budget.width(len(original), number)
                    header = free_name(unique_names(original), LINE_COLUMN)
                    columns = {h: [] for h in header}
                continue
            if not any(cells):
                continue
            if len(cells) > len(header) and any(cells[len(header) :]):
                bad.append(BadRow(source, path.name, number, "values beyond the header columns"))
                continue
            budget.row(number)
            for i, name in enumerate(header):
                columns[name].append(cells[i] if i < len(cells) else None)
            lines.append(number)
    finally:
        book.close()
    if header is None:
        raise FreezeError(f"{path}: the first worksheet is empty")
    arrays = {k: pa.array(v, pa.string()) for k, v in columns.items()}
    arrays[LINE_COLUMN] = pa.array(lines, pa.int64())
    return with_header(pa.table(arrays), original), bad


def _flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            # ServiceNow ``sysparm_display_value=all`` gives {display_value, value, link}
            if "display_value" in value:
                out[name] = _cell_text(value.get("display_value"))
            else:
                out.update(_flatten(value, name + "."))
        elif isinstance(value, list):
            out[name] = json.dumps(value, sort_keys=True)
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = _cell_text(value)
    return out


def _is_prefix(name: str, nested: set[str]) -> bool:
    return any(n == name or n.startswith(name + ".") for n in nested)


def _envelope_records(data: Mapping[str, Any]) -> Any:
    """The records of an API envelope: a known key holding a list, else the one member
    that is a list of objects, else the object itself as the only record."""
    for key in _JSON_LIST_KEYS:
        if isinstance(data.get(key), list):
            return data[key]
    lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], Mapping)]
    return lists[0] if len(lists) == 1 else [data]


def read_json(path: Path, source: str) -> tuple[pa.Table, list[BadRow]]:
    """A JSON array of objects, an API envelope holding one, or JSON Lines."""
    text = "".join(decode_lines(path, detect_encoding(path))).lstrip("\ufeff")
    records: list[tuple[int, Mapping[str, Any]]] = []
    bad: list[BadRow] = []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                bad.append(BadRow(source, path.name, number, f"not JSON: {exc.msg}"))
                continue
            if isinstance(item, Mapping):
                records.append((number, item))
            else:
                bad.append(BadRow(source, path.name, number, "not a JSON object"))
    if data is not None:
        if isinstance(data, Mapping):
            data = _envelope_records(data)
        if not isinstance(data, list):
            raise FreezeError(f"{path}: expected a list of records")
        for number, item in enumerate(data, start=1):
            if isinstance(item, Mapping):
                records.append((number, item))
            else:
                bad.append(BadRow(source, path.name, number, "record is not a JSON object"))
    flat = [(n, _flatten(r)) for n, r in records]
    names: dict[str, None] = {}
    for _, row in flat:
        names.update(dict.fromkeys(row))
    # An object member that is null in some records ("location": null next to
    # "location": {"name": ...}) is a column of its own only if it ever holds a value:
    # an always-empty "location" must not hide "location.name" from the presets.
    filled = {k for _, row in flat for k, v in row.items() if v is not None}
    nested = {k.rsplit(".", 1)[0] for k in names if "." in k}
    names = {k: None for k in names if k in filled or not _is_prefix(k, nested)}
    arrays = {
        free: pa.array([row.get(k) for _, row in flat], pa.string())
        for k, free in zip(names, free_name(list(names), LINE_COLUMN), strict=True)
    }
    arrays[LINE_COLUMN] = pa.array([n for n, _ in flat], pa.int64())
    return with_header(pa.table(arrays), list(names)), bad


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
    return hygiene(table, path), bad, fmt, enc


_HEADER_KEY = b"tagsweep.header"
_NOTES_KEY = b"tagsweep.notes"


def with_header(table: pa.Table, header: Sequence[str]) -> pa.Table:
    """``table`` remembering the file's own header row (before duplicates were renamed)."""
    return table.replace_schema_metadata({_HEADER_KEY: json.dumps(list(header))})


def hygiene(table: pa.Table, path: Path) -> pa.Table:
    """NUL characters removed, duplicate headers named (engine.hygiene); the notes travel
    in the table's metadata until :func:`take_notes`."""
    names = [n for n in table.column_names if n != LINE_COLUMN]
    meta = table.schema.metadata or {}
    original = json.loads(meta[_HEADER_KEY]) if _HEADER_KEY in meta else names
    notes = [f"{path.name}: {n}" for n in duplicate_headers(original, names)]
    renamed = [k for o, k in zip(original, names, strict=False) if o.lower() == LINE_COLUMN]
    notes += [
        f"{path.name}: column {LINE_COLUMN!r} is kept as {k!r} (the snapshot's "
        f"{LINE_COLUMN!r} holds the line numbers)"
        for k in renamed
    ]
    table, nul = strip_nul(table, LINE_COLUMN)
    if nul:
        notes.append(f"{path.name}: {nul}")
        table = table.rename_columns(unique_names(table.column_names))
    return table.replace_schema_metadata({_NOTES_KEY: json.dumps(notes)})


def take_notes(table: pa.Table) -> tuple[pa.Table, list[str]]:
    """The table without its metadata, and the notes :func:`hygiene` left in it."""
    meta = table.schema.metadata or {}
    notes = json.loads(meta[_NOTES_KEY]) if _NOTES_KEY in meta else []
    return table.replace_schema_metadata(None), [str(n) for n in notes]


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


def preset_for(spec: SourceSpec, settings: EngineSection) -> tuple[Preset, str | None]:
    """The preset of a source (explicit, configured, or named after the source) and
    its configured role, if any (``resolve_roles`` decides the rest)."""
    configured = settings.sources.get(spec.name)
    name = spec.preset or (configured.preset if configured else None)
    if name is None:
        name = spec.name if spec.name in PRESETS else "generic"
    if name not in PRESETS:
        raise FreezeError(
            f"source {spec.name!r}: unknown preset {name!r}; known: {sorted(PRESETS)}"
        )
    return PRESETS[name], (configured.role if configured and configured.role else None)


def _exported_at(
    spec: SourceSpec, table: pa.Table, columns: Mapping[str, list[str] | str]
) -> datetime:
    if spec.exported_at is not None:
        return spec.exported_at.astimezone(UTC)
    column = columns.get("updated_at")
    if isinstance(column, str) and column in table.column_names:
        con = sandbox.connect()
        try:
            con.register("t", table.select([column]))
            con.execute(MACROS)
            row = con.execute(f"SELECT max(ts_parse({ident(column)})) FROM t").fetchall()[0]
        finally:
            con.close()
        if row and row[0] is not None:
            value: datetime = row[0]
            return value.astimezone(UTC)
    return datetime.fromtimestamp(spec.path.stat().st_mtime, tz=UTC)


def freeze(specs: Sequence[SourceSpec], out_dir: Path, settings: EngineSection) -> Snapshot:
    """Freeze ``specs`` into ``out_dir``; raises FreezeError when a required column is
    missing (nothing useful can be done with that export), otherwise records bad rows.

    The snapshot is written into a hidden folder beside ``out_dir`` and renamed to it
    once complete: a freeze that fails (or is killed) leaves no half-written snapshot,
    and running it again works."""
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FreezeError(f"{out_dir} is not empty: a snapshot is never overwritten")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir()
    try:
        snapshot = _freeze_into(specs, work, settings)
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above)
        work.rename(out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    snapshot.directory = out_dir
    return snapshot


def _freeze_into(specs: Sequence[SourceSpec], out_dir: Path, settings: EngineSection) -> Snapshot:
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise FreezeError(f"source names must be unique, got {names}")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FreezeError(f"{out_dir} is not empty: a snapshot is never overwritten")
    (out_dir / "exports").mkdir(parents=True, exist_ok=True)
    tmp_dir = out_dir / ".tmp"
    tmp_dir.mkdir(exist_ok=True)
    sources: list[FrozenSource] = []
    bad_rows: list[BadRow] = []
    hygiene_notes: list[str] = []
    bad_values: list[BadValue] = []
    skipped: list[SkippedRow] = []
    warnings: list[str] = hygiene_notes
    presets = {spec.name: preset_for(spec, settings) for spec in specs}
    try:
        roles = resolve_roles([(n, p, r) for n, (p, r) in presets.items()], settings)
    except RoleError as exc:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise FreezeError(str(exc)) from None
    con = sandbox.connect()  # UTC; reads only the Arrow tables registered with it
    con.execute(MACROS)
    try:
        for spec in specs:
            if not spec.path.is_file():
                raise FreezeError(f"source {spec.name!r}: {spec.path} does not exist")
            preset, role = presets[spec.name][0], roles[spec.name]
            configured = settings.sources.get(spec.name)
            table, bad, fmt, enc = read_export(
                spec.path,
                spec.name,
                tmp_dir,
                settings.limits,
                configured.encoding if configured else None,
            )
            table, notes = take_notes(table)
            hygiene_notes += [f"source {spec.name}: {n}" for n in notes]
            if enc is not None and (note := encoding_warning(spec.name, spec.path, enc)):
                warnings.append(note)
            headers = [c for c in table.column_names if c != LINE_COLUMN]
            overrides = dict(configured.columns) if configured else {}
            known = {header_key(h) for h in headers}
            absent = sorted(c for c in overrides.values() if header_key(c) not in known)
            if absent:
                raise FreezeError(
                    f"source {spec.name!r}: column(s) {absent} configured in "
                    f"[engine.sources.{spec.name}.columns] are not in {spec.path.name}; "
                    f"it has {headers}"
                )
            columns = resolve_columns(preset, headers, overrides)
            if not any(f in columns for f in preset.required_any):
                raise FreezeError(
                    f"source {spec.name!r}: {spec.path.name} has none of the columns for "
                    f"{' / '.join(preset.required_any)} (preset {preset.name}); it has "
                    f"{headers}. Map them in [engine.sources.{spec.name}.columns]."
                )
            table, footers = skip_footer_rows(table, columns, spec.name, spec.path.name)
            skipped.extend(footers)
            export = ExportAt(spec.name, spec.path.name, preset, columns)
            values = find_bad_values(con, table, export, settings)
            bad_values.extend(values)
            exported_at = _exported_at(spec, table, columns)
            copy_name = f"exports/{spec.name}{spec.path.suffix.lower()}"
            shutil.copyfile(spec.path, out_dir / copy_name)
            frozen = f"{spec.name}.parquet"
            pq.write_table(
                table, out_dir / frozen, compression="zstd", row_group_size=PARQUET_ROW_GROUP_ROWS
            )
            bad_rows.extend(bad)
            sources.append(
                FrozenSource(
                    name=spec.name,
                    preset=preset.name,
                    role=role,
                    original_name=spec.path.name,
                    file=frozen,
                    export_copy=copy_name,
                    sha256=sha256_file(spec.path),
                    rows=table.num_rows,
                    bad_rows=len(bad),
                    exported_at=exported_at.isoformat(),
                    columns=columns,
                    format=fmt,
                    encoding=enc.label if enc is not None else None,
                    bad_values=len(values),
                    skipped_rows=len(footers),
                    origin=spec.origin,
                )
            )
    finally:
        con.close()
        shutil.rmtree(tmp_dir, ignore_errors=True)
    times = [datetime.fromisoformat(s.exported_at) for s in sources]
    if len(times) > 1:
        spread = (max(times) - min(times)).total_seconds() / 3600
        if spread > settings.max_export_spread_hours:
            first = min(sources, key=lambda s: s.exported_at)
            last = max(sources, key=lambda s: s.exported_at)
            warnings.append(
                f"exports were taken {spread:.1f} h apart ({first.name} {first.exported_at}, "
                f"{last.name} {last.exported_at}); more than max_export_spread_hours = "
                f"{settings.max_export_spread_hours:g}: the count compares moving targets"
            )
    snapshot = Snapshot(
        directory=out_dir,
        sources=sources,
        frozen_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
        warnings=warnings,
        bad_rows=bad_rows,
        bad_values=bad_values,
        skipped_rows=skipped,
    )
    write_manifest(snapshot)
    return snapshot


def write_manifest(snapshot: Snapshot) -> None:
    data = {
        "snapshot_format": SNAPSHOT_FORMAT,
        "tagsweep_version": __version__,
        "frozen_at": snapshot.frozen_at,
        "sources": [
            {k: v for k, v in asdict(s).items() if k != "origin" or v is not None}
            | {"frozen_sha256": _frozen_hash(snapshot, s)}
            for s in snapshot.sources
        ],
        "warnings": snapshot.warnings,
        "bad_rows": [asdict(b) for b in snapshot.bad_rows],
        "bad_values": [asdict(b) for b in snapshot.bad_values],
        "skipped_rows": [asdict(b) for b in snapshot.skipped_rows],
    }
    path = snapshot.directory / SNAPSHOT_MANIFEST
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    path.chmod(0o444)
    for src in snapshot.sources:
        (snapshot.directory / src.file).chmod(0o444)


def _frozen_hash(snapshot: Snapshot, source: FrozenSource) -> str:
    return sha256_file(snapshot.directory / source.file)


def load_snapshot(directory: Path) -> Snapshot:
    """Read a snapshot and verify every frozen file still has the hash it was frozen with."""
    path = directory / SNAPSHOT_MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FreezeError(f"{path}: not a snapshot ({exc.strerror})") from None
    sources = []
    for raw in data["sources"]:
        expected = raw.pop("frozen_sha256")
        src = FrozenSource(**raw)
        actual = sha256_file(directory / src.file)
        if actual != expected:
            raise FreezeError(
                f"{directory / src.file}: sha256 {actual} differs from the snapshot manifest "
                f"({expected}); a frozen snapshot must not change. Freeze again."
            )
        sources.append(src)
    return Snapshot(
        directory=directory,
        sources=sources,
        frozen_at=data["frozen_at"],
        warnings=list(data.get("warnings", [])),
        bad_rows=[BadRow(**b) for b in data.get("bad_rows", [])],
        bad_values=[BadValue(**b) for b in data.get("bad_values", [])],
        skipped_rows=[SkippedRow(**b) for b in data.get("skipped_rows", [])],
    )


def csv_rows(path: Path) -> list[dict[str, str]]:
    """Small helper for mapping tables (EPC → asset tag): a CSV as dictionaries."""
    with path.open(encoding=_detect_encoding(path), newline="") as fh:
        return [dict(r) for r in csv.DictReader(fh)]
