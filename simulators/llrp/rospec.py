"""The simulated reader's ROSpec engine: an ROSpec runs as LLRP 1.0.1 section 10 says.

A client's ROSpec decides when the reader inventories and when it reports, and clients
depend on it: pyllrp (CrossMgr's client) asks for one AISpec that stops on a
TagObservation trigger and for one report at the end of the ROSpec, then disables and
deletes the ROSpec; sllurp asks for continuous inventory with a report every N tags. So:

* **start trigger** (ROSpecStartTrigger): Null (START_ROSPEC only), Immediate (on
  ENABLE_ROSPEC), Periodic (after the offset, then every period); GPI is not modelled
  and behaves as Null.
* **stop trigger** (ROSpecStopTrigger): Null (done when its AISpecs are done, or on
  STOP_ROSPEC), Duration (the AISpecs run again and again until it expires), GPI with
  timeout (the timeout).
* **AISpec stop trigger**: Null (until the ROSpec stops), Duration, GPI with timeout (the
  timeout), TagObservation: upon seeing N tags, upon no new tag for T ms, or N attempts
  to see all tags (one batch of the tag source is one inventory round), each or the
  timeout.
* **ROReportSpec**: None (reads wait for GET_REPORT), Upon_N_Tags_Or_End_Of_AISpec,
  Upon_N_Tags_Or_End_Of_ROSpec (N = 0: only at the end).
* **STOP, DISABLE and DELETE** of a running ROSpec end it, and what its report trigger
  says is due at the end is sent before the response.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from tagsweep.domain import ReadBatch
from tagsweep.simulators.llrp.encoder import AISpecRequest, ROSpecRequest

#: sends reads as RO_ACCESS_REPORTs of at most N reads each (the session's report path)
SendReads = Callable[[ReadBatch, int, "RunningSpec"], Awaitable[None]]

START_NULL, START_IMMEDIATE, START_PERIODIC = 0, 1, 2
STOP_NULL, STOP_DURATION, STOP_GPI = 0, 1, 2
AI_NULL, AI_DURATION, AI_GPI, AI_TAG_OBSERVATION = 0, 1, 2, 3
OBSERVE_N_TAGS, OBSERVE_NO_NEW_TAGS, OBSERVE_N_ATTEMPTS = 0, 1, 2
REPORT_NONE, REPORT_END_OF_AISPEC, REPORT_END_OF_ROSPEC = 0, 1, 2


@dataclass(slots=True)
class _Round:
    """What the AISpec in progress has seen (for its TagObservation trigger)."""

    started: float
    attempts: int = 0
    tags: set[bytes] = field(default_factory=set)
    last_new: float = 0.0


class RunningSpec:
    """One ROSpec on one connection: its state, its runs and its unreported reads."""

    def __init__(self, request: ROSpecRequest, send: SendReads, hold: Callable[[ReadBatch], None]):
        self.request = request
        self.state = "disabled"  # disabled | inactive | active
        self._send = send
        self._hold = hold
        self.pending: list[ReadBatch] = []  # read, not reported yet
        self.aispec: AISpecRequest | None = None  # the AISpec inventorying now
        self._round: _Round | None = None
        self._changed = asyncio.Event()
        self._stopping = False
        self._run: asyncio.Task[None] | None = None
        self._starter: asyncio.Task[None] | None = None
        self.on_change: Callable[[], None] = lambda: None  # the session re-reads states
        self.runs = 0  # how often it started

    @property
    def inventorying(self) -> bool:
        return self.state == "active" and self.aispec is not None

    @property
    def report_n(self) -> int:
        return self.request.report_n if self.request.report_trigger else 0

    # -- the client's requests ------------------------------------------------------------
    def enable(self) -> None:
        if self.state != "disabled":
            return
        self.state = "inactive"
        trigger = self.request.start_trigger
        if trigger == START_IMMEDIATE:
            self.start()
        elif trigger == START_PERIODIC and self.request.period_ms:
            self._starter = asyncio.create_task(self._periodic(), name="llrp-sim-periodic")

    def start(self) -> None:
        if self.state == "active":
            return
        self.state = "active"
        self.runs += 1
        self._stopping = False
        self._run = asyncio.create_task(self._execute(), name="llrp-sim-rospec")
        self.on_change()

    async def stop(self) -> None:
        """STOP_ROSPEC (and the first half of DISABLE and DELETE): end the run, send
        what is due at its end."""
        run = self._run
        if run is not None and not run.done():
            self._stopping = True
            self._changed.set()
            await asyncio.wait({run})
        self._run = None

    async def disable(self) -> None:
        if self._starter is not None:
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starter
            self._starter = None
        await self.stop()
        self.state = "disabled"
        self.on_change()

    def cancel(self) -> None:
        """The connection is gone: end its tasks without reporting."""
        for task in (self._run, self._starter):
            if task is not None:
                task.cancel()

    # -- reads ---------------------------------------------------------------------------
    async def observe(self, batch: ReadBatch, now: float) -> None:
        """The antennas saw ``batch`` (one inventory round) while this spec inventoried."""
        trigger = self.request.report_trigger
        if trigger == REPORT_NONE:
            self._hold(batch.copy())
        else:
            self.pending.append(batch.copy())
            n = self.request.report_n
            if n:
                await self._report(whole_reports_of=n)
        seen = self._round
        if seen is not None:
            seen.attempts += 1
            before = len(seen.tags)
            seen.tags.update(batch["epc"].tolist())
            if len(seen.tags) > before:
                seen.last_new = now
            self._changed.set()

    async def _report(self, whole_reports_of: int = 0) -> None:
        """Send the pending reads: all of them, or only whole reports of N."""
        if not self.pending:
            return
        reads = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        keep = len(reads) % whole_reports_of if whole_reports_of else 0
        if keep == len(reads):
            self.pending = [reads] if len(reads) else []
            return
        self.pending = [reads[len(reads) - keep :]] if keep else []
        await self._send(reads[: len(reads) - keep], self.request.report_n, self)

    # -- the run -------------------------------------------------------------------------
    async def _periodic(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.request.period_offset_ms / 1000)
        while True:
            began = loop.time()
            self.start()
            if self._run is not None:
                await asyncio.wait({self._run})
            await asyncio.sleep(max(0.0, self.request.period_ms / 1000 - (loop.time() - began)))

    async def _execute(self) -> None:
        loop = asyncio.get_running_loop()
        request = self.request
        deadline = None
        if request.stop_trigger in (STOP_DURATION, STOP_GPI) and request.stop_duration_ms:
            deadline = loop.time() + request.stop_duration_ms / 1000
        aispecs = request.aispecs or [AISpecRequest(request.antennas)]
        try:
            while not self._stopping:
                for aispec in aispecs:
                    await self._inventory(aispec, deadline)
                    self.aispec = self._round = None
                    if request.report_trigger == REPORT_END_OF_AISPEC:
                        await self._report()
                    if self._stopping or (deadline is not None and loop.time() >= deadline):
                        self._stopping = True
                        break
                if request.stop_trigger == STOP_NULL:
                    break  # done when its AISpecs are done
            if request.report_trigger in (REPORT_END_OF_AISPEC, REPORT_END_OF_ROSPEC):
                await self._report()
        finally:  # ended, or cancelled with the connection
            self.aispec = self._round = None
            if self.state == "active":
                self.state = "inactive"
            self.on_change()

    async def _inventory(self, aispec: AISpecRequest, rospec_deadline: float | None) -> None:
        """Run one AISpec until its stop trigger (or the ROSpec's) says it is done."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.aispec, self._round = aispec, _Round(started, last_new=started)
        self.on_change()
        seen = self._round
        limit = aispec.duration_ms / 1000 if aispec.duration_ms else None
        if aispec.stop_trigger == AI_NULL:
            limit = None
        while not self._stopping:
            now = loop.time()
            due = [rospec_deadline] if rospec_deadline is not None else []
            if limit is not None:
                due.append(started + limit)
            if aispec.stop_trigger == AI_TAG_OBSERVATION:
                if aispec.observation == OBSERVE_N_TAGS and len(seen.tags) >= max(
                    1, aispec.number_of_tags
                ):
                    return
                if aispec.observation == OBSERVE_N_ATTEMPTS and seen.attempts >= max(
                    1, aispec.number_of_attempts
                ):
                    return
                if aispec.observation == OBSERVE_NO_NEW_TAGS:
                    due.append(seen.last_new + aispec.quiet_ms / 1000)
            if due and now >= min(due):
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait(), timeout=(min(due) - now) if due else None
                )
