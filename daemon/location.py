"""Walk-through location attribution: which location each EPC read in a count session is at.

During a walk-through count the operator scans a location label at each rack (the
*location context*) and sweeps the rack with a handheld. The handheld also reads the
racks beside it, the rack across the aisle and the room behind a cage wall: on a
realistic site a third to a half of all reads are such *cross-reads*. "The location in
force when the tag was last read" is therefore wrong for every tag that was read again
from the next rack on — a common case, because the operator walks on to the neighbour.

What tells the true rack apart is that the handheld spent a whole sweep a hand's width
from the tag there: reads are both *stronger* and *more numerous* than from anywhere
else. The evidence kept per (EPC, location) is the read count and the RSSI sum (from
which the mean), plus the peak and the time span for the summary. The decision uses the
**received energy** ``mean_rssi + 10·log10(reads)`` (dB of the summed linear power, as
if every read had the mean RSSI), computed on a mean shrunk towards the reader's
sensitivity for locations with only a few reads, so that a single lucky strong
cross-read cannot outvote a sweep. The confidence is a softmax of the scores
(temperature :attr:`AttributionParams.temperature_db`), and the margin to the runner-up
is reported in dB, so a reviewer can sort by doubt.

How to feed it. A sighting that spans a context change (the operator scanned the next
label while a tag was still being read) cannot say which of its reads came from where:
it is split over the contexts by time overlap (read count and RSSI sum apportioned; the
peak kept for every part, it is only reported, never used to decide). With a 2 s dedup
window most neighbour tags are read without a gap from one rack to the next, so such
splits are common and cost accuracy (``benchmarks/bench_location.py``: about 97%
instead of 99.9+%, naive last-location about 13%). So either

* **flush dedup at each context change** (close every open sighting of the handheld at
  the label scan's time) and ``add`` the sightings, or
* ``add_reads`` the raw read batches (exact; costs one sort per batch, call it per dedup
  flush rather than per report).

Reads before the first context change of a session have no location and are ignored;
tags of locations never visited get the visited location they were read best from (the
confidence cannot reveal that; scope the session to the visited locations).

API (pure, numpy-vectorised; nothing here does I/O):

* :class:`LocationTimeline` — the (time, location) changes of one count session;
  ``at(t_us)`` gives the location context of a scan or read.
* :func:`evidence` — sightings (:data:`~tagsweep.domain.SIGHTING_DTYPE`, or any
  structured array with ``epc, first_seen_us, last_seen_us, read_count, mean_rssi,
  peak_rssi``) → per-(EPC, location) evidence rows (:data:`EVIDENCE_DTYPE`).
* :func:`merge_evidence` — combine evidence computed from successive batches: the
  result equals evidence of all sightings at once (sums and maxima), so the daemon can
  fold in each dedup flush and attribute whenever it likes.
* :func:`attribute` — evidence → one :class:`Attribution` per EPC.
* :class:`LocationAttributor` — the three above behind ``set_context``, ``add`` and
  ``attribute``, the shape the daemon's count session wants.

The naive baseline (last location wins) the benchmark compares with is in
``benchmarks/baselines.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from tagsweep.domain import EPC_HEX_MAX

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Records = npt.NDArray[np.void]

#: Evidence for one EPC at one location (index into the timeline's location list).
EVIDENCE_DTYPE: Final = np.dtype(
    [
        ("epc", f"S{EPC_HEX_MAX}"),
        ("location", "i4"),
        ("reads", "f8"),  # read count (fractional after a sighting is split)
        ("rssi_sum", "f8"),  # Σ mean_rssi · reads, dBm
        ("peak_rssi", "f4"),
        ("first_seen_us", "i8"),
        ("last_seen_us", "i8"),
    ]
)

_NO_TIME: Final = np.iinfo(np.int64).max


class LocationTimeline:
    """The location-context changes of one count session, in time order.

    Context ``k`` is in force from its time up to the next change; the last one stays in
    force. Before the first change there is no context (reads there are not attributed).
    Locations get small integer ids in order of first appearance (:attr:`locations`).
    """

    def __init__(self, changes: Iterable[tuple[int, str]] = ()) -> None:
        self._times: list[int] = []
        self._ids: list[int] = []
        self.locations: list[str] = []
        self._index: dict[str, int] = {}
        for t_us, location in changes:
            self.set(t_us, location)

    def location_id(self, location: str) -> int:
        if location not in self._index:
            self._index[location] = len(self.locations)
            self.locations.append(location)
        return self._index[location]

    def set(self, t_us: int, location: str) -> None:
        """Record that the context became ``location`` at ``t_us``.

        A change older than the latest is inserted in order (a late-delivered scan);
        evidence already computed is not re-split, so deliver changes promptly.
        """
        loc = self.location_id(location)
        pos = int(np.searchsorted(np.asarray(self._times, dtype=np.int64), t_us, side="right"))
        self._times.insert(pos, int(t_us))
        self._ids.insert(pos, loc)

    def __len__(self) -> int:
        return len(self._times)

    @property
    def starts(self) -> IntArray:
        return np.asarray(self._times, dtype=np.int64)

    @property
    def location_ids(self) -> npt.NDArray[np.int32]:
        return np.asarray(self._ids, dtype=np.int32)

    def index_at(self, t_us: IntArray) -> IntArray:
        """Index of the context in force at each time (-1 before the first)."""
        result: IntArray = np.searchsorted(self.starts, t_us, side="right").astype(np.int64) - 1
        return result

    def at(self, t_us: int) -> str | None:
        """Location context in force at ``t_us``, None before the first change."""
        k = int(self.index_at(np.array([t_us], dtype=np.int64))[0])
        return self.locations[self._ids[k]] if k >= 0 else None


def evidence(timeline: LocationTimeline, sightings: Records) -> Records:
    """Per-(EPC, location) evidence of a batch of sightings under ``timeline``."""
    n = sightings.size
    if n == 0 or len(timeline) == 0:
        return np.zeros(0, dtype=EVIDENCE_DTYPE)
    first = sightings["first_seen_us"].astype(np.int64)
    last = np.maximum(sightings["last_seen_us"].astype(np.int64), first)
    starts = timeline.starts
    ends = np.append(starts[1:], _NO_TIME)
    k0 = timeline.index_at(first)
    k1 = timeline.index_at(last)
    parts = k1 - k0 + 1
    row = np.repeat(np.arange(n), parts)
    offset = np.arange(row.size) - np.repeat(np.cumsum(parts) - parts, parts)
    k = k0[row] + offset
    keep = k >= 0  # the part before the first context has no location
    row, k = row[keep], k[keep]
    span = (last - first)[row]
    lo = np.maximum(first[row], starts[k])
    hi = np.minimum(last[row], ends[k])
    split = parts[row] > 1
    frac = np.where(split, (hi - lo) / np.where(span > 0, span, 1), 1.0)
    reads = sightings["read_count"].astype(np.float64)[row] * frac
    out = np.zeros(row.size, dtype=EVIDENCE_DTYPE)
    out["epc"] = sightings["epc"][row]
    out["location"] = timeline.location_ids[k]
    out["reads"] = reads
    out["rssi_sum"] = sightings["mean_rssi"].astype(np.float64)[row] * reads
    out["peak_rssi"] = sightings["peak_rssi"][row]
    out["first_seen_us"] = np.where(split, lo, first[row])
    out["last_seen_us"] = np.where(split, hi, last[row])
    return _reduce(out[out["reads"] > 0])


def evidence_from_reads(timeline: LocationTimeline, reads: Records) -> Records:
    """Per-(EPC, location) evidence straight from reads (:data:`~tagsweep.domain.READ_DTYPE`).

    Exact where sightings are not: every read lands in the context of its own time. Use
    it when the raw reads are at hand (they are, before dedup) or sightings may span a
    context change.
    """
    if reads.size == 0 or len(timeline) == 0:
        return np.zeros(0, dtype=EVIDENCE_DTYPE)
    k = timeline.index_at(reads["first_seen_us"].astype(np.int64))
    keep = k >= 0
    r = reads[keep]
    count = r["seen_count"].astype(np.float64)
    out = np.zeros(r.size, dtype=EVIDENCE_DTYPE)
    out["epc"] = r["epc"]
    out["location"] = timeline.location_ids[k[keep]]
    out["reads"] = count
    out["rssi_sum"] = r["rssi"].astype(np.float64) * count
    out["peak_rssi"] = r["rssi"]
    out["first_seen_us"] = r["first_seen_us"]
    out["last_seen_us"] = r["last_seen_us"]
    return _reduce(out[np.isfinite(out["rssi_sum"])])


def _reduce(rows: Records) -> Records:
    """Combine rows with the same (EPC, location): sums, max peak, min/max times."""
    if rows.size == 0:
        return rows
    order = np.lexsort((rows["location"], rows["epc"]))
    r = rows[order]
    new = np.ones(r.size, dtype=bool)
    new[1:] = (r["epc"][1:] != r["epc"][:-1]) | (r["location"][1:] != r["location"][:-1])
    starts = np.flatnonzero(new)
    out = np.zeros(starts.size, dtype=EVIDENCE_DTYPE)
    out["epc"] = r["epc"][starts]
    out["location"] = r["location"][starts]
    out["reads"] = np.add.reduceat(r["reads"], starts)
    out["rssi_sum"] = np.add.reduceat(r["rssi_sum"], starts)
    out["peak_rssi"] = np.fmax.reduceat(r["peak_rssi"], starts)
    out["first_seen_us"] = np.minimum.reduceat(r["first_seen_us"], starts)
    out["last_seen_us"] = np.maximum.reduceat(r["last_seen_us"], starts)
    return out


def merge_evidence(*parts: Records) -> Records:
    """Evidence of several batches combined (order-independent)."""
    rows = [p for p in parts if p.size]
    if not rows:
        return np.zeros(0, dtype=EVIDENCE_DTYPE)
    return _reduce(np.concatenate(rows))


@dataclass(frozen=True, slots=True)
class AttributionParams:
    """Knobs of the decision; the defaults suit a handheld at rack-sweeping power."""

    floor_dbm: float = -75.0  # RSSI a location with no reads is assumed to have
    prior_reads: float = 3.0  # shrinkage strength of the mean towards the floor
    temperature_db: float = 3.0  # softmax temperature of the confidence


@dataclass(frozen=True, slots=True)
class Attribution:
    """Where one EPC is, and the evidence for it."""

    epc: str
    location: str
    confidence: float  # 0..1, softmax of the location scores
    margin_db: float  # score lead over the runner-up (inf when seen at one location only)
    runner_up: str | None
    reads: int  # reads at the chosen location
    total_reads: int  # reads at all locations
    locations_seen: int
    mean_rssi: float  # at the chosen location
    peak_rssi: float  # at the chosen location
    first_seen_us: int  # over the whole session
    last_seen_us: int


def scores(ev: Records, params: AttributionParams | None = None) -> FloatArray:
    """Score of each evidence row: shrunk mean RSSI + 10·log10(reads), in dB."""
    p = params or AttributionParams()
    reads = ev["reads"]
    shrunk = (ev["rssi_sum"] + p.prior_reads * p.floor_dbm) / (reads + p.prior_reads)
    result: FloatArray = shrunk + 10.0 * np.log10(np.maximum(reads, 1e-9))
    return result


def attribute(
    ev: Records, locations: Sequence[str], params: AttributionParams | None = None
) -> list[Attribution]:
    """One attribution per EPC in ``ev`` (sorted by EPC), the best-scoring location."""
    p = params or AttributionParams()
    if ev.size == 0:
        return []
    ev = _reduce(ev)  # grouped by EPC, then location
    s = scores(ev, p)
    new = np.ones(ev.size, dtype=bool)
    new[1:] = ev["epc"][1:] != ev["epc"][:-1]
    starts = np.flatnonzero(new)
    group = np.cumsum(new) - 1
    # Best row per EPC: sort by (group, -score); the first row of each group wins.
    order = np.lexsort((-s, group))
    best = order[starts]
    best_score = s[best]
    rel = s - best_score[group]
    weight = np.exp(rel / p.temperature_db)
    confidence = 1.0 / np.add.reduceat(weight, starts)
    second_pos = starts + 1
    counts = np.diff(np.append(starts, ev.size))
    has_second = counts > 1
    second = np.where(has_second, order[np.minimum(second_pos, ev.size - 1)], -1)
    total = np.add.reduceat(ev["reads"], starts)
    first_seen = np.minimum.reduceat(ev["first_seen_us"], starts)
    last_seen = np.maximum.reduceat(ev["last_seen_us"], starts)
    out: list[Attribution] = []
    for g in range(starts.size):
        b = int(best[g])
        sec = int(second[g])
        reads = float(ev["reads"][b])
        out.append(
            Attribution(
                epc=ev["epc"][b].decode("ascii"),
                location=locations[int(ev["location"][b])],
                confidence=float(confidence[g]),
                margin_db=float(best_score[g] - s[sec]) if sec >= 0 else float("inf"),
                runner_up=locations[int(ev["location"][sec])] if sec >= 0 else None,
                reads=round(reads),
                total_reads=round(float(total[g])),
                locations_seen=int(counts[g]),
                mean_rssi=float(ev["rssi_sum"][b] / reads) if reads else float("nan"),
                peak_rssi=float(ev["peak_rssi"][b]),
                first_seen_us=int(first_seen[g]),
                last_seen_us=int(last_seen[g]),
            )
        )
    return out


class LocationAttributor:
    """Incremental attribution for one count session.

    ``set_context`` at every location label scan (or operator command), ``add`` every
    batch of closed sightings of the session's handheld(s), ``attribute`` at session stop
    or whenever a live view wants it. Cost of ``add`` is one vectorised pass over the
    batch plus a re-reduction of the evidence so far (one row per EPC and location).
    """

    def __init__(self, params: AttributionParams | None = None) -> None:
        self.timeline = LocationTimeline()
        self.params = params or AttributionParams()
        self._evidence: Records = np.zeros(0, dtype=EVIDENCE_DTYPE)

    def set_context(self, t_us: int, location: str) -> None:
        self.timeline.set(t_us, location)

    def add(self, sightings: Records) -> None:
        """Fold in closed sightings (split over contexts by time if they span a change)."""
        self._evidence = merge_evidence(self._evidence, evidence(self.timeline, sightings))

    def add_reads(self, reads: Records) -> None:
        """Fold in raw reads instead of sightings (exact; do not also add their sightings)."""
        self._evidence = merge_evidence(self._evidence, evidence_from_reads(self.timeline, reads))

    @property
    def evidence(self) -> Records:
        return self._evidence

    def attribute(self) -> list[Attribution]:
        return attribute(self._evidence, self.timeline.locations, self.params)


__all__ = [
    "EVIDENCE_DTYPE",
    "Attribution",
    "AttributionParams",
    "LocationAttributor",
    "LocationTimeline",
    "attribute",
    "evidence",
    "evidence_from_reads",
    "merge_evidence",
    "scores",
]
