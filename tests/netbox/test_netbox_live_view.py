"""``session start --expected netbox:URL``: the live count expects what NetBox says."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.config import parse_config
from tagsweep.daemon.liveview.feed import attach_live_view
from tagsweep.daemon.supervisor import Gateway
from tests.liveview.harness import config_data
from tests.netbox.server import NetBoxServer
from tests.netbox.world import build_world


async def test_session_expects_the_devices_pulled_from_netbox(
    netbox: NetBoxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert netbox.tokens is not None
    world = await asyncio.to_thread(
        build_world, netbox.url, netbox.tokens.v1, "LV", racks=2, devices=5
    )
    short = Path(tempfile.mkdtemp(prefix="ts-nb-", dir="/tmp"))
    monkeypatch.chdir(tmp_path)
    try:
        gw = Gateway(parse_config(config_data(tmp_path, short)))
        feed = attach_live_view(gw)
        async with gw:
            args = ["session", "start", "--operator", "jdoe", "--site", world.site,
                    "--scope", world.site, "--expected", f"netbox:{netbox.url}/?site=lv",
                    "--socket", str(short / "control.sock")]  # fmt: skip
            result = await asyncio.to_thread(
                CliRunner().invoke, app, args, env={"NETBOX_TOKEN": netbox.tokens.v2}
            )
            assert result.exit_code == 0, result.output
            assert "expected register: 5 devices" in result.output
            progress = feed.progress()
            assert progress["totals"]["expected"] == 5
            assert progress["totals"]["not_yet_seen"] == 5
            waiting = {a["asset_tag"]: a for a in progress["not_yet_seen"]}
            first = sorted(world.devices)[0]
            assert waiting[first]["location"] == f"{world.site}/Room 302/R101"
            assert waiting[first]["position"] == "U1"
    finally:
        shutil.rmtree(short, ignore_errors=True)
