"""Prometheus metrics: a real HTTP scrape, linted by ``promtool check metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tagsweep.config.schema import MetricsSection
from tagsweep.daemon.events import EventKind, GatewayEvent
from tagsweep.daemon.metrics import GatewayMetrics, MetricsServer
from tagsweep.daemon.mqtt.outbox import Outbox
from tagsweep.simulators.sim_driver import SimDriver

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def http(url: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


async def scrape(server: MetricsServer, path: str = "/metrics", method: str = "GET") -> str:
    status, _, body = await asyncio.to_thread(http, f"http://127.0.0.1:{server.port}{path}", method)
    assert status == 200, body
    return body


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in the text exposition format."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, rest = series.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric == name and got == want:
            return float(value)
    raise AssertionError(f"no sample {name}{{{want}}} in scrape")


async def test_scrape_has_reader_outbox_session_metrics_and_passes_promtool(
    tmp_path: Path,
) -> None:
    metrics = GatewayMetrics(gateway="gw-01", site="DC1")
    reader = SimDriver("sim://random?tags=20&rate=20000&interval=0.01&limit=400", name="hh1")
    metrics.watch_reader(reader)
    outbox = Outbox(tmp_path / "gw.duckdb", site="DC1", gateway="gw-01", metrics=metrics)
    metrics.watch_outbox(outbox)

    stream = reader.events()
    assert isinstance(stream, AsyncGenerator)
    async with contextlib.aclosing(stream) as events:
        async for _ in events:
            if reader.counters.reads >= 400:
                break
    reader.counters.clock_offset_s = 788_918_400.5  # as the LLRP driver sets it
    metrics.reads_outside_session = {"no_session": 3, "stamped_before_session": 7}
    await metrics.emit(
        [
            GatewayEvent(EventKind.SIGHTING_OPENED, {"reader": "hh1", "epc": "E2"}),
            GatewayEvent(EventKind.SIGHTING_OPENED, {"reader": "hh1", "epc": "E3"}),
            GatewayEvent(
                EventKind.SESSION_STARTED,
                {"session_id": "s-42", "location": "DC1/Room 302", "operator": "jdoe"},
            ),
        ]
    )
    await outbox.emit([GatewayEvent(EventKind.ARRIVE, {"epc": "E2", "location": "DC1"})])
    metrics.dedup_batch_duration.observe(0.002)
    metrics.store_write_duration.observe(0.004)

    async with MetricsServer(metrics.registry, "127.0.0.1:0") as server:
        text = await scrape(server)
        lint = await asyncio.to_thread(
            subprocess.run,
            [PROMTOOL, "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            check=False,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
        assert lint.stdout.strip() == "", f"promtool lint findings: {lint.stdout}"

        assert sample(text, "tagsweep_reader_reads_total", reader="hh1") == 400
        assert sample(text, "tagsweep_reader_sightings_total", reader="hh1") == 2
        assert sample(text, "tagsweep_reader_state", reader="hh1", state="inventorying") == 1
        assert sample(text, "tagsweep_reader_state", reader="hh1", state="down") == 0
        assert sample(text, "tagsweep_reader_reconnects_total", reader="hh1") == 0
        assert sample(text, "tagsweep_reader_decode_errors_total", reader="hh1") == 0
        assert sample(text, "tagsweep_reader_skipped_parameters_total", reader="hh1") == 0
        assert sample(text, "tagsweep_reader_clock_offset_seconds", reader="hh1") == 788_918_400.5
        outside = "tagsweep_reads_outside_session_total"
        assert sample(text, outside, reason="stamped_before_session") == 7
        assert sample(text, "tagsweep_mqtt_outbox_events") == 1
        assert sample(text, "tagsweep_mqtt_outbox_oldest_age_seconds") > 0
        assert sample(text, "tagsweep_dedup_batch_duration_seconds_count") == 1
        assert sample(text, "tagsweep_store_write_duration_seconds_count") == 1
        assert sample(text, "tagsweep_mqtt_publish_latency_seconds_count") == 0
        assert sample(text, "tagsweep_session_open") == 1
        info = {"session": "s-42", "site": "DC1", "location": "DC1/Room 302", "operator": "jdoe"}
        assert sample(text, "tagsweep_session_info", **info) == 1
        assert sample(text, "tagsweep_gateway_info", gateway="gw-01", site="DC1", version="0.1.0")
        assert "process_resident_memory_bytes" in text

        # the session closes: info disappears, the closed counter moves
        await metrics.emit([GatewayEvent(EventKind.SESSION_STOPPED, {"session_id": "s-42"})])
        text = await scrape(server)
        assert sample(text, "tagsweep_session_open") == 0
        assert "tagsweep_session_info{" not in text
        assert sample(text, "tagsweep_sessions_closed_total") == 1

        # OpenMetrics for a Prometheus that asks for it
        status, headers, body = await asyncio.to_thread(
            _get_openmetrics, f"http://127.0.0.1:{server.port}/metrics"
        )
        assert status == 200
        assert headers["Content-Type"].startswith("application/openmetrics-text")
        assert body.rstrip().endswith("# EOF")
    outbox.close()


def _get_openmetrics(url: str) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, dict(response.headers), response.read().decode()


async def test_server_listens_on_localhost_by_default_and_only_serves_metrics() -> None:
    assert MetricsSection().listen.startswith("127.0.0.1:")
    metrics = GatewayMetrics(gateway="gw-01", site="DC1", process=False)
    server = MetricsServer(metrics.registry)
    assert (server.host, server.port) == ("127.0.0.1", 9464)

    async with MetricsServer(metrics.registry, "127.0.0.1:0") as server:
        assert server._server is not None
        bound = {sock.getsockname()[0] for sock in server._server.sockets}
        assert bound == {"127.0.0.1"}
        base = f"http://127.0.0.1:{server.port}"
        status, _, _ = await asyncio.to_thread(http, f"{base}/nope")
        assert status == 404
        status, headers, _ = await asyncio.to_thread(http, f"{base}/metrics", "POST")
        assert status == 405
        assert headers["Allow"] == "GET, HEAD"
        status, headers, body = await asyncio.to_thread(http, f"{base}/metrics", "HEAD")
        assert status == 200
        assert body == ""
        assert int(headers["Content-Length"]) > 0

        # a client that never finishes its request is cut off, not kept forever
        server.request_timeout_s = 0.2
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /metrics HTTP/1.1\r\n")
        async with asyncio.timeout(3):
            answer = await reader.read()
        assert answer.startswith(b"HTTP/1.1 400")
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize(
    ("listen", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9100", ("::1", 9100))],
)
def test_listen_addresses(listen: str, expected: tuple[str, int]) -> None:
    from tagsweep.daemon.metrics import split_listen

    assert split_listen(listen) == expected


def test_status_line_reports_rate_states_and_session() -> None:
    metrics = GatewayMetrics(gateway="gw-01", site="DC1", process=False)
    reader = SimDriver("sim://random", name="door")
    metrics.watch_reader(reader)
    assert metrics.status_line().startswith("0 reads/s; door stopped")
    reader.counters.reads += 5000
    metrics._rate_mark = (metrics._rate_mark[0] - 1.0, 0) if metrics._rate_mark else None
    line = metrics.status_line()
    rate = float(line.split(" ", 1)[0])
    assert 4000 < rate <= 5000
    metrics.session_started("s-1", site="DC1", location="DC1/Room 1", operator="op", started_s=1)
    assert "session s-1 at DC1/Room 1" in metrics.status_line()


async def test_a_taken_port_is_retried_and_never_stops_the_gateway() -> None:
    metrics = GatewayMetrics(gateway="gw-01", site="DC1", process=False)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    server = MetricsServer(metrics.registry, f"127.0.0.1:{port}")
    with capture_logs() as logs:
        task = asyncio.create_task(server.serve_forever(retry_s=0.05), name="metrics-server")
        async with asyncio.timeout(5):
            while not any(e["event"] == "metrics_listen_failed" for e in logs):
                await asyncio.sleep(0.01)
        assert not task.done()
        squatter.close()  # the port frees up: the next attempt binds it
        async with asyncio.timeout(5):
            while server._server is None:
                await asyncio.sleep(0.01)
        assert "tagsweep_gateway_info" in await scrape(server)
        server.stop()
        await asyncio.wait_for(task, 5)
    assert server._server is None
