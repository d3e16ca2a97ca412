"""Does serving the live count page slow ingest down? Reads/s with 5 live pages vs none.

The ingest path is the daemon's, on one event loop: reads in batches → dedup kernel →
location attribution → live count, with the live view's web server on the same loop.
Each *phase* ingests a whole simulated walk-through (world model, two rooms) as fast as
it can, yielding to the loop after every batch as a reader task does. Phases alternate
between no clients and 5 clients following the session's server-sent events (in a
separate process, parsing every event as a page would), so both figures come from the
same run on the same machine, and load from anything else running lands on both.

Run: ``.venv/bin/python -m benchmarks.bench_liveview [--rounds 3] [--clients 5]``.
Writes ``benchmarks/results/liveview.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tagsweep.daemon.dedup import Deduplicator
from tagsweep.daemon.live import ExpectedAsset, LiveCount, LiveView
from tagsweep.daemon.location import LocationAttributor
from tagsweep.daemon.web import LiveWebServer
from tagsweep.domain import ReadBatch
from tagsweep.simulators.world import WalkThrough, build_world, walk_through

RESULTS = Path(__file__).parent / "results"
SESSION = "cs-bench"
WINDOW_US = 2_000_000


# -- the clients (a separate process) ---------------------------------------------------


async def _follow(url: str, stats: dict[str, int]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(url) as response:
        response.raise_for_status()
        stats["connected"] += 1
        buffer = b""
        async for chunk in response.content.iter_any():
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                for line in block.split(b"\n"):
                    if line.startswith(b"data: "):
                        json.loads(line[6:])  # what a page does with every event
                        stats["events"] += 1
                        stats["bytes"] += len(line)


async def _clients_main(url: str, n: int) -> None:
    """Follow ``url`` with ``n`` streams until stdin closes; print what they received."""
    stats = {"connected": 0, "events": 0, "bytes": 0}
    tasks = [asyncio.create_task(_follow(url, stats)) for _ in range(n)]
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(stats), flush=True)


# -- the gateway side -------------------------------------------------------------------


def make_walk(seed: int) -> WalkThrough:
    world = build_world(seed, rooms=2, rows_per_room=2, racks_per_row=5, assets_per_rack=100)
    return walk_through(world, seed)


def register_of(walk: WalkThrough) -> list[ExpectedAsset]:
    return [
        ExpectedAsset(
            a.asset_tag, a.serial, None, a.manufacturer, a.model, a.rack, "in_use", a.slot
        )
        for a in walk.world.assets
    ]


async def ingest(
    walk: WalkThrough, count: LiveCount, view: LiveView, batch: int, refresh_s: float
) -> tuple[float, float]:
    """Ingest the whole walk as the daemon does; return (reads per wall second, reads
    per CPU second of this process — the gateway's own cost, whatever else runs).

    Closed sightings go to the attributor with every batch; the live count takes the
    attribution of every EPC every ``refresh_s`` (the daemon's flush cadence), since
    attributing is O(EPCs so far) and doing it per batch would measure nothing but that.
    """
    dedup = Deduplicator(WINDOW_US)
    attributor = LocationAttributor()
    contexts = list(walk.contexts)
    reads: ReadBatch = walk.reads
    next_context = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    next_refresh = started
    for lo in range(0, reads.size, batch):
        chunk = reads[lo : lo + batch]
        t_end = int(chunk["last_seen_us"].max())
        while next_context < len(contexts) and contexts[next_context][0] <= int(
            chunk["first_seen_us"][0]
        ):
            t_us, path = contexts[next_context]
            attributor.set_context(t_us, path)
            count.set_location_context(path)
            next_context += 1
        result = dedup.process(chunk)
        expired = dedup.expire(t_end)
        closed = np.concatenate([result.closed, expired.closed])
        view.count_reads(walk.reader, chunk.size)
        if closed.size:
            attributor.add(closed)
        now = time.perf_counter()
        if now >= next_refresh:
            next_refresh = now + refresh_s
            count.observe_attributions(attributor.attribute())
        await asyncio.sleep(0)  # a reader task yields between reports
    final = dedup.flush()
    if final.closed.size:
        attributor.add(final.closed)
        count.observe_attributions(attributor.attribute())
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return reads.size / wall, reads.size / cpu


async def start_clients(url: str, n: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.bench_liveview",
        "--follow",
        url,
        "--clients",
        str(n),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def stop_clients(proc: asyncio.subprocess.Process) -> dict[str, int]:
    assert proc.stdin is not None
    proc.stdin.close()
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    stats: dict[str, int] = json.loads(out.decode().strip().splitlines()[-1])
    return stats


async def run(rounds: int, clients: int, batch: int, seed: int, refresh_s: float) -> dict[str, Any]:
    walk = make_walk(seed)
    register = register_of(walk)
    view = LiveView()
    view.set_source_state(walk.reader, "reader", "inventorying")
    rates: dict[str, list[float]] = {"none": [], "clients": []}
    cpu_rates: dict[str, list[float]] = {"none": [], "clients": []}
    received: list[dict[str, int]] = []
    final_totals: dict[str, int] = {}
    async with LiveWebServer(view, port=0) as server:
        url = f"{server.url}/api/sessions/{SESSION}/events"
        # warm-up: first-time imports and allocations are not part of either figure
        view.add(LiveCount(SESSION, list(walk.world.rooms), register))
        await ingest(walk, view.get(SESSION), view, batch, refresh_s)
        for r in range(rounds):
            order = ("none", "clients") if r % 2 == 0 else ("clients", "none")
            for phase in order:
                count = view.add(LiveCount(SESSION, list(walk.world.rooms), register))
                proc = None
                if phase == "clients":
                    proc = await start_clients(url, clients)
                    deadline = time.monotonic() + 30
                    while server.streams < clients:
                        if time.monotonic() > deadline:
                            raise RuntimeError("the SSE clients did not connect")
                        await asyncio.sleep(0.05)
                rate, cpu_rate = await ingest(walk, count, view, batch, refresh_s)
                rates[phase].append(rate)
                cpu_rates[phase].append(cpu_rate)
                if proc is not None:
                    await asyncio.sleep(2 * server.push_interval_s)  # let the last push out
                    received.append(await stop_clients(proc))
                final_totals = count.totals()
                print(
                    f"round {r + 1} {phase:>7}: {rate:>10,.0f} reads/s, "
                    f"{cpu_rate:>10,.0f} reads per CPU second",
                    flush=True,
                )
    none = statistics.median(rates["none"])
    with_clients = statistics.median(rates["clients"])
    cpu_none = statistics.median(cpu_rates["none"])
    cpu_with = statistics.median(cpu_rates["clients"])
    return {
        "benchmark": "liveview",
        "what": "ingest reads/s (dedup + attribution + live count) with live pages vs none",
        "reads_per_phase": int(walk.reads.size),
        "assets": len(register),
        "batch_reads": batch,
        "live_refresh_s": refresh_s,
        "rounds": rounds,
        "clients": clients,
        "push_interval_s": server.push_interval_s,
        "reads_per_s_no_clients": round(none),
        "reads_per_s_with_clients": round(with_clients),
        "ratio_with_over_without": round(with_clients / none, 3),
        "reads_per_cpu_s_no_clients": round(cpu_none),
        "reads_per_cpu_s_with_clients": round(cpu_with),
        "cpu_ratio_with_over_without": round(cpu_with / cpu_none, 3),
        "all_rates": {k: [round(v) for v in vs] for k, vs in rates.items()},
        "all_cpu_rates": {k: [round(v) for v in vs] for k, vs in cpu_rates.items()},
        "events_received_per_phase": [s["events"] for s in received],
        "bytes_received_per_phase": [s["bytes"] for s in received],
        "final_totals": final_totals,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1000, help="reads per ingest batch")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--refresh", type=float, default=0.5, help="seconds between live count refreshes"
    )
    parser.add_argument("--follow", help=argparse.SUPPRESS)  # internal: be the clients
    args = parser.parse_args()
    if args.follow:
        asyncio.run(_clients_main(args.follow, args.clients))
        return 0
    result = asyncio.run(run(args.rounds, args.clients, args.batch, args.seed, args.refresh))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "liveview.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"ingest {result['reads_per_s_no_clients']:,} reads/s with no page, "
        f"{result['reads_per_s_with_clients']:,} with {args.clients} live pages "
        f"(ratio {result['ratio_with_over_without']}); per CPU second of the gateway "
        f"{result['reads_per_cpu_s_no_clients']:,} vs {result['reads_per_cpu_s_with_clients']:,} "
        f"(ratio {result['cpu_ratio_with_over_without']}); "
        f"pages received {result['events_received_per_phase']} events per phase"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
