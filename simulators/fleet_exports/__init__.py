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

The parts: :mod:`.fleet` (the clean register: people, assets, serials), :mod:`.variances`
(what is injected, and the answer key), :mod:`.formats` (how each system writes its
values, shared with the world model's exports), :mod:`.files` (writing each source) and
:mod:`.generator` (:func:`generate`, all of it in order). Import them from here.
"""

from tagsweep.simulators.fleet_exports.fleet import (
    ALNUM,
    DELL_CHARS,
    FIRST_NAMES,
    LAPTOPS,
    LAST_NAMES,
    LOOKALIKE,
    OUT_OF_SCOPE,
    ROOMS,
    SERVERS,
    SITE,
    SWAP,
    FleetAsset,
    Person,
    random_mac,
)
from tagsweep.simulators.fleet_exports.generator import GeneratedExports, generate

__all__ = [
    "ALNUM",
    "DELL_CHARS",
    "FIRST_NAMES",
    "LAPTOPS",
    "LAST_NAMES",
    "LOOKALIKE",
    "OUT_OF_SCOPE",
    "ROOMS",
    "SERVERS",
    "SITE",
    "SWAP",
    "FleetAsset",
    "GeneratedExports",
    "Person",
    "generate",
    "random_mac",
]
