"""The read pipeline: reads gathered from the devices → dedup → the store writer.

Two tasks run it:

* ``dedup-flush`` — every ``dedup.flush_interval_s`` (or at once when more than
  :data:`EAGER_FLUSH_READS` are pending): the reads gathered since the last flush go
  through the dedup kernel (and portal trackers), sightings that ended are closed, and
  the result is queued for the store;
* ``store-writer`` — commits queued flushes, one transaction per drain.

The dedup state has one owner. The
:class:`~tagsweep.daemon.dedup.deduplicator.Deduplicator` is only touched inside
:meth:`ReadPipeline.flush`, under the flush lock; batches of
:data:`THREAD_DEDUP_READS` reads and more are folded in on a worker thread, and while the
worker holds the state nothing on the event loop reads it. Readers on the loop (the live
feed seeding a session, ``status``) get :meth:`ReadPipeline.open_sightings`: a copy taken
on the loop at the end of the last flush — which is the dedup state whenever no flush is
running, and the last consistent one while a flush is.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tagsweep.config.schema import TagsweepConfig
from tagsweep.daemon.dedup.deduplicator import Deduplicator, DedupResult
from tagsweep.daemon.devices import Device
from tagsweep.daemon.events import EventFanout, EventKind, GatewayEvent
from tagsweep.daemon.status import GatewayCounters
from tagsweep.daemon.store import Store, StoreError, WriteBatch
from tagsweep.domain import READ_DTYPE, SIGHTING_DTYPE, now_us
from tagsweep.drivers import Driver, DriverState

TimingListener = Callable[[str, float], None]
#: Called with what is wrong with the store — the file deleted or replaced, or the last
#: write's error — (None once it is fine) and the failed writes so far.
StoreHealthListener = Callable[[str | None, int], None]

#: Pending reads above which a flush runs at once instead of waiting for the interval.
EAGER_FLUSH_READS = 500_000
#: Batches at least this large are deduplicated on a worker thread.
THREAD_DEDUP_READS = 50_000
#: How often raw reads older than their retention are deleted (when they are kept).
PRUNE_INTERVAL_S = 60.0
#: A read stamped further than this after its arrival is outside any session window.
FUTURE_TOLERANCE_US = 5_000_000
#: Reads outside the session are logged at most this often per reason (with a count).
OUTSIDE_LOG_INTERVAL_S = 10.0


class ReadPipeline:
    """Pending reads, the dedup state that folds them into sightings, and the queue to
    the store writer. One per gateway; :meth:`attach` gives it the opened store."""

    def __init__(
        self,
        config: TagsweepConfig,
        devices: Sequence[Device],
        *,
        counters: GatewayCounters,
        fanout: EventFanout,
        log: Any,
    ) -> None:
        self.config = config
        self.devices = devices
        self.counters = counters
        self.fanout = fanout
        self.log = log
        self.store: Store | None = None
        self._dedup = Deduplicator(int(config.dedup.window_s * 1e6))
        self._open: tuple[np.ndarray, np.ndarray] = _no_open_sightings()
        self._timing: list[TimingListener] = []
        self._pending_reads: list[np.ndarray] = []
        self._pending_count = 0
        self._pending_events: list[GatewayEvent] = []
        self._pending_status: list[tuple[int, str, str, str]] = []
        n = max(1, len(devices))
        self._clock_us = np.zeros(n, dtype=np.int64)  # latest reader timestamp seen
        self._clock_wall_us = np.zeros(n, dtype=np.int64)  # when it was seen
        self._flush_now = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._queue: asyncio.Queue[WriteBatch | asyncio.Future[None] | None] = asyncio.Queue(
            maxsize=64
        )
        self.write_error: str | None = None
        #: why the store cannot keep writes (deleted, replaced), None while it can
        self.store_problem: str | None = None
        self._health: list[StoreHealthListener] = []
        #: the open session's start (µs), or None; set by the session API
        self.session_started_us: int | None = None
        #: reads outside the open session's window since it opened (``session show``)
        self.outside_open_session = 0
        self._outside_logged: dict[str, tuple[float, int]] = {}  # reason → (when, total)

    def attach(self, store: Store, *, next_sighting_id: int) -> None:
        """Use the opened store; sighting ids go on from where the store left off."""
        self.store = store
        self._dedup = Deduplicator(
            int(self.config.dedup.window_s * 1e6), next_sighting_id=next_sighting_id
        )
        self._open = _no_open_sightings()

    def on_timing(self, listener: TimingListener) -> None:
        self._timing.append(listener)

    def on_store_health(self, listener: StoreHealthListener) -> None:
        self._health.append(listener)

    def check_store(self) -> str | None:
        """Look at the store file now; log and tell the listeners when that changes."""
        problem = self.store.problem() if self.store is not None else None
        if problem != self.store_problem:
            self.store_problem = problem
            if problem is not None:
                self.log.error("store_lost", problem=problem)
            else:
                self.log.info("store_back")
            self._tell_health()
        return problem

    def _tell_health(self) -> None:
        for listener in self._health:
            try:
                problem = self.store_problem or self.write_error
                listener(problem, self.counters.store_write_errors)
            except Exception as exc:
                self.log.exception("store_health_listener_failed", error=repr(exc))

    # -- what the loop may read -----------------------------------------------------------
    @property
    def window_us(self) -> int:
        return self._dedup.window_us

    @property
    def pending_count(self) -> int:
        return self._pending_count

    def open_sightings(self) -> tuple[np.ndarray, np.ndarray]:
        """The sightings open at the end of the last flush (rows, ids): a copy, safe to
        read on the loop at any time, also while a worker thread folds in a batch."""
        rows, ids = self._open
        return rows.copy(), ids.copy()

    @property
    def open_count(self) -> int:
        return len(self._open[1])

    # -- what the devices deliver ---------------------------------------------------------
    def on_state(self, driver: Driver, old: DriverState, new: DriverState) -> None:
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

    def on_reads(self, device: Device, batch: np.ndarray) -> None:
        if batch.dtype != READ_DTYPE or not len(batch):
            return
        batch["reader"] = device.index
        self._pending_reads.append(batch)
        n = len(batch)
        self._pending_count += n
        self.counters.reads += n
        self.counters.by_reader[device.name] = self.counters.by_reader.get(device.name, 0) + n
        self._count_outside_session(device, batch, n)
        latest = int(batch["last_seen_us"].max())
        if latest > self._clock_us[device.index]:
            self._clock_us[device.index] = latest
            self._clock_wall_us[device.index] = now_us()
        if self._pending_count >= EAGER_FLUSH_READS:
            self._flush_now.set()

    def _count_outside_session(self, device: Device, batch: np.ndarray, n: int) -> None:
        """Count (and log, rate limited) the reads the open session will not contain:
        none is open, or their stamps are outside its window (a reader's wrong clock)."""
        started = self.session_started_us
        if started is None:
            self._outside(device, "no_session", n)
            return
        before = int(np.count_nonzero(batch["last_seen_us"] < started - self.window_us))
        future = int(np.count_nonzero(batch["first_seen_us"] > now_us() + FUTURE_TOLERANCE_US))
        for reason, count in (("stamped_before_session", before), ("stamped_in_future", future)):
            if count:
                self.outside_open_session += count
                self._outside(device, reason, count)

    def _outside(self, device: Device, reason: str, count: int) -> None:
        totals = self.counters.reads_outside_session
        totals[reason] = total = totals.get(reason, 0) + count
        now = time.monotonic()
        last, logged_total = self._outside_logged.get(reason, (-math.inf, 0))
        if now - last >= OUTSIDE_LOG_INTERVAL_S:
            self._outside_logged[reason] = (now, total)
            self.log.warning(
                "reads_outside_session",
                reason=reason,
                reader=device.name,
                reads=total - logged_total,
                total=total,
                hint="these reads are kept in the store but are not in the session's count"
                if reason != "no_session"
                else "start a count session (tagsweep session start) to count them",
            )

    def queue_event(self, event: GatewayEvent) -> None:
        """An event to go out with the next flush (in order with the sightings)."""
        self._pending_events.append(event)

    # -- dedup ----------------------------------------------------------------------------
    def _reader_clocks(self) -> np.ndarray:
        """Each reader's current time: its latest timestamp plus wall time since then."""
        seen = self._clock_wall_us > 0
        return np.where(seen, self._clock_us + (now_us() - self._clock_wall_us), 0)

    async def flush_loop(self) -> None:
        """Task body of ``dedup-flush``."""
        interval = self.config.dedup.flush_interval_s
        next_prune = time.monotonic() + PRUNE_INTERVAL_S
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), timeout=interval)
            self._flush_now.clear()
            try:
                self.check_store()
                await self.flush()
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

    async def flush(self, *, final: bool = False, close_open: bool = False) -> None:
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
            dedup = self._dedup
            if len(batch) >= THREAD_DEDUP_READS:
                # numpy releases the GIL in the heavy parts: keep the loop responsive.
                # Nothing on the loop touches ``dedup`` meanwhile (see the module doc).
                results.append(await asyncio.to_thread(dedup.process, batch))
            elif len(batch):
                results.append(dedup.process(batch))
            results.append(
                dedup.flush() if final or close_open else dedup.expire(self._reader_clocks())
            )
            elapsed = time.perf_counter() - started
            events = self._pending_events
            self._pending_events = []
            events += self._portal_events(batch, final=final)
            open_rows, open_ids = dedup.open_sightings()  # copies
            self._open = (open_rows, open_ids)
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
            if self.fanout.sinks:
                events += self._sighting_events(results, open_rows, open_ids)
                await self.fanout.emit(events)

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

    def _timed(self, what: str, seconds: float) -> None:
        for listener in self._timing:
            try:
                listener(what, seconds)
            except Exception as exc:
                self.log.exception("timing_listener_failed", error=repr(exc))

    # -- the store writer -------------------------------------------------------------------
    async def store_writer(self) -> None:
        """Task body of ``store-writer``; returns after :meth:`finish` once drained."""
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
                    if self.write_error is not None:
                        self.write_error = None
                        self.log.info("store_write_recovered")
                        self._tell_health()
                    self.counters.store_writes += 1
                    self._timed("store_write", time.perf_counter() - started)
                except Exception as exc:  # keep the batch; retry with the next one
                    self.counters.store_write_errors += 1
                    first = repr(exc) != self.write_error
                    self.write_error = repr(exc)
                    if isinstance(exc, StoreError):
                        self.check_store()
                    if first and isinstance(exc, StoreError):  # once per distinct error
                        # what is wrong is known and said; a traceback would add nothing
                        self.log.error("store_write_failed", error=str(exc))  # noqa: TRY400 - the cause is said
                    elif first:
                        self.log.exception("store_write_failed", error=repr(exc))
                    self._tell_health()
                    if stop:
                        break
                    await asyncio.sleep(1.0)
            for w in waiters:
                if not w.done():
                    if self.write_error:
                        w.set_exception(RuntimeError(f"store write failed: {self.write_error}"))
                    else:
                        w.set_result(None)
            if stop:
                return

    async def finish(self) -> None:
        """Tell the store writer to commit what is queued and end."""
        await self._queue.put(None)

    async def sync(self) -> None:
        """Flush dedup now and wait until the store has committed the result."""
        await self.flush()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(done)
        await done


def _no_open_sightings() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, dtype=SIGHTING_DTYPE), np.zeros(0, dtype=np.uint64)


def _float(value: Any) -> float | None:
    f = float(value)
    return None if math.isnan(f) else round(f, 2)
