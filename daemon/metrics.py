"""Prometheus metrics of the gateway, served over HTTP from the event loop.

Why a private registry and an asyncio server instead of ``start_http_server``: the
daemon owns everything it runs under one TaskGroup (no stray threads), tests can run
several gateways in one process, and a scrape that stops answering is itself a sign of
a stuck loop. The server binds to ``127.0.0.1:9464`` unless the configuration says
otherwise; exposing it is a deliberate decision (a reverse proxy or a firewall rule).

Per-reader counters are read from the drivers' own :class:`DriverCounters` at scrape
time, so the read path pays nothing for metrics. Names follow the Prometheus
conventions: base units in the name (``_seconds``), ``_total`` on counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from tagsweep import __version__
from tagsweep.daemon.events import EventKind, GatewayEvent
from tagsweep.drivers.base import DriverCounters, DriverState
from tagsweep.logs import get_logger

#: Seconds; dedup batches and store writes are millisecond work, anything near a
#: second means the gateway is falling behind.
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Seconds from entering the outbox to the broker's PUBACK; minutes during an outage.
_PUBLISH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0)


class ObservedReader(Protocol):
    """What the metrics need from a reader or scanner driver (a ``Driver`` fits)."""

    name: str
    counters: DriverCounters
    last_event_us: int | None

    @property
    def state(self) -> DriverState: ...


class ObservedOutbox(Protocol):
    """What the metrics need from the MQTT outbox."""

    depth: int

    def oldest_age_s(self) -> float: ...


@dataclass(slots=True)
class SessionInfo:
    session_id: str
    site: str
    location: str
    operator: str
    started_s: float


class GatewayMetrics:
    """Every metric of one gateway, in its own registry."""

    def __init__(
        self,
        *,
        gateway: str,
        site: str,
        registry: CollectorRegistry | None = None,
        process: bool = True,
    ) -> None:
        self.gateway = gateway
        self.site = site
        self.registry = registry or CollectorRegistry()
        self.readers: dict[str, ObservedReader] = {}
        self.outbox: ObservedOutbox | None = None
        #: reads the open session will not contain, by reason (the gateway's counter)
        self.reads_outside_session: Mapping[str, int] = {}
        self.session: SessionInfo | None = None
        self.sessions_closed = 0
        r = self.registry
        self.sightings = Counter(
            "tagsweep_reader_sightings",
            "Sightings (deduplicated runs of reads of one EPC on one antenna) opened.",
            ["reader"],
            registry=r,
        )
        self.dedup_batch_duration = Histogram(
            "tagsweep_dedup_batch_duration_seconds",
            "Time to deduplicate one batch of reads into sightings.",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.store_write_duration = Histogram(
            "tagsweep_store_write_duration_seconds",
            "Time to commit one batch of sightings to the DuckDB store.",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.events = Counter(
            "tagsweep_events",
            "Gateway events produced, by kind (what MQTT subscribers receive).",
            ["kind"],
            registry=r,
        )
        self.mqtt_published = Counter(
            "tagsweep_mqtt_published_events",
            "Events the broker acknowledged (PUBACK).",
            registry=r,
        )
        self.mqtt_publish_latency = Histogram(
            "tagsweep_mqtt_publish_latency_seconds",
            "Time from an event entering the outbox to the broker's acknowledgement.",
            buckets=_PUBLISH_BUCKETS,
            registry=r,
        )
        self.mqtt_outbox_dropped = Counter(
            "tagsweep_mqtt_outbox_dropped_events",
            "Unsent events dropped to keep the outbox bounded (max_rows or retention).",
            ["reason"],
            registry=r,
        )
        self.mqtt_connected = Gauge(
            "tagsweep_mqtt_connected", "1 while connected to the MQTT broker.", registry=r
        )
        self.mqtt_reconnects = Counter(
            "tagsweep_mqtt_reconnects",
            "Broker connections lost or refused (each followed by a backoff).",
            registry=r,
        )
        r.register(_GatewayCollector(self))
        if process:
            ProcessCollector(registry=r)
        self._rate_mark: tuple[float, int] | None = None
        #: why the store cannot keep writes (deleted, replaced), and failed writes so far
        self.store_problem: str | None = None
        self.store_write_errors = 0

    # -- what the supervisor registers ----------------------------------------------------
    def watch_reader(self, reader: ObservedReader) -> None:
        """Export a driver's counters and state (read at scrape time)."""
        self.readers[reader.name] = reader
        self.sightings.labels(reader=reader.name)  # present at 0 from the start

    def watch_outbox(self, outbox: ObservedOutbox) -> None:
        self.outbox = outbox

    def session_started(
        self, session_id: str, *, site: str, location: str, operator: str, started_s: float
    ) -> None:
        self.session = SessionInfo(session_id, site, location, operator, started_s)

    def session_location(self, location: str) -> None:
        if self.session is not None:
            self.session.location = location

    def session_stopped(self) -> None:
        if self.session is not None:
            self.sessions_closed += 1
        self.session = None

    # -- the event sink -------------------------------------------------------------------
    async def emit(self, events: Sequence[GatewayEvent]) -> None:
        """An EventSink: counts events and follows sessions and sightings from them."""
        for event in events:
            self.observe_event(event)

    def observe_event(self, event: GatewayEvent) -> None:
        kind = event.kind
        payload: Mapping[str, Any] = event.payload
        self.events.labels(kind=kind.value).inc()
        if kind is EventKind.SIGHTING_OPENED:
            self.sightings.labels(reader=str(payload.get("reader", "unknown"))).inc()
        elif kind is EventKind.SESSION_STARTED:
            self.session_started(
                str(payload.get("session_id", payload.get("session", ""))),
                site=str(payload.get("site", self.site)),
                location=str(payload.get("location", "")),
                operator=str(payload.get("operator", "")),
                started_s=event.ts_us / 1e6,
            )
        elif kind is EventKind.LOCATION_CONTEXT:
            self.session_location(str(payload.get("location", "")))
        elif kind in (EventKind.SESSION_STOPPED, EventKind.SESSION_CLOSED):
            self.session_stopped()

    # -- STATUS= for systemd --------------------------------------------------------------
    def status_line(self) -> str:
        """``1234 reads/s; hh1 inventorying, door down; outbox 0`` (for ``systemctl status``)."""
        total = sum(r.counters.reads for r in self.readers.values())
        now = time.monotonic()
        rate = 0.0
        if self._rate_mark is not None and now > self._rate_mark[0]:
            rate = max(0, total - self._rate_mark[1]) / (now - self._rate_mark[0])
        self._rate_mark = (now, total)
        readers = ", ".join(f"{name} {r.state.value}" for name, r in sorted(self.readers.items()))
        parts = [f"{rate:.0f} reads/s", readers or "no readers"]
        if self.store_problem:
            parts.insert(0, f"STORE FAILING: {self.store_problem}")
        if self.outbox is not None:
            parts.append(f"outbox {self.outbox.depth}")
        if self.session is not None:
            parts.append(f"session {self.session.session_id} at {self.session.location}")
        return "; ".join(parts)


class _GatewayCollector(Collector):
    """Metrics computed at scrape time from the objects the gateway already keeps."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterable[Metric]:
        m = self.m
        info = GaugeMetricFamily(
            "tagsweep_gateway_info",
            "The gateway's identity.",
            labels=["gateway", "site", "version"],
        )
        info.add_metric([m.gateway, m.site, __version__], 1)
        yield info
        store_ok = GaugeMetricFamily(
            "tagsweep_store_ok",
            "1 while the store commits, 0 while it cannot: its file was deleted or "
            "replaced (writes are refused), or the last write failed.",
        )
        store_ok.add_metric([], 0 if m.store_problem else 1)
        yield store_ok
        write_errors = CounterMetricFamily(
            "tagsweep_store_write_errors", "Store commits that failed (each is retried)."
        )
        write_errors.add_metric([], m.store_write_errors)
        yield write_errors

        reads = CounterMetricFamily(
            "tagsweep_reader_reads", "Tag reports (RFID) or scans (barcode).", labels=["reader"]
        )
        batches = CounterMetricFamily(
            "tagsweep_reader_batches", "Report batches delivered.", labels=["reader"]
        )
        reconnects = CounterMetricFamily(
            "tagsweep_reader_reconnects", "Connections lost and retried.", labels=["reader"]
        )
        decode_errors = CounterMetricFamily(
            "tagsweep_reader_decode_errors",
            "Frames or lines that could not be decoded.",
            labels=["reader"],
        )
        skipped = CounterMetricFamily(
            "tagsweep_reader_skipped_parameters",
            "Vendor parameters in tag reports that were skipped (unused, not faults).",
            labels=["reader"],
        )
        clock_offset = GaugeMetricFamily(
            "tagsweep_reader_clock_offset_seconds",
            "Seconds added to the reader's own UTC stamps because its clock is off "
            "(0 when it is right; per connection).",
            labels=["reader"],
        )
        faults = CounterMetricFamily(
            "tagsweep_reader_faults",
            "Supervision faults (missed keepalives, dead reader thread, ...).",
            labels=["reader", "fault"],
        )
        state = GaugeMetricFamily(
            "tagsweep_reader_state",
            "1 for the reader's current state, 0 for the others.",
            labels=["reader", "state"],
        )
        last = GaugeMetricFamily(
            "tagsweep_reader_last_event_timestamp_seconds",
            "When the reader last delivered anything (Unix time).",
            labels=["reader"],
        )
        for name, reader in sorted(m.readers.items()):
            c = reader.counters
            reads.add_metric([name], c.reads)
            batches.add_metric([name], c.batches)
            reconnects.add_metric([name], c.reconnects)
            decode_errors.add_metric([name], c.decode_errors)
            skipped.add_metric([name], c.skipped_parameters)
            if c.clock_offset_s is not None:
                clock_offset.add_metric([name], c.clock_offset_s)
            for fault, count in sorted(c.faults.items()):
                faults.add_metric([name, fault], count)
            current = reader.state
            for s in DriverState:
                state.add_metric([name, s.value], 1 if s is current else 0)
            if reader.last_event_us is not None:
                last.add_metric([name], reader.last_event_us / 1e6)
        yield from (reads, batches, reconnects, decode_errors, skipped, clock_offset)
        yield from (faults, state, last)

        outside = CounterMetricFamily(
            "tagsweep_reads_outside_session",
            "Reads not counted into the open session, by reason (no_session, "
            "stamped_before_session, stamped_in_future).",
            labels=["reason"],
        )
        for reason, count in sorted(m.reads_outside_session.items()):
            outside.add_metric([reason], count)
        yield outside

        if m.outbox is not None:
            yield GaugeMetricFamily(
                "tagsweep_mqtt_outbox_events",
                "Events in the outbox not yet acknowledged by the broker.",
                value=m.outbox.depth,
            )
            yield GaugeMetricFamily(
                "tagsweep_mqtt_outbox_oldest_age_seconds",
                "Age of the oldest unacknowledged event (0 when the outbox is empty).",
                value=m.outbox.oldest_age_s(),
            )

        session = m.session
        yield GaugeMetricFamily(
            "tagsweep_session_open", "1 while a count session is open.", value=int(bool(session))
        )
        session_info = GaugeMetricFamily(
            "tagsweep_session_info",
            "The open count session (absent when none is open).",
            labels=["session", "site", "location", "operator"],
        )
        started = GaugeMetricFamily(
            "tagsweep_session_started_timestamp_seconds",
            "When the open count session started (Unix time).",
        )
        if session is not None:
            session_info.add_metric(
                [session.session_id, session.site, session.location, session.operator], 1
            )
            started.add_metric([], session.started_s)
        yield session_info
        yield started
        yield CounterMetricFamily(
            "tagsweep_sessions_closed",
            "Count sessions stopped since the daemon started.",
            value=m.sessions_closed,
        )


def split_listen(listen: str) -> tuple[str, int]:
    """``127.0.0.1:9464`` / ``[::1]:9464`` → (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class MetricsServer:
    """A minimal HTTP/1.1 server for ``GET /metrics`` on the daemon's event loop."""

    max_request_bytes = 16384
    request_timeout_s = 10.0

    def __init__(self, registry: CollectorRegistry, listen: str = "127.0.0.1:9464") -> None:
        self.registry = registry
        self.host, self.port = split_listen(listen)
        self.log = get_logger("metrics")
        self._server: asyncio.Server | None = None
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, limit=self.max_request_bytes
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self.log.info("metrics_listening", url=f"http://{self.url_host}:{self.port}/metrics")

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def serve_forever(self, retry_s: float = 30.0) -> None:
        """Run as a supervisor task: serve until :meth:`stop` (or cancellation).

        An address that cannot be bound (in use, not local) is logged and retried: the
        gateway keeps reading without its metrics rather than not at all.
        """
        while not self._stopped.is_set():
            try:
                await self.start()
            except OSError as exc:
                self.log.warning(
                    "metrics_listen_failed",
                    listen=f"{self.url_host}:{self.port}",
                    error=str(exc),
                    retry_in_s=retry_s,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), timeout=retry_s)
                continue
            try:
                await self._stopped.wait()
            finally:
                await self.close()

    def stop(self) -> None:
        self._stopped.set()

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.request_timeout_s):
                head = await reader.readuntil(b"\r\n\r\n")
            status, headers, body = self._respond(head)
            response = _http_response(status, headers, body)
            if head.startswith(b"HEAD "):
                response = response[: len(response) - len(body)]
            writer.write(response)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.write(_http_response("400 Bad Request", {}, b"bad request\n"))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _respond(self, head: bytes) -> tuple[str, dict[str, str], bytes]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return "400 Bad Request", {}, b"bad request\n"
        method, target, _ = parts
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", {"Allow": "GET, HEAD"}, b"method not allowed\n"
        if path == "/metrics":
            encoder, content_type = choose_encoder(headers.get("accept", ""))
            body = encoder(self.registry)
            return "200 OK", {"Content-Type": content_type}, body
        if path == "/":
            return (
                "200 OK",
                {"Content-Type": "text/html; charset=utf-8"},
                b'<html><body><a href="/metrics">metrics</a></body></html>\n',
            )
        return "404 Not Found", {}, b"not found\n"


def _http_response(status: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if not any(k.lower() == "content-type" for k in headers):
        lines.append("Content-Type: text/plain; charset=utf-8")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
