"""Read → publish latency through a real mosquitto at 10k reads/s: outbox vs direct publish.

A simulated handheld walk-through produces ``--rate`` reads/s in 10 ms batches on one
event loop; each batch goes through the dedup kernel (:class:`Deduplicator`) and the
sightings opened and closed become gateway events, as in the daemon. Two ways out are
measured in the same run, against the same broker, alternating over ``--rounds``:

* **direct** (baseline): every event published straight away with aiomqtt, QoS 1,
  nothing written first, with the same in-flight window as the publisher;
* **outbox**: :meth:`Outbox.emit` commits the events to a DuckDB file, the
  :class:`MqttPublisher` publishes them with QoS 1 and marks rows sent on PUBACK.

Latency is measured end to end, from the moment a batch of reads was produced to the
moment a subscriber in a separate process receives the events it caused (both read
``CLOCK_MONOTONIC``); the first second (one sighting per tag in the field opens at
once) is left out. A last phase fills an outbox with a backlog while no publisher runs
(an outage) and times how fast it drains, against publishing the same events directly.

The loop flushes dedup every 10 ms, so the figures are those of the output path; in
the daemon a read also waits for the next dedup flush (``dedup.flush_interval_s``,
0.5 s by default), which adds up to one interval to every figure here.

Run: ``.venv/bin/python -m benchmarks.bench_mqtt [--rate 10000] [--seconds 8]``.
Writes ``benchmarks/results/mqtt.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np

from tagsweep.config.schema import MqttSection
from tagsweep.daemon.dedup.deduplicator import Deduplicator, DedupResult
from tagsweep.daemon.events import EventKind, GatewayEvent
from tagsweep.daemon.metrics import GatewayMetrics
from tagsweep.daemon.mqtt.outbox import Outbox
from tagsweep.daemon.mqtt.publisher import MqttPublisher
from tagsweep.daemon.mqtt.topics import event_topic
from tagsweep.domain import ReadBatch, empty_reads, now_us

RESULTS = Path(__file__).parent / "results"
SITE, GATEWAY = "BENCH", "gw-bench"
TICK_S = 0.01
WINDOW_US = 2_000_000
WARMUP_S = 1.0
INFLIGHT = MqttPublisher.DEFAULT_MAX_INFLIGHT


# -- broker ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 1000000\nmax_inflight_messages 1000\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            time.sleep(0.02)
        else:
            return proc, port
    proc.kill()
    raise RuntimeError("mosquitto did not start")


# -- subscriber (separate process) -----------------------------------------------------


async def subscriber_main(port: int, topic: str, timeout_s: float) -> None:
    """Receive until told to stop on stdin (and then until the stream is idle)."""
    latencies: list[float] = []
    seen: set[str] = set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), stop.set)
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-sub-{os.getpid()}") as c:
        await c.subscribe(topic, qos=1)
        print("ready", flush=True)
        messages = aiter(c.messages)
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            try:
                message = await asyncio.wait_for(anext(messages), 0.5)
            except TimeoutError:
                if stop.is_set():
                    break
                continue
            now = time.monotonic_ns()
            assert isinstance(message.payload, bytes)
            body = json.loads(message.payload)
            if "t_ns" in body and body["event_id"] not in seen:
                seen.add(body["event_id"])
                if body["t_ns"]:  # 0 marks the warm-up
                    latencies.append((now - body["t_ns"]) / 1e6)
    loop.remove_reader(sys.stdin.fileno())
    print(json.dumps({"distinct": len(seen), "latencies_ms": latencies}), flush=True)


class SubscriberProcess:
    """A consumer in its own process, so it never competes with the gateway's loop."""

    def __init__(self, port: int, topic: str, timeout_s: float) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_mqtt",
                "--subscriber",
                f"{port} {topic} {timeout_s}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"subscriber failed to start: {line!r}")

    def stop(self) -> tuple[int, list[float]]:
        """Distinct events received, and the latencies (ms) of those after the warm-up."""
        out, _ = self.proc.communicate("stop\n", timeout=120)
        result = json.loads(out.strip().splitlines()[-1])
        return int(result["distinct"]), list(result["latencies_ms"])


# -- the read stream and the gateway's event path --------------------------------------


class WalkThroughReads:
    """A handheld walking past racks: ``visible`` tags in the field at a time, the field
    sliding along a population of tags, ``rate`` reads per second in 10 ms batches."""

    def __init__(self, rate: float, *, visible: int = 300, slide_per_s: float = 60.0) -> None:
        self.per_tick = max(1, round(rate * TICK_S))
        self.visible = visible
        self.slide_per_s = slide_per_s
        self.rng = np.random.default_rng(7)
        population = 200_000
        self.epcs = np.array([f"E2801160{i:016X}".encode() for i in range(population)])

    def batch(self, elapsed_s: float) -> ReadBatch:
        first = int(elapsed_s * self.slide_per_s)
        idx = first + self.rng.integers(0, self.visible, size=self.per_tick)
        reads = empty_reads(self.per_tick)
        ts = now_us()
        reads["epc"] = self.epcs[idx % len(self.epcs)]
        reads["antenna"] = 1
        reads["rssi"] = self.rng.normal(-55, 6, size=self.per_tick)
        reads["first_seen_us"] = ts
        reads["last_seen_us"] = ts
        return reads


def sighting_events(
    dedup: Deduplicator, result: DedupResult, expired: DedupResult, read_ns: int
) -> list[GatewayEvent]:
    """The gateway's events for one batch: sightings opened, sightings closed."""
    events: list[GatewayEvent] = []
    if len(result.opened_ids):
        rows, ids = dedup.open_sightings()
        opened = rows[np.isin(ids, result.opened_ids)]
        events += [
            GatewayEvent(
                EventKind.SIGHTING_OPENED,
                {
                    "epc": r["epc"].decode(),
                    "reader": "hh1",
                    "antenna": int(r["antenna"]),
                    "first_seen_us": int(r["first_seen_us"]),
                    "t_ns": read_ns,
                },
            )
            for r in opened
        ]
    for closed in (result.closed, expired.closed):
        events += [
            GatewayEvent(
                EventKind.SIGHTING_CLOSED,
                {
                    "epc": r["epc"].decode(),
                    "reader": "hh1",
                    "antenna": int(r["antenna"]),
                    "first_seen_us": int(r["first_seen_us"]),
                    "last_seen_us": int(r["last_seen_us"]),
                    "read_count": int(r["read_count"]),
                    "peak_rssi": round(float(r["peak_rssi"]), 1),
                    "t_ns": read_ns,
                },
            )
            for r in closed
        ]
    return events


async def gateway_loop(
    rate: float, seconds: float, sink: Callable[[list[GatewayEvent]], Awaitable[None]]
) -> dict[str, float]:
    """Reads → dedup → events → sink, on one event loop, as the daemon does."""
    reads = WalkThroughReads(rate)
    dedup = Deduplicator(WINDOW_US)
    loop = asyncio.get_running_loop()
    started = loop.time()
    next_tick = started
    n_reads = n_events = 0
    while (elapsed := loop.time() - started) < seconds:
        # The first second opens a sighting for every tag in the field at once: a burst
        # that says nothing about steady state, so its events carry no timestamp.
        read_ns = time.monotonic_ns() if elapsed >= WARMUP_S else 0
        batch = reads.batch(elapsed)
        result = dedup.process(batch)
        expired = dedup.expire(now_us())
        events = sighting_events(dedup, result, expired, read_ns)
        if events:
            await sink(events)
        n_reads += len(batch)
        n_events += len(events)
        next_tick += TICK_S
        await asyncio.sleep(max(0.0, next_tick - loop.time()))
    took = loop.time() - started
    return {"reads_per_s": n_reads / took, "events_per_s": n_events / took, "events": n_events}


def summary(received: tuple[int, list[float]], expected: int) -> dict[str, Any]:
    distinct, latencies = received
    ordered = sorted(latencies)
    q = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else [0] * 99
    return {
        "received": distinct,
        "lost": expected - distinct,
        "measured": len(ordered),
        "p50_ms": round(q[49], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(ordered[-1], 2) if ordered else None,
    }


async def run_direct(port: int, rate: float, seconds: float) -> dict[str, Any]:
    sub = await asyncio.to_thread(SubscriberProcess, port, "tagsweep/#", seconds + 30)
    pending: set[asyncio.Task[None]] = set()
    window = asyncio.Semaphore(INFLIGHT)  # the publisher's pipelining, without DuckDB
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier="bench-direct", max_inflight_messages=INFLIGHT
    ) as client:
        client.pending_calls_threshold = INFLIGHT + 10

        async def publish(event: GatewayEvent) -> None:
            try:
                await client.publish(
                    event_topic("tagsweep", SITE, GATEWAY, event.kind.value),
                    event.to_json(gateway=GATEWAY, site=SITE),
                    qos=1,
                )
            finally:
                window.release()

        async def sink(events: list[GatewayEvent]) -> None:
            for event in events:
                await window.acquire()
                task = asyncio.create_task(publish(event))
                pending.add(task)
                task.add_done_callback(pending.discard)

        stats = await gateway_loop(rate, seconds, sink)
        await asyncio.gather(*pending)
    received = await asyncio.to_thread(sub.stop)
    return {**_rates(stats), **summary(received, int(stats["events"]))}


async def run_outbox(port: int, rate: float, seconds: float, workdir: Path) -> dict[str, Any]:
    db = workdir / f"outbox-{time.monotonic_ns()}.duckdb"
    metrics = GatewayMetrics(gateway=GATEWAY, site=SITE, process=False)
    outbox = Outbox(db, site=SITE, gateway=GATEWAY, metrics=metrics)
    mqtt = MqttSection(enabled=True, host="127.0.0.1", port=port)
    publisher = MqttPublisher(outbox, mqtt, site=SITE, gateway=GATEWAY, metrics=metrics)
    sub = await asyncio.to_thread(SubscriberProcess, port, "tagsweep/+/+/+", seconds + 30)
    task = asyncio.create_task(publisher.run(), name="mqtt-publisher")
    await publisher.connected.wait()
    stats = await gateway_loop(rate, seconds, outbox.emit)
    deadline = time.monotonic() + 60
    while outbox.depth and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a gauge
        await asyncio.sleep(0.02)
    publisher.stop()
    await task
    outbox.close()
    received = await asyncio.to_thread(sub.stop)
    acked = metrics.mqtt_published._value.get()
    return {
        **_rates(stats),
        **summary(received, int(stats["events"])),
        "puback_mean_ms_incl_warmup": round(
            metrics.mqtt_publish_latency._sum.get() / max(acked, 1) * 1e3, 2
        ),
    }


def _rates(stats: dict[str, float]) -> dict[str, Any]:
    return {
        "reads_per_s": round(stats["reads_per_s"]),
        "events_per_s": round(stats["events_per_s"]),
        "events": int(stats["events"]),
    }


def backlog_events(total: int) -> list[GatewayEvent]:
    now = time.monotonic_ns()
    return [
        GatewayEvent(EventKind.SIGHTING_OPENED, {"n": i, "epc": f"E280{i:020X}", "t_ns": now})
        for i in range(total)
    ]


async def run_backlog(port: int, total: int, workdir: Path) -> dict[str, Any]:
    """Outage recovery: a backlog queued with no publisher, then drained in order — and,
    as the baseline, the same number of events published directly as fast as possible."""
    events = backlog_events(total)
    outbox = Outbox(workdir / "backlog.duckdb", site=SITE, gateway=GATEWAY)
    for start in range(0, total, 1000):
        await outbox.emit(events[start : start + 1000])
    mqtt = MqttSection(enabled=True, host="127.0.0.1", port=port)
    publisher = MqttPublisher(outbox, mqtt, site=SITE, gateway=GATEWAY)
    started = time.monotonic()
    task = asyncio.create_task(publisher.run(), name="mqtt-publisher")
    while outbox.depth:  # noqa: ASYNC110 - polling a gauge
        await asyncio.sleep(0.01)
    drain_s = time.monotonic() - started
    publisher.stop()
    await task
    outbox.close()

    topic = event_topic("tagsweep", SITE, GATEWAY, "sighting_opened")
    async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=INFLIGHT) as client:
        client.pending_calls_threshold = INFLIGHT + 10
        window = asyncio.Semaphore(INFLIGHT)  # the publisher's pipelining, no DuckDB

        async def publish(event: GatewayEvent) -> None:
            try:
                await client.publish(topic, event.to_json(gateway=GATEWAY, site=SITE), qos=1)
            finally:
                window.release()

        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for event in events:
                await window.acquire()
                group.create_task(publish(event))
        direct_s = time.monotonic() - started
    return {
        "events": total,
        "outbox_events_per_s": round(total / drain_s),
        "direct_events_per_s": round(total / direct_s),
        "ratio_outbox_over_direct": round(direct_s / drain_s, 2),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
    proc, port = start_broker(workdir)
    try:
        direct: list[dict[str, Any]] = []
        outbox: list[dict[str, Any]] = []
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds}", flush=True)
            direct.append(await run_direct(port, args.rate, args.seconds))
            print("  direct", direct[-1], flush=True)
            outbox.append(await run_outbox(port, args.rate, args.seconds, workdir))
            print("  outbox", outbox[-1], flush=True)
        backlog = await run_backlog(port, args.backlog, workdir)
        print("  backlog", backlog, flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    def median(rows: list[dict[str, Any]], key: str) -> float:
        return round(float(statistics.median(r[key] for r in rows)), 2)

    d50, d99 = median(direct, "p50_ms"), median(direct, "p99_ms")
    o50, o99 = median(outbox, "p50_ms"), median(outbox, "p99_ms")
    return {
        "benchmark": "mqtt",
        "what": "read → subscriber latency of sighting events at a steady read rate "
        "(reads → dedup kernel → events → QoS 1 through a real mosquitto on loopback): "
        "durable DuckDB outbox vs direct publish; plus backlog drain throughput",
        "read_rate_per_s": args.rate,
        "seconds_per_phase": args.seconds,
        "rounds": args.rounds,
        "dedup_window_s": WINDOW_US / 1e6,
        "direct": {"p50_ms": d50, "p99_ms": d99, "runs": direct},
        "outbox": {"p50_ms": o50, "p99_ms": o99, "runs": outbox},
        "ratio_p50_outbox_over_direct": round(o50 / d50, 2) if d50 else None,
        "ratio_p99_outbox_over_direct": round(o99 / d99, 2) if d99 else None,
        "target_p99_ms": 100,
        "meets_target": o99 <= 100,
        "lost_events": sum(r["lost"] for r in outbox),
        "backlog_drain": backlog,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rate", type=float, default=10_000, help="reads per second")
    parser.add_argument("--seconds", type=float, default=8.0, help="per phase")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backlog", type=int, default=20_000, help="events")
    parser.add_argument("--subscriber", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.subscriber:
        port, topic, timeout_s = args.subscriber.split()
        asyncio.run(subscriber_main(int(port), topic, float(timeout_s)))
        return 0
    result = asyncio.run(main_async(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mqtt.json").write_text(json.dumps(result, indent=2) + "\n")
    backlog = result["backlog_drain"]
    print(
        f"read→subscriber at {args.rate:.0f} reads/s: outbox p50 {result['outbox']['p50_ms']} "
        f"ms, p99 {result['outbox']['p99_ms']} ms; direct p50 {result['direct']['p50_ms']} ms, "
        f"p99 {result['direct']['p99_ms']} ms; p99 outbox/direct "
        f"{result['ratio_p99_outbox_over_direct']}x; lost {result['lost_events']}; backlog "
        f"drains at {backlog['outbox_events_per_s']} events/s vs direct "
        f"{backlog['direct_events_per_s']} events/s ({backlog['ratio_outbox_over_direct']}x)"
    )
    return 0 if result["lost_events"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
