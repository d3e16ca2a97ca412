"""The golden register: a run's register with the accepted corrections of its cases applied.

Step 5 of the reconciliation method ends with "a clean register plus a variance log" that
becomes the baseline of the next cycle. The golden register is the run's normalized
register (``register.parquet``) with every correction accepted by a closed case applied:
fields corrected during an investigation, values accepted from the count (where the
asset was actually found), assets written off, and unrecorded assets now registered.

Every data field carries its provenance in three columns: ``<field>_source`` (the source
system the value came from, or ``count`` / ``investigation`` / ``write_off`` for a
correction), ``<field>_run`` (the run whose register or count gave it) and
``<field>_case`` (the case that changed it). The register's own columns come first,
unchanged in name and order, so the golden register reads back exactly like a register
export and can be frozen as the next run's baseline.
"""

# ruff: noqa: S608
# Why: the SQL here is built from column names of the register's own schema, each quoted
# by ident(); every value is a bound parameter.

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from tagsweep.config.engine import REGISTER_FIELDS
from tagsweep.engine import sandbox
from tagsweep.engine.cases import CaseStore, read_run
from tagsweep.engine.escaping import csv_safe
from tagsweep.engine.stages import ident
from tagsweep.hashing import sha256_file

#: Register columns that hold asset data (as opposed to provenance or bookkeeping).
DATA_FIELDS: Final = REGISTER_FIELDS
PROVENANCE_SUFFIXES: Final = ("_source", "_run", "_case")


class GoldenError(Exception):
    """The golden register cannot be built; the message says from what and why."""


@dataclass(slots=True)
class GoldenResult:
    parquet: Path
    csv: Path
    manifest: Path
    rows: int
    applied: list[dict[str, Any]] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    unapplied: list[dict[str, Any]] = field(default_factory=list)


def build_golden(
    run_dir: Path, store: CaseStore, out: Path, *, actor: str | None = None
) -> GoldenResult:
    """Write ``golden.parquet``, ``golden.csv`` and ``golden.json`` into ``out``."""
    run_dir = Path(run_dir)
    register_path = run_dir / "register.parquet"
    if not register_path.is_file():
        raise GoldenError(
            f"{run_dir}: no register.parquet; pass the output folder of `tagsweep reconcile run`"
        )
    run = read_run(run_dir)
    register = pq.read_table(register_path)
    columns = list(register.column_names)
    fields = [f for f in DATA_FIELDS if f in columns]
    if "asset_tag" not in fields and "serial" not in fields:
        raise GoldenError(f"{register_path}: neither an asset_tag nor a serial column")
    extra = [
        f + suffix for f in fields for suffix in PROVENANCE_SUFFIXES if f + suffix not in columns
    ]
    con = sandbox.connect()
    try:
        con.register("register_in", register)
        select = [ident(c) for c in columns]
        select += [
            f"CAST({'?' if name.endswith('_run') else 'NULL'} AS VARCHAR) AS {ident(name)}"
            for name in extra
        ]
        n_params = sum(1 for name in extra if name.endswith("_run"))
        con.execute(
            "CREATE TABLE g AS SELECT row_number() OVER () AS _row, "
            + ", ".join(select)
            + " FROM register_in",
            [run.run_id] * n_params,
        )
        for f in fields:
            if f + "_run" in columns:  # a register that already tracks runs: fill blanks
                con.execute(
                    f"UPDATE g SET {ident(f + '_run')} = ? WHERE {ident(f + '_run')} IS NULL",
                    [run.run_id],
                )
        result = GoldenResult(out / "golden.parquet", out / "golden.csv", out / "golden.json", 0)
        for corr in store.corrections():
            name = corr["field"]
            if name not in fields:
                result.unapplied.append({**_brief(corr), "why": f"register has no {name} column"})
                continue
            where, params = _row_filter(corr, fields, has_asset_key="asset_key" in columns)
            if where is None:
                result.unapplied.append({**_brief(corr), "why": "no asset tag or serial"})
                continue
            hits = con.execute(f"SELECT count(*) FROM g WHERE {where}", params).fetchone()
            if hits and hits[0]:
                con.execute(
                    f"UPDATE g SET {ident(name)} = ?, "
                    f"{ident(name + '_source')} = ?, {ident(name + '_run')} = ?, "
                    f"{ident(name + '_case')} = ? WHERE {where}",
                    [corr["after"], corr["origin"], corr["run_id"], corr["case_id"], *params],
                )
                result.applied.append(_brief(corr))
            elif corr["variance_type"] == "unrecorded" and corr["case_status"] == "resolved":
                _add_unrecorded(con, corr, fields, has_asset_key="asset_key" in columns)
                result.added.append(corr["case_id"])
                con.execute(
                    f"UPDATE g SET {ident(name)} = ?, "
                    f"{ident(name + '_source')} = ?, {ident(name + '_run')} = ?, "
                    f"{ident(name + '_case')} = ? WHERE {where}",
                    [corr["after"], corr["origin"], corr["run_id"], corr["case_id"], *params],
                )
                result.applied.append(_brief(corr))
            else:
                result.unapplied.append({**_brief(corr), "why": "asset not in this register"})
        out.mkdir(parents=True, exist_ok=True)
        final = [*columns, *extra]
        table = con.sql(
            "SELECT " + ", ".join(ident(c) for c in final) + " FROM g ORDER BY _row"
        ).to_arrow_table()
    finally:
        con.close()
    table = table.cast(
        pa.schema(
            [register.schema.field(c).with_nullable(True) for c in columns]
            + [pa.field(c, pa.string()) for c in extra]
        )
    )
    pq.write_table(table, result.parquet)
    with result.csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(final)
        for batch in table.to_batches():
            for row in batch.to_pylist():
                writer.writerow([csv_safe(row[c]) for c in final])
    result.rows = table.num_rows
    digest = sha256_file(result.parquet)
    head = store.record_golden(
        run_id=run.run_id,
        path=result.parquet,
        sha256=digest,
        actor=actor,
        applied=len(result.applied),
        added=len(result.added),
    )
    result.manifest.write_text(
        json.dumps(
            {
                "baseline_of_run": run.run_id,
                "register_sha256": sha256_file(register_path),
                "golden_sha256": digest,
                "rows": result.rows,
                "applied": result.applied,
                "added": result.added,
                "unapplied": result.unapplied,
                "audit_head": {"seq": head.seq, "hash": head.hash},
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    return result


def _brief(corr: dict[str, Any]) -> dict[str, Any]:
    return {k: corr[k] for k in ("case_id", "field", "before", "after", "origin", "run_id")}


def _row_filter(
    corr: dict[str, Any], fields: list[str], *, has_asset_key: bool
) -> tuple[str | None, list[Any]]:
    """SQL condition selecting the register row(s) of the corrected asset."""
    if corr["asset_key"] and has_asset_key:
        return "asset_key = ?", [corr["asset_key"]]
    if corr["case_asset_tag"] and "asset_tag" in fields:
        return "asset_tag = ?", [corr["case_asset_tag"]]
    if corr["case_serial"] and "serial" in fields:
        if corr["case_manufacturer"] and "manufacturer" in fields:
            return "serial = ? AND manufacturer = ?", [
                corr["case_serial"],
                corr["case_manufacturer"],
            ]
        return "serial = ?", [corr["case_serial"]]
    return None, []


def _add_unrecorded(
    con: duckdb.DuckDBPyConnection,
    corr: dict[str, Any],
    fields: list[str],
    *,
    has_asset_key: bool,
) -> None:
    """Register an asset the count found and its case accepted."""
    values = {
        "asset_tag": corr["case_asset_tag"],
        "serial": corr["case_serial"],
        "manufacturer": corr["case_manufacturer"],
        "model": corr["case_model"],
        "value": corr["case_value"],
    }
    present = {k: v for k, v in values.items() if k in fields and v is not None}
    cols = ["_row"]
    exprs = ["(SELECT coalesce(max(_row), 0) + 1 FROM g)"]
    params: list[Any] = []
    if has_asset_key:
        cols.append("asset_key")
        exprs.append("?")
        params.append(corr["asset_key"])
    for name, value in present.items():
        cols += [name, name + "_source", name + "_run", name + "_case"]
        exprs += ["?", "?", "?", "?"]
        params += [value, "count", corr["run_id"], corr["case_id"]]
    con.execute(
        f"INSERT INTO g ({', '.join(ident(c) for c in cols)}) VALUES ({', '.join(exprs)})",
        params,
    )
