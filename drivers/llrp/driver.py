"""The LLRP driver on the event loop: connect and wait for inventory, receive read
batches under the keepalive watchdog, turn the reader thread's signals into counters
and logs, and close politely (see the package docstring for the design)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Final

from sllurp.llrp_errors import ReaderConfigurationError

from tagsweep.drivers.base import Driver, DriverError, DriverEvent, DriverState
from tagsweep.drivers.llrp.bridge import Bridge, Item, Signal
from tagsweep.drivers.llrp.client import ReaderClient
from tagsweep.drivers.llrp.frames import HEADER_SIZE
from tagsweep.drivers.llrp.settings import LlrpSettings

_LOGGED_PER_KIND = 20  # log at most this many problems of one kind per connection
#: GET_REPORT (LLRP 1.0.1 16.1.26; sllurp cannot encode it): header only, own id
_GET_REPORT: Final = struct.pack(">HII", (1 << 10) | 60, HEADER_SIZE, 0x7FFFFF00)
#: problems that count as decode errors (the rest are faults of other kinds)
_DECODE_KINDS = frozenset({"framing", "decode", "malformed_record", "malformed_parameter"})


class LlrpDriver(Driver):
    """A UHF RFID reader over LLRP; yields READ_DTYPE batches (see the package docstring)."""

    schemes: ClassVar[tuple[str, ...]] = ("llrp", "llrps")
    kind: ClassVar[str] = "rfid"

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.settings = LlrpSettings.parse(self)
        self._client: ReaderClient | None = None
        self._bridge: Bridge | None = None
        self._early: list[Item] = []
        self._logged: dict[str, int] = {}

    @property
    def backlog_reads(self) -> int:
        """Reads received from the reader but not yet consumed (a metric, and the bound
        ``max_pending_reads`` that makes the reader thread stop reading the socket)."""
        return self._bridge.pending_reads if self._bridge is not None else 0

    async def _connect(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        bridge = Bridge(loop, settings.max_pending_reads)
        client = ReaderClient(settings, bridge, self.reader_id)
        self._bridge, self._client, self._early, self._logged = bridge, client, [], {}
        self.counters.clock_offset_s = 0.0
        self.log = self.log.bind(host=settings.host, port=settings.port)
        try:  # sllurp's socket timeout bounds this (no wait_for: it would orphan the thread)
            await asyncio.to_thread(client.connect)
        except (OSError, ReaderConfigurationError) as exc:
            self.counters.fault("connect")
            raise DriverError(f"cannot connect to {settings.host}:{settings.port}: {exc}") from exc
        if self._client is not client:  # closed while the socket was connecting
            client.stop()
            await asyncio.to_thread(client.join, 5.0)
            return
        deadline = loop.time() + settings.connect_timeout_s
        while True:
            bridge.ready.clear()
            items = bridge.take()
            for index, item in enumerate(items):
                if isinstance(item, Signal) and item.kind == "inventorying":
                    self.log.info("llrp_inventorying", rospec_id=settings.rospec_id)
                    self._early.extend(items[index + 1 :])
                    return
                if isinstance(item, Signal) and item.kind == "lost":
                    if self.closing:
                        return
                    self.counters.fault("connect")
                    raise DriverError(f"reader session failed before inventory: {item.detail}")
                self._early.append(item)
            remaining = deadline - loop.time()
            if remaining <= 0:
                self.counters.fault("connect")
                raise DriverError(
                    f"reader did not start inventory within {settings.connect_timeout_s}s"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(bridge.ready.wait(), timeout=remaining)

    async def _receive(self) -> AsyncIterator[DriverEvent]:
        bridge, client = self._bridge, self._client
        if bridge is None or client is None:
            return
        loop = asyncio.get_running_loop()
        interval = self.settings.keepalive_s
        poll = min(0.25, interval / 4, self.settings.report_interval_s)
        last_alive = last_asked = loop.time()
        pending: list[Item] = self._early
        self._early = []
        while True:
            if loop.time() - last_asked >= self.settings.report_interval_s:
                last_asked = loop.time()
                self._ask_for_reports(client)
            if not pending:
                if self.closing:
                    return
                bridge.ready.clear()
                pending = bridge.take()
            if not pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(bridge.ready.wait(), timeout=poll)
                if self.closing:
                    return
                if not client.is_alive() and not bridge.has_items():
                    self.counters.fault("reader_thread")
                    raise DriverError("sllurp reader thread is no longer running")
                # half an interval of slack: a keepalive due "now" is not yet a miss
                silent = loop.time() - last_alive
                missed = silent / interval - 0.5
                if missed >= 1 and self.state is DriverState.INVENTORYING:
                    self._set_state(
                        DriverState.DEGRADED, f"no keepalive or report for {silent:.1f}s"
                    )
                if missed >= self.settings.watchdog_intervals:
                    self.counters.fault("watchdog")
                    raise DriverError(
                        f"watchdog: no keepalive or report for {silent:.1f}s "
                        f"({self.settings.watchdog_intervals} intervals of {interval}s)"
                    )
                continue
            last_alive = loop.time()
            if self.state is DriverState.DEGRADED:
                self._set_state(DriverState.INVENTORYING, "reader alive again")
            for index, item in enumerate(pending):
                if isinstance(item, Signal):
                    self._on_signal(item)
                    continue
                self._follow_clock(client.decoder.utc.offset_us)
                self.counters.reads += len(item)
                self.counters.batches += 1
                bridge.release(len(item))
                pending = pending[index + 1 :]
                yield item
                break
            else:
                pending = []

    def _ask_for_reports(self, client: ReaderClient) -> None:
        """GET_REPORT: the reader sends what it has read but not reported yet. A reader
        cuts reports every N tag reports (ROReportSpec); with few tags in the field N
        may take long to fill, so this bounds how late a read can be."""
        try:
            client.send_data(_GET_REPORT)
        except (OSError, ReaderConfigurationError) as exc:
            self.log.debug("llrp_get_report_not_sent", error=str(exc))

    def _follow_clock(self, offset_us: int | None) -> None:
        """Export the re-anchoring offset of this connection; say it once when found."""
        offset_s = 0.0 if offset_us is None else offset_us / 1e6
        self.counters.clock_offset_s = offset_s
        if offset_us is not None and "clock" not in self._logged:
            self._logged["clock"] = 1
            self.log.warning(
                "reader_clock_skew",
                offset_s=round(offset_s, 3),
                max_clock_skew_s=self.settings.max_clock_skew_s,
                hint="the reader's clock is wrong (set it, or use NTP); its reads are "
                "re-stamped on this gateway's clock for this connection",
            )

    def _on_signal(self, signal: Signal) -> None:
        if signal.kind == "power":
            self.log.info("llrp_tx_power", detail=signal.detail)
            return
        if signal.kind == "frequency":
            self.log.info("llrp_frequencies", detail=signal.detail)
            return
        if signal.kind == "knock":
            self.log.info(
                "llrp_another_client_knocked",
                hint="another client tried to connect to this reader; this session goes on",
            )
            return
        if signal.kind == "lost":
            if self.closing:
                return
            self.counters.fault("connection_lost")
            raise DriverError(signal.detail)
        if signal.kind == "problem" and signal.problem is not None:
            problem = signal.problem
            if problem.kind == "unknown_parameter":
                # well-formed, just not used here: counted, said once per kind of
                # parameter and connection, and not a fault
                self.counters.skipped_parameters += problem.count
                key = f"skipped:{problem.detail}"
                if key not in self._logged:
                    self._logged[key] = 1
                    self.log.info(
                        "llrp_vendor_parameter_skipped",
                        detail=problem.detail,
                        hint="the reader reports a vendor value tagsweep does not use",
                    )
                return
            self.counters.faults[problem.kind] = (
                self.counters.faults.get(problem.kind, 0) + problem.count
            )
            if problem.kind in _DECODE_KINDS:
                self.counters.decode_errors += 1
            logged = self._logged.get(problem.kind, 0)
            self._logged[problem.kind] = logged + 1
            if logged < _LOGGED_PER_KIND:
                self.log.warning(
                    "llrp_stream_problem",
                    kind=problem.kind,
                    detail=problem.detail,
                    reads_affected=problem.count,
                    suppressed_after=_LOGGED_PER_KIND,
                )

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        bridge = self._bridge
        if bridge is not None:
            bridge.ready.set()  # wake a waiting _receive so it can notice
        if client is None:
            return
        if self.closing and client.is_alive():
            await self._close_politely(client)
        client.stop()
        await asyncio.to_thread(client.join, 5.0)
        if client.is_alive():
            self.log.error("llrp_thread_not_stopped", detail="reader thread still running after 5s")
        if bridge is not None:
            for item in bridge.take():  # reads that arrived during shutdown are still reads
                if not isinstance(item, Signal):
                    self.log.info("llrp_reads_after_close", reads=len(item))

    async def _close_politely(self, client: ReaderClient) -> None:
        """STOP_ROSPEC, DELETE_ROSPEC, CLOSE_CONNECTION; wait ≤1 s for the response."""
        client.closing.set()
        rospec = {"ROSpecID": self.settings.rospec_id}
        try:
            client.send_message({"STOP_ROSPEC": {"ID": 0x7FFFFFF0, **rospec}})
            client.send_message({"DELETE_ROSPEC": {"ID": 0x7FFFFFF1, **rospec}})
            client.send_message({"CLOSE_CONNECTION": {"ID": 0x7FFFFFF2}})
        except (OSError, ReaderConfigurationError) as exc:
            self.log.info("llrp_close_not_sent", error=str(exc))
            return
        await asyncio.to_thread(client.close_acknowledged.wait, 1.0)
        self.log.info("llrp_closed", acknowledged=client.close_acknowledged.is_set())
