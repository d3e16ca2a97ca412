"""What a simulated reader sends on its own, for one connection: KEEPALIVEs on their
timer, the report pump turning the tag source into RO_ACCESS_REPORTs while a ROSpec
inventories (cut to N reads, the reader's limit and its message size cap, with the
client's content selector), the answer to GET_REPORT, and AccessSpecs run on the reads.
The session class (:mod:`.session`) mixes it in."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np

from tagsweep.domain import READ_DTYPE, ReadBatch
from tagsweep.simulators.llrp import encoder as enc
from tagsweep.simulators.llrp.access import AccessSpecRequest, apply_access
from tagsweep.simulators.llrp.encoder import MessageType as M
from tagsweep.simulators.llrp.faults import FaultKind, FaultyReader
from tagsweep.simulators.llrp.rospec import RunningSpec


class ReportPump(FaultyReader):
    """The reader-initiated half of a connection (the session class mixes it in)."""

    rospecs: dict[int, RunningSpec]
    held: list[ReadBatch]
    access_specs: dict[int, AccessSpecRequest]
    keepalive_ms: int
    inventorying: asyncio.Event
    events_enabled: bool
    _tasks: list[asyncio.Task[None]]

    def _restart_keepalive(self) -> None:
        for task in [t for t in self._tasks if t.get_name() == "llrp-sim-keepalive"]:
            task.cancel()
            self._tasks.remove(task)
        if self.keepalive_ms > 0:
            self._tasks.append(asyncio.create_task(self._keepalive(), name="llrp-sim-keepalive"))

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_ms / 1000)
            if self.silent or self._fault_now(FaultKind.MISSED_KEEPALIVES):
                self.silent = True
                continue
            self.emit(enc.keepalive(self._msg_id()))
            self.log.keepalives += 1

    async def _pump(self) -> None:
        """Turn the tag source into RO_ACCESS_REPORTs while a ROSpec is active."""
        if self.sim.tag_source is None:
            return
        source = self.sim.tag_source()
        loop = asyncio.get_running_loop()
        try:
            async for batch in source:
                while (spec := self._inventorying_spec()) is None:
                    self.inventorying.clear()  # set again when an AISpec starts
                    await self.inventorying.wait()
                if self.pending_faults:  # due faults come even while N is filling
                    await self._inject_faults()
                self.log.observed += len(batch)
                await spec.observe(batch, loop.time())
                await self.writer.drain()
            self.log.source_done = True
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            self.logger.exception("llrp_tag_source_failed")
            raise
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    def _report_held(self, msg_id: int) -> None:
        """GET_REPORT: one RO_ACCESS_REPORT with the reads held since the last one, with
        the request's message id (empty when there are none, as a reader answers)."""
        for spec in self.rospecs.values():  # read under an "upon N tags" trigger too
            self.held.extend(spec.pending)
            spec.pending = []
        reads = np.concatenate(self.held) if self.held else np.zeros(0, dtype=READ_DTYPE)
        self.held.clear()
        self.send(enc.ro_access_report(msg_id, reads, b"", self._selector(None)))
        self.log.sent.append(reads)
        self.log.reports += 1

    async def _send_reads(self, batch: ReadBatch, report_n: int, spec: RunningSpec) -> None:
        """Encode the batch once, then cut it into reports of at most N reads, at most
        the reader's own limit per message, and no larger than its message size cap."""
        per_report = min(report_n or self.sim.max_reads_per_report, self.sim.max_reads_per_report)
        selector = self._selector(spec)
        tag_extra = self.profile.tag_extra
        if self.access_specs and self.sim.tag_field is not None:
            batch = self._access(batch, spec, selector)
        body, offsets = enc.tag_report_records(batch, tag_extra, selector=selector)
        cap = self.profile.max_message_bytes - enc.HEADER_SIZE
        start = 0
        while start < len(batch):
            if self.pending_faults:
                await self._inject_faults()
            if self.silent:  # stalled or hung: never send again
                await asyncio.Event().wait()
            stop = min(start + per_report, len(batch))
            while stop > start + 1 and offsets[stop] - offsets[start] > cap:
                stop = start + max(1, (stop - start) // 2)
            reads = batch[start:stop]
            if self.extra:  # this report carries an injected parameter: encode it alone
                report = enc.ro_access_report(
                    self._msg_id(), reads, self.extra + tag_extra, selector
                )
                self.extra = b""
            else:
                chunk = body[offsets[start] : offsets[stop]]
                report = enc.message(M.RO_ACCESS_REPORT, self._msg_id(), chunk)
            if self.profile.split_segments and self.events_enabled and len(report) > 1:
                # one report, two TCP segments: the client must reassemble it
                half = len(report) // 2
                self.send(report[:half])
                await self.writer.drain()
                await asyncio.sleep(0)
                self.send(report[half:])
            else:
                self.emit(report)
            self.log.sent.append(reads.copy())
            self.log.reports += 1
            start = stop

    def _access(
        self, batch: ReadBatch, spec: RunningSpec, selector: enc.ContentSelector
    ) -> ReadBatch:
        """Run the AccessSpecs on the tags read; each accessed read goes in a report of
        its own with its OpSpec results; the others are returned."""
        assert self.sim.tag_field is not None
        accessed = apply_access(
            self.access_specs, self.sim.tag_field, batch, spec.request.rospec_id
        )
        for row, results in accessed:
            reads = batch[row : row + 1]
            extra = results + self.profile.tag_extra
            self.emit(enc.ro_access_report(self._msg_id(), reads, extra, selector))
            self.log.sent.append(reads.copy())
            self.log.reports += 1
        keep = np.ones(len(batch), dtype=bool)
        keep[[row for row, _ in accessed]] = False
        return batch[keep]

    def _selector(self, spec: RunningSpec | None) -> enc.ContentSelector:
        spec = spec or next((s for s in self.rospecs.values() if s.state == "active"), None)
        selector = spec.request.selector if spec is not None else enc.EVERYTHING
        identity = self.sim.identity
        return replace(
            selector,
            uptime_since_us=identity.booted_us,
            utc_offset_us=identity.clock_offset_us,
        )

    def _antennas(self) -> tuple[int, ...]:
        for spec in self.rospecs.values():
            if spec.state == "active" and spec.request.antennas:
                return tuple(a for a in spec.request.antennas if a) or (1,)
        return (1,)
