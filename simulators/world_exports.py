"""Systems of record for a simulated world: the same assets the readers see, told wrongly.

:mod:`tagsweep.simulators.fleet_exports` invents its own fleet and its own count; the demo and
its end-to-end test need the opposite: the exports must describe the *world model's*
assets (the racks the handheld sweeps, the laptops that go through the storage-room
door), so that the daemon's real count and the engine's verdict can be checked against
one ground truth. This module writes, for a :class:`~tagsweep.simulators.world.World`:

* ``itam.csv`` — Snipe-IT asset export (the register), racks as locations;
* ``intune.csv`` — Intune devices (the office laptops at HQ, plus devices it alone knows);
* ``far.xlsx`` — fixed-asset register (finance): serials and disposals;
* ``procurement.csv`` — purchase-order lines with vendor spellings ("Dell Technologies");
* ``hr.json`` — HR directory (Microsoft Graph envelope), leavers included;
* ``count_sheet.csv`` — a second auditor's paper spot check of serial plates, for the
  variances only a written serial can show (identity conflict, probable match).

What the count will find is taken from the world's truth (``found``: the asset tags
whose label a reader reads or whose barcode is scanned), never from the daemon's
output, so the answer key is known before anything runs. Every variance type is
injected ``per_type`` times; the natural ones (dead labels → ``missing``) join the key.
Location mismatches caused by the count attributing a cross-read to the neighbouring
rack are *not* in the key: they are errors of the count, scored separately.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from tagsweep.simulators.fleet_exports import formats as fmt
from tagsweep.simulators.fleet_exports.fleet import (
    FIRST_NAMES,
    LAPTOPS,
    LAST_NAMES,
    LOOKALIKE,
    SWAP,
    Person,
    random_mac,
)
from tagsweep.simulators.fleet_exports.generator import GeneratedExports
from tagsweep.simulators.world import World

#: How purchase orders spell the vendors (the engine's alias table folds them).
VENDOR_SPELLING: Final = {
    "Dell": "Dell Technologies",
    "HPE": "Hewlett Packard Enterprise",
    "Cisco": "Cisco Systems",
    "Juniper": "Juniper Networks",
}
HQ_ROOMS: Final = [f"HQ/Floor 2/Room {n}" for n in range(201, 205)]


def _category(model: str) -> tuple[str, float, float]:
    """(category, lowest value, highest value) of a world catalogue model."""
    if "PDU" in model:
        return "PDUs", 800, 1500
    if model.startswith(("Catalyst", "Nexus", "EX")):
        return "Network Switches", 2500, 9000
    if model.startswith("AFF"):
        return "Storage Arrays", 20000, 40000
    return "Servers", 6000, 20000


@dataclass(slots=True)
class RegisterAsset:
    """One asset as the sources describe it (before and after injections)."""

    tag: str
    manufacturer: str
    model: str
    category: str
    serial: str
    location: str
    status: str  # Snipe-IT status label
    condition: str
    value: float
    custodian: str | None = None  # person e-mail
    mac: str | None = None
    last_audit: str | None = None
    in_mdm: bool = False
    in_far: bool = True
    in_procurement: bool = True


@dataclass(slots=True)
class WorldExports(GeneratedExports):
    """:class:`GeneratedExports` plus what the demo reports beside the answer key."""

    found: frozenset[str] = frozenset()  # asset tags the count finds (truth)
    register_locations: dict[str, str] = field(default_factory=dict)  # tag → ITAM location
    natural_missing: int = 0  # missing because the world hides them (dead labels, unread)


def _folded(serial: str) -> str:
    return serial.translate(LOOKALIKE)


def generate_for_world(
    out_dir: Path,
    world: World,
    *,
    found: Collection[str],
    storage_tags: Sequence[str] = (),
    storage_zone: str = "DC1/Storage 1",
    per_type: int = 4,
    seed: int = 7,
    now: datetime,
) -> WorldExports:
    """Write the exports of ``world`` (plus the ``storage_tags`` laptops kept behind the
    portal door at ``storage_zone``) with ``per_type`` injections of every variance type.

    ``found`` is the set of asset tags the count truly finds; ``now`` the export time
    (the engine's run date is the count's date, so exports are dated around it).
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not a secret
    out_dir.mkdir(parents=True, exist_ok=True)
    found_set = frozenset(found)
    n = max(1, per_type)

    def recent(days: int) -> str:
        return (now - timedelta(days=rng.randrange(1, days))).strftime("%Y-%m-%d %H:%M:%S")

    people = [
        Person(
            f"E{2000 + i}",
            f"{FIRST_NAMES[i % 10].lower()}.{LAST_NAMES[i // 10 % 10].lower()}{i}@example.com",
            f"{FIRST_NAMES[i % 10]} {LAST_NAMES[i // 10 % 10]} {i}",
        )
        for i in range(60)
    ]
    for p in people[-6:]:
        p.leaver = True
    active = [p for p in people if not p.leaver]
    by_email = {p.email: p for p in people}

    serial_folds: set[str] = set()

    def new_serial(manufacturer: str) -> str:
        alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
        prefix = {"Dell": "", "HP": "5CG", "Lenovo": "PF", "Apple": "C02"}.get(manufacturer, "")
        while True:
            serial = prefix + "".join(rng.choice(alphabet) for _ in range(10 - len(prefix)))
            if manufacturer == "Dell":
                serial = serial[:7]
            if _folded(serial) not in serial_folds:
                serial_folds.add(_folded(serial))
                return serial

    # -- the truth as the register should have it ------------------------------------
    racks: list[RegisterAsset] = []
    for item in world.assets:
        category, lo, hi = _category(item.model)
        serial_folds.add(_folded(item.serial))
        racks.append(
            RegisterAsset(
                tag=item.asset_tag,
                manufacturer=item.manufacturer,
                model=item.model,
                category=category,
                serial=item.serial,
                location=item.rack,
                status="Deployed",
                condition=rng.choice(["Good", "Excellent", "Fair"]),
                value=float(rng.randrange(int(lo), int(hi))),
                last_audit=recent(90),
            )
        )
    storage: list[RegisterAsset] = []
    for tag in storage_tags:
        mfr = rng.choice(sorted(LAPTOPS))
        storage.append(
            RegisterAsset(
                tag=tag,
                manufacturer=mfr,
                model=rng.choice(LAPTOPS[mfr][1]),
                category="Laptops",
                serial=new_serial(mfr),
                location=storage_zone,
                status="Ready to Deploy",
                condition="Good",
                value=float(rng.randrange(700, 2600)),
                mac=random_mac(rng),
                last_audit=recent(90),
            )
        )
    hq: list[RegisterAsset] = []
    for i in range(max(40, 10 * n)):
        mfr = rng.choice(sorted(LAPTOPS))
        hq.append(
            RegisterAsset(
                tag=f"AST-{700001 + i:06d}",
                manufacturer=mfr,
                model=rng.choice(LAPTOPS[mfr][1]),
                category="Laptops",
                serial=new_serial(mfr),
                location=rng.choice(HQ_ROOMS),
                status="Deployed",
                condition="Good",
                value=float(rng.randrange(700, 2600)),
                custodian=rng.choice(active).email,
                mac=random_mac(rng),
                last_audit=recent(90),
                in_mdm=True,
                in_procurement=False,
            )
        )

    key: set[tuple[str, str]] = set()
    injected: dict[str, int] = {}

    def expect(kind: str, asset_key: str) -> None:
        key.add((kind, asset_key))
        injected[kind] = injected.get(kind, 0) + 1

    used: set[str] = set()
    world_by_tag = {a.asset_tag: a for a in world.assets}
    found_racks = [a for a in racks if a.tag in found_set]
    unfound_racks = [a for a in racks if a.tag not in found_set]
    rng.shuffle(found_racks)
    rng.shuffle(unfound_racks)
    hq_pool = list(hq)
    rng.shuffle(hq_pool)

    def take(pool: list[RegisterAsset], what: str) -> RegisterAsset:
        for a in pool:
            if a.tag not in used:
                used.add(a.tag)
                return a
        raise ValueError(f"not enough {what} for {n} injections per type: use a bigger world")

    # retired but active: disposed on paper, yet found in the racks (or checking in to MDM)
    for k in range(n):
        a = take(found_racks, "found assets") if k < n - 1 or n == 1 else take(hq_pool, "HQ")
        a.status = "Archived"
        a.custodian = None
        expect("retired_but_active", a.tag)

    # duplicate records: a second active ITAM record of a found device; it is also missing
    duplicates: list[RegisterAsset] = []
    for k in range(n):
        a = take(found_racks, "found assets")
        dup = replace(a, tag=f"AST-{900001 + k:06d}", in_far=False, in_procurement=False)
        duplicates.append(dup)
        expect("duplicate_record", a.tag)
        expect("missing", dup.tag)

    # missing: records of devices removed from the racks without telling anyone
    ghosts: list[RegisterAsset] = []
    for k in range(n):
        model_of = rng.choice(racks)
        ghosts.append(
            replace(
                model_of,
                tag=f"AST-{800001 + k:06d}",
                serial=new_serial(model_of.manufacturer),
                last_audit=recent(200),
            )
        )
        expect("missing", ghosts[-1].tag)

    # unrecorded: found in the racks, unknown to every source
    unrecorded: set[str] = set()
    untagged_found = [a for a in found_racks if world_by_tag[a.tag].epc is None]
    for k in range(n):
        a = take(untagged_found if k == 0 and untagged_found else found_racks, "found assets")
        unrecorded.add(a.tag)
        expect("unrecorded", a.tag)

    # location mismatch: the register still has it in a rack of the other room
    for _ in range(n):
        a = take(found_racks, "found assets")
        room = a.location.rsplit("/", 1)[0]
        a.location = rng.choice([r.path for r in world.racks if not r.path.startswith(room)])
        expect("location_mismatch", a.tag)

    # status: found although recorded as lost or stolen
    for k in range(n):
        a = take(found_racks, "found assets")
        a.status = "Lost/Stolen" if k % 2 == 0 else "Lost"
        expect("status_condition_mismatch", a.tag)

    # custodian: the assigned user has left, or MDM names someone else
    mdm_user: dict[str, str] = {}
    for k in range(n):
        a = take(hq_pool, "HQ laptops")
        if k % 2 == 0:
            a.custodian = rng.choice([p for p in people if p.leaver]).email
        else:
            mdm_user[a.tag] = rng.choice([p for p in active if p.email != a.custodian]).email
        expect("custodian_mismatch", a.tag)

    # source conflicts: finance has another serial; MDM another model; MDM-only devices
    far_serial: dict[str, str] = {}
    mdm_model: dict[str, str] = {}
    for k in range(n):
        if k % 2 == 0:
            a = take(found_racks, "found assets")
            far_serial[a.tag] = new_serial(a.manufacturer)
        else:
            a = take(hq_pool, "HQ laptops")
            mdm_model[a.tag] = next(m for m in LAPTOPS[a.manufacturer][1] if m != a.model)
        expect("source_conflict", a.tag)
    mdm_only: list[tuple[str, str, str, str | None]] = []
    for k in range(max(1, n // 2)):
        mfr = rng.choice(sorted(LAPTOPS))
        uuid = f"{rng.getrandbits(128):032x}"
        if k == 0:
            mdm_only.append((mfr, "To Be Filled By O.E.M.", uuid, None))
            expect("source_conflict", "HW:" + uuid.upper())
        else:
            serial = new_serial(mfr)
            mdm_only.append((mfr, serial, uuid, random_mac(rng)))
            expect("source_conflict", f"SN:{mfr.lower()}|{serial}")

    # stale: out of scope, never audited, unknown to MDM
    for _ in range(n):
        a = take(hq_pool, "HQ laptops")
        a.last_audit = None
        a.in_mdm = False
        expect("stale_record", a.tag)

    # -- the paper spot check: serial plates written down by hand ---------------------
    sheet: list[tuple[str, str, str, str]] = []  # (location, tag, serial, condition)
    for _ in range(n):  # the tag is on another chassis than the register says
        a = take(found_racks, "found assets")
        sheet.append((world_by_tag[a.tag].rack, a.tag, new_serial(a.manufacturer), a.condition))
        expect("identity_conflict", a.tag)
    for _ in range(n):  # a dead label; the serial copied with a look-alike character
        target = next(
            (
                x
                for x in unfound_racks
                if x.tag not in used and any(c in SWAP for c in x.serial) and x.status == "Deployed"
            ),
            None,
        )
        if target is None:
            raise ValueError(
                "no asset with a dead label and a look-alike serial for a probable match: "
                "use a bigger world or more dead labels"
            )
        used.add(target.tag)
        i = next(i for i, c in enumerate(target.serial) if c in SWAP)
        typo = target.serial[:i] + SWAP[target.serial[i]] + target.serial[i + 1 :]
        sheet.append((world_by_tag[target.tag].rack, "", typo, target.condition))
        expect("probable_match", target.tag)
    for _ in range(max(1, n // 2)):  # found damaged
        a = take(found_racks, "found assets")
        a.condition = "Good"
        sheet.append((world_by_tag[a.tag].rack, a.tag, a.serial, "Damaged (Bent Rail)"))
        expect("status_condition_mismatch", a.tag)
    spare_serial = new_serial("Dell")
    sheet.append((world.racks[0].path, "", spare_serial, "Good"))
    expect("unrecorded", "SN:" + spare_serial)

    # natural missing: in scope, expected, not found, not matched by the spot check
    probable = {k for t, k in key if t == "probable_match"}
    natural = [
        a.tag
        for a in (*racks, *storage)
        if a.tag not in found_set
        and a.tag not in probable
        and a.tag not in unrecorded
        and a.status in {"Deployed", "Ready to Deploy"}
    ]
    for tag in natural:
        expect("missing", tag)

    register = [a for a in (*racks, *storage, *hq) if a.tag not in unrecorded]
    register += duplicates + ghosts
    stamp = (now - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")

    itam = out_dir / "itam.csv"
    with itam.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(fmt.SNIPEIT_COLUMNS)
        for a in register:
            writer.writerow([
                a.tag, f"{a.category.split()[-1][:-1].lower()}-{a.tag[-6:]}", a.serial,
                a.manufacturer, a.model, a.category, fmt.snipeit_status(a.status),
                fmt.snipeit_user(by_email[a.custodian].name, a.custodian) if a.custodian else "",
                a.location, fmt.snipeit_cost(a.value), fmt.snipeit_audit(a.last_audit), a.condition,
                a.mac or "", stamp,
            ])  # fmt: skip
        fmt.snipeit_footer(writer, sum(a.value for a in register))

    intune = out_dir / "intune.csv"
    with intune.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(fmt.INTUNE_COLUMNS)
        for a in hq:
            if not a.in_mdm:
                continue
            seen = fmt.intune_checkin(now - timedelta(days=rng.randrange(1, 10)))
            writer.writerow([
                f"LT-{a.tag[-6:]}", a.serial, LAPTOPS[a.manufacturer][0],
                mdm_model.get(a.tag, a.model), mdm_user.get(a.tag, a.custodian or ""), seen,
                f"{rng.getrandbits(128):032x}", a.mac or "", "Windows", "Corporate",
            ])  # fmt: skip
        for mfr, serial, uuid, mac in mdm_only:
            writer.writerow([
                f"LT-{uuid[:6]}", serial, LAPTOPS[mfr][0], LAPTOPS[mfr][1][0],
                rng.choice(active).email, fmt.intune_checkin(now - timedelta(days=2)),
                uuid, mac or "", "Windows", "Corporate",
            ])  # fmt: skip
        fmt.intune_not_hardware(writer, rng, now, active[0].email)

    import openpyxl

    far = out_dir / "far.xlsx"
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Register"
    ws.append(["Asset Number", "Serial Number", "Manufacturer", "Net Book Value",
               "Disposal Status", "Cost Centre"])  # fmt: skip
    for a in register:
        if not a.in_far:
            continue
        ws.append([a.tag, far_serial.get(a.tag, a.serial), a.manufacturer,
                   round(a.value * 0.6, 2), "Disposed" if a.status == "Archived" else None,
                   "CC-DC1" if a.location.startswith("DC1") else "CC-HQ"])  # fmt: skip
    book.save(far)

    procurement = out_dir / "procurement.csv"
    with procurement.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["PO Number", "Line", "Asset Tag", "Serial Number", "Manufacturer",
                         "Model", "Unit Price", "Delivered"])  # fmt: skip
        for i, a in enumerate(r for r in register if r.in_procurement):
            writer.writerow([
                f"PO-{4500000 + i // 25}", i % 25 + 1, a.tag, a.serial,
                VENDOR_SPELLING.get(a.manufacturer, a.manufacturer), a.model,
                f"{a.value:.2f}", (now - timedelta(days=400 + i % 300)).strftime("%Y-%m-%d"),
            ])  # fmt: skip

    hr = fmt.write_hr_json(out_dir / "hr.json", people)

    sheet_path = out_dir / "count_sheet.csv"
    with sheet_path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["location", "asset_tag", "serial", "custodian", "condition", "operator"])
        for location, tag, serial, condition in sheet:
            writer.writerow([location, tag, serial, "", condition, "auditor-b"])

    return WorldExports(
        directory=out_dir,
        sources={
            "itam": ("snipeit", itam),
            "intune": ("intune", intune),
            "finance": ("fixed_asset", far),
            "procurement": ("procurement", procurement),
            "hr": ("hr", hr),
        },
        counts=[sheet_path],
        answer_key=key,
        bad_rows=set(),
        as_of=now.date(),
        scope=[world.site],
        injected=injected,
        found=found_set,
        register_locations={a.tag: a.location for a in register},
        natural_missing=len(natural),
    )
