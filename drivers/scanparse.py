"""Barcode scanner lines → what they mean to a count, as pure functions.

Kept apart from the serial I/O in :mod:`tagsweep.drivers.barcode` so the two hard parts
of a scanner — cutting a noisy byte stream into lines without unbounded memory, and
interpreting a line (AIM symbology identifier, GS1 element strings, location labels,
asset-tag and serial patterns) — can be property-tested without a device and reused
by anything else that receives scans (a web form, a count-sheet import).

Two stages:

* :class:`LineFramer` cuts bytes into lines at a terminator, with a bounded buffer: an
  overlong line is dropped and reported once, and the next line is read normally.
* :class:`ScanInterpreter` turns one line into a :class:`ScanContent` (the fields of a
  :class:`~tagsweep.domain.BarcodeScan`) or a :class:`ScanRejection` saying what was
  wrong. It never raises for bad input: a scanner feeding garbage must not stop a count.
"""

from __future__ import annotations

import codecs
import enum
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from biip import ParseError
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementStrings
from biip.gs1_messages import GS1Message
from biip.gtin import Gtin

from tagsweep.config.schema import ScannerSection
from tagsweep.domain import Location, ScanKind, Symbology

#: GS1 group separator: how scanners transmit FNC1 between variable-length fields.
GS: Final = "\x1d"

_NAMED_TERMINATORS: Final[dict[str, bytes]] = {
    "CR": b"\r",
    "LF": b"\n",
    "CRLF": b"\r\n",
    "TAB": b"\t",
    "ETX": b"\x03",
    "EOT": b"\x04",
}
_LINE_END_FAMILY: Final = (b"\r", b"\n", b"\r\n")


def parse_terminator(spec: str) -> bytes:
    """A terminator setting (``CR``, ``LF``, ``CRLF``, ``TAB``, ``ETX``, ``EOT``, an escape
    such as ``\\x03``, or literal characters) as bytes; ValueError when empty."""
    named = _NAMED_TERMINATORS.get(spec.strip().upper())
    if named is not None:
        return named
    try:
        text = codecs.decode(spec, "unicode_escape") if "\\" in spec else spec
    except UnicodeDecodeError as exc:
        raise ValueError(f"terminator {spec!r} has a bad escape: {exc}") from None
    raw = text.encode("latin-1", errors="strict") if text.isascii() else text.encode()
    if not raw:
        raise ValueError("terminator must not be empty; use CR, LF, CRLF, TAB or characters")
    return raw


def escape_bytes(raw: bytes, limit: int = 120) -> str:
    """Raw bytes as printable ASCII for a log line (``\\xNN`` for everything else), cut
    at ``limit`` bytes: garbage from a scanner must never reach a terminal or journal
    as control characters."""
    out = []
    for byte in raw[:limit]:
        if 0x20 <= byte < 0x7F and byte != 0x5C:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    if len(raw) > limit:
        out.append(f"…(+{len(raw) - limit} bytes)")
    return "".join(out)


# -- framing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overlong:
    """A line longer than the buffer allows; only its start is kept, for the log."""

    head: bytes
    length: int


class LineFramer:
    """Cuts a byte stream into lines with a bounded buffer.

    A CR, LF or CRLF terminator setting accepts any of the three: scanners' suffix
    settings drift (a replaced unit sends CRLF instead of CR), and a CR or LF is never
    part of a scan line, so being lenient loses nothing. Blank lines are skipped. Any
    other terminator (TAB, ETX, custom) is matched exactly.
    """

    def __init__(self, terminator: bytes = b"\r", max_line_bytes: int = 4096) -> None:
        if not terminator:
            raise ValueError("terminator must not be empty")
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.terminator = terminator
        self.max_line_bytes = max_line_bytes
        if terminator in _LINE_END_FAMILY:
            self._split = re.compile(rb"[\r\n]")
        else:
            self._split = re.compile(re.escape(terminator))
        self._buf = bytearray()
        self._skipping = 0  # bytes of an overlong line dropped so far (0 = not skipping)
        self._skip_head = b""

    @property
    def buffered(self) -> int:
        """Bytes held waiting for a terminator (never more than ``max_line_bytes``)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | Overlong]:
        """Lines completed by ``data``, in order; overlong lines come back as Overlong."""
        self._buf += data
        out: list[bytes | Overlong] = []
        last_end = 0
        for match in self._split.finditer(self._buf):
            self._emit(bytes(self._buf[last_end : match.start()]), out)
            last_end = match.end()
        del self._buf[:last_end]
        if len(self._buf) > self.max_line_bytes:
            # No terminator within the limit: drop what we hold and skip to the next one.
            # A multi-byte terminator may have started at the end; keep that tail.
            keep = len(self.terminator) - 1
            tail = bytes(self._buf[len(self._buf) - keep :]) if keep else b""
            dropped = bytes(self._buf[: len(self._buf) - len(tail)])
            if not self._skipping:
                self._skip_head = dropped[:64]
            self._skipping += len(dropped)
            self._buf = bytearray(tail)
        return out

    def _emit(self, line: bytes, out: list[bytes | Overlong]) -> None:
        if self._skipping:
            out.append(Overlong(self._skip_head, self._skipping + len(line)))
            self._skipping = 0
            self._skip_head = b""
        elif len(line) > self.max_line_bytes:
            out.append(Overlong(line[:64], len(line)))
        elif line.strip(b" \t\r\n"):
            out.append(line)

    def flush(self) -> bytes | Overlong | None:
        """What is left when the device goes away: a partial line, the rest of an
        overlong one, or None. Resets the framer for the next connection."""
        rest: bytes | Overlong | None = None
        if self._skipping:
            rest = Overlong(self._skip_head, self._skipping + len(self._buf))
        elif self._buf.strip(b" \t\r\n"):
            rest = bytes(self._buf)
        self._buf = bytearray()
        self._skipping = 0
        self._skip_head = b""
        return rest


# -- interpretation --------------------------------------------------------------------


class RejectReason(enum.StrEnum):
    """Why a line did not become a scan (a counter key and a log field)."""

    GARBAGE = "garbage"  # control characters: line noise, a wrong baud rate
    ENCODING = "encoding"  # not valid text in the configured encoding
    OVERLONG = "overlong"  # longer than max_line_bytes
    PARTIAL_LINE = "partial_line"  # cut off by a disconnect
    CHECK_DIGIT = "check_digit"  # GS1 GTIN/GLN/SSCC check digit wrong: a misread
    GS1_INVALID = "gs1_invalid"  # claims to be GS1 but is not a valid element string
    BAD_LOCATION = "bad_location"  # a location label whose path is not a location


@dataclass(frozen=True, slots=True)
class ScanRejection:
    reason: RejectReason
    detail: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class ScanContent:
    """The interpreted fields of one scan (a BarcodeScan without reader and time)."""

    data: str  # AIM prefix removed, FNC1 as GS (\x1d)
    symbology: Symbology
    kind: ScanKind
    value: str
    fields: dict[str, str] = field(default_factory=dict)
    aim: str = ""  # the AIM symbology identifier as sent, e.g. "]C1"
    mapped: bool = True  # False for a location label not found in the location table


@dataclass(frozen=True, slots=True)
class _Aim:
    symbology: Symbology
    gs1: bool  # the data is a GS1 element string (FNC1 in first position)
    gtin: bool  # the data is an EAN/UPC/ITF-14 GTIN


# ISO/IEC 15424 code characters whose modifier says "GS1 data": C1 GS1-128, d2/d5 GS1
# DataMatrix (without/with ECI), Q3/Q4 GS1 QR, e0-e2 GS1 DataBar/composite, J1 DotCode.
_GS1_MODIFIERS: Final[dict[str, str]] = {"C": "1", "d": "25", "Q": "34", "e": "012", "J": "1"}
_ISO_CODES: Final = frozenset("ABCDEFGHIKLMNOPQRSTUXYZcdeJopsz")


def _aim_of(code: str, modifier: str) -> _Aim:
    gs1 = modifier in _GS1_MODIFIERS.get(code, "")
    symbology = Symbology.UNKNOWN
    if code == "C":
        symbology = Symbology.GS1_128 if gs1 else Symbology.CODE_128
    elif code == "A":
        symbology = Symbology.CODE_39
    elif code == "E":
        symbology = Symbology.EAN
    elif code == "Q":
        symbology = Symbology.GS1_QR if gs1 else Symbology.QR
    elif code == "d":
        symbology = Symbology.GS1_DATAMATRIX if gs1 else Symbology.DATAMATRIX
    gtin = (code == "E" and modifier in "034") or (code == "I" and modifier == "1")
    return _Aim(symbology, gs1, gtin)


def split_aim(text: str) -> tuple[str, str]:
    """(AIM identifier, rest) when ``text`` starts with a well-formed ``]Cm``; else ("", text)."""
    if len(text) >= 3 and text[0] == "]" and text[1] in _ISO_CODES and text[2].isalnum():
        return text[:3], text[3:]
    return "", text


_GS1_LOCATION_AIS: Final = ("414", "254")


def _default(name: str) -> Any:
    return ScannerSection.model_fields[name].default


@dataclass(frozen=True, slots=True)
class ScanRules:
    """How a site's labels look. Built from the scanner's options (see barcode driver)."""

    encoding: str = "utf-8"
    location_prefix: str | None = "LOC:"
    location_pattern: re.Pattern[str] | None = None
    asset_tag_pattern: re.Pattern[str] | None = None
    serial_pattern: re.Pattern[str] | None = None
    #: label text → location path ([[locations]] label); GLNs may be keys too.
    locations: Mapping[str, str] = field(default_factory=dict)
    #: GLN (AI 414), or "GLN+extension" (AI 254), → location path ([[locations]] gln).
    gln_locations: Mapping[str, str] = field(default_factory=dict)
    #: character the scanner sends for FNC1 when it is not GS (some send "^" or "~").
    fnc1_char: str = GS
    #: try GS1 on lines without an AIM identifier (scanners with AIM prefixes turned off).
    gs1_unprefixed: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ScanRules:
        """Rules from a scanner's options; ValueError naming the bad option."""

        def regex(key: str) -> re.Pattern[str] | None:
            value = options.get(key, _default(key))
            if value is None or value == "":
                return None
            try:
                return re.compile(str(value))
            except re.error as exc:
                raise ValueError(
                    f"option {key}={value!r} is not a regular expression: {exc}"
                ) from None

        def table(key: str) -> dict[str, str]:
            value = options.get(key) or {}
            if not isinstance(value, Mapping):
                raise ValueError(f"option {key} must be a mapping of label → location path")
            out: dict[str, str] = {}
            for label, path in value.items():
                try:
                    out[str(label)] = Location(str(path)).path
                except ValueError as exc:
                    raise ValueError(f"option {key}[{label!r}]: {exc}") from None
            return out

        encoding = str(options.get("encoding") or _default("encoding"))
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"option encoding={encoding!r} is not a known text encoding") from None
        prefix = options.get("location_prefix", _default("location_prefix"))
        fnc1 = str(options.get("fnc1_char") or GS)
        if len(fnc1) != 1:
            raise ValueError(f"option fnc1_char={fnc1!r} must be one character")
        unprefixed = options.get("gs1_unprefixed", False)
        if isinstance(unprefixed, str):
            unprefixed = unprefixed.strip().lower() in ("1", "true", "yes", "on")
        return cls(
            encoding=encoding,
            location_prefix=str(prefix) if prefix else None,
            location_pattern=regex("location_pattern"),
            asset_tag_pattern=regex("asset_tag_pattern"),
            serial_pattern=regex("serial_pattern"),
            locations=table("locations"),
            gln_locations=table("gln_locations"),
            fnc1_char=fnc1,
            gs1_unprefixed=bool(unprefixed),
        )


def _pattern_value(match: re.Match[str]) -> str:
    """A pattern's named group ``value``, else its first group, else the whole match."""
    if "value" in match.re.groupindex and match.group("value"):
        return match.group("value")
    if match.re.groups and match.group(1):
        return match.group(1)
    return match.group(0)


class ScanInterpreter:
    """Interprets scan lines under one set of :class:`ScanRules`; never raises on input."""

    def __init__(self, rules: ScanRules | None = None) -> None:
        self.rules = rules or ScanRules()

    def interpret(self, raw: bytes) -> ScanContent | ScanRejection:
        rules = self.rules
        try:
            text = raw.decode(rules.encoding)
        except UnicodeDecodeError as exc:
            return ScanRejection(
                RejectReason.ENCODING, f"not valid {rules.encoding} at byte {exc.start}", raw
            )
        text = text.strip(" \t\r\n")
        if rules.fnc1_char != GS:
            text = text.replace(rules.fnc1_char, GS)
        for index, char in enumerate(text):
            if char != GS and unicodedata.category(char) == "Cc":
                return ScanRejection(
                    RejectReason.GARBAGE,
                    f"control character U+{ord(char):04X} at position {index}",
                    raw,
                )
        aim_text, data = split_aim(text)
        aim = _aim_of(aim_text[1], aim_text[2]) if aim_text else None
        symbology = aim.symbology if aim else Symbology.UNKNOWN
        if not data.strip(GS):
            return ScanRejection(RejectReason.GARBAGE, "no data after the AIM identifier", raw)

        if aim is not None and aim.gtin:
            return self._gtin(raw, data, symbology, aim_text)
        gs1_claimed = (aim is not None and aim.gs1) or data.startswith(GS) or GS in data
        if gs1_claimed:
            return self._gs1(raw, data, symbology, aim_text)
        if data.startswith(("http://", "https://")) and symbology in (
            Symbology.QR,
            Symbology.DATAMATRIX,
            Symbology.UNKNOWN,
        ):
            content = self._digital_link(raw, data, symbology, aim_text)
            if content is not None:
                return content
        if (rules.gs1_unprefixed and aim is None and data[:1].isdigit()) or (
            aim is None and re.match(r"^\(\d{2,4}\)", data)
        ):
            result = self._gs1(raw, data, symbology, aim_text)
            if isinstance(result, ScanContent) or result.reason is RejectReason.CHECK_DIGIT:
                return result
        return self._plain(raw, data, symbology, aim_text)

    # -- GS1 ------------------------------------------------------------------------------
    def _gtin(
        self, raw: bytes, data: str, symbology: Symbology, aim: str
    ) -> ScanContent | ScanRejection:
        digits = data[:13] if aim == "]E3" else data
        try:
            gtin = Gtin.parse(digits)
        except ParseError as exc:
            reason = (
                RejectReason.CHECK_DIGIT if "check digit" in str(exc) else RejectReason.GS1_INVALID
            )
            return ScanRejection(reason, str(exc), raw)
        return ScanContent(
            data, symbology, ScanKind.GTIN, gtin.value, {"01": gtin.as_gtin_14()}, aim
        )

    def _gs1(
        self, raw: bytes, data: str, symbology: Symbology, aim: str
    ) -> ScanContent | ScanRejection:
        body = data.lstrip(GS)
        try:
            if body.startswith("("):
                strings = GS1Message.parse_hri(body).element_strings
            else:
                strings = GS1Message.parse(body).element_strings
        except (ParseError, ValueError) as exc:
            return ScanRejection(RejectReason.GS1_INVALID, str(exc), raw)
        return self._from_element_strings(raw, body, strings, symbology, aim)

    def _digital_link(
        self, raw: bytes, data: str, symbology: Symbology, aim: str
    ) -> ScanContent | ScanRejection | None:
        try:
            strings = GS1DigitalLinkURI.parse(data).element_strings
        except (ParseError, ValueError):
            return None  # an ordinary URL, not a GS1 Digital Link
        return self._from_element_strings(raw, data, strings, symbology, aim)

    def _from_element_strings(
        self,
        raw: bytes,
        data: str,
        strings: GS1ElementStrings,
        symbology: Symbology,
        aim: str,
    ) -> ScanContent | ScanRejection:
        fields: dict[str, str] = {}
        for es in strings:
            error = es.gtin_error or es.gln_error or es.sscc_error
            if error:
                return ScanRejection(RejectReason.CHECK_DIGIT, f"AI ({es.ai.ai}): {error}", raw)
            fields.setdefault(es.ai.ai, es.value)
        if "414" in fields:
            return self._gs1_location(raw, data, fields, symbology, aim)
        for ai, kind in (("8004", ScanKind.GIAI), ("21", ScanKind.SERIAL), ("01", ScanKind.GTIN)):
            if ai in fields:
                return ScanContent(data, symbology, kind, fields[ai], fields, aim)
        return ScanContent(data, symbology, ScanKind.UNKNOWN, data, fields, aim)

    def _gs1_location(
        self, raw: bytes, data: str, fields: dict[str, str], symbology: Symbology, aim: str
    ) -> ScanContent | ScanRejection:
        gln, ext = fields["414"], fields.get("254")
        tables = (self.rules.gln_locations, self.rules.locations)
        path: str | None = None
        if ext is not None:
            path = next((t[f"{gln}+{ext}"] for t in tables if f"{gln}+{ext}" in t), None)
        if path is None:
            base = next((t[gln] for t in tables if gln in t), None)
            if base is not None:
                path = f"{base}/{ext}" if ext else base
        mapped = path is not None
        if path is None:
            path = f"{gln}/{ext}" if ext else gln
        try:
            location = Location(path)
        except ValueError as exc:
            return ScanRejection(RejectReason.BAD_LOCATION, f"GS1 location {path!r}: {exc}", raw)
        return ScanContent(
            data, symbology, ScanKind.LOCATION, location.path, fields, aim, mapped=mapped
        )

    # -- plain labels ---------------------------------------------------------------------
    def _plain(
        self, raw: bytes, data: str, symbology: Symbology, aim: str
    ) -> ScanContent | ScanRejection:
        rules = self.rules
        if data in rules.locations:
            return ScanContent(data, symbology, ScanKind.LOCATION, rules.locations[data], {}, aim)
        label: str | None = None
        if rules.location_prefix and data.startswith(rules.location_prefix):
            label = data[len(rules.location_prefix) :].strip()
        elif rules.location_pattern is not None:
            match = rules.location_pattern.search(data)
            if match is not None:
                label = _pattern_value(match).strip()
        if label is not None:
            path = rules.locations.get(label, label)
            try:
                location = Location(path)
            except ValueError as exc:
                return ScanRejection(
                    RejectReason.BAD_LOCATION, f"location label {data!r}: {exc}", raw
                )
            return ScanContent(
                data,
                symbology,
                ScanKind.LOCATION,
                location.path,
                {},
                aim,
                mapped=label in rules.locations or "/" in label,
            )
        for pattern, kind in (
            (rules.asset_tag_pattern, ScanKind.ASSET_TAG),
            (rules.serial_pattern, ScanKind.SERIAL),
        ):
            if pattern is not None:
                match = pattern.search(data)
                if match is not None:
                    return ScanContent(data, symbology, kind, _pattern_value(match), {}, aim)
        return ScanContent(data, symbology, ScanKind.UNKNOWN, data, {}, aim)
