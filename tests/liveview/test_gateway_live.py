"""Acceptance through the real gateway: world model → LLRP and scanner simulators over
real sockets → drivers → dedup → the live view's event feed → JSON endpoints.

The session is started over the control socket with ``--expected`` (the register
file), the walk is replayed in compressed time, and the page's JSON is polled while it
runs: not-yet-seen only ever shrinks, never ticks off an asset before the handheld or
the scanner reached it, and ends exactly at what the walk's ground truth leaves unseen.
Bad requests on the way get clear 4xx answers and the gateway keeps counting.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.config import parse_config
from tagsweep.daemon.control import ControlError, call
from tagsweep.daemon.liveview.feed import attach_live_view
from tagsweep.daemon.supervisor import Gateway
from tagsweep.domain import now_us
from tagsweep.simulators.llrp import LlrpSimulator
from tagsweep.simulators.scanner import ScannerSimulator
from tagsweep.simulators.world import ReplayClock, scan_lines, tag_source
from tests.conftest import free_port
from tests.liveview.harness import config_data
from tests.liveview.walk import make_scenario

SPEED = 25.0
TOKEN = "walk-token"


async def get(http: aiohttp.ClientSession, url: str, token: str | None = TOKEN) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(url, headers=headers) as response:
        return response.status, await response.json()


async def test_live_count_through_the_gateway(
    tmp_path: Path, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sc = make_scenario(tmp_path)
    walk = sc.walk
    tag_of = {a.epc: a.asset_tag for a in sc.world.assets if a.epc}
    expected = {a.asset_tag for a in sc.world.assets if a.asset_tag != sc.unregistered_tag}
    expected.add(sc.ghost_tag)
    # when (world time) each asset was first reached: first read of its EPC, or its scan
    first_read: dict[str, int] = {}
    for epc, t in zip(
        walk.reads["epc"].tolist(), walk.reads["first_seen_us"].tolist(), strict=True
    ):
        first_read.setdefault(tag_of[epc.decode()], int(t))
    for s in walk.scans:
        if s.kind == "asset":
            first_read[s.line] = min(first_read.get(s.line, s.t_us), s.t_us)
    truth_end = expected - set(first_read)

    monkeypatch.setenv("TAGSWEEP_TEST_WEB_TOKEN", TOKEN)
    port = free_port()
    clock = ReplayClock(walk.start_us, speed=SPEED, wait_for_open=True)
    async with (
        LlrpSimulator(port=0, tag_source=tag_source(walk.reads, clock, batch_s=0.05)) as reader,
        ScannerSimulator(mode="tcp", script=scan_lines(walk.scans, clock)) as scanner,
    ):
        data = config_data(
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
        data["web"] = {
            "enabled": True,
            "listen": f"127.0.0.1:{port}",
            "token_env": "TAGSWEEP_TEST_WEB_TOKEN",
        }
        gw = Gateway(parse_config(data))
        feed = attach_live_view(gw)
        sock = gw.config.control.socket
        base = f"http://127.0.0.1:{port}"
        async with gw, aiohttp.ClientSession() as http:
            # a register that cannot be read is refused before any session opens
            bad = tmp_path / "bad.csv"
            bad.write_text("asset_tag,room\nAST-1,302\n")
            with pytest.raises(ControlError, match="no location column"):
                await asyncio.to_thread(
                    call, sock, "session.start",
                    {"operator": "jdoe", "scope": [sc.scope], "expected": str(bad)},
                )  # fmt: skip
            assert gw.session is None

            started = await asyncio.to_thread(
                call, sock, "session.start",
                {"operator": "jdoe", "scope": [sc.scope], "expected": str(sc.register)},
            )  # fmt: skip
            sid = started["session_id"]
            api = f"{base}/api/sessions/{sid}"
            status, snap = await get(http, api)
            assert status == 200
            assert snap["totals"]["not_yet_seen"] == len(expected)
            clock.open()  # the walk begins once the session is open

            # poll while the walk runs
            previous = set(expected)
            polls = 0
            end_wall_s = int(clock.to_wall(walk.end_us)) / 1e6
            while time.time() < end_wall_s:
                status, listing = await get(http, f"{api}/not-yet-seen")
                world_now = clock.to_world(now_us())
                assert status == 200
                missing = {a["asset_tag"] for a in listing["assets"]}
                assert missing <= previous  # only ever shrinks
                ticked = expected - missing
                early = {t for t in ticked if first_read.get(t, np.iinfo(np.int64).max) > world_now}
                assert not early, f"ticked off before reached: {sorted(early)}"
                previous = missing
                polls += 1
                await asyncio.sleep(0.25)
            assert len(previous) < len(expected)  # it fell during the walk

            # bad requests while counting: clear 4xx, the gateway goes on
            assert (await get(http, f"{base}/api/sessions/cs-nope"))[0] == 404
            assert (await get(http, api, token="wrong"))[0] == 401
            assert (await get(http, api, token=None))[0] == 401
            with pytest.raises(ControlError, match="unknown count session 'cs-nope'"):
                await asyncio.to_thread(call, sock, "session.progress", {"session_id": "cs-nope"})

            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                status, listing = await get(http, f"{api}/not-yet-seen")
                if {a["asset_tag"] for a in listing["assets"]} == truth_end:
                    break
                await asyncio.sleep(0.2)
            assert {a["asset_tag"] for a in listing["assets"]} == truth_end
            await scanner.finished()

            progress = await asyncio.to_thread(call, sock, "session.progress", {})
            assert progress["session_id"] == sid
            assert progress["totals"]["not_yet_seen"] == len(truth_end)
            health = {h["name"]: h for h in progress["health"]}
            assert health["handheld"]["reads_total"] > 0
            assert health["handheld"]["state"] == "inventorying"
            unexpected = {u["asset_tag"]: u["reason"] for u in progress["unexpected"]}
            assert unexpected.get(sc.unregistered_tag) == "not_in_register"
            # the terminal view of the same, over the control socket
            result = await asyncio.to_thread(
                CliRunner().invoke, app, ["session", "progress", "--socket", str(sock)]
            )
            assert result.exit_code == 0, result.output
            assert f"{len(truth_end)} not yet seen" in result.output
            assert sc.ghost_tag in result.output

            await gw.stop_session()
            status, snap = await get(http, api)
            assert (status, snap["closed"]) == (200, True)
            assert gw.status()["counters"]["reads"] > 0
    assert polls >= 5
    assert feed.server is not None
    assert feed.server.streams == 0
