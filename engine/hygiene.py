"""Export hygiene: NUL characters and duplicate column headers, fixed and reported.

A NUL character in a value is never data (it is what a C string ends on, and what a
corrupted or hostile file carries); it must not reach an asset tag, a serial, or any
output. :func:`strip_nul` removes it from every value and header and says where it was.

Two columns with the same header are an ambiguity the engine must not decide silently:
:func:`duplicate_headers` names them, and the note says which one the presets read (the
first; the others keep their data under the name DuckDB gives them, ``<name>_1``...)
and how to choose another.

The readers leave the file's own header row in each table's metadata
(:func:`with_header`); :func:`clean_table` fixes both and leaves its notes there in turn,
until the freeze takes them (:func:`take_notes`). :func:`cell_text` is how a spreadsheet
cell or a JSON value becomes the text every snapshot column holds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from tagsweep.engine.presets import header_key
from tagsweep.engine.snapshot import LINE_COLUMN

NUL = "\x00"


def strip_nul(table: pa.Table, line_column: str) -> tuple[pa.Table, str | None]:
    """``table`` without NUL characters in its values and column names, and a note
    (how many values, the first line and column) when there were any."""
    names = [n.replace(NUL, "") for n in table.column_names]
    found = 0
    first: tuple[object, str] | None = None
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            hits = pc.match_substring(column, NUL)
            n = pc.sum(hits).as_py() or 0
            if n:
                found += n
                if first is None:
                    index = pc.index(hits, True).as_py()
                    line = (
                        table.column(line_column)[index].as_py()
                        if line_column in table.column_names
                        else index + 1
                    )
                    first = (line, name.replace(NUL, ""))
                columns.append(pc.replace_substring(column, NUL, ""))
                continue
        columns.append(column)
    renamed = sum(a != b for a, b in zip(names, table.column_names, strict=True))
    if not found and not renamed:
        return table, None
    parts = []
    if found and first is not None:
        parts.append(f"{found} value(s) (first on line {first[0]}, column {first[1]!r})")
    if renamed:
        parts.append(f"{renamed} column name(s)")
    note = f"NUL characters removed from {' and '.join(parts)}"
    return pa.table(columns, names=names), note


def duplicate_headers(original: Sequence[str], kept: Sequence[str]) -> list[str]:
    """Notes on headers that name the same column: identical (up to case, as DuckDB
    compares them) in ``original``, the file's header row, and those the presets would
    confuse (equal after :func:`~tagsweep.engine.presets.header_key`) in ``kept``, the
    column names after renaming. Empty when every header is distinct."""
    notes: list[str] = []
    seen: dict[str, list[int]] = {}
    for position, name in enumerate(original, start=1):
        seen.setdefault(name.strip().lower(), []).append(position)
    for positions in seen.values():
        if len(positions) < 2:
            continue
        first = original[positions[0] - 1]
        others = ", ".join(
            repr(kept[p - 1]) if p - 1 < len(kept) else f"column {p}" for p in positions[1:]
        )
        notes.append(
            f"header {first!r} appears in columns {', '.join(map(str, positions))}: the "
            f"first is read as {first!r}, the others are kept as {others}; map "
            "[engine.sources.<source>.columns] to read another"
        )
    keys: dict[str, list[str]] = {}
    for name in kept:
        keys.setdefault(header_key(name), []).append(name)
    for group in keys.values():
        lowered = {g.strip().lower() for g in group}
        if len(group) > 1 and len(lowered) > 1:
            notes.append(
                f"headers {', '.join(map(repr, group))} differ only in case, spaces or "
                f"punctuation: the presets read {group[0]!r}; map "
                "[engine.sources.<source>.columns] to read another"
            )
    return notes


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with each repeated one (case-insensitive) renamed ``<name>_<n>``, as
    DuckDB renames repeated CSV headers, so every format names duplicates alike."""
    taken = {n.lower() for n in names}
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        candidate = name
        if name.lower() in seen:
            n = 1
            while f"{name}_{n}".lower() in taken or f"{name}_{n}".lower() in seen:
                n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate.lower())
        out.append(candidate)
    return out


def free_name(names: Sequence[str], reserved: str) -> list[str]:
    """``names`` with any that equals ``reserved`` (case-insensitive: the snapshot's own
    ``_line`` column) renamed to the first free ``<reserved>_<n>``, so the export's
    column keeps its data next to the engine's."""
    taken = {n.lower() for n in names}
    out = []
    for name in names:
        kept = name
        if name.lower() == reserved.lower():
            n = 1
            while f"{reserved}_{n}".lower() in taken:
                n += 1
            kept = f"{reserved}_{n}"
            taken.add(kept.lower())
        out.append(kept)
    return out


def cell_text(value: object) -> str | None:
    """A spreadsheet cell or JSON scalar as snapshot text: dates in ISO 8601, whole
    floats without ``.0`` (Excel stores every number as a float), blank as None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


_HEADER_KEY = b"tagsweep.header"
_NOTES_KEY = b"tagsweep.notes"


def with_header(table: pa.Table, header: Sequence[str]) -> pa.Table:
    """``table`` remembering the file's own header row (before duplicates were renamed)."""
    return table.replace_schema_metadata({_HEADER_KEY: json.dumps(list(header))})


def clean_table(table: pa.Table, path: Path) -> pa.Table:
    """NUL characters removed, duplicate headers named; the notes travel
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
    """The table without its metadata, and the notes :func:`clean_table` left in it."""
    meta = table.schema.metadata or {}
    notes = json.loads(meta[_NOTES_KEY]) if _NOTES_KEY in meta else []
    return table.replace_schema_metadata(None), [str(n) for n in notes]
