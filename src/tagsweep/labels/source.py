"""The assets to label: rows of a register file, selected with ``--where``.

A register is a CSV with an ``asset_tag`` column (a spreadsheet export), a run's
``register.parquet`` or a golden register (``golden.parquet``), or the folder holding
one. Columns are matched by the aliases the live count uses (``tag``,
``location_path`` …), case-insensitively.

A selection is ``FIELD=VALUE`` or ``FIELD!=VALUE``; VALUE may hold ``*`` and ``?``
wildcards and is compared case-insensitively; for ``location`` a value also selects
everything below it (``location=DC1/Room 302`` takes the room's racks). Several
selections must all hold. Values are compared in Python, never pasted into SQL.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tagsweep.daemon.liveview.register import COLUMN_ALIASES, RegisterFileError, open_register
from tagsweep.domain import Location

_WHERE: Final = re.compile(r"^\s*(?P<field>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>!=|=)(?P<value>.*)$")


class RegisterError(RegisterFileError):
    """The register cannot be read or selected from; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class AssetRow:
    line: int  # 1-based data row (CSV: the file line is line + 1)
    asset_tag: str | None
    model: str | None
    location: str | None
    values: dict[str, str | None]  # every column by lower-case name, for --where


@dataclass(frozen=True, slots=True)
class Where:
    field: str
    negate: bool
    value: str

    @classmethod
    def parse(cls, text: str) -> Where:
        match = _WHERE.match(text)
        if match is None:
            raise RegisterError(
                f"--where {text!r}: expected FIELD=VALUE or FIELD!=VALUE, "
                "e.g. 'location=DC1/Room 302' or 'model=Latitude*'"
            )
        return cls(match["field"].lower(), match["op"] == "!=", match["value"].strip())

    def holds(self, row: AssetRow) -> bool:
        got = row.location if self.field == "location" else row.values.get(self.field)
        text = (got or "").strip()
        want = self.value
        hit = fnmatch.fnmatchcase(text.casefold(), want.casefold())
        if not hit and self.field == "location" and text:
            hit = text.casefold().startswith(want.rstrip("/").casefold() + "/")
        return hit != self.negate


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def read_assets(path: Path, where: Sequence[str] = ()) -> list[AssetRow]:
    """The register's rows that every ``where`` selection holds for, in file order."""
    import duckdb

    selections = [Where.parse(w) for w in where]
    con = duckdb.connect(":memory:")
    try:
        file, rel = open_register(con, path)
        names = list(rel.columns)
        quoted = ", ".join('CAST("{}" AS VARCHAR)'.format(n.replace('"', '""')) for n in names)
        try:
            table = rel.project(quoted).fetchall()
        except duckdb.Error as exc:
            raise RegisterError(f"{file}: cannot read the register: {exc}") from None
    finally:
        con.close()
    lower = [n.lower() for n in names]
    picked: dict[str, int] = {}
    for wanted, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in lower:
                picked[wanted] = lower.index(alias)
                break
    if "asset_tag" not in picked:
        raise RegisterError(
            f"{file}: no asset tag column (looked for {', '.join(COLUMN_ALIASES['asset_tag'])}); "
            f"columns are {names}"
        )
    known = set(lower) | set(picked)
    for sel in selections:
        if sel.field not in known:
            raise RegisterError(
                f"--where {sel.field}{'!=' if sel.negate else '='}{sel.value}: "
                f"{file} has no column {sel.field!r}; columns are {names}"
            )
    rows: list[AssetRow] = []
    for number, record in enumerate(table, start=1):
        values: dict[str, str | None] = {n: _text(v) for n, v in zip(lower, record, strict=True)}
        for wanted, index in picked.items():
            values.setdefault(wanted, _text(record[index]))
            values[wanted] = _text(record[index])
        location = values.get("location")
        if location is not None:
            try:
                location = Location(location).path
            except ValueError:
                location = None
        row = AssetRow(
            line=number,
            asset_tag=values.get("asset_tag"),
            model=values.get("model"),
            location=location,
            values=values,
        )
        if all(sel.holds(row) for sel in selections):
            rows.append(row)
    return rows
