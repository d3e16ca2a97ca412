"""The pandas baseline of ``bench_reconcile``: the engine's reconciliation, written the
way a pandas programmer would write it, producing the same files.

From the frozen snapshot (one Snipe-IT source) and one RFID session file it builds the
normalized register (with per-field provenance), decodes EPCs with the reference codec
(:func:`tagsweep.epc.asset_tag_for_epc`, one call per read), groups reads per counted
item, matches items to assets by tag then serial (then look-alike serial), and
classifies the variance types the benchmark data produces (retired_but_active,
duplicate_record, missing, unrecorded, location_mismatch, status_condition_mismatch,
stale_record) with the texts, evidence JSON, ids, priorities and SLA dates of
``engine/classify.py``. It writes ``variances.parquet``, ``variances.jsonl``,
``variances.csv`` (formula-escaped), ``register.parquet`` and ``matches.parquet``
with the engine's columns and sort orders.

Not covered, because the benchmark has no such input (and the engine's work for them
is a join against an empty table): HR custodians, MDM / discovery sources, model and
location alias tables, multi-source precedence and source conflicts, the variance
types identity_conflict, probable_match, custodian_mismatch and source_conflict.

Vectorised pandas (``.str`` methods, ``merge``, ``groupby``, ``np.where``) does the
column work; plain Python runs per row where a straightforward implementation has no
column-wise alternative: the EPC decode, the location containment test, the variance
id (sha256) and the evidence JSON (``json.dumps``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tagsweep.config.engine import EngineSection
from tagsweep.domain import VARIANCE_LOG_COLUMNS, VarianceType
from tagsweep.engine.classify import CANDIDATE_COLUMNS
from tagsweep.engine.normalize import (
    MANUFACTURER_ALIASES,
    PLACEHOLDER_SERIALS,
    manufacturer_prefix,
)
from tagsweep.engine.outputs import PROVENANCE_FIELDS, REGISTER_COLUMNS
from tagsweep.engine.presets import COMMON_STATUS_MAP, PLACEHOLDER_MANUFACTURERS, PRESETS
from tagsweep.engine.run import add_business_days
from tagsweep.epc import asset_tag_for_epc

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
TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: The engine's ``\s`` is RE2's (DuckDB): tab, newline, form feed, carriage return, space.
#: Spelled out, it also keeps pandas on its pyarrow regex kernels (pandas 3 runs any
#: pattern with ``\s`` through Python's ``re``, one call per cell, since Python's ``\s``
#: matches more).
WS = r"[\t\n\f\r ]"
#: The same characters, for ``str.strip`` (which takes characters, not a pattern).
WS_CHARS = "\t\n\f\r "

Series = pd.Series
Frame = pd.DataFrame


# --- text helpers (SQL NULL is NaN; ``+`` on string columns propagates it like ``||``)


def _null(index: pd.Index) -> Series:
    return pd.Series(np.nan, index=index, dtype="str")


def _blank(s: Series) -> Series:
    t = s.str.strip(" ")
    return t.where(t != "")


def _squeeze(s: Series) -> Series:
    return s.str.replace(WS + "+", " ", regex=True)


def _text_key(s: Series) -> Series:
    t = _squeeze(s.str.strip(" ")).str.lower()
    return t.where(t != "")


def _loc_clean(s: Series) -> Series:
    t = _squeeze(s.str.strip(" ").str.replace(f"{WS}*/{WS}*", "/", regex=True))
    return t.where(t != "")


def _serial(s: Series, placeholders: set[str]) -> Series:
    s0 = s.str.strip(" ").str.replace(" ", "", regex=False).str.replace("\t", "", regex=False)
    s0 = s0.str.upper()
    # a placeholder, or one character repeated (s[1:] == s[:-1])
    repeated = (s0.str.len() > 0) & (s0.str[1:] == s0.str[:-1])
    # or a number a spreadsheet wrote in scientific notation ("1.23457E+11")
    mangled = s0.str.fullmatch(r"[0-9]+(\.[0-9]+)?E\+[0-9]+")
    unusable = s0.isin(placeholders) | repeated.fillna(False) | mangled.fillna(False)
    keep = ~unusable & (s0 != "")
    return s0.where(keep)


def _concat_ws(sep: str, *parts: Series) -> Series:
    """DuckDB's concat_ws: the non-null parts joined, '' when all are null."""
    out = parts[0]
    for p in parts[1:]:
        out = (out + sep + p).fillna(out).fillna(p)
    return out.fillna("")


def _py(s: Series) -> list[Any]:
    """Python values with None for null (what json.dumps needs)."""
    return [None if pd.isna(v) else v for v in s.tolist()]


def _json(**cols: Series) -> list[str]:
    """One JSON object per row, like DuckDB's to_json of a struct (compact, in order)."""
    keys = list(cols)
    values = [_py(c) for c in cols.values()]
    return [
        json.dumps(dict(zip(keys, row, strict=True)), separators=(",", ":"), ensure_ascii=False)
        for row in zip(*values, strict=True)
    ]


def _strftime(s: Series, fmt: str) -> Series:
    out: Series = s.dt.strftime(fmt).astype("str")
    return out


def _semi(keys: Series, values: Series) -> Series:
    """``keys.isin(values)`` as a merge: pandas 3's ``isin`` on a string column turns each
    of ``values`` into a pyarrow scalar in Python first (seconds per million values)."""
    right = pd.DataFrame({"k": values.dropna().drop_duplicates(), "hit": True})
    hit = pd.DataFrame({"k": keys.to_numpy()}).merge(right, on="k", how="left")["hit"]
    return pd.Series(hit.notna().to_numpy(), index=keys.index)


def _candidates(kind: str, index: pd.Index, **cols: Any) -> Frame:
    frame = pd.DataFrame({c: cols.get(c, _null(index)) for c in CANDIDATE_COLUMNS}, index=index)
    frame["variance_type"] = kind
    return frame


def _loc_within(a: Series, b: Series) -> Series:
    """loc_within(a, b): same place, or one a sub-location of the other."""
    flags = [
        x == y or x.lower() == y.lower() or x.lower().startswith(y.lower() + "/")
        or y.lower().startswith(x.lower() + "/")
        for x, y in zip(a.tolist(), b.tolist(), strict=True)
    ]  # fmt: skip
    return pd.Series(flags, index=a.index, dtype=bool)


# --- stages


def normalize_register(snapshot: Path, settings: EngineSection) -> tuple[Frame, Frame, str]:
    """(record links: every usable register record, register: one row per asset, source)."""
    meta = json.loads((snapshot / "snapshot.json").read_text(encoding="utf-8"))
    src = meta["sources"][0]
    name = str(src["name"])
    rec = normalize_records(pd.read_parquet(snapshot / src["file"]), src, settings)
    rec["asset_key"] = (
        rec["asset_tag"]
        .fillna("SN:" + rec["manufacturer_key"].fillna("") + "|" + rec["serial"])
        .fillna("HW:" + rec["hardware_uuid"].fillna(rec["mac"]))
        .fillna("ID:" + name + "|" + rec["record_id"])
    )
    rec = rec.drop(columns=["record_id"])
    # later records of an asset the source already holds are never picked
    reg = rec.sort_values("line").drop_duplicates("asset_key", keep="first").copy()
    for field in PROVENANCE_FIELDS:
        reg[f"{field}_source"] = _null(reg.index).where(reg[field].isna(), name)
    reg["sources"] = name
    return rec, reg, name


def normalize_records(
    raw: Frame,
    src: dict[str, Any],
    settings: EngineSection,
    custodians: Callable[[Series], Frame] | None = None,
) -> Frame:
    """The usable records of one frozen source (``src``: its entry in snapshot.json),
    every field normalized as the engine's source_records stage does. ``custodians``
    maps the raw custodian column to person-key columns (HR resolution); without it
    the key comes from the text alone."""
    name, columns = str(src["name"]), dict(src["columns"])
    idx = raw.index

    def col(field: str) -> Series:
        header = columns.get(field)
        return raw[header].astype("str") if isinstance(header, str) else _null(idx)

    status_map = dict(COMMON_STATUS_MAP)
    if src["preset"] in PRESETS:
        status_map |= PRESETS[src["preset"]].status_map
    status_map |= settings.status_map
    mfr_keys = {_mfr_key_py(k): v for k, v in MANUFACTURER_ALIASES.items()}
    mfr_keys |= {_mfr_key_py(k): v for k, v in settings.manufacturer_aliases.items()}
    placeholders = {p.upper() for p in PLACEHOLDER_SERIALS} | {
        p.strip().upper() for p in settings.placeholder_serials
    }
    placeholders |= {p.replace(" ", "") for p in placeholders}

    rec = pd.DataFrame(index=idx)
    rec["source"] = name
    rec["line"] = raw["_line"] if "_line" in raw else pd.RangeIndex(2, len(raw) + 2)
    rec["asset_tag"] = _blank(col("asset_tag")).str.upper()
    serial_raw = col("serial")
    rec["serial"] = _serial(serial_raw, placeholders)
    m_raw = col("manufacturer")
    m_key = _mfr_key(m_raw)
    m_canon = m_key.map(mfr_keys)
    placeholder_mfr = m_raw.str.strip(WS_CHARS).str.lower().isin(PLACEHOLDER_MANUFACTURERS)
    rec["manufacturer"] = m_canon.fillna(_squeeze(_blank(m_raw))).where(~placeholder_mfr)
    key = m_canon.str.lower().fillna(m_key.where(m_key != ""))
    rec["manufacturer_key"] = key.where(~placeholder_mfr)
    model_raw = col("model")
    prefix = manufacturer_prefix(settings).removeprefix("(?i)")
    stripped = model_raw.str.replace(prefix, "", regex=True, flags=re.IGNORECASE)
    stripped = stripped.where(_blank(stripped).notna(), model_raw)
    placeholder_model = model_raw.str.strip(WS_CHARS).str.lower().isin(PLACEHOLDER_MANUFACTURERS)
    rec["model"] = _squeeze(_blank(stripped)).where(~placeholder_model)
    model_key = _text_key(stripped.str.replace(r"[\t\n\f\r ]*\([^)]*\)", "", regex=True))
    mtm = stripped.str.upper().str.fullmatch(r"[0-9]{2}[A-Z0-9]{8}").fillna(False)
    rec["model_key"] = model_key.where(~placeholder_model & ~mtm)
    rec["category"] = _blank(col("category"))
    rec["location"] = _loc_clean(col("location"))
    status_raw = col("status")
    rec["status_label"] = _blank(status_raw)
    # the engine's order: exact label; Snipe-IT's "… Deployed" meta; the label without
    # its meta; the meta; the part before '/'
    trimmed = status_raw.str.strip(WS_CHARS)
    meta = trimmed.str.extract(_META, flags=re.IGNORECASE, expand=False).str.lower()
    label = trimmed.str.replace(_META_STRIP, "", regex=True, flags=re.IGNORECASE)
    label = label.str.strip(WS_CHARS).str.lower()
    status = trimmed.str.lower().map(status_map)
    status = status.fillna(meta.where(meta == "deployed").map(status_map))
    status = status.fillna(label.map(status_map)).fillna(meta.map(status_map))
    first_part = status_raw.str.replace(r"(?s)/.*", "", regex=True).str.strip(" ").str.lower()
    rec["status"] = status.fillna(first_part.map(status_map)).astype("str")
    cond_raw = col("condition")
    rec["condition"] = _blank(cond_raw)
    cond_key = cond_raw.str.extract(r"^([^(]*)", expand=False).str.strip(" ").str.lower()
    rec["condition_key"] = cond_key.where(cond_key != "")
    cust_raw = col("custodian")
    rec["custodian"] = _squeeze(_blank(cust_raw))
    if custodians is None:
        # no HR export: the username of "First Last (username)", else an e-mail's
        # local part, else the text
        user, local, full = custodian_parts(cust_raw)
        rec["custodian_key"] = user.fillna(local).fillna(full)
    else:
        resolved = custodians(cust_raw)
        for column in resolved.columns:
            rec[column] = resolved[column]
    value_raw = col("value")
    value = pd.to_numeric(value_raw, errors="coerce")
    retry = value.isna() & _blank(value_raw).notna()
    if retry.any():
        value[retry] = _money(value_raw[retry])
    rec["value"] = value.astype("float64")
    rec["hardware_uuid"] = _blank(col("hardware_uuid")).str.upper()
    mac = col("mac").str.replace(r"[^0-9A-Fa-f]", "", regex=True).str.upper()
    rec["mac"] = mac.where(mac != "")
    rec["hostname"] = _blank(col("hostname"))
    seen_raw = _blank(col("last_seen"))
    rec["last_seen"] = _dates(seen_raw)
    rec["record_id"] = _blank(col("record_id"))

    usable = (
        rec["asset_tag"].notna()
        | rec["serial"].notna()
        | rec["hardware_uuid"].notna()
        | rec["mac"].notna()
        | rec["record_id"].notna()
    )
    # a value that does not parse only empties its field: the record stays
    bad = ~usable
    return rec[~bad]


_META = r"(?:^|[\t\n\f\r ]|\()(deployed|pending|archived|deployable|undeployable)\)?$"
_META_STRIP = (
    r"[\t\n\f\r ]*\(?[\t\n\f\r ]*(deployed|pending|archived|deployable|undeployable)"
    r"[\t\n\f\r ]*\)?$"
)
_MONEY = r"[$€£¥\t\n\f\r \xa0\u202f'\u2019]|USD|EUR|GBP|CHF|JPY|CAD|AUD|SEK|NOK|DKK|PLN|CZK|INR"
_TS_FORMATS = (
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %I:%M %p", "%Y-%m-%d %I:%M:%S %p",
    "%Y-%m-%d", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p", "%m/%d/%Y", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y",
)  # fmt: skip


def custodian_parts(raw: Series) -> tuple[Series, Series, Series]:
    """The engine's user_in_parens, email_local and text_key of custodian texts: the
    username of "First Last (username)", an e-mail's local part, the whole text."""
    user = _user_key(raw.str.extract(r"\(([^()]*)\)[\t\n\f\r ]*$", expand=False))
    local = _user_key(raw.str.strip(WS_CHARS).str.split("@").str[0])
    local = local.where(raw.str.contains("@", regex=False).fillna(False))
    return user.where(user != ""), local.where(local != ""), _text_key(raw)


def _user_key(raw: Series) -> Series:
    """The engine's user_key: lower case, runs of '.', '_' and spaces as one space."""
    return raw.str.lower().str.replace(r"[._\t\n\f\r ]+", " ", regex=True).str.strip(" ")


def _money(raw: Series) -> Series:
    """The engine's num_parse: currency and spaces out, "(1.00)" and "1.00-" negative,
    a decimal comma told apart from thousands commas."""
    t = raw.str.upper().str.strip(WS_CHARS).str.replace(_MONEY, "", regex=True)
    paren = t.str.startswith("(").fillna(False) & t.str.endswith(")").fillna(False)
    t = t.where(~paren, "-" + t.str.strip("()"))
    trailing = t.str.endswith("-").fillna(False)
    t = t.where(~trailing, "-" + t.str.rstrip("-"))
    comma = t.str.fullmatch(
        r"-?[0-9]{1,3}(\.[0-9]{3})+,[0-9]+|-?[0-9]+,([0-9]{1,2}|[0-9]{4,})"
    ).fillna(False)
    european = t.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    t = t.where(~comma, european).str.replace(",", "", regex=False)
    return pd.to_numeric(t, errors="coerce")


def _dates(raw: Series) -> Series:
    """The engine's ts_parse: ISO-8601 first, then the formats exports write (a 12-hour
    clock among them); DateTime.MinValue / MaxValue dates are no date."""
    sentinel = raw.str.match(r"(0001-|9999-|0000-)").fillna(False)
    text = raw.where(~sentinel)
    out = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    for fmt in _TS_FORMATS:
        left = out.isna() & text.notna()
        if not left.any():
            break
        out[left] = pd.to_datetime(text[left], utc=True, format=fmt, errors="coerce")
    return out


def _mfr_key_py(text: str) -> str:
    return str(_mfr_key(pd.Series([text], dtype="str")).iloc[0])


def _mfr_key(s: Series) -> Series:
    t = s.str.lower().str.replace(r"[^a-z0-9]+", " ", regex=True)
    t = t.str.replace(
        r"\b(inc|incorporated|corporation|corp|co|ltd|llc|gmbh|company|limited)\b",
        "",
        regex=True,
    )
    return _squeeze(t).str.strip(" ")


def observed_items(session: Path, settings: EngineSection) -> Frame:
    """Count rows normalized and EPCs decoded, then one row per counted item."""
    raw = pd.read_parquet(session)
    idx = raw.index

    def col(name: str) -> Series:
        return raw[name].astype("str") if name in raw else _null(idx)

    obs = pd.DataFrame(index=idx)
    obs["file"] = session.name
    obs["line"] = np.arange(1, len(raw) + 1)
    obs["session_id"] = _blank(col("session_id")).fillna(session.name)
    obs["method"] = _blank(col("method")).str.lower()
    obs["location"] = _loc_clean(col("location"))
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
    obs["asset_tag"] = _blank(col("asset_tag")).str.upper().fillna(epc_tag)
    placeholders = {p.upper() for p in PLACEHOLDER_SERIALS}
    placeholders |= {p.replace(" ", "") for p in placeholders}
    obs["serial"] = _serial(col("serial"), placeholders)
    obs["last_seen"] = raw["last_seen"]  # a session file always has it
    obs["custodian"] = _squeeze(_blank(col("custodian")))
    obs["condition"] = _blank(col("condition"))
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


def match(items: Frame, reg: Frame) -> Frame:
    """Register asset ↔ counted item: tag, then serial, then look-alike serial."""
    tags = reg[reg["asset_tag"].notna()].groupby("asset_tag")["asset_key"].min()
    by_tag = items["asset_tag"].map(tags)
    wanted = _semi(reg["serial"], items["serial"])
    serials = reg[wanted].groupby("serial")["asset_key"].min()
    by_serial = items["serial"].where(by_tag.isna()).map(serials)
    key = by_tag.fillna(by_serial)
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
        unique: Series = folds[folds["nunique"] == 1]["min"]
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


def found_assets(matches: Frame) -> Frame:
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


def classify(
    rec: Frame,
    reg: Frame,
    items: Frame,
    matches: Frame,
    settings: EngineSection,
    as_of: date,
    links: Frame | None = None,
    discovery: Frame | None = None,
) -> Frame:
    """The candidate variances of the seven types the benchmark data produces.

    ``rec``: the register's records; ``links``: every source's records linked to the
    register's assets (default: ``rec``); ``discovery``: per asset, the latest MDM
    check-in within ``active_within_days`` (``ma_last_seen``, ``ma_source``)."""
    retired = set(settings.retired_statuses)
    scope = [p.strip().strip("/").lower() for p in settings.scope if p.strip().strip("/")]
    loc = reg["location"].str.lower()
    if scope:
        in_scope = pd.Series(False, index=reg.index)
        for p in scope:
            in_scope |= ((loc == p) | loc.str.startswith(p + "/")).fillna(False)
    else:
        in_scope = pd.Series(True, index=reg.index)
    present = reg["status"].isin(settings.expected_present_statuses)
    expected_here = present & in_scope
    # SQL: a NULL status in scope makes expected_here NULL, neither true nor false
    not_expected = ~in_scope | (reg["status"].notna() & ~present)
    matched = _semi(reg["asset_key"], matches["asset_key"])
    found = found_assets(matches)
    rf = reg.merge(found, on="asset_key", how="inner")
    frames: list[Frame] = []

    frames.append(
        retired_but_active(rec if links is None else links, reg, found, settings, discovery)
    )

    # duplicate_record: one source, several active records of one device
    active = rec[rec["serial"].notna() & ~rec["status"].fillna("").isin(retired)].copy()
    active["mk"] = active["manufacturer_key"].fillna("")
    device = ["source", "mk", "serial"]
    dup_rows = active[active.duplicated(device, keep=False)].sort_values("line")
    dups = (
        dup_rows.groupby(device)
        .agg(
            first_key=("asset_key", "min"),
            keys=("asset_key", lambda x: ", ".join(sorted(set(x)))),
            n=("asset_key", "nunique"),
            lines=("line", lambda x: ", ".join(str(v) for v in x)),
        )
        .reset_index()
    )
    dups = dups[dups["n"] > 1]
    dups["dkey"] = "serial:" + dups["mk"] + "|" + dups["serial"]
    tagged = rec[rec["asset_tag"].notna()]
    tag_rows = tagged[tagged.duplicated(["source", "asset_tag"], keep=False)].sort_values("line")
    tag_dups = (
        tag_rows.groupby(["source", "asset_tag"])
        .agg(n=("line", "size"), lines=("line", lambda x: ", ".join(str(v) for v in x)))
        .reset_index()
    )
    tag_dups["first_key"] = tag_dups["keys"] = tag_dups["asset_tag"]
    tag_dups["dkey"] = "tag:" + tag_dups["asset_tag"]
    tag_dups["serial"] = _null(tag_dups.index)
    d = pd.concat(
        [dups, tag_dups[["source", "first_key", "keys", "n", "lines", "serial", "dkey"]]],
        ignore_index=True,
    )
    d = d.rename(columns={"serial": "d_serial", "source": "d_source"})
    d = d.merge(reg, left_on="first_key", right_on="asset_key", how="inner")
    frames.append(
        _candidates(
            "duplicate_record",
            d.index,
            asset_key=d["first_key"],
            detail_key=d["d_source"] + "|" + d["dkey"],
            asset_tag=d["asset_tag"],
            serial=d["d_serial"].fillna(d["serial"]),
            manufacturer=d["manufacturer"],
            model=d["model"],
            expected="One active record per device",
            found="Records: " + d["keys"] + " (" + d["d_source"] + ")",
            expected_location=d["location"],
            source=d["d_source"],
            value=d["value"],
            category=d["category"],
            detail=d["n"].astype("str") + " active records in " + d["d_source"]
            + " refer to one device (" + d["dkey"].str.replace("|", " ", regex=False)
            + "): keep one, retire the others with a note.",
            evidence=_json(
                source=d["d_source"], records=d["keys"], lines=d["lines"], key=d["dkey"]
            ),
        )
    )  # fmt: skip

    # missing: expected in this count, not found
    ms = reg[expected_here & ~matched]
    frames.append(
        _candidates(
            "missing",
            ms.index,
            asset_key=ms["asset_key"],
            detail_key="",
            asset_tag=ms["asset_tag"],
            serial=ms["serial"],
            manufacturer=ms["manufacturer"],
            model=ms["model"],
            expected=_concat_ws(
                " / ", "Status: " + ms["status_label"], "Loc: " + ms["location"]
            ),
            found="Not Found",
            expected_location=ms["location"],
            source=ms["location_source"],
            value=ms["value"],
            category=ms["category"],
            detail="In the register as " + ms["status"].fillna("unknown") + " at "
            + ms["location"].fillna("no location")
            + " but not found in the count: check tickets, loans, repairs and offboarding.",
            evidence=_json(
                status=ms["status"],
                status_label=ms["status_label"],
                status_source=ms["status_source"],
                location_source=ms["location_source"],
                last_seen=_strftime(ms["last_seen"], TS_FORMAT),
                last_seen_source=ms["last_seen_source"],
            ),
        )
    )  # fmt: skip

    # unrecorded: counted, no register record matches
    u = items[~_semi(items["obs_key"], matches["obs_key"])]
    ident = ("Serial: " + u["serial"]).fillna("Tag: " + u["asset_tag"]).fillna("EPC: " + u["epc"])
    frames.append(
        _candidates(
            "unrecorded",
            u.index,
            asset_key=u["obs_key"],
            detail_key="",
            asset_tag=u["asset_tag"],
            serial=u["serial"],
            epc=u["epc"],
            expected="No Record Found",
            found=_concat_ws(" / ", ident, "Loc: " + u["location"]),
            found_location=u["location"],
            session_id=u["session_id"],
            value=pd.Series(np.nan, index=u.index),
            detail="Found in the count at " + u["location"]
            + " but no register record matches: register it and label it.",
            evidence=_json(
                sessions=u["session_id"],
                methods=u["methods"],
                observations=u["observation_count"],
                custodian=u["custodian"],
                condition=u["condition"],
            ),
        )
    )  # fmt: skip

    # location_mismatch: found outside the recorded location
    both = rf[rf["location"].notna() & rf["found_location"].notna()]
    lm = both[~_loc_within(both["location"], both["found_location"])]
    frames.append(
        _candidates(
            "location_mismatch",
            lm.index,
            asset_key=lm["asset_key"],
            detail_key="",
            asset_tag=lm["asset_tag"],
            serial=lm["serial"],
            epc=lm["epc"],
            manufacturer=lm["manufacturer"],
            model=lm["model"],
            expected=_concat_ws(" / ", "Serial: " + lm["serial"], "Loc: " + lm["location"]),
            found=_concat_ws(
                " / ", "Serial: " + lm["observed_serial"], "Loc: " + lm["found_location"]
            ),
            expected_location=lm["location"],
            found_location=lm["found_location"],
            source=lm["location_source"],
            session_id=lm["session_id"],
            value=lm["value"],
            category=lm["category"],
            detail="Recorded at " + lm["location"] + ", found at " + lm["found_location"]
            + ": update the record or return the device.",
            evidence=_json(
                location_source=lm["location_source"],
                found_session=lm["session_id"],
                found_methods=lm["methods"],
            ),
        )
    )  # fmt: skip

    # status_condition_mismatch: found in another condition, or found although the
    # register says planned / in transit / missing / stolen
    cond = (
        rf["found_condition_key"].notna()
        & rf["condition_key"].notna()
        & (rf["found_condition_key"] != rf["condition_key"])
    ).fillna(False)
    sc_mask = cond | rf["status"].isin(settings.found_status_mismatch)
    sc, c = rf[sc_mask], cond[sc_mask]
    frames.append(
        _candidates(
            "status_condition_mismatch",
            sc.index,
            asset_key=sc["asset_key"],
            detail_key="",
            asset_tag=sc["asset_tag"],
            serial=sc["serial"],
            epc=sc["epc"],
            manufacturer=sc["manufacturer"],
            model=sc["model"],
            expected="Status: " + sc["condition"].where(c, sc["status_label"]),
            found=("Status: " + sc["found_condition"]).where(
                c, "Status: Found at " + sc["found_location"]
            ),
            expected_location=sc["location"],
            found_location=sc["found_location"],
            source=sc["condition_source"].where(c, sc["status_source"]),
            session_id=sc["session_id"],
            value=sc["value"],
            category=sc["category"],
            detail=(
                "Recorded as " + sc["condition"] + ", found " + sc["found_condition"]
                + ": update the condition and open a repair if needed."
            ).where(
                c,
                "Recorded as " + sc["status_label"] + " (" + sc["status"] + ") but found at "
                + sc["found_location"] + ": correct the status.",
            ),
            evidence=_json(
                register_condition=sc["condition"],
                found_condition=sc["found_condition"],
                register_status=sc["status"],
                status_label=sc["status_label"],
                found_session=sc["session_id"],
            ),
        )
    )  # fmt: skip

    # stale_record: not counted, not expected here, not seen by any source lately
    stale_before = pd.Timestamp(as_of - timedelta(days=settings.stale_after_days), tz="UTC")
    not_stale = retired | {"missing", "stolen"}
    st = reg[
        not_expected
        & ~reg["status"].fillna("").isin(not_stale)
        & ~matched
        & (reg["last_seen"].isna() | (reg["last_seen"] < stale_before))
    ]
    frames.append(
        _candidates(
            "stale_record",
            st.index,
            asset_key=st["asset_key"],
            detail_key="",
            asset_tag=st["asset_tag"],
            serial=st["serial"],
            manufacturer=st["manufacturer"],
            model=st["model"],
            expected=f"Last seen within {settings.stale_after_days} days",
            found=(
                "Last seen " + _strftime(st["last_seen"], "%Y-%m-%d") + " ("
                + st["last_seen_source"] + ")"
            ).fillna("No last-seen in any source"),
            expected_location=st["location"],
            source=st["sources"],
            value=st["value"],
            category=st["category"],
            detail="No source has seen this asset recently and this count did not cover it: "
            "verify it exists before trusting the record.",
            evidence=_json(
                last_seen=_strftime(st["last_seen"], TS_FORMAT),
                last_seen_source=st["last_seen_source"],
                sources=st["sources"],
                status=st["status"],
            ),
        )
    )  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def status_groups(links: Frame, statuses: Iterable[str]) -> Frame:
    """Per asset, its records with one of ``statuses``: their labels (the source's own
    words), statuses and sources, each distinct and sorted."""
    rows = links[links["asset_key"].notna() & links["status"].isin(list(statuses))]
    rows = rows.assign(label=rows["status_label"].fillna(rows["status"]))
    g = rows.groupby("asset_key")
    return pd.DataFrame(
        {
            "labels": g["label"].agg(lambda x: ", ".join(sorted(set(x)))),
            "statuses": g["status"].agg(lambda x: ", ".join(sorted(set(x)))),
            "by": g["source"].agg(lambda x: ",".join(sorted(set(x)))),
        }
    )


def retired_but_active(
    links: Frame,
    reg: Frame,
    found: Frame,
    settings: EngineSection,
    discovery: Frame | None = None,
) -> Frame:
    """retired_but_active: retired in a source, yet found in the count (``found``:
    found_assets) or checking in to an MDM lately (``discovery``, see classify)."""
    if discovery is None:
        discovery = pd.DataFrame(
            {
                "ma_last_seen": pd.Series([], dtype="datetime64[us, UTC]"),
                "ma_source": pd.Series([], dtype="str"),
            }
        )
    ret = status_groups(links, settings.retired_statuses)
    counted = found.set_index("asset_key")[["found_location", "epc", "session_id"]]
    a = reg.set_index("asset_key", drop=False).join(ret, how="inner")
    a = a.join(counted.assign(found=True)).join(discovery)
    a["found"] = a["found"].fillna(False).astype(bool)
    a = a[a["found"] | a["ma_source"].notna()]
    seen_day = _strftime(a["ma_last_seen"], "%Y-%m-%d")
    return _candidates(
        "retired_but_active", a.index,
        asset_key=a["asset_key"], detail_key="", asset_tag=a["asset_tag"],
        serial=a["serial"], epc=a["epc"], manufacturer=a["manufacturer"], model=a["model"],
        expected="Status: " + a["labels"],
        found=("Found: " + a["found_location"]).where(
            a["found"], "Active in " + a["ma_source"] + ": last seen " + seen_day
        ),
        expected_location=a["location"], found_location=a["found_location"],
        source=a["by"], session_id=a["session_id"], value=a["value"],
        category=a["category"],
        detail="Marked " + a["labels"] + " in " + a["by"] + " but "
        + pd.Series("found in the count", index=a.index).where(
            a["found"], "active in discovery")
        + ": check disposal records and the device before changing either side.",
        evidence=_json(
            retired_in=a["by"], retired_status=a["labels"],
            found_session=a["session_id"], found_location=a["found_location"],
            discovery_source=a["ma_source"],
            discovery_last_seen=_strftime(a["ma_last_seen"], TS_FORMAT),
        ),
    )  # fmt: skip


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


def reconcile_pandas(
    snapshot: Path,
    session: Path,
    out: Path,
    settings: EngineSection,
    run_id: str,
    as_of: date,
) -> Frame:
    """The whole baseline; returns the variance log it wrote."""
    rec, reg, _source = normalize_register(snapshot, settings)
    items = observed_items(session, settings)
    matches = match(items, reg)
    cand = classify(rec, reg, items, matches, settings, as_of)
    log = variance_log(cand, settings, run_id, as_of)
    write_outputs(log, reg, matches, out)
    return log
