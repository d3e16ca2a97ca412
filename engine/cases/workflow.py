"""Working a case: assign an owner, add notes, attach evidence, resolve it (with register
corrections), mark it a false positive, or request a write-off (see :mod:`.write_off`)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from datetime import UTC
from pathlib import Path
from typing import Any

from tagsweep.domain import VarianceType
from tagsweep.engine.cases.model import (
    CORRECTABLE_FIELDS,
    FOUND_FIELD_BY_TYPE,
    Case,
    CaseError,
    CaseStatus,
    working_status,
)
from tagsweep.engine.cases.write_off import WriteOffChain
from tagsweep.hashing import sha256_file


class Workflow(WriteOffChain):
    """The investigator's commands on one case."""

    def assign(
        self, case_id: str, owner: str, *, actor: str | None = None, reason: str | None = None
    ) -> Case:
        """Give the case an owner; an open case moves to investigation."""
        actor = self._actor(actor)
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
                changes["status"] = str(working_status(case))
            return self._set(
                conn, writer, case, changes, actor=actor, action="case.assign", reason=reason
            )

    def note(self, case_id: str, text: str, *, actor: str | None = None) -> Case:
        actor = self._actor(actor)
        if not text.strip():
            raise CaseError("a note needs text")
        with self._change() as (conn, writer):
            case = self._get(conn, case_id)
            conn.execute(
                "INSERT INTO notes (case_id, ts, actor, text) VALUES (?, ?, ?, ?)",
                (case_id, self._now(), actor, text),
            )
            writer.append(actor=actor, action="case.note", subject=case_id, after={"note": text})
            return case

    def attach(
        self, case_id: str, ref: str, *, actor: str | None = None, note: str | None = None
    ) -> dict[str, Any]:
        """Attach a file (hashed, and copied into the store by its hash) or a URL."""
        actor = self._actor(actor)
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

    def resolve(
        self,
        case_id: str,
        outcome: str,
        *,
        actor: str | None = None,
        reason: str,
        corrections: Mapping[str, str] | None = None,
        accept_found: bool = False,
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
        actor = self._actor(actor)
        day = self.clock().astimezone(UTC).date()  # the time the request entry is signed
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
                        self._now(),
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
                    "closed_at": self._now(),
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
