"""The baseline's candidate variances: the seven types the benchmark data produces
(retired_but_active, duplicate_record, missing, unrecorded, location_mismatch,
status_condition_mismatch, stale_record), with the engine's texts and evidence JSON.

One function, a block per variance type, as ``engine/classify.py`` has one SELECT per
type: the blocks share the frames built at its top.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.reconcile_pandas.match import found_assets
from benchmarks.reconcile_pandas.sql_like import (
    Frame,
    concat_ws,
    json_objects,
    loc_within,
    null_column,
    semi_join,
    strftime,
)
from tagsweep.config.engine import EngineSection
from tagsweep.engine.classify import CANDIDATE_COLUMNS

TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def candidates(kind: str, index: pd.Index, **cols: Any) -> Frame:
    frame = pd.DataFrame(
        {c: cols.get(c, null_column(index)) for c in CANDIDATE_COLUMNS}, index=index
    )
    frame["variance_type"] = kind
    return frame


def classify(
    rec: Frame,
    reg: Frame,
    items: Frame,
    matches: Frame,
    settings: EngineSection,
    as_of: date,
) -> Frame:
    """The candidate variances of the seven types the benchmark data produces."""
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
    matched = semi_join(reg["asset_key"], matches["asset_key"])
    found = found_assets(matches)
    rf = reg.merge(found, on="asset_key", how="inner")
    frames: list[Frame] = []

    # retired_but_active: retired in the register, found in the count
    ret = rec[rec["status"].isin(retired)].copy()
    ret["label"] = ret["status_label"].fillna(ret["status"])
    ret_g = ret.groupby("asset_key").agg(
        labels=("label", lambda x: ", ".join(sorted(set(x)))),
        ret_sources=("source", lambda x: ",".join(sorted(set(x)))),
    )
    r = rf.merge(ret_g, left_on="asset_key", right_index=True, how="inner")
    frames.append(
        candidates(
            "retired_but_active",
            r.index,
            asset_key=r["asset_key"],
            detail_key="",
            asset_tag=r["asset_tag"],
            serial=r["serial"],
            epc=r["epc"],
            manufacturer=r["manufacturer"],
            model=r["model"],
            expected="Status: " + r["labels"],
            found="Found: " + r["found_location"],
            expected_location=r["location"],
            found_location=r["found_location"],
            source=r["ret_sources"],
            session_id=r["session_id"],
            value=r["value"],
            category=r["category"],
            detail="Marked " + r["labels"] + " in " + r["ret_sources"]
            + " but found in the count: check disposal records and the device before "
            "changing either side.",
            evidence=json_objects(
                retired_in=r["ret_sources"],
                retired_status=r["labels"],
                found_session=r["session_id"],
                found_location=r["found_location"],
                discovery_source=null_column(r.index),
                discovery_last_seen=null_column(r.index),
            ),
        )
    )  # fmt: skip

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
    tag_dups["serial"] = null_column(tag_dups.index)
    d = pd.concat(
        [dups, tag_dups[["source", "first_key", "keys", "n", "lines", "serial", "dkey"]]],
        ignore_index=True,
    )
    d = d.rename(columns={"serial": "d_serial", "source": "d_source"})
    d = d.merge(reg, left_on="first_key", right_on="asset_key", how="inner")
    frames.append(
        candidates(
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
            evidence=json_objects(
                source=d["d_source"], records=d["keys"], lines=d["lines"], key=d["dkey"]
            ),
        )
    )  # fmt: skip

    # missing: expected in this count, not found
    ms = reg[expected_here & ~matched]
    frames.append(
        candidates(
            "missing",
            ms.index,
            asset_key=ms["asset_key"],
            detail_key="",
            asset_tag=ms["asset_tag"],
            serial=ms["serial"],
            manufacturer=ms["manufacturer"],
            model=ms["model"],
            expected=concat_ws(
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
            evidence=json_objects(
                status=ms["status"],
                status_label=ms["status_label"],
                status_source=ms["status_source"],
                location_source=ms["location_source"],
                last_seen=strftime(ms["last_seen"], TS_FORMAT),
                last_seen_source=ms["last_seen_source"],
            ),
        )
    )  # fmt: skip

    # unrecorded: counted, no register record matches
    u = items[~semi_join(items["obs_key"], matches["obs_key"])]
    ident = ("Serial: " + u["serial"]).fillna("Tag: " + u["asset_tag"]).fillna("EPC: " + u["epc"])
    frames.append(
        candidates(
            "unrecorded",
            u.index,
            asset_key=u["obs_key"],
            detail_key="",
            asset_tag=u["asset_tag"],
            serial=u["serial"],
            epc=u["epc"],
            expected="No Record Found",
            found=concat_ws(" / ", ident, "Loc: " + u["location"]),
            found_location=u["location"],
            session_id=u["session_id"],
            value=pd.Series(np.nan, index=u.index),
            detail="Found in the count at " + u["location"]
            + " but no register record matches: register it and label it.",
            evidence=json_objects(
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
    lm = both[~loc_within(both["location"], both["found_location"])]
    frames.append(
        candidates(
            "location_mismatch",
            lm.index,
            asset_key=lm["asset_key"],
            detail_key="",
            asset_tag=lm["asset_tag"],
            serial=lm["serial"],
            epc=lm["epc"],
            manufacturer=lm["manufacturer"],
            model=lm["model"],
            expected=concat_ws(" / ", "Serial: " + lm["serial"], "Loc: " + lm["location"]),
            found=concat_ws(
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
            evidence=json_objects(
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
        candidates(
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
            evidence=json_objects(
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
        candidates(
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
                "Last seen " + strftime(st["last_seen"], "%Y-%m-%d") + " ("
                + st["last_seen_source"] + ")"
            ).fillna("No last-seen in any source"),
            expected_location=st["location"],
            source=st["sources"],
            value=st["value"],
            category=st["category"],
            detail="No source has seen this asset recently and this count did not cover it: "
            "verify it exists before trusting the record.",
            evidence=json_objects(
                last_seen=strftime(st["last_seen"], TS_FORMAT),
                last_seen_source=st["last_seen_source"],
                sources=st["sources"],
                status=st["status"],
            ),
        )
    )  # fmt: skip
    return pd.concat(frames, ignore_index=True)
