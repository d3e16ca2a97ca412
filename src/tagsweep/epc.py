"""EPC ↔ asset identity: the codec the matcher and the simulators agree on.

An RFID tag on an IT asset carries its identity in the EPC in one of two ways:

* **GIAI-96** (GS1 Global Individual Asset Identifier, EPC Tag Data Standard §14.5.5):
  header ``0x34``, 3-bit filter, 3-bit partition, then a GS1 company prefix and an
  individual asset reference whose bit widths the partition selects. This is what an
  encoded, standards-conformant asset label holds.
* **ASCII-in-EPC**: the printed asset tag text written byte for byte into the EPC bank
  and padded with NUL bytes. Cheap label printers and many in-house programmes do this.

Anything else is resolved by a mapping table (EPC → asset tag) in the engine.

Product convention for simulated data (the world model, the export generator, the demo
and the tests): asset tags look like ``AST-000123``; their GIAI-96 uses company prefix
:data:`DEFAULT_COMPANY_PREFIX` and the tag's digits as the individual asset reference;
the engine maps a decoded reference back to a tag with a format string from the
``[engine]`` configuration (``giai_asset_tag_format = "AST-{ref:06d}"``).

The codec is written by hand rather than through an EPC library: the 96-bit layout is a
few shifts, and the engine re-implements the same decode in SQL for bulk matching, so
this module is the reference that the SQL is tested against.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal

#: GS1 example company prefix used for all simulated data.
DEFAULT_COMPANY_PREFIX: Final = "0614141"
#: How a decoded individual asset reference becomes an asset tag by default.
DEFAULT_ASSET_TAG_FORMAT: Final = "AST-{ref:06d}"

GIAI96_HEADER: Final = 0x34
GIAI96_BITS: Final = 96

#: GIAI-96 partition table: partition → (company prefix bits, company prefix digits,
#: individual asset reference bits). TDS Table 14-20.
GIAI96_PARTITIONS: Final[dict[int, tuple[int, int, int]]] = {
    0: (40, 12, 42),
    1: (37, 11, 45),
    2: (34, 10, 48),
    3: (30, 9, 52),
    4: (27, 8, 55),
    5: (24, 7, 58),
    6: (20, 6, 62),
}
_PARTITION_BY_DIGITS: Final = {digits: p for p, (_, digits, _) in GIAI96_PARTITIONS.items()}

EpcScheme = Literal["giai96", "ascii", "mapping"]

_HEX = re.compile(r"^[0-9A-F]+$")
_TAG_DIGITS = re.compile(r"(\d+)\D*$")


def _clean_hex(epc_hex: str) -> str | None:
    text = epc_hex.strip().upper().removeprefix("0X")
    if not text or len(text) % 2 or not _HEX.match(text):
        return None
    return text


def encode_giai96(company_prefix: str, asset_ref: int, filter_value: int = 0) -> str:
    """GIAI-96 EPC (24 upper-case hex digits) for a company prefix and asset reference.

    Raises ValueError when the prefix is not 6-12 digits, the filter is not 0-7, or the
    reference does not fit the bits the prefix length leaves.
    """
    if not company_prefix.isdigit() or len(company_prefix) not in _PARTITION_BY_DIGITS:
        raise ValueError(f"company prefix must be 6-12 digits, got {company_prefix!r}")
    if not 0 <= filter_value <= 7:
        raise ValueError(f"filter value must be 0-7, got {filter_value}")
    partition = _PARTITION_BY_DIGITS[len(company_prefix)]
    cp_bits, _, ref_bits = GIAI96_PARTITIONS[partition]
    if not 0 <= asset_ref < (1 << ref_bits):
        raise ValueError(
            f"asset reference {asset_ref} does not fit {ref_bits} bits "
            f"(company prefix of {len(company_prefix)} digits)"
        )
    value = GIAI96_HEADER
    value = (value << 3) | filter_value
    value = (value << 3) | partition
    value = (value << cp_bits) | int(company_prefix)
    value = (value << ref_bits) | asset_ref
    return f"{value:024X}"


def decode_giai96(epc_hex: str) -> tuple[str, int] | None:
    """``(company_prefix, asset_ref)`` of a GIAI-96 EPC, or None when it is not one.

    Not one means: not 96 bits of hex, another header, a reserved partition, or a
    company prefix too large for its digit count (a corrupt or foreign tag).
    """
    text = _clean_hex(epc_hex)
    if text is None or len(text) != GIAI96_BITS // 4:
        return None
    value = int(text, 16)
    if value >> 88 != GIAI96_HEADER:
        return None
    partition = (value >> 82) & 0b111
    if partition not in GIAI96_PARTITIONS:
        return None
    cp_bits, cp_digits, ref_bits = GIAI96_PARTITIONS[partition]
    company = (value >> ref_bits) & ((1 << cp_bits) - 1)
    if company >= 10**cp_digits:
        return None
    asset_ref = value & ((1 << ref_bits) - 1)
    return f"{company:0{cp_digits}d}", asset_ref


def encode_ascii(tag: str, bits: int = 96) -> str:
    """The asset tag text as EPC hex, NUL-padded to ``bits`` (a multiple of 16).

    Raises ValueError for non-printable-ASCII text or text longer than the EPC.
    """
    if bits <= 0 or bits % 16:
        raise ValueError(f"EPC length must be a positive multiple of 16 bits, got {bits}")
    if not tag or not all(0x20 < ord(c) < 0x7F for c in tag):
        raise ValueError(f"asset tag must be printable ASCII without spaces, got {tag!r}")
    raw = tag.encode("ascii")
    if len(raw) * 8 > bits:
        raise ValueError(f"asset tag {tag!r} needs {len(raw) * 8} bits, EPC has {bits}")
    return raw.ljust(bits // 8, b"\x00").hex().upper()


def decode_ascii(epc_hex: str) -> str | None:
    """The asset tag text held in an ASCII-in-EPC, or None when the EPC is not text.

    Trailing NUL padding is removed; anything else outside printable ASCII (including
    NULs in the middle, or an all-NUL EPC) means the EPC is binary, not text.
    """
    text = _clean_hex(epc_hex)
    if text is None:
        return None
    raw = bytes.fromhex(text).rstrip(b"\x00")
    if not raw or not all(0x20 < b < 0x7F for b in raw):
        return None
    return raw.decode("ascii")


def asset_ref_for_tag(asset_tag: str) -> int | None:
    """The individual asset reference of an asset tag: its trailing run of digits.

    ``AST-000123`` → 123. None when the tag has no digits.
    """
    match = _TAG_DIGITS.search(asset_tag)
    return int(match.group(1)) if match else None


def giai96_for_asset_tag(
    asset_tag: str, company_prefix: str = DEFAULT_COMPANY_PREFIX, filter_value: int = 0
) -> str:
    """GIAI-96 EPC of an asset tag under the product convention (tag digits = reference)."""
    ref = asset_ref_for_tag(asset_tag)
    if ref is None:
        raise ValueError(f"asset tag {asset_tag!r} has no digits to use as asset reference")
    return encode_giai96(company_prefix, ref, filter_value)


def asset_tag_for_giai(
    giai: str,
    company_prefix: str | None = DEFAULT_COMPANY_PREFIX,
    tag_format: str = DEFAULT_ASSET_TAG_FORMAT,
) -> str | None:
    """The asset tag a GIAI (GS1 AI 8004 text, as a barcode or Digital Link carries it)
    names under the product convention: the company prefix, then the reference digits
    formatted with ``tag_format``. None when it does not start with ``company_prefix``
    or its reference is not digits without a leading zero (not a GIAI-96 reference)."""
    if not company_prefix or not giai.startswith(company_prefix):
        return None
    ref = giai[len(company_prefix) :]
    if not ref.isdigit() or not ref.isascii() or (len(ref) > 1 and ref[0] == "0"):
        return None
    return tag_format.format(ref=int(ref), company_prefix=company_prefix)


def asset_tag_for_epc(
    epc_hex: str,
    scheme: EpcScheme,
    *,
    company_prefix: str | None = DEFAULT_COMPANY_PREFIX,
    tag_format: str = DEFAULT_ASSET_TAG_FORMAT,
    mapping: Mapping[str, str] | None = None,
) -> str | None:
    """The asset tag an EPC identifies under ``scheme``, or None when it identifies none.

    ``giai96``: decode, check the company prefix (None accepts any), format the reference
    with ``tag_format`` (fields ``ref`` and ``company_prefix``). ``ascii``: the text.
    ``mapping``: look the normalized EPC up in ``mapping``.
    """
    if scheme == "giai96":
        decoded = decode_giai96(epc_hex)
        if decoded is None:
            return None
        company, ref = decoded
        if company_prefix is not None and company != company_prefix:
            return None
        return tag_format.format(ref=ref, company_prefix=company)
    if scheme == "ascii":
        return decode_ascii(epc_hex)
    if scheme == "mapping":
        text = _clean_hex(epc_hex)
        if text is None or mapping is None:
            return None
        return mapping.get(text)
    raise ValueError(f"unknown EPC scheme {scheme!r}; expected giai96, ascii or mapping")
