"""The case store's tables and plumbing: one SQLite transaction per change, with its
audit entries appended under the audit log's lock before the commit; and reading cases.

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

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tagsweep.config.cases import ApprovalStep, CasesSection
from tagsweep.domain import VarianceType
from tagsweep.engine.allowed_signers import AllowedSigners
from tagsweep.engine.audit import (
    AUDIT_NAMESPACE,
    AuditLog,
    AuditWriter,
    Clock,
    Head,
    VerifyReport,
    utc_now,
)
from tagsweep.engine.cases.model import (
    SCHEMA_VERSION,
    Case,
    CaseDetail,
    CaseError,
    CaseNotFoundError,
    CaseStatus,
    chain_steps,
    plain,
)
from tagsweep.engine.sshsig import SignatureError, Signer, fingerprint
from tagsweep.hashing import sha256_file

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


class CaseStoreCore:
    """Cases of one reconciliation programme, in a folder: ``cases.sqlite``, ``audit.jsonl``
    and ``evidence/`` (attached files, content-addressed by sha256 so they cannot drift
    from the hash the audit log recorded)."""

    def __init__(
        self,
        root: Path,
        settings: CasesSection | None = None,
        *,
        create: bool = True,
        signer: Signer | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.root = Path(root)
        self.settings = settings or CasesSection()
        #: The key every change is signed with, and the people allowed to sign.
        self.signer = signer
        self.signers: AllowedSigners | None = None
        if self.settings.allowed_signers is not None:
            try:
                self.signers = AllowedSigners.load(self.settings.allowed_signers)
            except SignatureError as exc:
                raise CaseError(str(exc)) from None
        #: Where entry times come from: the signed time of each change.
        self.clock: Clock = clock or utc_now
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
    def _change(self, *, sealing: bool = False) -> Iterator[tuple[sqlite3.Connection, AuditWriter]]:
        """One change: audit lock held, one transaction, audit entries before the commit."""
        with (
            self.audit.writing(signer=self.signer, clock=self.clock) as writer,
            self._connect() as conn,
        ):
            conn.execute("BEGIN IMMEDIATE")
            try:
                if (
                    self.signer is not None
                    and not sealing
                    and writer.head.seq
                    and not writer.signed
                ):
                    raise CaseError(
                        f"{self.audit.path} holds {writer.head.seq} unsigned entries from before "
                        "signing was set up: an auditor seals them once (`tagsweep audit seal`) "
                        "before signed changes begin"
                    )
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

    def _now(self) -> str:
        return self.clock().astimezone(UTC).isoformat(timespec="seconds")

    def _actor(self, claimed: str | None) -> str:
        """Who is acting: the owner of the signing key when signing is set up (``claimed``
        is then only a cross-check), else the claimed name (unsigned, legacy)."""
        claimed = (claimed or "").strip() or None
        if self.signers is None:
            if claimed is None:
                raise CaseError("say who is acting (--actor NAME or TAGSWEEP_ACTOR)")
            return claimed
        where = self.signers.path
        if self.signer is None:
            raise CaseError(
                f"changes to this case store are signed ([engine.cases] allowed_signers = "
                f"{where}): load your SSH key into ssh-agent (`ssh-add`) or name it with "
                "--key FILE / TAGSWEEP_SIGNING_KEY"
            )
        try:
            line = self.signers.identify(self.signer.key_blob, self.clock(), AUDIT_NAMESPACE)
        except SignatureError as exc:
            raise CaseError(
                f"refused: {exc}; ask whoever keeps {where} to add your public key"
            ) from None
        if claimed is not None and claimed not in line.principals:
            raise CaseError(
                f"refused: --actor {claimed} does not match the signing key "
                f"{fingerprint(self.signer.key_blob)}, which belongs to {line.name} "
                f"({where}:{line.line})"
            )
        return line.name

    def _require_role(self, actor: str, role: str, names: list[str], what: str) -> None:
        if names and actor not in names:
            raise CaseError(
                f"refused: {actor} may not {what}: only {', '.join(names)} ([engine.cases] {role})"
            )

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
        before = {k: plain(getattr(case, k)) for k in changes}
        after = {k: plain(v) for k, v in changes.items()}
        sets = ", ".join(f"{k} = ?" for k in changes)
        conn.execute(
            f"UPDATE cases SET {sets}, updated_at = ? WHERE case_id = ?",  # noqa: S608 - column names come from CASE_COLUMNS, never from input
            (*after.values(), self._now(), case.case_id),
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
    # -- working a case -----------------------------------------------------------------

    @staticmethod
    def _require_open(case: Case, what: str) -> None:
        if case.status.closed:
            raise CaseError(
                f"{case.case_id} is {case.status.label.lower()}; cannot {what} a closed case "
                "(it reopens by itself if a later count shows the variance again)"
            )

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
            (case_id, self._now(), actor, kind, ref, digest, size, stored, note),
        )

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

    # -- write-off approval chain -------------------------------------------------------

    def _chain(self, case: Case) -> list[ApprovalStep]:
        return chain_steps(self.settings, case.value)

    def _pending_steps(self, conn: sqlite3.Connection, case: Case) -> list[ApprovalStep]:
        signed = {
            r["step"]
            for r in conn.execute(
                "SELECT step FROM approvals WHERE case_id = ? AND request = ? "
                "AND decision = 'approved'",
                (case.case_id, case.write_off_request),
            )
        }
        return [s for s in self._chain(case) if s.name not in signed]

    def record_golden(
        self,
        *,
        run_id: str,
        path: Path,
        sha256: str,
        actor: str | None = None,
        applied: int,
        added: int,
    ) -> Head:
        """Record in the audit log that a golden register was produced, and from what."""
        actor = self._actor(actor)
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
