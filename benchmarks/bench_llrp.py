"""LLRP read throughput: simulated reader → TCP → LlrpDriver → numpy batches.

Baseline, measured in the same run: sllurp's bare decode of the same RO_ACCESS_REPORTs
(``LLRPMessage(msgbytes=...)``, dicts per tag, no socket, no numpy). The driver runs in
this process pinned to one core; the simulated reader runs in a child process (it is
the reader, not part of the gateway) on another core when there is one.

    .venv/bin/python -m benchmarks.bench_llrp [--reads 400000] [--report-n 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
from sllurp.llrp import LLRPMessage

from tagsweep.domain import ReadBatch
from tagsweep.drivers import Backoff
from tagsweep.drivers.llrp import LlrpDriver
from tagsweep.drivers.llrp.frames import HEADER_SIZE
from tagsweep.drivers.llrp.reports import ReportDecoder
from tagsweep.logs import configure_logging
from tagsweep.simulators.llrp import LlrpSimulator
from tagsweep.simulators.llrp.encoder import ro_access_report
from tagsweep.simulators.llrp.sources import random_epcs, random_reads

RESULTS = Path(__file__).parent / "results" / "llrp.json"


def corpus(batches: int, size: int, seed: int = 1) -> list[ReadBatch]:
    rng = np.random.default_rng(seed)
    epcs = random_epcs(5000, seed)
    return [random_reads(epcs, size, rng, (1, 2, 3, 4)) for _ in range(batches)]


def bare_rate(frames: list[bytes], reads_per_frame: int, decode: str, min_s: float = 1.5) -> float:
    """Reads/s of decoding ``frames`` repeatedly for at least ``min_s``."""
    decoder = ReportDecoder()
    done, started = 0, time.perf_counter()
    while True:
        for frame in frames:
            if decode == "sllurp":
                LLRPMessage(msgbytes=frame)
            else:
                decoder.decode(frame[HEADER_SIZE:])
            done += reads_per_frame
        elapsed = time.perf_counter() - started
        if elapsed >= min_s:
            return done / elapsed


# -- the reader process --------------------------------------------------------------------
def serve(total: int, report_n: int) -> None:
    """Child process: an LLRP reader pushing ``total`` reads per connection, flat out."""
    configure_logging(json=True, level="warning")
    # the tag source hands over 5000 reads at a time; the reader cuts them into reports
    # of report_n, as a reader's buffer would
    batches = corpus(8, max(report_n, 5000))

    async def source() -> AsyncIterator[ReadBatch]:
        sent = 0
        while sent < total:
            for batch in batches:
                yield batch
                sent += len(batch)
                if sent >= total:
                    return

    async def main() -> None:
        async with LlrpSimulator(port=0, tag_source=source) as sim:
            print(sim.port, flush=True)
            await sim.serve_forever()

    asyncio.run(main())


def pin(cpu_index: int) -> str:
    cpus = sorted(os.sched_getaffinity(0))
    cpu = cpus[cpu_index % len(cpus)]
    os.sched_setaffinity(0, {cpu})
    return f"cpu{cpu} of {len(cpus)}"


async def end_to_end(port: int, total: int, report_n: int, decoder: str) -> tuple[float, float]:
    """Reads/s from the first batch to the ``total``-th read, through the driver, and
    reads per second of this process's CPU time (what one dedicated core would do, which
    the wall-clock figure understates when the reader process or other load competes)."""
    url = f"llrp://127.0.0.1:{port}?report_n={report_n}&keepalive_s=5&decoder={decoder}"
    driver = LlrpDriver(url, backoff=Backoff(0.05, 0.5))
    received = 0
    started = 0.0
    async with asyncio.timeout(120):
        async for batch in driver:
            assert isinstance(batch, np.ndarray)
            if not started:
                started = time.perf_counter()
                cpu_started = time.process_time()
                first = len(batch)
            received += len(batch)
            if received >= total:
                break
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    await driver.close()
    return (received - first) / elapsed, (received - first) / cpu


def measure(report_n: int, reads: int) -> dict[str, float]:
    """All four figures for one report size (the reader child serves this size)."""
    frames = [ro_access_report(i + 1, b) for i, b in enumerate(corpus(20, report_n))]
    sllurp_bare = bare_rate(frames, report_n, "sllurp")
    fast_bare = bare_rate(frames, report_n, "fast")
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_llrp", "--serve", f"--reads={reads}",
         f"--report-n={report_n}"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        driver_fast, fast_cpu = asyncio.run(end_to_end(port, reads, report_n, "fast"))
        sllurp_total = min(reads, 100_000)  # its decode is the slow part
        driver_sllurp, _ = asyncio.run(end_to_end(port, sllurp_total, report_n, "sllurp"))
    finally:
        child.terminate()
        child.wait()
    return {
        "baseline_sllurp_bare_decode": round(sllurp_bare),
        "fast_decoder_bare": round(fast_bare),
        "end_to_end_fast": round(driver_fast),
        "end_to_end_fast_per_cpu_second": round(fast_cpu),
        "end_to_end_sllurp_decode": round(driver_sllurp),
        "ratio_end_to_end_vs_sllurp_bare": round(driver_fast / sllurp_bare, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=400_000)
    parser.add_argument(
        "--report-n", type=int, nargs="+", default=[500, 50], help="reads per report"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        pin(1)
        serve(args.reads, args.report_n[0])
        return 0
    configure_logging(json=True, level="warning")
    where = pin(0)
    results: dict[str, dict[str, float]] = {}
    for report_n in args.report_n:
        r = results[f"{report_n}_reads_per_report"] = measure(report_n, args.reads)
        print(f"driver on {where}, {report_n} reads per RO_ACCESS_REPORT")
        bare = r["baseline_sllurp_bare_decode"]
        print(f"  baseline  sllurp bare decode          {bare:>11,} reads/s")
        print(f"            fast decoder bare           {r['fast_decoder_bare']:>11,} reads/s")
        print(f"  end2end   sim→TCP→driver (fast)       {r['end_to_end_fast']:>11,} reads/s")
        per_cpu = r["end_to_end_fast_per_cpu_second"]
        print(f"            same, per driver CPU second {per_cpu:>11,} reads/s")
        print(
            f"            sim→TCP→driver (sllurp)     {r['end_to_end_sllurp_decode']:>11,} reads/s"
        )
        print(f"  ratio     end-to-end / sllurp bare = {r['ratio_end_to_end_vs_sllurp_bare']:.2f}x"
              " (target: ≥ 0.80x and ≥ 100,000 reads/s)")  # fmt: skip
    primary = results[f"{args.report_n[0]}_reads_per_report"]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "unit": "reads/s",
        "reads": args.reads,
        "driver_cpu": where,
        "by_report_size": results,
        "target_met": primary["end_to_end_fast"] >= 100_000
        and primary["ratio_end_to_end_vs_sllurp_bare"] >= 0.8,
    }
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
