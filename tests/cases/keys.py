"""Real OpenSSH keys for the signing tests: made by ``ssh-keygen``, listed in an
``allowed_signers`` file exactly as ``ssh-keygen -Y verify`` reads it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tagsweep.engine.sshsig import KeyFileSigner


def make_key(folder: Path, name: str, kind: str = "ed25519") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"{name}@example.com", "-f", str(path)],
        check=True,
    )
    return path


class Keys:
    """One key per person in ``folder``; ``allowed`` lists those given (with options)."""

    def __init__(self, folder: Path, people: list[str]) -> None:
        self.folder = folder
        self.paths = {name: make_key(folder, name) for name in people}
        self.allowed = folder / "allowed_signers"
        self.lines = [f"{name} {self.public(name)}" for name in people]
        self.write()

    def public(self, name: str) -> str:
        return (self.folder / f"{name}.pub").read_text().strip()

    def signer(self, name: str) -> KeyFileSigner:
        return KeyFileSigner(self.paths[name])

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.write()

    def write(self) -> None:
        self.allowed.write_text(
            "# who may sign the case audit log (ssh-keygen ALLOWED SIGNERS format)\n"
            + "\n".join(self.lines)
            + "\n"
        )


def ssh_keygen_verify(
    allowed: Path, principal: str, message: bytes, signature: str, when: str, tmp: Path
) -> subprocess.CompletedProcess[str]:
    """``ssh-keygen -Y verify`` of one signature at time ``when`` (YYYYMMDDHHMMSS)."""
    tmp.mkdir(parents=True, exist_ok=True)
    sig = tmp / "entry.sig"
    sig.write_text(signature)
    return subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", principal,
         "-n", "tagsweep-audit", "-s", str(sig), f"-Overify-time={when}"],
        input=message.decode(), capture_output=True, text=True, check=False,
    )  # fmt: skip
