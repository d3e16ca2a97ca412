"""How the contract suite reaches each driver.

A harness starts whatever the driver talks to (a simulator on a real socket, a pty…)
and returns the URL to open. Each driver adds one entry to :data:`HARNESSES`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Harness:
    name: str
    kind: str  # "rfid" (yields ReadBatch) or "barcode" (yields BarcodeScan)
    #: async context manager yielding the URL of a device that is sending events
    device: Callable[[], AbstractAsyncContextManager[str]]


@asynccontextmanager
async def _sim_device() -> AsyncIterator[str]:
    yield "sim://contract?tags=20&rate=2000&antennas=1,2&seed=3"


HARNESSES: list[Harness] = [Harness("sim", "rfid", _sim_device)]
