"""The audit log: an append-only, hash-chained record of every change to cases and register.

Why a JSON-lines file and not a table: auditors must be able to read, copy and verify it
with nothing but a text editor and sha256, and an append-only file has no UPDATE or
DELETE to misuse. Each entry carries the sha256 of the previous entry (``prev``) and its
own hash over every other field, so editing, deleting or reordering any entry breaks the
chain at that entry. Truncating the tail leaves a valid chain, which is why callers keep
the head (``seq``, ``hash``) elsewhere (the case store does) and pass it to
:meth:`AuditLog.verify`.

Writers serialise on an exclusive ``flock`` of a sidecar lock file, so concurrent
``tagsweep`` processes never interleave or fork the chain; the same lock is what the case
store holds around each change, so the store and the log move together.

Signed entries carry ``sig``: an SSH signature (SSHSIG, namespace ``tagsweep-audit``) by
the actor's key over :func:`signed_message` — the entry's canonical JSON without ``sig``
and ``hash``. ``hash`` covers ``sig`` too, so the chain commits to who signed. Entries
written before signing was set up have no ``sig``; once a signed entry is in the log,
unsigned ones are refused (see :mod:`tagsweep.engine.audit_signed` for the checks).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Final

from tagsweep.engine.sshsig import Signer

GENESIS_HASH: Final = "0" * 64

#: Fields of an entry, in the order they are written.
ENTRY_FIELDS: Final = (
    "seq",
    "ts",
    "actor",
    "action",
    "subject",
    "before",
    "after",
    "reason",
    "evidence_sha256",
    "prev",
    "hash",
)
#: Fields of a signed entry: ``sig`` before ``hash``, which covers it.
SIGNED_ENTRY_FIELDS: Final = (*ENTRY_FIELDS[:-1], "sig", "hash")
#: How far an entry's time may fall behind the latest time before it: machines' clocks
#: differ a little, but a signer must not backdate past the entries already written.
MAX_CLOCK_SKEW: Final = timedelta(minutes=5)
#: The SSHSIG namespace of audit entries (``ssh-keygen -Y verify -n tagsweep-audit``).
AUDIT_NAMESPACE: Final = "tagsweep-audit"


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class AuditLogError(Exception):
    """The audit log cannot be appended to as it is (damaged or tampered)."""


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(fields: dict[str, Any]) -> str:
    """sha256 over every field except ``hash`` itself, in canonical JSON."""
    return hashlib.sha256(_canonical({k: v for k, v in fields.items() if k != "hash"})).hexdigest()


def signed_message(fields: dict[str, Any]) -> bytes:
    """What an entry's signature covers: canonical JSON of every field but sig and hash."""
    return _canonical({k: v for k, v in fields.items() if k not in ("sig", "hash")})


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change: who did what to which subject, the state before and after, and why."""

    seq: int
    ts: str
    actor: str
    action: str
    subject: str
    before: Any
    after: Any
    reason: str | None
    evidence_sha256: str | None
    prev: str
    hash: str
    sig: str | None = None

    def as_dict(self) -> dict[str, Any]:
        names = ENTRY_FIELDS if self.sig is None else SIGNED_ENTRY_FIELDS
        return {name: getattr(self, name) for name in names}

    @property
    def when(self) -> datetime:
        return datetime.fromisoformat(self.ts)


@dataclass(frozen=True, slots=True)
class Head:
    """The last entry of a log: what a truncation check compares against."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Outcome of :meth:`AuditLog.verify`. ``first_bad_line`` is 1-based."""

    ok: bool
    entries: int
    head: Head
    first_bad_line: int | None = None
    first_bad_seq: int | None = None
    problem: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"OK {self.entries} entries, head seq {self.head.seq} hash {self.head.hash}"
        where = f"line {self.first_bad_line}" if self.first_bad_line else "end of log"
        seq = f" (entry seq {self.first_bad_seq})" if self.first_bad_seq is not None else ""
        return f"TAMPERED at {where}{seq}: {self.problem}"


def _parse_line(raw: bytes) -> dict[str, Any]:
    """Decode one stored line; ValueError says what is wrong with it."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a JSON object ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    expected = set(SIGNED_ENTRY_FIELDS if "sig" in data else ENTRY_FIELDS)
    if set(data) != expected:
        missing = sorted(expected - set(data))
        extra = sorted(set(data) - expected)
        raise ValueError(f"fields differ from an audit entry (missing {missing}, extra {extra})")
    if not isinstance(data["seq"], int) or not isinstance(data["hash"], str):
        raise ValueError("seq must be an integer and hash a string")
    if "sig" in data and not isinstance(data["sig"], str):
        raise ValueError("sig must be a string (an armoured SSH signature)")
    return data


def _check_entry(raw: bytes, seq: int, prev: str) -> tuple[str | None, int | None]:
    """What is wrong with stored line ``raw`` following entry ``seq`` with hash ``prev``."""
    if not raw.endswith(b"\n"):
        return "the line is incomplete (torn write or truncation)", None
    try:
        data = _parse_line(raw)
    except ValueError as exc:
        return str(exc), None
    if data["seq"] != seq + 1:
        return (
            f"sequence number {data['seq']} where {seq + 1} was expected "
            "(entries deleted, inserted or reordered)",
            data["seq"],
        )
    if data["prev"] != prev:
        return (
            "prev hash does not match the entry before it (entries deleted, inserted or reordered)",
            data["seq"],
        )
    if entry_hash(data) != data["hash"]:
        return "content does not match its hash (entry edited)", data["seq"]
    return None, None


class AuditWriter:
    """Appends entries while the caller holds the log's lock (see :meth:`AuditLog.writing`).

    Lines are written as they come and made durable (fsync) once when the writing block
    ends, so importing a run with thousands of variances costs one disk flush, not one
    per case.
    """

    def __init__(
        self,
        out: BinaryIO,
        head: Head,
        *,
        signer: Signer | None = None,
        sealed: bool = False,
        clock: Clock | None = None,
        last_time: datetime | None = None,
    ) -> None:
        self._out = out
        self.head = head
        self._signer = signer
        self._sealed = sealed
        self._clock = clock or utc_now
        self._last_time = last_time

    @property
    def signed(self) -> bool:
        """Whether the log holds a signed entry (from then on every entry is signed)."""
        return self._sealed

    def now(self) -> datetime:
        """The time the next entry will carry (and its signature vouch for)."""
        return self._clock()

    def append(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        before: Any = None,
        after: Any = None,
        reason: str | None = None,
        evidence_sha256: str | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        if not actor.strip():
            raise ValueError("an audit entry needs an actor (who made the change)")
        if self._signer is None and self._sealed:
            raise AuditLogError(
                f"the audit log is signed up to seq {self.head.seq}; an unsigned entry would "
                "break it. Set [engine.cases] allowed_signers and sign with your SSH key "
                "(ssh-agent, or --key / TAGSWEEP_SIGNING_KEY)"
            )
        when = at or self._clock()
        if self._last_time is not None and when < self._last_time - MAX_CLOCK_SKEW:
            raise AuditLogError(
                f"this machine's clock ({when.isoformat()}) is behind the last audit entry "
                f"({self._last_time.isoformat()}) by more than {MAX_CLOCK_SKEW}; correct the "
                "clock (NTP): entry times are signed and must not go back"
            )
        self._last_time = max(when, self._last_time or when)
        fields: dict[str, Any] = {
            "seq": self.head.seq + 1,
            "ts": when.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "subject": subject,
            "before": before,
            "after": after,
            "reason": reason,
            "evidence_sha256": evidence_sha256,
            "prev": self.head.hash,
        }
        names: tuple[str, ...] = ENTRY_FIELDS
        if self._signer is not None:
            fields["sig"] = self._signer.sign(signed_message(fields), AUDIT_NAMESPACE)
            names = SIGNED_ENTRY_FIELDS
            self._sealed = True
        fields["hash"] = entry_hash(fields)
        line = json.dumps({k: fields[k] for k in names}, ensure_ascii=False) + "\n"
        self._out.write(line.encode())
        self.head = Head(fields["seq"], fields["hash"])
        return AuditEntry(**fields)


class AuditLog:
    """A hash-chained JSON-lines audit log at ``path`` (lock file: ``path`` + ``.lock``)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock across processes; blocks until the other writer is done."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    @contextmanager
    def writing(
        self, *, signer: Signer | None = None, clock: Clock | None = None
    ) -> Iterator[AuditWriter]:
        """Lock the log, check its last entry is intact, and hand out a writer that signs
        with ``signer`` (unsigned entries are refused once the log holds a signed one)."""
        with self.locked():
            head, sealed, last = self._checked_tail()
            with self.path.open("ab") as out:
                try:
                    yield AuditWriter(
                        out, head, signer=signer, sealed=sealed, clock=clock, last_time=last
                    )
                finally:
                    out.flush()
                    os.fsync(out.fileno())

    def append(self, **fields: Any) -> AuditEntry:
        """Append one entry under the lock (see :meth:`AuditWriter.append` for fields)."""
        with self.writing() as writer:
            return writer.append(**fields)

    def _checked_head(self) -> Head:
        return self._checked_tail()[0]

    def _checked_tail(self) -> tuple[Head, bool, datetime | None]:
        """Head of the log, whether its last entry is signed and its time, refusing to
        extend a damaged tail (a torn or edited last line)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return Head(0, GENESIS_HASH), False, None
        last = self._last_line()
        try:
            data = _parse_line(last)
        except ValueError as exc:
            raise AuditLogError(
                f"{self.path}: the last entry is damaged ({exc}); run `tagsweep audit verify` "
                "and restore the log from a copy before making further changes"
            ) from None
        if entry_hash(data) != data["hash"]:
            raise AuditLogError(
                f"{self.path}: the last entry (seq {data['seq']}) does not match its hash; "
                "run `tagsweep audit verify` and restore the log from a copy"
            )
        try:
            when: datetime | None = datetime.fromisoformat(str(data["ts"]))
        except ValueError:
            when = None
        return Head(data["seq"], data["hash"]), "sig" in data, when

    def _last_line(self) -> bytes:
        with self.path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            end = log.tell()
            log.seek(end - 1)
            if log.read(1) != b"\n":
                return b"<torn write: no line end>"
            pos, chunk = end - 1, b""  # chunk: bytes before the final line end
            while pos > 0:
                step = min(4096, pos)
                pos -= step
                log.seek(pos)
                chunk = log.read(step) + chunk
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    return chunk[cut + 1 :]
            return chunk

    def head(self) -> Head:
        with self.locked():
            return self._checked_head()

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry as stored (no chain check: use :meth:`verify` for that)."""
        if not self.path.exists():
            return
        with self.path.open("rb") as log:
            for number, raw in enumerate(log, start=1):
                try:
                    yield AuditEntry(**_parse_line(raw))
                except ValueError as exc:
                    raise AuditLogError(f"{self.path}:{number}: {exc}") from None

    def verify(self, expected_head: Head | None = None) -> VerifyReport:
        """Recompute the chain from the first entry; report the first entry that breaks it.

        ``expected_head`` is the head recorded elsewhere at the last change; a log that
        ends before it has lost its tail.
        """
        prev, seq, count = GENESIS_HASH, 0, 0
        hash_at_expected: str | None = None
        if self.path.exists():
            with self.path.open("rb") as log:
                for number, raw in enumerate(log, start=1):
                    problem, at_seq = _check_entry(raw, seq, prev)
                    if problem is not None:
                        return VerifyReport(False, count, Head(seq, prev), number, at_seq, problem)
                    data = json.loads(raw)
                    prev, seq, count = data["hash"], data["seq"], count + 1
                    if expected_head is not None and seq == expected_head.seq:
                        hash_at_expected = prev
        head = Head(seq, prev)
        if expected_head is not None and expected_head.seq > 0:
            if seq < expected_head.seq:
                return VerifyReport(
                    False,
                    count,
                    head,
                    None,
                    seq + 1,
                    f"the log ends at seq {seq} but entries up to seq {expected_head.seq} "
                    "were recorded (entries deleted from the end)",
                )
            if hash_at_expected != expected_head.hash:
                return VerifyReport(
                    False,
                    count,
                    head,
                    None,
                    expected_head.seq,
                    f"entry seq {expected_head.seq} differs from the head recorded at the "
                    "time (the log was rewritten from there on)",
                )
        return VerifyReport(True, count, head)
