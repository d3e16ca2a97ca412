"""What a simulated reader says about itself: :class:`ReaderIdentity` (antennas, power
table, frequencies, modes, its clock), the clock presets (:func:`parse_clock`), and the
GET_READER_CAPABILITIES / GET_READER_CONFIG responses describing it."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, replace
from typing import Final

from tagsweep.simulators.llrp.encoder.messages import (
    VENDOR_IMPINJ,
    MessageType,
    llrp_status,
    message,
    tlv,
)


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
