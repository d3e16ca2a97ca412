"""One reconciliation run: snapshot (or baseline register) + counts → run folder.

The run reads only frozen inputs and records their hashes, derives its date from the
data (the latest count time) rather than the wall clock, and derives its id from the
hashes of everything it read; so the same inputs and configuration give the same
run id, the same variance ids and byte-identical files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from tagsweep import __version__
from tagsweep.config.engine import EngineSection, ExportLimits
from tagsweep.domain import SESSION_FILE_COLUMNS
from tagsweep.engine import classify, match, normalize, sandbox
from tagsweep.engine.audit_anchor import anchor_record
from tagsweep.engine.csv_reader import csv_rows, read_csv
from tagsweep.engine.escaping import csv_safe
from tagsweep.engine.hygiene import strip_nul
from tagsweep.engine.limits import LimitError, check_file_size, check_table
from tagsweep.engine.outputs import (
    escape_formula_sql,
    write_corrections,
    write_matches,
    write_register,
    write_variance_log,
)
from tagsweep.engine.presets import GENERIC, header_key, resolve_columns
from tagsweep.engine.profiling import RunProfiler
from tagsweep.engine.report import RunSummary, collect, render_html, render_markdown
from tagsweep.engine.session_check import SessionCheck, SessionCheckError, check_session_file
from tagsweep.engine.snapshot import LINE_COLUMN, BadRow, FreezeError, load_snapshot
from tagsweep.engine.stages import RunContext, SourceInput, Stage, StageRunner, ident, lit
from tagsweep.engine.trends import TrendsError, compare_runs, render_html_fragment
from tagsweep.engine.trends import render_markdown as render_trends_markdown
from tagsweep.hashing import sha256_file

#: seconds and peak memory per stage, beside the manifest (engine/profiling.py)
TIMINGS_FILE = "timings.json"

#: Columns a count input may carry: the session file's, plus what a manual count sheet
#: records beyond them (the seed's count records user and condition).
COUNT_COLUMNS: tuple[str, ...] = (*SESSION_FILE_COLUMNS, "custodian", "condition")
COUNT_IDENTIFIERS = ("epc", "asset_tag", "serial")
#: Session-file columns scanned for NUL characters to report them (they are removed from
#: every text column): what a barcode can carry. The EPC is hex the gateway formats;
#: scanning it too cost 0.46 s instead of 0.03 s for three million reads.
NUL_CHECKED = ("location", "asset_tag", "serial")


class RunError(Exception):
    """The run cannot proceed (a required column is missing, an input was altered)."""


@dataclass(slots=True)
class CountInput:
    path: Path
    kind: str  # session | sheet
    sha256: str
    rows: int
    bad: list[BadRow]
    relation: str
    scope: list[str] = field(default_factory=list)
    manifest: str | None = None
    check: SessionCheck | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RunResult:
    out_dir: Path
    run_id: str
    as_of: date
    manifest: dict[str, Any]
    timings: dict[str, float]
    #: what timings.json holds: wall seconds, peak memory, every stage's seconds and peak
    profile: dict[str, Any] = field(default_factory=dict)


def add_business_days(start: date, days: int, holidays: Sequence[date] = ()) -> date:
    """``start`` plus ``days`` working days (Monday-Friday, minus ``holidays``)."""
    current = start
    left = days
    skip = set(holidays)
    while left > 0:
        current += timedelta(days=1)
        if current.weekday() < 5 and current not in skip:
            left -= 1
    return current


def _text_relation(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[str, list[str]]:
    """A relation over a Parquet file with every column as text plus ``_line``."""
    names = [
        str(r[0])
        for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    ]
    cols = ", ".join(
        f"CAST({ident(n)} AS VARCHAR) AS {ident(n)}" for n in names if n != LINE_COLUMN
    )
    line = LINE_COLUMN if LINE_COLUMN in names else "row_number() OVER ()"
    return (
        f"(SELECT {cols}, CAST({line} AS BIGINT) AS {LINE_COLUMN} "
        f"FROM read_parquet({lit(str(path))}))",
        names,
    )


def load_sources(
    con: duckdb.DuckDBPyConnection, baseline: Path
) -> tuple[list[SourceInput], dict[str, Any], list[BadRow], list[str]]:
    """Sources of a snapshot directory, or a previous (golden) register Parquet."""
    if baseline.is_dir():
        snapshot = load_snapshot(baseline)
        inputs = [
            SourceInput(
                name=s.name,
                role=s.role,
                preset=s.preset,
                file=s.original_name,
                path=baseline / s.file,
                columns=s.columns,
                relation=f"read_parquet({lit(str(baseline / s.file))})",
            )
            for s in snapshot.sources
        ]
        info = {
            "kind": "snapshot",
            "name": baseline.name,
            "manifest_sha256": sha256_file(baseline / "snapshot.json"),
            "sources": [
                {
                    "name": s.name,
                    "preset": s.preset,
                    "role": s.role,
                    "sha256": s.sha256,
                    "rows": s.rows,
                    "bad_rows": s.bad_rows,
                    "exported_at": s.exported_at,
                }
                for s in snapshot.sources
            ],
        }
        return inputs, info, list(snapshot.bad_rows), list(snapshot.warnings)
    if baseline.suffix.lower() == ".parquet" and baseline.is_file():
        relation, names = _text_relation(con, baseline)
        columns = resolve_columns(GENERIC, [n for n in names if n != LINE_COLUMN], {})
        if "asset_tag" not in columns and "serial" not in columns:
            raise RunError(f"{baseline}: a register needs an asset_tag or serial column")
        source = SourceInput(
            name="register",
            role="itam",
            preset="generic",
            file=baseline.name,
            path=baseline,
            columns=columns,
            relation=relation,
        )
        info = {"kind": "register", "name": baseline.name, "sha256": sha256_file(baseline)}
        return [source], info, [], []
    raise RunError(f"{baseline}: expected a snapshot directory or a register .parquet file")


def load_counts(
    con: duckdb.DuckDBPyConnection,
    paths: Sequence[Path],
    tmp_dir: Path,
    settings: EngineSection | None = None,
    *,
    allow_unverified: bool = False,
) -> list[CountInput]:
    """Session files (Parquet, verified against their manifest: engine.session_check)
    and manual count sheets (CSV)."""
    trusted = settings.trusted_gateways if settings is not None else {}
    inputs: list[CountInput] = []
    for index, path in enumerate(paths):
        if not path.is_file():
            raise RunError(f"count input {path} does not exist")
        digest = sha256_file(path)
        if path.suffix.lower() == ".parquet":
            names = [
                str(r[0])
                for r in con.execute(
                    "DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]
                ).fetchall()
            ]
            relation = (
                f"(SELECT *, file_row_number + 1 AS {LINE_COLUMN} "
                f"FROM read_parquet({lit(str(path))}, file_row_number = true))"
            )
            bad: list[BadRow] = []
            try:
                check = check_session_file(
                    con, path, digest, trusted_gateways=trusted, allow_unverified=allow_unverified
                )
            except SessionCheckError as exc:
                raise RunError(str(exc)) from None
            scope, manifest, kind = check.scope, check.manifest, "session"
            notes = []
        else:
            limits = settings.limits if settings is not None else ExportLimits()
            try:
                check_file_size(path, limits)
                table, bad, _encoding = read_csv(path, path.name, tmp_dir)
                check_table(table, path, limits, LINE_COLUMN)
            except LimitError as exc:
                raise RunError(str(exc)) from None
            table, nul = strip_nul(table, LINE_COLUMN)
            notes = [f"count file {path.name}: {nul}"] if nul else []
            name = f"count_sheet_{index}"
            # a table, not a registered Arrow view: the stages also run on other cursors
            con.register(name + "_arrow", table)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_arrow")
            con.unregister(name + "_arrow")
            names = list(table.column_names)
            cols = ", ".join(ident(n) for n in names if n != LINE_COLUMN)
            relation = f"(SELECT {cols}, {LINE_COLUMN} FROM {name})"
            scope, manifest, kind = [], None, "sheet"
            check = SessionCheck(manifest=None, integrity="sheet")
        keys = {header_key(n): n for n in names}
        missing = [c for c in ("location",) if header_key(c) not in keys]
        if missing or not any(header_key(c) in keys for c in COUNT_IDENTIFIERS):
            raise RunError(
                f"{path}: a count needs a 'location' column and one of "
                f"{', '.join(COUNT_IDENTIFIERS)}; it has {[n for n in names if n != LINE_COLUMN]}"
            )
        parts = []
        nul_checks: list[str] = []
        for c in COUNT_COLUMNS:
            col = ident(keys[header_key(c)]) if header_key(c) in keys else None
            if c in {"first_seen", "last_seen"}:
                if col is None:
                    parts.append(f"CAST(NULL AS TIMESTAMPTZ) AS {c}")
                elif kind == "session":
                    parts.append(f"TRY_CAST({col} AS TIMESTAMPTZ) AS {c}")
                else:
                    parts.append(f"ts_parse(blank({col})) AS {c}")
            elif col is None:
                parts.append(f"CAST(NULL AS VARCHAR) AS {c}")
            elif kind == "session":
                # a scanned label may carry a NUL; it never reaches a field
                parts.append(f"replace(CAST({col} AS VARCHAR), chr(0), '') AS {c}")
                if c in NUL_CHECKED:
                    nul_checks.append(f"contains(CAST({col} AS VARCHAR), chr(0))")
            else:
                parts.append(f"CAST({col} AS VARCHAR) AS {c}")
        last_seen_col = ident(keys[header_key("last_seen")]) if "lastseen" in keys else None
        parts.append(
            f"blank({last_seen_col}) AS last_seen_text"
            if kind == "sheet" and last_seen_col
            else "CAST(NULL AS VARCHAR) AS last_seen_text"
        )
        if nul_checks:
            nul_row = con.execute(
                f"SELECT count(*), min({LINE_COLUMN}) FROM {relation} "
                f"WHERE {' OR '.join(nul_checks)}"
            ).fetchall()[0]
            if nul_row[0]:
                notes.append(
                    f"count file {path.name}: NUL characters removed from {nul_row[0]} row(s) "
                    f"(first on row {nul_row[1]})"
                )
        relation = (
            f"(SELECT {lit(path.name)} AS file, CAST({LINE_COLUMN} AS BIGINT) AS line, "
            f"{', '.join(parts)} FROM {relation})"
        )
        rows_row = con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0]
        inputs.append(
            CountInput(
                path=path,
                kind=kind,
                sha256=digest,
                rows=int(rows_row[0]) if rows_row else 0,
                bad=bad,
                relation=relation,
                scope=scope,
                manifest=manifest,
                check=check,
                notes=notes,
            )
        )
    return inputs


def config_hash(settings: EngineSection) -> str:
    # The case workflow's policy does not change what a run computes.
    data = settings.model_dump(mode="json", exclude={"cases"})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def reconcile(
    baseline: Path,
    counts: Sequence[Path],
    settings: EngineSection,
    out_dir: Path,
    *,
    as_of: date | None = None,
    scope: Sequence[str] | None = None,
    debug_dir: Path | None = None,
    on_stage: Callable[[Stage], None] | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    history: Sequence[Path] = (),
    audit_log: Path | None = None,
    allow_unverified: bool = False,
) -> RunResult:
    """Run freeze-checked normalize → match → classify → outputs into ``out_dir``.

    ``history`` names earlier run folders: the report then carries the trends across
    them and this run. ``allow_unverified`` counts session files without a manifest or
    a trusted signature; each one is named in the run manifest and report. ``audit_log``
    is the case store's audit log: its head at this time is recorded in the manifest and
    report (an anchor kept outside the store)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # The files of the run are all this connection may open: the baseline, the counts,
    # the output and debug folders (see engine.sandbox).
    baseline_dir = [baseline] if baseline.is_dir() else []
    con = sandbox.connect(
        read=[*([] if baseline_dir else [baseline]), *counts],
        dirs=[*baseline_dir, out_dir, *([debug_dir] if debug_dir is not None else [])],
        memory_limit=memory_limit,
        threads=threads,
        # Every output is written with an ORDER BY on a unique key, and every aggregate
        # is order-independent, so stage tables need not keep insertion order (3x cheaper).
        preserve_insertion_order=False,
    )
    profiler = RunProfiler()
    profiler.start()
    try:
        with tempfile.TemporaryDirectory(prefix="tagsweep-run-") as tmp:
            return _reconcile(
                profiler,
                con,
                baseline=baseline,
                counts=counts,
                settings=settings,
                out_dir=out_dir,
                tmp_dir=Path(tmp),
                as_of=as_of,
                scope=scope,
                debug_dir=debug_dir,
                on_stage=on_stage,
                history=history,
                audit_log=audit_log,
                allow_unverified=allow_unverified,
            )
    finally:
        profiler.stop()
        con.close()


def _reconcile(
    profiler: RunProfiler,
    con: duckdb.DuckDBPyConnection,
    *,
    baseline: Path,
    counts: Sequence[Path],
    settings: EngineSection,
    out_dir: Path,
    tmp_dir: Path,
    as_of: date | None,
    scope: Sequence[str] | None,
    debug_dir: Path | None,
    on_stage: Callable[[Stage], None] | None,
    history: Sequence[Path] = (),
    audit_log: Path | None = None,
    allow_unverified: bool = False,
) -> RunResult:
    con.execute(normalize.MACROS)
    sources, baseline_info, bad_rows, warnings = load_sources(con, baseline)
    count_inputs = load_counts(con, counts, tmp_dir, settings, allow_unverified=allow_unverified)
    for c in count_inputs:
        bad_rows.extend(c.bad)
        warnings.extend(c.notes)
        if c.check is not None and c.check.integrity == "unverified":
            warnings.append(
                f"session file {c.path.name} is counted UNVERIFIED (--allow-unverified): "
                f"{c.check.note}"
            )
    if count_inputs:
        count_sql = " UNION ALL ".join(f"SELECT * FROM {c.relation}" for c in count_inputs)
    else:
        cols = ", ".join(
            f"CAST(NULL AS {'TIMESTAMPTZ' if c in {'first_seen', 'last_seen'} else 'VARCHAR'})"
            f" AS {c}"
            for c in (*COUNT_COLUMNS, "last_seen_text")
        )
        count_sql = (
            f"SELECT CAST(NULL AS VARCHAR) AS file, CAST(NULL AS BIGINT) AS line, {cols} "
            "WHERE false"
        )
    # A view: observations_all reads it once; copying a million rows first costs time.
    con.execute(f"CREATE VIEW count_rows AS {count_sql}")
    con.execute("CREATE TABLE epc_map (epc VARCHAR, asset_tag VARCHAR)")
    epc_map_hash = None
    if settings.epc_scheme == "mapping" and settings.epc_mapping_file is not None:
        rows = csv_rows(settings.epc_mapping_file)
        con.executemany(
            "INSERT INTO epc_map VALUES (upper(trim(?)), upper(trim(?)))",
            [(r.get("epc", ""), r.get("asset_tag", "")) for r in rows],
        )
        epc_map_hash = sha256_file(settings.epc_mapping_file)

    if scope:
        run_scope = list(scope)
    elif settings.scope:
        run_scope = list(settings.scope)
    else:
        run_scope = sorted({s for c in count_inputs for s in c.scope})

    normalize.create_lookup_tables(
        con, RunContext(settings, date(1970, 1, 1), "", run_scope, date.min, date.min, sources)
    )
    if as_of is None:
        row = con.execute("SELECT max(last_seen), max(first_seen) FROM count_rows").fetchall()[0]
        latest = (row[0] or row[1]) if row else None
        if latest is None and baseline_info["kind"] == "snapshot":
            latest = max(
                (datetime.fromisoformat(s["exported_at"]) for s in baseline_info["sources"]),
                default=None,
            )
        as_of = latest.astimezone(UTC).date() if latest is not None else date(1970, 1, 1)

    inputs_doc = {
        "baseline": baseline_info,
        "counts": [
            {
                "file": c.path.name,
                "kind": c.kind,
                "sha256": c.sha256,
                "rows": c.rows,
                "bad_rows": len(c.bad),
                "manifest": c.manifest,
                "integrity": c.check.integrity if c.check else None,
                "gateway": c.check.gateway if c.check else None,
                "unverified_reason": c.check.note if c.check else None,
            }
            for c in count_inputs
        ],
        "allow_unverified": allow_unverified,
        "epc_mapping_sha256": epc_map_hash,
    }
    cfg_hash = config_hash(settings)
    run_id = (
        "R-"
        + hashlib.sha256(
            json.dumps(
                {
                    "inputs": inputs_doc,
                    "config": cfg_hash,
                    "version": __version__,
                    "as_of": as_of.isoformat(),
                    "scope": run_scope,
                },
                sort_keys=True,
            ).encode()
        ).hexdigest()[:16]
    )
    ctx = RunContext(
        settings=settings,
        as_of=as_of,
        run_id=run_id,
        scope=run_scope,
        sla_routine=add_business_days(as_of, settings.sla_business_days, settings.holidays),
        sla_urgent=add_business_days(as_of, settings.sla_business_days_urgent, settings.holidays),
        sources=sources,
        counted=bool(count_inputs),
    )
    runner = StageRunner(con, debug_dir=debug_dir, on_stage=on_stage, profiler=profiler)
    background = _Background(con, out_dir, runner.timings, profiler)
    try:
        bad_rows.extend(_run_stages(ctx, runner, background))

        # Bad rows found by the stages join those found by freeze and count sheet parsing.
        for table, source in (("source_records", "source"), ("people", "source")):
            for src, file, line, reason in con.execute(
                f"SELECT {source}, file, line, bad_reason FROM {table} "
                "WHERE bad_reason IS NOT NULL ORDER BY source, line"
            ).fetchall():
                bad_rows.append(BadRow(str(src), str(file), int(line), str(reason)))
        warnings.extend(_set_aside_notes(con))
        for src, n, labels in con.execute(
            "SELECT source, count(*), "
            "string_agg(DISTINCT status_label, ', ' ORDER BY status_label) "
            "FROM source_records WHERE status_unmapped GROUP BY source ORDER BY source"
        ).fetchall():
            warnings.append(
                f"source {src}: {n} record(s) with status labels not in the translation table "
                f"({labels}); add them to [engine.status_map]"
            )

        register_source = next(
            (s.name for s in sources if s.role in settings.register_roles), "register"
        )
        # the report's figures come from the stage tables: gathered while the files are
        # written (the corrections per source are added when they are known)
        summaries: list[RunSummary] = []
        n_bad = len(bad_rows)
        background.submit(
            lambda cur: summaries.append(
                collect(
                    cur,
                    run_id=run_id,
                    as_of=as_of.isoformat(),
                    version=__version__,
                    scope=run_scope,
                    bad_rows=n_bad,
                    warnings=warnings,
                    sources=[(s.name, s.preset, _rows(cur, s)) for s in sources],
                    counts=[(c.path.name, c.rows) for c in count_inputs],
                    corrections={},
                )
            )
        )
        started = time.perf_counter()
        with profiler.span("outputs", "outputs"):
            corrections = _write_outputs(con, out_dir, register_source, background)
        runner.timings["outputs"] = time.perf_counter() - started
        summary = summaries[0]
        summary.corrections = corrections
    finally:
        background.close()
    reports_started = time.perf_counter()
    hashes = background.hashes
    bad_rows.sort(key=lambda b: (b.source, b.file, b.line, b.reason))
    with (out_dir / "bad_rows.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["source", "file", "line", "reason"])
        for b in bad_rows:
            writer.writerow([csv_safe(b.source), csv_safe(b.file), b.line, csv_safe(b.reason)])

    n_bad_values = write_bad_values(con, out_dir / "bad_values.csv")
    summary.bad_values = n_bad_values
    anchor = anchor_record(audit_log) if audit_log is not None else None
    if anchor is not None:
        summary.audit_head = f"seq {anchor['seq']} sha256 {anchor['hash']}"
    trends_html, trends_md = _trends_sections(out_dir, tmp_dir, summary, history)
    (out_dir / "report.md").write_text(render_markdown(summary, trends=trends_md), encoding="utf-8")
    (out_dir / "report.html").write_text(render_html(summary, trends=trends_html), encoding="utf-8")

    outputs = sorted(
        p.relative_to(out_dir).as_posix()
        for p in out_dir.rglob("*")
        if p.is_file() and p.name not in {"manifest.json", TIMINGS_FILE}
    )
    manifest = {
        "run_id": run_id,
        "tagsweep_version": __version__,
        "as_of": as_of.isoformat(),
        "scope": run_scope,
        "config_sha256": cfg_hash,
        "inputs": inputs_doc,
        "counts": {
            "register_assets": summary.register_assets,
            "expected_in_count": summary.expected_here,
            "found": summary.found,
            "counted_items": summary.observed_items,
            "variances": summary.variances,
            "assets_with_variance": summary.assets_with_variance,
            "variance_rate_percent": round(summary.rate, 3),
            "bad_rows": len(bad_rows),
            "bad_values": n_bad_values,
            "by_type": dict(summary.by_type),
        },
        "warnings": warnings,
        "audit_anchor": anchor,
        "outputs": {name: hashes.get(name) or sha256_file(out_dir / name) for name in outputs},
        # seconds and peak memory per stage: not hashed, they differ between two runs
        "timings": TIMINGS_FILE,
    }
    (out_dir / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    profiler.record("reports_and_manifest", "outputs", reports_started, time.perf_counter())
    profiler.stop()
    profile = profiler.report()
    (out_dir / TIMINGS_FILE).write_text(json.dumps(profile, indent=2) + "\n", encoding="utf-8")
    return RunResult(out_dir, run_id, as_of, manifest, dict(runner.timings), profile)


class _Background:
    """Work that overlaps the stages: a stage that only needs the lookup tables, and
    the output files whose table is final (the register once normalize is done, the
    matches once match is). Each job runs on its own cursor in a worker thread, and the
    files it writes are hashed there for the manifest; ``wait`` re-raises a failure."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        out_dir: Path,
        timings: dict[str, float],
        profiler: RunProfiler,
    ) -> None:
        self.con = con
        self.out_dir = out_dir
        self.timings = timings
        self.profiler = profiler
        self.hashes: dict[str, str] = {}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reconcile")
        self._pending: list[Future[None]] = []

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.con.cursor()  # the connection's (locked) settings are global

    def hash_files(self, *files: str) -> None:
        for rel in files:
            self.hashes[rel] = sha256_file(self.out_dir / rel)

    def submit(self, job: Callable[[duckdb.DuckDBPyConnection], object]) -> Future[None]:
        def run() -> None:
            cur = self.cursor()
            try:
                job(cur)
            finally:
                cur.close()

        future = self._pool.submit(run)
        self._pending.append(future)
        return future

    def write(
        self, name: str, write: Callable[[duckdb.DuckDBPyConnection, Path], object], *files: str
    ) -> None:
        """Write (and hash) output files in the background; ``out:<name>`` is its time."""

        def job(cur: duckdb.DuckDBPyConnection) -> None:
            started = time.perf_counter()
            write(cur, self.out_dir)
            self.hash_files(*files)
            ended = time.perf_counter()
            self.timings[f"out:{name}"] = ended - started
            self.profiler.record(f"out:{name}", "outputs", started, ended)

        self.submit(job)

    def wait(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        """Wait for every job (also after a failure: no thread outlives the run)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def _run_stages(ctx: RunContext, runner: StageRunner, background: _Background) -> list[BadRow]:
    """normalize → match → classify, with what does not depend on the stage in between
    run alongside: the count side (observations) needs only the lookup tables and the
    HR people, so it is computed while the register is built; matches.parquet is
    written while classifying runs, register.parquet while the variance log is.

    Returns the count rows kept out. The normalized count rows are dropped once the
    matches are built (every later step reads the matches): at ten million reads they
    are gigabytes the classification would otherwise have to spill around."""
    normalize_stages = normalize.stages(ctx)
    match_stages = match.stages(ctx)
    people = [s for s in normalize_stages if s.name in normalize.COUNT_SIDE_NEEDS]
    runner.run(people)
    side = StageRunner(
        runner.con,
        debug_dir=runner.debug_dir,
        timings=runner.timings,
        on_stage=runner.on_stage,
        profiler=runner.profiler,
    )

    def observations(cur: duckdb.DuckDBPyConnection) -> None:
        side.con = cur
        side.run(match_stages[:1])

    count_side = background.submit(observations)
    runner.run([s for s in normalize_stages if s not in people])
    count_side.result()
    runner.run(match_stages[1:])
    background.write("matches", write_matches, "matches.parquet")
    con = runner.con
    bad = [
        BadRow("count", str(file), int(line), str(reason))
        for file, line, reason in con.execute(
            "SELECT file, line, bad_reason FROM observations_all WHERE bad_reason IS NOT NULL "
            "ORDER BY file, line"
        ).fetchall()
    ]
    con.execute("DROP VIEW observed_items")
    con.execute("DROP TABLE observations_all")
    runner.run(classify.stages(ctx))
    # Last: written while the variance log is (mostly one thread of Arrow encoding
    # each), it fills the core the stages' own parallel queries would compete for.
    background.write("register", write_register, "register.parquet")
    return bad


def _write_outputs(
    con: duckdb.DuckDBPyConnection, out_dir: Path, register_source: str, background: _Background
) -> dict[str, int]:
    """The corrections in the background while this connection writes the variance
    log; each file is hashed for the manifest as soon as it is written."""
    timings = background.timings
    corrections: dict[str, int] = {}

    def write(cur: duckdb.DuckDBPyConnection, out: Path) -> None:
        corrections.update(write_corrections(cur, out, register_source))
        background.hash_files(
            *sorted(p.relative_to(out).as_posix() for p in out.glob("corrections/*"))
        )

    background.write("corrections", write)
    started = time.perf_counter()
    write_variance_log(con, out_dir)
    ended = time.perf_counter()
    timings["out:variance_log"] = ended - started
    background.profiler.record("out:variance_log", "outputs", started, ended)
    background.submit(
        lambda _cur: background.hash_files("variances.parquet", "variances.csv", "variances.jsonl")
    )
    background.wait()
    return corrections


def _trends_sections(
    out_dir: Path, tmp_dir: Path, summary: RunSummary, history: Sequence[Path]
) -> tuple[str, str]:
    """The trends section (HTML, Markdown) over the ``history`` runs and this one, or
    empty strings without history.

    This run's manifest is written after the report, so the trends read this run from a
    stand-in folder: its variance log plus the manifest fields the trends use (run id,
    date, register size, rate), the same values the final manifest will carry. The
    output folder itself is skipped if a glob names it (a re-run into the same folder)."""
    here = out_dir.resolve()
    earlier = [Path(h) for h in history if Path(h).resolve() != here]
    if not earlier:
        return "", ""
    current = tmp_dir / "trends-current"
    current.mkdir()
    try:
        os.symlink((out_dir / "variances.parquet").resolve(), current / "variances.parquet")
    except OSError:
        shutil.copyfile(out_dir / "variances.parquet", current / "variances.parquet")
    stand_in = {
        "run_id": summary.run_id,
        "as_of": summary.as_of,
        "counts": {
            "register_assets": summary.register_assets,
            "variance_rate_percent": round(summary.rate, 3),
        },
    }
    (current / "manifest.json").write_text(json.dumps(stand_in), encoding="utf-8")
    try:
        trends = compare_runs([*earlier, current])
    except TrendsError as exc:
        raise RunError(f"--history: {exc}") from None
    md = render_trends_markdown(trends)
    # One level down: the trends become a section of the run's report.
    md = "\n".join("#" + line if line.startswith("#") else line for line in md.splitlines())
    return render_html_fragment(trends) + "\n", md + "\n\n"


BAD_VALUE_COLUMNS = ("source", "file", "line", "column", "value", "reason")


def write_bad_values(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """``bad_values.csv``: every value that did not parse and was emptied, its record
    kept (source, file, line, column, value, reason), formula-escaped; the row count."""
    cols = ", ".join(escape_formula_sql(c) if c != "line" else "line" for c in BAD_VALUE_COLUMNS)
    rows = con.execute(
        f'SELECT {cols} FROM bad_values ORDER BY source, file, line, "column", value'
    ).fetchall()
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(BAD_VALUE_COLUMNS)
        writer.writerows(rows)
    return len(rows)


def _set_aside_notes(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Records left out of the reconciliation on purpose, said once per source and
    reason: not company hardware (personal devices, Cloud PCs, scoped-out roles), and
    stale MDM enrolments of a device the MDM also holds live."""
    notes = [
        f"source {src}: {n} record(s) left out: {reason} (lines {lines})"
        for src, reason, n, lines in con.execute(
            "SELECT source, excluded, count(*), "
            "string_agg(CAST(line AS VARCHAR), ', ' ORDER BY line) FROM source_records "
            "WHERE excluded IS NOT NULL AND bad_reason IS NULL GROUP BY ALL ORDER BY 1, 2"
        ).fetchall()
    ]
    notes += [
        f"source {src}: line {line} (serial {serial}, last check-in {seen}) is a stale "
        f"enrolment of the device on line {kept}; the later record is used"
        for src, line, serial, seen, kept in con.execute(
            "SELECT source, line, coalesce(serial, asset_tag, record_id), "
            "coalesce(strftime(last_seen, '%Y-%m-%d'), 'never'), superseded_by "
            "FROM other_links WHERE superseded_by IS NOT NULL ORDER BY source, line"
        ).fetchall()
    ]
    return notes


def _rows(con: duckdb.DuckDBPyConnection, source: SourceInput) -> int:
    row = con.execute(
        "SELECT count(*) FROM source_rows WHERE source = ?", [source.name]
    ).fetchall()[0]
    if source.role == "hr":
        row = con.execute("SELECT count(*) FROM people WHERE source = ?", [source.name]).fetchall()[
            0
        ]
    return int(row[0]) if row else 0


__all__ = ["FreezeError", "RunError", "RunResult", "add_business_days", "reconcile"]
