"""Rules freeze applies to an export before it is frozen, beyond reading its bytes.

* The role of each source: a preset says it, the configuration says it, or a generic
  export is named after its role (``mdm=devices.csv``); a generic export whose role
  nothing says is never silently a second register: that is an error saying how to fix.
* Footer and totals rows that UI exports append ("Total", "Summe", "Showing 1 to 45 of
  45 rows") are recognised and skipped with a note, never read as records.
* Values that will not parse (a cost that is not a number, a date that is not a date)
  are listed with source, file, line, column and reason for the freeze summary; the run
  empties those fields and keeps the records (``bad_values.csv``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from tagsweep.config.engine import EngineSection
from tagsweep.engine.presets import GENERIC, ROLE_NAMES, Preset, conventions
from tagsweep.engine.stages import ident

LINE_COLUMN = "_line"

#: Fields that identify a record: a row without any of them may be a footer.
IDENTIFIER_FIELDS = ("asset_tag", "serial", "hardware_uuid", "mac", "record_id")
#: Fields of an HR export that identify a person.
PERSON_FIELDS = ("person_id", "email", "name")

_FOOTER = re.compile(
    r"^(?:total|totals|grand total|subtotal|sum|summe|gesamt|gesamtsumme|zwischensumme|"
    r"count|anzahl|showing \d+|\d+ (?:rows?|records?|items?|assets?|devices?)\b|"
    r"page \d+|seite \d+|exported (?:by|on|at)|report generated)\b|^\*+$",
    re.IGNORECASE,
)


class RoleError(Exception):
    """A source's role cannot be told: the message says how to set it."""


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A row that is not a record (a UI's totals footer), skipped with a note."""

    source: str
    file: str
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class BadValue:
    """A value that does not parse: the run empties the field and keeps the record."""

    source: str
    file: str
    line: int
    column: str
    value: str
    reason: str


def resolve_roles(
    sources: Sequence[tuple[str, Preset, str | None]], settings: EngineSection
) -> dict[str, str]:
    """name → role for (name, preset, configured role) of every source.

    A generic source takes its configured role, else the role its name says; if
    nothing says it, it is the register only when it is the only source that could be
    one. Otherwise it is ambiguous: a RoleError says how to fix it."""
    roles: dict[str, str] = {}
    unknown: list[str] = []
    for name, preset, configured in sources:
        if configured:
            roles[name] = configured
        elif preset.name == GENERIC.name:
            role = ROLE_NAMES.get(name.strip().lower())
            if role is None:
                unknown.append(name)
            else:
                roles[name] = role
        else:
            roles[name] = preset.role
    if not unknown:
        return roles
    registers = [n for n, r in roles.items() if r in settings.register_roles]
    if len(unknown) == 1 and not registers:
        roles[unknown[0]] = GENERIC.role
        return roles
    name = unknown[0]
    others = (
        f" next to the register {registers[0]!r}"
        if registers
        else " next to " + ", ".join(repr(n) for n in unknown[1:])
    )
    raise RoleError(
        f"source {name!r} uses the generic preset and nothing says its role{others}; it is "
        f"never taken as a second register. Name the source after its role "
        f"(mdm=FILE, fixed_asset=FILE, procurement=FILE, hr=FILE) or set "
        f'[engine.sources.{name}] role = "mdm" (or itam, fixed_asset, procurement, hr) in '
        "the config."
    )


def _columns_of(spec: list[str] | str | None) -> list[str]:
    if spec is None or (isinstance(spec, str) and spec.startswith("=")):
        return []
    return list(spec) if isinstance(spec, list) else [spec]


def skip_footer_rows(
    table: pa.Table, columns: Mapping[str, list[str] | str], source: str, file: str
) -> tuple[pa.Table, list[SkippedRow]]:
    """The table without the rows that carry no identifier and read like a footer
    ("Total", "Summe", "Showing 1 to 45 of 45 rows"), and those rows as notes."""
    fields = PERSON_FIELDS if any(f in columns for f in PERSON_FIELDS) else IDENTIFIER_FIELDS
    id_columns = [c for f in fields for c in _columns_of(columns.get(f)) if c in table.column_names]
    if not id_columns or table.num_rows == 0:
        return table, []
    empty = None
    for name in id_columns:
        col = table.column(name)
        # empty, or what a totals row puts there: asterisks, dashes, "Summe"
        blank = pc.or_kleene(
            pc.or_kleene(pc.is_null(col), pc.match_substring_regex(col, r"^[\s*=.\-_#]*$")),
            pc.match_substring_regex(col, _FOOTER.pattern, ignore_case=True),
        )
        blank = pc.fill_null(blank, True)
        empty = blank if empty is None else pc.and_(empty, blank)
    assert empty is not None
    candidates = pc.indices_nonzero(empty).to_pylist()
    if not candidates:
        return table, []
    texts = [c for c in table.column_names if c != LINE_COLUMN]
    lines = table.column(LINE_COLUMN)
    skipped: list[SkippedRow] = []
    drop: list[int] = []
    for index in candidates:
        cells = [table.column(c)[index].as_py() for c in texts]
        filled = [str(c).strip() for c in cells if c is not None and str(c).strip()]
        if not filled or not any(_FOOTER.match(c) for c in filled):
            continue
        drop.append(index)
        shown = " | ".join(filled)[:80]
        skipped.append(
            SkippedRow(source, file, int(lines[index].as_py()), f"footer/totals row: {shown}")
        )
    if not drop:
        return table, []
    keep = pc.invert(pc.is_in(pa.array(range(table.num_rows)), pa.array(drop)))
    return table.filter(keep), skipped


@dataclass(frozen=True, slots=True)
class ExportAt:
    """An export being frozen: its source name, file name, preset and column mapping."""

    source: str
    file: str
    preset: Preset
    columns: Mapping[str, list[str] | str]


def find_bad_values(
    con: duckdb.DuckDBPyConnection, table: pa.Table, export: ExportAt, settings: EngineSection
) -> list[BadValue]:
    """Values of the mapped number and date columns that will not parse, by the same
    macros (and the same decimal-comma and day-first rules) the run applies."""
    source, file, preset, columns = export.source, export.file, export.preset, export.columns
    configured = settings.sources.get(source)
    decimal_comma, day_first = conventions(
        preset,
        configured.decimal_comma if configured else None,
        configured.day_first if configured else None,
    )
    checks: dict[str, tuple[str, list[bool], str]] = {  # the test, its bound flags, why
        "value": (
            "num_parse_as(blank(x), ?) IS NULL AND blank(x) IS NOT NULL",
            [bool(decimal_comma)],
            "not a number",
        ),
        "last_seen": ("ts_bad(x, ?)", [bool(day_first)], "not a date"),
        "retired_on": ("ts_bad(x, ?)", [bool(day_first)], "not a date"),
        "end_date": ("ts_bad(x, false)", [], "not a date"),
    }
    found: list[BadValue] = []
    con.register("export_rows", table)
    try:
        for field, (test, flags, reason) in checks.items():
            spec = columns.get(field)
            if not isinstance(spec, str) or spec.startswith("=") or spec not in table.column_names:
                continue
            rows = con.execute(
                f"SELECT {LINE_COLUMN}, trim(x) FROM (SELECT {LINE_COLUMN}, "
                f"CAST({ident(spec)} AS VARCHAR) AS x FROM export_rows) WHERE {test} "
                f"ORDER BY {LINE_COLUMN}",
                flags,
            ).fetchall()
            found += [BadValue(source, file, int(n), spec, str(v), reason) for n, v in rows]
    finally:
        con.unregister("export_rows")
    return found


def key_columns(columns: Mapping[str, list[str] | str]) -> str:
    """The export columns a source is matched by, for the freeze summary."""
    parts = []
    for field in (*IDENTIFIER_FIELDS, *PERSON_FIELDS):
        cols = _columns_of(columns.get(field))
        if cols:
            parts.append(f"{field}={'/'.join(cols)}")
    return ", ".join(parts)


def contribution(role: str, columns: Mapping[str, list[str] | str]) -> str:
    """What a source brings to the reconciliation, by its role and mapped fields."""
    fields = [f for f in columns if f not in IDENTIFIER_FIELDS and f != "updated_at"]
    what = {
        "itam": "register records",
        "mdm": "discovery (devices checking in)",
        "fixed_asset": "finance records",
        "procurement": "purchases",
        "hr": "people (leavers)",
    }.get(role, role)
    return f"{what}: {', '.join(fields)}" if fields else what


__all__ = [
    "BadValue",
    "ExportAt",
    "RoleError",
    "SkippedRow",
    "contribution",
    "find_bad_values",
    "key_columns",
    "resolve_roles",
    "skip_footer_rows",
]
