"""Writing the invented fleet's sources, each as its system writes it: the Snipe-IT
register (with a row lacking any identifier, a row with a stray delimiter and the
totals footer), the Intune device export, the fixed-asset register workbook, the RFID
count session file exactly as the daemon writes it, and the manual count sheet (with a
row lacking a location). Rows that must be refused are listed in ``bad_rows``."""

from __future__ import annotations

import csv
import json
import random
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tagsweep.domain import SESSION_FILE_COLUMNS
from tagsweep.epc import giai96_for_asset_tag
from tagsweep.hashing import sha256_file
from tagsweep.simulators.fleet_exports import formats as fmt
from tagsweep.simulators.fleet_exports.fleet import LAPTOPS, ROOMS, SITE, FleetAsset, Person
from tagsweep.simulators.fleet_exports.variances import Variances


def write_itam(
    out_dir: Path,
    register: list[FleetAsset],
    by_email: dict[str, Person],
    now: datetime,
    bad_rows: set[tuple[str, int]],
) -> Path:
    """``itam.csv``: the Snipe-IT asset export (the register)."""
    itam = out_dir / "itam.csv"
    with itam.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(fmt.SNIPEIT_COLUMNS)
        line = 1
        for a in register:
            line += 1
            writer.writerow([
                a.tag, f"{a.category[:-1].lower()}-{a.tag[-6:]}", a.serial, a.manufacturer,
                a.model, a.category, fmt.snipeit_status(a.status),
                fmt.snipeit_user(by_email[a.custodian].name, a.custodian) if a.custodian else "",
                a.location, fmt.snipeit_cost(a.value), fmt.snipeit_audit(a.last_audit), a.condition,
                a.mac or "", (now - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S"),
            ])  # fmt: skip
        # a row with a placeholder serial and no tag: no usable identifier
        line += 1
        writer.writerow(["", "unknown-box", "To Be Filled By O.E.M.", "Dell", "", "Laptops",
                         "Ready to Deploy", "", ROOMS[0], "0", "", "", "", ""])  # fmt: skip
        bad_rows.add(("itam.csv", line))
        # a row with a stray delimiter: one field too many
        line += 1
        fh.write("AST-999999,broken,ABC1234,Dell,Latitude 5440,Laptops,Deployed,,"
                 f"{ROOMS[0]},1000.00,,Good,,,extra\r\n")  # fmt: skip
        bad_rows.add(("itam.csv", line))
        fmt.snipeit_footer(writer, sum(a.value for a in register))
    return itam


def write_intune(
    out_dir: Path,
    assets: list[FleetAsset],
    v: Variances,
    active_people: list[Person],
    *,
    rng: random.Random,
    now: datetime,
) -> Path:
    """``intune.csv``: the Intune device export of the laptops (MDM / discovery)."""
    intune = out_dir / "intune.csv"
    with intune.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(fmt.INTUNE_COLUMNS)
        for a in assets:
            if not a.in_mdm:
                continue
            if a.status == "Archived" and a.tag not in v.mdm_active_retired:
                continue
            if a.status == "Archived":
                seen = fmt.intune_checkin(now - timedelta(days=3))
            else:
                seen = fmt.intune_checkin(now - timedelta(days=rng.randrange(1, 10)))
            upn = v.mdm_user.get(a.tag, a.custodian or "")
            serial = "System Serial Number" if a.tag in v.mac_linked else a.serial
            writer.writerow([
                f"LT-{a.tag[-6:]}", serial, LAPTOPS[a.manufacturer][0],
                v.mdm_model.get(a.tag, a.model), upn, seen,
                f"{rng.getrandbits(128):032x}", a.mac or "", "Windows", "Corporate",
            ])  # fmt: skip
        for mfr, serial, uuid, mac in v.mdm_only:
            writer.writerow([f"LT-{uuid[:6]}", serial, LAPTOPS[mfr][0], LAPTOPS[mfr][1][0],
                             rng.choice(active_people).email,
                             fmt.intune_checkin(now - timedelta(days=2)), uuid,
                             mac or "", "Windows", "Corporate"])  # fmt: skip
        fmt.intune_not_hardware(writer, rng, now, active_people[0].email)
    return intune


def write_far(out_dir: Path, assets: list[FleetAsset], v: Variances) -> Path:
    """``far.xlsx``: the fixed-asset register workbook (finance: book value, disposals)."""
    import openpyxl

    far = out_dir / "far.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Register"
    sheet.append(["Asset Number", "Serial Number", "Manufacturer", "Net Book Value",
                  "Disposal Status", "Cost Centre"])  # fmt: skip
    for a in assets:
        disposal = "Disposed" if a.status == "Archived" else None
        sheet.append([a.tag, v.far_serial.get(a.tag, a.serial), a.manufacturer,
                      round(a.value * 0.6, 2), disposal, "CC-100"])  # fmt: skip
    book.save(far)
    return far


def write_session(
    out_dir: Path,
    register: list[FleetAsset],
    v: Variances,
    *,
    rng: random.Random,
    now: datetime,
    as_of: date,
) -> Path:
    """The RFID count session file (Parquet and its JSON sidecar) as the daemon writes it."""
    session_id = f"cs-{as_of:%Y%m%d}T090000Z-0001"
    t0 = int(now.timestamp() * 1_000_000)
    rows: dict[str, list[object]] = {c: [] for c in SESSION_FILE_COLUMNS}

    def add_read(epc: str, location: str, offset_s: int) -> None:
        first = t0 + offset_s * 1_000_000
        for name, value in (
            ("session_id", session_id), ("site", SITE), ("method", "rfid"),
            ("location", location), ("epc", epc), ("asset_tag", None), ("serial", None),
            ("first_seen", first), ("last_seen", first + 1_500_000),
            ("read_count", rng.randrange(2, 40)), ("peak_rssi", -40.0 - rng.random() * 30),
            ("reader", "handheld-1"), ("operator", "auditor-a"),
        ):  # fmt: skip
            rows[name].append(value)

    offset = 0
    for a in register:
        if a.observed_at:
            offset += 1
            add_read(giai96_for_asset_tag(a.tag), a.observed_at, offset)
    for epc, location in v.unrecorded_epcs:
        offset += 1
        add_read(epc, location, offset)
    types = {
        "string": pa.string(),
        "timestamp[us, UTC]": pa.timestamp("us", tz="UTC"),
        "int64": pa.int64(),
        "float32": pa.float32(),
    }
    table = pa.table({c: pa.array(rows[c], types[t]) for c, t in SESSION_FILE_COLUMNS.items()})
    session = out_dir / f"{session_id}.parquet"
    pq.write_table(table, session)
    digest = sha256_file(session)
    (out_dir / f"{session_id}.json").write_text(
        json.dumps(
            {
                "session_id": session_id,
                "site": SITE,
                "operator": "auditor-a",
                "scope": [SITE],
                "started": now.isoformat(),
                "ended": (now + timedelta(seconds=offset + 5)).isoformat(),
                "row_count": table.num_rows,
                "sha256": digest,
                "gateway": "gw-dc1",
                "tagsweep_version": "0.1.0",
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return session


def write_count_sheet(
    out_dir: Path,
    assets: list[FleetAsset],
    v: Variances,
    by_email: dict[str, Person],
    bad_rows: set[tuple[str, int]],
) -> Path:
    """``count_sheet.csv``: the manual count sheet with serials, users and conditions."""
    sheet_path = out_dir / "count_sheet.csv"
    with sheet_path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["location", "asset_tag", "serial", "custodian", "condition",
                         "operator"])  # fmt: skip
        line = 1
        for a in assets:
            if not a.on_sheet:
                continue
            line += 1
            user = v.sheet_user.get(a.tag)
            if user is None and a.custodian:
                # names on paper, resolved to the same person through HR
                user = by_email[a.custodian].name
            writer.writerow([a.observed_at or a.location, a.tag, v.identity.get(a.tag, a.serial),
                             user or "", v.sheet_condition.get(a.tag, a.condition),
                             "auditor-b"])  # fmt: skip
        for tag, typo in v.probable.items():
            a = next(x for x in assets if x.tag == tag)
            line += 1
            writer.writerow([a.location, "", typo, "", a.condition, "auditor-b"])
        line += 1
        writer.writerow([ROOMS[2], "", v.sheet_only_serial, "", "Good", "auditor-b"])
        line += 1
        writer.writerow(["", "AST-000001", "", "", "", "auditor-b"])  # no location
        bad_rows.add(("count_sheet.csv", line))
    return sheet_path
