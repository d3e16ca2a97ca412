"""MQTT over TLS with a private CA and client certificates, against a real mosquitto."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tagsweep.config.schema import MqttSection, TlsSection
from tagsweep.daemon.mqtt.outbox import Outbox
from tagsweep.daemon.mqtt.publisher import MqttPublisher
from tagsweep.drivers.base import Backoff
from tests.conftest import MosquittoBroker
from tests.outputs.conftest import running
from tests.outputs.test_mqtt import GATEWAY, SITE, _until, sighting

FAST = Backoff(initial_s=0.05, cap_s=0.2)
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(pki: Path, name: str) -> None:
    openssl("req", "-x509", *EC, "-keyout", f"{name}.key", "-out", f"{name}.crt",
            "-days", "2", "-subj", f"/CN={name}", cwd=pki)  # fmt: skip


def issue(pki: Path, ca: str, name: str, cn: str, san: str | None = None) -> None:
    openssl("req", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
            cwd=pki)  # fmt: skip
    extra: list[str] = []
    if san:
        (pki / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        extra = ["-extfile", f"{name}.ext"]
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", *extra, cwd=pki)  # fmt: skip
    (pki / f"{name}.key").chmod(0o600)


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[MosquittoBroker, Path]]:
    """mosquitto with a TLS listener that requires a client certificate from our CA."""
    pki = tmp_path / "pki"
    pki.mkdir()
    make_ca(pki, "ca")
    make_ca(pki, "rogue-ca")
    issue(pki, "ca", "server", "localhost", "IP:127.0.0.1,DNS:localhost")
    issue(pki, "ca", "gateway", "gw-01")
    issue(pki, "rogue-ca", "intruder", "gw-01")
    broker = MosquittoBroker(tmp_path)
    broker.conf.write_text(
        f"listener {broker.port} {broker.host}\n"
        # a root test run must not drop to "mosquitto": it could not read tmp_path
        "user root\n"
        f"cafile {pki / 'ca.crt'}\n"
        f"certfile {pki / 'server.crt'}\n"
        f"keyfile {pki / 'server.key'}\n"
        "require_certificate true\n"
        "use_identity_as_username true\n"
        "allow_anonymous false\n"
        "persistence false\n"
        "log_dest stderr\n"
    )
    broker.start()
    try:
        yield broker, pki
    finally:
        broker.stop()


def tls_section(broker: MosquittoBroker, pki: Path, client: str | None) -> MqttSection:
    tls = TlsSection(
        ca_file=pki / "ca.crt",
        cert_file=pki / f"{client}.crt" if client else None,
        key_file=pki / f"{client}.key" if client else None,
    )
    return MqttSection(enabled=True, host=broker.host, port=broker.port, tls=tls)


async def test_client_certificate_from_our_ca_gets_in(
    tls_broker: tuple[MosquittoBroker, Path], tmp_path: Path
) -> None:
    broker, pki = tls_broker
    outbox = Outbox(tmp_path / "gw.duckdb", site=SITE, gateway=GATEWAY)
    publisher = MqttPublisher(
        outbox, tls_section(broker, pki, "gateway"), site=SITE, gateway=GATEWAY, backoff=FAST
    )
    async with running(publisher.run(), "mqtt-publisher"):
        await outbox.emit([sighting(i) for i in range(10)])
        await _until(lambda: outbox.depth == 0)
        assert publisher.connected.is_set()
    outbox.close()


@pytest.mark.parametrize("client", [None, "intruder"])
async def test_missing_or_foreign_client_certificate_is_refused(
    tls_broker: tuple[MosquittoBroker, Path], tmp_path: Path, client: str | None
) -> None:
    broker, pki = tls_broker
    outbox = Outbox(tmp_path / "gw.duckdb", site=SITE, gateway=GATEWAY)
    publisher = MqttPublisher(
        outbox,
        tls_section(broker, pki, client),
        site=SITE,
        gateway=GATEWAY,
        backoff=FAST,
        # With TLS 1.3 the broker rejects the certificate after the client's handshake
        # has finished, so the refusal shows as a CONNACK that never comes.
        publish_timeout_s=1.0,
    )
    with capture_logs() as logs:
        async with running(publisher.run(), "mqtt-publisher"):
            await outbox.emit([sighting(1)])
            await _until(lambda: sum(e["event"] == "mqtt_disconnected" for e in logs) >= 2)
            assert not publisher.connected.is_set()
    assert outbox.depth == 1, "nothing counts as sent without the broker's PUBACK"
    outbox.close()


async def test_server_certificate_must_match_the_configured_ca(
    tls_broker: tuple[MosquittoBroker, Path], tmp_path: Path
) -> None:
    broker, pki = tls_broker
    section = tls_section(broker, pki, "gateway")
    assert section.tls is not None
    wrong_ca = section.model_copy(
        update={"tls": section.tls.model_copy(update={"ca_file": pki / "rogue-ca.crt"})}
    )
    outbox = Outbox(tmp_path / "gw.duckdb", site=SITE, gateway=GATEWAY)
    publisher = MqttPublisher(outbox, wrong_ca, site=SITE, gateway=GATEWAY, backoff=FAST)
    with capture_logs() as logs:
        async with running(publisher.run(), "mqtt-publisher"):
            await _until(lambda: any(e["event"] == "mqtt_disconnected" for e in logs))
    errors = [e["error"] for e in logs if e["event"] == "mqtt_disconnected"]
    assert any("certificate verify failed" in error for error in errors), errors
    outbox.close()
