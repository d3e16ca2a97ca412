"""The live view's HTTP surface on a real loopback server: JSON endpoints, clear 4xx
answers for bad requests, token auth, escaping, and the server-sent event stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tagsweep.config.schema import WebSection
from tagsweep.daemon.liveview.count import LiveCount
from tagsweep.daemon.liveview.register import ExpectedAsset
from tagsweep.daemon.liveview.server import LiveWebServer
from tagsweep.daemon.liveview.view import LiveView
from tagsweep.epc import giai96_for_asset_tag
from tests.conftest import free_port

ROOM = "DC1/Room 302"
A04 = f"{ROOM}/Rack A04"
TOKEN = "s3cret-token-for-tests"


def make_view() -> tuple[LiveView, LiveCount]:
    register = [
        ExpectedAsset(f"AST-{i:06d}", f"SN{i}", None, "Dell", "R650", A04, "in_use")
        for i in range(1, 6)
    ]
    register.append(
        ExpectedAsset("AST-000666", "SN666", None, "Evil", "<script>alert(1)</script>", A04)
    )
    view = LiveView()
    count = view.add(LiveCount("cs-1", [ROOM], register, operator="jdoe"))
    return view, count


@pytest.fixture
async def open_server() -> AsyncIterator[tuple[LiveWebServer, LiveCount]]:
    view, count = make_view()
    async with LiveWebServer(view, port=0) as server:
        yield server, count


@pytest.fixture
async def token_server() -> AsyncIterator[tuple[LiveWebServer, LiveCount]]:
    view, count = make_view()
    async with LiveWebServer(view, port=0, token=TOKEN) as server:
        yield server, count


async def fetch(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    cookies: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    async with (
        aiohttp.ClientSession(cookies=cookies) as http,
        http.request(method, url, headers=headers, allow_redirects=False) as response,
    ):
        text = await response.text()
        body: Any = (
            json.loads(text)
            if response.headers.get("Content-Type", "").startswith("application/json")
            else text
        )
        return response.status, dict(response.headers), body


async def test_json_endpoints(open_server: tuple[LiveWebServer, LiveCount]) -> None:
    server, count = open_server
    count.set_location_context(A04)
    count.observe_epc(giai96_for_asset_tag("AST-000001"))
    status, _, sessions = await fetch(f"{server.url}/api/sessions")
    assert status == 200
    assert [s["session_id"] for s in sessions["sessions"]] == ["cs-1"]
    assert sessions["sessions"][0]["totals"]["seen"] == 1
    status, headers, snap = await fetch(f"{server.url}/api/sessions/cs-1")
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert snap["totals"] == {
        "expected": 6,
        "seen": 1,
        "not_yet_seen": 5,
        "unexpected": 0,
        "items_seen": 1,
    }
    assert snap["location_context"] == A04
    status, _, listing = await fetch(f"{server.url}/api/sessions/cs-1/not-yet-seen?location={A04}")
    assert status == 200
    assert listing["count"] == 5
    assert listing["assets"][0] == {
        "asset_tag": "AST-000002",
        "serial": "SN2",
        "epc": None,
        "manufacturer": "Dell",
        "model": "R650",
        "location": A04,
        "position": None,
        "status": "in_use",
    }
    status, _, odd = await fetch(f"{server.url}/api/sessions/cs-1/unexpected")
    assert (status, odd["count"]) == (200, 0)


async def test_bad_requests_get_clear_4xx_and_the_server_keeps_serving(
    open_server: tuple[LiveWebServer, LiveCount],
) -> None:
    server, _ = open_server
    status, _, body = await fetch(f"{server.url}/api/sessions/cs-nope")
    assert status == 404
    assert body["error"] == "unknown count session 'cs-nope' (live sessions: cs-1)"
    assert body["sessions"] == ["cs-1"]
    status, _, body = await fetch(f"{server.url}/api/sessions/cs-nope/events")
    assert status == 404  # before any stream starts
    status, _, page = await fetch(f"{server.url}/sessions/cs-nope", headers={"Accept": "text/html"})
    assert status == 404
    assert "unknown count session &#39;cs-nope&#39;" in page
    status, _, body = await fetch(f"{server.url}/api/sessions/cs-1/not-yet-seen?location=DC9")
    assert status == 400
    assert "outside the scope" in body["error"]
    status, _, body = await fetch(f"{server.url}/api/sessions/cs-1/not-yet-seen?location=a//b")
    assert status == 400
    assert "location" in body["error"]
    status, _, body = await fetch(f"{server.url}/api/nothing-here")
    assert status == 404
    assert body["error"] == "no such page or endpoint: /api/nothing-here"
    status, _, body = await fetch(f"{server.url}/api/sessions/cs-1", method="DELETE")
    assert status == 405
    assert "DELETE is not allowed" in body["error"]
    # DNS rebinding: a page on another origin resolving to 127.0.0.1 is refused
    status, _, body = await fetch(
        f"{server.url}/api/sessions", headers={"Host": "evil.example:8080"}
    )
    assert status == 421
    status, _, _ = await fetch(f"{server.url}/api/sessions/cs-1")
    assert status == 200


async def test_token_auth(token_server: tuple[LiveWebServer, LiveCount]) -> None:
    server, _ = token_server
    url = f"{server.url}/api/sessions/cs-1"
    status, headers, body = await fetch(url)
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Bearer realm="tagsweep"'
    assert "needs a token" in body["error"]
    status, _, body = await fetch(url, headers={"Authorization": "Bearer wrong"})
    assert status == 401
    assert body["error"] == "the token does not match this gateway's [web] token"
    status, _, _ = await fetch(f"{url}?token={TOKEN}")
    assert status == 401  # the API takes the token in a header, never in a URL
    status, _, body = await fetch(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert (status, body["session_id"]) == (200, "cs-1")
    status, _, _ = await fetch(
        f"{server.url}/api/sessions/cs-nope", headers={"Authorization": "Bearer wrong"}
    )
    assert status == 401  # no session names leak to a caller without the token

    # a browser opens the page once with ?token=, gets a cookie and a clean URL
    status, headers, _ = await fetch(f"{server.url}/sessions/cs-1?token={TOKEN}")
    assert status == 303
    assert headers["Location"] == "/sessions/cs-1"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert TOKEN not in session_id  # an opaque session id, not the token
    status, _, page = await fetch(
        f"{server.url}/sessions/cs-1", cookies={"tagsweep_session": session_id}
    )
    assert status == 200
    assert "not yet seen" in page
    status, _, _ = await fetch(f"{server.url}/sessions/cs-1", cookies={"tagsweep_session": "x"})
    assert status == 401
    status, _, _ = await fetch(f"{server.url}/static/live.js")
    assert status == 200  # no secrets in static files; pages load them before the cookie


async def test_page_escapes_register_text_and_sets_a_strict_csp(
    open_server: tuple[LiveWebServer, LiveCount],
) -> None:
    server, _ = open_server
    status, headers, page = await fetch(f"{server.url}/sessions/cs-1")
    assert status == 200
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    # no asset comes from another host: gateways are often offline
    assert "http://" not in page.replace(server.url, "")
    assert "https://" not in page


async def test_index_redirects_to_the_only_open_session(
    open_server: tuple[LiveWebServer, LiveCount],
) -> None:
    server, _ = open_server
    status, headers, _ = await fetch(f"{server.url}/")
    assert (status, headers["Location"]) == (303, "/sessions/cs-1")


async def read_event(stream: aiohttp.StreamReader) -> tuple[str, dict[str, Any]]:
    while True:
        block = (await asyncio.wait_for(stream.readuntil(b"\n\n"), 5)).decode()
        fields = dict(line.split(": ", 1) for line in block.strip().splitlines() if ": " in line)
        if "event" in fields:
            return fields["event"], json.loads(fields["data"])


async def test_event_stream_pushes_each_change(
    open_server: tuple[LiveWebServer, LiveCount],
) -> None:
    server, count = open_server
    server.push_interval_s = 0.02
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/api/sessions/cs-1/events") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        events: dict[str, dict[str, Any]] = {}
        while "snapshot" not in events or "health" not in events:
            kind, data = await read_event(response.content)
            events[kind] = data
        assert events["snapshot"]["totals"]["not_yet_seen"] == 6
        assert server.streams == 1
        count.set_location_context(A04)
        count.observe_epc(giai96_for_asset_tag("AST-000003"))
        while True:
            kind, data = await read_event(response.content)
            if kind == "snapshot":
                break
        assert data["totals"]["not_yet_seen"] == 5
        assert data["location_context"] == A04
        assert "AST-000003" not in {a["asset_tag"] for a in data["not_yet_seen"]}
        # a closed session sends its final state and ends the stream
        count.close()
        while True:
            kind, data = await read_event(response.content)
            if kind == "snapshot":
                break
        assert data["closed"] is True
        assert await asyncio.wait_for(response.content.read(), 5) == b""


async def test_stop_ends_open_streams_promptly() -> None:
    view, _ = make_view()
    server = LiveWebServer(view, port=0)
    await server.start()
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/api/sessions/cs-1/events") as response,
    ):
        await read_event(response.content)
        # aiohttp alone waits up to 60 s for open handlers: finishing well inside that
        # (the bound is a hang guard) means the server ended its streams itself
        await asyncio.wait_for(server.stop(), 30)
        assert server.streams == 0
        await asyncio.wait_for(response.content.read(), 30)  # returns at end of stream
        assert response.content.at_eof()


async def test_from_config_binds_to_the_configured_address() -> None:
    view, _ = make_view()
    port = free_port()
    section = WebSection(enabled=True, listen=f"127.0.0.1:{port}")
    async with LiveWebServer.from_config(view, section) as server:
        assert server.url == f"http://127.0.0.1:{port}"
        status, _, _ = await fetch(f"{server.url}/api/sessions")
        assert status == 200
        with pytest.raises(OSError, match="change \\[web\\] listen"):
            await LiveWebServer(view, port=port).start()
