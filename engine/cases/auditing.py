"""``tagsweep audit verify`` and ``audit seal`` on a case store: the whole check an auditor
runs offline — chain, signatures, roles and rules, the store against the log, anchors
and kept evidence — and the one-time seal of a log written before signing."""

from __future__ import annotations

from dataclasses import dataclass, field

from tagsweep.engine.audit import VerifyReport
from tagsweep.engine.audit_anchor import Anchor, check_anchor
from tagsweep.engine.audit_signed import SEAL_ACTION, Finding, SignatureSummary, check_signatures
from tagsweep.engine.cases.model import CaseError
from tagsweep.engine.cases.replay import Approval, compare, replay
from tagsweep.engine.cases.store import CaseStoreCore


@dataclass(slots=True)
class AuditFindings:
    """What ``audit verify`` found; ``ok`` when nothing."""

    chain: VerifyReport
    signatures: SignatureSummary = field(default_factory=SignatureSummary)
    findings: list[Finding] = field(default_factory=list)
    anchors_checked: int = 0

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.findings

    @property
    def first(self) -> Finding | None:
        """The first failing entry (lowest seq); store-only differences after them."""
        if not self.findings:
            return None
        return min(self.findings, key=lambda f: (f.seq is None, f.seq or 0))

    def describe(self) -> str:
        if not self.chain.ok:
            return self.chain.describe()
        sig = self.signatures
        signed = f"{sig.signed} signed, {sig.unsigned} unsigned"
        if sig.sealed_at is not None:
            signed += f" (sealed at seq {sig.sealed_at})"
        if self.ok:
            return (
                f"OK {self.chain.entries} entries ({signed}), head seq {self.chain.head.seq} "
                f"hash {self.chain.head.hash}; store matches the log; "
                f"{self.anchors_checked} anchor(s) hold"
            )
        first = self.first
        assert first is not None
        return f"FAILED at {first.describe()} ({len(self.findings)} finding(s); {signed})"


class AuditChecks(CaseStoreCore):
    """Verification and sealing of the store's audit log."""

    def check_audit(self, anchors: list[Anchor] | None = None) -> AuditFindings:
        """Every check ``audit verify`` runs; the chain first (the rest reads the log)."""
        chain = self.verify_audit()
        result = AuditFindings(chain)
        if not chain.ok:
            return result
        entries = list(self.audit.entries())
        result.findings, result.signatures = check_signatures(
            entries, self.signers, self.settings.auditors
        )
        cases = self.list_cases()
        replayed, rule_findings = replay(
            entries, self.settings, {c.case_id: c.value for c in cases}
        )
        result.findings += rule_findings
        result.findings += compare(replayed, cases, self._approvals_by_case())
        for anchor in anchors or []:
            problem = check_anchor(self.audit, anchor)
            result.anchors_checked += 1
            if problem is not None:
                result.findings.append(Finding(anchor.seq, problem))
        return result

    def _approvals_by_case(self) -> dict[str, list[Approval]]:
        out: dict[str, list[Approval]] = {}
        with self._connect() as conn:
            for r in conn.execute(
                "SELECT case_id, request, step, approver, decision FROM approvals ORDER BY id"
            ):
                out.setdefault(r["case_id"], []).append(
                    (r["request"], r["step"], r["approver"], r["decision"])
                )
        return out

    def seal(self, *, actor: str | None = None, reason: str | None = None) -> int:
        """Sign once over a log written before signing was set up; returns the seal's seq.

        Only an auditor may seal, only a signed store can be sealed, and a log is sealed
        once: its unsigned entries stay readable and hash-chained, and the seal vouches
        for them as they stand.
        """
        if self.signers is None:
            raise CaseError("sealing needs signing: set [engine.cases] allowed_signers first")
        actor = self._actor(actor)
        self._require_role(actor, "auditors", self.settings.auditors, "seal the audit log")
        if any(e.sig is not None for e in self.audit.entries()):
            raise CaseError(f"{self.audit.path} is already signed; it needs no seal")
        with self._change(sealing=True) as (_conn, writer):
            head = writer.head
            entry = writer.append(
                actor=actor,
                action=SEAL_ACTION,
                subject=self.audit.path.name,
                after={"seq": head.seq, "hash": head.hash, "unsigned_entries": head.seq},
                reason=reason or "entries up to here were written before signing",
            )
            return entry.seq
