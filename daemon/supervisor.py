"""The gateway: one asyncio TaskGroup of named tasks, and the in-process API around it.

Tasks (names as they appear in logs and task dumps):

* ``reader:<name>`` / ``scanner:<name>`` — one per configured device
  (:mod:`tagsweep.daemon.devices`: supervision, restarts with backoff);
* ``dedup-flush`` and ``store-writer`` — the read pipeline
  (:mod:`tagsweep.daemon.read_pipeline`: flush, dedup, store writer);
* ``control-socket`` — the Unix socket the CLI talks to (:mod:`tagsweep.daemon.control`);
* services added by other parts of the daemon with :meth:`Gateway.add_service`
  (MQTT publisher, metrics server, sd_notify watchdog, live view).

Count sessions are :mod:`tagsweep.daemon.session_api`; ``status`` is
:mod:`tagsweep.daemon.status`. This module wires them together and runs them.

SIGTERM (or :meth:`Gateway.request_stop`) is an orderly shutdown: readers are closed,
the control socket stops, dedup state is flushed (open sightings close at their last
read), the store commits, services stop, and :meth:`Gateway.run` returns normally.

Hook points for outputs (they never need to reach inside):

* :meth:`Gateway.add_sink` — an :class:`~tagsweep.daemon.events.EventSink` receives
  every :class:`~tagsweep.daemon.events.GatewayEvent` (fan-out, in order, per flush);
  a failing sink is logged and never stops the gateway;
* :meth:`Gateway.add_service` — a named long-running coroutine under the TaskGroup,
  with an optional ``stop`` callback called before the gateway's shutdown waits for it;
* :meth:`Gateway.on_start` — called with the gateway once the store is open, before the
  tasks start (build the MQTT outbox on ``store.connection`` here, then ``add_sink`` and
  ``add_service`` it);
* :meth:`Gateway.on_ready` — called once readers are configured and the control socket
  listens (``READY=1``);
* :meth:`Gateway.on_store_health` — the store file deleted or replaced, or a write
  failed (``problem``, ``write_errors``);
* :meth:`Gateway.on_timing` — ``("dedup", seconds)`` per dedup flush and
  ``("store_write", seconds)`` per commit (histograms);
* :attr:`Gateway.devices` — the drivers (counters, state) for metrics;
  :attr:`Gateway.store` — the DuckDB store, whose ``connection`` the MQTT outbox uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from tagsweep import __version__
from tagsweep.config.schema import TagsweepConfig
from tagsweep.daemon.devices import Device, build_devices, supervise_device
from tagsweep.daemon.events import EventFanout, EventSink, GatewayEvent
from tagsweep.daemon.read_pipeline import ReadPipeline, StoreHealthListener, TimingListener
from tagsweep.daemon.session_api import SessionAPI
from tagsweep.daemon.sessions import ClosedSession, SessionError
from tagsweep.daemon.status import GatewayCounters, gateway_status
from tagsweep.daemon.store import Store
from tagsweep.domain import CountSession, now_us
from tagsweep.drivers import Backoff
from tagsweep.logs import get_logger

if TYPE_CHECKING:
    from tagsweep.daemon.liveview.feed import LiveFeed

__all__ = ["Device", "Gateway", "GatewayCounters"]


@dataclass(slots=True)
class Service:
    name: str
    run: Callable[[], Coroutine[Any, Any, None]]
    stop: Callable[[], Any] | None = None


class Gateway:
    """The gateway daemon, usable in-process (tests, demo, live view) or via ``tagsweep run``."""

    def __init__(
        self,
        config: TagsweepConfig,
        *,
        sinks: Sequence[EventSink] = (),
        control_socket: bool = True,
        restart_backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self.log = get_logger("gateway", gateway=config.gateway.id)
        self.counters = GatewayCounters()
        self.restart_backoff = restart_backoff or Backoff(initial_s=0.5, cap_s=30.0)
        self.control_socket = control_socket
        self._fanout = EventFanout(sinks, log=self.log, on_failure=self._count_sink_error)
        self._services: list[Service] = []
        self._ready_callbacks: list[Callable[[], Any]] = []
        self._start_callbacks: list[Callable[[Gateway], Any]] = []
        self.pipeline: ReadPipeline  # set below, once the devices exist
        self.devices: list[Device] = build_devices(config, self._on_state)
        self.pipeline = ReadPipeline(
            config, self.devices, counters=self.counters, fanout=self._fanout, log=self.log
        )
        self.sessions_api = SessionAPI(self)
        self.store: Store | None = None
        self.ready = asyncio.Event()
        self.started_us = now_us()
        self._stop = asyncio.Event()
        self._running = False
        self._started = False  # tasks are running: no more services
        self._hook_tasks: set[asyncio.Future[Any]] = set()
        self.live: LiveFeed | None = None  # set by livefeed.attach_live_view

    def _on_state(self, *args: Any) -> None:
        self.pipeline.on_state(*args)

    def _count_sink_error(self) -> None:
        self.counters.sink_errors += 1

    # -- hook points ---------------------------------------------------------------------
    def add_sink(self, sink: EventSink) -> None:
        """Receive every gateway event (MQTT outbox, metrics, live view, tests)."""
        self._fanout.add(sink)

    def add_service(
        self,
        name: str,
        run: Callable[[], Coroutine[Any, Any, None]],
        *,
        stop: Callable[[], Any] | None = None,
    ) -> None:
        """Run ``run()`` as the named task ``name`` under the gateway's TaskGroup.

        At shutdown ``stop()`` is called (if given) after the store has committed, then
        the task gets a few seconds to end before it is cancelled.
        """
        if self._started:
            raise RuntimeError("add services before the gateway runs (or from on_start)")
        self._services.append(Service(name, run, stop))

    def on_start(self, callback: Callable[[Gateway], Any]) -> None:
        """Call ``callback(gateway)`` once the store is open and recovered, before any
        task starts: the place to build what needs :attr:`store` (the MQTT outbox on
        ``store.connection``) and register it with :meth:`add_sink`/:meth:`add_service`.
        A coroutine result is awaited; an exception stops the start (it is a setup error).
        """
        self._start_callbacks.append(callback)

    def on_ready(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` once readers are configured and the control socket listens."""
        self._ready_callbacks.append(callback)

    def on_timing(self, listener: TimingListener) -> None:
        self.pipeline.on_timing(listener)

    def on_store_health(self, listener: StoreHealthListener) -> None:
        """``listener(problem, write_errors)`` when the store is lost or back, and after
        each failed write (metrics, sd_notify STATUS)."""
        self.pipeline.on_store_health(listener)

    # -- running -------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Begin an orderly shutdown (what SIGTERM does)."""
        self._stop.set()

    async def __aenter__(self) -> Gateway:
        self._task = asyncio.create_task(self.run(), name="gateway")
        ready = asyncio.create_task(self.ready.wait())
        done, _ = await asyncio.wait({self._task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            ready.cancel()
            await self._task  # raises what stopped it
            raise RuntimeError("the gateway stopped while starting")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.request_stop()
        await self._task

    async def run(self) -> None:
        """Run until :meth:`request_stop`; returns after an orderly shutdown."""
        cfg = self.config
        self._running = True
        names = [d.name for d in self.devices]
        self.store = store = await asyncio.to_thread(
            Store,
            cfg.store.path,
            reader_names=names,
            keep_raw_reads=cfg.store.keep_raw_reads,
            raw_read_retention_s=cfg.store.raw_read_retention_hours * 3600,
        )
        try:
            recovery = await store.call(store.recover)
            self.pipeline.attach(store, next_sighting_id=recovery.next_sighting_id)
            await self.sessions_api.recover()
            for start in self._start_callbacks:
                result = start(self)
                if asyncio.iscoroutine(result):
                    await result
            control = None
            if self.control_socket:
                from tagsweep.daemon.control import ControlServer

                control = ControlServer(self, cfg.control.socket, cfg.control.mode)
                await control.start()
            try:
                await self._supervise(control)
            finally:
                if control is not None:
                    await control.close()
        finally:
            await asyncio.to_thread(store.close)
            self._running = False
            self.log.info("gateway_stopped")

    async def _supervise(self, control: Any) -> None:
        self._started = True
        pipeline = self.pipeline
        async with asyncio.TaskGroup() as tg:
            device_tasks = [
                tg.create_task(
                    supervise_device(
                        d,
                        stop=self._stop,
                        backoff=self.restart_backoff,
                        on_reads=pipeline.on_reads,
                        on_scan=self.sessions_api.on_scan,
                        log=self.log,
                    ),
                    name=d.task_name,
                )
                for d in self.devices
            ]
            flush = tg.create_task(pipeline.flush_loop(), name="dedup-flush")
            writer = tg.create_task(pipeline.store_writer(), name="store-writer")
            if control is not None:
                tg.create_task(control.serve(), name="control-socket")
            services = [tg.create_task(s.run(), name=s.name) for s in self._services]
            self.ready.set()
            self.log.info(
                "gateway_ready",
                readers=[d.name for d in self.devices],
                socket=str(self.config.control.socket) if control else None,
                version=__version__,
            )
            for callback in self._ready_callbacks:
                self._guard("ready_callback", callback)
            await self._stop.wait()
            self.log.info("gateway_stopping")
            # 1. readers: no new reads
            for d in self.devices:
                await d.driver.close()
            await _finish(device_tasks, grace_s=5.0)
            if control is not None:
                await control.close()
            # 2. dedup: everything open closes at its last read, then the store commits
            flush.cancel()
            await _finish([flush], grace_s=5.0)
            await pipeline.flush(final=True)
            await pipeline.finish()
            await _finish([writer], grace_s=30.0)
            # 3. services (MQTT drains what it can, metrics stops serving)
            for s in self._services:
                if s.stop is not None:
                    self._guard(f"stop:{s.name}", s.stop)
            await _finish(services, grace_s=5.0)

    def _guard(self, what: str, fn: Callable[[], Any]) -> None:
        try:
            result = fn()
            if asyncio.iscoroutine(result):
                task = asyncio.ensure_future(result)
                self._hook_tasks.add(task)
                task.add_done_callback(self._hook_tasks.discard)
        except Exception as exc:  # a hook must never stop the gateway
            self.log.exception("hook_failed", hook=what, error=repr(exc))

    def running_store(self) -> Store:
        """The store, or SessionError when the gateway is not running."""
        if self.store is None or not self._running:
            raise SessionError("the gateway is not running")
        return self.store

    # -- the in-process API ------------------------------------------------------------------
    async def emit(self, events: Sequence[GatewayEvent]) -> None:
        """Fan events out to every sink, in order; a failing sink is logged and skipped."""
        await self._fanout.emit(events)

    async def sync(self) -> None:
        """Flush dedup now and wait until the store has committed the result."""
        await self.pipeline.sync()

    def open_sightings(self) -> tuple[np.ndarray, np.ndarray]:
        """The sightings open at the last flush (rows, ids), a copy safe to read any time."""
        return self.pipeline.open_sightings()

    @property
    def session(self) -> CountSession | None:
        """The open count session, if any."""
        return self.sessions_api.session

    async def start_session(
        self,
        *,
        operator: str,
        site: str | None = None,
        location: str | None = None,
        scope: Sequence[str] = (),
        expected: str | None = None,
    ) -> CountSession:
        """Open a count session; its location context starts at ``location``.

        ``expected``: a register file (engine run or golden register) whose assets in
        the scope the live view compares the count against while it runs.
        """
        return await self.sessions_api.start(
            operator=operator, site=site, location=location, scope=scope, expected=expected
        )

    async def observations(self) -> pa.Table:
        """What the open session's file would hold if it stopped now (live views)."""
        return await self.sessions_api.observations()

    async def set_location(
        self, location: str, *, source: str = "operator", ts_us: int | None = None
    ) -> CountSession | None:
        """Change the location context (operator command or scanned label)."""
        return await self.sessions_api.set_location(location, source=source, ts_us=ts_us)

    async def stop_session(self, session_id: str | None = None) -> ClosedSession:
        """Stop the open session and write its session file (Parquet + manifest)."""
        return await self.sessions_api.stop(session_id)

    async def sessions(self, session_id: str | None = None) -> list[dict[str, Any]]:
        return await self.sessions_api.rows(session_id)

    def status(self) -> dict[str, Any]:
        """A JSON-able picture of the gateway (``tagsweep status``)."""
        return gateway_status(self)


async def _finish(tasks: Sequence[asyncio.Task[Any]], *, grace_s: float) -> None:
    """Wait for tasks to end by themselves, then cancel what is left."""
    pending = [t for t in tasks if not t.done()]
    if not pending:
        return
    _, still = await asyncio.wait(pending, timeout=grace_s)
    for t in still:
        t.cancel()
    if still:
        await asyncio.wait(still)
