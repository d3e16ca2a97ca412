"""Systems of record of an invented fleet that lie in known ways: exports with injected
variances + answer key (for the world model's own assets see ``world_exports.py``).

Generates, for one site, what the sources of a real reconciliation look like:

* ``itam.csv`` — a Snipe-IT asset export (the register), with a custom "Condition" and
  "MAC Address" field;
* ``intune.csv`` — an Intune device export for the laptops (MDM / discovery);
* ``far.xlsx`` — a fixed-asset register workbook (finance: book value, disposals);
* ``hr.json`` — an HR directory in the Microsoft Graph envelope (leavers included);
* ``session.parquet`` + ``session.json`` — an RFID count session file exactly as the
  daemon writes it (GIAI-96 EPCs under company prefix 0614141);
* ``count_sheet.csv`` — a manual count sheet with serials, users and conditions.

Serial numbers follow the vendors' formats (Dell 7-character service tags, HP
10-character serials, Lenovo 8-character, Apple 12-character), manufacturers are
spelled differently per source ("Dell Inc." vs "Dell"), some MDM devices report BIOS
placeholder serials and are linked by MAC, custodians are written as names in the
register and as UPNs in the MDM. On top of that clean baseline, every variance type of
the seed method is injected a known number of times, and the answer key lists the
(variance type, asset key) pairs a correct engine must report — no more, no fewer.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from tagsweep.domain import SESSION_FILE_COLUMNS
from tagsweep.epc import giai96_for_asset_tag
from tagsweep.hashing import sha256_file

_LOOKALIKE = str.maketrans("OISBZ", "01582")
_SWAP = {"0": "O", "1": "I", "5": "S", "8": "B", "2": "Z", "O": "0", "I": "1", "S": "5"}

DELL_CHARS = "0123456789BCDFGHJKLMNPQRSTVWXYZ"
ALNUM = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"

LAPTOPS = {
    "Dell": ("Dell Inc.", ["Latitude 5440", "Latitude 7440"]),
    "HP": ("HP Inc.", ["EliteBook 840 G10", "ProBook 450 G9"]),
    "Lenovo": ("LENOVO", ["ThinkPad T14 Gen 4", "ThinkPad X1 Carbon Gen 11"]),
    "Apple": ("Apple", ["MacBook Pro 14", "MacBook Air 13"]),
}
SERVERS = {"Dell": ["PowerEdge R650", "PowerEdge R750"], "HP": ["ProLiant DL380 Gen10"]}

SITE = "DC1"
ROOMS = [f"{SITE}/Room {n}" for n in range(101, 113)]
OUT_OF_SCOPE = [f"HQ/Floor 2/Room {n}" for n in range(201, 205)]
FIRST_NAMES = ["Ana", "Ben", "Chloe", "Dev", "Emma", "Finn", "Grace", "Hugo", "Ines", "Jon"]
LAST_NAMES = ["Ng", "Owens", "Patel", "Quinn", "Roth", "Silva", "Tran", "Ueda", "Vos", "Wolf"]


@dataclass(slots=True)
class FleetAsset:
    tag: str
    manufacturer: str  # canonical
    model: str
    category: str
    serial: str
    location: str
    status: str  # Snipe-IT status label
    custodian: str | None  # person key (email)
    condition: str
    value: float
    mac: str | None
    last_audit: str | None
    in_mdm: bool = False
    observed_at: str | None = None  # where the RFID count sees it
    on_sheet: bool = False  # whether the manual count sheet lists it


@dataclass(slots=True)
class Person:
    person_id: str
    email: str
    name: str
    leaver: bool = False


@dataclass(slots=True)
class GeneratedExports:
    """Paths of everything written, the answer key and the run parameters."""

    directory: Path
    sources: dict[str, tuple[str, Path]]  # name → (preset, file)
    counts: list[Path]
    answer_key: set[tuple[str, str]]
    bad_rows: set[tuple[str, int]]  # (file name, line)
    as_of: date
    scope: list[str]
    injected: dict[str, int] = field(default_factory=dict)


class _Serials:
    """Vendor-format serials, unique even after folding look-alike characters."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.folded: set[str] = set()

    def _draw(self, manufacturer: str) -> str:
        r = self.rng
        if manufacturer == "Dell":
            return "".join(r.choice(DELL_CHARS) for _ in range(7))
        if manufacturer == "HP":
            return r.choice(["5CG", "CND", "MXL"]) + "".join(r.choice(ALNUM) for _ in range(7))
        if manufacturer == "Lenovo":
            return r.choice(["PF", "PC", "R9"]) + "".join(r.choice(ALNUM) for _ in range(6))
        return r.choice(["C02", "FVF", "C1M"]) + "".join(r.choice(ALNUM) for _ in range(9))

    def new(self, manufacturer: str, *, with_lookalike: bool = False) -> str:
        while True:
            serial = self._draw(manufacturer)
            if with_lookalike and not any(c in _SWAP for c in serial):
                continue
            folded = serial.translate(_LOOKALIKE)
            if folded not in self.folded:
                self.folded.add(folded)
                return serial

    def typo_of(self, serial: str) -> str:
        """The serial with one character misread as its look-alike."""
        for i, ch in enumerate(serial):
            if ch in _SWAP:
                return serial[:i] + _SWAP[ch] + serial[i + 1 :]
        raise ValueError(f"{serial} has no look-alike character")


def _mac(rng: random.Random) -> str:
    return ":".join(f"{rng.randrange(256):02X}" for _ in range(6))


#: Columns of an Intune "All devices" CSV export, in the portal's order.
INTUNE_COLUMNS: Final = (
    "Device name", "Serial number", "Manufacturer", "Model", "Primary user UPN",
    "Last check-in", "Azure AD Device ID", "Wi-Fi MAC", "OS", "Ownership",
)  # fmt: skip

SNIPEIT_COLUMNS: Final = (
    "Asset Tag", "Asset Name", "Serial", "Manufacturer", "Model", "Category", "Status",
    "Checked Out To", "Location", "Purchase Cost", "Last Audit", "Condition",
    "MAC Address", "Updated At",
)  # fmt: skip


# -- what the systems actually write (see tests/engine/real_exports/SOURCES.md) ------


def snipeit_status(label: str) -> str:
    """Snipe-IT's UI export writes a checked-out asset's status as its label plus the
    status meta "Deployed", an archived one as label plus "Archived"."""
    if label == "Deployed":
        return "Ready to Deploy Deployed"
    if label == "Archived":
        return "Archived Archived"
    return label


def snipeit_cost(value: float) -> str:
    """A purchase cost as the UI shows it: currency sign and thousands separators."""
    return f"${value:,.2f}"


def snipeit_audit(stamp: str | None) -> str:
    """ "Last Audit" on the UI's 12-hour clock ("2026-06-02 10:14 AM")."""
    if not stamp:
        return ""
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").strftime("%Y-%m-%d %I:%M %p")


def snipeit_user(name: str, email: str) -> str:
    """ "Checked Out To" as the UI writes a user: "First Last (username)"."""
    return f"{name} ({email.split('@', maxsplit=1)[0]})"


def snipeit_footer(writer: Any, total: float) -> None:
    """The totals row the UI's table export appends (a note at freeze, not a record)."""
    row = [""] * len(SNIPEIT_COLUMNS)
    row[SNIPEIT_COLUMNS.index("Location")] = "Total"
    row[SNIPEIT_COLUMNS.index("Purchase Cost")] = snipeit_cost(total)
    writer.writerow(row)


def intune_checkin(when: datetime) -> str:
    """Intune's export writes "Last check-in" with seven fractional digits."""
    return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond:06d}0"


def intune_not_hardware(writer: Any, rng: random.Random, now: datetime, upn: str) -> None:
    """A personal phone and a Windows 365 Cloud PC, enrolled in Intune but not company
    hardware: the engine leaves them out with a note."""
    writer.writerow([
        "iPhone", f"F2L{rng.getrandbits(36):09X}", "Apple", "iPhone 14", upn,
        intune_checkin(now - timedelta(days=1)), f"{rng.getrandbits(128):032x}", "", "iOS",
        "Personal",
    ])  # fmt: skip
    user = upn.split("@", maxsplit=1)[0][:6]
    writer.writerow([
        f"CPC-{user}-{rng.getrandbits(16):04X}", "0000-0002-1234-5678-9012",
        "Microsoft Corporation", "Cloud PC Enterprise 2vCPU/8GB/128GB", upn,
        intune_checkin(now - timedelta(days=1)), f"{rng.getrandbits(128):032x}", "",
        "Windows", "Corporate",
    ])  # fmt: skip


def write_hr_json(path: Path, people: Sequence[Person]) -> Path:
    """The HR export as a Graph-style JSON envelope (leavers disabled and terminated)."""
    path.write_text(
        json.dumps(
            {
                "value": [
                    {
                        "employeeId": p.person_id,
                        "mail": p.email,
                        "displayName": p.name,
                        "accountEnabled": not p.leaver,
                        "employmentStatus": "Terminated" if p.leaver else "Active",
                    }
                    for p in people
                ]
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    return path


def generate(
    out_dir: Path,
    *,
    n_assets: int = 600,
    per_type: int = 4,
    seed: int = 7,
    as_of: date = date(2026, 11, 24),
) -> GeneratedExports:
    """Write a consistent set of exports and counts with ``per_type`` injections of each
    variance type (some types in several variants) and return the answer key."""
    if n_assets < 40 * per_type:
        raise ValueError(f"n_assets must be at least {40 * per_type} for {per_type} per type")
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not a secret
    serials = _Serials(rng)
    out_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.combine(as_of, datetime.min.time(), tzinfo=UTC) + timedelta(hours=9)

    people = [
        Person(
            f"E{1000 + i}",
            f"{FIRST_NAMES[i % 10].lower()}.{LAST_NAMES[i // 10 % 10].lower()}{i}@example.com",
            f"{FIRST_NAMES[i % 10]} {LAST_NAMES[i // 10 % 10]} {i}",
        )
        for i in range(max(60, n_assets // 4))
    ]
    active_people = people[: len(people) - 10]
    leavers = people[len(people) - 10 :]
    for p in leavers:
        p.leaver = True

    def recent(days: int = 20) -> str:
        return (now - timedelta(days=rng.randrange(1, days))).strftime("%Y-%m-%d %H:%M:%S")

    assets: list[FleetAsset] = []
    for i in range(1, n_assets + 1):
        server = i % 10 == 0
        if server:
            mfr = rng.choice(sorted(SERVERS))
            model = rng.choice(SERVERS[mfr])
            category, value = "Servers", float(rng.randrange(6000, 20000))
        else:
            mfr = rng.choice(sorted(LAPTOPS))
            model = rng.choice(LAPTOPS[mfr][1])
            category, value = "Laptops", float(rng.randrange(700, 2600))
        in_scope = i % 7 != 0
        location = rng.choice(ROOMS) if in_scope else rng.choice(OUT_OF_SCOPE)
        status = "Deployed" if (server or i % 5 != 1) else "Ready to Deploy"
        custodian = None if server or status != "Deployed" else rng.choice(active_people).email
        asset = FleetAsset(
            tag=f"AST-{i:06d}",
            manufacturer=mfr,
            model=model,
            category=category,
            serial=serials.new(mfr),
            location=location,
            status=status,
            custodian=custodian,
            condition=rng.choice(["Good", "Excellent", "Fair"]),
            value=value,
            mac=None if server else _mac(rng),
            last_audit=recent(120),
            in_mdm=not server,
            observed_at=(location + "/Rack A0" + str(i % 9 + 1)) if server else location,
        )
        if not in_scope:
            asset.observed_at = None
        asset.on_sheet = in_scope and i % 3 == 0
        assets.append(asset)

    key: set[tuple[str, str]] = set()
    injected: dict[str, int] = {}
    pool = [a for a in assets if a.location in ROOMS and a.status == "Deployed"]
    rng.shuffle(pool)
    laptops = [a for a in pool if a.category == "Laptops"]
    used: set[str] = set()

    def take(candidates: list[FleetAsset], *, with_lookalike: bool = False) -> FleetAsset:
        for a in candidates:
            if a.tag in used:
                continue
            if with_lookalike and not any(c in _SWAP for c in a.serial):
                continue
            used.add(a.tag)
            return a
        raise RuntimeError("asset pool exhausted; raise n_assets")

    def expect(kind: str, asset_key: str) -> None:
        key.add((kind, asset_key))
        injected[kind] = injected.get(kind, 0) + 1

    # retired but active: found in the count, or (laptops) still checking in to MDM
    mdm_active_retired: set[str] = set()
    for n in range(per_type):
        a = take(laptops)
        a.status = "Archived"
        a.custodian = None
        if n % 2:
            a.observed_at = None
            a.on_sheet = False
            mdm_active_retired.add(a.tag)
        expect("retired_but_active", a.tag)

    # duplicate records: a second active record with the same device; it is also missing
    duplicates: list[FleetAsset] = []
    for n in range(per_type):
        a = take(pool)
        dup = dataclasses.replace(a, tag=f"AST-{900001 + n:06d}", on_sheet=False)
        dup.observed_at = None
        dup.in_mdm = False
        duplicates.append(dup)
        expect("duplicate_record", a.tag)
        expect("missing", dup.tag)

    for _ in range(per_type):
        a = take(pool)
        a.observed_at = None
        a.on_sheet = False
        expect("missing", a.tag)

    # identity conflict: the sheet reads the tag but another serial
    identity: dict[str, str] = {}
    for _ in range(per_type):
        a = take(pool)
        a.on_sheet = True
        identity[a.tag] = serials.new(a.manufacturer)
        expect("identity_conflict", a.tag)

    # probable match: tag unreadable, serial misread with a look-alike character
    probable: dict[str, str] = {}
    for _ in range(per_type):
        a = take(pool, with_lookalike=True)
        a.observed_at = None
        a.on_sheet = False
        probable[a.tag] = serials.typo_of(a.serial)
        expect("probable_match", a.tag)

    # custodian mismatch: the sheet names someone else / a leaver / MDM names someone else
    sheet_user: dict[str, str] = {}
    mdm_user: dict[str, str] = {}
    for n in range(per_type):
        a = take(laptops)
        variant = n % 3
        if variant == 0:
            a.on_sheet = True
            other = rng.choice([p for p in active_people if p.email != a.custodian])
            sheet_user[a.tag] = other.name
        elif variant == 1:
            a.custodian = rng.choice(leavers).email
        else:
            other = rng.choice([p for p in active_people if p.email != a.custodian])
            mdm_user[a.tag] = other.email
        expect("custodian_mismatch", a.tag)

    for _ in range(per_type):
        a = take(pool)
        a.observed_at = rng.choice([r for r in ROOMS if r != a.location])
        expect("location_mismatch", a.tag)

    # status/condition: found damaged, or found although recorded as stolen
    sheet_condition: dict[str, str] = {}
    for n in range(per_type):
        a = take(pool)
        if n % 2 == 0:
            a.on_sheet = True
            a.condition = "Good"
            sheet_condition[a.tag] = "Damaged (Broken Screen)"
        else:
            a.status = "Lost/Stolen"
            a.custodian = None
        expect("status_condition_mismatch", a.tag)

    # source conflicts: finance has another serial; MDM another model; MDM-only devices
    far_serial: dict[str, str] = {}
    mdm_model: dict[str, str] = {}
    for n in range(per_type):
        if n % 2 == 0:
            a = take(pool)
            far_serial[a.tag] = serials.new(a.manufacturer)
        else:
            a = take(laptops)
            mdm_model[a.tag] = next(m for m in LAPTOPS[a.manufacturer][1] if m != a.model)
        expect("source_conflict", a.tag)
    mdm_only: list[tuple[str, str, str, str | None]] = []  # (mfr, serial, uuid, mac)
    for n in range(max(1, per_type // 2)):
        mfr = rng.choice(sorted(LAPTOPS))
        uuid = f"{rng.getrandbits(128):032x}"
        if n == 0:
            mdm_only.append((mfr, "To Be Filled By O.E.M.", uuid, None))
            expect("source_conflict", "HW:" + uuid.upper())
        else:
            serial = serials.new(mfr)
            mdm_only.append((mfr, serial, uuid, _mac(rng)))
            expect("source_conflict", f"SN:{mfr.lower()}|{serial}")

    # stale records: out of scope, never audited, not in MDM
    stale_pool = [a for a in assets if a.location in OUT_OF_SCOPE and a.status == "Deployed"]
    for a in stale_pool[:per_type]:
        a.last_audit = None
        a.in_mdm = False
        expect("stale_record", a.tag)

    # unrecorded: stray tags of the product convention, a foreign EPC, a sheet-only serial
    unrecorded_epcs: list[tuple[str, str]] = []
    for n in range(per_type - 1):
        tag = f"AST-{950001 + n:06d}"
        unrecorded_epcs.append((giai96_for_asset_tag(tag), rng.choice(ROOMS)))
        expect("unrecorded", tag)
    foreign = "3074257BF7194E4000001A85"  # an SGTIN-96 retail tag carried in on a box
    unrecorded_epcs.append((foreign, ROOMS[0]))
    expect("unrecorded", "EPC:" + foreign)
    sheet_only_serial = serials.new("Lenovo")
    expect("unrecorded", "SN:" + sheet_only_serial)

    # a few MDM devices whose BIOS reports a placeholder serial: linked by MAC, no variance
    mac_linked = {a.tag for a in laptops if a.tag not in used and a.in_mdm and a.mac}
    mac_linked = set(sorted(mac_linked)[:3])

    register = assets + duplicates
    by_email = {p.email: p for p in people}
    files: dict[str, tuple[str, Path]] = {}
    bad_rows: set[tuple[str, int]] = set()

    # -- Snipe-IT ------------------------------------------------------------------
    itam = out_dir / "itam.csv"
    with itam.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(SNIPEIT_COLUMNS)
        line = 1
        for a in register:
            line += 1
            writer.writerow([
                a.tag, f"{a.category[:-1].lower()}-{a.tag[-6:]}", a.serial, a.manufacturer,
                a.model, a.category, snipeit_status(a.status),
                snipeit_user(by_email[a.custodian].name, a.custodian) if a.custodian else "",
                a.location, snipeit_cost(a.value), snipeit_audit(a.last_audit), a.condition,
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
        snipeit_footer(writer, sum(a.value for a in register))
    files["itam"] = ("snipeit", itam)

    # -- Intune ----------------------------------------------------------------------
    intune = out_dir / "intune.csv"
    with intune.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(INTUNE_COLUMNS)
        for a in assets:
            if not a.in_mdm:
                continue
            if a.status == "Archived" and a.tag not in mdm_active_retired:
                continue
            if a.status == "Archived":
                seen = intune_checkin(now - timedelta(days=3))
            else:
                seen = intune_checkin(now - timedelta(days=rng.randrange(1, 10)))
            upn = mdm_user.get(a.tag, a.custodian or "")
            serial = "System Serial Number" if a.tag in mac_linked else a.serial
            writer.writerow([
                f"LT-{a.tag[-6:]}", serial, LAPTOPS[a.manufacturer][0],
                mdm_model.get(a.tag, a.model), upn, seen,
                f"{rng.getrandbits(128):032x}", a.mac or "", "Windows", "Corporate",
            ])  # fmt: skip
        for mfr, serial, uuid, mac in mdm_only:
            writer.writerow([f"LT-{uuid[:6]}", serial, LAPTOPS[mfr][0], LAPTOPS[mfr][1][0],
                             rng.choice(active_people).email,
                             intune_checkin(now - timedelta(days=2)), uuid,
                             mac or "", "Windows", "Corporate"])  # fmt: skip
        intune_not_hardware(writer, rng, now, active_people[0].email)
    files["intune"] = ("intune", intune)

    # -- fixed-asset register (XLSX) ------------------------------------------------
    import openpyxl

    far = out_dir / "far.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Register"
    sheet.append(["Asset Number", "Serial Number", "Manufacturer", "Net Book Value",
                  "Disposal Status", "Cost Centre"])  # fmt: skip
    for a in assets:
        disposal = "Disposed" if a.status == "Archived" else None
        sheet.append([a.tag, far_serial.get(a.tag, a.serial), a.manufacturer,
                      round(a.value * 0.6, 2), disposal, "CC-100"])  # fmt: skip
    book.save(far)
    files["finance"] = ("fixed_asset", far)

    # -- HR (Graph-style JSON envelope) ---------------------------------------------
    hr = write_hr_json(out_dir / "hr.json", people)
    files["hr"] = ("hr", hr)

    # -- RFID count session ---------------------------------------------------------
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
    for epc, location in unrecorded_epcs:
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

    # -- manual count sheet ------------------------------------------------------------
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
            user = sheet_user.get(a.tag)
            if user is None and a.custodian:
                # names on paper, resolved to the same person through HR
                user = by_email[a.custodian].name
            writer.writerow([a.observed_at or a.location, a.tag, identity.get(a.tag, a.serial),
                             user or "", sheet_condition.get(a.tag, a.condition),
                             "auditor-b"])  # fmt: skip
        for tag, typo in probable.items():
            a = next(x for x in assets if x.tag == tag)
            line += 1
            writer.writerow([a.location, "", typo, "", a.condition, "auditor-b"])
        line += 1
        writer.writerow([ROOMS[2], "", sheet_only_serial, "", "Good", "auditor-b"])
        line += 1
        writer.writerow(["", "AST-000001", "", "", "", "auditor-b"])  # no location
        bad_rows.add(("count_sheet.csv", line))

    return GeneratedExports(
        directory=out_dir,
        sources=files,
        counts=[session, sheet_path],
        answer_key=key,
        bad_rows=bad_rows,
        as_of=as_of,
        scope=[SITE],
        injected=injected,
    )
