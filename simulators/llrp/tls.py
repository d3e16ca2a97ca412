"""LLRP over TLS for the simulated reader: a self-signed certificate, as readers ship.

An Impinj R700 serves LLRP over TLS on port 5085 with a certificate it generated
itself; a client pins that certificate by its SHA-256 fingerprint (or verifies it with
a CA file when the site installed its own). The certificate is made as the gateway's
own web certificate is (:func:`tagsweep.daemon.liveview.certificate.make_self_signed`);
:func:`server_context` serves it with TLS 1.2 or later.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from tagsweep.daemon.liveview.certificate import SelfSigned, make_self_signed


def self_signed(folder: Path, host: str = "127.0.0.1") -> SelfSigned:
    """cert.pem and key.pem for ``host`` (an address or a name) in ``folder``."""
    try:
        return make_self_signed(folder, addresses=[host])
    except ValueError:
        return make_self_signed(folder, names=[host])


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context
