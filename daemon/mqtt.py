"""MQTT output: a durable outbox in DuckDB and a publisher that drains it with QoS 1.

Why an outbox: a broker outage must never lose an event and never slow down reading.
Every gateway event is first committed to the ``mqtt_outbox`` table (in the daemon's
own DuckDB file, next to the sightings), and only then published. A row is marked sent
only after the broker's PUBACK, so a crash or a dropped connection at worst re-publishes
a few events — with the same ``event_id``, so consumers can de-duplicate. The publisher
always drains in ``seq`` order, so after an outage the backlog arrives in the order the
events happened.

The outbox is bounded: when the broker stays away longer than the retention, or the
backlog exceeds ``outbox_max_rows``, the oldest unsent events are dropped, counted in
``tagsweep_mqtt_outbox_dropped_events_total`` and logged as a warning — a full disk
would stop the whole gateway, a dropped live event only stops the live view.

Topic layout: ``<prefix>/<site>/<gateway>/<kind>`` (``kind`` is an
:class:`~tagsweep.daemon.events.EventKind` value), and a retained
``<prefix>/<site>/<gateway>/status`` that the broker turns to ``offline`` (last will)
when the gateway disappears.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiomqtt
import duckdb
import pyarrow as pa

from tagsweep import __version__
from tagsweep.config.schema import MqttSection
from tagsweep.daemon.events import SCHEMA_VERSION, GatewayEvent
from tagsweep.domain import now_us
from tagsweep.drivers.base import Backoff
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


def event_topic(prefix: str, site: str, gateway: str, kind: str) -> str:
    """``tagsweep/DC1/gw-01/sighting_opened``: one subtree per gateway, one leaf per kind."""
    return f"{prefix}/{site}/{gateway}/{kind}"


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
        future = asyncio.ensure_future(asyncio.to_thread(self._serialized, fn, *args))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await future
            raise

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


class _ConnectionLostError(Exception):
    """The broker connection went away while publishing."""


def tls_context(mqtt: MqttSection) -> ssl.SSLContext | None:
    """An SSL context from ``[mqtt.tls]``: private CA, optional client certificate."""
    if mqtt.tls is None:
        return None
    ca = str(mqtt.tls.ca_file) if mqtt.tls.ca_file else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if mqtt.tls.cert_file is not None and mqtt.tls.key_file is not None:
        context.load_cert_chain(str(mqtt.tls.cert_file), str(mqtt.tls.key_file))
    if mqtt.tls.insecure:
        context.check_hostname = False  # the certificate chain is still verified
    return context


class MqttPublisher:
    """Drains the outbox to the broker with QoS 1, reconnecting with jittered backoff.

    Run :meth:`run` as a named task of the supervisor; :meth:`stop` (or cancellation)
    ends it. One connection at a time; the backlog is published in ``seq`` order, and
    the retained status topic says ``online`` while connected.
    """

    #: Unacknowledged publishes at a time. paho and aiomqtt do per-message work that
    #: grows with the window, so beyond a few dozen throughput falls (measured on
    #: loopback: 20-30 in flight ≈ 6-8k events/s, 500 ≈ 3k/s); a broker far away
    #: wants more (throughput ≤ window / round trip).
    DEFAULT_MAX_INFLIGHT = 32

    def __init__(
        self,
        outbox: Outbox,
        mqtt: MqttSection,
        *,
        site: str,
        gateway: str,
        metrics: GatewayMetrics | None = None,
        backoff: Backoff | None = None,
        batch_size: int = 200,
        max_inflight: int | None = None,
        publish_timeout_s: float = 10.0,
        housekeeping_s: float = 10.0,
    ) -> None:
        self.outbox = outbox
        self.mqtt = mqtt
        self.site = site
        self.gateway = gateway
        self.metrics = metrics
        self.backoff = backoff or Backoff(initial_s=0.5, cap_s=30.0)
        self.batch_size = batch_size
        self.max_inflight = max_inflight or self.DEFAULT_MAX_INFLIGHT
        self.publish_timeout_s = publish_timeout_s
        self.housekeeping_s = housekeeping_s
        self.status_topic = event_topic(mqtt.topic_prefix, site, gateway, "status")
        self.connected = asyncio.Event()
        self.log = get_logger(
            "mqtt", broker=f"{mqtt.host}:{mqtt.port}", username=mqtt.username, tls=bool(mqtt.tls)
        )
        #: The live broker connection, if any (for diagnostics).
        self.current_client: aiomqtt.Client | None = None
        self._stopping = asyncio.Event()
        self._stop_deadline = 0.0
        self._acked: list[int] = []
        self._acks_waiting = asyncio.Event()
        self.ack_coalesce_s = 0.05
        self._growing_warned_at = 0.0

    # -- payloads -------------------------------------------------------------------------
    def status_payload(self, state: str) -> bytes:
        body: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "kind": "status",
            "state": state,
            "gateway": self.gateway,
            "site": self.site,
            "version": __version__,
        }
        if state == "online":
            body["ts_us"] = now_us()
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()

    def _client(self) -> aiomqtt.Client:
        mqtt = self.mqtt
        password = mqtt.password.get_secret_value() if mqtt.password is not None else None
        client = aiomqtt.Client(
            mqtt.host,
            mqtt.port,
            username=mqtt.username,
            password=password,
            identifier=mqtt.client_id or f"tagsweep-{self.site}-{self.gateway}",
            clean_session=True,  # durability is the outbox's job, not the broker session's
            keepalive=mqtt.keepalive_s,
            will=aiomqtt.Will(
                self.status_topic, self.status_payload("offline"), qos=1, retain=mqtt.retain_status
            ),
            max_inflight_messages=self.max_inflight,
            tls_context=tls_context(mqtt),
            tls_insecure=bool(mqtt.tls and mqtt.tls.insecure) or None,
            timeout=self.publish_timeout_s,
        )
        # A whole batch in flight is normal here, not the overload aiomqtt warns about.
        client.pending_calls_threshold = self.max_inflight + 10
        return client

    # -- lifecycle ------------------------------------------------------------------------
    def stop(self, *, drain_timeout_s: float = 5.0) -> None:
        """Ask :meth:`run` to publish what is pending (up to a deadline), then ``offline``."""
        self._stop_deadline = time.monotonic() + drain_timeout_s
        self._stopping.set()
        self.outbox.wake()

    async def run(self) -> None:
        """Publish until stopped; never raises for broker trouble (it reconnects)."""
        attempt = 0
        housekeeping = asyncio.create_task(self._housekeeping(), name="mqtt-outbox-housekeeping")
        marker = asyncio.create_task(self._mark_acks(), name="mqtt-outbox-ack-marker")
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                try:
                    await self._session()
                except (aiomqtt.MqttError, _ConnectionLostError, OSError) as exc:
                    self.log.warning("mqtt_disconnected", error=str(exc), attempt=attempt)
                except Exception as exc:  # a bug here must not stop the gateway's reading
                    self.log.exception("mqtt_publisher_failed", error=repr(exc), attempt=attempt)
                finally:
                    self.current_client = None
                    self._set_connected(False)
                    await self._flush_acks()
                if self._stopping.is_set():
                    break
                if time.monotonic() - started > 10.0:
                    attempt = 0  # the connection had been up: start backing off afresh
                if self.metrics is not None:
                    self.metrics.mqtt_reconnects.inc()
                delay = self.backoff.delay(attempt)
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        finally:
            await self._cancel(housekeeping, marker)
            await self._flush_acks()

    def _set_connected(self, up: bool) -> None:
        if up:
            self.connected.set()
        else:
            self.connected.clear()
        if self.metrics is not None:
            self.metrics.mqtt_connected.set(1 if up else 0)

    async def _session(self) -> None:
        client = self._client()
        async with client:
            self.current_client = client
            self._set_connected(True)
            self.log.info("mqtt_connected", backlog=self.outbox.depth)
            await client.publish(
                self.status_topic,
                self.status_payload("online"),
                qos=1,
                retain=self.mqtt.retain_status,
            )
            watch = asyncio.create_task(self._watch(client), name="mqtt-connection-watch")
            drain = asyncio.create_task(self._drain(client), name="mqtt-drain")
            try:
                done, _ = await asyncio.wait({watch, drain}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                # Shutdown by cancellation: still tell subscribers we are going away,
                # because a clean DISCONNECT suppresses the last will.
                await self._cancel(watch, drain)
                await self._publish_offline(client)
                raise
            await self._cancel(watch, drain)
            for task in done:
                exc = task.exception()
                while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
                    exc = exc.exceptions[0]  # name the real cause in the log
                if exc is not None:
                    raise _ConnectionLostError(f"{type(exc).__name__}: {exc}") from exc
            await self._flush_acks()
            await self._publish_offline(client)

    @staticmethod
    async def _cancel(*tasks: asyncio.Task[None]) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _publish_offline(self, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            await asyncio.wait_for(
                client.publish(
                    self.status_topic,
                    self.status_payload("offline"),
                    qos=1,
                    retain=self.mqtt.retain_status,
                ),
                timeout=2.0,
            )

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        """Raise as soon as the connection drops (pending PUBACK waits never would)."""
        async for _ in client.messages:
            pass

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish outbox rows in seq order, pipelined: up to ``max_inflight`` unacked.

        Waiting for a batch's PUBACKs before sending the next would add a broker round
        trip to every event's latency; paho sends in call order, so pipelining keeps the
        order. A failed publish fails the group, which ends the connection.
        """
        after = 0
        window = asyncio.Semaphore(self.max_inflight)
        async with asyncio.TaskGroup() as inflight:
            while True:
                if self._stopping.is_set():
                    # Orderly shutdown: the last events (session stopped, ...) still go
                    # out, within a deadline; the rest stays in the outbox for next time.
                    if time.monotonic() > self._stop_deadline:
                        return
                    rows = await self.outbox.fetch(after=after, limit=self.batch_size)
                    if not rows:
                        return
                else:
                    rows = await self.outbox.wait_batch(after=after, limit=self.batch_size)
                    if not rows:
                        continue
                for row in rows:
                    await window.acquire()
                    inflight.create_task(self._publish(client, row, window))
                after = rows[-1].seq
                self._warn_if_growing()

    async def _publish(
        self, client: aiomqtt.Client, row: OutboxRow, window: asyncio.Semaphore
    ) -> None:
        try:
            await client.publish(row.topic, row.payload.encode(), qos=1)
        finally:
            window.release()
        self._acked.append(row.seq)
        self._acks_waiting.set()
        if self.metrics is not None:
            self.metrics.mqtt_published.inc()
            self.metrics.mqtt_publish_latency.observe((now_us() - row.created_us) / 1e6)

    async def _flush_acks(self) -> None:
        acked, self._acked = self._acked, []
        try:
            await self.outbox.mark_sent(acked)
        except BaseException:
            self._acked[:0] = acked  # marking is idempotent: retry rather than forget
            raise

    async def _mark_acks(self) -> None:
        """Record PUBACKs in the outbox off the publish path, a coalesced batch at a time.

        Marking is bookkeeping (what to re-send after a crash), so it must not delay the
        next publish; an ack not yet marked at a crash only means one duplicate delivery.
        """
        while True:
            await self._acks_waiting.wait()
            await asyncio.sleep(self.ack_coalesce_s)
            self._acks_waiting.clear()
            await self._flush_acks()

    def _warn_if_growing(self) -> None:
        age = self.outbox.oldest_age_s()
        now = time.monotonic()
        if age > 60.0 and now - self._growing_warned_at > 60.0:
            self._growing_warned_at = now
            self.log.warning("outbox_behind", events=self.outbox.depth, oldest_age_s=age)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(self.housekeeping_s)
            try:
                await self.outbox.housekeeping()
            except duckdb.Error as exc:
                self.log.exception("outbox_housekeeping_failed", error=str(exc))
            if not self.connected.is_set() and self.outbox.depth:
                now = time.monotonic()
                if now - self._growing_warned_at > 60.0:
                    self._growing_warned_at = now
                    self.log.warning(
                        "outbox_growing_broker_unreachable",
                        events=self.outbox.depth,
                        oldest_age_s=round(self.outbox.oldest_age_s(), 1),
                        max_rows=self.outbox.max_rows,
                    )
