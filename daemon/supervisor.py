"""The gateway: one asyncio TaskGroup of named tasks, and the in-process API around it.

Tasks (names as they appear in logs and task dumps):

* ``reader:<name>`` / ``scanner:<name>`` — one per configured device; iterates its
  driver. The driver reconnects by itself with backoff; if the iteration itself fails
  (a driver bug) the task logs it and iterates again after a capped, jittered backoff,
  so one bad reader never takes the others down;
* ``dedup-flush`` — every ``dedup.flush_interval_s``: the reads gathered since the last
  flush go through the dedup kernel (and portal trackers), sightings that ended are
  closed, and the result is queued for the store;
* ``store-writer`` — commits queued flushes, one transaction per drain;
* ``control-socket`` — the Unix socket the CLI talks to;
* services added by other parts of the daemon with :meth:`Gateway.add_service`
  (MQTT publisher, metrics server, sd_notify watchdog, live view).

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
* :meth:`Gateway.on_timing` — ``("dedup", seconds)`` per dedup flush and
  ``("store_write", seconds)`` per commit (histograms);
* :attr:`Gateway.devices` — the drivers (counters, state) for metrics;
  :attr:`Gateway.store` — the DuckDB store, whose ``connection`` the MQTT outbox uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from tagsweep import __version__
from tagsweep.config.schema import ReaderSection, ScannerSection, TagsweepConfig
from tagsweep.daemon.dedup import Deduplicator, DedupResult
from tagsweep.daemon.events import EventKind, EventSink, GatewayEvent
from tagsweep.daemon.portal import PortalTracker
from tagsweep.daemon.sessions import (
    STOPPING,
    ClosedSession,
    ReaderRole,
    SessionError,
    build_observations,
    close_session,
    session_from_row,
    session_to_json,
)
from tagsweep.daemon.store import ScanRecord, Store, WriteBatch
from tagsweep.domain import (
    READ_DTYPE,
    BarcodeScan,
    CountSession,
    Location,
    ScanKind,
    SessionState,
    new_session_id,
    now_us,
)
from tagsweep.drivers import Backoff, Driver, DriverConfigError, DriverState, open_driver
from tagsweep.logs import get_logger

if TYPE_CHECKING:
    from tagsweep.daemon.livefeed import LiveFeed

TimingListener = Callable[[str, float], None]

#: Pending reads above which a flush runs at once instead of waiting for the interval.
EAGER_FLUSH_READS = 500_000
#: Batches at least this large are deduplicated on a worker thread.
THREAD_DEDUP_READS = 50_000
#: How often raw reads older than their retention are deleted (when they are kept).
PRUNE_INTERVAL_S = 60.0


@dataclass(slots=True)
class Device:
    """One configured reader or scanner, with its driver and what it contributes."""

    index: int
    name: str
    kind: str  # "reader" | "scanner"
    driver: Driver
    role: ReaderRole
    restarts: int = 0
    portal: PortalTracker | None = None
    error: str | None = None  # a configuration error that stopped it for good

    @property
    def task_name(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(slots=True)
class Service:
    name: str
    run: Callable[[], Coroutine[Any, Any, None]]
    stop: Callable[[], Any] | None = None


@dataclass(slots=True)
class GatewayCounters:
    """Monotonic counters of the gateway itself (per-device ones live in the drivers)."""

    reads: int = 0
    scans: int = 0
    scans_unrecognised: int = 0
    sightings_opened: int = 0
    sightings_closed: int = 0
    dedup_flushes: int = 0
    store_writes: int = 0
    store_write_errors: int = 0
    sink_errors: int = 0
    sessions_started: int = 0
    sessions_closed: int = 0
    control_errors: int = 0
    by_reader: dict[str, int] = field(default_factory=dict)


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
        self._sinks: list[EventSink] = list(sinks)
        self._services: list[Service] = []
        self._ready_callbacks: list[Callable[[], Any]] = []
        self._start_callbacks: list[Callable[[Gateway], Any]] = []
        self._timing: list[TimingListener] = []
        self.devices: list[Device] = []
        for reader in config.readers:
            self.devices.append(self._make_reader(len(self.devices), reader))
        for scanner in config.scanners:
            self.devices.append(self._make_scanner(len(self.devices), scanner))
        self.dedup = Deduplicator(int(config.dedup.window_s * 1e6))
        self.store: Store | None = None
        self.ready = asyncio.Event()
        self.started_us = now_us()
        self._session: CountSession | None = None
        self._idle_context: Location | None = None
        self._pending_reads: list[np.ndarray] = []
        self._pending_count = 0
        self._pending_events: list[GatewayEvent] = []
        self._pending_status: list[tuple[int, str, str, str]] = []
        n = max(1, len(self.devices))
        self._clock_us = np.zeros(n, dtype=np.int64)  # latest reader timestamp seen
        self._clock_wall_us = np.zeros(n, dtype=np.int64)  # when it was seen
        self._stop = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._session_lock = asyncio.Lock()
        self._queue: asyncio.Queue[WriteBatch | asyncio.Future[None] | None] = asyncio.Queue(
            maxsize=64
        )
        self._write_error: str | None = None
        self._running = False
        self._started = False  # tasks are running: no more services
        self._hook_tasks: set[asyncio.Future[Any]] = set()
        self.live: LiveFeed | None = None  # set by livefeed.attach_live_view

    # -- construction --------------------------------------------------------------------
    def _make_reader(self, index: int, reader: ReaderSection) -> Device:
        options: dict[str, Any] = {
            "keepalive_s": reader.keepalive_s,
            "watchdog_intervals": reader.watchdog_intervals,
        }
        if reader.tx_power_dbm is not None:
            options["tx_power_dbm"] = reader.tx_power_dbm
        driver = open_driver(reader.url, name=reader.name, reader_id=index, options=options)
        location = reader.portal.zone if reader.portal else reader.location
        device = Device(index, reader.name, "reader", driver, ReaderRole(reader.role, location))
        if reader.portal is not None:
            device.portal = PortalTracker.from_config(
                reader.name,
                reader.portal,
                reader=index,
                quiet_s=self.config.dedup.window_s,
            )
        driver.add_state_listener(self._on_state)
        return device

    def _make_scanner(self, index: int, scanner: ScannerSection) -> Device:
        from tagsweep.drivers.barcode import scanner_options

        options = scanner_options(scanner, self.config.locations)
        driver = open_driver(scanner.url, name=scanner.name, reader_id=index, options=options)
        driver.add_state_listener(self._on_state)
        return Device(
            index, scanner.name, "scanner", driver, ReaderRole("scanner", scanner.location)
        )

    # -- hook points ---------------------------------------------------------------------
    def add_sink(self, sink: EventSink) -> None:
        """Receive every gateway event (MQTT outbox, metrics, live view, tests)."""
        self._sinks.append(sink)

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
        self._timing.append(listener)

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
            self.dedup = Deduplicator(
                int(cfg.dedup.window_s * 1e6), next_sighting_id=recovery.next_sighting_id
            )
            await self._recover_sessions()
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
        async with asyncio.TaskGroup() as tg:
            device_tasks = [
                tg.create_task(self._device_task(d), name=d.task_name) for d in self.devices
            ]
            flush = tg.create_task(self._flush_loop(), name="dedup-flush")
            writer = tg.create_task(self._store_writer(), name="store-writer")
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
            await self._flush_once(final=True)
            await self._queue.put(None)
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

    # -- devices -------------------------------------------------------------------------
    def _on_state(self, driver: Driver, old: DriverState, new: DriverState) -> None:
        reason = driver.last_error or ""
        self._pending_status.append((now_us(), driver.name, new.value, reason))
        self._pending_events.append(
            GatewayEvent(
                EventKind.READER_STATE,
                {
                    "reader": driver.name,
                    "state": new.value,
                    "previous": old.value,
                    "reason": reason,
                },
            )
        )

    async def _device_task(self, device: Device) -> None:
        attempt = 0
        log = self.log.bind(reader=device.name)
        while not self._stop.is_set():
            try:
                async for event in device.driver:
                    if isinstance(event, BarcodeScan):
                        await self._on_scan(device, event)
                    else:
                        self._on_reads(device, event)
                    attempt = 0
                if self._stop.is_set() or device.driver.closing:
                    return
                raise RuntimeError("the driver's event stream ended")
            except asyncio.CancelledError:
                raise
            except DriverConfigError as exc:
                device.error = str(exc)
                log.exception("reader_config_error", error=str(exc))
                return  # reconnecting cannot help; the other readers carry on
            except Exception as exc:
                device.restarts += 1
                delay = self.restart_backoff.delay(attempt)
                attempt += 1
                log.exception("reader_task_failed", error=repr(exc), retry_in_s=round(delay, 2))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)

    def _on_reads(self, device: Device, batch: np.ndarray) -> None:
        if batch.dtype != READ_DTYPE or not len(batch):
            return
        batch["reader"] = device.index
        self._pending_reads.append(batch)
        n = len(batch)
        self._pending_count += n
        self.counters.reads += n
        self.counters.by_reader[device.name] = self.counters.by_reader.get(device.name, 0) + n
        latest = int(batch["last_seen_us"].max())
        if latest > self._clock_us[device.index]:
            self._clock_us[device.index] = latest
            self._clock_wall_us[device.index] = now_us()
        if self._pending_count >= EAGER_FLUSH_READS:
            self._flush_now.set()

    def _resolve_label(self, scan: BarcodeScan) -> str:
        value = scan.value or scan.data
        for loc in self.config.locations:
            if value in (loc.label, loc.gln):
                return loc.path
        return value

    async def _on_scan(self, device: Device, scan: BarcodeScan) -> None:
        self.counters.scans += 1
        assert self.store is not None
        if scan.kind is ScanKind.LOCATION:
            path = self._resolve_label(scan)
            try:
                await self.set_location(path, source=f"scan:{device.name}", ts_us=scan.timestamp_us)
            except (SessionError, ValueError) as exc:
                self.log.warning("location_label_rejected", value=path, error=str(exc))
            return
        session = self._session
        context = session.location_context if session else self._idle_context
        if scan.kind not in (ScanKind.ASSET_TAG, ScanKind.SERIAL, ScanKind.GIAI):
            self.counters.scans_unrecognised += 1
        record = ScanRecord(
            ts_us=scan.timestamp_us,
            scanner=device.name,
            kind=scan.kind.value,
            value=scan.value,
            data=scan.data,
            symbology=scan.symbology.value,
            session_id=session.session_id if session else None,
            location=str(context or device.role.location or "") or None,
        )
        await self.store.call(self.store.write, WriteBatch(scans=[record]))
        self._pending_events.append(
            GatewayEvent(
                EventKind.SCAN,
                {
                    "session_id": record.session_id,
                    "scanner": device.name,
                    "kind": record.kind,
                    "value": record.value,
                    "location": record.location,
                },
                ts_us=record.ts_us,
            )
        )

    # -- dedup and the store -------------------------------------------------------------
    def _reader_clocks(self) -> np.ndarray:
        """Each reader's current time: its latest timestamp plus wall time since then."""
        seen = self._clock_wall_us > 0
        return np.where(seen, self._clock_us + (now_us() - self._clock_wall_us), 0)

    async def _flush_loop(self) -> None:
        interval = self.config.dedup.flush_interval_s
        next_prune = time.monotonic() + PRUNE_INTERVAL_S
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), timeout=interval)
            self._flush_now.clear()
            try:
                await self._flush_once()
                if self.config.store.keep_raw_reads and time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_INTERVAL_S
                    assert self.store is not None
                    pruned = await self.store.call(self.store.prune_raw_reads)
                    if pruned:
                        self.log.info("raw_reads_pruned", reads=pruned)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep ingesting; the log says what broke
                self.log.exception("flush_failed", error=repr(exc))

    async def _flush_once(self, *, final: bool = False, close_open: bool = False) -> None:
        """Dedup the pending reads and hand the results to the store writer.

        ``final`` closes everything (shutdown); ``close_open`` closes the open sightings
        but leaves the portal trackers alone — used when the location context changes,
        so a tag read without a break across the change (a neighbour rack, the trigger
        held while walking on) leaves one sighting per context instead of one that
        straddles both and could only be split by time.
        """
        async with self._flush_lock:
            started = time.perf_counter()
            reads = self._pending_reads
            self._pending_reads, self._pending_count = [], 0
            batch = np.concatenate(reads) if reads else np.zeros(0, dtype=READ_DTYPE)
            results: list[DedupResult] = []
            if len(batch) >= THREAD_DEDUP_READS:
                # numpy releases the GIL in the heavy parts: keep the loop responsive.
                results.append(await asyncio.to_thread(self.dedup.process, batch))
            elif len(batch):
                results.append(self.dedup.process(batch))
            results.append(
                self.dedup.flush()
                if final or close_open
                else self.dedup.expire(self._reader_clocks())
            )
            elapsed = time.perf_counter() - started
            events = self._pending_events
            self._pending_events = []
            events += self._portal_events(batch, final=final)
            open_rows, open_ids = self.dedup.open_sightings()
            write = WriteBatch(
                closed=[(r.closed, r.closed_ids) for r in results if len(r.closed)],
                open_snapshot=(open_rows, open_ids),
                reads=[batch] if len(batch) else [],
                reader_status=self._pending_status,
            )
            self._pending_status = []
            self.counters.dedup_flushes += 1
            for r in results:
                self.counters.sightings_opened += len(r.opened_ids)
                self.counters.sightings_closed += len(r.closed)
            if len(batch):
                self._timed("dedup", elapsed)
            await self._queue.put(write)
            if self._sinks:
                events += self._sighting_events(results, open_rows, open_ids)
                await self.emit(events)

    def _portal_events(self, batch: np.ndarray, *, final: bool) -> list[GatewayEvent]:
        events: list[GatewayEvent] = []
        clocks = self._reader_clocks()
        for d in self.devices:
            if d.portal is None:
                continue
            if len(batch):
                events += d.portal.feed(batch)
            events += d.portal.flush() if final else d.portal.advance(int(clocks[d.index]))
        return events

    def _sighting_events(
        self, results: list[DedupResult], open_rows: np.ndarray, open_ids: np.ndarray
    ) -> list[GatewayEvent]:
        names = [d.name for d in self.devices] or ["reader"]
        events: list[GatewayEvent] = []
        opened = np.concatenate([r.opened_ids for r in results])

        def payload(row: np.void, sid: int) -> dict[str, Any]:
            return {
                "sighting_id": int(sid),
                "epc": bytes(row["epc"]).decode("ascii"),
                "reader": names[min(int(row["reader"]), len(names) - 1)],
                "antenna": int(row["antenna"]),
                "first_seen_us": int(row["first_seen_us"]),
                "last_seen_us": int(row["last_seen_us"]),
                "read_count": int(row["read_count"]),
                "peak_rssi": _float(row["peak_rssi"]),
                "mean_rssi": _float(row["mean_rssi"]),
            }

        if opened.size:
            pool_rows = np.concatenate([*(r.closed for r in results), open_rows])
            pool_ids = np.concatenate([*(r.closed_ids for r in results), open_ids])
            for i in np.flatnonzero(np.isin(pool_ids, opened)):
                row = pool_rows[i]
                events.append(
                    GatewayEvent(
                        EventKind.SIGHTING_OPENED,
                        payload(row, pool_ids[i]),
                        ts_us=int(row["first_seen_us"]),
                    )
                )
        for r in results:
            for row, sid in zip(r.closed, r.closed_ids, strict=True):
                events.append(
                    GatewayEvent(
                        EventKind.SIGHTING_CLOSED, payload(row, sid), ts_us=int(row["last_seen_us"])
                    )
                )
        return events

    async def emit(self, events: Sequence[GatewayEvent]) -> None:
        """Fan events out to every sink, in order; a failing sink is logged and skipped."""
        if not events:
            return
        for sink in list(self._sinks):
            try:
                await sink.emit(events)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counters.sink_errors += 1
                self.log.exception("sink_failed", sink=type(sink).__name__, error=repr(exc))

    def _timed(self, what: str, seconds: float) -> None:
        for listener in self._timing:
            try:
                listener(what, seconds)
            except Exception as exc:
                self.log.exception("timing_listener_failed", error=repr(exc))

    async def _store_writer(self) -> None:
        assert self.store is not None
        store = self.store
        pending: WriteBatch | None = None
        while True:
            item = await self._queue.get()
            stop = item is None
            waiters: list[asyncio.Future[None]] = []
            items = [item]
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            for it in items:
                if it is None:
                    stop = True
                elif isinstance(it, WriteBatch):
                    if pending is None:
                        pending = it
                    else:
                        pending.merge(it)
                else:
                    waiters.append(it)
            if pending is not None:
                started = time.perf_counter()
                try:
                    await store.call(store.write, pending)
                    pending = None
                    self._write_error = None
                    self.counters.store_writes += 1
                    self._timed("store_write", time.perf_counter() - started)
                except Exception as exc:  # keep the batch; retry with the next one
                    self.counters.store_write_errors += 1
                    self._write_error = repr(exc)
                    self.log.exception("store_write_failed", error=repr(exc))
                    if stop:
                        break
                    await asyncio.sleep(1.0)
            for w in waiters:
                if not w.done():
                    if self._write_error:
                        w.set_exception(RuntimeError(f"store write failed: {self._write_error}"))
                    else:
                        w.set_result(None)
            if stop:
                return

    async def sync(self) -> None:
        """Flush dedup now and wait until the store has committed the result."""
        await self._flush_once()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(done)
        await done

    # -- count sessions ------------------------------------------------------------------
    @property
    def session(self) -> CountSession | None:
        """The open count session, if any."""
        return self._session

    async def _recover_sessions(self) -> None:
        store = self.store
        assert store is not None
        rows = await store.call(store.session_rows, states=("open", STOPPING))
        open_rows = [r for r in rows if r["state"] == "open"]
        for row in rows:
            if row["state"] == "open" and row is not open_rows[-1]:
                # Only one session is open at a time; an older one was abandoned.
                await store.call(
                    store.set_session_state, row["session_id"], STOPPING, ended_us=now_us()
                )
                row["state"], row["ended_us"] = STOPPING, now_us()
        for row in rows:
            if row["state"] == STOPPING:
                contexts = await store.call(store.contexts, row["session_id"])
                session = session_from_row(row, contexts[-1][1] if contexts else None)
                closed = await store.call(self._close, session)
                self.log.info("session_closed_after_restart", **closed.to_json())
        if open_rows:
            row = open_rows[-1]
            contexts = await store.call(store.contexts, row["session_id"])
            self._session = session_from_row(row, contexts[-1][1] if contexts else None)
            self.log.info("session_resumed", session=row["session_id"])
            if row.get("expected") and self.live is not None:
                await self.live.resume(self._session, str(row["expected"]))

    def _close(self, session: CountSession) -> ClosedSession:
        assert self.store is not None
        roles = {d.name: d.role for d in self.devices if d.kind == "reader"}
        return close_session(
            self.store,
            session,
            roles=roles,
            session_dir=self.config.store.session_dir,
            gateway=self.config.gateway.id,
            window_us=self.dedup.window_us,
            signing_key=self.config.store.signing_key_path,
        )

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
        if not operator or not operator.strip():
            raise SessionError("operator is required (who is counting?)")
        site = (site or self.config.gateway.site).strip()
        if not site:
            raise SessionError("site is required")
        try:
            scope_locs = tuple(Location(p) for p in scope)
            start_loc = Location(location) if location else None
        except ValueError as exc:
            raise SessionError(str(exc)) from None
        if start_loc is not None and not scope_locs:
            scope_locs = (start_loc,)
        for loc in (*scope_locs, *([start_loc] if start_loc else [])):
            if loc.site != site:
                raise SessionError(f"location {loc} is not at site {site}")
        store = self._store()
        if expected:
            if self.live is None:
                raise SessionError("this gateway has no live view to compare --expected with")
            await self.live.prepare(expected)
        async with self._session_lock:
            if self._session is not None:
                raise SessionError(
                    f"count session {self._session.session_id} is already open; "
                    "stop it first (tagsweep session stop)"
                )
            started = now_us()
            session = CountSession(
                session_id=new_session_id(),
                site=site,
                operator=operator.strip(),
                scope=scope_locs,
                started_us=started,
                location_context=start_loc or self._start_context(site, scope_locs),
            )
            await store.call(
                store.insert_session,
                session.session_id,
                site,
                session.operator,
                [str(s) for s in scope_locs],
                started,
                expected=expected or None,
            )
            assert session.location_context is not None
            await store.call(
                store.write,
                WriteBatch(
                    contexts=[(session.session_id, started, str(session.location_context), "start")]
                ),
            )
            self._session = session
            self.counters.sessions_started += 1
        self.log.info("session_started", **session_to_json(session))
        await self.emit(
            [
                GatewayEvent(
                    EventKind.SESSION_STARTED,
                    {
                        "session_id": session.session_id,
                        "site": site,
                        "operator": session.operator,
                        "location": str(session.location_context),
                        "scope": [str(s) for s in scope_locs],
                        **({"expected": expected} if expected else {}),
                    },
                    ts_us=started,
                )
            ]
        )
        return session

    def _start_context(self, site: str, scope: tuple[Location, ...]) -> Location:
        """Without --location: a label scanned just before the start, else the scope."""
        idle = self._idle_context
        if idle is not None and idle.site == site:
            return idle
        return scope[0] if scope else Location(site)

    async def observations(self) -> pa.Table:
        """What the open session's file would hold if it stopped now (live views)."""
        store = self._store()
        session = self._session
        if session is None:
            raise SessionError("no count session is open")
        snapshot = replace(session, ended_us=now_us())
        roles = {d.name: d.role for d in self.devices if d.kind == "reader"}
        window_us = self.dedup.window_us

        def build() -> pa.Table:
            assert snapshot.ended_us is not None
            return build_observations(
                session=snapshot,
                sightings=store.session_sightings(
                    snapshot.started_us, snapshot.ended_us, window_us
                ),
                contexts=store.contexts(snapshot.session_id),
                scans=store.session_scans(snapshot.session_id),
                roles=roles,
            )

        return await store.call(build)

    async def set_location(
        self, location: str, *, source: str = "operator", ts_us: int | None = None
    ) -> CountSession | None:
        """Change the location context (operator command or scanned label)."""
        try:
            loc = Location(location)
        except ValueError as exc:
            raise SessionError(str(exc)) from None
        store = self._store()
        ts = ts_us or now_us()
        async with self._session_lock:
            session = self._session
            if session is None:
                if source == "operator":
                    raise SessionError(
                        "no count session is open; start one with "
                        "`tagsweep session start --operator NAME --location PATH`"
                    )
                self._idle_context = loc  # a label scanned before the session starts
                return None
            if loc.site != session.site:
                raise SessionError(f"location {loc} is not at the session's site {session.site}")
            if loc != session.location_context:
                await self._flush_once(close_open=True)
            await store.call(
                store.write, WriteBatch(contexts=[(session.session_id, ts, loc.path, source)])
            )
            session.location_context = loc
        self.log.info(
            "location_context", session=session.session_id, location=loc.path, source=source
        )
        await self.emit(
            [
                GatewayEvent(
                    EventKind.LOCATION_CONTEXT,
                    {"session_id": session.session_id, "location": loc.path, "source": source},
                    ts_us=ts,
                )
            ]
        )
        return session

    async def stop_session(self, session_id: str | None = None) -> ClosedSession:
        """Stop the open session and write its session file (Parquet + manifest)."""
        store = self._store()
        async with self._session_lock:
            session = self._session
            if session is None:
                raise SessionError("no count session is open; nothing to stop")
            if session_id is not None and session_id != session.session_id:
                raise SessionError(
                    f"unknown session {session_id!r}: the open session is {session.session_id}"
                )
            ended = now_us()
            await store.call(store.set_session_state, session.session_id, STOPPING, ended_us=ended)
            session.ended_us = ended
            await self.emit(
                [
                    GatewayEvent(
                        EventKind.SESSION_STOPPED,
                        {"session_id": session.session_id, "ended_us": ended},
                        ts_us=ended,
                    )
                ]
            )
            await self.sync()  # every sighting up to now is committed before the close
            closed = await store.call(self._close, session)
            session.state = SessionState.CLOSED
            self._session = None
            self.counters.sessions_closed += 1
        self.log.info("session_closed", **closed.to_json())
        await self.emit([GatewayEvent(EventKind.SESSION_CLOSED, closed.to_json())])
        return closed

    async def sessions(self, session_id: str | None = None) -> list[dict[str, Any]]:
        store = self._store()
        rows = await store.call(store.session_rows, session_id=session_id)
        if session_id is not None and not rows:
            raise SessionError(f"unknown session {session_id!r}")
        for row in rows:
            if self._session and row["session_id"] == self._session.session_id:
                ctx = self._session.location_context
                row["location"] = str(ctx) if ctx else None
        return rows

    def _store(self) -> Store:
        if self.store is None or not self._running:
            raise SessionError("the gateway is not running")
        return self.store

    # -- status --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """A JSON-able picture of the gateway (``tagsweep status``)."""
        store = self.store
        devices = []
        for d in self.devices:
            c = d.driver.counters
            devices.append(
                {
                    "name": d.name,
                    "kind": d.kind,
                    "url": d.driver.url.raw,
                    "role": d.role.role,
                    "location": d.role.location,
                    "state": d.driver.state.value,
                    "reads": c.reads,
                    "reconnects": c.reconnects,
                    "decode_errors": c.decode_errors,
                    "restarts": d.restarts,
                    "last_event_us": d.driver.last_event_us,
                    "last_error": d.error or d.driver.last_error,
                }
            )
        session = self._session
        gc = self.counters
        return {
            "gateway": self.config.gateway.id,
            "site": self.config.gateway.site,
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round((now_us() - self.started_us) / 1e6, 1),
            "devices": devices,
            "session": session_to_json(session) if session else None,
            "dedup": {
                "window_s": self.config.dedup.window_s,
                "open_sightings": self.dedup.open_count,
                "pending_reads": self._pending_count,
            },
            "store": {
                "path": str(self.config.store.path),
                "session_dir": str(self.config.store.session_dir),
                "committed_sightings": (store.committed_closed + store.committed_open)
                if store
                else 0,
                "committed_closed_sightings": store.committed_closed if store else 0,
                "committed_reads": store.committed_reads if store else 0,
                "write_error": self._write_error,
            },
            "counters": {
                "reads": gc.reads,
                "scans": gc.scans,
                "scans_unrecognised": gc.scans_unrecognised,
                "sightings_opened": gc.sightings_opened,
                "sightings_closed": gc.sightings_closed,
                "store_writes": gc.store_writes,
                "store_write_errors": gc.store_write_errors,
                "sink_errors": gc.sink_errors,
                "sessions_started": gc.sessions_started,
                "sessions_closed": gc.sessions_closed,
                "control_errors": gc.control_errors,
            },
        }


def _float(value: Any) -> float | None:
    f = float(value)
    return None if math.isnan(f) else round(f, 2)


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
