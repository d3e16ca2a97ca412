"""The EPC codec: known vectors from the GS1 Tag Data Standard and round-trip properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagsweep.epc import (
    DEFAULT_COMPANY_PREFIX,
    GIAI96_PARTITIONS,
    asset_ref_for_tag,
    asset_tag_for_epc,
    decode_ascii,
    decode_giai96,
    encode_ascii,
    encode_giai96,
    giai96_for_asset_tag,
)


def test_known_giai96_vectors() -> None:
    # urn:epc:tag:giai-96:0.023456.65557 and urn:epc:tag:giai-96:0.000001.1
    assert encode_giai96("023456", 65557) == "341816E80000000000010015"
    assert decode_giai96("341816E80000000000010015") == ("023456", 65557)
    assert encode_giai96("000001", 1) == "341800004000000000000001"
    assert decode_giai96("0x341800004000000000000001") == ("000001", 1)


def test_product_convention_maps_tag_to_epc_and_back() -> None:
    epc = giai96_for_asset_tag("AST-000123")
    assert epc.startswith("34")
    assert len(epc) == 24
    assert decode_giai96(epc) == (DEFAULT_COMPANY_PREFIX, 123)
    assert asset_tag_for_epc(epc, "giai96") == "AST-000123"
    assert asset_tag_for_epc(epc, "giai96", tag_format="IT{ref:08d}") == "IT00000123"
    # a tag of another company is not ours
    assert asset_tag_for_epc(epc, "giai96", company_prefix="0614142") is None
    assert asset_tag_for_epc(epc, "giai96", company_prefix=None) == "AST-000123"


@pytest.mark.parametrize(
    "epc",
    [
        "",
        "XYZ",
        "34",  # too short
        "300833B2DDD9014000000000",  # SGTIN-96 header
        "341C16E80000000000010015",  # partition 7 is reserved
        "341BFFFFC000000000000000",  # company prefix 1048575 > 6 digits
    ],
)
def test_decode_giai96_rejects_non_giai(epc: str) -> None:
    assert decode_giai96(epc) is None


def test_encode_giai96_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="company prefix"):
        encode_giai96("12345", 1)
    with pytest.raises(ValueError, match="filter"):
        encode_giai96("0614141", 1, filter_value=8)
    with pytest.raises(ValueError, match="does not fit"):
        encode_giai96("0614141", 1 << 58)


def test_ascii_in_epc() -> None:
    epc = encode_ascii("AST-000123")
    assert epc == "4153542D3030303132330000"
    assert decode_ascii(epc) == "AST-000123"
    assert asset_tag_for_epc(epc, "ascii") == "AST-000123"
    assert decode_ascii("000000000000000000000000") is None
    assert decode_ascii("41005300000000000000000") is None  # odd length
    assert decode_ascii("410053000000000000000000") is None  # NUL inside the text
    assert decode_ascii(giai96_for_asset_tag("AST-000123")) is None  # binary, not text
    with pytest.raises(ValueError, match="bits"):
        encode_ascii("AST-0000000001234")
    with pytest.raises(ValueError, match="printable"):
        encode_ascii("AST 1")


def test_mapping_scheme_uses_the_normalized_epc() -> None:
    table = {"E2801160600002095A7B1C2D": "AST-000777"}
    assert asset_tag_for_epc("e2801160600002095a7b1c2d", "mapping", mapping=table) == "AST-000777"
    assert asset_tag_for_epc("E2801160600002095A7B1C2E", "mapping", mapping=table) is None


def test_asset_ref_for_tag() -> None:
    assert asset_ref_for_tag("AST-000123") == 123
    assert asset_ref_for_tag("LAPTOP") is None


@given(
    partition=st.sampled_from(sorted(GIAI96_PARTITIONS)),
    data=st.data(),
    filter_value=st.integers(0, 7),
)
def test_giai96_round_trip(partition: int, data: st.DataObject, filter_value: int) -> None:
    _, digits, ref_bits = GIAI96_PARTITIONS[partition]
    company = data.draw(st.integers(0, 10**digits - 1))
    ref = data.draw(st.integers(0, (1 << ref_bits) - 1))
    prefix = f"{company:0{digits}d}"
    epc = encode_giai96(prefix, ref, filter_value)
    assert len(epc) == 24
    assert decode_giai96(epc) == (prefix, ref)
    assert decode_giai96(epc.lower()) == (prefix, ref)


@given(
    tag=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=16),
    extra_words=st.integers(0, 4),
)
def test_ascii_round_trip(tag: str, extra_words: int) -> None:
    bits = max(96, -(-len(tag) * 8 // 16) * 16) + 16 * extra_words
    epc = encode_ascii(tag, bits)
    assert len(epc) * 4 == bits
    assert decode_ascii(epc) == tag


@given(ref=st.integers(0, 999_999))
def test_asset_tag_round_trip(ref: int) -> None:
    tag = f"AST-{ref:06d}"
    assert asset_tag_for_epc(giai96_for_asset_tag(tag), "giai96") == tag
    assert asset_tag_for_epc(encode_ascii(tag), "ascii") == tag
