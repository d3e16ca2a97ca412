"""``tagsweep web cert``: a self-signed certificate for the live page, so phones can
open their camera on it.

A browser gives a page the camera only in a secure context: ``https://``, or the
machine's own loopback. A phone reaching the gateway over the LAN needs HTTPS, and a
gateway on a site network rarely has a name a public CA would certify. This makes a
certificate for the gateway's own names and addresses (EC P-256, SHA-256, server auth
only), prints its SHA-256 fingerprint (to compare with what the phone shows when it
asks to trust it) and a QR code of the page's URL to open with the phone's camera.
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(highlight=False, soft_wrap=True, emoji=False)  # hex ":AB:" is no emoji
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

web_app = typer.Typer(help="The live page: HTTPS for phones.", no_args_is_help=True)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class SelfSigned:
    cert: Path
    key: Path
    fingerprint: str  # SHA-256, colon-separated upper-case hex
    names: tuple[str, ...]
    addresses: tuple[str, ...]


def local_addresses() -> list[IpAddress]:
    """This machine's non-loopback addresses, as its host name resolves (best effort)."""
    out: list[IpAddress] = []
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        return out
    for info in infos:
        try:
            ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        except ValueError:
            continue
        if not ip.is_loopback and not ip.is_link_local and ip not in out:
            out.append(ip)
    return out


def make_self_signed(
    out_dir: Path,
    *,
    names: Sequence[str] = (),
    addresses: Sequence[str] = (),
    days: int = 825,
) -> SelfSigned:
    """Write ``cert.pem`` and ``key.pem`` (mode 600) into ``out_dir``. ValueError for a
    bad address; FileExistsError rather than overwriting a key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ips: list[IpAddress] = []
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise ValueError(f"--ip {text!r} is not an IP address") from None
        if ip not in ips:
            ips.append(ip)
    dns = list(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    if not dns and not ips:
        raise ValueError("give at least one --name or --ip for the certificate")
    cert_path, key_path = out_dir / "cert.pem", out_dir / "key.pem"
    for path in (cert_path, key_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; remove it or choose another --out-dir")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (dns or [str(ips[0])])[0])])
    now = dt.datetime.now(dt.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    alt += [x509.IPAddress(ip) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    return SelfSigned(cert_path, key_path, fingerprint, tuple(dns), tuple(str(i) for i in ips))


@web_app.command("cert")
def cert_command(
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Where cert.pem and key.pem go.")
    ] = Path("."),
    name: Annotated[
        list[str] | None,
        typer.Option("--name", help="A DNS name of the gateway (repeatable; default: host name)."),
    ] = None,
    ip: Annotated[
        list[str] | None,
        typer.Option("--ip", help="An address of the gateway (repeatable; default: its own)."),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Port of the live page.")] = 8080,
    days: Annotated[int, typer.Option("--days", min=1, max=3650, help="Validity.")] = 825,
) -> None:
    """Make a self-signed HTTPS certificate for the live page ([web.tls]); print its
    fingerprint and a QR code of the camera page's URL for phones."""
    import segno

    names = list(name or [])
    if not names:
        host = socket.gethostname()
        names = [host, f"{host}.local"] if "." not in host else [host]
    addresses = list(ip or [str(a) for a in local_addresses()])
    try:
        made = make_self_signed(out_dir, names=names, addresses=addresses, days=days)
    except (ValueError, FileExistsError, OSError) as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(code=2) from None
    host = made.addresses[0] if made.addresses else made.names[0]
    if ":" in host:
        host = f"[{host}]"
    url = f"https://{host}:{port}/scan"
    console.print(f"certificate  {made.cert}", markup=False)
    console.print(f"key          {made.key} (mode 600)", markup=False)
    console.print(f"names        {', '.join(made.names) or '-'}", markup=False)
    console.print(f"addresses    {', '.join(made.addresses) or '-'}", markup=False)
    console.print(f"SHA-256      {made.fingerprint}", markup=False)
    console.print("\nIn the gateway's configuration:\n", markup=False)
    console.print(
        f'[web]\nenabled = true\nlisten = "0.0.0.0:{port}"\n'
        "# beyond loopback the page needs a token (a mode-600 file with a long random value)\n"
        'token_file = "/etc/tagsweep/web.token"\n'
        f'[web.tls]\ncert_file = "{made.cert.resolve()}"\nkey_file = "{made.key.resolve()}"\n',
        markup=False,
    )
    console.print(f"Open on a phone (check the fingerprint when it asks): {url}", markup=False)
    out = io.StringIO()
    segno.make(url, error="m").terminal(out=out, compact=True)
    console.print(out.getvalue(), markup=False)
