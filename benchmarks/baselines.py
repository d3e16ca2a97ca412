"""Baselines and reference implementations that tests and benchmarks compare the
production code with; nothing in the product imports them.

* :func:`reference_dedup` — the plain-Python definition of a sighting
  (the ``daemon/dedup`` kernel must equal it), and :func:`sightings_as_tuples` to put
  the kernel's output in its shape;
* :func:`classify_last_antenna`, :func:`last_antenna_passes` — the naive portal
  direction (towards the antenna that read last), beside ``daemon/portal.py``;
* :func:`attribute_last_seen` — the naive location (last context wins), beside
  ``daemon/location.py``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt

from tagsweep.daemon.location import LocationTimeline
from tagsweep.daemon.portal import Direction, PortalPass, PortalSettings, PortalTracker, Records
from tagsweep.domain import ReadBatch, SightingBatch

SightingTuple = tuple[bytes, int, int, int, int, int, float, float]


def reference_dedup(reads: ReadBatch, window_us: int) -> list[SightingTuple]:
    """Plain-Python definition of a sighting, for tests and the benchmark baseline.

    Reads of each key are taken in (first_seen, arrival) order; returns tuples of
    (epc, reader, antenna, first, last, read_count, peak_rssi, mean_rssi).
    """
    runs: dict[tuple[bytes, int, int], list[list[float]]] = {}
    order = sorted(range(len(reads)), key=lambda i: int(reads["first_seen_us"][i]))
    for i in order:
        r = reads[i]
        key = (bytes(r["epc"]), int(r["reader"]), int(r["antenna"]))
        first = int(r["first_seen_us"])
        last = max(first, int(r["last_seen_us"]))
        count = max(int(r["seen_count"]), 1)
        rssi = float(r["rssi"])
        known = not math.isnan(rssi)
        runs_of_key = runs.setdefault(key, [])
        current = runs_of_key[-1] if runs_of_key else None
        if current is None or first - current[1] >= window_us:
            runs_of_key.append(
                [first, last, count, rssi, rssi * count if known else 0.0, count if known else 0]
            )
        else:
            current[1] = max(current[1], last)
            current[2] += count
            if known:
                current[3] = rssi if math.isnan(current[3]) else max(current[3], rssi)
                current[4] += rssi * count
                current[5] += count
    out: list[SightingTuple] = []
    for (epc, reader, antenna), runs_of_key in runs.items():
        for run in runs_of_key:
            mean = run[4] / run[5] if run[5] else float("nan")
            out.append(
                (epc, reader, antenna, int(run[0]), int(run[1]), int(run[2]), float(run[3]), mean)
            )
    return sorted(out, key=lambda t: (t[1], t[2], t[0], t[3]))


def sightings_as_tuples(batch: SightingBatch) -> list[SightingTuple]:
    """Kernel output in the reference's shape and order (for comparisons)."""
    out: list[SightingTuple] = [
        (
            bytes(r["epc"]),
            int(r["reader"]),
            int(r["antenna"]),
            int(r["first_seen_us"]),
            int(r["last_seen_us"]),
            int(r["read_count"]),
            float(r["peak_rssi"]),
            float(r["mean_rssi"]),
        )
        for r in batch
    ]
    return sorted(out, key=lambda t: (t[1], t[2], t[0], t[3]))


def classify_last_antenna(reads: npt.NDArray[np.float64]) -> tuple[Direction, int, float] | None:
    """Naive baseline: a track read on both antennas went towards the antenna that read
    it last; the pass time is the middle of the track."""
    inside = reads[:, 1] > 0
    if not inside.any() or inside.all():
        return None
    last = int(np.argmax(reads[:, 0]))
    middle = (reads[:, 0].min() + reads[:, 0].max()) / 2
    return ("in" if inside[last] else "out"), int(middle), 1.0


def last_antenna_passes(reads: Records, settings: PortalSettings) -> list[PortalPass]:
    """The naive baseline over a whole read log: per EPC, runs of reads with gaps under
    ``quiet_s``; a run read on both antennas is a pass towards the antenna that read it
    last (:func:`classify_last_antenna`)."""
    tracker = PortalTracker(settings)
    epcs, rows = tracker._rows(reads)  # same antenna/reader filtering as the tracker
    order = np.lexsort((rows[:, 0], epcs))
    epcs, rows = epcs[order], rows[order]
    cut = np.ones(epcs.size, dtype=bool)
    cut[1:] = (epcs[1:] != epcs[:-1]) | (np.diff(rows[:, 0]) >= settings.quiet_s * 1_000_000)
    bounds = np.append(np.flatnonzero(cut), epcs.size).tolist()
    passes: list[PortalPass] = []
    for lo, hi in itertools.pairwise(bounds):
        run = rows[lo:hi]
        decided = classify_last_antenna(run)
        if decided is not None:
            inside = run[:, 1] > 0
            passes.append(
                PortalPass(
                    epc=bytes(epcs[lo]).decode("ascii"),
                    direction=decided[0],
                    t_us=decided[1],
                    confidence=decided[2],
                    reads_inside=int(run[inside, 3].sum()),
                    reads_outside=int(run[~inside, 3].sum()),
                )
            )
    return passes


def attribute_last_seen(timeline: LocationTimeline, sightings: Records) -> dict[str, str]:
    """Naive baseline: each EPC is where the context was when it was last read."""
    if sightings.size == 0 or len(timeline) == 0:
        return {}
    order = np.lexsort((sightings["last_seen_us"], sightings["epc"]))
    s = sightings[order]
    last_of_epc = np.append(s["epc"][1:] != s["epc"][:-1], True)
    s = s[last_of_epc]
    k = timeline.index_at(s["last_seen_us"].astype(np.int64))
    ids = timeline.location_ids
    return {
        e.decode("ascii"): timeline.locations[int(ids[i])]
        for e, i in zip(s["epc"].tolist(), k.tolist(), strict=True)
        if i >= 0
    }
