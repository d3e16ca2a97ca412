"""The store cannot vanish unnoticed: a DuckDB file deleted or replaced under the running
gateway is seen at once — in status, the log, the metrics and sd_notify's STATUS — and
no count session is reported started or closed while the store cannot keep it."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import duckdb
import pytest
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from tagsweep.daemon.integrations import attach_integrations
from tagsweep.daemon.sessions import SessionError
from tagsweep.daemon.store import Store, StoreError, WriteBatch
from tagsweep.daemon.supervisor import Gateway

from .harness import make_config, wait_until


def other_store(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE elsewhere (x INTEGER)")
    con.close()


READER = {"name": "hh1", "url": "sim://hh?tags=8&rate=800&seed=2", "role": "handheld"}


def test_a_store_refuses_writes_once_its_file_is_deleted_or_replaced(tmp_path: Path) -> None:
    path = tmp_path / "gateway.duckdb"
    store = Store(path)
    store.write(WriteBatch(contexts=[(None, 1, "DC1/Room 302", "start")]))
    assert store.problem() is None
    path.unlink()
    assert "was deleted" in (store.problem() or "")
    with pytest.raises(StoreError, match="was deleted"):
        store.write(WriteBatch(contexts=[(None, 2, "DC1/Room 302", "scan")]))
    with pytest.raises(StoreError, match="was deleted"):
        store.insert_session("cs-1", "DC1", "jdoe", [], 1)
    other_store(tmp_path / "other.duckdb")
    os.replace(tmp_path / "other.duckdb", path)  # another file at the same path
    assert "was replaced" in (store.problem() or "")
    with pytest.raises(StoreError, match="was replaced"):
        store.set_session_state("cs-1", "stopping", ended_us=2)
    store.close()


async def test_the_gateway_reports_a_deleted_store_everywhere_and_commits_no_session(
    tmp_path: Path, short_dir: Path
) -> None:
    cfg = make_config(tmp_path, short_dir, readers=[READER])
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(short_dir / "notify.sock"))
    receiver.setblocking(False)
    gw = Gateway(cfg)
    integrations = attach_integrations(gw, {"NOTIFY_SOCKET": str(short_dir / "notify.sock")})
    try:
        with capture_logs() as logs:
            async with gw:
                await gw.start_session(operator="jdoe", location="DC1/Room 302")
                await gw.sync()
                assert gw.status()["store"]["problem"] is None
                for name in os.listdir(tmp_path):
                    if name.startswith("gateway.duckdb"):
                        (tmp_path / name).unlink()  # the file and its WAL
                await wait_until(
                    lambda: gw.status()["store"]["problem"] is not None, what="the loss seen"
                )
                status = gw.status()["store"]
                assert "was deleted" in status["problem"]
                # what the operator sees when stopping: a refusal, and the session stays open
                with pytest.raises(SessionError, match=r"stays open.*was deleted"):
                    await gw.stop_session()
                assert gw.session is not None
                await wait_until(lambda: gw.counters.store_write_errors > 0, what="a refused write")
                assert gw.status()["store"]["write_error"]
                metrics = generate_latest(integrations.metrics.registry).decode()
                assert "tagsweep_store_ok 0.0" in metrics
                assert "tagsweep_store_write_errors_total" in metrics
                statuses = []
                while True:
                    try:
                        statuses.append(receiver.recv(4096).decode())
                    except BlockingIOError:
                        break
                assert any("STATUS=STORE FAILING" in s for s in statuses), statuses
                gw.request_stop()
        lost = [e for e in logs if e["event"] == "store_lost"]
        assert len(lost) == 1  # once, not once a flush
        assert lost[0]["log_level"] == "error"
        failed = [e for e in logs if e["event"] == "store_write_failed"]
        assert 1 <= len(failed) <= 2  # once per distinct error, not once a retry
    finally:
        receiver.close()
    # nothing was pretended: no session file for the session that could not close
    assert not list((tmp_path / "sessions").glob("*.parquet"))


async def test_a_replaced_store_refuses_to_start_a_session(tmp_path: Path, short_dir: Path) -> None:
    cfg = make_config(tmp_path, short_dir)
    async with Gateway(cfg, control_socket=False) as gw:
        path = Path(cfg.store.path)
        replacement = tmp_path / "other.duckdb"
        other_store(replacement)
        os.replace(replacement, path)
        with pytest.raises(SessionError, match=r"not started.*was replaced"):
            await gw.start_session(operator="jdoe", location="DC1/Room 302")
        assert gw.session is None
        assert gw.counters.sessions_started == 0
        await asyncio.sleep(0)
