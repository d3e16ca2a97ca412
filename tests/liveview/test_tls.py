"""HTTPS for phones: ``tagsweep web cert`` makes a certificate for the gateway's names and
addresses, ``[web.tls]`` serves the live page with it, and a gateway with no reader and
no scanner (phones only) is a valid configuration."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import tomllib
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.config import ConfigProblem, parse_config
from tagsweep.daemon.liveview.feed import attach_live_view
from tagsweep.daemon.liveview.server import LiveWebServer
from tagsweep.daemon.liveview.view import LiveView
from tagsweep.daemon.supervisor import Gateway
from tests.conftest import free_port, wait_for_port
from tests.liveview.harness import config_data


def make_cert(out: Path) -> str:
    result = CliRunner().invoke(
        app,
        ["web", "cert", "--out-dir", str(out), "--name", "gw1.site.test", "--ip", "127.0.0.1",
         "--port", "8443"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.stdout


def test_web_cert_names_addresses_and_fingerprint(tmp_path: Path) -> None:
    out = make_cert(tmp_path)
    pem = (tmp_path / "cert.pem").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gw1.site.test"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    der = cert.public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha256(der).hexdigest().upper()
    assert ":".join(digest[i : i + 2] for i in range(0, 64, 2)) in out
    assert "https://127.0.0.1:8443/scan" in out
    assert (tmp_path / "key.pem").stat().st_mode & 0o777 == 0o600
    assert "█" in out  # the QR code of the URL
    # the printed [web.tls] snippet is a valid configuration
    snippet = out[out.index("[web]") : out.index("Open on a phone")]
    absent: list[ConfigProblem] = []  # the token file is made where the gateway runs
    cfg = parse_config(tomllib.loads(snippet), absent_secrets=absent)
    assert [p.key_path for p in absent] == ["web.token_file"]
    assert cfg.web.tls is not None
    assert cfg.web.tls.cert_file == (tmp_path / "cert.pem").resolve()
    again = CliRunner().invoke(app, ["web", "cert", "--out-dir", str(tmp_path), "--ip", "10.0.0.1"])
    assert again.exit_code == 2
    assert "exists" in again.stderr


async def test_phones_only_gateway_serves_the_page_over_https(
    tmp_path: Path, short_dir: Path
) -> None:
    make_cert(tmp_path / "tls")
    port = free_port()
    data = config_data(tmp_path, short_dir)
    data["web"] = {
        "enabled": True,
        "listen": f"127.0.0.1:{port}",
        "tls": {
            "cert_file": str(tmp_path / "tls" / "cert.pem"),
            "key_file": str(tmp_path / "tls" / "key.pem"),
        },
    }
    config = parse_config(data)
    assert config.readers == []
    assert config.scanners == []
    gw = Gateway(config)
    feed = attach_live_view(gw)
    trust = ssl.create_default_context(cafile=str(tmp_path / "tls" / "cert.pem"))
    async with gw, aiohttp.ClientSession() as http:
        await asyncio.to_thread(wait_for_port, port)
        assert feed.server is not None
        assert feed.server.url == f"https://127.0.0.1:{port}"
        async with http.get(f"https://127.0.0.1:{port}/scan", ssl=trust) as r:
            assert r.status == 200
            assert "Start camera" in await r.text()
        async with http.get(f"https://127.0.0.1:{port}/", ssl=trust) as r:
            assert 'href="/scan">Scan with camera' in await r.text()
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"http://127.0.0.1:{port}/scan") as r:
                await r.read()


async def test_unloadable_certificate_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate")
    server = LiveWebServer(LiveView(), port=0)
    server.tls_files = (tmp_path / "cert.pem", tmp_path / "missing-key.pem")
    with pytest.raises(OSError, match=r"\[web.tls\] cannot load certificate .*cert.pem"):
        await server.start()


def test_config_check_says_phones_only(tmp_path: Path) -> None:
    cfg = tmp_path / "phones.toml"
    cfg.write_text('[web]\nenabled = true\nlisten = "127.0.0.1:8443"\n')
    result = CliRunner().invoke(app, ["config", "check", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "phones only" in result.stdout


def test_fingerprints_print_as_hex_never_as_emoji() -> None:
    """Hex pairs like ``:AB:`` are emoji codes to the terminal library: the fingerprint
    the operator compares with the phone's must print as it is."""
    from tagsweep.daemon.liveview.certificate import console

    with console.capture() as captured:
        console.print("SHA-256      08:AB:15:CD", markup=False)
    assert "08:AB:15:CD" in captured.get()
