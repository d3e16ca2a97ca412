"""The case store: one investigation per variance, worked to an outcome with evidence.

Steps 4-5 of the reconciliation method: every variance of a run opens a case (or is
linked to the case already open for it), an owner investigates it, attaches evidence and
either resolves it, marks it a false positive, or — for assets that stay missing after
the investigation window — requests a write-off that an approval chain must sign.

The package, one concern per module:

- :mod:`.model` — what a case is (status, fields, errors, records handed out);
- :mod:`.store` — the SQLite tables, one audited transaction per change, reading cases
  and the accepted register corrections (what the golden register and integrations read);
- :mod:`.run_import` — opening, linking and proposing cases from a run's variance log;
- :mod:`.workflow` — assign, note, attach, resolve;
- :mod:`.write_off` — the write-off request and its approval chain;
- :mod:`.export` — every case to CSV or JSON lines;
- :mod:`.replay`, :mod:`.auditing` — the auditor's check: the log's rules replayed and
  the store compared with the log; sealing a log written before signing.

:class:`CaseStore` puts them together; import the public names from here.
"""

from __future__ import annotations

from tagsweep.engine.cases.auditing import AuditChecks, AuditFindings
from tagsweep.engine.cases.export import CaseExport
from tagsweep.engine.cases.model import (
    CORRECTABLE_FIELDS,
    FOUND_FIELD_BY_TYPE,
    SCHEMA_VERSION,
    Case,
    CaseDetail,
    CaseError,
    CaseNotFoundError,
    CaseStatus,
    ImportSummary,
    parse_assignments,
)
from tagsweep.engine.cases.run_import import RunImport, RunVariances, read_run
from tagsweep.engine.cases.workflow import Workflow
from tagsweep.engine.escaping import csv_safe

__all__ = [
    "CORRECTABLE_FIELDS",
    "FOUND_FIELD_BY_TYPE",
    "SCHEMA_VERSION",
    "AuditFindings",
    "Case",
    "CaseDetail",
    "CaseError",
    "CaseNotFoundError",
    "CaseStatus",
    "CaseStore",
    "ImportSummary",
    "RunVariances",
    "csv_safe",
    "parse_assignments",
    "read_run",
]


class CaseStore(Workflow, RunImport, CaseExport, AuditChecks):
    """Cases of one reconciliation programme, in a folder: ``cases.sqlite``, ``audit.jsonl``
    and ``evidence/`` (attached files, content-addressed by sha256 so they cannot drift
    from the hash the audit log recorded).

    Reading: :meth:`get`, :meth:`list_cases`, :meth:`detail`, :meth:`runs`,
    :meth:`corrections` (accepted register corrections of resolved and written-off cases).
    Changing: :meth:`import_run`, :meth:`assign`, :meth:`note`, :meth:`attach`,
    :meth:`resolve`, :meth:`approve`. Exporting: :meth:`export`. Auditing:
    :meth:`check_audit`, :meth:`seal`.

    With ``[engine.cases] allowed_signers`` set, every change is signed by ``signer`` and
    the actor is the key's owner (an ``actor`` argument is only a cross-check).
    """
