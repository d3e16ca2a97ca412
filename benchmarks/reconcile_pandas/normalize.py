"""The baseline's register: the snapshot's one source normalized the engine's way
(identifiers, manufacturer and model keys, locations, statuses with Snipe-IT's meta,
custodians, money and dates), with per-field provenance. ``normalize_records`` does
the same for the records of any one source (the realistic shape's MDM too).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.reconcile_pandas.sql_like import (
    WS_CHARS,
    Frame,
    Series,
    blank_to_null,
    clean_location,
    clean_serial,
    null_column,
    squeeze_ws,
    text_key,
)
from tagsweep.config.engine import EngineSection
from tagsweep.engine.cleaning import (
    MANUFACTURER_ALIASES,
    PLACEHOLDER_SERIALS,
    manufacturer_prefix,
)
from tagsweep.engine.outputs import PROVENANCE_FIELDS
from tagsweep.engine.presets import COMMON_STATUS_MAP, PLACEHOLDER_MANUFACTURERS, PRESETS


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
        reg[f"{field}_source"] = null_column(reg.index).where(reg[field].isna(), name)
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
        return raw[header].astype("str") if isinstance(header, str) else null_column(idx)

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
    rec["asset_tag"] = blank_to_null(col("asset_tag")).str.upper()
    serial_raw = col("serial")
    rec["serial"] = clean_serial(serial_raw, placeholders)
    m_raw = col("manufacturer")
    m_key = _mfr_key(m_raw)
    m_canon = m_key.map(mfr_keys)
    placeholder_mfr = m_raw.str.strip(WS_CHARS).str.lower().isin(PLACEHOLDER_MANUFACTURERS)
    rec["manufacturer"] = m_canon.fillna(squeeze_ws(blank_to_null(m_raw))).where(~placeholder_mfr)
    key = m_canon.str.lower().fillna(m_key.where(m_key != ""))
    rec["manufacturer_key"] = key.where(~placeholder_mfr)
    model_raw = col("model")
    prefix = manufacturer_prefix(settings).removeprefix("(?i)")
    stripped = model_raw.str.replace(prefix, "", regex=True, flags=re.IGNORECASE)
    stripped = stripped.where(blank_to_null(stripped).notna(), model_raw)
    placeholder_model = model_raw.str.strip(WS_CHARS).str.lower().isin(PLACEHOLDER_MANUFACTURERS)
    rec["model"] = squeeze_ws(blank_to_null(stripped)).where(~placeholder_model)
    model_key = text_key(stripped.str.replace(r"[\t\n\f\r ]*\([^)]*\)", "", regex=True))
    mtm = stripped.str.upper().str.fullmatch(r"[0-9]{2}[A-Z0-9]{8}").fillna(False)
    rec["model_key"] = model_key.where(~placeholder_model & ~mtm)
    rec["category"] = blank_to_null(col("category"))
    rec["location"] = clean_location(col("location"))
    status_raw = col("status")
    rec["status_label"] = blank_to_null(status_raw)
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
    rec["condition"] = blank_to_null(cond_raw)
    cond_key = cond_raw.str.extract(r"^([^(]*)", expand=False).str.strip(" ").str.lower()
    rec["condition_key"] = cond_key.where(cond_key != "")
    cust_raw = col("custodian")
    rec["custodian"] = squeeze_ws(blank_to_null(cust_raw))
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
    retry = value.isna() & blank_to_null(value_raw).notna()
    if retry.any():
        value[retry] = _money(value_raw[retry])
    rec["value"] = value.astype("float64")
    rec["hardware_uuid"] = blank_to_null(col("hardware_uuid")).str.upper()
    mac = col("mac").str.replace(r"[^0-9A-Fa-f]", "", regex=True).str.upper()
    rec["mac"] = mac.where(mac != "")
    rec["hostname"] = blank_to_null(col("hostname"))
    seen_raw = blank_to_null(col("last_seen"))
    rec["last_seen"] = _dates(seen_raw)
    rec["record_id"] = blank_to_null(col("record_id"))

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
    return user.where(user != ""), local.where(local != ""), text_key(raw)


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
    return squeeze_ws(t).str.strip(" ")
