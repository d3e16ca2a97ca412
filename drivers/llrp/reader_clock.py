"""A reader's read timestamps → this gateway's wall clock, per connection
(:class:`ReaderClock`): for readers without a UTC clock, and readers whose clock is
wrong."""

from __future__ import annotations

import math

import numpy as np

from tagsweep.domain import ReadBatch


class ReaderClock:
    """A reader's timestamps → wall clock, per connection.

    Two kinds of reader need it. One without a UTC clock stamps reads in microseconds
    since it booted (First/LastSeenTimestampUptime): its stamps are always re-anchored
    (``threshold_us=0``). One whose UTC clock is wrong (never set, so it counts from
    2000-01-01, or hours off) stamps reads outside any session window: its stamps are
    re-anchored once they are ``threshold_us`` or more away from the receive time
    (``math.inf``: never, for decoding a capture long after it was taken).

    The offset is the smallest "receive time - newest stamp" seen on the connection, as
    network and buffering delays only ever add to it; a reboot or a clock correction is
    a new connection, so a new clock. Until the skew exceeds the threshold, stamps are
    kept as the reader sent them.
    """

    def __init__(self, threshold_us: float = 0) -> None:
        self.threshold_us = threshold_us
        self._tightest: int | None = None  # smallest receive time - stamp seen so far
        self.offset_us: int | None = None  # what is added to the stamps (None: nothing)

    def to_wall(self, out: ReadBatch, rows: np.ndarray, now: int) -> None:
        """Turn the stamps of ``out[rows]`` into wall-clock microseconds."""
        if not len(rows) or self.threshold_us == math.inf:
            return
        candidate = now - int(out["last_seen_us"][rows].max())
        if self._tightest is None or candidate < self._tightest:
            self._tightest = candidate
            skewed = abs(candidate) >= self.threshold_us
            self.offset_us = candidate if skewed else None
        if self.offset_us is not None:
            out["first_seen_us"][rows] += self.offset_us
            out["last_seen_us"][rows] += self.offset_us
