"""Our own LLRP 1.0.1 encoder for the reader side of the protocol.

sllurp only encodes what a *client* sends; a simulated reader has to produce the
messages a reader sends (READER_EVENT_NOTIFICATION, the ``*_RESPONSE`` messages with
LLRPStatus, capabilities, KEEPALIVE and, above all, RO_ACCESS_REPORT). It is written
from the specification, independently of any decoder, so that decoding its output with
sllurp is a real cross-check (the property tests do exactly that).

RO_ACCESS_REPORT encoding is vectorised: consecutive reads that share a parameter
layout (EPC length, which optional values are known) become one numpy structured array
whose ``tobytes()`` *is* the wire format, so the simulator can push bursts of 100k+
reads per second from one core.
"""

from __future__ import annotations

import functools
import itertools
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np

from tagsweep.domain import ReadBatch

LLRP_VERSION: Final = 1
TYPE_CUSTOM: Final = 1023
VENDOR_IMPINJ: Final = 25882


class MessageType:
    """LLRP 1.0.1 message type numbers (section 16.1)."""

    GET_READER_CAPABILITIES = 1
    GET_READER_CONFIG = 2
    SET_READER_CONFIG = 3
    CLOSE_CONNECTION_RESPONSE = 4
    GET_READER_CAPABILITIES_RESPONSE = 11
    GET_READER_CONFIG_RESPONSE = 12
    SET_READER_CONFIG_RESPONSE = 13
    CLOSE_CONNECTION = 14
    ADD_ROSPEC = 20
    DELETE_ROSPEC = 21
    START_ROSPEC = 22
    STOP_ROSPEC = 23
    ENABLE_ROSPEC = 24
    DISABLE_ROSPEC = 25
    ADD_ROSPEC_RESPONSE = 30
    DELETE_ROSPEC_RESPONSE = 31
    START_ROSPEC_RESPONSE = 32
    STOP_ROSPEC_RESPONSE = 33
    ENABLE_ROSPEC_RESPONSE = 34
    DISABLE_ROSPEC_RESPONSE = 35
    ADD_ACCESSSPEC = 40
    DELETE_ACCESSSPEC = 41
    ENABLE_ACCESSSPEC = 42
    DISABLE_ACCESSSPEC = 43
    ADD_ACCESSSPEC_RESPONSE = 50
    DELETE_ACCESSSPEC_RESPONSE = 51
    ENABLE_ACCESSSPEC_RESPONSE = 52
    DISABLE_ACCESSSPEC_RESPONSE = 53
    GET_REPORT = 60
    RO_ACCESS_REPORT = 61
    KEEPALIVE = 62
    READER_EVENT_NOTIFICATION = 63
    ENABLE_EVENTS_AND_REPORTS = 64
    KEEPALIVE_ACK = 72
    ERROR_MESSAGE = 100
    CUSTOM_MESSAGE = TYPE_CUSTOM


#: Request type → response type, for the requests a reader answers with LLRPStatus.
RESPONSE_TO: Final[dict[int, int]] = {
    MessageType.SET_READER_CONFIG: MessageType.SET_READER_CONFIG_RESPONSE,
    MessageType.ADD_ROSPEC: MessageType.ADD_ROSPEC_RESPONSE,
    MessageType.DELETE_ROSPEC: MessageType.DELETE_ROSPEC_RESPONSE,
    MessageType.START_ROSPEC: MessageType.START_ROSPEC_RESPONSE,
    MessageType.STOP_ROSPEC: MessageType.STOP_ROSPEC_RESPONSE,
    MessageType.ENABLE_ROSPEC: MessageType.ENABLE_ROSPEC_RESPONSE,
    MessageType.DISABLE_ROSPEC: MessageType.DISABLE_ROSPEC_RESPONSE,
    MessageType.ADD_ACCESSSPEC: MessageType.ADD_ACCESSSPEC_RESPONSE,
    MessageType.DELETE_ACCESSSPEC: MessageType.DELETE_ACCESSSPEC_RESPONSE,
    MessageType.ENABLE_ACCESSSPEC: MessageType.ENABLE_ACCESSSPEC_RESPONSE,
    MessageType.DISABLE_ACCESSSPEC: MessageType.DISABLE_ACCESSSPEC_RESPONSE,
}


class Status:
    """LLRPStatus codes (section 16.2.8.1) the simulator uses."""

    SUCCESS = 0
    PARAMETER_ERROR = 100
    UNSUPPORTED_MESSAGE = 109
    A_INVALID = 300
    DEVICE_ERROR = 401


_HEADER = struct.Struct(">HII")
HEADER_SIZE: Final = _HEADER.size


# -- messages and parameters -------------------------------------------------------------
def message(msg_type: int, msg_id: int, body: bytes = b"") -> bytes:
    """One LLRP message: version 1, type, total length, message id, body."""
    return _HEADER.pack((LLRP_VERSION << 10) | msg_type, HEADER_SIZE + len(body), msg_id) + body


def custom_message(vendor: int, subtype: int, msg_id: int, body: bytes = b"") -> bytes:
    """A CUSTOM_MESSAGE: the header is followed by vendor id (u32) and subtype (u8)."""
    return message(TYPE_CUSTOM, msg_id, struct.pack(">IB", vendor, subtype) + body)


def tlv(param_type: int, body: bytes = b"") -> bytes:
    """A TLV parameter: 6 reserved bits + 10-bit type, u16 length including the header."""
    return struct.pack(">HH", param_type & 0x3FF, 4 + len(body)) + body


def custom_param(vendor: int, subtype: int, body: bytes = b"") -> bytes:
    return tlv(TYPE_CUSTOM, struct.pack(">II", vendor, subtype) + body)


def tv(param_type: int, body: bytes) -> bytes:
    """A TV parameter: 1 marker bit + 7-bit type, then a fixed-size value."""
    return bytes([0x80 | param_type]) + body


def llrp_status(code: int = Status.SUCCESS, description: str = "") -> bytes:
    text = description.encode()
    return tlv(287, struct.pack(">HH", code, len(text)) + text)


def status_response(
    response_type: int, msg_id: int, code: int = Status.SUCCESS, description: str = ""
) -> bytes:
    return message(response_type, msg_id, llrp_status(code, description))


def utc_timestamp(us: int) -> bytes:
    return tlv(128, struct.pack(">Q", us))


def reader_event_connection_attempt(msg_id: int, now_us: int, status: int = 0) -> bytes:
    """READER_EVENT_NOTIFICATION with ConnectionAttemptEvent (0 = Success)."""
    data = utc_timestamp(now_us) + tlv(256, struct.pack(">H", status))
    return message(MessageType.READER_EVENT_NOTIFICATION, msg_id, tlv(246, data))


def reader_event_connection_close(msg_id: int, now_us: int) -> bytes:
    data = utc_timestamp(now_us) + tlv(257)
    return message(MessageType.READER_EVENT_NOTIFICATION, msg_id, tlv(246, data))


def keepalive(msg_id: int) -> bytes:
    return message(MessageType.KEEPALIVE, msg_id)


@dataclass(frozen=True, slots=True)
class ReaderIdentity:
    """What the simulated reader says about itself in capabilities and config."""

    antennas: int = 4
    manufacturer: int = VENDOR_IMPINJ  # IANA private enterprise number
    model: int = 2001002
    firmware: str = "tagsweep-sim-1.0"
    reader_id: bytes = b"\x00\x16\x25\x00\x00\x01"  # MAC-style id
    #: TransmitPowerLevelTableEntry values in dBm; index i + power_index_base → power_dbm[i]
    power_dbm: tuple[float, ...] = tuple(10.0 + 0.25 * i for i in range(81))
    power_index_base: int = 1  # Impinj: 1; Zebra FX: 0
    hop_frequencies_khz: tuple[int, ...] = (902750, 915250, 927250)
    hop_table_id: int = 1
    #: a fixed-frequency (ETSI) reader: its channels; it does not hop
    fixed_frequencies_khz: tuple[int, ...] = ()
    mode_identifiers: tuple[int, ...] = (0, 1, 2, 1000, 1002)
    #: a reader without a UTC clock: when it booted (wall µs); it stamps reads with
    #: First/LastSeenTimestampUptime, microseconds since then
    booted_us: int | None = None
    #: a reader whose UTC clock is wrong: added to every UTC stamp it sends (µs)
    clock_offset_us: int = 0
    gpis: int = 4
    gpos: int = 4


#: 2000-01-01T00:00:00Z in µs: where a reader whose clock was never set starts counting
#: (Impinj R420 and Intermec readers after a power loss without NTP, as reported on
#: sllurp's and EdgeX's trackers)
UNSET_CLOCK_EPOCH_US: Final = 946_684_800_000_000


def parse_clock(spec: str, now_us: int, identity: ReaderIdentity | None = None) -> ReaderIdentity:
    """``utc``, ``uptime``, ``unset`` or ``offset=±N[s|m|h|d]``: ``identity`` with that clock.

    ``uptime`` is a reader without a UTC clock (booted an hour ago); ``unset`` one whose
    clock started at 2000-01-01 when it booted; ``offset=-3h`` one that is three hours
    behind.
    """
    base = identity or ReaderIdentity()
    text = spec.strip().lower()
    if text == "utc":
        return replace(base, booted_us=None, clock_offset_us=0)
    if text == "uptime":
        return replace(base, booted_us=now_us - 3_600_000_000, clock_offset_us=0)
    if text == "unset":
        return replace(base, booted_us=None, clock_offset_us=UNSET_CLOCK_EPOCH_US - now_us)
    if text.startswith("offset="):
        value = text.removeprefix("offset=")
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        scale = units.get(value[-1:], 0)
        try:
            amount = float(value[:-1] if scale else value)
        except ValueError:
            amount = math.nan
        if math.isfinite(amount):
            offset = round(amount * (scale or 1) * 1e6)
            return replace(base, booted_us=None, clock_offset_us=offset)
    raise ValueError(f"clock {spec!r}: expected utc, uptime, unset or offset=±N[s|m|h|d]")


def reader_capabilities(msg_id: int, identity: ReaderIdentity, extra: bytes = b"") -> bytes:
    """GET_READER_CAPABILITIES_RESPONSE (16.1.2) describing ``identity``."""
    fw = identity.firmware.encode()
    general = (
        struct.pack(
            ">HHIIH",
            identity.antennas,
            (1 << 14) if identity.booted_us is None else 0,  # HasUTCClockCapability
            identity.manufacturer,
            identity.model,
            len(fw),
        )
        + fw
    )
    general += tlv(139, struct.pack(">Hh", 1, 0))  # ReceiveSensitivityTableEntry
    for antenna in range(1, identity.antennas + 1):
        general += tlv(140, struct.pack(">HHB", antenna, 1, 1))  # PerAntennaAirProtocol
    general += tlv(141, struct.pack(">HH", identity.gpis, identity.gpos))  # GPIOCapabilities
    llrp_caps = tlv(142, struct.pack(">BBHIIIII", 0, 1, 0, 1, 1, 1, 1, 1))
    band = b"".join(
        tlv(145, struct.pack(">Hh", i + identity.power_index_base, round(dbm * 100)))
        for i, dbm in enumerate(identity.power_dbm)
    )
    fixed = identity.fixed_frequencies_khz
    if fixed:  # FrequencyInformation, not hopping: FixedFrequencyTable
        table = tlv(148, struct.pack(f">H{len(fixed)}I", len(fixed), *fixed))
        band += tlv(146, bytes([0x00]) + table)
    else:  # FrequencyInformation, hopping: FrequencyHopTable
        hops = identity.hop_frequencies_khz
        hop_table = tlv(
            147,
            struct.pack(">BBH", identity.hop_table_id, 0, len(hops))
            + struct.pack(f">{len(hops)}I", *hops),
        )
        band += tlv(146, bytes([0x80]) + hop_table)
    modes = b"".join(
        tlv(329, struct.pack(">IBBBBIIIII", mode, 0x80, 2, 0, 4, 640000, 1500, 6250, 25000, 0))
        for mode in identity.mode_identifiers
    )
    band += tlv(328, modes)
    regulatory = tlv(143, struct.pack(">HH", 840, 1) + tlv(144, band))
    air = tlv(327, struct.pack(">BH", 0, 2))
    body = llrp_status() + tlv(137, general) + llrp_caps + regulatory + air + extra
    return message(MessageType.GET_READER_CAPABILITIES_RESPONSE, msg_id, body)


def reader_config(
    msg_id: int, identity: ReaderIdentity, keepalive_ms: int, extra: bytes = b""
) -> bytes:
    """GET_READER_CONFIG_RESPONSE (16.1.4) with identification, antennas and keepalive."""
    rid = identity.reader_id
    body = llrp_status() + tlv(218, struct.pack(">BH", 0, len(rid)) + rid)
    for antenna in range(1, identity.antennas + 1):
        body += tlv(221, struct.pack(">BHh", 0x80, antenna, 600))  # AntennaProperties
    body += tlv(220, struct.pack(">BI", 1 if keepalive_ms else 0, keepalive_ms)) + extra
    return message(MessageType.GET_READER_CONFIG_RESPONSE, msg_id, body)


# -- RO_ACCESS_REPORT --------------------------------------------------------------------
#: Impinj custom parameter subtypes inside TagReportData (Octane LLRP reference).
IMPINJ_RF_PHASE_ANGLE: Final = 56  # u16, 0..4095 ↔ 0..2π
IMPINJ_PEAK_RSSI: Final = 57  # s16, dBm * 100
IMPINJ_RF_DOPPLER: Final = 68  # s16, Hz * 16

PHASE_UNITS: Final = 4096 / (2 * math.pi)
DOPPLER_UNITS: Final = 16.0


@dataclass(frozen=True, slots=True)
class ContentSelector:
    """Which optional TagReportData parameters the client asked for in its ROReportSpec
    (TagReportContentSelector, and Impinj's for phase/RSSI/Doppler); a real reader sends
    only those, so the simulator does too."""

    rospec_id: int | None = None  # send ROSpecID (with this value) when set
    antenna: bool = True
    peak_rssi: bool = True
    first_seen: bool = True
    last_seen: bool = True
    seen_count: bool = True
    impinj: bool = True  # Impinj phase/RSSI/Doppler, when a read has them
    # what a real reader also sends when asked (not by default: few clients ask)
    spec_index: bool = False
    inventory_parameter_spec_id: bool = False
    channel_index: bool = False
    access_spec_id: bool = False
    #: stamps as uptime since this wall time (a reader without a UTC clock), else UTC
    uptime_since_us: int | None = None
    #: a wrong UTC clock: added to every UTC stamp
    utc_offset_us: int = 0

    @classmethod
    def from_flags(cls, flags: int, rospec_id: int, impinj: bool) -> ContentSelector:
        """From TagReportContentSelector's flag word (bit 15 = EnableROSpecID …)."""
        return cls(
            rospec_id=rospec_id if flags & (1 << 15) else None,
            antenna=bool(flags & (1 << 12)),
            peak_rssi=bool(flags & (1 << 10)),
            first_seen=bool(flags & (1 << 9)),
            last_seen=bool(flags & (1 << 8)),
            seen_count=bool(flags & (1 << 7)),
            impinj=impinj,
            spec_index=bool(flags & (1 << 14)),
            inventory_parameter_spec_id=bool(flags & (1 << 13)),
            channel_index=bool(flags & (1 << 11)),
            access_spec_id=bool(flags & (1 << 6)),
        )


EVERYTHING: Final = ContentSelector()


@dataclass(frozen=True, slots=True)
class _Layout:
    epc_bytes: int
    rssi: bool
    phase: bool
    doppler: bool
    extra: bytes  # appended verbatim to every record (fault injection: unknown params)
    sel: ContentSelector = EVERYTHING

    @property
    def impinj_rssi(self) -> bool:
        return self.rssi and (self.phase or self.doppler)


@functools.lru_cache(maxsize=256)
def _record_dtype(layout: _Layout) -> np.dtype[np.void]:
    fields: list[tuple[str, str | tuple[str, tuple[int, ...]]]] = [("t", ">u2"), ("len", ">u2")]
    if layout.epc_bytes == 12:
        fields += [("epc_t", "u1"), ("epc", ("u1", (12,)))]
    else:
        fields += [("epc_t", ">u2"), ("epc_len", ">u2"), ("epc_bits", ">u2")]
        if layout.epc_bytes:
            fields += [("epc", ("u1", (layout.epc_bytes,)))]
    sel = layout.sel
    if sel.rospec_id is not None:
        fields += [("rospec_t", "u1"), ("rospec", ">u4")]
    if sel.spec_index:
        fields += [("spec_t", "u1"), ("spec", ">u2")]
    if sel.inventory_parameter_spec_id:
        fields += [("inv_t", "u1"), ("inv", ">u2")]
    if sel.antenna:
        fields += [("ant_t", "u1"), ("ant", ">u2")]
    if layout.rssi:
        fields += [("rssi_t", "u1"), ("rssi", "i1")]
    if sel.channel_index:
        fields += [("chan_t", "u1"), ("chan", ">u2")]
    if sel.first_seen:
        fields += [("first_t", "u1"), ("first", ">u8")]
    if sel.last_seen:
        fields += [("last_t", "u1"), ("last", ">u8")]
    if sel.seen_count:
        fields += [("count_t", "u1"), ("count", ">u2")]
    if sel.access_spec_id:
        fields += [("access_t", "u1"), ("access", ">u4")]
    for name, present, fmt in (
        ("phase", layout.phase, ">u2"),
        ("irssi", layout.impinj_rssi, ">i2"),
        ("doppler", layout.doppler, ">i2"),
    ):
        if present:
            fields += [
                (f"{name}_t", ">u2"),
                (f"{name}_len", ">u2"),
                (f"{name}_vendor", ">u4"),
                (f"{name}_sub", ">u4"),
                (name, fmt),
            ]
    if layout.extra:
        fields += [("extra", ("u1", (len(layout.extra),)))]
    return np.dtype(fields)


#: ASCII byte → nibble value; 0xFF marks a byte that is not a hex digit
_NIBBLE = np.full(256, 0xFF, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _NIBBLE[bytes([_c]).upper()[0]] = _i


def _unhex(epcs: np.ndarray, nbytes: int) -> np.ndarray:
    """Upper/lower-case hex ASCII (``S`` array) → (n, nbytes) uint8."""
    n = len(epcs)
    if nbytes == 0:
        return np.zeros((n, 0), dtype=np.uint8)
    text = epcs if epcs.dtype.itemsize == 2 * nbytes else epcs.astype(f"S{2 * nbytes}")
    raw = np.frombuffer(np.ascontiguousarray(text).data, dtype=np.uint8)
    nibbles = _NIBBLE[raw.reshape(n, 2 * nbytes)]
    if (nibbles == 0xFF).any():
        raise ValueError("EPC contains a non-hex character")
    return (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]


def _encode_run(reads: ReadBatch, layout: _Layout) -> bytes:
    dtype = _record_dtype(layout)
    out = np.zeros(len(reads), dtype=dtype)
    out["t"] = 240
    out["len"] = dtype.itemsize
    if layout.epc_bytes == 12:
        out["epc_t"] = 0x80 | 13
    else:
        out["epc_t"] = 241
        out["epc_len"] = 6 + layout.epc_bytes
        out["epc_bits"] = 8 * layout.epc_bytes
    if layout.epc_bytes:
        out["epc"] = _unhex(reads["epc"], layout.epc_bytes)
    sel = layout.sel
    if sel.rospec_id is not None:
        out["rospec_t"] = 0x80 | 9
        out["rospec"] = sel.rospec_id
    if sel.spec_index:
        out["spec_t"] = 0x80 | 14
        out["spec"] = 1  # the ROSpec's one AISpec
    if sel.inventory_parameter_spec_id:
        out["inv_t"] = 0x80 | 10
        out["inv"] = 1
    if sel.antenna:
        out["ant_t"] = 0x80 | 1
        out["ant"] = reads["antenna"]
    if layout.rssi:
        out["rssi_t"] = 0x80 | 6
        out["rssi"] = np.clip(np.rint(reads["rssi"]), -128, 127).astype(np.int8)
    if sel.channel_index:  # a hopping reader's channel: 1..50, reproducible per read
        out["chan_t"] = 0x80 | 7
        out["chan"] = reads["first_seen_us"] // 251 % 50 + 1
    utc = sel.uptime_since_us is None
    base = -sel.utc_offset_us if sel.uptime_since_us is None else sel.uptime_since_us
    if sel.first_seen:
        out["first_t"] = 0x80 | (2 if utc else 3)
        out["first"] = (reads["first_seen_us"] - base).astype(np.uint64)
    if sel.last_seen:
        out["last_t"] = 0x80 | (4 if utc else 5)
        out["last"] = (reads["last_seen_us"] - base).astype(np.uint64)
    if sel.seen_count:
        out["count_t"] = 0x80 | 8
        out["count"] = np.clip(reads["seen_count"], 0, 0xFFFF)
    if sel.access_spec_id:
        out["access_t"] = 0x80 | 16
        out["access"] = 0  # no AccessSpec ran
    if layout.phase:
        _custom_header(out, "phase", IMPINJ_RF_PHASE_ANGLE)
        units = np.rint(reads["phase"].astype(np.float64) * PHASE_UNITS).astype(np.int64)
        out["phase"] = np.mod(units, 4096)
    if layout.impinj_rssi:
        _custom_header(out, "irssi", IMPINJ_PEAK_RSSI)
        out["irssi"] = np.clip(np.rint(reads["rssi"].astype(np.float64) * 100), -32768, 32767)
    if layout.doppler:
        _custom_header(out, "doppler", IMPINJ_RF_DOPPLER)
        scaled = np.rint(reads["doppler_hz"].astype(np.float64) * DOPPLER_UNITS)
        out["doppler"] = np.clip(scaled, -32768, 32767)
    if layout.extra:
        out["extra"] = np.frombuffer(layout.extra, dtype=np.uint8)
    return out.tobytes()


def _custom_header(out: np.ndarray, name: str, subtype: int) -> None:
    out[f"{name}_t"] = TYPE_CUSTOM
    out[f"{name}_len"] = 14
    out[f"{name}_vendor"] = VENDOR_IMPINJ
    out[f"{name}_sub"] = subtype


def epc_byte_lengths(reads: ReadBatch) -> np.ndarray:
    """Bytes of each EPC (hex digits / 2); raises ValueError for odd-length EPCs."""
    digits = np.char.str_len(reads["epc"]).astype(np.int64)
    if (digits % 2).any():
        raise ValueError("every EPC must have an even number of hex digits")
    return (digits // 2).astype(np.int64)


def tag_report_data(
    reads: ReadBatch, extra: bytes = b"", selector: ContentSelector = EVERYTHING
) -> bytes:
    return tag_report_records(reads, extra, selector)[0]


def tag_report_records(
    reads: ReadBatch, extra: bytes = b"", selector: ContentSelector = EVERYTHING
) -> tuple[bytes, list[int]]:
    """The TagReportData parameters for ``reads``, in order, as one byte string.

    Each read carries EPC-96 (96-bit EPCs) or EPCData, AntennaID, PeakRSSI (when known),
    First/LastSeenTimestampUTC and TagSeenCount; Impinj RFPhaseAngle, PeakRSSI and
    RFDopplerFrequency follow when the read has a phase or Doppler value; ``selector``
    drops what the client did not ask for. ``extra`` is appended to every record (how
    the simulator injects unknown vendor parameters). Also returns where each record
    starts (plus the end), so one encoding can be cut into several reports.
    """
    if len(reads) == 0:
        return b"", [0]
    rssi = ~np.isnan(reads["rssi"]) & selector.peak_rssi
    phase = ~np.isnan(reads["phase"]) & selector.impinj
    doppler = ~np.isnan(reads["doppler_hz"]) & selector.impinj
    key = epc_byte_lengths(reads) * 8 + rssi * 4 + phase * 2 + doppler
    bounds = [0, *(np.flatnonzero(key[1:] != key[:-1]) + 1).tolist(), len(reads)]
    parts = []
    offsets = np.empty(len(reads) + 1, dtype=np.int64)
    offsets[0] = done = 0
    for start, stop in itertools.pairwise(bounds):
        k = int(key[start])
        layout = _Layout(k >> 3, bool(k & 4), bool(k & 2), bool(k & 1), extra, selector)
        size = _record_dtype(layout).itemsize
        parts.append(_encode_run(reads[start:stop], layout))
        offsets[start + 1 : stop + 1] = done + size * np.arange(1, stop - start + 1)
        done += size * (stop - start)
    return b"".join(parts), offsets.tolist()


def ro_access_report(
    msg_id: int, reads: ReadBatch, extra: bytes = b"", selector: ContentSelector = EVERYTHING
) -> bytes:
    """One RO_ACCESS_REPORT carrying every read of ``reads``."""
    body = tag_report_data(reads, extra, selector)
    return message(MessageType.RO_ACCESS_REPORT, msg_id, body)


# -- decoding what a client sends (just enough to act on it) -----------------------------
@dataclass(slots=True)
class Param:
    """A decoded TLV/TV parameter: type, body and nested parameters (parsed lazily)."""

    type: int
    body: bytes
    vendor: int = 0
    subtype: int = 0

    def children(self, skip: int = 0) -> list[Param]:
        return list(iter_params(self.body[skip:]))

    def find(self, param_type: int, skip: int = 0) -> Param | None:
        return next((p for p in self.children(skip) if p.type == param_type), None)


#: Value sizes of TV-encoded parameters (type → bytes after the type byte).
TV_SIZES: Final[dict[int, int]] = {
    1: 2, 2: 8, 3: 8, 4: 8, 5: 8, 6: 1, 7: 2, 8: 2, 9: 4, 10: 2,
    11: 2, 12: 2, 13: 12, 14: 2, 15: 2, 16: 4, 17: 2, 18: 4, 19: 2, 20: 2,
}  # fmt: skip


class ParameterError(ValueError):
    """A parameter list that cannot be walked (truncated, unknown TV type, bad length)."""


def iter_params(data: bytes) -> Iterator[Param]:
    pos = 0
    while pos < len(data):
        first = data[pos]
        if first & 0x80:
            ptype = first & 0x7F
            size = TV_SIZES.get(ptype)
            if size is None or pos + 1 + size > len(data):
                raise ParameterError(f"unknown or truncated TV parameter {ptype} at byte {pos}")
            yield Param(ptype, data[pos + 1 : pos + 1 + size])
            pos += 1 + size
            continue
        if pos + 4 > len(data):
            raise ParameterError(f"truncated TLV header at byte {pos}")
        ptype, length = struct.unpack_from(">HH", data, pos)
        ptype &= 0x3FF
        if length < 4 or pos + length > len(data):
            raise ParameterError(f"TLV parameter {ptype} at byte {pos} has bad length {length}")
        if ptype == TYPE_CUSTOM and length >= 12:
            vendor, subtype = struct.unpack_from(">II", data, pos + 4)
            yield Param(ptype, data[pos + 12 : pos + length], vendor, subtype)
        else:
            yield Param(ptype, data[pos + 4 : pos + length])
        pos += length


@dataclass(slots=True)
class AISpecRequest:
    """One AISpec of an ROSpec: its antennas and stop trigger (LLRP 1.0.1 10.2.2)."""

    antennas: tuple[int, ...]
    stop_trigger: int = 0  # 0 Null, 1 Duration, 2 GPI with timeout, 3 TagObservation
    duration_ms: int = 0  # Duration's value, or GPI's / TagObservation's timeout
    #: TagObservationTrigger type: 0 upon seeing N tags or timeout, 1 upon no new tags
    #: for T ms or timeout, 2 N attempts to see all tags in the field or timeout
    observation: int = 0
    number_of_tags: int = 0
    number_of_attempts: int = 0
    quiet_ms: int = 0  # T of "no more new tags for T ms"
    inventory_parameter_specs: int = 0


@dataclass(slots=True)
class ROSpecRequest:
    """The parts of an ADD_ROSPEC the simulator acts on (and tests check)."""

    rospec_id: int
    start_trigger: int  # 0 Null, 1 Immediate, 2 Periodic, 3 GPI
    antennas: tuple[int, ...]
    report_trigger: int  # 0 None, 1 Upon_N_Tags_Or_End_Of_AISpec, 2 ..._Of_ROSpec
    report_n: int
    current_state: int = 0
    selector: ContentSelector = EVERYTHING
    ai_stop_trigger: int = 0  # 0 Null (continuous), 1 Duration, 2 GPI, 3 Tag observation
    tx_power_index: dict[int, int] = field(default_factory=dict)  # antenna → table index
    hop_table: dict[int, tuple[int, int]] = field(default_factory=dict)  # → (table, channel)
    session: dict[int, int] = field(default_factory=dict)  # antenna → Gen2 session
    search_mode: dict[int, int] = field(default_factory=dict)  # antenna → Impinj mode
    raw: bytes = field(default=b"", repr=False)
    period_offset_ms: int = 0  # Periodic start trigger: first start after, then every
    period_ms: int = 0
    stop_trigger: int = 0  # ROSpecStopTrigger: 0 Null, 1 Duration, 2 GPI with timeout
    stop_duration_ms: int = 0
    aispecs: list[AISpecRequest] = field(default_factory=list)
    report_spec: bool = False  # whether an ROReportSpec was given (else the reader's)


def parse_add_rospec(body: bytes, factory_flags: int = 0xFFFF) -> ROSpecRequest:
    """ADD_ROSPEC body → :class:`ROSpecRequest`; raises ParameterError when malformed."""
    rospec = next((p for p in iter_params(body) if p.type == 177), None)
    if rospec is None or len(rospec.body) < 6:
        raise ParameterError("ADD_ROSPEC has no ROSpec parameter")
    rospec_id, _priority, state = struct.unpack_from(">IBB", rospec.body)
    children = rospec.children(6)
    request = ROSpecRequest(rospec_id, 0, (), 0, 0, state, raw=rospec.body)
    for child in children:
        if child.type == 178:  # ROBoundarySpec
            start = child.find(179)
            if start is not None and start.body:
                request.start_trigger = start.body[0]
                periodic = start.find(180, 1)  # PeriodicTriggerValue: offset, period
                if periodic is not None and len(periodic.body) >= 8:
                    request.period_offset_ms, request.period_ms = struct.unpack_from(
                        ">II", periodic.body
                    )
            stop = child.find(182)
            if stop is not None and len(stop.body) >= 5:
                request.stop_trigger, request.stop_duration_ms = struct.unpack_from(
                    ">BI", stop.body
                )
        elif child.type == 183 and len(child.body) >= 2:  # AISpec
            _parse_aispec(child, request)
        elif child.type == 237 and len(child.body) >= 3:  # ROReportSpec
            request.report_spec = True
            request.report_trigger, request.report_n = struct.unpack_from(">BH", child.body)
            flags, impinj = factory_flags, False
            for part in child.children(3):
                if part.type == 238 and len(part.body) >= 2:  # TagReportContentSelector
                    flags = struct.unpack_from(">H", part.body)[0]
                elif (
                    part.type == TYPE_CUSTOM and part.vendor == VENDOR_IMPINJ and part.subtype == 50
                ):
                    impinj = any(
                        len(mode.body) >= 2 and struct.unpack_from(">H", mode.body)[0]
                        for mode in part.children()
                    )
            request.selector = ContentSelector.from_flags(flags, rospec_id, impinj)
    return request


def _parse_inventory_command(command: Param, antenna: int, request: ROSpecRequest) -> None:
    for part in command.children(1):
        if part.type == 336 and part.body:  # C1G2SingulationControl: session in 2 bits
            request.session[antenna] = part.body[0] >> 6
        elif _is_impinj(part, 23) and len(part.body) >= 2:  # ImpinjInventorySearchMode
            request.search_mode[antenna] = struct.unpack_from(">H", part.body)[0]


def _is_impinj(param: Param, subtype: int) -> bool:
    return param.type == TYPE_CUSTOM and param.vendor == VENDOR_IMPINJ and param.subtype == subtype


def _parse_aispec(aispec: Param, request: ROSpecRequest) -> None:
    count = struct.unpack_from(">H", aispec.body)[0]
    antennas = struct.unpack_from(f">{count}H", aispec.body, 2)
    request.antennas += antennas
    spec = AISpecRequest(antennas)
    request.aispecs.append(spec)
    for part in aispec.children(2 + 2 * count):
        if part.type == 184 and len(part.body) >= 5:  # AISpecStopTrigger
            spec.stop_trigger, spec.duration_ms = struct.unpack_from(">BI", part.body)
            if not request.ai_stop_trigger:
                request.ai_stop_trigger = spec.stop_trigger
            observation = part.find(185, 5)  # TagObservationTrigger
            if observation is not None and len(observation.body) >= 12:
                values = struct.unpack_from(">BBHHHI", observation.body)
                spec.observation, _, spec.number_of_tags = values[:3]
                spec.number_of_attempts, spec.quiet_ms, spec.duration_ms = values[3:]
            gpi = part.find(181, 5)  # GPITriggerValue: port, event, timeout
            if gpi is not None and len(gpi.body) >= 7:
                spec.duration_ms = struct.unpack_from(">I", gpi.body, 3)[0]
        elif part.type == 186:  # InventoryParameterSpec: u16 id, u8 protocol, then antennas
            spec.inventory_parameter_specs += 1
            for config in part.children(3):
                if config.type != 222 or len(config.body) < 2:  # AntennaConfiguration
                    continue
                antenna = struct.unpack_from(">H", config.body)[0]
                for item in config.children(2):
                    if item.type == 224 and len(item.body) >= 6:  # RFTransmitter
                        hop, channel, power = struct.unpack_from(">HHH", item.body)
                        request.tx_power_index[antenna] = power
                        request.hop_table[antenna] = (hop, channel)
                    elif item.type == 330:  # C1G2InventoryCommand: u8 flags, then params
                        _parse_inventory_command(item, antenna, request)


def parse_keepalive_ms(set_reader_config_body: bytes) -> int | None:
    """The KeepaliveSpec interval of a SET_READER_CONFIG (None when absent or disabled)."""
    for param in iter_params(set_reader_config_body[1:]):
        if param.type == 220 and len(param.body) >= 5:
            trigger, interval = struct.unpack_from(">BI", param.body)
            return int(interval) if trigger == 1 else 0
    return None
