"""The write-off approval chain: request a write-off after the investigation window,
sign each step of the chain (distinct approvers, never the requester), or reject it."""

from __future__ import annotations

import sqlite3
from datetime import date

from tagsweep.engine.audit import AuditWriter
from tagsweep.engine.cases.model import Case, CaseError, CaseStatus, step_approvers
from tagsweep.engine.cases.store import CaseStoreCore


class WriteOffChain(CaseStoreCore):
    """Requesting, approving and rejecting write-offs."""

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
        self._require_role(actor, "requesters", self.settings.requesters, "request write-offs")
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
            allowed = set(step_approvers(step, case.owner))
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
        self,
        case_id: str,
        *,
        actor: str | None = None,
        reject: bool = False,
        reason: str | None = None,
    ) -> Case:
        """Sign the next step of a write-off request (or reject the request)."""
        actor = self._actor(actor)
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
            allowed = step_approvers(step, case.owner)
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
                    self._now(),
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
            (case.case_id, case.asset_key, None, status, case.last_seen_run, self._now(), actor),
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
            {"status": str(CaseStatus.WRITTEN_OFF), "closed_at": self._now(), "closed_by": actor},
            actor=actor,
            action="case.written_off",
            reason=reason or "write-off approved by every step of the chain",
        )
