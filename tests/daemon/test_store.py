"""The DuckDB store on a real file: batched writes, recovery of open sightings, retention."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tagsweep.daemon.dedup.deduplicator import Deduplicator
from tagsweep.daemon.store import ScanRecord, Store, WriteBatch
from tagsweep.domain import empty_reads


def _reads(n: int, t0: int) -> np.ndarray:
    reads = empty_reads(n)
    reads["epc"] = [f"E2{i % 7:022X}".encode() for i in range(n)]
    reads["reader"] = np.arange(n) % 2
    reads["antenna"] = 1
    reads["first_seen_us"] = t0 + np.arange(n) * 1000
    reads["last_seen_us"] = reads["first_seen_us"]
    reads["rssi"] = -60.0
    return reads


def test_write_recover_and_continue_ids(tmp_path: Path) -> None:
    path = tmp_path / "gw.duckdb"
    store = Store(path, reader_names=["hh1", "hh2"], keep_raw_reads=True)
    dedup = Deduplicator(2_000_000)
    first = dedup.process(_reads(100, 0))
    assert len(first.closed) == 0
    rows, ids = dedup.open_sightings()
    store.write(
        WriteBatch(
            open_snapshot=(rows, ids),
            reads=[_reads(100, 0)],
            scans=[ScanRecord(5, "sc1", "asset_tag", "AST-1", "AST-1", "code-128", None, None)],
            contexts=[("cs-1", 0, "DC1/Room 302", "start")],
            reader_status=[(1, "hh1", "inventorying", "")],
        )
    )
    later = dedup.process(_reads(10, 10_000_000))  # a gap: the first sightings close
    store.write(
        WriteBatch(closed=[(later.closed, later.closed_ids)], open_snapshot=dedup.open_sightings())
    )
    assert store.committed_closed == 10  # the keys read again after the gap
    assert store.committed_reads == 110
    store.close()

    reopened = Store(path, reader_names=["hh1", "hh2"])
    counts = reopened.counts()
    assert counts == {"sightings": 10, "open_sightings": 14, "scans": 1, "sessions": 0}
    recovery = reopened.recover()
    assert recovery.open_sightings_closed == 14
    assert recovery.next_sighting_id == dedup.next_sighting_id
    assert reopened.counts()["sightings"] == 24
    total = reopened.query("SELECT sum(read_count), count(DISTINCT reader) FROM sightings")
    assert total == [(110, 2)]
    assert reopened.contexts("cs-1") == [(0, "DC1/Room 302", "start")]
    reopened.close()


def test_raw_reads_are_pruned_after_their_retention(tmp_path: Path) -> None:
    store = Store(tmp_path / "gw.duckdb", keep_raw_reads=True, raw_read_retention_s=10.0)
    now = 100_000_000
    store.write(WriteBatch(reads=[_reads(5, now - 20_000_000), _reads(3, now - 1_000_000)]))
    assert store.query("SELECT count(*) FROM reads") == [(8,)]
    assert store.prune_raw_reads(now) == 5
    assert store.query("SELECT count(*) FROM reads") == [(3,)]
    store.close()
    kept_off = Store(tmp_path / "other.duckdb")
    kept_off.write(WriteBatch(reads=[_reads(5, now)]))
    assert kept_off.query("SELECT count(*) FROM reads") == [(0,)]
    assert kept_off.prune_raw_reads(now) == 0
    kept_off.close()


async def test_gateway_finishes_closing_a_session_cut_by_a_crash(tmp_path: Path) -> None:
    """A crash between `session stop` and the written file: the restart redoes the close."""
    import json
    import shutil
    import tempfile

    import pyarrow.parquet as pq

    from tagsweep.daemon.supervisor import Gateway

    from .harness import make_config

    sock_dir = Path(tempfile.mkdtemp(prefix="ts-", dir="/tmp"))
    try:
        cfg = make_config(tmp_path, sock_dir)
        store = Store(cfg.store.path, reader_names=["hh1"])
        store.insert_session("cs-crashed", "DC1", "jdoe", ["DC1/Room 302"], 1_000)
        store.set_session_state("cs-crashed", "stopping", ended_us=90_000_000)
        dedup = Deduplicator(2_000_000)
        result = dedup.process(_reads(50, 2_000))
        store.write(
            WriteBatch(
                closed=[(result.closed, result.closed_ids)],
                open_snapshot=dedup.open_sightings(),
                contexts=[("cs-crashed", 1_000, "DC1/Room 302/Rack A04", "start")],
            )
        )
        store.close()
        async with Gateway(cfg, control_socket=False) as gw:
            assert gw.session is None  # nothing left open: the stopping one was closed
            rows = await gw.sessions("cs-crashed")
        assert rows[0]["state"] == "closed"
        manifest = json.loads((cfg.store.session_dir / "cs-crashed.json").read_text())
        table = pq.read_table(cfg.store.session_dir / "cs-crashed.parquet")
        assert manifest["row_count"] == table.num_rows == 7
        assert set(table.column("location").to_pylist()) == {"DC1/Room 302/Rack A04"}
        assert sum(table.column("read_count").to_pylist()) == 50
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_store_of_the_first_schema_gains_the_expected_register_column(tmp_path: Path) -> None:
    """A store written before sessions kept their expected register still opens: its
    sessions read back with no register, and new ones keep theirs."""
    import duckdb

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE sessions (session_id VARCHAR PRIMARY KEY, site VARCHAR NOT NULL, "
        "operator VARCHAR NOT NULL, scope VARCHAR NOT NULL, started_us BIGINT NOT NULL, "
        "ended_us BIGINT, state VARCHAR NOT NULL, file VARCHAR, sha256 VARCHAR, "
        "row_count BIGINT)"
    )
    con.execute(
        "INSERT INTO sessions VALUES ('cs-old', 'DC1', 'jdoe', '[\"DC1/Room 302\"]', 1000, "
        "NULL, 'open', NULL, NULL, NULL)"
    )
    con.close()
    store = Store(path)
    store.insert_session("cs-new", "DC1", "jdoe", ["DC1/Room 302"], 2_000, expected="/r.csv")
    rows = {r["session_id"]: r for r in store.session_rows()}
    assert rows["cs-old"]["expected"] is None
    assert rows["cs-old"]["scope"] == ["DC1/Room 302"]
    assert rows["cs-new"]["expected"] == "/r.csv"
    store.close()
    reopened = Store(path)  # the migration is a no-op on a current store
    assert reopened.query("SELECT value FROM store_meta WHERE key = 'schema_version'") == [("2",)]
    assert len(reopened.session_rows()) == 2
    reopened.close()
