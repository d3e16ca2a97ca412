"""The control socket over a real Unix socket: permissions, commands, bad input."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from tagsweep.daemon.control import ControlError, ControlServer, call
from tagsweep.daemon.supervisor import Gateway

from .harness import make_config, wait_until


async def _ask(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes
) -> dict[str, Any]:
    writer.write(line + b"\n")
    await writer.drain()
    answer: dict[str, Any] = json.loads(await reader.readline())
    return answer


async def test_commands_and_bad_input_on_one_connection(tmp_path: Path, short_dir: Path) -> None:
    cfg = make_config(
        tmp_path,
        short_dir,
        readers=[{"name": "hh1", "url": "sim://hh?tags=8&rate=800&seed=2", "role": "handheld"}],
    )
    path = cfg.control.socket
    async with Gateway(cfg) as gw:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        reader, writer = await asyncio.open_unix_connection(str(path))
        try:
            bad = await _ask(reader, writer, b"{not json")
            assert bad["ok"] is False
            assert bad["code"] == "bad_request"
            assert "malformed JSON" in bad["error"]
            assert (await _ask(reader, writer, b"[1, 2]"))["code"] == "bad_request"
            unknown = await _ask(reader, writer, b'{"cmd": "session.explode", "id": 3}')
            assert unknown["code"] == "unknown_command"
            assert unknown["id"] == 3
            assert "session.start" in unknown["error"]
            stop = await _ask(reader, writer, b'{"cmd": "session.stop"}')
            assert stop["code"] == "session_error"
            assert "no count session is open" in stop["error"]
            missing = await _ask(reader, writer, b'{"cmd": "session.start", "args": {}}')
            assert "missing argument(s): operator" in missing["error"]
            extra = await _ask(
                reader, writer, b'{"cmd": "session.start", "args": {"operator": "a", "room": 1}}'
            )
            assert "unknown argument(s) room" in extra["error"]
            show = await _ask(
                reader, writer, b'{"cmd": "session.show", "args": {"session_id": "cs-x"}}'
            )
            assert "unknown session 'cs-x'" in show["error"]
            # After all that, the same connection still works.
            started = await _ask(
                reader,
                writer,
                json.dumps(
                    {
                        "cmd": "session.start",
                        "args": {"operator": "jdoe", "location": "DC1/Room 302"},
                    }
                ).encode(),
            )
            assert started["ok"] is True
            session_id = started["result"]["session_id"]
            moved = await _ask(
                reader,
                writer,
                b'{"cmd": "session.location", "args": {"location": "DC1/Room 302/Rack A04"}}',
            )
            assert moved["result"]["location"] == "DC1/Room 302/Rack A04"
            status = await _ask(reader, writer, b'{"cmd": "status"}')
            assert status["result"]["session"]["session_id"] == session_id
            assert status["result"]["counters"]["control_errors"] == 7
        finally:
            writer.close()
            await writer.wait_closed()
        await wait_until(lambda: gw.counters.reads > 50, what="reads")
        # The blocking client the CLI uses, from a thread.
        closed = await asyncio.to_thread(call, path, "session.stop", {})
        assert closed["session_id"] == session_id
        assert await asyncio.to_thread(Path(closed["parquet"]).is_file)
        with pytest.raises(ControlError, match="no count session is open"):
            await asyncio.to_thread(call, path, "session.stop", {})
        listed = await asyncio.to_thread(call, path, "session.list")
        assert [row["state"] for row in listed] == ["closed"]
        # A second daemon on the same socket is refused while the first one listens.
        with pytest.raises(ControlError, match="already listening"):
            await ControlServer(gw, path).start()
        assert (await asyncio.to_thread(call, path, "ping"))["pong"] is True
    assert not path.exists()  # removed at shutdown


async def test_stale_socket_is_replaced_and_long_paths_are_refused(
    tmp_path: Path, short_dir: Path
) -> None:
    cfg = make_config(tmp_path, short_dir)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(cfg.control.socket))
    stale.close()  # a socket file nobody listens on, as after kill -9
    async with Gateway(cfg):
        assert (await asyncio.to_thread(call, cfg.control.socket, "ping"))["pong"] is True
    with pytest.raises(ControlError, match="longer than 107 bytes"):
        await ControlServer(Gateway(cfg), short_dir / ("x" * 120)).start()


def test_client_explains_a_missing_daemon(short_dir: Path) -> None:
    with pytest.raises(ControlError, match="is `tagsweep run` running"):
        call(short_dir / "nobody.sock", "status")
