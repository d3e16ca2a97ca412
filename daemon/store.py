"""The gateway's DuckDB store: sightings, count sessions, location context, reader status.

Why DuckDB: one embedded file, columnar, fast bulk inserts straight from Arrow, and the
same SQL the engine uses, so a session's observations are one query away. The daemon is
the single writer of the file. Other parts of the daemon that need tables of their own
(the MQTT outbox) take :attr:`Store.connection` and open a cursor on it.

Crash safety: every :meth:`Store.write` is one transaction. DuckDB's write-ahead log
makes a committed transaction survive ``kill -9``; on the next start
:meth:`Store.recover` turns the last committed snapshot of open sightings into closed
ones, so nothing committed is lost (a sighting cut by the crash ends at its last
committed read).

Integrity: the store remembers which file it opened (device and inode). A file deleted
or replaced under the running daemon would otherwise go on taking writes into an
unlinked inode that vanishes at the next restart; :meth:`Store.problem` says so, and
every write refuses with :class:`StoreError` instead of pretending to commit.

Threading: DuckDB calls block, so the daemon makes them on one worker thread through
:meth:`Store.call`; the event loop never waits on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from tagsweep.daemon.store_schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION
from tagsweep.daemon.thread_calls import until_done
from tagsweep.domain import ReadBatch, SightingBatch, now_us
from tagsweep.logs import get_logger

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(slots=True)
class ScanRecord:
    """One barcode scan as stored (the session and location context at scan time)."""

    ts_us: int
    scanner: str
    kind: str
    value: str
    data: str
    symbology: str
    session_id: str | None
    location: str | None
    operator: str | None = None  # who scanned, when it is not the session's operator (phones)
    scan_id: str | None = None  # the scanning device's idempotency key (phones)


@dataclass(slots=True)
class WriteBatch:
    """Everything one flush commits, in one transaction."""

    closed: list[tuple[SightingBatch, npt.NDArray[np.uint64]]] = field(default_factory=list)
    #: the latest snapshot of open sightings; None = leave the stored snapshot as is
    open_snapshot: tuple[SightingBatch, npt.NDArray[np.uint64]] | None = None
    reads: list[ReadBatch] = field(default_factory=list)
    scans: list[ScanRecord] = field(default_factory=list)
    contexts: list[tuple[str | None, int, str, str]] = field(default_factory=list)
    reader_status: list[tuple[int, str, str, str]] = field(default_factory=list)

    def merge(self, later: WriteBatch) -> None:
        self.closed += later.closed
        if later.open_snapshot is not None:
            self.open_snapshot = later.open_snapshot
        self.reads += later.reads
        self.scans += later.scans
        self.contexts += later.contexts
        self.reader_status += later.reader_status

    @property
    def empty(self) -> bool:
        return not (
            self.closed
            or self.open_snapshot is not None
            or self.reads
            or self.scans
            or self.contexts
            or self.reader_status
        )


@dataclass(frozen=True, slots=True)
class Recovery:
    """What :meth:`Store.recover` found after an unclean stop."""

    open_sightings_closed: int
    next_sighting_id: int


def _file_id(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


class StoreError(RuntimeError):
    """The store cannot be opened or written (disk full, locked by another process…)."""


def _read_sum(table: pa.Table) -> int:
    total = pc.sum(table.column("read_count")).as_py()
    return int(total or 0)


class Store:
    """The daemon's DuckDB file (single writer)."""

    def __init__(
        self,
        path: Path | str,
        *,
        reader_names: Sequence[str] = (),
        keep_raw_reads: bool = False,
        raw_read_retention_s: float = 86400.0,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        self.reader_names = np.array(list(reader_names) or ["reader"], dtype=object)
        self.keep_raw_reads = keep_raw_reads
        self.raw_read_retention_s = raw_read_retention_s
        self.log = get_logger("store", path=str(self.path))
        self._file_id = _file_id(self.path)
        self._executor: ThreadPoolExecutor | None = None
        self._con.execute(SCHEMA)
        self._con.execute(MIGRATIONS)
        self._con.execute(
            "INSERT OR REPLACE INTO store_meta VALUES ('schema_version', ?)",
            [str(SCHEMA_VERSION)],
        )
        #: sightings committed since this process opened the store (closed + open rows)
        self.committed_closed = 0
        self.committed_open = 0
        self.committed_closed_reads = 0
        self.committed_open_reads = 0

    @property
    def committed_reads(self) -> int:
        """Reads inside sightings committed by this process (they survive a crash)."""
        return self.committed_closed_reads + self.committed_open_reads

    # -- integrity -----------------------------------------------------------------------
    def problem(self) -> str | None:
        """Why the store cannot keep what is written to it any more, or None."""
        try:
            now = _file_id(self.path)
        except FileNotFoundError:
            return (
                f"the store file {self.path} was deleted while the gateway had it open: "
                "nothing written from now on would be kept; restore it from a backup or "
                "restart the gateway to start a new store"
            )
        except OSError as exc:
            return f"the store file {self.path} cannot be checked: {exc.strerror}"
        if now != self._file_id:
            return (
                f"the store file {self.path} was replaced by another file while the "
                "gateway had it open: writes would go to the old, unlinked one; restart "
                "the gateway to use the new file"
            )
        return None

    def require_intact(self) -> None:
        """Raise StoreError if :meth:`problem` finds one (before every write)."""
        problem = self.problem()
        if problem is not None:
            raise StoreError(problem)

    # -- plumbing ------------------------------------------------------------------------
    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The connection; other components take ``.cursor()`` of it for their tables."""
        return self._con

    async def call(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run ``fn`` on the store's one worker thread (DuckDB calls block)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tagsweep-store")
        loop = asyncio.get_running_loop()
        # The thread cannot be interrupted: a cancelled call still finishes, so the store
        # stays consistent with what was committed, then the cancellation propagates.
        return await until_done(loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs)))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with contextlib.suppress(duckdb.Error):
            self._con.execute("CHECKPOINT")
        self._con.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._con.execute(sql, list(params)).fetchall()

    # -- recovery ------------------------------------------------------------------------
    def recover(self) -> Recovery:
        """Close sightings left open by an unclean stop; return the next sighting id."""
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            n = int(con.execute("SELECT count(*) FROM open_sightings").fetchall()[0][0])
            con.execute("INSERT INTO sightings SELECT * FROM open_sightings")
            con.execute("DELETE FROM open_sightings")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        top = con.execute("SELECT coalesce(max(sighting_id), 0) FROM sightings").fetchall()
        if n:
            self.log.warning("recovered_open_sightings", sightings=n)
        return Recovery(n, int(top[0][0]) + 1)

    # -- the write path ------------------------------------------------------------------
    def write(self, batch: WriteBatch) -> None:
        """Commit one flush: closed sightings, the open snapshot, reads, scans, status."""
        if batch.empty:
            return
        self.require_intact()
        con = self._con
        closed = [self._sighting_table(s, ids) for s, ids in batch.closed if len(s)]
        snapshot = (
            None if batch.open_snapshot is None else self._sighting_table(*batch.open_snapshot)
        )
        con.execute("BEGIN TRANSACTION")
        try:
            for table in closed:
                con.register("_closed", table)
                con.execute("INSERT INTO sightings SELECT * FROM _closed")
                con.unregister("_closed")
            if snapshot is not None:
                con.execute("DELETE FROM open_sightings")
                if snapshot.num_rows:
                    con.register("_open", snapshot)
                    con.execute("INSERT INTO open_sightings SELECT * FROM _open")
                    con.unregister("_open")
            if self.keep_raw_reads and batch.reads:
                raw = self._read_table(np.concatenate(batch.reads))
                con.register("_reads", raw)
                con.execute("INSERT INTO reads SELECT * FROM _reads")
                con.unregister("_reads")
            if batch.scans:
                con.executemany(
                    "INSERT INTO scans (ts_us, scanner, session_id, kind, value, data, "
                    "symbology, location, operator, scan_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        [
                            s.ts_us,
                            s.scanner,
                            s.session_id,
                            s.kind,
                            s.value,
                            s.data,
                            s.symbology,
                            s.location,
                            s.operator,
                            s.scan_id,
                        ]
                        for s in batch.scans
                    ],
                )
            if batch.contexts:
                con.executemany(
                    "INSERT INTO location_contexts VALUES (?, ?, ?, ?)",
                    [list(c) for c in batch.contexts],
                )
            if batch.reader_status:
                con.executemany(
                    "INSERT INTO reader_status VALUES (?, ?, ?, ?)",
                    [list(r) for r in batch.reader_status],
                )
            con.execute("COMMIT")
        except Exception:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
        self.committed_closed += sum(t.num_rows for t in closed)
        self.committed_closed_reads += sum(_read_sum(t) for t in closed)
        if snapshot is not None:
            self.committed_open = snapshot.num_rows
            self.committed_open_reads = _read_sum(snapshot)

    def prune_raw_reads(self, now: int | None = None) -> int:
        """Delete raw reads older than the retention; returns how many went."""
        if not self.keep_raw_reads:
            return 0
        cutoff = (now or now_us()) - int(self.raw_read_retention_s * 1e6)
        rows = self._con.execute(
            "DELETE FROM reads WHERE first_seen_us < ? RETURNING 1", [cutoff]
        ).fetchall()
        return len(rows)

    def _names(self, index: npt.NDArray[np.uint16]) -> pa.Array:
        names = self.reader_names
        safe = np.minimum(index.astype(np.intp), len(names) - 1)
        return pa.array(names[safe], type=pa.string())

    def _sighting_table(self, s: SightingBatch, ids: npt.NDArray[np.uint64]) -> pa.Table:
        return pa.table(
            {
                "sighting_id": pa.array(ids, type=pa.uint64()),
                "epc": pa.array(s["epc"]).cast(pa.string()),
                "reader": self._names(s["reader"]),
                "antenna": pa.array(s["antenna"], type=pa.uint16()),
                "first_seen_us": pa.array(s["first_seen_us"], type=pa.int64()),
                "last_seen_us": pa.array(s["last_seen_us"], type=pa.int64()),
                "read_count": pa.array(s["read_count"], type=pa.uint64()),
                "peak_rssi": pa.array(s["peak_rssi"], type=pa.float32(), from_pandas=True),
                "mean_rssi": pa.array(s["mean_rssi"], type=pa.float32(), from_pandas=True),
            }
        )

    def _read_table(self, r: ReadBatch) -> pa.Table:
        return pa.table(
            {
                "epc": pa.array(r["epc"]).cast(pa.string()),
                "reader": self._names(r["reader"]),
                "antenna": pa.array(r["antenna"], type=pa.uint16()),
                "rssi": pa.array(r["rssi"], type=pa.float32(), from_pandas=True),
                "first_seen_us": pa.array(r["first_seen_us"], type=pa.int64()),
                "last_seen_us": pa.array(r["last_seen_us"], type=pa.int64()),
                "seen_count": pa.array(r["seen_count"], type=pa.uint32()),
                "phase": pa.array(r["phase"], type=pa.float32(), from_pandas=True),
                "doppler_hz": pa.array(r["doppler_hz"], type=pa.float32(), from_pandas=True),
            }
        )

    # -- sessions ------------------------------------------------------------------------
    def insert_session(
        self,
        session_id: str,
        site: str,
        operator: str,
        scope: Sequence[str],
        started_us: int,
        *,
        expected: str | None = None,
    ) -> None:
        """A new open session; ``expected`` is its register file for the live view
        (kept so a restarted daemon can restore the live count)."""
        self.require_intact()
        self._con.execute(
            "INSERT INTO sessions (session_id, site, operator, scope, started_us, state, "
            "expected) VALUES (?, ?, ?, ?, ?, 'open', ?)",
            [session_id, site, operator, json.dumps(list(scope)), started_us, expected],
        )

    def set_session_state(
        self,
        session_id: str,
        state: str,
        *,
        ended_us: int | None = None,
        file: str | None = None,
        sha256: str | None = None,
        row_count: int | None = None,
    ) -> None:
        self.require_intact()
        self._con.execute(
            "UPDATE sessions SET state = ?, ended_us = coalesce(?, ended_us), "
            "file = coalesce(?, file), sha256 = coalesce(?, sha256), "
            "row_count = coalesce(?, row_count) WHERE session_id = ?",
            [state, ended_us, file, sha256, row_count, session_id],
        )

    def session_rows(
        self, *, session_id: str | None = None, states: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Sessions, optionally one id and/or some states, oldest first."""
        cur = self._con.execute(
            "SELECT session_id, site, operator, scope, started_us, ended_us, state, file, "
            "sha256, row_count, expected FROM sessions WHERE ($id IS NULL OR session_id = $id) "
            "AND (len($states) = 0 OR list_contains($states, state)) ORDER BY started_us",
            {"id": session_id, "states": list(states)},
        )
        names = [d[0] for d in cur.description or []]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        for row in rows:
            row["scope"] = json.loads(row["scope"])
        return rows

    def contexts(self, session_id: str) -> list[tuple[int, str, str]]:
        rows = self._con.execute(
            "SELECT ts_us, location, source FROM location_contexts WHERE session_id = ? "
            "ORDER BY ts_us",
            [session_id],
        ).fetchall()
        return [(int(t), str(loc), str(src)) for t, loc, src in rows]

    def session_sightings(self, started_us: int, ended_us: int, window_us: int = 0) -> pa.Table:
        """Every sighting (closed or still open) of a count session: those overlapping
        its time span, and those still open when it started (last read less than the
        dedup window before it: a read at the start would have joined them)."""
        return self._con.sql(
            "SELECT * FROM (SELECT * FROM sightings UNION ALL SELECT * FROM open_sightings) "
            "WHERE first_seen_us <= $ended AND last_seen_us > $started - $window "
            "ORDER BY sighting_id",
            params={"ended": ended_us, "started": started_us, "window": max(window_us, 1)},
        ).to_arrow_table()

    def write_scan_once(self, record: ScanRecord) -> bool:
        """Store a scan unless one with its ``scan_id`` is stored already (a device
        re-sending what it could not see acknowledged); True when it was new. Atomic:
        the store has one writer thread."""
        if record.scan_id is not None:
            seen = self._con.execute(
                "SELECT count(*) FROM scans WHERE scan_id = ?", [record.scan_id]
            ).fetchone()
            if seen is not None and int(seen[0]):
                return False
        self.write(WriteBatch(scans=[record]))
        return True

    def session_scans(self, session_id: str) -> pa.Table:
        return self._con.sql(
            "SELECT * FROM scans WHERE session_id = $id ORDER BY ts_us",
            params={"id": session_id},
        ).to_arrow_table()

    def replace_observations(self, session_id: str, table: pa.Table) -> None:
        self.require_intact()
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("DELETE FROM observations WHERE session_id = ?", [session_id])
            con.register("_obs", table)
            con.execute(
                "INSERT INTO observations SELECT session_id, site, method, location, epc, "
                "asset_tag, serial, first_seen_us, last_seen_us, read_count, peak_rssi, "
                "reader, operator FROM _obs"
            )
            con.unregister("_obs")
            con.execute("COMMIT")
        except Exception:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise

    def counts(self) -> dict[str, int]:
        row = self._con.execute(
            "SELECT (SELECT count(*) FROM sightings), (SELECT count(*) FROM open_sightings), "
            "(SELECT count(*) FROM scans), (SELECT count(*) FROM sessions)"
        ).fetchall()[0]
        return {
            "sightings": int(row[0]),
            "open_sightings": int(row[1]),
            "scans": int(row[2]),
            "sessions": int(row[3]),
        }
