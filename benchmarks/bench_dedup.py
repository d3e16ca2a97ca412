"""Dedup kernel throughput against a plain-Python dict loop, measured in the same run.

The stream imitates a walk-through count: 20,000 tagged assets, a handheld with four
antenna ports sweeping past them so a few hundred tags are in the field at any moment,
each read repeatedly for a few seconds, about 20,000 reads per second. The kernel is fed
batches as the daemon feeds it (one batch per flush, then an expiry by the reader's
clock); the baseline is the obvious
implementation — a dict of open sightings keyed by (EPC, reader, antenna), one Python
step per read — given its input as Python objects already, so only the dedup is timed.

Run: ``.venv/bin/python -m benchmarks.bench_dedup [--reads N]``. Writes
``benchmarks/results/dedup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from tagsweep.daemon.dedup.deduplicator import Deduplicator
from tagsweep.domain import ReadBatch, empty_reads

RESULTS = Path(__file__).parent / "results"
WINDOW_US = 2_000_000
ROUNDS = 3
BATCHES = (10_000, 50_000, 100_000, 250_000)


def make_stream(n: int, *, tags: int = 20_000, rate: float = 20_000.0, seed: int = 1) -> ReadBatch:
    rng = np.random.default_rng(seed)
    epcs = np.array(
        [f"3034{a:020X}".encode() for a in rng.integers(0, 2**63, tags, dtype=np.int64)],
        dtype="S64",
    )
    t = np.cumsum(rng.exponential(1e6 / rate, n)).astype(np.int64) + 1_700_000_000_000_000
    # The field moves along the row of tags: ~400 tags around the walker's position.
    position = (np.arange(n) / n * tags).astype(np.int64)
    index = np.clip(position + rng.integers(-200, 200, n), 0, tags - 1)
    reads = empty_reads(n)
    reads["epc"] = epcs[index]
    reads["antenna"] = rng.integers(1, 5, n)
    reads["rssi"] = rng.normal(-58.0, 7.0, n).astype(np.float32)
    reads["first_seen_us"] = t
    reads["last_seen_us"] = t
    return reads


def dict_loop(
    epc: list[bytes],
    reader: list[int],
    antenna: list[int],
    first: list[int],
    last: list[int],
    rssi: list[float],
    window_us: int,
) -> int:
    """The baseline: one Python step per read; returns the number of sightings."""
    open_: dict[tuple[bytes, int, int], list[float]] = {}
    closed = 0
    for i in range(len(epc)):
        key = (epc[i], reader[i], antenna[i])
        s = open_.get(key)
        f = first[i]
        if s is not None and f - s[1] < window_us:
            if last[i] > s[1]:
                s[1] = last[i]
            s[2] += 1
            if rssi[i] > s[3]:
                s[3] = rssi[i]
            s[4] += rssi[i]
        else:
            if s is not None:
                closed += 1
            open_[key] = [f, last[i], 1, rssi[i], rssi[i]]
    return closed + len(open_)


def run_kernel(reads: ReadBatch, batch: int) -> tuple[float, int, int]:
    dedup = Deduplicator(WINDOW_US)
    sightings = 0
    started = time.perf_counter()
    for a in range(0, len(reads), batch):
        chunk = reads[a : a + batch]
        sightings += len(dedup.process(chunk).closed)
        # As the daemon does after each flush: close what the reader's clock has left.
        sightings += len(dedup.expire(int(chunk["last_seen_us"][-1])).closed)
    sightings += len(dedup.flush().closed)
    return time.perf_counter() - started, sightings, dedup.exact_sorts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=5_000_000)
    args = parser.parse_args()
    n = args.reads
    reads = make_stream(n)
    print(f"stream: {n:,} reads, 20,000 EPCs, 4 antennas, window {WINDOW_US / 1e6:.1f} s")

    # Baseline and kernel alternate, best of ROUNDS each, so a burst of load on a shared
    # machine cannot favour one side of the ratio.
    baseline_s = convert_s = float("inf")
    kernel_s: dict[int, float] = {}
    exact: dict[int, int] = {}
    baseline_sightings = 0
    for _ in range(ROUNDS):
        started = time.perf_counter()
        columns = (
            reads["epc"].tolist(),
            reads["reader"].tolist(),
            reads["antenna"].tolist(),
            reads["first_seen_us"].tolist(),
            reads["last_seen_us"].tolist(),
            reads["rssi"].tolist(),
        )
        convert_s = min(convert_s, time.perf_counter() - started)
        started = time.perf_counter()
        baseline_sightings = dict_loop(*columns, WINDOW_US)
        baseline_s = min(baseline_s, time.perf_counter() - started)
        del columns
        for batch in BATCHES:
            seconds, sightings, exact[batch] = run_kernel(reads, batch)
            if sightings != baseline_sightings:
                print(f"MISMATCH: kernel {sightings} sightings vs dict loop {baseline_sightings}")
                return 1
            kernel_s[batch] = min(kernel_s.get(batch, float("inf")), seconds)
    baseline_rate = n / baseline_s
    with_convert_rate = n / (baseline_s + convert_s)
    print(
        f"dict loop:                  {baseline_rate / 1e6:8.2f} M reads/s  "
        f"({baseline_sightings:,} sightings; input given as Python lists)"
    )
    print(
        f"dict loop incl. conversion: {with_convert_rate / 1e6:8.2f} M reads/s  "
        "(from the ReadBatch the daemon actually holds)"
    )
    runs = []
    for batch in BATCHES:
        rate = n / kernel_s[batch]
        runs.append(
            {
                "batch_reads": batch,
                "reads_per_s": round(rate),
                "ratio_vs_dict_loop": round(rate / baseline_rate, 1),
                "ratio_vs_dict_loop_incl_conversion": round(rate / with_convert_rate, 1),
                "exact_sort_batches": exact[batch],
            }
        )
        print(
            f"kernel, batches of {batch:>9,}: {rate / 1e6:8.2f} M reads/s "
            f"= {rate / baseline_rate:5.1f}x the dict loop, "
            f"{rate / with_convert_rate:5.1f}x incl. conversion"
        )
    best_run = max(runs, key=lambda r: r["reads_per_s"])
    result = {
        "reads": n,
        "rounds": ROUNDS,
        "epcs": 20_000,
        "window_s": WINDOW_US / 1e6,
        "sightings": baseline_sightings,
        "dict_loop_reads_per_s": round(baseline_rate),
        "dict_loop_incl_conversion_reads_per_s": round(with_convert_rate),
        "kernel": runs,
        "best_reads_per_s": best_run["reads_per_s"],
        "best_ratio_vs_dict_loop": best_run["ratio_vs_dict_loop"],
        "best_ratio_vs_dict_loop_incl_conversion": best_run["ratio_vs_dict_loop_incl_conversion"],
        "load_average": list(os.getloadavg()),
        "targets": {"reads_per_s": 10_000_000, "ratio": 20},
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dedup.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'dedup.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
