"""The reader thread → event loop hand-over: what the thread posts (read batches and
:class:`Signal` events) and the :class:`Bridge` that queues them, wakes the loop and
pushes back on the reader when the consumer falls behind."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from dataclasses import dataclass

from tagsweep.domain import ReadBatch
from tagsweep.drivers.llrp.frames import Problem


@dataclass(frozen=True, slots=True)
class Signal:
    """A non-read event from the reader thread."""

    kind: str  # keepalive | problem | lost | inventorying | knock | power | frequency
    detail: str = ""
    problem: Problem | None = None


Item = ReadBatch | Signal


class Bridge:
    """Thread → event loop hand-over: a locked deque plus one call_soon_threadsafe wake-up."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_pending_reads: int) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: deque[Item] = deque()
        self._wake_pending = False
        self._pending_reads = 0
        self._max_pending_reads = max_pending_reads
        self._space = threading.Event()
        self._space.set()
        self.ready = asyncio.Event()

    def post(self, item: Item) -> None:
        """Thread side: queue ``item`` and wake the loop unless a wake-up is on its way."""
        with self._lock:
            self._items.append(item)
            if not isinstance(item, Signal):
                self._pending_reads += len(item)
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            # RuntimeError: the loop is closed, nobody is listening any more
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake)

    def wait_for_space(self, stop: threading.Event) -> None:
        """Thread side: block (not reading the socket) while the consumer is behind."""
        while not stop.is_set():
            with self._lock:
                if self._pending_reads <= self._max_pending_reads:
                    return
                self._space.clear()
            self._space.wait(0.1)

    def _wake(self) -> None:
        with self._lock:
            self._wake_pending = False
        self.ready.set()

    def has_items(self) -> bool:
        with self._lock:
            return bool(self._items)

    def take(self) -> list[Item]:
        """Loop side: everything queued so far (reads stay counted until released)."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    def release(self, reads: int) -> None:
        """Loop side: ``reads`` reached the consumer; the thread may read on."""
        with self._lock:
            self._pending_reads -= reads
            if self._pending_reads <= self._max_pending_reads:
                self._space.set()

    @property
    def pending_reads(self) -> int:
        """Reads decoded but not yet handed to the consumer."""
        return self._pending_reads
