"""The driver against every reader profile of the simulator, over loopback TCP.

One contract per profile: connect, configure (transmit power through the reader's own
power table), inventory, lose the connection and reconnect, close; every read sent
after the reconnection is counted. Then what sets the profiles apart, each as the
vendor's reader does it (sources in ``simulators/llrp/profiles.py``).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from pyllrp import pyllrp as ll
from pyllrp.LLRPConnector import LLRPConnector
from structlog.testing import capture_logs

from tagsweep.drivers import DriverError
from tagsweep.drivers.llrp import LlrpDriver
from tagsweep.simulators.llrp import Fault, FaultKind, LlrpSimulator
from tagsweep.simulators.llrp.encoder import MessageType, ReaderIdentity
from tagsweep.simulators.llrp.profiles import PROFILES, VENDOR_ZEBRA, ReaderProfile

from .test_driver import FAST, collect, everything_from, keys, llrp_url, numbered_source
from .test_rospec import _inventory_with_pyllrp

pytestmark = pytest.mark.timeout(180)  # hang guards only: a loaded machine is slow

#: tx_power=20 dBm → the index of 20.00 dBm in each reader's own table
POWER_INDEX = {
    "generic": 41,  # index 1 = 10.00 dBm, 0.25 dB steps
    "impinj-r420": 41,
    "impinj-r700": 41,
    "zebra-fx9600": 100,  # index 0 = 10.0 dBm, 0.1 dB steps
    "thingmagic-sargas": 31,  # index 1 = 5.0 dBm, 0.5 dB steps
}


@pytest.mark.parametrize("name", sorted(PROFILES))
async def test_the_driver_works_with_every_profile(name: str) -> None:
    profile = PROFILES[name]
    drop = Fault(FaultKind.DROP, after_reports=3, connection=0)
    source = numbered_source(batches=8, size=60)
    async with LlrpSimulator(port=0, tag_source=source, profile=profile, faults=[drop]) as sim:
        with capture_logs() as logs:
            url = llrp_url(sim, antennas="1,2", tx_power=20, report_n=25)
            driver = LlrpDriver(url, reader_id=3, backoff=FAST)
            got = await collect(driver, everything_from(sim, 1), timeout=120)
    assert len(sim.connections) >= 2
    assert driver.counters.reconnects >= 1
    last = sim.connections[-1]
    assert keys(last.sent_reads()) <= keys(got)  # every read after the reconnection
    everything = set().union(*(keys(c.sent_reads()) for c in sim.connections))
    assert keys(got) <= everything
    assert driver.counters.decode_errors == 0
    assert not {"validation_mismatch", "sllurp_decode_failed"} & set(driver.counters.faults)
    rospec = last.rospecs[-1]
    assert rospec.tx_power_index == {1: POWER_INDEX[name], 2: POWER_INDEX[name]}
    powers = [e for e in logs if e["event"] == "llrp_tx_power"]
    assert powers
    assert f"index {POWER_INDEX[name]} (20.00 dBm)" in powers[0]["detail"]
    assert MessageType.ENABLE_EVENTS_AND_REPORTS in last.requests
    assert last.closed_by_client
    if profile.tag_extra:  # Zebra's vendor parameters: skipped, counted, not faults
        assert driver.counters.skipped_parameters > 0
    if profile.split_segments:
        assert last.reports > 0


@pytest.mark.parametrize("name", ["generic", "impinj-r420", "impinj-r700"])
async def test_pyllrp_inventory_works_with_the_profiles_that_take_its_rospec(name: str) -> None:
    from tagsweep.simulators.llrp import random_tags

    source = random_tags(30, rate=4000, interval_s=0.005, seed=4)
    async with LlrpSimulator(port=0, tag_source=source, profile=PROFILES[name]) as sim:
        tags, _other, _reports = await asyncio.to_thread(_inventory_with_pyllrp, sim.port)
        log = await sim.wait_for_connection(0)
        await asyncio.wait_for(log.done.wait(), 10)
    assert log.reports >= 1
    sent = {int(epc, 16) for epc in log.sent_reads()["epc"].tolist()}
    assert {int(tag, 16) for tag in tags} == sent


async def test_thingmagic_refuses_a_tag_observation_stop_trigger_in_its_own_words() -> None:
    """sllurp/sllurp#57: "ADD_ROSPEC: Error: Adding AISpec with unsupported StopTrigger 3"."""
    async with LlrpSimulator(port=0, profile=PROFILES["thingmagic-sargas"]) as sim:
        with pytest.raises(AssertionError, match="unsupported StopTrigger 3"):
            await asyncio.to_thread(_inventory_with_pyllrp, sim.port)


def _transact_raw(port: int, msg_type: int) -> tuple[int, int, bytes]:
    connector = LLRPConnector()
    connector.connect("127.0.0.1", port)
    try:
        sock = connector.readerSocket
        sock.sendall(struct.pack(">HII", (1 << 10) | msg_type, 10, 4242))
        header = b""
        while len(header) < 10:
            header += sock.recv(10 - len(header))
        word, length, msg_id = struct.unpack(">HII", header)
        body = b""
        while len(body) < length - 10:
            body += sock.recv(length - 10 - len(body))
        return word & 0x3FF, msg_id, body
    finally:
        connector.disconnect()


async def test_impinj_answers_get_supported_version_with_unsupported_version() -> None:
    async with LlrpSimulator(port=0, profile=PROFILES["impinj-r420"]) as sim:
        kind, msg_id, body = await asyncio.to_thread(_transact_raw, sim.port, 46)
    assert (kind, msg_id) == (MessageType.ERROR_MESSAGE, 4242)
    assert struct.unpack_from(">HHH", body)[2] == 110  # LLRPStatus M_UnsupportedVersion


def _add_two_rospecs(port: int) -> tuple[bool, Any]:
    from .test_rospec import _rospec

    start = ll.ROSpecStartTrigger_Parameter(ROSpecStartTriggerType=ll.ROSpecStartTriggerType.Null)
    stop = ll.ROSpecStopTrigger_Parameter(ROSpecStopTriggerType=ll.ROSpecStopTriggerType.Null)
    connector = LLRPConnector()
    connector.connect("127.0.0.1", port)
    try:
        first = connector.transact(_rospec(start, stop, 2, 10))
        second_spec = _rospec(start, stop, 2, 10)
        second_spec.getFirstParameterByClass(ll.ROSpec_Parameter).ROSpecID = 8
        return first.success(), connector.transact(second_spec)
    finally:
        connector.disconnect()


async def test_impinj_takes_one_rospec() -> None:
    async with LlrpSimulator(port=0, profile=PROFILES["impinj-r420"]) as sim:
        first_ok, second = await asyncio.to_thread(_add_two_rospecs, sim.port)
    assert first_ok
    assert not second.success()
    assert "MaxNumROSpecs" in str(second)


async def test_a_second_client_is_refused_while_one_is_connected() -> None:
    async with LlrpSimulator(port=0, profile=PROFILES["zebra-fx9600"]) as sim:
        first = LLRPConnector()
        await asyncio.to_thread(first.connect, "127.0.0.1", sim.port)
        try:
            second = LLRPConnector()
            with pytest.raises(OSError, match="Already Exists"):
                await asyncio.to_thread(second.connect, "127.0.0.1", sim.port)
        finally:
            await asyncio.to_thread(first.disconnect)
    assert sim.connections[1].requests == []


def test_zebra_capabilities_carry_its_vendor_parameters() -> None:
    caps = PROFILES["zebra-fx9600"].capabilities_extra
    assert struct.unpack_from(">HHI", caps)[::2] == (1023, VENDOR_ZEBRA)


@pytest.mark.parametrize(
    ("identity", "expected", "said"),
    [
        (ReaderIdentity(hop_table_id=7), (7, 1), "hopping over table 7 (3 channels"),
        (
            ReaderIdentity(fixed_frequencies_khz=(865700, 866300, 866900, 867500)),
            (0, 1),
            "fixed channel 1 (865.70 MHz) of 4",
        ),
    ],
)
async def test_hop_table_or_channel_comes_from_the_readers_capabilities(
    identity: ReaderIdentity, expected: tuple[int, int], said: str
) -> None:
    """An FCC reader hops over the table its capabilities name (not always table 1); an
    ETSI reader does not hop and takes a channel of its fixed frequency table."""
    async with LlrpSimulator(
        port=0, tag_source=numbered_source(batches=2), identity=identity
    ) as sim:
        with capture_logs() as logs:
            driver = LlrpDriver(llrp_url(sim, antennas="1"), backoff=FAST)
            await collect(driver, everything_from(sim, 0))
    assert sim.connections[0].rospecs[-1].hop_table == {1: expected}
    [chosen] = [e["detail"] for e in logs if e["event"] == "llrp_frequencies"]
    assert said in chosen


async def test_a_refused_rospec_is_an_error_with_the_readers_words() -> None:
    picky = ReaderProfile("picky", refused_ai_stop_triggers=(0,))
    async with LlrpSimulator(port=0, tag_source=numbered_source(), profile=picky) as sim:
        driver = LlrpDriver(llrp_url(sim), backoff=FAST)
        with pytest.raises(DriverError) as caught:
            await driver._connect()
        await driver._disconnect()
    message = str(caught.value)
    assert "rejected the configuration" in message
    assert "Adding AISpec with unsupported StopTrigger 0" in message  # the reader's answer
