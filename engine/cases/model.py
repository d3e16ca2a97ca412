"""What a case is: its statuses, fields, errors and the records the store hands out.

No storage and no workflow here: the store (:mod:`.store`), the import of a run
(:mod:`.run_import`), the workflow (:mod:`.workflow`, :mod:`.write_off`) and the export
(:mod:`.export`) all speak in these types.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from tagsweep.config.cases import CASE_OWNER, ApprovalStep, CasesSection
from tagsweep.domain import VarianceType

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

VARIANCE_FIELDS: Final = (
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

CASE_COLUMNS: Final = (
    "case_id",
    "variance_id",
    *VARIANCE_FIELDS,
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
    """One row of the case table (see ``CASE_COLUMNS``)."""

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
        out = {name: getattr(self, name) for name in CASE_COLUMNS}
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


def plain(value: Any) -> Any:
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


def working_status(case: Case) -> CaseStatus:
    """The status of a case once someone works on it: missing assets have their own."""
    if case.variance_type == VarianceType.MISSING:
        return CaseStatus.MISSING_UNDER_INVESTIGATION
    return CaseStatus.UNDER_INVESTIGATION


def chain_steps(settings: CasesSection, value: float | None) -> list[ApprovalStep]:
    """The write-off approval steps an asset of this value needs (unknown value: all)."""
    return [s for s in settings.write_off_chain if value is None or value >= s.min_value]


def step_approvers(step: ApprovalStep, owner: str | None) -> list[str]:
    """Who may sign ``step`` of a case owned by ``owner`` (``@case_owner`` filled in)."""
    return [a for a in (owner if a == CASE_OWNER else a for a in step.approvers) if a]
