"""A simulated UHF RFID reader speaking LLRP 1.0.1 over TCP, with fault injection.

It behaves like a fixed or handheld reader as a conforming client sees it: a
ConnectionAttemptEvent on connect, capabilities and configuration, the ROSpec life cycle
(add, enable, start, stop, disable, delete) with correct message ids and LLRPStatus,
periodic KEEPALIVEs once configured, CLOSE_CONNECTION, and RO_ACCESS_REPORTs produced by
our own encoder from a *tag source* (see :mod:`.sources`). Like a real reader it sends
only the TagReportData fields the client's ROReportSpec selects (Impinj phase, RSSI and
Doppler only when the Impinj selector asks for them and the read has them), and cuts
reports every N reads of the ROReportSpec trigger; with the trigger None it holds the
reads until the client asks with GET_REPORT.

Faults are switched per connection (``Fault(kind, after_reports, connection)``) so a test
can break the first connection and check that the client recovers on the next one, and
every connection keeps a :class:`ConnectionLog` of the reads it actually put on the wire:
that is the ground truth for "no report sent after reconnection is lost".

Start it in-process::

    async with LlrpSimulator(port=0, tag_source=random_tags(500, 1000)) as sim:
        url = f"llrp://127.0.0.1:{sim.port}"
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Self

import numpy as np

from tagsweep.domain import READ_DTYPE, ReadBatch, now_us
from tagsweep.logs import get_logger
from tagsweep.simulators.llrp import encoder as enc
from tagsweep.simulators.llrp.encoder import MessageType as M
from tagsweep.simulators.llrp.encoder import ParameterError, ReaderIdentity, ROSpecRequest, Status
from tagsweep.simulators.llrp.rospec import RunningSpec
from tagsweep.simulators.llrp.sources import TagSource, random_epcs, random_reads

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


class FaultKind(enum.StrEnum):
    """What can go wrong on a connection (each is injected once, at a chosen point)."""

    DROP = "drop"  # abort the TCP connection
    STALL = "stall"  # send half a report, then nothing at all
    GARBAGE = "garbage"  # an RO_ACCESS_REPORT whose body is random bytes
    NOISE = "noise"  # random bytes between messages (no LLRP header)
    ABSURD_LENGTH = "absurd_length"  # a header claiming a ~4 GiB message
    WRONG_LENGTH = "wrong_length"  # a short report whose header claims a plausible 1 MiB
    VENDOR = "vendor"  # an unknown vendor parameter inside every TagReportData of a report
    VENDOR_MALFORMED = "vendor_malformed"  # a truncated Impinj phase parameter (kills sllurp)
    MISSED_KEEPALIVES = "missed_keepalives"  # keepalives and reports stop, requests answered
    BURST = "burst"  # ``burst_reads`` extra reads as fast as the socket takes them
    CONFIG_ERROR = "config_error"  # GET_READER_CAPABILITIES answered with DeviceError
    BUSY = "busy"  # another client holds the reader: a failed ConnectionAttemptEvent, closed
    INTRUDER = "intruder"  # another client tried to connect: this one is told, reads go on


#: faults of the handshake; the others are injected in the report stream
_HANDSHAKE_FAULTS = (FaultKind.CONFIG_ERROR, FaultKind.BUSY)
_STREAM_FAULTS = tuple(k for k in FaultKind if k not in _HANDSHAKE_FAULTS)
#: ConnectionAttemptEvent status: Failed_A_Client_Initiated_Connection_Already_Exists
CONNECTION_ALREADY_EXISTS = 2
#: ConnectionAttemptEvent status sent to the client in session: Another_Connection_Attempted
ANOTHER_CONNECTION_ATTEMPTED = 4


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    #: inject just before this many RO_ACCESS_REPORTs have been sent on the connection
    after_reports: int = 2
    #: 0-based index of the connection (accept order) it applies to; None = every one
    connection: int | None = 0
    burst_reads: int = 20_000

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """``KIND[@AFTER_REPORTS][:CONNECTION|:all]``, e.g. ``drop@5``, ``stall@10:all``."""
        head, _, connection = spec.strip().partition(":")
        name, _, after = head.partition("@")
        try:
            kind = FaultKind(name.strip().lower())
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"unknown fault {name!r} in {spec!r}; known: {known}") from None
        try:
            after_reports = int(after) if after else 2
            index = None if connection == "all" else int(connection or 0)
        except ValueError:
            raise ValueError(
                f"fault {spec!r}: expected KIND[@AFTER_REPORTS][:CONNECTION|:all]"
            ) from None
        return cls(kind, after_reports, index)


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


#: Unknown vendor parameter (vendor 0xDEAD, subtype 7, 4 bytes) appended by VENDOR.
UNKNOWN_VENDOR_PARAM = enc.custom_param(0xDEAD, 7, b"\x01\x02\x03\x04")
#: Impinj RFPhaseAngle with its value missing, appended by VENDOR_MALFORMED.
MALFORMED_IMPINJ_PARAM = enc.custom_param(enc.VENDOR_IMPINJ, enc.IMPINJ_RF_PHASE_ANGLE)


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
    ) -> None:
        self.host = host
        self.port = port
        self.tag_source = tag_source
        self.faults = list(faults)
        self.identity = identity or ReaderIdentity()
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
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
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


class _Session:
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
        self.keepalive_ms = 0
        # ROReportTrigger None: reads wait here until the client sends GET_REPORT
        self.held: list[ReadBatch] = []
        # reproducible fault bytes, not security: S311 does not apply
        self.rng = random.Random(sim._seed + log.index)  # noqa: S311
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

    async def run(self) -> None:
        self.logger.info("llrp_client_connected")
        if self._fault_now(FaultKind.BUSY):
            # as a reader that already has a client: say so, then close the connection
            status = CONNECTION_ALREADY_EXISTS
            self.send(enc.reader_event_connection_attempt(self._msg_id(), now_us(), status))
            await self.writer.drain()
            self.logger.info("llrp_client_refused", reason="another client holds the reader")
            return
        self.send(enc.reader_event_connection_attempt(self._msg_id(), now_us()))
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

    def _fault_now(self, *kinds: FaultKind) -> Fault | None:
        for fault in self.pending_faults:
            due = fault.kind in _HANDSHAKE_FAULTS or self.log.reports >= fault.after_reports
            if fault.kind in kinds and due:
                self.pending_faults.remove(fault)
                self.log.faults.append(fault.kind)
                self.logger.info("llrp_fault_injected", fault=fault.kind.value)
                return fault
        return None

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
                self.send(enc.reader_capabilities(msg_id, self.sim.identity))
        elif msg_type == M.GET_READER_CONFIG:
            self.send(enc.reader_config(msg_id, self.sim.identity, self.keepalive_ms))
        elif msg_type == M.SET_READER_CONFIG:
            interval = enc.parse_keepalive_ms(body)
            if interval is not None:
                self.keepalive_ms = interval
                self._restart_keepalive()
            self.send(enc.status_response(M.SET_READER_CONFIG_RESPONSE, msg_id))
        elif msg_type == M.ENABLE_EVENTS_AND_REPORTS:
            pass  # no response defined
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
        elif msg_type in enc.RESPONSE_TO:  # AccessSpec requests: accepted, never used
            self.send(enc.status_response(enc.RESPONSE_TO[msg_type], msg_id))
        elif (
            msg_type == M.CUSTOM_MESSAGE
            and body[:5] == struct.pack(">IB", enc.VENDOR_IMPINJ, 21)
            and self.sim.identity.manufacturer == enc.VENDOR_IMPINJ
        ):  # IMPINJ_ENABLE_EXTENSIONS: only an Impinj reader knows it
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
                request = enc.parse_add_rospec(body)
            except ParameterError as exc:
                fail(str(exc), Status.PARAMETER_ERROR)
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
            self.send(enc.keepalive(self._msg_id()))
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
        """Encode the batch once, then cut it into reports of at most N reads (and at
        most the reader's own limit per message)."""
        per_report = min(report_n or self.sim.max_reads_per_report, self.sim.max_reads_per_report)
        selector = self._selector(spec)
        body, offsets = enc.tag_report_records(batch, selector=selector)
        for start in range(0, len(batch), per_report):
            if self.pending_faults:
                await self._inject_faults()
            if self.silent:  # stalled or hung: never send again
                await asyncio.Event().wait()
            stop = min(start + per_report, len(batch))
            reads = batch[start:stop]
            if self.extra:  # this report carries an injected parameter: encode it alone
                report = enc.ro_access_report(self._msg_id(), reads, self.extra, selector)
                self.extra = b""
            else:
                chunk = body[offsets[start] : offsets[stop]]
                report = enc.message(M.RO_ACCESS_REPORT, self._msg_id(), chunk)
            self.send(report)
            self.log.sent.append(reads.copy())
            self.log.reports += 1

    async def _inject_faults(self) -> None:
        fault = self._fault_now(*_STREAM_FAULTS)
        if fault is None:
            return
        kind = fault.kind
        if kind is FaultKind.DROP:
            self.writer.transport.abort()
            raise ConnectionResetError("fault injected: drop")
        if kind is FaultKind.STALL:
            sample = enc.ro_access_report(self._msg_id(), _one_read())
            self.send(sample[: len(sample) // 2])
            self.silent = self.stalled = True
        elif kind is FaultKind.MISSED_KEEPALIVES:
            self.silent = True
        elif kind is FaultKind.GARBAGE:
            body = self.rng.randbytes(self.rng.randint(16, 400))
            self.send(enc.message(M.RO_ACCESS_REPORT, self._msg_id(), body))
        elif kind is FaultKind.NOISE:
            # bytes ≥ 0x08 never start an LLRP 1 header, so noise cannot mimic a frame
            self.send(bytes(self.rng.randint(8, 255) for _ in range(self.rng.randint(1, 300))))
        elif kind is FaultKind.ABSURD_LENGTH:
            header = struct.pack(">HII", (1 << 10) | M.RO_ACCESS_REPORT, 0xFFFFFFF0, 7)
            self.send(header + bytes(16))
        elif kind is FaultKind.WRONG_LENGTH:
            report = enc.ro_access_report(self._msg_id(), _one_read())
            self.send(report[:2] + struct.pack(">I", 1 << 20) + report[6:])
        elif kind is FaultKind.VENDOR:
            self.extra = UNKNOWN_VENDOR_PARAM
        elif kind is FaultKind.VENDOR_MALFORMED:
            self.extra = MALFORMED_IMPINJ_PARAM
        elif kind is FaultKind.BURST:
            await self._burst(fault.burst_reads)
        elif kind is FaultKind.INTRUDER:
            status = ANOTHER_CONNECTION_ATTEMPTED
            self.send(enc.reader_event_connection_attempt(self._msg_id(), now_us(), status))
        elif kind is FaultKind.CONFIG_ERROR:
            pass  # injected when capabilities are requested

    async def _burst(self, total: int) -> None:
        rng = np.random.default_rng(self.log.index + 1000)
        epcs = random_epcs(max(1, min(total, 5000)), seed=self.log.index + 1000)
        spec = self._inventorying_spec()
        report_n = spec.report_n if spec is not None else 0
        per_report = min(report_n or self.sim.max_reads_per_report, self.sim.max_reads_per_report)
        sent = 0
        while sent < total:
            n = min(per_report, total - sent)
            reads = random_reads(epcs, n, rng, self._antennas())
            self.send(enc.ro_access_report(self._msg_id(), reads, selector=self._selector(spec)))
            self.log.sent.append(reads)
            self.log.observed += n
            self.log.reports += 1
            sent += n
            await self.writer.drain()

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


def _one_read() -> ReadBatch:
    rng = np.random.default_rng(0)
    return random_reads(random_epcs(1), 1, rng)


async def run_simulator(
    host: str, port: int, tag_source: TagSource, faults: Sequence[Fault] = ()
) -> None:
    """Serve until cancelled (the CLI's entry point)."""
    async with LlrpSimulator(host, port, tag_source=tag_source, faults=faults) as sim:
        with contextlib.suppress(asyncio.CancelledError):
            await sim.serve_forever()
