"""Reader supervision and the portal path: a failing reader never stops the others;
a door portal over LLRP yields passes with the right direction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import duckdb

from tagsweep.daemon.supervisor import Gateway
from tagsweep.domain import empty_reads, now_us
from tagsweep.drivers import Backoff, Driver, DriverEvent
from tagsweep.simulators.llrp import LlrpSimulator
from tagsweep.simulators.world import ReplayClock, portal_traffic, score_passes, tag_source

from .harness import EventList, make_config, wait_until


class CrashingDriver(Driver):
    """A device whose decoder has a bug: each of the first ``crashes`` connections
    delivers one batch, then raises an unexpected exception."""

    schemes: ClassVar[tuple[str, ...]] = ("crash",)

    def __init__(self, url: str, crashes: int, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.crashes = crashes
        self.connections = 0

    async def _connect(self) -> None:
        self.connections += 1

    async def _disconnect(self) -> None:
        return None

    async def _receive(self) -> AsyncIterator[DriverEvent]:
        while not self.closing:
            batch = empty_reads(1)
            batch["epc"] = b"E20000000000000000000BAD"
            batch["first_seen_us"] = batch["last_seen_us"] = now_us()
            self.counters.reads += 1
            yield batch
            if self.connections <= self.crashes:
                raise ZeroDivisionError("vendor extension decoder bug")
            await asyncio.sleep(0.01)


async def test_failing_readers_are_restarted_or_retried_without_stopping_others(
    tmp_path: Path, short_dir: Path
) -> None:
    cfg = make_config(
        tmp_path,
        short_dir,
        readers=[
            {"name": "good", "url": "sim://g?tags=10&rate=1000&seed=5", "role": "handheld"},
            # nothing listens on port 9: the LLRP driver backs off and retries
            {"name": "unplugged", "url": "llrp://127.0.0.1:9?antennas=1", "role": "handheld"},
            {"name": "buggy", "url": "sim://placeholder", "role": "handheld"},
        ],
    )
    sink = EventList()
    gw = Gateway(cfg, sinks=[sink], restart_backoff=Backoff(initial_s=0.05, cap_s=0.1))
    buggy = gw.devices[2]
    buggy.driver = CrashingDriver("crash://x", crashes=2, name="buggy", reader_id=buggy.index)
    async with gw:
        await wait_until(lambda: buggy.restarts == 2, what="two restarts of the buggy reader")
        await wait_until(lambda: gw.counters.by_reader.get("buggy", 0) > 10, what="buggy recovers")
        unplugged = gw.devices[1].driver
        await wait_until(lambda: unplugged.counters.reconnects >= 1, what="LLRP retries")
        before = gw.counters.by_reader["good"]
        await wait_until(lambda: gw.counters.by_reader["good"] > before + 100, what="good reads")
        status = {d["name"]: d for d in gw.status()["devices"]}
    assert status["good"]["state"] == "inventorying"
    assert status["unplugged"]["state"] in {"down", "connecting"}
    assert status["unplugged"]["last_error"]
    assert status["buggy"]["restarts"] == 2
    states = [
        (e.payload["reader"], e.payload["state"])
        for e in sink.events
        if e.kind.value == "reader_state"
    ]
    assert ("unplugged", "down") in states
    with duckdb.connect(str(cfg.store.path), read_only=True) as con:
        rows = con.execute("SELECT DISTINCT reader, state FROM reader_status").fetchall()
    assert ("unplugged", "down") in rows
    assert ("good", "inventorying") in rows


async def test_door_portal_over_llrp_gives_directions(tmp_path: Path, short_dir: Path) -> None:
    speed = 16.0
    traffic = portal_traffic(seed=2, trips=10, items=24, mean_gap_s=5.0)
    clock = ReplayClock(traffic.start_us, speed)
    clock.start(now_us() + 500_000)
    async with LlrpSimulator(port=0, tag_source=tag_source(traffic.reads, clock)) as reader:
        cfg = make_config(
            tmp_path,
            short_dir,
            readers=[
                {
                    "name": "door",
                    "url": f"llrp://127.0.0.1:{reader.port}?antennas=1,2",
                    "role": "portal",
                    "portal": {"inside_antenna": 1, "outside_antenna": 2, "zone": traffic.zone},
                }
            ],
            window_s=2.0 / speed,
        )
        sink = EventList()
        async with Gateway(cfg, sinks=[sink], control_socket=False) as gw:
            end_s = int(clock.to_wall(traffic.end_us)) / 1e6
            await asyncio.sleep(max(0.0, end_s - now_us() / 1e6))
            await wait_until(
                lambda: gw.counters.reads >= traffic.reads.size * 0.95, what="portal reads"
            )
        # leaving the context flushed every track: all passes are decided
    detected = [
        (e.payload["epc"], clock.to_world(e.ts_us), e.payload["direction"])
        for e in sink.events
        if e.kind.value == "portal_pass"
    ]
    score = score_passes(traffic.passes, detected, tolerance_s=3.0 * speed)
    assert score.true_passes >= 15
    assert score.direction_accuracy >= 0.85, score
    assert score.wrong_direction <= 1, score
    kinds = {e.kind.value for e in sink.events}
    assert {"arrive", "depart", "portal_pass"} <= kinds
