"""The in-process ``sim://`` driver: synthetic tag reads without any socket.

``sim://random?tags=200&rate=2000&antennas=1,2&seed=7`` yields batches of reads of
``tags`` random EPCs at about ``rate`` reads per second, spread over the antennas. It
is for wiring tests and quick demos; protocol-level tests use the LLRP simulator over
real TCP instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import numpy as np

from tagsweep.domain import empty_reads, now_us
from tagsweep.drivers.base import Driver, DriverConfigError, DriverEvent


class SimDriver(Driver):
    schemes: ClassVar[tuple[str, ...]] = ("sim",)
    kind: ClassVar[str] = "rfid"

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.tag_count = int(self.url.float_option("tags", 100))
        self.rate = self.url.float_option("rate", 1000.0)
        self.antennas = self.url.int_list_option("antennas") or (1,)
        self.interval_s = self.url.float_option("interval", 0.05)
        self.limit = int(self.url.float_option("limit", 0))  # 0 = unlimited reads
        if self.tag_count < 1 or self.rate <= 0 or self.interval_s <= 0:
            raise DriverConfigError(f"{url}: tags, rate and interval must be positive")
        rng = np.random.default_rng(int(self.url.float_option("seed", 0)))
        words = rng.integers(0, 2**32, size=(self.tag_count, 3), dtype=np.uint64)
        self.epcs = np.array([f"{a:08X}{b:08X}{c:08X}".encode() for a, b, c in words], dtype="S64")
        self._rng = rng
        self._sent = 0
        self._connected = False

    async def _connect(self) -> None:
        self._connected = True

    async def _disconnect(self) -> None:
        self._connected = False

    async def _receive(self) -> AsyncIterator[DriverEvent]:
        per_batch = max(1, round(self.rate * self.interval_s))
        while self._connected and not self.closing:
            n = per_batch if not self.limit else min(per_batch, self.limit - self._sent)
            if n <= 0:
                await asyncio.sleep(self.interval_s)
                continue
            batch = empty_reads(n)
            ts = now_us()
            batch["epc"] = self.epcs[self._rng.integers(0, self.tag_count, size=n)]
            batch["reader"] = self.reader_id
            batch["antenna"] = self._rng.choice(np.array(self.antennas), size=n)
            batch["rssi"] = self._rng.normal(-55.0, 6.0, size=n).astype(np.float32)
            batch["first_seen_us"] = ts
            batch["last_seen_us"] = ts
            self._sent += n
            self.counters.reads += n
            self.counters.batches += 1
            yield batch
            await asyncio.sleep(self.interval_s)
