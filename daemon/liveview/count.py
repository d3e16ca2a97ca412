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

:class:`LiveView` is the daemon-wide registry the web server and the CLI read: the live
counts of open sessions plus the health of every reader and scanner.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from tagsweep.domain import Location, Method, normalize_epc, now_us
from tagsweep.epc import EpcScheme, asset_tag_for_epc
from tagsweep.sql import ident

if TYPE_CHECKING:
    import duckdb

#: Register statuses whose assets are not expected to be on the floor. Seeing one of
#: them is worth flagging (it is a retired-but-active candidate), not ticking off.
NOT_ON_FLOOR_STATUSES: Final = frozenset({"retired", "stolen", "missing", "disposed", "planned"})

#: Files looked for, in order, when the expected register is given as a folder (a run
#: output folder, a golden register folder or a frozen snapshot).
REGISTER_FILE_NAMES: Final = (
    "golden.parquet",  # `tagsweep reconcile golden` output
    "register.parquet",  # `tagsweep reconcile run` output
    "golden.csv",
    "register.csv",
)

#: Column aliases accepted in a register file, first match wins.
COLUMN_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "asset_tag": ("asset_tag", "tag", "asset_tag_number"),
    "serial": ("serial", "serial_number"),
    "epc": ("epc",),
    "manufacturer": ("manufacturer", "make", "vendor"),
    "model": ("model",),
    "location": ("location", "location_path", "expected_location"),
    "status": ("status", "lifecycle_status", "lifecycle"),
    "position": ("slot", "position", "rack_position"),
}

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


class RegisterFileError(ValueError):
    """The expected register could not be loaded; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class ExpectedAsset:
    """One asset the register says exists, where it says it is."""

    asset_tag: str | None
    serial: str | None
    epc: str | None
    manufacturer: str | None
    model: str | None
    location: str
    status: str | None = None
    position: str | None = None

    @property
    def key(self) -> str:
        """The register identity, as the engine forms it: tag, else make+serial, else EPC."""
        if self.asset_tag:
            return f"tag:{self.asset_tag}"
        if self.serial:
            return f"serial:{self.manufacturer or ''}|{self.serial}"
        return f"epc:{self.epc}"

    def to_json(self) -> dict[str, Any]:
        return {
            "asset_tag": self.asset_tag,
            "serial": self.serial,
            "epc": self.epc,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "location": self.location,
            "position": self.position,
            "status": self.status,
        }


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _upper(value: object) -> str | None:
    text = _text(value)
    return text.upper() if text else None


def resolve_register_file(path: Path) -> Path:
    """The register file itself, or the first known register file inside a folder."""
    if path.is_dir():
        for name in REGISTER_FILE_NAMES:
            candidate = path / name
            if candidate.is_file():
                return candidate
        raise RegisterFileError(
            f"{path}: no register file in this folder; expected one of "
            f"{', '.join(REGISTER_FILE_NAMES)} (a run output or golden register folder)"
        )
    if not path.is_file():
        raise RegisterFileError(f"{path}: no such register file")
    return path


def open_register(
    con: duckdb.DuckDBPyConnection, path: Path
) -> tuple[Path, duckdb.DuckDBPyRelation]:
    """The register file of ``path`` (a file or a folder holding one) and a DuckDB relation
    over it (CSV read as text); RegisterFileError saying which file and why."""
    import duckdb

    file = resolve_register_file(path)
    suffix = file.suffix.lower()
    if suffix not in {".parquet", ".csv", ".tsv", ".txt"}:
        raise RegisterFileError(f"{file}: expected a .parquet or .csv register, got {suffix!r}")
    try:
        rel = (
            con.read_parquet(str(file))
            if suffix == ".parquet"
            else con.read_csv(str(file), all_varchar=True, header=True)
        )
    except duckdb.Error as exc:
        # DuckDB's message can quote the file's lines: say what kind of problem it is,
        # never what the file holds (the daemon may be pointed at a file it should not
        # show, through its control socket).
        kind = "Parquet" if suffix == ".parquet" else "CSV with a header row"
        raise RegisterFileError(
            f"{file}: cannot read register: not a readable {kind} file ({type(exc).__name__})"
        ) from None
    return file, rel


def load_register(path: Path) -> list[ExpectedAsset]:
    """Every asset of a register file (Parquet or CSV) or folder, normalized for matching.

    Read with DuckDB, column by column, so a register of a few hundred thousand rows
    loads in well under a second. Rows without a usable location are skipped: the live
    view cannot expect them anywhere.
    """
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        file, rel = open_register(con, path)
        columns = {name.lower(): name for name in rel.columns}
        picked: dict[str, str] = {}
        for wanted, aliases in COLUMN_ALIASES.items():
            for alias in aliases:
                if alias in columns:
                    picked[wanted] = columns[alias]
                    break
        # Errors name the columns looked for, never the ones found: a header row is the
        # file's content (a secrets file's first line, say).
        if "location" not in picked:
            raise RegisterFileError(
                f"{file}: register has no location column (looked for "
                f"{', '.join(COLUMN_ALIASES['location'])} among its {len(columns)} columns)"
            )
        if not {"asset_tag", "serial", "epc"} & picked.keys():
            raise RegisterFileError(
                f"{file}: register needs an asset_tag, serial or epc column "
                f"(none among its {len(columns)} columns)"
            )
        projection = ", ".join(
            f"CAST({ident(picked[name])} AS VARCHAR) AS {ident(name)}"
            if name in picked
            else f"NULL AS {ident(name)}"
            for name in COLUMN_ALIASES
        )
        table = rel.project(projection).to_arrow_table()
    finally:
        con.close()
    cols = table.to_pydict()
    assets: list[ExpectedAsset] = []
    for i in range(table.num_rows):
        location = _text(cols["location"][i])
        if location is None:
            continue
        try:
            location = Location(location).path
        except ValueError:
            continue
        epc_text = _text(cols["epc"][i])
        try:
            epc = normalize_epc(epc_text) if epc_text else None
        except ValueError:
            epc = None
        tag = _upper(cols["asset_tag"][i])
        serial = _upper(cols["serial"][i])
        if not (tag or serial or epc):
            continue
        status = _text(cols["status"][i])
        assets.append(
            ExpectedAsset(
                asset_tag=tag,
                serial=serial,
                epc=epc,
                manufacturer=_text(cols["manufacturer"][i]),
                model=_text(cols["model"][i]),
                location=location,
                status=status.lower() if status else None,
                position=_text(cols["position"][i]),
            )
        )
    return assets


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


def _related(a: str, b: str) -> bool:
    """True when one location contains the other (a rack inside the room counted)."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


def chain_to_scope(path: str, scope: Collection[str]) -> tuple[str, ...]:
    """``path`` and its ancestors, nearest first, up to the scope root that contains it."""
    parts = path.split("/")
    nodes: list[str] = []
    for i in range(len(parts), 0, -1):
        node = "/".join(parts[:i])
        nodes.append(node)
        if node in scope:
            break
    return tuple(nodes)


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
        self._by_epc: dict[str, ExpectedAsset] = {}
        self._by_tag: dict[str, ExpectedAsset] = {}
        self._by_serial: dict[str, ExpectedAsset] = {}
        self._expected: dict[str, ExpectedAsset] = {}
        for asset in register:
            if asset.epc:
                self._by_epc.setdefault(asset.epc, asset)
            if asset.asset_tag:
                self._by_tag.setdefault(asset.asset_tag, asset)
            if asset.serial:
                self._by_serial.setdefault(asset.serial, asset)
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
        return any(_under(path, root) for root in self.scope)

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

    def _identity_for_epc(self, epc: str) -> tuple[str, ExpectedAsset | None, str | None]:
        """(identity, register row, asset tag the EPC encodes) for an EPC.

        The register's own epc column wins; otherwise the EPC is decoded under the
        configured scheme (GIAI-96 or ASCII) and looked up by asset tag. An EPC that
        decodes to a tag the register lacks is still known by that tag, so the page
        shows "AST-000113, not in register" rather than 24 hex digits, and a barcode
        scan of the same label counts as the same item.
        """
        asset = self._by_epc.get(epc)
        if asset is not None:
            return asset.key, asset, asset.asset_tag
        tag = asset_tag_for_epc(epc, self.epc_scheme) if self.epc_scheme != "mapping" else None
        tag = _upper(tag)
        if tag:
            asset = self._by_tag.get(tag)
            return (asset.key if asset else f"tag:{tag}"), asset, tag
        return f"epc:{epc}", None, None

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
                resolved = self._epc_identity[epc] = self._identity_for_epc(epc)
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
        tag, ser = _upper(asset_tag), _upper(serial)
        return (self._by_tag.get(tag) if tag else None) or (
            self._by_serial.get(ser) if ser else None
        )

    def observe_scan(
        self,
        *,
        asset_tag: str | None = None,
        serial: str | None = None,
        location: Location | str | None = None,
        ts_us: int | None = None,
    ) -> None:
        """A barcode scan of an asset tag or a serial: ticks the asset off like a read."""
        tag = _upper(asset_tag)
        ser = _upper(serial)
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
            verdict = not _related(seen_at, registered) and (
                not self.in_scope(registered)
                # Its own rack still ahead on the walk: most likely a cross-read from
                # there, and flagging it now would be noise.
                or any(_related(v, registered) for v in self.visited)
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
            if key not in seen and (location is None or _under(a.location, location))
        ]

    def unexpected(self, location: str | None = None) -> list[tuple[SeenItem, Unexpected]]:
        """Items seen (at or below ``location``) that the register does not put there."""
        out: list[tuple[SeenItem, Unexpected]] = []
        for item in self._seen.values():
            reason = self._reason(item)
            if reason is None:
                continue
            if location is not None and not _under(item.location, location):
                continue
            out.append((item, reason))
        out.sort(key=lambda pair: (pair[0].location, pair[0].identity))
        return out

    def seen_expected(self, location: str | None = None) -> list[SeenItem]:
        """Expected assets (register location at or below ``location``) already seen."""
        return [
            self._seen[key]
            for key, a in self._expected.items()
            if key in self._seen and (location is None or _under(a.location, location))
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


class UnknownSessionError(KeyError):
    """No live count for this session id (never started, or started without a scope)."""

    def __init__(self, session_id: str, known: Sequence[str]) -> None:
        super().__init__(session_id)
        self.session_id = session_id
        self.known = tuple(known)

    def __str__(self) -> str:
        known = ", ".join(self.known) or "none"
        return f"unknown count session {self.session_id!r} (live sessions: {known})"


@dataclass(slots=True)
class SourceHealth:
    """Health of one reader or scanner as the live page shows it."""

    name: str
    kind: str  # "reader" | "scanner"
    state: str = "unknown"  # connecting | inventorying | degraded | down | connected ...
    detail: str = ""
    reads_total: int = 0
    last_read_us: int | None = None
    _window_start: float = field(default_factory=time.monotonic)
    _window_reads: int = 0
    reads_per_s: float = 0.0

    def count(self, n: int, now: float) -> None:
        """Count ``n`` reads; the rate is the last completed one-second window."""
        self.reads_total += n
        self._window_reads += n
        elapsed = now - self._window_start
        if elapsed >= 1.0:
            self.reads_per_s = self._window_reads / elapsed
            self._window_reads = 0
            self._window_start = now

    def to_json(self, now: float) -> dict[str, Any]:
        # a quiet source has a rate of zero, not the last busy second's
        idle = now - self._window_start
        rate = self.reads_per_s if idle < 2.0 else self._window_reads / max(idle, 1e-9)
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "detail": self.detail,
            "reads_total": self.reads_total,
            "reads_per_s": round(rate, 1),
            "last_read_us": self.last_read_us,
        }


class LiveView:
    """The live counts of the daemon's sessions and the health of its readers.

    One instance lives in the daemon; producers (session handling, dedup flush, reader
    supervision) write to it on the event loop, the web server and the control socket
    read from it. ``version`` changes whenever anything a page shows changes, so a
    reader can poll it cheaply instead of being woken on every read.
    """

    def __init__(self) -> None:
        self._counts: dict[str, LiveCount] = {}
        self._health: dict[str, SourceHealth] = {}
        self._health_version = 0
        #: Called before health is read, so a producer that counts reads elsewhere (the
        #: gateway's counters) can bring reads/s up to date even when nothing else moved.
        self.refresh_health: Callable[[], None] | None = None

    #: Closed sessions kept for review after they stop (the oldest go first).
    KEEP_CLOSED: Final = 5

    # sessions
    def add(self, count: LiveCount) -> LiveCount:
        self._counts[count.session_id] = count
        closed = [c.session_id for c in self._counts.values() if c.closed]
        for session_id in closed[: max(0, len(closed) - self.KEEP_CLOSED)]:
            del self._counts[session_id]
        self._health_version += 1
        return count

    def get(self, session_id: str) -> LiveCount:
        try:
            return self._counts[session_id]
        except KeyError:
            raise UnknownSessionError(session_id, list(self._counts)) from None

    def remove(self, session_id: str) -> None:
        self._counts.pop(session_id, None)
        self._health_version += 1

    def sessions(self) -> list[LiveCount]:
        return list(self._counts.values())

    def open_sessions(self) -> list[LiveCount]:
        return [c for c in self._counts.values() if not c.closed]

    # readers and scanners
    def set_source_state(self, name: str, kind: str, state: str, detail: str = "") -> None:
        health = self._health.setdefault(name, SourceHealth(name=name, kind=kind))
        if (health.state, health.detail) != (state, detail):
            health.state, health.detail = state, detail
            self._health_version += 1

    def count_reads(self, name: str, n: int, kind: str = "reader") -> None:
        """Reads (or scans) that arrived from ``name``: feeds reads/s on the page."""
        health = self._health.get(name)
        if health is None:
            health = self._health[name] = SourceHealth(name=name, kind=kind, state="connected")
        health.count(n, time.monotonic())
        health.last_read_us = now_us()

    def health(self) -> list[dict[str, Any]]:
        if self.refresh_health is not None:
            self.refresh_health()
        now = time.monotonic()
        return [h.to_json(now) for _, h in sorted(self._health.items())]

    @property
    def health_version(self) -> int:
        return self._health_version

    def summaries(self) -> list[dict[str, Any]]:
        return [
            {
                "session_id": c.session_id,
                "site": c.site,
                "operator": c.operator,
                "scope": list(c.scope),
                "closed": c.closed,
                "location_context": c.location_context,
                "totals": c.totals(),
            }
            for c in self._counts.values()
        ]


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


def mapping_summary(counts: Mapping[str, int]) -> str:
    """One terminal line for totals: ``12/40 seen, 28 not yet seen, 3 unexpected``."""
    return (
        f"{counts['seen']}/{counts['expected']} seen, {counts['not_yet_seen']} not yet seen, "
        f"{counts['unexpected']} unexpected"
    )
