"""The demo's case-log signing: a throwaway SSH key, the allowed-signers file that
trusts it, and the ``cases.toml`` naming both."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tagsweep.config.cases import CasesSection
    from tagsweep.engine.sshsig import KeyFileSigner


def demo_signing(out: Path) -> tuple[KeyFileSigner, CasesSection]:
    """A throwaway SSH key for the demo's case store, listed in ``keys/allowed_signers``,
    and ``cases.toml`` naming both, so the signed log checks with
    ``tagsweep audit verify --config OUT/cases.toml``. Never use these keys for real work."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from tagsweep.config.cases import CasesSection
    from tagsweep.engine.sshsig import KeyFileSigner

    keys = out / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    private = keys / "demo"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    (keys / "demo.pub").write_bytes(public + b" demo (throwaway)\n")
    allowed = keys / "allowed_signers"
    allowed.write_text(
        "# throwaway demo key: who may sign the demo's case audit log\n"
        f'demo namespaces="tagsweep-audit" {public.decode()} throwaway\n',
        encoding="utf-8",
    )
    (out / "cases.toml").write_text(
        '[engine.cases]\nstore = "cases"\nallowed_signers = "keys/allowed_signers"\n'
        'auditors = ["demo"]\n',
        encoding="utf-8",
    )
    settings = CasesSection(allowed_signers=allowed, auditors=["demo"])
    return KeyFileSigner(private), settings
