"""Live replay of a scenario: the :class:`ReplayClock` mapping world time onto the
wall clock (the clock model in the package docstring), the paced tag source for the
LLRP simulator, the paced scan script for the scanner simulator, and :class:`Replay`
bundling them on one clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tagsweep.domain import ReadBatch
from tagsweep.simulators.world.site import IntArray

if TYPE_CHECKING:  # the walk builds replays, so it imports this module
    from tagsweep.simulators.world.walk import ScriptedScan


class ReplayClock:
    """Maps world time onto the wall clock (see the package docstring's clock model)."""

    def __init__(
        self, world_start_us: int, speed: float = 1.0, *, wait_for_open: bool = False
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.world_start_us = world_start_us
        self.speed = speed
        self.anchor_wall_us: int | None = None
        #: with ``wait_for_open``, the replay (reads and scans) waits for :meth:`open`:
        #: a test opens it once its count session is, however long start-up took
        self._opened: asyncio.Event | None = asyncio.Event() if wait_for_open else None

    def open(self) -> None:
        """Anchor the clock now and release the replay waiting in :meth:`opened`."""
        self.start()
        if self._opened is not None:
            self._opened.set()

    async def opened(self) -> None:
        if self._opened is not None:
            await self._opened.wait()

    def start(self, wall_us: int | None = None) -> None:
        """Anchor the clock now (first call only; later calls keep the first anchor)."""
        if self.anchor_wall_us is None:
            self.anchor_wall_us = wall_us if wall_us is not None else time.time_ns() // 1000

    def _anchor(self) -> int:
        self.start()
        assert self.anchor_wall_us is not None
        return self.anchor_wall_us

    def to_wall(self, world_us: int | IntArray) -> IntArray:
        delta = (np.asarray(world_us, dtype=np.int64) - self.world_start_us) / self.speed
        result: IntArray = self._anchor() + np.round(delta).astype(np.int64)
        return result

    def to_world(self, wall_us: int) -> int:
        return self.world_start_us + int((wall_us - self._anchor()) * self.speed)

    async def sleep_until(self, world_us: int) -> None:
        wall = int(self.to_wall(world_us))
        delay = (wall - time.time_ns() // 1000) / 1_000_000
        if delay > 0:
            await asyncio.sleep(delay)


def replay_batches(
    reads: ReadBatch, clock: ReplayClock, *, from_world_us: int, batch_s: float = 0.1
) -> Iterator[tuple[int, ReadBatch]]:
    """(world release time, batch) pairs: the reads from ``from_world_us`` on, cut into
    batches of ``batch_s`` wall seconds, timestamps rewritten to the wall clock."""
    times = reads["last_seen_us"]
    step = max(1, int(batch_s * 1_000_000 * clock.speed))
    lo = int(np.searchsorted(times, from_world_us, side="left"))
    while lo < reads.size:
        edge = int(times[lo]) - int(times[lo]) % step + step
        hi = int(np.searchsorted(times, edge, side="left"))
        batch = reads[lo:hi].copy()
        batch["first_seen_us"] = clock.to_wall(batch["first_seen_us"])
        batch["last_seen_us"] = clock.to_wall(batch["last_seen_us"])
        yield edge, batch
        lo = hi


def tag_source(
    reads: ReadBatch, clock: ReplayClock, *, batch_s: float = 0.1
) -> Callable[[], AsyncIterator[ReadBatch]]:
    """A per-connection tag source for the LLRP simulator.

    Each call starts an iterator that yields batches when their wall time comes. The
    first call anchors the clock; a later (re)connection picks up at the present and
    never sees reads from while it was away. The iterator ends after the last read.
    """
    reads = reads[np.argsort(reads["last_seen_us"], kind="stable")]

    async def source() -> AsyncIterator[ReadBatch]:
        await clock.opened()
        clock.start()
        now_world = clock.to_world(time.time_ns() // 1000)
        for release, batch in replay_batches(
            reads, clock, from_world_us=now_world, batch_s=batch_s
        ):
            await clock.sleep_until(release)
            yield batch

    return source


async def scan_lines(scans: Sequence[ScriptedScan], clock: ReplayClock) -> AsyncIterator[str]:
    """The scan script as lines released at their wall time (shares the reads' clock)."""
    await clock.opened()
    clock.start()
    for scan in sorted(scans, key=lambda s: s.t_us):
        await clock.sleep_until(scan.t_us)
        yield scan.line


def scan_delays(
    scans: Sequence[ScriptedScan], *, speed: float = 1.0, since_us: int | None = None
) -> list[tuple[float, str]]:
    """The scan script as ``(seconds after the previous line, line)`` pairs.

    ``since_us`` is the world time the first delay counts from (the scenario start, so
    the script lines up with a tag source anchored at the same moment).
    """
    ordered = sorted(scans, key=lambda s: s.t_us)
    prev = since_us if since_us is not None else (ordered[0].t_us if ordered else 0)
    out: list[tuple[float, str]] = []
    for scan in ordered:
        out.append((max(0.0, (scan.t_us - prev) / 1_000_000 / speed), scan.line))
        prev = scan.t_us
    return out


@dataclass(frozen=True)
class Replay:
    """Live sources of one scenario on one shared clock (the clock model: package docstring).

    ``tag_source`` plugs into the LLRP simulator (``LlrpSimulator(tag_source=...)``);
    ``scan_script()`` into the scanner simulator (``ScannerSimulator(script=...)``).
    """

    clock: ReplayClock
    tag_source: Callable[[], AsyncIterator[ReadBatch]]
    scans: tuple[ScriptedScan, ...] = ()

    def scan_script(self) -> AsyncIterator[str]:
        return scan_lines(self.scans, self.clock)
