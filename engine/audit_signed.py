"""Checking who signed the audit log: every signature, against ``allowed_signers``.

The hash chain (:meth:`tagsweep.engine.audit.AuditLog.verify`) proves the log was not
edited after the fact by someone who cannot recompute hashes; signatures prove who wrote
each entry, so an insider who can write the files cannot put words in someone else's
name. The rules:

- a signed entry's signature verifies (SSHSIG, namespace ``tagsweep-audit``) over the
  entry, and its key is listed in ``allowed_signers`` for the entry's actor at the entry's
  signed time (``valid-after`` / ``valid-before``: rotated keys stay good for what they
  signed while valid);
- entry times never go back along the chain by more than ``MAX_CLOCK_SKEW`` (a signer
  cannot backdate past the entries before it; the writer refuses to, too);
- once a signed entry is in the log, every later entry is signed;
- unsigned entries from before signing was set up are covered by a signed ``audit.seal``
  entry of an auditor (the one-time migration), else each is a finding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tagsweep.engine.allowed_signers import AllowedSigners
from tagsweep.engine.audit import AUDIT_NAMESPACE, MAX_CLOCK_SKEW, AuditEntry, signed_message
from tagsweep.engine.sshsig import SignatureError, verify

SEAL_ACTION = "audit.seal"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong with the log or the store, at an entry (``seq``) where known."""

    seq: int | None
    problem: str
    case_id: str | None = None

    def describe(self) -> str:
        where = f"entry seq {self.seq}" if self.seq is not None else "store"
        case = f" [{self.case_id}]" if self.case_id else ""
        return f"{where}{case}: {self.problem}"


@dataclass(slots=True)
class SignatureSummary:
    signed: int = 0
    unsigned: int = 0
    sealed_at: int | None = None


def check_signatures(
    entries: Iterable[AuditEntry], signers: AllowedSigners | None, auditors: list[str]
) -> tuple[list[Finding], SignatureSummary]:
    """Findings (in log order) about the signatures of ``entries``."""
    findings: list[Finding] = []
    summary = SignatureSummary()
    unsigned: list[int] = []
    latest: AuditEntry | None = None
    for entry in entries:
        if latest is not None and entry.when < latest.when - MAX_CLOCK_SKEW:
            findings.append(
                Finding(
                    entry.seq,
                    f"signed time {entry.ts} is more than {MAX_CLOCK_SKEW} before entry seq "
                    f"{latest.seq} ({latest.ts}): entries cannot be backdated",
                )
            )
        if latest is None or entry.when > latest.when:
            latest = entry
        if entry.sig is None:
            summary.unsigned += 1
            if summary.signed:
                findings.append(
                    Finding(entry.seq, "unsigned entry after the log was signed (forged)")
                )
            else:
                unsigned.append(entry.seq)
            continue
        summary.signed += 1
        if signers is None:
            findings.append(
                Finding(
                    entry.seq,
                    "signed, but no [engine.cases] allowed_signers is configured to check it",
                )
            )
            continue
        try:
            key = verify(entry.sig, signed_message(entry.as_dict()), AUDIT_NAMESPACE)
            line = signers.identify(key, entry.when, AUDIT_NAMESPACE)
        except SignatureError as exc:
            findings.append(Finding(entry.seq, f"bad signature: {exc}"))
            continue
        if entry.actor != line.name:
            findings.append(
                Finding(
                    entry.seq,
                    f"records actor {entry.actor!r} but was signed by {line.name}'s key "
                    f"({signers.path}:{line.line})",
                )
            )
        if entry.action == SEAL_ACTION:
            if auditors and entry.actor not in auditors:
                findings.append(
                    Finding(
                        entry.seq,
                        f"sealed by {entry.actor}, who is not an auditor "
                        f"([engine.cases] auditors: {', '.join(auditors)})",
                    )
                )
            elif summary.sealed_at is None:
                summary.sealed_at = entry.seq
    if unsigned and signers is not None and summary.sealed_at is None:
        findings.append(
            Finding(
                unsigned[0],
                f"{len(unsigned)} unsigned entr{'y' if len(unsigned) == 1 else 'ies'} "
                "(actors claimed, not proven) and no audit.seal by an auditor covers them "
                "(`tagsweep audit seal`)",
            )
        )
    return findings, summary
