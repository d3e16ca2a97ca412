"""Anchors: the audit chain's head kept outside the case store, to catch a rewritten log.

Whoever can write the case store folder can rewrite the whole log with fresh hashes (and,
holding keys, fresh signatures) and record the new head in ``cases.sqlite``. A head
copied elsewhere at the time — in each run's ``manifest.json`` and report, in a file the
user keeps, in a retained MQTT message — pins what the log held: ``tagsweep audit verify
--anchor …`` checks the log still has that exact entry at that position.

An anchor file is JSON: ``{"log": …, "seq": N, "hash": "…", "anchored_at": "…"}``. A
run's ``manifest.json`` carries one under ``audit_anchor``; a run folder stands for its
manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tagsweep.engine.audit import AuditLog, Head


class AnchorError(Exception):
    """An anchor that cannot be read or published; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Anchor:
    seq: int
    hash: str
    source: str

    def as_dict(self, log: Path | None = None) -> dict[str, Any]:
        return {
            "log": None if log is None else str(log),
            "seq": self.seq,
            "hash": self.hash,
            "anchored_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }


def anchor_record(log: Path) -> dict[str, Any] | None:
    """The head of the audit log at ``log`` as a manifest records it (None: no log yet)."""
    if not log.is_file():
        return None
    head = AuditLog(log).head()
    return Anchor(head.seq, head.hash, str(log)).as_dict(log)


def load_anchor(path: Path) -> Anchor:
    """An anchor file, a run's ``manifest.json``, or a run folder."""
    if path.is_dir():
        path = path / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AnchorError(f"cannot read anchor {path}: {exc}") from None
    if isinstance(data, dict) and "audit_anchor" in data:
        data = data["audit_anchor"]
        if data is None:
            raise AnchorError(f"{path}: the run recorded no audit head (no case store then)")
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("seq"), int)
        or not isinstance(data.get("hash"), str)
    ):
        raise AnchorError(f"{path}: not an audit anchor (needs integer seq and string hash)")
    return Anchor(data["seq"], data["hash"], str(path))


def check_anchor(log: AuditLog, anchor: Anchor) -> str | None:
    """Why the log no longer holds the anchored head, or None if it does."""
    if anchor.seq == 0:
        return None
    for entry in log.entries():
        if entry.seq == anchor.seq:
            if entry.hash == anchor.hash:
                return None
            return (
                f"entry seq {anchor.seq} is not the one anchored in {anchor.source} "
                f"(hash {entry.hash[:16]}…, anchored {anchor.hash[:16]}…): the log was "
                "rewritten from there on or before"
            )
    return (
        f"the log has no entry seq {anchor.seq}, anchored in {anchor.source}: entries were removed"
    )


def write_anchor(head: Head, log: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    anchor = Anchor(head.seq, head.hash, str(log))
    out.write_text(json.dumps(anchor.as_dict(log), indent=2) + "\n", encoding="utf-8")
    return out


def publish_mqtt(head: Head, log: Path, url: str, *, timeout: float = 10.0) -> str:
    """Publish the head as a retained message: ``mqtt://host[:port]/topic``."""
    from paho.mqtt import publish

    parts = urlsplit(url)
    topic = parts.path.lstrip("/")
    if parts.scheme != "mqtt" or not parts.hostname or not topic:
        raise AnchorError(f"--publish {url!r}: expected mqtt://HOST[:PORT]/TOPIC")
    payload = json.dumps(Anchor(head.seq, head.hash, str(log)).as_dict(log))
    try:
        publish.single(
            topic,
            payload,
            qos=1,
            retain=True,
            hostname=parts.hostname,
            port=parts.port or 1883,
            keepalive=int(timeout),
        )
    except OSError as exc:
        raise AnchorError(f"cannot publish to {url}: {exc}") from None
    return topic
