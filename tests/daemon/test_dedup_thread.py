"""The dedup state has one owner: large batches are folded in on a worker thread while the
event loop keeps reading what is open (status, the live feed seeding a new session).

A reader floods the gateway with batches of fresh EPCs, each over the threshold that
sends dedup to its worker thread, so the key registry grows, expires and compacts (its
arrays are swapped) in that thread. Meanwhile a task on the loop reads the open
sightings and the status as fast as it can. Every row it sees must be a real sighting:
the EPC says which batch it came from, and that fixes the row's times and read count.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tagsweep.daemon.read_pipeline import THREAD_DEDUP_READS
from tagsweep.daemon.supervisor import Gateway
from tagsweep.domain import empty_reads, now_us
from tagsweep.drivers import Driver, DriverEvent

from .harness import make_config, wait_until

TAGS_PER_BATCH = 20_000
READS_PER_TAG = 3
STEP_US = 200_000  # reader time between batches: four windows, so each batch expires
BATCHES = 24


class FloodDriver(Driver):
    """Batch ``b`` reads tags ``b:0 … b:TAGS_PER_BATCH-1``, each READS_PER_TAG times, all
    at reader time ``base + b * STEP_US``; it waits until the gateway took a batch in."""

    schemes: ClassVar[tuple[str, ...]] = ("flood",)

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.base_us = now_us()
        self.sent = 0
        self.drained: Callable[[], bool] = lambda: True  # the gateway took the last batch

    async def _connect(self) -> None:
        return None

    async def _disconnect(self) -> None:
        return None

    async def _receive(self) -> AsyncIterator[DriverEvent]:
        tails = np.array([f"{i:08X}00000000".encode() for i in range(TAGS_PER_BATCH)])
        while not self.closing and self.sent < BATCHES:
            b = self.sent
            n = TAGS_PER_BATCH * READS_PER_TAG
            batch = empty_reads(n)
            epcs = np.char.add(f"{b:08X}".encode(), tails).astype("S64")
            batch["epc"] = np.repeat(epcs, READS_PER_TAG)
            batch["antenna"] = 1
            batch["rssi"] = -50.0
            batch["first_seen_us"] = batch["last_seen_us"] = self.base_us + b * STEP_US
            self.sent += 1
            self.counters.reads += n
            yield batch
            while not self.drained():  # one batch per flush: each goes to the worker
                await asyncio.sleep(0.001)
        while not self.closing:
            await asyncio.sleep(0.05)


_HEX = np.full(256, 1 << 40, dtype=np.int64)  # not a hex digit: far out of range
_HEX[np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)] = np.arange(16)


def _hex(epcs: np.ndarray, word: int) -> np.ndarray:
    """The ``word``-th group of 8 hex digits of each EPC, as integers."""
    digits = (
        np.ascontiguousarray(epcs).view(np.uint8).reshape(len(epcs), -1)[:, 8 * word : 8 * word + 8]
    )
    values = _HEX[digits]
    out: np.ndarray = (values << (4 * np.arange(7, -1, -1))).sum(axis=1)
    return out


def check_rows(rows: np.ndarray, ids: np.ndarray, base_us: int) -> None:
    assert len(rows) == len(ids)
    assert len(set(ids.tolist())) == len(ids), "a sighting id twice"
    if not len(rows):
        return
    batch, tag, rest = (_hex(rows["epc"], k) for k in range(3))
    assert (tag < TAGS_PER_BATCH).all(), "an EPC nobody sent"
    assert (rest == 0).all(), "an EPC nobody sent"
    assert (rows["first_seen_us"] == base_us + batch * STEP_US).all(), "first_seen of another"
    assert (rows["last_seen_us"] == rows["first_seen_us"]).all(), "last_seen of another"
    assert (rows["read_count"] == READS_PER_TAG).all(), "read_count of another"
    assert (rows["reader"] == 0).all()


async def test_loop_readers_never_see_the_dedup_state_the_worker_holds(
    tmp_path: Path, short_dir: Path
) -> None:
    assert TAGS_PER_BATCH * READS_PER_TAG >= THREAD_DEDUP_READS  # the worker thread path
    cfg = make_config(
        tmp_path,
        short_dir,
        readers=[{"name": "flood", "url": "sim://placeholder", "role": "handheld"}],
        window_s=0.05,
        flush_s=0.01,
    )
    gw = Gateway(cfg, control_socket=False)
    flood = FloodDriver("flood://x", name="flood", reader_id=0)
    gw.devices[0].driver = flood
    flood.drained = lambda: gw.status()["dedup"]["pending_reads"] == 0
    reads_seen = 0
    errors: list[BaseException] = []
    finished = asyncio.Event()

    async def read_on_the_loop() -> None:
        nonlocal reads_seen
        while not finished.is_set():
            try:
                status = gw.status()
                assert status["dedup"]["open_sightings"] >= 0
                rows, ids = gw.open_sightings()
                check_rows(rows, ids, flood.base_us)
                reads_seen += 1
            except Exception as exc:  # collected: the test reports them all at the end
                errors.append(exc)
            await asyncio.sleep(
                0.001
            )  # a reader that yields: a spin would starve the worker of the GIL

    async with gw:
        reader = asyncio.create_task(read_on_the_loop())
        await wait_until(lambda: flood.sent == BATCHES, what="every batch sent", timeout_s=120)
        await gw.sync()
        finished.set()
        await reader
        flushes = gw.counters.dedup_flushes
    assert not errors, f"{len(errors)} bad reads, first: {errors[0]!r}"
    assert reads_seen > flushes  # the loop did read while batches were folded in
    assert gw.counters.sightings_closed == BATCHES * TAGS_PER_BATCH
    assert gw.store is not None
    assert gw.store.committed_closed == BATCHES * TAGS_PER_BATCH
