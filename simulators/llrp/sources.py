"""Tag sources for the LLRP simulator: what the simulated antennas "see".

A tag source is a factory the simulator calls once per client connection (when the
first ROSpec starts) to get an async iterator of read batches; each batch becomes one or
more RO_ACCESS_REPORTs. The world model plugs in here; these two are for the CLI, tests
and benchmarks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np

from tagsweep.domain import ReadBatch, empty_reads, now_us

TagSource = Callable[[], AsyncIterator[ReadBatch]]


def random_epcs(count: int, seed: int = 0) -> np.ndarray:
    """``count`` random 96-bit EPCs as upper-case hex (``S64``); collisions are negligible."""
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 2**32, size=(count, 3), dtype=np.uint64)
    return np.array([f"{a:08X}{b:08X}{c:08X}".encode() for a, b, c in words], dtype="S64")


def random_reads(
    epcs: np.ndarray,
    n: int,
    rng: np.random.Generator,
    antennas: Sequence[int] = (1,),
    *,
    impinj: bool = False,
    now: int | None = None,
) -> ReadBatch:
    """``n`` reads of tags drawn from ``epcs``, timestamped around ``now``."""
    batch = empty_reads(n)
    ts = now_us() if now is None else now
    batch["epc"] = epcs[rng.integers(0, len(epcs), size=n)]
    batch["antenna"] = rng.choice(np.asarray(antennas, dtype=np.uint16), size=n)
    batch["rssi"] = np.rint(rng.normal(-58.0, 6.0, size=n))
    batch["last_seen_us"] = ts
    batch["first_seen_us"] = ts - rng.integers(0, 50_000, size=n)
    batch["seen_count"] = rng.integers(1, 6, size=n)
    if impinj:
        batch["phase"] = (rng.integers(0, 4096, size=n) * (2 * np.pi / 4096)).astype(np.float32)
        batch["doppler_hz"] = rng.integers(-400, 400, size=n) / 16.0
    return batch


def random_tags(
    count: int = 500,
    rate: float = 1000.0,
    *,
    antennas: Sequence[int] = (1,),
    interval_s: float = 0.05,
    seed: int = 0,
    limit: int | None = None,
    impinj: bool = False,
) -> TagSource:
    """``count`` random tags read at about ``rate`` reads/s (``limit`` reads per connection)."""
    if count < 1 or rate <= 0 or interval_s <= 0:
        raise ValueError("count, rate and interval_s must be positive")
    epcs = random_epcs(count, seed)

    async def source() -> AsyncIterator[ReadBatch]:
        rng = np.random.default_rng(seed)
        loop = asyncio.get_running_loop()
        sent = 0
        started = loop.time()
        while limit is None or sent < limit:
            due = int((loop.time() - started) * rate) - sent + 1
            n = max(1, due) if limit is None else min(max(1, due), limit - sent)
            yield random_reads(epcs, n, rng, antennas, impinj=impinj)
            sent += n
            await asyncio.sleep(interval_s)

    return source


def batches_source(batches: Sequence[ReadBatch], *, pause_s: float = 0.0) -> TagSource:
    """Replay ``batches`` on every connection (tests: known reads, known order)."""

    async def source() -> AsyncIterator[ReadBatch]:
        for batch in batches:
            yield batch
            await asyncio.sleep(pause_s)

    return source
