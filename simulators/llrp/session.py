"""One client connection of the simulated reader: the connection attempt (or refusal),
the request loop, and the answer to every request (capabilities, configuration, the
ROSpec and AccessSpec life cycles, GET_REPORT, CLOSE_CONNECTION, Impinj extensions),
with correct message ids and LLRPStatus. What the reader sends on its own is
:class:`~tagsweep.simulators.llrp.report_pump.ReportPump`, mixed in."""

from __future__ import annotations

import asyncio
import random
import struct
from typing import TYPE_CHECKING

from tagsweep.domain import ReadBatch, now_us
from tagsweep.simulators.llrp import encoder as enc
from tagsweep.simulators.llrp.access import AccessSpecRequest, parse_add_accessspec
from tagsweep.simulators.llrp.encoder import MessageType as M
from tagsweep.simulators.llrp.encoder import ParameterError, Status
from tagsweep.simulators.llrp.faults import CONNECTION_ALREADY_EXISTS, Fault, FaultKind
from tagsweep.simulators.llrp.profiles import (
    GET_SUPPORTED_VERSION,
    M_UNSUPPORTED_VERSION,
    rospec_refusal,
)
from tagsweep.simulators.llrp.report_pump import ReportPump
from tagsweep.simulators.llrp.rospec import RunningSpec

if TYPE_CHECKING:  # the server creates sessions, so it imports this module
    from tagsweep.simulators.llrp.server import ConnectionLog, LlrpSimulator


MAX_REQUEST_BYTES = 1 << 20
_ROSPEC_REQUESTS = frozenset(
    {
        M.ADD_ROSPEC,
        M.DELETE_ROSPEC,
        M.START_ROSPEC,
        M.STOP_ROSPEC,
        M.ENABLE_ROSPEC,
        M.DISABLE_ROSPEC,
    }
)


_ACCESSSPEC_REQUESTS = frozenset(
    {M.ADD_ACCESSSPEC, M.DELETE_ACCESSSPEC, M.ENABLE_ACCESSSPEC, M.DISABLE_ACCESSSPEC}
)


class ReaderSession(ReportPump):
    """One client connection: the request loop and the answers (with the report pump)."""

    def __init__(
        self,
        sim: LlrpSimulator,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        log: ConnectionLog,
        faults: list[Fault],
    ) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.log = log
        self.pending_faults = sorted(faults, key=lambda f: f.after_reports)
        self.rospecs: dict[int, RunningSpec] = {}
        self.inventorying = asyncio.Event()  # some ROSpec is in an AISpec
        self.silent = False  # STALL / MISSED_KEEPALIVES: nothing reader-initiated is sent
        self.stalled = False  # STALL: not even responses
        self.profile = sim.profile
        self.refuse = False
        self.keepalive_ms = self.profile.default_keepalive_ms
        # HoldEventsAndReportsUponReconnect: reader-initiated messages wait here
        self.events_enabled = not self.profile.hold_until_enabled
        self.held_messages: list[bytes] = []
        self.extensions_enabled = False  # IMPINJ_ENABLE_EXTENSIONS received
        self.access_specs: dict[int, AccessSpecRequest] = {}
        # ROReportTrigger None: reads wait here until the client sends GET_REPORT
        self.held: list[ReadBatch] = []
        # reproducible fault bytes, not security: S311 does not apply
        self.rng = random.Random(sim._seed + log.index)  # noqa: S311 - reproducible simulation, not a secret
        # the reader numbers its own messages (reports, keepalives, events) with its own
        # counter, large numbers unrelated to the client's ids (pyllrp waits for the
        # response with its request's id and takes any other id for an event)
        self.next_id = self.rng.randrange(1 << 30, 1 << 31)
        self.extra = b""  # appended to every TagReportData of the next report
        self._tasks: list[asyncio.Task[None]] = []
        self.logger = sim.log.bind(connection=log.index, peer=log.peer)

    def _msg_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def send(self, data: bytes) -> None:
        if not self.stalled and not self.writer.is_closing():
            self.writer.write(data)

    def emit(self, data: bytes) -> None:
        """A message the reader sends on its own (report, keepalive, event): held while
        the client has not enabled events and reports (HoldEventsAndReportsUponReconnect)."""
        if self.events_enabled:
            self.send(data)
        else:
            self.held_messages.append(data)

    async def run(self) -> None:
        self.logger.info("llrp_client_connected")
        if self.refuse or self._fault_now(FaultKind.BUSY):
            # as a reader that already has a client: say so, then close the connection
            status = CONNECTION_ALREADY_EXISTS
            self.send(enc.reader_event_connection_attempt(self._msg_id(), now_us(), status))
            await self.writer.drain()
            self.logger.info("llrp_client_refused", reason="another client holds the reader")
            return
        self.send(enc.reader_event_connection_attempt(self._msg_id(), now_us()))
        self._restart_keepalive()  # on from the start when the profile says so
        try:
            while True:
                header = await self.reader.readexactly(enc.HEADER_SIZE)
                word, length, msg_id = struct.unpack(">HII", header)
                if length < enc.HEADER_SIZE or length > MAX_REQUEST_BYTES:
                    self.logger.warning("llrp_bad_request_length", length=length)
                    return
                body = await self.reader.readexactly(length - enc.HEADER_SIZE)
                msg_type = word & 0x3FF
                self.log.requests.append(msg_type)
                if not await self.handle(msg_type, msg_id, body):
                    return
                await self.writer.drain()
        finally:
            for spec in self.rospecs.values():
                spec.cancel()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self.logger.info("llrp_client_gone", reports=self.log.reports)

    # -- requests ------------------------------------------------------------------------
    async def handle(self, msg_type: int, msg_id: int, body: bytes) -> bool:
        """Act on one request; False ends the connection."""
        if msg_type == M.GET_READER_CAPABILITIES:
            if self._fault_now(FaultKind.CONFIG_ERROR):
                self.send(
                    enc.status_response(
                        M.GET_READER_CAPABILITIES_RESPONSE,
                        msg_id,
                        Status.DEVICE_ERROR,
                        "simulated device error",
                    )
                )
            else:
                extra = self.profile.capabilities_extra
                self.send(enc.reader_capabilities(msg_id, self.sim.identity, extra))
        elif msg_type == M.GET_READER_CONFIG:
            extra = self.profile.config_extra
            self.send(enc.reader_config(msg_id, self.sim.identity, self.keepalive_ms, extra))
        elif msg_type == M.SET_READER_CONFIG:
            interval = enc.parse_keepalive_ms(body)
            if interval is not None:
                self.keepalive_ms = interval
                self._restart_keepalive()
            self.send(enc.status_response(M.SET_READER_CONFIG_RESPONSE, msg_id))
        elif msg_type == M.ENABLE_EVENTS_AND_REPORTS:  # no response defined
            self.events_enabled = True
            for data in self.held_messages:
                self.send(data)
            self.held_messages.clear()
        elif msg_type == GET_SUPPORTED_VERSION and self.profile.llrp_1_0_1_only:
            status = enc.llrp_status(M_UNSUPPORTED_VERSION, "LLRP version 1.0.1 only")
            self.send(enc.message(M.ERROR_MESSAGE, msg_id, status))
        elif msg_type == M.GET_REPORT:
            self._report_held(msg_id)
        elif msg_type == M.KEEPALIVE_ACK:
            self.log.keepalive_acks += 1
        elif msg_type == M.CLOSE_CONNECTION:
            self.inventorying.clear()
            self.send(enc.status_response(M.CLOSE_CONNECTION_RESPONSE, msg_id))
            self.log.closed_by_client = True
            await self.writer.drain()
            return False
        elif msg_type in _ROSPEC_REQUESTS:
            await self._rospec_request(msg_type, msg_id, body)
        elif msg_type in _ACCESSSPEC_REQUESTS:
            self._accessspec_request(msg_type, msg_id, body)
        elif msg_type in enc.RESPONSE_TO:  # (none left: every request is handled above)
            self.send(enc.status_response(enc.RESPONSE_TO[msg_type], msg_id))
        elif (
            msg_type == M.CUSTOM_MESSAGE
            and body[:5] == struct.pack(">IB", enc.VENDOR_IMPINJ, 21)
            and self.sim.identity.manufacturer == enc.VENDOR_IMPINJ
        ):  # IMPINJ_ENABLE_EXTENSIONS: only an Impinj reader knows it
            self.extensions_enabled = True
            self.send(enc.custom_message(enc.VENDOR_IMPINJ, 22, msg_id, enc.llrp_status()))
        else:
            self.send(
                enc.message(
                    M.ERROR_MESSAGE,
                    msg_id,
                    enc.llrp_status(Status.UNSUPPORTED_MESSAGE, f"message type {msg_type}"),
                )
            )
        return True

    async def _rospec_request(self, msg_type: int, msg_id: int, body: bytes) -> None:
        response = enc.RESPONSE_TO[msg_type]

        def fail(why: str, code: int = Status.A_INVALID) -> None:
            self.send(enc.status_response(response, msg_id, code, why))

        if msg_type == M.ADD_ROSPEC:
            try:
                request = enc.parse_add_rospec(body, self.profile.factory_selector_flags)
            except ParameterError as exc:
                fail(str(exc), Status.PARAMETER_ERROR)
                return
            refusal = rospec_refusal(
                self.profile, request, len(self.rospecs), self.extensions_enabled
            )
            if refusal is not None:
                fail(refusal[1], refusal[0])
                return
            if request.rospec_id == 0 or request.rospec_id in self.rospecs:
                fail(f"ROSpecID {request.rospec_id} is zero or already in use")
                return
            spec = RunningSpec(request, self._send_reads, self.held.append)
            spec.on_change = self._on_spec_change
            self.rospecs[request.rospec_id] = spec
            self.log.rospecs.append(request)
            self.send(enc.status_response(response, msg_id))
            if request.current_state:  # added as enabled (LLRP allows it)
                spec.enable()
            return
        if len(body) < 4:
            fail("missing ROSpecID", Status.PARAMETER_ERROR)
            return
        rospec_id = struct.unpack_from(">I", body)[0]
        # ROSpecID 0 means all of them (DELETE, ENABLE, DISABLE; LLRP 1.0.1 10.1)
        specs = list(self.rospecs.values()) if rospec_id == 0 else []
        if rospec_id and rospec_id in self.rospecs:
            specs = [self.rospecs[rospec_id]]
        elif rospec_id:
            fail(f"no ROSpec with ROSpecID {rospec_id}")
            return
        for spec in specs:
            if msg_type in (M.DELETE_ROSPEC, M.DISABLE_ROSPEC):
                await spec.disable()  # what is due at the end is sent first
                if msg_type == M.DELETE_ROSPEC:
                    del self.rospecs[spec.request.rospec_id]
            elif msg_type == M.ENABLE_ROSPEC:
                spec.enable()
            elif msg_type in (M.START_ROSPEC, M.STOP_ROSPEC):
                if spec.state == "disabled":
                    fail(f"ROSpec {rospec_id} is not enabled")
                    return
                if msg_type == M.START_ROSPEC:
                    spec.start()
                else:
                    await spec.stop()
        self.send(enc.status_response(response, msg_id))

    def _accessspec_request(self, msg_type: int, msg_id: int, body: bytes) -> None:
        response = enc.RESPONSE_TO[msg_type]
        if msg_type == M.ADD_ACCESSSPEC:
            try:
                request = parse_add_accessspec(body)
            except (ParameterError, struct.error) as exc:
                self.send(enc.status_response(response, msg_id, Status.PARAMETER_ERROR, str(exc)))
                return
            if request.accessspec_id == 0 or request.accessspec_id in self.access_specs:
                why = f"AccessSpecID {request.accessspec_id} is zero or already in use"
                self.send(enc.status_response(response, msg_id, Status.A_INVALID, why))
                return
            self.access_specs[request.accessspec_id] = request
            self.send(enc.status_response(response, msg_id))
            return
        if len(body) < 4:
            self.send(enc.status_response(response, msg_id, Status.PARAMETER_ERROR, "no id"))
            return
        spec_id = struct.unpack_from(">I", body)[0]
        specs = list(self.access_specs.values()) if spec_id == 0 else []
        if spec_id in self.access_specs:
            specs = [self.access_specs[spec_id]]
        elif spec_id:
            why = f"no AccessSpec with AccessSpecID {spec_id}"
            self.send(enc.status_response(response, msg_id, Status.A_INVALID, why))
            return
        for spec in specs:
            if msg_type == M.DELETE_ACCESSSPEC:
                del self.access_specs[spec.accessspec_id]
            else:
                spec.enabled = msg_type == M.ENABLE_ACCESSSPEC
        self.send(enc.status_response(response, msg_id))

    def _on_spec_change(self) -> None:
        for rospec_id, spec in self.rospecs.items():
            self.log.rospec_runs[rospec_id] = spec.runs
        if self._inventorying_spec() is not None:
            self.inventorying.set()
            if not any(t.get_name() == "llrp-sim-reports" for t in self._tasks):
                self._tasks.append(asyncio.create_task(self._pump(), name="llrp-sim-reports"))
        else:
            self.inventorying.clear()

    def _inventorying_spec(self) -> RunningSpec | None:
        return next((s for s in self.rospecs.values() if s.inventorying), None)
