"""The simulated site's equipment catalogue: manufacturers, models, heights in U, how
common each is, and each vendor's serial-number format."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np

_ALNUM: Final = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # vendors avoid I and O
_DIGITS: Final = "0123456789"
LETTERS: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def _pick(rng: np.random.Generator, alphabet: str, n: int) -> str:
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), size=n))


def _dell(rng: np.random.Generator) -> str:  # service tag: 7 alphanumerics
    return _pick(rng, _ALNUM, 7)


def _hpe(rng: np.random.Generator) -> str:  # e.g. CZJ12345AB: country, site, yww, seq
    return (
        _pick(rng, "CM", 1)
        + _pick(rng, "XZ", 1)
        + _pick(rng, LETTERS, 1)
        + (_pick(rng, _DIGITS, 5) + _pick(rng, _ALNUM, 2))
    )


def _lenovo(rng: np.random.Generator) -> str:  # e.g. J30A1B2C
    return _pick(rng, "JS", 1) + _pick(rng, _DIGITS, 2) + _pick(rng, _ALNUM, 5)


def _cisco(rng: np.random.Generator) -> str:  # LLLYYWWSSSS, e.g. FDO2134X0AB
    year = int(rng.integers(18, 26))
    week = int(rng.integers(1, 53))
    return (
        _pick(rng, "FJ", 1)
        + _pick(rng, "DOC", 1)
        + _pick(rng, LETTERS, 1)
        + (f"{year:02d}{week:02d}" + _pick(rng, _ALNUM, 4))
    )


def _juniper(rng: np.random.Generator) -> str:  # e.g. WS3718150123
    return _pick(rng, LETTERS, 2) + _pick(rng, _DIGITS, 10)


def _apc(rng: np.random.Generator) -> str:  # e.g. 5A1834E01234
    return (
        _pick(rng, _DIGITS, 1)
        + _pick(rng, LETTERS, 1)
        + _pick(rng, _DIGITS, 4)
        + (_pick(rng, LETTERS, 1) + _pick(rng, _DIGITS, 5))
    )


def _netapp(rng: np.random.Generator) -> str:  # 12 digits
    return _pick(rng, "79", 1) + _pick(rng, _DIGITS, 11)


SerialMaker = Callable[[np.random.Generator], str]

#: (manufacturer, model, height in U, serial format, relative frequency)
CATALOGUE: Final[tuple[tuple[str, str, int, SerialMaker, float], ...]] = (
    ("Dell", "PowerEdge R650", 1, _dell, 6.0),
    ("Dell", "PowerEdge R750", 2, _dell, 5.0),
    ("HPE", "ProLiant DL360 Gen10", 1, _hpe, 5.0),
    ("HPE", "ProLiant DL380 Gen10 Plus", 2, _hpe, 5.0),
    ("Lenovo", "ThinkSystem SR650 V2", 2, _lenovo, 3.0),
    ("Cisco", "Catalyst 9300-48P", 1, _cisco, 3.0),
    ("Cisco", "Nexus 93180YC-FX", 1, _cisco, 2.0),
    ("Juniper", "EX4300-48T", 1, _juniper, 1.5),
    ("APC", "AP8841 Rack PDU", 1, _apc, 2.0),
    ("NetApp", "AFF A250", 2, _netapp, 1.0),
)
