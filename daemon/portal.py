"""Portal direction and ALE-style presence from a door reader's inside and outside antennas.

A portal reader at a storage-room door has one antenna looking into the room (*inside*)
and one looking into the corridor (*outside*). An item carried in is first read strongly
outside, then strongly inside; carried out, the other way round. Which antenna saw the
tag *last* is a poor guide: both antennas read through the open door, a tag read once
more by the far antenna as the carrier turns flips the answer, and a person who walks to
the threshold and turns back is counted as a pass. What carries the direction is the
*order and shape* of the two RSSI peaks:

1. per antenna, the **peak time**: the power-weighted mean time of the reads within
   ``peak_window_db`` of that antenna's strongest read (robust to a single spike);
2. the **crossing time** ``t_c`` half-way between the two peak times;
3. the **asymmetry** ``a = share_in(after t_c) - share_in(before t_c)``, where
   ``share_in`` is the inside antenna's share of received linear power. A pass in has
   ``a`` near +1, a pass out near -1, and a turn-back (same side before and after)
   near 0.

A pass is reported when the peak order and the sign of ``a`` agree and ``|a|`` is at
least ``min_asymmetry``; its confidence is ``|a|``. A tag read on one antenna only
(items on a shelf by the door, people walking past in the corridor) never makes a pass.

Tracks and time: reads are grouped per EPC into a *track* that stays open while the tag
keeps being read; once the tag has been quiet for ``quiet_s`` (on the reader's clock,
i.e. the timestamps of the reads, supplied as ``now_us`` to :meth:`PortalTracker.advance`)
the track closes and is classified. Only the last ``history_s`` of a track is kept, so a
tag parked in the field costs bounded memory, and when it is finally carried away the
shelf reads before the carry still say where it came from.

Presence (ALE-style): per tag and portal zone (``inside``, ``outside``), ARRIVE when the
tag is first read by that zone's antenna and DEPART once it has been quiet there for
``quiet_s``.

API for the daemon (one tracker per portal reader; not thread-safe, call from one task):

* ``PortalTracker(PortalSettings(portal=..., zone=..., inside_antenna=1, outside_antenna=2))``
  or :meth:`PortalTracker.from_config` with the ``[readers.portal]`` table;
* ``feed(batch)`` — reads (:data:`~tagsweep.domain.READ_DTYPE`) or sightings
  (:data:`~tagsweep.domain.SIGHTING_DTYPE`, each taken as one read at its mid-time with
  its mean RSSI and read count: fine only with short dedup windows), in reader-clock
  order → ARRIVE events (plus DEPART/PORTAL_PASS when a read follows a silence);
* ``advance(now_us)`` — DEPART and PORTAL_PASS events of everything quiet by ``now_us``
  (the reader clock: every read up to ``now_us`` must have been fed). Call it every
  dedup flush; passes and their times do not depend on batch sizes or call cadence;
* ``flush()`` — close every track (shutdown);
* ``passes`` — every :class:`PortalPass` decided so far (also in the PORTAL_PASS payload).

The naive last-antenna baseline the benchmark prints beside it is in
``benchmarks/baselines.py``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
import numpy.typing as npt

from tagsweep.daemon.events import EventKind, GatewayEvent
from tagsweep.domain import SIGHTING_DTYPE

if TYPE_CHECKING:
    from tagsweep.config.schema import PortalSection

Records = npt.NDArray[np.void]
Direction = Literal["in", "out"]
Zone = Literal["inside", "outside"]

_COMPACT_AT: Final = 256  # pending chunks of a track before they are concatenated


@dataclass(frozen=True, slots=True)
class PortalSettings:
    """One portal reader: which antenna looks where, and the timing knobs."""

    portal: str  # reader name, carried in every event
    zone: str  # location path of the inside (e.g. "DC1/Storage 1")
    inside_antenna: int
    outside_antenna: int
    reader: int | None = None  # only reads of this reader index; None = every read fed
    quiet_s: float = 2.0
    history_s: float = 15.0
    min_reads: int = 2  # per antenna, for a pass
    peak_window_db: float = 6.0
    min_asymmetry: float = 0.3

    def __post_init__(self) -> None:
        if self.inside_antenna == self.outside_antenna:
            raise ValueError("inside_antenna and outside_antenna must differ")
        if self.quiet_s <= 0 or self.history_s <= self.quiet_s:
            raise ValueError("need 0 < quiet_s < history_s")


@dataclass(frozen=True, slots=True)
class PortalPass:
    """One decided pass of one tag."""

    epc: str
    direction: Direction
    t_us: int  # estimated crossing time
    confidence: float  # |asymmetry|, 0..1
    reads_inside: int
    reads_outside: int


@dataclass(slots=True)
class _Track:
    first_us: int
    last_us: int
    zone_last_us: dict[Zone, int] = field(default_factory=dict)
    chunks: list[npt.NDArray[np.float64]] = field(default_factory=list)  # rows: t, inside, rssi, w

    def reads(self) -> npt.NDArray[np.float64]:
        if len(self.chunks) != 1:
            self.chunks = [np.concatenate(self.chunks)] if self.chunks else [np.zeros((0, 4))]
        return self.chunks[0]


def _peak_time(
    t: npt.NDArray[np.float64],
    rssi: npt.NDArray[np.float64],
    lin: npt.NDArray[np.float64],
    window_db: float,
) -> float:
    sel = rssi >= rssi.max() - window_db
    return float(np.sum(lin[sel] * t[sel]) / np.sum(lin[sel]))


def classify(
    reads: npt.NDArray[np.float64], settings: PortalSettings
) -> tuple[Direction, int, float] | None:
    """(direction, crossing time, confidence) of one closed track, or None for no pass.

    ``reads`` rows are ``(t_us, is_inside, rssi_dbm, read_count)``.
    """
    t = reads[:, 0]
    inside = reads[:, 1] > 0
    rssi = reads[:, 2]
    w = reads[:, 3]
    n_in = float(w[inside].sum())
    n_out = float(w[~inside].sum())
    if n_in < settings.min_reads or n_out < settings.min_reads:
        return None
    lin = w * np.power(10.0, (rssi - rssi.max()) / 10.0)
    t0 = t.min()  # work relative to the track start: float64 keeps µs exact
    rel = t - t0
    t_in = _peak_time(rel[inside], rssi[inside], lin[inside], settings.peak_window_db)
    t_out = _peak_time(rel[~inside], rssi[~inside], lin[~inside], settings.peak_window_db)
    t_c = (t_in + t_out) / 2.0
    after = rel >= t_c

    def share_in(mask: npt.NDArray[np.bool_]) -> float:
        total = float(lin[mask].sum())
        return float(lin[mask & inside].sum()) / total if total > 0 else 0.5

    asym = share_in(after) - share_in(~after)
    by_order: Direction = "in" if t_out < t_in else "out"
    by_shape: Direction = "in" if asym > 0 else "out"
    if abs(asym) < settings.min_asymmetry or by_order != by_shape:
        return None
    return by_shape, round(t0 + t_c), abs(asym)


class PortalTracker:
    """Incremental portal passes and presence for one portal reader (see module doc)."""

    def __init__(self, settings: PortalSettings) -> None:
        self.settings = settings
        self._tracks: dict[bytes, _Track] = {}
        self.passes: list[PortalPass] = []
        self._quiet_us = int(settings.quiet_s * 1_000_000)
        self._history_us = int(settings.history_s * 1_000_000)

    @classmethod
    def from_config(
        cls,
        portal: str,
        section: PortalSection,
        *,
        reader: int | None = None,
        quiet_s: float = 2.0,
        history_s: float = 15.0,
    ) -> PortalTracker:
        """Tracker for a reader's ``[readers.portal]`` table."""
        settings = PortalSettings(
            portal=portal,
            zone=section.zone,
            inside_antenna=section.inside_antenna,
            outside_antenna=section.outside_antenna,
            reader=reader,
            quiet_s=quiet_s,
            history_s=history_s,
        )
        return cls(settings)

    @property
    def open_tracks(self) -> int:
        return len(self._tracks)

    def _rows(self, batch: Records) -> tuple[npt.NDArray[np.bytes_], npt.NDArray[np.float64]]:
        s = self.settings
        ant = batch["antenna"]
        keep = (ant == s.inside_antenna) | (ant == s.outside_antenna)
        if s.reader is not None:
            keep &= batch["reader"] == s.reader
        b = batch[keep]
        if b.dtype == SIGHTING_DTYPE:
            t = (b["first_seen_us"] // 2 + b["last_seen_us"] // 2).astype(np.float64)
            rssi = b["mean_rssi"].astype(np.float64)
            count = b["read_count"].astype(np.float64)
        else:
            t = b["last_seen_us"].astype(np.float64)
            rssi = b["rssi"].astype(np.float64)
            count = b["seen_count"].astype(np.float64)
        rows = np.column_stack([t, b["antenna"] == s.inside_antenna, rssi, count])
        ok = np.isfinite(rssi)
        return b["epc"][ok], rows[ok]

    def feed(self, batch: Records) -> list[GatewayEvent]:
        """Add a batch of reads (or sightings) in reader-clock order.

        Returns the ARRIVE events, and the DEPART and PORTAL_PASS events of zones the
        batch itself shows were left (a read after a silence of ``quiet_s`` or more), so
        the outcome does not depend on how the stream is cut into batches.
        """
        if batch.size == 0:
            return []
        epcs, rows = self._rows(batch)
        if epcs.size == 0:
            return []
        order = np.lexsort((rows[:, 0], epcs))
        epcs, rows = epcs[order], rows[order]
        new = np.ones(epcs.size, dtype=bool)
        new[1:] = epcs[1:] != epcs[:-1]
        bounds = np.append(np.flatnonzero(new), epcs.size).tolist()
        events: list[GatewayEvent] = []
        for lo, hi in itertools.pairwise(bounds):
            events.extend(self._feed_tag(bytes(epcs[lo]), rows[lo:hi]))
        events.sort(key=lambda e: e.ts_us)
        return events

    def _feed_tag(self, epc: bytes, part: npt.NDArray[np.float64]) -> list[GatewayEvent]:
        track = self._tracks.get(epc)
        if track is None:
            track = self._tracks[epc] = _Track(first_us=int(part[0, 0]), last_us=0)
        track.last_us = max(track.last_us, int(part[-1, 0]))
        track.chunks.append(part)
        events: list[GatewayEvent] = []
        departures: list[tuple[int, Zone]] = []
        zones: tuple[tuple[Zone, npt.NDArray[np.bool_]], ...] = (
            ("inside", part[:, 1] > 0),
            ("outside", part[:, 1] == 0),
        )
        for zone, mask in zones:
            if not mask.any():
                continue
            times = part[mask, 0].astype(np.int64)
            previous = track.zone_last_us.get(zone)
            before = np.concatenate([[previous if previous is not None else -1], times[:-1]])
            gap = (times - before >= self._quiet_us) & (before >= 0)
            if previous is None:
                events.append(self._presence(EventKind.ARRIVE, epc, zone, int(times[0])))
            for i in np.flatnonzero(gap).tolist():
                departures.append((int(before[i]), zone))
                events.append(self._presence(EventKind.ARRIVE, epc, zone, int(times[i])))
            track.zone_last_us[zone] = int(times[-1])
        for until, zone in sorted(departures):
            events.append(self._presence(EventKind.DEPART, epc, zone, until))
            events.extend(self._episode(epc, track, until))
        if len(track.chunks) >= _COMPACT_AT:
            self._trim(track)
        return events

    def _trim(self, track: _Track) -> None:
        """Drop reads no future episode can use (older than the earliest possible
        decision horizon minus ``history_s``)."""
        reads = track.reads()
        horizon = min(track.zone_last_us.values(), default=track.last_us) + self._quiet_us
        keep = reads[:, 0] >= horizon - self._history_us
        if reads.size and not keep[0]:
            track.chunks = [reads[keep]]

    def advance(self, now_us: int) -> list[GatewayEvent]:
        """DEPART for every zone a tag has been quiet in for ``quiet_s`` by ``now_us``.

        Each departure also ends an *episode*: if the track holds reads of both antennas,
        it is classified (PORTAL_PASS when it was a pass) and the reads up to the zone's
        last read are dropped, so a tag carried in and left within the inside antenna's
        field still yields its pass when the outside antenna loses it.
        """
        events: list[GatewayEvent] = []
        cutoff = now_us - self._quiet_us
        for epc in list(self._tracks):
            track = self._tracks[epc]
            departed = sorted(
                (last, zone) for zone, last in track.zone_last_us.items() if last <= cutoff
            )
            # In time order, so the result does not depend on how often advance() runs.
            for last, zone in departed:
                events.append(self._presence(EventKind.DEPART, epc, zone, last))
                del track.zone_last_us[zone]
                events.extend(self._episode(epc, track, last))
            if not track.zone_last_us:
                del self._tracks[epc]
        events.sort(key=lambda e: e.ts_us)
        return events

    def flush(self) -> list[GatewayEvent]:
        """Close every track now (shutdown): DEPART and PORTAL_PASS events."""
        latest = max((t.last_us for t in self._tracks.values()), default=0)
        return self.advance(latest + self._quiet_us)

    def _episode(self, epc: bytes, track: _Track, until_us: int) -> list[GatewayEvent]:
        reads = track.reads()
        # Decide on the last history_s of reads up to the moment the departure became
        # certain (those after the zone's last read show where the tag went), then forget
        # the episode up to the zone's last read.
        track.chunks = [reads[reads[:, 0] > until_us]]
        horizon = until_us + self._quiet_us
        t = reads[:, 0]
        reads = reads[(t <= horizon) & (t >= horizon - self._history_us)]
        inside = reads[:, 1] > 0
        if inside.all() or not inside.any():
            return []
        decided = classify(reads, self.settings)
        if decided is None:
            return []
        direction, t_us, confidence = decided
        result = PortalPass(
            epc=epc.decode("ascii"),
            direction=direction,
            t_us=t_us,
            confidence=round(confidence, 3),
            reads_inside=int(reads[inside, 3].sum()),
            reads_outside=int(reads[~inside, 3].sum()),
        )
        self.passes.append(result)
        s = self.settings
        payload = {
            "portal": s.portal,
            "epc": result.epc,
            "direction": direction,
            "zone": s.zone,
            "location": s.zone if direction == "in" else None,
            "confidence": result.confidence,
            "reads_inside": result.reads_inside,
            "reads_outside": result.reads_outside,
        }
        return [GatewayEvent(EventKind.PORTAL_PASS, payload, ts_us=t_us)]

    def _presence(self, kind: EventKind, epc: bytes, zone: Zone, t_us: int) -> GatewayEvent:
        s = self.settings
        payload = {
            "portal": s.portal,
            "epc": epc.decode("ascii"),
            "zone": zone,
            "location": s.zone if zone == "inside" else None,
        }
        return GatewayEvent(kind, payload, ts_us=t_us)


__all__ = [
    "PortalPass",
    "PortalSettings",
    "PortalTracker",
    "classify",
]
