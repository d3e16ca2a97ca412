"""The broker fixture is real: publish and receive through it with aiomqtt."""

from __future__ import annotations

import asyncio

import aiomqtt

from tests.conftest import MosquittoBroker


async def test_publish_and_receive(mosquitto: MosquittoBroker) -> None:
    async with (
        aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="sub") as sub,
        aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="pub") as pub,
    ):
        await sub.subscribe("tagsweep/test/#", qos=1)
        await pub.publish("tagsweep/test/hello", b'{"n": 1}', qos=1)
        async with asyncio.timeout(5):
            message = await anext(aiter(sub.messages))
    assert str(message.topic) == "tagsweep/test/hello"
    assert message.payload == b'{"n": 1}'


def test_broker_can_be_stopped_and_restarted(mosquitto: MosquittoBroker) -> None:
    port = mosquitto.port
    mosquitto.stop()
    assert not mosquitto.running
    mosquitto.start()
    assert mosquitto.running
    assert mosquitto.port == port
