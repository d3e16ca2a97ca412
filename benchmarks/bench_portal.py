"""Portal direction accuracy against the world model's ground truth.

Scenario: a storage-room door with an inside and an outside antenna (the wall is
between them, the doorway lets both see a little of the other side, and scattered
paths give every tag near the door weak reads on both). A pool of 2,000 tagged assets;
people carry 1-8 of them through per trip, in or out; 3% of trips turn back at the
threshold, 8% walk past in the corridor, and items carried in may be parked on a shelf
inside the field, to be carried out again later.

The daemon's :class:`~tagsweep.daemon.portal.PortalTracker` is fed as the daemon feeds it:
0.2 s batches with ``advance()`` on the reader clock after each, once with every read
and once with the reader folding reads into 200 ms reports (``report_every_ms=200``).
Beside it, on the same reads, the naive **last antenna seen** baseline: runs of reads
with gaps under the quiet time; a run seen on both antennas is a pass towards the
antenna that read it last.

Scoring: a detected pass matches a true pass of the same tag within 3 s. Direction
accuracy = correct / true passes (a missed pass counts as wrong); spurious = detected
passes that match none (turn-backs, walk-bys, parked items). Run:
``.venv/bin/python -m benchmarks.bench_portal [--seeds 3 --trips 300]``. Writes
``benchmarks/results/portal.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from benchmarks.baselines import last_antenna_passes
from tagsweep.daemon.portal import PortalPass, PortalSettings, PortalTracker
from tagsweep.domain import ReadBatch
from tagsweep.simulators.world import (
    PortalScore,
    PortalTraffic,
    aggregate_reports,
    portal_traffic,
    score_passes,
)

RESULTS = Path(__file__).parent / "results"
STEP_US = 200_000


def track(traffic: PortalTraffic, reads: ReadBatch) -> tuple[list[PortalPass], float]:
    settings = PortalSettings(
        portal="store-door",
        zone=traffic.zone,
        inside_antenna=traffic.params.inside_antenna,
        outside_antenna=traffic.params.outside_antenna,
    )
    tracker = PortalTracker(settings)
    times = reads["last_seen_us"]
    edges = np.arange(int(times[0]), int(times[-1]) + STEP_US, STEP_US)
    idx = np.searchsorted(times, edges)
    started = time.perf_counter()
    for lo, hi, edge in zip(idx[:-1], idx[1:], edges[1:], strict=True):
        tracker.feed(reads[lo:hi])
        tracker.advance(int(edge))
    tracker.flush()
    return tracker.passes, time.perf_counter() - started


def as_tuples(passes: list[PortalPass]) -> list[tuple[str, int, str]]:
    return [(p.epc, p.t_us, p.direction) for p in passes]


def figures(score: PortalScore) -> dict[str, float | int]:
    return {
        "direction_accuracy": round(score.direction_accuracy, 5),
        "correct": score.correct,
        "wrong_direction": score.wrong_direction,
        "missed": score.missed,
        "spurious": score.spurious,
    }


METHODS = ("tracker", "tracker_200ms_reports", "baseline_last_antenna")


def run(seed: int, trips: int) -> tuple[dict[str, int], dict[str, PortalScore]]:
    traffic = portal_traffic(seed, trips=trips, items=2000)
    ours, elapsed = track(traffic, traffic.reads)
    ours_reports, _ = track(traffic, aggregate_reports(traffic.reads, 0.2))
    settings = PortalSettings(
        portal="store-door",
        zone=traffic.zone,
        inside_antenna=traffic.params.inside_antenna,
        outside_antenna=traffic.params.outside_antenna,
    )
    naive = last_antenna_passes(traffic.reads, settings)
    meta = {
        "seed": seed,
        "reads": int(traffic.reads.size),
        "true_passes": len(traffic.passes),
        "turnbacks": len(traffic.turnbacks),
        "walk_bys": len(traffic.walk_bys),
        "tracker_reads_per_s": round(traffic.reads.size / elapsed),
    }
    scores = {
        name: score_passes(traffic.passes, as_tuples(passes))
        for name, passes in zip(METHODS, (ours, ours_reports, naive), strict=True)
    }
    return meta, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="scenarios to run (seeds 1..N)")
    parser.add_argument("--trips", type=int, default=300, help="trips through the door each")
    args = parser.parse_args()
    runs: list[dict[str, object]] = []
    totals = dict.fromkeys(METHODS, 0)
    spurious = dict.fromkeys(METHODS, 0)
    true_passes = 0
    for seed in range(1, args.seeds + 1):
        meta, scores = run(seed, args.trips)
        runs.append({**meta, **{name: figures(sc) for name, sc in scores.items()}})
        true_passes += meta["true_passes"]
        for name, sc in scores.items():
            totals[name] += sc.correct
            spurious[name] += sc.spurious
        ours, agg, naive = (scores[name] for name in METHODS)
        print(
            f"seed {seed}: {meta['true_passes']} passes, {meta['turnbacks']} turn-backs, "
            f"{meta['walk_bys']} walk-bys, {meta['reads']:,} reads | tracker "
            f"{ours.direction_accuracy:.2%} ({ours.spurious} spurious), with 200 ms "
            f"reports {agg.direction_accuracy:.2%} ({agg.spurious} spurious) vs "
            f"last-antenna {naive.direction_accuracy:.2%} ({naive.spurious} spurious) | "
            f"{meta['tracker_reads_per_s']:,} reads/s"
        )
    summary = {
        "benchmark": "portal",
        "target": "direction accuracy >= 99%",
        "direction_accuracy": round(totals["tracker"] / true_passes, 5),
        "spurious": spurious["tracker"],
        "direction_accuracy_200ms_reports": round(totals["tracker_200ms_reports"] / true_passes, 5),
        "spurious_200ms_reports": spurious["tracker_200ms_reports"],
        "baseline_last_antenna": round(totals["baseline_last_antenna"] / true_passes, 5),
        "baseline_spurious": spurious["baseline_last_antenna"],
        "true_passes": true_passes,
        "runs": runs,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
    }
    print(
        f"all: tracker {summary['direction_accuracy']:.2%} with {summary['spurious']} spurious "
        f"vs last-antenna {summary['baseline_last_antenna']:.2%} with "
        f"{summary['baseline_spurious']} spurious, over {true_passes} passes"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "portal.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
