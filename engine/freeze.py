"""Stage 1, freeze: copy each export into a hashed, immutable snapshot.

The seed method starts from "one controlled export from each source at the same time",
frozen before any comparison, so that a reconciliation can be re-run and audited
against exactly the data it saw. A snapshot directory holds, per source, the original
file byte for byte (``exports/``), a Parquet copy with every value as text plus the
line it came from (``<source>.parquet``), and ``snapshot.json`` with hashes, row
counts, the column mapping chosen, export times and every rejected row. The engine
reads only snapshots, never the live exports.

This module holds the freeze: which preset reads each source, the checks that an
export can be used at all, and writing the snapshot directory so that a failed freeze
leaves nothing behind. Reading the exports is :mod:`tagsweep.engine.export_reader`;
what a snapshot holds and its manifest, :mod:`tagsweep.engine.snapshot`.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tagsweep.config.engine import EngineSection
from tagsweep.engine import sandbox
from tagsweep.engine.cleaning import MACROS
from tagsweep.engine.export_reader import read_export
from tagsweep.engine.export_rules import (
    BadValue,
    ExportAt,
    RoleError,
    SkippedRow,
    find_bad_values,
    resolve_roles,
    skip_footer_rows,
)
from tagsweep.engine.hygiene import take_notes
from tagsweep.engine.presets import PRESETS, Preset, header_key, resolve_columns
from tagsweep.engine.snapshot import (
    LINE_COLUMN,
    BadRow,
    FreezeError,
    FrozenSource,
    Snapshot,
    load_snapshot,
    write_manifest,
)
from tagsweep.engine.stages import PARQUET_ROW_GROUP_ROWS, ident
from tagsweep.engine.text_encoding import encoding_warning
from tagsweep.hashing import sha256_file

#: What callers of the stage use: :func:`freeze` writes a :class:`Snapshot` from a list
#: of :class:`SourceSpec`, :func:`load_snapshot` reads one back, and either raises
#: :class:`FreezeError` (the last three are defined in :mod:`tagsweep.engine.snapshot`).
__all__ = ["FreezeError", "Snapshot", "SourceSpec", "freeze", "load_snapshot"]


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One export to freeze: ``name`` of the source, the file, and how to read it."""

    name: str
    path: Path
    preset: str | None = None
    exported_at: datetime | None = None
    #: where a pulled export came from (a NetBox API endpoint and its filters)
    origin: str | None = None


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
