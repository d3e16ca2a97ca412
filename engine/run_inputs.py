"""A run's inputs: the snapshot's sources and the count files, checked and exposed to
the stages as relations.

Each source of the snapshot (or a baseline register file) is read through its preset's
column mapping; each count file (a session file with its manifest, or a count sheet) is
verified, checked against the limits, cleaned of NUL characters and given line numbers,
so every later finding can say which file and line it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from tagsweep.config.engine import EngineSection, ExportLimits
from tagsweep.domain import SESSION_FILE_COLUMNS
from tagsweep.engine.csv_reader import read_csv
from tagsweep.engine.hygiene import strip_nul
from tagsweep.engine.limits import LimitError, check_file_size, check_table
from tagsweep.engine.presets import GENERIC, header_key, resolve_columns
from tagsweep.engine.session_check import SessionCheck, SessionCheckError, check_session_file
from tagsweep.engine.snapshot import LINE_COLUMN, BadRow, load_snapshot
from tagsweep.engine.stages import SourceInput, ident, lit
from tagsweep.hashing import sha256_file


class RunError(Exception):
    """The run cannot proceed (a required column is missing, an input was altered)."""


#: Columns a count input may carry: the session file's, plus what a manual count sheet
#: records beyond them (the seed's count records user and condition).
COUNT_COLUMNS: tuple[str, ...] = (*SESSION_FILE_COLUMNS, "custodian", "condition")
COUNT_IDENTIFIERS = ("epc", "asset_tag", "serial")
#: Session-file columns scanned for NUL characters to report them (they are removed from
#: every text column): what a barcode can carry. The EPC is hex the gateway formats;
#: scanning it too cost 0.46 s instead of 0.03 s for three million reads.
NUL_CHECKED = ("location", "asset_tag", "serial")


@dataclass(slots=True)
class CountInput:
    path: Path
    kind: str  # session | sheet
    sha256: str
    rows: int
    bad: list[BadRow]
    relation: str
    scope: list[str] = field(default_factory=list)
    manifest: str | None = None
    check: SessionCheck | None = None
    notes: list[str] = field(default_factory=list)


def _text_relation(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[str, list[str]]:
    """A relation over a Parquet file with every column as text plus ``_line``."""
    names = [
        str(r[0])
        for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    ]
    cols = ", ".join(
        f"CAST({ident(n)} AS VARCHAR) AS {ident(n)}" for n in names if n != LINE_COLUMN
    )
    line = LINE_COLUMN if LINE_COLUMN in names else "row_number() OVER ()"
    return (
        f"(SELECT {cols}, CAST({line} AS BIGINT) AS {LINE_COLUMN} "
        f"FROM read_parquet({lit(str(path))}))",
        names,
    )


def load_sources(
    con: duckdb.DuckDBPyConnection, baseline: Path
) -> tuple[list[SourceInput], dict[str, Any], list[BadRow], list[str]]:
    """Sources of a snapshot directory, or a previous (golden) register Parquet."""
    if baseline.is_dir():
        snapshot = load_snapshot(baseline)
        inputs = [
            SourceInput(
                name=s.name,
                role=s.role,
                preset=s.preset,
                file=s.original_name,
                path=baseline / s.file,
                columns=s.columns,
                relation=f"read_parquet({lit(str(baseline / s.file))})",
            )
            for s in snapshot.sources
        ]
        info = {
            "kind": "snapshot",
            "name": baseline.name,
            "manifest_sha256": sha256_file(baseline / "snapshot.json"),
            "sources": [
                {
                    "name": s.name,
                    "preset": s.preset,
                    "role": s.role,
                    "sha256": s.sha256,
                    "rows": s.rows,
                    "bad_rows": s.bad_rows,
                    "exported_at": s.exported_at,
                }
                for s in snapshot.sources
            ],
        }
        return inputs, info, list(snapshot.bad_rows), list(snapshot.warnings)
    if baseline.suffix.lower() == ".parquet" and baseline.is_file():
        relation, names = _text_relation(con, baseline)
        columns = resolve_columns(GENERIC, [n for n in names if n != LINE_COLUMN], {})
        if "asset_tag" not in columns and "serial" not in columns:
            raise RunError(f"{baseline}: a register needs an asset_tag or serial column")
        source = SourceInput(
            name="register",
            role="itam",
            preset="generic",
            file=baseline.name,
            path=baseline,
            columns=columns,
            relation=relation,
        )
        info = {"kind": "register", "name": baseline.name, "sha256": sha256_file(baseline)}
        return [source], info, [], []
    raise RunError(f"{baseline}: expected a snapshot directory or a register .parquet file")


def load_counts(
    con: duckdb.DuckDBPyConnection,
    paths: Sequence[Path],
    tmp_dir: Path,
    settings: EngineSection | None = None,
    *,
    allow_unverified: bool = False,
) -> list[CountInput]:
    """Session files (Parquet, verified against their manifest: engine.session_check)
    and manual count sheets (CSV)."""
    trusted = settings.trusted_gateways if settings is not None else {}
    inputs: list[CountInput] = []
    for index, path in enumerate(paths):
        if not path.is_file():
            raise RunError(f"count input {path} does not exist")
        digest = sha256_file(path)
        if path.suffix.lower() == ".parquet":
            names = [
                str(r[0])
                for r in con.execute(
                    "DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]
                ).fetchall()
            ]
            relation = (
                f"(SELECT *, file_row_number + 1 AS {LINE_COLUMN} "
                f"FROM read_parquet({lit(str(path))}, file_row_number = true))"
            )
            bad: list[BadRow] = []
            try:
                check = check_session_file(
                    con, path, digest, trusted_gateways=trusted, allow_unverified=allow_unverified
                )
            except SessionCheckError as exc:
                raise RunError(str(exc)) from None
            scope, manifest, kind = check.scope, check.manifest, "session"
            notes = []
        else:
            limits = settings.limits if settings is not None else ExportLimits()
            try:
                check_file_size(path, limits)
                table, bad, _encoding = read_csv(path, path.name, tmp_dir)
                check_table(table, path, limits, LINE_COLUMN)
            except LimitError as exc:
                raise RunError(str(exc)) from None
            table, nul = strip_nul(table, LINE_COLUMN)
            notes = [f"count file {path.name}: {nul}"] if nul else []
            name = f"count_sheet_{index}"
            # a table, not a registered Arrow view: the stages also run on other cursors
            con.register(name + "_arrow", table)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_arrow")
            con.unregister(name + "_arrow")
            names = list(table.column_names)
            cols = ", ".join(ident(n) for n in names if n != LINE_COLUMN)
            relation = f"(SELECT {cols}, {LINE_COLUMN} FROM {name})"
            scope, manifest, kind = [], None, "sheet"
            check = SessionCheck(manifest=None, integrity="sheet")
        keys = {header_key(n): n for n in names}
        missing = [c for c in ("location",) if header_key(c) not in keys]
        if missing or not any(header_key(c) in keys for c in COUNT_IDENTIFIERS):
            raise RunError(
                f"{path}: a count needs a 'location' column and one of "
                f"{', '.join(COUNT_IDENTIFIERS)}; it has {[n for n in names if n != LINE_COLUMN]}"
            )
        parts = []
        nul_checks: list[str] = []
        for c in COUNT_COLUMNS:
            col = ident(keys[header_key(c)]) if header_key(c) in keys else None
            if c in {"first_seen", "last_seen"}:
                if col is None:
                    parts.append(f"CAST(NULL AS TIMESTAMPTZ) AS {c}")
                elif kind == "session":
                    parts.append(f"TRY_CAST({col} AS TIMESTAMPTZ) AS {c}")
                else:
                    parts.append(f"ts_parse(blank({col})) AS {c}")
            elif col is None:
                parts.append(f"CAST(NULL AS VARCHAR) AS {c}")
            elif kind == "session":
                # a scanned label may carry a NUL; it never reaches a field
                parts.append(f"replace(CAST({col} AS VARCHAR), chr(0), '') AS {c}")
                if c in NUL_CHECKED:
                    nul_checks.append(f"contains(CAST({col} AS VARCHAR), chr(0))")
            else:
                parts.append(f"CAST({col} AS VARCHAR) AS {c}")
        last_seen_col = ident(keys[header_key("last_seen")]) if "lastseen" in keys else None
        parts.append(
            f"blank({last_seen_col}) AS last_seen_text"
            if kind == "sheet" and last_seen_col
            else "CAST(NULL AS VARCHAR) AS last_seen_text"
        )
        if nul_checks:
            nul_row = con.execute(
                f"SELECT count(*), min({LINE_COLUMN}) FROM {relation} "
                f"WHERE {' OR '.join(nul_checks)}"
            ).fetchall()[0]
            if nul_row[0]:
                notes.append(
                    f"count file {path.name}: NUL characters removed from {nul_row[0]} row(s) "
                    f"(first on row {nul_row[1]})"
                )
        relation = (
            f"(SELECT {lit(path.name)} AS file, CAST({LINE_COLUMN} AS BIGINT) AS line, "
            f"{', '.join(parts)} FROM {relation})"
        )
        rows_row = con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0]
        inputs.append(
            CountInput(
                path=path,
                kind=kind,
                sha256=digest,
                rows=int(rows_row[0]) if rows_row else 0,
                bad=bad,
                relation=relation,
                scope=scope,
                manifest=manifest,
                check=check,
                notes=notes,
            )
        )
    return inputs


def source_row_count(con: duckdb.DuckDBPyConnection, source: SourceInput) -> int:
    row = con.execute(
        "SELECT count(*) FROM source_rows WHERE source = ?", [source.name]
    ).fetchall()[0]
    if source.role == "hr":
        row = con.execute("SELECT count(*) FROM people WHERE source = ?", [source.name]).fetchall()[
            0
        ]
    return int(row[0]) if row else 0
