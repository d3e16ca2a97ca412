"""Gateway events: what the daemon tells the outside world (MQTT, logs, live view).

Every event has a stable ``event_id`` so a consumer can de-duplicate the rare duplicate
delivery after a crash (the outbox publishes at least once). Producers (dedup, portal,
sessions, reader supervision) hand events to an :class:`EventSink`; the durable MQTT
outbox is one sink, tests use a list.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tagsweep.domain import now_us

#: Version of the JSON payload layout; bump on incompatible changes.
SCHEMA_VERSION = 1


class EventKind(enum.StrEnum):
    SIGHTING_OPENED = "sighting_opened"
    SIGHTING_CLOSED = "sighting_closed"
    ARRIVE = "arrive"  # ALE-style: a tag entered a location or portal zone
    DEPART = "depart"
    PORTAL_PASS = "portal_pass"  # payload has "direction": "in" | "out"
    READER_STATE = "reader_state"
    LOCATION_CONTEXT = "location_context"
    SCAN = "scan"  # a barcode scan of an asset (tag, serial or GIAI), not a location label
    SESSION_STARTED = "session_started"
    SESSION_STOPPED = "session_stopped"
    SESSION_CLOSED = "session_closed"  # session file written


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    kind: EventKind
    payload: Mapping[str, Any]
    ts_us: int = field(default_factory=now_us)
    event_id: str = ""

    def __post_init__(self) -> None:
        if not self.event_id:
            object.__setattr__(
                self, "event_id", stable_event_id(self.kind, self.payload, self.ts_us)
            )

    def to_json(self, *, gateway: str, site: str) -> str:
        """The MQTT payload: schema version, ids, kind, time and the event's own fields."""
        body = {
            "schema": SCHEMA_VERSION,
            "event_id": self.event_id,
            "kind": self.kind.value,
            "ts_us": self.ts_us,
            "gateway": gateway,
            "site": site,
            **self.payload,
        }
        return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str)


def stable_event_id(kind: str, payload: Mapping[str, Any], ts_us: int) -> str:
    """Content-derived id: the same event produced again (e.g. replayed) keeps its id."""
    blob = json.dumps([kind, ts_us, payload], sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=12).hexdigest()


class EventSink(Protocol):
    """Something that accepts gateway events (the MQTT outbox, a test list, ...)."""

    async def emit(self, events: Sequence[GatewayEvent]) -> None: ...


class EventFanout:
    """Hands every batch of events to each sink, in order; a failing sink is logged,
    counted through ``on_failure`` and skipped, never stopping the others or the caller."""

    def __init__(
        self,
        sinks: Sequence[EventSink] = (),
        *,
        log: Any,
        on_failure: Callable[[], None] = lambda: None,
    ) -> None:
        self.sinks: list[EventSink] = list(sinks)
        self._log = log
        self._on_failure = on_failure

    def add(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    async def emit(self, events: Sequence[GatewayEvent]) -> None:
        if not events:
            return
        for sink in list(self.sinks):
            try:
                await sink.emit(events)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._on_failure()
                self._log.exception("sink_failed", sink=type(sink).__name__, error=repr(exc))
