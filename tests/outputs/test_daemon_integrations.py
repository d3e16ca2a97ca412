"""``tagsweep run`` as systemd would start it: a real process with a NOTIFY_SOCKET and a
watchdog, a sim:// reader, MQTT to a real mosquitto, and metrics scraped over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tagsweep.daemon.control import call
from tests.conftest import MosquittoBroker, free_port
from tests.outputs.conftest import Subscriber, subscribed
from tests.outputs.test_metrics import PROMTOOL, http, sample
from tests.outputs.test_notify import NotifySocket

TAGSWEEP = str(Path(sys.executable).parent / "tagsweep")


@contextlib.asynccontextmanager
async def daemon(config: Path, env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        TAGSWEEP,
        "run",
        "--config",
        str(config),
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_daemon_notifies_ready_and_watchdog_publishes_and_serves_metrics(
    tmp_path: Path, short_dir: Path, mosquitto: MosquittoBroker
) -> None:
    metrics_port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"""
[gateway]
id = "gw-test"
site = "DC1"

[logging]
level = "info"
json = true

[store]
path = "{tmp_path / "gateway.duckdb"}"
session_dir = "{tmp_path / "sessions"}"

[dedup]
window_s = 0.3
flush_interval_s = 0.05

[[readers]]
name = "hh1"
url = "sim://hh?tags=30&rate=3000&interval=0.05&seed=3"

[[locations]]
path = "DC1/Room 302"

[mqtt]
enabled = true
host = "{mosquitto.host}"
port = {mosquitto.port}

[metrics]
enabled = true
listen = "127.0.0.1:{metrics_port}"

[control]
socket = "{short_dir / "control.sock"}"
"""
    )
    notify = NotifySocket(str(short_dir / "notify"))
    env = {"NOTIFY_SOCKET": str(short_dir / "notify"), "WATCHDOG_USEC": "400000"}
    try:
        async with (
            subscribed(mosquitto, identifier="ops") as sub,
            daemon(config, env) as proc,
        ):
            ready = await notify.wait("READY", timeout=30)
            assert ready["READY"] == "1"
            assert ready["MAINPID"] == str(proc.pid)
            assert "devices configured" in ready["STATUS"]
            ping = await notify.wait("WATCHDOG", timeout=5)
            assert ping["WATCHDOG"] == "1"
            # a second ping proves it repeats (interval: half of WATCHDOG_USEC)
            assert (await notify.wait("WATCHDOG", timeout=2))["WATCHDOG"] == "1"

            await sub.wait_for(lambda: bool(sub.of_kind("sighting_opened")), 20)
            await asyncio.to_thread(
                call,
                short_dir / "control.sock",
                "session.start",
                {"operator": "jdoe", "location": "DC1/Room 302"},
            )
            await sub.wait_for(lambda: bool(sub.of_kind("session_started")), 10)
            text = await _scrape_until(metrics_port, lambda t: "tagsweep_session_open 1" in t)
            lint = await asyncio.to_thread(
                subprocess.run,
                [PROMTOOL, "check", "metrics"],
                input=text,
                capture_output=True,
                text=True,
                check=False,
            )
            assert lint.returncode == 0, lint.stdout + lint.stderr
            assert sample(text, "tagsweep_reader_reads_total", reader="hh1") > 0
            assert sample(text, "tagsweep_reader_sightings_total", reader="hh1") > 0
            assert sample(text, "tagsweep_reader_state", reader="hh1", state="inventorying") == 1
            assert sample(text, "tagsweep_mqtt_connected") == 1
            assert sample(text, "tagsweep_dedup_batch_duration_seconds_count") > 0
            assert sample(text, "tagsweep_store_write_duration_seconds_count") > 0
            assert sample(text, "tagsweep_mqtt_published_events_total") > 0

            status = await notify.wait("STATUS", timeout=8)
            assert "reads/s" in status["STATUS"]
            assert "hh1 inventorying" in status["STATUS"]

            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                output, _ = await proc.communicate()
            assert proc.returncode == 0, output.decode()[-3000:]
            stopping = await notify.wait("STOPPING", timeout=5)
            assert stopping["STOPPING"] == "1"
            await sub.wait_for(
                lambda: [m.body["state"] for m in sub.of_kind("status")][-1:] == ["offline"], 10
            )
    finally:
        notify.sock.close()

    _check_payloads(sub)
    logs = output.decode()
    assert '"event": "gateway_ready"' in logs
    assert "metrics_listening" in logs


def _check_payloads(sub: Subscriber) -> None:
    opened = sub.of_kind("sighting_opened")[0]
    assert opened.topic == "tagsweep/DC1/gw-test/sighting_opened"
    assert opened.body["schema"] == 1
    assert opened.body["reader"] == "hh1"
    assert len(opened.body["event_id"]) == 24
    assert {"epc", "antenna", "first_seen_us", "peak_rssi", "sighting_id"} <= set(opened.body)
    started = sub.of_kind("session_started")[0]
    assert started.body["operator"] == "jdoe"
    assert started.body["location"] == "DC1/Room 302"
    states = [m.body["state"] for m in sub.of_kind("reader_state")]
    assert "inventorying" in states
    status = [m.body["state"] for m in sub.of_kind("status")]
    assert status[0] == "online"
    assert status[-1] == "offline"


async def _scrape_until(port: int, predicate: object, timeout: float = 10.0) -> str:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while True:
        code, _, text = await asyncio.to_thread(http, f"http://127.0.0.1:{port}/metrics")
        assert code == 200
        if predicate(text):
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"metrics never satisfied the condition:\n{text[:2000]}")
        await asyncio.sleep(0.1)
