"""LLRP framing: the message header and the wire's fixed sizes, and a :class:`Framer`
that cuts a TCP byte stream into messages without trusting a length blindly.

Why not sllurp's own receive path (measured on sllurp 3.0.5, see ``tests/llrp``):
``LLRPReaderClient.raw_data_received`` trusts the length field, so a garbage or absurd
length makes it buffer forever (every later report is lost), and one undecodable
message makes it drop the rest of the received chunk. Here every length is bounded per
message type and plausibility-checked (a report's body must walk as report
parameters), and after a bad header the stream resynchronises on the next valid one:
one bad frame costs that frame.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Final

HEADER: Final = struct.Struct(">HII")
HEADER_SIZE: Final = HEADER.size
TYPE_CUSTOM: Final = 1023
VENDOR_IMPINJ: Final = 25882
RO_ACCESS_REPORT: Final = 61
KEEPALIVE: Final = 62
TAG_REPORT_DATA: Final = 240

#: Messages a reader sends (LLRP 1.0.1), with the largest size we accept for each.
SMALL_MESSAGE_MAX: Final = 1 << 20
READER_MESSAGE_TYPES: Final = frozenset(
    {4, 11, 12, 13, 30, 31, 32, 33, 34, 35, 50, 51, 52, 53, 61, 62, 63, 100, TYPE_CUSTOM}
)

#: Value sizes of TV-encoded parameters (type → bytes after the type byte).
TV_SIZES: Final[dict[int, int]] = {
    1: 2, 2: 8, 3: 8, 4: 8, 5: 8, 6: 1, 7: 2, 8: 2, 9: 4, 10: 2,
    11: 2, 12: 2, 13: 12, 14: 2, 15: 2, 16: 4, 17: 2, 18: 4, 19: 2, 20: 2,
}  # fmt: skip


_HEADER_START = re.compile(rb"[\x04-\x07]")  # version 1, any type: first byte 0x04..0x07


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong in the byte stream: what kind, where, and how many reads it hit."""

    kind: str  # framing | decode | unknown_parameter | malformed_parameter | malformed_record
    detail: str
    count: int = 1


@dataclass(frozen=True, slots=True)
class Frame:
    msg_type: int
    msg_id: int
    data: bytes  # the whole message, header included
    offset: int  # stream offset of its first byte


def header_problem(word: int, length: int, max_report: int) -> str | None:
    """Why a message header cannot be real, or None if it is plausible."""
    if word >> 10 != 1:
        return f"version/reserved bits {word >> 10:#x} (expected LLRP version 1)"
    msg_type = word & 0x3FF
    if msg_type not in READER_MESSAGE_TYPES:
        return f"message type {msg_type} is not one a reader sends"
    if msg_type == KEEPALIVE:
        return None if length == HEADER_SIZE else f"KEEPALIVE with length {length}"
    if length < HEADER_SIZE + (5 if msg_type == TYPE_CUSTOM else 0):
        return f"length {length} shorter than the header"
    limit = max_report if msg_type == RO_ACCESS_REPORT else SMALL_MESSAGE_MAX
    if length > limit:
        return f"length {length} exceeds the {limit}-byte bound for message type {msg_type}"
    return None


_REPORT_PARAMS: Final = frozenset({TAG_REPORT_DATA, TYPE_CUSTOM, 242})  # 242 RFSurveyReportData


def _report_body_problem(
    buf: bytearray, at: int, stop: int, frame_end: int
) -> tuple[str | None, int]:
    """Walk the top-level parameters of a report body from ``at`` up to ``stop``.

    Returns (why the body cannot be a report, or None; where the walk stopped). A
    plausible-looking length field that is wrong makes the following messages look like
    body bytes; their headers are not report parameters, which is how we notice.
    """
    while at + 4 <= stop:
        ptype, plen = struct.unpack_from(">HH", buf, at)
        if ptype >> 10 or ptype not in _REPORT_PARAMS or plen < 4 or at + plen > frame_end:
            return f"RO_ACCESS_REPORT body has parameter type {ptype} length {plen}", at
        at += plen
    return None, at


class Framer:
    """Cuts a TCP byte stream into LLRP messages, never trusting a length blindly."""

    def __init__(self, max_report_bytes: int = 8 << 20) -> None:
        self.max_report_bytes = max_report_bytes
        self._buf = bytearray()
        self._offset = 0  # stream offset of _buf[0]
        self._garbage_until = -1  # where the last resynchronisation landed (stream offset)
        self._walk_frame = -1  # stream offset of the incomplete report being checked
        self._walk_next = 0  # stream offset of its next unchecked parameter
        self.problems: list[Problem] = []

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos, end = 0, len(buf)
        unpack = HEADER.unpack_from
        while end - pos >= HEADER_SIZE:
            word, length, msg_id = unpack(buf, pos)
            why = header_problem(word, length, self.max_report_bytes)
            if why is None and end - pos < length:
                why = self._incomplete_problem(buf, pos, end, word & 0x3FF, length)
                if why is None:
                    break  # plausible and incomplete: wait for more bytes
            if why is not None:
                skip_to = self._resync(buf, pos + 1, end)
                if self._offset + pos != self._garbage_until:  # not the same garbage run
                    self.problems.append(
                        Problem(
                            "framing",
                            f"bad message header at stream offset {self._offset + pos}: {why}; "
                            "skipping to the next valid header",
                        )
                    )
                self._garbage_until = self._offset + skip_to
                pos = skip_to
                continue
            frames.append(
                Frame(word & 0x3FF, msg_id, bytes(buf[pos : pos + length]), self._offset + pos)
            )
            pos += length
        if pos:
            del buf[:pos]
            self._offset += pos
        return frames

    def _incomplete_problem(
        self, buf: bytearray, pos: int, end: int, msg_type: int, length: int
    ) -> str | None:
        """Check what has arrived of an incomplete report, each parameter only once."""
        if msg_type != RO_ACCESS_REPORT:
            return None
        frame = self._offset + pos
        if self._walk_frame != frame:
            self._walk_frame, self._walk_next = frame, frame + HEADER_SIZE
        why, stopped = _report_body_problem(buf, self._walk_next - self._offset, end, pos + length)
        self._walk_next = self._offset + stopped
        return why

    def _resync(self, buf: bytearray, start: int, end: int) -> int:
        """Offset of the next plausible header at or after ``start`` (or where to wait)."""
        for match in _HEADER_START.finditer(buf, start):
            at = match.start()
            if end - at < HEADER_SIZE:
                return at
            word, length, _ = HEADER.unpack_from(buf, at)
            if header_problem(word, length, self.max_report_bytes) is not None:
                continue
            if end - at >= length or word & 0x3FF != RO_ACCESS_REPORT:
                return at
            why, _ = _report_body_problem(buf, at + HEADER_SIZE, end, at + length)
            if why is None:
                return at
        return end  # no byte left that could start a header
