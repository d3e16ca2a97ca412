"""sllurp's view of a report as READ_DTYPE rows, by the same rules as the fast decoder:
for the driver's ``decoder=sllurp`` mode and for cross-checking the fast decoder
(``validate=1``, the tests, captures)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tagsweep.domain import READ_DTYPE, ReadBatch, now_us
from tagsweep.drivers.llrp.reader_clock import ReaderClock
from tagsweep.drivers.llrp.reports import DOPPLER_SCALE, PHASE_SCALE


def reads_from_sllurp(
    tags: Sequence[Mapping[str, Any]],
    reader_id: int = 0,
    uptime: ReaderClock | None = None,
    utc: ReaderClock | None = None,
) -> ReadBatch:
    """sllurp's decoded TagReportData dicts → READ_DTYPE, with the same rules as ours
    (stamps through ``uptime`` and ``utc``: the decoder's clocks, to compare with it)."""
    out = np.empty(len(tags), dtype=READ_DTYPE)
    now = now_us()
    uptime_rows: list[int] = []
    utc_rows: list[int] = []
    for i, tag in enumerate(tags):
        epc = tag.get("EPC", tag.get("EPC-96", b""))
        kind = "UTC"
        no_utc = "FirstSeenTimestampUTC" not in tag and "LastSeenTimestampUTC" not in tag
        if no_utc and ("FirstSeenTimestampUptime" in tag or "LastSeenTimestampUptime" in tag):
            kind = "Uptime"
            uptime_rows.append(i)
        elif not no_utc:
            utc_rows.append(i)
        first = tag.get(f"FirstSeenTimestamp{kind}", tag.get(f"LastSeenTimestamp{kind}", now))
        last = tag.get(f"LastSeenTimestamp{kind}", tag.get(f"FirstSeenTimestamp{kind}", now))
        if "ImpinjPeakRSSI" in tag:
            rssi = tag["ImpinjPeakRSSI"] / 100.0
        else:
            rssi = tag.get("PeakRSSI", math.nan)
        phase = tag["ImpinjRFPhaseAngle"] * PHASE_SCALE if "ImpinjRFPhaseAngle" in tag else math.nan
        doppler = (
            tag["ImpinjRFDopplerFrequency"] * DOPPLER_SCALE
            if "ImpinjRFDopplerFrequency" in tag
            else math.nan
        )
        out[i] = (
            bytes(epc).upper(),
            reader_id,
            tag.get("AntennaID", 0),
            rssi,
            first,
            last,
            tag.get("TagSeenCount", 1),
            phase,
            doppler,
        )
    if uptime_rows:
        (uptime or ReaderClock()).to_wall(out, np.array(uptime_rows, dtype=np.intp), now)
    if utc_rows and utc is not None:
        utc.to_wall(out, np.array(utc_rows, dtype=np.intp), now)
    return out


def same_reads(a: ReadBatch, b: ReadBatch) -> bool:
    """Row-by-row equality of two batches, NaN equal to NaN (receive-time fields aside)."""
    if len(a) != len(b):
        return False
    for name in ("epc", "reader", "antenna", "first_seen_us", "last_seen_us", "seen_count"):
        if not np.array_equal(a[name], b[name]):
            return False
    return all(np.array_equal(a[n], b[n], equal_nan=True) for n in ("rssi", "phase", "doppler_hz"))
