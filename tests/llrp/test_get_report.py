"""A client that asks for no pushed reports and polls with GET_REPORT.

Some LLRP clients (LTK-based tools, polling integrations) add their ROSpec with
ROReportTrigger "None" and pull reads with GET_REPORT. The simulated reader then holds
what it reads until asked, and answers each GET_REPORT with one RO_ACCESS_REPORT under
the request's message id, as a reader does. The client here is sllurp's message codec
over a plain socket (GET_REPORT, which sllurp lacks, by hand), not our driver.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from sllurp.llrp import LLRPMessage, LLRPROSpec

from tagsweep.simulators.llrp import LlrpSimulator, random_tags

_HEADER = struct.Struct(">HII")
_GET_REPORT = 60  # LLRP 1.0.1, 16.1.26


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.next_id = reader, writer, 100

    def send(self, name: str, fields: dict[str, Any]) -> int:
        self.next_id += 1
        message = {name: {"Ver": 1, "Type": 0, "ID": self.next_id, **fields}}
        self.writer.write(LLRPMessage(msgdict=message).msgbytes)
        return self.next_id

    def send_empty(self, msg_type: int) -> int:
        """A message without body, encoded by hand (sllurp has no GET_REPORT)."""
        self.next_id += 1
        self.writer.write(_HEADER.pack(1 << 10 | msg_type, _HEADER.size, self.next_id))
        return self.next_id

    async def receive(self) -> tuple[str, int, dict[str, Any]]:
        header = await asyncio.wait_for(self.reader.readexactly(_HEADER.size), 10)
        _, length, msg_id = _HEADER.unpack(header)
        body = await self.reader.readexactly(length - _HEADER.size)
        decoded = LLRPMessage(msgbytes=header + body).msgdict
        name = next(iter(decoded))
        return name, msg_id, decoded[name]

    async def expect(self, wanted: str) -> tuple[int, dict[str, Any]]:
        """The next message named ``wanted`` (KEEPALIVEs and events in between skipped)."""
        while True:
            name, msg_id, fields = await self.receive()
            if name == wanted:
                return msg_id, fields


async def test_reads_wait_for_get_report_and_answer_under_its_message_id() -> None:
    async with LlrpSimulator(port=0, tag_source=random_tags(40, 400, seed=3)) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        client = RawClient(reader, writer)
        await client.expect("READER_EVENT_NOTIFICATION")
        rospec = LLRPROSpec(reader_mode=None, rospecid=7, antennas=(1,))
        rospec["ROReportSpec"]["ROReportTrigger"] = "None"
        rospec["ROReportSpec"]["N"] = 0
        rospec["ROBoundarySpec"]["ROSpecStartTrigger"]["ROSpecStartTriggerType"] = "Immediate"
        client.send("ADD_ROSPEC", {"ROSpecID": 7, "ROSpec": rospec})
        _, added = await client.expect("ADD_ROSPEC_RESPONSE")
        assert added["LLRPStatus"]["StatusCode"] == "Success"
        client.send("ENABLE_ROSPEC", {"ROSpecID": 7})
        await client.expect("ENABLE_ROSPEC_RESPONSE")

        # reading, but nothing pushed: no report arrives on its own
        await asyncio.sleep(0.5)
        received = []
        for _ in range(25):  # bounded: a reader that pushes would never fall silent
            try:
                received.append(await asyncio.wait_for(client.receive(), 0.2))
            except TimeoutError:
                break
        assert not [m for m in received if m[0] == "RO_ACCESS_REPORT"]

        asked = client.send_empty(_GET_REPORT)
        msg_id, report = await client.expect("RO_ACCESS_REPORT")
        assert msg_id == asked
        got = len(report.get("TagReportData", []))
        assert got > 0
        sent = sim.connections[0].sent_reads()
        assert got == len(sent)  # every held read, in the one answer

        asked = client.send_empty(_GET_REPORT)  # what was read since
        msg_id, report = await client.expect("RO_ACCESS_REPORT")
        assert msg_id == asked
        assert len(report.get("TagReportData", [])) + got == len(sim.connections[0].sent_reads())

        client.send("CLOSE_CONNECTION", {})
        _, closed = await client.expect("CLOSE_CONNECTION_RESPONSE")
        assert closed["LLRPStatus"]["StatusCode"] == "Success"
        writer.close()
        await writer.wait_closed()
