"""The simulated reader runs the client's ROSpec as LLRP 1.0.1 says, proven with two
clients that are not ours: pyllrp (CrossMgr's LLRP client, used with real Impinj
readers at races) and sllurp.

pyllrp's inventory flow (``pyllrp.TagInventory.GetTagInventory``) resets the reader to
factory defaults, adds an ROSpec whose AISpec stops on a TagObservation trigger (10
attempts to see all tags, or 100 ms) and asks for one report per 10,000 tags or at the
end of the ROSpec, enables it, disables it 150 ms later and deletes it. It waits for
each response by its own message id and hands every other message to its handlers, so
a reader that numbered its own messages 1, 2, 3… would have its reports taken for
responses.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest
from pyllrp import pyllrp as ll
from pyllrp.LLRPConnector import LLRPConnector
from pyllrp.TagInventory import TagInventory
from sllurp.llrp import LLRPReaderClient, LLRPReaderConfig

from tagsweep.simulators.llrp import LlrpSimulator, random_tags
from tagsweep.simulators.llrp.profiles import PROFILES

pytestmark = pytest.mark.timeout(60)


def _inventory_with_pyllrp(port: int) -> tuple[set[str], list[Any], list[Any]]:
    """pyllrp's own flow, unchanged but for the port (its Connect assumes 5084)."""

    class Connector(LLRPConnector):  # type: ignore[misc]  # pyllrp ships no types
        def connect(self, host: str, port_: int = port) -> Any:
            return super().connect(host, port_)

    reports: list[Any] = []
    inventory = TagInventory("127.0.0.1")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("pyllrp.TagInventory.LLRPConnector", Connector)
        inventory.Connect()
    assert inventory.connector is not None
    inventory.connector.addHandler(ll.RO_ACCESS_REPORT_Message, lambda _c, m: reports.append(m))
    tags, other = inventory.GetTagInventory()
    inventory.Disconnect()
    return tags, other, reports


async def test_pyllrp_inventory_gets_one_report_at_the_end_of_its_rospec() -> None:
    source = random_tags(40, rate=4000, interval_s=0.005, seed=3)
    async with LlrpSimulator(port=0, tag_source=source) as sim:
        tags, other, reports = await asyncio.to_thread(_inventory_with_pyllrp, sim.port)
        log = await sim.wait_for_connection(0)
        await asyncio.wait_for(log.done.wait(), 10)
    # pyllrp's handlers are replaced by GetTagInventory: count from the sim's side too
    assert log.reports == 1, "one report, at the end of the ROSpec (N = 10,000 not reached)"
    assert [type(m).__name__ for m in other if "REPORT" in type(m).__name__] == []
    sent = {int(epc, 16) for epc in log.sent_reads()["epc"].tolist()}
    assert {int(tag, 16) for tag in tags} == sent  # pyllrp drops leading zeros
    assert 0 < len(tags) <= 40
    (rospec,) = log.rospecs
    assert rospec.aispecs[0].stop_trigger == 3  # TagObservation
    assert (rospec.aispecs[0].number_of_attempts, rospec.aispecs[0].duration_ms) == (10, 100)
    assert (rospec.report_trigger, rospec.report_n) == (2, 10_000)
    del reports


def _sllurp_reports(port: int, n_tags: int) -> list[dict[str, Any]]:
    """sllurp's client asking for a report every ``n_tags`` tags (its AISpec stops on a
    TagObservation "upon N tags" trigger, the report comes at the end of the AISpec)."""
    got: list[dict[str, Any]] = []
    arrived = threading.Event()
    config = LLRPReaderConfig(
        {"antennas": [1], "report_every_n_tags": n_tags, "start_inventory": True}
    )
    client = LLRPReaderClient("127.0.0.1", port, config, timeout=5)

    def on_report(_reader: Any, tags: list[dict[str, Any]]) -> None:
        if tags:
            got.append({"tags": tags})
            arrived.set()

    client.add_tag_report_callback(on_report)
    client.connect()
    try:
        assert arrived.wait(20), "no tag report from the simulated reader"
    finally:
        client.disconnect(timeout=5)
        client.join(5)
    return got


@pytest.mark.parametrize("profile", ["generic", "impinj-r420", "impinj-r700", "zebra-fx9600"])
async def test_sllurp_report_every_n_tags_ends_the_aispec_upon_n_tags(profile: str) -> None:
    """sllurp's own client against every profile that takes its ROSpec (a ThingMagic
    Sargas refuses the TagObservation stop trigger, see test_profiles)."""
    source = random_tags(200, rate=2000, interval_s=0.01, seed=5)
    async with LlrpSimulator(port=0, tag_source=source, profile=PROFILES[profile]) as sim:
        reports = await asyncio.to_thread(_sllurp_reports, sim.port, 25)
        log = await sim.wait_for_connection(0)
    (rospec,) = log.rospecs
    assert rospec.aispecs[0].stop_trigger == 3
    assert rospec.aispecs[0].number_of_tags == 25
    first = reports[0]["tags"]
    # the AISpec ran until it had seen 25 distinct tags: one report with its reads
    assert len({bytes(t["EPC"]) for t in first}) >= 25
    assert sum(len(b) for b in log.sent) >= len(first)


async def test_the_readers_own_messages_carry_its_own_ids() -> None:
    """Reports, keepalives and events are numbered by the reader, far from the small
    numbers clients use; responses carry the request's id."""
    source = random_tags(5, rate=500, interval_s=0.01, seed=1)
    async with LlrpSimulator(port=0, tag_source=source) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        header = await reader.readexactly(10)
        word, length, msg_id = np.frombuffer(header, dtype=">u2,>u4,>u4")[0].tolist()
        await reader.readexactly(length - 10)
        writer.close()
    assert word & 0x3FF == 63  # READER_EVENT_NOTIFICATION
    assert msg_id >= 1 << 30


def _rospec(start: Any, stop: Any, report_trigger: int, n: int, ai_stop: Any | None = None) -> Any:
    ai_stop = ai_stop or ll.AISpecStopTrigger_Parameter(
        AISpecStopTriggerType=ll.AISpecStopTriggerType.Null
    )
    return ll.ADD_ROSPEC_Message(
        Parameters=[
            ll.ROSpec_Parameter(
                ROSpecID=7,
                CurrentState=ll.ROSpecState.Disabled,
                Parameters=[
                    ll.ROBoundarySpec_Parameter(Parameters=[start, stop]),
                    ll.AISpec_Parameter(
                        AntennaIDs=[0],
                        Parameters=[
                            ai_stop,
                            ll.InventoryParameterSpec_Parameter(
                                InventoryParameterSpecID=1,
                                ProtocolID=ll.AirProtocols.EPCGlobalClass1Gen2,
                            ),
                        ],
                    ),
                    ll.ROReportSpec_Parameter(
                        ROReportTrigger=report_trigger,
                        N=n,
                        Parameters=[ll.TagReportContentSelector_Parameter(EnableAntennaID=True)],
                    ),
                ],
            )
        ]
    )


def _run_rospec(port: int, add: Any, reports_wanted: int) -> tuple[list[int], Any]:
    """Add and enable ``add``; read until ``reports_wanted`` reports; disable (what is
    due comes before the response) and delete. Returns reads per report, and the
    DISABLE_ROSPEC response."""
    connector = LLRPConnector()
    connector.connect("127.0.0.1", port)
    sizes: list[int] = []
    try:
        assert connector.transact(add).success()
        connector.readerSocket.settimeout(20)
        enable = ll.ENABLE_ROSPEC_Message(ROSpecID=7)
        enable.send(connector.readerSocket)
        while len(sizes) < reports_wanted:
            message = ll.UnpackMessageFromSocket(connector.readerSocket)
            if isinstance(message, ll.RO_ACCESS_REPORT_Message):
                sizes.append(len(message.getTagData()))
        disable = ll.DISABLE_ROSPEC_Message(ROSpecID=7)
        disable.send(connector.readerSocket)
        while True:
            message = ll.UnpackMessageFromSocket(connector.readerSocket)
            if isinstance(message, ll.RO_ACCESS_REPORT_Message):
                sizes.append(len(message.getTagData()))
            elif message.MessageID == disable.MessageID:
                break
        assert connector.transact(ll.DELETE_ROSPEC_Message(ROSpecID=7)).success()
    finally:
        connector.disconnect()
    return sizes, message


async def test_reports_upon_n_tags_and_the_rest_when_disabled() -> None:
    source = random_tags(30, rate=3000, interval_s=0.005, seed=9)
    add = _rospec(
        ll.ROSpecStartTrigger_Parameter(ROSpecStartTriggerType=ll.ROSpecStartTriggerType.Immediate),
        ll.ROSpecStopTrigger_Parameter(ROSpecStopTriggerType=ll.ROSpecStopTriggerType.Null),
        ll.ROReportTriggerType.Upon_N_Tags_Or_End_Of_ROSpec,
        7,
    )
    async with LlrpSimulator(port=0, tag_source=source) as sim:
        sizes, disabled = await asyncio.to_thread(_run_rospec, sim.port, add, 4)
        log = await sim.wait_for_connection(0)
        await asyncio.wait_for(log.done.wait(), 10)
    assert disabled.success()
    assert sizes[:4] == [7, 7, 7, 7]
    assert all(size <= 7 for size in sizes)
    assert sum(sizes) == log.observed == log.read_count  # nothing kept back at DISABLE


async def test_periodic_start_with_a_duration_reports_once_per_run() -> None:
    source = random_tags(30, rate=3000, interval_s=0.005, seed=11)
    add = _rospec(
        ll.ROSpecStartTrigger_Parameter(
            ROSpecStartTriggerType=ll.ROSpecStartTriggerType.Periodic,
            Parameters=[ll.PeriodicTriggerValue_Parameter(Offset=0, Period=150)],
        ),
        ll.ROSpecStopTrigger_Parameter(
            ROSpecStopTriggerType=ll.ROSpecStopTriggerType.Duration, DurationTriggerValue=50
        ),
        ll.ROReportTriggerType.Upon_N_Tags_Or_End_Of_ROSpec,
        0,
    )
    async with LlrpSimulator(port=0, tag_source=source) as sim:
        sizes, disabled = await asyncio.to_thread(_run_rospec, sim.port, add, 3)
        log = await sim.wait_for_connection(0)
    assert disabled.success()
    (rospec,) = log.rospecs
    assert (rospec.start_trigger, rospec.period_ms) == (2, 150)
    assert (rospec.stop_trigger, rospec.stop_duration_ms) == (1, 50)
    # at most one report per 50 ms run (N = 0: only at its end; a run that read
    # nothing on a loaded machine has nothing to report), none in between
    assert 3 <= len(sizes) <= log.rospec_runs[7]
    assert all(size > 0 for size in sizes)
