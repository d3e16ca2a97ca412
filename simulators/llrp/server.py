"""A simulated UHF RFID reader speaking LLRP 1.0.1 over TCP, with fault injection.

It behaves like a fixed or handheld reader as a conforming client sees it: a
ConnectionAttemptEvent on connect, capabilities and configuration, the ROSpec life cycle
(add, enable, start, stop, disable, delete) with correct message ids and LLRPStatus,
periodic KEEPALIVEs once configured, CLOSE_CONNECTION, and RO_ACCESS_REPORTs produced by
our own encoder from a *tag source* (see :mod:`.sources`). Like a real reader it sends
only the TagReportData fields the client's ROReportSpec selects (Impinj phase, RSSI and
Doppler only when the Impinj selector asks for them and the read has them), and cuts
reports as the client's ROSpec says (:mod:`.rospec`); with the trigger None it holds the
reads until the client asks with GET_REPORT. A profile (:mod:`.profiles`) makes it behave
like a given vendor's reader; a tag field (:mod:`.access`) gives it tags whose memory
AccessSpecs write; ``tls`` serves LLRP over TLS (:mod:`.tls`).

Faults (:mod:`.faults`) are switched per connection so a test can break the first
connection and check that the client recovers on the next one, and every connection
keeps a :class:`ConnectionLog` of the reads it actually put on the wire: that is the
ground truth for "no report sent after reconnection is lost".

Start it in-process::

    async with LlrpSimulator(port=0, tag_source=random_tags(500, 1000)) as sim:
        url = f"llrp://127.0.0.1:{sim.port}"
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Self

import numpy as np

from tagsweep.domain import READ_DTYPE, ReadBatch, now_us
from tagsweep.logs import get_logger
from tagsweep.simulators.llrp import encoder as enc
from tagsweep.simulators.llrp.access import (
    AccessSpecRequest,
    TagField,
    apply_access,
    parse_add_accessspec,
)
from tagsweep.simulators.llrp.encoder import MessageType as M
from tagsweep.simulators.llrp.encoder import ParameterError, ReaderIdentity, ROSpecRequest, Status
from tagsweep.simulators.llrp.faults import (
    CONNECTION_ALREADY_EXISTS,
    Fault,
    FaultKind,
    FaultyReader,
)
from tagsweep.simulators.llrp.profiles import (
    GET_SUPPORTED_VERSION,
    M_UNSUPPORTED_VERSION,
    PROFILES,
    ReaderProfile,
    rospec_refusal,
)
from tagsweep.simulators.llrp.rospec import RunningSpec
from tagsweep.simulators.llrp.sources import TagSource

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


@dataclass(slots=True)
class ConnectionLog:
    """What happened on one client connection, for tests and the CLI."""

    index: int
    peer: str
    sent: list[ReadBatch] = field(default_factory=list)  # reads in well-formed reports
    reports: int = 0
    observed: int = 0  # reads the antennas saw (reported or not yet)
    keepalives: int = 0
    keepalive_acks: int = 0
    requests: list[int] = field(default_factory=list)  # message types received, in order
    rospecs: list[ROSpecRequest] = field(default_factory=list)  # every ADD_ROSPEC received
    rospec_runs: dict[int, int] = field(default_factory=dict)  # ROSpecID → times started
    faults: list[FaultKind] = field(default_factory=list)
    closed_by_client: bool = False  # CLOSE_CONNECTION received and answered
    source_done: bool = False  # the tag source is exhausted: nothing more will be sent
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def sent_reads(self) -> ReadBatch:
        return np.concatenate(self.sent) if self.sent else np.zeros(0, dtype=READ_DTYPE)

    @property
    def read_count(self) -> int:
        return sum(len(b) for b in self.sent)


class LlrpSimulator:
    """An asyncio LLRP reader on ``host:port`` (``port=0`` picks a free port)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5084,
        *,
        tag_source: TagSource | None = None,
        faults: Sequence[Fault] = (),
        identity: ReaderIdentity | None = None,
        max_reads_per_report: int = 1000,
        seed: int = 0,
        profile: ReaderProfile | None = None,
        tls: ssl.SSLContext | None = None,
        tag_field: TagField | None = None,
    ) -> None:
        self.host = host
        self.port = port
        #: tags with memory (AccessSpecs write them); read round after round
        self.tag_field = tag_field
        self.tag_source = tag_source or (tag_field.source() if tag_field else None)
        self.faults = list(faults)
        self.profile = profile or PROFILES["generic"]
        self.tls = tls  # LLRP over TLS (llrps://) when set
        self.identity = identity or self.profile.identity
        self.max_reads_per_report = max_reads_per_report
        self.connections: list[ConnectionLog] = []
        self._seed = seed
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._new_connection = asyncio.Condition()
        self.log = get_logger("sim.llrp")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, ssl=self.tls)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def wait_for_connection(self, index: int) -> ConnectionLog:
        """Wait until connection number ``index`` (0-based) has been accepted."""
        async with self._new_connection:
            await self._new_connection.wait_for(lambda: len(self.connections) > index)
        return self.connections[index]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        log = ConnectionLog(len(self.connections), str(writer.get_extra_info("peername")))
        faults = [f for f in self.faults if f.connection in (None, log.index)]
        session = _Session(self, reader, writer, log, faults)
        # a reader takes one client: while another is connected, this one is refused
        session.refuse = self.profile.one_client and any(
            not c.done.is_set() for c in self.connections
        )
        async with self._new_connection:
            self.connections.append(log)
            self._new_connection.notify_all()
        try:
            await session.run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # stop() ends the handlers it cancels: end quietly, because asyncio's stream
            # server (3.11) logs a handler task that ends cancelled as an error
            pass
        finally:
            log.done.set()
            self._handlers.discard(task)
            writer.transport.abort()


class _Session(FaultyReader):
    """One client connection: request loop, keepalive timer and report pump."""

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

    # -- reader-initiated messages -------------------------------------------------------
    def _restart_keepalive(self) -> None:
        for task in [t for t in self._tasks if t.get_name() == "llrp-sim-keepalive"]:
            task.cancel()
            self._tasks.remove(task)
        if self.keepalive_ms > 0:
            self._tasks.append(asyncio.create_task(self._keepalive(), name="llrp-sim-keepalive"))

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_ms / 1000)
            if self.silent or self._fault_now(FaultKind.MISSED_KEEPALIVES):
                self.silent = True
                continue
            self.emit(enc.keepalive(self._msg_id()))
            self.log.keepalives += 1

    async def _pump(self) -> None:
        """Turn the tag source into RO_ACCESS_REPORTs while a ROSpec is active."""
        if self.sim.tag_source is None:
            return
        source = self.sim.tag_source()
        loop = asyncio.get_running_loop()
        try:
            async for batch in source:
                while (spec := self._inventorying_spec()) is None:
                    self.inventorying.clear()  # set again when an AISpec starts
                    await self.inventorying.wait()
                if self.pending_faults:  # due faults come even while N is filling
                    await self._inject_faults()
                self.log.observed += len(batch)
                await spec.observe(batch, loop.time())
                await self.writer.drain()
            self.log.source_done = True
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            self.logger.exception("llrp_tag_source_failed")
            raise
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    def _report_held(self, msg_id: int) -> None:
        """GET_REPORT: one RO_ACCESS_REPORT with the reads held since the last one, with
        the request's message id (empty when there are none, as a reader answers)."""
        for spec in self.rospecs.values():  # read under an "upon N tags" trigger too
            self.held.extend(spec.pending)
            spec.pending = []
        reads = np.concatenate(self.held) if self.held else np.zeros(0, dtype=READ_DTYPE)
        self.held.clear()
        self.send(enc.ro_access_report(msg_id, reads, b"", self._selector(None)))
        self.log.sent.append(reads)
        self.log.reports += 1

    async def _send_reads(self, batch: ReadBatch, report_n: int, spec: RunningSpec) -> None:
        """Encode the batch once, then cut it into reports of at most N reads, at most
        the reader's own limit per message, and no larger than its message size cap."""
        per_report = min(report_n or self.sim.max_reads_per_report, self.sim.max_reads_per_report)
        selector = self._selector(spec)
        tag_extra = self.profile.tag_extra
        if self.access_specs and self.sim.tag_field is not None:
            batch = self._access(batch, spec, selector)
        body, offsets = enc.tag_report_records(batch, tag_extra, selector=selector)
        cap = self.profile.max_message_bytes - enc.HEADER_SIZE
        start = 0
        while start < len(batch):
            if self.pending_faults:
                await self._inject_faults()
            if self.silent:  # stalled or hung: never send again
                await asyncio.Event().wait()
            stop = min(start + per_report, len(batch))
            while stop > start + 1 and offsets[stop] - offsets[start] > cap:
                stop = start + max(1, (stop - start) // 2)
            reads = batch[start:stop]
            if self.extra:  # this report carries an injected parameter: encode it alone
                report = enc.ro_access_report(
                    self._msg_id(), reads, self.extra + tag_extra, selector
                )
                self.extra = b""
            else:
                chunk = body[offsets[start] : offsets[stop]]
                report = enc.message(M.RO_ACCESS_REPORT, self._msg_id(), chunk)
            if self.profile.split_segments and self.events_enabled and len(report) > 1:
                # one report, two TCP segments: the client must reassemble it
                half = len(report) // 2
                self.send(report[:half])
                await self.writer.drain()
                await asyncio.sleep(0)
                self.send(report[half:])
            else:
                self.emit(report)
            self.log.sent.append(reads.copy())
            self.log.reports += 1
            start = stop

    def _access(
        self, batch: ReadBatch, spec: RunningSpec, selector: enc.ContentSelector
    ) -> ReadBatch:
        """Run the AccessSpecs on the tags read; each accessed read goes in a report of
        its own with its OpSpec results; the others are returned."""
        assert self.sim.tag_field is not None
        accessed = apply_access(
            self.access_specs, self.sim.tag_field, batch, spec.request.rospec_id
        )
        for row, results in accessed:
            reads = batch[row : row + 1]
            extra = results + self.profile.tag_extra
            self.emit(enc.ro_access_report(self._msg_id(), reads, extra, selector))
            self.log.sent.append(reads.copy())
            self.log.reports += 1
        keep = np.ones(len(batch), dtype=bool)
        keep[[row for row, _ in accessed]] = False
        return batch[keep]

    def _selector(self, spec: RunningSpec | None) -> enc.ContentSelector:
        spec = spec or next((s for s in self.rospecs.values() if s.state == "active"), None)
        selector = spec.request.selector if spec is not None else enc.EVERYTHING
        identity = self.sim.identity
        return replace(
            selector,
            uptime_since_us=identity.booted_us,
            utc_offset_us=identity.clock_offset_us,
        )

    def _antennas(self) -> tuple[int, ...]:
        for spec in self.rospecs.values():
            if spec.state == "active" and spec.request.antennas:
                return tuple(a for a in spec.request.antennas if a) or (1,)
        return (1,)


async def run_simulator(
    host: str, port: int, tag_source: TagSource, faults: Sequence[Fault] = ()
) -> None:
    """Serve until cancelled (the CLI's entry point)."""
    async with LlrpSimulator(host, port, tag_source=tag_source, faults=faults) as sim:
        with contextlib.suppress(asyncio.CancelledError):
            await sim.serve_forever()
