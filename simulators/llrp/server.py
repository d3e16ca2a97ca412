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

This module holds the server (:class:`LlrpSimulator`) and the per-connection log; one
connection's behaviour is :class:`~.session.ReaderSession` (requests) with
:class:`~.report_pump.ReportPump` (what the reader sends on its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import numpy as np

from tagsweep.domain import READ_DTYPE, ReadBatch
from tagsweep.logs import get_logger
from tagsweep.simulators.llrp.access import TagField
from tagsweep.simulators.llrp.encoder import ReaderIdentity, ROSpecRequest
from tagsweep.simulators.llrp.faults import Fault, FaultKind
from tagsweep.simulators.llrp.profiles import PROFILES, ReaderProfile
from tagsweep.simulators.llrp.session import ReaderSession
from tagsweep.simulators.llrp.sources import TagSource


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
        session = ReaderSession(self, reader, writer, log, faults)
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


async def run_simulator(
    host: str, port: int, tag_source: TagSource, faults: Sequence[Fault] = ()
) -> None:
    """Serve until cancelled (the CLI's entry point)."""
    async with LlrpSimulator(host, port, tag_source=tag_source, faults=faults) as sim:
        with contextlib.suppress(asyncio.CancelledError):
            await sim.serve_forever()
