"""The MQTT publisher: drains the outbox to the broker with QoS 1, and reconnects.

One connection at a time (:mod:`~tagsweep.daemon.mqtt.connection`); outbox rows are
published in ``seq`` order, pipelined up to a window of unacknowledged publishes, and
each PUBACK is recorded in the outbox off the publish path. Broker trouble never raises
out of :meth:`MqttPublisher.run`: it backs off (jittered) and reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import aiomqtt
import duckdb

from tagsweep.config.schema import MqttSection
from tagsweep.daemon.mqtt.connection import broker_client
from tagsweep.daemon.mqtt.outbox import Outbox, OutboxRow
from tagsweep.daemon.mqtt.topics import event_topic, status_payload
from tagsweep.domain import now_us
from tagsweep.drivers.base import Backoff
from tagsweep.logs import get_logger

if TYPE_CHECKING:
    from tagsweep.daemon.metrics import GatewayMetrics


class _ConnectionLostError(Exception):
    """The broker connection went away while publishing."""


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
        client = broker_client(
            self.mqtt,
            site=self.site,
            gateway=self.gateway,
            status_topic=self.status_topic,
            max_inflight=self.max_inflight,
            timeout_s=self.publish_timeout_s,
        )
        async with client:
            self.current_client = client
            self._set_connected(True)
            self.log.info("mqtt_connected", backlog=self.outbox.depth)
            await client.publish(
                self.status_topic,
                status_payload("online", gateway=self.gateway, site=self.site),
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
                    status_payload("offline", gateway=self.gateway, site=self.site),
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
