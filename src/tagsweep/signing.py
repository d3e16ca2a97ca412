"""Ed25519 signatures on session manifests: the gateway signs, the engine verifies.

A session manifest already carries the sha256 of its Parquet file, so anyone who edits
the Parquet file and the hash together produces a consistent pair. The signature closes
that gap: each gateway holds its own private key (created on first use, mode 0600, in
its state folder) and signs the manifest; the engine's configuration lists the public
keys it trusts per gateway (``[engine.trusted_gateways]``). A manifest edited after
signing, or signed by a key not listed for its gateway, is refused.

What is signed: the manifest without its ``signature`` member, serialised canonically
(sorted keys, no spaces, ASCII), so the check does not depend on how the file is
indented. Keys are written as text ``ed25519:<base64 of the 32 raw bytes>``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

ALGORITHM: Final = "ed25519"
SIGNATURE_KEY: Final = "signature"
_PREFIX: Final = ALGORITHM + ":"


class SigningError(Exception):
    """A key cannot be read or created, or a text is not a key."""


class BadSignatureError(SigningError):
    """Signed by a trusted key, but the manifest changed since: evidence of an edit."""


def canonical(body: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: ``body`` minus its signature, canonical JSON."""
    unsigned = {k: v for k, v in body.items() if k != SIGNATURE_KEY}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """``ed25519:<base64>`` → key; SigningError saying what is wrong otherwise."""
    value = text.strip()
    if not value.startswith(_PREFIX):
        raise SigningError(f"a public key must look like 'ed25519:<base64>', got {value[:20]!r}")
    try:
        raw = base64.b64decode(value[len(_PREFIX) :], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise SigningError(
            "a public key must be 32 bytes in base64 after 'ed25519:'; "
            f"{value[:20]!r}... is not one"
        ) from None


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The gateway's private key at ``path``, created (mode 0600) when absent.

    Refused when the file can be read by anyone but its owner: a signing key that others
    can read signs nothing."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise SigningError(f"cannot create the signing key {path}: {exc.strerror}") from None
    else:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        return key
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SigningError(
                f"the signing key {path} is accessible to others (mode {stat.S_IMODE(mode):o}); "
                f"chmod 600 {path}"
            )
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SigningError(f"cannot read the signing key {path}: {exc.strerror}") from None
    except ValueError:
        raise SigningError(f"{path} is not a PEM private key") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SigningError(f"{path} is not an Ed25519 private key")
    return loaded


def sign(body: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, str]:
    """The ``signature`` member for ``body``."""
    return {
        "algorithm": ALGORITHM,
        "public_key": public_key_text(key.public_key()),
        "value": base64.b64encode(key.sign(canonical(body))).decode("ascii"),
    }


def verify(body: Mapping[str, Any], trusted: Iterable[str]) -> str | None:
    """Check ``body``'s signature against the ``trusted`` public keys.

    Returns None when the signature is valid and made by a trusted key, else the reason
    it cannot be checked (unsigned, malformed, a key not trusted). Raises BadSignatureError
    when a trusted key signed it and the manifest changed since."""
    signature = body.get(SIGNATURE_KEY)
    if signature is None:
        return "the manifest is not signed"
    if not isinstance(signature, Mapping) or signature.get("algorithm") != ALGORITHM:
        return "the manifest's signature is not an ed25519 signature"
    key_text = str(signature.get("public_key", ""))
    keys = {k.strip() for k in trusted}
    if key_text not in keys:
        return f"it is signed by {key_text[:60]!r}, which is not a trusted key for this gateway"
    try:
        value = base64.b64decode(str(signature.get("value", "")), validate=True)
        parse_public_key(key_text).verify(value, canonical(body))
    except (binascii.Error, SigningError, InvalidSignature):
        raise BadSignatureError(
            "the signature does not match the manifest: it was changed after the gateway signed it"
        ) from None
    return None
