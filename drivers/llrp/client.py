"""The reader thread: sllurp's reader client with our socket handling (TLS, one send
lock), our receive loop, framing and frame dispatch, and the fast report decoder (with
the ``decoder=sllurp`` and ``validate=1`` cross-checks). Everything it learns goes to
the event loop through the :class:`~tagsweep.drivers.llrp.bridge.Bridge`; no exception
ends the thread without saying why."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from typing import Any

import numpy as np
from sllurp.llrp import LLRPMessage, LLRPReaderClient
from sllurp.llrp import LLRPReaderState as SllurpState
from sllurp.llrp_errors import ReaderConfigurationError

from tagsweep.domain import ReadBatch
from tagsweep.drivers.llrp.bridge import Bridge, Signal
from tagsweep.drivers.llrp.frames import (
    HEADER_SIZE,
    KEEPALIVE,
    RO_ACCESS_REPORT,
    Frame,
    Framer,
    Problem,
)
from tagsweep.drivers.llrp.refusals import (
    ANOTHER_CONNECTION_ATTEMPTED,
    attempt_status,
    refusal,
    refusal_status,
)
from tagsweep.drivers.llrp.reports import ReportDecoder
from tagsweep.drivers.llrp.session import ReaderSession
from tagsweep.drivers.llrp.settings import LlrpSettings, verify_fingerprint
from tagsweep.drivers.llrp.sllurp_reads import reads_from_sllurp, same_reads

_CLOSE_CONNECTION_RESPONSE = 4
_DELETE_ROSPEC_RESPONSE = 31
_SHUTDOWN_RESPONSES = frozenset({_DELETE_ROSPEC_RESPONSE, 33, 35, _CLOSE_CONNECTION_RESPONSE})


class ReaderClient(LLRPReaderClient):  # type: ignore[misc]  # sllurp ships no type information
    """sllurp's reader client with our receive loop, framing and report decoder."""

    _socket: socket.socket | None  # set by sllurp's connect()

    def __init__(self, settings: LlrpSettings, bridge: Bridge, reader_id: int) -> None:
        timeout = min(5.0, settings.connect_timeout_s)
        super().__init__(settings.host, settings.port, settings.sllurp_config(), timeout=timeout)
        self.settings = settings
        self.bridge = bridge
        self.llrp = ReaderSession(
            settings,
            transport_tx_write=self.send_data,
            state_change_callback=self._on_llrp_state_changed,
        )
        self.framer = Framer(settings.max_report_bytes)
        self.decoder = ReportDecoder(reader_id, round(settings.max_clock_skew_s * 1e6))
        self.reader_id = reader_id
        self.closing = threading.Event()
        self.close_acknowledged = threading.Event()
        self.last_refusal = ""  # the reader's own words on the last request it refused
        self._send_lock = threading.Lock()
        self.add_state_callback(SllurpState.STATE_INVENTORYING, self._on_inventorying)

    def _on_inventorying(self, _client: Any, _state: Any) -> None:
        if self.llrp.power_choice:
            self.bridge.post(Signal("power", self.llrp.power_choice))
        if self.llrp.frequency_choice:
            self.bridge.post(Signal("frequency", self.llrp.frequency_choice))
        self.bridge.post(Signal("inventorying"))

    def _connect_socket(self) -> bool:
        connected = bool(super()._connect_socket())
        if not self.settings.tls:
            return connected
        settings = self.settings
        plain = self._socket
        if plain is None:
            return connected
        try:
            sock = settings.tls_context().wrap_socket(plain, server_hostname=settings.host)
        except (ssl.SSLError, OSError) as exc:
            self._socket = None
            plain.close()
            raise OSError(
                f"TLS handshake with {settings.host}:{settings.port} failed: {exc}"
            ) from exc
        try:
            verify_fingerprint(sock, settings)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        return connected

    def send_data(self, data: bytes) -> None:
        sock = self._socket
        if sock is None:
            raise ReaderConfigurationError("Not connected")
        with self._send_lock:  # the event loop (shutdown) and this thread both send
            sock.sendall(data)

    def send_message(self, msgdict: dict[str, Any]) -> None:
        self.send_data(LLRPMessage(msgdict=msgdict).msgbytes)

    def main_loop(self) -> None:
        """Receive until the socket ends or we are stopped; always report why we ended."""
        reason = "reader thread ended"
        try:
            sock = self._socket
            while sock is not None and not self._stop_main_loop.is_set():
                # TLS: decrypted bytes may wait in the SSL layer, which select cannot see
                pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
                readable = pending or select.select([sock], [], [], 0.2)[0]
                if not readable:
                    continue
                if isinstance(sock, ssl.SSLSocket):
                    with self._send_lock:  # one SSL object: no read during a write
                        data = sock.recv(1 << 16)
                else:
                    data = sock.recv(1 << 16)
                if not data:
                    reason = "reader closed the connection"
                    break
                self.raw_data_received(data)
                self.bridge.wait_for_space(self._stop_main_loop)
        except (OSError, ValueError) as exc:
            reason = f"connection lost: {exc}"
        except ReaderConfigurationError as exc:
            reason = f"reader rejected the configuration: {exc}"
            if self.last_refusal:
                reason += f"; the reader answered {self.last_refusal}"
            if "Impinj" in str(exc):
                reason += " (impinj=1 asks for Impinj extensions: is the reader an Impinj?)"
        except Exception as exc:  # the backstop sllurp lacks: report, never die silently
            reason = f"reader thread failed: {exc!r}"
        finally:
            self.bridge.post(Signal("lost", reason))

    def raw_data_received(self, data: bytes) -> None:
        framer = self.framer
        frames = framer.feed(data)
        for problem in framer.problems:
            self.bridge.post(Signal("problem", problem=problem))
        framer.problems.clear()
        batches: list[ReadBatch] = []
        reports: list[Frame] = []  # consecutive reports, decoded together
        for frame in frames:
            if frame.msg_type == RO_ACCESS_REPORT:
                reports.append(frame)
                continue
            if reports:
                self._reports(reports, batches)
                reports = []
            self._guarded(frame, batches)
        if reports:
            self._reports(reports, batches)
        if batches:
            self.bridge.post(batches[0] if len(batches) == 1 else np.concatenate(batches))

    def _guarded(self, frame: Frame, batches: list[ReadBatch]) -> None:
        try:
            self._dispatch(frame, batches)
        except ReaderConfigurationError:
            raise
        except Exception as exc:  # one bad frame costs that frame, not the thread
            self.bridge.post(
                Signal(
                    "problem",
                    problem=Problem(
                        "decode",
                        f"message type {frame.msg_type} id {frame.msg_id} at stream "
                        f"offset {frame.offset}: {exc!r}",
                    ),
                )
            )

    def _reports(self, frames: list[Frame], batches: list[ReadBatch]) -> None:
        """Decode a run of reports as one body when they share a layout (amortises the
        fixed per-report cost); any problem sends them back one by one for precise
        accounting, so a damaged report never costs its neighbours."""
        if len(frames) > 1 and self.settings.decoder == "fast" and not self.settings.validate:
            body = b"".join([frame.data[HEADER_SIZE:] for frame in frames])
            try:
                batch, problems = self.decoder.decode(body)
            except Exception:  # re-decoded one by one below, with the error attributed
                problems = [Problem("decode", "joined decode failed")]
            if not problems:
                batches.append(batch)
                return
        for frame in frames:
            self._guarded(frame, batches)

    def _dispatch(self, frame: Frame, batches: list[ReadBatch]) -> None:
        if frame.msg_type == RO_ACCESS_REPORT:
            self._report(frame, batches)
        elif frame.msg_type == KEEPALIVE:
            self.send_message({"KEEPALIVE_ACK": {"ID": frame.msg_id}})
            self.bridge.post(Signal("keepalive"))
        elif frame.msg_type == _DELETE_ROSPEC_RESPONSE and (
            self.llrp.state == SllurpState.STATE_SENT_DELETE_ROSPEC
        ):
            # our clean-slate delete on connect: "no such ROSpec" is the usual answer
            self.llrp.processDeferreds("DELETE_ROSPEC_RESPONSE", True)
        elif self.closing.is_set() and frame.msg_type in _SHUTDOWN_RESPONSES:
            if frame.msg_type == _CLOSE_CONNECTION_RESPONSE:
                self.close_acknowledged.set()
        else:
            message = LLRPMessage(msgbytes=frame.data)
            why = refusal(message)
            if why:
                # sllurp only logs this and waits for ever: end the session, say why
                self.bridge.post(Signal("lost", f"the reader refused the session: {why}"))
                self._stop_main_loop.set()
                return
            if attempt_status(message) == ANOTHER_CONNECTION_ATTEMPTED:
                self.bridge.post(Signal("knock"))
                return  # news for the log, nothing for the session to do
            self.last_refusal = refusal_status(message) or self.last_refusal
            self._on_llrp_message_received(message)
            self.llrp.handleMessage(message)

    def _report(self, frame: Frame, batches: list[ReadBatch]) -> None:
        body = frame.data[HEADER_SIZE:]
        if self.settings.decoder == "sllurp":
            tags = LLRPMessage(msgbytes=frame.data).msgdict["RO_ACCESS_REPORT"]["TagReportData"]
            decoder = self.decoder
            batch = reads_from_sllurp(tags, self.reader_id, decoder.uptime, decoder.utc)
            problems = list[Problem]()
        else:
            batch, problems = self.decoder.decode(body)
        where = f"RO_ACCESS_REPORT id {frame.msg_id} at stream offset {frame.offset}"
        for problem in problems:
            detail = f"{where}: {problem.detail}"
            self.bridge.post(
                Signal("problem", problem=Problem(problem.kind, detail, problem.count))
            )
        if self.settings.validate:
            self._validate(frame, batch, where)
        if len(batch):
            batches.append(batch)

    def _validate(self, frame: Frame, batch: ReadBatch, where: str) -> None:
        try:
            message = LLRPMessage(msgbytes=frame.data)
            tags = message.msgdict["RO_ACCESS_REPORT"]["TagReportData"]
            decoder = self.decoder
            reference = reads_from_sllurp(tags, self.reader_id, decoder.uptime, decoder.utc)
        except Exception as exc:
            problem = Problem("sllurp_decode_failed", f"{where}: sllurp cannot decode: {exc!r}")
        else:
            if same_reads(batch, reference):
                return
            problem = Problem(
                "validation_mismatch",
                f"{where}: fast decoder gave {len(batch)} reads, sllurp {len(reference)}",
            )
        self.bridge.post(Signal("problem", problem=problem))

    def stop(self) -> None:
        """Stop the receive loop and close the socket (safe from any thread, repeatable)."""
        self._stop_main_loop.set()
        sock: socket.socket | None = self._socket
        self._socket = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
