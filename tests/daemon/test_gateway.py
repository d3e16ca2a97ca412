"""The gateway in-process with the sim:// driver: reads → DuckDB → closed-session Parquet."""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from tagsweep.daemon.sessions import SESSION_FILE_SCHEMA, SessionError
from tagsweep.daemon.supervisor import Gateway
from tagsweep.domain import SESSION_FILE_COLUMNS, SESSION_MANIFEST_KEYS

from .harness import EventList, make_config, wait_until

READS = 3000


async def test_session_end_to_end_with_sim_reader(tmp_path: Path, short_dir: Path) -> None:
    cfg = make_config(
        tmp_path,
        short_dir,
        readers=[
            {
                "name": "hh1",
                "url": f"sim://hh?tags=25&rate=6000&antennas=1,2&seed=4&limit={READS}",
                "role": "handheld",
            }
        ],
    )
    sink = EventList()
    async with Gateway(cfg, sinks=[sink], control_socket=False) as gw:
        session = await gw.start_session(operator="jdoe", location="DC1/Room 302")
        with pytest.raises(SessionError, match="already open"):
            await gw.start_session(operator="other", location="DC1/Room 302")
        await wait_until(lambda: gw.counters.reads >= READS // 2, what="half the reads")
        await gw.set_location("DC1/Room 302/Rack A04")
        await wait_until(lambda: gw.counters.reads >= READS, what="all reads")
        closed = await gw.stop_session()
        assert gw.session is None
        with pytest.raises(SessionError, match="no count session is open"):
            await gw.stop_session()
        status = gw.status()

    assert status["devices"][0]["reads"] == READS
    table = pq.read_table(closed.parquet)
    assert table.schema.names == list(SESSION_FILE_COLUMNS)
    assert table.schema.equals(SESSION_FILE_SCHEMA)
    rows = table.to_pylist()
    # Every read is accounted for, in one observation per EPC.
    assert sum(r["read_count"] for r in rows) == READS
    assert len({r["epc"] for r in rows}) == len(rows) == 25
    assert {r["method"] for r in rows} == {"rfid"}
    assert {r["location"] for r in rows} <= {"DC1/Room 302", "DC1/Room 302/Rack A04"}
    assert {r["session_id"] for r in rows} == {session.session_id}
    assert {r["operator"] for r in rows} == {"jdoe"}
    assert {r["reader"] for r in rows} == {"hh1"}
    # The manifest names the file by its checksum; the file is read-only.
    manifest = json.loads(closed.manifest.read_text())
    assert tuple(manifest)[: len(SESSION_MANIFEST_KEYS)] == SESSION_MANIFEST_KEYS
    assert manifest["signature"]["algorithm"] == "ed25519"
    assert manifest["sha256"] == hashlib.sha256(closed.parquet.read_bytes()).hexdigest()
    assert manifest["row_count"] == 25
    assert manifest["scope"] == ["DC1/Room 302"]
    assert manifest["gateway"] == "gw-test"
    assert stat.S_IMODE(closed.parquet.stat().st_mode) == 0o444
    # Events in order of the session's life.
    kinds = sink.kinds()
    assert kinds.index("session_started") < kinds.index("location_context")
    assert kinds.index("location_context") < kinds.index("session_closed")
    assert "sighting_opened" in kinds
    assert kinds.count("sighting_closed") == kinds.count("sighting_opened")
    # The store holds the same sightings and the closed session.
    with duckdb.connect(str(cfg.store.path), read_only=True) as con:
        total = con.execute("SELECT sum(read_count) FROM sightings").fetchall()[0][0]
        assert total == READS
        assert con.execute("SELECT count(*) FROM open_sightings").fetchall()[0][0] == 0
        state = con.execute("SELECT state, row_count FROM sessions").fetchall()
        assert state == [("closed", 25)]


async def test_bad_session_commands_are_refused_and_gateway_keeps_running(
    tmp_path: Path, short_dir: Path
) -> None:
    cfg = make_config(
        tmp_path,
        short_dir,
        readers=[{"name": "hh1", "url": "sim://hh?tags=5&rate=500&seed=1", "role": "handheld"}],
    )
    async with Gateway(cfg, control_socket=False) as gw:
        with pytest.raises(SessionError, match="no count session"):
            await gw.set_location("DC1/Room 302")
        with pytest.raises(SessionError, match="operator is required"):
            await gw.start_session(operator=" ", location="DC1/Room 302")
        with pytest.raises(SessionError, match="not at site"):
            await gw.start_session(operator="jdoe", location="DC2/Room 1")
        with pytest.raises(SessionError, match="location must be"):
            await gw.start_session(operator="jdoe", location="DC1//Rack")
        session = await gw.start_session(operator="jdoe", location="DC1/Room 302")
        with pytest.raises(SessionError, match="unknown session"):
            await gw.stop_session("cs-nope")
        with pytest.raises(SessionError, match="unknown session"):
            await gw.sessions("cs-nope")
        await wait_until(lambda: gw.counters.reads > 100, what="reads")
        live = await gw.observations()  # what the file would hold right now
        assert live.num_rows == 5
        assert set(live.column("location").to_pylist()) == {"DC1/Room 302"}
        closed = await gw.stop_session(session.session_id)
        assert closed.row_count == 5
        with pytest.raises(SessionError, match="no count session"):
            await gw.observations()


async def test_hook_points_for_outputs(tmp_path: Path, short_dir: Path) -> None:
    """What the MQTT outbox, metrics and sd_notify attach to: sinks, services, ready, timings."""
    cfg = make_config(
        tmp_path,
        short_dir,
        readers=[{"name": "hh1", "url": "sim://hh?tags=5&rate=1000&seed=3", "role": "handheld"}],
    )
    gw = Gateway(cfg, control_socket=False)
    stopped = asyncio.Event()
    calls: list[str] = []

    async def service() -> None:
        calls.append("service started")
        await stopped.wait()
        calls.append("service stopped")

    class FailingSink:
        async def emit(self, events: object) -> None:
            raise RuntimeError("broker down")

    sink = EventList()
    gw.add_sink(FailingSink())  # a failing sink is logged and skipped
    gw.add_sink(sink)
    gw.add_service("outbox-publisher", service, stop=stopped.set)
    gw.on_ready(lambda: calls.append("ready"))
    timings: list[str] = []
    gw.on_timing(lambda what, seconds: timings.append(what))

    async def on_start(gateway: Gateway) -> None:
        # the store is open: build what needs it and register it, as the outbox does
        assert gateway.store is not None
        cursor = gateway.store.connection.cursor()
        cursor.execute("CREATE TABLE IF NOT EXISTS extra_outbox (seq BIGINT)")
        cursor.close()
        gateway.add_service("late-but-allowed", service_two)
        calls.append("start")

    async def service_two() -> None:
        await stopped.wait()

    gw.on_start(on_start)
    async with gw:
        assert gw.store is not None
        # other components open cursors on the store's connection for tables of their own
        cursor = gw.store.connection.cursor()
        assert cursor.execute("SELECT count(*) FROM sessions").fetchall() == [(0,)]
        cursor.close()
        await wait_until(lambda: "sighting_opened" in sink.kinds(), what="sighting events")
        await wait_until(lambda: "store_write" in timings and "dedup" in timings, what="timings")
        # the store's own connection is used on its worker thread (store.call), never
        # from the loop while the writer may be committing on it
        tables = await gw.store.call(
            gw.store.query, "SELECT table_name FROM information_schema.tables"
        )
        assert "extra_outbox" in {row[0] for row in tables}
        with pytest.raises(RuntimeError, match="before the gateway runs"):
            gw.add_service("late", service)
    assert calls[0] == "start"
    assert sorted(calls[1:3]) == ["ready", "service started"]
    assert calls[3] == "service stopped"
    assert gw.counters.sink_errors > 0
    assert "sighting_closed" in sink.kinds()  # shutdown closed the open sightings


async def test_large_batches_are_deduplicated_off_the_event_loop(
    tmp_path: Path, short_dir: Path
) -> None:
    total = 300_000
    cfg = make_config(
        tmp_path,
        short_dir,
        readers=[
            {
                "name": "portal-burst",
                "url": f"sim://b?tags=500&rate=400000&interval=0.25&antennas=1,2&limit={total}",
                "role": "fixed",
                "location": "DC1/Room 302",
            }
        ],
    )
    async with Gateway(cfg, control_socket=False) as gw:
        await wait_until(lambda: gw.counters.reads >= total, what="the burst")
        await gw.sync()
        assert gw.counters.dedup_flushes > 0
    with duckdb.connect(str(cfg.store.path), read_only=True) as con:
        assert con.execute("SELECT sum(read_count) FROM sightings").fetchall() == [(total,)]
        assert con.execute("SELECT count(DISTINCT epc) FROM sightings").fetchall() == [(500,)]


async def test_location_change_closes_open_sightings(tmp_path: Path, short_dir: Path) -> None:
    """A tag read without a break across a location change must not keep one sighting
    that straddles both contexts (it would be attributed by time alone): the change
    closes every open sighting, and the reads after it open new ones."""
    cfg = make_config(
        tmp_path,
        short_dir,
        readers=[{"name": "hh1", "url": "sim://hh?tags=10&rate=4000&seed=9", "role": "handheld"}],
    )
    async with Gateway(cfg, sinks=[], control_socket=False) as gw:
        await gw.start_session(operator="jdoe", location="DC1/Room 302/Rack A01")
        await wait_until(lambda: gw.status()["dedup"]["open_sightings"] > 0, what="open sightings")
        closed_before = gw.counters.sightings_closed
        await gw.set_location("DC1/Room 302/Rack A02")
        # Every sighting open at the change was closed by it (the window is 2 s, so
        # none would have expired on its own in this short time).
        assert gw.counters.sightings_closed - closed_before >= 10
        await wait_until(lambda: gw.status()["dedup"]["open_sightings"] == 10, what="new sightings")
        # Setting the same context again does not split anything.
        closed_mid = gw.counters.sightings_closed
        await gw.set_location("DC1/Room 302/Rack A02")
        assert gw.counters.sightings_closed == closed_mid
        await gw.stop_session()
