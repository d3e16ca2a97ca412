"""Writing tags over LLRP: a short client session that inventories the field and runs
one AccessSpec (C1G2 Read of the TID, Write of the EPC, optional access password and
Lock), then reads the field again to verify.

This is not the streaming driver (:mod:`tagsweep.drivers.llrp.driver`): commissioning is a
request/response exchange at a bench, one tag at a time, so a blocking socket and our own
encoding of the few client messages it needs (LLRP 1.0.1 sections 11 and 16; AccessSpec
16.2.5, C1G2 OpSpecs 16.3.1.3) are the whole of it. Reports are decoded here too, because
the streaming decoder drops OpSpec results.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from tagsweep.drivers.llrp.frames import HEADER, HEADER_SIZE, TV_SIZES
from tagsweep.drivers.llrp.settings import LlrpSettings, verify_fingerprint

M_ADD_ROSPEC, M_DELETE_ROSPEC, M_ENABLE_ROSPEC = 20, 21, 24
M_ADD_ACCESSSPEC, M_DELETE_ACCESSSPEC, M_ENABLE_ACCESSSPEC = 40, 41, 42
M_RO_ACCESS_REPORT, M_KEEPALIVE, M_EVENT, M_ERROR = 61, 62, 63, 100
M_ENABLE_EVENTS_AND_REPORTS, M_KEEPALIVE_ACK, M_CLOSE_CONNECTION = 64, 72, 14
ROSPEC_ID: Final = 0x7A91  # ours; deleted before and after
ACCESSSPEC_ID: Final = 0x7A92
READ_TID, WRITE_EPC, WRITE_PASSWORD, LOCK = 1, 2, 3, 4  # OpSpecIDs
#: C1G2WriteOpSpecResult codes (LLRP 1.0.1 16.3.1.5.3)
WRITE_RESULTS: Final = {
    0: "success",
    1: "tag memory overrun",
    2: "tag memory locked",
    3: "insufficient power",
    4: "tag error",
    5: "no response from tag (wrong access password?)",
    6: "reader error",
}
LOCK_RESULTS: Final = {
    0: "success",
    1: "insufficient power",
    2: "tag error",
    3: "no response from tag (wrong access password?)",
    4: "reader error",
}


class AccessError(RuntimeError):
    """The reader refused a request (its LLRPStatus said why) or did not answer."""


def tlv(param_type: int, body: bytes = b"") -> bytes:
    return struct.pack(">HH", param_type, 4 + len(body)) + body


@dataclass(slots=True)
class TagSeen:
    """One TagReportData: the EPC and what the AccessSpec's OpSpecs returned."""

    epc: str
    tid: str = ""
    results: dict[int, int] = field(default_factory=dict)  # OpSpecID → result code


def _params(data: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos < len(data):
        if data[pos] & 0x80:
            ptype = data[pos] & 0x7F
            size = TV_SIZES.get(ptype)
            if size is None:
                return
            yield ptype, data[pos + 1 : pos + 1 + size]
            pos += 1 + size
            continue
        ptype, length = struct.unpack_from(">HH", data, pos)
        if length < 4:
            return
        yield ptype & 0x3FF, data[pos + 4 : pos + length]
        pos += length


def parse_report(body: bytes) -> list[TagSeen]:
    tags: list[TagSeen] = []
    for ptype, record in _params(body):
        if ptype != 240:  # TagReportData
            continue
        seen = TagSeen("")
        for sub, value in _params(record):
            if sub == 13:  # EPC-96
                seen.epc = value.hex().upper()
            elif sub == 241 and len(value) >= 2:  # EPCData: bit count, bytes
                seen.epc = value[2:].hex().upper()
            elif sub in (349, 350, 352) and len(value) >= 3:  # Read, Write, Lock results
                result, opspec = struct.unpack_from(">BH", value)
                seen.results[opspec] = result
                if sub == 349 and opspec == READ_TID and result == 0 and len(value) >= 5:
                    words = struct.unpack_from(">H", value, 3)[0]
                    seen.tid = value[5 : 5 + 2 * words].hex().upper()
        if seen.epc:
            tags.append(seen)
    return tags


def _status(body: bytes) -> tuple[int, str]:
    for ptype, value in _params(body):
        if ptype == 287 and len(value) >= 4:  # LLRPStatus
            code, length = struct.unpack_from(">HH", value)
            return code, value[4 : 4 + length].decode(errors="replace")
    return 0, ""


def rospec(duration_ms: int, antennas: tuple[int, ...]) -> bytes:
    """Immediate start, stop after ``duration_ms``, one report at the end of the ROSpec
    with the antenna and the EPC; AccessSpec results come inside the TagReportData."""
    boundary = tlv(178, tlv(179, b"\x01") + tlv(182, struct.pack(">BI", 1, duration_ms)))
    ai = struct.pack(">H", len(antennas)) + struct.pack(f">{len(antennas)}H", *antennas)
    ai += tlv(184, struct.pack(">BI", 0, 0)) + tlv(186, struct.pack(">HB", 1, 1))
    selector = tlv(238, struct.pack(">H", 1 << 12))  # EnableAntennaID
    report = tlv(237, struct.pack(">BH", 2, 0) + selector)  # end of ROSpec, N = 0
    body = struct.pack(">IBB", ROSPEC_ID, 0, 0) + boundary + tlv(183, ai) + report
    return tlv(177, body)


def accessspec(
    old_epc: str, new_epc: str, password: int, new_password: int | None, lock: bool
) -> bytes:
    """Read the TID, write ``new_epc`` over ``old_epc`` (EPC bank from word 2), then
    optionally write the access password (reserved bank words 2-3) and write-lock the
    EPC bank and the password (pwd-write: changeable only with the password)."""
    epc = bytes.fromhex(old_epc)
    target = struct.pack(">BHH", 0b01 << 6 | 1 << 5, 32, 8 * len(epc)) + b"\xff" * len(epc)
    target += struct.pack(">H", 8 * len(epc)) + epc  # MB 1 (EPC), match, at bit 32
    tagspec = tlv(338, tlv(339, target))
    ops = tlv(341, struct.pack(">HIBHH", READ_TID, 0, 0b10 << 6, 0, 0))  # TID, all words
    data = bytes.fromhex(new_epc)
    write = struct.pack(">HIBHH", WRITE_EPC, password, 0b01 << 6, 2, len(data) // 2)
    ops += tlv(342, write + data)
    if new_password is not None:
        words = struct.pack(">I", new_password)
        ops += tlv(342, struct.pack(">HIBHH", WRITE_PASSWORD, password, 0, 2, 2) + words)
    if lock:
        used = new_password if new_password is not None else password
        payload = tlv(345, struct.pack(">BB", 0, 2)) + tlv(345, struct.pack(">BB", 0, 1))
        ops += tlv(344, struct.pack(">HI", LOCK, used) + payload)
    command = tlv(209, tagspec + ops)
    stop = tlv(208, struct.pack(">BH", 1, 1))  # after one operation
    report = tlv(239, b"\x00")  # results with the ROSpec's report
    head = struct.pack(">IHBBI", ACCESSSPEC_ID, 0, 1, 0, ROSPEC_ID)
    return tlv(207, head + stop + command + report)


class AccessSession:
    """A blocking LLRP client session for commissioning (``with`` closes it politely)."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        from tagsweep.drivers.llrp.driver import LlrpDriver  # parsing the URL only

        self.settings: LlrpSettings = LlrpDriver(url).settings
        self.timeout_s = timeout_s
        self._ids = itertools.count(0x5000)
        self._sock: socket.socket | None = None
        self._buf = b""
        self._reports: list[TagSeen] = []

    def __enter__(self) -> AccessSession:
        s = self.settings
        sock = socket.create_connection((s.host, s.port), timeout=self.timeout_s)
        if s.tls:
            sock = s.tls_context().wrap_socket(sock, server_hostname=s.host)
            verify_fingerprint(sock, s)
        self._sock = sock
        kind, _, body = self._next()
        if kind != M_EVENT or struct.pack(">HHH", 256, 6, 0) not in body:
            raise AccessError("the reader refused the connection (another client connected?)")
        self._send(M_ENABLE_EVENTS_AND_REPORTS)  # a Zebra FX holds reports until this
        self.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError, AccessError):
            self.clear()
            self._send(M_CLOSE_CONNECTION)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send(self, msg_type: int, body: bytes = b"") -> int:
        assert self._sock is not None
        msg_id = next(self._ids)
        header = HEADER.pack((1 << 10) | msg_type, HEADER_SIZE + len(body), msg_id)
        self._sock.sendall(header + body)
        return msg_id

    def _next(self) -> tuple[int, int, bytes]:
        assert self._sock is not None
        while len(self._buf) < HEADER_SIZE or len(self._buf) < HEADER.unpack_from(self._buf)[1]:
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                raise AccessError("the reader closed the connection")
            self._buf += chunk
        word, length, msg_id = HEADER.unpack_from(self._buf)
        body, self._buf = self._buf[HEADER_SIZE:length], self._buf[length:]
        if word & 0x3FF == M_KEEPALIVE:
            self._send(M_KEEPALIVE_ACK)
        return word & 0x3FF, msg_id, body

    def request(self, msg_type: int, body: bytes, what: str, *, strict: bool = True) -> None:
        """Send and wait for the response (reports meanwhile are kept); a refusal is an
        :class:`AccessError` naming the request and the reader's own words."""
        msg_id = self._send(msg_type, body)
        while True:
            kind, reply_id, reply = self._next()
            if kind == M_RO_ACCESS_REPORT:
                self._reports.extend(parse_report(reply))
                continue
            if reply_id != msg_id and kind != M_ERROR:
                continue
            code, text = _status(reply)
            if code and strict:
                raise AccessError(f"the reader refused {what}: status {code} {text!r}")
            return

    def clear(self) -> None:
        """Delete our ROSpec and AccessSpec (absent is fine)."""
        self.request(M_DELETE_ACCESSSPEC, struct.pack(">I", ACCESSSPEC_ID), "", strict=False)
        self.request(M_DELETE_ROSPEC, struct.pack(">I", ROSPEC_ID), "", strict=False)

    def inventory(self, duration_ms: int = 300, access: bytes = b"") -> list[TagSeen]:
        """Run one timed inventory (with ``access`` as its AccessSpec) and return what
        its end-of-ROSpec report holds."""
        self._reports = []
        self.clear()
        self.request(M_ADD_ROSPEC, rospec(duration_ms, self.settings.antennas), "ADD_ROSPEC")
        if access:
            self.request(M_ADD_ACCESSSPEC, access, "ADD_ACCESSSPEC")
            accessspec_id = struct.pack(">I", ACCESSSPEC_ID)
            self.request(M_ENABLE_ACCESSSPEC, accessspec_id, "ENABLE_ACCESSSPEC")
        self.request(M_ENABLE_ROSPEC, struct.pack(">I", ROSPEC_ID), "ENABLE_ROSPEC")
        assert self._sock is not None
        self._sock.settimeout(duration_ms / 1000 + self.timeout_s)
        while not self._reports:
            kind, _, reply = self._next()
            if kind == M_RO_ACCESS_REPORT:
                self._reports.extend(parse_report(reply))
                if not self._reports:
                    break  # an empty report: nothing in the field
        self._sock.settimeout(self.timeout_s)
        tags = self._reports
        self.clear()
        return tags
