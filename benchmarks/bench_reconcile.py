"""Reconciliation throughput: N register rows x N counted items through the engine,
next to a straightforward pandas implementation that produces the same files.

Inputs imitate a large data-centre count: a Snipe-IT export (CSV) of N assets across
50 rooms of DC1 plus 4 % at another site (half of those never audited), 10 % servers,
1 % retired, 1 % recorded stolen, 0.1 % duplicated records, written the way Snipe-IT's
UI export reaches a Windows user: windows-1252 with CRLF, statuses as label plus status
meta ("Ready to Deploy Deployed"), users as "First Last (username)", costs as
"$1,234.00" (0.1 % "TBD"), "Last Audit" on a 12-hour clock (2 % the 0001-01-01
sentinel) and a totals footer row; and an RFID session file
of N GIAI-96 observations: 91 % of the assets (2 % of them in another room), plus 9 %
stray tags with no record. Freezing the CSV into a snapshot is timed separately.

Engine (``tagsweep.engine.run.reconcile``, DuckDB): from the frozen snapshot and the
session file, normalize (register with per-field provenance), decode EPCs, match,
classify all eleven variance types, then write variances.parquet / .jsonl / .csv,
register.parquet, matches.parquet, corrections/*.csv, bad_rows.csv, report.md,
report.html and manifest.json. ``engine_seconds`` is all of that.
``engine_same_work_seconds`` is closer to what the pandas baseline also does: the run
up to the end of its file writers, so without bad_rows.csv, the reports and the
manifest. It still includes the corrections, the report's figures and the hashing of
the output files, which the engine does alongside the variance log (they cannot be
taken out of an overlapped run): a small amount added to the engine's side.

pandas (``benchmarks.reconcile_pandas``): from the same snapshot and session file,
normalize the register the same way (with provenance), decode each EPC with the
reference codec, group reads per item, match by tag / serial / look-alike serial,
classify the seven variance types the data produces with the engine's texts, evidence
JSON, ids, priorities and SLA dates, and write the same variances.parquet,
variances.jsonl, variances.csv (formula-escaped), register.parquet and
matches.parquet, sorted like the engine. It gets the engine's run id and run date as
configuration. Each side runs in its own process, so peak memory is its own.

Afterwards the two variance logs are compared: the set of (variance_id,
variance_type, asset_key) must be identical and every column, compared row by row
after sorting by variance_id, must hold the same values (else the benchmark exits 1).
register.parquet, matches.parquet, the CSV (parsed cells, and bytes) and the JSONL
(parsed values: pandas writes ``/`` as ``\\/``, the same JSON string) are compared too.

``--shape realistic`` adds what a real count has beside the register: an Intune (MDM)
export of the laptops (85 % of the assets, 1 % of them checked in with another user,
the retired ones still checking in, 0.1 % devices the register lacks) and an HR export
of the 5,000 custodians (2 % leavers). The engine then reconciles all three sources
against the count. Its same-work baseline is ``benchmarks.reconcile_pandas_sources``:
the register-only baseline extended to the MDM and HR sources (custodians resolved
through HR, MDM records linked to the register, the register's fields picked by the
engine's precedence with their provenance, and the variance types the sources add:
retired_but_active through MDM check-ins, custodian_mismatch, source_conflict), whose
variance log, register.parquet and matches.parquet are compared with the engine's
exactly as above (exit 1 if they disagree). Beside it, ``benchmarks.reconcile_minimal``,
an independent minimal pandas script classifying the seven core variance types of the
same frozen files (it does less than the engine: see its docstring). The engine's
seconds and peak memory per stage come from its ``timings.json``.

The machine these run on is shared: absolute seconds vary with its load, so read the
ratios, which are measured in the same run.

Run: ``.venv/bin/python -m benchmarks.bench_reconcile [--rows N] [--memory-limit 6GB]
[--shape realistic]``. Writes ``benchmarks/results/reconcile.json``
(``reconcile_<N>.json`` for non-default N, ``reconcile_realistic_<N>.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from tagsweep.epc import encode_giai96

RESULTS = Path(__file__).parent / "results"
DEFAULT_ROWS = 1_000_000
ROOMS = 50


def make_inputs(directory: Path, n: int) -> tuple[Path, Path]:
    """Write the register CSV and the session Parquet with DuckDB (fast, deterministic)."""
    base = int(encode_giai96("0614141", 0), 16)
    high = f"{base >> 64:08X}"
    low = base & ((1 << 64) - 1)
    con = duckdb.connect()
    register = directory / "itam.csv"
    con.execute(
        f"""
COPY (
    SELECT 'AST-' || CASE WHEN i >= 1000000 THEN CAST(i AS VARCHAR)
                          ELSE lpad(CAST(i AS VARCHAR), 6, '0') END AS "Asset Tag",
        CASE WHEN i % 1000 = 8 THEN upper(substr(md5(CAST(i - 4 AS VARCHAR)), 1, 10))
             ELSE upper(substr(md5(CAST(i AS VARCHAR)), 1, 10)) END AS "Serial",
        ['Dell', 'HP', 'Lenovo', 'Apple'][1 + i % 4] AS "Manufacturer",
        ['Latitude 5440', 'EliteBook 840', 'ThinkPad T14', 'MacBook Pro'][1 + i % 4] AS "Model",
        CASE WHEN i % 10 = 0 THEN 'Servers' ELSE 'Laptops' END AS "Category",
        CASE WHEN i % 100 = 3 THEN 'Recycled Archived'
             WHEN i % 100 = 4 THEN 'Lost/Stolen Undeployable'
             WHEN i % 5 = 1 THEN 'Ready to Deploy' ELSE 'Ready to Deploy Deployed' END AS "Status",
        CASE WHEN i % 5 = 1 OR i % 10 = 0 THEN ''
             ELSE CASE WHEN i % 7 = 0 THEN 'Zoë' ELSE 'Ana' END || ' User'
                  || CAST(i % 5000 AS VARCHAR) || ' (user' || CAST(i % 5000 AS VARCHAR) || ')'
        END AS "Checked Out To",
        CASE WHEN i % 25 = 13 THEN 'HQ/Floor 2'
             ELSE 'DC1/Room ' || CAST(100 + i % {ROOMS} AS VARCHAR) END AS "Location",
        CASE WHEN i % 1000 = 77 THEN 'TBD'
             ELSE '$' || format('{{:,.2f}}', CAST(700 + i % 3000 AS DOUBLE)) END
            AS "Purchase Cost",
        CASE WHEN i % 50 = 13 THEN '' WHEN i % 50 = 27 THEN '0001-01-01 12:00 AM'
             ELSE strftime(TIMESTAMP '2026-10-01 00:00:00' + INTERVAL (i % 28) DAY
                           + INTERVAL (i % 1440) MINUTE, '%Y-%m-%d %I:%M %p')
        END AS "Last Audit",
        'Good' AS "Condition"
    FROM range(1, {n} + 1) t(i)
) TO '{register}' (FORMAT CSV, HEADER)
"""
    )
    # as Snipe-IT's UI export reaches a user on Windows: windows-1252, CRLF, and the
    # table's totals footer
    text = register.read_text(encoding="utf-8").replace("\n", "\r\n")
    footer = ',,,,,,,Total,"$1,234,567.00",,\r\n'
    register.write_bytes((text + footer).encode("windows-1252"))
    session = directory / "cs-bench.parquet"
    con.execute(
        f"""
COPY (
    SELECT 'cs-bench' AS session_id, 'DC1' AS site, 'rfid' AS method,
        CASE WHEN i % 50 = 11 THEN 'DC1/Room ' || CAST(100 + (i + 7) % {ROOMS} AS VARCHAR)
             ELSE 'DC1/Room ' || CAST(100 + i % {ROOMS} AS VARCHAR) END AS location,
        '{high}' || lpad(hex(CAST({low} AS UBIGINT)
            + CAST(CASE WHEN i % 20 = 0 OR i % 25 = 13 THEN {n} + i ELSE i END AS UBIGINT)),
            16, '0') AS epc,
        CAST(NULL AS VARCHAR) AS asset_tag, CAST(NULL AS VARCHAR) AS serial,
        TIMESTAMPTZ '2026-11-24 09:00:00+00' + to_microseconds(i) AS first_seen,
        TIMESTAMPTZ '2026-11-24 09:00:01+00' + to_microseconds(i) AS last_seen,
        CAST(3 AS BIGINT) AS read_count, CAST(-55.0 AS FLOAT) AS peak_rssi,
        'handheld-1' AS reader, 'auditor' AS operator
    FROM range(1, {n} + 1) t(i)
) TO '{session}' (FORMAT PARQUET)
"""
    )
    con.close()
    # the manifest the gateway writes beside it: the engine counts verified files only
    digest = hashlib.sha256(session.read_bytes()).hexdigest()
    session.with_suffix(".json").write_text(
        json.dumps(
            {"session_id": "cs-bench", "sha256": digest, "row_count": n, "gateway": "bench"}
        ),
        encoding="utf-8",
    )
    return register, session


PEOPLE = 5000


def make_sources(directory: Path, n: int) -> tuple[Path, Path]:
    """The realistic shape's MDM (Intune CSV) and HR (CSV) exports for ``make_inputs``."""
    con = duckdb.connect()
    mdm = directory / "intune.csv"
    con.execute(
        f"""
COPY (
    SELECT 'LT-' || CAST(i AS VARCHAR) AS "Device name",
        upper(substr(md5(CAST(i AS VARCHAR)), 1, 10)) AS "Serial number",
        ['Dell', 'HP', 'Lenovo', 'Apple'][1 + i % 4] AS "Manufacturer",
        ['Latitude 5440', 'EliteBook 840', 'ThinkPad T14', 'MacBook Pro'][1 + i % 4] AS "Model",
        'user' || CAST(CASE WHEN i % 100 = 7 THEN (i + 1) % {PEOPLE} ELSE i % {PEOPLE} END
            AS VARCHAR) || '@example.com' AS "Primary user UPN",
        CASE WHEN i % 100 = 3 THEN '2026-11-22T08:00:00Z'
             ELSE '2026-11-' || lpad(CAST(1 + i % 23 AS VARCHAR), 2, '0') || 'T10:00:00Z'
        END AS "Last check-in",
        md5('dev' || CAST(i AS VARCHAR)) AS "Azure AD Device ID",
        'Windows' AS "OS"
    FROM range(1, {n} + 1) t(i)
    WHERE i % 10 <> 0 AND i % 20 <> 1
) TO '{mdm}' (FORMAT CSV, HEADER)
"""
    )
    hr = directory / "hr.csv"
    con.execute(
        f"""
COPY (
    SELECT 'E' || CAST(k AS VARCHAR) AS "Employee ID",
        'user' || CAST(k AS VARCHAR) || '@example.com' AS "Email",
        'user' || CAST(k AS VARCHAR) AS "Display Name",
        CASE WHEN k % 50 = 9 THEN 'Terminated' ELSE 'Active' END AS "Status"
    FROM range(0, {PEOPLE}) t(k)
) TO '{hr}' (FORMAT CSV, HEADER)
"""
    )
    con.close()
    return mdm, hr


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_pipeline(snapshot: str, session: str, out: str, memory_limit: str | None, q: Any) -> None:
    import tagsweep.engine.pipeline as engine_pipeline
    import tagsweep.engine.run as engine_run
    from tagsweep.config.engine import EngineSection

    # Instrument (not change) the engine: note when its file writers are done, so the
    # reports, bad_rows.csv and the manifest written after them can be told apart.
    marks: dict[str, float] = {}
    write_outputs = getattr(engine_pipeline, "write_outputs", None)
    if write_outputs is not None:

        def timed_outputs(*args: Any, **kwargs: Any) -> Any:
            try:
                return write_outputs(*args, **kwargs)
            finally:
                marks["outputs_done"] = time.perf_counter()

        setattr(engine_pipeline, "write_outputs", timed_outputs)  # noqa: B010 - mypy rejects assigning to a module function

    settings = EngineSection(scope=["DC1"])
    start = time.perf_counter()
    result = engine_run.reconcile(
        Path(snapshot), [Path(session)], settings, Path(out), memory_limit=memory_limit
    )
    elapsed = time.perf_counter() - start
    # The pandas baseline writes the variance log, register and matches but not what
    # follows the writers: bad_rows.csv, report.md / report.html and manifest.json. The
    # corrections are written alongside the variance log and stay in.
    until_outputs = marks.get("outputs_done", start + elapsed) - start
    q.put(
        {
            "seconds": elapsed,
            "same_work_seconds": until_outputs,
            "after_outputs_seconds": elapsed - until_outputs,
            "peak_rss_mb": _peak_mb(),
            "by_type": result.manifest["counts"]["by_type"],
            "stages": {k: round(v, 3) for k, v in result.timings.items()},
            "profile": result.profile,
            "run_id": result.run_id,
            "as_of": result.as_of.isoformat(),
        }
    )


def run_freeze(register: str, out: str, extra: list[tuple[str, str, str]], q: Any) -> None:
    from tagsweep.config.engine import EngineSection
    from tagsweep.engine.freeze import SourceSpec, freeze

    start = time.perf_counter()
    specs = [SourceSpec("itam", Path(register), "snipeit")]
    specs += [SourceSpec(name, Path(path), preset) for name, preset, path in extra]
    freeze(specs, Path(out), EngineSection())
    q.put({"seconds": time.perf_counter() - start, "peak_rss_mb": _peak_mb()})


def run_pandas(
    snapshot: str, session: str, out: str, run_id: str, as_of: str, shape: str, q: Any
) -> None:
    """The same-work pandas baseline: the package benchmarks/reconcile_pandas for the
    register shape, benchmarks/reconcile_pandas_sources.py (register, MDM and HR) for
    the realistic one; imports are not timed, as the engine's are not."""
    from datetime import date

    from benchmarks.reconcile_pandas import reconcile_pandas
    from benchmarks.reconcile_pandas_sources import reconcile_pandas_sources
    from tagsweep.config.engine import EngineSection

    baseline = reconcile_pandas_sources if shape == "realistic" else reconcile_pandas
    start = time.perf_counter()
    settings = EngineSection(scope=["DC1"])
    log = baseline(
        Path(snapshot), Path(session), Path(out), settings, run_id, date.fromisoformat(as_of)
    )
    elapsed = time.perf_counter() - start
    q.put(
        {
            "seconds": elapsed,
            "peak_rss_mb": _peak_mb(),
            "by_type": {str(k): int(v) for k, v in log["variance_type"].value_counts().items()},
        }
    )


def run_minimal(snapshot: str, session: str, out: str, as_of: str, q: Any) -> None:
    """The independent minimal pandas script (benchmarks/reconcile_minimal.py)."""
    from datetime import date

    from benchmarks.reconcile_minimal import reconcile_minimal

    start = time.perf_counter()
    log = reconcile_minimal(Path(snapshot), Path(session), Path(out), date.fromisoformat(as_of))
    q.put(
        {
            "seconds": time.perf_counter() - start,
            "peak_rss_mb": _peak_mb(),
            "by_type": {str(k): int(v) for k, v in log["variance_type"].value_counts().items()},
        }
    )


def engine_summary(n: int, frozen: dict[str, Any], engine: dict[str, Any]) -> dict[str, Any]:
    """The results file's figures of the inputs, the freeze and the engine's run."""
    return {
        "rows": n,
        "machine": {"platform": platform.platform(), "cpus": mp.cpu_count()},
        "freeze_seconds": round(frozen["seconds"], 3),
        "engine_seconds": round(engine["seconds"], 3),
        "engine_same_work_seconds": round(engine["same_work_seconds"], 3),
        "engine_after_outputs_seconds": round(engine["after_outputs_seconds"], 3),
        "engine_peak_rss_mb": round(engine["peak_rss_mb"]),
        "engine_by_type": engine["by_type"],
    }


def ratios(baseline: dict[str, Any], engine: dict[str, Any]) -> tuple[float, float]:
    """Baseline seconds over the engine's: end to end, and up to its file writers."""
    return (
        baseline["seconds"] / engine["seconds"],
        baseline["seconds"] / engine["same_work_seconds"],
    )


def _child(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, q))
    proc.start()
    result: dict[str, Any] = q.get()
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"{target.__name__} failed with exit code {proc.exitcode}")
    return result


def compare_outputs(engine_dir: Path, pandas_dir: Path) -> dict[str, Any]:
    """How far the pandas files agree with the engine's (variance log column by column)."""
    import filecmp

    import pandas as pd
    import pyarrow.parquet as pq

    from tagsweep.domain import VARIANCE_LOG_COLUMNS

    eng = pd.read_parquet(engine_dir / "variances.parquet")
    pds = pd.read_parquet(pandas_dir / "variances.parquet")

    def keys(df: pd.DataFrame) -> set[tuple[str, str, str]]:
        return set(
            zip(
                df["variance_id"].tolist(),
                df["variance_type"].tolist(),
                df["asset_key"].tolist(),
                strict=True,
            )
        )

    k_eng, k_pds = keys(eng), keys(pds)
    report: dict[str, Any] = {
        "engine_rows": len(eng),
        "pandas_rows": len(pds),
        "keys_only_in_engine": len(k_eng - k_pds),
        "keys_only_in_pandas": len(k_pds - k_eng),
        "keys_agree": k_eng == k_pds and len(eng) == len(pds) == len(k_eng),
    }
    if report["keys_agree"]:
        a = eng.sort_values("variance_id").reset_index(drop=True)
        b = pds.sort_values("variance_id").reset_index(drop=True)
        differing: dict[str, int] = {}
        for name in VARIANCE_LOG_COLUMNS:
            # exact comparison, floats included: both sides parse the same text to the
            # same double, so no tolerance is needed
            x, y = a[name].astype(object), b[name].astype(object)
            same = (x == y) | (x.isna() & y.isna())
            differing[name] = int((~same).sum())
        report["differing_rows_per_column"] = differing
        report["same_row_order"] = eng["variance_id"].tolist() == pds["variance_id"].tolist()
    # CSV: the same cells once parsed (quoting and number spelling are the writers'
    # own: e.g. pandas writes 703.0 where a writer may write 703), and whether the
    # bytes are the same too
    c_eng = pd.read_csv(engine_dir / "variances.csv", low_memory=False)
    c_pds = pd.read_csv(pandas_dir / "variances.csv", low_memory=False)
    report["csv_same_values"] = bool(c_eng.equals(c_pds))
    report["csv_identical_bytes"] = filecmp.cmp(
        engine_dir / "variances.csv", pandas_dir / "variances.csv", shallow=False
    )
    # pandas' JSON writer escapes "/" as "\/" (the same JSON string): compare the values
    j_eng = pd.read_json(engine_dir / "variances.jsonl", lines=True, dtype=False)
    j_pds = pd.read_json(pandas_dir / "variances.jsonl", lines=True, dtype=False)
    report["jsonl_same_values"] = bool(j_eng.equals(j_pds))
    for name in ("register.parquet", "matches.parquet"):
        t_eng, t_pds = pq.read_table(engine_dir / name), pq.read_table(pandas_dir / name)
        report[name.replace(".parquet", "_identical")] = bool(
            t_eng.schema.remove_metadata().equals(t_pds.schema.remove_metadata())
            and t_eng.to_pandas().equals(t_pds.to_pandas())
        )
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory limit, e.g. 6GB")
    parser.add_argument("--skip-pandas", action="store_true", help="engine only (huge N)")
    parser.add_argument(
        "--shape",
        choices=["register", "realistic"],
        default="register",
        help="register: Snipe-IT only; realistic: with MDM and HR sources (against the "
        "same-work pandas baseline and the minimal pandas script)",
    )
    args = parser.parse_args()
    if args.shape == "realistic":
        return main_realistic(args.rows, args.memory_limit, args.skip_pandas)
    n = args.rows
    agree = True
    with tempfile.TemporaryDirectory(prefix="tagsweep-bench-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        register, session = make_inputs(work, n)
        print(f"inputs: {n:,} register rows, {n:,} observations ({time.perf_counter() - t:.1f} s)")
        frozen = _child(run_freeze, str(register), str(work / "snapshot"), [])
        print(f"freeze: {frozen['seconds']:.2f} s, peak {frozen['peak_rss_mb']:.0f} MB")
        (work / "run").mkdir()
        engine = _child(
            run_pipeline, str(work / "snapshot"), str(session), str(work / "run"),
            args.memory_limit,
        )  # fmt: skip
        print(
            f"engine: {engine['seconds']:.2f} s, peak {engine['peak_rss_mb']:.0f} MB "
            f"(up to the end of the file writers, the work pandas also does: "
            f"{engine['same_work_seconds']:.2f} s; reports/bad rows/manifest after them "
            f"{engine['after_outputs_seconds']:.2f} s)"
        )
        print("engine stages:", engine["stages"])
        summary = engine_summary(n, frozen, engine) | {"engine_stages": engine["stages"]}
        if not args.skip_pandas:
            agree, figures = same_work_pandas(engine, session, work, "register")
            summary |= figures
    RESULTS.mkdir(exist_ok=True)
    name = "reconcile.json" if n == DEFAULT_ROWS else f"reconcile_{n}.json"
    (RESULTS / name).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"results: {RESULTS / name}")
    return 0 if agree else 1


def same_work_pandas(
    engine: dict[str, Any], session: Path, work: Path, shape: str
) -> tuple[bool, dict[str, Any]]:
    """Run the same-work pandas baseline of ``shape`` on work/snapshot into work/pandas,
    print its figures and ratios and how far its files agree with the engine's
    (work/run); (whether the variance logs agree, the figures for the summary)."""
    (work / "pandas").mkdir()
    baseline = _child(
        run_pandas, str(work / "snapshot"), str(session), str(work / "pandas"),
        engine["run_id"], engine["as_of"], shape,
    )  # fmt: skip
    ratio, ratio_same = ratios(baseline, engine)
    print(f"pandas: {baseline['seconds']:.2f} s, peak {baseline['peak_rss_mb']:.0f} MB")
    print(
        f"engine is {ratio:.1f}x faster than pandas end to end (engine with all its "
        f"outputs), {ratio_same:.1f}x on the same work (engine up to the end of its "
        f"file writers, without reports, bad rows and manifest: "
        f"{engine['same_work_seconds']:.2f} s)"
    )
    by_type = {k: (v, baseline["by_type"].get(k, 0)) for k, v in engine["by_type"].items() if v}
    print("per type (engine, pandas):", by_type)
    check = compare_outputs(work / "run", work / "pandas")
    print(
        f"variance log keys (variance_id, variance_type, asset_key): engine "
        f"{check['engine_rows']:,} rows, pandas {check['pandas_rows']:,} rows, "
        f"only in engine {check['keys_only_in_engine']:,}, only in pandas "
        f"{check['keys_only_in_pandas']:,}"
    )
    differing: dict[str, int] = check.get("differing_rows_per_column", {})
    if differing:
        print("rows differing per column (sorted by variance_id):", differing)
        print(f"same row order in the file: {check['same_row_order']}")
    print(
        f"variances.csv same values: {check['csv_same_values']} (identical bytes: "
        f"{check['csv_identical_bytes']}); "
        f"variances.jsonl same values: {check['jsonl_same_values']}; "
        f"register.parquet identical: {check['register_identical']}; "
        f"matches.parquet identical: {check['matches_identical']}"
    )
    agree = bool(check["keys_agree"]) and not any(differing.values())
    if not check["keys_agree"]:
        print(
            "ERROR: the pandas baseline and the engine produce different variances "
            "(see the key counts above): the comparison is not of the same work"
        )
    elif not agree:
        print("ERROR: the variance logs have the same rows but differing values")
    return agree, {
        "pandas_seconds": round(baseline["seconds"], 3),
        "pandas_peak_rss_mb": round(baseline["peak_rss_mb"]),
        "ratio_pandas_over_engine": round(ratio, 2),
        "ratio_pandas_over_engine_same_work": round(ratio_same, 2),
        "pandas_by_type": baseline["by_type"],
        "variance_logs_agree": agree,
        "variance_log_differing_rows_per_column": differing,
        "outputs_check": {k: v for k, v in check.items() if k != "differing_rows_per_column"},
    }


def print_profile(profile: dict[str, Any], top: int = 12) -> None:
    """The costliest stages of the engine's run, and the wall time no stage accounts for."""
    stages = sorted(profile["stages"], key=lambda s: -s["seconds"])
    wall = profile["wall_seconds"]
    print(f"engine stages (wall {wall:.2f} s, peak {profile['peak_rss_mb']:.0f} MB; "
          "background jobs overlap):")  # fmt: skip
    for s in stages[:top]:
        print(
            f"  {s['group']}/{s['name']:<24} {s['seconds']:6.2f} s "
            f"{100 * s['seconds'] / wall:4.0f} %  peak {s['peak_rss_mb']:6.0f} MB"
        )
    # what the foreground path (stages started one after the other) leaves uncovered
    covered = sum(
        s["seconds"] for s in profile["stages"]
        if s["group"] != "outputs" or s["name"] in {"outputs", "reports_and_manifest"}
    )  # fmt: skip
    print(f"  foreground stages cover {covered:.2f} s of {wall:.2f} s wall")


def main_realistic(n: int, memory_limit: str | None, skip_pandas: bool) -> int:
    agree = True
    with tempfile.TemporaryDirectory(prefix="tagsweep-bench-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        register, session = make_inputs(work, n)
        mdm, hr = make_sources(work, n)
        print(
            f"inputs: {n:,} register rows + MDM + HR, {n:,} counted items "
            f"({time.perf_counter() - t:.1f} s)"
        )
        extra = [("mdm", "intune", str(mdm)), ("hr", "hr", str(hr))]
        frozen = _child(run_freeze, str(register), str(work / "snapshot"), extra)
        print(f"freeze: {frozen['seconds']:.2f} s, peak {frozen['peak_rss_mb']:.0f} MB")
        (work / "run").mkdir()
        engine = _child(
            run_pipeline, str(work / "snapshot"), str(session), str(work / "run"), memory_limit
        )
        print(
            f"engine: {engine['seconds']:.2f} s, peak {engine['peak_rss_mb']:.0f} MB (up to "
            f"the end of its file writers: {engine['same_work_seconds']:.2f} s)"
        )
        print_profile(engine["profile"])
        summary = engine_summary(n, frozen, engine) | {
            "shape": "realistic",
            "engine_profile": engine["profile"],
        }
        if not skip_pandas:
            agree, figures = same_work_pandas(engine, session, work, "realistic")
            summary |= figures
        (work / "minimal").mkdir()
        minimal = _child(
            run_minimal, str(work / "snapshot"), str(session), str(work / "minimal"),
            engine["as_of"],
        )  # fmt: skip
        ratio, ratio_same = ratios(minimal, engine)
        print(f"minimal pandas: {minimal['seconds']:.2f} s, peak {minimal['peak_rss_mb']:.0f} MB")
        print(
            f"engine is {ratio:.1f}x the minimal pandas script end to end, {ratio_same:.1f}x "
            f"up to the end of its file writers ({engine['same_work_seconds']:.2f} s); "
            "same run, same machine load"
        )
        by_type = {
            k: (engine["by_type"].get(k, 0), v) for k, v in sorted(minimal["by_type"].items())
        }
        print("seven core types (engine, minimal pandas):", by_type)
        summary |= {
            "minimal_pandas_seconds": round(minimal["seconds"], 3),
            "minimal_pandas_peak_rss_mb": round(minimal["peak_rss_mb"]),
            "minimal_pandas_by_type": minimal["by_type"],
            "ratio_minimal_pandas_over_engine": round(ratio, 2),
            "ratio_minimal_pandas_over_engine_same_work": round(ratio_same, 2),
        }
    RESULTS.mkdir(exist_ok=True)
    name = f"reconcile_realistic_{n}.json"
    (RESULTS / name).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"results: {RESULTS / name}")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
