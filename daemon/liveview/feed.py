"""Feeding the live view from the running gateway.

The gateway tells the outside world what happens through its events (the same ones MQTT
publishes); :class:`LiveFeed` is one more event sink. It turns them into the live count
of the open session:

* ``session_started`` with an ``expected`` register file → a :class:`LiveCount` of the
  session's scope (the register was loaded and checked by :meth:`LiveFeed.prepare`
  before the session opened, so a bad file is an error at ``session start``, not a
  silent empty page);
* ``location_context`` → the page's context, and a new segment for attribution;
* ``sighting_opened`` of a handheld → the item is ticked off at once, where the operator
  stands; ``sighting_closed`` → evidence for the daemon's location attribution
  (:class:`~tagsweep.daemon.location.LocationAttributor`), whose verdict for every EPC
  moves items to where the evidence says they are, cross-reads and all. A fixed
  reader's sightings count at the reader's location; portal sightings are passes, not
  presence, and are left to the portal events;
* ``scan`` of an asset tag or serial → ticked off like a read;
* ``reader_state`` → reader and scanner health; reads/s comes from the gateway's own
  per-reader counters at each flush;
* ``session_stopped`` → the page shows the final state and stops following.

After a restart the gateway resumes its open session and calls :meth:`LiveFeed.resume`
with the register the store kept for it: the register is reloaded and the session's
committed observations replayed, so the count shows the progress it had before.

The feed never blocks ingest for long: everything but ``prepare`` is dict updates and
one vectorised attribution per flush.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from tagsweep.daemon.events import EventKind, GatewayEvent
from tagsweep.daemon.liveview.count import LiveCount
from tagsweep.daemon.liveview.register import ExpectedAsset, RegisterFileError, load_register
from tagsweep.daemon.liveview.view import LiveView, UnknownSessionError
from tagsweep.daemon.location import LocationAttributor
from tagsweep.daemon.sessions import SessionError
from tagsweep.domain import SIGHTING_DTYPE, CountSession, Method
from tagsweep.epc import EpcScheme
from tagsweep.logs import get_logger

if TYPE_CHECKING:
    from tagsweep.daemon.liveview.server import LiveWebServer
    from tagsweep.daemon.supervisor import Gateway


_SCHEMES: dict[str, EpcScheme] = {"giai96": "giai96", "ascii": "ascii", "mapping": "mapping"}

log = get_logger(__name__)


class LiveFeed:
    """The gateway's live view: an event sink that keeps :attr:`view` up to date."""

    def __init__(self, gateway: Gateway, view: LiveView | None = None) -> None:
        self.gateway = gateway
        self.view = view or LiveView()
        self.server: LiveWebServer | None = None
        config = gateway.config
        self.epc_scheme: EpcScheme = _SCHEMES.get(config.engine.epc_scheme, "giai96")
        self._roles: dict[str, tuple[str, str | None]] = {
            r.name: (r.role, r.location) for r in config.readers
        }
        self._kinds = {d.name: d.kind for d in gateway.devices}
        self._prepared: dict[str, list[ExpectedAsset]] = {}
        self._count: LiveCount | None = None
        self._attributor: LocationAttributor | None = None
        self._reads_seen: dict[str, int] = {}
        for device in gateway.devices:
            self.view.set_source_state(device.name, device.kind, device.driver.state.value)
        self.view.refresh_health = self._count_reads

    # -- before a session opens --------------------------------------------------------

    async def prepare(self, expected: str) -> int:
        """Load and check an expected register before the session that names it opens;
        return its number of assets. Raises SessionError with what is wrong."""
        try:
            assets = await asyncio.to_thread(load_register, Path(expected))
        except RegisterFileError as exc:
            raise SessionError(f"--expected: {exc}") from None
        if not assets:
            raise SessionError(f"--expected: {expected}: the register has no usable rows")
        self._prepared = {expected: assets}  # one at a time: a start uses it or forgets it
        return len(assets)

    def forget(self, expected: str) -> None:
        """Drop a prepared register the session start did not use (it was refused)."""
        self._prepared.pop(expected, None)

    # -- the event sink ----------------------------------------------------------------

    async def emit(self, events: Sequence[GatewayEvent]) -> None:
        sightings: list[Mapping[str, Any]] = []
        for event in events:
            kind, payload = event.kind, event.payload
            if kind is EventKind.SIGHTING_OPENED:
                self._on_opened(payload)
            elif kind is EventKind.SIGHTING_CLOSED:
                role, location = self._roles.get(str(payload.get("reader")), ("handheld", None))
                if self._count is None or role == "portal":
                    continue
                if role == "fixed" and location:
                    self._count.observe_epc(str(payload["epc"]), location)
                else:
                    sightings.append(payload)
            elif kind is EventKind.SCAN:
                self._on_scan(payload)
            elif kind is EventKind.LOCATION_CONTEXT:
                self._on_context(payload, event.ts_us)
            elif kind is EventKind.READER_STATE:
                name = str(payload.get("reader"))
                self.view.set_source_state(
                    name,
                    self._kinds.get(name, "reader"),
                    str(payload.get("state")),
                    str(payload.get("reason") or ""),
                )
            elif kind is EventKind.SESSION_STARTED:
                await self._on_started(payload, event.ts_us)
            elif kind is EventKind.SESSION_STOPPED:
                if self._count is not None:
                    self._count.close()
                self._count = self._attributor = None
        if sightings and self._attributor is not None and self._count is not None:
            self._attributor.add(_sighting_rows(sightings))
            self._count.observe_attributions(self._attributor.attribute())
        self._count_reads()

    def _count_reads(self) -> None:
        for name, total in self.gateway.counters.by_reader.items():
            delta = total - self._reads_seen.get(name, 0)
            if delta > 0:
                self._reads_seen[name] = total
                self.view.count_reads(name, delta, self._kinds.get(name, "reader"))

    async def _on_started(self, payload: Mapping[str, Any], ts_us: int) -> None:
        expected = payload.get("expected")
        if not expected:
            return  # a count without an expected register: nothing to compare against
        assets = self._prepared.pop(str(expected), None)
        if assets is None:
            assets = await asyncio.to_thread(load_register, Path(str(expected)))
        scope = list(payload.get("scope") or []) or [str(payload["location"])]
        count = LiveCount(
            str(payload["session_id"]),
            scope,
            assets,
            site=str(payload.get("site") or ""),
            operator=str(payload.get("operator") or ""),
            epc_scheme=self.epc_scheme,
            started_us=ts_us,
        )
        self._count = self.view.add(count)
        self._attributor = LocationAttributor()
        self._on_context(payload, ts_us)
        self._seed_open_sightings(count, ts_us)
        log.info(
            "live_count_started",
            session=count.session_id,
            expected=count.expected_count(),
            register=str(expected),
        )

    async def resume(self, session: CountSession, expected: str) -> bool:
        """Restore the live count of a session the gateway resumed after a restart:
        reload its expected register and replay the session's committed evidence (the
        observations its file would hold now), so progress picks up where it was.
        A register that cannot be read any more only costs the live view: a warning,
        and the count goes on without it. Returns whether the live count is back."""
        try:
            assets = await asyncio.to_thread(load_register, Path(expected))
        except RegisterFileError as exc:
            problem = str(exc)
        else:
            problem = "" if assets else f"{expected}: the register has no usable rows"
        if problem:
            log.warning(
                "live_count_not_restored",
                session=session.session_id,
                register=expected,
                error=problem,
                hint="the count goes on; the live view has no expected register for it",
            )
            return False
        scope = [str(s) for s in session.scope] or [str(session.location_context or session.site)]
        count = LiveCount(
            session.session_id,
            scope,
            assets,
            site=session.site,
            operator=session.operator,
            epc_scheme=self.epc_scheme,
            started_us=session.started_us,
        )
        observations = await self.gateway.observations()
        _replay(count, observations)
        self._count = self.view.add(count)
        self._attributor = LocationAttributor()
        if session.location_context is not None:
            location = str(session.location_context)
            count.set_location_context(location)
            self._attributor.set_context(session.started_us, location)
        log.info(
            "live_count_restored",
            session=count.session_id,
            register=expected,
            observations=observations.num_rows,
            **count.totals(),
        )
        return True

    def _seed_open_sightings(self, count: LiveCount, started_us: int) -> None:
        """Tags being read right now whose sightings opened before the session did (the
        reader was already on): they are here, and no "opened" event will say so. Open
        means last read less than the dedup window before the start, the same rule the
        session's file uses (a sighting not swept yet but older than that is not)."""
        rows, _ = self.gateway.open_sightings()  # a copy: dedup may be busy on its thread
        names = [d.name for d in self.gateway.devices]
        for row in rows[rows["last_seen_us"] > started_us - self.gateway.pipeline.window_us]:
            index = int(row["reader"])
            name = names[index] if index < len(names) else ""
            role, location = self._roles.get(name, ("handheld", None))
            if role == "portal":
                continue
            epc = bytes(row["epc"]).decode("ascii")
            count.observe_epc(epc, location if role == "fixed" else None)

    def _on_context(self, payload: Mapping[str, Any], ts_us: int) -> None:
        count = self._count
        if count is None or payload.get("session_id") != count.session_id:
            return
        location = str(payload["location"])
        count.set_location_context(location)
        if self._attributor is not None:
            self._attributor.set_context(ts_us, location)

    def _on_opened(self, payload: Mapping[str, Any]) -> None:
        """A handheld starts reading a tag: tick it off now, where the operator stands
        (attribution refines the place when the sighting closes)."""
        count = self._count
        if count is None:
            return
        role, location = self._roles.get(str(payload.get("reader")), ("handheld", None))
        if role == "portal":
            return
        epc = str(payload["epc"])
        if role == "fixed" and location:
            count.observe_epc(epc, location)
        elif not count.knows_epc(epc):
            count.observe_epc(epc)

    def _on_scan(self, payload: Mapping[str, Any]) -> None:
        count = self._count
        if count is None or payload.get("session_id") != count.session_id:
            return
        value = str(payload.get("value") or "")
        location = payload.get("location") or None
        if not value:
            return
        if payload.get("kind") == "serial":
            count.observe_scan(serial=value, location=location)
        elif payload.get("kind") in {"asset_tag", "giai"}:
            count.observe_scan(asset_tag=value, location=location)

    # -- readers: the control socket and the CLI ---------------------------------------

    def progress(self, session_id: str | None = None) -> dict[str, Any]:
        """The live count of ``session_id`` (default: the open one) with reader health.
        Raises SessionError when there is none to show."""
        if session_id is None:
            open_counts = self.view.open_sessions()
            if not open_counts:
                known = ", ".join(c.session_id for c in self.view.sessions()) or "none"
                raise SessionError(
                    "no open count session has an expected register (start one with "
                    f"`tagsweep session start … --expected FILE`); live counts: {known}"
                )
            session_id = open_counts[-1].session_id
        try:
            count = self.view.get(session_id)
        except UnknownSessionError as exc:
            raise SessionError(str(exc)) from None
        return {**count.snapshot(), "health": self.view.health()}


def _sighting_rows(payloads: Sequence[Mapping[str, Any]]) -> np.ndarray:
    rows = np.zeros(len(payloads), dtype=SIGHTING_DTYPE)
    rows["epc"] = [str(p["epc"]).encode("ascii") for p in payloads]
    rows["first_seen_us"] = [int(p["first_seen_us"]) for p in payloads]
    rows["last_seen_us"] = [int(p["last_seen_us"]) for p in payloads]
    rows["read_count"] = [int(p["read_count"]) for p in payloads]
    rows["mean_rssi"] = [_rssi(p.get("mean_rssi")) for p in payloads]
    rows["peak_rssi"] = [_rssi(p.get("peak_rssi")) for p in payloads]
    return rows


def _replay(count: LiveCount, observations: pa.Table) -> None:
    """Tick off what a session's observations (its file's rows) say was seen, where."""
    last_seen = observations.column("last_seen").cast(pa.int64()).to_pylist()
    for row, ts in zip(observations.to_pylist(), last_seen, strict=True):
        location = row["location"] or None
        if row["method"] == Method.RFID.value and row["epc"]:
            count.observe_epc(str(row["epc"]), location, ts_us=ts)
        elif row["asset_tag"] or row["serial"]:
            count.observe_scan(
                asset_tag=row["asset_tag"], serial=row["serial"], location=location, ts_us=ts
            )


def _rssi(value: Any) -> float:
    return float("nan") if value is None else float(value)


def attach_live_view(gateway: Gateway) -> LiveFeed:
    """Give ``gateway`` its live view: the feed as an event sink (always, so
    ``tagsweep session progress`` works over the control socket), and the web page as
    the ``live-view`` service when ``[web] enabled``."""
    from tagsweep.daemon.liveview.server import LiveWebServer

    feed = LiveFeed(gateway)
    gateway.add_sink(feed)
    gateway.live = feed
    if gateway.config.web.enabled:
        from tagsweep.daemon.liveview.phones import PhoneScans

        phones = PhoneScans(gateway, feed.view)
        server = LiveWebServer.from_config(feed.view, gateway.config.web, phones)
        feed.server = server
        gateway.add_service("live-view", server.serve, stop=server.request_stop)
    return feed
