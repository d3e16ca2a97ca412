"""A reader whose clock is wrong loses no read to it, and nothing leaves a count silently.

An R420 or Intermec reader that lost power without NTP counts from 2000-01-01; an FX9500
was found hours off. The gateway once counted such a reader's reads on its metrics and
wrote a session file with no observations, with no warning anywhere. Now the driver puts
that connection's stamps on the wall clock (``reader_clock_skew`` in the log, the offset
exported), and whatever the open session will not contain is counted by reason and
logged: here the reads before the session opened, and those of a reader whose skew the
configuration chose to keep.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from structlog.testing import capture_logs

from tagsweep.daemon.control import COMMANDS
from tagsweep.daemon.supervisor import Gateway
from tagsweep.domain import ReadBatch, empty_reads, now_us
from tagsweep.simulators.llrp import LlrpSimulator
from tagsweep.simulators.llrp.encoder import parse_clock

from .harness import make_config, wait_until

BATCH = 20
BATCHES = 5


def _reads(batch: int) -> ReadBatch:
    reads = empty_reads(BATCH)
    reads["epc"] = [f"E28011{batch:04X}{i:014X}".encode() for i in range(BATCH)]
    reads["antenna"] = 1
    reads["rssi"] = -48.0
    reads["first_seen_us"] = now_us() - 30_000
    reads["last_seen_us"] = now_us() - 10_000
    reads["seen_count"] = 2
    return reads


@pytest.mark.parametrize(
    ("clock", "max_skew_s", "in_session"),
    [
        ("unset", None, True),  # 2000-01-01: re-anchored
        ("offset=-3h", None, True),  # hours behind: re-anchored
        ("offset=-1h", 10 * 365 * 86400, False),  # re-anchoring turned off: counted, said
    ],
)
async def test_a_reader_with_a_wrong_clock_has_every_read_of_the_session_in_its_file(
    tmp_path: Path, short_dir: Path, clock: str, max_skew_s: float | None, in_session: bool
) -> None:
    session_open = asyncio.Event()

    async def source() -> AsyncIterator[ReadBatch]:
        yield _reads(0)  # before the session: not in it, and counted as such
        await session_open.wait()
        for batch in range(1, BATCHES + 1):
            yield _reads(batch)
            await asyncio.sleep(0.01)

    identity = parse_clock(clock, now_us())
    url = "llrp://127.0.0.1:{port}?antennas=1&report_n=10&report_interval_s=0.1"
    if max_skew_s is not None:
        url += f"&max_clock_skew_s={max_skew_s}"
    async with LlrpSimulator(port=0, tag_source=source, identity=identity) as reader:
        cfg = make_config(
            tmp_path,
            short_dir,
            readers=[
                {
                    "name": "dock",
                    "url": url.format(port=reader.port),
                    "role": "handheld",
                    "keepalive_s": 1.0,
                }
            ],
            window_s=0.2,
        )
        with capture_logs() as logs:
            async with Gateway(cfg, control_socket=False) as gw:
                await wait_until(lambda: gw.counters.reads >= BATCH, what="reads before")
                await gw.start_session(operator="jdoe", site="DC1")
                session_open.set()
                total = BATCH * (BATCHES + 1)
                await wait_until(lambda: gw.counters.reads >= total, what="every read")
                await gw.pipeline.sync()
                shown = await COMMANDS["session.show"](gw, {})
                closed = await gw.stop_session()
                offset_s = gw.devices[0].driver.counters.clock_offset_s
                outside = dict(gw.counters.reads_outside_session)

    epcs = {r["epc"] for r in pq.read_table(closed.parquet).to_pylist() if r["method"] == "rfid"}
    session_epcs = {e.decode() for b in range(1, BATCHES + 1) for e in _reads(b)["epc"].tolist()}
    skews = [e for e in logs if e["event"] == "reader_clock_skew"]
    said = {e["reason"] for e in logs if e["event"] == "reads_outside_session"}
    assert outside["no_session"] == BATCH
    assert "no_session" in said
    if in_session:
        # every read of the session is in its file (and the reads just before it, if
        # their sighting was still open when it started: the session's own rule)
        assert session_epcs <= epcs
        assert not epcs - session_epcs - {e.decode() for e in _reads(0)["epc"].tolist()}
        assert len(skews) == 1
        assert offset_s == pytest.approx(-identity.clock_offset_us / 1e6, abs=5)
        assert shown["reads_outside_window"] == 0
        assert set(outside) == {"no_session"}
    else:  # kept as stamped: not in the file, but counted, logged and shown
        assert not epcs & session_epcs
        assert skews == []
        assert outside["stamped_before_session"] == BATCH * BATCHES
        assert shown["reads_outside_window"] == BATCH * BATCHES
        assert "stamped_before_session" in said
    assert shown["reads_outside_session"]["no_session"] == BATCH
