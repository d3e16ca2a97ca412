"""Opening cases from a run: read its variance log, open a case per new variance, link
recurring ones, and propose resolutions for cases a later count no longer shows."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tagsweep.domain import VARIANCE_LOG_COLUMNS, VarianceType
from tagsweep.engine.audit import AuditWriter
from tagsweep.engine.cases.model import (
    VARIANCE_FIELDS,
    Case,
    CaseError,
    CaseStatus,
    ImportSummary,
    working_status,
)
from tagsweep.engine.cases.store import CaseStoreCore
from tagsweep.hashing import sha256_file


def _run_date(run_dir: Path, manifest: Mapping[str, Any]) -> date:
    """The count date of a run: the investigation window and SLA clocks start there."""
    for key in ("run_date", "as_of", "count_date", "created", "created_at", "started"):
        raw = manifest.get(key)
        if isinstance(raw, str) and raw:
            try:
                return datetime.fromisoformat(raw.replace("Z", "+00:00")).date()
            except ValueError:
                try:
                    return date.fromisoformat(raw[:10])
                except ValueError:
                    continue
    mtime = (run_dir / "variances.parquet").stat().st_mtime
    return datetime.fromtimestamp(mtime, tz=UTC).date()


@dataclass(frozen=True, slots=True)
class RunVariances:
    """The variance log of one run, read and checked against the contract."""

    run_dir: Path
    run_id: str
    run_date: date
    sha256: str
    rows: list[dict[str, Any]]


def read_run(run_dir: Path) -> RunVariances:
    """Read ``variances.parquet`` (and ``manifest.json`` if present) of a run folder."""
    run_dir = Path(run_dir)
    path = run_dir / "variances.parquet"
    if not path.is_file():
        raise CaseError(
            f"{run_dir}: no variances.parquet; pass the output folder of `tagsweep reconcile run`"
        )
    table = pq.read_table(path)
    missing = [c for c in VARIANCE_LOG_COLUMNS if c not in table.column_names]
    if missing:
        raise CaseError(f"{path}: not a variance log, missing column(s) {', '.join(missing)}")
    manifest: dict[str, Any] = {}
    manifest_path = run_dir / "manifest.json"
    if manifest_path.is_file():
        try:
            loaded = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise CaseError(f"{manifest_path}: not valid JSON ({exc})") from None
        if isinstance(loaded, dict):
            manifest = loaded
    rows = table.select(list(VARIANCE_LOG_COLUMNS)).to_pylist()
    run_ids = {r["run_id"] for r in rows if r["run_id"]}
    run_id = manifest.get("run_id") or (next(iter(run_ids)) if len(run_ids) == 1 else None)
    if not isinstance(run_id, str) or not run_id:
        raise CaseError(f"{run_dir}: cannot tell the run id (no manifest.json run_id)")
    if run_ids - {run_id}:
        raise CaseError(
            f"{path}: rows belong to run(s) {sorted(run_ids - {run_id})}, "
            f"but the manifest says {run_id}"
        )
    ids = [r["variance_id"] for r in rows]
    if any(not i for i in ids):
        raise CaseError(f"{path}: a variance has an empty variance_id")
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise CaseError(f"{path}: variance_id repeats within the run: {dupes}")
    for row in rows:
        if row["variance_type"] not in set(VarianceType):
            raise CaseError(
                f"{path}: variance {row['variance_id']} has unknown type {row['variance_type']!r}"
            )
        due = row["sla_due"]
        row["sla_due"] = due.isoformat() if isinstance(due, date) else due
    return RunVariances(run_dir, run_id, _run_date(run_dir, manifest), sha256_file(path), rows)


class RunImport(CaseStoreCore):
    """``import_run``: the case store's side of ``tagsweep cases open --run``."""

    # -- opening cases from a run --------------------------------------------------------

    def import_run(self, run_dir: Path, *, actor: str | None = None) -> ImportSummary:
        """Open a case per new variance, link recurring ones, propose resolutions for
        cases whose variance this (later) count no longer shows."""
        actor = self._actor(actor)
        run = read_run(run_dir)
        summary = ImportSummary(run.run_id, run.run_date.isoformat())
        with self._change() as (conn, writer):
            known = conn.execute(
                "SELECT variances_sha256 FROM runs WHERE run_id = ?", (run.run_id,)
            ).fetchone()
            if known is not None:
                if known["variances_sha256"] != run.sha256:
                    raise CaseError(
                        f"run {run.run_id} was imported before with a different variance log "
                        f"(sha256 {known['variances_sha256'][:12]}…, now {run.sha256[:12]}…); "
                        "a run's outputs must never change — re-run into a new folder"
                    )
                summary.already_imported = True
                return summary
            conn.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    run.run_id,
                    str(run.run_dir.resolve()),
                    summary.run_date,
                    run.sha256,
                    len(run.rows),
                    self._now(),
                    actor,
                ),
            )
            writer.append(
                actor=actor,
                action="run.import",
                subject=run.run_id,
                after={"run_dir": str(run.run_dir), "variances": len(run.rows)},
                evidence_sha256=run.sha256,
            )
            run_dates = {
                r["run_id"]: r["run_date"]
                for r in conn.execute("SELECT run_id, run_date FROM runs")
            }
            seen: set[str] = set()
            for row in run.rows:
                seen.add(row["variance_id"])
                existing = conn.execute(
                    "SELECT * FROM cases WHERE variance_id = ?", (row["variance_id"],)
                ).fetchone()
                if existing is None:
                    summary.opened.append(self._open(conn, writer, row, run, actor))
                else:
                    self._recur(
                        conn=conn,
                        writer=writer,
                        case=self._case(existing),
                        run=run,
                        run_dates=run_dates,
                        actor=actor,
                        summary=summary,
                    )
            for case_row in conn.execute(
                "SELECT * FROM cases WHERE status NOT IN (?, ?, ?) "
                "AND proposed_resolution_run IS NULL",
                (CaseStatus.RESOLVED, CaseStatus.WRITTEN_OFF, CaseStatus.FALSE_POSITIVE),
            ).fetchall():
                case = self._case(case_row)
                if case.variance_id in seen or run_dates[case.last_seen_run] >= summary.run_date:
                    continue
                self._add_evidence(
                    conn=conn,
                    case_id=case.case_id,
                    actor=actor,
                    kind="run",
                    ref=str(run.run_dir),
                    digest=run.sha256,
                    note=f"count of run {run.run_id} no longer shows this variance",
                )
                self._set(
                    conn,
                    writer,
                    case,
                    {"proposed_resolution_run": run.run_id},
                    actor=actor,
                    action="case.propose_resolution",
                    reason=f"variance not found again in run {run.run_id} ({summary.run_date})",
                    evidence_sha256=run.sha256,
                )
                summary.proposed.append(case.case_id)
        return summary

    def _open(
        self,
        conn: sqlite3.Connection,
        writer: AuditWriter,
        row: Mapping[str, Any],
        run: RunVariances,
        actor: str,
    ) -> str:
        last = conn.execute(
            "SELECT MAX(CAST(SUBSTR(case_id, 3) AS INTEGER)) FROM cases"
        ).fetchone()[0]
        case_id = f"C-{(last or 0) + 1:06d}"
        window = None
        opened = writer.now()
        if row["variance_type"] == VarianceType.MISSING:
            # From the signed time of the opening entry, not from the count date a user
            # may have passed to `reconcile run --as-of`.
            days = timedelta(days=self.settings.investigation_days)
            window = (opened.astimezone(UTC).date() + days).isoformat()
        values: dict[str, Any] = {
            "case_id": case_id,
            "variance_id": row["variance_id"],
            **{k: row[k] for k in VARIANCE_FIELDS},
            "owner": self._owner_for(row["variance_type"]),
            "status": str(CaseStatus.OPEN),
            "opened_at": run.run_date.isoformat(),
            "opened_run": run.run_id,
            "last_seen_run": run.run_id,
            "occurrences": 1,
            "investigation_until": window,
            "proposed_resolution_run": None,
            "resolution_reason": None,
            "closed_at": None,
            "closed_by": None,
            "write_off_requested_by": None,
            "write_off_request": 0,
            "updated_at": self._now(),
        }
        conn.execute(
            f"INSERT INTO cases ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",  # noqa: S608 - fixed column names
            tuple(values.values()),
        )
        conn.execute("INSERT INTO case_runs VALUES (?, ?)", (case_id, run.run_id))
        writer.append(
            actor=actor,
            action="case.open",
            subject=case_id,
            after={
                "variance_id": row["variance_id"],
                "variance_type": row["variance_type"],
                "asset_key": row["asset_key"],
                "priority": row["priority"],
                "sla_due": row["sla_due"],
                "owner": values["owner"],
                "status": values["status"],
                "investigation_until": window,
                "value": row["value"],
            },
            reason=f"variance in run {run.run_id}",
            evidence_sha256=run.sha256,
            at=opened,
        )
        return case_id

    def _recur(
        self,
        *,
        conn: sqlite3.Connection,
        writer: AuditWriter,
        case: Case,
        run: RunVariances,
        run_dates: Mapping[str, str],
        actor: str,
        summary: ImportSummary,
    ) -> None:
        conn.execute("INSERT OR IGNORE INTO case_runs VALUES (?, ?)", (case.case_id, run.run_id))
        changes: dict[str, Any] = {"occurrences": case.occurrences + 1}
        newer = run_dates[case.last_seen_run] <= run.run_date.isoformat()
        if newer:
            changes["last_seen_run"] = run.run_id
        if case.proposed_resolution_run is not None and newer:
            changes["proposed_resolution_run"] = None
        if newer and case.status in (CaseStatus.RESOLVED, CaseStatus.FALSE_POSITIVE):
            changes.update(
                status=str(working_status(case) if case.owner else CaseStatus.OPEN),
                closed_at=None,
                closed_by=None,
            )
            self._set(
                conn,
                writer,
                case,
                changes,
                actor=actor,
                action="case.reopen",
                reason=f"variance recurred in run {run.run_id} after the case was closed",
                evidence_sha256=run.sha256,
            )
            summary.reopened.append(case.case_id)
            return
        self._set(
            conn,
            writer,
            case,
            changes,
            actor=actor,
            action="case.link",
            reason=f"variance recurred in run {run.run_id}",
            evidence_sha256=run.sha256,
        )
        summary.linked.append(case.case_id)
