"""The baseline's count side: session rows normalized and EPCs decoded with the
reference codec (one call per read), one row per counted item, each matched to a
register asset by tag, then serial, then look-alike serial; and the register assets the
count confirmed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.reconcile_pandas.sql_like import (
    blank_to_null,
    clean_location,
    clean_serial,
    null_column,
    semi_join,
    squeeze_ws,
)
from tagsweep.config.engine import EngineSection
from tagsweep.engine.cleaning import PLACEHOLDER_SERIALS
from tagsweep.epc import asset_tag_for_epc


def observed_items(session: Path, settings: EngineSection) -> pd.DataFrame:
    """Count rows normalized and EPCs decoded, then one row per counted item."""
    raw = pd.read_parquet(session)
    idx = raw.index

    def col(name: str) -> pd.Series:
        return raw[name].astype("str") if name in raw else null_column(idx)

    obs = pd.DataFrame(index=idx)
    obs["file"] = session.name
    obs["line"] = np.arange(1, len(raw) + 1)
    obs["session_id"] = blank_to_null(col("session_id")).fillna(session.name)
    obs["method"] = blank_to_null(col("method")).str.lower()
    obs["location"] = clean_location(col("location"))
    epc0 = col("epc").str.strip(" ").str.upper()
    for ch in (" ", ":", "-", "\t"):
        epc0 = epc0.str.replace(ch, "", regex=False)
    epc0 = epc0.where(~epc0.str.startswith("0X").fillna(False), epc0.str[2:])
    obs["epc"] = epc0.where(epc0.str.fullmatch(r"(?:[0-9A-F]{2})+").fillna(False))

    def decode(epc: str) -> str | None:
        return asset_tag_for_epc(
            epc,
            "giai96",
            company_prefix=settings.giai_company_prefix,
            tag_format=settings.giai_asset_tag_format,
        )

    epc_tag = obs["epc"].map(decode, na_action="ignore").astype("str").str.upper()
    obs["asset_tag"] = blank_to_null(col("asset_tag")).str.upper().fillna(epc_tag)
    placeholders = {p.upper() for p in PLACEHOLDER_SERIALS}
    placeholders |= {p.replace(" ", "") for p in placeholders}
    obs["serial"] = clean_serial(col("serial"), placeholders)
    obs["last_seen"] = raw["last_seen"]  # a session file always has it
    obs["custodian"] = squeeze_ws(blank_to_null(col("custodian")))
    obs["condition"] = blank_to_null(col("condition"))
    cond_key = col("condition").str.extract(r"^([^(]*)", expand=False).str.strip(" ").str.lower()
    obs["condition_key"] = cond_key.where(cond_key != "")
    bad = obs["location"].isna() | (
        obs["epc"].isna() & obs["asset_tag"].isna() & obs["serial"].isna()
    )
    obs = obs[~bad]
    obs["obs_key"] = obs["asset_tag"].fillna("SN:" + obs["serial"]).fillna("EPC:" + obs["epc"])

    # Items read once pass through as they are; the few read several times take the
    # latest non-null values (the engine splits the two the same way).
    counts = obs.groupby("obs_key")["obs_key"].transform("size")
    single = obs[counts == 1].rename(columns={"method": "methods"})
    single["observation_count"] = 1
    multi = obs[counts > 1].copy()
    multi["ord"] = multi["last_seen"].fillna(pd.Timestamp("1970-01-01", tz="UTC"))
    multi = multi.sort_values(["ord", "file", "line"])
    grouped = multi.groupby("obs_key", sort=False)
    agg = grouped.agg(
        asset_tag=("asset_tag", "last"),
        serial=("serial", "last"),
        epc=("epc", "min"),
        location=("location", "last"),
        custodian=("custodian", "last"),
        condition=("condition", "last"),
        condition_key=("condition_key", "last"),
        last_seen=("last_seen", "max"),
        observation_count=("obs_key", "size"),
    )
    agg["session_id"] = grouped["session_id"].agg(lambda x: ",".join(sorted(set(x.dropna()))))
    agg["methods"] = grouped["method"].agg(lambda x: ",".join(sorted(set(x.dropna()))))
    items = pd.concat([single, agg.reset_index()], ignore_index=True)
    return items[
        [
            "obs_key",
            "asset_tag",
            "serial",
            "epc",
            "location",
            "custodian",
            "condition",
            "condition_key",
            "session_id",
            "methods",
            "last_seen",
            "observation_count",
        ]
    ]


def match(items: pd.DataFrame, reg: pd.DataFrame) -> pd.DataFrame:
    """Register asset ↔ counted item: tag, then serial, then look-alike serial."""
    tags = reg[reg["asset_tag"].notna()].groupby("asset_tag")["asset_key"].min()
    by_tag = items["asset_tag"].map(tags)
    wanted = semi_join(reg["serial"], items["serial"])
    serials = reg[wanted].groupby("serial")["asset_key"].min()
    by_serial = items["serial"].where(by_tag.isna()).map(serials)
    key = by_tag.astype(object).fillna(by_serial.astype(object))  # one dtype: no tag may match
    tier = pd.Series(
        np.select([by_tag.notna(), by_serial.notna()], ["asset_tag", "serial"], ""),
        index=items.index,
        dtype="str",
    )
    need = key.isna() & items["serial"].notna()
    if need.any():
        fold_obs = items.loc[need, "serial"].str.translate(str.maketrans("OISBZ", "01582"))
        fold_reg = reg["serial"].str.translate(str.maketrans("OISBZ", "01582"))
        cand = reg[fold_reg.isin(fold_obs)].assign(fold=fold_reg)
        folds = cand.groupby("fold")["asset_key"].agg(["min", "nunique"])
        unique: pd.Series = folds[folds["nunique"] == 1]["min"]
        probable = fold_obs.map(unique)
        key = key.fillna(probable)
        tier = tier.where(~probable.reindex(items.index).notna(), "lookalike_serial")
    m = items.assign(asset_key=key, tier=tier)
    m = m[m["asset_key"].notna()]
    r = reg[["asset_key", "asset_tag", "serial"]].rename(
        columns={"asset_tag": "r_asset_tag", "serial": "r_serial"}
    )
    m = m.merge(r, on="asset_key", how="inner")
    # the look-alike comparison only where both serials are known (a handful here)
    both = (m["tier"] == "asset_tag") & m["serial"].notna() & m["r_serial"].notna()
    table = str.maketrans("OISBZ", "01582")
    tag_conflict = both.copy()
    tag_conflict[both] = m.loc[both, "serial"].str.translate(table) != m.loc[
        both, "r_serial"
    ].str.translate(table)
    serial_conflict = (
        (m["tier"] == "serial")
        & m["asset_tag"].notna()
        & m["r_asset_tag"].notna()
        & (m["asset_tag"] != m["r_asset_tag"])
    )
    m["match_status"] = np.select(
        [m["tier"] == "lookalike_serial", tag_conflict | serial_conflict],
        ["probable", "identity_conflict"],
        "confirmed",
    )
    return m.rename(
        columns={
            "asset_tag": "observed_asset_tag",
            "serial": "observed_serial",
            "location": "found_location",
            "custodian": "found_custodian",
            "condition": "found_condition",
            "condition_key": "found_condition_key",
        }
    )


def found_assets(matches: pd.DataFrame) -> pd.DataFrame:
    """Register assets the count confirmed, with what it found (latest read wins)."""
    c = matches[matches["match_status"] == "confirmed"]
    counts = c.groupby("asset_key")["asset_key"].transform("size")
    cols = [
        "asset_key",
        "found_location",
        "found_condition",
        "found_condition_key",
        "observed_serial",
        "epc",
        "session_id",
        "methods",
        "last_seen",
    ]
    single = c.loc[counts == 1, cols]
    multi = c[counts > 1].copy()
    if multi.empty:
        return single
    multi["ord"] = multi["last_seen"].fillna(pd.Timestamp("1970-01-01", tz="UTC"))
    grouped = multi.sort_values(["ord", "obs_key"]).groupby("asset_key", sort=False)
    agg = grouped.agg(
        found_location=("found_location", "last"),
        found_condition=("found_condition", "last"),
        found_condition_key=("found_condition_key", "last"),
        observed_serial=("observed_serial", "last"),
        epc=("epc", "min"),
        last_seen=("last_seen", "max"),
    )
    agg["session_id"] = grouped["session_id"].agg(lambda x: ",".join(sorted(set(x.dropna()))))
    agg["methods"] = grouped["methods"].agg(lambda x: ",".join(sorted(set(x.dropna()))))
    return pd.concat([single, agg.reset_index()[cols]], ignore_index=True)
