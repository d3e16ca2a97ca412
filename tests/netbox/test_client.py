"""The NetBox client's own rules: token headers, URLs, retries, errors.

Retries are shown against a small real HTTP server on loopback that answers 503 and
429 before it answers 200 (what a NetBox behind a busy proxy does); everything about
NetBox itself is tested against the real one in the other modules.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web

from tagsweep.netbox.client import (
    NetBoxClient,
    NetBoxUnavailableError,
    TokenError,
    api_root,
    authorization,
    load_token,
)
from tagsweep.netbox.pull import split_url

V2 = "nbt_3Xk9QpLm2sTt.Yc8VwR6nB1aZ0eF4gH7jK2lM5nP8qR1sT4uV7wX0y"


def test_v1_and_v2_tokens_get_their_own_header() -> None:
    # NetBox REST API docs: "Token <token>" (v1), "Bearer nbt_<key>.<token>" (v2)
    assert authorization("0123456789abcdef0123456789abcdef01234567") == (
        "Token 0123456789abcdef0123456789abcdef01234567"
    )
    assert authorization(V2) == f"Bearer {V2}"


def test_token_comes_from_a_file_or_the_environment_never_the_command_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "token"
    path.write_text(f"{V2}\n", encoding="utf-8")
    assert load_token(path, env={}) == V2
    assert load_token(None, env={"NETBOX_TOKEN": " abc "}) == "abc"
    with pytest.raises(TokenError, match="--token-file FILE or set NETBOX_TOKEN"):
        load_token(None, env={})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(TokenError, match="the file is empty"):
        load_token(tmp_path / "empty", env={})
    with pytest.raises(TokenError, match="No such file"):
        load_token(tmp_path / "missing", env={})


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("https://netbox.example.com", "https://netbox.example.com/api/"),
        ("https://netbox.example.com/api/", "https://netbox.example.com/api/"),
        ("https://h/netbox/api/dcim/devices/?site=x", "https://h/netbox/api/"),
        ("http://127.0.0.1:8000/?site=dc1", "http://127.0.0.1:8000/api/"),
    ],
)
def test_api_root_from_any_netbox_url(url: str, root: str) -> None:
    assert api_root(url) == root


def test_source_url_names_endpoint_and_filters() -> None:
    root, endpoint, filters = split_url(
        "https://h/api/dcim/devices/?site=dc1&site=dc2&tag=audited&limit=5&offset=10"
    )
    assert (root, endpoint) == ("https://h/api/", "dcim/devices/")
    assert filters == [("site", "dc1"), ("site", "dc2"), ("tag", "audited")]
    assert split_url("https://h/api/dcim/inventory-items/")[1] == "dcim/inventory-items/"
    with pytest.raises(ValueError, match="not an http"):
        api_root("netbox.example.com")


async def test_429_and_5xx_are_retried_with_backoff_then_given_up() -> None:
    answers = [web.Response(status=503), web.Response(status=429, headers={"Retry-After": "0"})]
    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers["Authorization"])
        if answers:
            return answers.pop(0)
        return web.json_response({"count": 0, "next": None, "previous": None, "results": []})

    async def always_502(request: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text="bad gateway")

    app = web.Application()
    app.router.add_get("/api/dcim/devices/", handler)
    app.router.add_get("/api/dcim/sites/", always_502)
    app.router.add_post("/api/dcim/sites/", always_502)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with NetBoxClient(f"http://127.0.0.1:{port}", V2, backoff_s=0.01) as nb:
            assert await nb.all("dcim/devices/") == []
            assert nb.retried == 2
            assert seen == [f"Bearer {V2}"] * 3
            with pytest.raises(NetBoxUnavailableError, match="HTTP 502: no JSON in the answer"):
                await nb.get("dcim/sites/")
            assert nb.retried == 2 + nb.retries
            # a POST that may have been applied is not repeated (it would create twice)
            with pytest.raises(NetBoxUnavailableError, match="HTTP 502"):
                await nb.send("POST", "dcim/sites/", {"name": "x"})
            assert nb.retried == 2 + nb.retries
    finally:
        await runner.cleanup()


async def test_a_server_that_is_gone_fails_fast_after_the_first_give_up() -> None:
    from tests.conftest import free_port

    port = free_port()  # nothing listens there
    async with NetBoxClient(f"http://127.0.0.1:{port}", V2, backoff_s=0.01, retries=2) as nb:
        with pytest.raises(NetBoxUnavailableError, match="no answer after 3 attempt"):
            await nb.get("dcim/devices/")
        with pytest.raises(NetBoxUnavailableError, match="not sent, the server stopped"):
            await nb.send("PATCH", "dcim/devices/", [{"id": 1}])
        assert json.dumps(nb.__repr__()).count(V2) == 0
