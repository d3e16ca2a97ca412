"""Captures of what a reader sent decode to what the reader sent.

The byte stream is recorded for real: the driver inventories the simulated reader
through a recording TCP proxy on loopback. That stream is then written as the files a
field engineer sends in: the raw bytes, and pcap/pcapng captures of it cut into TCP
segments (out of order, retransmitted, with the client's packets in between, sequence
numbers wrapping around 2**32) — and ``tagsweep llrp decode`` must give back every read
the simulator put on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

import dpkt
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.domain import ReadBatch
from tagsweep.drivers.llrp import LlrpDriver
from tagsweep.drivers.llrp.capture import Stream, decode_stream, read_capture
from tagsweep.simulators.llrp import LlrpSimulator
from tagsweep.simulators.llrp import encoder as enc
from tagsweep.simulators.llrp.faults import UNKNOWN_VENDOR_PARAM
from tests.llrp.test_driver import FAST, collect, everything_from, llrp_url, numbered_source

READER = b"\x0a\x00\x00\x05"  # 10.0.0.5, the reader
CLIENT = b"\x0a\x00\x00\x09"  # 10.0.0.9, the gateway
ISN = 2**32 - 3000  # the reader's initial sequence number: the stream wraps past 2**32


@contextlib.asynccontextmanager
async def recording_proxy(target_port: int, recorded: bytearray) -> AsyncIterator[int]:
    """A loopback TCP proxy to the reader that records what the reader sends."""

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: bool) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                if keep:
                    recorded.extend(data)
                dst.write(data)
                await dst.drain()
        dst.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        reader_r, reader_w = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pump(reader_r, client_w, True), pump(client_r, reader_w, False))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


@pytest.fixture(scope="module")
def recorded() -> tuple[bytes, ReadBatch]:
    """(what the reader sent on one connection, the reads it put on the wire)."""

    async def record() -> tuple[bytes, ReadBatch]:
        stream = bytearray()
        async with LlrpSimulator(port=0, tag_source=numbered_source(batches=6)) as sim:
            async with recording_proxy(sim.port, stream) as port:
                url = llrp_url(sim, report_n=40).replace(f":{sim.port}?", f":{port}?")
                driver = LlrpDriver(url, reader_id=1, backoff=FAST)
                await collect(driver, everything_from(sim, 0))
            sent = sim.connections[0].sent_reads()
        return bytes(stream), sent

    return asyncio.run(record())


def _packet(src: bytes, dst: bytes, sport: int, dport: int, seq: int, data: bytes,
            flags: int = dpkt.tcp.TH_ACK) -> bytes:  # fmt: skip
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq % 2**32, flags=flags, data=data)
    ip = dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_TCP, data=tcp)
    ip.len = len(ip)
    return bytes(dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


def _segments(stream: bytes, lose: int | None = None) -> list[bytes]:
    """The stream as Ethernet frames: SYN, data in random-sized segments shuffled a
    little, one retransmitted, client packets in between; ``lose``: drop that one."""
    rng = random.Random(7)
    cuts, pos = [], 0
    while pos < len(stream):
        size = rng.randint(1, 1460)
        cuts.append((pos, stream[pos : pos + size]))
        pos += size
    packets = [_packet(READER, CLIENT, 5084, 40000, ISN, b"", dpkt.tcp.TH_SYN)]
    order = list(range(len(cuts)))
    for i in range(0, len(order) - 1, 7):  # every seventh pair arrives swapped
        order[i], order[i + 1] = order[i + 1], order[i]
    for n, i in enumerate(order):
        if i == lose:
            continue
        offset, data = cuts[i]
        packets.append(_packet(READER, CLIENT, 5084, 40000, ISN + 1 + offset, data))
        if n % 5 == 0:  # the gateway's acknowledgements and requests: not the reader's
            packets.append(_packet(CLIENT, READER, 40000, 5084, 99 + n, b"\x04\x48" + bytes(8)))
        if n == 3:  # a retransmission
            packets.append(_packet(READER, CLIENT, 5084, 40000, ISN + 1 + offset, data))
    return packets


def _write(path: Path, packets: list[bytes], ng: bool) -> Path:
    with path.open("wb") as fh:
        writer = dpkt.pcapng.Writer(fh) if ng else dpkt.pcap.Writer(fh)
        for n, frame in enumerate(packets):
            writer.writepkt(frame, ts=1_795_000_000 + n / 1000)
    return path


def _same_reads(got: ReadBatch, sent: ReadBatch) -> bool:
    fields = ("epc", "antenna", "first_seen_us", "last_seen_us", "seen_count")
    return all(np.array_equal(got[f], sent[f]) for f in fields)


def test_a_raw_stream_decodes_to_every_read_sent(
    recorded: tuple[bytes, ReadBatch], tmp_path: Path
) -> None:
    stream, sent = recorded
    raw = tmp_path / "reader.bin"
    raw.write_bytes(stream)
    [only] = read_capture(raw)
    decoded = decode_stream(only, validate=True)
    assert _same_reads(decoded.reads, sent)
    assert decoded.problems == []
    assert decoded.messages["RO_ACCESS_REPORT"] >= 6
    assert decoded.messages["READER_EVENT_NOTIFICATION"] >= 1
    assert decoded.sllurp_disagreements == 0


@pytest.mark.parametrize("ng", [False, True], ids=["pcap", "pcapng"])
def test_a_capture_reassembles_the_readers_stream(
    recorded: tuple[bytes, ReadBatch], tmp_path: Path, ng: bool
) -> None:
    stream, sent = recorded
    path = _write(tmp_path / "reader.cap", _segments(stream), ng)
    [only] = read_capture(path)
    assert only.name == "10.0.0.5:5084 → 10.0.0.9:40000"
    assert only.data == stream
    assert (only.holes, only.missing_bytes) == (0, 0)
    assert only.retransmitted_bytes > 0
    assert _same_reads(decode_stream(only).reads, sent)


def test_a_lost_segment_costs_only_the_messages_it_cut(
    recorded: tuple[bytes, ReadBatch], tmp_path: Path
) -> None:
    stream, sent = recorded
    packets = _segments(stream, lose=20)
    [only] = read_capture(_write(tmp_path / "lossy.pcap", packets, ng=False))
    assert only.holes == 1
    assert only.missing_bytes > 0
    assert len(only.data) == len(stream) - only.missing_bytes
    decoded = decode_stream(only)
    got = {
        (bytes(e), int(t))
        for e, t in zip(decoded.reads["epc"], decoded.reads["first_seen_us"], strict=True)
    }
    truth = {(bytes(e), int(t)) for e, t in zip(sent["epc"], sent["first_seen_us"], strict=True)}
    assert got <= truth  # nothing invented
    assert len(truth) - len(got) < 300  # at most the report(s) the hole cut lost
    assert decoded.problems  # and the hole is said, with its stream offset
    assert all("stream offset" in p.detail for p in decoded.problems)


def test_llrp_decode_command_writes_the_reads(
    recorded: tuple[bytes, ReadBatch], tmp_path: Path
) -> None:
    stream, sent = recorded
    path = _write(tmp_path / "reader.pcapng", _segments(stream), ng=True)
    out = tmp_path / "reads.parquet"
    result = CliRunner().invoke(app, ["llrp", "decode", str(path), "--validate", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "10.0.0.5:5084 → 10.0.0.9:40000" in result.output
    assert f"reads {len(sent):,}" in result.output
    assert "0 disagree" in result.output
    table = pq.read_table(out)
    assert table.num_rows == len(sent)
    assert table.column("epc").to_pylist() == [e.decode() for e in sent["epc"].tolist()]


def test_llrp_decode_says_what_is_wrong_with_a_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pcap"
    broken.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x00" * 7)
    result = CliRunner().invoke(app, ["llrp", "decode", str(broken)])
    assert result.exit_code == 2
    assert "not a readable pcap/pcapng capture" in result.output


def test_unused_vendor_parameters_are_skipped_not_problems(tmp_path: Path) -> None:
    sent = numbered_source_reads()
    report = enc.ro_access_report(1, sent, UNKNOWN_VENDOR_PARAM)
    decoded = decode_stream(Stream("reader.bin", report))
    assert decoded.problems == []
    assert decoded.skipped_parameters == len(sent)
    assert _same_reads(decoded.reads, sent)


def numbered_source_reads() -> ReadBatch:
    async def first() -> ReadBatch:
        async for batch in numbered_source(batches=1)():
            return batch
        raise AssertionError("no batch")

    return asyncio.run(first())
