"""UHF RFID readers over LLRP: sllurp, supervised, bridged into asyncio.

``llrp://host[:5084]?antennas=1,2&keepalive_s=5&watchdog_intervals=3&tx_power=30``
``llrps://host[:5085]?tls_fingerprint=SHA256`` (LLRP over TLS 1.2+; the reader's
certificate pinned by its SHA-256 fingerprint, or ``tls_ca=/path/ca.pem`` to verify it
against a CA file; one of the two is required)

sllurp runs the LLRP session (capabilities, configuration, ROSpec) on its own thread.
What it lacks for a gateway that must never silently stop reading is added here:

* **framing we control** (:mod:`tagsweep.drivers.llrp_wire`): sllurp's reader thread
  calls our ``raw_data_received``; frames are length-bounded and resynchronised, so one
  bad frame costs that frame and nothing after it. RO_ACCESS_REPORTs go through our
  numpy decoder (tens of times faster than sllurp's per-tag dicts, see
  ``benchmarks/bench_llrp.py``; validated against sllurp on every report in the tests and
  live with ``validate=1``); all other messages are decoded by sllurp
  and drive its state machine. Any exception while handling one frame is counted and
  logged; it never reaches the thread's loop, which sllurp would silently end.
* **a keepalive watchdog**: the reader is configured to send KEEPALIVE every
  ``keepalive_s``; one silent interval (no keepalive, no report) marks the reader
  DEGRADED, ``watchdog_intervals`` of them raise :class:`DriverError` and the base class
  reconnects with capped, jittered backoff.
* **thread supervision**: a dead reader thread or a lost socket is a DriverError too.
* **one bridge into asyncio**: the thread queues decoded batches and wakes the event
  loop with ``loop.call_soon_threadsafe`` (at most one wake-up in flight); when the
  consumer falls behind by ``max_pending_reads`` the thread stops reading the socket,
  so TCP flow control pushes back on the reader instead of memory growing.
* **clean shutdown**: STOP_ROSPEC, DELETE_ROSPEC and CLOSE_CONNECTION, wait briefly for
  the CLOSE_CONNECTION_RESPONSE, close the socket, join the thread.
* **a continuous ROSpec**: no AISpec stop trigger (sllurp's ``report_every_n_tags``
  stops and restarts inventory per report); reports are cut by the ROReportSpec
  trigger "upon N tags" instead. On connect only our own ROSpec id is deleted, never
  the ROSpecs of other clients.

Options (URL query, or the ``options`` mapping from the configuration; the URL wins):
``antennas``, ``keepalive_s``, ``watchdog_intervals``, ``tx_power`` (dBm; default the
reader's maximum), ``report_n`` (reads per report), ``session``, ``tag_population``,
``mode_identifier``, ``search_mode`` (Impinj target: 1 single, 2 dual, 3 single with
suppression), ``impinj`` (request Impinj phase/RSSI/Doppler), ``rospec_id``,
``connect_timeout_s``, ``max_report_bytes``, ``report_interval_s`` (GET_REPORT this
often, so reads wait at most that long for N to fill; default 1), ``max_clock_skew_s``
(a reader whose UTC clock is further off re-anchors its stamps to the receive time, per
connection; default 5), ``validate`` (cross-check every report with
sllurp) and ``decoder`` (``fast`` or ``sllurp``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import select
import socket
import ssl
import struct
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import numpy as np
from sllurp.llrp import LLRPClient, LLRPMessage, LLRPReaderClient, LLRPReaderConfig
from sllurp.llrp import LLRPReaderState as SllurpState
from sllurp.llrp_errors import ReaderConfigurationError
from sllurp.llrp_proto import ConnEvent_Name2Type, ConnEvent_Type2Name

from tagsweep.domain import ReadBatch
from tagsweep.drivers.base import Driver, DriverConfigError, DriverError, DriverEvent, DriverState
from tagsweep.drivers.llrp_wire import (
    HEADER_SIZE,
    KEEPALIVE,
    RO_ACCESS_REPORT,
    Frame,
    Framer,
    Problem,
    ReportDecoder,
    reads_from_sllurp,
    same_reads,
)

DEFAULT_PORT = 5084
DEFAULT_TLS_PORT = 5085  # LLRP 1.1 section 18.1: LLRP over TLS
_CLOSE_CONNECTION_RESPONSE = 4
_DELETE_ROSPEC_RESPONSE = 31
_SHUTDOWN_RESPONSES = frozenset({_DELETE_ROSPEC_RESPONSE, 33, 35, _CLOSE_CONNECTION_RESPONSE})
_LOGGED_PER_KIND = 20  # log at most this many problems of one kind per connection
#: Why a reader refuses a session: ConnectionAttemptEvent status (LLRP 1.0.1 13.2.6.11)
#: → what it means. Status 4 ("another connection attempted") is not a refusal: it tells
#: the client in session that somebody else tried to connect.
_REFUSALS: Final[dict[int, str]] = {
    1: "the reader already has a connection it opened itself (reader-initiated mode)",
    2: (
        "another client is connected to the reader (an LLRP reader takes one client: "
        "close the other one, e.g. the vendor's test tool)"
    ),
    3: "the reader could not open a session",
}
_ANOTHER_CONNECTION_ATTEMPTED: Final = 4
#: GET_REPORT (LLRP 1.0.1 16.1.26; sllurp cannot encode it): header only, own id
_GET_REPORT: Final = struct.pack(">HII", (1 << 10) | 60, HEADER_SIZE, 0x7FFFFF00)


@dataclass(frozen=True, slots=True)
class LlrpSettings:
    """Validated driver options."""

    host: str
    port: int
    antennas: tuple[int, ...] = (1,)
    keepalive_s: float = 5.0
    watchdog_intervals: int = 3
    tx_power_dbm: float | None = None
    report_n: int = 100
    session: int = 2
    tag_population: int = 4
    mode_identifier: int | None = None
    search_mode: int | None = None  # Impinj InventorySearchMode (1 single, 2 dual target…)
    impinj: bool = False
    rospec_id: int = 1
    connect_timeout_s: float = 10.0
    max_report_bytes: int = 8 << 20
    max_pending_reads: int = 500_000
    validate: bool = False
    decoder: str = "fast"
    #: a reader's UTC stamps further than this from the receive time are re-anchored
    max_clock_skew_s: float = 5.0
    #: ask for unreported reads (GET_REPORT) this often: bounds how late a read arrives
    report_interval_s: float = 1.0
    tls: bool = False
    tls_fingerprint: str = ""  # SHA-256 of the reader's certificate, hex
    tls_ca: str = ""  # or: verify the reader's certificate against this CA file

    _KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "antennas", "keepalive_s", "watchdog_intervals", "tx_power", "tx_power_dbm",
            "report_n", "session", "tag_population", "mode_identifier", "search_mode", "impinj",
            "rospec_id", "connect_timeout_s", "max_report_bytes", "max_pending_reads",
            "validate", "decoder", "max_clock_skew_s", "report_interval_s", "tls_fingerprint",
            "tls_ca",
        }
    )  # fmt: skip

    @classmethod
    def parse(cls, driver: Driver) -> LlrpSettings:
        url = driver.url
        raw: dict[str, Any] = {k: v for k, v in driver.options.items() if v is not None}
        raw.update(url.query)
        unknown = sorted(set(raw) - cls._KEYS)
        if unknown:
            raise DriverConfigError(
                f"{url.raw}: unknown LLRP option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(cls._KEYS))}"
            )
        if not url.host:
            raise DriverConfigError(f"{url.raw}: no reader host (llrp://host[:port])")

        def number(key: str, kind: type[int] | type[float], lo: float, hi: float) -> Any:
            value = raw[key]
            try:
                parsed = kind(value)
            except (TypeError, ValueError):
                raise DriverConfigError(
                    f"{url.raw}: option {key}={value!r} is not {kind.__name__}"
                ) from None
            if not lo <= parsed <= hi:
                raise DriverConfigError(
                    f"{url.raw}: option {key}={value!r} must be between {lo} and {hi}"
                )
            return parsed

        def flag(key: str) -> bool:
            value = str(raw[key]).lower()
            if value not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise DriverConfigError(f"{url.raw}: option {key}={raw[key]!r} is not a boolean")
            return value in {"1", "true", "yes", "on"}

        kwargs: dict[str, Any] = {}
        if "antennas" in raw:
            value = raw["antennas"]
            items = value if isinstance(value, list | tuple) else str(value).split(",")
            try:
                antennas = tuple(int(a) for a in items if str(a).strip())
            except ValueError:
                raise DriverConfigError(
                    f"{url.raw}: option antennas={value!r} must be comma-separated integers"
                ) from None
            if not antennas or not all(1 <= a <= 65535 for a in antennas):
                raise DriverConfigError(f"{url.raw}: antennas must be LLRP ids 1..65535")
            kwargs["antennas"] = antennas
        for key, kind, lo, hi in (
            ("keepalive_s", float, 0.01, 600),
            ("watchdog_intervals", int, 1, 100),
            ("report_n", int, 1, 65535),
            ("session", int, 0, 3),
            ("tag_population", int, 1, 65535),
            ("mode_identifier", int, 0, 2**32 - 1),
            ("search_mode", int, 0, 6),
            ("rospec_id", int, 1, 2**32 - 1),
            ("connect_timeout_s", float, 0.1, 300),
            ("max_report_bytes", int, 1024, 1 << 30),
            ("max_pending_reads", int, 1000, 1 << 26),
            ("max_clock_skew_s", float, 0.5, 10 * 365 * 86400),
            ("report_interval_s", float, 0.05, 3600),
        ):
            if key in raw:
                kwargs[key] = number(key, kind, lo, hi)
        for key in ("tx_power", "tx_power_dbm"):
            if key in raw:
                kwargs["tx_power_dbm"] = number(key, float, 0, 40)
        for key in ("impinj", "validate"):
            if key in raw:
                kwargs[key] = flag(key)
        tls = url.scheme == "llrps"
        if tls:
            kwargs["tls"] = True
            fingerprint = str(raw.get("tls_fingerprint", "")).replace(":", "").lower()
            if fingerprint and (
                len(fingerprint) != 64 or set(fingerprint) - set("0123456789abcdef")
            ):
                raise DriverConfigError(
                    f"{url.raw}: tls_fingerprint must be the certificate's SHA-256 "
                    "(64 hex digits, colons allowed)"
                )
            kwargs["tls_fingerprint"] = fingerprint
            kwargs["tls_ca"] = str(raw.get("tls_ca", ""))
            if not fingerprint and not kwargs["tls_ca"]:
                raise DriverConfigError(
                    f"{url.raw}: llrps:// needs tls_fingerprint=SHA256 (pin the reader's "
                    "self-signed certificate) or tls_ca=FILE; an unverified reader is refused"
                )
        elif "tls_fingerprint" in raw or "tls_ca" in raw:
            raise DriverConfigError(f"{url.raw}: tls_fingerprint/tls_ca need llrps://")
        if "decoder" in raw:
            if raw["decoder"] not in ("fast", "sllurp"):
                raise DriverConfigError(f"{url.raw}: decoder must be 'fast' or 'sllurp'")
            kwargs["decoder"] = raw["decoder"]
        return cls(url.host, url.port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT), **kwargs)

    def tls_context(self) -> ssl.SSLContext:
        """TLS 1.2 or later; the CA file verifies the chain and the host name, a pinned
        fingerprint replaces both (readers ship self-signed certificates)."""
        context = ssl.create_default_context(cafile=self.tls_ca or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not self.tls_ca:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the fingerprint check below decides
        return context

    def sllurp_config(self) -> LLRPReaderConfig:
        config: dict[str, Any] = {
            "antennas": list(self.antennas),
            "tx_power": 0,  # index 0 = the reader's maximum, unless tx_power_dbm is set
            "keepalive_interval": max(1, round(self.keepalive_s * 1000)),
            "report_every_n_tags": None,
            "session": self.session,
            "tag_population": self.tag_population,
            "mode_identifier": self.mode_identifier,
            "reset_on_connect": True,
            "start_inventory": True,
            "reconnect": False,
            "tag_content_selector": {
                "EnableROSpecID": False,
                "EnableSpecIndex": False,
                "EnableInventoryParameterSpecID": False,
                "EnableAntennaID": True,
                "EnableChannelIndex": False,
                "EnablePeakRSSI": True,
                "EnableFirstSeenTimestamp": True,
                "EnableLastSeenTimestamp": True,
                "EnableTagSeenCount": True,
                "EnableAccessSpecID": False,
            },
        }
        if self.tx_power_dbm is not None:
            config["tx_power_dbm"] = float(self.tx_power_dbm)
        if self.search_mode is not None:
            config["impinj_search_mode"] = self.search_mode
        if self.impinj:
            config["impinj_tag_content_selector"] = {
                "EnableRFPhaseAngle": True,
                "EnablePeakRSSI": True,
                "EnableRFDopplerFrequency": True,
            }
        return LLRPReaderConfig(config)


# -- the thread side -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Signal:
    """A non-read event from the reader thread."""

    kind: str  # keepalive | problem | lost | inventorying | knock | power | frequency
    detail: str = ""
    problem: Problem | None = None


_Item = ReadBatch | _Signal


class _Bridge:
    """Thread → event loop hand-over: a locked deque plus one call_soon_threadsafe wake-up."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_pending_reads: int) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: deque[_Item] = deque()
        self._wake_pending = False
        self._pending_reads = 0
        self._max_pending_reads = max_pending_reads
        self._space = threading.Event()
        self._space.set()
        self.ready = asyncio.Event()

    def post(self, item: _Item) -> None:
        """Thread side: queue ``item`` and wake the loop unless a wake-up is on its way."""
        with self._lock:
            self._items.append(item)
            if not isinstance(item, _Signal):
                self._pending_reads += len(item)
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            # RuntimeError: the loop is closed, nobody is listening any more
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake)

    def wait_for_space(self, stop: threading.Event) -> None:
        """Thread side: block (not reading the socket) while the consumer is behind."""
        while not stop.is_set():
            with self._lock:
                if self._pending_reads <= self._max_pending_reads:
                    return
                self._space.clear()
            self._space.wait(0.1)

    def _wake(self) -> None:
        with self._lock:
            self._wake_pending = False
        self.ready.set()

    def has_items(self) -> bool:
        with self._lock:
            return bool(self._items)

    def take(self) -> list[_Item]:
        """Loop side: everything queued so far (reads stay counted until released)."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    def release(self, reads: int) -> None:
        """Loop side: ``reads`` reached the consumer; the thread may read on."""
        with self._lock:
            self._pending_reads -= reads
            if self._pending_reads <= self._max_pending_reads:
                self._space.set()

    @property
    def pending_reads(self) -> int:
        """Reads decoded but not yet handed to the consumer."""
        return self._pending_reads


class _Session(LLRPClient):  # type: ignore[misc]  # sllurp ships no type information
    """sllurp's session state machine with our ROSpec and our ROSpec housekeeping."""

    def __init__(self, settings: LlrpSettings, **kwargs: Any) -> None:
        super().__init__(settings.sllurp_config(), **kwargs)
        self.settings = settings
        self.power_table: list[tuple[int, float]] = []  # (index, dBm) as the reader says
        self.power_choice = ""  # what tx_power_dbm became, for the log
        self.frequency_choice = ""  # the hop table or fixed channel used, for the log

    def parseCapabilities(self, capdict: dict[str, Any]) -> None:  # noqa: N802  (sllurp's name)
        band = capdict.get("RegulatoryCapabilities", {}).get("UHFBandCapabilities", {})
        entries = band.get("TransmitPowerLevelTableEntry", [])
        entries = [entries] if isinstance(entries, dict) else entries
        self.power_table = sorted(
            (int(e["Index"]), int(e["TransmitPowerValue"]) / 100.0) for e in entries
        )
        self._choose_frequencies(band.get("FrequencyInformation", {}))
        super().parseCapabilities(capdict)

    def _choose_frequencies(self, info: dict[str, Any]) -> None:
        """RFTransmitter's HopTableID / ChannelIndex from the reader's own frequency
        information: a hopping (FCC) reader's first hop table, a fixed-frequency (ETSI)
        reader's first channel; sllurp would always send hop table 1, channel 1."""
        tables = info.get("FrequencyHopTable") or []
        tables = [tables] if isinstance(tables, dict) else tables
        frequencies = self.config.frequencies
        if info.get("Hopping") and tables:
            table = tables[0]
            frequencies["HopTableId"] = int(table["HopTableId"])
            frequencies["ChannelList"] = [1]
            khz = table.get("Frequency") or []
            self.frequency_choice = (
                f"hopping over table {table['HopTableId']} ({len(khz)} channels"
                + (f", {min(khz) / 1000:.2f}-{max(khz) / 1000:.2f} MHz)" if khz else ")")
            )
        elif info.get("FixedFrequencyTable"):
            fixed = info["FixedFrequencyTable"]
            khz = fixed.get("Frequency") or []
            frequencies["HopTableId"] = 0
            frequencies["ChannelList"] = [1]
            first = f" ({khz[0] / 1000:.2f} MHz)" if khz else ""
            self.frequency_choice = (
                f"fixed channel 1{first} of {len(khz)} (the reader does not hop)"
            )

    def setTxPowerDbm(self, tx_pow_dbm: Any = None) -> None:  # noqa: N802  (sllurp's name)
        """tx_power_dbm through the reader's own power table: the nearest entry, whatever
        index the table starts at (sllurp assumes 1 and a sorted table; a Zebra FX's
        starts at 0, and sllurp's index 0 means "maximum")."""
        if not self.power_table or not isinstance(tx_pow_dbm, dict):
            super().setTxPowerDbm(tx_pow_dbm)
            return
        choices = []
        for antenna, wanted in tx_pow_dbm.items():
            index, dbm = min(self.power_table, key=lambda e: (abs(e[1] - float(wanted)), e[0]))
            self.config.tx_power[antenna] = index
            choices.append(f"antenna {antenna}: {wanted} dBm → index {index} ({dbm:.2f} dBm)")
        low, high = self.power_table[0], self.power_table[-1]
        self.power_choice = "; ".join(choices) + (
            f" (reader's table: {len(self.power_table)} entries, index {low[0]} = "
            f"{low[1]:.2f} dBm … index {high[0]} = {high[1]:.2f} dBm)"
        )

    def getROSpec(self, force_new: bool = False) -> Any:  # noqa: N802  (sllurp's name)
        if self.rospec and not force_new:
            return self.rospec
        rospec = super().getROSpec(force_new)
        rospec["ROSpecID"] = self.settings.rospec_id
        # Continuous inventory: reports cut every N tags, inventory never stops for them.
        rospec["ROReportSpec"]["ROReportTrigger"] = "Upon_N_Tags_Or_End_Of_ROSpec"
        rospec["ROReportSpec"]["N"] = self.settings.report_n
        return rospec

    # N802/N803 below: overrides must keep sllurp's camelCase method and argument names
    def stopPolitely(self, onCompletion: Any = None, disconnect: bool = False) -> None:  # noqa: N802,N803
        """Delete only our own ROSpec (sllurp deletes every client's ROSpecs)."""
        if disconnect:
            self.disconnecting = True
        self.stopAllROSpecs(onCompletion)

    def stopAllROSpecs(self, onCompletion: Any = None) -> None:  # noqa: N802,N803  (as above)
        self.sendMessage({"DELETE_ROSPEC": {"ROSpecID": self.settings.rospec_id}})
        self.setState(SllurpState.STATE_SENT_DELETE_ROSPEC)

        def deleted(state: Any, _is_success: bool, *args: Any) -> None:
            # "no such ROSpec" is the normal answer on a fresh reader: carry on
            if onCompletion:
                onCompletion(state, True, *args)

        self._deferreds["DELETE_ROSPEC_RESPONSE"].append(deleted)


class _ReaderClient(LLRPReaderClient):  # type: ignore[misc]  # sllurp ships no type information
    """sllurp's reader client with our receive loop, framing and report decoder."""

    _socket: socket.socket | None  # set by sllurp's connect()

    def __init__(self, settings: LlrpSettings, bridge: _Bridge, reader_id: int) -> None:
        timeout = min(5.0, settings.connect_timeout_s)
        super().__init__(settings.host, settings.port, settings.sllurp_config(), timeout=timeout)
        self.settings = settings
        self.bridge = bridge
        self.llrp = _Session(
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
            self.bridge.post(_Signal("power", self.llrp.power_choice))
        if self.llrp.frequency_choice:
            self.bridge.post(_Signal("frequency", self.llrp.frequency_choice))
        self.bridge.post(_Signal("inventorying"))

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
            self.bridge.post(_Signal("lost", reason))

    def raw_data_received(self, data: bytes) -> None:
        framer = self.framer
        frames = framer.feed(data)
        for problem in framer.problems:
            self.bridge.post(_Signal("problem", problem=problem))
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
                _Signal(
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
            self.bridge.post(_Signal("keepalive"))
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
            refusal = _refusal(message)
            if refusal:
                # sllurp only logs this and waits for ever: end the session, say why
                self.bridge.post(_Signal("lost", f"the reader refused the session: {refusal}"))
                self._stop_main_loop.set()
                return
            if _attempt_status(message) == _ANOTHER_CONNECTION_ATTEMPTED:
                self.bridge.post(_Signal("knock"))
                return  # news for the log, nothing for the session to do
            self.last_refusal = _refusal_status(message) or self.last_refusal
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
                _Signal("problem", problem=Problem(problem.kind, detail, problem.count))
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
        self.bridge.post(_Signal("problem", problem=problem))

    def stop(self) -> None:
        """Stop the receive loop and close the socket (safe from any thread, repeatable)."""
        self._stop_main_loop.set()
        sock: socket.socket | None = self._socket
        self._socket = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


# -- the driver ----------------------------------------------------------------------------
_DECODE_KINDS = frozenset({"framing", "decode", "malformed_record", "malformed_parameter"})


class LlrpDriver(Driver):
    """A UHF RFID reader over LLRP; yields READ_DTYPE batches (see the module docstring)."""

    schemes: ClassVar[tuple[str, ...]] = ("llrp", "llrps")
    kind: ClassVar[str] = "rfid"

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.settings = LlrpSettings.parse(self)
        self._client: _ReaderClient | None = None
        self._bridge: _Bridge | None = None
        self._early: list[_Item] = []
        self._logged: dict[str, int] = {}

    @property
    def backlog_reads(self) -> int:
        """Reads received from the reader but not yet consumed (a metric, and the bound
        ``max_pending_reads`` that makes the reader thread stop reading the socket)."""
        return self._bridge.pending_reads if self._bridge is not None else 0

    async def _connect(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        bridge = _Bridge(loop, settings.max_pending_reads)
        client = _ReaderClient(settings, bridge, self.reader_id)
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
                if isinstance(item, _Signal) and item.kind == "inventorying":
                    self.log.info("llrp_inventorying", rospec_id=settings.rospec_id)
                    self._early.extend(items[index + 1 :])
                    return
                if isinstance(item, _Signal) and item.kind == "lost":
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
        pending: list[_Item] = self._early
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
                if isinstance(item, _Signal):
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

    def _ask_for_reports(self, client: _ReaderClient) -> None:
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

    def _on_signal(self, signal: _Signal) -> None:
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
                if not isinstance(item, _Signal):
                    self.log.info("llrp_reads_after_close", reads=len(item))

    async def _close_politely(self, client: _ReaderClient) -> None:
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


def verify_fingerprint(sock: ssl.SSLSocket, settings: LlrpSettings) -> None:
    """Raise OSError unless the reader's certificate is the pinned one (when pinned)."""
    if not settings.tls_fingerprint:
        return
    seen = hashlib.sha256(sock.getpeercert(binary_form=True) or b"").hexdigest()
    if seen != settings.tls_fingerprint:
        raise OSError(
            f"the reader's certificate has SHA-256 {seen}, not the pinned "
            f"{settings.tls_fingerprint}: refusing the connection"
        )


def _refusal_status(message: LLRPMessage) -> str:
    """``ADD_ROSPEC_RESPONSE: M_ParameterError 'why'`` for a response whose LLRPStatus is
    not success, naming the parameter or field the reader points at ("" otherwise)."""
    for name, body in (message.msgdict or {}).items():
        status = body.get("LLRPStatus") if isinstance(body, dict) else None
        if not isinstance(status, dict) or status.get("StatusCode") in (None, 0, "M_Success"):
            continue
        text = f"{name}: {status.get('StatusCode')} {status.get('ErrorDescription', '')!r}"
        for key in ("ParameterError", "FieldError"):
            if status.get(key):
                text += f" ({key} {status[key]})"
        return text
    return ""


def _attempt_status(message: LLRPMessage) -> int | None:
    """The status of a ConnectionAttemptEvent (None when the message is anything else)."""
    event = (message.msgdict or {}).get("READER_EVENT_NOTIFICATION")
    if not isinstance(event, dict):
        return None
    attempt = event.get("ReaderEventNotificationData", {}).get("ConnectionAttemptEvent")
    if not isinstance(attempt, dict):
        return None
    return int(ConnEvent_Name2Type.get(str(attempt.get("Status", "Success")), 0))


def _refusal(message: LLRPMessage) -> str:
    """Why the reader refused the session, from a failed ConnectionAttemptEvent ("" when
    the message is anything else)."""
    status = _attempt_status(message)
    why = _REFUSALS.get(status) if status is not None else None
    return f"{why} (ConnectionAttemptEvent: {ConnEvent_Type2Name[status]})" if why else ""
