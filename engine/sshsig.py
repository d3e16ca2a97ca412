"""SSH signatures (the SSHSIG format of ``ssh-keygen -Y sign``), made and checked in-process.

The audit log signs every entry with the actor's SSH key, the habit git uses for signed
commits. Signing a few thousand entries (opening the cases of a run) through
``ssh-keygen`` would start a few thousand processes, so the format is written here:

    signature = "SSHSIG" uint32(1) string(public key) string(namespace) string("")
                string("sha512") string(signature over the signed data)
    signed data = "SSHSIG" string(namespace) string("") string("sha512")
                  string(sha512(message))

armoured as ``-----BEGIN SSH SIGNATURE-----`` (OpenSSH ``PROTOCOL.sshsig``). The result
verifies with ``ssh-keygen -Y verify`` (the tests check that with the real tool).

A signer is a private key file (Ed25519, ECDSA or RSA, via ``cryptography``) or a key held
by ``ssh-agent`` (``SSH_AUTH_SOCK``), spoken to over its socket (draft-miller-ssh-agent):
the private key never leaves the agent.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

MAGIC: Final = b"SSHSIG"
HASH_ALG: Final = "sha512"
BEGIN: Final = "-----BEGIN SSH SIGNATURE-----"
END: Final = "-----END SSH SIGNATURE-----"

_ECDSA_HASH: Final[dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]]] = {
    "ecdsa-sha2-nistp256": hashes.SHA256,
    "ecdsa-sha2-nistp384": hashes.SHA384,
    "ecdsa-sha2-nistp521": hashes.SHA512,
}
_RSA_HASH: Final[dict[str, type[hashes.SHA256 | hashes.SHA512]]] = {
    "rsa-sha2-512": hashes.SHA512,
    "rsa-sha2-256": hashes.SHA256,
}
_AGENT_IDENTITIES_REQUEST: Final = 11
_AGENT_IDENTITIES_ANSWER: Final = 12
_AGENT_SIGN_REQUEST: Final = 13
_AGENT_SIGN_RESPONSE: Final = 14
_AGENT_RSA_SHA2_512: Final = 4


class SignatureError(Exception):
    """A signature that cannot be made or does not verify; the message says why."""


# -- SSH wire encoding -----------------------------------------------------------------


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _mpint(value: int) -> bytes:
    if value == 0:
        return _string(b"")
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big")  # room for a sign bit
    return _string(raw)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise SignatureError("truncated SSH signature structure")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def string(self) -> bytes:
        return self.take(self.uint32())

    def mpint(self) -> int:
        return int.from_bytes(self.string(), "big", signed=True)

    def done(self) -> bool:
        return self.pos == len(self.data)


def key_type(blob: bytes) -> str:
    return _Reader(blob).string().decode("ascii", "replace")


def fingerprint(blob: bytes) -> str:
    """``SHA256:…`` as ``ssh-keygen -l`` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def public_key_line(blob: bytes) -> str:
    """``ssh-ed25519 AAAA…``: the form ``allowed_signers`` and ``*.pub`` files use."""
    return f"{key_type(blob)} {base64.b64encode(blob).decode()}"


def parse_public_key(text: str) -> bytes:
    """The key blob of an OpenSSH public key line (``TYPE BASE64 [comment]``)."""
    parts = text.split()
    if len(parts) < 2:
        raise SignatureError(f"not an OpenSSH public key: {text[:40]!r}")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise SignatureError(f"public key of type {parts[0]} is not valid base64") from None
    if key_type(blob) != parts[0]:
        raise SignatureError(f"public key says {parts[0]} but holds a {key_type(blob)} key")
    return blob


def signed_data(namespace: str, message: bytes) -> bytes:
    return (
        MAGIC
        + _string(namespace.encode())
        + _string(b"")
        + _string(HASH_ALG.encode())
        + _string(hashlib.sha512(message).digest())
    )


def armor(key_blob: bytes, namespace: str, signature: bytes) -> str:
    blob = (
        MAGIC
        + struct.pack(">I", 1)
        + _string(key_blob)
        + _string(namespace.encode())
        + _string(b"")
        + _string(HASH_ALG.encode())
        + _string(signature)
    )
    text = base64.b64encode(blob).decode()
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    return "\n".join([BEGIN, *lines, END]) + "\n"


@dataclass(frozen=True, slots=True)
class ParsedSignature:
    key_blob: bytes
    namespace: str
    hash_alg: str
    signature: bytes


def parse_armored(text: str) -> ParsedSignature:
    body = text.strip()
    if not body.startswith(BEGIN) or not body.endswith(END):
        raise SignatureError("not an armoured SSH signature (BEGIN/END SSH SIGNATURE)")
    try:
        blob = base64.b64decode("".join(body[len(BEGIN) : -len(END)].split()), validate=True)
    except ValueError:
        raise SignatureError("the SSH signature is not valid base64") from None
    reader = _Reader(blob)
    if reader.take(6) != MAGIC or reader.uint32() != 1:
        raise SignatureError("not an SSHSIG version 1 signature")
    key_blob = reader.string()
    namespace = reader.string().decode("utf-8", "replace")
    reader.string()  # reserved
    hash_alg = reader.string().decode("ascii", "replace")
    signature = reader.string()
    if not reader.done():
        raise SignatureError("trailing bytes after the SSH signature")
    return ParsedSignature(key_blob, namespace, hash_alg, signature)


def verify(text: str, message: bytes, namespace: str) -> bytes:
    """Check an armoured SSHSIG over ``message``; return the signing key's blob."""
    sig = parse_armored(text)
    if sig.namespace != namespace:
        raise SignatureError(f"signed for namespace {sig.namespace!r}, not {namespace!r}")
    if sig.hash_alg not in ("sha512", "sha256"):
        raise SignatureError(f"unsupported signature hash {sig.hash_alg!r}")
    digest = (hashlib.sha512 if sig.hash_alg == "sha512" else hashlib.sha256)(message).digest()
    data = (
        MAGIC
        + _string(namespace.encode())
        + _string(b"")
        + _string(sig.hash_alg.encode())
        + _string(digest)
    )
    _verify_raw(sig.key_blob, sig.signature, data)
    return sig.key_blob


@functools.lru_cache(maxsize=256)
def _public_key(key_blob: bytes) -> serialization.SSHPublicKeyTypes:
    """The key object of a blob; a log repeats the same few keys thousands of times."""
    try:
        return serialization.load_ssh_public_key(public_key_line(key_blob).encode())
    except (ValueError, TypeError) as exc:
        kind = key_type(key_blob)
        raise SignatureError(f"unsupported signing key type {kind} ({exc})") from None


def _verify_raw(key_blob: bytes, sig_blob: bytes, data: bytes) -> None:
    reader = _Reader(sig_blob)
    sig_type = reader.string().decode("ascii", "replace")
    raw = reader.string()
    kind = key_type(key_blob)
    public = _public_key(key_blob)
    try:
        if isinstance(public, ed25519.Ed25519PublicKey) and sig_type == "ssh-ed25519":
            public.verify(raw, data)
        elif isinstance(public, ec.EllipticCurvePublicKey) and sig_type in _ECDSA_HASH:
            inner = _Reader(raw)
            der = encode_dss_signature(inner.mpint(), inner.mpint())
            public.verify(der, data, ec.ECDSA(_ECDSA_HASH[sig_type]()))
        elif isinstance(public, rsa.RSAPublicKey) and sig_type in _RSA_HASH:
            public.verify(raw, data, padding.PKCS1v15(), _RSA_HASH[sig_type]())
        else:
            raise SignatureError(f"a {sig_type} signature cannot come from a {kind} key")
    except InvalidSignature:
        raise SignatureError("the signature does not match the signed content") from None


# -- signers ---------------------------------------------------------------------------


class Signer(Protocol):
    """Something that makes SSH signatures with one key."""

    @property
    def key_blob(self) -> bytes: ...

    def sign(self, message: bytes, namespace: str) -> str: ...


class KeyFileSigner:
    """Signs with an OpenSSH private key file (passphrase from ``passphrase`` if any)."""

    def __init__(self, path: Path, passphrase: bytes | None = None) -> None:
        try:
            key = serialization.load_ssh_private_key(path.read_bytes(), passphrase)
        except (OSError, ValueError, TypeError) as exc:
            raise SignatureError(f"cannot load the signing key {path}: {exc}") from None
        if not isinstance(
            key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
        ):
            raise SignatureError(f"{path}: only Ed25519, ECDSA and RSA keys can sign")
        self._key = key
        self.path = path
        line = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        self._blob = parse_public_key(line.decode())

    @property
    def key_blob(self) -> bytes:
        return self._blob

    def sign(self, message: bytes, namespace: str) -> str:
        data = signed_data(namespace, message)
        key = self._key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            sig = _string(b"ssh-ed25519") + _string(key.sign(data))
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            kind = key_type(self._blob)
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(_ECDSA_HASH[kind]())))
            sig = _string(kind.encode()) + _string(_mpint(r) + _mpint(s))
        else:
            raw = key.sign(data, padding.PKCS1v15(), hashes.SHA512())
            sig = _string(b"rsa-sha2-512") + _string(raw)
        return armor(self._blob, namespace, sig)


class AgentSigner:
    """Signs with a key held by ssh-agent; the private key never leaves the agent."""

    def __init__(self, key_blob: bytes, sock: str | None = None) -> None:
        self._blob = key_blob
        self.sock = sock or os.environ.get("SSH_AUTH_SOCK") or ""
        if not self.sock:
            raise SignatureError("no ssh-agent: SSH_AUTH_SOCK is not set")

    @property
    def key_blob(self) -> bytes:
        return self._blob

    def sign(self, message: bytes, namespace: str) -> str:
        flags = _AGENT_RSA_SHA2_512 if key_type(self._blob) == "ssh-rsa" else 0
        body = (
            bytes([_AGENT_SIGN_REQUEST])
            + _string(self._blob)
            + _string(signed_data(namespace, message))
            + struct.pack(">I", flags)
        )
        code, reply = agent_request(self.sock, body)
        if code != _AGENT_SIGN_RESPONSE:
            raise SignatureError(
                f"ssh-agent refused to sign with {fingerprint(self._blob)} (reply {code}); "
                "is the key loaded (`ssh-add -l`) and confirmed?"
            )
        return armor(self._blob, namespace, _Reader(reply).string())


def agent_request(sock_path: str, body: bytes) -> tuple[int, bytes]:
    """One request/response exchange with ssh-agent."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(sock_path)
            sock.sendall(_string(body))
            head = _recv_exact(sock, 4)
            reply = _recv_exact(sock, struct.unpack(">I", head)[0])
    except OSError as exc:
        raise SignatureError(f"cannot talk to ssh-agent at {sock_path}: {exc}") from None
    if not reply:
        raise SignatureError("ssh-agent sent an empty reply")
    return reply[0], reply[1:]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise OSError("ssh-agent closed the connection")
        out += chunk
    return out


def agent_keys(sock: str | None = None) -> list[bytes]:
    """Key blobs ssh-agent holds, in its order (``ssh-add -L``)."""
    path = sock or os.environ.get("SSH_AUTH_SOCK") or ""
    if not path:
        return []
    code, reply = agent_request(path, bytes([_AGENT_IDENTITIES_REQUEST]))
    if code != _AGENT_IDENTITIES_ANSWER:
        raise SignatureError(f"ssh-agent did not list its keys (reply {code})")
    reader = _Reader(reply)
    keys = []
    for _ in range(reader.uint32()):
        keys.append(reader.string())
        reader.string()  # comment
    return keys
