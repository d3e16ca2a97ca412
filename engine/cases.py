"""The case store: one investigation per variance, worked to an outcome with evidence.

Steps 4-5 of the reconciliation method: every variance of a run opens a case (or is
linked to the case already open for it), an owner investigates it, attaches evidence and
either resolves it, marks it a false positive, or — for assets that stay missing after
the investigation window — requests a write-off that an approval chain must sign.

Why SQLite and not DuckDB: cases are small rows changed one at a time by people running
the CLI, often several at once (an investigator attaching evidence while a manager
approves). SQLite gives multi-process transactions with a busy timeout; DuckDB lets only
one process open a file for writing and refuses the others outright. The analytics
(trends, golden register) still run on DuckDB/Arrow over the exported tables.

Every change happens while holding the audit log's lock, inside one SQLite transaction,
and appends its audit entries before the commit; the store also records the audit head
so that a truncated log is detected (see :mod:`tagsweep.engine.audit`).
"""

from __future__ import annotations

import enum
import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pyarrow.parquet as pq

from tagsweep.config.cases import CASE_OWNER, CasesSection
from tagsweep.domain import VARIANCE_LOG_COLUMNS, VarianceType
from tagsweep.engine.audit import AuditLog, AuditWriter, Head, VerifyReport

SCHEMA_VERSION: Final = 1

#: Register fields a case may correct, and the variance type whose "found" value
#: corrects each one when a resolution accepts the count.
CORRECTABLE_FIELDS: Final = (
    "asset_tag",
    "serial",
    "manufacturer",
    "model",
    "location",
    "status",
    "custodian",
    "value",
)
FOUND_FIELD_BY_TYPE: Final[dict[str, str]] = {
    VarianceType.LOCATION_MISMATCH: "location",
    VarianceType.CUSTODIAN_MISMATCH: "custodian",
    VarianceType.STATUS_CONDITION_MISMATCH: "status",
}


class CaseStatus(enum.StrEnum):
    """Where a case stands. The last three are outcomes; a recurrence reopens the first two."""

    OPEN = "open"
    UNDER_INVESTIGATION = "under_investigation"
    MISSING_UNDER_INVESTIGATION = "missing_under_investigation"
    WRITE_OFF_REQUESTED = "write_off_requested"
    RESOLVED = "resolved"
    WRITTEN_OFF = "written_off"
    FALSE_POSITIVE = "false_positive"

    @property
    def label(self) -> str:
        """The controlled status label of the seed method, e.g. 'Missing - Under Investigation'."""
        return _LABELS[self]

    @property
    def closed(self) -> bool:
        return self in (CaseStatus.RESOLVED, CaseStatus.WRITTEN_OFF, CaseStatus.FALSE_POSITIVE)


_LABELS = {
    CaseStatus.OPEN: "Open",
    CaseStatus.UNDER_INVESTIGATION: "Under Investigation",
    CaseStatus.MISSING_UNDER_INVESTIGATION: "Missing - Under Investigation",
    CaseStatus.WRITE_OFF_REQUESTED: "Write-off Requested",
    CaseStatus.RESOLVED: "Resolved",
    CaseStatus.WRITTEN_OFF: "Written Off",
    CaseStatus.FALSE_POSITIVE: "False Positive",
}


class CaseError(Exception):
    """A request the case workflow refuses; the message says why and what to do instead."""


class CaseNotFoundError(CaseError):
    pass


# -- record types ----------------------------------------------------------------------

_VARIANCE_FIELDS: Final = (
    "variance_type",
    "priority",
    "sla_due",
    "asset_key",
    "asset_tag",
    "serial",
    "epc",
    "manufacturer",
    "model",
    "expected",
    "found",
    "expected_location",
    "found_location",
    "source",
    "value",
    "high_value",
    "high_risk",
    "detail",
)

_CASE_COLUMNS: Final = (
    "case_id",
    "variance_id",
    *_VARIANCE_FIELDS,
    "owner",
    "status",
    "opened_at",
    "opened_run",
    "last_seen_run",
    "occurrences",
    "investigation_until",
    "proposed_resolution_run",
    "resolution_reason",
    "closed_at",
    "closed_by",
    "write_off_requested_by",
    "write_off_request",
    "updated_at",
)


@dataclass(frozen=True, slots=True)
class Case:
    """One row of the case table (see ``_CASE_COLUMNS``)."""

    case_id: str
    variance_id: str
    variance_type: str
    priority: str | None
    sla_due: str | None
    asset_key: str | None
    asset_tag: str | None
    serial: str | None
    epc: str | None
    manufacturer: str | None
    model: str | None
    expected: str | None
    found: str | None
    expected_location: str | None
    found_location: str | None
    source: str | None
    value: float | None
    high_value: bool | None
    high_risk: bool | None
    detail: str | None
    owner: str | None
    status: CaseStatus
    opened_at: str
    opened_run: str
    last_seen_run: str
    occurrences: int
    investigation_until: str | None
    proposed_resolution_run: str | None
    resolution_reason: str | None
    closed_at: str | None
    closed_by: str | None
    write_off_requested_by: str | None
    write_off_request: int
    updated_at: str

    def overdue(self, today: date) -> bool:
        return (
            not self.status.closed
            and self.sla_due is not None
            and date.fromisoformat(self.sla_due) < today
        )

    def as_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _CASE_COLUMNS}
        out["status"] = str(self.status)
        out["status_label"] = self.status.label
        return out


@dataclass(frozen=True, slots=True)
class CaseDetail:
    """A case with its notes, evidence, approvals, runs and register corrections."""

    case: Case
    notes: list[dict[str, Any]]
    evidence: list[dict[str, Any]]
    approvals: list[dict[str, Any]]
    runs: list[str]
    corrections: list[dict[str, Any]]
    pending_steps: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ImportSummary:
    """What ``cases open --run`` did with one run's variance log."""

    run_id: str
    run_date: str
    already_imported: bool = False
    opened: list[str] = field(default_factory=list)
    linked: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)
    proposed: list[str] = field(default_factory=list)


# -- helpers ---------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, run_dir TEXT NOT NULL, run_date TEXT NOT NULL,
    variances_sha256 TEXT NOT NULL, variance_count INTEGER NOT NULL,
    imported_at TEXT NOT NULL, imported_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY, variance_id TEXT NOT NULL UNIQUE,
    variance_type TEXT NOT NULL, priority TEXT, sla_due TEXT, asset_key TEXT,
    asset_tag TEXT, serial TEXT, epc TEXT, manufacturer TEXT, model TEXT,
    expected TEXT, found TEXT, expected_location TEXT, found_location TEXT, source TEXT,
    value REAL, high_value INTEGER, high_risk INTEGER, detail TEXT,
    owner TEXT, status TEXT NOT NULL, opened_at TEXT NOT NULL, opened_run TEXT NOT NULL,
    last_seen_run TEXT NOT NULL, occurrences INTEGER NOT NULL,
    investigation_until TEXT, proposed_resolution_run TEXT, resolution_reason TEXT,
    closed_at TEXT, closed_by TEXT, write_off_requested_by TEXT,
    write_off_request INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS case_runs (
    case_id TEXT NOT NULL, run_id TEXT NOT NULL, PRIMARY KEY (case_id, run_id));
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY, case_id TEXT NOT NULL, ts TEXT NOT NULL, actor TEXT NOT NULL,
    text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY, case_id TEXT NOT NULL, ts TEXT NOT NULL, actor TEXT NOT NULL,
    kind TEXT NOT NULL, ref TEXT NOT NULL, sha256 TEXT, size INTEGER, stored_path TEXT,
    note TEXT);
CREATE TABLE IF NOT EXISTS approvals (
    id INTEGER PRIMARY KEY, case_id TEXT NOT NULL, request INTEGER NOT NULL,
    step TEXT NOT NULL, approver TEXT NOT NULL, decision TEXT NOT NULL, ts TEXT NOT NULL,
    reason TEXT);
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY, case_id TEXT NOT NULL, asset_key TEXT, field TEXT NOT NULL,
    before TEXT, after TEXT, run_id TEXT NOT NULL, ts TEXT NOT NULL, actor TEXT NOT NULL,
    origin TEXT NOT NULL);
"""


class CaseStore:
    """Cases of one reconciliation programme, in a folder: ``cases.sqlite``, ``audit.jsonl``
    and ``evidence/`` (attached files, content-addressed by sha256 so they cannot drift
    from the hash the audit log recorded)."""

    def __init__(
        self, root: Path, settings: CasesSection | None = None, *, create: bool = True
    ) -> None:
        self.root = Path(root)
        self.settings = settings or CasesSection()
        self.db_path = self.root / "cases.sqlite"
        self.audit = AuditLog(self.root / "audit.jsonl")
        self.evidence_dir = self.root / "evidence"
        if not create and not self.db_path.is_file():
            raise CaseError(
                f"no case store at {self.root} (no cases.sqlite); check --store / "
                "TAGSWEEP_CASE_STORE, or open cases from a run first "
                "(`tagsweep cases open --run DIR`)"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        with self.audit.locked(), self._connect() as conn:
            conn.executescript(_SCHEMA)
            conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    # -- plumbing -----------------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _change(self) -> Iterator[tuple[sqlite3.Connection, AuditWriter]]:
        """One change: audit lock held, one transaction, audit entries before the commit."""
        with self.audit.writing() as writer, self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                recorded = self._recorded_head(conn)
                if recorded.seq != writer.head.seq:
                    raise CaseError(
                        f"{self.audit.path} ends at seq {writer.head.seq} but the case store "
                        f"recorded seq {recorded.seq}; run `tagsweep audit verify` and restore "
                        "the log before making further changes"
                    )
                yield conn, writer
                conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('audit_head', ?)",
                    (json.dumps([writer.head.seq, writer.head.hash]),),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _recorded_head(conn: sqlite3.Connection) -> Head:
        row = conn.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
        if row is None:
            return Head(0, "0" * 64)
        seq, digest = json.loads(row["value"])
        return Head(int(seq), str(digest))

    def recorded_head(self) -> Head:
        with self._connect() as conn:
            return self._recorded_head(conn)

    def verify_audit(self) -> VerifyReport:
        """Verify the audit chain, and that it still reaches the head the store recorded."""
        return self.audit.verify(self.recorded_head())

    def verify_evidence(self) -> list[str]:
        """Evidence files kept in the store whose content no longer matches the sha256
        recorded when they were attached (and in the audit log)."""
        problems = []
        with self._connect() as conn:
            kept = conn.execute(
                "SELECT case_id, stored_path, sha256 FROM evidence "
                "WHERE stored_path IS NOT NULL ORDER BY id"
            ).fetchall()
        for row in kept:
            path = self.root / row["stored_path"]
            if not path.is_file():
                problems.append(f"{row['case_id']}: evidence {row['stored_path']} is missing")
            elif sha256_file(path) != row["sha256"]:
                problems.append(
                    f"{row['case_id']}: evidence {row['stored_path']} was changed after it "
                    "was attached (sha256 differs)"
                )
        return problems

    @staticmethod
    def _case(row: sqlite3.Row) -> Case:
        data = dict(row)
        data["status"] = CaseStatus(data["status"])
        for flag in ("high_value", "high_risk"):
            data[flag] = None if data[flag] is None else bool(data[flag])
        return Case(**data)

    def _get(self, conn: sqlite3.Connection, case_id: str) -> Case:
        row = conn.execute("SELECT * FROM cases WHERE case_id = ?", (case_id,)).fetchone()
        if row is None:
            raise CaseNotFoundError(f"no case {case_id!r}; `tagsweep cases list` shows the ids")
        return self._case(row)

    def _set(
        self,
        conn: sqlite3.Connection,
        writer: AuditWriter,
        case: Case,
        changes: Mapping[str, Any],
        *,
        actor: str,
        action: str,
        reason: str | None = None,
        evidence_sha256: str | None = None,
    ) -> Case:
        before = {k: _plain(getattr(case, k)) for k in changes}
        after = {k: _plain(v) for k, v in changes.items()}
        sets = ", ".join(f"{k} = ?" for k in changes)
        conn.execute(
            f"UPDATE cases SET {sets}, updated_at = ? WHERE case_id = ?",  # noqa: S608 - column names come from _CASE_COLUMNS, never from input
            (*after.values(), _now(), case.case_id),
        )
        writer.append(
            actor=actor,
            action=action,
            subject=case.case_id,
            before=before,
            after=after,
            reason=reason,
            evidence_sha256=evidence_sha256,
        )
        return self._get(conn, case.case_id)

    def _owner_for(self, variance_type: str) -> str | None:
        return self.settings.owners.get(variance_type, self.settings.default_owner)

    # -- reading ------------------------------------------------------------------------

    def get(self, case_id: str) -> Case:
        with self._connect() as conn:
            return self._get(conn, case_id)

    def list_cases(
        self,
        *,
        overdue: bool = False,
        variance_type: str | None = None,
        owner: str | None = None,
        status: str | None = None,
        proposed: bool = False,
        today: date | None = None,
    ) -> list[Case]:
        if variance_type is not None and variance_type not in set(VarianceType):
            raise CaseError(
                f"unknown variance type {variance_type!r}; expected one of "
                f"{', '.join(VarianceType)}"
            )
        if status is not None and status not in set(CaseStatus):
            raise CaseError(f"unknown status {status!r}; expected one of {', '.join(CaseStatus)}")
        query, params = "SELECT * FROM cases WHERE 1 = 1", []
        for column, value in (("variance_type", variance_type), ("owner", owner)):
            if value is not None:
                query += f" AND {column} = ?"
                params.append(value)
        if status is not None:
            query += " AND status = ?"
            params.append(status)
        if proposed:
            query += " AND proposed_resolution_run IS NOT NULL"
        with self._connect() as conn:
            cases = [self._case(r) for r in conn.execute(query + " ORDER BY case_id", params)]
        if overdue:
            day = today or datetime.now(UTC).date()
            cases = [c for c in cases if c.overdue(day)]
        return cases

    def detail(self, case_id: str) -> CaseDetail:
        with self._connect() as conn:
            case = self._get(conn, case_id)

            def rows(sql: str) -> list[dict[str, Any]]:
                return [dict(r) for r in conn.execute(sql, (case_id,))]

            return CaseDetail(
                case=case,
                notes=rows("SELECT ts, actor, text FROM notes WHERE case_id = ? ORDER BY id"),
                evidence=rows(
                    "SELECT ts, actor, kind, ref, sha256, size, stored_path, note "
                    "FROM evidence WHERE case_id = ? ORDER BY id"
                ),
                approvals=rows(
                    "SELECT request, step, approver, decision, ts, reason "
                    "FROM approvals WHERE case_id = ? ORDER BY id"
                ),
                runs=[
                    r["run_id"]
                    for r in conn.execute(
                        "SELECT cr.run_id FROM case_runs cr JOIN runs r USING (run_id) "
                        "WHERE cr.case_id = ? ORDER BY r.run_date, r.run_id",
                        (case_id,),
                    )
                ],
                corrections=rows(
                    "SELECT field, before, after, origin, run_id, ts, actor FROM corrections "
                    "WHERE case_id = ? ORDER BY id"
                ),
                pending_steps=[s.name for s in self._pending_steps(conn, case)]
                if case.status is CaseStatus.WRITE_OFF_REQUESTED
                else [],
            )

    def runs(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM runs ORDER BY run_date, run_id")]

    def corrections(self) -> list[dict[str, Any]]:
        """Accepted register corrections, oldest first (the golden register applies them).

        Only corrections of cases that are still closed as resolved or written off count:
        a case reopened by a later count has had its conclusion withdrawn.
        """
        with self._connect() as conn:
            return [
                dict(r)
                for r in conn.execute(
                    "SELECT c.*, k.variance_type, k.status AS case_status, "
                    "k.asset_tag AS case_asset_tag, k.serial AS case_serial, "
                    "k.manufacturer AS case_manufacturer, k.model AS case_model, "
                    "k.epc AS case_epc, k.value AS case_value "
                    "FROM corrections c JOIN cases k USING (case_id) "
                    "WHERE k.status IN ('resolved', 'written_off') ORDER BY c.id"
                )
            ]

    # -- opening cases from a run --------------------------------------------------------

    def import_run(self, run_dir: Path, *, actor: str) -> ImportSummary:
        """Open a case per new variance, link recurring ones, propose resolutions for
        cases whose variance this (later) count no longer shows."""
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
                    _now(),
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
        if row["variance_type"] == VarianceType.MISSING:
            window = (run.run_date + timedelta(days=self.settings.investigation_days)).isoformat()
        values: dict[str, Any] = {
            "case_id": case_id,
            "variance_id": row["variance_id"],
            **{k: row[k] for k in _VARIANCE_FIELDS},
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
            "updated_at": _now(),
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
            },
            reason=f"variance in run {run.run_id}",
            evidence_sha256=run.sha256,
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
                status=str(self._working_status(case) if case.owner else CaseStatus.OPEN),
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

    @staticmethod
    def _working_status(case: Case) -> CaseStatus:
        if case.variance_type == VarianceType.MISSING:
            return CaseStatus.MISSING_UNDER_INVESTIGATION
        return CaseStatus.UNDER_INVESTIGATION

    # -- working a case -----------------------------------------------------------------

    @staticmethod
    def _require_open(case: Case, what: str) -> None:
        if case.status.closed:
            raise CaseError(
                f"{case.case_id} is {case.status.label.lower()}; cannot {what} a closed case "
                "(it reopens by itself if a later count shows the variance again)"
            )

    def assign(self, case_id: str, owner: str, *, actor: str, reason: str | None = None) -> Case:
        """Give the case an owner; an open case moves to investigation."""
        if not owner.strip():
            raise CaseError("the owner must be a non-empty name")
        with self._change() as (conn, writer):
            case = self._get(conn, case_id)
            self._require_open(case, "assign")
            if case.status is CaseStatus.WRITE_OFF_REQUESTED:
                raise CaseError(
                    f"{case_id} has a write-off request awaiting approval; approve or reject "
                    "it before reassigning (the chain depends on the owner)"
                )
            changes: dict[str, Any] = {"owner": owner}
            if case.status is CaseStatus.OPEN:
                changes["status"] = str(self._working_status(case))
            return self._set(
                conn, writer, case, changes, actor=actor, action="case.assign", reason=reason
            )

    def note(self, case_id: str, text: str, *, actor: str) -> Case:
        if not text.strip():
            raise CaseError("a note needs text")
        with self._change() as (conn, writer):
            case = self._get(conn, case_id)
            conn.execute(
                "INSERT INTO notes (case_id, ts, actor, text) VALUES (?, ?, ?, ?)",
                (case_id, _now(), actor, text),
            )
            writer.append(actor=actor, action="case.note", subject=case_id, after={"note": text})
            return case

    def _add_evidence(
        self,
        *,
        conn: sqlite3.Connection,
        case_id: str,
        actor: str,
        kind: str,
        ref: str,
        digest: str | None,
        note: str | None,
        size: int | None = None,
        stored: str | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO evidence (case_id, ts, actor, kind, ref, sha256, size, stored_path, "
            "note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (case_id, _now(), actor, kind, ref, digest, size, stored, note),
        )

    def attach(
        self, case_id: str, ref: str, *, actor: str, note: str | None = None
    ) -> dict[str, Any]:
        """Attach a file (hashed, and copied into the store by its hash) or a URL."""
        is_url = "://" in ref and not ref.startswith("file://")
        digest = size = stored = None
        if not is_url:
            path = Path(ref.removeprefix("file://")).expanduser()
            if not path.is_file():
                raise CaseError(
                    f"evidence file {path} does not exist (attach a readable file or a URL "
                    "like https://…)"
                )
            digest, size = sha256_file(path), path.stat().st_size
            self.evidence_dir.mkdir(exist_ok=True)
            target = self.evidence_dir / f"{digest}{path.suffix.lower()}"
            if not target.exists():
                tmp = target.with_name(target.name + ".part")
                shutil.copyfile(path, tmp)
                tmp.replace(target)
            stored, ref = str(target.relative_to(self.root)), str(path.resolve())
        with self._change() as (conn, writer):
            case = self._get(conn, case_id)
            self._require_open(case, "attach evidence to")
            kind = "url" if is_url else "file"
            self._add_evidence(
                conn=conn,
                case_id=case_id,
                actor=actor,
                kind=kind,
                ref=ref,
                digest=digest,
                size=size,
                stored=stored,
                note=note,
            )
            writer.append(
                actor=actor,
                action="case.attach",
                subject=case_id,
                after={"kind": kind, "ref": ref, "size": size, "note": note},
                evidence_sha256=digest,
            )
        return {"kind": kind, "ref": ref, "sha256": digest, "size": size, "stored_path": stored}

    def _has_evidence(self, conn: sqlite3.Connection, case_id: str) -> bool:
        row = conn.execute("SELECT COUNT(*) FROM evidence WHERE case_id = ?", (case_id,))
        return bool(row.fetchone()[0])

    def _latest_evidence_hash(self, conn: sqlite3.Connection, case_id: str) -> str | None:
        row = conn.execute(
            "SELECT sha256 FROM evidence WHERE case_id = ? AND sha256 IS NOT NULL "
            "ORDER BY id DESC LIMIT 1",
            (case_id,),
        ).fetchone()
        return None if row is None else str(row["sha256"])

    def resolve(
        self,
        case_id: str,
        outcome: str,
        *,
        actor: str,
        reason: str,
        corrections: Mapping[str, str] | None = None,
        accept_found: bool = False,
        today: date | None = None,
    ) -> Case:
        """Close a case as ``resolved`` or ``false_positive``, or request a write-off.

        ``corrections`` are register fields to set (``{"location": "DC1/Room 404"}``);
        ``accept_found`` takes the counted value for the field the variance type is about
        (a location mismatch corrects the location to where the asset was found).
        """
        if outcome not in ("resolved", "false_positive", "written_off"):
            raise CaseError(
                f"unknown outcome {outcome!r}; expected resolved, false_positive or written_off"
            )
        if not reason.strip():
            raise CaseError("say why: a resolution needs a reason (--reason)")
        corrections = dict(corrections or {})
        accepted: set[str] = set()
        bad = sorted(set(corrections) - set(CORRECTABLE_FIELDS))
        if bad:
            raise CaseError(
                f"cannot correct {bad}; register fields are {', '.join(CORRECTABLE_FIELDS)}"
            )
        if "value" in corrections:
            try:
                float(corrections["value"])
            except ValueError:
                raise CaseError(f"value must be a number, got {corrections['value']!r}") from None
        day = today or datetime.now(UTC).date()
        with self._change() as (conn, writer):
            case = self._get(conn, case_id)
            self._require_open(case, "resolve")
            if case.status is CaseStatus.WRITE_OFF_REQUESTED:
                raise CaseError(
                    f"{case_id} has a write-off request awaiting approval "
                    "(`tagsweep cases approve`, or `--reject` to withdraw it)"
                )
            if accept_found:
                target = FOUND_FIELD_BY_TYPE.get(case.variance_type)
                if case.variance_type == VarianceType.UNRECORDED:
                    target = "location"
                if target is None:
                    raise CaseError(
                        f"{case.variance_type} has no counted value to accept; "
                        "pass the corrections with --set FIELD=VALUE"
                    )
                found = case.found_location if target == "location" else case.found
                if found is None:
                    raise CaseError(f"{case_id} records no counted {target} to accept")
                accepted.add(target)
                corrections.setdefault(target, found)
            if outcome == "written_off":
                if corrections:
                    raise CaseError(
                        "a write-off sets the register status itself once approved; "
                        "drop --set/--accept-found"
                    )
                return self._request_write_off(
                    conn=conn, writer=writer, case=case, actor=actor, reason=reason, today=day
                )
            if (
                outcome == "resolved"
                and case.variance_type in self.settings.evidence_required
                and not self._has_evidence(conn, case_id)
            ):
                raise CaseError(
                    f"{case_id} is a {case.variance_type} case: resolving it needs evidence. "
                    f"Attach it first (`tagsweep cases attach {case_id} FILE|URL`), or wait "
                    "for a later count that no longer shows the variance"
                )
            if outcome == "false_positive" and corrections:
                raise CaseError("a false positive changes nothing: drop the corrections")
            run_id = case.proposed_resolution_run or case.last_seen_run
            for name, value in corrections.items():
                before = self._register_value(case, name)
                conn.execute(
                    "INSERT INTO corrections (case_id, asset_key, field, before, after, run_id, "
                    "ts, actor, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        case_id,
                        case.asset_key,
                        name,
                        before,
                        value,
                        run_id,
                        _now(),
                        actor,
                        "count" if name in accepted else "investigation",
                    ),
                )
                writer.append(
                    actor=actor,
                    action="register.correct",
                    subject=case.asset_key or case_id,
                    before={name: before},
                    after={name: value},
                    reason=f"{case_id}: {reason}",
                    evidence_sha256=self._latest_evidence_hash(conn, case_id),
                )
            return self._set(
                conn,
                writer,
                case,
                {
                    "status": outcome,
                    "resolution_reason": reason,
                    "closed_at": _now(),
                    "closed_by": actor,
                },
                actor=actor,
                action=f"case.{outcome}",
                reason=reason,
                evidence_sha256=self._latest_evidence_hash(conn, case_id),
            )

    @staticmethod
    def _register_value(case: Case, name: str) -> str | None:
        if name == "location":
            return case.expected_location
        if name in ("asset_tag", "serial", "manufacturer", "model"):
            value = getattr(case, name)
            return None if value is None else str(value)
        if name == "value":
            return None if case.value is None else str(case.value)
        if FOUND_FIELD_BY_TYPE.get(case.variance_type) == name:
            return case.expected
        return None

    # -- write-off approval chain -------------------------------------------------------

    def _chain(self, case: Case) -> list[Any]:
        return [
            step
            for step in self.settings.write_off_chain
            if case.value is None or case.value >= step.min_value
        ]

    def _pending_steps(self, conn: sqlite3.Connection, case: Case) -> list[Any]:
        signed = {
            r["step"]
            for r in conn.execute(
                "SELECT step FROM approvals WHERE case_id = ? AND request = ? "
                "AND decision = 'approved'",
                (case.case_id, case.write_off_request),
            )
        }
        return [s for s in self._chain(case) if s.name not in signed]

    def _request_write_off(
        self,
        *,
        conn: sqlite3.Connection,
        writer: AuditWriter,
        case: Case,
        actor: str,
        reason: str,
        today: date,
    ) -> Case:
        if case.variance_type not in self.settings.write_off_types:
            raise CaseError(
                f"{case.case_id} is a {case.variance_type} case; only "
                f"{', '.join(self.settings.write_off_types)} cases can be written off"
            )
        if case.investigation_until and today < date.fromisoformat(case.investigation_until):
            raise CaseError(
                f"{case.case_id} is still in its investigation window until "
                f"{case.investigation_until} ({self.settings.investigation_days} days from the "
                "count); keep searching (repair vendor, informal transfer, last custodian) "
                "and request the write-off after that date"
            )
        if case.variance_type in self.settings.evidence_required and not self._has_evidence(
            conn, case.case_id
        ):
            raise CaseError(
                f"{case.case_id}: a write-off request needs evidence of the search; attach it "
                f"first (`tagsweep cases attach {case.case_id} FILE|URL`)"
            )
        for step in self._chain(case):
            allowed = {case.owner if a == CASE_OWNER else a for a in step.approvers} - {None}
            if not allowed:
                raise CaseError(
                    f"nobody can sign step {step.name!r} of the write-off chain: "
                    f"{case.case_id} has no owner; assign it first (`tagsweep cases assign`)"
                )
            if not allowed - {actor}:
                raise CaseError(
                    f"step {step.name!r} of the write-off chain could only be signed by "
                    f"{actor}, who would be approving their own request; have another "
                    f"investigator request it, or reassign {case.case_id} first"
                )
        case = self._set(
            conn,
            writer,
            case,
            {
                "status": str(CaseStatus.WRITE_OFF_REQUESTED),
                "write_off_requested_by": actor,
                "write_off_request": case.write_off_request + 1,
                "resolution_reason": reason,
            },
            actor=actor,
            action="case.request_write_off",
            reason=reason,
            evidence_sha256=self._latest_evidence_hash(conn, case.case_id),
        )
        if not self._pending_steps(conn, case):
            case = self._write_off(conn, writer, case, actor, "no approval step applies")
        return case

    def approve(
        self, case_id: str, *, actor: str, reject: bool = False, reason: str | None = None
    ) -> Case:
        """Sign the next step of a write-off request (or reject the request)."""
        with self._change() as (conn, writer):
            case = self._get(conn, case_id)
            if case.status is not CaseStatus.WRITE_OFF_REQUESTED:
                raise CaseError(
                    f"{case_id} is {case.status.label.lower()}: there is no write-off request "
                    f"to approve (request one with `tagsweep cases resolve {case_id} "
                    "--outcome written_off`)"
                )
            if case.proposed_resolution_run is not None and not reject:
                raise CaseError(
                    f"run {case.proposed_resolution_run} no longer shows this variance (the "
                    f"asset was counted); reject the write-off (`tagsweep cases approve "
                    f"{case_id} --reject --reason …`) and resolve the case instead"
                )
            if actor == case.write_off_requested_by and not reject:
                raise CaseError(
                    f"{actor} requested this write-off and cannot approve it; "
                    "another approver must sign"
                )
            signed_by = {
                r["approver"]
                for r in conn.execute(
                    "SELECT approver FROM approvals WHERE case_id = ? AND request = ? "
                    "AND decision = 'approved'",
                    (case_id, case.write_off_request),
                )
            }
            pending = self._pending_steps(conn, case)
            step = pending[0]
            allowed = [case.owner if a == CASE_OWNER else a for a in step.approvers]
            withdrawing = reject and actor == case.write_off_requested_by
            if actor not in allowed and not withdrawing:
                who = ", ".join(a for a in allowed if a) or "nobody (the case has no owner)"
                raise CaseError(
                    f"step {step.name!r} of the write-off chain must be signed by {who}, "
                    f"not {actor}"
                )
            if actor in signed_by:
                raise CaseError(
                    f"{actor} already signed an earlier step of this write-off; each step "
                    "needs a different approver"
                )
            if reject and not (reason and reason.strip()):
                raise CaseError("a rejection needs a reason (--reason)")
            conn.execute(
                "INSERT INTO approvals (case_id, request, step, approver, decision, ts, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    case_id,
                    case.write_off_request,
                    step.name,
                    actor,
                    "rejected" if reject else "approved",
                    _now(),
                    reason,
                ),
            )
            if reject:
                return self._set(
                    conn,
                    writer,
                    case,
                    {
                        "status": str(CaseStatus.MISSING_UNDER_INVESTIGATION),
                        "write_off_requested_by": None,
                    },
                    actor=actor,
                    action="case.reject_write_off",
                    reason=reason,
                )
            writer.append(
                actor=actor,
                action="case.approve",
                subject=case_id,
                after={"step": step.name, "request": case.write_off_request},
                reason=reason,
            )
            if len(pending) == 1:
                case = self._write_off(conn, writer, case, actor, reason)
            return case

    def _write_off(
        self,
        conn: sqlite3.Connection,
        writer: AuditWriter,
        case: Case,
        actor: str,
        reason: str | None,
    ) -> Case:
        status = self.settings.write_off_status
        conn.execute(
            "INSERT INTO corrections (case_id, asset_key, field, before, after, run_id, ts, "
            "actor, origin) VALUES (?, ?, 'status', ?, ?, ?, ?, ?, 'write_off')",
            (case.case_id, case.asset_key, None, status, case.last_seen_run, _now(), actor),
        )
        writer.append(
            actor=actor,
            action="register.correct",
            subject=case.asset_key or case.case_id,
            before={"status": None},
            after={"status": status},
            reason=f"{case.case_id}: written off after approval",
        )
        return self._set(
            conn,
            writer,
            case,
            {"status": str(CaseStatus.WRITTEN_OFF), "closed_at": _now(), "closed_by": actor},
            actor=actor,
            action="case.written_off",
            reason=reason or "write-off approved by every step of the chain",
        )

    def record_golden(
        self, *, run_id: str, path: Path, sha256: str, actor: str, applied: int, added: int
    ) -> Head:
        """Record in the audit log that a golden register was produced, and from what."""
        with self._change() as (_conn, writer):
            writer.append(
                actor=actor,
                action="register.golden",
                subject=run_id,
                after={"path": str(path), "corrections_applied": applied, "assets_added": added},
                reason=f"golden register from run {run_id} and the accepted corrections",
                evidence_sha256=sha256,
            )
            return writer.head

    # -- export -------------------------------------------------------------------------

    def export(self, out: Path, fmt: str = "csv") -> Path:
        """Write every case (CSV with formula-injection escaping, or JSON lines)."""
        cases = [c.as_dict() for c in self.list_cases()]
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "jsonl":
            out.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases))
            return out
        if fmt != "csv":
            raise CaseError(f"unknown export format {fmt!r}; expected csv or jsonl")
        import csv

        columns = [*_CASE_COLUMNS, "status_label"]
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for case in cases:
                writer.writerow({k: csv_safe(case[k]) for k in columns})
        return out


def csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formula injection (OWASP): prefix '=+-@\\t\\r' cells with '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    return value


def parse_assignments(items: Sequence[str]) -> dict[str, str]:
    """``["location=DC1/Room 404"]`` → ``{"location": "DC1/Room 404"}`` with a clear error."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CaseError(f"expected FIELD=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out
