"""How the contract suite reaches each driver.

A harness starts whatever the driver talks to (a simulator on a real socket, a pty…)
and returns the URL to open. Each driver adds one entry to :data:`HARNESSES`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Harness:
    name: str
    kind: str  # "rfid" (yields ReadBatch) or "barcode" (yields BarcodeScan)
    #: async context manager yielding the URL of a device that is sending events
    device: Callable[[], AbstractAsyncContextManager[str]]


@asynccontextmanager
async def _sim_device() -> AsyncIterator[str]:
    yield "sim://contract?tags=20&rate=2000&antennas=1,2&seed=3"


def _scanner_device(mode: Literal["pty", "tcp"]) -> Callable[[], AbstractAsyncContextManager[str]]:
    """A scanner simulator that keeps scanning (pty: a real /dev/pts/N; tcp: a socket)."""

    @asynccontextmanager
    async def device() -> AsyncIterator[str]:
        from tagsweep.simulators.scanner import ScanLine, ScannerSimulator

        script = [ScanLine(text, delay_s=0.01) for text in ("LOC:DC1/Room 1", "IT-00001")]
        async with ScannerSimulator(mode=mode, script=script, repeat=True) as sim:
            yield sim.url

    return device


@asynccontextmanager
async def _llrp_device() -> AsyncIterator[str]:
    """The LLRP reader simulator on a free loopback port, reading 20 tags."""
    from tagsweep.simulators.llrp import LlrpSimulator, random_tags

    source = random_tags(20, 2000, antennas=(1, 2), seed=3)
    async with LlrpSimulator(port=0, tag_source=source) as sim:
        yield f"llrp://127.0.0.1:{sim.port}?antennas=1,2&keepalive_s=1&validate=1"


HARNESSES: list[Harness] = [
    Harness("sim", "rfid", _sim_device),
    Harness("llrp", "rfid", _llrp_device),
    Harness("barcode-pty", "barcode", _scanner_device("pty")),
    Harness("barcode-socket", "barcode", _scanner_device("tcp")),
]
