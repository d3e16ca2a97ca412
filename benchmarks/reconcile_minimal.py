"""An independent, minimal pandas reconciliation: the baseline of the realistic shape.

What a pandas programmer writes in an afternoon to classify the seven core variance
types of a count against a register with an MDM and an HR source: read the frozen
Snipe-IT, Intune and HR tables and the session file, decode the GIAI-96 EPCs, join,
and flag ``retired_but_active`` (retired, yet counted or checked in to MDM within 30
days), ``duplicate_record`` (one serial on several records), ``missing``, ``unrecorded``,
``location_mismatch``, ``status_condition_mismatch`` (counted, recorded stolen or
missing) and ``stale_record`` (nothing has seen it for 180 days); then write one
``variances.parquet``. It shares no code with the engine (not even the EPC codec).

It does less than the engine, which also resolves custodians through HR, compares the
sources field by field (source_conflict), checks identities (identity_conflict,
probable_match), keeps per-field provenance, and writes the register, the matches, the
CSV/JSONL logs, the corrections and the reports: so the ratio against it understates
the engine's advantage rather than flatters it.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

STATUS = {"archived": "retired", "lost/stolen": "stolen", "deployed": "in_use",
          "ready to deploy": "in_stock"}  # fmt: skip
GIAI96_HEADER = 0x34


def decode_giai96(epcs: pd.Series, company_prefix: str, tag_format: str) -> pd.Series:
    """EPC hex → asset tag for GIAI-96 EPCs of ``company_prefix``; None otherwise."""
    digits = len(company_prefix)
    partition = 12 - digits
    prefix_bits = {12: 40, 11: 37, 10: 34, 9: 30, 8: 27, 7: 24, 6: 20}[digits]
    ref_bits = 82 - prefix_bits
    text = epcs.fillna("").str.upper()
    ok = text.str.len().eq(24) & text.str.fullmatch(r"[0-9A-F]{24}")
    values = [int(h, 16) if good else 0 for h, good in zip(text, ok, strict=True)]
    header = np.array([v >> 88 for v in values])
    part = np.array([(v >> 82) & 0x7 for v in values])
    prefix = np.array([(v >> ref_bits) & ((1 << prefix_bits) - 1) for v in values])
    ref = [v & ((1 << ref_bits) - 1) for v in values]
    good = ok.to_numpy() & (header == GIAI96_HEADER) & (part == partition)
    good &= prefix == int(company_prefix)
    return pd.Series(
        [tag_format.format(ref=r) if g else None for r, g in zip(ref, good, strict=True)],
        index=epcs.index,
    )


def reconcile_minimal(snapshot: Path, session: Path, out: Path, as_of: date) -> pd.DataFrame:
    reg = pd.read_parquet(snapshot / "itam.parquet")
    mdm = pd.read_parquet(snapshot / "mdm.parquet")
    hr = pd.read_parquet(snapshot / "hr.parquet")
    count = pd.read_parquet(session, columns=["epc", "location"])

    # Snipe-IT's UI export: "Ready to Deploy Deployed" (label + status meta), "Last
    # Audit" on a 12-hour clock, 0001-01-01 for never
    status = reg["Status"].str.strip().str.lower()
    label = status.str.replace(r"\s+(deployed|archived|undeployable|pending|deployable)$", "",
                               regex=True)  # fmt: skip
    meta = status.str.extract(r"(deployed|archived)$", expand=False)
    reg = pd.DataFrame(
        {
            "asset_tag": reg["Asset Tag"].str.strip().str.upper(),
            "serial": reg["Serial"].str.strip().str.upper(),
            "location": reg["Location"].str.strip(),
            "status": status.map(STATUS)
            .fillna(meta.map(STATUS))
            .fillna(label.map(STATUS))
            .fillna("in_use"),
            "custodian": reg["Checked Out To"].replace("", None),
            "last_audit": pd.to_datetime(
                reg["Last Audit"].replace("", None),
                format="%Y-%m-%d %I:%M %p",
                errors="coerce",
                utc=True,
            ),
        }
    )
    mdm = pd.DataFrame(
        {
            "serial": mdm["Serial number"].str.strip().str.upper(),
            "checkin": pd.to_datetime(mdm["Last check-in"], utc=True),
            "user": mdm["Primary user UPN"],
        }
    ).drop_duplicates("serial")
    reg = reg.merge(mdm, on="serial", how="left")
    del hr  # read like the engine reads it; custodians are beyond the seven core types

    count["asset_tag"] = decode_giai96(count["epc"], "0614141", "AST-{ref:06d}")
    items = count.groupby(["asset_tag", "epc"], dropna=False, as_index=False).agg(
        counted_at=("location", "last")
    )
    joined = items.merge(reg, on="asset_tag", how="left", indicator=True)
    found = joined[joined["_merge"] == "both"]
    now = pd.Timestamp(as_of, tz="UTC")
    out_rows: list[pd.DataFrame] = []

    def flag(frame: pd.DataFrame, kind: str) -> None:
        out_rows.append(pd.DataFrame({"variance_type": kind, "asset_tag": frame["asset_tag"],
                                      "epc": frame.get("epc")}))  # fmt: skip

    flag(joined[joined["_merge"] == "left_only"], "unrecorded")
    in_scope = reg["location"].str.startswith("DC1")
    present = reg["status"].isin(["in_use", "in_stock"])
    counted = reg["asset_tag"].isin(found["asset_tag"])
    flag(reg[in_scope & present & ~counted], "missing")
    flag(found[found["location"] != found["counted_at"]], "location_mismatch")
    flag(found[found["status"].isin(["stolen", "missing"])], "status_condition_mismatch")
    recent = reg["checkin"] >= now - timedelta(days=30)
    flag(reg[(reg["status"] == "retired") & (counted | recent)], "retired_but_active")
    dup = reg[reg["status"] != "retired"]
    flag(dup[dup.duplicated("serial", keep=False)], "duplicate_record")
    seen = reg[["last_audit", "checkin"]].max(axis=1)
    stale = (seen.isna() | (seen < now - timedelta(days=180))) & ~counted
    flag(reg[stale], "stale_record")
    log = pd.concat(out_rows, ignore_index=True).sort_values(["variance_type", "asset_tag"])
    log.to_parquet(out / "variances.parquet", index=False)
    return log
