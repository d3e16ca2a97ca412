"""Live count: what a running count session has seen of what its scope should hold.

The question staff ask in the middle of a walk-through is "what should be in this room
or rack that I have not seen yet?". A :class:`LiveCount` answers it while the session
runs: it is loaded with the *expected* assets of the session's scope from a register
file the engine produced (the daemon never imports engine code; the file is the
contract), and fed every observation the daemon attributes to a location. It keeps, per
location of the scope, what is expected, seen, not yet seen and unexpected.

The model is updated on the ingest path, so an update is a few dict operations; the
expensive part (rolling counts up the location tree, building lists) happens only when a
reader asks, at most once per change (:meth:`LiveCount.snapshot` is cached by version).
That is what keeps any number of live pages from slowing ingest down.

The expected register is loaded by :mod:`~tagsweep.daemon.liveview.register`; locations
are placed against the scope by :mod:`~tagsweep.daemon.liveview.scope`; the daemon-wide
registry of live counts is :class:`~tagsweep.daemon.liveview.view.LiveView`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from tagsweep.daemon.liveview.register import (
    NOT_ON_FLOOR_STATUSES,
    ExpectedAsset,
    RegisterIndex,
    load_register,
    upper_or_none,
)
from tagsweep.daemon.liveview.scope import chain_to_scope, related, under
from tagsweep.domain import Location, Method, normalize_epc, now_us
from tagsweep.epc import EpcScheme

#: Longest list a snapshot carries; a page shows counts beyond that.
LIST_LIMIT: Final = 500


class AttributedEpc(Protocol):
    """Where the daemon's location attribution puts an EPC (``daemon.location``'s
    ``Attribution`` has this shape); re-attributions arrive the same way."""

    @property
    def epc(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def last_seen_us(self) -> int: ...


class Unexpected(enum.StrEnum):
    """Why an item seen at a location is flagged there."""

    NOT_IN_REGISTER = "not_in_register"  # unrecorded: nothing in the register matches it
    # the register puts it somewhere else (flagged once that place has been counted, or
    # at once when that place is outside the session's scope)
    EXPECTED_ELSEWHERE = "expected_elsewhere"
    NOT_ON_FLOOR = "not_on_floor"  # the register says retired, stolen, missing, planned...


@dataclass(slots=True)
class SeenItem:
    """What the session knows about one identity it has seen."""

    identity: str
    location: str  # latest attributed location
    method: Method
    first_seen_us: int
    last_seen_us: int
    evidence: int = 1  # observations folded in (sightings or scans)
    epc: str | None = None
    asset_tag: str | None = None
    serial: str | None = None
    asset: ExpectedAsset | None = None  # the register row it matched, if any


class LiveCount:
    """Expected vs seen for the scope of one count session, updated as observations come.

    ``scope`` is the list of locations the session counts; an asset is *expected* when
    the register puts it at or below one of them (and its status says it should be on the
    floor). An expected asset is ticked off wherever it is seen during the session;
    if it is seen at a location unrelated to where the register puts it, it is also
    listed as *unexpected* there ("expected elsewhere"), because both facts matter to the
    person walking: it is found, and it is in the wrong place.
    """

    def __init__(
        self,
        session_id: str,
        scope: Sequence[Location | str],
        register: Iterable[ExpectedAsset],
        *,
        site: str = "",
        operator: str = "",
        epc_scheme: EpcScheme = "giai96",
        started_us: int | None = None,
    ) -> None:
        if not scope:
            raise ValueError("a live count needs at least one scope location")
        self.session_id = session_id
        self.site = site
        self.operator = operator
        self.scope: tuple[str, ...] = tuple(
            (s if isinstance(s, Location) else Location(s)).path for s in scope
        )
        self.epc_scheme: EpcScheme = epc_scheme
        self.started_us = started_us if started_us is not None else now_us()
        self.location_context: str | None = None
        self.visited: set[str] = set()  # every location context the session has been in
        self._misplaced_memo: dict[tuple[str, str], bool] = {}
        self.closed = False
        self.version = 0
        self.updated_us = self.started_us
        self._register = RegisterIndex()
        self._expected: dict[str, ExpectedAsset] = {}
        for asset in register:
            self._register.add(asset)
            if (asset.status or "") not in NOT_ON_FLOOR_STATUSES and self.in_scope(asset.location):
                self._expected.setdefault(asset.key, asset)
        # in display order once, so lists never need sorting on the read path
        self._expected = dict(
            sorted(
                self._expected.items(),
                key=lambda kv: (
                    kv[1].location,
                    kv[1].position or "",
                    kv[1].asset_tag or kv[1].serial or "",
                ),
            )
        )
        self._chains: dict[str, tuple[str, ...]] = {}
        # per location node: [expected, seen], kept up to date as items are first seen
        self._rollup: dict[str, list[int]] = {root: [0, 0] for root in self.scope}
        for asset in self._expected.values():
            for node in self._chain(asset.location):
                self._rollup.setdefault(node, [0, 0])[0] += 1
        self._seen_expected = 0
        self._seen: dict[str, SeenItem] = {}  # identity -> item (register key if matched)
        # EPC -> (identity, register row): the hot path resolves each EPC once
        self._epc_identity: dict[str, tuple[str, ExpectedAsset | None, str | None]] = {}
        self._snapshot: dict[str, Any] | None = None
        self._snapshot_version = -1

    # -- feeding ---------------------------------------------------------------------

    def close(self) -> None:
        """The count session stopped: pages show the final state and stop following."""
        if not self.closed:
            self.closed = True
            self._changed()

    def in_scope(self, path: str) -> bool:
        return any(under(path, root) for root in self.scope)

    def set_location_context(self, location: Location | str | None) -> None:
        """The location the operator says they are in; observations without their own
        attributed location are counted there."""
        path = None if location is None else str(location)
        if path != self.location_context:
            self.location_context = path
            if path is not None and path not in self.visited:
                self.visited.add(path)
                self._misplaced_memo.clear()
            self._changed()

    def _changed(self) -> None:
        self.version += 1
        self.updated_us = now_us()

    def observe_epc(
        self,
        epc: str,
        location: Location | str | None = None,
        *,
        ts_us: int | None = None,
        read_count: int = 1,
    ) -> None:
        """An RFID sighting (or a re-attribution of one) of ``epc`` at ``location``."""
        del read_count  # the live view counts items, not reads
        resolved = self._epc_identity.get(epc)  # hot path: an EPC seen before
        if resolved is None:
            try:
                epc = normalize_epc(epc)
            except ValueError:
                return
            resolved = self._epc_identity.get(epc)
            if resolved is None:
                resolved = self._epc_identity[epc] = self._register.identity_for_epc(
                    epc, self.epc_scheme
                )
        identity, asset, tag = resolved
        self._record(identity, asset, location, Method.RFID, ts_us, epc=epc, tag=tag)

    def knows_epc(self, epc: str) -> bool:
        """Has this EPC been seen in the session already?"""
        resolved = self._epc_identity.get(epc)
        return resolved is not None and resolved[0] in self._seen

    def observe_attributions(self, attributions: Iterable[AttributedEpc]) -> None:
        """The daemon's current attribution of every EPC read so far (after each dedup
        flush): new items are ticked off, moved items change location."""
        seen = self._seen
        memo = self._epc_identity
        for a in attributions:
            resolved = memo.get(a.epc)
            if resolved is not None:
                item = seen.get(resolved[0])
                if item is not None and item.location == a.location:
                    item.last_seen_us = max(item.last_seen_us, a.last_seen_us)
                    continue  # nothing a page shows has changed
            self.observe_epc(a.epc, a.location, ts_us=a.last_seen_us)

    def observe_epcs(
        self, epcs: Iterable[str | bytes], location: Location | str | None = None
    ) -> None:
        """A batch of sightings at one location, e.g. the EPCs of one dedup flush."""
        ts = now_us()
        for epc in epcs:
            self.observe_epc(
                epc.decode("ascii") if isinstance(epc, bytes) else epc, location, ts_us=ts
            )

    def lookup(
        self, *, asset_tag: str | None = None, serial: str | None = None
    ) -> ExpectedAsset | None:
        """The register row a scanned asset tag (else serial) names, if any."""
        return self._register.lookup(asset_tag=asset_tag, serial=serial)

    def observe_scan(
        self,
        *,
        asset_tag: str | None = None,
        serial: str | None = None,
        location: Location | str | None = None,
        ts_us: int | None = None,
    ) -> None:
        """A barcode scan of an asset tag or a serial: ticks the asset off like a read."""
        tag = upper_or_none(asset_tag)
        ser = upper_or_none(serial)
        asset = self.lookup(asset_tag=tag, serial=ser)
        if asset is not None:
            identity = asset.key
        elif tag:
            identity = f"tag:{tag}"
        elif ser:
            identity = f"serial:|{ser}"
        else:
            raise ValueError("a scan observation needs an asset tag or a serial")
        self._record(identity, asset, location, Method.BARCODE, ts_us, tag=tag, serial=ser)

    def _record(
        self,
        identity: str,
        asset: ExpectedAsset | None,
        location: Location | str | None,
        method: Method,
        ts_us: int | None,
        *,
        epc: str | None = None,
        tag: str | None = None,
        serial: str | None = None,
    ) -> None:
        path = str(location) if location is not None else (self.location_context or "")
        ts = ts_us if ts_us is not None else now_us()
        item = self._seen.get(identity)
        if item is None:
            self._seen[identity] = SeenItem(
                identity=identity,
                location=path,
                method=method,
                first_seen_us=ts,
                last_seen_us=ts,
                epc=epc,
                asset_tag=tag or (asset.asset_tag if asset else None),
                serial=serial or (asset.serial if asset else None),
                asset=asset,
            )
            if identity in self._expected:
                self._seen_expected += 1
                for node in self._chain(self._expected[identity].location):
                    self._rollup[node][1] += 1
            self._changed()
            return
        item.evidence += 1
        item.last_seen_us = max(item.last_seen_us, ts)
        if epc and not item.epc:
            item.epc = epc
        if path and path != item.location:
            item.location = path
            self._changed()

    # -- reading ---------------------------------------------------------------------

    def _chain(self, path: str) -> tuple[str, ...]:
        chain = self._chains.get(path)
        if chain is None:
            chain = self._chains[path] = chain_to_scope(path, self.scope)
        return chain

    def _misplaced(self, seen_at: str, registered: str) -> bool:
        """Seen at a place unrelated to the registered one, which has been counted (or
        lies outside the scope). Memoised per pair: there are few locations, and this
        runs for every seen item on each snapshot."""
        key = (seen_at, registered)
        verdict = self._misplaced_memo.get(key)
        if verdict is None:
            verdict = not related(seen_at, registered) and (
                not self.in_scope(registered)
                # Its own rack still ahead on the walk: most likely a cross-read from
                # there, and flagging it now would be noise.
                or any(related(v, registered) for v in self.visited)
            )
            self._misplaced_memo[key] = verdict
        return verdict

    def _reason(self, item: SeenItem) -> Unexpected | None:
        asset = item.asset
        if asset is None:
            return Unexpected.NOT_IN_REGISTER
        if asset.status in NOT_ON_FLOOR_STATUSES:
            return Unexpected.NOT_ON_FLOOR
        if item.location and self._misplaced(item.location, asset.location):
            return Unexpected.EXPECTED_ELSEWHERE
        return None

    def expected_count(self) -> int:
        return len(self._expected)

    def not_yet_seen(self, location: str | None = None) -> list[ExpectedAsset]:
        """Expected assets (at or below ``location``) not seen anywhere yet, by location."""
        seen = self._seen
        return [
            a
            for key, a in self._expected.items()
            if key not in seen and (location is None or under(a.location, location))
        ]

    def unexpected(self, location: str | None = None) -> list[tuple[SeenItem, Unexpected]]:
        """Items seen (at or below ``location``) that the register does not put there."""
        out: list[tuple[SeenItem, Unexpected]] = []
        for item in self._seen.values():
            reason = self._reason(item)
            if reason is None:
                continue
            if location is not None and not under(item.location, location):
                continue
            out.append((item, reason))
        out.sort(key=lambda pair: (pair[0].location, pair[0].identity))
        return out

    def seen_expected(self, location: str | None = None) -> list[SeenItem]:
        """Expected assets (register location at or below ``location``) already seen."""
        return [
            self._seen[key]
            for key, a in self._expected.items()
            if key in self._seen and (location is None or under(a.location, location))
        ]

    def location_rows(
        self, unexpected: list[tuple[SeenItem, Unexpected]] | None = None
    ) -> list[dict[str, Any]]:
        """Per location node of the scope, counts rolled up over its descendants."""
        flagged: dict[str, int] = {}
        for item, _ in self.unexpected() if unexpected is None else unexpected:
            if item.location and self.in_scope(item.location):
                for node in self._chain(item.location):
                    flagged[node] = flagged.get(node, 0) + 1
        paths = sorted(self._rollup.keys() | flagged.keys())
        rows = []
        for path in paths:
            expected, seen = self._rollup.get(path, (0, 0))
            rows.append(
                {
                    "location": path,
                    "depth": path.count("/"),
                    "expected": expected,
                    "seen": seen,
                    "not_yet_seen": expected - seen,
                    "unexpected": flagged.get(path, 0),
                }
            )
        return rows

    def totals(self, unexpected: list[tuple[SeenItem, Unexpected]] | None = None) -> dict[str, int]:
        expected = len(self._expected)
        return {
            "expected": expected,
            "seen": self._seen_expected,
            "not_yet_seen": expected - self._seen_expected,
            "unexpected": len(self.unexpected() if unexpected is None else unexpected),
            "items_seen": len(self._seen),
        }

    def snapshot(self, *, list_limit: int = LIST_LIMIT) -> dict[str, Any]:
        """Everything a live page shows, as JSON-ready data; cached per version so many
        readers of one state cost one computation."""
        if self._snapshot is not None and self._snapshot_version == self.version:
            return self._snapshot
        seen = self._seen
        missing: list[dict[str, Any]] = []
        n_missing = 0
        for key, asset in self._expected.items():
            if key not in seen:
                n_missing += 1
                if n_missing <= list_limit:
                    missing.append(asset.to_json())
        unexpected = self.unexpected()
        snap: dict[str, Any] = {
            "session_id": self.session_id,
            "site": self.site,
            "operator": self.operator,
            "scope": list(self.scope),
            "location_context": self.location_context,
            "closed": self.closed,
            "started_us": self.started_us,
            "updated_us": self.updated_us,
            "version": self.version,
            "totals": self.totals(unexpected),
            "locations": self.location_rows(unexpected),
            "not_yet_seen": missing,
            "not_yet_seen_truncated": n_missing > list_limit,
            "unexpected": [
                {
                    "identity": item.identity,
                    "epc": item.epc,
                    "asset_tag": item.asset_tag,
                    "serial": item.serial,
                    "model": item.asset.model if item.asset else None,
                    "seen_at": item.location,
                    "expected_at": item.asset.location if item.asset else None,
                    "reason": reason.value,
                    "method": item.method.value,
                    "last_seen_us": item.last_seen_us,
                }
                for item, reason in unexpected[:list_limit]
            ],
            "unexpected_truncated": len(unexpected) > list_limit,
        }
        self._snapshot = snap
        self._snapshot_version = self.version
        return snap


def live_count_from_register_file(
    session_id: str,
    scope: Sequence[Location | str],
    register_file: Path,
    *,
    site: str = "",
    operator: str = "",
    epc_scheme: EpcScheme = "giai96",
) -> LiveCount:
    """Load the register file and build the live count of a session's scope."""
    return LiveCount(
        session_id,
        scope,
        load_register(register_file),
        site=site,
        operator=operator,
        epc_scheme=epc_scheme,
    )
