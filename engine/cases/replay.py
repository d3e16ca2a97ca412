"""Replaying the audit log: the workflow's rules checked entry by entry, and the case store
compared with what the log says happened.

The store (``cases.sqlite``) is what commands read, but the log is the record: an edit
to the store alone (an approver's name, a status) must show. Replaying every ``case.*``
entry rebuilds each case's status, owner, write-off request, approvals and outcome, and
checks on the way what the workflow enforces when a command runs:

- a write-off request comes from a requester (``[engine.cases] requesters``), after the
  investigation window, which runs from the signed time of the case's opening entry;
- each approval signs the next pending step of the chain, by someone allowed to sign
  that step, who is neither the requester nor an earlier approver of the same request;
- a case is written off only when every step of its chain has been approved.

The chain and roles are today's ``[engine.cases]``: verify with the policy the entries
were written under.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from tagsweep.config.cases import CasesSection
from tagsweep.engine.audit import AuditEntry
from tagsweep.engine.audit_signed import Finding
from tagsweep.engine.cases.model import Case, chain_steps, step_approvers

#: Case fields an entry's ``after`` may set, and the store's columns compared with them.
TRACKED: Final = (
    "status",
    "owner",
    "write_off_requested_by",
    "write_off_request",
    "closed_by",
    "resolution_reason",
)
#: The shortest investigation window the method allows (seed method, step 4).
MIN_WINDOW_DAYS: Final = 30

Approval = tuple[int, str, str, str]  # request, step, approver, decision


@dataclass(slots=True)
class _Replayed:
    fields: dict[str, Any]
    value: float | None
    opened: datetime
    opened_signed: bool
    investigation_until: str | None
    last_seq: int
    approvals: list[Approval] = field(default_factory=list)


def replay(
    entries: Iterable[AuditEntry],
    settings: CasesSection,
    values: Mapping[str, float | None],
) -> tuple[dict[str, _Replayed], list[Finding]]:
    """Replay ``case.*`` entries; ``values`` gives asset values of cases whose opening
    entry predates recording them. Returns the replayed cases and rule findings."""
    cases: dict[str, _Replayed] = {}
    findings: list[Finding] = []
    for entry in entries:
        if not entry.action.startswith("case."):
            continue
        cid = entry.subject
        if entry.action == "case.open":
            after = entry.after or {}
            cases[cid] = _Replayed(
                fields={
                    "status": after.get("status"),
                    "owner": after.get("owner"),
                    "write_off_requested_by": None,
                    "write_off_request": 0,
                    "closed_by": None,
                    "resolution_reason": None,
                },
                value=after["value"] if "value" in after else values.get(cid),
                opened=entry.when,
                opened_signed=entry.sig is not None,
                investigation_until=after.get("investigation_until"),
                last_seq=entry.seq,
            )
            continue
        case = cases.get(cid)
        if case is None:
            findings.append(Finding(entry.seq, f"{entry.action} of a case never opened", cid))
            continue
        case.last_seq = entry.seq
        problem = _check(entry, case, settings)
        if problem is not None:
            findings.append(Finding(entry.seq, f"{entry.action} by {entry.actor}: {problem}", cid))
        if isinstance(entry.after, dict) and entry.action not in ("case.approve", "case.note"):
            case.fields.update({k: v for k, v in entry.after.items() if k in TRACKED})
    return cases, findings


def _pending(case: _Replayed, settings: CasesSection) -> list[str]:
    request = case.fields["write_off_request"]
    signed = {s for r, s, _a, d in case.approvals if r == request and d == "approved"}
    return [s.name for s in chain_steps(settings, case.value) if s.name not in signed]


def _check(entry: AuditEntry, case: _Replayed, settings: CasesSection) -> str | None:
    """What rule ``entry`` breaks, if any; records approvals on the way."""
    fields = case.fields
    request = fields["write_off_request"]
    if entry.action == "case.request_write_off":
        if settings.requesters and entry.actor not in settings.requesters:
            return f"not a requester ([engine.cases] requesters: {', '.join(settings.requesters)})"
        return _window_problem(entry, case)
    if entry.action not in ("case.approve", "case.reject_write_off", "case.written_off"):
        return None
    pending = _pending(case, settings)
    if entry.action == "case.written_off":
        if fields["status"] != "write_off_requested":
            return "written off without a write-off request"
        return f"written off with step(s) {', '.join(pending)} unsigned" if pending else None
    if fields["status"] != "write_off_requested" or not pending:
        return "no write-off request awaits approval"
    step_name = pending[0]
    if entry.action == "case.reject_write_off":
        case.approvals.append((request, step_name, entry.actor, "rejected"))
        return None
    signed = (entry.after or {}).get("step")
    case.approvals.append((request, str(signed), entry.actor, "approved"))
    if entry.actor == fields["write_off_requested_by"]:
        return "self-approval: the requester approved their own write-off"
    earlier = {a for r, _s, a, d in case.approvals[:-1] if r == request and d == "approved"}
    if entry.actor in earlier:
        return "signed an earlier step of the same request: each step needs another person"
    if signed != step_name:
        return f"signed step {signed!r} but step {step_name!r} was next"
    step = next(s for s in chain_steps(settings, case.value) if s.name == step_name)
    allowed = step_approvers(step, fields["owner"])
    if entry.actor not in allowed:
        who = ", ".join(allowed) or "nobody (no owner)"
        return f"may not sign step {step_name!r} (allowed: {who})"
    return None


def _window_problem(entry: AuditEntry, case: _Replayed) -> str | None:
    until = case.investigation_until
    if until is None:
        return None
    if entry.when.astimezone(UTC).date() < date.fromisoformat(until):
        return f"requested on {entry.ts[:10]}, inside the investigation window (until {until})"
    earliest = case.opened.astimezone(UTC).date() + timedelta(days=MIN_WINDOW_DAYS)
    if case.opened_signed and date.fromisoformat(until) < earliest:
        return (
            f"the investigation window recorded ({until}) ends less than {MIN_WINDOW_DAYS} "
            f"days after the case was opened ({case.opened.date()})"
        )
    return None


def compare(
    replayed: Mapping[str, _Replayed],
    store_cases: Iterable[Case],
    store_approvals: Mapping[str, list[Approval]],
) -> list[Finding]:
    """Every difference between the store and the replayed log, case by case."""
    findings = []
    seen = set()
    for case in store_cases:
        seen.add(case.case_id)
        log = replayed.get(case.case_id)
        if log is None:
            findings.append(Finding(None, "in the store but never opened in the log", case.case_id))
            continue
        for name in TRACKED:
            stored = str(case.status) if name == "status" else getattr(case, name)
            if stored != log.fields[name]:
                findings.append(
                    Finding(
                        None,
                        f"{name} is {stored!r} in the store but {log.fields[name]!r} in the "
                        f"log (last entry seq {log.last_seq})",
                        case.case_id,
                    )
                )
        approvals = store_approvals.get(case.case_id, [])
        if approvals != log.approvals:
            findings.append(
                Finding(
                    None,
                    f"approvals in the store {approvals} differ from the log {log.approvals}",
                    case.case_id,
                )
            )
    findings.extend(
        Finding(replayed[cid].last_seq, "in the log but not in the store", cid)
        for cid in sorted(set(replayed) - seen)
    )
    return findings
