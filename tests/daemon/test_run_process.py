"""``tagsweep run`` as a real process: CLI commands, kill -9 mid-session, restart, SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from .harness import CLI, Daemon, config_data, write_toml


@pytest.fixture
def daemon(tmp_path: Path, short_dir: Path) -> Iterator[Daemon]:
    data = config_data(
        tmp_path,
        short_dir,
        readers=[
            {"name": "hh1", "url": "sim://hh?tags=30&rate=3000&seed=9", "role": "handheld"},
        ],
    )
    d = Daemon(write_toml(tmp_path / "gw.toml", data), short_dir / "control.sock", tmp_path / "log")
    try:
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args, "--socket", str(daemon.socket)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_kill_9_mid_session_then_restart_and_close(daemon: Daemon, tmp_path: Path) -> None:
    daemon.start()
    started = cli(daemon, "session", "start", "--operator", "jdoe", "--location", "DC1/Room 302")
    assert started.returncode == 0, started.stderr
    assert "started cs-" in started.stdout
    session_id = started.stdout.split()[1]
    bad = cli(daemon, "session", "start", "--operator", "x", "--location", "DC1/Room 302")
    assert bad.returncode == 1
    assert "already open" in bad.stderr
    moved = cli(daemon, "session", "location", "DC1/Room 302/Rack A04")
    assert moved.returncode == 0, moved.stderr
    status = daemon.wait_for(
        lambda s: s["store"]["committed_sightings"] >= 30 and s["store"]["committed_reads"] > 3000,
        "sightings committed",
    )
    committed_closed = status["store"]["committed_closed_sightings"]
    committed_reads = status["store"]["committed_reads"]

    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL

    with duckdb.connect(str(tmp_path / "gateway.duckdb")) as con:
        closed_rows = con.execute("SELECT count(*) FROM sightings").fetchall()[0][0]
        reads_committed = con.execute(
            "SELECT sum(read_count) FROM (SELECT * FROM sightings UNION ALL "
            "SELECT * FROM open_sightings)"
        ).fetchall()[0][0]
        sessions = con.execute("SELECT session_id, state FROM sessions").fetchall()
    assert closed_rows >= committed_closed  # nothing committed was lost
    assert reads_committed >= committed_reads
    assert sessions == [(session_id, "open")]

    daemon.start()  # the socket file of the killed daemon is stale: replaced
    resumed = daemon.status()["session"]
    assert resumed["session_id"] == session_id
    assert resumed["location"] == "DC1/Room 302/Rack A04"
    stopped = cli(daemon, "session", "stop", "--json")
    assert stopped.returncode == 0, stopped.stderr
    closed = json.loads(stopped.stdout)
    rows = pq.read_table(closed["parquet"]).to_pylist()
    assert len(rows) == 30
    # Reads committed before the crash are all counted in the session file.
    assert sum(r["read_count"] for r in rows) >= reads_committed

    assert daemon.stop(signal.SIGTERM) == 0
    with duckdb.connect(str(tmp_path / "gateway.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM open_sightings").fetchall()[0][0] == 0
        assert con.execute("SELECT state FROM sessions").fetchall() == [("closed",)]
    log = daemon.log.read_text()
    assert "recovered_open_sightings" in log
    assert "session_resumed" in log
    assert '"gateway_stopped"' in log


def test_status_and_errors_from_the_cli(daemon: Daemon) -> None:
    daemon.start()
    status = cli(daemon, "status")
    assert status.returncode == 0, status.stderr
    assert "gateway gw-test at site DC1" in status.stdout
    assert "hh1" in status.stdout
    assert "no count session open" in status.stdout
    stop = cli(daemon, "session", "stop")
    assert stop.returncode == 1
    assert "no count session is open" in stop.stderr
    assert daemon.stop() == 0
    gone = cli(daemon, "status")
    assert gone.returncode == 1
    assert "is `tagsweep run` running" in gone.stderr
