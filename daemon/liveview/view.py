"""The daemon-wide live view: the live counts of its sessions and its sources' health.

:class:`LiveView` is what the web server and the CLI read: the
:class:`~tagsweep.daemon.liveview.count.LiveCount` of every open (and recently closed)
session plus the health of every reader and scanner (:class:`SourceHealth`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tagsweep.daemon.liveview.count import LiveCount
from tagsweep.domain import now_us


class UnknownSessionError(KeyError):
    """No live count for this session id (never started, or started without a scope)."""

    def __init__(self, session_id: str, known: Sequence[str]) -> None:
        super().__init__(session_id)
        self.session_id = session_id
        self.known = tuple(known)

    def __str__(self) -> str:
        known = ", ".join(self.known) or "none"
        return f"unknown count session {self.session_id!r} (live sessions: {known})"


@dataclass(slots=True)
class SourceHealth:
    """Health of one reader or scanner as the live page shows it."""

    name: str
    kind: str  # "reader" | "scanner"
    state: str = "unknown"  # connecting | inventorying | degraded | down | connected ...
    detail: str = ""
    reads_total: int = 0
    last_read_us: int | None = None
    _window_start: float = field(default_factory=time.monotonic)
    _window_reads: int = 0
    reads_per_s: float = 0.0

    def count(self, n: int, now: float) -> None:
        """Count ``n`` reads; the rate is the last completed one-second window."""
        self.reads_total += n
        self._window_reads += n
        elapsed = now - self._window_start
        if elapsed >= 1.0:
            self.reads_per_s = self._window_reads / elapsed
            self._window_reads = 0
            self._window_start = now

    def to_json(self, now: float) -> dict[str, Any]:
        # a quiet source has a rate of zero, not the last busy second's
        idle = now - self._window_start
        rate = self.reads_per_s if idle < 2.0 else self._window_reads / max(idle, 1e-9)
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "detail": self.detail,
            "reads_total": self.reads_total,
            "reads_per_s": round(rate, 1),
            "last_read_us": self.last_read_us,
        }


class LiveView:
    """The live counts of the daemon's sessions and the health of its readers.

    One instance lives in the daemon; producers (session handling, dedup flush, reader
    supervision) write to it on the event loop, the web server and the control socket
    read from it. ``version`` changes whenever anything a page shows changes, so a
    reader can poll it cheaply instead of being woken on every read.
    """

    def __init__(self) -> None:
        self._counts: dict[str, LiveCount] = {}
        self._health: dict[str, SourceHealth] = {}
        self._health_version = 0
        #: Called before health is read, so a producer that counts reads elsewhere (the
        #: gateway's counters) can bring reads/s up to date even when nothing else moved.
        self.refresh_health: Callable[[], None] | None = None

    #: Closed sessions kept for review after they stop (the oldest go first).
    KEEP_CLOSED: Final = 5

    # sessions
    def add(self, count: LiveCount) -> LiveCount:
        self._counts[count.session_id] = count
        closed = [c.session_id for c in self._counts.values() if c.closed]
        for session_id in closed[: max(0, len(closed) - self.KEEP_CLOSED)]:
            del self._counts[session_id]
        self._health_version += 1
        return count

    def get(self, session_id: str) -> LiveCount:
        try:
            return self._counts[session_id]
        except KeyError:
            raise UnknownSessionError(session_id, list(self._counts)) from None

    def remove(self, session_id: str) -> None:
        self._counts.pop(session_id, None)
        self._health_version += 1

    def sessions(self) -> list[LiveCount]:
        return list(self._counts.values())

    def open_sessions(self) -> list[LiveCount]:
        return [c for c in self._counts.values() if not c.closed]

    # readers and scanners
    def set_source_state(self, name: str, kind: str, state: str, detail: str = "") -> None:
        health = self._health.setdefault(name, SourceHealth(name=name, kind=kind))
        if (health.state, health.detail) != (state, detail):
            health.state, health.detail = state, detail
            self._health_version += 1

    def count_reads(self, name: str, n: int, kind: str = "reader") -> None:
        """Reads (or scans) that arrived from ``name``: feeds reads/s on the page."""
        health = self._health.get(name)
        if health is None:
            health = self._health[name] = SourceHealth(name=name, kind=kind, state="connected")
        health.count(n, time.monotonic())
        health.last_read_us = now_us()

    def health(self) -> list[dict[str, Any]]:
        if self.refresh_health is not None:
            self.refresh_health()
        now = time.monotonic()
        return [h.to_json(now) for _, h in sorted(self._health.items())]

    @property
    def health_version(self) -> int:
        return self._health_version

    def summaries(self) -> list[dict[str, Any]]:
        return [
            {
                "session_id": c.session_id,
                "site": c.site,
                "operator": c.operator,
                "scope": list(c.scope),
                "closed": c.closed,
                "location_context": c.location_context,
                "totals": c.totals(),
            }
            for c in self._counts.values()
        ]
