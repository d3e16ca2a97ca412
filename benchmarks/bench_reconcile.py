"""Reconciliation throughput: N register rows x N counted items through the engine,
next to a straightforward pandas implementation of the same classification.

Inputs imitate a large data-centre count: a Snipe-IT export (CSV) of N assets across
50 rooms of DC1 plus 4 % at another site (half of those never audited), 10 % servers,
1 % retired, 1 % recorded stolen, 0.1 % duplicated records; and an RFID session file
of N GIAI-96 observations: 91 % of the assets (2 % of them in another room), plus 9 %
stray tags with no record. The engine's time covers ``reconcile run`` from the frozen
snapshot to every output file (variance log in three formats, register, matches, corrections,
reports, manifest); freezing the CSV is timed separately. The pandas baseline reads the
same frozen snapshot and session file, normalizes, decodes EPCs with the reference
codec, merges, classifies the same variance types and writes the variance log as CSV
and Parquet. Each side runs in its own process so peak memory is its own.

Run: ``.venv/bin/python -m benchmarks.bench_reconcile [--rows N] [--memory-limit 6GB]``.
Writes ``benchmarks/results/reconcile.json`` (``reconcile_<N>.json`` for non-default N).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from tagsweep.epc import encode_giai96

RESULTS = Path(__file__).parent / "results"
DEFAULT_ROWS = 1_000_000
ROOMS = 50

STATUS_MAP = {
    "deployed": "in_use",
    "ready to deploy": "in_stock",
    "archived": "retired",
    "lost/stolen": "stolen",
}
EXPECTED = {"in_stock", "staged", "in_use", "defective"}
RETIRED = {"retired", "pending_disposal"}
FOUND_BAD = {"planned", "in_transit", "missing", "stolen"}


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
        CASE WHEN i % 100 = 3 THEN 'Archived' WHEN i % 100 = 4 THEN 'Lost/Stolen'
             WHEN i % 5 = 1 THEN 'Ready to Deploy' ELSE 'Deployed' END AS "Status",
        CASE WHEN i % 5 = 1 OR i % 10 = 0 THEN '' ELSE 'user' || CAST(i % 5000 AS VARCHAR)
        END AS "Checked Out To",
        CASE WHEN i % 25 = 13 THEN 'HQ/Floor 2'
             ELSE 'DC1/Room ' || CAST(100 + i % {ROOMS} AS VARCHAR) END AS "Location",
        CAST(700 + i % 3000 AS VARCHAR) || '.00' AS "Purchase Cost",
        CASE WHEN i % 50 = 13 THEN '' ELSE '2026-10-' || lpad(CAST(1 + i % 28 AS VARCHAR), 2, '0')
        END AS "Last Audit",
        'Good' AS "Condition"
    FROM range(1, {n} + 1) t(i)
) TO '{register}' (FORMAT CSV, HEADER)
"""
    )
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
    return register, session


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_pipeline(snapshot: str, session: str, out: str, memory_limit: str | None, q: Any) -> None:
    from tagsweep.config.engine import EngineSection
    from tagsweep.engine.run import reconcile

    settings = EngineSection(scope=["DC1"])
    start = time.perf_counter()
    result = reconcile(
        Path(snapshot), [Path(session)], settings, Path(out), memory_limit=memory_limit
    )
    elapsed = time.perf_counter() - start
    # The register and matches files are written on a second connection while the
    # variance log and corrections are; what they add to the run is the wait for them.
    extra_outputs = ("out:side_wait", "out:corrections")
    q.put(
        {
            "seconds": elapsed,
            # what the pandas baseline also does: classify and write the variance log
            # (an upper bound: the overlapping writers also slow the variance log down)
            "classify_seconds": elapsed - sum(result.timings.get(k, 0.0) for k in extra_outputs),
            "peak_rss_mb": _peak_mb(),
            "by_type": result.manifest["counts"]["by_type"],
            "stages": {k: round(v, 3) for k, v in result.timings.items()},
        }
    )


def run_freeze(register: str, out: str, q: Any) -> None:
    from tagsweep.config.engine import EngineSection
    from tagsweep.engine.freeze import SourceSpec, freeze

    start = time.perf_counter()
    freeze([SourceSpec("itam", Path(register), "snipeit")], Path(out), EngineSection())
    q.put({"seconds": time.perf_counter() - start, "peak_rss_mb": _peak_mb()})


def run_pandas(snapshot: str, session: str, out: str, q: Any) -> None:
    """The obvious pandas version of the same classification."""
    import pandas as pd

    from tagsweep.epc import asset_tag_for_epc

    start = time.perf_counter()
    reg = pd.read_parquet(Path(snapshot) / "itam.parquet")
    obs = pd.read_parquet(session)
    reg["asset_tag"] = reg["Asset Tag"].str.strip().str.upper()
    reg["serial"] = reg["Serial"].str.strip().str.upper()
    reg["manufacturer"] = reg["Manufacturer"].str.strip()
    reg["status"] = reg["Status"].str.strip().str.lower().map(STATUS_MAP)
    reg["location"] = reg["Location"].str.strip()
    reg["last_seen"] = pd.to_datetime(reg["Last Audit"].replace("", None), utc=True)
    obs["asset_tag"] = obs["epc"].map(lambda e: asset_tag_for_epc(e, "giai96"))
    obs["obs_key"] = obs["asset_tag"].fillna("EPC:" + obs["epc"])
    obs = obs.sort_values("last_seen")
    items = obs.groupby("obs_key", as_index=False).agg(
        found_location=("location", "last"), session_id=("session_id", "first")
    )
    merged = reg.merge(items, left_on="asset_tag", right_on="obs_key", how="outer", indicator=True)
    found = merged[merged["_merge"] == "both"]
    reg_only = merged[merged["_merge"] == "left_only"]
    obs_only = merged[merged["_merge"] == "right_only"]
    in_scope = reg_only["location"].str.startswith("DC1")
    frames = []

    def add(frame: pd.DataFrame, kind: str, key: str = "asset_tag") -> None:
        frames.append(pd.DataFrame({"variance_type": kind, "asset_key": frame[key]}))

    add(reg_only[reg_only["status"].isin(EXPECTED) & in_scope], "missing")
    add(obs_only, "unrecorded", "obs_key")
    add(found[found["status"].isin(RETIRED)], "retired_but_active")
    moved = found.apply(
        lambda r: (
            not (
                r["found_location"] == r["location"]
                or str(r["found_location"]).startswith(str(r["location"]) + "/")
                or str(r["location"]).startswith(str(r["found_location"]) + "/")
            )
        ),
        axis=1,
    )
    add(found[moved], "location_mismatch")
    add(found[found["status"].isin(FOUND_BAD)], "status_condition_mismatch")
    active = reg[~reg["status"].isin(RETIRED) & reg["serial"].notna()]
    dup = active[active.duplicated(["manufacturer", "serial"], keep=False)]
    firsts = dup.groupby(["manufacturer", "serial"])["asset_tag"].min().reset_index()
    add(firsts, "duplicate_record")
    cutoff = pd.Timestamp("2026-11-24", tz="UTC") - pd.Timedelta(days=180)
    stale = reg_only[
        ~(reg_only["status"].isin(EXPECTED) & in_scope)
        & ~reg_only["status"].isin(RETIRED | {"missing", "stolen"})
        & (reg_only["last_seen"].isna() | (reg_only["last_seen"] < cutoff))
    ]
    add(stale, "stale_record")
    variances = pd.concat(frames, ignore_index=True).sort_values(["variance_type", "asset_key"])
    variances.to_csv(Path(out) / "variances.csv", index=False)
    variances.to_parquet(Path(out) / "variances.parquet")
    elapsed = time.perf_counter() - start
    q.put(
        {
            "seconds": elapsed,
            "peak_rss_mb": _peak_mb(),
            "by_type": {
                str(k): int(v) for k, v in variances["variance_type"].value_counts().items()
            },
        }
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory limit, e.g. 6GB")
    parser.add_argument("--skip-pandas", action="store_true", help="engine only (huge N)")
    args = parser.parse_args()
    n = args.rows
    with tempfile.TemporaryDirectory(prefix="tagsweep-bench-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        register, session = make_inputs(work, n)
        print(f"inputs: {n:,} register rows, {n:,} observations ({time.perf_counter() - t:.1f} s)")
        frozen = _child(run_freeze, str(register), str(work / "snapshot"))
        print(f"freeze: {frozen['seconds']:.2f} s, peak {frozen['peak_rss_mb']:.0f} MB")
        (work / "run").mkdir()
        engine = _child(
            run_pipeline, str(work / "snapshot"), str(session), str(work / "run"),
            args.memory_limit,
        )  # fmt: skip
        print(f"engine: {engine['seconds']:.2f} s, peak {engine['peak_rss_mb']:.0f} MB")
        print("engine stages:", engine["stages"])
        summary: dict[str, Any] = {
            "rows": n,
            "machine": {"platform": platform.platform(), "cpus": mp.cpu_count()},
            "freeze_seconds": round(frozen["seconds"], 3),
            "engine_seconds": round(engine["seconds"], 3),
            "engine_same_work_seconds": round(engine["classify_seconds"], 3),
            "engine_peak_rss_mb": round(engine["peak_rss_mb"]),
            "engine_stages": engine["stages"],
            "engine_by_type": engine["by_type"],
        }
        if not args.skip_pandas:
            (work / "pandas").mkdir()
            baseline = _child(
                run_pandas, str(work / "snapshot"), str(session), str(work / "pandas")
            )
            ratio = baseline["seconds"] / engine["seconds"]
            ratio_classify = baseline["seconds"] / engine["classify_seconds"]
            print(f"pandas: {baseline['seconds']:.2f} s, peak {baseline['peak_rss_mb']:.0f} MB")
            print(
                f"engine is {ratio:.1f}x faster than pandas end to end, {ratio_classify:.1f}x "
                f"on the same work (engine without its register/matches/corrections outputs: "
                f"{engine['classify_seconds']:.2f} s)"
            )
            agree = {k: (engine["by_type"].get(k, 0), v) for k, v in baseline["by_type"].items()}
            print("per type (engine, pandas):", agree)
            summary |= {
                "pandas_seconds": round(baseline["seconds"], 3),
                "pandas_peak_rss_mb": round(baseline["peak_rss_mb"]),
                "ratio_pandas_over_engine": round(ratio, 2),
                "ratio_pandas_over_engine_same_work": round(ratio_classify, 2),
                "pandas_by_type": baseline["by_type"],
            }
        shutil.rmtree(work / "run", ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    name = "reconcile.json" if n == DEFAULT_ROWS else f"reconcile_{n}.json"
    (RESULTS / name).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"results: {RESULTS / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
