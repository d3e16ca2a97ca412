"""Fault injection for the simulated LLRP reader: what can go wrong on a connection,
injected once at a chosen point (``Fault(kind, after_reports, connection)``), so a test
can break the first connection and check that the client recovers on the next one."""

from __future__ import annotations

import asyncio
import enum
import random
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tagsweep.domain import ReadBatch, now_us
from tagsweep.simulators.llrp import encoder as enc
from tagsweep.simulators.llrp.encoder import MessageType as M
from tagsweep.simulators.llrp.sources import random_epcs, random_reads

if TYPE_CHECKING:
    from tagsweep.simulators.llrp.profiles import ReaderProfile
    from tagsweep.simulators.llrp.rospec import RunningSpec
    from tagsweep.simulators.llrp.server import ConnectionLog, LlrpSimulator


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


#: Unknown vendor parameter (vendor 0xDEAD, subtype 7, 4 bytes) appended by VENDOR.
UNKNOWN_VENDOR_PARAM = enc.custom_param(0xDEAD, 7, b"\x01\x02\x03\x04")
#: Impinj RFPhaseAngle with its value missing, appended by VENDOR_MALFORMED.
MALFORMED_IMPINJ_PARAM = enc.custom_param(enc.VENDOR_IMPINJ, enc.IMPINJ_RF_PHASE_ANGLE)


class FaultyReader:
    """The fault-injecting half of a connection (the session class mixes it in)."""

    sim: LlrpSimulator
    log: ConnectionLog
    logger: Any
    writer: asyncio.StreamWriter
    rng: random.Random
    pending_faults: list[Fault]
    profile: ReaderProfile
    silent: bool
    stalled: bool
    extra: bytes

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def emit(self, data: bytes) -> None:
        raise NotImplementedError

    def _msg_id(self) -> int:
        raise NotImplementedError

    def _selector(self, spec: RunningSpec | None) -> enc.ContentSelector:
        raise NotImplementedError

    def _antennas(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _inventorying_spec(self) -> RunningSpec | None:
        raise NotImplementedError

    def _fault_now(self, *kinds: FaultKind) -> Fault | None:
        for fault in self.pending_faults:
            due = fault.kind in _HANDSHAKE_FAULTS or self.log.reports >= fault.after_reports
            if fault.kind in kinds and due:
                self.pending_faults.remove(fault)
                self.log.faults.append(fault.kind)
                self.logger.info("llrp_fault_injected", fault=fault.kind.value)
                return fault
        return None

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
            self.emit(enc.reader_event_connection_attempt(self._msg_id(), now_us(), status))
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
            selector = self._selector(spec)
            tag_extra = self.profile.tag_extra
            self.emit(enc.ro_access_report(self._msg_id(), reads, tag_extra, selector))
            self.log.sent.append(reads)
            self.log.observed += n
            self.log.reports += 1
            sent += n
            await self.writer.drain()


def _one_read() -> ReadBatch:
    rng = np.random.default_rng(0)
    return random_reads(random_epcs(1), 1, rng)
