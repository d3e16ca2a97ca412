"""Barcode scanner driver: serial, USB CDC-ACM, serial-over-TCP and RFC 2217 scanners.

Opened from ``serial:///dev/ttyACM0?baud=9600&terminator=CR``, ``socket://host:port``
or ``rfc2217://host:port`` through pyserial's ``serial_for_url``; yields
:class:`~tagsweep.domain.BarcodeScan` events.

pyserial is blocking, so each connection gets one reader thread that only moves bytes:
it reads with a short timeout and hands chunks to the event loop with
``call_soon_threadsafe``. Framing and interpretation (:mod:`tagsweep.drivers.scanparse`)
run on the loop, so counters and logs have one owner. A bounded credit of in-flight
chunks stops a stalled consumer from growing memory: the thread stops reading and the
OS buffer, then the device, apply flow control. The thread ends with its connection;
nothing outlives :meth:`BarcodeDriver.close`.

Bad input never stops the driver: each rejected line (garbage, wrong encoding, overlong,
cut off by a disconnect, a GS1 string with a wrong check digit, a malformed location
label) increments ``counters.decode_errors`` and ``counters.faults[<reason>]`` and is
logged as ``scan_rejected`` with the raw bytes escaped (rate-limited, with a count of
what was suppressed). After ``degraded_after`` rejections in a row the state becomes
``degraded`` (usually a wrong baud rate, encoding or terminator); a good scan restores
it. A lost device (unplugged, socket closed) raises a reconnect in the base class.

Options (``options=`` of :func:`~tagsweep.drivers.open_driver`, normally the
``[[scanners]]`` section of the configuration plus the location tables; a URL query
parameter of the same name wins over the option):

``terminator``
    ``CR`` (default), ``LF``, ``CRLF`` — any of the three ends a line —, ``TAB``,
    ``ETX``, ``EOT``, an escape like ``\\x03`` or literal characters (matched exactly).
``encoding``
    text encoding of the scanner (default ``utf-8``).
``max_line_bytes``
    longest accepted line (default 4096); longer ones are dropped and counted.
``location_prefix``
    text that starts a location label (default ``LOC:``); the rest is a label from
    ``locations`` or a location path. ``None`` turns it off.
``location_pattern``
    regular expression recognising location labels; its group ``value`` (or first
    group, or the whole match) is looked up in ``locations`` or used as the path.
``asset_tag_pattern`` / ``serial_pattern``
    regular expressions for plain asset-tag and serial barcodes (same group rule).
``locations``
    mapping of label text → location path (``[[locations]]`` ``label`` and ``path``);
    a scan equal to a label is a location scan whatever the prefix or pattern.
``gln_locations``
    mapping of GLN (GS1 AI 414) → location path (``[[locations]]`` ``gln``); a key
    ``"<GLN>+<extension>"`` matches AI 254 exactly, otherwise the extension is
    appended to the GLN's path. Unmapped GLNs give the path ``<GLN>[/<extension>]``
    and a ``location_label_unmapped`` warning.
``fnc1_char``
    character the scanner sends for FNC1 if not GS (0x1D).
``gs1_unprefixed``
    try GS1 element strings on lines without an AIM identifier (default false).
``degraded_after``
    consecutive rejected lines before the state becomes ``degraded`` (default 10).

URL-only parameters: ``baud`` (default 9600), ``bytesize``, ``parity`` (N/E/O/M/S),
``stopbits``, ``rtscts``, ``xonxoff`` for serial ports; pyserial's own ``logging``
(and for ``rfc2217``: ``ign_set_control``, ``poll_modem``, ``timeout``) pass through.

Classification: GS1 strings by AI — 414 (+254) location, else 8004 GIAI, else 21
serial, else 01 GTIN; EAN/UPC/ITF-14 symbologies give a GTIN; plain text is a location
label, an asset tag, a serial, or ``unknown`` (still delivered: the operator scanned
something, the daemon decides what to do with it).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import termios
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, ClassVar
from urllib.parse import urlencode

import serial

from tagsweep.config.schema import LocationSection, ScannerSection
from tagsweep.domain import BarcodeScan, ScanKind, now_us
from tagsweep.drivers.base import Driver, DriverConfigError, DriverError, DriverEvent, DriverState
from tagsweep.drivers.scanparse import (
    LineFramer,
    Overlong,
    RejectReason,
    ScanContent,
    ScanInterpreter,
    ScanRejection,
    ScanRules,
    escape_bytes,
    parse_terminator,
)
from tagsweep.logs import get_logger

#: Options a URL query may set (they win over ``options``).
_QUERY_OPTIONS = (
    "terminator",
    "encoding",
    "max_line_bytes",
    "location_prefix",
    "location_pattern",
    "asset_tag_pattern",
    "serial_pattern",
    "fnc1_char",
    "gs1_unprefixed",
    "degraded_after",
)
#: pyserial's own URL parameters, passed through for socket:// and rfc2217://.
_PYSERIAL_PARAMS = {
    "socket": ("logging",),
    "rfc2217": ("logging", "ign_set_control", "poll_modem", "timeout"),
}
_PARITIES = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD,
             "M": serial.PARITY_MARK, "S": serial.PARITY_SPACE}  # fmt: skip

READ_TIMEOUT_S = 0.05  # how long one read waits: bounds scan latency and stop latency
READ_CHUNK = 4096
CREDIT_CHUNKS = 64  # chunks in flight between the reader thread and the loop
LOG_BURST = 20  # rejected lines logged per LOG_WINDOW_S; the rest are counted
LOG_WINDOW_S = 10.0
STOP_TIMEOUT_S = 5.0

_Item = bytes | BaseException | None  # data, a read error, or end of the connection


def _unread_bytes(port: serial.Serial) -> int:
    """Bytes ready to read without blocking. FIONREAD on the port's descriptor is exact
    for ttys and sockets alike (pyserial's socket ``in_waiting`` only says 0 or 1, which
    would mean one read per byte); ports without a descriptor (RFC 2217) use in_waiting.
    """
    fileno = getattr(port, "fileno", None)
    if fileno is not None:
        count = array.array("i", [0])
        fcntl.ioctl(fileno(), termios.FIONREAD, count)
        return count[0]
    return int(port.in_waiting)


class _PortReader:
    """One connection's reader thread: opens the port, moves bytes to the loop, closes it.

    Opening happens on the thread too, because a ``socket://`` connect or an RFC 2217
    negotiation can block for seconds and must not stall the event loop.
    """

    def __init__(self, open_port: Callable[[], serial.Serial], name: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._open_port = open_port
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._opened: asyncio.Future[None] = self._loop.create_future()
        self._stop = threading.Event()
        self._credit = threading.Semaphore(CREDIT_CHUNKS)
        self._finished = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name=f"scanner-{name}", daemon=True)
        self._thread.start()

    # -- loop side -------------------------------------------------------------------------
    async def opened(self) -> None:
        await self._opened

    async def next(self) -> _Item:
        return await self._queue.get()

    def consumed(self) -> None:
        """A chunk has been processed: let the thread read another."""
        self._credit.release()

    async def stop(self) -> None:
        """Ask the thread to end and wait until it has closed the port."""
        self._stop.set()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await self._finished.wait()
        except TimeoutError:
            # pyserial is blocked in the OS (a socket connect, a hung USB device); the
            # daemon thread ends when that call returns, the driver does not wait for it.
            get_logger("driver").error("scanner_thread_stuck", thread=self._thread.name)
        else:
            self._thread.join(timeout=1.0)  # it has posted its last item: only returning
        if self._opened.done() and not self._opened.cancelled():
            self._opened.exception()  # consumed here if _connect was cancelled first

    def _resolve_open(self, error: BaseException | None) -> None:
        if self._opened.done():
            return
        if error is None:
            self._opened.set_result(None)
        else:
            self._opened.set_exception(error)

    # -- thread side -----------------------------------------------------------------------
    def _post(self, call: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self._loop.call_soon_threadsafe(call, *args)

    def _run(self) -> None:
        try:
            self._read_until_stopped()
        finally:
            # Whatever happened, _connect must not wait forever for the open result.
            self._post(self._resolve_open, DriverError("scanner reader ended before opening"))
            self._post(self._finished.set)

    def _read_until_stopped(self) -> None:
        try:
            port = self._open_port()
        except Exception as exc:  # any failure to open is "device unavailable": retry
            self._post(self._resolve_open, DriverError(f"cannot open scanner: {exc}"))
            return
        self._post(self._resolve_open, None)
        try:
            while not self._stop.is_set():
                if not self._credit.acquire(timeout=READ_TIMEOUT_S):
                    continue
                data = bytearray()
                try:
                    # Read only what the port says is there: pyserial drops bytes it has
                    # gathered when the device vanishes inside one read() call.
                    data += port.read(1)  # waits up to READ_TIMEOUT_S
                    while data and len(data) < READ_CHUNK:
                        waiting = _unread_bytes(port)
                        if not waiting:
                            break
                        data += port.read(min(waiting, READ_CHUNK - len(data)))
                except Exception as exc:  # any port failure means reconnect, never a crash
                    if data:
                        self._post(self._queue.put_nowait, bytes(data))
                    self._post(self._queue.put_nowait, exc)
                    return
                if data:
                    self._post(self._queue.put_nowait, bytes(data))
                else:
                    self._credit.release()
        finally:
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()
            self._post(self._queue.put_nowait, None)


class BarcodeDriver(Driver):
    """A barcode scanner that sends one line per scan (see the module docstring)."""

    schemes: ClassVar[tuple[str, ...]] = ("serial", "socket", "rfc2217")
    kind: ClassVar[str] = "barcode"

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        settings: dict[str, Any] = dict(self.options)
        for key in _QUERY_OPTIONS:
            if key in self.url.query:
                settings[key] = self.url.query[key]
        try:
            terminator = parse_terminator(str(settings.get("terminator") or "CR"))
            max_line = int(settings.get("max_line_bytes") or 4096)
            self.degraded_after = int(settings.get("degraded_after") or 10)
            self.rules = ScanRules.from_options(settings)
            if max_line < 16 or self.degraded_after < 1:
                raise ValueError("max_line_bytes must be >= 16 and degraded_after >= 1")
            self._framer = LineFramer(terminator, max_line)
        except ValueError as exc:
            raise DriverConfigError(f"scanner {self.name} ({self.url.raw}): {exc}") from None
        self._interpreter = ScanInterpreter(self.rules)
        self._open_port = self._port_opener()
        self._link: _PortReader | None = None
        self._rejected_in_a_row = 0
        self._log_window_start = 0.0
        self._logged_in_window = 0
        self._suppressed = 0

    # -- port --------------------------------------------------------------------------
    def _port_opener(self) -> Callable[[], serial.Serial]:
        url, query = self.url, self.url.query
        try:
            baud = int(query.get("baud", "9600"))
            settings: dict[str, Any] = {"baudrate": baud, "timeout": READ_TIMEOUT_S}
            if url.scheme == "serial":
                if url.host or not url.path.startswith("/"):
                    raise DriverConfigError(
                        f"{url.raw}: a serial URL needs an absolute device path, "
                        "e.g. serial:///dev/ttyACM0?baud=9600"
                    )
                settings["bytesize"] = int(query.get("bytesize", "8"))
                settings["parity"] = _PARITIES[query.get("parity", "N").upper()]
                settings["stopbits"] = float(query.get("stopbits", "1"))
                if settings["stopbits"] in (1.0, 2.0):
                    settings["stopbits"] = int(settings["stopbits"])
                settings["rtscts"] = query.get("rtscts", "0").lower() in ("1", "true", "yes")
                settings["xonxoff"] = query.get("xonxoff", "0").lower() in ("1", "true", "yes")
                target = url.path
            elif url.scheme in _PYSERIAL_PARAMS:
                if not url.host or url.port is None:
                    raise DriverConfigError(f"{url.raw}: expected {url.scheme}://HOST:PORT")
                passed = {k: v for k, v in query.items() if k in _PYSERIAL_PARAMS[url.scheme]}
                target = f"{url.scheme}://{url.host}:{url.port}"
                if passed:
                    target += "?" + urlencode(passed)
            else:
                raise DriverConfigError(f"{url.raw}: the barcode driver serves serial://, "
                                        "socket:// and rfc2217://")  # fmt: skip
        except (KeyError, ValueError) as exc:
            if isinstance(exc, DriverConfigError):
                raise
            raise DriverConfigError(f"{url.raw}: bad serial parameter ({exc})") from None

        def open_port() -> serial.Serial:
            port: serial.Serial = serial.serial_for_url(target, **settings)
            return port

        return open_port

    # -- hooks -------------------------------------------------------------------------
    async def _connect(self) -> None:
        self._framer.flush()  # nothing from a previous connection belongs to this one
        self._link = _PortReader(self._open_port, self.name)
        await self._link.opened()
        self.log.info("scanner_connected", url=self.url.raw)

    async def _receive(self) -> AsyncIterator[DriverEvent]:
        link = self._link
        if link is None:
            return
        while True:
            item = await link.next()
            if item is None:
                return  # stopped on purpose (close)
            if isinstance(item, BaseException):
                rest = self._framer.flush()
                if isinstance(rest, Overlong):
                    self._reject_overlong(rest)
                elif rest is not None:
                    self._reject(
                        ScanRejection(RejectReason.PARTIAL_LINE, "device lost mid-line", rest)
                    )
                raise DriverError(f"scanner lost: {item}")
            try:
                for line in self._framer.feed(item):
                    if isinstance(line, Overlong):
                        self._reject_overlong(line)
                        continue
                    scan = self._scan(line)
                    if scan is not None:
                        yield scan
            finally:
                link.consumed()

    async def _disconnect(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await link.stop()

    # -- lines -------------------------------------------------------------------------
    def _scan(self, line: bytes) -> BarcodeScan | None:
        result = self._interpreter.interpret(line)
        if isinstance(result, ScanRejection):
            self._reject(result)
            return None
        return self._accept(result)

    def _accept(self, content: ScanContent) -> BarcodeScan:
        self._rejected_in_a_row = 0
        if self.state is DriverState.DEGRADED:
            self._set_state(DriverState.INVENTORYING, "readable scans again")
        if content.kind is ScanKind.LOCATION and not content.mapped:
            self.log.warning(
                "location_label_unmapped",
                value=content.value,
                data=escape_bytes(content.data.encode()),
            )
        self.counters.reads += 1
        scan = BarcodeScan(
            data=content.data,
            symbology=content.symbology,
            reader=self.name,
            timestamp_us=now_us(),
            kind=content.kind,
            value=content.value,
            fields=dict(content.fields),
        )
        self.log.debug(
            "scan", kind=scan.kind.value, value=scan.value, symbology=scan.symbology.value
        )
        return scan

    def _reject_overlong(self, line: Overlong) -> None:
        detail = f"line of {line.length} bytes exceeds max_line_bytes={self._framer.max_line_bytes}"
        self._reject(ScanRejection(RejectReason.OVERLONG, detail, line.head))

    def _reject(self, rejection: ScanRejection) -> None:
        self.counters.decode_errors += 1
        self.counters.fault(rejection.reason.value)
        self._rejected_in_a_row += 1
        now = time.monotonic()
        if now - self._log_window_start > LOG_WINDOW_S:
            self._log_window_start, self._logged_in_window = now, 0
        if self._logged_in_window < LOG_BURST:
            self._logged_in_window += 1
            self.log.warning(
                "scan_rejected",
                reason=rejection.reason.value,
                detail=rejection.detail,
                raw=escape_bytes(rejection.raw),
                length=len(rejection.raw),
                suppressed=self._suppressed,
            )
            self._suppressed = 0
        else:
            self._suppressed += 1
        if (
            self._rejected_in_a_row == self.degraded_after
            and self.state is DriverState.INVENTORYING
        ):
            self._set_state(
                DriverState.DEGRADED,
                f"{self._rejected_in_a_row} unreadable lines in a row: "
                "check baud rate, encoding and terminator",
            )


def scanner_options(
    scanner: ScannerSection, locations: Sequence[LocationSection] = ()
) -> dict[str, Any]:
    """The ``options`` for :func:`~tagsweep.drivers.open_driver` from one ``[[scanners]]``
    section and the ``[[locations]]`` table, so the daemon need not know option names."""
    options = scanner.model_dump(exclude={"name", "url", "location"})
    options["locations"] = {loc.label: loc.path for loc in locations if loc.label}
    options["gln_locations"] = {loc.gln: loc.path for loc in locations if loc.gln}
    return options


def scan_rules_for(
    scanners: Sequence[ScannerSection],
    locations: Sequence[LocationSection] = (),
    name: str | None = None,
) -> ScanRules:
    """The rules scans are read by: those of the scanner called ``name``, else of the
    first configured scanner, else the defaults of a ``[[scanners]]`` entry — with the
    ``[[locations]]`` labels. What a phone's camera scans and what labels are printed
    for follow the same rules as a scanner's. ValueError for an unknown ``name``."""
    chosen = next((s for s in scanners if s.name == name), None) if name else None
    if name and chosen is None:
        known = ", ".join(s.name for s in scanners) or "none"
        raise ValueError(f"no scanner named {name!r} in the configuration (scanners: {known})")
    if chosen is None:
        chosen = scanners[0] if scanners else ScannerSection(name="default", url="none://")
    return ScanRules.from_options(scanner_options(chosen, locations))
