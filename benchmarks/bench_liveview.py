"""Does serving the live count page slow ingest down? Reads/s with 5 live pages vs none.

Two measurements, each alternating phases with no page and with 5 pages following the
session's server-sent events (in a separate process, parsing every event as a page
would), so both figures come from the same run on the same machine and load from
anything else running lands on both:

* **gateway** — the real daemon (:class:`~tagsweep.daemon.supervisor.Gateway` with the
  live view attached, web page served): an in-process ``sim://`` reader offers far more
  reads than the gateway can take, so reads/s is its ingest capacity (driver, dedup,
  store writer, event feed, live count). The location context moves every 0.25 s, so
  every push carries a new snapshot: the pages' worst case.
* **pipeline** — the ingest path alone on one loop with the web server: a simulated
  walk-through (world model, two rooms) through the dedup kernel, location attribution
  and the live count, as fast as it goes, yielding after every batch.

Reads per CPU second of this process is reported beside reads/s: it is the gateway's
own cost, whatever else the machine is doing.

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

from tagsweep.daemon.dedup.deduplicator import Deduplicator
from tagsweep.daemon.liveview.count import LiveCount
from tagsweep.daemon.liveview.register import ExpectedAsset
from tagsweep.daemon.liveview.server import LiveWebServer
from tagsweep.daemon.liveview.view import LiveView
from tagsweep.daemon.location import LocationAttributor
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
                    f"pipeline round {r + 1} {phase:>7}: {rate:>10,.0f} reads/s, "
                    f"{cpu_rate:>10,.0f} reads per CPU second",
                    flush=True,
                )
    return summarize(rates, cpu_rates, received) | {
        "what": "dedup + attribution + live count on one loop with the web server",
        "reads_per_phase": int(walk.reads.size),
        "assets": len(register),
        "batch_reads": batch,
        "live_refresh_s": refresh_s,
        "push_interval_s": server.push_interval_s,
        "final_totals": final_totals,
    }


# -- the whole gateway ------------------------------------------------------------------


async def gateway_run(rounds: int, clients: int, phase_s: float) -> dict[str, Any]:
    """Ingest capacity of the real gateway, with 0 and ``clients`` live pages."""
    import socket
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tagsweep.config import parse_config
    from tagsweep.daemon.liveview.feed import attach_live_view
    from tagsweep.daemon.supervisor import Gateway
    from tagsweep.drivers import open_driver
    from tagsweep.simulators.sim_driver import SimDriver

    url = "sim://random?tags=2000&rate=20000000&interval=0.01&seed=5"
    sim = open_driver(url, name="probe", reader_id=0)
    assert isinstance(sim, SimDriver)  # the EPCs it will read make the register
    epcs = [e.decode() for e in sim.epcs]
    racks = [f"DC1/Room 1/Rack A{i:02d}" for i in range(1, 21)]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="ts-bench-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        register = tmp / "register.parquet"
        pq.write_table(
            pa.table(
                {
                    "asset_tag": [f"AST-{i:06d}" for i in range(len(epcs))],
                    "epc": epcs,
                    "model": ["PowerEdge R650"] * len(epcs),
                    "location": [racks[i % len(racks)] for i in range(len(epcs))],
                }
            ),
            register,
        )
        config = parse_config(
            {
                "gateway": {"id": "gw-bench", "site": "DC1"},
                "store": {"path": str(tmp / "gw.duckdb"), "session_dir": str(tmp / "sessions")},
                "dedup": {"window_s": 2.0, "flush_interval_s": 0.5},
                "readers": [{"name": "handheld", "url": url}],
                "metrics": {"enabled": False},
                "control": {"socket": str(tmp / "control.sock")},
                "web": {"enabled": True, "listen": f"127.0.0.1:{port}"},
            }
        )
        gateway = Gateway(config, control_socket=False)
        feed = attach_live_view(gateway)
        rates: dict[str, list[float]] = {"none": [], "clients": []}
        cpu_rates: dict[str, list[float]] = {"none": [], "clients": []}
        received: list[dict[str, int]] = []

        async def walk_racks() -> None:
            i = 0
            while True:
                await gateway.set_location(racks[i % len(racks)], source="bench")
                i += 1
                await asyncio.sleep(0.25)

        async with gateway:
            session = await gateway.start_session(
                operator="bench", scope=["DC1/Room 1"], expected=str(register)
            )
            mover = asyncio.create_task(walk_racks())
            assert feed.server is not None
            events_url = f"{feed.server.url}/api/sessions/{session.session_id}/events"
            await asyncio.sleep(phase_s)  # warm-up
            try:
                for r in range(rounds):
                    order = ("none", "clients") if r % 2 == 0 else ("clients", "none")
                    for phase in order:
                        proc = None
                        if phase == "clients":
                            proc = await start_clients(events_url, clients)
                            deadline = time.monotonic() + 30
                            while feed.server.streams < clients:
                                if time.monotonic() > deadline:
                                    raise RuntimeError("the SSE clients did not connect")
                                await asyncio.sleep(0.05)
                        reads0, cpu0, t0 = (
                            gateway.counters.reads,
                            time.process_time(),
                            time.perf_counter(),
                        )
                        await asyncio.sleep(phase_s)
                        reads = gateway.counters.reads - reads0
                        wall = time.perf_counter() - t0
                        cpu = time.process_time() - cpu0
                        rates[phase].append(reads / wall)
                        cpu_rates[phase].append(reads / cpu)
                        if proc is not None:
                            received.append(await stop_clients(proc))
                        print(
                            f"gateway round {r + 1} {phase:>7}: {reads / wall:>10,.0f} reads/s, "
                            f"{reads / cpu:>10,.0f} reads per CPU second",
                            flush=True,
                        )
            finally:
                mover.cancel()
                await asyncio.gather(mover, return_exceptions=True)
            totals = feed.progress()["totals"]
            await gateway.stop_session()
    return summarize(rates, cpu_rates, received) | {
        "offered": url,
        "phase_s": phase_s,
        "assets": len(epcs),
        "final_totals": totals,
        "context_moves_per_s": 4,
    }


def summarize(
    rates: dict[str, list[float]],
    cpu_rates: dict[str, list[float]],
    received: list[dict[str, int]],
) -> dict[str, Any]:
    none = statistics.median(rates["none"])
    with_clients = statistics.median(rates["clients"])
    cpu_none = statistics.median(cpu_rates["none"])
    cpu_with = statistics.median(cpu_rates["clients"])
    # each round measured both phases back to back: their ratio cancels slow drifts in
    # the machine's load better than the ratio of medians does
    paired = [c / n for c, n in zip(rates["clients"], rates["none"], strict=True)]
    paired_cpu = [c / n for c, n in zip(cpu_rates["clients"], cpu_rates["none"], strict=True)]
    return {
        "paired_ratio_median": round(statistics.median(paired), 3),
        "paired_cpu_ratio_median": round(statistics.median(paired_cpu), 3),
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
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--phase", type=float, default=3.0, help="seconds per gateway phase")
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
    from tagsweep.logs import configure_logging

    configure_logging(level="warning")  # the gateway's info log would be the bottleneck
    gateway = asyncio.run(gateway_run(args.rounds, args.clients, args.phase))
    pipeline = asyncio.run(run(args.rounds, args.clients, args.batch, args.seed, args.refresh))
    result = {
        "benchmark": "liveview",
        "what": "ingest reads/s with live pages following the count vs none, same run",
        "clients": args.clients,
        "rounds": args.rounds,
        "gateway": gateway,
        "pipeline": pipeline,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "liveview.json").write_text(json.dumps(result, indent=2) + "\n")
    for name in ("gateway", "pipeline"):
        r = result[name]
        print(
            f"{name}: {r['reads_per_s_no_clients']:,} reads/s with no page, "
            f"{r['reads_per_s_with_clients']:,} with {args.clients} live pages "
            f"(ratio {r['ratio_with_over_without']}); per CPU second "
            f"{r['reads_per_cpu_s_no_clients']:,} vs {r['reads_per_cpu_s_with_clients']:,} "
            f"(ratio {r['cpu_ratio_with_over_without']}); paired per round "
            f"{r['paired_ratio_median']} (CPU {r['paired_cpu_ratio_median']}); pages received "
            f"{r['events_received_per_phase']} events per phase"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
