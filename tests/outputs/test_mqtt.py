"""The MQTT output against a real mosquitto: topics, payloads, status, outage, bounds."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from pathlib import Path

import duckdb
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from tagsweep.config.schema import MqttSection
from tagsweep.daemon.events import SCHEMA_VERSION, EventKind, GatewayEvent
from tagsweep.daemon.metrics import GatewayMetrics
from tagsweep.daemon.mqtt.outbox import Outbox
from tagsweep.daemon.mqtt.publisher import MqttPublisher
from tagsweep.daemon.mqtt.topics import event_topic
from tagsweep.drivers.base import Backoff
from tests.conftest import MosquittoBroker, eventually
from tests.outputs.conftest import running, subscribed

SITE, GATEWAY = "DC1", "gw-01"
FAST = Backoff(initial_s=0.05, cap_s=0.3)


def mqtt_section(broker: MosquittoBroker, **overrides: object) -> MqttSection:
    return MqttSection.model_validate(
        {"enabled": True, "host": broker.host, "port": broker.port, **overrides}
    )


def sighting(n: int, reader: str = "hh1") -> GatewayEvent:
    return GatewayEvent(
        EventKind.SIGHTING_OPENED,
        {"n": n, "reader": reader, "antenna": 1, "epc": f"E280{n:020X}"},
        ts_us=1_700_000_000_000_000 + n,
    )


def unsent_in_file(path: Path) -> int:
    with duckdb.connect(str(path)) as db:
        row = db.execute("SELECT count(*) FROM mqtt_outbox WHERE sent_us IS NULL").fetchone()
    assert row is not None
    return int(row[0])


async def test_events_arrive_on_their_topics_with_versioned_payloads(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    metrics = GatewayMetrics(gateway=GATEWAY, site=SITE, process=False)
    outbox = Outbox(tmp_path / "gw.duckdb", site=SITE, gateway=GATEWAY, metrics=metrics)
    publisher = MqttPublisher(
        outbox, mqtt_section(mosquitto), site=SITE, gateway=GATEWAY, metrics=metrics, backoff=FAST
    )
    events = [
        sighting(1),
        GatewayEvent(
            EventKind.PORTAL_PASS, {"epc": "E2801160", "direction": "in", "zone": "DC1/Door 3"}
        ),
        GatewayEvent(
            EventKind.SESSION_STARTED,
            {"session_id": "s-1", "location": "DC1/Room 302", "operator": "jdoe"},
        ),
    ]
    async with subscribed(mosquitto) as sub, running(publisher.run(), "mqtt-publisher") as task:
        await outbox.emit(events)
        await sub.wait_for(lambda: len(sub.messages) >= 4)  # 3 events + status
        publisher.stop()
        await asyncio.wait_for(task, 5)
        await sub.wait_for(lambda: len(sub.of_kind("status")) >= 2)

    by_kind = {m.body["kind"]: m for m in sub.messages if m.body["kind"] != "status"}
    assert set(by_kind) == {"sighting_opened", "portal_pass", "session_started"}
    for event in events:
        got = by_kind[event.kind.value]
        assert got.topic == f"tagsweep/{SITE}/{GATEWAY}/{event.kind.value}"
        assert got.body["schema"] == SCHEMA_VERSION
        assert got.body["event_id"] == event.event_id
        assert got.body["ts_us"] == event.ts_us
        assert got.body["gateway"] == GATEWAY
        assert got.body["site"] == SITE
        for key, value in event.payload.items():
            assert got.body[key] == value
    status = sub.of_kind("status")
    assert [s.body["state"] for s in status] == ["online", "offline"]
    assert all(s.topic == f"tagsweep/{SITE}/{GATEWAY}/status" for s in status)
    # every event was acknowledged, so nothing is left to send, in memory or on disk
    assert outbox.depth == 0
    assert outbox.oldest_age_s() == 0.0
    outbox.close()
    assert unsent_in_file(tmp_path / "gw.duckdb") == 0
    assert metrics.mqtt_published._value.get() == 3
    assert metrics.mqtt_publish_latency._sum.get() > 0


async def test_status_is_retained_and_last_will_says_offline(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "gw.duckdb", site=SITE, gateway=GATEWAY)
    publisher = MqttPublisher(
        outbox, mqtt_section(mosquitto, keepalive_s=5), site=SITE, gateway=GATEWAY, backoff=FAST
    )
    topic = event_topic("tagsweep", SITE, GATEWAY, "status")
    async with running(publisher.run(), "mqtt-publisher"):
        async with asyncio.timeout(5):
            await publisher.connected.wait()
        # a consumer arriving later still learns the gateway is online (retained)
        async with subscribed(mosquitto, topic_filter=topic, identifier="late") as late:
            await late.wait_for(lambda: bool(late.messages))
        assert late.messages[0].retain
        assert late.messages[0].body["state"] == "online"

        async with subscribed(mosquitto, topic_filter=topic, identifier="watcher") as watcher:
            await watcher.wait_for(lambda: bool(watcher.messages))
            # The gateway vanishes without a DISCONNECT (power cut, kill -9): simulate by
            # shutting its socket; the broker then publishes the last will.
            client_sockets = _paho_sockets(publisher)
            assert client_sockets, "publisher should hold a broker connection"
            for sock in client_sockets:
                sock.shutdown(socket.SHUT_RDWR)
            await watcher.wait_for(
                lambda: any(m.body["state"] == "offline" for m in watcher.messages)
            )
    assert outbox.depth == 0
    outbox.close()


def _paho_sockets(publisher: MqttPublisher) -> list[socket.socket]:
    """The live socket of the publisher's broker connection (test-only introspection)."""
    client = publisher.current_client
    assert client is not None
    sock = client._client.socket()
    return [sock] if isinstance(sock, socket.socket) else []


async def test_broker_outage_under_load_loses_nothing_and_keeps_order(
    durable_broker: MosquittoBroker, tmp_path: Path
) -> None:
    metrics = GatewayMetrics(gateway=GATEWAY, site=SITE, process=False)
    outbox = Outbox(tmp_path / "gw.duckdb", site=SITE, gateway=GATEWAY, metrics=metrics)
    metrics.watch_outbox(outbox)
    publisher = MqttPublisher(
        outbox,
        mqtt_section(durable_broker),
        site=SITE,
        gateway=GATEWAY,
        metrics=metrics,
        backoff=FAST,
        housekeeping_s=0.1,
    )
    total, per_batch, interval = 6000, 20, 0.01  # ~2000 events/s for ~3 s
    depth_during_outage: list[int] = []

    async def produce() -> None:
        n = 0
        while n < total:
            await outbox.emit([sighting(i) for i in range(n, n + per_batch)])
            n += per_batch
            await asyncio.sleep(interval)

    async def outage() -> None:
        # states, not wall-clock windows: the broker goes down once events flow, and comes
        # back once the publisher has noticed and the outbox has grown meanwhile
        await eventually(lambda: len(sub.messages) >= 200, "events flowing")
        await asyncio.to_thread(durable_broker.stop)
        await eventually(
            lambda: "outbox_growing_broker_unreachable" in [e["event"] for e in logs],
            "the publisher noticing the outage",
        )
        await eventually(lambda: outbox.depth >= 200, "the outbox growing during the outage")
        depth_during_outage.append(outbox.depth)
        await asyncio.to_thread(durable_broker.start)

    with capture_logs() as logs:
        async with (
            subscribed(durable_broker, topic_filter="tagsweep/+/+/sighting_opened") as sub,
            running(publisher.run(), "mqtt-publisher"),
        ):
            async with asyncio.TaskGroup() as tg:
                tg.create_task(produce(), name="producer")
                tg.create_task(outage(), name="outage")
            await sub.wait_for(lambda: len({m.body["n"] for m in sub.messages}) >= total, 20)
            await _until(lambda: outbox.depth == 0)

    seen: dict[int, int] = {}
    for position, message in enumerate(sub.messages):
        seen.setdefault(message.body["n"], position)
    assert sorted(seen) == list(range(total)), "every event arrives"
    first_order = sorted(seen, key=seen.__getitem__)
    assert first_order == list(range(total)), "first deliveries keep the emit order"
    ids = {m.body["n"]: m.body["event_id"] for m in sub.messages}
    assert all(ids[n] == sighting(n).event_id for n in range(total)), "ids are stable"
    assert depth_during_outage[0] > 0, "the outbox kept accepting while the broker was down"
    assert metrics.mqtt_reconnects._value.get() >= 1
    events = [entry["event"] for entry in logs]
    assert "mqtt_disconnected" in events
    assert "outbox_growing_broker_unreachable" in events
    outbox.close()
    assert unsent_in_file(tmp_path / "gw.duckdb") == 0


async def _until(predicate: object, timeout: float = 10.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_unsent_events_survive_a_restart_and_go_out_in_order(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    path = tmp_path / "gw.duckdb"
    # The broker is unreachable while the first daemon runs: everything stays queued.
    mosquitto.stop()
    first = Outbox(path, site=SITE, gateway=GATEWAY)
    await first.emit([sighting(i) for i in range(50)])
    await first.emit([sighting(i) for i in range(50, 120)])
    assert first.depth == 120
    first.close()
    assert unsent_in_file(path) == 120

    mosquitto.start()
    db = duckdb.connect(str(path))  # the store's connection; the outbox shares the file
    second = Outbox(db, site=SITE, gateway=GATEWAY)
    assert second.depth == 120
    assert second.oldest_age_s() > 0
    publisher = MqttPublisher(second, mqtt_section(mosquitto), site=SITE, gateway=GATEWAY)
    async with (
        subscribed(mosquitto, topic_filter="tagsweep/+/+/sighting_opened") as sub,
        running(publisher.run(), "mqtt-publisher"),
    ):
        await sub.wait_for(lambda: len(sub.messages) >= 120)
        await _until(lambda: second.depth == 0)
    assert [m.body["n"] for m in sub.messages] == list(range(120))
    # new events continue the sequence after the backlog
    await second.emit([sighting(999)])
    row = db.execute("SELECT max(seq), count(*) FROM mqtt_outbox").fetchone()
    assert row == (121, 121)
    second.close()
    db.close()


async def test_concurrent_emits_commit_together_in_arrival_order(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "gw.duckdb", site=SITE, gateway=GATEWAY)
    await asyncio.gather(*(outbox.emit([sighting(2 * i), sighting(2 * i + 1)]) for i in range(40)))
    assert outbox.depth == 80
    assert outbox.commits < 40, "emits waiting for a commit are grouped into the next one"
    rows = await outbox.fetch(after=0, limit=1000)
    assert [r.seq for r in rows] == list(range(1, 81))
    assert [json.loads(r.payload)["n"] for r in rows] == list(range(80))
    outbox.close()


async def test_outbox_is_bounded_and_says_so(tmp_path: Path) -> None:
    metrics = GatewayMetrics(gateway=GATEWAY, site=SITE, process=False)
    outbox = Outbox(
        tmp_path / "gw.duckdb", site=SITE, gateway=GATEWAY, max_rows=10, metrics=metrics
    )
    with capture_logs() as logs:
        for start in range(0, 25, 5):
            await outbox.emit([sighting(i) for i in range(start, start + 5)])
    assert outbox.depth == 10
    rows = await outbox.fetch(after=0, limit=100)
    assert [json.loads(r.payload)["n"] for r in rows] == list(range(15, 25)), "newest kept"
    assert metrics.mqtt_outbox_dropped.labels(reason="max_rows")._value.get() == 15
    warnings = [e for e in logs if e["event"] == "outbox_full_dropping_oldest"]
    assert warnings
    assert warnings[0]["log_level"] == "warning"

    # retention: unsent events older than the retention are dropped by housekeeping
    outbox.retention_s = 0.05
    outbox.max_rows = 100
    await asyncio.sleep(0.1)
    await outbox.emit([sighting(100)])
    await outbox.housekeeping()
    assert outbox.depth == 1
    assert metrics.mqtt_outbox_dropped.labels(reason="retention")._value.get() == 10
    outbox.close()


@pytest.fixture
def password_broker(tmp_path: Path) -> MosquittoBroker:
    """A broker that only lets in user ``gw`` with a password (mosquitto_passwd file)."""
    import subprocess

    pwfile = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(pwfile), "gw", "s3cr3t-Pa55"],
        check=True,
        capture_output=True,
    )
    pwfile.chmod(0o600)
    broker = MosquittoBroker(tmp_path)
    broker.conf.write_text(
        f"listener {broker.port} {broker.host}\n"
        # a root test run must not drop to "mosquitto": it could not read tmp_path
        "user root\n"
        "allow_anonymous false\n"
        f"password_file {pwfile}\n"
        "persistence false\n"
        "log_dest stderr\n"
    )
    return broker


async def test_username_password_authenticate_and_the_password_is_never_logged(
    password_broker: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    password_broker.start()
    try:
        secret = "s3cr3t-Pa55"
        caplog.set_level(logging.DEBUG)
        with capture_logs() as logs:
            wrong = MqttPublisher(
                Outbox(tmp_path / "a.duckdb", site=SITE, gateway=GATEWAY),
                mqtt_section(password_broker, username="gw", password=SecretStr("nope-" + secret)),
                site=SITE,
                gateway=GATEWAY,
                backoff=FAST,
            )
            async with running(wrong.run(), "mqtt-wrong"):
                await _until(lambda: any(e["event"] == "mqtt_disconnected" for e in logs))
                assert not wrong.connected.is_set()
            wrong.outbox.close()

            outbox = Outbox(tmp_path / "b.duckdb", site=SITE, gateway=GATEWAY)
            right = MqttPublisher(
                outbox,
                mqtt_section(password_broker, username="gw", password=SecretStr(secret)),
                site=SITE,
                gateway=GATEWAY,
                backoff=FAST,
            )
            async with running(right.run(), "mqtt-right"):
                await outbox.emit([sighting(1)])
                await _until(lambda: outbox.depth == 0)
            outbox.close()
    finally:
        password_broker.stop()
    assert any(e["event"] == "mqtt_connected" for e in logs)
    assert any(e.get("username") == "gw" for e in logs)
    everything = repr(logs) + caplog.text + (password_broker.workdir / "mosquitto.log").read_text()
    assert secret not in everything
    assert "nope-" not in everything
