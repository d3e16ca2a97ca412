"""The same-work pandas baseline of ``bench_reconcile --shape realistic``: the engine's
reconciliation of a register with an MDM and an HR source, in pandas, producing the
same files.

It extends :mod:`benchmarks.reconcile_pandas` (the register-only baseline, whose
normalization, EPC decoding, matching, core variance types, variance-log ids and file
writers it reuses) with what several sources add, following the engine's SQL
(``engine/cleaning.py``, ``normalize.py``, ``linking.py``, ``asset_checks.py``,
``variance_rules.py``):

* HR: people with a leaver flag (employment status, end date), every way a custodian
  can be written (e-mail, id, name, an e-mail's local part) → the person; custodians
  of every source resolved once per distinct text (whole text, the username of
  "First Last (username)", the name before it, an e-mail's local part).
* The other asset sources: their records normalized like the register's, the preset's
  exclusions (personal devices, Cloud PCs, virtual machines) applied, linked to the
  register's assets by tag, then serial, hardware UUID, MAC; a record no identifier
  links is looked up by look-alike serial, shortened serial and shortened tag (a
  probable match for review); an MDM holding one device twice keeps its latest
  check-in.
* The register: one row per register asset, each field from the first source with a
  value in the configured precedence (with its companions: status label, keys,
  custodian's person key and leaver flag) and its provenance; last_seen the latest of
  all sources, with its source; the list of sources holding the asset.
* The variance types several sources produce: retired_but_active through MDM check-ins
  (the register-only baseline's, given the check-ins), custodian_mismatch (another MDM
  user, a leaver), source_conflict
  (fields the sources disagree on, devices only another source holds),
  status_condition_mismatch of lost or stolen assets the MDM sees, probable_match of
  source records; the other types come from the register-only baseline.

Left out (the benchmark's data has no such input, and the baseline states it rather
than guesses it): count-side custodians (a session file carries none; count sheets
would be resolved through HR by the engine), identity_conflict / probable_match of
counted items (the count's EPCs all decode to register tags or to none), several
register-role sources, alias tables (model, location), per-source configuration
(``[engine.sources.*]``: status maps, excluded categories, decimal comma, day-first
dates), and a ``retired_on`` column.

``bench_reconcile --shape realistic`` checks every output it writes against the
engine's (at 1 M rows: 212,002 variances of eight types, every column equal; the
register and matches identical).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.reconcile_pandas.classify import (
    TS_FORMAT,
    candidates,
    classify,
    status_groups,
)
from benchmarks.reconcile_pandas.match import found_assets, match, observed_items
from benchmarks.reconcile_pandas.normalize import _dates, custodian_parts, normalize_records
from benchmarks.reconcile_pandas.outputs import variance_log, write_outputs
from benchmarks.reconcile_pandas.sql_like import (
    WS,
    Frame,
    Series,
    blank_to_null,
    concat_ws,
    json_objects,
    loc_within,
    null_column,
    strftime,
    text_key,
)
from tagsweep.config.engine import EngineSection
from tagsweep.engine.cleaning import LEAVER_STATUSES
from tagsweep.engine.linking import COMPANIONS, REGISTER_PICKED, precedence
from tagsweep.engine.normalize import _COST_HEADER
from tagsweep.engine.presets import GENERIC, PRESETS
from tagsweep.engine.variance_rules import CONFLICT_FIELDS

LOOKALIKE = str.maketrans("OISBZ", "01582")


# --- HR


def person_keys(raw: Frame, src: dict[str, Any], as_of: date) -> Frame:
    """key → (person_key, leaver): the first HR line (by line) a key names wins."""
    columns = dict(src["columns"])

    def text(field: str) -> Series:
        header = columns.get(field)
        return raw[header].astype("str") if isinstance(header, str) else null_column(raw.index)

    def col(field: str) -> Series:
        return blank_to_null(text(field))

    person_id = col("person_id").str.lower()
    email = col("email").str.lower()
    name_raw = col("name")
    name_key = text_key(text("name"))
    person = email.fillna(person_id).fillna(name_key)
    end = _dates(col("end_date"))
    until = pd.Timestamp(f"{as_of.isoformat()} 23:59:59", tz="UTC")
    status = col("employment_status").str.strip(" ").str.lower()
    leaver = status.isin(LEAVER_STATUSES).to_numpy() | (end <= until).fillna(False).to_numpy()
    line = raw["_line"] if "_line" in raw else pd.RangeIndex(2, len(raw) + 2)
    people = pd.DataFrame(
        {"line": np.asarray(line), "person_key": person, "leaver": leaver}, index=raw.index
    )
    people = people[person_id.notna() | email.notna() | name_raw.notna()]
    _user, local, _full = custodian_parts(email)
    keys = pd.concat(
        [people.assign(key=k.reindex(people.index)) for k in (email, person_id, name_key, local)]
    )
    keys = keys[keys["key"].notna()].sort_values("line", kind="stable")
    return keys.drop_duplicates("key").set_index("key")[["person_key", "leaver"]]


def custodian_resolver(people: Frame) -> Any:
    """The engine's custodian dictionary: each distinct custodian text resolved once
    (whole text, username, name before the parentheses, e-mail local part → HR)."""

    def resolve(raw: Series) -> Frame:
        codes, uniques = pd.factorize(raw)
        text = pd.Series(uniques, dtype="str")
        user, local, full = custodian_parts(text)
        name = text_key(text.str.replace(WS + r"*\([^()]*\)" + WS + "*$", "", regex=True))
        person: Series = null_column(text.index)
        leaver = pd.Series(np.nan, index=text.index, dtype="object")
        for k in (full, user, name, local):
            hit = people.reindex(k)
            take = person.isna() & pd.Series(hit["person_key"].notna().to_numpy(), text.index)
            person = person.where(~take, pd.Series(hit["person_key"].to_numpy(), text.index))
            leaver = leaver.where(~take, pd.Series(hit["leaver"].to_numpy(), text.index))
        d = pd.DataFrame(
            {
                "custodian_key": person.fillna(user).fillna(local).fillna(full),
                "custodian_alt": name.where(user.notna()).fillna(local).fillna(full),
                "custodian_leaver": leaver.fillna(False).astype(bool),
            }
        )
        rows = d.reindex(codes).set_axis(raw.index)
        rows.loc[codes < 0, "custodian_leaver"] = False
        return rows

    return resolve


# --- asset sources


def source_records(
    snapshot: Path, src: dict[str, Any], settings: EngineSection, people: Frame
) -> Frame:
    """One asset source's usable, in-scope records (the engine's source_records minus
    what it sets aside), with its own asset key when it is in a register role."""
    raw = pd.read_parquet(snapshot / src["file"])
    rec = normalize_records(raw, src, settings, custodian_resolver(people))
    name, role, columns = str(src["name"]), str(src["role"]), dict(src["columns"])
    rec["role"] = role
    value_column = columns.get("value")
    rec["value_is_cost"] = isinstance(value_column, str) and bool(_COST_HEADER.search(value_column))
    # the preset's exclusions: not company hardware
    excluded = pd.Series(False, index=rec.index)
    for field, pattern, _reason in PRESETS.get(str(src["preset"]), GENERIC).exclude:
        header = columns.get(field)
        if isinstance(header, str):
            text = raw.loc[rec.index, header].astype("str").str.strip(" ").str.lower()
            excluded |= text.str.fullmatch(pattern).fillna(False).astype(bool)
    rec = rec[~excluded]
    if role in settings.register_roles:
        rec["asset_key"] = (
            rec["asset_tag"]
            .fillna("SN:" + rec["manufacturer_key"].fillna("") + "|" + rec["serial"])
            .fillna("HW:" + rec["hardware_uuid"].fillna(rec["mac"]))
            .fillna("ID:" + name + "|" + rec["record_id"])
        )
    else:
        rec["asset_key"] = null_column(rec.index)
    return rec


def _near(unlinked: Frame, reg: Frame) -> Frame:
    """Records no identifier links, pointed at a register asset by a look-alike
    serial, a shortened serial (5 characters at least) or a shortened asset tag."""
    parts: list[Frame] = []
    us = unlinked.loc[unlinked["serial"].notna(), ["source", "line", "serial"]]
    rs = reg[reg["serial"].notna()]
    cols = ["source", "line", "asset_key", "why", "reg_serial", "reg_tag"]
    if len(us):
        rs = rs[["asset_key", "serial", "asset_tag"]].rename(
            columns={"serial": "reg_serial", "asset_tag": "reg_tag"}
        )
        fold = us.assign(k=us["serial"].str.translate(LOOKALIKE))
        hit = fold.merge(rs.assign(k=rs["reg_serial"].str.translate(LOOKALIKE)), on="k")
        parts.append(hit.assign(why="look-alike serial")[cols])
        long = us[us["serial"].str.len() >= 5]
        for end, test in ((slice(-5, None), "endswith"), (slice(0, 5), "startswith")):
            hit = long.assign(k=long["serial"].str[end]).merge(
                rs.assign(k=rs["reg_serial"].str[end]), on="k"
            )
            hit = hit[hit["reg_serial"] != hit["serial"]]
            within = [
                getattr(r, test)(u) or getattr(u, test)(r)
                for r, u in zip(hit["reg_serial"].tolist(), hit["serial"].tolist(), strict=True)
            ]
            parts.append(hit[np.array(within, dtype=bool)].assign(why="shortened serial")[cols])
    ut = unlinked.loc[unlinked["asset_tag"].notna(), ["source", "line", "asset_tag"]]
    if len(ut):
        rt = reg[reg["asset_tag"].notna()][["asset_key", "serial", "asset_tag"]]
        rt = rt.rename(columns={"serial": "reg_serial", "asset_tag": "reg_tag"})

        def core(s: Series) -> Series:
            c = s.str.extract(r"([0-9]+)$", expand=False).str.lstrip("0")
            return c.where(c != "")

        hit = ut.assign(k=core(ut["asset_tag"])).merge(rt.assign(k=core(rt["reg_tag"])), on="k")
        hit = hit[hit["k"].notna() & (hit["reg_tag"] != hit["asset_tag"])]
        within = [
            r.endswith(u) or u.endswith(r)
            for r, u in zip(hit["reg_tag"].tolist(), hit["asset_tag"].tolist(), strict=True)
        ]
        parts.append(hit[np.array(within, dtype=bool)].assign(why="shortened asset tag")[cols])
    near = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    g = near.groupby(["source", "line"])
    probable = g.agg(
        probable_key=("asset_key", "min"),
        n=("asset_key", "nunique"),
        probable_reason=("why", "min"),
        probable_serial=("reg_serial", "min"),
        probable_tag=("reg_tag", "min"),
    )
    return probable[probable["n"] == 1].drop(columns="n")


def link_others(reg_rec: Frame, others: Frame) -> Frame:
    """The engine's other_links: records of the other sources with the register asset
    they belong to (tag, then serial, UUID, MAC), the tier, a probable asset for the
    unlinked, and stale MDM enrolments set aside."""

    def lookup(field: str) -> Series:
        r = reg_rec[reg_rec[field].notna()]
        return r.groupby(field)["asset_key"].min()

    key = others["asset_tag"].map(lookup("asset_tag"))
    tier = pd.Series("asset_tag", index=others.index, dtype="str").where(key.notna())
    for field in ("serial", "hardware_uuid", "mac"):
        left = key.isna() & others[field].notna()
        if left.any():
            found = others.loc[left, field].map(lookup(field)).astype("str")
            key = key.fillna(found)
            tier = tier.where(~found.reindex(others.index).notna(), field)
    own = others["asset_key"]
    linked = others.assign(
        asset_key=key.fillna(own),
        link_tier=tier.where(
            key.notna(), pd.Series("register", index=others.index).where(own.notna())
        ),
    )
    unlinked = linked[key.isna()]
    probable = _near(unlinked, reg_rec) if len(unlinked) else None
    linked = (
        linked.join(probable, on=["source", "line"])
        if probable is not None and len(probable)
        else linked.assign(
            probable_key=null_column(linked.index),
            probable_reason=null_column(linked.index),
            probable_serial=null_column(linked.index),
            probable_tag=null_column(linked.index),
        )
    )
    # an MDM holding one device twice: the latest check-in is the device
    mdm = linked[linked["role"] == "mdm"]
    k = mdm["source"] + "|" + mdm["asset_key"].fillna("SN:" + mdm["serial"])
    twice = k.notna() & k.duplicated(keep=False)
    if twice.any():
        dup = mdm[twice].assign(k=k[twice])
        dup = dup.sort_values(
            ["k", "last_seen", "line"], ascending=[True, False, True], na_position="last"
        )
        stale = dup.duplicated("k", keep="first")
        linked = linked.drop(index=dup.index[stale.to_numpy()])
    return linked


# --- the register


def build_register(
    links: Frame, sources: list[tuple[str, str]], primary: str, settings: EngineSection
) -> Frame:
    """One row per register asset; each field from the first source that has it."""
    wanted = ["asset_key", "source", "line", "last_seen", *REGISTER_PICKED]
    wanted += [c for f in REGISTER_PICKED for c in COMPANIONS.get(f, ())]
    first = links.loc[links["asset_key"].notna(), wanted].sort_values("line", kind="stable")
    picks = {
        name: first[first["source"] == name].drop_duplicates("asset_key").set_index("asset_key")
        for name, _ in sources
    }
    base = picks[primary]
    aligned = {n: (p if n == primary else p.reindex(base.index)) for n, p in picks.items()}
    reg = pd.DataFrame(index=base.index)
    for f in REGISTER_PICKED:
        value: Series | None = None
        source: Series = null_column(base.index)
        extras: dict[str, Series] = {}
        for n in precedence(settings, f, sources):
            cand = aligned[n][f]
            take = cand.notna() if value is None else value.isna() & cand.notna()
            value = cand.where(take) if value is None else value.where(~take, cand)
            source = source.where(~take, n)
            for extra in COMPANIONS.get(f, ()):
                got = aligned[n][extra].where(take)
                extras[extra] = got if extra not in extras else extras[extra].where(~take, got)
        reg[f] = value
        reg[f"{f}_source"] = source
        for extra, got in extras.items():
            reg[extra] = got
    names = sorted(n for n, _ in sources)
    last: Series | None = None
    for n in names:
        seen = aligned[n]["last_seen"]
        last = seen if last is None else last.mask(seen.notna() & ~(last >= seen), seen)
    assert last is not None
    reg["last_seen"] = last
    last_source: Series = null_column(base.index)
    for n in reversed(names):
        last_source = last_source.mask((aligned[n]["last_seen"] == last).fillna(False), n)
    reg["last_seen_source"] = last_source
    held = [pd.Series(n, index=base.index).where(aligned[n]["line"].notna()) for n in names]
    reg["sources"] = concat_ws(",", *held)
    return reg.reset_index()


# --- variance types several sources produce


def mdm_views(links: Frame, settings: EngineSection, as_of: date) -> tuple[Frame, Frame]:
    """(MDM check-ins within active_within_days per asset, the first MDM user)."""
    mdm = links[links["asset_key"].notna() & (links["role"] == "mdm")]
    since = pd.Timestamp(as_of - timedelta(days=settings.active_within_days), tz="UTC")
    act = mdm[(mdm["last_seen"] >= since).fillna(False)]
    act = act.sort_values(["last_seen", "source"], ascending=False)
    ma = act.drop_duplicates("asset_key").set_index("asset_key")[["last_seen", "source"]]
    ma = ma.rename(columns={"last_seen": "ma_last_seen", "source": "ma_source"})
    users = mdm[mdm["custodian_key"].notna()].sort_values(["source", "line"])
    mu = users.drop_duplicates("asset_key").set_index("asset_key")
    mu = mu[["custodian", "custodian_key", "custodian_alt", "source"]].rename(
        columns=lambda c: "mu_" + c
    )
    return ma, mu


def source_checks(links: Frame, reg: Frame, matches: Frame, ma: Frame, mu: Frame) -> list[Frame]:
    """status_condition_mismatch (lost yet checking in), custodian_mismatch; ``ma``,
    ``mu``: see mdm_views."""
    found = found_assets(matches).set_index("asset_key")
    for name in ("found_custodian", "found_custodian_key"):
        if name not in found:
            found[name] = null_column(found.index)
    found = found[["found_location", "epc", "session_id", "observed_serial",
                   "found_custodian", "found_custodian_key"]].assign(found=True)  # fmt: skip
    regi = reg.set_index("asset_key", drop=False)
    frames: list[Frame] = []

    # reported missing or stolen, not counted, yet the MDM sees it checking in
    lost = status_groups(links, ["missing", "stolen"])
    b = regi.join(lost, how="inner").join(ma, how="inner").join(found[["found"]])
    b = b[b["found"].isna()]
    day = strftime(b["ma_last_seen"], "%Y-%m-%d")
    frames.append(
        candidates(
            "status_condition_mismatch", b.index,
            asset_key=b["asset_key"], detail_key="discovery", asset_tag=b["asset_tag"],
            serial=b["serial"], manufacturer=b["manufacturer"], model=b["model"],
            expected="Status: " + b["labels"] + " (" + b["by"] + ")",
            found="Active in " + b["ma_source"] + ": last seen " + day,
            expected_location=b["location"], source=b["by"], value=b["value"],
            category=b["category"],
            detail="Recorded as " + b["labels"] + " (" + b["statuses"] + ") in " + b["by"]
            + " but " + b["ma_source"] + " saw it check in on " + day
            + ": find the device and correct the record.",
            evidence=json_objects(
                recorded_status=b["statuses"], status_label=b["labels"],
                status_sources=b["by"], discovery_source=b["ma_source"],
                discovery_last_seen=strftime(b["ma_last_seen"], TS_FORMAT),
            ),
        )
    )  # fmt: skip

    # another user than the register's (the count's, the MDM's), or a leaver
    c = reg[reg["custodian_key"].notna()].set_index("asset_key", drop=False)
    c = c.join(found).join(mu)
    other = (c["mu_source"] != c["custodian_source"]).fillna(False)
    c.loc[~other, list(mu.columns)] = np.nan
    alt_equal = c["mu_custodian_alt"] == c["custodian_alt"]
    same = (
        (c["mu_custodian_key"] == c["custodian_key"])
        | (c["mu_custodian_key"] == c["custodian_alt"])
        | (c["mu_custodian_alt"] == c["custodian_key"])
    ).fillna(False)
    mu_differs = (
        c["mu_custodian_key"].notna() & ~same
        & c["mu_custodian_alt"].notna() & c["custodian_alt"].notna() & ~alt_equal.fillna(False)
    )  # fmt: skip
    count_differs = (
        c["found_custodian_key"].notna() & (c["found_custodian_key"] != c["custodian_key"])
    ).fillna(False)
    leaver = c["custodian_leaver"].fillna(False).astype(bool)
    flag = count_differs | mu_differs | leaver
    c, count_differs, mu_differs = c[flag], count_differs[flag], mu_differs[flag]
    # the first that applies: the count's user, the MDM's, the leaver
    found_text = (
        ("User: " + c["custodian"] + " has left (HR)")
        .mask(mu_differs, "User: " + c["mu_custodian"] + " (" + c["mu_source"] + ")")
        .mask(
            count_differs,
            concat_ws(" / ", "Serial: " + c["observed_serial"], "User: " + c["found_custodian"]),
        )
    )
    detail = (
        ("Assigned to " + c["custodian"] + ", who has left: recover the device or reassign it.")
        .mask(
            mu_differs,
            c["mu_source"] + " says " + c["mu_custodian"] + " uses the device, the register "
            "assigns it to " + c["custodian"] + ": confirm who holds it.",
        )
        .mask(
            count_differs,
            "The count found the device with " + c["found_custodian"] + ", the register "
            "assigns it to " + c["custodian"] + ": confirm the handoff with both.",
        )
    )
    frames.append(
        candidates(
            "custodian_mismatch", c.index,
            asset_key=c["asset_key"], detail_key="", asset_tag=c["asset_tag"],
            serial=c["serial"], epc=c["epc"], manufacturer=c["manufacturer"], model=c["model"],
            expected=concat_ws(" / ", "Serial: " + c["serial"], "User: " + c["custodian"]),
            found=found_text, expected_location=c["location"],
            found_location=c["found_location"], source=c["custodian_source"],
            session_id=c["session_id"], value=c["value"], category=c["category"],
            detail=detail,
            evidence=json_objects(
                register_custodian=c["custodian"], custodian_source=c["custodian_source"],
                found_custodian=c["found_custodian"], found_session=c["session_id"],
                discovery_custodian=c["mu_custodian"], discovery_source=c["mu_source"],
                leaver=leaver[flag],
            ),
        )
    )  # fmt: skip
    return frames


def _model_within(a: Series, b: Series) -> Series:
    flags = [
        x == y or x.startswith(y + " ") or y.startswith(x + " ")
        for x, y in zip(a.tolist(), b.tolist(), strict=True)
    ]
    return pd.Series(flags, index=a.index, dtype=bool)


def source_conflicts(links: Frame, reg: Frame) -> list[Frame]:
    """source_conflict: fields the sources disagree on, and records only another
    source holds; probable_match: a source's record pointing at an asset by a
    look-alike or shortened identifier."""
    frames: list[Frame] = []
    several = reg[reg["sources"].str.contains(",", regex=False)]
    lcols = [
        "asset_key",
        "source",
        "serial",
        "manufacturer",
        "manufacturer_key",
        "model",
        "model_key",
        "location",
        "status",
        "status_label",
        "value",
        "value_is_cost",
    ]
    r = several.drop(columns=["source"], errors="ignore")
    j = links[lcols].merge(r, on="asset_key", suffixes=("", "_r"))
    rows: list[Frame] = []
    for f in CONFLICT_FIELDS:
        if f == "serial":
            diff = j["serial"].notna() & j["serial_r"].notna() & (j["serial"] != j["serial_r"])
        elif f == "manufacturer":
            a, b = j["manufacturer_key"], j["manufacturer_key_r"]
            diff = a.notna() & b.notna() & (a != b)
        elif f == "model":
            a, b = j["model_key"], j["model_key_r"]
            diff = a.notna() & b.notna() & (a != b)
            diff[diff] = ~_model_within(a[diff], b[diff])
        elif f == "location":
            a, b = j["location"], j["location_r"]
            diff = a.notna() & b.notna() & (a != b)
            diff[diff] = ~loc_within(a[diff], b[diff])
        elif f == "status":
            diff = j["status"].notna() & j["status_r"].notna() & (j["status"] != j["status_r"])
        else:
            a, b = j["value"], j["value_r"]
            diff = (
                j["value_is_cost"].fillna(False).astype(bool)
                & j["value_is_cost_r"].fillna(False).astype(bool)
                & ((a - b).abs() > np.maximum(1.0, 0.01 * b.abs()))
            )  # fmt: skip
        diff = (diff & (j["source"] != j[f"{f}_source"])).fillna(False).astype(bool)
        if not diff.any():
            continue
        d = j[diff]
        if f == "status":
            text = d["status_label"].fillna(d["status"])
        elif f == "value":
            text = pd.Series([repr(float(v)) for v in d["value"]], index=d.index, dtype="str")
        else:
            text = d[f]
        rows.append(pd.DataFrame({"asset_key": d["asset_key"], "field": f,
                                  "source": d["source"], "value": text}))  # fmt: skip
    if rows:
        cr = pd.concat(rows, ignore_index=True).sort_values(["source", "value"])
        cr["pair"] = cr["source"] + ": " + cr["value"]
        g = cr.groupby(["asset_key", "field"], sort=False)
        cg = pd.DataFrame(
            {
                "found": g["pair"].agg("; ".join),
                "by": g["source"].agg(lambda x: ",".join(sorted(set(x)))),
            }
        ).reset_index()
        cg = cg.merge(reg, on="asset_key")
        shown = {
            "serial": cg["serial"], "manufacturer": cg["manufacturer"], "model": cg["model"],
            "location": cg["location"],
            "value": pd.Series([repr(float(v)) for v in cg["value"]], index=cg.index),
            "status": cg["status_label"],
        }  # fmt: skip
        expected = null_column(cg.index)
        for f, text in shown.items():
            own = cg[f"{f}_source"]
            expected = expected.where(cg["field"] != f, f + ": " + text + " (" + own + ")")
        frames.append(
            candidates(
                "source_conflict", cg.index,
                asset_key=cg["asset_key"], detail_key=cg["field"], asset_tag=cg["asset_tag"],
                serial=cg["serial"], manufacturer=cg["manufacturer"], model=cg["model"],
                expected=expected, found=cg["field"] + ": " + cg["found"],
                expected_location=cg["location"], source=cg["by"], value=cg["value"],
                category=cg["category"],
                detail="Sources disagree on " + cg["field"] + ": the register takes the value "
                "of its source of truth; correct the other source(s).",
                evidence=json_objects(field=cg["field"], others=cg["found"]),
            )
        )  # fmt: skip

    # a device another source holds and the register lacks
    u = links[links["asset_key"].isna() & links["probable_key"].isna()]
    key = (
        u["asset_tag"]
        .fillna("SN:" + u["manufacturer_key"].fillna("") + "|" + u["serial"])
        .fillna("HW:" + u["hardware_uuid"].fillna(u["mac"]))
        .fillna("ID:" + u["source"] + "|" + u["record_id"])
    )
    frames.append(
        candidates(
            "source_conflict", u.index,
            asset_key=key, detail_key="presence:" + u["source"], asset_tag=u["asset_tag"],
            serial=u["serial"], manufacturer=u["manufacturer"], model=u["model"],
            expected="No register record",
            found=concat_ws(" / ", "In " + u["source"], "Serial: " + u["serial"],
                             "Tag: " + u["asset_tag"]),
            source=u["source"], value=u["value"], category=u["category"],
            detail=u["source"] + " holds a device the register does not: register it or "
            "remove it from " + u["source"] + ".",
            evidence=json_objects(source=u["source"], line=u["line"], hostname=u["hostname"],
                           custodian=u["custodian"], record_id=u["record_id"]),
        )
    )  # fmt: skip

    # a source's record pointing at an asset by a look-alike or shortened identifier
    n = links[links["asset_key"].isna() & links["probable_key"].notna()]
    n = n.merge(reg.add_prefix("r_"), left_on="probable_key", right_on="r_asset_key")
    line = n["line"].astype("str")
    frames.append(
        candidates(
            "probable_match", n.index,
            asset_key=n["r_asset_key"],
            detail_key="source:" + n["source"] + "|"
            + n["serial"].fillna(n["asset_tag"]).fillna(line),
            asset_tag=n["r_asset_tag"], serial=n["r_serial"], manufacturer=n["r_manufacturer"],
            model=n["r_model"],
            expected=concat_ws(" / ", "Tag: " + n["r_asset_tag"], "Serial: " + n["r_serial"]),
            found=concat_ws(" / ", "Tag: " + n["asset_tag"], "Serial: " + n["serial"])
            + " (" + n["source"] + ")",
            expected_location=n["r_location"], source=n["source"], value=n["r_value"],
            category=n["r_category"],
            detail=n["source"] + " line " + line + " carries a " + n["probable_reason"]
            + " of this asset: confirm it on the device and correct " + n["source"]
            + " (never merged automatically).",
            evidence=json_objects(
                source=n["source"], line=n["line"], reason=n["probable_reason"],
                source_asset_tag=n["asset_tag"], source_serial=n["serial"],
                register_asset_tag=n["r_asset_tag"], register_serial=n["r_serial"],
                register_source=n["r_serial_source"].fillna(n["r_asset_tag_source"]),
            ),
        )
    )  # fmt: skip
    return frames


def reconcile_pandas_sources(
    snapshot: Path,
    session: Path,
    out: Path,
    settings: EngineSection,
    run_id: str,
    as_of: date,
) -> Frame:
    """The whole baseline over every source of the snapshot; returns the variance log
    it wrote."""
    meta = json.loads((snapshot / "snapshot.json").read_text(encoding="utf-8"))
    hr = [s for s in meta["sources"] if s["role"] == "hr"]
    assets = [s for s in meta["sources"] if s["role"] != "hr"]
    people = pd.concat(
        [person_keys(pd.read_parquet(snapshot / s["file"]), s, as_of) for s in hr]
    ) if hr else pd.DataFrame({"person_key": [], "leaver": []}, dtype="object")  # fmt: skip
    people = people[~people.index.duplicated()]
    sources = [(str(s["name"]), str(s["role"])) for s in assets]
    register_roles: list[tuple[str, str]] = [
        (n, r) for n, r in sources if r in settings.register_roles
    ]
    primary = precedence(settings, "asset_tag", register_roles)[0]
    records = {str(s["name"]): source_records(snapshot, s, settings, people) for s in assets}
    reg_rec = records[primary].assign(link_tier="register")
    others = [r for n, r in records.items() if n != primary]
    links = pd.concat([reg_rec, *(link_others(reg_rec, o) for o in others)], ignore_index=True)
    reg = build_register(links, sources, primary, settings)

    items = observed_items(session, settings)
    matches = match(items, reg)
    ma, mu = mdm_views(links, settings, as_of)
    core = classify(reg_rec, reg, items, matches, settings, as_of, links=links, discovery=ma)
    extra = source_checks(links, reg, matches, ma, mu) + source_conflicts(links, reg)
    cand = pd.concat([core, *extra], ignore_index=True)
    log = variance_log(cand, settings, run_id, as_of)
    write_outputs(log, reg, matches, out)
    return log
