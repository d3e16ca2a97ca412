"""Count sessions: start, location context, stop, and the immutable session file.

A count session is one bounded physical count by one operator. While it is open, the
gateway records the location context (operator commands and scanned location labels)
and every sighting and scan lands in the store. Stopping it turns that evidence into
*observations* — one row per counted item, attributed to one location — and writes the
session file ``<session_dir>/<session_id>.parquet`` (exactly
:data:`~tagsweep.domain.SESSION_FILE_COLUMNS`) plus ``<session_id>.json`` (the manifest,
:data:`~tagsweep.domain.SESSION_MANIFEST_KEYS`, with the Parquet file's sha256). That
pair is the engine's input; the daemon never touches it again.

Why the observations are computed from the store at stop time and not kept in memory:
a session must survive a crash. Everything it needs (sightings, contexts, scans) is
committed as it happens, so after ``kill -9`` the restarted daemon finds the session
still open (resumable) or half-closed (``stopping``: the close is simply redone, the
result is the same).

Attribution: handheld sightings go through :mod:`tagsweep.daemon.location` (strongest,
most persistent evidence per EPC over the whole session, so cross-reads from the next
rack lose); fixed readers contribute evidence at their configured location, portal
readers at their zone. Barcode scans of asset tags, serials and GIAIs become barcode
observations at the location context of their last scan.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tagsweep import __version__, signing
from tagsweep.daemon.location import (
    EVIDENCE_DTYPE,
    AttributionParams,
    LocationTimeline,
    attribute,
    evidence,
    merge_evidence,
)
from tagsweep.daemon.store import Store
from tagsweep.domain import (
    EPC_HEX_MAX,
    SESSION_FILE_COLUMNS,
    SESSION_MANIFEST_KEYS,
    SIGHTING_DTYPE,
    CountSession,
    Location,
    Method,
    ScanKind,
    SessionState,
    us_to_datetime,
)
from tagsweep.hashing import sha256_file

#: Scan kinds that count an item (a location label sets context; a GTIN names a model).
COUNTED_SCAN_KINDS: Final = {
    ScanKind.ASSET_TAG.value: "asset_tag",
    ScanKind.GIAI.value: "asset_tag",
    ScanKind.SERIAL.value: "serial",
}

_ARROW_TYPES: Final[dict[str, pa.DataType]] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "timestamp[us, UTC]": pa.timestamp("us", tz="UTC"),
}

SESSION_FILE_SCHEMA: Final = pa.schema(
    [pa.field(name, _ARROW_TYPES[kind]) for name, kind in SESSION_FILE_COLUMNS.items()]
)

STOPPING = "stopping"  # stored state between stop and a written session file


class SessionError(ValueError):
    """A session command that cannot be done as asked (the message says why and what to do)."""


@dataclass(frozen=True, slots=True)
class ReaderRole:
    """How a reader's sightings are attributed: by context (handheld) or by place."""

    role: str  # "handheld" | "fixed" | "portal"
    location: str | None = None  # fixed: its location; portal: its zone


@dataclass(frozen=True, slots=True)
class ClosedSession:
    """Where a closed session's file and manifest are, and what they hold."""

    session_id: str
    parquet: Path
    manifest: Path
    row_count: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "parquet": str(self.parquet),
            "manifest": str(self.manifest),
            "row_count": self.row_count,
            "sha256": self.sha256,
        }


def session_to_json(session: CountSession) -> dict[str, Any]:
    return {
        "session_id": session.session_id,
        "site": session.site,
        "operator": session.operator,
        "scope": [str(loc) for loc in session.scope],
        "started": us_to_datetime(session.started_us).isoformat(),
        "started_us": session.started_us,
        "ended_us": session.ended_us,
        "state": session.state.value,
        "location": str(session.location_context) if session.location_context else None,
    }


def session_from_row(row: Mapping[str, Any], context: str | None) -> CountSession:
    return CountSession(
        session_id=str(row["session_id"]),
        site=str(row["site"]),
        operator=str(row["operator"]),
        scope=tuple(Location(p) for p in row["scope"]),
        started_us=int(row["started_us"]),
        ended_us=None if row["ended_us"] is None else int(row["ended_us"]),
        state=SessionState.CLOSED if row["state"] == "closed" else SessionState.OPEN,
        location_context=Location(context) if context else None,
    )


# -- observations ------------------------------------------------------------------------


def _as_records(table: pa.Table, floor_dbm: float) -> np.ndarray:
    out = np.zeros(table.num_rows, dtype=SIGHTING_DTYPE)
    out["epc"] = np.array(table.column("epc").to_pylist(), dtype=f"S{EPC_HEX_MAX}")
    for name in ("first_seen_us", "last_seen_us", "read_count"):
        out[name] = table.column(name).to_numpy()
    for name in ("mean_rssi", "peak_rssi"):
        values = table.column(name).to_numpy(zero_copy_only=False).astype(np.float32)
        # Readers that report no RSSI still count: give such reads the weakest level.
        out[name] = np.where(np.isnan(values), floor_dbm, values)
    return out


def build_observations(
    *,
    session: CountSession,
    sightings: pa.Table,
    contexts: Sequence[tuple[int, str, str]],
    scans: pa.Table,
    roles: Mapping[str, ReaderRole],
    params: AttributionParams | None = None,
) -> pa.Table:
    """The rows of a session file, in a stable order (method, location, identity)."""
    p = params or AttributionParams()
    default = str(session.scope[0]) if session.scope else session.site
    timeline = LocationTimeline()
    changes = list(contexts) or [(session.started_us, default, "start")]
    # The first context also covers sightings that began just before the start.
    timeline.set(np.iinfo(np.int64).min, changes[0][1])
    for ts, location, _source in changes[1:]:
        timeline.set(ts, location)

    rows: list[dict[str, Any]] = []
    if sightings.num_rows:
        reader_col = np.array(sightings.column("reader").to_pylist(), dtype=object)
        parts = []
        handheld = np.array(
            [roles.get(r, ReaderRole("handheld")).role == "handheld" for r in reader_col]
        )
        if handheld.any():
            records = _as_records(sightings.filter(pa.array(handheld)), p.floor_dbm)
            parts.append(evidence(timeline, records))
        for name, role in roles.items():
            if role.role == "handheld" or role.location is None:
                continue
            mine = reader_col == name
            if not mine.any():
                continue
            records = _as_records(sightings.filter(pa.array(mine)), p.floor_dbm)
            fixed = LocationTimeline([(np.iinfo(np.int64).min, role.location)])
            ev = evidence(fixed, records)
            ev["location"] = timeline.location_id(role.location)
            parts.append(ev)
        ev_all = merge_evidence(*parts) if parts else np.zeros(0, dtype=EVIDENCE_DTYPE)
        # The reader that read each EPC most, named in the row as its evidence.
        totals: dict[tuple[str, str], int] = {}
        for epc, reader, count in zip(
            sightings.column("epc").to_pylist(),
            reader_col.tolist(),
            sightings.column("read_count").to_pylist(),
            strict=True,
        ):
            totals[(epc, reader)] = totals.get((epc, reader), 0) + int(count)
        best_reader: dict[str, tuple[int, str]] = {}
        for (epc, reader), count in totals.items():
            if epc not in best_reader or (count, reader) > best_reader[epc]:
                best_reader[epc] = (count, reader)
        rows.extend(
            {
                "method": Method.RFID.value,
                "location": a.location,
                "epc": a.epc,
                "asset_tag": None,
                "serial": None,
                "first_seen": a.first_seen_us,
                "last_seen": a.last_seen_us,
                "read_count": a.total_reads,
                "peak_rssi": a.peak_rssi,
                "reader": best_reader.get(a.epc, (0, None))[1],
            }
            for a in attribute(ev_all, timeline.locations, p)
        )

    items: dict[tuple[str, str], dict[str, Any]] = {}
    for scan in scans.to_pylist():
        column = COUNTED_SCAN_KINDS.get(str(scan["kind"]))
        if column is None or not scan["value"]:
            continue
        key = (column, str(scan["value"]))
        item = items.get(key)
        ts = int(scan["ts_us"])
        if item is None:
            items[key] = item = {
                "method": Method.BARCODE.value,
                "epc": None,
                "asset_tag": None,
                "serial": None,
                "first_seen": ts,
                "read_count": 0,
                "peak_rssi": None,
            }
            item[column] = key[1]
        item["last_seen"] = ts
        item["read_count"] += 1
        # A deliberate re-scan elsewhere means the item is there now.
        item["location"] = scan["location"] or timeline.at(ts) or default
        item["reader"] = scan["scanner"]
        item["operator"] = scan.get("operator") or None
    rows.extend(items.values())

    for row in rows:
        row["session_id"] = session.session_id
        row["site"] = session.site
        row["operator"] = row.get("operator") or session.operator
    rows.sort(
        key=lambda r: (
            r["method"],
            r["location"],
            r["epc"] or "",
            r["asset_tag"] or "",
            r["serial"] or "",
        )
    )
    columns = {
        name: pa.array([r[name] for r in rows], type=field.type)
        for name, field in zip(SESSION_FILE_SCHEMA.names, SESSION_FILE_SCHEMA, strict=True)
    }
    return pa.table(columns, schema=SESSION_FILE_SCHEMA)


# -- the session file --------------------------------------------------------------------
def _write_atomically(path: Path, write: Any) -> None:
    """Write through a temporary file, fsync, rename, fsync the folder, then 0444."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    write(tmp)
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    if path.exists():
        path.chmod(0o644)  # a half-finished earlier close: replace it
    tmp.replace(path)
    path.chmod(0o444)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_session_file(
    table: pa.Table,
    session: CountSession,
    *,
    session_dir: Path,
    gateway: str,
    signing_key: Path | None = None,
) -> ClosedSession:
    """Write ``<id>.parquet`` and ``<id>.json`` (manifest with the Parquet sha256),
    signed with the gateway's key at ``signing_key`` (created on first use) if given."""
    key = None
    if signing_key is not None:
        try:
            key = signing.load_or_create_key(signing_key)
        except signing.SigningError as exc:
            raise SessionError(f"cannot sign session {session.session_id}: {exc}") from None
    session_dir.mkdir(parents=True, exist_ok=True)
    parquet = session_dir / f"{session.session_id}.parquet"
    manifest = session_dir / f"{session.session_id}.json"
    _write_atomically(parquet, lambda p: pq.write_table(table, p, compression="zstd"))
    sha = sha256_file(parquet)
    ended = session.ended_us if session.ended_us is not None else session.started_us
    body = {
        "session_id": session.session_id,
        "site": session.site,
        "operator": session.operator,
        "scope": [str(loc) for loc in session.scope],
        "started": us_to_datetime(session.started_us).astimezone(UTC).isoformat(),
        "ended": us_to_datetime(ended).astimezone(UTC).isoformat(),
        "row_count": table.num_rows,
        "sha256": sha,
        "gateway": gateway,
        "tagsweep_version": __version__,
    }
    assert tuple(body) == SESSION_MANIFEST_KEYS
    if key is not None:
        body[signing.SIGNATURE_KEY] = signing.sign(body, key)
    text = json.dumps(body, indent=2) + "\n"
    _write_atomically(manifest, lambda p: p.write_text(text, encoding="utf-8"))
    return ClosedSession(session.session_id, parquet, manifest, table.num_rows, sha)


def close_session(
    store: Store,
    session: CountSession,
    *,
    roles: Mapping[str, ReaderRole],
    session_dir: Path,
    gateway: str,
    params: AttributionParams | None = None,
    window_us: int = 0,
    signing_key: Path | None = None,
) -> ClosedSession:
    """Compute observations from the store, write the session file, mark it closed.

    Idempotent: redoing it after a crash between the steps gives the same file.
    Runs on the store's thread (it reads and writes the store).
    """
    if session.ended_us is None:
        raise SessionError(f"session {session.session_id} has no end time; stop it first")
    table = build_observations(
        session=session,
        sightings=store.session_sightings(session.started_us, session.ended_us, window_us),
        contexts=store.contexts(session.session_id),
        scans=store.session_scans(session.session_id),
        roles=roles,
        params=params,
    )
    store.replace_observations(session.session_id, table_for_store(table))
    closed = write_session_file(
        table, session, session_dir=session_dir, gateway=gateway, signing_key=signing_key
    )
    store.set_session_state(
        session.session_id,
        SessionState.CLOSED.value,
        file=str(closed.parquet),
        sha256=closed.sha256,
        row_count=closed.row_count,
    )
    return closed


def table_for_store(table: pa.Table) -> pa.Table:
    """The session file's rows with microsecond integers for the store's columns."""
    return table.append_column(
        "first_seen_us", table.column("first_seen").cast(pa.int64())
    ).append_column("last_seen_us", table.column("last_seen").cast(pa.int64()))
