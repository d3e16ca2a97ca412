"""Attach the gateway's integrations: Prometheus metrics, MQTT, systemd notify.

(The engine's run files are ``engine/outputs.py``; these are the services a running
gateway talks to.) Why one function: ``tagsweep run`` and tests build the same gateway,
and the integrations only use the gateway's public hook points (sinks, services, ready and timing
callbacks, the devices, the store's connection), so the supervisor stays unaware of
Prometheus, MQTT and systemd.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tagsweep.daemon.events import GatewayEvent
from tagsweep.daemon.metrics import GatewayMetrics, MetricsServer
from tagsweep.daemon.mqtt.outbox import Outbox
from tagsweep.daemon.mqtt.publisher import MqttPublisher
from tagsweep.daemon.notify import SystemdNotifier, run_watchdog
from tagsweep.logs import get_logger

if TYPE_CHECKING:
    from tagsweep.daemon.supervisor import Gateway


class MqttIntegration:
    """The MQTT sink and publisher service of one gateway.

    The outbox table lives in the gateway's DuckDB file, which only exists once the
    gateway runs; it is opened on first use (the first event or the publisher's start,
    whichever comes first) and closed when the publisher ends.
    """

    def __init__(self, gateway: Gateway, metrics: GatewayMetrics | None) -> None:
        self.gateway = gateway
        self.metrics = metrics
        self.outbox: Outbox | None = None
        self.publisher: MqttPublisher | None = None
        self._stop_requested = False

    def _ensure(self) -> Outbox:
        if self.outbox is None:
            store = self.gateway.store
            if store is None:
                raise RuntimeError("the gateway's store is not open yet")
            cfg = self.gateway.config
            self.outbox = Outbox.from_config(
                store.connection,
                cfg.mqtt,
                site=cfg.gateway.site,
                gateway=cfg.gateway.id,
                metrics=self.metrics,
            )
            if self.metrics is not None:
                self.metrics.watch_outbox(self.outbox)
        return self.outbox

    async def emit(self, events: Sequence[GatewayEvent]) -> None:
        await self._ensure().emit(events)

    async def run(self) -> None:
        outbox = self._ensure()
        cfg = self.gateway.config
        self.publisher = MqttPublisher(
            outbox, cfg.mqtt, site=cfg.gateway.site, gateway=cfg.gateway.id, metrics=self.metrics
        )
        if self._stop_requested:
            self.publisher.stop()
        try:
            await self.publisher.run()
        finally:
            outbox.close()

    def stop(self) -> None:
        self._stop_requested = True
        if self.publisher is not None:
            self.publisher.stop()


class Integrations:
    """What :func:`attach_integrations` wired, for tests and diagnostics."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        server: MetricsServer | None,
        mqtt: MqttIntegration | None,
        notifier: SystemdNotifier,
    ) -> None:
        self.metrics = metrics
        self.server = server
        self.mqtt = mqtt
        self.notifier = notifier
        self.watchdog_stop = asyncio.Event()


def attach_integrations(gateway: Gateway, environ: Mapping[str, str] | None = None) -> Integrations:
    """Register metrics, MQTT and sd_notify on ``gateway`` (before it runs)."""
    cfg = gateway.config
    log = get_logger("integrations", gateway=cfg.gateway.id)
    metrics = GatewayMetrics(gateway=cfg.gateway.id, site=cfg.gateway.site)
    notifier = SystemdNotifier(environ)
    for device in gateway.devices:
        metrics.watch_reader(device.driver)
    metrics.reads_outside_session = gateway.counters.reads_outside_session
    gateway.add_sink(metrics)

    def timing(what: str, seconds: float) -> None:
        if what == "dedup":
            metrics.dedup_batch_duration.observe(seconds)
        elif what == "store_write":
            metrics.store_write_duration.observe(seconds)

    gateway.on_timing(timing)

    def store_health(problem: str | None, write_errors: int) -> None:
        changed = problem != metrics.store_problem
        metrics.store_problem = problem
        metrics.store_write_errors = write_errors
        if changed and notifier.enabled:
            notifier.status(metrics.status_line())

    gateway.on_store_health(store_health)

    server = None
    if cfg.metrics.enabled:
        server = MetricsServer(metrics.registry, cfg.metrics.listen)
        gateway.add_service("metrics-server", server.serve_forever, stop=server.stop)

    mqtt = None
    if cfg.mqtt.enabled:
        mqtt = MqttIntegration(gateway, metrics)
        gateway.add_sink(mqtt)
        gateway.add_service("mqtt-publisher", mqtt.run, stop=mqtt.stop)
        log.info(
            "mqtt_enabled",
            broker=f"{cfg.mqtt.host}:{cfg.mqtt.port}",
            username=cfg.mqtt.username,
            tls=cfg.mqtt.tls is not None,
        )

    integrations = Integrations(metrics, server, mqtt, notifier)
    if notifier.enabled:

        def ready() -> None:
            notifier.ready(f"{len(gateway.devices)} devices configured; {metrics.status_line()}")

        gateway.on_ready(ready)
        gateway.add_service(
            "sd-watchdog",
            lambda: run_watchdog(
                notifier, status=metrics.status_line, stop=integrations.watchdog_stop
            ),
            stop=integrations.watchdog_stop.set,
        )
    return integrations
