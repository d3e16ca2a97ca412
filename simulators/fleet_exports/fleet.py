"""The invented fleet of one site: its catalogue (laptop and server models, how each
source spells the manufacturer), rooms in and out of scope, people (leavers included),
vendor-format serials unique even after folding look-alike characters, and the assets
as the register holds them before any variance is injected (:func:`make_fleet`)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

#: look-alike characters folded together (a serial's identity ignores the difference)
LOOKALIKE = str.maketrans("OISBZ", "01582")
#: a character and the look-alike it is misread as
SWAP = {"0": "O", "1": "I", "5": "S", "8": "B", "2": "Z", "O": "0", "I": "1", "S": "5"}

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


class Serials:
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
            if with_lookalike and not any(c in SWAP for c in serial):
                continue
            folded = serial.translate(LOOKALIKE)
            if folded not in self.folded:
                self.folded.add(folded)
                return serial

    def typo_of(self, serial: str) -> str:
        """The serial with one character misread as its look-alike."""
        for i, ch in enumerate(serial):
            if ch in SWAP:
                return serial[:i] + SWAP[ch] + serial[i + 1 :]
        raise ValueError(f"{serial} has no look-alike character")


def random_mac(rng: random.Random) -> str:
    return ":".join(f"{rng.randrange(256):02X}" for _ in range(6))


@dataclass(slots=True)
class Fleet:
    """The people and the clean register of one generated site."""

    people: list[Person]
    active_people: list[Person]
    leavers: list[Person]
    assets: list[FleetAsset]


def make_fleet(rng: random.Random, serials: Serials, n_assets: int, now: datetime) -> Fleet:
    """People (the last ten are leavers) and ``n_assets`` assets: every tenth a server,
    every seventh out of scope, laptops checked out to active people."""
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
            mac=None if server else random_mac(rng),
            last_audit=recent(120),
            in_mdm=not server,
            observed_at=(location + "/Rack A0" + str(i % 9 + 1)) if server else location,
        )
        if not in_scope:
            asset.observed_at = None
        asset.on_sheet = in_scope and i % 3 == 0
        assets.append(asset)
    return Fleet(people, active_people, leavers, assets)
