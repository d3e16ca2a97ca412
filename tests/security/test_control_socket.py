"""Forged requests on the control socket.

Defended: the gateway's Unix control socket against a local client that may connect (an
operator's account, or anything running as one) but must not be able to read the
daemon's files, exhaust its memory or connections, or make it log tracebacks.

How: every request is validated whole before any command runs (JSON depth, the ``id``,
argument types and sizes); ``NaN``/``Infinity`` are refused and never written back; a
refused ``session.start`` does not open its ``--expected`` register, and register errors
name the file, never its content; connections are limited in number and closed when
idle. Each test talks to a real gateway over a real Unix socket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tagsweep.daemon.control import MAX_DEPTH, ControlServer
from tagsweep.daemon.liveview.feed import attach_live_view
from tagsweep.daemon.supervisor import Gateway
from tests.daemon.harness import make_config, wait_until

SECRET = "db_password=hunter2-do-not-show"


def strict_json(line: bytes) -> dict[str, Any]:
    """Parse as any strict JSON reader would: no NaN, no Infinity."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"the daemon wrote {name}, which is not JSON")

    answer: dict[str, Any] = json.loads(line, parse_constant=refuse)
    return answer


async def ask(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes
) -> dict[str, Any]:
    writer.write(line + b"\n")
    await writer.drain()
    return strict_json(await asyncio.wait_for(reader.readline(), 30))


@pytest.fixture
async def gateway(tmp_path: Path, short_dir: Path) -> AsyncIterator[Gateway]:
    cfg = make_config(tmp_path, short_dir)
    gw = Gateway(cfg)
    attach_live_view(gw)
    async with gw:
        yield gw


async def connect(gw: Gateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_unix_connection(str(gw.config.control.socket))


def errors_logged(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e.get("log_level") in {"error", "critical", "exception"}]


async def test_deep_nesting_huge_ids_and_nan_are_refused_without_tracebacks(
    gateway: Gateway,
) -> None:
    reader, writer = await connect(gateway)
    with capture_logs() as logs:
        deep = b'{"cmd": "status", "args": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
        answer = await ask(reader, writer, deep[: 60 * 1024])  # under the line limit
        assert answer["code"] == "bad_request"
        nested = b'{"cmd": "ping", "id": 1, "args": ' + b'{"a": ' * 40 + b"1" + b"}" * 41
        answer = await ask(reader, writer, nested)
        assert answer["code"] == "bad_request"
        assert f"deeper than {MAX_DEPTH}" in answer["error"]
        for digits in (4000, 5000):
            answer = await ask(reader, writer, b'{"cmd": "ping", "id": ' + b"7" * digits + b"}")
            assert answer["code"] == "bad_request"
            assert "id" not in answer
        long_id = json.dumps({"cmd": "ping", "id": "x" * 10_000}).encode()
        answer = await ask(reader, writer, long_id)
        assert answer["code"] == "bad_request"
        assert "id" not in answer
        for constant in (b"NaN", b"Infinity", b"-Infinity"):
            answer = await ask(reader, writer, b'{"cmd": "ping", "id": ' + constant + b"}")
            assert answer["code"] == "bad_request"
        # a good request on the same connection is still served, its id echoed
        assert (await ask(reader, writer, b'{"cmd": "ping", "id": 9007199254740991}')) == {
            "ok": True,
            "result": {"pong": True},
            "id": 9007199254740991,
        }
    writer.close()
    assert errors_logged(logs) == []
    assert gateway.counters.control_errors >= 8


async def test_a_refused_start_never_loads_its_register(gateway: Gateway, tmp_path: Path) -> None:
    assert gateway.live is not None
    register = tmp_path / "register.csv"
    register.write_text("asset_tag,location\nAST-1,DC1/Room 302\n")
    await gateway.start_session(operator="jdoe", location="DC1/Room 302")
    reader, writer = await connect(gateway)
    # A start while a session is open is refused before the register is looked at: a
    # broken register would have said so first, had it been read.
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"\x00\xff not a register")
    for path in (register, broken):
        args = {"operator": "eve", "expected": str(path)}
        answer = await ask(
            reader, writer, json.dumps({"cmd": "session.start", "args": args}).encode()
        )
        assert answer["code"] == "session_error"
        assert "already open" in answer["error"]
    assert gateway.live._prepared == {}  # nothing kept
    # bad arguments are refused before the register is read, too
    bad_starts: list[dict[str, Any]] = [
        {"operator": "eve", "expected": str(register), "site": "DC9"},
        {"operator": "eve", "expected": str(register), "scope": ["x"] * 5000},
        {"operator": "eve", "expected": str(register) + "\x00.csv"},
    ]
    for args in bad_starts:
        answer = await ask(
            reader, writer, json.dumps({"cmd": "session.start", "args": args}).encode()
        )
        assert answer["ok"] is False
    assert gateway.live._prepared == {}
    writer.close()


async def test_register_errors_never_show_the_file_content(
    gateway: Gateway, tmp_path: Path
) -> None:
    reader, writer = await connect(gateway)
    secrets = [
        (tmp_path / "secrets.csv", f"{SECRET}\nother=line\n"),  # one header column, no location
        (tmp_path / "secrets.txt", f"{SECRET},location\nx,y\n"),  # no tag/serial/epc column
        (tmp_path / "secrets.tsv", f'"{SECRET}\n'),  # a CSV DuckDB cannot parse
        (tmp_path / "secrets.parquet", f"{SECRET}\n"),  # not Parquet at all
    ]
    with capture_logs() as logs:
        for path, content in secrets:
            path.write_text(content)
            args = {"operator": "eve", "location": "DC1/Room 302", "expected": str(path)}
            answer = await ask(
                reader, writer, json.dumps({"cmd": "session.start", "args": args}).encode()
            )
            assert answer["code"] == "session_error", answer
            assert str(path) in answer["error"]
            assert "hunter2" not in answer["error"]
    assert "hunter2" not in repr(logs)
    assert gateway.session is None
    writer.close()


async def test_idle_and_surplus_connections_are_closed(tmp_path: Path, short_dir: Path) -> None:
    cfg = make_config(tmp_path, short_dir)
    async with Gateway(cfg, control_socket=False) as gw:
        server = ControlServer(gw, short_dir / "c.sock")
        server.max_clients = 2
        server.idle_timeout_s = 0.5
        await server.start()
        serving = asyncio.create_task(server.serve())
        try:
            first = await asyncio.open_unix_connection(str(server.path))
            second = await asyncio.open_unix_connection(str(server.path))
            assert (await ask(*first, b'{"cmd": "ping"}'))["ok"] is True
            assert (await ask(*second, b'{"cmd": "ping"}'))["ok"] is True
            third_reader, third_writer = await asyncio.open_unix_connection(str(server.path))
            busy = strict_json(await asyncio.wait_for(third_reader.readline(), 30))
            assert busy["code"] == "busy"
            assert await asyncio.wait_for(third_reader.read(), 30) == b""  # closed
            third_writer.close()
            # a client that sends half a line and then nothing is closed when idle
            first[1].write(b'{"cmd": "pi')
            await first[1].drain()
            assert await asyncio.wait_for(first[0].read(), 30) == b""
            assert await asyncio.wait_for(second[0].read(), 30) == b""
            await wait_until(lambda: not server._clients, what="connections released")
            again = await asyncio.open_unix_connection(str(server.path))
            assert (await ask(*again, b'{"cmd": "ping"}'))["ok"] is True
            again[1].close()
        finally:
            await server.close()
            await serving
