"""The count-session API of the gateway: start, change location, stop, list, and what a
scanned barcode means for the open session.

One session is open at a time. Starting one records it in the store with its first
location context; a location change (operator command or scanned location label) closes
the open sightings first so none straddles two contexts; stopping commits every sighting
up to now, then writes the session file (:func:`~tagsweep.daemon.sessions.close_session`).
After a restart, a session that was stopping is closed and an open one resumes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from tagsweep.daemon.devices import Device
from tagsweep.daemon.events import EventKind, GatewayEvent
from tagsweep.daemon.sessions import (
    STOPPING,
    ClosedSession,
    SessionError,
    build_observations,
    close_session,
    session_from_row,
    session_to_json,
)
from tagsweep.daemon.store import ScanRecord, Store, WriteBatch
from tagsweep.domain import (
    BarcodeScan,
    CountSession,
    Location,
    ScanKind,
    SessionState,
    new_session_id,
    now_us,
)
from tagsweep.epc import asset_tag_for_giai

if TYPE_CHECKING:
    from tagsweep.daemon.supervisor import Gateway


class SessionAPI:
    """The open count session and the operations on it, for one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.config = gateway.config
        self.log = gateway.log
        self.pipeline = gateway.pipeline
        self._session: CountSession | None = None
        self._idle_context: Location | None = None
        self._lock = asyncio.Lock()

    @property
    def session(self) -> CountSession | None:
        """The open count session (None when none is open)."""
        return self._session

    @session.setter
    def session(self, session: CountSession | None) -> None:
        # the read pipeline counts the reads this session will not contain
        if session is not self._session:
            self.pipeline.outside_open_session = 0
        self._session = session
        self.pipeline.session_started_us = session.started_us if session else None

    def _store(self) -> Store:
        return self.gateway.running_store()

    def _require_store(self, what: str) -> Store:
        """The store, if it keeps what is written; SessionError saying why not, otherwise:
        a session is never reported started or closed when the store did not commit it."""
        store = self._store()
        problem = self.pipeline.check_store() or self.pipeline.write_error
        if problem:
            raise SessionError(f"{what}: the store cannot commit it: {problem}")
        return store

    def _roles(self) -> dict[str, Any]:
        return {d.name: d.role for d in self.gateway.devices if d.kind == "reader"}

    # -- restart ----------------------------------------------------------------------------
    async def recover(self) -> None:
        """Close sessions that were stopping when the daemon died; resume the open one."""
        store = self.gateway.store
        assert store is not None
        rows = await store.call(store.session_rows, states=("open", STOPPING))
        open_rows = [r for r in rows if r["state"] == "open"]
        for row in rows:
            if row["state"] == "open" and row is not open_rows[-1]:
                # Only one session is open at a time; an older one was abandoned.
                await store.call(
                    store.set_session_state, row["session_id"], STOPPING, ended_us=now_us()
                )
                row["state"], row["ended_us"] = STOPPING, now_us()
        for row in rows:
            if row["state"] == STOPPING:
                contexts = await store.call(store.contexts, row["session_id"])
                session = session_from_row(row, contexts[-1][1] if contexts else None)
                closed = await store.call(self._close, session)
                self.log.info("session_closed_after_restart", **closed.to_json())
        if open_rows:
            row = open_rows[-1]
            contexts = await store.call(store.contexts, row["session_id"])
            self.session = session_from_row(row, contexts[-1][1] if contexts else None)
            self.log.info("session_resumed", session=row["session_id"])
            live = self.gateway.live
            if row.get("expected") and live is not None:
                await live.resume(self.session, str(row["expected"]))

    def _close(self, session: CountSession) -> ClosedSession:
        store = self.gateway.store
        assert store is not None
        return close_session(
            store,
            session,
            roles=self._roles(),
            session_dir=self.config.store.session_dir,
            gateway=self.config.gateway.id,
            window_us=self.pipeline.window_us,
            signing_key=self.config.store.signing_key_path,
        )

    # -- the operations ---------------------------------------------------------------------
    async def start(
        self,
        *,
        operator: str,
        site: str | None = None,
        location: str | None = None,
        scope: Sequence[str] = (),
        expected: str | None = None,
    ) -> CountSession:
        """Open a count session; see :meth:`Gateway.start_session`."""
        if not operator or not operator.strip():
            raise SessionError("operator is required (who is counting?)")
        site = (site or self.config.gateway.site).strip()
        if not site:
            raise SessionError("site is required")
        try:
            scope_locs = tuple(Location(p) for p in scope)
            start_loc = Location(location) if location else None
        except ValueError as exc:
            raise SessionError(str(exc)) from None
        if start_loc is not None and not scope_locs:
            scope_locs = (start_loc,)
        for loc in (*scope_locs, *([start_loc] if start_loc else [])):
            if loc.site != site:
                raise SessionError(f"location {loc} is not at site {site}")
        self._require_store("the count session was not started")
        live = self.gateway.live
        if expected and live is None:
            raise SessionError("this gateway has no live view to compare --expected with")
        self._refuse_if_open()
        if expected:
            # The register is read only once everything else about the request is known
            # to be good, and is not kept if the start is refused after all.
            assert live is not None
            await live.prepare(expected)
        try:
            return await self._open(
                site=site,
                operator=operator,
                scope_locs=scope_locs,
                start_loc=start_loc,
                expected=expected,
            )
        finally:
            if expected and live is not None:
                live.forget(expected)

    def _refuse_if_open(self) -> None:
        if self.session is not None:
            raise SessionError(
                f"count session {self.session.session_id} is already open; "
                "stop it first (tagsweep session stop)"
            )

    async def _open(
        self,
        *,
        site: str,
        operator: str,
        scope_locs: tuple[Location, ...],
        start_loc: Location | None,
        expected: str | None,
    ) -> CountSession:
        store = self._require_store("the count session was not started")
        async with self._lock:
            self._refuse_if_open()  # another start may have won while the register loaded
            started = now_us()
            session = CountSession(
                session_id=new_session_id(),
                site=site,
                operator=operator.strip(),
                scope=scope_locs,
                started_us=started,
                location_context=start_loc or self._start_context(site, scope_locs),
            )
            await store.call(
                store.insert_session,
                session.session_id,
                site,
                session.operator,
                [str(s) for s in scope_locs],
                started,
                expected=expected or None,
            )
            assert session.location_context is not None
            await store.call(
                store.write,
                WriteBatch(
                    contexts=[(session.session_id, started, str(session.location_context), "start")]
                ),
            )
            self.session = session
            self.gateway.counters.sessions_started += 1
        self.log.info("session_started", **session_to_json(session))
        await self.gateway.emit(
            [
                GatewayEvent(
                    EventKind.SESSION_STARTED,
                    {
                        "session_id": session.session_id,
                        "site": site,
                        "operator": session.operator,
                        "location": str(session.location_context),
                        "scope": [str(s) for s in scope_locs],
                        **({"expected": expected} if expected else {}),
                    },
                    ts_us=started,
                )
            ]
        )
        return session

    def _start_context(self, site: str, scope: tuple[Location, ...]) -> Location:
        """Without --location: a label scanned just before the start, else the scope."""
        idle = self._idle_context
        if idle is not None and idle.site == site:
            return idle
        return scope[0] if scope else Location(site)

    async def observations(self) -> pa.Table:
        """What the open session's file would hold if it stopped now (live views)."""
        store = self._store()
        session = self.session
        if session is None:
            raise SessionError("no count session is open")
        snapshot = replace(session, ended_us=now_us())
        roles = self._roles()
        window_us = self.pipeline.window_us

        def build() -> pa.Table:
            assert snapshot.ended_us is not None
            return build_observations(
                session=snapshot,
                sightings=store.session_sightings(
                    snapshot.started_us, snapshot.ended_us, window_us
                ),
                contexts=store.contexts(snapshot.session_id),
                scans=store.session_scans(snapshot.session_id),
                roles=roles,
            )

        return await store.call(build)

    async def set_location(
        self, location: str, *, source: str = "operator", ts_us: int | None = None
    ) -> CountSession | None:
        """Change the location context (operator command or scanned label)."""
        try:
            loc = Location(location)
        except ValueError as exc:
            raise SessionError(str(exc)) from None
        store = self._store()
        ts = ts_us or now_us()
        async with self._lock:
            session = self.session
            if session is None:
                if source == "operator":
                    raise SessionError(
                        "no count session is open; start one with "
                        "`tagsweep session start --operator NAME --location PATH`"
                    )
                self._idle_context = loc  # a label scanned before the session starts
                return None
            if loc.site != session.site:
                raise SessionError(f"location {loc} is not at the session's site {session.site}")
            if loc != session.location_context:
                await self.pipeline.flush(close_open=True)
            await store.call(
                store.write, WriteBatch(contexts=[(session.session_id, ts, loc.path, source)])
            )
            session.location_context = loc
        self.log.info(
            "location_context", session=session.session_id, location=loc.path, source=source
        )
        await self.gateway.emit(
            [
                GatewayEvent(
                    EventKind.LOCATION_CONTEXT,
                    {"session_id": session.session_id, "location": loc.path, "source": source},
                    ts_us=ts,
                )
            ]
        )
        return session

    async def stop(self, session_id: str | None = None) -> ClosedSession:
        """Stop the open session and write its session file (Parquet + manifest)."""
        store = self._require_store("the count session stays open")
        async with self._lock:
            session = self.session
            if session is None:
                raise SessionError("no count session is open; nothing to stop")
            if session_id is not None and session_id != session.session_id:
                raise SessionError(
                    f"unknown session {session_id!r}: the open session is {session.session_id}"
                )
            ended = now_us()
            await store.call(store.set_session_state, session.session_id, STOPPING, ended_us=ended)
            session.ended_us = ended
            await self.gateway.emit(
                [
                    GatewayEvent(
                        EventKind.SESSION_STOPPED,
                        {"session_id": session.session_id, "ended_us": ended},
                        ts_us=ended,
                    )
                ]
            )
            try:
                await self.pipeline.sync()  # every sighting up to now is committed first
            except RuntimeError as exc:
                raise SessionError(
                    f"the count session was not closed: {exc}; it is closed when the "
                    "gateway restarts with a working store"
                ) from None
            closed = await store.call(self._close, session)
            session.state = SessionState.CLOSED
            self.session = None
            self.gateway.counters.sessions_closed += 1
        self.log.info("session_closed", **closed.to_json())
        await self.gateway.emit([GatewayEvent(EventKind.SESSION_CLOSED, closed.to_json())])
        return closed

    async def rows(self, session_id: str | None = None) -> list[dict[str, Any]]:
        """Sessions as the store has them (one, or all), the open one with its location."""
        store = self._store()
        rows = await store.call(store.session_rows, session_id=session_id)
        if session_id is not None and not rows:
            raise SessionError(f"unknown session {session_id!r}")
        for row in rows:
            if self.session and row["session_id"] == self.session.session_id:
                ctx = self.session.location_context
                row["location"] = str(ctx) if ctx else None
        return rows

    # -- barcode scans ----------------------------------------------------------------------
    def _resolve_label(self, scan: BarcodeScan) -> str:
        value = scan.value or scan.data
        for loc in self.config.locations:
            if value in (loc.label, loc.gln):
                return loc.path
        return value

    async def on_scan(self, device: Device, scan: BarcodeScan) -> None:
        """A location label moves the context; anything else is recorded as a scan."""
        counters = self.gateway.counters
        counters.scans += 1
        store = self.gateway.store
        assert store is not None
        if scan.kind is ScanKind.LOCATION:
            path = self._resolve_label(scan)
            try:
                await self.set_location(path, source=f"scan:{device.name}", ts_us=scan.timestamp_us)
            except (SessionError, ValueError) as exc:
                self.log.warning("location_label_rejected", value=path, error=str(exc))
            return
        session = self.session
        context = session.location_context if session else self._idle_context
        if scan.kind not in (ScanKind.ASSET_TAG, ScanKind.SERIAL, ScanKind.GIAI):
            counters.scans_unrecognised += 1
        kind, value = scan.kind, scan.value
        if kind is ScanKind.GIAI:  # a GIAI label of ours names its asset tag
            engine = self.config.engine
            tag = asset_tag_for_giai(
                value, engine.giai_company_prefix, engine.giai_asset_tag_format
            )
            if tag is not None:
                kind, value = ScanKind.ASSET_TAG, tag
        record = ScanRecord(
            ts_us=scan.timestamp_us,
            scanner=device.name,
            kind=kind.value,
            value=value,
            data=scan.data,
            symbology=scan.symbology.value,
            session_id=session.session_id if session else None,
            location=str(context or device.role.location or "") or None,
        )
        await store.call(store.write, WriteBatch(scans=[record]))
        self.pipeline.queue_event(
            GatewayEvent(
                EventKind.SCAN,
                {
                    "session_id": record.session_id,
                    "scanner": device.name,
                    "kind": record.kind,
                    "value": record.value,
                    "location": record.location,
                },
                ts_us=record.ts_us,
            )
        )
