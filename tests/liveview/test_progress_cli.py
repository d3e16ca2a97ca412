"""``tagsweep session progress`` against a real live view on loopback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from tagsweep.daemon.liveview.count import LiveCount
from tagsweep.daemon.liveview.register import ExpectedAsset
from tagsweep.daemon.liveview.server import LiveWebServer
from tagsweep.daemon.liveview.terminal import progress
from tagsweep.daemon.liveview.view import LiveView
from tagsweep.epc import giai96_for_asset_tag

ROOM = "DC1/Room 302"
A04 = f"{ROOM}/Rack A04"
A05 = f"{ROOM}/Rack A05"

app = typer.Typer()
app.command()(progress)


def make_view() -> tuple[LiveView, LiveCount]:
    register = [
        ExpectedAsset(f"AST-{i:06d}", f"SN{i}", None, "Dell", "R650", rack, "in_use", f"U{i:02d}")
        for i, rack in enumerate([A04, A04, A04, A05, A05], start=1)
    ]
    view = LiveView()
    count = view.add(LiveCount("cs-7", [ROOM], register, operator="jdoe"))
    count.set_location_context(A04)
    count.observe_epc(giai96_for_asset_tag("AST-000001"))
    count.observe_epc(giai96_for_asset_tag("AST-000777"))
    view.set_source_state("handheld", "reader", "inventorying")
    return view, count


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


async def test_progress_prints_counts_and_lists(tmp_path: Path) -> None:
    view, _ = make_view()
    async with LiveWebServer(view, port=0, token="tok") as server:
        code, out = await asyncio.to_thread(
            run_cli, "--url", server.url, "--token-env", "LIVE_TOKEN", env={"LIVE_TOKEN": "tok"}
        )
        assert code == 0, out
        assert "cs-7 (open) · jdoe · scope DC1/Room 302 · context DC1/Room 302/Rack A04" in out
        assert "4 not yet seen · 1/5 seen · 1 unexpected" in out
        assert "AST-000002" in out
        assert "DC1/Room 302/Rack A05 · U05" in out
        assert "AST-000777" in out
        assert "not in register" in out
        assert "handheld (reader): inventorying" in out

        code, out = await asyncio.to_thread(
            run_cli,
            "--url",
            server.url,
            "--location",
            A05,
            "--json",
            "--token-env",
            "LIVE_TOKEN",
            env={"LIVE_TOKEN": "tok"},
        )
        assert code == 0, out
        assert json.loads(out)["totals"]["not_yet_seen"] == 4

        code, out = await asyncio.to_thread(
            run_cli,
            "--url",
            server.url,
            "--location",
            A05,
            "--limit",
            "1",
            "--token-env",
            "LIVE_TOKEN",
            env={"LIVE_TOKEN": "tok"},
        )
        assert code == 0, out
        assert "Not yet seen in DC1/Room 302/Rack A05 (2)" in out
        assert "… and 1 more (--limit)" in out
        assert "AST-000002" not in out  # A04's asset is outside the filter

        # the token is read from the gateway's own configuration
        config = tmp_path / "gateway.toml"
        (tmp_path / "web.token").write_text("tok\n")
        (tmp_path / "web.token").chmod(0o600)
        host, port = server.url.removeprefix("http://").split(":")
        config.write_text(
            f'[web]\nenabled = true\nlisten = "{host}:{port}"\ntoken_file = "web.token"\n'
        )
        code, out = await asyncio.to_thread(run_cli, "--url", server.url, "--config", str(config))
        assert code == 0, out
        assert "4 not yet seen" in out


async def test_progress_errors_are_clear() -> None:
    view, _ = make_view()
    async with LiveWebServer(view, port=0, token="tok") as server:
        code, out = await asyncio.to_thread(run_cli, "--url", server.url)
        assert code == 1
        assert "needs a token" in out
        code, out = await asyncio.to_thread(
            run_cli,
            "--url",
            server.url,
            "--session",
            "cs-nope",
            "--token-env",
            "LIVE_TOKEN",
            env={"LIVE_TOKEN": "tok"},
        )
        assert code == 1
        assert "unknown count session 'cs-nope' (live sessions: cs-7)" in out
        port = server.port
    code, out = await asyncio.to_thread(run_cli, "--url", f"http://127.0.0.1:{port}")
    assert code == 1
    assert "cannot reach the live view" in out
    assert "[web] enabled = true" in out
