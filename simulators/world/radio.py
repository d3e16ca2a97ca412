"""The radio model of the simulated world: a reader antenna's link budget
(:class:`Radio`: path loss, antenna pattern, fading, sensitivity, anti-collision), hit
matrices into READ_DTYPE reads, and folding reads into per-interval reports as an
LLRP reader does (:func:`aggregate_reports`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tagsweep.domain import ReadBatch, empty_reads
from tagsweep.simulators.world.site import FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class Radio:
    """Link budget of one reader antenna (dBm, dB, metres)."""

    ref_rssi_dbm: float  # RSSI of a boresight tag at 1 m
    path_loss_exp: float = 2.2
    pattern_exp: float = 3.0  # main lobe ~ cos^n(theta)
    back_lobe_db: float = -18.0
    sensitivity_dbm: float = -76.0
    fading_sd_db: float = 3.0
    round_efficiency: float = 0.85  # share of in-field tags a round singulates

    def nominal_rssi(self, d: FloatArray, cos_theta: FloatArray) -> FloatArray:
        d = np.maximum(d, 0.08)
        main = self.pattern_exp * 10.0 * np.log10(np.maximum(cos_theta, 1e-4))
        gain = np.maximum(main, self.back_lobe_db)
        result: FloatArray = self.ref_rssi_dbm - 10.0 * self.path_loss_exp * np.log10(d) + gain
        return result

    def detect(
        self, rssi_nominal: FloatArray, rng: np.random.Generator
    ) -> tuple[npt.NDArray[np.bool_], FloatArray]:
        """(read?, reported RSSI) for each candidate; RSSI quantised to 0.5 dB like readers."""
        inst = rssi_nominal + rng.normal(0.0, self.fading_sd_db, size=rssi_nominal.shape)
        hit = (inst > self.sensitivity_dbm) & (
            rng.random(rssi_nominal.shape) < self.round_efficiency
        )
        return hit, np.round(inst * 2.0) / 2.0


def reads_from_hits(
    hit: npt.NDArray[np.bool_],
    rssi: FloatArray,
    times_us: IntArray,
    epcs: npt.NDArray[np.bytes_],
    antenna: int | IntArray = 1,
) -> ReadBatch:
    """Rows (rounds) by columns (tags) hit matrix → a READ_DTYPE batch, one read per hit."""
    rows, cols = np.nonzero(hit)
    batch = empty_reads(rows.size)
    batch["epc"] = epcs[cols]
    batch["antenna"] = antenna if isinstance(antenna, int) else antenna[rows]
    batch["rssi"] = rssi[rows, cols]
    batch["first_seen_us"] = times_us[rows]
    batch["last_seen_us"] = times_us[rows]
    return batch


def sort_reads(batch: ReadBatch) -> ReadBatch:
    order = np.lexsort((batch["antenna"], batch["epc"], batch["first_seen_us"]))
    return batch[order]


def aggregate_reports(reads: ReadBatch, interval_s: float) -> ReadBatch:
    """Fold reads into per-(EPC, antenna) reports every ``interval_s``, as an LLRP reader
    with ``report_every_ms`` does: first/last seen, seen count and peak RSSI."""
    if interval_s <= 0 or reads.size == 0:
        return reads.copy()
    interval_us = int(interval_s * 1_000_000)
    bucket = reads["first_seen_us"] // interval_us
    order = np.lexsort((reads["first_seen_us"], reads["antenna"], reads["epc"], bucket))
    r = reads[order]
    b = bucket[order]
    new = np.ones(r.size, dtype=bool)
    new[1:] = (
        (b[1:] != b[:-1])
        | (r["epc"][1:] != r["epc"][:-1])
        | (r["antenna"][1:] != r["antenna"][:-1])
    )
    starts = np.flatnonzero(new)
    out = empty_reads(starts.size)
    out["epc"] = r["epc"][starts]
    out["reader"] = r["reader"][starts]
    out["antenna"] = r["antenna"][starts]
    out["first_seen_us"] = r["first_seen_us"][starts]
    out["last_seen_us"] = np.maximum.reduceat(r["last_seen_us"], starts)
    out["seen_count"] = np.add.reduceat(r["seen_count"].astype(np.int64), starts)
    out["rssi"] = np.fmax.reduceat(r["rssi"], starts)
    # Reports go out at the end of their interval, so a consumer sees them in that order.
    return out[np.lexsort((out["epc"], out["last_seen_us"]))]
