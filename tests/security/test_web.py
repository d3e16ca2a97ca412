"""Forged requests on the live view's HTTP server.

Defended: the live count page and its API against anyone who can reach the port — on a
network when it listens beyond loopback, or any local user and web page otherwise.

How: the configuration refuses an address beyond loopback without a token (or an
explicit ``insecure`` that ``config check`` warns about); the browser cookie is an
opaque, expiring session id (HttpOnly, SameSite=Strict, Secure under TLS), never the
token; headers that are not UTF-8 are 400s, not 500s; no log line carries a ``token=``
value, even when the HTTP library logs a request line it refused; a client that trickles
its headers is disconnected. Each test runs a real server on a loopback port.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from tagsweep.config import ConfigError, parse_config
from tagsweep.daemon.liveview.access import SESSION_COOKIE, SESSION_TTL_S
from tagsweep.daemon.liveview.count import LiveCount
from tagsweep.daemon.liveview.register import ExpectedAsset
from tagsweep.daemon.liveview.server import LiveWebServer
from tagsweep.daemon.liveview.view import LiveView

TOKEN = "s3cret-token-for-security-tests"
CLI = [sys.executable, "-m", "tagsweep.cli"]


def view() -> LiveView:
    live = LiveView()
    live.add(
        LiveCount(
            "cs-1",
            ["DC1/Room 302"],
            [ExpectedAsset("AST-000001", "SN1", None, "Dell", "R650", "DC1/Room 302")],
        )
    )
    return live


@pytest.fixture
async def server() -> AsyncIterator[LiveWebServer]:
    async with LiveWebServer(view(), port=0, token=TOKEN, header_timeout_s=1.0) as srv:
        yield srv


async def raw(server: LiveWebServer, request: bytes) -> bytes:
    """Send bytes as they are (no client library to tidy them) and read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    return answer


def web_config(**web: Any) -> dict[str, Any]:
    return {"gateway": {"id": "gw1", "site": "DC1"}, "web": {"enabled": True, **web}}


def test_listening_beyond_loopback_needs_a_token_or_an_explicit_insecure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TAGSWEEP_WEB_TOKEN", raising=False)
    for listen in ("0.0.0.0:8080", "[::]:8080", "10.1.2.3:8080", "gateway.local:8080"):
        with pytest.raises(ConfigError, match=r"web\.listen.*reachable from other hosts"):
            parse_config(web_config(listen=listen))
    for listen in ("127.0.0.1:8080", "127.0.0.2:8080", "[::1]:8080", "localhost:8080"):
        parse_config(web_config(listen=listen))  # loopback: no token needed
    parse_config(web_config(listen="0.0.0.0:8080", token_env="LIVE_TOKEN"), absent_secrets=[])
    assert parse_config(web_config(listen="0.0.0.0:8080", insecure=True)).web.insecure

    config = tmp_path / "gateway.toml"
    config.write_text(
        '[gateway]\nid = "gw1"\nsite = "DC1"\n[web]\nenabled = true\nlisten = "0.0.0.0:8080"\n'
    )
    refused = subprocess.run(
        [*CLI, "config", "check", str(config)], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 1
    assert "web.listen" in refused.stderr
    config.write_text(config.read_text() + "insecure = true\n")
    warned = subprocess.run(
        [*CLI, "config", "check", str(config)], capture_output=True, text=True, check=False
    )
    assert warned.returncode == 0, warned.stderr
    assert "warning:" in warned.stderr
    assert "web.insecure" in warned.stderr


async def test_the_cookie_is_an_expiring_opaque_session_not_the_token(
    server: LiveWebServer,
) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(
            f"{server.url}/sessions/cs-1?token={TOKEN}", allow_redirects=False
        ) as response:
            assert response.status == 303
            set_cookie = response.headers["Set-Cookie"]
        morsel = response.cookies[SESSION_COOKIE]
        assert TOKEN not in set_cookie
        assert len(morsel.value) >= 32
        assert morsel["httponly"] is True
        assert morsel["samesite"] == "Strict"
        assert int(morsel["max-age"]) == SESSION_TTL_S
        assert not morsel["secure"]  # plain HTTP: a Secure cookie would never come back
        async with http.get(f"{server.url}/sessions/cs-1") as response:
            assert response.status == 200  # the session cookie opens the page
    async with aiohttp.ClientSession() as http:
        for cookie in ({"tagsweep_token": TOKEN}, {SESSION_COOKIE: TOKEN}, {SESSION_COOKIE: "x"}):
            async with http.get(f"{server.url}/sessions/cs-1", cookies=cookie) as response:
                assert response.status == 401, cookie  # the raw token is no cookie
    # expired sessions are refused
    server.access.expire_all()
    async with (
        aiohttp.ClientSession(cookie_jar=jar) as http,
        http.get(f"{server.url}/sessions/cs-1") as response,
    ):
        assert response.status == 401


def self_signed(folder: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "web.key", "-out", "web.crt", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        cwd=folder, check=True, capture_output=True,
    )  # fmt: skip


async def test_the_cookie_is_secure_under_tls(tmp_path: Path) -> None:
    await asyncio.to_thread(self_signed, tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "web.crt", tmp_path / "web.key")
    client = ssl.create_default_context(cafile=str(tmp_path / "web.crt"))
    async with (
        LiveWebServer(view(), port=0, token=TOKEN, ssl_context=context) as srv,
        aiohttp.ClientSession() as http,
        http.get(f"{srv.url}/?token={TOKEN}", allow_redirects=False, ssl=client) as response,
    ):
        assert srv.url.startswith("https://")
        assert response.status == 303
        assert response.cookies[SESSION_COOKIE]["secure"] is True


async def test_headers_that_are_not_utf8_are_400s_not_500s(server: LiveWebServer) -> None:
    with capture_logs() as logs:
        for header in (b"Authorization: Bearer \xff\xfe", b"Cookie: tagsweep_session=\xff\xfe"):
            answer = await raw(
                server,
                b"GET /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"\r\n"
                b"Connection: close\r\n\r\n",
            )
            assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
            assert b"not UTF-8" in answer
    assert not [e for e in logs if e.get("log_level") in {"error", "exception"}]


async def test_no_token_in_any_log_line(
    server: LiveWebServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "leaked-" + TOKEN
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        # a request line longer than the HTTP library accepts: it logs the line it refused
        long_line = f"GET /sessions/cs-1?token={secret}&pad=".encode() + b"a" * 9000
        answer = await raw(server, long_line + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert answer.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
        # a header line too long, with the token in it
        answer = await raw(
            server,
            f"GET /?token={secret} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ".encode()
            + b"b" * 9000
            + b"\r\n\r\n",
        )
        assert answer.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
        # a wrong token in the URL of the API
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{server.url}/api/sessions?token={secret}") as response,
        ):
            assert response.status == 401
    text = caplog.text + "".join(f"{r.getMessage()} {r.exc_text}" for r in caplog.records)
    assert caplog.records, "the refused request lines were logged (redacted)"
    assert secret not in text
    assert secret not in repr(logs)


async def test_a_client_trickling_its_headers_is_disconnected(server: LiveWebServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    closed = False
    for i in range(600):  # a header line every 50 ms, never the blank line that ends them
        try:
            writer.write(f"X-Slow-{i}: 1\r\n".encode())
            await writer.drain()
        except ConnectionError:
            closed = True
            break
        try:
            if await asyncio.wait_for(reader.read(1), 0.05) == b"":
                closed = True
                break
        except TimeoutError:
            continue
    # the loop's bound (600 lines, each waiting up to 50 ms for the close) is the hang guard
    assert closed, "the server kept a connection whose headers never ended"
    writer.close()
