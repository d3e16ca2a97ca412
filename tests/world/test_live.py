"""The world model driving the real LLRP simulator over TCP, paced with its scan script.

World → ``Replay`` (shared clock, 30x real time) → LLRP simulator → LLRP driver, while
the scan script is consumed and stamped on receipt as the daemon stamps scans. The
location timeline built from those receipt times, and the reads as the driver delivered
them, must still attribute the tags to their racks.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from tagsweep.daemon.location import LocationTimeline, attribute, evidence_from_reads
from tagsweep.domain import READ_DTYPE, ReadBatch
from tagsweep.drivers import Backoff
from tagsweep.drivers.llrp import LlrpDriver
from tagsweep.simulators.llrp import LlrpSimulator
from tagsweep.simulators.scanner import ScannerSimulator
from tagsweep.simulators.world import score_locations, serpentine_route, walk_through
from tests.world.conftest import small_world


async def test_walk_through_over_llrp_attributes_with_live_scan_times() -> None:
    world = small_world()
    route = serpentine_route(world)[:4]
    walk = walk_through(world, 4, route=route)
    replay = walk.replay(speed=30.0, batch_s=0.05)
    received: list[ReadBatch] = []
    scans: list[tuple[int, str]] = []
    async with LlrpSimulator(port=0, tag_source=replay.tag_source) as sim:
        # a keepalive period a loaded machine cannot miss three times in a row: a watchdog
        # reconnect would start a second connection, and the test counts the first one's
        url = f"llrp://127.0.0.1:{sim.port}?antennas=1&keepalive_s=5"
        driver = LlrpDriver(url, name="handheld", reader_id=0, backoff=Backoff(0.05, 0.2))

        async def read() -> None:
            async for batch in driver:
                assert isinstance(batch, np.ndarray)
                received.append(batch)

        async def scan() -> None:
            scans.extend([(time.time_ns() // 1000, line) async for line in replay.scan_script()])

        reader = asyncio.create_task(read(), name="read")
        # The reader's first ROSpec anchors the shared clock; the scanner follows it.
        async with asyncio.timeout(10):
            while replay.clock.anchor_wall_us is None:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(scan(), timeout=20)
        async with asyncio.timeout(20):
            # the walk is over, and the reader holds nothing back: the last reads short
            # of a report's N went out on the driver's GET_REPORT
            while not (sim.connections and sim.connections[0].source_done):
                await asyncio.sleep(0.05)
            log = sim.connections[0]
            while log.read_count < log.observed:
                await asyncio.sleep(0.05)
            sent = log.sent_reads().size
            while sum(b.size for b in received) < sent:
                await asyncio.sleep(0.05)
        await driver.close()
        await asyncio.wait_for(reader, 5)
    got = np.concatenate(received)
    assert got.dtype == READ_DTYPE
    assert got.size == walk.reads.size  # the first connection anchored the clock: nothing lost
    assert [line for _, line in scans] == [s.line for s in walk.scans]
    # Read timestamps are on the wall clock, like the scan receipt times.
    assert abs(int(got["last_seen_us"].min()) - scans[0][0]) < 5_000_000
    timeline = LocationTimeline(
        (t, line.removeprefix("LOC:")) for t, line in scans if line.startswith("LOC:")
    )
    found = attribute(evidence_from_reads(timeline, got), timeline.locations)
    # Only racks on the route can be told apart: tags of racks never visited (across the
    # aisle, further down the row) are cross-read but have no location context of their own.
    visited = {a.epc: a.location for a in found if walk.truth[a.epc] in route}
    accuracy, n = score_locations(walk.truth, visited)
    assert n >= 0.98 * sum(rack in route for rack in walk.truth.values())
    # At 30x, 30 ms of event-loop lag on a scan is ~1 s of world time: say so if it fails.
    lateness_ms = [
        (t - int(replay.clock.to_wall(sc.t_us))) // 1000
        for (t, _), sc in zip(scans, walk.scans, strict=True)
    ]
    assert accuracy >= 0.99, f"scan receipt lateness (ms): {lateness_ms}"


async def test_scan_script_through_the_scanner_simulator_keeps_its_pacing() -> None:
    world = small_world()
    walk = walk_through(world, 5, route=serpentine_route(world)[:3])
    replay = walk.replay(speed=40.0)
    expected = [s.line for s in walk.scans]
    arrivals: list[tuple[int, str]] = []
    async with ScannerSimulator(mode="tcp", script=replay.scan_script(), terminator="CR") as sim:
        reader, writer = await asyncio.open_connection(sim.host, sim.port)
        try:
            async with asyncio.timeout(15):
                while len(arrivals) < len(expected):
                    line = await reader.readuntil(b"\r")
                    arrivals.append((time.time_ns() // 1000, line.decode().strip()))
        finally:
            writer.close()
            await writer.wait_closed()
    assert [line for _, line in arrivals] == expected
    # Each scan arrives at its world time on the shared clock (the first one waits for
    # the client to connect, so it is exempt).
    due = [int(replay.clock.to_wall(s.t_us)) for s in walk.scans]
    late_s = [(t - d) / 1e6 for (t, _), d in zip(arrivals, due, strict=True)][1:]
    assert all(-0.01 < late < 0.1 for late in late_s), late_s
