"""The scan-line parser: framing, AIM identifiers, GS1 via biip, labels — and garbage."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagsweep.domain import ScanKind, Symbology
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
    split_aim,
)
from tests.barcode.scans import (
    GLN_ROOM,
    GS,
    OPTIONS,
    Expected,
    examples,
    garbage_lines,
    random_garbage,
    valid_scans,
    with_check_digit,
    wrong_check_digit,
)

INTERPRETER = ScanInterpreter(ScanRules.from_options(OPTIONS))


def interpret(line: bytes | str) -> ScanContent | ScanRejection:
    return INTERPRETER.interpret(line.encode() if isinstance(line, str) else line)


def assert_parsed(result: ScanContent | ScanRejection, expected: Expected) -> None:
    assert isinstance(result, ScanContent), (expected.line, result)
    assert (result.kind, result.value, result.symbology) == (
        expected.kind,
        expected.value,
        expected.symbology,
    ), expected.line
    assert result.fields == expected.fields


@pytest.mark.parametrize("expected", examples(), ids=lambda e: e.line.replace(GS, "<GS>"))
def test_every_label_family_is_recognised(expected: Expected) -> None:
    assert_parsed(interpret(expected.line), expected)


def test_data_keeps_gs_separators_and_drops_the_aim_prefix() -> None:
    result = interpret(f"]d2{GS}0109506000134352{GS}21ABC")
    assert isinstance(result, ScanContent)
    assert result.data == f"0109506000134352{GS}21ABC"
    assert result.aim == "]d2"


@pytest.mark.parametrize(
    ("line", "ai"),
    [
        (f"]C101{wrong_check_digit('0950600013435')}21X", "01"),
        (f"]C1414{wrong_check_digit('095060001343')}", "414"),
        (f"]d2{GS}8004ABC{GS}01{wrong_check_digit('0950600013435')}", "01"),
    ],
)
def test_wrong_gs1_check_digit_is_a_counted_rejection_not_a_scan(line: str, ai: str) -> None:
    result = interpret(line)
    assert isinstance(result, ScanRejection)
    assert result.reason is RejectReason.CHECK_DIGIT
    assert f"AI ({ai})" in result.detail
    assert "check digit" in result.detail


def test_wrong_ean_check_digit_is_rejected() -> None:
    result = interpret("]E05901234123458")
    assert isinstance(result, ScanRejection)
    assert result.reason is RejectReason.CHECK_DIGIT


def test_gs1_symbology_with_a_non_gs1_payload_is_rejected() -> None:
    result = interpret("]C1hello")
    assert isinstance(result, ScanRejection)
    assert result.reason is RejectReason.GS1_INVALID


def test_gs1_digital_link_in_a_qr_code_is_parsed() -> None:
    result = interpret("]Q1https://id.gs1.org/8004/095060001ASSET9")
    assert isinstance(result, ScanContent)
    assert (result.kind, result.value, result.symbology) == (
        ScanKind.GIAI,
        "095060001ASSET9",
        Symbology.QR,
    )


def test_an_ordinary_url_is_an_unknown_scan_not_an_error() -> None:
    result = interpret("]Q1https://example.org/asset/17")
    assert isinstance(result, ScanContent)
    assert result.kind is ScanKind.UNKNOWN


def test_unmapped_gln_still_switches_location_but_says_so() -> None:
    other = with_check_digit("405863900000")
    result = interpret(f"]C1414{other}{GS}254SHELF3")
    assert isinstance(result, ScanContent)
    assert (result.kind, result.value, result.mapped) == (
        ScanKind.LOCATION,
        f"{other}/SHELF3",
        False,
    )


def test_gln_with_extension_key_wins_over_the_bare_gln() -> None:
    rules = ScanRules.from_options(
        {"gln_locations": {GLN_ROOM: "DC1/Room 302", f"{GLN_ROOM}+A4": "DC1/Room 302/Rack A04"}}
    )
    result = ScanInterpreter(rules).interpret(f"]C1414{GLN_ROOM}{GS}254A4".encode())
    assert isinstance(result, ScanContent)
    assert result.value == "DC1/Room 302/Rack A04"


def test_location_pattern_with_value_group_and_table_lookup() -> None:
    rules = ScanRules.from_options(
        {
            "location_prefix": None,
            "location_pattern": r"^RACK\s+(?P<value>\S+)$",
            "locations": {"A04": "DC1/Room 302/Rack A04"},
        }
    )
    interpreter = ScanInterpreter(rules)
    result = interpreter.interpret(b"RACK A04")
    assert isinstance(result, ScanContent)
    assert (result.kind, result.value) == (ScanKind.LOCATION, "DC1/Room 302/Rack A04")
    # with the prefix turned off, "LOC:..." is just text
    plain = interpreter.interpret(b"LOC:DC1")
    assert isinstance(plain, ScanContent)
    assert plain.kind is ScanKind.UNKNOWN


def test_malformed_location_label_is_rejected_not_used() -> None:
    result = interpret("LOC:DC1//Rack")
    assert isinstance(result, ScanRejection)
    assert result.reason is RejectReason.BAD_LOCATION


def test_custom_fnc1_character_is_translated_to_gs() -> None:
    rules = ScanRules.from_options({"fnc1_char": "^"})
    result = ScanInterpreter(rules).interpret(b"]C18004ABC^0109506000134352")
    assert isinstance(result, ScanContent)
    assert result.fields == {"8004": "ABC", "01": "09506000134352"}


def test_unprefixed_gs1_only_when_asked() -> None:
    line = b"8004095060001ASSET7"
    plain = ScanInterpreter(ScanRules.from_options({})).interpret(line)
    assert isinstance(plain, ScanContent)
    assert plain.kind is ScanKind.UNKNOWN
    gs1 = ScanInterpreter(ScanRules.from_options({"gs1_unprefixed": "true"})).interpret(line)
    assert isinstance(gs1, ScanContent)
    assert (gs1.kind, gs1.value) == (ScanKind.GIAI, "095060001ASSET7")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x1b[31mIT-00001", RejectReason.GARBAGE),
        (b"IT-0\x0001", RejectReason.GARBAGE),
        (b"\xff\xfeIT", RejectReason.ENCODING),
        (b"]C1", RejectReason.GARBAGE),
    ],
)
def test_garbage_is_rejected_with_a_reason(raw: bytes, reason: RejectReason) -> None:
    result = interpret(raw)
    assert isinstance(result, ScanRejection)
    assert result.reason is reason
    assert result.raw == raw


def test_latin1_scanner_text_is_decoded() -> None:
    rules = ScanRules.from_options({"encoding": "latin-1"})
    result = ScanInterpreter(rules).interpret("LOC:Büro 2".encode("latin-1"))
    assert isinstance(result, ScanContent)
    assert result.value == "Büro 2"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"asset_tag_pattern": "(["}, "asset_tag_pattern"),
        ({"encoding": "klingon"}, "encoding"),
        ({"locations": {"X": "a//b"}}, "locations['X']"),
        ({"fnc1_char": "ab"}, "fnc1_char"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        ScanRules.from_options(options)


def test_split_aim_only_takes_well_formed_identifiers() -> None:
    assert split_aim("]C1010") == ("]C1", "010")
    assert split_aim("]!xABC") == ("", "]!xABC")
    assert split_aim("]C") == ("", "]C")


# -- framing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "raw"),
    [
        ("CR", b"\r"),
        ("crlf", b"\r\n"),
        ("TAB", b"\t"),
        ("ETX", b"\x03"),
        ("\\x1e\\x04", b"\x1e\x04"),
        ("|", b"|"),
    ],
)
def test_terminator_settings(spec: str, raw: bytes) -> None:
    assert parse_terminator(spec) == raw


def test_cr_family_terminators_are_interchangeable_and_blank_lines_skipped() -> None:
    framer = LineFramer(b"\r")
    assert framer.feed(b"A1\rB2\nC3\r\n\r\nD4") == [b"A1", b"B2", b"C3"]
    assert framer.feed(b"\r") == [b"D4"]


def test_custom_terminator_is_exact_even_across_chunks() -> None:
    framer = LineFramer(b"\x1e\x04", max_line_bytes=64)
    assert framer.feed(b"ONE\r\nTWO\x1e") == []
    assert framer.feed(b"\x04THREE\x1e\x04") == [b"ONE\r\nTWO", b"THREE"]


def test_overlong_line_is_dropped_bounded_and_the_next_line_is_read() -> None:
    framer = LineFramer(b"\r", max_line_bytes=32)
    events: list[bytes | Overlong] = []
    for _ in range(100):
        events += framer.feed(b"X" * 50)
        assert framer.buffered <= 32
    events += framer.feed(b"tail\rIT-00001\r")
    assert len(events) == 2
    assert isinstance(events[0], Overlong)
    assert events[0].length == 5004
    assert events[0].head == b"X" * 64 or events[0].head.startswith(b"X")
    assert events[1] == b"IT-00001"


def test_flush_returns_the_partial_line_and_resets() -> None:
    framer = LineFramer(b"\r")
    framer.feed(b"IT-001\rIT-0")
    assert framer.flush() == b"IT-0"
    assert framer.flush() is None
    assert framer.feed(b"23\r") == [b"23"]


def test_escape_bytes_never_lets_control_characters_through() -> None:
    text = escape_bytes(bytes(range(256)))
    assert all(0x20 <= ord(c) < 0x7F for c in text.split("…")[0])
    assert escape_bytes(b"A\\\x1b") == "A\\x5c\\x1b"
    assert escape_bytes(b"x" * 10, limit=4) == "xxxx…(+6 bytes)"


@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=10))
def test_framing_does_not_depend_on_how_bytes_are_chunked(data: bytes, cuts: list[int]) -> None:
    whole = LineFramer(b"\r\n", max_line_bytes=64)
    expected = [*whole.feed(data), whole.flush()]
    chunked = LineFramer(b"\r\n", max_line_bytes=64)
    got: list[bytes | Overlong | None] = []
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    for start, end in itertools.pairwise(bounds):
        got += chunked.feed(data[start:end])
        assert chunked.buffered <= 64
    got.append(chunked.flush())
    assert got == expected


@given(st.binary(max_size=200))
def test_interpreting_any_bytes_never_raises(raw: bytes) -> None:
    assert isinstance(interpret(raw), ScanContent | ScanRejection)


@given(valid_scans())
def test_generated_valid_scans_parse_as_expected(expected: Expected) -> None:
    assert_parsed(interpret(expected.line), expected)


def _stream(
    items: list[Expected | bytes], terminators: list[bytes]
) -> tuple[bytes, list[Expected]]:
    out = bytearray()
    for i, item in enumerate(items):
        out += item.line.encode() if isinstance(item, Expected) else item
        out += terminators[i % len(terminators)]
    return bytes(out), [i for i in items if isinstance(i, Expected)]


def _recover(stream: bytes, chunk: int) -> tuple[list[ScanContent], list[ScanRejection]]:
    framer = LineFramer(b"\r", max_line_bytes=256)
    scans: list[ScanContent] = []
    rejected: list[ScanRejection] = []
    for start in range(0, len(stream), chunk):
        for line in framer.feed(stream[start : start + chunk]):
            assert not isinstance(line, Overlong)
            result = INTERPRETER.interpret(line)
            if isinstance(result, ScanContent):
                scans.append(result)
            else:
                rejected.append(result)
    return scans, rejected


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    items=st.lists(st.one_of(valid_scans(), garbage_lines()), max_size=120),
    terminators=st.lists(st.sampled_from([b"\r", b"\n", b"\r\n"]), min_size=1, max_size=5),
    chunk=st.integers(1, 64),
)
def test_garbage_interleaved_with_scans_every_scan_recovered(
    items: list[Expected | bytes], terminators: list[bytes], chunk: int
) -> None:
    stream, valid = _stream(items, terminators)
    scans, rejected = _recover(stream, chunk)
    assert [(s.kind, s.value, s.symbology) for s in scans] == [
        (e.kind, e.value, e.symbology) for e in valid
    ]
    assert len(rejected) == len(items) - len(valid)


def test_ten_thousand_garbage_lines_interleaved_with_scans() -> None:
    rng = random.Random(20261124)
    valid = [e for e in examples() for _ in range(20)]
    rng.shuffle(valid)
    items: list[Expected | bytes] = [random_garbage(rng) for _ in range(10_000)]
    for e in valid:
        items.insert(rng.randint(0, len(items)), e)
    stream, expected = _stream(items, [b"\r", b"\n", b"\r\n"])
    scans, rejected = _recover(stream, 4096)
    assert [(s.kind, s.value) for s in scans] == [(e.kind, e.value) for e in expected]
    assert len(rejected) == 10_000
    assert {r.reason for r in rejected} <= {RejectReason.GARBAGE, RejectReason.ENCODING}
