"""The fast RO_ACCESS_REPORT decoder: a report body → a
:data:`~tagsweep.domain.READ_DTYPE` batch, with what was wrong in it as
:class:`~tagsweep.drivers.llrp.frames.Problem` s.

Why not sllurp's decode (measured on sllurp 3.0.5, see ``tests/llrp`` and
``benchmarks/bench_llrp.py``): it builds a dict per tag, and turning those into numpy
rows costs as much again, so the gateway could not keep up with the reader; and an
exception other than ``LLRPError`` in a parameter decoder (a truncated Impinj parameter
raises ``struct.error``) escapes sllurp's reader thread loop, which then dies silently
with the socket still open.

:class:`ReportDecoder` decodes reports whose TagReportData records share a layout with
one numpy structured view (the usual case: a reader's content selector fixes the
layout), falling back to a per-record walk otherwise. It is validated against sllurp
on every report of the test corpus (the driver's ``validate=1`` option does the same
live, with :mod:`.sllurp_reads`).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from tagsweep.domain import READ_DTYPE, ReadBatch, now_us
from tagsweep.drivers.llrp.frames import (
    TAG_REPORT_DATA,
    TV_SIZES,
    TYPE_CUSTOM,
    VENDOR_IMPINJ,
    Problem,
)
from tagsweep.drivers.llrp.reader_clock import ReaderClock

IMPINJ_PHASE: Final = 56
IMPINJ_PEAK_RSSI: Final = 57
IMPINJ_DOPPLER: Final = 68
PHASE_SCALE: Final = 2 * math.pi / 4096  # Impinj RFPhaseAngle units → radians
DOPPLER_SCALE: Final = 1 / 16  # Impinj RFDopplerFrequency units → Hz

#: byte value → its two hex digits, as one 2-byte item (memory order = text order)
_HEX = np.frombuffer(b"".join(f"{i:02X}".encode() for i in range(256)), dtype=np.uint16)


@dataclass(frozen=True, slots=True)
class _Item:
    """One parameter of a TagReportData record, at ``offset`` from the record start."""

    name: str  # epc, epc_bits, antenna, rssi, first, last, count, phase, irssi, doppler, skip
    offset: int
    fmt: str  # numpy format of the value ("" for skipped parameters)
    marker_offset: int
    marker: bytes  # bytes identifying the parameter (type byte, TLV header, vendor/subtype)


def _parse_record(rec: bytes | memoryview, problems: list[Problem]) -> list[_Item] | None:
    """Walk one TagReportData (header included) into items; None if it is malformed."""
    items: list[_Item] = []
    pos, end = 4, len(rec)
    while pos < end:
        first = rec[pos]
        if first & 0x80:
            ptype = first & 0x7F
            size = TV_SIZES.get(ptype)
            if size is None or pos + 1 + size > end:
                problems.append(
                    Problem("malformed_record", f"unknown or truncated TV parameter {ptype}")
                )
                return None
            name, fmt = _TV_FIELDS.get(ptype, ("skip", ""))
            items.append(_Item(name, pos + 1, fmt, pos, bytes([first])))
            pos += 1 + size
            continue
        if pos + 4 > end:
            problems.append(Problem("malformed_record", "truncated TLV header"))
            return None
        ptype, plen = struct.unpack_from(">HH", rec, pos)
        ptype &= 0x3FF
        if plen < 4 or pos + plen > end:
            problems.append(Problem("malformed_record", f"TLV {ptype} with bad length {plen}"))
            return None
        if ptype == 241 and plen >= 6:  # EPCData: bit count, then the EPC bytes
            marker = bytes(rec[pos : pos + 4])
            items.append(_Item("epc_bits", pos + 4, ">u2", pos, marker))
            items.append(_Item("epc", pos + 6, f"({plen - 6},)u1", pos, marker))
        elif ptype == TYPE_CUSTOM and plen >= 12:
            vendor, subtype = struct.unpack_from(">II", rec, pos + 4)
            marker = bytes(rec[pos : pos + 12])
            known = _IMPINJ_FIELDS.get(subtype) if vendor == VENDOR_IMPINJ else None
            if known is not None and plen == 14:
                items.append(_Item(known[0], pos + 12, known[1], pos, marker))
            elif known is not None:
                problems.append(
                    Problem(
                        "malformed_parameter",
                        f"Impinj parameter subtype {subtype} has length {plen}, expected 14",
                    )
                )
                items.append(_Item("skip", pos, "", pos, marker))
            else:
                problems.append(
                    Problem(
                        "unknown_parameter",
                        f"vendor extension vendor={vendor} subtype={subtype} ({plen} bytes) "
                        "skipped",
                    )
                )
                items.append(_Item("skip", pos, "", pos, marker))
        else:  # standard TLVs we do not use (OpSpec results, ...): skip by length
            items.append(_Item("skip", pos, "", pos, bytes(rec[pos : pos + 4])))
        pos += plen
    return items


_TV_FIELDS: Final[dict[int, tuple[str, str]]] = {
    1: ("antenna", ">u2"),
    2: ("first", ">u8"),
    3: ("first_up", ">u8"),  # FirstSeenTimestampUptime: readers without a UTC clock
    4: ("last", ">u8"),
    5: ("last_up", ">u8"),
    6: ("rssi", "i1"),
    8: ("count", ">u2"),
    13: ("epc", "(12,)u1"),
}
_IMPINJ_FIELDS: Final[dict[int, tuple[str, str]]] = {
    IMPINJ_PHASE: ("phase", ">u2"),
    IMPINJ_PEAK_RSSI: ("irssi", ">i2"),
    IMPINJ_DOPPLER: ("doppler", ">i2"),
}


def _layout_dtype(items: Sequence[_Item], itemsize: int) -> np.dtype[np.void]:
    names: list[str] = ["hdr"]
    formats: list[str] = [">u4"]
    offsets: list[int] = [0]
    seen_markers: set[int] = set()
    for i, item in enumerate(items):
        if item.marker_offset not in seen_markers:
            seen_markers.add(item.marker_offset)
            names.append(f"m{i}")
            formats.append(f"({len(item.marker)},)u1")
            offsets.append(item.marker_offset)
        if item.fmt and item.name not in names:
            names.append(item.name)
            formats.append(item.fmt)
            offsets.append(item.offset)
    # EPCData's value follows its own marker + bit count; markers and values never overlap
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})


def _hex(epc: np.ndarray) -> np.ndarray:
    """(n, k) uint8 → upper-case hex ``S{2k}`` (one table lookup, no Python loop)."""
    n, k = epc.shape
    if k == 0:
        return np.zeros(n, dtype="S1")
    return _HEX.take(epc).view(f"S{2 * k}").reshape(n)


@dataclass(frozen=True, slots=True)
class _Layout:
    """A learned TagReportData layout: its numpy view and the bytes that identify it."""

    length: int
    dtype: np.dtype[np.void]
    marker_index: np.ndarray  # byte offsets of every parameter header/type byte
    marker_bytes: np.ndarray  # their values in the record the layout was learned from
    fields: frozenset[str]
    problems: tuple[Problem, ...]  # what every record of this layout carries (per read)


def _learn_layout(record: memoryview) -> _Layout | None:
    problems: list[Problem] = []
    items = _parse_record(record, problems)
    if items is None or not any(i.name == "epc" for i in items):
        return None
    index = [0, 1, 2, 3]  # TLV type and length of the record itself
    for item in items:
        index.extend(range(item.marker_offset, item.marker_offset + len(item.marker)))
    marker_index = np.unique(np.array(index, dtype=np.intp))
    raw = np.frombuffer(record, dtype=np.uint8)
    return _Layout(
        len(record),
        _layout_dtype(items, len(record)),
        marker_index,
        raw[marker_index].copy(),
        frozenset(item.name for item in items),
        tuple(problems),
    )


class ReportDecoder:
    """RO_ACCESS_REPORT body → READ_DTYPE batch (see the module docstring for why)."""

    def __init__(self, reader_id: int = 0, max_clock_skew_us: int | None = None) -> None:
        """``max_clock_skew_us``: re-anchor UTC stamps further than this from the receive
        time (a live connection); None keeps them as sent (decoding a capture later)."""
        self.reader_id = reader_id
        self._layout: _Layout | None = None  # the last one: readers rarely change layout
        self.uptime = ReaderClock()  # uptime stamps: always anchored to the wall clock
        # UTC stamps: anchored when skewed beyond the threshold
        self.utc = ReaderClock(math.inf if max_clock_skew_us is None else max_clock_skew_us)

    def decode(self, body: bytes) -> tuple[ReadBatch, list[Problem]]:
        """Decode a report body (the bytes after the 10-byte message header)."""
        problems: list[Problem] = []
        if len(body) >= 4:
            ptype, length = struct.unpack_from(">HH", body)
            if ptype & 0x3FF == TAG_REPORT_DATA and length >= 4 and len(body) % length == 0:
                batch = self._decode_uniform(body, length, problems)
                if batch is not None:
                    return batch, problems
                problems.clear()
        return self._decode_records(body, problems), problems

    def _decode_uniform(
        self, body: bytes, length: int, problems: list[Problem]
    ) -> ReadBatch | None:
        """Every record has the same layout: decode them all with one numpy view."""
        raw = np.frombuffer(body, dtype=np.uint8).reshape(-1, length)
        layout = self._layout
        if (
            layout is None
            or layout.length != length
            or not np.array_equal(raw[0, layout.marker_index], layout.marker_bytes)
        ):
            layout = _learn_layout(memoryview(body)[:length])
            if layout is None:
                return None
            self._layout = layout
        n = len(raw)
        if n > 1 and not (raw[:, layout.marker_index] == layout.marker_bytes).all():
            return None  # mixed layouts: the per-record path handles them
        records = np.frombuffer(body, dtype=layout.dtype)
        problems.extend(Problem(p.kind, p.detail, n) for p in layout.problems)
        fields = layout.fields
        out = np.empty(n, dtype=READ_DTYPE)
        out["epc"] = _hex(records["epc"])
        out["reader"] = self.reader_id
        out["antenna"] = records["antenna"] if "antenna" in fields else 0
        if "irssi" in fields:
            out["rssi"] = records["irssi"] / 100.0
        elif "rssi" in fields:
            out["rssi"] = records["rssi"]
        else:
            out["rssi"] = np.nan
        now = now_us()
        first = records["first"] if "first" in fields else None
        last = records["last"] if "last" in fields else None
        uptime = first is None and last is None
        if uptime:  # no UTC stamps: the reader's uptime ones, if it sent those
            first = records["first_up"] if "first_up" in fields else None
            last = records["last_up"] if "last_up" in fields else None
            uptime = first is not None or last is not None
        out["first_seen_us"] = first if first is not None else (last if last is not None else now)
        out["last_seen_us"] = last if last is not None else (first if first is not None else now)
        if uptime:
            self.uptime.to_wall(out, np.arange(n), now)
        elif first is not None or last is not None:
            self.utc.to_wall(out, np.arange(n), now)
        out["seen_count"] = records["count"] if "count" in fields else 1
        out["phase"] = records["phase"] * PHASE_SCALE if "phase" in fields else np.nan
        out["doppler_hz"] = records["doppler"] * DOPPLER_SCALE if "doppler" in fields else np.nan
        return out

    def _decode_records(self, body: bytes, problems: list[Problem]) -> ReadBatch:
        """The general path: walk every record (mixed layouts, damaged reports)."""
        rows: list[tuple[Any, ...]] = []
        uptime_rows: list[int] = []
        utc_rows: list[int] = []
        view = memoryview(body)
        pos, end = 0, len(body)
        now = now_us()
        while pos < end:
            if end - pos < 4 or body[pos] & 0x80:
                problems.append(
                    Problem("decode", f"report body is not a parameter list at byte {pos}")
                )
                break
            ptype, length = struct.unpack_from(">HH", body, pos)
            ptype &= 0x3FF
            if length < 4 or pos + length > end:
                problems.append(
                    Problem("decode", f"parameter {ptype} at byte {pos} has bad length {length}")
                )
                break
            if ptype == TAG_REPORT_DATA:
                row = _record_row(view[pos : pos + length], problems, self.reader_id, now)
                if row is not None:
                    if row[-1] == "uptime":
                        uptime_rows.append(len(rows))
                    elif row[-1] == "utc":
                        utc_rows.append(len(rows))
                    rows.append(row[:-1])
            elif ptype == TYPE_CUSTOM:
                problems.append(Problem("unknown_parameter", "vendor extension in report skipped"))
            pos += length
        if not rows:
            return np.zeros(0, dtype=READ_DTYPE)
        out = np.array(rows, dtype=READ_DTYPE)
        self.uptime.to_wall(out, np.array(uptime_rows, dtype=np.intp), now)
        self.utc.to_wall(out, np.array(utc_rows, dtype=np.intp), now)
        return out


def _record_row(
    rec: memoryview, problems: list[Problem], reader_id: int, now: int
) -> tuple[Any, ...] | None:
    items = _parse_record(rec, problems)
    if items is None:
        return None
    values: dict[str, Any] = {}
    for item in items:
        if item.name in {"skip", "epc_bits"}:
            continue
        if item.name == "epc":
            values["epc"] = bytes(rec[item.offset : item.marker_offset + _epc_end(rec, item)])
            continue
        values[item.name] = np.frombuffer(rec, dtype=item.fmt, count=1, offset=item.offset)[0]
    if "epc" not in values:
        problems.append(Problem("malformed_record", "TagReportData without an EPC"))
        return None
    uptime = "first" not in values and "last" not in values
    suffix = "_up" if uptime else ""
    stamped = "first" + suffix in values or "last" + suffix in values
    clock = ("uptime" if uptime else "utc") if stamped else ""
    first = values.get("first" + suffix, values.get("last" + suffix, now))
    last = values.get("last" + suffix, values.get("first" + suffix, now))
    rssi = values["irssi"] / 100.0 if "irssi" in values else values.get("rssi", math.nan)
    return (
        values["epc"].hex().upper().encode(),
        reader_id,
        values.get("antenna", 0),
        rssi,
        int(first),
        int(last),
        values.get("count", 1),
        values["phase"] * PHASE_SCALE if "phase" in values else math.nan,
        values["doppler"] * DOPPLER_SCALE if "doppler" in values else math.nan,
        clock,  # last: which clock stamped it, "uptime", "utc" or "" (the caller converts)
    )


def _epc_end(rec: memoryview, item: _Item) -> int:
    """End of the EPC bytes relative to the parameter start (EPC-96 or EPCData)."""
    if rec[item.marker_offset] & 0x80:
        return 13
    return int(struct.unpack_from(">H", rec, item.marker_offset + 2)[0])
