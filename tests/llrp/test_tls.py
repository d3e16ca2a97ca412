"""LLRP over TLS (``llrps://``): the reader's self-signed certificate pinned by its
SHA-256 fingerprint or verified with a CA file, TLS 1.2 or later, and a wrong
certificate refused before a single LLRP byte."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from tagsweep.drivers import Backoff, DriverConfigError
from tagsweep.drivers.llrp import LlrpDriver
from tagsweep.simulators.llrp import LlrpSimulator
from tagsweep.simulators.llrp.profiles import PROFILES
from tagsweep.simulators.llrp.tls import self_signed, server_context

from .test_driver import FAST, collect, everything_from, keys, numbered_source

QUERY = "antennas=1&keepalive_s=0.2&report_interval_s=0.1&max_clock_skew_s=315360000"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, ssl.SSLContext]:
    cert = self_signed(tmp_path_factory.mktemp("tls"))
    return cert.fingerprint, cert.cert, server_context(cert.cert, cert.key)


@pytest.mark.parametrize("verify", ["fingerprint", "ca"])
async def test_reads_arrive_over_tls(
    certificate: tuple[str, Path, ssl.SSLContext], verify: str
) -> None:
    fingerprint, cert_file, context = certificate
    profile = PROFILES["impinj-r700"]
    async with LlrpSimulator(
        port=0, tag_source=numbered_source(batches=6), profile=profile, tls=context
    ) as sim:
        pin = f"tls_fingerprint={fingerprint}" if verify == "fingerprint" else f"tls_ca={cert_file}"
        driver = LlrpDriver(f"llrps://127.0.0.1:{sim.port}?{QUERY}&{pin}", backoff=FAST)
        got = await collect(driver, everything_from(sim, 0))
    assert keys(got) == keys(sim.connections[0].sent_reads())
    assert driver.counters.reconnects == 0


async def test_a_wrong_fingerprint_is_refused(
    certificate: tuple[str, Path, ssl.SSLContext],
) -> None:
    _, _, context = certificate
    wrong = "ab" * 32
    async with LlrpSimulator(port=0, tls=context) as sim:
        url = f"llrps://127.0.0.1:{sim.port}?{QUERY}&tls_fingerprint={wrong}"
        driver = LlrpDriver(url, backoff=Backoff(initial_s=5, cap_s=5))
        with pytest.raises(Exception, match="not the pinned") as caught:
            await driver._connect()
    assert "refusing" in str(caught.value)
    assert all(not c.requests for c in sim.connections)  # not one LLRP byte was read


def test_llrps_without_a_way_to_verify_is_a_config_error() -> None:
    with pytest.raises(DriverConfigError, match="tls_fingerprint"):
        LlrpDriver("llrps://reader.example")
    with pytest.raises(DriverConfigError, match="64 hex digits"):
        LlrpDriver("llrps://reader.example?tls_fingerprint=abc")
    driver = LlrpDriver("llrps://reader.example?tls_fingerprint=" + "AB:" * 31 + "AB")
    assert driver.settings.port == 5085
    assert driver.settings.tls_context().minimum_version == ssl.TLSVersion.TLSv1_2
