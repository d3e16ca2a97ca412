"""The MQTT outbox: the durable, ordered, bounded queue of events waiting for the broker.

Every gateway event is first committed to the ``mqtt_outbox`` table (in the daemon's
own DuckDB file, next to the sightings), and only then published; a row is marked sent
only after the broker's PUBACK. When the broker stays away longer than the retention, or
the backlog exceeds ``max_rows``, the oldest unsent events are dropped, counted and
logged (see the package docstring for why).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import pyarrow as pa

from tagsweep.config.schema import MqttSection
from tagsweep.daemon.events import GatewayEvent
from tagsweep.daemon.mqtt.topics import event_topic
from tagsweep.daemon.thread_calls import until_done
from tagsweep.domain import now_us
from tagsweep.logs import get_logger

if TYPE_CHECKING:
    from tagsweep.daemon.metrics import GatewayMetrics

OUTBOX_TABLE = "mqtt_outbox"
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mqtt_outbox (
    seq        BIGINT  NOT NULL,  -- publish order
    event_id   VARCHAR NOT NULL,  -- stable id consumers de-duplicate on
    kind       VARCHAR NOT NULL,
    ts_us      BIGINT  NOT NULL,  -- when the event happened
    created_us BIGINT  NOT NULL,  -- when it entered the outbox
    topic      VARCHAR NOT NULL,
    payload    VARCHAR NOT NULL,  -- the exact JSON that is published
    sent_us    BIGINT             -- PUBACK time; NULL while unsent
)
"""

_ARROW_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("event_id", pa.string()),
        ("kind", pa.string()),
        ("ts_us", pa.int64()),
        ("created_us", pa.int64()),
        ("topic", pa.string()),
        ("payload", pa.string()),
        ("sent_us", pa.int64()),
    ]
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One unsent event as the publisher needs it."""

    seq: int
    topic: str
    payload: str
    created_us: int


@dataclass(slots=True)
class _PendingEmit:
    """One emit's rows, waiting for the group commit that takes them."""

    event_ids: list[str]
    kinds: list[str]
    ts_us: list[int]
    created_us: list[int]
    topics: list[str]
    payloads: list[str]
    done: bool = False
    error: Exception | None = None


class Outbox:
    """The durable, ordered, bounded queue of events waiting for the broker.

    It is an :class:`~tagsweep.daemon.events.EventSink`: ``await emit(events)`` returns
    once the events are committed. All DuckDB work runs in a worker thread (DuckDB
    releases the GIL), serialised by one lock, so neither the read path nor the event
    loop waits on disk I/O.
    """

    def __init__(
        self,
        db: duckdb.DuckDBPyConnection | str | Path,
        *,
        site: str,
        gateway: str,
        topic_prefix: str = "tagsweep",
        max_rows: int = 1_000_000,
        retention_s: float = 7 * 86400.0,
        keep_sent_s: float = 600.0,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        if isinstance(db, duckdb.DuckDBPyConnection):
            # A cursor is a separate connection to the same database: usable from our
            # worker thread without disturbing the store's own use of ``db``.
            self._db = db.cursor()
        else:
            self._db = duckdb.connect(str(db))
        self.site = site
        self.gateway = gateway
        self.topic_prefix = topic_prefix
        self.max_rows = max_rows
        self.retention_s = retention_s
        self.keep_sent_s = keep_sent_s
        self.metrics = metrics
        self.log = get_logger("mqtt.outbox")
        self._lock = asyncio.Lock()
        self._db_lock = threading.Lock()
        self._wake = asyncio.Event()
        self._queued: list[_PendingEmit] = []
        #: Transactions that appended events (fewer than emits when commits group).
        self.commits = 0
        #: Rows just committed, handed to the publisher without reading them back from
        #: the database (the common, caught-up case); bounded, the database is the truth.
        self._recent: deque[OutboxRow] = deque()
        self.recent_max = 20_000
        self._db.execute(_SCHEMA).fetchall()
        row = self._db.execute(
            "SELECT coalesce(max(seq), 0), count(*) FILTER (sent_us IS NULL), "
            "min(created_us) FILTER (sent_us IS NULL) FROM mqtt_outbox"
        ).fetchall()[0]
        self._next_seq: int = int(row[0]) + 1
        #: Unsent events, kept exact in memory so metrics never touch the database.
        self.depth: int = int(row[1])
        #: ``created_us`` of the oldest unsent event, None when the outbox is empty.
        self.oldest_created_us: int | None = None if row[2] is None else int(row[2])
        self._dropped_warned_at = 0.0
        if self.depth:
            self._wake.set()
            self.log.info("outbox_backlog", events=self.depth)

    @classmethod
    def from_config(
        cls,
        db: duckdb.DuckDBPyConnection | str | Path,
        mqtt: MqttSection,
        *,
        site: str,
        gateway: str,
        metrics: GatewayMetrics | None = None,
    ) -> Outbox:
        return cls(
            db,
            site=site,
            gateway=gateway,
            topic_prefix=mqtt.topic_prefix,
            max_rows=mqtt.outbox_max_rows,
            retention_s=mqtt.outbox_retention_days * 86400.0,
            metrics=metrics,
        )

    async def _in_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run DuckDB work in a worker thread, holding the lock until it really ends.

        On cancellation the database call still runs to completion (a thread cannot be
        interrupted); waiting for it keeps the in-memory counters and the lock
        consistent with what was committed.
        """
        return await until_done(
            asyncio.ensure_future(asyncio.to_thread(self._serialized, fn, *args))
        )

    def _serialized(self, fn: Callable[..., _T], *args: Any) -> _T:
        """One database call at a time on this connection, even when a task cancelled
        twice stopped waiting for its call (and released the asyncio lock) early."""
        with self._db_lock:
            return fn(*args)

    # -- the sink -------------------------------------------------------------------------
    async def emit(self, events: Sequence[GatewayEvent]) -> None:
        """Commit events to the outbox (in the given order) and wake the publisher.

        Group commit: emits that arrive while a commit is running are committed together
        by the next one, in arrival order, so a slow disk (an fsync stall) costs one
        extra commit rather than one per waiting emit.
        """
        if not events:
            return
        created = now_us()
        batch = _PendingEmit(
            event_ids=[e.event_id for e in events],
            kinds=[e.kind.value for e in events],
            ts_us=[e.ts_us for e in events],
            created_us=[created] * len(events),
            topics=[
                event_topic(self.topic_prefix, self.site, self.gateway, e.kind.value)
                for e in events
            ],
            payloads=[e.to_json(gateway=self.gateway, site=self.site) for e in events],
        )
        self._queued.append(batch)
        async with self._lock:
            if not batch.done:
                group, self._queued = self._queued, []
                try:
                    await self._in_thread(self._insert, group)
                except Exception as exc:
                    for member in group:
                        member.error = exc
                finally:
                    for member in group:
                        member.done = True
        if batch.error is not None:
            raise batch.error
        self._wake.set()

    def _insert(self, group: list[_PendingEmit]) -> None:
        def column(name: str) -> list[Any]:
            return [value for member in group for value in getattr(member, name)]

        topics, payloads, created = column("topics"), column("payloads"), column("created_us")
        count = len(topics)
        first = self._next_seq
        table = pa.Table.from_arrays(
            [
                pa.array(range(first, first + count), pa.int64()),
                pa.array(column("event_ids"), pa.string()),
                pa.array(column("kinds"), pa.string()),
                pa.array(column("ts_us"), pa.int64()),
                pa.array(created, pa.int64()),
                pa.array(topics, pa.string()),
                pa.array(payloads, pa.string()),
                pa.nulls(count, pa.int64()),
            ],
            schema=_ARROW_SCHEMA,
        )
        self._db.from_arrow(table).insert_into(OUTBOX_TABLE)
        self.commits += 1
        self._next_seq = first + count
        if len(self._recent) + count > self.recent_max:
            self._recent.clear()  # the publisher is far behind: it reads from the database
        else:
            self._recent.extend(
                OutboxRow(first + i, topics[i], payloads[i], created[i]) for i in range(count)
            )
        self.depth += count
        if self.oldest_created_us is None:
            self.oldest_created_us = created[0]
        if self.depth > self.max_rows:
            self._drop_oldest(self.depth - self.max_rows, reason="max_rows")

    # -- the publisher's side -------------------------------------------------------------
    async def fetch(self, *, after: int, limit: int) -> list[OutboxRow]:
        """The next unsent events with ``seq > after``, in order (maybe none)."""
        async with self._lock:
            return await self._in_thread(self._fetch, after, limit)

    async def wait_batch(self, *, after: int, limit: int) -> list[OutboxRow]:
        """Like :meth:`fetch`, but waits for an emit (or :meth:`wake`) when there are none.

        Rows committed since the publisher caught up come straight from memory; after a
        gap (start-up, reconnect, a long outage) they are read from the database.
        """
        self._wake.clear()
        rows = self._take_recent(after, limit)
        if rows is None:
            rows = await self.fetch(after=after, limit=limit)
        if rows:
            return rows
        await self._wake.wait()
        rows = self._take_recent(after, limit)
        return rows if rows is not None else await self.fetch(after=after, limit=limit)

    def _take_recent(self, after: int, limit: int) -> list[OutboxRow] | None:
        """Rows ``after+1 ...`` from memory, or None when memory does not start there."""
        recent = self._recent
        while recent and recent[0].seq <= after:
            recent.popleft()
        if not recent or recent[0].seq != after + 1:
            return None
        return [recent.popleft() for _ in range(min(limit, len(recent)))]

    def _fetch(self, after: int, limit: int) -> list[OutboxRow]:
        result = self._db.execute(
            "SELECT seq, topic, payload, created_us FROM mqtt_outbox "
            "WHERE sent_us IS NULL AND seq > ? ORDER BY seq LIMIT ?",
            [after, limit],
        ).fetchall()
        return [OutboxRow(int(s), str(t), str(p), int(c)) for s, t, p, c in result]

    async def mark_sent(self, seqs: Sequence[int]) -> None:
        """Record the broker's acknowledgement; only now may a row count as delivered."""
        if seqs:
            async with self._lock:
                await self._in_thread(self._mark, list(seqs), now_us())

    def _mark(self, seqs: list[int], sent: int) -> None:
        lo, hi = min(seqs), max(seqs)
        if hi - lo + 1 == len(seqs):  # the usual case: a contiguous run
            row = self._db.execute(
                "UPDATE mqtt_outbox SET sent_us = ? WHERE seq BETWEEN ? AND ? AND sent_us IS NULL",
                [sent, lo, hi],
            ).fetchall()
        else:
            row = self._db.execute(
                "UPDATE mqtt_outbox SET sent_us = ? "
                "WHERE seq IN (SELECT unnest(?::BIGINT[])) AND sent_us IS NULL",
                [sent, seqs],
            ).fetchall()
        self.depth = max(0, self.depth - (int(row[0][0]) if row else 0))
        self._refresh_oldest(since_seq=lo)

    def _refresh_oldest(self, since_seq: int = 0) -> None:
        if not self.depth:
            self.oldest_created_us = None
            return
        # Rows are sent in seq order, so the oldest unsent row is almost always at or
        # after the batch just acknowledged; look there first (zone maps make it cheap).
        for lower in (since_seq, 0):
            head = self._db.execute(
                "SELECT min(created_us) FROM mqtt_outbox WHERE sent_us IS NULL AND seq >= ?",
                [lower],
            ).fetchall()
            if head and head[0][0] is not None:
                self.oldest_created_us = int(head[0][0])
                return
        self.oldest_created_us = None

    # -- bounds ---------------------------------------------------------------------------
    async def housekeeping(self) -> None:
        """Apply retention: drop unsent events older than the retention, forget sent ones."""
        async with self._lock:
            await self._in_thread(self._housekeeping, now_us())

    def _housekeeping(self, now: int) -> None:
        row = self._db.execute(
            "SELECT count(*) FROM mqtt_outbox WHERE sent_us IS NULL AND created_us < ?",
            [now - int(self.retention_s * 1e6)],
        ).fetchall()
        expired = int(row[0][0]) if row else 0
        if expired:
            self._drop_oldest(expired, reason="retention")
        self._db.execute(
            "DELETE FROM mqtt_outbox WHERE sent_us IS NOT NULL AND sent_us < ?",
            [now - int(self.keep_sent_s * 1e6)],
        ).fetchall()

    def _drop_oldest(self, count: int, *, reason: str) -> None:
        """Delete the ``count`` oldest unsent events: the price of a bounded outbox."""
        row = self._db.execute(
            "DELETE FROM mqtt_outbox WHERE seq IN (SELECT seq FROM mqtt_outbox "
            "WHERE sent_us IS NULL ORDER BY seq LIMIT ?)",
            [count],
        ).fetchall()
        dropped = int(row[0][0]) if row else 0
        self.depth = max(0, self.depth - dropped)
        self._refresh_oldest()
        if self.metrics is not None:
            self.metrics.mqtt_outbox_dropped.labels(reason=reason).inc(dropped)
        now = time.monotonic()
        if now - self._dropped_warned_at > 30.0:
            self._dropped_warned_at = now
            self.log.warning(
                "outbox_full_dropping_oldest",
                dropped=dropped,
                reason=reason,
                depth=self.depth,
                max_rows=self.max_rows,
                retention_s=self.retention_s,
            )

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest event ever appended (0 for none)."""
        return self._next_seq - 1

    def oldest_age_s(self) -> float:
        """Age of the oldest unsent event in seconds (0 when the outbox is empty)."""
        if self.oldest_created_us is None:
            return 0.0
        return max(0.0, (now_us() - self.oldest_created_us) / 1e6)

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._db.close()
