"""Core domain types."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagsweep.domain import READ_DTYPE, SIGHTING_DTYPE, Location, empty_reads, normalize_epc


def test_read_dtype_fields() -> None:
    assert READ_DTYPE.names == (
        "epc",
        "reader",
        "antenna",
        "rssi",
        "first_seen_us",
        "last_seen_us",
        "seen_count",
        "phase",
        "doppler_hz",
    )
    assert "read_count" in (SIGHTING_DTYPE.names or ())


def test_empty_reads_has_unknown_optionals() -> None:
    batch = empty_reads(3)
    assert batch.dtype == READ_DTYPE
    assert np.isnan(batch["rssi"]).all()
    assert np.isnan(batch["phase"]).all()
    assert (batch["seen_count"] == 1).all()


@given(st.binary(min_size=1, max_size=32))
def test_normalize_epc_roundtrip(raw: bytes) -> None:
    hexed = raw.hex()
    assert normalize_epc(hexed) == hexed.upper()
    assert normalize_epc(hexed.upper().encode()) == hexed.upper()
    # EPCs ending in zero bytes survive a trip through the numpy field
    batch = empty_reads(1)
    batch["epc"][0] = normalize_epc(hexed).encode()
    assert batch["epc"][0].decode() == hexed.upper()


@pytest.mark.parametrize("bad", ["", "XYZ", "ABC", "0x", "A" * 66])
def test_normalize_epc_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        normalize_epc(bad)


def test_location_hierarchy() -> None:
    rack = Location(" DC1 / Room 302 /Rack A04")
    assert rack.path == "DC1/Room 302/Rack A04"
    assert rack.site == "DC1"
    assert rack.parent == Location("DC1/Room 302")
    assert Location("DC1/Room 302").contains(rack)
    assert not rack.contains(Location("DC1/Room 302"))
    assert not Location("DC1/Room 30").contains(rack)
    with pytest.raises(ValueError):
        Location("DC1//Rack")


def test_every_console_prints_text_as_written() -> None:
    """Rich turns ``:ab:``-like text (hex fingerprints, EPC pairs, names from exports)
    into emoji unless told not to: every console the commands print with keeps text."""
    import importlib

    for name in ("tagsweep.cli", "tagsweep.daemon.cli", "tagsweep.engine.cli",
                 "tagsweep.engine.cases_cli", "tagsweep.engine.netbox_cli"):  # fmt: skip
        module = importlib.import_module(name)
        for attr in ("console", "err_console"):
            console = getattr(module, attr)
            with console.capture() as captured:
                console.print("fp 08:AB:15:CD :smile:", markup=False)
            assert "08:AB:15:CD :smile:" in captured.get(), (name, attr)
