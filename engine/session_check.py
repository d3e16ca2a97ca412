"""Session files are verified before a run counts them, not trusted.

A gateway writes each count session as ``<id>.parquet`` plus the manifest ``<id>.json``
holding the Parquet file's sha256 and row count, signed with the gateway's Ed25519 key
(:mod:`tagsweep.signing`). Before a run reads a session file it checks, in order:

* the manifest exists and is a JSON object with the keys the check needs;
* the Parquet file's sha256 and row count are the manifest's, and every row carries
  the manifest's session id;
* when ``[engine.trusted_gateways]`` lists keys for the manifest's gateway (or for any
  gateway), the manifest is signed by one of that gateway's keys and unchanged since.

Any failure stops the run with the file and the reason. ``--allow-unverified`` turns
the failures that leave the file unproven (no manifest, unsigned, a key not trusted)
into a warning that the run manifest and report carry; a file that contradicts its own
manifest (hash, rows, session id) or a manifest that contradicts its signature is
refused even then: it was changed after it was closed, and no flag makes that a count.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow.parquet as pq

from tagsweep import signing

#: Manifest members the check reads (the gateway writes all of SESSION_MANIFEST_KEYS).
REQUIRED_KEYS: Final = ("session_id", "sha256", "row_count", "gateway")


class SessionCheckError(Exception):
    """A session file that cannot be counted; the message names the file and why."""


@dataclass(slots=True)
class SessionCheck:
    """What the check established about one session file."""

    manifest: str | None  # the manifest's file name, None without one
    scope: list[str] = field(default_factory=list)
    #: "signed" (by a trusted key), "sha256" (matches an unsigned manifest; no keys are
    #: configured) or "unverified" (accepted under --allow-unverified)
    integrity: str = "unverified"
    gateway: str | None = None
    note: str | None = None  # why it is unverified


def _read_manifest(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SessionCheckError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise SessionCheckError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SessionCheckError(
            f"{path}: not JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise SessionCheckError(f"{path}: JSON nested too deeply to be a manifest") from None
    if not isinstance(data, dict):
        raise SessionCheckError(f"{path}: a session manifest is a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise SessionCheckError(f"{path}: the manifest lacks {', '.join(missing)}")
    return data


def check_session_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    digest: str,
    *,
    trusted_gateways: Mapping[str, list[str]],
    allow_unverified: bool = False,
) -> SessionCheck:
    """Verify the session file ``path`` (whose sha256 is ``digest``) against its
    manifest; SessionCheckError when it cannot be counted."""
    manifest_path = path.with_suffix(".json")

    def unverified(reason: str, **known: Any) -> SessionCheck:
        if not allow_unverified:
            raise SessionCheckError(
                f"{path}: {reason}; a count session is verified before it is counted "
                "(--allow-unverified counts it anyway and records that in the run)"
            )
        return SessionCheck(integrity="unverified", note=reason, **known)

    if not manifest_path.is_file():
        return unverified(f"no manifest {manifest_path.name} beside it", manifest=None)
    data = _read_manifest(manifest_path)
    if data["sha256"] != digest:
        raise SessionCheckError(
            f"{path}: sha256 {digest} differs from its manifest {manifest_path.name} "
            f"({data['sha256']}); a closed session file must not change"
        )
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except (OSError, ValueError) as exc:
        raise SessionCheckError(f"{path}: not a readable Parquet file ({exc})") from None
    if data["row_count"] != rows:
        raise SessionCheckError(
            f"{path}: {rows} rows, but its manifest {manifest_path.name} says "
            f"{data['row_count']}; the pair is inconsistent"
        )
    session_id = str(data["session_id"])
    try:
        other = con.execute(
            "SELECT count(*) FILTER (WHERE session_id IS DISTINCT FROM ?) FROM read_parquet(?)",
            [session_id, str(path)],
        ).fetchall()[0][0]
    except duckdb.Error as exc:
        raise SessionCheckError(f"{path}: cannot read its session_id column ({exc})") from None
    if other:
        raise SessionCheckError(
            f"{path}: {other} row(s) belong to another session than its manifest's "
            f"{session_id!r}; the pair is inconsistent"
        )
    gateway = str(data["gateway"])
    known: dict[str, Any] = {
        "manifest": manifest_path.name,
        "scope": [str(s) for s in data.get("scope") or []],
        "gateway": gateway,
    }
    if not trusted_gateways:
        return SessionCheck(integrity="sha256", **known)
    keys = trusted_gateways.get(gateway)
    if not keys:
        return unverified(
            f"its gateway {gateway!r} has no key in [engine.trusted_gateways]", **known
        )
    try:
        problem = signing.verify(data, keys)
    except signing.BadSignatureError as exc:
        raise SessionCheckError(f"{manifest_path}: {exc}") from None
    if problem is not None:
        return unverified(f"{problem} ({manifest_path.name})", **known)
    return SessionCheck(integrity="signed", **known)
