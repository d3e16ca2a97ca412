"""The live count survives a daemon restart mid-session.

The gateway resumes an open count session after a restart; the live view comes back
with it: the session's expected register is kept in the store, reloaded on start, and
the session's committed evidence is replayed, so progress after the restart is what it
was before. A register that is gone by then only costs the live view (a warning); the
count itself goes on.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tagsweep.config import parse_config
from tagsweep.daemon.liveview.feed import LiveFeed, attach_live_view
from tagsweep.daemon.sessions import SessionError
from tagsweep.daemon.supervisor import Gateway
from tagsweep.domain import ReadBatch, empty_reads, now_us
from tagsweep.simulators.llrp import LlrpSimulator
from tagsweep.simulators.scanner import ScannerSimulator
from tests.liveview.harness import config_data
from tests.liveview.walk import Scenario, make_scenario


def _gateway(tmp_path: Path, short_dir: Path, scanner_url: str) -> tuple[Gateway, LiveFeed]:
    data = config_data(
        tmp_path,
        short_dir,
        scanners=[{"name": "scanner", "url": scanner_url, "asset_tag_pattern": r"^AST-\d+$"}],
    )
    gw = Gateway(parse_config(data))
    return gw, attach_live_view(gw)


def _once(opened: asyncio.Event, lines: list[str]) -> AsyncIterator[str]:
    """A scan script the operator starts once the session is open (scans made while
    no session is open belong to none, so a script racing the start would flake)."""

    async def script() -> AsyncIterator[str]:
        await opened.wait()
        for line in lines:
            yield line

    return script()


def _scanned(sc: Scenario, n: int) -> list[str]:
    """Asset tags of ``n`` registered assets in the world (what the operator scans)."""
    return [a.asset_tag for a in sc.world.assets if a.asset_tag != sc.unregistered_tag][:n]


async def _wait_seen(feed: LiveFeed, seen: int, unexpected: int = 0) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        totals: dict[str, Any] = feed.progress()["totals"]
        done = totals["seen"] >= seen and totals["unexpected"] >= unexpected
        if done or time.monotonic() > deadline:
            return totals
        await asyncio.sleep(0.05)


async def test_progress_after_restart_equals_progress_before(
    tmp_path: Path, short_dir: Path
) -> None:
    sc = make_scenario(tmp_path)
    tags = _scanned(sc, 6)
    opened = asyncio.Event()
    script = _once(opened, [*tags[:4], sc.unregistered_tag])
    async with ScannerSimulator(mode="tcp", script=script) as scanner:
        gw, feed = _gateway(tmp_path, short_dir, scanner.url)
        async with gw:
            session = await gw.start_session(
                operator="jdoe", scope=[sc.scope], expected=str(sc.register)
            )
            opened.set()
            await scanner.finished()
            before = await _wait_seen(feed, 4, unexpected=1)
            await gw.sync()
            assert before["seen"] == 4
            assert before["not_yet_seen"] == before["expected"] - 4
            unexpected_before = {u["asset_tag"] for u in feed.progress()["unexpected"]}
            assert sc.unregistered_tag in unexpected_before
        # the daemon is gone; the session stays open in the store

    resumed_open = asyncio.Event()
    async with ScannerSimulator(mode="tcp", script=_once(resumed_open, tags[4:])) as scanner:
        gw, feed = _gateway(tmp_path, short_dir, scanner.url)
        with capture_logs() as logs:
            async with gw:
                resumed_open.set()  # the session is back: the operator scans on
                assert gw.session is not None
                assert gw.session.session_id == session.session_id
                after = feed.progress()
                assert after["session_id"] == session.session_id
                assert after["totals"] == before
                assert {u["asset_tag"] for u in after["unexpected"]} == unexpected_before
                # and the count goes on from there
                await scanner.finished()
                resumed = await _wait_seen(feed, 6)
                assert resumed["seen"] == 6
                assert resumed["not_yet_seen"] == before["expected"] - 6
                closed = await gw.stop_session()
        restored = [e for e in logs if e["event"] == "live_count_restored"]
        assert restored
        assert restored[0]["seen"] == 4
    assert closed.row_count == 7  # 6 registered assets and the unregistered one


async def test_missing_register_on_restart_only_warns(tmp_path: Path, short_dir: Path) -> None:
    sc = make_scenario(tmp_path)
    register = tmp_path / "moved" / sc.register.name
    register.parent.mkdir()
    shutil.copy(sc.register, register)
    tags = _scanned(sc, 4)
    opened = asyncio.Event()
    async with ScannerSimulator(mode="tcp", script=_once(opened, tags[:2])) as scanner:
        gw, feed = _gateway(tmp_path, short_dir, scanner.url)
        async with gw:
            session = await gw.start_session(
                operator="jdoe", scope=[sc.scope], expected=str(register)
            )
            opened.set()
            await scanner.finished()
            assert (await _wait_seen(feed, 2))["seen"] == 2
            await gw.sync()

    shutil.rmtree(register.parent)  # the register went away while the daemon was down
    resumed_open = asyncio.Event()
    async with ScannerSimulator(mode="tcp", script=_once(resumed_open, tags[2:])) as scanner:
        gw, feed = _gateway(tmp_path, short_dir, scanner.url)
        with capture_logs() as logs:
            async with gw:
                resumed_open.set()
                assert gw.session is not None
                assert gw.session.session_id == session.session_id
                with pytest.raises(SessionError, match="no open count session"):
                    feed.progress()
                await scanner.finished()
                deadline = time.monotonic() + 15
                while gw.status()["counters"]["scans"] < 2 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                closed = await gw.stop_session()
    warnings = [e for e in logs if e["event"] == "live_count_not_restored"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["session"] == session.session_id
    assert "no such register file" in warnings[0]["error"]
    assert closed.row_count == 4  # counting went on without the live view


def _reads_of(epcs: list[str], times: int = 3) -> Callable[[], AsyncIterator[ReadBatch]]:
    """A handheld that reads ``epcs`` a few times, now, then nothing more."""

    async def source() -> AsyncIterator[ReadBatch]:
        for _ in range(times):
            batch = empty_reads(len(epcs))
            batch["epc"] = [e.encode() for e in epcs]
            batch["antenna"] = 1
            batch["rssi"] = -50.0
            batch["first_seen_us"] = now_us()
            batch["last_seen_us"] = batch["first_seen_us"]
            batch["seen_count"] = 1
            yield batch
            await asyncio.sleep(0.05)

    return source


def _rfid_gateway(
    tmp_path: Path, short_dir: Path, port: int, window_s: float = 0.3
) -> tuple[Gateway, LiveFeed]:
    reader = {
        "name": "handheld",
        "url": f"llrp://127.0.0.1:{port}?antennas=1",
        "role": "handheld",
        "keepalive_s": 1.0,
    }
    data = config_data(tmp_path, short_dir, readers=[reader], window_s=window_s)
    gw = Gateway(parse_config(data))
    return gw, attach_live_view(gw)


async def test_rfid_progress_after_restart_equals_progress_before(
    tmp_path: Path, short_dir: Path
) -> None:
    sc = make_scenario(tmp_path)
    epcs = [a.epc for a in sc.world.assets if a.epc and a.asset_tag != sc.unregistered_tag][:5]
    async with LlrpSimulator(port=0, tag_source=_reads_of([str(e) for e in epcs])) as reader:
        gw, feed = _rfid_gateway(tmp_path, short_dir, reader.port)
        async with gw:
            await gw.start_session(operator="jdoe", scope=[sc.scope], expected=str(sc.register))
            await _wait_seen(feed, 5)
            await gw.sync()
        before = feed.progress()["totals"]  # sightings closed at shutdown are in it
        assert before["seen"] == 5

    async with LlrpSimulator(port=0, tag_source=_reads_of([])) as reader:
        gw, feed = _rfid_gateway(tmp_path, short_dir, reader.port)
        async with gw:
            assert feed.progress()["totals"] == before
            closed = await gw.stop_session()
    assert closed.row_count == 5


async def test_sightings_open_when_the_session_starts_count_in_view_and_file(
    tmp_path: Path, short_dir: Path
) -> None:
    """Tags read just before the start, within the dedup window, whose sightings are
    still open: the live view ticks them off, and the session's file holds them too
    (the view and the file never disagree, also after a restart)."""
    sc = make_scenario(tmp_path)
    epcs = [a.epc for a in sc.world.assets if a.epc and a.asset_tag != sc.unregistered_tag][:5]
    source = _reads_of([str(e) for e in epcs], times=1)
    async with LlrpSimulator(port=0, tag_source=source) as reader:
        gw, feed = _rfid_gateway(tmp_path, short_dir, reader.port, window_s=5.0)
        async with gw:
            deadline = time.monotonic() + 15
            while gw.counters.reads < 5 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert gw.counters.reads == 5  # all read, before the session exists
            await gw.start_session(operator="jdoe", scope=[sc.scope], expected=str(sc.register))
            assert feed.progress()["totals"]["seen"] == 5
            assert (await gw.observations()).num_rows == 5
    async with LlrpSimulator(port=0, tag_source=_reads_of([])) as reader:
        gw, feed = _rfid_gateway(tmp_path, short_dir, reader.port, window_s=5.0)
        async with gw:
            assert feed.progress()["totals"]["seen"] == 5
            closed = await gw.stop_session()
    assert closed.row_count == 5
