"""The variances injected into the invented fleet's sources, a known number of each
type of the seed method (some types in several variants), and the answer key: the
(variance type, asset key) pairs a correct engine must report, no more, no fewer.

:func:`inject_variances` changes the register's assets in place and returns what the
other sources must say differently (:class:`Variances`)."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

from tagsweep.epc import giai96_for_asset_tag
from tagsweep.simulators.fleet_exports.fleet import (
    LAPTOPS,
    OUT_OF_SCOPE,
    ROOMS,
    SWAP,
    Fleet,
    FleetAsset,
    Serials,
    random_mac,
)


@dataclass(slots=True)
class Variances:
    """The answer key, and what each source says differently from the register."""

    key: set[tuple[str, str]]  # (variance type, asset key)
    injected: dict[str, int]  # variance type → how many
    duplicates: list[FleetAsset]  # second register records of the same devices
    mdm_active_retired: set[str]  # retired laptops still checking in to MDM
    identity: dict[str, str]  # tag → the other serial the count sheet reads
    probable: dict[str, str]  # tag → its serial misread (sheet row without a tag)
    sheet_user: dict[str, str]  # tag → the other custodian name on the sheet
    mdm_user: dict[str, str]  # tag → the other custodian UPN in MDM
    sheet_condition: dict[str, str]  # tag → the condition the sheet reports
    far_serial: dict[str, str]  # tag → the other serial finance holds
    mdm_model: dict[str, str]  # tag → the other model MDM reports
    mdm_only: list[tuple[str, str, str, str | None]]  # (mfr, serial, uuid, mac)
    unrecorded_epcs: list[tuple[str, str]]  # (EPC, location) read but in no register
    sheet_only_serial: str  # a serial only the count sheet lists
    mac_linked: set[str] = field(default_factory=set)  # MDM serial a BIOS placeholder


def inject_variances(
    fleet: Fleet, rng: random.Random, serials: Serials, per_type: int
) -> Variances:
    """Inject ``per_type`` of each variance type into ``fleet`` (in place)."""
    assets, active_people, leavers = fleet.assets, fleet.active_people, fleet.leavers
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
            if with_lookalike and not any(c in SWAP for c in a.serial):
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
            mdm_only.append((mfr, serial, uuid, random_mac(rng)))
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

    return Variances(
        key=key,
        injected=injected,
        duplicates=duplicates,
        mdm_active_retired=mdm_active_retired,
        identity=identity,
        probable=probable,
        sheet_user=sheet_user,
        mdm_user=mdm_user,
        sheet_condition=sheet_condition,
        far_serial=far_serial,
        mdm_model=mdm_model,
        mdm_only=mdm_only,
        unrecorded_epcs=unrecorded_epcs,
        sheet_only_serial=sheet_only_serial,
        mac_linked=mac_linked,
    )
