"""Our LLRP encoder and our driver's decoder, both checked against sllurp.

The property tests generate reports with hypothesis, encode them with the simulator's
encoder, and require that (1) sllurp decodes exactly the values we put in, and (2) the
driver's fast decoder agrees with sllurp on every report.
"""

from __future__ import annotations

import math
import struct

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sllurp.llrp import LLRPMessage

from tagsweep.domain import READ_DTYPE, ReadBatch, empty_reads, now_us
from tagsweep.drivers.llrp.frames import HEADER_SIZE, Framer
from tagsweep.drivers.llrp.reports import ReportDecoder
from tagsweep.drivers.llrp.sllurp_reads import reads_from_sllurp, same_reads
from tagsweep.simulators.llrp import encoder as enc
from tagsweep.simulators.llrp.faults import MALFORMED_IMPINJ_PARAM, UNKNOWN_VENDOR_PARAM

PHASE_STEP = 2 * math.pi / 4096


@st.composite
def reads(draw: st.DrawFn, max_size: int = 25) -> ReadBatch:
    """Reads with every value representable on the wire (LLRP's units)."""
    n = draw(st.integers(0, max_size))
    batch = empty_reads(n)
    for i in range(n):
        size = draw(st.one_of(st.just(12), st.integers(1, 32)))
        batch[i]["epc"] = draw(st.binary(min_size=size, max_size=size)).hex().upper().encode()
        batch[i]["antenna"] = draw(st.integers(0, 65535))
        impinj = draw(st.booleans())
        if impinj:
            if draw(st.booleans()):
                batch[i]["phase"] = draw(st.integers(0, 4095)) * PHASE_STEP
            else:
                batch[i]["doppler_hz"] = draw(st.integers(-32768, 32767)) / 16
        rssi = draw(st.one_of(st.none(), st.integers(-128, 127)))
        batch[i]["rssi"] = np.nan if rssi is None else rssi
        batch[i]["first_seen_us"] = draw(st.integers(0, 2**63 - 1))
        batch[i]["last_seen_us"] = draw(st.integers(0, 2**63 - 1))
        batch[i]["seen_count"] = draw(st.integers(0, 65535))
    return batch


def _check_sllurp_tag(tag: dict[str, object], read: np.void) -> None:
    assert tag["EPC"] == bytes(read["epc"]).lower()
    if len(read["epc"]) == 24:
        assert tag["EPC-96"] == tag["EPC"]
    assert tag["AntennaID"] == read["antenna"]
    assert tag["FirstSeenTimestampUTC"] == read["first_seen_us"]
    assert tag["LastSeenTimestampUTC"] == read["last_seen_us"]
    assert tag["TagSeenCount"] == read["seen_count"]
    if math.isnan(read["rssi"]):
        assert "PeakRSSI" not in tag
    else:
        assert tag["PeakRSSI"] == read["rssi"]
    if math.isnan(read["phase"]):
        assert "ImpinjRFPhaseAngle" not in tag
    else:
        assert tag["ImpinjRFPhaseAngle"] == round(float(read["phase"]) / PHASE_STEP)
    if math.isnan(read["doppler_hz"]):
        assert "ImpinjRFDopplerFrequency" not in tag
    else:
        assert tag["ImpinjRFDopplerFrequency"] == read["doppler_hz"] * 16
    if "ImpinjPeakRSSI" in tag:
        assert tag["ImpinjPeakRSSI"] == read["rssi"] * 100


def _assert_same_as_input(decoded: ReadBatch, sent: ReadBatch) -> None:
    assert len(decoded) == len(sent)
    for name in ("epc", "antenna", "first_seen_us", "last_seen_us", "seen_count"):
        assert np.array_equal(decoded[name], sent[name]), name
    assert np.array_equal(decoded["rssi"], sent["rssi"], equal_nan=True)
    assert np.array_equal(decoded["doppler_hz"], sent["doppler_hz"], equal_nan=True)
    assert np.allclose(decoded["phase"], sent["phase"], equal_nan=True, atol=1e-6)


@settings(max_examples=150, deadline=None)
@given(reads())
def test_encoded_report_decodes_in_sllurp_to_the_same_values(batch: ReadBatch) -> None:
    message = enc.ro_access_report(42, batch)
    decoded = LLRPMessage(msgbytes=message).msgdict["RO_ACCESS_REPORT"]
    assert decoded["ID"] == 42
    assert len(decoded["TagReportData"]) == len(batch)
    for tag, read in zip(decoded["TagReportData"], batch, strict=True):
        _check_sllurp_tag(tag, read)


@settings(max_examples=150, deadline=None)
@given(reads())
def test_fast_decoder_agrees_with_sllurp(batch: ReadBatch) -> None:
    message = enc.ro_access_report(1, batch)
    tags = LLRPMessage(msgbytes=message).msgdict["RO_ACCESS_REPORT"]["TagReportData"]
    reference = reads_from_sllurp(tags, reader_id=9)
    decoded, problems = ReportDecoder(reader_id=9).decode(message[HEADER_SIZE:])
    assert problems == []
    assert same_reads(decoded, reference)
    assert (decoded["reader"] == 9).all()
    _assert_same_as_input(decoded, batch)


selectors = st.builds(
    enc.ContentSelector,
    rospec_id=st.one_of(st.none(), st.integers(1, 2**32 - 1)),
    antenna=st.booleans(),
    peak_rssi=st.booleans(),
    first_seen=st.booleans(),
    last_seen=st.booleans(),
    seen_count=st.booleans(),
    impinj=st.booleans(),
    spec_index=st.booleans(),
    inventory_parameter_spec_id=st.booleans(),
    channel_index=st.booleans(),
    access_spec_id=st.booleans(),
    # a reader without a UTC clock (uptime since 0: the stamps' values stay valid)
    uptime_since_us=st.one_of(st.none(), st.just(0)),
)


@settings(max_examples=100, deadline=None)
@given(reads(max_size=8), selectors)
def test_fast_decoder_agrees_with_sllurp_whatever_the_client_selected(
    batch: ReadBatch, selector: enc.ContentSelector
) -> None:
    message = enc.ro_access_report(1, batch, selector=selector)
    tags = LLRPMessage(msgbytes=message).msgdict["RO_ACCESS_REPORT"]["TagReportData"]
    assert all(("ROSpecID" in t) == (selector.rospec_id is not None) for t in tags)
    assert all(("ChannelIndex" in t) == selector.channel_index for t in tags)
    assert all(("SpecIndex" in t) == selector.spec_index for t in tags)
    assert all(("AccessSpecID" in t) == selector.access_spec_id for t in tags)
    decoder = ReportDecoder(reader_id=2)
    decoded, problems = decoder.decode(message[HEADER_SIZE:])
    reference = reads_from_sllurp(tags, reader_id=2, uptime=decoder.uptime)
    assert problems == []
    uptime = selector.uptime_since_us is not None and (selector.first_seen or selector.last_seen)
    assert all(("FirstSeenTimestampUptime" in t) == (uptime and selector.first_seen) for t in tags)
    if uptime and len(batch):
        # uptime stamps: shifted by one offset, the newest put at the receive time
        field = "last_seen_us" if selector.last_seen else "first_seen_us"
        shift = decoded[field] - batch[field]
        assert (shift == shift[0]).all()
        assert abs(int(decoded["last_seen_us"].max()) - now_us()) < 10_000_000
    if not (selector.first_seen or selector.last_seen):
        # no timestamp on the wire: both stamp the time of receipt, a moment apart
        assert np.array_equal(decoded["first_seen_us"], decoded["last_seen_us"])
        assert (abs(decoded["first_seen_us"] - now_us()) < 10_000_000).all()
        for batch_ in (decoded, reference):
            batch_["first_seen_us"] = batch_["last_seen_us"] = 0
    assert same_reads(decoded, reference)
    if not selector.antenna:
        assert (decoded["antenna"] == 0).all()
    if not selector.seen_count:
        assert (decoded["seen_count"] == 1).all()
    if selector.last_seen and not selector.first_seen and not uptime:
        assert np.array_equal(decoded["first_seen_us"], batch["last_seen_us"])


@settings(max_examples=60, deadline=None)
@given(reads(max_size=12), st.integers(1, 5))
def test_one_encoding_cut_into_reports_decodes_to_the_same_slices(
    batch: ReadBatch, per_report: int
) -> None:
    body, offsets = enc.tag_report_records(batch)
    assert offsets[0] == 0
    assert offsets[-1] == len(body)
    decoder = ReportDecoder()
    for start in range(0, len(batch), per_report):
        stop = min(start + per_report, len(batch))
        decoded, problems = decoder.decode(body[offsets[start] : offsets[stop]])
        assert problems == []
        _assert_same_as_input(decoded, batch[start:stop])


def _uniform_reads(n: int) -> ReadBatch:
    batch = empty_reads(n)
    batch["epc"] = [f"{i:024X}".encode() for i in range(n)]
    batch["antenna"] = np.arange(n) % 4 + 1
    batch["rssi"] = -40 - np.arange(n) % 30
    batch["first_seen_us"] = 1_700_000_000_000_000 + np.arange(n)
    batch["last_seen_us"] = batch["first_seen_us"] + 5
    batch["seen_count"] = np.arange(n) % 7 + 1
    return batch


def test_uniform_report_with_impinj_values() -> None:
    batch = _uniform_reads(500)
    batch["phase"] = (np.arange(500) % 4096) * PHASE_STEP
    batch["doppler_hz"] = (np.arange(500) - 250) / 16
    batch["rssi"] = -55.25  # with Impinj values present, PeakRSSI is also sent at 0.01 dBm
    message = enc.ro_access_report(3, batch)
    decoded, problems = ReportDecoder().decode(message[HEADER_SIZE:])
    assert problems == []
    _assert_same_as_input(decoded, batch)
    tags = LLRPMessage(msgbytes=message).msgdict["RO_ACCESS_REPORT"]["TagReportData"]
    assert same_reads(decoded, reads_from_sllurp(tags))


def test_unknown_vendor_parameter_is_skipped_and_counted_keeping_the_reads() -> None:
    batch = _uniform_reads(50)
    message = enc.ro_access_report(3, batch, extra=UNKNOWN_VENDOR_PARAM)
    decoded, problems = ReportDecoder().decode(message[HEADER_SIZE:])
    _assert_same_as_input(decoded, batch)
    assert [(p.kind, p.count) for p in problems] == [("unknown_parameter", 50)]
    assert "vendor=57005 subtype=7" in problems[0].detail
    tags = LLRPMessage(msgbytes=message).msgdict["RO_ACCESS_REPORT"]["TagReportData"]
    assert same_reads(decoded, reads_from_sllurp(tags))


def test_malformed_impinj_parameter_that_crashes_sllurp_costs_only_that_parameter() -> None:
    batch = _uniform_reads(10)
    message = enc.ro_access_report(3, batch, extra=MALFORMED_IMPINJ_PARAM)
    try:
        LLRPMessage(msgbytes=message)
    except struct.error:
        pass  # sllurp's decoder raises past its own error handling (kills its thread)
    else:
        raise AssertionError("sllurp now copes with a truncated Impinj parameter")
    decoded, problems = ReportDecoder().decode(message[HEADER_SIZE:])
    _assert_same_as_input(decoded, batch)
    assert [(p.kind, p.count) for p in problems] == [("malformed_parameter", 10)]


def test_mixed_layouts_and_a_damaged_record_keep_every_good_read() -> None:
    batch = _uniform_reads(6)
    batch["epc"][2] = b"ABCD"  # EPCData instead of EPC-96: the slow path
    batch["rssi"][4] = np.nan
    body = enc.tag_report_data(batch)
    # a TagReportData whose TV parameter type is unknown (127): undecodable record
    bad = struct.pack(">HH", 240, 6) + bytes([0xFF, 0])
    decoded, problems = ReportDecoder().decode(bad + body)
    _assert_same_as_input(decoded, batch)
    assert [p.kind for p in problems] == ["malformed_record"]


def test_garbage_report_body_is_a_decode_problem_not_an_exception() -> None:
    decoded, problems = ReportDecoder().decode(b"\xff" * 37)
    assert len(decoded) == 0
    assert decoded.dtype == READ_DTYPE
    assert problems[0].kind == "decode"


# -- framing -------------------------------------------------------------------------------
def _stream() -> tuple[bytes, list[int]]:
    wrong_length = enc.ro_access_report(8, _uniform_reads(2))
    parts = [
        enc.ro_access_report(1, _uniform_reads(30)),
        b"\x99\xaa" * 20,  # noise
        enc.keepalive(2),
        struct.pack(">HII", (1 << 10) | 61, 0xFFFFFFF0, 3) + bytes(16),  # absurd length
        enc.ro_access_report(4, _uniform_reads(3)),
        wrong_length[:2] + struct.pack(">I", 1 << 19) + wrong_length[6:],  # plausible, wrong
        enc.message(61, 5, struct.pack(">HH", 0x3D, 99)),  # report not starting with TRD
        enc.status_response(30, 6),
        enc.ro_access_report(7, _uniform_reads(1000)),
    ]
    return b"".join(parts), [1, 2, 4, 5, 6, 7]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=1, max_size=40))
def test_framer_resynchronises_whatever_the_chunking(chunks: list[int]) -> None:
    stream, expected_ids = _stream()
    framer = Framer(max_report_bytes=1 << 20)
    frames = []
    pos = 0
    sizes = iter(chunks)
    while pos < len(stream):
        size = next(sizes, 4096)
        frames += framer.feed(stream[pos : pos + size])
        pos += size
    assert [f.msg_id for f in frames] == expected_ids
    assert framer.buffered == 0
    kinds = [p.kind for p in framer.problems]
    assert kinds == ["framing", "framing", "framing"]
    assert "exceeds the 1048576-byte bound" in framer.problems[1].detail
    report = frames[-1]
    decoded, _ = ReportDecoder().decode(report.data[HEADER_SIZE:])
    assert len(decoded) == 1000


def test_framer_waits_for_a_plausible_incomplete_report() -> None:
    message = enc.ro_access_report(9, _uniform_reads(100))
    framer = Framer()
    assert framer.feed(message[:-1]) == []
    assert framer.problems == []
    (frame,) = framer.feed(message[-1:])
    assert frame.msg_id == 9
    assert frame.data == message
