"""World model → LLRP and scanner simulators over real sockets → drivers → gateway → Parquet.

A small data-centre room is counted by an operator with a handheld (LLRP over TCP) and a
barcode scanner (``socket://``): label scans set the location context, untagged assets
are scanned by barcode. The closed session file is compared with the world's truth.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pyarrow.parquet as pq

from tagsweep.daemon.supervisor import Gateway
from tagsweep.simulators.llrp import LlrpSimulator
from tagsweep.simulators.scanner import ScannerSimulator
from tagsweep.simulators.world import ReplayClock, build_world, scan_lines, tag_source, walk_through

from .harness import EventList, make_config, wait_until

SPEED = 25.0


async def test_walk_through_over_llrp_and_scanner_sockets(tmp_path: Path, short_dir: Path) -> None:
    world = build_world(
        seed=3, rooms=1, rows_per_room=2, racks_per_row=2, assets_per_rack=12,
        untagged_fraction=0.1, dead_tag_fraction=0.0,
    )  # fmt: skip
    walk = walk_through(world, seed=3)
    assert walk.cross_read_share() > 0.05  # the handheld really reads neighbouring racks
    clock = ReplayClock(walk.start_us, speed=SPEED, wait_for_open=True)
    async with (
        LlrpSimulator(port=0, tag_source=tag_source(walk.reads, clock, batch_s=0.05)) as reader,
        ScannerSimulator(mode="tcp", script=scan_lines(walk.scans, clock)) as scanner,
    ):
        cfg = make_config(
            tmp_path,
            short_dir,
            readers=[
                {
                    "name": "handheld",
                    "url": f"llrp://127.0.0.1:{reader.port}?antennas=1",
                    "role": "handheld",
                    "keepalive_s": 1.0,
                }
            ],
            scanners=[{"name": "scanner", "url": scanner.url, "asset_tag_pattern": r"^AST-\d+$"}],
            window_s=2.0 / SPEED,
        )
        sink = EventList()
        async with Gateway(cfg, sinks=[sink], control_socket=False) as gw:
            session = await gw.start_session(operator="jdoe", site="DC1")
            clock.open()  # the walk begins once the session is open
            end_wall_s = int(clock.to_wall(walk.end_us)) / 1e6
            await asyncio.sleep(max(0.0, end_wall_s - time.time()))
            await wait_until(
                lambda: gw.counters.reads >= len(walk.reads) * 0.95, what="the walk's reads"
            )
            await scanner.finished()
            await wait_until(lambda: gw.counters.scans >= len(walk.scans), what="every scan line")
            closed = await gw.stop_session()
            devices = {d["name"]: d for d in gw.status()["devices"]}

    assert devices["handheld"]["state"] in {"inventorying", "stopped"}
    rows = pq.read_table(closed.parquet).to_pylist()
    assert {r["session_id"] for r in rows} == {session.session_id}
    rfid = {r["epc"]: r for r in rows if r["method"] == "rfid"}
    # Coverage: every EPC the handheld read is in the session file, at one location.
    assert set(rfid) == walk.read_epcs
    correct = sum(rfid[epc]["location"] == walk.truth[epc] for epc in rfid)
    assert correct / len(rfid) >= 0.95, f"{correct}/{len(rfid)} attributed to the right rack"
    # Barcode observations: each untagged asset at the rack where it was scanned.
    expected = {s.line: s.location for s in walk.scans if s.kind == "asset"}
    barcode = {r["asset_tag"]: r["location"] for r in rows if r["method"] == "barcode"}
    assert expected
    assert barcode == expected
    contexts = [e.payload["location"] for e in sink.events if e.kind.value == "location_context"]
    assert contexts == [s.location for s in walk.scans if s.kind == "location"]
