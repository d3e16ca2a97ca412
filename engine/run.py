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
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from tagsweep import __version__
from tagsweep.config.engine import EngineSection
from tagsweep.engine import cleaning, pipeline, sandbox
from tagsweep.engine.audit_anchor import anchor_record
from tagsweep.engine.csv_reader import csv_rows
from tagsweep.engine.escaping import csv_safe
from tagsweep.engine.outputs import (
    escape_formula_sql,
)
from tagsweep.engine.profiling import RunProfiler
from tagsweep.engine.report import RunSummary, collect, render_html, render_markdown
from tagsweep.engine.run_inputs import (
    COUNT_COLUMNS,
    RunError,
    load_counts,
    load_sources,
    source_row_count,
)
from tagsweep.engine.snapshot import BadRow, FreezeError
from tagsweep.engine.stages import RunContext, Stage, StageRunner
from tagsweep.engine.trends import TrendsError, compare_runs, render_html_fragment
from tagsweep.engine.trends import render_markdown as render_trends_markdown
from tagsweep.hashing import sha256_file

#: seconds and peak memory per stage, beside the manifest (engine/profiling.py)
TIMINGS_FILE = "timings.json"


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
    con.execute(cleaning.MACROS)
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

    cleaning.create_lookup_tables(
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
    background = pipeline.Background(con, out_dir, runner.timings, profiler)
    try:
        bad_rows.extend(pipeline.run_stages(ctx, runner, background))

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
                    sources=[(s.name, s.preset, source_row_count(cur, s)) for s in sources],
                    counts=[(c.path.name, c.rows) for c in count_inputs],
                    corrections={},
                )
            )
        )
        started = time.perf_counter()
        with profiler.span("outputs", "outputs"):
            corrections = pipeline.write_outputs(con, out_dir, register_source, background)
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


__all__ = ["FreezeError", "RunError", "RunResult", "add_business_days", "reconcile"]
