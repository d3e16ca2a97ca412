"""The baseline's variance log (ids, priorities, SLA dates, flags, the engine's sort)
and the files it writes, with the engine's columns, types and sort orders.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from benchmarks.reconcile_pandas.sql_like import Frame
from tagsweep.config.engine import EngineSection
from tagsweep.domain import VARIANCE_LOG_COLUMNS, VarianceType
from tagsweep.engine.outputs import PROVENANCE_FIELDS, REGISTER_COLUMNS
from tagsweep.engine.run import add_business_days

MATCH_COLUMNS = (
    "asset_key",
    "obs_key",
    "tier",
    "match_status",
    "session_id",
    "observed_asset_tag",
    "observed_serial",
    "epc",
    "found_location",
    "methods",
)
_ARROW_TYPES = {
    "string": pa.string(),
    "date32": pa.date32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
}
VARIANCE_SCHEMA = pa.schema([(n, _ARROW_TYPES[k]) for n, k in VARIANCE_LOG_COLUMNS.items()])
REGISTER_SCHEMA = pa.schema(
    [
        (c, pa.float64() if c == "value" else pa.timestamp("us", tz="UTC") if c == "last_seen"
         else pa.string())
        for c in (*REGISTER_COLUMNS, *(f"{f}_source" for f in PROVENANCE_FIELDS), "sources")
    ]
)  # fmt: skip
MATCH_SCHEMA = pa.schema([(c, pa.string()) for c in MATCH_COLUMNS])
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def variance_log(cand: Frame, settings: EngineSection, run_id: str, as_of: date) -> Frame:
    """Ids, priority, SLA and flags, sorted like the engine's variance log."""
    risk_words = "|".join(
        c.strip().lower().replace("\\", "") for c in settings.high_risk_categories if c.strip()
    )
    value = cand["value"].astype("float64")
    high_value = (value >= float(settings.high_value_threshold)).fillna(False)
    if risk_words:
        category = cand["category"].astype("str").str.lower()
        pattern = rf"\b(?:{risk_words})s?\b"
        high_risk = category.str.contains(pattern, regex=True).fillna(False).astype(bool)
    else:
        high_risk = pd.Series(False, index=cand.index)
    urgent = high_value | high_risk
    routine_due = add_business_days(as_of, settings.sla_business_days, settings.holidays)
    urgent_due = add_business_days(as_of, settings.sla_business_days_urgent, settings.holidays)
    ids = [
        "V-" + hashlib.sha256(f"{t}|{k}|{d}".encode()).hexdigest()[:16]
        for t, k, d in zip(
            cand["variance_type"].tolist(),
            cand["asset_key"].tolist(),
            cand["detail_key"].tolist(),
            strict=True,
        )
    ]
    out = pd.DataFrame(
        {
            "variance_id": ids,
            "run_id": run_id,
            "variance_type": cand["variance_type"],
            "priority": np.where(
                urgent, "P1", cand["variance_type"].map(dict(settings.priorities))
            ),
            "sla_due": [urgent_due if u else routine_due for u in urgent.tolist()],
        },
        index=cand.index,
    )
    for name in VARIANCE_LOG_COLUMNS:
        if name in cand and name not in out:
            out[name] = cand[name]
    out["value"] = value
    out["high_value"] = high_value.astype(bool)
    out["high_risk"] = high_risk.astype(bool)
    out["type_order"] = cand["variance_type"].map({t.value: i for i, t in enumerate(VarianceType)})
    out = out.sort_values(["priority", "type_order", "asset_key", "variance_id"])
    return out[list(VARIANCE_LOG_COLUMNS)].reset_index(drop=True)


def write_outputs(log: Frame, reg: Frame, matches: Frame, out: Path) -> None:
    """The variance log in three formats, the register and the matches."""
    log.to_parquet(
        out / "variances.parquet",
        index=False,
        schema=VARIANCE_SCHEMA,
        compression="zstd",
        compression_level=1,
    )
    as_text = log.assign(sla_due=log["sla_due"].astype("str"))
    as_text.to_json(
        out / "variances.jsonl",
        orient="records",
        lines=True,
        force_ascii=False,
        double_precision=15,
    )
    text_columns = [n for n, kind in VARIANCE_LOG_COLUMNS.items() if kind == "string"]
    escaped = as_text.copy()
    for name in text_columns:
        s = escaped[name].astype("str")
        escaped[name] = s.where(~s.str.startswith(FORMULA_STARTS).fillna(False), "'" + s)
    for name in ("high_value", "high_risk"):
        escaped[name] = np.where(escaped[name], "true", "false")
    escaped.to_csv(out / "variances.csv", index=False, lineterminator="\n")

    prov = [f"{f}_source" for f in PROVENANCE_FIELDS]
    register = reg[[*REGISTER_COLUMNS, *prov, "sources"]].sort_values("asset_key")
    register.to_parquet(
        out / "register.parquet",
        index=False,
        schema=REGISTER_SCHEMA,
        compression="zstd",
        compression_level=1,
    )
    m = matches[list(MATCH_COLUMNS)].sort_values(["asset_key", "obs_key"])
    m.to_parquet(
        out / "matches.parquet",
        index=False,
        schema=MATCH_SCHEMA,
        compression="zstd",
        compression_level=1,
    )
