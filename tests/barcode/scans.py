"""Valid scan lines with what they must be parsed into, and garbage lines, for tests.

Shared by the parser properties and the end-to-end tests over a pty and a socket, so
both check the same expectations.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from biip.checksums import gs1_standard_check_digit
from hypothesis import strategies as st

from tagsweep.domain import ScanKind, Symbology

GS = "\x1d"
#: The location table the tests configure (label text / GLN → location path).
LOCATIONS = {"R302-A04": "DC1/Room 302/Rack A04", "ROOM-302": "DC1/Room 302"}
GLN_ROOM = "0950600013439"  # a valid GLN (check digit 9)
GLN_LOCATIONS = {GLN_ROOM: "DC1/Room 302"}
OPTIONS = {"locations": LOCATIONS, "gln_locations": GLN_LOCATIONS, "serial_pattern": r"^SN:(\w+)$"}


@dataclass(frozen=True)
class Expected:
    line: str
    kind: ScanKind
    value: str
    symbology: Symbology = Symbology.UNKNOWN
    fields: dict[str, str] = field(default_factory=dict)


def with_check_digit(payload: str) -> str:
    return payload + str(gs1_standard_check_digit(payload))


def wrong_check_digit(payload: str) -> str:
    return payload + str((gs1_standard_check_digit(payload) + 1) % 10)


def examples() -> list[Expected]:
    """One of every family the driver recognises."""
    gtin = with_check_digit("0950600013435")  # 14 digits with check digit
    return [
        Expected("IT-00123", ScanKind.ASSET_TAG, "IT-00123"),
        Expected("]C0IT-00124", ScanKind.ASSET_TAG, "IT-00124", Symbology.CODE_128),
        Expected("]A0ABC1234", ScanKind.ASSET_TAG, "ABC1234", Symbology.CODE_39),
        Expected("SN:5CG1234XYZ", ScanKind.SERIAL, "5CG1234XYZ"),
        Expected("LOC:DC1/Room 302/Rack B01", ScanKind.LOCATION, "DC1/Room 302/Rack B01"),
        Expected("LOC:R302-A04", ScanKind.LOCATION, "DC1/Room 302/Rack A04"),
        Expected("]Q1R302-A04", ScanKind.LOCATION, "DC1/Room 302/Rack A04", Symbology.QR),
        Expected(
            f"]C101{gtin}21SN778899",
            ScanKind.SERIAL,
            "SN778899",
            Symbology.GS1_128,
            {"01": gtin, "21": "SN778899"},
        ),
        Expected(
            f"]d2{GS}21XK-9{GS}01{gtin}",
            ScanKind.SERIAL,
            "XK-9",
            Symbology.GS1_DATAMATRIX,
            {"21": "XK-9", "01": gtin},
        ),
        Expected(
            "]C18004095060001ASSET42",
            ScanKind.GIAI,
            "095060001ASSET42",
            Symbology.GS1_128,
            {"8004": "095060001ASSET42"},
        ),
        Expected(
            f"]Q38004095060001ASSET43{GS}01{gtin}",
            ScanKind.GIAI,
            "095060001ASSET43",
            Symbology.GS1_QR,
            {"8004": "095060001ASSET43", "01": gtin},
        ),
        Expected(
            f"]C1414{GLN_ROOM}{GS}254RACK-C07",
            ScanKind.LOCATION,
            "DC1/Room 302/RACK-C07",
            Symbology.GS1_128,
            {"414": GLN_ROOM, "254": "RACK-C07"},
        ),
        Expected(
            f"]C1414{GLN_ROOM}",
            ScanKind.LOCATION,
            "DC1/Room 302",
            Symbology.GS1_128,
            {"414": GLN_ROOM},
        ),
        Expected(f"]C101{gtin}", ScanKind.GTIN, gtin, Symbology.GS1_128, {"01": gtin}),
        Expected(
            "]E05901234123457",
            ScanKind.GTIN,
            "5901234123457",
            Symbology.EAN,
            {"01": "05901234123457"},
        ),
        Expected("]Q1just some text", ScanKind.UNKNOWN, "just some text", Symbology.QR),
        Expected(
            "(8004)095060001ASSET44",
            ScanKind.GIAI,
            "095060001ASSET44",
            fields={"8004": "095060001ASSET44"},
        ),
    ]


# -- hypothesis strategies -----------------------------------------------------------

_tag = st.from_regex(r"[A-Z]{2,5}-?[0-9]{3,8}", fullmatch=True)
_serial_text = st.from_regex(r"[A-Z0-9]{4,20}", fullmatch=True)
_giai_ref = st.from_regex(r"[0-9A-Z]{1,21}", fullmatch=True)
_room = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ]{0,10}[A-Za-z0-9]", fullmatch=True)


@st.composite
def valid_scans(draw: st.DrawFn) -> Expected:
    family = draw(st.sampled_from(["tag", "serial", "loc", "giai", "gs1serial", "gln", "ean"]))
    if family == "tag":
        tag = draw(_tag)
        return Expected(tag, ScanKind.ASSET_TAG, tag)
    if family == "serial":
        text = draw(_serial_text)
        return Expected(f"SN:{text}", ScanKind.SERIAL, text)
    if family == "loc":
        path = "/".join(draw(st.lists(_room, min_size=1, max_size=4)))
        return Expected(f"LOC:{path}", ScanKind.LOCATION, path)
    if family == "giai":
        giai = "0950600" + draw(_giai_ref)
        return Expected(f"]C18004{giai}", ScanKind.GIAI, giai, Symbology.GS1_128, {"8004": giai})
    if family == "gs1serial":
        gtin = with_check_digit(draw(st.from_regex(r"[0-9]{13}", fullmatch=True)))
        serial = draw(_serial_text)
        return Expected(
            f"]d201{gtin}21{serial}",
            ScanKind.SERIAL,
            serial,
            Symbology.GS1_DATAMATRIX,
            {"01": gtin, "21": serial},
        )
    if family == "gln":
        return Expected(
            f"]C1414{GLN_ROOM}", ScanKind.LOCATION, "DC1/Room 302", Symbology.GS1_128,
            {"414": GLN_ROOM},
        )  # fmt: skip
    ean = with_check_digit(draw(st.from_regex(r"[1-9][0-9]{11}", fullmatch=True)))
    return Expected(f"]E0{ean}", ScanKind.GTIN, ean, Symbology.EAN, {"01": "0" + ean})


#: Control bytes that make a line unmistakable garbage (not GS, TAB, CR or LF).
NOISE_BYTES = bytes(b for b in [*range(0x20), 0x7F] if b not in (0x09, 0x0A, 0x0D, 0x1D))


@st.composite
def garbage_lines(draw: st.DrawFn) -> bytes:
    """Random bytes without CR/LF that contain at least one stray control byte."""
    body = draw(st.binary(max_size=40)).replace(b"\r", b"").replace(b"\n", b"")
    at = draw(st.integers(0, len(body)))
    return body[:at] + bytes([draw(st.sampled_from(NOISE_BYTES))]) + body[at:]


def random_garbage(rng: random.Random, max_size: int = 40) -> bytes:
    """The same kind of garbage line from a seeded PRNG, for large volumes."""
    body = bytes(b for b in rng.randbytes(rng.randint(0, max_size)) if b not in (10, 13))
    at = rng.randint(0, len(body))
    return body[:at] + bytes([rng.choice(NOISE_BYTES)]) + body[at:]
