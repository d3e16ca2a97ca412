"""A small, obviously-correct read → sighting grouping for scoring the world model.

The daemon's dedup kernel is tested on its own; these tests need sightings without
depending on it, so they group reads by (EPC, antenna) and split runs at gaps of at
least ``window_us`` (optionally also at location-context changes, as a daemon that
flushes dedup at each context change would).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tagsweep.domain import SIGHTING_DTYPE, ReadBatch, SightingBatch


def group_sightings(
    reads: ReadBatch, window_us: int, cuts_us: npt.NDArray[np.int64] | None = None
) -> SightingBatch:
    if reads.size == 0:
        return np.zeros(0, dtype=SIGHTING_DTYPE)
    order = np.lexsort((reads["first_seen_us"], reads["antenna"], reads["reader"], reads["epc"]))
    r = reads[order]
    t = r["first_seen_us"].astype(np.int64)
    new = np.ones(r.size, dtype=bool)
    new[1:] = (
        (r["epc"][1:] != r["epc"][:-1])
        | (r["antenna"][1:] != r["antenna"][:-1])
        | (r["reader"][1:] != r["reader"][:-1])
        | (t[1:] - r["last_seen_us"][:-1] >= window_us)
    )
    if cuts_us is not None and cuts_us.size:
        segment = np.searchsorted(cuts_us, t, side="right")
        new[1:] |= segment[1:] != segment[:-1]
    starts = np.flatnonzero(new)
    count = r["seen_count"].astype(np.float64)
    out = np.zeros(starts.size, dtype=SIGHTING_DTYPE)
    out["epc"] = r["epc"][starts]
    out["reader"] = r["reader"][starts]
    out["antenna"] = r["antenna"][starts]
    out["first_seen_us"] = t[starts]
    out["last_seen_us"] = np.maximum.reduceat(r["last_seen_us"], starts)
    out["read_count"] = np.add.reduceat(r["seen_count"].astype(np.uint64), starts)
    out["peak_rssi"] = np.maximum.reduceat(r["rssi"], starts)
    out["mean_rssi"] = np.add.reduceat(r["rssi"] * count, starts) / np.add.reduceat(count, starts)
    return out
