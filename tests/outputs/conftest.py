"""Fixtures for the daemon's outputs: a broker that keeps sessions across restarts, and a
subscriber that reconnects on its own, so an outage test counts what a real consumer sees."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.conftest import MosquittoBroker


@pytest.fixture
def durable_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A real mosquitto that saves client sessions on shutdown and restores them on start.

    A consumer with a persistent session (clean_session=False, QoS 1) then receives
    everything published while it was reconnecting, which is what lets an outage test
    count events end to end instead of racing the subscriber's reconnect.
    """
    broker = MosquittoBroker(tmp_path)
    broker.conf.write_text(
        f"listener {broker.port} {broker.host}\n"
        # a root test run must not drop to "mosquitto": it could not read tmp_path
        "user root\n"
        "allow_anonymous true\n"
        "persistence true\n"
        f"persistence_location {tmp_path}/\n"
        "log_dest stderr\n"
        "max_queued_messages 1000000\n"
        "max_inflight_messages 1000\n"
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: Unix socket paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ts-out-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Received:
    topic: str
    body: dict[str, Any]
    retain: bool


@dataclass
class Subscriber:
    """Collects every message under a topic filter, reconnecting through outages."""

    host: str
    port: int
    topic_filter: str = "tagsweep/#"
    identifier: str = "test-consumer"
    messages: list[Received] = field(default_factory=list)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self.host, self.port, identifier=self.identifier, clean_session=False
                ) as client:
                    await client.subscribe(self.topic_filter, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        self.messages.append(
                            Received(
                                str(message.topic), json.loads(message.payload), message.retain
                            )
                        )
                        self.arrived.set()
            except aiomqtt.MqttError:
                self.subscribed.clear()
                await asyncio.sleep(0.05)

    def of_kind(self, kind: str) -> list[Received]:
        return [m for m in self.messages if m.body.get("kind") == kind]

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.arrived.clear()
                await self.arrived.wait()


@contextlib.asynccontextmanager
async def subscribed(broker: MosquittoBroker, **kwargs: Any) -> AsyncIterator[Subscriber]:
    sub = Subscriber(broker.host, broker.port, **kwargs)
    task = asyncio.create_task(sub.run(), name="test-subscriber")
    try:
        async with asyncio.timeout(10):
            await sub.subscribed.wait()
        yield sub
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def running(coro: Any, name: str) -> AsyncIterator[asyncio.Task[None]]:
    """Run a long-lived coroutine as a task for the duration of a block."""
    task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
