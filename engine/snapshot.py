"""The snapshot a freeze writes and a run reads: its records and its manifest.

A snapshot directory holds, per source, the original export byte for byte
(``exports/``), a Parquet copy with every value as text plus the line it came from
(``<source>.parquet``, column :data:`LINE_COLUMN`), and :data:`SNAPSHOT_MANIFEST`
with hashes, row counts, the column mapping chosen, export times and every rejected
row, bad value and skipped row. This module holds what describes a snapshot
(:class:`Snapshot`, :class:`FrozenSource`, :class:`BadRow`), the error raised when an
export cannot be frozen or a snapshot cannot be trusted (:class:`FreezeError`), and the
manifest: :func:`write_manifest` and :func:`load_snapshot`, which refuses a frozen file
whose hash changed. The freeze itself is :mod:`tagsweep.engine.freeze`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tagsweep import __version__
from tagsweep.engine.export_rules import BadValue, SkippedRow
from tagsweep.hashing import sha256_file

SNAPSHOT_MANIFEST = "snapshot.json"
SNAPSHOT_FORMAT = 1
LINE_COLUMN = "_line"


class FreezeError(Exception):
    """An export cannot be frozen (unreadable, or a required column is missing), or a
    snapshot cannot be read back (no manifest, or a frozen file changed since)."""


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row kept out of the snapshot or the run, with where it is and why."""

    source: str
    file: str
    line: int
    reason: str


@dataclass(slots=True)
class FrozenSource:
    """One source of a snapshot, as its manifest records it."""

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
