"""What a reader sent, from a capture: the field-debugging side of the LLRP driver.

"Send us a capture" is how reader problems get solved: ``tcpdump -i eth0 -w reader.pcap
port 5084`` (or Wireshark) on the gateway, or the raw bytes of one connection saved by
``socat``/``nc``. :func:`read_capture` takes either, finds the reader → client TCP
streams of a pcap/pcapng file (Ethernet, Linux cooked, loopback or raw IP; IPv4 and
IPv6) and reassembles them in sequence order (retransmissions dropped, holes counted);
:func:`decode_stream` then runs each stream through the driver's own :class:`Framer` and
:class:`ReportDecoder`, so what it shows is what the gateway would have read, with the
same problems at the same stream offsets, optionally cross-checked against sllurp.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import dpkt
import numpy as np
from sllurp.llrp import LLRPMessage
from sllurp.llrp_proto import Message_Type2Name

from tagsweep.domain import READ_DTYPE, ReadBatch
from tagsweep.drivers.llrp.frames import HEADER_SIZE, RO_ACCESS_REPORT, Framer, Problem
from tagsweep.drivers.llrp.reports import ReportDecoder
from tagsweep.drivers.llrp.sllurp_reads import reads_from_sllurp, same_reads

LLRP_PORT = 5084
_PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_SEQ_MOD = 1 << 32


class CaptureError(Exception):
    """The capture cannot be read at all (the message says why and where)."""


@dataclass(slots=True)
class Stream:
    """The bytes one reader sent on one TCP connection, in order."""

    name: str  # "reader:port → client:port", or the file name for a raw stream
    data: bytes
    holes: int = 0  # gaps in the sequence space (segments the capture missed)
    missing_bytes: int = 0
    retransmitted_bytes: int = 0


@dataclass(slots=True)
class DecodedStream:
    stream: Stream
    reads: ReadBatch
    messages: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    validated_reports: int = 0
    skipped_parameters: int = 0  # well-formed vendor parameters nothing uses (not problems)
    sllurp_disagreements: int = 0
    trailing_bytes: int = 0  # an incomplete message at the end of the capture


def read_capture(path: Path, port: int = LLRP_PORT) -> list[Stream]:
    """The reader → client streams of a pcap/pcapng capture, or the file itself when it
    is a raw byte stream (no capture magic)."""
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
            fh.seek(0)
            if magic in _PCAP_MAGICS:
                return _streams(_packets(dpkt.pcap.Reader(fh), fh), port)
            if magic == _PCAPNG_MAGIC:
                return _streams(_packets(dpkt.pcapng.Reader(fh), fh), port)
            return [Stream(path.name, fh.read())]
    except (ValueError, dpkt.dpkt.Error, struct.error) as exc:
        raise CaptureError(f"{path}: not a readable pcap/pcapng capture: {exc}") from None


def _packets(reader: Any, fh: BinaryIO) -> Iterator[Any]:
    """IP packets of the capture, whatever its link layer."""
    link = reader.datalink()
    for _ts, buf in reader:
        if link == dpkt.pcap.DLT_EN10MB:
            frame: Any = dpkt.ethernet.Ethernet(buf)
            packet = frame.data
        elif link == dpkt.pcap.DLT_LINUX_SLL:
            packet = dpkt.sll.SLL(buf).data
        elif link in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
            packet = dpkt.loopback.Loopback(buf).data
        elif link in (dpkt.pcap.DLT_RAW, 101, 14):  # raw IP: 12 on BSD, 101 in pcap files
            packet = dpkt.ip6.IP6(buf) if buf and buf[0] >> 4 == 6 else dpkt.ip.IP(buf)
        else:
            raise CaptureError(
                f"{getattr(fh, 'name', 'capture')}: link type {link} is not supported "
                "(Ethernet, Linux cooked, loopback and raw IP are)"
            )
        if isinstance(packet, dpkt.ip.IP | dpkt.ip6.IP6):
            yield packet


def _address(packet: Any, which: str) -> str:
    raw = getattr(packet, which)
    if isinstance(packet, dpkt.ip6.IP6):
        return f"[{ipaddress.IPv6Address(raw)}]"
    return ".".join(str(b) for b in raw)


def _streams(packets: Iterator[Any], port: int) -> list[Stream]:
    flows: dict[tuple[str, int, str, int], list[tuple[int, bytes]]] = {}
    starts: dict[tuple[str, int, str, int], int] = {}
    for packet in packets:
        tcp = packet.data
        if not isinstance(tcp, dpkt.tcp.TCP) or tcp.sport != port:
            continue
        key = (_address(packet, "src"), tcp.sport, _address(packet, "dst"), tcp.dport)
        segments = flows.setdefault(key, [])
        if tcp.flags & dpkt.tcp.TH_SYN:
            starts[key] = (tcp.seq + 1) % _SEQ_MOD  # data starts after the SYN
        if tcp.data:
            segments.append((tcp.seq, bytes(tcp.data)))
    out = []
    for key, segments in flows.items():
        if segments:
            name = f"{key[0]}:{key[1]} → {key[2]}:{key[3]}"
            out.append(_reassemble(name, segments, starts.get(key)))
    return out


def _reassemble(name: str, segments: list[tuple[int, bytes]], start: int | None) -> Stream:
    """Segments in sequence order (32-bit wrap-around included); bytes seen twice are
    kept once, and a hole is counted (and left out) where the capture lost a segment."""
    base = start if start is not None else segments[0][0]
    ordered = sorted(((seq - base) % _SEQ_MOD, data) for seq, data in segments)
    if start is None:  # no SYN: begin at the earliest byte the capture has
        first = ordered[0][0]
        ordered = [(offset - first, data) for offset, data in ordered]
    stream = Stream(name, b"")
    parts: list[bytes] = []
    end = 0
    for offset, data in ordered:
        if offset > end:
            stream.holes += 1
            stream.missing_bytes += offset - end
            end = offset
        if offset + len(data) <= end:
            stream.retransmitted_bytes += len(data)
            continue
        stream.retransmitted_bytes += end - offset
        parts.append(data[end - offset :])
        end = offset + len(data)
    stream.data = b"".join(parts)
    return stream


def decode_stream(stream: Stream, reader_id: int = 0, validate: bool = False) -> DecodedStream:
    """Run one stream through the driver's framer and report decoder."""
    framer = Framer()
    decoder = ReportDecoder(reader_id)
    result = DecodedStream(stream, np.zeros(0, dtype=READ_DTYPE))
    batches: list[ReadBatch] = []
    for frame in framer.feed(stream.data):
        name = Message_Type2Name.get((frame.msg_type, 0, 0), f"type {frame.msg_type}")
        result.messages[str(name)] += 1
        if frame.msg_type != RO_ACCESS_REPORT:
            continue
        batch, problems = decoder.decode(frame.data[HEADER_SIZE:])
        where = f"RO_ACCESS_REPORT id {frame.msg_id} at stream offset {frame.offset}"
        for p in problems:  # the driver's rule: an unused vendor parameter is no fault
            if p.kind == "unknown_parameter":
                result.skipped_parameters += p.count
            else:
                result.problems.append(Problem(p.kind, f"{where}: {p.detail}", p.count))
        batches.append(batch)
        if validate:
            result.validated_reports += 1
            try:
                report = LLRPMessage(msgbytes=frame.data).msgdict["RO_ACCESS_REPORT"]
                tags = report.get("TagReportData", [])
                reference = reads_from_sllurp(tags, reader_id, decoder.uptime)
            except Exception as exc:  # sllurp's failures are what validation is for
                result.problems.append(Problem("sllurp_decode_failed", f"{where}: {exc!r}"))
                result.sllurp_disagreements += 1
                continue
            if not same_reads(batch, reference):
                result.sllurp_disagreements += 1
    result.problems[:0] = framer.problems
    result.trailing_bytes = framer.buffered
    if batches:
        result.reads = np.concatenate(batches)
    return result
